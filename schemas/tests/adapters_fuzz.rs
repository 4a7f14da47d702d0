//! Property tests: whatever the bytes, `parse_envelope` and every adapter return `Ok` or a typed
//! error, never panic; accepted orders always satisfy the adapter guarantees.

mod adapters_support;

use std::sync::OnceLock;

use adapters_support::{
    envelope, json_files, project_fixtures, read_bytes, read_json, shared_fixtures,
};
use proptest::prelude::*;
use serde_json::{Map, Value};
use shelfsync_schemas::adapters::{
    parse_envelope, to_order, AdapterError, AdapterKind, MAX_ID_BYTES, MAX_LINES, MAX_QUANTITY,
    MAX_SKU_BYTES,
};
use shelfsync_schemas::Order;

/// Valid payloads to mutate: the project's raw fixtures and, when present, the marketplaces'.
fn seeds() -> &'static [Value] {
    static SEEDS: OnceLock<Vec<Value>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let raw = project_fixtures().join("raw");
        let mut seeds: Vec<Value> = json_files(&raw)
            .into_iter()
            .filter(|f| f != "expected.json")
            .map(|f| read_json(&raw.join(f))["payload"].clone())
            .collect();
        if let Some(dir) = shared_fixtures() {
            seeds.extend(
                json_files(&dir)
                    .into_iter()
                    .map(|f| read_json(&dir.join(f))),
            );
        }
        seeds
    })
}

/// Raw envelope bytes to truncate and flip.
fn seed_bytes() -> &'static [Vec<u8>] {
    static SEEDS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let mut out = Vec::new();
        for sub in ["raw", "malformed"] {
            let dir = project_fixtures().join(sub);
            out.extend(
                json_files(&dir)
                    .into_iter()
                    .filter(|f| f != "expected.json")
                    .map(|f| read_bytes(&dir.join(f))),
            );
        }
        out
    })
}

/// Checks what every accepted order guarantees.
fn check_order(order: &Order) {
    assert!(!order.channel_order_id.is_empty() && order.channel_order_id.len() <= MAX_ID_BYTES);
    assert!(order.cancelled || !order.lines.is_empty());
    assert!(order.lines.len() <= MAX_LINES);
    let mut ids = std::collections::BTreeSet::new();
    for line in &order.lines {
        assert!((1..=MAX_QUANTITY).contains(&line.quantity), "{line:?}");
        assert!(
            !line.sku.trim().is_empty() && line.sku.len() <= MAX_SKU_BYTES,
            "{line:?}"
        );
        assert!(
            !line.line_id.is_empty() && line.line_id.len() <= MAX_ID_BYTES,
            "{line:?}"
        );
        assert!(ids.insert(line.line_id.clone()), "duplicate {line:?}");
    }
}

/// Runs every adapter on `payload`; must not panic.
fn run_all(payload: Value) {
    let env = envelope("fuzz", payload);
    for kind in AdapterKind::ALL {
        match to_order(kind, "fuzz", &env) {
            Ok(order) => check_order(&order),
            Err(e) => check_error(&e),
        }
    }
}

fn check_error(e: &AdapterError) {
    assert!(AdapterError::KINDS.contains(&e.kind()));
    let _ = e.to_string();
}

/// Runs the whole normalize path on bytes; must not panic.
fn run_bytes(bytes: &[u8]) {
    match parse_envelope(bytes) {
        Ok(env) => {
            for kind in AdapterKind::ALL {
                match to_order(kind, &env.channel, &env) {
                    Ok(order) => check_order(&order),
                    Err(e) => check_error(&e),
                }
            }
        }
        Err(e) => check_error(&e),
    }
}

fn arb_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        (-1e20f64..1e20).prop_map(Value::from),
        prop_oneof![
            Just(0_i64),
            Just(1),
            Just(-1),
            Just(MAX_QUANTITY),
            Just(MAX_QUANTITY + 1)
        ]
        .prop_map(Value::from),
        "[ -~]{0,12}".prop_map(Value::String),
        prop_oneof![
            Just("2026-03-02T10:15:22-05:00"),
            Just("gid://shopify/Order/1"),
            Just("Canceled"),
            Just("Cancelled"),
            Just("Unshipped"),
            Just("paid"),
            Just("1"),
            Just("")
        ]
        .prop_map(|s| Value::String(s.to_owned())),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(field_name(), inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

/// Mostly field names the adapters look for, so random objects get past the first checks.
fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => prop::sample::select(vec![
            "order", "items", "payload", "line_items", "id", "admin_graphql_api_id", "sku", "quantity",
            "current_quantity", "financial_status", "cancelled_at", "created_at", "AmazonOrderId", "OrderStatus",
            "OrderItems", "OrderItemId", "SellerSKU", "QuantityOrdered", "NextToken", "NotificationType",
            "Payload", "OrderChangeNotification", "Summary", "Quantity", "OrderItemStatus", "orderId",
            "orderItems", "product", "sellerSku", "quantityOrdered", "fulfillment", "fulfillmentStatus",
            "purchaseOrderId", "orderDate", "orderLines", "orderLine", "lineNumber", "item",
            "orderLineQuantity", "amount", "orderLineStatuses", "orderLineStatus", "status", "statusQuantity",
            "order_id", "paid", "cancelled", "placed_at", "lines", "line_id", "list",
        ]).prop_map(str::to_owned),
        1 => "[a-zA-Z_]{1,8}",
    ]
}

