//! The marketplace adapters: the request shapes of each inventory API (pure functions, tested
//! against the marketplaces' published examples) and the delivery flow that uses them.
//!
//! | kind | single update | batch |
//! |---|---|---|
//! | `shopify` | — | GraphQL `inventorySetQuantities` (≤ 250), absolute `available`, `changeFromQuantity` compare-and-swap, `@idempotent(key:)` |
//! | `amazon` | `PATCH /listings/2021-08-01/items/{sellerId}/{sku}` (`replace /attributes/fulfillment_availability`) | `JSON_LISTINGS_FEED` (createFeedDocument → upload → createFeed → getFeed → processing report) |
//! | `walmart` | `PUT /v3/inventory?sku=` | `POST /v3/feeds?feedType=inventory` (multipart JSON, spec 1.4) → `GET /v3/feeds/{id}?includeDetails=true` |
//! | `ebay` | — | `POST /sell/inventory/v1/bulk_update_price_quantity` (≤ 25) |
//! | `webhook` | — | `POST` JSON, `X-Shelfsync-Signature: sha256=<hex HMAC-SHA256 of the body>` |
//!
//! Every request carries `X-Shelfsync-Update-Keys`: the idempotency key `channel|sku|version`
//! of each update in it (SKUs percent-encoded), and `Idempotency-Key`: the key itself for a
//! single update, a hash of the keys for a batch.
//!
//! Amazon and Walmart feeds are processed asynchronously: their updates stay in flight (no
//! newer update of the same SKU goes out) until the feed's status is final, so a feed never
//! lands on top of a newer single-item update.
//!
//! ## Shopify compare-and-swap
//!
//! `changeFromQuantity` is the `available` quantity shelfsync last set, or read, for the SKU.
//! The first update of a SKU reads it (with the inventory item id) through `inventoryItems`.
//! When Shopify answers `CHANGE_FROM_QUANTITY_STALE` (something else changed the quantity, e.g.
//! an order), nothing of the mutation was applied: the conflicting SKUs are read again and the
//! update (or a newer one of the SKU, if one arrived meanwhile) is sent again with the fresh
//! compare value; the other SKUs of the mutation go again unchanged. After
//! [`CAS_FORCE_AFTER`] conflicts in a row for a SKU, one mutation sends `changeFromQuantity:
//! null` (no check): shelfsync is the source of truth for the channel's availability, so its
//! newest number wins over a value it cannot catch. Only the newest version shelfsync has for a
//! SKU is ever sent, so the fallback never puts an older shelfsync value over a newer one.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::Method;
use serde_json::{json, Value};
use sha2::Sha256;
use shelfsync_schemas::stable_id;
use shelfsync_topology::PushKind;
use tracing::{debug, warn};

use super::api::{body_text, CallError, Calls, Request, Response};
use super::config::{ChannelConfig, Secret};
use super::queue::Update;

/// Header listing the idempotency keys (`channel|sku|version`) of the updates in a request.
pub const UPDATE_KEYS_HEADER: &str = "x-shelfsync-update-keys";
/// Header carrying the request's idempotency key.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";
/// Header carrying a webhook body's signature: `sha256=<hex HMAC-SHA256>`.
pub const SIGNATURE_HEADER: &str = "x-shelfsync-signature";
/// Conflicts in a row after which a Shopify update is sent without compare-and-swap.
pub const CAS_FORCE_AFTER: u32 = 3;
/// The Shopify mutation, exactly as Shopify's documented example with idempotency.
pub const SHOPIFY_SET_MUTATION: &str = "mutation inventorySetQuantities($input: InventorySetQuantitiesInput!, $idempotencyKey: String!) { inventorySetQuantities(input: $input) @idempotent(key: $idempotencyKey) { inventoryAdjustmentGroup { reason referenceDocumentUri changes { name delta quantityAfterChange } } userErrors { code field message } } }";
/// The Shopify query resolving SKUs to inventory items with their `available` quantity.
pub const SHOPIFY_LOOKUP_QUERY: &str = "query shelfsyncInventoryItems($query: String!, $first: Int!, $locationId: ID!) { inventoryItems(first: $first, query: $query) { nodes { id sku inventoryLevel(locationId: $locationId) { quantities(names: [\"available\"]) { name quantity } } } } }";
/// Amazon Listings Items API path prefix.
pub const AMAZON_LISTINGS_PATH: &str = "/listings/2021-08-01/items";
/// Amazon Feeds API path prefix.
pub const AMAZON_FEEDS_PATH: &str = "/feeds/2021-06-30";
/// Content type of an Amazon `JSON_LISTINGS_FEED` document.
pub const AMAZON_FEED_CONTENT_TYPE: &str = "application/json; charset=UTF-8";
/// eBay's bulk price and quantity call.
pub const EBAY_BULK_PATH: &str = "/sell/inventory/v1/bulk_update_price_quantity";
/// First wait before asking for a feed's status; doubles up to [`FEED_POLL_MAX`].
const FEED_POLL_FIRST: Duration = Duration::from_millis(250);
/// Longest wait between two feed status requests.
const FEED_POLL_MAX: Duration = Duration::from_secs(15);
/// How long a feed may stay unfinished before its updates are tried again.
const FEED_MAX_WAIT: Duration = Duration::from_secs(3600);

/// Characters encoded in a SKU inside a URL path segment or query value.
const URL_SKU: &AsciiSet = &NON_ALPHANUMERIC
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
fn idempotency_key(channel: &str, updates: &[&Update], extra: &[String]) -> String {
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
/// channel is throttled (HTTP 429 and `Retry-After` pause the channel in [`Calls::send`]
/// already).
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) results: Vec<ItemResult>,
    /// Throttled inside a successful HTTP answer (GraphQL `THROTTLED`, an eBay item's 429).
    pub(crate) throttled: bool,
}

impl Delivery {
    fn all(n: usize, result: ItemResult) -> Self {
        Self {
            results: vec![result; n],
            throttled: false,
        }
    }

    fn failed(n: usize, error: &CallError) -> Self {
        Self::all(n, item_failure(error))
    }
}

