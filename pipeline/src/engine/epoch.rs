//! The epoch (DESIGN §3): process → produce → await acks → `WriteBatch` → commit.
//!
//! 1. [`Engine::process`]: each polled record goes to its task; the task's [`Ledger`] admits
//!    it (not replayed, not a repeated upstream stamp), the stage runs its operator against the
//!    store's overlay, and the outputs are produced at once, each stamped `task/offset/index`
//!    (outputs a previous incarnation already delivered are skipped, see [`super::tail`]). A
//!    rejected record goes to the DLQ with its reason ([`Engine::dead_letter`]).
//! 2. [`Engine::commit_epoch`]: the stores' changelog records and each task's checkpoint are
//!    produced; the producer is flushed and **every** record of the epoch must be acknowledged;
//!    then each task's overlay and checkpoint go to RocksDB in one `WriteBatch`; then the group
//!    offsets are committed (advisory: RocksDB is the truth on this host).
//!
//! A crash anywhere before the `WriteBatch` replays the epoch from the last checkpoint with the
//! same outputs (operators are deterministic), and receivers drop repeats by stamp.
//!
//! [`Ledger`]: super::task::Ledger

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Instant;

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_operators::StateStore;
use shelfsync_topology::{TopicId, TopicRole};
use tracing::{debug, warn};

use super::stamp::{Stamp, STAMP_HEADER};
use super::tail::external_topics;
use super::task::Admission;
use super::Engine;
use crate::error::{Error, Result};
use crate::kafka::{self, ProduceRecord};
use crate::metrics as m;
use crate::rocks_store::CHECKPOINT_KEY;
use crate::stages::Rejected;

/// How many records are processed between two `poll`s of the producer (delivery callbacks).
const PRODUCER_POLL_EVERY: u32 = 1000;

impl Engine {
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
        let stage = task.stage;
        // Only internal topics carry stamps that a reader must honour.
        let stamp = if stage.input().role() == TopicRole::Internal {
            Stamp::of(msg)
        } else {
            None
        };
        match task.ledger.admit(offset, stamp.as_ref()) {
            Admission::Replayed => return Ok(()),
            Admission::Duplicate => {
                metrics::counter!(m::RECORDS_IN, "stage" => stage.name()).increment(1);
                metrics::counter!(m::STAMP_DUPLICATES, "stage" => stage.name()).increment(1);
                return Ok(());
            }
            Admission::Apply => {
                metrics::counter!(m::RECORDS_IN, "stage" => stage.name()).increment(1);
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
        let store = stage
            .is_stateful()
            .then_some(&mut task.store as &mut dyn StateStore);
        let result = logic.process(store, ts, msg.payload(), &mut self.out)?;
        metrics::histogram!(m::PROCESSING_SECONDS, "stage" => stage.name())
            .record(started.elapsed().as_secs_f64());
        // Outputs of this offset that a previous incarnation already delivered.
        let skip = task.ledger.applied(offset, stamp.as_ref());
        let task_name = task.name.clone();
        if !skip.is_empty() {
            metrics::counter!(m::TAIL_SUPPRESSED, "stage" => stage.name())
                .increment(skip.len() as u64);
        }
        match result {
            Ok(()) => self.produce(&task_name, stage.name(), offset, ts, &skip)?,
            // The DLQ record is this offset's output 0, delivered before the crash.
            Err(_) if skip.contains(&0) => {}
            Err(rejected) => self.dead_letter(msg, &task_name, stage.name(), ts, rejected)?,
        }
        self.epoch_timestamps.push(ts);
        self.since_poll += 1;
        if self.since_poll >= PRODUCER_POLL_EVERY {
            self.since_poll = 0;
            self.producer.poll();
        }
        Ok(())
    }

    /// Produces the outputs of input `offset` (in `self.out`), each stamped with its index,
    /// except those a previous incarnation already delivered (`skip`).
    fn produce(
        &mut self,
        task: &str,
        stage: &'static str,
        offset: i64,
        ts: i64,
        skip: &BTreeSet<i32>,
    ) -> Result<()> {
        let out = std::mem::take(&mut self.out);
        let mut result = Ok(());
        for (i, rec) in out.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            if skip.contains(&index) {
                continue;
            }
            let stamp = Stamp {
                task,
                offset,
                index,
            };
            let mut headers = vec![(STAMP_HEADER, stamp.to_header())];
            if let Some(id) = &rec.event_id {
                headers.push((kafka::EVENT_ID_HEADER, id.clone().into_bytes()));
            }
            result = self.producer.send(ProduceRecord {
                topic: self.topic(rec.topic),
                partition: None,
                key: Some(&rec.key),
                value: Some(&rec.value),
                timestamp: Some(ts),
                headers,
            });
            if result.is_err() {
                break;
            }
            metrics::counter!(m::RECORDS_OUT, "stage" => stage, "topic" => rec.topic.key())
                .increment(1);
        }
        self.out = out;
        result
    }

