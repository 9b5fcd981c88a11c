//! Shopify's Admin GraphQL API
//! (<https://shopify.dev/docs/api/admin-graphql>): any query or mutation,
//! and a product list. The operator's connection holds the app's access
//! token, sent in `X-Shopify-Access-Token`
//! (<https://shopify.dev/docs/api/usage/authentication#making-authenticated-requests>),
//! and sets the shop's base URL (`https://SHOP.myshopify.com/admin/api/VERSION`).
//!
//! Shopify limits GraphQL by query cost: every answer reports it in
//! `extensions.cost` with the shop's `throttleStatus`, and a query costing
//! more than is available is answered `THROTTLED`
//! (<https://shopify.dev/docs/api/usage/rate-limits#graphql-admin-api-rate-limits>).
//! The calls return the cost with their data, and a throttled query fails
//! the step with `limit` (outcome `max-connection`), naming how long until
//! the bucket holds enough.

use courier_sdk::prelude::*;

/// The connection the operator binds: one shop's Admin API access token.
const CONNECTION: &str = "shopify";

fn plugin() -> Plugin {
    Plugin::new("shopify", env!("CARGO_PKG_VERSION"))
        .description("Shopify Admin GraphQL API")
        .allow_host("https://*.myshopify.com/admin/api/*")
        .connection(
            Connection::new(CONNECTION)
                .description(
                    "A shop: the Admin API access token as `key`, and the base URL \
                     `https://SHOP.myshopify.com/admin/api/2025-07`",
                )
                .auth(Auth::api_key_header("X-Shopify-Access-Token")),
        )
        .call(graphql::call())
        .call(list_products::call())
}

courier_sdk::export!(plugin);

/// A GraphQL operation.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Operation {
    /// The query or mutation document.
    query: String,
    /// Its variables, an object.
    #[serde(default)]
    variables: Option<serde_json::Map<String, Value>>,
    /// The operation to run when the document holds several.
    #[serde(default)]
    operation_name: Option<String>,
}

/// An operation's answer.
#[derive(Serialize, JsonSchema)]
struct Answer {
    /// The `data` Shopify returned.
    data: Value,
    /// What the query cost.
    cost: Option<Cost>,
}

/// `extensions.cost` of an answer.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Cost {
    /// The cost estimated before running.
    requested_query_cost: f64,
    /// What it cost (absent when it did not run).
    #[serde(default)]
    actual_query_cost: Option<f64>,
    /// The shop's bucket after it.
    throttle_status: ThrottleStatus,
}

/// The shop's cost bucket.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct ThrottleStatus {
    /// The bucket's size.
    maximum_available: f64,
    /// What is left in it.
    currently_available: f64,
    /// Points restored each second.
    restore_rate: f64,
}

/// Which products to list.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct ListProducts {
    /// How many, 1 to 250 (default 50).
    #[serde(default = "default_first")]
    #[schemars(range(min = 1, max = 250))]
    first: u32,
    /// The `end_cursor` of a previous list, for the next products.
    #[serde(default)]
    after: Option<String>,
}

fn default_first() -> u32 {
    50
}

/// A page of products.
#[derive(Serialize, JsonSchema)]
struct Products {
    /// The products.
    products: Vec<Product>,
    /// Pass as `after` for the next products; absent on the last page.
    end_cursor: Option<String>,
    /// What the query cost.
    cost: Option<Cost>,
}

/// A product.
#[derive(Serialize, Deserialize, JsonSchema)]
struct Product {
    /// Its global id (`gid://shopify/Product/…`).
    id: String,
    /// Its title.
    title: String,
    /// Its URL handle.
    handle: String,
    /// `ACTIVE`, `ARCHIVED` or `DRAFT`.
    status: String,
}

const PRODUCTS: &str = "query Products($first: Int!, $after: String) {
  products(first: $first, after: $after) {
    nodes { id title handle status }
    pageInfo { hasNextPage endCursor }
  }
}";

/// Runs a GraphQL query or mutation and returns its data and cost.
#[call(action, title = "GraphQL query")]
fn graphql(input: Operation) -> Result<Answer, StepError> {
    let variables = input.variables.map(Value::Object);
    run(&input.query, variables, input.operation_name.as_deref())
}

/// Lists the shop's first products, with the cursor of the next page.
#[call(data, title = "List products")]
fn list_products(input: ListProducts) -> Result<Products, StepError> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Page {
        nodes: Vec<Product>,
        page_info: PageInfo,
    }
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct PageInfo {
        has_next_page: bool,
        end_cursor: Option<String>,
    }
    let variables = json!({"first": input.first, "after": input.after});
    let answer = run(PRODUCTS, Some(variables), Some("Products"))?;
    let page: Page = serde_json::from_value(answer.data["products"].clone())?;
    Ok(Products {
        products: page.nodes,
        end_cursor: page
            .page_info
            .end_cursor
            .filter(|_| page.page_info.has_next_page),
        cost: answer.cost,
    })
}

/// Sends one operation to `graphql.json` and reads its answer: GraphQL
/// errors fail the step (a `THROTTLED` one with `limit`), with their
/// messages.
fn run(query: &str, variables: Option<Value>, name: Option<&str>) -> Result<Answer, StepError> {
    let response = Request::post("/graphql.json")
        .graphql(query, variables, name)
        .connection(CONNECTION)
        .send()?
        .error_for_status()?;
    let mut body: Value = response.json()?;
    let cost: Option<Cost> = body
        .pointer("/extensions/cost")
        .and_then(|cost| serde_json::from_value(cost.clone()).ok());
    let errors = body
        .get("errors")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    if errors.is_empty() {
        return Ok(Answer {
            data: body["data"].take(),
            cost,
        });
    }
    let code = |e: &Value| {
        e.pointer("/extensions/code")
            .and_then(Value::as_str)
            .map(str::to_owned)
    };
    if errors
        .iter()
        .any(|e| code(e).as_deref() == Some("THROTTLED"))
    {
        return Err(StepError::Send(
            SendReason::Limit(throttled(cost.as_ref())).into(),
        ));
    }
    let messages: Vec<&str> = errors
        .iter()
        .filter_map(|e| e.get("message").and_then(Value::as_str))
        .collect();
    Err(StepError::failed(format!(
        "Shopify answered GraphQL errors: {}",
        messages.join("; ")
    )))
}

/// Why a query was throttled and when the bucket holds enough for it.
fn throttled(cost: Option<&Cost>) -> String {
    let Some(cost) = cost else {
        return "Shopify throttled the query".to_owned();
    };
    let status = &cost.throttle_status;
    let missing = (cost.requested_query_cost - status.currently_available).max(0.0);
    let wait = if status.restore_rate > 0.0 {
        missing / status.restore_rate
    } else {
        f64::INFINITY
    };
    format!(
        "Shopify throttled the query: it costs {} points, {} of {} are available, {} restored a \
         second: enough again in {:.1} s",
        cost.requested_query_cost,
        status.currently_available,
        status.maximum_available,
        status.restore_rate,
        wait
    )
}
