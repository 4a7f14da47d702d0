//! `normalize`: raw channel orders → canonical [`Order`]s keyed by order key (DESIGN §2).
//!
//! The work of this stage is decoding: the channel adapters of `shelfsync_schemas::adapters`
//! parse the envelope and the channel's payload ([`AdapterKind`] per channel, from the
//! topology), and refuse what they cannot read with their own `error_kind` (`bad_json`,
//! `unknown_channel`, …). The operator then only forwards the order.

use std::collections::BTreeMap;

use shelfsync_operators::MapRecords;
use shelfsync_schemas::adapters::{normalize, AdapterKind};
use shelfsync_schemas::Order;
use shelfsync_topology::{TopicId, Topology};

use super::{Decoder, Emit, OperatorStage, Outputs, Rejected};
use crate::error::Result;

/// The operator of `normalize`: the decoded order as it is.
pub const FORWARD_ORDER: MapRecords<Order, Order> = MapRecords::new(|order| Ok(order.clone()));

/// The channel adapters as the stage's decoder: channel name → adapter, from the topology.
pub fn decoder(topology: &Topology) -> Decoder<Order> {
    let adapters: BTreeMap<String, AdapterKind> = topology
        .channels
        .iter()
        .map(|c| (c.name.clone(), c.adapter))
        .collect();
    Box::new(move |bytes| {
        normalize(bytes, |channel| adapters.get(channel).copied()).map_err(|e| Rejected {
            kind: e.kind(),
            reason: e.to_string(),
        })
    })
}

/// The `normalize` stage under `topology`.
pub fn stage(topology: &Topology) -> OperatorStage<MapRecords<Order, Order>> {
    OperatorStage::new(FORWARD_ORDER, decoder(topology))
}

impl Emit for Order {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        out.push(TopicId::Orders, self.key(), &self, None)
    }
}
