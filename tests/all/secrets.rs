//! Credentials reach the upstream; the plugin never sees them.

use courier_host::Outcome;
use courier_tests::{Reply, TestServer, echo_json, host_builder, host_with};
use serde_json::json;

use crate::step;

const TOKEN: &str = "tok_Sup3rSecret-9f8e7d";

fn bearer(base: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'"
    )
}

#[tokio::test]
async fn bearer_reaches_the_server_and_never_the_plugin() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&bearer(&server.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(
        !everything.contains(TOKEN),
        "the step result leaks the token: {everything}"
    );
    let out = r.output.unwrap();
    assert_eq!(
        out["headers"]["x-echo-authorization"], "Bearer [REDACTED]",
        "{out}"
    );
    assert!(
        out["body"].to_string().contains("Bearer [REDACTED]"),
        "{out}"
    );
}

#[tokio::test]
async fn encoded_echoes_are_scrubbed_too() {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    let server = TestServer::start(move |r| {
        let mut reply = Reply::json(200, echo_json(r));
        reply.headers.push(("x-b64".into(), b64.clone()));
        reply
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&bearer(&server.url("/"))],
    )
    .await;
    let out = r.output.unwrap().to_string();
    let b64 = base64::engine::general_purpose::STANDARD.encode(TOKEN);
    assert!(!out.contains(&b64) && !out.contains(TOKEN), "{out}");
}

#[tokio::test]
async fn basic_and_api_key_query_are_injected_and_scrubbed() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let basic = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'basic'\n[secrets]\nusername = 'ada'\npassword = 'pw-{TOKEN}'",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/b"}),
        &[&basic],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        server.received()[0]
            .header("authorization")
            .unwrap()
            .starts_with("Basic ")
    );
    assert!(
        !serde_json::to_string(&r).unwrap().contains("YWRh"),
        "base64 of user:pass must not leak"
    );

    let key = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'api-key'\nquery = 'api_key'\n[secrets]\nkey = '{TOKEN}'",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/k", "params": {"q": "1"}}),
        &[&key],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        server.received()[1]
            .query()
            .contains(&("api_key".into(), TOKEN.into()))
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(!everything.contains(TOKEN), "{everything}");
}

#[tokio::test]
async fn credentials_stay_home_when_the_request_goes_elsewhere() {
    let home = TestServer::echo().await;
    let other = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": other.url("/x")}),
        &[&bearer(&home.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(other.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn redirect_to_another_origin_drops_the_credential() {
    let other = TestServer::echo().await;
    let target = other.url("/landed");
    let home = TestServer::start(move |_| Reply {
        status: 307,
        headers: vec![("location".into(), target.clone())],
        body: vec![],
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/go"}),
        &[&bearer(&home.url("/"))],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(home.received()[0].header("authorization").is_some());
    assert_eq!(other.received()[0].header("authorization"), None);
}

#[tokio::test]
async fn a_plugin_cannot_set_the_authorization_header() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["misbehave"]).await;
    let input = json!({"url": server.url("/"), "headers": {"Authorization": "Bearer mine"}});
    let r = step(&host, "misbehave", "send", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "invalid-request");
    assert_eq!(server.connections(), 0);
}