fn item_failure(error: &CallError) -> ItemResult {
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

fn malformed(what: &str, response: &Response) -> ItemResult {
    ItemResult::Retry {
        class: "bad_response",
        reason: format!(
            "unexpected {what} response (HTTP {}): {}",
            response.status,
            body_text(&response.body)
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Shopify

/// One quantity of an `inventorySetQuantities` mutation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifySet {
    /// `gid://shopify/InventoryItem/…`.
    pub inventory_item_id: String,
    /// The absolute `available` quantity.
    pub quantity: i64,
    /// The compare value; `None` sends `null` (no check).
    pub change_from: Option<i64>,
}

/// The GraphQL request body of `inventorySetQuantities` (name `available`, reason
/// `correction`).
pub fn shopify_set_body(
    location_id: &str,
    sets: &[ShopifySet],
    idempotency_key: &str,
    reference_document_uri: &str,
) -> Value {
    let quantities: Vec<Value> = sets
        .iter()
        .map(|s| {
            json!({
                "inventoryItemId": s.inventory_item_id,
                "locationId": location_id,
                "quantity": s.quantity,
                "changeFromQuantity": s.change_from,
            })
        })
        .collect();
    json!({
        "query": SHOPIFY_SET_MUTATION,
        "variables": {
            "input": {
                "name": "available",
                "reason": "correction",
                "referenceDocumentUri": reference_document_uri,
                "quantities": quantities,
            },
            "idempotencyKey": idempotency_key,
        }
    })
}

/// Quotes a value for Shopify's search syntax: `"…"` with `\` and `"` escaped.
fn shopify_quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        if c == '"' || c == '\\' {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('"');
    out
}

/// The GraphQL request body resolving `skus` to inventory items with their `available`
/// quantity at `location_id`.
pub fn shopify_lookup_body(skus: &[&str], location_id: &str) -> Value {
    let query = skus
        .iter()
        .map(|s| format!("sku:{}", shopify_quote(s)))
        .collect::<Vec<_>>()
        .join(" OR ");
    json!({
        "query": SHOPIFY_LOOKUP_QUERY,
        "variables": {
            "query": query,
            "first": (skus.len() * 2).clamp(1, 250),
            "locationId": location_id,
        }
    })
}

/// An inventory item found by the lookup.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyItem {
    /// Its global id.
    pub id: String,
    /// Its `available` quantity at the location; `None` when it is not stocked there.
    pub available: Option<Option<i64>>,
}

/// Parses the lookup answer into SKU → item. Only exact SKU matches count.
///
/// # Errors
/// A description when the answer is not the expected shape or carries GraphQL errors.
pub fn parse_shopify_lookup(body: &Value) -> Result<HashMap<String, ShopifyItem>, String> {
    if let Some(errors) = body.get("errors").filter(|e| !e.is_null()) {
        return Err(format!("GraphQL errors: {errors}"));
    }
    let nodes = body
        .pointer("/data/inventoryItems/nodes")
        .and_then(Value::as_array)
        .ok_or("no data.inventoryItems.nodes")?;
    let mut out = HashMap::new();
    for node in nodes {
        let (Some(id), Some(sku)) = (
            node.get("id").and_then(Value::as_str),
            node.get("sku").and_then(Value::as_str),
        ) else {
            continue;
        };
        let available = node
            .get("inventoryLevel")
            .filter(|l| !l.is_null())
            .map(|level| {
                level
                    .get("quantities")
                    .and_then(Value::as_array)
                    .and_then(|qs| {
                        qs.iter()
                            .find(|q| q.get("name").and_then(Value::as_str) == Some("available"))
                    })
                    .and_then(|q| q.get("quantity"))
                    .and_then(Value::as_i64)
            });
        out.insert(
            sku.to_string(),
            ShopifyItem {
                id: id.to_string(),
                available,
            },
        );
    }
    Ok(out)
}

/// A `userErrors` entry of `inventorySetQuantities`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShopifyUserError {
    /// Index into `quantities` the error is about, when its `field` path names one.
    pub index: Option<usize>,
    /// The error code (`CHANGE_FROM_QUANTITY_STALE`, …).
    pub code: String,
    /// The message.
    pub message: String,
}

/// The outcome of an `inventorySetQuantities` answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShopifySetOutcome {
    /// Applied (no user errors).
    Applied,
    /// GraphQL `THROTTLED`.
    Throttled,
    /// Refused with user errors; the mutation is atomic, so nothing was applied.
    UserErrors(Vec<ShopifyUserError>),
    /// Top-level GraphQL errors or an unexpected shape.
    Failed(String),
}

/// Parses an `inventorySetQuantities` answer (`{"data": {...}}`).
pub fn parse_shopify_set(body: &Value) -> ShopifySetOutcome {
    if let Some(errors) = body.get("errors").and_then(Value::as_array) {
        let throttled = errors
            .iter()
            .any(|e| e.pointer("/extensions/code").and_then(Value::as_str) == Some("THROTTLED"));
        return if throttled {
            ShopifySetOutcome::Throttled
        } else {
            ShopifySetOutcome::Failed(format!("GraphQL errors: {}", Value::from(errors.clone())))
        };
    }
    let Some(payload) = body.pointer("/data/inventorySetQuantities") else {
        return ShopifySetOutcome::Failed("no data.inventorySetQuantities".to_string());
    };
    let errors: Vec<ShopifyUserError> = payload
        .get("userErrors")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .map(|e| ShopifyUserError {
                    index: e.get("field").and_then(Value::as_array).and_then(|path| {
                        // ["input", "quantities", "3", "changeFromQuantity"]
                        let at = path.iter().position(|p| p.as_str() == Some("quantities"))?;
                        path.get(at + 1)?.as_str()?.parse().ok()
                    }),
                    code: e
                        .get("code")
                        .and_then(Value::as_str)
                        .unwrap_or("UNKNOWN")
                        .to_string(),
                    message: e
                        .get("message")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                })
                .collect()
        })
        .unwrap_or_default();
    if errors.is_empty() {
        ShopifySetOutcome::Applied
    } else {
        ShopifySetOutcome::UserErrors(errors)
    }
}

/// What the Shopify adapter remembers per SKU.
#[derive(Debug, Clone, Default)]
struct ShopifyState {
    inventory_item_id: Option<String>,
    /// The `available` quantity last set or read; `None`: read it before the next mutation.
    known: Option<i64>,
    /// Compare-and-swap conflicts in a row.
    conflicts: u32,
}

// ---------------------------------------------------------------------------------------------
// Amazon

/// The `patchListingsItem` path and query for one SKU.
pub fn amazon_patch_path(seller_id: &str, sku: &str, marketplace_ids: &[String]) -> String {
    format!(
        "{AMAZON_LISTINGS_PATH}/{}/{}?marketplaceIds={}",
        utf8_percent_encode(seller_id, URL_SKU),
        utf8_percent_encode(sku, URL_SKU),
        marketplace_ids.join(",")
    )
}

fn fulfillment_availability_patch(quantity: i64) -> Value {
    json!([{
        "op": "replace",
        "path": "/attributes/fulfillment_availability",
        "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": quantity}]
    }])
}

/// The `patchListingsItem` body setting the merchant-fulfilled quantity.
pub fn amazon_patch_body(product_type: &str, quantity: i64) -> Value {
    json!({
        "productType": product_type,
        "patches": fulfillment_availability_patch(quantity),
    })
}

/// A `JSON_LISTINGS_FEED` document with one `PATCH` message per update (`messageId` counts
/// from 1 in `items` order).
pub fn amazon_feed(seller_id: &str, product_type: &str, items: &[(&str, i64)]) -> Value {
    let messages: Vec<Value> = items
        .iter()
        .enumerate()
        .map(|(i, (sku, quantity))| {
            json!({
                "messageId": i + 1,
                "sku": sku,
                "operationType": "PATCH",
                "productType": product_type,
                "patches": fulfillment_availability_patch(*quantity),
            })
        })
        .collect();
    json!({
        "header": {"sellerId": seller_id, "version": "2.0", "issueLocale": "en_US"},
        "messages": messages,
    })
}

/// The outcome of a `patchListingsItem` answer: `Ok` for `ACCEPTED`, else the issues.
///
/// # Errors
/// The status and issues of an `INVALID` submission, or the shape problem.
pub fn parse_amazon_patch(body: &Value) -> Result<(), String> {
    match body.get("status").and_then(Value::as_str) {
        Some("ACCEPTED") => Ok(()),
        Some(status) => Err(format!(
            "submission {status}: {}",
            body.get("issues").cloned().unwrap_or(Value::Null)
        )),
        None => Err(format!("no status in {body}")),
    }
}

