//! Channel adapters: raw marketplace payloads → canonical [`Order`].
//!
//! The raw-orders topic (`retail.channel.orders.raw`) carries one JSON envelope per record,
//! [`RawOrderEnvelope`] `{channel, delivery_id, received_at, payload}`, where `payload` is the
//! marketplace's own body, untouched. The normalize stage:
//!
//! 1. decodes the record with [`parse_envelope`] (size limit, JSON, envelope fields);
//! 2. looks the envelope's `channel` up in the topology, which names an [`AdapterKind`]
//!    (so `ebay` and `store-nyc` can both use the [generic](AdapterKind::Generic) shape);
//! 3. calls [`to_order`] with that kind and the configured channel name.
//!
//! [`normalize`] does all three with a lookup closure. Every failure is an [`AdapterError`] whose
//! [`kind`](AdapterError::kind) is the DLQ `error_kind` and whose `Display` names the JSON path
//! of the offending field (`payload.line_items[2].quantity`). Adapters are pure functions of
//! their input: no clock, no I/O, the same bytes always give the same order or the same error,
//! so a refused record never succeeds on retry. They never panic, whatever the input.
//!
//! # What every adapter guarantees
//!
//! - `channel_order_id`, every `line_id` and every `sku` are non-empty, at most 128 bytes, not
//!   blank and free of control characters. SKUs are kept exactly as the channel sent them (no
//!   trimming or case folding): they must match the ERP's SKUs byte for byte.
//! - Line ids are unique within an order; a payload that repeats one is refused.
//! - Every line's `quantity` is between 1 and [`MAX_QUANTITY`]; an order has at most
//!   [`MAX_LINES`] lines.
//! - A line the channel reports as removed or cancelled while the rest of the order stands is
//!   left out of the order; dedupe then releases its hold like any line that disappeared.
//! - When every line is removed or cancelled, the order is `cancelled`.
//! - A cancelled order lists its lines with the quantities the buyer ordered (lines whose ordered
//!   quantity the channel reports as 0 are left out), and may have no lines at all: a
//!   cancellation needs only the order key. An order that is not cancelled has at least one line.
//! - `placed_at` is epoch ms UTC, 0 when the payload does not say.
//!
//! # Paid and cancelled, per channel
//!
//! | adapter | `paid` | `cancelled` |
//! |---|---|---|
//! | Shopify | `financial_status` ∈ {`authorized`, `paid`, `partially_paid`, `partially_refunded`, `refunded`} | `cancelled_at` is set, or every line's `current_quantity` is 0 |
//! | Amazon | `OrderStatus` ∈ {`Unshipped`, `PartiallyShipped`, `Shipped`, `InvoiceUnconfirmed`} (2026-01-01 API: `UNSHIPPED`, `PARTIALLY_SHIPPED`, `SHIPPED`) | `OrderStatus` is `Canceled` (`CANCELLED`), or every item is cancelled |
//! | Walmart | always (Walmart takes the buyer's payment before it releases a purchase order) | every line's statuses are `Cancelled` |
//! | Generic | the payload's `paid` | the payload's `cancelled` |
//!
//! The accepted payload shapes, field by field, are documented in the adapter modules
//! [`shopify`], [`amazon`], [`walmart`] and [`generic`] (public for their documentation only:
//! everything is reached through [`to_order`]).

pub mod amazon;
pub mod generic;
pub mod shopify;
pub mod walmart;

use std::collections::HashSet;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::model::{Order, OrderLine, RawOrderEnvelope};

/// Largest raw record [`parse_envelope`] accepts, in bytes (1 MiB).
pub const MAX_INPUT_BYTES: usize = 1 << 20;
/// Most lines one order may have (counting lines the channel removed or cancelled).
pub const MAX_LINES: usize = 1000;
/// Largest quantity one line may carry; anything above is treated as garbage.
pub const MAX_QUANTITY: i64 = 1_000_000;
/// Longest SKU, in bytes (UTF-8).
pub const MAX_SKU_BYTES: usize = 128;
/// Longest order id or line id, in bytes (UTF-8).
pub const MAX_ID_BYTES: usize = 128;
/// Longest channel name, in bytes.
pub const MAX_CHANNEL_BYTES: usize = 128;
/// Longest envelope `delivery_id`, in bytes.
pub const MAX_DELIVERY_ID_BYTES: usize = 256;

