//! The HTTP API: routes, authentication, handlers. Every error is a
//! [`Problem`]; a tenant token sees only its own tenant, and anything of
//! another tenant is answered 404 as if it did not exist.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::request::Parts as RequestParts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use courier_host::{ConnectionConfig, ConnectionInfo, ConnectionStore, Host, Secret, StepRequest};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use tracing::Instrument;
use utoipa::{IntoParams, ToSchema};

use super::auth::{self, Caller};
use super::config::Retention;
use super::db::{Db, NewStep, StepFilter, StepRecord, Tenant};
use super::problem::{Forbidden, Problem};

/// The header a step's id comes back in.
const STEP_ID_HEADER: &str = "courier-step-id";
/// The header that marks a replayed idempotent answer.
const REPLAYED_HEADER: &str = "idempotent-replayed";

/// What every handler shares.
pub(crate) struct App {
    pub(crate) host: Host,
    pub(crate) store: Arc<dyn ConnectionStore>,
    pub(crate) db: Db,
    pub(crate) admin_hash: Secret,
    pub(crate) plugins: super::plugins::Registry,
    pub(crate) retention: Retention,
    pub(crate) shutting_down: AtomicBool,
    metrics: super::metrics::Metrics,
    /// Turns true when the shutdown grace is over: steps still running end.
    cut_off: tokio::sync::watch::Receiver<bool>,
    /// One lock per idempotency key being answered, so that concurrent
    /// repeats wait for the first instead of running again.
    keys: tokio::sync::Mutex<HashMap<(String, String), KeyLock>>,
}

pub(crate) type Shared = Arc<App>;
/// Held while a tenant's idempotency key is being answered.
type KeyLock = Arc<tokio::sync::Mutex<()>>;
pub(crate) type ApiResult<T = Response> = Result<T, Problem>;

impl App {
    /// The service's state.
    pub(crate) fn new(
        host: Host,
        store: Arc<dyn ConnectionStore>,
        db: Db,
        admin_token: &Secret,
        plugins: super::plugins::Registry,
        retention: Retention,
        cut_off: tokio::sync::watch::Receiver<bool>,
    ) -> Self {
        Self {
            host,
            store,
            db,
            admin_hash: auth::hash(admin_token.expose()),
            plugins,
            retention,
            shutting_down: AtomicBool::new(false),
            metrics: Default::default(),
            cut_off,
            keys: Default::default(),
        }
    }

    /// 404 unless `caller` may see `tenant` and it exists.
    pub(crate) async fn tenant(&self, caller: &Caller, tenant: &str) -> ApiResult<()> {
        if caller.sees(tenant) && self.db.tenant_exists(tenant.to_owned()).await? {
            Ok(())
        } else {
            Err(Problem::not_found(format!("no tenant `{tenant}`")))
        }
    }
}

/// The router, with the body cap.
pub(crate) fn router(app: Shared, max_body_bytes: usize) -> Router {
    Router::new()
        .merge(super::plugins::routes(app.plugins.max_upload))
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
        .route("/v1/tenants", get(list_tenants).post(create_tenant))
        .route("/v1/tenants/{tenant}/tokens", post(create_token))
        .route(
            "/v1/tenants/{tenant}/tokens/{token}",
            axum::routing::delete(delete_token),
        )
        .route("/v1/tenants/{tenant}/connections", get(list_connections))
        .route(
            "/v1/tenants/{tenant}/connections/{id}",
            get(get_connection)
                .put(put_connection)
                .delete(delete_connection),
        )
        .route(
            "/v1/tenants/{tenant}/connections/{id}/test",
            post(test_connection),
        )
        .route("/v1/tenants/{tenant}/steps", get(list_steps).post(run_step))
        .route("/v1/tenants/{tenant}/steps/{id}", get(get_step))
        .merge(super::mcp::router(&app, max_body_bytes))
        .fallback(|| async { Problem::not_found("no such endpoint") })
        .method_not_allowed_fallback(|| async {
            Problem::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "this endpoint does not take that method",
            )
        })
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(axum::middleware::from_fn(access_log))
        .with_state(app)
}

/// One log line per request: method, path (no query), status, time.
async fn access_log(request: Request, next: axum::middleware::Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    tracing::info!(
        %method,
        path,
        status = response.status().as_u16(),
        ms = started.elapsed().as_secs_f64() * 1e3,
        "request"
    );
    response
}

