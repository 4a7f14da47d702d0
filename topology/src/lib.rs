//! # shelfsync-topology
//!
//! The topology file says what a shelfsync pipeline does: which Kafka cluster and topics it
//! uses, which stock locations and sales channels exist, and each channel's allocation policy.
//! Runtime knobs (state directory, HTTP port, log format) are not in it: they come from flags and
//! `SHELFSYNC_*` environment variables. This crate holds
//!
//! - the file model ([`Topology`] and its sections), parsed from TOML with unknown fields refused;
//!   every default lives in [`defaults`];
//! - [`Topology::validate`], which reports every problem at once with its field path
//!   (`channels[2].share_pct: must be between 0 and 100, got 140`);
//! - the stage graph and topic naming of DESIGN §2 ([`Stage`], [`TopicId`], [`Topology::topics`]);
//! - the conversion into the operators' settings ([`Topology::inventory_config`],
//!   [`Topology::dedupe_config`], [`Topology::assemble_config`]);
//! - [`Topology::apply_env`] for the `SHELFSYNC_*` overrides of the Kafka settings.
//!
//! ## The file
//!
//! Durations are strings with a unit (`"100ms"`, `"30m"`, `"7d"`), sizes too (`"256MiB"`).
//! Everything but `application_id`, `kafka.bootstrap_servers`, one location and one channel
//! has a default. `retail.example.toml` next to this crate's `Cargo.toml` is a commented
//! starting point.
//!
//! ```
//! use shelfsync_topology::{Stage, Topology, TopicId};
//!
//! let topology = Topology::from_toml_str(r#"
//!     application_id = "shelfsync"
//!
//!     [kafka]
//!     bootstrap_servers = "localhost:9092"
//!
//!     [inventory]
//!     soft_hold_ttl = "45m"
//!
//!     [[locations]]
//!     id = "dc-east"
//!     name = "East Coast DC"
//!
//!     [[channels]]
//!     name = "shopify"
//!     adapter = "shopify"
//!     oversell_policy = "backorder"
//!
//!     [[channels]]
//!     name = "amazon"
//!     adapter = "amazon"
//!     share_pct = 40
//!     buffer = 2
//! "#)?;
//!
//! assert_eq!(topology.inventory_config().soft_hold_ttl_ms, 45 * 60 * 1000);
//! assert_eq!(
//!     topology.inventory_config().channels[1].share_pct,
//!     shelfsync_operators::percent::Percent::whole(40)
//! );
//! assert_eq!(topology.topic_name(Stage::Dedupe.input()), "shelfsync-orders");
//! assert_eq!(topology.topic_name(TopicId::Changelog(shelfsync_topology::Store::Inventory)),
//!            "shelfsync-inventory-changelog");
//! # Ok::<(), shelfsync_topology::TopologyError>(())
//! ```
//!
//! ## Stages
//!
//! Every stage reads exactly one topic, and a task is `(stage, partition)`. The ERP ingest step
//! of the design reads two topics, so it is two stateless stages, [`Stage::ErpInventory`] and
//! [`Stage::ErpProducts`]. The stateful stages (`dedupe`, `inventory`, `assemble`) each own a
//! store whose changelog `<application_id>-<store>-changelog` is compacted and has the partition
//! count of the stage's input.

mod convert;
pub mod defaults;
mod env;
mod error;
mod graph;
mod model;
mod units;
mod validate;

use std::path::Path;

