//! # shelfsync-cli
//!
//! The `shelfsync` command line and the tools that live around the runtime of
//! `shelfsync-pipeline`. The dependency arrow runs from here down to the library, never back:
//! argument parsing (clap), `anyhow`, signals and randomness stay in this crate.
//!
//! - [`cli`]: the commands (`run`, `push`, `topics create`, `validate`, `generate`, `demo`,
//!   `bench`) and how each maps onto the library;
//! - [`generator`]: seeded retail traffic for the input topics (`shelfsync generate`);
//! - [`demo`]: the pipeline, the generator and a live view in one process (`shelfsync demo`);
//! - [`bench`]: the end-to-end benchmark against a broker (`shelfsync bench`).

pub mod bench;
pub mod cli;
pub mod demo;
pub mod generator;

pub use cli::main;

/// The example topology (`topology/retail.example.toml`): the demo's, the bench's default base and
/// the tests'.
pub(crate) const EXAMPLE_TOPOLOGY: &str = include_str!("../../topology/retail.example.toml");
