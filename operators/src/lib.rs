//! # shelfsync-operators
//!
//! The retail logic of shelfsync as pure, synchronous, deterministic operators:
//!
//! | operator | keyed by | reads | writes |
//! |---|---|---|---|
//! | [`dedupe_orders::DedupeOrders`] | order key | canonical [`Order`](shelfsync_schemas::Order) | [`InventoryCommand`](shelfsync_schemas::InventoryCommand)s per line |
//! | [`erp_ingest`] (stateless) | — | ERP inventory and product changes | validated `InventoryCommand`s |
//! | [`reserve_inventory::ReserveInventory`] (+ [`allocate_channels`]) | SKU | `InventoryCommand` | [`LineResult`](shelfsync_schemas::LineResult)s, [`ChannelAvailability`](shelfsync_schemas::ChannelAvailability) |
//! | [`assemble_orders::AssembleOrders`] | order key | `LineResult` | [`ValidatedOrder`](shelfsync_schemas::ValidatedOrder), [`OrderStatus`](shelfsync_schemas::OrderStatus) |
//!
//! Every operator implements [`Operator`]: it gets the store of its task, the record's timestamp
//! and the record, and pushes its outputs into a vector. It never does I/O, never reads the wall
//! clock and never iterates a hash map: the same state and input give the same outputs, byte for
//! byte. Time is *stream time*, the largest record timestamp the task has seen, kept in the
//! store itself so that it survives restarts and moves with the state.
//!
//! State goes through the [`StateStore`] trait: [`MemStore`] in tests, `RocksStore` (in
//! `shelfsync-pipeline`) in production; both pass [`store::conformance`].

pub mod allocate_channels;
pub mod assemble_orders;
pub mod config;
pub mod dedupe_orders;
pub mod describe;
pub mod erp_ingest;
mod migrate;
pub mod percent;
pub mod reserve_inventory;
pub mod state;
pub mod store;

pub use config::*;
pub use store::{MemStore, StateStore};

/// Errors of the operators crate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperatorError {
    /// The input record breaks a domain rule (the user's data; retrying cannot help: DLQ it).
    #[error("invalid input: {field}: {reason}")]
    InvalidInput {
        /// Path of the offending field, e.g. `inventory.quantity`.
        field: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// An ERP record for a location the topology does not declare (DESIGN §4: DLQ it as
    /// `unknown_location`).
    #[error("unknown location {location:?}: not declared in the topology's [[locations]]")]
    UnknownLocation {
        /// The location id as the record has it.
        location: String,
    },
    /// A stored value cannot be decoded (a bug or disk corruption; retrying cannot help).
    #[error("corrupt state under key {key:?}: {reason}")]
    CorruptState {
        /// The key (lossy UTF-8).
        key: String,
        /// The decoder's message.
        reason: String,
    },
}

impl OperatorError {
    /// A short label for the DLQ `error_kind` header and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::InvalidInput { .. } => "invalid",
            Self::UnknownLocation { .. } => "unknown_location",
            Self::CorruptState { .. } => "corrupt_state",
        }
    }

    pub(crate) fn invalid(field: &str, reason: impl Into<String>) -> Self {
        Self::InvalidInput {
            field: field.to_string(),
            reason: reason.into(),
        }
    }
}

/// A store an operator declares: its name (the changelog is `<app>-<name>-changelog`, the
/// RocksDB column families `<name>-<partition>`) and the longest TTL of its entries, if any.
/// The topology takes a store's name from here (`shelfsync_topology::Store::name`), so an
/// operator's module declares it once, as its `STORE` constant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoreSpec {
    /// Store name.
    pub name: &'static str,
    /// Longest TTL of any entry in ms (`None`: entries live until deleted).
    pub max_ttl_ms: Option<i64>,
}

/// A pure, deterministic, stateful operator.
pub trait Operator {
    /// The input record.
    type Input;
    /// What one step emits.
    type Output;

    /// The store this operator keeps its state in; `None` (the default) for a stateless
    /// operator, which gets an empty scratch store and must not rely on anything it writes.
    fn store(&self) -> Option<StoreSpec> {
        None
    }

    /// Processes one input record with timestamp `timestamp` (ms): first advances stream time
    /// and expires what is due, then applies the record, then pushes outputs in a deterministic
    /// order. All writes go to `store`; the caller decides when they become durable.
    ///
    /// # Errors
    /// [`OperatorError::InvalidInput`] when the record breaks a rule (the store is left as it
    /// was apart from stream time and expiries); [`OperatorError::CorruptState`] when stored
    /// state does not decode.
    fn process(
        &self,
        store: &mut dyn StateStore,
        timestamp: i64,
        input: &Self::Input,
        out: &mut Vec<Self::Output>,
    ) -> Result<(), OperatorError>;

    /// Called when a task opens its store (after restore). Default: nothing.
    fn on_open(&self, _store: &mut dyn StateStore) -> Result<(), OperatorError> {
        Ok(())
    }
}

/// A stateless operator made of a function: one output per valid input, an invalid input is
/// refused with the function's error. No store, no stream time.
pub struct MapRecords<I, O> {
    map: fn(&I) -> Result<O, OperatorError>,
}

impl<I, O> MapRecords<I, O> {
    /// The operator that applies `map` to every record.
    pub const fn new(map: fn(&I) -> Result<O, OperatorError>) -> Self {
        Self { map }
    }
}

impl<I, O> Clone for MapRecords<I, O> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<I, O> Copy for MapRecords<I, O> {}

impl<I, O> std::fmt::Debug for MapRecords<I, O> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MapRecords").finish_non_exhaustive()
    }
}

impl<I, O> Operator for MapRecords<I, O> {
    type Input = I;
    type Output = O;

    fn process(
        &self,
        _store: &mut dyn StateStore,
        _timestamp: i64,
        input: &I,
        out: &mut Vec<O>,
    ) -> Result<(), OperatorError> {
        out.push((self.map)(input)?);
        Ok(())
    }
}
