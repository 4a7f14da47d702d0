//! Progress marks: how far an upstream task's event time has advanced (DESIGN §2, "each
//! upstream task publishes how far its event time has advanced, idle ones too").
//!
//! A task of a stage that feeds an aligning stage (`Stage::publishes_progress`) publishes, at
//! each epoch commit where it changed, its **watermark** into every partition of its internal
//! output topic: a record without key or value whose `shelfsync-progress` header is
//! `task/event_time_ms`. Marks travel in-band, after the task's own records of the epoch, so a
//! reader that sees a mark has seen everything the task wrote before it. The watermark means
//! "nothing I write from now on is older than this":
//!
//! - a task reading a source topic: the largest record timestamp it has applied (a source
//!   topic's producer writes in time order, so what comes next is not older), or [`CAUGHT_UP`]
//!   once its partition has had nothing more to read for [`IDLE_AFTER`] (an idle upstream must
//!   not stall its readers; a source that is merely between two records must not be skipped,
//!   or live records of the other path overtake its next one);
//! - a task reading an internal topic (dedupe): the smallest mark of its own upstream tasks
//!   (it applies records as they come, so it is as far as the slowest of them).
//!
//! A reader keeps the last mark of each upstream task in its checkpoint ([`super::task`]).

use std::collections::BTreeMap;

use rdkafka::message::Message;
use shelfsync_topology::{Stage, TopicRole, Topology};

use crate::kafka;

/// The watermark of a task that has published nothing yet: nothing is known to be passed.
pub(crate) const NO_PROGRESS: i64 = i64::MIN;
/// The watermark of a task with nothing pending: every record it will write is newer input.
pub(crate) const CAUGHT_UP: i64 = i64::MAX;
/// How long a source task at the end of its partition must have applied nothing before it
/// counts as idle ([`CAUGHT_UP`]). Shorter lets a quiet source's readers go on sooner; longer
/// keeps the order when a live source has gaps between records.
pub(crate) const IDLE_AFTER: std::time::Duration = std::time::Duration::from_secs(2);
const IDLE_AFTER_MS: i64 = IDLE_AFTER.as_millis() as i64;
/// How often a quiet source task asks the broker where its partition ends (a task that applied
/// records within [`IDLE_AFTER`] never asks: it cannot be idle).
const END_CHECK_EVERY_MS: i64 = 1_000;

/// One progress mark.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark<'a> {
    /// The upstream task, e.g. `dedupe-0`.
    pub task: &'a str,
    /// Its watermark (ms; [`i64::MAX`]: caught up).
    pub event_time: i64,
}

impl<'a> Mark<'a> {
    /// The header value, `task/event_time`.
    pub fn to_header(&self) -> Vec<u8> {
        format!("{}/{}", self.task, self.event_time).into_bytes()
    }

    /// Parses a header written by [`Mark::to_header`] (task names may contain `/`).
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let (task, event_time) = s.rsplit_once('/')?;
        Some(Self {
            task,
            event_time: event_time.parse().ok()?,
        })
    }

    /// The mark a consumed record carries, if it is one.
    pub fn of<M: Message>(msg: &'a M) -> Option<Self> {
        kafka::header(msg, kafka::PROGRESS_HEADER).and_then(Self::parse)
    }
}

/// Every task of every stage that writes `stage`'s input: the upstreams whose progress it
/// follows (`dedupe-0`, `erp-inventory-0`, …), sorted.
pub(crate) fn upstream_tasks(topology: &Topology, stage: Stage) -> Vec<String> {
    let mut tasks: Vec<String> = stage
        .upstream_stages()
        .into_iter()
        .flat_map(|up| (0..topology.partitions(up.input())).map(move |p| super::task_name(up, p)))
        .collect();
    tasks.sort();
    tasks
}

/// What a task needs to compute and publish its watermark.
#[derive(Debug)]
pub(crate) struct Watermark {
    /// The largest record timestamp applied since the task opened.
    event_time: i64,
    /// The end of the task's source partition as last fetched (`-1`: not fetched).
    known_end: i64,
    /// Its start as last fetched: where a task that has read nothing yet stands.
    known_start: i64,
    /// The watermark last published (`None`: nothing since the task opened).
    published: Option<i64>,
    /// When the task last applied a record (wall clock, ms).
    last_applied_ms: i64,
    /// When the partition's end was last fetched (wall clock, ms).
    end_checked_ms: i64,
}

