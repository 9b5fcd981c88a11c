//! The `shopify` plugin against a mock of Shopify's Admin GraphQL API
//! written from its docs (Shopify publishes a GraphQL schema, not an
//! OpenAPI document): <https://shopify.dev/docs/api/admin-graphql> (one
//! `POST /admin/api/VERSION/graphql.json` with a JSON body of `query`,
//! `variables`, `operationName`),
//! <https://shopify.dev/docs/api/usage/authentication#making-authenticated-requests>
//! (`X-Shopify-Access-Token`) and
//! <https://shopify.dev/docs/api/usage/rate-limits#graphql-admin-api-rate-limits>
//! (a connection costs 2 plus the objects asked for; `extensions.cost` with
//! `throttleStatus`; `THROTTLED` when the bucket holds less than the cost).
//! The query text is parsed by `graphql-parser`, an independent parser.

use std::sync::{Arc, Mutex};

use courier_host::{FailureKind, Outcome};
use courier_tests::{Received, Reply, TestServer};
use graphql_parser::query::{Definition, OperationDefinition, Selection, parse_query};
use serde_json::{Value, json};

use super::host_for;
use crate::auth::assert_no_leak;
use crate::step;

const BASE: &str = "https://courier-test.myshopify.com";
const TOKEN: &str = "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";

fn connection() -> String {
    format!(
        "connection = 'shopify'\nbase_url = '{BASE}/admin/api/2025-07'\n[secrets]\nkey = '{TOKEN}'"
    )
}

/// The root field the operation named `name` (or the only one) selects first.
fn root_field(query: &str, name: Option<&str>) -> Result<String, String> {
    let document = parse_query::<String>(query).map_err(|e| e.to_string())?;
    let operations = document.definitions.iter().filter_map(|d| match d {
        Definition::Operation(op) => Some(op),
        Definition::Fragment(_) => None,
    });
    for op in operations {
        let (op_name, selection) = match op {
            OperationDefinition::Query(q) => (q.name.as_deref(), &q.selection_set),
            OperationDefinition::Mutation(m) => (m.name.as_deref(), &m.selection_set),
            OperationDefinition::SelectionSet(s) => (None, s),
            OperationDefinition::Subscription(_) => continue,
        };
        if (name.is_none() || name == op_name)
            && let Some(Selection::Field(field)) = selection.items.first()
        {
            return Ok(field.name.clone());
        }
    }
    Err(format!("no operation named {name:?}"))
}

/// Shopify's GraphQL endpoint for a shop whose bucket holds `size` points
/// and restores 50 a second (the standard plan's rate).
fn shopify(size: f64) -> impl Fn(&Received) -> Reply + Send + Sync + 'static {
    let available = Arc::new(Mutex::new(size));
    move |r: &Received| {
        if r.header("x-shopify-access-token") != Some(TOKEN) {
            return Reply::json(
                401,
                json!({"errors": "[API] Invalid API key or access token (unrecognized login or wrong password)"}),
            );
        }
        let documented = r.method == "POST"
            && r.uri == "/admin/api/2025-07/graphql.json"
            && r.header("content-type") == Some("application/json");
        let Some(body) = serde_json::from_slice::<Value>(&r.body)
            .ok()
            .filter(|_| documented)
        else {
            return Reply::json(
                400,
                json!({"errors": {"query": "Required parameter missing or invalid"}}),
            );
        };
        let field = root_field(
            body["query"].as_str().unwrap_or(""),
            body["operationName"].as_str(),
        );
        let (data, requested, actual) = match field.as_deref() {
            Ok("products") => {
                let first = body["variables"]["first"].as_u64().unwrap_or(0) as usize;
                let nodes: Vec<Value> = (1..=3)
                    .take(first)
                    .map(|n| json!({"id": format!("gid://shopify/Product/{n}"), "title": format!("Product {n}"),
                                    "handle": format!("product-{n}"), "status": "ACTIVE"}))
                    .collect();
                let end = nodes.len();
                let data = json!({"products": {"nodes": nodes,
                    "pageInfo": {"hasNextPage": end < 3, "endCursor": format!("cursor-{end}")}}});
                (data, 2.0 + first as f64, 2.0 + end as f64)
            }
            Ok("shop") => (json!({"shop": {"name": "Courier Test Shop"}}), 1.0, 1.0),
            Ok(other) => {
                return Reply::json(
                    200,
                    json!({"errors": [{"message": format!("Field '{other}' doesn't exist on type 'QueryRoot'")}]}),
                );
            }
            Err(e) => {
                return Reply::json(
                    200,
                    json!({"errors": [{"message": format!("Parse error: {e}")}]}),
                );
            }
        };
        let mut available = available.lock().unwrap();
        let status = |left: f64| json!({"maximumAvailable": size, "currentlyAvailable": left, "restoreRate": 50.0});
        if requested > *available {
            return Reply::json(
                200,
                json!({
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED",
                            "documentation": "https://shopify.dev/api/usage/rate-limits"}}],
                "extensions": {"cost": {"requestedQueryCost": requested, "actualQueryCost": null,
                                        "throttleStatus": status(*available)}}}),
            );
        }
        *available -= actual;
        Reply::json(
            200,
            json!({"data": data, "extensions": {"cost": {
            "requestedQueryCost": requested, "actualQueryCost": actual, "throttleStatus": status(*available)}}}),
        )
    }
}

