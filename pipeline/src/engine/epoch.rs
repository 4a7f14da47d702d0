//! The epoch (DESIGN §3): process → produce → seal; one epoch later: await acks →
//! `WriteBatch` → commit.
//!
//! 1. [`Engine::process`]: each polled record goes to its task. A progress mark updates the
//!    task's view of that upstream ([`super::progress`]). Any other record is admitted by the
//!    task's ledger (not replayed, not a repeated upstream stamp), then applied at once — or,
//!    in an aligning task, held until every upstream has passed its event time
//!    ([`super::align`]). Applying runs the stage's operator against the store's overlay and
//!    produces the outputs at once, stamped `task/step/index` (outputs a previous incarnation
//!    already delivered are skipped, see [`super::tail`]); a rejected record goes to the DLQ
//!    with its reason.
//! 2. [`Engine::commit_epoch`]: held records still waiting are written to the store, progress
//!    marks that changed are published, the stores' changelog records and each task's
//!    checkpoint are produced, and the epoch is **sealed**: each task's overlay moves beneath
//!    a fresh one ([`crate::rocks_store::RocksStore::seal`]) and its records stay in flight,
//!    tagged with the epoch, while the next epoch is processed.
//! 3. At the end of the next epoch, before it is sealed ([`Engine::finish_in_flight`]):
//!    **every** record of the sealed epoch must be acknowledged; then each task's sealed
//!    writes and checkpoint go to RocksDB in one `WriteBatch`; then the group offsets are
//!    committed (advisory: RocksDB is the truth on this host). At most one epoch is in
//!    flight; [`Engine::commit_all`] (revocation, shutdown) finishes both.
//!
//! A crash anywhere before the `WriteBatch` replays the epoch from the last checkpoint with the
//! same outputs (operators are deterministic, alignment depends only on what the partition
//! holds), and receivers drop repeats by stamp.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, TopicId, TopicRole};
use tracing::{debug, info, warn};

use super::align::{Held, Release};
use super::output::{Input, Output, Trace};
use super::progress::{self, Mark};
use super::stamp::{Stamp, MAC_HEADER, STAMP_KEY_ENV};
use super::tail::{external_topics, CommitMeta};
use super::task::{Admission, Task};
use super::Engine;
use crate::error::{Error, Result};
use crate::kafka::{self, ProduceRecord};
use crate::metrics as m;
use crate::rocks_store::{CHANGELOG_END_KEY, CHECKPOINT_KEY};
use crate::stages::{Rejected, StageLogic};

/// How long one fetch of a source partition's end may take when a task checks whether it is
/// caught up (a slow answer only delays its progress mark).
const END_FETCH_TIMEOUT: Duration = Duration::from_secs(1);

/// An epoch sealed and produced whose acknowledgements are awaited (see
/// [`Engine::commit_epoch`]).
pub(crate) struct InFlight {
    /// The producer's tag of its records.
    tag: usize,
    /// (input topic, partition, encoded checkpoint) of every task it checkpoints.
    checkpoints: Vec<(String, i32, Vec<u8>)>,
    /// (input topic, partition, changelog) of every task that wrote its changelog.
    changelogs: Vec<(String, i32, String)>,
    /// The group offsets it commits.
    offsets: TopicPartitionList,
    /// Source timestamps of its outputs (end-to-end latency).
    timestamps: Vec<i64>,
    /// How long sealing it blocked the engine.
    sealing: Duration,
}

