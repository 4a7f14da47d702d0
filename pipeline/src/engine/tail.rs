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
use std::ops::ControlFlow;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use shelfsync_topology::{TopicId, TopicRole, Topology};
use tracing::{debug, info};

use super::restore::{read_partitions, reader, watermarks, RETRY_BUDGET, WATERMARK_TIMEOUT};
use super::segment::Segment;
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
                let (_, high) = watermarks(&consumer, &topic, partition)?;
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

    /// The first offset of `(topic, partition)` not known to be delivered before (`None` when
    /// nothing is known).
    pub fn scan_from(&self, topic: &str, partition: i32) -> Option<i64> {
        self.0
            .get(topic)
            .and_then(|m| m.get(&partition))
            .map(|o| o + 1)
    }
}

/// What the metadata of a task's group offset commit carries, so that a host opening the task
/// without its checkpoint (a stateless task moving, a stateful one restoring) knows where the
/// output tails stood, in which lineage (see `Checkpoint::lineage`), and which changelog
/// records are the task's history ([`Segment`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct CommitMeta {
    pub(crate) delivered: Delivered,
    pub(crate) lineage: i64,
    /// `None` for a stateless task, or a commit written before segments existed.
    pub(crate) segment: Option<Segment>,
}

impl CommitMeta {
    /// The metadata string: `d2;l=<lineage>[;s=<segment>];<topic>=<partition>:<offset>,…;…`.
    /// `None` when it would not fit the broker's default `offset.metadata.max.bytes` (4096).
    pub(crate) fn to_metadata(&self) -> Option<String> {
        let mut out = format!("{METADATA_VERSION};l={}", self.lineage);
        if let Some(segment) = &self.segment {
            out.push_str(";s=");
            out.push_str(&segment.to_metadata());
        }
        for (topic, partitions) in &self.delivered.0 {
            out.push(';');
            out.push_str(topic);
            out.push('=');
            let list: Vec<String> = partitions.iter().map(|(p, o)| format!("{p}:{o}")).collect();
            out.push_str(&list.join(","));
        }
        (out.len() <= METADATA_MAX_BYTES).then_some(out)
    }

    /// Reads [`Self::to_metadata`]'s form, and the one before segments (`d1`); `None` for
    /// anything else (no metadata, a commit by an older version or another tool).
    pub(crate) fn from_metadata(metadata: &str) -> Option<Self> {
        let mut parts = metadata.split(';').peekable();
        let version = parts.next()?;
        if version != METADATA_VERSION && version != "d1" {
            return None;
        }
        let lineage = parts.next()?.strip_prefix("l=")?.parse().ok()?;
        let mut out = Self {
            lineage,
            ..Self::default()
        };
        // Topic names cannot contain '@' or '/', so `s=` is never a topic's part.
        if let Some(segment) = parts.peek().and_then(|p| p.strip_prefix("s=")) {
            out.segment = Some(Segment::from_metadata(segment)?);
            parts.next();
        }
        for part in parts {
            let (topic, list) = part.split_once('=')?;
            for pair in list.split(',').filter(|p| !p.is_empty()) {
                let (p, o) = pair.split_once(':')?;
                out.delivered
                    .record(topic, p.parse().ok()?, o.parse().ok()?);
            }
        }
        Some(out)
    }
}

/// The metadata of a group commit that starts a task over in `lineage`, with the external
/// output tails at `delivered` (what `shelfsync reset` commits for every task): a task that
/// opens without a checkpoint takes its lineage from it and scans its output tails only past
/// `delivered`. When the tails do not fit the broker's metadata limit, the lineage alone (the
/// task then scans the usual recent window, where no stamp has the new lineage).
pub fn fresh_start_metadata(lineage: i64, delivered: Delivered) -> String {
    let bare = CommitMeta {
        lineage,
        ..CommitMeta::default()
    };
    CommitMeta {
        delivered,
        lineage,
        segment: None,
    }
    .to_metadata()
    .or_else(|| bare.to_metadata())
    .unwrap_or_default()
}

/// The version tag of [`CommitMeta::to_metadata`].
const METADATA_VERSION: &str = "d2";
/// The broker's default `offset.metadata.max.bytes`.
const METADATA_MAX_BYTES: usize = 4096;

