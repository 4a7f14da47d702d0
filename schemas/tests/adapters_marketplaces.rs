//! The marketplaces' own published example payloads (shared/fixtures/marketplaces, see its
//! SOURCES.md) through the adapters, with their values asserted.
//!
//! Every file of that folder must be listed in `ORDER_FILES` or `NOT_ORDERS` below, so that a new
//! example cannot be added without deciding what the adapters should do with it.

mod adapters_support;

use std::path::{Path, PathBuf};

use adapters_support::{envelope, json_files, read_json, shared_fixtures};
use serde_json::{json, Value};
use shelfsync_schemas::adapters::{to_order, AdapterError, AdapterKind};
use shelfsync_schemas::Order;

/// Files that are (parts of) order payloads; each is asserted by a test below.
const ORDER_FILES: &[&str] = &[
    "amazon-ORDER_CHANGE-notification.json",
    "amazon-ORDER_STATUS_CHANGE-notification-deprecated.json",
    "amazon-getOrder-2026-01-01-response-example.json",
    "amazon-getOrder-response-example-pending.json",
    "amazon-getOrder-response-iba-afn-shipped.json",
    "amazon-getOrder-response.json",
    "amazon-getOrderItems-response-example-two-items.json",
    "amazon-getOrderItems-response.json",
    "amazon-getOrders-response-example-nexttoken.json",
    "amazon-getOrders-response.json",
    "shopify-orders-cancelled-webhook.json",
    "shopify-orders-create-webhook.json",
    "shopify-orders-updated-webhook.json",
    "shopify-rest-order-legacy-fixture.json",
    "walmart-acknowledgeOrders-response.json",
    "walmart-cancelOrderLines-response.json",
    "walmart-getAllOrders-response.json",
    "walmart-getAllReleasedOrders-response.json",
    "walmart-getAnOrder-response-replacement-order.json",
    "walmart-getAnOrder-response.json",
];

/// Inventory and listing messages: no adapter may take them for an order.
const NOT_ORDERS: &[&str] = &[
    "amazon-JSON_LISTINGS_FEED-example-fulfillment_availability.json",
    "amazon-LISTINGS_ITEM_MFN_QUANTITY_CHANGE-notification.json",
    "amazon-patchListingsItem-merge-fulfillment_availability-request.json",
    "shopify-inventorySetQuantities-request.json",
    "shopify-inventorySetQuantities-response.json",
    "walmart-updateInventoryForAnItem-request.json",
];

fn dir() -> Option<PathBuf> {
    shared_fixtures()
}

fn load(dir: &Path, name: &str) -> Value {
    read_json(&dir.join(name))
}

fn parse(kind: AdapterKind, payload: Value) -> Result<Order, AdapterError> {
    to_order(kind, kind.as_str(), &envelope(kind.as_str(), payload))
}

fn ok(kind: AdapterKind, payload: Value) -> Order {
    parse(kind, payload).unwrap_or_else(|e| panic!("{kind} payload refused: {e}"))
}

fn err_kind(kind: AdapterKind, payload: Value) -> (&'static str, String) {
    match parse(kind, payload) {
        Ok(order) => panic!("{kind} payload accepted as {order:?}"),
        Err(e) => (e.kind(), e.path().unwrap_or("").to_owned()),
    }
}

/// `(line_id, sku, quantity)` of each line.
fn lines(order: &Order) -> Vec<(&str, &str, i64)> {
    order
        .lines
        .iter()
        .map(|l| (l.line_id.as_str(), l.sku.as_str(), l.quantity))
        .collect()
}

#[test]
fn every_marketplace_fixture_is_classified() {
    let Some(dir) = dir() else { return };
    let files = json_files(&dir);
    assert!(!files.is_empty(), "no fixtures in {}", dir.display());
    for name in &files {
        assert!(
            ORDER_FILES.contains(&name.as_str()) || NOT_ORDERS.contains(&name.as_str()),
            "{name} is new: add it to ORDER_FILES (with assertions) or NOT_ORDERS in {}",
            file!()
        );
    }
    for name in ORDER_FILES.iter().chain(NOT_ORDERS) {
        assert!(
            files.iter().any(|f| f == name),
            "{name} is listed but missing from {}",
            dir.display()
        );
    }
}

