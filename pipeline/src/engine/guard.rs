//! What every input must pass before its stage sees it: a size bound and a timestamp bound.
//!
//! - **Size.** A record bigger than [`MAX_INPUT_BYTES`] (key + value) is rejected as `oversize`
//!   before it is decoded: its outputs could exceed the producer's `message.max.bytes`, which
//!   would fail the epoch on every restart (the record would stop its partition for good).
//! - **Time.** A record timestamped more than `processing.max_future_skew` ahead of this host's
//!   clock is rejected as `future_timestamp`: stream time is the largest timestamp a task has
//!   seen (DESIGN §4), so one record dated 30 days ahead would expire every dedup window and soft
//!   hold of its partition, and later exact repeats would be applied again. Rejected here, it
//!   never moves stream time.
//!
//! Both go to the DLQ with their reason like any other rejected record. The time bound reads the
//! wall clock, so it is the one decision that can differ on replay: a record within a few
//! seconds of the bound that is replayed after a crash may be judged again the other way. Its
//! step's outputs are still suppressed by the output tail, and the bound is far above real clock
//! skew, so only records that were already suspicious are affected.

use std::time::Duration;

use super::output::Input;
use crate::stages::Rejected;

/// The largest input record (key + value, bytes) a stage decodes.
pub(crate) const MAX_INPUT_BYTES: usize = 512 * 1024;

/// The input bounds of one engine.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Guard {
    max_future_skew_ms: i64,
}

impl Guard {
    pub(crate) fn new(max_future_skew: Duration) -> Self {
        Self {
            max_future_skew_ms: i64::try_from(max_future_skew.as_millis()).unwrap_or(i64::MAX),
        }
    }

    /// Why `input` must not reach its stage (checked at wall-clock time `now`), if it must not.
    pub(crate) fn check(&self, input: &Input<'_>, now: i64) -> Option<Rejected> {
        let key = input.key.map_or(0, <[u8]>::len);
        let value = input.value.map_or(0, <[u8]>::len);
        if key.saturating_add(value) > MAX_INPUT_BYTES {
            return Some(Rejected {
                kind: "oversize",
                reason: format!(
                    "record is {} bytes (key {key}, value {value}); a stage accepts at most {MAX_INPUT_BYTES} bytes",
                    key + value
                ),
            });
        }
        let limit = now.saturating_add(self.max_future_skew_ms);
        if input.ts > limit {
            return Some(Rejected {
                kind: "future_timestamp",
                reason: format!(
                    "record timestamp {} is {} ms ahead of this host's clock ({now}); processing.max_future_skew allows {} ms",
                    input.ts,
                    input.ts.saturating_sub(now),
                    self.max_future_skew_ms
                ),
            });
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input<'a>(value: &'a [u8], ts: i64) -> Input<'a> {
        Input {
            topic: "t",
            partition: 0,
            offset: 0,
            key: Some(b"k"),
            value: Some(value),
            ts,
            carried: [None; 5],
        }
    }

    #[test]
    fn records_too_big_or_too_far_ahead_are_rejected_with_their_reason() {
        let guard = Guard::new(Duration::from_secs(300));
        let now = 1_000_000_000;
        assert!(guard.check(&input(b"{}", now), now).is_none());
        assert!(guard.check(&input(b"{}", now + 300_000), now).is_none());
        assert!(guard.check(&input(b"{}", i64::MIN), now).is_none());
        let ahead = guard
            .check(&input(b"{}", now + 30 * 86_400_000), now)
            .unwrap();
        assert_eq!(ahead.kind, "future_timestamp");
        assert!(
            ahead.reason.contains("2592000000 ms ahead"),
            "{}",
            ahead.reason
        );
        assert!(guard.check(&input(b"{}", i64::MAX), now).is_some());

        let big = vec![b'x'; MAX_INPUT_BYTES];
        let over = guard.check(&input(&big, now), now).unwrap();
        assert_eq!(over.kind, "oversize");
        assert!(
            over.reason.contains("key 1, value 524288"),
            "{}",
            over.reason
        );
        assert!(guard.check(&input(&big[1..], now), now).is_none());
    }
}
