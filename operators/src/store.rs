//! The `StateStore` trait the operators read and write through, and `MemStore`, its in-memory
//! implementation for tests. `RocksStore` in `shelfsync-pipeline` implements the same trait and
//! runs the same conformance suite ([`conformance`]).

use std::collections::BTreeMap;

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
}

/// A `StateStore` in a `BTreeMap`: the store of unit and property tests.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MemStore {
    map: BTreeMap<Vec<u8>, Vec<u8>>,
}

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
        self.map.insert(key.to_vec(), value.to_vec());
    }
    fn delete(&mut self, key: &[u8]) {
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

    #[cfg(test)]
    mod tests {
        #[test]
        fn mem_store_passes_conformance() {
            super::run_all(crate::store::MemStore::new);
        }
    }
}
