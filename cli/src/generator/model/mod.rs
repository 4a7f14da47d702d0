//! The traffic model: the state of a simulated retailer (catalog, stock as the ERP knows it,
//! recent orders) and the records it sends. Pure and deterministic: no I/O, no clock (time
//! comes in as `now`, epoch ms), randomness only from the seeded generator, so the same
//! configuration, seed and topology give the same records.
//!
//! - `catalog`: the products (categories, variants, prices);
//! - `erp`: ERP records: the product master, stock snapshots, receipts, corrections, recounts;
//! - `orders`: channel orders and their repeats, revisions and cancellations.

mod catalog;
mod erp;
mod orders;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_topology::{AdapterKind, TopicId, Topology};

use shelfsync_pipeline::{Error, Result};

use super::GeneratorConfig;
pub(crate) use catalog::Sku;
pub(crate) use orders::{Line, OrderState};

/// Which input topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Target {
    RawOrders,
    ErpInventory,
    ErpProducts,
}

/// What a record is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum EventKind {
    Product,
    Snapshot,
    ErpUpdate,
    NewOrder,
    FlashOrder,
    Duplicate,
    Revision,
    Cancellation,
}

/// One record to produce.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct GenRecord {
    pub(crate) target: Target,
    pub(crate) kind: EventKind,
    pub(crate) key: String,
    pub(crate) value: Vec<u8>,
}

/// A channel of the topology and its share of orders.
#[derive(Debug, Clone)]
pub(crate) struct Channel {
    pub(crate) name: String,
    pub(crate) adapter: AdapterKind,
    weight: u32,
}

/// How many recent orders are kept for repeats, revisions and cancellations.
const RECENT_ORDERS: usize = 2048;

/// The state of the simulated retailer: catalog, stock as the ERP knows it, recent orders.
pub(crate) struct TrafficModel {
    topics: [String; 3],
    channels: Vec<Channel>,
    locations: Vec<String>,
    catalog: Vec<Sku>,
    /// SKU indexes of the flash sale.
    flash: Vec<usize>,
    is_flash: Vec<bool>,
    rng: StdRng,
    /// On-hand per (sku, location), as the ERP counts it.
    on_hand: Vec<i64>,
    /// Last `erp_sequence` per (sku, location).
    erp_seq: Vec<i64>,
    recent: VecDeque<OrderState>,
    next_order: u64,
    next_line: u64,
    /// Order ids of different seeds do not collide (one seed always gives the same ids).
    id_base: u64,
    erp_sequence_base: i64,
    /// Stock ranges of a flash-sale SKU at the first location and at the others.
    flash_stock: (std::ops::RangeInclusive<i64>, std::ops::RangeInclusive<i64>),
    duplicate_pct: u32,
    cancel_pct: u32,
    revision_pct: u32,
}

/// Stock of a flash-sale SKU: about a fifth of the units the sale will ask for (1.5 units per
/// order on average), at most 20 + 5, so that every flash-sale SKU sells out early in the sale
/// whatever its length.
fn flash_stock(
    cfg: &GeneratorConfig,
) -> (std::ops::RangeInclusive<i64>, std::ops::RangeInclusive<i64>) {
    let (from, to) = cfg.flash_window();
    let orders = cfg.flash_orders_per_sec * (to - from).as_secs_f64();
    let demand = orders * 1.5 / f64::from(cfg.flash_skus.max(1));
    let dc = ((demand / 4.0) as i64).clamp(3, 20);
    let store = ((demand / 16.0) as i64).clamp(1, 5);
    ((dc * 3 / 5).max(2)..=dc, 1..=store)
}

fn encode<T: AvroRecord>(value: &T) -> Result<Vec<u8>> {
    avro::encode(value, Framing::SingleObject)
        .map_err(|e| Error::Bug(format!("generator record does not encode: {e}")))
}

impl TrafficModel {
    /// The model of `cfg` over the topology's channels and locations.
    ///
    /// # Errors
    /// [`Error::Config`] for a topology without channels or locations.
    pub(crate) fn new(topology: &Topology, cfg: &GeneratorConfig) -> Result<Self> {
        if topology.channels.is_empty() || topology.locations.is_empty() {
            return Err(Error::Config(
                "the topology needs at least one channel and one location to generate traffic"
                    .into(),
            ));
        }
        let mut rng = StdRng::seed_from_u64(cfg.traffic.seed);
        let generic = topology
            .channels
            .iter()
            .filter(|c| matches!(c.adapter, AdapterKind::Generic | AdapterKind::Ebay))
            .count()
            .max(1) as u32;
        // Order shares by adapter: Shopify and Amazon 35% each, Walmart 20%, the generic
        // channels (eBay, stores…) 10% between them.
        let channels = topology
            .channels
            .iter()
            .map(|c| Channel {
                name: c.name.clone(),
                adapter: c.adapter,
                weight: match c.adapter {
                    AdapterKind::Shopify | AdapterKind::Amazon => 350,
                    AdapterKind::Walmart => 200,
                    AdapterKind::Generic | AdapterKind::Ebay => (100 / generic).max(1),
                },
            })
            .collect();
        let skus = cfg.traffic.skus as usize;
        let catalog = catalog::skus(&mut rng, skus);
        // Flash-sale SKUs: distinct, drawn from the whole catalog.
        let mut is_flash = vec![false; skus];
        let mut flash = Vec::new();
        while flash.len() < cfg.flash_skus as usize {
            let i = rng.random_range(0..skus);
            if !is_flash[i] {
                is_flash[i] = true;
                flash.push(i);
            }
        }
        let locations: Vec<String> = topology.location_ids().map(str::to_string).collect();
        let on_hand = vec![0; skus * locations.len()];
        let erp_seq = vec![0; skus * locations.len()];
        Ok(Self {
            topics: [
                topology.topic_name(TopicId::RawOrders),
                topology.topic_name(TopicId::ErpInventory),
                topology.topic_name(TopicId::ErpProducts),
            ],
            channels,
            locations,
            catalog,
            flash,
            is_flash,
            rng,
            on_hand,
            erp_seq,
            recent: VecDeque::with_capacity(RECENT_ORDERS),
            next_order: 0,
            next_line: 0,
            id_base: (cfg.traffic.seed % 997) * 10_000_000,
            erp_sequence_base: cfg.erp_sequence_base,
            flash_stock: flash_stock(cfg),
            duplicate_pct: u32::from(cfg.traffic.duplicate_pct),
            cancel_pct: u32::from(cfg.traffic.cancel_pct),
            revision_pct: u32::from(cfg.traffic.revision_pct),
        })
    }

    /// The name of the topic of `target`.
    pub(crate) fn topic(&self, target: Target) -> &str {
        match target {
            Target::RawOrders => &self.topics[0],
            Target::ErpInventory => &self.topics[1],
            Target::ErpProducts => &self.topics[2],
        }
    }

    /// The flash-sale SKUs (empty without a flash sale).
    pub(crate) fn flash_sku_names(&self) -> Vec<String> {
        self.flash
            .iter()
            .map(|&i| self.catalog[i].name.clone())
            .collect()
    }

    /// Whether the run has a flash sale.
    pub(crate) fn has_flash_sale(&self) -> bool {
        !self.flash.is_empty()
    }

    /// SKUs in the catalog.
    pub(crate) fn sku_count(&self) -> usize {
        self.catalog.len()
    }

    fn position(&self, sku: usize, location: usize) -> usize {
        sku * self.locations.len() + location
    }
}
