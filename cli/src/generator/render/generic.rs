//! shelfsync's generic order shape (eBay through a bridge, stores, own shops).

use serde_json::{json, Value};

use super::{customer, rfc3339};
use crate::generator::model::{OrderState, Sku};

/// shelfsync's generic order shape (eBay through a bridge, stores, own shops).
pub(super) fn generic(order: &OrderState, catalog: &[Sku]) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .filter(|l| l.remaining > 0)
        .map(|l| json!({"line_id": l.id.to_string(), "sku": catalog[l.sku].name, "quantity": l.remaining}))
        .collect();
    let (first, last, _) = customer(order);
    json!({
        "order_id": order.order_id,
        "paid": order.paid,
        "cancelled": order.cancelled,
        "placed_at": rfc3339(order.placed_at_ms),
        "lines": lines,
        "currency": "USD",
        "buyer": format!("{}_{}{}", first.to_lowercase(), last.to_lowercase(), order.customer % 97)
    })
}
