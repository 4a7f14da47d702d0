//! A stop during a broker outage (issue 15, item 13): `shelfsync run` gets SIGTERM while the
//! broker is down and records of its epoch are unacknowledged. It must exit within
//! `--shutdown-timeout` (plus the bounded wait to leave the group) instead of waiting for the
//! broker for ever, and lose nothing: the unacknowledged epoch is not committed, and after the
//! broker and the pipeline restart the day's results are complete (every order's latest
//! revision has its status, every channel and SKU its availability), with no `event_id` twice.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::wait_for;
use shelfsync_tests::scenario::Model;
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 13_131_313;
const EVENTS: usize = 400;
const TIMEOUT_S: u64 = 5;
const WAIT: Duration = Duration::from_secs(180);

#[test]
fn sigterm_during_a_broker_outage_stops_within_the_timeout_and_loses_nothing() -> Result<()> {
    let mut s = Setup::new(BIN, "stop-outage", 2)?;
    let b = s.broker.bootstrap();
    let day = Day::generate(SEED, EVENTS);
    let mut model = Model::new(&s.topology);
    for e in &day.events {
        model.feed(e)?;
    }
    let expected = model.expected;
    let (first, second) = day.events.split_at(day.events.len() / 2);
    let timeout = format!("{TIMEOUT_S}s");
    let mut p = s.start_with_env("state", &[("SHELFSYNC_SHUTDOWN_TIMEOUT", timeout.as_str())])?;
    s.produce(first)?;
    wait_for(&b, &s.topic(TopicId::OrderStatus), WAIT, |r| !r.is_empty())
        .with_context(|| p.log_tail())?;
    // The rest arrives, and the broker dies while the pipeline is working on it.
    s.produce(second)?;
    std::thread::sleep(Duration::from_millis(150));
    s.broker.kill()?;
    std::thread::sleep(Duration::from_secs(1));
    let asked = Instant::now();
    let status = p.terminate(Duration::from_secs(60))?;
    let took = asked.elapsed();
    ensure!(
        status.is_some(),
        "still running 60 s after SIGTERM with the broker down; log:\n{}",
        p.log_tail()
    );
    // The timeout for the epoch, then at most the rest of it (≥ 2 s) to leave the group, 2 s
    // for the directory's tombstone, and a margin for a loaded machine.
    ensure!(
        took <= Duration::from_secs(TIMEOUT_S + 2 + 2 + 4),
        "stopping took {took:?} with --shutdown-timeout {timeout}; log:\n{}",
        p.log_tail()
    );
    eprintln!("stopped {took:?} after SIGTERM ({status:?})");
    drop(p);

    s.broker.restart()?;
    let p = s.start("state")?;
    // Nothing lost: every order's latest revision has its status and every (channel, SKU)
    // its availability. (The values themselves depend on the order in which the burst, cut by
    // the outage and replayed, reaches the inventory stage across two partitions; they are
    // reported, not asserted: see the closing note of issue 15.)
    let (eq_s, n_s, eq_a, n_a) = s.wait_for_nothing_lost(&expected, WAIT, || p.log_tail())?;
    eprintln!(
        "after the restart: {eq_s} of {n_s} statuses and {eq_a} of {n_a} availabilities equal the time-order model"
    );
    std::thread::sleep(Duration::from_secs(2));
    s.no_duplicate_outputs()?;
    p.stop()?;
    Ok(())
}
