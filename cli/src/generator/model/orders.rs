//! Channel orders: new orders (steady and flash sale), repeated webhook deliveries,
//! revisions and cancellations, each wrapped in the raw envelope
//! `{channel, delivery_id, received_at, payload}` with the payload in its channel's shape.

use rand::Rng;
use serde_json::{json, Value};
use shelfsync_topology::AdapterKind;

use shelfsync_pipeline::{Error, Result};

use super::{Channel, EventKind, GenRecord, Target, TrafficModel, RECENT_ORDERS};
use crate::generator::render::{self, CUSTOMERS};

/// One order line as the channel knows it.
#[derive(Debug, Clone)]
pub(crate) struct Line {
    /// Numeric id (Shopify line item id, Amazon `OrderItemId`, generic `line_id`).
    pub(crate) id: u64,
    /// 1-based line number (Walmart `lineNumber`).
    pub(crate) number: usize,
    pub(crate) sku: usize,
    /// Units the buyer ordered.
    pub(crate) ordered: i64,
    /// Units still wanted after edits and partial cancellations (0: removed).
    pub(crate) remaining: i64,
}

/// An order the generator may repeat, revise or cancel.
#[derive(Debug, Clone)]
pub(crate) struct OrderState {
    pub(crate) channel: usize,
    /// Numeric part of the id (Shopify id, Walmart purchase order id).
    pub(crate) number: u64,
    pub(crate) order_id: String,
    pub(crate) customer: usize,
    pub(crate) placed_at_ms: i64,
    /// Adapter-specific status: Shopify `financial_status`, Amazon `OrderStatus`.
    pub(crate) status: &'static str,
    pub(crate) paid: bool,
    pub(crate) cancelled: bool,
    pub(crate) cancelled_at_ms: i64,
    pub(crate) lines: Vec<Line>,
    pub(crate) flash: bool,
    pub(crate) deliveries: u32,
    /// Every payload sent so far, oldest first (repeats pick one of them).
    pub(crate) payloads: Vec<Value>,
}

impl OrderState {
    fn key(&self, channels: &[Channel]) -> String {
        shelfsync_schemas::order_key(&channels[self.channel].name, &self.order_id)
    }

    pub(crate) fn live_lines(&self) -> usize {
        self.lines.iter().filter(|l| l.remaining > 0).count()
    }
}

impl TrafficModel {
    /// A SKU for steady traffic: popularity is skewed (a few SKUs sell much more than the long
    /// tail), and flash-sale SKUs never come up.
    pub(super) fn pick_sku(&mut self) -> usize {
        let n = self.catalog.len();
        loop {
            let u: f64 = self.rng.random();
            let i = ((u * u) * n as f64) as usize;
            // Spread the popular SKUs over the categories instead of the first indexes.
            let i = (i.min(n - 1) * 7919) % n;
            if !self.is_flash[i] {
                return i;
            }
        }
    }

    fn pick_channel(&mut self) -> usize {
        let total: u32 = self.channels.iter().map(|c| c.weight).sum();
        let mut roll = self.rng.random_range(0..total.max(1));
        for (i, c) in self.channels.iter().enumerate() {
            if roll < c.weight {
                return i;
            }
            roll -= c.weight;
        }
        0
    }

    fn pick_quantity(&mut self) -> i64 {
        match self.rng.random_range(0..100) {
            0..70 => 1,
            70..90 => 2,
            90..97 => 3,
            _ => self.rng.random_range(4..=6),
        }
    }

    /// The next steady-traffic order record: a new order, a repeat, a revision or a
    /// cancellation.
    pub(crate) fn next_order_event(&mut self, now: i64) -> Result<GenRecord> {
        let roll = self.rng.random_range(0..100);
        let (dup, cancel, revise) = (
            self.duplicate_pct,
            self.duplicate_pct + self.cancel_pct,
            self.duplicate_pct + self.cancel_pct + self.revision_pct,
        );
        let made = if roll < dup {
            self.duplicate(now)?
        } else if roll < cancel {
            self.change(now, true)?
        } else if roll < revise {
            self.change(now, false)?
        } else {
            None
        };
        match made {
            Some(rec) => Ok(rec),
            None => self.new_order(now, false),
        }
    }

    /// The next flash-sale order: one or two units of a flash-sale SKU, sometimes with a
    /// regular SKU in the same basket.
    pub(crate) fn next_flash_order(&mut self, now: i64) -> Result<GenRecord> {
        self.new_order(now, true)
    }

