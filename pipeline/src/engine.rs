//! The runtime: one group consumer, one idempotent producer, one RocksDB, and a task per
//! assigned `(stage, partition)`, driven in epochs (DESIGN §3).
//!
//! Per epoch: poll and process records (each task's operator writes into its store's overlay and
//! its outputs are produced right away, stamped `task/offset/index`); then produce the stores'
//! changelog records and checkpoints; wait until the broker acknowledged **everything**; then
//! write each task's overlay and checkpoint to RocksDB in one `WriteBatch`; then commit the group
//! offsets. A crash anywhere before the `WriteBatch` replays the epoch from the last checkpoint
//! with the same outputs (operators are deterministic), and receivers drop repeats by stamp.
//!
//! Rebalances arrive inside `poll` through [`GroupContext`]: a revocation first commits the
//! epoch, then closes the revoked tasks; an assignment opens tasks (restoring state from the
//! changelog when this host has none) before any of their records is processed.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::{Offset, TopicPartitionList};
use serde::{Deserialize, Serialize};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, TopicId, Topology};
use tracing::{debug, error, info, warn};

use crate::error::{Error, Result};
use crate::kafka::{self, KafkaProducer, ProduceRecord};
use crate::metrics as m;
use crate::rocks_store::{RocksStore, StateDb, CHECKPOINT_KEY};
use crate::stages::{OutRecord, StageLogic};

/// What a task has durably done, stored in its column family (and its changelog).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The next input offset to process.
    pub next_offset: i64,
    /// Per upstream task, the highest `(offset, index)` stamp applied.
    pub upstream: BTreeMap<String, (i64, i32)>,
    /// Per external output topic and partition, the last offset acknowledged before the epoch
    /// of this checkpoint started: anything this task wrote after the checkpoint lies above.
    pub delivered: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl Checkpoint {
    fn encode(&self) -> Vec<u8> {
        shelfsync_operators::state::encode_value(self)
    }

    fn decode(bytes: &[u8]) -> Result<Self> {
        shelfsync_operators::state::decode_value(CHECKPOINT_KEY, bytes)
            .map_err(|e| Error::State(e.to_string()))
    }
}

/// One `(stage, partition)`.
struct Task {
    name: String,
    stage: Stage,
    partition: i32,
    store: Option<RocksStore>,
    /// Records below this offset are already applied (`-1`: take whatever comes).
    next_offset: i64,
    upstream: BTreeMap<String, (i64, i32)>,
    dirty: bool,
    /// Output stamps `(offset, index)` already on an external topic from before a crash: not
    /// produced again when the input is replayed.
    suppress: std::collections::BTreeSet<(i64, i32)>,
    /// Checkpoint this task was opened from (its `delivered` map drives the tail scan).
    opened_from: Checkpoint,
}

/// How long a broker request at task open is retried before the process gives up (and exits
/// non-zero, so its supervisor restarts it).
const RETRY_BUDGET: Duration = Duration::from_secs(300);

/// The external topics whose tails are scanned on resume (internal topics need no scan: their
/// receivers drop repeats by stamp).
const EXTERNAL: [TopicId; 4] = [
    TopicId::Availability,
    TopicId::ValidatedOrders,
    TopicId::OrderStatus,
    TopicId::Dlq,
];

/// Runtime options that are not part of the topology.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where RocksDB lives.
    pub state_dir: PathBuf,
    /// Set to stop gracefully: finish the epoch, commit, leave the group.
    pub shutdown: Arc<AtomicBool>,
    /// `group.instance.id` of the group consumer (static membership), when set.
    pub group_instance_id: Option<String>,
}

/// Shared view of the engine for health checks, metrics and queries.
#[derive(Debug, Default)]
pub struct EngineStatus {
    /// Tasks assigned and ready.
    pub ready_tasks: std::sync::atomic::AtomicUsize,
    /// Tasks restoring.
    pub restoring_tasks: std::sync::atomic::AtomicUsize,
    /// True once the consumer got its first assignment.
    pub assigned: AtomicBool,
    /// Names of the tasks this process owns and has opened (`inventory-3`, …).
    pub owned: Mutex<std::collections::BTreeSet<String>>,
    /// Names of the tasks this process was assigned and is still opening (restoring their
    /// stores from their changelogs, or about to resume).
    pub opening: Mutex<std::collections::BTreeSet<String>>,
    /// Grows on every change of `owned` or `opening` (the instance directory re-announces).
    pub changes: std::sync::atomic::AtomicU64,
    /// The process's RocksDB, once open (read committed state for queries).
    pub db: std::sync::OnceLock<StateDb>,
}

