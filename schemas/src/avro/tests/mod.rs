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
                safety_stock_percent: None,
                share_pct: None,
                buffer: None,
                max_qty: None,
                min_publish: None,
            },
            ChannelOverride {
                channel: "ebay".into(),
                enabled: false,
                safety_stock_units: None,
                safety_stock_pct: Some(0),
                safety_stock_percent: None,
                share_pct: Some("12.5".into()),
                buffer: Some(1),
                max_qty: Some(40),
                min_publish: Some(2),
            },
        ],
        erp_sequence: 77,
        event_time: 1_718_000_002_000,
        safety_stock_percent: Some("0.25".into()),
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
        fulfilled_by: FulfilledBy::MARKETPLACE,
        unit_price: Some("19.95".into()),
        line_total: Some("79.80".into()),
        currency: Some("EUR".into()),
        holds_stock: false,
        order: Some(Box::new(OrderSummary {
            currency: Some("EUR".into()),
            total: Some("84.80".into()),
            already_shipped: false,
            skipped_lines: vec![SkippedLine {
                line_id: "13456789013".into(),
                sku: Some("GIFT-25".into()),
                quantity: 1,
                reason: SkipReason::GIFT_CARD,
            }],
        })),
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
                shipped_quantity: 1,
                unit_price: Some("12.50".into()),
                line_total: Some("25.00".into()),
                currency: Some("USD".into()),
                ..OrderLine::new("1", "SKU-1001", 2)
            },
            OrderLine {
                fulfilled_by: FulfilledBy::MARKETPLACE,
                ..OrderLine::new("2", "SKU-ÄÖÜ-β", 1)
            },
        ],
        delivery_id: "d1c7b3a2-0000-4e5f-9a8b-123456789abc".into(),
        received_at: 1_717_990_000_500,
        already_shipped: false,
        test: false,
        currency: Some("USD".into()),
        total: Some("31.34".into()),
        skipped_lines: vec![SkippedLine {
            line_id: "3".into(),
            sku: None,
            quantity: 1,
            reason: SkipReason::NON_PHYSICAL,
        }],
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
        fulfilled_by: FulfilledBy::MERCHANT,
        unit_price: Some("8.975".into()),
        line_total: Some("44.875".into()),
        currency: Some("USD".into()),
        filled: true,
        order: Some(Box::new(OrderSummary {
            currency: Some("USD".into()),
            total: Some("49.87".into()),
            already_shipped: true,
            skipped_lines: vec![],
        })),
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
                fulfilled_by: FulfilledBy::MERCHANT,
                unit_price: Some("19.99".into()),
                line_total: Some("19.99".into()),
                currency: Some("USD".into()),
            },
            ValidatedLine {
                line_id: "2".into(),
                sku: "SKU-2".into(),
                quantity: 3,
                reserved: 0,
                backordered: 0,
                outcome: LineOutcome::REJECTED,
                fulfilled_by: FulfilledBy::MARKETPLACE,
                unit_price: None,
                line_total: None,
                currency: None,
            },
        ],
        currency: Some("USD".into()),
        total: Some("84.96".into()),
        already_shipped: false,
        skipped_lines: vec![SkippedLine {
            line_id: "9".into(),
            sku: Some("GIFT-25".into()),
            quantity: 1,
            reason: SkipReason::GIFT_CARD,
        }],
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

mod codecs;
mod properties;
