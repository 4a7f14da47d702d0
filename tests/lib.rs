//! Shared helpers for the integration tests in `tests/tests/`.
//!
//! [`Broker`] runs a real Apache Kafka broker (KRaft, single node) on a free `127.0.0.1` port for one test and
//! removes it (process and data) when dropped. Tests never skip when the broker is missing: they
//! fail with a message that says to run `scripts/deps.sh`. [`kafka_io`] produces input, reads
//! topics back and runs `shelfsync` as a child process. [`marketplace_sim`] is the HTTP
//! marketplace simulator that `shelfsync push` sends to in its tests.

mod broker;
pub mod kafka_io;

pub use broker::{kafka_script, Broker, SaslSsl};
pub mod day;
pub mod harness;
pub mod marketplace_sim;
pub mod rng;
pub mod scenario;