impl Engine {
    /// Processes one input record.
    ///
    /// # Errors
    /// [`Error::Bug`] on corrupt state; [`Error::Kafka`] when a record cannot be enqueued.
    pub fn process(&mut self, msg: &BorrowedMessage<'_>) -> Result<()> {
        let (offset, partition) = (msg.offset(), msg.partition());
        let Engine {
            tasks,
            output,
            logic,
            ..
        } = self;
        let Some(task) = tasks
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
        let internal = stage.input().role() == TopicRole::Internal;
        if offset >= task.ledger.next_offset() {
            // What the next open compares the partition with (a recreated topic).
            task.ledger
                .seen(offset, msg.timestamp().to_millis().unwrap_or(0));
        }
        if let Some(mark) = Mark::of(msg) {
            if offset >= task.ledger.next_offset() {
                task.ledger.consumed(offset);
                let claim = kafka::header(msg, kafka::PROGRESS_HEADER).unwrap_or_default();
                if output.stamp_key.verify_msg(msg, claim) {
                    task.ledger.mark(mark.task, mark.event_time);
                    release(task, msg.topic(), logic, output)?;
                } else {
                    metrics::counter!(m::FORGED, "stage" => stage.name(), "kind" => "progress_mark")
                        .increment(1);
                    warn!(task = %task.name, topic = msg.topic(), partition, offset, upstream = mark.task, "progress mark ignored: its MAC does not verify (not written by this application, or another stamp key)");
                }
            }
            return Ok(());
        }
        // Only internal topics carry stamps that a reader must honour, and only authentic ones:
        // a stamp moves the upstream's high-water mark, so a forged one would silence it.
        let claimed = if internal { Stamp::of(msg) } else { None };
        let forged = claimed.is_some_and(|s| !output.stamp_key.verify_msg(msg, &s.to_header()));
        let stamp = claimed.filter(|_| !forged);
        let held = stamp.and_then(|s| task.aligner.as_ref()?.last_held(s.task));
        match task.ledger.admit(offset, stamp.as_ref(), held) {
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
        task.ledger.consumed(offset);
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let input = Input {
            topic: msg.topic(),
            partition,
            offset,
            key: msg.key(),
            value: msg.payload(),
            ts,
            carried: kafka::carried_headers(msg),
        };
        if let Some(of) = input.carried[3] {
            metrics::counter!(m::REDRIVEN, "stage" => stage.name()).increment(1);
            info!(task = %task.name, topic = msg.topic(), partition, offset, redrive_of = %String::from_utf8_lossy(of), "redriven record taken");
        }
        if forged {
            // Not held (its upstream name is not to be trusted either) and not marked: applied
            // at once as a rejected step of this task, i.e. dead-lettered with the reason.
            metrics::counter!(m::FORGED, "stage" => stage.name(), "kind" => "stamp").increment(1);
            let step = task.ledger.take_step(task.aligner.is_some(), offset);
            let refused = Rejected {
                kind: "forged_stamp",
                reason: format!(
                    "stamp {:?} on an internal topic does not verify (missing or wrong {MAC_HEADER}): not written by this application or written with another {STAMP_KEY_ENV}; applying it would move the upstream's high-water mark",
                    kafka::header(msg, kafka::STAMP_HEADER)
                        .map(String::from_utf8_lossy)
                        .unwrap_or_default()
                ),
            };
            return apply(task, logic, output, &input, None, step, Some(refused));
        }
        match (task.aligner.as_mut(), stamp) {
            (Some(aligner), Some(stamp)) => {
                aligner.hold(Held {
                    upstream: stamp.task.to_string(),
                    stamp: stamp.position(),
                    offset,
                    ts,
                    key: msg.key().map(<[u8]>::to_vec),
                    value: msg.payload().map(<[u8]>::to_vec),
                    held_at_ms: crate::clock::now_ms(),
                    trace: input.carried[..kafka::TRACE_HEADERS.len()]
                        .iter()
                        .map(|v| v.map(<[u8]>::to_vec))
                        .collect(),
                });
                metrics::gauge!(m::ALIGNMENT_HELD, "stage" => stage.name()).increment(1.0);
                release(task, msg.topic(), logic, output)
            }
            (aligner, _) => {
                let step = task.ledger.take_step(aligner.is_some(), offset);
                apply(task, logic, output, &input, stamp.as_ref(), step, None)
            }
        }
    }

    /// Closes the epoch without waiting for it: finishes the previous epoch (waits for its
    /// acknowledgements, then its `WriteBatch`es and group commit), then seals this one —
    /// held records and progress marks out, changelogs and checkpoints out, each task's
    /// writes sealed beneath the next epoch's — and leaves its records in flight while the
    /// next epoch is processed. At most one epoch is in flight.
    ///
    /// # Errors
    /// [`Error::Kafka`] when the broker refused records for good (the epoch is not committed;
    /// the process must restart from its last checkpoint); [`Error::State`] on RocksDB errors.
    pub fn commit_epoch<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.end_epoch(consumer)
    }

