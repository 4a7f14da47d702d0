//! Walmart Marketplace: one update through `PUT /v3/inventory?sku=`, a backlog as a bulk
//! inventory feed (`POST /v3/feeds?feedType=inventory`, multipart JSON, spec 1.4) whose status
//! carries each SKU's ingestion status.
//!
//! The feed is polled without details (`GET /v3/feeds/{id}`) until its `feedStatus` is final;
//! then its item statuses are read in pages of [`STATUS_PAGE`] (`includeDetails=true&limit=50&
//! offset=…`: the Feeds API takes at most 50 a page) until every item received is read.
//!
//! Every call carries its own `WM_QOS.CORRELATION_ID` (the Feeds and Inventory OpenAPI: "a
//! unique ID which identifies each API call … use a random generated GUID"): a retry or a poll
//! is a new call, so it gets a new id ([`correlation_id`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::{json, Value};
use shelfsync_schemas::stable_id;

use super::{
    array_at, feed_id, items, one_by_one, str_field, Batch, Channel, Delivery, Feed, FeedEnd,
    FeedStates, ItemResult, Marketplace, OperationLimit, ReportError, Step, Submission, Submitted,
    URL_SKU,
};
use crate::push::api::Request;
use crate::push::config::Secret;

/// Most item statuses one `GET /v3/feeds/{feedId}` page returns (`limit` "cannot be more than
/// 50 entities", Walmart Feeds OpenAPI).
pub const STATUS_PAGE: usize = 50;

/// Walmart's published limits of the operations shelfsync calls: bulk inventory feeds, 10 an
/// hour (Walmart Seller Center "feed limits": Inventory Feed, 10/hour; the OpenAPI files only
/// say "refer to the throttling limits"). Item updates and feed status reads have no figure in
/// the specs and go at the channel's `rate_per_sec`.
pub const LIMITS: &[OperationLimit] = &[OperationLimit {
    operation: "updateBulkInventory",
    rate_per_sec: 10.0 / 3600.0,
    burst: 10,
    source: "Walmart Seller Center feed limits: Inventory Feed 10/hour",
}];

/// A new `WM_QOS.CORRELATION_ID`, GUID-shaped: unique per call within this process (a
/// counter) and across processes (a nonce from the clock and the process id at first use).
pub fn correlation_id() -> String {
    static NONCE: OnceLock<String> = OnceLock::new();
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nonce = NONCE.get_or_init(|| {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or_default();
        format!("{now}/{}", std::process::id())
    });
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let hex = stable_id(&[nonce.as_bytes(), &n.to_le_bytes()]);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The path of page `offset` of a feed's item statuses.
pub fn status_page_path(feed_id: &str, offset: usize) -> String {
    format!(
        "/v3/feeds/{}?includeDetails=true&limit={STATUS_PAGE}&offset={offset}",
        utf8_percent_encode(feed_id, URL_SKU)
    )
}

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

/// A request with Walmart's headers: JSON answers, the service name, a new correlation id and
/// the access token.
fn request(what: &'static str, method: Method, url: String, secret: Option<Secret>) -> Request {
    Request::new(what, method, url)
        .header("accept", "application/json")
        .header("wm_svc.name", "Walmart Marketplace")
        .header("wm_qos.correlation_id", correlation_id())
        .auth("wm_sec.access_token", secret)
}

/// Reads the item-status pages of `feed` from `offset` on, `acc` holding those read so far;
/// ends with the feed's status carrying every item status read.
fn status_pages<'a>(
    feed: &'a Submitted<'a>,
    offset: usize,
    mut acc: Vec<Value>,
) -> Step<'a, Result<Value, ReportError>> {
    let channel = feed.channel;
    let url = format!(
        "{}{}",
        channel.config.endpoint,
        status_page_path(feed.id, offset)
    );
    let request = request(
        "getFeedItemStatus",
        Method::GET,
        url,
        channel.secret.clone(),
    );
    Step::send(request, move |answer| {
        let page = match answer {
            Ok(r) => match r.json() {
                Some(v) if str_field(&v, "feedStatus").is_some() => v,
                _ => {
                    return Step::Done(Err(ReportError::Again(format!(
                        "feed {} item status page at {offset}: unreadable",
                        feed.id
                    ))))
                }
            },
            Err(e) => return Step::Done(Err(ReportError::Again(e.to_string()))),
        };
        let items: Vec<Value> = array_at(&page, "/itemDetails/itemIngestionStatus")
            .cloned()
            .collect();
        let got = items.len();
        acc.extend(items);
        let received = page
            .get("itemsReceived")
            .and_then(Value::as_u64)
            .map_or(feed.updates.len(), |n| {
                usize::try_from(n).unwrap_or(usize::MAX)
            });
        if got == 0 || acc.len() >= received {
            let mut all = page;
            all["itemDetails"] = json!({ "itemIngestionStatus": acc });
            return Step::Done(Ok(all));
        }
        status_pages(feed, offset + got, acc)
    })
}

/// The Walmart Marketplace API: item updates for one update, the inventory feed for a backlog.
#[derive(Debug)]
pub(crate) struct Walmart;

impl Feed for Walmart {
    fn submit<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Submission> {
        let key = channel.idempotency_key(updates, &[]);
        let boundary = format!("shelfsync-{key}");
        let request = request(
            "updateBulkInventory",
            Method::POST,
            format!("{}/v3/feeds?feedType=inventory", channel.config.endpoint),
            channel.secret.clone(),
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

    fn submit_operations(&self) -> &'static [&'static str] {
        &["updateBulkInventory"]
    }

    fn states(&self) -> &'static FeedStates {
        &FeedStates {
            field: "feedStatus",
            applied: "PROCESSED",
            failed: &["ERROR"],
        }
    }

