//! Every metric name shelfsync exports, in one place. Counters end in `_total`; labels stay
//! low-cardinality (stage, partition, channel, topic, kind — never an order id or SKU).
//!
//! [`ALL`] lists every metric with its kind, labels and help text; [`describe_all`] hands the
//! help texts to the recorder and [`register_known_series`] exports the series whose labels are
//! known up front at 0. [`install_recorder`] installs the Prometheus recorder (real histograms with the buckets below);
//! `/metrics` is served by [`crate::http`].

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::error::{Error, Result};

/// Input records read, by `stage`.
pub const RECORDS_IN: &str = "shelfsync_records_in_total";
/// Output records produced, by `stage` and `topic`.
pub const RECORDS_OUT: &str = "shelfsync_records_out_total";
/// Records sent to the DLQ, by `stage` and `kind`.
pub const DLQ: &str = "shelfsync_dlq_records_total";
/// Redriven records taken (`shelfsync dlq redrive`), by `stage`.
pub const REDRIVEN: &str = "shelfsync_redriven_records_total";
/// Dead letters not redriven, as read from the DLQ and the redrive ledger (every instance).
pub const DLQ_UNREDRIVEN: &str = "shelfsync_dlq_unredriven";
/// Timestamp (s) of the oldest dead letter not redriven (now when there is none).
pub const DLQ_OLDEST_UNREDRIVEN: &str = "shelfsync_dlq_oldest_unredriven_timestamp_seconds";
/// Exact order repeats dropped by dedupe.
pub const DUPLICATES_DROPPED: &str = "shelfsync_dedup_dropped_total";
/// Marketplace test orders skipped by normalize (the channel's `skip_test_orders`), by `channel`.
pub const TEST_ORDERS_SKIPPED: &str = "shelfsync_test_orders_skipped_total";
/// Order lines without stock (no SKU, gift cards, tips, shipping protection) that normalize
/// passed on without a reservation, by `channel` and `reason`.
pub const ORDER_LINES_SKIPPED: &str = "shelfsync_order_lines_skipped_total";
/// Internal-topic records dropped as already applied (per-upstream high-water mark), by `stage`.
pub const STAMP_DUPLICATES: &str = "shelfsync_stamp_duplicates_dropped_total";
/// Epochs dropped uncommitted because the member had lost its partitions (a zombie).
pub const ZOMBIE_EPOCHS: &str = "shelfsync_zombie_epochs_dropped_total";
/// Tasks whose local state was set aside for a restore because another writer wrote their
/// changelog after this host's last epoch (or the changelog was recreated).
pub const STALE_LOCAL_STATE: &str = "shelfsync_stale_local_state_total";
/// Hard holds released at their channel's `hard_hold_max_age` (a shipment never posted).
pub const HARD_HOLDS_RELEASED: &str = "shelfsync_hard_holds_released_total";
/// Tasks that found their input topic recreated and started a new lineage.
pub const INPUT_RECREATED: &str = "shelfsync_input_recreated_total";
/// Stamps and progress marks whose MAC did not verify (ignored), by `stage` and `kind`
/// (`stamp`: the record was dead-lettered; `progress_mark`: the mark was dropped).
pub const FORGED: &str = "shelfsync_forged_stamps_total";
/// Outputs not produced again after a restart because the output topic already held them.
pub const TAIL_SUPPRESSED: &str = "shelfsync_tail_suppressed_total";
/// Records an aligning stage holds, waiting for its other upstreams' event time, by `stage`.
pub const ALIGNMENT_HELD: &str = "shelfsync_alignment_held_records";
/// How long (wall clock) an aligning stage held a record before applying it, by `stage`.
pub const ALIGNMENT_HOLD_SECONDS: &str = "shelfsync_alignment_hold_seconds";
/// Records applied after `processing.max_alignment_delay` without every upstream having passed
/// their event time (applied possibly out of order), by `stage`.
pub const ALIGNMENT_TIMEOUTS: &str = "shelfsync_alignment_timeouts_total";
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
/// Time to commit an epoch: changelogs and checkpoints produced, every record acknowledged,
/// RocksDB `WriteBatch` written (seconds).
pub const EPOCH_COMMIT_SECONDS: &str = "shelfsync_epoch_commit_seconds";
/// Processing time per input record (seconds), by `stage`.
pub const PROCESSING_SECONDS: &str = "shelfsync_processing_seconds";
/// End-to-end latency: input record timestamp to the commit of the epoch that processed it,
/// i.e. after its outputs were acknowledged (seconds). No labels.
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
/// Restores that went on from where an earlier one on this host was cut short.
pub const RESTORES_RESUMED: &str = "shelfsync_restores_resumed_total";
/// Changelog records a restore wrote again because the latest record of their key was not the
/// task's history (a failed epoch, or a paused host's late records).
pub const CHANGELOG_CORRECTIONS: &str = "shelfsync_changelog_corrections_total";
/// Approximate RocksDB memory (memtables + block cache), bytes.
pub const ROCKSDB_MEMORY_BYTES: &str = "shelfsync_rocksdb_memory_bytes";
/// Producer delivery failures reported by the broker (each retried by restarting the epoch).
pub const DELIVERY_ERRORS: &str = "shelfsync_delivery_errors_total";
/// Live instances in the instance directory (this one included).
pub const DIRECTORY_INSTANCES: &str = "shelfsync_directory_instances";
/// Counter{reason}: records of the instance directory topic ignored as invalid.
pub const DIRECTORY_REJECTED: &str = "shelfsync_directory_rejected_total";
/// Build information: always 1, with the `version` of the binary as a label.
pub const BUILD_INFO: &str = "shelfsync_build_info";
/// `shelfsync push`: updates the marketplace accepted, by `channel`.
pub const PUSH_SENT: &str = "shelfsync_push_updates_sent_total";
/// `shelfsync push`: updates never sent because a newer version of the SKU replaced them (or
/// one at least as new was already delivered or in flight), by `channel`.
pub const PUSH_COALESCED: &str = "shelfsync_push_updates_coalesced_total";
/// `shelfsync push`: 1 while reading is paused because a channel's queue is full, else 0.
pub const PUSH_PAUSED: &str = "shelfsync_push_paused";
/// `shelfsync push`: updates dead-lettered, by `channel` and `kind`
/// (`marketplace_rejected`, `retries_exhausted`).
pub const PUSH_FAILED: &str = "shelfsync_push_updates_failed_total";
/// `shelfsync push`: updates sent again, by `channel` and `reason` (`throttled`,
/// `server_error`, `timeout`, `connection`, `cas_conflict`, …).
pub const PUSH_RETRIES: &str = "shelfsync_push_retries_total";
/// `shelfsync push`: marketplace request latency (seconds), by `channel`.
pub const PUSH_REQUEST_SECONDS: &str = "shelfsync_push_request_seconds";
/// `shelfsync push`: updates waiting to be sent, by `channel`.
pub const PUSH_QUEUE_DEPTH: &str = "shelfsync_push_queue_depth";
/// `shelfsync push`: age of the oldest change not yet accepted by the marketplace (seconds;
/// 0 when nothing waits), by `channel`.
pub const PUSH_FRESHNESS: &str = "shelfsync_push_freshness_seconds";
/// `shelfsync push`: tokens available in an operation's own bucket (0 while it is paused), by
/// `channel` and `operation`.
pub const PUSH_OPERATION_TOKENS: &str = "shelfsync_push_operation_tokens";
/// `shelfsync push`: the configured rate of an operation's own bucket (requests per second), by
/// `channel` and `operation`.
pub const PUSH_OPERATION_RATE: &str = "shelfsync_push_operation_rate_per_sec";
/// `shelfsync push`: requests answered 429, by `channel` and `operation`.
pub const PUSH_OPERATION_THROTTLED: &str = "shelfsync_push_operation_throttled_total";
/// `shelfsync push`: revisions sent today (the marketplace's calendar day) to SKUs with a daily
/// revision budget (eBay), by `channel`.
pub const PUSH_REVISIONS_TODAY: &str = "shelfsync_push_revisions_today";
/// `shelfsync push`: SKUs whose newest quantity is held until the marketplace's day rolls over
/// (their daily revision budget is spent), by `channel`.
pub const PUSH_REVISIONS_HELD: &str = "shelfsync_push_revisions_held";
/// `shelfsync push`: updates held because their SKU's daily revision budget was spent, by
/// `channel`.
pub const PUSH_REVISION_BUDGET_EXHAUSTED: &str = "shelfsync_push_revision_budget_exhausted_total";

