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
//!
//! All of this runs on the opener thread ([`super::opener`]), never inside a rebalance
//! callback and never under the engine's lock: the other tasks go on meanwhile. A restore
//! saves how far it got with every bulk write, so one cut short (the task revoked again, the
//! process stopped) goes on from there, and one that finished leaves a checkpoint behind, so
//! the next rebalance resumes instead of restoring again.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, TopicId, Topology};
use tracing::{info, warn};

use super::align::Aligner;
use super::incarnation;
use super::progress::{self, Watermark};
use super::segment::{Replay, Segment, Verdict};
use super::stamp::StampKey;
use super::status::EngineStatus;
use super::tail::CommitMeta;
use super::task::{stamp_name, task_name, Checkpoint, Ledger, Task};
use crate::error::{Error, Result};
use crate::kafka;
use crate::metrics as m;
use crate::rocks_store::{
    RocksStore, StateDb, CHANGELOG_END_KEY, CHECKPOINT_KEY, RESTORE_PROGRESS_KEY,
};

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

/// What a task open needs, owned by the opener thread ([`super::opener`]): the engine's lock
/// is never held while a task opens.
pub(crate) struct OpenCtx {
    pub(crate) topology: Arc<Topology>,
    pub(crate) db: StateDb,
    pub(crate) status: Arc<EngineStatus>,
    pub(crate) writer_id: Vec<u8>,
    pub(crate) stamp_key: StampKey,
    /// A consumer of the application's group that never subscribes: it reads committed offsets
    /// (and their metadata) without joining the group.
    group: BaseConsumer,
}

/// What [`OpenCtx::open_task`] came to.
pub(crate) enum Opening {
    /// Open: resumed, or restored.
    Ready(Box<Task>),
    /// Its store must be restored from the changelog, and the caller did not allow it here.
    NeedsRestore,
    /// The open was cancelled part way.
    Cancelled,
}

/// A restore stopped part way (the task was revoked, the process stops), kept next to the
/// restored records so that the next open of the task on this host goes on from there.
#[derive(Debug, Serialize, Deserialize)]
struct RestoreProgress {
    /// The rule it applied records by (the group's segment and committed offset), and the
    /// keys to correct so far.
    replay: Replay,
    /// The next changelog offset to read.
    next: i64,
    /// The last checkpoint read so far.
    checkpoint: Checkpoint,
    /// The changelog offset of the first record skipped because its epoch was not committed
    /// (input offset at or above `replay.below`). If the group commits that epoch before the restore
    /// goes on, the restore must read again from here, or it would miss that epoch's writes
    /// (another host may be committing epochs while this one restores).
    first_skipped: Option<i64>,
}

impl RestoreProgress {
    /// The progress saved, if any. One an older version saved does not decode: the restore
    /// starts over.
    fn read(store: &RocksStore) -> Result<Option<Self>> {
        let Some(bytes) = store.get_committed(RESTORE_PROGRESS_KEY)? else {
            return Ok(None);
        };
        match shelfsync_operators::state::decode_value(RESTORE_PROGRESS_KEY, &bytes) {
            Ok(p) => Ok(Some(p)),
            Err(e) => {
                warn!(store = store.name(), error = %e, "a restore cut short by an older version is started over");
                Ok(None)
            }
        }
    }
}

impl OpenCtx {
    /// The context of an opener thread.
    ///
    /// # Errors
    /// [`Error::Kafka`] for a bad consumer config.
    pub(crate) fn new(
        topology: Arc<Topology>,
        db: StateDb,
        status: Arc<EngineStatus>,
        writer_id: Vec<u8>,
        stamp_key: StampKey,
    ) -> Result<Self> {
        let mut config = kafka::base_config(&topology);
        config.set("group.id", &topology.application_id);
        config.set("enable.auto.commit", "false");
        let group = config.create()?;
        Ok(Self {
            topology,
            db,
            status,
            writer_id,
            stamp_key,
            group,
        })
    }

