//! Event-time alignment where paths merge (DESIGN §2: "the reading stage applies records in
//! event-time order across its upstreams").
//!
//! `<app>-inventory-commands` is written by dedupe (orders, two hops from the raw topic) and by
//! the ERP stages (one hop). Applied in arrival order, whichever path is behind loses: in a
//! backlog every ERP shipment overtakes the order it ships. An aligning task therefore does
//! not apply what it reads at once. It keeps one FIFO queue per upstream task (an upstream's
//! records stay in the order it wrote them, so its stamps stay monotonic) and applies the head
//! with the smallest timestamp (ties: upstream name, then arrival) once **every other upstream
//! task has passed it**: its own queue is not empty (its head is not older), or its last
//! progress mark ([`super::progress`]) is newer than the record. Like Kafka Streams choosing
//! the partition with the smallest head timestamp, and like Flink's watermark alignment.
//!
//! What lateness costs, and the bound:
//! - a record waits for the slowest upstream: in a backlog, ERP records wait while the order
//!   path catches up; live, where every upstream is caught up (marks say so), nothing waits;
//! - a record held for `processing.max_alignment_delay` (wall clock) is applied anyway and
//!   counted (`shelfsync_alignment_timeouts_total`), so a dead upstream delays the stage at
//!   most that long; `"0s"` turns alignment off. `shelfsync_alignment_held_records` and
//!   `shelfsync_alignment_hold_seconds` show what waits and for how long.
//!
//! Effectively-once: held records are part of the task's state. At each epoch commit the ones
//! still held are written to the task's store under `\0held/<seq>` (released ones are deleted)
//! in the same `WriteBatch` as the checkpoint, whose read offset is past them, and they reach
//! the changelog like any state, so a restart or a new host resumes with the same queues and
//! the same marks and applies the same records in the same order. Outputs are stamped with the
//! task's application step (not the input offset, which is no longer monotonic).

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shelfsync_operators::state::{decode_migrating, encode_value_as, VALUE_FORMAT_V2};
use shelfsync_operators::StateStore;

use super::progress::NO_PROGRESS;
use super::task::base_name;
use crate::error::{Error, Result};

/// Key prefix of held records in a task's store (operators' keys never start with `0x00`).
const HELD_PREFIX: &[u8] = b"\x00held/";
/// The key just past every held record.
const HELD_END: &[u8] = b"\x00held0";
/// Held records read back per range call at open.
const OPEN_BATCH: usize = 10_000;

/// A record an aligning task holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Held {
    /// The upstream task that wrote it, as its stamp names it (`task@lineage`).
    pub(crate) upstream: String,
    /// Its stamp position `(step, index)` at the upstream.
    pub(crate) stamp: (i64, i32),
    /// Its offset in the task's input partition.
    pub(crate) offset: i64,
    /// Its timestamp (event time, ms).
    pub(crate) ts: i64,
    /// Its key and value bytes.
    pub(crate) key: Option<Vec<u8>>,
    /// The value bytes.
    pub(crate) value: Option<Vec<u8>>,
    /// When it was first held (wall clock, ms): `max_alignment_delay` counts from here.
    pub(crate) held_at_ms: i64,
    /// Its [`crate::kafka::TRACE_HEADERS`] (correlation id, `traceparent`, `tracestate`), passed
    /// on to its outputs when it is released.
    pub(crate) trace: Vec<Option<Vec<u8>>>,
}

impl Held {
    /// Its headers as [`super::output::Input::carried`] has them.
    pub(crate) fn carried(&self) -> [Option<&[u8]>; 5] {
        let mut out = [None; 5];
        for (slot, value) in out.iter_mut().zip(&self.trace) {
            *slot = value.as_deref();
        }
        out
    }
}

/// A held record as the releases before trace headers stored it (value format 1).
#[derive(Debug, Deserialize)]
struct HeldV1 {
    upstream: String,
    stamp: (i64, i32),
    offset: i64,
    ts: i64,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    held_at_ms: i64,
}

