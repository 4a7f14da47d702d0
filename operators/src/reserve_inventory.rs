//! `reserve_inventory`: the inventory stage, keyed by SKU. It keeps each SKU's positions,
//! product master and reservations, reserves and releases order lines, applies ERP snapshots,
//! adjustments and shipments, and after every step re-evaluates the touched SKUs' channels with
//! [`crate::allocate_channels`], emitting an availability event only when a channel's number
//! changes.
//!
//! Rules (DESIGN §4):
//! - ERP `SNAPSHOT` sets on-hand, `ADJUSTMENT` adds a delta; both carry `erp_sequence`, shared and
//!   monotonic per (SKU, location): a record at or below the last applied sequence is ignored.
//!   A product record is ignored likewise against the SKU's last product sequence.
//! - A `SHIPMENT` adjustment naming an order line consumes that line's hold in the same step as it
//!   lowers on-hand, so the units are never counted twice. A shipment that arrives before the
//!   line's reservation still settles it: the line is recorded as shipped, and when it comes it
//!   holds nothing.
//! - A line reserves against physical stock (Σ max(0, on-hand) − reserved), so safety stock
//!   absorbs oversell from channel lag. Short stock: the channel's policy `reject`s the line (holds
//!   nothing) or `backorder`s the shortfall (holds what is there).
//! - Unpaid lines hold softly until `soft_hold_ttl` of stream time has passed; paid lines hold
//!   hard. Reserving the same line with the same quantity again is a no-op (a paid revision makes
//!   a soft hold hard); a changed quantity is released and evaluated anew; an earlier rejection
//!   of an unchanged line stands; a line whose soft hold expired is evaluated anew.
//! - One input is one step: expiries due, then the record, then each touched SKU's channels once.
//!   The first evaluation of a (channel, SKU) publishes version 1 even when it is 0.

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{
    stable_id, AdjustmentReason, ChannelAvailability, CommandKind, InventoryChange,
    InventoryChangeKind, InventoryCommand, LineCommand, LineOutcome, LineResult, ProductChange,
};

use crate::allocate_channels::{channel_quantity, Position, SkuStock};
use crate::state::{advance_stream_time, compose_key, ExpiryIndex};
use crate::{InventoryConfig, Operator, OperatorError, OversellPolicy, StateStore, StoreSpec};

/// What one inventory step emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InventoryOutput {
    /// The outcome of a line command (to `<app>-line-results`, key: order key).
    LineResult(LineResult),
    /// A channel's new availability (to `retail.channel.availability`, key: `channel|sku`).
    Availability(ChannelAvailability),
    /// An ERP record at or below the last applied sequence was ignored (for metrics).
    StaleIgnored {
        /// SKU.
        sku: String,
    },
    /// A soft hold expired and was released (for metrics).
    HoldExpired {
        /// SKU.
        sku: String,
        /// Order key.
        order_key: String,
    },
    /// A hard hold reached its channel's `hard_hold_max_age` and was released as forgotten
    /// (a shipment the ERP never posted): logged and counted.
    HardHoldReleased {
        /// SKU.
        sku: String,
        /// Order key.
        order_key: String,
        /// Channel.
        channel: String,
        /// Units it still held.
        reserved: i64,
        /// How long it was held, in stream time (ms).
        age_ms: i64,
    },
}

/// The published state of one channel for a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPublished {
    /// Channel.
    pub channel: String,
    /// Last published quantity.
    pub quantity: i64,
    /// Its version (1, 2, 3…).
    pub version: i64,
}

/// Everything the inventory stage keeps for one SKU (besides its line holds).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SkuRecord {
    /// Stock, product and reservations.
    pub stock: SkuStock,
    /// What each channel last published, in configuration order.
    pub published: Vec<ChannelPublished>,
    /// Backordered lines waiting for stock, in fill order (oldest order first).
    pub backorders: Vec<Backorder>,
}

/// The state of one order line's hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HoldState {
    /// Units are held (`reserved`), possibly with a backordered shortfall.
    Held,
    /// The line was rejected; the rejection stands while the line is unchanged.
    Rejected,
    /// The line shipped; kept for a while so repeats stay no-ops.
    Shipped,
}

