use super::*;
use crate::push::marketplaces::testing;
use shelfsync_topology::{PushKind, Topology};

/// A sink with one webhook channel whose producer cannot reach a broker and gives a record
/// up after 10 ms: every dead letter it produces is refused.
fn sink_with_refusing_producer() -> HttpPushSink {
    sink_with(Bounds::DEFAULT)
}

fn sink_with(bounds: Bounds) -> HttpPushSink {
    sink_of(bounds, PushKind::Webhook)
}

fn sink_of(bounds: Bounds, kind: PushKind) -> HttpPushSink {
    let topology = Topology::from_toml_str(
        r#"
application_id = "app"
[kafka]
bootstrap_servers = "127.0.0.1:1"
[kafka.properties]
"message.timeout.ms" = "10"
"linger.ms" = "1"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "hook"
adapter = "generic"
"#,
    )
    .unwrap();
    let producer = KafkaProducer::new(&topology).unwrap();
    HttpPushSink::new(
        vec![testing::config("hook", kind)],
        producer,
        "availability".into(),
        "dlq".into(),
        bounds,
    )
    .unwrap()
}

#[test]
fn a_refused_dead_letter_blocks_every_later_commit() {
    let sink = sink_with_refusing_producer();
    sink.assign(0, None);
    // Offset 0 is unreadable: dead-lettered (acknowledged once enqueued).
    sink.ingest(0, 0, Some(b"k"), Some(b"not avro")).unwrap();
    assert_eq!(sink.commit_points(), [(0, 1)]);
    let wait = Duration::from_secs(5);
    let first = sink.flush_dead_letters(wait).unwrap_err().to_string();
    assert!(first.contains("refused 1 dead letter"), "{first}");
    // The refusal is not forgotten by the next flush, nor by the one after a new record:
    // nothing may ever be committed past the refused dead letter.
    assert!(sink.flush_dead_letters(wait).is_err());
    sink.ingest(0, 1, None, Some(b"still not avro")).unwrap();
    assert!(sink.flush_dead_letters(wait).is_err());
}

fn record(sku: &str, version: i64) -> Vec<u8> {
    let a = ChannelAvailability {
        event_id: format!("{sku}-{version}"),
        channel: "hook".into(),
        sku: sku.into(),
        quantity: 5,
        version,
        event_time: 1,
    };
    avro::encode(&a, avro::Framing::SingleObject).unwrap()
}

#[test]
fn a_full_queue_pauses_reading_until_it_drains_to_three_quarters() {
    let sink = sink_with(Bounds {
        queue_capacity: 8,
        delivered_capacity: 4,
    });
    sink.assign(0, None);
    sink.assign(1, Some(100));
    let mut offset = 0;
    let mut ingest = |sku: &str, version| {
        sink.ingest(0, offset, None, Some(&record(sku, version)))
            .unwrap();
        offset += 1;
    };
    for i in 0..7 {
        ingest(&format!("S{i}"), 1);
    }
    // Newer versions of waiting SKUs coalesce: still 7 SKUs pending, no pause.
    ingest("S0", 2);
    ingest("S1", 2);
    assert_eq!(sink.pending(), (vec![7], 9));
    assert!(!sink.backpressure(false));
    ingest("S7", 1);
    assert!(sink.backpressure(false));
    // Only the partition that is not catching up is paused.
    assert_eq!(sink.pausable(), [0]);
    // In flight still counts as pending; delivered ones do not.
    let batch = sink.take_batch(0);
    assert!(sink.backpressure(true));
    let n = batch.len().min(2);
    sink.complete(0, &batch[..n], Delivery::all(n, ItemResult::Accepted));
    // 6 left pending: at three quarters (6 of 8) reading resumes.
    let rest = &batch[n..];
    let (pending, _) = sink.pending();
    assert_eq!(pending, [8 - n]);
    assert_eq!(sink.backpressure(true), 8 - n > 6);
    sink.complete(0, rest, Delivery::all(rest.len(), ItemResult::Accepted));
    assert!(!sink.backpressure(true));
    assert_eq!(sink.pending(), (vec![0], 0));
}

/// Issue 18, item 5: eBay's 250 revisions a listing a day are budgeted; the 251st update is
/// held (not sent, not dead-lettered, its offset not committed) with the newest quantity.
#[test]
fn an_ebay_sku_past_its_daily_revisions_is_held_not_dead_lettered() {
    let sink = sink_of(Bounds::DEFAULT, PushKind::Ebay);
    sink.assign(0, None);
    let per_day = crate::push::marketplaces::ebay::REVISIONS.per_day;
    let mut offset = 0;
    for version in 1..=i64::from(per_day) {
        sink.ingest(0, offset, None, Some(&record("A", version)))
            .unwrap();
        offset += 1;
        let batch = sink.take_batch(0);
        assert_eq!(batch.len(), 1, "revision {version} goes out");
        sink.complete(0, &batch, Delivery::all(1, ItemResult::Accepted));
    }
    assert_eq!(sink.commit_points(), [(0, offset)]);
    // Revision 251, and a newer change after it: held, coalesced, nothing dead-lettered.
    for version in [1000, 1001] {
        sink.ingest(0, offset, None, Some(&record("A", version)))
            .unwrap();
        offset += 1;
        assert!(sink.take_batch(0).is_empty());
    }
    // Another SKU still goes out.
    sink.ingest(0, offset, None, Some(&record("B", 1))).unwrap();
    let batch = sink.take_batch(0);
    assert_eq!(
        batch.iter().map(|u| u.sku.as_str()).collect::<Vec<_>>(),
        ["B"]
    );
    sink.complete(0, &batch, Delivery::all(1, ItemResult::Accepted));
    // A is pending (one SKU, its newest version) and holds the commit below its first held
    // record: a restart sends it again.
    assert_eq!(sink.pending(), (vec![1], 2));
    assert_eq!(sink.commit_points(), [(0, i64::from(per_day))]);
    let state = sink.state();
    let budget = state.channels[0].revisions.as_ref().unwrap();
    assert_eq!(budget.held(), 1);
    assert_eq!(budget.spent_today(), u64::from(per_day) + 1);
    assert_eq!(state.channels[0].queue.version_of("A"), Some(1001));
}
