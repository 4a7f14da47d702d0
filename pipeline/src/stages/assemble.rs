//! `assemble`: line results → validated orders for the ERP and order status events, both
//! keyed by order key and external (operator `AssembleOrders`, store `assemble`). Superseded
//! revisions are dropped and counted.

use shelfsync_operators::assemble_orders::AssembleOutput;
use shelfsync_schemas::OrderStatusCode;
use shelfsync_topology::TopicId;
use tracing::debug;

use super::{Emit, Outputs};
use crate::error::Result;
use crate::metrics as m;

impl Emit for AssembleOutput {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        match self {
            AssembleOutput::Validated(v) => {
                let id = v.event_id.clone();
                out.push(TopicId::ValidatedOrders, v.order_key.clone(), &v, Some(id))?;
            }
            AssembleOutput::Status(s) => {
                debug!(order_key = %s.order_key, revision = s.revision, status = status_label(s.status), "order status");
                metrics::counter!(m::ORDERS, "status" => status_label(s.status)).increment(1);
                let id = s.event_id.clone();
                out.push(TopicId::OrderStatus, s.order_key.clone(), &s, Some(id))?;
            }
            AssembleOutput::Superseded {
                order_key,
                revision,
            } => {
                debug!(%order_key, revision, "superseded revision dropped");
                metrics::counter!(m::SUPERSEDED).increment(1);
            }
            AssembleOutput::FillIgnored {
                order_key,
                revision,
            } => {
                // Counted with superseded revisions: a fill for a revision that is no longer
                // the order's latest (or for an order past `assemble.retention`).
                debug!(%order_key, revision, "backorder fill for no current revision ignored");
                metrics::counter!(m::SUPERSEDED).increment(1);
            }
        }
        Ok(())
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
