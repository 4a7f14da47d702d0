//! Walmart Marketplace purchase orders (`GET /v3/orders/{purchaseOrderId}`).

use serde_json::{json, Value};

use super::customer;
use crate::generator::model::{OrderState, Sku};

/// A Walmart Marketplace purchase order (`GET /v3/orders/{purchaseOrderId}`).
pub(super) fn walmart(order: &OrderState, catalog: &[Sku]) -> Value {
    let (first, last, (street, city, state, zip)) = customer(order);
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let live = if order.cancelled { 0 } else { l.remaining };
            let cancelled = l.ordered - live;
            let mut statuses = Vec::new();
            if live > 0 {
                statuses.push(json!({
                    "status": "Acknowledged",
                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": live.to_string()}
                }));
            }
            if cancelled > 0 {
                statuses.push(json!({
                    "status": "Cancelled",
                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": cancelled.to_string()},
                    "cancellationReason": if order.cancelled { "CUSTOMER_REQUESTED_SELLER_TO_CANCEL" } else { "SELLER_CANCEL_OUT_OF_STOCK" }
                }));
            }
            let price = sku.price_cents as f64 / 100.0;
            json!({
                "lineNumber": l.number.to_string(),
                "item": {"productName": sku.title, "sku": sku.name},
                "charges": {"charge": [{
                    "chargeType": "PRODUCT",
                    "chargeName": "ItemPrice",
                    "chargeAmount": {"currency": "USD", "amount": price},
                    "tax": {"taxName": "Tax1", "taxAmount": {"currency": "USD", "amount": (price * 8.875).round() / 100.0}}
                }]},
                "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": l.ordered.to_string()},
                "statusDate": order.placed_at_ms,
                "orderLineStatuses": {"orderLineStatus": statuses},
                "fulfillment": {"fulfillmentOption": "S2H", "shipMethod": "STANDARD"}
            })
        })
        .collect();
    json!({
        "order": {
            "purchaseOrderId": order.order_id,
            "customerOrderId": (order.number + 91_000_000_000_000).to_string(),
            "customerEmailId": format!("{:032X}@relay.walmart.com", order.number.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            "orderDate": order.placed_at_ms,
            "shippingInfo": {
                "phone": "2125550142",
                "estimatedDeliveryDate": order.placed_at_ms + 4 * 86_400_000,
                "estimatedShipDate": order.placed_at_ms + 86_400_000,
                "methodCode": "Standard",
                "postalAddress": {
                    "name": format!("{first} {last}"), "address1": street, "city": city,
                    "state": state, "postalCode": zip, "country": "USA", "addressType": "RESIDENTIAL"
                }
            },
            "orderLines": {"orderLine": lines},
            "shipNode": {"type": "SellerFulfilled"}
        }
    })
}
