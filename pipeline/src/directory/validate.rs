//! What an announcement read from `<application_id>-instances` must look like before the
//! directory believes it. Anyone who can write the topic can write anything on it, so every
//! field is checked against what a `shelfsync run` instance writes, with room for clock skew:
//!
//! | field | accepted |
//! |---|---|
//! | record | value at most [`MAX_RECORD_BYTES`] |
//! | key | equal to `instance_id` |
//! | `instance_id` | 1 to [`MAX_ID_LEN`] printable ASCII characters, no spaces |
//! | `http_url` | `http(s)://host[:port]`, at most a trailing `/` ([`PeerUrl`]) |
//! | `ttl_ms` | `1..=`[`MAX_TTL_MS`] (10 minutes; this version announces at most 3 × [`super::MAX_INTERVAL`]) |
//! | `announced_at` | at most [`FUTURE_TOLERANCE_MS`] ahead of this host's clock |
//! | `tasks` | at most [`MAX_TASKS`], each `<stage>-<partition>` of a known stage, claimed `since` no later than `announced_at` |
//!
//! So a claim lives at most 10 minutes plus the tolerance after the last announcement that
//! made it, and cannot win over later claims by claiming a time in the future.

use shelfsync_schemas::InstanceAnnouncement;
use shelfsync_topology::Stage;

use super::peer::PeerUrl;

/// The largest announcement value read (an instance holding 1000 tasks writes about 25 KiB).
pub const MAX_RECORD_BYTES: usize = 64 * 1024;
/// The longest instance id.
pub const MAX_ID_LEN: usize = 253;
/// The longest TTL believed.
pub const MAX_TTL_MS: i64 = 10 * 60 * 1000;
/// How far ahead of this host's clock an announcement may be dated (clock skew).
pub const FUTURE_TOLERANCE_MS: i64 = 60 * 1000;
/// The most tasks one announcement may claim.
pub const MAX_TASKS: usize = 1024;
/// The largest partition number in a task name.
const MAX_PARTITION: u32 = 99_999;

/// Why an announcement was not believed; [`Rejected::reason`] is the metric label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// One of [`REASONS`].
    pub reason: &'static str,
    /// What was wrong, for the log (never the offending value beyond a bounded excerpt).
    pub detail: String,
}

/// Every value of [`Rejected::reason`] (the `reason` label of
/// [`crate::metrics::DIRECTORY_REJECTED`]).
pub const REASONS: [&str; 7] = [
    "oversized",
    "undecodable",
    "key",
    "url",
    "ttl",
    "time",
    "tasks",
];

fn rejected(reason: &'static str, detail: impl Into<String>) -> Rejected {
    Rejected {
        reason,
        detail: detail.into(),
    }
}

/// Checks `a`, read under `key`, at `now` (epoch ms): `Ok` when the directory may believe it.
///
/// # Errors
/// The first rule of the module table it breaks.
pub fn validate(key: &str, a: &InstanceAnnouncement, now: i64) -> Result<(), Rejected> {
    if a.instance_id != key {
        return Err(rejected("key", "the record key is not its instance_id"));
    }
    if a.instance_id.is_empty()
        || a.instance_id.len() > MAX_ID_LEN
        || !a.instance_id.chars().all(|c| c.is_ascii_graphic())
    {
        return Err(rejected(
            "key",
            format!("instance_id is not 1 to {MAX_ID_LEN} printable ASCII characters"),
        ));
    }
    PeerUrl::parse(&a.http_url).map_err(|why| rejected("url", format!("http_url: {why}")))?;
    if !(1..=MAX_TTL_MS).contains(&a.ttl_ms) {
        return Err(rejected(
            "ttl",
            format!("ttl_ms {} is not within 1..={MAX_TTL_MS}", a.ttl_ms),
        ));
    }
    if a.announced_at > now.saturating_add(FUTURE_TOLERANCE_MS) {
        return Err(rejected(
            "time",
            format!(
                "announced_at is {} ms ahead of this host's clock (at most {FUTURE_TOLERANCE_MS})",
                a.announced_at.saturating_sub(now)
            ),
        ));
    }
    if a.tasks.len() > MAX_TASKS {
        return Err(rejected(
            "tasks",
            format!("{} tasks claimed (at most {MAX_TASKS})", a.tasks.len()),
        ));
    }
    for claim in &a.tasks {
        if !is_task_name(&claim.task) {
            return Err(rejected(
                "tasks",
                "a task name is not <stage>-<partition> of a known stage",
            ));
        }
        if claim.since > a.announced_at {
            return Err(rejected(
                "time",
                "a task is claimed since a time after the announcement",
            ));
        }
    }
    Ok(())
}

