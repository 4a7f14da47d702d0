//! [`RecentMap`]: a map that remembers at most `capacity` keys, the most recently written or
//! read ones, in two generations.
//!
//! Writes go to the young generation. When it holds `capacity / 2` keys it becomes the old
//! generation and the previous old one is dropped whole; a key found in the old generation is
//! moved back to the young one when it is written or read for update. So a key touched within
//! the last `capacity / 2` writes is always kept, and at most `capacity` keys are held (the
//! bound is on keys: values are kept as they are). It is an approximate LRU at the cost of a
//! second `HashMap`, with no per-entry links.
//!
//! Used where forgetting an entry is safe and only costs work: the push sink's delivered
//! versions (see `sink.rs`) and Shopify's inventory item ids and compare values (a forgotten
//! one is looked up again).

use std::borrow::Borrow;
use std::collections::HashMap;
use std::hash::Hash;

/// A map of at most `capacity` recently used keys (see the module page).
#[derive(Debug)]
pub struct RecentMap<K, V> {
    young: HashMap<K, V>,
    old: HashMap<K, V>,
    half: usize,
}

impl<K: Hash + Eq, V> RecentMap<K, V> {
    /// A map keeping at most `capacity` keys (at least 2).
    pub fn new(capacity: usize) -> Self {
        Self {
            young: HashMap::new(),
            old: HashMap::new(),
            half: (capacity / 2).max(1),
        }
    }

    /// Keys held (at most the capacity).
    pub fn len(&self) -> usize {
        self.young.len() + self.old.len()
    }

    /// Whether no key is held.
    pub fn is_empty(&self) -> bool {
        self.young.is_empty() && self.old.is_empty()
    }

    /// The value of `key`, if it is still remembered (reading does not refresh it).
    pub fn get<Q>(&self, key: &Q) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.get(key).or_else(|| self.old.get(key))
    }

    /// The value of `key` to change, refreshed as if written.
    pub fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        if !self.young.contains_key(key) {
            let (k, v) = self.old.remove_entry(key)?;
            self.put_young(k, v);
        }
        self.young.get_mut(key)
    }

    /// The value of `key`, inserted with `V::default()` when absent; refreshed as if written.
    pub fn entry_or_default(&mut self, key: K) -> &mut V
    where
        V: Default,
    {
        if !self.young.contains_key(&key) {
            let v = self.old.remove(&key).unwrap_or_default();
            self.put_young_ref(key, v)
        } else {
            self.young.entry(key).or_default()
        }
    }

    /// Sets the value of `key`.
    pub fn insert(&mut self, key: K, value: V) {
        if let Some(v) = self.young.get_mut(&key) {
            *v = value;
            return;
        }
        self.old.remove(&key);
        self.put_young(key, value);
    }

    /// Forgets `key`.
    pub fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.young.remove(key).or_else(|| self.old.remove(key))
    }

    fn put_young(&mut self, key: K, value: V) {
        self.rotate_if_full();
        self.young.insert(key, value);
    }

    fn put_young_ref(&mut self, key: K, value: V) -> &mut V {
        self.rotate_if_full();
        self.young.entry(key).or_insert(value)
    }

    /// A full young generation becomes the old one; the old one is forgotten.
    fn rotate_if_full(&mut self) {
        if self.young.len() >= self.half {
            self.old = std::mem::take(&mut self.young);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_at_most_capacity_keys_and_every_key_of_the_last_half() {
        let mut m = RecentMap::new(10);
        for i in 0..1_000u32 {
            m.insert(i, i * 2);
            assert!(m.len() <= 10);
            // Every key written in the last 5 writes is there.
            for j in i.saturating_sub(4)..=i {
                assert_eq!(m.get(&j), Some(&(j * 2)));
            }
        }
        assert_eq!(m.get(&0), None);
    }

    #[test]
    fn a_key_read_for_update_is_refreshed() {
        let mut m = RecentMap::new(4);
        m.insert("a", 1);
        m.insert("b", 2);
        // "a" and "b" are now the old generation after the next write.
        m.insert("c", 3);
        *m.get_mut("a").unwrap() += 10;
        m.insert("d", 4);
        m.insert("e", 5);
        assert_eq!(m.get("a"), Some(&11));
        assert_eq!(m.get("b"), None);
        *m.entry_or_default("f") += 1;
        assert_eq!(m.get("f"), Some(&1));
        assert_eq!(m.remove("f"), Some(1));
        assert!(m.len() <= 4);
    }
}
