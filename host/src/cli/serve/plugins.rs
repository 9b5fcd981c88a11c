//! Plugins in the service: installing components (content-addressed by
//! SHA-256 in `plugins/` of the data directory, their versions in
//! `service.db`), upgrades held back until an admin approves what they ask
//! for beyond the version in use, and which tenants may use which plugin.
//!
//! One version of each plugin name is *current*: the one the host runs.
//! Installing a version that asks for nothing the current one does not
//! (hosts, connections, auth schemes, credential origins) makes it current
//! at once; otherwise it is *pending* until approved. The host swaps the
//! plugin of a name atomically ([`Host::install_plugin`]): steps already
//! running finish on the version they started with.
//!
//! Components in the operator's plugin directory are the operator's choice:
//! one the service has not seen is installed and made current at start, and
//! its plugin starts enabled for every tenant. An uploaded plugin starts
//! enabled for none: the admin enables it per tenant.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::RwLock;

use anyhow::Context as _;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path as UrlPath, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use courier_host::{Host, Manifest, PreparedPlugin};
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use utoipa::ToSchema;

use super::api::{ApiResult, Body, Checked, Shared, admin_only};
use super::auth::Caller;
use super::db::{Db, now_ms};
use super::problem::{Forbidden, Problem};

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS plugin_versions (
    digest TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version TEXT NOT NULL,
    status TEXT NOT NULL,
    bundled INTEGER NOT NULL,
    manifest TEXT NOT NULL,
    permissions TEXT NOT NULL,
    installed_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS plugin_versions_by_name ON plugin_versions (name);
CREATE TABLE IF NOT EXISTS plugin_access (
    tenant TEXT NOT NULL,
    plugin TEXT NOT NULL,
    enabled INTEGER NOT NULL,
    PRIMARY KEY (tenant, plugin)
);
";

/// The installed plugins and who may use them.
pub(crate) struct Registry {
    /// Where components are stored, as `<sha256>.wasm`.
    dir: PathBuf,
    db: Db,
    /// The largest upload accepted, in bytes.
    pub(crate) max_upload: usize,
    state: RwLock<Installed>,
    /// Held while a version is installed or approved: one change at a time.
    changes: tokio::sync::Mutex<()>,
}

#[derive(Default)]
struct Installed {
    /// The digest of each plugin name's current version.
    current: HashMap<String, String>,
    /// Names installed from the plugin directory: enabled unless a tenant's
    /// choice says otherwise.
    bundled: HashSet<String>,
    /// The admin's choices per (tenant, plugin).
    access: HashMap<(String, String), bool>,
}

impl Installed {
    fn enabled(&self, tenant: &str, plugin: &str) -> bool {
        self.current.contains_key(plugin)
            && self
                .access
                .get(&(tenant.to_owned(), plugin.to_owned()))
                .copied()
                .unwrap_or_else(|| self.bundled.contains(plugin))
    }
}

/// What a version asks for: each set compared between versions.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub(crate) struct Permissions {
    /// The hosts it may call (`allow_host` patterns).
    hosts: BTreeSet<String>,
    /// The connections it declares.
    connections: BTreeSet<String>,
    /// The auth schemes of its connections.
    auth_schemes: BTreeSet<String>,
    /// Origins beyond a connection's base URL its credentials are sent to.
    credential_origins: BTreeSet<String>,
}

impl Permissions {
    fn of(manifest: &Manifest) -> Self {
        let connections = &manifest.connections;
        Self {
            hosts: manifest.allowed_hosts.iter().cloned().collect(),
            connections: connections.iter().map(|c| c.name.clone()).collect(),
            auth_schemes: connections
                .iter()
                .map(|c| c.auth.name().to_owned())
                .collect(),
            credential_origins: connections
                .iter()
                .flat_map(|c| c.auth_origins.iter().cloned())
                .collect(),
        }
    }

    /// What `self` has that `other` has not.
    fn minus(&self, other: &Self) -> Self {
        let minus = |a: &BTreeSet<String>, b: &BTreeSet<String>| a.difference(b).cloned().collect();
        Self {
            hosts: minus(&self.hosts, &other.hosts),
            connections: minus(&self.connections, &other.connections),
            auth_schemes: minus(&self.auth_schemes, &other.auth_schemes),
            credential_origins: minus(&self.credential_origins, &other.credential_origins),
        }
    }

