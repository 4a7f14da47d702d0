//! The bench's report: everything one run measured ([`BenchReport`]), printed as text and
//! written as JSON (`--json`).

use std::path::Path;

use anyhow::Context;

use super::throughput::ALL_STAGES;
use super::{LatencyResult, RestoreResult, StageResult, ThroughputResult};

/// The memory target: peak RSS under the RocksDB budget plus this.
const RSS_HEADROOM: u64 = 256 << 20;

/// Everything one run measured.
#[derive(Debug, Default, serde::Serialize)]
pub struct BenchReport {
    /// When the run started (RFC 3339).
    pub started: String,
    /// The workload flags.
    pub workload: String,
    /// RocksDB memory budget, bytes.
    pub rocksdb_budget: u64,
    /// Throughput phase.
    pub throughput: Option<ThroughputResult>,
    /// Latency phase.
    pub latency: Option<LatencyResult>,
    /// Restore phase.
    pub restore: Option<RestoreResult>,
    /// Stage phase (the inventory stage alone, with the peers).
    pub stage: Option<StageResult>,
}

fn mib(bytes: Option<u64>) -> String {
    bytes.map_or("?".into(), |b| {
        format!("{:.0} MiB", b as f64 / f64::from(1 << 20))
    })
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        format!("{:.0}%", a / b * 100.0)
    } else {
        "-".into()
    }
}

impl std::fmt::Display for BenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "shelfsync bench, {}", self.started)?;
        writeln!(f, "workload: {}", self.workload)?;
        let budget = self.rocksdb_budget;
        let rss_ok = |rss: Option<u64>| match rss {
            Some(r) if r <= budget + RSS_HEADROOM => "within",
            Some(_) => "OVER",
            None => "?",
        };
        if let Some(t) = &self.throughput {
            writeln!(f)?;
            writeln!(
                f,
                "throughput (backlog drain; inputs: {} raw orders, {} ERP inventory, {} ERP products)",
                t.inputs.0, t.inputs.1, t.inputs.2
            )?;
            writeln!(
                f,
                "  {:<14} {:>12} {:>14} {:>8}",
                "stage", "records/s", "passthrough/s", "ratio"
            )?;
            for stage in ALL_STAGES {
                if let Some((a, p)) = t.stages.get(stage) {
                    writeln!(
                        f,
                        "  {:<14} {:>12.0} {:>14.0} {:>8}",
                        stage,
                        a.per_sec,
                        p.per_sec,
                        ratio(a.per_sec, p.per_sec)
                    )?;
                }
            }
            let (a, p) = t.end_to_end;
            writeln!(
                f,
                "  {:<14} {:>12.0} {:>14.0} {:>8}   ({} input records: {:.1} s vs {:.1} s)",
                "end to end",
                a.per_sec,
                p.per_sec,
                ratio(a.per_sec, p.per_sec),
                a.records,
                a.seconds,
                p.seconds
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the RocksDB budget {} + 256 MiB)",
                mib(t.peak_rss),
                rss_ok(t.peak_rss),
                mib(Some(budget))
            )?;
        }
        if let Some(l) = &self.latency {
            writeln!(f)?;
            writeln!(
                f,
                "latency ({:.0} orders/s + {:.0} ERP updates/s offered; sent {} + {} in {:.1} s)",
                l.offered.0, l.offered.1, l.sent.0, l.sent.1, l.seconds
            )?;
            writeln!(
                f,
                "  {:<30} {:>8} {:>6} {:>6} {:>6} {:>6}",
                "ms, produced → readable", "count", "p50", "p90", "p99", "max"
            )?;
            for (name, p) in [
                ("ERP change → availability", l.erp_to_availability),
                ("raw order → validated order", l.order_to_validated),
            ] {
                writeln!(
                    f,
                    "  {:<30} {:>8} {:>6} {:>6} {:>6} {:>6}",
                    name, p.count, p.p50, p.p90, p.p99, p.max
                )?;
            }
            writeln!(
                f,
                "  ERP updates that changed no published number: {}",
                l.erp_without_event
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the budget + 256 MiB)",
                mib(l.peak_rss),
                rss_ok(l.peak_rss)
            )?;
        }
        if let Some(r) = &self.restore {
            writeln!(f)?;
            writeln!(
                f,
                "restore ({} SKUs: {} keys in the inventory changelog)",
                r.skus, r.keys
            )?;
            writeln!(
                f,
                "  applied {} records in {:.2} s: {:.0} records/s; process start → ready {:.2} s",
                r.applied, r.restore_seconds, r.records_per_sec, r.seconds_to_ready
            )?;
            writeln!(
                f,
                "  peak RSS {} ({} the budget + 256 MiB)",
                mib(r.peak_rss),
                rss_ok(r.peak_rss)
            )?;
        }
        if let Some(s) = &self.stage {
            write_stage(f, s)?;
        }
        Ok(())
    }
}

