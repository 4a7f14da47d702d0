//! Opening a task and restoring its store (DESIGN §3, "recovery and moving partitions").
//!
//! A task opened on a host whose RocksDB holds a checkpoint at or past the group's committed
//! offset resumes from it: local state is never wiped after a crash, because RocksDB only ever
//! holds state whose epoch was fully acknowledged. Otherwise a stateful task rebuilds its store
//! from the compacted changelog, applying only records whose input offset is below the group's
//! committed offset (bulk writes without the WAL, flushed before the checkpoint), and resumes
//! from that offset. A stateless task resumes from the committed offset.
//!
//! Local state is trusted only while this host was the changelog's last writer: every
//! changelog record names its writer (the state directory's id), and the local store keeps the
//! changelog offset its last committed epoch ended at. If the changelog goes on past it with
//! another writer's records — another host restored and wrote the task in between, and this
//! host got it back — the local state misses those epochs and the task restores instead
//! (resuming would interleave two hosts' histories in one changelog, and a later restore would
//! apply older values over newer ones).

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, TopicId, Topology};
use tracing::{info, warn};

use super::align::Aligner;
use super::progress::{self, Watermark};
use super::task::{task_name, Checkpoint, Ledger, Task};
use super::Engine;
use crate::error::{Error, Result};
use crate::kafka;
use crate::metrics as m;
use crate::rocks_store::{RocksStore, CHANGELOG_END_KEY, CHECKPOINT_KEY};

/// How long a broker request at task open is retried before the process gives up (and exits
/// non-zero, so its supervisor restarts it).
pub(crate) const RETRY_BUDGET: Duration = Duration::from_secs(300);
/// The timeout of one watermark or committed-offset request.
pub(crate) const WATERMARK_TIMEOUT: Duration = Duration::from_secs(10);
/// How long reading partitions (restore, tail scan) may make no progress before it fails.
const NO_PROGRESS_LIMIT: Duration = Duration::from_secs(120);
/// How long one poll of a partition reader waits.
const READ_POLL: Duration = Duration::from_millis(200);
/// `fetch.wait.max.ms` of a partition reader: short, so reading a tail to its end is quick.
const READER_FETCH_WAIT_MS: &str = "10";
/// Restored records kept in memory before a bulk write to RocksDB.
const RESTORE_BATCH: usize = 50_000;
/// How often a running restore logs its progress.
const RESTORE_LOG_INTERVAL: Duration = Duration::from_secs(5);

impl Engine {
    /// Opens one task: from its local checkpoint when that is not behind the group's committed
    /// offset, else (stateful stages) by restoring its store from the changelog.
    pub(super) fn open_task<C: ConsumerContext>(
        &mut self,
        stage: Stage,
        topic: &str,
        partition: i32,
        consumer: &BaseConsumer<C>,
    ) -> Result<Task> {
        let name = task_name(stage, partition);
        let mut store = self.db.store(&name)?;
        let committed = committed_offset(consumer, topic, partition)?;
        let local = store
            .get_committed(CHECKPOINT_KEY)?
            .map(|b| Checkpoint::decode(&b))
            .transpose()?;
        let mut fresh = local
            .as_ref()
            .is_some_and(|cp| committed.is_none_or(|c| c <= cp.next_offset));
        if let (true, Some(store_id)) = (fresh, stage.store()) {
            let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
            if let Some(why) = self.written_elsewhere(&store, &changelog, partition)? {
                warn!(task = %name, changelog, partition, reason = %why, "local state is not the latest: restoring from the changelog");
                metrics::counter!(m::STALE_LOCAL_STATE).increment(1);
                fresh = false;
            }
        }
        let cp = match (local, stage.store()) {
            (Some(cp), _) if fresh => {
                info!(task = %name, next_offset = cp.next_offset, "resuming from local checkpoint");
                cp
            }
            (local, None) => {
                // Stateless: nothing to restore; the group's offset says where to go on.
                let mut cp = local.unwrap_or_default();
                cp.next_offset = committed.unwrap_or(-1);
                cp
            }
            (_, Some(store_id)) => {
                // No (or stale) local state: rebuild from the changelog.
                drop(store);
                self.db.drop_store(&name)?;
                store = self.db.store(&name)?;
                let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
                self.status.restoring_tasks.fetch_add(1, Ordering::SeqCst);
                metrics::gauge!(m::RESTORING_TASKS).increment(1.0);
                let restored = restore(
                    &self.topology,
                    &mut store,
                    &changelog,
                    partition,
                    committed.unwrap_or(0),
                );
                self.status.restoring_tasks.fetch_sub(1, Ordering::SeqCst);
                metrics::gauge!(m::RESTORING_TASKS).decrement(1.0);
                let mut cp = restored?;
                cp.next_offset = committed.unwrap_or(-1);
                cp
            }
        };
        let upstreams = progress::upstream_tasks(&self.topology, stage);
        let max_delay = self.topology.processing.max_alignment_delay;
        let aligner = if stage.aligns() {
            let aligner = Aligner::open(&store, upstreams.clone(), max_delay)?;
            // Alignment off: records go straight through, once any left held are applied.
            (!max_delay.is_zero() || aligner.len() > 0).then_some(aligner)
        } else {
            None
        };
        if let Some(aligner) = &aligner {
            metrics::gauge!(m::ALIGNMENT_HELD, "stage" => stage.name())
                .increment(aligner.len() as f64);
        }
        let aligning = aligner.is_some();
        Ok(Task {
            name,
            stage,
            partition,
            store,
            ledger: Ledger::resume(cp, aligning),
            aligner,
            upstreams,
            watermark: Watermark::opened(crate::clock::now_ms()),
        })
    }
}

