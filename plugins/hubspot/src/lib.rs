//! HubSpot CRM contacts: search and create
//! (<https://developers.hubspot.com/docs/api/crm/contacts>). The host holds
//! the app's OAuth 2 client and the account's refresh token, and obtains
//! and renews access tokens at HubSpot's token endpoint
//! (<https://developers.hubspot.com/docs/api/oauth/refresh-access-token>).

use std::collections::BTreeMap;

use courier_sdk::prelude::*;

/// The connection the operator binds: one HubSpot account through an app.
const CONNECTION: &str = "hubspot";

/// The contact properties returned when the input names none.
const DEFAULT_PROPERTIES: [&str; 4] = ["email", "firstname", "lastname", "company"];

fn plugin() -> Plugin {
    Plugin::new("hubspot", env!("CARGO_PKG_VERSION"))
        .description("HubSpot CRM contacts")
        .connection(
            Connection::new(CONNECTION)
                .description(
                    "A HubSpot account: the app's `client_id` and `client_secret`, and the \
                     account's `refresh_token`",
                )
                .base_url("https://api.hubapi.com")
                .auth(Auth::Oauth2RefreshToken(
                    OAuth2::new()
                        .token_url("https://api.hubapi.com/oauth/v1/token")
                        .client_auth(ClientAuth::Body),
                ))
                // 100 requests per 10 seconds per app and account
                // (https://developers.hubspot.com/docs/api/usage-details).
                .rate(100, 10),
        )
        .call(search_contacts::call())
        .call(create_contact::call())
}

courier_sdk::export!(plugin);

/// `POST /crm/v3/objects/contacts/search`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct SearchContacts {
    /// Conditions that must all hold.
    filters: Vec<Filter>,
    /// Properties to return (default email, firstname, lastname, company).
    #[serde(default)]
    properties: Vec<String>,
    /// Contacts per page, 1 to 200 (default 100).
    #[serde(default = "default_limit")]
    #[schemars(range(min = 1, max = 200))]
    limit: u32,
    /// The `after` of a previous search, for its next page.
    #[serde(default)]
    after: Option<String>,
}

fn default_limit() -> u32 {
    100
}

/// One condition on a property.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct Filter {
    /// The property's internal name (`email`, `lifecyclestage`).
    property_name: String,
    /// How it compares.
    operator: Operator,
    /// The value compared with (absent for `HAS_PROPERTY`, `NOT_HAS_PROPERTY`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    value: Option<String>,
}

/// HubSpot's filter operators.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
enum Operator {
    /// Equal to.
    Eq,
    /// Not equal to.
    Neq,
    /// Less than.
    Lt,
    /// Less than or equal to.
    Lte,
    /// Greater than.
    Gt,
    /// Greater than or equal to.
    Gte,
    /// Has a value.
    HasProperty,
    /// Has no value.
    NotHasProperty,
    /// Contains this word.
    ContainsToken,
    /// Does not contain this word.
    NotContainsToken,
}

/// `POST /crm/v3/objects/contacts`.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CreateContact {
    /// Property values by internal name (`email`, `firstname`, …).
    properties: BTreeMap<String, String>,
}

/// A contact.
#[derive(Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
struct Contact {
    /// Its id.
    id: String,
    /// The requested properties (`null` when unset).
    properties: BTreeMap<String, Option<String>>,
    /// Creation time (ISO 8601).
    created_at: String,
    /// Last change (ISO 8601).
    updated_at: String,
}

/// One page of search results.
#[derive(Serialize, JsonSchema)]
struct Found {
    /// How many contacts match in all.
    total: u64,
    /// This page's contacts.
    contacts: Vec<Contact>,
    /// Pass as `after` for the next page; absent on the last.
    after: Option<String>,
}

/// Finds contacts whose properties match every filter; one page.
#[call(data, title = "Search contacts")]
fn search_contacts(input: SearchContacts) -> Result<Found, StepError> {
    #[derive(Deserialize)]
    struct Page {
        total: u64,
        results: Vec<Contact>,
        #[serde(default)]
        paging: Option<Value>,
    }
    let properties = if input.properties.is_empty() {
        DEFAULT_PROPERTIES.map(str::to_owned).to_vec()
    } else {
        input.properties
    };
    let mut body = json!({
        "filterGroups": [{"filters": input.filters}],
        "properties": properties,
        "limit": input.limit,
    });
    if let Some(after) = input.after {
        body["after"] = after.into();
    }
    let page: Page = send(Request::post("/crm/v3/objects/contacts/search").json(&body))?;
    let after = page
        .paging
        .as_ref()
        .and_then(|p| p.pointer("/next/after"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    Ok(Found {
        total: page.total,
        contacts: page.results,
        after,
    })
}

/// Creates a contact with the given properties.
#[call(action, title = "Create contact")]
fn create_contact(input: CreateContact) -> Result<Contact, StepError> {
    let body = json!({"properties": input.properties});
    send(Request::post("/crm/v3/objects/contacts").json(&body))
}

/// Sends `request` on the HubSpot connection and reads the JSON answer; a
/// status outside 2xx fails the step with HubSpot's `category` and
/// `message` (<https://developers.hubspot.com/docs/api/error-handling>).
fn send<T: serde::de::DeserializeOwned>(request: Request) -> Result<T, StepError> {
    let response = request.connection(CONNECTION).send()?;
    if response.is_success() {
        return response.json();
    }
    let body: Value = response.json().unwrap_or(Value::Null);
    let text = |field: &str| body.get(field).and_then(Value::as_str).unwrap_or("");
    let message = format!(
        "HubSpot answered {} {}: {}",
        response.status(),
        text("category"),
        text("message")
    );
    Err(StepError::Http {
        status: response.status(),
        message,
        output: Some(body),
    })
}
