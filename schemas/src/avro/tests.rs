use super::*;
use crate::model::*;

use apache_avro::schema::RecordSchema;
use apache_avro::types::Value;
use proptest::prelude::*;
use std::collections::BTreeMap;

const FRAMINGS: [Framing; 2] = [Framing::SingleObject, Framing::Confluent { schema_id: 42 }];

// ---------- realistic values ----------

fn inventory_change() -> InventoryChange {
    InventoryChange {
        sku: "SKU-1001".into(),
        location: "WH-EAST".into(),
        kind: InventoryChangeKind::ADJUSTMENT,
        quantity: -2,
        erp_sequence: 981_223,
        reason: Some(AdjustmentReason::SHIPMENT),
        order_key: Some("amazon:113-4455667-8899001".into()),
        line_id: Some("52817493021".into()),
        event_time: 1_718_000_000_123,
    }
}

fn inventory_snapshot() -> InventoryChange {
    InventoryChange {
        sku: "SKU-1001".into(),
        location: "STORE-042".into(),
        kind: InventoryChangeKind::SNAPSHOT,
        quantity: 37,
        erp_sequence: 981_224,
        reason: None,
        order_key: None,
        line_id: None,
        event_time: 1_718_000_001_000,
    }
}

fn product_change() -> ProductChange {
    ProductChange {
        sku: "SKU-1001".into(),
        active: true,
        safety_stock_units: 2,
        safety_stock_pct: 10,
        channel_overrides: vec![
            ChannelOverride {
                channel: "amazon".into(),
                enabled: true,
                safety_stock_units: Some(5),
                safety_stock_pct: None,
            },
            ChannelOverride {
                channel: "ebay".into(),
                enabled: false,
                safety_stock_units: None,
                safety_stock_pct: Some(0),
            },
        ],
        erp_sequence: 77,
        event_time: 1_718_000_002_000,
    }
}

fn line_command() -> LineCommand {
    LineCommand {
        order_key: "shopify:5123456789".into(),
        channel: "shopify".into(),
        channel_order_id: "5123456789".into(),
        revision: 2,
        lines_in_revision: 3,
        line_id: "13456789012".into(),
        sku: "SKU-1001".into(),
        quantity: 4,
        paid: true,
        cancelled: false,
        placed_at: 1_717_999_000_000,
    }
}

fn order() -> Order {
    Order {
        channel: "walmart".into(),
        channel_order_id: "1796277083022".into(),
        paid: true,
        cancelled: false,
        placed_at: 1_717_990_000_000,
        lines: vec![
            OrderLine {
                line_id: "1".into(),
                sku: "SKU-1001".into(),
                quantity: 2,
            },
            OrderLine {
                line_id: "2".into(),
                sku: "SKU-ÄÖÜ-β".into(),
                quantity: 1,
            },
        ],
        delivery_id: "d1c7b3a2-0000-4e5f-9a8b-123456789abc".into(),
        received_at: 1_717_990_000_500,
    }
}

fn line_result() -> LineResult {
    LineResult {
        order_key: "shopify:5123456789".into(),
        channel: "shopify".into(),
        channel_order_id: "5123456789".into(),
        revision: 1,
        lines_in_revision: 2,
        line_id: "13456789012".into(),
        sku: "SKU-1001".into(),
        quantity: 5,
        reserved: 3,
        backordered: 2,
        outcome: LineOutcome::BACKORDERED,
        paid: false,
        cancelled: false,
        placed_at: 1_717_999_000_000,
    }
}

fn channel_availability() -> ChannelAvailability {
    ChannelAvailability {
        event_id: stable_id(&[b"amazon", b"SKU-1001", &7i64.to_le_bytes()]),
        channel: "amazon".into(),
        sku: "SKU-1001".into(),
        quantity: 0,
        version: 7,
        event_time: 1_718_000_003_000,
    }
}

