//! Upstream stamps (DESIGN §3, "exactly-once effects across internal hops").
//!
//! Every record a task produces carries a [`Stamp`] in the `shelfsync-stamp` header:
//! `(producing task, input offset, index of this output among that offset's outputs)`, written
//! as `task/offset/index`. A task reading an internal topic keeps, per upstream task, the
//! highest stamp it has applied ([`UpstreamMarks`], saved in the same `WriteBatch` as its state)
//! and drops anything at or below it: with one producer per source task and deterministic
//! outputs this is exact. The same stamp on external outputs lets a restarted task find what it
//! already delivered (output-tail suppression, [`super::tail`]).

//!
//! # Authenticated stamps
//!
//! A stamp is a claim ("this is output `index` of step `offset` of task `t`") that moves the
//! receiver's high-water mark, so a forged one would silence that upstream for ever (every real
//! record at or below the forged position would be dropped as a repeat), and a forged stamp on
//! an external output would make a restarted task believe it had delivered what it had not.
//! Every stamped record therefore also carries [`MAC_HEADER`]: a truncated HMAC-SHA256, keyed
//! by the [`StampKey`], of the topic, the stamp, the key and the value. A reader ignores stamps
//! whose MAC does not verify: a stamped record on an internal topic goes to the DLQ
//! (`forged_stamp`) without touching any mark; a forged progress mark is dropped and counted.
//!
//! The key is `SHELFSYNC_STAMP_KEY` (every instance of an application must share it; the
//! StatefulSet reads it from a Secret). Without it the key is derived from the application id:
//! that still tells our records from foreign or stale ones (another deployment, another key),
//! but not from a deliberate forger who knows the application id, so production sets the key.

use std::collections::BTreeMap;

use hmac::{Hmac, Mac};
use rdkafka::message::Message;
use sha2::{Digest, Sha256};

use crate::kafka;

/// The header that carries a [`Stamp`].
pub(crate) const STAMP_HEADER: &str = kafka::STAMP_HEADER;

/// The header that carries a stamp's (or progress mark's) MAC, hex.
pub(crate) const MAC_HEADER: &str = "shelfsync-stamp-mac";

/// The environment variable holding the stamp key.
pub const STAMP_KEY_ENV: &str = "SHELFSYNC_STAMP_KEY";

/// Bytes of HMAC-SHA256 kept in [`MAC_HEADER`] (128 bits).
const MAC_BYTES: usize = 16;

/// The key that authenticates stamps and progress marks (see the module docs).
#[derive(Clone)]
pub(crate) struct StampKey {
    key: Vec<u8>,
    /// True when the key was derived from the application id (no secret configured).
    pub(crate) derived: bool,
}

impl std::fmt::Debug for StampKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StampKey")
            .field("derived", &self.derived)
            .finish_non_exhaustive()
    }
}

impl StampKey {
    /// `secret` when given and not empty, else a key derived from `application_id`.
    pub(crate) fn new(secret: Option<&str>, application_id: &str) -> Self {
        match secret.filter(|s| !s.is_empty()) {
            Some(secret) => Self {
                key: secret.as_bytes().to_vec(),
                derived: false,
            },
            None => Self {
                key: Sha256::digest(format!("shelfsync-stamp-key/{application_id}")).to_vec(),
                derived: true,
            },
        }
    }

    /// The key of this process: [`STAMP_KEY_ENV`], else derived from `application_id`.
    pub(crate) fn from_env(application_id: &str) -> Self {
        Self::new(std::env::var(STAMP_KEY_ENV).ok().as_deref(), application_id)
    }

    fn mac(&self, topic: &str, claim: &[u8], key: Option<&[u8]>, value: Option<&[u8]>) -> [u8; 32] {
        // HMAC takes keys of any length; `new_from_slice` cannot fail for it.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        // Length-prefixed fields: no two different records give the same input.
        for part in [Some(topic.as_bytes()), Some(claim), key, value] {
            match part {
                Some(p) => {
                    mac.update(&(p.len() as u64 + 1).to_be_bytes());
                    mac.update(p);
                }
                None => mac.update(&0u64.to_be_bytes()),
            }
        }
        mac.finalize().into_bytes().into()
    }

    /// The [`MAC_HEADER`] value of a record of `topic` carrying `claim` (a stamp or progress
    /// mark header) with `key` and `value`.
    pub(crate) fn sign(
        &self,
        topic: &str,
        claim: &[u8],
        key: Option<&[u8]>,
        value: Option<&[u8]>,
    ) -> Vec<u8> {
        let mac = self.mac(topic, claim, key, value);
        let mut hex = String::with_capacity(MAC_BYTES * 2);
        for b in &mac[..MAC_BYTES] {
            use std::fmt::Write;
            let _ = write!(hex, "{b:02x}");
        }
        hex.into_bytes()
    }

    /// Whether `mac` (a [`MAC_HEADER`] value) authenticates the record.
    pub(crate) fn verify(
        &self,
        topic: &str,
        claim: &[u8],
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        mac: Option<&[u8]>,
    ) -> bool {
        let Some(mac) = mac else { return false };
        let expected = self.sign(topic, claim, key, value);
        // Constant time: compare every byte.
        mac.len() == expected.len()
            && mac
                .iter()
                .zip(&expected)
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0
    }

    /// Whether the stamp (or progress mark) `claim` of a consumed record is authentic.
    pub(crate) fn verify_msg<M: Message>(&self, msg: &M, claim: &[u8]) -> bool {
        self.verify(
            msg.topic(),
            claim,
            msg.key(),
            msg.payload(),
            kafka::header(msg, MAC_HEADER),
        )
    }
}

