//! The `shelfsync` command line: `run`, `topics create`, `validate`.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::engine::{self, EngineStatus, RunOptions};
use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
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
    },
    /// Manage topics.
    Topics {
        #[command(subcommand)]
        command: TopicsCommand,
    },
    /// Check a topology file and print every problem with its field path.
    Validate {
        /// The topology file (TOML).
        topology: PathBuf,
    },
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

fn init_logs(format: LogFormat) {
    let filter =
        tracing_subscriber::EnvFilter::try_from_env("SHELFSYNC_LOG").unwrap_or_else(|_| {
            tracing_subscriber::EnvFilter::new("info,librdkafka=warn,rdkafka=warn")
        });
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

/// Parses the command line and runs the command; the exit code says how it went.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logs(cli.log_format);
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
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let actions = rt.block_on(crate::admin::create_topics(&topology))?;
            for (name, action) in actions {
                println!("{name}: {action:?}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Run {
            topology,
            state_dir,
        } => {
            let topology = Arc::new(load(&topology)?);
            let shutdown = Arc::new(AtomicBool::new(false));
            for signal in [signal_hook::consts::SIGTERM, signal_hook::consts::SIGINT] {
                signal_hook::flag::register(signal, Arc::clone(&shutdown))
                    .context("install signal handler")?;
            }
            let status = Arc::new(EngineStatus::default());
            engine::run(
                topology,
                RunOptions {
                    state_dir,
                    shutdown,
                },
                status,
            )?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
