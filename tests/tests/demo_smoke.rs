//! `shelfsync demo` and `shelfsync generate` against a real broker (Apache Kafka 4.4, KRaft), run
//! as the binary the README's first command runs.
//!
//! The demo runs for 10 s of traffic over 200 SKUs and must exit 0 with a summary that shows
//! accepted orders, dropped duplicates, a drained pipeline and a flash sale that sold out.

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context, Result};
use shelfsync_tests::kafka_io::{read_topic, run_cli};
use shelfsync_tests::scenario::topology_toml;
use shelfsync_tests::Broker;
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");

/// Runs `BIN args…`, killing it after `limit`; returns (success, stdout, stderr).
fn run_with_limit(args: &[&str], limit: Duration) -> Result<(bool, String, String)> {
    let mut child = Command::new(BIN)
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("spawn shelfsync")?;
    let mut stdout = child.stdout.take().context("stdout")?;
    let mut stderr = child.stderr.take().context("stderr")?;
    let out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stdout.read_to_string(&mut s);
        s
    });
    let err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            let out = out.join().unwrap_or_default();
            let err = err.join().unwrap_or_default();
            bail!("shelfsync {args:?} ran longer than {limit:?}\nstdout:\n{out}\nstderr:\n{err}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    Ok((
        status.success(),
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ))
}

/// The value of the summary row `label` (the text after the label).
fn row<'a>(summary: &'a str, label: &str) -> Result<&'a str> {
    summary
        .lines()
        .map(str::trim_start)
        .find_map(|l| l.strip_prefix(label))
        .map(str::trim)
        .with_context(|| format!("no {label:?} row in the summary:\n{summary}"))
}

/// The first number of the summary row `label` (digits with thousands separators).
fn number(summary: &str, label: &str) -> Result<u64> {
    let value = row(summary, label)?;
    let digits: String = value
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == ',')
        .filter(char::is_ascii_digit)
        .collect();
    digits
        .parse()
        .with_context(|| format!("{label:?} is not a number: {value:?}"))
}

#[test]
fn the_demo_reaches_a_summary_with_a_sold_out_flash_sale() -> Result<()> {
    let broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let (ok, out, err) = run_with_limit(
        &[
            "demo",
            "--bootstrap",
            &bootstrap,
            "--duration",
            "10s",
            "--skus",
            "200",
            "--drain-timeout",
            "60s",
        ],
        Duration::from_secs(180),
    )?;
    ensure!(ok, "the demo failed\nstdout:\n{out}\nstderr:\n{err}");
    let summary = out
        .split("shelfsync demo summary")
        .nth(1)
        .with_context(|| format!("no summary in:\n{out}\nstderr:\n{err}"))?;
    // Not a terminal: plain progress lines, no cursor movements.
    ensure!(
        out.contains("] steady traffic") || out.contains("] FLASH SALE"),
        "{out}"
    );
    ensure!(!out.contains('\x1b'), "escape codes on a pipe:\n{out}");

    ensure!(number(summary, "orders accepted")? > 0, "{summary}");
    ensure!(number(summary, "duplicates dropped")? > 0, "{summary}");
    ensure!(number(summary, "dlq records")? == 0, "{summary}");
    let sold_out = row(summary, "flash-sale SKUs sold out")?;
    ensure!(
        number(summary, "flash-sale SKUs sold out")? > 0,
        "no flash-sale SKU reached 0: {sold_out}\n{summary}"
    );
    ensure!(
        row(summary, "drain")?.starts_with("lag 0"),
        "not drained:\n{summary}"
    );
    // Every order the generator sent has a status (the pipeline lost nothing).
    let statuses = row(summary, "order status events")?;
    ensure!(statuses.contains(" for "), "{statuses}");
    Ok(())
}

#[test]
fn generate_writes_the_catalog_and_traffic_to_the_input_topics() -> Result<()> {
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("topology.toml");
    std::fs::write(&path, topology_toml(&broker.bootstrap(), "gen-smoke", 2))?;
    let path = path.to_str().context("path")?;
    run_cli(Path::new(BIN), &["topics", "create", "--topology", path])?;
    let (ok, out, err) = run_with_limit(
        &[
            "generate",
            "--topology",
            path,
            "--skus",
            "50",
            "--flash-skus",
            "2",
            "--duration",
            "3s",
            "--seed",
            "7",
        ],
        Duration::from_secs(60),
    )?;
    ensure!(ok, "generate failed\nstdout:\n{out}\nstderr:\n{err}");
    let topology = Topology::load(path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let products = read_topic(
        &broker.bootstrap(),
        &topology.topic_name(TopicId::ErpProducts),
    )?;
    let stock = read_topic(
        &broker.bootstrap(),
        &topology.topic_name(TopicId::ErpInventory),
    )?;
    let orders = read_topic(
        &broker.bootstrap(),
        &topology.topic_name(TopicId::RawOrders),
    )?;
    ensure!(products.len() == 50, "{} product records", products.len());
    ensure!(stock.len() >= 100, "{} stock records", stock.len());
    ensure!(!orders.is_empty(), "no raw orders");
    // Every raw order decodes with its channel's adapter and is keyed by its order key.
    let adapter = |channel: &str| {
        topology
            .channels
            .iter()
            .find(|c| c.name == channel)
            .and_then(|c| c.adapter.as_str().parse().ok())
    };
    let mut channels = std::collections::BTreeSet::new();
    for rec in &orders {
        let value = rec.value.as_deref().context("raw order without value")?;
        let order = shelfsync_schemas::adapters::normalize(value, adapter)
            .map_err(|e| anyhow::anyhow!("{e}: {}", String::from_utf8_lossy(value)))?;
        ensure!(
            rec.key.as_deref() == Some(order.key().as_bytes()),
            "key of {}",
            order.key()
        );
        channels.insert(order.channel);
    }
    ensure!(
        channels.len() == topology.channels.len(),
        "channels seen: {channels:?}"
    );
    ensure!(
        out.contains("acknowledged by the broker"),
        "no report:\n{out}"
    );
    Ok(())
}