/// An extractor whose rejection is a [`Problem`] (path, query).
pub(crate) struct Checked<E>(pub(crate) E);

impl<S: Send + Sync, E> FromRequestParts<S> for Checked<E>
where
    E: FromRequestParts<S>,
    Problem: From<E::Rejection>,
{
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut RequestParts, state: &S) -> ApiResult<Self> {
        Ok(Self(E::from_request_parts(parts, state).await?))
    }
}

/// A JSON body whose rejection is a [`Problem`].
pub(crate) struct Body<T>(pub(crate) T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned> FromRequest<S> for Body<T> {
    type Rejection = Problem;

    async fn from_request(request: Request, state: &S) -> ApiResult<Self> {
        Ok(Self(Json::<T>::from_request(request, state).await?.0))
    }
}

impl FromRequestParts<Shared> for Caller {
    type Rejection = Problem;

    async fn from_request_parts(parts: &mut RequestParts, app: &Shared) -> ApiResult<Self> {
        let unauthorized = |why: &str| Problem::new(StatusCode::UNAUTHORIZED, why);
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .ok_or_else(|| unauthorized("an `Authorization: Bearer <token>` header is required"))?;
        let token = value
            .to_str()
            .ok()
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::trim)
            .ok_or_else(|| unauthorized("the Authorization header must be `Bearer <token>`"))?;
        let invalid = || unauthorized("the token is not valid");
        if let Some(id) = auth::token_id(token) {
            let (tenant, hash) = app.db.token(id.to_owned()).await?.ok_or_else(invalid)?;
            return if auth::matches(token, &hash) {
                Ok(Caller::Tenant(tenant))
            } else {
                Err(invalid())
            };
        }
        if auth::matches(token, &app.admin_hash) {
            Ok(Caller::Admin)
        } else {
            Err(invalid())
        }
    }
}

/// 403 unless the caller is the admin.
pub(crate) fn admin_only(caller: &Caller) -> Result<(), Forbidden> {
    match caller {
        Caller::Admin => Ok(()),
        Caller::Tenant(_) => Err(Forbidden::admin_only()),
    }
}

/// Ids of tenants and connections: `[a-z0-9][a-z0-9_-]{0,62}`.
fn check_id(what: &str, id: &str) -> ApiResult<()> {
    let ok = (1..=63).contains(&id.len())
        && id.bytes().enumerate().all(|(i, b)| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || (i > 0 && (b == b'-' || b == b'_'))
        });
    if ok {
        Ok(())
    } else {
        Err(Problem::unprocessable(format!(
            "{what} ids are 1 to 63 characters: lowercase letters, digits, `-` and `_`, \
             starting with a letter or digit"
        )))
    }
}

/// What `/healthz` and `/readyz` answer.
#[derive(Serialize, ToSchema)]
pub(crate) struct Status {
    /// `ok` or `ready`.
    status: &'static str,
}

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(()),
    responses((status = 200, description = "The OpenAPI document", body = Object)))]
pub(crate) async fn openapi() -> Json<utoipa::openapi::OpenApi> {
    Json(super::openapi::document())
}

/// Prometheus metrics (admin): steps by tenant, plugin, call and outcome; step and outbound latency; token requests; contract drift; circuit states; running steps.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus text format", body = String, content_type = "text/plain; version=0.0.4"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, response = Forbidden)))]
pub(crate) async fn metrics(State(app): State<Shared>, caller: Caller) -> ApiResult {
    admin_only(&caller)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        app.metrics.render(&app.host),
    )
        .into_response())
}

/// Liveness: 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(()),
    responses((status = 200, body = Status)))]
pub(crate) async fn healthz() -> Json<Status> {
    Json(Status { status: "ok" })
}

/// Readiness: 200 when ready, 503 while shutting down.
#[utoipa::path(get, path = "/readyz", tag = "operations", security(()),
    responses((status = 200, body = Status), (status = 503, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn readyz(State(app): State<Shared>) -> ApiResult {
    if app.shutting_down.load(Ordering::SeqCst) {
        return Err(Problem::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down",
        ));
    }
    app.db.tenant_exists(String::new()).await?;
    Ok(Json(Status { status: "ready" }).into_response())
}

/// `POST /v1/tenants`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewTenant {
    /// The tenant id: `[a-z0-9][a-z0-9_-]{0,62}`.
    id: String,
}

