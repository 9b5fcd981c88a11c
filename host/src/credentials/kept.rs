//! Bindings kept by content: a step that binds the same connection file as an
//! earlier step of its tenant, for the same plugin, shares that step's
//! binding instead of parsing the base URL, checking the placements and
//! copying the secrets again.
//!
//! Only bindings that are fixed by the file's content are kept: a static
//! credential (or none) and no TLS material. Token schemes bind on every step
//! (their token cell follows the rules of the token manager), and so do files
//! naming TLS files (which are read again on each binding, so a replaced
//! certificate is picked up).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use super::connection::Credential;
use super::{BoundConnection, ConnectionConfig, ConnectionError, TokenManager};
use crate::manifest::ConnectionSpec;

/// Bindings kept per plugin before the map starts afresh.
const KEPT: usize = 1024;

/// One plugin's kept bindings, by tenant and connection file. They hold the
/// files' secrets (zeroized when dropped) as the token caches and the
/// scrubber's automata do.
#[derive(Default)]
pub(crate) struct KeptBindings {
    kept: Mutex<Kept>,
}

/// Hashed with foldhash (seeded per map): the standard SipHash of a whole
/// connection file cost a step about 3,000 instructions. The map holds at
/// most [`KEPT`] entries, which bounds what crafted collisions could cost.
type Kept = HashMap<(String, ConnectionConfig), Arc<BoundConnection>, foldhash::quality::RandomState>;

impl KeptBindings {
    /// The binding of `config` to `spec` for `tenant`: a kept one if an
    /// earlier step bound the same file, else a new one (kept if it may be).
    pub(crate) fn bind(
        &self,
        spec: &ConnectionSpec,
        config: ConnectionConfig,
        tenant: &str,
        tokens: &TokenManager,
    ) -> Result<Arc<BoundConnection>, ConnectionError> {
        let key = (tenant.to_owned(), config);
        if let Some(bound) = self.lock().get(&key) {
            return Ok(bound.clone());
        }
        let bound = Arc::new(BoundConnection::bind(spec, key.1.clone(), tenant, tokens)?);
        if matches!(bound.credential, Credential::None | Credential::Static(_)) && bound.tls.is_none() {
            let mut kept = self.lock();
            if kept.len() >= KEPT {
                kept.clear();
            }
            kept.insert(key, bound.clone());
        }
        Ok(bound)
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
