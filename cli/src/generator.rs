//! `shelfsync generate`: a seeded, deterministic retail traffic generator.
//!
//! It writes to the three input topics of a topology what a real retailer's systems would:
//!
//! 1. **Catalog** (first, flushed before any order): one product master record
//!    (`ProductChange`, Avro) per SKU on `retail.erp.products`, then an ERP stock `SNAPSHOT`
//!    (`InventoryChange`, Avro) for every (SKU, location) on `retail.erp.inventory`, both keyed
//!    by SKU and single-object encoded.
//! 2. **Traffic** for [`GeneratorConfig::duration`]:
//!    - raw channel orders on `retail.channel.orders.raw`, keyed by order key
//!      `channel:order_id`, as JSON envelopes `{channel, delivery_id, received_at, payload}` whose
//!      payload has the channel's real shape: Shopify order webhooks, Amazon combined
//!      getOrder + getOrderItems bodies, Walmart purchase orders and the generic shape (eBay and
//!      any other `generic` channel). Which shape a channel gets comes from its adapter in the
//!      topology;
//!    - among them repeated webhook deliveries (the same payload with a new `delivery_id`;
//!      sometimes an older revision's payload, like a late retry), revisions (an unpaid order gets
//!      paid, a line is reduced or removed, a Walmart line is partly cancelled) and cancellations;
//!    - ERP updates: receipts and count corrections (`ADJUSTMENT`) and recounts (`SNAPSHOT`),
//!      with an `erp_sequence` that grows by one per (SKU, location);
//!    - a **flash sale**: from 30% to 60% of the run, extra orders for a handful of SKUs that have
//!      little stock and sell nowhere else, so they sell out and the pipeline rejects or
//!      backorders what it cannot fill.
//!
//! Deterministic: the sequence of records (topics, keys, payloads) depends only on the
//! configuration, the seed and the topology's channels and locations. Wall-clock time goes only
//! into record timestamps, `received_at` and the payloads' own date fields. Events follow a
//! fixed schedule (event *n* of a stream is due `n / rate` seconds into the run); when the
//! producer falls behind, the generator catches up instead of skipping events, so a run that is
//! not stopped early always produces the whole sequence.
//!
//! What it does not produce: ERP shipments. A shipment references an order line the ERP
//! accepted, and only the pipeline's validated-order stream says which lines those are.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use serde_json::{json, Map, Value};
use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_schemas::{
    AdjustmentReason, ChannelOverride, InventoryChange, InventoryChangeKind, ProductChange,
};
use shelfsync_topology::{AdapterName, TopicId, Topology};
use tracing::{info, warn};

use shelfsync_pipeline::clock::now_ms;
use shelfsync_pipeline::kafka;
use shelfsync_pipeline::{Error, Result};

/// The traffic flags that `generate`, `demo` and `bench` share (flattened into each): catalog
/// size, rates, the mix of order records, duration and seed.
///
/// The defaults written here are those of `generate` and `demo`. `bench` keeps its own larger
/// defaults for `--skus` (100000), `--rate` (500) and `--erp-rate` (5000), set on its command
/// with `mut_arg` ([`crate::bench::BenchArgs`]); its tests check them.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct TrafficArgs {
    /// SKUs in the catalog. Each gets a product record and a stock snapshot per location.
    #[arg(long = "skus", default_value_t = 2000)]
    pub skus: u32,
    /// Raw order records per second in steady state: new orders, repeated deliveries, revisions
    /// and cancellations together (the flash sale comes on top).
    #[arg(long = "rate", default_value_t = 20.0)]
    pub orders_per_sec: f64,
    /// ERP stock updates per second (receipts, count corrections, recounts).
    #[arg(long = "erp-rate", default_value_t = 5.0)]
    pub erp_updates_per_sec: f64,
    /// Percentage of order records that repeat an earlier webhook delivery (same payload, new
    /// delivery id). The pipeline must drop every one of them.
    #[arg(long, default_value_t = 10)]
    pub duplicate_pct: u8,
    /// Percentage of order records that cancel an earlier order.
    #[arg(long, default_value_t = 5)]
    pub cancel_pct: u8,
    /// Percentage of order records that revise an earlier order (paid, a line reduced or
    /// removed).
    #[arg(long, default_value_t = 8)]
    pub revision_pct: u8,
    /// How long to produce traffic after the catalog ("60s", "5m"); time held back (see
    /// [`GeneratorStats::hold`]) does not count.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Seed of the random generator: the same seed, configuration and topology give the same
    /// records.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
}

impl Default for TrafficArgs {
    fn default() -> Self {
        Self {
            skus: 2000,
            orders_per_sec: 20.0,
            erp_updates_per_sec: 5.0,
            duplicate_pct: 10,
            cancel_pct: 5,
            revision_pct: 8,
            duration: Duration::from_secs(60),
            seed: 42,
        }
    }
}

/// What to generate, and how fast.
///
/// Also the flags of `shelfsync generate` and `shelfsync demo`: the shared [`TrafficArgs`] plus
/// the flash sale and the ERP sequence base.
#[derive(Debug, Clone, PartialEq, clap::Args)]
pub struct GeneratorConfig {
    /// Catalog size, rates, mix, duration and seed.
    #[command(flatten)]
    pub traffic: TrafficArgs,
    /// SKUs in the flash sale (0: no flash sale). They have little stock and sell only in the
    /// sale, from 30% to 60% of the run.
    #[arg(long, default_value_t = 5)]
    pub flash_skus: u32,
    /// Extra orders per second while the flash sale runs, all for the flash-sale SKUs.
    #[arg(long, default_value_t = 20.0)]
    pub flash_orders_per_sec: f64,
    /// Added to every `erp_sequence`. The ERP's sequences only grow, so when generating again
    /// into a pipeline that has seen an earlier run, give a larger base (e.g. the Unix time) or
    /// the new stock records are ignored as stale.
    #[arg(long, default_value_t = 0)]
    pub erp_sequence_base: i64,
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        Self {
            traffic: TrafficArgs::default(),
            flash_skus: 5,
            flash_orders_per_sec: 20.0,
            erp_sequence_base: 0,
        }
    }
}

/// Parses a duration with a unit ("100ms", "60s", "5m").
///
/// # Errors
/// A message naming the text when it is not a duration.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("invalid duration {text:?}: {e} (write a number and a unit, e.g. \"60s\")")
    })
}

impl GeneratorConfig {
    /// Checks every field; the error names the flag and what is allowed.
    ///
    /// # Errors
    /// [`Error::Config`] for the first bad field.
    pub fn validate(&self) -> Result<()> {
        let t = &self.traffic;
        let bad = |msg: String| Err(Error::Config(msg));
        if !(10..=10_000_000).contains(&t.skus) {
            return bad(format!("--skus is {}; allowed: 10 to 10000000", t.skus));
        }
        for (flag, rate) in [
            ("--rate", t.orders_per_sec),
            ("--erp-rate", t.erp_updates_per_sec),
            ("--flash-orders-per-sec", self.flash_orders_per_sec),
        ] {
            if !rate.is_finite() || !(0.0..=1_000_000.0).contains(&rate) {
                return bad(format!(
                    "{flag} is {rate}; allowed: 0 to 1000000 per second"
                ));
            }
        }
        let pct = u32::from(t.duplicate_pct) + u32::from(t.cancel_pct) + u32::from(t.revision_pct);
        if pct > 100 {
            return bad(format!(
                "--duplicate-pct + --cancel-pct + --revision-pct is {pct}; allowed: at most 100"
            ));
        }
        if !(0..=i64::MAX / 2).contains(&self.erp_sequence_base) {
            return bad(format!(
                "--erp-sequence-base is {}; allowed: 0 to {}",
                self.erp_sequence_base,
                i64::MAX / 2
            ));
        }
        if t.duration.is_zero() {
            return bad("--duration is 0; give a positive duration such as \"60s\"".into());
        }
        if self.flash_skus > t.skus / 10 {
            return bad(format!(
                "--flash-skus is {} for {} SKUs; allowed: at most a tenth of --skus",
                self.flash_skus, t.skus
            ));
        }
        Ok(())
    }