/// The admin's list of tenants.
#[derive(Serialize, ToSchema)]
pub(crate) struct TenantList {
    tenants: Vec<Tenant>,
}

/// Creates a tenant (admin).
#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = NewTenant,
    responses((status = 201, body = Tenant), (status = 403, response = Forbidden),
        (status = 409, body = Problem, content_type = "application/problem+json")))]
pub(crate) async fn create_tenant(
    State(app): State<Shared>,
    caller: Caller,
    Body(body): Body<NewTenant>,
) -> ApiResult {
    admin_only(&caller)?;
    check_id("tenant", &body.id)?;
    let id = body.id;
    match app.db.create_tenant(id.clone()).await? {
        Some(tenant) => Ok((StatusCode::CREATED, Json(tenant)).into_response()),
        None => Err(Problem::new(
            StatusCode::CONFLICT,
            format!("tenant `{id}` exists"),
        )),
    }
}

/// Lists the tenants (admin).
#[utoipa::path(get, path = "/v1/tenants", tag = "tenants",
    responses((status = 200, body = TenantList), (status = 403, response = Forbidden)))]
pub(crate) async fn list_tenants(State(app): State<Shared>, caller: Caller) -> ApiResult {
    admin_only(&caller)?;
    Ok(Json(TenantList {
        tenants: app.db.tenants().await?,
    })
    .into_response())
}

/// A token as handed out, once.
#[derive(Serialize, ToSchema)]
pub(crate) struct NewToken {
    /// The token's id (to revoke it).
    id: String,
    /// Its tenant.
    tenant: String,
    /// The token: shown this once, stored only hashed.
    token: String,
}

/// Creates a tenant token (admin).
#[utoipa::path(post, path = "/v1/tenants/{tenant}/tokens", tag = "tenants",
    responses((status = 201, body = NewToken), (status = 403, response = Forbidden)))]
pub(crate) async fn create_token(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path(tenant)): Checked<Path<String>>,
) -> ApiResult {
    admin_only(&caller)?;
    app.tenant(&caller, &tenant).await?;
    let (id, token) = auth::new_tenant_token()?;
    app.db
        .create_token(tenant.clone(), id.clone(), auth::hash(&token))
        .await?;
    tracing::info!(tenant, token_id = id, "tenant token created");
    Ok((StatusCode::CREATED, Json(NewToken { id, tenant, token })).into_response())
}

/// Revokes a tenant token (admin).
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/tokens/{token}", tag = "tenants",
    responses((status = 204, description = "Revoked"), (status = 403, response = Forbidden)))]
pub(crate) async fn delete_token(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
) -> ApiResult {
    admin_only(&caller)?;
    app.tenant(&caller, &tenant).await?;
    if app.db.delete_token(tenant, id.clone()).await? {
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(format!("no token `{id}`")))
    }
}

/// A stored connection: metadata and secret names, never secret values.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionView {
    tenant: String,
    id: String,
    /// The plugin whose declared connection it binds.
    plugin: String,
    /// The declared connection name.
    connection: String,
    /// The auth scheme, if the connection names one.
    auth: Option<String>,
    /// The base URL override, if any.
    base_url: Option<String>,
    /// The names of the secrets it holds.
    secrets: Vec<String>,
    /// Whether a token request was refused and new secrets are needed.
    needs_reauthorization: bool,
    /// Last change, Unix seconds.
    updated_at: u64,
}

impl From<ConnectionInfo> for ConnectionView {
    fn from(c: ConnectionInfo) -> Self {
        Self {
            tenant: c.tenant,
            id: c.id,
            plugin: c.plugin,
            connection: c.connection,
            auth: c.auth,
            base_url: c.base_url,
            secrets: c.secrets,
            needs_reauthorization: c.needs_reauthorization,
            updated_at: c.updated_at,
        }
    }
}

/// A tenant's stored connections.
#[derive(Serialize, ToSchema)]
pub(crate) struct ConnectionList {
    connections: Vec<ConnectionView>,
}

/// Lists a tenant's connections.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/connections", tag = "connections",
    responses((status = 200, body = ConnectionList)))]
