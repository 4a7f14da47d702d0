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
//! The server runs on a small tokio runtime (two worker threads) in its own thread, so the
//! engine (synchronous, librdkafka-driven) never waits on it and it keeps answering probes
//! while the engine is busy restoring. It only reads: [`EngineStatus`] (atomics and a lock held
//! for a set lookup) and the committed state in RocksDB, never an epoch's uncommitted writes.
//!
//! Bounds ([`Limits`]), so that no client can hold the probes up: a request's headers must
//! arrive within 5 s (an idle keep-alive connection is closed after as long) and fit in 16 KiB
//! (else `431` or the connection is closed); request bodies are not read (every route is a
//! `GET`); at most 256 connections are served with every route, and up to 32 more with only
//! `/healthz`, `/readyz` and `/metrics` (anything else answers `503`), so a flood of slow or
//! idle clients leaves room for the kubelet for as long as it stays under 288 connections
//! opened within 5 s; past that, new connections are closed at once. At most 64 availability
//! queries run at a time (RocksDB reads on the blocking pool, forwards that wait up to 2 s);
//! more are answered `503` at once. A separate probe port would be the complete answer to a
//! flood; it is not built.
//!
//! The availability query routes a SKU exactly as the producers do: the inventory stage reads
//! `<application_id>-inventory-commands`, keyed by SKU and partitioned by librdkafka's
//! `murmur2_random` partitioner, which is Java's `Utils.murmur2` ([`kafka::murmur2`](crate::kafka::murmur2)) of the key bytes,
//! made positive and taken modulo the partition count ([`crate::kafka::partition_for_key`]). The partition
//! names the task (`inventory-<p>`); whichever instance owns that task holds the SKU's state.
//! The instance directory ([`crate::directory`]) says which instance that is and where its
//! endpoints answer; a query for a SKU owned elsewhere is forwarded there once (a forwarded
//! query is never forwarded again) and the answer says who gave it (`instance`,
//! `x-shelfsync-answered-by`). When the owner is unknown, still opening the task, or does not answer, the
//! reply is `421 Misdirected Request` naming the task, the owner if known and the live
//! instances. Only owners on hosts of [`Routing::allow`] are asked, without following
//! redirects, and their answer is parsed and written anew, never passed on as sent; an owner
//! that answers something else gets the caller a `502` naming it (see `query.rs`).

use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use shelfsync_topology::{TopicId, Topology};
use tokio::sync::{oneshot, watch, Semaphore};
use tracing::{info, warn};

use crate::directory::{Directory, Identity, PeerAllow};
use crate::engine::EngineStatus;
use crate::error::{Error, Result};

mod orders;
mod query;
use orders::order;
use query::{availability, instances};

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
/// Route of the order query.
pub const ORDERS_PATH: &str = "/v1/orders/{order_key}";
/// Request header of a query forwarded by another instance (its id); never forwarded again.
pub const FORWARDED_BY: &str = "x-shelfsync-forwarded-by";
/// Response header naming the instance whose local state answered a query.
pub const ANSWERED_BY: &str = "x-shelfsync-answered-by";
/// How long a forwarded query may take before the pointer is answered instead.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

/// What one client may take of the server (see the module page); [`Limits::DEFAULT`] in
/// production, smaller in tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Connections served with every route.
    pub max_connections: usize,
    /// Further connections served with the probes and `/metrics` only.
    pub probe_reserve: usize,
    /// Time for a request's headers to arrive (and for an idle connection to send the next).
    pub header_timeout: Duration,
    /// Largest request head (request line and headers), bytes; at least 8 KiB.
    pub max_header_bytes: usize,
    /// Availability queries answered at a time.
    pub max_queries: usize,
}

impl Limits {
    /// The limits of `shelfsync run` and `shelfsync push`.
    pub const DEFAULT: Self = Self {
        max_connections: 256,
        probe_reserve: 32,
        header_timeout: Duration::from_secs(5),
        max_header_bytes: 16 * 1024,
        max_queries: 64,
    };
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

/// How the availability query finds the instance owning a SKU: this instance's identity,
/// the directory of everyone's announcements, and the hosts it may forward to.
#[derive(Debug, Clone)]
pub struct Routing {
    /// This instance.
    pub me: Identity,
    /// The live instances and their tasks.
    pub directory: Arc<Directory>,
    /// The hosts a query may be forwarded to (`--peer-allow`, else
    /// [`PeerAllow::default_for`] this instance's advertised URL).
    pub allow: PeerAllow,
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
    /// Permits for availability queries ([`Limits::max_queries`]).
    queries: Arc<Semaphore>,
}

/// Binds `addr` and serves the endpoints of this module on a tokio runtime in a thread of its
/// own, until [`HttpServer::shutdown`]. `shelfsync run` calls it before starting the engine, so
/// probes answer (not ready) while the instance joins its group and restores state.
///
/// `metrics` is the handle of the installed recorder ([`install_recorder`](crate::metrics::install_recorder)); a background task
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
    serve_with(addr, topology, status, metrics, Limits::DEFAULT)
}

