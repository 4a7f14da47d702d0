//! Property tests: every record type round-trips and damaged bytes never panic.

use super::codecs::order_v0_text;
use super::*;

// ---------- property tests ----------

fn opt_string() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(".{0,12}")
}

prop_compose! {
    fn arb_inventory_change()(
        sku in "[A-Z0-9-]{0,12}", location in ".{0,8}",
        kind in prop_oneof![Just(InventoryChangeKind::SNAPSHOT), Just(InventoryChangeKind::ADJUSTMENT)],
        quantity in any::<i64>(), erp_sequence in any::<i64>(),
        reason in proptest::option::of(prop_oneof![
            Just(AdjustmentReason::RECEIPT), Just(AdjustmentReason::SHIPMENT), Just(AdjustmentReason::RETURN),
            Just(AdjustmentReason::CORRECTION), Just(AdjustmentReason::OTHER)]),
        order_key in opt_string(), line_id in opt_string(), event_time in any::<i64>(),
    ) -> InventoryChange {
        InventoryChange { sku, location, kind, quantity, erp_sequence, reason, order_key, line_id, event_time }
    }
}

prop_compose! {
    fn arb_product_change()(
        sku in ".{0,12}", active in any::<bool>(), units in any::<i64>(), pct in 0i64..=100,
        overrides in proptest::collection::vec(
            (".{0,8}", any::<bool>(), proptest::option::of(any::<i64>()), proptest::option::of(any::<i64>())), 0..4),
        erp_sequence in any::<i64>(), event_time in any::<i64>(),
    ) -> ProductChange {
        ProductChange {
            sku, active, safety_stock_units: units, safety_stock_pct: pct,
            channel_overrides: overrides.into_iter().map(|(channel, enabled, safety_stock_units, safety_stock_pct)|
                ChannelOverride { channel, enabled, safety_stock_units, safety_stock_pct, safety_stock_percent: None, share_pct: None, buffer: None, max_qty: None, min_publish: None }).collect(),
            erp_sequence, event_time, safety_stock_percent: None,
        }
    }
}

prop_compose! {
    fn arb_line_command()(
        channel in "[a-z]{1,8}", id in "[0-9]{1,12}", revision in any::<i32>(), lines in any::<i32>(),
        line_id in ".{0,6}", sku in ".{0,10}", quantity in any::<i64>(), paid in any::<bool>(),
        cancelled in any::<bool>(), placed_at in any::<i64>(),
        marketplace in any::<bool>(), unit_price in opt_string(), line_total in opt_string(),
        currency in opt_string(), holds_stock in any::<bool>(), has_order in any::<bool>(),
        order_currency in opt_string(), order_total in opt_string(), already_shipped in any::<bool>(),
        skipped in proptest::collection::vec((".{0,6}", opt_string(), any::<i64>()), 0..3),
    ) -> LineCommand {
        LineCommand { order_key: order_key(&channel, &id), channel, channel_order_id: id, revision,
            lines_in_revision: lines, line_id, sku, quantity, paid, cancelled, placed_at,
            fulfilled_by: if marketplace { FulfilledBy::MARKETPLACE } else { FulfilledBy::MERCHANT },
            unit_price, line_total, currency, holds_stock,
            order: has_order.then(|| Box::new(OrderSummary { currency: order_currency, total: order_total,
                already_shipped, skipped_lines: skipped.into_iter().map(|(line_id, sku, quantity)|
                    SkippedLine { line_id, sku, quantity, reason: SkipReason::NO_SKU }).collect() })) }
    }
}

fn arb_command() -> impl Strategy<Value = InventoryCommand> {
    prop_oneof![
        arb_inventory_change().prop_map(InventoryCommand::inventory),
        arb_product_change().prop_map(InventoryCommand::product),
        arb_line_command().prop_map(InventoryCommand::reserve),
        arb_line_command().prop_map(InventoryCommand::release),
    ]
}

fn arb_status() -> impl Strategy<Value = OrderStatusCode> {
    prop_oneof![
        Just(OrderStatusCode::ACCEPTED),
        Just(OrderStatusCode::BACKORDERED),
        Just(OrderStatusCode::PARTIALLY_ACCEPTED),
        Just(OrderStatusCode::REJECTED),
        Just(OrderStatusCode::CANCELLED),
    ]
}

fn arb_outcome() -> impl Strategy<Value = LineOutcome> {
    prop_oneof![
        Just(LineOutcome::RESERVED),
        Just(LineOutcome::BACKORDERED),
        Just(LineOutcome::REJECTED),
        Just(LineOutcome::RELEASED),
    ]
}

prop_compose! {
    fn arb_validated_order()(
        id in ".{0,10}", revision in any::<i32>(), status in arb_status(), paid in any::<bool>(),
        placed_at in any::<i64>(),
        lines in proptest::collection::vec((".{0,4}", ".{0,6}", any::<i64>(), any::<i64>(), any::<i64>(), arb_outcome(), any::<bool>(), proptest::option::of("-?[0-9]{1,6}(\\.[0-9]{1,3})?")), 0..5),
        total in proptest::option::of("[0-9]{1,6}\\.[0-9]{2}"), already_shipped in any::<bool>(),
    ) -> ValidatedOrder {
        ValidatedOrder {
            event_id: stable_id(&[id.as_bytes()]), order_key: order_key("x", &id), channel: "x".into(),
            channel_order_id: id, revision, status, paid, placed_at,
            lines: lines.into_iter().map(|(line_id, sku, quantity, reserved, backordered, outcome, marketplace, price)|
                ValidatedLine { line_id, sku, quantity, reserved, backordered, outcome,
                    fulfilled_by: if marketplace { FulfilledBy::MARKETPLACE } else { FulfilledBy::MERCHANT },
                    currency: price.as_ref().map(|_| "EUR".to_owned()), line_total: price.clone(), unit_price: price }).collect(),
            currency: total.as_ref().map(|_| "GBP".to_owned()), total, already_shipped,
            skipped_lines: vec![SkippedLine { line_id: "tip".into(), sku: None, quantity: 0, reason: SkipReason::NO_SKU }],
        }
    }
}

