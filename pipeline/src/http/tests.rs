//! Unit tests of the HTTP endpoints against committed state and a fake directory.

use std::io::{Read, Write};

use shelfsync_operators::reserve_inventory::ReserveInventory;
use shelfsync_operators::Operator;
use shelfsync_schemas::{InventoryChange, InventoryChangeKind, InventoryCommand};

use super::*;
use crate::directory::PeerAllow;
use crate::kafka::partition_for_key;
use crate::metrics as m;
use crate::metrics::prometheus_builder;
use crate::rocks_store::StateDb;
use query::PATH_SEGMENT;

const TOPOLOGY: &str = r#"
    application_id = "http-unit"
    [kafka]
    bootstrap_servers = "127.0.0.1:1"
    [topics]
    partitions = 4
    [[locations]]
    id = "dc-east"
    name = "East"
    [[locations]]
    id = "store-nyc"
    name = "NYC"
    [[channels]]
    name = "amazon"
    adapter = "amazon"
    share_pct = 40
    buffer = 2
    [[channels]]
    name = "ebay"
    adapter = "generic"
    eligible_locations = ["dc-east"]
"#;

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let (code, _, body) = request(addr, path, "");
    (code, body)
}

/// A GET with extra header lines (each ending in `\r\n`): status, head (lower-cased), body.
fn request(addr: SocketAddr, path: &str, headers: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    (code, head.to_lowercase(), body.to_string())
}

