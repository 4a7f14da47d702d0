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
}

/// Runtime options that are not part of the topology.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where RocksDB lives.
    pub state_dir: PathBuf,
    /// Set to stop gracefully: finish the epoch, commit, leave the group.
    pub shutdown: Arc<AtomicBool>,
}

/// Shared view of the engine for health and metrics.
#[derive(Debug, Default)]
pub struct EngineStatus {
    /// Tasks assigned and ready.
    pub ready_tasks: std::sync::atomic::AtomicUsize,
    /// Tasks restoring.
    pub restoring_tasks: std::sync::atomic::AtomicUsize,
    /// True once the consumer got its first assignment.
    pub assigned: AtomicBool,
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

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
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
        let budget =
            usize::try_from(topology.processing.rocksdb_memory_budget.0).unwrap_or(usize::MAX);
        let db = StateDb::open(&options.state_dir, budget)?;
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
        let store = task.store.as_mut().map(|s| s as &mut dyn StateStore);
        let result = logic.process(store, ts, msg.payload(), &mut self.out)?;
        metrics::histogram!(m::PROCESSING_SECONDS, "stage" => stage.name())
            .record(started.elapsed().as_secs_f64());
        let task_name = task.name.clone();
        if let Some((src, off, idx)) = stamp {
            task.upstream.insert(src.to_string(), (off, idx));
        }
        task.next_offset = offset + 1;
        task.dirty = true;
        match result {
            Ok(()) => {
                let out = std::mem::take(&mut self.out);
                for (i, rec) in out.iter().enumerate() {
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
                let Some(store) = &task.store else { continue };
                let Some(store_id) = task.stage.store() else {
                    continue;
                };
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
                let cp = Checkpoint {
                    next_offset: task.next_offset,
                    upstream: task.upstream.clone(),
                }
                .encode();
                self.producer.send(ProduceRecord {
                    topic: &changelog,
                    partition: Some(task.partition),
                    key: Some(CHECKPOINT_KEY),
                    value: Some(&cp),
                    timestamp: None,
                    headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, stamp)],
                })?;
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
        let now = now_ms();
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
        for elem in tpl.elements() {
            let (topic, partition) = (elem.topic().to_string(), elem.partition());
            let Some(stage) = self.stage_by_topic.get(&topic).copied() else {
                warn!(topic, "assigned a topic no stage reads; ignored");
                continue;
            };
            let name = format!("{}-{partition}", stage.name());
            let mut task = Task {
                name: name.clone(),
                stage,
                partition,
                store: None,
                next_offset: -1,
                upstream: BTreeMap::new(),
                dirty: false,
            };
            if let Some(store_id) = stage.store() {
                let mut store = self.db.store(&name)?;
                let committed = committed_offset(consumer, &topic, partition)?;
                let local = store
                    .get_committed(CHECKPOINT_KEY)?
                    .map(|b| Checkpoint::decode(&b))
                    .transpose()?;
                let usable = local.filter(|cp| committed.is_none_or(|c| c <= cp.next_offset));
                let cp = match usable {
                    Some(cp) => {
                        info!(task = %name, next_offset = cp.next_offset, "resuming from local checkpoint");
                        cp
                    }
                    None => {
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
                task.next_offset = cp.next_offset;
                task.upstream = cp.upstream;
                task.store = Some(store);
            }
            metrics::gauge!(m::TASKS, "stage" => stage.name()).increment(1.0);
            self.status.ready_tasks.fetch_add(1, Ordering::SeqCst);
            info!(task = %name, topic, next_offset = task.next_offset, "task opened");
            self.tasks.entry(topic).or_default().insert(partition, task);
        }
        self.status.assigned.store(true, Ordering::SeqCst);
        Ok(())
    }

    fn close_tasks(&mut self, tpl: &TopicPartitionList) {
        for elem in tpl.elements() {
            if let Some(task) = self
                .tasks
                .get_mut(elem.topic())
                .and_then(|t| t.remove(&elem.partition()))
            {
                metrics::gauge!(m::TASKS, "stage" => task.stage.name()).decrement(1.0);
                self.status.ready_tasks.fetch_sub(1, Ordering::SeqCst);
                info!(task = %task.name, "task closed");
            }
        }
    }

    fn close_all(&mut self) {
        for (_, tasks) in self.tasks.drain() {
            for task in tasks.into_values() {
                metrics::gauge!(m::TASKS, "stage" => task.stage.name()).decrement(1.0);
                self.status.ready_tasks.fetch_sub(1, Ordering::SeqCst);
                info!(task = %task.name, "task closed");
            }
        }
    }
}

fn committed_offset<C: ConsumerContext>(
    consumer: &BaseConsumer<C>,
    topic: &str,
    partition: i32,
) -> Result<Option<i64>> {
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition(topic, partition);
    let committed = consumer.committed_offsets(tpl, Duration::from_secs(30))?;
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
    let mut config = kafka::base_config(topology);
    config.set("group.id", format!("{}-restore", topology.application_id));
    config.set("enable.auto.commit", "false");
    config.set("enable.partition.eof", "true");
    let consumer: BaseConsumer = config.create()?;
    let (low, high) = consumer.fetch_watermarks(changelog, partition, Duration::from_secs(30))?;
    let mut checkpoint = Checkpoint::default();
    let mut applied = 0u64;
    if high > low && below > 0 {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition_offset(changelog, partition, Offset::Beginning)?;
        consumer.assign(&tpl)?;
        info!(
            changelog,
            partition,
            records = high - low,
            below,
            "restoring store from changelog"
        );
        let mut last_log = Instant::now();
        loop {
            match consumer.poll(Duration::from_secs(5)) {
                None => {
                    if started.elapsed() > Duration::from_secs(600) {
                        return Err(Error::State(format!(
                            "restore of {changelog}[{partition}] made no progress for too long"
                        )));
                    }
                }
                Some(Err(KafkaError::PartitionEOF(_))) => break,
                Some(Err(e)) => kafka::log_client_error(&e, "restore"),
                Some(Ok(msg)) => {
                    let input_offset = kafka::header(&msg, kafka::CHANGELOG_OFFSET_HEADER)
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
                        if store.pending().len() >= 50_000 {
                            store.commit(&[], false)?;
                        }
                    }
                    if msg.offset() + 1 >= high {
                        break;
                    }
                    if last_log.elapsed() > Duration::from_secs(5) {
                        last_log = Instant::now();
                        info!(
                            changelog,
                            partition,
                            at = msg.offset(),
                            high,
                            applied,
                            "restoring"
                        );
                    }
                }
            }
        }
        metrics::counter!(m::RESTORE_RECORDS).increment(applied);
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
    let consumer: BaseConsumer<GroupContext> = kafka::consumer_config(&topology)
        .create_with_context(GroupContext {
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