    fn is_empty(&self) -> bool {
        self == &Self::default()
    }
}

/// An installed version of a plugin.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct PluginVersion {
    /// The plugin's name (from its manifest).
    name: String,
    /// Its version (from its manifest).
    version: String,
    /// The SHA-256 of the component, hex: the version's id.
    digest: String,
    /// `current` (approved, what steps run), `pending` (waits for an
    /// admin's approval) or `superseded` (was current, or was pending when
    /// another version was approved).
    status: String,
    /// Whether it came from the operator's plugin directory.
    bundled: bool,
    /// When it was installed, Unix milliseconds.
    installed_at: i64,
}

/// A component's bytes, as `POST /v1/plugins` takes them.
pub(crate) struct Component;

impl utoipa::PartialSchema for Component {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{KnownFormat, ObjectBuilder, SchemaFormat, Type};
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::Binary)))
            .content_media_type("application/wasm")
            .into()
    }
}

impl ToSchema for Component {}

/// A version and its manifest.
#[derive(Serialize, ToSchema)]
pub(crate) struct PluginDescription {
    #[serde(flatten)]
    version: PluginVersion,
    /// The manifest, as `courier inspect` prints it: hosts, connections and
    /// their auth schemes, calls with their JSON Schemas.
    #[schema(value_type = Object)]
    manifest: serde_json::Value,
}

/// What a version asks for compared with the current version of its name.
#[derive(Serialize, ToSchema)]
pub(crate) struct PermissionDiff {
    /// The version compared.
    to: PluginVersion,
    /// The current version, if the name has one.
    from: Option<PluginVersion>,
    /// What it asks for that the current version does not.
    added: Permissions,
    /// What the current version asks for that it does not.
    removed: Permissions,
}

/// The installed versions, every name.
#[derive(Serialize, ToSchema)]
pub(crate) struct PluginVersionList {
    versions: Vec<PluginVersion>,
}

/// What a tenant's plugin list shows of each plugin.
#[derive(Serialize, ToSchema)]
pub(crate) struct PluginSummary {
    name: String,
    version: String,
    /// The SHA-256 of the current version's component.
    digest: String,
    description: String,
    /// The names of its calls.
    calls: Vec<String>,
}

/// The plugins enabled for a tenant (their current versions).
#[derive(Serialize, ToSchema)]
pub(crate) struct PluginList {
    plugins: Vec<PluginSummary>,
}

/// `PUT /v1/tenants/{tenant}/plugins/{plugin}`.
#[derive(Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Access {
    /// Whether the tenant may use the plugin.
    enabled: bool,
}

/// A row of `plugin_versions`.
struct Row {
    view: PluginVersion,
    manifest: String,
    permissions: Permissions,
}

impl Row {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<(PluginVersion, String, String)> {
        Ok((
            PluginVersion {
                digest: r.get(0)?,
                name: r.get(1)?,
                version: r.get(2)?,
                status: r.get(3)?,
                bundled: r.get(4)?,
                installed_at: r.get(5)?,
            },
            r.get(6)?,
            r.get(7)?,
        ))
    }
}

const COLUMNS: &str = "digest, name, version, status, bundled, installed_at, manifest, permissions";

