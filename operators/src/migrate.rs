//! Stored values of the first release (value format 1) read by this one.
//!
//! Issue 16 added fields to records the operators keep in their stores (and changelogs): the
//! dedupe stage's order record (its channel, whether it was first seen shipped, when its last
//! revision came; its lines' fulfilment and prices) and the assemble stage's record (the emitted
//! revision that backorder fills update; its line results' new fields). Postcard is positional,
//! so each keeps its first layout here and is migrated as it is read: state written by the
//! previous release restores and resumes instead of stopping the task as corrupt. New values
//! are written in [`VALUE_FORMAT_V2`](crate::state::VALUE_FORMAT_V2).

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{LineOutcome, LineResult, OrderLine};

/// An order line as the first release stored it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderLineV1 {
    pub(crate) line_id: String,
    pub(crate) sku: String,
    pub(crate) quantity: i64,
}

impl From<OrderLineV1> for OrderLine {
    fn from(v1: OrderLineV1) -> Self {
        OrderLine::new(&v1.line_id, &v1.sku, v1.quantity)
    }
}

/// A line result as the first release stored it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct LineResultV1 {
    pub(crate) order_key: String,
    pub(crate) channel: String,
    pub(crate) channel_order_id: String,
    pub(crate) revision: i32,
    pub(crate) lines_in_revision: i32,
    pub(crate) line_id: String,
    pub(crate) sku: String,
    pub(crate) quantity: i64,
    pub(crate) reserved: i64,
    pub(crate) backordered: i64,
    pub(crate) outcome: LineOutcome,
    pub(crate) paid: bool,
    pub(crate) cancelled: bool,
    pub(crate) placed_at: i64,
}

impl From<LineResultV1> for LineResult {
    fn from(v1: LineResultV1) -> Self {
        LineResult {
            order_key: v1.order_key,
            channel: v1.channel,
            channel_order_id: v1.channel_order_id,
            revision: v1.revision,
            lines_in_revision: v1.lines_in_revision,
            line_id: v1.line_id,
            sku: v1.sku,
            quantity: v1.quantity,
            reserved: v1.reserved,
            backordered: v1.backordered,
            outcome: v1.outcome,
            paid: v1.paid,
            cancelled: v1.cancelled,
            placed_at: v1.placed_at,
            fulfilled_by: Default::default(),
            unit_price: None,
            line_total: None,
            currency: None,
            filled: false,
            order: None,
        }
    }
}

/// The dedupe stage's order record as the first release stored it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct OrderRecordV1 {
    pub(crate) revision: i32,
    pub(crate) prints: Vec<u128>,
    pub(crate) lines: Vec<OrderLineV1>,
    pub(crate) cancelled: bool,
    /// Its last revision's time plus the dedup window, and its deadline in the expiry index.
    pub(crate) expires_at: i64,
}

/// The assemble stage's pending revision as the first release stored it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct PendingV1 {
    pub(crate) revision: i32,
    pub(crate) results: Vec<LineResultV1>,
}

/// The assemble stage's record as the first release stored it.
#[derive(Debug, Serialize, Deserialize)]
pub(crate) struct AssemblyRecordV1 {
    pub(crate) last_emitted: i32,
    pub(crate) sent_to_erp: bool,
    pub(crate) pending: Vec<PendingV1>,
    pub(crate) expires_at: i64,
}
