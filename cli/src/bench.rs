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
//! Each phase reports the pipeline's peak RSS (`VmHWM` of the child) against the configured
//! RocksDB budget + 256 MiB. The benchmark stops by itself: every wait is bounded.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::BufRead;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_operators::{MemStore, StateStore};
use shelfsync_topology::{AdapterName, ChannelSpec, LocationSpec, Stage, TopicId, Topology};

use crate::generator::{
    parse_duration, Generator, GeneratorConfig, GeneratorCounts, GeneratorStats, TrafficArgs,
    TrafficSource,
};
use shelfsync_pipeline::engine::Checkpoint;
use shelfsync_pipeline::kafka::{self, KafkaProducer, ProduceRecord};
use shelfsync_pipeline::rocks_store::CHECKPOINT_KEY;
use shelfsync_pipeline::stages::StageLogic;

/// How often progress is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// A drain is over when the sources are all taken and nothing moved for this long.
const QUIET: Duration = Duration::from_secs(2);
/// The memory target: peak RSS under the RocksDB budget plus this.
const RSS_HEADROOM: u64 = 256 << 20;

/// A phase of the benchmark.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Phase {
    /// Backlog drain: pipeline vs passthrough records/s.
    Throughput,
    /// Live traffic: produce → readable latency percentiles.
    Latency,
    /// Changelog restore of a large inventory store.
    Restore,
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
    fn generator(&self, skus: u32) -> GeneratorConfig {
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

// ---------------------------------------------------------------------------------------------
// Topologies

/// The base topology with the flags applied.
fn base_topology(args: &BenchArgs) -> anyhow::Result<Topology> {
    let text = match &args.topology {
        Some(path) => {
            std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?
        }
        None => crate::EXAMPLE_TOPOLOGY.to_string(),
    };
    let mut t = Topology::parse_toml_str(&text).map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.locations > 0 {
        t.locations = (1..=args.locations)
            .map(|i| {
                let id = if i == 1 {
                    "dc-1".to_string()
                } else {
                    format!("store-{i}")
                };
                LocationSpec {
                    name: id.clone(),
                    id,
                }
            })
            .collect();
        for c in &mut t.channels {
            c.eligible_locations = None;
        }
    }
    if args.channels > 0 {
        let n = args.channels as usize;
        t.channels.truncate(n);
        let mut k = t.channels.len();
        while t.channels.len() < n {
            k += 1;
            let mut c = ChannelSpec::new(&format!("market-{k}"), AdapterName::Generic);
            c.share_pct = 10;
            t.channels.push(c);
        }
    }
    if args.partitions > 0 {
        t.topics.partitions = args.partitions;
        t.topics.partition_overrides.retain(|k, _| k == "dlq");
    }
    if let Some(epoch) = args.epoch {
        t.processing.epoch_interval = epoch;
    }
    // Marketplace push settings play no part here.
    for c in &mut t.channels {
        c.push = None;
    }
    Ok(t)
}

/// `base` on `bootstrap` under a fresh application id, with external topics of its own.
fn phase_topology(base: &Topology, bootstrap: &str, app: &str) -> anyhow::Result<Topology> {
    let mut t = base.clone();
    t.application_id = app.to_string();
    t.kafka.bootstrap_servers = bootstrap.to_string();
    let topics = &mut t.topics;
    for name in [
        &mut topics.raw_orders,
        &mut topics.erp_inventory,
        &mut topics.erp_products,
        &mut topics.availability,
        &mut topics.validated_orders,
        &mut topics.order_status,
        &mut topics.dlq,
    ] {
        *name = format!("{app}.{name}");
    }
    if let Err(errors) = t.validate() {
        let list: Vec<String> = errors.iter().map(ToString::to_string).collect();
        bail!("the benchmark topology is invalid: {}", list.join("; "));
    }
    Ok(t)
}

fn create_topics(topology: &Topology) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(shelfsync_pipeline::admin::create_topics(topology))
        .with_context(|| format!("create the topics of {}", topology.application_id))?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The pipeline as a child process

/// `shelfsync run` in a child process; stopped (TERM, then KILL) when dropped.
struct Pipeline {
    child: Child,
    http: HttpClient,
    log: PathBuf,
}

impl Pipeline {
    fn spawn(topology: &Topology, dir: &Path, name: &str) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let file = dir.join(format!("{name}.toml"));
        std::fs::write(&file, topology.to_toml_string()?)?;
        let http = {
            let l = std::net::TcpListener::bind("127.0.0.1:0")?;
            l.local_addr()?
        };
        let client = HttpClient::new(http)?;
        let log = dir.join(format!("{name}.log"));
        let exe = std::env::current_exe().context("locate the shelfsync binary")?;
        let child = Command::new(exe)
            .args(["--log-format", "json", "run", "--topology"])
            .arg(&file)
            .arg("--state-dir")
            .arg(dir.join(format!("{name}-state")))
            .arg("--http-addr")
            .arg(http.to_string())
            .env_remove("SHELFSYNC_APPLICATION_ID")
            .env_remove("SHELFSYNC_BOOTSTRAP_SERVERS")
            .env_remove("SHELFSYNC_TOPOLOGY")
            .env_remove("SHELFSYNC_STATE_DIR")
            .env_remove("SHELFSYNC_HTTP_ADDR")
            .env("SHELFSYNC_LOG", "info,librdkafka=warn,rdkafka=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log)?)
            .spawn()
            .context("start `shelfsync run`")?;
        Ok(Self {
            child,
            http: client,
            log,
        })
    }

    fn check_alive(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "the pipeline exited ({status}); its log {}:\n{}",
                self.log.display(),
                tail(&self.log, 20)
            );
        }
        Ok(())
    }

    /// Peak resident set size so far, bytes.
    fn peak_rss(&self) -> Option<u64> {
        vm_hwm(self.child.id())
    }

    fn metrics(&self) -> anyhow::Result<String> {
        let (code, body) = self.http.get("/metrics")?;
        if code != 200 {
            bail!("/metrics answered {code}");
        }
        Ok(body)
    }

    fn ready(&self) -> bool {
        matches!(self.http.get("/readyz"), Ok((200, _)))
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<Duration> {
        let began = Instant::now();
        while !self.ready() {
            self.check_alive()?;
            if began.elapsed() > timeout {
                bail!("the pipeline was not ready within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(began.elapsed())
    }

    /// Records in per stage, from `/metrics`.
    fn records_in(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        let text = self.metrics()?;
        Ok(by_label(
            &text,
            shelfsync_pipeline::metrics::RECORDS_IN,
            "stage",
        ))
    }

    fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            return;
        }
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let began = Instant::now();
        while began.elapsed() < Duration::from_secs(30) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pipeline {
    fn drop(&mut self) {
        self.stop();
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `VmHWM` of process `pid`, bytes.
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status_kib(&status, "VmHWM:").map(|kib| kib * 1024)
}

fn status_kib(status: &str, field: &str) -> Option<u64> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// A client of the pipeline's own HTTP endpoints on loopback: `reqwest` on a current-thread
/// tokio runtime of its own (the bench is threads, not tasks).
struct HttpClient {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
    base: String,
}

impl HttpClient {
    fn new(addr: SocketAddr) -> anyhow::Result<Self> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let client = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(2))
            .timeout(Duration::from_secs(10))
            // Loopback: never through an `HTTP_PROXY` of the environment.
            .no_proxy()
            .build()
            .context("build the HTTP client")?;
        Ok(Self {
            rt,
            client,
            base: format!("http://{addr}"),
        })
    }

    /// GET `path`: the status code and the body.
    fn get(&self, path: &str) -> anyhow::Result<(u16, String)> {
        self.rt.block_on(async {
            let response = self
                .client
                .get(format!("{}{path}", self.base))
                .send()
                .await?;
            let code = response.status().as_u16();
            Ok((code, response.text().await?))
        })
    }
}

/// Sums of counter `name` per value of `label`, from Prometheus text.
fn by_label(text: &str, name: &str, label: &str) -> BTreeMap<String, u64> {
    let mut out = BTreeMap::new();
    let key = format!("{label}=\"");
    for line in text.lines() {
        let Some(rest) = line.strip_prefix(name) else {
            continue;
        };
        if !rest.starts_with('{') {
            continue;
        }
        let Some((labels, value)) = rest.rsplit_once(' ') else {
            continue;
        };
        let Some(v) = labels
            .split_once(&key)
            .and_then(|(_, r)| r.split_once('"'))
            .map(|(v, _)| v.to_string())
        else {
            continue;
        };
        let n = value.trim().parse::<f64>().unwrap_or(0.0) as u64;
        *out.entry(v).or_insert(0) += n;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Drains

/// Per-stage progress samples of one drain.
#[derive(Debug, Default)]
struct Samples {
    at: Vec<(Instant, BTreeMap<String, u64>)>,
}

/// Throughput of one stage (or of the whole graph) over a drain.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rate {
    /// Records counted.
    pub records: u64,
    /// Seconds from the first sample that saw records to the last sample that moved.
    pub seconds: f64,
    /// records / seconds.
    pub per_sec: f64,
}

impl Samples {
    fn get(map: &BTreeMap<String, u64>, keys: &[&str]) -> u64 {
        keys.iter().map(|k| map.get(*k).copied().unwrap_or(0)).sum()
    }

    /// The rate of the sum of `keys`: from the last sample before it rose above zero (or the
    /// first sample, when it was never zero) to the first sample at which it, and the sum of
    /// `until`, had their final values. Sampling makes both ends uncertain by up to
    /// [`SAMPLE_EVERY`], equally for every system measured.
    fn rate(&self, keys: &[&str], until: &[&str]) -> Rate {
        let Some(first) = self.at.iter().position(|(_, m)| Self::get(m, keys) > 0) else {
            return Rate::default();
        };
        let start = first.saturating_sub(1);
        let Some((_, end_map)) = self.at.last() else {
            return Rate::default();
        };
        let (total, total_until) = (Self::get(end_map, keys), Self::get(end_map, until));
        let end = self
            .at
            .iter()
            .position(|(_, m)| Self::get(m, keys) == total && Self::get(m, until) == total_until)
            .unwrap_or(self.at.len() - 1)
            .max(start);
        let (t0, m0) = &self.at[start];
        let seconds = self.at[end].0.duration_since(*t0).as_secs_f64();
        let records = total - Self::get(m0, keys);
        Rate {
            records: total,
            seconds,
            per_sec: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                f64::NAN
            },
        }
    }
}

/// Samples `sample` until the `sources` reached their expected counts and nothing moved for
/// [`QUIET`], or `timeout`.
fn drain(
    expected: &BTreeMap<&'static str, u64>,
    timeout: Duration,
    mut sample: impl FnMut() -> anyhow::Result<BTreeMap<String, u64>>,
) -> anyhow::Result<Samples> {
    let began = Instant::now();
    let mut samples = Samples::default();
    let mut moved = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let m = sample()?;
        if samples.at.last().is_none_or(|(_, prev)| *prev != m) {
            moved = now;
        }
        let done = expected
            .iter()
            .all(|(k, v)| m.get(*k).copied().unwrap_or(0) >= *v);
        samples.at.push((now, m));
        if done && moved.elapsed() >= QUIET {
            return Ok(samples);
        }
        if now.duration_since(began) > timeout {
            bail!(
                "not drained within {timeout:?}: expected {expected:?}, got {:?}",
                samples.at.last().map(|(_, m)| m)
            );
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!("  … {:?}", samples.at.last().map(|(_, m)| m));
        }
        std::thread::sleep(SAMPLE_EVERY.saturating_sub(now.elapsed()));
    }
}

fn source_counts(c: &GeneratorCounts) -> (u64, u64, u64) {
    (c.order_records(), c.snapshots + c.erp_updates, c.products)
}

/// Writes the catalog plus `args.backlog` of traffic as fast as the producer goes.
fn preload(topology: &Topology, args: &BenchArgs) -> anyhow::Result<GeneratorCounts> {
    // The same records as live traffic, on a compressed schedule (the producer cannot keep up
    // with it, so it sends as fast as it can).
    let k = (args.backlog.as_secs_f64() / 2.0).max(1.0);
    let mut cfg = args.generator(args.traffic.skus);
    cfg.traffic.orders_per_sec = args.traffic.orders_per_sec * k;
    cfg.traffic.erp_updates_per_sec = args.traffic.erp_updates_per_sec * k;
    cfg.traffic.duration = args.backlog.div_f64(k);
    let stop = AtomicBool::new(false);
    let stats = GeneratorStats::default();
    let began = Instant::now();
    let mut generator = Generator::new(topology, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    generator
        .load_catalog(&stop, &stats)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = generator
        .run_traffic(&stop, &stats)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.counts.failed > 0 {
        bail!(
            "the broker refused {} preloaded records",
            report.counts.failed
        );
    }
    eprintln!(
        "  preloaded {} records in {:.1} s",
        report.counts.records(),
        began.elapsed().as_secs_f64()
    );
    Ok(report.counts)
}

/// Records in per stage of the passthrough, indexed like [`Stage::ALL`].
#[derive(Debug, Default)]
struct StageCounters([AtomicU64; 6]);

impl StageCounters {
    fn snapshot(&self) -> BTreeMap<String, u64> {
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

/// The passthrough baseline: consume every stage's input, produce each record unchanged to the
/// stage's output topic; offsets committed every epoch interval; no decoding, no state.
fn passthrough(
    topology: &Topology,
    stop: &AtomicBool,
    counts: &StageCounters,
) -> anyhow::Result<()> {
    let consumer: BaseConsumer = kafka::consumer_config(topology).create()?;
    let producer = KafkaProducer::new(topology)?;
    let mut route: HashMap<String, (usize, String)> = HashMap::new();
    for (i, s) in Stage::ALL.iter().enumerate() {
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
const ALL_STAGES: [&str; 6] = [
    "normalize",
    "dedupe",
    "erp-inventory",
    "erp-products",
    "inventory",
    "assemble",
];

fn throughput(
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
        let worker = s.spawn(|| passthrough(&pt, &stop, &counters));
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

// ---------------------------------------------------------------------------------------------
// Latency

/// Percentiles of a latency sample, milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: i64,
    /// 90th percentile.
    pub p90: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Maximum.
    pub max: i64,
}

fn percentiles(mut v: Vec<i64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        count: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v[v.len() - 1],
    }
}

/// What the observer saw: per record, its timestamp and when it became readable.
#[derive(Debug, Default)]
struct Observed {
    /// ERP inventory records: (SKU, timestamp).
    erp: HashSet<(String, i64)>,
    /// Availability events: (SKU, timestamp, read at).
    availability: Vec<(String, i64, i64)>,
    /// Validated orders: (timestamp, read at).
    validated: Vec<(i64, i64)>,
}

/// Reads the ERP input, availability and validated-order topics from the beginning until
/// `stop`, noting when each record became readable.
fn observe(topology: &Topology, stop: &AtomicBool, seen: &Mutex<Observed>) -> anyhow::Result<()> {
    let mut config = kafka::base_config(topology);
    config.set(
        "group.id",
        format!("{}-bench-observer", topology.application_id),
    );
    config.set("enable.auto.commit", "false");
    config.set("fetch.wait.max.ms", "10");
    let consumer: BaseConsumer = config.create()?;
    let (erp, avail, validated) = (
        topology.topic_name(TopicId::ErpInventory),
        topology.topic_name(TopicId::Availability),
        topology.topic_name(TopicId::ValidatedOrders),
    );
    let mut tpl = TopicPartitionList::new();
    for (topic, id) in [
        (&erp, TopicId::ErpInventory),
        (&avail, TopicId::Availability),
        (&validated, TopicId::ValidatedOrders),
    ] {
        for p in 0..topology.partitions(id) {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let read_at = shelfsync_pipeline::clock::now_ms();
        let msg = match result {
            Ok(m) => m,
            Err(e) => {
                kafka::log_client_error(&e, "observer poll");
                continue;
            }
        };
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let key = String::from_utf8_lossy(msg.key().unwrap_or_default());
        let mut seen = seen.lock().map_err(|_| anyhow::anyhow!("observer lock"))?;
        if msg.topic() == erp {
            seen.erp.insert((key.into_owned(), ts));
        } else if msg.topic() == avail {
            let sku = key.split_once('|').map_or("", |(_, s)| s).to_string();
            seen.availability.push((sku, ts, read_at));
        } else if msg.topic() == validated {
            seen.validated.push((ts, read_at));
        }
    }
    Ok(())
}

/// Results of the latency phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct LatencyResult {
    /// Order records/s and ERP updates/s asked for.
    pub offered: (f64, f64),
    /// Order records and ERP updates sent during the traffic window.
    pub sent: (u64, u64),
    /// Seconds of traffic.
    pub seconds: f64,
    /// ERP change produced → availability event readable.
    pub erp_to_availability: Percentiles,
    /// Raw order produced → validated order readable.
    pub order_to_validated: Percentiles,
    /// ERP updates that changed no channel's number (no availability event to time).
    pub erp_without_event: u64,
    /// Peak RSS of the pipeline, bytes.
    pub peak_rss: Option<u64>,
}

fn latency(
    args: &BenchArgs,
    base: &Topology,
    run: &str,
    dir: &Path,
) -> anyhow::Result<LatencyResult> {
    let topology = phase_topology(base, &args.bootstrap, &format!("{run}-latency"))?;
    create_topics(&topology)?;
    eprintln!(
        "latency: {} orders/s + {} ERP updates/s for {:?} ({})",
        args.traffic.orders_per_sec,
        args.traffic.erp_updates_per_sec,
        args.traffic.duration,
        topology.application_id
    );
    let seen = Mutex::new(Observed::default());
    let stop_observer = AtomicBool::new(false);
    std::thread::scope(|s| -> anyhow::Result<LatencyResult> {
        let observer = s.spawn(|| observe(&topology, &stop_observer, &seen));
        let result = (|| {
            let mut pipeline = Pipeline::spawn(&topology, dir, "latency")?;
            pipeline.wait_ready(args.timeout)?;
            let cfg = args.generator(args.traffic.skus);
            let mut generator =
                Generator::new(&topology, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
            let stop = AtomicBool::new(false);
            let stats = GeneratorStats::default();
            generator
                .load_catalog(&stop, &stats)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let catalog = stats.snapshot();
            let commands = catalog.products + catalog.snapshots;
            let expected: BTreeMap<&'static str, u64> = [("inventory", commands)].into();
            drain(&expected, args.timeout, || {
                pipeline.check_alive()?;
                pipeline.records_in()
            })
            .context("the catalog")?;
            eprintln!("  catalog of {commands} records processed; live traffic starts");
            let traffic_start = shelfsync_pipeline::clock::now_ms();
            let before = stats.snapshot();
            let report = generator
                .run_traffic(&stop, &stats)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let c = report.counts;
            let (raw, inv, prod) = source_counts(&c);
            let expected: BTreeMap<&'static str, u64> = [
                ("normalize", raw),
                ("erp-inventory", inv),
                ("erp-products", prod),
            ]
            .into();
            drain(&expected, args.timeout, || {
                pipeline.check_alive()?;
                pipeline.records_in()
            })
            .context("the traffic")?;
            let peak_rss = pipeline.peak_rss();
            pipeline.stop();
            Ok::<_, anyhow::Error>((
                traffic_start,
                (
                    c.order_records() - before.order_records(),
                    c.erp_updates - before.erp_updates,
                ),
                report.elapsed.as_secs_f64(),
                peak_rss,
            ))
        })();
        stop_observer.store(true, Ordering::Relaxed);
        match observer.join() {
            Ok(r) => r?,
            Err(_) => bail!("the observer thread panicked"),
        }
        let (traffic_start, sent, seconds, peak_rss) = result?;
        let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("observer lock"))?);
        let mut erp_lat = Vec::new();
        let mut matched: HashSet<(&str, i64)> = HashSet::new();
        for (sku, ts, read_at) in &seen.availability {
            if *ts >= traffic_start && seen.erp.contains(&(sku.clone(), *ts)) {
                erp_lat.push(read_at - ts);
                matched.insert((sku.as_str(), *ts));
            }
        }
        let erp_in_window = seen
            .erp
            .iter()
            .filter(|(_, ts)| *ts >= traffic_start)
            .count();
        let order_lat = seen
            .validated
            .iter()
            .filter(|(ts, _)| *ts >= traffic_start)
            .map(|(ts, read_at)| read_at - ts)
            .collect();
        Ok(LatencyResult {
            offered: (
                args.traffic.orders_per_sec,
                args.traffic.erp_updates_per_sec,
            ),
            sent,
            seconds,
            erp_to_availability: percentiles(erp_lat),
            order_to_validated: percentiles(order_lat),
            erp_without_event: erp_in_window.saturating_sub(matched.len()) as u64,
            peak_rss,
        })
    })
}

// ---------------------------------------------------------------------------------------------
// Restore

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

fn restore_phase(
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
    let began = Instant::now();
    for (p, store) in stores.iter().enumerate() {
        for (k, v) in store.entries() {
            producer.send(ProduceRecord {
                topic: &changelog,
                partition: Some(i32::try_from(p)?),
                key: Some(k),
                value: Some(v),
                timestamp: None,
                headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp.clone())],
            })?;
        }
    }
    let acks = producer.flush();
    if acks.failed > 0 {
        bail!("the broker refused {} changelog records", acks.failed);
    }
    // The checkpoints last, as the engine writes them: after the epoch's store records.
    let checkpoint = shelfsync_operators::state::encode_value(&Checkpoint {
        next_offset: 1,
        ..Checkpoint::default()
    });
    for p in 0..stores.len() {
        producer.send(ProduceRecord {
            topic: &changelog,
            partition: Some(i32::try_from(p)?),
            key: Some(CHECKPOINT_KEY),
            value: Some(&checkpoint),
            timestamp: None,
            headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp.clone())],
        })?;
    }
    let acks = producer.flush();
    if acks.failed > 0 {
        bail!("the broker refused {} checkpoint records", acks.failed);
    }
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
    let (applied, restore_seconds) = restore_logs(&pipeline.log, &changelog)?;
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