/// Which adapter parses a channel's payloads.
///
/// The topology maps each configured channel name to one of these, so several channels can share
/// an adapter (`ebay` and `store-nyc` both [`Generic`](Self::Generic)). Spelled in snake_case in
/// config files and on the wire (`"shopify"`, `"amazon"`, `"walmart"`, `"generic"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AdapterKind {
    /// Shopify order webhooks (`orders/create`, `orders/updated`, `orders/cancelled`) and REST
    /// `GET /orders/{id}.json` bodies; see [`shopify`].
    Shopify,
    /// Amazon SP-API orders: a poller's combined getOrder + getOrderItems, an `ORDER_CHANGE`
    /// notification, or an Orders API v2026-01-01 getOrder response; see [`amazon`].
    Amazon,
    /// Walmart Marketplace purchase orders (`GET /v3/orders/{purchaseOrderId}`); see [`walmart`].
    Walmart,
    /// shelfsync's own documented JSON order shape, for channels without a dedicated adapter
    /// (eBay through a bridge, own web shops, stores); see [`generic`].
    Generic,
}

impl AdapterKind {
    /// Every adapter, in a fixed order.
    pub const ALL: [AdapterKind; 4] = [Self::Shopify, Self::Amazon, Self::Walmart, Self::Generic];

    /// The adapter's name as written in config: `"shopify"`, `"amazon"`, `"walmart"`, `"generic"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Amazon => "amazon",
            Self::Walmart => "walmart",
            Self::Generic => "generic",
        }
    }
}

impl fmt::Display for AdapterKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AdapterKind {
    type Err = AdapterError;

    /// Parses an adapter name exactly as [`as_str`](Self::as_str) writes it (lowercase).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|kind| kind.as_str() == s)
            .ok_or_else(|| AdapterError::UnknownAdapter { name: truncated(s) })
    }
}

/// Why a raw order was refused.
///
/// Every variant is the input's fault (the marketplace, the envelope producer or the topology),
/// and none is worth retrying: adapters are deterministic, so the same bytes fail the same way.
/// The normalize stage sends the record to the DLQ with [`kind`](Self::kind) as `error_kind` and
/// the `Display` text as the reason. Paths are JSON paths from the envelope root, e.g.
/// `payload.line_items[2].quantity`; `$` is the envelope itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The raw record is larger than [`MAX_INPUT_BYTES`].
    #[error("record is {size} bytes, more than the limit of {limit}")]
    PayloadTooLarge {
        /// Size of the record.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The record is not JSON (or not UTF-8).
    #[error("not valid JSON: {message}")]
    BadJson {
        /// serde_json's message, which ends with the position.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A required field is absent or `null`.
    #[error("{path}: required field is missing or null")]
    MissingField {
        /// Where.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        path: String,
        /// The JSON type wanted (e.g. `"integer"`).
        expected: &'static str,
        /// The JSON type found (e.g. `"string"`).
        found: &'static str,
    },
    /// A field has the right type but a value outside what is allowed (zero, negative or absurd
    /// quantity, empty or overlong SKU or id, malformed timestamp or Shopify GID, …).
    #[error("{path}: {reason}")]
    InvalidField {
        /// Where.
        path: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// An order that is not cancelled has no lines.
    #[error("{path}: an order that is not cancelled needs at least one line")]
    NoLines {
        /// The lines array.
        path: String,
    },
    /// An order has more than [`MAX_LINES`] lines.
    #[error("{path}: {count} lines, more than the limit of {limit}")]
    TooManyLines {
        /// The lines array.
        path: String,
        /// How many lines the payload has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Two lines of one order have the same line id.
    #[error("{path}: line id {line_id:?} appears more than once in the order")]
    DuplicateLineId {
        /// The second line with that id.
        path: String,
        /// The repeated id.
        line_id: String,
    },
    /// The payload is a marketplace document, but not one that describes a whole order (a list
    /// of orders, a deprecated per-item notification, an inventory message, …).
    #[error("{path}: {reason}")]
    UnsupportedPayload {
        /// Where.
        path: String,
        /// What the payload is and what the adapter accepts instead.
        reason: String,
    },
    /// The parts of a payload contradict each other (Amazon items of another order, an item
    /// list cut short by pagination).
    #[error("{path}: {reason}")]
    InconsistentPayload {
        /// Where.
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// An adapter name that is not one of [`AdapterKind::ALL`].
    #[error("unknown adapter {name:?}: expected shopify, amazon, walmart or generic")]
    UnknownAdapter {
        /// The name given (cut to 128 bytes).
        name: String,
    },
    /// The envelope names a channel the topology does not configure.
    #[error("channel {channel:?} is not configured in the topology")]
    UnknownChannel {
        /// The channel named by the envelope (cut to 128 bytes).
        channel: String,
    },
}

impl AdapterError {
    /// Every value [`kind`](Self::kind) can return, for metric label sets and docs.
    pub const KINDS: [&'static str; 12] = [
        "payload_too_large",
        "bad_json",
        "missing_field",
        "wrong_type",
        "invalid_field",
        "no_lines",
        "too_many_lines",
        "duplicate_line_id",
        "unsupported_payload",
        "inconsistent_payload",
        "unknown_adapter",
        "unknown_channel",
    ];

    /// A short, stable, low-cardinality label for the failure: the DLQ `error_kind` and a metric
    /// label. One of [`KINDS`](Self::KINDS).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BadJson { .. } => "bad_json",
            Self::MissingField { .. } => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::InvalidField { .. } => "invalid_field",
            Self::NoLines { .. } => "no_lines",
            Self::TooManyLines { .. } => "too_many_lines",
            Self::DuplicateLineId { .. } => "duplicate_line_id",
            Self::UnsupportedPayload { .. } => "unsupported_payload",
            Self::InconsistentPayload { .. } => "inconsistent_payload",
            Self::UnknownAdapter { .. } => "unknown_adapter",
            Self::UnknownChannel { .. } => "unknown_channel",
        }
    }

    /// The JSON path the error is about (`$` for the whole envelope), when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::MissingField { path }
            | Self::WrongType { path, .. }
            | Self::InvalidField { path, .. }
            | Self::NoLines { path }
            | Self::TooManyLines { path, .. }
            | Self::DuplicateLineId { path, .. }
            | Self::UnsupportedPayload { path, .. }
            | Self::InconsistentPayload { path, .. } => Some(path),
            Self::PayloadTooLarge { .. }
            | Self::BadJson { .. }
            | Self::UnknownAdapter { .. }
            | Self::UnknownChannel { .. } => None,
        }
    }

    /// The error for an envelope whose channel the topology does not know; for callers that
    /// resolve channels themselves instead of through [`normalize`].
    pub fn unknown_channel(channel: &str) -> Self {
        Self::UnknownChannel {
            channel: truncated(channel),
        }
    }
}

