//! A marketplace simulator for `shelfsync push`: one HTTP server on `127.0.0.1` that speaks the
//! inventory APIs the sink uses (Shopify GraphQL `inventorySetQuantities` with compare-and-swap,
//! Amazon `patchListingsItem` and `JSON_LISTINGS_FEED`, Walmart inventory and bulk feed, eBay
//! `bulk_update_price_quantity`, a signed webhook), each channel under its own path prefix
//! (`http://127.0.0.1:PORT/<channel>`).
//!
//! Like a real marketplace it enforces each channel's rate limit and each limited operation's
//! (429 + `Retry-After`), answers as the published specs say (Walmart item statuses in pages of
//! at most 50, Amazon processing reports gzip-compressed, Shopify lookups as paged
//! connections), and,
//! seeded and deterministic per request number, it fails a share of calls (503), throttles a
//! share (429 + `Retry-After`), and changes some Shopify quantities behind the sink's back (an
//! order placed on the storefront), so that its next compare-and-swap is stale. It refuses
//! SKUs starting with `BAD-` the way each API refuses an unknown SKU.
//!
//! It records, per channel and SKU, the last quantity and version received (versions come from
//! the `X-Shelfsync-Update-Keys` header, `channel|sku|version`), every arrival in order, and
//! every broken promise: a request over the rate, a request during a `Retry-After` pause, an
//! older version applied over a newer one, a request without update keys or with a bad
//! signature or missing credentials.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;
use tokio::sync::oneshot;

mod amazon;
mod shopify;
mod walmart;

use amazon::amazon;
use shopify::shopify;
use walmart::walmart;

/// The API a simulated channel speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Api {
    /// Shopify Admin GraphQL.
    Shopify,
    /// Amazon SP-API listings and feeds.
    Amazon,
    /// Walmart Marketplace inventory.
    Walmart,
    /// eBay Inventory API.
    Ebay,
    /// A webhook signed with HMAC-SHA256.
    Webhook,
}

/// One simulated channel.
#[derive(Debug, Clone)]
pub struct SimChannel {
    /// The channel name (path prefix).
    pub name: String,
    /// Its API.
    pub api: Api,
    /// Allowed requests per second.
    pub rate: f64,
    /// Allowed burst.
    pub burst: u32,
    /// The credential it expects (token, or the webhook's signing secret).
    pub secret: String,
    /// Per-operation limits (operation name as in the specs, requests per second, burst), on
    /// top of the channel's: a request over its operation's limit is answered 429 and counted
    /// as a rate violation, as SP-API and Walmart do per operation.
    pub operation_limits: Vec<(&'static str, f64, u32)>,
}

/// Fault injection and tolerances.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Seeds the per-request decisions.
    pub seed: u64,
    /// Requests (per mille) answered 503.
    pub fail_per_mille: u64,
    /// Requests (per mille) answered 429 with `Retry-After`.
    pub throttle_per_mille: u64,
    /// The `Retry-After` of those, in seconds.
    pub retry_after_secs: u64,
    /// Shopify writes (per mille) after which the stored quantity drops by one (an order),
    /// so the sink's next compare value for the SKU is stale.
    pub drift_per_mille: u64,
    /// Arrival jitter tolerated by the rate check: the bucket may hold `burst + rate ·
    /// allowance` (requests sent on time by the client arrive a little late or early).
    pub jitter_allowance: Duration,
    /// Requests arriving this long after a 429 are expected to respect its `Retry-After`
    /// (requests already on their way when the 429 went out do not count).
    pub retry_after_grace: Duration,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            seed: 0x5eed,
            fail_per_mille: 20,
            throttle_per_mille: 3,
            retry_after_secs: 1,
            drift_per_mille: 30,
            jitter_allowance: Duration::from_millis(250),
            retry_after_grace: Duration::from_millis(500),
        }
    }
}

/// What a channel received for one SKU last.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Applied {
    /// Quantity.
    pub quantity: i64,
    /// Version (from the update keys).
    pub version: i64,
    /// Global arrival number.
    pub seq: u64,
}

