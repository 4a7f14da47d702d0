//! `assemble_orders`: collects the line results of each order revision (keyed by order key) and,
//! once a revision is whole, emits one [`OrderStatus`] and — unless the revision is rejected —
//! one [`ValidatedOrder`] for the ERP.
//!
//! Status of a revision: cancelled → `CANCELLED`; otherwise over its non-released lines: all
//! rejected → `REJECTED`; some rejected → `PARTIALLY_ACCEPTED`; some backordered →
//! `BACKORDERED`; else `ACCEPTED`. A `CANCELLED` revision goes to the ERP only if an earlier
//! revision did (the ERP never saw an order that was rejected and then cancelled).
//!
//! Line results of one revision may arrive interleaved with another's (lines live on different
//! SKU partitions). A revision completing after a *newer* one was already emitted is superseded:
//! it is dropped and counted, so the ERP never sees an order go back in time.
//!
//! The validated order carries what the ERP books a sale with (DESIGN §4): per line its
//! fulfilment, unit price, line total and currency, and the order's currency, total, skipped
//! lines and whether it was first seen shipped — all from the line results, which carry them
//! from dedupe. The result of a *no-stock marker* (a revision without lines, e.g. a
//! gift-card-only order) completes its revision (`ACCEPTED`, or `CANCELLED`) but is no line of
//! the validated order.
//!
//! Backorder fills (DESIGN §4, "each fill a status change of its order"): when stock arrives,
//! the inventory stage re-sends the result of a line that was `BACKORDERED` with `filled` set
//! and its new `reserved`, `backordered` and `outcome`. The record keeps the results of the
//! latest emitted revision; a fill updates that line there and, if the revision's status
//! changes (e.g. `BACKORDERED` → `ACCEPTED`), emits one new [`OrderStatus`] for the revision
//! (its `event_id` differs, as the status is part of it). The validated order is not sent again:
//! the ERP booked the order and its lines, and a fill changes no price or quantity. A fill for
//! a revision not yet whole — it overtook another line's first result, which comes from another
//! inventory partition — is held with that revision and applied right after it is emitted, so
//! the outputs are those of the order in which the lines were applied. A fill for an older
//! revision than the latest emitted one, for a line that revision does not have, or for an order
//! this stage no longer knows (past `retention`) is ignored and counted.

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{
    stable_id, LineOutcome, LineResult, OrderStatus, OrderStatusCode, ValidatedLine, ValidatedOrder,
};

use crate::state::{
    advance_stream_time, compose_key, decode_migrating, encode_value_as, ExpiryIndex,
    VALUE_FORMAT_V2,
};
use crate::{AssembleConfig, Operator, OperatorError, StateStore, StoreSpec};

/// What one assemble step emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssembleOutput {
    /// To `retail.erp.orders.validated` (key: order key).
    Validated(ValidatedOrder),
    /// To `retail.channel.order-status` (key: order key).
    Status(OrderStatus),
    /// A revision completed after a newer one was emitted, or a result repeated (for metrics).
    Superseded {
        /// Order key.
        order_key: String,
        /// The dropped revision.
        revision: i32,
    },
    /// A backorder fill that matches no line of the order's latest emitted revision (an older
    /// revision, or an order past retention) was ignored (for metrics).
    FillIgnored {
        /// Order key.
        order_key: String,
        /// The fill's revision.
        revision: i32,
    },
}

/// A revision not yet whole: the line results received, and the backorder fills for it that
/// overtook a line's first result (from another inventory partition), in arrival order — kept
/// with the results (`filled` set) so the stored form is unchanged; only results count.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    revision: i32,
    results: Vec<LineResult>,
}

impl Pending {
    /// The line results received (fills held for the revision are not counted).
    fn lines(&self) -> usize {
        self.results.iter().filter(|r| !r.filled).count()
    }
}

/// The latest emitted revision, kept so that backorder fills can update it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Emitted {
    /// Its line results, in emission order, updated by fills.
    results: Vec<LineResult>,
    /// The last status emitted for it.
    status: OrderStatusCode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
struct AssemblyRecord {
    last_emitted: i32,
    sent_to_erp: bool,
    pending: Vec<Pending>,
    emitted: Option<Emitted>,
    expires_at: i64,
}

/// The assemble operator (store `assemble`, keyed by order key).
#[derive(Debug, Clone, Default)]
pub struct AssembleOrders {
    config: AssembleConfig,
}

fn record_key(order_key: &str) -> Vec<u8> {
    compose_key(b"a:", &[order_key])
}

