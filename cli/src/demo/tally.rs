//! Tallies of the output topics: orders by status, availability per channel and SKU, the
//! flash-sale SKUs' sell-out, DLQ records by kind.

use std::collections::{BTreeMap, HashMap};

use shelfsync_schemas::{ChannelAvailability, OrderStatusCode};

/// An availability record's effect on one (SKU, channel).
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Shown {
    pub(super) quantity: i64,
    pub(super) peak: i64,
}

/// A flash-sale SKU as the availability topic shows it.
#[derive(Debug, Clone, Default)]
pub(super) struct FlashView {
    /// Per channel: when it first went from > 0 to 0 (event time, ms).
    pub(super) zero_at: BTreeMap<String, i64>,
    /// When every channel first showed 0 at once (event time, ms).
    pub(super) sold_out_at: Option<i64>,
}

/// Tallies of the output topics.
#[derive(Debug, Default)]
pub(super) struct Tally {
    pub(super) status_events: u64,
    /// Latest (revision, status) per order key.
    pub(super) latest: HashMap<String, (i32, OrderStatusCode)>,
    pub(super) validated: u64,
    pub(super) availability: BTreeMap<String, u64>,
    /// Per SKU, per channel.
    pub(super) shown: HashMap<String, BTreeMap<String, Shown>>,
    pub(super) flash: BTreeMap<String, FlashView>,
    pub(super) dlq: BTreeMap<String, u64>,
    pub(super) undecodable: u64,
}

impl Tally {
    pub(super) fn orders(&self, code: OrderStatusCode) -> u64 {
        self.latest.values().filter(|(_, s)| *s == code).count() as u64
    }

    pub(super) fn dlq_total(&self) -> u64 {
        self.dlq.values().sum()
    }

    pub(super) fn at_zero(&self, channel: &str) -> u64 {
        self.shown
            .values()
            .filter(|c| c.get(channel).is_some_and(|s| s.quantity == 0))
            .count() as u64
    }

    pub(super) fn availability(&mut self, a: ChannelAvailability, channels: &[String]) {
        *self.availability.entry(a.channel.clone()).or_default() += 1;
        let per_channel = self.shown.entry(a.sku.clone()).or_default();
        let shown = per_channel.entry(a.channel.clone()).or_default();
        shown.quantity = a.quantity;
        shown.peak = shown.peak.max(a.quantity);
        let Some(flash) = self.flash.get_mut(&a.sku) else {
            return;
        };
        if a.quantity == 0 && shown.peak > 0 {
            flash
                .zero_at
                .entry(a.channel.clone())
                .or_insert(a.event_time);
        }
        let all_zero = channels
            .iter()
            .all(|c| per_channel.get(c).is_some_and(|s| s.quantity == 0));
        let was_up = per_channel.values().any(|s| s.peak > 0);
        if flash.sold_out_at.is_none() && all_zero && was_up {
            flash.sold_out_at = Some(a.event_time);
        }
    }

    /// SKUs outside the flash sale that went from > 0 to 0 on every channel.
    pub(super) fn other_sold_out(&self, channels: &[String]) -> usize {
        self.shown
            .iter()
            .filter(|(sku, _)| !self.flash.contains_key(*sku))
            .filter(|(_, c)| {
                c.values().any(|s| s.peak > 0)
                    && channels
                        .iter()
                        .all(|ch| c.get(ch).is_some_and(|s| s.quantity == 0))
            })
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    pub(super) fn a_flash_sku_is_sold_out_when_every_channel_shows_zero() {
        let channels: Vec<String> = ["a", "b"].iter().map(|s| s.to_string()).collect();
        let mut t = Tally::default();
        t.flash.insert("S".into(), FlashView::default());
        let av = |c: &str, q: i64, ts: i64| ChannelAvailability {
            event_id: String::new(),
            channel: c.into(),
            sku: "S".into(),
            quantity: q,
            version: 1,
            event_time: ts,
        };
        t.availability(av("a", 5, 1), &channels);
        t.availability(av("b", 3, 1), &channels);
        t.availability(av("a", 0, 2), &channels);
        assert_eq!(t.flash["S"].sold_out_at, None);
        t.availability(av("b", 0, 3), &channels);
        assert_eq!(t.flash["S"].sold_out_at, Some(3));
        assert_eq!(t.flash["S"].zero_at["a"], 2);
        assert_eq!(t.at_zero("a"), 1);
    }
}
