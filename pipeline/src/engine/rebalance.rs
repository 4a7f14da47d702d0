//! Rebalance callbacks (DESIGN §2–3): they arrive inside `poll` through [`GroupContext`].
//!
//! - A revocation first commits the epoch (so the next owner resumes exactly where this member
//!   stopped), then closes the revoked tasks.
//! - An assignment opens the assigned tasks (resuming or restoring, see [`super::restore`]),
//!   scans the output tails of the opened tasks once ([`super::tail::scan`]), and only then lets
//!   their records be processed. While a task opens, the instance directory already names this
//!   instance as its owner (`opening`), so queries are pointed here.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use tracing::{error, info, warn};

use super::task::{task_name, Task};
use super::{tail, Engine};
use crate::error::Result;
use crate::kafka;
use crate::metrics as m;

/// The consumer context: rebalance callbacks and statistics.
pub struct GroupContext {
    pub(super) engine: Arc<Mutex<Engine>>,
}

/// Locks the engine; a poisoned lock (a panic elsewhere) still yields the engine, whose
/// uncommitted epoch is then replayed from the last checkpoint on restart.
pub(super) fn lock(engine: &Mutex<Engine>) -> MutexGuard<'_, Engine> {
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

impl Engine {
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
        if let Err(e) = tail::scan(&self.topology, &self.output.stamp_key, &mut opened) {
            // Without the scan a replayed epoch may repeat outputs (same event ids): log it.
            warn!(error = %e, "could not scan output tails; replayed outputs may repeat");
        }
        for (topic, task) in opened {
            metrics::gauge!(m::TASKS, "stage" => task.stage.name()).increment(1.0);
            self.status.ready_tasks.fetch_add(1, Ordering::SeqCst);
            self.status.set_owned(&task.name, true);
            self.status.set_opening(&task.name, false);
            info!(task = %task.name, topic, next_offset = task.ledger.next_offset(), suppressed = task.ledger.suppressed(), "task opened");
            self.tasks
                .entry(topic)
                .or_default()
                .insert(task.partition, task);
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
                self.forget(elem.topic(), &task);
            }
        }
    }

    /// Closes every task (the process is leaving the group).
    pub(super) fn close_all(&mut self) {
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
        if let Some(aligner) = &task.aligner {
            metrics::gauge!(m::ALIGNMENT_HELD, "stage" => task.stage.name())
                .decrement(aligner.len() as f64);
        }
        // The lag of a partition we no longer own is another member's to report.
        metrics::gauge!(m::CONSUMER_LAG, "topic" => topic.to_string(), "partition" => task.partition.to_string()).set(0.0);
        self.status.ready_tasks.fetch_sub(1, Ordering::SeqCst);
        self.status.set_owned(&task.name, false);
        info!(task = %task.name, "task closed");
    }
}

/// Tasks by input topic and partition.
pub(super) type Tasks = std::collections::HashMap<String, BTreeMap<i32, Task>>;
