//! End to end against a real broker (Apache Kafka 4.4, KRaft): raw orders from every channel
//! adapter's fixtures plus ERP snapshots, adjustments, product changes, cancellations and
//! shipments in; availability, validated orders and statuses out, decoded from Avro and equal to
//! what the same stage logic predicts over `MemStore`. Then bad input, and a clean restart.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use anyhow::{Context, Result};
use shelfsync_schemas::{ChannelAvailability, OrderStatus, ValidatedOrder};
use shelfsync_tests::harness::{
    assert_same, decode_all, final_quantities, no_duplicate_event_ids, Setup,
};
use shelfsync_tests::kafka_io::{read_topic, wait_for, Record};
use shelfsync_tests::scenario::{Expected, InputRecord, Model, Scenario};
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const WAIT: Duration = Duration::from_secs(120);

fn setup(app: &str, partitions: i32) -> Result<Setup> {
    Setup::new(BIN, app, partitions)
}

/// Waits until the output topics hold at least what `expected` predicts, then decodes them.
fn outputs(s: &Setup, expected: &Expected) -> Result<Outputs> {
    let b = s.broker.bootstrap();
    let avail = wait_for(&b, &s.topic(TopicId::Availability), WAIT, |r| {
        r.len() >= expected.availability.len()
    })?;
    let status = wait_for(&b, &s.topic(TopicId::OrderStatus), WAIT, |r| {
        r.len() >= expected.statuses.len()
    })?;
    let validated = wait_for(&b, &s.topic(TopicId::ValidatedOrders), WAIT, |r| {
        r.len() >= expected.validated.len()
    })?;
    let dlq = wait_for(&b, &s.topic(TopicId::Dlq), WAIT, |r| {
        r.len() >= expected.dead.len()
    })?;
    Ok(Outputs {
        availability: decode_all(&avail)?,
        statuses: decode_all(&status)?,
        validated: decode_all(&validated)?,
        raw: [avail, status, validated].concat(),
        dlq,
    })
}

struct Outputs {
    availability: Vec<ChannelAvailability>,
    statuses: Vec<OrderStatus>,
    validated: Vec<ValidatedOrder>,
    raw: Vec<Record>,
    dlq: Vec<Record>,
}

fn model(setup: &Setup, scenario: &Scenario) -> Result<Vec<Expected>> {
    let mut model = Model::new(&setup.topology);
    let mut after_phase = Vec::new();
    for phase in &scenario.phases {
        for rec in phase {
            model.feed(rec)?;
        }
        after_phase.push(model.expected.clone());
    }
    Ok(after_phase)
}

/// One partition per topic: every output topic equals the model's prediction record for record.
#[test]
fn single_partition_outputs_equal_the_model_exactly() -> Result<()> {
    let s = setup("e2e-one", 1)?;
    let scenario = Scenario::retail()?;
    let expected = model(&s, &scenario)?;
    let p = s.start("state")?;
    for (phase, exp) in scenario.phases.iter().zip(&expected) {
        s.produce(phase)?;
        outputs(&s, exp).with_context(|| p.log_tail())?;
    }
    let last = expected.last().context("phases")?;
    let out = outputs(&s, last)?;
    p.stop()?;
    assert_same("availability", &out.availability, &last.availability);
    assert_same("statuses", &out.statuses, &last.statuses);
    assert_same("validated", &out.validated, &last.validated);
    assert_eq!(out.dlq.len(), last.dead.len());
    no_duplicate_event_ids("outputs", &out.raw)?;
    // The scenario exercises every status the scarce SKUs and cancellations can give.
    let codes: BTreeSet<String> = out
        .statuses
        .iter()
        .map(|s| format!("{:?}", s.status))
        .collect();
    for c in ["ACCEPTED", "REJECTED", "BACKORDERED", "CANCELLED"] {
        assert!(codes.contains(c), "no {c} status in {codes:?}");
    }
    Ok(())
}

