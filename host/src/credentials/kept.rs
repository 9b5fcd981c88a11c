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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::SystemTime;

use super::connection::Credential;
use super::{BoundConnection, Caches, ConnectionConfig, ConnectionError, TokenManager};
use crate::manifest::ConnectionSpec;
use crate::shared::BoundedCache;

/// Bindings kept per plugin; past it, the least recently used is evicted.
pub(crate) const KEPT: usize = 1024;

/// One plugin's kept bindings, by tenant and connection file (hashed with
/// foldhash, see [`crate::shared`]). They hold the files' secrets, zeroized
/// when an evicted binding's last step ends, as the token caches and the
/// host's [`Caches`] hold theirs.
pub(crate) struct KeptBindings {
    kept: BoundedCache<(String, ConnectionConfig), Arc<Kept>>,
}

impl Default for KeptBindings {
    fn default() -> Self {
        Self::with_capacity(KEPT)
    }
}

/// A kept binding and the stamps of the TLS files it was bound from.
struct Kept {
    bound: Arc<BoundConnection>,
    files: Vec<FileStamp>,
}

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
    /// Keeping at most `capacity` bindings.
    pub(super) fn with_capacity(capacity: usize) -> Self {
        Self {
            kept: BoundedCache::new(capacity),
        }
    }

    /// The binding of `config` to `spec` for `tenant`: a kept one if an
    /// earlier step bound the same file (and its TLS files are unchanged),
    /// else a new one (kept if it may be).
    pub(crate) fn bind(
        &self,
        spec: &ConnectionSpec,
        config: ConnectionConfig,
        tenant: &str,
        tokens: &TokenManager,
        caches: &Caches,
    ) -> Result<Arc<BoundConnection>, ConnectionError> {
        let key = (tenant.to_owned(), config);
        let stamped = key.1.tls.files().next().is_some();
        let seen = if stamped {
            stamps(&key.1)
        } else {
            Some(vec![])
        };
        if let Some(bound) = self.kept.get_with(&key, |kept| {
            (seen.as_ref() == Some(&kept.files)).then(|| kept.bound.clone())
        }) {
            return Ok(bound);
        }
        let bound = Arc::new(BoundConnection::bind(
            spec,
            key.1.clone(),
            tenant,
            tokens,
            caches,
        )?);
        let fixed = matches!(bound.credential, Credential::None | Credential::Static(_))
            && !key.1.tls.system_roots;
        if let Some(files) = seen.filter(|_| fixed) {
            let kept = Kept {
                bound: bound.clone(),
                files,
            };
            self.kept.insert(key, Arc::new(kept));
        }
        Ok(bound)
    }

    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.kept.len()
    }
}
