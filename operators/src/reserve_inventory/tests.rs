//! Unit tests of the inventory operator, one per rule, numbers worked out in the names.

use super::*;
use crate::{ChannelPolicy, MemStore};
use shelfsync_schemas::{ChannelOverride, InventoryCommand};

pub(super) fn config() -> InventoryConfig {
    let mut shopify = ChannelPolicy::full("shopify");
    shopify.oversell_policy = OversellPolicy::Backorder;
    InventoryConfig {
        channels: vec![ChannelPolicy::full("amazon"), shopify],
        soft_hold_ttl_ms: 1_000,
        shipped_line_retention_ms: 10_000,
        locations: Vec::new(),
    }
}

pub(super) fn snapshot(sku: &str, loc: &str, qty: i64, seq: i64) -> InventoryCommand {
    InventoryCommand::inventory(InventoryChange {
        sku: sku.into(),
        location: loc.into(),
        kind: InventoryChangeKind::SNAPSHOT,
        quantity: qty,
        erp_sequence: seq,
        reason: None,
        order_key: None,
        line_id: None,
        event_time: 0,
    })
}

pub(super) fn adjust(
    sku: &str,
    loc: &str,
    delta: i64,
    seq: i64,
    reason: AdjustmentReason,
    order: Option<(&str, &str)>,
) -> InventoryCommand {
    InventoryCommand::inventory(InventoryChange {
        sku: sku.into(),
        location: loc.into(),
        kind: InventoryChangeKind::ADJUSTMENT,
        quantity: delta,
        erp_sequence: seq,
        reason: Some(reason),
        order_key: order.map(|o| o.0.to_string()),
        line_id: order.map(|o| o.1.to_string()),
        event_time: 0,
    })
}

pub(super) fn line(
    channel: &str,
    order: &str,
    line_id: &str,
    sku: &str,
    qty: i64,
    paid: bool,
) -> LineCommand {
    LineCommand {
        order_key: format!("{channel}:{order}"),
        channel: channel.into(),
        channel_order_id: order.into(),
        revision: 1,
        lines_in_revision: 1,
        line_id: line_id.into(),
        sku: sku.into(),
        quantity: qty,
        paid,
        cancelled: false,
        placed_at: 0,
        ..LineCommand::default()
    }
}

pub(super) struct Harness {
    pub(super) op: ReserveInventory,
    pub(super) store: MemStore,
}

impl Harness {
    pub(super) fn new() -> Self {
        Self {
            op: ReserveInventory::new(config()),
            store: MemStore::new(),
        }
    }
    pub(super) fn run(&mut self, ts: i64, cmd: InventoryCommand) -> Vec<InventoryOutput> {
        let mut out = Vec::new();
        self.op
            .process(&mut self.store, ts, &cmd, &mut out)
            .unwrap();
        out
    }
    pub(super) fn sku(&self, sku: &str) -> SkuRecord {
        load_sku(&self.store, sku).unwrap().unwrap()
    }
    pub(super) fn published(&self, sku: &str, channel: &str) -> (i64, i64) {
        let rec = self.sku(sku);
        let p = rec.published.iter().find(|p| p.channel == channel).unwrap();
        (p.quantity, p.version)
    }
}

pub(super) fn results(out: &[InventoryOutput]) -> Vec<(LineOutcome, i64, i64)> {
    out.iter()
        .filter_map(|o| match o {
            InventoryOutput::LineResult(r) => Some((r.outcome, r.reserved, r.backordered)),
            _ => None,
        })
        .collect()
}

pub(super) fn availability(out: &[InventoryOutput]) -> Vec<(String, i64, i64)> {
    out.iter()
        .filter_map(|o| match o {
            InventoryOutput::Availability(a) => Some((a.channel.clone(), a.quantity, a.version)),
            _ => None,
        })
        .collect()
}

#[test]
fn first_snapshot_of_10_publishes_version_1_on_every_channel() {
    let mut h = Harness::new();
    let out = h.run(1, snapshot("S", "dc", 10, 1));
    assert_eq!(
        availability(&out),
        vec![("amazon".into(), 10, 1), ("shopify".into(), 10, 1)]
    );
}

#[test]
fn first_evaluation_publishes_an_explicit_zero() {
    let mut h = Harness::new();
    let out = h.run(1, snapshot("S", "dc", 0, 1));
    assert_eq!(
        availability(&out),
        vec![("amazon".into(), 0, 1), ("shopify".into(), 0, 1)]
    );
}

