//! The host's bounded caches: values built once per content and shared by the
//! steps that need them. What a step derives from its connection file (TLS
//! material, the scrubber's automaton, JWT signing keys, the binding itself)
//! is built by the first step binding that content and found again by every
//! later one, so a step pays for a look-up, not for parsing keys or compiling
//! automata.
//!
//! Every cache is a [`BoundedCache`]: at most its capacity of entries, the
//! least recently used one evicted for each new one past it. Each belongs to
//! one [`crate::Host`] (made by `HostBuilder::build`, or per loaded plugin
//! for kept bindings); nothing is kept in a process-wide static, so two hosts
//! in one process never share a built value. The capacities are constants,
//! each documented where its cache is made (`credentials::Caches`,
//! `credentials::KeptBindings`).
//!
//! # What eviction wipes, and what it only frees
//!
//! Values are shared as `Arc`s: eviction drops the cache's reference at once
//! (outside the cache's lock), and the value itself is dropped when the last
//! step holding it ends (a kept binding holds its TLS configuration, signing
//! key and automaton too, so those live as long as the binding is used).
//! What dropping does to the secrets inside:
//!
//! - **Zeroized**: every [`crate::secret::Secret`] (`Zeroizing`): the
//!   secrets of a kept binding and of the connection file that keys it, the
//!   passwords in its `[tls]` table. The host's own intermediate buffers are
//!   `Zeroizing` too and are wiped once a value is built (or found), not at
//!   eviction: the bytes of TLS files, the PKCS#8 DER of a JWT key, the
//!   scrubber's pattern buffers (each secret and its base64 cores). The DER
//!   of a TLS client key is handed to rustls, whose ring key provider wipes
//!   it after parsing (rustls 0.23).
//! - **Only freed, not wiped**: what lives inside other crates' types, which
//!   offer no way to wipe it from outside. The scrubber's `Matcher` holds
//!   aho-corasick automata whose states encode the secrets' bytes; a JWT
//!   signing key is a ring `hmac::Key`, `RsaKeyPair` or `EcdsaKeyPair`, and a
//!   TLS client key a ring key pair inside rustls's `ClientConfig` (ring
//!   0.17 does not zeroize key material on drop); a PKCS#12 bundle's key is
//!   copied by `p12-keystore`, which does not zeroize its copy. Their memory
//!   returns to the allocator, unwiped, when the value is dropped.
//!
//! Why the `lru` crate: a strict least-recently-used policy (what is asked
//! of these caches) in a small crate with no dependency once its `hashbrown`
//! feature is off; `quick_cache` and `moka` evict by frequency-aware
//! policies (S3-FIFO, TinyLFU) and bring more than a mutex-wrapped map needs.

use std::hash::Hash;
use std::num::NonZeroUsize;
use std::sync::{Mutex, MutexGuard};

use lru::LruCache;

/// Hashed with foldhash (seeded per cache): the standard SipHash of a whole
/// connection file cost a step about 3,000 instructions. A cache holds at
/// most its capacity of entries, which bounds what crafted collisions could
/// cost.
type Lru<K, V> = LruCache<K, V, foldhash::quality::RandomState>;

/// At most `capacity` values by key; past it, the least recently used entry
/// is evicted for each new one. Look-ups take a mutex for a hash look-up and
/// a move to the front of the recency list.
pub(crate) struct BoundedCache<K, V> {
    entries: Mutex<Lru<K, V>>,
}

impl<K: Hash + Eq, V> BoundedCache<K, V> {
    /// An empty cache keeping at most `capacity` values (at least one).
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::with_hasher(capacity, Default::default())),
        }
    }

    /// What `read` makes of the value under `key`, if there is one; a value
    /// `read` accepts (`Some`) counts as used.
    pub(crate) fn get_with<R>(&self, key: &K, read: impl FnOnce(&V) -> Option<R>) -> Option<R> {
        let mut entries = self.lock();
        let found = read(entries.peek(key)?)?;
        entries.promote(key);
        Some(found)
    }

    /// Stores `value` under `key`, replacing the value there or, when the
    /// cache is full, evicting the least recently used entry. What is
    /// replaced or evicted is dropped after the lock is released.
    pub(crate) fn insert(&self, key: K, value: V) {
        let dropped = self.lock().push(key, value);
        drop(dropped);
    }

    /// How many values the cache holds.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> MutexGuard<'_, Lru<K, V>> {
        self.entries
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl<K: Hash + Eq, V: Clone> BoundedCache<K, V> {
    /// The value under `key`, building it with `build` if there is none. The
    /// build runs without the lock, so look-ups of other keys never wait for
    /// it; if two steps build the same key at once, both get the value stored
    /// first (the other is dropped). A failed build stores nothing.
    pub(crate) fn get_or_build<E>(
        &self,
        key: K,
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<V, E> {
        if let Some(value) = self.lock().get(&key) {
            return Ok(value.clone());
        }
        let value = build()?;
        let mut entries = self.lock();
        if let Some(first) = entries.get(&key) {
            return Ok(first.clone());
        }
        let evicted = entries.push(key, value.clone());
        drop(entries);
        drop(evicted);
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn builds_once_per_key_and_evicts_the_least_recently_used() {
        let cache = BoundedCache::<u8, Arc<u32>>::new(2);
        let mut builds = 0;
        let mut get = |key: u8, value: u32| {
            cache
                .get_or_build(key, || {
                    Ok::<_, ()>({
                        builds += 1;
                        Arc::new(value)
                    })
                })
                .unwrap()
        };
        let first = get(1, 10);
        assert!(Arc::ptr_eq(&first, &get(1, 11)));
        get(2, 20);
        assert_eq!(*get(1, 12), 10, "1 is used again, so 2 is now the oldest");
        get(3, 30);
        assert_eq!(*get(1, 13), 10, "1 was kept");
        assert_eq!(*get(2, 21), 21, "2 was evicted and is built afresh");
        assert_eq!(builds, 4);
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.get_or_build(4, || Err("refused")), Err("refused"));
        assert_eq!(cache.len(), 2, "a failed build stores nothing");
    }

    #[test]
    fn eviction_drops_the_value_at_once() {
        let cache = BoundedCache::<u8, Arc<u32>>::new(1);
        let first = cache.get_or_build(1, || Ok::<_, ()>(Arc::new(1))).unwrap();
        let weak = Arc::downgrade(&first);
        drop(first);
        cache.insert(2, Arc::new(2));
        assert!(weak.upgrade().is_none(), "nothing holds the evicted value");
    }

    #[test]
    fn a_rejected_value_is_not_counted_as_used() {
        let cache = BoundedCache::<u8, u32>::new(2);
        cache.insert(1, 10);
        cache.insert(2, 20);
        assert_eq!(cache.get_with(&1, |_| None::<()>), None);
        cache.insert(3, 30);
        assert_eq!(
            cache.get_with(&1, |v| Some(*v)),
            None,
            "1 stayed the oldest"
        );
        assert_eq!(cache.get_with(&2, |v| Some(*v)), Some(20));
    }
}
