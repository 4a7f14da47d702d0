//! The project's own raw-order fixtures (`tests/fixtures/`): every valid envelope in `raw/`
//! normalizes to the order recorded in `raw/expected.json`, and every file in `malformed/` fails
//! with the error kind (and path) recorded in `malformed/expected.json`.

mod adapters_support;

use std::collections::BTreeMap;

use adapters_support::{channels, envelope, json_files, project_fixtures, read_bytes, read_json};
use serde::Deserialize;
use serde_json::json;
use shelfsync_schemas::adapters::{
    normalize, parse_envelope, to_order, AdapterError, AdapterKind, MAX_INPUT_BYTES,
};
use shelfsync_schemas::Order;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedOrder {
    adapter: AdapterKind,
    order: Order,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpectedError {
    kind: String,
    path: Option<String>,
}

fn normalize_with_fixture_channels(bytes: &[u8]) -> Result<Order, AdapterError> {
    let channels = channels();
    normalize(bytes, |channel| channels.get(channel).copied())
}

#[test]
fn every_raw_fixture_normalizes_to_its_expected_order() {
    let dir = project_fixtures().join("raw");
    let expected: BTreeMap<String, ExpectedOrder> =
        serde_json::from_value(read_json(&dir.join("expected.json"))).expect("raw/expected.json");
    let files: Vec<String> = json_files(&dir)
        .into_iter()
        .filter(|f| f != "expected.json")
        .collect();
    assert!(files.len() >= 15, "only {} raw fixtures", files.len());
    let channels = channels();
    for name in &files {
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no entry in raw/expected.json"));
        let bytes = read_bytes(&dir.join(name));
        let order =
            normalize_with_fixture_channels(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(order, want.order, "{name}");
        // The channel map and the recorded adapter agree.
        let envelope = parse_envelope(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            channels.get(&envelope.channel),
            Some(&want.adapter),
            "{name}"
        );
        // No other adapter takes the payload for an order.
        for kind in AdapterKind::ALL.into_iter().filter(|k| *k != want.adapter) {
            assert!(
                to_order(kind, &envelope.channel, &envelope).is_err(),
                "{name} also parses as {kind}"
            );
        }
    }
    for name in expected.keys() {
        assert!(
            files.contains(name),
            "raw/expected.json lists {name}, which does not exist"
        );
    }
}

#[test]
fn revisions_of_one_order_share_the_key_and_differ_in_fingerprint() {
    let dir = project_fixtures().join("raw");
    let orders: Vec<Order> = [
        "shopify-create-paid.json",
        "shopify-updated-line-changed.json",
        "shopify-cancelled.json",
    ]
    .iter()
    .map(|name| {
        normalize_with_fixture_channels(&read_bytes(&dir.join(name)))
            .unwrap_or_else(|e| panic!("{name}: {e}"))
    })
    .collect();
    assert!(orders.iter().all(|o| o.key() == "shopify:6129873409021"));
    assert_ne!(orders[0].fingerprint(), orders[1].fingerprint());
    assert_ne!(orders[1].fingerprint(), orders[2].fingerprint());

    // A redelivery (new delivery id, later receive time) has the same fingerprint.
    let bytes = read_bytes(&dir.join("shopify-create-paid.json"));
    let mut redelivery = parse_envelope(&bytes).expect("fixture");
    redelivery.delivery_id = "another-delivery".into();
    redelivery.received_at += 60_000;
    let again = to_order(AdapterKind::Shopify, "shopify", &redelivery).expect("fixture");
    assert_eq!(again.fingerprint(), orders[0].fingerprint());
    assert_ne!(again, orders[0]);
}

#[test]
fn every_malformed_fixture_fails_with_its_expected_kind() {
    let dir = project_fixtures().join("malformed");
    let expected: BTreeMap<String, ExpectedError> =
        serde_json::from_value(read_json(&dir.join("expected.json")))
            .expect("malformed/expected.json");
    let files: Vec<String> = json_files(&dir)
        .into_iter()
        .filter(|f| f != "expected.json")
        .collect();
    assert!(files.len() >= 40, "only {} malformed fixtures", files.len());
    let mut kinds_seen = std::collections::BTreeSet::new();
    for name in &files {
        let want = expected
            .get(name)
            .unwrap_or_else(|| panic!("{name} has no entry in malformed/expected.json"));
        assert!(
            AdapterError::KINDS.contains(&want.kind.as_str()),
            "{name}: unknown kind {}",
            want.kind
        );
        let bytes = read_bytes(&dir.join(name));
        match normalize_with_fixture_channels(&bytes) {
            Ok(order) => panic!("{name} was accepted: {order:?}"),
            Err(e) => {
                assert_eq!(e.kind(), want.kind, "{name}: {e}");
                assert_eq!(e.path(), want.path.as_deref(), "{name}: {e}");
                if let Some(path) = e.path() {
                    assert!(
                        e.to_string().starts_with(path),
                        "{name}: message {e:?} does not lead with its path"
                    );
                }
            }
        }
        kinds_seen.insert(want.kind.clone());
    }
    for name in expected.keys() {
        assert!(
            files.contains(name),
            "malformed/expected.json lists {name}, which does not exist"
        );
    }
    for kind in AdapterError::KINDS {
        if !["payload_too_large", "unknown_adapter"].contains(&kind) {
            assert!(kinds_seen.contains(kind), "no malformed fixture for {kind}");
        }
    }
}

#[test]
fn oversized_records_are_refused_before_parsing() {
    let mut bytes =
        br#"{"channel": "ebay", "delivery_id": "d", "received_at": 1, "payload": ""#.to_vec();
    bytes.resize(MAX_INPUT_BYTES, b'x');
    bytes.extend_from_slice(b"\"}");
    let err = parse_envelope(&bytes).expect_err("too large");
    assert_eq!(err.kind(), "payload_too_large");
    assert_eq!(
        err,
        AdapterError::PayloadTooLarge {
            size: MAX_INPUT_BYTES + 2,
            limit: MAX_INPUT_BYTES
        }
    );

    // Exactly at the limit is fine as far as size goes.
    let mut at_limit =
        br#"{"channel": "ebay", "delivery_id": "d", "received_at": 1, "payload": ""#.to_vec();
    at_limit.resize(MAX_INPUT_BYTES - 2, b'x');
    at_limit.extend_from_slice(b"\"}");
    assert!(parse_envelope(&at_limit).is_ok());
}

#[test]
fn unknown_adapter_names_are_typed_errors() {
    let err = "etsy".parse::<AdapterKind>().expect_err("unknown");
    assert_eq!(err.kind(), "unknown_adapter");
    assert!(err.to_string().contains("etsy"));
    let long = "x".repeat(10_000);
    let err = long.parse::<AdapterKind>().expect_err("unknown");
    assert!(err.to_string().len() < 300, "echoed names are cut");
}

#[test]
fn channel_argument_is_validated() {
    let env = envelope(
        "ebay",
        json!({"order_id": "1", "paid": true, "cancelled": false, "lines": [{"line_id": "1", "sku": "A", "quantity": 1}]}),
    );
    assert!(to_order(AdapterKind::Generic, "ebay", &env).is_ok());
    for bad in ["", "eb|ay", "eb:ay", "eb\tay"] {
        let err = to_order(AdapterKind::Generic, bad, &env).expect_err(bad);
        assert_eq!(
            (err.kind(), err.path()),
            ("invalid_field", Some("channel")),
            "{bad:?}"
        );
    }
}

#[test]
fn generic_accepts_both_timestamp_forms_and_integer_ids() {
    let env = envelope(
        "store-nyc",
        json!({"order_id": 48213, "paid": false, "cancelled": false, "placed_at": "2026-03-02T12:00:00+02:00",
               "lines": [{"line_id": 1, "sku": "MUG-BLUE-350", "quantity": 2}]}),
    );
    let order = to_order(AdapterKind::Generic, "store-nyc", &env).expect("valid");
    assert_eq!(order.channel_order_id, "48213");
    assert_eq!(order.placed_at, 1_772_445_600_000);
    assert_eq!(order.lines[0].line_id, "1");
    assert_eq!(order.key(), "store-nyc:48213");
}

#[test]
fn errors_render_their_path() {
    let env = envelope(
        "ebay",
        json!({"order_id": "1", "paid": true, "cancelled": false, "lines": [
        {"line_id": "1", "sku": "A", "quantity": 1}, {"line_id": "2", "sku": "B", "quantity": 1},
        {"line_id": "3", "sku": "C", "quantity": 0}]}),
    );
    let err = to_order(AdapterKind::Generic, "ebay", &env).expect_err("zero quantity");
    assert_eq!(err.kind(), "invalid_field");
    assert_eq!(err.path(), Some("payload.lines[2].quantity"));
    assert!(
        err.to_string()
            .starts_with("payload.lines[2].quantity: quantity is 0; expected 1 to 1000000"),
        "{err}"
    );
}
