//! The operators' settings, built from the topology file by `shelfsync-topology`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::percent::Percent;

/// What happens to an order line when physical stock is short.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum OversellPolicy {
    /// Hold nothing and reject the line.
    #[default]
    Reject,
    /// Hold what is physically there and backorder the shortfall.
    Backorder,
}

/// How one sales channel gets its share of available-to-sell stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPolicy {
    /// Channel name (`amazon`, `walmart`, …).
    pub name: String,
    /// Percentage (0–100, two decimals exact) of ATS offered on this channel, rounded down.
    pub share_pct: Percent,
    /// Units held back from this channel after the share.
    pub buffer: i64,
    /// Upper bound on the published quantity (`None`: no cap).
    pub max_qty: Option<i64>,
    /// A computed quantity below this is published as 0.
    pub min_publish: i64,
    /// Locations whose stock this channel may sell (`None`: all locations).
    pub eligible_locations: Option<Vec<String>>,
    /// What to do with this channel's order lines when stock is short.
    pub oversell_policy: OversellPolicy,
    /// How long this channel's unpaid lines hold softly (`None`: [`InventoryConfig`]'s
    /// `soft_hold_ttl_ms`), in stream-time milliseconds: marketplaces treat pending orders
    /// differently.
    pub soft_hold_ttl_ms: Option<i64>,
    /// How long a hard hold of this channel may last before it is released as forgotten (a
    /// shipment the ERP never posted), in stream-time milliseconds; 0: never.
    pub hard_hold_max_age_ms: i64,
}

impl ChannelPolicy {
    /// A policy offering 100% of ATS with no buffer, cap or minimum, on every location.
    pub fn full(name: &str) -> Self {
        Self {
            name: name.to_string(),
            share_pct: Percent::HUNDRED,
            buffer: 0,
            max_qty: None,
            min_publish: 0,
            eligible_locations: None,
            oversell_policy: OversellPolicy::Reject,
            soft_hold_ttl_ms: None,
            hard_hold_max_age_ms: THIRTY_DAYS_MS,
        }
    }
}

/// Settings of the inventory operator (`reserve_inventory` + `allocate_channels`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryConfig {
    /// Channels in publication order.
    pub channels: Vec<ChannelPolicy>,
    /// How long an unpaid order's soft hold lasts, in stream-time milliseconds.
    pub soft_hold_ttl_ms: i64,
    /// How long a shipped line's record is kept (to make late repeats no-ops), in ms.
    pub shipped_line_retention_ms: i64,
    /// The declared location ids; an ERP record for any other location is refused
    /// (`unknown_location`). Empty: every location is accepted.
    pub locations: Vec<String>,
}

impl InventoryConfig {
    /// The policy of `channel`, if it is configured.
    pub fn channel(&self, channel: &str) -> Option<&ChannelPolicy> {
        self.channels.iter().find(|c| c.name == channel)
    }

    /// The soft-hold TTL of `channel`'s unpaid lines.
    pub fn soft_hold_ttl_ms(&self, channel: &str) -> i64 {
        self.channel(channel)
            .and_then(|c| c.soft_hold_ttl_ms)
            .unwrap_or(self.soft_hold_ttl_ms)
    }

    /// The hard-hold maximum age of `channel` (0: never).
    pub fn hard_hold_max_age_ms(&self, channel: &str) -> i64 {
        self.channel(channel).map_or(0, |c| c.hard_hold_max_age_ms)
    }
}

/// Settings of the dedupe operator.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DedupeConfig {
    /// How long an order's fingerprints are remembered after its last revision, in ms.
    pub window_ms: i64,
    /// Per channel, its `hard_hold_max_age` in ms (0 = hard holds never expire): an order that
    /// is not cancelled keeps its record at least this long after its last revision, because
    /// it may hold stock until then.
    pub hard_hold_max_age_ms: BTreeMap<String, i64>,
    /// `hard_hold_max_age` of a channel not in `hard_hold_max_age_ms`, in ms.
    pub default_hard_hold_max_age_ms: i64,
}

impl DedupeConfig {
    /// The `hard_hold_max_age` of `channel` in ms (0 = never).
    pub fn hard_hold_max_age_ms(&self, channel: &str) -> i64 {
        self.hard_hold_max_age_ms
            .get(channel)
            .copied()
            .unwrap_or(self.default_hard_hold_max_age_ms)
    }
}

/// Settings of the assemble operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AssembleConfig {
    /// How long an order's assembly state is kept after its last result, in ms.
    pub retention_ms: i64,
}

/// Seven days in milliseconds: the default dedup window.
pub const SEVEN_DAYS_MS: i64 = 7 * 24 * 3600 * 1000;
/// Thirty days in milliseconds: the default hard-hold maximum age.
pub const THIRTY_DAYS_MS: i64 = 30 * 24 * 3600 * 1000;
/// Thirty minutes in milliseconds: the default soft-hold TTL.
pub const THIRTY_MINUTES_MS: i64 = 30 * 60 * 1000;

impl Default for InventoryConfig {
    fn default() -> Self {
        Self {
            channels: Vec::new(),
            soft_hold_ttl_ms: THIRTY_MINUTES_MS,
            shipped_line_retention_ms: SEVEN_DAYS_MS,
            locations: Vec::new(),
        }
    }
}

impl Default for DedupeConfig {
    fn default() -> Self {
        Self {
            window_ms: SEVEN_DAYS_MS,
            hard_hold_max_age_ms: BTreeMap::new(),
            default_hard_hold_max_age_ms: THIRTY_DAYS_MS,
        }
    }
}

impl Default for AssembleConfig {
    fn default() -> Self {
        Self {
            retention_ms: SEVEN_DAYS_MS,
        }
    }
}