/// The issues of severity `ERROR` in an Amazon feed processing report, by `messageId`.
pub fn amazon_report_errors(report: &Value) -> HashMap<u64, String> {
    let mut out: HashMap<u64, String> = HashMap::new();
    for issue in report
        .get("issues")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if issue.get("severity").and_then(Value::as_str) != Some("ERROR") {
            continue;
        }
        if let Some(id) = issue.get("messageId").and_then(Value::as_u64) {
            let text = format!(
                "{}: {}",
                issue.get("code").and_then(Value::as_str).unwrap_or("?"),
                issue.get("message").and_then(Value::as_str).unwrap_or("")
            );
            out.entry(id)
                .and_modify(|t| {
                    t.push_str("; ");
                    t.push_str(&text);
                })
                .or_insert(text);
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Walmart

/// The single-item inventory path (`PUT /v3/inventory?sku=`).
pub fn walmart_single_path(sku: &str) -> String {
    format!("/v3/inventory?sku={}", utf8_percent_encode(sku, URL_SKU))
}

/// The single-item inventory body.
pub fn walmart_single_body(sku: &str, quantity: i64) -> Value {
    json!({"sku": sku, "quantity": {"unit": "EACH", "amount": quantity}})
}

/// The bulk inventory feed file (spec 1.4, one ship node: the default).
pub fn walmart_feed(items: &[(&str, i64)]) -> Value {
    let inventory: Vec<Value> = items
        .iter()
        .map(|(sku, q)| walmart_single_body(sku, *q))
        .collect();
    json!({"InventoryHeader": {"version": "1.4"}, "Inventory": inventory})
}

/// A `multipart/form-data` body with the feed as its `file` part.
pub fn multipart_file(boundary: &str, file_name: &str, json: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(json.len() + 256);
    body.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{file_name}\"\r\nContent-Type: application/json\r\n\r\n"
        )
        .as_bytes(),
    );
    body.extend_from_slice(json);
    body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    body
}

/// A Walmart feed's status and its per-SKU ingestion status (with errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalmartFeedStatus {
    /// `RECEIVED`, `INPROGRESS`, `PROCESSED` or `ERROR`.
    pub status: String,
    /// SKU → (`SUCCESS`, `DATA_ERROR`, `SYSTEM_ERROR`, `TIMEOUT_ERROR`, `INPROGRESS`; errors).
    pub items: HashMap<String, (String, String)>,
}

/// Parses `GET /v3/feeds/{feedId}?includeDetails=true`.
pub fn parse_walmart_feed_status(body: &Value) -> Option<WalmartFeedStatus> {
    let status = body.get("feedStatus")?.as_str()?.to_string();
    let mut items = HashMap::new();
    for item in body
        .pointer("/itemDetails/itemIngestionStatus")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(sku), Some(s)) = (
            item.get("sku").and_then(Value::as_str),
            item.get("ingestionStatus").and_then(Value::as_str),
        ) {
            let errors = item
                .get("ingestionErrors")
                .map(Value::to_string)
                .unwrap_or_default();
            items.insert(sku.to_string(), (s.to_string(), errors));
        }
    }
    Some(WalmartFeedStatus { status, items })
}

// ---------------------------------------------------------------------------------------------
// eBay

/// The `bulk_update_price_quantity` body (quantities only; prices are left alone).
pub fn ebay_body(items: &[(&str, i64)]) -> Value {
    let requests: Vec<Value> = items
        .iter()
        .map(|(sku, q)| json!({"sku": sku, "shipToLocationAvailability": {"quantity": q}}))
        .collect();
    json!({ "requests": requests })
}

