//! Unit tests of `assemble_orders`, with worked values.

use super::*;
use crate::MemStore;
use shelfsync_schemas::{FulfilledBy, OrderSummary, SkipReason, SkippedLine};

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
        order: None,
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

fn gift_card() -> SkippedLine {
    SkippedLine {
        line_id: "3".into(),
        sku: Some("GIFT-25".into()),
        quantity: 1,
        reason: SkipReason::GIFT_CARD,
    }
}

/// A result of revision `rev` (of `n`) on an order in USD totalling 55.00 with a gift card.
fn priced(rev: i32, n: i32, line: &str, qty: i64, reserved: i64, by: FulfilledBy) -> LineResult {
    let backordered = qty - reserved;
    LineResult {
        quantity: qty,
        reserved,
        backordered,
        outcome: if backordered > 0 {
            LineOutcome::BACKORDERED
        } else {
            LineOutcome::RESERVED
        },
        fulfilled_by: by,
        unit_price: Some("12.50".into()),
        line_total: Some(format!("{}.{:02}", qty * 1250 / 100, qty * 1250 % 100)),
        currency: Some("USD".into()),
        order: Some(Box::new(OrderSummary {
            currency: Some("USD".into()),
            total: Some("55.00".into()),
            already_shipped: false,
            skipped_lines: vec![gift_card()],
        })),
        ..result(rev, n, line, LineOutcome::RESERVED, false)
    }
}

fn validated(out: &[AssembleOutput]) -> Vec<&ValidatedOrder> {
    out.iter()
        .filter_map(|o| match o {
            AssembleOutput::Validated(v) => Some(v),
            _ => None,
        })
        .collect()
}

fn status_events(out: &[AssembleOutput]) -> Vec<&OrderStatus> {
    out.iter()
        .filter_map(|o| match o {
            AssembleOutput::Status(s) => Some(s),
            _ => None,
        })
        .collect()
}

#[test]
fn the_validated_order_carries_prices_fulfilment_and_the_order_totals() {
    // Line 1: 2 × 12.50 = 25.00, ours, reserved. Line 2: 1 × 12.50, fulfilled by Amazon (held
    // nothing, answered RESERVED 0 by the inventory stage, no backorder). A gift card skipped.
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    run(&op, &mut s, priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT));
    let fba = LineResult {
        reserved: 0,
        backordered: 0,
        outcome: LineOutcome::RESERVED,
        ..priced(1, 2, "2", 1, 1, FulfilledBy::MARKETPLACE)
    };
    let out = run(&op, &mut s, fba);
    assert_eq!(statuses(&out), vec![(OrderStatusCode::ACCEPTED, true)]);
    let v = validated(&out)[0];
    assert_eq!(
        (v.currency.as_deref(), v.total.as_deref(), v.already_shipped),
        (Some("USD"), Some("55.00"), false)
    );
    assert_eq!(v.skipped_lines, vec![gift_card()]);
    let lines: Vec<_> = v
        .lines
        .iter()
        .map(|l| {
            (
                l.line_id.as_str(),
                l.fulfilled_by,
                l.reserved,
                l.unit_price.as_deref(),
                l.line_total.as_deref(),
                l.currency.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        lines,
        vec![
            (
                "1",
                FulfilledBy::MERCHANT,
                2,
                Some("12.50"),
                Some("25.00"),
                Some("USD")
            ),
            (
                "2",
                FulfilledBy::MARKETPLACE,
                0,
                Some("12.50"),
                Some("12.50"),
                Some("USD")
            ),
        ]
    );
}

/// The inventory stage's answer to dedupe's no-stock marker of a gift-card-only order.
fn marker(rev: i32, cancelled: bool) -> LineResult {
    LineResult {
        line_id: shelfsync_schemas::NO_STOCK_MARKER_LINE_ID.into(),
        sku: "amazon:1".into(),
        quantity: 0,
        reserved: 0,
        backordered: 0,
        outcome: LineOutcome::RESERVED,
        order: Some(Box::new(OrderSummary {
            currency: None,
            total: Some("25.00".into()),
            already_shipped: true,
            skipped_lines: vec![gift_card()],
        })),
        ..result(rev, 1, "x", LineOutcome::RESERVED, cancelled)
    }
}

#[test]
fn an_order_of_skipped_lines_only_is_accepted_and_reaches_the_erp_without_lines() {
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    let out = run(&op, &mut s, marker(1, false));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::ACCEPTED, true)]);
    let v = validated(&out)[0];
    assert!(v.lines.is_empty(), "the marker is no line: {:?}", v.lines);
    assert_eq!(v.skipped_lines, vec![gift_card()]);
    assert_eq!(
        (v.total.as_deref(), v.already_shipped),
        (Some("25.00"), true)
    );
    assert_eq!(status_events(&out)[0].backordered_lines, 0);
    // Its cancellation (a marker too) reaches the ERP, still without lines.
    let out = run(&op, &mut s, marker(2, true));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::CANCELLED, true)]);
    assert!(validated(&out)[0].lines.is_empty());
}

