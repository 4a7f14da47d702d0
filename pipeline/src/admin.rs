//! `shelfsync topics create`: creates every topic the topology needs, idempotently, and refuses
//! to go on when an existing topic's partition count breaks the topology.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use shelfsync_topology::{TopicId, TopicRole, Topology};
use tracing::info;

use crate::error::{Error, Result};
use crate::kafka;

/// What `topics create` did to one topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicAction {
    /// Created with this many partitions.
    Created(i32),
    /// Already there with the expected partition count.
    Exists(i32),
}

/// Creates every topic of `topology` that does not exist yet.
///
/// # Errors
/// [`Error::Topics`] listing every existing topic whose partition count differs from the
/// topology (a changelog or internal topic with the wrong count would silently mis-route
/// state); [`Error::Kafka`] when the broker is unreachable or refuses.
pub async fn create_topics(topology: &Topology) -> Result<Vec<(String, TopicAction)>> {
    let config = kafka::base_config(topology);
    let admin: AdminClient<DefaultClientContext> = config.create()?;
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(None, Duration::from_secs(30))?;
    let existing: std::collections::BTreeMap<String, i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.error().is_none())
        .map(|t| (t.name().to_string(), t.partitions().len() as i32))
        .collect();
    let specs = topology.topics();
    let mut problems = Vec::new();
    let mut actions = Vec::new();
    let mut to_create = Vec::new();
    for spec in &specs {
        match existing.get(&spec.name) {
            Some(&n) if n == spec.partitions => {
                actions.push((spec.name.clone(), TopicAction::Exists(n)))
            }
            Some(&n) => {
                // A source topic with more partitions than configured is fine for stateless
                // stages, but every stage's tasks and changelogs are sized by the topology.
                let what = match spec.role() {
                    TopicRole::Changelog => "changelog",
                    TopicRole::Internal => "internal topic",
                    TopicRole::Source => "input topic",
                    TopicRole::Sink => "output topic",
                };
                problems.push(format!(
                    "{what} {:?} has {n} partitions but the topology says {} (set topics.partitions or topics.partition_overrides.{} to {n}, or recreate the topic)",
                    spec.name,
                    spec.partitions,
                    spec.id.key()
                ));
            }
            None => to_create.push(spec),
        }
    }
    if !problems.is_empty() {
        return Err(Error::Topics(problems.join("; ")));
    }
    let new_topics: Vec<NewTopic<'_>> = to_create
        .iter()
        .map(|s| {
            let mut t = NewTopic::new(
                &s.name,
                s.partitions,
                TopicReplication::Fixed(i32::from(s.replication_factor)),
            );
            t = t.set("cleanup.policy", s.cleanup_policy());
            if s.id == TopicId::Instances {
                // The directory is read from its start by every instance: small segments,
                // compacted soon, keep that read short (one record per instance).
                t = t
                    .set("segment.ms", "600000")
                    .set("min.compaction.lag.ms", "0")
                    .set("delete.retention.ms", "3600000");
            } else if s.compacted {
                // Keep the tail of a crashed epoch uncompacted long enough to restore cleanly.
                t = t.set("min.compaction.lag.ms", "3600000");
            }
            t
        })
        .collect();
    if !new_topics.is_empty() {
        let results = admin
            .create_topics(
                &new_topics,
                &AdminOptions::new().operation_timeout(Some(Duration::from_secs(30))),
            )
            .await?;
        for (result, spec) in results.into_iter().zip(&to_create) {
            match result {
                Ok(name) => {
                    info!(topic = %name, partitions = spec.partitions, compacted = spec.compacted, "created topic");
                    actions.push((name, TopicAction::Created(spec.partitions)));
                }
                Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                    actions.push((name, TopicAction::Exists(spec.partitions)))
                }
                Err((name, code)) => {
                    return Err(Error::Topics(format!("creating {name:?} failed: {code}")))
                }
            }
        }
        wait_until_led(&consumer, &to_create, TOPICS_READY_TIMEOUT)?;
    }
    Ok(actions)
}

/// How long `topics create` waits for the topics it created to have a leader everywhere.
const TOPICS_READY_TIMEOUT: Duration = Duration::from_secs(60);

/// Waits until the leader of every partition of `specs` answers a ListOffsets for it (which
/// also means the partition exists and has a leader). Apache Kafka answers CreateTopics once the
/// controller has the topic, and the brokers serve it a little later: a client that fetches
/// watermarks or produces right after can get `NotLeaderForPartition`. Returning only once the
/// topics are served makes "topics created" mean "topics usable".
fn wait_until_led(
    consumer: &BaseConsumer,
    specs: &[&shelfsync_topology::TopicSpec],
    timeout: Duration,
) -> Result<()> {
    let deadline = std::time::Instant::now() + timeout;
    loop {
        let waiting: Vec<String> = specs
            .iter()
            .filter(|spec| {
                // Ask for the topic's metadata first: the client's cache predates the topic,
                // and a ListOffsets for a topic it does not know yet fails without asking.
                let _ = consumer.fetch_metadata(Some(&spec.name), Duration::from_secs(5));
                !(0..spec.partitions).all(|p| {
                    consumer
                        .fetch_watermarks(&spec.name, p, Duration::from_secs(5))
                        .is_ok()
                })
            })
            .map(|spec| spec.name.clone())
            .collect();
        if waiting.is_empty() {
            return Ok(());
        }
        if std::time::Instant::now() >= deadline {
            return Err(Error::Topics(format!(
                "created, but without a leader for every partition after {timeout:?}: {}",
                waiting.join(", ")
            )));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}