fn json_of(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn snapshot(sku: &str, location: &str, qty: i64, seq: i64) -> InventoryCommand {
    InventoryCommand::inventory(InventoryChange {
        sku: sku.into(),
        location: location.into(),
        kind: InventoryChangeKind::SNAPSHOT,
        quantity: qty,
        erp_sequence: seq,
        reason: None,
        order_key: None,
        line_id: None,
        event_time: 0,
    })
}

#[test]
fn endpoints_answer_from_status_and_committed_state() {
    let topology = Arc::new(Topology::from_toml_str(TOPOLOGY).unwrap());
    let status = Arc::new(EngineStatus::default());
    let recorder = prometheus_builder().unwrap().build_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        m::describe_all();
        m::register_known_series();
        metrics::histogram!(m::EPOCH_COMMIT_SECONDS).record(0.003);
    });
    let server = serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&topology),
        Arc::clone(&status),
        handle,
    )
    .unwrap();
    let addr = server.local_addr();

    // Liveness always; readiness only once assigned and not restoring.
    assert_eq!(get(addr, "/healthz").0, 200);
    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 503, "{body}");
    assert!(json_of(&body)["reason"]
        .as_str()
        .unwrap()
        .contains("not assigned"));
    status.assigned.store(true, Ordering::SeqCst);
    status.restoring_tasks.store(2, Ordering::SeqCst);
    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 503);
    assert!(json_of(&body)["reason"]
        .as_str()
        .unwrap()
        .contains("2 task(s) restoring"));
    status.restoring_tasks.store(0, Ordering::SeqCst);
    let (code, body) = get(addr, "/readyz");
    assert_eq!(code, 200, "{body}");
    assert_eq!(json_of(&body)["ready"], true);

    // Metrics: text format, help lines, zeroed known series, real histogram buckets.
    let (code, text) = get(addr, "/metrics");
    assert_eq!(code, 200);
    assert!(text.contains("# HELP shelfsync_records_in_total Input records read"));
    assert!(text.contains("shelfsync_records_in_total{stage=\"inventory\"} 0"));
    assert!(text.contains("# TYPE shelfsync_epoch_commit_seconds histogram"));
    assert!(text.contains("shelfsync_epoch_commit_seconds_bucket{le=\"0.005\"} 1"));
    assert!(text.contains("shelfsync_build_info{version="));

    // Availability: state of a SKU on an owned partition, committed to RocksDB.
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 16 << 20).unwrap();
    let sku = "SKU-42";
    let p = partition_for_key(sku.as_bytes(), 4);
    let task = format!("inventory-{p}");
    let op = ReserveInventory::new(topology.inventory_config());
    let mut store = db.store(&task).unwrap();
    let mut out = Vec::new();
    op.process(
        &mut store,
        1_000,
        &snapshot(sku, "dc-east", 30, 1),
        &mut out,
    )
    .unwrap();
    op.process(
        &mut store,
        2_000,
        &snapshot(sku, "store-nyc", 10, 1),
        &mut out,
    )
    .unwrap();
    // Two holds, the younger reserved first in key order: the answer lists them oldest first.
    let hold = |order: &str, qty: i64, paid: bool| {
        InventoryCommand::reserve(shelfsync_schemas::LineCommand {
            order_key: format!("amazon:{order}"),
            channel: "amazon".into(),
            channel_order_id: order.into(),
            revision: 1,
            lines_in_revision: 1,
            line_id: "1".into(),
            sku: sku.into(),
            quantity: qty,
            paid,
            cancelled: false,
            placed_at: 0,
            ..shelfsync_schemas::LineCommand::default()
        })
    };
    op.process(&mut store, 2_500, &hold("B", 1, true), &mut out)
        .unwrap();
    op.process(&mut store, 2_600, &hold("A", 2, false), &mut out)
        .unwrap();
    let release = |order: &str, qty: i64| match hold(order, qty, true) {
        InventoryCommand { line: Some(l), .. } => InventoryCommand::release(l),
        other => other,
    };
    store.commit(&[], true).unwrap();
    // Not owned here yet: a pointer to the owning task.
    let _ = status.db.set(db.clone());
    let (code, body) = get(addr, &format!("/v1/availability/{sku}"));
    assert_eq!(code, 421, "{body}");
    let v = json_of(&body);
    // No directory on this server: the owner is unknown, the task is named.
    assert_eq!(v["owner"], "unknown");
    assert_eq!(v["task"], task.as_str());
    assert_eq!(v["partition"], p);

    status.owned.lock().unwrap().insert(task.clone());
    let (code, body) = get(addr, &format!("/v1/availability/{sku}"));
    assert_eq!(code, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["owner"], "local");
    assert_eq!(v["found"], true);
    assert_eq!(v["partition"], p);
    assert_eq!(
        v["on_hand"],
        serde_json::json!({"dc-east": 30, "store-nyc": 10})
    );
    assert_eq!(v["reserved"], 3);
    let holds: Vec<(String, String, i64, i64)> = v["holds"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["order_key"].as_str().unwrap().to_string(),
                h["kind"].as_str().unwrap().to_string(),
                h["reserved"].as_i64().unwrap(),
                h["age_ms"].as_i64().unwrap(),
            )
        })
        .collect();
    // Stream time 2,600: B (hard, reserved at 2,500) is 100 ms old, A (soft) 0.
    assert_eq!(
        holds,
        [
            ("amazon:B".into(), "hard".into(), 1, 100),
            ("amazon:A".into(), "soft".into(), 2, 0)
        ]
    );
    assert_eq!(v["holds_truncated"], false);
    // The holds go before the rest of this test's numbers.
    op.process(&mut store, 2_700, &release("A", 2), &mut out)
        .unwrap();
    op.process(&mut store, 2_800, &release("B", 1), &mut out)
        .unwrap();
    store.commit(&[], true).unwrap();
    let (code, body) = get(addr, &format!("/v1/availability/{sku}"));
    assert_eq!(code, 200, "{body}");
    let v = json_of(&body);
    assert_eq!(v["reserved"], 0);
    assert_eq!(v["holds"], serde_json::json!([]));
    // ATS 40 on every location: amazon 40% of 40 − 2 = 14; ebay sees dc-east only: 30.
    assert_eq!(v["ats"], serde_json::json!({"amazon": 40, "ebay": 30}));
    assert_eq!(
        v["safety_stock"],
        serde_json::json!({"amazon": 0, "ebay": 0})
    );
    let channels: Vec<(String, i64, i64)> = v["channels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["channel"].as_str().unwrap().to_string(),
                c["quantity"].as_i64().unwrap(),
                c["version"].as_i64().unwrap(),
            )
        })
        .collect();
    // Versions count every change: the two holds and their releases moved both channels.
    assert_eq!(
        channels,
        [("amazon".to_string(), 14, 6), ("ebay".to_string(), 30, 5)]
    );

    // A SKU nobody wrote, on an owned partition.
    let unknown = (0..)
        .map(|i| format!("NOPE-{i}"))
        .find(|s| partition_for_key(s.as_bytes(), 4) == p)
        .unwrap();
    let (code, body) = get(addr, &format!("/v1/availability/{unknown}"));
    assert_eq!(code, 404, "{body}");
    assert_eq!(json_of(&body)["found"], false);
    assert_eq!(json_of(&body)["owner"], "local");

    server.shutdown();
    assert!(std::net::TcpStream::connect(addr).is_err());
}

