//! Avro interoperability with the standard library: Apache Avro for Java (the library an ERP's
//! Kafka producer writes with) against shelfsync's single-object encoding.
//!
//! - every shelfsync schema has the canonical form and fingerprint Java computes;
//! - records the Java `BinaryMessageEncoder` writes decode in shelfsync (ERP inputs);
//! - records shelfsync writes decode with Java's `BinaryMessageDecoder` (our outputs).
//!
//! Runs `tests/java/AvroInterop.java` with the jars `scripts/deps.sh` fetched (`$AVRO_LIBS`).

use std::path::{Path, PathBuf};
use std::process::Command;

use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_schemas::{
    AdjustmentReason, ChannelAvailability, DeadLetter, InstanceAnnouncement, InventoryChange,
    InventoryChangeKind, InventoryCommand, LineResult, Order, OrderStatus, ProductChange,
    ValidatedOrder,
};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// `$AVRO_LIBS` as `scripts/env.sh` defines it.
fn avro_libs() -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg("source scripts/env.sh && printf %s \"$AVRO_LIBS\"")
        .current_dir(root())
        .output()
        .expect("bash runs");
    let libs = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        Path::new(&libs).join("avro-1.12.1.jar").exists(),
        "Apache Avro for Java is not in {libs}: run `bash scripts/deps.sh` (it fetches it with Maven)"
    );
    libs
}

fn java() -> String {
    match std::env::var("JAVA_HOME") {
        Ok(home) if Path::new(&home).join("bin/java").exists() => format!("{home}/bin/java"),
        _ => "java".to_string(),
    }
}

/// Runs `AvroInterop.java <args>` and returns its standard output, trimmed.
fn java_avro(args: &[&str]) -> String {
    let out = Command::new(java())
        .arg("-cp")
        .arg(format!("{}/*", avro_libs()))
        .arg("tests/java/AvroInterop.java")
        .args(args)
        .current_dir(root())
        .output()
        .expect("java runs (scripts/deps.sh installs it)");
    assert!(
        out.status.success(),
        "AvroInterop {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
        .collect()
}

fn schema_file<T: AvroRecord>() -> String {
    let short = T::NAME.rsplit('.').next().unwrap_or(T::NAME);
    format!("schemas/avro/{short}.avsc")
}

fn check_fingerprint<T: AvroRecord>() {
    let out = java_avro(&["fingerprint", &schema_file::<T>()]);
    let (form, fingerprint) = out.rsplit_once('\n').expect("two lines");
    let compiled = T::compiled();
    assert_eq!(compiled.canonical_form(), form.trim(), "{}", T::NAME);
    assert_eq!(hex(&compiled.fingerprint()), fingerprint, "{}", T::NAME);
}

#[test]
fn every_schema_has_the_java_librarys_canonical_form_and_fingerprint() {
    check_fingerprint::<InventoryChange>();
    check_fingerprint::<ProductChange>();
    check_fingerprint::<InventoryCommand>();
    check_fingerprint::<Order>();
    check_fingerprint::<LineResult>();
    check_fingerprint::<ChannelAvailability>();
    check_fingerprint::<ValidatedOrder>();
    check_fingerprint::<OrderStatus>();
    check_fingerprint::<DeadLetter>();
    check_fingerprint::<InstanceAnnouncement>();
}

#[test]
fn erp_records_written_by_the_java_library_decode() {
    let shipment = r#"{"sku":"SKU-00042","location":"dc-east","kind":"ADJUSTMENT","quantity":-2,
        "erp_sequence":17,"reason":{"com.shelfsync.v1.AdjustmentReason":"SHIPMENT"},
        "order_key":{"string":"shopify:1001"},"line_id":{"string":"1"},"event_time":1767225600000}"#;
    let bytes = unhex(&java_avro(&[
        "write",
        &schema_file::<InventoryChange>(),
        shipment,
    ]));
    let change: InventoryChange = avro::decode(&bytes).expect("a Java-written InventoryChange");
    assert_eq!(
        change,
        InventoryChange {
            sku: "SKU-00042".into(),
            location: "dc-east".into(),
            kind: InventoryChangeKind::ADJUSTMENT,
            quantity: -2,
            erp_sequence: 17,
            reason: Some(AdjustmentReason::SHIPMENT),
            order_key: Some("shopify:1001".into()),
            line_id: Some("1".into()),
            event_time: 1_767_225_600_000,
        }
    );

    let product = r#"{"sku":"SKU-00042","active":true,"safety_stock_units":3,
        "safety_stock_pct":10,"channel_overrides":[],"erp_sequence":4,"event_time":1767225600000,
        "safety_stock_percent":null}"#;
    let bytes = unhex(&java_avro(&[
        "write",
        &schema_file::<ProductChange>(),
        product,
    ]));
    let change: ProductChange = avro::decode(&bytes).expect("a Java-written ProductChange");
    assert_eq!(change.sku, "SKU-00042");
    assert_eq!(change.safety_stock_units, 3);
    assert_eq!(change.erp_sequence, 4);
}

#[test]
fn records_shelfsync_writes_decode_with_the_java_library() {
    let change = InventoryChange {
        sku: "SKU-7".into(),
        location: "store-nyc".into(),
        kind: InventoryChangeKind::SNAPSHOT,
        quantity: 12,
        erp_sequence: 3,
        reason: None,
        order_key: None,
        line_id: None,
        event_time: 1_767_225_600_123,
    };
    let bytes = avro::encode(&change, Framing::SingleObject).expect("encodes");
    let json = java_avro(&["read", &schema_file::<InventoryChange>(), &hex(&bytes)]);
    for part in [
        r#""sku": "SKU-7""#,
        r#""kind": "SNAPSHOT""#,
        r#""quantity": 12"#,
        r#""reason": null"#,
        r#""event_time": 1767225600123"#,
    ] {
        assert!(json.contains(part), "{part} in {json}");
    }
}