    /// The flash sale's window, as offsets into the run: from 30% to 60% of `duration`.
    pub fn flash_window(&self) -> (Duration, Duration) {
        let duration = self.traffic.duration;
        (duration.mul_f64(0.3), duration.mul_f64(0.6))
    }
}

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

    fn set_phase(&self, phase: GeneratorPhase) {
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

    fn count(&self, kind: EventKind) {
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

/// Runs the whole generator: catalog, then traffic until `cfg.traffic.duration` ends or `stop` is set.
///
/// # Errors
/// [`Error::Config`] for a bad configuration; [`Error::Kafka`] when the producer cannot be
/// created, a record is refused (unknown topic, too large) or the broker does not acknowledge
/// the records within a minute of the end.
pub fn run_generator(
    topology: &Topology,
    cfg: &GeneratorConfig,
    stop: &AtomicBool,
    stats: &GeneratorStats,
) -> Result<GeneratorReport> {
    let mut generator = Generator::new(topology, cfg.clone())?;
    generator.load_catalog(stop, stats)?;
    generator.run_traffic(stop, stats)
}

/// [`run_generator`] for the command line: logs progress every five seconds; `catalog: false`
/// skips the product master and stock snapshots.
///
/// # Errors
/// As [`run_generator`].
pub fn run_with_progress(
    topology: &Topology,
    cfg: &GeneratorConfig,
    catalog: bool,
    stop: &AtomicBool,
) -> Result<GeneratorReport> {
    let stats = GeneratorStats::default();
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            let mut last = Instant::now();
            while !done.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(100));
                if last.elapsed() >= Duration::from_secs(5) {
                    last = Instant::now();
                    let c = stats.snapshot();
                    info!(
                        phase = stats.phase().label(),
                        sent = c.records(),
                        acknowledged = c.delivered,
                        orders = c.order_records(),
                        erp_updates = c.erp_updates,
                        "generating"
                    );
                }
            }
        });
        let result = (|| {
            let mut generator = Generator::new(topology, cfg.clone())?;
            if catalog {
                generator.load_catalog(stop, &stats)?;
            }
            generator.run_traffic(stop, &stats)
        })();
        done.store(true, Ordering::Relaxed);
        result
    })
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

/// The generator: the traffic model plus an idempotent producer.
///
/// Split in two steps ([`load_catalog`](Self::load_catalog), [`run_traffic`](Self::run_traffic))
/// so that a caller can wait for the pipeline to take in the catalog before orders arrive.
pub struct Generator {
    model: TrafficModel,
    producer: ThreadedProducer<DeliveryCounter>,
    deliveries: DeliveryCounter,
    cfg: GeneratorConfig,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("cfg", &self.cfg)
            .finish_non_exhaustive()
    }
}

/// Counts the broker's acknowledgements.
#[derive(Debug, Default, Clone)]
struct DeliveryCounter {
    delivered: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
}

impl ClientContext for DeliveryCounter {
    fn error(&self, error: KafkaError, reason: &str) {
        kafka::log_client_error(&error, reason);
    }
}

impl ProducerContext for DeliveryCounter {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(_) => self.delivered.fetch_add(1, Ordering::Relaxed),
            Err((e, _)) => {
                if self.failed.fetch_add(1, Ordering::Relaxed) == 0 {
                    warn!(error = %e, "the broker refused a generated record");
                }
                0
            }
        };
    }
}

impl Generator {
    /// Builds the catalog and the producer (idempotent, `acks=all`, `murmur2_random`, plus the
    /// topology's pass-through properties).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or a topology without channels or locations;
    /// [`Error::Kafka`] when librdkafka refuses the producer configuration.
    pub fn new(topology: &Topology, cfg: GeneratorConfig) -> Result<Self> {
        cfg.validate()?;
        let model = TrafficModel::new(topology, &cfg)?;
        let deliveries = DeliveryCounter::default();
        let producer: ThreadedProducer<DeliveryCounter> =
            kafka::producer_config(topology).create_with_context(deliveries.clone())?;
        Ok(Self {
            model,
            producer,
            deliveries,
            cfg,
        })
    }

    /// The flash-sale SKUs (empty without a flash sale).
    pub fn flash_skus(&self) -> Vec<String> {
        self.model.flash_sku_names()
    }

    /// Writes the product master and the stock snapshots, then waits until the broker has
    /// acknowledged them.
    ///
    /// # Errors
    /// As [`run_generator`].
    pub fn load_catalog(&mut self, stop: &AtomicBool, stats: &GeneratorStats) -> Result<()> {
        stats.set_phase(GeneratorPhase::Catalog);
        let records = self.model.catalog(now_ms())?;
        info!(records = records.len(), "writing the catalog");
        for rec in records {
            if stop.load(Ordering::Relaxed) {
                break;
            }
            self.send(rec, now_ms(), stats)?;
        }
        self.flush(stop, stats)?;
        stats.set_phase(GeneratorPhase::CatalogDone);
        Ok(())
    }

    /// Produces traffic for the configured duration (or until `stop`), then waits for the
    /// broker's acknowledgements.
    ///
    /// # Errors
    /// As [`run_generator`].
    pub fn run_traffic(
        &mut self,
        stop: &AtomicBool,
        stats: &GeneratorStats,
    ) -> Result<GeneratorReport> {
        let total = self.cfg.traffic.duration.as_secs_f64();
        let (flash_from, flash_to) = self.cfg.flash_window();
        let (flash_from, flash_to) = if self.model.flash.is_empty() {
            (f64::INFINITY, f64::INFINITY)
        } else {
            (flash_from.as_secs_f64(), flash_to.as_secs_f64())
        };
        let interval = |rate: f64| {
            if rate > 0.0 {
                1.0 / rate
            } else {
                f64::INFINITY
            }
        };
        let dt = [
            interval(self.cfg.traffic.orders_per_sec),
            interval(self.cfg.traffic.erp_updates_per_sec),
            interval(self.cfg.flash_orders_per_sec),
        ];
        // Event n of stream s is due at start[s] + n * dt[s] seconds into the run.
        let start = [0.0, dt[1] / 2.0, flash_from];
        let end = [total, total, flash_to.min(total)];
        let mut n = [0u64; 3];
        stats.set_phase(GeneratorPhase::Steady);
        let began = Instant::now();
        let mut held = Duration::ZERO;
        let mut stopped_early = false;
        loop {
            if stop.load(Ordering::Relaxed) {
                stopped_early = true;
                break;
            }
            if stats.hold.load(Ordering::Relaxed) {
                let t = Instant::now();
                std::thread::sleep(Duration::from_millis(20));
                held += t.elapsed();
                stats.held_ms.store(
                    u64::try_from(held.as_millis()).unwrap_or(u64::MAX),
                    Ordering::Relaxed,
                );
                continue;
            }
            // The earliest due event over the three streams.
            let next = (0..3)
                .map(|s| (s, start[s] + n[s] as f64 * dt[s]))
                .filter(|&(s, at)| at < end[s])
                .min_by(|a, b| a.1.total_cmp(&b.1));
            let Some((stream, at)) = next else { break };
            // Schedule time: wall time minus the time held back.
            let now = began.elapsed().saturating_sub(held).as_secs_f64();
            if at > now {
                std::thread::sleep(Duration::from_secs_f64((at - now).min(0.02)));
                continue;
            }
            let flash_on = at >= flash_from && at < flash_to;
            stats.set_phase(if flash_on {
                GeneratorPhase::FlashSale
            } else {
                GeneratorPhase::Steady
            });
            let ts = now_ms();
            let rec = match stream {
                0 => self.model.next_order_event(ts)?,
                1 => self.model.next_erp_event(ts)?,
                _ => {
                    let _ = stats.flash_started_ms.compare_exchange(
                        0,
                        ts,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    );
                    stats.flash_ended_ms.store(ts, Ordering::Relaxed);
                    self.model.next_flash_order(ts)?
                }
            };
            n[stream] += 1;
            self.send(rec, ts, stats)?;
        }
        let elapsed = began.elapsed();
        stats.set_phase(GeneratorPhase::Flushing);
        self.flush(stop, stats)?;
        stats.set_phase(GeneratorPhase::Done);
        Ok(GeneratorReport {
            counts: stats.snapshot(),
            elapsed,
            flash_skus: self.flash_skus(),
            stopped_early,
        })
    }

