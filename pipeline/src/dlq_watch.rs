//! What is waiting on the dead-letter topic: every `shelfsync run` instance reads the DLQ and
//! the redrive ledger (`<application_id>-dlq-redrives`, see `shelfsync dlq redrive`) from their
//! start, on a thread of its own, and exports how many dead letters were never redriven and the
//! timestamp of the oldest of them (`shelfsync_dlq_unredriven`,
//! `shelfsync_dlq_oldest_unredriven_timestamp_seconds`; the dashboard shows its age). Every
//! instance exports the same numbers: take the `max`.
//!
//! A dead letter is remembered by (partition, offset) and timestamp (~40 bytes), until the
//! ledger says it was redriven. Broker trouble never stops it: errors are logged (at most
//! every 30 s) and reading goes on; the pipeline does not depend on it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_topology::{TopicId, Topology};
use tracing::warn;

use crate::error::{Error, Result};
use crate::kafka;
use crate::metrics as m;

/// The dead letters not redriven, as far as the topics have been read.
#[derive(Debug, Default)]
pub struct Pending {
    /// (partition, offset) → timestamp (ms) of each dead letter not redriven.
    letters: BTreeMap<(i32, i64), i64>,
    /// Timestamps of those, counted (the oldest is the first key).
    by_time: BTreeMap<i64, u32>,
    /// Dead letters the ledger names, whether or not they were read yet.
    redriven: BTreeSet<(i32, i64)>,
}

impl Pending {
    /// A dead letter read at (`partition`, `offset`) with timestamp `ts`.
    pub fn dead_letter(&mut self, partition: i32, offset: i64, ts: i64) {
        if self.redriven.contains(&(partition, offset)) {
            return;
        }
        if self.letters.insert((partition, offset), ts).is_none() {
            *self.by_time.entry(ts).or_default() += 1;
        }
    }

    /// The ledger says the dead letter at (`partition`, `offset`) was redriven.
    pub fn redriven(&mut self, partition: i32, offset: i64) {
        self.redriven.insert((partition, offset));
        if let Some(ts) = self.letters.remove(&(partition, offset)) {
            if let Some(n) = self.by_time.get_mut(&ts) {
                *n -= 1;
                if *n == 0 {
                    self.by_time.remove(&ts);
                }
            }
        }
    }

    /// How many are not redriven.
    pub fn count(&self) -> usize {
        self.letters.len()
    }

    /// The oldest timestamp (ms) among them.
    pub fn oldest(&self) -> Option<i64> {
        self.by_time.keys().next().copied()
    }
}

/// Parses a ledger key, `<dlq topic>/<partition>/<offset>`, of the dead-letter topic `dlq`.
fn ledger_position(key: &str, dlq: &str) -> Option<(i32, i64)> {
    let rest = key.strip_prefix(dlq)?.strip_prefix('/')?;
    let (p, o) = rest.split_once('/')?;
    Some((p.parse().ok()?, o.parse().ok()?))
}

/// The running watcher; stopped by [`DlqWatch::shutdown`] or when dropped.
pub struct DlqWatch {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl DlqWatch {
    /// Stops the thread and waits for it.
    pub fn shutdown(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for DlqWatch {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts reading `topology`'s dead-letter topic and redrive ledger.
///
/// # Errors
/// [`Error::Kafka`] when librdkafka refuses the client configuration; [`Error::Bug`] when the
/// thread cannot start.
pub fn start(topology: &Topology) -> Result<DlqWatch> {
    let dlq = topology.topic_name(TopicId::Dlq);
    let ledger = topology.topic_name(TopicId::DlqRedrives);
    let mut config = kafka::base_config(topology);
    // Never joins the group (no `subscribe`), never commits: it reads both topics whole.
    config
        .set("group.id", format!("{}-dlq-watch", topology.application_id))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("isolation.level", "read_committed")
        .set("fetch.wait.max.ms", "500");
    let consumer: BaseConsumer = config.create()?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..topology.partitions(TopicId::Dlq) {
        tpl.add_partition_offset(&dlq, p, Offset::Beginning)?;
    }
    for p in 0..topology.partitions(TopicId::DlqRedrives) {
        tpl.add_partition_offset(&ledger, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = Arc::clone(&stop);
        std::thread::Builder::new()
            .name("shelfsync-dlq-watch".into())
            .spawn(move || watch(&consumer, &dlq, &ledger, &stop))
            .map_err(|e| Error::Bug(format!("spawn the DLQ watch thread: {e}")))?
    };
    Ok(DlqWatch {
        stop,
        thread: Some(thread),
    })
}

fn watch(consumer: &BaseConsumer, dlq: &str, ledger: &str, stop: &AtomicBool) {
    let mut pending = Pending::default();
    let mut next_warning = Instant::now();
    let publish = |pending: &Pending| {
        metrics::gauge!(m::DLQ_UNREDRIVEN).set(pending.count() as f64);
        // No dead letter waiting: the gauge says "now" (age 0) rather than vanishing.
        let oldest = pending.oldest().unwrap_or_else(crate::clock::now_ms);
        metrics::gauge!(m::DLQ_OLDEST_UNREDRIVEN).set(oldest as f64 / 1000.0);
    };
    publish(&pending);
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(500)) else {
            publish(&pending);
            continue;
        };
        match result {
            Ok(msg) if msg.topic() == dlq => {
                let ts = msg.timestamp().to_millis().unwrap_or(0);
                pending.dead_letter(msg.partition(), msg.offset(), ts);
            }
            Ok(msg) => {
                let key = String::from_utf8_lossy(msg.key().unwrap_or_default());
                if let Some((p, o)) = ledger_position(&key, dlq) {
                    pending.redriven(p, o);
                } else if msg.topic() == ledger && Instant::now() >= next_warning {
                    warn!(key = %key, "a redrive ledger record that names no dead letter of this topic; ignored");
                    next_warning = Instant::now() + Duration::from_secs(30);
                }
            }
            Err(e) => {
                if Instant::now() >= next_warning {
                    kafka::log_client_error(&e, "DLQ watch poll");
                    next_warning = Instant::now() + Duration::from_secs(30);
                }
            }
        }
        publish(&pending);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redrives_take_dead_letters_off_whichever_comes_first() {
        let mut p = Pending::default();
        p.dead_letter(0, 1, 100);
        p.dead_letter(0, 2, 50);
        p.dead_letter(1, 1, 50);
        // The ledger may be read before the dead letter it names.
        p.redriven(1, 7);
        p.dead_letter(1, 7, 10);
        assert_eq!((p.count(), p.oldest()), (3, Some(50)));
        p.redriven(0, 2);
        assert_eq!((p.count(), p.oldest()), (2, Some(50)));
        p.redriven(1, 1);
        assert_eq!((p.count(), p.oldest()), (1, Some(100)));
        // Read twice (a re-assignment): counted once.
        p.dead_letter(0, 1, 100);
        p.redriven(0, 1);
        assert_eq!((p.count(), p.oldest()), (0, None));
    }

    #[test]
    fn ledger_keys_name_a_dead_letter_of_this_topic() {
        assert_eq!(
            ledger_position("retail.dlq/3/42", "retail.dlq"),
            Some((3, 42))
        );
        assert_eq!(ledger_position("other.dlq/3/42", "retail.dlq"), None);
        assert_eq!(ledger_position("retail.dlq/x/42", "retail.dlq"), None);
        assert_eq!(ledger_position("retail.dlq.x/3/42", "retail.dlq"), None);
    }
}