fn validated_order() -> ValidatedOrder {
    ValidatedOrder {
        event_id: stable_id(&[b"ebay:12-34567-89012", &1i32.to_le_bytes()]),
        order_key: "ebay:12-34567-89012".into(),
        channel: "ebay".into(),
        channel_order_id: "12-34567-89012".into(),
        revision: 1,
        status: OrderStatusCode::PARTIALLY_ACCEPTED,
        paid: true,
        placed_at: 1_717_980_000_000,
        lines: vec![
            ValidatedLine {
                line_id: "1".into(),
                sku: "SKU-1".into(),
                quantity: 1,
                reserved: 1,
                backordered: 0,
                outcome: LineOutcome::RESERVED,
            },
            ValidatedLine {
                line_id: "2".into(),
                sku: "SKU-2".into(),
                quantity: 3,
                reserved: 0,
                backordered: 0,
                outcome: LineOutcome::REJECTED,
            },
        ],
    }
}

fn order_status() -> OrderStatus {
    OrderStatus {
        event_id: stable_id(&[
            b"ebay:12-34567-89012",
            &1i32.to_le_bytes(),
            b"PARTIALLY_ACCEPTED",
        ]),
        order_key: "ebay:12-34567-89012".into(),
        channel: "ebay".into(),
        channel_order_id: "12-34567-89012".into(),
        revision: 1,
        status: OrderStatusCode::PARTIALLY_ACCEPTED,
        rejected_lines: 1,
        backordered_lines: 0,
    }
}

fn instance_announcement() -> InstanceAnnouncement {
    InstanceAnnouncement {
        instance_id: "shelfsync-1".into(),
        http_url: "http://shelfsync-1.shelfsync:9464".into(),
        announced_at: 1_718_000_005_000,
        ttl_ms: 30_000,
        tasks: vec![
            TaskClaim {
                task: "inventory-0".into(),
                since: 1_718_000_000_000,
                opening: false,
            },
            TaskClaim {
                task: "assemble-2".into(),
                since: 1_718_000_004_500,
                opening: true,
            },
        ],
    }
}

fn dead_letter() -> DeadLetter {
    DeadLetter {
        stage: "normalize".into(),
        topic: "retail.channel.orders.raw".into(),
        partition: 3,
        offset: 1_234_567,
        key: Some(b"shopify:5123456789".to_vec()),
        value: Some(vec![0x7b, 0x00, 0xff, 0xc3, 0x01]),
        error_kind: "decode".into(),
        reason: "payload.line_items[0].quantity: expected an integer".into(),
        event_time: 1_718_000_004_000,
    }
}

fn dead_letter_tombstone() -> DeadLetter {
    DeadLetter {
        key: None,
        value: Some(Vec::new()),
        ..dead_letter()
    }
}

/// Runs `check` on realistic values of every top-level type.
macro_rules! for_each_sample {
    ($check:ident) => {{
        $check(&inventory_change());
        $check(&inventory_snapshot());
        $check(&product_change());
        $check(&InventoryCommand::inventory(inventory_change()));
        $check(&InventoryCommand::product(product_change()));
        $check(&InventoryCommand::reserve(line_command()));
        $check(&InventoryCommand::release(line_command()));
        $check(&order());
        $check(&Order {
            lines: vec![],
            placed_at: 0,
            ..order()
        });
        $check(&line_result());
        $check(&channel_availability());
        $check(&validated_order());
        $check(&order_status());
        $check(&dead_letter());
        $check(&dead_letter_tombstone());
        $check(&instance_announcement());
        $check(&InstanceAnnouncement {
            tasks: vec![],
            ..instance_announcement()
        });
    }};
}

/// Runs `check::<T>()` for every top-level type.
macro_rules! for_each_type {
    ($check:ident) => {{
        $check::<InventoryChange>();
        $check::<ProductChange>();
        $check::<InventoryCommand>();
        $check::<Order>();
        $check::<LineResult>();
        $check::<ChannelAvailability>();
        $check::<ValidatedOrder>();
        $check::<OrderStatus>();
        $check::<DeadLetter>();
        $check::<InstanceAnnouncement>();
    }};
}

