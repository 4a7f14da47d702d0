//! The generic order shape, for channels without a dedicated adapter.
//!
//! Use it for marketplaces reached through a bridge, your own web shop, point-of-sale
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
//! | `lines[].sku` | string | no | the seller SKU, exactly as the ERP knows it (no trimming is done); 1–128 bytes. A line without one (or with `""`) carries no stock: it is skipped (`NO_SKU`) and counted |
//! | `lines[].quantity` | integer | yes | units ordered, 1 to 1,000,000 |
//! | `lines[].fulfilled_by` | `"merchant"` or `"marketplace"` | no | who ships the line; default `"merchant"`. A `"marketplace"` line holds none of our stock |
//! | `lines[].shipped_quantity` | integer | no | units already shipped; default 0 |
//! | `lines[].unit_price` | decimal string or number | no | price of one unit, e.g. `"12.50"` (kept exactly as written) |
//! | `lines[].currency` | string | no | ISO 4217 code of `unit_price` (default: the order's `currency`) |
//! | `currency` | string | no | ISO 4217 code of `total` |
//! | `total` | decimal string or number | no | what the buyer pays for the whole order |
//! | `already_shipped` | boolean | no | the order had shipped before shelfsync saw it: reserve nothing |
//! | `test` | boolean | no | a test order (skipped unless the channel's `skip_test_orders` is false) |
//!
//! Other fields are ignored, so a bridge may add its own (buyer, …).
//!
//! Revisions: publish the whole order again whenever it changes (paid, a line changed, added or
//! removed, cancelled). shelfsync compares each revision with the previous one: a line that is
//! no longer listed is released, a changed quantity is re-reserved. Publishing the same content
//! twice is harmless: exact repeats are dropped.
//!
//! To cancel, publish the order with `"cancelled": true`; its `lines` may be the last known
//! lines or `[]`.

use serde_json::Value;

use super::money::{optional_amount, optional_currency};
use super::{
    as_array, as_bool, as_object, get, invalid, optional_bool, optional_sku, optional_str,
    optional_timestamp, required, required_id, required_quantity, AdapterError, LineSet, Parsed,
    Path, RawLine,
};
use crate::model::{FulfilledBy, SkipReason, SkippedLine};

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let order = as_object(payload, path)?;
    let order_id = required_id(order, "order_id", "order id", path)?;
    let paid = as_bool(required(order, "paid", path)?, &path.key("paid"))?;
    let cancelled = as_bool(required(order, "cancelled", path)?, &path.key("cancelled"))?;
    let placed_at = optional_timestamp(order, "placed_at", path)?;
    let currency = optional_currency(order, "currency", path)?;
    let lines_path = path.key("lines");
    let array = as_array(required(order, "lines", path)?, &lines_path)?;
    let mut lines = LineSet::with_len(array.len(), &lines_path)?;
    for (i, line) in array.iter().enumerate() {
        let line_path = lines_path.index(i);
        let line = as_object(line, &line_path)?;
        let line_id = required_id(line, "line_id", "line id", &line_path)?;
        let quantity = required_quantity(line, "quantity", 1, &line_path)?;
        let Some(sku) = optional_sku(line, "sku", &line_path)? else {
            let skipped = SkippedLine {
                line_id,
                sku: None,
                quantity,
                reason: SkipReason::NO_SKU,
            };
            lines.skip(skipped, &line_path)?;
            continue;
        };
        let mut raw = RawLine::new(line_id, sku, quantity, quantity);
        raw.fulfilled_by = match optional_str(line, "fulfilled_by", &line_path)? {
            None | Some("merchant") => FulfilledBy::MERCHANT,
            Some("marketplace") => FulfilledBy::MARKETPLACE,
            Some(other) => {
                let shown: String = other.chars().take(32).collect();
                return Err(invalid(
                    &line_path.key("fulfilled_by"),
                    format!("{shown:?} is not \"merchant\" or \"marketplace\""),
                ));
            }
        };
        if get(line, "shipped_quantity").is_some() {
            raw.shipped = required_quantity(line, "shipped_quantity", 0, &line_path)?;
        }
        raw.unit_price = optional_amount(line, "unit_price", &line_path)?;
        raw.currency = match optional_currency(line, "currency", &line_path)? {
            Some(code) => Some(code),
            None => raw.unit_price.as_ref().and(currency.clone()),
        };
        lines.push(raw, &line_path)?;
    }
    let mut parsed = Parsed::new(
        order_id,
        paid,
        cancelled,
        placed_at,
        lines,
        lines_path.render(),
    );
    parsed.already_shipped = optional_bool(order, "already_shipped", path)?;
    parsed.test = optional_bool(order, "test", path)?;
    parsed.total = optional_amount(order, "total", path)?;
    parsed.currency = currency;
    Ok(parsed)
}
