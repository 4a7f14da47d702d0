//! The HTTP endpoints of `shelfsync run` against a real broker (Apache Kafka 4.4, KRaft): readiness before and
//! after the group assignment, Prometheus metrics that exist and move while input flows, and
//! the availability query equal to the last availability event of each SKU on the output topic,
//! answered by the partition the producers route the SKU to.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use shelfsync_pipeline::metrics::{self as m, ALL};
use shelfsync_schemas::{avro, ChannelAvailability, OrderStatus};
use shelfsync_tests::harness::create_topology;
use shelfsync_tests::kafka_io::{
    http_body, http_get, read_topic, wait_for, PipelineProcess, TestProducer,
};
use shelfsync_tests::scenario::{topology_toml, InputRecord, Model, Scenario};
use shelfsync_tests::Broker;
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const WAIT: Duration = Duration::from_secs(120);

/// A plain HTTP/1.1 GET: `(status, body)`.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    let (code, text) = http_get(addr, path)?;
    Ok((code, http_body(&text).to_string()))
}

fn get_json(addr: SocketAddr, path: &str) -> Result<(u16, serde_json::Value)> {
    let (code, body) = get(addr, path)?;
    let v = serde_json::from_str(&body).with_context(|| format!("{path}: {body}"))?;
    Ok((code, v))
}

