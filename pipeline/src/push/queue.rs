//! The per-channel coalescing queue: at most one waiting update per SKU, the newest version.
//!
//! An update that arrives for a SKU already waiting replaces the waiting one when it is newer
//! (the older one is *coalesced*: it will never be sent) and keeps its place in line, so a SKU
//! that changes all the time is not starved. An update at or below the waiting version changes
//! nothing but is remembered as covered by it. Either way the input offsets travel with the
//! surviving update ([`Cover`]s): they count as delivered once it is.
//!
//! Order of service: stock-outs (quantity 0) first, then everything else, each oldest first.
//! An update waiting out a retry delay (`not_before`) or whose SKU has a request in flight is
//! skipped, not removed.

use std::collections::{BTreeSet, HashMap};
use std::time::Instant;

/// One availability update for one SKU of the queue's channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    /// The seller SKU.
    pub sku: String,
    /// The absolute quantity to publish.
    pub quantity: i64,
    /// The per-(channel, SKU) version; only grows.
    pub version: i64,
    /// The event's deterministic id (kept for the dead-letter record).
    pub event_id: String,
    /// Stream time of the change, epoch ms (drives the freshness gauge).
    pub event_time: i64,
    /// The availability record's correlation id and trace context headers, for its dead letter.
    pub trace: Vec<(&'static str, Vec<u8>)>,
}

impl Update {
    /// Whether this update takes the SKU off sale (it jumps the queue).
    pub fn is_stock_out(&self) -> bool {
        self.quantity <= 0
    }
}

/// An input record an update stands for: acknowledged (committable) once the update carrying
/// it is accepted by the marketplace or dead-lettered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cover {
    /// Partition of the availability topic.
    pub partition: i32,
    /// Which assignment of the partition read it (a record read before a revocation must not
    /// acknowledge the same offset read again after the partition came back).
    pub generation: u32,
    /// Offset of the record.
    pub offset: i64,
}

/// An update waiting in the queue, with what it covers and its retry state.
#[derive(Debug, Clone)]
pub struct Queued {
    /// The newest update of its SKU.
    pub update: Update,
    /// The records it stands for (its own and those of every update it replaced).
    pub covers: Vec<Cover>,
    /// Failed tries so far (5xx, timeout, connection error).
    pub attempts: u32,
    /// Not to be sent before this instant (retry delay).
    pub not_before: Option<Instant>,
    /// Stream time of the oldest change it stands for, epoch ms.
    pub oldest_event_time: i64,
    seq: u64,
}

impl Queued {
    /// A fresh entry for `update` covering `covers`.
    pub fn new(update: Update, covers: Vec<Cover>) -> Self {
        Self {
            oldest_event_time: update.event_time,
            update,
            covers,
            attempts: 0,
            not_before: None,
            seq: 0,
        }
    }

    fn order_key(&self) -> (bool, u64, String) {
        (
            !self.update.is_stock_out(),
            self.seq,
            self.update.sku.clone(),
        )
    }
}

/// What [`CoalescingQueue::offer`] did with an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offered {
    /// Queued; nothing was waiting for the SKU.
    Queued,
    /// Replaced an older waiting update of the SKU (which is coalesced away).
    Replaced,
    /// A newer or equal version was already waiting: the offered update is coalesced away.
    Superseded,
}

/// The queue of one channel. Not thread-safe by itself: the sink keeps it behind its lock.
#[derive(Debug, Default)]
pub struct CoalescingQueue {
    entries: HashMap<String, Queued>,
    order: BTreeSet<(bool, u64, String)>,
    next_seq: u64,
}

impl CoalescingQueue {
    /// An empty queue.
    pub fn new() -> Self {
        Self::default()
    }

    /// Updates waiting.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The version waiting for `sku`, if any.
    pub fn version_of(&self, sku: &str) -> Option<i64> {
        self.entries.get(sku).map(|e| e.update.version)
    }

    /// Offers a new update with the records it covers (see the module docs).
    pub fn offer(&mut self, update: Update, covers: Vec<Cover>) -> Offered {
        self.put(Queued::new(update, covers), false)
    }

    /// Offers an entry built elsewhere (a partition's catch-up buffer), keeping its covers, age
    /// and retry state; it goes in line as a new arrival.
    pub fn offer_entry(&mut self, entry: Queued) -> Offered {
        self.put(entry, false)
    }

    /// Puts back an entry taken by [`CoalescingQueue::take`] whose request failed: it keeps its
    /// place in line (and its retry state). When a newer update of the SKU arrived meanwhile,
    /// that one stays and takes over the covers.
    pub fn requeue(&mut self, entry: Queued) -> Offered {
        self.put(entry, true)
    }