/// [`serve`] with other [`Limits`].
///
/// # Errors
/// As [`serve`].
pub fn serve_with(
    addr: SocketAddr,
    topology: Arc<Topology>,
    status: Arc<EngineStatus>,
    metrics: PrometheusHandle,
    limits: Limits,
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
    // Two workers: a handler that hogs one (a slow JSON render, a stuck lock) leaves the other
    // for the probes.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("shelfsync-http-worker")
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
        queries: Arc::new(Semaphore::new(limits.max_queries)),
    };
    let listener = {
        let _runtime = runtime.enter();
        tokio::net::TcpListener::from_std(listener)
            .map_err(|e| Error::Bug(format!("HTTP listener: {e}")))?
    };
    let (stop, stopped) = oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("shelfsync-http".into())
        .spawn(move || runtime.block_on(run_server(listener, state, limits, stopped)))
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
    limits: Limits,
    mut stopped: oneshot::Receiver<()>,
) {
    let upkeep = state.metrics.clone();
    let upkeep_task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(5));
        loop {
            tick.tick().await;
            upkeep.run_upkeep();
        }
    });
    let full = router(state.clone());
    let probes_only = probe_router(state);
    let served = Arc::new(Semaphore::new(limits.max_connections));
    let reserve = Arc::new(Semaphore::new(limits.probe_reserve));
    let (draining, drain) = watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    let mut refused_warning = tokio::time::Instant::now();
    loop {
        let stream = tokio::select! {
            _ = &mut stopped => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors, most likely: wait instead of spinning.
                    warn!(error = %e, "HTTP accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let (permit, app) = match Arc::clone(&served).try_acquire_owned() {
            Ok(p) => (p, full.clone()),
            Err(_) => match Arc::clone(&reserve).try_acquire_owned() {
                Ok(p) => (p, probes_only.clone()),
                Err(_) => {
                    if tokio::time::Instant::now() >= refused_warning {
                        warn!(
                            limit = limits.max_connections + limits.probe_reserve,
                            "too many HTTP connections; closing new ones"
                        );
                        refused_warning = tokio::time::Instant::now() + Duration::from_secs(30);
                    }
                    drop(stream);
                    continue;
                }
            },
        };
        let mut drain = drain.clone();
        connections.spawn(async move {
            let _permit = permit;
            let service = hyper_util::service::TowerToHyperService::new(app);
            let mut builder = hyper::server::conn::http1::Builder::new();
            builder
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .max_buf_size(limits.max_header_bytes.max(8192));
            let conn = builder.serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            tokio::pin!(conn);
            tokio::select! {
                _ = conn.as_mut() => return,
                _ = drain.wait_for(|d| *d) => conn.as_mut().graceful_shutdown(),
            }
            let _ = conn.await;
        });
    }
    // Stop accepting; let in-flight requests finish, for at most 5 s: a stuck client must not
    // hold up the process's exit.
    drop(listener);
    let _ = draining.send(true);
    let drained = tokio::time::timeout(Duration::from_secs(5), async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        warn!("HTTP connections still open 5 s after shutdown; closing them");
        connections.abort_all();
    }
    upkeep_task.abort();
}

/// The routes served to connections past [`Limits::max_connections`]: probes and metrics
/// only.
fn probe_router(state: AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics_handler))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .fallback(|| async {
            (
                StatusCode::SERVICE_UNAVAILABLE,
                [(header::RETRY_AFTER, "1")],
                Json(serde_json::json!({"detail": "too many connections: only /healthz, /readyz and /metrics are served on this one; retry"})),
            )
        })
        .with_state(state)
}

fn router(state: AppState) -> Router {
    Router::new()
        .route(METRICS_PATH, get(metrics_handler))
        .route(HEALTHZ_PATH, get(healthz))
        .route(READYZ_PATH, get(readyz))
        .route(AVAILABILITY_PATH, get(availability))
        .route(INSTANCES_PATH, get(instances))
        .route(ORDERS_PATH, get(order))
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

#[cfg(test)]
mod tests;
