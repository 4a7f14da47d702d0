//! Issue 16 on the marketplaces' own published examples (shared/fixtures/marketplaces): who
//! ships each line, what the marketplace reports shipped, exact prices and totals, test orders
//! and lines without stock. `adapters_marketplaces.rs` asserts ids, statuses and quantities of
//! the same files.

mod adapters_support;

use std::path::Path;

use adapters_support::{envelope, read_json, shared_fixtures};
use serde_json::{json, Value};
use shelfsync_schemas::adapters::{to_order, to_order_with, AdapterConfig, AdapterKind};
use shelfsync_schemas::{FulfilledBy, Order, SkipReason};

fn load(dir: &Path, name: &str) -> Value {
    read_json(&dir.join(name))
}

fn ok(kind: AdapterKind, payload: Value) -> Order {
    to_order(kind, kind.as_str(), &envelope(kind.as_str(), payload))
        .unwrap_or_else(|e| panic!("{kind} payload refused: {e}"))
}

/// `(line_id, fulfilled_by, shipped, unit_price, line_total, currency)` of each line.
type LineMoney<'a> = (
    &'a str,
    FulfilledBy,
    i64,
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
);

fn money(order: &Order) -> Vec<LineMoney<'_>> {
    order
        .lines
        .iter()
        .map(|l| {
            (
                l.line_id.as_str(),
                l.fulfilled_by,
                l.shipped_quantity,
                l.unit_price.as_deref(),
                l.line_total.as_deref(),
                l.currency.as_deref(),
            )
        })
        .collect()
}

fn totals(order: &Order) -> (Option<&str>, Option<&str>) {
    (order.total.as_deref(), order.currency.as_deref())
}

use FulfilledBy::{MARKETPLACE, MERCHANT};

#[test]
fn shopify_webhook_sample_is_a_test_order_with_prices() {
    let Some(dir) = shared_fixtures() else { return };
    for name in [
        "shopify-orders-create-webhook.json",
        "shopify-orders-updated-webhook.json",
        "shopify-orders-cancelled-webhook.json",
    ] {
        let order = ok(AdapterKind::Shopify, load(&dir, name));
        assert!(order.test, "{name}: Shopify's sample has test: true");
        assert!(!order.already_shipped, "{name}: fulfillment_status null");
        assert_eq!(
            totals(&order),
            (Some("414.95"), Some("USD")),
            "{name}: current_total_price"
        );
        let usd = Some("USD");
        assert_eq!(
            money(&order),
            vec![
                (
                    "487817672276298554",
                    MERCHANT,
                    0,
                    Some("89.99"),
                    Some("89.99"),
                    usd
                ),
                (
                    "789012345678901234",
                    MERCHANT,
                    0,
                    Some("19.99"),
                    Some("19.99"),
                    usd
                ),
                (
                    "890123456789012345",
                    MERCHANT,
                    0,
                    Some("24.99"),
                    Some("24.99"),
                    usd
                ),
                (
                    "976318377106520349",
                    MERCHANT,
                    0,
                    Some("159.99"),
                    Some("159.99"),
                    usd
                ),
                (
                    "315789986012684393",
                    MERCHANT,
                    0,
                    Some("119.99"),
                    Some("119.99"),
                    usd
                ),
            ],
            "{name}: every line is fulfillment_service manual"
        );
        assert!(order.skipped_lines.is_empty(), "{name}");
    }
}

