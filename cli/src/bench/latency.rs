//! The latency phase: live traffic into a fresh pipeline; an observer reading the output
//! topics times every record from produced to readable.

use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::{bail, Context};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use shelfsync_topology::{TopicId, Topology};

use crate::generator::{Generator, GeneratorStats};
use shelfsync_pipeline::kafka;

use super::drain::{drain, source_counts};
use super::pipeline::Pipeline;
use super::topology::{create_topics, phase_topology};
use super::BenchArgs;

/// Percentiles of a latency sample, milliseconds.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct Percentiles {
    /// Samples.
    pub count: usize,
    /// Median.
    pub p50: i64,
    /// 90th percentile.
    pub p90: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Maximum.
    pub max: i64,
}

pub(super) fn percentiles(mut v: Vec<i64>) -> Percentiles {
    if v.is_empty() {
        return Percentiles::default();
    }
    v.sort_unstable();
    let at = |q: f64| v[((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1];
    Percentiles {
        count: v.len(),
        p50: at(0.50),
        p90: at(0.90),
        p99: at(0.99),
        max: v[v.len() - 1],
    }
}

/// What the observer saw: per record, its timestamp and when it became readable.
#[derive(Debug, Default)]
struct Observed {
    /// ERP inventory records: (SKU, timestamp).
    erp: HashSet<(String, i64)>,
    /// Availability events: (SKU, timestamp, read at).
    availability: Vec<(String, i64, i64)>,
    /// Validated orders: (timestamp, read at).
    validated: Vec<(i64, i64)>,
}

/// The config of an observer of output topics: its own group `<app>-<name>` (never joined, it
/// assigns), no commits, fetches answered within 10 ms.
pub(super) fn observer_config(topology: &Topology, name: &str) -> rdkafka::ClientConfig {
    let mut config = kafka::base_config(topology);
    config.set("group.id", format!("{}-{name}", topology.application_id));
    config.set("enable.auto.commit", "false");
    config.set("fetch.wait.max.ms", "10");
    config
}

/// Reads the ERP input, availability and validated-order topics from the beginning until
/// `stop`, noting when each record became readable.
fn observe(topology: &Topology, stop: &AtomicBool, seen: &Mutex<Observed>) -> anyhow::Result<()> {
    let consumer: BaseConsumer = observer_config(topology, "bench-observer").create()?;
    let (erp, avail, validated) = (
        topology.topic_name(TopicId::ErpInventory),
        topology.topic_name(TopicId::Availability),
        topology.topic_name(TopicId::ValidatedOrders),
    );
    let mut tpl = TopicPartitionList::new();
    for (topic, id) in [
        (&erp, TopicId::ErpInventory),
        (&avail, TopicId::Availability),
        (&validated, TopicId::ValidatedOrders),
    ] {
        for p in 0..topology.partitions(id) {
            tpl.add_partition_offset(topic, p, Offset::Beginning)?;
        }
    }
    consumer.assign(&tpl)?;
    while !stop.load(Ordering::Relaxed) {
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let read_at = shelfsync_pipeline::clock::now_ms();
        let msg = match result {
            Ok(m) => m,
            Err(e) => {
                kafka::log_client_error(&e, "observer poll");
                continue;
            }
        };
        let ts = msg.timestamp().to_millis().unwrap_or(0);
        let key = String::from_utf8_lossy(msg.key().unwrap_or_default());
        let mut seen = seen.lock().map_err(|_| anyhow::anyhow!("observer lock"))?;
        if msg.topic() == erp {
            seen.erp.insert((key.into_owned(), ts));
        } else if msg.topic() == avail {
            let sku = key.split_once('|').map_or("", |(_, s)| s).to_string();
            seen.availability.push((sku, ts, read_at));
        } else if msg.topic() == validated {
            seen.validated.push((ts, read_at));
        }
    }
    Ok(())
}

/// Results of the latency phase.
#[derive(Debug, Default, serde::Serialize)]
pub struct LatencyResult {
    /// Order records/s and ERP updates/s asked for.
    pub offered: (f64, f64),
    /// Order records and ERP updates sent during the traffic window.
    pub sent: (u64, u64),
    /// Seconds of traffic.
    pub seconds: f64,
    /// ERP change produced → availability event readable.
    pub erp_to_availability: Percentiles,
    /// Raw order produced → validated order readable.
    pub order_to_validated: Percentiles,
    /// ERP updates that changed no channel's number (no availability event to time).
    pub erp_without_event: u64,
    /// Peak RSS of the pipeline, bytes.
    pub peak_rss: Option<u64>,
}

/// Runs the latency phase: catalog, then live traffic, timed by an observer of the outputs.
pub(super) fn run(
    args: &BenchArgs,
    base: &Topology,
    run: &str,
    dir: &Path,
) -> anyhow::Result<LatencyResult> {
    let topology = phase_topology(base, &args.bootstrap, &format!("{run}-latency"))?;
    create_topics(&topology)?;
    eprintln!(
        "latency: {} orders/s + {} ERP updates/s for {:?} ({})",
        args.traffic.orders_per_sec,
        args.traffic.erp_updates_per_sec,
        args.traffic.duration,
        topology.application_id
    );
    let seen = Mutex::new(Observed::default());
    let stop_observer = AtomicBool::new(false);
    std::thread::scope(|s| -> anyhow::Result<LatencyResult> {
        let observer = s.spawn(|| observe(&topology, &stop_observer, &seen));
        let result = (|| {
            let mut pipeline = Pipeline::spawn(&topology, dir, "latency")?;
            pipeline.wait_ready(args.timeout)?;
            let cfg = args.generator(args.traffic.skus);
            let mut generator =
                Generator::new(&topology, cfg).map_err(|e| anyhow::anyhow!("{e}"))?;
            let stop = AtomicBool::new(false);
            let stats = GeneratorStats::default();
            generator
                .load_catalog(&stop, &stats)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let catalog = stats.snapshot();
            let commands = catalog.products + catalog.snapshots;
            let expected: BTreeMap<&'static str, u64> = [("inventory", commands)].into();
            drain(&expected, args.timeout, || {
                pipeline.check_alive()?;
                pipeline.records_in()
            })
            .context("the catalog")?;
            eprintln!("  catalog of {commands} records processed; live traffic starts");
            let traffic_start = shelfsync_pipeline::clock::now_ms();
            let before = stats.snapshot();
            let report = generator
                .run_traffic(&stop, &stats)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let c = report.counts;
            let (raw, inv, prod) = source_counts(&c);
            let expected: BTreeMap<&'static str, u64> = [
                ("normalize", raw),
                ("erp-inventory", inv),
                ("erp-products", prod),
            ]
            .into();
            drain(&expected, args.timeout, || {
                pipeline.check_alive()?;
                pipeline.records_in()
            })
            .context("the traffic")?;
            let peak_rss = pipeline.peak_rss();
            pipeline.stop();
            Ok::<_, anyhow::Error>((
                traffic_start,
                (
                    c.order_records() - before.order_records(),
                    c.erp_updates - before.erp_updates,
                ),
                report.elapsed.as_secs_f64(),
                peak_rss,
            ))
        })();
        stop_observer.store(true, Ordering::Relaxed);
        match observer.join() {
            Ok(r) => r?,
            Err(_) => bail!("the observer thread panicked"),
        }
        let (traffic_start, sent, seconds, peak_rss) = result?;
        let seen = std::mem::take(&mut *seen.lock().map_err(|_| anyhow::anyhow!("observer lock"))?);
        let mut erp_lat = Vec::new();
        let mut matched: HashSet<(&str, i64)> = HashSet::new();
        for (sku, ts, read_at) in &seen.availability {
            if *ts >= traffic_start && seen.erp.contains(&(sku.clone(), *ts)) {
                erp_lat.push(read_at - ts);
                matched.insert((sku.as_str(), *ts));
            }
        }
        let erp_in_window = seen
            .erp
            .iter()
            .filter(|(_, ts)| *ts >= traffic_start)
            .count();
        let order_lat = seen
            .validated
            .iter()
            .filter(|(ts, _)| *ts >= traffic_start)
            .map(|(ts, read_at)| read_at - ts)
            .collect();
        Ok(LatencyResult {
            offered: (
                args.traffic.orders_per_sec,
                args.traffic.erp_updates_per_sec,
            ),
            sent,
            seconds,
            erp_to_availability: percentiles(erp_lat),
            order_to_validated: percentiles(order_lat),
            erp_without_event: erp_in_window.saturating_sub(matched.len()) as u64,
            peak_rss,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let p = percentiles((1..=100).collect());
        assert_eq!((p.p50, p.p90, p.p99, p.max), (50, 90, 99, 100));
        assert_eq!(percentiles(vec![]).count, 0);
    }
}