    /// Closes the epoch and waits for it: when this returns, every epoch so far is committed
    /// (before partitions are revoked, and at shutdown).
    ///
    /// # Errors
    /// As [`Engine::commit_epoch`].
    pub fn commit_all<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        self.end_epoch(consumer)?;
        self.finish_in_flight(consumer)
    }

    fn end_epoch<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        // The previous epoch passed the check below before its records left: it is finished
        // like an unpipelined epoch would have been before this one started.
        self.finish_in_flight(consumer)?;
        let started = Instant::now();
        if consumer.assignment_lost() && self.tasks.values().any(|t| !t.is_empty()) {
            // A zombie: the group gave our partitions to others (our session timed out, e.g.
            // the process was paused). Committing now would write our changelogs after the
            // new owners' epochs; drop the epoch instead (its new owners replay it) and close
            // the tasks until the group assigns them again.
            warn!("this member lost its partitions (session timed out): its uncommitted epoch is dropped and its tasks closed; the new owners replay it");
            metrics::counter!(m::ZOMBIE_EPOCHS).increment(1);
            for task in self.tasks.values_mut().flat_map(|t| t.values_mut()) {
                task.store.discard();
                task.watermark.unpublish();
                if let Some(aligner) = task.aligner.as_mut() {
                    aligner.unpersist();
                }
            }
            self.output.records.clear();
            self.output.epoch_timestamps.clear();
            self.close_all();
            return Ok(());
        }
        // Records held past their limit go now; the rest are written to their stores.
        for (topic, tasks) in &mut self.tasks {
            for task in tasks.values_mut() {
                release(task, topic, &self.logic, &mut self.output)?;
                if let Some(aligner) = task.aligner.as_mut() {
                    aligner.persist(&mut task.store);
                }
            }
        }
        let marks = self.publish_progress(consumer)?;
        let mut checkpoints: Vec<(String, i32, Vec<u8>)> = Vec::new();
        // (input topic, partition, changelog) of every task that wrote its changelog.
        let mut changelogs: Vec<(String, i32, String)> = Vec::new();
        let mut offsets = TopicPartitionList::new();
        let producer = self.output.producer();
        for (topic, tasks) in &self.tasks {
            for task in tasks.values().filter(|t| t.ledger.is_dirty()) {
                let next_offset = task.ledger.next_offset();
                offsets.add_partition_offset(topic, task.partition, Offset::Offset(next_offset))?;
                let cp = task.ledger.checkpoint(&self.delivered);
                // The commit carries where the output tails stood, for a host that opens the
                // task without this checkpoint (see `tail::CommitMeta`).
                let meta = CommitMeta {
                    delivered: cp.delivered.clone(),
                    lineage: cp.lineage,
                    segment: task.segment.clone(),
                };
                if let (Some(meta), Some(mut elem)) = (
                    meta.to_metadata(),
                    offsets.find_partition(topic, task.partition),
                ) {
                    elem.set_metadata(meta);
                }
                let cp = cp.encode();
                if let Some(store_id) = task.stage.store() {
                    let changelog = self.topology.topic_name(TopicId::Changelog(store_id));
                    let input_offset = (next_offset - 1).to_string().into_bytes();
                    let headers = || {
                        vec![
                            (kafka::CHANGELOG_OFFSET_HEADER, input_offset.clone()),
                            (kafka::CHANGELOG_WRITER_HEADER, self.writer_id.clone()),
                        ]
                    };
                    for (key, value) in task.store.pending() {
                        producer.send(ProduceRecord {
                            topic: &changelog,
                            partition: Some(task.partition),
                            key: Some(key),
                            value: value.as_deref(),
                            timestamp: None,
                            headers: headers(),
                        })?;
                    }
                    producer.send(ProduceRecord {
                        topic: &changelog,
                        partition: Some(task.partition),
                        key: Some(CHECKPOINT_KEY),
                        value: Some(&cp),
                        timestamp: None,
                        headers: headers(),
                    })?;
                    changelogs.push((topic.clone(), task.partition, changelog));
                }
                checkpoints.push((topic.clone(), task.partition, cp));
            }
        }
        if offsets.count() == 0 && marks == 0 {
            return Ok(());
        }
        let tag = producer.seal();
        for (topic, partition, _) in &checkpoints {
            if let Some(task) = self.tasks.get_mut(topic).and_then(|t| t.get_mut(partition)) {
                task.store.seal()?;
                // What moved up to here is in this checkpoint; what moves next is not.
                task.ledger.committed();
            }
        }
        self.in_flight = Some(InFlight {
            tag,
            checkpoints,
            changelogs,
            offsets,
            timestamps: std::mem::take(&mut self.output.epoch_timestamps),
            sealing: started.elapsed(),
        });
        Ok(())
    }

    /// Finishes the epoch in flight, if any: waits for its acknowledgements, writes each
    /// task's sealed writes and checkpoint in one `WriteBatch`, records the delivered
    /// offsets and commits the group offsets.
    fn finish_in_flight<C: ConsumerContext>(&mut self, consumer: &BaseConsumer<C>) -> Result<()> {
        let Some(epoch) = self.in_flight.take() else {
            return Ok(());
        };
        let started = Instant::now();
        let stop = &self.stop;
        let Some(acks) = self
            .output
            .producer()
            .wait_for(epoch.tag, || stop.expired())
        else {
            self.unpublish_all();
            return Err(Error::Topics(
                "stopping: the broker did not acknowledge the last epoch within the shutdown timeout; it is not committed and will be replayed from the last checkpoint after restart (nothing is lost)".into(),
            ));
        };
        if acks.failed > 0 {
            self.unpublish_all();
            return Err(Error::Topics(format!(
                "the broker refused {} record(s) of this epoch for good (first: {}); the epoch is not committed and will be replayed from the last checkpoint after restart",
                acks.failed,
                acks.first_error.unwrap_or_default()
            )));
        }
        let InFlight {
            checkpoints,
            changelogs,
            offsets,
            timestamps,
            sealing,
            ..
        } = epoch;
        for (topic, partition, cp) in checkpoints {
            // Where this epoch's changelog records ended: what the next open checks for other
            // writers after it.
            let changelog_end = changelogs
                .iter()
                .find(|(t, p, _)| *t == topic && *p == partition)
                .and_then(|(_, p, changelog)| acks.offsets.get(&(changelog.clone(), *p)))
                .map(|o| o.to_be_bytes());
            if let Some(task) = self
                .tasks
                .get_mut(&topic)
                .and_then(|t| t.get_mut(&partition))
            {
                match changelog_end {
                    Some(end) => task
                        .store
                        .commit_sealed(&[(CHECKPOINT_KEY, &cp), (CHANGELOG_END_KEY, &end)])?,
                    None => task.store.commit_sealed(&[(CHECKPOINT_KEY, &cp)])?,
                }
            }
        }
        let external: Vec<String> = external_topics()
            .map(|id| self.output.topic(id).to_string())
            .collect();
        for ((topic, partition), offset) in acks.offsets {
            if external.contains(&topic) {
                self.delivered.record(&topic, partition, offset);
            }
        }
        let now = crate::clock::now_ms();
        for ts in timestamps {
            metrics::histogram!(m::END_TO_END_SECONDS).record((now - ts).max(0) as f64 / 1000.0);
        }
        if offsets.count() > 0 {
            if let Err(e) = consumer.commit(&offsets, CommitMode::Async) {
                // Advisory: RocksDB holds the truth on this host; the next epoch commits again.
                warn!(error = %e, "group offset commit failed; will retry with the next epoch");
            }
        }
        let blocked = sealing + started.elapsed();
        metrics::counter!(m::EPOCHS).increment(1);
        metrics::histogram!(m::EPOCH_COMMIT_SECONDS).record(blocked.as_secs_f64());
        metrics::gauge!(m::ROCKSDB_MEMORY_BYTES).set(self.db.memory_usage() as f64);
        debug!(
            blocked_ms = blocked.as_millis() as u64,
            delivered = acks.delivered,
            "epoch committed"
        );
        Ok(())
    }

    /// The epoch failed: watermarks and persisted held records count as not published.
    fn unpublish_all(&mut self) {
        for task in self.tasks.values_mut().flat_map(|t| t.values_mut()) {
            task.watermark.unpublish();
            if let Some(aligner) = task.aligner.as_mut() {
                aligner.unpersist();
            }
        }
    }

    /// Publishes the watermark of every task that feeds an aligning stage, where it changed.
    /// Returns how many mark records were produced.
    fn publish_progress<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<usize> {
        let mut produced = 0;
        if self.topology.processing.max_alignment_delay.is_zero() {
            // Alignment is off: nobody waits for marks.
            return Ok(0);
        }
        for (topic, tasks) in &mut self.tasks {
            for task in tasks.values_mut() {
                if !task.stage.publishes_progress() {
                    continue;
                }
                let watermark = if progress::reads_source(task.stage) {
                    source_watermark(task, topic, consumer)
                } else {
                    progress::relayed(&task.upstreams, task.ledger.marks())
                };
                let Some(event_time) = task.watermark.worth_publishing(watermark) else {
                    continue;
                };
                let mark = Mark {
                    task: &task.name,
                    event_time,
                };
                for out in internal_outputs(task.stage) {
                    let partitions = self.topology.partitions(out);
                    self.output.mark(out, partitions, &mark)?;
                    produced += usize::try_from(partitions).unwrap_or(0);
                }
            }
        }
        Ok(produced)
    }
}

