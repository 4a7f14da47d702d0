//! The reset plan — what `shelfsync reset` found on the broker and what it does about it — and
//! the pure rules it follows: where each input partition goes, and the commit metadata that
//! starts the replay in a lineage of its own.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use shelfsync_topology::TopicId;

use super::state_dir::StateDir;

/// Where the group's input offsets go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// Each partition's first offset still on the broker (its log start).
    Earliest,
    /// Each partition's first offset whose record timestamp is at or after this time (epoch
    /// milliseconds); a partition with nothing from then on goes to its end.
    Time(i64),
}

impl Target {
    /// The target in words, for the plan's first line.
    fn describe(self) -> String {
        match self {
            Self::Earliest => "to the earliest offsets".into(),
            Self::Time(ms) => format!(
                "to the first offsets at or after {} (record timestamps)",
                time_text(ms)
            ),
        }
    }
}

/// `ms` since the epoch as RFC 3339 (UTC, milliseconds).
pub(crate) fn time_text(ms: i64) -> String {
    let t =
        std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_millis(t).to_string()
}

/// The offset an input partition with records `low..high` is reset to. `at_time` is what the
/// broker answered for the target time (`offsets_for_times`): the first offset whose timestamp
/// is at or after it, or `None` / a negative offset when no record is that late.
pub(crate) fn new_offset(target: Target, low: i64, high: i64, at_time: Option<i64>) -> i64 {
    match target {
        Target::Earliest => low,
        Target::Time(_) => at_time
            .filter(|o| *o >= 0)
            .map_or(high, |o| o.clamp(low, high)),
    }
}

/// One input partition: where the group's offset stood and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct InputMove {
    /// The source topic.
    pub(crate) topic: String,
    /// Its partition.
    pub(crate) partition: i32,
    /// The group's committed offset (`None`: nothing committed).
    pub(crate) committed: Option<i64>,
    /// The partition's first offset on the broker.
    pub(crate) low: i64,
    /// The partition's end.
    pub(crate) high: i64,
    /// The offset it is reset to.
    pub(crate) new: i64,
}

/// An internal or changelog topic the reset deletes and creates again, empty.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Recreate {
    /// The logical topic.
    pub(crate) id: TopicId,
    /// Its name.
    pub(crate) name: String,
    /// Partitions on the broker now (`None`: it does not exist; it is only created).
    pub(crate) partitions: Option<i32>,
    /// Records on it now.
    pub(crate) records: i64,
    /// The group's committed offsets of it, by partition (a stage's input only).
    pub(crate) committed: Vec<(i32, i64)>,
}

impl Recreate {
    /// Whether a stage reads it through the group (its offsets are committed at 0 after).
    pub(crate) fn is_stage_input(&self) -> bool {
        matches!(
            self.id,
            TopicId::Orders | TopicId::InventoryCommands | TopicId::LineResults
        )
    }
}

/// A member of the consumer group, as the broker describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Member {
    /// The member id the coordinator gave it.
    pub(crate) id: String,
    /// Its `client.id`.
    pub(crate) client_id: String,
    /// The host it connected from.
    pub(crate) host: String,
}

/// What the broker says of the consumer group `<application_id>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum GroupCheck {
    /// The group does not exist (nothing ever committed, or it was deleted).
    Absent,
    /// The group exists, in this state (`Empty` or `Dead`), without members.
    Idle(String),
    /// The group has members, or is in a state that may have some: the reset refuses.
    Busy {
        /// The group's state (`Stable`, `PreparingRebalance`, …; empty when the broker did not
        /// describe it as a classic group).
        state: String,
        /// Its members.
        members: Vec<Member>,
    },
}

impl GroupCheck {
    /// The group as `fetch_group_list` described it: `None` when the broker did not list it.
    pub(crate) fn of(described: Option<(String, Vec<Member>)>) -> Self {
        match described {
            None => Self::Absent,
            Some((state, members))
                if members.is_empty() && matches!(state.as_str(), "Empty" | "Dead") =>
            {
                Self::Idle(state)
            }
            Some((state, members)) => Self::Busy { state, members },
        }
    }