pub(crate) async fn list_connections(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path(tenant)): Checked<Path<String>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let connections = app.store.list(Some(&tenant)).await.map_err(store_error)?;
    Ok(Json(ConnectionList {
        connections: connections.into_iter().map(Into::into).collect(),
    })
    .into_response())
}

/// A stored connection's listing, or 404.
async fn connection_info(app: &App, tenant: &str, id: &str) -> ApiResult<ConnectionView> {
    app.store
        .list(Some(tenant))
        .await
        .map_err(store_error)?
        .into_iter()
        .find(|c| c.id == id)
        .map(Into::into)
        .ok_or_else(|| Problem::not_found(format!("no connection `{id}`")))
}

/// One stored connection.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/connections/{id}", tag = "connections",
    responses((status = 200, body = ConnectionView)))]
pub(crate) async fn get_connection(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    Ok(Json(connection_info(&app, &tenant, &id).await?).into_response())
}

/// `PUT …/connections/{id}`: the plugin, and the connection file as JSON.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PutConnection {
    /// The plugin whose declared connection it binds.
    plugin: String,
    /// A connection file (README: "Connection files") as a JSON object,
    /// `secrets` included; the secrets are never returned.
    connection: serde_json::Map<String, Value>,
}

/// Stores (201) or replaces (200) a connection, checked against the plugin first.
#[utoipa::path(put, path = "/v1/tenants/{tenant}/connections/{id}", tag = "connections",
    request_body = PutConnection,
    responses((status = 201, body = ConnectionView), (status = 200, body = ConnectionView)))]
pub(crate) async fn put_connection(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
    Body(body): Body<Value>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    check_id("connection", &id)?;
    // The body carries secrets: no message built from it may quote them.
    let redact = |message: String| redacted(message, &body);
    let put: PutConnection = serde_json::from_value(body.clone())
        .map_err(|e| Problem::unprocessable(redact(e.to_string())))?;
    app.plugins.check_enabled(&tenant, &put.plugin)?;
    let text = zeroize::Zeroizing::new(
        toml::to_string(&put.connection)
            .map_err(|e| Problem::unprocessable(redact(format!("connection: {e}"))))?,
    );
    let config: ConnectionConfig = toml::from_str(&text)
        .map_err(|e| Problem::unprocessable(redact(format!("connection: {}", e.message()))))?;
    app.host
        .bind_connection(&tenant, &put.plugin, config)
        .map_err(|e| Problem::unprocessable(redact(e.to_string())))?;
    let existed = connection_info(&app, &tenant, &id).await.is_ok();
    app.store
        .put(&tenant, &id, &put.plugin, &text)
        .await
        .map_err(|e| Problem::unprocessable(redact(e.to_string())))?;
    tracing::info!(
        tenant,
        connection = id,
        plugin = put.plugin,
        "connection stored"
    );
    let status = if existed {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(connection_info(&app, &tenant, &id).await?)).into_response())
}

/// `message` with every string value of `doc` (as written, JSON-escaped or
/// Debug-escaped) replaced by `***`, longest first.
fn redacted(mut message: String, doc: &Value) -> String {
    fn strings<'a>(v: &'a Value, out: &mut Vec<&'a str>) {
        match v {
            Value::String(s) => out.push(s),
            Value::Array(a) => a.iter().for_each(|v| strings(v, out)),
            Value::Object(o) => o.values().for_each(|v| strings(v, out)),
            _ => {}
        }
    }
    let mut all = vec![];
    strings(doc, &mut all);
    let mut forms: Vec<String> = all
        .iter()
        .filter(|s| s.len() >= 4)
        .flat_map(|s| {
            let json = serde_json::to_string(s).unwrap_or_default();
            let debug = format!("{s:?}");
            [
                s.to_string(),
                json.trim_matches('"').to_owned(),
                debug.trim_matches('"').to_owned(),
            ]
        })
        .collect();
    forms.sort_by_key(|f| std::cmp::Reverse(f.len()));
    for f in forms {
        message = message.replace(&f, "***");
    }
    message
}

/// Deletes a stored connection.
#[utoipa::path(delete, path = "/v1/tenants/{tenant}/connections/{id}", tag = "connections",
    responses((status = 204, description = "Deleted")))]
