//! Values read by a key that names a version. The value of a version never changes, so an entry is never stale;
//! the current versions come with the caller's token, in the same round trip ([`crate::Caller::policy_version`],
//! [`crate::Caller::placement_epoch`]).

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::Mutex;

pub struct VersionedCache<K, V> {
    entries: Mutex<HashMap<K, V>>,
}

impl<K, V> Default for VersionedCache<K, V> {
    fn default() -> Self {
        Self { entries: Mutex::new(HashMap::new()) }
    }
}

impl<K: Eq + Hash, V: Clone> VersionedCache<K, V> {
    /// Entries kept before the cache starts again (a bound, not a working-set estimate).
    const MAX: usize = 4096;

    /// The value of `key`: from the cache, or from `read` (awaited only on a miss).
    pub async fn get_or_read<E>(&self, key: K, read: impl Future<Output = Result<V, E>>) -> Result<V, E> {
        if let Some(value) = self.entries.lock().expect("versioned cache").get(&key) {
            return Ok(value.clone());
        }
        let value = read.await?;
        let mut entries = self.entries.lock().expect("versioned cache");
        if entries.len() >= Self::MAX {
            entries.clear();
        }
        entries.insert(key, value.clone());
        Ok(value)
    }
}
