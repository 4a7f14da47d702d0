//! Poison input against `shelfsync run` on Apache Kafka (issue 15): while a generated retail
//! day flows, hostile records arrive on every topic the pipeline reads — a 1.2 MiB raw order,
//! a raw order dated 50 minutes ahead (followed by an exact repeat of an earlier order), an ERP
//! adjustment of `i64::MIN`, a Confluent-framed ERP record with a schema id nobody registered,
//! forged stamps on the inventory commands topic (claiming every dedupe task is at step 10^9),
//! and a hostile announcement on the instances topic. The process keeps running, every poison
//! record that a stage reads is on the DLQ with its kind and reason (the oversize one cut to fit,
//! with its size and digest), and the day's results are exactly those of the clean events: no
//! order silenced, no soft hold expired early, no `event_id` twice. The day is fed live, and
//! once more with an idle gap before a burst (sources that went idle must not stay "caught up"
//! while the burst arrives, or the burst is applied in arrival order instead of event time).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::message::OwnedHeaders;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use shelfsync_schemas::avro::{self, Framing};
use shelfsync_schemas::{
    InstanceAnnouncement, InventoryChange, InventoryChangeKind, InventoryCommand, TaskClaim,
    ValidatedOrder,
};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::{decode_all, no_duplicate_event_ids, Setup};
use shelfsync_tests::kafka_io::{read_topic, wait_for, Record};
use shelfsync_tests::scenario::{Input, InputRecord, Model};
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 15_150_015;
const EVENTS: usize = 240;
const WAIT: Duration = Duration::from_secs(180);

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A producer that can send what the test producer cannot: headers, and a 1.2 MiB record
/// (compressed on the wire, so the broker's 1 MiB batch limit admits it, as it would from any
/// client that compresses).
fn raw_producer(bootstrap: &str) -> Result<BaseProducer> {
    Ok(ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("compression.type", "lz4")
        .set("message.max.bytes", "4000000")
        .create()?)
}

fn send(
    p: &BaseProducer,
    topic: &str,
    partition: Option<i32>,
    key: &[u8],
    value: &[u8],
    ts: i64,
    headers: &[(&str, &str)],
) -> Result<()> {
    let mut h = OwnedHeaders::new();
    for (name, v) in headers {
        h = h.insert(rdkafka::message::Header {
            key: name,
            value: Some(v.as_bytes()),
        });
    }
    let mut rec = BaseRecord::to(topic)
        .key(key)
        .payload(value)
        .timestamp(ts)
        .headers(h);
    if let Some(p) = partition {
        rec = rec.partition(p);
    }
    p.send(rec).map_err(|(e, _)| e)?;
    Ok(())
}

fn header<'a>(r: &'a Record, name: &str) -> &'a str {
    r.headers.get(name).map_or("", String::as_str)
}

/// How the clean day reaches the pipeline around the poison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Feed {
    /// In small chunks with short pauses, as `event_time.rs` feeds a day live.
    Live,
    /// The first half, a wait for the first status (the sources go idle: their progress
    /// marks say "caught up"), then the poison and the second half in one burst.
    GapThenBurst,
}

#[test]
fn poison_records_are_dead_lettered_and_the_day_goes_on() -> Result<()> {
    poison_day("poison", Feed::Live)
}

#[test]
fn poison_after_an_idle_gap_keeps_event_time_order() -> Result<()> {
    poison_day("poison-gap", Feed::GapThenBurst)
}

