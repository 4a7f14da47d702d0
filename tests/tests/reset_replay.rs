//! Issue 19: `shelfsync reset` and a replay that no consumer can tell from the first run.
//!
//! A generated day runs through `shelfsync run` until the outputs equal the model; the pipeline
//! stops. `reset --to-earliest --dry-run` prints the plan and changes nothing (the group's
//! offsets, the internal topics); a dry run `--to-datetime` names, for every source partition,
//! the first offset at or after the time. `reset --to-earliest --state-dir <the dir>` then moves
//! the group's input offsets to the beginning, deletes and recreates the internal and changelog
//! topics (empty, the group's offsets of them at 0) and wipes the state directory; `run` starts
//! again on it, and the day's outputs, read from after the first run's, equal the model again.
//! A consumer that reads the availability, validated-order and order-status topics whole and
//! drops every `event_id` it has seen gets nothing from the replay: every output of the second
//! run carries an `event_id` the first run emitted, with the same record (for availability the
//! same channel, SKU, version and quantity), and the replay emitted every one of them again.
//!
//! Two partitions per topic. The replay applies the same input in the same event-time order per
//! SKU (the inventory stage aligns its upstreams), so availability is the same record for
//! record. Statuses and validated orders are assembled from line results of every inventory
//! partition, in the order they arrive; a backorder fill that overtakes another line of its
//! revision (from another partition) is held until the revision is whole, so the first run (fed
//! live) and the replay (a backlog) emit the same. The day is checked to have fills that change
//! a status.
//!
//! A second test: the reset refuses (exit non-zero, naming the member) while a pipeline runs,
//! with or without `--dry-run`, and changes nothing.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_schemas::{ChannelAvailability, OrderStatus, ValidatedOrder};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::{decode_all, final_quantities, final_statuses, Setup};
use shelfsync_tests::kafka_io::{count, read_topic, Record};
use shelfsync_tests::scenario::{Expected, Model};
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 19_000_019;
const EVENTS: usize = 200;
/// Partitions per topic.
const PARTITIONS: i32 = 2;
const WAIT: Duration = Duration::from_secs(180);
/// The output topics a consumer reads.
const OUTPUTS: [TopicId; 3] = [
    TopicId::Availability,
    TopicId::ValidatedOrders,
    TopicId::OrderStatus,
];
/// The stage inputs the group commits: the sources, then the internal topics.
const GROUP_INPUTS: [TopicId; 6] = [
    TopicId::RawOrders,
    TopicId::ErpInventory,
    TopicId::ErpProducts,
    TopicId::Orders,
    TopicId::InventoryCommands,
    TopicId::LineResults,
];
/// The topics the reset deletes and recreates.
const RECREATED: [TopicId; 7] = [
    TopicId::Orders,
    TopicId::InventoryCommands,
    TopicId::LineResults,
    TopicId::Instances,
    TopicId::Changelog(shelfsync_topology::Store::Dedupe),
    TopicId::Changelog(shelfsync_topology::Store::Inventory),
    TopicId::Changelog(shelfsync_topology::Store::Assemble),
];

/// Runs `shelfsync reset --topology FILE args…`: whether it succeeded, and stdout + stderr.
fn reset(s: &Setup, args: &[&str]) -> Result<(bool, String)> {
    let out = Command::new(BIN)
        .arg("reset")
        .arg("--topology")
        .arg(&s.topology_path)
        .args(args)
        .env("SHELFSYNC_LOG", "warn")
        .output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("$ shelfsync reset {}\n{text}", args.join(" "));
    Ok((out.status.success(), text))
}

/// The group's committed offsets (with metadata) of every stage input partition.
fn group_offsets(s: &Setup) -> Result<BTreeMap<(String, i32), (i64, String)>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .set("group.id", &s.topology.application_id)
        .set("enable.auto.commit", "false")
        .create()?;
    let mut tpl = TopicPartitionList::new();
    for id in GROUP_INPUTS {
        for p in 0..s.topology.partitions(id) {
            tpl.add_partition(&s.topic(id), p);
        }
    }
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(10))?;
    Ok(committed
        .elements()
        .iter()
        .filter_map(|e| match e.offset() {
            Offset::Offset(o) => Some((
                (e.topic().to_string(), e.partition()),
                (o, e.metadata().to_string()),
            )),
            _ => None,
        })
        .collect())
}