impl EngineStatus {
    /// Whether this process owns the task `name` and has finished opening it.
    pub fn owns(&self, name: &str) -> bool {
        self.owned.lock().map(|o| o.contains(name)).unwrap_or(false)
    }

    /// The tasks this process holds: `(name, opening)`, opened ones and ones still opening.
    pub fn held_tasks(&self) -> Vec<(String, bool)> {
        let mut held: Vec<(String, bool)> = self
            .owned
            .lock()
            .map(|o| o.iter().map(|t| (t.clone(), false)).collect())
            .unwrap_or_default();
        if let Ok(r) = self.opening.lock() {
            held.extend(r.iter().map(|t| (t.clone(), true)));
        }
        held
    }

    fn set_owned(&self, name: &str, owned: bool) {
        Self::set_member(&self.owned, name, owned);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    /// Whether this process is opening the task `name` (assigned, not ready yet).
    pub fn is_opening(&self, name: &str) -> bool {
        self.opening
            .lock()
            .map(|o| o.contains(name))
            .unwrap_or(false)
    }

    fn set_opening(&self, name: &str, opening: bool) {
        Self::set_member(&self.opening, name, opening);
        self.changes.fetch_add(1, Ordering::SeqCst);
    }

    fn set_member(set: &Mutex<std::collections::BTreeSet<String>>, name: &str, member: bool) {
        if let Ok(mut o) = set.lock() {
            if member {
                o.insert(name.to_string());
            } else {
                o.remove(name);
            }
        }
    }
}

/// The name of the task of `stage` on input partition `partition`, e.g. `inventory-3`.
pub fn task_name(stage: Stage, partition: i32) -> String {
    format!("{}-{partition}", stage.name())
}

/// The engine state shared between the poll loop and the rebalance callbacks.
pub struct Engine {
    topology: Arc<Topology>,
    names: HashMap<TopicId, String>,
    stage_by_topic: HashMap<String, Stage>,
    logic: HashMap<Stage, Arc<StageLogic>>,
    db: StateDb,
    producer: KafkaProducer,
    tasks: HashMap<String, BTreeMap<i32, Task>>,
    /// An error raised inside a callback, surfaced by the poll loop.
    fatal: Option<Error>,
    out: Vec<OutRecord>,
    epoch_timestamps: Vec<i64>,
    since_poll: u32,
    status: Arc<EngineStatus>,
    /// Last acknowledged offset per external output partition (all epochs so far).
    delivered: BTreeMap<String, BTreeMap<i32, i64>>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "tasks",
                &self.tasks.values().map(BTreeMap::len).sum::<usize>(),
            )
            .finish()
    }
}

impl Engine {
    /// Builds the engine: opens RocksDB and the producer.
    ///
    /// # Errors
    /// [`Error::State`] when RocksDB cannot open; [`Error::Kafka`] for a bad producer config.
    pub fn new(
        topology: Arc<Topology>,
        options: &RunOptions,
        status: Arc<EngineStatus>,
    ) -> Result<Self> {
        if let Some(url) = &topology.kafka.schema_registry_url {
            return Err(Error::Config(format!(
                "kafka.schema_registry_url = {url:?}: registry-backed Confluent framing is not supported yet; \
                 remove it to use Avro single-object encoding"
            )));
        }
        let budget =
            usize::try_from(topology.processing.rocksdb_memory_budget.0).unwrap_or(usize::MAX);
        let db = StateDb::open(&options.state_dir, budget)?;
        let _ = status.db.set(db.clone());
        let producer = KafkaProducer::new(&topology)?;
        let names = TopicId::ALL
            .iter()
            .map(|id| (*id, topology.topic_name(*id)))
            .collect();
        let stage_by_topic = Stage::ALL
            .iter()
            .map(|s| (topology.topic_name(s.input()), *s))
            .collect();
        let logic = Stage::ALL
            .iter()
            .map(|s| (*s, Arc::new(StageLogic::new(*s, &topology))))
            .collect();
        let delivered = external_high_watermarks(&topology)?;
        Ok(Self {
            topology,
            names,
            stage_by_topic,
            logic,
            db,
            producer,
            tasks: HashMap::new(),
            fatal: None,
            out: Vec::new(),
            epoch_timestamps: Vec::new(),
            since_poll: 0,
            status,
            delivered,
        })
    }

