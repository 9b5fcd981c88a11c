//! Where connections and their secrets are kept: the [`ConnectionStore`]
//! seam, and the embedded store behind it, [`SqliteStore`] — one SQLite file
//! in the data directory. Non-secret settings are stored as they are;
//! secrets are sealed per record (see [`MasterKey`]) and are never returned
//! by listings.

mod crypto;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{OptionalExtension, params};
use serde::Serialize;
use zeroize::Zeroizing;

use crypto::Sealed;
pub use crypto::{MASTER_KEY_ENV, MasterKey};

use crate::credentials::{ConnectionConfig, PersistFuture, TokenPersistence};
use crate::secret::Secret;

/// Errors of the connection store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database failed.
    #[error("connection store: {0}")]
    Database(String),
    /// The master key is missing, malformed or unusable.
    #[error("master key: {0}")]
    MasterKey(String),
    /// A record's secrets do not open: tampered with, copied from another
    /// record, or sealed under another master key.
    #[error(
        "the secrets of connection `{id}` (tenant `{tenant}`) cannot be decrypted: \
         the record was altered or moved, or the master key is not the one it was stored with"
    )]
    Undecryptable {
        /// Tenant of the record.
        tenant: String,
        /// Connection id of the record.
        id: String,
    },
    /// The connection file is invalid.
    #[error("invalid connection: {0}")]
    Invalid(String),
    /// No such connection.
    #[error("no connection `{id}` for tenant `{tenant}`")]
    NotFound {
        /// Tenant asked for.
        tenant: String,
        /// Connection id asked for.
        id: String,
    },
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        Self::Database(e.to_string())
    }
}

/// What a listing shows of a stored connection: metadata, never secrets.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionInfo {
    /// The tenant.
    pub tenant: String,
    /// The connection id within the tenant.
    pub id: String,
    /// The plugin whose declared connection it binds.
    pub plugin: String,
    /// The declared connection name.
    pub connection: String,
    /// The auth scheme chosen in the file, if any.
    pub auth: Option<String>,
    /// The base URL override, if any.
    pub base_url: Option<String>,
    /// The names of the secrets it holds.
    pub secrets: Vec<String>,
    /// Whether a token request was refused and new secrets are needed.
    pub needs_reauthorization: bool,
    /// Last change, seconds since the Unix epoch.
    pub updated_at: u64,
}

/// What a [`ConnectionStore`] method returns.
pub type StoreFuture<'a, T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'a>>;

/// Where a host's connections and their secrets are kept, per tenant and
/// connection id: the seam for stores other than the embedded SQLite file
/// ([`SqliteStore`]). Secrets go in and come out only as a connection's
/// `[secrets]`; listings never carry them. The host calls it from steps,
/// concurrently, to write back what it learns about a stored connection (a
/// rotated refresh token, a refusal that needs re-authorization).
pub trait ConnectionStore: std::fmt::Debug + Send + Sync + 'static {
    /// Stores (or replaces) a connection of `plugin` from the text of a
    /// connection file; its `[secrets]` are kept sealed.
    fn put<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        plugin: &'a str,
        file_text: &'a str,
    ) -> StoreFuture<'a, ()>;

    /// The plugin and the connection (secrets opened) of a record, marked
    /// as loaded from this store.
    fn get<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, (String, ConnectionConfig)>;

    /// Metadata of the stored connections (of one tenant, or all), never secrets.
    fn list<'a>(&'a self, tenant: Option<&'a str>) -> StoreFuture<'a, Vec<ConnectionInfo>>;

    /// Deletes a connection; false if there was none.
    fn delete<'a>(&'a self, tenant: &'a str, id: &'a str) -> StoreFuture<'a, bool>;

    /// Replaces one secret of a record (a rotated refresh token) at once.
    fn replace_secret<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        key: &'a str,
        value: &'a Secret,
    ) -> StoreFuture<'a, ()>;

    /// Records whether the connection needs re-authorization.
    fn set_needs_reauthorization<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        needs: bool,
    ) -> StoreFuture<'a, ()>;
}

/// Connections and their sealed secrets in a SQLite file. Cloning shares
/// the database; the [`ConnectionStore`] methods run on Tokio's blocking
/// threads, the inherent ones on the caller's.
#[derive(Clone)]
pub struct SqliteStore {
    db: Arc<Mutex<rusqlite::Connection>>,
    master: Arc<MasterKey>,
}

