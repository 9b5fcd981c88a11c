//! The service's own SQLite file (`service.db` in the data directory):
//! tenants, token hashes, and the step history (which also answers repeated
//! `Idempotency-Key`s). Connections and their secrets live in the
//! connection store, not here.

use std::path::Path;
use std::sync::{Arc, Mutex};

use courier_host::Secret;
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::config::Retention;

const SCHEMA: &str = "
PRAGMA journal_mode = WAL;
CREATE TABLE IF NOT EXISTS tenants (
    id TEXT PRIMARY KEY,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS tokens (
    id TEXT PRIMARY KEY,
    tenant TEXT NOT NULL REFERENCES tenants(id),
    hash TEXT NOT NULL,
    created_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS steps (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    tenant TEXT NOT NULL,
    plugin TEXT NOT NULL,
    call TEXT NOT NULL,
    outcome TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    idempotency_key TEXT,
    request_hash TEXT,
    result TEXT NOT NULL,
    UNIQUE (tenant, idempotency_key)
);
CREATE INDEX IF NOT EXISTS steps_by_tenant ON steps (tenant, seq);
CREATE INDEX IF NOT EXISTS steps_by_age ON steps (created_at);
";

/// The service database; calls run on Tokio's blocking threads.
#[derive(Clone)]
pub(crate) struct Db {
    conn: Arc<Mutex<Connection>>,
}

/// A tenant.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Tenant {
    /// The tenant id.
    pub(crate) id: String,
    /// When it was created, Unix milliseconds.
    pub(crate) created_at: i64,
}

/// One stored step: what the API returned, and what it is filtered by.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct StepRecord {
    /// The step id (also in the `Courier-Step-Id` header and the logs).
    pub(crate) id: String,
    /// The plugin.
    pub(crate) plugin: String,
    /// The call.
    pub(crate) call: String,
    /// The step's outcome.
    pub(crate) outcome: String,
    /// When the step ended, Unix milliseconds.
    pub(crate) created_at: i64,
    /// The step result, exactly as returned (secrets already scrubbed).
    pub(crate) result: serde_json::Value,
    #[serde(skip)]
    pub(crate) seq: i64,
    #[serde(skip)]
    pub(crate) request_hash: Option<String>,
}

/// What a step row is written from.
pub(crate) struct NewStep<'a> {
    pub(crate) id: &'a str,
    pub(crate) tenant: &'a str,
    pub(crate) plugin: &'a str,
    pub(crate) call: &'a str,
    pub(crate) outcome: &'a str,
    pub(crate) idempotency: Option<(&'a str, &'a str)>,
    pub(crate) result: &'a str,
}

/// History filters; every one optional.
#[derive(Debug, Default)]
pub(crate) struct StepFilter {
    pub(crate) plugin: Option<String>,
    pub(crate) call: Option<String>,
    pub(crate) outcome: Option<String>,
    pub(crate) since: Option<i64>,
    pub(crate) until: Option<i64>,
    /// Only steps older than this cursor (a `seq`).
    pub(crate) before: Option<i64>,
    pub(crate) limit: u32,
}

/// Unix milliseconds now.
pub(crate) fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

impl Db {
    /// Opens (creating) `service.db` in `data_dir`.
    pub(crate) fn open(data_dir: &Path) -> anyhow::Result<Self> {
        let conn = Connection::open(data_dir.join("service.db"))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(Self {
            conn: Arc::new(Mutex::new(conn)),
        })
    }

