//! The canonical retail model: every record shelfsync reads from or writes to a topic it owns.
//!
//! The types are shaped for Avro (records, unit enums, `Option` for nullable unions, `i64`
//! milliseconds for time) so that `serde` maps them one-to-one onto the `.avsc` files in
//! `schemas/avro/`. Quantities are integers. Time is epoch milliseconds (UTC).

use serde::{Deserialize, Serialize};

mod lines;
pub use lines::{LineCommand, LineOutcome, LineResult, OrderSummary, NO_STOCK_MARKER_LINE_ID};

/// Builds the order key `"channel:channel_order_id"` used to key orders on every topic.
pub fn order_key(channel: &str, channel_order_id: &str) -> String {
    let mut key = String::with_capacity(channel.len() + 1 + channel_order_id.len());
    key.push_str(channel);
    key.push(':');
    key.push_str(channel_order_id);
    key
}

/// Builds the availability key `"channel|sku"` used on `retail.channel.availability`.
pub fn availability_key(channel: &str, sku: &str) -> String {
    let mut key = String::with_capacity(channel.len() + 1 + sku.len());
    key.push_str(channel);
    key.push('|');
    key.push_str(sku);
    key
}

/// A stable 128-bit hash of `parts` rendered as 32 lowercase hex digits.
///
/// Each part is length-prefixed, so `["ab", "c"]` and `["a", "bc"]` hash differently. Used for
/// `event_id`s and payload fingerprints: it never changes between runs, hosts or versions.
pub fn stable_id(parts: &[&[u8]]) -> String {
    format!("{:032x}", stable_hash128(parts))
}

/// The 128-bit value behind [`stable_id`].
pub fn stable_hash128(parts: &[&[u8]]) -> u128 {
    let mut hasher = xxhash_rust::xxh3::Xxh3::new();
    for part in parts {
        hasher.update(&(part.len() as u64).to_le_bytes());
        hasher.update(part);
    }
    hasher.digest128()
}

/// Who ships an order line, and so whose stock it takes.
///
/// Read from the marketplace payload by the adapters: Amazon `FulfillmentChannel` `AFN` (or the
/// 2026-01-01 API's `fulfillment.fulfilledBy` `AMAZON`), Walmart `shipNode.type` `WFSFulfilled`,
/// eBay `lineItems[].program.fulfillmentProgram.fulfilledBy` `EBAY`, and a Shopify line whose
/// `fulfillment_service` is not one of the channel's own fulfilment services are
/// [`MARKETPLACE`](Self::MARKETPLACE). DESIGN §4: such a line reserves nothing and changes no
/// stock of ours, but still reaches the ERP marked as marketplace-fulfilled.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
#[allow(clippy::upper_case_acronyms)]
pub enum FulfilledBy {
    /// We ship it from our own locations (Amazon MFN, Walmart seller-fulfilled, Shopify
    /// `manual`): the line reserves our stock. The default, and what an older record means.
    #[default]
    MERCHANT,
    /// The marketplace or a fulfilment service that is not one of our locations ships it from
    /// stock we do not count (Amazon FBA, Walmart WFS, eBay fulfilment, a Shopify third-party
    /// fulfilment service).
    MARKETPLACE,
}

/// Why an adapter left a payload line out of [`Order::lines`] (it is in
/// [`Order::skipped_lines`] instead).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum SkipReason {
    /// The line has no SKU (or an empty one): a custom item, a tip, a fee. Nothing to reserve.
    NO_SKU,
    /// The line sells a gift card (Shopify `gift_card: true`): no stock behind it.
    GIFT_CARD,
    /// The line needs no shipping (Shopify `requires_shipping: false`): tips, shipping
    /// protection, warranties, digital goods, services.
    NON_PHYSICAL,
}

