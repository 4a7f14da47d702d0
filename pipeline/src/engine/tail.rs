//! Output-tail suppression (DESIGN §3, "before resuming, a task reads its output partitions
//! from the delivered offsets in its checkpoint to the end and skips re-emitting outputs that
//! are already there").
//!
//! The engine tracks, per external output partition, the last offset the broker acknowledged
//! ([`Delivered`]); every checkpoint carries it. When tasks open, [`scan`] reads each external
//! partition from the lowest delivered offset among their checkpoints to its current end and
//! collects, per task, the stamps at or after the task's resume offset ([`TailSuppression`]):
//! replaying those inputs produces the same outputs (operators are deterministic), which are
//! then not produced again. Internal topics need no scan: their readers drop repeats by stamp.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::{Deserialize, Serialize};
use shelfsync_topology::{TopicId, TopicRole, Topology};
use tracing::{debug, info};

use super::restore::{read_partitions, reader, RETRY_BUDGET, WATERMARK_TIMEOUT};
use super::stamp::{Stamp, StampKey};
use super::task::Task;
use crate::error::Result;
use crate::kafka;

/// The external output topics (role [`TopicRole::Sink`]): availability, validated orders,
/// order status and the DLQ.
pub(crate) fn external_topics() -> impl Iterator<Item = TopicId> {
    TopicId::ALL
        .into_iter()
        .filter(|id| id.role() == TopicRole::Sink)
}

/// Per external output topic and partition, the last offset the broker acknowledged.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Delivered(BTreeMap<String, BTreeMap<i32, i64>>);

impl Delivered {
    /// The current last offset of every external output partition (the engine's starting
    /// point: anything it writes lies above).
    ///
    /// # Errors
    /// [`crate::Error::Kafka`] when the broker does not answer within the retry budget.
    pub(crate) fn high_watermarks(topology: &Topology) -> Result<Self> {
        let consumer: BaseConsumer = kafka::base_config(topology).create()?;
        let mut out = Self::default();
        for id in external_topics() {
            let topic = topology.topic_name(id);
            for partition in 0..topology.partitions(id) {
                let (_, high) = kafka::retry("fetch watermarks", RETRY_BUDGET, || {
                    Ok(consumer.fetch_watermarks(&topic, partition, WATERMARK_TIMEOUT)?)
                })?;
                out.record(&topic, partition, high - 1);
            }
        }
        Ok(out)
    }

    /// Raises the delivered offset of `(topic, partition)` to `offset` (never lowers it).
    pub fn record(&mut self, topic: &str, partition: i32, offset: i64) {
        let e = self
            .0
            .entry(topic.to_string())
            .or_default()
            .entry(partition)
            .or_insert(-1);
        *e = (*e).max(offset);
    }

    /// The first offset of `(topic, partition)` not known to be delivered before (0 when
    /// nothing is known).
    pub fn scan_from(&self, topic: &str, partition: i32) -> i64 {
        self.0
            .get(topic)
            .and_then(|m| m.get(&partition))
            .map_or(0, |o| o + 1)
    }
}

/// A task's outputs `(input offset, output index)` already on an external topic from before a
/// crash, at or after its resume offset.
#[derive(Debug, Default)]
pub(crate) struct TailSuppression(BTreeSet<(i64, i32)>);

impl TailSuppression {
    /// Adds a delivered output.
    pub(crate) fn insert(&mut self, offset: i64, index: i32) {
        self.0.insert((offset, index));
    }

    /// How many outputs are still to be suppressed.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The output indexes of input `offset` that are delivered already; forgets them and
    /// everything below (inputs are applied in offset order).
    pub(crate) fn take(&mut self, offset: i64) -> BTreeSet<i32> {
        if self.0.is_empty() {
            return BTreeSet::new();
        }
        let later = self.0.split_off(&(offset + 1, i32::MIN));
        let upto = std::mem::replace(&mut self.0, later);
        upto.into_iter()
            .filter(|(o, _)| *o == offset)
            .map(|(_, i)| i)
            .collect()
    }
}

/// Reads every external output partition from the lowest offset any opened task's checkpoint
/// had delivered, and records, per task, the stamps it already wrote at or after its resume
/// offset: replaying those inputs will not produce them again.
///
/// # Errors
/// [`crate::Error::Kafka`] or [`crate::Error::State`] when the tails cannot be read.
pub(crate) fn scan(
    topology: &Topology,
    key: &StampKey,
    opened: &mut [(String, Task)],
) -> Result<()> {
    if opened.is_empty() {
        return Ok(());
    }
    let consumer = reader(topology, "tail-scan")?;
    let by_name: HashMap<String, usize> = opened
        .iter()
        .enumerate()
        .map(|(i, (_, t))| (t.name.clone(), i))
        .collect();
    let mut ranges = Vec::new();
    for id in external_topics() {
        let topic = topology.topic_name(id);
        for partition in 0..topology.partitions(id) {
            // From the lowest delivered offset among the tasks (a task without one: from 0).
            let from = opened
                .iter()
                .map(|(_, t)| t.ledger.resumed_from().scan_from(&topic, partition))
                .min()
                .unwrap_or(0);
            ranges.push((topic.clone(), partition, from));
        }
    }
    let started = Instant::now();
    let mut found = 0usize;
    read_partitions(&consumer, &ranges, |msg| {
        let Some(stamp) = Stamp::of(msg) else {
            return Ok(());
        };
        // A forged stamp here would make the task skip an output it never delivered.
        if !key.verify_msg(msg, &stamp.to_header()) {
            return Ok(());
        }
        if let Some(&i) = by_name.get(stamp.task) {
            let ledger = &mut opened[i].1.ledger;
            // The stamp's position is the step that produced it.
            if stamp.offset >= ledger.next_step() {
                ledger.tail_mut().insert(stamp.offset, stamp.index);
                found += 1;
            }
        }
        Ok(())
    })?;
    debug!(
        found,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "output tails scanned"
    );
    if found > 0 {
        info!(
            found,
            "outputs already delivered before the restart will not be repeated"
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_offsets_only_grow_and_say_where_a_scan_starts() {
        let mut d = Delivered::default();
        assert_eq!(d.scan_from("availability", 0), 0);
        d.record("availability", 0, 10);
        d.record("availability", 0, 4);
        assert_eq!(d.scan_from("availability", 0), 11);
        assert_eq!(d.scan_from("availability", 1), 0);
    }

    #[test]
    fn the_external_topics_are_the_sinks() {
        let ids: Vec<TopicId> = external_topics().collect();
        assert_eq!(
            ids,
            [
                TopicId::Availability,
                TopicId::ValidatedOrders,
                TopicId::OrderStatus,
                TopicId::Dlq
            ]
        );
    }
}
