//! Failback onto local state another host has moved past (issue 15, item 2), deterministically.
//!
//! A host that crashes after its epoch's `WriteBatch` but before the group commit keeps a local
//! checkpoint *ahead* of the group. Another host restores the task from the group's offset,
//! redoes those inputs and writes the changelog; when the task comes back, the first host's
//! checkpoint is not behind the group, yet its local state is not the latest: resuming from it
//! would interleave two hosts' histories in one changelog. The test builds that state without
//! racing a SIGKILL against the commit:
//! - A runs the first half of a generated day and stops cleanly;
//! - the group's offsets of the inventory stage are moved back `REWIND` records, keeping the
//!   commit metadata: what the group holds when A's last epochs were written to RocksDB but never
//!   committed;
//! - B starts on an empty state dir, restores, redoes those records (writing the inventory
//!   changelog) and commits the offsets A had; it stops, and its commits are set back to A's
//!   offsets (B may have read on past them);
//! - A starts again: its checkpoint equals the group's offset, but B wrote the changelog after
//!   A's last epoch, so A restores instead of resuming; the rest of the day then runs on A.
//!
//! Asserted: A says its local state is not the latest and restores; every status and
//! availability equals the model of the whole day; no `event_id` twice.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::PipelineProcess;
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 2_020_021;
const EVENTS: usize = 200;
/// Inventory commands per partition whose commit is taken back.
const REWIND: i64 = 6;
const WAIT: Duration = Duration::from_secs(180);

/// A consumer of the application's group that never joins it.
fn group_client(s: &Setup) -> Result<BaseConsumer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", s.broker.bootstrap())
        .set("group.id", &s.topology.application_id)
        .set("enable.auto.commit", "false")
        .create()?)
}

/// The group's committed offsets of the inventory stage's input, with their metadata.
fn inventory_commits(s: &Setup) -> Result<Vec<(i32, i64, String)>> {
    let topic = s.topic(TopicId::InventoryCommands);
    let mut tpl = TopicPartitionList::new();
    for p in 0..s.topology.partitions(TopicId::InventoryCommands) {
        tpl.add_partition(&topic, p);
    }
    let committed = group_client(s)?.committed_offsets(tpl, Duration::from_secs(10))?;
    committed
        .elements()
        .iter()
        .map(|e| match e.offset() {
            Offset::Offset(o) => Ok((e.partition(), o, e.metadata().to_string())),
            other => anyhow::bail!(
                "partition {} has no committed offset ({other:?})",
                e.partition()
            ),
        })
        .collect()
}

#[test]
fn a_host_whose_changelog_another_host_wrote_restores_instead_of_resuming() -> Result<()> {
    let s = Setup::new(BIN, "failback", 2)?;
    let day = Day::generate(SEED, EVENTS);
    let half = day.events.len() / 2;
    let (first, whole) = s.models_of_halves(&day.events, half)?;

    s.run_until_model("a", &day.events[..half], &first, WAIT)?;
    let of_a = inventory_commits(&s)?;
    let topic = s.topic(TopicId::InventoryCommands);
    let mut back = TopicPartitionList::new();
    for (p, offset, meta) in &of_a {
        ensure!(*offset > REWIND, "partition {p} committed only {offset}");
        back.add_partition_offset(&topic, *p, Offset::Offset(offset - REWIND))?;
        if let Some(mut elem) = back.find_partition(&topic, *p) {
            elem.set_metadata(meta.clone());
        }
    }
    group_client(&s)?.commit(&back, CommitMode::Sync)?;
    eprintln!("A committed {of_a:?}; moved back {REWIND} records each");

    let b = s.start("b")?;
    s.wait_for_tasks(&b, WAIT)?;
    let deadline = Instant::now() + WAIT;
    while inventory_commits(&s)?
        .iter()
        .zip(&of_a)
        .any(|((_, now, _), (_, then, _))| now < then)
    {
        ensure!(
            Instant::now() < deadline,
            "B did not commit the records taken back\n{}",
            b.log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let b_log = b.log();
    b.stop()?;
    ensure!(
        b_log.contains("restoring store from changelog"),
        "B did not restore"
    );
    // B may have read on past A's offsets (the progress marks of A's last epoch): take its
    // commits back to A's offsets, with B's metadata — B's last epoch written to the changelog
    // but never committed, as if B had crashed too.
    let of_b = inventory_commits(&s)?;
    let mut to_a = TopicPartitionList::new();
    for ((p, offset, _), (_, _, meta)) in of_a.iter().zip(&of_b) {
        to_a.add_partition_offset(&topic, *p, Offset::Offset(*offset))?;
        if let Some(mut elem) = to_a.find_partition(&topic, *p) {
            elem.set_metadata(meta.clone());
        }
    }
    group_client(&s)?.commit(&to_a, CommitMode::Sync)?;
    eprintln!("B committed {of_b:?}; set back to A's offsets");

    // A's state dir, with a log of its own.
    let a = PipelineProcess::start(
        std::path::Path::new(BIN),
        &s.topology_path,
        &s.dir.path().join("a"),
        &s.log_path("a2"),
    )?;
    s.wait_for_tasks(&a, WAIT)?;
    let a_log = a.log();
    let stale = a_log
        .lines()
        .filter(|l| l.contains("local state is not the latest") && l.contains("inventory-"))
        .count();
    ensure!(
        stale == of_a.len(),
        "A resumed {} inventory task(s) from local state another host had moved past:\n{}",
        of_a.len() - stale,
        a.log_tail()
    );
    let reason = a_log
        .lines()
        .find(|l| l.contains("local state is not the latest"))
        .context("no stale-state line")?;
    ensure!(
        reason.contains("wrote the changelog at offset"),
        "A restored for another reason: {reason}"
    );
    s.feed_after_start(&day.events[half..])?;
    s.wait_for_model(&whole, WAIT, || a.log_tail())?;
    a.stop()?;
    s.no_duplicate_outputs()?;
    Ok(())
}
