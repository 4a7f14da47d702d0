//! `allocate_channels`: turns a SKU's stock position into the quantity each channel publishes.
//!
//! - Safety stock(sku, channel) = `safety_stock_units` + ceil(`safety_stock_pct`% × total
//!   on-hand), where total on-hand = Σ max(0, on-hand) over all locations and a channel override
//!   may replace units or pct.
//! - ATS(channel) = Σ max(0, on-hand) over the channel's eligible locations − reserved −
//!   backordered − safety stock, floored at 0. A location-restricted channel still subtracts *all* of the SKU's
//!   reservations (conservative: a hold does not say which location will ship it).
//! - Published = floor(`share_pct`% × ATS) − `buffer`, floored at 0, capped at `max_qty`, and 0
//!   when below `min_publish`. An inactive SKU, or a channel its product disables, publishes 0.

use serde::{Deserialize, Serialize};

use crate::percent::Percent;
use crate::ChannelPolicy;

/// The product master as the inventory operator keeps it. A SKU with no product record yet is
/// active with no safety stock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ProductInfo {
    /// False publishes 0 on every channel.
    pub active: bool,
    /// Fixed safety stock units.
    pub safety_stock_units: i64,
    /// Safety stock percentage of total on-hand (0–100, two decimals exact).
    pub safety_stock_pct: Percent,
    /// Per-channel overrides.
    pub overrides: Vec<SkuOverride>,
    /// Sequence of the record applied last.
    pub erp_sequence: i64,
}

/// A per-channel override on the product record: each field set replaces the product's or
/// the channel policy's value for this SKU on that channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SkuOverride {
    /// Channel name.
    pub channel: String,
    /// False stops the SKU on this channel (publishes 0).
    pub enabled: bool,
    /// Replaces the product's safety stock units.
    pub safety_stock_units: Option<i64>,
    /// Replaces the product's safety stock percentage.
    pub safety_stock_pct: Option<Percent>,
    /// Replaces the channel's share of ATS.
    pub share_pct: Option<Percent>,
    /// Replaces the channel's buffer.
    pub buffer: Option<i64>,
    /// Replaces the channel's cap.
    pub max_qty: Option<i64>,
    /// Replaces the channel's minimum.
    pub min_publish: Option<i64>,
}

/// On-hand at one location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Position {
    /// Location id.
    pub location: String,
    /// On-hand units (may be negative when the ERP says so; counts as 0).
    pub on_hand: i64,
    /// Sequence of the ERP record applied last to this position.
    pub erp_sequence: i64,
}

/// The stock side of a SKU: what allocation needs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SkuStock {
    /// Product master, if one arrived.
    pub product: Option<ProductInfo>,
    /// Positions sorted by location id.
    pub positions: Vec<Position>,
    /// Units held by order lines (soft and hard).
    pub reserved: i64,
    /// Units backordered: demand not held yet, subtracted from ATS and filled first when
    /// on-hand rises.
    pub backordered: i64,
}

impl SkuStock {
    /// Σ max(0, on-hand) over every location.
    pub fn total_on_hand(&self) -> i64 {
        self.positions.iter().map(|p| p.on_hand.max(0)).sum()
    }

    /// Σ max(0, on-hand) over `locations` (`None`: all).
    pub fn on_hand_at(&self, locations: Option<&[String]>) -> i64 {
        match locations {
            None => self.total_on_hand(),
            Some(ids) => self
                .positions
                .iter()
                .filter(|p| ids.contains(&p.location))
                .map(|p| p.on_hand.max(0))
                .sum(),
        }
    }

    /// Physical stock free to reserve: total on-hand − reserved (may be negative).
    pub fn physical_free(&self) -> i64 {
        self.total_on_hand() - self.reserved
    }

    fn override_for(&self, channel: &str) -> Option<&SkuOverride> {
        self.product
            .as_ref()?
            .overrides
            .iter()
            .find(|o| o.channel == channel)
    }

