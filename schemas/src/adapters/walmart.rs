//! Walmart Marketplace purchase orders.
//!
//! # Accepted payloads
//!
//! One purchase order, as returned by `GET /v3/orders/{purchaseOrderId}` (`{"order": {…}}`) or
//! bare (`{"purchaseOrderId": …}`, e.g. one element of a getAllOrders page's
//! `list.elements.order[]`, or the order object of an acknowledge or cancel response). A whole
//! getAllOrders page is refused as `unsupported_payload`: publish one record per purchase order.
//!
//! # Fields read
//!
//! | order field | from |
//! |---|---|
//! | `channel_order_id` | `purchaseOrderId` |
//! | `paid` | always true: Walmart charges the buyer before it releases a purchase order to the seller |
//! | `cancelled` | every line is cancelled |
//! | `placed_at` | `orderDate` (epoch ms) |
//! | line `line_id` | `lineNumber` (unique within the purchase order) |
//! | line `sku` | `item.sku` |
//! | line `quantity` | `orderLineQuantity.amount` (a decimal string such as `"1"`) minus the units whose `orderLineStatuses.orderLineStatus[].status` is `Cancelled` |
//! | line `fulfilled_by` | the order's `shipNode.type`: `WFSFulfilled` (Walmart Fulfillment Services) → `MARKETPLACE`; `SellerFulfilled`, `3PLFulfilled` (the seller's own third-party warehouse) or absent → `MERCHANT` |
//! | line `shipped_quantity` | units of `Shipped` and `Delivered` status entries |
//! | line `line_total`, `currency` | the `PRODUCT` entry of `charges.charge[]`: `chargeAmount.amount` (the line's product charge; Walmart writes it as a JSON number, read from its own digits) and `chargeAmount.currency`; the unit price is derived when the division by the ordered quantity is exact |
//! | `already_shipped` | every live line's units are all `Shipped` or `Delivered` |
//!
//! Walmart purchase orders carry no order total and no test flag: `total` and `currency` stay
//! empty and `test` is false. `item.sku` stays required: a Walmart item is always a seller SKU.
//!
//! Line statuses: each status entry covers `statusQuantity.amount` units of the line (a
//! `Cancelled` entry without `statusQuantity` cancels the whole line). Fully cancelled lines of
//! an order that still has live lines are left out; partly cancelled lines keep their live
//! units. When every line is cancelled the order is cancelled and keeps its lines with their
//! ordered quantities.

use serde_json::{Map, Value};

use super::money::money_object;
use super::{
    as_array, as_object, as_str, check_quantity, get, invalid, optional_str, optional_timestamp,
    required, required_id, required_sku, unsupported, wrong_type, AdapterError, LineSet, Parsed,
    Path, RawLine,
};
use crate::model::FulfilledBy;

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let top = as_object(payload, path)?;
    if top.contains_key("list") {
        return Err(unsupported(
            path,
            "a getAllOrders page holds many purchase orders; publish one record per element of list.elements.order",
        ));
    }
    let wrapped_path = path.key("order");
    let (order, path) = match get(top, "order") {
        Some(inner) if !top.contains_key("purchaseOrderId") => {
            (as_object(inner, &wrapped_path)?, &wrapped_path)
        }
        _ => (top, path),
    };

    let order_id = required_id(order, "purchaseOrderId", "purchase order id", path)?;
    let placed_at = optional_timestamp(order, "orderDate", path)?;
    // Walmart's own released-orders example has `"shipNode": []`: no ship node.
    let fulfilled_by = match get(order, "shipNode") {
        Some(Value::Object(node)) => match optional_str(node, "type", &path.key("shipNode"))? {
            Some("WFSFulfilled") => FulfilledBy::MARKETPLACE,
            _ => FulfilledBy::MERCHANT,
        },
        _ => FulfilledBy::MERCHANT,
    };

    let order_lines_path = path.key("orderLines");
    let order_lines = as_object(required(order, "orderLines", path)?, &order_lines_path)?;
    let lines_path = order_lines_path.key("orderLine");
    let array = as_array(
        required(order_lines, "orderLine", &order_lines_path)?,
        &lines_path,
    )?;
    let mut lines = LineSet::with_len(array.len(), &lines_path)?;
    for (i, line) in array.iter().enumerate() {
        let line_path = lines_path.index(i);
        let line = as_object(line, &line_path)?;
        let line_id = required_id(line, "lineNumber", "line number", &line_path)?;
        let item_path = line_path.key("item");
        let item = as_object(required(line, "item", &line_path)?, &item_path)?;
        let sku = required_sku(item, "sku", &item_path)?;
        let quantity_path = line_path.key("orderLineQuantity");
        let quantity = as_object(
            required(line, "orderLineQuantity", &line_path)?,
            &quantity_path,
        )?;
        let ordered = amount(quantity, 1, &quantity_path)?;
        let cancelled = status_units(line, ordered, &["Cancelled"], &line_path)?;
        let remaining = ordered.saturating_sub(cancelled).max(0);
        let mut raw = RawLine::new(line_id, sku, ordered, remaining);
        raw.fulfilled_by = fulfilled_by;
        raw.shipped = status_units(line, ordered, &["Shipped", "Delivered"], &line_path)?;
        if let Some(charge) = product_charge(line, &line_path)? {
            raw.line_total = Some(charge.amount);
            raw.currency = Some(charge.currency);
        }
        lines.push(raw, &line_path)?;
    }

    let live: Vec<&RawLine> = lines.lines.iter().filter(|l| l.remaining > 0).collect();
    let already_shipped = !live.is_empty() && live.iter().all(|l| l.shipped >= l.remaining);
    let mut parsed = Parsed::new(order_id, true, false, placed_at, lines, lines_path.render());
    parsed.already_shipped = already_shipped;
    Ok(parsed)
}