/// The SHA-256 of `bytes`, hex.
fn digest_of(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Registry {
    /// Opens the registry in `data_dir`, installs the current version of
    /// every plugin in the host, then every component of `plugin_dir` the
    /// service has not seen.
    pub(crate) async fn open(
        db: Db,
        data_dir: &Path,
        plugin_dir: &Path,
        max_upload: usize,
        host: &Host,
    ) -> anyhow::Result<Self> {
        let dir = data_dir.join("plugins");
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        db.call(|c| c.execute_batch(SCHEMA)).await?;
        let registry = Self {
            dir,
            db,
            max_upload,
            state: RwLock::default(),
            changes: Default::default(),
        };
        registry.load_current(host).await?;
        registry.install_bundled(host, plugin_dir).await?;
        Ok(registry)
    }

    /// Loads what the database says is current, and the tenants' choices.
    async fn load_current(&self, host: &Host) -> anyhow::Result<()> {
        let (rows, bundled, access) = self
            .db
            .call(|c| {
                let rows = c
                    .prepare(&format!(
                        "SELECT {COLUMNS} FROM plugin_versions WHERE status = 'current'"
                    ))?
                    .query_map([], Row::read)?
                    .collect::<rusqlite::Result<Vec<_>>>()?;
                let bundled = c
                    .prepare("SELECT DISTINCT name FROM plugin_versions WHERE bundled = 1")?
                    .query_map([], |r| r.get(0))?
                    .collect::<rusqlite::Result<HashSet<String>>>()?;
                let access = c
                    .prepare("SELECT tenant, plugin, enabled FROM plugin_access")?
                    .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
                    .collect::<rusqlite::Result<HashMap<_, bool>>>()?;
                Ok((rows, bundled, access))
            })
            .await?;
        // A component that is missing, altered or no longer loads costs its
        // own plugin (logged), not the service.
        let mut current = HashMap::new();
        for (view, ..) in rows {
            let loaded = match self.read_component(&view.digest) {
                Ok(bytes) => host.load_plugin(&bytes).await.map_err(anyhow::Error::from),
                Err(e) => Err(e),
            };
            match loaded {
                Ok(_) => {
                    tracing::info!(
                        plugin = view.name,
                        version = view.version,
                        digest = view.digest,
                        "plugin loaded"
                    );
                    current.insert(view.name, view.digest);
                }
                Err(e) => {
                    tracing::error!(plugin = view.name, digest = view.digest, error = %format!("{e:#}"), "plugin not loaded");
                }
            }
        }
        *self.state.write().unwrap_or_else(|p| p.into_inner()) = Installed {
            current,
            bundled,
            access,
        };
        Ok(())
    }

    /// Installs every `*.wasm` of `dir` (in name order) the service has not
    /// seen, as current.
    async fn install_bundled(&self, host: &Host, dir: &Path) -> anyhow::Result<()> {
        let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
            Ok(entries) => entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
                .collect(),
            Err(e) => {
                tracing::warn!(dir = %dir.display(), error = %e, "no plugin directory: no plugins installed from it");
                vec![]
            }
        };
        files.sort();
        for file in files {
            let bytes =
                std::fs::read(&file).with_context(|| format!("cannot read {}", file.display()))?;
            let digest = digest_of(&bytes);
            if self.row(&digest).await?.is_some() {
                continue;
            }
            let prepared = host
                .prepare_plugin(&bytes)
                .await
                .with_context(|| file.display().to_string())?;
            let view = self.add(host, prepared, &bytes, digest, true).await?;
            tracing::info!(plugin = view.name, file = %file.display(), "plugin installed from the plugin directory");
        }
        Ok(())
    }

    /// The stored component of `digest`, checked against it.
    fn read_component(&self, digest: &str) -> anyhow::Result<Vec<u8>> {
        let path = self.dir.join(format!("{digest}.wasm"));
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
        anyhow::ensure!(
            digest_of(&bytes) == digest,
            "{} does not match its digest",
            path.display()
        );
        Ok(bytes)
    }

    /// Writes a component under its digest: a temporary file, synced, then
    /// renamed, so that the name never holds part of a component.
    fn store_component(&self, digest: &str, bytes: &[u8]) -> anyhow::Result<()> {
        let path = self.dir.join(format!("{digest}.wasm"));
        let temp = self.dir.join(format!(
            ".{digest}.{}.tmp",
            hex::encode(super::auth::random_bytes::<8>()?)
        ));
        let written = (|| {
            let mut file = std::fs::File::create_new(&temp)?;
            file.write_all(bytes)?;
            file.sync_all()?;
            std::fs::rename(&temp, &path)?;
            std::fs::File::open(&self.dir)?.sync_all()
        })();
        if written.is_err() {
            let _ = std::fs::remove_file(&temp);
        }
        written.with_context(|| format!("cannot store {}", path.display()))
    }

    async fn row(&self, digest: &str) -> anyhow::Result<Option<Row>> {
        let digest = digest.to_owned();
        let found = self
            .db
            .call(move |c| {
                c.query_row(
                    &format!("SELECT {COLUMNS} FROM plugin_versions WHERE digest = ?1"),
                    [digest],
                    Row::read,
                )
                .optional()
            })
            .await?;
        found
            .map(|(view, manifest, permissions)| {
                Ok(Row {
                    view,
                    manifest,
                    permissions: serde_json::from_str(&permissions)?,
                })
            })
            .transpose()
    }

    /// A version by digest, or 404.
    async fn known(&self, digest: &str) -> ApiResult<Row> {
        self.row(digest)
            .await?
            .ok_or_else(|| Problem::not_found(format!("no plugin version `{digest}`")))
    }

    /// The current version of `name`.
    async fn current(&self, name: &str) -> anyhow::Result<Option<Row>> {
        let digest = self.current_digest(name);
        match digest {
            Some(d) => self.row(&d).await,
            None => Ok(None),
        }
    }

    fn current_digest(&self, name: &str) -> Option<String> {
        self.read().current.get(name).cloned()
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Installed> {
        self.state.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Installed> {
        self.state.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Stores a prepared version and its row; makes it current (and
    /// installs it in the host) if it comes from the plugin directory, is
    /// the first of its name, or asks for nothing new.
    async fn add(
        &self,
        host: &Host,
        prepared: PreparedPlugin,
        bytes: &[u8],
        digest: String,
        bundled: bool,
    ) -> anyhow::Result<PluginVersion> {
        let manifest = prepared.manifest();
        let permissions = Permissions::of(manifest);
        let current = self.current(&manifest.name).await?;
        let becomes_current = bundled
            || current
                .as_ref()
                .is_none_or(|c| permissions.minus(&c.permissions).is_empty());
        let view = PluginVersion {
            name: manifest.name.clone(),
            version: manifest.version.clone(),
            digest,
            status: if becomes_current {
                "current"
            } else {
                "pending"
            }
            .into(),
            bundled,
            installed_at: now_ms(),
        };
        let manifest_text = serde_json::to_string(manifest)?;
        let permissions_text = serde_json::to_string(&permissions)?;
        self.store_component(&view.digest, bytes)?;
        let row = view.clone();
        let inserted = self
            .db
            .call(move |c| {
                let tx = c.transaction()?;
                if row.status == "current" {
                    supersede(&tx, &row.name)?;
                }
                tx.execute(
                    &format!("INSERT INTO plugin_versions ({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"),
                    params![row.digest, row.name, row.version, row.status, row.bundled, row.installed_at, manifest_text, permissions_text],
                )?;
                tx.commit()
            })
            .await;
        if let Err(e) = inserted {
            // No row names the file: it goes too.
            let _ = std::fs::remove_file(self.dir.join(format!("{}.wasm", view.digest)));
            return Err(e);
        }
        if becomes_current {
            self.make_current(host, prepared, &view.digest, bundled);
        }
        Ok(view)
    }

    /// Swaps the host's plugin of this name for `prepared`.
    fn make_current(&self, host: &Host, prepared: PreparedPlugin, digest: &str, bundled: bool) {
        let name = prepared.manifest().name.clone();
        host.install_plugin(prepared);
        let mut state = self.write();
        if bundled {
            state.bundled.insert(name.clone());
        }
        state.current.insert(name, digest.to_owned());
    }

    /// Installs an uploaded component; `true` when it was not installed before.
    async fn upload(&self, host: &Host, bytes: &[u8]) -> ApiResult<(PluginVersion, bool)> {
        let digest = digest_of(bytes);
        let _one_at_a_time = self.changes.lock().await;
        if let Some(row) = self.row(&digest).await? {
            return Ok((row.view, false));
        }
        let prepared = host
            .prepare_plugin(bytes)
            .await
            .map_err(|e| Problem::unprocessable(format!("not an installable plugin: {e}")))?;
        let view = self.add(host, prepared, bytes, digest, false).await?;
        tracing::info!(
            plugin = view.name,
            version = view.version,
            digest = view.digest,
            status = view.status,
            "plugin uploaded"
        );
        Ok((view, true))
    }

    /// Makes a version current.
    async fn approve(&self, host: &Host, digest: &str) -> ApiResult<PluginVersion> {
        let _one_at_a_time = self.changes.lock().await;
        let mut row = self.known(digest).await?;
        if row.view.status == "current" {
            return Ok(row.view);
        }
        let bytes = self.read_component(digest)?;
        let prepared = host
            .prepare_plugin(&bytes)
            .await
            .map_err(|e| Problem::internal(&e.into()))?;
        let (name, owned) = (row.view.name.clone(), digest.to_owned());
        self.db
            .call(move |c| {
                let tx = c.transaction()?;
                supersede(&tx, &name)?;
                tx.execute(
                    "UPDATE plugin_versions SET status = 'current' WHERE digest = ?1",
                    [owned],
                )?;
                tx.commit()
            })
            .await?;
        self.make_current(host, prepared, digest, false);
        row.view.status = "current".into();
        tracing::info!(
            plugin = row.view.name,
            version = row.view.version,
            digest,
            "plugin version approved"
        );
        Ok(row.view)
    }

    /// Whether `tenant` may use `plugin`: it has a current version, and the
    /// admin enabled it for the tenant (or it is bundled and not disabled).
    pub(crate) fn enabled(&self, tenant: &str, plugin: &str) -> bool {
        self.read().enabled(tenant, plugin)
    }

    /// 404 unless `tenant` may use `plugin`.
    pub(crate) fn check_enabled(&self, tenant: &str, plugin: &str) -> ApiResult<()> {
        if self.enabled(tenant, plugin) {
            Ok(())
        } else {
            Err(Problem::not_found(format!("no plugin `{plugin}`")))
        }
    }

    /// The plugin names `tenant` may use, sorted.
    pub(crate) fn enabled_for(&self, tenant: &str) -> Vec<String> {
        let state = self.read();
        let mut names: Vec<String> = state
            .current
            .keys()
            .filter(|name| state.enabled(tenant, name))
            .cloned()
            .collect();
        names.sort();
        names
    }
}

/// Marks the current version of `name` superseded.
fn supersede(tx: &rusqlite::Transaction<'_>, name: &str) -> rusqlite::Result<usize> {
    tx.execute(
        "UPDATE plugin_versions SET status = 'superseded' WHERE name = ?1 AND status = 'current'",
        [name],
    )
}

/// The plugin routes; uploads take up to `max_upload` bytes.
pub(crate) fn routes(max_upload: usize) -> Router<Shared> {
    Router::new()
        .route(
            "/v1/plugins",
            get(list_versions)
                .post(upload_plugin)
                .layer(DefaultBodyLimit::max(max_upload)),
        )
        .route("/v1/plugins/{digest}", get(describe_version))
        .route("/v1/plugins/{digest}/diff", get(version_diff))
        .route("/v1/plugins/{digest}/approve", post(approve_version))
        .route("/v1/tenants/{tenant}/plugins", get(list_plugins))
        .route(
            "/v1/tenants/{tenant}/plugins/{plugin}",
            get(get_plugin).put(set_access),
        )
}

/// Installs a plugin component (admin): 201 when new, 200 when these bytes
/// were installed before. A version that asks for more than the current one
/// of its name is `pending` until approved.
#[utoipa::path(post, path = "/v1/plugins", tag = "plugins",
    request_body(content = inline(Component), content_type = "application/wasm", description = "The component's bytes"),
    responses((status = 201, body = PluginVersion), (status = 200, body = PluginVersion),
        (status = 403, response = Forbidden)))]
pub(crate) async fn upload_plugin(
    State(app): State<Shared>,
    caller: Caller,
    headers: HeaderMap,
    bytes: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> ApiResult {
    admin_only(&caller)?;
    let wasm = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v.split(';')
                .next()
                .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/wasm"))
        });
    if !wasm {
        return Err(Problem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "the body must be a component, `Content-Type: application/wasm`",
        ));
    }
    let bytes = bytes.map_err(|r| Problem::new(r.status(), r.body_text()))?;
    let (view, created) = app.plugins.upload(&app.host, &bytes).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, Json(view)).into_response())
}

