//! # shelfsync-benches
//!
//! The criterion micro-benchmarks of shelfsync (`benches/benches/*.rs`, `cargo bench -p
//! shelfsync-benches`) and what they share: [`Feed`], which runs the traffic model of
//! `shelfsync generate` ([`TrafficSource`]) through the stages in process over [`MemStore`]s and
//! hands out realistic inputs for any one stage, so every benchmark sees the same workload as
//! the end-to-end benchmark (`shelfsync bench`, in `shelfsync-pipeline`).
//!
//! The benchmarks:
//! - `operators`: each operator over `MemStore` and over `RocksStore` (typed input, no Avro);
//! - `stages`: each stage as the engine runs it (decode → operator → encode) over `RocksStore`,
//!   with a RocksDB `WriteBatch` per 10,000 records like an epoch: the in-process throughput of
//!   a stage on one core;
//! - `avro`: encode and decode of every schema;
//! - `adapters`: the channel adapters (Shopify, Amazon, Walmart, generic).
//!
//! Sizes come from environment variables so a quick run and a large one use the same code:
//! `SHELFSYNC_BENCH_SKUS` (catalog size of the stateful benchmarks, default 100,000).

use std::collections::{BTreeMap, VecDeque};
use std::path::Path;

use shelfsync_cli::generator::{GeneratorConfig, SourceRecord, TrafficArgs, TrafficSource};
use shelfsync_operators::{MemStore, StateStore};
use shelfsync_pipeline::rocks_store::{RocksStore, StateDb, CHECKPOINT_KEY};
use shelfsync_pipeline::stages::{OutRecord, StageLogic};
use shelfsync_topology::{Stage, TopicId, Topology};

/// The example topology (`topology/retail.example.toml`): 2 locations, 5 channels.
pub const EXAMPLE_TOPOLOGY: &str = include_str!("../topology/retail.example.toml");

/// Records per RocksDB `WriteBatch` in the stateful benchmarks: the engine's default
/// `epoch_max_records`, which is what an epoch holds when the stage is saturated.
pub const EPOCH_RECORDS: usize = 10_000;

/// The RocksDB memory budget of the benchmarks' stores (the example topology's).
pub const ROCKSDB_BUDGET: usize = 256 << 20;

/// The example topology, parsed and validated.
///
/// # Panics
/// When the example file does not validate (a bug caught by the topology crate's tests).
pub fn topology() -> Topology {
    Topology::from_toml_str(EXAMPLE_TOPOLOGY).expect("the example topology validates")
}

/// The catalog size of the stateful benchmarks: `SHELFSYNC_BENCH_SKUS`, default 100,000.
pub fn bench_skus() -> u32 {
    std::env::var("SHELFSYNC_BENCH_SKUS")
        .ok()
        .and_then(|v| v.replace('_', "").parse().ok())
        .unwrap_or(100_000)
}

/// The generator settings of the benchmarks: `skus` SKUs and `shelfsync generate`'s default
/// mix (10% repeated deliveries, 5% cancellations, 8% revisions).
pub fn generator_config(skus: u32) -> GeneratorConfig {
    GeneratorConfig {
        traffic: TrafficArgs {
            skus,
            ..TrafficArgs::default()
        },
        flash_skus: 0,
        ..GeneratorConfig::default()
    }
}

/// One input record of a stage: its timestamp, key and framed value.
#[derive(Debug, Clone)]
pub struct Input {
    /// Record timestamp (ms): the feed's simulated clock.
    pub ts: i64,
    /// Record key.
    pub key: Vec<u8>,
    /// Record value (JSON envelope or single-object Avro).
    pub value: Vec<u8>,
}

/// How far a stage is from the input topics (a stage only feeds stages further down).
fn depth(stage: Stage) -> u8 {
    match stage {
        Stage::Normalize | Stage::ErpInventory | Stage::ErpProducts => 0,
        Stage::Dedupe => 1,
        Stage::Inventory => 2,
        Stage::Assemble => 3,
    }
}

fn reader_of(topic: TopicId) -> Option<Stage> {
    Stage::ALL.iter().copied().find(|s| s.input() == topic)
}

/// The traffic model run through the stages in process, over `MemStore`s.
///
/// [`Feed::take`] returns the next inputs of one stage (the *target*): the feed generates
/// source records and runs every stage upstream of the target on them; the target itself is
/// the benchmark's to run. With no target, every stage runs and the external outputs are kept
/// ([`Feed::outputs`]) — samples of every record type.
pub struct Feed {
    source: TrafficSource,
    topology: Topology,
    logic: BTreeMap<Stage, StageLogic>,
    stores: BTreeMap<Stage, MemStore>,
    target: Option<Stage>,
    queue: VecDeque<Input>,
    outputs: BTreeMap<TopicId, Vec<Vec<u8>>>,
    /// Simulated clock (ms) and its step per source record.
    clock: i64,
    step_ms: i64,
    /// Order records per ERP update (the rest of the mix comes from the generator).
    orders_per_erp: u32,
    emitted: u64,
}

