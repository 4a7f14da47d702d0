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

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{
    stable_id, FulfilledBy, LineOutcome, LineResult, OrderStatus, OrderStatusCode, ValidatedLine,
    ValidatedOrder,
};

use crate::state::{advance_stream_time, compose_key, load, save, ExpiryIndex};
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
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pending {
    revision: i32,
    results: Vec<LineResult>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
struct AssemblyRecord {
    last_emitted: i32,
    sent_to_erp: bool,
    pending: Vec<Pending>,
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
                if load::<AssemblyRecord>(store, &key)?.is_some_and(|r| r.expires_at == at) {
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
        let (order_key, channel, channel_order_id) = (
            first.order_key.clone(),
            first.channel.clone(),
            first.channel_order_id.clone(),
        );
        let (revision, paid, placed_at) = (first.revision, first.paid, first.placed_at);
        let count = |o: LineOutcome| results.iter().filter(|r| r.outcome == o).count() as i32;
        out.push(AssembleOutput::Status(OrderStatus {
            event_id: stable_id(&[
                order_key.as_bytes(),
                &revision.to_be_bytes(),
                format!("{status:?}").as_bytes(),
            ]),
            order_key: order_key.clone(),
            channel: channel.clone(),
            channel_order_id: channel_order_id.clone(),
            revision,
            status,
            rejected_lines: count(LineOutcome::REJECTED),
            backordered_lines: count(LineOutcome::BACKORDERED),
        }));
        let to_erp = match status {
            OrderStatusCode::REJECTED => false,
            OrderStatusCode::CANCELLED => rec.sent_to_erp,
            _ => true,
        };
        if to_erp {
            let lines = results
                .iter()
                .filter(|r| {
                    status == OrderStatusCode::CANCELLED || r.outcome != LineOutcome::RELEASED
                })
                .map(|r| ValidatedLine {
                    line_id: r.line_id.clone(),
                    sku: r.sku.clone(),
                    quantity: r.quantity,
                    reserved: r.reserved,
                    backordered: r.backordered,
                    outcome: r.outcome,
                    // TODO(issue 16, operators): carry fulfilment and prices through
                    // `LineCommand`/`LineResult` from the canonical `OrderLine`.
                    fulfilled_by: FulfilledBy::MERCHANT,
                    unit_price: None,
                    line_total: None,
                    currency: None,
                })
                .collect();
            out.push(AssembleOutput::Validated(ValidatedOrder {
                event_id: stable_id(&[order_key.as_bytes(), &revision.to_be_bytes()]),
                order_key,
                channel,
                channel_order_id,
                revision,
                status,
                paid,
                placed_at,
                lines,
                // TODO(issue 16, operators): carry the order's currency, total, shipped flag and
                // skipped lines from the canonical `Order`.
                currency: None,
                total: None,
                already_shipped: false,
                skipped_lines: Vec::new(),
            }));
            rec.sent_to_erp = true;
        }
        rec.last_emitted = revision;
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
        if result.lines_in_revision < 1 {
            return Err(OperatorError::invalid(
                "lines_in_revision",
                format!("must be ≥ 1, got {}", result.lines_in_revision),
            ));
        }
        let key = record_key(&result.order_key);
        let existing = load::<AssemblyRecord>(store, &key)?;
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
            r.line_id == result.line_id && r.sku == result.sku && r.outcome == result.outcome
        }) {
            out.push(superseded());
            return Ok(());
        }
        pending.results.push(result.clone());
        if pending.results.len() >= result.lines_in_revision as usize {
            let done = rec.pending.remove(idx);
            Self::emit(&mut rec, done.results, out);
            let last = rec.last_emitted;
            rec.pending.retain(|p| p.revision > last);
        }
        if scheduled {
            ExpiryIndex::cancel(store, rec.expires_at, result.order_key.as_bytes());
        }
        rec.expires_at = now.saturating_add(self.config.retention_ms);
        ExpiryIndex::schedule(store, rec.expires_at, result.order_key.as_bytes());
        save(store, &key, &rec);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    fn result(rev: i32, n: i32, line: &str, outcome: LineOutcome, cancelled: bool) -> LineResult {
        LineResult {
            order_key: "amazon:1".into(),
            channel: "amazon".into(),
            channel_order_id: "1".into(),
            revision: rev,
            lines_in_revision: n,
            line_id: line.into(),
            sku: format!("SKU-{line}"),
            quantity: 2,
            reserved: if outcome == LineOutcome::RESERVED {
                2
            } else {
                0
            },
            backordered: if outcome == LineOutcome::BACKORDERED {
                2
            } else {
                0
            },
            outcome,
            paid: true,
            cancelled,
            placed_at: 0,
            fulfilled_by: FulfilledBy::MERCHANT,
            unit_price: None,
            line_total: None,
            currency: None,
            filled: false,
            order_currency: None,
            order_total: None,
            already_shipped: false,
            skipped_lines: Vec::new(),
        }
    }

    fn run(op: &AssembleOrders, s: &mut MemStore, r: LineResult) -> Vec<AssembleOutput> {
        let mut out = Vec::new();
        op.process(s, 0, &r, &mut out).unwrap();
        out
    }

    /// A store that counts deletes, to catch writes that only cost (tombstones).
    struct CountingStore(MemStore, usize);

    impl StateStore for CountingStore {
        fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
            self.0.get(key)
        }
        fn put(&mut self, key: &[u8], value: &[u8]) {
            self.0.put(key, value);
        }
        fn delete(&mut self, key: &[u8]) {
            self.1 += 1;
            self.0.delete(key);
        }
        fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
            self.0.range(from, to, limit)
        }
    }

    #[test]
    fn a_new_order_deletes_nothing() {
        // Regression: every new order used to cancel a deadline it never had, leaving a
        // tombstone below stream time that every later expiry scan had to skip.
        let op = AssembleOrders::new(AssembleConfig::default());
        let mut s = CountingStore(MemStore::new(), 0);
        let mut out = Vec::new();
        let r = result(1, 2, "1", LineOutcome::RESERVED, false);
        op.process(&mut s, 1_000, &r, &mut out).unwrap();
        assert_eq!(s.1, 0, "deletes for a new order");
        // The second result moves the deadline: exactly one delete (the old index entry).
        let r = result(1, 2, "2", LineOutcome::RESERVED, false);
        op.process(&mut s, 2_000, &r, &mut out).unwrap();
        assert_eq!(s.1, 1);
    }

    fn statuses(out: &[AssembleOutput]) -> Vec<(OrderStatusCode, bool)> {
        let validated = out
            .iter()
            .any(|o| matches!(o, AssembleOutput::Validated(_)));
        out.iter()
            .filter_map(|o| match o {
                AssembleOutput::Status(s) => Some((s.status, validated)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn two_reserved_lines_give_accepted_after_the_second() {
        let op = AssembleOrders::default();
        let mut s = MemStore::new();
        assert!(run(&op, &mut s, result(1, 2, "a", LineOutcome::RESERVED, false)).is_empty());
        let out = run(&op, &mut s, result(1, 2, "b", LineOutcome::RESERVED, false));
        assert_eq!(statuses(&out), vec![(OrderStatusCode::ACCEPTED, true)]);
    }

    #[test]
    fn status_table() {
        use LineOutcome::*;
        let r = |o| result(1, 1, "a", o, false);
        let rr = |o1, o2| vec![result(1, 2, "a", o1, false), result(1, 2, "b", o2, false)];
        assert_eq!(revision_status(&[r(RESERVED)]), OrderStatusCode::ACCEPTED);
        assert_eq!(
            revision_status(&[r(BACKORDERED)]),
            OrderStatusCode::BACKORDERED
        );
        assert_eq!(
            revision_status(&rr(RESERVED, REJECTED)),
            OrderStatusCode::PARTIALLY_ACCEPTED
        );
        assert_eq!(
            revision_status(&rr(BACKORDERED, REJECTED)),
            OrderStatusCode::PARTIALLY_ACCEPTED
        );
        assert_eq!(
            revision_status(&rr(REJECTED, REJECTED)),
            OrderStatusCode::REJECTED
        );
        // A released line (removed in this revision) does not count.
        assert_eq!(
            revision_status(&rr(REJECTED, RELEASED)),
            OrderStatusCode::REJECTED
        );
        assert_eq!(
            revision_status(&[result(1, 1, "a", RELEASED, true)]),
            OrderStatusCode::CANCELLED
        );
    }

    #[test]
    fn rejected_revision_gets_a_status_but_no_validated_order() {
        let op = AssembleOrders::default();
        let mut s = MemStore::new();
        let out = run(&op, &mut s, result(1, 1, "a", LineOutcome::REJECTED, false));
        assert_eq!(statuses(&out), vec![(OrderStatusCode::REJECTED, false)]);
        // Cancelling an order the ERP never saw sends nothing to the ERP.
        let out = run(&op, &mut s, result(2, 1, "a", LineOutcome::RELEASED, true));
        assert_eq!(statuses(&out), vec![(OrderStatusCode::CANCELLED, false)]);
    }

    #[test]
    fn cancellation_of_an_accepted_order_reaches_the_erp() {
        let op = AssembleOrders::default();
        let mut s = MemStore::new();
        run(&op, &mut s, result(1, 1, "a", LineOutcome::RESERVED, false));
        let out = run(&op, &mut s, result(2, 1, "a", LineOutcome::RELEASED, true));
        assert_eq!(statuses(&out), vec![(OrderStatusCode::CANCELLED, true)]);
    }

    #[test]
    fn older_revision_completing_after_a_newer_one_is_superseded() {
        let op = AssembleOrders::default();
        let mut s = MemStore::new();
        run(&op, &mut s, result(1, 2, "a", LineOutcome::RESERVED, false));
        let out = run(&op, &mut s, result(2, 1, "a", LineOutcome::RESERVED, false));
        assert_eq!(statuses(&out).len(), 1);
        let out = run(&op, &mut s, result(1, 2, "b", LineOutcome::RESERVED, false));
        assert!(matches!(
            out.as_slice(),
            [AssembleOutput::Superseded { revision: 1, .. }]
        ));
    }

    #[test]
    fn repeated_result_is_not_counted_twice() {
        let op = AssembleOrders::default();
        let mut s = MemStore::new();
        run(&op, &mut s, result(1, 2, "a", LineOutcome::RESERVED, false));
        let out = run(&op, &mut s, result(1, 2, "a", LineOutcome::RESERVED, false));
        assert!(matches!(
            out.as_slice(),
            [AssembleOutput::Superseded { .. }]
        ));
    }

    #[test]
    fn event_ids_are_hashes_of_order_key_revision_and_status() {
        let op = AssembleOrders::default();
        let mut s1 = MemStore::new();
        let mut s2 = MemStore::new();
        let a = run(
            &op,
            &mut s1,
            result(1, 1, "a", LineOutcome::RESERVED, false),
        );
        let b = run(
            &op,
            &mut s2,
            result(1, 1, "a", LineOutcome::RESERVED, false),
        );
        assert_eq!(a, b);
        let AssembleOutput::Validated(v) = &a[1] else {
            panic!("{a:?}")
        };
        assert_eq!(v.event_id, stable_id(&[b"amazon:1", &1i32.to_be_bytes()]));
    }
}