/// One order line's hold on a SKU.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hold {
    /// Units ordered.
    pub quantity: i64,
    /// Units held.
    pub reserved: i64,
    /// Units backordered.
    pub backordered: i64,
    /// Paid (hard) or not (soft).
    pub hard: bool,
    /// Hold state.
    pub state: HoldState,
    /// When the record expires (soft hold TTL, or retention of a rejected/shipped line).
    pub expires_at: Option<i64>,
    /// SKU (to find the SKU record from the expiry index).
    pub sku: String,
    /// Order key.
    pub order_key: String,
    /// The order's channel (its hold TTLs).
    pub channel: String,
    /// Stream time when the line was last reserved (0: before this was kept).
    pub held_at: i64,
}

impl Hold {
    fn outcome(&self) -> LineOutcome {
        match self.state {
            HoldState::Rejected => LineOutcome::REJECTED,
            HoldState::Held if self.backordered > 0 => LineOutcome::BACKORDERED,
            _ => LineOutcome::RESERVED,
        }
    }
}

fn sku_key(sku: &str) -> Vec<u8> {
    compose_key(b"s:", &[sku])
}

fn hold_key(sku: &str, order_key: &str, line_id: &str) -> Vec<u8> {
    compose_key(b"l:", &[sku, order_key, line_id])
}

/// Reads a SKU's record from a store written by [`ReserveInventory`] (for the query endpoint).
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored record does not decode.
pub fn load_sku(store: &dyn StateStore, sku: &str) -> Result<Option<SkuRecord>, OperatorError> {
    lifecycle::load_record(store, sku)
}

/// A SKU's order-line holds as `(line id, hold)`, oldest first (by when they were reserved),
/// at most `limit` of them (for the query endpoint).
///
/// # Errors
/// [`OperatorError::CorruptState`] when a stored hold does not decode.
pub fn holds_of(
    store: &dyn StateStore,
    sku: &str,
    limit: usize,
) -> Result<Vec<(String, Hold)>, OperatorError> {
    let from = compose_key(b"l:", &[sku]);
    let mut to = from.clone();
    to.push(0xff);
    let mut holds = store
        .range(&from, &to, limit)
        .into_iter()
        .map(|(k, v)| {
            let hold = decode_hold(&k, &v)?;
            Ok((hold_line_id(&k, &hold), hold))
        })
        .collect::<Result<Vec<_>, OperatorError>>()?;
    holds.sort_by(|a, b| (a.1.held_at, &a.1.order_key).cmp(&(b.1.held_at, &b.1.order_key)));
    Ok(holds)
}

/// Decodes a stored hold (either stored format), e.g. from a range scan over `l:` keys.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the bytes are not a hold.
pub fn decode_hold(key: &[u8], bytes: &[u8]) -> Result<Hold, OperatorError> {
    crate::state::decode_migrating::<Hold, lifecycle::HoldV1>(key, bytes)
}

/// The inventory operator (store `inventory`, keyed by SKU).
#[derive(Debug, Clone, Default)]
pub struct ReserveInventory {
    config: InventoryConfig,
}

/// The SKU records one step touches, written back once at the end of the step. A step touches
/// one SKU, or a few (expiries due): a vector, not a map keyed by string.
struct Touched<'a> {
    records: StepRecords,
    store: &'a mut dyn StateStore,
    /// SKUs whose on-hand rose in this step (their backorders are filled).
    rose: Vec<String>,
}

/// The decoded SKU records of one step, by SKU.
#[derive(Default)]
struct StepRecords(Vec<(String, SkuRecord)>);

impl StepRecords {
    fn position(&self, sku: &str) -> Option<usize> {
        self.0.iter().position(|(s, _)| s == sku)
    }

    fn remove(&mut self, sku: &str) -> Option<SkuRecord> {
        self.position(sku).map(|i| self.0.swap_remove(i).1)
    }

    fn insert(&mut self, sku: String, rec: SkuRecord) {
        match self.position(&sku) {
            Some(i) => self.0[i].1 = rec,
            None => self.0.push((sku, rec)),
        }
    }

    /// Every record, in SKU order (the order their channels are evaluated and published in).
    fn drain_sorted(&mut self) -> Vec<(String, SkuRecord)> {
        let mut all = std::mem::take(&mut self.0);
        all.sort_by(|a, b| a.0.cmp(&b.0));
        all
    }
}

