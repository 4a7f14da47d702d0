//! A retail scenario (ERP stock, product master, raw orders from every channel adapter's
//! fixtures, duplicates, revisions, cancellations, shipments) and the model that predicts its
//! outputs by running the same stage logic over `MemStore`, sequentially, with no Kafka.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use shelfsync_operators::MemStore;
use shelfsync_pipeline::stages::{OutRecord, StageLogic};
use shelfsync_schemas::avro::{self, Framing};
use shelfsync_schemas::{
    AdjustmentReason, ChannelAvailability, ChannelOverride, InventoryChange, InventoryChangeKind,
    OrderStatus, ProductChange, ValidatedOrder,
};
use shelfsync_topology::{Stage, TopicId, Topology};

/// Which external input topic a record goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Input {
    /// `retail.channel.orders.raw` (JSON envelopes).
    RawOrders,
    /// `retail.erp.inventory` (Avro `InventoryChange`).
    ErpInventory,
    /// `retail.erp.products` (Avro `ProductChange`).
    ErpProducts,
}

impl Input {
    /// The logical topic.
    pub fn topic(self) -> TopicId {
        match self {
            Input::RawOrders => TopicId::RawOrders,
            Input::ErpInventory => TopicId::ErpInventory,
            Input::ErpProducts => TopicId::ErpProducts,
        }
    }
}

/// One input record.
#[derive(Debug, Clone)]
pub struct InputRecord {
    /// Target topic.
    pub input: Input,
    /// Key.
    pub key: Option<Vec<u8>>,
    /// Value bytes.
    pub value: Vec<u8>,
    /// Kafka timestamp (ms).
    pub timestamp: i64,
}

/// The project's fixtures folder (`tests/fixtures`).
pub fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures")
}

/// The `application_id` and `[kafka]` tables of every test topology: group timings short enough
/// for a test to see a rebalance.
pub fn kafka_toml(bootstrap: &str, application_id: &str) -> String {
    format!(
        r#"application_id = "{application_id}"

[kafka]
bootstrap_servers = "{bootstrap}"

[kafka.properties]
"session.timeout.ms" = "15000"
"heartbeat.interval.ms" = "1000"
"max.poll.interval.ms" = "60000"
"topic.metadata.refresh.interval.ms" = "2000"
"#
    )
}

/// The topology file for tests: five channels over two locations.
pub fn topology_toml(bootstrap: &str, application_id: &str, partitions: i32) -> String {
    let kafka = kafka_toml(bootstrap, application_id);
    format!(
        r#"{kafka}
[processing]
epoch_interval = "100ms"

[topics]
partitions = {partitions}

[topics.partition_overrides]
dlq = 1

[[locations]]
id = "dc-east"
name = "East DC"

[[locations]]
id = "store-nyc"
name = "NYC store"

[[channels]]
name = "amazon"
adapter = "amazon"
share_pct = 40
buffer = 2
oversell_policy = "reject"

[[channels]]
name = "walmart"
adapter = "walmart"
share_pct = 30
min_publish = 2

[[channels]]
name = "shopify"
adapter = "shopify"
oversell_policy = "backorder"

[[channels]]
name = "ebay"
adapter = "generic"
share_pct = 20
max_qty = 50
eligible_locations = ["dc-east"]

[[channels]]
name = "store-nyc"
adapter = "generic"
eligible_locations = ["store-nyc"]
oversell_policy = "backorder"
"#
    )
}

fn avro_value<T: avro::AvroRecord>(v: &T) -> Vec<u8> {
    avro::encode(v, Framing::SingleObject).unwrap_or_default()
}

/// A product master record.
pub fn product(
    sku: &str,
    seq: i64,
    units: i64,
    pct: i64,
    overrides: Vec<ChannelOverride>,
) -> Vec<u8> {
    avro_value(&ProductChange {
        sku: sku.into(),
        active: true,
        safety_stock_units: units,
        safety_stock_pct: pct,
        channel_overrides: overrides,
        erp_sequence: seq,
        event_time: 0,
        safety_stock_percent: None,
    })
}

/// An ERP stock record.
pub fn stock(
    sku: &str,
    loc: &str,
    kind: InventoryChangeKind,
    qty: i64,
    seq: i64,
    reason: Option<AdjustmentReason>,
    shipped: Option<(&str, &str)>,
) -> Vec<u8> {
    avro_value(&InventoryChange {
        sku: sku.into(),
        location: loc.into(),
        kind,
        quantity: qty,
        erp_sequence: seq,
        reason,
        order_key: shipped.map(|s| s.0.to_string()),
        line_id: shipped.map(|s| s.1.to_string()),
        event_time: 0,
    })
}