#[tokio::test]
async fn list_products_sends_a_parseable_query_with_the_token_header_and_reports_its_cost() {
    let server = TestServer::start(shopify(1000.0)).await;
    let host = host_for("shopify", BASE, server.addr).await;
    let r = step(
        &host,
        "shopify",
        "list_products",
        json!({"first": 2}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    assert_eq!(output["products"][1]["handle"], "product-2");
    assert_eq!(output["end_cursor"], "cursor-2");
    assert_eq!(output["cost"]["requestedQueryCost"], 4.0);
    assert_eq!(
        output["cost"]["throttleStatus"]["currentlyAvailable"],
        996.0
    );
    let sent: Value = serde_json::from_slice(&server.received()[0].body).unwrap();
    assert_eq!(sent["variables"], json!({"first": 2, "after": null}));
    assert_eq!(sent["operationName"], "Products");
    assert_no_leak(&r, &[TOKEN]);

    let r = step(
        &host,
        "shopify",
        "list_products",
        json!({"first": 5, "after": "cursor-2"}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.unwrap()["end_cursor"],
        Value::Null,
        "the last page"
    );
}

#[tokio::test]
async fn a_query_over_the_cost_bucket_fails_with_limit_and_says_when_it_fits() {
    // A bucket of 200: 100 products cost 102 up front, 5 in the end (3
    // were returned), leaving 195; 250 products cost 252, 57 points short
    // at 50 a second.
    let server = TestServer::start(shopify(200.0)).await;
    let host = host_for("shopify", BASE, server.addr).await;
    let r = step(
        &host,
        "shopify",
        "list_products",
        json!({"first": 100}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.unwrap()["cost"]["throttleStatus"]["currentlyAvailable"],
        195.0
    );
    let r = step(
        &host,
        "shopify",
        "list_products",
        json!({"first": 250}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::MaxConnection, "{r:?}");
    assert_eq!(r.failure_kind(), Some(FailureKind::Limit));
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("costs 252 points, 195 of 200 are available")
            && message.contains("in 1.1 s"),
        "{message}"
    );
}

#[tokio::test]
async fn graphql_runs_any_operation_and_names_graphql_errors() {
    let server = TestServer::start(shopify(1000.0)).await;
    let host = host_for("shopify", BASE, server.addr).await;
    let input = json!({"query": "query Name { shop { name } } query Other { products(first: 1) { nodes { id } } }",
                       "operation_name": "Name"});
    let r = step(&host, "shopify", "graphql", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.unwrap()["data"],
        json!({"shop": {"name": "Courier Test Shop"}})
    );

    let r = step(
        &host,
        "shopify",
        "graphql",
        json!({"query": "{ shop { name }"}),
        &[&connection()],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert!(
        r.error
            .unwrap()
            .message
            .contains("Shopify answered GraphQL errors: Parse error")
    );
}
