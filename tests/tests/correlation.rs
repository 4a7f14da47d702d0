//! Issue 19: one order followed end to end. A raw order arrives with a W3C `traceparent` and
//! `tracestate`; every record it causes — the canonical order, the inventory commands, the line
//! results, the availability, the validated order for the ERP and the order status — carries
//! its delivery id as `shelfsync-correlation-id` and the same trace context, and the log of every
//! stage names the id (with `shelfsync::trace=debug`), so one `grep` follows it from the raw topic
//! to the ERP topic. An ERP record's outputs carry its `<topic>/<partition>/<offset>`, and a
//! refused raw order's dead letter carries its trace context too. The order query
//! (`GET /v1/orders/{key}`) tells the order's status, why, its lines and its hold; last,
//! `shelfsync state inspect` reads the stopped instance's state: every task's checkpoint, and
//! the order's entries.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use shelfsync_schemas::InventoryChangeKind;
use shelfsync_tests::harness::Setup;
use shelfsync_tests::kafka_io::{http_body, http_get, read_topic, run_cli, wait_for, Record};
use shelfsync_tests::scenario::{base_timestamp, generic_order, product, stock};
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const WAIT: Duration = Duration::from_secs(120);
const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACESTATE: &str = "retailer=web-checkout";
const DELIVERY: &str = "d-trace-7";
const ORDER_KEY: &str = "ebay:T-7";

fn send(
    p: &BaseProducer,
    topic: &str,
    key: &str,
    value: &[u8],
    ts: i64,
    headers: &[(&str, &str)],
) -> Result<()> {
    let mut h = OwnedHeaders::new();
    for (name, v) in headers {
        h = h.insert(Header {
            key: name,
            value: Some(v.as_bytes()),
        });
    }
    p.send(
        BaseRecord::to(topic)
            .key(key.as_bytes())
            .payload(value)
            .timestamp(ts)
            .headers(h),
    )
    .map_err(|(e, _)| e)?;
    Ok(())
}

fn header<'a>(r: &'a Record, name: &str) -> Option<&'a str> {
    r.headers.get(name).map(String::as_str)
}

