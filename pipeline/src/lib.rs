//! # shelfsync-pipeline
//!
//! The runtime that runs the operators of `shelfsync-operators` as the topology of
//! `shelfsync-topology` over Kafka and RocksDB:
//!
//! - [`engine`]: the consumer-group member, its tasks and the epoch loop (DESIGN §3);
//! - [`stages`]: what each stage does to one record (decode → operator → encode);
//! - [`rocks_store`]: RocksDB state (`StateDb`, `RocksStore`);
//! - [`kafka`]: client configuration, the idempotent producer, header names;
//! - [`admin`]: `topics create`;
//! - [`clock`]: the wall clock (`now_ms`), read in one place;
//! - [`metrics`]: every metric name, kind, labels and help text;
//! - [`http`]: `/metrics`, `/healthz`, `/readyz` and the availability query;
//! - [`directory`]: the instance directory (which instance owns which task, and its URL);
//! - [`push`]: the marketplace push sink (`shelfsync push`).
//!
//! The `shelfsync` command line, the traffic generator, the demo and the benchmark live in
//! `shelfsync-cli`; this crate has no argument parser, no `anyhow`, no randomness and installs no
//! signal handler.

pub mod admin;
pub mod clock;
pub mod directory;
pub mod dlq_watch;
pub mod engine;
pub mod error;
pub mod http;
pub mod kafka;
pub mod metrics;
pub mod push;
pub mod rocks_store;
pub mod stages;
pub mod state_reader;

pub use error::{Error, Result};