#[test]
fn shopify_webhooks() {
    let Some(dir) = dir() else { return };
    for name in [
        "shopify-orders-create-webhook.json",
        "shopify-orders-updated-webhook.json",
        "shopify-orders-cancelled-webhook.json",
    ] {
        let order = ok(AdapterKind::Shopify, load(&dir, name));
        // Keyed on admin_graphql_api_id: `id` itself was rounded to 820982911946154500 (caveat 1).
        assert_eq!(order.channel_order_id, "820982911946154508", "{name}");
        assert_eq!(order.channel, "shopify");
        // Shopify's sample is `financial_status: "voided"` with `cancelled_at` set (caveat 2).
        assert!(!order.paid, "{name}");
        assert!(order.cancelled, "{name}");
        assert_eq!(
            order.placed_at, 1_640_995_200_000,
            "{name}: 2021-12-31T19:00:00-05:00"
        );
        assert_eq!(
            lines(&order),
            vec![
                ("487817672276298554", "SKU2006-001", 1),
                ("789012345678901234", "LENS-PROTECT-2YR", 1),
                ("890123456789012345", "CASE-LEATHER-PREM", 1),
                ("976318377106520349", "SKU2006-020", 1),
                ("315789986012684393", "SKU2006-035", 1),
            ],
            "{name}"
        );
        assert_eq!(order.delivery_id, "test-delivery");
        assert_eq!(order.received_at, 1_772_000_000_000);
    }
}

#[test]
fn shopify_webhook_without_graphql_ids_falls_back_to_rounded_integer_ids() {
    let Some(dir) = dir() else { return };
    let mut payload = load(&dir, "shopify-orders-create-webhook.json");
    strip_key(&mut payload, "admin_graphql_api_id");
    let order = ok(AdapterKind::Shopify, payload);
    // As published (rounded): parsed as a 64-bit integer, not compared with the GID.
    assert_eq!(order.channel_order_id, "820982911946154500");
    assert_eq!(order.lines.len(), 5);
    assert!(order.lines.iter().all(|l| l.line_id.parse::<u64>().is_ok()));
}

/// Removes `key` from every object of `value`, recursively.
fn strip_key(value: &mut Value, key: &str) {
    match value {
        Value::Object(map) => {
            map.remove(key);
            map.values_mut().for_each(|v| strip_key(v, key));
        }
        Value::Array(items) => items.iter_mut().for_each(|v| strip_key(v, key)),
        _ => {}
    }
}

#[test]
fn shopify_legacy_rest_order() {
    let Some(dir) = dir() else { return };
    let order = ok(
        AdapterKind::Shopify,
        load(&dir, "shopify-rest-order-legacy-fixture.json"),
    );
    assert_eq!(order.channel_order_id, "450789469");
    assert!(order.paid, "financial_status authorized counts as paid");
    assert!(!order.cancelled);
    assert_eq!(
        order.placed_at, 1_199_980_800_000,
        "2008-01-10T11:00:00-05:00"
    );
    assert_eq!(
        lines(&order),
        vec![
            ("466157049", "IPOD2008GREEN", 1),
            ("518995019", "IPOD2008RED", 1),
            ("703073504", "IPOD2008BLACK", 1)
        ]
    );
}

fn combined(order: Value, items: Value) -> Value {
    json!({"order": order, "items": items})
}

/// Sets the getOrderItems response's `AmazonOrderId` (to pair examples published for
/// different orders) and drops its `NextToken`.
fn items_for(mut items: Value, order_id: &str) -> Value {
    if let Some(payload) = items.get_mut("payload").and_then(Value::as_object_mut) {
        payload.insert("AmazonOrderId".into(), json!(order_id));
        payload.remove("NextToken");
    }
    items
}

#[test]
fn amazon_sandbox_order_with_its_items() {
    let Some(dir) = dir() else { return };
    // The sandbox getOrder and getOrderItems cases are the same order, 902-1845936-5435065.
    let payload = combined(
        load(&dir, "amazon-getOrder-response.json"),
        load(&dir, "amazon-getOrderItems-response.json"),
    );
    let order = ok(AdapterKind::Amazon, payload);
    assert_eq!(order.channel_order_id, "902-1845936-5435065");
    assert!(order.paid, "Unshipped is paid");
    assert!(!order.cancelled, "BuyerRequestedCancel is only a request");
    assert_eq!(
        order.placed_at, 1_569_510_000,
        "1970-01-19T03:58:30Z, as published"
    );
    assert_eq!(
        lines(&order),
        vec![("05015851154158", "NABetaASINB00551Q3CS", 1)]
    );
}

