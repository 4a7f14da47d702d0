//! `shelfsync demo`: the whole pipeline on one machine against a real broker, with live numbers.
//!
//! 1. Builds a topology from `topology/retail.example.toml` (compiled in) with the given
//!    bootstrap servers, a fresh `application_id` (`shelfsync-demo-<unix time>`, so every run
//!    starts with a new consumer group, new internal topics and empty state) and `--partitions`
//!    partitions per topic (the DLQ keeps 1).
//! 2. Creates the topics ([`shelfsync_pipeline::admin::create_topics`]). When the broker already holds records
//!    on the input topics (an earlier demo on the same broker), the new group's offsets are set
//!    to their end, so only this run's records are processed and counted.
//! 3. Starts the pipeline in this process ([`shelfsync_pipeline::engine::run`] on its own thread, state in a
//!    temporary directory that is deleted at the end).
//! 4. Runs the [generator](crate::generator): writes the catalog, waits until the pipeline has
//!    taken it in, then produces orders and ERP updates for `--duration`, with a flash sale in
//!    the middle.
//! 5. Shows live numbers every second (a redrawn table on a terminal, a plain line every five
//!    seconds otherwise). They come from what the pipeline did, not from what the generator
//!    meant to do:
//!    - input and processed records/s: the input topics' high watermarks and the group's
//!      committed offsets on them;
//!    - consumer lag: high watermark minus committed offset over the input partitions of every
//!      stage (internal topics included), read with a consumer that has the group's id but never
//!      joins it;
//!    - orders by status, validated orders, availability updates per channel, DLQ records: a
//!      consumer reading the output topics and decoding their Avro records;
//!    - duplicates dropped: the engine's own counter (`shelfsync_dedup_dropped_total`), read
//!      from a small in-process metrics recorder (dropping a duplicate writes nothing anywhere).
//! 6. Backpressure: while the lag is above 600 records the generator is held back (its
//!    schedule pauses, so it still sends the same sequence, only later) until the lag is below
//!    200. A laptop's speed varies (the broker, the pipeline and the generator share 2 cores here,
//!    and the pipeline writes about 8 records per input record), so this keeps the final drain
//!    short; the summary says how long traffic was held back.
//! 7. When the duration is over: stops the generator, waits (up to `--drain-timeout`) until
//!    the lag is 0 and the output topics are read to their end, stops the pipeline and prints a
//!    summary. Ctrl-C stops early (and still prints the summary); a second Ctrl-C exits at once.
//!
//! Clients wait up to 500 ms for data in a fetch (`fetch.wait.max.ms`, librdkafka's default,
//! instead of the engine's 50 ms) unless `SHELFSYNC_KAFKA_FETCH_WAIT_MAX_MS` says otherwise:
//! empty polls of a dozen partitions cost the demo's broker half a core.

use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_schemas::avro;
use shelfsync_schemas::{ChannelAvailability, DeadLetter, OrderStatus, OrderStatusCode};
use shelfsync_topology::{Stage, TopicId, TopicRole, Topology};

use crate::generator::{
    parse_duration, Generator, GeneratorConfig, GeneratorPhase, GeneratorReport, GeneratorStats,
};
use shelfsync_pipeline::engine::{self, EngineStatus, RunOptions};
use shelfsync_pipeline::metrics as m;

/// Flags of `shelfsync demo`.
#[derive(Debug, Clone, clap::Args)]
pub struct DemoArgs {
    /// The broker's bootstrap servers (host:port).
    #[arg(long, env = "SHELFSYNC_BOOTSTRAP_SERVERS")]
    pub bootstrap: String,
    /// Partitions of every topic (the DLQ has 1). The pipeline runs one task per partition of
    /// each stage's input.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=64))]
    pub partitions: i32,
    /// How long to wait, after traffic stops, for the pipeline to catch up before giving up.
    #[arg(long, default_value = "120s", value_parser = parse_duration)]
    pub drain_timeout: Duration,
    /// Print a plain progress line every five seconds even on a terminal.
    #[arg(long)]
    pub plain: bool,
    /// What traffic to generate.
    #[command(flatten)]
    pub generator: GeneratorConfig,
}

/// How long the catalog may take to be processed (includes the pipeline joining its group).
const CATALOG_TIMEOUT: Duration = Duration::from_secs(180);
/// Consumer lag (records on the stages' inputs) above which the generator is held back, and
/// below which it resumes. A laptop's speed varies a lot (broker, pipeline and generator share
/// its cores, and the pipeline writes ~8 records per input record); holding traffic back keeps
/// the lag, and so the final drain, short.
const HOLD_ABOVE_LAG: i64 = 600;
const RESUME_BELOW_LAG: i64 = 200;
/// How long the pipeline may take to stop once asked.
const ENGINE_STOP_TIMEOUT: Duration = Duration::from_secs(30);

