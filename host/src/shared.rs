//! Values built once per content and shared by the steps that need them: what
//! a step derives from its connection file (TLS material, the scrubber's
//! automaton, JWT signing keys) is built by the first step binding that
//! content and found again by every later one, so a step pays for a look-up,
//! not for parsing keys or compiling automata.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// Built values by the fingerprint (SHA-256) of everything they were built
/// from, at most `capacity` of them: past it, one entry is dropped for each
/// new one (entries are ordered by fingerprint, so the one dropped is
/// arbitrary). Values in use live on in the steps holding them.
pub(crate) struct SharedBuilds<V> {
    built: Mutex<BTreeMap<[u8; 32], Arc<V>>>,
    capacity: usize,
}

impl<V> SharedBuilds<V> {
    /// An empty map keeping at most `capacity` values.
    pub(crate) const fn new(capacity: usize) -> Self {
        Self {
            built: Mutex::new(BTreeMap::new()),
            capacity,
        }
    }

    /// The value built from the content `fingerprint` identifies, building it
    /// with `build` if there is none. The build runs without the lock, so
    /// look-ups of other content never wait for it; if two steps build the
    /// same content at once, both get the value stored first.
    pub(crate) fn get_or_build<E>(
        &self,
        fingerprint: [u8; 32],
        build: impl FnOnce() -> Result<V, E>,
    ) -> Result<Arc<V>, E> {
        if let Some(value) = self.lock().get(&fingerprint) {
            return Ok(value.clone());
        }
        let value = Arc::new(build()?);
        let mut built = self.lock();
        if built.len() >= self.capacity && !built.contains_key(&fingerprint) {
            built.pop_first();
        }
        Ok(built.entry(fingerprint).or_insert(value).clone())
    }

    fn lock(&self) -> MutexGuard<'_, BTreeMap<[u8; 32], Arc<V>>> {
        self.built
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_once_per_fingerprint_within_capacity() {
        let shared = SharedBuilds::<u32>::new(2);
        let mut builds = 0;
        let mut get = |key: u8, value: u32| {
            shared
                .get_or_build([key; 32], || {
                    Ok::<_, ()>({
                        builds += 1;
                        value
                    })
                })
                .unwrap()
        };
        let first = get(1, 10);
        assert!(Arc::ptr_eq(&first, &get(1, 11)));
        get(2, 20);
        get(3, 30);
        assert_eq!(*get(3, 31), 30);
        assert_eq!(builds, 3);
        assert_eq!(shared.lock().len(), 2);
        assert_eq!(
            shared.get_or_build([4; 32], || Err("refused")),
            Err("refused")
        );
        assert_eq!(shared.lock().len(), 2, "a failed build stores nothing");
    }
}