/// Where a produced record came from: the task, the input offset and the output's index among
/// that offset's outputs (the DLQ record of a rejected input has index 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp<'a> {
    /// The producing task, e.g. `dedupe-3`.
    pub task: &'a str,
    /// The input offset the output was produced for.
    pub offset: i64,
    /// The output's index among that offset's outputs.
    pub index: i32,
}

impl<'a> Stamp<'a> {
    /// The header value, `task/offset/index`.
    pub fn to_header(&self) -> Vec<u8> {
        format!("{}/{}/{}", self.task, self.offset, self.index).into_bytes()
    }

    /// Parses a header value written by [`Stamp::to_header`]. Task names may contain `/`: the
    /// offset and index are the last two fields.
    pub fn parse(bytes: &'a [u8]) -> Option<Self> {
        let s = std::str::from_utf8(bytes).ok()?;
        let mut parts = s.rsplitn(3, '/');
        let index = parts.next()?.parse().ok()?;
        let offset = parts.next()?.parse().ok()?;
        let task = parts.next()?;
        Some(Self {
            task,
            offset,
            index,
        })
    }

    /// The stamp of a consumed record, if it has a well-formed one.
    pub fn of<M: Message>(msg: &'a M) -> Option<Self> {
        kafka::header(msg, STAMP_HEADER).and_then(Self::parse)
    }

    /// `(offset, index)`: the order in which one upstream task's outputs were produced.
    pub fn position(&self) -> (i64, i32) {
        (self.offset, self.index)
    }
}

/// Per upstream task, the highest stamp position `(offset, index)` applied: what a receiving
/// task drops as already applied. Saved in the task's checkpoint.
pub(crate) type UpstreamMarks = BTreeMap<String, (i64, i32)>;

/// Whether `stamp` was already applied according to `marks`.
pub(crate) fn already_applied(marks: &UpstreamMarks, stamp: &Stamp<'_>) -> bool {
    marks
        .get(stamp.task)
        .is_some_and(|hwm| stamp.position() <= *hwm)
}

/// Records `stamp` as applied (the caller applies stamps in order per upstream task).
pub(crate) fn mark_applied(marks: &mut UpstreamMarks, stamp: &Stamp<'_>) {
    marks.insert(stamp.task.to_string(), stamp.position());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stamp_verifies_only_with_its_key_topic_and_bytes() {
        let key = StampKey::new(Some("s3cret"), "app");
        let claim = b"dedupe-3/42/1";
        let mac = key.sign("app-orders", claim, Some(b"k"), Some(b"v"));
        assert_eq!(mac.len(), 32);
        let ok = |topic, claim: &[u8], k: Option<&[u8]>, v: Option<&[u8]>, mac: Option<&[u8]>| {
            key.verify(topic, claim, k, v, mac)
        };
        assert!(ok("app-orders", claim, Some(b"k"), Some(b"v"), Some(&mac)));
        assert!(!ok(
            "app-orders",
            b"dedupe-3/99999/0",
            Some(b"k"),
            Some(b"v"),
            Some(&mac)
        ));
        assert!(!ok("app-orders", claim, Some(b"k"), Some(b"w"), Some(&mac)));
        assert!(!ok("app-orders", claim, None, Some(b"kv"), Some(&mac)));
        assert!(!ok("other", claim, Some(b"k"), Some(b"v"), Some(&mac)));
        assert!(!ok("app-orders", claim, Some(b"k"), Some(b"v"), None));
        assert!(!ok(
            "app-orders",
            claim,
            Some(b"k"),
            Some(b"v"),
            Some(b"00")
        ));
        // Another secret, or the derived key of the same application, does not verify it.
        let other = StampKey::new(Some("other"), "app");
        assert!(!other.verify("app-orders", claim, Some(b"k"), Some(b"v"), Some(&mac)));
        let derived = StampKey::new(None, "app");
        assert!(derived.derived && !key.derived);
        assert!(!derived.verify("app-orders", claim, Some(b"k"), Some(b"v"), Some(&mac)));
        assert_eq!(
            StampKey::new(Some(""), "app").sign("t", claim, None, None),
            derived.sign("t", claim, None, None),
            "an empty secret is no secret"
        );
    }

    #[test]
    fn stamps_round_trip_even_with_slashes_in_task_names() {
        for (task, offset, index) in [("dedupe-3", 42, 1), ("a/b", 3, 4), ("inventory-0", 0, 0)] {
            let stamp = Stamp {
                task,
                offset,
                index,
            };
            let header = stamp.to_header();
            assert_eq!(Stamp::parse(&header), Some(stamp));
        }
        assert_eq!(
            Stamp::parse(b"dedupe-3/42/1"),
            Some(Stamp {
                task: "dedupe-3",
                offset: 42,
                index: 1
            })
        );
        assert_eq!(Stamp::parse(b"garbage"), None);
        assert_eq!(Stamp::parse(b"t/x/1"), None);
    }

    #[test]
    fn a_stamp_at_or_below_the_mark_is_already_applied() {
        let mut marks = UpstreamMarks::new();
        let s = |offset, index| Stamp {
            task: "dedupe-1",
            offset,
            index,
        };
        assert!(!already_applied(&marks, &s(5, 0)));
        mark_applied(&mut marks, &s(5, 1));
        assert!(already_applied(&marks, &s(5, 0)));
        assert!(already_applied(&marks, &s(5, 1)));
        assert!(!already_applied(&marks, &s(5, 2)));
        assert!(!already_applied(&marks, &s(6, 0)));
        let other = Stamp {
            task: "dedupe-2",
            offset: 1,
            index: 0,
        };
        assert!(!already_applied(&marks, &other));
    }
}