impl From<crate::migrate::AssemblyRecordV1> for AssemblyRecord {
    fn from(v1: crate::migrate::AssemblyRecordV1) -> Self {
        Self {
            last_emitted: v1.last_emitted,
            sent_to_erp: v1.sent_to_erp,
            pending: v1
                .pending
                .into_iter()
                .map(|p| Pending {
                    revision: p.revision,
                    results: p.results.into_iter().map(Into::into).collect(),
                })
                .collect(),
            // The first release kept no emitted revision: fills for it are ignored.
            emitted: None,
            expires_at: v1.expires_at,
        }
    }
}

/// What the assemble stage knows of an order (the order query, `GET /v1/orders/{order_key}`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderAssembly {
    /// The latest revision emitted (0: none yet).
    pub last_emitted: i32,
    /// Whether a validated order of it went to the ERP.
    pub sent_to_erp: bool,
    /// The latest emitted revision's line results (as fills updated them) and its last status.
    pub emitted: Option<(Vec<LineResult>, OrderStatusCode)>,
    /// Revisions not yet whole: (revision, line results received, lines in the revision).
    pub pending: Vec<(i32, usize, i32)>,
}

/// The assemble stage's record of `order_key` in `store`, if it has one.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored record does not decode.
pub fn assembly_of(
    store: &dyn StateStore,
    order_key: &str,
) -> Result<Option<OrderAssembly>, OperatorError> {
    Ok(
        load_record(store, &record_key(order_key))?.map(|rec| OrderAssembly {
            last_emitted: rec.last_emitted,
            sent_to_erp: rec.sent_to_erp,
            emitted: rec.emitted.map(|e| (e.results, e.status)),
            pending: rec
                .pending
                .iter()
                .map(|p| {
                    let expected = p
                        .results
                        .iter()
                        .find(|r| !r.filled)
                        .map_or(0, |r| r.lines_in_revision);
                    (p.revision, p.lines(), expected)
                })
                .collect(),
        }),
    )
}

/// A stored assembly record as text (either format), for `shelfsync state inspect`.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the bytes are not an assembly record.
pub(crate) fn describe_record(key: &[u8], bytes: &[u8]) -> Result<String, OperatorError> {
    let rec = decode_migrating::<AssemblyRecord, crate::migrate::AssemblyRecordV1>(key, bytes)?;
    Ok(format!("{rec:#?}"))
}

/// Reads an assembly record (either stored format).
fn load_record(
    store: &dyn StateStore,
    key: &[u8],
) -> Result<Option<AssemblyRecord>, OperatorError> {
    store
        .get(key)
        .map(|b| decode_migrating::<AssemblyRecord, crate::migrate::AssemblyRecordV1>(key, &b))
        .transpose()
}

/// Stores an assembly record (value format 2).
fn save_record(store: &mut dyn StateStore, key: &[u8], rec: &AssemblyRecord) {
    store.put(key, &encode_value_as(VALUE_FORMAT_V2, rec));
}

/// The status of a whole revision from its line results.
pub fn revision_status(results: &[LineResult]) -> OrderStatusCode {
    if results.iter().any(|r| r.cancelled) {
        return OrderStatusCode::CANCELLED;
    }
    let active: Vec<&LineResult> = results
        .iter()
        .filter(|r| r.outcome != LineOutcome::RELEASED)
        .collect();
    let rejected = active
        .iter()
        .filter(|r| r.outcome == LineOutcome::REJECTED)
        .count();
    let backordered = active
        .iter()
        .filter(|r| r.outcome == LineOutcome::BACKORDERED)
        .count();
    if !active.is_empty() && rejected == active.len() {
        OrderStatusCode::REJECTED
    } else if rejected > 0 {
        OrderStatusCode::PARTIALLY_ACCEPTED
    } else if backordered > 0 {
        OrderStatusCode::BACKORDERED
    } else {
        OrderStatusCode::ACCEPTED
    }
}

/// The status event of a revision (`results` non-empty, all of one revision).
fn status_event(
    first: &LineResult,
    results: &[LineResult],
    status: OrderStatusCode,
) -> OrderStatus {
    let count = |o: LineOutcome| results.iter().filter(|r| r.outcome == o).count() as i32;
    OrderStatus {
        event_id: stable_id(&[
            first.order_key.as_bytes(),
            &first.revision.to_be_bytes(),
            format!("{status:?}").as_bytes(),
        ]),
        order_key: first.order_key.clone(),
        channel: first.channel.clone(),
        channel_order_id: first.channel_order_id.clone(),
        revision: first.revision,
        status,
        rejected_lines: count(LineOutcome::REJECTED),
        backordered_lines: count(LineOutcome::BACKORDERED),
    }
}

