//! The reservation lifecycle as marketplaces drive it (DESIGN §4, second list): backorders as
//! demand filled oldest first, hard holds that end at their channel's maximum age, and the
//! stored forms of SKU records and holds (with their migration from the first format).

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{LineCommand, LineOutcome};

use super::{hold_key, sku_key, ChannelPublished, Hold, HoldState, InventoryOutput, SkuRecord};
use super::{ReserveInventory, Touched};
use crate::allocate_channels::{Position, ProductInfo, SkuOverride, SkuStock};
use crate::percent::Percent;
use crate::state::{decode_migrating, encode_value_as, VALUE_FORMAT_V2};
use crate::{OperatorError, StateStore};

/// A backordered line waiting for stock: the line command it came with (the last revision
/// that touched it), so that a fill can report it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backorder {
    /// The line as last commanded.
    pub line: LineCommand,
}

impl Backorder {
    /// Fill order: oldest order first (placed_at), then order key, then line number (numeric
    /// when both ids are numbers).
    fn rank(&self) -> (i64, &str, LineNumber<'_>) {
        (
            self.line.placed_at,
            &self.line.order_key,
            LineNumber(&self.line.line_id),
        )
    }
}

/// A line id ordered as a number when it is one (`"2"` before `"10"`), else as text.
#[derive(Debug, PartialEq, Eq)]
struct LineNumber<'a>(&'a str);

impl PartialOrd for LineNumber<'_> {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for LineNumber<'_> {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        match (self.0.parse::<u64>(), other.0.parse::<u64>()) {
            (Ok(a), Ok(b)) => a.cmp(&b).then_with(|| self.0.cmp(other.0)),
            _ => self.0.cmp(other.0),
        }
    }
}

/// The SKU record as stored before backorders were kept and percentages were exact
/// decimals (value format 1).
#[derive(Serialize, Deserialize)]
pub(super) struct SkuRecordV1 {
    pub(super) stock: SkuStockV1,
    pub(super) published: Vec<ChannelPublished>,
}

#[derive(Serialize, Deserialize)]
pub(super) struct SkuStockV1 {
    pub(super) product: Option<ProductInfoV1>,
    pub(super) positions: Vec<Position>,
    pub(super) reserved: i64,
    pub(super) backordered: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct ProductInfoV1 {
    pub(super) active: bool,
    pub(super) safety_stock_units: i64,
    pub(super) safety_stock_pct: i64,
    pub(super) overrides: Vec<OverrideV1>,
    pub(super) erp_sequence: i64,
}

#[derive(Serialize, Deserialize)]
pub(super) struct OverrideV1 {
    pub(super) channel: String,
    pub(super) enabled: bool,
    pub(super) safety_stock_units: Option<i64>,
    pub(super) safety_stock_pct: Option<i64>,
}

impl From<SkuRecordV1> for SkuRecord {
    fn from(v1: SkuRecordV1) -> Self {
        let product = v1.stock.product.map(|p| ProductInfo {
            active: p.active,
            safety_stock_units: p.safety_stock_units,
            safety_stock_pct: Percent::whole(p.safety_stock_pct),
            overrides: p
                .overrides
                .into_iter()
                .map(|o| SkuOverride {
                    channel: o.channel,
                    enabled: o.enabled,
                    safety_stock_units: o.safety_stock_units,
                    safety_stock_pct: o.safety_stock_pct.map(Percent::whole),
                    ..SkuOverride::default()
                })
                .collect(),
            erp_sequence: p.erp_sequence,
        });
        Self {
            stock: SkuStock {
                product,
                positions: v1.stock.positions,
                reserved: v1.stock.reserved,
                backordered: v1.stock.backordered,
            },
            published: v1.published,
            backorders: Vec::new(),
        }
    }
}

/// A hold as stored before it knew its channel and age (value format 1).
#[derive(Serialize, Deserialize)]
pub(super) struct HoldV1 {
    pub(super) quantity: i64,
    pub(super) reserved: i64,
    pub(super) backordered: i64,
    pub(super) hard: bool,
    pub(super) state: HoldState,
    pub(super) expires_at: Option<i64>,
    pub(super) sku: String,
    pub(super) order_key: String,
}

impl From<HoldV1> for Hold {
    fn from(v1: HoldV1) -> Self {
        Self {
            channel: v1
                .order_key
                .split_once(':')
                .map_or(String::new(), |(c, _)| c.to_string()),
            quantity: v1.quantity,
            reserved: v1.reserved,
            backordered: v1.backordered,
            hard: v1.hard,
            state: v1.state,
            expires_at: v1.expires_at,
            sku: v1.sku,
            order_key: v1.order_key,
            held_at: 0,
        }
    }
}

/// Reads a SKU record (either stored format).
pub(super) fn load_record(
    store: &dyn StateStore,
    sku: &str,
) -> Result<Option<SkuRecord>, OperatorError> {
    read_record(store, &sku_key(sku))
}

/// Decodes a stored SKU record (either format).
///
/// # Errors
/// [`OperatorError::CorruptState`] when the bytes are not a SKU record.
pub(crate) fn decode_record(key: &[u8], bytes: &[u8]) -> Result<SkuRecord, OperatorError> {
    decode_migrating::<SkuRecord, SkuRecordV1>(key, bytes)
}

fn read_record(store: &dyn StateStore, key: &[u8]) -> Result<Option<SkuRecord>, OperatorError> {
    store
        .get(key)
        .map(|b| decode_migrating::<SkuRecord, SkuRecordV1>(key, &b))
        .transpose()
}

/// Reads a SKU record for a step: the decoded record a step of this epoch kept, if the store
/// has it, else the stored bytes decoded (either format).
pub(super) fn load_record_cached(
    store: &mut dyn StateStore,
    sku: &str,
) -> Result<Option<SkuRecord>, OperatorError> {
    let key = sku_key(sku);
    if let Some(rec) = store.decoded().and_then(|d| d.take::<SkuRecord>(&key)) {
        return Ok(Some(rec));
    }
    read_record(store, &key)
}

/// Stores a SKU record, and keeps it decoded for the next step that touches the SKU.
pub(super) fn save_record(store: &mut dyn StateStore, sku: &str, rec: SkuRecord) {
    let key = sku_key(sku);
    store.put(&key, &encode_value_as(VALUE_FORMAT_V2, &rec));
    if let Some(decoded) = store.decoded() {
        decoded.keep(key, rec);
    }
}

/// Reads a hold (either stored format).
pub(super) fn load_hold(store: &dyn StateStore, key: &[u8]) -> Result<Option<Hold>, OperatorError> {
    store
        .get(key)
        .map(|b| super::decode_hold(key, &b))
        .transpose()
}

/// Stores a hold.
pub(super) fn save_hold(store: &mut dyn StateStore, key: &[u8], hold: &Hold) {
    store.put(key, &encode_value_as(VALUE_FORMAT_V2, hold));
}

impl SkuRecord {
    /// Adds (or refreshes with the newest command) a backordered line.
    pub(super) fn backorder(&mut self, line: &LineCommand) {
        self.unbackorder(&line.order_key, &line.line_id);
        let entry = Backorder { line: line.clone() };
        let at = self.backorders.partition_point(|b| b.rank() < entry.rank());
        self.backorders.insert(at, entry);
    }