/// `<stage>-<partition>` ([`crate::engine::task_name`]) of a stage of [`Stage::ALL`], the
/// partition a decimal number without leading zeros.
fn is_task_name(task: &str) -> bool {
    let Some((stage, partition)) = task.rsplit_once('-') else {
        return false;
    };
    Stage::ALL.iter().any(|s| s.name() == stage)
        && (partition == "0" || !partition.starts_with('0'))
        && !partition.is_empty()
        && partition.bytes().all(|b| b.is_ascii_digit())
        && partition.parse::<u32>().is_ok_and(|p| p <= MAX_PARTITION)
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfsync_schemas::TaskClaim;

    const NOW: i64 = 1_800_000_000_000;

    fn good() -> InstanceAnnouncement {
        InstanceAnnouncement {
            instance_id: "shelfsync-0".into(),
            http_url: "http://shelfsync-0.shelfsync.retail.svc:9464".into(),
            announced_at: NOW,
            ttl_ms: 15_000,
            tasks: ["inventory-0", "erp-inventory-11", "dedupe-2"]
                .iter()
                .map(|t| TaskClaim {
                    task: (*t).into(),
                    since: NOW - 1_000,
                    opening: false,
                })
                .collect(),
        }
    }

    fn reason(a: &InstanceAnnouncement) -> Option<&'static str> {
        validate("shelfsync-0", a, NOW).err().map(|r| r.reason)
    }

    #[test]
    fn what_an_instance_writes_is_believed() {
        assert_eq!(reason(&good()), None);
        let mut a = good();
        a.announced_at = NOW + FUTURE_TOLERANCE_MS;
        a.ttl_ms = MAX_TTL_MS;
        a.tasks.clear();
        assert_eq!(
            reason(&a),
            None,
            "skewed within the tolerance, longest TTL, no task"
        );
    }

    #[test]
    fn hostile_announcements_are_refused_with_their_reason() {
        type Spoil = Box<dyn Fn(&mut InstanceAnnouncement)>;
        let cases: Vec<(&str, Spoil)> = vec![
            ("key", Box::new(|a| a.instance_id = "someone-else".into())),
            (
                "url",
                Box::new(|a| a.http_url = "http://127.0.0.1:9/?x".into()),
            ),
            (
                "url",
                Box::new(|a| a.http_url = "http://127.0.0.1:9/#x".into()),
            ),
            (
                "url",
                Box::new(|a| a.http_url = "http://u@127.0.0.1:9".into()),
            ),
            (
                "url",
                Box::new(|a| a.http_url = "http://127.0.0.1:9/admin".into()),
            ),
            ("ttl", Box::new(|a| a.ttl_ms = i64::MAX)),
            ("ttl", Box::new(|a| a.ttl_ms = 0)),
            ("ttl", Box::new(|a| a.ttl_ms = -1)),
            ("ttl", Box::new(|a| a.ttl_ms = MAX_TTL_MS + 1)),
            ("time", Box::new(|a| a.announced_at = i64::MAX)),
            (
                "time",
                Box::new(|a| a.announced_at = NOW + FUTURE_TOLERANCE_MS + 1),
            ),
            ("time", Box::new(|a| a.tasks[0].since = i64::MAX)),
            ("tasks", Box::new(|a| a.tasks[0].task = "inventory".into())),
            ("tasks", Box::new(|a| a.tasks[0].task = "secrets-0".into())),
            (
                "tasks",
                Box::new(|a| a.tasks[0].task = "inventory-01".into()),
            ),
            (
                "tasks",
                Box::new(|a| a.tasks[0].task = "inventory--1".into()),
            ),
            (
                "tasks",
                Box::new(|a| a.tasks[0].task = "inventory-100000".into()),
            ),
            (
                "tasks",
                Box::new(|a| {
                    let claim = a.tasks[0].clone();
                    a.tasks = vec![claim; MAX_TASKS + 1];
                }),
            ),
        ];
        for (want, spoil) in cases {
            let mut a = good();
            spoil(&mut a);
            assert_eq!(reason(&a), Some(want), "{a:?}");
        }
        let mut long = good();
        long.instance_id = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(
            validate(&long.instance_id.clone(), &long, NOW).map_err(|r| r.reason),
            Err("key")
        );
        for r in ["key", "url", "ttl", "time", "tasks"] {
            assert!(REASONS.contains(&r));
        }
    }
}
