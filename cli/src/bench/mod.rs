//! `shelfsync bench`: the end-to-end benchmark. It measures the pipeline against a broker and
//! reports every throughput as a ratio of a passthrough baseline measured on the same broker in
//! the same run.
//!
//! Phases (each on fresh topics with its own application id; `--phases` picks some):
//!
//! 1. **throughput** — preloads `--backlog` worth of the configured traffic (the generator's
//!    catalog, orders with repeats, revisions and cancellations, ERP updates) into the input
//!    topics of two topic sets, then drains each:
//!    - the *passthrough* baseline: one consumer-group member in this process reading the
//!      topics every stage reads and copying each record, bytes untouched, to the topic the
//!      stage writes (inventory → line results), with the same client configuration, idempotent
//!      producer (`acks=all`) and a group-offset commit per epoch interval; no decoding, no
//!      state. A record thus takes the same hops as in the pipeline;
//!    - the *pipeline*: `shelfsync run` as a child process (so that its peak RSS is its own).
//!
//!    Both are sampled every 200 ms (the pipeline through `/metrics`); records/s of a stage is
//!    its records in from its first to its last sample that moved; end to end is the input
//!    records (raw orders + ERP records) over the time from the first input record taken to the
//!    last record any stage took.
//! 2. **latency** — a fresh pipeline gets the catalog, then live traffic at `--rate` orders/s
//!    and `--erp-rate` ERP updates/s for `--duration`. Every record keeps the timestamp the
//!    generator gave it when producing the source record, so an observer that reads the output
//!    topics measures, per record, produce → readable: ERP change → its availability events
//!    (matched by SKU and timestamp to the ERP record) and raw order → its validated order.
//! 3. **restore** — the inventory store of `--restore-skus` SKUs (the catalog run through the
//!    ERP and inventory stages in this process) is written to the store's changelog as a
//!    compacted changelog would hold it, and the group offsets are set past it; a pipeline with
//!    an empty state directory then restores it. Reports changelog records/s and the time to
//!    ready, from the pipeline's own `restore finished` logs and `/readyz`.
//!
//! 4. **stage** — the inventory stage alone through the broker: `--stage-commands` SKU-keyed
//!    inventory commands (the catalog of `--stage-skus` SKUs and traffic, run through the
//!    upstream stages in this process) preloaded into a fresh topic per contender and drained by
//!    the pipeline, the passthrough (same hop) and, with `--peer kafka-streams`, the Kafka
//!    Streams peer (`benches/peers/kafka-streams/`) under `at_least_once` and
//!    `exactly_once_v2`. Reports commands/s and the pipeline's ratio to each, and checks that
//!    every peer's final availability per (channel, SKU) equals the pipeline's (the bench fails
//!    when it does not). After its drain each contender but the passthrough takes
//!    `--stage-live` of live commands at `--stage-live-rate` (timed from sent to availability
//!    readable), then is stopped and started again on an empty state directory to time its
//!    restore (`stage_live`).
//!
//! Each phase reports the pipeline's peak RSS (`VmHWM` of the child) against the configured
//! RocksDB budget + 256 MiB. The benchmark stops by itself: every wait is bounded.
//!
//! How the pieces fit: this file has the flags and runs the phases; `topology` builds each
//! phase's topology, `pipeline` runs `shelfsync run` as a child process and reads its
//! endpoints, `drain` samples progress and turns it into rates (and preloads the backlog);
//! `throughput` (with the passthrough baseline), `latency`, `restore` and `stage` (with
//! `stage_live`) are the phases, `peer` builds and runs the Kafka Streams peer;
//! `report` prints the results and writes them as JSON.

mod drain;
mod latency;
mod peer;
mod pipeline;
mod report;
mod restore;
mod stage;
mod stage_live;
mod throughput;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use shelfsync_topology::TopicId;

use crate::generator::{parse_duration, GeneratorConfig, TrafficArgs};

pub use drain::Rate;
pub use latency::{LatencyResult, Percentiles};
pub use peer::PeerKind;
pub use report::BenchReport;
pub use restore::RestoreResult;
pub use stage::{Contender, StageResult};
pub use throughput::ThroughputResult;

