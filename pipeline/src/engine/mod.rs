//! The runtime: one group consumer, one idempotent producer, one RocksDB, and a task per
//! assigned `(stage, partition)`, driven in epochs. The files are the steps of DESIGN §3:
//!
//! | file | protocol step |
//! |---|---|
//! | `task.rs` | the task, its [`Checkpoint`] and its ledger: the one type that holds a task's exactly-once bookkeeping |
//! | `epoch.rs` | the epoch: process → produce → await acks → `WriteBatch` → commit |
//! | `guard.rs` | what every input must pass before its stage sees it: a size and a timestamp bound |
//! | `output.rs` | producing: stamped outputs, dead letters (cut to fit), progress marks |
//! | `stamp.rs` | upstream stamps: `task/step/index` on every output, per-upstream high-water marks on every reader |
//! | `progress.rs` | progress marks: how far each upstream task's event time has advanced |
//! | `align.rs` | event-time alignment where paths merge: held records, applied in timestamp order |
//! | `opener.rs` | the opener thread: tasks open off the rebalance callback while the others run |
//! | `incarnation.rs` | lineages: a recreated input topic is read again, in a new lineage of stamps |
//! | `restore.rs` | opening a task: resume from the local checkpoint or restore the store from its changelog |
//! | `tail.rs` | output-tail suppression: delivered offsets and the scan that keeps a restart from repeating outputs |
//! | `rebalance.rs` | the consumer-group callbacks: commit and close on revoke, open on assign |
//! | `status.rs` | what probes, the directory and queries read while the engine runs |
//!
//! This file holds the [`Engine`] (the state the poll loop and the rebalance callbacks share,
//! behind one mutex) and [`run`], the poll loop: poll for up to one epoch interval or
//! `epoch_max_records` records, then commit the epoch.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, Consumer};
use shelfsync_topology::{Stage, Topology};
use tracing::{error, info};

use crate::error::{Error, Result};
use crate::kafka::{self, KafkaProducer};
use crate::rocks_store::StateDb;
use crate::stages::StageLogic;

mod align;
mod epoch;
mod guard;
mod incarnation;
mod opener;
mod output;
mod progress;
mod rebalance;
mod restore;
mod segment;
mod stamp;
mod status;
mod tail;
mod task;

pub use progress::Mark;
pub use rebalance::GroupContext;
pub use stamp::{Stamp, STAMP_KEY_ENV};
pub use status::EngineStatus;
pub use tail::{fresh_start_metadata, Delivered};
pub use task::{task_name, Checkpoint};

use rebalance::{lock, Tasks};

/// Runtime options that are not part of the topology.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Where RocksDB lives.
    pub state_dir: PathBuf,
    /// Set to stop gracefully: finish the epoch, commit, leave the group.
    pub shutdown: Arc<AtomicBool>,
    /// `group.instance.id` of the group consumer (static membership), when set.
    pub group_instance_id: Option<String>,
    /// How long a stop may wait for the broker (the last epoch's acknowledgements, leaving the
    /// group) once `shutdown` is set. An epoch not acknowledged by then is not committed: the
    /// next start replays it, so nothing is lost.
    pub shutdown_timeout: std::time::Duration,
}

/// The default [`RunOptions::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// When a stop that was asked for must give up waiting for the broker.
#[derive(Debug)]
pub(crate) struct StopClock {
    flag: Arc<AtomicBool>,
    timeout: std::time::Duration,
    /// When the stop was first seen.
    seen: std::cell::Cell<Option<Instant>>,
}

impl StopClock {
    fn new(flag: Arc<AtomicBool>, timeout: std::time::Duration) -> Self {
        Self {
            flag,
            timeout,
            seen: std::cell::Cell::new(None),
        }
    }

    /// True once a stop was asked for `timeout` ago or more.
    pub(crate) fn expired(&self) -> bool {
        if !self.flag.load(Ordering::SeqCst) {
            return false;
        }
        let seen = *self.seen.get().get_or_insert_with(Instant::now);
        self.seen.set(Some(seen));
        seen.elapsed() >= self.timeout
    }

    /// What is left of the timeout once a stop was asked for (all of it before).
    fn remaining(&self) -> std::time::Duration {
        let _ = self.expired();
        self.seen.get().map_or(self.timeout, |seen| {
            self.timeout.saturating_sub(seen.elapsed())
        })
    }
}

