//! Amazon Selling Partner API: one update through the Listings Items API
//! (`patchListingsItem`, a `merge` of `/attributes/fulfillment_availability`), a backlog as a
//! `JSON_LISTINGS_FEED` through the Feeds API (createFeedDocument → upload → createFeed, then
//! getFeed until final and the processing report's message errors).
//!
//! `merge`, not `replace`: the `DEFAULT` fulfillment availability also carries the seller's
//! handling time and restock date, which a `replace` with only the quantity would drop on
//! every push (the Listings Items 2021-08-01 `PatchOperation.op` enum: add, replace, merge,
//! delete). A processing report may come gzip-compressed (`compressionAlgorithm: GZIP` in
//! getFeedDocument's answer): it is decompressed before its `issues` are read.

use std::collections::HashMap;
use std::io::Read;

use percent_encoding::utf8_percent_encode;
use reqwest::Method;
use serde_json::{json, Value};
use tracing::warn;

use super::{
    feed_id, item_failure, items, malformed, one_by_one, refused, str_field, Answer, Batch,
    Channel, Delivery, Feed, FeedEnd, FeedStates, ItemResult, Marketplace, OperationLimit,
    ReportError, Step, Submission, Submitted, URL_SKU,
};
use crate::push::api::Request;

/// Amazon Listings Items API path prefix.
pub const LISTINGS_PATH: &str = "/listings/2021-08-01/items";
/// Amazon Feeds API path prefix.
pub const FEEDS_PATH: &str = "/feeds/2021-06-30";
/// Content type of an Amazon `JSON_LISTINGS_FEED` document.
pub const FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// The credential header (a Login with Amazon access token).
const TOKEN_HEADER: &str = "x-amz-access-token";
/// Largest processing report read after decompression (a report is a few hundred bytes per
/// message with issues; this bounds what a corrupt or hostile document can make us allocate).
pub const MAX_REPORT_BYTES: u64 = 64 << 20;

/// The `patchListingsItem` path and query for one SKU.
pub fn patch_path(seller_id: &str, sku: &str, marketplace_ids: &[String]) -> String {
    format!(
        "{LISTINGS_PATH}/{}/{}?marketplaceIds={}",
        utf8_percent_encode(seller_id, URL_SKU),
        utf8_percent_encode(sku, URL_SKU),
        marketplace_ids.join(",")
    )
}

fn fulfillment_availability_patch(quantity: i64) -> Value {
    json!([{
        "op": "merge",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]
    }])
}

/// The `patchListingsItem` body setting the merchant-fulfilled quantity.
pub fn patch_body(product_type: &str, quantity: i64) -> Value {
    json!({
        "productType": product_type,
        "patches": fulfillment_availability_patch(quantity),
    })
}

/// A `JSON_LISTINGS_FEED` document with one `PATCH` message per update (`messageId` counts
/// from 1 in `items` order).
pub fn feed_document(seller_id: &str, product_type: &str, items: &[(&str, i64)]) -> Value {
    let messages: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (sku, quantity))| {
            json!({
                "messageId": i + 1,
                "sku": sku,
                "operationType": "PATCH",
                "productType": product_type,
                "patches": fulfillment_availability_patch(*quantity),
            })
        })
        .collect();
    json!({
        "header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"},
        "messages": messages,
    })
}

/// The outcome of a `patchListingsItem` answer: `Ok` for `ACCEPTED`, else the issues.
///
/// # Errors
/// The status and issues of an `INVALID` submission, or the shape problem.
pub fn parse_patch(body: &Value) -> Result<(), String> {
    match str_field(body, "status") {
        Some("ACCEPTED") => Ok(()),
        Some(status) => Err(format!(
            "submission {status}: {}",
            body.get("issues").cloned().unwrap_or(Value::Null)
        )),
        None => Err(format!("no status in {body}")),
    }
}

/// The issues of severity `ERROR` in an Amazon feed processing report, by `messageId`.
pub fn report_errors(report: &Value) -> HashMap<u64, String> {
    let mut out: HashMap<u64, String> = HashMap::new();
    for issue in super::array_at(report, "/issues") {
        if str_field(issue, "severity") != Some("ERROR") {
            continue;
        }
        if let Some(id) = issue.get("messageId").and_then(Value::as_u64) {
            let text = format!(
                "{}: {}",
                str_field(issue, "code").unwrap_or("?"),
                str_field(issue, "message").unwrap_or("")
            );
            out.entry(id)
                .and_modify(|t| {
                    t.push_str("; ");
                    t.push_str(&text);
                })
                .or_insert(text);
        }
    }
    out
}