    /// Runs `f` on the connection, on a blocking thread.
    pub(super) async fn call<T: Send + 'static>(
        &self,
        f: impl FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    ) -> anyhow::Result<T> {
        let conn = self.conn.clone();
        let result = tokio::task::spawn_blocking(move || {
            let mut conn = conn.lock().unwrap_or_else(|p| p.into_inner());
            f(&mut conn)
        })
        .await?;
        Ok(result?)
    }

    /// Creates a tenant; `None` if it exists.
    pub(crate) async fn create_tenant(&self, id: String) -> anyhow::Result<Option<Tenant>> {
        self.call(move |c| {
            let created_at = now_ms();
            let n = c.execute(
                "INSERT OR IGNORE INTO tenants (id, created_at) VALUES (?1, ?2)",
                params![id, created_at],
            )?;
            Ok((n == 1).then_some(Tenant { id, created_at }))
        })
        .await
    }

    /// Every tenant, by id.
    pub(crate) async fn tenants(&self) -> anyhow::Result<Vec<Tenant>> {
        self.call(|c| {
            c.prepare("SELECT id, created_at FROM tenants ORDER BY id")?
                .query_map([], |r| {
                    Ok(Tenant {
                        id: r.get(0)?,
                        created_at: r.get(1)?,
                    })
                })?
                .collect()
        })
        .await
    }

    /// Whether a tenant exists.
    pub(crate) async fn tenant_exists(&self, id: String) -> anyhow::Result<bool> {
        self.call(move |c| {
            c.query_row("SELECT 1 FROM tenants WHERE id = ?1", [id], |_| Ok(()))
                .optional()
                .map(|r| r.is_some())
        })
        .await
    }

    /// Stores a tenant token's hash.
    pub(crate) async fn create_token(
        &self,
        tenant: String,
        id: String,
        hash: Secret,
    ) -> anyhow::Result<()> {
        self.call(move |c| {
            c.execute(
                "INSERT INTO tokens (id, tenant, hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![id, tenant, hash.expose(), now_ms()],
            )
            .map(drop)
        })
        .await
    }

    /// Revokes a tenant token; whether there was one.
    pub(crate) async fn delete_token(&self, tenant: String, id: String) -> anyhow::Result<bool> {
        self.call(move |c| {
            c.execute(
                "DELETE FROM tokens WHERE id = ?1 AND tenant = ?2",
                params![id, tenant],
            )
            .map(|n| n == 1)
        })
        .await
    }

    /// The tenant and hash of a token record.
    pub(crate) async fn token(&self, id: String) -> anyhow::Result<Option<(String, Secret)>> {
        self.call(move |c| {
            c.query_row("SELECT tenant, hash FROM tokens WHERE id = ?1", [id], |r| {
                Ok((r.get(0)?, Secret::new(r.get::<_, String>(1)?)))
            })
            .optional()
        })
        .await
    }

    /// Stores a step's result, then applies retention, in one transaction.
    /// `Ok(false)` if the idempotency key was taken meanwhile.
    pub(crate) async fn insert_step(
        &self,
        step: NewStep<'_>,
        retention: Retention,
    ) -> anyhow::Result<bool> {
        let row = (
            step.id.to_owned(),
            step.tenant.to_owned(),
            step.plugin.to_owned(),
            step.call.to_owned(),
            step.outcome.to_owned(),
            step.idempotency.map(|(k, h)| (k.to_owned(), h.to_owned())),
            step.result.to_owned(),
        );
        self.call(move |c| {
            let (id, tenant, plugin, call, outcome, idempotency, result) = row;
            let (key, hash) = idempotency.unzip();
            let now = now_ms();
            let tx = c.transaction()?;
            let n = tx.execute(
                "INSERT OR IGNORE INTO steps
                 (id, tenant, plugin, call, outcome, created_at, idempotency_key, request_hash, result)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                params![id, tenant, plugin, call, outcome, now, key, hash, result],
            )?;
            delete_expired(&tx, retention)?;
            tx.execute(
                "DELETE FROM steps WHERE tenant = ?1 AND seq <= (
                     SELECT seq FROM steps WHERE tenant = ?1 ORDER BY seq DESC LIMIT 1 OFFSET ?2)",
                params![tenant, i64::try_from(retention.max_per_tenant).unwrap_or(i64::MAX)],
            )?;
            tx.commit()?;
            Ok(n == 1)
        })
        .await
    }

    /// Deletes the steps older than the retention age; how many.
    pub(crate) async fn delete_expired_steps(&self, retention: Retention) -> anyhow::Result<usize> {
        self.call(move |c| delete_expired(c, retention)).await
    }

    /// A tenant's step by id.
    pub(crate) async fn step(
        &self,
        tenant: String,
        id: String,
    ) -> anyhow::Result<Option<StepRecord>> {
        self.call(move |c| {
            c.query_row(
                &format!("{SELECT_STEP} WHERE tenant = ?1 AND id = ?2"),
                [tenant, id],
                step_row,
            )
            .optional()
        })
        .await
    }

    /// The step a tenant's idempotency key answered with.
    pub(crate) async fn step_by_key(
        &self,
        tenant: String,
        key: String,
    ) -> anyhow::Result<Option<StepRecord>> {
        self.call(move |c| {
            c.query_row(
                &format!("{SELECT_STEP} WHERE tenant = ?1 AND idempotency_key = ?2"),
                [tenant, key],
                step_row,
            )
            .optional()
        })
        .await
    }

    /// A tenant's steps, newest first, filtered.
    pub(crate) async fn steps(
        &self,
        tenant: String,
        filter: StepFilter,
    ) -> anyhow::Result<Vec<StepRecord>> {
        self.call(move |c| {
            c.prepare(&format!(
                "{SELECT_STEP} WHERE tenant = ?1
                   AND (?2 IS NULL OR plugin = ?2) AND (?3 IS NULL OR call = ?3)
                   AND (?4 IS NULL OR outcome = ?4)
                   AND (?5 IS NULL OR created_at >= ?5) AND (?6 IS NULL OR created_at < ?6)
                   AND (?7 IS NULL OR seq < ?7)
                 ORDER BY seq DESC LIMIT ?8"
            ))?
            .query_map(
                params![
                    tenant,
                    filter.plugin,
                    filter.call,
                    filter.outcome,
                    filter.since,
                    filter.until,
                    filter.before,
                    filter.limit
                ],
                step_row,
            )?
            .collect()
        })
        .await
    }
}

/// Deletes the steps older than the retention age.
fn delete_expired(c: &Connection, retention: Retention) -> rusqlite::Result<usize> {
    let oldest = now_ms().saturating_sub(i64::try_from(retention.max_age_ms).unwrap_or(i64::MAX));
    c.execute("DELETE FROM steps WHERE created_at < ?1", [oldest])
}

const SELECT_STEP: &str =
    "SELECT seq, id, plugin, call, outcome, created_at, request_hash, result FROM steps";

fn step_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StepRecord> {
    let result: String = r.get(7)?;
    Ok(StepRecord {
        seq: r.get(0)?,
        id: r.get(1)?,
        plugin: r.get(2)?,
        call: r.get(3)?,
        outcome: r.get(4)?,
        created_at: r.get(5)?,
        request_hash: r.get(6)?,
        result: serde_json::from_str(&result).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(7, rusqlite::types::Type::Text, Box::new(e))
        })?,
    })
}