    /// The RocksDB handle (for queries).
    pub fn db(&self) -> &StateDb {
        &self.db
    }

    fn topic(&self, id: TopicId) -> &str {
        self.names.get(&id).map_or("", String::as_str)
    }

    /// Processes one input record.
    ///
    /// # Errors
    /// [`Error::Bug`] on corrupt state; [`Error::Kafka`] when a record cannot be enqueued.
    pub fn process(&mut self, msg: &BorrowedMessage<'_>) -> Result<()> {
        let (offset, partition) = (msg.offset(), msg.partition());
        let Some(task) = self
            .tasks
            .get_mut(msg.topic())
            .and_then(|t| t.get_mut(&partition))
        else {
            debug!(
                topic = msg.topic(),
                partition, offset, "record for a partition we do not own; skipped"
            );
            return Ok(());
        };
        if offset < task.next_offset {
            return Ok(());
        }
        let stage = task.stage;
        metrics::counter!(m::RECORDS_IN, "stage" => stage.name()).increment(1);
        let stamp = if matches!(stage, Stage::Dedupe | Stage::Inventory | Stage::Assemble) {
            kafka::header(msg, kafka::STAMP_HEADER).and_then(kafka::parse_stamp)
        } else {
            None
        };
        if let Some((src, off, idx)) = stamp {
            if task.upstream.get(src).is_some_and(|hwm| (off, idx) <= *hwm) {
                metrics::counter!(m::STAMP_DUPLICATES, "stage" => stage.name()).increment(1);
                task.next_offset = offset + 1;
                task.dirty = true;
                return Ok(());
            }
        }
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let started = Instant::now();
        let logic = Arc::clone(
            self.logic
                .get(&stage)
                .ok_or_else(|| Error::Bug(format!("no logic for {stage}")))?,
        );
        self.out.clear();
        let store = if stage.is_stateful() {
            task.store.as_mut().map(|s| s as &mut dyn StateStore)
        } else {
            None
        };
        let result = logic.process(store, ts, msg.payload(), &mut self.out)?;
        metrics::histogram!(m::PROCESSING_SECONDS, "stage" => stage.name())
            .record(started.elapsed().as_secs_f64());
        let task_name = task.name.clone();
        if let Some((src, off, idx)) = stamp {
            task.upstream.insert(src.to_string(), (off, idx));
        }
        task.next_offset = offset + 1;
        task.dirty = true;
        // Outputs of this offset that a previous incarnation already delivered.
        let skip: std::collections::BTreeSet<i32> = if task.suppress.is_empty() {
            std::collections::BTreeSet::new()
        } else {
            let mut later = task.suppress.split_off(&(offset + 1, i32::MIN));
            std::mem::swap(&mut later, &mut task.suppress);
            later
                .into_iter()
                .filter(|(o, _)| *o == offset)
                .map(|(_, i)| i)
                .collect()
        };
        if !skip.is_empty() {
            metrics::counter!(m::TAIL_SUPPRESSED, "stage" => stage.name())
                .increment(skip.len() as u64);
        }
        match result {
            Ok(()) => {
                let out = std::mem::take(&mut self.out);
                for (i, rec) in out.iter().enumerate() {
                    if skip.contains(&(i as i32)) {
                        continue;
                    }
                    let mut headers = vec![(
                        kafka::STAMP_HEADER,
                        format!("{task_name}/{offset}/{i}").into_bytes(),
                    )];
                    if let Some(id) = &rec.event_id {
                        headers.push((kafka::EVENT_ID_HEADER, id.clone().into_bytes()));
                    }
                    let topic = self.topic(rec.topic);
                    self.producer.send(ProduceRecord {
                        topic,
                        partition: None,
                        key: Some(&rec.key),
                        value: Some(&rec.value),
                        timestamp: Some(ts),
                        headers,
                    })?;
                    metrics::counter!(m::RECORDS_OUT, "stage" => stage.name(), "topic" => rec.topic.key()).increment(1);
                }
                self.out = out;
            }
            Err(_) if skip.contains(&0) => {}
            Err(rejected) => {
                warn!(stage = stage.name(), topic = msg.topic(), partition, offset, kind = rejected.kind, reason = %rejected.reason, "record dead-lettered");
                metrics::counter!(m::DLQ, "stage" => stage.name(), "kind" => rejected.kind)
                    .increment(1);
                let dlq = self.topic(TopicId::Dlq);
                self.producer.send(ProduceRecord {
                    topic: dlq,
                    partition: None,
                    key: msg.key(),
                    value: msg.payload(),
                    timestamp: Some(ts),
                    headers: vec![
                        (kafka::DLQ_STAGE, stage.name().as_bytes().to_vec()),
                        (kafka::DLQ_TOPIC, msg.topic().as_bytes().to_vec()),
                        (kafka::DLQ_PARTITION, partition.to_string().into_bytes()),
                        (kafka::DLQ_OFFSET, offset.to_string().into_bytes()),
                        (kafka::DLQ_KIND, rejected.kind.as_bytes().to_vec()),
                        (kafka::DLQ_REASON, rejected.reason.into_bytes()),
                        (
                            kafka::STAMP_HEADER,
                            format!("{task_name}/{offset}/0").into_bytes(),
                        ),
                    ],
                })?;
            }
        }
        self.epoch_timestamps.push(ts);
        self.since_poll += 1;
        if self.since_poll >= 1000 {
            self.since_poll = 0;
            self.producer.poll();
        }
        Ok(())
    }