impl Touched<'_> {
    fn get(&mut self, sku: &str) -> Result<&mut SkuRecord, OperatorError> {
        let i = match self.records.position(sku) {
            Some(i) => i,
            None => {
                let rec = lifecycle::load_record_cached(self.store, sku)?.unwrap_or_default();
                self.records.0.push((sku.to_string(), rec));
                self.records.0.len() - 1
            }
        };
        Ok(&mut self.records.0[i].1)
    }

    fn rose(&mut self, sku: &str) {
        if !self.rose.iter().any(|s| s == sku) {
            self.rose.push(sku.to_string());
        }
    }
}

impl ReserveInventory {
    /// An inventory operator with the given channels and TTLs.
    pub fn new(config: InventoryConfig) -> Self {
        Self { config }
    }

    /// The operator's configuration.
    pub fn config(&self) -> &InventoryConfig {
        &self.config
    }

    fn policy(&self, channel: &str) -> OversellPolicy {
        self.config
            .channel(channel)
            .map_or(OversellPolicy::Reject, |c| c.oversell_policy)
    }

    /// When a hard hold of `channel` made at `now` is released as forgotten (`None`: never).
    fn hard_deadline(&self, channel: &str, now: i64) -> Option<i64> {
        let max_age = self.config.hard_hold_max_age_ms(channel);
        (max_age > 0).then(|| now.saturating_add(max_age))
    }

    fn set_expiry(store: &mut dyn StateStore, key: &[u8], hold: &mut Hold, at: Option<i64>) {
        if let Some(old) = hold.expires_at {
            ExpiryIndex::cancel(store, old, key);
        }
        if let Some(at) = at {
            ExpiryIndex::schedule(store, at, key);
        }
        hold.expires_at = at;
    }

    fn expire(
        &self,
        t: &mut Touched<'_>,
        now: i64,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        loop {
            let due = ExpiryIndex::take_due(t.store, now, 256);
            if due.is_empty() {
                return Ok(());
            }
            for (at, key) in due {
                let Some(hold) = lifecycle::load_hold(t.store, &key)? else {
                    continue;
                };
                if hold.expires_at != Some(at) {
                    continue;
                }
                t.store.delete(&key);
                if hold.state == HoldState::Held {
                    let rec = t.get(&hold.sku)?;
                    rec.stock.reserved -= hold.reserved;
                    rec.stock.backordered -= hold.backordered;
                    if hold.backordered > 0 {
                        let line_id = hold_line_id(&key, &hold);
                        rec.unbackorder(&hold.order_key, &line_id);
                    }
                    out.push(if hold.hard {
                        InventoryOutput::HardHoldReleased {
                            age_ms: now.saturating_sub(hold.held_at),
                            sku: hold.sku,
                            order_key: hold.order_key,
                            channel: hold.channel,
                            reserved: hold.reserved,
                        }
                    } else {
                        InventoryOutput::HoldExpired {
                            sku: hold.sku,
                            order_key: hold.order_key,
                        }
                    });
                }
            }
        }
    }

