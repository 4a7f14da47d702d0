//! Upstream stamps (DESIGN §3, "exactly-once effects across internal hops").
//!
//! Every record a task produces carries a [`Stamp`] in the `shelfsync-stamp` header:
//! `(producing task, input offset, index of this output among that offset's outputs)`, written
//! as `task/offset/index`. A task reading an internal topic keeps, per upstream task, the
//! highest stamp it has applied ([`UpstreamMarks`], saved in the same `WriteBatch` as its state)
//! and drops anything at or below it: with one producer per source task and deterministic
//! outputs this is exact. The same stamp on external outputs lets a restarted task find what it
//! already delivered (output-tail suppression, [`super::tail`]).

use std::collections::BTreeMap;

use rdkafka::message::Message;

use crate::kafka;

/// The header that carries a [`Stamp`].
pub(crate) const STAMP_HEADER: &str = kafka::STAMP_HEADER;

/// Where a produced record came from: the task, the input offset and the output's index among
/// that offset's outputs (the DLQ record of a rejected input has index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The producing task, e.g. `dedupe-3`.
    pub task: &'a str,
    /// The input offset the output was produced for.
    pub offset: i64,
    /// The output's index among that offset's outputs.
    pub index: i32,
}

impl<'a> Stamp<'a> {
    /// The header value, `task/offset/index`.
    pub fn to_header(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.task, self.offset, self.index).into_bytes()
    }

    /// Parses a header value written by [`Stamp::to_header`]. Task names may contain `/`: the
    /// offset and index are the last two fields.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut parts = s.rsplitn(3, '/');
        let index = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let task = parts.next()?;
        Some(Self {
            task,
            offset,
            index,
        })
    }

    /// The stamp of a consumed record, if it has a well-formed one.
    pub fn of<M: Message>(msg: &'a M) -> Option<Self> {
        kafka::header(msg, STAMP_HEADER).and_then(Self::parse)
    }

    /// `(offset, index)`: the order in which one upstream task's outputs were produced.
    pub fn position(&self) -> (i64, i32) {
        (self.offset, self.index)
    }
}

/// Per upstream task, the highest stamp position `(offset, index)` applied: what a receiving
/// task drops as already applied. Saved in the task's checkpoint.
pub(crate) type UpstreamMarks = BTreeMap<String, (i64, i32)>;

/// Whether `stamp` was already applied according to `marks`.
pub(crate) fn already_applied(marks: &UpstreamMarks, stamp: &Stamp<'_>) -> bool {
    marks
        .get(stamp.task)
        .is_some_and(|hwm| stamp.position() <= *hwm)
}

/// Records `stamp` as applied (the caller applies stamps in order per upstream task).
pub(crate) fn mark_applied(marks: &mut UpstreamMarks, stamp: &Stamp<'_>) {
    marks.insert(stamp.task.to_string(), stamp.position());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_round_trip_even_with_slashes_in_task_names() {
        for (task, offset, index) in [("dedupe-3", 42, 1), ("a/b", 3, 4), ("inventory-0", 0, 0)] {
            let stamp = Stamp {
                task,
                offset,
                index,
            };
            let header = stamp.to_header();
            assert_eq!(Stamp::parse(&header), Some(stamp));
        }
        assert_eq!(
            Stamp::parse(b"dedupe-3/42/1"),
            Some(Stamp {
                task: "dedupe-3",
                offset: 42,
                index: 1
            })
        );
        assert_eq!(Stamp::parse(b"garbage"), None);
        assert_eq!(Stamp::parse(b"t/x/1"), None);
    }

    #[test]
    fn a_stamp_at_or_below_the_mark_is_already_applied() {
        let mut marks = UpstreamMarks::new();
        let s = |offset, index| Stamp {
            task: "dedupe-1",
            offset,
            index,
        };
        assert!(!already_applied(&marks, &s(5, 0)));
        mark_applied(&mut marks, &s(5, 1));
        assert!(already_applied(&marks, &s(5, 0)));
        assert!(already_applied(&marks, &s(5, 1)));
        assert!(!already_applied(&marks, &s(5, 2)));
        assert!(!already_applied(&marks, &s(6, 0)));
        let other = Stamp {
            task: "dedupe-2",
            offset: 1,
            index: 0,
        };
        assert!(!already_applied(&marks, &other));
    }
}