/// A payload line that carries no stock, kept so that it can be counted and shown to the ERP.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedLine {
    /// The channel's line id.
    pub line_id: String,
    /// The SKU when the line has one (gift cards and non-physical items may), else `None`.
    pub sku: Option<String>,
    /// Units on the line as the channel reports them (0 when it does not say).
    pub quantity: i64,
    /// Why it carries no stock.
    pub reason: SkipReason,
}

/// One line of a canonical order.
///
/// Money is exact: `unit_price` and `line_total` are decimal strings in plain notation
/// (`"29.99"`, `"8.975"`, `"1500"`), exactly the amount the marketplace wrote (trailing zeros
/// kept), never a float. A decimal string needs no per-currency exponent table (Amazon's own
/// examples carry JPY amounts with two decimals), and the ERP parses it into its own decimal
/// type. `currency` is the ISO 4217 code of both.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The channel's own line id (Shopify line item id, Amazon `OrderItemId`, Walmart `lineNumber`).
    pub line_id: String,
    /// The seller SKU the line sells.
    pub sku: String,
    /// Units ordered; always ≥ 1.
    pub quantity: i64,
    /// Who ships the line; [`FulfilledBy::MARKETPLACE`] lines hold none of our stock.
    #[serde(default)]
    pub fulfilled_by: FulfilledBy,
    /// Units the marketplace reports already shipped (0 when it does not say), at most
    /// `quantity`.
    #[serde(default)]
    pub shipped_quantity: i64,
    /// Price of one unit as a decimal string, when the payload has it (or it follows exactly
    /// from a line total).
    #[serde(default)]
    pub unit_price: Option<String>,
    /// Price of the whole line (unit price × quantity, before order-level discounts) as a
    /// decimal string, when the payload has it.
    #[serde(default)]
    pub line_total: Option<String>,
    /// ISO 4217 currency of `unit_price` and `line_total`.
    #[serde(default)]
    pub currency: Option<String>,
}

impl OrderLine {
    /// A merchant-fulfilled line with no price information: what every field added after the
    /// first schema version defaults to.
    pub fn new(line_id: impl Into<String>, sku: impl Into<String>, quantity: i64) -> Self {
        Self {
            line_id: line_id.into(),
            sku: sku.into(),
            quantity,
            fulfilled_by: FulfilledBy::MERCHANT,
            shipped_quantity: 0,
            unit_price: None,
            line_total: None,
            currency: None,
        }
    }
}

/// A canonical order: what every channel adapter produces from a raw marketplace payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// The sales channel name as configured in the topology (e.g. `amazon`).
    pub channel: String,
    /// The channel's order id (Shopify order id, Amazon `AmazonOrderId`, Walmart `purchaseOrderId`).
    pub channel_order_id: String,
    /// True once the buyer has paid (holds become hard reservations).
    pub paid: bool,
    /// True when the channel reports the order cancelled.
    pub cancelled: bool,
    /// When the buyer placed the order, epoch ms (0 when the channel does not say).
    pub placed_at: i64,
    /// The order's lines that carry stock, in the channel's order.
    pub lines: Vec<OrderLine>,
    /// The raw delivery's id (webhook id); not part of the order's content.
    pub delivery_id: String,
    /// When shelfsync received the delivery, epoch ms; not part of the order's content.
    pub received_at: i64,
    /// True when the marketplace's order status says the whole order has already shipped or
    /// been delivered (Amazon `Shipped`, Shopify `fulfillment_status: fulfilled`, Walmart every
    /// line `Shipped`/`Delivered`, eBay `orderFulfillmentStatus: FULFILLED`). DESIGN §4: an order
    /// first seen already shipped reserves nothing; the ERP's shipment lowers on-hand.
    #[serde(default)]
    pub already_shipped: bool,
    /// True for a marketplace test or sandbox order (Shopify `test: true`, the generic shape's
    /// `test`). Skipped by default per channel (`skip_test_orders` in the topology).
    #[serde(default)]
    pub test: bool,
    /// ISO 4217 currency of `total`, when the payload has it.
    #[serde(default)]
    pub currency: Option<String>,
    /// What the buyer pays for the whole order (items, shipping, tax, less discounts) as a
    /// decimal string, when the payload has it.
    #[serde(default)]
    pub total: Option<String>,
    /// Payload lines that carry no stock (no SKU, gift cards, tips, shipping protection),
    /// left out of `lines` so that no operator can reserve them; counted by the pipeline.
    ///
    /// Decision: skipped lines are a list of their own rather than a flag on [`OrderLine`], so
    /// that code which iterates `lines` (dedupe, reservation) cannot forget the flag and
    /// reserve a tip; the ERP still sees them here.
    #[serde(default)]
    pub skipped_lines: Vec<SkippedLine>,
}

