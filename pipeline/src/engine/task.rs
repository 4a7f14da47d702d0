//! The task and its checkpoint (DESIGN §3): a task is one `(stage, partition)`; its
//! [`Ledger`] is the one place that holds its exactly-once bookkeeping.
//!
//! | piece of bookkeeping | where it lives | what it prevents |
//! |---|---|---|
//! | next input offset | [`Ledger::next_offset`] | applying an input twice on this host |
//! | upstream stamps | [`Ledger`] (`upstream`, see [`super::stamp`]) | applying an internal record twice after its producer replayed |
//! | output tail | [`Ledger`] (`tail`, see [`super::tail`]) | producing an external output again after a crash |
//! | delivered offsets | [`Checkpoint::delivered`], from [`super::tail::Delivered`] | scanning more of the output tails than needed |
//! | application step | `Ledger` (`next_step`) | stamps that go backwards when an aligning task applies records out of offset order |
//! | upstream progress | `Ledger` (`marks`, see [`super::progress`]) | an aligning task applying a record before an upstream has passed it |
//!
//! A [`Checkpoint`] is what the ledger looks like once an epoch is acknowledged: written in the
//! task's `WriteBatch` with its state and to its changelog.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use shelfsync_topology::Stage;

use super::align::Aligner;
use super::progress::Watermark;
use super::segment::Segment;
use super::stamp::{already_applied, mark_applied, Stamp, UpstreamMarks};
use super::tail::{Delivered, TailSuppression};
use crate::error::{Error, Result};
use crate::rocks_store::{RocksStore, CHECKPOINT_KEY};

/// What a task has durably done, stored in its column family (and its changelog).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The next input offset to process.
    pub next_offset: i64,
    /// Per upstream task, the highest `(offset, index)` stamp applied.
    pub upstream: UpstreamMarks,
    /// Per external output topic and partition, the last offset acknowledged before the epoch
    /// of this checkpoint started: anything this task wrote after the checkpoint lies above.
    pub delivered: Delivered,
    /// The step of the next applied input: what its outputs are stamped with. An input's
    /// offset for most tasks; a counter for an aligning task, which applies inputs out of
    /// offset order.
    pub next_step: i64,
    /// Per upstream task, its last progress mark (event time, ms) read before `next_offset`.
    pub marks: BTreeMap<String, i64>,
    /// The task's lineage: 0 for a task that has run since before lineages existed, else the
    /// wall-clock time (ms) when it started from nothing or found its input topic recreated.
    /// Its stamps carry it (`task@lineage`), so that what a new lineage writes never reads as
    /// a repeat of what an earlier one wrote at the same offsets.
    pub lineage: i64,
    /// `(offset, timestamp)` of the last input record consumed: at open, a partition whose
    /// record at that offset is gone or different is a new incarnation of the topic.
    pub last_input: Option<(i64, i64)>,
}

/// The checkpoint as written before lineages (issue 15 #5).
#[derive(Deserialize)]
struct CheckpointV2 {
    next_offset: i64,
    upstream: UpstreamMarks,
    delivered: Delivered,
    next_step: i64,
    marks: BTreeMap<String, i64>,
}

/// The checkpoint as written before steps and progress marks existed.
#[derive(Deserialize)]
struct CheckpointV1 {
    next_offset: i64,
    upstream: UpstreamMarks,
    delivered: Delivered,
}

impl Checkpoint {
    /// The stored form (a versioned store value).
    pub fn encode(&self) -> Vec<u8> {
        shelfsync_operators::state::encode_value(self)
    }

