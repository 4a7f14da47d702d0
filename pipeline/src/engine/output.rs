//! Producing (DESIGN §3 step 3): an input's outputs, each stamped `task/step/index` with its
//! `event_id` header; the dead letter of a rejected input (its original bytes and the reason in
//! headers, stamped as output 0 of its step); and progress marks ([`super::progress`]).

use std::collections::{BTreeSet, HashMap};

use shelfsync_topology::{TopicId, Topology};

use super::guard::Guard;
use super::progress::Mark;
use super::stamp::{Stamp, StampKey, MAC_HEADER, STAMP_HEADER};
use crate::error::Result;
use crate::kafka::{self, KafkaProducer, ProduceRecord};
use crate::metrics as m;
use crate::stages::{OutRecord, Rejected};

/// How many records are processed between two `poll`s of the producer (delivery callbacks).
const PRODUCER_POLL_EVERY: u32 = 1000;

/// The most of a rejected record's value a dead letter copies (bytes). Inputs up to the stage
/// limit ([`super::guard::MAX_INPUT_BYTES`]) are copied whole, so they can be redriven; anything
/// bigger is cut here, with its size and digest in headers, so that the dead letter always fits
/// the producer's `message.max.bytes` (a dead letter the broker refuses would stop the partition).
pub(crate) const DLQ_MAX_VALUE_BYTES: usize = super::guard::MAX_INPUT_BYTES;
/// The most of a rejected record's key a dead letter copies (bytes).
pub(crate) const DLQ_MAX_KEY_BYTES: usize = 16 * 1024;
/// The most of a rejection reason a dead letter carries (bytes).
const DLQ_MAX_REASON_BYTES: usize = 4 * 1024;

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
    /// The values of its [`kafka::CARRIED_HEADERS`]: the first three ([`kafka::TRACE_HEADERS`])
    /// go on to its outputs, all to its dead letter.
    pub(crate) carried: [Option<&'a [u8]>; 5],
}

/// What an input passes on to every record it causes and to its dead letter: its timestamp,
/// its correlation id ([`kafka::CORRELATION_HEADER`]) and W3C trace context (`traceparent`,
/// `tracestate`).
#[derive(Debug)]
pub(crate) struct Trace<'a> {
    /// The input's timestamp (event time, ms): its outputs' timestamp.
    ts: i64,
    /// The input's own correlation id header, if it had one.
    carried: Option<&'a [u8]>,
    /// Where a source record without one sits (its id is `<topic>/<partition>/<offset>`,
    /// written out only for the outputs that use it).
    position: Option<(&'a str, i32, i64)>,
    traceparent: Option<&'a [u8]>,
    tracestate: Option<&'a [u8]>,
}

impl<'a> Trace<'a> {
    /// The trace of `input`, read from a source topic (`source`: it gets its position as its
    /// correlation id when it carries none) or from an internal one.
    pub(crate) fn of(input: &Input<'a>, source: bool) -> Self {
        let [carried, traceparent, tracestate, ..] = input.carried;
        Self {
            ts: input.ts,
            carried,
            position: (source && carried.is_none()).then_some((
                input.topic,
                input.partition,
                input.offset,
            )),
            traceparent,
            tracestate,
        }
    }

    /// The correlation id of an output: the input's, else the one its stage chose (a raw order's
    /// delivery id), else the source record's position.
    fn correlation(&self, chosen: Option<&str>) -> Option<Vec<u8>> {
        if let Some(id) = self.carried.or(chosen.map(str::as_bytes)) {
            return Some(id.to_vec());
        }
        self.position
            .map(|(topic, partition, offset)| format!("{topic}/{partition}/{offset}").into_bytes())
    }

