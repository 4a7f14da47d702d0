//! Channel adapters: raw marketplace payloads → canonical [`Order`].
//!
//! The raw-orders topic (`retail.channel.orders.raw`) carries one JSON envelope per record,
//! [`RawOrderEnvelope`] `{channel, delivery_id, received_at, payload}`, where `payload` is the
//! marketplace's own body, untouched. The normalize stage:
//!
//! 1. decodes the record with [`parse_envelope`] (size limit, JSON, envelope fields);
//! 2. looks the envelope's `channel` up in the topology, which names an [`AdapterKind`]
//!    (so `ebay` and `store-nyc` can both use the [generic](AdapterKind::Generic) shape);
//! 3. calls [`to_order_with`] with that channel's [`AdapterConfig`] (the kind, and for Shopify
//!    which fulfilment services are our own locations) and the configured channel name.
//!
//! [`normalize_with`] does all three with a lookup closure ([`normalize`] and [`to_order`] take
//! just the kind and use the default settings). Every failure is an [`AdapterError`] whose
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
//!   [`MAX_LINES`] lines (stock lines and skipped lines together).
//! - A line that carries no stock (no SKU or an empty one, a gift card, a line that needs no
//!   shipping such as a tip or shipping protection) is not refused and not in `lines`: it is in
//!   [`Order::skipped_lines`](crate::model::Order::skipped_lines) with its
//!   [`SkipReason`](crate::model::SkipReason), and the rest of the order goes on.
//! - Every line says who ships it ([`FulfilledBy`](crate::model::FulfilledBy)), how many units the
//!   marketplace reports shipped, and its price and currency where the payload has them (exact
//!   decimal strings, see the `money` module); the order has its currency and total where the
//!   payload has them, `already_shipped` when the marketplace's order status says shipped or
//!   delivered, and `test` for a marketplace test order.
//! - A line the channel reports as removed or cancelled while the rest of the order stands is
//!   left out of the order; dedupe then releases its hold like any line that disappeared.
//! - When every line is removed or cancelled, the order is `cancelled`.
//! - A cancelled order lists its lines with the quantities the buyer ordered (lines whose ordered
//!   quantity the channel reports as 0 are left out), and may have no lines at all: a
//!   cancellation needs only the order key. An order that is not cancelled has at least one line
//!   or one skipped line.
//! - `placed_at` is epoch ms UTC, 0 when the payload does not say.
//!
//! # Paid and cancelled, per channel
//!
//! | adapter | `paid` | `cancelled` |
//! |---|---|---|
//! | Shopify | `financial_status` ∈ {`authorized`, `paid`, `partially_paid`, `partially_refunded`, `refunded`} | `cancelled_at` is set, or every line's `current_quantity` is 0 |
//! | Amazon | `OrderStatus` ∈ {`Unshipped`, `PartiallyShipped`, `Shipped`, `InvoiceUnconfirmed`} (2026-01-01 API: `UNSHIPPED`, `PARTIALLY_SHIPPED`, `SHIPPED`) | `OrderStatus` is `Canceled` (`CANCELLED`), or every item is cancelled |
//! | Walmart | always (Walmart takes the buyer's payment before it releases a purchase order) | every line's statuses are `Cancelled` |
//! | eBay | `orderPaymentStatus` ∈ {`PAID`, `PARTIALLY_REFUNDED`, `FULLY_REFUNDED`} | `cancelStatus.cancelState` is `CANCELED` (a requested cancellation is not one) |
//! | Generic | the payload's `paid` | the payload's `cancelled` |
//!
//! The accepted payload shapes, field by field, are documented in the adapter modules
//! [`shopify`], [`amazon`], [`walmart`], [`ebay`] and [`generic`] (public for their documentation
//! only: everything is reached through [`to_order_with`]).

pub mod amazon;
pub mod ebay;
mod error;
pub mod generic;
mod json;
mod money;
pub mod shopify;
pub mod walmart;

