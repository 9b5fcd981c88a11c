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
    components(schemas(super::problem::Problem), responses(super::problem::Forbidden)),
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

/// The problem answers an operation can give, each one some request
/// reaches (`tests/all/service/coverage.rs` drives every one): 401 on every
/// `/v1` operation; 404 where the path names something; 400 where a
/// parameter or a JSON body can be malformed; with a body, 413, 415 and 422.
/// 403 is declared by the admin-only operations themselves
/// (`response = Forbidden`).
fn add_problems(path: &str, op: &mut Operation) {
    let json_body = op
        .request_body
        .as_ref()
        .is_some_and(|b| b.content.contains_key("application/json"));
    let has_parameters = op.parameters.as_ref().is_some_and(|p| !p.is_empty());
    let mut statuses = vec![("401", "Missing or wrong token")];
    if path.contains('{') {
        statuses.push((
            "404",
            "No such tenant, or not the caller's, or no such thing in it",
        ));
    }
    if has_parameters || json_body {
        statuses.push(("400", "Malformed request or parameters"));
    }
    if op.request_body.is_some() {
        statuses.extend([
            ("413", "Body over the configured cap"),
            ("415", "Body not of the documented type"),
            ("422", "Unknown fields, wrong types, invalid values"),
        ]);
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