/// Records on each recreated topic.
fn recreated_counts(s: &Setup) -> Result<BTreeMap<String, i64>> {
    RECREATED
        .into_iter()
        .map(|id| Ok((s.topic(id), count(&s.broker.bootstrap(), &s.topic(id))?)))
        .collect()
}

/// Each output topic, whole.
fn read_outputs(s: &Setup) -> Result<BTreeMap<TopicId, Vec<Record>>> {
    OUTPUTS
        .into_iter()
        .map(|id| Ok((id, read_topic(&s.broker.bootstrap(), &s.topic(id))?)))
        .collect()
}

/// Per output topic and partition, the first offset after `records`.
type Ends = BTreeMap<TopicId, BTreeMap<i32, i64>>;

fn ends_of(outputs: &BTreeMap<TopicId, Vec<Record>>) -> Ends {
    outputs
        .iter()
        .map(|(id, records)| {
            let mut ends = BTreeMap::new();
            for r in records {
                let e = ends.entry(r.partition).or_insert(0);
                *e = (*e).max(r.offset + 1);
            }
            (*id, ends)
        })
        .collect()
}

/// The records of `outputs` at or after `ends`: what the replay wrote.
fn after(outputs: &BTreeMap<TopicId, Vec<Record>>, ends: &Ends) -> BTreeMap<TopicId, Vec<Record>> {
    outputs
        .iter()
        .map(|(id, records)| {
            let later = records
                .iter()
                .filter(|r| r.offset >= ends[id].get(&r.partition).copied().unwrap_or(0))
                .cloned()
                .collect();
            (*id, later)
        })
        .collect()
}

/// The finals (last status per order, last quantity per (channel, SKU)) of `outputs`.
fn finals_of(outputs: &BTreeMap<TopicId, Vec<Record>>) -> Result<shelfsync_tests::harness::Finals> {
    let statuses: Vec<OrderStatus> = decode_all(&outputs[&TopicId::OrderStatus])?;
    let avail: Vec<ChannelAvailability> = decode_all(&outputs[&TopicId::Availability])?;
    Ok((final_statuses(&statuses), final_quantities(&avail)))
}

fn event_id(r: &Record) -> Result<&str> {
    r.headers
        .get("shelfsync-event-id")
        .map(String::as_str)
        .with_context(|| format!("{}[{}]@{} has no event id", r.topic, r.partition, r.offset))
}

/// An output's decoded record, for comparing the replay's with the first run's.
fn decoded(id: TopicId, r: &Record) -> Result<String> {
    let one = std::slice::from_ref(r);
    Ok(match id {
        TopicId::Availability => format!("{:?}", decode_all::<ChannelAvailability>(one)?),
        TopicId::ValidatedOrders => format!("{:?}", decode_all::<ValidatedOrder>(one)?),
        _ => format!("{:?}", decode_all::<OrderStatus>(one)?),
    })
}

/// The line of the plan `text` about `label` (`topic[partition]`), its spaces collapsed.
fn plan_line(text: &str, label: &str) -> Option<String> {
    text.lines()
        .find(|l| l.trim_start().starts_with(&format!("{label} ")))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// `ms` since the epoch as RFC 3339 in UTC, with milliseconds.
fn rfc3339(ms: i64) -> String {
    let (days, rem) = (ms.div_euclid(86_400_000), ms.rem_euclid(86_400_000));
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1_000 % 60,
        rem % 1_000
    )
}