    fn put(&mut self, mut entry: Queued, keep_seq: bool) -> Offered {
        let sku = entry.update.sku.clone();
        if let Some(existing) = self.entries.get_mut(&sku) {
            if existing.update.version >= entry.update.version {
                existing.covers.append(&mut entry.covers);
                existing.oldest_event_time =
                    existing.oldest_event_time.min(entry.oldest_event_time);
                if keep_seq && entry.seq < existing.seq {
                    // A failed older update was in line before the newer one: the newer one
                    // takes its place.
                    self.order.remove(&existing.order_key());
                    existing.seq = entry.seq;
                    self.order.insert(existing.order_key());
                }
                return Offered::Superseded;
            }
            // The offered one is newer: it replaces the waiting one and keeps its place.
            if let Some(mut old) = self.entries.remove(&sku) {
                self.order.remove(&old.order_key());
                entry.covers.append(&mut old.covers);
                entry.oldest_event_time = entry.oldest_event_time.min(old.oldest_event_time);
                entry.seq = if keep_seq {
                    entry.seq.min(old.seq)
                } else {
                    old.seq
                };
                // A retry delay belongs to the channel's trouble, not to the payload: keep it.
                entry.not_before = entry.not_before.max(old.not_before);
            }
            self.order.insert(entry.order_key());
            self.entries.insert(sku, entry);
            return Offered::Replaced;
        }
        if !keep_seq {
            entry.seq = self.next_seq;
            self.next_seq += 1;
        }
        self.order.insert(entry.order_key());
        self.entries.insert(sku, entry);
        Offered::Queued
    }

    /// Whether the first sendable entry (see [`CoalescingQueue::take`]) is a stock-out; `None`
    /// when nothing is sendable.
    pub fn first_ready(&self, now: Instant, busy: impl Fn(&str) -> bool) -> Option<bool> {
        self.ready(now, &busy).next().map(|sku| {
            self.entries
                .get(sku)
                .is_some_and(|e| e.update.is_stock_out())
        })
    }

