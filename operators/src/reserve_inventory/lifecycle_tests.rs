//! Unit tests of the reservation lifecycle (DESIGN §4, second list), numbers worked out in the
//! names: backorders netted and filled oldest first, hard holds released at their channel's
//! maximum age, per-channel soft TTLs, unknown locations, and the migration of stored values.

use super::tests::{adjust, availability, config, line, results, snapshot, Harness};
use super::*;
use crate::state::encode_value;
use crate::MemStore;
use shelfsync_schemas::InventoryCommand;

fn backorder_line(order: &str, qty: i64, placed_at: i64) -> LineCommand {
    let mut l = line("shopify", order, "1", "S", qty, true);
    l.placed_at = placed_at;
    l
}

fn fills(out: &[InventoryOutput]) -> Vec<(String, LineOutcome, i64, i64)> {
    out.iter()
        .filter_map(|o| match o {
            InventoryOutput::LineResult(r) => {
                Some((r.order_key.clone(), r.outcome, r.reserved, r.backordered))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn backordered_units_are_demand_so_10_on_hand_minus_4_held_minus_2_backordered_publishes_4() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 4, 1));
    h.run(2, InventoryCommand::reserve(backorder_line("1", 6, 2)));
    // A receipt of 6 would leave 6 free, but the backorder of 2 is filled first: 10 on hand,
    // 6 held, nothing backordered, so every channel publishes 4.
    let out = h.run(3, adjust("S", "dc", 6, 2, AdjustmentReason::RECEIPT, None));
    assert_eq!(
        fills(&out),
        vec![("shopify:1".into(), LineOutcome::RESERVED, 6, 0)]
    );
    assert_eq!(
        availability(&out),
        vec![("amazon".into(), 4, 3), ("shopify".into(), 4, 3)]
    );
    let rec = h.sku("S");
    assert_eq!((rec.stock.reserved, rec.stock.backordered), (6, 0));
    assert!(rec.backorders.is_empty());
}

#[test]
fn a_backorder_is_subtracted_from_ats_until_it_is_filled() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 4, 1));
    h.run(2, InventoryCommand::reserve(backorder_line("1", 6, 2)));
    // 4 on hand − 4 held − 2 backordered → 0 (floored).
    assert_eq!(h.published("S", "amazon").0, 0);
    // A second SKU position does not matter; a snapshot that only confirms 4 fills nothing.
    let out = h.run(3, snapshot("S", "dc", 4, 2));
    assert!(fills(&out).is_empty());
}

#[test]
fn receipts_fill_backorders_oldest_order_first_3_of_5_then_the_rest() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 0, 1));
    // Order 2 was placed before order 1 (placed_at 5 < 8): it is filled first.
    h.run(2, InventoryCommand::reserve(backorder_line("1", 2, 8)));
    h.run(3, InventoryCommand::reserve(backorder_line("2", 3, 5)));
    assert_eq!(h.sku("S").stock.backordered, 5);
    let out = h.run(4, adjust("S", "dc", 4, 2, AdjustmentReason::RECEIPT, None));
    assert_eq!(
        fills(&out),
        vec![
            ("shopify:2".into(), LineOutcome::RESERVED, 3, 0),
            ("shopify:1".into(), LineOutcome::BACKORDERED, 1, 1),
        ]
    );
    assert_eq!(
        h.published("S", "amazon").0,
        0,
        "no channel sees the receipt"
    );
    let out = h.run(5, adjust("S", "dc", 3, 3, AdjustmentReason::RECEIPT, None));
    assert_eq!(
        fills(&out),
        vec![("shopify:1".into(), LineOutcome::RESERVED, 2, 0)]
    );
    // 7 on hand − 5 held → 2 on every channel.
    assert_eq!(h.published("S", "amazon").0, 2);
}

#[test]
fn a_fill_reports_the_line_under_its_latest_revision() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 0, 1));
    let mut l = backorder_line("1", 2, 1);
    l.paid = false;
    h.run(2, InventoryCommand::reserve(l.clone()));
    // Revision 2 pays: the line is unchanged, so it keeps its backorder.
    l.paid = true;
    l.revision = 2;
    h.run(3, InventoryCommand::reserve(l));
    let out = h.run(4, adjust("S", "dc", 2, 2, AdjustmentReason::RECEIPT, None));
    let revisions: Vec<i32> = out
        .iter()
        .filter_map(|o| match o {
            InventoryOutput::LineResult(r) => Some(r.revision),
            _ => None,
        })
        .collect();
    assert_eq!(revisions, [2]);
}

#[test]
fn a_cancelled_backorder_is_not_filled() {
    let mut h = Harness::new();
    h.run(1, snapshot("S", "dc", 0, 1));
    let l = backorder_line("1", 2, 1);
    h.run(2, InventoryCommand::reserve(l.clone()));
    h.run(3, InventoryCommand::release(l));
    assert!(h.sku("S").backorders.is_empty());
    let out = h.run(4, adjust("S", "dc", 5, 2, AdjustmentReason::RECEIPT, None));
    assert!(fills(&out).is_empty());
    assert_eq!(h.published("S", "amazon").0, 5);
}

