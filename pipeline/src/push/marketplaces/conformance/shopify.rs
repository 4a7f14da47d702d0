//! Shopify: every GraphQL document shelfsync sends (the `inventoryItems` lookup, its next
//! pages, the `inventorySetQuantities` mutation with `@idempotent`) validated against the Admin
//! API 2026-01 schema and its variables coerced against the operation, as Shopify's server
//! does; every `InventorySetQuantitiesUserErrorCode` of the schema read.

use std::sync::OnceLock;

use apollo_compiler::executable::ExecutableDocument;
use apollo_compiler::request::coerce_variable_values;
use apollo_compiler::response::JsonMap;
use apollo_compiler::validation::Valid;
use apollo_compiler::Schema;
use serde_json::{json, Value};
use shelfsync_topology::PushKind;

use super::spec_text;
use crate::push::api::Request;
use crate::push::marketplaces::shopify::{parse_set, Shopify, ShopifySetOutcome};
use crate::push::marketplaces::testing::{channel, drive, ok, update};
use crate::push::marketplaces::{ItemResult, Marketplace};

/// The Admin API 2026-01 schema, parsed and validated once (it is 3 MB).
fn schema() -> &'static Valid<Schema> {
    static SCHEMA: OnceLock<Valid<Schema>> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        Schema::parse_and_validate(spec_text("shopify_admin_2026-01.graphql"), "admin.graphql")
            .unwrap_or_else(|e| panic!("the Shopify schema does not validate: {}", e.errors))
    })
}

/// Validates the GraphQL request `request` sends: the document against the schema, the
/// variables against its operation. Returns the body.
pub(super) fn check(request: &Request) -> Value {
    let body: Value = serde_json::from_slice(&request.body).unwrap();
    let query = body["query"].as_str().expect("a query");
    let document = ExecutableDocument::parse_and_validate(schema(), query, "request.graphql")
        .unwrap_or_else(|e| panic!("{}: {}", request.what, e.errors));
    let operation = document
        .operations
        .get(None)
        .unwrap_or_else(|_| panic!("{}: not exactly one operation", request.what));
    let variables: JsonMap = serde_json::from_value(body["variables"].clone()).unwrap();
    coerce_variable_values(schema(), operation, &variables)
        .unwrap_or_else(|e| panic!("{}: variables refused: {}", request.what, e.message()));
    body
}

#[test]
fn the_lookup_and_the_mutation_validate_against_the_admin_schema() {
    let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let skus: Vec<String> = (0..250).map(|i| format!("A-{i}")).collect();
    let owned: Vec<_> = skus.iter().map(|s| update(s, 3, 1)).collect();
    let updates: Vec<&_> = owned.iter().collect();
    let node = |sku: &str, id: usize| {
        json!({"id": format!("gid://shopify/InventoryItem/{id}"), "sku": sku,
            "inventoryLevel": {"quantities": [{"name": "available", "quantity": 2}]}})
    };
    let page = |nodes: Vec<Value>, next: Option<&str>| {
        ok(&json!({"data": {"inventoryItems": {"nodes": nodes,
            "pageInfo": {"hasNextPage": next.is_some(), "endCursor": next}}}}))
    };
    let first: Vec<Value> = skus[..200]
        .iter()
        .enumerate()
        .map(|(i, s)| node(s, i))
        .collect();
    let second: Vec<Value> = skus[200..]
        .iter()
        .enumerate()
        .map(|(i, s)| node(s, 200 + i))
        .collect();
    let (sent, delivery) = drive(
        shopify.calls(&channel, &updates),
        [
            page(first, Some("eyJsYXN0X2lkIjoyMDB9")),
            page(second, None),
            ok(
                &json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": []}}}),
            ),
        ],
    );
    let whats: Vec<&str> = sent.iter().map(|r| r.what).collect();
    assert_eq!(
        whats,
        ["inventoryItems", "inventoryItems", "inventorySetQuantities"]
    );
    let bodies: Vec<Value> = sent.iter().map(check).collect();
    assert!(bodies[0]["variables"]["after"].is_null());
    assert_eq!(bodies[1]["variables"]["after"], "eyJsYXN0X2lkIjoyMDB9");
    let quantities = &bodies[2]["variables"]["input"]["quantities"];
    assert_eq!(quantities.as_array().map(Vec::len), Some(250));
    assert!(delivery.results.iter().all(|r| *r == ItemResult::Accepted));
    // The forced write (no compare) validates too: `changeFromQuantity: null` after three
    // conflicts in a row, each followed by a lookup.
    let shopify = Shopify::default();
    let a = update("A-0", 9, 2);
    let stale = json!({"data": {"inventorySetQuantities": {"userErrors": [
        {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "0", "changeFromQuantity"], "message": "stale"}]}}});
    for _ in 0..3 {
        let (sent, _) = drive(
            shopify.calls(&channel, &[&a]),
            [page(vec![node("A-0", 0)], None), ok(&stale)],
        );
        sent.iter().for_each(|r| {
            check(r);
        });
    }
    let (sent, _) = drive(shopify.calls(&channel, &[&a]), [ok(&stale)]);
    let body = check(&sent[0]);
    assert!(body["variables"]["input"]["quantities"][0]["changeFromQuantity"].is_null());
}

/// Every `InventorySetQuantitiesUserErrorCode` the schema defines is read: a stale compare
/// is sent again (not a refusal), a concurrent idempotent request retried, the rest refused.
#[test]
fn every_user_error_code_of_the_schema_is_read() {
    let codes: Vec<String> = schema()
        .get_enum("InventorySetQuantitiesUserErrorCode")
        .expect("the enum")
        .values
        .keys()
        .map(|k| k.to_string())
        .collect();
    assert!(codes.len() >= 10, "{codes:?}");
    for code in &codes {
        let answer = json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": [
            {"code": code, "field": ["input", "quantities", "0", "quantity"], "message": "m"}]}}});
        let ShopifySetOutcome::UserErrors(errors) = parse_set(&answer) else {
            panic!("{code}: not read as a user error");
        };
        assert_eq!(errors[0].code, *code);
        assert_eq!(errors[0].index, Some(0));
        let (shopify, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
        let a = update("A-0", 1, 1);
        let lookup = ok(&json!({"data": {"inventoryItems": {"nodes": [
            {"id": "gid://shopify/InventoryItem/1", "sku": "A-0", "inventoryLevel": {"quantities": [{"name": "available", "quantity": 4}]}}],
            "pageInfo": {"hasNextPage": false, "endCursor": null}}}}));
        let (_, delivery) = drive(shopify.calls(&channel, &[&a]), [lookup, ok(&answer)]);
        let result = &delivery.results[0];
        match code.as_str() {
            "CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE" => {
                assert_eq!(
                    *result,
                    ItemResult::Again {
                        class: "cas_conflict"
                    },
                    "{code}"
                );
            }
            "IDEMPOTENCY_CONCURRENT_REQUEST" => {
                assert!(
                    matches!(result, ItemResult::Retry { .. }),
                    "{code}: {result:?}"
                );
            }
            _ => assert!(
                matches!(result, ItemResult::Rejected { reason, .. } if reason.contains(code.as_str())),
                "{code}: {result:?}"
            ),
        }
    }
}
