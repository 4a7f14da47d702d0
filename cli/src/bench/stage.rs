//! The stage phase: the inventory stage alone, through the broker. SKU-keyed inventory
//! commands (the generator's catalog and traffic run through the upstream stages in this
//! process) are preloaded into a fresh inventory-commands topic per contender, then drained by
//! the pipeline (`shelfsync run`), the passthrough (the same hop, bytes copied to the line
//! results topic) and, with `--peer kafka-streams`, the Kafka Streams peer under
//! `at_least_once` and `exactly_once_v2`. Every contender's final availability per
//! (channel, SKU) — the highest version in its availability topic — must equal the pipeline's.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::message::Message;
use shelfsync_operators::{MemStore, StateStore};
use shelfsync_schemas::{ChannelAvailability, InventoryCommand, LineResult};
use shelfsync_topology::{Stage, TopicId, Topology};

use crate::generator::TrafficSource;
use shelfsync_pipeline::kafka::{KafkaProducer, ProduceRecord};
use shelfsync_pipeline::stages::{OutRecord, StageLogic};

use super::drain::{drain, Rate};
use super::peer::{self, Guarantee, PeerKind, PeerProcess};
use super::pipeline::Pipeline;
use super::restore::restore_logs;
use super::stage_live::{self, Live, Restore};
use super::throughput::{passthrough, StageCounters};
use super::topology::{create_topics, phase_topology};
use super::BenchArgs;

/// One contender of the stage phase.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Contender {
    /// What ran: `pipeline`, `passthrough`, `kafka-streams at_least_once`, ….
    pub name: String,
    /// Commands taken per second, from the first command taken to the last.
    pub rate: Rate,
    /// Peak RSS of its process, bytes (the passthrough runs in the bench process: none).
    pub peak_rss: Option<u64>,
    /// Availability events it wrote.
    pub availability_events: u64,
    /// Line results it wrote, by outcome (`RESERVED (filled)`: a backorder's fill).
    pub line_results: BTreeMap<String, u64>,
    /// Commands it refused (undecodable or invalid; the peer's own count).
    pub refused: u64,
    /// (channel, SKU) pairs whose final quantity differs from the pipeline's (`None`: not
    /// checked, e.g. the passthrough).
    pub mismatches: Option<u64>,
    /// Pairs whose final version differs from the pipeline's (informational).
    pub version_differences: Option<u64>,
    /// A few mismatches, `channel|sku: pipeline … vs …`.
    pub examples: Vec<String>,
    /// Live commands after the drain, timed to their availability (not the passthrough).
    pub live: Option<Live>,
    /// Restore onto an empty state directory after the run (not the passthrough).
    pub restore: Option<Restore>,
}

/// Results of the stage phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct StageResult {
    /// Inventory commands preloaded per contender.
    pub commands: u64,
    /// SKUs in the catalog.
    pub skus: u32,
    /// Commands by kind (`INVENTORY`, `PRODUCT`, `RESERVE`, `RELEASE`).
    pub kinds: BTreeMap<String, u64>,
    /// (channel, SKU) pairs in the pipeline's final availability.
    pub availability_pairs: u64,
    /// The pipeline, the passthrough, then the peers.
    pub contenders: Vec<Contender>,
    /// Commands/s of the pipeline over those of each other contender, by name.
    pub ratios: BTreeMap<String, f64>,
}

impl StageResult {
    /// Mismatches over every checked contender.
    pub fn mismatches(&self) -> u64 {
        self.contenders.iter().filter_map(|c| c.mismatches).sum()
    }
}

/// An inventory command as preloaded.
pub(super) struct Command {
    pub(super) key: Vec<u8>,
    pub(super) value: Vec<u8>,
    pub(super) ts: i64,
}

fn reader_of(topic: TopicId) -> Option<Stage> {
    Stage::ALL.iter().copied().find(|s| s.input() == topic)
}