impl Default for Watermark {
    fn default() -> Self {
        Self {
            event_time: NO_PROGRESS,
            known_end: -1,
            known_start: 0,
            published: None,
            last_applied_ms: 0,
            end_checked_ms: i64::MIN,
        }
    }
}

impl Watermark {
    /// A record with timestamp `ts` was applied at wall-clock `now_ms`.
    pub(crate) fn advance(&mut self, ts: i64, now_ms: i64) {
        self.event_time = self.event_time.max(ts);
        self.last_applied_ms = now_ms;
    }

    /// The task consumed a record at wall-clock `now_ms` without applying it (refused before
    /// its stage): it is not idle, but its event time does not move.
    pub(crate) fn active(&mut self, now_ms: i64) {
        self.last_applied_ms = now_ms;
    }

    /// The task opened at wall-clock `now_ms` (its idleness counts from there).
    pub(crate) fn opened(now_ms: i64) -> Self {
        Self {
            last_applied_ms: now_ms,
            ..Self::default()
        }
    }

    /// Whether the partition's end is worth fetching at read `position` and wall-clock
    /// `now_ms`: only for a task that has been quiet for [`IDLE_AFTER`] (a busy one is not idle
    /// wherever its partition ends), that may be at the end as far as it knows, and at most
    /// once a second.
    pub(crate) fn end_check_due(&self, position: i64, now_ms: i64) -> bool {
        now_ms.saturating_sub(self.last_applied_ms) >= IDLE_AFTER_MS
            && (position < 0 || position >= self.known_end)
            && now_ms.saturating_sub(self.end_checked_ms) >= END_CHECK_EVERY_MS
    }

    /// Records the partition's start and end as fetched at `now_ms`.
    pub(crate) fn set_bounds(&mut self, start: i64, end: i64, now_ms: i64) {
        self.known_start = start;
        self.known_end = end;
        self.end_checked_ms = now_ms;
    }

    /// The watermark of a task reading a source partition, at read `position` and wall-clock
    /// `now_ms`: idle (at the end of the partition, nothing applied for [`IDLE_AFTER`]) means
    /// caught up.
    pub(crate) fn of_source(&self, position: i64, now_ms: i64) -> i64 {
        // A task that has read nothing yet (no committed offset) stands at the start.
        let position = if position < 0 {
            self.known_start
        } else {
            position
        };
        // Past the known end means that end is stale (records arrived since it was fetched):
        // not known to be at the end until it is fetched again.
        let at_end = self.known_end >= 0 && position == self.known_end;
        let quiet = now_ms.saturating_sub(self.last_applied_ms) >= IDLE_AFTER_MS;
        if at_end && quiet {
            CAUGHT_UP
        } else {
            self.event_time
        }
    }

    /// `watermark` if it is worth publishing (changed, and not "nothing known" before anything
    /// was published); remembers it as published.
    pub(crate) fn worth_publishing(&mut self, watermark: i64) -> Option<i64> {
        let unchanged = self.published == Some(watermark)
            || (self.published.is_none() && watermark == NO_PROGRESS);
        if unchanged {
            return None;
        }
        self.published = Some(watermark);
        Some(watermark)
    }

    /// Forgets what was published (the epoch carrying it was not committed).
    pub(crate) fn unpublish(&mut self) {
        self.published = None;
    }
}

/// The watermark of a task reading an internal topic from `upstreams`: the smallest of their
/// last marks (an upstream never heard from counts as [`NO_PROGRESS`]).
pub(crate) fn relayed(upstreams: &[String], marks: &BTreeMap<String, i64>) -> i64 {
    upstreams
        .iter()
        .map(|u| marks.get(u).copied().unwrap_or(NO_PROGRESS))
        .min()
        .unwrap_or(CAUGHT_UP)
}

