//! Amazon Selling Partner API orders.
//!
//! # Accepted payloads
//!
//! 1. **Combined getOrder + getOrderItems** (Orders API v0), what shelfsync's Amazon poller
//!    publishes: one getOrder call and the getOrderItems call(s) for the same order, side by side:
//!
//!    ```json
//!    {"order": {"payload": {"AmazonOrderId": "902-1845936-5435065", "OrderStatus": "Unshipped",
//!                           "PurchaseDate": "2024-05-07T15:42:57Z", "...": "..."}},
//!     "items": {"payload": {"AmazonOrderId": "902-1845936-5435065",
//!                           "OrderItems": [{"OrderItemId": "05015851154158",
//!                                           "SellerSKU": "MUG-BLUE", "QuantityOrdered": 1}]}}}
//!    ```
//!
//!    `order` and each `items` page may be the whole API response (`{"payload": …}`) or just its
//!    `payload`. When getOrderItems is paginated, `items` is the array of every page in order;
//!    the last page must not carry a `NextToken` (a cut-short item list would under-reserve the
//!    order, so it is refused as `inconsistent_payload`). An `AmazonOrderId` on an items page
//!    must equal the order's.
//! 2. **An `ORDER_CHANGE` notification** (the SQS message body): the order comes from
//!    `Payload.OrderChangeNotification` (`AmazonOrderId`, `Summary.OrderStatus`,
//!    `Summary.PurchaseDate`, `Summary.OrderItems[]` with `OrderItemId`, `SellerSKU`, `Quantity`,
//!    `OrderItemStatus`). The summary is taken to list every item of the order.
//! 3. **An Orders API v2026-01-01 getOrder response** (`{"order": {"orderId", "createdTime",
//!    "fulfillment": {"fulfillmentStatus"}, "orderItems": [{"orderItemId", "quantityOrdered",
//!    "product": {"sellerSku"}}]}}`), requested with `includedData=FULFILLMENT` so that the
//!    status is there.
//!
//! The deprecated `ORDER_STATUS_CHANGE` notification is refused as `unsupported_payload`: it
//! describes one order item, so reading it as an order would make every other item of the order
//! look removed. So are getOrders pages (orders without items) and other notification types.
//!
//! # Status mapping
//!
//! `OrderStatus` `Canceled` → cancelled. Paid when the status is `Unshipped`,
//! `PartiallyShipped`, `Shipped` or `InvoiceUnconfirmed`: Amazon moves an order out of
//! `Pending` once payment is authorized. `Pending`, `PendingAvailability` (pre-orders),
//! `Unfulfillable` and unknown statuses are not paid. v2026-01-01 uses the same states in
//! upper snake case (`UNSHIPPED`, `CANCELLED`, …).
//!
//! # Fulfilment, shipping and money
//!
//! | field | v0 getOrder + getOrderItems | `ORDER_CHANGE` | v2026-01-01 |
//! |---|---|---|---|
//! | line `fulfilled_by` | `FulfillmentChannel` `AFN` → `MARKETPLACE` (FBA), `MFN` or absent → `MERCHANT` | `Summary.FulfillmentType` (same values) | `fulfillment.fulfilledBy` `AMAZON` → `MARKETPLACE`, else `MERCHANT` |
//! | line `shipped_quantity` | `QuantityShipped` | `QuantityShipped` | `fulfillment.quantityFulfilled` |
//! | line prices | `ItemPrice` is the price of the whole line (Amazon: selling price × quantity ordered) → `line_total`; the unit price is derived when the division is exact | none | `product.price.unitPrice` → `unit_price` |
//! | `already_shipped` | `OrderStatus` `Shipped` or `InvoiceUnconfirmed` | `Summary.OrderStatus` (same) | `fulfillmentStatus` `SHIPPED` |
//! | `currency`, `total` | `OrderTotal` | none | `proceeds.grandTotal` |
//!
//! Amazon payloads have no test-order flag (sandbox calls return the same shapes), so `test` is
//! always false. `SellerSKU` stays required: every Amazon order item is a listing of the
//! seller's, which always has a seller SKU.
//!
//! Items: Amazon reports items of a cancelled order, and cancelled items, with
//! `QuantityOrdered` 0, so 0 is accepted and means the item is gone. `BuyerRequestedCancel` is
//! only a request for the seller to act on and does not cancel anything.

use serde_json::{Map, Value};

