//! The marketplace APIs, one file each behind one trait, `Marketplace`: pure code that builds
//! the requests for a batch of updates (method, URL, headers, body) and reads the answers into
//! a result per update. Nothing here sends, waits, retries or rate-limits: the shared delivery
//! loop (`super::delivery`) sends the requests a marketplace asks for, and the shared feed
//! flow (`super::feed`) runs submit → poll → report for the APIs that describe a bulk
//! `Feed`.
//!
//! | kind | file | single update | batch |
//! |---|---|---|---|
//! | `shopify` | [`shopify`] | — | GraphQL `inventorySetQuantities` (≤ 250), absolute `available`, `changeFromQuantity` compare-and-swap, `@idempotent(key:)` |
//! | `amazon` | [`amazon`] | `PATCH /listings/2021-08-01/items/{sellerId}/{sku}` (`merge /attributes/fulfillment_availability`) | `JSON_LISTINGS_FEED` (createFeedDocument → upload → createFeed → getFeed → processing report, gunzipped when compressed) |
//! | `walmart` | [`walmart`] | `PUT /v3/inventory?sku=` | `POST /v3/feeds?feedType=inventory` (multipart JSON, spec 1.4) → `GET /v3/feeds/{id}` until final → item statuses in pages of 50 (`includeDetails=true&limit=50&offset=…`) |
//! | `ebay` | [`ebay`] | — | `POST /sell/inventory/v1/bulk_update_price_quantity` (≤ 25) |
//! | `webhook` | [`webhook`] | — | `POST` JSON, `X-Shelfsync-Timestamp: <unix s>`, `X-Shelfsync-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` |
//!
//! Every request carries `X-Shelfsync-Update-Keys`: the idempotency key `channel|sku|version`
//! of each update in it (SKUs percent-encoded), and `Idempotency-Key`: the key itself for a
//! single update, a hash of the keys for a batch.
//!
//! ## How a delivery is described
//!
//! `Marketplace::calls` answers with a chain of calls: each `Step` is a request plus the
//! pure function that reads its answer into the next step, or into the results. A marketplace
//! with a bulk `Feed` (`Marketplace::feed`) sends a backlog of at least a batch as a feed
//! and anything else (a stock-out, a few updates) one update a call. Amazon and Walmart feeds
//! are processed asynchronously: their updates stay in flight (no newer update of the same SKU
//! goes out) until the feed's status is final, so a feed never lands on top of a newer
//! single-item update.
//!
//! Each marketplace also says what it publishes about its limits: per-operation rate limits
//! (`Marketplace::operation_limits`, applied by `super::api`), the operations a feed submission
//! needs (`Feed::submit_operations`), and a daily revision limit per listing
//! (`Marketplace::revision_limit`, budgeted by `super::revisions`). The request names
//! (`Request::what`) are the specs' `operationId`s; `conformance` (tests) checks every request
//! built here against the published specifications in `push/fixtures/specs/`.
//!
//! Adding a marketplace is one new file here implementing `Marketplace` and one line in
//! `for_kind` (its `PushKind` comes from the topology crate).

pub mod amazon;
pub mod ebay;
pub mod shopify;
pub mod walmart;
pub mod webhook;

use std::fmt;

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde_json::Value;
use shelfsync_schemas::stable_id;
use shelfsync_topology::PushKind;

use super::api::{body_text, CallError, Request, Response};
use super::config::{ChannelConfig, Secret};
use super::queue::Update;

/// Header listing the idempotency keys (`channel|sku|version`) of the updates in a request.
pub const UPDATE_KEYS_HEADER: &str = "x-shelfsync-update-keys";
/// Header carrying the request's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Characters encoded in a SKU inside a URL path segment or query value.
pub(crate) const URL_SKU: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');
/// Characters encoded in a SKU inside the update-keys header (a comma-separated list).
const HEADER_SKU: &AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b',')
    .add(b'%')
    .add(b'"');