impl std::fmt::Debug for SqliteStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteStore")
            .field("master", &self.master)
            .finish_non_exhaustive()
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS connections (
    tenant TEXT NOT NULL,
    id TEXT NOT NULL,
    plugin TEXT NOT NULL,
    settings TEXT NOT NULL,
    secret_names TEXT NOT NULL,
    secrets BLOB NOT NULL,
    wrapped_key BLOB NOT NULL,
    master_key_id TEXT NOT NULL,
    needs_reauthorization INTEGER NOT NULL DEFAULT 0,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (tenant, id)
) STRICT;
";

impl SqliteStore {
    /// Opens (creating if needed) `connections.sqlite` in `data_dir`, which is
    /// created owner-only.
    pub fn open(data_dir: &Path, master: MasterKey) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        let db = rusqlite::Connection::open(data_dir.join("connections.sqlite"))?;
        db.execute_batch(SCHEMA)?;
        Ok(Self {
            db: Arc::new(Mutex::new(db)),
            master: Arc::new(master),
        })
    }

    /// Opens the store in `data_dir` with the master key from
    /// `$COURIER_MASTER_KEY`, else from `data_dir/master.key` (created
    /// owner-only with a new key on first use).
    pub fn open_in(data_dir: &Path) -> Result<Self, StoreError> {
        create_private_dir(data_dir)?;
        Self::open(
            data_dir,
            MasterKey::from_env_or_file(&Self::key_file(data_dir))?,
        )
    }

    /// The master key file of a data directory.
    pub fn key_file(data_dir: &Path) -> PathBuf {
        data_dir.join("master.key")
    }

    /// Stores (or replaces) a connection from the text of a connection file.
    /// Its `[secrets]` are sealed; everything else is kept as settings.
    pub fn put(
        &self,
        tenant: &str,
        id: &str,
        plugin: &str,
        file_text: &str,
    ) -> Result<(), StoreError> {
        let mut table: toml::Table =
            toml::from_str(file_text).map_err(|e| StoreError::Invalid(e.to_string()))?;
        table.insert("id".into(), toml::Value::String(id.into()));
        ConnectionConfig::deserialize_table(table.clone()).map_err(StoreError::Invalid)?;
        let secrets = match table.remove("secrets") {
            Some(toml::Value::Table(t)) => t,
            None => toml::Table::new(),
            Some(_) => return Err(StoreError::Invalid("`secrets` must be a table".into())),
        };
        let names: Vec<&String> = secrets.keys().collect();
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&secrets).expect("a TOML table serializes to JSON"));
        let sealed = crypto::seal(&self.master, tenant, id, &plaintext)?;
        let settings = serde_json::to_string(&table).expect("a TOML table serializes to JSON");
        self.db.lock().expect("store poisoned").execute(
            "INSERT OR REPLACE INTO connections
             (tenant, id, plugin, settings, secret_names, secrets, wrapped_key, master_key_id, needs_reauthorization, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, 0, ?9)",
            params![
                tenant,
                id,
                plugin,
                settings,
                serde_json::to_string(&names).expect("names serialize"),
                sealed.secrets,
                sealed.wrapped_key,
                self.master.id(),
                now()
            ],
        )?;
        Ok(())
    }

    /// The plugin and the connection configuration (secrets opened) of a record.
    pub fn get(&self, tenant: &str, id: &str) -> Result<(String, ConnectionConfig), StoreError> {
        let row = self
            .db
            .lock()
            .expect("store poisoned")
            .query_row(
                "SELECT plugin, settings, secrets, wrapped_key, master_key_id FROM connections WHERE tenant = ?1 AND id = ?2",
                params![tenant, id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        Sealed { secrets: r.get(2)?, wrapped_key: r.get(3)? },
                        r.get::<_, String>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((plugin, settings, sealed, key_id)) = row else {
            return Err(StoreError::NotFound {
                tenant: tenant.into(),
                id: id.into(),
            });
        };
        if key_id != self.master.id() {
            return Err(StoreError::MasterKey(format!(
                "connection `{id}` was stored under master key {key_id}, the current key is {}",
                self.master.id()
            )));
        }
        let plaintext = crypto::open(&self.master, tenant, id, &sealed)?;
        let secrets: serde_json::Value =
            serde_json::from_slice(&plaintext).map_err(|_| StoreError::Undecryptable {
                tenant: tenant.into(),
                id: id.into(),
            })?;
        let mut value: serde_json::Value = serde_json::from_str(&settings)
            .map_err(|e| StoreError::Database(format!("settings of `{id}`: {e}")))?;
        value
            .as_object_mut()
            .expect("settings are an object")
            .insert("secrets".into(), secrets);
        let config: ConnectionConfig =
            serde_json::from_value(value).map_err(|e| StoreError::Invalid(e.to_string()))?;
        Ok((plugin, config.loaded_from_store()))
    }

    /// Metadata of the stored connections (of one tenant, or all).
    pub fn list(&self, tenant: Option<&str>) -> Result<Vec<ConnectionInfo>, StoreError> {
        let db = self.db.lock().expect("store poisoned");
        let mut stmt = db.prepare(
            "SELECT tenant, id, plugin, settings, secret_names, needs_reauthorization, updated_at FROM connections
             WHERE ?1 IS NULL OR tenant = ?1 ORDER BY tenant, id",
        )?;
        let rows = stmt.query_map(params![tenant], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, bool>(5)?,
                r.get::<_, i64>(6)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (tenant, id, plugin, settings, names, needs_reauthorization, updated_at) = row?;
            let settings: serde_json::Value = serde_json::from_str(&settings).unwrap_or_default();
            let text = |k: &str| settings.get(k).and_then(|v| v.as_str()).map(str::to_owned);
            out.push(ConnectionInfo {
                connection: text("connection").unwrap_or_default(),
                auth: text("auth"),
                base_url: text("base_url"),
                secrets: serde_json::from_str(&names).unwrap_or_default(),
                tenant,
                id,
                plugin,
                needs_reauthorization,
                updated_at: updated_at.try_into().unwrap_or(0),
            });
        }
        Ok(out)
    }

    /// Deletes a connection; false if there was none.
    pub fn delete(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        let n = self.db.lock().expect("store poisoned").execute(
            "DELETE FROM connections WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
        )?;
        Ok(n > 0)
    }

    /// Replaces one secret of a record (a rotated refresh token) in one
    /// transaction, sealed under a fresh data key.
    pub fn replace_secret(
        &self,
        tenant: &str,
        id: &str,
        key: &str,
        value: &Secret,
    ) -> Result<(), StoreError> {
        let mut db = self.db.lock().expect("store poisoned");
        let tx = db.transaction()?;
        let sealed = tx.query_row(
            "SELECT secrets, wrapped_key FROM connections WHERE tenant = ?1 AND id = ?2",
            params![tenant, id],
            |r| {
                Ok(Sealed {
                    secrets: r.get(0)?,
                    wrapped_key: r.get(1)?,
                })
            },
        )?;
        let plaintext = crypto::open(&self.master, tenant, id, &sealed)?;
        let mut secrets: serde_json::Map<String, serde_json::Value> =
            serde_json::from_slice(&plaintext).map_err(|_| StoreError::Undecryptable {
                tenant: tenant.into(),
                id: id.into(),
            })?;
        secrets.insert(key.into(), serde_json::Value::String(value.expose().into()));
        let plaintext =
            Zeroizing::new(serde_json::to_vec(&secrets).expect("a JSON object serializes"));
        let resealed = crypto::seal(&self.master, tenant, id, &plaintext)?;
        tx.execute(
            "UPDATE connections SET secrets = ?3, wrapped_key = ?4, master_key_id = ?5, updated_at = ?6 WHERE tenant = ?1 AND id = ?2",
            params![tenant, id, resealed.secrets, resealed.wrapped_key, self.master.id(), now()],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Records whether the connection needs re-authorization.
    pub fn set_needs_reauthorization(
        &self,
        tenant: &str,
        id: &str,
        needs: bool,
    ) -> Result<(), StoreError> {
        self.db.lock().expect("store poisoned").execute(
            "UPDATE connections SET needs_reauthorization = ?3 WHERE tenant = ?1 AND id = ?2",
            params![tenant, id, needs],
        )?;
        Ok(())
    }

    /// Re-wraps every record's data key under `new` in one transaction (all
    /// or nothing) and uses `new` from then on. Returns the number of records.
    pub fn rotate_master_key(&mut self, new: MasterKey) -> Result<usize, StoreError> {
        let mut db = self.db.lock().expect("store poisoned");
        let tx = db.transaction()?;
        let rows: Vec<(String, String, Vec<u8>)> = {
            let mut stmt = tx.prepare("SELECT tenant, id, wrapped_key FROM connections")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?
        };
        for (tenant, id, wrapped) in &rows {
            let rewrapped = crypto::rewrap(&self.master, &new, tenant, id, wrapped)?;
            tx.execute(
                "UPDATE connections SET wrapped_key = ?3, master_key_id = ?4 WHERE tenant = ?1 AND id = ?2",
                params![tenant, id, rewrapped, new.id()],
            )?;
        }
        tx.commit()?;
        drop(db);
        self.master = Arc::new(new);
        Ok(rows.len())
    }
}

impl SqliteStore {
    /// Runs `op` on a clone of the store on Tokio's blocking threads.
    fn blocking<T: Send + 'static>(
        &self,
        op: impl FnOnce(&Self) -> Result<T, StoreError> + Send + 'static,
    ) -> StoreFuture<'static, T> {
        let store = self.clone();
        Box::pin(async move {
            tokio::task::spawn_blocking(move || op(&store))
                .await
                .map_err(|e| StoreError::Database(format!("store task: {e}")))?
        })
    }
}

impl ConnectionStore for SqliteStore {
    fn put<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        plugin: &'a str,
        file_text: &'a str,
    ) -> StoreFuture<'a, ()> {
        let (tenant, id, plugin) = (tenant.to_owned(), id.to_owned(), plugin.to_owned());
        let text = Zeroizing::new(file_text.to_owned());
        self.blocking(move |s| s.put(&tenant, &id, &plugin, &text))
    }

    fn get<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
    ) -> StoreFuture<'a, (String, ConnectionConfig)> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.blocking(move |s| s.get(&tenant, &id))
    }

    fn list<'a>(&'a self, tenant: Option<&'a str>) -> StoreFuture<'a, Vec<ConnectionInfo>> {
        let tenant = tenant.map(str::to_owned);
        self.blocking(move |s| s.list(tenant.as_deref()))
    }

    fn delete<'a>(&'a self, tenant: &'a str, id: &'a str) -> StoreFuture<'a, bool> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.blocking(move |s| s.delete(&tenant, &id))
    }

    fn replace_secret<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        key: &'a str,
        value: &'a Secret,
    ) -> StoreFuture<'a, ()> {
        let (tenant, id, key, value) = (
            tenant.to_owned(),
            id.to_owned(),
            key.to_owned(),
            value.clone(),
        );
        self.blocking(move |s| s.replace_secret(&tenant, &id, &key, &value))
    }

    fn set_needs_reauthorization<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        needs: bool,
    ) -> StoreFuture<'a, ()> {
        let (tenant, id) = (tenant.to_owned(), id.to_owned());
        self.blocking(move |s| s.set_needs_reauthorization(&tenant, &id, needs))
    }
}

/// The token manager's write-back to a store: rotated refresh tokens and
/// refusals of stored connections go to their records.
#[derive(Debug)]
pub(crate) struct WriteBack(pub(crate) Arc<dyn ConnectionStore>);

impl TokenPersistence for WriteBack {
    fn persist_refresh_token<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        rotated: &'a Secret,
    ) -> PersistFuture<'a> {
        Box::pin(async move {
            Ok(self
                .0
                .replace_secret(tenant, id, "refresh_token", rotated)
                .await?)
        })
    }

    fn mark_needs_reauthorization<'a>(&'a self, tenant: &'a str, id: &'a str) -> PersistFuture<'a> {
        Box::pin(async move { Ok(self.0.set_needs_reauthorization(tenant, id, true).await?) })
    }
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Creates a directory readable by the owner only (if it does not exist).
fn create_private_dir(dir: &Path) -> Result<(), StoreError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder
        .create(dir)
        .map_err(|e| StoreError::Database(format!("cannot create {}: {e}", dir.display())))
}