/// Everything recorded for one channel.
#[derive(Debug, Clone, Default)]
pub struct ChannelReport {
    /// Requests received.
    pub requests: u64,
    /// Updates applied (including repeats of a version).
    pub updates: u64,
    /// Requests over the rate limit (each answered 429).
    pub rate_violations: Vec<String>,
    /// Requests during a `Retry-After` pause.
    pub retry_after_violations: Vec<String>,
    /// Older versions applied over newer ones, or one version with two quantities.
    pub stale_overwrites: Vec<String>,
    /// Requests without usable update keys.
    pub missing_keys: Vec<String>,
    /// Requests with wrong or missing credentials or signatures.
    pub auth_failures: u64,
    /// Requests that broke the API's shape (a field missing, a batch too big).
    pub shape_errors: Vec<String>,
    /// Injected 503s.
    pub injected_failures: u64,
    /// Injected 429s.
    pub injected_throttles: u64,
    /// Compare-and-swap refusals (Shopify).
    pub cas_conflicts: u64,
    /// Updates refused for an unknown (`BAD-`) SKU.
    pub refused: u64,
    /// Of those, refused inside a feed (an Amazon processing report's `issues`, a Walmart item
    /// status `DATA_ERROR`).
    pub feed_refused: u64,
    /// Amazon processing reports downloaded (each gzip-compressed).
    pub compressed_reports: u64,
    /// Walmart item-status pages read past the first (feeds of more than 50 items).
    pub later_status_pages: u64,
    /// Per SKU, the last received.
    pub last: BTreeMap<String, Applied>,
    /// Every applied update in arrival order: (seq, sku, version, quantity).
    pub arrivals: Vec<(u64, String, i64, i64)>,
}

#[derive(Debug)]
struct ChannelState {
    spec: SimChannel,
    report: ChannelReport,
    tokens: f64,
    last_refill: Instant,
    /// Injected 429s still running, by scope: `None` the whole channel, `Some(op)` one
    /// operation with a limit of its own (SP-API and Walmart throttle per operation):
    /// (sent at, Retry-After until).
    blocks: HashMap<Option<&'static str>, (Instant, Instant)>,
    /// Shopify's stored `available` per SKU.
    stored: HashMap<String, i64>,
    /// Uploaded feed documents (Amazon) by id: (content, update keys).
    documents: HashMap<String, (Vec<u8>, String)>,
    /// Finished feeds by id: Amazon report issues, or Walmart item statuses.
    feeds: HashMap<String, Value>,
    /// Per limited operation: (tokens, last refill).
    operation_tokens: HashMap<&'static str, (f64, Instant)>,
}

#[derive(Debug)]
struct SimState {
    config: SimConfig,
    channels: BTreeMap<String, ChannelState>,
    seq: u64,
    ids: u64,
    base: String,
    /// Channels whose requests are held unanswered until released (a marketplace that stalls).
    held: BTreeSet<String>,
}

