//! `inventory`: inventory commands → line results (keyed by order key, for `assemble`) and
//! per-channel availability (keyed `channel|sku`, external) — operator `ReserveInventory`,
//! store `inventory`. Rejected lines, stale ERP records and expired holds are counted.

use shelfsync_operators::reserve_inventory::InventoryOutput;
use shelfsync_schemas::{availability_key, LineOutcome, LineResult};
use shelfsync_topology::TopicId;
use tracing::{debug, info};

use super::{Emit, Outputs};
use crate::error::Result;
use crate::metrics as m;

impl Emit for InventoryOutput {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        match self {
            InventoryOutput::LineResult(r) => {
                count_line(&r);
                out.push(TopicId::LineResults, r.order_key.clone(), &r, None)?;
            }
            InventoryOutput::Availability(a) => {
                metrics::counter!(m::AVAILABILITY_UPDATES, "channel" => a.channel.clone())
                    .increment(1);
                let id = a.event_id.clone();
                out.push(
                    TopicId::Availability,
                    availability_key(&a.channel, &a.sku),
                    &a,
                    Some(id),
                )?;
            }
            InventoryOutput::StaleIgnored { sku } => {
                debug!(%sku, "stale ERP record ignored (erp_sequence not newer)");
                metrics::counter!(m::STALE_ERP_IGNORED).increment(1);
            }
            InventoryOutput::HoldExpired { sku, order_key } => {
                debug!(%sku, %order_key, "soft hold expired and released");
                metrics::counter!(m::STATE_EXPIRED, "stage" => out.stage()).increment(1);
            }
        }
        Ok(())
    }
}

fn count_line(r: &LineResult) {
    if r.outcome == LineOutcome::REJECTED {
        info!(order_key = %r.order_key, sku = %r.sku, channel = %r.channel, quantity = r.quantity, "order line rejected: short stock");
        metrics::counter!(m::OVERSELL_REJECTIONS, "channel" => r.channel.clone()).increment(1);
    }
}