/// Sums `applied` and `secs` of the `restore finished` events of `changelog` in a JSON log.
fn restore_logs(log: &Path, changelog: &str) -> anyhow::Result<(u64, f64)> {
    let file = std::fs::File::open(log)?;
    let (mut applied, mut secs) = (0u64, 0f64);
    for line in std::io::BufReader::new(file).lines() {
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&line?) else {
            continue;
        };
        if v["message"] == "restore finished" && v["changelog"] == changelog {
            applied += v["applied"].as_u64().unwrap_or(0);
            secs += v["secs"].as_f64().unwrap_or(0.0);
        }
    }
    Ok((applied, secs))
}

// ---------------------------------------------------------------------------------------------
// Report

/// Everything one run measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct BenchReport {
    /// When the run started (RFC 3339).
    pub started: String,
    /// The workload flags.
    pub workload: String,
    /// RocksDB memory budget, bytes.
    pub rocksdb_budget: u64,
    /// Throughput phase.
    pub throughput: Option<ThroughputResult>,
    /// Latency phase.
    pub latency: Option<LatencyResult>,
    /// Restore phase.
    pub restore: Option<RestoreResult>,
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| {
        format!("{:.0} MiB", b as f64 / f64::from(1 << 20))
    })
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.0}%", a / b * 100.0)
    } else {
        "-".into()
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "shelfsync bench, {}", self.started)?;
        writeln!(f, "workload: {}", self.workload)?;
        let budget = self.rocksdb_budget;
        let rss_ok = |rss: Option<u64>| match rss {
            Some(r) if r <= budget + RSS_HEADROOM => "within",
            Some(_) => "OVER",
            None => "?",
        };
        if let Some(t) = &self.throughput {
            writeln!(f)?;
            writeln!(
                f,
                "throughput (backlog drain; inputs: {} raw orders, {} ERP inventory, {} ERP products)",
                t.inputs.0, t.inputs.1, t.inputs.2
            )?;
            writeln!(
                f,
                "  {:<14} {:>12} {:>14} {:>8}",
                "stage", "records/s", "passthrough/s", "ratio"
            )?;
            for stage in ALL_STAGES {
                if let Some((a, p)) = t.stages.get(stage) {
                    writeln!(
                        f,
                        "  {:<14} {:>12.0} {:>14.0} {:>8}",
                        stage,
                        a.per_sec,
                        p.per_sec,
                        ratio(a.per_sec, p.per_sec)
                    )?;
                }
            }
            let (a, p) = t.end_to_end;
            writeln!(
                f,
                "  {:<14} {:>12.0} {:>14.0} {:>8}   ({} input records: {:.1} s vs {:.1} s)",
                "end to end",
                a.per_sec,
                p.per_sec,
                ratio(a.per_sec, p.per_sec),
                a.records,
                a.seconds,
                p.seconds
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the RocksDB budget {} + 256 MiB)",
                mib(t.peak_rss),
                rss_ok(t.peak_rss),
                mib(Some(budget))
            )?;
        }
        if let Some(l) = &self.latency {
            writeln!(f)?;
            writeln!(
                f,
                "latency ({:.0} orders/s + {:.0} ERP updates/s offered; sent {} + {} in {:.1} s)",
                l.offered.0, l.offered.1, l.sent.0, l.sent.1, l.seconds
            )?;
            writeln!(
                f,
                "  {:<30} {:>8} {:>6} {:>6} {:>6} {:>6}",
                "ms, produced → readable", "count", "p50", "p90", "p99", "max"
            )?;
            for (name, p) in [
                ("ERP change → availability", l.erp_to_availability),
                ("raw order → validated order", l.order_to_validated),
            ] {
                writeln!(
                    f,
                    "  {:<30} {:>8} {:>6} {:>6} {:>6} {:>6}",
                    name, p.count, p.p50, p.p90, p.p99, p.max
                )?;
            }
            writeln!(
                f,
                "  ERP updates that changed no published number: {}",
                l.erp_without_event
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the budget + 256 MiB)",
                mib(l.peak_rss),
                rss_ok(l.peak_rss)
            )?;
        }
        if let Some(r) = &self.restore {
            writeln!(f)?;
            writeln!(
                f,
                "restore ({} SKUs: {} keys in the inventory changelog)",
                r.skus, r.keys
            )?;
            writeln!(
                f,
                "  applied {} records in {:.2} s: {:.0} records/s; process start → ready {:.2} s",
                r.applied, r.restore_seconds, r.records_per_sec, r.seconds_to_ready
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the budget + 256 MiB)",
                mib(r.peak_rss),
                rss_ok(r.peak_rss)
            )?;
        }
        Ok(())
    }
}

