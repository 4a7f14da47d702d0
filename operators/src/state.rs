//! Helpers every operator uses on its store: versioned value encoding, composite keys, stream
//! time and the TTL expiry index.

use serde::{de::DeserializeOwned, Serialize};

use crate::{OperatorError, StateStore};

/// The first byte of every stored value: the value format version, so a later release can
/// migrate old values instead of misreading them.
pub const VALUE_FORMAT_V1: u8 = 1;

/// Key of the task's stream time (the largest record timestamp seen).
pub const STREAM_TIME_KEY: &[u8] = b"m:stream_time";

/// Initial capacity of an encoded value.
const ENCODE_CAPACITY: usize = 256;

/// The second value format: records that gained fields since [`VALUE_FORMAT_V1`] (the
/// inventory stage's SKU records and holds, issue 16). Their V1 values are migrated as read.
pub const VALUE_FORMAT_V2: u8 = 2;

/// Encodes `value` as `[VALUE_FORMAT_V1] ++ postcard(value)`.
pub fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    encode_value_as(VALUE_FORMAT_V1, value)
}

/// Encodes `value` as `[version] ++ postcard(value)`.
pub fn encode_value_as<T: Serialize>(version: u8, value: &T) -> Vec<u8> {
    // Sized for a typical record (a SKU with a few locations and channels): postcard extends
    // the buffer piece by piece, and growing it from one byte cost more than the encoding.
    let mut out = Vec::with_capacity(ENCODE_CAPACITY);
    out.push(version);
    // postcard only fails on writer errors or unsupported types (e.g. unknown-length sequences);
    // a Vec writer and our plain structs cannot hit those.
    match postcard::to_extend(value, out) {
        Ok(v) => v,
        Err(_) => vec![version],
    }
}

/// Decodes a [`VALUE_FORMAT_V2`] value, or a [`VALUE_FORMAT_V1`] one written as `Old` and
/// migrated.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the version byte is unknown or the bytes do not decode.
pub fn decode_migrating<T, Old>(key: &[u8], bytes: &[u8]) -> Result<T, OperatorError>
where
    T: DeserializeOwned,
    Old: DeserializeOwned + Into<T>,
{
    let corrupt = |reason: String| OperatorError::CorruptState {
        key: String::from_utf8_lossy(key).into_owned(),
        reason,
    };
    match bytes.split_first() {
        Some((&VALUE_FORMAT_V2, rest)) => {
            postcard::from_bytes(rest).map_err(|e| corrupt(e.to_string()))
        }
        Some((&VALUE_FORMAT_V1, rest)) => postcard::from_bytes::<Old>(rest)
            .map(Into::into)
            .map_err(|e| corrupt(e.to_string())),
        Some((v, _)) => Err(corrupt(format!("unknown value format version {v}"))),
        None => Err(corrupt("empty value".into())),
    }
}

/// Decodes a value written by [`encode_value`].
///
/// # Errors
/// [`OperatorError::CorruptState`] when the version byte is unknown or the bytes do not decode.
pub fn decode_value<T: DeserializeOwned>(key: &[u8], bytes: &[u8]) -> Result<T, OperatorError> {
    match bytes.split_first() {
        Some((&VALUE_FORMAT_V1, rest)) => {
            postcard::from_bytes(rest).map_err(|e| OperatorError::CorruptState {
                key: String::from_utf8_lossy(key).into_owned(),
                reason: e.to_string(),
            })
        }
        Some((v, _)) => Err(OperatorError::CorruptState {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: format!("unknown value format version {v}"),
        }),
        None => Err(OperatorError::CorruptState {
            key: String::from_utf8_lossy(key).into_owned(),
            reason: "empty value".into(),
        }),
    }
}

/// Reads and decodes the value under `key`.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored bytes do not decode.
pub fn load<T: DeserializeOwned>(
    store: &dyn StateStore,
    key: &[u8],
) -> Result<Option<T>, OperatorError> {
    store
        .get(key)
        .map(|bytes| decode_value(key, &bytes))
        .transpose()
}

/// Encodes and stores `value` under `key` (atomic for this key).
pub fn save<T: Serialize>(store: &mut dyn StateStore, key: &[u8], value: &T) {
    store.put(key, &encode_value(value));
}

/// Builds `prefix ++ (len(part) as u32 BE ++ part)*`: injective, so parts may hold any byte.
pub fn compose_key(prefix: &[u8], parts: &[&str]) -> Vec<u8> {
    let mut key =
        Vec::with_capacity(prefix.len() + parts.iter().map(|p| p.len() + 4).sum::<usize>());
    key.extend_from_slice(prefix);
    for part in parts {
        key.extend_from_slice(&(part.len() as u32).to_be_bytes());
        key.extend_from_slice(part.as_bytes());
    }
    key
}