/// Decodes a raw-orders record: checks its size, parses the JSON and the envelope fields.
///
/// The envelope is `{"channel": string, "delivery_id": string, "received_at": epoch ms integer,
/// "payload": any JSON}`; other top-level fields are ignored. The payload is not looked at here.
///
/// # Errors
///
/// [`PayloadTooLarge`](AdapterError::PayloadTooLarge) above [`MAX_INPUT_BYTES`];
/// [`BadJson`](AdapterError::BadJson); [`WrongType`](AdapterError::WrongType) when the record
/// or a field has the wrong type; [`MissingField`](AdapterError::MissingField) when a field is
/// absent or null; [`InvalidField`](AdapterError::InvalidField) for an empty or overlong
/// channel, an overlong delivery id or a negative `received_at`.
pub fn parse_envelope(bytes: &[u8]) -> Result<RawOrderEnvelope, AdapterError> {
    if bytes.len() > MAX_INPUT_BYTES {
        return Err(AdapterError::PayloadTooLarge {
            size: bytes.len(),
            limit: MAX_INPUT_BYTES,
        });
    }
    let value: Value = serde_json::from_slice(bytes).map_err(|e| AdapterError::BadJson {
        message: e.to_string(),
        line: e.line(),
        column: e.column(),
    })?;
    let root = Path::ROOT;
    let mut map = match value {
        Value::Object(map) => map,
        other => return Err(wrong_type(&root, "object", &other)),
    };
    let channel = as_str(required(&map, "channel", &root)?, &root.key("channel"))?;
    check_channel(channel, &root.key("channel"))?;
    let delivery_id = as_str(
        required(&map, "delivery_id", &root)?,
        &root.key("delivery_id"),
    )?;
    if delivery_id.len() > MAX_DELIVERY_ID_BYTES {
        return Err(invalid(
            &root.key("delivery_id"),
            format!(
                "{} bytes, more than the limit of {MAX_DELIVERY_ID_BYTES}",
                delivery_id.len()
            ),
        ));
    }
    let received_at = as_int(
        required(&map, "received_at", &root)?,
        &root.key("received_at"),
    )?;
    if received_at < 0 {
        return Err(invalid(
            &root.key("received_at"),
            format!("{received_at} is negative; expected epoch milliseconds"),
        ));
    }
    let channel = channel.to_owned();
    let delivery_id = delivery_id.to_owned();
    let payload = match map.remove("payload") {
        None | Some(Value::Null) => return Err(missing(&root.key("payload"))),
        Some(payload) => payload,
    };
    Ok(RawOrderEnvelope {
        channel,
        delivery_id,
        received_at,
        payload,
    })
}

