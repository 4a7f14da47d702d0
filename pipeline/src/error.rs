//! The pipeline's error type: each variant says whose failure it is and whether retrying helps.

/// Errors of the shelfsync runtime.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad configuration or topology (the user's; fix the input, retrying cannot help).
    #[error("configuration: {0}")]
    Config(String),
    /// The broker refused or failed an operation (external; usually retried by the caller).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// Topics on the broker do not fit the topology (the user's; fix topics or topology).
    #[error("topics: {0}")]
    Topics(String),
    /// RocksDB failed (local disk; retrying may help after the cause is fixed).
    #[error("state store: {0}")]
    State(String),
    /// An operator found corrupt state or another invariant broke (a bug; do not retry blindly).
    #[error("bug: {0}")]
    Bug(String),
}

/// Result alias of the pipeline crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
