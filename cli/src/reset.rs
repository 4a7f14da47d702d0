//! `shelfsync reset`: the application reset tool (Kafka Streams' `kafka-streams-application-reset`
//! for shelfsync), for a replay from the beginning or from a point in time after a bad
//! deployment.
//!
//! With every `shelfsync run` of the application stopped — it refuses while the consumer group
//! `<application_id>` has members — it:
//!
//! 1. moves the group's committed offsets of the source topics (raw orders, ERP inventory, ERP
//!    products) to their beginning or to the first offset at or after a time (a partition with
//!    nothing from then on goes to its end);
//! 2. deletes the internal topics (`<app>-orders`, `-inventory-commands`, `-line-results`,
//!    `-instances`) and every store's changelog, waits until they are gone and creates them
//!    again, empty, as `shelfsync topics create` does;
//! 3. commits the stages' offsets of the new internal topics at 0, and every commit carries a
//!    new **lineage** (in the engine's commit metadata, see `plan::commit_metadata`): the tasks
//!    of the replay stamp their outputs in it and scan only what is written after the reset;
//! 4. says which local state directories to wipe (every instance's `--state-dir`), and wipes
//!    the one given with `--state-dir` after checking it is a shelfsync state directory.
//!
//! Sinks, the dead-letter topic and the redrive ledger are not touched. The replay's outputs for
//! what was emitted before carry the same `event_id`s (and, for availability, versions), so
//! consumers that drop repeats see nothing twice. `--dry-run` prints the plan and changes
//! nothing; nothing asks a question (it runs in CI and from a Kubernetes Job).

mod broker;
mod plan;
mod state_dir;

use std::path::PathBuf;
use std::time::Duration;

use anyhow::bail;
use shelfsync_topology::{Store, TopicId, Topology};

use broker::Broker;
pub use plan::Target;

/// `shelfsync reset …`.
#[derive(Debug, clap::Args)]
#[command(group(
    clap::ArgGroup::new("target")
        .required(true)
        .args(["to_earliest", "to_datetime", "by_duration"])
))]
pub struct ResetArgs {
    /// The topology file (TOML): its broker, application id and topics.
    #[arg(long, env = "SHELFSYNC_TOPOLOGY")]
    pub topology: PathBuf,
    /// Replay everything still on the source topics.
    #[arg(long)]
    pub to_earliest: bool,
    /// Replay from this time: RFC 3339 with a zone, `2026-12-06T10:00:00Z` or
    /// `2026-12-06T11:00:00+01:00`, compared with the records' timestamps.
    #[arg(long, value_parser = parse_datetime)]
    pub to_datetime: Option<i64>,
    /// Replay the last this long, e.g. `2h` (from now minus it).
    #[arg(long, value_parser = humantime::parse_duration)]
    pub by_duration: Option<Duration>,
    /// Print the plan (group check, each input partition's committed → new offset, the topics
    /// deleted and created again, the state to wipe) and change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Also wipe this local state directory (the `--state-dir` of a `shelfsync run` on this
    /// host); refused unless it is one. Never taken from `SHELFSYNC_STATE_DIR`: a wipe is asked
    /// for explicitly.
    #[arg(long)]
    pub state_dir: Option<PathBuf>,
    /// The longest wait for the broker per step, e.g. `60s`.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub timeout: Duration,
}

/// RFC 3339 with a zone (`Z` or `±HH:MM`) as epoch milliseconds. A time without a zone is
/// refused: for a reset, a guess is not good enough.
fn parse_datetime(text: &str) -> Result<i64, String> {
    let text = text.trim();
    let bad = || {
        format!("{text:?} is not an RFC 3339 time with a zone (2026-12-06T10:00:00Z, 2026-12-06T11:00:00+01:00)")
    };
    let (utc, offset_min) = if text.ends_with(['Z', 'z']) {
        (text.to_string(), 0)
    } else {
        let split = text.len().checked_sub(6).ok_or_else(bad)?;
        let (base, zone) = text.split_at_checked(split).ok_or_else(bad)?;
        let sign = match zone.as_bytes().first() {
            Some(b'+') => 1,
            Some(b'-') => -1,
            _ => return Err(bad()),
        };
        let (h, m) = zone[1..].split_once(':').ok_or_else(bad)?;
        let (h, m): (i64, i64) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        (format!("{base}Z"), sign * (h * 60 + m))
    };
    let t = humantime::parse_rfc3339_weak(&utc).map_err(|_| bad())?;
    let ms = t
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|_| bad())?
        .as_millis() as i64;
    Ok(ms - offset_min * 60_000)
}

fn now_ms() -> i64 {
    shelfsync_pipeline::clock::now_ms()
}

impl ResetArgs {
    /// The target the flags name; a time in the future is refused (it would replay nothing and
    /// leave every store empty).
    fn target(&self) -> anyhow::Result<Target> {
        let target = match (self.to_earliest, self.to_datetime, self.by_duration) {
            (true, _, _) => Target::Earliest,
            (_, Some(ms), _) => Target::Time(ms),
            (_, _, Some(d)) => Target::Time(now_ms() - i64::try_from(d.as_millis())?),
            _ => bail!("one of --to-earliest, --to-datetime, --by-duration is required"),
        };
        if let Target::Time(ms) = target {
            if ms > now_ms() {
                bail!(
                    "{} is in the future: nothing would be replayed and every store would start empty",
                    plan::time_text(ms)
                );
            }
        }
        Ok(target)
    }
}

/// The topics the reset deletes and creates again: the internal topics and every changelog.
fn recreated_topics() -> impl Iterator<Item = TopicId> {
    [
        TopicId::Orders,
        TopicId::InventoryCommands,
        TopicId::LineResults,
        TopicId::Instances,
    ]
    .into_iter()
    .chain(Store::ALL.map(TopicId::Changelog))
}

