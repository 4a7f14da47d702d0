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

use std::future::IntoFuture;
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
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::directory::{Directory, Identity, PeerAllow};
use crate::engine::EngineStatus;
use crate::error::{Error, Result};

mod query;
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
/// Request header of a query forwarded by another instance (its id); never forwarded again.
pub const FORWARDED_BY: &str = "x-shelfsync-forwarded-by";
/// Response header naming the instance whose local state answered a query.
pub const ANSWERED_BY: &str = "x-shelfsync-answered-by";
/// How long a forwarded query may take before the pointer is answered instead.
pub const FORWARD_TIMEOUT: Duration = Duration::from_secs(2);

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

#[cfg(test)]
mod tests;
