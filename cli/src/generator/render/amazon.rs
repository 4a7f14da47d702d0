//! Amazon SP-API orders: the combined getOrder + getOrderItems body shelfsync's poller writes.

use serde_json::{json, Value};

use super::{money, rfc3339};
use crate::generator::model::{OrderState, Sku};

/// An Amazon SP-API combined getOrder + getOrderItems body (what shelfsync's poller writes).
pub(super) fn amazon(order: &OrderState, catalog: &[Sku], now: i64) -> Value {
    let cancelled = order.cancelled;
    let units: i64 = order.lines.iter().map(|l| l.remaining).sum();
    let total: i64 = order
        .lines
        .iter()
        .map(|l| catalog[l.sku].price_cents * l.remaining)
        .sum();
    let items: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let mut item = json!({
                "ASIN": sku.asin,
                "OrderItemId": l.id.to_string(),
                "SellerSKU": sku.name,
                "Title": sku.title,
                // Amazon reports the items of a cancelled order with QuantityOrdered 0.
                "QuantityOrdered": if cancelled { 0 } else { l.remaining },
                "QuantityShipped": 0,
                "ProductInfo": {"NumberOfItems": "1"},
                "IsGift": "false",
                "ConditionId": "New",
                "ConditionSubtypeId": "New",
                "IsTransparency": false,
                "SerialNumberRequired": false
            });
            if !cancelled && order.paid {
                if let Some(m) = item.as_object_mut() {
                    m.insert(
                        "ItemPrice".into(),
                        json!({"CurrencyCode": "USD", "Amount": money(sku.price_cents * l.remaining)}),
                    );
                    m.insert("ItemTax".into(), json!({"CurrencyCode": "USD", "Amount": "0.00"}));
                }
            }
            item
        })
        .collect();
    let mut head = json!({
        "AmazonOrderId": order.order_id,
        "PurchaseDate": rfc3339(order.placed_at_ms),
        "LastUpdateDate": rfc3339(now),
        "OrderStatus": order.status,
        "FulfillmentChannel": "MFN",
        "SalesChannel": "Amazon.com",
        "ShipServiceLevel": "Std US D2D Dom",
        "NumberOfItemsShipped": 0,
        "NumberOfItemsUnshipped": if order.paid && !cancelled { units } else { 0 },
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "IsReplacementOrder": false,
        "MarketplaceId": "ATVPDKIKX0DER",
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "EarliestShipDate": rfc3339(order.placed_at_ms + 86_400_000),
        "LatestShipDate": rfc3339(order.placed_at_ms + 2 * 86_400_000),
        "IsBusinessOrder": false,
        "IsPrime": order.number.is_multiple_of(3),
        "IsPremiumOrder": false,
        "IsSoldByAB": false,
        "IsISPU": false
    });
    if order.paid && !cancelled {
        if let Some(m) = head.as_object_mut() {
            m.insert(
                "OrderTotal".into(),
                json!({"CurrencyCode": "USD", "Amount": money(total)}),
            );
        }
    }
    json!({
        "order": {"payload": head},
        "items": {"payload": {"AmazonOrderId": order.order_id, "OrderItems": items}}
    })
}
