//! `dedupe`: canonical orders → one [`InventoryCommand`](shelfsync_schemas::InventoryCommand)
//! per line of each new revision (operator `DedupeOrders`, store `dedupe`). Exact repeats are
//! dropped and counted; expired fingerprints are counted.

use shelfsync_operators::dedupe_orders::DedupeOutput;
use tracing::debug;

use super::{Emit, Outputs};
use crate::error::Result;
use crate::metrics as m;

impl Emit for DedupeOutput {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        match self {
            DedupeOutput::Command(cmd) => cmd.emit(out)?,
            DedupeOutput::DuplicateDropped { order_key } => {
                debug!(%order_key, "repeated order delivery dropped");
                metrics::counter!(m::DUPLICATES_DROPPED).increment(1);
            }
            DedupeOutput::Expired { .. } => {
                metrics::counter!(m::STATE_EXPIRED, "stage" => out.stage()).increment(1);
            }
        }
        Ok(())
    }
}