/// Per-SKU `statusCode` and errors of a `bulk_update_price_quantity` answer.
pub fn parse_ebay(body: &Value) -> HashMap<String, (u16, String)> {
    let mut out = HashMap::new();
    for r in body
        .get("responses")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let (Some(sku), Some(code)) = (
            r.get("sku").and_then(Value::as_str),
            r.get("statusCode").and_then(Value::as_u64),
        ) {
            let errors = r.get("errors").map(Value::to_string).unwrap_or_default();
            out.insert(
                sku.to_string(),
                (u16::try_from(code).unwrap_or(500), errors),
            );
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Webhook

/// The webhook body: the channel and its updates with their idempotency keys.
pub fn webhook_body(channel: &str, updates: &[&Update]) -> Vec<u8> {
    let list: Vec<Value> = updates
        .iter()
        .map(|u| {
            json!({
                "sku": u.sku,
                "quantity": u.quantity,
                "version": u.version,
                "event_id": u.event_id,
                "event_time": u.event_time,
                "idempotency_key": update_key(channel, &u.sku, u.version),
            })
        })
        .collect();
    json!({"channel": channel, "updates": list})
        .to_string()
        .into_bytes()
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`.
pub fn webhook_signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length; the error type exists only for fixed-size MACs.
    let mut mac = match Hmac::<Sha256>::new_from_slice(secret) {
        Ok(mac) => mac,
        Err(_) => return String::new(),
    };
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Delivery

/// One channel's adapter: its request shapes and delivery flow.
#[derive(Debug)]
pub(crate) struct Adapter {
    kind: PushKind,
    shopify: Mutex<HashMap<String, ShopifyState>>,
}

impl Adapter {
    pub(crate) fn new(kind: PushKind) -> Self {
        Self {
            kind,
            shopify: Mutex::new(HashMap::new()),
        }
    }

    /// Updates the next request carries. Amazon and Walmart send a bulk feed only while at
    /// least a batch waits, and never for a stock-out (a feed takes minutes to apply); the
    /// other APIs take a batch in a synchronous call.
    pub(crate) fn batch_for(
        &self,
        first_is_stock_out: bool,
        waiting: usize,
        batch_size: usize,
    ) -> usize {
        match self.kind {
            PushKind::Amazon | PushKind::Walmart => {
                if !first_is_stock_out && batch_size > 1 && waiting >= batch_size {
                    batch_size
                } else {
                    1
                }
            }
            PushKind::Shopify | PushKind::Ebay | PushKind::Webhook => batch_size,
        }
    }

    /// Sends `updates` and says what became of each.
    pub(crate) async fn deliver(
        &self,
        calls: &Calls<'_>,
        config: &ChannelConfig,
        updates: &[&Update],
    ) -> Delivery {
        let secret = match config.secret() {
            Ok(secret) => secret,
            Err(e) => {
                calls.finish();
                return Delivery::all(
                    updates.len(),
                    ItemResult::Retry {
                        class: "credentials",
                        reason: e.to_string(),
                    },
                );
            }
        };
        let delivery = match self.kind {
            PushKind::Shopify => self.shopify(calls, config, secret, updates).await,
            PushKind::Amazon if updates.len() == 1 => {
                amazon_single(calls, config, secret, updates[0]).await
            }
            PushKind::Amazon => amazon_feed_delivery(calls, config, secret, updates).await,
            PushKind::Walmart if updates.len() == 1 => {
                walmart_single(calls, config, secret, updates[0]).await
            }
            PushKind::Walmart => walmart_feed_delivery(calls, config, secret, updates).await,
            PushKind::Ebay => ebay(calls, config, secret, updates).await,
            PushKind::Webhook => webhook(calls, config, secret, updates).await,
        };
        calls.finish();
        delivery
    }

    fn shopify_state(&self) -> std::sync::MutexGuard<'_, HashMap<String, ShopifyState>> {
        self.shopify
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    async fn shopify(
        &self,
        calls: &Calls<'_>,
        config: &ChannelConfig,
        secret: Option<Secret>,
        updates: &[&Update],
    ) -> Delivery {
        let url = format!(
            "{}/admin/api/{}/graphql.json",
            config.endpoint, config.api_version
        );
        let mut results: Vec<Option<ItemResult>> = vec![None; updates.len()];
        // 1. Inventory item ids and compare values we do not know yet.
        let need: Vec<&str> = {
            let state = self.shopify_state();
            updates
                .iter()
                .filter(|u| {
                    state.get(&u.sku).is_none_or(|s| {
                        s.inventory_item_id.is_none()
                            || (s.known.is_none() && s.conflicts < CAS_FORCE_AFTER)
                    })
                })
                .map(|u| u.sku.as_str())
                .collect()
        };
        if !need.is_empty() {
            let body = shopify_lookup_body(&need, &config.location_id);
            let request = Request::new("inventoryItems", Method::POST, url.clone())
                .json(&body)
                .auth("x-shopify-access-token", secret.clone());
            let response = match calls.send(request).await {
                Ok(r) => r,
                Err(e) => return Delivery::failed(updates.len(), &e),
            };
            let found = match response.json().as_ref().map(parse_shopify_lookup) {
                Some(Ok(found)) => found,
                Some(Err(why)) if why.contains("THROTTLED") => {
                    let mut d = Delivery::all(
                        updates.len(),
                        ItemResult::Retry {
                            class: "throttled",
                            reason: why,
                        },
                    );
                    d.throttled = true;
                    return d;
                }
                Some(Err(_)) | None => {
                    return Delivery::all(updates.len(), malformed("inventoryItems", &response));
                }
            };
            let mut state = self.shopify_state();
            for (i, u) in updates.iter().enumerate() {
                if !need.contains(&u.sku.as_str()) {
                    continue;
                }
                match found.get(&u.sku) {
                    None => {
                        state.remove(&u.sku);
                        results[i] = Some(ItemResult::Rejected {
                            status: response.status,
                            reason: format!("no Shopify inventory item has SKU {:?}", u.sku),
                            body: body_text(&response.body),
                        });
                    }
                    Some(ShopifyItem {
                        available: None, ..
                    }) => {
                        state.remove(&u.sku);
                        results[i] = Some(ItemResult::Rejected {
                            status: response.status,
                            reason: format!(
                                "SKU {:?} is not stocked at location {}",
                                u.sku, config.location_id
                            ),
                            body: body_text(&response.body),
                        });
                    }
                    Some(item) => {
                        let entry = state.entry(u.sku.clone()).or_default();
                        entry.inventory_item_id = Some(item.id.clone());
                        entry.known = item.available.flatten();
                    }
                }
            }
        }
        // 2. The mutation, for every update still standing.
        let (index, sets): (Vec<usize>, Vec<ShopifySet>) = {
            let state = self.shopify_state();
            updates
                .iter()
                .enumerate()
                .filter(|(i, _)| results[*i].is_none())
                .filter_map(|(i, u)| {
                    let s = state.get(&u.sku)?;
                    let change_from = if s.conflicts >= CAS_FORCE_AFTER {
                        None
                    } else {
                        s.known
                    };
                    Some((
                        i,
                        ShopifySet {
                            inventory_item_id: s.inventory_item_id.clone()?,
                            quantity: u.quantity,
                            change_from,
                        },
                    ))
                })
                .unzip()
        };
        for (i, r) in results.iter_mut().enumerate() {
            if r.is_none() && !index.contains(&i) {
                // Lost its state meanwhile (another delivery's refusal): look it up again.
                *r = Some(ItemResult::Again { class: "lookup" });
            }
        }
        if !sets.is_empty() {
            let in_call: Vec<&Update> = index.iter().map(|&i| updates[i]).collect();
            let compare: Vec<String> = sets
                .iter()
                .map(|s| format!("{:?}", s.change_from))
                .collect();
            let key = idempotency_key(&config.name, &in_call, &compare);
            let body = shopify_set_body(
                &config.location_id,
                &sets,
                &key,
                &format!("gid://shelfsync/AvailabilityUpdate/{key}"),
            );
            let request = Request::new("inventorySetQuantities", Method::POST, url)
                .json(&body)
                .header(
                    UPDATE_KEYS_HEADER,
                    update_keys_header(&config.name, &in_call),
                )
                .header(IDEMPOTENCY_KEY_HEADER, key)
                .auth("x-shopify-access-token", secret);
            let mut extra = Delivery::all(0, ItemResult::Accepted);
            match calls.send(request).await {
                Err(e) => {
                    for &i in &index {
                        results[i] = Some(item_failure(&e));
                    }
                }
                Ok(response) => {
                    let outcome = response.json().map_or_else(
                        || ShopifySetOutcome::Failed("not JSON".into()),
                        |v| parse_shopify_set(&v),
                    );
                    let mut state = self.shopify_state();
                    match outcome {
                        ShopifySetOutcome::Applied => {
                            for &i in &index {
                                let u = updates[i];
                                if let Some(s) = state.get_mut(&u.sku) {
                                    s.known = Some(u.quantity);
                                    s.conflicts = 0;
                                }
                                results[i] = Some(ItemResult::Accepted);
                            }
                        }
                        ShopifySetOutcome::Throttled => {
                            extra.throttled = true;
                            for &i in &index {
                                results[i] = Some(ItemResult::Retry {
                                    class: "throttled",
                                    reason: "Shopify GraphQL THROTTLED".to_string(),
                                });
                            }
                        }
                        ShopifySetOutcome::Failed(why) => {
                            for &i in &index {
                                results[i] = Some(ItemResult::Retry {
                                    class: "bad_response",
                                    reason: why.clone(),
                                });
                            }
                        }
                        ShopifySetOutcome::UserErrors(errors) => {
                            for e in &errors {
                                let Some(&i) = e.index.and_then(|k| index.get(k)) else {
                                    continue;
                                };
                                let u = updates[i];
                                let result = match e.code.as_str() {
                                    "CHANGE_FROM_QUANTITY_STALE" | "COMPARE_QUANTITY_STALE" => {
                                        let s = state.entry(u.sku.clone()).or_default();
                                        s.known = None;
                                        s.conflicts += 1;
                                        debug!(channel = %config.name, sku = %u.sku, conflicts = s.conflicts, "compare-and-swap conflict; reading the quantity again");
                                        ItemResult::Again {
                                            class: "cas_conflict",
                                        }
                                    }
                                    "IDEMPOTENCY_CONCURRENT_REQUEST" => ItemResult::Retry {
                                        class: "server_error",
                                        reason: e.message.clone(),
                                    },
                                    code => {
                                        state.remove(&u.sku);
                                        ItemResult::Rejected {
                                            status: response.status,
                                            reason: format!("{code}: {}", e.message),
                                            body: body_text(&response.body),
                                        }
                                    }
                                };
                                results[i] = Some(result);
                            }
                            let general: Vec<&ShopifyUserError> =
                                errors.iter().filter(|e| e.index.is_none()).collect();
                            for &i in &index {
                                if results[i].is_none() {
                                    // Atomic: not applied because of another quantity, or an
                                    // error about the whole call.
                                    results[i] = Some(if general.is_empty() {
                                        ItemResult::Again {
                                            class: "batch_conflict",
                                        }
                                    } else {
                                        ItemResult::Retry {
                                            class: "server_error",
                                            reason: format!(
                                                "{}: {}",
                                                general[0].code, general[0].message
                                            ),
                                        }
                                    });
                                }
                            }
                        }
                    }
                }
            }
            return Delivery {
                results: results
                    .into_iter()
                    .map(|r| r.unwrap_or(ItemResult::Again { class: "lookup" }))
                    .collect(),
                throttled: extra.throttled,
            };
        }
        Delivery {
            results: results
                .into_iter()
                .map(|r| r.unwrap_or(ItemResult::Again { class: "lookup" }))
                .collect(),
            throttled: false,
        }
    }
}

async fn amazon_single(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    update: &Update,
) -> Delivery {
    let url = format!(
        "{}{}",
        config.endpoint,
        amazon_patch_path(&config.seller_id, &update.sku, &config.marketplace_ids)
    );
    let request = Request::new("patchListingsItem", Method::PATCH, url)
        .json(&amazon_patch_body(&config.product_type, update.quantity))
        .header(
            UPDATE_KEYS_HEADER,
            update_keys_header(&config.name, &[update]),
        )
        .header(
            IDEMPOTENCY_KEY_HEADER,
            idempotency_key(&config.name, &[update], &[]),
        )
        .auth("x-amz-access-token", secret);
    match calls.send(request).await {
        Err(e) => Delivery::failed(1, &e),
        Ok(response) => match response.json().as_ref().map(parse_amazon_patch) {
            Some(Ok(())) => Delivery::all(1, ItemResult::Accepted),
            Some(Err(why)) => Delivery::all(
                1,
                ItemResult::Rejected {
                    status: response.status,
                    reason: why,
                    body: body_text(&response.body),
                },
            ),
            None => Delivery::all(1, malformed("patchListingsItem", &response)),
        },
    }
}

/// Waits for a feed's final status: polls with `poll` (which returns `Some(final answer)` once
/// the feed is done) at growing intervals. Failed polls are retried: once a feed is submitted,
/// its fate must be known before its updates may go out again.
async fn wait_for_feed<F, Fut>(calls: &Calls<'_>, feed: &str, mut poll: F) -> Result<Value, String>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<Option<Value>, CallError>>,
{
    let started = Instant::now();
    let mut wait = FEED_POLL_FIRST;
    loop {
        tokio::time::sleep(wait).await;
        match poll().await {
            Ok(Some(done)) => return Ok(done),
            Ok(None) => {}
            Err(e) => {
                warn!(channel = %calls.api.channel, feed, error = %e, "feed status request failed; asking again")
            }
        }
        if started.elapsed() > FEED_MAX_WAIT {
            return Err(format!(
                "feed {feed} not processed after {} s",
                FEED_MAX_WAIT.as_secs()
            ));
        }
        wait = (wait * 2).min(FEED_POLL_MAX);
    }
}

async fn amazon_feed_delivery(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    updates: &[&Update],
) -> Delivery {
    let n = updates.len();
    let base = format!("{}{AMAZON_FEEDS_PATH}", config.endpoint);
    let keys = update_keys_header(&config.name, updates);
    // 1. createFeedDocument
    let request = Request::new(
        "createFeedDocument",
        Method::POST,
        format!("{base}/documents"),
    )
    .json(&json!({ "contentType": AMAZON_FEED_CONTENT_TYPE }))
    .auth("x-amz-access-token", secret.clone());
    let document = match calls.send(request).await {
        Ok(r) => r,
        Err(e) => return Delivery::failed(n, &e),
    };
    let Some((document_id, upload_url)) = document.json().and_then(|v| {
        Some((
            v.get("feedDocumentId")?.as_str()?.to_string(),
            v.get("url")?.as_str()?.to_string(),
        ))
    }) else {
        return Delivery::all(n, malformed("createFeedDocument", &document));
    };
    // 2. Upload the feed to the pre-signed URL (no Amazon credentials there).
    let items: Vec<(&str, i64)> = updates
        .iter()
        .map(|u| (u.sku.as_str(), u.quantity))
        .collect();
    let feed = amazon_feed(&config.seller_id, &config.product_type, &items);
    let mut upload = Request::new("uploadFeedDocument", Method::PUT, upload_url)
        .header("content-type", AMAZON_FEED_CONTENT_TYPE)
        .header(UPDATE_KEYS_HEADER, keys.clone());
    upload.body = feed.to_string().into_bytes();
    if let Err(e) = calls.send(upload).await {
        return Delivery::failed(n, &e);
    }
    // 3. createFeed
    let request = Request::new("createFeed", Method::POST, format!("{base}/feeds"))
        .json(&json!({
            "feedType": "JSON_LISTINGS_FEED",
            "marketplaceIds": config.marketplace_ids,
            "inputFeedDocumentId": document_id,
        }))
        .header(UPDATE_KEYS_HEADER, keys)
        .header(
            IDEMPOTENCY_KEY_HEADER,
            idempotency_key(&config.name, updates, &[]),
        )
        .auth("x-amz-access-token", secret.clone());
    let created = match calls.send(request).await {
        Ok(r) => r,
        Err(e) => return Delivery::failed(n, &e),
    };
    let Some(feed_id) = created
        .json()
        .and_then(|v| Some(v.get("feedId")?.as_str()?.to_string()))
    else {
        // Submitted or not? Unknown: the updates go again (the same versions, so nothing
        // older can land on top of them).
        return Delivery::all(n, malformed("createFeed", &created));
    };
    // 4. getFeed until DONE / CANCELLED / FATAL.
    let status_url = format!("{base}/feeds/{feed_id}");
    let done = wait_for_feed(calls, &feed_id, || {
        let request = Request::new("getFeed", Method::GET, status_url.clone())
            .auth("x-amz-access-token", secret.clone());
        async move {
            let r = calls.send(request).await?;
            let v = r.json().unwrap_or(Value::Null);
            Ok(match v.get("processingStatus").and_then(Value::as_str) {
                Some("DONE" | "CANCELLED" | "FATAL") => Some(v),
                _ => None,
            })
        }
    })
    .await;
    let status = match done {
        Ok(v) => v,
        Err(why) => {
            return Delivery::all(
                n,
                ItemResult::Retry {
                    class: "feed_timeout",
                    reason: why,
                },
            )
        }
    };
    match status.get("processingStatus").and_then(Value::as_str) {
        Some("DONE") => {}
        other => {
            return Delivery::all(
                n,
                ItemResult::Retry {
                    class: "feed_failed",
                    reason: format!("feed {feed_id} ended {}", other.unwrap_or("?")),
                },
            )
        }
    }
    // 5. The processing report: message-level errors.
    let Some(report_id) = status.get("resultFeedDocumentId").and_then(Value::as_str) else {
        warn!(channel = %config.name, feed = %feed_id, "feed DONE without a processing report; counting its updates as accepted");
        return Delivery::all(n, ItemResult::Accepted);
    };
    let report = match read_report(calls, &base, report_id, secret).await {
        Ok(report) => report,
        Err(why) => {
            // The feed was applied, but which messages failed is unknown: send them again (the
            // same versions, so nothing older lands on anything newer) rather than count a
            // refused update as accepted.
            warn!(channel = %config.name, feed = %feed_id, error = %why, "cannot read the feed's processing report; its updates go again");
            return Delivery::all(
                n,
                ItemResult::Retry {
                    class: "feed_report",
                    reason: why,
                },
            );
        }
    };
    let errors = amazon_report_errors(&report);
    Delivery {
        results: (1..=n as u64)
            .map(|id| match errors.get(&id) {
                None => ItemResult::Accepted,
                Some(why) => ItemResult::Rejected {
                    status: 200,
                    reason: format!("feed {feed_id} message {id}: {why}"),
                    body: why.clone(),
                },
            })
            .collect(),
        throttled: false,
    }
}

/// Reads an Amazon feed's processing report (getFeedDocument, then the document itself),
/// asking again a few times when a request fails. A compressed report cannot be read here; it
/// counts as one without errors.
async fn read_report(
    calls: &Calls<'_>,
    base: &str,
    report_id: &str,
    secret: Option<Secret>,
) -> Result<Value, String> {
    const TRIES: u32 = 5;
    let mut last = String::new();
    for attempt in 1..=TRIES {
        if attempt > 1 {
            tokio::time::sleep(FEED_POLL_FIRST * 2u32.pow(attempt - 2)).await;
        }
        let request = Request::new(
            "getFeedDocument",
            Method::GET,
            format!("{base}/documents/{report_id}"),
        )
        .auth("x-amz-access-token", secret.clone());
        let document = match calls.send(request).await {
            Ok(r) => r.json().unwrap_or(Value::Null),
            Err(e) => {
                last = e.to_string();
                continue;
            }
        };
        if document
            .get("compressionAlgorithm")
            .is_some_and(|c| !c.is_null())
        {
            warn!(channel = %calls.api.channel, report = report_id, "compressed feed processing report; message errors are not read");
            return Ok(Value::Null);
        }
        let Some(url) = document.get("url").and_then(Value::as_str) else {
            return Err(format!("getFeedDocument {report_id}: no url in {document}"));
        };
        match calls
            .send(Request::new("downloadReport", Method::GET, url.to_string()))
            .await
        {
            Ok(r) => match r.json() {
                Some(report) => return Ok(report),
                None => last = format!("report {report_id} is not JSON"),
            },
            Err(e) => last = e.to_string(),
        }
    }
    Err(last)
}

fn walmart_request(
    what: &'static str,
    method: Method,
    url: String,
    secret: Option<Secret>,
    correlation: String,
) -> Request {
    Request::new(what, method, url)
        .header("accept", "application/json")
        .header("wm_svc.name", "Walmart Marketplace")
        .header("wm_qos.correlation_id", correlation)
        .auth("wm_sec.access_token", secret)
}

async fn walmart_single(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    update: &Update,
) -> Delivery {
    let key = idempotency_key(&config.name, &[update], &[]);
    let url = format!("{}{}", config.endpoint, walmart_single_path(&update.sku));
    let request = walmart_request(
        "updateInventoryForAnItem",
        Method::PUT,
        url,
        secret,
        stable_id(&[key.as_bytes()]),
    )
    .json(&walmart_single_body(&update.sku, update.quantity))
    .header(
        UPDATE_KEYS_HEADER,
        update_keys_header(&config.name, &[update]),
    )
    .header(IDEMPOTENCY_KEY_HEADER, key);
    match calls.send(request).await {
        Err(e) => Delivery::failed(1, &e),
        Ok(_) => Delivery::all(1, ItemResult::Accepted),
    }
}

async fn walmart_feed_delivery(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    updates: &[&Update],
) -> Delivery {
    let n = updates.len();
    let key = idempotency_key(&config.name, updates, &[]);
    let items: Vec<(&str, i64)> = updates
        .iter()
        .map(|u| (u.sku.as_str(), u.quantity))
        .collect();
    let boundary = format!("shelfsync-{key}");
    let mut request = walmart_request(
        "bulkInventoryFeed",
        Method::POST,
        format!("{}/v3/feeds?feedType=inventory", config.endpoint),
        secret.clone(),
        key.clone(),
    )
    .header(
        "content-type",
        format!("multipart/form-data; boundary={boundary}"),
    )
    .header(
        UPDATE_KEYS_HEADER,
        update_keys_header(&config.name, updates),
    )
    .header(IDEMPOTENCY_KEY_HEADER, key.clone());
    request.body = multipart_file(
        &boundary,
        "inventory.json",
        walmart_feed(&items).to_string().as_bytes(),
    );
    let submitted = match calls.send(request).await {
        Ok(r) => r,
        Err(e) => return Delivery::failed(n, &e),
    };
    let Some(feed_id) = submitted
        .json()
        .and_then(|v| Some(v.get("feedId")?.as_str()?.to_string()))
    else {
        return Delivery::all(n, malformed("bulk inventory feed", &submitted));
    };
    let status_url = format!(
        "{}/v3/feeds/{}?includeDetails=true&limit=1000",
        config.endpoint,
        utf8_percent_encode(&feed_id, URL_SKU)
    );
    let done = wait_for_feed(calls, &feed_id, || {
        let request = walmart_request(
            "getFeedItemStatus",
            Method::GET,
            status_url.clone(),
            secret.clone(),
            key.clone(),
        );
        async move {
            let r = calls.send(request).await?;
            let v = r.json().unwrap_or(Value::Null);
            Ok(match v.get("feedStatus").and_then(Value::as_str) {
                Some("PROCESSED" | "ERROR") => Some(v),
                _ => None,
            })
        }
    })
    .await;
    let status = match done.as_ref().map(parse_walmart_feed_status) {
        Ok(Some(status)) => status,
        Ok(None) => {
            return Delivery::all(
                n,
                ItemResult::Retry {
                    class: "bad_response",
                    reason: format!("feed {feed_id}: unreadable status"),
                },
            )
        }
        Err(why) => {
            return Delivery::all(
                n,
                ItemResult::Retry {
                    class: "feed_timeout",
                    reason: why.clone(),
                },
            )
        }
    };
    if status.status != "PROCESSED" {
        return Delivery::all(
            n,
            ItemResult::Retry {
                class: "feed_failed",
                reason: format!("feed {feed_id} ended {}", status.status),
            },
        );
    }
    Delivery {
        results: updates
            .iter()
            .map(|u| match status.items.get(&u.sku) {
                Some((s, _)) if s == "SUCCESS" => ItemResult::Accepted,
                Some((s, errors)) if s == "DATA_ERROR" => ItemResult::Rejected {
                    status: 200,
                    reason: format!("feed {feed_id}: {s}"),
                    body: errors.clone(),
                },
                Some((s, errors)) => ItemResult::Retry {
                    class: "feed_failed",
                    reason: format!("feed {feed_id}: {s} {errors}"),
                },
                None => ItemResult::Retry {
                    class: "feed_failed",
                    reason: format!("feed {feed_id}: no status for the SKU"),
                },
            })
            .collect(),
        throttled: false,
    }
}

async fn ebay(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    updates: &[&Update],
) -> Delivery {
    let n = updates.len();
    let items: Vec<(&str, i64)> = updates
        .iter()
        .map(|u| (u.sku.as_str(), u.quantity))
        .collect();
    let request = Request::new(
        "bulkUpdatePriceQuantity",
        Method::POST,
        format!("{}{EBAY_BULK_PATH}", config.endpoint),
    )
    .json(&ebay_body(&items))
    .header("content-language", "en-US")
    .header(
        UPDATE_KEYS_HEADER,
        update_keys_header(&config.name, updates),
    )
    .header(
        IDEMPOTENCY_KEY_HEADER,
        idempotency_key(&config.name, updates, &[]),
    )
    .auth(
        "authorization",
        secret.map(|s| Secret::new(format!("Bearer {}", s.expose()))),
    );
    let response = match calls.send(request).await {
        Ok(r) => r,
        Err(e) => return Delivery::failed(n, &e),
    };
    let Some(per_sku) = response.json().map(|v| parse_ebay(&v)) else {
        return Delivery::all(n, malformed("bulk_update_price_quantity", &response));
    };
    let mut throttled = false;
    let results = updates
        .iter()
        .map(|u| match per_sku.get(&u.sku) {
            Some((200..=299, _)) => ItemResult::Accepted,
            Some((429, errors)) => {
                throttled = true;
                ItemResult::Retry {
                    class: "throttled",
                    reason: errors.clone(),
                }
            }
            Some((code @ 500..=599, errors)) => ItemResult::Retry {
                class: "server_error",
                reason: format!("{code}: {errors}"),
            },
            Some((code, errors)) => ItemResult::Rejected {
                status: *code,
                reason: format!("eBay refused SKU {:?} with status {code}", u.sku),
                body: errors.clone(),
            },
            None => ItemResult::Retry {
                class: "bad_response",
                reason: format!("no response for SKU {:?}", u.sku),
            },
        })
        .collect();
    Delivery { results, throttled }
}

async fn webhook(
    calls: &Calls<'_>,
    config: &ChannelConfig,
    secret: Option<Secret>,
    updates: &[&Update],
) -> Delivery {
    let body = webhook_body(&config.name, updates);
    let mut request = Request::new("webhook", Method::POST, config.endpoint.clone())
        .header("content-type", "application/json")
        .header(
            UPDATE_KEYS_HEADER,
            update_keys_header(&config.name, updates),
        )
        .header(
            IDEMPOTENCY_KEY_HEADER,
            idempotency_key(&config.name, updates, &[]),
        );
    if let Some(secret) = secret {
        request = request.header(
            SIGNATURE_HEADER,
            webhook_signature(secret.expose().as_bytes(), &body),
        );
    }
    request.body = body;
    match calls.send(request).await {
        Err(e) => Delivery::failed(updates.len(), &e),
        Ok(_) => Delivery::all(updates.len(), ItemResult::Accepted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The marketplaces' published examples (copies in `push/fixtures/`, see SOURCES.md there).
    fn fixture(name: &str) -> Value {
        let text = match name {
            "shopify-inventorySetQuantities-request.json" => {
                include_str!("fixtures/shopify-inventorySetQuantities-request.json")
            }
            "shopify-inventorySetQuantities-response.json" => {
                include_str!("fixtures/shopify-inventorySetQuantities-response.json")
            }
            "amazon-JSON_LISTINGS_FEED-example-fulfillment_availability.json" => include_str!(
                "fixtures/amazon-JSON_LISTINGS_FEED-example-fulfillment_availability.json"
            ),
            "amazon-patchListingsItem-merge-fulfillment_availability-request.json" => include_str!(
                "fixtures/amazon-patchListingsItem-merge-fulfillment_availability-request.json"
            ),
            "walmart-updateInventoryForAnItem-request.json" => {
                include_str!("fixtures/walmart-updateInventoryForAnItem-request.json")
            }
            other => panic!("no fixture {other}"),
        };
        serde_json::from_str(text).unwrap()
    }

    fn update(sku: &str, quantity: i64, version: i64) -> Update {
        Update {
            sku: sku.into(),
            quantity,
            version,
            event_id: "e".into(),
            event_time: 1,
        }
    }

    #[test]
    fn shopify_mutation_matches_shopifys_example() {
        let want = fixture("shopify-inventorySetQuantities-request.json");
        let got = shopify_set_body(
            "gid://shopify/Location/124656943",
            &[ShopifySet {
                inventory_item_id: "gid://shopify/InventoryItem/30322695".into(),
                quantity: 42,
                change_from: Some(1),
            }],
            "550e8400-e29b-41d4-a716-446655440000",
            "logistics://some.warehouse/take/2026-02-23T13:14:15Z",
        );
        assert_eq!(got, want);
        // Opting out of the check sends an explicit null (required from API 2026-04 on).
        let forced = shopify_set_body(
            "gid://shopify/Location/1",
            &[ShopifySet {
                inventory_item_id: "gid://shopify/InventoryItem/2".into(),
                quantity: 0,
                change_from: None,
            }],
            "k",
            "u",
        );
        let q = &forced["variables"]["input"]["quantities"][0];
        assert!(
            q.get("changeFromQuantity").is_some_and(Value::is_null),
            "{q}"
        );
    }

    #[test]
    fn shopify_answers_are_read() {
        let data = fixture("shopify-inventorySetQuantities-response.json");
        assert_eq!(
            parse_shopify_set(&json!({ "data": data })),
            ShopifySetOutcome::Applied
        );
        let stale = json!({"data": {"inventorySetQuantities": {"inventoryAdjustmentGroup": null, "userErrors": [
            {"code": "CHANGE_FROM_QUANTITY_STALE", "field": ["input", "quantities", "1", "changeFromQuantity"], "message": "The changeFromQuantity value does not match persisted value."}
        ]}}});
        assert_eq!(
            parse_shopify_set(&stale),
            ShopifySetOutcome::UserErrors(vec![ShopifyUserError {
                index: Some(1),
                code: "CHANGE_FROM_QUANTITY_STALE".into(),
                message: "The changeFromQuantity value does not match persisted value.".into(),
            }])
        );
        let throttled =
            json!({"errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}]});
        assert_eq!(parse_shopify_set(&throttled), ShopifySetOutcome::Throttled);
        assert!(matches!(
            parse_shopify_set(&json!({})),
            ShopifySetOutcome::Failed(_)
        ));
    }

    #[test]
    fn shopify_lookup_quotes_skus_and_matches_exactly() {
        let body = shopify_lookup_body(&["A-1", "B \"2\""], "gid://shopify/Location/9");
        assert_eq!(body["variables"]["query"], r#"sku:"A-1" OR sku:"B \"2\"""#);
        assert_eq!(body["variables"]["first"], 4);
        let answer = json!({"data": {"inventoryItems": {"nodes": [
            {"id": "gid://shopify/InventoryItem/1", "sku": "A-1", "inventoryLevel": {"quantities": [{"name": "available", "quantity": 7}]}},
            {"id": "gid://shopify/InventoryItem/2", "sku": "A-10", "inventoryLevel": null},
            {"id": "gid://shopify/InventoryItem/3", "sku": "B \"2\"", "inventoryLevel": null}
        ]}}});
        let found = parse_shopify_lookup(&answer).unwrap();
        assert_eq!(found["A-1"].available, Some(Some(7)));
        assert_eq!(found["B \"2\""].available, None);
        assert!(!found.contains_key("B"));
    }

    #[test]
    fn amazon_patch_and_feed_match_amazons_examples() {
        let feed_example =
            fixture("amazon-JSON_LISTINGS_FEED-example-fulfillment_availability.json");
        // Message 4 of Amazon's example is exactly a PATCH replace of fulfillment_availability.
        let want_message = &feed_example["messages"][3];
        let feed = amazon_feed(
            "AXXXXXXXXXXXX",
            "LUGGAGE",
            &[("My-SKU-C", 3), ("My-SKU-D", 10)],
        );
        let mut got_message = feed["messages"][1].clone();
        assert_eq!(got_message["messageId"], 2);
        got_message["messageId"] = want_message["messageId"].clone();
        assert_eq!(&got_message, want_message);
        assert_eq!(
            feed["header"]["sellerId"],
            feed_example["header"]["sellerId"]
        );
        assert_eq!(feed["header"]["version"], feed_example["header"]["version"]);
        // patchListingsItem takes the same `patches` as the feed message (Amazon's docs example
        // merges; shelfsync replaces, with the productType the API requires).
        let patch = amazon_patch_body("LUGGAGE", 10);
        assert_eq!(patch["patches"], want_message["patches"]);
        assert_eq!(patch["productType"], "LUGGAGE");
        let merge = fixture("amazon-patchListingsItem-merge-fulfillment_availability-request.json");
        assert_eq!(patch["patches"][0]["path"], merge["patches"][0]["path"]);
        assert_eq!(
            patch["patches"][0]["value"][0]["fulfillment_channel_code"],
            merge["patches"][0]["value"][0]["fulfillment_channel_code"]
        );
        assert_eq!(
            amazon_patch_path("A1SELLER", "SKU 1/x", &["ATVPDKIKX0DER".into(), "A2EUQ1WTGCTBG2".into()]),
            "/listings/2021-08-01/items/A1SELLER/SKU%201%2Fx?marketplaceIds=ATVPDKIKX0DER,A2EUQ1WTGCTBG2"
        );
        assert_eq!(
            parse_amazon_patch(
                &json!({"sku": "x", "status": "ACCEPTED", "submissionId": "1", "issues": []})
            ),
            Ok(())
        );
        assert!(
            parse_amazon_patch(&json!({"status": "INVALID", "issues": [{"code": "90220"}]}))
                .unwrap_err()
                .contains("90220")
        );
        let report = json!({"issues": [
            {"messageId": 2, "code": "4000001", "severity": "ERROR", "message": "bad"},
            {"messageId": 1, "code": "99", "severity": "WARNING", "message": "meh"}
        ]});
        let errors = amazon_report_errors(&report);
        assert_eq!(errors.len(), 1);
        assert!(errors[&2].contains("4000001"));
    }

    #[test]
    fn walmart_bodies_match_walmarts_example() {
        let want = fixture("walmart-updateInventoryForAnItem-request.json");
        assert_eq!(walmart_single_body("97964_KFTest", 10), want);
        assert_eq!(
            walmart_single_path("97964_KFTest"),
            "/v3/inventory?sku=97964_KFTest"
        );
        assert_eq!(walmart_single_path("a b&c"), "/v3/inventory?sku=a%20b%26c");
        let feed = walmart_feed(&[("97964_KFTest", 10), ("X", 0)]);
        assert_eq!(feed["InventoryHeader"]["version"], "1.4");
        assert_eq!(feed["Inventory"][0], want);
        let body = multipart_file("b0", "inventory.json", b"{}");
        let text = String::from_utf8(body).unwrap();
        assert!(text.starts_with(
            "--b0\r\nContent-Disposition: form-data; name=\"file\"; filename=\"inventory.json\""
        ));
        assert!(text.ends_with("\r\n{}\r\n--b0--\r\n"));
        let status = parse_walmart_feed_status(&json!({"feedId": "F", "feedStatus": "PROCESSED", "itemDetails": {"itemIngestionStatus": [
            {"sku": "X", "ingestionStatus": "DATA_ERROR", "ingestionErrors": {"ingestionError": [{"code": "ERR_EXT_DATA_0801001"}]}},
            {"sku": "Y", "ingestionStatus": "SUCCESS"}
        ]}})).unwrap();
        assert_eq!(status.status, "PROCESSED");
        assert_eq!(status.items["X"].0, "DATA_ERROR");
        assert!(status.items["X"].1.contains("0801001"));
        assert_eq!(status.items["Y"].0, "SUCCESS");
    }

    #[test]
    fn ebay_bulk_body_and_answer() {
        let body = ebay_body(&[("A", 3), ("B", 0)]);
        assert_eq!(
            body,
            json!({"requests": [
                {"sku": "A", "shipToLocationAvailability": {"quantity": 3}},
                {"sku": "B", "shipToLocationAvailability": {"quantity": 0}}
            ]})
        );
        let answer = json!({"responses": [
            {"statusCode": 200, "sku": "A", "offerId": "1", "errors": [], "warnings": []},
            {"statusCode": 400, "sku": "B", "errors": [{"errorId": 25002}]}
        ]});
        let per_sku = parse_ebay(&answer);
        assert_eq!(per_sku["A"].0, 200);
        assert_eq!(per_sku["B"].0, 400);
        assert!(per_sku["B"].1.contains("25002"));
    }

    #[test]
    fn webhook_body_keys_and_signature() {
        let a = update("SKU,1", 4, 7);
        let b = update("B", 0, 2);
        let body = webhook_body("outlet", &[&a, &b]);
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["channel"], "outlet");
        assert_eq!(v["updates"][0]["idempotency_key"], "outlet|SKU,1|7");
        assert_eq!(v["updates"][1]["quantity"], 0);
        assert_eq!(
            update_keys_header("outlet", &[&a, &b]),
            "outlet|SKU%2C1|7,outlet|B|2"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            webhook_signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        assert_eq!(idempotency_key("outlet", &[&b], &[]), "outlet|B|2");
        assert_eq!(idempotency_key("outlet", &[&a, &b], &[]).len(), 32);
        assert_ne!(
            idempotency_key("outlet", &[&b], &["Some(1)".into()]),
            idempotency_key("outlet", &[&b], &["Some(2)".into()])
        );
    }

    #[test]
    fn feeds_only_for_a_backlog_and_never_for_a_stock_out() {
        let amazon = Adapter::new(PushKind::Amazon);
        assert_eq!(amazon.batch_for(false, 10, 50), 1);
        assert_eq!(amazon.batch_for(false, 50, 50), 50);
        assert_eq!(amazon.batch_for(true, 500, 50), 1);
        let ebay = Adapter::new(PushKind::Ebay);
        assert_eq!(ebay.batch_for(true, 3, 25), 25);
    }
}