/// Two servers in one process: `a` owns the SKU's task, `b` does not; the directory they
/// share is filled by hand (the broker-backed one is tested in tests/tests/http_metrics.rs).
#[test]
fn a_query_for_a_sku_owned_elsewhere_is_forwarded_once_or_pointed_at_its_owner() {
    let topology = Arc::new(Topology::from_toml_str(TOPOLOGY).unwrap());
    let handle = || prometheus_builder().unwrap().build_recorder().handle();
    let (status_a, status_b) = (
        Arc::new(EngineStatus::default()),
        Arc::new(EngineStatus::default()),
    );
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let a = serve(
        local,
        Arc::clone(&topology),
        Arc::clone(&status_a),
        handle(),
    )
    .unwrap();
    let b = serve(
        local,
        Arc::clone(&topology),
        Arc::clone(&status_b),
        handle(),
    )
    .unwrap();
    let directory = Arc::new(Directory::default());
    let identity = |name: &str, server: &HttpServer| Identity {
        instance_id: name.into(),
        http_url: format!("http://{}", server.local_addr()),
    };
    let (id_a, id_b) = (identity("a", &a), identity("b", &b));
    for (server, me) in [(&a, &id_a), (&b, &id_b)] {
        server.route_queries(Routing {
            me: me.clone(),
            directory: Arc::clone(&directory),
            allow: PeerAllow::parse("127.0.0.1").unwrap(),
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let db = StateDb::open(dir.path(), 16 << 20).unwrap();
    // A SKU with a slash and a space: the forwarded URL must encode it.
    let sku = "SKU 42/b";
    let p = partition_for_key(sku.as_bytes(), 4);
    let task = format!("inventory-{p}");
    let op = ReserveInventory::new(topology.inventory_config());
    let mut store = db.store(&task).unwrap();
    op.process(
        &mut store,
        1_000,
        &snapshot(sku, "dc-east", 30, 1),
        &mut Vec::new(),
    )
    .unwrap();
    store.commit(&[], true).unwrap();
    let _ = status_a.db.set(db);
    status_a.owned.lock().unwrap().insert(task.clone());
    let path = format!(
        "/v1/availability/{}",
        percent_encoding::utf8_percent_encode(sku, PATH_SEGMENT)
    );
    let announce = |who: &Identity, since: i64, opening: bool| {
        directory
            .apply(
                &who.instance_id,
                Some(shelfsync_schemas::InstanceAnnouncement {
                    instance_id: who.instance_id.clone(),
                    http_url: who.http_url.clone(),
                    announced_at: crate::clock::now_ms(),
                    ttl_ms: 60_000,
                    tasks: vec![shelfsync_schemas::TaskClaim {
                        task: task.clone(),
                        since,
                        opening,
                    }],
                }),
                crate::clock::now_ms(),
            )
            .unwrap();
    };

    // Nobody announces the task yet: b names the task, says the owner is unknown.
    let (code, _, body) = request(b.local_addr(), &path, "");
    let v = json_of(&body);
    assert_eq!(
        (code, v["owner"].as_str()),
        (421, Some("unknown")),
        "{body}"
    );
    assert_eq!(v["task"], task.as_str());
    assert!(
        v["detail"]
            .as_str()
            .unwrap()
            .contains("no live instance announces"),
        "{body}"
    );

    // a announces it: b forwards and answers with a's numbers, saying who answered.
    announce(&id_a, 1_000, false);
    let (code, head, body) = request(b.local_addr(), &path, "");
    assert_eq!(code, 200, "{body}");
    assert!(head.contains(&format!("{ANSWERED_BY}: a")), "{head}");
    let v = json_of(&body);
    assert_eq!(
        (v["owner"].as_str(), v["instance"].as_str()),
        (Some("local"), Some("a"))
    );
    assert_eq!(v["sku"], sku);
    assert_eq!(v["on_hand"], serde_json::json!({"dc-east": 30}));
    assert_eq!(
        json_of(&request(a.local_addr(), &path, "").2),
        v,
        "the owner's own answer"
    );

    // ?proxy=false, or a query another instance already forwarded: only the pointer.
    for (query, headers) in [
        ("?proxy=false", String::new()),
        ("", format!("{FORWARDED_BY}: c\r\n")),
    ] {
        let (code, _, body) = request(b.local_addr(), &format!("{path}{query}"), &headers);
        let v = json_of(&body);
        assert_eq!(
            (code, v["owner"].as_str(), v["instance"].as_str()),
            (421, Some("remote"), Some("a")),
            "{body}"
        );
        assert_eq!(v["url"], format!("{}{path}", id_a.http_url));
    }

    // A later claim (b was given the task and is restoring it) wins over a's: b does not
    // ask itself, it says it is restoring the task.
    announce(&id_b, 2_000, true);
    let (code, _, body) = request(a.local_addr(), &path, "");
    assert_eq!(code, 200, "a still owns it locally and answers: {body}");
    status_a.owned.lock().unwrap().clear();
    let (code, _, body) = request(a.local_addr(), &path, "");
    let v = json_of(&body);
    assert_eq!(
        (code, v["instance"].as_str(), v["opening"].as_bool()),
        (421, Some("b"), Some(true)),
        "{body}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("restoring"),
        "{body}"
    );

    // An owner that does not answer from its state: the pointer, with why.
    announce(&id_b, 3_000, false);
    let (code, _, body) = request(a.local_addr(), &path, "");
    let v = json_of(&body);
    assert_eq!((code, v["instance"].as_str()), (421, Some("b")), "{body}");
    assert!(
        v["detail"].as_str().unwrap().contains("asking it failed"),
        "{body}"
    );

    // b itself, while it opens the task, says so instead of pointing anywhere.
    status_b.opening.lock().unwrap().insert(task.clone());
    let (code, _, body) = request(b.local_addr(), &path, "");
    let v = json_of(&body);
    assert_eq!((code, v["opening"].as_bool()), (503, Some(true)), "{body}");
    status_b.opening.lock().unwrap().clear();

    // /v1/instances lists both, with their tasks.
    let (code, _, body) = request(a.local_addr(), "/v1/instances", "");
    let v = json_of(&body);
    assert_eq!(code, 200, "{body}");
    assert_eq!(v["self"]["instance_id"], "a");
    let ids: Vec<&str> = v["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|i| i["instance_id"].as_str())
        .collect();
    assert_eq!(ids, ["a", "b"]);
    a.shutdown();
    b.shutdown();
}

#[test]
fn a_busy_address_is_a_config_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let topology = Arc::new(Topology::from_toml_str(TOPOLOGY).unwrap());
    let handle = prometheus_builder().unwrap().build_recorder().handle();
    let err = serve(
        taken.local_addr().unwrap(),
        topology,
        Arc::new(EngineStatus::default()),
        handle,
    )
    .unwrap_err();
    assert!(matches!(err, Error::Config(_)), "{err}");
}

/// A peer that answers every connection with `response` (a whole HTTP/1.1 response, built by
/// `respond` from the request's path) and counts the connections it got.
fn fake_peer(
    respond: impl Fn(&str) -> String + Send + 'static,
) -> (SocketAddr, Arc<std::sync::atomic::AtomicUsize>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = Arc::clone(&hits);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut s) = stream else { return };
            counted.fetch_add(1, Ordering::SeqCst);
            let mut buf = [0u8; 4096];
            let n = s.read(&mut buf).unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            let path = head.split(' ').nth(1).unwrap_or("").to_string();
            let _ = s.write_all(respond(&path).as_bytes());
        }
    });
    (addr, hits)
}