    fn apply_inventory(
        &self,
        t: &mut Touched<'_>,
        now: i64,
        change: &InventoryChange,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        let retention = self.config.shipped_line_retention_ms;
        if !self.config.locations.is_empty() && !self.config.locations.contains(&change.location) {
            return Err(OperatorError::UnknownLocation {
                location: change.location.clone(),
            });
        }
        let rec = t.get(&change.sku)?;
        let before = rec.stock.total_on_hand();
        let idx = match rec
            .stock
            .positions
            .binary_search_by(|p| p.location.as_str().cmp(&change.location))
        {
            Ok(i) => i,
            Err(i) => {
                rec.stock.positions.insert(
                    i,
                    Position {
                        location: change.location.clone(),
                        on_hand: 0,
                        erp_sequence: i64::MIN,
                    },
                );
                i
            }
        };
        let pos = &mut rec.stock.positions[idx];
        if change.erp_sequence <= pos.erp_sequence {
            out.push(InventoryOutput::StaleIgnored {
                sku: change.sku.clone(),
            });
            return Ok(());
        }
        pos.erp_sequence = change.erp_sequence;
        match change.kind {
            InventoryChangeKind::SNAPSHOT => pos.on_hand = change.quantity,
            InventoryChangeKind::ADJUSTMENT => {
                pos.on_hand = pos.on_hand.saturating_add(change.quantity)
            }
        }
        if rec.stock.total_on_hand() > before {
            t.rose(&change.sku);
        }
        if change.reason == Some(AdjustmentReason::SHIPMENT) {
            if let (Some(order_key), Some(line_id)) = (&change.order_key, &change.line_id) {
                let key = hold_key(&change.sku, order_key, line_id);
                let shipped = change.quantity.saturating_neg().max(0);
                // A shipment before the line's reservation (a late order path): the units left
                // on-hand just now, so the line, when it comes, holds nothing — recorded as a
                // shipped line, like one shipped after its hold.
                let mut hold = lifecycle::load_hold(t.store, &key)?.unwrap_or_else(|| Hold {
                    quantity: shipped,
                    reserved: 0,
                    backordered: 0,
                    hard: true,
                    state: HoldState::Held,
                    expires_at: None,
                    sku: change.sku.clone(),
                    order_key: order_key.clone(),
                    channel: order_key
                        .split_once(':')
                        .map_or(String::new(), |(c, _)| c.to_string()),
                    held_at: now,
                });
                if hold.state == HoldState::Held {
                    let consume = hold.reserved.min(shipped);
                    hold.reserved -= consume;
                    let rec = t.get(&change.sku)?;
                    rec.stock.reserved -= consume;
                    if hold.reserved == 0 {
                        rec.stock.backordered -= hold.backordered;
                        if hold.backordered > 0 {
                            rec.unbackorder(order_key, line_id);
                        }
                        hold.backordered = 0;
                        hold.state = HoldState::Shipped;
                        Self::set_expiry(
                            t.store,
                            &key,
                            &mut hold,
                            Some(now.saturating_add(retention)),
                        );
                    }
                    lifecycle::save_hold(t.store, &key, &hold);
                }
            }
        }
        Ok(())
    }

    fn apply_product(
        &self,
        t: &mut Touched<'_>,
        change: &ProductChange,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        let rec = t.get(&change.sku)?;
        if rec
            .stock
            .product
            .as_ref()
            .is_some_and(|p| change.erp_sequence <= p.erp_sequence)
        {
            out.push(InventoryOutput::StaleIgnored {
                sku: change.sku.clone(),
            });
            return Ok(());
        }
        rec.stock.product = Some(crate::erp_ingest::product_info(change)?);
        Ok(())
    }

    fn result(
        line: &LineCommand,
        outcome: LineOutcome,
        reserved: i64,
        backordered: i64,
    ) -> InventoryOutput {
        InventoryOutput::LineResult(LineResult {
            order_key: line.order_key.clone(),
            channel: line.channel.clone(),
            channel_order_id: line.channel_order_id.clone(),
            revision: line.revision,
            lines_in_revision: line.lines_in_revision,
            line_id: line.line_id.clone(),
            sku: line.sku.clone(),
            quantity: line.quantity,
            reserved,
            backordered,
            outcome,
            paid: line.paid,
            cancelled: line.cancelled,
            placed_at: line.placed_at,
            fulfilled_by: line.fulfilled_by,
            unit_price: line.unit_price.clone(),
            line_total: line.line_total.clone(),
            currency: line.currency.clone(),
            filled: false,
            order: line.order.clone(),
        })
    }

    /// Releases a hold's units from the SKU record and deletes the hold.
    fn drop_hold(t: &mut Touched<'_>, key: &[u8], hold: &mut Hold) -> Result<(), OperatorError> {
        if hold.state == HoldState::Held {
            let rec = t.get(&hold.sku)?;
            rec.stock.reserved -= hold.reserved;
            rec.stock.backordered -= hold.backordered;
            if hold.backordered > 0 {
                let line_id = hold_line_id(key, hold);
                rec.unbackorder(&hold.order_key, &line_id);
            }
        }
        Self::set_expiry(t.store, key, hold, None);
        t.store.delete(key);
        Ok(())
    }