/// Runs `shelfsync bench`.
///
/// # Errors
/// When a broker is unreachable, a pipeline exits or does not drain, restore or get ready
/// within `--timeout`, or the broker refuses records.
pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let base = base_topology(&args)?;
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
            "{} SKUs, {} locations, {} channels, {} partitions (inventory commands: {}), epoch {:?}; {} orders/s ({}% repeats, {}% cancellations, {}% revisions), {} ERP updates/s; backlog {:?}; latency run {:?}; restore {} SKUs",
            args.traffic.skus,
            base.locations.len(),
            base.channels.len(),
            base.topics.partitions,
            base.partitions(TopicId::InventoryCommands),
            base.processing.epoch_interval,
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
        report.throughput = Some(throughput(&args, &base, &run_id, &dir)?);
    }
    if args.phases.contains(&Phase::Latency) {
        report.latency = Some(latency(&args, &base, &run_id, &dir)?);
    }
    if args.phases.contains(&Phase::Restore) {
        report.restore = Some(restore_phase(&args, &base, &run_id, &dir)?);
    }
    println!("{report}");
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_string_pretty(&report)?)
            .with_context(|| format!("write {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn by_label_sums_a_counter_per_label() {
        let text = "# TYPE shelfsync_records_in_total counter\n\
            shelfsync_records_in_total{stage=\"dedupe\"} 10\n\
            shelfsync_records_in_total{stage=\"inventory\"} 7\n\
            shelfsync_records_in_total_other{stage=\"inventory\"} 99\n\
            shelfsync_records_out_total{stage=\"dedupe\",topic=\"x\"} 3\n";
        let m = by_label(text, "shelfsync_records_in_total", "stage");
        assert_eq!(m.get("dedupe"), Some(&10));
        assert_eq!(m.get("inventory"), Some(&7));
        assert_eq!(m.len(), 2);
    }

    #[test]
    fn the_http_client_reads_status_and_body() {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let server = std::thread::spawn(move || {
            let (mut conn, _) = listener.accept().expect("accept");
            let mut request = [0u8; 1024];
            let n = conn.read(&mut request).expect("read");
            let request = String::from_utf8_lossy(&request[..n]).to_string();
            let body = "shelfsync_up 1\n";
            write!(
                conn,
                "HTTP/1.1 503 Service Unavailable\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            )
            .expect("write");
            request
        });
        let client = HttpClient::new(addr).expect("client");
        let (code, body) = client.get("/metrics").expect("get");
        assert_eq!((code, body.as_str()), (503, "shelfsync_up 1\n"));
        let request = server.join().expect("server");
        assert!(
            request.starts_with("GET /metrics HTTP/1.1\r\n"),
            "{request}"
        );
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        assert_eq!(percentiles(vec![]).count, 0);
    }

    #[test]
    fn a_rate_runs_from_the_last_idle_sample_to_the_first_final_one() {
        let t0 = Instant::now();
        let s = |ms: u64, n: u64| {
            (
                t0 + Duration::from_millis(ms),
                [("a".to_string(), n)]
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let samples = Samples {
            at: vec![
                s(0, 0),
                s(200, 0),
                s(400, 100),
                s(600, 300),
                s(800, 500),
                s(1000, 500),
            ],
        };
        let r = samples.rate(&["a"], &["a"]);
        assert_eq!(r.records, 500);
        assert!((r.seconds - 0.6).abs() < 1e-9);
        // Already moving at the first sample: from there, counting what came after it.
        let samples = Samples {
            at: vec![s(0, 100), s(200, 300), s(400, 500), s(600, 500)],
        };
        let r = samples.rate(&["a"], &["a"]);
        assert!((r.seconds - 0.4).abs() < 1e-9);
        assert!((r.per_sec - 1000.0).abs() < 1e-6);
    }

    #[test]
    fn vm_hwm_reads_kib() {
        assert_eq!(
            status_kib("Name:\tx\nVmHWM:\t  123456 kB\n", "VmHWM:"),
            Some(123_456)
        );
        assert!(vm_hwm(std::process::id()).is_some_and(|b| b > 0));
    }

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

    #[test]
    fn the_base_topology_takes_the_flags() {
        let args = BenchArgs {
            bootstrap: "127.0.0.1:1".into(),
            restore_bootstrap: None,
            topology: None,
            locations: 3,
            channels: 7,
            partitions: 2,
            epoch: Some(Duration::from_millis(50)),
            phases: vec![],
            traffic: TrafficArgs {
                skus: 100,
                orders_per_sec: 1.0,
                erp_updates_per_sec: 1.0,
                duplicate_pct: 0,
                cancel_pct: 0,
                revision_pct: 0,
                duration: Duration::from_secs(1),
                seed: 1,
            },
            backlog: Duration::from_secs(1),
            restore_skus: 100,
            timeout: Duration::from_secs(1),
            json: None,
            work_dir: None,
        };
        let base = base_topology(&args).unwrap();
        let t = phase_topology(&base, "127.0.0.1:2", "bench-1-x").unwrap();
        assert_eq!(t.locations.len(), 3);
        assert_eq!(t.channels.len(), 7);
        assert_eq!(t.partitions(TopicId::InventoryCommands), 2);
        assert_eq!(
            t.topic_name(TopicId::RawOrders),
            "bench-1-x.retail.channel.orders.raw"
        );
        assert_eq!(t.kafka.bootstrap_servers, "127.0.0.1:2");
    }
}