/// Checks that the day has backorder fills that change an order's status (revisions with two
/// statuses), and says how many of those orders have lines on several inventory partitions
/// (where a fill can overtake the order's other line results: the assemble stage holds it).
fn fills_change_statuses(expected: &Expected) -> Result<()> {
    let mut per_revision: BTreeMap<(&str, i32), usize> = BTreeMap::new();
    for st in &expected.statuses {
        *per_revision
            .entry((&st.order_key, st.revision))
            .or_default() += 1;
    }
    let filled: Vec<(&str, i32)> = per_revision
        .into_iter()
        .filter(|(_, n)| *n > 1)
        .map(|(k, _)| k)
        .collect();
    ensure!(!filled.is_empty(), "the day has no backorder fill");
    let mut spread = 0;
    for (order, revision) in &filled {
        let v = expected
            .validated
            .iter()
            .find(|v| v.order_key == *order && v.revision == *revision)
            .with_context(|| format!("{order} revision {revision}: no validated order"))?;
        let partitions: BTreeSet<i32> = v
            .lines
            .iter()
            .map(|l| shelfsync_pipeline::kafka::partition_for_key(l.sku.as_bytes(), PARTITIONS))
            .collect();
        spread += usize::from(partitions.len() > 1);
    }
    eprintln!(
        "{} revision(s) whose status a backorder fill changed, {spread} with lines on several inventory partitions",
        filled.len()
    );
    Ok(())
}

fn model(topology: &Topology, day: &Day) -> Result<Expected> {
    let mut model = Model::new(topology);
    for e in &day.events {
        model.feed(e)?;
    }
    Ok(model.expected)
}

