//! Amazon: `patchListingsItem` against the Listings Items 2021-08-01 Swagger, the feed
//! requests against the Feeds 2021-06-30 Swagger, the `JSON_LISTINGS_FEED` document against
//! the listings feed schema, and the answers (`status`/`issues`, `processingStatus`,
//! `compressionAlgorithm`, the processing report) read after they validate.

use std::io::Write;

use jsonschema::Draft;
use serde_json::{json, Value};
use shelfsync_topology::PushKind;

use super::{assert_valid, header_value, spec, usage_plan, validator_at, OpenApi};
use crate::push::api::Response;
use crate::push::config::FEED_MAX_BATCH;
use crate::push::marketplaces::amazon::{Amazon, LIMITS};
use crate::push::marketplaces::testing::{channel, drive, ok, update};
use crate::push::marketplaces::{Feed, FeedEnd, ItemResult, Marketplace, Submitted};

fn listings() -> OpenApi {
    OpenApi::new("amzn_listingsItems_2021-08-01.json", "")
}

fn feeds() -> OpenApi {
    OpenApi::new("amzn_feeds_2021-06-30.json", "")
}

#[test]
fn patch_listings_item_conforms_and_its_answers_are_read() {
    let spec = listings();
    let channel = channel("amazon", PushKind::Amazon);
    let (a, b) = (update("SKU 1/ü", 7, 3), update("B", 0, 1));
    let patch = spec.operation(
        &reqwest::Method::PATCH,
        "/listings/2021-08-01/items/{sellerId}/{sku}",
    );
    let accepted = patch.answer(
        200,
        json!({"sku": "SKU 1/ü", "status": "ACCEPTED", "submissionId": "f1dc2914", "issues": []}),
    );
    let invalid = patch.answer(
        200,
        json!({"sku": "B", "status": "INVALID", "submissionId": "f1dc2915", "issues": [
            {"code": "90220", "message": "'fulfillment_availability' is required but not supplied.", "severity": "ERROR", "attributeNames": ["fulfillment_availability"], "categories": ["MISSING_ATTRIBUTE"]}
        ]}),
    );
    let (sent, delivery) = drive(
        Amazon.calls(&channel, &[&a, &b]),
        [ok(&accepted), ok(&invalid)],
    );
    assert_eq!(sent.len(), 2);
    for request in &sent {
        let op = spec.check(request);
        let body = op.check_body(request);
        assert_eq!(body["patches"][0]["op"], "merge", "issue 18, item 2");
        assert_eq!(
            header_value(request, "x-amz-access-token").as_deref(),
            Some("token")
        );
    }
    assert_eq!(delivery.results[0], ItemResult::Accepted);
    assert!(
        matches!(&delivery.results[1], ItemResult::Rejected { reason, .. } if reason.contains("90220"))
    );
}