/// The engine state shared between the poll loop and the rebalance callbacks.
pub struct Engine {
    topology: Arc<Topology>,
    stage_by_topic: HashMap<String, Stage>,
    logic: HashMap<Stage, Arc<StageLogic>>,
    db: StateDb,
    output: output::Output,
    tasks: Tasks,
    /// An error raised inside a callback, surfaced by the poll loop.
    fatal: Option<Error>,
    status: Arc<EngineStatus>,
    /// Last acknowledged offset per external output partition (all epochs so far); every
    /// checkpoint carries it.
    delivered: Delivered,
    /// When a stop gives up waiting for the broker.
    stop: StopClock,
    /// This state directory's id in changelog headers ([`StateDb::writer_id`]).
    writer_id: Vec<u8>,
    /// Opens assigned tasks off the rebalance callback.
    opener: opener::Opener,
    /// The sealed epoch whose records are in flight while the next one is processed.
    in_flight: Option<epoch::InFlight>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field(
                "tasks",
                &self
                    .tasks
                    .values()
                    .map(std::collections::BTreeMap::len)
                    .sum::<usize>(),
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
        let stamp_key = stamp::StampKey::from_env(&topology.application_id);
        if stamp_key.derived {
            tracing::warn!(
                "{} is not set: stamps are signed with a key derived from the application id, which tells our records from foreign ones but not from a forger who knows the id; set it (the same secret on every instance) in production",
                stamp::STAMP_KEY_ENV
            );
        }
        let writer_id = db.writer_id()?.into_bytes();
        let opener = opener::Opener::start(restore::OpenCtx::new(
            Arc::clone(&topology),
            db.clone(),
            Arc::clone(&status),
            writer_id.clone(),
            stamp_key.clone(),
        )?)?;
        let output = output::Output::new(KafkaProducer::new(&topology)?, &topology, stamp_key);
        let stage_by_topic = Stage::ALL
            .iter()
            .map(|s| (topology.topic_name(s.input()), *s))
            .collect();
        let logic = Stage::ALL
            .iter()
            .map(|s| (*s, Arc::new(StageLogic::new(*s, &topology))))
            .collect();
        let delivered = Delivered::high_watermarks(&topology)?;
        Ok(Self {
            topology,
            stage_by_topic,
            logic,
            output,
            tasks: HashMap::new(),
            fatal: None,
            status,
            delivered,
            stop: StopClock::new(Arc::clone(&options.shutdown), options.shutdown_timeout),
            writer_id,
            opener,
            db,
            in_flight: None,
        })
    }

    /// The RocksDB handle (for queries).
    pub fn db(&self) -> &StateDb {
        &self.db
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
    let max_records = topology.processing.epoch_max_records.max(1);
    let result = (|| -> Result<()> {
        while !options.shutdown.load(Ordering::SeqCst) {
            let deadline = Instant::now() + epoch;
            let mut n = 0;
            while n < max_records {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    break;
                }
                // Rebalance callbacks run inside `poll` and take the engine's lock themselves;
                // the loop takes it once per polled record.
                let polled = consumer.poll(remaining);
                let mut e = lock(&engine);
                if let Some(err) = e.fatal.take() {
                    return Err(err);
                }
                // Tasks the opener thread finished join between polls.
                e.install_opened(&consumer)?;
                match polled {
                    None => break,
                    Some(Ok(msg)) => {
                        e.process(&msg)?;
                        n += 1;
                    }
                    Some(Err(err)) => kafka::log_client_error(&err, "poll"),
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
    let result = result.and_then(|()| {
        info!("shutting down: committing the last epoch and leaving the group");
        lock(&engine).commit_all(&consumer)
    });
    if let Err(e) = &result {
        error!(error = %e, "engine stopped");
    }
    lock(&engine).close_all();
    lock(&engine).opener.stop(std::time::Duration::from_secs(5));
    // Leaving the group talks to the broker; during an outage that can take for ever, so it
    // gets what is left of the shutdown timeout (at least 2 s) on a thread of its own.
    let wait = lock(&engine)
        .stop
        .remaining()
        .max(std::time::Duration::from_secs(2));
    kafka::leave_group(consumer, wait);
    result
}
