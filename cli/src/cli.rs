//! The `shelfsync` command line: `run`, `push`, `topics create`, `validate`, `generate`, `demo`,
//! `bench`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use shelfsync_pipeline::engine::{self, EngineStatus, RunOptions};
use shelfsync_topology::Topology;

/// shelfsync: keeps every sales channel's stock right.
#[derive(Debug, Parser)]
#[command(name = "shelfsync", version, about)]
struct Cli {
    /// Log format.
    #[arg(long, env = "SHELFSYNC_LOG_FORMAT", value_enum, default_value_t = LogFormat::Pretty, global = true)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the pipeline as a member of the consumer group `<application_id>`.
    Run {
        /// The topology file (TOML).
        #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
        topology: PathBuf,
        /// Directory of the RocksDB state.
        #[arg(
            long,
            env = "SHELFSYNC_STATE_DIR",
            default_value = "./.shelfsync/state"
        )]
        state_dir: PathBuf,
        /// Listen address of the HTTP endpoints: `/metrics`, `/healthz`, `/readyz` and
        /// `/v1/availability/{sku}`. Use `0.0.0.0:9464` to be reachable from other hosts.
        #[arg(long, env = "SHELFSYNC_HTTP_ADDR", default_value = shelfsync_pipeline::http::DEFAULT_ADDR)]
        http_addr: SocketAddr,
        /// This instance's id in the instance directory (default `<host name>:<HTTP port>`; in
        /// a StatefulSet, the pod name). Unique per running instance.
        #[arg(long, env = "SHELFSYNC_INSTANCE_ID")]
        instance_id: Option<String>,
        /// The base URL other instances reach this one's HTTP endpoints at, e.g.
        /// `http://shelfsync-0.shelfsync:9464` (default `http://<http-addr>`, or
        /// `http://<host name>:<port>` when listening on `0.0.0.0`). The availability query
        /// of every instance forwards to it for the SKUs this one owns.
        #[arg(long, env = "SHELFSYNC_ADVERTISED_URL")]
        advertised_url: Option<String>,
        /// The hosts this instance forwards availability queries to, comma-separated: exact
        /// host names or IP addresses, and `.domain` suffixes for every host under a domain,
        /// e.g. `.shelfsync.retail.svc`. Default: the advertised host and, for a DNS name with
        /// a dot, every host under its parent domain (an IP or `localhost`: only itself).
        /// Owners on other hosts are never asked; the answer points at them only by task.
        #[arg(long, env = "SHELFSYNC_PEER_ALLOW")]
        peer_allow: Option<String>,
        /// How often the instance re-announces itself in the directory, e.g. `5s`, from `1s` to
        /// `60s` (it also announces on every change of its tasks; others forget it after 3
        /// intervals).
        #[arg(long, env = "SHELFSYNC_ANNOUNCE_INTERVAL", default_value = "5s", value_parser = humantime::parse_duration)]
        announce_interval: std::time::Duration,
        /// Static group membership (Kafka's `group.instance.id`): a stable id per instance, e.g.
        /// the pod name of a StatefulSet. A restart within the session timeout
        /// (`session.timeout.ms`) gets the same partitions back without a rebalance of the
        /// group; in exchange a stop does not leave the group, so its partitions move to other
        /// members only when the session times out. Unset: dynamic membership.
        #[arg(long, env = "SHELFSYNC_GROUP_INSTANCE_ID")]
        group_instance_id: Option<String>,
        /// How long a stop (SIGTERM) may wait for the broker, e.g. `30s`: for the last epoch's
        /// acknowledgements and for leaving the group. An epoch the broker has not acknowledged
        /// by then is not committed; the next start replays it (nothing is lost).
        #[arg(long, env = "SHELFSYNC_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
        shutdown_timeout: std::time::Duration,
    },
    /// Send every channel's availability to its marketplace (the channels with a
    /// `[channels.push]` table), as a member of the consumer group `<application_id>-push`.
    Push {
        /// The topology file (TOML).
        #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
        topology: PathBuf,
        /// Listen address of the HTTP endpoints: `/metrics`, `/healthz`, `/readyz` (next to
        /// `run`'s default port, so both fit on one host).
        #[arg(long, env = "SHELFSYNC_HTTP_ADDR", default_value = shelfsync_pipeline::push::DEFAULT_HTTP_ADDR)]
        http_addr: SocketAddr,
        /// How often offsets the marketplaces acknowledged are committed, e.g. `1s`.
        #[arg(long, env = "SHELFSYNC_PUSH_COMMIT_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
        commit_interval: std::time::Duration,
        /// Per channel, most distinct SKUs waiting for the marketplace before reading pauses
        /// (the consumer's partitions resume at three quarters of it).
        #[arg(long, env = "SHELFSYNC_PUSH_QUEUE_CAPACITY", default_value_t = shelfsync_pipeline::push::sink::Bounds::DEFAULT.queue_capacity, value_parser = clap::builder::RangedI64ValueParser::<usize>::new().range(1..))]
        queue_capacity: usize,
        /// Per channel, most SKUs whose delivered version is remembered (the ones delivered last).
        #[arg(long, env = "SHELFSYNC_PUSH_DELIVERED_CAPACITY", default_value_t = shelfsync_pipeline::push::sink::Bounds::DEFAULT.delivered_capacity, value_parser = clap::builder::RangedI64ValueParser::<usize>::new().range(1..))]
        delivered_capacity: usize,
        /// How long a stop (SIGTERM) may take, e.g. `30s`: up to half of it for the
        /// marketplace requests in flight, the rest to commit. What is not committed by then is
        /// logged and pushed again after a restart (marketplace writes are idempotent).
        #[arg(long, env = "SHELFSYNC_PUSH_SHUTDOWN_TIMEOUT", default_value = "30s", value_parser = humantime::parse_duration)]
        shutdown_timeout: std::time::Duration,
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Dead letters: list them, show one, redrive a selection to the topics they came from.
    Dlq {
        #[command(subcommand)]
        command: crate::dlq::DlqCommand,
    },
    /// Reset the application for a replay (stopped pipeline only): move the group's input
    /// offsets to the beginning or a time, delete and recreate the internal and changelog
    /// topics, and say which state directories to wipe.
    Reset(crate::reset::ResetArgs),
    /// A stopped instance's state directory: its tasks, checkpoints and entries, or one SKU's
    /// or order's entries decoded.
    State {
        #[command(subcommand)]
        command: crate::state::StateCommand,
    },
    /// Check a topology file and print every problem with its field path.
    Validate {
        /// The topology file (TOML).
        topology: PathBuf,
    },
    /// Produce seeded, realistic retail traffic to the topology's input topics: the catalog
    /// (product master, stock snapshots), then channel orders with repeats, revisions and
    /// cancellations, ERP updates and a flash sale.
    Generate {
        /// The topology file (TOML): its input topics, channels and locations.
        #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
        topology: PathBuf,
        /// Skip the catalog (product master and stock snapshots) and send traffic only.
        #[arg(long)]
        no_catalog: bool,
        #[command(flatten)]
        generator: crate::generator::GeneratorConfig,
    },
    /// Run the whole pipeline against a broker with generated traffic and a live view, then
    /// print a summary (what `scripts/demo.sh` runs).
    Demo(crate::demo::DemoArgs),
    /// Measure the pipeline against a broker: backlog throughput per stage and end to end as a
    /// ratio of a passthrough baseline on the same broker, produce → readable latency
    /// percentiles under live traffic, changelog restore speed, peak RSS; then print a report.
    Bench(Box<crate::bench::BenchArgs>),
}

