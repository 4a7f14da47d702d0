//! `dedupe_orders`: drops repeated order deliveries and turns each new revision of an order into
//! one [`InventoryCommand`] per affected line.
//!
//! Rules (DESIGN §4):
//! - The fingerprint is a hash of the order's content without delivery id and receive time
//!   ([`Order::fingerprint`]). A repeat of *any* earlier payload of the order inside the window
//!   is dropped, so a late retry of revision 1 never undoes a later cancellation.
//! - Any other payload is the next revision (1, 2, 3… per order key). It emits a `RELEASE` for
//!   each line that disappeared (or whose SKU changed, or which stopped or started holding
//!   stock) and a `RESERVE` for each current line; a cancellation emits a `RELEASE` for every
//!   line known in this or the previous revision. Every command carries `lines_in_revision`,
//!   so the assembler knows when a revision is whole.
//! - One revision is one step: its `RELEASE`s come first, then its `RESERVE`s, each group in
//!   line-number order ([`line_number_order`]), so two lines of one SKU reach the inventory
//!   stage — one partition, in this order — as the buyer numbered them, and a line moved from
//!   one SKU to another frees its old units before anything is reserved.
//! - Who ships decides who holds: a command's `holds_stock` is false for a marketplace-fulfilled
//!   line and for every line of an order *first seen already shipped* (the first revision this
//!   store saw had `already_shipped`; the record keeps that, so later revisions hold nothing
//!   either, and the validated order says `already_shipped`).
//! - A revision with nothing to reserve or release (every payload line was skipped — a
//!   gift-card-only order — or the cancellation of such an order) still reaches the ERP: it
//!   emits one *no-stock marker* ([`NO_STOCK_MARKER_LINE_ID`]), keyed by the order key, which
//!   the inventory stage answers without touching stock so that the assemble stage sees the
//!   revision whole. An order with neither lines nor skipped lines (and not a cancellation) is
//!   invalid.
//! - Every command carries the line's prices and fulfilment and the order's currency, total,
//!   first-seen-shipped flag and skipped lines: the assemble stage builds the validated order
//!   from line results only.
//!
//! Retention (decision; DESIGN §4 says an order's record never expires while it holds stock or
//! is not final, and only fingerprints expire with the window):
//! - Fingerprints of earlier revisions expire `window` after the latest revision. The latest
//!   revision's fingerprint stays as long as the record, so a repeat of the current content is
//!   never taken for a new revision.
//! - *Final* means cancelled (dedupe cannot know whether every line was rejected). A cancelled
//!   order's record expires with its fingerprints, `window` after the cancellation.
//! - A record that is not final may hold stock until the inventory stage's `hard_hold_max_age`
//!   of its channel has passed since its last revision, so it expires
//!   `max(window, hard_hold_max_age)` after its last revision — never when the channel's
//!   `hard_hold_max_age` is 0 (hard holds never expire, so neither does the order).
//!   A revision arriving after that is revision 1 of a new record.

use std::cmp::Ordering;
use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{
    FulfilledBy, InventoryCommand, LineCommand, Order, OrderLine, OrderSummary,
    NO_STOCK_MARKER_LINE_ID,
};

use crate::state::{advance_stream_time, compose_key, decode_value, ExpiryIndex};
use crate::{DedupeConfig, Operator, OperatorError, StateStore, StoreSpec};

/// What one dedupe step emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeOutput {
    /// A command for the inventory stage (key: SKU).
    Command(Box<InventoryCommand>),
    /// An exact repeat was dropped (for metrics).
    DuplicateDropped {
        /// The order key.
        order_key: String,
    },
    /// An order's record expired (for metrics).
    Expired {
        /// The order key.
        order_key: String,
    },
}

/// The stored record of one order (versioned through [`crate::state::encode_value`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OrderRecord {
    /// The order's channel (decides its `hard_hold_max_age`).
    channel: String,
    revision: i32,
    /// Fingerprints of the payloads seen, oldest first; the last is the latest revision's.
    prints: Vec<u128>,
    lines: Vec<OrderLine>,
    cancelled: bool,
    /// The first revision of this record had `already_shipped`: no line of it holds stock.
    first_seen_shipped: bool,
    /// Stream time of the latest revision.
    last_revision_at: i64,
    /// The deadline of this record in the expiry index, if one is scheduled.
    deadline: Option<i64>,
}

fn holds_stock(line: &OrderLine, first_seen_shipped: bool) -> bool {
    line.fulfilled_by == FulfilledBy::MERCHANT && !first_seen_shipped
}

