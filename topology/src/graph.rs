//! The stage graph and topic naming (DESIGN §2).
//!
//! Every stage reads exactly one topic and a task is `(stage, partition)`. The ERP ingest step
//! reads two topics, so it is two stateless stages, [`Stage::ErpInventory`] and
//! [`Stage::ErpProducts`], that share code in the pipeline: with one input per stage the topic of
//! an assigned partition names its stage, and the two ERP topics may have different partition
//! counts.
//!
//! The graph itself is static ([`Stage::input`], [`Stage::outputs`], [`Stage::store`]); a
//! [`Topology`] resolves the logical [`TopicId`]s into names and partition counts.

use std::fmt;
use std::str::FromStr;

use crate::model::Topology;

/// Suffix of the internal topic from normalize to dedupe.
pub const ORDERS_SUFFIX: &str = "orders";
/// Suffix of the internal topic from dedupe and the ERP stages to inventory.
pub const INVENTORY_COMMANDS_SUFFIX: &str = "inventory-commands";
/// Suffix of the internal topic from inventory to assemble.
pub const LINE_RESULTS_SUFFIX: &str = "line-results";
/// Suffix of the compacted topic where running instances announce their HTTP address and tasks.
pub const INSTANCES_SUFFIX: &str = "instances";
/// Suffix of the redrive ledger topic: `<application_id>-dlq-redrives`.
const DLQ_REDRIVES_SUFFIX: &str = "dlq-redrives";

/// The name of an internal topic: `<application_id>-<name>` (e.g. `shelfsync-orders`).
pub fn internal_topic(application_id: &str, name: &str) -> String {
    format!("{application_id}-{name}")
}

/// The name of a store's changelog: `<application_id>-<store>-changelog`, as in Kafka Streams.
pub fn changelog_topic(application_id: &str, store: Store) -> String {
    format!("{application_id}-{}-changelog", store.name())
}

/// A RocksDB store of a stateful stage; each has one compacted changelog topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Store {
    /// Order fingerprints and revisions, keyed by order key.
    Dedupe,
    /// Positions, reservations, product master and published quantities, keyed by SKU.
    Inventory,
    /// Per-order line results awaiting assembly, keyed by order key.
    Assemble,
}

impl Store {
    /// Every store, in pipeline order.
    pub const ALL: [Store; 3] = [Store::Dedupe, Store::Inventory, Store::Assemble];

    /// The store name (`dedupe`, `inventory`, `assemble`), used in the changelog topic name and
    /// the RocksDB column family names: the name the owning operator declares (its module's
    /// `STORE`, returned by its `Operator::store`).
    pub fn name(self) -> &'static str {
        use shelfsync_operators::{assemble_orders, dedupe_orders, reserve_inventory};
        match self {
            Self::Dedupe => dedupe_orders::STORE,
            Self::Inventory => reserve_inventory::STORE,
            Self::Assemble => assemble_orders::STORE,
        }
    }

    /// The stage that owns the store.
    pub fn stage(self) -> Stage {
        match self {
            Self::Dedupe => Stage::Dedupe,
            Self::Inventory => Stage::Inventory,
            Self::Assemble => Stage::Assemble,
        }
    }
}

/// A stage of the pipeline. A task is `(stage, partition of the stage's input)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Stage {
    /// Stateless: channel adapters turn raw orders into canonical orders; invalid → DLQ.
    Normalize,
    /// Stateful (`dedupe` store): drops repeated order payloads, turns revisions into line commands.
    Dedupe,
    /// Stateless half of ERP ingest: validates stock changes and routes them by SKU.
    ErpInventory,
    /// Stateless half of ERP ingest: validates product master records and routes them by SKU.
    ErpProducts,
    /// Stateful (`inventory` store): reservations, safety stock, channel allocation.
    Inventory,
    /// Stateful (`assemble` store): collects line results into validated orders and statuses.
    Assemble,
}

impl Stage {
    /// Every stage, in pipeline order.
    pub const ALL: [Stage; 6] = [
        Stage::Normalize,
        Stage::Dedupe,
        Stage::ErpInventory,
        Stage::ErpProducts,
        Stage::Inventory,
        Stage::Assemble,
    ];