#[test]
fn shopify_lines_without_stock_and_third_party_fulfilment() {
    let Some(dir) = shared_fixtures() else { return };
    let mut payload = load(&dir, "shopify-orders-create-webhook.json");
    let items = payload["line_items"].as_array_mut().expect("line_items");
    items[1]["gift_card"] = json!(true); // LENS-PROTECT-2YR sold as a gift card
    items[2]["requires_shipping"] = json!(false); // CASE-LEATHER-PREM as shipping protection
    items[3]["sku"] = json!(""); // a custom item
    items[4]["fulfillment_service"] = json!("shipbob"); // a 3PL app
    items[0]["fulfillment_status"] = json!("fulfilled");
    let order = ok(AdapterKind::Shopify, payload.clone());
    let skipped: Vec<(&str, Option<&str>, i64, SkipReason)> = order
        .skipped_lines
        .iter()
        .map(|s| (s.line_id.as_str(), s.sku.as_deref(), s.quantity, s.reason))
        .collect();
    assert_eq!(
        skipped,
        vec![
            (
                "789012345678901234",
                Some("LENS-PROTECT-2YR"),
                1,
                SkipReason::GIFT_CARD
            ),
            (
                "890123456789012345",
                Some("CASE-LEATHER-PREM"),
                1,
                SkipReason::NON_PHYSICAL
            ),
            ("976318377106520349", None, 1, SkipReason::NO_SKU),
        ]
    );
    let usd = Some("USD");
    assert_eq!(
        money(&order),
        vec![
            (
                "487817672276298554",
                MERCHANT,
                1,
                Some("89.99"),
                Some("89.99"),
                usd
            ),
            (
                "315789986012684393",
                MARKETPLACE,
                0,
                Some("119.99"),
                Some("119.99"),
                usd
            ),
        ]
    );
    // A channel that counts shipbob as its own warehouse keeps the line.
    let mut config = AdapterConfig::new(AdapterKind::Shopify);
    config.own_fulfillment_services.insert("shipbob".into());
    let order = to_order_with(&config, "shopify", &envelope("shopify", payload))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(order.lines[1].fulfilled_by, MERCHANT);
    // An order of nothing but a gift card is still an order (no stock lines).
    let mut gift = load(&dir, "shopify-rest-order-legacy-fixture.json");
    let items = gift["order"]["line_items"]
        .as_array_mut()
        .expect("line_items");
    items.truncate(1);
    items[0]["gift_card"] = json!(true);
    let order = ok(AdapterKind::Shopify, gift);
    assert!(order.lines.is_empty());
    assert_eq!(order.skipped_lines.len(), 1);
}

#[test]
fn shopify_legacy_rest_order_prices() {
    let Some(dir) = shared_fixtures() else { return };
    let order = ok(
        AdapterKind::Shopify,
        load(&dir, "shopify-rest-order-legacy-fixture.json"),
    );
    assert!(!order.test);
    assert_eq!(totals(&order), (Some("409.94"), Some("USD")), "total_price");
    let usd = Some("USD");
    assert_eq!(
        money(&order),
        vec![
            (
                "466157049",
                MERCHANT,
                0,
                Some("199.00"),
                Some("199.00"),
                usd
            ),
            (
                "518995019",
                MERCHANT,
                0,
                Some("199.00"),
                Some("199.00"),
                usd
            ),
            (
                "703073504",
                MERCHANT,
                0,
                Some("199.00"),
                Some("199.00"),
                usd
            ),
        ]
    );
}

fn combined(dir: &Path, order: &str, items: &str, order_id: &str) -> Value {
    let mut items = load(dir, items);
    items["payload"]["AmazonOrderId"] = json!(order_id);
    if let Some(page) = items["payload"].as_object_mut() {
        page.remove("NextToken");
    }
    json!({"order": load(dir, order), "items": items})
}

#[test]
fn amazon_mfn_and_afn_orders() {
    let Some(dir) = shared_fixtures() else { return };
    let order = ok(
        AdapterKind::Amazon,
        combined(
            &dir,
            "amazon-getOrder-response.json",
            "amazon-getOrderItems-response.json",
            "902-1845936-5435065",
        ),
    );
    assert!(!order.already_shipped, "Unshipped");
    assert_eq!(totals(&order), (Some("11.01"), Some("USD")), "OrderTotal");
    assert_eq!(
        money(&order),
        vec![(
            "05015851154158",
            MERCHANT,
            0,
            Some("10.00"),
            Some("10.00"),
            Some("USD")
        )],
        "MFN; ItemPrice is the line's price"
    );

    // The IBA sandbox case: AFN (fulfilled by Amazon), Shipped, EUR.
    let order = ok(
        AdapterKind::Amazon,
        combined(
            &dir,
            "amazon-getOrder-response-iba-afn-shipped.json",
            "amazon-getOrderItems-response-example-two-items.json",
            "921-3175655-0452641",
        ),
    );
    assert!(order.already_shipped, "OrderStatus Shipped");
    assert_eq!(totals(&order), (Some("100.00"), Some("EUR")));
    let jpy = Some("JPY");
    assert_eq!(
        money(&order),
        vec![
            (
                "68828574383266",
                MARKETPLACE,
                1,
                Some("25.99"),
                Some("25.99"),
                jpy
            ),
            // ItemPrice 17.95 for 2 units: the unit price is exactly 8.975.
            (
                "79039765272157",
                MARKETPLACE,
                0,
                Some("8.975"),
                Some("17.95"),
                jpy
            ),
        ]
    );
}