/// The running simulator; stops on drop.
pub struct MarketplaceSim {
    addr: SocketAddr,
    state: Arc<Mutex<SimState>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl MarketplaceSim {
    /// Starts the simulator on a free port of `127.0.0.1`.
    ///
    /// # Errors
    /// When it cannot bind or start its runtime.
    pub fn start(config: SimConfig, channels: Vec<SimChannel>) -> Result<Self> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let now = Instant::now();
        let state = Arc::new(Mutex::new(SimState {
            config,
            channels: channels
                .into_iter()
                .map(|spec| {
                    (
                        spec.name.clone(),
                        ChannelState {
                            tokens: f64::from(spec.burst),
                            operation_tokens: spec
                                .operation_limits
                                .iter()
                                .map(|(op, _, burst)| (*op, (f64::from(*burst), now)))
                                .collect(),
                            spec,
                            report: ChannelReport::default(),
                            last_refill: now,
                            blocks: HashMap::new(),
                            stored: HashMap::new(),
                            documents: HashMap::new(),
                            feeds: HashMap::new(),
                        },
                    )
                })
                .collect(),
            seq: 0,
            ids: 0,
            base: format!("http://{addr}"),
            held: BTreeSet::new(),
        }));
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let listener = {
            let _guard = runtime.enter();
            tokio::net::TcpListener::from_std(listener)?
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let shared = Arc::clone(&state);
        let app = Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let shared = Arc::clone(&shared);
                async move {
                    while is_held(&shared, &uri) {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    handle(&shared, &method, &uri, &headers, &body)
                }
            },
        );
        let thread = std::thread::Builder::new()
            .name("marketplace-sim".into())
            .spawn(move || {
                runtime.block_on(async move {
                    let _ = axum::serve(listener, app)
                        .with_graceful_shutdown(async move {
                            let _ = stopped.await;
                        })
                        .await;
                });
            })
            .context("spawn the simulator thread")?;
        Ok(Self {
            addr,
            state,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The base URL of a channel (its `endpoint` in the topology).
    pub fn url(&self, channel: &str) -> String {
        format!("http://{}/{channel}", self.addr)
    }

    fn lock(&self) -> MutexGuard<'_, SimState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A copy of what a channel recorded.
    pub fn report(&self, channel: &str) -> ChannelReport {
        self.lock()
            .channels
            .get(channel)
            .map(|c| c.report.clone())
            .unwrap_or_default()
    }

    /// Holds (`true`) or releases the requests of `channel`: a held request gets no answer
    /// until the channel is released (a stalled marketplace; the client's timeout applies).
    pub fn hold(&self, channel: &str, held: bool) {
        let mut state = self.lock();
        if held {
            state.held.insert(channel.to_string());
        } else {
            state.held.remove(channel);
        }
    }

    /// Per SKU, the version `channel` received last (cheaper than a whole [`ChannelReport`]).
    pub fn last_versions(&self, channel: &str) -> HashMap<String, i64> {
        self.lock()
            .channels
            .get(channel)
            .map(|c| {
                c.report
                    .last
                    .iter()
                    .map(|(sku, a)| (sku.clone(), a.version))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Updates applied so far over all channels.
    pub fn updates(&self) -> u64 {
        self.lock()
            .channels
            .values()
            .map(|c| c.report.updates)
            .sum()
    }
}

impl Drop for MarketplaceSim {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn lock(state: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    state
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A deterministic number in `0..1000` for request `n` of `channel`.
fn roll(seed: u64, channel: &str, n: u64, salt: u64) -> u64 {
    let mut h: u64 = seed ^ salt.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    for b in channel.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    h ^= n.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 31;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^= h >> 29;
    h % 1000
}

fn reply(status: StatusCode, body: Value) -> Response {
    (
        status,
        [("content-type", "application/json")],
        body.to_string(),
    )
        .into_response()
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// The update keys of a request: SKU → version.
fn update_keys(channel: &str, value: Option<&str>) -> Option<Vec<(String, i64)>> {
    let value = value?;
    let mut out = Vec::new();
    for key in value.split(',') {
        let mut parts = key.rsplitn(2, '|');
        let version = parts.next()?.parse().ok()?;
        let rest = parts.next()?;
        let sku = rest.strip_prefix(channel)?.strip_prefix('|')?;
        out.push((percent_decode(sku), version));
    }
    Some(out)
}

fn is_held(shared: &Mutex<SimState>, uri: &Uri) -> bool {
    let channel = uri.path().trim_start_matches('/').split('/').next();
    channel.is_some_and(|c| lock(shared).held.contains(c))
}

fn handle(
    shared: &Mutex<SimState>,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let path = uri.path();
    let mut segments = path.trim_start_matches('/').splitn(2, '/');
    let channel = segments.next().unwrap_or_default().to_string();
    let rest = format!("/{}", segments.next().unwrap_or_default());
    let mut guard = lock(shared);
    let state = &mut *guard;
    let config = state.config.clone();
    let Some(ch) = state.channels.get_mut(&channel) else {
        return reply(StatusCode::NOT_FOUND, json!({"error": "no such channel"}));
    };
    let now = Instant::now();
    ch.report.requests += 1;
    let n = ch.report.requests;
    let what = format!("#{n} {method} {rest}");

    // The rate limit, with a jitter allowance.
    let capacity = f64::from(ch.spec.burst) + ch.spec.rate * config.jitter_allowance.as_secs_f64();
    let elapsed = now.duration_since(ch.last_refill).as_secs_f64();
    ch.tokens = (ch.tokens + elapsed * ch.spec.rate).min(capacity);
    ch.last_refill = now;
    if ch.tokens < 1.0 {
        ch.report.rate_violations.push(format!(
            "{what}: over {} req/s (burst {})",
            ch.spec.rate, ch.spec.burst
        ));
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", "1")],
            "rate limit exceeded",
        )
            .into_response();
    }
    ch.tokens -= 1.0;

    // The operation's own limit, if it has one.
    let limited = operation_of(ch.spec.api, method, &rest).filter(|op| {
        ch.spec
            .operation_limits
            .iter()
            .any(|(name, _, _)| name == op)
    });
    if let Some(op) = limited {
        let limit = ch
            .spec
            .operation_limits
            .iter()
            .find(|(name, _, _)| *name == op)
            .map(|(_, rate, burst)| (*rate, *burst));
        if let (Some((rate, burst)), Some((tokens, last))) =
            (limit, ch.operation_tokens.get_mut(op))
        {
            let capacity = f64::from(burst) + rate * config.jitter_allowance.as_secs_f64();
            *tokens = (*tokens + now.duration_since(*last).as_secs_f64() * rate).min(capacity);
            *last = now;
            if *tokens < 1.0 {
                ch.report
                    .rate_violations
                    .push(format!("{what}: {op} over {rate} req/s (burst {burst})"));
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [("retry-after", "1")],
                    "operation rate limit exceeded",
                )
                    .into_response();
            }
            *tokens -= 1.0;
        }
    }

    // Retry-After respected? A channel-wide one binds every request, an operation's only the
    // operation's.
    for scope in [None, limited] {
        if let Some(&(at, until)) = ch.blocks.get(&scope) {
            if now < until && now.duration_since(at) > config.retry_after_grace {
                ch.report.retry_after_violations.push(format!(
                    "{what}: {} ms into a {} s Retry-After ({})",
                    now.duration_since(at).as_millis(),
                    config.retry_after_secs,
                    scope.unwrap_or("channel")
                ));
            }
        }
        if limited.is_none() {
            break;
        }
    }

    // Credentials (the pre-signed upload and download URLs of Amazon carry none).
    let presigned = rest.starts_with("/upload/") || rest.starts_with("/download/");
    if !presigned && !authorized(ch, headers, body) {
        ch.report.auth_failures += 1;
        return reply(
            StatusCode::UNAUTHORIZED,
            json!({"errors": [{"message": "unauthorized"}]}),
        );
    }

    // Injected faults.
    if roll(config.seed, &channel, n, 1) < config.throttle_per_mille {
        ch.report.injected_throttles += 1;
        ch.blocks.insert(
            limited,
            (now, now + Duration::from_secs(config.retry_after_secs)),
        );
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [("retry-after", config.retry_after_secs.to_string())],
            "throttled",
        )
            .into_response();
    }
    if roll(config.seed, &channel, n, 2) < config.fail_per_mille {
        ch.report.injected_failures += 1;
        return reply(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"errors": [{"message": "try again"}]}),
        );
    }

    let api = ch.spec.api;
    let base = format!("{}/{channel}", state.base);
    match api {
        Api::Shopify => shopify(state, &channel, &what, headers, body, &config),
        Api::Amazon => amazon(
            state,
            &channel,
            &base,
            &what,
            method,
            &rest,
            uri.query(),
            headers,
            body,
        ),
        Api::Walmart => walmart(
            state,
            &channel,
            &what,
            method,
            &rest,
            uri.query(),
            headers,
            body,
        ),
        Api::Ebay => ebay(state, &channel, &what, &rest, headers, body),
        Api::Webhook => webhook(state, &channel, &what, headers, body),
    }
}

/// The spec's name (`operationId`) of a request to `api`, for the operations with limits of
/// their own.
fn operation_of(api: Api, method: &Method, rest: &str) -> Option<&'static str> {
    match (api, method.as_str(), rest) {
        (Api::Amazon, "PATCH", r) if r.starts_with("/listings/2021-08-01/items/") => {
            Some("patchListingsItem")
        }
        (Api::Amazon, "POST", "/feeds/2021-06-30/documents") => Some("createFeedDocument"),
        (Api::Amazon, "POST", "/feeds/2021-06-30/feeds") => Some("createFeed"),
        (Api::Amazon, "GET", r) if r.starts_with("/feeds/2021-06-30/feeds/") => Some("getFeed"),
        (Api::Amazon, "GET", r) if r.starts_with("/feeds/2021-06-30/documents/") => {
            Some("getFeedDocument")
        }
        (Api::Walmart, "POST", "/v3/feeds") => Some("updateBulkInventory"),
        _ => None,
    }
}

fn authorized(ch: &ChannelState, headers: &HeaderMap, body: &Bytes) -> bool {
    let secret = ch.spec.secret.as_str();
    match ch.spec.api {
        Api::Shopify => header(headers, "x-shopify-access-token") == Some(secret),
        Api::Amazon => header(headers, "x-amz-access-token") == Some(secret),
        Api::Walmart => {
            header(headers, "wm_sec.access_token") == Some(secret)
                && header(headers, "wm_svc.name").is_some()
                && header(headers, "wm_qos.correlation_id").is_some()
        }
        Api::Ebay => header(headers, "authorization") == Some(&format!("Bearer {secret}")),
        Api::Webhook => {
            // As a receiver should: the signed timestamp within 5 minutes of now, and the
            // HMAC over "<timestamp>.<body>".
            let Some(timestamp) =
                header(headers, "x-shelfsync-timestamp").and_then(|t| t.parse::<u64>().ok())
            else {
                return false;
            };
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            if now.abs_diff(timestamp) > 300 {
                return false;
            }
            let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(secret.as_bytes()) else {
                return false;
            };
            mac.update(format!("{timestamp}.").as_bytes());
            mac.update(body);
            let want: String = mac
                .finalize()
                .into_bytes()
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            header(headers, "x-shelfsync-signature") == Some(&format!("sha256={want}"))
        }
    }
}

/// Records an update received for `sku`.
fn apply(state: &mut SimState, channel: &str, what: &str, sku: &str, version: i64, quantity: i64) {
    state.seq += 1;
    let seq = state.seq;
    let Some(ch) = state.channels.get_mut(channel) else {
        return;
    };
    if let Some(prev) = ch.report.last.get(sku) {
        if version < prev.version || (version == prev.version && quantity != prev.quantity) {
            ch.report.stale_overwrites.push(format!(
                "{what}: {sku} v{version} (qty {quantity}) after v{} (qty {})",
                prev.version, prev.quantity
            ));
        }
    }
    ch.report.updates += 1;
    ch.report.last.insert(
        sku.to_string(),
        Applied {
            quantity,
            version,
            seq,
        },
    );
    ch.report
        .arrivals
        .push((seq, sku.to_string(), version, quantity));
}

fn keys_or_note(
    state: &mut SimState,
    channel: &str,
    what: &str,
    headers: &HeaderMap,
) -> HashMap<String, i64> {
    match update_keys(channel, header(headers, "x-shelfsync-update-keys")) {
        Some(keys) => keys.into_iter().collect(),
        None => {
            if let Some(ch) = state.channels.get_mut(channel) {
                ch.report.missing_keys.push(what.to_string());
            }
            HashMap::new()
        }
    }
}

/// Counts an update the marketplace refused (an unknown `BAD-` SKU), `in_feed` when it came in
/// a feed.
fn refuse(state: &mut SimState, channel: &str, in_feed: bool) {
    if let Some(ch) = state.channels.get_mut(channel) {
        ch.report.refused += 1;
        if in_feed {
            ch.report.feed_refused += 1;
        }
    }
}

fn shape_error(state: &mut SimState, channel: &str, what: &str, why: &str) -> Response {
    if let Some(ch) = state.channels.get_mut(channel) {
        ch.report.shape_errors.push(format!("{what}: {why}"));
    }
    reply(
        StatusCode::BAD_REQUEST,
        json!({"errors": [{"message": why}]}),
    )
}

fn next_id(state: &mut SimState, prefix: &str) -> String {
    state.ids += 1;
    format!("{prefix}-{}", state.ids)
}

fn ebay(
    state: &mut SimState,
    channel: &str,
    what: &str,
    rest: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if rest != "/sell/inventory/v1/bulk_update_price_quantity" {
        return shape_error(state, channel, what, "unknown eBay call");
    }
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return shape_error(state, channel, what, "body is not JSON");
    };
    let requests = v["requests"].as_array().cloned().unwrap_or_default();
    if requests.is_empty() || requests.len() > 25 {
        return shape_error(state, channel, what, "1 to 25 requests");
    }
    let keys = keys_or_note(state, channel, what, headers);
    let mut responses = Vec::new();
    let mut all_ok = true;
    for r in &requests {
        let sku = r["sku"].as_str().unwrap_or_default().to_string();
        let Some(quantity) = r["shipToLocationAvailability"]["quantity"].as_i64() else {
            return shape_error(state, channel, what, "shipToLocationAvailability.quantity");
        };
        if sku.starts_with("BAD-") {
            all_ok = false;
            refuse(state, channel, false);
            responses.push(json!({"statusCode": 400, "sku": sku, "errors": [{"errorId": 25702, "message": "SKU not found"}]}));
            continue;
        }
        let version = keys.get(&sku).copied().unwrap_or(0);
        apply(state, channel, what, &sku, version, quantity);
        responses.push(
            json!({"statusCode": 200, "sku": sku, "offerId": "1", "errors": [], "warnings": []}),
        );
    }
    let status = if all_ok {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    reply(status, json!({"responses": responses}))
}

fn webhook(
    state: &mut SimState,
    channel: &str,
    what: &str,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return shape_error(state, channel, what, "body is not JSON");
    };
    if v["channel"] != channel || header(headers, "x-shelfsync-update-keys").is_none() {
        return shape_error(state, channel, what, "channel or update keys");
    }
    for u in v["updates"].as_array().cloned().unwrap_or_default() {
        let (Some(sku), Some(version), Some(quantity)) = (
            u["sku"].as_str(),
            u["version"].as_i64(),
            u["quantity"].as_i64(),
        ) else {
            return shape_error(state, channel, what, "update fields");
        };
        if u["idempotency_key"] != format!("{channel}|{sku}|{version}") {
            return shape_error(state, channel, what, "idempotency_key");
        }
        apply(state, channel, what, sku, version, quantity);
    }
    reply(StatusCode::OK, json!({"ok": true}))
}

#[cfg(test)]
mod tests {
    use super::shopify::shopify_skus;
    use super::*;

    #[test]
    fn parses_shopify_search_and_update_keys() {
        assert_eq!(
            shopify_skus(r#"sku:"A-1" OR sku:"B \"2\"""#),
            ["A-1", "B \"2\""]
        );
        assert_eq!(
            update_keys("shop", Some("shop|A%2C1|3,shop|B|10")),
            Some(vec![("A,1".to_string(), 3), ("B".to_string(), 10)])
        );
        assert_eq!(update_keys("shop", Some("other|A|1")), None);
    }

    #[test]
    fn rolls_are_deterministic_and_spread() {
        let hits = (0..10_000).filter(|n| roll(1, "x", *n, 2) < 20).count();
        assert!((100..300).contains(&hits), "{hits}");
        assert_eq!(roll(1, "x", 5, 2), roll(1, "x", 5, 2));
    }
}