/// Whether `stage` reads a source topic (its watermark comes from its partition's position).
pub(crate) fn reads_source(stage: Stage) -> bool {
    stage.input().role() == TopicRole::Source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip() {
        for (task, event_time) in [("dedupe-0", 17), ("a/b-1", CAUGHT_UP), ("x-2", -5)] {
            let mark = Mark { task, event_time };
            assert_eq!(Mark::parse(&mark.to_header()), Some(mark));
        }
        assert_eq!(Mark::parse(b"no-slash"), None);
        assert_eq!(Mark::parse(b"t/notanumber"), None);
    }

    #[test]
    fn a_source_task_is_caught_up_once_idle_at_the_end_of_its_partition() {
        let mut w = Watermark::opened(0);
        assert_eq!(w.of_source(0, 60_000), NO_PROGRESS, "end never fetched");
        assert!(!w.end_check_due(0, 1_999), "not quiet for 2 s yet");
        assert!(w.end_check_due(0, 2_000));
        w.set_bounds(0, 10, 2_000);
        assert!(!w.end_check_due(10, 2_500), "asked less than a second ago");
        w.advance(500, 3_000);
        w.advance(400, 3_000);
        assert!(!w.end_check_due(10, 4_000), "busy");
        assert_eq!(w.of_source(7, 60_000), 500, "records left to read");
        assert!(!w.end_check_due(7, 60_000), "known to be behind the end");
        assert!(w.end_check_due(10, 60_000));
        let mut w = Watermark::opened(0);
        w.set_bounds(0, 10, 0);
        w.advance(500, 1_000);
        assert_eq!(
            w.of_source(10, 1_000 + IDLE_AFTER_MS - 1),
            500,
            "between records"
        );
        assert_eq!(w.of_source(10, 1_000 + IDLE_AFTER_MS), CAUGHT_UP, "idle");
        // Nothing read yet, from an empty partition: at its start, which is its end.
        let mut empty = Watermark::opened(0);
        empty.set_bounds(5, 5, IDLE_AFTER_MS);
        assert_eq!(empty.of_source(-1, IDLE_AFTER_MS), CAUGHT_UP);
        // Published once per change; "nothing known" is not worth a mark before any other.
        let mut fresh = Watermark::default();
        assert_eq!(fresh.worth_publishing(NO_PROGRESS), None);
        assert_eq!(fresh.worth_publishing(500), Some(500));
        assert_eq!(fresh.worth_publishing(500), None);
        assert_eq!(fresh.worth_publishing(CAUGHT_UP), Some(CAUGHT_UP));
        fresh.unpublish();
        assert_eq!(fresh.worth_publishing(CAUGHT_UP), Some(CAUGHT_UP));
    }

    #[test]
    fn a_source_that_reads_past_its_last_known_end_is_not_caught_up() {
        // Idle at the end (offset 10) of its partition: caught up.
        let mut w = Watermark::opened(0);
        w.set_bounds(0, 10, 0);
        w.advance(500, 1_000);
        assert_eq!(w.of_source(10, 5_000), CAUGHT_UP);
        // A burst arrives; its first record is refused before the stage (no event time), but
        // the task is busy again and has read past the end it knew: that end is stale.
        w.active(6_000);
        assert_eq!(w.of_source(11, 6_500), 500, "busy again");
        assert_eq!(
            w.of_source(11, 6_000 + IDLE_AFTER_MS),
            500,
            "past the known end: not known to be at the end until it is fetched again"
        );
        assert!(w.end_check_due(11, 6_000 + IDLE_AFTER_MS));
        w.set_bounds(0, 11, 6_000 + IDLE_AFTER_MS);
        assert_eq!(w.of_source(11, 6_000 + IDLE_AFTER_MS), CAUGHT_UP);
    }

    #[test]
    fn a_relaying_task_is_as_far_as_its_slowest_upstream() {
        let ups = vec!["normalize-0".to_string(), "normalize-1".to_string()];
        let mut marks = BTreeMap::new();
        assert_eq!(relayed(&ups, &marks), NO_PROGRESS);
        marks.insert("normalize-0".to_string(), 100);
        marks.insert("normalize-1".to_string(), CAUGHT_UP);
        assert_eq!(relayed(&ups, &marks), 100);
    }
}