/// Orders line ids by line number: ids made of ASCII digits only compare as numbers (of any
/// length, leading zeros ignored, ties broken by the text), and come before other ids, which
/// compare as strings. (Comparing a numeric id with a non-numeric one as strings would not be a
/// total order: `"9" < "10"` numerically, `"10" < "1a"` and `"1a" < "9"` as strings.)
pub fn line_number_order(a: &str, b: &str) -> Ordering {
    fn number(id: &str) -> Option<&str> {
        (!id.is_empty() && id.bytes().all(|c| c.is_ascii_digit()))
            .then(|| id.trim_start_matches('0'))
    }
    match (number(a), number(b)) {
        (Some(x), Some(y)) => x.len().cmp(&y.len()).then(x.cmp(y)).then(a.cmp(b)),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

fn sort_by_line_number(lines: &mut [&OrderLine]) {
    lines.sort_by(|a, b| line_number_order(&a.line_id, &b.line_id).then(a.sku.cmp(&b.sku)));
}

/// The dedupe operator (store `dedupe`, keyed by order key).
#[derive(Debug, Clone, Default)]
pub struct DedupeOrders {
    config: DedupeConfig,
}

const ORDER_PREFIX: &[u8] = b"o:";

/// What the dedupe stage knows of an order (the order query, `GET /v1/orders/{order_key}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderSeen {
    /// Its latest revision.
    pub revision: i32,
    /// Whether the latest revision cancels it.
    pub cancelled: bool,
    /// Whether it was first seen already shipped (no line of it holds stock).
    pub first_seen_shipped: bool,
    /// The latest revision's lines.
    pub lines: Vec<OrderLine>,
}

/// The dedupe stage's record of `order_key` in `store`, if it has one (either stored format).
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored record does not decode.
pub fn seen_order(
    store: &dyn StateStore,
    order_key: &str,
) -> Result<Option<OrderSeen>, OperatorError> {
    let key = order_state_key(order_key);
    let Some(bytes) = store.get(&key) else {
        return Ok(None);
    };
    if bytes.first() == Some(&crate::state::VALUE_FORMAT_V1) {
        let v1: crate::migrate::OrderRecordV1 = decode_value(&key, &bytes)?;
        return Ok(Some(OrderSeen {
            revision: v1.revision,
            cancelled: v1.cancelled,
            first_seen_shipped: false,
            lines: v1.lines.into_iter().map(Into::into).collect(),
        }));
    }
    let rec = crate::state::decode_migrating::<OrderRecord, OrderRecord>(&key, &bytes)?;
    Ok(Some(OrderSeen {
        revision: rec.revision,
        cancelled: rec.cancelled,
        first_seen_shipped: rec.first_seen_shipped,
        lines: rec.lines,
    }))
}

/// A stored order record as text (either format), for `shelfsync state inspect`.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the bytes are not an order record.
pub(crate) fn describe_order(key: &[u8], bytes: &[u8]) -> Result<String, OperatorError> {
    if bytes.first() == Some(&crate::state::VALUE_FORMAT_V1) {
        let v1: crate::migrate::OrderRecordV1 = decode_value(key, bytes)?;
        return Ok(format!("{v1:#?}"));
    }
    let rec = crate::state::decode_migrating::<OrderRecord, OrderRecord>(key, bytes)?;
    Ok(format!("{rec:#?}"))
}

fn order_state_key(order_key: &str) -> Vec<u8> {
    compose_key(ORDER_PREFIX, &[order_key])
}

impl DedupeOrders {
    /// A dedupe operator with the given window and channels' hard-hold ages.
    pub fn new(config: DedupeConfig) -> Self {
        Self { config }
    }

    /// When `rec`'s earlier fingerprints expire, and when the record itself does (`None`:
    /// never). See the module doc.
    fn deadlines(&self, rec: &OrderRecord) -> (i64, Option<i64>) {
        let prints_at = rec.last_revision_at.saturating_add(self.config.window_ms);
        let record_at = if rec.cancelled {
            Some(prints_at)
        } else {
            match self.config.hard_hold_max_age_ms(&rec.channel) {
                0 => None,
                age => Some(
                    rec.last_revision_at
                        .saturating_add(age.max(self.config.window_ms)),
                ),
            }
        };
        (prints_at, record_at)
    }

    /// The next deadline of `rec`: its earlier fingerprints' while it has any, else its own.
    fn next_deadline(&self, rec: &OrderRecord) -> Option<i64> {
        let (prints_at, record_at) = self.deadlines(rec);
        match record_at {
            Some(at) if rec.prints.len() <= 1 || at <= prints_at => Some(at),
            _ if rec.prints.len() > 1 => Some(prints_at),
            _ => None,
        }
    }

    /// Moves `rec`'s deadline in the expiry index to its next one.
    fn reschedule(&self, store: &mut dyn StateStore, order_key: &str, rec: &mut OrderRecord) {
        if let Some(at) = rec.deadline.take() {
            ExpiryIndex::cancel(store, at, order_key.as_bytes());
        }
        rec.deadline = self.next_deadline(rec);
        if let Some(at) = rec.deadline {
            ExpiryIndex::schedule(store, at, order_key.as_bytes());
        }
    }

    fn expire(
        &self,
        store: &mut dyn StateStore,
        now: i64,
        out: &mut Vec<DedupeOutput>,
    ) -> Result<(), OperatorError> {
        loop {
            let due = ExpiryIndex::take_due(store, now, 256);
            if due.is_empty() {
                return Ok(());
            }
            for (at, id) in due {
                let Ok(order_key) = String::from_utf8(id) else {
                    continue;
                };
                let key = order_state_key(&order_key);
                // Only act if this deadline is still the record's current one.
                let Some(mut rec) = self.load_order(store, &key, &order_key)? else {
                    continue;
                };
                if rec.deadline != Some(at) {
                    continue;
                }
                // The index entry is gone already.
                rec.deadline = None;
                let (prints_at, record_at) = self.deadlines(&rec);
                if record_at.is_some_and(|t| t <= now) {
                    store.delete(&key);
                    out.push(DedupeOutput::Expired { order_key });
                    continue;
                }
                if prints_at <= now {
                    let earlier = rec.prints.len().saturating_sub(1);
                    rec.prints.drain(..earlier);
                }
                self.reschedule(store, &order_key, &mut rec);
                save_order(store, &key, &rec);
            }
        }
    }

    /// Reads an order record, migrating one the first release stored: its channel comes from
    /// the order key, its last revision's time from its old deadline (which stays its
    /// deadline: the expiry index still holds it).
    fn load_order(
        &self,
        store: &dyn StateStore,
        key: &[u8],
        order_key: &str,
    ) -> Result<Option<OrderRecord>, OperatorError> {
        let Some(bytes) = store.get(key) else {
            return Ok(None);
        };
        if bytes.first() != Some(&crate::state::VALUE_FORMAT_V1) {
            return crate::state::decode_migrating::<OrderRecord, OrderRecord>(key, &bytes)
                .map(Some);
        }
        let v1: crate::migrate::OrderRecordV1 = decode_value(key, &bytes)?;
        Ok(Some(OrderRecord {
            channel: order_key
                .split_once(':')
                .map_or(String::new(), |(c, _)| c.to_string()),
            revision: v1.revision,
            prints: v1.prints,
            lines: v1.lines.into_iter().map(Into::into).collect(),
            cancelled: v1.cancelled,
            first_seen_shipped: false,
            last_revision_at: v1.expires_at.saturating_sub(self.config.window_ms),
            deadline: Some(v1.expires_at),
        }))
    }
}

/// Stores an order record (value format 2).
fn save_order(store: &mut dyn StateStore, key: &[u8], rec: &OrderRecord) {
    store.put(
        key,
        &crate::state::encode_value_as(crate::state::VALUE_FORMAT_V2, rec),
    );
}

fn validate(order: &Order) -> Result<(), OperatorError> {
    if order.channel.is_empty() {
        return Err(OperatorError::invalid("channel", "must not be empty"));
    }
    if order.channel_order_id.is_empty() {
        return Err(OperatorError::invalid(
            "channel_order_id",
            "must not be empty",
        ));
    }
    if order.lines.is_empty() && order.skipped_lines.is_empty() && !order.cancelled {
        return Err(OperatorError::invalid(
            "lines",
            "an order needs at least one line or skipped line (only a cancellation may have none)",
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, line) in order.lines.iter().enumerate() {
        if line.sku.is_empty() {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].sku"),
                "must not be empty",
            ));
        }
        if line.quantity <= 0 {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].quantity"),
                format!("must be at least 1, got {}", line.quantity),
            ));
        }
        if !ids.insert(line.line_id.as_str()) {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].line_id"),
                format!("duplicate line id {:?}", line.line_id),
            ));
        }
    }
    Ok(())
}