/// The marketplace API of `kind`: the one registration point of the marketplaces.
pub(crate) fn for_kind(kind: PushKind) -> Box<dyn Marketplace> {
    match kind {
        PushKind::Shopify => Box::new(shopify::Shopify::default()),
        PushKind::Amazon => Box::new(amazon::Amazon),
        PushKind::Walmart => Box::new(walmart::Walmart),
        PushKind::Ebay => Box::new(ebay::Ebay),
        PushKind::Webhook => Box::new(webhook::Webhook),
    }
}

/// One marketplace's inventory API, as pure code: the requests that deliver a batch of
/// updates and the readers of their answers.
pub(crate) trait Marketplace: fmt::Debug + Send + Sync {
    /// The calls delivering `updates` on `channel`, ending with every update's result. For a
    /// marketplace with a [`feed`](Self::feed), these are single-item calls (see
    /// [`one_by_one`]); the delivery loop sends a backlog as a feed.
    fn calls<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Delivery>;

    /// The marketplace's bulk feed, if it has one. By default none: the API takes a batch in
    /// one synchronous call.
    fn feed(&self) -> Option<&dyn Feed> {
        None
    }

    /// The rate limits the marketplace publishes per operation (the [`Request::what`] of the
    /// requests it builds), each applied on top of the channel's own `rate_per_sec`. By default
    /// none.
    fn operation_limits(&self) -> &'static [OperationLimit] {
        &[]
    }

    /// How often the marketplace lets one listing be revised per calendar day, if it limits
    /// that (eBay). By default it does not.
    fn revision_limit(&self) -> Option<super::revisions::RevisionLimit> {
        None
    }

    /// How many updates the next delivery carries, given whether the first waiting update is a
    /// stock-out, how many wait, the channel's `batch_size`, and whether the operations that
    /// submit a feed have a token now (`feed_ready`): a full batch, except that a marketplace
    /// with a feed sends one only while at least a batch waits and its feed operations are not
    /// at their limit, and never for a stock-out (a feed takes minutes to apply); otherwise
    /// single-item calls, which have limits of their own.
    fn batch_for(
        &self,
        first_is_stock_out: bool,
        waiting: usize,
        batch_size: usize,
        feed_ready: bool,
    ) -> usize {
        let feed_worth_it =
            feed_ready && !first_is_stock_out && batch_size > 1 && waiting >= batch_size;
        if self.feed().is_none() || feed_worth_it {
            batch_size
        } else {
            1
        }
    }
}

/// A rate limit a marketplace publishes for one of its operations: a token bucket of `burst`
/// refilled at `rate_per_sec`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct OperationLimit {
    /// The operation, as its requests name it (`createFeed`, `patchListingsItem`, …).
    pub operation: &'static str,
    /// Requests per second.
    pub rate_per_sec: f64,
    /// Requests that may go out back to back.
    pub burst: u32,
    /// Where the figure is published.
    pub source: &'static str,
}

/// Each update in a call of its own, one after the other, `call` giving the exchange of one
/// (the single-item calls of a marketplace with a feed).
pub(crate) fn one_by_one<'a>(
    updates: Batch<'a>,
    call: impl Fn(&'a Update) -> Step<'a, Delivery> + Send + 'a,
) -> Step<'a, Delivery> {
    fn rest<'a, F>(updates: Batch<'a>, call: F, mut done: Delivery) -> Step<'a, Delivery>
    where
        F: Fn(&'a Update) -> Step<'a, Delivery> + Send + 'a,
    {
        let Some((first, others)) = updates.split_first() else {
            return Step::Done(done);
        };
        call(first).and_then(move |one| {
            done.results.extend(one.results);
            done.throttled |= one.throttled;
            rest(others, call, done)
        })
    }
    rest(updates, call, Delivery::of(Vec::new()))
}

