//! The topology file as Rust types. The `///` comments on the fields are the user documentation.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use shelfsync_operators::config::OversellPolicy;
use shelfsync_operators::percent::Percent;
use shelfsync_schemas::adapters::AdapterKind;

use crate::defaults;
use crate::units::{duration, optional_duration, ByteSize};

/// A whole topology file: what the pipeline reads, keeps and writes.
///
/// Runtime knobs (state directory, HTTP port, log format) are not part of it: they come from
/// command-line flags and `SHELFSYNC_*` environment variables.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Topology {
    /// Names this pipeline: it is the Kafka consumer group id and the prefix of every internal
    /// topic (`<application_id>-orders`, `<application_id>-dedupe-changelog`, …). Letters, digits,
    /// `.`, `_` and `-`, at most 200 characters. Changing it starts from scratch (new group, new
    /// internal topics). Required here or in `SHELFSYNC_APPLICATION_ID`.
    pub application_id: String,
    /// How to reach Kafka.
    pub kafka: KafkaSection,
    /// Processing guarantee and epoch sizing.
    pub processing: ProcessingSection,
    /// Names, partition counts and replication of the topics.
    pub topics: TopicsSection,
    /// The order deduplication stage.
    pub dedupe: DedupeSection,
    /// The inventory stage (reservations, safety stock, channel allocation).
    pub inventory: InventorySection,
    /// The order assembly stage.
    pub assemble: AssembleSection,
    /// Stock locations (`[[locations]]`): warehouses, stores. At least one.
    pub locations: Vec<LocationSpec>,
    /// Sales channels (`[[channels]]`), in publication order. At least one.
    pub channels: Vec<ChannelSpec>,
}

/// `[kafka]`: how to reach the brokers.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSection {
    /// Comma-separated `host:port` list of brokers (librdkafka `bootstrap.servers`). Required
    /// here or in `SHELFSYNC_BOOTSTRAP_SERVERS`.
    pub bootstrap_servers: String,
    /// URL of a Confluent-compatible schema registry, for framing records in the Confluent wire
    /// format (magic byte + schema id). Not supported by `shelfsync run` yet: it refuses to start
    /// when this is set. Without it, records are Avro single-object encoded.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub schema_registry_url: Option<String>,
    /// librdkafka properties passed to every client untouched (`"security.protocol" = "SASL_SSL"`).
    /// Values are strings. Properties the pipeline sets itself to keep its guarantee
    /// (`bootstrap.servers`, `group.id`, `enable.idempotence`, `acks`, `enable.auto.commit`,
    /// `transactional.id`, `partitioner`) are refused. `SHELFSYNC_KAFKA_<NAME>` environment
    /// variables add to this table (`SHELFSYNC_KAFKA_SASL_PASSWORD` → `sasl.password`), which
    /// keeps secrets out of the file.
    pub properties: BTreeMap<String, String>,
}

/// The processing guarantee.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Guarantee {
    /// Every output takes effect once, built from an idempotent producer, per-task checkpoints
    /// and deduplication of internal hops; needs no broker transactions.
    #[default]
    EffectivelyOnce,
    /// Kafka transactions. Parsed so that a file can name it, but refused by validation: this
    /// mode is not implemented yet.
    ExactlyOnceV2,
}

/// `[processing]`: guarantee and epoch sizing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessingSection {
    /// `"effectively_once"` (default; needs only an idempotent producer). `"exactly_once_v2"`
    /// (Kafka transactions) is reserved and not implemented yet.
    pub guarantee: Guarantee,
    /// A task closes its epoch (waits for its outputs to be acknowledged, then commits state
    /// and checkpoint) at least this often, e.g. `"100ms"`. Default `"100ms"`. Longer epochs mean
    /// fewer commits but more latency and more replay after a crash.
    #[serde(with = "duration")]
    pub epoch_interval: Duration,
    /// A task also closes its epoch after this many input records. Default `10000`.
    pub epoch_max_records: i64,
    /// Memory for RocksDB (shared block cache and write buffers) across all tasks of the
    /// process, e.g. `"256MiB"`, `"1GiB"`. Default `"256MiB"`, at least `"8MiB"`.
    pub rocksdb_memory_budget: ByteSize,
    /// Where several stages write one topic (orders through dedupe and ERP changes both reach
    /// the inventory stage), the reading stage applies records in event-time order across them:
    /// it holds a record until every upstream task has passed its timestamp, at most this long
    /// (wall clock), e.g. `"2m"`. Default `"2m"`; `"0s"` applies records as they arrive. Longer
    /// keeps the order through bigger backlogs and slower upstreams; a record held to the limit
    /// is applied anyway and counted (`shelfsync_alignment_timeouts_total`).
    #[serde(with = "duration")]
    pub max_alignment_delay: Duration,
    /// How far ahead of this host's clock a record's timestamp may be, e.g. `"5m"`. Default
    /// `"5m"`. A record further ahead goes to the DLQ (`future_timestamp`) instead of moving its
    /// task's stream time: one future-dated record would otherwise expire every dedup window
    /// and soft hold of its partition at once.
    #[serde(with = "duration")]
    pub max_future_skew: Duration,
}