    /// Safety stock for `channel`: units + ceil(pct% × total on-hand), override first.
    pub fn safety_stock(&self, channel: &str) -> i64 {
        let over = self.override_for(channel);
        let (units, pct) = match &self.product {
            None => (0, Percent::default()),
            Some(p) => (
                over.and_then(|o| o.safety_stock_units)
                    .unwrap_or(p.safety_stock_units),
                over.and_then(|o| o.safety_stock_pct)
                    .unwrap_or(p.safety_stock_pct),
            ),
        };
        // ceil(pct × total), exactly.
        units + pct.of_ceil(self.total_on_hand())
    }

    /// Available to sell on `policy`'s channel before the channel's share, buffer and cap:
    /// eligible on-hand − reserved − backordered (backorders are demand) − safety stock.
    pub fn ats(&self, policy: &ChannelPolicy) -> i64 {
        let eligible = self.on_hand_at(policy.eligible_locations.as_deref());
        (eligible - self.reserved - self.backordered - self.safety_stock(&policy.name)).max(0)
    }

    /// Whether the SKU may be sold on `channel` at all.
    pub fn sellable_on(&self, channel: &str) -> bool {
        let active = self.product.as_ref().is_none_or(|p| p.active);
        active && self.override_for(channel).is_none_or(|o| o.enabled)
    }
}

