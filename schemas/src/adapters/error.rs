//! [`AdapterError`]: why a raw order was refused, with its DLQ `error_kind` and the JSON path
//! of the offending field.

use super::json::truncated;

/// Why a raw order was refused.
///
/// Every variant is the input's fault (the marketplace, the envelope producer or the topology),
/// and none is worth retrying: adapters are deterministic, so the same bytes fail the same way.
/// The normalize stage sends the record to the DLQ with [`kind`](Self::kind) as `error_kind` and
/// the `Display` text as the reason. Paths are JSON paths from the envelope root, e.g.
/// `payload.line_items[2].quantity`; `$` is the envelope itself.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AdapterError {
    /// The raw record is larger than [`MAX_INPUT_BYTES`](super::MAX_INPUT_BYTES).
    #[error("record is {size} bytes, more than the limit of {limit}")]
    PayloadTooLarge {
        /// Size of the record.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The record is not JSON (or not UTF-8).
    #[error("not valid JSON: {message}")]
    BadJson {
        /// serde_json's message, which ends with the position.
        message: String,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
    },
    /// A required field is absent or `null`.
    #[error("{path}: required field is missing or null")]
    MissingField {
        /// Where.
        path: String,
    },
    /// A field has the wrong JSON type.
    #[error("{path}: expected {expected}, found {found}")]
    WrongType {
        /// Where.
        path: String,
        /// The JSON type wanted (e.g. `"integer"`).
        expected: &'static str,
        /// The JSON type found (e.g. `"string"`).
        found: &'static str,
    },
    /// A field has the right type but a value outside what is allowed (zero, negative or absurd
    /// quantity, empty or overlong SKU or id, malformed timestamp or Shopify GID, …).
    #[error("{path}: {reason}")]
    InvalidField {
        /// Where.
        path: String,
        /// What is wrong and what is allowed.
        reason: String,
    },
    /// An order that is not cancelled has no lines.
    #[error("{path}: an order that is not cancelled needs at least one line")]
    NoLines {
        /// The lines array.
        path: String,
    },
    /// An order has more than [`MAX_LINES`](super::MAX_LINES) lines.
    #[error("{path}: {count} lines, more than the limit of {limit}")]
    TooManyLines {
        /// The lines array.
        path: String,
        /// How many lines the payload has.
        count: usize,
        /// The limit.
        limit: usize,
    },
    /// Two lines of one order have the same line id.
    #[error("{path}: line id {line_id:?} appears more than once in the order")]
    DuplicateLineId {
        /// The second line with that id.
        path: String,
        /// The repeated id.
        line_id: String,
    },
    /// The payload is a marketplace document, but not one that describes a whole order (a list
    /// of orders, a deprecated per-item notification, an inventory message, …).
    #[error("{path}: {reason}")]
    UnsupportedPayload {
        /// Where.
        path: String,
        /// What the payload is and what the adapter accepts instead.
        reason: String,
    },
    /// The parts of a payload contradict each other (Amazon items of another order, an item
    /// list cut short by pagination).
    #[error("{path}: {reason}")]
    InconsistentPayload {
        /// Where.
        path: String,
        /// What does not fit.
        reason: String,
    },
    /// An adapter name that is not one of [`AdapterKind::ALL`](super::AdapterKind::ALL).
    #[error("unknown adapter {name:?}: expected shopify, amazon, walmart, ebay or generic")]
    UnknownAdapter {
        /// The name given (cut to 128 bytes).
        name: String,
    },
    /// The envelope names a channel the topology does not configure.
    #[error("channel {channel:?} is not configured in the topology")]
    UnknownChannel {
        /// The channel named by the envelope (cut to 128 bytes).
        channel: String,
    },
}

impl AdapterError {
    /// Every value [`kind`](Self::kind) can return, for metric label sets and docs.
    pub const KINDS: [&'static str; 12] = [
        "payload_too_large",
        "bad_json",
        "missing_field",
        "wrong_type",
        "invalid_field",
        "no_lines",
        "too_many_lines",
        "duplicate_line_id",
        "unsupported_payload",
        "inconsistent_payload",
        "unknown_adapter",
        "unknown_channel",
    ];

    /// A short, stable, low-cardinality label for the failure: the DLQ `error_kind` and a metric
    /// label. One of [`KINDS`](Self::KINDS).
    pub fn kind(&self) -> &'static str {
        match self {
            Self::PayloadTooLarge { .. } => "payload_too_large",
            Self::BadJson { .. } => "bad_json",
            Self::MissingField { .. } => "missing_field",
            Self::WrongType { .. } => "wrong_type",
            Self::InvalidField { .. } => "invalid_field",
            Self::NoLines { .. } => "no_lines",
            Self::TooManyLines { .. } => "too_many_lines",
            Self::DuplicateLineId { .. } => "duplicate_line_id",
            Self::UnsupportedPayload { .. } => "unsupported_payload",
            Self::InconsistentPayload { .. } => "inconsistent_payload",
            Self::UnknownAdapter { .. } => "unknown_adapter",
            Self::UnknownChannel { .. } => "unknown_channel",
        }
    }

    /// The JSON path the error is about (`$` for the whole envelope), when there is one.
    pub fn path(&self) -> Option<&str> {
        match self {
            Self::MissingField { path }
            | Self::WrongType { path, .. }
            | Self::InvalidField { path, .. }
            | Self::NoLines { path }
            | Self::TooManyLines { path, .. }
            | Self::DuplicateLineId { path, .. }
            | Self::UnsupportedPayload { path, .. }
            | Self::InconsistentPayload { path, .. } => Some(path),
            Self::PayloadTooLarge { .. }
            | Self::BadJson { .. }
            | Self::UnknownAdapter { .. }
            | Self::UnknownChannel { .. } => None,
        }
    }

    /// The error for an envelope whose channel the topology does not know; for callers that
    /// resolve channels themselves instead of through [`normalize`](super::normalize).
    pub fn unknown_channel(channel: &str) -> Self {
        Self::UnknownChannel {
            channel: truncated(channel),
        }
    }
}
