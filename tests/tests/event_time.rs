//! Same events, same stock (DESIGN §2): a generated retail day through `shelfsync run`, fed
//! live (the pipeline running while the events arrive in time order) and fed as a backlog (every
//! input written before the pipeline starts, the ERP topics first), gives the final
//! availability, statuses and validated orders of the events applied in time order. Without
//! event-time alignment at the inventory stage, the backlog's ERP shipments overtake the orders
//! they ship and the results differ (the test checks that the day is that sensitive).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use shelfsync_schemas::{ChannelAvailability, OrderStatus, ValidatedOrder};
use shelfsync_tests::day::Day;
use shelfsync_tests::harness::{decode_all, final_quantities, final_statuses, Setup};
use shelfsync_tests::kafka_io::{read_topic, wait_for, PipelineProcess};
use shelfsync_tests::scenario::{Expected, InputRecord, Model};
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SEED: u64 = 20_261_206;
const EVENTS: usize = 600;
const WAIT: Duration = Duration::from_secs(240);

fn model(topology: &Topology, events: &[InputRecord]) -> Result<Expected> {
    let mut model = Model::new(topology);
    for e in events {
        model.feed(e)?;
    }
    Ok(model.expected)
}

/// What the comparison looks at: the last quantity per (channel, SKU), the last status per
/// order, and the set of validated orders.
#[derive(Debug, PartialEq, Eq)]
struct Finals {
    availability: std::collections::BTreeMap<(String, String), i64>,
    statuses: std::collections::BTreeMap<String, (i32, shelfsync_schemas::OrderStatusCode)>,
    validated: BTreeSet<String>,
}

fn finals(
    availability: &[ChannelAvailability],
    statuses: &[OrderStatus],
    validated: &[ValidatedOrder],
) -> Finals {
    Finals {
        availability: final_quantities(availability),
        statuses: final_statuses(statuses),
        validated: validated.iter().map(|v| format!("{v:?}")).collect(),
    }
}

fn differences(got: &Finals, want: &Finals) -> String {
    let mut out = Vec::new();
    for (k, v) in &want.availability {
        if got.availability.get(k) != Some(v) {
            out.push(format!(
                "{k:?}: want {v}, got {:?}",
                got.availability.get(k)
            ));
        }
    }
    for (k, v) in &want.statuses {
        if got.statuses.get(k) != Some(v) {
            out.push(format!("{k}: want {v:?}, got {:?}", got.statuses.get(k)));
        }
    }
    let missing = want.validated.difference(&got.validated).count();
    let extra = got.validated.difference(&want.validated).count();
    if missing + extra > 0 {
        out.push(format!(
            "validated orders: {missing} missing, {extra} extra"
        ));
    }
    out.truncate(12);
    out.join("\n")
}

/// Waits until the pipeline's outputs reach `want`, then checks they stay there.
fn check(s: &Setup, p: &PipelineProcess, want: &Finals, expected: &Expected) -> Result<()> {
    let b = s.broker.bootstrap();
    wait_for(&b, &s.topic(TopicId::OrderStatus), WAIT, |r| {
        r.len() >= expected.statuses.len()
    })
    .with_context(|| p.log_tail())?;
    let mut diff = String::new();
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let avail: Vec<ChannelAvailability> =
            decode_all(&read_topic(&b, &s.topic(TopicId::Availability))?)?;
        let statuses: Vec<OrderStatus> =
            decode_all(&read_topic(&b, &s.topic(TopicId::OrderStatus))?)?;
        let validated: Vec<ValidatedOrder> =
            decode_all(&read_topic(&b, &s.topic(TopicId::ValidatedOrders))?)?;
        let got = finals(&avail, &statuses, &validated);
        if got == *want {
            break;
        }
        diff = differences(&got, want);
        ensure!(
            std::time::Instant::now() < deadline,
            "results differ from the events applied in time order:\n{diff}\n{}",
            p.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // Nothing late changes them.
    std::thread::sleep(Duration::from_secs(2));
    let statuses: Vec<OrderStatus> = decode_all(&read_topic(&b, &s.topic(TopicId::OrderStatus))?)?;
    ensure!(
        final_statuses(&statuses) == want.statuses,
        "statuses moved after they matched ({diff})"
    );
    Ok(())
}

fn want(topology: &Topology, day: &Day) -> Result<(Expected, Finals)> {
    let expected = model(topology, &day.events)?;
    let want = finals(
        &expected.availability,
        &expected.statuses,
        &expected.validated,
    );
    // The day must be order-sensitive: applied ERP first, it gives other results.
    let erp_first = model(topology, &day.erp_first())?;
    let naive = finals(
        &erp_first.availability,
        &erp_first.statuses,
        &erp_first.validated,
    );
    ensure!(
        naive != want,
        "the generated day does not depend on the order of its events"
    );
    eprintln!(
        "{} events; time order vs ERP first differs in:\n{}",
        day.events.len(),
        differences(&naive, &want)
    );
    Ok((expected, want))
}

#[test]
fn a_day_fed_as_a_backlog_erp_first_gives_the_results_of_time_order() -> Result<()> {
    let s = Setup::new(BIN, "day-backlog", 1)?;
    let day = Day::generate(SEED, EVENTS);
    let (expected, want) = want(&s.topology, &day)?;
    s.produce(&day.erp_first())?;
    let p = s.start("state")?;
    check(&s, &p, &want, &expected)?;
    let log = std::fs::read_to_string(s.log_path("state"))?;
    p.stop()?;
    ensure!(
        !log.contains("applied at max_alignment_delay"),
        "records were released by the delay bound, not in order"
    );
    Ok(())
}

#[test]
fn a_day_fed_live_gives_the_results_of_time_order() -> Result<()> {
    let s = Setup::new(BIN, "day-live", 1)?;
    let day = Day::generate(SEED, EVENTS);
    let (expected, want) = want(&s.topology, &day)?;
    let p = s.start("state")?;
    for chunk in day.events.chunks(10) {
        s.produce(chunk)?;
        std::thread::sleep(Duration::from_millis(40));
    }
    check(&s, &p, &want, &expected)?;
    p.stop()?;
    Ok(())
}
