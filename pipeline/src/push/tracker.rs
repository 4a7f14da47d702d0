//! Per-partition acknowledgement tracking: which offsets of the availability topic still wait
//! for the marketplace, and so which offset may be committed.
//!
//! A record is *held* from the moment it is read until the update carrying it (its own, or a
//! newer version of the same SKU that replaced it) is accepted by the marketplace or
//! dead-lettered. The committable offset is the lowest held offset, or, with nothing held, the
//! offset after the last record read: everything below it is done.
//!
//! After an assignment the tracker *catches up*: records up to the partition's end at
//! assignment time are coalesced in a staging queue per channel and handed to the channels only
//! once all of them are read. A replay after a crash or a rebalance therefore sends, per SKU,
//! the newest version in the replayed range, which is at least every version the previous owner
//! may have delivered (they were all read before, so they lie below that end): an older version
//! never goes out on top of a newer one, even though offsets are committed below updates the
//! previous owner had already delivered.

use std::collections::BTreeSet;

use super::queue::CoalescingQueue;

/// One assigned partition.
#[derive(Debug)]
pub struct PartitionTracker {
    /// Which assignment this is (covers of earlier ones are stale).
    pub generation: u32,
    held: BTreeSet<i64>,
    next: Option<i64>,
    catch_up_to: Option<i64>,
    /// Per channel, the updates read while catching up.
    pub staging: Vec<CoalescingQueue>,
    committed: Option<i64>,
    /// Set while the partition is being revoked: its failed updates are not queued again.
    pub revoking: bool,
}

impl PartitionTracker {
    /// A tracker for a new assignment. `catch_up_to`: the partition's end offset at assignment
    /// when there are records to replay from the committed offset, else `None`.
    pub fn new(generation: u32, channels: usize, catch_up_to: Option<i64>) -> Self {
        Self {
            generation,
            held: BTreeSet::new(),
            next: None,
            catch_up_to,
            staging: (0..channels).map(|_| CoalescingQueue::new()).collect(),
            committed: None,
            revoking: false,
        }
    }

    /// Notes that `offset` was read. `false` when it was read before (a repeat to ignore).
    pub fn read(&mut self, offset: i64) -> bool {
        if self.next.is_some_and(|n| offset < n) {
            return false;
        }
        self.next = Some(offset + 1);
        true
    }

    /// Holds `offset` until [`PartitionTracker::ack`].
    pub fn hold(&mut self, offset: i64) {
        self.held.insert(offset);
    }

    /// Releases `offset`.
    pub fn ack(&mut self, offset: i64) {
        self.held.remove(&offset);
    }

    /// Offsets held.
    pub fn held(&self) -> usize {
        self.held.len()
    }

    /// The offset that may be committed: the lowest held one, else the one after the last
    /// read; `None` before anything was read.
    pub fn commit_point(&self) -> Option<i64> {
        self.held.first().copied().or(self.next)
    }

    /// The commit point when it moved past the last committed offset.
    pub fn to_commit(&self) -> Option<i64> {
        self.commit_point()
            .filter(|p| self.committed.is_none_or(|c| *p > c))
    }

    /// The offset after the last record read; `None` before anything was read.
    pub fn read_up_to(&self) -> Option<i64> {
        self.next
    }

    /// The last offset committed by this assignment, if any.
    pub fn committed_offset(&self) -> Option<i64> {
        self.committed
    }

    /// Notes a successful commit of `offset`.
    pub fn committed(&mut self, offset: i64) {
        self.committed = Some(self.committed.map_or(offset, |c| c.max(offset)));
    }

    /// Whether records are still being replayed into the staging queues.
    pub fn catching_up(&self) -> bool {
        self.catch_up_to.is_some()
    }

    /// Whether reading `offset` completes the catch-up.
    pub fn caught_up_with(&self, offset: i64) -> bool {
        self.catch_up_to.is_some_and(|end| offset + 1 >= end)
    }

    /// Ends the catch-up: the staged updates, per channel, in service order.
    pub fn finish_catch_up(&mut self) -> Vec<Vec<super::queue::Queued>> {
        self.catch_up_to = None;
        self.staging
            .iter_mut()
            .map(CoalescingQueue::drain)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::push::queue::{Cover, Update};

    #[test]
    fn commits_only_below_the_first_update_not_yet_accepted() {
        let mut t = PartitionTracker::new(1, 1, None);
        assert_eq!(t.commit_point(), None);
        for offset in 10..15 {
            assert!(t.read(offset));
            t.hold(offset);
        }
        assert_eq!(t.to_commit(), Some(10));
        // 11 and 13 accepted: 10 still waits, nothing moves.
        t.ack(11);
        t.ack(13);
        assert_eq!(t.commit_point(), Some(10));
        t.ack(10);
        assert_eq!(t.commit_point(), Some(12));
        t.committed(12);
        assert_eq!(t.to_commit(), None);
        t.ack(12);
        t.ack(14);
        assert_eq!(t.to_commit(), Some(15));
        // A record for no pushed channel is never held: the point moves past it.
        assert!(t.read(15));
        assert_eq!(t.commit_point(), Some(16));
        // A repeat is ignored.
        assert!(!t.read(12));
        assert_eq!(t.held(), 0);
    }

    #[test]
    fn catch_up_stages_until_the_end_at_assignment() {
        let mut t = PartitionTracker::new(2, 2, Some(3));
        assert!(t.catching_up());
        let cover = |offset| {
            vec![Cover {
                partition: 0,
                generation: 2,
                offset,
            }]
        };
        let update = |version, quantity| Update {
            sku: "A".into(),
            quantity,
            version,
            event_id: String::new(),
            event_time: 0,
            trace: Vec::new(),
        };
        for (offset, version) in [(0, 1), (1, 2), (2, 3)] {
            assert!(t.read(offset));
            t.hold(offset);
            t.staging[1].offer(update(version, version), cover(offset));
            assert_eq!(t.caught_up_with(offset), offset == 2);
        }
        let staged = t.finish_catch_up();
        assert!(!t.catching_up());
        assert!(staged[0].is_empty());
        assert_eq!(staged[1].len(), 1);
        assert_eq!(staged[1][0].update.version, 3);
        assert_eq!(staged[1][0].covers.len(), 3);
    }
}