pub(crate) async fn delete_connection(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    if app.store.delete(&tenant, &id).await.map_err(store_error)? {
        tracing::info!(tenant, connection = id, "connection deleted");
        Ok(StatusCode::NO_CONTENT.into_response())
    } else {
        Err(Problem::not_found(format!("no connection `{id}`")))
    }
}

fn store_error(e: courier_host::StoreError) -> Problem {
    match e {
        courier_host::StoreError::NotFound { id, .. } => {
            Problem::not_found(format!("no connection `{id}`"))
        }
        other => Problem::internal(&other.into()),
    }
}

/// `POST …/connections/{id}/test`: the call to run (default: the plugin's
/// verification call) and its input.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct TestConnection {
    /// The call to run [default: the plugin's verification call].
    call: Option<String>,
    /// The call's input [default: `{}`].
    #[serde(default = "empty_object")]
    input: Value,
}

fn empty_object() -> Value {
    Value::Object(Default::default())
}

/// Runs the verification call (or `call`) with a stored connection; the step result.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/connections/{id}/test", tag = "connections",
    request_body = TestConnection,
    responses((status = 200, description = "The step result", body = Object, headers(("courier-step-id" = String)))))]
pub(crate) async fn test_connection(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
    Body(body): Body<TestConnection>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let (plugin, config) = app.store.get(&tenant, &id).await.map_err(store_error)?;
    app.plugins.check_enabled(&tenant, &plugin)?;
    let call = match body.call {
        Some(c) => c,
        None => app
            .host
            .manifest(&plugin)
            .and_then(|m| m.connection(&config.connection)?.verify_call.clone())
            .ok_or_else(|| {
                Problem::unprocessable(format!(
                    "`{plugin}` declares no verification call for `{}`: name a `call`",
                    config.connection
                ))
            })?,
    };
    let step = StepRequest {
        tenant: tenant.clone(),
        plugin,
        call,
        input: body.input,
        connections: vec![config.into()],
    };
    detached(async move {
        let done = run_and_record(&app, step, None).await?;
        let needs = app
            .host
            .needs_reauthorization(&tenant, &id)
            .unwrap_or(false);
        app.store
            .set_needs_reauthorization(&tenant, &id, needs)
            .await
            .map_err(store_error)?;
        Ok(step_response(&done, false))
    })
    .await
}

/// `POST …/steps`: a plugin call, its input, stored connections by id.
#[derive(Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewStepBody {
    /// The plugin.
    pub(super) plugin: String,
    /// The call.
    pub(super) call: String,
    /// The call's input [default: `{}`].
    #[serde(default = "empty_object")]
    pub(super) input: Value,
    /// Ids of the tenant's stored connections the step uses.
    #[serde(default)]
    pub(super) connections: Vec<String>,
}

/// Runs a step synchronously: the step result JSON `courier run` prints, whatever the outcome.
#[utoipa::path(post, path = "/v1/tenants/{tenant}/steps", tag = "steps",
    params(("Idempotency-Key" = Option<String>, Header, description = "Runs the step once per tenant and key; repeats get the first answer")),
    request_body = NewStepBody,
    responses((status = 200, description = "The step result", body = Object,
        headers(("courier-step-id" = String), ("idempotent-replayed" = Option<String>)))))]
pub(crate) async fn run_step(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path(tenant)): Checked<Path<String>>,
    headers: HeaderMap,
    Body(body): Body<NewStepBody>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let key = idempotency_key(&headers)?;
    let (step, replayed) = tenant_step(app, tenant, key, body).await?;
    Ok(step_response(&step, replayed))
}

/// A tenant's step as `POST …/steps` runs it (the MCP tools too): resolved,
/// run, recorded, once per idempotency key; whether it is a replay.
pub(super) async fn tenant_step(
    app: Shared,
    tenant: String,
    key: Option<String>,
    body: NewStepBody,
) -> ApiResult<(StepRecord, bool)> {
    detached(answer_step(app, tenant, key, body)).await
}

/// Runs `answer` to its end even if the caller goes away: a step that has
/// started is finished and recorded (and its idempotency key answered).
async fn detached<T: Send + 'static>(
    answer: impl Future<Output = ApiResult<T>> + Send + 'static,
) -> ApiResult<T> {
    tokio::spawn(answer)
        .await
        .map_err(|e| Problem::internal(&e.into()))?
}