    /// Reads a stored checkpoint, also in the form written before steps and marks (its step is
    /// its offset, which every stamp it wrote is below).
    ///
    /// # Errors
    /// [`Error::State`] when the bytes are not a checkpoint.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        use shelfsync_operators::state::decode_value;
        if let Ok(cp) = decode_value::<Self>(CHECKPOINT_KEY, bytes) {
            return Ok(cp);
        }
        if let Ok(v2) = decode_value::<CheckpointV2>(CHECKPOINT_KEY, bytes) {
            return Ok(Self {
                next_offset: v2.next_offset,
                upstream: v2.upstream,
                delivered: v2.delivered,
                next_step: v2.next_step,
                marks: v2.marks,
                lineage: 0,
                last_input: None,
            });
        }
        match decode_value::<CheckpointV1>(CHECKPOINT_KEY, bytes) {
            Ok(v1) => Ok(Self {
                next_offset: v1.next_offset,
                upstream: v1.upstream,
                delivered: v1.delivered,
                next_step: v1.next_offset,
                marks: BTreeMap::new(),
                lineage: 0,
                last_input: None,
            }),
            Err(e) => Err(Error::State(e.to_string())),
        }
    }
}

/// What to do with an input record, decided by [`Ledger::admit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Below the checkpoint: applied in an earlier epoch; skip silently.
    Replayed,
    /// Its upstream stamp is at or below the upstream's mark: a repeat; skip and count it.
    Duplicate,
    /// New: run the stage on it.
    Apply,
}

/// A task's exactly-once bookkeeping: the next input offset and application step, the upstream
/// stamps and progress marks, the output tail to suppress and the checkpoint it was opened
/// from. Nothing else in the engine decides whether an input is applied or an output produced.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Records below this offset are already applied or held (`-1`: take whatever comes).
    next_offset: i64,
    /// The step of the next applied input (see [`Checkpoint::next_step`]).
    next_step: i64,
    upstream: UpstreamMarks,
    /// Per upstream task, its last progress mark.
    marks: BTreeMap<String, i64>,
    tail: TailSuppression,
    /// The delivered offsets of the checkpoint the task was opened from (where its tail scan
    /// starts).
    resumed_from: Delivered,
    /// Whether the ledger moved since the last committed epoch.
    dirty: bool,
    /// See [`Checkpoint::lineage`].
    lineage: i64,
    /// See [`Checkpoint::last_input`].
    last_input: Option<(i64, i64)>,
}

impl Ledger {
    /// The ledger of a task opened from `checkpoint`. Only an aligning task keeps a step
    /// counter of its own; any other task's step is its input offset.
    pub(crate) fn resume(checkpoint: Checkpoint, aligning: bool) -> Self {
        Self {
            next_offset: checkpoint.next_offset,
            next_step: if aligning {
                checkpoint.next_step.max(0)
            } else {
                checkpoint.next_offset
            },
            upstream: checkpoint.upstream,
            marks: checkpoint.marks,
            tail: TailSuppression::default(),
            resumed_from: checkpoint.delivered,
            dirty: false,
            lineage: checkpoint.lineage,
            last_input: checkpoint.last_input,
        }
    }

    /// The input record at `offset` with timestamp `ts` is read (not a replay).
    pub(crate) fn seen(&mut self, offset: i64, ts: i64) {
        self.last_input = Some((offset, ts));
    }