impl Engine {
    /// Why this host's local state of a task is not the latest even though its checkpoint is
    /// not behind the group: the changelog goes on past the end this host's last committed
    /// epoch wrote, with records of another writer (another host owned the task since, and
    /// its epochs are not in this RocksDB), or it is shorter than that end (the topic was
    /// recreated). `None`: the local state is the latest (or predates this check).
    fn written_elsewhere(
        &self,
        store: &RocksStore,
        changelog: &str,
        partition: i32,
    ) -> Result<Option<String>> {
        let Some(end) = store.get_committed(CHANGELOG_END_KEY)? else {
            return Ok(None);
        };
        let end = i64::from_be_bytes(
            end.as_slice()
                .try_into()
                .map_err(|_| Error::State("corrupt changelog end".into()))?,
        );
        let consumer = reader(&self.topology, "writer-check")?;
        let (_, high) = kafka::retry("fetch watermarks", RETRY_BUDGET, || {
            Ok(consumer.fetch_watermarks(changelog, partition, WATERMARK_TIMEOUT)?)
        })?;
        if high <= end {
            return Ok(Some(format!(
                "the changelog ends at {high}, before offset {end} this host wrote (recreated topic)"
            )));
        }
        let mut foreign: Option<(i64, String)> = None;
        read_partitions(
            &consumer,
            &[(changelog.to_string(), partition, end + 1)],
            |msg| {
                let writer = kafka::header(msg, kafka::CHANGELOG_WRITER_HEADER);
                if foreign.is_none() && writer != Some(self.writer_id.as_slice()) {
                    let who = writer.map_or("an unknown writer".into(), |w| {
                        format!("writer {}", String::from_utf8_lossy(w))
                    });
                    foreign = Some((msg.offset(), who));
                }
                Ok(())
            },
        )?;
        Ok(foreign.map(|(offset, who)| {
            format!("{who} wrote the changelog at offset {offset}, after this host's last epoch (ending at {end})")
        }))
    }
}

