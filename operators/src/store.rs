//! The `StateStore` trait the operators read and write through, and `MemStore`, its in-memory
//! implementation for tests. `RocksStore` in `shelfsync-pipeline` implements the same trait and
//! runs the same conformance suite ([`conformance`]).

use std::any::Any;
use std::collections::{BTreeMap, HashMap};

/// An ordered key-value store for one task's state.
///
/// Keys are compared bytewise. Implementations buffer writes however they like (the pipeline's
/// `RocksStore` keeps them in a write-back cache until the epoch is acknowledged); what an
/// operator reads always reflects its own earlier writes.
pub trait StateStore {
    /// The value stored under `key`, if any.
    fn get(&self, key: &[u8]) -> Option<Vec<u8>>;
    /// Stores `value` under `key`, replacing any earlier value. Atomic for this one key.
    fn put(&mut self, key: &[u8], value: &[u8]);
    /// Removes `key`. Atomic for this one key; deleting a missing key is a no-op.
    fn delete(&mut self, key: &[u8]);
    /// Every `(key, value)` with `from <= key < to`, in key order, at most `limit` of them.
    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)>;
    /// The store's cache of decoded values, if it keeps one (see [`Decoded`]). An operator
    /// that finds its value there skips the read and the decoding.
    fn decoded(&mut self) -> Option<&mut Decoded> {
        None
    }
}

/// Decoded values an operator keeps beside their stored bytes, so that a key written by one
/// step is not read and decoded again by the next step that touches it.
///
/// Write-through: the operator still `put`s the encoded bytes (what the changelog and the
/// `WriteBatch` carry) and then [`keep`](Self::keep)s the decoded value; a store drops a
/// key's entry whenever that key is written or deleted through the byte interface, so an
/// entry never outlives the bytes it was decoded from. The pipeline's `RocksStore` empties it
/// at every commit and discard (a cache of one epoch's keys, bounded by what an epoch
/// touches).
#[derive(Default)]
pub struct Decoded {
    values: HashMap<Vec<u8>, Box<dyn Any + Send>>,
}

impl std::fmt::Debug for Decoded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoded")
            .field("keys", &self.values.len())
            .finish()
    }
}

impl Decoded {
    /// Takes the value decoded under `key`, if one of type `T` is kept.
    pub fn take<T: Any + Send>(&mut self, key: &[u8]) -> Option<T> {
        let boxed = self.values.remove(key)?;
        boxed.downcast::<T>().ok().map(|b| *b)
    }

    /// Keeps `value` as the decoded form of the bytes just written under `key`.
    pub fn keep<T: Any + Send>(&mut self, key: Vec<u8>, value: T) {
        self.values.insert(key, Box::new(value));
    }

    /// Drops the entry of `key` (its bytes changed).
    pub fn forget(&mut self, key: &[u8]) {
        if !self.values.is_empty() {
            self.values.remove(key);
        }
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.values.clear();
    }

    /// Number of keys kept.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// True when nothing is kept.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// A `StateStore` in a `BTreeMap`: the store of unit and property tests.
#[derive(Debug, Default)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
    /// Decoded values (write-through, as in the pipeline's store); never part of equality.
    decoded: Decoded,
}

impl Clone for MemStore {
    fn clone(&self) -> Self {
        Self {
            map: self.map.clone(),
            decoded: Decoded::default(),
        }
    }
}

impl PartialEq for MemStore {
    fn eq(&self, other: &Self) -> bool {
        self.map == other.map
    }
}

impl Eq for MemStore {}

impl MemStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }
    /// Number of keys.
    pub fn len(&self) -> usize {
        self.map.len()
    }
    /// True when the store holds no key.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    /// Every entry in key order (for comparing two stores in tests).
    pub fn entries(&self) -> impl Iterator<Item = (&Vec<u8>, &Vec<u8>)> {
        self.map.iter()
    }
}

impl StateStore for MemStore {
    fn get(&self, key: &[u8]) -> Option<Vec<u8>> {
        self.map.get(key).cloned()
    }
    fn put(&mut self, key: &[u8], value: &[u8]) {
        self.decoded.forget(key);
        self.map.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
        self.decoded.forget(key);
        self.map.remove(key);
    }
    fn range(&self, from: &[u8], to: &[u8], limit: usize) -> Vec<(Vec<u8>, Vec<u8>)> {
        if from >= to {
            return Vec::new();
        }
        self.map
            .range(from.to_vec()..to.to_vec())
            .take(limit)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn decoded(&mut self) -> Option<&mut Decoded> {
        Some(&mut self.decoded)
    }
}

/// The store conformance suite: every `StateStore` must pass it.
///
/// `make` returns a fresh, empty store each time it is called. The pipeline calls this with
/// `RocksStore`; this crate's tests call it with `MemStore`.
pub mod conformance {
    use super::StateStore;