/// A generic-adapter raw order envelope.
pub fn generic_order(
    channel: &str,
    id: &str,
    delivery: &str,
    paid: bool,
    cancelled: bool,
    lines: &[(&str, &str, i64)],
) -> Vec<u8> {
    let lines: Vec<serde_json::Value> = lines
        .iter()
        .map(|(l, s, q)| serde_json::json!({"line_id": l, "sku": s, "quantity": q}))
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "channel": channel,
        "delivery_id": delivery,
        "received_at": 1_772_000_000_000i64,
        "payload": {"order_id": id, "paid": paid, "cancelled": cancelled, "placed_at": 1_772_000_000_000i64, "lines": lines}
    }))
    .unwrap_or_default()
}

/// The retail scenario in phases; a phase starts when the previous one's outputs are all out.
pub struct Scenario {
    /// Phases of input records.
    pub phases: Vec<Vec<InputRecord>>,
}

/// SKUs that appear in the project's raw fixtures.
fn fixture_skus() -> Result<Vec<String>> {
    let expected: serde_json::Value = serde_json::from_slice(
        &std::fs::read(fixtures_dir().join("raw/expected.json")).context("read expected.json")?,
    )?;
    let mut skus: Vec<String> = expected
        .as_object()
        .into_iter()
        .flat_map(|m| m.values())
        .flat_map(|v| v["order"]["lines"].as_array().cloned().unwrap_or_default())
        .filter_map(|l| l["sku"].as_str().map(str::to_string))
        .collect();
    skus.sort();
    skus.dedup();
    Ok(skus)
}

