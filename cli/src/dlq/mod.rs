//! `shelfsync dlq list|show|redrive`: what an operator does with dead letters.
//!
//! - `list`: the dead letters, filtered by stage, error kind, channel, SKU or order key and
//!   time, as a table or as JSON lines, each with whether it was redriven;
//! - `show`: one dead letter whole: reason, every header, key, and the payload decoded by the
//!   schema of the topic it came from;
//! - `redrive`: a selection back to the topic it came from (see [`redrive`]).
//!
//! Everything is read from the broker (the dead-letter topic, read committed, to its end, and
//! the redrive ledger `<application_id>-dlq-redrives`); nothing needs the pipeline running.

mod letter;
mod redrive;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context};
use serde_json::{json, Value};
use shelfsync_topology::{TopicId, Topology};

pub use letter::DeadLetter;

/// Where and how long to read.
#[derive(Debug, clap::Args)]
pub struct Common {
    /// The topology file (TOML): its broker, dead-letter topic and application id.
    #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
    pub topology: PathBuf,
    /// The longest wait for the broker, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// Which dead letters (every given condition must hold).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct Filter {
    /// The stage that refused them: normalize, dedupe, erp-inventory, erp-products,
    /// inventory, assemble or push.
    #[arg(long)]
    pub stage: Option<String>,
    /// Their error kind, e.g. `bad_json`, `unknown_channel`, `marketplace_rejected`.
    #[arg(long)]
    pub kind: Option<String>,
    /// The sales channel they concern.
    #[arg(long)]
    pub channel: Option<String>,
    /// A SKU or an order key (`walmart:1796277083438`) they concern.
    #[arg(long)]
    pub key: Option<String>,
    /// Dead-lettered records with a timestamp at or after this: RFC 3339
    /// (`2026-12-06T10:00:00Z`) or a time ago (`2h`).
    #[arg(long, value_parser = parse_when)]
    pub since: Option<i64>,
    /// … and before this.
    #[arg(long, value_parser = parse_when)]
    pub until: Option<i64>,
    /// Only these, `partition:offset` in the dead-letter topic (repeatable).
    #[arg(long = "id")]
    pub ids: Vec<String>,
}

/// How to print.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Columns for a terminal.
    Table,
    /// One JSON object per line.
    Json,
}