/// A fill of line `line` of revision `rev`: now `reserved` of its 5 units held.
fn fill(rev: i32, line: &str, reserved: i64) -> LineResult {
    LineResult {
        filled: true,
        lines_in_revision: 0, // not read from a fill
        ..priced(rev, 2, line, 5, reserved, FulfilledBy::MERCHANT)
    }
}

#[test]
fn a_backorder_fill_sends_a_new_status_once_the_order_is_whole() {
    // Revision 1: line 1 holds 2 of 2; line 2 holds 3 of 5, 2 backordered → BACKORDERED.
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    run(&op, &mut s, priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT));
    let out = run(&op, &mut s, priced(1, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::BACKORDERED, true)]);
    assert_eq!(status_events(&out)[0].backordered_lines, 1);
    // A receipt of 1 unit: 4 of 5 held, 1 backordered. Still BACKORDERED: no event.
    assert!(run(&op, &mut s, fill(1, "2", 4)).is_empty());
    // A receipt of 1 more: 5 of 5, RESERVED. The order is ACCEPTED: one status, no new
    // validated order, its id the hash of order key + revision 1 + ACCEPTED.
    let out = run(&op, &mut s, fill(1, "2", 5));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::ACCEPTED, false)]);
    let event = status_events(&out)[0];
    assert_eq!(
        (
            event.revision,
            event.backordered_lines,
            event.rejected_lines
        ),
        (1, 0, 0)
    );
    assert_eq!(
        event.event_id,
        stable_id(&[b"amazon:1", &1i32.to_be_bytes(), b"ACCEPTED"])
    );
    // The same fill again changes nothing and is no error.
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
    // A cancellation afterwards releases what the fill made whole: the ERP hears of it.
    let out = run(&op, &mut s, result(2, 1, "2", LineOutcome::RELEASED, true));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::CANCELLED, true)]);
}

#[test]
fn a_fill_does_not_lift_a_partially_accepted_order() {
    // Line 1 rejected, line 2 backordered: PARTIALLY_ACCEPTED before and after the fill.
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    run(&op, &mut s, result(1, 2, "1", LineOutcome::REJECTED, false));
    let out = run(&op, &mut s, priced(1, 2, "2", 5, 0, FulfilledBy::MERCHANT));
    assert_eq!(
        statuses(&out),
        vec![(OrderStatusCode::PARTIALLY_ACCEPTED, true)]
    );
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
    // A fill naming the rejected line matches nothing.
    let out = run(&op, &mut s, fill(1, "1", 5));
    assert!(matches!(
        out.as_slice(),
        [AssembleOutput::FillIgnored { revision: 1, .. }]
    ));
}

#[test]
fn fills_for_an_older_revision_or_an_unknown_order_are_ignored() {
    let op = AssembleOrders::default();
    // Unknown order: ignored, and no record is created for it.
    let mut s = MemStore::new();
    let out = run(&op, &mut s, fill(1, "2", 5));
    assert_eq!(
        out,
        vec![AssembleOutput::FillIgnored {
            order_key: "amazon:1".into(),
            revision: 1
        }]
    );
    assert!(s.get(&record_key("amazon:1")).is_none());
    // Revision 1 still incomplete: the fill is held for it, and applied once it is whole.
    run(&op, &mut s, priced(1, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
    let out = run(&op, &mut s, priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT));
    assert_eq!(
        statuses(&out),
        vec![
            (OrderStatusCode::BACKORDERED, true),
            (OrderStatusCode::ACCEPTED, true)
        ]
    );
    // Revision 2 (line 2 still backordered) is emitted: a late fill of revision 1 is ignored,
    // a fill of revision 2 applies.
    run(&op, &mut s, priced(2, 2, "1", 2, 2, FulfilledBy::MERCHANT));
    let out = run(&op, &mut s, priced(2, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::BACKORDERED, true)]);
    assert!(matches!(
        run(&op, &mut s, fill(1, "2", 5)).as_slice(),
        [AssembleOutput::FillIgnored { revision: 1, .. }]
    ));
    let out = run(&op, &mut s, fill(2, "2", 5));
    assert_eq!(statuses(&out), vec![(OrderStatusCode::ACCEPTED, false)]);
    assert_eq!(status_events(&out)[0].revision, 2);
}

