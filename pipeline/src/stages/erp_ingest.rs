//! `erp-inventory` and `erp-products`: validated ERP changes → [`InventoryCommand`]s keyed by
//! SKU for the inventory stage (operators `INGEST_INVENTORY` and `INGEST_PRODUCTS`). The dedupe
//! stage's line commands take the same way out.

use shelfsync_schemas::InventoryCommand;
use shelfsync_topology::TopicId;

use super::{Emit, Outputs};
use crate::error::Result;

impl Emit for InventoryCommand {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        out.push(TopicId::InventoryCommands, self.sku.clone(), &self, None)
    }
}