/// Lists every installed version (admin).
#[utoipa::path(get, path = "/v1/plugins", tag = "plugins",
    responses((status = 200, body = PluginVersionList), (status = 403, response = Forbidden)))]
pub(crate) async fn list_versions(State(app): State<Shared>, caller: Caller) -> ApiResult {
    admin_only(&caller)?;
    let versions = app
        .plugins
        .db
        .call(|c| {
            c.prepare(&format!(
                "SELECT {COLUMNS} FROM plugin_versions ORDER BY name, installed_at"
            ))?
            .query_map([], Row::read)?
            .map(|r| r.map(|(view, ..)| view))
            .collect::<rusqlite::Result<Vec<_>>>()
        })
        .await?;
    Ok(Json(PluginVersionList { versions }).into_response())
}

/// A version and its manifest (admin).
#[utoipa::path(get, path = "/v1/plugins/{digest}", tag = "plugins",
    responses((status = 200, body = PluginDescription), (status = 403, response = Forbidden)))]
pub(crate) async fn describe_version(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath(digest)): Checked<UrlPath<String>>,
) -> ApiResult {
    admin_only(&caller)?;
    let row = app.plugins.known(&digest).await?;
    let manifest = serde_json::from_str(&row.manifest).map_err(anyhow::Error::from)?;
    Ok(Json(PluginDescription {
        version: row.view,
        manifest,
    })
    .into_response())
}

