//! Shopify: order webhooks and REST order bodies.
//!
//! # Accepted payloads
//!
//! - The body of an `orders/create`, `orders/updated`, `orders/cancelled` (or `orders/paid`,
//!   `orders/edited`…) webhook: the bare order object. The three topics share one shape; the
//!   topic itself travels in the `X-Shopify-Topic` header, which shelfsync does not need.
//! - A REST Admin `GET /orders/{id}.json` body, the same order wrapped in `{"order": {…}}`.
//!
//! # Fields read
//!
//! | order field | from |
//! |---|---|
//! | `channel_order_id` | the numeric suffix of `admin_graphql_api_id` (`gid://shopify/Order/820982911946154508`), else `id` |
//! | `paid` | `financial_status` ∈ {`authorized`, `paid`, `partially_paid`, `partially_refunded`, `refunded`} |
//! | `cancelled` | `cancelled_at` is not null (or every line's `current_quantity` is 0, see below) |
//! | `placed_at` | `created_at` (RFC 3339) |
//! | line `line_id` | the suffix of the line's `admin_graphql_api_id`, else its `id` |
//! | line `sku` | `sku` (required: a line without a SKU cannot be reserved) |
//! | line `quantity` | `current_quantity` when present (API 2024-01+), else `quantity` |
//!
//! Ids are taken from the GraphQL id first because Shopify's integer ids exceed 2^53 and are
//! rounded by any JavaScript hop on the way (Shopify's own sample payloads show it). Parsed as
//! JSON integers they are still exact 64-bit values, so `id` is the fallback for bodies without
//! GraphQL ids (older API versions).
//!
//! `paid`: `authorized` counts as paid because the payment is secured (manual capture
//! merchants capture at fulfillment; a soft hold that expires before then would oversell the
//! order). `pending`, `voided`, `expired` and unknown statuses are not paid. A `refunded` order
//! was paid; when the refund cancels it, `cancelled_at` says so.
//!
//! Quantities: `quantity` is what the buyer ordered and never changes; `current_quantity` is
//! what is left after order edits and refunds. A line whose `current_quantity` is 0 was removed
//! and is left out of the order; when every line is removed the order counts as cancelled.
//! A cancelled order keeps its lines with their ordered `quantity`.

use serde_json::{Map, Value};

use super::{
    as_array, as_int, as_object, as_str, check_quantity, get, invalid, optional_str,
    optional_timestamp, required, required_id, required_quantity, required_sku, AdapterError,
    LineSet, Parsed, Path, RawLine,
};

/// `financial_status` values that mean the buyer's payment is secured.
const PAID_STATUSES: [&str; 5] = [
    "authorized",
    "paid",
    "partially_paid",
    "partially_refunded",
    "refunded",
];

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let outer = as_object(payload, path)?;
    let wrapped_path = path.key("order");
    // A REST body is `{"order": {...}}`; a webhook body is the order itself (which has no
    // `order` field, but always has `line_items`).
    let (order, path) = match outer.get("order") {
        Some(inner @ Value::Object(_)) if !outer.contains_key("line_items") => {
            (as_object(inner, &wrapped_path)?, &wrapped_path)
        }
        _ => (outer, path),
    };

    let order_id = id_of(order, "Order", "order id", path)?;
    let paid = optional_str(order, "financial_status", path)?
        .is_some_and(|status| PAID_STATUSES.contains(&status));
    let cancelled = optional_str(order, "cancelled_at", path)?.is_some();
    let placed_at = optional_timestamp(order, "created_at", path)?;

    let items_path = path.key("line_items");
    let items = as_array(required(order, "line_items", path)?, &items_path)?;
    let mut lines = LineSet::with_len(items.len(), &items_path)?;
    for (i, item) in items.iter().enumerate() {
        let item_path = items_path.index(i);
        let item = as_object(item, &item_path)?;
        let line_id = id_of(item, "LineItem", "line id", &item_path)?;
        let sku = required_sku(item, "sku", &item_path)?;
        let ordered = required_quantity(item, "quantity", 1, &item_path)?;
        let remaining = match get(item, "current_quantity") {
            Some(value) => {
                let at = item_path.key("current_quantity");
                check_quantity(as_int(value, &at)?, 0, &at)?
            }
            None => ordered,
        };
        lines.push(
            RawLine {
                line_id,
                sku,
                ordered,
                remaining,
            },
            &item_path,
        )?;
    }

    Ok(Parsed {
        order_id,
        paid,
        cancelled,
        placed_at,
        lines: lines.lines,
        lines_path: items_path.render(),
    })
}

/// The id of a Shopify object: the numeric suffix of `admin_graphql_api_id` when present (exact
/// even after a JavaScript hop), else `id`.
fn id_of(
    object: &Map<String, Value>,
    gid_type: &str,
    what: &str,
    path: &Path<'_>,
) -> Result<String, AdapterError> {
    match get(object, "admin_graphql_api_id") {
        Some(value) => {
            let at = path.key("admin_graphql_api_id");
            gid_suffix(as_str(value, &at)?, gid_type, &at)
        }
        None => required_id(object, "id", what, path),
    }
}

/// `gid://shopify/{gid_type}/{digits}[?query]` → `digits`.
fn gid_suffix(gid: &str, gid_type: &str, path: &Path<'_>) -> Result<String, AdapterError> {
    let bad = || {
        let shown: String = gid.chars().take(80).collect();
        invalid(
            path,
            format!("{shown:?} is not a Shopify GID of the form gid://shopify/{gid_type}/<number>"),
        )
    };
    let rest = gid.strip_prefix("gid://shopify/").ok_or_else(bad)?;
    let rest = rest
        .strip_prefix(gid_type)
        .and_then(|r| r.strip_prefix('/'))
        .ok_or_else(bad)?;
    let digits = rest.split_once('?').map_or(rest, |(digits, _query)| digits);
    // u64 ids have at most 20 digits; longer is not a Shopify id.
    if digits.is_empty() || digits.len() > 20 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    Ok(digits.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gid_suffixes() {
        let p = Path::ROOT;
        assert_eq!(
            gid_suffix("gid://shopify/Order/820982911946154508", "Order", &p)
                .ok()
                .as_deref(),
            Some("820982911946154508")
        );
        assert_eq!(
            gid_suffix("gid://shopify/LineItem/1?x=1", "LineItem", &p)
                .ok()
                .as_deref(),
            Some("1")
        );
        assert!(gid_suffix("gid://shopify/Order/", "Order", &p).is_err());
        assert!(gid_suffix("gid://shopify/Order/12a", "Order", &p).is_err());
        assert!(gid_suffix("gid://shopify/LineItem/12", "Order", &p).is_err());
        assert!(gid_suffix("gid://shopify/OrderX/12", "Order", &p).is_err());
        assert!(gid_suffix("12", "Order", &p).is_err());
    }
}