/// Retries `f` every 100 ms until it returns `Some`, or fails after `timeout` with `what`.
fn eventually<T>(timeout: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Ok(v);
        }
        if Instant::now() > deadline {
            bail!("timed out after {timeout:?} waiting for {what}");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The sum of every series of `name` in a Prometheus text scrape (`None` when absent).
fn sample_sum(scrape: &str, name: &str) -> Option<f64> {
    let mut found = None;
    for line in scrape.lines().filter(|l| !l.starts_with('#')) {
        let series = line.split(['{', ' ']).next().unwrap_or("");
        if series != name {
            continue;
        }
        let value: f64 = line.rsplit(' ').next()?.parse().ok()?;
        *found.get_or_insert(0.0) += value;
    }
    found
}

fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn produce(bootstrap: &str, topology: &Topology, records: &[InputRecord]) -> Result<()> {
    let p = TestProducer::new(bootstrap)?;
    for r in records {
        p.send(
            &topology.topic_name(r.input.topic()),
            r.key.as_deref(),
            &r.value,
            r.timestamp,
        )?;
    }
    p.flush()
}

/// Latest `(quantity, version)` per SKU and channel of an availability stream.
fn latest(events: &[ChannelAvailability]) -> BTreeMap<String, BTreeMap<String, (i64, i64)>> {
    let mut out: BTreeMap<String, BTreeMap<String, (i64, i64)>> = BTreeMap::new();
    for a in events {
        let e = out
            .entry(a.sku.clone())
            .or_default()
            .entry(a.channel.clone())
            .or_insert((0, 0));
        if a.version > e.1 {
            *e = (a.quantity, a.version);
        }
    }
    out
}

fn decode_availability(records: &[shelfsync_tests::kafka_io::Record]) -> Vec<ChannelAvailability> {
    records
        .iter()
        .filter_map(|r| avro::decode(r.value.as_deref()?).ok())
        .collect()
}

fn quantities(events: &[ChannelAvailability]) -> BTreeMap<(String, String), i64> {
    latest(events)
        .into_iter()
        .flat_map(|(sku, by_channel)| {
            by_channel
                .into_iter()
                .map(move |(channel, (q, _))| ((channel, sku.clone()), q))
        })
        .collect()
}

#[test]
fn readiness_metrics_and_availability_query_against_a_real_broker() -> Result<()> {
    let mut broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir()?;
    let (topology_path, topology) = create_topology(
        Path::new(BIN),
        dir.path(),
        &topology_toml(&bootstrap, "http-metrics", 3),
    )?;

    // Start the pipeline while the broker is down: it cannot be assigned anything yet.
    broker.kill()?;
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let addr_text = addr.to_string();
    let p = PipelineProcess::start_with_env(
        Path::new(BIN),
        &topology_path,
        &dir.path().join("state"),
        &dir.path().join("state.log"),
        &[("SHELFSYNC_HTTP_ADDR", addr_text.as_str())],
    )?;
    eventually(Duration::from_secs(30), "/healthz", || {
        get(addr, "/healthz").ok().filter(|(c, _)| *c == 200)
    })
    .with_context(|| p.log_tail())?;
    for _ in 0..5 {
        let (code, body) = get_json(addr, "/readyz")?;
        ensure!(code == 503, "ready without a broker: {body}");
        ensure!(body["assigned"] == false, "{body}");
        ensure!(
            body["reason"]
                .as_str()
                .unwrap_or("")
                .contains("not assigned"),
            "{body}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    // Every series known up front is exported, at 0, before the first record.
    let (_, scrape) = get(addr, "/metrics")?;
    for metric in ALL
        .iter()
        .filter(|m| m.labels.is_empty() || m.name == m::RECORDS_IN || m.name == m::TASKS)
    {
        ensure!(
            scrape.contains(&format!("# TYPE {} ", metric.name)),
            "{} missing from the first scrape:\n{scrape}",
            metric.name
        );
    }
    ensure!(sample_sum(&scrape, m::RECORDS_IN) == Some(0.0), "{scrape}");

    // The broker comes back: the instance joins, opens its tasks and turns ready.
    broker.restart()?;
    let ready = eventually(Duration::from_secs(90), "/readyz 200", || {
        get_json(addr, "/readyz").ok().filter(|(c, _)| *c == 200)
    })
    .with_context(|| p.log_tail())?
    .1;
    ensure!(ready["restoring_tasks"] == 0, "{ready}");
    let owned = ready["tasks"].as_array().map_or(0, Vec::len);
    // 6 stages × 3 partitions (the DLQ has 1 but no stage reads it).
    ensure!(owned == 18, "owns {owned} tasks: {ready}");

    // Input flows, metrics move: records_in grows between two scrapes, phase after phase.
    let scenario = Scenario::retail()?;
    let mut model = Model::new(&topology);
    let mut records_in = 0.0;
    for phase in &scenario.phases {
        for rec in phase {
            model.feed(rec)?;
        }
        produce(&bootstrap, &topology, phase)?;
        let before = records_in;
        records_in = eventually(WAIT, "records_in to grow", || {
            let (_, text) = get(addr, "/metrics").ok()?;
            sample_sum(&text, m::RECORDS_IN).filter(|v| *v > before)
        })
        .with_context(|| p.log_tail())?;
        let want = quantities(&model.expected.availability);
        wait_for(
            &bootstrap,
            &topology.topic_name(TopicId::Availability),
            WAIT,
            |r| quantities(&decode_availability(r)) == want,
        )
        .with_context(|| p.log_tail())?;
        wait_for(
            &bootstrap,
            &topology.topic_name(TopicId::OrderStatus),
            WAIT,
            // Every revision has its status. (How many statuses a revision gets is not fixed:
            // a backorder filled by a receipt adds one, and whether a receipt on another
            // partition comes before or after the order depends on timing.)
            |r| {
                let got: std::collections::BTreeSet<(String, i32)> = r
                    .iter()
                    .filter_map(|r| avro::decode::<OrderStatus>(r.value.as_deref()?).ok())
                    .map(|s| (s.order_key, s.revision))
                    .collect();
                let want: std::collections::BTreeSet<(String, i32)> = model
                    .expected
                    .statuses
                    .iter()
                    .map(|s| (s.order_key.clone(), s.revision))
                    .collect();
                want.is_subset(&got)
            },
        )
        .with_context(|| {
            let got: Vec<String> =
                read_topic(&bootstrap, &topology.topic_name(TopicId::OrderStatus))
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|r| avro::decode::<OrderStatus>(r.value.as_deref()?).ok())
                    .map(|s| format!("{}#{} {:?}", s.order_key, s.revision, s.status))
                    .collect();
            let want: Vec<String> = model
                .expected
                .statuses
                .iter()
                .map(|s| format!("{}#{} {:?}", s.order_key, s.revision, s.status))
                .collect();
            format!("statuses got {got:?}\nwant {want:?}\n{}", p.log_tail())
        })?;
    }

    // After the run, every metric the scenario exercises is there and counted what happened.
    let availability = read_topic(&bootstrap, &topology.topic_name(TopicId::Availability))?;
    let text = eventually(
        Duration::from_secs(30),
        "consumer lag and final counts",
        || {
            let (_, text) = get(addr, "/metrics").ok()?;
            let lag_seen = sample_sum(&text, m::CONSUMER_LAG).is_some();
            let updates = sample_sum(&text, m::AVAILABILITY_UPDATES)?;
            (lag_seen && updates as usize == availability.len()).then_some(text)
        },
    )
    .with_context(|| p.log_tail())?;
    // Only on events this clean, single-instance run does not have: bad records, replays,
    // forged stamps, restarts, TTL expiry, and the per-channel intake and hold events (test
    // orders, stockless lines, forgotten hard holds), whose series appear with their channel.
    let event_only = [
        m::DLQ,
        m::STAMP_DUPLICATES,
        m::FORGED,
        m::TAIL_SUPPRESSED,
        m::STATE_EXPIRED,
        m::TEST_ORDERS_SKIPPED,
        m::ORDER_LINES_SKIPPED,
        m::HARD_HOLDS_RELEASED,
    ];
    // `shelfsync_push_*` belong to `shelfsync push` (tests/tests/push_sink.rs), not to `run`.
    for metric in ALL
        .iter()
        .filter(|m| !event_only.contains(&m.name) && !m.name.starts_with("shelfsync_push_"))
    {
        ensure!(
            text.contains(&format!("# TYPE {} {}", metric.name, metric.kind.as_str())),
            "{} ({}) missing:\n{text}",
            metric.name,
            metric.kind.as_str()
        );
        ensure!(
            text.contains(&format!("# HELP {} ", metric.name)),
            "{} has no help",
            metric.name
        );
    }
    for moved in [
        m::RECORDS_OUT,
        m::DUPLICATES_DROPPED,
        m::OVERSELL_REJECTIONS,
        m::ORDERS,
        m::EPOCHS,
        "shelfsync_epoch_commit_seconds_count",
        "shelfsync_end_to_end_seconds_count",
        "shelfsync_processing_seconds_count",
    ] {
        let v = sample_sum(&text, moved).unwrap_or(0.0);
        ensure!(v > 0.0, "{moved} did not move: {v}");
    }
    ensure!(sample_sum(&text, m::REBALANCES).unwrap_or(0.0) >= 1.0);
    ensure!(sample_sum(&text, m::TASKS) == Some(18.0), "tasks gauge");
    ensure!(sample_sum(&text, m::DELIVERY_ERRORS) == Some(0.0));

    // The availability query equals the last event per (channel, SKU) on the output topic, and
    // names the partition the producer put the SKU's inventory commands on.
    let want = latest(&decode_availability(&availability));
    ensure!(want.len() >= 5, "too few SKUs to be interesting: {want:?}");
    let commands = read_topic(&bootstrap, &topology.topic_name(TopicId::InventoryCommands))?;
    let mut partition_of: BTreeMap<String, i32> = BTreeMap::new();
    // Progress marks (no key, no value; `shelfsync-progress` header) share the topic.
    for r in commands
        .iter()
        .filter(|r| !r.headers.contains_key("shelfsync-progress"))
    {
        let key = String::from_utf8(r.key.clone().context("command without key")?)?;
        let p = *partition_of.entry(key.clone()).or_insert(r.partition);
        ensure!(
            p == r.partition,
            "{key} on partitions {p} and {}",
            r.partition
        );
    }
    let mut partitions_seen = std::collections::BTreeSet::new();
    for (sku, channels) in &want {
        let path = format!("/v1/availability/{sku}");
        let body = eventually(Duration::from_secs(30), &path, || {
            let (code, v) = get_json(addr, &path).ok()?;
            let got = channels_of(&v)?;
            (code == 200 && &got == channels).then_some(v)
        })
        .with_context(|| {
            format!(
                "{sku}: want {channels:?}, got {:?}",
                get(addr, &format!("/v1/availability/{sku}")).ok()
            )
        })?;
        ensure!(body["owner"] == "local" && body["found"] == true, "{body}");
        let partition = body["partition"].as_i64().context("partition")? as i32;
        ensure!(
            partition_of.get(sku) == Some(&partition),
            "{sku}: endpoint says partition {partition}, the producer used {:?}",
            partition_of.get(sku)
        );
        ensure!(body["task"] == format!("inventory-{partition}"), "{body}");
        partitions_seen.insert(partition);
        for field in ["on_hand", "safety_stock", "ats"] {
            ensure!(body[field].is_object(), "{field} missing: {body}");
        }
    }
    ensure!(
        partitions_seen.len() > 1,
        "every SKU on one partition: the routing check proves little ({partitions_seen:?})"
    );
    let (code, body) = get_json(addr, "/v1/availability/NO-SUCH-SKU")?;
    ensure!(code == 404 && body["found"] == false, "{code} {body}");
    p.stop()?;

    // A replacement instance with an EMPTY state dir: /readyz says not ready until every task
    // has restored its store from the changelog, then ready; the query endpoint answers the
    // same numbers from the restored state.
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
    let addr_text = addr.to_string();
    let log = dir.path().join("replacement.log");
    let q = PipelineProcess::start_with_env(
        Path::new(BIN),
        &topology_path,
        &dir.path().join("replacement-state"),
        &log,
        &[("SHELFSYNC_HTTP_ADDR", addr_text.as_str())],
    )?;
    let mut not_ready_reasons = std::collections::BTreeSet::new();
    let ready = eventually(Duration::from_secs(120), "replacement /readyz 200", || {
        let (code, body) = get_json(addr, "/readyz").ok()?;
        if code == 200 {
            return Some(body);
        }
        not_ready_reasons.insert(body["reason"].as_str().unwrap_or("").to_string());
        std::thread::sleep(Duration::from_millis(20));
        None
    })
    .with_context(|| q.log_tail())?;
    let text = String::from_utf8_lossy(&std::fs::read(&log)?).into_owned();
    ensure!(
        text.contains("restore finished"),
        "the replacement did not restore:\n{}",
        q.log_tail()
    );
    ensure!(
        !not_ready_reasons.is_empty(),
        "/readyz was never 503 before the restore"
    );
    ensure!(ready["restoring_tasks"] == 0, "{ready}");
    let (_, scrape) = get(addr, "/metrics")?;
    ensure!(
        sample_sum(&scrape, m::RESTORE_RECORDS).unwrap_or(0.0) > 0.0,
        "no restored records counted:\n{scrape}"
    );
    for (sku, channels) in &want {
        let (code, v) = get_json(addr, &format!("/v1/availability/{sku}"))?;
        ensure!(
            code == 200 && channels_of(&v).as_ref() == Some(channels),
            "{sku} after the restore: {v}"
        );
    }
    eprintln!("replacement not ready while: {not_ready_reasons:?}");
    let q_id = format!("{}:{}", hostname(), addr.port());
    let instances_topic = topology.topic_name(TopicId::Instances);
    let orders: BTreeMap<String, String> =
        shelfsync_tests::harness::final_statuses(&model.expected.statuses)
            .into_iter()
            .map(|(k, (_, status))| (k, format!("{status:?}")))
            .collect();
    second_instance_shares_the_queries(
        &topology_path,
        dir.path(),
        (&q, addr, &q_id),
        (&want, &orders),
        (&bootstrap, &instances_topic),
    )?;
    q.stop()?;
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_default()
}

/// `(channel → (quantity, version))` of an availability answer.
fn channels_of(v: &serde_json::Value) -> Option<BTreeMap<String, (i64, i64)>> {
    v["channels"]
        .as_array()?
        .iter()
        .map(|c| {
            Some((
                c["channel"].as_str()?.to_string(),
                (c["quantity"].as_i64()?, c["version"].as_i64()?),
            ))
        })
        .collect()
}

/// The tasks a ready instance at `addr` lists on `/readyz`: (all of them, the inventory ones).
fn ready_tasks(addr: SocketAddr) -> Option<(usize, Vec<String>)> {
    let (code, v) = get_json(addr, "/readyz").ok()?;
    (code == 200).then_some(())?;
    let tasks: Vec<&str> = v["tasks"]
        .as_array()?
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    let inventory = tasks
        .iter()
        .filter(|t| t.starts_with("inventory-"))
        .map(|t| t.to_string())
        .collect();
    Some((tasks.len(), inventory))
}

/// What `/v1/instances` of `addr` says: instance id → inventory tasks it holds, restored.
fn inventory_claims(addr: SocketAddr) -> Option<BTreeMap<String, usize>> {
    let (_, v) = get_json(addr, "/v1/instances").ok()?;
    v["instances"]
        .as_array()?
        .iter()
        .map(|i| {
            let held = i["tasks"]
                .as_array()?
                .iter()
                .filter(|t| {
                    t["task"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("inventory-"))
                        && t["opening"] == false
                })
                .count();
            Some((i["instance_id"].as_str()?.to_string(), held))
        })
        .collect()
}

/// A second instance joins `q` (running alone, default instance id `q_id`): the group splits
/// the tasks, each instance announces its own in the instance directory, and either instance
/// answers every SKU — from its own state, or by asking the owner, naming who answered; with
/// `?proxy=false` it names the owner and its URL. When the second one is killed, `q` gets its
/// tasks back and answers everything from its own state although the dead instance is still
/// listed; a third one's clean stop writes a tombstone that removes it.
///
/// How the inventory tasks split is the assignor's choice: librdkafka's cooperative-sticky
/// assignor balances the count of partitions, not each topic, and here it moved all three
/// inventory partitions (with dedupe and assemble) to the newcomer; either way one instance
/// answers SKUs it does not own by asking the other.
/// Per SKU, per channel: (version, quantity) of the latest availability.
type Latest = BTreeMap<String, BTreeMap<String, (i64, i64)>>;

fn second_instance_shares_the_queries(
    topology_path: &Path,
    dir: &Path,
    (q, q_addr, q_id): (&PipelineProcess, SocketAddr, &str),
    (want, orders): (&Latest, &BTreeMap<String, String>),
    (bootstrap, instances_topic): (&str, &str),
) -> Result<()> {
    // One more instance on an empty state dir and a free port, with `extra` environment.
    let start = |id: &str, extra: &[(&str, &str)]| -> Result<(PipelineProcess, SocketAddr)> {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()?).parse()?;
        let addr_text = addr.to_string();
        let mut env = vec![
            ("SHELFSYNC_HTTP_ADDR", addr_text.as_str()),
            ("SHELFSYNC_INSTANCE_ID", id),
        ];
        env.extend_from_slice(extra);
        let p = PipelineProcess::start_with_env(
            Path::new(BIN),
            topology_path,
            &dir.join(format!("{id}-state")),
            &dir.join(format!("{id}.log")),
            &env,
        )?;
        Ok((p, addr))
    };
    // A TTL of 3 minutes: after its SIGKILL below it stays listed, stale, on purpose.
    let (r, r_addr) = start("second", &[("SHELFSYNC_ANNOUNCE_INTERVAL", "60s")])?;
    // Both ready, the inventory tasks split between them, and both directories agree.
    let (q_tasks, r_tasks) = eventually(Duration::from_secs(150), "the tasks to split", || {
        let ((q_all, qt), (r_all, rt)) = (ready_tasks(q_addr)?, ready_tasks(r_addr)?);
        // 6 stages × 3 partitions, each instance with some.
        (q_all > 0 && r_all > 0 && q_all + r_all == 18 && qt.len() + rt.len() == 3)
            .then_some((qt, rt))
    })
    .with_context(|| format!("{}\n--- second:\n{}", q.log_tail(), r.log_tail()))?;
    let want_claims = BTreeMap::from([
        (q_id.to_string(), q_tasks.len()),
        ("second".into(), r_tasks.len()),
    ]);
    eventually(
        Duration::from_secs(30),
        "both directories to list both",
        || {
            [q_addr, r_addr]
                .iter()
                .all(|a| inventory_claims(*a).as_ref() == Some(&want_claims))
                .then_some(())
        },
    )
    .with_context(|| format!("{:?}", get(q_addr, "/v1/instances")))?;
    eprintln!("split: {q_id} {q_tasks:?}, second {r_tasks:?}");

    let mut answered_by = std::collections::BTreeSet::new();
    for (sku, channels) in want {
        let path = format!("/v1/availability/{sku}");
        let mut owner = None;
        for (asked, asked_id) in [(q_addr, q_id), (r_addr, "second")] {
            let (code, v) = get_json(asked, &path)?;
            ensure!(code == 200, "{sku} asked at {asked_id}: {code} {v}");
            ensure!(
                channels_of(&v).as_ref() == Some(channels),
                "{sku} at {asked_id}: {v}"
            );
            let by = v["instance"].as_str().context("instance")?.to_string();
            ensure!(
                owner.get_or_insert_with(|| by.clone()) == &by,
                "{sku}: two owners"
            );
            answered_by.insert(by.clone());
            let task = v["task"].as_str().context("task")?;
            let want_owner = if q_tasks.iter().any(|t| t == task) {
                q_id
            } else {
                "second"
            };
            ensure!(
                by == want_owner,
                "{sku} ({task}) answered by {by}, owned by {want_owner}"
            );
            // Without forwarding, the instance that does not own it points at the one that does.
            if by != asked_id {
                let (code, v) = get_json(asked, &format!("{path}?proxy=false"))?;
                let want_addr = if by == q_id { q_addr } else { r_addr };
                ensure!(
                    code == 421 && v["owner"] == "remote" && v["instance"] == by.as_str(),
                    "{sku} at {asked_id} without forwarding: {code} {v}"
                );
                ensure!(v["url"] == format!("http://{want_addr}{path}"), "{v}");
            }
        }
    }
    eprintln!("answered by {answered_by:?}");

    // The order query is routed the same way: by the owner of the order's assemble task, and
    // it tells the order's latest status as the model has it.
    let tasks_of = |addr: SocketAddr| -> Result<Vec<String>> {
        let (_, v) = get_json(addr, "/readyz")?;
        Ok(v["tasks"]
            .as_array()
            .context("tasks")?
            .iter()
            .filter_map(|t| t.as_str().map(str::to_string))
            .collect())
    };
    ensure!(!orders.is_empty(), "the scenario has no orders");
    let q_all = tasks_of(q_addr)?;
    let mut order_owners = std::collections::BTreeSet::new();
    for (order, status) in orders {
        let path = format!(
            "/v1/orders/{}",
            percent_encoding::utf8_percent_encode(order, percent_encoding::NON_ALPHANUMERIC)
        );
        for (asked, asked_id) in [(q_addr, q_id), (r_addr, "second")] {
            let (code, v) = get_json(asked, &path)?;
            ensure!(code == 200, "{order} asked at {asked_id}: {code} {v}");
            let task = v["task"].as_str().context("task")?;
            let owner = if q_all.iter().any(|t| t == task) {
                q_id
            } else {
                "second"
            };
            ensure!(
                v["instance"] == owner && v["status"] == status.as_str() && v["found"] == true,
                "{order} ({task}) asked at {asked_id}: want {status} from {owner}: {v}"
            );
            order_owners.insert(owner.to_string());
        }
    }
    eprintln!("orders answered by {order_owners:?}");

    // Killed: no tombstone, and its announcement stays live for its TTL (3 min). The group gives
    // its tasks back to q, whose later claims supersede the stale ones: q answers every SKU
    // from its own state while the dead instance is still listed.
    r.kill()?;
    eventually(
        Duration::from_secs(120),
        "q to own every task again",
        || (ready_tasks(q_addr)?.0 == 18).then_some(()),
    )
    .with_context(|| q.log_tail())?;
    let listed = |addr: SocketAddr| -> Result<Vec<String>> {
        let (_, v) = get_json(addr, "/v1/instances")?;
        Ok(v["instances"]
            .as_array()
            .context("instances")?
            .iter()
            .filter_map(|i| i["instance_id"].as_str().map(str::to_string))
            .collect())
    };
    let after_kill = listed(q_addr)?;
    ensure!(
        after_kill.iter().any(|i| i == "second"),
        "the killed instance should still be listed (stale, within its TTL): {after_kill:?}"
    );
    for (sku, channels) in want {
        let (code, v) = get_json(q_addr, &format!("/v1/availability/{sku}"))?;
        ensure!(code == 200 && v["instance"] == q_id, "{sku}: {code} {v}");
        ensure!(channels_of(&v).as_ref() == Some(channels), "{sku}: {v}");
    }

    // A clean stop writes a tombstone: a third instance joins, takes tasks, stops on SIGTERM;
    // the last record of its key on the directory topic has no value and q forgets it.
    let (t, t_addr) = start("third", &[])?;
    eventually(
        Duration::from_secs(150),
        "the third instance's tasks",
        || {
            let (q_all, t_all) = (ready_tasks(q_addr)?.0, ready_tasks(t_addr)?.0);
            (t_all > 0 && q_all + t_all == 18).then_some(())
        },
    )
    .with_context(|| format!("{}\n--- third:\n{}", q.log_tail(), t.log_tail()))?;
    t.stop()?;
    let last = read_topic(bootstrap, instances_topic)?
        .into_iter()
        .rev()
        .find(|r| r.key.as_deref() == Some(b"third".as_slice()))
        .context("no record of the third instance on the directory topic")?;
    ensure!(
        last.value.is_none(),
        "the last record of a cleanly stopped instance is not a tombstone"
    );
    eventually(
        Duration::from_secs(120),
        "q to forget the third and own every task",
        || {
            let gone = !listed(q_addr).ok()?.iter().any(|i| i == "third");
            (gone && ready_tasks(q_addr)?.0 == 18).then_some(())
        },
    )
    .with_context(|| format!("{:?}\n{}", get(q_addr, "/v1/instances"), q.log_tail()))?;
    Ok(())
}