impl From<HeldV1> for Held {
    fn from(v1: HeldV1) -> Self {
        Self {
            upstream: v1.upstream,
            stamp: v1.stamp,
            offset: v1.offset,
            ts: v1.ts,
            key: v1.key,
            value: v1.value,
            held_at_ms: v1.held_at_ms,
            trace: Vec::new(),
        }
    }
}

#[derive(Debug)]
struct Entry {
    seq: u64,
    held: Held,
    /// Whether it is in the store (written by an epoch commit).
    persisted: bool,
}

/// Why a record was released.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Release {
    /// Every other upstream had passed it.
    InOrder,
    /// It waited `max_alignment_delay`.
    MaxDelay,
}

/// An aligning task's queues.
#[derive(Debug)]
pub(crate) struct Aligner {
    /// The upstream tasks whose progress every record waits for.
    upstreams: Vec<String>,
    queues: BTreeMap<String, VecDeque<Entry>>,
    next_seq: u64,
    max_delay_ms: i64,
    len: usize,
}

fn held_key(seq: u64) -> Vec<u8> {
    let mut key = HELD_PREFIX.to_vec();
    key.extend_from_slice(&seq.to_be_bytes());
    key
}

impl Aligner {
    /// The aligner of a task whose upstream tasks are `upstreams`, with the records its store
    /// still holds.
    ///
    /// # Errors
    /// [`Error::State`] when a held record in the store does not decode.
    pub(crate) fn open(
        store: &dyn StateStore,
        upstreams: Vec<String>,
        max_delay: Duration,
    ) -> Result<Self> {
        let mut aligner = Self {
            upstreams,
            queues: BTreeMap::new(),
            next_seq: 0,
            max_delay_ms: i64::try_from(max_delay.as_millis()).unwrap_or(i64::MAX),
            len: 0,
        };
        let mut from = HELD_PREFIX.to_vec();
        loop {
            let batch = store.range(&from, HELD_END, OPEN_BATCH);
            let Some((last, _)) = batch.last() else {
                break;
            };
            from = last.clone();
            from.push(0);
            let full = batch.len() == OPEN_BATCH;
            for (key, value) in batch {
                let seq = key
                    .get(HELD_PREFIX.len()..)
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map(u64::from_be_bytes)
                    .ok_or_else(|| Error::State(format!("bad held-record key {key:?}")))?;
                let held: Held = decode_migrating::<Held, HeldV1>(&key, &value)
                    .map_err(|e| Error::State(e.to_string()))?;
                aligner.next_seq = aligner.next_seq.max(seq + 1);
                aligner.push(Entry {
                    seq,
                    held,
                    persisted: true,
                });
            }
            if !full {
                break;
            }
        }
        Ok(aligner)
    }

    fn push(&mut self, entry: Entry) {
        self.len += 1;
        // One queue per upstream task, whatever the lineage its stamps carry.
        self.queues
            .entry(base_name(&entry.held.upstream).to_string())
            .or_default()
            .push_back(entry);
    }

    /// How many records are held.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// The stamp position of the last record held from `upstream` (as its stamp names it,
    /// lineage included), if any: a repeat at or below it is a duplicate even before it is
    /// applied. A stamp of another lineage than the last held record's is no repeat of it.
    pub(crate) fn last_held(&self, upstream: &str) -> Option<(i64, i32)> {
        self.queues
            .get(base_name(upstream))
            .and_then(VecDeque::back)
            .filter(|e| e.held.upstream == upstream)
            .map(|e| e.held.stamp)
    }

    /// Holds a record.
    pub(crate) fn hold(&mut self, held: Held) {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.push(Entry {
            seq,
            held,
            persisted: false,
        });
    }

