//! The checkers catch what they are for: each takes a request `push` builds, broken in one
//! way, and must refuse it (a checker that passes everything would make the other tests
//! worthless).

use std::panic::{catch_unwind, AssertUnwindSafe};

use serde_json::json;
use shelfsync_topology::PushKind;

use super::{shopify, OpenApi};
use crate::push::api::Request;
use crate::push::marketplaces::amazon::Amazon;
use crate::push::marketplaces::shopify::Shopify;
use crate::push::marketplaces::testing::{channel, drive, ok, update};
use crate::push::marketplaces::walmart::Walmart;
use crate::push::marketplaces::Marketplace;

fn refused(what: &str, check: impl FnOnce()) {
    assert!(
        catch_unwind(AssertUnwindSafe(check)).is_err(),
        "the checker let {what} through"
    );
}

fn walmart_put() -> Request {
    let channel = channel("walmart", PushKind::Walmart);
    let y = update("Y", 5, 2);
    drive(Walmart.calls(&channel, &[&y]), [ok(&json!({}))])
        .0
        .remove(0)
}

#[test]
fn openapi_checks_refuse_missing_headers_unknown_parameters_and_bad_bodies() {
    let inventory = OpenApi::new("walmart_inventory.yml", "");
    inventory.check(&walmart_put());
    let mut no_correlation = walmart_put();
    no_correlation
        .headers
        .retain(|(n, _)| !n.eq_ignore_ascii_case("wm_qos.correlation_id"));
    refused("a call without WM_QOS.CORRELATION_ID", || {
        inventory.check(&no_correlation);
    });
    let mut unknown_param = walmart_put();
    unknown_param.url.push_str("&limit=1000");
    refused("an undeclared query parameter", || {
        inventory.check(&unknown_param);
    });
    let mut misnamed = walmart_put();
    misnamed.what = "updateInventory";
    refused("a request named unlike its operationId", || {
        inventory.check(&misnamed);
    });
    let mut bad_body = walmart_put();
    bad_body.body = json!({"sku": "Y", "quantity": {"unit": "BOX", "amount": 5}})
        .to_string()
        .into_bytes();
    refused("a quantity unit outside the enum", || {
        inventory.check(&bad_body).check_body(&bad_body);
    });

    let listings = OpenApi::new("amzn_listingsItems_2021-08-01.json", "");
    let channel = channel("amazon", PushKind::Amazon);
    let a = update("A", 1, 1);
    let (mut sent, _) = drive(
        Amazon.calls(&channel, &[&a]),
        [ok(&json!({"status": "ACCEPTED"}))],
    );
    let mut patch = sent.remove(0);
    let mut body: serde_json::Value = serde_json::from_slice(&patch.body).unwrap();
    body["patches"][0]["op"] = json!("upsert");
    patch.body = body.to_string().into_bytes();
    refused("a patch op outside add/replace/merge/delete", || {
        listings.check(&patch).check_body(&patch);
    });
    patch.url = patch.url.replace("?marketplaceIds=ATVPDKIKX0DER", "");
    refused("a patch without marketplaceIds", || {
        listings.check(&patch);
    });
}

#[test]
fn graphql_checks_refuse_unknown_fields_and_mistyped_variables() {
    let (shop, channel) = (Shopify::default(), channel("shop", PushKind::Shopify));
    let a = update("A-0", 1, 1);
    let lookup = ok(&json!({"data": {"inventoryItems": {"nodes": [
        {"id": "gid://shopify/InventoryItem/1", "sku": "A-0", "inventoryLevel": {"quantities": [{"name": "available", "quantity": 4}]}}],
        "pageInfo": {"hasNextPage": false, "endCursor": null}}}}));
    let applied = ok(&json!({"data": {"inventorySetQuantities": {"userErrors": []}}}));
    let (sent, _) = drive(shop.calls(&channel, &[&a]), [lookup, applied]);
    shopify::check(&sent[1]);
    let with_body = |body: serde_json::Value| {
        let mut r = Request::new("inventorySetQuantities", reqwest::Method::POST, "u".into());
        r.body = body.to_string().into_bytes();
        r
    };
    let good: serde_json::Value = serde_json::from_slice(&sent[1].body).unwrap();
    let mut unknown_field = good.clone();
    unknown_field["query"] = json!(good["query"]
        .as_str()
        .unwrap()
        .replace("userErrors { code", "userErrors { severity code"));
    refused("a field the schema does not have", || {
        shopify::check(&with_body(unknown_field));
    });
    let mut mistyped = good.clone();
    mistyped["variables"]["input"]["quantities"][0]["quantity"] = json!("ten");
    refused("a quantity that is not an Int", || {
        shopify::check(&with_body(mistyped));
    });
    let mut no_key = good;
    no_key["variables"]
        .as_object_mut()
        .unwrap()
        .remove("idempotencyKey");
    refused("a mutation without its idempotency key", || {
        shopify::check(&with_body(no_key));
    });
}
