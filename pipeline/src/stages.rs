//! What each stage does to one record: decode, run the operator, encode the outputs.
//!
//! A stage never touches Kafka: it gets the record's bytes and timestamp and its task's store,
//! and returns [`OutRecord`]s for the task to produce. A record that cannot be decoded or breaks
//! a rule comes back as a [`Rejected`] so the task dead-letters it and goes on.

use std::collections::BTreeMap;

use shelfsync_operators::assemble_orders::{AssembleOrders, AssembleOutput};
use shelfsync_operators::dedupe_orders::{DedupeOrders, DedupeOutput};
use shelfsync_operators::erp_ingest::{ingest_inventory, ingest_product};
use shelfsync_operators::reserve_inventory::{InventoryOutput, ReserveInventory};
use shelfsync_operators::{Operator, OperatorError, StateStore};
use shelfsync_schemas::adapters::{normalize, AdapterKind};
use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_schemas::{
    availability_key, InventoryChange, InventoryCommand, LineOutcome, LineResult, Order,
    OrderStatusCode, ProductChange,
};
use shelfsync_topology::{AdapterName, Stage, TopicId, Topology};

use crate::error::{Error, Result};
use crate::metrics as m;
use tracing::{debug, info};

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
}

/// Why a record was refused (it goes to the DLQ with these as headers).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejected {
    /// Short class, e.g. `bad_json`, `decode`, `invalid`, `unknown_channel`.
    pub kind: &'static str,
    /// What is wrong, naming the field where possible.
    pub reason: String,
}

/// Runs one stage's logic.
#[derive(Debug)]
pub struct StageLogic {
    stage: Stage,
    adapters: BTreeMap<String, AdapterKind>,
    dedupe: DedupeOrders,
    inventory: ReserveInventory,
    assemble: AssembleOrders,
    framing: Framing,
}

fn adapter_kind(name: AdapterName) -> AdapterKind {
    match name {
        AdapterName::Shopify => AdapterKind::Shopify,
        AdapterName::Amazon => AdapterKind::Amazon,
        AdapterName::Walmart => AdapterKind::Walmart,
        AdapterName::Generic => AdapterKind::Generic,
    }
}

fn decode<T: AvroRecord>(value: Option<&[u8]>) -> Result<T, Rejected> {
    let bytes = value.ok_or_else(|| Rejected {
        kind: "empty",
        reason: "record has no value".into(),
    })?;
    avro::decode::<T>(bytes).map_err(|e| Rejected {
        kind: e.kind(),
        reason: e.to_string(),
    })
}

fn invalid(e: OperatorError) -> Result<std::result::Result<(), Rejected>> {
    match e {
        OperatorError::InvalidInput { .. } => Ok(Err(Rejected {
            kind: "invalid",
            reason: e.to_string(),
        })),
        OperatorError::CorruptState { .. } => Err(Error::Bug(e.to_string())),
    }
}

impl StageLogic {
    /// The logic of `stage` under `topology`.
    pub fn new(stage: Stage, topology: &Topology) -> Self {
        Self {
            stage,
            adapters: topology
                .channels
                .iter()
                .map(|c| (c.name.clone(), adapter_kind(c.adapter)))
                .collect(),
            dedupe: DedupeOrders::new(topology.dedupe_config()),
            inventory: ReserveInventory::new(topology.inventory_config()),
            assemble: AssembleOrders::new(topology.assemble_config()),
            framing: Framing::SingleObject,
        }
    }

    /// The stage.
    pub fn stage(&self) -> Stage {
        self.stage
    }

    fn push<T: AvroRecord>(
        &self,
        out: &mut Vec<OutRecord>,
        topic: TopicId,
        key: String,
        v: &T,
        event_id: Option<String>,
    ) -> Result<()> {
        let value = avro::encode(v, self.framing)
            .map_err(|e| Error::Bug(format!("encode {}: {e}", T::NAME)))?;
        out.push(OutRecord {
            topic,
            key: key.into_bytes(),
            value,
            event_id,
        });
        Ok(())
    }

