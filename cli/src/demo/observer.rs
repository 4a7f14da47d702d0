//! What the pipeline did, read from the broker: the group's committed offsets and the
//! watermarks of every stage's input (throughput, lag), and the output topics (tallied).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_schemas::avro;
use shelfsync_schemas::{ChannelAvailability, DeadLetter, OrderStatus};
use shelfsync_topology::{Stage, TopicId, TopicRole, Topology};

use super::tally::Tally;

/// Offsets of the pipeline's inputs at one moment.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Sample {
    pub(super) at: Option<Instant>,
    /// Records on the external input topics since the demo started.
    pub(super) produced: i64,
    /// Of those, committed by the pipeline's group.
    pub(super) processed: i64,
    /// Σ (high watermark − committed) over every stage's input partitions.
    pub(super) lag: i64,
}

/// Reads the group's offsets and the output topics.
pub(super) struct Observer {
    /// Has the pipeline's group id; never subscribes (reads committed offsets and watermarks).
    group: BaseConsumer,
    /// Assigned to every output partition.
    view: BaseConsumer,
    /// Every stage's input partitions, and whether the topic is external.
    inputs: Vec<(String, i32, bool)>,
    /// High watermarks of the external inputs when the demo started.
    input_start: HashMap<(String, i32), i64>,
    /// Next offset to read per output partition.
    next: HashMap<(String, i32), i64>,
    topics: HashMap<String, TopicId>,
    /// High watermarks of every topic the pipeline writes, when the demo started, and the
    /// topic's role.
    written_start: HashMap<(String, i32), (TopicRole, i64)>,
    pub(super) channels: Vec<String>,
    pub(super) tally: Tally,
}

const OUTPUTS: [TopicId; 4] = [
    TopicId::Availability,
    TopicId::OrderStatus,
    TopicId::ValidatedOrders,
    TopicId::Dlq,
];
const TIMEOUT: Duration = Duration::from_secs(10);

impl Observer {
    pub(super) fn new(topology: &Topology) -> anyhow::Result<Self> {
        let mut group_config = shelfsync_pipeline::kafka::base_config(topology);
        group_config
            .set("group.id", &topology.application_id)
            .set("enable.auto.commit", "false");
        let group: BaseConsumer = group_config.create()?;
        let mut view_config = shelfsync_pipeline::kafka::base_config(topology);
        view_config
            .set("group.id", format!("{}-demo-view", topology.application_id))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", "500");
        let view: BaseConsumer = view_config.create()?;

        let external = [
            TopicId::RawOrders,
            TopicId::ErpInventory,
            TopicId::ErpProducts,
        ];
        let mut inputs = Vec::new();
        let mut input_start = HashMap::new();
        for stage in Stage::ALL {
            let id = stage.input();
            let name = topology.topic_name(id);
            for p in 0..topology.partitions(id) {
                let is_external = external.contains(&id);
                if is_external {
                    let (_, high) = group.fetch_watermarks(&name, p, TIMEOUT)?;
                    input_start.insert((name.clone(), p), high);
                }
                inputs.push((name.clone(), p, is_external));
            }
        }
        let mut tpl = TopicPartitionList::new();
        let mut next = HashMap::new();
        let mut topics = HashMap::new();
        for id in OUTPUTS {
            let name = topology.topic_name(id);
            for p in 0..topology.partitions(id) {
                let (_, high) = view.fetch_watermarks(&name, p, TIMEOUT)?;
                tpl.add_partition_offset(&name, p, Offset::Offset(high))?;
                next.insert((name.clone(), p), high);
            }
            topics.insert(name, id);
        }
        view.assign(&tpl)?;
        let channels = topology.channels.iter().map(|c| c.name.clone()).collect();
        let mut observer = Self {
            group,
            view,
            inputs,
            input_start,
            next,
            topics,
            written_start: HashMap::new(),
            channels,
            tally: Tally::default(),
        };
        let written: Vec<(String, i32, TopicRole)> = topology
            .topics()
            .into_iter()
            .filter(|spec| spec.role() != TopicRole::Source)
            .flat_map(|spec| (0..spec.partitions).map(move |p| (spec.name.clone(), p, spec.role())))
            .collect();
        let highs = observer.high_watermarks(written.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
        observer.written_start = written
            .into_iter()
            .map(|(t, p, role)| {
                let high = highs.get(&(t.clone(), p)).copied().unwrap_or(0);
                ((t, p), (role, high))
            })
            .collect();
        Ok(observer)
    }

    /// Records the pipeline wrote since the start: (internal topics, changelogs, outputs).
    pub(super) fn written(&self) -> anyhow::Result<(i64, i64, i64)> {
        let highs =
            self.high_watermarks(self.written_start.keys().map(|(t, p)| (t.as_str(), *p)))?;
        let mut out = (0, 0, 0);
        for (key, (role, start)) in &self.written_start {
            let n = (highs.get(key).copied().unwrap_or(0) - start).max(0);
            match role {
                TopicRole::Internal => out.0 += n,
                TopicRole::Changelog => out.1 += n,
                _ => out.2 += n,
            }
        }
        Ok(out)
    }

    /// When the input topics already hold records (an earlier run on this broker), commits the
    /// new group's offsets at their end, so that the pipeline starts after them.
    pub(super) fn start_at_end(&self) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for ((topic, p), high) in &self.input_start {
            if *high > 0 {
                tpl.add_partition_offset(topic, *p, Offset::Offset(*high))?;
            }
        }
        if tpl.count() > 0 {
            self.group
                .commit(&tpl, CommitMode::Sync)
                .context("starting the new consumer group at the end of the input topics")?;
        }
        Ok(())
    }