/// What a version asks for beyond the current version of its name (admin).
#[utoipa::path(get, path = "/v1/plugins/{digest}/diff", tag = "plugins",
    responses((status = 200, body = PermissionDiff), (status = 403, response = Forbidden)))]
pub(crate) async fn version_diff(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath(digest)): Checked<UrlPath<String>>,
) -> ApiResult {
    admin_only(&caller)?;
    let row = app.plugins.known(&digest).await?;
    let current = app.plugins.current(&row.view.name).await?;
    let none = Permissions::default();
    let base = current.as_ref().map_or(&none, |c| &c.permissions);
    Ok(Json(PermissionDiff {
        added: row.permissions.minus(base),
        removed: base.minus(&row.permissions),
        to: row.view,
        from: current.map(|c| c.view),
    })
    .into_response())
}

/// Makes a version current (admin): steps that start from now on run it,
/// steps already running finish on theirs.
#[utoipa::path(post, path = "/v1/plugins/{digest}/approve", tag = "plugins",
    responses((status = 200, body = PluginVersion), (status = 403, response = Forbidden)))]
pub(crate) async fn approve_version(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath(digest)): Checked<UrlPath<String>>,
) -> ApiResult {
    admin_only(&caller)?;
    Ok(Json(app.plugins.approve(&app.host, &digest).await?).into_response())
}

