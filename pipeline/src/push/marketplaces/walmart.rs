//! Walmart Marketplace: one update through `PUT /v3/inventory?sku=`, a backlog as a bulk
//! inventory feed (`POST /v3/feeds?feedType=inventory`, multipart JSON, spec 1.4) whose status
//! (`GET /v3/feeds/{id}?includeDetails=true`) carries each SKU's ingestion status.

use std::collections::HashMap;

use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::{json, Value};
use shelfsync_schemas::stable_id;

use super::{
    array_at, feed_id, items, one_by_one, str_field, Batch, Channel, Delivery, Feed, FeedEnd,
    FeedStates, ItemResult, Marketplace, Step, Submission, Submitted, URL_SKU,
};
use crate::push::api::Request;
use crate::push::config::Secret;

/// The single-item inventory path (`PUT /v3/inventory?sku=`).
pub fn single_path(sku: &str) -> String {
    format!("/v3/inventory?sku={}", utf8_percent_encode(sku, URL_SKU))
}

/// The single-item inventory body.
pub fn single_body(sku: &str, quantity: i64) -> Value {
    json!({"sku": sku, "quantity": {"unit": "EACH", "amount": quantity}})
}

/// The bulk inventory feed file (spec 1.4, one ship node: the default).
pub fn feed_file(items: &[(&str, i64)]) -> Value {
    let inventory: Vec<Value> = items.iter().map(|(sku, q)| single_body(sku, *q)).collect();
    json!({"InventoryHeader": {"version": "1.4"}, "Inventory": inventory})
}

/// A `multipart/form-data` body with the feed as its `file` part.
pub fn multipart_file(boundary: &str, file_name: &str, json: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(json.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(json);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A Walmart feed's status and its per-SKU ingestion status (with errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalmartFeedStatus {
    /// `RECEIVED`, `INPROGRESS`, `PROCESSED` or `ERROR`.
    pub status: String,
    /// SKU → (`SUCCESS`, `DATA_ERROR`, `SYSTEM_ERROR`, `TIMEOUT_ERROR`, `INPROGRESS`; errors).
    pub items: HashMap<String, (String, String)>,
}

/// Parses `GET /v3/feeds/{feedId}?includeDetails=true`.
pub fn parse_feed_status(body: &Value) -> Option<WalmartFeedStatus> {
    let status = str_field(body, "feedStatus")?.to_string();
    let mut items = HashMap::new();
    for item in array_at(body, "/itemDetails/itemIngestionStatus") {
        if let (Some(sku), Some(s)) = (str_field(item, "sku"), str_field(item, "ingestionStatus")) {
            let errors = item
                .get("ingestionErrors")
                .map(Value::to_string)
                .unwrap_or_default();
            items.insert(sku.to_string(), (s.to_string(), errors));
        }
    }
    Some(WalmartFeedStatus { status, items })
}

/// A request with Walmart's headers: JSON answers, the service name, a correlation id and the
/// access token.
fn request(
    what: &'static str,
    method: Method,
    url: String,
    secret: Option<Secret>,
    correlation: String,
) -> Request {
    Request::new(what, method, url)
        .header("accept", "application/json")
        .header("wm_svc.name", "Walmart Marketplace")
        .header("wm_qos.correlation_id", correlation)
        .auth("wm_sec.access_token", secret)
}

/// The Walmart Marketplace API: item updates for one update, the inventory feed for a backlog.
#[derive(Debug)]
pub(crate) struct Walmart;

impl Feed for Walmart {
    fn submit<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Submission> {
        let key = channel.idempotency_key(updates, &[]);
        let boundary = format!("shelfsync-{key}");
        let request = request(
            "bulkInventoryFeed",
            Method::POST,
            format!("{}/v3/feeds?feedType=inventory", channel.config.endpoint),
            channel.secret.clone(),
            key.clone(),
        )
        .header(
            "content-type",
            format!("multipart/form-data; boundary={boundary}"),
        );
        let mut request = channel.keyed_as(request, updates, key);
        let file = feed_file(&items(updates)).to_string();
        request.body = multipart_file(&boundary, "inventory.json", file.as_bytes());
        Step::send(request, |answer| {
            Step::Done(feed_id("bulk inventory feed", answer))
        })
    }

    fn states(&self) -> &'static FeedStates {
        &FeedStates {
            field: "feedStatus",
            applied: "PROCESSED",
            failed: &["ERROR"],
        }
    }

    fn status_request(&self, feed: &Submitted<'_>) -> Request {
        let url = format!(
            "{}/v3/feeds/{}?includeDetails=true&limit=1000",
            feed.channel.config.endpoint,
            utf8_percent_encode(feed.id, URL_SKU)
        );
        let correlation = feed.channel.idempotency_key(feed.updates, &[]);
        request(
            "getFeedItemStatus",
            Method::GET,
            url,
            feed.channel.secret.clone(),
            correlation,
        )
    }

    fn read_status(&self, feed: &Submitted<'_>, status: &Value) -> FeedEnd {
        let feed_id = feed.id;
        let Some(status) = parse_feed_status(status) else {
            let unreadable = ItemResult::Retry {
                class: "bad_response",
                reason: format!("feed {feed_id}: unreadable status"),
            };
            return FeedEnd::Results(vec![unreadable; feed.updates.len()]);
        };
        FeedEnd::Results(
            feed.updates
                .iter()
                .map(|u| match status.items.get(&u.sku) {
                    Some((s, _)) if s == "SUCCESS" => ItemResult::Accepted,
                    Some((s, errors)) if s == "DATA_ERROR" => ItemResult::Rejected {
                        status: 200,
                        reason: format!("feed {feed_id}: {s}"),
                        body: errors.clone(),
                    },
                    Some((s, errors)) => ItemResult::Retry {
                        class: "feed_failed",
                        reason: format!("feed {feed_id}: {s} {errors}"),
                    },
                    None => ItemResult::Retry {
                        class: "feed_failed",
                        reason: format!("feed {feed_id}: no status for the SKU"),
                    },
                })
                .collect(),
        )
    }
}