/// The internal topics a stage writes (where its progress marks go).
fn internal_outputs(stage: Stage) -> impl Iterator<Item = TopicId> {
    stage
        .outputs()
        .iter()
        .copied()
        .filter(|t| t.role() == TopicRole::Internal)
}

/// The watermark of a task reading a source partition: `CAUGHT_UP` once it is idle at the
/// partition's end (the end is fetched from the broker only when the last known end is
/// reached), else the largest timestamp it applied.
fn source_watermark<C: ConsumerContext>(
    task: &mut Task,
    topic: &str,
    consumer: &BaseConsumer<C>,
) -> i64 {
    let next = task.ledger.next_offset();
    let now = crate::clock::now_ms();
    if !task.watermark.end_check_due(next, now) {
        return task.watermark.of_source(next, now);
    }
    match consumer.fetch_watermarks(topic, task.partition, END_FETCH_TIMEOUT) {
        Ok((low, high)) => {
            task.watermark.set_bounds(low, high, now);
            task.watermark.of_source(next, now)
        }
        Err(e) => {
            debug!(task = %task.name, error = %e, "could not fetch the partition end; progress mark waits");
            task.watermark.of_source(next, now)
        }
    }
}

/// Applies every held record of an aligning task that may go now (see [`super::align`]).
fn release(
    task: &mut Task,
    topic: &str,
    logic: &HashMap<Stage, Arc<StageLogic>>,
    output: &mut Output,
) -> Result<()> {
    let Some(mut aligner) = task.aligner.take() else {
        return Ok(());
    };
    let stage = task.stage.name();
    let result = (|| {
        let now = crate::clock::now_ms();
        while let Some((held, why)) = aligner.release(task.ledger.marks(), now, &mut task.store) {
            metrics::gauge!(m::ALIGNMENT_HELD, "stage" => stage).decrement(1.0);
            metrics::histogram!(m::ALIGNMENT_HOLD_SECONDS, "stage" => stage)
                .record(now.saturating_sub(held.held_at_ms).max(0) as f64 / 1000.0);
            if why == Release::MaxDelay {
                metrics::counter!(m::ALIGNMENT_TIMEOUTS, "stage" => stage).increment(1);
                debug!(task = %task.name, upstream = %held.upstream, ts = held.ts, "held record applied at max_alignment_delay");
            }
            let step = task.ledger.take_step(true, held.offset);
            let stamp = Stamp {
                task: &held.upstream,
                offset: held.stamp.0,
                index: held.stamp.1,
            };
            let input = Input {
                topic,
                partition: task.partition,
                offset: held.offset,
                key: held.key.as_deref(),
                value: held.value.as_deref(),
                ts: held.ts,
                carried: held.carried(),
            };
            apply(task, logic, output, &input, Some(&stamp), step, None)?;
        }
        Ok(())
    })();
    task.aligner = Some(aligner);
    result
}

