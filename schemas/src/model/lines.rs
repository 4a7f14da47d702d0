//! The order lines that travel between the stages: [`LineCommand`] (dedupe → inventory, inside an
//! [`InventoryCommand`](super::InventoryCommand)) and [`LineResult`] (inventory → assemble).
//!
//! Besides the line itself, both carry what the assemble stage needs to build a validated order
//! for the ERP (prices, fulfilment, and the order's [`OrderSummary`]: currency, total,
//! first-seen-shipped flag, skipped lines): assemble only ever sees line results, so the
//! order-level facts ride on every line, identical on all lines of one revision. Fields after `placed_at` were added in issue 16; each has a default, so
//! records written before them still decode.

use serde::{Deserialize, Serialize};

use super::{FulfilledBy, SkippedLine};

/// The line id of a *no-stock marker*: the one line command of a revision that has no line to
/// reserve or release (every payload line was skipped, e.g. a gift-card-only order, or a
/// cancellation of such an order). It holds no stock, has quantity 0 and is keyed by the order
/// key; the inventory stage answers it with a `RESERVED` result of quantity 0 without touching
/// any state, so that the assemble stage still sees the revision complete. No real line has
/// quantity 0 (dedupe refuses it), which is what [`LineCommand::is_no_stock_marker`] and
/// [`LineResult::is_no_stock_marker`] test.
pub const NO_STOCK_MARKER_LINE_ID: &str = "";

fn yes() -> bool {
    true
}

/// The order-level facts a validated order carries (DESIGN §4), sent along on every line
/// command and result of a revision because the assemble stage sees only line results. Boxed
/// in the line records: most orders have none of it, and the records stay small.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct OrderSummary {
    /// ISO 4217 currency of `total` (the order's `currency`).
    pub currency: Option<String>,
    /// What the buyer pays for the whole order, decimal string (the order's `total`).
    pub total: Option<String>,
    /// The order was already shipped when dedupe first saw it (so no line of it holds stock).
    pub already_shipped: bool,
    /// The order's lines without stock (the order's `skipped_lines`), for the ERP.
    pub skipped_lines: Vec<SkippedLine>,
}

impl OrderSummary {
    /// The summary to send, `None` when every field is at its default.
    pub fn boxed(self) -> Option<Box<Self>> {
        (self != Self::default()).then(|| Box::new(self))
    }
}

impl Default for LineCommand {
    /// An empty merchant-fulfilled line that holds stock (what a command without the fields
    /// added in issue 16 means); tests fill in what they need.
    fn default() -> Self {
        Self {
            order_key: String::new(),
            channel: String::new(),
            channel_order_id: String::new(),
            revision: 0,
            lines_in_revision: 0,
            line_id: String::new(),
            sku: String::new(),
            quantity: 0,
            paid: false,
            cancelled: false,
            placed_at: 0,
            fulfilled_by: FulfilledBy::MERCHANT,
            unit_price: None,
            line_total: None,
            currency: None,
            holds_stock: true,
            order: None,
        }
    }
}

/// One order line of one order revision, as sent from dedupe to inventory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineCommand {
    /// Order key `"channel:channel_order_id"`.
    pub order_key: String,
    /// Channel of the order (decides the oversell policy).
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision, 1, 2, 3… per order key.
    pub revision: i32,
    /// How many line commands this revision has in all (the assembler waits for this many).
    pub lines_in_revision: i32,
    /// Line id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Units (ordered for a reserve, as last known for a release); 0 only for a no-stock marker.
    pub quantity: i64,
    /// Whether the order is paid (hard hold) or not (soft hold with TTL).
    pub paid: bool,
    /// Whether this revision cancels the order.
    pub cancelled: bool,
    /// When the order was placed, epoch ms.
    pub placed_at: i64,
    /// Who ships the line (the order line's `fulfilled_by`).
    #[serde(default)]
    pub fulfilled_by: FulfilledBy,
    /// Price of one unit, decimal string (the order line's `unit_price`).
    #[serde(default)]
    pub unit_price: Option<String>,
    /// Price of the whole line, decimal string (the order line's `line_total`).
    #[serde(default)]
    pub line_total: Option<String>,
    /// ISO 4217 currency of the line's prices.
    #[serde(default)]
    pub currency: Option<String>,
    /// Whether the line takes our stock. False for a marketplace-fulfilled line, for every line
    /// of an order first seen already shipped, and for a no-stock marker: the inventory stage
    /// then holds nothing and changes no stock (DESIGN §4, "who ships decides who holds").
    #[serde(default = "yes")]
    pub holds_stock: bool,
    /// What the validated order needs from the order itself, identical on every line of a
    /// revision; `None` when the order has none of it (and in records written before it).
    #[serde(default)]
    pub order: Option<Box<OrderSummary>>,
}