    /// Adds the trace headers to `headers`.
    fn extend(&self, headers: &mut Vec<(&'static str, Vec<u8>)>, chosen: Option<&str>) {
        if let Some(id) = self.correlation(chosen) {
            headers.push((kafka::CORRELATION_HEADER, id));
        }
        for (name, value) in [
            (kafka::TRACEPARENT_HEADER, self.traceparent),
            (kafka::TRACESTATE_HEADER, self.tracestate),
        ] {
            if let Some(v) = value {
                headers.push((name, v.to_vec()));
            }
        }
    }

    /// The correlation id as text, for logs (empty when there is none).
    pub(crate) fn id(&self, chosen: Option<&str>) -> String {
        self.correlation(chosen)
            .map(|v| String::from_utf8_lossy(&v).into_owned())
            .unwrap_or_default()
    }

    /// The `traceparent` as text, for logs (empty when there is none).
    pub(crate) fn traceparent(&self) -> String {
        self.traceparent
            .map(|v| String::from_utf8_lossy(v).into_owned())
            .unwrap_or_default()
    }
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
    /// The bounds every input must pass before its stage sees it.
    pub(crate) guard: Guard,
    /// Signs every stamp and progress mark this process writes.
    pub(crate) stamp_key: StampKey,
}

impl Output {
    pub(crate) fn new(producer: KafkaProducer, topology: &Topology, stamp_key: StampKey) -> Self {
        Self {
            producer,
            names: TopicId::ALL
                .iter()
                .map(|id| (*id, topology.topic_name(*id)))
                .collect(),
            records: Vec::new(),
            epoch_timestamps: Vec::new(),
            since_poll: 0,
            guard: Guard::new(topology.processing.max_future_skew),
            stamp_key,
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
    /// those a previous incarnation already delivered (`skip`); the first is output
    /// `first_index` of its step (1 after a dead letter, which is output 0).
    pub(crate) fn produce(
        &mut self,
        task: &str,
        stage: &'static str,
        step: i64,
        trace: &Trace<'_>,
        skip: &BTreeSet<i32>,
        first_index: i32,
    ) -> Result<()> {
        for (i, rec) in self.records.iter().enumerate() {
            let index = i32::try_from(i)
                .unwrap_or(i32::MAX)
                .saturating_add(first_index);
            if skip.contains(&index) {
                continue;
            }
            let stamp = Stamp {
                task,
                offset: step,
                index,
            };
            let topic = self.names.get(&rec.topic).map_or("", String::as_str);
            let claim = stamp.to_header();
            let mac = self
                .stamp_key
                .sign(topic, &claim, Some(&rec.key), Some(&rec.value));
            let mut headers = vec![(STAMP_HEADER, claim), (MAC_HEADER, mac)];
            if let Some(id) = &rec.event_id {
                headers.push((kafka::EVENT_ID_HEADER, id.clone().into_bytes()));
            }
            trace.extend(&mut headers, rec.correlation.as_deref());
            self.producer.send(ProduceRecord {
                topic,
                partition: None,
                key: Some(&rec.key),
                value: Some(&rec.value),
                timestamp: Some(trace.ts),
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
        trace: &Trace<'_>,
        task: &str,
        stage: &'static str,
        step: i64,
        rejected: Rejected,
    ) -> Result<()> {
        tracing::warn!(stage, topic = input.topic, partition = input.partition, offset = input.offset, kind = rejected.kind, reason = %rejected.reason, correlation = %trace.id(None), traceparent = %trace.traceparent(), "record dead-lettered");
        metrics::counter!(m::DLQ, "stage" => stage, "kind" => rejected.kind).increment(1);
        let stamp = Stamp {
            task,
            offset: step,
            index: 0,
        };
        let copy = DeadLetterCopy::of(input.key, input.value);
        let topic = self.topic(TopicId::Dlq);
        let claim = stamp.to_header();
        let mac = self.stamp_key.sign(topic, &claim, copy.key, copy.value);
        let mut headers = vec![
            (kafka::DLQ_STAGE, stage.as_bytes().to_vec()),
            (kafka::DLQ_TOPIC, input.topic.as_bytes().to_vec()),
            (
                kafka::DLQ_PARTITION,
                input.partition.to_string().into_bytes(),
            ),
            (kafka::DLQ_OFFSET, input.offset.to_string().into_bytes()),
            (kafka::DLQ_KIND, rejected.kind.as_bytes().to_vec()),
            (
                kafka::DLQ_REASON,
                cut_str(&rejected.reason, DLQ_MAX_REASON_BYTES)
                    .as_bytes()
                    .to_vec(),
            ),
            (STAMP_HEADER, claim),
            (MAC_HEADER, mac),
        ];
        headers.extend(copy.headers);
        trace.extend(&mut headers, None);
        // The redrive headers (after the trace headers in `carried`).
        for (name, value) in kafka::CARRIED_HEADERS
            .iter()
            .zip(input.carried)
            .skip(kafka::TRACE_HEADERS.len())
        {
            if let Some(v) = value {
                headers.push((name, v.to_vec()));
            }
        }
        self.producer.send(ProduceRecord {
            topic,
            partition: None,
            key: copy.key,
            value: copy.value,
            timestamp: Some(input.ts),
            headers,
        })
    }

    /// Publishes `mark` into every partition of `topic` (after the task's records of the
    /// epoch, so a reader that sees it has seen them).
    pub(crate) fn mark(&self, topic: TopicId, partitions: i32, mark: &Mark<'_>) -> Result<()> {
        let header = mark.to_header();
        let topic = self.topic(topic);
        let mac = self.stamp_key.sign(topic, &header, None, None);
        for partition in 0..partitions {
            self.producer.send(ProduceRecord {
                topic,
                partition: Some(partition),
                key: None,
                value: None,
                timestamp: None,
                headers: vec![
                    (kafka::PROGRESS_HEADER, header.clone()),
                    (MAC_HEADER, mac.clone()),
                ],
            })?;
        }
        Ok(())
    }
}

/// What a dead letter carries of the rejected record: its key and value, cut to
/// [`DLQ_MAX_KEY_BYTES`] / [`DLQ_MAX_VALUE_BYTES`], and when cut, headers with the original
/// sizes and SHA-256 digests (`shelfsync-dlq-truncated`, `shelfsync-dlq-original-bytes`,
/// `shelfsync-dlq-value-sha256`, `shelfsync-dlq-key-sha256`) so the original can be found and
/// checked at its source.
pub(crate) struct DeadLetterCopy<'a> {
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
    pub(crate) headers: Vec<(&'static str, Vec<u8>)>,
}

impl<'a> DeadLetterCopy<'a> {
    pub(crate) fn of(key: Option<&'a [u8]>, value: Option<&'a [u8]>) -> Self {
        let cut = |b: Option<&'a [u8]>, max: usize| b.map(|b| &b[..b.len().min(max)]);
        let (k, v) = (key.map_or(0, <[u8]>::len), value.map_or(0, <[u8]>::len));
        let mut headers = Vec::new();
        if k > DLQ_MAX_KEY_BYTES || v > DLQ_MAX_VALUE_BYTES {
            headers.push((kafka::DLQ_TRUNCATED, b"true".to_vec()));
            headers.push((
                kafka::DLQ_ORIGINAL_BYTES,
                format!("key={k},value={v}").into_bytes(),
            ));
            if let Some(value) = value.filter(|_| v > DLQ_MAX_VALUE_BYTES) {
                headers.push((kafka::DLQ_VALUE_SHA256, sha256_hex(value).into_bytes()));
            }
            if let Some(key) = key.filter(|_| k > DLQ_MAX_KEY_BYTES) {
                headers.push((kafka::DLQ_KEY_SHA256, sha256_hex(key).into_bytes()));
            }
        }
        Self {
            key: cut(key, DLQ_MAX_KEY_BYTES),
            value: cut(value, DLQ_MAX_VALUE_BYTES),
            headers,
        }
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    use std::fmt::Write;
    Sha256::digest(bytes)
        .iter()
        .fold(String::with_capacity(64), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// `s` cut to at most `max` bytes at a character boundary.
fn cut_str(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dead_letter_of_any_size_fits_and_says_what_was_cut() {
        let small = DeadLetterCopy::of(Some(b"k"), Some(b"v"));
        assert_eq!((small.key, small.value), (Some(&b"k"[..]), Some(&b"v"[..])));
        assert!(small.headers.is_empty());

        let value = vec![7u8; 1_200_000];
        let key = vec![b'k'; 20_000];
        let big = DeadLetterCopy::of(Some(&key), Some(&value));
        assert_eq!(big.value.unwrap().len(), DLQ_MAX_VALUE_BYTES);
        assert_eq!(big.key.unwrap().len(), DLQ_MAX_KEY_BYTES);
        let header = |name| {
            big.headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| String::from_utf8(v.clone()).unwrap())
        };
        assert_eq!(header(kafka::DLQ_TRUNCATED).as_deref(), Some("true"));
        assert_eq!(
            header(kafka::DLQ_ORIGINAL_BYTES).as_deref(),
            Some("key=20000,value=1200000")
        );
        assert_eq!(header(kafka::DLQ_VALUE_SHA256).unwrap().len(), 64);
        assert_eq!(header(kafka::DLQ_KEY_SHA256).unwrap().len(), 64);
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(cut_str("aé", 2), "a");
    }
}
