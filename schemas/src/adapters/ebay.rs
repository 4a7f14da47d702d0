//! eBay Fulfillment API orders (`GET /sell/fulfillment/v1/order/{orderId}` and `GET /order`).
//!
//! # Accepted payloads
//!
//! One `Order` object: a getOrder response body, or one element of a getOrders page's
//! `orders[]`. A whole getOrders page (`{"orders": [...], "total": …}`) is refused as
//! `unsupported_payload`: publish one record per order. Prefer getOrder for polling changes:
//! eBay documents that getOrders always returns `cancelStatus.cancelRequests` empty.
//!
//! # Fields read
//!
//! | order field | from |
//! |---|---|
//! | `channel_order_id` | `orderId` |
//! | `paid` | `orderPaymentStatus` ∈ {`PAID`, `PARTIALLY_REFUNDED`, `FULLY_REFUNDED`}; `PENDING` and `FAILED` are not paid |
//! | `cancelled` | `cancelStatus.cancelState` is `CANCELED`. `CANCEL_REQUESTED`, `IN_PROGRESS` and `NONE_REQUESTED` are not cancellations: a buyer's request waits for the seller, who may still ship |
//! | `placed_at` | `creationDate` (ISO 8601 UTC) |
//! | `already_shipped` | `orderFulfillmentStatus` is `FULFILLED` |
//! | `currency`, `total` | `pricingSummary.total.currency`, `pricingSummary.total.value` |
//! | line `line_id` | `lineItemId` |
//! | line `sku` | `sku`; a line item without one (eBay listings need not have SKUs) is skipped as `NO_SKU` |
//! | line `quantity` | `quantity` |
//! | line `fulfilled_by` | `program.fulfillmentProgram.fulfilledBy` `EBAY` (eBay or an eBay fulfilment partner ships it) → `MARKETPLACE`, else `MERCHANT` |
//! | line `shipped_quantity` | the whole line when `lineItemFulfillmentStatus` is `FULFILLED` |
//! | line `line_total`, `currency` | `lineItemCost` (eBay: the unit price × `quantity`, before discounts); the unit price is derived when the division is exact |
//!
//! `lastModifiedDate` is not needed: each delivery is compared with the previous ones by
//! content. eBay orders have no test flag (the sandbox is a separate environment), so `test`
//! is always false.

use serde_json::{Map, Value};

use super::money::optional_money;
use super::{
    as_array, as_object, as_str, get, optional_sku, optional_str, optional_timestamp, required,
    required_id, required_quantity, unsupported, AdapterError, LineSet, Parsed, Path, RawLine,
};
use crate::model::{FulfilledBy, SkipReason, SkippedLine};

/// `orderPaymentStatus` values of an order whose buyer has paid.
const PAID_STATUSES: [&str; 3] = ["PAID", "PARTIALLY_REFUNDED", "FULLY_REFUNDED"];

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let order = as_object(payload, path)?;
    if order.contains_key("orders") && !order.contains_key("orderId") {
        return Err(unsupported(
            path,
            "a getOrders page holds many orders; publish one record per element of orders[]",
        ));
    }
    let order_id = required_id(order, "orderId", "order id", path)?;
    let payment = as_str(
        required(order, "orderPaymentStatus", path)?,
        &path.key("orderPaymentStatus"),
    )?;
    let paid = PAID_STATUSES.contains(&payment);
    let cancelled = cancel_state(order, path)?.is_some_and(|state| state == "CANCELED");
    let placed_at = optional_timestamp(order, "creationDate", path)?;
    let already_shipped =
        optional_str(order, "orderFulfillmentStatus", path)?.is_some_and(|s| s == "FULFILLED");
    let summary_path = path.key("pricingSummary");
    let total = match get(order, "pricingSummary") {
        Some(summary) => optional_money(
            as_object(summary, &summary_path)?,
            "total",
            "value",
            "currency",
            &summary_path,
        )?,
        None => None,
    };

    let items_path = path.key("lineItems");
    let items = as_array(required(order, "lineItems", path)?, &items_path)?;
    let mut lines = LineSet::with_len(items.len(), &items_path)?;
    for (i, item) in items.iter().enumerate() {
        let item_path = items_path.index(i);
        let item = as_object(item, &item_path)?;
        let line_id = required_id(item, "lineItemId", "line item id", &item_path)?;
        let quantity = required_quantity(item, "quantity", 1, &item_path)?;
        let Some(sku) = optional_sku(item, "sku", &item_path)? else {
            let skipped = SkippedLine {
                line_id,
                sku: None,
                quantity,
                reason: SkipReason::NO_SKU,
            };
            lines.skip(skipped, &item_path)?;
            continue;
        };
        let mut line = RawLine::new(line_id, sku, quantity, quantity);
        line.fulfilled_by = fulfilled_by(item, &item_path)?;
        if optional_str(item, "lineItemFulfillmentStatus", &item_path)? == Some("FULFILLED") {
            line.shipped = quantity;
        }
        if let Some(cost) = optional_money(item, "lineItemCost", "value", "currency", &item_path)? {
            line.line_total = Some(cost.amount);
            line.currency = Some(cost.currency);
        }
        lines.push(line, &item_path)?;
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
    if let Some(total) = total {
        parsed.total = Some(total.amount);
        parsed.currency = Some(total.currency);
    }
    Ok(parsed)
}

/// `cancelStatus.cancelState`, when present.
fn cancel_state<'v>(
    order: &'v Map<String, Value>,
    path: &Path<'_>,
) -> Result<Option<&'v str>, AdapterError> {
    let Some(status) = get(order, "cancelStatus") else {
        return Ok(None);
    };
    let status_path = path.key("cancelStatus");
    optional_str(
        as_object(status, &status_path)?,
        "cancelState",
        &status_path,
    )
}

/// `MARKETPLACE` when `program.fulfillmentProgram.fulfilledBy` is `EBAY`.
fn fulfilled_by(item: &Map<String, Value>, path: &Path<'_>) -> Result<FulfilledBy, AdapterError> {
    let Some(program) = get(item, "program") else {
        return Ok(FulfilledBy::MERCHANT);
    };
    let program_path = path.key("program");
    let program = as_object(program, &program_path)?;
    let Some(fulfillment) = get(program, "fulfillmentProgram") else {
        return Ok(FulfilledBy::MERCHANT);
    };
    let fulfillment_path = program_path.key("fulfillmentProgram");
    let fulfillment = as_object(fulfillment, &fulfillment_path)?;
    Ok(
        match optional_str(fulfillment, "fulfilledBy", &fulfillment_path)? {
            Some("EBAY") => FulfilledBy::MARKETPLACE,
            _ => FulfilledBy::MERCHANT,
        },
    )
}