pub use error::AdapterError;
use json::*;

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::model::{FulfilledBy, Order, OrderLine, RawOrderEnvelope, SkippedLine};

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
/// an adapter (`store-nyc` and `webshop` both [`Generic`](Self::Generic)). Spelled in snake_case
/// in config files and on the wire (`"shopify"`, `"amazon"`, `"walmart"`, `"ebay"`, `"generic"`).
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
    /// (own web shops, stores, bridges); see [`generic`].
    Generic,
    /// eBay Fulfillment API orders (`getOrder`, one element of a `getOrders` page); see [`ebay`].
    Ebay,
}

impl AdapterKind {
    /// Every adapter, in a fixed order.
    pub const ALL: [AdapterKind; 5] = [
        Self::Shopify,
        Self::Amazon,
        Self::Walmart,
        Self::Generic,
        Self::Ebay,
    ];

    /// The adapter's name as written in config: `"shopify"`, `"amazon"`, `"walmart"`,
    /// `"generic"`, `"ebay"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Amazon => "amazon",
            Self::Walmart => "walmart",
            Self::Generic => "generic",
            Self::Ebay => "ebay",
        }
    }
}

/// The fulfilment services a Shopify channel counts as its own locations when its topology
/// says nothing: `manual`, Shopify's name for "the merchant ships it".
pub const DEFAULT_OWN_FULFILLMENT_SERVICES: [&str; 1] = ["manual"];

/// How one channel's payloads are read: the adapter, and the channel settings an adapter needs.
///
/// The topology builds one per channel; [`AdapterConfig::new`] gives the defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdapterConfig {
    /// Which adapter parses the payloads.
    pub kind: AdapterKind,
    /// Shopify only: the line `fulfillment_service` handles that are our own locations (their
    /// lines are [`FulfilledBy::MERCHANT`]); any other service is a third party
    /// ([`FulfilledBy::MARKETPLACE`]). A line without `fulfillment_service` is ours.
    pub own_fulfillment_services: BTreeSet<String>,
}