    fn reserve(
        &self,
        t: &mut Touched<'_>,
        now: i64,
        line: &LineCommand,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        if !line.holds_stock {
            // Marketplace-fulfilled, first seen shipped, or a no-stock marker: hold nothing,
            // change no stock (DESIGN §4, "who ships decides who holds").
            out.push(Self::result(line, LineOutcome::RESERVED, 0, 0));
            return Ok(());
        }
        if line.quantity <= 0 {
            return Err(OperatorError::invalid(
                "line.quantity",
                format!("must be at least 1, got {}", line.quantity),
            ));
        }
        let key = hold_key(&line.sku, &line.order_key, &line.line_id);
        if let Some(mut hold) = lifecycle::load_hold(t.store, &key)? {
            if hold.state == HoldState::Shipped {
                // Shipped goods are gone from on-hand already; a later revision (e.g. a refund
                // lowering the quantity) must not reserve the line again.
                out.push(Self::result(line, LineOutcome::RESERVED, 0, 0));
                return Ok(());
            }
            if hold.quantity == line.quantity {
                // Unchanged line: no-op, except that payment makes a soft hold hard.
                if hold.state == HoldState::Held && line.paid && !hold.hard {
                    hold.hard = true;
                    let deadline = self.hard_deadline(&hold.channel, now);
                    Self::set_expiry(t.store, &key, &mut hold, deadline);
                    lifecycle::save_hold(t.store, &key, &hold);
                }
                if hold.state == HoldState::Held && hold.backordered > 0 {
                    // A fill reports the line under its latest revision.
                    t.get(&line.sku)?.backorder(line);
                }
                out.push(Self::result(
                    line,
                    hold.outcome(),
                    hold.reserved,
                    hold.backordered,
                ));
                return Ok(());
            }
            Self::drop_hold(t, &key, &mut hold)?;
        }
        let policy = self.policy(&line.channel);
        let rec = t.get(&line.sku)?;
        let free = rec.stock.physical_free();
        let (state, reserved, backordered) = if line.quantity <= free {
            (HoldState::Held, line.quantity, 0)
        } else {
            match policy {
                OversellPolicy::Reject => (HoldState::Rejected, 0, 0),
                OversellPolicy::Backorder => {
                    let take = free.max(0);
                    (HoldState::Held, take, line.quantity - take)
                }
            }
        };
        rec.stock.reserved += reserved;
        rec.stock.backordered += backordered;
        if backordered > 0 {
            rec.backorder(line);
        }
        let mut hold = Hold {
            quantity: line.quantity,
            reserved,
            backordered,
            hard: line.paid,
            state,
            expires_at: None,
            sku: line.sku.clone(),
            order_key: line.order_key.clone(),
            channel: line.channel.clone(),
            held_at: now,
        };
        let expiry = match state {
            HoldState::Held if !line.paid => {
                Some(now.saturating_add(self.config.soft_hold_ttl_ms(&line.channel)))
            }
            HoldState::Held => self.hard_deadline(&line.channel, now),
            _ => Some(now.saturating_add(self.config.shipped_line_retention_ms)),
        };
        Self::set_expiry(t.store, &key, &mut hold, expiry);
        lifecycle::save_hold(t.store, &key, &hold);
        out.push(Self::result(line, hold.outcome(), reserved, backordered));
        Ok(())
    }

    fn release(
        &self,
        t: &mut Touched<'_>,
        line: &LineCommand,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        let key = hold_key(&line.sku, &line.order_key, &line.line_id);
        if let Some(mut hold) = lifecycle::load_hold(t.store, &key)? {
            Self::drop_hold(t, &key, &mut hold)?;
        }
        out.push(Self::result(line, LineOutcome::RELEASED, 0, 0));
        Ok(())
    }

    /// Re-evaluates every channel of `rec`, pushing an event for each changed number.
    fn allocate(&self, sku: &str, rec: &mut SkuRecord, now: i64, out: &mut Vec<InventoryOutput>) {
        for policy in &self.config.channels {
            let quantity = channel_quantity(policy, &rec.stock);
            let version = match rec.published.iter_mut().find(|p| p.channel == policy.name) {
                Some(p) if p.quantity == quantity => continue,
                Some(p) => {
                    p.quantity = quantity;
                    p.version += 1;
                    p.version
                }
                None => {
                    rec.published.push(ChannelPublished {
                        channel: policy.name.clone(),
                        quantity,
                        version: 1,
                    });
                    1
                }
            };
            out.push(InventoryOutput::Availability(ChannelAvailability {
                event_id: stable_id(&[
                    policy.name.as_bytes(),
                    sku.as_bytes(),
                    &version.to_be_bytes(),
                ]),
                channel: policy.name.clone(),
                sku: sku.to_string(),
                quantity,
                version,
                event_time: now,
            }));
        }
    }
}

