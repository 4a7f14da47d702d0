//! The demo's main loop, once a second: sample the pipeline, start traffic once the catalog
//! is in, hold the generator back while the pipeline is behind, detect the end of the drain,
//! and draw the live view.

use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::bail;
use shelfsync_schemas::OrderStatusCode;

use crate::generator::GeneratorPhase;
use shelfsync_pipeline::metrics as m;

use super::screen::{per_sec, thousands};
use super::tally::FlashView;
use super::{Demo, CATALOG_TIMEOUT, HOLD_ABOVE_LAG, RESUME_BELOW_LAG};

impl Demo<'_> {
    /// The main loop: one round per second until the pipeline has drained (or something fails).
    pub(super) fn drive<T, E>(
        &mut self,
        interrupted: &AtomicBool,
        go: &AtomicBool,
        generator: &JoinHandle<T>,
        engine: &JoinHandle<E>,
    ) -> anyhow::Result<()> {
        for sku in &self.flash_skus {
            self.observer
                .tally
                .flash
                .insert(sku.clone(), FlashView::default());
        }
        loop {
            self.observer.poll_for(Duration::from_secs(1));
            // The phase first: once it says the catalog is acknowledged, the sample's watermarks
            // include the whole catalog, so lag 0 means the pipeline has taken it in.
            let phase = self.stats.phase();
            let sample = self.observer.sample()?;
            self.samples.push(sample);
            let now = Instant::now();
            if interrupted.load(Ordering::Relaxed) {
                self.render(phase, true);
                self.interrupted = true;
                self.out
                    .line("interrupted: stopping the generator and the pipeline");
                return Ok(());
            }
            if engine.is_finished() {
                self.render(phase, true);
                bail!("the pipeline stopped unexpectedly");
            }
            match phase {
                GeneratorPhase::CatalogDone if self.catalog_loaded.is_none() => {
                    let timed_out = now.duration_since(self.started) > CATALOG_TIMEOUT;
                    if sample.lag == 0 || timed_out {
                        if timed_out {
                            self.out.line(&format!(
                                "warning: the pipeline has not taken in the catalog after {}s (lag {}); starting traffic anyway",
                                CATALOG_TIMEOUT.as_secs(),
                                sample.lag
                            ));
                        }
                        self.catalog_loaded = Some(now);
                        self.traffic_started = Some(now);
                        go.store(true, Ordering::Relaxed);
                    }
                }
                _ => {}
            }
            if self.traffic_started.is_some() && self.traffic_ended.is_none() {
                if sample.lag > HOLD_ABOVE_LAG {
                    self.stats.hold.store(true, Ordering::Relaxed);
                } else if sample.lag < RESUME_BELOW_LAG {
                    self.stats.hold.store(false, Ordering::Relaxed);
                }
            }
            if generator.is_finished() && self.traffic_ended.is_none() {
                self.traffic_ended = Some(now);
            }
            if let Some(ended) = self.traffic_ended {
                if sample.lag == 0 && self.observer.caught_up()? {
                    self.drained = Some(now);
                    self.render(phase, true);
                    self.out.finish();
                    return Ok(());
                }
                if now.duration_since(ended) > self.args.drain_timeout {
                    self.render(phase, true);
                    self.out.finish();
                    bail!(
                        "the pipeline did not catch up within {} of the end of traffic (lag {} records); try a lower --rate or a longer --drain-timeout",
                        humantime::format_duration(self.args.drain_timeout),
                        sample.lag
                    );
                }
            }
            self.render(phase, false);
        }
    }

    fn phase_label(&self, phase: GeneratorPhase) -> String {
        let elapsed = |t: Option<Instant>| t.map_or(0, |t| t.elapsed().as_secs());
        match (self.traffic_ended, self.traffic_started) {
            (Some(ended), _) => format!("draining ({}s)", ended.elapsed().as_secs()),
            (None, Some(started)) => {
                let held = Duration::from_millis(self.stats.held_ms.load(Ordering::Relaxed));
                format!(
                    "{} ({}s / {}s){}",
                    phase.label(),
                    started.elapsed().saturating_sub(held).as_secs(),
                    self.args.generator.traffic.duration.as_secs(),
                    if self.stats.hold.load(Ordering::Relaxed) {
                        "  [generator held back: the pipeline is behind]"
                    } else {
                        ""
                    }
                )
            }
            (None, None) => format!("{} ({}s)", phase.label(), elapsed(Some(self.started))),
        }
    }

    fn render(&mut self, phase: GeneratorPhase, force: bool) {
        let n = self.samples.len();
        let last = self.samples.last().copied().unwrap_or_default();
        let prev = if n >= 2 { self.samples[n - 2] } else { last };
        let dt = match (last.at, prev.at) {
            (Some(a), Some(b)) => a.duration_since(b),
            _ => Duration::ZERO,
        };
        let in_rate = per_sec(last.produced - prev.produced, dt);
        let done_rate = per_sec(last.processed - prev.processed, dt);
        let t = &self.observer.tally;
        let dups = self.counters.as_ref().map_or_else(
            || "n/a".into(),
            |c| thousands(c.total(m::DUPLICATES_DROPPED)),
        );
        let channels = &self.observer.channels;
        let avail = channels
            .iter()
            .map(|c| {
                format!(
                    "{c} {}",
                    thousands(t.availability.get(c).copied().unwrap_or(0))
                )
            })
            .collect::<Vec<_>>()
            .join(" · ");
        let zeros = channels
            .iter()
            .map(|c| format!("{c} {}", thousands(t.at_zero(c))))
            .collect::<Vec<_>>()
            .join(" · ");
        let orders = format!(
            "accepted {} · backordered {} · partially accepted {} · rejected {} · cancelled {}",
            thousands(t.orders(OrderStatusCode::ACCEPTED)),
            thousands(t.orders(OrderStatusCode::BACKORDERED)),
            thousands(t.orders(OrderStatusCode::PARTIALLY_ACCEPTED)),
            thousands(t.orders(OrderStatusCode::REJECTED)),
            thousands(t.orders(OrderStatusCode::CANCELLED)),
        );
        let flash = self
            .flash_skus
            .iter()
            .map(|sku| {
                let shown = t.shown.get(sku);
                let q = |c: &String| {
                    shown
                        .and_then(|s| s.get(c))
                        .map_or_else(|| "-".to_string(), |s| s.quantity.to_string())
                };
                format!(
                    "{sku} [{}]",
                    channels.iter().map(q).collect::<Vec<_>>().join(" ")
                )
            })
            .collect::<Vec<_>>()
            .join("  ");
        let g = self.stats.snapshot();
        let phase_label = self.phase_label(phase);
        let block = vec![
            String::new(),
            format!("  phase         {phase_label}"),
            format!(
                "  input         {:>6} records/s   total {}   (watermarks of the 3 input topics)",
                thousands(in_rate),
                thousands(last.produced.max(0) as u64)
            ),
            format!(
                "  processed     {:>6} records/s   total {}   consumer lag {} records (all 6 stage inputs)",
                thousands(done_rate),
                thousands(last.processed.max(0) as u64),
                thousands(last.lag.max(0) as u64)
            ),
            format!("  orders        {orders}"),
            format!(
                "  dedupe        {dups} duplicate deliveries dropped   validated orders to ERP {}",
                thousands(t.validated)
            ),
            format!("  availability  {avail} updates"),
            format!("  showing 0     {zeros} SKUs"),
            format!("  flash sale    {flash}   [{}]", channels.join(" ")),
            format!(
                "  dlq           {}{}",
                thousands(t.dlq_total()),
                if t.undecodable > 0 {
                    format!("   ({} output records did not decode)", t.undecodable)
                } else {
                    String::new()
                }
            ),
            format!(
                "  generator     sent {} new orders (+{} flash sale), {} repeats, {} revisions, {} cancellations, {} ERP updates",
                thousands(g.new_orders),
                thousands(g.flash_orders),
                thousands(g.duplicates),
                thousands(g.revisions),
                thousands(g.cancellations),
                thousands(g.erp_updates)
            ),
        ];
        let plain = format!(
            "[{:>4}s] {phase_label} | in {in_rate}/s | processed {done_rate}/s | lag {} | orders: accepted {} backordered {} rejected {} cancelled {} | duplicates dropped {dups} | availability updates {} | dlq {}",
            self.started.elapsed().as_secs(),
            last.lag,
            t.orders(OrderStatusCode::ACCEPTED),
            t.orders(OrderStatusCode::BACKORDERED),
            t.orders(OrderStatusCode::REJECTED) + t.orders(OrderStatusCode::PARTIALLY_ACCEPTED),
            t.orders(OrderStatusCode::CANCELLED),
            t.availability.values().sum::<u64>(),
            t.dlq_total(),
        );
        self.out.update(&block, &plain, force);
    }
}