#[test]
fn a_reset_replays_the_day_and_a_consumer_that_drops_seen_event_ids_sees_nothing_new() -> Result<()>
{
    let s = Setup::new(BIN, "reset-replay", PARTITIONS)?;
    let day = Day::generate(SEED, EVENTS);
    let expected = model(&s.topology, &day)?;
    let want = (
        final_statuses(&expected.statuses),
        final_quantities(&expected.availability),
    );

    fills_change_statuses(&expected)?;

    // The first run, to the model.
    let p = s.start("a")?;
    s.wait_for_tasks(&p, WAIT)?;
    s.feed_after_start(&day.events)?;
    s.wait_for_model(&expected, WAIT, || p.log_tail())?;
    std::thread::sleep(Duration::from_secs(2));
    p.stop()?;
    let first = read_outputs(&s)?;
    let ends = ends_of(&first);
    s.no_duplicate_outputs()?;
    ensure!(
        finals_of(&first)? == want,
        "the first run moved after it matched"
    );
    eprintln!(
        "first run: {} availability, {} validated orders, {} statuses (model: {}, {}, {})",
        first[&TopicId::Availability].len(),
        first[&TopicId::ValidatedOrders].len(),
        first[&TopicId::OrderStatus].len(),
        expected.availability.len(),
        expected.validated.len(),
        expected.statuses.len()
    );

    // A dry run changes nothing.
    let offsets = group_offsets(&s)?;
    let counts = recreated_counts(&s)?;
    ensure!(
        counts.values().all(|n| *n > 0),
        "the internal topics should hold the first run's records: {counts:?}"
    );
    let (ok, dry) = reset(&s, &["--to-earliest", "--dry-run"])?;
    ensure!(ok, "the dry run failed");
    ensure!(
        dry.contains("consumer group reset-replay: Empty, no members: ok")
            && dry.contains("dry run: nothing was changed"),
        "dry run: {dry}"
    );
    for id in [
        TopicId::RawOrders,
        TopicId::ErpInventory,
        TopicId::ErpProducts,
    ] {
        for p in 0..PARTITIONS {
            let label = format!("{}[{p}]", s.topic(id));
            // Stopped cleanly, the group committed each source partition's end.
            let want = match offsets.get(&(s.topic(id), p)) {
                Some((c, _)) => format!("{label} {c} → 0 (records 0..{c}; replays {c})"),
                None => format!("{label} none → 0 (records 0..0; replays 0)"),
            };
            let got = plan_line(&dry, &label);
            ensure!(
                got.as_deref() == Some(want.as_str()),
                "plan: {got:?}, want {want:?}"
            );
        }
    }
    for id in RECREATED {
        ensure!(
            dry.contains(&format!("  {} (", s.topic(id))),
            "{id:?} not in the plan"
        );
    }
    ensure!(
        group_offsets(&s)? == offsets,
        "the dry run moved the group's offsets"
    );
    ensure!(
        recreated_counts(&s)? == counts,
        "the dry run touched the internal topics"
    );

    // A dry run to a time in the middle of the day: each source partition's first offset at or
    // after it.
    let middle = day.events[day.events.len() / 2].timestamp;
    let at = rfc3339(middle);
    let (ok, dry) = reset(&s, &["--to-datetime", &at, "--dry-run"])?;
    ensure!(ok, "the dry run to {at} failed");
    let raw = read_topic(&s.broker.bootstrap(), &s.topic(TopicId::RawOrders))?;
    for p in 0..PARTITIONS {
        let of_p: Vec<&Record> = raw.iter().filter(|r| r.partition == p).collect();
        let new = of_p
            .iter()
            .find(|r| r.timestamp.unwrap_or(0) >= middle)
            .map_or(of_p.len() as i64, |r| r.offset);
        let label = format!("{}[{p}]", s.topic(TopicId::RawOrders));
        let want = format!("{label} {} → {new} ", of_p.len());
        let got = plan_line(&dry, &label).unwrap_or_default();
        ensure!(
            got.starts_with(&want),
            "plan to {at}: {got:?}, want {want:?}…"
        );
    }
    ensure!(
        group_offsets(&s)? == offsets,
        "the dry run moved the group's offsets"
    );

    // The reset, and the replay.
    let state = s.dir.path().join("a");
    let state_arg = state.to_str().context("path")?;
    let (ok, done) = reset(&s, &["--to-earliest", "--state-dir", state_arg])?;
    ensure!(ok, "the reset failed");
    ensure!(
        done.contains(&format!("wiped {state_arg}")),
        "no wipe: {done}"
    );
    ensure!(
        std::fs::read_dir(&state)?.count() == 0,
        "the state dir is not empty"
    );
    let lineage: i64 = done
        .split("replay lineage ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .context("no lineage printed")?
        .parse()?;
    for (tp, (offset, meta)) in group_offsets(&s)? {
        ensure!(offset == 0, "{tp:?} committed at {offset}, not 0");
        ensure!(
            meta.starts_with(&format!("d2;l={lineage};")),
            "{tp:?}: metadata {meta:?}"
        );
    }
    ensure!(
        recreated_counts(&s)?.values().all(|n| *n == 0),
        "the recreated topics are not empty"
    );

    let p = s.start("a")?;
    s.wait_for_tasks(&p, WAIT)?;
    let deadline = Instant::now() + WAIT;
    let replay = loop {
        let replay = after(&read_outputs(&s)?, &ends);
        let enough = OUTPUTS.iter().all(|id| replay[id].len() >= first[id].len());
        if enough && finals_of(&replay)? == want {
            break replay;
        }
        ensure!(
            Instant::now() < deadline,
            "the replay did not reach the model: {:?} of {:?} records\n{}",
            OUTPUTS.map(|id| replay[&id].len()),
            OUTPUTS.map(|id| first[&id].len()),
            p.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    std::thread::sleep(Duration::from_secs(3));
    let log = p.log();
    p.stop()?;
    ensure!(
        after(&read_outputs(&s)?, &ends) == replay,
        "the replay wrote more after it matched the model"
    );
    ensure!(
        log.matches("resuming from local checkpoint").count() == 0,
        "a task resumed from local state after the reset"
    );

    // A consumer that reads each topic whole and drops every event_id it has seen.
    for id in OUTPUTS {
        let mut seen: BTreeMap<&str, String> = BTreeMap::new();
        for r in &first[&id] {
            seen.insert(event_id(r)?, decoded(id, r)?);
        }
        let mut new = Vec::new();
        let mut replayed = BTreeSet::new();
        for r in &replay[&id] {
            let eid = event_id(r)?;
            match seen.get(eid) {
                None => new.push(decoded(id, r)?),
                Some(was) => {
                    let now = decoded(id, r)?;
                    ensure!(
                        *was == now,
                        "{id:?}: event_id {eid} came back with another record:\nfirst:  {was}\nreplay: {now}"
                    );
                    replayed.insert(eid);
                }
            }
            let stamp = r.headers.get("shelfsync-stamp").map_or("", String::as_str);
            ensure!(
                stamp.contains(&format!("@{lineage}/")),
                "{id:?}: the replay's stamp {stamp:?} is not in the reset's lineage {lineage}"
            );
        }
        ensure!(
            new.is_empty(),
            "{id:?}: {} output(s) of the replay a consumer had not seen: {:#?}",
            new.len(),
            &new[..new.len().min(5)]
        );
        ensure!(
            replayed.len() == seen.len() && replay[&id].len() == first[&id].len(),
            "{id:?}: the replay emitted {} of the first run's {} event_ids ({} records)",
            replayed.len(),
            seen.len(),
            replay[&id].len()
        );
        eprintln!(
            "{id:?}: {} records replayed, every one a repeat of the first run's",
            replay[&id].len()
        );
    }
    Ok(())
}

#[test]
fn the_reset_refuses_while_a_pipeline_is_running() -> Result<()> {
    let s = Setup::new(BIN, "reset-busy", 1)?;
    let day = Day::generate(SEED, 40);
    let expected = model(&s.topology, &day)?;
    let p = s.start("a")?;
    s.wait_for_tasks(&p, WAIT)?;
    s.feed_live(&day.events)?;
    s.wait_for_model(&expected, WAIT, || p.log_tail())?;
    std::thread::sleep(Duration::from_secs(3));
    let offsets = group_offsets(&s)?;
    let counts = recreated_counts(&s)?;
    let state = s.dir.path().join("a");
    let files = std::fs::read_dir(&state)?.count();
    let state_arg = state.to_str().context("path")?;
    for args in [
        vec!["--to-earliest", "--dry-run"],
        vec!["--to-earliest", "--state-dir", state_arg],
        vec!["--by-duration", "2h"],
    ] {
        let (ok, text) = reset(&s, &args)?;
        ensure!(!ok, "reset {args:?} went on while a pipeline runs");
        ensure!(
            text.contains("the consumer group reset-busy has 1 member(s)")
                && text.contains("rdkafka at /127.0.0.1 (member rdkafka-")
                && text.contains("nothing was changed"),
            "reset {args:?}: {text}"
        );
    }
    let source_names: Vec<String> = [
        TopicId::RawOrders,
        TopicId::ErpInventory,
        TopicId::ErpProducts,
    ]
    .into_iter()
    .map(|id| s.topic(id))
    .collect();
    let sources = |o: &BTreeMap<(String, i32), (i64, String)>| -> BTreeMap<(String, i32), i64> {
        o.iter()
            .filter(|((t, _), _)| source_names.contains(t))
            .map(|(k, v)| (k.clone(), v.0))
            .collect()
    };
    ensure!(
        sources(&group_offsets(&s)?) == sources(&offsets),
        "the refused reset moved the group's input offsets"
    );
    let now = recreated_counts(&s)?;
    ensure!(
        now.iter().all(|(t, n)| *n >= counts[t]),
        "the refused reset deleted a topic: {counts:?} → {now:?}"
    );
    ensure!(
        std::fs::read_dir(&state)?.count() >= files && files > 0,
        "the refused reset wiped the state dir"
    );
    p.stop()?;
    Ok(())
}

#[test]
fn rfc3339_of_epoch_milliseconds() {
    assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    assert_eq!(rfc3339(1_796_551_200_250), "2026-12-06T10:00:00.250Z");
    assert_eq!(rfc3339(951_782_400_000), "2000-02-29T00:00:00.000Z");
}
