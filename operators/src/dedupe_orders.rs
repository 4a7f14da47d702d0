//! `dedupe_orders`: drops repeated order deliveries and turns each new revision of an order into
//! one [`InventoryCommand`] per affected line.
//!
//! Rules (DESIGN §4):
//! - The fingerprint is a hash of the order's content without delivery id and receive time
//!   ([`Order::fingerprint`]). A repeat of *any* earlier payload of the order inside the window
//!   is dropped, so a late retry of revision 1 never undoes a later cancellation.
//! - Any other payload is the next revision (1, 2, 3… per order key). It emits a `RESERVE` for
//!   each current line and a `RELEASE` for each line that disappeared (or whose SKU changed); a
//!   cancellation emits a `RELEASE` for every line known in this or the previous revision.
//!   Every command carries `lines_in_revision`, so the assembler knows when a revision is whole.
//! - An order's record expires `window` after its latest revision (stream time).

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};
use shelfsync_schemas::{InventoryCommand, LineCommand, Order, OrderLine};

use crate::state::{advance_stream_time, compose_key, load, save, ExpiryIndex};
use crate::{DedupeConfig, Operator, OperatorError, StateStore, StoreSpec};

/// What one dedupe step emits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DedupeOutput {
    /// A command for the inventory stage (key: SKU).
    Command(Box<InventoryCommand>),
    /// An exact repeat was dropped (for metrics).
    DuplicateDropped {
        /// The order key.
        order_key: String,
    },
    /// An order's record expired from the window (for metrics).
    Expired {
        /// The order key.
        order_key: String,
    },
}

/// The stored record of one order (versioned through [`crate::state::encode_value`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct OrderRecord {
    revision: i32,
    prints: Vec<u128>,
    lines: Vec<OrderLine>,
    cancelled: bool,
    expires_at: i64,
}

/// The dedupe operator (store `dedupe`, keyed by order key).
#[derive(Debug, Clone, Default)]
pub struct DedupeOrders {
    config: DedupeConfig,
}

const ORDER_PREFIX: &[u8] = b"o:";

fn order_state_key(order_key: &str) -> Vec<u8> {
    compose_key(ORDER_PREFIX, &[order_key])
}

impl DedupeOrders {
    /// A dedupe operator with the given window.
    pub fn new(config: DedupeConfig) -> Self {
        Self { config }
    }

    fn expire(
        &self,
        store: &mut dyn StateStore,
        now: i64,
        out: &mut Vec<DedupeOutput>,
    ) -> Result<(), OperatorError> {
        loop {
            let due = ExpiryIndex::take_due(store, now, 256);
            if due.is_empty() {
                return Ok(());
            }
            for (at, id) in due {
                let Ok(order_key) = String::from_utf8(id) else {
                    continue;
                };
                let key = order_state_key(&order_key);
                // Only expire the record if this deadline is still its current one.
                if let Some(rec) = load::<OrderRecord>(store, &key)? {
                    if rec.expires_at == at {
                        store.delete(&key);
                        out.push(DedupeOutput::Expired { order_key });
                    }
                }
            }
        }
    }
}

fn validate(order: &Order) -> Result<(), OperatorError> {
    if order.channel.is_empty() {
        return Err(OperatorError::invalid("channel", "must not be empty"));
    }
    if order.channel_order_id.is_empty() {
        return Err(OperatorError::invalid(
            "channel_order_id",
            "must not be empty",
        ));
    }
    if order.lines.is_empty() && !order.cancelled {
        return Err(OperatorError::invalid(
            "lines",
            "an order needs at least one line (only a cancellation may have none)",
        ));
    }
    let mut ids = BTreeSet::new();
    for (i, line) in order.lines.iter().enumerate() {
        if line.sku.is_empty() {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].sku"),
                "must not be empty",
            ));
        }
        if line.quantity <= 0 {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].quantity"),
                format!("must be at least 1, got {}", line.quantity),
            ));
        }
        if !ids.insert(line.line_id.as_str()) {
            return Err(OperatorError::invalid(
                &format!("lines[{i}].line_id"),
                format!("duplicate line id {:?}", line.line_id),
            ));
        }
    }
    Ok(())
}

/// The name of this operator's store (and of its changelog, `<app>-dedupe-changelog`).
pub const STORE: &str = "dedupe";

impl Operator for DedupeOrders {
    type Input = Order;
    type Output = DedupeOutput;

    fn store(&self) -> Option<StoreSpec> {
        Some(StoreSpec {
            name: STORE,
            max_ttl_ms: Some(self.config.window_ms),
        })
    }

