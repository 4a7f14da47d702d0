//! Which changelog records a restore may apply when more than one host wrote the partition
//! (issue 15 #2, DESIGN §3 "recovery and moving partitions").
//!
//! A changelog record names its writer and the last input offset of the epoch that wrote it;
//! a restore used to apply every record whose input offset is below the group's committed
//! offset. That is wrong in two cases that look the same from the changelog alone:
//!
//! - a **zombie**: host A is paused past its session timeout, host B restores the task and
//!   commits epochs, then A thaws and its in-flight records reach the broker *after* B's. Their
//!   input offsets are below the group's offset (B processed those inputs again), so a later
//!   restore applied A's older values over B's;
//! - a **failed epoch**: A wrote an epoch's records and crashed before committing; B redid
//!   those inputs. Here the *later* records are the right ones.
//!
//! Only the group's commits tell them apart, so every commit of a stateful task carries its
//! [`Segment`]: the writer that took the task over, the changelog offset where its ownership
//! began and the input offset it started from. A restore under segment `(w, from, below)`
//! applies, before `from`, only records of epochs committed before the takeover (input offset
//! below `below`) and, from `from` on, only `w`'s records of committed epochs. A restore
//! starts a segment of its own, so the rule only ever looks one takeover back: what it skipped
//! whose key has no later record it applied ([`Replay::corrections`]) is written again with
//! the restored value, so that a restore under the new segment, which applies those older
//! records, reads the right value after them.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// Who owns a task's changelog partition since when: carried in the metadata of the task's
/// group commits (see `tail::CommitMeta`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Segment {
    /// The owner's writer id (the changelog header `shelfsync-writer`).
    pub(crate) writer: String,
    /// The changelog offset its ownership began at: the end of the changelog when it restored
    /// the task, or resumed it from local state.
    pub(crate) from: i64,
    /// The input offset it started from: every epoch committed before it took over ended
    /// below it.
    pub(crate) below: i64,
}

impl Segment {
    /// The form in commit metadata: `<writer>@<from>/<below>`.
    pub(crate) fn to_metadata(&self) -> String {
        format!("{}@{}/{}", self.writer, self.from, self.below)
    }

    /// Reads [`Self::to_metadata`]'s form.
    pub(crate) fn from_metadata(s: &str) -> Option<Self> {
        let (writer, rest) = s.split_once('@')?;
        let (from, below) = rest.split_once('/')?;
        let valid = !writer.is_empty() && !writer.contains(['/', ';']);
        valid.then_some(())?;
        Some(Self {
            writer: writer.to_string(),
            from: from.parse().ok()?,
            below: below.parse().ok()?,
        })
    }
}

/// What a restore does with one changelog record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Written by a committed epoch of the task's history: applied.
    Apply,
    /// Written by an epoch that is not committed yet, of the current owner (or of anyone,
    /// without a segment): applied by a later restore once the group commits past it.
    Uncommitted,
    /// Never part of the history: a failed epoch that another writer redid, or a zombie's.
    Foreign,
}

/// The rule of one restore: which records it applies, and the keys whose latest record it
/// read was not applied.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Replay {
    /// The segment of the group's last commit (`None`: committed before segments existed, or
    /// never).
    pub(crate) segment: Option<Segment>,
    /// The group's committed offset.
    pub(crate) below: i64,
    /// Keys whose latest record read so far was not applied.
    skipped: BTreeSet<Vec<u8>>,
}

impl Replay {
    /// The rule for restoring below the group's offset `below`, whose last commit carried
    /// `segment`.
    pub(crate) fn new(segment: Option<Segment>, below: i64) -> Self {
        Self {
            segment,
            below,
            skipped: BTreeSet::new(),
        }
    }

    /// The verdict on the record at changelog `offset`, of `writer`, whose epoch's last input
    /// offset was `input`.
    pub(crate) fn verdict(&self, offset: i64, writer: Option<&[u8]>, input: i64) -> Verdict {
        match &self.segment {
            Some(s) if offset < s.from => {
                if input < s.below {
                    Verdict::Apply
                } else {
                    Verdict::Foreign
                }
            }
            Some(s) if writer != Some(s.writer.as_bytes()) => Verdict::Foreign,
            _ if input < self.below => Verdict::Apply,
            _ => Verdict::Uncommitted,
        }
    }

    /// Notes what was done with a record of `key`.
    pub(crate) fn note(&mut self, key: &[u8], verdict: Verdict) {
        if verdict == Verdict::Apply {
            self.skipped.remove(key);
        } else if !self.skipped.contains(key) {
            self.skipped.insert(key.to_vec());
        }
    }

    /// The keys to write again with their restored value (or a tombstone) once the restore is
    /// done: their latest record was not applied.
    pub(crate) fn corrections(&self) -> impl Iterator<Item = &[u8]> {
        self.skipped.iter().map(Vec::as_slice)
    }

