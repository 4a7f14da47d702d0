//! Every default of the topology file, in one place.
//!
//! The serde defaults of the model and the `Default` impls read these constants, so the
//! documentation, the example file and the code cannot drift apart.

use std::time::Duration;

use crate::units::ByteSize;

/// `kafka.bootstrap_servers` has no default: it must be set in the file or by
/// `SHELFSYNC_BOOTSTRAP_SERVERS`. This is the value the example file uses for a local broker.
pub const LOCAL_BOOTSTRAP_SERVERS: &str = "localhost:9092";

/// `processing.epoch_interval`: an epoch closes at least this often.
pub const EPOCH_INTERVAL: Duration = Duration::from_millis(100);
/// `processing.epoch_max_records`: an epoch closes after this many input records.
pub const EPOCH_MAX_RECORDS: i64 = 10_000;
/// `processing.max_alignment_delay`: the longest a stage holds a record while waiting for its
/// other upstreams' event time to pass it (see the engine's `align` module).
pub const MAX_ALIGNMENT_DELAY: Duration = Duration::from_secs(120);
/// `processing.max_future_skew`: how far ahead of the wall clock a record's timestamp may be.
pub const MAX_FUTURE_SKEW: Duration = Duration::from_secs(300);
/// `processing.rocksdb_memory_budget`: block cache plus write buffers of the process.
pub const ROCKSDB_MEMORY_BUDGET: ByteSize = ByteSize::mib(256);

/// `topics.raw_orders`.
pub const RAW_ORDERS_TOPIC: &str = "retail.channel.orders.raw";
/// `topics.erp_inventory`.
pub const ERP_INVENTORY_TOPIC: &str = "retail.erp.inventory";
/// `topics.erp_products`.
pub const ERP_PRODUCTS_TOPIC: &str = "retail.erp.products";
/// `topics.availability`.
pub const AVAILABILITY_TOPIC: &str = "retail.channel.availability";
/// `topics.validated_orders`.
pub const VALIDATED_ORDERS_TOPIC: &str = "retail.erp.orders.validated";
/// `topics.order_status`.
pub const ORDER_STATUS_TOPIC: &str = "retail.channel.order-status";
/// `topics.dlq`.
pub const DLQ_TOPIC: &str = "retail.dlq";
/// `topics.partitions`: partitions of every topic without an override.
pub const PARTITIONS: i64 = 6;
/// `topics.replication_factor`.
pub const REPLICATION_FACTOR: i64 = 1;

/// `dedupe.window`: how long an order's payload fingerprints are remembered.
pub const DEDUPE_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// `inventory.soft_hold_ttl`: how long an unpaid order's soft reservation lasts.
pub const SOFT_HOLD_TTL: Duration = Duration::from_secs(30 * 60);
/// `inventory.shipped_line_retention`: how long a shipped line is remembered.
pub const SHIPPED_LINE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);
/// `assemble.retention`: how long an order's assembly state is kept after its last result.
pub const ASSEMBLE_RETENTION: Duration = Duration::from_secs(7 * 24 * 3600);

/// `channels[].share_pct`.
pub const SHARE_PCT: i64 = 100;
/// `channels[].skip_test_orders`: marketplace test orders hold no stock and reach no ERP.
pub const SKIP_TEST_ORDERS: bool = true;
/// `channels[].hard_hold_max_age`: a hard hold without a shipment is released after this long
/// (DESIGN §4: a lost shipment must never pin stock for ever).
pub const HARD_HOLD_MAX_AGE: Duration = Duration::from_secs(30 * 24 * 3600);
/// `channels[].own_fulfillment_services` of a Shopify channel.
pub const OWN_FULFILLMENT_SERVICES: [&str; 1] =
    shelfsync_schemas::adapters::DEFAULT_OWN_FULFILLMENT_SERVICES;

/// `channels[].push.rate_per_sec`: requests per second to the marketplace.
pub const PUSH_RATE_PER_SEC: f64 = 5.0;
/// `channels[].push.burst`: token-bucket capacity (requests that may go out at once).
pub const PUSH_BURST: i64 = 10;
/// `channels[].push.batch_size`: availability updates per request, where the API batches.
pub const PUSH_BATCH_SIZE: i64 = 50;
/// `channels[].push.timeout`: how long one marketplace request may take.
pub const PUSH_TIMEOUT: Duration = Duration::from_secs(10);
/// `channels[].push.max_retries`: retries after 5xx, timeouts and connection errors before the DLQ.
pub const PUSH_MAX_RETRIES: i64 = 8;
/// `channels[].push.max_in_flight`: concurrent requests per channel.
pub const PUSH_MAX_IN_FLIGHT: i64 = 4;
/// `channels[].push.api_version` of a `shopify` channel.
pub const PUSH_SHOPIFY_API_VERSION: &str = "2026-07";
/// The oldest `channels[].push.api_version` a `shopify` channel accepts: `@idempotent(key:)` on
/// `inventorySetQuantities` (and `changeFromQuantity`) exist from Shopify Admin API 2026-01 on;
/// before it every mutation shelfsync sends fails.
pub const PUSH_SHOPIFY_MIN_API_VERSION: &str = "2026-01";
/// `channels[].push.product_type` of an `amazon` channel.
pub const PUSH_AMAZON_PRODUCT_TYPE: &str = "PRODUCT";
