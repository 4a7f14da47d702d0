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
pub(super) struct HoldView {
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
pub(super) struct CommittedView<'a> {
    db: &'a StateDb,
    task: &'a str,
    error: RefCell<Option<Error>>,
}

impl<'a> CommittedView<'a> {
    /// A view of `task`'s committed state in `db`.
    pub(super) fn new(db: &'a StateDb, task: &'a str) -> Self {
        Self {
            db,
            task,
            error: RefCell::new(None),
        }
    }

    /// The first read error, if a read failed (its reads then answered "absent").
    pub(super) fn into_error(self) -> Option<Error> {
        self.error.into_inner()
    }

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

impl AvailabilityParams {
    /// Whether the owner may be asked (`proxy` absent or `true`).
    pub(super) fn proxy(&self) -> bool {
        self.proxy.unwrap_or(true)
    }
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

/// What a routed query is about (a SKU's availability, an order), and how its owner's answer
/// is checked before it is passed on.
pub(super) trait Subject {
    /// The JSON field that names it (`sku`, `order_key`).
    const FIELD: &'static str;
    /// What it is, in messages.
    const WHAT: &'static str;
    /// Its id.
    fn id(&self) -> &str;
    /// Its URL on the instance whose HTTP endpoints are at `base`.
    fn url(&self, base: &str) -> String;
    /// The topic whose partition names its owning task (for messages).
    fn topic(&self, state: &AppState) -> String;
    /// The owner's answer (`code` 200 or 404, `bytes`) written anew, if it is an answer about
    /// this subject for `partition` and `task`, from the own state of instance `instance`.
    fn check(
        &self,
        code: u16,
        bytes: &[u8],
        partition: i32,
        task: &str,
        instance: &str,
    ) -> Option<Response>;
}

/// The answer of an owner that has no state of `subject`.
pub(super) fn not_found<S: Subject>(
    subject: &S,
    partition: i32,
    task: &str,
    instance: Option<String>,
) -> Response {
    json(
        StatusCode::NOT_FOUND,
        serde_json::json!({S::FIELD: subject.id(), "partition": partition, "task": task, "owner": "local", "instance": instance, "found": false}),
    )
}

/// The answer when reading `subject`'s state failed (`read` is the error of the blocking task
/// or of the read itself), logged.
pub(super) fn read_failed<S: Subject>(
    subject: &S,
    partition: i32,
    task: &str,
    read: std::result::Result<Error, tokio::task::JoinError>,
) -> Response {
    let detail = match read {
        Ok(e) => {
            warn!(subject = subject.id(), task = %task, error = %e, "{} query failed", S::WHAT);
            e.to_string()
        }
        Err(e) => format!("query task failed: {e}"),
    };
    json(
        StatusCode::INTERNAL_SERVER_ERROR,
        serde_json::json!({S::FIELD: subject.id(), "partition": partition, "task": task, "detail": detail}),
    )
}

/// The availability query's subject.
pub(super) struct Sku<'a>(pub(super) &'a str);

impl Subject for Sku<'_> {
    const FIELD: &'static str = "sku";
    const WHAT: &'static str = "SKU";

    fn id(&self) -> &str {
        self.0
    }

    fn url(&self, base: &str) -> String {
        availability_url(base, self.0)
    }

    fn topic(&self, state: &AppState) -> String {
        state.inventory_topic.to_string()
    }

    fn check(
        &self,
        code: u16,
        bytes: &[u8],
        partition: i32,
        task: &str,
        instance: &str,
    ) -> Option<Response> {
        let about = |s: &str, p: i32, t: &str, o: &str, i: Option<&str>| {
            s == self.0 && p == partition && t == task && o == "local" && i == Some(instance)
        };
        if code == 200 {
            let a = serde_json::from_slice::<LocalAvailability>(bytes).ok()?;
            (a.found
                && about(
                    &a.sku,
                    a.partition,
                    &a.task,
                    &a.owner,
                    a.instance.as_deref(),
                ))
            .then(|| (StatusCode::OK, Json(a)).into_response())
        } else {
            let n = serde_json::from_slice::<NotFound>(bytes).ok()?;
            (!n.found
                && about(
                    &n.sku,
                    n.partition,
                    &n.task,
                    &n.owner,
                    n.instance.as_deref(),
                ))
            .then(|| (StatusCode::NOT_FOUND, Json(n)).into_response())
        }
    }
}