/// The updates of one delivery, in the order of their results.
pub(crate) type Batch<'a> = &'a [&'a Update];

/// The outcome of one request, as a marketplace reads it.
pub(crate) type Answer = Result<Response, CallError>;

/// The rest of an exchange with a marketplace: a request to send and the pure function that
/// reads its answer into the next step, or the end with its outcome `T`.
pub(crate) enum Step<'a, T> {
    /// Send the request; the function reads its outcome.
    Send(Request, Box<dyn FnOnce(Answer) -> Step<'a, T> + Send + 'a>),
    /// The exchange is over.
    Done(T),
}

impl<'a, T: 'a> Step<'a, T> {
    /// Sends `request`, then goes on with `then` applied to its outcome.
    pub(crate) fn send(request: Request, then: impl FnOnce(Answer) -> Self + Send + 'a) -> Self {
        Self::Send(request, Box::new(then))
    }

    /// This exchange, then the one `next` makes of its outcome.
    pub(crate) fn and_then<U: 'a>(
        self,
        next: impl FnOnce(T) -> Step<'a, U> + Send + 'a,
    ) -> Step<'a, U> {
        match self {
            Self::Done(out) => next(out),
            Self::Send(request, then) => {
                Step::send(request, move |answer| then(answer).and_then(next))
            }
        }
    }
}

impl<T: fmt::Debug> fmt::Debug for Step<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Send(request, _) => f.debug_tuple("Send").field(request).finish(),
            Self::Done(out) => f.debug_tuple("Done").field(out).finish(),
        }
    }
}

/// A bulk feed (Amazon `JSON_LISTINGS_FEED`, Walmart inventory feed): submitted once, then
/// asked for its status until the status is final, then read (from the status itself, or from a
/// processing report). The shared flow in [`super::feed`] does the waiting and asking again.
pub(crate) trait Feed: Sync {
    /// The requests that submit `updates` as one feed, ending with the feed's id (see
    /// [`feed_id`]), or with the result every update gets when the submission failed.
    fn submit<'a>(&'a self, channel: &'a Channel<'a>, updates: Batch<'a>) -> Step<'a, Submission>;

    /// Where a status answer says the feed's processing state, and which states are final.
    fn states(&self) -> &'static FeedStates;

    /// The rate-limited operations a submission calls: a feed goes out only while each has a
    /// token (else the backlog goes out one update a call).
    fn submit_operations(&self) -> &'static [&'static str];

    /// The request asking for the status of `feed`.
    fn status_request(&self, feed: &Submitted<'_>) -> Request;

    /// What the final `status` of an applied `feed` says about its updates.
    fn read_status(&self, feed: &Submitted<'_>, status: &Value) -> FeedEnd;

    /// The requests reading the processing report `report_id` of `feed` (see
    /// [`FeedEnd::Report`]). By default there is none to read.
    fn report<'a>(
        &'a self,
        feed: &'a Submitted<'a>,
        report_id: &'a str,
    ) -> Step<'a, Result<Value, ReportError>> {
        let _ = feed;
        Step::Done(Err(ReportError::Final(format!(
            "no processing report {report_id} to read"
        ))))
    }

    /// The results the processing `report` gives the updates of `feed`. By default every
    /// update is accepted.
    fn read_report(&self, feed: &Submitted<'_>, report: &Value) -> Vec<ItemResult> {
        let _ = report;
        vec![ItemResult::Accepted; feed.updates.len()]
    }
}

/// A submitted feed: its channel, its id and the updates in it.
#[derive(Debug)]
pub(crate) struct Submitted<'a> {
    /// The channel it was submitted on.
    pub(crate) channel: &'a Channel<'a>,
    /// The marketplace's id of the feed.
    pub(crate) id: &'a str,
    /// Its updates, in the order of the submission.
    pub(crate) updates: Batch<'a>,
}

/// The processing states of a marketplace's feeds.
#[derive(Debug)]
pub(crate) struct FeedStates {
    /// The field of a status answer that holds the state (`processingStatus`, `feedStatus`).
    pub(crate) field: &'static str,
    /// The final state in which the feed was applied (`DONE`, `PROCESSED`).
    pub(crate) applied: &'static str,
    /// The final states in which it was not (`CANCELLED`, `FATAL`, `ERROR`).
    pub(crate) failed: &'static [&'static str],
}