/// The task's stream time, or `i64::MIN` before the first record.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored value is not 8 bytes.
pub fn stream_time(store: &dyn StateStore) -> Result<i64, OperatorError> {
    match store.get(STREAM_TIME_KEY) {
        None => Ok(i64::MIN),
        Some(bytes) => <[u8; 8]>::try_from(bytes.as_slice())
            .map(i64::from_be_bytes)
            .map_err(|_| OperatorError::CorruptState {
                key: "m:stream_time".into(),
                reason: "not 8 bytes".into(),
            }),
    }
}

/// Moves stream time forward to `timestamp` if it is later, and returns the (new) stream time.
/// Stream time never goes back: a late record is processed at the current stream time.
///
/// # Errors
/// [`OperatorError::CorruptState`] when the stored stream time is corrupt.
pub fn advance_stream_time(
    store: &mut dyn StateStore,
    timestamp: i64,
) -> Result<i64, OperatorError> {
    let current = stream_time(store)?;
    if timestamp > current {
        store.put(STREAM_TIME_KEY, &timestamp.to_be_bytes());
        Ok(timestamp)
    } else {
        Ok(current)
    }
}

/// An index of TTL deadlines: `x:` ++ order-preserving deadline ++ entity id → empty.
///
/// Expiry runs through the normal write path (deletes), so in the pipeline every expiration
/// reaches the changelog as a tombstone.
pub struct ExpiryIndex;

impl ExpiryIndex {
    const PREFIX: &'static [u8] = b"x:";

    fn key(at: i64, id: &[u8]) -> Vec<u8> {
        let mut key = Vec::with_capacity(2 + 8 + id.len());
        key.extend_from_slice(Self::PREFIX);
        key.extend_from_slice(&((at as u64) ^ (1 << 63)).to_be_bytes());
        key.extend_from_slice(id);
        key
    }

    /// Schedules `id` to expire at stream time `at`.
    pub fn schedule(store: &mut dyn StateStore, at: i64, id: &[u8]) {
        store.put(&Self::key(at, id), &[]);
    }

    /// Removes the deadline `at` of `id`.
    pub fn cancel(store: &mut dyn StateStore, at: i64, id: &[u8]) {
        store.delete(&Self::key(at, id));
    }

    /// Up to `limit` entities due at `now` (deadline ≤ now), earliest first, each with its
    /// deadline. Their index entries are removed.
    pub fn take_due(store: &mut dyn StateStore, now: i64, limit: usize) -> Vec<(i64, Vec<u8>)> {
        if now == i64::MIN {
            return Vec::new();
        }
        let from = Self::PREFIX.to_vec();
        let to = Self::key(now.saturating_add(1), &[]);
        let due = if now == i64::MAX {
            store.range(&from, b"x;", limit)
        } else {
            store.range(&from, &to, limit)
        };
        due.into_iter()
            .filter_map(|(key, _)| {
                store.delete(&key);
                let deadline: [u8; 8] = key.get(2..10)?.try_into().ok()?;
                let at = (u64::from_be_bytes(deadline) ^ (1 << 63)) as i64;
                Some((at, key.get(10..)?.to_vec()))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::MemStore;

    #[test]
    fn values_round_trip_with_version_byte() {
        let bytes = encode_value(&(7i64, "x".to_string()));
        assert_eq!(bytes[0], VALUE_FORMAT_V1);
        let back: (i64, String) = decode_value(b"k", &bytes).unwrap();
        assert_eq!(back, (7, "x".into()));
        assert!(decode_value::<(i64, String)>(b"k", &[9, 1]).is_err());
        assert!(decode_value::<(i64, String)>(b"k", &[]).is_err());
    }

    #[test]
    fn composite_keys_are_injective() {
        assert_ne!(
            compose_key(b"l:", &["ab", "c"]),
            compose_key(b"l:", &["a", "bc"])
        );
    }

    #[test]
    fn stream_time_only_moves_forward() {
        let mut s = MemStore::new();
        assert_eq!(stream_time(&s).unwrap(), i64::MIN);
        assert_eq!(advance_stream_time(&mut s, 10).unwrap(), 10);
        assert_eq!(advance_stream_time(&mut s, 5).unwrap(), 10);
        assert_eq!(advance_stream_time(&mut s, -3).unwrap(), 10);
    }

    #[test]
    fn expiry_index_orders_negative_and_positive_deadlines() {
        let mut s = MemStore::new();
        ExpiryIndex::schedule(&mut s, 20, b"b");
        ExpiryIndex::schedule(&mut s, -5, b"a");
        ExpiryIndex::schedule(&mut s, 30, b"c");
        ExpiryIndex::cancel(&mut s, 30, b"c");
        // due at 20: a (-5) then b (20); c was cancelled.
        let due = ExpiryIndex::take_due(&mut s, 20, 10);
        assert_eq!(due, vec![(-5, b"a".to_vec()), (20, b"b".to_vec())]);
        assert!(s.is_empty());
    }
}
