//! What each stage does to one record: decode, run the operator, encode the outputs.
//!
//! A stage never touches Kafka: it gets the record's bytes and timestamp and its task's store,
//! and returns [`OutRecord`]s for the task to produce. A record that cannot be decoded or breaks
//! a rule comes back as a [`Rejected`] so the task dead-letters it and goes on.
//!
//! Every stage runs the same path, [`OperatorStage`]: decode the value (Avro, or the channel
//! adapters for raw orders), call the operator through `shelfsync_operators::Operator`, and hand
//! each output to its [`Emit`] implementation, which says which topic it goes to, under which
//! key, with which `event_id`, and what it counts. One file per operator holds that mapping:
//!
//! | file | stage(s) | operator |
//! |---|---|---|
//! | [`normalize`] | `normalize` | the channel adapters (decode) and a pass-through |
//! | [`erp_ingest`] | `erp-inventory`, `erp-products` | `INGEST_INVENTORY`, `INGEST_PRODUCTS` (`MapRecords`) |
//! | [`dedupe`] | `dedupe` | `DedupeOrders` |
//! | [`inventory`] | `inventory` | `ReserveInventory` |
//! | [`assemble`] | `assemble` | `AssembleOrders` |
//!
//! [`StageLogic::new`] registers them, one line a stage.

use std::fmt;

use shelfsync_operators::assemble_orders::AssembleOrders;
use shelfsync_operators::dedupe_orders::DedupeOrders;
use shelfsync_operators::erp_ingest::{INGEST_INVENTORY, INGEST_PRODUCTS};
use shelfsync_operators::reserve_inventory::ReserveInventory;
use shelfsync_operators::{MemStore, Operator, OperatorError, StateStore};
use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_topology::{Stage, TopicId, Topology};

use crate::error::{Error, Result};

pub mod assemble;
pub mod dedupe;
pub mod erp_ingest;
pub mod inventory;
pub mod normalize;

/// A record a stage wants produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutRecord {
    /// Which logical topic.
    pub topic: TopicId,
    /// Record key.
    pub key: Vec<u8>,
    /// Record value (framed Avro).
    pub value: Vec<u8>,
    /// The deterministic `event_id` of an external output, put in a header too.
    pub event_id: Option<String>,
    /// The correlation id the stage chose for it (normalize: the raw order's delivery id), used
    /// when its input carries none.
    pub correlation: Option<String>,
}

/// Why a record was refused (it goes to the DLQ with these as headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Short class, e.g. `bad_json`, `decode`, `invalid`, `unknown_channel`.
    pub kind: &'static str,
    /// What is wrong, naming the field where possible.
    pub reason: String,
}

impl Rejected {
    fn empty() -> Self {
        Self {
            kind: "empty",
            reason: "record has no value".into(),
        }
    }
}

/// Where a stage's outputs go: the encoded records of one input, and the stage's name for
/// metric labels.
#[derive(Debug)]
pub struct Outputs<'a> {
    stage: &'static str,
    framing: Framing,
    records: &'a mut Vec<OutRecord>,
}

impl Outputs<'_> {
    /// The stage's name (`dedupe`, …) for metric labels.
    pub fn stage(&self) -> &'static str {
        self.stage
    }

    /// Encodes `value` and adds it as a record for `topic` under `key`.
    ///
    /// # Errors
    /// [`Error::Bug`] when the value does not encode (the model and its schema disagree).
    pub fn push<T: AvroRecord>(
        &mut self,
        topic: TopicId,
        key: String,
        value: &T,
        event_id: Option<String>,
    ) -> Result<()> {
        let value = avro::encode(value, self.framing)
            .map_err(|e| Error::Bug(format!("encode {}: {e}", T::NAME)))?;
        self.records.push(OutRecord {
            topic,
            key: key.into_bytes(),
            value,
            event_id,
            correlation: None,
        });
        Ok(())
    }

    /// As [`Self::push`], with the correlation id the record gets when its input carries none.
    ///
    /// # Errors
    /// As [`Self::push`].
    pub fn push_correlated<T: AvroRecord>(
        &mut self,
        topic: TopicId,
        key: String,
        value: &T,
        correlation: String,
    ) -> Result<()> {
        self.push(topic, key, value, None)?;
        if let Some(last) = self.records.last_mut() {
            last.correlation = Some(correlation);
        }
        Ok(())
    }
}

/// How one operator output becomes records (and metrics): implemented once per output type,
/// in the file of its stage.
pub trait Emit {
    /// Adds this output's records to `out`, in a deterministic order.
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    fn emit(self, out: &mut Outputs<'_>) -> Result<()>;
}

/// How a stage turns a record's bytes into its operator's input.
pub type Decoder<I> = Box<dyn Fn(&[u8]) -> std::result::Result<I, Rejected> + Send + Sync>;

/// The Avro decoder of a record type.
pub fn avro_decoder<I: AvroRecord + 'static>() -> Decoder<I> {
    Box::new(|bytes| {
        avro::decode::<I>(bytes).map_err(|e| Rejected {
            kind: e.kind(),
            reason: e.to_string(),
        })
    })
}