use super::money::optional_money;
use super::{
    as_array, as_object, as_str, get, inconsistent, missing, optional_str, optional_timestamp,
    required, required_id, required_quantity, required_sku, unsupported, AdapterError, LineSet,
    Parsed, Path, RawLine,
};
use crate::model::FulfilledBy;

/// v0 `OrderStatus` values of an order whose payment is authorized.
const PAID_STATUSES: [&str; 4] = [
    "Unshipped",
    "PartiallyShipped",
    "Shipped",
    "InvoiceUnconfirmed",
];
/// v0 `OrderStatus` values of an order whose every item has shipped.
const SHIPPED_STATUSES: [&str; 2] = ["Shipped", "InvoiceUnconfirmed"];
/// v2026-01-01 `fulfillmentStatus` values of an order whose payment is authorized.
const PAID_STATUSES_2026: [&str; 3] = ["UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED"];

const SHAPES: &str =
    "expected {\"order\": getOrder, \"items\": getOrderItems}, an ORDER_CHANGE notification \
                      or an Orders API 2026-01-01 getOrder response";

pub(super) fn parse(payload: &Value, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let top = as_object(payload, path)?;
    if let Some(kind) = get(top, "NotificationType") {
        return notification(top, kind, path);
    }
    if top.contains_key("items") {
        return combined(top, path);
    }
    if let Some(order) = get(top, "order") {
        let order_path = path.key("order");
        let order = as_object(order, &order_path)?;
        if order.contains_key("orderId") {
            return v2026(order, &order_path);
        }
        // A getOrder response without its items.
        return Err(missing(&path.key("items")));
    }
    if let Some(inner) = get(top, "payload").and_then(Value::as_object) {
        if inner.contains_key("Orders") {
            return Err(unsupported(
                path,
                format!("a getOrders page lists orders without their items; {SHAPES}"),
            ));
        }
        if inner.contains_key("AmazonOrderId") {
            return Err(unsupported(
                path,
                format!("a lone getOrder or getOrderItems response does not describe a whole order; {SHAPES}"),
            ));
        }
    }
    Err(unsupported(path, SHAPES))
}

/// `(paid, cancelled)` for a v0 `OrderStatus`.
fn v0_status(status: &str) -> (bool, bool) {
    (
        PAID_STATUSES.contains(&status),
        status == "Canceled" || status == "Cancelled",
    )
}

/// An API response object or its `payload`: `{"payload": {...}}` → `{...}`.
fn unwrap_payload<'v, 'p>(
    object: &'v Map<String, Value>,
    path: &'p Path<'p>,
    payload_path: &'p Path<'p>,
) -> Result<(&'v Map<String, Value>, &'p Path<'p>), AdapterError> {
    match get(object, "payload") {
        Some(inner) => Ok((as_object(inner, payload_path)?, payload_path)),
        None => Ok((object, path)),
    }
}