/// Three partitions per topic: orders of different partitions interleave in any order, so the
/// intermediate availability numbers may differ from the sequential model, but the final
/// numbers, the statuses and the ERP orders must equal it.
#[test]
fn three_partitions_final_state_equals_the_model() -> Result<()> {
    let s = setup("e2e-three", 3)?;
    let scenario = Scenario::retail()?;
    let expected = model(&s, &scenario)?;
    let p = s.start("state")?;
    let b = s.broker.bootstrap();
    for (phase, exp) in scenario.phases.iter().zip(&expected) {
        s.produce(phase)?;
        let want = final_quantities(&exp.availability);
        let mut diff = String::new();
        wait_for(&b, &s.topic(TopicId::Availability), WAIT, |r| {
            let got = decode_all::<ChannelAvailability>(r)
                .map(|a| final_quantities(&a))
                .unwrap_or_default();
            diff = want
                .iter()
                .filter(|(k, v)| got.get(*k) != Some(v))
                .map(|(k, v)| format!("{k:?}: want {v}, got {:?}", got.get(k)))
                .collect::<Vec<_>>()
                .join("; ");
            got == want
        })
        .with_context(|| format!("differences: {diff}\n{}", p.log_tail()))?;
        wait_for(&b, &s.topic(TopicId::OrderStatus), WAIT, |r| {
            r.len() >= exp.statuses.len()
        })
        .with_context(|| p.log_tail())?;
    }
    let last = expected.last().context("phases")?;
    // Give stragglers (there should be none) a moment, then compare.
    std::thread::sleep(Duration::from_secs(2));
    let status = read_topic(&b, &s.topic(TopicId::OrderStatus))?;
    let validated = read_topic(&b, &s.topic(TopicId::ValidatedOrders))?;
    let avail = read_topic(&b, &s.topic(TopicId::Availability))?;
    p.stop()?;
    let statuses: Vec<OrderStatus> = decode_all(&status)?;
    let validated_orders: Vec<ValidatedOrder> = decode_all(&validated)?;
    let availability: Vec<ChannelAvailability> = decode_all(&avail)?;
    assert_eq!(
        final_quantities(&availability),
        final_quantities(&last.availability)
    );
    let set = |v: &[OrderStatus]| {
        v.iter()
            .map(|s| (s.order_key.clone(), s.revision, s.status))
            .collect::<BTreeSet<_>>()
    };
    assert_eq!(set(&statuses), set(&last.statuses));
    assert_eq!(statuses.len(), last.statuses.len());
    let vset = |v: &[ValidatedOrder]| v.iter().map(|o| format!("{o:?}")).collect::<BTreeSet<_>>();
    assert_eq!(vset(&validated_orders), vset(&last.validated));
    assert_eq!(validated_orders.len(), last.validated.len());
    no_duplicate_event_ids("outputs", &[avail, status, validated].concat())?;
    // Versions per (channel, SKU) only grow, one by one.
    let mut versions: BTreeMap<(String, String), i64> = BTreeMap::new();
    for a in &availability {
        let v = versions
            .entry((a.channel.clone(), a.sku.clone()))
            .or_insert(0);
        assert_eq!(a.version, *v + 1, "{a:?}");
        *v = a.version;
    }
    Ok(())
}

/// A clean stop after two phases and a restart on the same state dir: no reprocessing from
/// zero, no duplicate, and the same results as an uninterrupted run.
#[test]
fn clean_restart_resumes_from_the_checkpoint_without_changing_results() -> Result<()> {
    let s = setup("e2e-restart", 1)?;
    let scenario = Scenario::retail()?;
    let expected = model(&s, &scenario)?;
    let p = s.start("state")?;
    for (phase, exp) in scenario.phases.iter().zip(&expected).take(2) {
        s.produce(phase)?;
        outputs(&s, exp).with_context(|| p.log_tail())?;
    }
    p.stop()?;
    let p = s.start("state")?;
    for (phase, exp) in scenario.phases.iter().zip(&expected).skip(2) {
        s.produce(phase)?;
        outputs(&s, exp).with_context(|| p.log_tail())?;
    }
    let last = expected.last().context("phases")?;
    std::thread::sleep(Duration::from_secs(2));
    let out = outputs(&s, last)?;
    let log = std::fs::read_to_string(s.dir.path().join("state.log"))?;
    p.stop()?;
    assert_same("availability", &out.availability, &last.availability);
    assert_same("statuses", &out.statuses, &last.statuses);
    assert_same("validated", &out.validated, &last.validated);
    no_duplicate_event_ids("outputs", &out.raw)?;
    assert!(
        log.contains("resuming from local checkpoint"),
        "the restart did not use the local checkpoint:\n{log}"
    );
    Ok(())
}