/// The name of this operator's store (and of its changelog, `<app>-dedupe-changelog`).
pub const STORE: &str = "dedupe";

impl Operator for DedupeOrders {
    type Input = Order;
    type Output = DedupeOutput;

    fn store(&self) -> Option<StoreSpec> {
        // A non-final order lives max(window, hard_hold_max_age) after its last revision, or
        // for ever where that age is 0.
        let mut ages = self
            .config
            .hard_hold_max_age_ms
            .values()
            .chain([&self.config.default_hard_hold_max_age_ms]);
        let longest = ages.try_fold(self.config.window_ms, |ttl, &age| {
            (age > 0).then(|| ttl.max(age))
        });
        Some(StoreSpec {
            name: STORE,
            max_ttl_ms: longest,
        })
    }

    fn process(
        &self,
        store: &mut dyn StateStore,
        timestamp: i64,
        order: &Order,
        out: &mut Vec<DedupeOutput>,
    ) -> Result<(), OperatorError> {
        let now = advance_stream_time(store, timestamp)?;
        self.expire(store, now, out)?;
        validate(order)?;

        let order_key = order.key();
        let key = order_state_key(&order_key);
        let previous = self.load_order(store, &key, &order_key)?;
        let print = order.fingerprint();
        if previous
            .as_ref()
            .is_some_and(|rec| rec.prints.contains(&print))
        {
            out.push(DedupeOutput::DuplicateDropped { order_key });
            return Ok(());
        }

        let revision = previous
            .as_ref()
            .map_or(1, |rec| rec.revision.saturating_add(1));
        let first_seen_shipped = previous
            .as_ref()
            .map_or(order.already_shipped, |rec| rec.first_seen_shipped);
        let prev_lines: &[OrderLine] = previous.as_ref().map_or(&[], |rec| rec.lines.as_slice());
        let holds = |line: &OrderLine| holds_stock(line, first_seen_shipped);
        let same = |a: &OrderLine, b: &OrderLine| {
            a.line_id == b.line_id && a.sku == b.sku && holds(a) == holds(b)
        };
        let (mut releases, mut reserves): (Vec<&OrderLine>, Vec<&OrderLine>) = if order.cancelled {
            let mut all: Vec<&OrderLine> = prev_lines.iter().collect();
            for line in &order.lines {
                if !all.iter().any(|l| same(l, line)) {
                    all.push(line);
                }
            }
            (all, Vec::new())
        } else {
            let gone = prev_lines
                .iter()
                .filter(|p| !order.lines.iter().any(|l| same(l, p)))
                .collect();
            (gone, order.lines.iter().collect())
        };
        sort_by_line_number(&mut releases);
        sort_by_line_number(&mut reserves);
        let lines_in_revision =
            i32::try_from((releases.len() + reserves.len()).max(1)).unwrap_or(i32::MAX);
        let summary = OrderSummary {
            currency: order.currency.clone(),
            total: order.total.clone(),
            already_shipped: first_seen_shipped,
            skipped_lines: order.skipped_lines.clone(),
        }
        .boxed();
        let command = |line: &OrderLine, holds_stock: bool| LineCommand {
            order_key: order_key.clone(),
            channel: order.channel.clone(),
            channel_order_id: order.channel_order_id.clone(),
            revision,
            lines_in_revision,
            line_id: line.line_id.clone(),
            sku: line.sku.clone(),
            quantity: line.quantity,
            paid: order.paid,
            cancelled: order.cancelled,
            placed_at: order.placed_at,
            fulfilled_by: line.fulfilled_by,
            unit_price: line.unit_price.clone(),
            line_total: line.line_total.clone(),
            currency: line.currency.clone(),
            holds_stock,
            order: summary.clone(),
        };
        for line in &releases {
            let cmd = command(line, holds(line));
            out.push(DedupeOutput::Command(Box::new(InventoryCommand::release(
                cmd,
            ))));
        }
        for line in &reserves {
            let cmd = command(line, holds(line));
            out.push(DedupeOutput::Command(Box::new(InventoryCommand::reserve(
                cmd,
            ))));
        }
        // Nothing to reserve or release in an order that has lines without stock (skipped) or
        // was seen before: one marker so the revision still completes (its status and ERP
        // record). A cancellation of an order never seen, with no lines at all, sends nothing
        // (as before markers existed): its marker would race the order's later revisions on
        // another inventory partition and make a status appear or not by timing.
        let no_stock_order = !order.skipped_lines.is_empty() || previous.is_some();
        if releases.is_empty() && reserves.is_empty() && no_stock_order {
            let marker = OrderLine::new(NO_STOCK_MARKER_LINE_ID, order_key.clone(), 0);
            let cmd = command(&marker, false);
            out.push(DedupeOutput::Command(Box::new(InventoryCommand::reserve(
                cmd,
            ))));
        }

        let mut prints = previous
            .as_ref()
            .map(|rec| rec.prints.clone())
            .unwrap_or_default();
        prints.push(print);
        // A cancellation without lines (some channels send none) keeps the lines it released.
        let lines = if order.cancelled && order.lines.is_empty() {
            prev_lines.to_vec()
        } else {
            order.lines.clone()
        };
        let mut record = OrderRecord {
            channel: order.channel.clone(),
            revision,
            prints,
            lines,
            cancelled: order.cancelled,
            first_seen_shipped,
            last_revision_at: now,
            deadline: previous.as_ref().and_then(|rec| rec.deadline),
        };
        self.reschedule(store, &order_key, &mut record);
        save_order(store, &key, &record);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