#[test]
fn amazon_bare_payload_objects_are_accepted_too() {
    let Some(dir) = dir() else { return };
    let order = load(&dir, "amazon-getOrder-response.json");
    let items = load(&dir, "amazon-getOrderItems-response.json");
    let payload = combined(order["payload"].clone(), json!([items["payload"].clone()]));
    let parsed = ok(AdapterKind::Amazon, payload);
    assert_eq!(parsed.channel_order_id, "902-1845936-5435065");
    assert_eq!(
        lines(&parsed),
        vec![("05015851154158", "NABetaASINB00551Q3CS", 1)]
    );
}

#[test]
fn amazon_pending_order_is_not_paid() {
    let Some(dir) = dir() else { return };
    let items = items_for(
        load(&dir, "amazon-getOrderItems-response.json"),
        "902-3159896-1390916",
    );
    let order = ok(
        AdapterKind::Amazon,
        combined(
            load(&dir, "amazon-getOrder-response-example-pending.json"),
            items,
        ),
    );
    assert_eq!(order.channel_order_id, "902-3159896-1390916");
    assert!(!order.paid);
    assert!(!order.cancelled);
    assert_eq!(order.placed_at, 1_484_941_775_000, "2017-01-20T19:49:35Z");
    assert_eq!(
        lines(&order),
        vec![("05015851154158", "NABetaASINB00551Q3CS", 1)]
    );
}

#[test]
fn amazon_shipped_order_with_two_items() {
    let Some(dir) = dir() else { return };
    let raw_items = load(&dir, "amazon-getOrderItems-response-example-two-items.json");
    let order_response = load(&dir, "amazon-getOrder-response-iba-afn-shipped.json");

    // As published, the two-item page is for another order and has a NextToken: both refused.
    let (kind, path) = err_kind(
        AdapterKind::Amazon,
        combined(order_response.clone(), raw_items.clone()),
    );
    assert_eq!(
        (kind, path.as_str()),
        (
            "inconsistent_payload",
            "payload.items.payload.AmazonOrderId"
        )
    );
    let mut same_order = raw_items.clone();
    same_order["payload"]["AmazonOrderId"] = json!("921-3175655-0452641");
    let (kind, path) = err_kind(
        AdapterKind::Amazon,
        combined(order_response.clone(), same_order),
    );
    assert_eq!(
        (kind, path.as_str()),
        ("inconsistent_payload", "payload.items.payload.NextToken")
    );

    let order = ok(
        AdapterKind::Amazon,
        combined(order_response, items_for(raw_items, "921-3175655-0452641")),
    );
    assert_eq!(order.channel_order_id, "921-3175655-0452641");
    assert!(order.paid, "Shipped is paid");
    assert!(!order.cancelled);
    assert_eq!(
        order.placed_at, 1_557_243_777_058,
        "2019-05-07T15:42:57.058Z"
    );
    assert_eq!(
        lines(&order),
        vec![
            ("68828574383266", "CBA_OTF_1", 1),
            ("79039765272157", "CBA_OTF_5", 2)
        ]
    );
}

#[test]
fn amazon_canceled_status_cancels() {
    let Some(dir) = dir() else { return };
    let mut order_response = load(&dir, "amazon-getOrder-response.json");
    order_response["payload"]["OrderStatus"] = json!("Canceled");
    let mut items = load(&dir, "amazon-getOrderItems-response.json");
    let payload = combined(order_response.clone(), items.clone());
    let order = ok(AdapterKind::Amazon, payload);
    assert!(order.cancelled);
    assert!(!order.paid);
    assert_eq!(
        lines(&order),
        vec![("05015851154158", "NABetaASINB00551Q3CS", 1)]
    );
    // Amazon reports the items of a canceled order with QuantityOrdered 0: no lines, still a
    // valid cancellation.
    items["payload"]["OrderItems"][0]["QuantityOrdered"] = json!(0);
    let order = ok(AdapterKind::Amazon, combined(order_response, items));
    assert!(order.cancelled);
    assert!(order.lines.is_empty());
}

