//! The availability query (`GET /v1/availability/{sku}`) and the instance list
//! (`GET /v1/instances`): answered from this instance's committed state when it owns the SKU's
//! inventory task, else forwarded once to the owner or answered with a pointer to it.
//!
//! Forwarding trusts the owner no more than the directory topic it was named on (see
//! [`crate::directory`]): only owners whose host `--peer-allow` permits are asked (an owner it
//! does not permit is ignored, so it cannot hide one it does); redirects are not followed; at
//! most [`MAX_PEER_BODY`] bytes are read within [`super::FORWARD_TIMEOUT`]; and the answer is
//! parsed as this module's own availability answer and written anew, so nothing the peer
//! sends beyond those fields reaches the caller. A peer that answers anything else gets the
//! caller a `502` naming the peer's instance id, never its body.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::Ordering;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::{Deserialize, Serialize};
use shelfsync_operators::reserve_inventory::{holds_of, load_sku, Hold, SkuRecord};
use shelfsync_operators::StateStore;
use shelfsync_topology::{Stage, Topology};
use tracing::warn;

use crate::directory::{Identity, Owner};
use crate::error::Error;
use crate::rocks_store::StateDb;

use super::{AppState, Routing, ANSWERED_BY, FORWARDED_BY};
use crate::kafka::partition_for_key;

/// The most bytes read from a peer's answer (a SKU's answer is well under 4 KiB).
pub(super) const MAX_PEER_BODY: usize = 64 * 1024;

/// A channel's last published availability.
#[derive(Debug, Serialize, Deserialize)]
struct ChannelView {
    channel: String,
    quantity: i64,
    version: i64,
}

/// The availability answer for a SKU whose inventory task this instance owns (and the only
/// `200` answer of a peer that is passed on, re-serialized).
#[derive(Debug, Serialize, Deserialize)]
struct LocalAvailability {
    sku: String,
    partition: i32,
    task: String,
    owner: String,
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
    /// The SKU's order-line holds, oldest first (at most [`MAX_HOLDS_SHOWN`]).
    #[serde(default)]
    holds: Vec<HoldView>,
    /// Whether the SKU has more holds than shown.
    #[serde(default)]
    holds_truncated: bool,
}

/// How many of a SKU's holds the availability answer lists.
const MAX_HOLDS_SHOWN: usize = 200;

/// One order line's hold on the SKU, as the availability answer shows it.
#[derive(Debug, Serialize, Deserialize)]
struct HoldView {
    order_key: String,
    line_id: String,
    channel: String,
    /// `held`, `rejected` or `shipped`.
    state: String,
    /// `soft` (unpaid, expires) or `hard` (paid).
    kind: String,
    quantity: i64,
    reserved: i64,
    backordered: i64,
    /// Stream time when it was reserved (ms; 0 when it predates this field).
    held_at: i64,
    /// How long it has been held, in the task's stream time (ms).
    age_ms: i64,
    /// When it ends if nothing else ends it first: a soft hold's TTL, a hard hold's
    /// `hard_hold_max_age`, a settled line's retention (ms, stream time).
    expires_at: Option<i64>,
}

fn local_view(
    topology: &Topology,
    instance: Option<String>,
    sku: &str,
    partition: i32,
    task: &str,
    record: SkuRecord,
    holds: (Vec<(String, Hold)>, i64),
) -> LocalAvailability {
    let stock = &record.stock;
    // The operator's own policies: non-sellable locations are already left out of them.
    let policies = topology.inventory_config().channels;
    let (holds, stream_time) = holds;
    let holds_truncated = holds.len() > MAX_HOLDS_SHOWN;
    let holds = holds
        .into_iter()
        .take(MAX_HOLDS_SHOWN)
        .map(|(line_id, h)| HoldView {
            order_key: h.order_key,
            line_id,
            channel: h.channel,
            state: format!("{:?}", h.state).to_lowercase(),
            kind: if h.hard { "hard" } else { "soft" }.into(),
            quantity: h.quantity,
            reserved: h.reserved,
            backordered: h.backordered,
            held_at: h.held_at,
            age_ms: stream_time.saturating_sub(h.held_at).max(0),
            expires_at: h.expires_at,
        })
        .collect();
    LocalAvailability {
        sku: sku.to_string(),
        partition,
        task: task.to_string(),
        owner: "local".into(),
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
        holds,
        holds_truncated,
    }
}

