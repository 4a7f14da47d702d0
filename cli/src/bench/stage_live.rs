//! The stage phase's second and third parts, for the pipeline and each peer alike:
//! - **live:** once a contender has drained its preload, live inventory commands (the same
//!   workload, continued) are sent at `--stage-live-rate` for `--stage-live`; an observer
//!   reading the availability topic (`read_committed`, so a peer under `exactly_once_v2` is
//!   seen when its transaction commits) times every availability event from its command sent
//!   to the event readable. An availability event carries its command's timestamp (both the
//!   pipeline and Kafka Streams keep the input record's), and the SKU in its key, so
//!   (SKU, timestamp) finds the command;
//! - **restore:** the contender stopped, it is started again on a new, empty state directory
//!   and restores its stores from their changelogs; the records restored over the time from
//!   the first partition's restoration started to the last one's ended give records/s.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_pipeline::clock::now_ms;
use shelfsync_pipeline::kafka::{self, KafkaProducer};
use shelfsync_topology::{TopicId, Topology};

use super::latency::{percentiles, Percentiles};
use super::stage::Command;

/// A contender's live part.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Live {
    /// Commands per second asked for.
    pub offered: f64,
    /// Commands sent (the first, untimed, included).
    pub sent: u64,
    /// Seconds the sending took.
    pub seconds: f64,
    /// Command sent → availability event readable, over every event of a live command.
    pub command_to_availability: Percentiles,
    /// Live commands that changed no channel's number (no event to time).
    pub commands_without_event: u64,
}

/// A contender's restore from its changelogs onto an empty state directory.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct Restore {
    /// Changelog records restored.
    pub records: u64,
    /// Seconds spent restoring: from the first store partition's start to the last one's end
    /// (partitions restore side by side, in both).
    pub seconds: f64,
    /// records / seconds.
    pub records_per_sec: f64,
    /// From the process started to ready (the pipeline's `/readyz`; the peer `RUNNING` with
    /// every restoration ended).
    pub seconds_to_ready: f64,
    /// Peak RSS of the restoring process, bytes.
    pub peak_rss: Option<u64>,
}

impl Restore {
    pub(super) fn new(
        records: u64,
        seconds: f64,
        to_ready: Duration,
        peak_rss: Option<u64>,
    ) -> Self {
        Self {
            records,
            seconds,
            records_per_sec: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                f64::NAN
            },
            seconds_to_ready: to_ready.as_secs_f64(),
            peak_rss,
        }
    }
}

/// Events seen by the observer: (SKU, timestamp, read at).
type Seen = Vec<(String, i64, i64)>;

/// Reads `topology`'s availability topic from its current end until `stop`.
fn observe(consumer: &BaseConsumer, stop: &AtomicBool, seen: &Mutex<Seen>) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(50)) else {
            continue;
        };
        let read_at = now_ms();
        match result {
            Ok(msg) => {
                let ts = msg.timestamp().to_millis().unwrap_or(0);
                let key = String::from_utf8_lossy(msg.key().unwrap_or_default());
                let sku = key.split_once('|').map_or("", |(_, s)| s).to_string();
                seen.lock()
                    .map_err(|_| anyhow::anyhow!("observer lock"))?
                    .push((sku, ts, read_at));
            }
            Err(e) => kafka::log_client_error(&e, "live observer poll"),
        }
    }
    Ok(())
}

/// The observer's consumer, assigned to the availability topic at its high watermarks (an
/// explicit offset: nothing produced after this call is missed).
fn observer(topology: &Topology) -> anyhow::Result<BaseConsumer> {
    let mut config = super::latency::observer_config(topology, "live-observer");
    config.set("isolation.level", "read_committed");
    let consumer: BaseConsumer = config.create()?;
    let topic = topology.topic_name(TopicId::Availability);
    let mut tpl = TopicPartitionList::new();
    for p in 0..topology.partitions(TopicId::Availability) {
        let (_, high) = consumer.fetch_watermarks(&topic, p, Duration::from_secs(10))?;
        tpl.add_partition_offset(&topic, p, Offset::Offset(high))?;
    }
    consumer.assign(&tpl)?;
    Ok(consumer)
}