#[derive(Debug, Subcommand)]
enum TopicsCommand {
    /// Create every topic the topology needs (idempotent).
    Create {
        /// The topology file (TOML).
        #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
        topology: PathBuf,
    },
}

fn init_logs(format: LogFormat, default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("SHELFSYNC_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Pretty => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

fn load(path: &PathBuf) -> anyhow::Result<Topology> {
    Topology::load_with_env(path, std::env::vars()).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A flag that SIGTERM and SIGINT set (the command stops cleanly when it sees it).
fn shutdown_on_signals() -> anyhow::Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
        signal_hook::flag::register(signal, Arc::clone(&flag)).context("install signal handler")?;
    }
    Ok(flag)
}

/// How long `run`, `push` and `topics create` wait for the broker to answer before they start
/// anyway (a refused configuration fails at once; an absent broker is waited for).
const CONNECTION_CHECK_WAIT: std::time::Duration = std::time::Duration::from_secs(20);

/// What `run` and `push` set up before their work.
struct Service {
    topology: Arc<Topology>,
    shutdown: Arc<AtomicBool>,
    status: Arc<EngineStatus>,
    http: shelfsync_pipeline::http::HttpServer,
}

impl Service {
    /// Loads the topology, installs the Prometheus recorder first (so nothing recorded is
    /// lost), the signal flag, and serves the HTTP endpoints before the work starts (so probes
    /// answer, not ready, while it joins and restores).
    fn start(topology: &PathBuf, http_addr: SocketAddr) -> anyhow::Result<Self> {
        let topology = Arc::new(load(topology)?);
        let metrics = shelfsync_pipeline::metrics::install_recorder()?;
        let shutdown = shutdown_on_signals()?;
        let status = Arc::new(EngineStatus::default());
        let http = shelfsync_pipeline::http::serve(
            http_addr,
            Arc::clone(&topology),
            Arc::clone(&status),
            metrics,
        )?;
        // Wrong credentials or TLS settings stop the command here, with the cause named; the
        // probes already answer (not ready) while it waits for an absent broker.
        shelfsync_pipeline::kafka::check_connection(&topology, CONNECTION_CHECK_WAIT, &shutdown)?;
        Ok(Self {
            topology,
            shutdown,
            status,
            http,
        })
    }

    /// Starts the service ([`Service::start`]), runs `work` with it, then stops the HTTP
    /// server: the lifecycle of `run` and `push`. `work` does its own cleanup first (e.g. the
    /// directory's tombstone goes out before the HTTP server stops answering).
    fn run(
        topology: &PathBuf,
        http_addr: SocketAddr,
        work: impl FnOnce(&Self) -> anyhow::Result<()>,
    ) -> anyhow::Result<ExitCode> {
        let service = Self::start(topology, http_addr)?;
        let result = work(&service);
        service.http.shutdown();
        result?;
        Ok(ExitCode::SUCCESS)
    }
}

/// Parses the command line and runs the command; the exit code says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    // The demo's live view owns the terminal: only warnings and errors are logged there, and
    // not the producer's "waiting for the broker" (the view shows the lag instead).
    let default_filter = match cli.command {
        Command::Demo(_) => "warn,librdkafka=error,rdkafka=error,shelfsync_pipeline::kafka=error",
        // The benchmark prints its own progress on stderr and its report on stdout.
        Command::Bench(_) => "warn,librdkafka=error,rdkafka=error",
        _ => "info,librdkafka=warn,rdkafka=warn",
    };
    init_logs(cli.log_format, default_filter);
    match real_main(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Validate { topology } => match Topology::load(&topology) {
            Ok(_) => {
                println!("{}: ok", topology.display());
                Ok(ExitCode::SUCCESS)
            }
            Err(e) => {
                let errors = e.validation_errors();
                if errors.is_empty() {
                    eprintln!("{e}");
                } else {
                    eprintln!("{}: {} problem(s)", topology.display(), errors.len());
                    for err in errors {
                        eprintln!("  {err}");
                    }
                }
                Ok(ExitCode::from(2))
            }
        },
        Command::Topics {
            command: TopicsCommand::Create { topology },
        } => {
            let topology = load(&topology)?;
            shelfsync_pipeline::kafka::check_connection(
                &topology,
                CONNECTION_CHECK_WAIT,
                &std::sync::atomic::AtomicBool::new(false),
            )?;
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let actions = rt.block_on(shelfsync_pipeline::admin::create_topics(&topology))?;
            for (name, action) in actions {
                println!("{name}: {action:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Generate {
            topology,
            no_catalog,
            generator,
        } => {
            let topology = load(&topology)?;
            let stop = shutdown_on_signals()?;
            let report =
                crate::generator::run_with_progress(&topology, &generator, !no_catalog, &stop)?;
            println!("{report}");
            Ok(ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            let interrupted = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                // A second signal exits at once; the first asks the demo to stop cleanly.
                signal_hook::flag::register_conditional_shutdown(
                    signal,
                    130,
                    Arc::clone(&interrupted),
                )
                .context("install signal handler")?;
                signal_hook::flag::register(signal, Arc::clone(&interrupted))
                    .context("install signal handler")?;
            }
            crate::demo::run(args, interrupted)
        }
        Command::Bench(args) => crate::bench::run(*args),
        Command::Dlq { command } => {
            crate::dlq::run(command, load)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::State { command } => {
            crate::state::run(command)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Reset(args) => {
            crate::reset::run(args, load)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Push {
            topology,
            http_addr,
            commit_interval,
            queue_capacity,
            delivered_capacity,
            shutdown_timeout,
        } => Service::run(&topology, http_addr, |service| {
            shelfsync_pipeline::push::run(
                Arc::clone(&service.topology),
                shelfsync_pipeline::push::PushOptions {
                    shutdown: Arc::clone(&service.shutdown),
                    commit_interval,
                    bounds: shelfsync_pipeline::push::sink::Bounds {
                        queue_capacity,
                        delivered_capacity,
                    },
                    shutdown_timeout,
                },
                Arc::clone(&service.status),
            )?;
            Ok(())
        }),
        Command::Run {
            topology,
            state_dir,
            http_addr,
            instance_id,
            advertised_url,
            peer_allow,
            announce_interval,
            group_instance_id,
            shutdown_timeout,
        } => Service::run(&topology, http_addr, |service| {
            use shelfsync_pipeline::directory::{Identity, PeerAllow, PeerUrl};
            let me = Identity::resolve(instance_id, advertised_url, service.http.local_addr())?;
            let allow = match peer_allow {
                Some(list) => PeerAllow::parse(&list).map_err(|e| anyhow::anyhow!(e))?,
                None => PeerAllow::default_for(
                    &PeerUrl::parse(&me.http_url).map_err(|e| anyhow::anyhow!(e))?,
                ),
            };
            tracing::info!(peer_allow = %allow, "availability queries are forwarded only to these hosts");
            let directory = shelfsync_pipeline::directory::start(
                &service.topology,
                me.clone(),
                Arc::clone(&service.status),
                announce_interval,
            )?;
            let dlq_watch = shelfsync_pipeline::dlq_watch::start(&service.topology)?;
            service
                .http
                .route_queries(shelfsync_pipeline::http::Routing {
                    me,
                    directory: directory.directory(),
                    allow,
                });
            let result = engine::run(
                Arc::clone(&service.topology),
                RunOptions {
                    state_dir,
                    shutdown: Arc::clone(&service.shutdown),
                    group_instance_id,
                    shutdown_timeout,
                },
                Arc::clone(&service.status),
            );
            // The tombstone goes out before the HTTP server stops answering.
            directory.shutdown();
            dlq_watch.shutdown();
            result?;
            Ok(())
        }),
    }
}