/// Lists the plugins enabled for the tenant.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins", tag = "plugins",
    responses((status = 200, body = PluginList)))]
pub(crate) async fn list_plugins(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath(tenant)): Checked<UrlPath<String>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let plugins = app
        .plugins
        .enabled_for(&tenant)
        .into_iter()
        .filter_map(|name| {
            let m = app.host.manifest(&name)?;
            Some(PluginSummary {
                digest: app.plugins.current_digest(&name)?,
                name: m.name.clone(),
                version: m.version.clone(),
                description: m.description.clone(),
                calls: m.calls.iter().map(|c| c.name.clone()).collect(),
            })
        })
        .collect();
    Ok(Json(PluginList { plugins }).into_response())
}

/// The manifest of a plugin enabled for the tenant (its current version).
#[utoipa::path(get, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    responses((status = 200, description = "The manifest, as `courier inspect` prints it", body = Object)))]
pub(crate) async fn get_plugin(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath((tenant, plugin))): Checked<UrlPath<(String, String)>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    app.plugins.check_enabled(&tenant, &plugin)?;
    let manifest = app
        .host
        .manifest(&plugin)
        .ok_or_else(|| Problem::not_found(format!("no plugin `{plugin}`")))?;
    Ok(Json(&*manifest).into_response())
}

/// Enables or disables a plugin for the tenant (admin).
#[utoipa::path(put, path = "/v1/tenants/{tenant}/plugins/{plugin}", tag = "plugins",
    request_body = Access,
    responses((status = 200, body = Access), (status = 403, response = Forbidden)))]
pub(crate) async fn set_access(
    State(app): State<Shared>,
    caller: Caller,
    Checked(UrlPath((tenant, plugin))): Checked<UrlPath<(String, String)>>,
    Body(access): Body<Access>,
) -> ApiResult {
    admin_only(&caller)?;
    app.tenant(&caller, &tenant).await?;
    if app.plugins.current_digest(&plugin).is_none() {
        return Err(Problem::not_found(format!("no plugin `{plugin}`")));
    }
    let (t, p, enabled) = (tenant.clone(), plugin.clone(), access.enabled);
    app.plugins
        .db
        .call(move |c| {
            c.execute(
                "INSERT INTO plugin_access (tenant, plugin, enabled) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, plugin) DO UPDATE SET enabled = excluded.enabled",
                params![t, p, enabled],
            )
        })
        .await?;
    app.plugins
        .write()
        .access
        .insert((tenant.clone(), plugin.clone()), enabled);
    tracing::info!(tenant, plugin, enabled, "plugin access set");
    Ok(Json(access).into_response())
}