    /// Opens one task: from its local checkpoint when that is not behind the group's committed
    /// offset, else (stateful stages) by restoring its store from the changelog — unless
    /// `may_restore` is false, which answers [`Opening::NeedsRestore`] instead, so that a
    /// restore runs on a thread of its own while quick opens go on. [`Opening::Cancelled`]:
    /// `cancel` was set (the task was revoked) before it finished; a restore cut short is
    /// resumed by the next open on this host.
    pub(crate) fn open_task(
        &self,
        stage: Stage,
        topic: &str,
        partition: i32,
        may_restore: bool,
        cancel: &AtomicBool,
    ) -> Result<Opening> {
        let name = task_name(stage, partition);
        let mut store = self.db.store(&name)?;
        let (committed, committed_meta) = self.committed(topic, partition)?;
        let local = store
            .get_committed(CHECKPOINT_KEY)?
            .map(|b| Checkpoint::decode(&b))
            .transpose()?;
        let mut fresh = local
            .as_ref()
            .is_some_and(|cp| committed.is_none_or(|c| c <= cp.next_offset));
        // The changelog's end when the local state was found to be the latest.
        let mut changelog_end = 0;
        if let (true, Some(store_id)) = (fresh, stage.store()) {
            let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
            let (elsewhere, high) = self.written_elsewhere(&store, &changelog, partition)?;
            changelog_end = high;
            if let Some(why) = elsewhere {
                // Said once, by the call that restores.
                if may_restore {
                    warn!(task = %name, changelog, partition, reason = %why, "local state is not the latest: restoring from the changelog");
                    metrics::counter!(m::STALE_LOCAL_STATE).increment(1);
                }
                fresh = false;
            }
        }
        let group_segment = committed_meta.as_ref().and_then(|m| m.segment.clone());
        // Whether a checkpoint (local, or restored from the changelog) was found.
        let mut found = true;
        let mut segment = None;
        let mut cp = match (local, stage.store()) {
            (Some(cp), store_id) if fresh => {
                info!(task = %name, next_offset = cp.next_offset, "resuming from local checkpoint");
                if store_id.is_some() {
                    // Still the owner of the group's segment; else it takes the task over
                    // from here: nobody else wrote the changelog after its own last epoch.
                    segment = Some(match group_segment {
                        Some(s) if s.writer.as_bytes() == self.writer_id.as_slice() => s,
                        _ => self.taken_over(changelog_end, cp.next_offset),
                    });
                }
                cp
            }
            (local, None) => {
                // Stateless: nothing to restore; the group's offset says where to go on, and
                // its commit metadata (when there is some) where the tails stood and in which
                // lineage: the local checkpoint is behind it (another host committed since).
                let mut cp = local.unwrap_or_default();
                found = cp != Checkpoint::default() && committed_meta.is_none();
                cp.next_offset = committed.unwrap_or(-1);
                cp
            }
            (_, Some(_)) if !may_restore => return Ok(Opening::NeedsRestore),
            (_, Some(store_id)) => {
                let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
                let below = committed.unwrap_or(0);
                self.status.restoring_tasks.fetch_add(1, Ordering::SeqCst);
                metrics::gauge!(m::RESTORING_TASKS).increment(1.0);
                let restored = self.restore(
                    &name,
                    &mut store,
                    &changelog,
                    partition,
                    Replay::new(group_segment, below),
                    cancel,
                );
                self.status.restoring_tasks.fetch_sub(1, Ordering::SeqCst);
                metrics::gauge!(m::RESTORING_TASKS).decrement(1.0);
                let Some((mut cp, taken_over)) = restored? else {
                    return Ok(Opening::Cancelled);
                };
                segment = Some(taken_over);
                found = cp != Checkpoint::default();
                cp.next_offset = committed.unwrap_or(-1);
                cp
            }
        };
        if !found {
            // No checkpoint (a stateless task on a new host, or a task starting from nothing):
            // the group's commit metadata says where the output tails stood and in which
            // lineage; without a commit the task starts a lineage of its own.
            match committed_meta {
                Some(meta) => {
                    cp.delivered = meta.delivered;
                    cp.lineage = meta.lineage;
                }
                None if committed.is_none() => {
                    cp.lineage = incarnation::fresh(&self.writer_id, &name);
                }
                None => {}
            }
        }
        if let Some(last) = cp.last_input {
            if let Some((why, low, high)) = self.input_recreated(topic, partition, last)? {
                let lineage = incarnation::after(&name, cp.lineage, last);
                warn!(task = %name, topic, partition, reason = %why, lineage, "the input topic was recreated: reading it from the group's offset (or its beginning) in a new lineage; the state is kept");
                metrics::counter!(m::INPUT_RECREATED, "stage" => stage.name()).increment(1);
                cp.lineage = lineage;
                cp.last_input = None;
                // From the group's offset if it belongs to the new topic, else its beginning
                // (explicitly: the consumer's own position may be the old topic's offset).
                cp.next_offset = committed
                    .filter(|c| (low..=high).contains(c))
                    .unwrap_or(low);
            }
        }
        let upstreams = progress::upstream_tasks(&self.topology, stage);
        let max_delay = self.topology.processing.max_alignment_delay;
        let aligner = if stage.aligns() {
            let aligner = Aligner::open(&store, upstreams.clone(), max_delay)?;
            // Alignment off: records go straight through, once any left held are applied.
            (!max_delay.is_zero() || aligner.len() > 0).then_some(aligner)
        } else {
            None
        };
        let aligning = aligner.is_some();
        Ok(Opening::Ready(Box::new(Task {
            stamp_name: stamp_name(&name, cp.lineage),
            name,
            stage,
            partition,
            store,
            ledger: Ledger::resume(cp, aligning),
            aligner,
            upstreams,
            watermark: Watermark::opened(crate::clock::now_ms()),
            segment,
        })))
    }