/// Runs a step once per idempotency key: a repeat (also one that arrives
/// while the first runs) gets the first answer.
async fn answer_step(
    app: Shared,
    tenant: String,
    key: Option<String>,
    body: NewStepBody,
) -> ApiResult<(StepRecord, bool)> {
    let Some(key) = key else {
        let step = resolve_step(&app, &tenant, body).await?;
        return Ok((run_and_record(&app, step, None).await?, false));
    };
    let request_hash = hex::encode(Sha256::digest(
        serde_json::to_vec(&body).map_err(anyhow::Error::from)?,
    ));
    let lock = {
        let mut keys = app.keys.lock().await;
        keys.entry((tenant.clone(), key.clone()))
            .or_default()
            .clone()
    };
    let answer = async {
        let _held = lock.lock().await;
        if let Some(first) = app.db.step_by_key(tenant.clone(), key.clone()).await? {
            if first.request_hash.as_deref() != Some(request_hash.as_str()) {
                return Err(Problem::unprocessable(
                    "this Idempotency-Key was used with a different request",
                ));
            }
            return Ok((first, true));
        }
        let step = resolve_step(&app, &tenant, body).await?;
        let done = run_and_record(&app, step, Some((&key, &request_hash))).await?;
        Ok((done, false))
    }
    .await;
    let mut keys = app.keys.lock().await;
    if Arc::strong_count(&lock) == 2 {
        keys.remove(&(tenant, key));
    }
    answer
}

/// The `Idempotency-Key` header, if any.
fn idempotency_key(headers: &HeaderMap) -> ApiResult<Option<String>> {
    headers
        .get("idempotency-key")
        .map(|value| {
            value
                .to_str()
                .ok()
                .and_then(checked_idempotency_key)
                .ok_or_else(|| {
                    Problem::new(
                        StatusCode::BAD_REQUEST,
                        "Idempotency-Key must be 1 to 255 visible ASCII characters",
                    )
                })
        })
        .transpose()
}

/// An idempotency key if it is one: 1 to 255 visible ASCII characters.
pub(super) fn checked_idempotency_key(key: &str) -> Option<String> {
    ((1..=255).contains(&key.len()) && key.bytes().all(|b| b.is_ascii_graphic()))
        .then(|| key.to_owned())
}

/// The step request, with the stored connections it names.
async fn resolve_step(app: &App, tenant: &str, body: NewStepBody) -> ApiResult<StepRequest> {
    app.plugins.check_enabled(tenant, &body.plugin)?;
    let mut connections = Vec::with_capacity(body.connections.len());
    for id in &body.connections {
        let (plugin, config) = match app.store.get(tenant, id).await {
            Ok(found) => found,
            Err(courier_host::StoreError::NotFound { .. }) => {
                return Err(Problem::unprocessable(format!("no connection `{id}`")));
            }
            Err(e) => return Err(Problem::internal(&e.into())),
        };
        if plugin != body.plugin {
            return Err(Problem::unprocessable(format!(
                "connection `{id}` is for plugin `{plugin}`, not `{}`",
                body.plugin
            )));
        }
        connections.push(config.into());
    }
    Ok(StepRequest {
        tenant: tenant.to_owned(),
        plugin: body.plugin,
        call: body.call,
        input: body.input,
        connections,
    })
}