/// Turns an envelope's payload into a canonical order with the adapter `kind`.
///
/// `channel` is the configured channel name that goes into [`Order::channel`] (and so into the
/// order key); it is usually `envelope.channel`. `delivery_id` and `received_at` are copied from
/// the envelope. The accepted payload shapes are described in the module documentation.
///
/// # Errors
///
/// Any [`AdapterError`] but `PayloadTooLarge`, `BadJson`, `UnknownAdapter` and `UnknownChannel`,
/// naming the offending field. An invalid `channel` (empty, longer than [`MAX_CHANNEL_BYTES`],
/// containing `:`, `|` or control characters) is an [`InvalidField`](AdapterError::InvalidField)
/// at `channel`.
pub fn to_order(
    kind: AdapterKind,
    channel: &str,
    envelope: &RawOrderEnvelope,
) -> Result<Order, AdapterError> {
    check_channel(channel, &Path::ROOT.key("channel"))?;
    let path = Path::ROOT.key("payload");
    let parsed = match kind {
        AdapterKind::Shopify => shopify::parse(&envelope.payload, &path)?,
        AdapterKind::Amazon => amazon::parse(&envelope.payload, &path)?,
        AdapterKind::Walmart => walmart::parse(&envelope.payload, &path)?,
        AdapterKind::Generic => generic::parse(&envelope.payload, &path)?,
    };
    parsed.into_order(channel, envelope)
}

/// The whole normalize step for one raw record: [`parse_envelope`], look the envelope's channel
/// up with `resolve` (the topology's channel → adapter map), then [`to_order`] with the envelope's
/// channel name.
///
/// # Errors
///
/// Those of [`parse_envelope`] and [`to_order`], and
/// [`UnknownChannel`](AdapterError::UnknownChannel) when `resolve` returns `None`.
pub fn normalize<F>(bytes: &[u8], resolve: F) -> Result<Order, AdapterError>
where
    F: FnOnce(&str) -> Option<AdapterKind>,
{
    let envelope = parse_envelope(bytes)?;
    let kind = resolve(&envelope.channel)
        .ok_or_else(|| AdapterError::unknown_channel(&envelope.channel))?;
    to_order(kind, &envelope.channel, &envelope)
}

// ---------------------------------------------------------------------------------------------
// What adapters produce, and the rules shared by all of them.

/// One line as a channel reports it, before the shared rules decide what goes into the order.
#[derive(Debug)]
struct RawLine {
    line_id: String,
    sku: String,
    /// Units the buyer ordered (0 only where a channel reports cancelled items that way).
    ordered: i64,
    /// Units still wanted after the channel's edits, refunds or line cancellations.
    remaining: i64,
}

/// An adapter's reading of a payload.
#[derive(Debug)]
struct Parsed {
    order_id: String,
    paid: bool,
    /// The channel says the whole order is cancelled.
    cancelled: bool,
    placed_at: i64,
    lines: Vec<RawLine>,
    /// Path of the lines array, for [`AdapterError::NoLines`].
    lines_path: String,
}