#[test]
fn amazon_order_change_and_2026_api() {
    let Some(dir) = shared_fixtures() else { return };
    let order = ok(
        AdapterKind::Amazon,
        load(&dir, "amazon-ORDER_CHANGE-notification.json"),
    );
    assert!(!order.already_shipped);
    assert_eq!(
        totals(&order),
        (None, None),
        "notifications carry no prices"
    );
    assert_eq!(
        money(&order),
        vec![("OIID34853450", MERCHANT, 0, None, None, None)],
        "FulfillmentType MFN"
    );
    let mut afn = load(&dir, "amazon-ORDER_CHANGE-notification.json");
    afn["Payload"]["OrderChangeNotification"]["Summary"]["FulfillmentType"] = json!("AFN");
    assert_eq!(
        ok(AdapterKind::Amazon, afn).lines[0].fulfilled_by,
        MARKETPLACE
    );

    let order = ok(
        AdapterKind::Amazon,
        load(&dir, "amazon-getOrder-2026-01-01-response-example.json"),
    );
    assert!(order.already_shipped, "fulfillmentStatus SHIPPED");
    assert_eq!(
        totals(&order),
        (Some("103.97"), Some("GBP")),
        "proceeds.grandTotal"
    );
    assert_eq!(
        money(&order),
        vec![(
            "20212345678901",
            MERCHANT,
            3,
            Some("29.99"),
            Some("89.97"),
            Some("GBP")
        )],
        "fulfilledBy MERCHANT, quantityFulfilled 3, unitPrice 29.99"
    );
    let mut fba = load(&dir, "amazon-getOrder-2026-01-01-response-example.json");
    fba["order"]["fulfillment"]["fulfilledBy"] = json!("AMAZON");
    assert_eq!(
        ok(AdapterKind::Amazon, fba).lines[0].fulfilled_by,
        MARKETPLACE
    );
}

#[test]
fn walmart_ship_nodes_charges_and_shipped_lines() {
    let Some(dir) = shared_fixtures() else { return };
    let order = ok(
        AdapterKind::Walmart,
        load(&dir, "walmart-getAnOrder-response.json"),
    );
    assert!(order.already_shipped, "its only line is Shipped");
    assert!(!order.test);
    assert_eq!(
        totals(&order),
        (None, None),
        "Walmart POs have no order total"
    );
    assert_eq!(
        money(&order),
        vec![("1", MERCHANT, 1, Some("5"), Some("5"), Some("USD"))],
        "shipNode SellerFulfilled; PRODUCT chargeAmount 5"
    );
    let mut wfs = load(&dir, "walmart-getAnOrder-response.json");
    wfs["order"]["shipNode"]["type"] = json!("WFSFulfilled");
    assert_eq!(
        ok(AdapterKind::Walmart, wfs).lines[0].fulfilled_by,
        MARKETPLACE
    );

    // getAllOrders elements: no shipNode; Created, Shipped and Cancelled lines.
    let page = load(&dir, "walmart-getAllOrders-response.json");
    let elements = page["list"]["elements"]["order"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let got: Vec<(String, bool, Option<String>)> = elements
        .into_iter()
        .map(|e| ok(AdapterKind::Walmart, e))
        .map(|o| {
            (
                o.channel_order_id.clone(),
                o.already_shipped,
                o.lines[0].unit_price.clone(),
            )
        })
        .collect();
    let s = |id: &str, shipped: bool, price: &str| (id.to_owned(), shipped, Some(price.to_owned()));
    assert_eq!(
        got,
        vec![
            s("1796277083022", false, "10"),
            s("3796235970012", false, "0"),
            s("1796235744850", false, "0"),
            s("2792525175246", false, "0"),
            s("4792514745205", false, "0"),
            s("3796091528503", false, "0"),
            s("3796050123784", true, "9.99"),
            s("2792360062965", true, "9.99"),
            s("2792338900105", true, "9.99"),
            s("2792163543930", false, "0"),
        ]
    );
    // getAllReleasedOrders elements have "shipNode": [] and a SHIPPING charge besides PRODUCT.
    let page = load(&dir, "walmart-getAllReleasedOrders-response.json");
    for element in page["list"]["elements"]["order"]
        .as_array()
        .cloned()
        .unwrap_or_default()
    {
        let order = ok(AdapterKind::Walmart, element);
        assert_eq!(order.lines[0].fulfilled_by, MERCHANT, "shipNode []");
        assert_eq!(order.lines[0].unit_price.as_deref(), Some("99"));
        assert!(!order.already_shipped, "Created");
    }
}