impl FeedStates {
    /// The state `status` gives.
    pub(crate) fn of<'v>(&self, status: &'v Value) -> Option<&'v str> {
        str_field(status, self.field)
    }

    /// Whether `status` gives a final state.
    pub(crate) fn is_final(&self, status: &Value) -> bool {
        self.of(status)
            .is_some_and(|s| s == self.applied || self.failed.contains(&s))
    }
}

/// The feed id of a submission's answer (its `feedId`); when the request failed or the answer
/// has none, the result every update gets. Without an id, submitted or not is unknown, so the
/// updates go again (the same versions, so nothing older can land on top of them).
pub(crate) fn feed_id(what: &str, answer: Answer) -> Result<String, ItemResult> {
    let submitted = answer.map_err(|e| item_failure(&e))?;
    submitted
        .json()
        .and_then(|v| Some(str_field(&v, "feedId")?.to_string()))
        .ok_or_else(|| malformed(what, &submitted))
}

/// The outcome of a feed's submission: its id, or the result every update gets when it failed.
pub(crate) type Submission = Result<String, ItemResult>;

/// What an applied feed's status says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FeedEnd {
    /// A result per update.
    Results(Vec<ItemResult>),
    /// Which updates failed is in the processing report with this id ([`Feed::report`]).
    Report(String),
}

/// Why a processing report could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReportError {
    /// External: a request failed or the answer was incomplete; asking again may help.
    #[error("{0}")]
    Again(String),
    /// External: the marketplace's answer says the report cannot be had; asking again does not
    /// help.
    #[error("{0}")]
    Final(String),
}

/// The channel a delivery is for: its settings and its current secret.
#[derive(Debug)]
pub(crate) struct Channel<'a> {
    /// The channel's resolved settings.
    pub(crate) config: &'a ChannelConfig,
    /// The credentials to send (`None` only for an unsigned webhook).
    pub(crate) secret: Option<Secret>,
}

impl Channel<'_> {
    /// The channel's name.
    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    /// The request's idempotency key for `updates` (see [`idempotency_key`]).
    pub(crate) fn idempotency_key(&self, updates: &[&Update], extra: &[String]) -> String {
        idempotency_key(self.name(), updates, extra)
    }

    /// `request` with the update-keys header of `updates` and the idempotency key `key`.
    pub(crate) fn keyed_as(&self, request: Request, updates: &[&Update], key: String) -> Request {
        request
            .header(UPDATE_KEYS_HEADER, update_keys_header(self.name(), updates))
            .header(IDEMPOTENCY_KEY_HEADER, key)
    }

    /// `request` with the update-keys header and the idempotency key of `updates`.
    pub(crate) fn keyed(&self, request: Request, updates: &[&Update]) -> Request {
        let key = self.idempotency_key(updates, &[]);
        self.keyed_as(request, updates, key)
    }
}

/// The idempotency key of one update: `channel|sku|version`.
pub fn update_key(channel: &str, sku: &str, version: i64) -> String {
    format!("{channel}|{sku}|{version}")
}