/// A random edit somewhere in `value`: replace a node, delete a key, truncate an array, or
/// duplicate an array element. `path` picks the node (each step is an index taken modulo the
/// number of children).
fn mutate(value: &mut Value, path: &[usize], op: u8, replacement: Value) {
    let Some((&step, rest)) = path.split_first() else {
        apply(value, op, replacement);
        return;
    };
    let child = match value {
        Value::Object(map) if !map.is_empty() => {
            let key = map.keys().nth(step % map.len()).cloned();
            key.and_then(|k| map.get_mut(&k))
        }
        Value::Array(items) if !items.is_empty() => {
            let len = items.len();
            items.get_mut(step % len)
        }
        _ => None,
    };
    match child {
        Some(child) => mutate(child, rest, op, replacement),
        None => apply(value, op, replacement),
    }
}

fn apply(value: &mut Value, op: u8, replacement: Value) {
    match (op % 4, &mut *value) {
        (1, Value::Object(map)) if !map.is_empty() => {
            let key = map.keys().next().cloned().unwrap_or_default();
            map.remove(&key);
        }
        (2, Value::Array(items)) => {
            let keep = items.len() / 2;
            items.truncate(keep);
        }
        (3, Value::Array(items)) if !items.is_empty() => {
            let first = items[0].clone();
            items.push(first);
        }
        _ => *value = replacement,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1024, .. ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        run_bytes(&bytes);
    }

    #[test]
    fn arbitrary_json_payloads_never_panic(payload in arb_json()) {
        run_all(payload);
    }

    #[test]
    fn arbitrary_envelopes_never_panic(
        channel in "[ -~]{0,10}",
        delivery in "[ -~]{0,10}",
        received_at in any::<i64>(),
        payload in arb_json(),
    ) {
        let bytes = serde_json::to_vec(&serde_json::json!({
            "channel": channel, "delivery_id": delivery, "received_at": received_at, "payload": payload,
        })).unwrap_or_default();
        run_bytes(&bytes);
    }

    #[test]
    fn mutated_valid_payloads_never_panic(
        seed in any::<prop::sample::Index>(),
        edits in prop::collection::vec(
            (prop::collection::vec(any::<usize>(), 0..8), any::<u8>(), arb_json()),
            1..4,
        ),
    ) {
        let seeds = seeds();
        let mut payload = seeds[seed.index(seeds.len())].clone();
        for (path, op, replacement) in edits {
            mutate(&mut payload, &path, op, replacement);
        }
        run_all(payload);
    }

    #[test]
    fn truncated_and_flipped_records_never_panic(
        seed in any::<prop::sample::Index>(),
        cut in any::<prop::sample::Index>(),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..4),
    ) {
        let seeds = seed_bytes();
        let mut bytes = seeds[seed.index(seeds.len())].clone();
        for (at, byte) in flips {
            if !bytes.is_empty() {
                let i = at.index(bytes.len());
                bytes[i] = byte;
            }
        }
        let keep = cut.index(bytes.len() + 1);
        run_bytes(&bytes[..keep]);
        run_bytes(&bytes);
    }
}

#[test]
fn deeply_nested_json_is_a_typed_error() {
    let mut bytes =
        br#"{"channel": "ebay", "delivery_id": "d", "received_at": 1, "payload": "#.to_vec();
    bytes.extend(std::iter::repeat_n(b'[', 100_000));
    bytes.extend(std::iter::repeat_n(b']', 100_000));
    bytes.push(b'}');
    let err = parse_envelope(&bytes).expect_err("recursion limit");
    assert_eq!(err.kind(), "bad_json");
}

#[test]
fn payload_built_in_code_with_deep_nesting_does_not_overflow() {
    // Adapters only walk fixed paths, so a deep payload that never went through serde is fine.
    // (1,000 levels: deeper values overflow serde_json's own recursive clone and drop.)
    let mut deep = Value::Null;
    for _ in 0..1_000 {
        let mut map = Map::new();
        map.insert("order".into(), deep);
        deep = Value::Object(map);
    }
    run_all(deep);
}