pub use env::{
    kafka_property_for_env, ENV_APPLICATION_ID, ENV_BOOTSTRAP_SERVERS, ENV_KAFKA_PREFIX,
    ENV_SCHEMA_REGISTRY_URL,
};
pub use error::TopologyError;
pub use graph::{
    changelog_topic, internal_topic, Stage, Store, TopicId, TopicRole, TopicSpec, UnknownStage,
    INSTANCES_SUFFIX, INVENTORY_COMMANDS_SUFFIX, LINE_RESULTS_SUFFIX, ORDERS_SUFFIX,
};
pub use model::{
    AssembleSection, ChannelSpec, DedupeSection, Guarantee, InventorySection, KafkaSection,
    LocationSpec, OperationLimitSpec, ProcessingSection, PushKind, PushSpec, TopicsSection,
    Topology,
};
pub use shelfsync_operators::config::OversellPolicy;
/// The adapter a channel's raw orders are parsed with (`adapter = "shopify"`): the schemas
/// crate's own enum, so the file format and the adapters cannot drift apart.
pub use shelfsync_schemas::adapters::AdapterKind;
pub use units::ByteSize;
pub use validate::{
    is_topic_safe, ValidationError, MAX_ALIGNMENT_DELAY, MAX_APPLICATION_ID_LEN,
    MAX_CHANNEL_NAME_LEN, MAX_EPOCH_INTERVAL, MAX_TOPIC_NAME_LEN, MIN_ROCKSDB_MEMORY_BUDGET,
};

/// What [`Topology::from_toml_str`] calls its text in error messages.
const STRING_ORIGIN: &str = "topology";

impl Topology {
    /// Parses and validates a topology from TOML text.
    ///
    /// # Errors
    /// [`TopologyError::Parse`] for bad TOML, an unknown field or a wrong type (toml's message
    /// names the line and the field); [`TopologyError::Invalid`] with every validation problem.
    pub fn from_toml_str(text: &str) -> Result<Self, TopologyError> {
        Self::parse_toml(text, STRING_ORIGIN)?.validated(STRING_ORIGIN)
    }

    /// Reads, parses and validates a topology file.
    ///
    /// # Errors
    /// [`TopologyError::Io`] when the file cannot be read, otherwise as [`Topology::from_toml_str`].
    pub fn load(path: impl AsRef<Path>) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        Self::parse_toml(&read(path)?, &origin)?.validated(&origin)
    }

    /// Reads and parses a topology file, applies the `SHELFSYNC_*` overrides in `vars` (see
    /// [`Topology::apply_env`]), then validates: what `shelfsync run` does with
    /// `std::env::vars()`. The file may then leave out what the environment provides
    /// (`application_id`, `kafka.bootstrap_servers`).
    ///
    /// # Errors
    /// As [`Topology::load`].
    pub fn load_with_env(
        path: impl AsRef<Path>,
        vars: impl Iterator<Item = (String, String)>,
    ) -> Result<Self, TopologyError> {
        let path = path.as_ref();
        let origin = path.display().to_string();
        let mut topology = Self::parse_toml(&read(path)?, &origin)?;
        topology.apply_env(vars);
        topology.validated(&origin)
    }

    /// Parses TOML text without validating it (for tools that show or fix a file).
    ///
    /// # Errors
    /// [`TopologyError::Parse`] for bad TOML, an unknown field or a wrong type.
    pub fn parse_toml_str(text: &str) -> Result<Self, TopologyError> {
        Self::parse_toml(text, STRING_ORIGIN)
    }

    /// The topology as TOML, every default written out (what `shelfsync` would run with).
    ///
    /// # Errors
    /// Only if a value cannot be written as TOML, which the model does not produce.
    pub fn to_toml_string(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(self)
    }

    /// The declared location ids, in file order.
    pub fn location_ids(&self) -> impl Iterator<Item = &str> {
        self.locations.iter().map(|location| location.id.as_str())
    }

    fn parse_toml(text: &str, origin: &str) -> Result<Self, TopologyError> {
        toml::from_str(text).map_err(|error| TopologyError::Parse {
            origin: origin.to_string(),
            error,
        })
    }

    fn validated(self, origin: &str) -> Result<Self, TopologyError> {
        match self.validate() {
            Ok(()) => Ok(self),
            Err(errors) => Err(TopologyError::Invalid {
                origin: origin.to_string(),
                errors,
            }),
        }
    }
}

fn read(path: &Path) -> Result<String, TopologyError> {
    std::fs::read_to_string(path).map_err(|source| TopologyError::Io {
        path: path.to_path_buf(),
        source,
    })
}
