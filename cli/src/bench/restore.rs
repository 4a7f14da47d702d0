//! The restore phase: a large inventory store written to its changelog as compaction would
//! leave it, then restored by a pipeline with an empty state directory.

use std::io::BufRead;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_operators::{MemStore, StateStore};
use shelfsync_topology::{Stage, TopicId, Topology};

use crate::generator::TrafficSource;
use shelfsync_pipeline::engine::Checkpoint;
use shelfsync_pipeline::kafka::{self, KafkaProducer, ProduceRecord};
use shelfsync_pipeline::rocks_store::CHECKPOINT_KEY;
use shelfsync_pipeline::stages::StageLogic;

use super::pipeline::Pipeline;
use super::topology::{create_topics, phase_topology};
use super::BenchArgs;

/// Results of the restore phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct RestoreResult {
    /// SKUs in the store.
    pub skus: u32,
    /// Keys written to the changelog (state entries; checkpoints not counted).
    pub keys: u64,
    /// Changelog records the pipeline applied (its `restore finished` logs).
    pub applied: u64,
    /// Seconds the pipeline spent restoring the inventory store (sum over partitions).
    pub restore_seconds: f64,
    /// applied / restore_seconds.
    pub records_per_sec: f64,
    /// Seconds from starting the process to `/readyz` answering 200.
    pub seconds_to_ready: f64,
    /// Peak RSS of the pipeline, bytes.
    pub peak_rss: Option<u64>,
}

/// The inventory store of `skus` SKUs, per partition of the inventory commands: the catalog run
/// through the ERP stages and the inventory stage in process.
fn inventory_state(topology: &Topology, args: &BenchArgs) -> anyhow::Result<Vec<MemStore>> {
    let mut source = TrafficSource::new(topology, &args.generator(args.restore_skus))
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let partitions = topology.partitions(TopicId::InventoryCommands);
    let mut stores: Vec<MemStore> = (0..partitions).map(|_| MemStore::new()).collect();
    let inventory = StageLogic::new(Stage::Inventory, topology);
    let erp_inventory = StageLogic::new(Stage::ErpInventory, topology);
    let erp_products = StageLogic::new(Stage::ErpProducts, topology);
    let now = shelfsync_pipeline::clock::now_ms();
    let mut commands = Vec::new();
    let mut outputs = Vec::new();
    for rec in source.catalog(now).map_err(|e| anyhow::anyhow!("{e}"))? {
        let stage = match rec.topic {
            TopicId::ErpInventory => &erp_inventory,
            TopicId::ErpProducts => &erp_products,
            _ => continue,
        };
        commands.clear();
        if let Err(r) = stage.process(None, now, Some(&rec.value), &mut commands)? {
            bail!(
                "the catalog has a record the ERP stage refuses: {}",
                r.reason
            );
        }
        for cmd in &commands {
            let p = shelfsync_pipeline::kafka::partition_for_key(&cmd.key, partitions);
            let store = &mut stores[usize::try_from(p)?];
            outputs.clear();
            if let Err(r) = inventory.process(
                Some(store as &mut dyn StateStore),
                now,
                Some(&cmd.value),
                &mut outputs,
            )? {
                bail!(
                    "the inventory stage refuses a catalog command: {}",
                    r.reason
                );
            }
        }
    }
    Ok(stores)
}

