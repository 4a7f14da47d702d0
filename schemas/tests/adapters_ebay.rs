//! The eBay Fulfillment API adapter on the fixtures in `tests/fixtures/ebay` (written from eBay's
//! published field definitions; see the SOURCES.md next to them).

mod adapters_support;

use adapters_support::{envelope, json_files, project_fixtures, read_json};
use serde_json::{json, Value};
use shelfsync_schemas::adapters::{normalize, to_order, AdapterError, AdapterKind};
use shelfsync_schemas::{FulfilledBy, Order, SkipReason};

fn load(name: &str) -> Value {
    read_json(&project_fixtures().join("ebay").join(name))
}

fn parse(payload: Value) -> Result<Order, AdapterError> {
    to_order(AdapterKind::Ebay, "ebay", &envelope("ebay", payload))
}

fn ok(name: &str) -> Order {
    parse(load(name)).unwrap_or_else(|e| panic!("{name} refused: {e}"))
}

/// `(line_id, sku, quantity, fulfilled_by, shipped, unit_price, line_total, currency)`.
type Line<'a> = (
    &'a str,
    &'a str,
    i64,
    FulfilledBy,
    i64,
    Option<&'a str>,
    Option<&'a str>,
);

fn lines(order: &Order) -> Vec<Line<'_>> {
    order
        .lines
        .iter()
        .map(|l| {
            assert_eq!(l.currency.as_deref(), Some("USD"), "{}", l.line_id);
            (
                l.line_id.as_str(),
                l.sku.as_str(),
                l.quantity,
                l.fulfilled_by,
                l.shipped_quantity,
                l.unit_price.as_deref(),
                l.line_total.as_deref(),
            )
        })
        .collect()
}

use FulfilledBy::{MARKETPLACE, MERCHANT};

const MUG: Line<'static> = (
    "10071234567801",
    "MUG-BLUE-350",
    2,
    MERCHANT,
    0,
    Some("14.99"),
    Some("29.98"),
);
const TEA: Line<'static> = (
    "10071234567802",
    "TEA-EARLGREY-100G",
    1,
    MERCHANT,
    0,
    Some("34.99"),
    Some("34.99"),
);

#[test]
fn every_ebay_fixture_is_asserted_and_sourced() {
    let dir = project_fixtures().join("ebay");
    assert!(
        dir.join("SOURCES.md").is_file(),
        "the fixtures name their source"
    );
    assert_eq!(
        json_files(&dir),
        [
            "getOrder-cancel-requested.json",
            "getOrder-canceled.json",
            "getOrder-fulfilled-by-ebay-and-no-sku.json",
            "getOrder-paid-not-started.json",
            "getOrder-pending-payment.json",
            "getOrders-page.json",
        ],
        "a new fixture needs a test below"
    );
}

#[test]
fn a_paid_order_not_yet_shipped() {
    let order = ok("getOrder-paid-not-started.json");
    assert_eq!(order.key(), "ebay:27-11839-30512");
    assert!(order.paid && !order.cancelled && !order.already_shipped && !order.test);
    assert_eq!(
        order.placed_at, 1_772_460_311_000,
        "2026-03-02T14:05:11.000Z"
    );
    assert_eq!(lines(&order), vec![MUG, TEA]);
    assert_eq!(order.total.as_deref(), Some("70.96"));
    assert_eq!(order.currency.as_deref(), Some("USD"));
    assert!(order.skipped_lines.is_empty());
}

#[test]
fn a_requested_cancellation_is_not_a_cancellation() {
    let order = ok("getOrder-cancel-requested.json");
    assert!(
        !order.cancelled,
        "cancelState CANCEL_REQUESTED waits for the seller"
    );
    assert!(order.paid);
    assert_eq!(lines(&order), vec![MUG, TEA]);
    let mut in_progress = load("getOrder-cancel-requested.json");
    in_progress["cancelStatus"]["cancelState"] = json!("IN_PROGRESS");
    assert!(!parse(in_progress).map(|o| o.cancelled).unwrap_or(true));
}