/// The demo's topology: the example file with the broker, a fresh application id and small
/// partition counts. librdkafka properties from `SHELFSYNC_KAFKA_*` variables in `vars` apply
/// (e.g. `SHELFSYNC_KAFKA_SECURITY_PROTOCOL`); other variables do not.
///
/// # Errors
/// When the result does not validate (e.g. an empty bootstrap address).
pub fn demo_topology(
    bootstrap: &str,
    application_id: &str,
    partitions: i32,
    vars: impl Iterator<Item = (String, String)>,
) -> anyhow::Result<Topology> {
    let mut topology = Topology::parse_toml_str(crate::EXAMPLE_TOPOLOGY)
        .map_err(|e| anyhow::anyhow!("the example topology: {e}"))?;
    topology.apply_env(vars.filter(|(k, _)| k.starts_with(shelfsync_topology::ENV_KAFKA_PREFIX)));
    topology.application_id = application_id.to_string();
    topology.kafka.bootstrap_servers = bootstrap.to_string();
    topology.topics.partitions = i64::from(partitions);
    topology
        .topics
        .partition_overrides
        .retain(|k, _| k == "dlq");
    // Fetches wait up to 500 ms for data (librdkafka's default) instead of the engine's 50 ms:
    // a broker on the same small machine spends half a core answering empty polls otherwise.
    topology
        .kafka
        .properties
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| "500".into());
    if let Err(errors) = topology.validate() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("the demo topology is invalid: {}", list.join("; "));
    }
    Ok(topology)
}

