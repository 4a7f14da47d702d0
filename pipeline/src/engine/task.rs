//! The task and its checkpoint (DESIGN §3): a task is one `(stage, partition)`; its
//! [`Ledger`] is the one place that holds its exactly-once bookkeeping.
//!
//! | piece of bookkeeping | where it lives | what it prevents |
//! |---|---|---|
//! | next input offset | [`Ledger::next_offset`] | applying an input twice on this host |
//! | upstream stamps | [`Ledger`] (`upstream`, see [`super::stamp`]) | applying an internal record twice after its producer replayed |
//! | output tail | [`Ledger`] (`tail`, see [`super::tail`]) | producing an external output again after a crash |
//! | delivered offsets | [`Checkpoint::delivered`], from [`super::tail::Delivered`] | scanning more of the output tails than needed |
//!
//! A [`Checkpoint`] is what the ledger looks like once an epoch is acknowledged: written in the
//! task's `WriteBatch` with its state and to its changelog.

use serde::{Deserialize, Serialize};
use shelfsync_topology::Stage;

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
}

impl Checkpoint {
    /// The stored form (a versioned store value).
    pub fn encode(&self) -> Vec<u8> {
        shelfsync_operators::state::encode_value(self)
    }

    /// Reads a stored checkpoint.
    ///
    /// # Errors
    /// [`Error::State`] when the bytes are not a checkpoint.
    pub fn decode(bytes: &[u8]) -> Result<Self> {
        shelfsync_operators::state::decode_value(CHECKPOINT_KEY, bytes)
            .map_err(|e| Error::State(e.to_string()))
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

/// A task's exactly-once bookkeeping: the next input offset, the upstream marks, the output
/// tail to suppress and the checkpoint it was opened from. Nothing else in the engine decides
/// whether an input is applied or an output produced.
#[derive(Debug)]
pub(crate) struct Ledger {
    /// Records below this offset are already applied (`-1`: take whatever comes).
    next_offset: i64,
    upstream: UpstreamMarks,
    tail: TailSuppression,
    /// The delivered offsets of the checkpoint the task was opened from (where its tail scan
    /// starts).
    resumed_from: Delivered,
    /// Whether the ledger moved since the last committed epoch.
    dirty: bool,
}

impl Ledger {
    /// The ledger of a task opened from `checkpoint`.
    pub(crate) fn resume(checkpoint: Checkpoint) -> Self {
        Self {
            next_offset: checkpoint.next_offset,
            upstream: checkpoint.upstream,
            tail: TailSuppression::default(),
            resumed_from: checkpoint.delivered,
            dirty: false,
        }
    }

    /// The next input offset to apply.
    pub(crate) fn next_offset(&self) -> i64 {
        self.next_offset
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

    /// Decides whether the input at `offset` with upstream `stamp` is applied. A duplicate
    /// moves the offset on (it is consumed) without being applied.
    pub(crate) fn admit(&mut self, offset: i64, stamp: Option<&Stamp<'_>>) -> Admission {
        if offset < self.next_offset {
            return Admission::Replayed;
        }
        if stamp.is_some_and(|s| already_applied(&self.upstream, s)) {
            self.next_offset = offset + 1;
            self.dirty = true;
            return Admission::Duplicate;
        }
        Admission::Apply
    }

    /// Records the input at `offset` (with upstream `stamp`) as applied and returns the indexes
    /// of its outputs that a previous incarnation already delivered: they are not produced again.
    pub(crate) fn applied(
        &mut self,
        offset: i64,
        stamp: Option<&Stamp<'_>>,
    ) -> std::collections::BTreeSet<i32> {
        if let Some(s) = stamp {
            mark_applied(&mut self.upstream, s);
        }
        self.next_offset = offset + 1;
        self.dirty = true;
        self.tail.take(offset)
    }

    /// The checkpoint of this ledger with the engine's `delivered` offsets.
    pub(crate) fn checkpoint(&self, delivered: &Delivered) -> Checkpoint {
        Checkpoint {
            next_offset: self.next_offset,
            upstream: self.upstream.clone(),
            delivered: delivered.clone(),
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
    pub(crate) stage: Stage,
    pub(crate) partition: i32,
    /// The task's column family (stateless stages have one too: it holds the checkpoint).
    pub(crate) store: RocksStore,
    pub(crate) ledger: Ledger,
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
        let mut ledger = Ledger::resume(Checkpoint {
            next_offset: 10,
            ..Checkpoint::default()
        });
        assert_eq!(ledger.admit(9, None), Admission::Replayed);
        assert!(!ledger.is_dirty());
        assert_eq!(ledger.admit(10, Some(&stamp(100, 0))), Admission::Apply);
        assert!(ledger.applied(10, Some(&stamp(100, 0))).is_empty());
        assert_eq!(ledger.next_offset(), 11);
        // The upstream replayed its offset 100: same stamp, new input offset.
        assert_eq!(ledger.admit(11, Some(&stamp(100, 0))), Admission::Duplicate);
        assert_eq!(ledger.next_offset(), 12);
        assert_eq!(ledger.admit(12, Some(&stamp(100, 1))), Admission::Apply);
        let cp = ledger.checkpoint(&Delivered::default());
        assert_eq!(cp.upstream.get("dedupe-0"), Some(&(100, 0)));
        assert!(ledger.is_dirty());
        ledger.committed();
        assert!(!ledger.is_dirty());
    }

    #[test]
    fn outputs_already_in_the_tail_are_returned_once() {
        let mut ledger = Ledger::resume(Checkpoint::default());
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
        };
        assert_eq!(Checkpoint::decode(&cp.encode()).unwrap(), cp);
    }
}