#[test]
fn amazon_order_change_notification() {
    let Some(dir) = dir() else { return };
    let order = ok(
        AdapterKind::Amazon,
        load(&dir, "amazon-ORDER_CHANGE-notification.json"),
    );
    assert_eq!(order.channel_order_id, "903-8868176-2219830");
    assert!(order.paid, "Summary.OrderStatus Unshipped");
    assert!(!order.cancelled, "a buyer's cancel request does not cancel");
    assert_eq!(
        order.placed_at, 1_657_741_324_284,
        "2022-07-13T19:42:04.284Z"
    );
    assert_eq!(lines(&order), vec![("OIID34853450", "SellerSKUID1", 10)]);
}

#[test]
fn amazon_deprecated_order_status_change_is_refused() {
    let Some(dir) = dir() else { return };
    let (kind, path) = err_kind(
        AdapterKind::Amazon,
        load(
            &dir,
            "amazon-ORDER_STATUS_CHANGE-notification-deprecated.json",
        ),
    );
    assert_eq!(
        (kind, path.as_str()),
        ("unsupported_payload", "payload.NotificationType")
    );
}

#[test]
fn amazon_orders_api_2026_01_01() {
    let Some(dir) = dir() else { return };
    let order = ok(
        AdapterKind::Amazon,
        load(&dir, "amazon-getOrder-2026-01-01-response-example.json"),
    );
    assert_eq!(order.channel_order_id, "202-1234567-8901234");
    assert!(order.paid, "fulfillmentStatus SHIPPED");
    assert!(!order.cancelled);
    assert_eq!(order.placed_at, 1_735_118_100_000, "2024-12-25T09:15:00Z");
    assert_eq!(
        lines(&order),
        vec![("20212345678901", "ECHO-DOT-4-UK-CHARCOAL-3PACK", 3)]
    );
}

#[test]
fn amazon_lone_responses_and_order_lists_are_refused() {
    let Some(dir) = dir() else { return };
    for name in [
        "amazon-getOrders-response.json",
        "amazon-getOrders-response-example-nexttoken.json",
    ] {
        let (kind, path) = err_kind(AdapterKind::Amazon, load(&dir, name));
        assert_eq!(
            (kind, path.as_str()),
            ("unsupported_payload", "payload"),
            "{name}"
        );
    }
    for name in [
        "amazon-getOrderItems-response.json",
        "amazon-getOrder-response.json",
    ] {
        let (kind, _) = err_kind(AdapterKind::Amazon, load(&dir, name));
        assert_eq!(kind, "unsupported_payload", "{name}");
    }
    // `{"order": getOrder}` without items names the missing half.
    let (kind, path) = err_kind(
        AdapterKind::Amazon,
        json!({"order": load(&dir, "amazon-getOrder-response.json")}),
    );
    assert_eq!((kind, path.as_str()), ("missing_field", "payload.items"));
}

#[test]
fn walmart_single_purchase_orders() {
    let Some(dir) = dir() else { return };
    let order = ok(
        AdapterKind::Walmart,
        load(&dir, "walmart-getAnOrder-response.json"),
    );
    assert_eq!(order.channel_order_id, "1815367951431");
    assert!(order.paid);
    assert!(!order.cancelled, "Shipped");
    assert_eq!(order.placed_at, 1_623_796_407_000);
    assert_eq!(lines(&order), vec![("1", "YHY-FN25200B2", 1)]);

    for name in [
        "walmart-getAnOrder-response-replacement-order.json",
        "walmart-acknowledgeOrders-response.json",
    ] {
        let order = ok(AdapterKind::Walmart, load(&dir, name));
        assert_eq!(order.channel_order_id, "1796277083022", "{name}");
        assert!(order.paid && !order.cancelled, "{name}");
        assert_eq!(order.placed_at, 1_568_466_571_000, "{name}");
        assert_eq!(lines(&order), vec![("4", "test1", 1)], "{name}");
    }

    let order = ok(
        AdapterKind::Walmart,
        load(&dir, "walmart-cancelOrderLines-response.json"),
    );
    assert_eq!(order.channel_order_id, "1577914061094");
    assert!(order.cancelled, "its only line is Cancelled");
    assert_eq!(order.placed_at, 1_476_387_173_000);
    assert_eq!(
        lines(&order),
        vec![("1", "NJ_WITHOUT_RCA_003", 1)],
        "a cancelled order keeps its lines"
    );

    // The bare purchase order (no {"order": …} wrapper) reads the same.
    let bare = load(&dir, "walmart-getAnOrder-response.json")["order"].clone();
    assert_eq!(
        lines(&ok(AdapterKind::Walmart, bare)),
        vec![("1", "YHY-FN25200B2", 1)]
    );
}

