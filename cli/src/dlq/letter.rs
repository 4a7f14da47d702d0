//! One dead letter as `shelfsync dlq` reads it: where it sits, what its headers say (stage,
//! source record, kind, reason, channel, redrive attempt), its key and value, and its payload
//! decoded by the schema of the topic it came from.

use rdkafka::message::{BorrowedMessage, Headers, Message};
use serde_json::{json, Value};
use shelfsync_pipeline::kafka;
use shelfsync_schemas::avro::{self, AvroRecord};
use shelfsync_schemas::{
    ChannelAvailability, InventoryChange, InventoryCommand, LineResult, Order, ProductChange,
};
use shelfsync_topology::{TopicId, Topology};

/// A record of the dead-letter topic.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    /// Its partition in the dead-letter topic.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// Its timestamp: the rejected record's (ms).
    pub timestamp: i64,
    /// Its key and value: the rejected record's (cut when too big, see `truncated`).
    pub key: Option<Vec<u8>>,
    /// The value bytes.
    pub value: Option<Vec<u8>>,
    /// Every header, in order.
    pub headers: Vec<(String, Vec<u8>)>,
}

impl DeadLetter {
    /// Copies `msg`.
    pub fn of(msg: &BorrowedMessage<'_>) -> Self {
        let headers = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.unwrap_or_default().to_vec()))
                    .collect()
            })
            .unwrap_or_default();
        Self {
            partition: msg.partition(),
            offset: msg.offset(),
            timestamp: msg.timestamp().to_millis().unwrap_or(0),
            key: msg.key().map(<[u8]>::to_vec),
            value: msg.payload().map(<[u8]>::to_vec),
            headers,
        }
    }

    /// `partition:offset`, how the commands name it.
    pub fn id(&self) -> String {
        format!("{}:{}", self.partition, self.offset)
    }

    /// `<dlq topic>/<partition>/<offset>`: its key in the redrive ledger and the value of the
    /// redriven record's `shelfsync-redrive-of` header.
    pub fn ledger_key(&self, dlq_topic: &str) -> String {
        format!("{dlq_topic}/{}/{}", self.partition, self.offset)
    }

    /// A header as text.
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }

    /// The stage that refused the record (`normalize`, …, `push`).
    pub fn stage(&self) -> String {
        self.header(kafka::DLQ_STAGE).unwrap_or_default()
    }

    /// The error kind (`bad_json`, `unknown_channel`, `marketplace_rejected`, …).
    pub fn kind(&self) -> String {
        self.header(kafka::DLQ_KIND).unwrap_or_default()
    }

    /// Why.
    pub fn reason(&self) -> String {
        self.header(kafka::DLQ_REASON).unwrap_or_default()
    }

    /// The topic the rejected record was read from.
    pub fn source_topic(&self) -> Option<String> {
        self.header(kafka::DLQ_TOPIC)
    }

    /// `topic/partition/offset` of the rejected record.
    pub fn source(&self) -> String {
        format!(
            "{}/{}/{}",
            self.source_topic().unwrap_or_default(),
            self.header(kafka::DLQ_PARTITION).unwrap_or_default(),
            self.header(kafka::DLQ_OFFSET).unwrap_or_default()
        )
    }

    /// Whether its key or value was cut to fit the dead-letter topic.
    pub fn truncated(&self) -> bool {
        self.header(kafka::DLQ_TRUNCATED).as_deref() == Some("true")
    }

    /// The redrive attempt the rejected record was (0: it was never redriven).
    pub fn attempt(&self) -> u32 {
        self.header(kafka::REDRIVE_ATTEMPT_HEADER)
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or(0)
    }

    /// The key as text.
    pub fn key_text(&self) -> String {
        self.key
            .as_deref()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default()
    }

    /// The sales channel it concerns: the push sink's channel header, the `channel` of a raw
    /// order envelope, or the channel of a `channel|sku` availability key.
    pub fn channel(&self, decoded: &Value) -> Option<String> {
        if let Some(c) = self.header(shelfsync_pipeline::push::DLQ_CHANNEL) {
            return Some(c);
        }
        if let Some(c) = decoded.get("channel").and_then(Value::as_str) {
            return Some(c.to_string());
        }
        self.key_text()
            .split_once('|')
            .map(|(channel, _)| channel.to_string())
    }

    /// Whether `wanted` (a SKU or an order key) is this dead letter's: its key, any string in
    /// its decoded payload, or `<channel>:<string>` (an order key built from a raw order's id).
    pub fn concerns(&self, wanted: &str, decoded: &Value) -> bool {
        if self.key_text() == wanted || self.key_text().ends_with(&format!("|{wanted}")) {
            return true;
        }
        let channel = self.channel(decoded);
        let mut found = false;
        walk_strings(decoded, &mut |s| {
            found |= s == wanted
                || channel.as_deref().is_some_and(|c| {
                    wanted.strip_prefix(c).and_then(|r| r.strip_prefix(':')) == Some(s)
                });
        });
        found
    }

    /// The payload decoded by its source topic's schema (a raw order as its JSON), or what
    /// stops it from being decoded, with the bytes as text.
    pub fn decode(&self, topology: &Topology) -> Value {
        let Some(value) = self.value.as_deref() else {
            return Value::Null;
        };
        let id = self.source_topic().and_then(|name| {
            TopicId::ALL
                .into_iter()
                .find(|id| topology.topic_name(*id) == name)
        });
        fn avro_json<T: AvroRecord>(bytes: &[u8]) -> Result<Value, String> {
            avro::decode::<T>(bytes)
                .map_err(|e| e.to_string())
                .and_then(|v| serde_json::to_value(v).map_err(|e| e.to_string()))
        }
        let decoded = match id {
            Some(TopicId::RawOrders) => {
                serde_json::from_slice::<Value>(value).map_err(|e| e.to_string())
            }
            Some(TopicId::ErpInventory) => avro_json::<InventoryChange>(value),
            Some(TopicId::ErpProducts) => avro_json::<ProductChange>(value),
            Some(TopicId::Orders) => avro_json::<Order>(value),
            Some(TopicId::InventoryCommands) => avro_json::<InventoryCommand>(value),
            Some(TopicId::LineResults) => avro_json::<LineResult>(value),
            Some(TopicId::Availability) => avro_json::<ChannelAvailability>(value),
            _ => Err("not a topic of this topology".to_string()),
        };
        decoded.unwrap_or_else(|error| {
            json!({
                "undecodable": error,
                "text": String::from_utf8_lossy(value),
            })
        })
    }
}

