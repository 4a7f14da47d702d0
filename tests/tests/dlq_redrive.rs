//! Issue 19: dead letters an operator can act on. A deployment maps the `ebay` channel to the
//! wrong adapter (`shopify`), so every eBay order is dead-lettered by `normalize` while the
//! other channels go on. The operator lists the dead letters, fixes the topology, restarts, and
//! redrives them (a dry run first); a second redrive sends nothing. Every order then has the
//! results of a run that never failed (the reference model under the right topology), each
//! redriven order counted once.
//!
//! The stock is ample (every line can be reserved whatever the order of arrival), so the late
//! arrival of the redriven orders cannot change anyone's outcome: what is compared is whether
//! the redrive brought every order back exactly once.

use std::time::Duration;

use anyhow::{ensure, Context, Result};
use shelfsync_schemas::{InventoryChangeKind, ValidatedOrder};
use shelfsync_tests::harness::{assert_orders_consistent, Setup};
use shelfsync_tests::kafka_io::{http_body, http_get, run_cli, wait_for, PipelineProcess};
use shelfsync_tests::scenario::{
    base_timestamp, generic_order, product, stock, Input, InputRecord, Model,
};
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const WAIT: Duration = Duration::from_secs(120);
const WRONG: &str = "name = \"ebay\"\nadapter = \"shopify\"";
const RIGHT: &str = "name = \"ebay\"\nadapter = \"generic\"";

/// Ten SKUs with ample stock, then orders on eBay and the NYC store (both generic envelopes):
/// paid, unpaid, one delivered twice, one cancelled by a second revision.
fn day() -> Vec<InputRecord> {
    let mut ts = base_timestamp();
    let mut out = Vec::new();
    let mut push = |input: Input, key: String, value: Vec<u8>| {
        ts += 1_000;
        out.push(InputRecord {
            input,
            key: Some(key.into_bytes()),
            value,
            timestamp: ts,
        });
    };
    let skus: Vec<String> = (0..10).map(|i| format!("SKU-R{i}")).collect();
    for sku in &skus {
        push(
            Input::ErpProducts,
            sku.clone(),
            product(sku, 1, 0, 0, vec![]),
        );
    }
    for sku in &skus {
        for (loc, qty) in [("dc-east", 500), ("store-nyc", 300)] {
            let value = stock(sku, loc, InventoryChangeKind::SNAPSHOT, qty, 1, None, None);
            push(Input::ErpInventory, sku.clone(), value);
        }
    }
    for n in 0..24 {
        let channel = if n % 3 == 0 { "store-nyc" } else { "ebay" };
        let id = format!("R-{n}");
        let lines = [
            ("1", skus[n % skus.len()].as_str(), 1 + (n % 3) as i64),
            ("2", skus[(n * 7 + 3) % skus.len()].as_str(), 1),
        ];
        let order = generic_order(channel, &id, &format!("d-{n}"), n % 4 != 1, false, &lines);
        push(Input::RawOrders, id.clone(), order.clone());
        if n == 4 {
            // The same delivery again: dropped by dedupe, in either run.
            push(Input::RawOrders, id.clone(), order);
        }
        if n == 5 {
            let cancel = generic_order(channel, &id, &format!("d-{n}-c"), true, true, &lines);
            push(Input::RawOrders, id.clone(), cancel);
        }
    }
    out
}

/// Starts `shelfsync run` with its HTTP endpoints on a free port.
fn start(s: &Setup) -> Result<(PipelineProcess, std::net::SocketAddr)> {
    let addr = std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?;
    let p = s.start_with_env("state", &[("SHELFSYNC_HTTP_ADDR", &addr.to_string())])?;
    Ok((p, addr))
}

