//! Producing (DESIGN §3 step 3): an input's outputs, each stamped `task/step/index` with its
//! `event_id` header; the dead letter of a rejected input (its original bytes and the reason in
//! headers, stamped as output 0 of its step); and progress marks ([`super::progress`]).

use std::collections::{BTreeSet, HashMap};

use shelfsync_topology::{TopicId, Topology};

use super::progress::Mark;
use super::stamp::{Stamp, STAMP_HEADER};
use crate::error::Result;
use crate::kafka::{self, KafkaProducer, ProduceRecord};
use crate::metrics as m;
use crate::stages::{OutRecord, Rejected};

/// How many records are processed between two `poll`s of the producer (delivery callbacks).
const PRODUCER_POLL_EVERY: u32 = 1000;

/// An input record as the stage sees it: read now, or held and released later.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Input<'a> {
    pub(crate) topic: &'a str,
    pub(crate) partition: i32,
    pub(crate) offset: i64,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    /// The record timestamp (event time, ms).
    pub(crate) ts: i64,
}

/// The engine's producing side: the producer, topic names and the epoch's bookkeeping.
pub(crate) struct Output {
    producer: KafkaProducer,
    names: HashMap<TopicId, String>,
    /// The outputs of the input being applied (reused between inputs).
    pub(crate) records: Vec<OutRecord>,
    /// Timestamps of the epoch's applied inputs (end-to-end latency once the epoch commits).
    pub(crate) epoch_timestamps: Vec<i64>,
    /// Inputs applied since the producer was last polled.
    since_poll: u32,
}

impl Output {
    pub(crate) fn new(producer: KafkaProducer, topology: &Topology) -> Self {
        Self {
            producer,
            names: TopicId::ALL
                .iter()
                .map(|id| (*id, topology.topic_name(*id)))
                .collect(),
            records: Vec::new(),
            epoch_timestamps: Vec::new(),
            since_poll: 0,
        }
    }

    /// The producer (changelogs, checkpoints, flushing).
    pub(crate) fn producer(&self) -> &KafkaProducer {
        &self.producer
    }

    /// The name of a logical topic.
    pub(crate) fn topic(&self, id: TopicId) -> &str {
        self.names.get(&id).map_or("", String::as_str)
    }

    /// An input was applied at `ts`: latency bookkeeping and producer upkeep.
    pub(crate) fn applied(&mut self, ts: i64) {
        self.epoch_timestamps.push(ts);
        self.since_poll += 1;
        if self.since_poll >= PRODUCER_POLL_EVERY {
            self.since_poll = 0;
            self.producer.poll();
        }
    }

    /// Produces the outputs of `step` (in `self.records`), each stamped with its index, except
    /// those a previous incarnation already delivered (`skip`).
    pub(crate) fn produce(
        &mut self,
        task: &str,
        stage: &'static str,
        step: i64,
        ts: i64,
        skip: &BTreeSet<i32>,
    ) -> Result<()> {
        for (i, rec) in self.records.iter().enumerate() {
            let index = i32::try_from(i).unwrap_or(i32::MAX);
            if skip.contains(&index) {
                continue;
            }
            let stamp = Stamp {
                task,
                offset: step,
                index,
            };
            let mut headers = vec![(STAMP_HEADER, stamp.to_header())];
            if let Some(id) = &rec.event_id {
                headers.push((kafka::EVENT_ID_HEADER, id.clone().into_bytes()));
            }
            self.producer.send(ProduceRecord {
                topic: self.names.get(&rec.topic).map_or("", String::as_str),
                partition: None,
                key: Some(&rec.key),
                value: Some(&rec.value),
                timestamp: Some(ts),
                headers,
            })?;
            metrics::counter!(m::RECORDS_OUT, "stage" => stage, "topic" => rec.topic.key())
                .increment(1);
        }
        Ok(())
    }

    /// Sends the original record to the DLQ with the reason in headers, stamped as output 0 of
    /// its step (so a replay after a crash does not dead-letter it twice).
    pub(crate) fn dead_letter(
        &self,
        input: &Input<'_>,
        task: &str,
        stage: &'static str,
        step: i64,
        rejected: Rejected,
    ) -> Result<()> {
        tracing::warn!(stage, topic = input.topic, partition = input.partition, offset = input.offset, kind = rejected.kind, reason = %rejected.reason, "record dead-lettered");
        metrics::counter!(m::DLQ, "stage" => stage, "kind" => rejected.kind).increment(1);
        let stamp = Stamp {
            task,
            offset: step,
            index: 0,
        };
        self.producer.send(ProduceRecord {
            topic: self.topic(TopicId::Dlq),
            partition: None,
            key: input.key,
            value: input.value,
            timestamp: Some(input.ts),
            headers: vec![
                (kafka::DLQ_STAGE, stage.as_bytes().to_vec()),
                (kafka::DLQ_TOPIC, input.topic.as_bytes().to_vec()),
                (
                    kafka::DLQ_PARTITION,
                    input.partition.to_string().into_bytes(),
                ),
                (kafka::DLQ_OFFSET, input.offset.to_string().into_bytes()),
                (kafka::DLQ_KIND, rejected.kind.as_bytes().to_vec()),
                (kafka::DLQ_REASON, rejected.reason.into_bytes()),
                (STAMP_HEADER, stamp.to_header()),
            ],
        })
    }

    /// Publishes `mark` into every partition of `topic` (after the task's records of the
    /// epoch, so a reader that sees it has seen them).
    pub(crate) fn mark(&self, topic: TopicId, partitions: i32, mark: &Mark<'_>) -> Result<()> {
        let header = mark.to_header();
        for partition in 0..partitions {
            self.producer.send(ProduceRecord {
                topic: self.topic(topic),
                partition: Some(partition),
                key: None,
                value: None,
                timestamp: None,
                headers: vec![(kafka::PROGRESS_HEADER, header.clone())],
            })?;
        }
        Ok(())
    }
}
