//! The broker side of `shelfsync reset`: the group check, the plan's offsets and topics, the
//! deletion and creation of the internal and changelog topics, and the group commit.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::types::RDKafkaErrorCode;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_pipeline::kafka;
use shelfsync_topology::{TopicId, Topology};

use super::plan::{self, GroupCheck, InputMove, Member, Plan, Recreate, Target};
use super::state_dir::StateDir;

/// The broker side of the reset: one client of the application's group that never joins it.
pub(super) struct Broker<'a> {
    topology: &'a Topology,
    group: BaseConsumer,
    timeout: Duration,
}

impl<'a> Broker<'a> {
    /// A client of `topology`'s broker in the application's group, waiting at most `timeout`
    /// for each answer.
    pub(super) fn new(topology: &'a Topology, timeout: Duration) -> anyhow::Result<Self> {
        let mut config = kafka::base_config(topology);
        config.set("group.id", &topology.application_id);
        config.set("enable.auto.commit", "false");
        Ok(Self {
            topology,
            group: config.create()?,
            timeout,
        })
    }

    /// Topic name → partition count, of every topic on the broker.
    fn topics(&self) -> anyhow::Result<BTreeMap<String, i32>> {
        let md = self
            .group
            .fetch_metadata(None, self.timeout)
            .context("fetch the broker's topics")?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| (t.name().to_string(), t.partitions().len() as i32))
            .collect())
    }

    /// The first offset and the end of `topic[partition]`.
    fn watermarks(&self, topic: &str, partition: i32) -> anyhow::Result<(i64, i64)> {
        self.group
            .fetch_watermarks(topic, partition, self.timeout)
            .with_context(|| format!("fetch the watermarks of {topic}[{partition}]"))
    }

    /// The group as the broker describes it (classic protocol: `shelfsync run` uses it, and
    /// librdkafka refuses its cooperative-sticky assignor under `group.protocol=consumer`).
    pub(super) fn group_check(&self) -> anyhow::Result<GroupCheck> {
        let app = &self.topology.application_id;
        let list = self
            .group
            .fetch_group_list(Some(app), self.timeout)
            .with_context(|| format!("describe the consumer group {app}"))?;
        let described = list.groups().iter().find(|g| g.name() == app).map(|g| {
            let members = g
                .members()
                .iter()
                .map(|m| Member {
                    id: m.id().to_string(),
                    client_id: m.client_id().to_string(),
                    host: m.client_host().to_string(),
                })
                .collect();
            (g.state().to_string(), members)
        });
        Ok(GroupCheck::of(described))
    }

    /// The group's committed offsets of `partitions` partitions of `topic` (only those with one).
    fn committed(
        &self,
        topic: &str,
        partitions: i32,
    ) -> anyhow::Result<BTreeMap<i32, (i64, String)>> {
        let mut tpl = TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition(topic, p);
        }
        let committed = self
            .group
            .committed_offsets(tpl, self.timeout)
            .with_context(|| format!("read the group's committed offsets of {topic}"))?;
        Ok(committed
            .elements()
            .iter()
            .filter_map(|e| match e.offset() {
                Offset::Offset(o) => Some((e.partition(), (o, e.metadata().to_string()))),
                _ => None,
            })
            .collect())
    }

    /// Where each partition of a source topic goes.
    fn moves(
        &self,
        topic: &str,
        partitions: i32,
        target: Target,
    ) -> anyhow::Result<Vec<InputMove>> {
        let committed = self.committed(topic, partitions)?;
        let at_time: BTreeMap<i32, i64> = match target {
            Target::Earliest => BTreeMap::new(),
            Target::Time(ms) => {
                let mut tpl = TopicPartitionList::new();
                for p in 0..partitions {
                    tpl.add_partition_offset(topic, p, Offset::Offset(ms))?;
                }
                let found = self
                    .group
                    .offsets_for_times(tpl, self.timeout)
                    .with_context(|| format!("look up the offsets of {topic} at the time"))?;
                found
                    .elements()
                    .iter()
                    .filter_map(|e| match e.offset() {
                        Offset::Offset(o) => Some((e.partition(), o)),
                        _ => None,
                    })
                    .collect()
            }
        };
        (0..partitions)
            .map(|p| {
                let (low, high) = self.watermarks(topic, p)?;
                Ok(InputMove {
                    topic: topic.to_string(),
                    partition: p,
                    committed: committed.get(&p).map(|(o, _)| *o),
                    low,
                    high,
                    new: plan::new_offset(target, low, high, at_time.get(&p).copied()),
                })
            })
            .collect()
    }

    /// Gathers the plan.
    pub(super) fn plan(&self, target: Target, state_dir: Option<StateDir>) -> anyhow::Result<Plan> {
        let t = self.topology;
        let existing = self.topics()?;
        let mut inputs = Vec::new();
        for id in [
            TopicId::RawOrders,
            TopicId::ErpInventory,
            TopicId::ErpProducts,
        ] {
            let name = t.topic_name(id);
            let Some(&partitions) = existing.get(&name) else {
                bail!(
                    "the input topic {name} does not exist on the broker: nothing to replay from"
                );
            };
            inputs.extend(self.moves(&name, partitions, target)?);
        }
        let mut recreate = Vec::new();
        for id in super::recreated_topics() {
            let name = t.topic_name(id);
            let mut r = Recreate {
                id,
                name: name.clone(),
                partitions: existing.get(&name).copied(),
                records: 0,
                committed: Vec::new(),
            };
            if let Some(n) = r.partitions {
                for p in 0..n {
                    let (low, high) = self.watermarks(&name, p)?;
                    r.records += high - low;
                }
                if r.is_stage_input() {
                    r.committed = self
                        .committed(&name, n)?
                        .into_iter()
                        .map(|(p, (o, _))| (p, o))
                        .collect();
                }
            }
            recreate.push(r);
        }
        let untouched = [
            TopicId::Availability,
            TopicId::ValidatedOrders,
            TopicId::OrderStatus,
            TopicId::Dlq,
            TopicId::DlqRedrives,
        ]
        .into_iter()
        .map(|id| t.topic_name(id))
        .collect();
        Ok(Plan {
            application_id: t.application_id.clone(),
            bootstrap: t.kafka.bootstrap_servers.clone(),
            target,
            group: self.group_check()?,
            inputs,
            recreate,
            untouched,
            state_dir,
        })
    }

    /// Deletes `names` (those that exist) and waits until the broker no longer lists them.
    pub(super) fn delete(
        &self,
        rt: &tokio::runtime::Runtime,
        names: &[String],
    ) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> =
            kafka::base_config(self.topology).create()?;
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let options = AdminOptions::new().operation_timeout(Some(self.timeout));
        for result in rt.block_on(admin.delete_topics(&refs, &options))? {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
                Err((name, code)) => bail!("deleting {name} failed: {code}"),
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            let existing = self.topics()?;
            let left: Vec<&String> = names.iter().filter(|n| existing.contains_key(*n)).collect();
            if left.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "still on the broker {:?} after deleting them: {left:?}",
                    self.timeout
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Creates every missing topic as `shelfsync topics create` does, until each of `names` is
    /// there and empty (a deletion the broker has not finished refuses the creation for a while).
    pub(super) fn create_again(
        &self,
        rt: &tokio::runtime::Runtime,
        names: &[String],
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let outcome = rt
                .block_on(shelfsync_pipeline::admin::create_topics(self.topology))
                .map_err(anyhow::Error::from)
                .and_then(|_| {
                    let existing = self.topics()?;
                    for name in names {
                        let Some(&n) = existing.get(name) else {
                            bail!("{name} is not listed yet");
                        };
                        for p in 0..n {
                            let (_, high) = self.watermarks(name, p)?;
                            if high != 0 {
                                bail!("{name}[{p}] ends at {high}: not the new, empty topic yet");
                            }
                        }
                    }
                    Ok(())
                });
            match outcome {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline => {
                    tracing::info!(error = %format!("{e:#}"), "creating the topics again; retrying");
                    std::thread::sleep(Duration::from_millis(500));
                }
                Err(e) => return Err(e.context("create the deleted topics again")),
            }
        }
    }

    /// The last offset of every partition of the external output topics, for the commit
    /// metadata (the replay's tail scans start past them).
    pub(super) fn output_ends(&self) -> anyhow::Result<BTreeMap<String, BTreeMap<i32, i64>>> {
        let existing = self.topics()?;
        let mut ends = BTreeMap::new();
        for id in [
            TopicId::Availability,
            TopicId::ValidatedOrders,
            TopicId::OrderStatus,
            TopicId::Dlq,
        ] {
            let name = self.topology.topic_name(id);
            let Some(&n) = existing.get(&name) else {
                continue;
            };
            let mut partitions = BTreeMap::new();
            for p in 0..n {
                partitions.insert(p, self.watermarks(&name, p)?.1 - 1);
            }
            ends.insert(name, partitions);
        }
        Ok(ends)
    }

    /// Commits `offsets` with `metadata` for the group and reads them back; commits again while
    /// the broker does not hold them (its clean-up of a deleted topic's offsets may come after).
    pub(super) fn commit(
        &self,
        offsets: &[(String, i32, i64)],
        metadata: &str,
    ) -> anyhow::Result<()> {
        let mut tpl = TopicPartitionList::new();
        for (topic, p, o) in offsets {
            tpl.add_partition_offset(topic, *p, Offset::Offset(*o))?;
            if let Some(mut e) = tpl.find_partition(topic, *p) {
                e.set_metadata(metadata);
            }
        }
        let deadline = Instant::now() + self.timeout;
        loop {
            self.group
                .commit(&tpl, CommitMode::Sync)
                .context("commit the group's offsets (a member that joined meanwhile refuses it: stop it and run the reset again)")?;
            // Let a clean-up of the deleted topics' offsets that was under way land first.
            std::thread::sleep(Duration::from_secs(1));
            let mut wrong = Vec::new();
            let mut by_topic: BTreeMap<&str, i32> = BTreeMap::new();
            for (topic, p, _) in offsets {
                let e = by_topic.entry(topic).or_insert(0);
                *e = (*e).max(p + 1);
            }
            for (topic, n) in by_topic {
                let held = self.committed(topic, n)?;
                for (t, p, o) in offsets.iter().filter(|(t, _, _)| t == topic) {
                    if held.get(p) != Some(&(*o, metadata.to_string())) {
                        wrong.push(format!("{t}[{p}]: {:?}", held.get(p).map(|(o, _)| o)));
                    }
                }
            }
            if wrong.is_empty() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("the broker does not hold the committed offsets: {wrong:?}");
            }
        }
    }
}
