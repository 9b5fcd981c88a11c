//! Bindings kept by content: a step that binds the same connection file as an
//! earlier step of its tenant, for the same plugin, shares that step's
//! binding instead of parsing the base URL, checking the placements, copying
//! the secrets and reading the TLS files again.
//!
//! Only bindings fixed by the file's content are kept: a static credential
//! (or none), and TLS material from named files only. Token schemes bind on
//! every step (their token cell follows the rules of the token manager), and
//! so do files trusting the platform's roots. A kept binding with TLS files
//! is used only while each file's size, modification time and inode are
//! those seen before it was bound, so a replaced certificate or key is read
//! by the next step.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::SystemTime;

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
type Kept = HashMap<
    (String, ConnectionConfig),
    (Arc<BoundConnection>, Vec<FileStamp>),
    foldhash::quality::RandomState,
>;

/// What identifies a file's content without reading it.
#[derive(Debug, PartialEq)]
struct FileStamp {
    path: PathBuf,
    len: u64,
    modified: Option<SystemTime>,
    inode: u64,
}

/// The stamps of the files a connection's `[tls]` table names; `None` if one
/// cannot be read (binding then reports why).
fn stamps(config: &ConnectionConfig) -> Option<Vec<FileStamp>> {
    use std::os::unix::fs::MetadataExt;
    config
        .tls
        .files()
        .map(|path| {
            let meta = std::fs::metadata(path).ok()?;
            Some(FileStamp {
                path: path.to_owned(),
                len: meta.len(),
                modified: meta.modified().ok(),
                inode: meta.ino(),
            })
        })
        .collect()
}

impl KeptBindings {
    /// The binding of `config` to `spec` for `tenant`: a kept one if an
    /// earlier step bound the same file (and its TLS files are unchanged),
    /// else a new one (kept if it may be).
    pub(crate) fn bind(
        &self,
        spec: &ConnectionSpec,
        config: ConnectionConfig,
        tenant: &str,
        tokens: &TokenManager,
    ) -> Result<Arc<BoundConnection>, ConnectionError> {
        let key = (tenant.to_owned(), config);
        let stamped = key.1.tls.files().next().is_some();
        let seen = if stamped {
            stamps(&key.1)
        } else {
            Some(vec![])
        };
        if let Some((bound, files)) = self.lock().get(&key)
            && seen.as_ref() == Some(files)
        {
            return Ok(bound.clone());
        }
        let bound = Arc::new(BoundConnection::bind(spec, key.1.clone(), tenant, tokens)?);
        let fixed = matches!(bound.credential, Credential::None | Credential::Static(_))
            && !key.1.tls.system_roots;
        if let Some(files) = seen.filter(|_| fixed) {
            let mut kept = self.lock();
            if kept.len() >= KEPT {
                kept.clear();
            }
            kept.insert(key, (bound.clone(), files));
        }
        Ok(bound)
    }

    fn lock(&self) -> MutexGuard<'_, Kept> {
        self.kept
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.lock().len()
    }
}