/// A phase of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Backlog drain: pipeline vs passthrough records/s.
    Throughput,
    /// Live traffic: produce → readable latency percentiles.
    Latency,
    /// Changelog restore of a large inventory store.
    Restore,
    /// The inventory stage alone through the broker: pipeline vs passthrough (and `--peer`).
    Stage,
}

/// Flags of `shelfsync bench`.
///
/// The traffic flags are the shared [`TrafficArgs`]; the bench keeps its own defaults for three
/// of them (a catalog and rates sized for a benchmark, not a demo), and help texts that say what
/// `--skus`, `--rate` and `--duration` mean here.
#[derive(Debug, Clone, clap::Args)]
#[command(
    mut_arg("skus", |a| a
        .default_value("100000")
        .help("SKUs in the catalog of the throughput and latency phases")),
    mut_arg("orders_per_sec", |a| a
        .default_value("500")
        .help("Raw order records per second (new orders, repeats, revisions, cancellations)")),
    mut_arg("erp_updates_per_sec", |a| a.default_value("5000")),
    mut_arg("duration", |a| a.help("How long the latency phase produces live traffic")),
)]
pub struct BenchArgs {
    /// The broker of the throughput and latency phases (host:port).
    #[arg(long, env = "SHELFSYNC_BOOTSTRAP_SERVERS")]
    pub bootstrap: String,
    /// The broker of the restore phase (default: `--bootstrap`).
    #[arg(long)]
    pub restore_bootstrap: Option<String>,
    /// The topology to start from (default: the example topology): its channels, locations,
    /// partitions, epoch and RocksDB budget. Its application id and topic names are replaced by
    /// fresh ones per phase.
    #[arg(long)]
    pub topology: Option<PathBuf>,
    /// Stock locations (0: the topology's). Otherwise `dc-1` plus `store-2`… .
    #[arg(long, default_value_t = 0)]
    pub locations: u32,
    /// Sales channels (0: the topology's). Fewer keeps the first ones; more adds generic
    /// marketplaces with a 10% share.
    #[arg(long, default_value_t = 0)]
    pub channels: u32,
    /// Partitions of every topic (0: the topology's).
    #[arg(long, default_value_t = 0)]
    pub partitions: i64,
    /// Epoch interval, e.g. `100ms` (default: the topology's).
    #[arg(long, value_parser = parse_duration)]
    pub epoch: Option<Duration>,
    /// `processing.max_alignment_delay`, e.g. `0s` to apply the inventory stage's inputs as
    /// they arrive (default: the topology's). Compare runs with and without to see what
    /// event-time alignment costs.
    #[arg(long, value_parser = parse_duration)]
    pub max_alignment_delay: Option<Duration>,
    /// Phases to run, comma-separated.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "throughput,latency,restore"
    )]
    pub phases: Vec<Phase>,
    /// The traffic: catalog size, rates, mix, duration (of the latency phase) and seed.
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// How much of the configured traffic (at `--rate` and `--erp-rate`) the throughput phase
    /// preloads, after the catalog.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub backlog: Duration,
    /// A peer system to run the stage phase's workload on too; runs the stage phase even when
    /// `--phases` leaves it out.
    #[arg(long, value_enum)]
    pub peer: Option<PeerKind>,
    /// Inventory commands the stage phase preloads per contender (at least; the last source
    /// record's commands are kept whole).
    #[arg(long, default_value_t = 300_000)]
    pub stage_commands: usize,
    /// SKUs in the stage phase's catalog (3 commands each: product + 2 snapshots with the
    /// example's two locations), before the traffic.
    #[arg(long, default_value_t = 20_000)]
    pub stage_skus: u32,
    /// After each stage contender drains its preload: live inventory commands (the same
    /// workload, continued) at this rate, each timed from sent to its availability readable
    /// (`read_committed`).
    #[arg(long, default_value_t = 5_000.0)]
    pub stage_live_rate: f64,
    /// How long the stage phase's live commands run per contender (`0s`: none).
    #[arg(long, default_value = "20s", value_parser = parse_duration)]
    pub stage_live: Duration,
    /// SKUs of the inventory store the restore phase restores.
    #[arg(long, default_value_t = 1_000_000)]
    pub restore_skus: u32,
    /// The longest wait for a pipeline to drain, restore or get ready.
    #[arg(long, default_value = "600s", value_parser = parse_duration)]
    pub timeout: Duration,
    /// Also write the results as JSON to this file.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Keep the pipelines' logs and state in this directory (default: a temporary one).
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