fn http_response(status: &str, extra_headers: &str, body: &str) -> String {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{extra_headers}Connection: close\r\n\r\n{body}",
        body.len()
    )
}

/// Review of issue 15: a hostile announcement on the directory topic made instances forward
/// queries to an arbitrary URL and return its body. Now an owner's answer is parsed as our own
/// schema and written anew (anything else is a 502 naming the owner, not its body), redirects
/// are not followed, its size is bounded, and owners on hosts not allowed are never asked.
#[test]
fn a_peer_answer_is_never_echoed_and_only_allowed_peers_are_asked() {
    const SECRET: &str = "TOP-SECRET-9f3a";
    let topology = Arc::new(Topology::from_toml_str(TOPOLOGY).unwrap());
    let handle = prometheus_builder().unwrap().build_recorder().handle();
    let b = serve(
        "127.0.0.1:0".parse().unwrap(),
        Arc::clone(&topology),
        Arc::new(EngineStatus::default()),
        handle,
    )
    .unwrap();
    let directory = Arc::new(Directory::default());
    b.route_queries(Routing {
        me: Identity {
            instance_id: "b".into(),
            http_url: format!("http://{}", b.local_addr()),
        },
        directory: Arc::clone(&directory),
        allow: PeerAllow::parse("127.0.0.1").unwrap(),
    });
    let sku = "SKU-7";
    let p = partition_for_key(sku.as_bytes(), 4);
    let task = format!("inventory-{p}");
    let path = format!("/v1/availability/{sku}");
    let mut since = 1_000;
    // "evil" announces the SKU's task at `url`, claimed later than before each time.
    let mut announce = |url: String| {
        since += 1;
        directory
            .apply(
                "evil",
                Some(shelfsync_schemas::InstanceAnnouncement {
                    instance_id: "evil".into(),
                    http_url: url,
                    announced_at: crate::clock::now_ms(),
                    ttl_ms: 60_000,
                    tasks: vec![shelfsync_schemas::TaskClaim {
                        task: task.clone(),
                        since,
                        opening: false,
                    }],
                }),
                crate::clock::now_ms(),
            )
            .unwrap();
    };
    let (secret_addr, secret_hits) = fake_peer(|_| http_response("200 OK", "", SECRET));
    let valid = serde_json::json!({
        "sku": sku, "partition": p, "task": task, "owner": "local", "instance": "evil",
        "found": true, "active": true, "channels": [{"channel": "amazon", "quantity": 3, "version": 1}],
        "on_hand": {"dc-east": 3}, "reserved": 0, "backordered": 0,
        "safety_stock": {"amazon": 0}, "ats": {"amazon": 3},
    });
    let mut with_secret = valid.clone();
    with_secret["secret"] = SECRET.into();
    with_secret["channels"][0]["note"] = SECRET.into();
    let mut wrong_sku = valid.clone();
    wrong_sku["sku"] = SECRET.into();
    let huge = format!("{{\"x\":\"{}\"}}", "a".repeat(query::MAX_PEER_BODY));
    let refused: Vec<(&str, String)> = vec![
        ("not JSON", http_response("200 OK", "", SECRET)),
        (
            "JSON of another shape",
            http_response(
                "200 OK",
                "",
                &serde_json::json!({"secret": SECRET, "owner": "local"}).to_string(),
            ),
        ),
        (
            "an answer for another SKU",
            http_response("200 OK", "", &wrong_sku.to_string()),
        ),
        (
            "an error status",
            http_response("500 Internal Server Error", "", SECRET),
        ),
        (
            "a redirect",
            http_response(
                "302 Found",
                &format!("Location: http://{secret_addr}/\r\n"),
                SECRET,
            ),
        ),
        ("a body over the bound", http_response("200 OK", "", &huge)),
    ];
    for (what, response) in refused {
        let (peer, hits) = fake_peer(move |_| response.clone());
        announce(format!("http://{peer}"));
        let (code, head, body) = request(b.local_addr(), &path, "");
        assert_eq!(code, 502, "{what}: {body}");
        assert!(
            !body.contains(SECRET) && !head.contains(SECRET),
            "{what} echoed: {body}"
        );
        let v = json_of(&body);
        assert_eq!(v["instance"], "evil", "{what}: {body}");
        assert!(
            v["detail"].as_str().unwrap().contains("instance evil"),
            "{body}"
        );
        assert_eq!(hits.load(Ordering::SeqCst), 1, "{what}: asked once");
    }
    assert_eq!(
        secret_hits.load(Ordering::SeqCst),
        0,
        "a redirect was followed"
    );

    // A valid answer is passed on, re-serialized: fields beyond our schema are dropped.
    let response = http_response("200 OK", "", &with_secret.to_string());
    let (peer, _) = fake_peer(move |_| response.clone());
    announce(format!("http://{peer}/"));
    let (code, head, body) = request(b.local_addr(), &path, "");
    assert_eq!(code, 200, "{body}");
    assert!(head.contains(&format!("{ANSWERED_BY}: evil")), "{head}");
    assert!(!body.contains(SECRET), "{body}");
    // Rebuilt from our schema: an older peer's answer gets the fields it lacked, empty.
    let mut expected = valid.clone();
    expected["holds"] = serde_json::json!([]);
    expected["holds_truncated"] = serde_json::json!(false);
    assert_eq!(json_of(&body), expected);

    // An owner on a host not allowed is never asked, and does not hide the task's owner.
    let (peer, hits) = fake_peer(|_| http_response("200 OK", "", SECRET));
    announce(format!("http://localhost:{}", peer.port()));
    let (code, _, body) = request(b.local_addr(), &path, "");
    let v = json_of(&body);
    assert_eq!(
        (code, v["owner"].as_str()),
        (421, Some("unknown")),
        "{body}"
    );
    assert!(
        v["detail"].as_str().unwrap().contains("--peer-allow"),
        "{body}"
    );
    assert_eq!(hits.load(Ordering::SeqCst), 0);
    b.shutdown();
}

