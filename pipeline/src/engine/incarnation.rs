//! Lineages: telling a recreated input topic from the one a checkpoint was written for
//! (issue 15 #5).
//!
//! A checkpoint keeps the offset and timestamp of the last input record its task read. When a
//! task opens, that record must still be there: if the partition now ends before it, or holds
//! another record at that offset, the topic was recreated (or truncated) and its offsets began
//! again. The task then starts a new **lineage**: it reads the new topic from the group's
//! offset (or its beginning) instead of skipping everything below the old checkpoint as
//! replays, keeps its state (stock does not vanish with a topic), and stamps its outputs
//! `task@lineage/step/index`, so its readers do not take the new lineage's low offsets for
//! repeats of the old one's, and its own tail scan does not take the old lineage's outputs
//! for its own.
//!
//! A task that starts from nothing (no checkpoint, no committed offset) takes a lineage
//! derived from this state directory's writer id: stable across a crash before its first
//! commit on this host (its tail scan then finds what it already delivered), and different
//! from any earlier deployment's, whose old outputs it must not take for its own. Tasks that
//! ran before lineages existed keep lineage 0 (stamps without `@`).

use std::ops::ControlFlow;

use rdkafka::message::Message;
use sha2::{Digest, Sha256};

use super::restore::{read_partitions, reader, watermarks, OpenCtx};
use crate::error::Result;

/// A lineage number from `parts`: positive, never 0.
fn derive(parts: &[&[u8]]) -> i64 {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update((part.len() as u64).to_be_bytes());
        hasher.update(part);
    }
    let digest = hasher.finalize();
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    // 52 bits: short in headers, far from colliding, and never 0.
    (u64::from_be_bytes(first) >> 12) as i64 | 1
}

/// The lineage of a task that starts from nothing on the host with `writer_id`.
pub(crate) fn fresh(writer_id: &[u8], task: &str) -> i64 {
    derive(&[b"fresh", writer_id, task.as_bytes()])
}

/// The lineage that follows `lineage` once the input record `last` is gone: the same on every
/// retry of the same open and on every host that finds the same change.
pub(crate) fn after(task: &str, lineage: i64, last: (i64, i64)) -> i64 {
    derive(&[
        b"after",
        task.as_bytes(),
        &lineage.to_be_bytes(),
        &last.0.to_be_bytes(),
        &last.1.to_be_bytes(),
    ])
}

impl OpenCtx {
    /// Why `(topic, partition)` is not the incarnation whose record at offset `last.0` had
    /// timestamp `last.1` — it ends before that offset, or holds a record with another
    /// timestamp there — and where it begins and ends now. `None`: the record is there, or
    /// retention removed it (nothing to compare).
    pub(crate) fn input_recreated(
        &self,
        topic: &str,
        partition: i32,
        last: (i64, i64),
    ) -> Result<Option<(String, i64, i64)>> {
        let (offset, ts) = last;
        let consumer = reader(&self.topology, "incarnation-check")?;
        let (low, high) = watermarks(&consumer, topic, partition)?;
        if high <= offset {
            return Ok(Some((
                format!("the partition ends at offset {high}, but this task already read offset {offset}"),
                low,
                high,
            )));
        }
        if low > offset {
            return Ok(None);
        }
        let mut found: Option<(i64, i64)> = None;
        read_partitions(
            &consumer,
            &[(topic.to_string(), partition, offset)],
            |msg| {
                found = Some((msg.offset(), msg.timestamp().to_millis().unwrap_or(0)));
                Ok(ControlFlow::Break(()))
            },
        )?;
        Ok(match found {
            Some((o, t)) if o == offset && t != ts => Some((
                format!("the record at offset {offset} has timestamp {t}, not {ts} as when this task read it"),
                low,
                high,
            )),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lineages_are_stable_per_input_and_differ_otherwise() {
        let a = fresh(b"writer-a", "dedupe-0");
        assert_eq!(a, fresh(b"writer-a", "dedupe-0"), "stable across a crash");
        assert_ne!(
            a,
            fresh(b"writer-b", "dedupe-0"),
            "another host or deployment"
        );
        assert_ne!(a, fresh(b"writer-a", "dedupe-1"));
        let next = after("dedupe-0", a, (41, 1_000));
        assert_eq!(next, after("dedupe-0", a, (41, 1_000)));
        assert_ne!(next, a);
        assert_ne!(next, after("dedupe-0", a, (41, 1_001)));
        assert_ne!(next, after("dedupe-0", next, (41, 1_000)));
        for l in [a, next, fresh(b"", "")] {
            assert!(l > 0 && l < 1 << 52, "{l}");
        }
    }
}
