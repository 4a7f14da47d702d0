//! What the sink dead-letters: an input record it cannot read, or an update the marketplace
//! refused (or that failed on every try), as a record for the dead-letter topic with the
//! headers that say where it came from and why.

use shelfsync_schemas::avro::{self, Framing};
use shelfsync_schemas::{availability_key, ChannelAvailability};

use super::queue::{Cover, Queued};
use super::{DLQ_CHANNEL, DLQ_HTTP_BODY, DLQ_HTTP_STATUS, STAGE};
use crate::kafka;

/// A record for the dead-letter topic.
#[derive(Debug)]
pub(crate) struct DeadLetter {
    /// The channel's index in the sink (`usize::MAX`: none, the record was not readable).
    pub(crate) channel: usize,
    pub(crate) key: Vec<u8>,
    pub(crate) value: Vec<u8>,
    /// The input records it stands for: acknowledged once it is produced.
    pub(crate) covers: Vec<Cover>,
    /// `decode`, `marketplace_rejected` or `retries_exhausted`.
    pub(crate) kind: &'static str,
    pub(crate) reason: String,
    /// The marketplace's HTTP status.
    pub(crate) status: Option<u16>,
    /// The marketplace's response body.
    pub(crate) body: String,
    /// The correlation id and trace context of the availability record it stands for.
    pub(crate) trace: Vec<(&'static str, Vec<u8>)>,
}

impl DeadLetter {
    /// An input record (`key`, `payload`) that is not a readable availability update.
    pub(crate) fn unreadable(
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        cover: Cover,
        reason: String,
        trace: Vec<(&'static str, Vec<u8>)>,
    ) -> Self {
        Self {
            channel: usize::MAX,
            key: key.unwrap_or_default().to_vec(),
            value: payload.unwrap_or_default().to_vec(),
            covers: vec![cover],
            kind: "decode",
            reason,
            status: None,
            body: String::new(),
            trace,
        }
    }

    /// The update of `entry` on channel `channel` (named `name`), re-encoded as the
    /// availability record it came from.
    pub(crate) fn update(
        channel: usize,
        name: &str,
        entry: Queued,
        kind: &'static str,
        reason: String,
        status: Option<u16>,
        body: String,
    ) -> Self {
        let record = ChannelAvailability {
            event_id: entry.update.event_id.clone(),
            channel: name.to_string(),
            sku: entry.update.sku.clone(),
            quantity: entry.update.quantity,
            version: entry.update.version,
            event_time: entry.update.event_time,
        };
        let trace = entry.update.trace.clone();
        Self {
            channel,
            key: availability_key(name, &entry.update.sku).into_bytes(),
            value: avro::encode(&record, Framing::SingleObject).unwrap_or_default(),
            covers: entry.covers,
            kind,
            reason,
            status,
            body,
            trace,
        }
    }

    /// Its headers: stage, source topic, partition and offset of the newest record it covers,
    /// kind and reason, then the channel's name and the marketplace's status and body where
    /// there are some.
    pub(crate) fn headers(
        &self,
        source_topic: &str,
        channel: Option<&str>,
    ) -> Vec<(&'static str, Vec<u8>)> {
        let newest = self.covers.iter().max_by_key(|c| c.offset).copied();
        let mut headers: Vec<(&str, Vec<u8>)> = vec![
            (kafka::DLQ_STAGE, STAGE.as_bytes().to_vec()),
            (kafka::DLQ_TOPIC, source_topic.as_bytes().to_vec()),
            (
                kafka::DLQ_PARTITION,
                newest.map_or(-1, |c| c.partition).to_string().into_bytes(),
            ),
            (
                kafka::DLQ_OFFSET,
                newest.map_or(-1, |c| c.offset).to_string().into_bytes(),
            ),
            (kafka::DLQ_KIND, self.kind.as_bytes().to_vec()),
            (kafka::DLQ_REASON, self.reason.clone().into_bytes()),
        ];
        if let Some(name) = channel {
            headers.push((DLQ_CHANNEL, name.as_bytes().to_vec()));
        }
        if let Some(status) = self.status {
            headers.push((DLQ_HTTP_STATUS, status.to_string().into_bytes()));
        }
        if !self.body.is_empty() {
            headers.push((DLQ_HTTP_BODY, self.body.clone().into_bytes()));
        }
        headers.extend(self.trace.iter().cloned());
        headers
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Issue 19: a push dead letter carries the availability record's correlation id and trace
    /// context, so one grep of the id reaches it too.
    #[test]
    fn a_dead_letter_carries_its_records_trace_headers() {
        let trace = vec![
            (kafka::CORRELATION_HEADER, b"d-42".to_vec()),
            (kafka::TRACEPARENT_HEADER, b"00-ab-cd-01".to_vec()),
        ];
        let cover = Cover {
            partition: 1,
            generation: 0,
            offset: 7,
        };
        let d = DeadLetter::unreadable(Some(b"k"), Some(b"x"), cover, "bad".into(), trace);
        let headers = d.headers("retail.channel.availability", None);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.as_slice())
        };
        assert_eq!(get(kafka::CORRELATION_HEADER), Some(&b"d-42"[..]));
        assert_eq!(get(kafka::TRACEPARENT_HEADER), Some(&b"00-ab-cd-01"[..]));
        assert_eq!(get(kafka::DLQ_OFFSET), Some(&b"7"[..]));
    }
}