    /// Forgets a line's backorder (released, cancelled, shipped or filled).
    pub(super) fn unbackorder(&mut self, order_key: &str, line_id: &str) {
        self.backorders
            .retain(|b| !(b.line.order_key == order_key && b.line.line_id == line_id));
    }
}

impl ReserveInventory {
    /// On-hand rose: fills the SKU's backordered lines from the free physical stock, oldest
    /// order first, each fill a new line result of its revision (`filled`). Runs before the
    /// SKU's channels are evaluated, so no channel sees stock a backorder takes.
    pub(super) fn fill_backorders(
        &self,
        t: &mut Touched<'_>,
        sku: &str,
        out: &mut Vec<InventoryOutput>,
    ) -> Result<(), OperatorError> {
        t.get(sku)?;
        let Some(mut rec) = t.records.remove(sku) else {
            return Ok(());
        };
        let mut free = rec.stock.physical_free();
        let waiting = std::mem::take(&mut rec.backorders);
        for entry in waiting {
            if free <= 0 {
                rec.backorders.push(entry);
                continue;
            }
            let key = hold_key(sku, &entry.line.order_key, &entry.line.line_id);
            let Some(mut hold) = load_hold(t.store, &key)? else {
                continue;
            };
            if hold.state != HoldState::Held || hold.backordered <= 0 {
                continue;
            }
            let take = free.min(hold.backordered);
            free -= take;
            hold.reserved += take;
            hold.backordered -= take;
            rec.stock.reserved += take;
            rec.stock.backordered -= take;
            save_hold(t.store, &key, &hold);
            let outcome = if hold.backordered > 0 {
                LineOutcome::BACKORDERED
            } else {
                LineOutcome::RESERVED
            };
            out.push(Self::filled(
                &entry.line,
                outcome,
                hold.reserved,
                hold.backordered,
            ));
            if hold.backordered > 0 {
                rec.backorders.push(entry);
            }
        }
        t.records.insert(sku.to_string(), rec);
        Ok(())
    }

    /// The line result of a fill.
    fn filled(
        line: &LineCommand,
        outcome: LineOutcome,
        reserved: i64,
        backordered: i64,
    ) -> InventoryOutput {
        let mut result = Self::result(line, outcome, reserved, backordered);
        if let InventoryOutput::LineResult(r) = &mut result {
            r.filled = true;
        }
        result
    }
}