    fn process(
        &self,
        store: &mut dyn StateStore,
        timestamp: i64,
        order: &Order,
        out: &mut Vec<DedupeOutput>,
    ) -> Result<(), OperatorError> {
        let now = advance_stream_time(store, timestamp)?;
        self.expire(store, now, out)?;
        validate(order)?;

        let order_key = order.key();
        let key = order_state_key(&order_key);
        let previous = load::<OrderRecord>(store, &key)?;
        let print = order.fingerprint();
        if previous
            .as_ref()
            .is_some_and(|rec| rec.prints.contains(&print))
        {
            out.push(DedupeOutput::DuplicateDropped { order_key });
            return Ok(());
        }

        let revision = previous
            .as_ref()
            .map_or(1, |rec| rec.revision.saturating_add(1));
        let prev_lines: &[OrderLine] = previous.as_ref().map_or(&[], |rec| rec.lines.as_slice());
        // (line, reserve?) in a deterministic order: current lines as given, then releases of
        // previous lines sorted by line id.
        let mut commands: Vec<(&OrderLine, bool)> = Vec::new();
        if order.cancelled {
            let mut all: Vec<&OrderLine> = prev_lines.iter().collect();
            for line in &order.lines {
                if !all
                    .iter()
                    .any(|l| l.line_id == line.line_id && l.sku == line.sku)
                {
                    all.push(line);
                }
            }
            all.sort_by(|a, b| (&a.line_id, &a.sku).cmp(&(&b.line_id, &b.sku)));
            commands.extend(all.into_iter().map(|l| (l, false)));
        } else {
            commands.extend(order.lines.iter().map(|l| (l, true)));
            let mut gone: Vec<&OrderLine> = prev_lines
                .iter()
                .filter(|p| {
                    !order
                        .lines
                        .iter()
                        .any(|l| l.line_id == p.line_id && l.sku == p.sku)
                })
                .collect();
            gone.sort_by(|a, b| (&a.line_id, &a.sku).cmp(&(&b.line_id, &b.sku)));
            commands.extend(gone.into_iter().map(|l| (l, false)));
        }
        let lines_in_revision = i32::try_from(commands.len()).unwrap_or(i32::MAX);
        for (line, reserve) in commands {
            let cmd = LineCommand {
                order_key: order_key.clone(),
                channel: order.channel.clone(),
                channel_order_id: order.channel_order_id.clone(),
                revision,
                lines_in_revision,
                line_id: line.line_id.clone(),
                sku: line.sku.clone(),
                quantity: line.quantity,
                paid: order.paid,
                cancelled: order.cancelled,
                placed_at: order.placed_at,
            };
            out.push(DedupeOutput::Command(Box::new(if reserve {
                InventoryCommand::reserve(cmd)
            } else {
                InventoryCommand::release(cmd)
            })));
        }

        let mut prints = previous
            .as_ref()
            .map(|rec| rec.prints.clone())
            .unwrap_or_default();
        prints.push(print);
        if let Some(rec) = &previous {
            ExpiryIndex::cancel(store, rec.expires_at, order_key.as_bytes());
        }
        let expires_at = now.saturating_add(self.config.window_ms);
        ExpiryIndex::schedule(store, expires_at, order_key.as_bytes());
        // A cancellation without lines (some channels send none) keeps the lines it released.
        let lines = if order.lines.is_empty() {
            prev_lines.to_vec()
        } else {
            order.lines.clone()
        };
        let record = OrderRecord {
            revision,
            prints,
            lines,
            cancelled: order.cancelled,
            expires_at,
        };
        save(store, &key, &record);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;
    use shelfsync_schemas::CommandKind;

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
        assert_eq!(
            commands(&out),
            vec![
                (CommandKind::RESERVE, "a".into(), 3, 2, 2),
                (CommandKind::RELEASE, "b".into(), 1, 2, 2)
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
    fn after_the_window_a_repeat_counts_as_a_new_order_revision_1() {
        // window 10 ms: record at t=1000 expires at 1010; a repeat at t=1010 is new again.
        let op = DedupeOrders::new(DedupeConfig { window_ms: 10 });
        let mut s = MemStore::new();
        let mut out = Vec::new();
        let o = order("1", vec![line("a", "SKU1", 1)]);
        op.process(&mut s, 1_000, &o, &mut out).unwrap();
        out.clear();
        op.process(&mut s, 1_010, &o, &mut out).unwrap();
        assert_eq!(
            out[0],
            DedupeOutput::Expired {
                order_key: "shopify:1".into()
            }
        );
        assert_eq!(
            commands(&out),
            vec![(CommandKind::RESERVE, "a".into(), 1, 1, 1)]
        );
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
}