impl Scenario {
    /// Builds the scenario: every raw fixture (each delivered twice), generic orders on scarce
    /// SKUs (one order each, so outcomes do not depend on cross-partition interleaving), a
    /// revision, a cancellation, adjustments and a shipment.
    ///
    /// # Errors
    /// When the fixtures cannot be read.
    // Pushes with a comment before each read better than one `vec![]` literal here.
    #[allow(clippy::vec_init_then_push)]
    pub fn retail() -> Result<Self> {
        let mut ts = base_timestamp();
        let mut next = |input: Input, key: Option<&str>, value: Vec<u8>| {
            ts += 1000;
            InputRecord {
                input,
                key: key.map(|k| k.as_bytes().to_vec()),
                value,
                timestamp: ts,
            }
        };
        let skus = fixture_skus()?;
        // Products and stock are separate phases: they are two input topics, and the order in
        // which two stages' outputs interleave on the command topic is not defined.
        let mut products = Vec::new();
        let mut erp = Vec::new();
        for (i, sku) in skus.iter().enumerate() {
            let units = (i % 3) as i64;
            products.push(next(
                Input::ErpProducts,
                Some(sku),
                product(sku, 1, units, 10, vec![]),
            ));
            erp.push(next(
                Input::ErpInventory,
                Some(sku),
                stock(
                    sku,
                    "dc-east",
                    InventoryChangeKind::SNAPSHOT,
                    60 + i as i64,
                    1,
                    None,
                    None,
                ),
            ));
            erp.push(next(
                Input::ErpInventory,
                Some(sku),
                stock(
                    sku,
                    "store-nyc",
                    InventoryChangeKind::SNAPSHOT,
                    15,
                    1,
                    None,
                    None,
                ),
            ));
        }
        for sku in ["SCARCE-1", "SCARCE-2"] {
            erp.push(next(
                Input::ErpInventory,
                Some(sku),
                stock(
                    sku,
                    "dc-east",
                    InventoryChangeKind::SNAPSHOT,
                    1,
                    1,
                    None,
                    None,
                ),
            ));
        }
        products.push(next(
            Input::ErpProducts,
            Some("SKU-OVR"),
            product(
                "SKU-OVR",
                1,
                0,
                0,
                vec![ChannelOverride {
                    channel: "ebay".into(),
                    enabled: false,
                    safety_stock_units: None,
                    safety_stock_pct: None,
                    safety_stock_percent: None,
                    share_pct: None,
                    buffer: None,
                    max_qty: None,
                    min_publish: None,
                }],
            ),
        ));
        erp.push(next(
            Input::ErpInventory,
            Some("SKU-OVR"),
            stock(
                "SKU-OVR",
                "dc-east",
                InventoryChangeKind::SNAPSHOT,
                30,
                1,
                None,
                None,
            ),
        ));

        let mut orders = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(fixtures_dir().join("raw"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().is_some_and(|n| n != "expected.json"))
            .collect();
        files.sort();
        let expected: serde_json::Value =
            serde_json::from_slice(&std::fs::read(fixtures_dir().join("raw/expected.json"))?)?;
        for f in &files {
            let bytes = std::fs::read(f)?;
            // Raw orders are keyed by order key, so revisions of one order stay in order.
            let name = f.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            let order = &expected[name]["order"];
            let key = format!(
                "{}:{}",
                order["channel"].as_str().unwrap_or_default(),
                order["channel_order_id"].as_str().unwrap_or_default()
            );
            let key = Some(key.as_str());
            orders.push(next(Input::RawOrders, key, bytes.clone()));
            // The same payload again with a new delivery id: dedupe drops it.
            let mut v: serde_json::Value = serde_json::from_slice(&bytes)?;
            v["delivery_id"] = serde_json::json!(format!("redelivery-{}", f.display()));
            orders.push(next(Input::RawOrders, key, serde_json::to_vec(&v)?));
        }
        orders.push(next(
            Input::RawOrders,
            Some("amazon-x:x"),
            generic_order("amazon-x", "x", "d", true, false, &[("1", "A", 1)]),
        ));
        orders.push(next(
            Input::RawOrders,
            Some("ebay:E-100"),
            generic_order(
                "ebay",
                "E-100",
                "d100",
                true,
                false,
                &[("1", "SCARCE-1", 3)],
            ),
        ));
        orders.push(next(
            Input::RawOrders,
            Some("shopify-generic:S"),
            generic_order("shopify-generic", "S", "d", true, false, &[("1", "A", 1)]),
        ));
        orders.push(next(
            Input::RawOrders,
            Some("store-nyc:N-1"),
            generic_order(
                "store-nyc",
                "N-1",
                "d101",
                false,
                false,
                &[("1", "SCARCE-2", 3)],
            ),
        ));
        orders.push(next(
            Input::RawOrders,
            Some("ebay:E-200"),
            generic_order(
                "ebay",
                "E-200",
                "d200",
                true,
                false,
                &[("1", "SKU-OVR", 2), ("2", "MUG-BLUE-350", 1)],
            ),
        ));
        orders.push(next(
            Input::RawOrders,
            Some("store-nyc:N-2"),
            generic_order(
                "store-nyc",
                "N-2",
                "d201",
                true,
                false,
                &[("1", "MUG-BLUE-350", 2)],
            ),
        ));

        let mut later = Vec::new();
        // A revision (line quantity 1 → 4) and a cancellation.
        later.push(next(
            Input::RawOrders,
            Some("ebay:E-200"),
            generic_order(
                "ebay",
                "E-200",
                "d202",
                true,
                false,
                &[("1", "SKU-OVR", 4), ("2", "MUG-BLUE-350", 1)],
            ),
        ));
        later.push(next(
            Input::RawOrders,
            Some("store-nyc:N-2"),
            generic_order(
                "store-nyc",
                "N-2",
                "d203",
                true,
                true,
                &[("1", "MUG-BLUE-350", 2)],
            ),
        ));
        // A late retry of revision 1 of E-200: dropped, the revision stands.
        later.push(next(
            Input::RawOrders,
            Some("ebay:E-200"),
            generic_order(
                "ebay",
                "E-200",
                "d204",
                true,
                false,
                &[("1", "SKU-OVR", 2), ("2", "MUG-BLUE-350", 1)],
            ),
        ));

        let mut erp_later = Vec::new();
        erp_later.push(next(
            Input::ErpInventory,
            Some("SKU-OVR"),
            stock(
                "SKU-OVR",
                "dc-east",
                InventoryChangeKind::ADJUSTMENT,
                -4,
                2,
                Some(AdjustmentReason::SHIPMENT),
                Some(("ebay:E-200", "1")),
            ),
        ));
        erp_later.push(next(
            Input::ErpInventory,
            Some("SCARCE-1"),
            stock(
                "SCARCE-1",
                "dc-east",
                InventoryChangeKind::ADJUSTMENT,
                20,
                2,
                Some(AdjustmentReason::RECEIPT),
                None,
            ),
        ));
        // Stale: sequence 1 again.
        erp_later.push(next(
            Input::ErpInventory,
            Some("SCARCE-1"),
            stock(
                "SCARCE-1",
                "dc-east",
                InventoryChangeKind::SNAPSHOT,
                500,
                1,
                None,
                None,
            ),
        ));
        Ok(Self {
            phases: vec![products, erp, orders, later, erp_later],
        })
    }
}

/// What the pipeline must emit, as predicted by the model.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Expected {
    /// Availability events in emission order.
    pub availability: Vec<ChannelAvailability>,
    /// Statuses in emission order.
    pub statuses: Vec<OrderStatus>,
    /// Validated orders in emission order.
    pub validated: Vec<ValidatedOrder>,
    /// Records refused (DLQ), with their kind.
    pub dead: Vec<(String, &'static str)>,
}

/// Runs inputs through the stage logic over `MemStore`, one store per stage, depth first.
pub struct Model {
    logic: BTreeMap<Stage, StageLogic>,
    stores: BTreeMap<Stage, MemStore>,
    /// Everything emitted so far.
    pub expected: Expected,
}

impl Model {
    /// A fresh model of `topology`.
    pub fn new(topology: &Topology) -> Self {
        Self {
            logic: Stage::ALL
                .iter()
                .map(|s| (*s, StageLogic::new(*s, topology)))
                .collect(),
            stores: Stage::ALL.iter().map(|s| (*s, MemStore::new())).collect(),
            expected: Expected::default(),
        }
    }