impl Order {
    /// The order key, `"channel:channel_order_id"`.
    pub fn key(&self) -> String {
        order_key(&self.channel, &self.channel_order_id)
    }

    /// The payload fingerprint used for deduplication: a hash of the order's content without
    /// `delivery_id` and `received_at`, so a redelivery of the same content has the same print.
    ///
    /// Fields added after the first schema version (fulfilment, shipped quantities, prices,
    /// `already_shipped`, `test`, totals, skipped lines) enter the hash only when they differ
    /// from their defaults, so an order without them keeps the print it had before they
    /// existed and a stored fingerprint still recognises its repeat.
    pub fn fingerprint(&self) -> u128 {
        let mut parts: Vec<Vec<u8>> = vec![
            self.channel.as_bytes().to_vec(),
            self.channel_order_id.as_bytes().to_vec(),
            vec![u8::from(self.paid), u8::from(self.cancelled)],
            self.placed_at.to_le_bytes().to_vec(),
        ];
        for line in &self.lines {
            parts.push(line.line_id.as_bytes().to_vec());
            parts.push(line.sku.as_bytes().to_vec());
            parts.push(line.quantity.to_le_bytes().to_vec());
        }
        let mut extra: Vec<Vec<u8>> = Vec::new();
        for (i, line) in self.lines.iter().enumerate() {
            let defaults = line.fulfilled_by == FulfilledBy::MERCHANT
                && line.shipped_quantity == 0
                && line.unit_price.is_none()
                && line.line_total.is_none()
                && line.currency.is_none();
            if defaults {
                continue;
            }
            extra.push((i as u64).to_le_bytes().to_vec());
            extra.push(vec![line.fulfilled_by as u8]);
            extra.push(line.shipped_quantity.to_le_bytes().to_vec());
            for text in [&line.unit_price, &line.line_total, &line.currency] {
                extra.push(optional_bytes(text));
            }
        }
        if self.already_shipped || self.test || self.currency.is_some() || self.total.is_some() {
            extra.push(b"order".to_vec());
            extra.push(vec![u8::from(self.already_shipped), u8::from(self.test)]);
            extra.push(optional_bytes(&self.currency));
            extra.push(optional_bytes(&self.total));
        }
        for skipped in &self.skipped_lines {
            extra.push(b"skipped".to_vec());
            extra.push(skipped.line_id.as_bytes().to_vec());
            extra.push(optional_bytes(&skipped.sku));
            extra.push(skipped.quantity.to_le_bytes().to_vec());
            extra.push(vec![skipped.reason as u8]);
        }
        if !extra.is_empty() {
            // A marker no earlier print has, then the new content.
            parts.push(b"\x00v2".to_vec());
            parts.extend(extra);
        }
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        stable_hash128(&refs)
    }
}

/// `None` → one byte 0; `Some(s)` → 1 then the bytes of `s` (so `None` ≠ `Some("")`).
fn optional_bytes(text: &Option<String>) -> Vec<u8> {
    match text {
        None => vec![0],
        Some(s) => {
            let mut out = Vec::with_capacity(1 + s.len());
            out.push(1);
            out.extend_from_slice(s.as_bytes());
            out
        }
    }
}