fn validated_line(r: &LineResult) -> ValidatedLine {
    ValidatedLine {
        line_id: r.line_id.clone(),
        sku: r.sku.clone(),
        quantity: r.quantity,
        reserved: r.reserved,
        backordered: r.backordered,
        outcome: r.outcome,
        fulfilled_by: r.fulfilled_by,
        unit_price: r.unit_price.clone(),
        line_total: r.line_total.clone(),
        currency: r.currency.clone(),
    }
}

impl AssembleOrders {
    /// An assemble operator with the given retention.
    pub fn new(config: AssembleConfig) -> Self {
        Self { config }
    }

    fn expire(&self, store: &mut dyn StateStore, now: i64) -> Result<(), OperatorError> {
        loop {
            let due = ExpiryIndex::take_due(store, now, 256);
            if due.is_empty() {
                return Ok(());
            }
            for (at, id) in due {
                let Ok(order_key) = String::from_utf8(id) else {
                    continue;
                };
                let key = record_key(&order_key);
                if load_record(store, &key)?.is_some_and(|r| r.expires_at == at) {
                    store.delete(&key);
                }
            }
        }
    }

    fn emit(rec: &mut AssemblyRecord, mut results: Vec<LineResult>, out: &mut Vec<AssembleOutput>) {
        results.sort_by(|a, b| {
            (&a.line_id, &a.sku, a.outcome as u8).cmp(&(&b.line_id, &b.sku, b.outcome as u8))
        });
        let Some(first) = results.first() else { return };
        let status = revision_status(&results);
        out.push(AssembleOutput::Status(status_event(
            first, &results, status,
        )));
        let to_erp = match status {
            OrderStatusCode::REJECTED => false,
            OrderStatusCode::CANCELLED => rec.sent_to_erp,
            _ => true,
        };
        if to_erp {
            let lines = results
                .iter()
                .filter(|r| !r.is_no_stock_marker())
                .filter(|r| {
                    status == OrderStatusCode::CANCELLED || r.outcome != LineOutcome::RELEASED
                })
                .map(validated_line)
                .collect();
            let revision = first.revision;
            let summary = first.order.as_deref().cloned().unwrap_or_default();
            out.push(AssembleOutput::Validated(ValidatedOrder {
                event_id: stable_id(&[first.order_key.as_bytes(), &revision.to_be_bytes()]),
                order_key: first.order_key.clone(),
                channel: first.channel.clone(),
                channel_order_id: first.channel_order_id.clone(),
                revision,
                status,
                paid: first.paid,
                placed_at: first.placed_at,
                lines,
                currency: summary.currency,
                total: summary.total,
                already_shipped: summary.already_shipped,
                skipped_lines: summary.skipped_lines,
            }));
            rec.sent_to_erp = true;
        }
        rec.last_emitted = first.revision;
        rec.emitted = Some(Emitted { results, status });
    }

    /// Applies a backorder fill to the latest emitted revision; `false` if it matches none of
    /// its lines (the caller counts it).
    fn fill(rec: &mut AssemblyRecord, fill: &LineResult, out: &mut Vec<AssembleOutput>) -> bool {
        let Some(emitted) = rec.emitted.as_mut() else {
            return false;
        };
        if fill.revision != rec.last_emitted {
            return false;
        }
        let Some(line) = emitted.results.iter_mut().find(|r| {
            r.line_id == fill.line_id
                && r.sku == fill.sku
                && !r.is_no_stock_marker()
                && !matches!(r.outcome, LineOutcome::RELEASED | LineOutcome::REJECTED)
        }) else {
            return false;
        };
        line.reserved = fill.reserved;
        line.backordered = fill.backordered;
        line.outcome = fill.outcome;
        let status = revision_status(&emitted.results);
        if status != emitted.status {
            if let Some(first) = emitted.results.first() {
                out.push(AssembleOutput::Status(status_event(
                    first,
                    &emitted.results,
                    status,
                )));
            }
            emitted.status = status;
        }
        true
    }
}

/// The name of this operator's store (and of its changelog, `<app>-assemble-changelog`).
pub const STORE: &str = "assemble";

impl Operator for AssembleOrders {
    type Input = LineResult;
    type Output = AssembleOutput;