/// Runs the restore phase: the changelog of `--restore-skus` SKUs, restored by a fresh pipeline.
pub(super) fn run(
    args: &BenchArgs,
    base: &Topology,
    run: &str,
    dir: &Path,
) -> anyhow::Result<RestoreResult> {
    let bootstrap = args.restore_bootstrap.as_deref().unwrap_or(&args.bootstrap);
    let topology = phase_topology(base, bootstrap, &format!("{run}-restore"))?;
    create_topics(&topology)?;
    eprintln!(
        "restore: building the inventory store of {} SKUs ({})",
        args.restore_skus, topology.application_id
    );
    let began = Instant::now();
    let stores = inventory_state(&topology, args)?;
    let keys: u64 = stores.iter().map(|s| s.len() as u64).sum();
    eprintln!(
        "  {keys} keys in {:.1} s; writing the changelog",
        began.elapsed().as_secs_f64()
    );
    let changelog = topology.topic_name(TopicId::Changelog(shelfsync_topology::Store::Inventory));
    let commands = topology.topic_name(TopicId::InventoryCommands);
    let producer = KafkaProducer::new(&topology)?;
    let stamp = b"0".to_vec();
    // A changelog record of partition `p`, stamped with input offset 0.
    let send = |p: usize, key: &[u8], value: &[u8]| -> anyhow::Result<()> {
        producer.send(ProduceRecord {
            topic: &changelog,
            partition: Some(i32::try_from(p)?),
            key: Some(key),
            value: Some(value),
            timestamp: None,
            headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp.clone())],
        })?;
        Ok(())
    };
    let flush = |what: &str| -> anyhow::Result<()> {
        let acks = producer.flush();
        if acks.failed > 0 {
            bail!("the broker refused {} {what} records", acks.failed);
        }
        Ok(())
    };
    let began = Instant::now();
    for (p, store) in stores.iter().enumerate() {
        for (k, v) in store.entries() {
            send(p, k, v)?;
        }
    }
    flush("changelog")?;
    // The checkpoints last, as the engine writes them: after the epoch's store records.
    let checkpoint = shelfsync_operators::state::encode_value(&Checkpoint {
        next_offset: 1,
        ..Checkpoint::default()
    });
    for p in 0..stores.len() {
        send(p, CHECKPOINT_KEY, &checkpoint)?;
    }
    flush("checkpoint")?;
    eprintln!(
        "  changelog written in {:.1} s; committing the group offsets",
        began.elapsed().as_secs_f64()
    );
    drop(stores);
    // The group has processed input offset 0 of every inventory partition: a new host must
    // restore the changelog records stamped below offset 1, i.e. all of them.
    {
        let mut config = kafka::base_config(&topology);
        config.set("group.id", &topology.application_id);
        config.set("enable.auto.commit", "false");
        let consumer: BaseConsumer = config.create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..topology.partitions(TopicId::InventoryCommands) {
            tpl.add_partition_offset(&commands, p, Offset::Offset(1))?;
        }
        consumer
            .commit(&tpl, CommitMode::Sync)
            .context("commit the group offsets")?;
    }
    let mut pipeline = Pipeline::spawn(&topology, dir, "restore")?;
    let to_ready = pipeline.wait_ready(args.timeout)?;
    // Let the process settle, then read its peak memory.
    std::thread::sleep(Duration::from_secs(1));
    let peak_rss = pipeline.peak_rss();
    pipeline.stop();
    let Restored {
        applied,
        secs: restore_seconds,
        ..
    } = restore_logs(&pipeline.log, &changelog)?;
    Ok(RestoreResult {
        skus: args.restore_skus,
        keys,
        applied,
        restore_seconds,
        records_per_sec: if restore_seconds > 0.0 {
            applied as f64 / restore_seconds
        } else {
            f64::NAN
        },
        seconds_to_ready: to_ready.as_secs_f64(),
        peak_rss,
    })
}

/// What a pipeline's log says of its restoration of one changelog.
#[derive(Debug, Default, Clone, Copy)]
pub(super) struct Restored {
    /// Records applied, summed over partitions.
    pub(super) applied: u64,
    /// Seconds spent, summed over partitions.
    pub(super) secs: f64,
    /// Seconds from the first partition's start to the last one's end (partitions restore
    /// side by side).
    pub(super) span: f64,
}

/// Sums `applied` and `secs` of the `restore finished` events of `changelog` in a JSON log,
/// and measures their span from the events' timestamps.
pub(super) fn restore_logs(log: &Path, changelog: &str) -> anyhow::Result<Restored> {
    let file = std::fs::File::open(log)?;
    let mut r = Restored::default();
    let (mut first, mut last) = (f64::INFINITY, f64::NEG_INFINITY);
    for line in std::io::BufReader::new(file).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if v["message"] == "restore finished" && v["changelog"] == changelog {
            let secs = v["secs"].as_f64().unwrap_or(0.0);
            r.applied += v["applied"].as_u64().unwrap_or(0);
            r.secs += secs;
            let at = v["timestamp"]
                .as_str()
                .and_then(|t| humantime::parse_rfc3339(t).ok())
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_secs_f64());
            if let Some(at) = at {
                first = first.min(at - secs);
                last = last.max(at);
            }
        }
    }
    r.span = if last >= first { last - first } else { r.secs };
    Ok(r)
}
