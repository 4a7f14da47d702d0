//! Issue 15, item 10, against a real broker: hostile records on `<application_id>-instances`
//! must not make `shelfsync run` forward availability queries to a URL they name, nor pass on
//! what such a URL answers.
//!
//! The pipeline runs alone and first owns every task. While it runs, the test writes hostile
//! announcements that all point at a local HTTP server of its own (`http_url` with `?` or `#`,
//! `ttl_ms = i64::MAX`, a claim dated in the future, a key that is not the instance id, an
//! oversized record, and a well-formed one on a host `--peer-allow` does not permit). Then a
//! "squatter" consumer joins the application's consumer group for the inventory topic only and
//! takes inventory partitions from the instance, so that queries for their SKUs go through the
//! directory. The secret server must get no request, its body must never appear, and the
//! instance answers its own SKUs before and after. Last, a well-formed claim on an allowed host
//! (a second local server) is asked, and its non-shelfsync body is answered with a 502 that
//! does not contain it.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use shelfsync_pipeline::kafka::partition_for_key;
use shelfsync_pipeline::metrics as m;
use shelfsync_schemas::avro::{self, Framing};
use shelfsync_schemas::{ChannelAvailability, InstanceAnnouncement, TaskClaim};
use shelfsync_tests::harness::create_topology;
use shelfsync_tests::kafka_io::{
    http_body, http_get, read_topic, wait_for, PipelineProcess, TestProducer,
};
use shelfsync_tests::scenario::{topology_toml, Scenario};
use shelfsync_tests::Broker;
use shelfsync_topology::{TopicId, Topology};

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const SECRET: &str = "SECRET-BODY-7c1e";
const PARTITIONS: i32 = 3;

/// A plain HTTP/1.1 GET: `(status, whole response text)`.
fn get(addr: SocketAddr, path: &str) -> Result<(u16, String)> {
    http_get(addr, path)
}

fn body_json(text: &str) -> Result<serde_json::Value> {
    let body = http_body(text);
    serde_json::from_str(body).with_context(|| body.to_string())
}

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

/// A local HTTP server answering every request `200` with a JSON body holding [`SECRET`];
/// counts connections.
fn secret_server() -> Result<(SocketAddr, Arc<AtomicUsize>)> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let hits = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let _ = s.read(&mut buf);
            // Shaped like an answer from local state, so that a blind proxy passes it on.
            let body = format!(r#"{{"owner":"local","found":true,"note":"{SECRET}"}}"#);
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    Ok((addr, hits))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// An announcement of `id` at `url` claiming every inventory task since now.
fn claim_all(id: &str, url: String) -> InstanceAnnouncement {
    let now = now_ms();
    InstanceAnnouncement {
        instance_id: id.into(),
        http_url: url,
        announced_at: now,
        ttl_ms: 60_000,
        tasks: (0..PARTITIONS)
            .map(|p| TaskClaim {
                task: format!("inventory-{p}"),
                since: now,
                opening: false,
            })
            .collect(),
    }
}

fn sample_sum(scrape: &str, name: &str) -> f64 {
    scrape
        .lines()
        .filter(|l| !l.starts_with('#') && l.split(['{', ' ']).next() == Some(name))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// The inventory tasks `/readyz` lists (`None` unless ready).
fn inventory_tasks(addr: SocketAddr) -> Option<Vec<String>> {
    let (code, text) = get(addr, "/readyz").ok()?;
    let v = body_json(&text).ok()?;
    (code == 200).then_some(())?;
    Some(
        v["tasks"]
            .as_array()?
            .iter()
            .filter_map(|t| t.as_str())
            .filter(|t| t.starts_with("inventory-"))
            .map(str::to_string)
            .collect(),
    )
}

/// A consumer in the application's group subscribed to the inventory topic only, polling
/// until `stop`: the group gives it inventory partitions the instance then no longer owns.
fn squatter(
    bootstrap: &str,
    topology: &Topology,
    stop: Arc<AtomicBool>,
) -> Result<std::thread::JoinHandle<()>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", &topology.application_id)
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "latest")
        .create()?;
    consumer.subscribe(&[&topology.topic_name(TopicId::InventoryCommands)])?;
    Ok(std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            let _ = consumer.poll(Duration::from_millis(100));
        }
        consumer.unsubscribe();
        drop(consumer);
    }))
}

