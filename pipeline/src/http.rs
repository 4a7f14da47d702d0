//! The HTTP side of `shelfsync run` (DESIGN §6): Prometheus metrics, health and readiness
//! probes, and the availability query answered from local state.
//!
//! | route | answers |
//! |---|---|
//! | `GET /metrics` | every metric of [`crate::metrics::ALL`] in the Prometheus text format |
//! | `GET /healthz` | `200 {"status":"ok"}` while the process runs (liveness) |
//! | `GET /readyz` | `200` once the instance has its partitions and no task is restoring, else `503`; the JSON body says why |
//! | `GET /v1/availability/{sku}` | the SKU's committed stock and published channel quantities when this instance owns its inventory task; else the owner's answer, asked on the caller's behalf (`?proxy=false`: only which instance owns it and its URL) |
//! | `GET /v1/instances` | the live instances of the application (instance directory), their URLs and tasks |
//!
//! The server runs on a small tokio runtime in its own thread, so the engine (synchronous,
//! librdkafka-driven) never waits on it and it keeps answering probes while the engine is
//! busy restoring. It only reads: [`EngineStatus`] (atomics and a lock held for a set lookup)
//! and the committed state in RocksDB, never an epoch's uncommitted writes.
//!
//! The availability query routes a SKU exactly as the producers do: the inventory stage reads
//! `<application_id>-inventory-commands`, keyed by SKU and partitioned by librdkafka's
//! `murmur2_random` partitioner, which is Java's `Utils.murmur2` ([`murmur2`]) of the key bytes,
//! made positive and taken modulo the partition count ([`partition_for_key`]). The partition
//! names the task (`inventory-<p>`); whichever instance owns that task holds the SKU's state.
//! The instance directory ([`crate::directory`]) says which instance that is and where its
//! endpoints answer; a query for a SKU owned elsewhere is forwarded there once (a forwarded
//! query is never forwarded again) and the answer says who gave it (`instance`,
//! `x-shelfsync-answered-by`). When the owner is unknown, still opening the task, or does not answer, the
//! reply is `421 Misdirected Request` naming the task, the owner if known and the live
//! instances.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::future::IntoFuture;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde::{Deserialize, Serialize};
use shelfsync_operators::reserve_inventory::{load_sku, SkuRecord};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, TopicId, Topology};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::directory::{self, Directory, Identity, Owner};
use crate::engine::EngineStatus;
use crate::error::{Error, Result};
use crate::metrics as m;
use crate::rocks_store::StateDb;

/// The default listen address of `shelfsync run --http-addr`.
pub const DEFAULT_ADDR: &str = "127.0.0.1:9464";
/// Route of the Prometheus scrape endpoint.
pub const METRICS_PATH: &str = "/metrics";
/// Route of the liveness probe.
pub const HEALTHZ_PATH: &str = "/healthz";
/// Route of the readiness probe.
pub const READYZ_PATH: &str = "/readyz";
/// Route of the availability query (`{sku}` is the percent-encoded SKU).
pub const AVAILABILITY_PATH: &str = "/v1/availability/{sku}";
/// Route of the instance directory's view.
pub const INSTANCES_PATH: &str = "/v1/instances";
/// Request header of a query forwarded by another instance (its id); never forwarded again.
pub const FORWARDED_BY: &str = "x-shelfsync-forwarded-by";
/// Response header naming the instance whose local state answered a query.
pub const ANSWERED_BY: &str = "x-shelfsync-answered-by";
/// How long a forwarded query may take before the pointer is answered instead.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// Histogram buckets (seconds) for per-record processing time: 10 µs to 1 s.
pub const PROCESSING_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Histogram buckets (seconds) for epoch commits: 1 ms to 60 s (an epoch waits for the broker).
pub const EPOCH_COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets (seconds) for end-to-end latency: 5 ms to 1 h (backlogs after an outage).
pub const END_TO_END_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The Prometheus recorder configuration: real histograms (not summaries) with the buckets
/// above for every `_seconds` metric.
///
/// # Errors
/// Never in practice: only an empty bucket list is refused.
pub fn prometheus_builder() -> Result<PrometheusBuilder> {
    let bug = |e: metrics_exporter_prometheus::BuildError| Error::Bug(format!("buckets: {e}"));
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(m::PROCESSING_SECONDS.into()),
            PROCESSING_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::EPOCH_COMMIT_SECONDS.into()),
                EPOCH_COMMIT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(m::END_TO_END_SECONDS.into()),
                END_TO_END_BUCKETS,
            )
        })
        // Any histogram added later still renders as a histogram, not a summary.
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), END_TO_END_BUCKETS)
        })
        .map_err(bug)
}

