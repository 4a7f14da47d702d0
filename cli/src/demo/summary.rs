//! The summary printed when the demo ends: catalog, traffic, what the pipeline did with it,
//! the flash sale's sell-out per channel, the drain.

use std::io::Write;
use std::sync::atomic::Ordering;
use std::time::Duration;

use shelfsync_schemas::OrderStatusCode;

use crate::generator::GeneratorReport;
use shelfsync_pipeline::metrics as m;

use super::screen::{per_sec, thousands};
use super::Demo;

impl Demo<'_> {
    pub(super) fn print_summary(&mut self, report: Option<&GeneratorReport>) {
        let t = &self.observer.tally;
        let channels = &self.observer.channels;
        let g = self.stats.snapshot();
        let last = self
            .observer
            .sample()
            .unwrap_or_else(|_| self.samples.last().copied().unwrap_or_default());
        let catalog_secs = self
            .catalog_loaded
            .map_or(0.0, |c| c.duration_since(self.started).as_secs_f64());
        let traffic = match (self.traffic_started, self.traffic_ended) {
            (Some(a), Some(b)) => b.duration_since(a),
            (Some(a), None) => a.elapsed(),
            _ => Duration::ZERO,
        };
        let total = self.started.elapsed();
        let mut lines = vec![
            String::new(),
            format!(
                "shelfsync demo summary (application {}, seed {})",
                self.topology.application_id, self.args.generator.traffic.seed
            ),
        ];
        let mut row = |label: &str, value: String| lines.push(format!("  {label:<28}{value}"));
        row(
            "catalog",
            format!(
                "{} SKUs x {} locations: {} product and {} stock records, taken in by the pipeline {catalog_secs:.1} s after start",
                thousands(u64::from(self.args.generator.traffic.skus)),
                self.topology.locations.len(),
                thousands(g.products),
                thousands(g.snapshots)
            ),
        );
        row(
            "traffic",
            format!(
                "{:.1} s{}: {} new orders ({} in the flash sale), {} repeated deliveries, {} revisions, {} cancellations, {} ERP updates",
                traffic.as_secs_f64(),
                match self.stats.held_ms.load(Ordering::Relaxed) {
                    0 => String::new(),
                    ms => format!(
                        " (held back {:.1} s while the pipeline caught up)",
                        ms as f64 / 1000.0
                    ),
                },
                thousands(g.new_orders + g.flash_orders),
                thousands(g.flash_orders),
                thousands(g.duplicates),
                thousands(g.revisions),
                thousands(g.cancellations),
                thousands(g.erp_updates)
            ),
        );
        row(
            "input records",
            format!(
                "{} on the input topics, {} processed by the pipeline ({}/s over {:.1} s)",
                thousands(last.produced.max(0) as u64),
                thousands(last.processed.max(0) as u64),
                thousands(per_sec(last.processed, total)),
                total.as_secs_f64()
            ),
        );
        for (label, code) in [
            ("orders accepted", OrderStatusCode::ACCEPTED),
            ("orders backordered", OrderStatusCode::BACKORDERED),
            (
                "orders partially accepted",
                OrderStatusCode::PARTIALLY_ACCEPTED,
            ),
            ("orders rejected", OrderStatusCode::REJECTED),
            ("orders cancelled", OrderStatusCode::CANCELLED),
        ] {
            row(label, thousands(t.orders(code)));
        }
        row(
            "order status events",
            format!(
                "{} for {} orders; {} validated orders for the ERP",
                thousands(t.status_events),
                thousands(t.latest.len() as u64),
                thousands(t.validated)
            ),
        );
        row(
            "duplicates dropped",
            self.counters.as_ref().map_or_else(
                || "n/a".into(),
                |c| thousands(c.total(m::DUPLICATES_DROPPED)),
            ),
        );
        row(
            "availability updates",
            format!(
                "{} ({})",
                thousands(t.availability.values().sum()),
                channels
                    .iter()
                    .map(|c| format!(
                        "{c} {}",
                        thousands(t.availability.get(c).copied().unwrap_or(0))
                    ))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        let dlq = if t.dlq.is_empty() {
            "0".to_string()
        } else {
            format!(
                "{} ({})",
                thousands(t.dlq_total()),
                t.dlq
                    .iter()
                    .map(|(k, v)| format!("{k} {v}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        row("dlq records", dlq);
        let flash_start = self.stats.flash_started_ms.load(Ordering::Relaxed);
        let sold_out = t.flash.values().filter(|f| f.sold_out_at.is_some()).count();
        row(
            "flash-sale SKUs sold out",
            format!(
                "{sold_out}/{} (availability 0 on every channel)",
                self.flash_skus.len()
            ),
        );
        let rel = |ms: i64| {
            if flash_start > 0 {
                format!("{:+.1} s", (ms - flash_start) as f64 / 1000.0)
            } else {
                "-".to_string()
            }
        };
        for sku in &self.flash_skus {
            let Some(f) = t.flash.get(sku) else { continue };
            let per_channel = channels
                .iter()
                .map(|c| {
                    let shown = t.shown.get(sku).and_then(|s| s.get(c));
                    match (f.zero_at.get(c), shown) {
                        (Some(ms), _) => format!("{c} {}", rel(*ms)),
                        // E.g. Walmart's min_publish: a few units are never offered at all.
                        (None, Some(s)) if s.peak == 0 => format!("{c} never above 0"),
                        (None, Some(s)) => format!("{c} still {}", s.quantity),
                        (None, None) => format!("{c} no update"),
                    }
                })
                .collect::<Vec<_>>()
                .join(", ");
            let what = match f.sold_out_at {
                Some(ms) => format!("sold out {} into the sale", rel(ms)),
                None => "not sold out".to_string(),
            };
            lines.push(format!(
                "    {sku:<26}{what}; 0 per channel at: {per_channel}"
            ));
        }
        let mut row = |label: &str, value: String| lines.push(format!("  {label:<28}{value}"));
        row(
            "other SKUs sold out",
            thousands(t.other_sold_out(channels) as u64),
        );
        row(
            "drain",
            match (self.traffic_ended, self.drained) {
                (Some(a), Some(b)) => format!(
                    "lag 0 and outputs read {:.1} s after traffic stopped",
                    b.duration_since(a).as_secs_f64()
                ),
                _ if self.interrupted => format!("interrupted (lag {})", last.lag),
                _ => format!("not drained (lag {})", last.lag),
            },
        );
        if let Some(r) = report {
            if r.counts.failed > 0 {
                row(
                    "refused by the broker",
                    format!("{} generated records", r.counts.failed),
                );
            }
        }
        if let Ok((internal, changelog, outputs)) = self.observer.written() {
            let all = internal + changelog + outputs;
            row(
                "records written",
                format!(
                    "{} by the pipeline: {} internal, {} changelog, {} output ({:.1} per input record)",
                    thousands(all.max(0) as u64),
                    thousands(internal.max(0) as u64),
                    thousands(changelog.max(0) as u64),
                    thousands(outputs.max(0) as u64),
                    all as f64 / last.processed.max(1) as f64
                ),
            );
        }
        row("total time", format!("{:.1} s", total.as_secs_f64()));
        let mut stdout = std::io::stdout().lock();
        for l in lines {
            let _ = writeln!(stdout, "{l}");
        }
        let _ = stdout.flush();
    }
}