/// Calls `f` on every string in `v`, at any depth.
fn walk_strings(v: &Value, f: &mut impl FnMut(&str)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter().for_each(|v| walk_strings(v, f)),
        Value::Object(o) => o.values().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn letter(headers: &[(&str, &str)], key: &str) -> DeadLetter {
        DeadLetter {
            partition: 0,
            offset: 7,
            timestamp: 0,
            key: Some(key.as_bytes().to_vec()),
            value: None,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
        }
    }

    #[test]
    fn an_order_key_finds_a_raw_order_by_channel_and_id() {
        let d = letter(&[], "");
        let raw = json!({"channel": "walmart", "payload": {"purchaseOrderId": "1796277083438"}});
        assert!(d.concerns("walmart:1796277083438", &raw));
        assert!(d.concerns("1796277083438", &raw));
        assert!(!d.concerns("amazon:1796277083438", &raw));
        assert_eq!(d.channel(&raw).as_deref(), Some("walmart"));
    }

    #[test]
    fn an_availability_key_gives_its_channel_and_sku() {
        let d = letter(
            &[
                (kafka::REDRIVE_ATTEMPT_HEADER, "2"),
                (kafka::DLQ_TRUNCATED, "true"),
            ],
            "ebay|SKU-9",
        );
        assert_eq!(d.channel(&Value::Null).as_deref(), Some("ebay"));
        assert!(d.concerns("SKU-9", &Value::Null));
        assert_eq!(d.attempt(), 2);
        assert!(d.truncated());
        assert_eq!(d.id(), "0:7");
        assert_eq!(d.ledger_key("retail.dlq"), "retail.dlq/0/7");
    }
}