/// Runs `shelfsync reset` with the topology `load` reads: prints the plan, then (unless
/// `--dry-run`) carries it out and prints what it did.
///
/// # Errors
/// When the group has members, `--state-dir` is not a shelfsync state directory (both before
/// anything changed), when a member joined while it ran, or the broker refuses or does not
/// answer a step; a reset cut short can be run again.
pub fn run(
    args: ResetArgs,
    load: impl Fn(&PathBuf) -> anyhow::Result<Topology>,
) -> anyhow::Result<()> {
    let topology = load(&args.topology)?;
    if let Some(p) = topology
        .kafka
        .properties
        .get("group.protocol")
        .filter(|p| *p != "classic")
    {
        bail!("kafka.properties sets group.protocol = {p:?}: `shelfsync run` uses the classic protocol (cooperative-sticky) and cannot start with it, and the reset's group check sees classic groups only");
    }
    let target = args.target()?;
    let state = args
        .state_dir
        .as_deref()
        .map(state_dir::inspect)
        .transpose()?;
    let broker = Broker::new(&topology, args.timeout)?;
    let plan = broker.plan(target, state)?;
    print!("{}", plan.render());
    if let Some(why) = plan.group.refusal(&topology.application_id) {
        if args.dry_run {
            println!("dry run: nothing was changed; the reset would refuse");
        }
        bail!("{why}; nothing was changed");
    }
    if args.dry_run {
        println!("dry run: nothing was changed");
        return Ok(());
    }
    // Held during the reset: a `shelfsync run` on this host cannot open it meanwhile.
    let held = plan
        .state_dir
        .as_ref()
        .map(state_dir::StateDir::lock)
        .transpose()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let names: Vec<String> = plan.recreate.iter().map(|r| r.name.clone()).collect();
    broker.delete(&rt, &names)?;
    println!("deleted {}", names.join(", "));
    broker.create_again(&rt, &names)?;
    println!("created again, empty: {}", names.join(", "));

    let lineage = plan::new_lineage();
    let metadata = plan::commit_metadata(lineage, &broker.output_ends()?);
    let mut offsets: Vec<(String, i32, i64)> = plan
        .inputs
        .iter()
        .map(|m| (m.topic.clone(), m.partition, m.new))
        .collect();
    for id in [
        TopicId::Orders,
        TopicId::InventoryCommands,
        TopicId::LineResults,
    ] {
        let name = topology.topic_name(id);
        offsets.extend((0..topology.partitions(id)).map(|p| (name.clone(), p, 0)));
    }
    broker.commit(&offsets, &metadata)?;
    println!(
        "committed the group's offsets: {} input partition(s) as planned, the new internal topics at 0; replay lineage {lineage} (its outputs are stamped <task>@{lineage}/…)",
        plan.inputs.len()
    );
    if let Some(why) = broker.group_check()?.refusal(&topology.application_id) {
        bail!("{why}: it joined during the reset, which is done on the broker but not trusted; stop it, and run the reset again");
    }
    drop(held);
    if let Some(dir) = &plan.state_dir {
        let removed = dir.wipe()?;
        println!("wiped {} ({removed} files)", dir.path.display());
    }
    let others = if plan.state_dir.is_some() {
        "the other instances' state: "
    } else {
        ""
    };
    println!(
        "still to do before `shelfsync run` starts again: wipe {others}{}",
        plan::EVERY_STATE_DIR
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes_need_a_zone_and_honour_it() {
        let z = parse_datetime("2026-12-06T10:00:00Z").expect("Z");
        assert_eq!(parse_datetime("2026-12-06T11:00:00+01:00"), Ok(z));
        assert_eq!(parse_datetime("2026-12-06T08:30:00-01:30"), Ok(z));
        assert_eq!(parse_datetime("2026-12-06T10:00:00.250Z"), Ok(z + 250));
        for bad in [
            "2026-12-06T10:00:00",
            "2026-12-06",
            "yesterday",
            "+01:00",
            "2026-12-06T10:00:00+1:00",
        ] {
            assert!(parse_datetime(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_target_comes_from_exactly_one_flag_and_never_lies_ahead() {
        let args = |earliest, at: Option<i64>, ago: Option<Duration>| ResetArgs {
            topology: PathBuf::new(),
            to_earliest: earliest,
            to_datetime: at,
            by_duration: ago,
            dry_run: true,
            state_dir: None,
            timeout: Duration::from_secs(1),
        };
        assert_eq!(args(true, None, None).target().ok(), Some(Target::Earliest));
        assert_eq!(
            args(false, Some(5), None).target().ok(),
            Some(Target::Time(5))
        );
        let Ok(Target::Time(t)) = args(false, None, Some(Duration::from_secs(7_200))).target()
        else {
            panic!("--by-duration");
        };
        assert!((now_ms() - 7_200_000 - t).abs() < 60_000);
        let ahead = args(false, Some(now_ms() + 3_600_000), None).target();
        assert!(ahead.is_err_and(|e| e.to_string().contains("in the future")));
    }

    #[test]
    fn the_internal_topics_and_every_changelog_are_recreated_and_nothing_else() {
        let ids: Vec<TopicId> = recreated_topics().collect();
        assert_eq!(ids.len(), 4 + Store::ALL.len());
        for id in TopicId::ALL {
            let recreated = ids.contains(&id);
            let expected = matches!(
                id,
                TopicId::Orders
                    | TopicId::InventoryCommands
                    | TopicId::LineResults
                    | TopicId::Instances
                    | TopicId::Changelog(_)
            );
            assert_eq!(recreated, expected, "{id:?}");
        }
    }
}