    /// The stage name used in logs, metrics labels and task ids: `normalize`, `dedupe`,
    /// `erp-inventory`, `erp-products`, `inventory`, `assemble`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Normalize => "normalize",
            Self::Dedupe => "dedupe",
            Self::ErpInventory => "erp-inventory",
            Self::ErpProducts => "erp-products",
            Self::Inventory => "inventory",
            Self::Assemble => "assemble",
        }
    }

    /// The one topic the stage reads.
    pub fn input(self) -> TopicId {
        match self {
            Self::Normalize => TopicId::RawOrders,
            Self::Dedupe => TopicId::Orders,
            Self::ErpInventory => TopicId::ErpInventory,
            Self::ErpProducts => TopicId::ErpProducts,
            Self::Inventory => TopicId::InventoryCommands,
            Self::Assemble => TopicId::LineResults,
        }
    }

    /// The topics the stage writes its results to, not counting its changelog and the DLQ
    /// (every stage may write to the DLQ).
    pub fn outputs(self) -> &'static [TopicId] {
        match self {
            Self::Normalize => &[TopicId::Orders],
            Self::Dedupe | Self::ErpInventory | Self::ErpProducts => &[TopicId::InventoryCommands],
            Self::Inventory => &[TopicId::Availability, TopicId::LineResults],
            Self::Assemble => &[TopicId::ValidatedOrders, TopicId::OrderStatus],
        }
    }

    /// The stage's store, `None` for a stateless stage.
    pub fn store(self) -> Option<Store> {
        match self {
            Self::Dedupe => Some(Store::Dedupe),
            Self::Inventory => Some(Store::Inventory),
            Self::Assemble => Some(Store::Assemble),
            Self::Normalize | Self::ErpInventory | Self::ErpProducts => None,
        }
    }

    /// Whether the stage keeps state (and so has a store and a changelog).
    pub fn is_stateful(self) -> bool {
        self.store().is_some()
    }

    /// The stages that write this stage's input topic (none for a source topic).
    pub fn upstream_stages(self) -> Vec<Stage> {
        Stage::ALL
            .into_iter()
            .filter(|s| s.outputs().contains(&self.input()))
            .collect()
    }

    /// Whether the stage's input is written by several stages, whose records it then applies in
    /// event-time order across them (the inventory stage: orders through dedupe, ERP changes
    /// directly).
    pub fn aligns(self) -> bool {
        self.upstream_stages().len() > 1
    }

    /// Whether the stage's tasks publish how far their event time has advanced (progress marks)
    /// into their internal output topics: those that feed an aligning stage, directly or
    /// through a stage that publishes progress itself.
    pub fn publishes_progress(self) -> bool {
        self.outputs().iter().any(|topic| {
            Stage::ALL
                .into_iter()
                .filter(|reader| reader.input() == *topic)
                .any(|reader| reader.aligns() || reader.publishes_progress())
        })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error of parsing an unknown stage name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown stage {0:?}: expected one of normalize, dedupe, erp-inventory, erp-products, inventory, assemble")]
pub struct UnknownStage(pub String);

impl FromStr for Stage {
    type Err = UnknownStage;

    /// Parses a [`Stage::name`].
    ///
    /// # Errors
    /// [`UnknownStage`] for any other text.
    fn from_str(s: &str) -> Result<Self, UnknownStage> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.name() == s)
            .ok_or_else(|| UnknownStage(s.to_string()))
    }
}

/// Who owns a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TopicRole {
    /// Written by others (channels, the ERP), read by shelfsync.
    Source,
    /// Written by one stage, read by another; named `<application_id>-<name>`.
    Internal,
    /// A store's compacted changelog; named `<application_id>-<store>-changelog`.
    Changelog,
    /// Written by shelfsync, read by others (marketplaces, the ERP, operators of the DLQ).
    Sink,
}

/// A logical topic of the pipeline, resolved to a name by [`Topology::topic_name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum TopicId {
    /// `topics.raw_orders`.
    RawOrders,
    /// `topics.erp_inventory`.
    ErpInventory,
    /// `topics.erp_products`.
    ErpProducts,
    /// `<application_id>-orders`.
    Orders,
    /// `<application_id>-inventory-commands`.
    InventoryCommands,
    /// `<application_id>-line-results`.
    LineResults,
    /// `topics.availability`.
    Availability,
    /// `topics.validated_orders`.
    ValidatedOrders,
    /// `topics.order_status`.
    OrderStatus,
    /// `topics.dlq`.
    Dlq,
    /// `<application_id>-<store>-changelog`.
    Changelog(Store),
    /// `<application_id>-instances`: compacted, one partition; each running instance announces
    /// its HTTP address and tasks there (the availability query's directory).
    Instances,
    /// `<application_id>-dlq-redrives`: compacted, one partition; `shelfsync dlq redrive`
    /// records there, in the transaction that re-sends it, each dead letter it redrove (so a
    /// dead letter is never redriven twice).
    DlqRedrives,
}

