//! The traffic model without a producer ([`TrafficSource`]): the records `shelfsync generate`
//! would send, pulled one at a time with a caller-supplied clock.

use shelfsync_topology::{TopicId, Topology};

#[cfg(doc)]
use shelfsync_pipeline::Error;
use shelfsync_pipeline::Result;

use super::model::{GenRecord, Target, TrafficModel};
use super::GeneratorConfig;

/// One record of the traffic model: the input topic it is for, its key and its value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRecord {
    /// `RawOrders`, `ErpInventory` or `ErpProducts`.
    pub topic: TopicId,
    /// Record key (order key or SKU).
    pub key: String,
    /// Record value: a raw channel envelope (JSON) or a single-object Avro ERP record.
    pub value: Vec<u8>,
}

/// The generator's traffic model without a producer: the records `shelfsync generate` would
/// send, pulled one at a time with a caller-supplied clock. The benchmarks feed them to the
/// stages in process, so that micro-benchmarks and the end-to-end benchmark see one workload.
pub struct TrafficSource {
    model: TrafficModel,
}

impl std::fmt::Debug for TrafficSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrafficSource")
            .field("skus", &self.model.sku_count())
            .finish_non_exhaustive()
    }
}

impl TrafficSource {
    /// The model of `cfg` (its rates and duration are not used: the caller decides the pace).
    ///
    /// # Errors
    /// [`Error::Config`] for a bad configuration or a topology without channels or locations.
    pub fn new(topology: &Topology, cfg: &GeneratorConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Self {
            model: TrafficModel::new(topology, cfg)?,
        })
    }

    fn record(&self, rec: GenRecord) -> SourceRecord {
        SourceRecord {
            topic: match rec.target {
                Target::RawOrders => TopicId::RawOrders,
                Target::ErpInventory => TopicId::ErpInventory,
                Target::ErpProducts => TopicId::ErpProducts,
            },
            key: rec.key,
            value: rec.value,
        }
    }

    /// The product master of every SKU, then a stock snapshot of every (SKU, location).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn catalog(&mut self, now_ms: i64) -> Result<Vec<SourceRecord>> {
        let records = self.model.catalog(now_ms)?;
        Ok(records.into_iter().map(|r| self.record(r)).collect())
    }

    /// The next steady-traffic order record (new order, repeat, revision or cancellation).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn next_order(&mut self, now_ms: i64) -> Result<SourceRecord> {
        let rec = self.model.next_order_event(now_ms)?;
        Ok(self.record(rec))
    }

    /// The next ERP stock update (receipt, correction or recount).
    ///
    /// # Errors
    /// [`Error::Bug`] when a record does not encode.
    pub fn next_erp_update(&mut self, now_ms: i64) -> Result<SourceRecord> {
        let rec = self.model.next_erp_event(now_ms)?;
        Ok(self.record(rec))
    }
}