/// Installs the process-wide Prometheus recorder, registers every metric's help text and the
/// series known up front (see [`m::register_known_series`]), and returns the handle that
/// renders `/metrics`. Call once per process, before the engine records anything.
///
/// # Errors
/// [`Error::Bug`] when a recorder is already installed.
pub fn install_recorder() -> Result<PrometheusHandle> {
    let handle = prometheus_builder()?
        .install_recorder()
        .map_err(|e| Error::Bug(format!("install the Prometheus recorder: {e}")))?;
    m::describe_all();
    m::register_known_series();
    Ok(handle)
}

/// Java's `org.apache.kafka.common.utils.Utils.murmur2` (and librdkafka's `rd_murmur2`): the
/// 32-bit MurmurHash2 with Kafka's seed `0x9747b28c`, as a signed `i32` like Java's.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    // Java hashes `int length`; keys are far below 2 GiB.
    let mut h: u32 = SEED ^ (data.len() as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// The partition a keyed record lands on under the `murmur2_random` partitioner (librdkafka)
/// and Java's default partitioner: `(murmur2(key) & 0x7fffffff) % partitions`. `partitions`
/// below 1 counts as 1.
pub fn partition_for_key(key: &[u8], partitions: i32) -> i32 {
    (murmur2(key) & 0x7fff_ffff) % partitions.max(1)
}

/// The running HTTP server; [`HttpServer::shutdown`] (or drop) stops it.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    routing: Arc<OnceLock<Routing>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl HttpServer {
    /// The address the server listens on (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Lets the availability query name and ask the instance owning a SKU (until then it names
    /// only the task). Once per server; a second call is ignored.
    pub fn route_queries(&self, routing: Routing) {
        let _ = self.routing.set(routing);
    }

    /// Stops accepting connections, lets in-flight requests finish (at most 5 s) and joins the
    /// server thread.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                warn!("the HTTP server thread panicked");
            }
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

/// How the availability query finds the instance owning a SKU: this instance's identity and
/// the directory of everyone's announcements.
#[derive(Debug, Clone)]
pub struct Routing {
    /// This instance.
    pub me: Identity,
    /// The live instances and their tasks.
    pub directory: Arc<Directory>,
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    topology: Arc<Topology>,
    status: Arc<EngineStatus>,
    metrics: PrometheusHandle,
    inventory_topic: Arc<str>,
    inventory_partitions: i32,
    routing: Arc<OnceLock<Routing>>,
    client: reqwest::Client,
}

