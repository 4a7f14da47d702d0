//! The canonical retail model: every record shelfsync reads from or writes to a topic it owns.
//!
//! The types are shaped for Avro (records, unit enums, `Option` for nullable unions, `i64`
//! milliseconds for time) so that `serde` maps them one-to-one onto the `.avsc` files in
//! `schemas/avro/`. Quantities are integers. Time is epoch milliseconds (UTC).

use serde::{Deserialize, Serialize};

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

/// One line of a canonical order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// The channel's own line id (Shopify line item id, Amazon `OrderItemId`, Walmart `lineNumber`).
    pub line_id: String,
    /// The seller SKU the line sells.
    pub sku: String,
    /// Units ordered; always ≥ 1.
    pub quantity: i64,
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
    /// The order's lines, in the channel's order.
    pub lines: Vec<OrderLine>,
    /// The raw delivery's id (webhook id); not part of the order's content.
    pub delivery_id: String,
    /// When shelfsync received the delivery, epoch ms; not part of the order's content.
    pub received_at: i64,
}

impl Order {
    /// The order key, `"channel:channel_order_id"`.
    pub fn key(&self) -> String {
        order_key(&self.channel, &self.channel_order_id)
    }

    /// The payload fingerprint used for deduplication: a hash of the order's content without
    /// `delivery_id` and `received_at`, so a redelivery of the same content has the same print.
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
        let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
        stable_hash128(&refs)
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

/// One order line of one order revision, as sent from dedupe to inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCommand {
    /// Order key `"channel:channel_order_id"`.
    pub order_key: String,
    /// Channel of the order (decides the oversell policy).
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision, 1, 2, 3… per order key.
    pub revision: i32,
    /// How many line commands this revision has in all (the assembler waits for this many).
    pub lines_in_revision: i32,
    /// Line id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Units (ordered for a reserve, as last known for a release).
    pub quantity: i64,
    /// Whether the order is paid (hard hold) or not (soft hold with TTL).
    pub paid: bool,
    /// Whether this revision cancels the order.
    pub cancelled: bool,
    /// When the order was placed, epoch ms.
    pub placed_at: i64,
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

/// The outcome of one line command at the inventory stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum LineOutcome {
    /// The whole quantity is held.
    RESERVED,
    /// Part (or none) is held and the shortfall is backordered.
    BACKORDERED,
    /// Stock was short and the channel's policy is `reject`: nothing is held.
    REJECTED,
    /// The line's hold was released (cancellation or line removed).
    RELEASED,
}

/// A record on `<app>-line-results`, keyed by order key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineResult {
    /// Order key.
    pub order_key: String,
    /// Channel.
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision.
    pub revision: i32,
    /// How many results this revision has in all.
    pub lines_in_revision: i32,
    /// Line id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Units ordered.
    pub quantity: i64,
    /// Units held for the line after this command.
    pub reserved: i64,
    /// Units backordered.
    pub backordered: i64,
    /// Outcome.
    pub outcome: LineOutcome,
    /// Whether the order was paid.
    pub paid: bool,
    /// Whether this revision cancels the order.
    pub cancelled: bool,
    /// When the order was placed, epoch ms.
    pub placed_at: i64,
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