    /// The group's committed offset of `(topic, partition)`, if any, and what its commit
    /// metadata carries (see [`CommitMeta`]).
    fn committed(&self, topic: &str, partition: i32) -> Result<(Option<i64>, Option<CommitMeta>)> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(topic, partition);
        let committed = kafka::retry("committed offsets", RETRY_BUDGET, || {
            Ok(self
                .group
                .committed_offsets(tpl.clone(), WATERMARK_TIMEOUT)?)
        })?;
        let Some(elem) = committed.elements().into_iter().next() else {
            return Ok((None, None));
        };
        let offset = match elem.offset() {
            Offset::Offset(o) => Some(o),
            _ => None,
        };
        Ok((offset, CommitMeta::from_metadata(elem.metadata())))
    }

    /// Why this host's local state of a task is not the latest even though its checkpoint is
    /// not behind the group: the changelog goes on past the end this host's last committed
    /// epoch wrote, with records of another writer (another host owned the task since, and
    /// its epochs are not in this RocksDB), or it is shorter than that end (the topic was
    /// recreated). `None`: the local state is the latest (or predates this check). Reads the
    /// changelog only up to the first foreign record. Also answers the changelog's end.
    fn written_elsewhere(
        &self,
        store: &RocksStore,
        changelog: &str,
        partition: i32,
    ) -> Result<(Option<String>, i64)> {
        let consumer = reader(&self.topology, "writer-check")?;
        let high = high_watermark(&consumer, changelog, partition)?;
        let Some(end) = store.get_committed(CHANGELOG_END_KEY)? else {
            return Ok((None, high));
        };
        let end = i64::from_be_bytes(
            end.as_slice()
                .try_into()
                .map_err(|_| Error::State("corrupt changelog end".into()))?,
        );
        if high <= end {
            return Ok((
                Some(format!(
                    "the changelog ends at {high}, before offset {end} this host wrote (recreated topic)"
                )),
                high,
            ));
        }
        let mut foreign: Option<(i64, String)> = None;
        read_partitions(
            &consumer,
            &[(changelog.to_string(), partition, end + 1)],
            |msg| {
                let writer = kafka::header(msg, kafka::CHANGELOG_WRITER_HEADER);
                if writer == Some(self.writer_id.as_slice()) {
                    return Ok(ControlFlow::Continue(()));
                }
                let who = writer.map_or("an unknown writer".into(), |w| {
                    format!("writer {}", String::from_utf8_lossy(w))
                });
                foreign = Some((msg.offset(), who));
                Ok(ControlFlow::Break(()))
            },
        )?;
        let why = foreign.map(|(offset, who)| {
            format!("{who} wrote the changelog at offset {offset}, after this host's last epoch (ending at {end})")
        });
        Ok((why, high))
    }

    /// Rebuilds a store from its changelog partition, applying only the records of the task's
    /// committed history by `rule`: records of epochs whose input offsets are below the group's
    /// committed offset, written by the owner of the group's segment (see [`super::segment`]).
    /// Returns the last checkpoint read and the segment this host starts (`None`: cancelled). Keys whose latest record was not applied are written to the
    /// changelog again with their restored value before the restore counts as done.
    ///
    /// Bulk writes skip the WAL. Every bulk write also saves how far the restore got
    /// ([`RestoreProgress`]), so a restore cut short — the task revoked, the process stopped —
    /// goes on from there on this host's next open, as long as the group's offset did not go
    /// back and the changelog still reaches that far. At the end the store gets the checkpoint
    /// and the changelog end it was restored to, and is flushed: a later open resumes from it.
    fn restore(
        &self,
        name: &str,
        store: &mut RocksStore,
        changelog: &str,
        partition: i32,
        rule: Replay,
        cancel: &AtomicBool,
    ) -> Result<Option<(Checkpoint, Segment)>> {
        let started = Instant::now();
        let below = rule.below;
        let consumer = reader(&self.topology, "restore")?;
        // Records past this end are not the history: the group's last commit came after its
        // records were acknowledged, and this host owns the task now.
        let high = high_watermark(&consumer, changelog, partition)?;
        let resumed = RestoreProgress::read(store)?.filter(|p| {
            p.replay.segment == rule.segment && p.replay.below <= below && p.next <= high
        });
        let mut first_skipped = None;
        let (from, mut checkpoint, mut replay) = match resumed {
            Some(p) => {
                // The group committed more since: what was skipped as uncommitted may be
                // committed now, so read again from the first record skipped.
                let from = match p.first_skipped {
                    Some(f) if below > p.replay.below => f.min(p.next),
                    _ => p.next,
                };
                if below == p.replay.below {
                    first_skipped = p.first_skipped;
                }
                let mut replay = p.replay;
                replay.below = below;
                info!(
                    task = name,
                    changelog, partition, from, below, "resuming a restore cut short"
                );
                metrics::counter!(m::RESTORES_RESUMED).increment(1);
                (from, p.checkpoint, replay)
            }
            None => {
                // No (or stale, or unusable) local state: start from an empty store.
                let cf = store.name().to_string();
                self.db.drop_store(&cf)?;
                *store = self.db.store(&cf)?;
                (0, Checkpoint::default(), rule)
            }
        };
        let save = |store: &mut RocksStore,
                    replay: &Replay,
                    next: i64,
                    checkpoint: &Checkpoint,
                    first_skipped: Option<i64>| {
            let progress = shelfsync_operators::state::encode_value(&RestoreProgress {
                replay: replay.clone(),
                next,
                checkpoint: checkpoint.clone(),
                first_skipped,
            });
            store.commit(&[(RESTORE_PROGRESS_KEY, &progress)], false)?;
            // Written without the WAL: flushed, so that a crash keeps what was restored.
            store.flush()
        };
        let mut applied = 0u64;
        let mut next = from;
        let mut cancelled = false;
        if below > 0 {
            info!(
                task = name,
                changelog, partition, below, from, "restoring store from changelog"
            );
            let mut last_log = Instant::now();
            read_partitions(
                &consumer,
                &[(changelog.to_string(), partition, from)],
                |msg| {
                    if cancel.load(Ordering::SeqCst) {
                        cancelled = true;
                        return Ok(ControlFlow::Break(()));
                    }
                    if msg.offset() >= high {
                        return Ok(ControlFlow::Break(()));
                    }
                    let input_offset = kafka::header(msg, kafka::CHANGELOG_OFFSET_HEADER)
                        .and_then(|h| std::str::from_utf8(h).ok()?.parse::<i64>().ok())
                        .unwrap_or(i64::MAX);
                    let writer = kafka::header(msg, kafka::CHANGELOG_WRITER_HEADER);
                    let key = msg.key().unwrap_or_default();
                    let verdict = replay.verdict(msg.offset(), writer, input_offset);
                    replay.note(key, verdict);
                    if verdict == Verdict::Apply {
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
                    } else if verdict == Verdict::Uncommitted && first_skipped.is_none() {
                        first_skipped = Some(msg.offset());
                    }
                    next = msg.offset() + 1;
                    if store.pending().len() >= RESTORE_BATCH {
                        save(store, &replay, next, &checkpoint, first_skipped)?;
                    }
                    if last_log.elapsed() > RESTORE_LOG_INTERVAL {
                        last_log = Instant::now();
                        info!(
                            task = name,
                            changelog,
                            partition,
                            at = msg.offset(),
                            applied,
                            "restoring"
                        );
                    }
                    Ok(ControlFlow::Continue(()))
                },
            )?;
        }
        if cancelled {
            save(store, &replay, next, &checkpoint, first_skipped)?;
            info!(task = name, changelog, partition, at = next, applied, "restore cut short (task revoked or stopping); the next open on this host goes on from here");
            return Ok(None);
        }
        let mut done = checkpoint.clone();
        done.next_offset = below;
        if replay.corrections_len() > 0 {
            // Everything is read: saved so, a crash before the corrections are acknowledged
            // sends them on the next open.
            save(store, &replay, high, &checkpoint, first_skipped)?;
            if !self.correct(store, &replay, changelog, partition, &done, cancel)? {
                return Ok(None);
            }
        }
        store.delete(RESTORE_PROGRESS_KEY);
        let end = (high - 1).to_be_bytes();
        if below > 0 {
            store.commit(
                &[(CHECKPOINT_KEY, &done.encode()), (CHANGELOG_END_KEY, &end)],
                false,
            )?;
        } else {
            store.commit(&[], false)?;
        }
        store.flush()?;
        let secs = started.elapsed().as_secs_f64();
        info!(
            task = name,
            changelog,
            partition,
            applied,
            corrected = replay.corrections_len(),
            secs,
            "restore finished"
        );
        Ok(Some((checkpoint, self.taken_over(high, below))))
    }

    /// The segment of this host taking a task over at changelog offset `from`, going on from
    /// input offset `below`.
    fn taken_over(&self, from: i64, below: i64) -> Segment {
        Segment {
            writer: String::from_utf8_lossy(&self.writer_id).into_owned(),
            from,
            below,
        }
    }

    /// Writes the keys whose latest changelog record the restore did not apply again, with
    /// the value restored (a tombstone when it has none; the restored checkpoint for the
    /// checkpoint key), as this host at the input offset just below the group's: a later
    /// restore under this host's segment applies those older records, then these. Waits for
    /// the broker's acknowledgement; `false`: cancelled first.
    fn correct(
        &self,
        store: &RocksStore,
        replay: &Replay,
        changelog: &str,
        partition: i32,
        checkpoint: &Checkpoint,
        cancel: &AtomicBool,
    ) -> Result<bool> {
        let producer = kafka::KafkaProducer::new(&self.topology)?;
        let input_offset = (replay.below - 1).to_string().into_bytes();
        let checkpoint = checkpoint.encode();
        for key in replay.corrections() {
            let value = if key == CHECKPOINT_KEY {
                Some(checkpoint.clone())
            } else {
                store.get_committed(key)?
            };
            producer.send(kafka::ProduceRecord {
                topic: changelog,
                partition: Some(partition),
                key: Some(key),
                value: value.as_deref(),
                timestamp: None,
                headers: vec![
                    (kafka::CHANGELOG_OFFSET_HEADER, input_offset.clone()),
                    (kafka::CHANGELOG_WRITER_HEADER, self.writer_id.clone()),
                ],
            })?;
        }
        let Some(acks) = producer.flush_unless(|| cancel.load(Ordering::SeqCst)) else {
            return Ok(false);
        };
        if acks.failed > 0 {
            return Err(Error::Topics(format!(
                "the broker refused {} correction(s) to changelog {changelog} [{partition}] (first: {}); the task is opened again",
                acks.failed,
                acks.first_error.unwrap_or_default()
            )));
        }
        metrics::counter!(m::CHANGELOG_CORRECTIONS).increment(acks.delivered);
        info!(
            changelog,
            partition,
            keys = replay.corrections_len(),
            "wrote again the keys whose latest changelog record was not the task's history (a failed epoch, or a paused host's late records)"
        );
        Ok(true)
    }
}

/// The end (high watermark) of `(topic, partition)`.
fn high_watermark(consumer: &BaseConsumer, topic: &str, partition: i32) -> Result<i64> {
    Ok(watermarks(consumer, topic, partition)?.1)
}

/// The `(low, high)` watermarks of `(topic, partition)`, retried for [`RETRY_BUDGET`].
pub(crate) fn watermarks<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<(i64, i64)> {
    kafka::retry("fetch watermarks", RETRY_BUDGET, || {
        Ok(consumer.fetch_watermarks(topic, partition, WATERMARK_TIMEOUT)?)
    })
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
/// partition had when the call started, or until `f` breaks. All partitions are read at once.
pub(crate) fn read_partitions<F>(
    consumer: &BaseConsumer,
    ranges: &[(String, i32, i64)],
    mut f: F,
) -> Result<()>
where
    F: FnMut(&BorrowedMessage<'_>) -> Result<ControlFlow<()>>,
{
    let mut tpl = TopicPartitionList::new();
    let mut ends: HashMap<(String, i32), i64> = HashMap::new();
    for (topic, partition, from) in ranges {
        let (low, high) = watermarks(consumer, topic, *partition)?;
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
                if msg.offset() < high && f(&msg)?.is_break() {
                    break;
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
