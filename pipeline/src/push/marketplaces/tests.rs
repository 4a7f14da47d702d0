//! Tests of what the marketplaces share: the idempotency keys and the choice of batch.

use shelfsync_topology::PushKind;

use super::testing::update;
use super::{for_kind, idempotency_key, update_keys_header};

#[test]
fn update_keys_and_idempotency_keys() {
    let a = update("SKU,1", 4, 7);
    let b = update("B", 0, 2);
    assert_eq!(
        update_keys_header("outlet", &[&a, &b]),
        "outlet|SKU%2C1|7,outlet|B|2"
    );
    assert_eq!(idempotency_key("outlet", &[&b], &[]), "outlet|B|2");
    assert_eq!(idempotency_key("outlet", &[&a, &b], &[]).len(), 32);
    assert_ne!(
        idempotency_key("outlet", &[&b], &["Some(1)".into()]),
        idempotency_key("outlet", &[&b], &["Some(2)".into()])
    );
}

#[test]
fn feeds_only_for_a_backlog_and_never_for_a_stock_out() {
    let amazon = for_kind(PushKind::Amazon);
    assert_eq!(amazon.batch_for(false, 10, 50, true), 1);
    assert_eq!(amazon.batch_for(false, 50, 50, true), 50);
    assert_eq!(amazon.batch_for(true, 500, 50, true), 1);
    // createFeed at its limit: the backlog goes out through patchListingsItem meanwhile.
    assert_eq!(amazon.batch_for(false, 500, 50, false), 1);
    let walmart = for_kind(PushKind::Walmart);
    assert_eq!(walmart.batch_for(false, 50, 50, true), 50);
    assert_eq!(walmart.batch_for(true, 500, 50, true), 1);
    assert_eq!(walmart.batch_for(false, 500, 50, false), 1);
    let ebay = for_kind(PushKind::Ebay);
    assert_eq!(ebay.batch_for(true, 3, 25, true), 25);
    assert_eq!(ebay.batch_for(false, 30, 25, false), 25);
    assert!(ebay.feed().is_none());
}