/// What kind of Prometheus series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricKind {
    /// Only goes up (resets on restart); query it with `rate()`/`increase()`.
    Counter,
    /// Goes up and down; the current value is what counts.
    Gauge,
    /// Distribution in buckets; exported as `<name>_bucket`, `<name>_sum` and `<name>_count`.
    Histogram,
}

impl MetricKind {
    /// The Prometheus `# TYPE` word: `counter`, `gauge` or `histogram`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
            Self::Histogram => "histogram",
        }
    }
}

/// One exported metric: its name, kind, label names and help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Series name as exported.
    pub name: &'static str,
    /// Counter, gauge or histogram.
    pub kind: MetricKind,
    /// Label names (low-cardinality only).
    pub labels: &'static [&'static str],
    /// The `# HELP` text.
    pub help: &'static str,
}

const fn metric(
    name: &'static str,
    kind: MetricKind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Metric {
    Metric {
        name,
        kind,
        labels,
        help,
    }
}

/// Every metric shelfsync exports, with its kind, labels and help text: the source of
/// [`describe_all`], of the README's metric table, and of the check that the Grafana dashboard
/// and the alert rules in `deploy/` only use metrics that exist.
pub const ALL: &[Metric] = {
    use MetricKind::{Counter, Gauge, Histogram};
    &[
        metric(RECORDS_IN, Counter, &["stage"], "Input records read, by stage."),
        metric(
            RECORDS_OUT,
            Counter,
            &["stage", "topic"],
            "Output records produced, by stage and logical output topic (orders, inventory_commands, line_results, availability, validated_orders, order_status).",
        ),
        metric(
            DLQ,
            Counter,
            &["stage", "kind"],
            "Records sent to the dead-letter topic, by stage and error kind.",
        ),
        metric(
            REDRIVEN,
            Counter,
            &["stage"],
            "Redriven records taken (re-sent from the dead-letter topic by `shelfsync dlq redrive`), by stage.",
        ),
        metric(
            DLQ_UNREDRIVEN,
            Gauge,
            &[],
            "Dead letters on the dead-letter topic that were never redriven (read with the redrive ledger; every instance exports it).",
        ),
        metric(
            DLQ_OLDEST_UNREDRIVEN,
            Gauge,
            &[],
            "Timestamp (seconds) of the oldest dead letter never redriven; the current time when there is none.",
        ),
        metric(
            DUPLICATES_DROPPED,
            Counter,
            &[],
            "Exact order repeats dropped by dedupe inside the dedup window.",
        ),
        metric(
            TEST_ORDERS_SKIPPED,
            Counter,
            &["channel"],
            "Marketplace test orders (Shopify test: true) skipped by normalize because the channel's skip_test_orders is on, by channel.",
        ),
        metric(
            ORDER_LINES_SKIPPED,
            Counter,
            &["channel", "reason"],
            "Order lines without stock (reason NO_SKU, GIFT_CARD or NON_PHYSICAL) passed on with nothing to reserve, by channel and reason.",
        ),
        metric(
            STAMP_DUPLICATES,
            Counter,
            &["stage"],
            "Internal-topic records dropped as already applied (per-upstream high-water mark), by stage.",
        ),
        metric(
            ZOMBIE_EPOCHS,
            Counter,
            &[],
            "Epochs dropped uncommitted because this member had lost its partitions (its session timed out); the new owners replay them.",
        ),
        metric(
            STALE_LOCAL_STATE,
            Counter,
            &[],
            "Tasks restored from the changelog instead of resumed from local state, because another writer wrote the changelog after this host's last epoch (or it was recreated).",
        ),
        metric(
            INPUT_RECREATED,
            Counter,
            &["stage"],
            "Tasks that found their input topic recreated (its offsets begun again) and read it again in a new lineage.",
        ),
        metric(
            HARD_HOLDS_RELEASED,
            Counter,
            &["channel"],
            "Hard holds released because they reached their channel's hard_hold_max_age (no shipment was posted for them), by channel.",
        ),
        metric(
            FORGED,
            Counter,
            &["stage", "kind"],
            "Stamps (record dead-lettered) and progress marks (dropped) whose MAC did not verify, by stage and kind.",
        ),
        metric(
            TAIL_SUPPRESSED,
            Counter,
            &["stage"],
            "Outputs not produced again after a restart because the output topic already held them, by stage.",
        ),
        metric(
            ALIGNMENT_HELD,
            Gauge,
            &["stage"],
            "Records an aligning stage holds until every upstream task's event time has passed them, by stage.",
        ),
        metric(
            ALIGNMENT_HOLD_SECONDS,
            Histogram,
            &["stage"],
            "Wall-clock time an aligning stage held a record before applying it, by stage.",
        ),
        metric(
            ALIGNMENT_TIMEOUTS,
            Counter,
            &["stage"],
            "Records applied after processing.max_alignment_delay before every upstream had passed them (possibly out of event-time order), by stage.",
        ),
        metric(
            OVERSELL_REJECTIONS,
            Counter,
            &["channel"],
            "Order lines rejected for short stock, by channel.",
        ),
        metric(
            AVAILABILITY_UPDATES,
            Counter,
            &["channel"],
            "Availability updates emitted, by channel.",
        ),
        metric(
            ORDERS,
            Counter,
            &["status"],
            "Order revisions assembled, by status.",
        ),
        metric(
            SUPERSEDED,
            Counter,
            &[],
            "Order revisions dropped because a newer one was already emitted.",
        ),
        metric(
            STALE_ERP_IGNORED,
            Counter,
            &[],
            "ERP records ignored for a stale or repeated erp_sequence.",
        ),
        metric(
            STATE_EXPIRED,
            Counter,
            &["stage"],
            "State entries expired by TTL in stream time (dedup window, soft holds), by stage.",
        ),
        metric(EPOCHS, Counter, &[], "Epochs committed."),
        metric(
            EPOCH_COMMIT_SECONDS,
            Histogram,
            &[],
            "Time to commit an epoch: changelogs and checkpoints produced, every record acknowledged, RocksDB WriteBatch written (seconds).",
        ),
        metric(
            PROCESSING_SECONDS,
            Histogram,
            &["stage"],
            "Processing time of one input record by its stage's operator (seconds), by stage.",
        ),
        metric(
            END_TO_END_SECONDS,
            Histogram,
            &[],
            "End-to-end latency: input record timestamp to the commit of the epoch that processed it (seconds).",
        ),
        metric(
            CONSUMER_LAG,
            Gauge,
            &["topic", "partition"],
            "Consumer lag per input partition (records), by topic and partition, from librdkafka statistics.",
        ),
        metric(
            REBALANCES,
            Counter,
            &["kind"],
            "Consumer-group rebalance callbacks, by kind (assign, revoke).",
        ),
        metric(
            TASKS,
            Gauge,
            &["stage"],
            "Tasks currently open on this instance, by stage.",
        ),
        metric(
            RESTORING_TASKS,
            Gauge,
            &[],
            "Tasks currently restoring their store from the changelog.",
        ),
        metric(
            RESTORE_RECORDS,
            Counter,
            &[],
            "Changelog records applied while restoring stores.",
        ),
        metric(
            RESTORES_RESUMED,
            Counter,
            &[],
            "Restores that went on from where an earlier one on this host was cut short (the task revoked, the process stopped).",
        ),
        metric(
            CHANGELOG_CORRECTIONS,
            Counter,
            &[],
            "Changelog records a restore wrote again because their key's latest record was not the task's committed history (a failed epoch, or a paused host's late records).",
        ),
        metric(
            ROCKSDB_MEMORY_BYTES,
            Gauge,
            &[],
            "Approximate RocksDB memory (memtables + shared block cache), bytes.",
        ),
        metric(
            DIRECTORY_INSTANCES,
            Gauge,
            &[],
            "Instances of the application this one sees alive in the instance directory (announced within their TTL), itself included; the availability query points at them.",
        ),
        metric(
            DIRECTORY_REJECTED,
            Counter,
            &["reason"],
            "Records of the instance directory topic ignored as invalid, by reason (oversized, undecodable, key, url, ttl, time, tasks); the availability query never routes to them.",
        ),
        metric(
            DELIVERY_ERRORS,
            Counter,
            &[],
            "Producer deliveries the broker refused for good (the epoch is not committed and is replayed).",
        ),
        metric(
            BUILD_INFO,
            Gauge,
            &["version"],
            "Always 1; the version label names the running shelfsync.",
        ),
        metric(
            PUSH_SENT,
            Counter,
            &["channel"],
            "shelfsync push: availability updates the marketplace accepted, by channel.",
        ),
        metric(
            PUSH_COALESCED,
            Counter,
            &["channel"],
            "shelfsync push: availability updates never sent because a newer version of the SKU replaced them, by channel.",
        ),
        metric(
            PUSH_FAILED,
            Counter,
            &["channel", "kind"],
            "shelfsync push: availability updates dead-lettered, by channel and kind (marketplace_rejected, retries_exhausted).",
        ),
        metric(
            PUSH_RETRIES,
            Counter,
            &["channel", "reason"],
            "shelfsync push: availability updates sent again, by channel and reason (throttled, server_error, timeout, connection, cas_conflict, ...).",
        ),
        metric(
            PUSH_REQUEST_SECONDS,
            Histogram,
            &["channel"],
            "shelfsync push: marketplace request latency (seconds), by channel.",
        ),
        metric(
            PUSH_QUEUE_DEPTH,
            Gauge,
            &["channel"],
            "shelfsync push: availability updates waiting to be sent (coalesced, one per SKU), by channel.",
        ),
        metric(
            PUSH_FRESHNESS,
            Gauge,
            &["channel"],
            "shelfsync push: age of the oldest availability change not yet accepted by the marketplace (seconds, 0 when none waits), by channel.",
        ),
        metric(
            PUSH_OPERATION_TOKENS,
            Gauge,
            &["channel", "operation"],
            "shelfsync push: tokens available in a marketplace operation's own rate-limit bucket (0 while paused after a 429), by channel and operation.",
        ),
        metric(
            PUSH_OPERATION_RATE,
            Gauge,
            &["channel", "operation"],
            "shelfsync push: configured rate of a marketplace operation's own bucket (requests per second: the published limit or the channel's override), by channel and operation.",
        ),
        metric(
            PUSH_OPERATION_THROTTLED,
            Counter,
            &["channel", "operation"],
            "shelfsync push: marketplace requests answered 429 Too Many Requests, by channel and operation.",
        ),
        metric(
            PUSH_REVISIONS_TODAY,
            Gauge,
            &["channel"],
            "shelfsync push: revisions sent today (the marketplace's calendar day) to SKUs with a daily revision budget (eBay: 250 per listing), by channel.",
        ),
        metric(
            PUSH_REVISIONS_HELD,
            Gauge,
            &["channel"],
            "shelfsync push: SKUs whose newest quantity waits for the next calendar day because their daily revision budget is spent, by channel.",
        ),
        metric(
            PUSH_REVISION_BUDGET_EXHAUSTED,
            Counter,
            &["channel"],
            "shelfsync push: updates held until the next calendar day because their SKU's daily revision budget was spent, by channel.",
        ),
        metric(
            PUSH_PAUSED,
            Gauge,
            &[],
            "shelfsync push: 1 while reading is paused because a channel's queue is full (backpressure), else 0.",
        ),
    ]
};

/// The entry of [`ALL`] named `name`.
pub fn find(name: &str) -> Option<&'static Metric> {
    ALL.iter().find(|m| m.name == name)
}

