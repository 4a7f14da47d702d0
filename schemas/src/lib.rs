//! # shelfsync-schemas
//!
//! The shared vocabulary of shelfsync:
//! - [`model`]: the canonical retail records (orders, ERP changes, commands, results, availability,
//!   validated orders, statuses, dead letters) as Rust types shaped for Avro;
//! - [`avro`]: the `.avsc` schemas from `schemas/avro/` and the codecs that frame them on Kafka
//!   (Confluent wire format when a schema registry is configured, Avro single-object encoding
//!   otherwise);
//! - [`adapters`]: the channel adapters that turn raw marketplace payloads (Shopify webhooks,
//!   Amazon SP-API, Walmart purchase orders, eBay Fulfillment API orders, a generic JSON shape)
//!   into a canonical [`model::Order`].
//!
//! This crate has no I/O and depends on neither Kafka nor RocksDB nor tokio.

pub mod adapters;
pub mod avro;
pub mod model;

pub use model::*;
