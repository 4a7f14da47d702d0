//! The generic order shape, for channels without a dedicated adapter.
//!
//! Use it for marketplaces reached through a bridge (eBay), your own web shop, point-of-sale
//! systems, or anything else that can write JSON. Map the channel to `generic` in the topology
//! and publish, on `retail.channel.orders.raw`, envelopes whose `payload` is:
//!
//! ```json
//! {
//!   "order_id": "12-34567-89012",
//!   "paid": true,
//!   "cancelled": false,
//!   "placed_at": "2026-03-01T12:30:00Z",
//!   "lines": [
//!     {"line_id": "1", "sku": "MUG-BLUE-350", "quantity": 2},
//!     {"line_id": "2", "sku": "TEA-EARLGREY-100G", "quantity": 1}
//!   ]
//! }
//! ```
//!
//! | field | type | required | meaning |
//! |---|---|---|---|
//! | `order_id` | string (or non-negative integer) | yes | the channel's order id; with the channel name it forms the order key `channel:order_id`. 1–128 bytes, no control characters |
//! | `paid` | boolean | yes | `true` once the buyer has paid: the order's stock is held for good. `false` holds it only for the soft-hold TTL |
//! | `cancelled` | boolean | yes | `true` cancels the order and releases everything it holds |
//! | `placed_at` | RFC 3339 string or integer epoch milliseconds | no | when the buyer placed the order; 0 when absent |
//! | `lines` | array, at most 1000 | yes | the order's lines, in the channel's order; may be empty only when `cancelled` is `true` |
//! | `lines[].line_id` | string (or non-negative integer) | yes | the line's id, unique within the order and stable across revisions of the order; 1–128 bytes |
//! | `lines[].sku` | string | yes | the seller SKU, exactly as the ERP knows it (no trimming is done); 1–128 bytes |
//! | `lines[].quantity` | integer | yes | units ordered, 1 to 1,000,000 |
//!
//! Other fields are ignored, so a bridge may add its own (currency, buyer, …).
//!
//! Revisions: publish the whole order again whenever it changes (paid, a line changed, added or
//! removed, cancelled). shelfsync compares each revision with the previous one: a line that is
//! no longer listed is released, a changed quantity is re-reserved. Publishing the same content
//! twice is harmless: exact repeats are dropped.
//!
//! To cancel, publish the order with `"cancelled": true`; its `lines` may be the last known
//! lines or `[]`.

use serde_json::Value;

use super::{
    as_array, as_bool, as_object, optional_timestamp, required, required_id, required_quantity,
    required_sku, AdapterError, LineSet, Parsed, Path, RawLine,
};

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let order = as_object(payload, path)?;
    let order_id = required_id(order, "order_id", "order id", path)?;
    let paid = as_bool(required(order, "paid", path)?, &path.key("paid"))?;
    let cancelled = as_bool(required(order, "cancelled", path)?, &path.key("cancelled"))?;
    let placed_at = optional_timestamp(order, "placed_at", path)?;
    let lines_path = path.key("lines");
    let array = as_array(required(order, "lines", path)?, &lines_path)?;
    let mut lines = LineSet::with_len(array.len(), &lines_path)?;
    for (i, line) in array.iter().enumerate() {
        let line_path = lines_path.index(i);
        let line = as_object(line, &line_path)?;
        let line_id = required_id(line, "line_id", "line id", &line_path)?;
        let sku = required_sku(line, "sku", &line_path)?;
        let quantity = required_quantity(line, "quantity", 1, &line_path)?;
        lines.push(
            RawLine {
                line_id,
                sku,
                ordered: quantity,
                remaining: quantity,
            },
            &line_path,
        )?;
    }
    Ok(Parsed {
        order_id,
        paid,
        cancelled,
        placed_at,
        lines: lines.lines,
        lines_path: lines_path.render(),
    })
}