    fn send(&self, rec: GenRecord, ts: i64, stats: &GeneratorStats) -> Result<()> {
        let topic = self.model.topic(rec.target);
        let mut record: BaseRecord<'_, str, [u8], ()> = BaseRecord::to(topic)
            .key(rec.key.as_str())
            .payload(rec.value.as_slice())
            .timestamp(ts);
        loop {
            match self.producer.send(record) {
                Ok(()) => break,
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err((e, _)) => return Err(Error::Kafka(e)),
            }
        }
        stats.count(rec.kind);
        self.copy_deliveries(stats);
        Ok(())
    }

    fn copy_deliveries(&self, stats: &GeneratorStats) {
        stats.delivered.store(
            self.deliveries.delivered.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
        stats.failed.store(
            self.deliveries.failed.load(Ordering::Relaxed),
            Ordering::Relaxed,
        );
    }

    /// Waits for every record to be acknowledged: up to a minute, or 10 s once `stop` is set.
    fn flush(&self, stop: &AtomicBool, stats: &GeneratorStats) -> Result<()> {
        let began = Instant::now();
        loop {
            let result = self.producer.flush(Duration::from_millis(500));
            self.copy_deliveries(stats);
            match result {
                Ok(()) => break,
                Err(e) => {
                    let limit = if stop.load(Ordering::Relaxed) { 10 } else { 60 };
                    if began.elapsed() > Duration::from_secs(limit) {
                        return Err(e.into());
                    }
                }
            }
        }
        let failed = self.deliveries.failed.load(Ordering::Relaxed);
        if failed > 0 {
            warn!(failed, "records the broker refused for good");
        }
        Ok(())
    }
}

/// One record of the traffic model: the input topic it is for, its key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// `RawOrders`, `ErpInventory` or `ErpProducts`.
    pub topic: TopicId,
    /// Record key (order key or SKU).
    pub key: String,
    /// Record value: a raw channel envelope (JSON) or a single-object Avro ERP record.
    pub value: Vec<u8>,
}

/// The generator's traffic model without a producer: the records `shelfsync generate` would
/// send, pulled one at a time with a caller-supplied clock. The benchmarks feed them to the
/// stages in process, so that micro-benchmarks and the end-to-end benchmark see one workload.
pub struct TrafficSource {
    model: TrafficModel,
}

impl std::fmt::Debug for TrafficSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficSource")
            .field("skus", &self.model.catalog.len())
            .finish_non_exhaustive()
    }
}

impl TrafficSource {
    /// The model of `cfg` (its rates and duration are not used: the caller decides the pace).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or a topology without channels or locations.
    pub fn new(topology: &Topology, cfg: &GeneratorConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            model: TrafficModel::new(topology, cfg)?,
        })
    }

    fn record(&self, rec: GenRecord) -> SourceRecord {
        SourceRecord {
            topic: match rec.target {
                Target::RawOrders => TopicId::RawOrders,
                Target::ErpInventory => TopicId::ErpInventory,
                Target::ErpProducts => TopicId::ErpProducts,
            },
            key: rec.key,
            value: rec.value,
        }
    }

    /// The product master of every SKU, then a stock snapshot of every (SKU, location).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn catalog(&mut self, now_ms: i64) -> Result<Vec<SourceRecord>> {
        let records = self.model.catalog(now_ms)?;
        Ok(records.into_iter().map(|r| self.record(r)).collect())
    }

    /// The next steady-traffic order record (new order, repeat, revision or cancellation).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn next_order(&mut self, now_ms: i64) -> Result<SourceRecord> {
        let rec = self.model.next_order_event(now_ms)?;
        Ok(self.record(rec))
    }

    /// The next ERP stock update (receipt, correction or recount).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn next_erp_update(&mut self, now_ms: i64) -> Result<SourceRecord> {
        let rec = self.model.next_erp_event(now_ms)?;
        Ok(self.record(rec))
    }
}

// ---------------------------------------------------------------------------------------------
// The traffic model: pure and deterministic (no I/O); the clock comes in as `now_ms`.

/// Which input topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Target {
    RawOrders,
    ErpInventory,
    ErpProducts,
}

/// What a record is, for the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum EventKind {
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
struct GenRecord {
    target: Target,
    kind: EventKind,
    key: String,
    value: Vec<u8>,
}

/// A catalog entry.
#[derive(Debug, Clone)]
struct Sku {
    name: String,
    title: String,
    price_cents: i64,
    grams: i64,
    asin: String,
    product_id: u64,
    variant_id: u64,
}

/// A channel of the topology and its share of orders.
#[derive(Debug, Clone)]
struct Channel {
    name: String,
    adapter: AdapterName,
    weight: u32,
}

/// One order line as the channel knows it.
#[derive(Debug, Clone)]
struct Line {
    /// Numeric id (Shopify line item id, Amazon `OrderItemId`, generic `line_id`).
    id: u64,
    /// 1-based line number (Walmart `lineNumber`).
    number: usize,
    sku: usize,
    /// Units the buyer ordered.
    ordered: i64,
    /// Units still wanted after edits and partial cancellations (0: removed).
    remaining: i64,
}

/// An order the generator may repeat, revise or cancel.
#[derive(Debug, Clone)]
struct OrderState {
    channel: usize,
    /// Numeric part of the id (Shopify id, Walmart purchase order id).
    number: u64,
    order_id: String,
    customer: usize,
    placed_at_ms: i64,
    /// Adapter-specific status: Shopify `financial_status`, Amazon `OrderStatus`.
    status: &'static str,
    paid: bool,
    cancelled: bool,
    cancelled_at_ms: i64,
    lines: Vec<Line>,
    flash: bool,
    deliveries: u32,
    /// Every payload sent so far, oldest first (repeats pick one of them).
    payloads: Vec<Value>,
}

impl OrderState {
    fn key(&self, channels: &[Channel]) -> String {
        shelfsync_schemas::order_key(&channels[self.channel].name, &self.order_id)
    }

    fn live_lines(&self) -> usize {
        self.lines.iter().filter(|l| l.remaining > 0).count()
    }
}

/// How many recent orders are kept for repeats, revisions and cancellations.
const RECENT_ORDERS: usize = 2048;