impl Default for ProcessingSection {
    fn default() -> Self {
        Self {
            guarantee: Guarantee::default(),
            epoch_interval: defaults::EPOCH_INTERVAL,
            epoch_max_records: defaults::EPOCH_MAX_RECORDS,
            rocksdb_memory_budget: defaults::ROCKSDB_MEMORY_BUDGET,
            max_alignment_delay: defaults::MAX_ALIGNMENT_DELAY,
            max_future_skew: defaults::MAX_FUTURE_SKEW,
        }
    }
}

/// `[topics]`: the external topics' names and every topic's partitions and replication.
///
/// Internal topics are not named here: they are `<application_id>-orders`,
/// `<application_id>-inventory-commands`, `<application_id>-line-results` and one
/// `<application_id>-<store>-changelog` per stateful stage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TopicsSection {
    /// Raw channel orders (JSON envelopes from webhooks and pollers). Default `"retail.channel.orders.raw"`.
    pub raw_orders: String,
    /// ERP stock snapshots and adjustments. Default `"retail.erp.inventory"`.
    pub erp_inventory: String,
    /// ERP product master. Default `"retail.erp.products"`.
    pub erp_products: String,
    /// Per-channel availability updates for the marketplaces. Default `"retail.channel.availability"`.
    pub availability: String,
    /// Validated orders for the ERP. Default `"retail.erp.orders.validated"`.
    pub validated_orders: String,
    /// Order status events for the channels. Default `"retail.channel.order-status"`.
    pub order_status: String,
    /// Dead letters: undecodable or invalid records with the reason. Default `"retail.dlq"`.
    pub dlq: String,
    /// Partitions of every topic not listed in `partition_overrides`. Default `6`. A stage runs
    /// one task per partition of its input, so this bounds the parallelism.
    pub partitions: i64,
    /// Partition counts per topic, by key: `raw_orders`, `erp_inventory`, `erp_products`,
    /// `orders`, `inventory_commands`, `line_results`, `availability`, `validated_orders`,
    /// `order_status`, `dlq`. A changelog always has the partition count of its stage's input.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub partition_overrides: BTreeMap<String, i64>,
    /// Replication factor of the topics shelfsync creates. Default `1` (local development); use
    /// `3` in production.
    pub replication_factor: i64,
}

impl Default for TopicsSection {
    fn default() -> Self {
        Self {
            raw_orders: defaults::RAW_ORDERS_TOPIC.to_string(),
            erp_inventory: defaults::ERP_INVENTORY_TOPIC.to_string(),
            erp_products: defaults::ERP_PRODUCTS_TOPIC.to_string(),
            availability: defaults::AVAILABILITY_TOPIC.to_string(),
            validated_orders: defaults::VALIDATED_ORDERS_TOPIC.to_string(),
            order_status: defaults::ORDER_STATUS_TOPIC.to_string(),
            dlq: defaults::DLQ_TOPIC.to_string(),
            partitions: defaults::PARTITIONS,
            partition_overrides: BTreeMap::new(),
            replication_factor: defaults::REPLICATION_FACTOR,
        }
    }
}

/// `[dedupe]`: the order deduplication stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DedupeSection {
    /// How long an order's payload fingerprints are remembered after its last revision, in
    /// stream time. A repeat inside the window is dropped. Default `"7d"`.
    #[serde(with = "duration")]
    pub window: Duration,
}

impl Default for DedupeSection {
    fn default() -> Self {
        Self {
            window: defaults::DEDUPE_WINDOW,
        }
    }
}

