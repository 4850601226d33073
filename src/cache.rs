//! A least-recently-used cache bounded by the total weight (bytes) of what it holds, for
//! immutable values under their content id (decoded snapshot objects in the snapshot view,
//! objects and file data a vault mount has fetched and checked), so any entry may go at any
//! time and a miss only costs a read.

use std::collections::{BTreeMap, HashMap};
use std::hash::Hash;
use std::sync::Arc;

/// The cache. Not synchronised: its owner wraps it in a lock.
pub struct LruCache<K, V> {
    /// The most total weight kept.
    budget: u64,
    weight: u64,
    /// Each entry: its value, its weight, and the tick of its last use.
    entries: HashMap<K, (Arc<V>, u64, u64)>,
    /// Entries by last use, oldest first.
    by_use: BTreeMap<u64, K>,
    tick: u64,
    /// The last value inserted that is heavier than the whole budget, with its weight: kept
    /// beside the others until the next such value. A directory of 200,000 entries decodes to
    /// more than the snapshot view's budget; when it was not kept, each lookup in it (one per
    /// entry, as `ls -l` or a `readdirplus` reply makes them) decoded it again, and an `ls -f`
    /// of it took 51 s. Beside the others, not instead of them: resolving the directory's own
    /// inode needs its parent's object, and the two pushing each other out cost the same.
    oversize: Option<(K, Arc<V>, u64)>,
}

impl<K: Hash + Eq + Clone, V> LruCache<K, V> {
    pub fn new(budget: u64) -> Self {
        LruCache {
            budget,
            weight: 0,
            entries: HashMap::new(),
            by_use: BTreeMap::new(),
            tick: 0,
            oversize: None,
        }
    }

    /// The value under `key`, marked as just used.
    pub fn get(&mut self, key: &K) -> Option<Arc<V>> {
        self.tick += 1;
        let tick = self.tick;
        if let Some((oversize, value, _)) = &self.oversize
            && oversize == key
        {
            return Some(value.clone());
        }
        let (value, _, used) = self.entries.get_mut(key)?;
        self.by_use.remove(used);
        *used = tick;
        self.by_use.insert(tick, key.clone());
        Some(value.clone())
    }

    /// Keeps `value` under `key`, then drops the least recently used entries until the total
    /// weight is within the budget. A value heavier than the whole budget is kept on its own,
    /// until the next one (see `oversize`).
    pub fn insert(&mut self, key: K, value: Arc<V>, weight: u64) {
        if weight > self.budget {
            self.oversize = Some((key, value, weight));
            return;
        }
        self.tick += 1;
        if let Some((_, old_weight, used)) = self.entries.remove(&key) {
            self.by_use.remove(&used);
            self.weight -= old_weight;
        }
        self.entries.insert(key.clone(), (value, weight, self.tick));
        self.by_use.insert(self.tick, key);
        self.weight += weight;
        while self.weight > self.budget {
            let Some((_, oldest)) = self.by_use.pop_first() else {
                break;
            };
            if let Some((_, gone, _)) = self.entries.remove(&oldest) {
                self.weight -= gone;
            }
        }
    }

    /// The total weight held.
    pub fn weight(&self) -> u64 {
        self.weight + self.oversize.as_ref().map_or(0, |(_, _, weight)| *weight)
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_weight_stays_within_the_budget_and_the_least_recently_used_goes_first() {
        let mut cache: LruCache<u32, Vec<u8>> = LruCache::new(100);
        for key in 0..4 {
            cache.insert(key, Arc::new(vec![key as u8; 30]), 30);
        }
        // 4 × 30 > 100: the oldest (0) went.
        assert_eq!((cache.len(), cache.weight()), (3, 90));
        assert!(cache.get(&0).is_none());
        // 1 is used now, so 2 is the oldest when room is needed.
        assert_eq!(cache.get(&1).expect("kept")[0], 1);
        cache.insert(4, Arc::new(vec![4; 30]), 30);
        assert!(cache.get(&2).is_none());
        assert!(cache.get(&1).is_some() && cache.get(&3).is_some() && cache.get(&4).is_some());
        assert!(cache.weight() <= 100);

        // Replacing an entry counts its weight once.
        cache.insert(4, Arc::new(vec![4; 10]), 10);
        assert_eq!(cache.weight(), 70);
        // Too heavy for the whole budget: kept on its own, until the next one, and nothing
        // else is pushed out for it.
        cache.insert(9, Arc::new(vec![9; 101]), 101);
        assert!(cache.get(&9).is_some());
        assert_eq!((cache.len(), cache.weight()), (3, 171));
        cache.insert(8, Arc::new(vec![8; 200]), 200);
        assert!(cache.get(&9).is_none() && cache.get(&8).is_some());
        assert_eq!((cache.len(), cache.weight()), (3, 270));
    }

    #[test]
    fn many_inserts_never_exceed_the_budget() {
        let mut cache: LruCache<u64, ()> = LruCache::new(1000);
        for key in 0..10_000u64 {
            cache.insert(key, Arc::new(()), key % 97 + 1);
            assert!(cache.weight() <= 1000);
            assert_eq!(cache.entries.len(), cache.by_use.len());
        }
        assert!(!cache.is_empty());
    }
}