#[test]
fn unchanged_number_emits_nothing_and_version_only_grows() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    assert!(availability(&h.run(2, snapshot("S", "dc", 10, 2))).is_empty());
    let out = h.run(3, snapshot("S", "dc", 7, 3));
    assert_eq!(
        availability(&out),
        vec![("amazon".into(), 7, 2), ("shopify".into(), 7, 2)]
    );
}

#[test]
fn adjustment_minus_3_on_10_leaves_7_and_stale_sequence_is_ignored() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 5));
    h.run(
        2,
        adjust("S", "dc", -3, 6, AdjustmentReason::CORRECTION, None),
    );
    assert_eq!(h.sku("S").stock.total_on_hand(), 7);
    // seq 6 repeated and seq 4 older: both ignored.
    let out = h.run(
        3,
        adjust("S", "dc", -3, 6, AdjustmentReason::CORRECTION, None),
    );
    assert!(matches!(
        out.as_slice(),
        [InventoryOutput::StaleIgnored { .. }]
    ));
    h.run(4, snapshot("S", "dc", 100, 4));
    assert_eq!(h.sku("S").stock.total_on_hand(), 7);
}

#[test]
fn snapshots_and_adjustments_share_one_sequence_per_position_not_per_sku() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 5));
    // Another location has its own sequence: seq 1 applies there.
    h.run(2, snapshot("S", "store", 4, 1));
    assert_eq!(h.sku("S").stock.total_on_hand(), 14);
}

#[test]
fn reserve_3_of_10_leaves_amazon_7() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    let out = h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 3, 0)]);
    assert_eq!(h.published("S", "amazon"), (7, 2));
}

#[test]
fn reserve_same_line_twice_is_a_no_op() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    let out = h.run(
        3,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 3, 0)]);
    assert!(availability(&out).is_empty());
    assert_eq!(h.sku("S").stock.reserved, 3);
}

#[test]
fn short_stock_4_for_6_rejects_on_reject_channel_and_holds_nothing() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 4, 1));
    let out = h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 6, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::REJECTED, 0, 0)]);
    assert_eq!(h.sku("S").stock.reserved, 0);
}

#[test]
fn short_stock_4_for_6_on_backorder_channel_holds_4_and_backorders_2() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 4, 1));
    let out = h.run(
        2,
        InventoryCommand::reserve(line("shopify", "1", "a", "S", 6, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::BACKORDERED, 4, 2)]);
    let rec = h.sku("S");
    assert_eq!((rec.stock.reserved, rec.stock.backordered), (4, 2));
    assert_eq!(h.published("S", "amazon"), (0, 2));
}

#[test]
fn reservation_is_against_physical_stock_not_ats_so_safety_stock_absorbs_lag() {
    // on-hand 10, safety 4 → channels show 6, but an order for 8 still fits physically.
    let mut h = Harness::new();
    h.run(
        1,
        InventoryCommand::product(ProductChange {
            sku: "S".into(),
            active: true,
            safety_stock_units: 4,
            safety_stock_pct: 0,
            channel_overrides: vec![],
            erp_sequence: 1,
            event_time: 0,
            safety_stock_percent: None,
        }),
    );
    h.run(2, snapshot("S", "dc", 10, 1));
    assert_eq!(h.published("S", "amazon").0, 6);
    let out = h.run(
        3,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 8, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 8, 0)]);
    assert_eq!(h.published("S", "amazon").0, 0);
}

#[test]
fn cancel_releases_the_hold_10_minus_3_back_to_10() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    let mut rel = line("amazon", "1", "a", "S", 3, true);
    rel.cancelled = true;
    let out = h.run(3, InventoryCommand::release(rel));
    assert_eq!(results(&out), vec![(LineOutcome::RELEASED, 0, 0)]);
    assert_eq!(h.published("S", "amazon"), (10, 3));
    assert_eq!(h.sku("S").stock.reserved, 0);
}

#[test]
fn shipment_of_3_consumes_the_hold_so_amazon_stays_at_7() {
    // on-hand 10, hold 3 → 7 published; shipment −3: on-hand 7, reserved 0 → still 7.
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    let out = h.run(
        3,
        adjust(
            "S",
            "dc",
            -3,
            2,
            AdjustmentReason::SHIPMENT,
            Some(("amazon:1", "a")),
        ),
    );
    assert!(availability(&out).is_empty(), "{out:?}");
    let rec = h.sku("S");
    assert_eq!((rec.stock.total_on_hand(), rec.stock.reserved), (7, 0));
    // A repeat reserve of the shipped line is a no-op.
    let out = h.run(
        4,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 0, 0)]);
    assert_eq!(h.sku("S").stock.reserved, 0);
}