/// The Selling Partner API usage plans of the operations shelfsync calls (the `**Usage Plan:**`
/// tables of `listingsItems_2021-08-01.json` and `feeds_2021-06-30.json`; Amazon may grant an
/// account more, set with `operation_limits`). The uploads and downloads go to pre-signed URLs
/// outside the SP-API and have no published limit.
pub const LIMITS: &[OperationLimit] = &[
    OperationLimit {
        operation: "patchListingsItem",
        rate_per_sec: 5.0,
        burst: 5,
        source: "SP-API Listings Items 2021-08-01, patchListingsItem usage plan",
    },
    OperationLimit {
        operation: "createFeedDocument",
        rate_per_sec: 0.5,
        burst: 15,
        source: "SP-API Feeds 2021-06-30, createFeedDocument usage plan",
    },
    OperationLimit {
        operation: "createFeed",
        rate_per_sec: 0.0083,
        burst: 15,
        source: "SP-API Feeds 2021-06-30, createFeed usage plan",
    },
    OperationLimit {
        operation: "getFeed",
        rate_per_sec: 2.0,
        burst: 15,
        source: "SP-API Feeds 2021-06-30, getFeed usage plan",
    },
    OperationLimit {
        operation: "getFeedDocument",
        rate_per_sec: 0.0222,
        burst: 10,
        source: "SP-API Feeds 2021-06-30, getFeedDocument usage plan",
    },
];

/// How a feed document's content is compressed (getFeedDocument's `compressionAlgorithm`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    /// Not compressed: the download is the JSON itself.
    None,
    /// `GZIP`.
    Gzip,
}

/// The JSON of a downloaded processing report, decompressed as `compression` says.
///
/// # Errors
/// When the content does not decompress, is larger than [`MAX_REPORT_BYTES`] or is not JSON.
pub fn read_report_document(body: &[u8], compression: Compression) -> Result<Value, String> {
    let plain = match compression {
        Compression::None => body.to_vec(),
        Compression::Gzip => {
            let mut out = Vec::new();
            flate2::read::GzDecoder::new(body)
                .take(MAX_REPORT_BYTES + 1)
                .read_to_end(&mut out)
                .map_err(|e| format!("cannot gunzip: {e}"))?;
            out
        }
    };
    if plain.len() as u64 > MAX_REPORT_BYTES {
        return Err(format!("larger than {MAX_REPORT_BYTES} bytes"));
    }
    serde_json::from_slice(&plain).map_err(|e| format!("not JSON: {e}"))
}

/// The Amazon Selling Partner API: listings for one update, `JSON_LISTINGS_FEED` for a backlog.
#[derive(Debug)]
pub(crate) struct Amazon;

impl Marketplace for Amazon {
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery> {
        one_by_one(updates, move |update| {
            let config = channel.config;
            let url = format!(
                "{}{}",
                config.endpoint,
                patch_path(&config.seller_id, &update.sku, &config.marketplace_ids)
            );
            let request = Request::new("patchListingsItem", Method::PATCH, url)
                .json(&patch_body(&config.product_type, update.quantity));
            let request = channel
                .keyed(request, &[update])
                .auth(TOKEN_HEADER, channel.secret.clone());
            Step::send(request, |answer| Step::Done(read_patch(answer)))
        })
    }

    fn feed(&self) -> Option<&dyn Feed> {
        Some(self)
    }

    fn operation_limits(&self) -> &'static [OperationLimit] {
        LIMITS
    }
}

/// Reads a `patchListingsItem` answer.
fn read_patch(answer: Answer) -> Delivery {
    let response = match answer {
        Ok(response) => response,
        Err(e) => return Delivery::failed(1, &e),
    };
    Delivery::all(
        1,
        match response.json().as_ref().map(parse_patch) {
            Some(Ok(())) => ItemResult::Accepted,
            Some(Err(why)) => refused(&response, why),
            None => malformed("patchListingsItem", &response),
        },
    )
}

impl Amazon {
    fn base(channel: &Channel<'_>) -> String {
        format!("{}{FEEDS_PATH}", channel.config.endpoint)
    }

    fn get(channel: &Channel<'_>, what: &'static str, url: String) -> Request {
        Request::new(what, Method::GET, url).auth(TOKEN_HEADER, channel.secret.clone())
    }
}