/// Registers the help text of every metric in [`ALL`] with the installed recorder (Prometheus
/// shows it as `# HELP`). Call once, right after installing the recorder.
pub fn describe_all() {
    for m in ALL {
        let (name, help) = (m.name, m.help);
        match m.kind {
            MetricKind::Counter => metrics::describe_counter!(name, help),
            MetricKind::Gauge => metrics::describe_gauge!(name, help),
            MetricKind::Histogram => {
                metrics::describe_histogram!(name, metrics::Unit::Seconds, help)
            }
        }
    }
}

/// Exports every series whose labels are known up front at 0 (records per stage, tasks per
/// stage, rebalances per kind, the label-less counters and gauges) and sets [`BUILD_INFO`], so
/// that dashboards and `rate()`/`absent()` alerts see them from the first scrape on, before the
/// first record. Series labelled by channel, topic, kind of error or status appear with their
/// first event.
pub fn register_known_series() {
    use shelfsync_topology::Stage;
    for stage in Stage::ALL {
        let stage = stage.name();
        metrics::counter!(RECORDS_IN, "stage" => stage).increment(0);
        metrics::counter!(INPUT_RECREATED, "stage" => stage).increment(0);
        metrics::counter!(REDRIVEN, "stage" => stage).increment(0);
        metrics::gauge!(TASKS, "stage" => stage).increment(0.0);
        let _ = metrics::histogram!(PROCESSING_SECONDS, "stage" => stage);
    }
    for stage in Stage::ALL.into_iter().filter(|s| s.aligns()) {
        let stage = stage.name();
        metrics::gauge!(ALIGNMENT_HELD, "stage" => stage).increment(0.0);
        metrics::counter!(ALIGNMENT_TIMEOUTS, "stage" => stage).increment(0);
        let _ = metrics::histogram!(ALIGNMENT_HOLD_SECONDS, "stage" => stage);
    }
    for kind in ["assign", "revoke"] {
        metrics::counter!(REBALANCES, "kind" => kind).increment(0);
    }
    for reason in crate::directory::validate::REASONS {
        metrics::counter!(DIRECTORY_REJECTED, "reason" => reason).increment(0);
    }
    for m in ALL.iter().filter(|m| m.labels.is_empty()) {
        match m.kind {
            MetricKind::Counter => metrics::counter!(m.name).increment(0),
            MetricKind::Gauge => metrics::gauge!(m.name).increment(0.0),
            MetricKind::Histogram => {
                let _ = metrics::histogram!(m.name);
            }
        }
    }
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// Histogram buckets (seconds) for per-record processing time: 10 µs to 1 s.
pub const PROCESSING_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025,
    0.05, 0.1, 0.25, 0.5, 1.0,
];
/// Histogram buckets (seconds) for epoch commits: 1 ms to 60 s (an epoch waits for the broker).
pub const EPOCH_COMMIT_BUCKETS: &[f64] = &[
    0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets (seconds) for end-to-end latency: 5 ms to 1 h (backlogs after an outage).
pub const END_TO_END_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0,
];

