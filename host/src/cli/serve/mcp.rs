//! The MCP endpoint, `/v1/tenants/{tenant}/mcp` (Streamable HTTP, `rmcp`):
//! the calls of the plugins enabled for the tenant as MCP tools, so that an agent runs an
//! integration without ever holding its credentials.
//!
//! - Authentication is the API's: the tenant's bearer token (or the admin's);
//!   any other token gets the same 401/404 problem as every tenant endpoint.
//! - The tools are the calls of the plugins enabled for the tenant (those
//!   `GET …/plugins` lists). A tool is named `{plugin}__{call}` (plugin names have no `_`; characters
//!   of the call outside `[A-Za-z0-9_-]` become `_`), described by the call's
//!   description and title, and takes the call's input: its `inputSchema` is
//!   the call's input JSON Schema, narrowed to objects (`"type": "object"`:
//!   MCP tools take objects). A call whose input can be no object, or whose
//!   tool name would be longer than 128 characters or taken, is not offered.
//! - The connections are the tenant's: for each connection the plugin
//!   declares, the tenant's one stored connection of that plugin and declared
//!   name (of several, the one whose id is the declared name; else the call
//!   is refused as ambiguous). The agent names no connection and sees none.
//! - Calling a tool runs the step exactly as `POST …/steps` does (the same
//!   function, recorded in the history); the step result is the
//!   `structuredContent` and, as JSON, the text content, its step id in
//!   `_meta["courier/step-id"]`; `isError` unless the outcome is `success`.
//!   The result is the scrubbed one: no secret reaches the client.
//! - A call may carry an idempotency key in `_meta["courier/idempotency-key"]`
//!   (1 to 255 visible ASCII characters): the key of `POST …/steps`'s
//!   `Idempotency-Key`, in the same space of the tenant's keys, with the same
//!   meaning. A repeat gets the first call's result (marked
//!   `_meta["courier/idempotent-replayed"]: true`) and runs nothing; a
//!   repeat with other arguments is refused as an error result.
//!
//! Stateless (no MCP session, JSON answers): every request is authenticated
//! on its own, and any instance can answer it. Not in the OpenAPI document:
//! its messages are JSON-RPC, specified by MCP.

use std::sync::Arc;

use axum::Router;
use axum::extract::{Path, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    ListToolsResult, MetaObject, PaginatedRequestParams, ServerCapabilities, ServerConfig, Tool,
};
use rmcp::service::RequestContext;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::{StreamableHttpServerConfig, StreamableHttpService};
use rmcp::{ErrorData, RoleServer, ServerHandler};
use serde_json::{Map, Value};

use super::api::{Checked, NewStepBody, Shared, checked_idempotency_key, tenant_step};
use super::auth::Caller;
use super::problem::Problem;

/// The longest tool name MCP allows.
const MAX_TOOL_NAME: usize = 128;

/// The `_meta` key of a call's idempotency key.
const IDEMPOTENCY_KEY_META: &str = "courier/idempotency-key";

/// The MCP route, behind the API's bearer check; bodies capped at `max_body_bytes`.
pub(super) fn router(app: &Shared, max_body_bytes: usize) -> Router<Shared> {
    let tools = Tools { app: app.clone() };
    let config = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(false)
        .with_json_response(true)
        .with_max_request_body_bytes(max_body_bytes)
        // Any Host: every request needs a bearer token, which a DNS-rebinding
        // page cannot send, and the service may be reached under any name.
        .disable_allowed_hosts();
    let service = StreamableHttpService::new(
        move || Ok(tools.clone()),
        Arc::new(NeverSessionManager::default()),
        config,
    );
    Router::new()
        .route_service("/v1/tenants/{tenant}/mcp", service)
        .route_layer(axum::middleware::from_fn_with_state(
            app.clone(),
            authenticate,
        ))
}

/// The tenant a request was authenticated for (a request extension).
#[derive(Clone)]
struct Tenant(String);

/// Lets the request through only for a caller who sees the tenant.
async fn authenticate(
    State(app): State<Shared>,
    caller: Caller,
    Checked(Path(tenant)): Checked<Path<String>>,
    mut request: Request,
    next: Next,
) -> Result<Response, Problem> {
    app.tenant(&caller, &tenant).await?;
    request.extensions_mut().insert(Tenant(tenant));
    Ok(next.run(request).await)
}

/// The MCP server: the plugin calls as tools.
#[derive(Clone)]
struct Tools {
    app: Shared,
}

/// A tool and the call it runs.
struct Offered {
    tool: Tool,
    plugin: String,
    call: String,
}

impl Tools {
    /// The tools of the calls of every plugin enabled for `tenant`, in
    /// plugin and call order.
    fn offered(&self, tenant: &str) -> Vec<Offered> {
        let mut offered: Vec<Offered> = vec![];
        for manifest in self
            .app
            .plugins
            .enabled_for(tenant)
            .iter()
            .filter_map(|p| self.app.host.manifest(p))
        {
            for call in &manifest.calls {
                let name = tool_name(&manifest.name, &call.name);
                let Some(schema) = object_schema(&call.input_schema) else {
                    continue;
                };
                if name.len() > MAX_TOOL_NAME || offered.iter().any(|o| o.tool.name == name) {
                    continue;
                }
                let tool = Tool::new(name, call.description.clone(), Arc::new(schema))
                    .with_title(call.title.clone());
                offered.push(Offered {
                    tool,
                    plugin: manifest.name.clone(),
                    call: call.name.clone(),
                });
            }
        }
        offered
    }