/// Runs `value` through `stage` and every stage below it up to (not including) the inventory
/// stage, collecting the inventory commands.
fn route(
    logic: &BTreeMap<Stage, StageLogic>,
    dedupe: &mut MemStore,
    stage: Stage,
    value: &[u8],
    ts: i64,
    out: &mut Vec<Command>,
) -> anyhow::Result<()> {
    let mut records: Vec<OutRecord> = Vec::new();
    let store = stage.is_stateful().then_some(dedupe as &mut dyn StateStore);
    // A record a stage refuses (the generator's invalid ones) goes to the DLQ: not a command.
    let _ = logic[&stage].process(store, ts, Some(value), &mut records)?;
    for rec in records {
        match reader_of(rec.topic) {
            Some(Stage::Inventory) => out.push(Command {
                key: rec.key,
                value: rec.value,
                ts,
            }),
            Some(next) if logic.contains_key(&next) => {
                route(logic, dedupe, next, &rec.value, ts, out)?
            }
            _ => {}
        }
    }
    Ok(())
}

/// At least `n` inventory commands: the catalog of `--stage-skus` SKUs, then traffic at the
/// configured mix (`--rate` orders and `--erp-rate` ERP updates per second of stream time),
/// stamped with the source record's time, an hour ago onwards.
fn commands(topology: &Topology, args: &BenchArgs, n: usize) -> anyhow::Result<Vec<Command>> {
    let err = |e: shelfsync_pipeline::Error| anyhow::anyhow!("{e}");
    let mut source = TrafficSource::new(topology, &args.generator(args.stage_skus)).map_err(err)?;
    let logic: BTreeMap<Stage, StageLogic> = [
        Stage::Normalize,
        Stage::Dedupe,
        Stage::ErpInventory,
        Stage::ErpProducts,
    ]
    .into_iter()
    .map(|s| (s, StageLogic::new(s, topology)))
    .collect();
    let mut dedupe = MemStore::new();
    let t0 = shelfsync_pipeline::clock::now_ms() - 3_600_000;
    let mut out = Vec::with_capacity(n + 1000);
    for rec in source.catalog(t0).map_err(err)? {
        if let Some(stage) = reader_of(rec.topic) {
            route(&logic, &mut dedupe, stage, &rec.value, t0, &mut out)?;
        }
    }
    let every = |per_sec: f64| {
        if per_sec > 0.0 {
            1000.0 / per_sec
        } else {
            f64::INFINITY
        }
    };
    let (order_every, erp_every) = (
        every(args.traffic.orders_per_sec),
        every(args.traffic.erp_updates_per_sec),
    );
    if order_every.is_infinite() && erp_every.is_infinite() {
        bail!("the stage phase needs traffic: --rate or --erp-rate above 0");
    }
    let (mut next_order, mut next_erp) = (0.0f64, 0.0f64);
    while out.len() < n {
        let rec = if next_order <= next_erp {
            let ts = t0 + next_order as i64;
            next_order += order_every;
            (source.next_order(ts).map_err(err)?, ts)
        } else {
            let ts = t0 + next_erp as i64;
            next_erp += erp_every;
            (source.next_erp_update(ts).map_err(err)?, ts)
        };
        if let Some(stage) = reader_of(rec.0.topic) {
            route(&logic, &mut dedupe, stage, &rec.0.value, rec.1, &mut out)?;
        }
    }
    Ok(out)
}

impl Command {
    /// Sends it to `topic` (partitioned by its SKU key, murmur2).
    pub(super) fn send(&self, producer: &KafkaProducer, topic: &str) -> anyhow::Result<()> {
        producer.send(ProduceRecord {
            topic,
            partition: None,
            key: Some(&self.key),
            value: Some(&self.value),
            timestamp: Some(self.ts),
            headers: Vec::new(),
        })?;
        Ok(())
    }
}