    /// The feed's status without item details (the cheapest poll); the details are read once
    /// it is final, page by page ([`Feed::report`]).
    fn status_request(&self, feed: &Submitted<'_>) -> Request {
        let url = format!(
            "{}/v3/feeds/{}",
            feed.channel.config.endpoint,
            utf8_percent_encode(feed.id, URL_SKU)
        );
        request(
            "getFeedItemStatus",
            Method::GET,
            url,
            feed.channel.secret.clone(),
        )
    }

    fn read_status(&self, feed: &Submitted<'_>, _status: &Value) -> FeedEnd {
        FeedEnd::Report(feed.id.to_string())
    }

    /// Every page of the feed's item statuses, as one status.
    fn report<'a>(
        &'a self,
        feed: &'a Submitted<'a>,
        _report_id: &'a str,
    ) -> Step<'a, Result<Value, ReportError>> {
        status_pages(feed, 0, Vec::new())
    }

    fn read_report(&self, feed: &Submitted<'_>, report: &Value) -> Vec<ItemResult> {
        let feed_id = feed.id;
        let Some(status) = parse_feed_status(report) else {
            let unreadable = ItemResult::Retry {
                class: "bad_response",
                reason: format!("feed {feed_id}: unreadable status"),
            };
            return vec![unreadable; feed.updates.len()];
        };
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
            .collect()
    }
}

impl Marketplace for Walmart {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        one_by_one(updates, move |update| {
            let key = channel.idempotency_key(&[update], &[]);
            let url = format!("{}{}", channel.config.endpoint, single_path(&update.sku));
            let request = request(
                "updateInventoryForAnItem",
                Method::PUT,
                url,
                channel.secret.clone(),
            )
            .json(&single_body(&update.sku, update.quantity));
            let request = channel.keyed_as(request, &[update], key);
            Step::send(request, |answer| Step::Done(Delivery::if_sent(1, &answer)))
        })
    }

    fn feed(&self) -> Option<&dyn Feed> {
        Some(self)
    }

    fn operation_limits(&self) -> &'static [OperationLimit] {
        LIMITS
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
        let body = String::from_utf8(sent[0].body.clone()).unwrap();
        assert!(body.contains(r#""sku":"Y""#), "{body}");
        let feed = Submitted {
            channel: &channel,
            id: "F 1",
            updates: &updates,
        };
        let poll = Walmart.status_request(&feed);
        assert_eq!(poll.url, "https://mk.test/v3/feeds/F%201");
        assert!(matches!(
            Walmart.read_status(&feed, &json!({"feedStatus": "PROCESSED"})),
            FeedEnd::Report(_)
        ));
        let status = json!({"feedStatus": "PROCESSED", "itemsReceived": 2, "itemDetails": {"itemIngestionStatus": [
            {"sku": "X", "ingestionStatus": "DATA_ERROR"},
            {"sku": "Y", "ingestionStatus": "SUCCESS"}
        ]}});
        let (sent, report) = drive(Walmart.report(&feed, "F 1"), [ok(&status)]);
        assert_eq!(
            sent[0].url,
            "https://mk.test/v3/feeds/F%201?includeDetails=true&limit=50&offset=0"
        );
        let results = Walmart.read_report(&feed, &report.unwrap());
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

    /// Issue 18, item 1: a feed of more than 50 SKUs is read in pages of 50.
    #[test]
    fn item_statuses_of_a_large_feed_are_read_page_by_page() {
        let channel = channel("walmart", PushKind::Walmart);
        let owned: Vec<_> = (0..120).map(|i| update(&format!("S{i}"), 1, 1)).collect();
        let updates: Vec<&_> = owned.iter().collect();
        let feed = Submitted {
            channel: &channel,
            id: "F",
            updates: &updates,
        };
        let page = |from: usize, to: usize| {
            let items: Vec<Value> = (from..to)
                .map(|i| json!({"sku": format!("S{i}"), "ingestionStatus": if i == 77 { "DATA_ERROR" } else { "SUCCESS" }}))
                .collect();
            ok(
                &json!({"feedId": "F", "feedStatus": "PROCESSED", "itemsReceived": 120, "offset": from, "limit": 50, "itemDetails": {"itemIngestionStatus": items}}),
            )
        };
        let (sent, report) = drive(
            Walmart.report(&feed, "F"),
            [page(0, 50), page(50, 100), page(100, 120)],
        );
        let offsets: Vec<&str> = sent
            .iter()
            .map(|r| r.url.rsplit("offset=").next().unwrap())
            .collect();
        assert_eq!(offsets, ["0", "50", "100"]);
        assert!(sent.iter().all(|r| r.url.contains("limit=50&")));
        let results = Walmart.read_report(&feed, &report.unwrap());
        let accepted = results
            .iter()
            .filter(|r| **r == ItemResult::Accepted)
            .count();
        assert_eq!(accepted, 119);
        assert!(matches!(results[77], ItemResult::Rejected { .. }));
    }

    /// Issue 18, item 7: each call has its own correlation id, a GUID.
    #[test]
    fn every_call_has_its_own_correlation_id() {
        let channel = channel("walmart", PushKind::Walmart);
        let y = update("Y", 5, 2);
        let ids: Vec<String> = (0..3)
            .map(|_| {
                let (sent, _) = drive(Walmart.calls(&channel, &[&y]), [ok(&json!({}))]);
                header(&sent[0], "wm_qos.correlation_id")
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_ne!(ids[0], ids[1]);
        assert_ne!(ids[1], ids[2]);
        let groups: Vec<usize> = ids[0].split('-').map(str::len).collect();
        assert_eq!(groups, [8, 4, 4, 4, 12]);
    }
}
