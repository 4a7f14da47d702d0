//! The traffic model's tests: determinism, every payload normalizing with its channel's adapter,
//! repeats and revisions, ERP sequences, the flash sale.

use std::collections::{BTreeMap, HashMap};

use shelfsync_schemas::adapters::{self, AdapterKind};
use shelfsync_schemas::avro;
use shelfsync_schemas::{InventoryChange, ProductChange};
use shelfsync_topology::Topology;

use super::{EventKind, GenRecord, Target, TrafficModel};
use crate::generator::{GeneratorConfig, TrafficArgs};

fn topology() -> Topology {
    Topology::from_toml_str(crate::EXAMPLE_TOPOLOGY).expect("example topology")
}

/// 10 s of traffic, as [`simulate`] runs it for `seconds = 10`.
fn cfg() -> GeneratorConfig {
    GeneratorConfig::small()
}

/// Runs the model like `run_traffic` does, with a fake clock: `seconds` of traffic.
fn simulate(cfg: &GeneratorConfig, seconds: u32) -> Vec<GenRecord> {
    let mut model = TrafficModel::new(&topology(), cfg).expect("model");
    let t0 = 1_772_000_000_000;
    let mut out = model.catalog(t0).expect("catalog");
    // Events due in tick `t` of 100 ms at `rate` per second.
    let due = |rate: f64, t: u32| {
        ((f64::from(t + 1) * rate / 10.0) as u32) - ((f64::from(t) * rate / 10.0) as u32)
    };
    for tick in 0..seconds * 10 {
        let now = t0 + i64::from(tick) * 100;
        for _ in 0..due(cfg.traffic.orders_per_sec, tick) {
            out.push(model.next_order_event(now).expect("order"));
        }
        for _ in 0..due(cfg.traffic.erp_updates_per_sec, tick) {
            out.push(model.next_erp_event(now).expect("erp"));
        }
        if (seconds * 3..seconds * 6).contains(&tick) {
            for _ in 0..due(cfg.flash_orders_per_sec, tick) {
                out.push(model.next_flash_order(now).expect("flash"));
            }
        }
    }
    out
}

fn adapter_of(channel: &str) -> Option<AdapterKind> {
    topology()
        .channels
        .iter()
        .find(|c| c.name == channel)
        .and_then(|c| c.adapter.as_str().parse().ok())
}

#[test]
fn the_same_seed_gives_the_same_records() {
    let a = simulate(&cfg(), 5);
    let b = simulate(&cfg(), 5);
    assert_eq!(a, b);
    let c = cfg();
    let other = simulate(
        &GeneratorConfig {
            traffic: TrafficArgs {
                seed: 7,
                ..c.traffic
            },
            ..c
        },
        5,
    );
    assert_ne!(a, other);
}

#[test]
fn every_raw_order_normalizes_with_its_channels_adapter_and_key() {
    let records = simulate(&cfg(), 10);
    let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
    let mut adapters_seen = std::collections::BTreeSet::new();
    for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
        let order = adapters::normalize(&rec.value, adapter_of)
            .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&rec.value)));
        assert_eq!(order.key(), rec.key);
        if rec.kind == EventKind::Cancellation {
            assert!(order.cancelled, "{}", String::from_utf8_lossy(&rec.value));
        }
        adapters_seen.insert(adapter_of(&order.channel).map(|a| a.to_string()));
        *by_kind.entry(format!("{:?}", rec.kind)).or_default() += 1;
    }
    assert_eq!(adapters_seen.len(), 4, "{adapters_seen:?}");
    for kind in [
        "NewOrder",
        "FlashOrder",
        "Duplicate",
        "Revision",
        "Cancellation",
    ] {
        assert!(by_kind.get(kind).copied().unwrap_or(0) > 0, "{by_kind:?}");
    }
}

#[test]
fn repeats_normalize_to_an_earlier_payload_and_revisions_to_a_new_one() {
    let records = simulate(&cfg(), 10);
    let mut prints: HashMap<String, Vec<u128>> = HashMap::new();
    for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
        let order = adapters::normalize(&rec.value, adapter_of).expect("normalizes");
        let seen = prints.entry(rec.key.clone()).or_default();
        let print = order.fingerprint();
        match rec.kind {
            EventKind::Duplicate => assert!(seen.contains(&print), "{}", rec.key),
            _ => {
                assert!(!seen.contains(&print), "{} {:?}", rec.key, rec.kind);
                seen.push(print);
            }
        }
    }
}

#[test]
fn catalog_comes_first_and_erp_sequences_grow_per_position() {
    let c = cfg();
    let records = simulate(&c, 5);
    let skus = c.traffic.skus as usize;
    assert!(records[..skus]
        .iter()
        .all(|r| r.target == Target::ErpProducts));
    assert!(records[skus..skus * 3]
        .iter()
        .all(|r| r.kind == EventKind::Snapshot));
    let updates = records
        .iter()
        .filter(|r| r.kind == EventKind::ErpUpdate)
        .count();
    assert!(updates >= 20, "{updates} ERP updates");
    let mut last: HashMap<(String, String), i64> = HashMap::new();
    for rec in records.iter().filter(|r| r.target == Target::ErpInventory) {
        let change: InventoryChange = avro::decode(&rec.value).expect("decodes");
        assert_eq!(change.sku, rec.key);
        let prev = last
            .insert(
                (change.sku.clone(), change.location.clone()),
                change.erp_sequence,
            )
            .unwrap_or(0);
        assert_eq!(change.erp_sequence, prev + 1);
    }
    let products: Vec<ProductChange> = records[..skus]
        .iter()
        .map(|r| avro::decode(&r.value).expect("decodes"))
        .collect();
    assert_eq!(products.len(), skus);
}

#[test]
fn flash_sale_skus_sell_only_in_the_sale_and_have_little_stock() {
    let c = cfg();
    let mut model = TrafficModel::new(&topology(), &c).expect("model");
    let flash: Vec<String> = model.flash_sku_names();
    assert_eq!(flash.len(), 5);
    let records = simulate(&c, 10);
    let mut flash_units = 0;
    for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
        let order = adapters::normalize(&rec.value, adapter_of).expect("normalizes");
        let has_flash = order.lines.iter().any(|l| flash.contains(&l.sku));
        assert_eq!(
            has_flash,
            rec.kind == EventKind::FlashOrder || (rec.kind == EventKind::Duplicate && has_flash),
        );
        if rec.kind == EventKind::FlashOrder {
            flash_units += order
                .lines
                .iter()
                .filter(|l| flash.contains(&l.sku))
                .map(|l| l.quantity)
                .sum::<i64>();
        }
    }
    let stock: i64 = model
        .catalog(0)
        .expect("catalog")
        .iter()
        .filter(|r| r.kind == EventKind::Snapshot && flash.contains(&r.key))
        .map(|r| avro::decode::<InventoryChange>(&r.value).map_or(0, |c| c.quantity))
        .sum();
    assert!(
        flash_units > 2 * stock,
        "{flash_units} units for {stock} in stock"
    );
}