impl Parsed {
    /// Applies the rules in the module docs: removed lines are left out, an order whose lines are
    /// all removed is cancelled, a cancelled order keeps its ordered quantities.
    fn into_order(self, channel: &str, envelope: &RawOrderEnvelope) -> Result<Order, AdapterError> {
        let all_removed =
            !self.lines.is_empty() && self.lines.iter().all(|line| line.remaining <= 0);
        let cancelled = self.cancelled || all_removed;
        if !cancelled && self.lines.is_empty() {
            return Err(AdapterError::NoLines {
                path: self.lines_path,
            });
        }
        let lines = self
            .lines
            .into_iter()
            .filter_map(|line| {
                let quantity = if cancelled {
                    line.ordered
                } else {
                    line.remaining
                };
                (quantity > 0).then_some(OrderLine {
                    line_id: line.line_id,
                    sku: line.sku,
                    quantity,
                })
            })
            .collect();
        Ok(Order {
            channel: channel.to_owned(),
            channel_order_id: self.order_id,
            paid: self.paid,
            cancelled,
            placed_at: self.placed_at,
            lines,
            delivery_id: envelope.delivery_id.clone(),
            received_at: envelope.received_at,
        })
    }
}

/// Collects an order's lines, refusing repeated line ids.
#[derive(Debug, Default)]
struct LineSet {
    seen: HashSet<String>,
    lines: Vec<RawLine>,
}

impl LineSet {
    /// An empty set for an array of `len` lines at `path`; refuses more than [`MAX_LINES`].
    fn with_len(len: usize, path: &Path<'_>) -> Result<Self, AdapterError> {
        if len > MAX_LINES {
            return Err(AdapterError::TooManyLines {
                path: path.render(),
                count: len,
                limit: MAX_LINES,
            });
        }
        Ok(Self {
            seen: HashSet::with_capacity(len),
            lines: Vec::with_capacity(len),
        })
    }

    /// Adds a line read at `path`.
    fn push(&mut self, line: RawLine, path: &Path<'_>) -> Result<(), AdapterError> {
        if !self.seen.insert(line.line_id.clone()) {
            return Err(AdapterError::DuplicateLineId {
                path: path.render(),
                line_id: line.line_id,
            });
        }
        self.lines.push(line);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// JSON paths, built on the stack and rendered only when an error needs them.

/// A JSON path as a chain of segments borrowed from the caller's stack frames.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

#[derive(Clone, Copy)]
enum Seg<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

impl<'a> Path<'a> {
    /// The envelope root, rendered `$`.
    const ROOT: Path<'static> = Path {
        parent: None,
        seg: Seg::Root,
    };

    /// The path of field `key` of this object.
    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            seg: Seg::Key(key),
        }
    }

    /// The path of element `index` of this array.
    fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            seg: Seg::Index(index),
        }
    }

    /// `payload.line_items[2].quantity`; `$` for the root.
    fn render(&self) -> String {
        let mut segs = Vec::new();
        let mut node = Some(self);
        while let Some(path) = node {
            segs.push(path.seg);
            node = path.parent;
        }
        let mut out = String::new();
        for seg in segs.iter().rev() {
            match seg {
                Seg::Root => {}
                Seg::Key(key) => {
                    if !out.is_empty() {
                        out.push('.');
                    }
                    out.push_str(key);
                }
                Seg::Index(index) => {
                    out.push('[');
                    out.push_str(&index.to_string());
                    out.push(']');
                }
            }
        }
        if out.is_empty() {
            out.push('$');
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// Field access and validation helpers shared by the adapters.

fn missing(path: &Path<'_>) -> AdapterError {
    AdapterError::MissingField {
        path: path.render(),
    }
}

fn invalid(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::InvalidField {
        path: path.render(),
        reason: reason.into(),
    }
}

fn unsupported(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::UnsupportedPayload {
        path: path.render(),
        reason: reason.into(),
    }
}

fn inconsistent(path: &Path<'_>, reason: impl Into<String>) -> AdapterError {
    AdapterError::InconsistentPayload {
        path: path.render(),
        reason: reason.into(),
    }
}

fn wrong_type(path: &Path<'_>, expected: &'static str, found: &Value) -> AdapterError {
    AdapterError::WrongType {
        path: path.render(),
        expected,
        found: type_name(found),
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// `s` cut to at most 128 bytes on a char boundary, for echoing untrusted names in errors.
fn truncated(s: &str) -> String {
    let mut end = s.len().min(128);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default().to_owned()
}

/// Field `key` of `map`, or `None` when it is absent or `null`.
fn get<'v>(map: &'v Map<String, Value>, key: &str) -> Option<&'v Value> {
    map.get(key).filter(|value| !value.is_null())
}

/// Field `key` of the object at `path`; absent or `null` is [`AdapterError::MissingField`].
fn required<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<&'v Value, AdapterError> {
    get(map, key).ok_or_else(|| missing(&path.key(key)))
}

fn as_object<'v>(
    value: &'v Value,
    path: &Path<'_>,
) -> Result<&'v Map<String, Value>, AdapterError> {
    value
        .as_object()
        .ok_or_else(|| wrong_type(path, "object", value))
}

