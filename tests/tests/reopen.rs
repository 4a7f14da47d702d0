//! Tasks open off the rebalance callback, and a restore cut short goes on (issue 15, item 7).
//!
//! A generated day's first half runs on member A, which stops. The inventory changelog's
//! partition 1 is then padded with `PAD` records (keys no operator reads), so restoring
//! `inventory-1` takes a while. B starts on an **empty** state dir:
//! - `inventory-1` restores on a thread of its own, off the rebalance callback (the tasks of one
//!   assignment then start together, so none runs ahead of an upstream assigned with it);
//! - B is stopped (SIGTERM) mid-restore: it exits cleanly and says where the restore stopped;
//! - B starts again on the same state dir: the restore goes on from there
//!   (`shelfsync_restores_resumed_total`), applying fewer records than a restore from the start;
//! - the rest of the day runs: every status and availability equals the model of the whole day,
//!   and no `event_id` appears twice.

use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::{read_topic, send_waiting, PipelineProcess};
use shelfsync_topology::{Store, TopicId};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 2_020_007;
const EVENTS: usize = 200;
/// Records padding the inventory changelog's partition 1.
const PAD: usize = 1_200_000;
const WAIT: Duration = Duration::from_secs(180);

/// Whether a line of `log` says `what` about task `task`.
fn says(log: &str, what: &str, task: &str) -> bool {
    log.lines().any(|l| l.contains(what) && l.contains(task))
}

/// `text` without ANSI colour sequences (`ESC [ … m`).
fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

fn wait_until(what: &str, wait: Duration, mut done: impl FnMut() -> Result<bool>) -> Result<()> {
    let deadline = Instant::now() + wait;
    while !done()? {
        if Instant::now() > deadline {
            bail!("timed out waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Ok(())
}

/// Appends `n` records to partition 1 of the inventory changelog, as if an epoch of its owner
/// (the writer of its records so far) below the group's offset had written them: a restore
/// applies every one.
fn pad_changelog(s: &Setup, n: usize) -> Result<()> {
    let producer: BaseProducer = ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .set("linger.ms", "20")
        .set("compression.type", "lz4")
        .create()?;
    let topic = s.topic(TopicId::Changelog(Store::Inventory));
    let owner = read_topic(&s.broker.bootstrap(), &topic)?
        .into_iter()
        .find(|r| r.partition == 1)
        .and_then(|r| r.headers.get("shelfsync-writer").cloned())
        .context("the inventory changelog's partition 1 has no record with a writer")?;
    let value = [7u8; 48];
    for i in 0..n {
        let key = format!("~pad/{i:09}");
        let headers = OwnedHeaders::new()
            .insert(Header {
                key: "shelfsync-input-offset",
                value: Some("0"),
            })
            .insert(Header {
                key: "shelfsync-writer",
                value: Some(owner.as_str()),
            });
        let rec = BaseRecord::to(&topic)
            .partition(1)
            .key(key.as_bytes())
            .payload(&value[..])
            .headers(headers);
        send_waiting(&producer, rec)?;
    }
    producer.flush(Duration::from_secs(120))?;
    Ok(())
}

#[test]
fn a_long_restore_runs_beside_the_other_tasks_and_goes_on_after_a_stop() -> Result<()> {
    let s = Setup::new(BIN, "reopen", 2)?;
    let day = Day::generate(SEED, EVENTS);
    let half = day.events.len() / 2;
    let (first, whole) = s.models_of_halves(&day.events, half)?;

    s.run_until_model("a", &day.events[..half], &first, WAIT)?;
    let padded = Instant::now();
    pad_changelog(&s, PAD)?;
    eprintln!(
        "padded the inventory changelog with {PAD} records in {:?}",
        padded.elapsed()
    );

    let mut b1 = s.start("b")?;
    wait_until("inventory-1 to start restoring", WAIT, || {
        Ok(says(
            &b1.log(),
            "restoring store from changelog",
            "inventory-1",
        ))
    })?;
    // Stopped once it has applied part of the changelog (its progress line, every 5 s of a
    // restore of about 10 s here): stopped before its first record, a "resumed" restore would
    // apply everything and show nothing.
    wait_until("inventory-1's restore to make progress", WAIT, || {
        Ok(strip_ansi(&b1.log())
            .lines()
            .any(|l| l.contains("restoring task=\"inventory-1\"") && l.contains(" at=")))
    })?;
    // Off the rebalance callback: the process answers its probes while the restore runs.
    ensure!(
        !says(&b1.log(), "restore finished", "inventory-1"),
        "inventory-1 finished restoring at once: the padding is too small to stop it mid-way"
    );
    let status = b1.terminate(Duration::from_secs(60))?;
    ensure!(
        status.is_some_and(|s| s.success()),
        "B did not stop cleanly mid-restore ({status:?}):\n{}",
        b1.log_tail()
    );
    ensure!(
        says(&b1.log(), "restore cut short", "inventory-1"),
        "B did not say where inventory-1's restore stopped:\n{}",
        b1.log_tail()
    );

    let b2 = PipelineProcess::start(
        std::path::Path::new(BIN),
        &s.topology_path,
        &s.dir.path().join("b"),
        &s.log_path("b2"),
    )?;
    // Everything but inventory-1 opens at once; the day goes on while it restores.
    wait_until("B's other tasks to open", WAIT, || {
        Ok(b2.log().matches("task opened").count() >= 11)
    })?;
    s.feed_live(&day.events[half..])?;
    s.wait_for_model(&whole, WAIT, || b2.log_tail())?;
    let log = b2.log();
    ensure!(
        says(&log, "resuming a restore cut short", "inventory-1"),
        "B's second start did not go on with inventory-1's restore:\n{}",
        b2.log_tail()
    );
    let plain = strip_ansi(&log);
    let applied: u64 = plain
        .lines()
        .find(|l| l.contains("restore finished") && l.contains("inventory-1"))
        .and_then(|l| l.split("applied=").nth(1))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .context("no 'restore finished' line with applied= for inventory-1")?;
    eprintln!("the resumed restore applied {applied} of at least {PAD} records");
    ensure!(
        applied < PAD as u64,
        "the resumed restore applied {applied} records: it started over"
    );
    std::thread::sleep(Duration::from_secs(2));
    s.no_duplicate_outputs()?;
    b2.stop()?;
    Ok(())
}