impl Marketplace for Walmart {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        one_by_one(updates, move |update| {
            let key = channel.idempotency_key(&[update], &[]);
            let url = format!("{}{}", channel.config.endpoint, single_path(&update.sku));
            let correlation = stable_id(&[key.as_bytes()]);
            let request = request(
                "updateInventoryForAnItem",
                Method::PUT,
                url,
                channel.secret.clone(),
                correlation,
            )
            .json(&single_body(&update.sku, update.quantity));
            let request = channel.keyed_as(request, &[update], key);
            Step::send(request, |answer| Step::Done(Delivery::if_sent(1, &answer)))
        })
    }

    fn feed(&self) -> Option<&dyn Feed> {
        Some(self)
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_topology::PushKind;

    use super::*;
    use crate::push::marketplaces::testing::{channel, drive, fixture, header, ok, update};

    #[test]
    fn walmart_bodies_match_walmarts_example() {
        let want = fixture(include_str!(
            "../fixtures/walmart-updateInventoryForAnItem-request.json"
        ));
        assert_eq!(single_body("97964_KFTest", 10), want);
        assert_eq!(
            single_path("97964_KFTest"),
            "/v3/inventory?sku=97964_KFTest"
        );
        assert_eq!(single_path("a b&c"), "/v3/inventory?sku=a%20b%26c");
        let feed = feed_file(&[("97964_KFTest", 10), ("X", 0)]);
        assert_eq!(feed["InventoryHeader"]["version"], "1.4");
        assert_eq!(feed["Inventory"][0], want);
        let body = multipart_file("b0", "inventory.json", b"{}");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"inventory.json\""
        ));
        assert!(text.ends_with("\r\n{}\r\n--b0--\r\n"));
        let status = parse_feed_status(&json!({"feedId": "F", "feedStatus": "PROCESSED", "itemDetails": {"itemIngestionStatus": [
            {"sku": "X", "ingestionStatus": "DATA_ERROR", "ingestionErrors": {"ingestionError": [{"code": "ERR_EXT_DATA_0801001"}]}},
            {"sku": "Y", "ingestionStatus": "SUCCESS"}
        ]}})).unwrap();
        assert_eq!(status.status, "PROCESSED");
        assert_eq!(status.items["X"].0, "DATA_ERROR");
        assert!(status.items["X"].1.contains("0801001"));
        assert_eq!(status.items["Y"].0, "SUCCESS");
    }

    #[test]
    fn a_feed_is_one_multipart_request_and_its_status_says_each_skus_fate() {
        let channel = channel("walmart", PushKind::Walmart);
        let (x, y, z) = (update("X", 0, 1), update("Y", 5, 2), update("Z", 1, 1));
        let updates = [&x, &y, &z];
        let (sent, id) = drive(
            Walmart.submit(&channel, &updates),
            [ok(&json!({"feedId": "F 1"}))],
        );
        assert_eq!(id, Ok("F 1".to_string()));
        let key = channel.idempotency_key(&updates, &[]);
        assert_eq!(
            header(&sent[0], "wm_qos.correlation_id"),
            Some(key.as_str())
        );
        let body = String::from_utf8(sent[0].body.clone()).unwrap();
        assert!(body.contains(r#""sku":"Y""#), "{body}");
        let feed = Submitted {
            channel: &channel,
            id: "F 1",
            updates: &updates,
        };
        let poll = Walmart.status_request(&feed);
        assert_eq!(
            poll.url,
            "https://mk.test/v3/feeds/F%201?includeDetails=true&limit=1000"
        );
        let status = json!({"feedStatus": "PROCESSED", "itemDetails": {"itemIngestionStatus": [
            {"sku": "X", "ingestionStatus": "DATA_ERROR"},
            {"sku": "Y", "ingestionStatus": "SUCCESS"}
        ]}});
        let FeedEnd::Results(results) = Walmart.read_status(&feed, &status) else {
            panic!("Walmart's status has the results");
        };
        assert!(matches!(
            results[0],
            ItemResult::Rejected { status: 200, .. }
        ));
        assert_eq!(results[1], ItemResult::Accepted);
        assert!(matches!(
            results[2],
            ItemResult::Retry {
                class: "feed_failed",
                ..
            }
        ));
        let (sent, delivery) = drive(Walmart.calls(&channel, &[&y]), [ok(&json!({}))]);
        assert_eq!(sent[0].url, "https://mk.test/v3/inventory?sku=Y");
        assert_eq!(delivery.results, [ItemResult::Accepted]);
    }
}