fn as_array<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v [Value], AdapterError> {
    value
        .as_array()
        .map(Vec::as_slice)
        .ok_or_else(|| wrong_type(path, "array", value))
}

fn as_str<'v>(value: &'v Value, path: &Path<'_>) -> Result<&'v str, AdapterError> {
    value
        .as_str()
        .ok_or_else(|| wrong_type(path, "string", value))
}

fn as_bool(value: &Value, path: &Path<'_>) -> Result<bool, AdapterError> {
    value
        .as_bool()
        .ok_or_else(|| wrong_type(path, "boolean", value))
}

/// A JSON integer that fits `i64`. Fractions are [`AdapterError::WrongType`]; integers beyond
/// `i64` are [`AdapterError::InvalidField`].
fn as_int(value: &Value, path: &Path<'_>) -> Result<i64, AdapterError> {
    match value {
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Ok(i)
            } else if n.is_u64() {
                Err(invalid(path, format!("{n} is out of range")))
            } else {
                Err(wrong_type(path, "integer", value))
            }
        }
        other => Err(wrong_type(path, "integer", other)),
    }
}

/// Checks the shared rules for ids and SKUs: not blank, at most `max` bytes, no control chars.
fn check_text(s: &str, what: &str, max: usize, path: &Path<'_>) -> Result<(), AdapterError> {
    if s.trim().is_empty() {
        return Err(invalid(path, format!("{what} is empty")));
    }
    if s.len() > max {
        return Err(invalid(
            path,
            format!("{what} is {} bytes, more than the limit of {max}", s.len()),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(invalid(path, format!("{what} contains control characters")));
    }
    Ok(())
}

/// An id (order or line): a string, or a non-negative JSON integer written in decimal.
fn id_value(value: &Value, what: &str, path: &Path<'_>) -> Result<String, AdapterError> {
    let id = match value {
        Value::String(s) => s.clone(),
        Value::Number(n) if n.is_u64() => n.to_string(),
        Value::Number(n) if n.is_i64() => {
            return Err(invalid(path, format!("{what} {n} is negative")))
        }
        other => return Err(wrong_type(path, "string or non-negative integer", other)),
    };
    check_text(&id, what, MAX_ID_BYTES, path)?;
    Ok(id)
}

/// A required id field `key` of the object at `path`.
fn required_id(
    map: &Map<String, Value>,
    key: &str,
    what: &str,
    path: &Path<'_>,
) -> Result<String, AdapterError> {
    id_value(required(map, key, path)?, what, &path.key(key))
}

/// A required SKU field `key` of the object at `path`.
fn required_sku(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<String, AdapterError> {
    let sku = as_str(required(map, key, path)?, &path.key(key))?;
    check_text(sku, "SKU", MAX_SKU_BYTES, &path.key(key))?;
    Ok(sku.to_owned())
}

/// A quantity in `min..=MAX_QUANTITY` (`min` is 0 or 1).
fn check_quantity(quantity: i64, min: i64, path: &Path<'_>) -> Result<i64, AdapterError> {
    if quantity < min {
        let what = if quantity < 0 {
            format!("quantity {quantity} is negative")
        } else {
            "quantity is 0".to_owned()
        };
        return Err(invalid(
            path,
            format!("{what}; expected {min} to {MAX_QUANTITY}"),
        ));
    }
    if quantity > MAX_QUANTITY {
        return Err(invalid(
            path,
            format!("quantity {quantity} is more than the limit of {MAX_QUANTITY}"),
        ));
    }
    Ok(quantity)
}

/// A required integer quantity field `key` of the object at `path`, in `min..=MAX_QUANTITY`.
fn required_quantity(
    map: &Map<String, Value>,
    key: &str,
    min: i64,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    let at = path.key(key);
    check_quantity(as_int(required(map, key, path)?, &at)?, min, &at)
}

/// A point in time: an integer (epoch milliseconds) or an RFC 3339 string
/// (`2021-12-31T19:00:00-05:00`, `2019-05-07T15:42:57.058Z`), as epoch ms UTC.
fn timestamp(value: &Value, path: &Path<'_>) -> Result<i64, AdapterError> {
    match value {
        Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .map(|t| t.timestamp_millis())
            .map_err(|e| {
                invalid(
                    path,
                    format!("{:?} is not an RFC 3339 timestamp ({e})", truncated(s)),
                )
            }),
        Value::Number(_) => as_int(value, path),
        other => Err(wrong_type(
            path,
            "RFC 3339 string or epoch-ms integer",
            other,
        )),
    }
}

/// An optional timestamp field; 0 when absent or `null`.
fn optional_timestamp(
    map: &Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<i64, AdapterError> {
    get(map, key).map_or(Ok(0), |value| timestamp(value, &path.key(key)))
}

/// An optional string field; `None` when absent or `null`.
fn optional_str<'v>(
    map: &'v Map<String, Value>,
    key: &str,
    path: &Path<'_>,
) -> Result<Option<&'v str>, AdapterError> {
    get(map, key)
        .map(|value| as_str(value, &path.key(key)))
        .transpose()
}

/// A configured channel name goes into order keys (`channel:id`) and availability keys
/// (`channel|sku`), so it may not contain either separator.
fn check_channel(channel: &str, path: &Path<'_>) -> Result<(), AdapterError> {
    check_text(channel, "channel", MAX_CHANNEL_BYTES, path)?;
    if channel.contains([':', '|']) {
        return Err(invalid(
            path,
            "channel contains ':' or '|', which separate the parts of order and availability keys",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_render_like_jq() {
        let root = Path::ROOT;
        assert_eq!(root.render(), "$");
        let payload = root.key("payload");
        let items = payload.key("line_items");
        let item = items.index(2);
        assert_eq!(
            item.key("quantity").render(),
            "payload.line_items[2].quantity"
        );
    }

    #[test]
    fn adapter_kind_round_trips() {
        for kind in AdapterKind::ALL {
            assert_eq!(kind.as_str().parse::<AdapterKind>(), Ok(kind));
            let json = serde_json::to_string(&kind).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            assert_eq!(serde_json::from_str::<AdapterKind>(&json).ok(), Some(kind));
        }
        let err = "Shopify".parse::<AdapterKind>();
        assert!(matches!(err, Err(AdapterError::UnknownAdapter { .. })));
        assert_eq!(err.err().map(|e| e.kind()), Some("unknown_adapter"));
    }

    #[test]
    fn error_kinds_are_listed() {
        let samples = [
            AdapterError::PayloadTooLarge { size: 2, limit: 1 },
            AdapterError::BadJson {
                message: String::new(),
                line: 1,
                column: 1,
            },
            AdapterError::MissingField {
                path: String::new(),
            },
            AdapterError::WrongType {
                path: String::new(),
                expected: "",
                found: "",
            },
            AdapterError::InvalidField {
                path: String::new(),
                reason: String::new(),
            },
            AdapterError::NoLines {
                path: String::new(),
            },
            AdapterError::TooManyLines {
                path: String::new(),
                count: 0,
                limit: 0,
            },
            AdapterError::DuplicateLineId {
                path: String::new(),
                line_id: String::new(),
            },
            AdapterError::UnsupportedPayload {
                path: String::new(),
                reason: String::new(),
            },
            AdapterError::InconsistentPayload {
                path: String::new(),
                reason: String::new(),
            },
            AdapterError::UnknownAdapter {
                name: String::new(),
            },
            AdapterError::UnknownChannel {
                channel: String::new(),
            },
        ];
        let kinds: Vec<&str> = samples.iter().map(AdapterError::kind).collect();
        assert_eq!(kinds, AdapterError::KINDS);
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(100);
        let t = truncated(&s);
        assert!(t.len() <= 128);
        assert!(s.starts_with(&t));
    }

    #[test]
    fn timestamps() {
        let p = Path::ROOT;
        let v = Value::String("2021-12-31T19:00:00-05:00".into());
        assert_eq!(timestamp(&v, &p).ok(), Some(1_640_995_200_000));
        let v = Value::String("2019-05-07T15:42:57.058Z".into());
        assert_eq!(timestamp(&v, &p).ok(), Some(1_557_243_777_058));
        assert_eq!(
            timestamp(&Value::from(1_623_796_407_000_i64), &p).ok(),
            Some(1_623_796_407_000)
        );
        assert!(timestamp(&Value::String("yesterday".into()), &p).is_err());
        assert!(timestamp(&Value::Bool(true), &p).is_err());
    }
}
