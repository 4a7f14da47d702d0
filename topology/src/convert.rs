//! Conversion into the operators' settings.

use shelfsync_operators::config::{AssembleConfig, ChannelPolicy, DedupeConfig, InventoryConfig};
use shelfsync_operators::percent::Percent;
use shelfsync_schemas::adapters::AdapterConfig;

use crate::defaults;
use crate::model::{ChannelSpec, Topology};
use crate::units::duration_ms;

impl ChannelSpec {
    /// The inventory operator's policy for this channel.
    pub fn policy(&self) -> ChannelPolicy {
        ChannelPolicy {
            name: self.name.clone(),
            // Validated: a bad value never gets here.
            share_pct: self.share_pct.percent().unwrap_or(Percent::HUNDRED),
            buffer: self.buffer,
            max_qty: self.max_qty,
            min_publish: self.min_publish,
            eligible_locations: self.eligible_locations.clone(),
            oversell_policy: self.oversell_policy,
            soft_hold_ttl_ms: self.soft_hold_ttl.map(duration_ms),
            hard_hold_max_age_ms: self.hard_hold_max_age_ms(),
        }
    }

    /// How the normalize stage reads this channel's raw orders: its adapter and, for Shopify,
    /// the fulfilment services that are our own locations (default `["manual"]`).
    pub fn adapter_config(&self) -> AdapterConfig {
        let mut config = AdapterConfig::new(self.adapter);
        let own: Vec<String> = match &self.own_fulfillment_services {
            Some(services) => services.clone(),
            None => defaults::OWN_FULFILLMENT_SERVICES
                .iter()
                .map(|s| (*s).to_string())
                .collect(),
        };
        config.own_fulfillment_services = own.into_iter().collect();
        config
    }

    /// This channel's hard-hold maximum age in milliseconds; 0 means hard holds never expire.
    pub fn hard_hold_max_age_ms(&self) -> i64 {
        duration_ms(self.hard_hold_max_age)
    }
}

impl Topology {
    /// Settings of the inventory operator: the channels in file order, TTLs in milliseconds.
    pub fn inventory_config(&self) -> InventoryConfig {
        // A location that is not sellable counts in no channel's ATS: every channel's eligible
        // locations leave it out.
        let sellable: Vec<String> = self
            .locations
            .iter()
            .filter(|l| l.sellable)
            .map(|l| l.id.clone())
            .collect();
        let all_sellable = sellable.len() == self.locations.len();
        let channels = self
            .channels
            .iter()
            .map(|c| {
                let mut policy = c.policy();
                if !all_sellable {
                    policy.eligible_locations = Some(match policy.eligible_locations {
                        Some(ids) => ids.into_iter().filter(|id| sellable.contains(id)).collect(),
                        None => sellable.clone(),
                    });
                }
                policy
            })
            .collect();
        InventoryConfig {
            channels,
            soft_hold_ttl_ms: duration_ms(self.inventory.soft_hold_ttl),
            shipped_line_retention_ms: duration_ms(self.inventory.shipped_line_retention),
            locations: self.locations.iter().map(|l| l.id.clone()).collect(),
        }
    }

    /// Settings of the dedupe operator.
    pub fn dedupe_config(&self) -> DedupeConfig {
        DedupeConfig {
            window_ms: duration_ms(self.dedupe.window),
            hard_hold_max_age_ms: self
                .channels
                .iter()
                .map(|channel| (channel.name.clone(), channel.hard_hold_max_age_ms()))
                .collect(),
            default_hard_hold_max_age_ms: duration_ms(defaults::HARD_HOLD_MAX_AGE),
        }
    }

    /// Settings of the assemble operator.
    ///
    /// An order's assembly state is kept at least as long as a hard hold may wait for stock
    /// (the longest `hard_hold_max_age`): a backorder filled weeks later is still a status
    /// change of its order.
    pub fn assemble_config(&self) -> AssembleConfig {
        let longest_hold = self
            .channels
            .iter()
            .map(ChannelSpec::hard_hold_max_age_ms)
            .max()
            .unwrap_or(0);
        AssembleConfig {
            retention_ms: duration_ms(self.assemble.retention).max(longest_hold),
        }
    }

    /// The soft-hold TTL of `channel` in milliseconds: its own `soft_hold_ttl`, else
    /// `inventory.soft_hold_ttl`.
    pub fn soft_hold_ttl_ms(&self, channel: &ChannelSpec) -> i64 {
        duration_ms(
            channel
                .soft_hold_ttl
                .unwrap_or(self.inventory.soft_hold_ttl),
        )
    }

    /// The channel named `name`.
    pub fn channel(&self, name: &str) -> Option<&crate::model::ChannelSpec> {
        self.channels.iter().find(|channel| channel.name == name)
    }
}