/// The Prometheus recorder configuration: real histograms (not summaries) with the buckets
/// above for every `_seconds` metric.
///
/// # Errors
/// Never in practice: only an empty bucket list is refused.
pub fn prometheus_builder() -> Result<PrometheusBuilder> {
    let bug = |e: metrics_exporter_prometheus::BuildError| Error::Bug(format!("buckets: {e}"));
    PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(PROCESSING_SECONDS.into()), PROCESSING_BUCKETS)
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Full(EPOCH_COMMIT_SECONDS.into()),
                EPOCH_COMMIT_BUCKETS,
            )
        })
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Full(END_TO_END_SECONDS.into()), END_TO_END_BUCKETS)
        })
        // Any histogram added later still renders as a histogram, not a summary.
        .and_then(|b| {
            b.set_buckets_for_metric(Matcher::Suffix("_seconds".into()), END_TO_END_BUCKETS)
        })
        .map_err(bug)
}

/// Installs the process-wide Prometheus recorder, registers every metric's help text and the
/// series known up front (see [`register_known_series`]), and returns the handle that
/// renders `/metrics`. Call once per process, before the engine records anything.
///
/// # Errors
/// [`Error::Bug`] when a recorder is already installed.
pub fn install_recorder() -> Result<PrometheusHandle> {
    let handle = prometheus_builder()?
        .install_recorder()
        .map_err(|e| Error::Bug(format!("install the Prometheus recorder: {e}")))?;
    describe_all();
    register_known_series();
    Ok(handle)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `pub const … = "shelfsync_…"` of this file is in [`ALL`], once.
    #[test]
    fn every_declared_metric_is_in_the_table() {
        let source = include_str!("metrics.rs");
        let declared: Vec<&str> = source
            .lines()
            .filter(|l| l.starts_with("pub const ") && l.contains(": &str = \"shelfsync_"))
            .filter_map(|l| l.split('"').nth(1))
            .collect();
        assert!(declared.len() >= 20, "{declared:?}");
        for name in &declared {
            assert!(find(name).is_some(), "{name} is declared but not in ALL");
        }
        let mut names: Vec<&str> = ALL.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), ALL.len(), "a metric is listed twice in ALL");
        assert_eq!(
            names.len(),
            declared.len(),
            "ALL lists a metric with no constant"
        );
    }

    #[test]
    fn names_follow_the_conventions() {
        for m in ALL {
            assert!(m.name.starts_with("shelfsync_"), "{}", m.name);
            assert_eq!(
                m.kind == MetricKind::Counter,
                m.name.ends_with("_total"),
                "{}: counters (and only counters) end in _total",
                m.name
            );
            if m.kind == MetricKind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}", m.name);
            }
            assert!(!m.help.is_empty());
            for label in m.labels {
                assert!(
                    !["sku", "order", "order_key", "order_id"].contains(label),
                    "{}: high-cardinality label {label}",
                    m.name
                );
            }
        }
    }
}
