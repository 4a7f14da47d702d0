//! `shelfsync generate`: a seeded, deterministic retail traffic generator.
//!
//! It writes to the three input topics of a topology what a real retailer's systems would:
//!
//! 1. **Catalog** (first, flushed before any order): one product master record
//!    (`ProductChange`, Avro) per SKU on `retail.erp.products`, then an ERP stock `SNAPSHOT`
//!    (`InventoryChange`, Avro) for every (SKU, location) on `retail.erp.inventory`, both keyed
//!    by SKU and single-object encoded.
//! 2. **Traffic** for [`TrafficArgs::duration`]:
//!    - raw channel orders on `retail.channel.orders.raw`, keyed by order key
//!      `channel:order_id`, as JSON envelopes `{channel, delivery_id, received_at, payload}` whose
//!      payload has the channel's real shape: Shopify order webhooks, Amazon combined
//!      getOrder + getOrderItems bodies, Walmart purchase orders and the generic shape (eBay and
//!      any other `generic` channel). Which shape a channel gets comes from its adapter in the
//!      topology;
//!    - among them repeated webhook deliveries (the same payload with a new `delivery_id`;
//!      sometimes an older revision's payload, like a late retry), revisions (an unpaid order gets
//!      paid, a line is reduced or removed, a Walmart line is partly cancelled) and cancellations;
//!    - ERP updates: receipts and count corrections (`ADJUSTMENT`) and recounts (`SNAPSHOT`),
//!      with an `erp_sequence` that grows by one per (SKU, location);
//!    - a **flash sale**: from 30% to 60% of the run, extra orders for a handful of SKUs that have
//!      little stock and sell nowhere else, so they sell out and the pipeline rejects or
//!      backorders what it cannot fill.
//!
//! Deterministic: the sequence of records (topics, keys, payloads) depends only on the
//! configuration, the seed and the topology's channels and locations. Wall-clock time goes only
//! into record timestamps, `received_at` and the payloads' own date fields. Events follow a
//! fixed schedule (event *n* of a stream is due `n / rate` seconds into the run); when the
//! producer falls behind, the generator catches up instead of skipping events, so a run that is
//! not stopped early always produces the whole sequence.
//!
//! What it does not produce: ERP shipments. A shipment references an order line the ERP
//! accepted, and only the pipeline's validated-order stream says which lines those are.
//!
//! How the pieces fit:
//!
//! - [`args`]: the flags ([`TrafficArgs`], shared with `demo` and `bench`; [`GeneratorConfig`])
//!   and their validation;
//! - `model`: the pure, seeded traffic model (the catalog, ERP records, channel orders and
//!   their repeats, revisions and cancellations); no Kafka, no clock: time comes in as `now`;
//! - `render`: the payload of an order in its channel's shape, one file per shape (Shopify,
//!   Amazon, Walmart, generic);
//! - [`source`]: the model without a producer ([`TrafficSource`]), for the benchmarks;
//! - [`driver`]: the Kafka side: the producer loop on the schedule, flushes, progress;
//! - [`stats`]: the live counters and phase the demo and the bench watch, and the final report.

pub mod args;
pub mod driver;
mod model;
mod render;
pub mod source;
pub mod stats;

pub use args::{parse_duration, GeneratorConfig, TrafficArgs};
pub use driver::{run_generator, run_with_progress, Generator};
pub use source::{SourceRecord, TrafficSource};
pub use stats::{GeneratorCounts, GeneratorPhase, GeneratorReport, GeneratorStats};