impl Feed for Amazon {
    fn submit<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Submission> {
        let base = Self::base(channel);
        // 1. createFeedDocument
        let request = Request::new(
            "createFeedDocument",
            Method::POST,
            format!("{base}/documents"),
        )
        .json(&json!({ "contentType": FEED_CONTENT_TYPE }))
        .auth(TOKEN_HEADER, channel.secret.clone());
        Step::send(request, move |answer| {
            let document = match answer {
                Ok(r) => r,
                Err(e) => return Step::Done(Err(item_failure(&e))),
            };
            let Some((document_id, upload_url)) = document.json().and_then(|v| {
                Some((
                    str_field(&v, "feedDocumentId")?.to_string(),
                    str_field(&v, "url")?.to_string(),
                ))
            }) else {
                return Step::Done(Err(malformed("createFeedDocument", &document)));
            };
            // 2. Upload the feed to the pre-signed URL (no Amazon credentials there).
            let config = channel.config;
            let feed = feed_document(&config.seller_id, &config.product_type, &items(updates));
            let mut upload = Request::new("uploadFeedDocument", Method::PUT, upload_url)
                .header("content-type", FEED_CONTENT_TYPE)
                .header(
                    super::UPDATE_KEYS_HEADER,
                    super::update_keys_header(channel.name(), updates),
                );
            upload.body = feed.to_string().into_bytes();
            Step::send(upload, move |answer| {
                if let Err(e) = answer {
                    return Step::Done(Err(item_failure(&e)));
                }
                // 3. createFeed
                let request = Request::new("createFeed", Method::POST, format!("{base}/feeds"))
                    .json(&json!({
                        "feedType": "JSON_LISTINGS_FEED",
                        "marketplaceIds": config.marketplace_ids,
                        "inputFeedDocumentId": document_id,
                    }));
                let request = channel
                    .keyed(request, updates)
                    .auth(TOKEN_HEADER, channel.secret.clone());
                Step::send(request, |answer| Step::Done(feed_id("createFeed", answer)))
            })
        })
    }