/// Rebuilds a store from its changelog partition, applying only records written by epochs
/// whose input offsets are below `below` (the group's committed offset). Bulk writes skip the
/// WAL; the memtables are flushed before the checkpoint is written with the WAL, so a crash
/// mid-restore restores again.
fn restore(
    topology: &Topology,
    store: &mut RocksStore,
    changelog: &str,
    partition: i32,
    below: i64,
) -> Result<Checkpoint> {
    let started = Instant::now();
    let consumer = reader(topology, "restore")?;
    let mut checkpoint = Checkpoint::default();
    let mut applied = 0u64;
    if below > 0 {
        info!(
            changelog,
            partition, below, "restoring store from changelog"
        );
        let mut last_log = Instant::now();
        read_partitions(&consumer, &[(changelog.to_string(), partition, 0)], |msg| {
            let input_offset = kafka::header(msg, kafka::CHANGELOG_OFFSET_HEADER)
                .and_then(|h| std::str::from_utf8(h).ok()?.parse::<i64>().ok())
                .unwrap_or(i64::MAX);
            if input_offset < below {
                let key = msg.key().unwrap_or_default();
                if key == CHECKPOINT_KEY {
                    if let Some(v) = msg.payload() {
                        checkpoint = Checkpoint::decode(v)?;
                    }
                } else {
                    match msg.payload() {
                        Some(v) => store.put(key, v),
                        None => store.delete(key),
                    }
                }
                applied += 1;
                metrics::counter!(m::RESTORE_RECORDS).increment(1);
                if store.pending().len() >= RESTORE_BATCH {
                    store.commit(&[], false)?;
                }
            }
            if last_log.elapsed() > RESTORE_LOG_INTERVAL {
                last_log = Instant::now();
                info!(
                    changelog,
                    partition,
                    at = msg.offset(),
                    applied,
                    "restoring"
                );
            }
            Ok(())
        })?;
    }
    store.commit(&[], false)?;
    store.flush()?;
    let secs = started.elapsed().as_secs_f64();
    info!(changelog, partition, applied, secs, "restore finished");
    Ok(checkpoint)
}

/// A consumer for reading partitions directly (restore, tail scans): no group membership, short
/// fetch waits so that reading a tail is quick.
pub(crate) fn reader(topology: &Topology, purpose: &str) -> Result<BaseConsumer> {
    let mut config = kafka::base_config(topology);
    config.set("group.id", format!("{}-{purpose}", topology.application_id));
    config.set("enable.auto.commit", "false");
    config.set("fetch.wait.max.ms", READER_FETCH_WAIT_MS);
    Ok(config.create()?)
}

/// Calls `f` on every record of each `(topic, partition)` from its `from` offset to the end the
/// partition had when the call started. All partitions are read at once.
pub(crate) fn read_partitions<F>(
    consumer: &BaseConsumer,
    ranges: &[(String, i32, i64)],
    mut f: F,
) -> Result<()>
where
    F: FnMut(&BorrowedMessage<'_>) -> Result<()>,
{
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for (topic, partition, from) in ranges {
        let (low, high) = kafka::retry("fetch watermarks", RETRY_BUDGET, || {
            Ok(consumer.fetch_watermarks(topic, *partition, WATERMARK_TIMEOUT)?)
        })?;
        let from = (*from).max(low);
        if from < high {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(from))?;
            ends.insert((topic.clone(), *partition), high);
        }
    }
    if ends.is_empty() {
        return Ok(());
    }
    consumer.assign(&tpl)?;
    let mut last_progress = Instant::now();
    while !ends.is_empty() {
        match consumer.poll(READ_POLL) {
            Some(Ok(msg)) => {
                last_progress = Instant::now();
                let key = (msg.topic().to_string(), msg.partition());
                let Some(&high) = ends.get(&key) else {
                    continue;
                };
                if msg.offset() < high {
                    f(&msg)?;
                }
                if msg.offset() + 1 >= high {
                    ends.remove(&key);
                }
            }
            Some(Err(e)) => kafka::log_client_error(&e, "read partitions"),
            None => {}
        }
        if last_progress.elapsed() > NO_PROGRESS_LIMIT {
            return Err(Error::State(format!(
                "reading {} partition(s) made no progress for {} s: {:?}",
                ends.len(),
                NO_PROGRESS_LIMIT.as_secs(),
                ends.keys().collect::<Vec<_>>()
            )));
        }
    }
    consumer.unassign()?;
    Ok(())
}

/// The group's committed offset of `(topic, partition)`, if any.
fn committed_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = kafka::retry("committed offsets", RETRY_BUDGET, || {
        Ok(consumer.committed_offsets(tpl.clone(), WATERMARK_TIMEOUT)?)
    })?;
    Ok(committed.elements().first().and_then(|e| match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }))
}