    /// Feeds one input record (and everything it causes downstream).
    ///
    /// # Errors
    /// When a stage fails with a bug or an output does not decode.
    pub fn feed(&mut self, rec: &InputRecord) -> Result<()> {
        let stage = match rec.input {
            Input::RawOrders => Stage::Normalize,
            Input::ErpInventory => Stage::ErpInventory,
            Input::ErpProducts => Stage::ErpProducts,
        };
        let mut queue: VecDeque<(Stage, Vec<u8>)> = VecDeque::from([(stage, rec.value.clone())]);
        while let Some((stage, value)) = queue.pop_front() {
            let logic = self.logic.get(&stage).context("logic")?;
            let store = self.stores.get_mut(&stage).context("store")?;
            let mut out: Vec<OutRecord> = Vec::new();
            let store: Option<&mut dyn shelfsync_operators::StateStore> = if stage.is_stateful() {
                Some(store)
            } else {
                None
            };
            match logic.process(store, rec.timestamp, Some(&value), &mut out)? {
                Ok(()) => {}
                Err(rejected) => self
                    .expected
                    .dead
                    .push((stage.name().to_string(), rejected.kind)),
            }
            // Depth first: the outputs of this record are processed before the next record,
            // which is the order one partition per topic gives in the pipeline.
            let mut next = Vec::new();
            for o in out {
                match o.topic {
                    TopicId::Orders => next.push((Stage::Dedupe, o.value)),
                    TopicId::InventoryCommands => next.push((Stage::Inventory, o.value)),
                    TopicId::LineResults => next.push((Stage::Assemble, o.value)),
                    TopicId::Availability => {
                        self.expected.availability.push(avro::decode(&o.value)?)
                    }
                    TopicId::OrderStatus => self.expected.statuses.push(avro::decode(&o.value)?),
                    TopicId::ValidatedOrders => {
                        self.expected.validated.push(avro::decode(&o.value)?)
                    }
                    other => anyhow::bail!("unexpected output topic {other:?}"),
                }
            }
            for n in next.into_iter().rev() {
                queue.push_front(n);
            }
        }
        Ok(())
    }
}

/// The Kafka timestamp (ms) the tests' input starts at: one hour before the test process
/// started, the same for every call in one process.
///
/// Not a fixed date: brokers delete records whose timestamp is older than the topic's
/// `retention.ms` (7 days by default; the broker checks every few minutes), so a fixed
/// date in the past makes the broker delete test input before the pipeline has read it, which
/// looks exactly like lost orders.
pub fn base_timestamp() -> i64 {
    static BASE: std::sync::OnceLock<i64> = std::sync::OnceLock::new();
    *BASE.get_or_init(|| {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        now - 3_600_000
    })
}