#[test]
fn one_orders_correlation_id_and_trace_context_reach_every_hop() -> Result<()> {
    let s = Setup::new(BIN, "correlation", 2)?;
    let b = s.broker.bootstrap();
    let http = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let p = s.start_with_env(
        "state",
        &[
            (
                "SHELFSYNC_LOG",
                "info,shelfsync_pipeline=debug,shelfsync::trace=debug",
            ),
            ("SHELFSYNC_HTTP_ADDR", &http.to_string()),
        ],
    )?;
    s.wait_for_tasks(&p, WAIT)?;
    let producer: BaseProducer = ClientConfig::new().set("bootstrap.servers", &b).create()?;
    let ts = base_timestamp();
    let erp_topic = s.topic(TopicId::ErpInventory);
    send(
        &producer,
        &s.topic(TopicId::ErpProducts),
        "SKU-T",
        &product("SKU-T", 1, 0, 0, vec![]),
        ts,
        &[],
    )?;
    producer.flush(Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(500));
    send(
        &producer,
        &erp_topic,
        "SKU-T",
        &stock(
            "SKU-T",
            "dc-east",
            InventoryChangeKind::SNAPSHOT,
            40,
            1,
            None,
            None,
        ),
        ts + 1_000,
        &[],
    )?;
    producer.flush(Duration::from_secs(10))?;
    std::thread::sleep(Duration::from_millis(500));
    let trace = [("traceparent", TRACEPARENT), ("tracestate", TRACESTATE)];
    let order = generic_order("ebay", "T-7", DELIVERY, true, false, &[("1", "SKU-T", 2)]);
    let raw = s.topic(TopicId::RawOrders);
    send(&producer, &raw, "T-7", &order, ts + 2_000, &trace)?;
    // A raw order nobody can read, with its own trace context.
    send(&producer, &raw, "bad", b"{not json", ts + 3_000, &trace)?;
    producer.flush(Duration::from_secs(10))?;

    let validated = s.topic(TopicId::ValidatedOrders);
    wait_for(&b, &validated, WAIT, |r| {
        r.iter()
            .any(|r| header(r, "shelfsync-correlation-id") == Some(DELIVERY))
    })
    .with_context(|| p.log_tail())?;
    wait_for(&b, &s.topic(TopicId::Dlq), WAIT, |r| !r.is_empty()).with_context(|| p.log_tail())?;

    // Every hop of the order: its records carry the delivery id and the trace context.
    for id in [
        TopicId::Orders,
        TopicId::InventoryCommands,
        TopicId::LineResults,
        TopicId::Availability,
        TopicId::ValidatedOrders,
        TopicId::OrderStatus,
    ] {
        let records = read_topic(&b, &s.topic(id))?;
        let ours: Vec<&Record> = records
            .iter()
            .filter(|r| header(r, "shelfsync-correlation-id") == Some(DELIVERY))
            .collect();
        ensure!(
            !ours.is_empty(),
            "{}: no record with correlation id {DELIVERY}: {:?}",
            s.topic(id),
            records.iter().map(|r| &r.headers).collect::<Vec<_>>()
        );
        for r in &ours {
            ensure!(
                header(r, "traceparent") == Some(TRACEPARENT)
                    && header(r, "tracestate") == Some(TRACESTATE),
                "{}[{}]@{}: trace context {:?}",
                r.topic,
                r.partition,
                r.offset,
                r.headers
            );
        }
        if matches!(id, TopicId::ValidatedOrders | TopicId::OrderStatus) {
            ensure!(
                ours.iter()
                    .all(|r| r.key.as_deref() == Some(ORDER_KEY.as_bytes())),
                "{}: the correlated records are not all of {ORDER_KEY}",
                s.topic(id)
            );
        }
    }
    // The stock record's availability carries its position in the ERP topic.
    let avail = read_topic(&b, &s.topic(TopicId::Availability))?;
    let erp_ids: Vec<&str> = avail
        .iter()
        .filter_map(|r| header(r, "shelfsync-correlation-id"))
        .filter(|c| c.starts_with(&format!("{erp_topic}/")))
        .collect();
    ensure!(
        !erp_ids.is_empty() && erp_ids.iter().all(|c| c.split('/').count() == 3),
        "no availability with an ERP position as correlation id: {erp_ids:?}"
    );
    // The dead letter carries the refused record's trace context and position.
    let dlq = read_topic(&b, &s.topic(TopicId::Dlq))?;
    let dead = dlq.first().context("a dead letter")?;
    ensure!(
        header(dead, "traceparent") == Some(TRACEPARENT)
            && header(dead, "shelfsync-correlation-id")
                .is_some_and(|c| c.starts_with(&format!("{raw}/"))),
        "dead letter headers: {:?}",
        dead.headers
    );
    // One grep of the id: a log line of every stage the order passed.
    let log = p.log();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains(DELIVERY)).collect();
    for task in ["normalize-", "dedupe-", "inventory-", "assemble-"] {
        ensure!(
            lines.iter().any(|l| l.contains(task)),
            "no log line of {task}* names {DELIVERY}:\n{}",
            lines.join("\n")
        );
    }
    ensure!(
        lines.iter().all(|l| l.contains(TRACEPARENT)),
        "a log line with the id lacks the traceparent:\n{}",
        lines.join("\n")
    );

    // The order query: its revision, line, status and why, its hold on the SKU.
    let (code, text) = http_get(http, &format!("/v1/orders/{ORDER_KEY}"))?;
    let body: serde_json::Value = serde_json::from_str(http_body(&text))
        .with_context(|| format!("/v1/orders/{ORDER_KEY}: {text}"))?;
    ensure!(
        code == 200
            && body["found"] == true
            && body["last_emitted_revision"] == 1
            && body["sent_to_erp"] == true
            && body["status"] == "ACCEPTED"
            && body["why"] == "ACCEPTED: every line reserved"
            && body["lines"][0]["sku"] == "SKU-T"
            && body["lines"][0]["reserved"] == 2
            && body["dedupe"]["revision"] == 1
            && body["holds"][0]["sku"] == "SKU-T"
            && body["holds"][0]["holds"][0]["kind"] == "hard"
            && body["holds"][0]["holds"][0]["reserved"] == 2,
        "/v1/orders/{ORDER_KEY} answered {code}: {body:#}"
    );
    let (code, _) = http_get(http, "/v1/orders/ebay:NOPE")?;
    ensure!(code == 404, "an unknown order answered {code}");
    p.stop()?;

    // The stopped instance's state, read back: every task with its checkpoint, and the order's
    // entries in the dedupe, inventory and assemble stores.
    let dir = s.dir.path().join("state");
    let dir = dir.to_str().context("path")?;
    let bin = std::path::Path::new(BIN);
    let all = run_cli(bin, &["state", "inspect", "--state-dir", dir])?;
    for task in ["normalize-0", "dedupe-1", "inventory-0", "assemble-1"] {
        ensure!(
            all.lines()
                .any(|l| l.starts_with(task) && l.contains("next offset")),
            "state inspect: no checkpoint line for {task}:\n{all}"
        );
    }
    let order = run_cli(
        bin,
        &["state", "inspect", "--state-dir", dir, "--key", ORDER_KEY],
    )?;
    for want in [
        "o:ebay:T-7 (order (dedupe))",
        "a:ebay:T-7 (order assembly)",
        "l:SKU-T|ebay:T-7|1 (line hold)",
    ] {
        ensure!(
            order.contains(want),
            "state inspect --key {ORDER_KEY}: no {want}:\n{order}"
        );
    }
    let sku = run_cli(
        bin,
        &[
            "state",
            "inspect",
            "--state-dir",
            dir,
            "--key",
            "SKU-T",
            "--format",
            "json",
        ],
    )?;
    let kinds: Vec<String> = sku
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["kind"].as_str().map(str::to_string))
        .collect();
    ensure!(
        kinds.iter().any(|k| k == "SKU record") && kinds.iter().any(|k| k == "line hold"),
        "state inspect --key SKU-T: {sku}"
    );
    Ok(())
}