/// A product category of the generated catalog.
struct Category {
    /// SKU prefix (`TEA`).
    prefix: &'static str,
    /// What the product is, for titles.
    kind: &'static str,
    /// List price, cents.
    price_cents: i64,
    /// Shipping weight, grams.
    grams: i64,
    /// Variants: SKU code and title adjective.
    variants: &'static [(&'static str, &'static str)],
}

const CATEGORIES: &[Category] = &[
    Category {
        prefix: "TEA",
        kind: "loose leaf tea, 100 g",
        price_cents: 950,
        grams: 100,
        variants: &[
            ("EARLGREY", "Earl Grey"),
            ("SENCHA", "Sencha"),
            ("ASSAM", "Assam"),
            ("DARJEELING", "Darjeeling"),
            ("OOLONG", "Oolong"),
            ("ROOIBOS", "Rooibos"),
            ("CHAI", "Masala chai"),
            ("JASMINE", "Jasmine"),
        ],
    },
    Category {
        prefix: "MUG",
        kind: "stoneware mug, 350 ml",
        price_cents: 1400,
        grams: 300,
        variants: &[
            ("BLUE", "Blue"),
            ("WHITE", "White"),
            ("SAGE", "Sage"),
            ("RUST", "Rust"),
            ("BLACK", "Black"),
        ],
    },
    Category {
        prefix: "TEAPOT",
        kind: "teapot, 1 l",
        price_cents: 4800,
        grams: 1400,
        variants: &[
            ("CAST-IRON", "Cast iron"),
            ("GLASS", "Glass"),
            ("PORCELAIN", "Porcelain"),
            ("CLAY", "Clay"),
        ],
    },
    Category {
        prefix: "INFUSER",
        kind: "tea infuser",
        price_cents: 600,
        grams: 60,
        variants: &[
            ("STEEL", "Stainless steel"),
            ("SILICONE", "Silicone"),
            ("BAMBOO", "Bamboo"),
        ],
    },
    Category {
        prefix: "KETTLE",
        kind: "kettle",
        price_cents: 6900,
        grams: 1100,
        variants: &[
            ("GOOSENECK", "Gooseneck"),
            ("ELECTRIC", "Electric"),
            ("STOVETOP", "Stovetop"),
        ],
    },
    Category {
        prefix: "CANDLE",
        kind: "scented candle",
        price_cents: 3200,
        grams: 450,
        variants: &[
            ("CEDAR", "Cedar"),
            ("VANILLA", "Vanilla"),
            ("AMBER", "Amber"),
        ],
    },
    Category {
        prefix: "CADDY",
        kind: "tea caddy",
        price_cents: 1800,
        grams: 200,
        variants: &[("TIN", "Tin"), ("WOOD", "Wooden")],
    },
];

const FIRST_NAMES: &[&str] = &[
    "Maria", "James", "Aiko", "Liam", "Priya", "Noah", "Sofia", "Mateo", "Chen", "Olivia", "Amara",
    "Lucas",
];
const LAST_NAMES: &[&str] = &[
    "Garcia", "Smith", "Tanaka", "Murphy", "Patel", "Kim", "Rossi", "Silva", "Wang", "Johnson",
    "Okafor", "Weber",
];
const CITIES: &[(&str, &str, &str, &str)] = &[
    ("415 Hudson St", "New York", "NY", "10014"),
    ("1100 Congress Ave", "Austin", "TX", "78701"),
    ("400 Pine St", "Seattle", "WA", "98101"),
    ("233 S Wacker Dr", "Chicago", "IL", "60606"),
    ("1701 Wynkoop St", "Denver", "CO", "80202"),
    ("1 Beacon St", "Boston", "MA", "02108"),
];

/// The state of the simulated retailer: catalog, stock as the ERP knows it, recent orders.
struct TrafficModel {
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

fn money(cents: i64) -> String {
    format!("{}.{:02}", cents / 100, cents % 100)
}

fn rfc3339(ms: i64) -> String {
    let t = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::try_from(ms).unwrap_or(0));
    humantime::format_rfc3339_seconds(t).to_string()
}