    fn new_order(&mut self, now: i64, flash: bool) -> Result<GenRecord> {
        let channel = self.pick_channel();
        let adapter = self.channels[channel].adapter;
        self.next_order += 1;
        let n = self.next_order;
        let mut skus: Vec<(usize, i64)> = Vec::new();
        if flash && !self.flash.is_empty() {
            let f = self.flash[self.rng.random_range(0..self.flash.len())];
            skus.push((f, self.rng.random_range(1..=2)));
            if self.rng.random_range(0..5) == 0 {
                let s = self.pick_sku();
                let q = self.pick_quantity();
                skus.push((s, q));
            }
        } else {
            let lines = match self.rng.random_range(0..100) {
                0..60 => 1,
                60..85 => 2,
                85..95 => 3,
                _ => 4,
            };
            while skus.len() < lines {
                let s = self.pick_sku();
                if !skus.iter().any(|(x, _)| *x == s) {
                    let q = self.pick_quantity();
                    skus.push((s, q));
                }
            }
        }
        let lines = skus
            .into_iter()
            .enumerate()
            .map(|(i, (sku, qty))| {
                self.next_line += 1;
                Line {
                    id: 15_874_300_000_000 + self.next_line,
                    number: i + 1,
                    sku,
                    ordered: qty,
                    remaining: qty,
                }
            })
            .collect();
        let roll = self.rng.random_range(0..100);
        let (number, order_id, status, paid) = match adapter {
            AdapterKind::Shopify => {
                let id = 6_100_000_000_000 + self.id_base + n;
                let (status, paid) = match roll {
                    0..6 => ("pending", false),
                    6..10 => ("authorized", true),
                    _ => ("paid", true),
                };
                (id, id.to_string(), status, paid)
            }
            AdapterKind::Amazon => {
                let id = format!(
                    "1{:02}-{:07}-{:07}",
                    self.rng.random_range(11..100),
                    n % 10_000_000,
                    self.rng.random_range(1_000_000..10_000_000)
                );
                let (status, paid) = if roll < 15 {
                    ("Pending", false)
                } else {
                    ("Unshipped", true)
                };
                (n, id, status, paid)
            }
            AdapterKind::Walmart => {
                let id = 108_800_000_000_000 + self.id_base + n;
                (id, id.to_string(), "Created", true)
            }
            AdapterKind::Generic => {
                let id = format!(
                    "{:02}-{:05}-{:05}",
                    10 + self.id_base / 10_000_000 % 90,
                    (n / 100_000) % 100_000,
                    n % 100_000
                );
                (n, id, if roll < 8 { "unpaid" } else { "paid" }, roll >= 8)
            }
            AdapterKind::Ebay => {
                let id = format!(
                    "{:02}-{:05}-{:05}",
                    10 + self.id_base / 10_000_000 % 90,
                    (n / 100_000) % 100_000,
                    n % 100_000
                );
                (n, id, if roll < 8 { "PENDING" } else { "PAID" }, roll >= 8)
            }
        };
        let order = OrderState {
            channel,
            number,
            order_id,
            customer: self.rng.random_range(0..CUSTOMERS),
            // Bought a few seconds before the webhook fired.
            placed_at_ms: now - self.rng.random_range(500..5_000),
            status,
            paid,
            cancelled: false,
            cancelled_at_ms: 0,
            lines,
            flash,
            deliveries: 0,
            payloads: Vec::new(),
        };
        let kind = if flash {
            EventKind::FlashOrder
        } else {
            EventKind::NewOrder
        };
        if self.recent.len() == RECENT_ORDERS {
            self.recent.pop_front();
        }
        self.recent.push_back(order);
        let idx = self.recent.len() - 1;
        self.deliver(idx, now, kind, None)
    }

    /// Repeats an earlier delivery of a recent order: usually its latest payload, sometimes an
    /// older revision (a late retry).
    fn duplicate(&mut self, now: i64) -> Result<Option<GenRecord>> {
        if self.recent.is_empty() {
            return Ok(None);
        }
        let idx = self.rng.random_range(0..self.recent.len());
        let revisions = self.recent[idx].payloads.len();
        if revisions == 0 {
            return Ok(None);
        }
        let which = if revisions > 1 && self.rng.random_range(0..10) == 0 {
            self.rng.random_range(0..revisions - 1)
        } else {
            revisions - 1
        };
        self.deliver(idx, now, EventKind::Duplicate, Some(which))
            .map(Some)
    }

    /// Revises or cancels a recent order that is still open (flash-sale orders are left alone so
    /// that the sale's sell-out stays visible).
    fn change(&mut self, now: i64, cancel: bool) -> Result<Option<GenRecord>> {
        for _ in 0..8 {
            if self.recent.is_empty() {
                return Ok(None);
            }
            let idx = self.rng.random_range(0..self.recent.len());
            if self.recent[idx].cancelled || self.recent[idx].flash {
                continue;
            }
            let adapter = self.channels[self.recent[idx].channel].adapter;
            let reduce_roll = self.rng.random_range(0..2);
            let order = &mut self.recent[idx];
            if cancel {
                order.cancelled = true;
                order.cancelled_at_ms = now;
                order.status = match adapter {
                    AdapterKind::Shopify if order.paid => "refunded",
                    AdapterKind::Shopify => "voided",
                    AdapterKind::Amazon => "Canceled",
                    _ => order.status,
                };
                return self
                    .deliver(idx, now, EventKind::Cancellation, None)
                    .map(Some);
            }
            if revise(order, adapter, reduce_roll == 0) {
                return self.deliver(idx, now, EventKind::Revision, None).map(Some);
            }
        }
        Ok(None)
    }