    /// Processes one record with timestamp `ts`. `store` is the task's store (stateful stages).
    ///
    /// Returns `Ok(Err(rejected))` for a record to dead-letter (nothing else was emitted for it).
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
        let stage = self.stage.name();
        match self.stage {
            Stage::Normalize => {
                let Some(bytes) = value else {
                    return Ok(Err(Rejected {
                        kind: "empty",
                        reason: "record has no value".into(),
                    }));
                };
                let order = match normalize(bytes, |channel| self.adapters.get(channel).copied()) {
                    Ok(o) => o,
                    Err(e) => {
                        return Ok(Err(Rejected {
                            kind: e.kind(),
                            reason: e.to_string(),
                        }))
                    }
                };
                self.push(out, TopicId::Orders, order.key(), &order, None)?;
            }
            Stage::ErpInventory => {
                let change = match decode::<InventoryChange>(value) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r)),
                };
                match ingest_inventory(&change) {
                    Ok(cmd) => {
                        self.push(out, TopicId::InventoryCommands, cmd.sku.clone(), &cmd, None)?
                    }
                    Err(e) => return invalid(e),
                }
            }
            Stage::ErpProducts => {
                let change = match decode::<ProductChange>(value) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r)),
                };
                match ingest_product(&change) {
                    Ok(cmd) => {
                        self.push(out, TopicId::InventoryCommands, cmd.sku.clone(), &cmd, None)?
                    }
                    Err(e) => return invalid(e),
                }
            }
            Stage::Dedupe => {
                let order = match decode::<Order>(value) {
                    Ok(o) => o,
                    Err(r) => return Ok(Err(r)),
                };
                let store =
                    store.ok_or_else(|| Error::Bug("dedupe task without a store".into()))?;
                let mut outputs = Vec::new();
                if let Err(e) = self.dedupe.process(store, ts, &order, &mut outputs) {
                    return invalid(e);
                }
                for o in outputs {
                    match o {
                        DedupeOutput::Command(cmd) => self.push(
                            out,
                            TopicId::InventoryCommands,
                            cmd.sku.clone(),
                            &*cmd,
                            None,
                        )?,
                        DedupeOutput::DuplicateDropped { order_key } => {
                            debug!(%order_key, "repeated order delivery dropped");
                            metrics::counter!(m::DUPLICATES_DROPPED).increment(1)
                        }
                        DedupeOutput::Expired { .. } => {
                            metrics::counter!(m::STATE_EXPIRED, "stage" => stage).increment(1)
                        }
                    }
                }
            }
            Stage::Inventory => {
                let cmd = match decode::<InventoryCommand>(value) {
                    Ok(c) => c,
                    Err(r) => return Ok(Err(r)),
                };
                let store =
                    store.ok_or_else(|| Error::Bug("inventory task without a store".into()))?;
                let mut outputs = Vec::new();
                if let Err(e) = self.inventory.process(store, ts, &cmd, &mut outputs) {
                    return invalid(e);
                }
                for o in outputs {
                    match o {
                        InventoryOutput::LineResult(r) => {
                            count_line(&r);
                            self.push(out, TopicId::LineResults, r.order_key.clone(), &r, None)?;
                        }
                        InventoryOutput::Availability(a) => {
                            metrics::counter!(m::AVAILABILITY_UPDATES, "channel" => a.channel.clone()).increment(1);
                            let id = a.event_id.clone();
                            self.push(
                                out,
                                TopicId::Availability,
                                availability_key(&a.channel, &a.sku),
                                &a,
                                Some(id),
                            )?;
                        }
                        InventoryOutput::StaleIgnored { sku } => {
                            debug!(%sku, "stale ERP record ignored (erp_sequence not newer)");
                            metrics::counter!(m::STALE_ERP_IGNORED).increment(1)
                        }
                        InventoryOutput::HoldExpired { sku, order_key } => {
                            debug!(%sku, %order_key, "soft hold expired and released");
                            metrics::counter!(m::STATE_EXPIRED, "stage" => stage).increment(1)
                        }
                    }
                }
            }
            Stage::Assemble => {
                let result = match decode::<LineResult>(value) {
                    Ok(r) => r,
                    Err(r) => return Ok(Err(r)),
                };
                let store =
                    store.ok_or_else(|| Error::Bug("assemble task without a store".into()))?;
                let mut outputs = Vec::new();
                if let Err(e) = self.assemble.process(store, ts, &result, &mut outputs) {
                    return invalid(e);
                }
                for o in outputs {
                    match o {
                        AssembleOutput::Validated(v) => {
                            let id = v.event_id.clone();
                            self.push(
                                out,
                                TopicId::ValidatedOrders,
                                v.order_key.clone(),
                                &v,
                                Some(id),
                            )?;
                        }
                        AssembleOutput::Status(s) => {
                            debug!(order_key = %s.order_key, revision = s.revision, status = status_label(s.status), "order status");
                            metrics::counter!(m::ORDERS, "status" => status_label(s.status))
                                .increment(1);
                            let id = s.event_id.clone();
                            self.push(
                                out,
                                TopicId::OrderStatus,
                                s.order_key.clone(),
                                &s,
                                Some(id),
                            )?;
                        }
                        AssembleOutput::Superseded {
                            order_key,
                            revision,
                        } => {
                            debug!(%order_key, revision, "superseded revision dropped");
                            metrics::counter!(m::SUPERSEDED).increment(1)
                        }
                    }
                }
            }
        }
        Ok(Ok(()))
    }
}

fn count_line(r: &LineResult) {
    if r.outcome == LineOutcome::REJECTED {
        info!(order_key = %r.order_key, sku = %r.sku, channel = %r.channel, quantity = r.quantity, "order line rejected: short stock");
        metrics::counter!(m::OVERSELL_REJECTIONS, "channel" => r.channel.clone()).increment(1);
    }
}

fn status_label(s: OrderStatusCode) -> &'static str {
    match s {
        OrderStatusCode::ACCEPTED => "accepted",
        OrderStatusCode::BACKORDERED => "backordered",
        OrderStatusCode::PARTIALLY_ACCEPTED => "partially_accepted",
        OrderStatusCode::REJECTED => "rejected",
        OrderStatusCode::CANCELLED => "cancelled",
    }
}