fn check_command(cmd: &InventoryCommand) -> Result<(), OperatorError> {
    let sku_of = match cmd.kind {
        CommandKind::INVENTORY => cmd.inventory.as_ref().map(|c| &c.sku),
        CommandKind::PRODUCT => cmd.product.as_ref().map(|c| &c.sku),
        CommandKind::RESERVE | CommandKind::RELEASE => cmd.line.as_ref().map(|c| &c.sku),
    };
    match sku_of {
        None => Err(OperatorError::invalid(
            "kind",
            format!("{:?} command without its payload", cmd.kind),
        )),
        Some(sku) if *sku != cmd.sku => Err(OperatorError::invalid(
            "sku",
            format!("record SKU {:?} differs from payload SKU {sku:?}", cmd.sku),
        )),
        Some(sku) if sku.is_empty() => Err(OperatorError::invalid("sku", "must not be empty")),
        Some(_) => Ok(()),
    }
}

/// The name of this operator's store (and of its changelog, `<app>-inventory-changelog`).
pub const STORE: &str = "inventory";

impl Operator for ReserveInventory {
    type Input = InventoryCommand;
    type Output = InventoryOutput;

    fn store(&self) -> Option<StoreSpec> {
        Some(StoreSpec {
            name: STORE,
            max_ttl_ms: Some(
                self.config
                    .channels
                    .iter()
                    .flat_map(|c| [c.soft_hold_ttl_ms.unwrap_or(0), c.hard_hold_max_age_ms])
                    .fold(
                        self.config
                            .soft_hold_ttl_ms
                            .max(self.config.shipped_line_retention_ms),
                        i64::max,
                    ),
            ),
        })
    }

    fn process(
        &self,
        store: &mut dyn StateStore,
        timestamp: i64,
        cmd: &InventoryCommand,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        let now = advance_stream_time(store, timestamp)?;
        let mut t = Touched {
            records: StepRecords::default(),
            store,
            rose: Vec::new(),
        };
        self.expire(&mut t, now, out)?;
        let step = check_command(cmd).and_then(|()| {
            match (cmd.kind, &cmd.inventory, &cmd.product, &cmd.line) {
                (CommandKind::INVENTORY, Some(c), _, _) => {
                    self.apply_inventory(&mut t, now, c, out)
                }
                (CommandKind::PRODUCT, _, Some(c), _) => self.apply_product(&mut t, c, out),
                (CommandKind::RESERVE, _, _, Some(l)) => self.reserve(&mut t, now, l, out),
                (CommandKind::RELEASE, _, _, Some(l)) => self.release(&mut t, l, out),
                _ => Ok(()),
            }
        });
        // A line that holds none of our stock (marketplace-fulfilled, first seen shipped, or
        // the marker of an order with nothing to reserve, whose "SKU" is its order key)
        // touches no SKU: its SKU is not evaluated, so nothing is published for it.
        let holds_nothing = cmd.line.as_ref().is_some_and(|l| !l.holds_stock);
        if step.is_ok() && !holds_nothing {
            // The command's SKU is always evaluated (first sight publishes version 1).
            t.get(&cmd.sku)?;
        }
        if step.is_ok() {
            // Stock that arrived goes to the backorders first, before any channel sees it.
            let mut rose = std::mem::take(&mut t.rose);
            rose.sort();
            for sku in rose {
                self.fill_backorders(&mut t, &sku, out)?;
            }
        }
        for (sku, mut rec) in t.records.drain_sorted() {
            self.allocate(&sku, &mut rec, now, out);
            lifecycle::save_record(t.store, &sku, rec);
        }
        step
    }
}

/// The line id of a hold stored under `key` (`l:` + sku + order key + line id, each part
/// length-prefixed): the hold does not repeat it.
fn hold_line_id(key: &[u8], hold: &Hold) -> String {
    let prefix = compose_key(b"l:", &[&hold.sku, &hold.order_key]);
    key.get(prefix.len() + 4..)
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default()
}

mod lifecycle;
pub(crate) use lifecycle::decode_record;
pub use lifecycle::Backorder;

#[cfg(test)]
mod lifecycle_tests;
#[cfg(test)]
mod tests;
