//! Drains: progress sampled every [`SAMPLE_EVERY`] until the inputs are all taken and nothing
//! moves, the rate of a stage over a drain, and the backlog preloaded before one.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;
use std::time::{Duration, Instant};

use anyhow::bail;
use shelfsync_topology::Topology;

use crate::generator::{Generator, GeneratorCounts, GeneratorStats};

use super::BenchArgs;

/// How often progress is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(200);
/// A drain is over when the sources are all taken and nothing moved for this long.
const QUIET: Duration = Duration::from_secs(2);

/// Per-stage progress samples of one drain.
#[derive(Debug, Default)]
pub(super) struct Samples {
    at: Vec<(Instant, BTreeMap<String, u64>)>,
}

/// Throughput of one stage (or of the whole graph) over a drain.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Rate {
    /// Records counted.
    pub records: u64,
    /// Seconds from the first sample that saw records to the last sample that moved.
    pub seconds: f64,
    /// records / seconds.
    pub per_sec: f64,
}

impl Samples {
    fn get(map: &BTreeMap<String, u64>, keys: &[&str]) -> u64 {
        keys.iter().map(|k| map.get(*k).copied().unwrap_or(0)).sum()
    }

    /// The rate of the sum of `keys`: from the last sample before it rose above zero (or the
    /// first sample, when it was never zero) to the first sample at which it, and the sum of
    /// `until`, had their final values. Sampling makes both ends uncertain by up to
    /// [`SAMPLE_EVERY`], equally for every system measured.
    pub(super) fn rate(&self, keys: &[&str], until: &[&str]) -> Rate {
        let Some(first) = self.at.iter().position(|(_, m)| Self::get(m, keys) > 0) else {
            return Rate::default();
        };
        let start = first.saturating_sub(1);
        let Some((_, end_map)) = self.at.last() else {
            return Rate::default();
        };
        let (total, total_until) = (Self::get(end_map, keys), Self::get(end_map, until));
        let end = self
            .at
            .iter()
            .position(|(_, m)| Self::get(m, keys) == total && Self::get(m, until) == total_until)
            .unwrap_or(self.at.len() - 1)
            .max(start);
        let (t0, m0) = &self.at[start];
        let seconds = self.at[end].0.duration_since(*t0).as_secs_f64();
        let records = total - Self::get(m0, keys);
        Rate {
            records: total,
            seconds,
            per_sec: if seconds > 0.0 {
                records as f64 / seconds
            } else {
                f64::NAN
            },
        }
    }
}

/// Samples `sample` until the `sources` reached their expected counts and nothing moved for
/// [`QUIET`], or `timeout`.
pub(super) fn drain(
    expected: &BTreeMap<&'static str, u64>,
    timeout: Duration,
    mut sample: impl FnMut() -> anyhow::Result<BTreeMap<String, u64>>,
) -> anyhow::Result<Samples> {
    let began = Instant::now();
    let mut samples = Samples::default();
    let mut moved = Instant::now();
    let mut last_progress = Instant::now();
    loop {
        let now = Instant::now();
        let m = sample()?;
        if samples.at.last().is_none_or(|(_, prev)| *prev != m) {
            moved = now;
        }
        let done = expected
            .iter()
            .all(|(k, v)| m.get(*k).copied().unwrap_or(0) >= *v);
        samples.at.push((now, m));
        if done && moved.elapsed() >= QUIET {
            return Ok(samples);
        }
        if now.duration_since(began) > timeout {
            bail!(
                "not drained within {timeout:?}: expected {expected:?}, got {:?}",
                samples.at.last().map(|(_, m)| m)
            );
        }
        if last_progress.elapsed() > Duration::from_secs(5) {
            last_progress = Instant::now();
            eprintln!("  … {:?}", samples.at.last().map(|(_, m)| m));
        }
        std::thread::sleep(SAMPLE_EVERY.saturating_sub(now.elapsed()));
    }
}

pub(super) fn source_counts(c: &GeneratorCounts) -> (u64, u64, u64) {
    (c.order_records(), c.snapshots + c.erp_updates, c.products)
}

/// Writes the catalog plus `args.backlog` of traffic as fast as the producer goes.
pub(super) fn preload(topology: &Topology, args: &BenchArgs) -> anyhow::Result<GeneratorCounts> {
    // The same records as live traffic, on a compressed schedule (the producer cannot keep up
    // with it, so it sends as fast as it can).
    let k = (args.backlog.as_secs_f64() / 2.0).max(1.0);
    let mut cfg = args.generator(args.traffic.skus);
    cfg.traffic.orders_per_sec = args.traffic.orders_per_sec * k;
    cfg.traffic.erp_updates_per_sec = args.traffic.erp_updates_per_sec * k;
    cfg.traffic.duration = args.backlog.div_f64(k);
    let stop = AtomicBool::new(false);
    let stats = GeneratorStats::default();
    let began = Instant::now();
    let mut generator = Generator::new(topology, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
    generator
        .load_catalog(&stop, &stats)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let report = generator
        .run_traffic(&stop, &stats)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    if report.counts.failed > 0 {
        bail!(
            "the broker refused {} preloaded records",
            report.counts.failed
        );
    }
    eprintln!(
        "  preloaded {} records in {:.1} s",
        report.counts.records(),
        began.elapsed().as_secs_f64()
    );
    Ok(report.counts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_rate_runs_from_the_last_idle_sample_to_the_first_final_one() {
        let t0 = Instant::now();
        let s = |ms: u64, n: u64| {
            (
                t0 + Duration::from_millis(ms),
                [("a".to_string(), n)]
                    .into_iter()
                    .collect::<BTreeMap<_, _>>(),
            )
        };
        let samples = Samples {
            at: vec![
                s(0, 0),
                s(200, 0),
                s(400, 100),
                s(600, 300),
                s(800, 500),
                s(1000, 500),
            ],
        };
        let r = samples.rate(&["a"], &["a"]);
        assert_eq!(r.records, 500);
        assert!((r.seconds - 0.6).abs() < 1e-9);
        // Already moving at the first sample: from there, counting what came after it.
        let samples = Samples {
            at: vec![s(0, 100), s(200, 300), s(400, 500), s(600, 500)],
        };
        let r = samples.rate(&["a"], &["a"]);
        assert!((r.seconds - 0.4).abs() < 1e-9);
        assert!((r.per_sec - 1000.0).abs() < 1e-6);
    }
}