    /// How many keys [`Self::corrections`] yields.
    pub(crate) fn corrections_len(&self) -> usize {
        self.skipped.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rec {
        offset: i64,
        key: &'static str,
        writer: &'static str,
        input: i64,
    }

    fn rec(offset: i64, key: &'static str, writer: &'static str, input: i64) -> Rec {
        Rec {
            offset,
            key,
            writer,
            input,
        }
    }

    /// The keys a restore applies, each with the writer and input offset of the record that
    /// won, and the corrections it leaves.
    fn replay(replay: &mut Replay, log: &[Rec]) -> Vec<(&'static str, &'static str, i64)> {
        let mut state: std::collections::BTreeMap<&str, (&str, i64)> = Default::default();
        for r in log {
            let v = replay.verdict(r.offset, Some(r.writer.as_bytes()), r.input);
            if v == Verdict::Apply {
                state.insert(r.key, (r.writer, r.input));
            }
            replay.note(r.key.as_bytes(), v);
        }
        state.into_iter().map(|(k, (w, i))| (k, w, i)).collect()
    }

    fn seg(writer: &str, from: i64, below: i64) -> Option<Segment> {
        Some(Segment {
            writer: writer.into(),
            from,
            below,
        })
    }

    #[test]
    fn a_zombies_late_records_lose_to_the_new_owners() {
        // A commits inputs up to 19; B restores at changelog offset 4 from input 20 and
        // commits up to 39; A thaws and its epoch over inputs 20..29 lands at offsets 6-7.
        let log = [
            rec(0, "x", "A", 9),
            rec(1, "y", "A", 9),
            rec(2, "x", "A", 19),
            rec(3, "cp", "A", 19),
            rec(4, "x", "B", 29),
            rec(5, "cp", "B", 39),
            rec(6, "x", "A", 29),
            rec(7, "y", "A", 29),
        ];
        // Without segments (the old rule) the zombie's values win.
        let mut old = Replay::new(None, 40);
        let got = replay(&mut old, &log);
        assert_eq!(got, vec![("cp", "B", 39), ("x", "A", 29), ("y", "A", 29)]);
        // Under B's segment they are not applied, and both keys are corrected.
        let mut r = Replay::new(seg("B", 4, 20), 40);
        let got = replay(&mut r, &log);
        assert_eq!(got, vec![("cp", "B", 39), ("x", "B", 29), ("y", "A", 9)]);
        let fixes: Vec<&[u8]> = r.corrections().collect();
        assert_eq!(fixes, vec![b"x".as_slice(), b"y".as_slice()]);
    }

    #[test]
    fn a_failed_epoch_loses_to_its_redo() {
        // A commits inputs up to 9, writes an epoch over 10..19 and crashes before its commit;
        // B restores at offset 3 from input 10 and redoes the inputs, which touch only `x`.
        let log = [
            rec(0, "x", "A", 9),
            rec(1, "x", "A", 19),
            rec(2, "z", "A", 19),
            rec(3, "x", "B", 19),
        ];
        // The old rule, once the group is past 19, applies the failed epoch's `z`.
        let mut old = Replay::new(None, 20);
        assert_eq!(replay(&mut old, &log), vec![("x", "B", 19), ("z", "A", 19)]);
        let mut r = Replay::new(seg("B", 3, 10), 20);
        assert_eq!(replay(&mut r, &log), vec![("x", "B", 19)]);
        // `z`'s only record was skipped: it is written again (as a tombstone: never restored).
        assert_eq!(r.corrections().collect::<Vec<_>>(), vec![b"z".as_slice()]);
    }

    #[test]
    fn the_owners_uncommitted_epoch_waits_for_its_commit() {
        let log = [rec(0, "x", "A", 9), rec(1, "x", "A", 19)];
        let mut r = Replay::new(seg("A", 0, 0), 10);
        assert_eq!(r.verdict(1, Some(b"A"), 19), Verdict::Uncommitted);
        assert_eq!(replay(&mut r, &log), vec![("x", "A", 9)]);
        let mut later = Replay::new(seg("A", 0, 0), 20);
        assert_eq!(replay(&mut later, &log), vec![("x", "A", 19)]);
        assert_eq!(later.corrections_len(), 0);
    }

    #[test]
    fn a_restore_under_the_next_segment_reads_the_corrections_last() {
        // A's zombie epoch (inputs 20..29) landed at offsets 3-4, before B's restore ended;
        // B skipped it and wrote corrections at offsets 5-6 (input offset just below where it
        // started), then committed under segment (B, 5, 20).
        let log = [
            rec(0, "x", "A", 9),
            rec(1, "y", "A", 9),
            rec(2, "x", "A", 19),
            rec(3, "x", "A", 29),
            rec(4, "y", "A", 29),
            rec(5, "x", "B", 19),
            rec(6, "y", "B", 19),
            rec(7, "x", "B", 39),
        ];
        let mut r = Replay::new(seg("B", 5, 20), 40);
        assert_eq!(replay(&mut r, &log), vec![("x", "B", 39), ("y", "B", 19)]);
        assert_eq!(r.corrections_len(), 0);
        // C took over from offset 8 (input 40): a restore under C's segment applies every
        // record before 8 below input 40, the zombie's included, and the corrections after
        // them.
        let mut next = Replay::new(seg("C", 8, 40), 40);
        assert_eq!(
            replay(&mut next, &log),
            vec![("x", "B", 39), ("y", "B", 19)]
        );
    }

    #[test]
    fn segments_round_trip_and_refuse_garbage() {
        let s = seg("0a1b2c", 17, 42).unwrap();
        assert_eq!(s.to_metadata(), "0a1b2c@17/42");
        assert_eq!(Segment::from_metadata(&s.to_metadata()), Some(s));
        for bad in ["", "@1/2", "w@1", "w@x/2", "w;x@1/2", "w@1/2/3"] {
            assert_eq!(Segment::from_metadata(bad), None, "{bad}");
        }
    }
}
