//! eBay: `bulkUpdatePriceQuantity` against the Sell Inventory v1.18.2 OpenAPI (≤ 25 requests a
//! call, as its description says), and its `responses[].statusCode` read after they validate.

use serde_json::{json, Value};
use shelfsync_topology::PushKind;

use super::{number_after, OpenApi};
use crate::push::config::EBAY_MAX_BATCH;
use crate::push::marketplaces::ebay::{Ebay, REVISIONS};
use crate::push::marketplaces::testing::{channel, drive, ok, update};
use crate::push::marketplaces::{ItemResult, Marketplace};

fn spec() -> OpenApi {
    OpenApi::new("ebay_sell_inventory_v1_oas3.json", "/sell/inventory/v1")
}

#[test]
fn bulk_update_price_quantity_conforms_and_every_status_is_read() {
    let spec = spec();
    let op = spec.operation(&reqwest::Method::POST, "/bulk_update_price_quantity");
    let max = number_after(
        spec.document()
            .pointer("/components/schemas/BulkPriceQuantity/properties/requests/description")
            .and_then(Value::as_str)
            .unwrap(),
        "up to",
    );
    assert_eq!(EBAY_MAX_BATCH, max);
    let revisions = number_after(op.op["description"].as_str().unwrap(), "revised up to");
    assert_eq!(REVISIONS.per_day as usize, revisions);

    let channel = channel("ebay", PushKind::Ebay);
    let owned: Vec<_> = (0..EBAY_MAX_BATCH)
        .map(|i| update(&format!("S-{i}"), i as i64, 1))
        .collect();
    let updates: Vec<&_> = owned.iter().collect();
    let status = |i: usize| match i {
        1 => 400,
        2 => 429,
        3 => 500,
        _ => 200,
    };
    let responses: Vec<Value> = (0..EBAY_MAX_BATCH)
        .filter(|i| *i != 4)
        .map(|i| {
            let errors = if status(i) == 200 {
                json!([])
            } else {
                json!([{"errorId": 25002, "domain": "API_INVENTORY", "category": "REQUEST", "message": "A user error has occurred."}])
            };
            json!({"statusCode": status(i), "sku": format!("S-{i}"), "offerId": format!("{i}"), "errors": errors, "warnings": []})
        })
        .collect();
    // eBay answers 207 (Multi-Status) when some failed; the spec gives 207 no schema of its
    // own, the body is the 200 one's.
    assert!(op.op["responses"].get("207").is_some());
    let answer = op.answer(200, json!({ "responses": responses }));
    let (sent, delivery) = drive(Ebay.calls(&channel, &updates), [ok(&answer)]);
    let checked = spec.check(&sent[0]);
    let body = checked.check_body(&sent[0]);
    assert_eq!(
        body["requests"].as_array().map(Vec::len),
        Some(EBAY_MAX_BATCH)
    );
    assert!(delivery.throttled, "an item's 429 throttles the channel");
    let r = &delivery.results;
    assert_eq!(r[0], ItemResult::Accepted);
    assert!(matches!(r[1], ItemResult::Rejected { status: 400, .. }));
    assert!(matches!(
        r[2],
        ItemResult::Retry {
            class: "throttled",
            ..
        }
    ));
    assert!(matches!(
        r[3],
        ItemResult::Retry {
            class: "server_error",
            ..
        }
    ));
    assert!(matches!(
        r[4],
        ItemResult::Retry {
            class: "bad_response",
            ..
        }
    ));
    assert_eq!(r[5], ItemResult::Accepted);
}