    /// Runs every conformance check against stores built by `make`.
    ///
    /// # Panics
    /// Panics (as a test assertion) when the store breaks the `StateStore` contract.
    pub fn run_all<S: StateStore, F: FnMut() -> S>(mut make: F) {
        get_after_put_and_delete(&mut make());
        overwrite_replaces(&mut make());
        range_is_ordered_half_open_and_limited(&mut make());
        range_sees_own_writes_and_deletes(&mut make());
        binary_keys_and_empty_values(&mut make());
        decoded_values_die_with_their_bytes(&mut make());
    }

    fn get_after_put_and_delete<S: StateStore>(s: &mut S) {
        assert_eq!(s.get(b"a"), None);
        s.put(b"a", b"1");
        assert_eq!(s.get(b"a").as_deref(), Some(&b"1"[..]));
        s.delete(b"a");
        assert_eq!(s.get(b"a"), None);
        s.delete(b"missing");
    }

    fn overwrite_replaces<S: StateStore>(s: &mut S) {
        s.put(b"k", b"old");
        s.put(b"k", b"new");
        assert_eq!(s.get(b"k").as_deref(), Some(&b"new"[..]));
    }

    fn range_is_ordered_half_open_and_limited<S: StateStore>(s: &mut S) {
        for k in [&b"b2"[..], b"a9", b"b1", b"b10", b"c", b"b"] {
            s.put(k, k);
        }
        let keys: Vec<Vec<u8>> = s
            .range(b"b", b"c", 100)
            .into_iter()
            .map(|(k, _)| k)
            .collect();
        assert_eq!(
            keys,
            vec![
                b"b".to_vec(),
                b"b1".to_vec(),
                b"b10".to_vec(),
                b"b2".to_vec()
            ]
        );
        let limited: Vec<Vec<u8>> = s.range(b"b", b"c", 2).into_iter().map(|(k, _)| k).collect();
        assert_eq!(limited, vec![b"b".to_vec(), b"b1".to_vec()]);
        assert!(s.range(b"c", b"b", 10).is_empty());
        assert!(s.range(b"x", b"y", 10).is_empty());
    }

    fn range_sees_own_writes_and_deletes<S: StateStore>(s: &mut S) {
        s.put(b"p1", b"x");
        s.put(b"p2", b"y");
        s.put(b"p3", b"z");
        s.delete(b"p2");
        s.put(b"p1", b"x2");
        let got = s.range(b"p", b"q", 10);
        assert_eq!(
            got,
            vec![
                (b"p1".to_vec(), b"x2".to_vec()),
                (b"p3".to_vec(), b"z".to_vec())
            ]
        );
    }

    fn binary_keys_and_empty_values<S: StateStore>(s: &mut S) {
        let k = [0u8, 255, 0, 1];
        s.put(&k, b"");
        assert_eq!(s.get(&k).as_deref(), Some(&b""[..]));
        let got = s.range(&[0u8], &[0u8, 255, 1], 10);
        assert_eq!(got.len(), 1);
    }

    fn decoded_values_die_with_their_bytes<S: StateStore>(s: &mut S) {
        fn keep<S: StateStore>(s: &mut S, v: u32) {
            if let Some(d) = s.decoded() {
                d.keep(b"d".to_vec(), v);
            }
        }
        s.put(b"d", b"1");
        let Some(decoded) = s.decoded() else {
            return;
        };
        decoded.keep(b"d".to_vec(), 1u32);
        assert_eq!(s.decoded().and_then(|d| d.take::<u32>(b"d")), Some(1));
        // Taken: gone until kept again.
        assert_eq!(s.decoded().and_then(|d| d.take::<u32>(b"d")), None);
        keep(s, 1);
        // Another type under the key is not handed out as this one.
        assert_eq!(s.decoded().and_then(|d| d.take::<u64>(b"d")), None);
        keep(s, 1);
        s.put(b"d", b"2");
        assert_eq!(s.decoded().and_then(|d| d.take::<u32>(b"d")), None);
        keep(s, 2);
        s.delete(b"d");
        assert_eq!(s.decoded().and_then(|d| d.take::<u32>(b"d")), None);
    }

    #[cfg(test)]
    mod tests {
        #[test]
        fn mem_store_passes_conformance() {
            super::run_all(crate::store::MemStore::new);
        }
    }
}
