//! Walmart: `updateInventoryForAnItem` and `updateBulkInventory` against the Inventory OpenAPI,
//! `getFeedItemStatus` (polls and item-status pages of at most 50) against the Feeds OpenAPI,
//! with a feed of more than 50 SKUs; `ingestionStatus` pages read after they validate.

use serde_json::{json, Value};
use shelfsync_topology::PushKind;

use super::{assert_valid, header_value, number_after, OpenApi};
use crate::push::marketplaces::testing::{channel, drive, ok, update};
use crate::push::marketplaces::walmart::{Walmart, STATUS_PAGE};
use crate::push::marketplaces::{Feed, FeedEnd, ItemResult, Marketplace, Submitted};

fn inventory() -> OpenApi {
    OpenApi::new("walmart_inventory.yml", "")
}

fn feeds() -> OpenApi {
    OpenApi::new("walmart_feeds.yml", "")
}

#[test]
fn an_item_update_conforms() {
    let spec = inventory();
    let channel = channel("walmart", PushKind::Walmart);
    let y = update("97964_KF Test/1", 10, 2);
    let put = spec.operation(&reqwest::Method::PUT, "/v3/inventory");
    let answer = put.answer(
        200,
        json!({"sku": "97964_KF Test/1", "quantity": {"unit": "EACH", "amount": 10}}),
    );
    let (sent, delivery) = drive(Walmart.calls(&channel, &[&y]), [ok(&answer)]);
    let op = spec.check(&sent[0]);
    let body = op.check_body(&sent[0]);
    assert_eq!(body["quantity"]["amount"], 10);
    assert_eq!(delivery.results, [ItemResult::Accepted]);
}

/// Issue 18, items 1 and 7: a feed of 120 SKUs is submitted as the spec says, its status
/// polled, and its item statuses read in pages of at most 50, each call with its own
/// correlation id.
#[test]
fn a_feed_of_more_than_50_skus_conforms_and_is_read_page_by_page() {
    let (inventory, feeds) = (inventory(), feeds());
    let channel = channel("walmart", PushKind::Walmart);
    let owned: Vec<_> = (0..120).map(|i| update(&format!("S-{i}"), i, 1)).collect();
    let updates: Vec<&_> = owned.iter().collect();
    let post = inventory.operation(&reqwest::Method::POST, "/v3/feeds");
    let accepted = post.answer(
        200,
        json!({"feedId": "E9C04D1FFD99479FBC1341056DBF4D4F@AQMB_wA"}),
    );
    let (sent, id) = drive(Walmart.submit(&channel, &updates), [ok(&accepted)]);
    let feed_id = id.unwrap();
    inventory.check(&sent[0]);
    // The multipart body's `file` part is a spec 1.4 feed whose items are the item update's
    // request body, shaped as the spec's own example of the feed.
    let content_type = header_value(&sent[0], "content-type").unwrap();
    assert!(post.op["requestBody"]["content"]
        .get(content_type.split(';').next().unwrap())
        .is_some());
    let text = String::from_utf8(sent[0].body.clone()).unwrap();
    let (start, end) = (
        text.find("\r\n\r\n").unwrap() + 4,
        text.rfind("\r\n--").unwrap(),
    );
    assert!(text.contains("name=\"file\""));
    let file: Value = serde_json::from_str(&text[start..end]).unwrap();
    let example =
        &post.op["requestBody"]["content"]["multipart/form-data"]["examples"]["json1"]["value"];
    assert_eq!(file["InventoryHeader"], example["InventoryHeader"]);
    let item_schema = inventory
        .operation(&reqwest::Method::PUT, "/v3/inventory")
        .body_validator();
    for item in file["Inventory"].as_array().unwrap() {
        assert_valid(&item_schema, item, "feed item");
    }
    assert_eq!(file["Inventory"].as_array().map(Vec::len), Some(120));

    let feed = Submitted {
        channel: &channel,
        id: &feed_id,
        updates: &updates,
    };
    // The poll: getFeedItemStatus without details; PROCESSED is final.
    let get = feeds.operation(&reqwest::Method::GET, "/v3/feeds/{feedId}");
    let poll = Walmart.status_request(&feed);
    feeds.check(&poll);
    let processed = get.answer(
        200,
        json!({"feedId": feed_id, "feedStatus": "PROCESSED", "itemsReceived": 120, "itemsSucceeded": 119, "itemsFailed": 1, "itemsProcessing": 0}),
    );
    assert!(Walmart.states().is_final(&processed));
    assert!(matches!(
        Walmart.read_status(&feed, &processed),
        FeedEnd::Report(_)
    ));
    // The pages: at most the spec's limit each, offsets following on.
    let limit_param = get
        .parameters()
        .into_iter()
        .find(|p| p["name"] == "limit")
        .unwrap();
    let max_page = number_after(
        limit_param["description"].as_str().unwrap(),
        "cannot be more than",
    );
    assert!(STATUS_PAGE <= max_page);
    let page = |from: usize| {
        let to = (from + STATUS_PAGE).min(120);
        let items: Vec<Value> = (from..to)
            .map(|i| {
                if i == 77 {
                    json!({"martId": 0, "sku": format!("S-{i}"), "index": i, "ingestionStatus": "DATA_ERROR",
                        "ingestionErrors": {"ingestionError": [{"type": "DATA_ERROR", "code": "ERR_EXT_DATA_0801001", "description": "Item not found"}]}})
                } else {
                    json!({"martId": 0, "sku": format!("S-{i}"), "index": i, "ingestionStatus": "SUCCESS"})
                }
            })
            .collect();
        ok(&get.answer(
            200,
            json!({"feedId": feed_id, "feedStatus": "PROCESSED", "itemsReceived": 120, "itemsSucceeded": 119,
                "itemsFailed": 1, "offset": from, "limit": STATUS_PAGE, "itemDetails": {"itemIngestionStatus": items}}),
        ))
    };
    let (sent, report) = drive(
        Walmart.report(&feed, &feed_id),
        [page(0), page(50), page(100)],
    );
    let mut correlation_ids = Vec::new();
    for (i, request) in sent.iter().enumerate() {
        feeds.check(request);
        let url = reqwest::Url::parse(&request.url).unwrap();
        let q: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        assert!(q.contains(&("includeDetails".into(), "true".into())));
        assert!(q.contains(&("offset".into(), (i * STATUS_PAGE).to_string())));
        correlation_ids.push(header_value(request, "WM_QOS.CORRELATION_ID").unwrap());
    }
    correlation_ids.sort();
    correlation_ids.dedup();
    assert_eq!(correlation_ids.len(), 3, "one correlation id per call");
    let results = Walmart.read_report(&feed, &report.unwrap());
    assert_eq!(
        results
            .iter()
            .filter(|r| **r == ItemResult::Accepted)
            .count(),
        119
    );
    assert!(matches!(&results[77], ItemResult::Rejected { body, .. } if body.contains("0801001")));
}
