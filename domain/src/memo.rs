//! Small bounded maps a process keeps in memory (wallet ids, copies of
//! products), shared by every clone of their owner.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

/// At most `capacity` entries; when full, all are forgotten at once, which
/// keeps memory bounded without tracking use.
#[derive(Debug)]
pub struct Remembered<K, V> {
    map: Arc<Mutex<HashMap<K, V>>>,
    capacity: usize,
}

impl<K, V> Clone for Remembered<K, V> {
    fn clone(&self) -> Self {
        Self {
            map: Arc::clone(&self.map),
            capacity: self.capacity,
        }
    }
}

impl<K: Eq + Hash, V: Clone> Remembered<K, V> {
    /// An empty map of at most `capacity` entries.
    pub fn new(capacity: usize) -> Self {
        Self {
            map: Arc::default(),
            capacity,
        }
    }

    /// A copy of what `key` holds.
    pub fn get(&self, key: &K) -> Option<V> {
        self.lock().get(key).cloned()
    }

    /// Remembers `value` for `key`.
    pub fn insert(&self, key: K, value: V) {
        let mut map = self.lock();
        if map.len() >= self.capacity {
            map.clear();
        }
        map.insert(key, value);
    }

    /// Forgets `key`.
    pub fn remove(&self, key: &K) {
        self.lock().remove(key);
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, V>> {
        self.map.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_map_forgets_everything_before_it_takes_more() {
        let map = Remembered::new(2);
        map.insert(1, "a");
        map.insert(2, "b");
        assert_eq!((map.get(&1), map.get(&2)), (Some("a"), Some("b")));
        map.insert(3, "c");
        assert_eq!((map.get(&1), map.get(&3)), (None, Some("c")));
        map.clone().remove(&3);
        assert_eq!(map.get(&3), None);
    }
}