impl AdapterConfig {
    /// The adapter `kind` with the default settings ([`DEFAULT_OWN_FULFILLMENT_SERVICES`]).
    pub fn new(kind: AdapterKind) -> Self {
        Self {
            kind,
            own_fulfillment_services: DEFAULT_OWN_FULFILLMENT_SERVICES
                .iter()
                .map(|s| (*s).to_owned())
                .collect(),
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
    to_order_with(&AdapterConfig::new(kind), channel, envelope)
}

/// [`to_order`] with a channel's full [`AdapterConfig`] (what the normalize stage calls).
///
/// # Errors
///
/// As [`to_order`].
pub fn to_order_with(
    config: &AdapterConfig,
    channel: &str,
    envelope: &RawOrderEnvelope,
) -> Result<Order, AdapterError> {
    check_channel(channel, &Path::ROOT.key("channel"))?;
    let path = Path::ROOT.key("payload");
    let parsed = match config.kind {
        AdapterKind::Shopify => shopify::parse(&envelope.payload, config, &path)?,
        AdapterKind::Amazon => amazon::parse(&envelope.payload, &path)?,
        AdapterKind::Walmart => walmart::parse(&envelope.payload, &path)?,
        AdapterKind::Generic => generic::parse(&envelope.payload, &path)?,
        AdapterKind::Ebay => ebay::parse(&envelope.payload, &path)?,
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

/// [`normalize`] with each channel's full [`AdapterConfig`]: `resolve` maps the envelope's
/// channel to its settings (the topology's channel map).
///
/// # Errors
///
/// As [`normalize`].
pub fn normalize_with<'c, F>(bytes: &[u8], resolve: F) -> Result<Order, AdapterError>
where
    F: FnOnce(&str) -> Option<&'c AdapterConfig>,
{
    let envelope = parse_envelope(bytes)?;
    let config = resolve(&envelope.channel)
        .ok_or_else(|| AdapterError::unknown_channel(&envelope.channel))?;
    to_order_with(config, &envelope.channel, &envelope)
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
    /// Who ships it.
    fulfilled_by: FulfilledBy,
    /// Units the channel reports shipped.
    shipped: i64,
    /// Price of one unit, when the payload has it.
    unit_price: Option<String>,
    /// Price of the `ordered` units, when the payload has it.
    line_total: Option<String>,
    /// Currency of the prices.
    currency: Option<String>,
}

impl RawLine {
    /// A merchant-fulfilled line without shipped units or prices.
    fn new(line_id: String, sku: String, ordered: i64, remaining: i64) -> Self {
        Self {
            line_id,
            sku,
            ordered,
            remaining,
            fulfilled_by: FulfilledBy::MERCHANT,
            shipped: 0,
            unit_price: None,
            line_total: None,
            currency: None,
        }
    }

    /// The canonical line with `quantity` units: shipped units capped at the quantity, and the
    /// missing one of unit price and line total derived exactly from the other (a line total
    /// is for the `ordered` units; a derived total is for `quantity`).
    fn into_line(self, quantity: i64) -> OrderLine {
        let unit_price = self.unit_price.or_else(|| {
            self.line_total
                .as_deref()
                .and_then(|total| money::divide_exact(total, self.ordered))
        });
        let line_total = match (&self.line_total, &unit_price) {
            (Some(total), _) if quantity == self.ordered => Some(total.clone()),
            (_, Some(unit)) => money::multiply_exact(unit, quantity),
            (total, None) => total.clone(),
        };
        OrderLine {
            line_id: self.line_id,
            sku: self.sku,
            quantity,
            fulfilled_by: self.fulfilled_by,
            shipped_quantity: self.shipped.clamp(0, quantity),
            unit_price,
            line_total,
            currency: self.currency,
        }
    }
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
    /// Lines that carry no stock.
    skipped: Vec<SkippedLine>,
    /// Path of the lines array, for [`AdapterError::NoLines`].
    lines_path: String,
    /// The channel's order status says shipped or delivered.
    already_shipped: bool,
    /// A marketplace test order.
    test: bool,
    /// Currency of `total`.
    currency: Option<String>,
    /// What the buyer pays for the whole order.
    total: Option<String>,
}

impl Parsed {
    /// An order with the given lines and no shipped, test or money information.
    fn new(
        order_id: String,
        paid: bool,
        cancelled: bool,
        placed_at: i64,
        lines: LineSet,
        lines_path: String,
    ) -> Self {
        Self {
            order_id,
            paid,
            cancelled,
            placed_at,
            lines: lines.lines,
            skipped: lines.skipped,
            lines_path,
            already_shipped: false,
            test: false,
            currency: None,
            total: None,
        }
    }

    /// Applies the rules in the module docs: removed lines are left out, an order whose lines are
    /// all removed is cancelled, a cancelled order keeps its ordered quantities.
    fn into_order(self, channel: &str, envelope: &RawOrderEnvelope) -> Result<Order, AdapterError> {
        let all_removed =
            !self.lines.is_empty() && self.lines.iter().all(|line| line.remaining <= 0);
        let cancelled = self.cancelled || all_removed;
        if !cancelled && self.lines.is_empty() && self.skipped.is_empty() {
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
                (quantity > 0).then(|| line.into_line(quantity))
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
            already_shipped: self.already_shipped,
            test: self.test,
            currency: self.currency,
            total: self.total,
            skipped_lines: self.skipped,
        })
    }
}

/// Collects an order's lines, refusing repeated line ids.
#[derive(Debug, Default)]
struct LineSet {
    seen: HashSet<String>,
    lines: Vec<RawLine>,
    skipped: Vec<SkippedLine>,
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
            skipped: Vec::new(),
        })
    }

    /// Adds a line without stock read at `path`.
    fn skip(&mut self, line: SkippedLine, path: &Path<'_>) -> Result<(), AdapterError> {
        if !self.seen.insert(line.line_id.clone()) {
            return Err(AdapterError::DuplicateLineId {
                path: path.render(),
                line_id: line.line_id,
            });
        }
        self.skipped.push(line);
        Ok(())
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