    pub(super) fn sample(&self) -> anyhow::Result<Sample> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, _) in &self.inputs {
            tpl.add_partition(topic, *p);
        }
        let committed = self.group.committed_offsets(tpl, TIMEOUT)?;
        let mut sample = Sample {
            at: Some(Instant::now()),
            ..Sample::default()
        };
        let highs = self.high_watermarks(self.inputs.iter().map(|(t, p, _)| (t.as_str(), *p)))?;
        for (topic, p, external) in &self.inputs {
            let high = highs.get(&(topic.clone(), *p)).copied().unwrap_or(0);
            let start = self.input_start.get(&(topic.clone(), *p)).copied();
            // No commit yet: nothing processed since the start (internal topics start empty).
            let done = match committed.find_partition(topic, *p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => o,
                _ => start.unwrap_or(0),
            };
            sample.lag += (high - done).max(0);
            if *external {
                let start = start.unwrap_or(0);
                sample.produced += (high - start).max(0);
                sample.processed += (done - start).max(0);
            }
        }
        Ok(sample)
    }

    /// Reads the output topics for `dur`.
    pub(super) fn poll_for(&mut self, dur: Duration) {
        let deadline = Instant::now() + dur;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Some(result) = self.view.poll(left) else {
                break;
            };
            let Ok(msg) = result else {
                continue;
            };
            let topic = msg.topic().to_string();
            self.next
                .insert((topic.clone(), msg.partition()), msg.offset() + 1);
            let payload = msg.payload().unwrap_or_default();
            let t = &mut self.tally;
            match self.topics.get(&topic) {
                Some(TopicId::Availability) => match avro::decode::<ChannelAvailability>(payload) {
                    Ok(a) => t.availability(a, &self.channels),
                    Err(_) => t.undecodable += 1,
                },
                Some(TopicId::OrderStatus) => match avro::decode::<OrderStatus>(payload) {
                    Ok(s) => {
                        t.status_events += 1;
                        let e = t
                            .latest
                            .entry(s.order_key)
                            .or_insert((s.revision, s.status));
                        if s.revision >= e.0 {
                            *e = (s.revision, s.status);
                        }
                    }
                    Err(_) => t.undecodable += 1,
                },
                Some(TopicId::ValidatedOrders) => t.validated += 1,
                Some(TopicId::Dlq) => {
                    let kind = avro::decode::<DeadLetter>(payload)
                        .map_or_else(|_| "undecodable".to_string(), |d| d.error_kind);
                    *t.dlq.entry(kind).or_default() += 1;
                }
                _ => {}
            }
        }
    }

    /// Whether every output partition has been read to its current end.
    pub(super) fn caught_up(&self) -> anyhow::Result<bool> {
        let highs = self.high_watermarks(self.next.keys().map(|(t, p)| (t.as_str(), *p)))?;
        Ok(self
            .next
            .iter()
            .all(|(k, next)| highs.get(k).is_none_or(|high| next >= high)))
    }

    /// High watermarks of `partitions` in one ListOffsets round trip (the broker answers
    /// "latest" for timestamp -1), instead of one request per partition: the demo's broker is
    /// busy enough.
    fn high_watermarks<'t>(
        &self,
        partitions: impl Iterator<Item = (&'t str, i32)>,
    ) -> anyhow::Result<HashMap<(String, i32), i64>> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p) in partitions {
            tpl.add_partition_offset(topic, p, Offset::End)?;
        }
        let answer = self.group.offsets_for_times(tpl, TIMEOUT)?;
        let mut out = HashMap::new();
        for e in answer.elements() {
            let high = match e.offset() {
                Offset::Offset(o) if e.error().is_ok() => o,
                // Not answered: ask for this partition alone.
                _ => {
                    self.group
                        .fetch_watermarks(e.topic(), e.partition(), TIMEOUT)?
                        .1
                }
            };
            out.insert((e.topic().to_string(), e.partition()), high);
        }
        Ok(out)
    }
}
