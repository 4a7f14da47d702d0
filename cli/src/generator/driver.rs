//! The Kafka side of the generator: an idempotent producer fed by the traffic model on its
//! schedule (event *n* of a stream is due `n / rate` seconds into the run), flushes, the
//! broker's acknowledgements, and the progress log of `shelfsync generate`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use shelfsync_topology::Topology;
use tracing::{info, warn};

use shelfsync_pipeline::clock::now_ms;
use shelfsync_pipeline::kafka;
use shelfsync_pipeline::{Error, Result};

use super::model::{GenRecord, TrafficModel};
use super::{GeneratorConfig, GeneratorPhase, GeneratorReport, GeneratorStats};

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
        let (flash_from, flash_to) = if self.model.has_flash_sale() {
            (flash_from.as_secs_f64(), flash_to.as_secs_f64())
        } else {
            (f64::INFINITY, f64::INFINITY)
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