/// How an ERP inventory record changes on-hand.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum InventoryChangeKind {
    /// `quantity` is the absolute on-hand at the position.
    SNAPSHOT,
    /// `quantity` is a signed delta to on-hand.
    ADJUSTMENT,
}

/// Why an ERP adjustment happened; `SHIPMENT` consumes the referenced order line's reservation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum AdjustmentReason {
    /// Goods received into the location.
    RECEIPT,
    /// Goods shipped for an order (references `order_key` and `line_id`).
    SHIPMENT,
    /// A customer return put back into stock.
    RETURN,
    /// A count correction, damage or shrinkage.
    CORRECTION,
    /// Anything else.
    OTHER,
}

/// An ERP stock change for one position (SKU, location), from `retail.erp.inventory`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryChange {
    /// The SKU.
    pub sku: String,
    /// The location (warehouse, store) id.
    pub location: String,
    /// Snapshot (absolute) or adjustment (delta).
    pub kind: InventoryChangeKind,
    /// Absolute on-hand for a snapshot, signed delta for an adjustment.
    pub quantity: i64,
    /// The ERP's sequence number, monotonic per position, shared by snapshots and adjustments.
    pub erp_sequence: i64,
    /// Why an adjustment happened; `None` for snapshots.
    pub reason: Option<AdjustmentReason>,
    /// For a `SHIPMENT`: the order key whose line shipped.
    pub order_key: Option<String>,
    /// For a `SHIPMENT`: the shipped line id.
    pub line_id: Option<String>,
    /// When the ERP made the change, epoch ms.
    pub event_time: i64,
}

/// A per-channel override in the product master.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelOverride {
    /// Channel name.
    pub channel: String,
    /// False stops the SKU on this channel (publishes 0).
    pub enabled: bool,
    /// Replaces the product's `safety_stock_units` on this channel.
    pub safety_stock_units: Option<i64>,
    /// Replaces the product's `safety_stock_pct` on this channel.
    pub safety_stock_pct: Option<i64>,
    /// Replaces the safety stock percentage with an exact decimal (`"12.5"`, at most two
    /// decimal places); wins over `safety_stock_pct`.
    #[serde(default)]
    pub safety_stock_percent: Option<String>,
    /// Replaces the channel's `share_pct` for this SKU: an exact decimal (`"12.5"`).
    #[serde(default)]
    pub share_pct: Option<String>,
    /// Replaces the channel's `buffer` for this SKU.
    #[serde(default)]
    pub buffer: Option<i64>,
    /// Replaces the channel's `max_qty` for this SKU.
    #[serde(default)]
    pub max_qty: Option<i64>,
    /// Replaces the channel's `min_publish` for this SKU.
    #[serde(default)]
    pub min_publish: Option<i64>,
}

/// A product master record from `retail.erp.products`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProductChange {
    /// The SKU.
    pub sku: String,
    /// An inactive SKU publishes 0 on every channel.
    pub active: bool,
    /// Fixed safety stock units held back from every channel.
    pub safety_stock_units: i64,
    /// Safety stock as a whole percentage (0–100) of total on-hand, rounded up.
    pub safety_stock_pct: i64,
    /// Per-channel overrides.
    pub channel_overrides: Vec<ChannelOverride>,
    /// The ERP's sequence number for this SKU's product record; stale ones are ignored.
    pub erp_sequence: i64,
    /// When the ERP made the change, epoch ms.
    pub event_time: i64,
    /// The safety stock percentage as an exact decimal (`"12.5"`, `"0.25"`, at most two
    /// decimal places); when set it wins over the whole `safety_stock_pct`.
    #[serde(default)]
    pub safety_stock_percent: Option<String>,
}