/// Writes `commands` to `topology`'s inventory commands topic.
fn preload(topology: &Topology, commands: &[Command]) -> anyhow::Result<()> {
    let began = Instant::now();
    let producer = KafkaProducer::new(topology)?;
    let topic = topology.topic_name(TopicId::InventoryCommands);
    for (i, c) in commands.iter().enumerate() {
        c.send(&producer, &topic)?;
        if i % 1000 == 0 {
            producer.poll();
        }
    }
    let acks = producer.flush();
    if acks.failed > 0 {
        bail!("the broker refused {} preloaded commands", acks.failed);
    }
    eprintln!(
        "  preloaded {} commands in {:.1} s",
        commands.len(),
        began.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Final availability: per (channel, SKU), the (version, quantity) of the highest version.
type Finals = BTreeMap<(String, String), (i64, i64)>;

/// Reads topic `id` of `topology` to its end (committed records only), handing every value
/// to `each`.
fn read_to_end(
    topology: &Topology,
    id: TopicId,
    timeout: Duration,
    mut each: impl FnMut(&[u8]),
) -> anyhow::Result<()> {
    crate::read::read_to_end(
        topology,
        &topology.topic_name(id),
        topology.partitions(id),
        &format!("{}-check", topology.application_id),
        timeout,
        |msg| {
            if let Some(value) = msg.payload() {
                each(value);
            }
        },
    )
}

/// The final availability in `topology`'s availability topic, and how many events it holds.
fn final_availability(topology: &Topology, timeout: Duration) -> anyhow::Result<(Finals, u64)> {
    let (mut finals, mut events, mut undecodable) = (Finals::new(), 0u64, 0u64);
    read_to_end(topology, TopicId::Availability, timeout, |value| {
        match shelfsync_schemas::avro::decode::<ChannelAvailability>(value) {
            Ok(a) => {
                events += 1;
                let slot = finals.entry((a.channel, a.sku)).or_insert((0, 0));
                if a.version >= slot.0 {
                    *slot = (a.version, a.quantity);
                }
            }
            Err(_) => undecodable += 1,
        }
    })?;
    if undecodable > 0 {
        bail!("{undecodable} availability records are not ChannelAvailability");
    }
    Ok((finals, events))
}

/// The line results in `topology`'s line results topic by outcome (fills of backorders counted
/// apart, as `<outcome> (filled)`); records that are not line results (the pipeline's progress
/// marks) are skipped.
fn line_results(topology: &Topology, timeout: Duration) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut tally: BTreeMap<String, u64> = BTreeMap::new();
    read_to_end(topology, TopicId::LineResults, timeout, |value| {
        if let Ok(r) = shelfsync_schemas::avro::decode::<LineResult>(value) {
            let filled = if r.filled { " (filled)" } else { "" };
            *tally.entry(format!("{:?}{filled}", r.outcome)).or_default() += 1;
        }
    })?;
    Ok(tally)
}

/// Compares a contender's final availability with the pipeline's.
fn compare(ours: &Finals, theirs: &Finals, c: &mut Contender) {
    let (mut bad, mut versions) = (0u64, 0u64);
    let keys: BTreeSet<&(String, String)> = ours.keys().chain(theirs.keys()).collect();
    for key in keys {
        let (a, b) = (ours.get(key), theirs.get(key));
        if a.map(|v| v.1) != b.map(|v| v.1) {
            bad += 1;
            if c.examples.len() < 5 {
                c.examples.push(format!(
                    "{}|{}: pipeline {a:?} vs {b:?} (version, quantity)",
                    key.0, key.1
                ));
            }
        } else if a.map(|v| v.0) != b.map(|v| v.0) {
            versions += 1;
        }
    }
    c.mismatches = Some(bad);
    c.version_differences = Some(versions);
}

/// The phase's topology for one contender: fresh topics under `app`, alignment off (the
/// commands have one writer, the preload, and carry no upstream stamps).
fn stage_topology(base: &Topology, args: &BenchArgs, app: &str) -> anyhow::Result<Topology> {
    let mut t = phase_topology(base, &args.bootstrap, app)?;
    t.processing.max_alignment_delay = Duration::ZERO;
    create_topics(&t)?;
    Ok(t)
}

/// Runs the stage phase.
pub(super) fn run(
    args: &BenchArgs,
    base: &Topology,
    run: &str,
    dir: &Path,
) -> anyhow::Result<StageResult> {
    let build = match args.peer {
        Some(PeerKind::KafkaStreams) => Some(peer::build()?),
        None => None,
    };
    eprintln!(
        "stage: generating {} inventory commands ({} SKUs)",
        args.stage_commands, args.stage_skus
    );
    let live_n = (args.stage_live_rate * args.stage_live.as_secs_f64()).max(0.0) as usize;
    let mut cmds = commands(base, args, args.stage_commands + live_n)?;
    let live_cmds = cmds.split_off(args.stage_commands.min(cmds.len()));
    let n = cmds.len() as u64;
    // The live part of a contender, when asked for.
    let live = |t: &Topology, taken: &mut dyn FnMut() -> anyhow::Result<u64>| {
        if live_cmds.is_empty() {
            return Ok(None);
        }
        eprintln!(
            "  live: {} commands at {}/s",
            live_cmds.len(),
            args.stage_live_rate
        );
        stage_live::live(t, &live_cmds, args.stage_live_rate, args.timeout, n, taken).map(Some)
    };
    let mut kinds: BTreeMap<String, u64> = BTreeMap::new();
    for c in &cmds {
        let kind = shelfsync_schemas::avro::decode::<InventoryCommand>(&c.value)
            .map_or("undecodable".to_string(), |cmd| format!("{:?}", cmd.kind));
        *kinds.entry(kind).or_default() += 1;
    }
    let expected: BTreeMap<&'static str, u64> = [("inventory", n)].into_iter().collect();
    let mut result = StageResult {
        commands: n,
        skus: args.stage_skus,
        kinds,
        ..StageResult::default()
    };
    let one = |count: u64| -> BTreeMap<String, u64> {
        [("inventory".to_string(), count)].into_iter().collect()
    };

    // The pipeline: the reference for the final availability.
    let app = stage_topology(base, args, &format!("{run}-stage"))?;
    eprintln!("stage: pipeline ({})", app.application_id);
    preload(&app, &cmds)?;
    let mut pipeline = Pipeline::spawn(&app, dir, "stage")?;
    let samples = drain(&expected, args.timeout, || {
        pipeline.check_alive()?;
        Ok(pipeline.records_in().unwrap_or_default())
    })?;
    let peak_rss = pipeline.peak_rss();
    let live_result = live(&app, &mut || {
        pipeline.check_alive()?;
        Ok(pipeline
            .records_in()?
            .get("inventory")
            .copied()
            .unwrap_or_default())
    })?;
    pipeline.stop();
    let (ours, events) = final_availability(&app, args.timeout)?;
    result.availability_pairs = ours.len() as u64;
    eprintln!("  restore onto an empty state directory");
    let mut restoring = Pipeline::spawn(&app, dir, "stage-restore")?;
    let to_ready = restoring.wait_ready(args.timeout)?;
    std::thread::sleep(Duration::from_secs(1));
    let restore_rss = restoring.peak_rss();
    restoring.stop();
    let changelog = app.topic_name(TopicId::Changelog(shelfsync_topology::Store::Inventory));
    let restored = restore_logs(&restoring.log, &changelog)?;
    result.contenders.push(Contender {
        name: "pipeline".into(),
        rate: samples.rate(&["inventory"], &["inventory"]),
        peak_rss,
        availability_events: events,
        line_results: line_results(&app, args.timeout)?,
        live: live_result,
        restore: Some(Restore::new(
            restored.applied,
            restored.span,
            to_ready,
            restore_rss,
        )),
        ..Contender::default()
    });

    // The passthrough: the same hop, bytes copied to the line results topic.
    let pt = stage_topology(base, args, &format!("{run}-stage-passthrough"))?;
    eprintln!("stage: passthrough ({})", pt.application_id);
    preload(&pt, &cmds)?;
    let stop = AtomicBool::new(false);
    let counters = StageCounters::default();
    let samples = std::thread::scope(|s| {
        let worker = s.spawn(|| passthrough(&pt, &[Stage::Inventory], &stop, &counters));
        let samples = drain(&expected, args.timeout, || {
            if worker.is_finished() {
                bail!("the passthrough stopped early");
            }
            Ok(counters.snapshot())
        });
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        match worker.join() {
            Ok(r) => r?,
            Err(_) => bail!("the passthrough thread panicked"),
        }
        samples
    })?;
    result.contenders.push(Contender {
        name: "passthrough".into(),
        rate: samples.rate(&["inventory"], &["inventory"]),
        ..Contender::default()
    });

    if let Some(build) = &build {
        for (guarantee, short) in [
            (Guarantee::AtLeastOnce, "alos"),
            (Guarantee::ExactlyOnceV2, "eos"),
        ] {
            let t = stage_topology(base, args, &format!("{run}-stage-{short}"))?;
            eprintln!(
                "stage: Kafka Streams {} ({})",
                guarantee.name(),
                peer::application_id(&t)
            );
            preload(&t, &cmds)?;
            let name = format!("kafka-streams-{short}");
            let mut ks = PeerProcess::spawn(build, &t, guarantee, dir, &name)?;
            let samples = drain(&expected, args.timeout, || {
                ks.check_alive()?;
                Ok(one(ks.taken()))
            })?;
            let peak_rss = ks.peak_rss();
            let live_result = live(&t, &mut || {
                ks.check_alive()?;
                Ok(ks.taken())
            })?;
            let refused = ks.refused();
            ks.stop();
            let (theirs, events) = final_availability(&t, args.timeout)?;
            eprintln!("  restore onto an empty state directory");
            let mut restoring =
                PeerProcess::spawn(build, &t, guarantee, dir, &format!("{name}-restore"))?;
            let (records, secs, to_ready) = restoring.wait_restored(args.timeout)?;
            let restore_rss = restoring.peak_rss();
            restoring.stop();
            let mut c = Contender {
                name: format!("kafka-streams {}", guarantee.name()),
                rate: samples.rate(&["inventory"], &["inventory"]),
                peak_rss,
                availability_events: events,
                line_results: line_results(&t, args.timeout)?,
                refused,
                live: live_result,
                restore: Some(Restore::new(records, secs, to_ready, restore_rss)),
                ..Contender::default()
            };
            compare(&ours, &theirs, &mut c);
            result.contenders.push(c);
        }
    }
    let ours = result.contenders[0].rate.per_sec;
    for c in &result.contenders[1..] {
        if c.rate.per_sec > 0.0 {
            result.ratios.insert(c.name.clone(), ours / c.rate.per_sec);
        }
    }
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_check_counts_quantities_that_differ_and_versions_apart() {
        let key = |c: &str, s: &str| (c.to_string(), s.to_string());
        let ours: Finals = [
            (key("amazon", "A"), (3, 10)),
            (key("amazon", "B"), (1, 0)),
            (key("ebay", "A"), (2, 5)),
        ]
        .into_iter()
        .collect();
        let theirs: Finals = [
            (key("amazon", "A"), (3, 10)),
            (key("amazon", "B"), (2, 0)),
            (key("ebay", "A"), (2, 4)),
            (key("ebay", "C"), (1, 1)),
        ]
        .into_iter()
        .collect();
        let mut c = Contender::default();
        compare(&ours, &theirs, &mut c);
        // ebay|A differs in quantity, ebay|C is missing from ours; amazon|B only in version.
        assert_eq!(c.mismatches, Some(2));
        assert_eq!(c.version_differences, Some(1));
        assert_eq!(c.examples.len(), 2);
        assert!(c.examples[0].starts_with("ebay|A: pipeline Some((2, 5)) vs Some((2, 4))"));
    }
}