    /// The next record to apply, if one may be applied now given the upstreams' last `marks`
    /// and the wall clock `now_ms`; a released record that was in the store is deleted from it.
    pub(crate) fn release(
        &mut self,
        marks: &BTreeMap<String, i64>,
        now_ms: i64,
        store: &mut dyn StateStore,
    ) -> Option<(Held, Release)> {
        let (ts, owner, held_at) = self
            .queues
            .iter()
            .filter_map(|(u, q)| q.front().map(|e| (e.held.ts, u, e.held.held_at_ms)))
            .min_by_key(|(ts, u, _)| (*ts, *u))
            .map(|(ts, u, at)| (ts, u.clone(), at))?;
        let passed = self.upstreams.iter().filter(|u| **u != owner).all(|u| {
            self.queues.get(u).is_some_and(|q| !q.is_empty())
                || marks.get(u).copied().unwrap_or(NO_PROGRESS) > ts
        });
        let why = if passed || self.max_delay_ms == 0 {
            Release::InOrder
        } else if now_ms.saturating_sub(held_at) >= self.max_delay_ms {
            Release::MaxDelay
        } else {
            return None;
        };
        let entry = self.queues.get_mut(&owner)?.pop_front()?;
        self.len -= 1;
        if entry.persisted {
            store.delete(&held_key(entry.seq));
        }
        Some((entry.held, why))
    }

    /// Writes the records held since the last commit to `store` (the caller commits it with
    /// the checkpoint in one `WriteBatch`).
    pub(crate) fn persist(&mut self, store: &mut dyn StateStore) {
        for entry in self.queues.values_mut().flat_map(|q| q.iter_mut()) {
            if !entry.persisted {
                store.put(
                    &held_key(entry.seq),
                    &encode_value_as(VALUE_FORMAT_V2, &entry.held),
                );
                entry.persisted = true;
            }
        }
    }

    /// Forgets which held records were written (the epoch that wrote them was not committed):
    /// the next commit writes them again.
    pub(crate) fn unpersist(&mut self) {
        for entry in self.queues.values_mut().flat_map(|q| q.iter_mut()) {
            entry.persisted = false;
        }
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_operators::MemStore;

    use super::*;
    use crate::engine::progress::CAUGHT_UP;

    fn held(upstream: &str, step: i64, ts: i64) -> Held {
        Held {
            upstream: upstream.into(),
            stamp: (step, 0),
            offset: step,
            ts,
            key: None,
            value: Some(format!("{upstream}@{ts}").into_bytes()),
            held_at_ms: 1_000,
            trace: vec![Some(b"d-1".to_vec()), None, None],
        }
    }

    /// A record held by the release before trace headers (value format 1) still reads.
    #[test]
    fn a_record_held_by_the_previous_release_still_reads() {
        let v1 = HeldV1 {
            upstream: "dedupe-0".into(),
            stamp: (3, 0),
            offset: 3,
            ts: 10,
            key: None,
            value: Some(b"x".to_vec()),
            held_at_ms: 1,
        };
        #[derive(serde::Serialize)]
        struct Same<'a>(
            &'a str,
            (i64, i32),
            i64,
            i64,
            Option<Vec<u8>>,
            Option<Vec<u8>>,
            i64,
        );
        let bytes = shelfsync_operators::state::encode_value(&Same(
            &v1.upstream,
            v1.stamp,
            v1.offset,
            v1.ts,
            v1.key.clone(),
            v1.value.clone(),
            v1.held_at_ms,
        ));
        let held: Held = decode_migrating::<Held, HeldV1>(b"k", &bytes).unwrap();
        assert_eq!((held.offset, held.trace.len()), (3, 0));
        let now = encode_value_as(VALUE_FORMAT_V2, &self::held("dedupe-0", 4, 11));
        let back: Held = decode_migrating::<Held, HeldV1>(b"k", &now).unwrap();
        assert_eq!(back.carried()[0], Some(&b"d-1"[..]));
    }

    fn ups() -> Vec<String> {
        vec!["dedupe-0".into(), "erp-inventory-0".into()]
    }

    fn drain(a: &mut Aligner, marks: &BTreeMap<String, i64>, now: i64) -> Vec<(i64, Release)> {
        let mut store = MemStore::new();
        std::iter::from_fn(|| a.release(marks, now, &mut store))
            .map(|(h, why)| (h.ts, why))
            .collect()
    }

