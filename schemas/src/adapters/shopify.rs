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
//! | line `sku` | `sku`; a line without one (or with `""`) is skipped as `NO_SKU` |
//! | line `quantity` | `current_quantity` when present (API 2024-01+), else `quantity` |
//! | line `fulfilled_by` | `fulfillment_service`: absent, or one of the channel's `own_fulfillment_services` (default `["manual"]`) → `MERCHANT`; any other service (a third-party fulfilment service such as a 3PL app) → `MARKETPLACE` |
//! | line `shipped_quantity` | the whole line when its `fulfillment_status` is `fulfilled`; for `partial`, the line's quantity minus `fulfillable_quantity` |
//! | line `unit_price`, `currency` | `price` (shop currency), the order's `currency` |
//! | `already_shipped` | the order's `fulfillment_status` is `fulfilled` |
//! | `test` | `test` |
//! | `currency`, `total` | `currency`; `current_total_price` (after edits and refunds) when present, else `total_price` |
//!
//! Lines without stock are skipped, not refused: `gift_card: true` → `GIFT_CARD`;
//! `requires_shipping: false` (tips, shipping protection, warranties, digital goods) →
//! `NON_PHYSICAL`; no SKU (custom items) → `NO_SKU`, checked in that order.
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

use super::money::{optional_amount, optional_currency};
use super::{
    as_array, as_bool, as_int, as_object, as_str, check_quantity, get, invalid, optional_bool,
    optional_sku, optional_str, optional_timestamp, required, required_id, required_quantity,
    AdapterConfig, AdapterError, LineSet, Parsed, Path, RawLine,
};
use crate::model::{FulfilledBy, SkipReason, SkippedLine};

/// `financial_status` values that mean the buyer's payment is secured.
const PAID_STATUSES: [&str; 5] = [
    "authorized",
    "paid",
    "partially_paid",
    "partially_refunded",
    "refunded",
];

pub(super) fn parse(
    payload: &Value,
    config: &AdapterConfig,
    path: &Path<'_>,
) -> Result<Parsed, AdapterError> {
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

    let test = optional_bool(order, "test", path)?;
    let currency = optional_currency(order, "currency", path)?;
    let total = match optional_amount(order, "current_total_price", path)? {
        Some(total) => Some(total),
        None => optional_amount(order, "total_price", path)?,
    };
    let already_shipped =
        optional_str(order, "fulfillment_status", path)?.is_some_and(|s| s == "fulfilled");

    let items_path = path.key("line_items");
    let items = as_array(required(order, "line_items", path)?, &items_path)?;
    let mut lines = LineSet::with_len(items.len(), &items_path)?;
    for (i, item) in items.iter().enumerate() {
        let item_path = items_path.index(i);
        let item = as_object(item, &item_path)?;
        let line_id = id_of(item, "LineItem", "line id", &item_path)?;
        let ordered = required_quantity(item, "quantity", 0, &item_path)?;
        let remaining = match get(item, "current_quantity") {
            Some(value) => {
                let at = item_path.key("current_quantity");
                check_quantity(as_int(value, &at)?, 0, &at)?
            }
            None => ordered,
        };
        let sku = optional_sku(item, "sku", &item_path)?;
        let requires_shipping = match get(item, "requires_shipping") {
            Some(value) => as_bool(value, &item_path.key("requires_shipping"))?,
            None => true,
        };
        let skip = if optional_bool(item, "gift_card", &item_path)? {
            Some(SkipReason::GIFT_CARD)
        } else if !requires_shipping {
            Some(SkipReason::NON_PHYSICAL)
        } else if sku.is_none() {
            Some(SkipReason::NO_SKU)
        } else {
            None
        };
        match (skip, sku) {
            (None, Some(sku)) => {
                if ordered == 0 {
                    // Only a skipped line may report no units; a stock line needs one.
                    required_quantity(item, "quantity", 1, &item_path)?;
                }
                let mut line = RawLine::new(line_id, sku, ordered, remaining);
                line.fulfilled_by = fulfilled_by(item, config, &item_path)?;
                line.shipped = shipped_units(item, remaining, &item_path)?;
                line.unit_price = optional_amount(item, "price", &item_path)?;
                line.currency = line.unit_price.as_ref().and(currency.clone());
                lines.push(line, &item_path)?;
            }
            (reason, sku) => lines.skip(
                SkippedLine {
                    line_id,
                    sku,
                    quantity: remaining,
                    reason: reason.unwrap_or(SkipReason::NO_SKU),
                },
                &item_path,
            )?,
        }
    }

    let mut parsed = Parsed::new(
        order_id,
        paid,
        cancelled,
        placed_at,
        lines,
        items_path.render(),
    );
    parsed.already_shipped = already_shipped;
    parsed.test = test;
    parsed.currency = currency;
    parsed.total = total;
    Ok(parsed)
}

/// `MERCHANT` when the line's `fulfillment_service` is absent or one of the channel's own.
fn fulfilled_by(
    item: &Map<String, Value>,
    config: &AdapterConfig,
    path: &Path<'_>,
) -> Result<FulfilledBy, AdapterError> {
    Ok(match optional_str(item, "fulfillment_service", path)? {
        Some(service) if !config.own_fulfillment_services.contains(service) => {
            FulfilledBy::MARKETPLACE
        }
        _ => FulfilledBy::MERCHANT,
    })
}

/// Units of a line Shopify reports fulfilled.
fn shipped_units(
    item: &Map<String, Value>,
    quantity: i64,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    match optional_str(item, "fulfillment_status", path)? {
        Some("fulfilled") => Ok(quantity),
        Some("partial") => match get(item, "fulfillable_quantity") {
            Some(value) => {
                let at = path.key("fulfillable_quantity");
                let open = check_quantity(as_int(value, &at)?, 0, &at)?;
                Ok(quantity.saturating_sub(open).max(0))
            }
            None => Ok(0),
        },
        _ => Ok(0),
    }
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