    /// Why the reset must not go on, naming the members.
    pub(crate) fn refusal(&self, group: &str) -> Option<String> {
        let Self::Busy { state, members } = self else {
            return None;
        };
        if members.is_empty() {
            return Some(format!(
                "the consumer group {group} is in state {state:?}, not Empty: it may have members (a KIP-848 `consumer` group is not described here; `shelfsync run` uses the classic protocol). Stop every `shelfsync run` of this application and try again"
            ));
        }
        let list: Vec<String> = members
            .iter()
            .map(|m| format!("{} at {} (member {})", m.client_id, m.host, m.id))
            .collect();
        Some(format!(
            "the consumer group {group} has {} member(s) (state {state}): {}. Stop every `shelfsync run` of this application first (scale the StatefulSet to 0); a static member (--group-instance-id) stays in the group until its session.timeout.ms has passed after it stopped",
            members.len(),
            list.join(", ")
        ))
    }

    fn describe(&self, group: &str) -> String {
        match self {
            Self::Absent => format!("consumer group {group}: does not exist, no members: ok"),
            Self::Idle(state) => format!("consumer group {group}: {state}, no members: ok"),
            Self::Busy { .. } => format!(
                "consumer group {group}: REFUSED: {}",
                self.refusal(group).unwrap_or_default()
            ),
        }
    }
}

/// Everything `shelfsync reset` found and will do.
#[derive(Debug)]
pub(crate) struct Plan {
    /// The application id (the consumer group).
    pub(crate) application_id: String,
    /// The broker.
    pub(crate) bootstrap: String,
    /// Where the inputs go.
    pub(crate) target: Target,
    /// The group check.
    pub(crate) group: GroupCheck,
    /// Every source partition.
    pub(crate) inputs: Vec<InputMove>,
    /// The internal and changelog topics.
    pub(crate) recreate: Vec<Recreate>,
    /// The topics left alone (sinks, the DLQ, the redrive ledger).
    pub(crate) untouched: Vec<String>,
    /// The local state directory this command wipes, if one was given.
    pub(crate) state_dir: Option<StateDir>,
}

/// Where every instance keeps its state: what an operator must wipe besides `--state-dir`.
pub(crate) const EVERY_STATE_DIR: &str = "every instance's --state-dir (default ./.shelfsync/state; SHELFSYNC_STATE_DIR); in deploy/kubernetes each pod's volume: the PVCs state-shelfsync-<n>, mounted at /var/lib/shelfsync, including those of pods a scale-in removed";

impl Plan {
    /// The plan as text: the group check, each input partition's committed → new offset, the
    /// topics deleted and created again, the topics left alone, and the state to wipe.
    pub(crate) fn render(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(
            out,
            "reset of application {} (broker {}) {}",
            self.application_id,
            self.bootstrap,
            self.target.describe()
        );
        let _ = writeln!(out, "{}", self.group.describe(&self.application_id));
        let _ = writeln!(out, "input offsets of the group (committed → new):");
        let labels: Vec<String> = self
            .inputs
            .iter()
            .map(|m| format!("{}[{}]", m.topic, m.partition))
            .collect();
        let width = labels.iter().map(String::len).max().unwrap_or(0);
        for (m, label) in self.inputs.iter().zip(&labels) {
            let committed = m.committed.map_or("none".to_string(), |c| c.to_string());
            let _ = writeln!(
                out,
                "  {label:<width$} {committed} → {}  (records {}..{}; replays {})",
                m.new,
                m.low,
                m.high,
                m.high - m.new,
            );
        }
        let _ = writeln!(out, "topics to delete and create again, empty:");
        for r in &self.recreate {
            let now = match r.partitions {
                Some(n) => format!("{n} partition(s), {} record(s)", r.records),
                None => "absent: only created".into(),
            };
            let mut line = format!("  {} ({now})", r.name);
            if r.is_stage_input() {
                let committed: Vec<String> = r
                    .committed
                    .iter()
                    .map(|(p, o)| format!("{p}:{o}"))
                    .collect();
                let committed = if committed.is_empty() {
                    "none".to_string()
                } else {
                    committed.join(",")
                };
                let _ = write!(line, "; group offsets {committed} → 0 on the new topic");
            }
            let _ = writeln!(out, "{line}");
        }
        let _ = writeln!(out, "not touched: {}", self.untouched.join(", "));
        let _ = writeln!(
            out,
            "local state to wipe before `shelfsync run` starts again:"
        );
        let _ = writeln!(out, "  {EVERY_STATE_DIR}");
        if let Some(dir) = &self.state_dir {
            let _ = writeln!(
                out,
                "  {}: {} (wiped by this command)",
                dir.path.display(),
                dir.describe()
            );
        }
        if let Target::Time(ms) = self.target {
            let _ = writeln!(
                out,
                "note: the stores are rebuilt only from the input at or after {}: stock, holds, orders and dedup history from before it are gone (the ERP's next snapshots set stock again)",
                time_text(ms)
            );
        }
        out
    }
}