    /// Sends the original record to the DLQ with the reason in headers, stamped as output 0 of
    /// its offset (so a replay after a crash does not dead-letter it twice).
    fn dead_letter(
        &self,
        msg: &BorrowedMessage<'_>,
        task: &str,
        stage: &'static str,
        ts: i64,
        rejected: Rejected,
    ) -> Result<()> {
        let (offset, partition) = (msg.offset(), msg.partition());
        warn!(stage, topic = msg.topic(), partition, offset, kind = rejected.kind, reason = %rejected.reason, "record dead-lettered");
        metrics::counter!(m::DLQ, "stage" => stage, "kind" => rejected.kind).increment(1);
        let stamp = Stamp {
            task,
            offset,
            index: 0,
        };
        self.producer.send(ProduceRecord {
            topic: self.topic(TopicId::Dlq),
            partition: None,
            key: msg.key(),
            value: msg.payload(),
            timestamp: Some(ts),
            headers: vec![
                (kafka::DLQ_STAGE, stage.as_bytes().to_vec()),
                (kafka::DLQ_TOPIC, msg.topic().as_bytes().to_vec()),
                (kafka::DLQ_PARTITION, partition.to_string().into_bytes()),
                (kafka::DLQ_OFFSET, offset.to_string().into_bytes()),
                (kafka::DLQ_KIND, rejected.kind.as_bytes().to_vec()),
                (kafka::DLQ_REASON, rejected.reason.into_bytes()),
                (STAMP_HEADER, stamp.to_header()),
            ],
        })
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
            for task in tasks.values().filter(|t| t.ledger.is_dirty()) {
                let next_offset = task.ledger.next_offset();
                offsets.add_partition_offset(topic, task.partition, Offset::Offset(next_offset))?;
                let cp = task.ledger.checkpoint(&self.delivered).encode();
                if let Some(store_id) = task.stage.store() {
                    let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
                    let input_offset = (next_offset - 1).to_string().into_bytes();
                    for (key, value) in task.store.pending() {
                        self.producer.send(ProduceRecord {
                            topic: &changelog,
                            partition: Some(task.partition),
                            key: Some(key),
                            value: value.as_deref(),
                            timestamp: None,
                            headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, input_offset.clone())],
                        })?;
                    }
                    self.producer.send(ProduceRecord {
                        topic: &changelog,
                        partition: Some(task.partition),
                        key: Some(CHECKPOINT_KEY),
                        value: Some(&cp),
                        timestamp: None,
                        headers: vec![(kafka::CHANGELOG_OFFSET_HEADER, input_offset)],
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
            if let Some(task) = self
                .tasks
                .get_mut(&topic)
                .and_then(|t| t.get_mut(&partition))
            {
                task.store.commit(&[(CHECKPOINT_KEY, &cp)], true)?;
                task.ledger.committed();
            }
        }
        let external: Vec<String> = external_topics()
            .map(|id| self.topic(id).to_string())
            .collect();
        for ((topic, partition), offset) in acks.offsets {
            if external.contains(&topic) {
                self.delivered.record(&topic, partition, offset);
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
}
