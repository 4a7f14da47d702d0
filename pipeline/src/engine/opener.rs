//! Opening tasks off the rebalance callback (issue 15 #7).
//!
//! An assignment only records what to open and pauses those partitions; the opener thread
//! then resumes each task ([`super::restore`]) and scans the output tails of the tasks it
//! opened together ([`super::tail::scan`]), without the engine's lock; a task that must
//! restore its store does so on a thread of its own. The poll loop
//! keeps running the tasks it already had meanwhile and, between polls, installs what the
//! opener finished ([`Engine::install_opened`]) once every task of the assignment is ready: it
//! seeks each partition to its task's next offset and resumes it. A partition revoked while its task opens cancels the open (a restore cut short
//! is resumed by the next open on this host); an open that finishes for a partition no longer
//! assigned — or assigned again since, which queued a new open — is dropped.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_topology::Stage;
use tracing::{error, info, warn};

use super::restore::{OpenCtx, Opening};
use super::task::{task_name, Task};
use super::{tail, Engine};
use crate::error::{Error, Result};
use crate::metrics as m;

/// How long installing a task may wait for its partition's seek.
const SEEK_TIMEOUT: Duration = Duration::from_secs(5);

/// One task to open.
struct Job {
    stage: Stage,
    topic: String,
    partition: i32,
    generation: u64,
    cancel: Arc<AtomicBool>,
}

/// What the opener thread hands back.
enum Done {
    Opened {
        topic: String,
        generation: u64,
        task: Box<Task>,
    },
    Failed(Error),
}

/// A partition assigned whose task is opening.
struct Pending {
    generation: u64,
    cancel: Arc<AtomicBool>,
    stage: Stage,
}

/// The engine's side of the opener thread.
pub(super) struct Opener {
    jobs: Option<Sender<Job>>,
    done: Receiver<Done>,
    pending: HashMap<(String, i32), Pending>,
    /// Tasks opened while others assigned with them still open: installed together, once
    /// every pending task is ready.
    ready: Vec<(String, u64, Task)>,
    next_generation: u64,
    thread: Option<JoinHandle<()>>,
}

impl Opener {
    /// Starts the opener thread.
    ///
    /// # Errors
    /// [`Error::State`] when the thread cannot start.
    pub(super) fn start(ctx: OpenCtx) -> Result<Self> {
        let ctx = Arc::new(ctx);
        let (jobs, job_rx) = mpsc::channel::<Job>();
        let (done_tx, done) = mpsc::channel::<Done>();
        let thread = std::thread::Builder::new()
            .name("task-opener".into())
            .spawn(move || open_loop(&ctx, &job_rx, &done_tx))
            .map_err(|e| Error::State(format!("cannot start the task opener thread: {e}")))?;
        Ok(Self {
            jobs: Some(jobs),
            done,
            pending: HashMap::new(),
            ready: Vec::new(),
            next_generation: 0,
            thread: Some(thread),
        })
    }

    /// Whether any assigned task is still opening.
    pub(super) fn is_busy(&self) -> bool {
        !self.pending.is_empty()
    }

    /// Stops the thread: every open still running is cancelled; waits at most `wait`.
    pub(super) fn stop(&mut self, wait: Duration) {
        for pending in self.pending.values() {
            pending.cancel.store(true, Ordering::SeqCst);
        }
        self.jobs = None;
        if let Some(thread) = self.thread.take() {
            let started = Instant::now();
            while !thread.is_finished() && started.elapsed() < wait {
                std::thread::sleep(Duration::from_millis(20));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                warn!("a task open did not stop in time; leaving it behind");
            }
        }
    }
}

