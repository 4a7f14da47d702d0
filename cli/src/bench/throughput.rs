//! The throughput phase: the same backlog drained by the passthrough baseline and by the
//! pipeline, per stage and end to end.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_topology::{Stage, TopicId, Topology};

use shelfsync_pipeline::kafka::{self, KafkaProducer, ProduceRecord};

use super::drain::{drain, preload, source_counts, Rate};
use super::pipeline::Pipeline;
use super::topology::{create_topics, phase_topology};
use super::BenchArgs;

/// Records in per stage of the passthrough, indexed like [`Stage::ALL`].
#[derive(Debug, Default)]
pub(super) struct StageCounters([AtomicU64; 6]);

impl StageCounters {
    pub(super) fn snapshot(&self) -> BTreeMap<String, u64> {
        Stage::ALL
            .iter()
            .zip(&self.0)
            .map(|(s, c)| (s.name().to_string(), c.load(Ordering::Relaxed)))
            .collect()
    }
}

/// Where the passthrough copies a stage's input: the stage's output topic (inventory: line
/// results, so that the copy reaches the assemble hop).
fn passthrough_output(stage: Stage) -> TopicId {
    match stage {
        Stage::Inventory => TopicId::LineResults,
        s => s.outputs()[0],
    }
}

/// The passthrough baseline: consume the input of each of `stages`, produce each record
/// unchanged to the stage's output topic; offsets committed every epoch interval; no decoding,
/// no state.
pub(super) fn passthrough(
    topology: &Topology,
    stages: &[Stage],
    stop: &AtomicBool,
    counts: &StageCounters,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = kafka::consumer_config(topology).create()?;
    let producer = KafkaProducer::new(topology)?;
    let mut route: HashMap<String, (usize, String)> = HashMap::new();
    for (i, s) in Stage::ALL.iter().enumerate() {
        if !stages.contains(s) {
            continue;
        }
        route.insert(
            topology.topic_name(s.input()),
            (i, topology.topic_name(passthrough_output(*s))),
        );
    }
    let topics: Vec<&str> = route.keys().map(String::as_str).collect();
    consumer.subscribe(&topics)?;
    let epoch = topology.processing.epoch_interval;
    let mut offsets: HashMap<(String, i32), i64> = HashMap::new();
    let mut last_commit = Instant::now();
    let mut n = 0u32;
    while !stop.load(Ordering::Relaxed) {
        if let Some(result) = consumer.poll(Duration::from_millis(50)) {
            match result {
                Ok(msg) => {
                    if let Some((i, out)) = route.get(msg.topic()) {
                        producer.send(ProduceRecord {
                            topic: out,
                            partition: None,
                            key: msg.key(),
                            value: msg.payload(),
                            timestamp: msg.timestamp().to_millis(),
                            headers: Vec::new(),
                        })?;
                        counts.0[*i].fetch_add(1, Ordering::Relaxed);
                        offsets
                            .insert((msg.topic().to_string(), msg.partition()), msg.offset() + 1);
                        n += 1;
                        if n >= 1000 {
                            n = 0;
                            producer.poll();
                        }
                    }
                }
                Err(e) => kafka::log_client_error(&e, "passthrough poll"),
            }
        }
        if last_commit.elapsed() >= epoch && !offsets.is_empty() {
            last_commit = Instant::now();
            producer.poll();
            let mut tpl = TopicPartitionList::new();
            for ((t, p), o) in offsets.drain() {
                tpl.add_partition_offset(&t, p, Offset::Offset(o))?;
            }
            if let Err(e) = consumer.commit(&tpl, CommitMode::Async) {
                tracing::warn!(error = %e, "passthrough commit failed");
            }
        }
    }
    let acks = producer.flush();
    if acks.failed > 0 {
        bail!("the broker refused {} passthrough records", acks.failed);
    }
    Ok(())
}

