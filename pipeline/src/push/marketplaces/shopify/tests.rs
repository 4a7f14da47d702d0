//! Tests of the Shopify marketplace: its documents against Shopify's examples, its answers,
//! the compare-and-swap, the idempotency keys and the paged lookup.

use shelfsync_topology::PushKind;

use super::*;
use crate::push::api::CallError;
use crate::push::marketplaces::testing::{
    channel, drive, fixture, header as header_of, ok, update,
};
use crate::push::marketplaces::IDEMPOTENCY_KEY_HEADER;

#[test]
fn shopify_mutation_matches_shopifys_example() {
    let want = fixture(include_str!(
        "../../fixtures/shopify-inventorySetQuantities-request.json"
    ));
    let got = set_body(
        "gid://shopify/Location/124656943",
        &[ShopifySet {
            inventory_item_id: "gid://shopify/InventoryItem/30322695".into(),
            quantity: 42,
            change_from: Some(1),
        }],
        "550e8400-e29b-41d4-a716-446655440000",
        "logistics://some.warehouse/take/2026-02-23T13:14:15Z",
    );
    assert_eq!(got, want);
    // Opting out of the check sends an explicit null (required from API 2026-04 on).
    let forced = set_body(
        "gid://shopify/Location/1",
        &[ShopifySet {
            inventory_item_id: "gid://shopify/InventoryItem/2".into(),
            quantity: 0,
            change_from: None,
        }],
        "k",
        "u",
    );
    let q = &forced["variables"]["input"]["quantities"][0];
    assert!(
        q.get("changeFromQuantity").is_some_and(Value::is_null),
        "{q}"
    );
}

#[test]
fn shopify_answers_are_read() {
    let data = fixture(include_str!(
        "../../fixtures/shopify-inventorySetQuantities-response.json"
    ));
    assert_eq!(
        parse_set(&json!({ "data": data })),
        ShopifySetOutcome::Applied
    );
    let stale = json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": [
        {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "1", "changeFromQuantity"], "message": "The changeFromQuantity value does not match persisted value."}
    ]}}});
    assert_eq!(
        parse_set(&stale),
        ShopifySetOutcome::UserErrors(vec![ShopifyUserError {
            index: Some(1),
            code: "CHANGE_FROM_QUANTITY_STALE".into(),
            message: "The changeFromQuantity value does not match persisted value.".into(),
        }])
    );
    let throttled =
        json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]});
    assert_eq!(parse_set(&throttled), ShopifySetOutcome::Throttled);
    assert!(matches!(
        parse_set(&json!({})),
        ShopifySetOutcome::Failed(_)
    ));
}

#[test]
fn shopify_lookup_quotes_skus_and_matches_exactly() {
    let body = lookup_body(&["A-1", "B \"2\""], "gid://shopify/Location/9", None);
    assert_eq!(body["variables"]["query"], r#"sku:"A-1" OR sku:"B \"2\"""#);
    assert_eq!(body["variables"]["first"], 4);
    let answer = json!({"data": {"inventoryItems": {"nodes": [
        {"id": "gid://shopify/InventoryItem/1", "sku": "A-1", "inventoryLevel": {"quantities": [{"name": "available", "quantity": 7}]}},
        {"id": "gid://shopify/InventoryItem/2", "sku": "A-10", "inventoryLevel": null},
        {"id": "gid://shopify/InventoryItem/3", "sku": "B \"2\"", "inventoryLevel": null}
    ]}}});
    let page = parse_lookup(&answer).unwrap();
    assert_eq!(page.next, None);
    let found = page.items;
    assert_eq!(found["A-1"].available, Some(Some(7)));
    assert_eq!(found["B \"2\""].available, None);
    assert!(!found.contains_key("B"));
}

fn lookup_answer(sku: &str, available: i64) -> Answer {
    ok(&json!({"data": {"inventoryItems": {"nodes": [
        {"id": "gid://shopify/InventoryItem/1", "sku": sku, "inventoryLevel": {"quantities": [{"name": "available", "quantity": available}]}}
    ]}}}))
}

fn stale_answer() -> Answer {
    ok(&json!({"data": {"inventorySetQuantities": {"userErrors": [
        {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "0", "changeFromQuantity"], "message": "stale"}
    ]}}}))
}

fn change_from(request: &Request) -> Value {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    body["variables"]["input"]["quantities"][0]["changeFromQuantity"].clone()
}