/// The targets of issue 17: pipeline ≥ 3× Kafka Streams exactly_once_v2, ≥ 1.5× at_least_once.
const STAGE_TARGETS: [(&str, f64); 2] = [
    ("kafka-streams exactly_once_v2", 3.0),
    ("kafka-streams at_least_once", 1.5),
];

fn write_stage(f: &mut std::fmt::Formatter<'_>, s: &StageResult) -> std::fmt::Result {
    writeln!(f)?;
    writeln!(
        f,
        "inventory stage through the broker ({} commands, {} SKUs in the catalog; a preloaded topic drained by each)",
        s.commands, s.skus
    )?;
    let kinds: Vec<String> = s.kinds.iter().map(|(k, n)| format!("{n} {k}")).collect();
    writeln!(f, "  commands: {}", kinds.join(", "))?;
    writeln!(
        f,
        "  {:<30} {:>11} {:>8} {:>9} {:>12} {:>10}",
        "contender", "commands/s", "seconds", "peak RSS", "avail. events", "pipeline ×"
    )?;
    for c in &s.contenders {
        let times = s
            .ratios
            .get(&c.name)
            .map_or("-".to_string(), |r| format!("{r:.2}×"));
        writeln!(
            f,
            "  {:<30} {:>11.0} {:>8.1} {:>9} {:>12} {:>10}",
            c.name,
            c.rate.per_sec,
            c.rate.seconds,
            if c.peak_rss.is_some() {
                mib(c.peak_rss)
            } else {
                "-".into()
            },
            if c.name == "passthrough" {
                "-".to_string()
            } else {
                c.availability_events.to_string()
            },
            times
        )?;
    }
    if let Some(l) = s.contenders.iter().find_map(|c| c.live.as_ref()) {
        writeln!(
            f,
            "  live, after each drain: {} commands at {}/s; command sent → availability readable, ms",
            l.sent, l.offered
        )?;
        writeln!(
            f,
            "  {:<30} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10}",
            "contender", "p50", "p90", "p99", "max", "events", "no event", "sent in s"
        )?;
        for c in &s.contenders {
            if let Some(l) = &c.live {
                let p = &l.command_to_availability;
                writeln!(
                    f,
                    "  {:<30} {:>7} {:>7} {:>7} {:>7} {:>8} {:>9} {:>10.1}",
                    c.name,
                    p.p50,
                    p.p90,
                    p.p99,
                    p.max,
                    p.count,
                    l.commands_without_event,
                    l.seconds
                )?;
            }
        }
    }
    if s.contenders.iter().any(|c| c.restore.is_some()) {
        writeln!(
            f,
            "  restore after the run, onto an empty state directory (every store's changelog)"
        )?;
        writeln!(
            f,
            "  {:<30} {:>10} {:>9} {:>10} {:>9} {:>9}",
            "contender", "records", "seconds", "records/s", "to ready", "peak RSS"
        )?;
        for c in &s.contenders {
            if let Some(r) = &c.restore {
                writeln!(
                    f,
                    "  {:<30} {:>10} {:>9.2} {:>10.0} {:>8.1}s {:>9}",
                    c.name,
                    r.records,
                    r.seconds,
                    r.records_per_sec,
                    r.seconds_to_ready,
                    mib(r.peak_rss)
                )?;
            }
        }
    }
    for (name, target) in STAGE_TARGETS {
        if let Some(r) = s.ratios.get(name) {
            writeln!(
                f,
                "  target pipeline ≥ {target}× {name}: {r:.2}× — {}",
                if *r >= target { "met" } else { "MISSED" }
            )?;
        }
    }
    for c in s.contenders.iter().filter(|c| c.mismatches.is_some()) {
        writeln!(
            f,
            "  final availability, {} vs pipeline: {} of {} (channel, SKU) pairs differ{}{}",
            c.name,
            c.mismatches.unwrap_or(0),
            s.availability_pairs,
            match c.version_differences {
                Some(v) if v > 0 => format!(" ({v} equal in quantity, not in version)"),
                _ => String::new(),
            },
            if c.refused > 0 {
                format!("; {} commands refused", c.refused)
            } else {
                String::new()
            }
        )?;
        for e in &c.examples {
            writeln!(f, "    {e}")?;
        }
    }
    let tally = |c: &super::Contender| {
        let v: Vec<String> = c
            .line_results
            .iter()
            .map(|(k, n)| format!("{n} {k}"))
            .collect();
        v.join(", ")
    };
    if let Some(ours) = s.contenders.first() {
        writeln!(f, "  line results, pipeline: {}", tally(ours))?;
        for c in s.contenders.iter().filter(|c| c.mismatches.is_some()) {
            if c.line_results == ours.line_results {
                writeln!(f, "  line results, {}: the same", c.name)?;
            } else {
                writeln!(f, "  line results, {}: {} (DIFFERENT)", c.name, tally(c))?;
            }
        }
    }
    Ok(())
}

impl BenchReport {
    /// Writes the report as pretty-printed JSON to `path`.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn write_json(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_string_pretty(self)?)
            .with_context(|| format!("write {}", path.display()))
    }
}