/// Results of the throughput phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct ThroughputResult {
    /// Input records preloaded: raw orders, ERP inventory records, ERP product records.
    pub inputs: (u64, u64, u64),
    /// Per stage: pipeline and passthrough.
    pub stages: BTreeMap<String, (Rate, Rate)>,
    /// End to end: pipeline and passthrough.
    pub end_to_end: (Rate, Rate),
    /// Peak RSS of the pipeline, bytes.
    pub peak_rss: Option<u64>,
}

const SOURCES: [&str; 3] = ["normalize", "erp-inventory", "erp-products"];
pub(super) const ALL_STAGES: [&str; 6] = [
    "normalize",
    "dedupe",
    "erp-inventory",
    "erp-products",
    "inventory",
    "assemble",
];

/// Runs the throughput phase: the passthrough baseline, then the pipeline, on the same backlog.
pub(super) fn run(
    args: &BenchArgs,
    base: &Topology,
    run: &str,
    dir: &Path,
) -> anyhow::Result<ThroughputResult> {
    let mut result = ThroughputResult::default();
    // Passthrough first.
    let pt = phase_topology(base, &args.bootstrap, &format!("{run}-passthrough"))?;
    create_topics(&pt)?;
    eprintln!("throughput: passthrough baseline ({})", pt.application_id);
    let counts = preload(&pt, args)?;
    let (raw, inv, prod) = source_counts(&counts);
    result.inputs = (raw, inv, prod);
    let all = raw + inv + prod;
    let expected: BTreeMap<&'static str, u64> = [
        ("normalize", raw),
        ("dedupe", raw),
        ("erp-inventory", inv),
        ("erp-products", prod),
        ("inventory", all),
        ("assemble", all),
    ]
    .into_iter()
    .collect();
    let stop = AtomicBool::new(false);
    let counters = StageCounters::default();
    let pt_samples = std::thread::scope(|s| {
        let worker = s.spawn(|| passthrough(&pt, &Stage::ALL, &stop, &counters));
        let samples = drain(&expected, args.timeout, || {
            if worker.is_finished() {
                bail!("the passthrough stopped early");
            }
            Ok(counters.snapshot())
        });
        stop.store(true, Ordering::Relaxed);
        match worker.join() {
            Ok(r) => r?,
            Err(_) => bail!("the passthrough thread panicked"),
        }
        samples
    })?;

    let app = phase_topology(base, &args.bootstrap, &format!("{run}-throughput"))?;
    create_topics(&app)?;
    eprintln!("throughput: pipeline ({})", app.application_id);
    let counts = preload(&app, args)?;
    let (raw2, inv2, prod2) = source_counts(&counts);
    if (raw2, inv2, prod2) != (raw, inv, prod) {
        bail!(
            "the two preloads differ: {:?} vs {:?}",
            (raw, inv, prod),
            (raw2, inv2, prod2)
        );
    }
    let expected: BTreeMap<&'static str, u64> = [
        ("normalize", raw),
        ("erp-inventory", inv),
        ("erp-products", prod),
    ]
    .into_iter()
    .collect();
    let mut pipeline = Pipeline::spawn(&app, dir, "throughput")?;
    // Sampling starts with the process (an endpoint not up yet counts as nothing done).
    let app_samples = drain(&expected, args.timeout, || {
        pipeline.check_alive()?;
        Ok(pipeline.records_in().unwrap_or_default())
    })?;
    result.peak_rss = pipeline.peak_rss();
    pipeline.stop();

    for stage in ALL_STAGES {
        result.stages.insert(
            stage.to_string(),
            (
                app_samples.rate(&[stage], &[stage]),
                pt_samples.rate(&[stage], &[stage]),
            ),
        );
    }
    result.end_to_end = (
        app_samples.rate(&SOURCES, &ALL_STAGES),
        pt_samples.rate(&SOURCES, &ALL_STAGES),
    );
    Ok(result)
}
