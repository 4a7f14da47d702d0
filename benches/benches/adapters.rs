//! The channel adapters: a raw webhook/poller envelope (JSON) to the canonical order, per
//! adapter, on the generator's payloads (Shopify order webhooks, Amazon getOrder +
//! getOrderItems bodies, Walmart purchase orders, the generic shape), including its repeats,
//! revisions and cancellations.
//!
//! Group `shelfsync_schemas::adapters::normalize`; the id is the adapter.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use shelfsync_benches::Feed;
use shelfsync_schemas::adapters::{normalize, AdapterKind};
use shelfsync_topology::Stage;

const PER_ADAPTER: usize = 2_000;

fn adapters(c: &mut Criterion) {
    let mut feed = Feed::new(20_000, Some(Stage::Normalize));
    let kinds: BTreeMap<String, AdapterKind> = feed
        .topology()
        .channels
        .iter()
        .map(|ch| {
            let kind = ch.adapter.as_str().parse().expect("adapter name");
            (ch.name.clone(), kind)
        })
        .collect();
    let resolve = |channel: &str| kinds.get(channel).copied();
    let mut by_kind: BTreeMap<&'static str, Vec<Vec<u8>>> = BTreeMap::new();
    while by_kind.len() < 4 || by_kind.values().any(|v| v.len() < PER_ADAPTER) {
        for input in feed.take(1_000) {
            let key = String::from_utf8_lossy(&input.key).into_owned();
            let channel = key.split(':').next().unwrap_or_default();
            if let Some(kind) = resolve(channel) {
                let v = by_kind.entry(kind.as_str()).or_default();
                if v.len() < PER_ADAPTER {
                    v.push(input.value);
                }
            }
        }
    }
    let mut g = c.benchmark_group("shelfsync_schemas::adapters::normalize");
    g.sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .throughput(Throughput::Elements(1));
    for (kind, payloads) in &by_kind {
        let bytes: usize = payloads.iter().map(Vec::len).sum();
        eprintln!(
            "{kind}: {} payloads, {} bytes on average",
            payloads.len(),
            bytes / payloads.len()
        );
        let mut i = 0;
        g.bench_function(*kind, |b| {
            b.iter(|| {
                i = (i + 1) % payloads.len();
                normalize(black_box(&payloads[i]), resolve).expect("normalizes")
            })
        });
    }
    g.finish();
}

criterion_group!(benches, adapters);
criterion_main!(benches);