fn combined(top: &Map<String, Value>, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let order_path = path.key("order");
    let order_payload_path = order_path.key("payload");
    let order = as_object(required(top, "order", path)?, &order_path)?;
    let (order, op) = unwrap_payload(order, &order_path, &order_payload_path)?;
    let order_id = required_id(order, "AmazonOrderId", "order id", op)?;
    let status = as_str(required(order, "OrderStatus", op)?, &op.key("OrderStatus"))?;
    let (paid, cancelled) = v0_status(status);
    let already_shipped = SHIPPED_STATUSES.contains(&status);
    let placed_at = optional_timestamp(order, "PurchaseDate", op)?;
    let fulfilled_by = fulfilled_by_channel(order, "FulfillmentChannel", op)?;
    let order_total = optional_money(order, "OrderTotal", "Amount", "CurrencyCode", op)?;

    let items_path = path.key("items");
    let items = required(top, "items", path)?;
    let paged = items.is_array();
    let pages = match items {
        Value::Array(pages) => pages.as_slice(),
        single => std::slice::from_ref(single),
    };
    let total: usize = pages
        .iter()
        .map(|page| page_items(page).map_or(0, <[Value]>::len))
        .sum();
    let mut lines = LineSet::with_len(total, &items_path)?;
    let mut lines_path = items_path.render();
    for (p, page) in pages.iter().enumerate() {
        let indexed = items_path.index(p);
        let page_path = if paged { &indexed } else { &items_path };
        let page_payload_path = page_path.key("payload");
        let page = as_object(page, page_path)?;
        let (page, pp) = unwrap_payload(page, page_path, &page_payload_path)?;
        if let Some(id) = get(page, "AmazonOrderId") {
            let at = pp.key("AmazonOrderId");
            if as_str(id, &at)? != order_id {
                return Err(inconsistent(
                    &at,
                    format!("items belong to another order than {order_id:?}"),
                ));
            }
        }
        let is_last = p + 1 == pages.len();
        if is_last && optional_str(page, "NextToken", pp)?.is_some_and(|token| !token.is_empty()) {
            return Err(inconsistent(
                &pp.key("NextToken"),
                "the item list is incomplete (NextToken present); the poller must fetch every getOrderItems page",
            ));
        }
        let array_path = pp.key("OrderItems");
        let array = as_array(required(page, "OrderItems", pp)?, &array_path)?;
        lines_path = array_path.render();
        for (i, item) in array.iter().enumerate() {
            let item_path = array_path.index(i);
            let item = as_object(item, &item_path)?;
            let line_id = required_id(item, "OrderItemId", "order item id", &item_path)?;
            let sku = required_sku(item, "SellerSKU", &item_path)?;
            let quantity = required_quantity(item, "QuantityOrdered", 0, &item_path)?;
            let mut line = RawLine::new(line_id, sku, quantity, quantity);
            line.fulfilled_by = fulfilled_by;
            line.shipped = optional_units(item, "QuantityShipped", &item_path)?;
            if let Some(price) =
                optional_money(item, "ItemPrice", "Amount", "CurrencyCode", &item_path)?
            {
                line.line_total = Some(price.amount);
                line.currency = Some(price.currency);
            }
            lines.push(line, &item_path)?;
        }
    }
    let mut parsed = Parsed::new(order_id, paid, cancelled, placed_at, lines, lines_path);
    parsed.already_shipped = already_shipped;
    if let Some(total) = order_total {
        parsed.total = Some(total.amount);
        parsed.currency = Some(total.currency);
    }
    Ok(parsed)
}