/// The quantity `policy`'s channel publishes for a SKU with `stock`: the SKU's override on the
/// channel first (share, buffer, cap, minimum), the channel's policy for what it leaves out.
pub fn channel_quantity(policy: &ChannelPolicy, stock: &SkuStock) -> i64 {
    if !stock.sellable_on(&policy.name) {
        return 0;
    }
    let over = stock.override_for(&policy.name);
    let share = over.and_then(|o| o.share_pct).unwrap_or(policy.share_pct);
    let buffer = over.and_then(|o| o.buffer).unwrap_or(policy.buffer);
    let max_qty = over.and_then(|o| o.max_qty).or(policy.max_qty);
    let min_publish = over
        .and_then(|o| o.min_publish)
        .unwrap_or(policy.min_publish);
    let ats = stock.ats(policy);
    let mut qty = (share.of_floor(ats) - buffer).max(0);
    if let Some(cap) = max_qty {
        qty = qty.min(cap);
    }
    if qty < min_publish {
        qty = 0;
    }
    qty
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::OversellPolicy;

    fn stock(positions: &[(&str, i64)], reserved: i64, product: Option<ProductInfo>) -> SkuStock {
        SkuStock {
            product,
            positions: positions
                .iter()
                .map(|(l, q)| Position {
                    location: l.to_string(),
                    on_hand: *q,
                    erp_sequence: 1,
                })
                .collect(),
            reserved,
            backordered: 0,
        }
    }

    fn product(units: i64, pct: i64) -> ProductInfo {
        ProductInfo {
            active: true,
            safety_stock_units: units,
            safety_stock_pct: Percent::whole(pct),
            overrides: vec![],
            erp_sequence: 1,
        }
    }

    fn policy(
        share: i64,
        buffer: i64,
        max: Option<i64>,
        min: i64,
        locs: Option<&[&str]>,
    ) -> ChannelPolicy {
        ChannelPolicy {
            name: "amazon".into(),
            share_pct: Percent::whole(share),
            buffer,
            max_qty: max,
            min_publish: min,
            eligible_locations: locs.map(|l| l.iter().map(|s| s.to_string()).collect()),
            oversell_policy: OversellPolicy::Reject,
            soft_hold_ttl_ms: None,
            hard_hold_max_age_ms: 0,
        }
    }

    #[test]
    fn safety_stock_2_units_plus_ceil_10pct_of_45_is_7() {
        // 30 + 15 = 45 on hand; 2 + ceil(4.5) = 7.
        let s = stock(&[("a", 30), ("b", 15)], 0, Some(product(2, 10)));
        assert_eq!(s.safety_stock("amazon"), 7);
    }

    #[test]
    fn ats_is_50_minus_reserved_8_minus_safety_2_is_40_and_negative_on_hand_counts_0() {
        // on-hand 50 and -5 (→ 0); reserved 8; safety 2 → ATS 40.
        let s = stock(&[("a", 50), ("b", -5)], 8, Some(product(2, 0)));
        assert_eq!(s.ats(&policy(100, 0, None, 0, None)), 40);
    }

    #[test]
    fn ats_floors_at_zero_when_reserved_exceeds_stock() {
        let s = stock(&[("a", 3)], 10, None);
        assert_eq!(s.ats(&policy(100, 0, None, 0, None)), 0);
    }

    #[test]
    fn share_40pct_of_ats_33_is_13_minus_buffer_2_is_11() {
        let s = stock(&[("a", 33)], 0, None);
        assert_eq!(channel_quantity(&policy(40, 2, None, 0, None), &s), 11);
    }

    #[test]
    fn cap_50_limits_ats_80_and_min_publish_5_zeroes_4() {
        assert_eq!(
            channel_quantity(
                &policy(100, 0, Some(50), 0, None),
                &stock(&[("a", 80)], 0, None)
            ),
            50
        );
        assert_eq!(
            channel_quantity(&policy(100, 0, None, 5, None), &stock(&[("a", 4)], 0, None)),
            0
        );
        assert_eq!(
            channel_quantity(&policy(100, 0, None, 5, None), &stock(&[("a", 5)], 0, None)),
            5
        );
    }

    #[test]
    fn restricted_channel_sees_only_its_locations_but_all_reservations() {
        // dc 20 + store 10; eligible dc only; reserved 4 (anywhere) → 20 − 4 = 16.
        let s = stock(&[("dc", 20), ("store", 10)], 4, None);
        assert_eq!(
            channel_quantity(&policy(100, 0, None, 0, Some(&["dc"])), &s),
            16
        );
    }

    #[test]
    fn inactive_sku_and_disabled_channel_publish_zero() {
        let mut p = product(0, 0);
        p.active = false;
        assert_eq!(
            channel_quantity(
                &policy(100, 0, None, 0, None),
                &stock(&[("a", 10)], 0, Some(p))
            ),
            0
        );
        let mut p = product(0, 0);
        p.overrides.push(SkuOverride {
            channel: "amazon".into(),
            enabled: false,
            ..SkuOverride::default()
        });
        assert_eq!(
            channel_quantity(
                &policy(100, 0, None, 0, None),
                &stock(&[("a", 10)], 0, Some(p))
            ),
            0
        );
    }

    #[test]
    fn channel_override_replaces_safety_units_5_for_that_channel_only() {
        let mut p = product(1, 0);
        p.overrides.push(SkuOverride {
            channel: "amazon".into(),
            enabled: true,
            safety_stock_units: Some(5),
            ..SkuOverride::default()
        });
        let s = stock(&[("a", 10)], 0, Some(p));
        assert_eq!(s.safety_stock("amazon"), 5);
        assert_eq!(s.safety_stock("ebay"), 1);
        assert_eq!(channel_quantity(&policy(100, 0, None, 0, None), &s), 5);
    }

    #[test]
    fn a_skus_override_replaces_share_buffer_cap_and_minimum_on_its_channel_only() {
        // 80 on hand, safety 12.5 % → ceil(10) = 10; ATS 70. The policy says 100 %, buffer 0:
        // other channels publish 70. The override: 12.5 % share → floor(8.75) = 8, buffer 2
        // → 6, cap 5 → 5; a minimum of 6 would then publish 0.
        let mut p = product(0, 0);
        p.safety_stock_pct = Percent(1250);
        p.overrides.push(SkuOverride {
            channel: "amazon".into(),
            enabled: true,
            share_pct: Some(Percent(1250)),
            buffer: Some(2),
            max_qty: Some(5),
            ..SkuOverride::default()
        });
        let s = stock(&[("a", 80)], 0, Some(p.clone()));
        assert_eq!(s.safety_stock("amazon"), 10);
        assert_eq!(channel_quantity(&policy(100, 0, None, 0, None), &s), 5);
        let mut ebay = policy(100, 0, None, 0, None);
        ebay.name = "ebay".into();
        assert_eq!(channel_quantity(&ebay, &s), 70);
        p.overrides[0].min_publish = Some(6);
        let s = stock(&[("a", 80)], 0, Some(p));
        assert_eq!(channel_quantity(&policy(100, 0, None, 0, None), &s), 0);
    }

    #[test]
    fn no_product_record_means_active_without_safety_stock() {
        assert_eq!(
            channel_quantity(&policy(100, 0, None, 0, None), &stock(&[("a", 7)], 0, None)),
            7
        );
    }
}