prop_compose! {
    fn arb_dead_letter()(
        stage in ".{0,8}", partition in any::<i32>(), offset in any::<i64>(),
        key in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
        value in proptest::option::of(proptest::collection::vec(any::<u8>(), 0..64)),
        reason in ".{0,20}", event_time in any::<i64>(),
    ) -> DeadLetter {
        DeadLetter { stage, topic: "t".into(), partition, offset, key, value, error_kind: "decode".into(), reason, event_time }
    }
}

fn arb_framing() -> impl Strategy<Value = Framing> {
    prop_oneof![
        Just(Framing::SingleObject),
        any::<u32>().prop_map(|schema_id| Framing::Confluent { schema_id })
    ]
}

fn round_trips<T: AvroRecord + PartialEq + std::fmt::Debug>(
    x: &T,
    framing: Framing,
) -> Result<(), TestCaseError> {
    let bytes = encode(x, framing).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back: T = decode_with_writer(&bytes, T::compiled())
        .map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(&back, x);
    prop_assert_eq!(encode(x, framing).unwrap(), bytes);
    Ok(())
}

/// Decoding every prefix and a few corruptions of a valid message returns without panicking.
fn never_panics_on_damage<T: AvroRecord>(bytes: &[u8], flips: &[(usize, u8)]) {
    for cut in 0..bytes.len() {
        assert!(decode::<T>(&bytes[..cut]).is_err());
        let _ = decode_with_writer::<T>(&bytes[..cut], T::compiled());
    }
    let mut damaged = bytes.to_vec();
    for &(at, xor) in flips {
        if !damaged.is_empty() {
            let i = at % damaged.len();
            damaged[i] ^= xor;
            let _ = decode::<T>(&damaged);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn prop_inventory_commands_round_trip(x in arb_command(), framing in arb_framing()) {
        round_trips(&x, framing)?;
    }

    #[test]
    fn prop_inventory_changes_round_trip(x in arb_inventory_change(), framing in arb_framing()) {
        round_trips(&x, framing)?;
    }

    #[test]
    fn prop_validated_orders_round_trip(x in arb_validated_order(), framing in arb_framing()) {
        round_trips(&x, framing)?;
    }

    #[test]
    fn prop_dead_letters_round_trip(x in arb_dead_letter(), framing in arb_framing()) {
        round_trips(&x, framing)?;
    }

    #[test]
    fn prop_arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode::<Order>(&bytes);
        let _ = decode::<InventoryCommand>(&bytes);
        let _ = decode::<DeadLetter>(&bytes);
        let _ = decode::<ValidatedOrder>(&bytes);
        let _ = decode_datum::<ProductChange>(&bytes);
        let _ = read_header(&bytes);
    }

    #[test]
    fn prop_arbitrary_datums_after_valid_headers_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256),
        confluent in any::<bool>(),
    ) {
        fn framed<T: AvroRecord>(confluent: bool, body: &[u8]) -> Vec<u8> {
            let mut bytes = if confluent { vec![0, 0, 0, 0, 1] } else { T::compiled().single_object_header().to_vec() };
            bytes.extend_from_slice(body);
            bytes
        }
        let _ = decode::<Order>(&framed::<Order>(confluent, &body));
        let _ = decode::<InventoryCommand>(&framed::<InventoryCommand>(confluent, &body));
        let _ = decode::<DeadLetter>(&framed::<DeadLetter>(confluent, &body));
        let _ = decode::<ValidatedOrder>(&framed::<ValidatedOrder>(confluent, &body));
        let old = CompiledSchema::parse(&order_v0_text()).unwrap();
        let _ = decode_with_writer::<Order>(&framed::<Order>(true, &body), &old);
    }

    #[test]
    fn prop_damaged_encodings_never_panic(
        x in arb_command(),
        v in arb_validated_order(),
        d in arb_dead_letter(),
        framing in arb_framing(),
        flips in proptest::collection::vec((any::<usize>(), 1u8..=255), 0..8),
    ) {
        never_panics_on_damage::<InventoryCommand>(&encode(&x, framing).unwrap(), &flips);
        never_panics_on_damage::<ValidatedOrder>(&encode(&v, framing).unwrap(), &flips);
        never_panics_on_damage::<DeadLetter>(&encode(&d, framing).unwrap(), &flips);
    }
}

#[test]
fn dead_letter_bytes_attribute_keeps_json_and_postcard_shapes() {
    // `DeadLetter.key`/`value` carry `serde_avro_bytes_opt` so they map onto Avro `bytes`; other
    // serde formats see the same shape as a plain `Option<Vec<u8>>`.
    let x = dead_letter();
    let json = serde_json::to_value(&x).unwrap();
    assert_eq!(
        json["key"],
        serde_json::json!(b"shopify:5123456789".to_vec())
    );
    assert_eq!(
        json["value"],
        serde_json::json!([0x7b, 0x00, 0xff, 0xc3, 0x01])
    );
    assert_eq!(
        serde_json::from_value::<DeadLetter>(json.clone()).unwrap(),
        x
    );
    let mut missing = json;
    missing.as_object_mut().unwrap().remove("key");
    assert_eq!(
        serde_json::from_value::<DeadLetter>(missing).unwrap().key,
        None
    );
}
