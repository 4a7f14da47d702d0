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
//!
//! How the pieces fit: this file sets the demo up, runs it and tears it down; `counters`
//! reads the engine's own counters, `observer` what the pipeline did on the broker (offsets,
//! lag, the output topics tallied in `tally`); `live` is the once-a-second loop and its
//! view on a `screen`, `summary` the report at the end.

mod counters;
mod live;
mod observer;
mod screen;
mod summary;
mod tally;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context};
use shelfsync_topology::Topology;

use crate::generator::{
    parse_duration, Generator, GeneratorConfig, GeneratorReport, GeneratorStats,
};
use shelfsync_pipeline::engine::{self, EngineStatus, RunOptions};

use counters::{install_recorder, Counters};
use observer::{Observer, Sample};
use screen::Screen;

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
            shutdown_timeout: engine::DEFAULT_SHUTDOWN_TIMEOUT,
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

/// The demo while it runs: what it watches and when each step happened.
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

#[cfg(test)]
mod tests {
    use super::*;
    use shelfsync_topology::TopicId;

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
}