/// A read-only [`StateStore`] over the committed state of one task: `get` and `range` read what
/// the last acknowledged epoch wrote to RocksDB. The query path never writes, so `put` and
/// `delete` do nothing but record a bug, which the handler answers with 500 instead of a wrong
/// answer.
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

    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        match self.db.scan_committed(self.task, from, to, limit) {
            Ok(v) => v,
            Err(e) => {
                self.fail(e);
                Vec::new()
            }
        }
    }
}

/// The answer for a SKU this instance owns but has never seen (and the only `404` answer of a
/// peer that is passed on, re-serialized).
#[derive(Debug, Serialize, Deserialize)]
struct NotFound {
    sku: String,
    partition: i32,
    task: String,
    owner: String,
    instance: Option<String>,
    found: bool,
}

fn json(code: StatusCode, body: serde_json::Value) -> Response {
    (code, Json(body)).into_response()
}

/// Query parameters of the availability query.
#[derive(Debug, Default, Deserialize)]
pub(super) struct AvailabilityParams {
    /// `false`: answer where the SKU lives instead of asking its owner.
    proxy: Option<bool>,
}

/// The characters a SKU keeps unencoded in a URL path segment (RFC 3986 unreserved).
pub(super) const PATH_SEGMENT: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
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
    let now = crate::clock::now_ms();
    let owner = routing.and_then(|r| {
        r.directory
            .owner(task, now, |url| r.allow.permits(url))
            .filter(|o| o.instance_id != r.me.instance_id)
    });
    let mut failure = None;
    if let (true, Some(r), Some(o)) = (forward, routing, owner.as_ref()) {
        if !o.opening {
            match ask_owner(state, &r.me, o, sku, partition, task).await {
                Asked::Answer(answer) => return answer,
                Asked::NotAnswered(why) => failure = Some(why),
                Asked::Bad(why) => {
                    warn!(peer = %o.instance_id, task, detail = %why, "a peer's answer to a forwarded query was refused");
                    return json(
                        StatusCode::BAD_GATEWAY,
                        serde_json::json!({
                            "sku": sku,
                            "partition": partition,
                            "task": task,
                            "owner": "remote",
                            "instance": o.instance_id,
                            "detail": format!("instance {} owns task {task} but {why}", o.instance_id),
                        }),
                    );
                }
            }
        }
    }
    pointer(state, sku, partition, task, routing, owner, failure, now)
}

/// What asking the owner gave.
enum Asked {
    /// Its answer from its own state, re-serialized.
    Answer(Response),
    /// No answer from its state (not reachable in time, or it does not hold the task any
    /// more): the caller gets the pointer, with this why (our words only).
    NotAnswered(String),
    /// Something that is not a shelfsync answer: the caller gets a 502 with this why (our
    /// words only, never the peer's body).
    Bad(String),
}