#[test]
fn a_hard_hold_older_than_its_channels_max_age_of_100_is_released_and_reported() {
    let mut cfg = config();
    cfg.channels[0].hard_hold_max_age_ms = 100;
    let mut h = Harness {
        op: ReserveInventory::new(cfg),
        store: MemStore::new(),
    };
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        10,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    assert!(h.run(109, snapshot("S", "dc", 10, 2)).is_empty());
    let out = h.run(110, snapshot("S", "dc", 10, 3));
    assert!(out.contains(&InventoryOutput::HardHoldReleased {
        sku: "S".into(),
        order_key: "amazon:1".into(),
        channel: "amazon".into(),
        reserved: 3,
        age_ms: 100,
    }));
    assert_eq!(h.published("S", "amazon").0, 10);
}

#[test]
fn hard_holds_never_expire_on_a_channel_with_max_age_0() {
    let mut cfg = config();
    cfg.channels[0].hard_hold_max_age_ms = 0;
    let mut h = Harness {
        op: ReserveInventory::new(cfg),
        store: MemStore::new(),
    };
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        2,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, true)),
    );
    h.run(i64::MAX / 2, snapshot("S", "dc", 10, 2));
    assert_eq!(h.sku("S").stock.reserved, 3);
}

#[test]
fn soft_holds_follow_their_channels_ttl_500_not_the_default_1000() {
    let mut cfg = config();
    cfg.channels[0].soft_hold_ttl_ms = Some(500);
    let mut h = Harness {
        op: ReserveInventory::new(cfg),
        store: MemStore::new(),
    };
    h.run(1, snapshot("S", "dc", 10, 1));
    h.run(
        10,
        InventoryCommand::reserve(line("amazon", "1", "a", "S", 3, false)),
    );
    h.run(
        10,
        InventoryCommand::reserve(line("shopify", "2", "a", "S", 2, false)),
    );
    let out = h.run(510, snapshot("S", "dc", 10, 2));
    assert!(out.contains(&InventoryOutput::HoldExpired {
        sku: "S".into(),
        order_key: "amazon:1".into()
    }));
    assert_eq!(h.sku("S").stock.reserved, 2, "shopify's hold lasts 1000");
}

#[test]
fn an_erp_record_for_an_undeclared_location_is_refused_as_unknown_location() {
    let mut cfg = config();
    cfg.locations = vec!["dc".into()];
    let op = ReserveInventory::new(cfg);
    let mut store = MemStore::new();
    let mut out = Vec::new();
    let err = op
        .process(&mut store, 1, &snapshot("S", "popup", 5, 1), &mut out)
        .unwrap_err();
    assert_eq!(err.kind(), "unknown_location");
    op.process(&mut store, 2, &snapshot("S", "dc", 5, 1), &mut out)
        .unwrap();
}

#[test]
fn records_stored_in_the_first_format_still_read() {
    use super::lifecycle::{HoldV1, SkuRecordV1, SkuStockV1};
    let mut h = Harness::new();
    let stock = SkuStock {
        reserved: 3,
        ..SkuStock::default()
    };
    h.store.put(
        &sku_key("S"),
        &encode_value(&SkuRecordV1 {
            stock: SkuStockV1 {
                product: None,
                positions: vec![],
                reserved: 3,
                backordered: 0,
            },
            published: vec![],
        }),
    );
    let key = hold_key("S", "amazon:1", "a");
    h.store.put(
        &key,
        &encode_value(&HoldV1 {
            quantity: 3,
            reserved: 3,
            backordered: 0,
            hard: true,
            state: HoldState::Held,
            expires_at: None,
            sku: "S".into(),
            order_key: "amazon:1".into(),
        }),
    );
    assert_eq!(h.sku("S").stock, stock);
    let hold = lifecycle::load_hold(&h.store, &key).unwrap().unwrap();
    assert_eq!((hold.channel.as_str(), hold.held_at), ("amazon", 0));
    // The old hold is released by its cancellation as before.
    let out = h.run(
        5,
        InventoryCommand::release(line("amazon", "1", "a", "S", 3, true)),
    );
    assert_eq!(results(&out), vec![(LineOutcome::RELEASED, 0, 0)]);
    assert_eq!(h.sku("S").stock.reserved, 0);
}

#[test]
fn the_hold_line_id_is_read_back_from_its_key() {
    let hold = Hold {
        quantity: 1,
        reserved: 1,
        backordered: 0,
        hard: true,
        state: HoldState::Held,
        expires_at: None,
        sku: "S:1".into(),
        order_key: "shopify:9".into(),
        channel: "shopify".into(),
        held_at: 0,
    };
    let key = hold_key("S:1", "shopify:9", "line-7");
    assert_eq!(hold_line_id(&key, &hold), "line-7");
}
