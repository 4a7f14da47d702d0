//! The reservation lifecycle on Apache Kafka (issue 16), with real marketplace payload shapes.
//!
//! - An Amazon order fulfilled by Amazon (the SP-API `getOrder` example with
//!   `FulfillmentChannel: AFN`) and a Walmart order fulfilled by WFS (the `getAnOrder` example
//!   with `shipNode.type: WFSFulfilled`, its line not shipped yet) hold none of our stock: their
//!   SKUs' availability never moves, yet both orders are accepted and reach the ERP marked as
//!   marketplace-fulfilled, with their prices.
//! - A paid order for 3 units of a SKU with 1 on hand, on a `backorder` channel, holds 1 and
//!   backorders 2 (status `BACKORDERED`). A receipt of 5 fills the backorder before any channel
//!   sees the stock: no availability event ever offers the receipt's units as free (without
//!   netting and filling, the store channel would publish 5), and the order's status becomes
//!   `ACCEPTED` — one validated order, two statuses of its revision 1.

use std::path::Path;
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use serde_json::{json, Value};
use shelfsync_schemas::{
    AdjustmentReason, ChannelAvailability, FulfilledBy, InventoryChangeKind, OrderStatus,
    OrderStatusCode, ValidatedOrder,
};
use shelfsync_tests::harness::{no_duplicate_event_ids, Setup};
use shelfsync_tests::kafka_io::wait_for;
use shelfsync_tests::scenario::{generic_order, stock, Input, InputRecord};
use shelfsync_topology::TopicId;

const BIN: &str = env!("CARGO_BIN_EXE_shelfsync-under-test");
const WAIT: Duration = Duration::from_secs(120);
const AMAZON_SKU: &str = "NABetaASINB00551Q3CS";
const WALMART_SKU: &str = "YHY-FN25200B2";
const BACKORDER_SKU: &str = "BO-1";

fn marketplaces() -> Option<std::path::PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/marketplaces");
    dir.is_dir().then_some(dir)
}

fn load(dir: &Path, name: &str) -> Result<Value> {
    Ok(serde_json::from_slice(
        &std::fs::read(dir.join(name)).with_context(|| name.to_string())?,
    )?)
}

fn envelope(channel: &str, delivery: &str, payload: Value) -> Vec<u8> {
    serde_json::to_vec(&json!({
        "channel": channel,
        "delivery_id": delivery,
        "received_at": 1_772_000_000_000i64,
        "payload": payload,
    }))
    .unwrap_or_default()
}

fn record(input: Input, key: &str, value: Vec<u8>, ts: i64) -> InputRecord {
    InputRecord {
        input,
        key: Some(key.as_bytes().to_vec()),
        value,
        timestamp: ts,
    }
}