/// What an [`InventoryCommand`] asks the inventory stage to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum CommandKind {
    /// Apply an ERP stock change (`inventory` is set).
    INVENTORY,
    /// Apply a product master change (`product` is set).
    PRODUCT,
    /// Reserve an order line (`line` is set).
    RESERVE,
    /// Release an order line (`line` is set).
    RELEASE,
}

/// A record on `<app>-inventory-commands`, keyed by SKU.
///
/// Exactly one of `inventory`, `product`, `line` is set, as `kind` says (Avro has no tagged
/// unions of records with names we control, so the shape is flat).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryCommand {
    /// What to do.
    pub kind: CommandKind,
    /// The SKU (the record key).
    pub sku: String,
    /// Set for `INVENTORY`.
    pub inventory: Option<InventoryChange>,
    /// Set for `PRODUCT`.
    pub product: Option<ProductChange>,
    /// Set for `RESERVE` and `RELEASE`.
    pub line: Option<LineCommand>,
}

impl InventoryCommand {
    /// Wraps an ERP stock change.
    pub fn inventory(change: InventoryChange) -> Self {
        Self {
            kind: CommandKind::INVENTORY,
            sku: change.sku.clone(),
            inventory: Some(change),
            product: None,
            line: None,
        }
    }
    /// Wraps a product master change.
    pub fn product(change: ProductChange) -> Self {
        Self {
            kind: CommandKind::PRODUCT,
            sku: change.sku.clone(),
            inventory: None,
            product: Some(change),
            line: None,
        }
    }
    /// Wraps a line reservation.
    pub fn reserve(line: LineCommand) -> Self {
        Self {
            kind: CommandKind::RESERVE,
            sku: line.sku.clone(),
            inventory: None,
            product: None,
            line: Some(line),
        }
    }
    /// Wraps a line release.
    pub fn release(line: LineCommand) -> Self {
        Self {
            kind: CommandKind::RELEASE,
            sku: line.sku.clone(),
            inventory: None,
            product: None,
            line: Some(line),
        }
    }
}

/// A record on `retail.channel.availability`, keyed `"channel|sku"`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelAvailability {
    /// Deterministic id: hash of channel + SKU + version.
    pub event_id: String,
    /// Channel.
    pub channel: String,
    /// SKU.
    pub sku: String,
    /// Absolute quantity to publish on the channel.
    pub quantity: i64,
    /// Per-(channel, SKU) version; only grows.
    pub version: i64,
    /// Stream time of the step that produced it, epoch ms.
    pub event_time: i64,
}

/// An order's status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, PartialOrd, Ord)]
#[allow(clippy::upper_case_acronyms, non_camel_case_types)]
pub enum OrderStatusCode {
    /// All lines reserved.
    ACCEPTED,
    /// Shortfall backordered, nothing rejected.
    BACKORDERED,
    /// Some lines rejected.
    PARTIALLY_ACCEPTED,
    /// All lines rejected.
    REJECTED,
    /// The channel cancelled the order.
    CANCELLED,
}

/// A line of a validated order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedLine {
    /// Line id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Units ordered.
    pub quantity: i64,
    /// Units held.
    pub reserved: i64,
    /// Units backordered.
    pub backordered: i64,
    /// Line outcome.
    pub outcome: LineOutcome,
    /// Who ships the line (the order line's [`OrderLine::fulfilled_by`]).
    #[serde(default)]
    pub fulfilled_by: FulfilledBy,
    /// Price of one unit, decimal string (the order line's [`OrderLine::unit_price`]).
    #[serde(default)]
    pub unit_price: Option<String>,
    /// Price of the whole line, decimal string (the order line's [`OrderLine::line_total`]).
    #[serde(default)]
    pub line_total: Option<String>,
    /// ISO 4217 currency of the prices.
    #[serde(default)]
    pub currency: Option<String>,
}