#[test]
fn a_listings_feed_conforms_from_document_to_compressed_report() {
    let feeds = feeds();
    let feed_schema = validator_at(
        &spec("amzn_listings-feed-schema-v2.json"),
        "",
        Draft::Draft7,
    );
    let report_schema = validator_at(
        &spec("amzn_listings-feed-processing-report-schema-v2.json"),
        "",
        Draft::Draft7,
    );
    let channel = channel("amazon", PushKind::Amazon);
    let owned: Vec<_> = (0..60).map(|i| update(&format!("S-{i}"), i, 1)).collect();
    let updates: Vec<&_> = owned.iter().collect();
    let post = reqwest::Method::POST;
    let get = reqwest::Method::GET;
    let document = feeds
        .operation(&post, "/feeds/2021-06-30/documents")
        .answer(
            201,
            json!({"feedDocumentId": "D1", "url": "https://upload.test/D1"}),
        );
    let created = feeds
        .operation(&post, "/feeds/2021-06-30/feeds")
        .answer(202, json!({"feedId": "F1"}));
    let (sent, id) = drive(
        Amazon.submit(&channel, &updates),
        [ok(&document), ok(&json!({})), ok(&created)],
    );
    assert_eq!(id, Ok("F1".to_string()));
    feeds.check(&sent[0]).check_body(&sent[0]);
    feeds.check(&sent[2]).check_body(&sent[2]);
    // The uploaded document: a JSON_LISTINGS_FEED of one message per update.
    let uploaded: Value = serde_json::from_slice(&sent[1].body).unwrap();
    assert_valid(&feed_schema, &uploaded, "JSON_LISTINGS_FEED");
    assert_eq!(uploaded["messages"].as_array().map(Vec::len), Some(60));
    let max_messages = spec("amzn_listings-feed-schema-v2.json")["properties"]["messages"]
        ["maxItems"]
        .as_u64()
        .unwrap();
    assert!(FEED_MAX_BATCH as u64 <= max_messages);

    // getFeed until DONE, every processingStatus of the spec read.
    let feed = Submitted {
        channel: &channel,
        id: "F1",
        updates: &updates,
    };
    let get_feed = feeds.operation(&get, "/feeds/2021-06-30/feeds/{feedId}");
    let poll = Amazon.status_request(&feed);
    feeds.check(&poll);
    let statuses = feeds.document()["definitions"]["Feed"]["properties"]["processingStatus"]
        ["enum"]
        .as_array()
        .unwrap()
        .clone();
    for status in &statuses {
        let answer = get_feed.answer(
            200,
            json!({"feedId": "F1", "feedType": "JSON_LISTINGS_FEED", "createdTime": "2026-03-02T12:00:00Z", "processingStatus": status, "resultFeedDocumentId": "R1"}),
        );
        let final_state = ["DONE", "CANCELLED", "FATAL"].contains(&status.as_str().unwrap());
        assert_eq!(Amazon.states().is_final(&answer), final_state, "{status}");
        if status == "DONE" {
            assert_eq!(
                Amazon.read_status(&feed, &answer),
                FeedEnd::Report("R1".into())
            );
        }
    }

    // The processing report: valid per its schema, refusing two messages, gzip-compressed.
    let report = json!({
        "header": {"sellerId": "A1SELLER", "version": "2.0", "feedId": "F1"},
        "issues": [
            {"messageId": 2, "code": "4000001", "severity": "ERROR", "message": "The SKU does not exist."},
            {"messageId": 2, "code": "99001", "severity": "WARNING", "message": "A value is ignored."},
            {"messageId": 45, "code": "8560", "severity": "ERROR", "message": "Invalid quantity."},
            {"messageId": 7, "code": "99001", "severity": "WARNING", "message": "A value is ignored."}
        ],
        "summary": {"errors": 2, "warnings": 2, "messagesProcessed": 60, "messagesAccepted": 58, "messagesInvalid": 2}
    });
    assert_valid(&report_schema, &report, "processing report");
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(report.to_string().as_bytes()).unwrap();
    let compressed = gz.finish().unwrap();
    let document = feeds
        .operation(&get, "/feeds/2021-06-30/documents/{feedDocumentId}")
        .answer(
            200,
            json!({"feedDocumentId": "R1", "url": "https://download.test/R1", "compressionAlgorithm": "GZIP"}),
        );
    let (sent, read) = drive(
        Amazon.report(&feed, "R1"),
        [
            ok(&document),
            Ok(Response {
                status: 200,
                body: compressed,
            }),
        ],
    );
    feeds.check(&sent[0]);
    assert!(sent[1].auth.is_none(), "the pre-signed URL gets no token");
    let results = Amazon.read_report(&feed, &read.unwrap());
    let refused: Vec<usize> = results
        .iter()
        .enumerate()
        .filter(|(_, r)| matches!(r, ItemResult::Rejected { .. }))
        .map(|(i, _)| i + 1)
        .collect();
    assert_eq!(
        refused,
        [2, 45],
        "messageIds with an ERROR are refused, warnings are not"
    );
}

/// Issue 18, item 4: the limits shelfsync applies are the usage plans the specs publish.
#[test]
fn the_operation_limits_are_the_published_usage_plans() {
    let (listings, feeds) = (listings(), feeds());
    let ops = [
        (
            &listings,
            "PATCH",
            "/listings/2021-08-01/items/{sellerId}/{sku}",
        ),
        (&feeds, "POST", "/feeds/2021-06-30/documents"),
        (&feeds, "POST", "/feeds/2021-06-30/feeds"),
        (&feeds, "GET", "/feeds/2021-06-30/feeds/{feedId}"),
        (
            &feeds,
            "GET",
            "/feeds/2021-06-30/documents/{feedDocumentId}",
        ),
    ];
    assert_eq!(LIMITS.len(), ops.len());
    for (spec, method, path) in ops {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let op = spec.operation(&method, path).op;
        let name = op["operationId"].as_str().unwrap();
        let limit = LIMITS
            .iter()
            .find(|l| l.operation == name)
            .unwrap_or_else(|| panic!("no limit for {name}"));
        assert_eq!((limit.rate_per_sec, limit.burst), usage_plan(op), "{name}");
    }
    assert_eq!(
        Amazon
            .operation_limits()
            .iter()
            .map(|l| l.operation)
            .collect::<Vec<_>>(),
        LIMITS.iter().map(|l| l.operation).collect::<Vec<_>>()
    );
}
