//! The flags of `shelfsync generate` (and, flattened, of `demo` and `bench`): the traffic they
//! share ([`TrafficArgs`]), the generator's whole configuration ([`GeneratorConfig`]) and its
//! validation.

use std::time::Duration;

use shelfsync_pipeline::{Error, Result};

#[cfg(doc)]
use super::GeneratorStats;

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

#[cfg(test)]
impl GeneratorConfig {
    /// 10 s of traffic over 200 SKUs: small enough for unit tests.
    pub(crate) fn small() -> Self {
        Self {
            traffic: TrafficArgs {
                skus: 200,
                duration: Duration::from_secs(10),
                ..TrafficArgs::default()
            },
            ..Self::default()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
                ..GeneratorConfig::small().traffic
            },
            ..GeneratorConfig::small()
        };
        let err = bad.validate().expect_err("invalid").to_string();
        assert!(err.contains("--duplicate-pct"), "{err}");
        let bad = GeneratorConfig {
            flash_skus: 100,
            ..GeneratorConfig::small()
        };
        assert!(bad
            .validate()
            .expect_err("invalid")
            .to_string()
            .contains("--flash-skus"));
        assert!(GeneratorConfig::small().validate().is_ok());
    }
}
