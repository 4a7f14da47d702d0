//! Avro codecs: framings, headers, fingerprints, hostile input and schema evolution.

use super::*;
use apache_avro::types::Value;

// ---------- codecs ----------

#[test]
fn round_trip_every_type_under_both_framings() {
    fn check<T: AvroRecord + PartialEq + std::fmt::Debug>(x: &T) {
        for framing in FRAMINGS {
            let bytes = encode(x, framing).unwrap();
            match framing {
                Framing::SingleObject => {
                    let back: T =
                        decode(&bytes).unwrap_or_else(|e| panic!("{} {framing:?}: {e}", T::NAME));
                    assert_eq!(&back, x);
                }
                // Without a registry the id names no known writer: refused, not guessed.
                Framing::Confluent { schema_id } => assert_eq!(
                    decode::<T>(&bytes).unwrap_err(),
                    AvroError::UnknownSchemaId { id: schema_id }
                ),
            }
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

    // The fingerprint is the little-endian CRC-64-AVRO of the specification's canonical form.
    // apache_avro's own single-object writer writes the same datum behind its own fingerprint
    // (its canonical form keeps `{"type":"long"}` around logical types), which is still read.
    let compiled = Order::compiled();
    assert_eq!(
        compiled.fingerprint(),
        canonical::rabin_fingerprint64(compiled.canonical_form().as_bytes()).to_le_bytes()
    );
    assert_eq!(
        compiled.legacy_fingerprint().to_vec(),
        Order::schema().fingerprint::<Rabin>().bytes
    );
    assert_ne!(compiled.fingerprint(), compiled.legacy_fingerprint());
    let mut writer =
        apache_avro::GenericSingleObjectWriter::new_with_capacity(Order::schema(), 1024).unwrap();
    let mut theirs = Vec::new();
    let value = apache_avro::to_value(&x)
        .unwrap()
        .resolve(Order::schema())
        .unwrap();
    writer.write_value(value, &mut theirs).unwrap();
    assert_eq!(&theirs[..2], &so[..2]);
    assert_eq!(&theirs[2..10], &compiled.legacy_fingerprint());
    assert_eq!(&theirs[10..], &so[10..]);
    assert_eq!(decode::<Order>(&theirs).unwrap(), x);
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
            legacy: OrderStatus::compiled().legacy_fingerprint(),
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
    let err = decode_with_writer::<ChannelAvailability>(&bytes, ChannelAvailability::compiled())
        .unwrap_err();
    assert!(
        matches!(
            err,
            AvroError::InvalidDatum { .. } | AvroError::TrailingBytes { .. }
        ),
        "{err}"
    );
    let bytes = encode(&order_status(), Framing::Confluent { schema_id: 1 }).unwrap();
    assert!(decode_with_writer::<DeadLetter>(&bytes, DeadLetter::compiled()).is_err());
    assert_eq!(
        decode::<DeadLetter>(&bytes).unwrap_err().kind(),
        "unknown_schema_id"
    );
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
    let err = decode_with_writer::<Order>(&bytes, Order::compiled()).unwrap_err();
    assert!(err.to_string().contains("exceeds"), "{err}");

    // A valid prefix up to `lines`, then an array block of a billion lines. The datum of this
    // order ends with lines (0 = empty array), delivery_id ("") and received_at (0), then the
    // fields added later, all at their defaults (already_shipped, test, currency = null,
    // total = null, skipped_lines = []: one zero byte each): drop those eight bytes and put a
    // huge block count where the empty array was.
    let mut prefix = Vec::new();
    encode_datum_into(
        &Order {
            lines: vec![],
            delivery_id: String::new(),
            received_at: 0,
            already_shipped: false,
            test: false,
            currency: None,
            total: None,
            skipped_lines: vec![],
            ..order()
        },
        &mut prefix,
    )
    .unwrap();
    assert_eq!(prefix[prefix.len() - 8..], [0; 8]);
    prefix.truncate(prefix.len() - 8);
    let mut hostile = vec![0, 0, 0, 0, 1];
    hostile.extend_from_slice(&prefix);
    hostile.extend_from_slice(&[0x80, 0xa8, 0xd6, 0xb9, 0x07]); // zig-zag 1_000_000_000
    hostile.extend_from_slice(&[2, b'a', 2, b'b', 2, 0, 0, 0, 0, 0]);
    let err = decode_with_writer::<Order>(&hostile, Order::compiled()).unwrap_err();
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
    let err = decode_with_writer::<OrderStatus>(&bytes, OrderStatus::compiled()).unwrap_err();
    assert!(
        err.to_string().contains("enum index 9 out of range"),
        "{err}"
    );
    assert!(err.to_string().contains("status"), "{err}");

    // Invalid UTF-8 in a string.
    let mut bytes = encode(&x, Framing::Confluent { schema_id: 9 }).unwrap();
    bytes[6] = 0xff; // first byte of event_id's text
    let err = decode_with_writer::<OrderStatus>(&bytes, OrderStatus::compiled()).unwrap_err();
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
pub(super) fn order_v0_text() -> String {
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

/// What Apache Avro for Java 1.12.1 (`SchemaNormalization.toParsingForm` and
/// `parsingFingerprint64`, little-endian as on the wire) says of `InventoryChange.avsc`: see
/// `tests/java/AvroInterop.java fingerprint`. The broker test `avro_interop` checks every schema
/// against the Java library itself.
#[test]
fn inventory_change_has_the_java_librarys_canonical_form_and_fingerprint() {
    let compiled = InventoryChange::compiled();
    assert_eq!(
        compiled.canonical_form(),
        r#"{"name":"com.shelfsync.v1.InventoryChange","type":"record","fields":[{"name":"sku","type":"string"},{"name":"location","type":"string"},{"name":"kind","type":{"name":"com.shelfsync.v1.InventoryChangeKind","type":"enum","symbols":["SNAPSHOT","ADJUSTMENT"]}},{"name":"quantity","type":"long"},{"name":"erp_sequence","type":"long"},{"name":"reason","type":["null",{"name":"com.shelfsync.v1.AdjustmentReason","type":"enum","symbols":["RECEIPT","SHIPMENT","RETURN","CORRECTION","OTHER"]}]},{"name":"order_key","type":["null","string"]},{"name":"line_id","type":["null","string"]},{"name":"event_time","type":"long"}]}"#
    );
    assert_eq!(
        compiled.fingerprint(),
        [0x80, 0x29, 0x78, 0xd0, 0x8a, 0x0c, 0xd1, 0xd5]
    );
}

/// Issue 16: `Order` and `ValidatedOrder` gained appended fields with defaults. A record written
/// with the schema as it was before (kept verbatim in `schemas/avro/history/`) still decodes, every new
/// field at its default.
#[test]
fn records_written_with_the_first_order_schemas_still_decode() {
    let old_order =
        CompiledSchema::parse(include_str!("../../../avro/history/Order.v1.avsc")).unwrap();
    assert_ne!(old_order.fingerprint(), fingerprint::<Order>());
    let line = |id: &str, sku: &str, quantity: i64| {
        Value::Record(vec![
            ("line_id".into(), Value::String(id.into())),
            ("sku".into(), Value::String(sku.into())),
            ("quantity".into(), Value::Long(quantity)),
        ])
    };
    let written = Value::Record(vec![
        ("channel".into(), Value::String("amazon".into())),
        (
            "channel_order_id".into(),
            Value::String("902-1845936-5435065".into()),
        ),
        ("paid".into(), Value::Boolean(true)),
        ("cancelled".into(), Value::Boolean(false)),
        ("placed_at".into(), Value::TimestampMillis(1_569_510_000)),
        (
            "lines".into(),
            Value::Array(vec![line("05015851154158", "NABetaASINB00551Q3CS", 1)]),
        ),
        ("delivery_id".into(), Value::String("sp-poll-1".into())),
        (
            "received_at".into(),
            Value::TimestampMillis(1_772_000_000_000),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(old_order.schema(), written).unwrap();
    let mut bytes = old_order.single_object_header().to_vec();
    bytes.extend_from_slice(&datum);
    let order: Order = decode_with_writer(&bytes, &old_order).unwrap();
    assert_eq!(
        decode::<Order>(&bytes).unwrap(),
        order,
        "plain decode resolves a known earlier version too"
    );
    assert_eq!(
        order,
        Order {
            channel: "amazon".into(),
            channel_order_id: "902-1845936-5435065".into(),
            paid: true,
            cancelled: false,
            placed_at: 1_569_510_000,
            lines: vec![OrderLine::new("05015851154158", "NABetaASINB00551Q3CS", 1)],
            delivery_id: "sp-poll-1".into(),
            received_at: 1_772_000_000_000,
            already_shipped: false,
            test: false,
            currency: None,
            total: None,
            skipped_lines: vec![],
        }
    );
    // Its fingerprint is the one the first version computed (no new field is set).
    assert_eq!(order.fingerprint(), {
        let parts: [&[u8]; 7] = [
            b"amazon",
            b"902-1845936-5435065",
            &[1, 0],
            &1_569_510_000_i64.to_le_bytes(),
            b"05015851154158",
            b"NABetaASINB00551Q3CS",
            &1_i64.to_le_bytes(),
        ];
        stable_hash128(&parts)
    });

    let old_validated =
        CompiledSchema::parse(include_str!("../../../avro/history/ValidatedOrder.v1.avsc"))
            .unwrap();
    assert_ne!(old_validated.fingerprint(), fingerprint::<ValidatedOrder>());
    let written = Value::Record(vec![
        ("event_id".into(), Value::String("e1".into())),
        (
            "order_key".into(),
            Value::String("ebay:12-34567-89012".into()),
        ),
        ("channel".into(), Value::String("ebay".into())),
        (
            "channel_order_id".into(),
            Value::String("12-34567-89012".into()),
        ),
        ("revision".into(), Value::Int(2)),
        ("status".into(), Value::Enum(0, "ACCEPTED".into())),
        ("paid".into(), Value::Boolean(true)),
        (
            "placed_at".into(),
            Value::TimestampMillis(1_717_980_000_000),
        ),
        (
            "lines".into(),
            Value::Array(vec![Value::Record(vec![
                ("line_id".into(), Value::String("1".into())),
                ("sku".into(), Value::String("SKU-1".into())),
                ("quantity".into(), Value::Long(2)),
                ("reserved".into(), Value::Long(2)),
                ("backordered".into(), Value::Long(0)),
                ("outcome".into(), Value::Enum(0, "RESERVED".into())),
            ])]),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(old_validated.schema(), written).unwrap();
    let mut bytes = vec![0, 0, 0, 0, 9]; // Confluent framing, as a registry-backed ERP reads it
    bytes.extend_from_slice(&datum);
    let validated: ValidatedOrder = decode_with_writer(&bytes, &old_validated).unwrap();
    assert_eq!(validated.revision, 2);
    assert_eq!(validated.lines.len(), 1);
    let line = &validated.lines[0];
    assert_eq!((line.reserved, line.outcome), (2, LineOutcome::RESERVED));
    assert_eq!(line.fulfilled_by, FulfilledBy::MERCHANT);
    assert_eq!(
        (&line.unit_price, &line.line_total, &line.currency),
        (&None, &None, &None)
    );
    assert_eq!((&validated.currency, &validated.total), (&None, &None));
    assert!(!validated.already_shipped);
    assert!(validated.skipped_lines.is_empty());
}

/// Issue 16: `ProductChange` gained exact decimal percentages and per-SKU channel settings. An
/// ERP that still writes the first schema is read by the plain [`decode`] the pipeline uses
/// (no registry): the record resolves into the current schema with the new fields unset.
#[test]
fn a_product_record_written_with_the_first_schema_still_decodes() {
    let old =
        CompiledSchema::parse(include_str!("../../../avro/history/ProductChange.v1.avsc")).unwrap();
    assert_ne!(old.fingerprint(), fingerprint::<ProductChange>());
    let written = Value::Record(vec![
        ("sku".into(), Value::String("SKU-1".into())),
        ("active".into(), Value::Boolean(true)),
        ("safety_stock_units".into(), Value::Long(2)),
        ("safety_stock_pct".into(), Value::Long(10)),
        (
            "channel_overrides".into(),
            Value::Array(vec![Value::Record(vec![
                ("channel".into(), Value::String("amazon".into())),
                ("enabled".into(), Value::Boolean(false)),
                (
                    "safety_stock_units".into(),
                    Value::Union(0, Box::new(Value::Null)),
                ),
                (
                    "safety_stock_pct".into(),
                    Value::Union(1, Box::new(Value::Long(5))),
                ),
            ])]),
        ),
        ("erp_sequence".into(), Value::Long(7)),
        (
            "event_time".into(),
            Value::TimestampMillis(1_700_000_000_000),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(old.schema(), written).unwrap();
    let mut bytes = old.single_object_header().to_vec();
    bytes.extend_from_slice(&datum);
    let product: ProductChange = decode(&bytes).unwrap();
    assert_eq!(product.safety_stock_pct, 10);
    assert_eq!(product.safety_stock_percent, None);
    assert_eq!(product.channel_overrides[0].safety_stock_pct, Some(5));
    assert_eq!(product.channel_overrides[0].share_pct, None);
    assert!(!product.channel_overrides[0].enabled);
    // An unknown fingerprint is still refused.
    bytes[2] ^= 0xff;
    assert!(matches!(
        decode::<ProductChange>(&bytes),
        Err(AvroError::FingerprintMismatch { .. })
    ));
}

/// Every earlier schema kept for [`decode`] parses, names its record, and is not the current
/// one (a history entry identical to the current schema would be dead weight).
#[test]
fn every_earlier_schema_parses_and_differs_from_the_current_one() {
    let current: std::collections::BTreeMap<&str, &str> =
        crate::avro::all_schemas().iter().copied().collect();
    for (name, text) in crate::avro::earlier_schemas() {
        let old = CompiledSchema::parse(text).unwrap();
        assert_eq!(old.full_name(), *name);
        let now = CompiledSchema::parse(current[name]).unwrap();
        assert_ne!(old.fingerprint(), now.fingerprint(), "{name}");
    }
}

/// Issue 16: `LineCommand` (inside `InventoryCommand`) and `LineResult` gained appended fields
/// with defaults. Records written by a stage still running the schemas kept verbatim in
/// `schemas/avro/history/` (a rolling upgrade, or a topic read back after one) still decode: the line
/// holds stock, is merchant-fulfilled, has no prices and is no backorder fill.
#[test]
fn records_written_with_the_first_line_schemas_still_decode() {
    let old_command = CompiledSchema::parse(include_str!(
        "../../../avro/history/InventoryCommand.v1.avsc"
    ))
    .unwrap();
    assert_ne!(old_command.fingerprint(), fingerprint::<InventoryCommand>());
    let first_fields = || {
        vec![
            (
                "order_key".to_string(),
                Value::String("walmart:1796277083022".into()),
            ),
            ("channel".to_string(), Value::String("walmart".into())),
            (
                "channel_order_id".to_string(),
                Value::String("1796277083022".into()),
            ),
            ("revision".to_string(), Value::Int(1)),
            ("lines_in_revision".to_string(), Value::Int(2)),
            ("line_id".to_string(), Value::String("1".into())),
            ("sku".to_string(), Value::String("SKU-1001".into())),
            ("quantity".to_string(), Value::Long(2)),
        ]
    };
    let mut line = first_fields();
    line.extend([
        ("paid".to_string(), Value::Boolean(true)),
        ("cancelled".to_string(), Value::Boolean(false)),
        (
            "placed_at".to_string(),
            Value::TimestampMillis(1_717_990_000_000),
        ),
    ]);
    let written = Value::Record(vec![
        ("kind".into(), Value::Enum(2, "RESERVE".into())),
        ("sku".into(), Value::String("SKU-1001".into())),
        ("inventory".into(), Value::Union(0, Box::new(Value::Null))),
        ("product".into(), Value::Union(0, Box::new(Value::Null))),
        (
            "line".into(),
            Value::Union(1, Box::new(Value::Record(line))),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(old_command.schema(), written).unwrap();
    let mut bytes = old_command.single_object_header().to_vec();
    bytes.extend_from_slice(&datum);
    let command: InventoryCommand = decode_with_writer(&bytes, &old_command).unwrap();
    assert_eq!(command.kind, CommandKind::RESERVE);
    let line = command.line.unwrap();
    assert_eq!(
        (line.revision, line.lines_in_revision, line.quantity),
        (1, 2, 2)
    );
    assert!(line.holds_stock, "an old line command holds stock");
    assert!(!line.is_no_stock_marker());
    assert_eq!(line.fulfilled_by, FulfilledBy::MERCHANT);
    assert_eq!(
        (&line.unit_price, &line.line_total, &line.currency),
        (&None, &None, &None)
    );
    assert_eq!(line.order, None);

    let old_result =
        CompiledSchema::parse(include_str!("../../../avro/history/LineResult.v1.avsc")).unwrap();
    assert_ne!(old_result.fingerprint(), fingerprint::<LineResult>());
    let mut fields = first_fields();
    fields.extend([
        ("reserved".to_string(), Value::Long(1)),
        ("backordered".to_string(), Value::Long(1)),
        ("outcome".to_string(), Value::Enum(1, "BACKORDERED".into())),
        ("paid".to_string(), Value::Boolean(true)),
        ("cancelled".to_string(), Value::Boolean(false)),
        (
            "placed_at".to_string(),
            Value::TimestampMillis(1_717_990_000_000),
        ),
    ]);
    let datum = apache_avro::to_avro_datum(old_result.schema(), Value::Record(fields)).unwrap();
    let mut bytes = vec![0, 0, 0, 0, 7]; // Confluent framing
    bytes.extend_from_slice(&datum);
    let result: LineResult = decode_with_writer(&bytes, &old_result).unwrap();
    assert_eq!(
        (result.reserved, result.backordered, result.outcome),
        (1, 1, LineOutcome::BACKORDERED)
    );
    assert!(!result.filled, "an old result is the answer to a command");
    assert!(!result.is_no_stock_marker());
    assert_eq!(result.fulfilled_by, FulfilledBy::MERCHANT);
    assert_eq!(
        (&result.unit_price, &result.line_total, &result.currency),
        (&None, &None, &None)
    );
    assert_eq!(result.order, None);
}
