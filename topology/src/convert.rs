//! Conversion into the operators' settings.

use shelfsync_operators::config::{AssembleConfig, ChannelPolicy, DedupeConfig, InventoryConfig};

use crate::model::{ChannelSpec, Topology};
use crate::units::duration_ms;

impl ChannelSpec {
    /// The inventory operator's policy for this channel.
    pub fn policy(&self) -> ChannelPolicy {
        ChannelPolicy {
            name: self.name.clone(),
            share_pct: self.share_pct,
            buffer: self.buffer,
            max_qty: self.max_qty,
            min_publish: self.min_publish,
            eligible_locations: self.eligible_locations.clone(),
            oversell_policy: self.oversell_policy,
        }
    }
}

impl Topology {
    /// Settings of the inventory operator: the channels in file order, TTLs in milliseconds.
    pub fn inventory_config(&self) -> InventoryConfig {
        InventoryConfig {
            channels: self.channels.iter().map(ChannelSpec::policy).collect(),
            soft_hold_ttl_ms: duration_ms(self.inventory.soft_hold_ttl),
            shipped_line_retention_ms: duration_ms(self.inventory.shipped_line_retention),
        }
    }

    /// Settings of the dedupe operator.
    pub fn dedupe_config(&self) -> DedupeConfig {
        DedupeConfig {
            window_ms: duration_ms(self.dedupe.window),
        }
    }

    /// Settings of the assemble operator.
    pub fn assemble_config(&self) -> AssembleConfig {
        AssembleConfig {
            retention_ms: duration_ms(self.assemble.retention),
        }
    }

    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&crate::model::ChannelSpec> {
        self.channels.iter().find(|channel| channel.name == name)
    }
}