/// Applies one input: runs the stage, records it in the ledger, produces its outputs or its
/// dead letter. An input `refused` before (a forged stamp) or by the guard never reaches the
/// stage: it is dead-lettered as this step.
fn apply(
    task: &mut Task,
    logic: &HashMap<Stage, Arc<StageLogic>>,
    output: &mut Output,
    input: &Input<'_>,
    stamp: Option<&Stamp<'_>>,
    step: i64,
    refused: Option<Rejected>,
) -> Result<()> {
    let stage = task.stage;
    let logic = logic
        .get(&stage)
        .ok_or_else(|| Error::Bug(format!("no logic for {stage}")))?;
    let started = Instant::now();
    output.records.clear();
    let store = stage
        .is_stateful()
        .then_some(&mut task.store as &mut dyn StateStore);
    let now = crate::clock::now_ms();
    // A record the guard refuses never reaches the stage, so it never moves stream time.
    let result = match refused.or_else(|| output.guard.check(input, now)) {
        Some(refused) => {
            // Busy, not idle: a source must not call itself caught up while a burst arrives.
            task.watermark.active(now);
            Err(refused)
        }
        None => {
            let result = logic.process(store, input.ts, input.value, &mut output.records)?;
            if let Some(e) = task.store.take_read_error() {
                // The operator read "absent" where RocksDB failed: its outputs may be wrong, so
                // none leave; the epoch is not committed and is replayed after a restart.
                return Err(Error::State(format!(
                    "task {} stopped at {}/{} offset {}: RocksDB read failed while applying it ({e})",
                    task.name, input.topic, input.partition, input.offset
                )));
            }
            task.watermark.advance(input.ts, now);
            result
        }
    };
    metrics::histogram!(m::PROCESSING_SECONDS, "stage" => stage.name())
        .record(started.elapsed().as_secs_f64());
    // Outputs of this step that a previous incarnation already delivered.
    let skip = task.ledger.applied(step, stamp);
    if !skip.is_empty() {
        metrics::counter!(m::TAIL_SUPPRESSED, "stage" => stage.name()).increment(skip.len() as u64);
    }
    let source = stage.input().role() == TopicRole::Source;
    let trace = Trace::of(input, source);
    debug!(target: "shelfsync::trace", task = %task.name, topic = input.topic, partition = input.partition, offset = input.offset, correlation = %trace.id(output.records.first().and_then(|r| r.correlation.as_deref())), traceparent = %trace.traceparent(), outputs = output.records.len(), refused = result.is_err(), "record applied");
    match result {
        Ok(()) => output.produce(&task.stamp_name, stage.name(), step, &trace, &skip, 0)?,
        Err(rejected) => {
            // The DLQ record is this step's output 0 (unless delivered before a crash); what
            // the stage emitted before refusing the record (expiries due at its time) follows
            // as outputs 1, 2, …
            if !skip.contains(&0) {
                output.dead_letter(
                    input,
                    &trace,
                    &task.stamp_name,
                    stage.name(),
                    step,
                    rejected,
                )?;
            }
            output.produce(&task.stamp_name, stage.name(), step, &trace, &skip, 1)?;
        }
    }
    output.applied(input.ts);
    Ok(())
}