/// Forwards the query to `owner` once.
async fn ask_owner(
    state: &AppState,
    me: &Identity,
    owner: &Owner,
    sku: &str,
    partition: i32,
    task: &str,
) -> Asked {
    let url = availability_url(&owner.http_url, sku);
    let mut reply = match state
        .client
        .get(&url)
        .header(FORWARDED_BY, me.instance_id.as_str())
        .send()
        .await
    {
        Ok(reply) => reply,
        Err(e) if e.is_timeout() => {
            return Asked::NotAnswered(format!("no answer within {:?}", super::FORWARD_TIMEOUT))
        }
        Err(_) => return Asked::NotAnswered("could not connect".into()),
    };
    let code = reply.status().as_u16();
    if matches!(code, 421 | 503) {
        // It does not hold the task (any more), or is still opening it: the directory was
        // stale, and the pointer says so.
        return Asked::NotAnswered(format!("it answered {code}, not from its state"));
    }
    if !matches!(code, 200 | 404) {
        return Asked::Bad(format!("answered the forwarded query with HTTP {code}"));
    }
    if reply
        .content_length()
        .is_some_and(|n| n > MAX_PEER_BODY as u64)
    {
        return Asked::Bad(format!("its answer is longer than {MAX_PEER_BODY} bytes"));
    }
    let mut bytes = Vec::new();
    loop {
        match reply.chunk().await {
            Ok(Some(chunk)) => {
                if bytes.len() + chunk.len() > MAX_PEER_BODY {
                    return Asked::Bad(format!("its answer is longer than {MAX_PEER_BODY} bytes"));
                }
                bytes.extend_from_slice(&chunk);
            }
            Ok(None) => break,
            Err(e) if e.is_timeout() => {
                return Asked::NotAnswered(format!(
                    "no complete answer within {:?}",
                    super::FORWARD_TIMEOUT
                ))
            }
            Err(_) => return Asked::NotAnswered("its answer was cut short".into()),
        }
    }
    // The answer must be about this SKU, from the owner's own state, given by the owner.
    let about = |s: &str, p: i32, t: &str, o: &str, i: Option<&str>| {
        s == sku && p == partition && t == task && o == "local" && i == Some(&owner.instance_id)
    };
    let not_ours = || {
        Asked::Bad(format!(
            "its answer ({code}, {} bytes) is not a shelfsync availability answer for this SKU from its own state",
            bytes.len()
        ))
    };
    let mut response = if code == 200 {
        match serde_json::from_slice::<LocalAvailability>(&bytes) {
            Ok(a)
                if a.found
                    && about(
                        &a.sku,
                        a.partition,
                        &a.task,
                        &a.owner,
                        a.instance.as_deref(),
                    ) =>
            {
                (StatusCode::OK, Json(a)).into_response()
            }
            _ => return not_ours(),
        }
    } else {
        match serde_json::from_slice::<NotFound>(&bytes) {
            Ok(n)
                if !n.found
                    && about(
                        &n.sku,
                        n.partition,
                        &n.task,
                        &n.owner,
                        n.instance.as_deref(),
                    ) =>
            {
                (StatusCode::NOT_FOUND, Json(n)).into_response()
            }
            _ => return not_ours(),
        }
    };
    if let Ok(v) = HeaderValue::from_str(&owner.instance_id) {
        response.headers_mut().insert(ANSWERED_BY, v);
    }
    Asked::Answer(response)
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
                    if let Some(other) = r
                        .directory
                        .owner(task, now, |_| true)
                        .filter(|o| o.instance_id != r.me.instance_id)
                    {
                        detail.push_str(&format!(
                            " (instance {} claims it, but its host is not one this instance forwards to: see --peer-allow, now {})",
                            other.instance_id, r.allow
                        ));
                    }
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

pub(super) async fn instances(State(state): State<AppState>) -> Response {
    let Some(routing) = state.routing.get() else {
        return json(
            StatusCode::NOT_FOUND,
            serde_json::json!({"detail": "this process keeps no instance directory (only `shelfsync run` does)"}),
        );
    };
    let now = crate::clock::now_ms();
    json(
        StatusCode::OK,
        serde_json::json!({
            "self": routing.me,
            "synced": routing.directory.is_synced(),
            "instances": routing.directory.snapshot(now),
        }),
    )
}

pub(super) async fn availability(
    State(state): State<AppState>,
    Path(sku): Path<String>,
    Query(params): Query<AvailabilityParams>,
    headers: HeaderMap,
) -> Response {
    let Ok(_permit) = state.queries.try_acquire() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            [(axum::http::header::RETRY_AFTER, "1")],
            Json(serde_json::json!({"sku": sku, "detail": "too many availability queries at once: retry shortly"})),
        )
            .into_response();
    };
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
        let loaded = load_sku(&view, &sku_b)
            .and_then(|rec| {
                let holds = holds_of(&view, &sku_b, MAX_HOLDS_SHOWN + 1)?;
                let now = shelfsync_operators::state::stream_time(&view)?;
                Ok(rec.map(|r| (r, (holds, now))))
            })
            .map_err(|e| Error::Bug(e.to_string()));
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
        Ok(Ok(Some((record, holds)))) => {
            let body = local_view(
                &state.topology,
                instance,
                &sku,
                partition,
                &task,
                record,
                holds,
            );
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