/// When each (SKU, timestamp) of the live commands was first sent, wall-clock ms.
type SentAt = HashMap<(String, i64), i64>;

/// Sends `commands` at `rate` per second into `topology`'s inventory commands topic, noting
/// when each (SKU, timestamp) was first sent.
fn send_paced(
    topology: &Topology,
    commands: &[Command],
    rate: f64,
) -> anyhow::Result<(SentAt, Duration)> {
    let producer = KafkaProducer::new(topology)?;
    let topic = topology.topic_name(TopicId::InventoryCommands);
    let send = |c: &Command| c.send(&producer, &topic);
    // The first command is sent and acknowledged untimed: the producer's connection and the
    // topic's metadata are in place before the clock starts.
    let Some((first, rest)) = commands.split_first() else {
        return Ok((SentAt::new(), Duration::ZERO));
    };
    send(first)?;
    if producer.flush().failed > 0 {
        bail!("the broker refused the first live command");
    }
    let mut sent_at = HashMap::with_capacity(commands.len());
    let began = Instant::now();
    for (i, c) in rest.iter().enumerate() {
        let due = began + Duration::from_secs_f64(i as f64 / rate);
        let now = Instant::now();
        if due > now {
            producer.poll();
            std::thread::sleep(due - now);
        }
        send(c)?;
        sent_at
            .entry((String::from_utf8_lossy(&c.key).into_owned(), c.ts))
            .or_insert_with(now_ms);
    }
    let seconds = began.elapsed();
    let acks = producer.flush();
    if acks.failed > 0 {
        bail!("the broker refused {} live commands", acks.failed);
    }
    Ok((sent_at, seconds))
}

/// Runs the live part against a running contender: `taken` reads how many commands it has
/// taken so far (`before` of them before the live part began).
pub(super) fn live(
    topology: &Topology,
    commands: &[Command],
    rate: f64,
    timeout: Duration,
    before: u64,
    mut taken: impl FnMut() -> anyhow::Result<u64>,
) -> anyhow::Result<Live> {
    let consumer = observer(topology)?;
    let stop = AtomicBool::new(false);
    let seen = Mutex::new(Seen::new());
    let (sent_at, seconds) = std::thread::scope(|s| {
        let watcher = s.spawn(|| observe(&consumer, &stop, &seen));
        let result = (|| {
            // The observer's first fetches go out before the first command does.
            std::thread::sleep(Duration::from_secs(2));
            let (sent_at, seconds) = send_paced(topology, commands, rate)?;
            // Until every live command is taken, then a second for the last outputs to become
            // readable (a transaction commits every 100 ms under exactly_once_v2).
            let want = before + commands.len() as u64;
            let began = Instant::now();
            while taken()? < want {
                if began.elapsed() > timeout {
                    bail!("the live commands were not all taken within {timeout:?}");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            std::thread::sleep(Duration::from_secs(1));
            Ok((sent_at, seconds))
        })();
        stop.store(true, Ordering::Relaxed);
        match watcher.join() {
            Ok(r) => r?,
            Err(_) => bail!("the live observer panicked"),
        }
        result
    })?;
    let seen = seen
        .into_inner()
        .map_err(|_| anyhow::anyhow!("observer lock"))?;
    let mut lat = Vec::with_capacity(seen.len());
    let mut timed = std::collections::HashSet::new();
    for (sku, ts, read_at) in seen {
        if let Some(sent) = sent_at.get(&(sku.clone(), ts)) {
            lat.push(read_at - sent);
            timed.insert((sku, ts));
        }
    }
    Ok(Live {
        offered: rate,
        sent: commands.len() as u64,
        seconds: seconds.as_secs_f64(),
        command_to_availability: percentiles(lat),
        commands_without_event: sent_at.len().saturating_sub(timed.len()) as u64,
    })
}