    fn ready<'a>(
        &'a self,
        now: Instant,
        busy: &'a impl Fn(&str) -> bool,
    ) -> impl Iterator<Item = &'a str> + 'a {
        self.order
            .iter()
            .map(|(_, _, sku)| sku.as_str())
            .filter(move |sku| {
                !busy(sku)
                    && self
                        .entries
                        .get(*sku)
                        .is_some_and(|e| e.not_before.is_none_or(|t| t <= now))
            })
    }

    /// Removes and returns up to `max` sendable entries in service order: stock-outs first,
    /// then oldest first, skipping entries waiting out a retry delay and SKUs for which
    /// `busy(sku)` (a request in flight).
    pub fn take(&mut self, max: usize, now: Instant, busy: impl Fn(&str) -> bool) -> Vec<Queued> {
        let skus: Vec<String> = self
            .ready(now, &busy)
            .take(max)
            .map(str::to_string)
            .collect();
        let mut out = Vec::with_capacity(skus.len());
        for sku in skus {
            if let Some(entry) = self.entries.remove(&sku) {
                self.order.remove(&entry.order_key());
                out.push(entry);
            }
        }
        out
    }

    /// Removes every entry whose covers all come from `partition` (a revoked partition: its
    /// next owner sends them). Entries covering other partitions too lose only those covers.
    /// Returns how many entries were dropped.
    pub fn drop_partition(&mut self, partition: i32) -> usize {
        let mut dropped = Vec::new();
        for (sku, entry) in &mut self.entries {
            entry.covers.retain(|c| c.partition != partition);
            if entry.covers.is_empty() {
                dropped.push(sku.clone());
            }
        }
        for sku in &dropped {
            if let Some(entry) = self.entries.remove(sku) {
                self.order.remove(&entry.order_key());
            }
        }
        dropped.len()
    }

    /// Removes and returns every entry in service order (a partition's catch-up buffer being
    /// handed to its channels).
    pub fn drain(&mut self) -> Vec<Queued> {
        let order = std::mem::take(&mut self.order);
        let mut out = Vec::with_capacity(order.len());
        for (_, _, sku) in order {
            if let Some(entry) = self.entries.remove(&sku) {
                out.push(entry);
            }
        }
        out
    }

    /// Stream time of the oldest change waiting, epoch ms.
    pub fn oldest_event_time(&self) -> Option<i64> {
        self.entries.values().map(|e| e.oldest_event_time).min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn update(sku: &str, quantity: i64, version: i64) -> Update {
        Update {
            sku: sku.to_string(),
            quantity,
            version,
            event_id: format!("{sku}-{version}"),
            event_time: 1000 + version,
            trace: Vec::new(),
        }
    }

    fn cover(offset: i64) -> Vec<Cover> {
        vec![Cover {
            partition: 0,
            generation: 1,
            offset,
        }]
    }

    fn never(_: &str) -> bool {
        false
    }

    fn skus(entries: &[Queued]) -> Vec<(&str, i64)> {
        entries
            .iter()
            .map(|e| (e.update.sku.as_str(), e.update.version))
            .collect()
    }

    #[test]
    fn only_the_newest_version_per_sku_waits_and_it_carries_every_offset() {
        let mut q = CoalescingQueue::new();
        let now = Instant::now();
        assert_eq!(q.offer(update("A", 5, 1), cover(0)), Offered::Queued);
        assert_eq!(q.offer(update("B", 5, 1), cover(1)), Offered::Queued);
        assert_eq!(q.offer(update("A", 4, 2), cover(2)), Offered::Replaced);
        assert_eq!(q.offer(update("A", 3, 3), cover(3)), Offered::Replaced);
        // A replayed older version changes nothing but is covered by the waiting one.
        assert_eq!(q.offer(update("A", 5, 1), cover(4)), Offered::Superseded);
        assert_eq!(q.offer(update("A", 3, 3), cover(5)), Offered::Superseded);
        assert_eq!(q.len(), 2);
        assert_eq!(q.version_of("A"), Some(3));
        let taken = q.take(10, now, never);
        // A keeps its place in line (first offered), at its newest version.
        assert_eq!(skus(&taken), [("A", 3), ("B", 1)]);
        let mut offsets: Vec<i64> = taken[0].covers.iter().map(|c| c.offset).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, [0, 2, 3, 4, 5]);
        assert_eq!(taken[0].oldest_event_time, 1001);
        assert!(q.is_empty());
    }

    #[test]
    fn stock_outs_jump_the_queue() {
        let mut q = CoalescingQueue::new();
        let now = Instant::now();
        for i in 0..5 {
            q.offer(update(&format!("S{i}"), 10, 1), cover(i));
        }
        q.offer(update("Z", 0, 1), cover(5));
        // S3 goes out of stock: it jumps ahead of everything in stock, and among the stock-outs
        // it keeps its (older) place in line, ahead of Z.
        q.offer(update("S3", 0, 2), cover(6));
        assert_eq!(q.first_ready(now, never), Some(true));
        let taken = q.take(3, now, never);
        assert_eq!(skus(&taken), [("S3", 2), ("Z", 1), ("S0", 1)]);
        // Back in stock: a restocked SKU loses its priority but keeps its age.
        q.offer(update("S9", 0, 1), cover(7));
        q.offer(update("S9", 7, 2), cover(8));
        assert_eq!(q.first_ready(now, never), Some(false));
        let taken = q.take(10, now, never);
        assert_eq!(skus(&taken), [("S1", 1), ("S2", 1), ("S4", 1), ("S9", 2)]);
    }

    #[test]
    fn busy_skus_and_retry_delays_are_skipped_not_lost() {
        let mut q = CoalescingQueue::new();
        let now = Instant::now();
        q.offer(update("A", 1, 1), cover(0));
        q.offer(update("B", 1, 1), cover(1));
        q.offer(update("C", 1, 1), cover(2));
        let mut b = q.take(1, now, |sku| sku == "A");
        assert_eq!(skus(&b), [("B", 1)]);
        // B failed: back with a retry delay, in its old place.
        b[0].attempts = 1;
        b[0].not_before = Some(now + Duration::from_secs(1));
        assert_eq!(q.requeue(b.remove(0)), Offered::Queued);
        assert_eq!(skus(&q.take(10, now, never)), [("A", 1), ("C", 1)]);
        assert_eq!(q.first_ready(now, never), None);
        let later = now + Duration::from_secs(1);
        let b = q.take(10, later, never);
        assert_eq!(skus(&b), [("B", 1)]);
        assert_eq!(b[0].attempts, 1);
    }

    #[test]
    fn a_failed_update_is_coalesced_into_a_newer_one_that_arrived_meanwhile() {
        let mut q = CoalescingQueue::new();
        let now = Instant::now();
        q.offer(update("X", 1, 1), cover(0));
        q.offer(update("A", 1, 1), cover(1));
        let mut inflight = q.take(1, now, never);
        assert_eq!(skus(&inflight), [("X", 1)]);
        // While v1 is in flight, v2 arrives (it waits behind A).
        q.offer(update("X", 2, 2), cover(2));
        // v1 fails: it must not be sent again, v2 covers it and takes its place in line.
        assert_eq!(q.requeue(inflight.remove(0)), Offered::Superseded);
        let taken = q.take(10, now, never);
        assert_eq!(skus(&taken), [("X", 2), ("A", 1)]);
        let offsets: BTreeSet<i64> = taken[0].covers.iter().map(|c| c.offset).collect();
        assert_eq!(offsets, BTreeSet::from([0, 2]));
    }

    #[test]
    fn revoked_partitions_are_dropped_and_drain_keeps_service_order() {
        let mut q = CoalescingQueue::new();
        let on = |partition, offset| {
            vec![Cover {
                partition,
                generation: 1,
                offset,
            }]
        };
        q.offer(update("A", 1, 1), on(0, 0));
        q.offer(update("B", 1, 1), on(1, 0));
        q.offer(update("C", 0, 1), on(1, 1));
        assert_eq!(q.drop_partition(1), 2);
        q.offer(update("D", 0, 1), on(0, 1));
        q.offer(update("E", 3, 1), on(0, 2));
        assert_eq!(q.oldest_event_time(), Some(1001));
        let drained = q.drain();
        assert_eq!(skus(&drained), [("D", 1), ("A", 1), ("E", 1)]);
        assert!(q.is_empty());
        assert_eq!(q.oldest_event_time(), None);
    }
}