impl TopicId {
    /// Every topic, in the order [`Topology::topics`] lists them: sources, internal topics,
    /// changelogs, sinks.
    pub const ALL: [TopicId; 15] = [
        TopicId::RawOrders,
        TopicId::ErpInventory,
        TopicId::ErpProducts,
        TopicId::Orders,
        TopicId::InventoryCommands,
        TopicId::LineResults,
        TopicId::Changelog(Store::Dedupe),
        TopicId::Changelog(Store::Inventory),
        TopicId::Changelog(Store::Assemble),
        TopicId::Instances,
        TopicId::Availability,
        TopicId::ValidatedOrders,
        TopicId::OrderStatus,
        TopicId::Dlq,
        TopicId::DlqRedrives,
    ];

    /// The topics whose partition count `topics.partition_overrides` may set (all but changelogs
    /// and the instance directory).
    pub const OVERRIDABLE: [TopicId; 10] = [
        TopicId::RawOrders,
        TopicId::ErpInventory,
        TopicId::ErpProducts,
        TopicId::Orders,
        TopicId::InventoryCommands,
        TopicId::LineResults,
        TopicId::Availability,
        TopicId::ValidatedOrders,
        TopicId::OrderStatus,
        TopicId::Dlq,
    ];

    /// The key naming the topic in `topics.partition_overrides` (`raw_orders`, `orders`, …;
    /// changelogs: `dedupe_changelog`, … which cannot be overridden).
    pub fn key(self) -> &'static str {
        match self {
            Self::RawOrders => "raw_orders",
            Self::ErpInventory => "erp_inventory",
            Self::ErpProducts => "erp_products",
            Self::Orders => "orders",
            Self::InventoryCommands => "inventory_commands",
            Self::LineResults => "line_results",
            Self::Availability => "availability",
            Self::ValidatedOrders => "validated_orders",
            Self::OrderStatus => "order_status",
            Self::Dlq => "dlq",
            Self::Changelog(Store::Dedupe) => "dedupe_changelog",
            Self::Changelog(Store::Inventory) => "inventory_changelog",
            Self::Changelog(Store::Assemble) => "assemble_changelog",
            Self::Instances => "instances",
            Self::DlqRedrives => "dlq_redrives",
        }
    }

    /// Who owns the topic.
    pub fn role(self) -> TopicRole {
        match self {
            Self::RawOrders | Self::ErpInventory | Self::ErpProducts => TopicRole::Source,
            Self::Orders
            | Self::InventoryCommands
            | Self::LineResults
            | Self::Instances
            | Self::DlqRedrives => TopicRole::Internal,
            Self::Changelog(_) => TopicRole::Changelog,
            Self::Availability | Self::ValidatedOrders | Self::OrderStatus | Self::Dlq => {
                TopicRole::Sink
            }
        }
    }

    /// Whether the topic is compacted (changelogs, the instance directory) rather than deleted
    /// by retention.
    pub fn is_compacted(self) -> bool {
        matches!(
            self,
            Self::Changelog(_) | Self::Instances | Self::DlqRedrives
        )
    }
}

/// A topic to create: what `shelfsync topics create` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSpec {
    /// The logical topic.
    pub id: TopicId,
    /// The topic name.
    pub name: String,
    /// Partition count.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i16,
    /// `cleanup.policy=compact` when true, `delete` when false.
    pub compacted: bool,
}

impl TopicSpec {
    /// Who owns the topic (sources may already exist, created by their producers).
    pub fn role(&self) -> TopicRole {
        self.id.role()
    }

    /// The `cleanup.policy` topic config: `compact` or `delete`.
    pub fn cleanup_policy(&self) -> &'static str {
        if self.compacted {
            "compact"
        } else {
            "delete"
        }
    }
}

impl Topology {
    /// The name of a logical topic under this topology.
    pub fn topic_name(&self, id: TopicId) -> String {
        let topics = &self.topics;
        match id {
            TopicId::RawOrders => topics.raw_orders.clone(),
            TopicId::ErpInventory => topics.erp_inventory.clone(),
            TopicId::ErpProducts => topics.erp_products.clone(),
            TopicId::Orders => internal_topic(&self.application_id, ORDERS_SUFFIX),
            TopicId::InventoryCommands => {
                internal_topic(&self.application_id, INVENTORY_COMMANDS_SUFFIX)
            }
            TopicId::LineResults => internal_topic(&self.application_id, LINE_RESULTS_SUFFIX),
            TopicId::Availability => topics.availability.clone(),
            TopicId::ValidatedOrders => topics.validated_orders.clone(),
            TopicId::OrderStatus => topics.order_status.clone(),
            TopicId::Dlq => topics.dlq.clone(),
            TopicId::Changelog(store) => changelog_topic(&self.application_id, store),
            TopicId::Instances => internal_topic(&self.application_id, INSTANCES_SUFFIX),
            TopicId::DlqRedrives => internal_topic(&self.application_id, DLQ_REDRIVES_SUFFIX),
        }
    }

