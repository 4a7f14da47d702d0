//! ERP records: the product master and the stock snapshots of the catalog, then receipts,
//! count corrections and recounts, with an `erp_sequence` that grows by one per (SKU,
//! location).

use rand::Rng;
use shelfsync_schemas::{
    AdjustmentReason, ChannelOverride, InventoryChange, InventoryChangeKind, ProductChange,
};

use shelfsync_pipeline::Result;

use super::{encode, EventKind, GenRecord, Target, TrafficModel};

impl TrafficModel {
    /// The product master for every SKU, then a stock snapshot for every (SKU, location).
    pub(crate) fn catalog(&mut self, now: i64) -> Result<Vec<GenRecord>> {
        let mut out = Vec::with_capacity(self.catalog.len() * (1 + self.locations.len()));
        for i in 0..self.catalog.len() {
            let flash = self.is_flash[i];
            // 1% of SKUs are discontinued (inactive: 0 everywhere); 3% are kept off one channel.
            let roll = self.rng.random_range(0..100);
            let active = flash || roll != 0;
            let mut overrides = Vec::new();
            if !flash && (1..4).contains(&roll) {
                let channel = self.rng.random_range(0..self.channels.len());
                overrides.push(ChannelOverride {
                    channel: self.channels[channel].name.clone(),
                    enabled: false,
                    safety_stock_units: None,
                    safety_stock_pct: None,
                    safety_stock_percent: None,
                    share_pct: None,
                    buffer: None,
                    max_qty: None,
                    min_publish: None,
                });
            }
            let product = ProductChange {
                sku: self.catalog[i].name.clone(),
                active,
                safety_stock_units: if flash {
                    0
                } else {
                    self.rng.random_range(0..=3)
                },
                safety_stock_pct: if flash {
                    0
                } else {
                    [0, 0, 5, 10][self.rng.random_range(0..4)]
                },
                channel_overrides: overrides,
                erp_sequence: 1,
                event_time: now,
                safety_stock_percent: None,
            };
            out.push(GenRecord {
                target: Target::ErpProducts,
                kind: EventKind::Product,
                key: product.sku.clone(),
                value: encode(&product)?,
            });
        }
        for i in 0..self.catalog.len() {
            for loc in 0..self.locations.len() {
                // The first location is the distribution center; the others are stores.
                let qty = match (self.is_flash[i], loc) {
                    (true, 0) => self.rng.random_range(self.flash_stock.0.clone()),
                    (true, _) => self.rng.random_range(self.flash_stock.1.clone()),
                    (false, 0) => self.rng.random_range(20..=300),
                    (false, _) => self.rng.random_range(0..=40),
                };
                out.push(self.stock_record(
                    i,
                    loc,
                    InventoryChangeKind::SNAPSHOT,
                    qty,
                    None,
                    now,
                )?);
            }
        }
        Ok(out)
    }

    fn stock_record(
        &mut self,
        sku: usize,
        loc: usize,
        kind: InventoryChangeKind,
        quantity: i64,
        reason: Option<AdjustmentReason>,
        now: i64,
    ) -> Result<GenRecord> {
        let pos = self.position(sku, loc);
        self.erp_seq[pos] += 1;
        match kind {
            InventoryChangeKind::SNAPSHOT => self.on_hand[pos] = quantity,
            InventoryChangeKind::ADJUSTMENT => self.on_hand[pos] += quantity,
        }
        let change = InventoryChange {
            sku: self.catalog[sku].name.clone(),
            location: self.locations[loc].clone(),
            kind,
            quantity,
            erp_sequence: self.erp_sequence_base + self.erp_seq[pos],
            reason,
            order_key: None,
            line_id: None,
            event_time: now,
        };
        Ok(GenRecord {
            target: Target::ErpInventory,
            kind: if self.erp_seq[pos] == 1 {
                EventKind::Snapshot
            } else {
                EventKind::ErpUpdate
            },
            key: change.sku.clone(),
            value: encode(&change)?,
        })
    }

    /// A receipt, a count correction or a recount, for a SKU that is not in the flash sale.
    pub(crate) fn next_erp_event(&mut self, now: i64) -> Result<GenRecord> {
        let sku = self.pick_sku();
        // Receipts mostly arrive at the distribution center.
        let loc = if self.locations.len() > 1 && self.rng.random_range(0..4) == 0 {
            self.rng.random_range(1..self.locations.len())
        } else {
            0
        };
        let on_hand = self.on_hand[self.position(sku, loc)];
        let roll = self.rng.random_range(0..100);
        if roll < 30 {
            let qty = self.rng.random_range(5..=40);
            self.stock_record(
                sku,
                loc,
                InventoryChangeKind::ADJUSTMENT,
                qty,
                Some(AdjustmentReason::RECEIPT),
                now,
            )
        } else if roll < 70 {
            // Damage, shrinkage or a found unit; never below zero.
            let delta = [-3, -2, -1, -1, 1, 2][self.rng.random_range(0..6)];
            let delta = delta.max(-on_hand);
            self.stock_record(
                sku,
                loc,
                InventoryChangeKind::ADJUSTMENT,
                delta,
                Some(AdjustmentReason::CORRECTION),
                now,
            )
        } else {
            // A cycle count: usually confirms the ERP's number, sometimes finds one unit less.
            let found = if self.rng.random_range(0..5) == 0 {
                (on_hand - 1).max(0)
            } else {
                on_hand
            };
            self.stock_record(sku, loc, InventoryChangeKind::SNAPSHOT, found, None, now)
        }
    }
}
