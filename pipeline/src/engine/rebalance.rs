//! Rebalance callbacks (DESIGN §2–3): they arrive inside `poll` through [`GroupContext`].
//!
//! - A revocation first commits the epoch (so the next owner resumes exactly where this member
//!   stopped), then closes the revoked tasks.
//! - An assignment pauses the assigned partitions and queues their tasks for the opener thread
//!   ([`super::opener`]), which resumes or restores them and scans their output tails off the
//!   callback; the poll loop installs and resumes each when it is ready. While a task opens,
//!   the instance directory already names this instance as its owner (`opening`), so queries
//!   are pointed here.
//! - A revocation of a partition whose task is still opening cancels the open.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{BaseConsumer, ConsumerContext, Rebalance};
use rdkafka::error::KafkaError;
use rdkafka::statistics::Statistics;
use rdkafka::TopicPartitionList;
use tracing::{error, info, warn};

use super::task::Task;
use super::Engine;
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
            if let Err(e) = engine.commit_all(consumer) {
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
                if let Err(e) = engine.begin_open(tpl, consumer) {
                    error!(error = %e, "could not queue the assigned tasks for opening");
                    engine.fatal.get_or_insert(e);
                }
            }
            Rebalance::Error(e) => warn!(error = %e, "rebalance error"),
            Rebalance::Revoke(_) => {}
        }
    }
}

impl Engine {
    fn close_tasks(&mut self, tpl: &TopicPartitionList) {
        for elem in tpl.elements() {
            self.cancel_open(elem.topic(), elem.partition());
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
        self.cancel_all_opens();
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