/// A lineage number for the replay (see `engine::incarnation`): 52 bits, positive, never 0,
/// and different on every reset, so that the replay's stamps (`<task>@<lineage>/…`) are never
/// taken for an earlier run's, nor an earlier run's outputs for the replay's own.
pub(crate) fn new_lineage() -> i64 {
    use std::hash::{BuildHasher, Hasher};
    // `RandomState` is seeded from the OS per process; the clock and pid make two resets of one
    // process differ too.
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    ((h.finish() >> 12) as i64) | 1
}

/// The metadata of the reset's group commits: the engine's own form
/// ([`shelfsync_pipeline::engine::fresh_start_metadata`]) with the new lineage and the last
/// offset of every external output partition at the reset. A task that opens without a
/// checkpoint — every task after the state directories were wiped — takes its lineage from it
/// and scans its output tails only past those ends, so nothing the earlier run wrote is taken
/// for the replay's own output.
pub(crate) fn commit_metadata(lineage: i64, ends: &BTreeMap<String, BTreeMap<i32, i64>>) -> String {
    let mut delivered = shelfsync_pipeline::engine::Delivered::default();
    for (topic, partitions) in ends {
        for (p, o) in partitions {
            delivered.record(topic, *p, *o);
        }
    }
    shelfsync_pipeline::engine::fresh_start_metadata(lineage, delivered)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_goes_to_the_log_start_and_a_time_to_its_first_offset_or_the_end() {
        assert_eq!(new_offset(Target::Earliest, 0, 130, None), 0);
        // Retention removed the first 40 records: the earliest is what is left.
        assert_eq!(new_offset(Target::Earliest, 40, 130, Some(90)), 40);
        let t = Target::Time(1_000);
        assert_eq!(new_offset(t, 0, 130, Some(57)), 57);
        // Nothing at or after the time: the end, nothing is replayed.
        assert_eq!(new_offset(t, 0, 130, None), 130);
        assert_eq!(new_offset(t, 0, 130, Some(-1)), 130);
        // An answer outside the partition (a race with retention or appends) is clamped.
        assert_eq!(new_offset(t, 40, 130, Some(12)), 40);
        assert_eq!(new_offset(t, 0, 130, Some(500)), 130);
        // An empty partition stays where it is.
        assert_eq!(new_offset(t, 7, 7, None), 7);
        assert_eq!(new_offset(Target::Earliest, 7, 7, None), 7);
    }

    #[test]
    fn the_commit_metadata_is_the_engines_form_with_the_lineage_and_the_output_ends() {
        let mut ends = BTreeMap::new();
        ends.insert("retail.dlq".to_string(), BTreeMap::from([(0, -1)]));
        ends.insert(
            "retail.channel.availability".to_string(),
            BTreeMap::from([(0, 211), (1, 198)]),
        );
        assert_eq!(
            commit_metadata(4_503, &ends),
            "d2;l=4503;retail.channel.availability=0:211,1:198;retail.dlq=0:-1"
        );
        assert_eq!(commit_metadata(77, &BTreeMap::new()), "d2;l=77");
        // Too long for the broker: the lineage alone.
        let many: BTreeMap<String, BTreeMap<i32, i64>> = (0..200)
            .map(|t| {
                (
                    format!("topic-{t}"),
                    (0..8).map(|p| (p, 123_456_789)).collect(),
                )
            })
            .collect();
        assert_eq!(commit_metadata(5, &many), "d2;l=5");
    }

    #[test]
    fn lineages_are_positive_52_bit_and_differ() {
        let a = new_lineage();
        let b = new_lineage();
        assert_ne!(a, b);
        for l in [a, b] {
            assert!(l > 0 && l < 1 << 52, "{l}");
        }
    }

    #[test]
    fn the_group_check_refuses_members_and_unknown_states_naming_the_members() {
        assert_eq!(GroupCheck::of(None), GroupCheck::Absent);
        assert_eq!(
            GroupCheck::of(Some(("Empty".into(), vec![]))),
            GroupCheck::Idle("Empty".into())
        );
        assert!(GroupCheck::of(Some(("Dead".into(), vec![])))
            .refusal("app")
            .is_none());
        let busy = GroupCheck::of(Some((
            "Stable".into(),
            vec![Member {
                id: "rdkafka-1f2e".into(),
                client_id: "rdkafka".into(),
                host: "/10.0.0.7".into(),
            }],
        )));
        let why = busy.refusal("app").unwrap_or_default();
        assert!(
            why.contains("rdkafka at /10.0.0.7 (member rdkafka-1f2e)") && why.contains("1 member"),
            "{why}"
        );
        // Described with an error (e.g. a `consumer` protocol group): no state, no members.
        let unknown = GroupCheck::of(Some((String::new(), vec![])));
        assert!(unknown
            .refusal("app")
            .is_some_and(|w| w.contains("not Empty")));
    }

    #[test]
    fn the_plan_shows_every_partition_move_and_every_topic() {
        let plan = Plan {
            application_id: "shop".into(),
            bootstrap: "k:9092".into(),
            target: Target::Time(0),
            group: GroupCheck::Idle("Empty".into()),
            inputs: vec![
                InputMove {
                    topic: "raw".into(),
                    partition: 0,
                    committed: Some(130),
                    low: 0,
                    high: 130,
                    new: 57,
                },
                InputMove {
                    topic: "raw".into(),
                    partition: 1,
                    committed: None,
                    low: 0,
                    high: 0,
                    new: 0,
                },
            ],
            recreate: vec![
                Recreate {
                    id: TopicId::Orders,
                    name: "shop-orders".into(),
                    partitions: Some(2),
                    records: 12,
                    committed: vec![(0, 7), (1, 5)],
                },
                Recreate {
                    id: TopicId::Instances,
                    name: "shop-instances".into(),
                    partitions: None,
                    records: 0,
                    committed: vec![],
                },
            ],
            untouched: vec!["avail".into(), "dlq".into()],
            state_dir: None,
        };
        let text = plan.render();
        for want in [
            "reset of application shop (broker k:9092) to the first offsets at or after 1970-01-01T00:00:00.000Z",
            "consumer group shop: Empty, no members: ok",
            "raw[0] 130 → 57  (records 0..130; replays 73)",
            "raw[1] none → 0  (records 0..0; replays 0)",
            "shop-orders (2 partition(s), 12 record(s)); group offsets 0:7,1:5 → 0 on the new topic",
            "shop-instances (absent: only created)\n",
            "not touched: avail, dlq",
            "every instance's --state-dir",
            "note: the stores are rebuilt only from the input at or after",
        ] {
            assert!(text.contains(want), "{want:?} not in:\n{text}");
        }
    }
}