impl LineCommand {
    /// Whether this is the no-stock marker of a revision without lines
    /// (see [`NO_STOCK_MARKER_LINE_ID`]).
    pub fn is_no_stock_marker(&self) -> bool {
        self.quantity == 0 && !self.holds_stock
    }
}

/// The outcome of one line command at the inventory stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[allow(clippy::upper_case_acronyms)]
pub enum LineOutcome {
    /// The whole quantity is held.
    RESERVED,
    /// Part (or none) is held and the shortfall is backordered.
    BACKORDERED,
    /// Stock was short and the channel's policy is `reject`: nothing is held.
    REJECTED,
    /// The line's hold was released (cancellation or line removed).
    RELEASED,
}

/// A record on `<app>-line-results`, keyed by order key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineResult {
    /// Order key.
    pub order_key: String,
    /// Channel.
    pub channel: String,
    /// The channel's order id.
    pub channel_order_id: String,
    /// Order revision.
    pub revision: i32,
    /// How many results this revision has in all.
    pub lines_in_revision: i32,
    /// Line id.
    pub line_id: String,
    /// SKU.
    pub sku: String,
    /// Units ordered (0 only for a no-stock marker).
    pub quantity: i64,
    /// Units held for the line after this command.
    pub reserved: i64,
    /// Units backordered.
    pub backordered: i64,
    /// Outcome.
    pub outcome: LineOutcome,
    /// Whether the order was paid.
    pub paid: bool,
    /// Whether this revision cancels the order.
    pub cancelled: bool,
    /// When the order was placed, epoch ms.
    pub placed_at: i64,
    /// Who ships the line (from the [`LineCommand`]).
    #[serde(default)]
    pub fulfilled_by: FulfilledBy,
    /// Price of one unit, decimal string (from the [`LineCommand`]).
    #[serde(default)]
    pub unit_price: Option<String>,
    /// Price of the whole line, decimal string (from the [`LineCommand`]).
    #[serde(default)]
    pub line_total: Option<String>,
    /// ISO 4217 currency of the line's prices (from the [`LineCommand`]).
    #[serde(default)]
    pub currency: Option<String>,
    /// True when the inventory stage re-sends the result of a line that was `BACKORDERED` in an
    /// already complete revision because stock arrived and filled (part of) its backorder: same
    /// order key, revision and line id, updated `reserved`, `backordered` and `outcome`
    /// (`RESERVED` once fully filled). `revision` is that of the latest command the line
    /// answered (an unchanged line re-reserved by revision 2 fills as revision 2); the assemble
    /// stage matches the fill by order key, revision, line id and SKU, reads only `reserved`,
    /// `backordered` and `outcome` from it (not `lines_in_revision`), updates the revision it
    /// emitted and sends a new status if the order's status changed. False for the answer to
    /// a command.
    #[serde(default)]
    pub filled: bool,
    /// The order's summary (from the [`LineCommand`]).
    #[serde(default)]
    pub order: Option<Box<OrderSummary>>,
}

impl LineResult {
    /// Whether this answers a no-stock marker (see [`NO_STOCK_MARKER_LINE_ID`]): it stands for
    /// no line of the order and is left out of the validated order's lines.
    pub fn is_no_stock_marker(&self) -> bool {
        self.quantity == 0
    }
}