/// `[inventory]`: reservations, safety stock and channel allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct InventorySection {
    /// How long an unpaid order's soft reservation holds stock, in stream time, on channels
    /// that do not set their own `soft_hold_ttl`. Default `"30m"`.
    #[serde(with = "duration")]
    pub soft_hold_ttl: Duration,
    /// How long a shipped line is remembered so that late repeats are no-ops. Default `"7d"`.
    #[serde(with = "duration")]
    pub shipped_line_retention: Duration,
}

impl Default for InventorySection {
    fn default() -> Self {
        Self {
            soft_hold_ttl: defaults::SOFT_HOLD_TTL,
            shipped_line_retention: defaults::SHIPPED_LINE_RETENTION,
        }
    }
}

/// `[assemble]`: the order assembly stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AssembleSection {
    /// How long an order's assembly state is kept after its last line result. Default `"7d"`.
    #[serde(with = "duration")]
    pub retention: Duration,
}

impl Default for AssembleSection {
    fn default() -> Self {
        Self {
            retention: defaults::ASSEMBLE_RETENTION,
        }
    }
}

/// `[[locations]]`: a stock location.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LocationSpec {
    /// The location id as the ERP writes it in `retail.erp.inventory` (e.g. `"dc-east"`). Unique.
    pub id: String,
    /// A human-readable name (e.g. `"East Coast DC"`).
    pub name: String,
    /// False for stock that must not be sold (quarantine, a closed store): it counts in no
    /// channel's ATS. Default true.
    #[serde(default = "default_true", skip_serializing_if = "is_true")]
    pub sellable: bool,
}

fn default_true() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// `[[channels]]`: a sales channel and its allocation policy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChannelSpec {
    /// The channel name: the `channel` of its raw orders, the prefix of its order keys
    /// (`amazon:123-456`) and availability keys (`amazon|SKU-1`). Unique; letters, digits, `.`,
    /// `_` and `-`, at most 64 characters.
    pub name: String,
    /// Which adapter decodes its raw orders: `"shopify"`, `"amazon"`, `"walmart"`, `"ebay"` or
    /// `"generic"`.
    pub adapter: AdapterKind,
    /// Shopify channels: the line-item `fulfillment_service` handles that are our own locations
    /// (their lines reserve our stock). A line handled by any other fulfilment service (a 3PL
    /// app, Shopify Fulfillment Network) is marketplace-fulfilled and reserves nothing. Default
    /// `["manual"]` (Shopify's handle for "the merchant ships it"). Only `shopify` channels may
    /// set it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub own_fulfillment_services: Option<Vec<String>>,
    /// Whether the marketplace's test or sandbox orders (Shopify `test: true`, the generic
    /// shape's `test`) are skipped (not reserved, not sent to the ERP), counted and logged with
    /// their order key. Default `true`.
    #[serde(default = "default_skip_test_orders")]
    pub skip_test_orders: bool,
    /// How long an unpaid order's soft hold lasts on this channel, in stream time, e.g. `"4d"`.
    /// Marketplaces keep pending orders very differently (see the example topology), so each
    /// channel says its own. Default: `inventory.soft_hold_ttl`.
    #[serde(
        default,
        with = "optional_duration",
        skip_serializing_if = "Option::is_none"
    )]
    pub soft_hold_ttl: Option<Duration>,
    /// A paid order's hard hold is released after this long without a shipment (logged and
    /// counted), so that a lost shipment never pins stock for ever, e.g. `"30d"`. `"0s"` keeps
    /// hard holds until shipment or cancellation. Default `"30d"`.
    #[serde(default = "default_hard_hold_max_age", with = "duration")]
    pub hard_hold_max_age: Duration,
    /// Percentage (0–100) of available-to-sell stock offered on this channel, rounded down:
    /// a whole number or an exact decimal with at most two places (`12.5`, `"0.25"`), computed
    /// exactly. Shares of different channels are each taken from the same ATS and need not add
    /// up to 100. Default `100`.
    #[serde(default = "default_share_pct")]
    pub share_pct: PercentValue,
    /// Units held back from this channel after its share (≥ 0). Default `0`.
    #[serde(default)]
    pub buffer: i64,
    /// Upper bound on the quantity published to this channel (≥ 0). Default: no cap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_qty: Option<i64>,
    /// A computed quantity below this is published as 0, to stop selling the last few units
    /// (≥ 0). Default `0`.
    #[serde(default)]
    pub min_publish: i64,
    /// Location ids whose stock this channel may sell; each must be a declared location.
    /// Default: all locations. Reservations at other locations still count against it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eligible_locations: Option<Vec<String>>,
    /// What happens to this channel's order line when physical stock is short: `"reject"` the
    /// line (default), or `"backorder"` the shortfall.
    #[serde(default)]
    pub oversell_policy: OversellPolicy,
    /// `[channels.push]`: how `shelfsync push` sends this channel's availability to the
    /// marketplace. Absent: availability is only written to the availability topic.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub push: Option<PushSpec>,
}