    fn submit_operations(&self) -> &'static [&'static str] {
        &["createFeedDocument", "createFeed"]
    }

    fn states(&self) -> &'static FeedStates {
        &FeedStates {
            field: "processingStatus",
            applied: "DONE",
            failed: &["CANCELLED", "FATAL"],
        }
    }

    fn status_request(&self, feed: &Submitted<'_>) -> Request {
        let url = format!("{}/feeds/{}", Self::base(feed.channel), feed.id);
        Self::get(feed.channel, "getFeed", url)
    }

    fn read_status(&self, feed: &Submitted<'_>, status: &Value) -> FeedEnd {
        match str_field(status, "resultFeedDocumentId") {
            Some(report_id) => FeedEnd::Report(report_id.to_string()),
            None => {
                warn!(channel = %feed.channel.name(), feed = %feed.id, "feed DONE without a processing report; counting its updates as accepted");
                FeedEnd::Results(vec![ItemResult::Accepted; feed.updates.len()])
            }
        }
    }

    /// getFeedDocument, then the document itself, decompressed when getFeedDocument says it
    /// is (`compressionAlgorithm`).
    fn report<'a>(
        &'a self,
        feed: &'a Submitted<'a>,
        report_id: &'a str,
    ) -> Step<'a, Result<Value, ReportError>> {
        let channel = feed.channel;
        let url = format!("{}/documents/{report_id}", Self::base(channel));
        let request = Self::get(channel, "getFeedDocument", url);
        Step::send(request, move |answer| {
            let document = match answer {
                Ok(r) => r.json().unwrap_or(Value::Null),
                Err(e) => return Step::Done(Err(ReportError::Again(e.to_string()))),
            };
            let compression = match document.get("compressionAlgorithm") {
                None | Some(Value::Null) => Compression::None,
                Some(Value::String(c)) if c == "GZIP" => Compression::Gzip,
                Some(other) => {
                    return Step::Done(Err(ReportError::Final(format!(
                        "getFeedDocument {report_id}: unknown compressionAlgorithm {other}"
                    ))))
                }
            };
            let Some(url) = str_field(&document, "url") else {
                return Step::Done(Err(ReportError::Final(format!(
                    "getFeedDocument {report_id}: no url in {document}"
                ))));
            };
            let download = Request::new("downloadReport", Method::GET, url.to_string());
            Step::send(download, move |answer| {
                Step::Done(match answer {
                    Ok(r) => read_report_document(&r.body, compression).map_err(|why| {
                        warn!(channel = %channel.name(), report = report_id, error = %why, "unreadable feed processing report");
                        ReportError::Again(format!("report {report_id}: {why}"))
                    }),
                    Err(e) => Err(ReportError::Again(e.to_string())),
                })
            })
        })
    }

    fn read_report(&self, feed: &Submitted<'_>, report: &Value) -> Vec<ItemResult> {
        let errors = report_errors(report);
        (1..=feed.updates.len() as u64)
            .map(|id| match errors.get(&id) {
                None => ItemResult::Accepted,
                Some(why) => ItemResult::Rejected {
                    status: 200,
                    reason: format!("feed {} message {id}: {why}", feed.id),
                    body: why.clone(),
                },
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_topology::PushKind;

    use super::*;
    use crate::push::marketplaces::testing::{channel, drive, fixture, header, ok, update};
    use crate::push::marketplaces::{IDEMPOTENCY_KEY_HEADER, UPDATE_KEYS_HEADER};

    #[test]
    fn amazon_patch_and_feed_match_amazons_examples() {
        let feed_example = fixture(include_str!(
            "../fixtures/amazon-JSON_LISTINGS_FEED-example-fulfillment_availability.json"
        ));
        // Message 4 of Amazon's example is exactly a PATCH replace of fulfillment_availability.
        let want_message = &feed_example["messages"][3];
        let feed = feed_document(
            "AXXXXXXXXXXXX",
            "LUGGAGE",
            &[("My-SKU-C", 3), ("My-SKU-D", 10)],
        );
        let mut got_message = feed["messages"][1].clone();
        assert_eq!(got_message["messageId"], 2);
        got_message["messageId"] = want_message["messageId"].clone();
        got_message["patches"][0]["op"] = json!("replace");
        assert_eq!(&got_message, want_message);
        assert_eq!(
            feed["header"]["sellerId"],
            feed_example["header"]["sellerId"]
        );
        assert_eq!(feed["header"]["version"], feed_example["header"]["version"]);
        // patchListingsItem takes the same `patches` as the feed message, but merges (as
        // Amazon's "Merge a listing" example does) where the feed example replaces.
        let patch = patch_body("LUGGAGE", 10);
        let mut replaced = patch["patches"].clone();
        replaced[0]["op"] = json!("replace");
        assert_eq!(replaced, want_message["patches"]);
        assert_eq!(patch["patches"][0]["op"], "merge");
        assert_eq!(patch["productType"], "LUGGAGE");
        // Exactly Amazon's "Merge a listing" example (quantity 20).
        let merge = fixture(include_str!(
            "../fixtures/amazon-patchListingsItem-merge-fulfillment_availability-request.json"
        ));
        assert_eq!(patch_body("LUGGAGE", 20)["patches"], merge["patches"]);
        assert_eq!(
            patch_path("A1SELLER", "SKU 1/x", &["ATVPDKIKX0DER".into(), "A2EUQ1WTGCTBG2".into()]),
            "/listings/2021-08-01/items/A1SELLER/SKU%201%2Fx?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2"
        );
        assert_eq!(
            parse_patch(
                &json!({"sku": "x", "status": "ACCEPTED", "submissionId": "1", "issues": []})
            ),
            Ok(())
        );
        assert!(
            parse_patch(&json!({"status": "INVALID", "issues": [{"code": "90220"}]}))
                .unwrap_err()
                .contains("90220")
        );
        let report = json!({"issues": [
            {"messageId": 2, "code": "4000001", "severity": "ERROR", "message": "bad"},
            {"messageId": 1, "code": "99", "severity": "WARNING", "message": "meh"}
        ]});
        let errors = report_errors(&report);
        assert_eq!(errors.len(), 1);
        assert!(errors[&2].contains("4000001"));
    }

    #[test]
    fn one_update_is_a_listings_patch() {
        let channel = channel("amazon", PushKind::Amazon);
        let a = update("SKU 1", 4, 9);
        let invalid = ok(&json!({"status": "INVALID", "issues": [{"code": "90220"}]}));
        let (sent, delivery) = drive(Amazon.calls(&channel, &[&a]), [invalid]);
        assert_eq!(sent[0].method, Method::PATCH);
        assert_eq!(
            sent[0].url,
            "https://mk.test/listings/2021-08-01/items/A1SELLER/SKU%201?marketplaceIds=ATVPDKIKX0DER"
        );
        assert_eq!(
            header(&sent[0], UPDATE_KEYS_HEADER),
            Some("amazon|SKU%201|9")
        );
        assert_eq!(
            header(&sent[0], IDEMPOTENCY_KEY_HEADER),
            Some("amazon|SKU%201|9")
        );
        assert!(
            matches!(&delivery.results[0], ItemResult::Rejected { status: 200, reason, .. } if reason.contains("90220"))
        );
        let b = update("B", 0, 1);
        let two = [&a, &b];
        assert!(Amazon.feed().is_some());
        // Single-item calls go one after the other.
        let accepted = json!({"status": "ACCEPTED"});
        let (sent, delivery) = drive(Amazon.calls(&channel, &two), [ok(&accepted), ok(&accepted)]);
        assert_eq!(sent.len(), 2);
        assert!(sent[1].url.contains("/B?"), "{}", sent[1].url);
        assert_eq!(
            delivery.results,
            [ItemResult::Accepted, ItemResult::Accepted]
        );
    }

    #[test]
    fn a_feed_is_submitted_in_three_requests_and_its_report_read() {
        let channel = channel("amazon", PushKind::Amazon);
        let (a, b) = (update("A", 1, 1), update("B", 2, 1));
        let updates = [&a, &b];
        let (sent, id) = drive(
            Amazon.submit(&channel, &updates),
            [
                ok(&json!({"feedDocumentId": "D1", "url": "https://upload.test/D1"})),
                ok(&json!({})),
                ok(&json!({"feedId": "F1"})),
            ],
        );
        assert_eq!(id, Ok("F1".to_string()));
        let whats: Vec<&str> = sent.iter().map(|r| r.what).collect();
        assert_eq!(
            whats,
            ["createFeedDocument", "uploadFeedDocument", "createFeed"]
        );
        assert_eq!(sent[1].url, "https://upload.test/D1");
        assert!(sent[1].auth.is_none());
        let document: Value = serde_json::from_slice(&sent[1].body).unwrap();
        assert_eq!(document["messages"][1]["sku"], "B");
        let created: Value = serde_json::from_slice(&sent[2].body).unwrap();
        assert_eq!(created["inputFeedDocumentId"], "D1");
        // No feed id: the updates go again.
        let (_, id) = drive(
            Amazon.submit(&channel, &updates),
            [
                ok(&json!({"feedDocumentId": "D1", "url": "u"})),
                ok(&json!({})),
                ok(&json!({})),
            ],
        );
        assert!(matches!(
            id,
            Err(ItemResult::Retry {
                class: "bad_response",
                ..
            })
        ));
        // The report: its document, then the download.
        let feed = Submitted {
            channel: &channel,
            id: "F1",
            updates: &updates,
        };
        let (sent, report) = drive(
            Amazon.report(&feed, "R1"),
            [
                ok(&json!({"url": "https://download.test/R1"})),
                ok(
                    &json!({"issues": [{"messageId": 2, "code": "8560", "severity": "ERROR", "message": "no"}]}),
                ),
            ],
        );
        assert_eq!(sent[0].url, "https://mk.test/feeds/2021-06-30/documents/R1");
        let results = Amazon.read_report(&feed, &report.unwrap());
        assert_eq!(results[0], ItemResult::Accepted);
        assert!(
            matches!(&results[1], ItemResult::Rejected { reason, .. } if reason.contains("8560"))
        );
        // A compressed report is gunzipped and its refusals read.
        let issues = json!({"issues": [{"messageId": 1, "code": "4000001", "severity": "ERROR", "message": "gone"}]});
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        std::io::Write::write_all(&mut gz, issues.to_string().as_bytes()).unwrap();
        let gzipped = gz.finish().unwrap();
        let (_, compressed) = drive(
            Amazon.report(&feed, "R1"),
            [
                ok(&json!({"url": "u", "compressionAlgorithm": "GZIP"})),
                Ok(crate::push::api::Response {
                    status: 200,
                    body: gzipped.clone(),
                }),
            ],
        );
        let results = Amazon.read_report(&feed, &compressed.unwrap());
        assert!(
            matches!(&results[0], ItemResult::Rejected { reason, .. } if reason.contains("4000001"))
        );
        assert_eq!(results[1], ItemResult::Accepted);
        // Gzip bytes read as plain JSON, or an unknown algorithm, are not a clean report.
        assert!(read_report_document(&gzipped, Compression::None).is_err());
        let (_, unknown) = drive(
            Amazon.report(&feed, "R1"),
            [ok(&json!({"url": "u", "compressionAlgorithm": "ZSTD"}))],
        );
        assert!(matches!(unknown, Err(ReportError::Final(_))));
        let (_, no_url) = drive(Amazon.report(&feed, "R1"), [ok(&json!({}))]);
        assert!(matches!(no_url, Err(ReportError::Final(_))));
    }
}