    /// Renders (or, for a repeat, reuses) the payload of `recent[idx]` and wraps it in an
    /// envelope with a fresh delivery id.
    fn deliver(
        &mut self,
        idx: usize,
        now: i64,
        kind: EventKind,
        repeat: Option<usize>,
    ) -> Result<GenRecord> {
        let uuid = self.uuid();
        let channels = &self.channels;
        let catalog = &self.catalog;
        let order = &mut self.recent[idx];
        let channel = &channels[order.channel];
        let payload = match repeat.and_then(|i| order.payloads.get(i)) {
            Some(p) => p.clone(),
            None => {
                let p = render::render(order, channel.adapter, catalog, now);
                order.payloads.push(p.clone());
                p
            }
        };
        order.deliveries += 1;
        let delivery_id = match channel.adapter {
            AdapterKind::Shopify => uuid,
            AdapterKind::Amazon => format!("sp-poll-{}-{}", order.order_id, order.deliveries),
            AdapterKind::Walmart => format!("wm-poll-{}-{}", order.order_id, order.deliveries),
            AdapterKind::Generic => format!(
                "{}-bridge-{}-r{}",
                channel.name, order.order_id, order.deliveries
            ),
            AdapterKind::Ebay => format!("ebay-poll-{}-{}", order.order_id, order.deliveries),
        };
        let envelope = json!({
            "channel": channel.name,
            "delivery_id": delivery_id,
            "received_at": now,
            "payload": payload,
        });
        let value = serde_json::to_vec(&envelope)
            .map_err(|e| Error::Bug(format!("generator envelope does not serialize: {e}")))?;
        Ok(GenRecord {
            target: Target::RawOrders,
            kind,
            key: order.key(channels),
            value,
        })
    }

    /// A version-4 UUID from the seeded generator (Shopify's `X-Shopify-Webhook-Id`).
    fn uuid(&mut self) -> String {
        let a: u128 = self.rng.random();
        // Version 4 (random), variant 10xx.
        let version_mask: u128 = 0xf << 76;
        let variant_mask: u128 = 0x3 << 62;
        let a = (a & !version_mask) | (0x4 << 76);
        let a = (a & !variant_mask) | (0x2 << 62);
        let h = format!("{a:032x}");
        format!(
            "{}-{}-{}-{}-{}",
            &h[0..8],
            &h[8..12],
            &h[12..16],
            &h[16..20],
            &h[20..32]
        )
    }
}

/// Applies one revision the channel could send; false when the order has none left.
fn revise(order: &mut OrderState, adapter: AdapterKind, reduce_first: bool) -> bool {
    let live = order.live_lines();
    let reducible = order.lines.iter().position(|l| l.remaining >= 2);
    let removable = if live >= 2 {
        order.lines.iter().rposition(|l| l.remaining > 0)
    } else {
        None
    };
    let edit = |order: &mut OrderState| -> bool {
        let target = if reduce_first {
            reducible.map(|i| (i, 1)).or(removable.map(|i| (i, 0)))
        } else {
            removable.map(|i| (i, 0)).or(reducible.map(|i| (i, 1)))
        };
        match target {
            Some((i, 1)) => order.lines[i].remaining -= 1,
            Some((i, _)) => order.lines[i].remaining = 0,
            None => return false,
        }
        true
    };
    match adapter {
        AdapterKind::Shopify => {
            if order.status == "pending" {
                order.status = "paid";
                order.paid = true;
                true
            } else if edit(order) {
                order.status = "partially_refunded";
                true
            } else {
                false
            }
        }
        // Amazon orders do not change lines; an order moves from Pending to Unshipped once the
        // payment is authorized.
        AdapterKind::Amazon => {
            if order.status == "Pending" {
                order.status = "Unshipped";
                order.paid = true;
                true
            } else {
                false
            }
        }
        // The seller cancels units or whole lines it cannot ship.
        AdapterKind::Walmart => edit(order),
        AdapterKind::Generic => {
            if !order.paid {
                order.paid = true;
                order.status = "paid";
                true
            } else {
                edit(order)
            }
        }
        // eBay orders keep their lines; a pending payment completes.
        AdapterKind::Ebay => {
            if order.paid {
                false
            } else {
                order.paid = true;
                order.status = "PAID";
                true
            }
        }
    }
}