/// Asks every SKU of `skus` at `addr`; each answer must be `200` from this instance's own
/// state, and nothing may carry [`SECRET`].
fn answers_own_skus(addr: SocketAddr, skus: &[String]) -> Result<()> {
    for sku in skus {
        let (code, text) = get(addr, &format!("/v1/availability/{sku}"))?;
        anyhow::ensure!(!text.contains(SECRET), "{sku}: the secret leaked: {text}");
        let v = body_json(&text)?;
        anyhow::ensure!(code == 200 && v["owner"] == "local", "{sku}: {code} {v}");
    }
    Ok(())
}

#[test]
fn hostile_announcements_are_not_followed_and_peer_bodies_never_echoed() -> Result<()> {
    let broker = Broker::start()?;
    let bootstrap = broker.bootstrap();
    let dir = tempfile::tempdir()?;
    let (topology_path, topology) = create_topology(
        Path::new(BIN),
        dir.path(),
        &topology_toml(&bootstrap, "dir-sec", PARTITIONS),
    )?;
    let addr: SocketAddr = format!(
        "127.0.0.1:{}",
        TcpListener::bind("127.0.0.1:0")?.local_addr()?.port()
    )
    .parse()?;
    let addr_text = addr.to_string();
    let p = PipelineProcess::start_with_env(
        Path::new(BIN),
        &topology_path,
        &dir.path().join("state"),
        &dir.path().join("run.log"),
        &[
            ("SHELFSYNC_HTTP_ADDR", addr_text.as_str()),
            ("SHELFSYNC_INSTANCE_ID", "me"),
        ],
    )?;
    eventually(
        Duration::from_secs(120),
        "all 3 inventory tasks, ready",
        || inventory_tasks(addr).filter(|t| t.len() == 3),
    )
    .with_context(|| p.log_tail())?;

    // Some stock, so that SKUs have answers.
    let scenario = Scenario::retail()?;
    let producer = TestProducer::new(&bootstrap)?;
    for r in scenario.phases.iter().flatten() {
        producer.send(
            &topology.topic_name(r.input.topic()),
            r.key.as_deref(),
            &r.value,
            r.timestamp,
        )?;
    }
    producer.flush()?;
    let availability = topology.topic_name(TopicId::Availability);
    wait_for(&bootstrap, &availability, Duration::from_secs(120), |r| {
        let skus: std::collections::BTreeSet<String> = r
            .iter()
            .filter_map(|r| avro::decode::<ChannelAvailability>(r.value.as_deref()?).ok())
            .map(|a| a.sku)
            .collect();
        skus.len() >= 5
    })
    .with_context(|| p.log_tail())?;
    let mut skus: Vec<String> = read_topic(&bootstrap, &availability)?
        .iter()
        .filter_map(|r| avro::decode::<ChannelAvailability>(r.value.as_deref()?).ok())
        .map(|a| a.sku)
        .collect();
    skus.sort();
    skus.dedup();
    eventually(
        Duration::from_secs(30),
        "every SKU answered locally",
        || answers_own_skus(addr, &skus).ok(),
    )
    .with_context(|| p.log_tail())?;

    // Hostile announcements, all pointing at the secret server.
    let (secret, secret_hits) = secret_server()?;
    let instances = topology.topic_name(TopicId::Instances);
    let write = |key: &str, a: &InstanceAnnouncement| -> Result<()> {
        producer.send(
            &instances,
            Some(key.as_bytes()),
            &avro::encode(a, Framing::SingleObject)?,
            now_ms(),
        )
    };
    write(
        "evil-query",
        &claim_all("evil-query", format!("http://{secret}/?q=1")),
    )?;
    write(
        "evil-fragment",
        &claim_all("evil-fragment", format!("http://{secret}#f")),
    )?;
    write(
        "evil-path",
        &claim_all("evil-path", format!("http://{secret}/v1/x")),
    )?;
    write(
        "evil-userinfo",
        &claim_all("evil-userinfo", format!("http://me@{secret}")),
    )?;
    write(
        "evil-ttl",
        &InstanceAnnouncement {
            ttl_ms: i64::MAX,
            ..claim_all("evil-ttl", format!("http://{secret}"))
        },
    )?;
    let mut future = claim_all("evil-future", format!("http://{secret}"));
    for c in &mut future.tasks {
        c.since = i64::MAX / 2;
    }
    future.announced_at = i64::MAX / 2;
    write("evil-future", &future)?;
    write("me", &claim_all("evil-as-me", format!("http://{secret}")))?;
    let mut oversized = claim_all("evil-big", format!("http://{secret}"));
    oversized.tasks = vec![oversized.tasks[0].clone(); 8_000];
    write("evil-big", &oversized)?;
    // Well-formed, but on a host the default allow-list (this instance's own, 127.0.0.1) does
    // not permit.
    write(
        "evil-host",
        &claim_all("evil-host", format!("http://localhost:{}", secret.port())),
    )?;
    producer.flush()?;
    let rejected = eventually(Duration::from_secs(30), "8 rejections counted", || {
        let (_, scrape) = get(addr, "/metrics").ok()?;
        let n = sample_sum(&scrape, m::DIRECTORY_REJECTED);
        (n >= 8.0).then_some(n)
    })
    .with_context(|| p.log_tail())?;
    eprintln!("rejected: {rejected}");
    let (_, text) = get(addr, "/v1/instances")?;
    let listed: Vec<String> = body_json(&text)?["instances"]
        .as_array()
        .context("instances")?
        .iter()
        .filter_map(|i| i["instance_id"].as_str().map(str::to_string))
        .collect();
    anyhow::ensure!(
        listed == ["evil-host", "me"],
        "only valid announcements are listed: {listed:?}"
    );

    // The instance still answers its own SKUs.
    answers_own_skus(addr, &skus)?;

    // The squatter takes inventory partitions: their SKUs now go through the directory.
    let stop = Arc::new(AtomicBool::new(false));
    let squat = squatter(&bootstrap, &topology, Arc::clone(&stop))?;
    let kept = eventually(
        Duration::from_secs(120),
        "inventory partitions to move to the squatter",
        || inventory_tasks(addr).filter(|t| t.len() < 3),
    )
    .with_context(|| p.log_tail())?;
    let (mine, others): (Vec<String>, Vec<String>) = skus.iter().cloned().partition(|sku| {
        let task = format!(
            "inventory-{}",
            partition_for_key(sku.as_bytes(), PARTITIONS)
        );
        kept.contains(&task)
    });
    anyhow::ensure!(
        !others.is_empty(),
        "no SKU on a squatted partition: {kept:?}"
    );
    eprintln!(
        "kept {kept:?}: {} SKUs answered here, {} through the directory",
        mine.len(),
        others.len()
    );
    for _ in 0..3 {
        for sku in &others {
            let (code, text) = get(addr, &format!("/v1/availability/{sku}"))?;
            anyhow::ensure!(!text.contains(SECRET), "{sku}: the secret leaked: {text}");
            let v = body_json(&text)?;
            anyhow::ensure!(code == 421 && v["owner"] == "unknown", "{sku}: {code} {v}");
        }
        answers_own_skus(addr, &mine)?;
    }
    anyhow::ensure!(
        secret_hits.load(Ordering::SeqCst) == 0,
        "the secret server was asked {} time(s)",
        secret_hits.load(Ordering::SeqCst)
    );

    // A well-formed claim on an allowed host is asked, but what it answers is not passed on.
    let (allowed, allowed_hits) = secret_server()?;
    write(
        "evil-allowed",
        &claim_all("evil-allowed", format!("http://{allowed}")),
    )?;
    producer.flush()?;
    let sku = &others[0];
    let (code, text) = eventually(
        Duration::from_secs(30),
        "the allowed claim to be asked",
        || {
            get(addr, &format!("/v1/availability/{sku}"))
                .ok()
                .filter(|(c, _)| *c != 421)
        },
    )
    .with_context(|| p.log_tail())?;
    anyhow::ensure!(!text.contains(SECRET), "the secret leaked: {text}");
    let v = body_json(&text)?;
    anyhow::ensure!(code == 502 && v["instance"] == "evil-allowed", "{code} {v}");
    anyhow::ensure!(allowed_hits.load(Ordering::SeqCst) >= 1);
    anyhow::ensure!(secret_hits.load(Ordering::SeqCst) == 0);

    // The squatter leaves: the instance takes its tasks back and answers every SKU itself.
    stop.store(true, Ordering::SeqCst);
    let _ = squat.join();
    eventually(
        Duration::from_secs(120),
        "every SKU answered locally again",
        || {
            inventory_tasks(addr).filter(|t| t.len() == 3)?;
            answers_own_skus(addr, &skus).ok()
        },
    )
    .with_context(|| p.log_tail())?;
    let log = std::fs::read_to_string(dir.path().join("run.log"))?;
    anyhow::ensure!(!log.contains(SECRET), "the secret reached the log");
    anyhow::ensure!(
        log.contains("invalid instance announcement ignored"),
        "no warning logged"
    );
    p.stop()?;
    Ok(())
}
