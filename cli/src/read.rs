//! Reading a whole topic to its end, as the bench's checks and `shelfsync dlq` do: every
//! partition from its beginning, committed records only, until each partition says it is at
//! its end (which, read committed, is the last stable offset: an open transaction's records
//! are not waited for).

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::bail;
use rdkafka::consumer::{BaseConsumer, Consumer, ConsumerContext};
use rdkafka::error::KafkaError;
use rdkafka::message::BorrowedMessage;
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use shelfsync_pipeline::kafka;
use shelfsync_topology::Topology;

/// The reader's context: the end of a partition is what it waits for, not an error.
struct EndIsNoError;

impl ClientContext for EndIsNoError {
    fn error(&self, error: KafkaError, reason: &str) {
        let eof = match &error {
            KafkaError::PartitionEOF(_) => true,
            KafkaError::Global(code) => *code == RDKafkaErrorCode::PartitionEOF,
            _ => false,
        };
        if !eof {
            tracing::error!(%error, reason, "topic reader");
        }
    }
}

impl ConsumerContext for EndIsNoError {}

/// Reads `partitions` partitions of `topic` (on `topology`'s broker) to their end, handing
/// every record to `each`. `group` names the reader's consumer group (it commits nothing).
///
/// # Errors
/// When the consumer cannot be created or assigned, or the end is not reached in `timeout`.
pub fn read_to_end(
    topology: &Topology,
    topic: &str,
    partitions: i32,
    group: &str,
    timeout: Duration,
    mut each: impl FnMut(&BorrowedMessage<'_>),
) -> anyhow::Result<()> {
    let mut config = kafka::base_config(topology);
    config.set("group.id", group);
    config.set("enable.auto.commit", "false");
    config.set("enable.partition.eof", "true");
    config.set("isolation.level", "read_committed");
    let consumer: BaseConsumer<EndIsNoError> = config.create_with_context(EndIsNoError)?;
    let mut tpl = TopicPartitionList::new();
    for p in 0..partitions {
        tpl.add_partition_offset(topic, p, Offset::Beginning)?;
    }
    consumer.assign(&tpl)?;
    let mut eof = BTreeSet::new();
    let began = Instant::now();
    while eof.len() < usize::try_from(partitions)? {
        if began.elapsed() > timeout {
            bail!("could not read {topic} to its end within {timeout:?}");
        }
        match consumer.poll(Duration::from_millis(500)) {
            Some(Ok(msg)) => each(&msg),
            Some(Err(KafkaError::PartitionEOF(p))) => {
                eof.insert(p);
            }
            Some(Err(e)) => kafka::log_client_error(&e, "topic reader poll"),
            None => {}
        }
    }
    Ok(())
}

/// Whether `topic` exists on `topology`'s broker.
///
/// # Errors
/// When the broker does not answer within `timeout`.
pub fn topic_exists(topology: &Topology, topic: &str, timeout: Duration) -> anyhow::Result<bool> {
    let consumer: BaseConsumer = kafka::base_config(topology).create()?;
    let metadata = consumer.fetch_metadata(Some(topic), timeout)?;
    Ok(metadata
        .topics()
        .iter()
        .any(|t| t.name() == topic && t.error().is_none() && !t.partitions().is_empty()))
}