/// Issue 16 changed the stored assembly record; one written by the previous release (value
/// format 1, a revision half assembled) still reads, and its last line completes it.
#[test]
fn an_assembly_record_stored_by_the_previous_release_still_reads() {
    use crate::migrate::{AssemblyRecordV1 as RecordV1, LineResultV1 as ResultV1, PendingV1};
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    s.put(
        &record_key("amazon:1"),
        &crate::state::encode_value(&RecordV1 {
            last_emitted: 0,
            sent_to_erp: false,
            pending: vec![PendingV1 {
                revision: 1,
                results: vec![ResultV1 {
                    order_key: "amazon:1".into(),
                    channel: "amazon".into(),
                    channel_order_id: "1".into(),
                    revision: 1,
                    lines_in_revision: 2,
                    line_id: "a".into(),
                    sku: "SKU-a".into(),
                    quantity: 2,
                    reserved: 2,
                    backordered: 0,
                    outcome: LineOutcome::RESERVED,
                    paid: true,
                    cancelled: false,
                    placed_at: 0,
                }],
            }],
            expires_at: i64::MAX,
        }),
    );
    let out = run(&op, &mut s, result(1, 2, "b", LineOutcome::RESERVED, false));
    let validated: Vec<usize> = out
        .iter()
        .filter_map(|o| match o {
            AssembleOutput::Validated(v) => Some(v.lines.len()),
            _ => None,
        })
        .collect();
    assert_eq!(validated, [2], "{out:?}");
}

/// A fill from one inventory partition may overtake the first result of another line of the
/// same revision from another partition (found by the reset-and-replay test's helper, 2026-12-06):
/// the outputs must be those of the order the model applies them in — the revision complete
/// with the line as it was first reported, then the fill as a status change — not a fill
/// ignored and an order left BACKORDERED for good.
#[test]
fn a_fill_that_overtakes_another_line_of_its_revision_is_applied_once_the_revision_is_whole() {
    let op = AssembleOrders::default();
    // In the model's order: line 2 backordered, line 1, then the fill.
    let mut s = MemStore::new();
    let mut want = run(&op, &mut s, priced(1, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    want.extend(run(
        &op,
        &mut s,
        priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT),
    ));
    want.extend(run(&op, &mut s, fill(1, "2", 5)));
    assert_eq!(
        statuses(&want),
        vec![
            (OrderStatusCode::BACKORDERED, true),
            (OrderStatusCode::ACCEPTED, true)
        ]
    );
    // As arrival may order them across partitions: the fill before line 1's result.
    let mut s = MemStore::new();
    let mut got = run(&op, &mut s, priced(1, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    got.extend(run(&op, &mut s, fill(1, "2", 5)));
    got.extend(run(
        &op,
        &mut s,
        priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT),
    ));
    assert_eq!(got, want);
    // The same fill again (a replay) changes nothing.
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
}

#[test]
fn fills_held_for_a_revision_count_no_line_and_are_kept_once() {
    let op = AssembleOrders::default();
    let mut s = MemStore::new();
    run(&op, &mut s, priced(1, 2, "2", 5, 3, FulfilledBy::MERCHANT));
    // Two fills and a repeat of the second, all before line 1: the revision is not whole.
    assert!(run(&op, &mut s, fill(1, "2", 4)).is_empty());
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
    assert!(run(&op, &mut s, fill(1, "2", 5)).is_empty());
    let out = run(&op, &mut s, priced(1, 2, "1", 2, 2, FulfilledBy::MERCHANT));
    // BACKORDERED as first reported, the first fill changes no status, the second does.
    assert_eq!(
        statuses(&out),
        vec![
            (OrderStatusCode::BACKORDERED, true),
            (OrderStatusCode::ACCEPTED, true)
        ]
    );
}