    /// The partition count of a logical topic: its override, else `topics.partitions`; a
    /// changelog has the partition count of its stage's input; the instance directory has one
    /// (every instance reads all of it). Clamped to `1..=i32::MAX` (a validated topology is
    /// always in range).
    pub fn partitions(&self, id: TopicId) -> i32 {
        let count = match id {
            TopicId::Changelog(store) => return self.partitions(store.stage().input()),
            TopicId::Instances | TopicId::DlqRedrives => return 1,
            other => self
                .topics
                .partition_overrides
                .get(other.key())
                .copied()
                .unwrap_or(self.topics.partitions),
        };
        i32::try_from(count.max(1)).unwrap_or(i32::MAX)
    }

    /// The replication factor of every topic, clamped to `1..=i16::MAX`.
    pub fn replication_factor(&self) -> i16 {
        i16::try_from(self.topics.replication_factor.max(1)).unwrap_or(i16::MAX)
    }

    /// Every topic of the pipeline with its partitions, replication and compaction: sources,
    /// internal topics, changelogs, sinks (the order of [`TopicId::ALL`]).
    pub fn topics(&self) -> Vec<TopicSpec> {
        TopicId::ALL
            .into_iter()
            .map(|id| TopicSpec {
                id,
                name: self.topic_name(id),
                partitions: self.partitions(id),
                replication_factor: self.replication_factor(),
                compacted: id.is_compacted(),
            })
            .collect()
    }

    /// The stage that reads `topic`, if any (maps an assigned partition to its task's stage).
    pub fn stage_for_topic(&self, topic: &str) -> Option<Stage> {
        Stage::ALL
            .into_iter()
            .find(|stage| self.topic_name(stage.input()) == topic)
    }

    /// The input topic names of every stage (what the consumer group subscribes to).
    pub fn input_topics(&self) -> Vec<String> {
        Stage::ALL
            .into_iter()
            .map(|stage| self.topic_name(stage.input()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_inventory_stage_aligns_and_its_upstreams_publish_progress() {
        let aligning: Vec<Stage> = Stage::ALL.into_iter().filter(|s| s.aligns()).collect();
        assert_eq!(aligning, [Stage::Inventory]);
        assert_eq!(
            Stage::Inventory.upstream_stages(),
            [Stage::Dedupe, Stage::ErpInventory, Stage::ErpProducts]
        );
        let publishing: Vec<Stage> = Stage::ALL
            .into_iter()
            .filter(|s| s.publishes_progress())
            .collect();
        assert_eq!(
            publishing,
            [
                Stage::Normalize,
                Stage::Dedupe,
                Stage::ErpInventory,
                Stage::ErpProducts
            ]
        );
        assert!(Stage::Normalize.upstream_stages().is_empty());
    }

    #[test]
    fn every_stage_reads_one_topic_and_no_two_stages_share_one() {
        let mut inputs: Vec<TopicId> = Stage::ALL.iter().map(|s| s.input()).collect();
        inputs.sort();
        inputs.dedup();
        assert_eq!(inputs.len(), Stage::ALL.len());
    }

    #[test]
    fn stores_belong_to_their_stateful_stage() {
        for store in Store::ALL {
            assert_eq!(store.stage().store(), Some(store));
            assert!(store.stage().is_stateful());
        }
        assert_eq!(
            Stage::ALL.iter().filter(|s| s.is_stateful()).count(),
            Store::ALL.len()
        );
    }

    #[test]
    fn stage_names_round_trip() {
        for stage in Stage::ALL {
            assert_eq!(stage.name().parse::<Stage>(), Ok(stage));
        }
        assert!("erp-ingest".parse::<Stage>().is_err());
    }

    #[test]
    fn internal_names_follow_the_prefix_convention() {
        assert_eq!(
            internal_topic("shelfsync", ORDERS_SUFFIX),
            "shelfsync-orders"
        );
        assert_eq!(
            changelog_topic("shelfsync", Store::Inventory),
            "shelfsync-inventory-changelog"
        );
    }

    #[test]
    fn stage_for_topic_maps_inputs_back() {
        let topology = Topology {
            application_id: "app".into(),
            ..Topology::default()
        };
        for stage in Stage::ALL {
            assert_eq!(
                topology.stage_for_topic(&topology.topic_name(stage.input())),
                Some(stage)
            );
        }
        assert_eq!(topology.stage_for_topic("retail.dlq"), None);
    }
}