    fn store(&self) -> Option<StoreSpec> {
        Some(StoreSpec {
            name: STORE,
            max_ttl_ms: Some(self.config.retention_ms),
        })
    }

    fn process(
        &self,
        store: &mut dyn StateStore,
        timestamp: i64,
        result: &LineResult,
        out: &mut Vec<AssembleOutput>,
    ) -> Result<(), OperatorError> {
        let now = advance_stream_time(store, timestamp)?;
        self.expire(store, now)?;
        if result.revision < 1 {
            return Err(OperatorError::invalid(
                "revision",
                format!("must be ≥ 1, got {}", result.revision),
            ));
        }
        // A fill is no part of a revision's count (the inventory stage may send 0).
        if result.lines_in_revision < 1 && !result.filled {
            return Err(OperatorError::invalid(
                "lines_in_revision",
                format!("must be ≥ 1, got {}", result.lines_in_revision),
            ));
        }
        let key = record_key(&result.order_key);
        let existing = load_record(store, &key)?;
        if result.filled {
            let ignored = || AssembleOutput::FillIgnored {
                order_key: result.order_key.clone(),
                revision: result.revision,
            };
            // An order this stage does not know gets no record from a fill.
            let Some(mut rec) = existing else {
                out.push(ignored());
                return Ok(());
            };
            let held = rec
                .pending
                .iter_mut()
                .find(|p| p.revision == result.revision && result.revision > rec.last_emitted);
            if let Some(pending) = held {
                // It overtook another line of its revision: applied when the revision is whole,
                // as if it had come after (a repeat of one held already is dropped).
                if !pending.results.contains(result) {
                    pending.results.push(result.clone());
                }
            } else if !Self::fill(&mut rec, result, out) {
                out.push(ignored());
                return Ok(());
            }
            ExpiryIndex::cancel(store, rec.expires_at, result.order_key.as_bytes());
            rec.expires_at = now.saturating_add(self.config.retention_ms);
            ExpiryIndex::schedule(store, rec.expires_at, result.order_key.as_bytes());
            save_record(store, &key, &rec);
            return Ok(());
        }
        // A new record has no deadline scheduled yet: cancelling its default `expires_at` (0)
        // would write a tombstone below the current stream time for every new order, and every
        // later `take_due` scan would have to skip all of them (seen in a profile: the assemble
        // stage slowed to a crawl after ~20k orders).
        let scheduled = existing.is_some();
        let mut rec = existing.unwrap_or_default();
        let superseded = || AssembleOutput::Superseded {
            order_key: result.order_key.clone(),
            revision: result.revision,
        };
        if result.revision <= rec.last_emitted {
            out.push(superseded());
            return Ok(());
        }
        let idx = match rec
            .pending
            .iter()
            .position(|p| p.revision == result.revision)
        {
            Some(i) => i,
            None => {
                rec.pending.push(Pending {
                    revision: result.revision,
                    results: Vec::new(),
                });
                rec.pending.sort_by_key(|p| p.revision);
                rec.pending
                    .iter()
                    .position(|p| p.revision == result.revision)
                    .unwrap_or(0)
            }
        };
        let pending = &mut rec.pending[idx];
        if pending.results.iter().any(|r| {
            !r.filled
                && r.line_id == result.line_id
                && r.sku == result.sku
                && r.outcome == result.outcome
        }) {
            out.push(superseded());
            return Ok(());
        }
        pending.results.push(result.clone());
        if pending.lines() >= result.lines_in_revision as usize {
            let done = rec.pending.remove(idx);
            let (fills, results): (Vec<LineResult>, Vec<LineResult>) =
                done.results.into_iter().partition(|r| r.filled);
            Self::emit(&mut rec, results, out);
            for fill in &fills {
                if !Self::fill(&mut rec, fill, out) {
                    out.push(AssembleOutput::FillIgnored {
                        order_key: fill.order_key.clone(),
                        revision: fill.revision,
                    });
                }
            }
            let last = rec.last_emitted;
            rec.pending.retain(|p| p.revision > last);
        }
        if scheduled {
            ExpiryIndex::cancel(store, rec.expires_at, result.order_key.as_bytes());
        }
        rec.expires_at = now.saturating_add(self.config.retention_ms);
        ExpiryIndex::schedule(store, rec.expires_at, result.order_key.as_bytes());
        save_record(store, &key, &rec);
        Ok(())
    }
}

#[cfg(test)]
mod tests;
