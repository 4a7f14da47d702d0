//! A generated retail day whose results depend on the order events are applied in: scarce
//! stock, paid and unpaid orders (soft holds expire after 30 minutes of event time), ERP
//! shipments that consume the reservations of the orders they name, receipts, recounts,
//! cancellations, repeated deliveries and product changes, in event-time order.
//!
//! Fed as a backlog, the ERP path (one hop to the inventory stage) overtakes the order path
//! (two hops); only event-time alignment gives the results of the events applied in time order,
//! which [`crate::scenario::Model`] computes when fed [`Day::events`] as they are.

use shelfsync_schemas::{AdjustmentReason, InventoryChangeKind};

use crate::rng::Rng;
use crate::scenario::{base_timestamp, generic_order, product, stock, Input, InputRecord};

/// Event time between two events of the day (ms).
const STEP_MS: i64 = 20_000;
/// Events between an order and the earliest shipment of it (so that, fed live, the shipment is
/// produced well after its order).
const SHIP_AFTER: usize = 15;

struct Placed {
    channel: &'static str,
    id: String,
    delivery: u32,
    paid: bool,
    lines: Vec<(String, String, i64)>,
    at: usize,
    shipped: bool,
    cancelled: bool,
}

impl Placed {
    fn key(&self) -> String {
        format!("{}:{}", self.channel, self.id)
    }

    fn location(&self) -> &'static str {
        if self.channel == "store-nyc" {
            "store-nyc"
        } else {
            "dc-east"
        }
    }

    fn payload(&self, delivery: u32, cancelled: bool) -> Vec<u8> {
        let lines: Vec<(&str, &str, i64)> = self
            .lines
            .iter()
            .map(|(l, s, q)| (l.as_str(), s.as_str(), *q))
            .collect();
        generic_order(
            self.channel,
            &self.id,
            &format!("d-{}-{delivery}", self.id),
            self.paid,
            cancelled,
            &lines,
        )
    }
}

/// The day's input records, in event-time order (every timestamp distinct).
pub struct Day {
    /// Every input record, by timestamp.
    pub events: Vec<InputRecord>,
}