#[test]
fn a_shipment_before_its_line_settles_the_line_so_nothing_is_held_twice() {
    // on-hand 10; the ERP ships 3 of amazon:1/a before the order arrives: on-hand 7, and the
    // line, when it comes, holds nothing (the units already left), so amazon stays at 7.
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        adjust(
            "S",
            "dc",
            -3,
            2,
            AdjustmentReason::SHIPMENT,
            Some(("amazon:1", "a")),
        ),
    );
    let out = h.run(
        3,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 0, 0)]);
    let rec = h.sku("S");
    assert_eq!((rec.stock.total_on_hand(), rec.stock.reserved), (7, 0));
    assert_eq!(h.published("S", "amazon").0, 7);
}

#[test]
fn soft_hold_expires_after_ttl_1000_in_stream_time() {
    // unpaid hold of 3 at t=100 expires at t=1100: a record at t=1100 releases it first.
    let mut h = Harness::new();
    h.run(0, snapshot("S", "dc", 10, 1));
    h.run(
        100,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, false)),
    );
    assert_eq!(h.published("S", "amazon").0, 7);
    h.run(1_099, snapshot("T", "dc", 1, 1));
    assert_eq!(h.sku("S").stock.reserved, 3);
    let out = h.run(1_100, snapshot("T", "dc", 2, 2));
    assert!(out
        .iter()
        .any(|o| matches!(o, InventoryOutput::HoldExpired { .. })));
    assert_eq!(h.sku("S").stock.reserved, 0);
    assert_eq!(h.published("S", "amazon"), (10, 3));
}

#[test]
fn paid_revision_makes_a_soft_hold_hard_so_it_never_expires() {
    let mut h = Harness::new();
    h.run(0, snapshot("S", "dc", 10, 1));
    h.run(
        100,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, false)),
    );
    h.run(
        200,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    h.run(100_000, snapshot("T", "dc", 1, 1));
    assert_eq!(h.sku("S").stock.reserved, 3);
}

#[test]
fn changed_quantity_3_to_5_is_released_then_evaluated_again() {
    let mut h = Harness::new();
    h.run(0, snapshot("S", "dc", 10, 1));
    h.run(
        1,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    let out = h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 5, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 5, 0)]);
    assert_eq!(h.sku("S").stock.reserved, 5);
}

#[test]
fn earlier_rejection_of_an_unchanged_line_stands_after_restock() {
    let mut h = Harness::new();
    h.run(0, snapshot("S", "dc", 1, 1));
    h.run(
        1,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    h.run(2, snapshot("S", "dc", 100, 2));
    let out = h.run(
        3,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::REJECTED, 0, 0)]);
}

#[test]
fn inactive_product_publishes_zero_and_stale_product_is_ignored() {
    let mut h = Harness::new();
    h.run(0, snapshot("S", "dc", 10, 1));
    let product = |active, seq| {
        InventoryCommand::product(ProductChange {
            sku: "S".into(),
            active,
            safety_stock_units: 0,
            safety_stock_pct: 0,
            channel_overrides: vec![ChannelOverride {
                channel: "shopify".into(),
                enabled: true,
                safety_stock_units: Some(2),
                safety_stock_pct: None,
                safety_stock_percent: None,
                share_pct: None,
                buffer: None,
                max_qty: None,
                min_publish: None,
            }],
            erp_sequence: seq,
            event_time: 0,
            safety_stock_percent: None,
        })
    };
    h.run(1, product(false, 2));
    assert_eq!(h.published("S", "amazon").0, 0);
    h.run(2, product(true, 1));
    assert_eq!(h.published("S", "amazon").0, 0);
    h.run(3, product(true, 3));
    assert_eq!(h.published("S", "amazon").0, 10);
    assert_eq!(h.published("S", "shopify").0, 8);
}

#[test]
fn command_without_payload_is_invalid() {
    let mut h = Harness::new();
    let mut cmd = snapshot("S", "dc", 1, 1);
    cmd.inventory = None;
    let mut out = Vec::new();
    let err = h.op.process(&mut h.store, 0, &cmd, &mut out).unwrap_err();
    assert_eq!(err.kind(), "invalid");
}

#[test]
fn refund_after_shipment_changing_quantity_3_to_2_does_not_reserve_again() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    h.run(
        3,
        adjust(
            "S",
            "dc",
            -3,
            2,
            AdjustmentReason::SHIPMENT,
            Some(("amazon:1", "a")),
        ),
    );
    let out = h.run(
        4,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 2, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RESERVED, 0, 0)]);
    assert_eq!(h.sku("S").stock.reserved, 0);
}