/// One stage's logic, whatever its operator (object-safe so that [`StageLogic`] holds any).
trait Run: Send + Sync {
    fn run(
        &self,
        store: Option<&mut dyn StateStore>,
        ts: i64,
        value: Option<&[u8]>,
        out: &mut Outputs<'_>,
    ) -> Result<std::result::Result<(), Rejected>>;
}

/// The one generic path: decode → operator → encode.
pub struct OperatorStage<O: Operator> {
    operator: O,
    decode: Decoder<O::Input>,
}

impl<O: Operator> OperatorStage<O> {
    /// `operator`, fed by `decode`.
    pub fn new(operator: O, decode: Decoder<O::Input>) -> Self {
        Self { operator, decode }
    }
}

impl<O> OperatorStage<O>
where
    O: Operator,
    O::Input: AvroRecord + 'static,
{
    /// `operator`, fed by Avro records of its input type.
    pub fn avro(operator: O) -> Self {
        Self::new(operator, avro_decoder())
    }
}

impl<O> Run for OperatorStage<O>
where
    O: Operator + Send + Sync,
    O::Output: Emit,
{
    fn run(
        &self,
        store: Option<&mut dyn StateStore>,
        ts: i64,
        value: Option<&[u8]>,
        out: &mut Outputs<'_>,
    ) -> Result<std::result::Result<(), Rejected>> {
        let Some(bytes) = value else {
            return Ok(Err(Rejected::empty()));
        };
        let input = match (self.decode)(bytes) {
            Ok(input) => input,
            Err(rejected) => return Ok(Err(rejected)),
        };
        // A stateless operator gets an empty scratch store (an empty BTreeMap: no allocation).
        let mut scratch = MemStore::new();
        let store: &mut dyn StateStore = match (store, self.operator.store()) {
            (Some(store), _) => store,
            (None, None) => &mut scratch,
            (None, Some(spec)) => {
                return Err(Error::Bug(format!(
                    "{} task without its {} store",
                    out.stage, spec.name
                )))
            }
        };
        let mut outputs = Vec::new();
        let result = self.operator.process(store, ts, &input, &mut outputs);
        if let Err(e @ OperatorError::CorruptState { .. }) = &result {
            return Err(Error::Bug(e.to_string()));
        }
        // What the step did before the record was refused stays done (holds that expired at
        // its stream time): its outputs leave with the dead letter, or an availability
        // version would be spent without its event.
        for o in outputs {
            o.emit(out)?;
        }
        Ok(result.map_err(|e| Rejected {
            kind: e.kind(),
            reason: e.to_string(),
        }))
    }
}

/// Runs one stage's logic.
pub struct StageLogic {
    stage: Stage,
    framing: Framing,
    run: Box<dyn Run>,
}

impl fmt::Debug for StageLogic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StageLogic")
            .field("stage", &self.stage)
            .finish_non_exhaustive()
    }
}

impl StageLogic {
    /// The logic of `stage` under `topology`: the registry of which operator runs where.
    pub fn new(stage: Stage, topology: &Topology) -> Self {
        let run: Box<dyn Run> = match stage {
            Stage::Normalize => Box::new(normalize::stage(topology)),
            Stage::ErpInventory => Box::new(OperatorStage::avro(INGEST_INVENTORY)),
            Stage::ErpProducts => Box::new(OperatorStage::avro(INGEST_PRODUCTS)),
            Stage::Dedupe => Box::new(OperatorStage::avro(DedupeOrders::new(
                topology.dedupe_config(),
            ))),
            Stage::Inventory => Box::new(OperatorStage::avro(ReserveInventory::new(
                topology.inventory_config(),
            ))),
            Stage::Assemble => Box::new(OperatorStage::avro(AssembleOrders::new(
                topology.assemble_config(),
            ))),
        };
        Self {
            stage,
            framing: Framing::SingleObject,
            run,
        }
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    /// Processes one record with timestamp `ts`. `store` is the task's store (stateful stages).
    ///
    /// Returns `Ok(Err(rejected))` for a record to dead-letter; what the stage emitted before
    /// it refused the record (expiries due at its time) is in `out` and leaves with it.
    ///
    /// # Errors
    /// [`Error::Bug`] when state is corrupt or an output does not encode: the task must stop.
    pub fn process(
        &self,
        store: Option<&mut dyn StateStore>,
        ts: i64,
        value: Option<&[u8]>,
        out: &mut Vec<OutRecord>,
    ) -> Result<std::result::Result<(), Rejected>> {
        let mut outputs = Outputs {
            stage: self.stage.name(),
            framing: self.framing,
            records: out,
        };
        self.run.run(store, ts, value, &mut outputs)
    }
}