#[test]
fn a_cancelled_order_keeps_its_lines() {
    let order = ok("getOrder-canceled.json");
    assert!(order.cancelled, "cancelState CANCELED");
    assert!(order.paid, "FULLY_REFUNDED was paid");
    assert_eq!(lines(&order), vec![MUG, TEA]);
}

#[test]
fn a_pending_payment_is_not_paid() {
    let order = ok("getOrder-pending-payment.json");
    assert!(!order.paid && !order.cancelled);
    assert_eq!(lines(&order), vec![MUG]);
    assert_eq!(order.total.as_deref(), Some("35.97"));
    let mut failed = load("getOrder-pending-payment.json");
    failed["orderPaymentStatus"] = json!("FAILED");
    assert!(!parse(failed).map(|o| o.paid).unwrap_or(true));
}

#[test]
fn an_order_shipped_by_ebay_with_a_listing_without_sku() {
    let order = ok("getOrder-fulfilled-by-ebay-and-no-sku.json");
    assert!(order.already_shipped, "orderFulfillmentStatus FULFILLED");
    assert_eq!(
        lines(&order),
        vec![(
            "10071234567801",
            "MUG-BLUE-350",
            2,
            MARKETPLACE,
            2,
            Some("14.99"),
            Some("29.98")
        )],
        "program.fulfillmentProgram.fulfilledBy EBAY; FULFILLED line"
    );
    let skipped: Vec<(&str, Option<&str>, i64, SkipReason)> = order
        .skipped_lines
        .iter()
        .map(|s| (s.line_id.as_str(), s.sku.as_deref(), s.quantity, s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![("10071234567802", None, 1, SkipReason::NO_SKU)]
    );
}

#[test]
fn a_getorders_page_is_refused_and_each_element_parses() {
    let page = load("getOrders-page.json");
    let err = parse(page.clone())
        .err()
        .map(|e| (e.kind(), e.path().map(str::to_owned)));
    assert_eq!(
        err,
        Some(("unsupported_payload", Some("payload".to_owned())))
    );
    let orders: Vec<(String, bool)> = page["orders"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .map(|o| parse(o).map(|o| (o.channel_order_id, o.paid)))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        orders,
        [
            ("27-11839-30512".to_owned(), true),
            ("27-11839-30515".to_owned(), false)
        ]
    );
}

#[test]
fn malformed_ebay_orders_name_the_field() {
    let cases = [
        ("orderId", Value::Null, "missing_field", "payload.orderId"),
        (
            "orderPaymentStatus",
            json!(1),
            "wrong_type",
            "payload.orderPaymentStatus",
        ),
        ("lineItems", json!({}), "wrong_type", "payload.lineItems"),
        (
            "creationDate",
            json!("yesterday"),
            "invalid_field",
            "payload.creationDate",
        ),
        (
            "pricingSummary",
            json!({"total": {"value": "1,00", "currency": "USD"}}),
            "invalid_field",
            "payload.pricingSummary.total.value",
        ),
    ];
    for (field, value, kind, path) in cases {
        let mut order = load("getOrder-paid-not-started.json");
        order[field] = value;
        let err = parse(order)
            .err()
            .unwrap_or_else(|| panic!("{field} accepted"));
        assert_eq!((err.kind(), err.path()), (kind, Some(path)), "{field}");
    }
    let mut order = load("getOrder-paid-not-started.json");
    order["lineItems"][1]["quantity"] = json!(0);
    let err = parse(order).err().map(|e| e.path().map(str::to_owned));
    assert_eq!(err, Some(Some("payload.lineItems[1].quantity".to_owned())));
}

#[test]
fn an_ebay_channel_normalizes_through_its_adapter() {
    let record = json!({
        "channel": "ebay-us", "delivery_id": "ebay-poll-1", "received_at": 1_772_460_400_000_i64,
        "payload": load("getOrder-paid-not-started.json"),
    });
    let bytes = serde_json::to_vec(&record).unwrap_or_default();
    let order = normalize(&bytes, |c| (c == "ebay-us").then_some(AdapterKind::Ebay))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order.key(), "ebay-us:27-11839-30512");
    assert_eq!("ebay".parse::<AdapterKind>().ok(), Some(AdapterKind::Ebay));
}