/// A stream salted with garbage: every bad record is on the DLQ with a reason, every good
/// record is processed.
#[test]
fn bad_records_go_to_the_dlq_and_good_ones_are_processed() -> Result<()> {
    use shelfsync_schemas::InventoryChangeKind;
    use shelfsync_tests::scenario::{generic_order, stock, Input};
    let s = setup("e2e-dlq", 2)?;
    let mut ts = shelfsync_tests::scenario::base_timestamp();
    let mut rec = |input, value: Vec<u8>| {
        ts += 1000;
        InputRecord {
            input,
            key: None,
            value,
            timestamp: ts,
        }
    };
    let good_stock = stock(
        "SKU-1",
        "dc-east",
        InventoryChangeKind::SNAPSHOT,
        10,
        1,
        None,
        None,
    );
    let mut truncated = good_stock.clone();
    truncated.truncate(good_stock.len() - 3);
    let records = vec![
        rec(Input::ErpInventory, good_stock),
        rec(Input::ErpInventory, truncated),
        rec(Input::ErpInventory, b"\x00\x01garbage".to_vec()),
        rec(
            Input::ErpInventory,
            stock(
                "SKU-1",
                "dc-east",
                InventoryChangeKind::SNAPSHOT,
                -5,
                2,
                None,
                None,
            ),
        ),
        rec(Input::ErpProducts, vec![0xC3, 0x01, 1, 2, 3]),
        rec(Input::RawOrders, b"{not json".to_vec()),
        rec(
            Input::RawOrders,
            generic_order(
                "mystery-channel",
                "1",
                "d",
                true,
                false,
                &[("1", "SKU-1", 1)],
            ),
        ),
        rec(
            Input::RawOrders,
            generic_order("ebay", "2", "d", true, false, &[("1", "SKU-1", 0)]),
        ),
        rec(
            Input::RawOrders,
            generic_order("ebay", "3", "d", true, false, &[("1", "SKU-1", -2)]),
        ),
        rec(
            Input::RawOrders,
            generic_order("ebay", "4", "d", true, false, &[("1", "SKU-1", 2)]),
        ),
        rec(Input::RawOrders, vec![0xff; 64]),
    ];
    let mut model = Model::new(&s.topology);
    for r in &records {
        model.feed(r)?;
    }
    let expected = model.expected.clone();
    assert_eq!(expected.dead.len(), 9, "{:?}", expected.dead);
    let p = s.start("state")?;
    s.produce(&records)?;
    let out = outputs(&s, &expected).with_context(|| p.log_tail())?;
    p.stop()?;
    assert_eq!(out.dlq.len(), 9);
    for r in &out.dlq {
        for h in [
            "shelfsync-dlq-stage",
            "shelfsync-dlq-topic",
            "shelfsync-dlq-partition",
            "shelfsync-dlq-offset",
            "shelfsync-dlq-error-kind",
            "shelfsync-dlq-reason",
        ] {
            assert!(r.headers.contains_key(h), "DLQ record without {h}: {r:?}");
        }
        assert!(!r.headers["shelfsync-dlq-reason"].is_empty());
    }
    // The original bytes are kept.
    assert!(out
        .dlq
        .iter()
        .any(|r| r.value.as_deref() == Some(&b"{not json"[..])));
    let kinds: BTreeSet<&str> = out
        .dlq
        .iter()
        .map(|r| r.headers["shelfsync-dlq-error-kind"].as_str())
        .collect();
    assert!(
        kinds.contains("unknown_channel")
            && kinds.contains("bad_json")
            && kinds.contains("invalid"),
        "{kinds:?}"
    );
    // The good order went through.
    assert_eq!(out.statuses.len(), 1);
    assert_eq!(format!("{:?}", out.statuses[0].status), "ACCEPTED");
    Ok(())
}