impl TrafficModel {
    fn new(topology: &Topology, cfg: &GeneratorConfig) -> Result<Self> {
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
            .filter(|c| c.adapter == AdapterName::Generic)
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
                    AdapterName::Shopify | AdapterName::Amazon => 350,
                    AdapterName::Walmart => 200,
                    AdapterName::Generic => (100 / generic).max(1),
                },
            })
            .collect();
        let skus = cfg.traffic.skus as usize;
        let catalog: Vec<Sku> = (0..skus)
            .map(|i| {
                let category = &CATEGORIES[i % CATEGORIES.len()];
                let (prefix, kind, price, grams) = (
                    category.prefix,
                    category.kind,
                    category.price_cents,
                    category.grams,
                );
                let variants = category.variants;
                let (code, adjective) = variants[(i / CATEGORIES.len()) % variants.len()];
                let factor = rng.random_range(80..=150);
                Sku {
                    name: format!("{prefix}-{code}-{i:05}"),
                    title: format!("{adjective} {kind}"),
                    price_cents: price * factor / 100,
                    grams,
                    asin: format!("B0{:08X}", rng.random::<u32>()),
                    product_id: 8_841_200_000_000 + i as u64,
                    variant_id: 45_012_900_000_000 + i as u64,
                }
            })
            .collect();
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

    fn topic(&self, target: Target) -> &str {
        match target {
            Target::RawOrders => &self.topics[0],
            Target::ErpInventory => &self.topics[1],
            Target::ErpProducts => &self.topics[2],
        }
    }

    fn flash_sku_names(&self) -> Vec<String> {
        self.flash
            .iter()
            .map(|&i| self.catalog[i].name.clone())
            .collect()
    }

    fn position(&self, sku: usize, location: usize) -> usize {
        sku * self.locations.len() + location
    }

    /// The product master for every SKU, then a stock snapshot for every (SKU, location).
    fn catalog(&mut self, now: i64) -> Result<Vec<GenRecord>> {
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
    fn next_erp_event(&mut self, now: i64) -> Result<GenRecord> {
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

    /// A SKU for steady traffic: popularity is skewed (a few SKUs sell much more than the long
    /// tail), and flash-sale SKUs never come up.
    fn pick_sku(&mut self) -> usize {
        let n = self.catalog.len();
        loop {
            let u: f64 = self.rng.random();
            let i = ((u * u) * n as f64) as usize;
            // Spread the popular SKUs over the categories instead of the first indexes.
            let i = (i.min(n - 1) * 7919) % n;
            if !self.is_flash[i] {
                return i;
            }
        }
    }

    fn pick_channel(&mut self) -> usize {
        let total: u32 = self.channels.iter().map(|c| c.weight).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        for (i, c) in self.channels.iter().enumerate() {
            if roll < c.weight {
                return i;
            }
            roll -= c.weight;
        }
        0
    }

    fn pick_quantity(&mut self) -> i64 {
        match self.rng.random_range(0..100) {
            0..70 => 1,
            70..90 => 2,
            90..97 => 3,
            _ => self.rng.random_range(4..=6),
        }
    }

    /// The next steady-traffic order record: a new order, a repeat, a revision or a
    /// cancellation.
    fn next_order_event(&mut self, now: i64) -> Result<GenRecord> {
        let roll = self.rng.random_range(0..100);
        let (dup, cancel, revise) = (
            self.duplicate_pct,
            self.duplicate_pct + self.cancel_pct,
            self.duplicate_pct + self.cancel_pct + self.revision_pct,
        );
        let made = if roll < dup {
            self.duplicate(now)?
        } else if roll < cancel {
            self.change(now, true)?
        } else if roll < revise {
            self.change(now, false)?
        } else {
            None
        };
        match made {
            Some(rec) => Ok(rec),
            None => self.new_order(now, false),
        }
    }

    /// The next flash-sale order: one or two units of a flash-sale SKU, sometimes with a
    /// regular SKU in the same basket.
    fn next_flash_order(&mut self, now: i64) -> Result<GenRecord> {
        self.new_order(now, true)
    }

    fn new_order(&mut self, now: i64, flash: bool) -> Result<GenRecord> {
        let channel = self.pick_channel();
        let adapter = self.channels[channel].adapter;
        self.next_order += 1;
        let n = self.next_order;
        let mut skus: Vec<(usize, i64)> = Vec::new();
        if flash && !self.flash.is_empty() {
            let f = self.flash[self.rng.random_range(0..self.flash.len())];
            skus.push((f, self.rng.random_range(1..=2)));
            if self.rng.random_range(0..5) == 0 {
                let s = self.pick_sku();
                let q = self.pick_quantity();
                skus.push((s, q));
            }
        } else {
            let lines = match self.rng.random_range(0..100) {
                0..60 => 1,
                60..85 => 2,
                85..95 => 3,
                _ => 4,
            };
            while skus.len() < lines {
                let s = self.pick_sku();
                if !skus.iter().any(|(x, _)| *x == s) {
                    let q = self.pick_quantity();
                    skus.push((s, q));
                }
            }
        }
        let lines = skus
            .into_iter()
            .enumerate()
            .map(|(i, (sku, qty))| {
                self.next_line += 1;
                Line {
                    id: 15_874_300_000_000 + self.next_line,
                    number: i + 1,
                    sku,
                    ordered: qty,
                    remaining: qty,
                }
            })
            .collect();
        let roll = self.rng.random_range(0..100);
        let (number, order_id, status, paid) = match adapter {
            AdapterName::Shopify => {
                let id = 6_100_000_000_000 + self.id_base + n;
                let (status, paid) = match roll {
                    0..6 => ("pending", false),
                    6..10 => ("authorized", true),
                    _ => ("paid", true),
                };
                (id, id.to_string(), status, paid)
            }
            AdapterName::Amazon => {
                let id = format!(
                    "1{:02}-{:07}-{:07}",
                    self.rng.random_range(11..100),
                    n % 10_000_000,
                    self.rng.random_range(1_000_000..10_000_000)
                );
                let (status, paid) = if roll < 15 {
                    ("Pending", false)
                } else {
                    ("Unshipped", true)
                };
                (n, id, status, paid)
            }
            AdapterName::Walmart => {
                let id = 108_800_000_000_000 + self.id_base + n;
                (id, id.to_string(), "Created", true)
            }
            AdapterName::Generic => {
                let id = format!(
                    "{:02}-{:05}-{:05}",
                    10 + self.id_base / 10_000_000 % 90,
                    (n / 100_000) % 100_000,
                    n % 100_000
                );
                (n, id, if roll < 8 { "unpaid" } else { "paid" }, roll >= 8)
            }
        };
        let order = OrderState {
            channel,
            number,
            order_id,
            customer: self
                .rng
                .random_range(0..FIRST_NAMES.len() * LAST_NAMES.len()),
            // Bought a few seconds before the webhook fired.
            placed_at_ms: now - self.rng.random_range(500..5_000),
            status,
            paid,
            cancelled: false,
            cancelled_at_ms: 0,
            lines,
            flash,
            deliveries: 0,
            payloads: Vec::new(),
        };
        let kind = if flash {
            EventKind::FlashOrder
        } else {
            EventKind::NewOrder
        };
        if self.recent.len() == RECENT_ORDERS {
            self.recent.pop_front();
        }
        self.recent.push_back(order);
        let idx = self.recent.len() - 1;
        self.deliver(idx, now, kind, None)
    }

    /// Repeats an earlier delivery of a recent order: usually its latest payload, sometimes an
    /// older revision (a late retry).
    fn duplicate(&mut self, now: i64) -> Result<Option<GenRecord>> {
        if self.recent.is_empty() {
            return Ok(None);
        }
        let idx = self.rng.random_range(0..self.recent.len());
        let revisions = self.recent[idx].payloads.len();
        if revisions == 0 {
            return Ok(None);
        }
        let which = if revisions > 1 && self.rng.random_range(0..10) == 0 {
            self.rng.random_range(0..revisions - 1)
        } else {
            revisions - 1
        };
        self.deliver(idx, now, EventKind::Duplicate, Some(which))
            .map(Some)
    }

    /// Revises or cancels a recent order that is still open (flash-sale orders are left alone so
    /// that the sale's sell-out stays visible).
    fn change(&mut self, now: i64, cancel: bool) -> Result<Option<GenRecord>> {
        for _ in 0..8 {
            if self.recent.is_empty() {
                return Ok(None);
            }
            let idx = self.rng.random_range(0..self.recent.len());
            if self.recent[idx].cancelled || self.recent[idx].flash {
                continue;
            }
            let adapter = self.channels[self.recent[idx].channel].adapter;
            let reduce_roll = self.rng.random_range(0..2);
            let order = &mut self.recent[idx];
            if cancel {
                order.cancelled = true;
                order.cancelled_at_ms = now;
                order.status = match adapter {
                    AdapterName::Shopify if order.paid => "refunded",
                    AdapterName::Shopify => "voided",
                    AdapterName::Amazon => "Canceled",
                    _ => order.status,
                };
                return self
                    .deliver(idx, now, EventKind::Cancellation, None)
                    .map(Some);
            }
            if revise(order, adapter, reduce_roll == 0) {
                return self.deliver(idx, now, EventKind::Revision, None).map(Some);
            }
        }
        Ok(None)
    }

    /// Renders (or, for a repeat, reuses) the payload of `recent[idx]` and wraps it in an
    /// envelope with a fresh delivery id.
    fn deliver(
        &mut self,
        idx: usize,
        now: i64,
        kind: EventKind,
        repeat: Option<usize>,
    ) -> Result<GenRecord> {
        let uuid = self.uuid();
        let channels = &self.channels;
        let catalog = &self.catalog;
        let order = &mut self.recent[idx];
        let channel = &channels[order.channel];
        let payload = match repeat.and_then(|i| order.payloads.get(i)) {
            Some(p) => p.clone(),
            None => {
                let p = render(order, channel.adapter, catalog, now);
                order.payloads.push(p.clone());
                p
            }
        };
        order.deliveries += 1;
        let delivery_id = match channel.adapter {
            AdapterName::Shopify => uuid,
            AdapterName::Amazon => format!("sp-poll-{}-{}", order.order_id, order.deliveries),
            AdapterName::Walmart => format!("wm-poll-{}-{}", order.order_id, order.deliveries),
            AdapterName::Generic => format!(
                "{}-bridge-{}-r{}",
                channel.name, order.order_id, order.deliveries
            ),
        };
        let envelope = json!({
            "channel": channel.name,
            "delivery_id": delivery_id,
            "received_at": now,
            "payload": payload,
        });
        let value = serde_json::to_vec(&envelope)
            .map_err(|e| Error::Bug(format!("generator envelope does not serialize: {e}")))?;
        Ok(GenRecord {
            target: Target::RawOrders,
            kind,
            key: order.key(channels),
            value,
        })
    }

    /// A version-4 UUID from the seeded generator (Shopify's `X-Shopify-Webhook-Id`).
    fn uuid(&mut self) -> String {
        let a: u128 = self.rng.random();
        // Version 4 (random), variant 10xx.
        let version_mask: u128 = 0xf << 76;
        let variant_mask: u128 = 0x3 << 62;
        let a = (a & !version_mask) | (0x4 << 76);
        let a = (a & !variant_mask) | (0x2 << 62);
        let h = format!("{a:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Applies one revision the channel could send; false when the order has none left.
fn revise(order: &mut OrderState, adapter: AdapterName, reduce_first: bool) -> bool {
    let live = order.live_lines();
    let reducible = order.lines.iter().position(|l| l.remaining >= 2);
    let removable = if live >= 2 {
        order.lines.iter().rposition(|l| l.remaining > 0)
    } else {
        None
    };
    let edit = |order: &mut OrderState| -> bool {
        let target = if reduce_first {
            reducible.map(|i| (i, 1)).or(removable.map(|i| (i, 0)))
        } else {
            removable.map(|i| (i, 0)).or(reducible.map(|i| (i, 1)))
        };
        match target {
            Some((i, 1)) => order.lines[i].remaining -= 1,
            Some((i, _)) => order.lines[i].remaining = 0,
            None => return false,
        }
        true
    };
    match adapter {
        AdapterName::Shopify => {
            if order.status == "pending" {
                order.status = "paid";
                order.paid = true;
                true
            } else if edit(order) {
                order.status = "partially_refunded";
                true
            } else {
                false
            }
        }
        // Amazon orders do not change lines; an order moves from Pending to Unshipped once the
        // payment is authorized.
        AdapterName::Amazon => {
            if order.status == "Pending" {
                order.status = "Unshipped";
                order.paid = true;
                true
            } else {
                false
            }
        }
        // The seller cancels units or whole lines it cannot ship.
        AdapterName::Walmart => edit(order),
        AdapterName::Generic => {
            if !order.paid {
                order.paid = true;
                order.status = "paid";
                true
            } else {
                edit(order)
            }
        }
    }
}

/// The order as the channel would send it now.
fn render(order: &OrderState, adapter: AdapterName, catalog: &[Sku], now: i64) -> Value {
    match adapter {
        AdapterName::Shopify => shopify(order, catalog, now),
        AdapterName::Amazon => amazon(order, catalog, now),
        AdapterName::Walmart => walmart(order, catalog),
        AdapterName::Generic => generic(order, catalog),
    }
}

fn customer(order: &OrderState) -> (&'static str, &'static str, (&str, &str, &str, &str)) {
    let first = FIRST_NAMES[order.customer % FIRST_NAMES.len()];
    let last = LAST_NAMES[(order.customer / FIRST_NAMES.len()) % LAST_NAMES.len()];
    let city = CITIES[order.customer % CITIES.len()];
    (first, last, city)
}

fn money_set(amount: &str) -> Value {
    json!({
        "shop_money": {"amount": amount, "currency_code": "USD"},
        "presentment_money": {"amount": amount, "currency_code": "USD"}
    })
}

/// A Shopify order webhook body (`orders/create`, `orders/updated`, `orders/cancelled`).
fn shopify(order: &OrderState, catalog: &[Sku], now: i64) -> Value {
    let (first, last, (street, city, state, zip)) = customer(order);
    let email = format!(
        "{}.{}@example.com",
        first.to_lowercase(),
        last.to_lowercase()
    );
    let live = |l: &Line| if order.cancelled { 0 } else { l.remaining };
    let subtotal: i64 = order
        .lines
        .iter()
        .map(|l| catalog[l.sku].price_cents * live(l))
        .sum();
    let line_items: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let price = money(sku.price_cents);
            let mut item = Map::new();
            item.insert("id".into(), json!(l.id));
            item.insert(
                "admin_graphql_api_id".into(),
                json!(format!("gid://shopify/LineItem/{}", l.id)),
            );
            item.insert("name".into(), json!(sku.title));
            item.insert("title".into(), json!(sku.title));
            item.insert("sku".into(), json!(sku.name));
            item.insert("quantity".into(), json!(l.ordered));
            item.insert("current_quantity".into(), json!(live(l)));
            item.insert("fulfillable_quantity".into(), json!(live(l)));
            item.insert("fulfillment_service".into(), json!("manual"));
            item.insert("fulfillment_status".into(), Value::Null);
            item.insert("gift_card".into(), json!(false));
            item.insert("grams".into(), json!(sku.grams));
            item.insert("price".into(), json!(price));
            item.insert("price_set".into(), money_set(&price));
            item.insert("product_exists".into(), json!(true));
            item.insert("product_id".into(), json!(sku.product_id));
            item.insert("variant_id".into(), json!(sku.variant_id));
            item.insert("variant_title".into(), Value::Null);
            item.insert("vendor".into(), json!("Hudson Tea Co."));
            item.insert("requires_shipping".into(), json!(true));
            item.insert("taxable".into(), json!(true));
            item.insert("total_discount".into(), json!("0.00"));
            item.insert("properties".into(), json!([]));
            item.insert("tax_lines".into(), json!([]));
            item.insert("discount_allocations".into(), json!([]));
            Value::Object(item)
        })
        .collect();
    let address = json!({
        "first_name": first, "last_name": last, "name": format!("{first} {last}"),
        "address1": street, "address2": null, "city": city, "province_code": state,
        "zip": zip, "country": "United States", "country_code": "US", "company": null,
        "phone": null
    });
    let total = money(subtotal);
    let mut o = Map::new();
    o.insert("id".into(), json!(order.number));
    o.insert(
        "admin_graphql_api_id".into(),
        json!(format!("gid://shopify/Order/{}", order.number)),
    );
    o.insert(
        "name".into(),
        json!(format!("#{}", 1000 + order.number % 1_000_000)),
    );
    o.insert(
        "order_number".into(),
        json!(1000 + order.number % 1_000_000),
    );
    o.insert("email".into(), json!(email));
    o.insert("contact_email".into(), json!(email));
    o.insert("created_at".into(), json!(rfc3339(order.placed_at_ms)));
    o.insert("processed_at".into(), json!(rfc3339(order.placed_at_ms)));
    o.insert("updated_at".into(), json!(rfc3339(now)));
    o.insert(
        "cancelled_at".into(),
        if order.cancelled {
            json!(rfc3339(order.cancelled_at_ms))
        } else {
            Value::Null
        },
    );
    o.insert(
        "cancel_reason".into(),
        if order.cancelled {
            json!("customer")
        } else {
            Value::Null
        },
    );
    o.insert("closed_at".into(), Value::Null);
    o.insert("confirmed".into(), json!(true));
    o.insert("currency".into(), json!("USD"));
    o.insert("presentment_currency".into(), json!("USD"));
    o.insert("financial_status".into(), json!(order.status));
    o.insert("fulfillment_status".into(), Value::Null);
    o.insert("source_name".into(), json!("web"));
    o.insert("test".into(), json!(false));
    o.insert("tags".into(), json!(""));
    o.insert("taxes_included".into(), json!(false));
    o.insert(
        "payment_gateway_names".into(),
        json!(if order.status == "pending" {
            vec!["bank_deposit"]
        } else {
            vec!["shopify_payments"]
        }),
    );
    o.insert("subtotal_price".into(), json!(total));
    o.insert("current_subtotal_price".into(), json!(total));
    o.insert("total_price".into(), json!(total));
    o.insert("current_total_price".into(), json!(total));
    o.insert("total_price_set".into(), money_set(&total));
    o.insert("total_tax".into(), json!("0.00"));
    o.insert("total_discounts".into(), json!("0.00"));
    o.insert(
        "customer".into(),
        json!({
            "id": 7_412_086_000_000u64 + order.customer as u64,
            "email": email, "first_name": first, "last_name": last,
            "state": "enabled", "verified_email": true, "currency": "USD"
        }),
    );
    o.insert("billing_address".into(), address.clone());
    o.insert("shipping_address".into(), address);
    o.insert("line_items".into(), Value::Array(line_items));
    o.insert(
        "shipping_lines".into(),
        json!([{
            "code": "Standard", "title": "Standard", "price": "0.00", "source": "shopify"
        }]),
    );
    o.insert("fulfillments".into(), json!([]));
    o.insert("refunds".into(), json!([]));
    Value::Object(o)
}

/// An Amazon SP-API combined getOrder + getOrderItems body (what shelfsync's poller writes).
fn amazon(order: &OrderState, catalog: &[Sku], now: i64) -> Value {
    let cancelled = order.cancelled;
    let units: i64 = order.lines.iter().map(|l| l.remaining).sum();
    let total: i64 = order
        .lines
        .iter()
        .map(|l| catalog[l.sku].price_cents * l.remaining)
        .sum();
    let items: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let mut item = json!({
                "ASIN": sku.asin,
                "OrderItemId": l.id.to_string(),
                "SellerSKU": sku.name,
                "Title": sku.title,
                // Amazon reports the items of a cancelled order with QuantityOrdered 0.
                "QuantityOrdered": if cancelled { 0 } else { l.remaining },
                "QuantityShipped": 0,
                "ProductInfo": {"NumberOfItems": "1"},
                "IsGift": "false",
                "ConditionId": "New",
                "ConditionSubtypeId": "New",
                "IsTransparency": false,
                "SerialNumberRequired": false
            });
            if !cancelled && order.paid {
                if let Some(m) = item.as_object_mut() {
                    m.insert(
                        "ItemPrice".into(),
                        json!({"CurrencyCode": "USD", "Amount": money(sku.price_cents * l.remaining)}),
                    );
                    m.insert("ItemTax".into(), json!({"CurrencyCode": "USD", "Amount": "0.00"}));
                }
            }
            item
        })
        .collect();
    let mut head = json!({
        "AmazonOrderId": order.order_id,
        "PurchaseDate": rfc3339(order.placed_at_ms),
        "LastUpdateDate": rfc3339(now),
        "OrderStatus": order.status,
        "FulfillmentChannel": "MFN",
        "SalesChannel": "Amazon.com",
        "ShipServiceLevel": "Std US D2D Dom",
        "NumberOfItemsShipped": 0,
        "NumberOfItemsUnshipped": if order.paid && !cancelled { units } else { 0 },
        "PaymentMethod": "Other",
        "PaymentMethodDetails": ["Standard"],
        "IsReplacementOrder": false,
        "MarketplaceId": "ATVPDKIKX0DER",
        "ShipmentServiceLevelCategory": "Standard",
        "OrderType": "StandardOrder",
        "EarliestShipDate": rfc3339(order.placed_at_ms + 86_400_000),
        "LatestShipDate": rfc3339(order.placed_at_ms + 2 * 86_400_000),
        "IsBusinessOrder": false,
        "IsPrime": order.number.is_multiple_of(3),
        "IsPremiumOrder": false,
        "IsSoldByAB": false,
        "IsISPU": false
    });
    if order.paid && !cancelled {
        if let Some(m) = head.as_object_mut() {
            m.insert(
                "OrderTotal".into(),
                json!({"CurrencyCode": "USD", "Amount": money(total)}),
            );
        }
    }
    json!({
        "order": {"payload": head},
        "items": {"payload": {"AmazonOrderId": order.order_id, "OrderItems": items}}
    })
}