/// Binds `addr` and serves the endpoints of this module on a tokio runtime in a thread of its
/// own, until [`HttpServer::shutdown`]. `shelfsync run` calls it before starting the engine, so
/// probes answer (not ready) while the instance joins its group and restores state.
///
/// `metrics` is the handle of the installed recorder ([`install_recorder`]); a background task
/// runs its upkeep every 5 s.
///
/// # Errors
/// [`Error::Config`] when `addr` cannot be bound (in use, not a local address, no permission);
/// [`Error::Bug`] when the runtime or thread cannot start.
pub fn serve(
    addr: SocketAddr,
    topology: Arc<Topology>,
    status: Arc<EngineStatus>,
    metrics: PrometheusHandle,
) -> Result<HttpServer> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| {
        Error::Config(format!(
            "--http-addr (SHELFSYNC_HTTP_ADDR) {addr}: cannot listen: {e}"
        ))
    })?;
    listener
        .set_nonblocking(true)
        .map_err(|e| Error::Bug(format!("non-blocking HTTP listener: {e}")))?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::Bug(format!("HTTP listener address: {e}")))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Error::Bug(format!("HTTP runtime: {e}")))?;
    let client = reqwest::Client::builder()
        .timeout(FORWARD_TIMEOUT)
        .redirect(reqwest::redirect::Policy::none())
        // Instance to instance, never through an HTTP(S)_PROXY meant for the outside.
        .no_proxy()
        .build()
        .map_err(|e| Error::Bug(format!("HTTP client: {e}")))?;
    let routing = Arc::new(OnceLock::new());
    let state = AppState {
        inventory_topic: topology.topic_name(TopicId::InventoryCommands).into(),
        inventory_partitions: topology.partitions(TopicId::InventoryCommands),
        topology,
        status,
        metrics,
        routing: Arc::clone(&routing),
        client,
    };
    let listener = {
        let _runtime = runtime.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Bug(format!("HTTP listener: {e}")))?
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("shelfsync-http".into())
        .spawn(move || runtime.block_on(run_server(listener, state, stopped)))
        .map_err(|e| Error::Bug(format!("spawn the HTTP thread: {e}")))?;
    info!(addr = %local, "HTTP endpoints listening (/metrics, /healthz, /readyz, /v1/availability/{{sku}}, /v1/instances)");
    Ok(HttpServer {
        addr: local,
        routing,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn run_server(
    listener: tokio::net::TcpListener,
    state: AppState,
    stopped: oneshot::Receiver<()>,
) {
    let upkeep = state.metrics.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let (draining, drain_started) = oneshot::channel::<()>();
    let server = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            let _ = stopped.await;
            let _ = draining.send(());
        })
        .into_future();
    // Bounded drain: once stopping, a stuck client must not hold up the process's exit.
    let drain_deadline = async {
        if drain_started.await.is_ok() {
            tokio::time::sleep(Duration::from_secs(5)).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => {
            if let Err(e) = result {
                warn!(error = %e, "HTTP server stopped with an error");
            }
        }
        () = drain_deadline => warn!("HTTP connections still open 5 s after shutdown; closing them"),
    }
    upkeep_task.abort();
}

fn router(state: AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics_handler))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route(AVAILABILITY_PATH, get(availability))
        .route(INSTANCES_PATH, get(instances))
        .with_state(state)
}

async fn metrics_handler(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.metrics.render(),
    )
        .into_response()
}

async fn healthz() -> Json<serde_json::Value> {
    Json(serde_json::json!({ "status": "ok" }))
}

/// The body of `/readyz`.
#[derive(Debug, Serialize)]
struct Readiness {
    ready: bool,
    assigned: bool,
    ready_tasks: usize,
    restoring_tasks: usize,
    tasks: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
}

fn readiness(status: &EngineStatus) -> Readiness {
    let assigned = status.assigned.load(Ordering::SeqCst);
    let ready_tasks = status.ready_tasks.load(Ordering::SeqCst);
    let restoring_tasks = status.restoring_tasks.load(Ordering::SeqCst);
    let tasks = status
        .owned
        .lock()
        .map(|o| o.iter().cloned().collect())
        .unwrap_or_default();
    let reason = if !assigned {
        Some("not assigned any partition yet: joining the consumer group".to_string())
    } else if restoring_tasks > 0 {
        Some(format!(
            "{restoring_tasks} task(s) restoring state from their changelog"
        ))
    } else {
        None
    };
    Readiness {
        ready: reason.is_none(),
        assigned,
        ready_tasks,
        restoring_tasks,
        tasks,
        reason,
    }
}

async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Readiness>) {
    let r = readiness(&state.status);
    let code = if r.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(r))
}

/// A channel's last published availability.
#[derive(Debug, Serialize)]
struct ChannelView {
    channel: String,
    quantity: i64,
    version: i64,
}

/// The availability answer for a SKU whose inventory task this instance owns.
#[derive(Debug, Serialize)]
struct LocalAvailability {
    sku: String,
    partition: i32,
    task: String,
    owner: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    instance: Option<String>,
    found: bool,
    active: bool,
    channels: Vec<ChannelView>,
    on_hand: BTreeMap<String, i64>,
    reserved: i64,
    backordered: i64,
    safety_stock: BTreeMap<String, i64>,
    ats: BTreeMap<String, i64>,
}