fn default_share_pct() -> PercentValue {
    PercentValue::Whole(defaults::SHARE_PCT)
}

/// A percentage as the file writes it: `40`, `12.5` or `"12.5"`. Validation turns it into an
/// exact [`Percent`] (or names the field).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum PercentValue {
    /// A whole number.
    Whole(i64),
    /// A TOML float, read back through its shortest decimal form (`12.5`).
    Float(f64),
    /// A decimal string.
    Text(String),
}

impl PercentValue {
    /// The exact percentage.
    ///
    /// # Errors
    /// Why it is not a decimal between 0 and 100 with at most two places.
    pub fn percent(&self) -> Result<Percent, String> {
        match self {
            Self::Whole(v) => Percent::parse(&v.to_string()),
            Self::Float(v) => Percent::parse(&v.to_string()),
            Self::Text(v) => Percent::parse(v),
        }
    }
}

impl From<i64> for PercentValue {
    fn from(v: i64) -> Self {
        Self::Whole(v)
    }
}
fn default_skip_test_orders() -> bool {
    defaults::SKIP_TEST_ORDERS
}
fn default_hard_hold_max_age() -> Duration {
    defaults::HARD_HOLD_MAX_AGE
}

impl ChannelSpec {
    /// A channel with the given adapter and every policy at its default (100% of ATS, no
    /// buffer, cap or minimum, all locations, `reject`, no push, test orders skipped, the
    /// global soft-hold TTL, hard holds released after 30 days).
    pub fn new(name: &str, adapter: AdapterKind) -> Self {
        Self {
            name: name.to_string(),
            adapter,
            own_fulfillment_services: None,
            skip_test_orders: defaults::SKIP_TEST_ORDERS,
            soft_hold_ttl: None,
            hard_hold_max_age: defaults::HARD_HOLD_MAX_AGE,
            share_pct: PercentValue::Whole(defaults::SHARE_PCT),
            buffer: 0,
            max_qty: None,
            min_publish: 0,
            eligible_locations: None,
            oversell_policy: OversellPolicy::default(),
            push: None,
        }
    }
}

/// Which marketplace API the push sink talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PushKind {
    /// Shopify Admin API inventory levels.
    Shopify,
    /// Amazon Selling Partner API listings.
    Amazon,
    /// Walmart Marketplace inventory API.
    Walmart,
    /// eBay Inventory API.
    Ebay,
    /// A plain HTTPS webhook receiving JSON availability updates.
    Webhook,
}

impl PushKind {
    /// The name as written in the file (`"shopify"`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Shopify => "shopify",
            Self::Amazon => "amazon",
            Self::Walmart => "walmart",
            Self::Ebay => "ebay",
            Self::Webhook => "webhook",
        }
    }
}

