//! Unit tests of `dedupe_orders`, with worked values.

use super::*;
use crate::MemStore;
use shelfsync_schemas::{CommandKind, OrderSummary};

fn line(id: &str, sku: &str, qty: i64) -> OrderLine {
    OrderLine::new(id, sku, qty)
}

fn order(id: &str, lines: Vec<OrderLine>) -> Order {
    Order {
        channel: "shopify".into(),
        channel_order_id: id.into(),
        paid: false,
        cancelled: false,
        placed_at: 1_000,
        lines,
        delivery_id: "d1".into(),
        received_at: 1_000,
        already_shipped: false,
        test: false,
        currency: None,
        total: None,
        skipped_lines: Vec::new(),
    }
}

fn commands(out: &[DedupeOutput]) -> Vec<(CommandKind, String, i64, i32, i32)> {
    out.iter()
        .filter_map(|o| match o {
            DedupeOutput::Command(c) => {
                let l = c.line.as_ref()?;
                Some((
                    c.kind,
                    l.line_id.clone(),
                    l.quantity,
                    l.revision,
                    l.lines_in_revision,
                ))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn first_delivery_is_revision_1_with_a_reserve_per_line() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    op.process(
        &mut s,
        1_000,
        &order("1", vec![line("a", "SKU1", 2), line("b", "SKU2", 1)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        commands(&out),
        vec![
            (CommandKind::RESERVE, "a".into(), 2, 1, 2),
            (CommandKind::RESERVE, "b".into(), 1, 1, 2)
        ]
    );
}

#[test]
fn redelivery_with_new_delivery_id_and_receive_time_is_dropped_without_state_change() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let o = order("1", vec![line("a", "SKU1", 2)]);
    op.process(&mut s, 1_000, &o, &mut out).unwrap();
    let before = s.clone();
    let mut again = o.clone();
    again.delivery_id = "d2".into();
    again.received_at = 5_000;
    out.clear();
    op.process(&mut s, 1_000, &again, &mut out).unwrap();
    assert_eq!(
        out,
        vec![DedupeOutput::DuplicateDropped {
            order_key: "shopify:1".into()
        }]
    );
    assert_eq!(s, before);
}

#[test]
fn revision_2_changes_a_quantity_and_releases_a_removed_line() {
    // rev 1: a×2, b×1; rev 2: a×3 → RESERVE a×3, RELEASE b (2 commands, revision 2).
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    op.process(
        &mut s,
        1_000,
        &order("1", vec![line("a", "SKU1", 2), line("b", "SKU2", 1)]),
        &mut out,
    )
    .unwrap();
    out.clear();
    op.process(
        &mut s,
        2_000,
        &order("1", vec![line("a", "SKU1", 3)]),
        &mut out,
    )
    .unwrap();
    // Releases first (one revision is one step).
    assert_eq!(
        commands(&out),
        vec![
            (CommandKind::RELEASE, "b".into(), 1, 2, 2),
            (CommandKind::RESERVE, "a".into(), 3, 2, 2)
        ]
    );
}

#[test]
fn late_retry_of_revision_1_after_cancellation_is_dropped() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let rev1 = order("1", vec![line("a", "SKU1", 2)]);
    op.process(&mut s, 1_000, &rev1, &mut out).unwrap();
    let mut cancel = rev1.clone();
    cancel.cancelled = true;
    out.clear();
    op.process(&mut s, 2_000, &cancel, &mut out).unwrap();
    assert_eq!(
        commands(&out),
        vec![(CommandKind::RELEASE, "a".into(), 2, 2, 1)]
    );
    out.clear();
    op.process(&mut s, 3_000, &rev1, &mut out).unwrap();
    assert!(matches!(
        out.as_slice(),
        [DedupeOutput::DuplicateDropped { .. }]
    ));
}

#[test]
fn cancellation_without_lines_releases_the_known_lines() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    op.process(
        &mut s,
        1_000,
        &order("1", vec![line("a", "SKU1", 2), line("b", "SKU2", 1)]),
        &mut out,
    )
    .unwrap();
    out.clear();
    let mut cancel = order("1", vec![]);
    cancel.cancelled = true;
    op.process(&mut s, 2_000, &cancel, &mut out).unwrap();
    assert_eq!(
        commands(&out),
        vec![
            (CommandKind::RELEASE, "a".into(), 2, 2, 2),
            (CommandKind::RELEASE, "b".into(), 1, 2, 2)
        ]
    );
}

#[test]
fn invalid_orders_are_typed_errors() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let err = op
        .process(&mut s, 0, &order("1", vec![line("a", "SKU1", 0)]), &mut out)
        .unwrap_err();
    assert_eq!(
        err,
        OperatorError::invalid("lines[0].quantity", "must be at least 1, got 0")
    );
    assert!(op
        .process(&mut s, 0, &order("1", vec![]), &mut out)
        .is_err());
    assert!(op
        .process(
            &mut s,
            0,
            &order("1", vec![line("a", "S", 1), line("a", "T", 1)]),
            &mut out
        )
        .is_err());
}

fn line_commands(out: &[DedupeOutput]) -> Vec<(CommandKind, LineCommand)> {
    out.iter()
        .filter_map(|o| match o {
            DedupeOutput::Command(c) => Some((c.kind, c.line.clone()?)),
            _ => None,
        })
        .collect()
}

/// (kind, line id, SKU) of each command, in emission order.
fn steps(out: &[DedupeOutput]) -> Vec<(CommandKind, String, String)> {
    line_commands(out)
        .into_iter()
        .map(|(kind, l)| (kind, l.line_id, l.sku))
        .collect()
}

#[test]
fn line_numbers_compare_as_numbers_and_other_ids_as_strings() {
    use std::cmp::Ordering::*;
    assert_eq!(line_number_order("9", "10"), Less); // as strings "10" < "9"
    assert_eq!(line_number_order("10", "9"), Greater);
    assert_eq!(line_number_order("0010", "9"), Greater); // leading zeros do not count…
    assert_eq!(line_number_order("010", "10"), Less); // …except to break a tie, by text
    assert_eq!(line_number_order("7", "7"), Equal);
    // Longer than any integer type: still numeric.
    assert_eq!(
        line_number_order("18446744073709551616", "18446744073709551615"),
        Greater
    );
    // Numbers before other ids; those compare as strings.
    assert_eq!(line_number_order("10", "1a"), Less);
    assert_eq!(line_number_order("1a", "9"), Greater);
    assert_eq!(line_number_order("1a", "b"), Less);
    assert_eq!(line_number_order("", "0"), Greater);
    // A total order: sorting a mixed list is stable and consistent.
    let mut ids = vec!["b", "10", "1a", "9", "010", "2"];
    ids.sort_by(|a, b| line_number_order(a, b));
    assert_eq!(ids, vec!["2", "9", "010", "10", "1a", "b"]);
}

#[test]
fn a_revision_is_one_step_releases_first_then_lines_by_line_number() {
    // Revision 1 as the payload lists it: "10"×1 and "9"×2 of SKU-A, "2"×1 of SKU-B.
    // Before issue 16 the reserves went out in payload order (10, 9, 2), releases after them.
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let rev1 = order(
        "1",
        vec![
            line("10", "SKU-A", 1),
            line("9", "SKU-A", 2),
            line("2", "SKU-B", 1),
        ],
    );
    op.process(&mut s, 1_000, &rev1, &mut out).unwrap();
    // Two lines of SKU-A: 9 before 10 (as numbers), so SKU-A's partition evaluates 9 first.
    assert_eq!(
        steps(&out),
        vec![
            (CommandKind::RESERVE, "2".into(), "SKU-B".into()),
            (CommandKind::RESERVE, "9".into(), "SKU-A".into()),
            (CommandKind::RESERVE, "10".into(), "SKU-A".into()),
        ]
    );
    // Revision 2: "2" removed, "10" moved to SKU-C, "9" unchanged, "1a" new on SKU-A.
    out.clear();
    let rev2 = order(
        "1",
        vec![
            line("1a", "SKU-A", 1),
            line("10", "SKU-C", 1),
            line("9", "SKU-A", 2),
        ],
    );
    op.process(&mut s, 2_000, &rev2, &mut out).unwrap();
    assert_eq!(
        steps(&out),
        vec![
            (CommandKind::RELEASE, "2".into(), "SKU-B".into()),
            (CommandKind::RELEASE, "10".into(), "SKU-A".into()),
            (CommandKind::RESERVE, "9".into(), "SKU-A".into()),
            (CommandKind::RESERVE, "10".into(), "SKU-C".into()),
            (CommandKind::RESERVE, "1a".into(), "SKU-A".into()),
        ]
    );
    assert!(line_commands(&out)
        .iter()
        .all(|(_, l)| (l.revision, l.lines_in_revision) == (2, 5)));
    // A cancellation releases every known line, in line-number order too.
    out.clear();
    let mut cancel = order("1", vec![]);
    cancel.cancelled = true;
    op.process(&mut s, 3_000, &cancel, &mut out).unwrap();
    assert_eq!(
        steps(&out),
        vec![
            (CommandKind::RELEASE, "9".into(), "SKU-A".into()),
            (CommandKind::RELEASE, "10".into(), "SKU-C".into()),
            (CommandKind::RELEASE, "1a".into(), "SKU-A".into()),
        ]
    );
}

fn priced(id: &str, sku: &str, qty: i64, by: FulfilledBy, unit: &str, total: &str) -> OrderLine {
    OrderLine {
        fulfilled_by: by,
        unit_price: Some(unit.into()),
        line_total: Some(total.into()),
        currency: Some("USD".into()),
        ..OrderLine::new(id, sku, qty)
    }
}

fn gift_card(id: &str) -> shelfsync_schemas::SkippedLine {
    shelfsync_schemas::SkippedLine {
        line_id: id.into(),
        sku: Some("GIFT-25".into()),
        quantity: 1,
        reason: shelfsync_schemas::SkipReason::GIFT_CARD,
    }
}

#[test]
fn commands_carry_fulfilment_prices_and_the_order_totals_and_marketplace_lines_hold_nothing() {
    // An Amazon order with an MFN line (2 × 12.50) and an AFN line (1 × 30.00), total 55.00.
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let mut o = order(
        "1",
        vec![
            priced("1", "SKU-M", 2, FulfilledBy::MERCHANT, "12.50", "25.00"),
            priced("2", "SKU-F", 1, FulfilledBy::MARKETPLACE, "30.00", "30.00"),
        ],
    );
    o.currency = Some("USD".into());
    o.total = Some("55.00".into());
    o.skipped_lines = vec![gift_card("3")];
    op.process(&mut s, 1_000, &o, &mut out).unwrap();
    let cmds = line_commands(&out);
    assert_eq!(cmds.len(), 2);
    let (merchant, marketplace) = (&cmds[0].1, &cmds[1].1);
    assert_eq!(
        (merchant.holds_stock, merchant.fulfilled_by),
        (true, FulfilledBy::MERCHANT)
    );
    assert_eq!(
        (marketplace.holds_stock, marketplace.fulfilled_by),
        (false, FulfilledBy::MARKETPLACE)
    );
    assert_eq!(
        (
            merchant.unit_price.as_deref(),
            merchant.line_total.as_deref(),
            merchant.currency.as_deref()
        ),
        (Some("12.50"), Some("25.00"), Some("USD"))
    );
    assert_eq!(marketplace.line_total.as_deref(), Some("30.00"));
    for (_, c) in &cmds {
        assert_eq!(
            c.order.as_deref(),
            Some(&OrderSummary {
                currency: Some("USD".into()),
                total: Some("55.00".into()),
                already_shipped: false,
                skipped_lines: vec![gift_card("3")],
            })
        );
    }
}

#[test]
fn a_line_that_stops_holding_stock_is_released_before_it_is_reserved_again() {
    // Shopify moves line 1 to a third-party fulfilment service in revision 2: its merchant hold
    // must be released (holds_stock true, so the inventory stage finds it), then the line is
    // reserved again as a marketplace line that holds nothing.
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    op.process(
        &mut s,
        1_000,
        &order("1", vec![line("1", "SKU1", 2)]),
        &mut out,
    )
    .unwrap();
    out.clear();
    let moved = OrderLine {
        fulfilled_by: FulfilledBy::MARKETPLACE,
        ..line("1", "SKU1", 2)
    };
    op.process(&mut s, 2_000, &order("1", vec![moved]), &mut out)
        .unwrap();
    let cmds: Vec<(CommandKind, bool)> = line_commands(&out)
        .into_iter()
        .map(|(k, l)| (k, l.holds_stock))
        .collect();
    assert_eq!(
        cmds,
        vec![(CommandKind::RELEASE, true), (CommandKind::RESERVE, false)]
    );
}

#[test]
fn an_order_first_seen_shipped_holds_nothing_in_any_revision() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let mut shipped = order("1", vec![line("1", "SKU1", 2), line("2", "SKU2", 1)]);
    shipped.already_shipped = true;
    op.process(&mut s, 1_000, &shipped, &mut out).unwrap();
    let held = |out: &[DedupeOutput]| -> Vec<(bool, bool)> {
        line_commands(out)
            .into_iter()
            .map(|(_, l)| (l.holds_stock, l.order.is_some_and(|o| o.already_shipped)))
            .collect()
    };
    assert_eq!(held(&out), vec![(false, true), (false, true)]);
    // Revision 2 (a partial refund: line 1 down to 1 unit, the marketplace no longer says
    // shipped) still holds nothing: the record remembers how the order was first seen.
    out.clear();
    op.process(
        &mut s,
        2_000,
        &order("1", vec![line("1", "SKU1", 1), line("2", "SKU2", 1)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(held(&out), vec![(false, true), (false, true)]);

    // An order first seen open and later reported shipped keeps holding (the ERP's shipment
    // consumes the hold).
    let mut s = MemStore::new();
    out.clear();
    op.process(
        &mut s,
        1_000,
        &order("2", vec![line("1", "SKU1", 2)]),
        &mut out,
    )
    .unwrap();
    let mut later = order("2", vec![line("1", "SKU1", 2)]);
    later.already_shipped = true;
    out.clear();
    op.process(&mut s, 2_000, &later, &mut out).unwrap();
    assert_eq!(held(&out), vec![(true, false)]);
}

#[test]
fn an_order_of_skipped_lines_only_sends_one_no_stock_marker() {
    // A Shopify order for one gift card: no line to reserve, but the ERP must book it.
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    let mut o = order("7", vec![]);
    o.skipped_lines = vec![gift_card("11")];
    o.total = Some("25.00".into());
    op.process(&mut s, 1_000, &o, &mut out).unwrap();
    let cmds = line_commands(&out);
    assert_eq!(cmds.len(), 1);
    let (kind, marker) = &cmds[0];
    assert_eq!(*kind, CommandKind::RESERVE);
    assert!(marker.is_no_stock_marker());
    assert_eq!(
        (
            marker.line_id.as_str(),
            marker.sku.as_str(),
            marker.quantity,
            marker.holds_stock
        ),
        (NO_STOCK_MARKER_LINE_ID, "shopify:7", 0, false)
    );
    assert_eq!((marker.revision, marker.lines_in_revision), (1, 1));
    let summary = marker.order.as_deref().unwrap();
    assert_eq!(summary.skipped_lines, vec![gift_card("11")]);
    assert_eq!(summary.total.as_deref(), Some("25.00"));
    // Its cancellation is a marker too (nothing to release), revision 2, cancelled.
    out.clear();
    let mut cancel = o.clone();
    cancel.cancelled = true;
    op.process(&mut s, 2_000, &cancel, &mut out).unwrap();
    let cmds = line_commands(&out);
    assert_eq!(cmds.len(), 1);
    assert!(cmds[0].1.is_no_stock_marker() && cmds[0].1.cancelled);
    assert_eq!(cmds[0].1.revision, 2);
}

#[test]
fn a_revision_dropping_every_line_for_skipped_ones_releases_them_without_a_marker() {
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let mut out = Vec::new();
    op.process(
        &mut s,
        1_000,
        &order("1", vec![line("1", "SKU1", 2)]),
        &mut out,
    )
    .unwrap();
    out.clear();
    let mut rev2 = order("1", vec![]);
    rev2.skipped_lines = vec![gift_card("2")];
    op.process(&mut s, 2_000, &rev2, &mut out).unwrap();
    assert_eq!(
        commands(&out),
        vec![(CommandKind::RELEASE, "1".into(), 2, 2, 1)]
    );
    // The released line is forgotten: a revision 3 with only the gift card again is a marker.
    out.clear();
    let mut rev3 = rev2.clone();
    rev3.total = Some("25.00".into());
    op.process(&mut s, 3_000, &rev3, &mut out).unwrap();
    assert!(line_commands(&out)[0].1.is_no_stock_marker());
}

/// Window 100 ms; `shopify` hard holds live 1 000 ms, `amazon`'s never expire (0), `ebay`'s
/// 40 ms (shorter than the window).
fn retention_config() -> DedupeConfig {
    DedupeConfig {
        window_ms: 100,
        hard_hold_max_age_ms: [
            ("shopify".to_string(), 1_000),
            ("amazon".to_string(), 0),
            ("ebay".to_string(), 40),
        ]
        .into_iter()
        .collect(),
        default_hard_hold_max_age_ms: 1_000,
    }
}

fn on(channel: &str, mut o: Order) -> Order {
    o.channel = channel.into();
    o
}

/// Runs `o` at `t`; returns (expired order keys, revision emitted or `None` if dropped).
fn step(op: &DedupeOrders, s: &mut MemStore, t: i64, o: &Order) -> (Vec<String>, Option<i32>) {
    let mut out = Vec::new();
    op.process(s, t, o, &mut out).unwrap();
    let expired = out
        .iter()
        .filter_map(|x| match x {
            DedupeOutput::Expired { order_key } => Some(order_key.clone()),
            _ => None,
        })
        .collect();
    (
        expired,
        line_commands(&out).first().map(|(_, l)| l.revision),
    )
}

#[test]
fn an_open_order_outlives_the_window_by_its_channels_hard_hold_age() {
    let op = DedupeOrders::new(retention_config());
    let mut s = MemStore::new();
    let p1 = order("1", vec![line("1", "SKU1", 2)]);
    let p2 = order("1", vec![line("1", "SKU1", 3)]);
    let tick = order("tick", vec![line("1", "SKU9", 1)]);
    assert_eq!(step(&op, &mut s, 1_000, &p1), (vec![], Some(1)));
    // Revision 2 at 1 050: prints expire at 1 150, the record at 1 050 + max(100, 1 000).
    assert_eq!(step(&op, &mut s, 1_050, &p2), (vec![], Some(2)));
    assert_eq!(step(&op, &mut s, 1_149, &p1), (vec![], None)); // inside the window
    assert_eq!(step(&op, &mut s, 1_150, &tick).0, Vec::<String>::new());
    // After the window the latest content is still recognised…
    assert_eq!(step(&op, &mut s, 1_160, &p2), (vec![], None));
    // …but revision 1's payload is a new revision (3), not a new order.
    assert_eq!(step(&op, &mut s, 1_170, &p1), (vec![], Some(3)));
    // Record deadline now 1 170 + 1 000 = 2 170.
    // (The tick order, first seen at 1 150, expires at 2 150 on its own.)
    let (expired, _) = step(&op, &mut s, 2_169, &tick);
    assert_eq!(expired, vec!["shopify:tick".to_string()]);
    let (expired, _) = step(&op, &mut s, 2_170, &tick);
    assert_eq!(expired, vec!["shopify:1".to_string()]);
    assert_eq!(step(&op, &mut s, 2_171, &p1), (vec![], Some(1)));
}

#[test]
fn a_cancelled_order_expires_with_the_window() {
    let op = DedupeOrders::new(retention_config());
    let mut s = MemStore::new();
    let rev1 = order("1", vec![line("1", "SKU1", 2)]);
    let mut cancel = rev1.clone();
    cancel.cancelled = true;
    let tick = order("tick", vec![line("1", "SKU9", 1)]);
    step(&op, &mut s, 1_000, &rev1);
    assert_eq!(step(&op, &mut s, 1_020, &cancel), (vec![], Some(2)));
    // Final: gone at 1 020 + 100, fingerprints and all.
    assert_eq!(step(&op, &mut s, 1_119, &rev1), (vec![], None));
    assert_eq!(
        step(&op, &mut s, 1_120, &tick).0,
        vec!["shopify:1".to_string()]
    );
    assert_eq!(step(&op, &mut s, 1_121, &rev1), (vec![], Some(1)));
}

#[test]
fn an_open_order_never_expires_where_hard_holds_never_do() {
    let op = DedupeOrders::new(retention_config());
    let mut s = MemStore::new();
    let rev1 = on("amazon", order("1", vec![line("1", "SKU1", 2)]));
    let rev2 = on("amazon", order("1", vec![line("1", "SKU1", 1)]));
    let tick = order("tick", vec![line("1", "SKU9", 1)]);
    step(&op, &mut s, 1_000, &rev1);
    step(&op, &mut s, 1_010, &rev2);
    // A year later (the tick's own record comes and goes meanwhile): still revision 3 next.
    let year = 365 * 24 * 3600 * 1000;
    let (expired, _) = step(&op, &mut s, year, &tick);
    assert!(!expired.contains(&"amazon:1".to_string()));
    assert_eq!(step(&op, &mut s, year + 1, &rev2), (vec![], None));
    assert_eq!(step(&op, &mut s, year + 2, &rev1), (vec![], Some(3)));
    assert_eq!(
        op.store().unwrap().max_ttl_ms,
        None,
        "a channel whose holds never expire makes the store's TTL unbounded"
    );
}

#[test]
fn a_channel_age_shorter_than_the_window_keeps_the_record_for_the_window() {
    let op = DedupeOrders::new(retention_config());
    let mut s = MemStore::new();
    let rev1 = on("ebay", order("1", vec![line("1", "SKU1", 2)]));
    let tick = order("tick", vec![line("1", "SKU9", 1)]);
    step(&op, &mut s, 1_000, &rev1);
    // max(100, 40) = 100: at 1 040 the record and its print are still there.
    assert_eq!(step(&op, &mut s, 1_040, &rev1), (vec![], None));
    assert_eq!(
        step(&op, &mut s, 1_100, &tick).0,
        vec!["ebay:1".to_string()]
    );
}

#[test]
fn the_store_ttl_is_the_longest_record_life() {
    // Default: window 7 days, hard holds 30 days → 30 days.
    assert_eq!(
        DedupeOrders::default().store().unwrap().max_ttl_ms,
        Some(crate::THIRTY_DAYS_MS)
    );
    let mut config = retention_config();
    config.hard_hold_max_age_ms.remove("amazon");
    assert_eq!(
        DedupeOrders::new(config).store().unwrap().max_ttl_ms,
        Some(1_000)
    );
}

/// Issue 16 changed the stored order record; one written by the previous release (value format
/// 1) still reads: a repeat of its payload is dropped, and the next revision is revision 2.
#[test]
fn an_order_record_stored_by_the_previous_release_still_reads() {
    use crate::migrate::{OrderLineV1 as LineV1, OrderRecordV1 as RecordV1};
    let op = DedupeOrders::default();
    let mut s = MemStore::new();
    let first = order("7", vec![line("1", "SKU1", 2)]);
    s.put(
        &order_state_key(&first.key()),
        &crate::state::encode_value(&RecordV1 {
            revision: 1,
            prints: vec![first.fingerprint()],
            lines: vec![LineV1 {
                line_id: "1".into(),
                sku: "SKU1".into(),
                quantity: 2,
            }],
            cancelled: false,
            expires_at: 1_000 + crate::SEVEN_DAYS_MS,
        }),
    );
    let mut out = Vec::new();
    op.process(&mut s, 2_000, &first, &mut out).unwrap();
    assert!(commands(&out).is_empty(), "a repeat: {out:?}");
    let mut out = Vec::new();
    op.process(
        &mut s,
        3_000,
        &order("7", vec![line("1", "SKU1", 3)]),
        &mut out,
    )
    .unwrap();
    assert_eq!(
        commands(&out),
        vec![(CommandKind::RESERVE, "1".into(), 3, 2, 1)]
    );
}