fn local_view(
    topology: &Topology,
    instance: Option<String>,
    sku: &str,
    partition: i32,
    task: &str,
    record: SkuRecord,
) -> LocalAvailability {
    let stock = &record.stock;
    let policies: Vec<_> = topology.channels.iter().map(|c| c.policy()).collect();
    LocalAvailability {
        sku: sku.to_string(),
        partition,
        task: task.to_string(),
        owner: "local",
        instance,
        found: true,
        active: stock.product.as_ref().is_none_or(|p| p.active),
        channels: record
            .published
            .iter()
            .map(|p| ChannelView {
                channel: p.channel.clone(),
                quantity: p.quantity,
                version: p.version,
            })
            .collect(),
        on_hand: stock
            .positions
            .iter()
            .map(|p| (p.location.clone(), p.on_hand))
            .collect(),
        reserved: stock.reserved,
        backordered: stock.backordered,
        safety_stock: policies
            .iter()
            .map(|p| (p.name.clone(), stock.safety_stock(&p.name)))
            .collect(),
        ats: policies
            .iter()
            .map(|p| (p.name.clone(), stock.ats(p)))
            .collect(),
    }
}

/// A read-only [`StateStore`] over the committed state of one task: `get` reads what the last
/// acknowledged epoch wrote to RocksDB. The query path never writes and never scans, so
/// `put`, `delete` and `range` do nothing but record a bug, which the handler answers with 500
/// instead of a wrong answer.
struct CommittedView<'a> {
    db: &'a StateDb,
    task: &'a str,
    error: RefCell<Option<Error>>,
}

impl CommittedView<'_> {
    fn fail(&self, e: Error) {
        self.error.borrow_mut().get_or_insert(e);
    }
}

impl StateStore for CommittedView<'_> {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        match self.db.read_committed(self.task, key) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                None
            }
        }
    }

    fn put(&mut self, _key: &[u8], _value: &[u8]) {
        self.fail(Error::Bug("write through the read-only query view".into()));
    }

    fn delete(&mut self, _key: &[u8]) {
        self.fail(Error::Bug("delete through the read-only query view".into()));
    }

    fn range(&self, _from: &[u8], _to: &[u8], _limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        self.fail(Error::Bug(
            "range scan through the read-only query view".into(),
        ));
        Vec::new()
    }
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

/// Query parameters of the availability query.
#[derive(Debug, Default, Deserialize)]
struct AvailabilityParams {
    /// `false`: answer where the SKU lives instead of asking its owner.
    proxy: Option<bool>,
}

/// The characters a SKU keeps unencoded in a URL path segment (RFC 3986 unreserved).
const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

fn availability_url(base: &str, sku: &str) -> String {
    format!(
        "{base}/v1/availability/{}",
        percent_encoding::utf8_percent_encode(sku, PATH_SEGMENT)
    )
}

/// The answer for a SKU whose inventory task this instance does not own: its owner's answer
/// when `forward` and the owner answers from its local state, else a pointer (421).
async fn elsewhere(
    state: &AppState,
    sku: &str,
    partition: i32,
    task: &str,
    forward: bool,
) -> Response {
    if state.status.is_opening(task) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "sku": sku,
                "partition": partition,
                "task": task,
                "owner": "local",
                "opening": true,
                "detail": format!("this instance was just assigned task {task} and is still opening it (restoring its state): retry shortly"),
            }),
        );
    }
    let routing = state.routing.get();
    let now = directory::now_ms();
    let owner = routing.and_then(|r| {
        r.directory
            .owner(task, now)
            .filter(|o| o.instance_id != r.me.instance_id)
    });
    let mut failure = None;
    if let (true, Some(r), Some(o)) = (forward, routing, owner.as_ref()) {
        if !o.opening {
            match ask_owner(state, &r.me, o, sku).await {
                Ok(answer) => return answer,
                Err(why) => failure = Some(why),
            }
        }
    }
    pointer(state, sku, partition, task, routing, owner, failure, now)
}