    /// The ids of the tenant's stored connections `plugin`'s declared
    /// connections bind to.
    async fn connections(&self, tenant: &str, plugin: &str) -> Result<Vec<String>, Bind> {
        let Some(manifest) = self.app.host.manifest(plugin) else {
            return Ok(vec![]);
        };
        let stored = self
            .app
            .store
            .list(Some(tenant))
            .await
            .map_err(|e| Bind::Store(e.into()))?;
        let mut ids = vec![];
        for declared in &manifest.connections {
            let candidates: Vec<&str> = stored
                .iter()
                .filter(|c| c.plugin == plugin && c.connection == declared.name)
                .map(|c| c.id.as_str())
                .collect();
            match candidates[..] {
                [] => {}
                [one] => ids.push(one.to_owned()),
                _ if candidates.contains(&declared.name.as_str()) => {
                    ids.push(declared.name.clone());
                }
                _ => {
                    return Err(Bind::Ambiguous(format!(
                        "connections {} all bind `{plugin}`'s connection `{}`: keep one, \
                         or name one `{}`",
                        candidates.join(", "),
                        declared.name,
                        declared.name
                    )));
                }
            }
        }
        Ok(ids)
    }
}

/// Why a call's connections could not be chosen.
enum Bind {
    /// Several stored connections fit one declared connection.
    Ambiguous(String),
    /// The store failed.
    Store(anyhow::Error),
}

/// `{plugin}__{call}`, the call's characters outside `[A-Za-z0-9_-]` as `_`.
fn tool_name(plugin: &str, call: &str) -> String {
    let call: String = call
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{plugin}__{call}")
}

/// The call's input schema narrowed to objects (an MCP tool takes an
/// object): `type` set to `object` where the schema allows objects (no
/// `type`, or `object` among its types); none where it allows no object.
fn object_schema(schema: &Value) -> Option<Map<String, Value>> {
    let object = Value::from("object");
    let mut schema = match schema {
        Value::Object(s) => s.clone(),
        Value::Bool(true) => Map::new(),
        _ => return None,
    };
    let allows_objects = match schema.get("type") {
        None => true,
        Some(Value::Array(types)) => types.contains(&object),
        Some(t) => *t == object,
    };
    schema.insert("type".into(), object);
    allows_objects.then_some(schema)
}

/// The tenant the request was authenticated for.
fn tenant_of(context: &RequestContext<RoleServer>) -> Result<String, ErrorData> {
    context
        .extensions
        .get::<axum::http::request::Parts>()
        .and_then(|parts| parts.extensions.get::<Tenant>())
        .map(|t| t.0.clone())
        .ok_or_else(|| ErrorData::internal_error("no authenticated tenant", None))
}

impl ServerHandler for Tools {
    fn get_info(&self) -> ServerConfig {
        ServerConfig::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("courier", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Each tool runs one plugin call as a Courier step with this tenant's stored \
                 connections; the result is the step result, its secrets scrubbed.",
            )
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, ErrorData> {
        let tenant = tenant_of(&context)?;
        Ok(ListToolsResult::with_all_items(
            self.offered(&tenant).into_iter().map(|o| o.tool).collect(),
        ))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, ErrorData> {
        let tenant = tenant_of(&context)?;
        // rmcp hands the request's `_meta` over in the context.
        let key = context
            .meta
            .get(IDEMPOTENCY_KEY_META)
            .map(|key| {
                key.as_str()
                    .and_then(checked_idempotency_key)
                    .ok_or_else(|| {
                        let why = format!(
                            "`{IDEMPOTENCY_KEY_META}` must be 1 to 255 visible ASCII characters"
                        );
                        ErrorData::invalid_params(why, None)
                    })
            })
            .transpose()?;
        let offered = self
            .offered(&tenant)
            .into_iter()
            .find(|o| o.tool.name == request.name)
            .ok_or_else(|| {
                ErrorData::invalid_params(format!("no tool `{}`", request.name), None)
            })?;
        let connections = match self.connections(&tenant, &offered.plugin).await {
            Ok(ids) => ids,
            Err(Bind::Ambiguous(why)) => {
                return Ok(CallToolResult::error(vec![ContentBlock::text(why)]).into());
            }
            Err(Bind::Store(e)) => {
                tracing::error!(error = %format!("{e:#}"), "internal error");
                return Err(ErrorData::internal_error("internal error", None));
            }
        };
        let body = NewStepBody {
            plugin: offered.plugin,
            call: offered.call,
            input: Value::Object(request.arguments.unwrap_or_default()),
            connections,
        };
        let (step, replayed) = match tenant_step(self.app.clone(), tenant, key, body).await {
            Ok(answered) => answered,
            Err(problem) => {
                let text = problem.detail().to_owned();
                return Ok(CallToolResult::error(vec![ContentBlock::text(text)]).into());
            }
        };
        let mut result = if step.outcome == "success" {
            CallToolResult::structured(step.result)
        } else {
            CallToolResult::structured_error(step.result)
        };
        let mut meta = MetaObject::new();
        meta.insert("courier/step-id".into(), Value::String(step.id));
        if replayed {
            meta.insert("courier/idempotent-replayed".into(), Value::Bool(true));
        }
        result.meta = Some(meta);
        Ok(result.into())
    }
}
