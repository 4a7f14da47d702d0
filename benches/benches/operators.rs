//! Each operator over `MemStore` and over `RocksStore`, on typed input (no Avro): what the
//! domain logic and the store cost. Inputs come from the generator's traffic, run through the
//! upstream stages in process ([`Feed`]); the stateful operators start from a loaded catalog
//! of `SHELFSYNC_BENCH_SKUS` SKUs (default 100,000) and keep their state across iterations, so
//! every measured record is a new one, like a live stream.
//!
//! Groups: `shelfsync_operators::reserve_inventory`, `::dedupe_orders`, `::assemble_orders`,
//! `::erp_ingest`; ids `mem_store/<skus>` and `rocks_store/<skus>`.

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use serde::de::DeserializeOwned;
use shelfsync_benches::{bench_skus, load, state_db, EpochStore, Feed, Input, EPOCH_RECORDS};
use shelfsync_operators::assemble_orders::AssembleOrders;
use shelfsync_operators::dedupe_orders::DedupeOrders;
use shelfsync_operators::erp_ingest::{ingest_inventory, ingest_product};
use shelfsync_operators::reserve_inventory::ReserveInventory;
use shelfsync_operators::{MemStore, Operator};
use shelfsync_pipeline::stages::StageLogic;
use shelfsync_schemas::avro::{self, AvroRecord};
use shelfsync_schemas::{InventoryChange, ProductChange};
use shelfsync_topology::Stage;

fn decode_all<T: AvroRecord + DeserializeOwned>(inputs: &[Input]) -> Vec<(i64, T)> {
    inputs
        .iter()
        .map(|i| (i.ts, avro::decode::<T>(&i.value).expect("decodes")))
        .collect()
}

/// Benchmarks `op` on `stage`'s inputs over `store`, one epoch (`end_epoch`) per
/// [`EPOCH_RECORDS`] records, timing the operator and the epoch's write only.
fn bench_operator<O, S>(
    c: &mut Criterion,
    group: &str,
    id: &str,
    stage: Stage,
    op: &O,
    mut store: S,
) where
    O: Operator,
    O::Input: AvroRecord + DeserializeOwned,
    S: EpochStore,
{
    let skus = bench_skus();
    let mut feed = Feed::new(skus, Some(stage));
    let topology = feed.topology().clone();
    // The catalog through the stage itself (the inventory stage's stock), untimed.
    let catalog = feed.catalog();
    load(&StageLogic::new(stage, &topology), &mut store, &catalog);
    let mut g = c.benchmark_group(group);
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut outputs = Vec::new();
    g.bench_function(BenchmarkId::new(id, skus), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(EPOCH_RECORDS);
                let inputs: Vec<(i64, O::Input)> = decode_all(&feed.take(n));
                let started = Instant::now();
                for (ts, input) in &inputs {
                    outputs.clear();
                    // Refused inputs (a revision of an unknown order…) are part of the work.
                    let _ = op.process(&mut store, *ts, input, &mut outputs);
                }
                store.end_epoch();
                total += started.elapsed();
                left -= n;
            }
            total
        });
    });
    g.finish();
}

fn reserve_inventory(c: &mut Criterion) {
    let topology = shelfsync_benches::topology();
    let op = ReserveInventory::new(topology.inventory_config());
    let group = "shelfsync_operators::reserve_inventory";
    bench_operator(
        c,
        group,
        "mem_store",
        Stage::Inventory,
        &op,
        MemStore::new(),
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let db = state_db(dir.path());
    let store = db.store("inventory-0").expect("column family");
    bench_operator(c, group, "rocks_store", Stage::Inventory, &op, store);
}

fn dedupe_orders(c: &mut Criterion) {
    let topology = shelfsync_benches::topology();
    let op = DedupeOrders::new(topology.dedupe_config());
    let group = "shelfsync_operators::dedupe_orders";
    bench_operator(c, group, "mem_store", Stage::Dedupe, &op, MemStore::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = state_db(dir.path());
    let store = db.store("dedupe-0").expect("column family");
    bench_operator(c, group, "rocks_store", Stage::Dedupe, &op, store);
}

fn assemble_orders(c: &mut Criterion) {
    let topology = shelfsync_benches::topology();
    let op = AssembleOrders::new(topology.assemble_config());
    let group = "shelfsync_operators::assemble_orders";
    bench_operator(c, group, "mem_store", Stage::Assemble, &op, MemStore::new());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = state_db(dir.path());
    let store = db.store("assemble-0").expect("column family");
    bench_operator(c, group, "rocks_store", Stage::Assemble, &op, store);
}

/// The stateless ERP ingest: validation and routing of stock and product changes.
fn erp_ingest(c: &mut Criterion) {
    let mut products = Vec::new();
    let mut changes = Vec::new();
    for input in Feed::new(10_000, Some(Stage::ErpProducts)).catalog() {
        products.push(avro::decode::<ProductChange>(&input.value).expect("decodes"));
    }
    for input in Feed::new(10_000, Some(Stage::ErpInventory)).take(10_000) {
        changes.push(avro::decode::<InventoryChange>(&input.value).expect("decodes"));
    }
    let mut g = c.benchmark_group("shelfsync_operators::erp_ingest");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut i = 0;
    g.bench_function("ingest_inventory", |b| {
        b.iter(|| {
            i = (i + 1) % changes.len();
            ingest_inventory(std::hint::black_box(&changes[i]))
        })
    });
    g.bench_function("ingest_product", |b| {
        b.iter(|| {
            i = (i + 1) % products.len();
            ingest_product(std::hint::black_box(&products[i]))
        })
    });
    g.finish();
}

criterion_group!(
    benches,
    reserve_inventory,
    dedupe_orders,
    assemble_orders,
    erp_ingest
);
criterion_main!(benches);