/// `[channels.push]`: the marketplace push sink of one channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushSpec {
    /// The API: `"shopify"`, `"amazon"`, `"walmart"`, `"ebay"` or `"webhook"`.
    pub kind: PushKind,
    /// Base URL of the API (`https://…`), without credentials. Required. Plain `http://` only
    /// for a loopback host (`127.0.0.1`, `[::1]`, `localhost`): credentials travel in headers.
    #[serde(default)]
    pub endpoint: String,
    /// Requests per second (token-bucket refill rate), > 0; fractions allowed (`0.5`). Default `5.0`.
    #[serde(default = "default_push_rate")]
    pub rate_per_sec: f64,
    /// Token-bucket capacity: requests that may go out back to back (≥ 1). Default `10`.
    #[serde(default = "default_push_burst")]
    pub burst: i64,
    /// Availability updates per request where the API accepts batches (≥ 1). Default `50`.
    /// Capped at what the API takes in one call (Shopify `inventorySetQuantities` 250, eBay
    /// `bulk_update_price_quantity` 25). For `amazon` and `walmart` this is the size of a bulk
    /// feed (`JSON_LISTINGS_FEED`, Walmart inventory feed), used only while at least this many
    /// updates wait and the feed's operations are within their limits (`operation_limits`);
    /// otherwise, and for stock-outs, single-item calls go out.
    #[serde(default = "default_push_batch_size")]
    pub batch_size: i64,
    /// Name of the environment variable that holds the API credentials (e.g.
    /// `"SHELFSYNC_AMAZON_CREDENTIALS"`). Secrets never go in this file. Required for marketplace
    /// kinds, optional for `webhook`. The value is the access token the API expects (Shopify
    /// `X-Shopify-Access-Token`, Amazon LWA `x-amz-access-token`, Walmart `WM_SEC.ACCESS_TOKEN`,
    /// eBay OAuth bearer token); for `webhook` it is the HMAC-SHA256 signing secret. A value
    /// `file:/path` names a file holding the secret instead, read again every minute (so a
    /// sidecar can rotate short-lived tokens).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_env: Option<String>,
    /// How long one HTTP request may take before it counts as failed and is retried, e.g.
    /// `"10s"`. Default `"10s"`.
    #[serde(default = "default_push_timeout", with = "duration")]
    pub timeout: Duration,
    /// How often an update is retried after a server error (5xx), a timeout or a connection
    /// failure before it goes to the dead-letter topic (≥ 0). Throttling (429) never counts: a
    /// throttled update waits as long as the marketplace says. Default `8`.
    #[serde(default = "default_push_max_retries")]
    pub max_retries: i64,
    /// Requests to this marketplace in flight at once (≥ 1). Two requests never carry the same
    /// SKU at the same time. Default `4`.
    #[serde(default = "default_push_max_in_flight")]
    pub max_in_flight: i64,
    /// `shopify`: the Admin API version in the URL (`/admin/api/<version>/graphql.json`).
    /// Default `"2026-07"`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// `shopify`: the location whose `available` quantity is set, as a global id
    /// (`"gid://shopify/Location/124656943"`). Required for `shopify`, checked when `shelfsync
    /// push` starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location_id: Option<String>,
    /// `amazon`: the selling partner (merchant) id of the listings (`/listings/2021-08-01/items/
    /// <seller_id>/<sku>`). Required for `amazon`, checked when `shelfsync push` starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seller_id: Option<String>,
    /// `amazon`: the marketplace ids the quantity applies to (`["ATVPDKIKX0DER"]` for the US).
    /// Required for `amazon`, checked when `shelfsync push` starts.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub marketplace_ids: Vec<String>,
    /// `amazon`: the `productType` sent with listings patches and feed messages. Default
    /// `"PRODUCT"` (Amazon's product type for offer-only updates).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub product_type: Option<String>,
    /// Per-operation rate limits replacing the marketplace's published defaults, by operation
    /// name, e.g. `operation_limits.createFeed = { rate_per_sec = 0.05, burst = 15 }` for an
    /// account Amazon granted more. Each operation's bucket applies on top of `rate_per_sec`.
    /// The defaults and the operation names are listed in the README ("Marketplace push",
    /// limits): `amazon` patchListingsItem, createFeedDocument, createFeed, getFeed,
    /// getFeedDocument; `walmart` updateBulkInventory. An unknown name is refused when
    /// `shelfsync push` starts.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operation_limits: BTreeMap<String, OperationLimitSpec>,
}

/// `[channels.push.operation_limits.<operation>]`: one operation's token bucket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperationLimitSpec {
    /// Requests per second (> 0; fractions allowed: `0.0083` is one every two minutes).
    pub rate_per_sec: f64,
    /// Requests that may go out back to back (≥ 1).
    pub burst: i64,
}

fn default_push_rate() -> f64 {
    defaults::PUSH_RATE_PER_SEC
}
fn default_push_burst() -> i64 {
    defaults::PUSH_BURST
}
fn default_push_batch_size() -> i64 {
    defaults::PUSH_BATCH_SIZE
}
fn default_push_timeout() -> Duration {
    defaults::PUSH_TIMEOUT
}
fn default_push_max_retries() -> i64 {
    defaults::PUSH_MAX_RETRIES
}
fn default_push_max_in_flight() -> i64 {
    defaults::PUSH_MAX_IN_FLIGHT
}