/// Runs the demo and prints its live view and summary on stdout.
///
/// `interrupted` is set by the caller's signal handler (Ctrl-C): the demo then stops early,
/// still shuts the pipeline down cleanly and prints the summary, and the exit code is 130.
///
/// # Errors
/// When the broker is unreachable, a topic cannot be created, the pipeline stops with an error,
/// or the pipeline does not catch up within `--drain-timeout`.
pub fn run(args: DemoArgs, interrupted: Arc<AtomicBool>) -> anyhow::Result<ExitCode> {
    args.generator
        .validate()
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let unix = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let application_id = format!("shelfsync-demo-{unix}");
    let topology = Arc::new(demo_topology(
        &args.bootstrap,
        &application_id,
        args.partitions,
        std::env::vars(),
    )?);
    let counters = install_recorder();
    let mut out = Screen::new(!args.plain && std::io::stdout().is_terminal());
    out.line(&format!(
        "shelfsync demo: application {application_id}, broker {}, {} SKUs, {} orders/s for {}, seed {}",
        args.bootstrap,
        args.generator.traffic.skus,
        args.generator.traffic.orders_per_sec,
        humantime::format_duration(args.generator.traffic.duration),
        args.generator.traffic.seed
    ));

    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let actions = rt
        .block_on(shelfsync_pipeline::admin::create_topics(&topology))
        .context("creating the topics")?;
    out.line(&format!("created {} topics", actions.len()));

    let observer = Observer::new(&topology)?;
    observer.start_at_end()?;

    let state_dir = tempfile::Builder::new()
        .prefix("shelfsync-demo-state-")
        .tempdir()
        .context("creating the state directory")?;
    let shutdown = Arc::new(AtomicBool::new(false));
    let status = Arc::new(EngineStatus::default());
    let engine_thread = {
        let topology = Arc::clone(&topology);
        let options = RunOptions {
            state_dir: state_dir.path().to_path_buf(),
            shutdown: Arc::clone(&shutdown),
            group_instance_id: None,
        };
        let status = Arc::clone(&status);
        std::thread::Builder::new()
            .name("shelfsync-engine".into())
            .spawn(move || engine::run(topology, options, status))
            .context("starting the pipeline thread")?
    };

    let mut generator =
        Generator::new(&topology, args.generator.clone()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let flash_skus = generator.flash_skus();
    let stats = Arc::new(GeneratorStats::default());
    let gen_stop = Arc::new(AtomicBool::new(false));
    let go = Arc::new(AtomicBool::new(false));
    let generator_thread: JoinHandle<anyhow::Result<GeneratorReport>> = {
        let (stats, gen_stop, go) = (Arc::clone(&stats), Arc::clone(&gen_stop), Arc::clone(&go));
        std::thread::Builder::new()
            .name("shelfsync-generator".into())
            .spawn(move || {
                generator
                    .load_catalog(&gen_stop, &stats)
                    .map_err(|e| anyhow::anyhow!("{e}"))?;
                while !go.load(Ordering::Relaxed) && !gen_stop.load(Ordering::Relaxed) {
                    std::thread::sleep(Duration::from_millis(20));
                }
                generator
                    .run_traffic(&gen_stop, &stats)
                    .map_err(|e| anyhow::anyhow!("{e}"))
            })
            .context("starting the generator thread")?
    };

    let mut demo = Demo {
        args: &args,
        topology: &topology,
        observer,
        counters,
        stats: &stats,
        flash_skus,
        out,
        started: Instant::now(),
        catalog_loaded: None,
        traffic_started: None,
        traffic_ended: None,
        drained: None,
        interrupted: false,
        samples: Vec::new(),
    };
    let result = demo.drive(&interrupted, &go, &generator_thread, &engine_thread);

    // Whatever happened: stop the generator, then the pipeline.
    gen_stop.store(true, Ordering::Relaxed);
    let report = match generator_thread.join() {
        Ok(Ok(report)) => Some(report),
        Ok(Err(e)) => {
            eprintln!("generator: {e:#}");
            None
        }
        Err(_) => {
            eprintln!("generator: the thread panicked");
            None
        }
    };
    shutdown.store(true, Ordering::SeqCst);
    let engine_result = wait_for_engine(engine_thread);
    // Read what the last epoch wrote, then report.
    demo.observer.poll_for(Duration::from_millis(300));
    demo.print_summary(report.as_ref());
    drop(state_dir);
    match (result, engine_result) {
        (Err(e), Err(engine_error)) => {
            eprintln!("error: {engine_error:#}");
            return Err(e);
        }
        (Err(e), Ok(())) | (Ok(()), Err(e)) => return Err(e),
        (Ok(()), Ok(())) => {}
    }
    if interrupted.load(Ordering::Relaxed) {
        return Ok(ExitCode::from(130));
    }
    Ok(ExitCode::SUCCESS)
}

fn wait_for_engine(handle: JoinHandle<shelfsync_pipeline::Result<()>>) -> anyhow::Result<()> {
    let began = Instant::now();
    while !handle.is_finished() {
        if began.elapsed() > ENGINE_STOP_TIMEOUT {
            bail!(
                "the pipeline did not stop within {}s (is the broker still up?)",
                ENGINE_STOP_TIMEOUT.as_secs()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    match handle.join() {
        Ok(result) => result.context("the pipeline stopped with an error"),
        Err(_) => bail!("the pipeline thread panicked"),
    }
}

// ---------------------------------------------------------------------------------------------
// Engine counters: a tiny metrics recorder that keeps counters only.

#[derive(Debug, Default)]
struct Counters {
    by_key: Mutex<HashMap<metrics::Key, Arc<AtomicU64>>>,
}

impl Counters {
    /// The sum of a counter over all its label sets.
    fn total(&self, name: &str) -> u64 {
        self.by_key.lock().map_or(0, |map| {
            map.iter()
                .filter(|(k, _)| k.name() == name)
                .map(|(_, v)| v.load(Ordering::Relaxed))
                .sum()
        })
    }
}

struct CounterRecorder(Arc<Counters>);

impl metrics::Recorder for CounterRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, key: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        match self.0.by_key.lock() {
            Ok(mut map) => {
                metrics::Counter::from_arc(Arc::clone(map.entry(key.clone()).or_default()))
            }
            Err(_) => metrics::Counter::noop(),
        }
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        _: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        metrics::Histogram::noop()
    }
}

/// Installs the counter recorder; `None` when another recorder is already installed.
fn install_recorder() -> Option<Arc<Counters>> {
    let counters = Arc::new(Counters::default());
    metrics::set_global_recorder(CounterRecorder(Arc::clone(&counters)))
        .ok()
        .map(|()| counters)
}

// ---------------------------------------------------------------------------------------------
// What the pipeline did, read from the broker.

/// Offsets of the pipeline's inputs at one moment.
#[derive(Debug, Clone, Copy, Default)]
struct Sample {
    at: Option<Instant>,
    /// Records on the external input topics since the demo started.
    produced: i64,
    /// Of those, committed by the pipeline's group.
    processed: i64,
    /// Σ (high watermark − committed) over every stage's input partitions.
    lag: i64,
}

/// An availability record's effect on one (SKU, channel).
#[derive(Debug, Clone, Copy, Default)]
struct Shown {
    quantity: i64,
    peak: i64,
}

/// A flash-sale SKU as the availability topic shows it.
#[derive(Debug, Clone, Default)]
struct FlashView {
    /// Per channel: when it first went from > 0 to 0 (event time, ms).
    zero_at: BTreeMap<String, i64>,
    /// When every channel first showed 0 at once (event time, ms).
    sold_out_at: Option<i64>,
}

/// Tallies of the output topics.
#[derive(Debug, Default)]
struct Tally {
    status_events: u64,
    /// Latest (revision, status) per order key.
    latest: HashMap<String, (i32, OrderStatusCode)>,
    validated: u64,
    availability: BTreeMap<String, u64>,
    /// Per SKU, per channel.
    shown: HashMap<String, BTreeMap<String, Shown>>,
    flash: BTreeMap<String, FlashView>,
    dlq: BTreeMap<String, u64>,
    undecodable: u64,
}

impl Tally {
    fn orders(&self, code: OrderStatusCode) -> u64 {
        self.latest.values().filter(|(_, s)| *s == code).count() as u64
    }

    fn dlq_total(&self) -> u64 {
        self.dlq.values().sum()
    }

    fn at_zero(&self, channel: &str) -> u64 {
        self.shown
            .values()
            .filter(|c| c.get(channel).is_some_and(|s| s.quantity == 0))
            .count() as u64
    }

    fn availability(&mut self, a: ChannelAvailability, channels: &[String]) {
        *self.availability.entry(a.channel.clone()).or_default() += 1;
        let per_channel = self.shown.entry(a.sku.clone()).or_default();
        let shown = per_channel.entry(a.channel.clone()).or_default();
        shown.quantity = a.quantity;
        shown.peak = shown.peak.max(a.quantity);
        let Some(flash) = self.flash.get_mut(&a.sku) else {
            return;
        };
        if a.quantity == 0 && shown.peak > 0 {
            flash
                .zero_at
                .entry(a.channel.clone())
                .or_insert(a.event_time);
        }
        let all_zero = channels
            .iter()
            .all(|c| per_channel.get(c).is_some_and(|s| s.quantity == 0));
        let was_up = per_channel.values().any(|s| s.peak > 0);
        if flash.sold_out_at.is_none() && all_zero && was_up {
            flash.sold_out_at = Some(a.event_time);
        }
    }

    /// SKUs outside the flash sale that went from > 0 to 0 on every channel.
    fn other_sold_out(&self, channels: &[String]) -> usize {
        self.shown
            .iter()
            .filter(|(sku, _)| !self.flash.contains_key(*sku))
            .filter(|(_, c)| {
                c.values().any(|s| s.peak > 0)
                    && channels
                        .iter()
                        .all(|ch| c.get(ch).is_some_and(|s| s.quantity == 0))
            })
            .count()
    }
}

/// Reads the group's offsets and the output topics.
struct Observer {
    /// Has the pipeline's group id; never subscribes (reads committed offsets and watermarks).
    group: BaseConsumer,
    /// Assigned to every output partition.
    view: BaseConsumer,
    /// Every stage's input partitions, and whether the topic is external.
    inputs: Vec<(String, i32, bool)>,
    /// High watermarks of the external inputs when the demo started.
    input_start: HashMap<(String, i32), i64>,
    /// Next offset to read per output partition.
    next: HashMap<(String, i32), i64>,
    topics: HashMap<String, TopicId>,
    /// High watermarks of every topic the pipeline writes, when the demo started, and the
    /// topic's role.
    written_start: HashMap<(String, i32), (TopicRole, i64)>,
    channels: Vec<String>,
    tally: Tally,
}

const OUTPUTS: [TopicId; 4] = [
    TopicId::Availability,
    TopicId::OrderStatus,
    TopicId::ValidatedOrders,
    TopicId::Dlq,
];
const TIMEOUT: Duration = Duration::from_secs(10);

impl Observer {
    fn new(topology: &Topology) -> anyhow::Result<Self> {
        let mut group_config = shelfsync_pipeline::kafka::base_config(topology);
        group_config
            .set("group.id", &topology.application_id)
            .set("enable.auto.commit", "false");
        let group: BaseConsumer = group_config.create()?;
        let mut view_config = shelfsync_pipeline::kafka::base_config(topology);
        view_config
            .set("group.id", format!("{}-demo-view", topology.application_id))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "500");
        let view: BaseConsumer = view_config.create()?;

        let external = [
            TopicId::RawOrders,
            TopicId::ErpInventory,
            TopicId::ErpProducts,
        ];
        let mut inputs = Vec::new();
        let mut input_start = HashMap::new();
        for stage in Stage::ALL {
            let id = stage.input();
            let name = topology.topic_name(id);
            for p in 0..topology.partitions(id) {
                let is_external = external.contains(&id);
                if is_external {
                    let (_, high) = group.fetch_watermarks(&name, p, TIMEOUT)?;
                    input_start.insert((name.clone(), p), high);
                }
                inputs.push((name.clone(), p, is_external));
            }
        }
        let mut tpl = TopicPartitionList::new();
        let mut next = HashMap::new();
        let mut topics = HashMap::new();
        for id in OUTPUTS {
            let name = topology.topic_name(id);
            for p in 0..topology.partitions(id) {
                let (_, high) = view.fetch_watermarks(&name, p, TIMEOUT)?;
                tpl.add_partition_offset(&name, p, Offset::Offset(high))?;
                next.insert((name.clone(), p), high);
            }
            topics.insert(name, id);
        }
        view.assign(&tpl)?;
        let channels = topology.channels.iter().map(|c| c.name.clone()).collect();
        let mut observer = Self {
            group,
            view,
            inputs,
            input_start,
            next,
            topics,
            written_start: HashMap::new(),
            channels,
            tally: Tally::default(),
        };
        let written: Vec<(String, i32, TopicRole)> = topology
            .topics()
            .into_iter()
            .filter(|spec| spec.role() != TopicRole::Source)
            .flat_map(|spec| (0..spec.partitions).map(move |p| (spec.name.clone(), p, spec.role())))
            .collect();
        let highs = observer.high_watermarks(written.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
        observer.written_start = written
            .into_iter()
            .map(|(t, p, role)| {
                let high = highs.get(&(t.clone(), p)).copied().unwrap_or(0);
                ((t, p), (role, high))
            })
            .collect();
        Ok(observer)
    }

    /// Records the pipeline wrote since the start: (internal topics, changelogs, outputs).
    fn written(&self) -> anyhow::Result<(i64, i64, i64)> {
        let highs =
            self.high_watermarks(self.written_start.keys().map(|(t, p)| (t.as_str(), *p)))?;
        let mut out = (0, 0, 0);
        for (key, (role, start)) in &self.written_start {
            let n = (highs.get(key).copied().unwrap_or(0) - start).max(0);
            match role {
                TopicRole::Internal => out.0 += n,
                TopicRole::Changelog => out.1 += n,
                _ => out.2 += n,
            }
        }
        Ok(out)
    }

    /// When the input topics already hold records (an earlier run on this broker), commits the
    /// new group's offsets at their end, so that the pipeline starts after them.
    fn start_at_end(&self) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), high) in &self.input_start {
            if *high > 0 {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*high))?;
            }
        }
        if tpl.count() > 0 {
            self.group
                .commit(&tpl, CommitMode::Sync)
                .context("starting the new consumer group at the end of the input topics")?;
        }
        Ok(())
    }

    fn sample(&self) -> anyhow::Result<Sample> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, _) in &self.inputs {
            tpl.add_partition(topic, *p);
        }
        let committed = self.group.committed_offsets(tpl, TIMEOUT)?;
        let mut sample = Sample {
            at: Some(Instant::now()),
            ..Sample::default()
        };
        let highs = self.high_watermarks(self.inputs.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
        for (topic, p, external) in &self.inputs {
            let high = highs.get(&(topic.clone(), *p)).copied().unwrap_or(0);
            let start = self.input_start.get(&(topic.clone(), *p)).copied();
            // No commit yet: nothing processed since the start (internal topics start empty).
            let done = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => start.unwrap_or(0),
            };
            sample.lag += (high - done).max(0);
            if *external {
                let start = start.unwrap_or(0);
                sample.produced += (high - start).max(0);
                sample.processed += (done - start).max(0);
            }
        }
        Ok(sample)
    }

    /// Reads the output topics for `dur`.
    fn poll_for(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(result) = self.view.poll(left) else {
                break;
            };
            let Ok(msg) = result else {
                continue;
            };
            let topic = msg.topic().to_string();
            self.next
                .insert((topic.clone(), msg.partition()), msg.offset() + 1);
            let payload = msg.payload().unwrap_or_default();
            let t = &mut self.tally;
            match self.topics.get(&topic) {
                Some(TopicId::Availability) => match avro::decode::<ChannelAvailability>(payload) {
                    Ok(a) => t.availability(a, &self.channels),
                    Err(_) => t.undecodable += 1,
                },
                Some(TopicId::OrderStatus) => match avro::decode::<OrderStatus>(payload) {
                    Ok(s) => {
                        t.status_events += 1;
                        let e = t
                            .latest
                            .entry(s.order_key)
                            .or_insert((s.revision, s.status));
                        if s.revision >= e.0 {
                            *e = (s.revision, s.status);
                        }
                    }
                    Err(_) => t.undecodable += 1,
                },
                Some(TopicId::ValidatedOrders) => t.validated += 1,
                Some(TopicId::Dlq) => {
                    let kind = avro::decode::<DeadLetter>(payload)
                        .map_or_else(|_| "undecodable".to_string(), |d| d.error_kind);
                    *t.dlq.entry(kind).or_default() += 1;
                }
                _ => {}
            }
        }
    }

    /// Whether every output partition has been read to its current end.
    fn caught_up(&self) -> anyhow::Result<bool> {
        let highs = self.high_watermarks(self.next.keys().map(|(t, p)| (t.as_str(), *p)))?;
        Ok(self
            .next
            .iter()
            .all(|(k, next)| highs.get(k).is_none_or(|high| next >= high)))
    }

    /// High watermarks of `partitions` in one ListOffsets round trip (the broker answers
    /// "latest" for timestamp -1), instead of one request per partition: the demo's broker is
    /// busy enough.
    fn high_watermarks<'t>(
        &self,
        partitions: impl Iterator<Item = (&'t str, i32)>,
    ) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            tpl.add_partition_offset(topic, p, Offset::End)?;
        }
        let answer = self.group.offsets_for_times(tpl, TIMEOUT)?;
        let mut out = HashMap::new();
        for e in answer.elements() {
            let high = match e.offset() {
                Offset::Offset(o) if e.error().is_ok() => o,
                // Not answered: ask for this partition alone.
                _ => {
                    self.group
                        .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?
                        .1
                }
            };
            out.insert((e.topic().to_string(), e.partition()), high);
        }
        Ok(out)
    }
}