/// The `PRODUCT` charge of a line, if it has one.
fn product_charge(
    line: &Map<String, Value>,
    path: &Path<'_>,
) -> Result<Option<super::money::Money>, AdapterError> {
    let Some(charges) = get(line, "charges") else {
        return Ok(None);
    };
    let charges_path = path.key("charges");
    let charges = as_object(charges, &charges_path)?;
    let list_path = charges_path.key("charge");
    let Some(list) = get(charges, "charge") else {
        return Ok(None);
    };
    for (i, charge) in as_array(list, &list_path)?.iter().enumerate() {
        let charge_path = list_path.index(i);
        let charge = as_object(charge, &charge_path)?;
        if optional_str(charge, "chargeType", &charge_path)? != Some("PRODUCT") {
            continue;
        }
        let amount_path = charge_path.key("chargeAmount");
        let amount = as_object(
            required(charge, "chargeAmount", &charge_path)?,
            &amount_path,
        )?;
        return money_object(amount, "amount", "currency", &amount_path).map(Some);
    }
    Ok(None)
}

/// Units of a line covered by status entries named in `names` (at most `ordered`); an entry
/// without `statusQuantity` covers the whole line.
fn status_units(
    line: &Map<String, Value>,
    ordered: i64,
    names: &[&str],
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    let statuses_path = path.key("orderLineStatuses");
    let Some(statuses) = get(line, "orderLineStatuses") else {
        return Ok(0);
    };
    let statuses = as_object(statuses, &statuses_path)?;
    let list_path = statuses_path.key("orderLineStatus");
    let Some(list) = get(statuses, "orderLineStatus") else {
        return Ok(0);
    };
    let list = as_array(list, &list_path)?;
    let mut cancelled: i64 = 0;
    for (i, status) in list.iter().enumerate() {
        let status_path = list_path.index(i);
        let status = as_object(status, &status_path)?;
        let name = as_str(
            required(status, "status", &status_path)?,
            &status_path.key("status"),
        )?;
        if !names.contains(&name) {
            continue;
        }
        let units = match get(status, "statusQuantity") {
            Some(quantity) => {
                let quantity_path = status_path.key("statusQuantity");
                amount(as_object(quantity, &quantity_path)?, 0, &quantity_path)?
            }
            None => ordered,
        };
        cancelled = cancelled.saturating_add(units);
    }
    Ok(cancelled.min(ordered))
}

/// The `amount` of a Walmart quantity object: a decimal string (`"1"`, also `"1.0"`) or an
/// integer, in `min..=MAX_QUANTITY`.
fn amount(quantity: &Map<String, Value>, min: i64, path: &Path<'_>) -> Result<i64, AdapterError> {
    let at = path.key("amount");
    let value = required(quantity, "amount", path)?;
    let units = match value {
        Value::String(s) => parse_units(s).ok_or_else(|| {
            let shown: String = s.chars().take(32).collect();
            invalid(&at, format!("{shown:?} is not a whole number of units"))
        })?,
        Value::Number(_) => super::as_int(value, &at)?,
        other => return Err(wrong_type(&at, "string or integer", other)),
    };
    check_quantity(units, min, &at)
}

/// `"12"` or `"12.0"` → 12. Numbers too large for `i64` saturate (and fail the range check).
fn parse_units(s: &str) -> Option<i64> {
    let whole = match s.split_once('.') {
        Some((whole, fraction)) if !fraction.is_empty() && fraction.bytes().all(|b| b == b'0') => {
            whole
        }
        Some(_) => return None,
        None => s,
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(whole.bytes().fold(0_i64, |n, b| {
        n.saturating_mul(10).saturating_add(i64::from(b - b'0'))
    }))
}

#[cfg(test)]
mod tests {
    use super::parse_units;

    #[test]
    fn units() {
        assert_eq!(parse_units("1"), Some(1));
        assert_eq!(parse_units("12.00"), Some(12));
        assert_eq!(parse_units("99999999999999999999999"), Some(i64::MAX));
        assert_eq!(parse_units(""), None);
        assert_eq!(parse_units("1.5"), None);
        assert_eq!(parse_units("1."), None);
        assert_eq!(parse_units("-1"), None);
        assert_eq!(parse_units(" 1"), None);
        assert_eq!(parse_units("one"), None);
    }
}