/// The `X-Shelfsync-Update-Keys` value for `updates`: their keys, SKUs percent-encoded where a
/// header needs it, comma-separated.
pub fn update_keys_header(channel: &str, updates: &[&Update]) -> String {
    updates
        .iter()
        .map(|u| {
            update_key(
                channel,
                &utf8_percent_encode(&u.sku, HEADER_SKU).to_string(),
                u.version,
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// The request's idempotency key: the update's key for one update, else a stable hash of the
/// keys (and of `extra`, e.g. compare values, which change the request).
pub(crate) fn idempotency_key(channel: &str, updates: &[&Update], extra: &[String]) -> String {
    if let ([u], true) = (updates, extra.is_empty()) {
        return update_keys_header(channel, &[u]);
    }
    let keys: Vec<String> = updates
        .iter()
        .map(|u| update_key(channel, &u.sku, u.version))
        .chain(extra.iter().cloned())
        .collect();
    let parts: Vec<&[u8]> = keys.iter().map(|k| k.as_bytes()).collect();
    stable_id(&parts)
}

/// The SKU and quantity of each update, in order (the rows of a batch body).
pub(crate) fn items<'u>(updates: &[&'u Update]) -> Vec<(&'u str, i64)> {
    updates
        .iter()
        .map(|u| (u.sku.as_str(), u.quantity))
        .collect()
}

/// What happened to one update of a delivery.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ItemResult {
    /// The marketplace accepted it.
    Accepted,
    /// Refused for good: it goes to the DLQ with the response.
    Rejected {
        status: u16,
        reason: String,
        body: String,
    },
    /// Failed for a reason that may pass (counts as a failed try, backs off).
    Retry { class: &'static str, reason: String },
    /// Not applied, through no fault of its own (a compare-and-swap conflict, or another update
    /// of the same atomic call failed): send again now, without counting a try.
    Again { class: &'static str },
}

/// The outcome of one delivery: a result per update, and whether the answer's body said the
/// channel is throttled (HTTP 429 and `Retry-After` pause the channel in `Calls::send`
/// already).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Delivery {
    pub(crate) results: Vec<ItemResult>,
    /// Throttled inside a successful HTTP answer (GraphQL `THROTTLED`, an eBay item's 429).
    pub(crate) throttled: bool,
}

impl Delivery {
    /// The same result for all `n` updates.
    pub(crate) fn all(n: usize, result: ItemResult) -> Self {
        Self::of(vec![result; n])
    }

    /// These results, not throttled.
    pub(crate) fn of(results: Vec<ItemResult>) -> Self {
        Self {
            results,
            throttled: false,
        }
    }

    /// All `n` updates failed with the request.
    pub(crate) fn failed(n: usize, error: &CallError) -> Self {
        Self::all(n, item_failure(error))
    }

    /// All `n` updates accepted when the request went through (the API answers for the whole
    /// request).
    pub(crate) fn if_sent(n: usize, answer: &Answer) -> Self {
        match answer {
            Ok(_) => Self::all(n, ItemResult::Accepted),
            Err(e) => Self::failed(n, e),
        }
    }
}

/// What a failed request means for each of its updates.
pub(crate) fn item_failure(error: &CallError) -> ItemResult {
    match error {
        CallError::Transient { class, reason, .. } => ItemResult::Retry {
            class,
            reason: reason.clone(),
        },
        CallError::Rejected { status, body } => ItemResult::Rejected {
            status: *status,
            reason: format!("the marketplace refused the request with HTTP {status}"),
            body: body.clone(),
        },
    }
}

/// An answer of an unexpected shape: the updates go again.
pub(crate) fn malformed(what: &str, response: &Response) -> ItemResult {
    ItemResult::Retry {
        class: "bad_response",
        reason: format!(
            "unexpected {what} response (HTTP {}): {}",
            response.status,
            body_text(&response.body)
        ),
    }
}

/// A refusal of one update inside a successful answer (`status` is the answer's).
pub(crate) fn refused(response: &Response, reason: String) -> ItemResult {
    ItemResult::Rejected {
        status: response.status,
        reason,
        body: body_text(&response.body),
    }
}

/// The string field `key` of a JSON object.
pub(crate) fn str_field<'v>(value: &'v Value, key: &str) -> Option<&'v str> {
    value.get(key)?.as_str()
}

/// The elements of the array at `pointer` (none when it is missing or not an array).
pub(crate) fn array_at<'v>(value: &'v Value, pointer: &str) -> impl Iterator<Item = &'v Value> {
    value
        .pointer(pointer)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
}

#[cfg(test)]
pub(crate) mod testing;

#[cfg(test)]
mod tests;

#[cfg(test)]
mod conformance;