    #[test]
    fn a_record_waits_until_every_other_upstream_has_passed_it() {
        let mut a = Aligner::open(&MemStore::new(), ups(), Duration::from_secs(60)).unwrap();
        let mut marks = BTreeMap::new();
        // The ERP path is ahead: its shipment at t=500 waits for dedupe.
        a.hold(held("erp-inventory-0", 1, 500));
        assert!(drain(&mut a, &marks, 1_000).is_empty());
        marks.insert("dedupe-0".to_string(), 300);
        assert!(
            drain(&mut a, &marks, 1_000).is_empty(),
            "dedupe at 300 < 500"
        );
        // The order at t=400 arrives: it goes first, then the shipment still waits.
        a.hold(held("dedupe-0", 7, 400));
        marks.insert("erp-inventory-0".to_string(), 500);
        assert_eq!(drain(&mut a, &marks, 1_000), [(400, Release::InOrder)]);
        marks.insert("dedupe-0".to_string(), 501);
        assert_eq!(drain(&mut a, &marks, 1_000), [(500, Release::InOrder)]);
        assert_eq!(a.len(), 0);
    }

    #[test]
    fn heads_go_in_timestamp_order_and_each_upstream_in_its_own_order() {
        let mut a = Aligner::open(&MemStore::new(), ups(), Duration::from_secs(60)).unwrap();
        a.hold(held("dedupe-0", 1, 100));
        a.hold(held("dedupe-0", 2, 90)); // late within its upstream: stays behind 100
        a.hold(held("erp-inventory-0", 1, 95));
        a.hold(held("erp-inventory-0", 2, 200));
        let marks = BTreeMap::from([
            ("dedupe-0".to_string(), CAUGHT_UP),
            ("erp-inventory-0".to_string(), CAUGHT_UP),
        ]);
        let order: Vec<i64> = drain(&mut a, &marks, 1_000)
            .into_iter()
            .map(|x| x.0)
            .collect();
        assert_eq!(order, [95, 100, 90, 200]);
    }

    #[test]
    fn a_record_held_too_long_is_released_and_said_so() {
        let mut a = Aligner::open(&MemStore::new(), ups(), Duration::from_millis(500)).unwrap();
        a.hold(held("erp-inventory-0", 1, 500));
        let marks = BTreeMap::new();
        assert!(drain(&mut a, &marks, 1_499).is_empty());
        assert_eq!(drain(&mut a, &marks, 1_500), [(500, Release::MaxDelay)]);
    }

    #[test]
    fn held_records_survive_in_the_store_and_are_deleted_when_applied() {
        let mut store = MemStore::new();
        let mut a = Aligner::open(&store, ups(), Duration::from_secs(60)).unwrap();
        a.hold(held("erp-inventory-0", 1, 500));
        a.hold(held("erp-inventory-0", 2, 600));
        a.hold(held("dedupe-0", 3, 700));
        a.persist(&mut store);
        assert_eq!(a.last_held("erp-inventory-0"), Some((2, 0)));
        // A new incarnation reads them back in the same queues.
        let mut b = Aligner::open(&store, ups(), Duration::from_secs(60)).unwrap();
        assert_eq!(b.len(), 3);
        assert_eq!(b.last_held("dedupe-0"), Some((3, 0)));
        let marks = BTreeMap::from([("dedupe-0".to_string(), 650)]);
        let (first, _) = b.release(&marks, 1_000, &mut store).unwrap();
        assert_eq!(first.ts, 500);
        let (second, _) = b.release(&marks, 1_000, &mut store).unwrap();
        assert_eq!(second.ts, 600);
        assert!(b.release(&marks, 1_000, &mut store).is_none(), "700 waits");
        b.hold(held("erp-inventory-0", 4, 800));
        b.persist(&mut store);
        let c = Aligner::open(&store, ups(), Duration::from_secs(60)).unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c.last_held("erp-inventory-0"), Some((4, 0)));
    }
}