    /// The next input offset to apply.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
    }

    /// The step the next applied input gets: outputs stamped at or above it were not produced
    /// before the checkpoint.
    pub(crate) fn next_step(&self) -> i64 {
        self.next_step
    }

    /// The upstream tasks' last progress marks.
    pub(crate) fn marks(&self) -> &BTreeMap<String, i64> {
        &self.marks
    }

    /// Whether anything moved since the last committed epoch.
    pub(crate) fn is_dirty(&self) -> bool {
        self.dirty
    }

    /// The delivered offsets the task was opened with.
    pub(crate) fn resumed_from(&self) -> &Delivered {
        &self.resumed_from
    }

    /// The output tail found by the scan (see [`super::tail`]).
    pub(crate) fn tail_mut(&mut self) -> &mut TailSuppression {
        &mut self.tail
    }

    /// How many already-delivered outputs are still to be suppressed.
    pub(crate) fn suppressed(&self) -> usize {
        self.tail.len()
    }

    /// Decides whether the input at `offset` with upstream `stamp` is applied. A duplicate (at
    /// or below what was applied, or `held` — the last stamp still waiting to be applied)
    /// moves the offset on (it is consumed) without being applied.
    pub(crate) fn admit(
        &mut self,
        offset: i64,
        stamp: Option<&Stamp<'_>>,
        held: Option<(i64, i32)>,
    ) -> Admission {
        if offset < self.next_offset {
            return Admission::Replayed;
        }
        let repeat = stamp.is_some_and(|s| {
            already_applied(&self.upstream, s) || held.is_some_and(|h| s.position() <= h)
        });
        if repeat {
            self.consumed(offset);
            return Admission::Duplicate;
        }
        Admission::Apply
    }

    /// The input at `offset` is consumed: applied, held, or a progress mark.
    pub(crate) fn consumed(&mut self, offset: i64) {
        self.next_offset = offset + 1;
        self.dirty = true;
    }

    /// Records `upstream`'s progress mark.
    pub(crate) fn mark(&mut self, upstream: &str, event_time: i64) {
        self.marks.insert(upstream.to_string(), event_time);
        self.dirty = true;
    }

    /// The step of the input about to be applied: `offset` itself, or (aligning) the next
    /// value of the task's counter.
    pub(crate) fn take_step(&mut self, aligning: bool, offset: i64) -> i64 {
        let step = if aligning { self.next_step } else { offset };
        self.next_step = step + 1;
        step
    }

    /// Records the input of `step` (with upstream `stamp`) as applied and returns the indexes
    /// of its outputs that a previous incarnation already delivered: they are not produced again.
    pub(crate) fn applied(
        &mut self,
        step: i64,
        stamp: Option<&Stamp<'_>>,
    ) -> std::collections::BTreeSet<i32> {
        if let Some(s) = stamp {
            mark_applied(&mut self.upstream, s);
        }
        self.dirty = true;
        self.tail.take(step)
    }

    /// The checkpoint of this ledger with the engine's `delivered` offsets — or, while part of
    /// the output tail found at open is still to be matched, with the offsets it resumed from:
    /// the next scan must start where this one did, or a second crash would repeat the outputs
    /// not matched yet.
    pub(crate) fn checkpoint(&self, delivered: &Delivered) -> Checkpoint {
        let delivered = if self.tail.len() > 0 {
            &self.resumed_from
        } else {
            delivered
        };
        Checkpoint {
            next_offset: self.next_offset,
            upstream: self.upstream.clone(),
            delivered: delivered.clone(),
            next_step: self.next_step,
            marks: self.marks.clone(),
            lineage: self.lineage,
            last_input: self.last_input,
        }
    }

    /// The epoch that wrote the last checkpoint is committed.
    pub(crate) fn committed(&mut self) {
        self.dirty = false;
    }
}

/// One `(stage, partition)`: its store and its ledger.
pub(crate) struct Task {
    /// `<stage>-<partition>`, e.g. `inventory-3`.
    pub(crate) name: String,
    /// What its outputs' stamps name it: [`stamp_name`] of its name and lineage.
    pub(crate) stamp_name: String,
    pub(crate) stage: Stage,
    pub(crate) partition: i32,
    /// The task's column family (stateless stages have one too: it holds the checkpoint).
    pub(crate) store: RocksStore,
    pub(crate) ledger: Ledger,
    /// The queues of an aligning task (`None`: it applies records as they come).
    pub(crate) aligner: Option<Aligner>,
    /// Its upstream tasks (whose progress it relays or waits for).
    pub(crate) upstreams: Vec<String>,
    /// What it needs to publish its own progress.
    pub(crate) watermark: Watermark,
    /// A stateful task's changelog segment, carried in its commits (see [`super::segment`]).
    pub(crate) segment: Option<Segment>,
}

/// The name a task's stamps carry: its name, followed by `@lineage` unless the lineage is 0
/// (see [`Checkpoint::lineage`]).
pub(crate) fn stamp_name(name: &str, lineage: i64) -> String {
    if lineage == 0 {
        name.to_string()
    } else {
        format!("{name}@{lineage}")
    }
}