/// How far back a tail scan reads an output partition for a task that does not know where it
/// stood (no checkpoint and no commit metadata: a task that never committed, or one committed
/// by an older version): the outputs of an epoch that was never committed are recent. Bounds
/// the scan, which used to read such partitions from offset 0 — days of output, and stamps of
/// an earlier application that reused the id.
const UNKNOWN_TAIL_WINDOW: std::time::Duration = std::time::Duration::from_secs(15 * 60);

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
        // A task matches only its own lineage's stamps: outputs an earlier lineage wrote at the
        // same steps (before its input topic was recreated) are not this lineage's.
        .map(|(i, (_, t))| (t.stamp_name.clone(), i))
        .collect();
    let mut ranges = Vec::new();
    let mut window: Option<HashMap<(String, i32), i64>> = None;
    for id in external_topics() {
        let topic = topology.topic_name(id);
        for partition in 0..topology.partitions(id) {
            // From the lowest delivered offset among the tasks; a task without one reads the
            // last UNKNOWN_TAIL_WINDOW.
            let froms: Vec<Option<i64>> = opened
                .iter()
                .map(|(_, t)| t.ledger.resumed_from().scan_from(&topic, partition))
                .collect();
            let mut from = froms.iter().flatten().copied().min().unwrap_or(i64::MAX);
            if froms.iter().any(Option::is_none) {
                if window.is_none() {
                    window = Some(window_start(&consumer, topology)?);
                }
                let start = window
                    .as_ref()
                    .and_then(|w| w.get(&(topic.clone(), partition)).copied())
                    .unwrap_or(0);
                from = from.min(start);
            }
            ranges.push((topic.clone(), partition, from));
        }
    }
    let started = Instant::now();
    let mut found = 0usize;
    read_partitions(&consumer, &ranges, |msg| {
        let Some(stamp) = Stamp::of(msg) else {
            return Ok(ControlFlow::Continue(()));
        };
        // A forged stamp here would make the task skip an output it never delivered.
        if !key.verify_msg(msg, &stamp.to_header()) {
            return Ok(ControlFlow::Continue(()));
        }
        if let Some(&i) = by_name.get(stamp.task) {
            let ledger = &mut opened[i].1.ledger;
            // The stamp's position is the step that produced it.
            if stamp.offset >= ledger.next_step() {
                ledger.tail_mut().insert(stamp.offset, stamp.index);
                found += 1;
            }
        }
        Ok(ControlFlow::Continue(()))
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

/// Per external output partition, the first offset written in the last
/// [`UNKNOWN_TAIL_WINDOW`] (partitions with nothing that recent are left out: nothing to read).
fn window_start(
    consumer: &BaseConsumer,
    topology: &Topology,
) -> Result<HashMap<(String, i32), i64>> {
    let since = crate::clock::now_ms() - UNKNOWN_TAIL_WINDOW.as_millis() as i64;
    let mut tpl = TopicPartitionList::new();
    for id in external_topics() {
        let topic = topology.topic_name(id);
        for partition in 0..topology.partitions(id) {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(since))?;
        }
    }
    let found = kafka::retry("offsets for times", RETRY_BUDGET, || {
        Ok(consumer.offsets_for_times(tpl.clone(), WATERMARK_TIMEOUT)?)
    })?;
    Ok(found
        .elements()
        .iter()
        .map(|e| {
            let from = match e.offset() {
                Offset::Offset(o) => o,
                // Nothing written since: start at the end.
                _ => i64::MAX,
            };
            ((e.topic().to_string(), e.partition()), from)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_offsets_only_grow_and_say_where_a_scan_starts() {
        let mut d = Delivered::default();
        assert_eq!(d.scan_from("availability", 0), None);
        d.record("availability", 0, 10);
        d.record("availability", 0, 4);
        assert_eq!(d.scan_from("availability", 0), Some(11));
        assert_eq!(d.scan_from("availability", 1), None);
    }

    #[test]
    fn delivered_offsets_round_trip_through_commit_metadata() {
        let mut d = Delivered::default();
        d.record("retail.channel.availability", 0, 10);
        d.record("retail.channel.availability", 1, -1);
        d.record("retail.dlq", 3, 12_345);
        let mut meta = CommitMeta {
            delivered: d.clone(),
            lineage: 17,
            segment: None,
        };
        let text = meta.to_metadata().unwrap();
        assert_eq!(
            text,
            "d2;l=17;retail.channel.availability=0:10,1:-1;retail.dlq=3:12345"
        );
        assert_eq!(CommitMeta::from_metadata(&text).as_ref(), Some(&meta));
        meta.segment = Some(Segment {
            writer: "9f3a".into(),
            from: 120,
            below: 4_000,
        });
        let text = meta.to_metadata().unwrap();
        assert_eq!(
            text,
            "d2;l=17;s=9f3a@120/4000;retail.channel.availability=0:10,1:-1;retail.dlq=3:12345"
        );
        assert_eq!(CommitMeta::from_metadata(&text).as_ref(), Some(&meta));
        // What the version before segments committed still reads.
        let before = CommitMeta::from_metadata("d1;l=5;retail.dlq=3:12345").unwrap();
        assert_eq!((before.lineage, before.segment), (5, None));
        assert_eq!(before.delivered.scan_from("retail.dlq", 3), Some(12_346));
        // Metadata of an older version or another tool is not ours.
        assert_eq!(CommitMeta::from_metadata(""), None);
        assert_eq!(CommitMeta::from_metadata("d2;l=0;x=1"), None);
        assert_eq!(CommitMeta::from_metadata("d2;x=0:1"), None);
        assert_eq!(CommitMeta::from_metadata("d2;l=0;s=bad"), None);
        // Too many partitions for the broker's metadata limit: not sent at all.
        let mut big = CommitMeta::default();
        for p in 0..400 {
            big.delivered
                .record("retail.channel.availability", p, 1_000_000_000);
        }
        assert_eq!(big.to_metadata(), None);
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