/// Issue 15, item 11: slow clients were never cut off (`axum::serve` sets no header timeout
/// and no connection limit) and a request head could be hundreds of KiB. Now a head must come
/// within the timeout and fit the bound, and past the connection limit the probes still
/// answer while everything else is refused.
#[test]
fn slow_or_oversized_clients_are_cut_off_and_probes_keep_answering() {
    let topology = Arc::new(Topology::from_toml_str(TOPOLOGY).unwrap());
    let handle = prometheus_builder().unwrap().build_recorder().handle();
    let limits = Limits {
        max_connections: 2,
        probe_reserve: 1,
        header_timeout: Duration::from_millis(500),
        max_header_bytes: 8192,
        max_queries: 64,
    };
    let server = serve_with(
        "127.0.0.1:0".parse().unwrap(),
        topology,
        Arc::new(EngineStatus::default()),
        handle,
        limits,
    )
    .unwrap();
    let addr = server.local_addr();
    // Two slowloris clients take every full connection: a head that never ends.
    let slow: Vec<std::net::TcpStream> = (0..2)
        .map(|_| {
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
                .unwrap();
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(100));
    // The next connection gets the probes, and only them. (A connection that comes before the
    // previous one's task has ended finds no room and is closed: `settled` retries.)
    assert_eq!(settled(addr, "/healthz").0, 200);
    assert_eq!(settled(addr, "/readyz").0, 503, "not ready, but answered");
    let (code, body) = settled(addr, "/v1/availability/SKU-1");
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("too many connections"), "{body}");
    // The slow clients are cut off once the header timeout passes.
    let t0 = std::time::Instant::now();
    for mut s in slow {
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = Vec::new();
        match s.read_to_end(&mut buf) {
            Ok(_) => {}
            Err(e) => assert!(
                e.kind() == std::io::ErrorKind::ConnectionReset,
                "a slow client still connected: {e}"
            ),
        }
    }
    assert!(t0.elapsed() < Duration::from_secs(3), "{:?}", t0.elapsed());
    // Room again: every route answers.
    assert_eq!(settled(addr, "/v1/availability/SKU-1").0, 421);
    // A head over the bound is refused, not served.
    let code = try_request(
        addr,
        "/healthz",
        &format!("X-Padding: {}\r\n", "a".repeat(20_000)),
    )
    .map_or(0, |(code, _)| code);
    assert!(
        code == 431 || code == 0,
        "an oversized head was served: {code}"
    );
    assert_eq!(settled(addr, "/healthz").0, 200);
    server.shutdown();
}

/// A GET that may find its connection closed (`None`): status and body.
fn try_request(addr: SocketAddr, path: &str, headers: &str) -> Option<(u16, String)> {
    let mut s = std::net::TcpStream::connect(addr).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\n{headers}Connection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    Some((code, body.to_string()))
}

/// [`try_request`] retried for up to 2 s until a connection is served.
fn settled(addr: SocketAddr, path: &str) -> (u16, String) {
    let until = std::time::Instant::now() + Duration::from_secs(2);
    loop {
        if let Some(answer) = try_request(addr, path, "") {
            return answer;
        }
        assert!(
            std::time::Instant::now() < until,
            "{path}: no connection served"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
