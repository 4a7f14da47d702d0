//! Every metric name shelfsync exports, in one place. Counters end in `_total`; labels stay
//! low-cardinality (stage, partition, channel, topic, kind — never an order id or SKU).

/// Input records read, by `stage`.
pub const RECORDS_IN: &str = "shelfsync_records_in_total";
/// Output records produced, by `stage` and `topic`.
pub const RECORDS_OUT: &str = "shelfsync_records_out_total";
/// Records sent to the DLQ, by `stage` and `kind`.
pub const DLQ: &str = "shelfsync_dlq_records_total";
/// Exact order repeats dropped by dedupe.
pub const DUPLICATES_DROPPED: &str = "shelfsync_dedup_dropped_total";
/// Internal-topic records dropped as already applied (per-upstream high-water mark), by `stage`.
pub const STAMP_DUPLICATES: &str = "shelfsync_stamp_duplicates_dropped_total";
/// Order lines rejected for short stock, by `channel`.
pub const OVERSELL_REJECTIONS: &str = "shelfsync_oversell_rejections_total";
/// Availability updates emitted, by `channel`.
pub const AVAILABILITY_UPDATES: &str = "shelfsync_availability_updates_total";
/// Order revisions assembled, by `status`.
pub const ORDERS: &str = "shelfsync_orders_total";
/// Revisions dropped because a newer one was already emitted.
pub const SUPERSEDED: &str = "shelfsync_superseded_revisions_total";
/// ERP records ignored for a stale `erp_sequence`.
pub const STALE_ERP_IGNORED: &str = "shelfsync_stale_erp_ignored_total";
/// State entries expired by TTL (dedup window, soft holds), by `stage`.
pub const STATE_EXPIRED: &str = "shelfsync_state_expired_total";
/// Epochs committed.
pub const EPOCHS: &str = "shelfsync_epochs_total";
/// Time from the end of an epoch's processing to its state commit (seconds).
pub const EPOCH_COMMIT_SECONDS: &str = "shelfsync_epoch_commit_seconds";
/// Processing time per input record (seconds), by `stage`.
pub const PROCESSING_SECONDS: &str = "shelfsync_processing_seconds";
/// End-to-end latency: input record timestamp to its outputs acknowledged (seconds), by `stage`.
pub const END_TO_END_SECONDS: &str = "shelfsync_end_to_end_seconds";
/// Consumer lag per input partition (records), by `topic` and `partition`.
pub const CONSUMER_LAG: &str = "shelfsync_consumer_lag";
/// Rebalances seen, by `kind` (assign, revoke).
pub const REBALANCES: &str = "shelfsync_rebalances_total";
/// Tasks currently assigned, by `stage`.
pub const TASKS: &str = "shelfsync_tasks";
/// Tasks currently restoring.
pub const RESTORING_TASKS: &str = "shelfsync_restoring_tasks";
/// Changelog records applied during restore.
pub const RESTORE_RECORDS: &str = "shelfsync_restore_records_total";
/// Approximate RocksDB memory (memtables + block cache), bytes.
pub const ROCKSDB_MEMORY_BYTES: &str = "shelfsync_rocksdb_memory_bytes";
/// Producer delivery failures reported by the broker (each retried by restarting the epoch).
pub const DELIVERY_ERRORS: &str = "shelfsync_delivery_errors_total";
