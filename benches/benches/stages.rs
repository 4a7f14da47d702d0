//! Each stage as the engine runs it on one record — decode, operator, encode of every output —
//! over `RocksStore`, with one RocksDB `WriteBatch` (overlay + checkpoint, WAL on) per 10,000
//! records like a saturated epoch. No Kafka: this is the in-process ceiling of a stage on one
//! core. The inventory stage starts from a loaded catalog of `SHELFSYNC_BENCH_SKUS` SKUs
//! (default 100,000) and keeps its state across iterations, so every measured command is new.
//!
//! Group `shelfsync_pipeline::stages`; ids `<stage>/rocks_store/<skus>` (stateful) and
//! `<stage>` (stateless).

use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use shelfsync_benches::{bench_skus, load, state_db, EpochStore, Feed, EPOCH_RECORDS};
use shelfsync_operators::StateStore;
use shelfsync_pipeline::stages::StageLogic;
use shelfsync_topology::Stage;

fn bench_stage(c: &mut Criterion, stage: Stage) {
    let skus = bench_skus();
    let mut feed = Feed::new(skus, Some(stage));
    let logic = StageLogic::new(stage, feed.topology());
    let dir = tempfile::tempdir().expect("temp dir");
    let db = state_db(dir.path());
    let mut store = db
        .store(&format!("{}-0", stage.name()))
        .expect("column family");
    let id = if stage.is_stateful() {
        let catalog = feed.catalog();
        load(&logic, &mut store, &catalog);
        BenchmarkId::new(format!("{}/rocks_store", stage.name()), skus)
    } else {
        BenchmarkId::from_parameter(stage.name())
    };
    let mut g = c.benchmark_group("shelfsync_pipeline::stages");
    g.sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .throughput(Throughput::Elements(1));
    let mut out = Vec::new();
    g.bench_function(id, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut left = iters as usize;
            while left > 0 {
                let n = left.min(EPOCH_RECORDS);
                let inputs = feed.take(n);
                let started = Instant::now();
                for input in &inputs {
                    out.clear();
                    let store = stage
                        .is_stateful()
                        .then_some(&mut store as &mut dyn StateStore);
                    // A refused record (DLQ) is part of the work, as in the engine.
                    let _ = logic
                        .process(store, input.ts, Some(&input.value), &mut out)
                        .expect("no corrupt state");
                }
                if stage.is_stateful() {
                    store.end_epoch();
                }
                total += started.elapsed();
                left -= n;
            }
            total
        });
    });
    g.finish();
}

fn stages(c: &mut Criterion) {
    for stage in [
        Stage::Inventory,
        Stage::Dedupe,
        Stage::Assemble,
        Stage::Normalize,
        Stage::ErpInventory,
    ] {
        bench_stage(c, stage);
    }
}

criterion_group!(benches, stages);
criterion_main!(benches);
