//! # shelfsync-cli
//!
//! The `shelfsync` command line and the tools that live around the runtime of
//! `shelfsync-pipeline`. The dependency arrow runs from here down to the library, never back:
//! argument parsing (clap), `anyhow`, signals and randomness stay in this crate.
//!
//! - [`cli`]: the commands (`run`, `push`, `topics create`, `validate`, `generate`, `demo`,
//!   `bench`, `dlq`, `reset`, `state`) and how each maps onto the library;
//! - [`generator`]: seeded retail traffic for the input topics (`shelfsync generate`):
//!   - `generator::args`: the flags; [`generator::TrafficArgs`] is the traffic flattened into
//!     `generate`, `demo` and `bench` alike, [`generator::GeneratorConfig`] the generator's
//!     whole configuration;
//!   - `generator::model` (catalog, ERP records, orders): the pure, seeded traffic model, time
//!     passed in;
//!   - `generator::render` (shopify, amazon, walmart, generic): an order's payload in its
//!     channel's shape;
//!   - `generator::source`: the model without a producer, for the benchmarks;
//!   - `generator::driver`: the producer loop on the schedule, flushes and progress;
//!   - `generator::stats`: phase, live counters and the final report;
//! - [`demo`]: the pipeline, the generator and a live view in one process (`shelfsync demo`):
//!   setup and teardown in `demo`, then `counters` (the engine's counters), `observer` and
//!   `tally` (what the pipeline did, read from the broker), `live` and `screen` (the loop and its
//!   view), `summary`;
//! - [`reset`]: `shelfsync reset`, the application reset for a replay (group offsets, internal
//!   and changelog topics, local state);
//! - [`dlq`]: `shelfsync dlq list|show|redrive` (dead letters, and the redrive ledger);
//! - [`state`]: `shelfsync state inspect` (a stopped instance's state directory, read only);
//! - [`read`]: reading a whole topic to its end (the bench's checks, `dlq`);
//! - [`bench`](mod@bench): the end-to-end benchmark against a broker (`shelfsync bench`): `topology`,
//!   `pipeline` (the child process and its HTTP endpoints), `drain` (sampling and rates), one file
//!   per phase (`throughput`, `latency`, `restore`) and `report` (text and JSON).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod dlq;
pub mod generator;
pub mod read;
pub mod reset;
pub mod state;

pub use cli::main;

/// The example topology (`topology/retail.example.toml`): the demo's, the bench's default base and
/// the tests'.
pub(crate) const EXAMPLE_TOPOLOGY: &str = include_str!("../../topology/retail.example.toml");
