//! eBay Fulfillment API orders (`GET /sell/fulfillment/v1/order/{orderId}`).

use serde_json::{json, Value};

use super::{customer, money, rfc3339};
use crate::generator::model::{OrderState, Sku};

/// An eBay Fulfillment API `Order`, as getOrder returns it.
pub(super) fn ebay(order: &OrderState, catalog: &[Sku]) -> Value {
    let (first, last, (street, city, state, zip)) = customer(order);
    let mut total_cents = 0;
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let cost = sku.price_cents * l.ordered;
            total_cents += cost;
            json!({
                "lineItemId": l.id.to_string(),
                "sku": sku.name,
                "title": sku.title,
                "quantity": l.ordered,
                "lineItemCost": {"value": money(cost), "currency": "USD"},
                "lineItemFulfillmentStatus": "NOT_STARTED",
                "soldFormat": "FIXED_PRICE"
            })
        })
        .collect();
    let cancel_state = if order.cancelled {
        "CANCELED"
    } else {
        "NONE_REQUESTED"
    };
    json!({
        "orderId": order.order_id,
        "creationDate": rfc3339(order.placed_at_ms),
        "lastModifiedDate": rfc3339(order.placed_at_ms.max(order.cancelled_at_ms)),
        "orderFulfillmentStatus": "NOT_STARTED",
        "orderPaymentStatus": order.status,
        "cancelStatus": {"cancelState": cancel_state, "cancelRequests": []},
        "buyer": {"username": format!("{}_{}{}", first.to_lowercase(), last.to_lowercase(), order.customer % 97)},
        "pricingSummary": {"total": {"value": money(total_cents), "currency": "USD"}},
        "fulfillmentStartInstructions": [{
            "fulfillmentInstructionsType": "SHIP_TO",
            "shippingStep": {"shipTo": {
                "fullName": format!("{first} {last}"),
                "contactAddress": {"addressLine1": street, "city": city, "stateOrProvince": state, "postalCode": zip, "countryCode": "US"}
            }}
        }],
        "lineItems": lines
    })
}