/// The task name in a stamp's task field (without its `@lineage`).
pub(crate) fn base_name(stamped: &str) -> &str {
    stamped.split_once('@').map_or(stamped, |(base, _)| base)
}

/// The name of the task of `stage` on input partition `partition`, e.g. `inventory-3`.
pub fn task_name(stage: Stage, partition: i32) -> String {
    format!("{}-{partition}", stage.name())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(offset: i64, index: i32) -> Stamp<'static> {
        Stamp {
            task: "dedupe-0",
            offset,
            index,
        }
    }

    #[test]
    fn inputs_below_the_checkpoint_are_replays_and_repeated_stamps_duplicates() {
        let mut ledger = Ledger::resume(
            Checkpoint {
                next_offset: 10,
                ..Checkpoint::default()
            },
            false,
        );
        assert_eq!(ledger.admit(9, None, None), Admission::Replayed);
        assert!(!ledger.is_dirty());
        assert_eq!(
            ledger.admit(10, Some(&stamp(100, 0)), None),
            Admission::Apply
        );
        ledger.consumed(10);
        let step = ledger.take_step(false, 10);
        assert_eq!(step, 10);
        assert!(ledger.applied(step, Some(&stamp(100, 0))).is_empty());
        assert_eq!(ledger.next_offset(), 11);
        // The upstream replayed its offset 100: same stamp, new input offset.
        assert_eq!(
            ledger.admit(11, Some(&stamp(100, 0)), None),
            Admission::Duplicate
        );
        assert_eq!(ledger.next_offset(), 12);
        assert_eq!(
            ledger.admit(12, Some(&stamp(100, 1)), None),
            Admission::Apply
        );
        // A repeat of a record still held (not applied yet) is a duplicate too.
        assert_eq!(
            ledger.admit(12, Some(&stamp(100, 1)), Some((100, 1))),
            Admission::Duplicate
        );
        let cp = ledger.checkpoint(&Delivered::default());
        assert_eq!(cp.upstream.get("dedupe-0"), Some(&(100, 0)));
        assert!(ledger.is_dirty());
        ledger.committed();
        assert!(!ledger.is_dirty());
    }

    #[test]
    fn a_checkpoint_taken_while_suppressing_keeps_the_delivered_offsets_it_resumed_from() {
        // Issue 15 #1: the process-wide delivered offsets start at the output topics' end; a
        // checkpoint carrying them while part of the previous incarnation's tail is still
        // unmatched would start the next scan past it, and a second crash would repeat those
        // outputs.
        let mut resumed = Delivered::default();
        resumed.record("availability", 0, 10);
        let mut ledger = Ledger::resume(
            Checkpoint {
                next_offset: 5,
                delivered: resumed.clone(),
                ..Checkpoint::default()
            },
            false,
        );
        ledger.tail_mut().insert(5, 0);
        ledger.tail_mut().insert(6, 0);
        let mut now = Delivered::default();
        now.record("availability", 0, 99);
        assert!(ledger.applied(5, None).contains(&0));
        assert_eq!(
            ledger.checkpoint(&now).delivered,
            resumed,
            "still suppressing"
        );
        assert!(ledger.applied(6, None).contains(&0));
        assert_eq!(ledger.checkpoint(&now).delivered, now, "tail matched");
    }

    #[test]
    fn outputs_already_in_the_tail_are_returned_once() {
        let mut ledger = Ledger::resume(Checkpoint::default(), false);
        ledger.tail_mut().insert(5, 0);
        ledger.tail_mut().insert(5, 2);
        ledger.tail_mut().insert(7, 0);
        assert_eq!(ledger.suppressed(), 3);
        assert!(ledger.applied(4, None).is_empty());
        assert_eq!(
            ledger.applied(5, None).into_iter().collect::<Vec<_>>(),
            [0, 2]
        );
        assert_eq!(ledger.suppressed(), 1);
        assert!(ledger.applied(6, None).is_empty());
        assert_eq!(ledger.applied(7, None).len(), 1);
        assert_eq!(ledger.suppressed(), 0);
    }

    #[test]
    fn a_checkpoint_round_trips() {
        let mut delivered = Delivered::default();
        delivered.record("availability", 2, 41);
        let cp = Checkpoint {
            next_offset: 7,
            upstream: [("dedupe-1".to_string(), (3, 1))].into(),
            delivered,
            next_step: 40,
            marks: [("dedupe-1".to_string(), 1_000)].into(),
            lineage: 1_765_000_000_000,
            last_input: Some((6, 1_764_999_999_000)),
        };
        assert_eq!(Checkpoint::decode(&cp.encode()).unwrap(), cp);
    }

    #[test]
    fn a_checkpoint_written_before_lineages_still_reads_as_lineage_0() {
        #[derive(Serialize)]
        struct V2 {
            next_offset: i64,
            upstream: UpstreamMarks,
            delivered: Delivered,
            next_step: i64,
            marks: BTreeMap<String, i64>,
        }
        let old = shelfsync_operators::state::encode_value(&V2 {
            next_offset: 7,
            upstream: [("dedupe-1".to_string(), (3, 1))].into(),
            delivered: Delivered::default(),
            next_step: 30,
            marks: [("dedupe-1".to_string(), 1_000)].into(),
        });
        let cp = Checkpoint::decode(&old).unwrap();
        assert_eq!((cp.next_offset, cp.next_step, cp.lineage), (7, 30, 0));
        assert_eq!(cp.last_input, None);
        assert_eq!(cp.marks.get("dedupe-1"), Some(&1_000));
    }

    #[test]
    fn stamps_of_a_new_lineage_are_not_repeats_of_the_old_one() {
        let mut ledger = Ledger::resume(Checkpoint::default(), false);
        let old = Stamp {
            task: "dedupe-0",
            offset: 500,
            index: 0,
        };
        assert_eq!(ledger.admit(0, Some(&old), None), Admission::Apply);
        ledger.consumed(0);
        ledger.applied(0, Some(&old));
        // The upstream's input topic was recreated: its offsets start again, in a new lineage.
        let name = stamp_name("dedupe-0", 1_765_000_000_000);
        assert_eq!(base_name(&name), "dedupe-0");
        let new = Stamp {
            task: &name,
            offset: 3,
            index: 0,
        };
        assert_eq!(ledger.admit(1, Some(&new), None), Admission::Apply);
        ledger.consumed(1);
        ledger.applied(1, Some(&new));
        // A late replay of the old lineage is still a repeat.
        assert_eq!(ledger.admit(2, Some(&old), None), Admission::Duplicate);
        assert_eq!(ledger.admit(3, Some(&new), None), Admission::Duplicate);
    }

    #[test]
    fn a_checkpoint_written_before_steps_and_marks_still_reads() {
        #[derive(Serialize)]
        struct V1 {
            next_offset: i64,
            upstream: UpstreamMarks,
            delivered: Delivered,
        }
        let old = shelfsync_operators::state::encode_value(&V1 {
            next_offset: 7,
            upstream: [("dedupe-1".to_string(), (3, 1))].into(),
            delivered: Delivered::default(),
        });
        let cp = Checkpoint::decode(&old).unwrap();
        assert_eq!(cp.next_offset, 7);
        assert_eq!(
            cp.next_step, 7,
            "steps continue above every offset stamped before"
        );
        assert!(cp.marks.is_empty());
    }

    #[test]
    fn an_aligning_task_counts_steps_of_its_own() {
        let mut ledger = Ledger::resume(
            Checkpoint {
                next_offset: 50,
                next_step: 20,
                ..Checkpoint::default()
            },
            true,
        );
        assert_eq!(ledger.next_step(), 20);
        assert_eq!(ledger.take_step(true, 57), 20);
        assert_eq!(ledger.take_step(true, 51), 21);
        let other = Ledger::resume(
            Checkpoint {
                next_offset: 50,
                next_step: 20,
                ..Checkpoint::default()
            },
            false,
        );
        assert_eq!(other.next_step(), 50);
    }
}