/// Forwards the query to `owner` once; `Ok` only when it answered from its own state.
async fn ask_owner(
    state: &AppState,
    me: &Identity,
    owner: &Owner,
    sku: &str,
) -> std::result::Result<Response, String> {
    let url = availability_url(&owner.http_url, sku);
    let reply = state
        .client
        .get(&url)
        .header(FORWARDED_BY, me.instance_id.as_str())
        .send()
        .await
        .map_err(|e| format!("GET {url}: {e}"))?;
    let code = reply.status().as_u16();
    let bytes = reply
        .bytes()
        .await
        .map_err(|e| format!("GET {url}: {code}, body cut short: {e}"))?;
    let body: serde_json::Value = serde_json::from_slice(&bytes)
        .map_err(|e| format!("GET {url}: {code} with a body that is not JSON: {e}"))?;
    if !matches!(code, 200 | 404) || body["owner"] != "local" {
        return Err(format!(
            "GET {url}: {code}, not answered from its state: {body}"
        ));
    }
    // The owner's body as it sent it.
    let mut response = (
        StatusCode::from_u16(code).unwrap_or(StatusCode::OK),
        [(header::CONTENT_TYPE, "application/json")],
        bytes,
    )
        .into_response();
    if let Ok(v) = HeaderValue::from_str(&owner.instance_id) {
        response.headers_mut().insert(ANSWERED_BY, v);
    }
    Ok(response)
}

/// `421 Misdirected Request`: the task, and the owning instance when the directory knows one.
#[allow(clippy::too_many_arguments)]
fn pointer(
    state: &AppState,
    sku: &str,
    partition: i32,
    task: &str,
    routing: Option<&Routing>,
    owner: Option<Owner>,
    failure: Option<String>,
    now: i64,
) -> Response {
    let topic = &state.inventory_topic;
    let mut body = serde_json::json!({
        "sku": sku,
        "partition": partition,
        "task": task,
    });
    let mut detail = format!("partition {partition} of {topic} is not assigned to this instance");
    match &owner {
        Some(o) => {
            body["owner"] = "remote".into();
            body["instance"] = o.instance_id.clone().into();
            body["url"] = availability_url(&o.http_url, sku).into();
            body["opening"] = o.opening.into();
            body["since"] = o.since.into();
            detail.push_str(&format!(
                "; instance {} owns task {task}: ask {}",
                o.instance_id,
                availability_url(&o.http_url, sku)
            ));
            if o.opening {
                detail.push_str(
                    " (it is still opening the task, restoring its state: retry shortly)",
                );
            }
            if let Some(why) = &failure {
                detail.push_str(&format!(" (asking it failed: {why})"));
            }
        }
        None => {
            body["owner"] = "unknown".into();
            match routing {
                None => detail.push_str(&format!(
                    "; the instance that owns task {task} answers for this SKU"
                )),
                Some(r) => {
                    let live = r.directory.live(now);
                    detail.push_str(&format!(
                        "; no live instance announces task {task}: it may be moving between instances, retry shortly"
                    ));
                    if !r.directory.is_synced() {
                        detail.push_str(" (this instance is still reading the instance directory)");
                    }
                    body["instances"] = serde_json::json!(live);
                }
            }
        }
    }
    let restoring = state.status.restoring_tasks.load(Ordering::SeqCst);
    if restoring > 0 {
        detail.push_str(&format!(
            " ({restoring} task(s) are restoring here; it may be one of them: retry shortly)"
        ));
    }
    body["detail"] = detail.into();
    json(StatusCode::MISDIRECTED_REQUEST, body)
}

async fn instances(State(state): State<AppState>) -> Response {
    let Some(routing) = state.routing.get() else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"detail": "this process keeps no instance directory (only `shelfsync run` does)"}),
        );
    };
    let now = directory::now_ms();
    json(
        StatusCode::OK,
        serde_json::json!({
            "self": routing.me,
            "synced": routing.directory.is_synced(),
            "instances": routing.directory.snapshot(now),
        }),
    )
}

