//! The OpenAPI 3.1 document, generated from the handlers' annotations
//! (`utoipa`). What every operation shares is added here once: the bearer
//! security scheme, the path parameters, and the problem answers each kind
//! of operation can give.

use utoipa::openapi::path::{Operation, Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Content, OpenApi as Document, Ref, Required};
use utoipa::{Modify, OpenApi};

use super::{api, plugins};

/// The API, as utoipa collects it.
#[derive(OpenApi)]
#[openapi(
    info(title = "Courier", description = "The `courier serve` API: tenants, plugins, connections, steps, history."),
    paths(
        api::openapi, api::metrics, api::healthz, api::readyz,
        api::create_tenant, api::list_tenants, api::create_token, api::delete_token,
        plugins::list_plugins, plugins::get_plugin, plugins::set_access,
        plugins::upload_plugin, plugins::list_versions, plugins::describe_version,
        plugins::version_diff, plugins::approve_version,
        api::list_connections, api::get_connection, api::put_connection, api::delete_connection,
        api::test_connection, api::run_step, api::list_steps, api::get_step,
    ),
    components(schemas(super::problem::Problem)),
    modifiers(&Shared),
    security(("bearer" = [])),
)]
struct ApiDoc;

/// The document served at `/openapi.json`.
pub(crate) fn document() -> Document {
    ApiDoc::openapi()
}

/// Adds what the operations share.
struct Shared;

impl Modify for Shared {
    fn modify(&self, doc: &mut Document) {
        doc.components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
            );
        for (path, item) in doc.paths.paths.iter_mut() {
            let operations = [
                item.get.as_mut(),
                item.put.as_mut(),
                item.post.as_mut(),
                item.delete.as_mut(),
            ];
            for op in operations.into_iter().flatten() {
                add_path_parameters(path, op);
                if path.starts_with("/v1/") {
                    add_problems(path, op);
                }
            }
        }
    }
}

/// Each `{name}` of the path template as a required string parameter.
fn add_path_parameters(path: &str, op: &mut Operation) {
    let names = path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'));
    let params: Vec<Parameter> = names
        .map(|name| {
            ParameterBuilder::new()
                .name(name)
                .parameter_in(ParameterIn::Path)
                .required(Required::True)
                .schema(Some(utoipa::schema!(String)))
                .build()
        })
        .collect();
    op.parameters
        .get_or_insert_with(Vec::new)
        .splice(0..0, params);
}

/// The problem answers an operation can give: every `/v1` one 401 (and 403
/// and 404 under a tenant or on admin endpoints), 400 for its parameters;
/// with a body, 413, 415 and 422.
fn add_problems(path: &str, op: &mut Operation) {
    let mut statuses = vec![
        ("400", "Malformed request or parameters"),
        ("401", "Missing or wrong token"),
        ("403", "A tenant token on an admin endpoint"),
        (
            "404",
            "No such tenant, or not the caller's, or no such thing in it",
        ),
    ];
    if op.request_body.is_some() {
        statuses.extend([
            ("413", "Body over the configured cap"),
            ("415", "Body not JSON"),
            ("422", "Unknown fields, wrong types, invalid values"),
        ]);
    }
    if path == "/v1/tenants" {
        statuses.retain(|(s, _)| *s != "404");
    }
    for (status, description) in statuses {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| {
                ResponseBuilder::new()
                    .description(description)
                    .content(
                        "application/problem+json",
                        Content::new(Some(Ref::from_schema_name("Problem"))),
                    )
                    .into()
            });
    }
}