// ---------------------------------------------------------------------------------------------
// The live view.

/// Writes the live view: redraws a block on a terminal, appends lines otherwise.
struct Screen {
    tty: bool,
    drawn: usize,
    last_plain: Option<Instant>,
}

impl Screen {
    fn new(tty: bool) -> Self {
        Self {
            tty,
            drawn: 0,
            last_plain: None,
        }
    }

    /// A line that stays (above the live block).
    fn line(&mut self, text: &str) {
        let mut stdout = std::io::stdout().lock();
        self.clear(&mut stdout);
        let _ = writeln!(stdout, "{text}");
        let _ = stdout.flush();
    }

    fn clear(&mut self, stdout: &mut impl Write) {
        if self.tty && self.drawn > 0 {
            let _ = write!(stdout, "\x1b[{}A\x1b[J", self.drawn);
            self.drawn = 0;
        }
    }

    /// Redraws the block (terminal) or prints `plain` every five seconds (otherwise).
    fn update(&mut self, block: &[String], plain: &str, force: bool) {
        let mut stdout = std::io::stdout().lock();
        if self.tty {
            self.clear(&mut stdout);
            for l in block {
                let _ = writeln!(stdout, "\x1b[2K{l}");
            }
            self.drawn = block.len();
        } else if force
            || self
                .last_plain
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(5))
        {
            let _ = writeln!(stdout, "{plain}");
            self.last_plain = Some(Instant::now());
        }
        let _ = stdout.flush();
    }

    /// Leaves the block on screen; what follows is printed below it.
    fn finish(&mut self) {
        self.drawn = 0;
    }
}

fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn per_sec(count: i64, dur: Duration) -> u64 {
    let secs = dur.as_secs_f64();
    if secs <= 0.0 {
        0
    } else {
        (count.max(0) as f64 / secs).round() as u64
    }
}

struct Demo<'a> {
    args: &'a DemoArgs,
    topology: &'a Topology,
    observer: Observer,
    counters: Option<Arc<Counters>>,
    stats: &'a GeneratorStats,
    flash_skus: Vec<String>,
    out: Screen,
    started: Instant,
    catalog_loaded: Option<Instant>,
    traffic_started: Option<Instant>,
    traffic_ended: Option<Instant>,
    drained: Option<Instant>,
    interrupted: bool,
    samples: Vec<Sample>,
}

impl Demo<'_> {
    /// The main loop: one round per second until the pipeline has drained (or something fails).
    fn drive<T, E>(
        &mut self,
        interrupted: &AtomicBool,
        go: &AtomicBool,
        generator: &JoinHandle<T>,
        engine: &JoinHandle<E>,
    ) -> anyhow::Result<()> {
        for sku in &self.flash_skus {
            self.observer
                .tally
                .flash
                .insert(sku.clone(), FlashView::default());
        }
        loop {
            self.observer.poll_for(Duration::from_secs(1));
            // The phase first: once it says the catalog is acknowledged, the sample's watermarks
            // include the whole catalog, so lag 0 means the pipeline has taken it in.
            let phase = self.stats.phase();
            let sample = self.observer.sample()?;
            self.samples.push(sample);
            let now = Instant::now();
            if interrupted.load(Ordering::Relaxed) {
                self.render(phase, true);
                self.interrupted = true;
                self.out
                    .line("interrupted: stopping the generator and the pipeline");
                return Ok(());
            }
            if engine.is_finished() {
                self.render(phase, true);
                bail!("the pipeline stopped unexpectedly");
            }
            match phase {
                GeneratorPhase::CatalogDone if self.catalog_loaded.is_none() => {
                    let timed_out = now.duration_since(self.started) > CATALOG_TIMEOUT;
                    if sample.lag == 0 || timed_out {
                        if timed_out {
                            self.out.line(&format!(
                                "warning: the pipeline has not taken in the catalog after {}s (lag {}); starting traffic anyway",
                                CATALOG_TIMEOUT.as_secs(),
                                sample.lag
                            ));
                        }
                        self.catalog_loaded = Some(now);
                        self.traffic_started = Some(now);
                        go.store(true, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            if self.traffic_started.is_some() && self.traffic_ended.is_none() {
                if sample.lag > HOLD_ABOVE_LAG {
                    self.stats.hold.store(true, Ordering::Relaxed);
                } else if sample.lag < RESUME_BELOW_LAG {
                    self.stats.hold.store(false, Ordering::Relaxed);
                }
            }
            if generator.is_finished() && self.traffic_ended.is_none() {
                self.traffic_ended = Some(now);
            }
            if let Some(ended) = self.traffic_ended {
                if sample.lag == 0 && self.observer.caught_up()? {
                    self.drained = Some(now);
                    self.render(phase, true);
                    self.out.finish();
                    return Ok(());
                }
                if now.duration_since(ended) > self.args.drain_timeout {
                    self.render(phase, true);
                    self.out.finish();
                    bail!(
                        "the pipeline did not catch up within {} of the end of traffic (lag {} records); try a lower --rate or a longer --drain-timeout",
                        humantime::format_duration(self.args.drain_timeout),
                        sample.lag
                    );
                }
            }
            self.render(phase, false);
        }
    }

    fn phase_label(&self, phase: GeneratorPhase) -> String {
        let elapsed = |t: Option<Instant>| t.map_or(0, |t| t.elapsed().as_secs());
        match (self.traffic_ended, self.traffic_started) {
            (Some(ended), _) => format!("draining ({}s)", ended.elapsed().as_secs()),
            (None, Some(started)) => {
                let held = Duration::from_millis(self.stats.held_ms.load(Ordering::Relaxed));
                format!(
                    "{} ({}s / {}s){}",
                    phase.label(),
                    started.elapsed().saturating_sub(held).as_secs(),
                    self.args.generator.traffic.duration.as_secs(),
                    if self.stats.hold.load(Ordering::Relaxed) {
                        "  [generator held back: the pipeline is behind]"
                    } else {
                        ""
                    }
                )
            }
            (None, None) => format!("{} ({}s)", phase.label(), elapsed(Some(self.started))),
        }
    }

    fn render(&mut self, phase: GeneratorPhase, force: bool) {
        let n = self.samples.len();
        let last = self.samples.last().copied().unwrap_or_default();
        let prev = if n >= 2 { self.samples[n - 2] } else { last };
        let dt = match (last.at, prev.at) {
            (Some(a), Some(b)) => a.duration_since(b),
            _ => Duration::ZERO,
        };
        let in_rate = per_sec(last.produced - prev.produced, dt);
        let done_rate = per_sec(last.processed - prev.processed, dt);
        let t = &self.observer.tally;
        let dups = self.counters.as_ref().map_or_else(
            || "n/a".into(),
            |c| thousands(c.total(m::DUPLICATES_DROPPED)),
        );
        let channels = &self.observer.channels;
        let avail = channels
            .iter()
            .map(|c| {
                format!(
                    "{c} {}",
                    thousands(t.availability.get(c).copied().unwrap_or(0))
                )
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let zeros = channels
            .iter()
            .map(|c| format!("{c} {}", thousands(t.at_zero(c))))
            .collect::<Vec<_>>()
            .join(" · ");
        let orders = format!(
            "accepted {} · backordered {} · partially accepted {} · rejected {} · cancelled {}",
            thousands(t.orders(OrderStatusCode::ACCEPTED)),
            thousands(t.orders(OrderStatusCode::BACKORDERED)),
            thousands(t.orders(OrderStatusCode::PARTIALLY_ACCEPTED)),
            thousands(t.orders(OrderStatusCode::REJECTED)),
            thousands(t.orders(OrderStatusCode::CANCELLED)),
        );
        let flash = self
            .flash_skus
            .iter()
            .map(|sku| {
                let shown = t.shown.get(sku);
                let q = |c: &String| {
                    shown
                        .and_then(|s| s.get(c))
                        .map_or_else(|| "-".to_string(), |s| s.quantity.to_string())
                };
                format!(
                    "{sku} [{}]",
                    channels.iter().map(q).collect::<Vec<_>>().join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("  ");
        let g = self.stats.snapshot();
        let phase_label = self.phase_label(phase);
        let block = vec![
            String::new(),
            format!("  phase         {phase_label}"),
            format!(
                "  input         {:>6} records/s   total {}   (watermarks of the 3 input topics)",
                thousands(in_rate),
                thousands(last.produced.max(0) as u64)
            ),
            format!(
                "  processed     {:>6} records/s   total {}   consumer lag {} records (all 6 stage inputs)",
                thousands(done_rate),
                thousands(last.processed.max(0) as u64),
                thousands(last.lag.max(0) as u64)
            ),
            format!("  orders        {orders}"),
            format!(
                "  dedupe        {dups} duplicate deliveries dropped   validated orders to ERP {}",
                thousands(t.validated)
            ),
            format!("  availability  {avail} updates"),
            format!("  showing 0     {zeros} SKUs"),
            format!("  flash sale    {flash}   [{}]", channels.join(" ")),
            format!(
                "  dlq           {}{}",
                thousands(t.dlq_total()),
                if t.undecodable > 0 {
                    format!("   ({} output records did not decode)", t.undecodable)
                } else {
                    String::new()
                }
            ),
            format!(
                "  generator     sent {} new orders (+{} flash sale), {} repeats, {} revisions, {} cancellations, {} ERP updates",
                thousands(g.new_orders),
                thousands(g.flash_orders),
                thousands(g.duplicates),
                thousands(g.revisions),
                thousands(g.cancellations),
                thousands(g.erp_updates)
            ),
        ];
        let plain = format!(
            "[{:>4}s] {phase_label} | in {in_rate}/s | processed {done_rate}/s | lag {} | orders: accepted {} backordered {} rejected {} cancelled {} | duplicates dropped {dups} | availability updates {} | dlq {}",
            self.started.elapsed().as_secs(),
            last.lag,
            t.orders(OrderStatusCode::ACCEPTED),
            t.orders(OrderStatusCode::BACKORDERED),
            t.orders(OrderStatusCode::REJECTED) + t.orders(OrderStatusCode::PARTIALLY_ACCEPTED),
            t.orders(OrderStatusCode::CANCELLED),
            t.availability.values().sum::<u64>(),
            t.dlq_total(),
        );
        self.out.update(&block, &plain, force);
    }

    fn print_summary(&mut self, report: Option<&GeneratorReport>) {
        let t = &self.observer.tally;
        let channels = &self.observer.channels;
        let g = self.stats.snapshot();
        let last = self
            .observer
            .sample()
            .unwrap_or_else(|_| self.samples.last().copied().unwrap_or_default());
        let catalog_secs = self
            .catalog_loaded
            .map_or(0.0, |c| c.duration_since(self.started).as_secs_f64());
        let traffic = match (self.traffic_started, self.traffic_ended) {
            (Some(a), Some(b)) => b.duration_since(a),
            (Some(a), None) => a.elapsed(),
            _ => Duration::ZERO,
        };
        let total = self.started.elapsed();
        let mut lines = vec![
            String::new(),
            format!(
                "shelfsync demo summary (application {}, seed {})",
                self.topology.application_id, self.args.generator.traffic.seed
            ),
        ];
        let mut row = |label: &str, value: String| lines.push(format!("  {label:<28}{value}"));
        row(
            "catalog",
            format!(
                "{} SKUs x {} locations: {} product and {} stock records, taken in by the pipeline {catalog_secs:.1} s after start",
                thousands(u64::from(self.args.generator.traffic.skus)),
                self.topology.locations.len(),
                thousands(g.products),
                thousands(g.snapshots)
            ),
        );
        row(
            "traffic",
            format!(
                "{:.1} s{}: {} new orders ({} in the flash sale), {} repeated deliveries, {} revisions, {} cancellations, {} ERP updates",
                traffic.as_secs_f64(),
                match self.stats.held_ms.load(Ordering::Relaxed) {
                    0 => String::new(),
                    ms => format!(
                        " (held back {:.1} s while the pipeline caught up)",
                        ms as f64 / 1000.0
                    ),
                },
                thousands(g.new_orders + g.flash_orders),
                thousands(g.flash_orders),
                thousands(g.duplicates),
                thousands(g.revisions),
                thousands(g.cancellations),
                thousands(g.erp_updates)
            ),
        );
        row(
            "input records",
            format!(
                "{} on the input topics, {} processed by the pipeline ({}/s over {:.1} s)",
                thousands(last.produced.max(0) as u64),
                thousands(last.processed.max(0) as u64),
                thousands(per_sec(last.processed, total)),
                total.as_secs_f64()
            ),
        );
        for (label, code) in [
            ("orders accepted", OrderStatusCode::ACCEPTED),
            ("orders backordered", OrderStatusCode::BACKORDERED),
            (
                "orders partially accepted",
                OrderStatusCode::PARTIALLY_ACCEPTED,
            ),
            ("orders rejected", OrderStatusCode::REJECTED),
            ("orders cancelled", OrderStatusCode::CANCELLED),
        ] {
            row(label, thousands(t.orders(code)));
        }
        row(
            "order status events",
            format!(
                "{} for {} orders; {} validated orders for the ERP",
                thousands(t.status_events),
                thousands(t.latest.len() as u64),
                thousands(t.validated)
            ),
        );
        row(
            "duplicates dropped",
            self.counters.as_ref().map_or_else(
                || "n/a".into(),
                |c| thousands(c.total(m::DUPLICATES_DROPPED)),
            ),
        );
        row(
            "availability updates",
            format!(
                "{} ({})",
                thousands(t.availability.values().sum()),
                channels
                    .iter()
                    .map(|c| format!(
                        "{c} {}",
                        thousands(t.availability.get(c).copied().unwrap_or(0))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let dlq = if t.dlq.is_empty() {
            "0".to_string()
        } else {
            format!(
                "{} ({})",
                thousands(t.dlq_total()),
                t.dlq
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        row("dlq records", dlq);
        let flash_start = self.stats.flash_started_ms.load(Ordering::Relaxed);
        let sold_out = t.flash.values().filter(|f| f.sold_out_at.is_some()).count();
        row(
            "flash-sale SKUs sold out",
            format!(
                "{sold_out}/{} (availability 0 on every channel)",
                self.flash_skus.len()
            ),
        );
        let rel = |ms: i64| {
            if flash_start > 0 {
                format!("{:+.1} s", (ms - flash_start) as f64 / 1000.0)
            } else {
                "-".to_string()
            }
        };
        for sku in &self.flash_skus {
            let Some(f) = t.flash.get(sku) else { continue };
            let per_channel = channels
                .iter()
                .map(|c| {
                    let shown = t.shown.get(sku).and_then(|s| s.get(c));
                    match (f.zero_at.get(c), shown) {
                        (Some(ms), _) => format!("{c} {}", rel(*ms)),
                        // E.g. Walmart's min_publish: a few units are never offered at all.
                        (None, Some(s)) if s.peak == 0 => format!("{c} never above 0"),
                        (None, Some(s)) => format!("{c} still {}", s.quantity),
                        (None, None) => format!("{c} no update"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let what = match f.sold_out_at {
                Some(ms) => format!("sold out {} into the sale", rel(ms)),
                None => "not sold out".to_string(),
            };
            lines.push(format!(
                "    {sku:<26}{what}; 0 per channel at: {per_channel}"
            ));
        }
        let mut row = |label: &str, value: String| lines.push(format!("  {label:<28}{value}"));
        row(
            "other SKUs sold out",
            thousands(t.other_sold_out(channels) as u64),
        );
        row(
            "drain",
            match (self.traffic_ended, self.drained) {
                (Some(a), Some(b)) => format!(
                    "lag 0 and outputs read {:.1} s after traffic stopped",
                    b.duration_since(a).as_secs_f64()
                ),
                _ if self.interrupted => format!("interrupted (lag {})", last.lag),
                _ => format!("not drained (lag {})", last.lag),
            },
        );
        if let Some(r) = report {
            if r.counts.failed > 0 {
                row(
                    "refused by the broker",
                    format!("{} generated records", r.counts.failed),
                );
            }
        }
        if let Ok((internal, changelog, outputs)) = self.observer.written() {
            let all = internal + changelog + outputs;
            row(
                "records written",
                format!(
                    "{} by the pipeline: {} internal, {} changelog, {} output ({:.1} per input record)",
                    thousands(all.max(0) as u64),
                    thousands(internal.max(0) as u64),
                    thousands(changelog.max(0) as u64),
                    thousands(outputs.max(0) as u64),
                    all as f64 / last.processed.max(1) as f64
                ),
            );
        }
        row("total time", format!("{:.1} s", total.as_secs_f64()));
        let mut stdout = std::io::stdout().lock();
        for l in lines {
            let _ = writeln!(stdout, "{l}");
        }
        let _ = stdout.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_demo_topology_is_the_example_with_small_partitions() {
        let t = demo_topology(
            "127.0.0.1:9",
            "shelfsync-demo-1",
            3,
            [
                ("SHELFSYNC_APPLICATION_ID".to_string(), "other".to_string()),
                ("SHELFSYNC_KAFKA_LINGER_MS".to_string(), "20".to_string()),
            ]
            .into_iter(),
        )
        .expect("valid");
        assert_eq!(
            t.kafka.properties.get("linger.ms").map(String::as_str),
            Some("20")
        );
        assert_eq!(t.application_id, "shelfsync-demo-1");
        assert_eq!(t.partitions(TopicId::InventoryCommands), 3);
        assert_eq!(t.partitions(TopicId::Dlq), 1);
        assert_eq!(t.channels.len(), 4);
    }

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn a_flash_sku_is_sold_out_when_every_channel_shows_zero() {
        let channels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut t = Tally::default();
        t.flash.insert("S".into(), FlashView::default());
        let av = |c: &str, q: i64, ts: i64| ChannelAvailability {
            event_id: String::new(),
            channel: c.into(),
            sku: "S".into(),
            quantity: q,
            version: 1,
            event_time: ts,
        };
        t.availability(av("a", 5, 1), &channels);
        t.availability(av("b", 3, 1), &channels);
        t.availability(av("a", 0, 2), &channels);
        assert_eq!(t.flash["S"].sold_out_at, None);
        t.availability(av("b", 0, 3), &channels);
        assert_eq!(t.flash["S"].sold_out_at, Some(3));
        assert_eq!(t.flash["S"].zero_at["a"], 2);
        assert_eq!(t.at_zero("a"), 1);
    }
}