// ---------- schema files ----------

#[test]
fn every_avsc_parses_and_is_named_as_its_type() {
    fn check<T: AvroRecord>() {
        let compiled = T::compiled();
        assert_eq!(compiled.full_name(), T::NAME);
        assert!(
            matches!(T::schema(), Schema::Record(_)),
            "{} is not a record",
            T::NAME
        );
        assert!(
            all_schemas().iter().any(|(name, _)| *name == T::NAME),
            "{} not listed",
            T::NAME
        );
    }
    for_each_type!(check);
    assert_eq!(all_schemas().len(), 10);
    for (name, text) in all_schemas() {
        let compiled = CompiledSchema::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(compiled.full_name(), *name);
        assert!(name.starts_with(NAMESPACE));
        // The schemas are plain JSON that other teams' tooling reads.
        serde_json::from_str::<serde_json::Value>(text).unwrap_or_else(|e| panic!("{name}: {e}"));
    }
}

/// Walks a schema's JSON and calls `f` on every record field object.
fn each_field_json(json: &serde_json::Value, f: &mut impl FnMut(&serde_json::Value)) {
    match json {
        serde_json::Value::Object(map) => {
            if let Some(serde_json::Value::Array(fields)) = map.get("fields") {
                for field in fields {
                    f(field);
                }
            }
            for v in map.values() {
                each_field_json(v, f);
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| each_field_json(v, f)),
        _ => {}
    }
}

#[test]
fn every_field_has_a_doc_and_nullable_fields_default_to_null() {
    for (name, text) in all_schemas() {
        let json: serde_json::Value = serde_json::from_str(text).unwrap();
        assert!(
            json.get("doc")
                .and_then(|d| d.as_str())
                .is_some_and(|d| !d.is_empty()),
            "{name} has no doc"
        );
        each_field_json(&json, &mut |field| {
            let fname = field["name"].as_str().unwrap_or("?");
            assert!(
                field["doc"].as_str().is_some_and(|d| !d.is_empty()),
                "{name}.{fname} has no doc"
            );
            if let Some(branches) = field["type"].as_array() {
                assert_eq!(branches[0], "null", "{name}.{fname}: null must come first");
                assert!(
                    field["default"].is_null() && field.get("default").is_some(),
                    "{name}.{fname}: default null"
                );
            }
        });
    }
}

/// Collects every named type definition of a schema with its canonical form.
fn named_definitions(schema: &Schema, out: &mut Vec<(String, String)>) {
    match schema {
        Schema::Record(RecordSchema { name, fields, .. }) => {
            out.push((name.fullname(None), schema.canonical_form()));
            for field in fields {
                named_definitions(&field.schema, out);
            }
        }
        Schema::Enum(e) => out.push((e.name.fullname(None), schema.canonical_form())),
        Schema::Array(a) => named_definitions(&a.items, out),
        Schema::Union(u) => u.variants().iter().for_each(|v| named_definitions(v, out)),
        Schema::Ref { name } => panic!(
            "{}: the encoder cannot follow references; define each named type once per file",
            name.fullname(None)
        ),
        _ => {}
    }
}

#[test]
fn named_types_inlined_in_several_files_are_identical() {
    let mut all = Vec::new();
    for (_, text) in all_schemas() {
        named_definitions(&CompiledSchema::parse(text).unwrap().schema, &mut all);
    }
    let mut by_name: BTreeMap<String, String> = BTreeMap::new();
    for (name, canonical) in all {
        assert!(
            name.starts_with("com.shelfsync.v1."),
            "{name} outside the namespace"
        );
        match by_name.get(&name) {
            Some(first) => assert_eq!(first, &canonical, "{name} differs between files"),
            None => {
                by_name.insert(name, canonical);
            }
        }
    }
    // Docs of the inlined copies match too (the generator inlines the standalone files).
    let standalone: serde_json::Value = serde_json::from_str(text::InventoryChange).unwrap();
    let command: serde_json::Value = serde_json::from_str(text::InventoryCommand).unwrap();
    let mut inlined = command["fields"][2]["type"][1].clone();
    inlined
        .as_object_mut()
        .unwrap()
        .insert("namespace".into(), NAMESPACE.into());
    assert_eq!(inlined, standalone);
}

/// Checks that the Avro field names and order of every record in `value` are serde's.
fn assert_fields_match(value: &Value, schema: &Schema, path: &str) {
    match (value, schema) {
        (Value::Record(fields), Schema::Record(record)) => {
            let rust: Vec<&str> = fields.iter().map(|(n, _)| n.as_str()).collect();
            let avro: Vec<&str> = record.fields.iter().map(|f| f.name.as_str()).collect();
            assert_eq!(
                rust, avro,
                "{path}: field names/order differ between Rust and .avsc"
            );
            for ((name, v), f) in fields.iter().zip(&record.fields) {
                assert_fields_match(v, &f.schema, &format!("{path}.{name}"));
            }
        }
        (Value::Union(i, v), Schema::Union(u)) => {
            assert_fields_match(v, &u.variants()[*i as usize], path)
        }
        (Value::Array(items), Schema::Array(a)) => items
            .iter()
            .for_each(|v| assert_fields_match(v, &a.items, path)),
        (Value::Enum(_, symbol), Schema::Enum(e)) => {
            assert!(e.symbols.contains(symbol), "{path}: {symbol}")
        }
        _ => {}
    }
}

#[test]
fn rust_values_resolve_against_their_schema() {
    fn check<T: AvroRecord + std::fmt::Debug>(x: &T) {
        let value = apache_avro::to_value(x).unwrap();
        let resolved = value
            .resolve(T::schema())
            .unwrap_or_else(|e| panic!("{}: {e}", T::NAME));
        assert!(resolved.validate(T::schema()), "{}", T::NAME);
        assert_fields_match(&resolved, T::schema(), T::NAME);
        // `apache_avro`'s own reader agrees with ours.
        let datum = apache_avro::to_avro_datum(T::schema(), resolved).unwrap();
        let mut ours = Vec::new();
        encode_datum_into(x, &mut ours).unwrap();
        assert_eq!(datum, ours, "{}: encoders disagree", T::NAME);
        let back = apache_avro::from_avro_datum(T::schema(), &mut datum.as_slice(), None).unwrap();
        let theirs: T = apache_avro::from_value(&back).unwrap();
        let mine: T = decode_datum(&datum).unwrap();
        assert_eq!(
            apache_avro::to_value(&theirs).unwrap(),
            apache_avro::to_value(&mine).unwrap()
        );
    }
    for_each_sample!(check);
}

#[test]
fn enum_symbols_are_the_rust_variants_in_declaration_order() {
    // The encoder writes a unit variant's index, so symbol order must be declaration order.
    fn symbols(schema: &Schema, name: &str) -> Vec<String> {
        let mut defs = Vec::new();
        named_definitions(schema, &mut defs);
        let canonical = defs.into_iter().find(|(n, _)| n.ends_with(name)).unwrap().1;
        let json: serde_json::Value = serde_json::from_str(&canonical).unwrap();
        json["symbols"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect()
    }
    fn names<T: Serialize>(variants: &[T]) -> Vec<String> {
        variants
            .iter()
            .map(|v| {
                serde_json::to_value(v)
                    .unwrap()
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect()
    }
    use AdjustmentReason::*;
    use CommandKind::*;
    use InventoryChangeKind::*;
    use LineOutcome::*;
    use OrderStatusCode::*;
    assert_eq!(
        symbols(InventoryChange::schema(), ".InventoryChangeKind"),
        names(&[SNAPSHOT, ADJUSTMENT])
    );
    assert_eq!(
        symbols(InventoryChange::schema(), ".AdjustmentReason"),
        names(&[RECEIPT, SHIPMENT, RETURN, CORRECTION, OTHER])
    );
    assert_eq!(
        symbols(InventoryCommand::schema(), ".CommandKind"),
        names(&[INVENTORY, PRODUCT, RESERVE, RELEASE])
    );
    assert_eq!(
        symbols(LineResult::schema(), ".LineOutcome"),
        names(&[
            RESERVED,
            LineOutcome::BACKORDERED,
            LineOutcome::REJECTED,
            RELEASED
        ])
    );
    assert_eq!(
        symbols(OrderStatus::schema(), ".OrderStatusCode"),
        names(&[
            ACCEPTED,
            OrderStatusCode::BACKORDERED,
            PARTIALLY_ACCEPTED,
            OrderStatusCode::REJECTED,
            CANCELLED
        ])
    );
}

// ---------- codecs ----------

#[test]
fn round_trip_every_type_under_both_framings() {
    fn check<T: AvroRecord + PartialEq + std::fmt::Debug>(x: &T) {
        for framing in FRAMINGS {
            let bytes = encode(x, framing).unwrap();
            let back: T = decode(&bytes).unwrap_or_else(|e| panic!("{} {framing:?}: {e}", T::NAME));
            assert_eq!(&back, x);
            // Deterministic: the same value always gives the same bytes.
            assert_eq!(encode(x, framing).unwrap(), bytes);
            let back: T = decode_with_writer(&bytes, T::compiled()).unwrap();
            assert_eq!(&back, x);
        }
    }
    for_each_sample!(check);
}

#[test]
fn headers_are_as_specified() {
    let x = order();
    let so = encode(&x, Framing::SingleObject).unwrap();
    assert_eq!(&so[..2], &[0xC3, 0x01]);
    assert_eq!(&so[2..10], &fingerprint::<Order>());
    assert_eq!(
        read_header(&so).unwrap().0,
        Header::SingleObject {
            fingerprint: fingerprint::<Order>()
        }
    );

    let cf = encode(
        &x,
        Framing::Confluent {
            schema_id: 0x0102_0304,
        },
    )
    .unwrap();
    assert_eq!(&cf[..5], &[0, 1, 2, 3, 4]);
    assert_eq!(&so[10..], &cf[5..], "same datum under both framings");
    assert_eq!(
        read_header(&cf).unwrap(),
        (
            Header::Confluent {
                schema_id: 0x0102_0304
            },
            &cf[5..]
        )
    );

    // The fingerprint is the little-endian CRC-64-AVRO of the canonical form, and the whole
    // message is what apache_avro's own single-object writer produces.
    let compiled = Order::compiled();
    assert_eq!(
        compiled.fingerprint().to_vec(),
        Order::schema().fingerprint::<Rabin>().bytes
    );
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(Order::schema(), 1024).unwrap();
    let mut theirs = Vec::new();
    let value = apache_avro::to_value(&x)
        .unwrap()
        .resolve(Order::schema())
        .unwrap();
    writer.write_value(value, &mut theirs).unwrap();
    assert_eq!(theirs, so);
}

#[test]
fn fingerprints_are_distinct() {
    let mut seen = std::collections::HashSet::new();
    fn fp<T: AvroRecord>() -> [u8; 8] {
        fingerprint::<T>()
    }
    for f in [
        fp::<InventoryChange>(),
        fp::<ProductChange>(),
        fp::<InventoryCommand>(),
        fp::<Order>(),
        fp::<LineResult>(),
        fp::<ChannelAvailability>(),
        fp::<ValidatedOrder>(),
        fp::<OrderStatus>(),
        fp::<DeadLetter>(),
        fp::<InstanceAnnouncement>(),
    ] {
        assert!(seen.insert(f));
    }
}

#[test]
fn fingerprint_mismatch_is_an_error() {
    let bytes = encode(&order(), Framing::SingleObject).unwrap();
    let err = decode::<OrderStatus>(&bytes).unwrap_err();
    assert_eq!(
        err,
        AvroError::FingerprintMismatch {
            record: "com.shelfsync.v1.OrderStatus",
            expected: fingerprint::<OrderStatus>(),
            found: fingerprint::<Order>(),
        }
    );
    assert!(err.is_bad_input());
    assert_eq!(err.kind(), "schema_mismatch");
    assert!(err.to_string().contains("fingerprint"), "{err}");
    // decode_with_writer checks the fingerprint against the writer it is given.
    assert!(matches!(
        decode_with_writer::<Order>(&bytes, OrderStatus::compiled()),
        Err(AvroError::FingerprintMismatch { .. })
    ));
}

#[test]
fn confluent_datum_of_another_type_is_an_error() {
    // Without a fingerprint the mistake shows up as a bad datum (or left-over bytes).
    let bytes = encode(&order(), Framing::Confluent { schema_id: 1 }).unwrap();
    let err = decode::<ChannelAvailability>(&bytes).unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::InvalidDatum { .. } | AvroError::TrailingBytes { .. }
        ),
        "{err}"
    );
    let bytes = encode(&order_status(), Framing::Confluent { schema_id: 1 }).unwrap();
    assert!(decode::<DeadLetter>(&bytes).is_err());
}

#[test]
fn framing_errors() {
    assert_eq!(decode::<Order>(&[]).unwrap_err(), AvroError::Empty);
    assert_eq!(
        decode::<Order>(&[0x7b, 0x22]).unwrap_err(),
        AvroError::UnknownFraming {
            prefix: vec![0x7b, 0x22]
        }
    );
    assert_eq!(
        decode::<Order>(&[0xC3, 0x02, 1]).unwrap_err().kind(),
        "framing"
    );
    assert_eq!(
        decode::<Order>(&[0xC3, 0x01, 1, 2]).unwrap_err(),
        AvroError::TruncatedHeader {
            framing: "single-object",
            need: 10,
            len: 4
        }
    );
    assert_eq!(decode::<Order>(&[0xC3]).unwrap_err().kind(), "framing");
    assert_eq!(
        decode::<Order>(&[0, 0, 0]).unwrap_err(),
        AvroError::TruncatedHeader {
            framing: "Confluent",
            need: 5,
            len: 3
        }
    );
    let msg = AvroError::UnknownFraming { prefix: vec![0x7b] }.to_string();
    assert!(msg.contains("0x7b"), "{msg}");
}

#[test]
fn truncated_and_padded_datums_are_errors() {
    let bytes = encode(&validated_order(), Framing::SingleObject).unwrap();
    for cut in 10..bytes.len() {
        let err = decode::<ValidatedOrder>(&bytes[..cut]).unwrap_err();
        assert!(
            matches!(err, AvroError::InvalidDatum { .. }),
            "cut at {cut}: {err}"
        );
    }
    let mut padded = bytes.clone();
    padded.push(0);
    assert_eq!(
        decode::<ValidatedOrder>(&padded).unwrap_err(),
        AvroError::TrailingBytes {
            record: ValidatedOrder::NAME,
            count: 1
        }
    );
}

#[test]
fn hostile_lengths_are_refused_without_allocating() {
    // Confluent header, then an Order whose first string claims 2^62 bytes.
    let mut bytes = vec![0, 0, 0, 0, 1];
    bytes.extend_from_slice(&[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f]);
    let err = decode::<Order>(&bytes).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");

    // A valid prefix up to `lines`, then an array block of a billion lines. The datum of this
    // order ends with lines (0 = empty array), delivery_id ("") and received_at (0): drop those
    // three bytes and put a huge block count where the empty array was.
    let mut prefix = Vec::new();
    encode_datum_into(
        &Order {
            lines: vec![],
            delivery_id: String::new(),
            received_at: 0,
            ..order()
        },
        &mut prefix,
    )
    .unwrap();
    prefix.truncate(prefix.len() - 3); // drop lines=0, delivery_id="" and received_at=0
    let mut hostile = vec![0, 0, 0, 0, 1];
    hostile.extend_from_slice(&prefix);
    hostile.extend_from_slice(&[0x80, 0xa8, 0xd6, 0xb9, 0x07]); // zig-zag 1_000_000_000
    hostile.extend_from_slice(&[2, b'a', 2, b'b', 2]);
    let err = decode::<Order>(&hostile).unwrap_err();
    assert!(
        err.to_string().contains("block of 1000000000 items"),
        "{err}"
    );
    // The same bytes through the resolving path are refused by the pre-check.
    let err =
        decode_with_writer::<Order>(&hostile, &CompiledSchema::parse(&order_v0_text()).unwrap());
    assert!(err.is_err());
}

#[test]
fn invalid_bytes_inside_a_datum_are_reported() {
    let x = order_status();
    let mut bytes = encode(&x, Framing::Confluent { schema_id: 9 }).unwrap();
    // `status` is the 6th field; rebuild with an out-of-range enum index.
    let mut datum = Vec::new();
    encode_datum_into(&x, &mut datum).unwrap();
    let fixed_len = 5 + datum.len();
    assert_eq!(bytes.len(), fixed_len);
    let status_at = bytes.len() - 3; // status, rejected_lines, backordered_lines are 1 byte each here
    assert_eq!(bytes[status_at], 2 * 2); // PARTIALLY_ACCEPTED = index 2, zig-zag 4
    bytes[status_at] = 2 * 9;
    let err = decode::<OrderStatus>(&bytes).unwrap_err();
    assert!(
        err.to_string().contains("enum index 9 out of range"),
        "{err}"
    );
    assert!(err.to_string().contains("status"), "{err}");

    // Invalid UTF-8 in a string.
    let mut bytes = encode(&x, Framing::Confluent { schema_id: 9 }).unwrap();
    bytes[6] = 0xff; // first byte of event_id's text
    let err = decode::<OrderStatus>(&bytes).unwrap_err();
    assert!(err.to_string().contains("UTF-8"), "{err}");
}

#[test]
fn encode_into_appends_and_reuses_the_buffer() {
    let mut buf = b"prefix".to_vec();
    encode_into(&order(), Framing::SingleObject, &mut buf).unwrap();
    assert_eq!(&buf[..6], b"prefix");
    assert_eq!(decode::<Order>(&buf[6..]).unwrap(), order());
}

// ---------- schema evolution ----------

/// An older Order schema: no `received_at`, and an extra field the current reader does not know.
fn order_v0_text() -> String {
    let mut json: serde_json::Value = serde_json::from_str(text::Order).unwrap();
    let fields = json["fields"].as_array_mut().unwrap();
    fields.retain(|f| f["name"] != "received_at");
    fields.push(serde_json::json!({"name": "gift_note", "type": "string", "doc": "removed later"}));
    json.to_string()
}

#[test]
fn decode_with_writer_resolves_schema_changes() {
    // A writer that lacks a field the reader has with a default, and has a field the reader lacks.
    let writer_text = {
        let mut json: serde_json::Value = serde_json::from_str(text::InventoryChange).unwrap();
        let fields = json["fields"].as_array_mut().unwrap();
        fields.retain(|f| f["name"] != "line_id");
        fields.insert(
            0,
            serde_json::json!({"name": "batch", "type": "string", "doc": "x"}),
        );
        json.to_string()
    };
    let writer = CompiledSchema::parse(&writer_text).unwrap();
    assert_ne!(writer.fingerprint(), fingerprint::<InventoryChange>());
    let x = inventory_change();
    let mut written = apache_avro::to_value(&x).unwrap();
    if let Value::Record(fields) = &mut written {
        fields.retain(|(n, _)| n != "line_id");
        fields.insert(0, ("batch".into(), Value::String("B-7".into())));
    }
    let written = written.resolve(writer.schema()).unwrap();
    let datum = apache_avro::to_avro_datum(writer.schema(), written).unwrap();
    let mut bytes = writer.single_object_header().to_vec();
    bytes.extend_from_slice(&datum);
    let back: InventoryChange = decode_with_writer(&bytes, &writer).unwrap();
    assert_eq!(
        back,
        InventoryChange {
            line_id: None,
            ..x.clone()
        }
    );
    // Plain decode refuses it: the fingerprint is not InventoryChange's.
    assert!(matches!(
        decode::<InventoryChange>(&bytes),
        Err(AvroError::FingerprintMismatch { .. })
    ));

    // A writer that lacks a field without default cannot be read.
    let old = CompiledSchema::parse(&order_v0_text()).unwrap();
    let mut value = apache_avro::to_value(order()).unwrap();
    if let Value::Record(fields) = &mut value {
        fields.retain(|(n, _)| n != "received_at");
        fields.push(("gift_note".into(), Value::String("hi".into())));
    }
    let datum =
        apache_avro::to_avro_datum(old.schema(), value.resolve(old.schema()).unwrap()).unwrap();
    let mut bytes = vec![0, 0, 0, 0, 7];
    bytes.extend_from_slice(&datum);
    let err = decode_with_writer::<Order>(&bytes, &old).unwrap_err();
    assert!(matches!(err, AvroError::Incompatible { .. }), "{err}");
    assert_eq!(err.kind(), "incompatible_schema");
}

#[test]
fn compiled_schema_parse_errors() {
    let err = CompiledSchema::parse("{\"type\": \"record\"").unwrap_err();
    assert!(matches!(err, AvroError::Schema { .. }));
    assert!(!err.is_bad_input());
}

#[test]
fn references_and_recursion_in_writer_schemas_are_handled() {
    // A recursive writer schema with references: deep nesting is refused, not a stack overflow.
    let text = r#"{"type":"record","name":"Node","namespace":"x","fields":[
        {"name":"next","type":["null","Node"]}]}"#;
    let node = CompiledSchema::parse(text).unwrap();
    let mut datum = vec![2u8; 10_000]; // union branch 1 (Node), nested 10 000 times
    datum.push(0);
    let mut bytes = vec![0, 0, 0, 0, 1];
    bytes.extend_from_slice(&datum);
    let err = decode_with_writer::<Order>(&bytes, &node).unwrap_err();
    assert!(err.to_string().contains("nesting deeper"), "{err}");
    // Shallow nesting passes the check (then fails resolution into Order, as it should).
    let bytes = [0, 0, 0, 0, 1, 2, 2, 0];
    let err = decode_with_writer::<Order>(&bytes, &node).unwrap_err();
    assert!(matches!(err, AvroError::Incompatible { .. }), "{err}");
}

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
                ChannelOverride { channel, enabled, safety_stock_units, safety_stock_pct }).collect(),
            erp_sequence, event_time,
        }
    }
}