    /// Closes the epoch: changelogs and checkpoints out, wait for every ack, `WriteBatch` per
    /// task, commit group offsets.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the broker refused records for good (the epoch is not committed;
    /// the process must restart from its last checkpoint); [`Error::State`] on RocksDB errors.
    pub fn commit_epoch<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let started = Instant::now();
        let mut checkpoints: Vec<(String, i32, Vec<u8>)> = Vec::new();
        let mut offsets = TopicPartitionList::new();
        for (topic, tasks) in &self.tasks {
            for task in tasks.values().filter(|t| t.dirty) {
                offsets.add_partition_offset(
                    topic,
                    task.partition,
                    Offset::Offset(task.next_offset),
                )?;
                let cp = Checkpoint {
                    next_offset: task.next_offset,
                    upstream: task.upstream.clone(),
                    delivered: self.delivered.clone(),
                }
                .encode();
                if let (Some(store), Some(store_id)) = (&task.store, task.stage.store()) {
                    let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
                    let stamp = (task.next_offset - 1).to_string().into_bytes();
                    for (key, value) in store.pending() {
                        self.producer.send(ProduceRecord {
                            topic: &changelog,
                            partition: Some(task.partition),
                            key: Some(key),
                            value: value.as_deref(),
                            timestamp: None,
                            headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp.clone())],
                        })?;
                    }
                    self.producer.send(ProduceRecord {
                        topic: &changelog,
                        partition: Some(task.partition),
                        key: Some(CHECKPOINT_KEY),
                        value: Some(&cp),
                        timestamp: None,
                        headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp)],
                    })?;
                }
                checkpoints.push((topic.clone(), task.partition, cp));
            }
        }
        if offsets.count() == 0 {
            return Ok(());
        }
        let acks = self.producer.flush();
        if acks.failed > 0 {
            return Err(Error::Topics(format!(
                "the broker refused {} record(s) of this epoch for good (first: {}); the epoch is not committed and will be replayed from the last checkpoint after restart",
                acks.failed,
                acks.first_error.unwrap_or_default()
            )));
        }
        for (topic, partition, cp) in checkpoints {
            if let Some(store) = self
                .tasks
                .get_mut(&topic)
                .and_then(|t| t.get_mut(&partition))
                .and_then(|t| t.store.as_mut())
            {
                store.commit(&[(CHECKPOINT_KEY, &cp)], true)?;
            }
        }
        for task in self.tasks.values_mut().flat_map(BTreeMap::values_mut) {
            task.dirty = false;
        }
        let external: Vec<&str> = EXTERNAL
            .iter()
            .map(|id| self.names.get(id).map_or("", String::as_str))
            .collect();
        for ((topic, partition), offset) in acks.offsets {
            if external.contains(&topic.as_str()) {
                let e = self
                    .delivered
                    .entry(topic)
                    .or_default()
                    .entry(partition)
                    .or_insert(-1);
                *e = (*e).max(offset);
            }
        }
        let now = crate::clock::now_ms();
        for ts in self.epoch_timestamps.drain(..) {
            metrics::histogram!(m::END_TO_END_SECONDS).record((now - ts).max(0) as f64 / 1000.0);
        }
        if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
            // Advisory: RocksDB holds the truth on this host; the next epoch commits again.
            warn!(error = %e, "group offset commit failed; will retry with the next epoch");
        }
        metrics::counter!(m::EPOCHS).increment(1);
        metrics::histogram!(m::EPOCH_COMMIT_SECONDS).record(started.elapsed().as_secs_f64());
        metrics::gauge!(m::ROCKSDB_MEMORY_BYTES).set(self.db.memory_usage() as f64);
        debug!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            delivered = acks.delivered,
            "epoch committed"
        );
        Ok(())
    }

    fn open_tasks<C: ConsumerContext>(
        &mut self,
        tpl: &TopicPartitionList,
        consumer: &BaseConsumer<C>,
    ) -> Result<()> {
        // Claimed from the assignment on (the instance directory names this instance as the
        // owner while it restores), until each task is open.
        let mut assigned = Vec::new();
        for elem in tpl.elements() {
            let (topic, partition) = (elem.topic().to_string(), elem.partition());
            let Some(stage) = self.stage_by_topic.get(&topic).copied() else {
                warn!(topic, "assigned a topic no stage reads; ignored");
                continue;
            };
            self.status.set_opening(&task_name(stage, partition), true);
            assigned.push((stage, topic, partition));
        }
        let mut opened = Vec::new();
        for (stage, topic, partition) in assigned.iter().cloned() {
            match self.open_task(stage, &topic, partition, consumer) {
                Ok(task) => opened.push((topic, task)),
                Err(e) => {
                    for (stage, _, partition) in &assigned {
                        self.status
                            .set_opening(&task_name(*stage, *partition), false);
                    }
                    return Err(e);
                }
            }
        }
        if let Err(e) = self.scan_output_tails(&mut opened) {
            // Without the scan a replayed epoch may repeat outputs (same event ids): log it.
            warn!(error = %e, "could not scan output tails; replayed outputs may repeat");
        }
        for (topic, task) in opened {
            metrics::gauge!(m::TASKS, "stage" => task.stage.name()).increment(1.0);
            self.status.ready_tasks.fetch_add(1, Ordering::SeqCst);
            self.status.set_owned(&task.name, true);
            self.status.set_opening(&task.name, false);
            info!(task = %task.name, topic, next_offset = task.next_offset, suppressed = task.suppress.len(), "task opened");
            self.tasks
                .entry(topic)
                .or_default()
                .insert(task.partition, task);
        }
        self.status.assigned.store(true, Ordering::SeqCst);
        Ok(())
    }

    /// Opens one task: from its local checkpoint when that is not behind the group's committed
    /// offset, else (stateful stages) by restoring its store from the changelog.
    fn open_task<C: ConsumerContext>(
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
        let fresh = local
            .as_ref()
            .is_some_and(|cp| committed.is_none_or(|c| c <= cp.next_offset));
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
        Ok(Task {
            name,
            stage,
            partition,
            store: Some(store),
            next_offset: cp.next_offset,
            upstream: cp.upstream.clone(),
            dirty: false,
            suppress: std::collections::BTreeSet::new(),
            opened_from: cp,
        })
    }

    /// Reads every external output partition from the lowest offset any opened task's
    /// checkpoint had delivered, and records, per task, the stamps it already wrote at or
    /// after its resume offset: replaying those inputs will not produce them again.
    fn scan_output_tails(&self, opened: &mut [(String, Task)]) -> Result<()> {
        if opened.is_empty() {
            return Ok(());
        }
        let consumer = reader(&self.topology, "tail-scan")?;
        let mut by_name: HashMap<String, usize> = HashMap::new();
        for (i, (_, t)) in opened.iter().enumerate() {
            by_name.insert(t.name.clone(), i);
        }
        let mut ranges = Vec::new();
        for id in EXTERNAL {
            let topic = self.topology.topic_name(id);
            for partition in 0..self.topology.partitions(id) {
                // From the lowest delivered offset among the tasks (a task without one: from 0).
                let from = opened
                    .iter()
                    .map(|(_, t)| {
                        t.opened_from
                            .delivered
                            .get(&topic)
                            .and_then(|m| m.get(&partition))
                            .map_or(0, |o| o + 1)
                    })
                    .min()
                    .unwrap_or(0);
                ranges.push((topic.clone(), partition, from));
            }
        }
        let started = Instant::now();
        let mut found = 0usize;
        read_partitions(&consumer, &ranges, |msg| {
            let Some((task, offset, index)) =
                kafka::header(msg, kafka::STAMP_HEADER).and_then(kafka::parse_stamp)
            else {
                return Ok(());
            };
            if let Some(&i) = by_name.get(task) {
                let t = &mut opened[i].1;
                if offset >= t.next_offset {
                    t.suppress.insert((offset, index));
                    found += 1;
                }
            }
            Ok(())
        })?;
        debug!(
            found,
            elapsed_ms = started.elapsed().as_millis() as u64,
            "output tails scanned"
        );
        if found > 0 {
            info!(
                found,
                "outputs already delivered before the restart will not be repeated"
            );
        }
        Ok(())
    }

    fn close_tasks(&mut self, tpl: &TopicPartitionList) {
        for elem in tpl.elements() {
            if let Some(task) = self
                .tasks
                .get_mut(elem.topic())
                .and_then(|t| t.remove(&elem.partition()))
            {
                self.forget(elem.topic(), &task);
            }
        }
    }

    fn close_all(&mut self) {
        let tasks: Vec<(String, Task)> = self
            .tasks
            .drain()
            .flat_map(|(topic, tasks)| tasks.into_values().map(move |t| (topic.clone(), t)))
            .collect();
        for (topic, task) in tasks {
            self.forget(&topic, &task);
        }
    }

    /// Bookkeeping of a closed task: gauges, readiness, ownership.
    fn forget(&self, topic: &str, task: &Task) {
        metrics::gauge!(m::TASKS, "stage" => task.stage.name()).decrement(1.0);
        // The lag of a partition we no longer own is another member's to report.
        metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.to_string(), "partition" => task.partition.to_string()).set(0.0);
        self.status.ready_tasks.fetch_sub(1, Ordering::SeqCst);
        self.status.set_owned(&task.name, false);
        info!(task = %task.name, "task closed");
    }
}