impl BenchArgs {
    /// The generator of the bench: the traffic flags with `skus` SKUs and no flash sale.
    pub(super) fn generator(&self, skus: u32) -> GeneratorConfig {
        GeneratorConfig {
            traffic: TrafficArgs {
                skus,
                ..self.traffic.clone()
            },
            flash_skus: 0,
            flash_orders_per_sec: 0.0,
            erp_sequence_base: 0,
        }
    }
}

/// Runs `shelfsync bench`.
///
/// # Errors
/// When a broker is unreachable, a pipeline exits or does not drain, restore or get ready
/// within `--timeout`, or the broker refuses records.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let base = topology::base_topology(&args)?;
    let unix = shelfsync_pipeline::clock::now_ms() / 1000;
    let run_id = format!("bench-{unix}");
    let tmp;
    let dir = match &args.work_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::Builder::new()
                .prefix("shelfsync-bench-")
                .tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let mut report = BenchReport {
        started: humantime::format_rfc3339_seconds(SystemTime::now()).to_string(),
        workload: format!(
            "{} SKUs, {} locations, {} channels, {} partitions (inventory commands: {}), epoch {:?}, max alignment delay {:?}; {} orders/s ({}% repeats, {}% cancellations, {}% revisions), {} ERP updates/s; backlog {:?}; latency run {:?}; restore {} SKUs",
            args.traffic.skus,
            base.locations.len(),
            base.channels.len(),
            base.topics.partitions,
            base.partitions(TopicId::InventoryCommands),
            base.processing.epoch_interval,
            base.processing.max_alignment_delay,
            args.traffic.orders_per_sec,
            args.traffic.duplicate_pct,
            args.traffic.cancel_pct,
            args.traffic.revision_pct,
            args.traffic.erp_updates_per_sec,
            args.backlog,
            args.traffic.duration,
            args.restore_skus
        ),
        rocksdb_budget: base.processing.rocksdb_memory_budget.0,
        ..BenchReport::default()
    };
    if args.phases.contains(&Phase::Throughput) {
        report.throughput = Some(throughput::run(&args, &base, &run_id, &dir)?);
    }
    if args.phases.contains(&Phase::Latency) {
        report.latency = Some(latency::run(&args, &base, &run_id, &dir)?);
    }
    if args.phases.contains(&Phase::Restore) {
        report.restore = Some(restore::run(&args, &base, &run_id, &dir)?);
    }
    if args.phases.contains(&Phase::Stage) || args.peer.is_some() {
        report.stage = Some(stage::run(&args, &base, &run_id, &dir)?);
    }
    println!("{report}");
    if let Some(path) = &args.json {
        report.write_json(path)?;
    }
    if report.stage.as_ref().is_some_and(|s| s.mismatches() > 0) {
        eprintln!("the peer's final availability differs from the pipeline's");
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bench_keeps_its_own_traffic_defaults() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            bench: BenchArgs,
        }
        let flags = <Flags as clap::Parser>::try_parse_from(["bench", "--bootstrap", "b:9092"])
            .expect("parses");
        assert_eq!(
            flags.bench.traffic,
            TrafficArgs {
                skus: 100_000,
                orders_per_sec: 500.0,
                erp_updates_per_sec: 5_000.0,
                ..TrafficArgs::default()
            }
        );
        let flags = <Flags as clap::Parser>::try_parse_from([
            "bench",
            "--bootstrap",
            "b:9092",
            "--skus",
            "300",
            "--rate",
            "7",
            "--erp-rate",
            "9",
        ])
        .expect("parses");
        let t = flags.bench.traffic;
        assert_eq!(
            (t.skus, t.orders_per_sec, t.erp_updates_per_sec),
            (300, 7.0, 9.0)
        );
    }
}