/// `shelfsync dlq …`.
#[derive(Debug, clap::Subcommand)]
pub enum DlqCommand {
    /// List dead letters, oldest first, with whether each was redriven.
    List {
        /// Topology and timeout.
        #[command(flatten)]
        common: Common,
        /// Which dead letters.
        #[command(flatten)]
        filter: Filter,
        /// `table` or `json`.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Show one dead letter: reason, headers, key and decoded payload.
    Show {
        /// Topology and timeout.
        #[command(flatten)]
        common: Common,
        /// `partition:offset` in the dead-letter topic (as `list` prints it).
        id: String,
        /// `table` or `json`.
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
    /// Send a selection of dead letters back to the topics they came from, each at most once.
    Redrive {
        /// Topology and timeout.
        #[command(flatten)]
        common: Common,
        /// Which dead letters.
        #[command(flatten)]
        filter: Filter,
        /// Print what would be redriven and what not, and why; send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// `RFC 3339` or a duration ago, as epoch milliseconds.
fn parse_when(text: &str) -> Result<i64, String> {
    let when = match humantime::parse_rfc3339_weak(text) {
        Ok(t) => t,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| {
                format!("{text:?} is neither an RFC 3339 time (2026-12-06T10:00:00Z) nor a duration ago (2h)")
            })?;
            std::time::SystemTime::now() - ago
        }
    };
    when.duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .map_err(|e| e.to_string())
}

/// A dead letter with its decoded payload and its ledger entry, if it was redriven.
#[derive(Debug, Clone)]
pub struct Listed {
    /// The record.
    pub letter: DeadLetter,
    /// Its payload decoded (see [`DeadLetter::decode`]).
    pub decoded: Value,
    /// Its entry in the redrive ledger.
    pub redriven: Option<Value>,
}

impl Filter {
    fn admits(&self, l: &Listed) -> bool {
        let d = &l.letter;
        self.stage.as_ref().is_none_or(|s| d.stage() == *s)
            && self.kind.as_ref().is_none_or(|k| d.kind() == *k)
            && self
                .channel
                .as_ref()
                .is_none_or(|c| d.channel(&l.decoded).as_ref() == Some(c))
            && self.key.as_ref().is_none_or(|k| d.concerns(k, &l.decoded))
            && self.since.is_none_or(|t| d.timestamp >= t)
            && self.until.is_none_or(|t| d.timestamp < t)
            && (self.ids.is_empty() || self.ids.contains(&d.id()))
    }
}

/// The redrive ledger: dead letter (`<dlq>/<partition>/<offset>`) → what redrove it.
type Ledger = BTreeMap<String, Value>;

/// Reads the ledger; an absent ledger topic is an empty ledger.
fn read_ledger(topology: &Topology, timeout: Duration) -> anyhow::Result<Ledger> {
    let topic = topology.topic_name(TopicId::DlqRedrives);
    let mut ledger = Ledger::new();
    if !crate::read::topic_exists(topology, &topic, timeout)? {
        return Ok(ledger);
    }
    crate::read::read_to_end(
        topology,
        &topic,
        topology.partitions(TopicId::DlqRedrives),
        &format!("{}-dlq-cli", topology.application_id),
        timeout,
        |msg| {
            use rdkafka::message::Message;
            let key = String::from_utf8_lossy(msg.key().unwrap_or_default()).into_owned();
            match msg.payload() {
                Some(v) => {
                    ledger.insert(key, serde_json::from_slice(v).unwrap_or(Value::Null));
                }
                None => {
                    ledger.remove(&key);
                }
            }
        },
    )?;
    Ok(ledger)
}

/// Every dead letter, decoded, with its ledger entry.
fn read_all(topology: &Topology, timeout: Duration) -> anyhow::Result<Vec<Listed>> {
    let ledger = read_ledger(topology, timeout)?;
    let dlq = topology.topic_name(TopicId::Dlq);
    let mut all = Vec::new();
    crate::read::read_to_end(
        topology,
        &dlq,
        topology.partitions(TopicId::Dlq),
        &format!("{}-dlq-cli", topology.application_id),
        timeout,
        |msg| {
            let letter = DeadLetter::of(msg);
            let decoded = letter.decode(topology);
            let redriven = ledger.get(&letter.ledger_key(&dlq)).cloned();
            all.push(Listed {
                letter,
                decoded,
                redriven,
            });
        },
    )
    .with_context(|| format!("read the dead-letter topic {dlq}"))?;
    all.sort_by_key(|l| (l.letter.timestamp, l.letter.partition, l.letter.offset));
    Ok(all)
}

fn time_text(ms: i64) -> String {
    let t = std::time::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut s: String = text.chars().take(max.saturating_sub(1)).collect();
    s.push('…');
    s
}

/// One dead letter as a JSON line of `list` (`payload` too for `show`).
fn to_json(l: &Listed, with_payload: bool) -> Value {
    let d = &l.letter;
    let mut v = json!({
        "id": d.id(),
        "time": time_text(d.timestamp),
        "timestamp_ms": d.timestamp,
        "stage": d.stage(),
        "kind": d.kind(),
        "reason": d.reason(),
        "channel": d.channel(&l.decoded),
        "key": d.key_text(),
        "source": d.source(),
        "attempt": d.attempt(),
        "truncated": d.truncated(),
        "redriven": l.redriven,
    });
    if with_payload {
        let headers: serde_json::Map<String, Value> = d
            .headers
            .iter()
            .map(|(n, v)| {
                (
                    n.clone(),
                    Value::String(String::from_utf8_lossy(v).into_owned()),
                )
            })
            .collect();
        v["headers"] = Value::Object(headers);
        v["payload"] = l.decoded.clone();
    }
    v
}

fn list(all: &[Listed], filter: &Filter, format: Format) {
    let shown: Vec<&Listed> = all.iter().filter(|l| filter.admits(l)).collect();
    if format == Format::Json {
        for l in &shown {
            println!("{}", to_json(l, false));
        }
        return;
    }
    println!(
        "{:<10} {:<20} {:<13} {:<22} {:<10} {:<28} {:<8} REASON",
        "ID", "TIME", "STAGE", "KIND", "CHANNEL", "KEY", "REDRIVEN"
    );
    for l in &shown {
        let d = &l.letter;
        println!(
            "{:<10} {:<20} {:<13} {:<22} {:<10} {:<28} {:<8} {}",
            d.id(),
            time_text(d.timestamp),
            d.stage(),
            cut(&d.kind(), 22),
            d.channel(&l.decoded).unwrap_or_else(|| "-".into()),
            cut(&d.key_text(), 28),
            if l.redriven.is_some() { "yes" } else { "no" },
            cut(&d.reason(), 100)
        );
    }
    let pending: Vec<&&Listed> = shown.iter().filter(|l| l.redriven.is_none()).collect();
    let oldest = pending
        .iter()
        .map(|l| l.letter.timestamp)
        .min()
        .map_or(String::new(), |t| {
            format!("; oldest not redriven: {}", time_text(t))
        });
    println!(
        "{} of {} dead letters shown, {} not redriven{oldest}",
        shown.len(),
        all.len(),
        pending.len()
    );
}

fn show(l: &Listed, format: Format) -> anyhow::Result<()> {
    if format == Format::Json {
        println!("{}", to_json(l, true));
        return Ok(());
    }
    let d = &l.letter;
    println!("dead letter {} ({})", d.id(), time_text(d.timestamp));
    println!("  stage:    {}", d.stage());
    println!("  kind:     {}", d.kind());
    println!("  reason:   {}", d.reason());
    println!("  source:   {}", d.source());
    if let Some(c) = d.channel(&l.decoded) {
        println!("  channel:  {c}");
    }
    println!("  key:      {}", d.key_text());
    match &l.redriven {
        Some(r) => println!("  redriven: {r}"),
        None => println!("  redriven: no"),
    }
    if d.truncated() {
        println!("  cut to fit the dead-letter topic: the original is at its source");
    }
    println!("  headers:");
    for (name, value) in &d.headers {
        println!("    {name}: {}", String::from_utf8_lossy(value));
    }
    println!("  payload:");
    for line in serde_json::to_string_pretty(&l.decoded)?.lines() {
        println!("    {line}");
    }
    Ok(())
}

/// Runs `shelfsync dlq …` with the topology `load` reads.
///
/// # Errors
/// When the topology does not load, the broker cannot be read, or a redrive fails.
pub fn run(
    command: DlqCommand,
    load: impl Fn(&PathBuf) -> anyhow::Result<Topology>,
) -> anyhow::Result<()> {
    match command {
        DlqCommand::List {
            common,
            filter,
            format,
        } => {
            let topology = load(&common.topology)?;
            list(&read_all(&topology, common.timeout)?, &filter, format);
        }
        DlqCommand::Show { common, id, format } => {
            let topology = load(&common.topology)?;
            let all = read_all(&topology, common.timeout)?;
            let Some(l) = all.iter().find(|l| l.letter.id() == id) else {
                bail!(
                    "no dead letter {id} in {} (ids are partition:offset, as `dlq list` prints them)",
                    topology.topic_name(TopicId::Dlq)
                );
            };
            show(l, format)?;
        }
        DlqCommand::Redrive {
            common,
            filter,
            dry_run,
        } => {
            let topology = load(&common.topology)?;
            redrive::run(&topology, &filter, dry_run, common.timeout)?;
        }
    }
    Ok(())
}