/// `MARKETPLACE` when the field (`FulfillmentChannel`, `FulfillmentType`) is `AFN`.
fn fulfilled_by_channel(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<FulfilledBy, AdapterError> {
    Ok(match optional_str(map, key, path)? {
        Some("AFN") => FulfilledBy::MARKETPLACE,
        _ => FulfilledBy::MERCHANT,
    })
}

/// An optional unit count (0 when absent), in `0..=MAX_QUANTITY`.
fn optional_units(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    if get(map, key).is_none() {
        return Ok(0);
    }
    required_quantity(map, key, 0, path)
}

/// The `OrderItems` array of a getOrderItems page, if it has the expected shape (for counting).
fn page_items(page: &Value) -> Option<&[Value]> {
    let page = page.as_object()?;
    let page = match page.get("payload") {
        Some(inner) => inner.as_object()?,
        None => page,
    };
    page.get("OrderItems")?.as_array().map(Vec::as_slice)
}

fn notification(
    top: &Map<String, Value>,
    kind: &Value,
    path: &Path<'_>,
) -> Result<Parsed, AdapterError> {
    let kind_path = path.key("NotificationType");
    match as_str(kind, &kind_path)? {
        "ORDER_CHANGE" => {}
        "ORDER_STATUS_CHANGE" => {
            return Err(unsupported(
                &kind_path,
                "the deprecated ORDER_STATUS_CHANGE notification describes a single order item, not the whole \
                 order; subscribe to ORDER_CHANGE",
            ))
        }
        other => {
            let shown: String = other.chars().take(64).collect();
            return Err(unsupported(&kind_path, format!("{shown:?} notifications do not describe orders; {SHAPES}")));
        }
    }
    let payload_path = path.key("Payload");
    let payload = as_object(required(top, "Payload", path)?, &payload_path)?;
    let change_path = payload_path.key("OrderChangeNotification");
    let change = as_object(
        required(payload, "OrderChangeNotification", &payload_path)?,
        &change_path,
    )?;
    let order_id = required_id(change, "AmazonOrderId", "order id", &change_path)?;
    let summary_path = change_path.key("Summary");
    let summary = as_object(required(change, "Summary", &change_path)?, &summary_path)?;
    let status = as_str(
        required(summary, "OrderStatus", &summary_path)?,
        &summary_path.key("OrderStatus"),
    )?;
    let (paid, cancelled) = v0_status(status);
    let already_shipped = SHIPPED_STATUSES.contains(&status);
    let placed_at = optional_timestamp(summary, "PurchaseDate", &summary_path)?;
    let fulfilled_by = fulfilled_by_channel(summary, "FulfillmentType", &summary_path)?;

    let items_path = summary_path.key("OrderItems");
    let items = as_array(required(summary, "OrderItems", &summary_path)?, &items_path)?;
    let mut lines = LineSet::with_len(items.len(), &items_path)?;
    for (i, item) in items.iter().enumerate() {
        let item_path = items_path.index(i);
        let item = as_object(item, &item_path)?;
        let line_id = required_id(item, "OrderItemId", "order item id", &item_path)?;
        let sku = required_sku(item, "SellerSKU", &item_path)?;
        let ordered = required_quantity(item, "Quantity", 0, &item_path)?;
        let item_cancelled = optional_str(item, "OrderItemStatus", &item_path)?
            .is_some_and(|s| s == "Canceled" || s == "Cancelled");
        let remaining = if item_cancelled { 0 } else { ordered };
        let mut line = RawLine::new(line_id, sku, ordered, remaining);
        line.fulfilled_by = fulfilled_by;
        line.shipped = optional_units(item, "QuantityShipped", &item_path)?;
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
    Ok(parsed)
}

fn v2026(order: &Map<String, Value>, path: &Path<'_>) -> Result<Parsed, AdapterError> {
    let order_id = required_id(order, "orderId", "order id", path)?;
    let placed_at = optional_timestamp(order, "createdTime", path)?;
    let fulfillment_path = path.key("fulfillment");
    let fulfillment = as_object(required(order, "fulfillment", path)?, &fulfillment_path)?;
    let status = as_str(
        required(fulfillment, "fulfillmentStatus", &fulfillment_path)?,
        &fulfillment_path.key("fulfillmentStatus"),
    )?;
    let paid = PAID_STATUSES_2026.contains(&status);
    let cancelled = status == "CANCELLED";
    let fulfilled_by = match optional_str(fulfillment, "fulfilledBy", &fulfillment_path)? {
        Some("AMAZON") => FulfilledBy::MARKETPLACE,
        _ => FulfilledBy::MERCHANT,
    };
    let proceeds_path = path.key("proceeds");
    let grand_total = match get(order, "proceeds") {
        Some(proceeds) => optional_money(
            as_object(proceeds, &proceeds_path)?,
            "grandTotal",
            "amount",
            "currencyCode",
            &proceeds_path,
        )?,
        None => None,
    };

    let items_path = path.key("orderItems");
    let items = as_array(required(order, "orderItems", path)?, &items_path)?;
    let mut lines = LineSet::with_len(items.len(), &items_path)?;
    for (i, item) in items.iter().enumerate() {
        let item_path = items_path.index(i);
        let item = as_object(item, &item_path)?;
        let line_id = required_id(item, "orderItemId", "order item id", &item_path)?;
        let quantity = required_quantity(item, "quantityOrdered", 0, &item_path)?;
        let product_path = item_path.key("product");
        let product = as_object(required(item, "product", &item_path)?, &product_path)?;
        let sku = required_sku(product, "sellerSku", &product_path)?;
        let mut line = RawLine::new(line_id, sku, quantity, quantity);
        line.fulfilled_by = fulfilled_by;
        let item_fulfillment_path = item_path.key("fulfillment");
        if let Some(item_fulfillment) = get(item, "fulfillment") {
            let item_fulfillment = as_object(item_fulfillment, &item_fulfillment_path)?;
            line.shipped = optional_units(
                item_fulfillment,
                "quantityFulfilled",
                &item_fulfillment_path,
            )?;
        }
        let price_path = product_path.key("price");
        if let Some(price) = get(product, "price") {
            let price = as_object(price, &price_path)?;
            if let Some(unit) =
                optional_money(price, "unitPrice", "amount", "currencyCode", &price_path)?
            {
                line.unit_price = Some(unit.amount);
                line.currency = Some(unit.currency);
            }
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
    parsed.already_shipped = status == "SHIPPED";
    if let Some(total) = grand_total {
        parsed.total = Some(total.amount);
        parsed.currency = Some(total.currency);
    }
    Ok(parsed)
}