async fn availability(
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Query(params): Query<AvailabilityParams>,
    headers: HeaderMap,
) -> Response {
    let partition = partition_for_key(sku.as_bytes(), state.inventory_partitions);
    let task = crate::engine::task_name(Stage::Inventory, partition);
    let forward = params.proxy.unwrap_or(true) && !headers.contains_key(FORWARDED_BY);
    if !state.status.owns(&task) {
        return elsewhere(&state, &sku, partition, &task, forward).await;
    }
    let Some(db) = state.status.db.get().cloned() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"sku": sku, "partition": partition, "task": task, "detail": "state store not open yet"}),
        );
    };
    let (sku_b, task_b) = (sku.clone(), task.clone());
    let read = tokio::task::spawn_blocking(move || {
        let view = CommittedView {
            db: &db,
            task: &task_b,
            error: RefCell::new(None),
        };
        let loaded = load_sku(&view, &sku_b).map_err(|e| Error::Bug(e.to_string()));
        match view.error.into_inner() {
            Some(e) => Err(e),
            None => loaded,
        }
    })
    .await;
    // The task may have been revoked while we read: the answer then belongs to its new owner.
    if !state.status.owns(&task) {
        return elsewhere(&state, &sku, partition, &task, forward).await;
    }
    let instance = state.routing.get().map(|r| r.me.instance_id.clone());
    match read {
        Ok(Ok(Some(record))) => {
            let body = local_view(&state.topology, instance, &sku, partition, &task, record);
            (StatusCode::OK, Json(body)).into_response()
        }
        Ok(Ok(None)) => json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"sku": sku, "partition": partition, "task": task, "owner": "local", "instance": instance, "found": false}),
        ),
        Ok(Err(e)) => {
            warn!(sku = %sku, task = %task, error = %e, "availability query failed");
            json(
                StatusCode::INTERNAL_SERVER_ERROR,
                serde_json::json!({"sku": sku, "partition": partition, "task": task, "detail": e.to_string()}),
            )
        }
        Err(e) => json(
            StatusCode::INTERNAL_SERVER_ERROR,
            serde_json::json!({"sku": sku, "partition": partition, "task": task, "detail": format!("query task failed: {e}")}),
        ),
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use shelfsync_operators::reserve_inventory::ReserveInventory;
    use shelfsync_operators::Operator;
    use shelfsync_schemas::{InventoryChange, InventoryChangeKind, InventoryCommand};

    use super::*;

    /// `UtilsTest.testMurmur2` of Apache Kafka's clients module.
    #[test]
    fn murmur2_matches_kafkas_java_test_vectors() {
        let cases: [(&str, i32); 6] = [
            ("21", -973_932_308),
            ("foobar", -790_332_482),
            ("a-little-bit-long-string", -985_981_536),
            ("a-little-bit-longer-string", -1_486_304_829),
            (
                "lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            ("abc", 479_470_107),
        ];
        for (key, want) in cases {
            assert_eq!(murmur2(key.as_bytes()), want, "murmur2({key:?})");
        }
    }

    #[test]
    fn partition_is_the_positive_hash_modulo_the_partition_count() {
        // murmur2("21") = -973932308; & 0x7fffffff = 1173551340; % 6 = 0, % 7 = 4.
        assert_eq!(partition_for_key(b"21", 6), 1_173_551_340 % 6);
        assert_eq!(partition_for_key(b"21", 7), 1_173_551_340 % 7);
        assert_eq!(partition_for_key(b"anything", 1), 0);
        assert_eq!(partition_for_key(b"anything", 0), 0);
        for key in ["", "a", "ab", "abc", "abcd", "SKU-00042"] {
            let p = partition_for_key(key.as_bytes(), 12);
            assert!((0..12).contains(&p), "{key}: {p}");
        }
    }

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
        assert_eq!(v["reserved"], 0);
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
        assert_eq!(
            channels,
            [("amazon".to_string(), 14, 2), ("ebay".to_string(), 30, 1)]
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
            directory.apply(
                &who.instance_id,
                Some(shelfsync_schemas::InstanceAnnouncement {
                    instance_id: who.instance_id.clone(),
                    http_url: who.http_url.clone(),
                    announced_at: directory::now_ms(),
                    ttl_ms: 60_000,
                    tasks: vec![shelfsync_schemas::TaskClaim {
                        task: task.clone(),
                        since,
                        opening,
                    }],
                }),
            );
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
}