/// The answer for a subject whose owning task this instance does not own: its owner's answer
/// when `forward` and the owner answers from its local state, else a pointer (421).
pub(super) async fn elsewhere<S: Subject>(
    state: &AppState,
    subject: &S,
    partition: i32,
    task: &str,
    forward: bool,
) -> Response {
    if state.status.is_opening(task) {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                S::FIELD: subject.id(),
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
            match ask_owner(state, &r.me, o, subject, partition, task).await {
                Asked::Answer(answer) => return answer,
                Asked::NotAnswered(why) => failure = Some(why),
                Asked::Bad(why) => {
                    warn!(peer = %o.instance_id, task, detail = %why, "a peer's answer to a forwarded query was refused");
                    return json(
                        StatusCode::BAD_GATEWAY,
                        serde_json::json!({
                            S::FIELD: subject.id(),
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
    pointer(
        state, subject, partition, task, routing, owner, failure, now,
    )
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
async fn ask_owner<S: Subject>(
    state: &AppState,
    me: &Identity,
    owner: &Owner,
    subject: &S,
    partition: i32,
    task: &str,
) -> Asked {
    let url = subject.url(&owner.http_url);
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
    // The answer must be about this subject, from the owner's own state, given by the owner.
    let Some(mut response) = subject.check(code, &bytes, partition, task, &owner.instance_id)
    else {
        return Asked::Bad(format!(
            "its answer ({code}, {} bytes) is not a shelfsync answer for this {} from its own state",
            bytes.len(),
            S::WHAT
        ));
    };
    if let Ok(v) = HeaderValue::from_str(&owner.instance_id) {
        response.headers_mut().insert(ANSWERED_BY, v);
    }
    Asked::Answer(response)
}

/// `421 Misdirected Request`: the task, and the owning instance when the directory knows one.
#[allow(clippy::too_many_arguments)]
fn pointer<S: Subject>(
    state: &AppState,
    subject: &S,
    partition: i32,
    task: &str,
    routing: Option<&Routing>,
    owner: Option<Owner>,
    failure: Option<String>,
    now: i64,
) -> Response {
    let topic = subject.topic(state);
    let mut body = serde_json::json!({
        S::FIELD: subject.id(),
        "partition": partition,
        "task": task,
    });
    let mut detail = format!("partition {partition} of {topic} is not assigned to this instance");
    match &owner {
        Some(o) => {
            body["owner"] = "remote".into();
            body["instance"] = o.instance_id.clone().into();
            body["url"] = subject.url(&o.http_url).into();
            body["opening"] = o.opening.into();
            body["since"] = o.since.into();
            detail.push_str(&format!(
                "; instance {} owns task {task}: ask {}",
                o.instance_id,
                subject.url(&o.http_url)
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
                    "; the instance that owns task {task} answers for this {}",
                    S::WHAT
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

/// The holds of `order_key` on `sku`, from the SKU's availability answer (this instance's, or
/// its owner's through the availability query); `Err` with why when there is no such answer.
pub(super) async fn holds_of_order(
    state: &AppState,
    sku: &str,
    order_key: &str,
) -> Result<Vec<HoldView>, String> {
    let answer = availability(
        State(state.clone()),
        Path(sku.to_string()),
        Query(AvailabilityParams::default()),
        HeaderMap::new(),
    )
    .await;
    let code = answer.status().as_u16();
    if code == 404 {
        return Ok(Vec::new());
    }
    let bytes = axum::body::to_bytes(answer.into_body(), MAX_PEER_BODY * 4)
        .await
        .map_err(|e| format!("the SKU's answer could not be read: {e}"))?;
    if code != 200 {
        let detail = serde_json::from_slice::<serde_json::Value>(&bytes)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_default();
        return Err(format!("the SKU's availability answered {code}: {detail}"));
    }
    let a: LocalAvailability = serde_json::from_slice(&bytes)
        .map_err(|e| format!("the SKU's availability answer does not read: {e}"))?;
    let mut holds: Vec<HoldView> = a
        .holds
        .into_iter()
        .filter(|h| h.order_key == order_key)
        .collect();
    holds.sort_by(|x, y| x.line_id.cmp(&y.line_id));
    Ok(holds)
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
        return elsewhere(&state, &Sku(&sku), partition, &task, forward).await;
    }
    let Some(db) = state.status.db.get().cloned() else {
        return json(
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({"sku": sku, "partition": partition, "task": task, "detail": "state store not open yet"}),
        );
    };
    let (sku_b, task_b) = (sku.clone(), task.clone());
    let read = tokio::task::spawn_blocking(move || {
        let view = CommittedView::new(&db, &task_b);
        let loaded = load_sku(&view, &sku_b)
            .and_then(|rec| {
                let holds = holds_of(&view, &sku_b, MAX_HOLDS_SHOWN + 1)?;
                let now = shelfsync_operators::state::stream_time(&view)?;
                Ok(rec.map(|r| (r, (holds, now))))
            })
            .map_err(|e| Error::Bug(e.to_string()));
        match view.into_error() {
            Some(e) => Err(e),
            None => loaded,
        }
    })
    .await;
    // The task may have been revoked while we read: the answer then belongs to its new owner.
    if !state.status.owns(&task) {
        return elsewhere(&state, &Sku(&sku), partition, &task, forward).await;
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
        Ok(Ok(None)) => not_found(&Sku(&sku), partition, &task, instance),
        Ok(Err(e)) => read_failed(&Sku(&sku), partition, &task, Ok(e)),
        Err(e) => read_failed(&Sku(&sku), partition, &task, Err(e)),
    }
}