impl std::fmt::Debug for Feed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Feed")
            .field("target", &self.target)
            .field("emitted", &self.emitted)
            .finish_non_exhaustive()
    }
}

impl Feed {
    /// A feed of `skus` SKUs for `target` over the example topology. The clock advances 1 ms
    /// per source record (1,000 records per second of stream time), and there are 4 order
    /// records per ERP update (`shelfsync generate`'s default rates, 20/s and 5/s).
    ///
    /// # Panics
    /// When the generator refuses the settings (e.g. fewer than 10 SKUs).
    pub fn new(skus: u32, target: Option<Stage>) -> Self {
        let topology = topology();
        let source = TrafficSource::new(&topology, &generator_config(skus))
            .expect("the benchmark's generator settings are valid");
        let logic = Stage::ALL
            .iter()
            .map(|s| (*s, StageLogic::new(*s, &topology)))
            .collect();
        let stores = Stage::ALL
            .iter()
            .filter(|s| s.is_stateful())
            .map(|s| (*s, MemStore::new()))
            .collect();
        Self {
            source,
            topology,
            logic,
            stores,
            target,
            queue: VecDeque::new(),
            outputs: BTreeMap::new(),
            clock: 1_772_000_000_000,
            step_ms: 1,
            orders_per_erp: 4,
            emitted: 0,
        }
    }

    /// The topology the feed runs.
    pub fn topology(&self) -> &Topology {
        &self.topology
    }

    /// Sends the catalog (product master and stock snapshots) through the stages and returns
    /// the target's inputs it produced (e.g. the inventory commands that load the stock).
    ///
    /// # Panics
    /// When a stage fails on the generator's records (a bug).
    pub fn catalog(&mut self) -> Vec<Input> {
        let records = self.source.catalog(self.clock).expect("catalog encodes");
        for rec in records {
            self.push_source(rec);
        }
        self.queue.drain(..).collect()
    }

    /// The next source record (orders and ERP updates interleaved).
    fn next_source(&mut self) -> SourceRecord {
        self.clock += self.step_ms;
        self.emitted += 1;
        // Every (orders_per_erp + 1)-th source record is an ERP update.
        let erp = self.emitted.rem_euclid(u64::from(self.orders_per_erp) + 1) == 0;
        let wants_erp = match self.target {
            Some(Stage::Normalize | Stage::Dedupe) => false,
            Some(Stage::ErpInventory) => true,
            _ => erp,
        };
        if wants_erp {
            self.source.next_erp_update(self.clock).expect("ERP update")
        } else {
            self.source.next_order(self.clock).expect("order")
        }
    }

    /// The next `n` inputs of the target stage (the raw source records with no target).
    ///
    /// # Panics
    /// When a stage fails on the generator's records (a bug), or for the `erp-products` target
    /// (product changes only come with the catalog).
    pub fn take(&mut self, n: usize) -> Vec<Input> {
        assert_ne!(
            self.target,
            Some(Stage::ErpProducts),
            "product changes only come with the catalog"
        );
        while self.queue.len() < n {
            let rec = self.next_source();
            if self.target.is_none() {
                self.queue.push_back(Input {
                    ts: self.clock,
                    key: rec.key.clone().into_bytes(),
                    value: rec.value.clone(),
                });
            }
            self.push_source(rec);
        }
        self.queue.drain(..n).collect()
    }

    /// Source records of the next `n` steps without running any stage (raw orders and ERP
    /// updates as the generator writes them).
    ///
    /// # Panics
    /// When the generator fails (a bug).
    pub fn take_source(&mut self, n: usize) -> Vec<SourceRecord> {
        (0..n).map(|_| self.next_source()).collect()
    }

    /// External outputs (availability, validated orders, order status) collected so far with
    /// no target, by topic.
    pub fn outputs(&self, topic: TopicId) -> &[Vec<u8>] {
        self.outputs.get(&topic).map_or(&[], Vec::as_slice)
    }

    fn push_source(&mut self, rec: SourceRecord) {
        let Some(stage) = reader_of(rec.topic) else {
            return;
        };
        let input = Input {
            ts: self.clock,
            key: rec.key.into_bytes(),
            value: rec.value,
        };
        self.route(stage, input);
    }