#[test]
fn marketplace_fulfilled_orders_hold_nothing_and_a_receipt_fills_a_backorder_first() -> Result<()> {
    let Some(dir) = marketplaces() else {
        // A clone without `../shared` beside it; CI always has it.
        ensure!(
            std::env::var_os("CI").is_none(),
            "../shared/fixtures/marketplaces is missing"
        );
        eprintln!("../shared/fixtures/marketplaces not found: skipped");
        return Ok(());
    };
    let s = Setup::new(BIN, "lifecycle", 1)?;
    let b = s.broker.bootstrap();
    let ts = shelfsync_tests::scenario::base_timestamp();
    let snapshot = |sku: &str, location: &str, qty: i64| {
        record(
            Input::ErpInventory,
            sku,
            stock(
                sku,
                location,
                InventoryChangeKind::SNAPSHOT,
                qty,
                1,
                None,
                None,
            ),
            ts,
        )
    };
    s.produce(&[
        snapshot(AMAZON_SKU, "dc-east", 10),
        snapshot(WALMART_SKU, "dc-east", 10),
        snapshot(BACKORDER_SKU, "store-nyc", 1),
    ])?;
    let p = s.start("a")?;
    let availability = s.topic(TopicId::Availability);
    // 3 SKUs × 5 channels: every first evaluation is published.
    wait_for(&b, &availability, WAIT, |r| r.len() >= 15).with_context(|| p.log_tail())?;

    // Amazon: the SP-API getOrder example, fulfilled by Amazon, with its getOrderItems.
    let mut order = load(&dir, "amazon-getOrder-response.json")?;
    order["payload"]["FulfillmentChannel"] = json!("AFN");
    let mut items = load(&dir, "amazon-getOrderItems-response.json")?;
    items["payload"]["AmazonOrderId"] = order["payload"]["AmazonOrderId"].clone();
    let amazon = json!({"order": order, "items": items});
    // Walmart: the getAnOrder example, fulfilled by WFS, its line acknowledged (not shipped).
    let mut walmart = load(&dir, "walmart-getAnOrder-response.json")?;
    walmart["order"]["shipNode"]["type"] = json!("WFSFulfilled");
    walmart["order"]["orderLines"]["orderLine"][0]["orderLineStatuses"]["orderLineStatus"][0]
        ["status"] = json!("Acknowledged");
    s.produce(&[
        record(
            Input::RawOrders,
            "amazon",
            envelope("amazon", "afn-1", amazon),
            ts + 1_000,
        ),
        record(
            Input::RawOrders,
            "walmart",
            envelope("walmart", "wfs-1", walmart),
            ts + 1_000,
        ),
        record(
            Input::RawOrders,
            "store-nyc:BO1",
            generic_order(
                "store-nyc",
                "BO1",
                "bo-1",
                true,
                false,
                &[("1", BACKORDER_SKU, 3)],
            ),
            ts + 2_000,
        ),
    ])?;
    let statuses = s.topic(TopicId::OrderStatus);
    wait_for(&b, &statuses, WAIT, |r| r.len() >= 3).with_context(|| p.log_tail())?;

    s.produce(&[record(
        Input::ErpInventory,
        BACKORDER_SKU,
        stock(
            BACKORDER_SKU,
            "store-nyc",
            InventoryChangeKind::ADJUSTMENT,
            5,
            2,
            Some(AdjustmentReason::RECEIPT),
            None,
        ),
        ts + 3_000,
    )])?;
    let status_of =
        |records: &[shelfsync_tests::kafka_io::Record]| -> Vec<(String, OrderStatusCode)> {
            records
                .iter()
                .filter_map(|r| {
                    shelfsync_schemas::avro::decode::<OrderStatus>(r.value.as_deref()?).ok()
                })
                .map(|s| (s.order_key, s.status))
                .collect()
        };
    let got = wait_for(&b, &statuses, WAIT, |r| r.len() >= 4).with_context(|| p.log_tail())?;
    let got = status_of(&got);
    let of = |key: &str| -> Vec<OrderStatusCode> {
        got.iter()
            .filter(|(k, _)| k == key)
            .map(|(_, s)| *s)
            .collect()
    };
    let amazon_key = got
        .iter()
        .find(|(k, _)| k.starts_with("amazon:"))
        .map(|(k, _)| k.clone())
        .context("no status for the Amazon order")?;
    let walmart_key = got
        .iter()
        .find(|(k, _)| k.starts_with("walmart:"))
        .map(|(k, _)| k.clone())
        .context("no status for the Walmart order")?;
    ensure!(of(&amazon_key) == [OrderStatusCode::ACCEPTED], "{got:?}");
    ensure!(of(&walmart_key) == [OrderStatusCode::ACCEPTED], "{got:?}");
    ensure!(
        of("store-nyc:BO1") == [OrderStatusCode::BACKORDERED, OrderStatusCode::ACCEPTED],
        "the fill is a status change of the order: {got:?}"
    );

    std::thread::sleep(Duration::from_secs(2));
    let (avail_records, avail) = s.read::<ChannelAvailability>(TopicId::Availability)?;
    no_duplicate_event_ids(&availability, &avail_records)?;
    for sku in [AMAZON_SKU, WALMART_SKU] {
        let versions: Vec<i64> = avail
            .iter()
            .filter(|a| a.sku == sku)
            .map(|a| a.version)
            .collect();
        ensure!(
            versions.iter().all(|v| *v == 1),
            "{sku}: merchant availability moved for a marketplace-fulfilled order: {versions:?}"
        );
    }
    // The store channel (100 %, backorder): 1 on hand → 1; the order holds 1 and backorders 2
    // → 0; the receipt of 5 fills the 2 first → 6 − 3 = 3, never the 5 the receipt alone offers.
    let store: Vec<i64> = avail
        .iter()
        .filter(|a| a.sku == BACKORDER_SKU && a.channel == "store-nyc")
        .map(|a| a.quantity)
        .collect();
    ensure!(
        store == [1, 0, 3],
        "store-nyc availability of {BACKORDER_SKU}: {store:?}"
    );
    ensure!(
        avail
            .iter()
            .filter(|a| a.sku == BACKORDER_SKU)
            .all(|a| a.quantity <= 3),
        "a channel saw the receipt before the backorder was filled: {avail:?}"
    );

    let (_, validated) = s.read::<ValidatedOrder>(TopicId::ValidatedOrders)?;
    let amazon_erp = validated
        .iter()
        .find(|v| v.order_key == amazon_key)
        .context("the Amazon order did not reach the ERP")?;
    ensure!(
        amazon_erp
            .lines
            .iter()
            .all(|l| l.fulfilled_by == FulfilledBy::MARKETPLACE && l.reserved == 0),
        "{amazon_erp:?}"
    );
    ensure!(
        amazon_erp.lines.iter().all(|l| l.unit_price.is_some()),
        "prices reach the ERP: {amazon_erp:?}"
    );
    ensure!(
        validated
            .iter()
            .filter(|v| v.order_key == "store-nyc:BO1")
            .count()
            == 1,
        "one validated order per revision: {validated:?}"
    );
    p.stop()?;
    Ok(())
}
