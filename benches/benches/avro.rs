//! Avro encode and decode (single-object framing) of every schema, on realistic values: the
//! generator's records and what the stages make of them, 2,000 distinct values per schema.
//!
//! Groups `shelfsync_schemas::avro::encode` and `shelfsync_schemas::avro::decode`; the id is
//! the schema's name.

use std::hint::black_box;
use std::time::Duration;

use criterion::measurement::WallTime;
use criterion::{criterion_group, criterion_main, BenchmarkGroup, Criterion, Throughput};
use serde::de::DeserializeOwned;
use shelfsync_benches::{Feed, Input};
use shelfsync_schemas::avro::{self, AvroRecord, Framing};
use shelfsync_schemas::{
    ChannelAvailability, DeadLetter, InventoryChange, InventoryCommand, LineResult, Order,
    OrderStatus, ProductChange, ValidatedOrder,
};
use shelfsync_topology::{Stage, TopicId};

const SAMPLES: usize = 2_000;
const SKUS: u32 = 20_000;

/// Encoded values of each schema.
struct Samples {
    by_schema: Vec<(&'static str, Vec<Vec<u8>>)>,
}

fn values(inputs: Vec<Input>) -> Vec<Vec<u8>> {
    inputs.into_iter().map(|i| i.value).take(SAMPLES).collect()
}

fn samples() -> Samples {
    let mut by_schema = Vec::new();
    let catalog = Feed::new(SKUS, Some(Stage::ErpProducts)).catalog();
    by_schema.push(("ProductChange", values(catalog)));
    let changes = Feed::new(SKUS, Some(Stage::ErpInventory)).take(SAMPLES);
    by_schema.push(("InventoryChange", values(changes)));
    let orders = Feed::new(SKUS, Some(Stage::Dedupe)).take(SAMPLES);
    let dead: Vec<Vec<u8>> = orders
        .iter()
        .enumerate()
        .map(|(i, o)| {
            let d = DeadLetter {
                stage: "dedupe".into(),
                topic: "shelfsync-orders".into(),
                partition: (i % 6) as i32,
                offset: i as i64,
                key: Some(o.key.clone()),
                value: Some(o.value.clone()),
                error_kind: "invalid".into(),
                reason: "invalid input: lines[0].quantity: must be positive".into(),
                event_time: o.ts,
            };
            avro::encode(&d, Framing::SingleObject).expect("encodes")
        })
        .collect();
    by_schema.push(("Order", values(orders)));
    let mut inventory = Feed::new(SKUS, Some(Stage::Inventory));
    let mut commands = inventory.catalog();
    commands.truncate(SAMPLES / 2);
    commands.extend(inventory.take(SAMPLES - commands.len()));
    by_schema.push(("InventoryCommand", values(commands)));
    let mut assemble = Feed::new(SKUS, Some(Stage::Assemble));
    assemble.catalog();
    by_schema.push(("LineResult", values(assemble.take(SAMPLES))));
    let mut all = Feed::new(SKUS, None);
    all.catalog();
    while all.outputs(TopicId::ValidatedOrders).len() < SAMPLES
        || all.outputs(TopicId::OrderStatus).len() < SAMPLES
    {
        all.take(1_000);
    }
    for (name, topic) in [
        ("ChannelAvailability", TopicId::Availability),
        ("ValidatedOrder", TopicId::ValidatedOrders),
        ("OrderStatus", TopicId::OrderStatus),
    ] {
        let v = all.outputs(topic);
        // The latest values: the catalog's first publications are all alike.
        by_schema.push((name, v[v.len() - SAMPLES..].to_vec()));
    }
    by_schema.push(("DeadLetter", dead));
    Samples { by_schema }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Op {
    Encode,
    Decode,
}

fn bench_schema<T: AvroRecord + DeserializeOwned>(
    g: &mut BenchmarkGroup<'_, WallTime>,
    op: Op,
    name: &str,
    encoded: &[Vec<u8>],
) {
    assert_eq!(T::NAME.rsplit('.').next(), Some(name));
    let mut i = 0;
    match op {
        Op::Encode => {
            let typed: Vec<T> = encoded
                .iter()
                .map(|b| avro::decode::<T>(b).expect("decodes"))
                .collect();
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = (i + 1) % typed.len();
                    avro::encode(black_box(&typed[i]), Framing::SingleObject).expect("encodes")
                })
            });
        }
        Op::Decode => {
            g.bench_function(name, |b| {
                b.iter(|| {
                    i = (i + 1) % encoded.len();
                    avro::decode::<T>(black_box(&encoded[i])).expect("decodes")
                })
            });
        }
    }
}

fn avro_codec(c: &mut Criterion) {
    let samples = samples();
    for (op, group) in [
        (Op::Encode, "shelfsync_schemas::avro::encode"),
        (Op::Decode, "shelfsync_schemas::avro::decode"),
    ] {
        let mut g = c.benchmark_group(group);
        g.sample_size(20)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_secs(2))
            .throughput(Throughput::Elements(1));
        for (name, encoded) in &samples.by_schema {
            let g = &mut g;
            match *name {
                "ProductChange" => bench_schema::<ProductChange>(g, op, name, encoded),
                "InventoryChange" => bench_schema::<InventoryChange>(g, op, name, encoded),
                "Order" => bench_schema::<Order>(g, op, name, encoded),
                "InventoryCommand" => bench_schema::<InventoryCommand>(g, op, name, encoded),
                "LineResult" => bench_schema::<LineResult>(g, op, name, encoded),
                "ChannelAvailability" => bench_schema::<ChannelAvailability>(g, op, name, encoded),
                "ValidatedOrder" => bench_schema::<ValidatedOrder>(g, op, name, encoded),
                "OrderStatus" => bench_schema::<OrderStatus>(g, op, name, encoded),
                "DeadLetter" => bench_schema::<DeadLetter>(g, op, name, encoded),
                other => unreachable!("no schema {other}"),
            }
        }
        g.finish();
    }
}

criterion_group!(benches, avro_codec);
criterion_main!(benches);