    /// Queues `input` when `stage` is the target, runs it when the stage is upstream of the
    /// target (or there is no target), drops it otherwise.
    fn route(&mut self, stage: Stage, input: Input) {
        match self.target {
            Some(t) if t == stage => {
                self.queue.push_back(input);
                return;
            }
            Some(t) if depth(stage) >= depth(t) => return,
            _ => {}
        }
        let mut out: Vec<OutRecord> = Vec::new();
        let logic = &self.logic[&stage];
        let store = self
            .stores
            .get_mut(&stage)
            .map(|s| s as &mut dyn StateStore);
        logic
            .process(store, input.ts, Some(&input.value), &mut out)
            .expect("no corrupt state in a MemStore")
            .unwrap_or_else(|r| panic!("{stage} refused a generated record: {}", r.reason));
        for rec in out {
            match reader_of(rec.topic) {
                Some(next) => self.route(
                    next,
                    Input {
                        ts: input.ts,
                        key: rec.key,
                        value: rec.value,
                    },
                ),
                None if self.target.is_none() => {
                    self.outputs.entry(rec.topic).or_default().push(rec.value)
                }
                None => {}
            }
        }
    }
}

/// What the stateful benchmarks do at the end of an epoch: nothing for a `MemStore`, one
/// atomic `WriteBatch` of the overlay plus a checkpoint for a `RocksStore` (as the engine does
/// once the epoch's outputs are acknowledged).
pub trait EpochStore: StateStore {
    /// Makes the epoch's writes durable.
    fn end_epoch(&mut self);
}

impl EpochStore for MemStore {
    fn end_epoch(&mut self) {}
}

impl EpochStore for RocksStore {
    fn end_epoch(&mut self) {
        self.commit(&[(CHECKPOINT_KEY, b"checkpoint")], true)
            .expect("RocksDB write batch");
    }
}

/// A RocksDB under `dir` with the benchmarks' memory budget.
///
/// # Panics
/// When RocksDB cannot open the directory.
pub fn state_db(dir: &Path) -> StateDb {
    StateDb::open(dir, ROCKSDB_BUDGET).expect("open RocksDB")
}

/// Runs `stage` over `store` on `inputs`, ending an epoch every [`EPOCH_RECORDS`] records and
/// at the end (untimed loading, e.g. of the catalog).
///
/// # Panics
/// When the stage fails (a bug) or refuses a generated record.
pub fn load<S: EpochStore>(logic: &StageLogic, store: &mut S, inputs: &[Input]) {
    let mut out = Vec::new();
    for chunk in inputs.chunks(EPOCH_RECORDS) {
        for input in chunk {
            out.clear();
            logic
                .process(
                    Some(&mut *store as &mut dyn StateStore),
                    input.ts,
                    Some(&input.value),
                    &mut out,
                )
                .expect("stage runs")
                .unwrap_or_else(|r| panic!("refused: {}", r.reason));
        }
        store.end_epoch();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfsync_schemas::avro;
    use shelfsync_schemas::{InventoryCommand, LineResult, Order};

    #[test]
    fn the_feed_hands_out_decodable_inputs_of_its_target_stage() {
        let mut inventory = Feed::new(50, Some(Stage::Inventory));
        // 50 product records and 2 snapshots per SKU (two locations).
        assert_eq!(inventory.catalog().len(), 150);
        for input in inventory.take(200) {
            avro::decode::<InventoryCommand>(&input.value).expect("an inventory command");
        }
        for input in Feed::new(50, Some(Stage::Dedupe)).take(50) {
            avro::decode::<Order>(&input.value).expect("an order");
        }
        let mut assemble = Feed::new(50, Some(Stage::Assemble));
        assert!(assemble.catalog().is_empty());
        for input in assemble.take(50) {
            avro::decode::<LineResult>(&input.value).expect("a line result");
        }
    }

    #[test]
    fn without_a_target_every_stage_runs_and_outputs_are_kept() {
        let mut feed = Feed::new(50, None);
        feed.catalog();
        let raw = feed.take(500);
        assert_eq!(raw.len(), 500);
        assert!(!feed.outputs(TopicId::Availability).is_empty());
        assert!(!feed.outputs(TopicId::ValidatedOrders).is_empty());
    }

    #[test]
    fn a_rocks_store_loads_the_catalog_in_epochs() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = state_db(dir.path());
        let mut store = db.store("inventory-0").expect("column family");
        let mut feed = Feed::new(50, Some(Stage::Inventory));
        let catalog = feed.catalog();
        load(
            &StageLogic::new(Stage::Inventory, feed.topology()),
            &mut store,
            &catalog,
        );
        assert!(store.pending().is_empty());
        assert!(store.get_committed(CHECKPOINT_KEY).expect("read").is_some());
    }
}