prop_compose! {
    fn arb_line_command()(
        channel in "[a-z]{1,8}", id in "[0-9]{1,12}", revision in any::<i32>(), lines in any::<i32>(),
        line_id in ".{0,6}", sku in ".{0,10}", quantity in any::<i64>(), paid in any::<bool>(),
        cancelled in any::<bool>(), placed_at in any::<i64>(),
    ) -> LineCommand {
        LineCommand { order_key: order_key(&channel, &id), channel, channel_order_id: id, revision,
            lines_in_revision: lines, line_id, sku, quantity, paid, cancelled, placed_at }
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
        lines in proptest::collection::vec((".{0,4}", ".{0,6}", any::<i64>(), any::<i64>(), any::<i64>(), arb_outcome()), 0..5),
    ) -> ValidatedOrder {
        ValidatedOrder {
            event_id: stable_id(&[id.as_bytes()]), order_key: order_key("x", &id), channel: "x".into(),
            channel_order_id: id, revision, status, paid, placed_at,
            lines: lines.into_iter().map(|(line_id, sku, quantity, reserved, backordered, outcome)|
                ValidatedLine { line_id, sku, quantity, reserved, backordered, outcome }).collect(),
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
    let back: T = decode(&bytes).map_err(|e| TestCaseError::fail(e.to_string()))?;
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