fn poison_day(app: &str, feed: Feed) -> Result<()> {
    let s = Setup::new(BIN, app, 2)?;
    let b = s.broker.bootstrap();
    let day = Day::generate(SEED, EVENTS);
    let (first, second) = day.events.split_at(day.events.len() / 2);
    // An exact repeat of an early order, after everything (it must be dropped by dedupe, as the
    // model drops it: a future-dated record must not have expired its dedup window).
    let repeat = day
        .events
        .iter()
        .find(|e| matches!(e.input, Input::RawOrders))
        .context("the day has orders")?;
    let last_ts = day.events.last().map_or(0, |e| e.timestamp);
    let repeat = InputRecord {
        timestamp: last_ts + 1_000,
        ..repeat.clone()
    };
    let mut clean: Vec<InputRecord> = day.events.clone();
    clean.push(repeat.clone());
    let mut model = Model::new(&s.topology);
    for e in &clean {
        model.feed(e)?;
    }
    let expected = model.expected;

    let p = s.start("state")?;
    let live = |events: &[InputRecord]| -> Result<()> {
        if feed == Feed::GapThenBurst {
            return s.produce(events);
        }
        for chunk in events.chunks(10) {
            s.produce(chunk)?;
            std::thread::sleep(Duration::from_millis(40));
        }
        Ok(())
    };
    live(first)?;
    if feed == Feed::GapThenBurst {
        wait_for(&b, &s.topic(TopicId::OrderStatus), WAIT, |r| !r.is_empty())
            .with_context(|| p.log_tail())?;
        std::thread::sleep(Duration::from_secs(3));
    }

    let raw = raw_producer(&b)?;
    let mid_ts = first.last().map_or(0, |e| e.timestamp);
    // 1. A raw order of 1.2 MiB.
    let mut big =
        br#"{"channel":"ebay","delivery_id":"big","received_at":1,"payload":{"note":""#.to_vec();
    big.extend(std::iter::repeat_n(b'x', 1_200_000));
    big.extend_from_slice(br#""}}"#);
    send(
        &raw,
        &s.topic(TopicId::RawOrders),
        None,
        b"ebay:BIG",
        &big,
        mid_ts,
        &[],
    )?;
    // 2. A raw order dated 50 minutes ahead (a copy of a real order): beyond shelfsync's
    //    `max_future_skew` (5m) and every soft hold TTL, within what Apache Kafka 4's default
    //    `log.message.timestamp.after.max.ms` (1 h) lets a producer write.
    let future_ts = now_ms() + 50 * 60_000;
    send(
        &raw,
        &s.topic(TopicId::RawOrders),
        None,
        repeat.key.as_deref().unwrap_or_default(),
        &repeat.value,
        future_ts,
        &[],
    )?;
    // 3. An ERP adjustment of i64::MIN.
    let change = InventoryChange {
        sku: "DAY-01".into(),
        location: "dc-east".into(),
        kind: InventoryChangeKind::ADJUSTMENT,
        quantity: i64::MIN,
        erp_sequence: 1_000_000,
        reason: None,
        order_key: None,
        line_id: None,
        event_time: 0,
    };
    let min = avro::encode(&change, Framing::SingleObject)?;
    send(
        &raw,
        &s.topic(TopicId::ErpInventory),
        None,
        b"DAY-01",
        &min,
        mid_ts,
        &[],
    )?;
    // 4. A Confluent-framed ERP record with a schema id nobody knows (a +1000 adjustment that
    //    would change availability if it were applied).
    let plus = InventoryChange {
        quantity: 1000,
        erp_sequence: 1_000_001,
        ..change.clone()
    };
    let confluent = avro::encode(&plus, Framing::Confluent { schema_id: 4242 })?;
    send(
        &raw,
        &s.topic(TopicId::ErpInventory),
        None,
        b"DAY-01",
        &confluent,
        mid_ts,
        &[],
    )?;
    // 5. Forged stamps on the inventory commands topic, one per partition and dedupe task,
    //    each carrying a +1000 adjustment.
    let command = avro::encode(
        &InventoryCommand::inventory(InventoryChange {
            erp_sequence: 1_000_002,
            ..plus.clone()
        }),
        Framing::SingleObject,
    )?;
    let mut forged = 0;
    for partition in 0..2 {
        for task in ["dedupe-0", "dedupe-1"] {
            let stamp = format!("{task}/1000000000/0");
            send(
                &raw,
                &s.topic(TopicId::InventoryCommands),
                Some(partition),
                b"DAY-01",
                &command,
                mid_ts,
                &[("shelfsync-stamp", stamp.as_str())],
            )?;
            forged += 1;
        }
    }
    // 6. A hostile directory announcement: any URL, a TTL for ever, every task.
    let hostile = InstanceAnnouncement {
        instance_id: "evil".into(),
        http_url: "http://127.0.0.1:9/steal?x=#".into(),
        announced_at: now_ms(),
        ttl_ms: i64::MAX,
        tasks: (0..2)
            .map(|p| TaskClaim {
                task: format!("inventory-{p}"),
                since: i64::MAX,
                opening: false,
            })
            .collect(),
    };
    send(
        &raw,
        &s.topic(TopicId::Instances),
        None,
        b"evil",
        &avro::encode(&hostile, Framing::SingleObject)?,
        now_ms(),
        &[],
    )?;
    raw.flush(Duration::from_secs(60))?;
    let raw_orders = read_topic(&b, &s.topic(TopicId::RawOrders))?;
    ensure!(
        raw_orders.iter().any(|r| r.timestamp == Some(future_ts)),
        "the broker refused the future-dated record"
    );
    ensure!(
        raw_orders
            .iter()
            .any(|r| r.value.as_ref().is_some_and(|v| v.len() == big.len())),
        "the broker refused the 1.2 MiB record"
    );

    live(second)?;
    s.produce(std::slice::from_ref(&repeat))?;

    // The DLQ holds every poison record a stage reads, with its kind and reason.
    let kinds = |r: &[Record]| -> BTreeSet<String> {
        r.iter()
            .map(|r| header(r, "shelfsync-dlq-error-kind").to_string())
            .collect()
    };
    let want_kinds = [
        "oversize",
        "future_timestamp",
        "invalid",
        "unknown_schema_id",
        "forged_stamp",
    ];
    let dlq = wait_for(&b, &s.topic(TopicId::Dlq), WAIT, |r| {
        let k = kinds(r);
        want_kinds.iter().all(|w| k.contains(*w))
    })
    .with_context(|| {
        let so_far = read_topic(&b, &s.topic(TopicId::Dlq)).unwrap_or_default();
        format!(
            "DLQ kinds so far: {:?}; log:\n{}",
            kinds(&so_far),
            p.log_tail()
                .lines()
                .filter(|l| !l.contains("order status"))
                .collect::<Vec<_>>()
                .join("\n")
        )
    })?;
    let of_kind = |kind: &str| -> Vec<&Record> {
        dlq.iter()
            .filter(|r| header(r, "shelfsync-dlq-error-kind") == kind)
            .collect()
    };
    let oversize = of_kind("oversize");
    ensure!(
        oversize.len() == 1,
        "{} oversize dead letters",
        oversize.len()
    );
    let o = oversize[0];
    ensure!(
        header(o, "shelfsync-dlq-truncated") == "true"
            && header(o, "shelfsync-dlq-original-bytes") == format!("key=8,value={}", big.len())
            && header(o, "shelfsync-dlq-value-sha256").len() == 64
            && o.value
                .as_ref()
                .is_some_and(|v| v.len() < big.len() && big.starts_with(v)),
        "oversize dead letter: {:?}",
        o.headers
    );
    ensure!(header(o, "shelfsync-dlq-reason").contains("bytes"));
    let future = of_kind("future_timestamp");
    ensure!(
        future.len() == 1 && header(future[0], "shelfsync-dlq-reason").contains("ahead"),
        "{future:?}"
    );
    let invalid = of_kind("invalid");
    ensure!(
        invalid
            .iter()
            .any(|r| header(r, "shelfsync-dlq-reason").contains("quantity")),
        "no dead letter names the i64::MIN quantity: {invalid:?}"
    );
    ensure!(of_kind("unknown_schema_id").len() == 1);
    let forged_letters = of_kind("forged_stamp");
    ensure!(
        forged_letters.len() == forged,
        "{} of {forged} forged stamps dead-lettered",
        forged_letters.len()
    );
    ensure!(header(forged_letters[0], "shelfsync-dlq-reason").contains("does not verify"));

    // The day's results are those of the clean events: every order has its status (none
    // silenced by a forged stamp), no +1000 was applied, the repeat was dropped.
    s.wait_for_model(&expected, WAIT, || p.log_tail())?;
    std::thread::sleep(Duration::from_secs(2));
    let statuses = read_topic(&b, &s.topic(TopicId::OrderStatus))?;
    no_duplicate_event_ids("order status", &statuses)?;
    no_duplicate_event_ids(
        "availability",
        &read_topic(&b, &s.topic(TopicId::Availability))?,
    )?;
    let validated: Vec<ValidatedOrder> =
        decode_all(&read_topic(&b, &s.topic(TopicId::ValidatedOrders))?)?;
    ensure!(
        validated.len() == expected.validated.len(),
        "{} validated orders, the clean day has {}",
        validated.len(),
        expected.validated.len()
    );
    // Still running: a clean stop exits 0.
    p.stop()?;
    Ok(())
}