#[test]
fn a_conflict_reads_the_quantity_again_and_the_third_in_a_row_forces() {
    let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let a = update("A-1", 5, 1);
    let deliver = |answers: Vec<Answer>| drive(shopify.calls(&channel, &[&a]), answers);
    // First update of the SKU: lookup, then the mutation with the quantity read.
    let (sent, delivery) = deliver(vec![lookup_answer("A-1", 7), stale_answer()]);
    assert_eq!(sent[0].what, "inventoryItems");
    assert_eq!(change_from(&sent[1]), json!(7));
    assert_eq!(
        delivery.results,
        [ItemResult::Again {
            class: "cas_conflict"
        }]
    );
    // Conflicts 2 and 3 read the quantity again each time.
    for available in [8, 9] {
        let (sent, _) = deliver(vec![lookup_answer("A-1", available), stale_answer()]);
        assert_eq!(change_from(&sent[1]), json!(available));
    }
    // After CAS_FORCE_AFTER conflicts: no lookup, `changeFromQuantity: null`.
    let (sent, delivery) = deliver(vec![ok(
        &json!({"data": {"inventorySetQuantities": {"userErrors": []}}}),
    )]);
    assert_eq!(sent.len(), 1);
    assert!(change_from(&sent[0]).is_null());
    assert_eq!(delivery.results, [ItemResult::Accepted]);
    // Applied: the quantity set is the next compare value.
    let (sent, _) = deliver(vec![stale_answer()]);
    assert_eq!(change_from(&sent[0]), json!(5));
}

/// Issue 18, item 6: a retry after a stale compare is a new mutation with a new key, even
/// when the quantity read again equals the stale compare value; a resend after a timeout
/// keeps its key.
#[test]
fn a_retry_after_a_stale_compare_has_a_new_idempotency_key() {
    let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let a = update("A-1", 5, 1);
    let deliver = |answers: Vec<Answer>| drive(shopify.calls(&channel, &[&a]), answers);
    let key = |r: &Request| {
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        body["variables"]["idempotencyKey"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let (sent, _) = deliver(vec![lookup_answer("A-1", 7), stale_answer()]);
    let first = key(&sent[1]);
    // The quantity read again is 7 once more: same compare value, new key.
    let (sent, _) = deliver(vec![lookup_answer("A-1", 7), stale_answer()]);
    let second = key(&sent[1]);
    assert_eq!(change_from(&sent[1]), json!(7));
    assert_ne!(first, second);
    assert_eq!(
        header_of(&sent[1], IDEMPOTENCY_KEY_HEADER),
        Some(second.as_str())
    );
    // A timeout: nothing known changed, so the resend is the same request, same key.
    let timeout = Err(CallError::transient("timeout", "timed out"));
    let (sent, _) = deliver(vec![lookup_answer("A-1", 7), timeout]);
    let third = key(&sent[1]);
    let (sent, _) = deliver(vec![ok(
        &json!({"data": {"inventorySetQuantities": {"userErrors": []}}}),
    )]);
    assert_eq!(key(&sent[0]), third);
    assert_ne!(third, first);
}

/// Issue 18, item 6: the lookup reads the next page while a SKU is unresolved.
#[test]
fn the_lookup_reads_past_250_matches() {
    let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let a = update("A-1", 5, 1);
    let page = |skus: Vec<String>, next: Option<&str>| {
        let nodes: Vec<Value> = skus
            .iter()
            .enumerate()
            .map(|(i, s)| json!({"id": format!("gid://shopify/InventoryItem/{i}"), "sku": s, "inventoryLevel": {"quantities": [{"name": "available", "quantity": 3}]}}))
            .collect();
        ok(
            &json!({"data": {"inventoryItems": {"nodes": nodes, "pageInfo": {"hasNextPage": next.is_some(), "endCursor": next}}}}),
        )
    };
    let near_misses: Vec<String> = (0..250).map(|i| format!("A-1{i}")).collect();
    let (sent, delivery) = drive(
        shopify.calls(&channel, &[&a]),
        [
            page(near_misses, Some("c1")),
            page(vec!["A-1".into()], None),
            ok(&json!({"data": {"inventorySetQuantities": {"userErrors": []}}})),
        ],
    );
    let whats: Vec<&str> = sent.iter().map(|r| r.what).collect();
    assert_eq!(
        whats,
        ["inventoryItems", "inventoryItems", "inventorySetQuantities"]
    );
    let second: Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_eq!(second["variables"]["after"], "c1");
    assert_eq!(change_from(&sent[2]), json!(3));
    assert_eq!(delivery.results, [ItemResult::Accepted]);
}

#[test]
fn an_unknown_sku_is_refused_and_throttling_is_reported() {
    let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let a = update("NOPE", 1, 1);
    let deliver = |answer: Answer| drive(shopify.calls(&channel, &[&a]), [answer]);
    let (sent, delivery) = deliver(lookup_answer("OTHER", 1));
    assert_eq!(sent.len(), 1);
    assert!(
        matches!(&delivery.results[0], ItemResult::Rejected { reason, .. } if reason.contains("NOPE"))
    );
    let throttled = ok(&json!({"errors": [{"extensions": {"code": "THROTTLED"}}]}));
    let (_, delivery) = deliver(throttled);
    assert!(delivery.throttled);
}