/// Waits until `/metrics` has the sample `line` (name, labels and value).
fn wait_metric(addr: std::net::SocketAddr, line: &str, p: &PipelineProcess) -> Result<()> {
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let text = http_get(addr, "/metrics").map(|(_, t)| http_body(&t).to_string());
        if text.as_deref().is_ok_and(|t| t.lines().any(|l| l == line)) {
            return Ok(());
        }
        ensure!(
            std::time::Instant::now() < deadline,
            "no `{line}` in /metrics: {}\n{}",
            text.unwrap_or_default()
                .lines()
                .filter(|l| l.starts_with("shelfsync_dlq") || l.starts_with("shelfsync_redriven"))
                .collect::<Vec<_>>()
                .join("\n"),
            p.log_tail()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn cli(s: &Setup, args: &[&str]) -> Result<String> {
    let topology = s.topology_path.to_str().context("path")?;
    let mut all = vec!["dlq"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["--topology", topology]);
    run_cli(std::path::Path::new(BIN), &all)
}

#[test]
fn a_wrong_channel_mapping_is_fixed_and_its_dead_letters_redriven() -> Result<()> {
    let s = Setup::with_toml(BIN, "dlq-redrive", 2, |toml| {
        assert!(toml.contains(RIGHT), "the test topology changed: {toml}");
        toml.replace(RIGHT, WRONG)
    })?;
    let events = day();
    let ebay_raw = events
        .iter()
        .filter(|e| {
            matches!(e.input, Input::RawOrders)
                && String::from_utf8_lossy(&e.value).contains("\"channel\":\"ebay\"")
        })
        .count();
    // The reference: a run that never failed, i.e. the model under the right topology.
    let right_toml = std::fs::read_to_string(&s.topology_path)?.replace(WRONG, RIGHT);
    let right = Topology::parse_toml_str(&right_toml).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut model = Model::new(&right);
    for e in &events {
        model.feed(e)?;
    }
    let expected = model.expected;
    ensure!(
        expected.dead.is_empty(),
        "the reference dead-letters: {:?}",
        expected.dead
    );

    // The bad deployment: every eBay order is dead-lettered, the store's go through.
    let (p, addr) = start(&s)?;
    s.wait_for_tasks(&p, WAIT)?;
    s.feed_live(&events)?;
    let b = s.broker.bootstrap();
    wait_for(&b, &s.topic(TopicId::Dlq), WAIT, |r| r.len() >= ebay_raw)
        .with_context(|| p.log_tail())?;
    let listed = cli(&s, &["list", "--stage", "normalize", "--channel", "ebay"])?;
    eprintln!("{listed}");
    ensure!(
        listed.contains(&format!(
            "{ebay_raw} of {ebay_raw} dead letters shown, {ebay_raw} not redriven"
        )),
        "dlq list: {listed}"
    );
    let lines = cli(&s, &["list", "--format", "json", "--key", "ebay:R-5"])?;
    let one: Vec<serde_json::Value> = lines
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ensure!(
        one.len() == 2,
        "ebay:R-5 (an order and its cancellation): {lines}"
    );
    // Every instance watches the DLQ: how many wait, and since when.
    let first = events
        .iter()
        .filter(|e| String::from_utf8_lossy(&e.value).contains("\"channel\":\"ebay\""))
        .map(|e| e.timestamp)
        .min()
        .context("ebay orders")?;
    wait_metric(addr, &format!("shelfsync_dlq_unredriven {ebay_raw}"), &p)?;
    wait_metric(
        addr,
        &format!(
            "shelfsync_dlq_oldest_unredriven_timestamp_seconds {}",
            first as f64 / 1000.0
        ),
        &p,
    )?;
    let shown = cli(&s, &["show", one[0]["id"].as_str().context("id")?])?;
    ensure!(
        shown.contains("\"order_id\": \"R-5\"") && shown.contains("stage:    normalize"),
        "dlq show: {shown}"
    );
    p.stop()?;

    // The fix: the right adapter, a restart, a dry run, the redrive, and the redrive again.
    std::fs::write(&s.topology_path, &right_toml)?;
    let (p, addr) = start(&s)?;
    s.wait_for_tasks(&p, WAIT)?;
    let dry = cli(&s, &["redrive", "--channel", "ebay", "--dry-run"])?;
    ensure!(
        dry.contains(&format!(
            "dry run: {ebay_raw} of {ebay_raw} selected dead letters would be redriven, 0 not"
        )),
        "dry run: {dry}"
    );
    let done = cli(&s, &["redrive", "--channel", "ebay"])?;
    ensure!(
        done.contains(&format!("redriven: {ebay_raw} of {ebay_raw} selected")),
        "redrive: {done}"
    );
    let again = cli(&s, &["redrive", "--channel", "ebay"])?;
    ensure!(
        again.contains(&format!(
            "redriven: 0 of {ebay_raw} selected dead letters, {ebay_raw} not"
        )) && again.contains("already redriven"),
        "the second redrive: {again}"
    );
    s.wait_for_model(&expected, WAIT, || p.log_tail())?;
    let (_, validated) = s.read::<ValidatedOrder>(TopicId::ValidatedOrders)?;
    let (_, statuses) = s.read::<shelfsync_schemas::OrderStatus>(TopicId::OrderStatus)?;
    assert_orders_consistent(&statuses, &validated, &expected)?;
    s.no_duplicate_outputs()?;
    let taken = p.log().matches("redriven record taken").count();
    ensure!(
        taken == ebay_raw,
        "{taken} redriven records taken, want {ebay_raw}"
    );
    wait_metric(
        addr,
        &format!("shelfsync_redriven_records_total{{stage=\"normalize\"}} {ebay_raw}"),
        &p,
    )?;
    wait_metric(addr, "shelfsync_dlq_unredriven 0", &p)?;
    let listed = cli(&s, &["list", "--channel", "ebay"])?;
    ensure!(
        listed.contains(&format!(
            "{ebay_raw} of {ebay_raw} dead letters shown, 0 not redriven"
        )),
        "dlq list after the redrive: {listed}"
    );
    p.stop()?;
    Ok(())
}