/// The opener thread: takes every job queued, opens those that need no restore one after the
/// other, scans their tails in one pass and hands them back. A task whose store must be
/// restored gets a thread of its own (restoring it, then scanning its tails), so a long
/// restore holds up neither the quick opens nor the other restores. Opens of one task never
/// overlap: a new open of a task waits for its earlier restore thread (cancelled by the
/// revocation that preceded the new assignment) to end.
fn open_loop(ctx: &Arc<OpenCtx>, jobs: &Receiver<Job>, done: &Sender<Done>) {
    let mut restoring: HashMap<(String, i32), JoinHandle<()>> = HashMap::new();
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        batch.extend(jobs.try_iter());
        restoring.retain(|_, t| !t.is_finished());
        let mut opened: Vec<(String, Task)> = Vec::new();
        let mut generations = Vec::new();
        for job in batch {
            if let Some(earlier) = restoring.remove(&(job.topic.clone(), job.partition)) {
                let _ = earlier.join();
            }
            if job.cancel.load(Ordering::SeqCst) {
                continue;
            }
            match ctx.open_task(job.stage, &job.topic, job.partition, false, &job.cancel) {
                Ok(Opening::Ready(task)) => {
                    generations.push(job.generation);
                    opened.push((job.topic, *task));
                }
                Ok(Opening::Cancelled) => {}
                Ok(Opening::NeedsRestore) => {
                    let key = (job.topic.clone(), job.partition);
                    let (thread_ctx, thread_done) = (Arc::clone(ctx), done.clone());
                    let spawned = std::thread::Builder::new()
                        .name(format!("restore-{}", task_name(job.stage, job.partition)))
                        .spawn(move || restore_one(&thread_ctx, job, &thread_done));
                    match spawned {
                        Ok(thread) => {
                            restoring.insert(key, thread);
                        }
                        Err(e) => {
                            let _ = done.send(Done::Failed(Error::State(format!(
                                "cannot start a restore thread: {e}"
                            ))));
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = done.send(Done::Failed(e));
                    return;
                }
            }
        }
        if !send_opened(ctx, opened, generations, done) {
            return;
        }
    }
    for (_, thread) in restoring {
        let _ = thread.join();
    }
}

/// A restore thread: opens (restoring) one task and scans its tails.
fn restore_one(ctx: &OpenCtx, job: Job, done: &Sender<Done>) {
    match ctx.open_task(job.stage, &job.topic, job.partition, true, &job.cancel) {
        Ok(Opening::Ready(task)) => {
            send_opened(ctx, vec![(job.topic, *task)], vec![job.generation], done);
        }
        Ok(Opening::Cancelled | Opening::NeedsRestore) => {}
        Err(e) => {
            let _ = done.send(Done::Failed(e));
        }
    }
}

/// Scans the tails of `opened` in one pass and hands them back; false when the engine is gone.
fn send_opened(
    ctx: &OpenCtx,
    mut opened: Vec<(String, Task)>,
    generations: Vec<u64>,
    done: &Sender<Done>,
) -> bool {
    if let Err(e) = tail::scan(&ctx.topology, &ctx.stamp_key, &mut opened) {
        // Without the scan a replayed epoch may repeat outputs (same event ids): log it.
        warn!(error = %e, "could not scan output tails; replayed outputs may repeat");
    }
    for ((topic, task), generation) in opened.into_iter().zip(generations) {
        let done_task = Done::Opened {
            topic,
            generation,
            task: Box::new(task),
        };
        if done.send(done_task).is_err() {
            return false;
        }
    }
    true
}

impl Engine {
    /// An assignment: pauses the partitions and queues their tasks for the opener thread.
    /// Claimed from here on (the instance directory names this instance as the owner while
    /// they open).
    pub(super) fn begin_open<C: ConsumerContext>(
        &mut self,
        tpl: &TopicPartitionList,
        consumer: &BaseConsumer<C>,
    ) -> Result<()> {
        let mut paused = TopicPartitionList::new();
        for elem in tpl.elements() {
            let (topic, partition) = (elem.topic().to_string(), elem.partition());
            let Some(stage) = self.stage_by_topic.get(&topic).copied() else {
                warn!(topic, "assigned a topic no stage reads; ignored");
                continue;
            };
            paused.add_partition(&topic, partition);
            self.cancel_open(&topic, partition);
            self.status.set_opening(&task_name(stage, partition), true);
            let opener = &mut self.opener;
            opener.next_generation += 1;
            let cancel = Arc::new(AtomicBool::new(false));
            let generation = opener.next_generation;
            opener.pending.insert(
                (topic.clone(), partition),
                Pending {
                    generation,
                    cancel: Arc::clone(&cancel),
                    stage,
                },
            );
            let job = Job {
                stage,
                topic,
                partition,
                generation,
                cancel,
            };
            if opener.jobs.as_ref().is_none_or(|j| j.send(job).is_err()) {
                return Err(Error::State("the task opener thread is gone".into()));
            }
        }
        if paused.count() > 0 {
            consumer.pause(&paused)?;
        } else {
            // Nothing to open (more members than partitions): assigned all the same.
            self.status.assigned.store(true, Ordering::SeqCst);
        }
        Ok(())
    }

    /// A revocation (or a stop) of a partition whose task is still opening: the open is
    /// cancelled.
    pub(super) fn cancel_open(&mut self, topic: &str, partition: i32) {
        self.opener
            .ready
            .retain(|(t, _, task)| !(t == topic && task.partition == partition));
        if let Some(p) = self.opener.pending.remove(&(topic.to_string(), partition)) {
            p.cancel.store(true, Ordering::SeqCst);
            self.status
                .set_opening(&task_name(p.stage, partition), false);
        }
    }

    /// Cancels every open still running.
    pub(super) fn cancel_all_opens(&mut self) {
        let keys: Vec<(String, i32)> = self.opener.pending.keys().cloned().collect();
        for (topic, partition) in keys {
            self.cancel_open(&topic, partition);
        }
    }

    /// Installs every task the opener finished: the partition is sought to the task's next
    /// offset and resumed.
    ///
    /// # Errors
    /// What made an open fail (the broker unreachable past the retry budget, RocksDB).
    pub(super) fn install_opened<C: ConsumerContext>(
        &mut self,
        consumer: &BaseConsumer<C>,
    ) -> Result<()> {
        while let Ok(done) = self.opener.done.try_recv() {
            let (topic, generation, task) = match done {
                Done::Failed(e) => {
                    error!(error = %e, "could not open an assigned task");
                    return Err(e);
                }
                Done::Opened {
                    topic,
                    generation,
                    task,
                } => (topic, generation, *task),
            };
            let key = (topic.clone(), task.partition);
            if self
                .opener
                .pending
                .get(&key)
                .is_none_or(|p| p.generation != generation)
            {
                info!(task = %task.name, "opened a task no longer assigned (or assigned again since); dropped");
                continue;
            }
            self.opener.ready.push((topic, generation, task));
        }
        // The tasks of an assignment start together: one that restores for long holds back
        // the others assigned with it (not those already running), so that no task's progress
        // marks run ahead of an upstream assigned in the same rebalance (an aligning task
        // would otherwise apply records out of event-time order once its wait ran out).
        let all_ready = self.opener.ready.len() == self.opener.pending.len();
        if !all_ready || self.opener.ready.is_empty() {
            return Ok(());
        }
        let mut installed = false;
        for (topic, _, task) in std::mem::take(&mut self.opener.ready) {
            self.opener.pending.remove(&(topic.clone(), task.partition));
            let next = task.ledger.next_offset();
            if next >= 0 {
                if let Err(e) =
                    consumer.seek(&topic, task.partition, Offset::Offset(next), SEEK_TIMEOUT)
                {
                    warn!(task = %task.name, next, error = %e, "could not seek the partition to the task's next offset; records below it are skipped as replays");
                }
            }
            let mut tpl = TopicPartitionList::new();
            tpl.add_partition(&topic, task.partition);
            consumer.resume(&tpl)?;
            if let Some(aligner) = &task.aligner {
                metrics::gauge!(m::ALIGNMENT_HELD, "stage" => task.stage.name())
                    .increment(aligner.len() as f64);
            }
            metrics::gauge!(m::TASKS, "stage" => task.stage.name()).increment(1.0);
            self.status.ready_tasks.fetch_add(1, Ordering::SeqCst);
            self.status.set_owned(&task.name, true);
            self.status.set_opening(&task.name, false);
            info!(task = %task.name, topic, next_offset = next, suppressed = task.ledger.suppressed(), "task opened");
            self.tasks
                .entry(topic)
                .or_default()
                .insert(task.partition, task);
            installed = true;
        }
        if installed && !self.opener.is_busy() {
            self.status.assigned.store(true, Ordering::SeqCst);
        }
        Ok(())
    }
}