/// Runs a step under its id, logs it and stores its result.
async fn run_and_record(
    app: &App,
    step: StepRequest,
    idempotency: Option<(&str, &str)>,
) -> ApiResult<StepRecord> {
    let id = format!("stp_{}", hex::encode(auth::random_bytes::<12>()?));
    let span = tracing::info_span!(
        "step",
        step_id = id,
        tenant = step.tenant,
        plugin = step.plugin,
        call = step.call
    );
    let (tenant, plugin, call) = (step.tenant.clone(), step.plugin.clone(), step.call.clone());
    let mut cut_off = app.cut_off.clone();
    let shut_down = async move {
        if cut_off.wait_for(|cut| *cut).await.is_err() {
            std::future::pending::<()>().await;
        }
        "the service shut down before the step finished".to_owned()
    };
    let result = app
        .host
        .run_step_until(step, shut_down)
        .instrument(span.clone())
        .await;
    let outcome = serde_json::to_value(result.outcome)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default();
    let known = app
        .host
        .manifest(&plugin)
        .filter(|_| app.plugins.enabled(&tenant, &plugin));
    let call_known = known
        .as_ref()
        .is_some_and(|m| m.calls.iter().any(|c| c.name == call));
    app.metrics.step(
        &tenant,
        if known.is_some() { &plugin } else { "-" },
        if call_known { &call } else { "-" },
        &outcome,
        &result,
    );
    span.in_scope(|| {
        tracing::info!(
            outcome,
            duration_ms = result.duration_ms,
            requests = result.requests.len(),
            "step finished"
        );
    });
    let text = serde_json::to_string(&result).map_err(anyhow::Error::from)?;
    let writing = std::time::Instant::now();
    let stored = app
        .db
        .insert_step(
            NewStep {
                id: &id,
                tenant: &tenant,
                plugin: &plugin,
                call: &call,
                outcome: &outcome,
                idempotency,
                result: &text,
            },
            app.retention,
        )
        .await?;
    app.metrics.history_write(writing.elapsed());
    if !stored {
        return Err(Problem::internal(&anyhow::anyhow!(
            "step {id}: idempotency key taken"
        )));
    }
    Ok(StepRecord {
        id,
        plugin,
        call,
        outcome,
        created_at: super::db::now_ms(),
        result: serde_json::to_value(&result).map_err(anyhow::Error::from)?,
        seq: 0,
        request_hash: None,
    })
}

/// The step result as the body, its id in `Courier-Step-Id`.
fn step_response(step: &StepRecord, replayed: bool) -> Response {
    let mut response = Json(&step.result).into_response();
    let headers = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&step.id) {
        headers.insert(STEP_ID_HEADER, v);
    }
    if replayed {
        headers.insert(REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    response
}

/// `GET …/steps` query: filters and the page.
#[derive(Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct HistoryQuery {
    /// Only this plugin's steps.
    plugin: Option<String>,
    /// Only this call's steps.
    call: Option<String>,
    /// Only steps with this outcome (`success`, `http-error`, …).
    outcome: Option<String>,
    /// Steps at or after this time, Unix milliseconds.
    since: Option<i64>,
    /// Steps before this time, Unix milliseconds.
    until: Option<i64>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
    /// Page size, 1 to 500 [default: 50].
    limit: Option<u32>,
}

/// A page of the history, newest first.
#[derive(Serialize, ToSchema)]
pub(crate) struct StepPage {
    steps: Vec<StepRecord>,
    /// The `cursor` of the next page; none after the last.
    next_cursor: Option<String>,
}

/// The step history, newest first, filtered, by pages.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/steps", tag = "steps", params(HistoryQuery),
    responses((status = 200, body = StepPage)))]
pub(crate) async fn list_steps(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path(tenant)): Checked<Path<String>>,
    Checked(Query(q)): Checked<Query<HistoryQuery>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let limit = q.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(Problem::new(
            StatusCode::BAD_REQUEST,
            "limit must be 1 to 500",
        ));
    }
    let before = q
        .cursor
        .map(|c| c.parse::<i64>().ok().filter(|&n| n > 0))
        .map(|c| {
            c.ok_or_else(|| {
                Problem::new(StatusCode::BAD_REQUEST, "cursor is not one this API gave")
            })
        })
        .transpose()?;
    let steps = app
        .db
        .steps(
            tenant,
            StepFilter {
                plugin: q.plugin,
                call: q.call,
                outcome: q.outcome,
                since: q.since,
                until: q.until,
                before,
                limit,
            },
        )
        .await?;
    let next_cursor = (steps.len() == limit as usize)
        .then(|| steps.last().map(|s| s.seq.to_string()))
        .flatten();
    Ok(Json(StepPage { steps, next_cursor }).into_response())
}

/// One stored step.
#[utoipa::path(get, path = "/v1/tenants/{tenant}/steps/{id}", tag = "steps",
    responses((status = 200, body = StepRecord)))]
pub(crate) async fn get_step(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path((tenant, id))): Checked<Path<(String, String)>>,
) -> ApiResult {
    app.tenant(&caller, &tenant).await?;
    let step = app
        .db
        .step(tenant, id.clone())
        .await?
        .ok_or_else(|| Problem::not_found(format!("no step `{id}`")))?;
    Ok(Json(step).into_response())
}