#[test]
fn walmart_order_lists() {
    let Some(dir) = dir() else { return };
    // (purchaseOrderId, lineNumber, sku, cancelled) of each element, as published.
    let all_orders = [
        ("1796277083022", "4", "test1", false),
        ("3796235970012", "1", "TEST-02", true),
        ("1796235744850", "1", "TEST-02", true),
        ("2792525175246", "1", "TEST-02", true),
        ("4792514745205", "2", "test1", true),
        ("3796091528503", "1", "TEST-02", true),
        ("3796050123784", "1", "TEST-02", false),
        ("2792360062965", "1", "TEST-02", false),
        ("2792338900105", "1", "TEST-02", false),
        ("2792163543930", "3", "AC004", true),
    ];
    check_list(&dir, "walmart-getAllOrders-response.json", &all_orders);
    let released = [
        ("4792982839409", "3", "StressTestHome_29", false),
        ("2792982839545", "11", "StressTestHome_55", false),
        ("2792982839414", "4", "StressTestHome_13", false),
        ("4792982839305", "4", "StressTestHome_31", false),
        ("4792982839157", "3", "StressTestHome_55", false),
        ("4792982839565", "3", "StressTestHome_55", false),
        ("4792982839536", "4", "StressTestHome_32", false),
        ("3796673088300", "3", "StressTestHome_55", false),
        ("1796673088779", "3", "StressTestHome_13", false),
        ("4792982839704", "1", "StressTestHome_31", false),
    ];
    check_list(
        &dir,
        "walmart-getAllReleasedOrders-response.json",
        &released,
    );
}

fn check_list(dir: &Path, name: &str, expected: &[(&str, &str, &str, bool)]) {
    let page = load(dir, name);
    let (kind, path) = err_kind(AdapterKind::Walmart, page.clone());
    assert_eq!(
        (kind, path.as_str()),
        ("unsupported_payload", "payload"),
        "{name}: a whole page is refused"
    );
    let elements = page["list"]["elements"]["order"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(elements.len(), expected.len(), "{name}");
    for (element, &(po, line, sku, cancelled)) in elements.into_iter().zip(expected) {
        let order = ok(AdapterKind::Walmart, element);
        assert_eq!(order.channel_order_id, po, "{name}");
        assert_eq!(order.cancelled, cancelled, "{name} {po}");
        assert!(order.paid, "{name} {po}");
        assert_eq!(lines(&order), vec![(line, sku, 1)], "{name} {po}");
    }
}

#[test]
fn non_order_files_are_refused_by_every_adapter() {
    let Some(dir) = dir() else { return };
    for name in NOT_ORDERS {
        let payload = load(&dir, name);
        for kind in AdapterKind::ALL {
            assert!(
                parse(kind, payload.clone()).is_err(),
                "{kind} took {name} for an order"
            );
        }
    }
}

#[test]
fn order_files_are_refused_by_the_other_adapters() {
    let Some(dir) = dir() else { return };
    for name in ORDER_FILES {
        let own = if name.starts_with("shopify") {
            AdapterKind::Shopify
        } else if name.starts_with("amazon") {
            AdapterKind::Amazon
        } else {
            AdapterKind::Walmart
        };
        let payload = load(&dir, name);
        for kind in AdapterKind::ALL.into_iter().filter(|k| *k != own) {
            assert!(
                parse(kind, payload.clone()).is_err(),
                "{kind} took {name} for an order"
            );
        }
    }
}
