//! A paused host's late changelog records are not history (issue 15, item 2), deterministically.
//!
//! `zombie.rs` freezes a real member, but whether its in-flight records land after the new
//! owner's depends on timing. This test puts them there on purpose. A generated day runs in
//! four quarters, each on one member that stops before the next starts on an **empty** state
//! dir, so every member restores every store from the changelogs:
//! - A runs the first quarter;
//! - B restores and runs the second (it takes the tasks over: its commits carry its segment);
//! - records A wrote in the first half of its changelogs are appended again to the same
//!   partitions, unchanged (A's writer id, A's input offsets, which are below the group's
//!   offset): what a host paused past its session timeout sends when it thaws. Before segments
//!   a restore applied them, putting back values B had moved past;
//! - C restores under B's segment, skips them, writes the keys they touched again, and runs
//!   the third quarter: its outputs equal the model of three quarters;
//! - D restores under C's segment (which applies A's records, then C's corrections) and runs
//!   the rest: every status and availability equals the model of the whole day.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{ensure, Result};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::{read_topic, send_waiting, Record};
use shelfsync_tests::scenario::{Expected, InputRecord, Model};
use shelfsync_topology::{Store, TopicId};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 2_020_017;
const EVENTS: usize = 240;
const WAIT: Duration = Duration::from_secs(180);

/// The model of `events`.
fn model(s: &Setup, events: &[InputRecord]) -> Result<Expected> {
    let mut m = Model::new(&s.topology);
    for e in events {
        m.feed(e)?;
    }
    Ok(m.expected)
}

/// Every record of the stores' changelogs.
fn changelogs(s: &Setup) -> Result<Vec<Record>> {
    let mut out = Vec::new();
    for store in Store::ALL {
        out.extend(read_topic(
            &s.broker.bootstrap(),
            &s.topic(TopicId::Changelog(store)),
        )?);
    }
    Ok(out)
}

/// Where a changelog record's value lives: topic, partition and key.
type RecordAt<'a> = (&'a str, i32, Option<&'a [u8]>);

/// Appends `records` again to their topics and partitions, with their keys, values and
/// headers; answers how many of them put back a value other than their key's latest.
fn append_again(s: &Setup, records: &[Record], now: &[Record]) -> Result<usize> {
    let latest: BTreeMap<RecordAt<'_>, Option<&[u8]>> = now
        .iter()
        .map(|r| {
            (
                (r.topic.as_str(), r.partition, r.key.as_deref()),
                r.value.as_deref(),
            )
        })
        .collect();
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .create()?;
    let mut older = 0;
    for r in records {
        let key = (r.topic.as_str(), r.partition, r.key.as_deref());
        if latest.get(&key).copied().flatten() != r.value.as_deref() {
            older += 1;
        }
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v.as_bytes()),
            });
        }
        let mut rec: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(&r.topic)
            .partition(r.partition)
            .headers(headers);
        if let Some(k) = &r.key {
            rec = rec.key(k);
        }
        if let Some(v) = &r.value {
            rec = rec.payload(v);
        }
        send_waiting(&producer, rec)?;
    }
    producer.flush(Duration::from_secs(60))?;
    Ok(older)
}

#[test]
fn a_paused_hosts_late_changelog_records_do_not_come_back_in_a_restore() -> Result<()> {
    let s = Setup::new(BIN, "latewriter", 2)?;
    let day = Day::generate(SEED, EVENTS);
    let quarter = day.events.len() / 4;
    let upto = |n: usize| &day.events[..(n * quarter).min(day.events.len())];

    s.run_until_model("a", upto(1), &model(&s, upto(1))?, WAIT)?;
    let of_a = changelogs(&s)?;
    let mut ends: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for r in &of_a {
        let end = ends.entry((r.topic.as_str(), r.partition)).or_default();
        *end = (*end).max(r.offset + 1);
    }
    let late: Vec<Record> = of_a
        .iter()
        .filter(|r| r.offset < ends[&(r.topic.as_str(), r.partition)] / 2)
        .cloned()
        .collect();

    let b = s.start("b")?;
    s.wait_for_tasks(&b, WAIT)?;
    s.feed_after_start(&day.events[quarter..2 * quarter])?;
    s.wait_for_model(&model(&s, upto(2))?, WAIT, || b.log_tail())?;
    b.stop()?;
    let older = append_again(&s, &late, &changelogs(&s)?)?;
    eprintln!(
        "appended {} of A's records again, {older} of them older than their key's latest",
        late.len()
    );
    ensure!(
        older > 0,
        "every record appended again equals its key's latest value: the test shows nothing"
    );

    let c = s.start("c")?;
    s.wait_for_tasks(&c, WAIT)?;
    s.feed_after_start(&day.events[2 * quarter..3 * quarter])?;
    s.wait_for_model(&model(&s, upto(3))?, WAIT, || c.log_tail())?;
    let c_log = c.log();
    c.stop()?;
    ensure!(
        c_log.contains("wrote again the keys whose latest changelog record"),
        "C did not correct the keys A's late records touched:\n{c_log}"
    );

    let d = s.start("d")?;
    s.wait_for_tasks(&d, WAIT)?;
    s.feed_after_start(&day.events[3 * quarter..])?;
    s.wait_for_model(&model(&s, &day.events)?, WAIT, || d.log_tail())?;
    let d_log = d.log();
    d.stop()?;
    eprintln!(
        "restores: C {}, D {}; D corrected again: {}",
        c_log.matches("restore finished").count(),
        d_log.matches("restore finished").count(),
        d_log.matches("wrote again the keys").count()
    );
    s.no_duplicate_outputs()?;
    Ok(())
}
