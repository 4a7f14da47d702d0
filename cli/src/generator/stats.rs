//! What the generator is doing and has sent: its phase, live counters shared with whoever shows
//! progress (the demo's view, the bench), and the report of a finished run.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::time::Duration;

use super::model::EventKind;

/// What the generator is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GeneratorPhase {
    /// Not started.
    Idle,
    /// Writing the product master and the stock snapshots.
    Catalog,
    /// Catalog written and flushed; traffic not started yet.
    CatalogDone,
    /// Steady order and ERP traffic.
    Steady,
    /// The flash sale runs (on top of steady traffic).
    FlashSale,
    /// Traffic over; waiting for the broker to acknowledge the last records.
    Flushing,
    /// Done.
    Done,
}

impl GeneratorPhase {
    fn from_u8(v: u8) -> Self {
        match v {
            1 => Self::Catalog,
            2 => Self::CatalogDone,
            3 => Self::Steady,
            4 => Self::FlashSale,
            5 => Self::Flushing,
            6 => Self::Done,
            _ => Self::Idle,
        }
    }

    fn as_u8(self) -> u8 {
        match self {
            Self::Idle => 0,
            Self::Catalog => 1,
            Self::CatalogDone => 2,
            Self::Steady => 3,
            Self::FlashSale => 4,
            Self::Flushing => 5,
            Self::Done => 6,
        }
    }

    /// A short name for progress lines.
    pub fn label(self) -> &'static str {
        match self {
            Self::Idle => "starting",
            Self::Catalog => "loading catalog",
            Self::CatalogDone => "catalog sent, pipeline taking it in",
            Self::Steady => "steady traffic",
            Self::FlashSale => "FLASH SALE",
            Self::Flushing => "flushing",
            Self::Done => "done",
        }
    }
}

/// Live counters of what the generator sent, shared with whoever shows progress.
///
/// These are the generator's intentions (records handed to the producer), not what the
/// pipeline did with them.
#[derive(Debug, Default)]
pub struct GeneratorStats {
    phase: AtomicU8,
    /// Product master records.
    pub products: AtomicU64,
    /// Initial stock snapshots.
    pub snapshots: AtomicU64,
    /// ERP updates during traffic (receipts, corrections, recounts).
    pub erp_updates: AtomicU64,
    /// New orders (steady traffic).
    pub new_orders: AtomicU64,
    /// New orders of the flash sale.
    pub flash_orders: AtomicU64,
    /// Repeated deliveries of an earlier payload.
    pub duplicates: AtomicU64,
    /// Revisions of an earlier order.
    pub revisions: AtomicU64,
    /// Cancellations.
    pub cancellations: AtomicU64,
    /// Records the broker acknowledged.
    pub delivered: AtomicU64,
    /// Records the broker refused for good.
    pub failed: AtomicU64,
    /// Wall clock (epoch ms) of the first flash-sale order; 0 before.
    pub flash_started_ms: AtomicI64,
    /// Wall clock (epoch ms) of the last flash-sale order so far; 0 before.
    pub flash_ended_ms: AtomicI64,
    /// Set by whoever watches the pipeline to hold traffic back: while it is set, nothing is
    /// sent and the schedule stands still (the run gets longer; what is sent stays the same
    /// sequence).
    pub hold: AtomicBool,
    /// Milliseconds of traffic time spent held back.
    pub held_ms: AtomicU64,
}

/// A copy of [`GeneratorStats`] at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GeneratorCounts {
    /// Product master records.
    pub products: u64,
    /// Initial stock snapshots.
    pub snapshots: u64,
    /// ERP updates during traffic.
    pub erp_updates: u64,
    /// New orders (steady traffic).
    pub new_orders: u64,
    /// New orders of the flash sale.
    pub flash_orders: u64,
    /// Repeated deliveries.
    pub duplicates: u64,
    /// Revisions.
    pub revisions: u64,
    /// Cancellations.
    pub cancellations: u64,
    /// Records acknowledged by the broker.
    pub delivered: u64,
    /// Records refused for good.
    pub failed: u64,
}

impl GeneratorCounts {
    /// Raw order records of every kind.
    pub fn order_records(&self) -> u64 {
        self.new_orders + self.flash_orders + self.duplicates + self.revisions + self.cancellations
    }

    /// Every record sent.
    pub fn records(&self) -> u64 {
        self.products + self.snapshots + self.erp_updates + self.order_records()
    }
}

impl GeneratorStats {
    /// The current phase.
    pub fn phase(&self) -> GeneratorPhase {
        GeneratorPhase::from_u8(self.phase.load(Ordering::Relaxed))
    }

    pub(super) fn set_phase(&self, phase: GeneratorPhase) {
        self.phase.store(phase.as_u8(), Ordering::Relaxed);
    }

    /// The counters now.
    pub fn snapshot(&self) -> GeneratorCounts {
        let g = |a: &AtomicU64| a.load(Ordering::Relaxed);
        GeneratorCounts {
            products: g(&self.products),
            snapshots: g(&self.snapshots),
            erp_updates: g(&self.erp_updates),
            new_orders: g(&self.new_orders),
            flash_orders: g(&self.flash_orders),
            duplicates: g(&self.duplicates),
            revisions: g(&self.revisions),
            cancellations: g(&self.cancellations),
            delivered: g(&self.delivered),
            failed: g(&self.failed),
        }
    }

    pub(super) fn count(&self, kind: EventKind) {
        let counter = match kind {
            EventKind::Product => &self.products,
            EventKind::Snapshot => &self.snapshots,
            EventKind::ErpUpdate => &self.erp_updates,
            EventKind::NewOrder => &self.new_orders,
            EventKind::FlashOrder => &self.flash_orders,
            EventKind::Duplicate => &self.duplicates,
            EventKind::Revision => &self.revisions,
            EventKind::Cancellation => &self.cancellations,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a finished run sent.
#[derive(Debug, Clone)]
pub struct GeneratorReport {
    /// Final counters.
    pub counts: GeneratorCounts,
    /// Traffic time (catalog excluded).
    pub elapsed: Duration,
    /// The flash-sale SKUs.
    pub flash_skus: Vec<String>,
    /// True when the run was stopped before its duration ended.
    pub stopped_early: bool,
}

impl std::fmt::Display for GeneratorReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let c = &self.counts;
        writeln!(
            f,
            "sent {} records in {:.1} s{}: {} products, {} stock snapshots, {} ERP updates",
            c.records(),
            self.elapsed.as_secs_f64(),
            if self.stopped_early {
                " (stopped early)"
            } else {
                ""
            },
            c.products,
            c.snapshots,
            c.erp_updates
        )?;
        writeln!(
            f,
            "orders: {} new, {} flash sale, {} repeated deliveries, {} revisions, {} cancellations",
            c.new_orders, c.flash_orders, c.duplicates, c.revisions, c.cancellations
        )?;
        writeln!(
            f,
            "acknowledged by the broker: {}, refused: {}",
            c.delivered, c.failed
        )?;
        write!(f, "flash-sale SKUs: {}", self.flash_skus.join(", "))
    }
}
