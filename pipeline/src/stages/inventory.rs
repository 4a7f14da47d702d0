//! `inventory`: inventory commands → line results (keyed by order key, for `assemble`) and
//! per-channel availability (keyed `channel|sku`, external) — operator `ReserveInventory`,
//! store `inventory`. Rejected lines, stale ERP records, expired holds and hard holds released at
//! their channel's maximum age are counted.

use shelfsync_operators::reserve_inventory::InventoryOutput;
use shelfsync_schemas::{availability_key, LineOutcome, LineResult};
use shelfsync_topology::TopicId;
use tracing::{debug, info, warn};

use super::{Emit, Outputs};
use crate::error::Result;
use crate::metrics as m;

impl Emit for InventoryOutput {
    fn emit(self, out: &mut Outputs<'_>) -> Result<()> {
        match self {
            InventoryOutput::LineResult(r) => {
                count_line(&r);
                out.push(TopicId::LineResults, r.order_key.clone(), &r, None)?;
            }
            InventoryOutput::Availability(a) => {
                metrics::counter!(m::AVAILABILITY_UPDATES, "channel" => a.channel.clone())
                    .increment(1);
                let id = a.event_id.clone();
                out.push(
                    TopicId::Availability,
                    availability_key(&a.channel, &a.sku),
                    &a,
                    Some(id),
                )?;
            }
            InventoryOutput::StaleIgnored { sku } => {
                debug!(%sku, "stale ERP record ignored (erp_sequence not newer)");
                metrics::counter!(m::STALE_ERP_IGNORED).increment(1);
            }
            InventoryOutput::HoldExpired { sku, order_key } => {
                debug!(%sku, %order_key, "soft hold expired and released");
                metrics::counter!(m::STATE_EXPIRED, "stage" => out.stage()).increment(1);
            }
            InventoryOutput::HardHoldReleased {
                sku,
                order_key,
                channel,
                reserved,
                age_ms,
            } => {
                warn!(%sku, %order_key, %channel, reserved, age_hours = age_ms / 3_600_000, "hard hold older than the channel's hard_hold_max_age released: no shipment was posted for it");
                metrics::counter!(m::HARD_HOLDS_RELEASED, "channel" => channel).increment(1);
            }
        }
        Ok(())
    }
}

fn count_line(r: &LineResult) {
    if r.outcome == LineOutcome::REJECTED {
        info!(order_key = %r.order_key, sku = %r.sku, channel = %r.channel, quantity = r.quantity, "order line rejected: short stock");
        metrics::counter!(m::OVERSELL_REJECTIONS, "channel" => r.channel.clone()).increment(1);
    }
}

#[cfg(test)]
mod tests {
    use shelfsync_operators::MemStore;
    use shelfsync_schemas::{avro, InventoryChange, InventoryChangeKind, InventoryCommand};
    use shelfsync_topology::{Stage, TopicId, Topology};

    use crate::stages::StageLogic;

    const TOPOLOGY: &str = r#"
application_id = "t"
[kafka]
bootstrap_servers = "localhost:9092"
[inventory]
soft_hold_ttl = "1s"
[[locations]]
id = "dc"
name = "DC"
[[channels]]
name = "amazon"
adapter = "amazon"
"#;

    fn line(qty: i64) -> InventoryCommand {
        InventoryCommand::reserve(shelfsync_schemas::LineCommand {
            order_key: "amazon:1".into(),
            channel: "amazon".into(),
            channel_order_id: "1".into(),
            revision: 1,
            lines_in_revision: 1,
            line_id: "1".into(),
            sku: "S".into(),
            quantity: qty,
            paid: false,
            cancelled: false,
            placed_at: 0,
            ..shelfsync_schemas::LineCommand::default()
        })
    }

    /// Issue 16: a command refused at a stream time where a soft hold expires still publishes
    /// the availability that expiry changed (the step spent the version).
    #[test]
    fn an_invalid_command_keeps_the_availability_of_the_expiries_due_in_its_step() {
        let topology = Topology::from_toml_str(TOPOLOGY).expect("valid topology");
        let logic = StageLogic::new(Stage::Inventory, &topology);
        let mut store = MemStore::new();
        let mut run = |ts: i64, cmd: &InventoryCommand| {
            let mut out = Vec::new();
            let result = logic
                .process(
                    Some(&mut store),
                    ts,
                    Some(&avro::encode(cmd, avro::Framing::SingleObject).expect("encodes")),
                    &mut out,
                )
                .expect("no bug");
            let availability: Vec<i64> = out
                .iter()
                .filter(|r| r.topic == TopicId::Availability)
                .map(|r| {
                    avro::decode::<shelfsync_schemas::ChannelAvailability>(&r.value)
                        .expect("decodes")
                        .quantity
                })
                .collect();
            (result.is_ok(), availability)
        };
        let snapshot = InventoryCommand::inventory(InventoryChange {
            sku: "S".into(),
            location: "dc".into(),
            kind: InventoryChangeKind::SNAPSHOT,
            quantity: 10,
            erp_sequence: 1,
            reason: None,
            order_key: None,
            line_id: None,
            event_time: 0,
        });
        assert_eq!(run(0, &snapshot), (true, vec![10]));
        assert_eq!(run(10, &line(3)), (true, vec![7]));
        // 2 s later the soft hold has expired; the command itself is invalid (quantity 0).
        assert_eq!(run(2_010, &line(0)), (false, vec![10]));
    }
}