/// The current last offset of every external output partition.
fn external_high_watermarks(topology: &Topology) -> Result<BTreeMap<String, BTreeMap<i32, i64>>> {
    let consumer: BaseConsumer = kafka::base_config(topology).create()?;
    let mut out: BTreeMap<String, BTreeMap<i32, i64>> = BTreeMap::new();
    for id in EXTERNAL {
        let topic = topology.topic_name(id);
        for partition in 0..topology.partitions(id) {
            let (_, high) = kafka::retry("fetch watermarks", RETRY_BUDGET, || {
                Ok(consumer.fetch_watermarks(&topic, partition, Duration::from_secs(10))?)
            })?;
            out.entry(topic.clone())
                .or_default()
                .insert(partition, high - 1);
        }
    }
    Ok(out)
}

/// A consumer for reading partitions directly (restore, tail scans): no group membership, short
/// fetch waits so that reading a tail is quick.
fn reader(topology: &Topology, purpose: &str) -> Result<BaseConsumer> {
    let mut config = kafka::base_config(topology);
    config.set("group.id", format!("{}-{purpose}", topology.application_id));
    config.set("enable.auto.commit", "false");
    config.set("fetch.wait.max.ms", "10");
    Ok(config.create()?)
}

/// Calls `f` on every record of each `(topic, partition)` from its `from` offset to the end the
/// partition had when the call started. All partitions are read at once.
fn read_partitions<F>(
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
            Ok(consumer.fetch_watermarks(topic, *partition, Duration::from_secs(10))?)
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
        match consumer.poll(Duration::from_millis(200)) {
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
        if last_progress.elapsed() > Duration::from_secs(120) {
            return Err(Error::State(format!(
                "reading {} partition(s) made no progress for 120 s: {:?}",
                ends.len(),
                ends.keys().collect::<Vec<_>>()
            )));
        }
    }
    consumer.unassign()?;
    Ok(())
}

