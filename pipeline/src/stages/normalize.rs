//! `normalize`: raw channel orders → canonical [`Order`]s keyed by order key (DESIGN §2).
//!
//! The work of this stage is decoding: the channel adapters of `shelfsync_schemas::adapters`
//! parse the envelope and the channel's payload (an [`AdapterConfig`] per channel, from the
//! topology), and refuse what they cannot read with their own `error_kind` (`bad_json`,
//! `unknown_channel`, …). The operator then only forwards the order.
//!
//! Two issue-16 rules are applied here, where the channel's settings are at hand: a marketplace
//! test order on a channel with `skip_test_orders` is not forwarded but counted
//! (`shelfsync_test_orders_skipped_total`) and logged with its order key; and the lines an
//! adapter set aside for carrying no stock are counted (`shelfsync_order_lines_skipped_total`)
//! as the order goes on.

use std::collections::{BTreeMap, BTreeSet};

use shelfsync_operators::MapRecords;
use shelfsync_schemas::adapters::{normalize_with, AdapterConfig};
use shelfsync_schemas::{Order, SkipReason};
use shelfsync_topology::{TopicId, Topology};
use tracing::{debug, info};

use super::{Decoder, Emit, OperatorStage, Outputs, Rejected};
use crate::error::Result;
use crate::metrics as m;

/// What normalize makes of one raw record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Normalized {
    /// A canonical order, forwarded to `<app>-orders`.
    Order(Box<Order>),
    /// A marketplace test order on a channel that skips them: nothing is forwarded.
    TestOrderSkipped {
        /// The order key, for the log line.
        order_key: String,
        /// The channel, for the metric label.
        channel: String,
    },
}

/// The operator of `normalize`: the decoded record as it is.
pub const FORWARD_ORDER: MapRecords<Normalized, Normalized> =
    MapRecords::new(|record| Ok(record.clone()));

/// The channel adapters as the stage's decoder: channel name → adapter settings, from the
/// topology; test orders of channels with `skip_test_orders` become
/// [`Normalized::TestOrderSkipped`].
pub fn decoder(topology: &Topology) -> Decoder<Normalized> {
    let adapters: BTreeMap<String, AdapterConfig> = topology
        .channels
        .iter()
        .map(|c| (c.name.clone(), c.adapter_config()))
        .collect();
    let skip_tests: BTreeSet<String> = topology
        .channels
        .iter()
        .filter(|c| c.skip_test_orders)
        .map(|c| c.name.clone())
        .collect();
    Box::new(move |bytes| {
        let order =
            normalize_with(bytes, |channel| adapters.get(channel)).map_err(|e| Rejected {
                kind: e.kind(),
                reason: e.to_string(),
            })?;
        if order.test && skip_tests.contains(&order.channel) {
            return Ok(Normalized::TestOrderSkipped {
                order_key: order.key(),
                channel: order.channel,
            });
        }
        Ok(Normalized::Order(Box::new(order)))
    })
}

/// The `normalize` stage under `topology`.
pub fn stage(topology: &Topology) -> OperatorStage<MapRecords<Normalized, Normalized>> {
    OperatorStage::new(FORWARD_ORDER, decoder(topology))
}

impl Emit for Normalized {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        match self {
            Normalized::Order(order) => {
                for line in &order.skipped_lines {
                    let reason = match line.reason {
                        SkipReason::NO_SKU => "NO_SKU",
                        SkipReason::GIFT_CARD => "GIFT_CARD",
                        SkipReason::NON_PHYSICAL => "NON_PHYSICAL",
                    };
                    debug!(channel = %order.channel, line_id = %line.line_id, reason, "order line without stock skipped");
                    metrics::counter!(m::ORDER_LINES_SKIPPED, "channel" => order.channel.clone(), "reason" => reason)
                        .increment(1);
                }
                // Its delivery id follows it to every output and log line it causes.
                let correlation = order.delivery_id.clone();
                if correlation.is_empty() {
                    out.push(TopicId::Orders, order.key(), order.as_ref(), None)
                } else {
                    out.push_correlated(TopicId::Orders, order.key(), order.as_ref(), correlation)
                }
            }
            Normalized::TestOrderSkipped { order_key, channel } => {
                info!(%order_key, %channel, "marketplace test order skipped (skip_test_orders)");
                metrics::counter!(m::TEST_ORDERS_SKIPPED, "channel" => channel).increment(1);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOPOLOGY: &str = r#"
application_id = "t"
[kafka]
bootstrap_servers = "localhost:9092"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "shopify"
adapter = "shopify"
[[channels]]
name = "shop-test"
adapter = "shopify"
skip_test_orders = false
own_fulfillment_services = ["manual", "east-dc"]
"#;

    fn record(channel: &str, test: bool, service: &str) -> Vec<u8> {
        let payload = serde_json::json!({
            "id": 1001, "test": test, "financial_status": "paid", "currency": "USD",
            "line_items": [
                {"id": 1, "sku": "MUG-1", "quantity": 2, "price": "9.50", "fulfillment_service": service},
                {"id": 2, "sku": null, "quantity": 1, "price": "2.00", "requires_shipping": false, "title": "Tip"},
            ]
        });
        serde_json::to_vec(&serde_json::json!({
            "channel": channel, "delivery_id": "d", "received_at": 1, "payload": payload
        }))
        .unwrap_or_default()
    }

    #[test]
    fn test_orders_are_skipped_where_the_channel_says_so() {
        let topology = Topology::from_toml_str(TOPOLOGY).expect("valid topology");
        let decode = decoder(&topology);
        assert_eq!(
            decode(&record("shopify", true, "manual")),
            Ok(Normalized::TestOrderSkipped {
                order_key: "shopify:1001".into(),
                channel: "shopify".into()
            })
        );
        let Ok(Normalized::Order(order)) = decode(&record("shop-test", true, "manual")) else {
            panic!("shop-test forwards test orders");
        };
        assert!(order.test);
        assert_eq!(order.lines.len(), 1);
        assert_eq!(order.skipped_lines.len(), 1);
        assert_eq!(order.skipped_lines[0].reason, SkipReason::NON_PHYSICAL);
    }

    #[test]
    fn the_channels_own_fulfillment_services_decide_who_ships() {
        let topology = Topology::from_toml_str(TOPOLOGY).expect("valid topology");
        let decode = decoder(&topology);
        let fulfilled_by =
            |channel: &str, service: &str| match decode(&record(channel, false, service)) {
                Ok(Normalized::Order(order)) => order.lines[0].fulfilled_by,
                other => panic!("{other:?}"),
            };
        use shelfsync_schemas::FulfilledBy::{MARKETPLACE, MERCHANT};
        assert_eq!(fulfilled_by("shopify", "manual"), MERCHANT);
        assert_eq!(fulfilled_by("shopify", "east-dc"), MARKETPLACE);
        assert_eq!(fulfilled_by("shop-test", "east-dc"), MERCHANT);
        assert_eq!(fulfilled_by("shop-test", "shipbob"), MARKETPLACE);
    }
}