/// A record on `retail.erp.orders.validated`, keyed by order key: one per non-rejected revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidatedOrder {
    /// Deterministic id: hash of order key + revision.
    pub event_id: String,
    /// Order key.
    pub order_key: String,
    /// Channel.
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision.
    pub revision: i32,
    /// Status of this revision.
    pub status: OrderStatusCode,
    /// Whether the order is paid.
    pub paid: bool,
    /// When the order was placed, epoch ms.
    pub placed_at: i64,
    /// Lines in line-id order (released lines excluded).
    pub lines: Vec<ValidatedLine>,
    /// ISO 4217 currency of `total` (the order's [`Order::currency`]).
    #[serde(default)]
    pub currency: Option<String>,
    /// What the buyer pays for the whole order, decimal string (the order's [`Order::total`]).
    #[serde(default)]
    pub total: Option<String>,
    /// The marketplace reported the order shipped when shelfsync first saw it (nothing was
    /// reserved for it).
    #[serde(default)]
    pub already_shipped: bool,
    /// Lines without stock (gift cards, tips, custom items) the ERP books but nobody reserves.
    #[serde(default)]
    pub skipped_lines: Vec<SkippedLine>,
}

/// A record on `retail.channel.order-status`, keyed by order key: one per revision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderStatus {
    /// Deterministic id: hash of order key + revision + status.
    pub event_id: String,
    /// Order key.
    pub order_key: String,
    /// Channel.
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision.
    pub revision: i32,
    /// Status.
    pub status: OrderStatusCode,
    /// Lines rejected in this revision.
    pub rejected_lines: i32,
    /// Lines backordered in this revision.
    pub backordered_lines: i32,
}

/// A record on `retail.dlq`: the original bytes and why they were refused.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// The stage that refused the record.
    pub stage: String,
    /// Source topic.
    pub topic: String,
    /// Source partition.
    pub partition: i32,
    /// Source offset.
    pub offset: i64,
    /// Original key bytes, if any.
    // Serialized as bytes (not a sequence of integers) so that it maps onto Avro `bytes`.
    #[serde(default, with = "apache_avro::serde_avro_bytes_opt")]
    pub key: Option<Vec<u8>>,
    /// Original value bytes, if any.
    #[serde(default, with = "apache_avro::serde_avro_bytes_opt")]
    pub value: Option<Vec<u8>>,
    /// Error class (e.g. `decode`, `invalid`, `unknown_channel`).
    pub error_kind: String,
    /// Human-readable reason, naming the field where it can.
    pub reason: String,
    /// When it was dead-lettered (stream time of the stage), epoch ms.
    pub event_time: i64,
}

/// A record on `<application_id>-instances`, keyed by instance id: where a running instance's
/// HTTP endpoints answer and which tasks it holds (see `InstanceAnnouncement.avsc`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceAnnouncement {
    /// The instance's id.
    pub instance_id: String,
    /// Base URL of its HTTP endpoints, as other instances reach it.
    pub http_url: String,
    /// When it was written, epoch ms.
    pub announced_at: i64,
    /// Validity without a newer announcement, ms.
    pub ttl_ms: i64,
    /// The tasks it holds.
    pub tasks: Vec<TaskClaim>,
}

/// A task an instance holds, in an [`InstanceAnnouncement`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskClaim {
    /// Task name, e.g. `inventory-3`.
    pub task: String,
    /// When the instance took it, epoch ms (the later of two claims wins).
    pub since: i64,
    /// Whether it is still opening (restoring its state, or about to resume).
    pub opening: bool,
}

/// The raw-order topic envelope (JSON): `{channel, delivery_id, received_at, payload}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RawOrderEnvelope {
    /// Channel name (e.g. `shopify`).
    pub channel: String,
    /// The delivery's id (e.g. Shopify `X-Shopify-Webhook-Id`).
    pub delivery_id: String,
    /// When it was received, epoch ms.
    pub received_at: i64,
    /// The marketplace's own payload, untouched.
    pub payload: serde_json::Value,
}