fn committed_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = kafka::retry("committed offsets", RETRY_BUDGET, || {
        Ok(consumer.committed_offsets(tpl.clone(), Duration::from_secs(10))?)
    })?;
    Ok(committed.elements().first().and_then(|e| match e.offset() {
        Offset::Offset(o) => Some(o),
        _ => None,
    }))
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
                if store.pending().len() >= 50_000 {
                    store.commit(&[], false)?;
                }
            }
            if last_log.elapsed() > Duration::from_secs(5) {
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

/// The consumer context: rebalance callbacks and statistics.
pub struct GroupContext {
    engine: Arc<Mutex<Engine>>,
}

fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
    engine
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl ClientContext for GroupContext {
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition >= 0 && p.consumer_lag >= 0 {
                    metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.clone(), "partition" => partition.to_string()).set(p.consumer_lag as f64);
                }
            }
        }
    }

    fn error(&self, error: KafkaError, reason: &str) {
        kafka::log_client_error(&error, reason);
    }
}

impl ConsumerContext for GroupContext {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Revoke(tpl) = rebalance {
            info!(partitions = tpl.count(), "rebalance: partitions revoked");
            metrics::counter!(m::REBALANCES, "kind" => "revoke").increment(1);
            let mut engine = lock(&self.engine);
            if let Err(e) = engine.commit_epoch(consumer) {
                error!(error = %e, "could not commit the epoch before revocation");
                engine.fatal.get_or_insert(e);
            }
            engine.close_tasks(tpl);
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(tpl) => {
                info!(partitions = tpl.count(), "rebalance: partitions assigned");
                metrics::counter!(m::REBALANCES, "kind" => "assign").increment(1);
                let mut engine = lock(&self.engine);
                if let Err(e) = engine.open_tasks(tpl, consumer) {
                    error!(error = %e, "could not open assigned tasks");
                    engine.fatal.get_or_insert(e);
                }
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

/// Runs the topology until `options.shutdown` is set or a fatal error occurs.
///
/// # Errors
/// Whatever stopped the engine: a broker refusing records for good, RocksDB failing, corrupt
/// state. Bad records never stop it (they go to the DLQ).
pub fn run(topology: Arc<Topology>, options: RunOptions, status: Arc<EngineStatus>) -> Result<()> {
    let engine = Arc::new(Mutex::new(Engine::new(
        Arc::clone(&topology),
        &options,
        status,
    )?));
    let mut config = kafka::consumer_config(&topology);
    if let Some(id) = &options.group_instance_id {
        config.set("group.instance.id", id);
        info!(group_instance_id = %id, "static group membership: a restart within the session timeout keeps the partitions");
    }
    let consumer: BaseConsumer<GroupContext> = config.create_with_context(GroupContext {
        engine: Arc::clone(&engine),
    })?;
    let topics: Vec<String> = Stage::ALL
        .iter()
        .map(|s| topology.topic_name(s.input()))
        .collect();
    let topic_refs: Vec<&str> = topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topic_refs)?;
    info!(group = %topology.application_id, topics = ?topics, "joined the consumer group");
    let epoch = topology.processing.epoch_interval;
    let max_records = u64::try_from(topology.processing.epoch_max_records)
        .unwrap_or(10_000)
        .max(1);
    let result = (|| -> Result<()> {
        while !options.shutdown.load(Ordering::SeqCst) {
            let deadline = Instant::now() + epoch;
            let mut n = 0u64;
            while n < max_records {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                match consumer.poll(remaining) {
                    None => break,
                    Some(Ok(msg)) => {
                        lock(&engine).process(&msg)?;
                        n += 1;
                    }
                    Some(Err(e)) => kafka::log_client_error(&e, "poll"),
                }
                if let Some(e) = lock(&engine).fatal.take() {
                    return Err(e);
                }
            }
            let mut e = lock(&engine);
            if let Some(err) = e.fatal.take() {
                return Err(err);
            }
            e.commit_epoch(&consumer)?;
        }
        Ok(())
    })();
    match &result {
        Ok(()) => {
            info!("shutting down: committing the last epoch and leaving the group");
            lock(&engine).commit_epoch(&consumer)?;
        }
        Err(e) => error!(error = %e, "engine stopped"),
    }
    consumer.unsubscribe();
    lock(&engine).close_all();
    drop(consumer);
    result
}