impl Day {
    /// `events` events after the opening catalog and stock, from `seed`.
    pub fn generate(seed: u64, events: usize) -> Self {
        let mut rng = Rng::new(seed);
        let start = base_timestamp() - 3 * 3_600_000;
        let mut out: Vec<InputRecord> = Vec::new();
        let mut push = |input: Input, key: String, value: Vec<u8>| {
            let timestamp = start + STEP_MS * out.len() as i64;
            out.push(InputRecord {
                input,
                key: Some(key.into_bytes()),
                value,
                timestamp,
            });
        };
        let skus: Vec<String> = (0..10).map(|i| format!("DAY-{i:02}")).collect();
        let mut seq = std::collections::BTreeMap::<(String, &str), i64>::new();
        let mut next_seq = |sku: &str, loc: &'static str| {
            let s = seq.entry((sku.to_string(), loc)).or_insert(0);
            *s += 1;
            *s
        };
        let mut product_seq = std::collections::BTreeMap::<String, i64>::new();
        for (i, sku) in skus.iter().enumerate() {
            product_seq.insert(sku.clone(), 1);
            push(
                Input::ErpProducts,
                sku.clone(),
                product(sku, 1, (i % 2) as i64, 0, vec![]),
            );
        }
        for sku in &skus {
            for loc in ["dc-east", "store-nyc"] {
                let qty = 2 + rng.below(5) as i64;
                let s = next_seq(sku, loc);
                push(
                    Input::ErpInventory,
                    sku.clone(),
                    stock(sku, loc, InventoryChangeKind::SNAPSHOT, qty, s, None, None),
                );
            }
        }
        let mut orders: Vec<Placed> = Vec::new();
        for n in 0..events {
            let roll = rng.below(100);
            if roll < 45 || orders.is_empty() {
                let channel = if rng.pct(50) { "ebay" } else { "store-nyc" };
                let nlines = 1 + rng.below(2) as usize;
                let lines = (0..nlines)
                    .map(|l| {
                        let sku = skus[rng.below(skus.len() as u64) as usize].clone();
                        (format!("{}", l + 1), sku, 1 + rng.below(3) as i64)
                    })
                    .collect();
                let placed = Placed {
                    channel,
                    id: format!("D{n:04}"),
                    delivery: 1,
                    paid: rng.pct(70),
                    lines,
                    at: n,
                    shipped: false,
                    cancelled: false,
                };
                push(Input::RawOrders, placed.key(), placed.payload(1, false));
                orders.push(placed);
            } else if roll < 62 {
                // Ship an older, paid, open order: each line consumes its hold.
                let ready: Vec<usize> = (0..orders.len())
                    .filter(|&i| {
                        let o = &orders[i];
                        o.paid && !o.shipped && !o.cancelled && o.at + SHIP_AFTER <= n
                    })
                    .collect();
                if ready.is_empty() {
                    continue;
                }
                let i = ready[rng.below(ready.len() as u64) as usize];
                orders[i].shipped = true;
                let (key, loc) = (orders[i].key(), orders[i].location());
                for (line, sku, qty) in orders[i].lines.clone() {
                    let s = next_seq(&sku, loc);
                    push(
                        Input::ErpInventory,
                        sku.clone(),
                        stock(
                            &sku,
                            loc,
                            InventoryChangeKind::ADJUSTMENT,
                            -qty,
                            s,
                            Some(AdjustmentReason::SHIPMENT),
                            Some((&key, &line)),
                        ),
                    );
                }
            } else if roll < 84 {
                // A receipt (+1..4) or a recount (0..5) at a random position.
                let sku = skus[rng.below(skus.len() as u64) as usize].clone();
                let loc = if rng.pct(50) { "dc-east" } else { "store-nyc" };
                let s = next_seq(&sku, loc);
                let (kind, qty, reason) = if roll < 77 {
                    let qty = 1 + rng.below(4) as i64;
                    (
                        InventoryChangeKind::ADJUSTMENT,
                        qty,
                        Some(AdjustmentReason::RECEIPT),
                    )
                } else {
                    (InventoryChangeKind::SNAPSHOT, rng.below(6) as i64, None)
                };
                push(
                    Input::ErpInventory,
                    sku.clone(),
                    stock(&sku, loc, kind, qty, s, reason, None),
                );
            } else if roll < 90 {
                // Cancel an open, unshipped order.
                let open: Vec<usize> = (0..orders.len())
                    .filter(|&i| !orders[i].shipped && !orders[i].cancelled)
                    .collect();
                if open.is_empty() {
                    continue;
                }
                let i = open[rng.below(open.len() as u64) as usize];
                orders[i].cancelled = true;
                orders[i].delivery += 1;
                let payload = orders[i].payload(orders[i].delivery, true);
                push(Input::RawOrders, orders[i].key(), payload);
            } else if roll < 96 {
                // The channel delivers an earlier payload again (an exact repeat).
                let i = rng.below(orders.len() as u64) as usize;
                let payload = orders[i].payload(1, false);
                push(Input::RawOrders, orders[i].key(), payload);
            } else {
                let sku = skus[rng.below(skus.len() as u64) as usize].clone();
                let s = product_seq.entry(sku.clone()).or_insert(1);
                *s += 1;
                let units = rng.below(3) as i64;
                push(
                    Input::ErpProducts,
                    sku.clone(),
                    product(&sku, *s, units, 0, vec![]),
                );
            }
        }
        Self { events: out }
    }

    /// The day as a backlog arrives when the ERP topics were written first: every ERP record,
    /// then every raw order (each topic still in its own time order).
    pub fn erp_first(&self) -> Vec<InputRecord> {
        let (erp, orders): (Vec<_>, Vec<_>) = self
            .events
            .iter()
            .cloned()
            .partition(|r| r.input != Input::RawOrders);
        erp.into_iter().chain(orders).collect()
    }
}