/// A Walmart Marketplace purchase order (`GET /v3/orders/{purchaseOrderId}`).
fn walmart(order: &OrderState, catalog: &[Sku]) -> Value {
    let (first, last, (street, city, state, zip)) = customer(order);
    let lines: Vec<Value> = order
        .lines
        .iter()
        .map(|l| {
            let sku = &catalog[l.sku];
            let live = if order.cancelled { 0 } else { l.remaining };
            let cancelled = l.ordered - live;
            let mut statuses = Vec::new();
            if live > 0 {
                statuses.push(json!({
                    "status": "Acknowledged",
                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": live.to_string()}
                }));
            }
            if cancelled > 0 {
                statuses.push(json!({
                    "status": "Cancelled",
                    "statusQuantity": {"unitOfMeasurement": "EACH", "amount": cancelled.to_string()},
                    "cancellationReason": if order.cancelled { "CUSTOMER_REQUESTED_SELLER_TO_CANCEL" } else { "SELLER_CANCEL_OUT_OF_STOCK" }
                }));
            }
            let price = sku.price_cents as f64 / 100.0;
            json!({
                "lineNumber": l.number.to_string(),
                "item": {"productName": sku.title, "sku": sku.name},
                "charges": {"charge": [{
                    "chargeType": "PRODUCT",
                    "chargeName": "ItemPrice",
                    "chargeAmount": {"currency": "USD", "amount": price},
                    "tax": {"taxName": "Tax1", "taxAmount": {"currency": "USD", "amount": (price * 8.875).round() / 100.0}}
                }]},
                "orderLineQuantity": {"unitOfMeasurement": "EACH", "amount": l.ordered.to_string()},
                "statusDate": order.placed_at_ms,
                "orderLineStatuses": {"orderLineStatus": statuses},
                "fulfillment": {"fulfillmentOption": "S2H", "shipMethod": "STANDARD"}
            })
        })
        .collect();
    json!({
        "order": {
            "purchaseOrderId": order.order_id,
            "customerOrderId": (order.number + 91_000_000_000_000).to_string(),
            "customerEmailId": format!("{:032X}@relay.walmart.com", order.number.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            "orderDate": order.placed_at_ms,
            "shippingInfo": {
                "phone": "2125550142",
                "estimatedDeliveryDate": order.placed_at_ms + 4 * 86_400_000,
                "estimatedShipDate": order.placed_at_ms + 86_400_000,
                "methodCode": "Standard",
                "postalAddress": {
                    "name": format!("{first} {last}"), "address1": street, "city": city,
                    "state": state, "postalCode": zip, "country": "USA", "addressType": "RESIDENTIAL"
                }
            },
            "orderLines": {"orderLine": lines},
            "shipNode": {"type": "SellerFulfilled"}
        }
    })
}

/// shelfsync's generic order shape (eBay through a bridge, stores, own shops).
fn generic(order: &OrderState, catalog: &[Sku]) -> Value {
    let lines: Vec<Value> = order
        .lines
        .iter()
        .filter(|l| l.remaining > 0)
        .map(|l| json!({"line_id": l.id.to_string(), "sku": catalog[l.sku].name, "quantity": l.remaining}))
        .collect();
    let (first, last, _) = customer(order);
    json!({
        "order_id": order.order_id,
        "paid": order.paid,
        "cancelled": order.cancelled,
        "placed_at": rfc3339(order.placed_at_ms),
        "lines": lines,
        "currency": "USD",
        "buyer": format!("{}_{}{}", first.to_lowercase(), last.to_lowercase(), order.customer % 97)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use shelfsync_schemas::adapters::{self, AdapterKind};
    use std::collections::{BTreeMap, HashMap};

    const TOPOLOGY: &str = include_str!("../../topology/retail.example.toml");

    fn topology() -> Topology {
        Topology::from_toml_str(TOPOLOGY).expect("example topology")
    }

    /// 10 s of traffic, as [`simulate`] runs it for `seconds = 10`.
    fn cfg() -> GeneratorConfig {
        GeneratorConfig {
            traffic: TrafficArgs {
                skus: 200,
                duration: Duration::from_secs(10),
                ..TrafficArgs::default()
            },
            ..GeneratorConfig::default()
        }
    }

    /// Runs the model like `run_traffic` does, with a fake clock: `seconds` of traffic.
    fn simulate(cfg: &GeneratorConfig, seconds: u32) -> Vec<GenRecord> {
        let mut model = TrafficModel::new(&topology(), cfg).expect("model");
        let t0 = 1_772_000_000_000;
        let mut out = model.catalog(t0).expect("catalog");
        // Events due in tick `t` of 100 ms at `rate` per second.
        let due = |rate: f64, t: u32| {
            ((f64::from(t + 1) * rate / 10.0) as u32) - ((f64::from(t) * rate / 10.0) as u32)
        };
        for tick in 0..seconds * 10 {
            let now = t0 + i64::from(tick) * 100;
            for _ in 0..due(cfg.traffic.orders_per_sec, tick) {
                out.push(model.next_order_event(now).expect("order"));
            }
            for _ in 0..due(cfg.traffic.erp_updates_per_sec, tick) {
                out.push(model.next_erp_event(now).expect("erp"));
            }
            if (seconds * 3..seconds * 6).contains(&tick) {
                for _ in 0..due(cfg.flash_orders_per_sec, tick) {
                    out.push(model.next_flash_order(now).expect("flash"));
                }
            }
        }
        out
    }

    fn adapter_of(channel: &str) -> Option<AdapterKind> {
        topology()
            .channels
            .iter()
            .find(|c| c.name == channel)
            .and_then(|c| c.adapter.as_str().parse().ok())
    }

    #[test]
    fn the_same_seed_gives_the_same_records() {
        let a = simulate(&cfg(), 5);
        let b = simulate(&cfg(), 5);
        assert_eq!(a, b);
        let c = cfg();
        let other = simulate(
            &GeneratorConfig {
                traffic: TrafficArgs {
                    seed: 7,
                    ..c.traffic
                },
                ..c
            },
            5,
        );
        assert_ne!(a, other);
    }

    #[test]
    fn every_raw_order_normalizes_with_its_channels_adapter_and_key() {
        let records = simulate(&cfg(), 10);
        let mut by_kind: BTreeMap<String, usize> = BTreeMap::new();
        let mut adapters_seen = std::collections::BTreeSet::new();
        for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
            let order = adapters::normalize(&rec.value, adapter_of)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&rec.value)));
            assert_eq!(order.key(), rec.key);
            if rec.kind == EventKind::Cancellation {
                assert!(order.cancelled, "{}", String::from_utf8_lossy(&rec.value));
            }
            adapters_seen.insert(adapter_of(&order.channel).map(|a| a.to_string()));
            *by_kind.entry(format!("{:?}", rec.kind)).or_default() += 1;
        }
        assert_eq!(adapters_seen.len(), 4, "{adapters_seen:?}");
        for kind in [
            "NewOrder",
            "FlashOrder",
            "Duplicate",
            "Revision",
            "Cancellation",
        ] {
            assert!(by_kind.get(kind).copied().unwrap_or(0) > 0, "{by_kind:?}");
        }
    }

    #[test]
    fn repeats_normalize_to_an_earlier_payload_and_revisions_to_a_new_one() {
        let records = simulate(&cfg(), 10);
        let mut prints: HashMap<String, Vec<u128>> = HashMap::new();
        for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
            let order = adapters::normalize(&rec.value, adapter_of).expect("normalizes");
            let seen = prints.entry(rec.key.clone()).or_default();
            let print = order.fingerprint();
            match rec.kind {
                EventKind::Duplicate => assert!(seen.contains(&print), "{}", rec.key),
                _ => {
                    assert!(!seen.contains(&print), "{} {:?}", rec.key, rec.kind);
                    seen.push(print);
                }
            }
        }
    }

    #[test]
    fn catalog_comes_first_and_erp_sequences_grow_per_position() {
        let c = cfg();
        let records = simulate(&c, 5);
        let skus = c.traffic.skus as usize;
        assert!(records[..skus]
            .iter()
            .all(|r| r.target == Target::ErpProducts));
        assert!(records[skus..skus * 3]
            .iter()
            .all(|r| r.kind == EventKind::Snapshot));
        let updates = records
            .iter()
            .filter(|r| r.kind == EventKind::ErpUpdate)
            .count();
        assert!(updates >= 20, "{updates} ERP updates");
        let mut last: HashMap<(String, String), i64> = HashMap::new();
        for rec in records.iter().filter(|r| r.target == Target::ErpInventory) {
            let change: InventoryChange = avro::decode(&rec.value).expect("decodes");
            assert_eq!(change.sku, rec.key);
            let prev = last
                .insert(
                    (change.sku.clone(), change.location.clone()),
                    change.erp_sequence,
                )
                .unwrap_or(0);
            assert_eq!(change.erp_sequence, prev + 1);
        }
        let products: Vec<ProductChange> = records[..skus]
            .iter()
            .map(|r| avro::decode(&r.value).expect("decodes"))
            .collect();
        assert_eq!(products.len(), skus);
    }

    #[test]
    fn flash_sale_skus_sell_only_in_the_sale_and_have_little_stock() {
        let c = cfg();
        let mut model = TrafficModel::new(&topology(), &c).expect("model");
        let flash: Vec<String> = model.flash_sku_names();
        assert_eq!(flash.len(), 5);
        let records = simulate(&c, 10);
        let mut flash_units = 0;
        for rec in records.iter().filter(|r| r.target == Target::RawOrders) {
            let order = adapters::normalize(&rec.value, adapter_of).expect("normalizes");
            let has_flash = order.lines.iter().any(|l| flash.contains(&l.sku));
            assert_eq!(
                has_flash,
                rec.kind == EventKind::FlashOrder
                    || (rec.kind == EventKind::Duplicate && has_flash),
            );
            if rec.kind == EventKind::FlashOrder {
                flash_units += order
                    .lines
                    .iter()
                    .filter(|l| flash.contains(&l.sku))
                    .map(|l| l.quantity)
                    .sum::<i64>();
            }
        }
        let stock: i64 = model
            .catalog(0)
            .expect("catalog")
            .iter()
            .filter(|r| r.kind == EventKind::Snapshot && flash.contains(&r.key))
            .map(|r| avro::decode::<InventoryChange>(&r.value).map_or(0, |c| c.quantity))
            .sum();
        assert!(
            flash_units > 2 * stock,
            "{flash_units} units for {stock} in stock"
        );
    }

    #[test]
    fn the_flag_defaults_are_the_default_config() {
        #[derive(clap::Parser)]
        struct Flags {
            #[command(flatten)]
            generator: GeneratorConfig,
        }
        let flags = <Flags as clap::Parser>::try_parse_from(["generate"]).expect("parses");
        assert_eq!(flags.generator, GeneratorConfig::default());
    }

    #[test]
    fn validate_names_the_bad_flag() {
        let bad = GeneratorConfig {
            traffic: TrafficArgs {
                duplicate_pct: 60,
                cancel_pct: 50,
                ..cfg().traffic
            },
            ..cfg()
        };
        let err = bad.validate().expect_err("invalid").to_string();
        assert!(err.contains("--duplicate-pct"), "{err}");
        let bad = GeneratorConfig {
            flash_skus: 100,
            ..cfg()
        };
        assert!(bad
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("--flash-skus"));
        assert!(cfg().validate().is_ok());
    }
}
