//! OAuth 2 grants end to end: a local token server that counts requests, an
//! API server that checks the bearer token, and the token manager between
//! them (caching, single-flight refresh, rotation, 401 replay, failures).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use courier_host::Outcome;
use courier_tests::{Received, Reply, TestServer, form_pairs, host_builder, host_with};
use serde_json::json;

use crate::auth::{CANARY, assert_no_leak};
use crate::step;

const CLIENT_SECRET: &str = CANARY;

/// A token server issuing `access-token-1`, `access-token-2`, … with `expires_in` from `lifetime(n)`.
async fn token_server(lifetime: impl Fn(usize) -> u64 + Send + Sync + 'static) -> TestServer {
    let issued = AtomicUsize::new(0);
    TestServer::start(move |_| {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(200, json!({"access_token": format!("access-token-{n}"), "token_type": "Bearer", "expires_in": lifetime(n)}))
    })
    .await
}

/// An API that answers 200 and echoes the token it got.
async fn api() -> TestServer {
    TestServer::start(|r| Reply::json(200, json!({"auth": r.header("authorization")}))).await
}

/// `GET /me` through the generic plugin with this connection file.
async fn get_me(host: &courier_host::Host, connection: &str) -> courier_host::StepResult {
    step(
        host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[connection],
    )
    .await
}

fn form(r: &Received) -> Vec<(String, String)> {
    form_pairs(&r.body)
}

fn client_credentials(api: &TestServer, tokens: &TestServer, extra: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'oauth2-client-credentials'\ntoken_url = '{}'\n{extra}\n\
         [secrets]\nclient_id = 'app-1'\nclient_secret = '''{CLIENT_SECRET}'''",
        api.url(""),
        tokens.url("/oauth/token")
    )
}

#[tokio::test]
async fn client_credentials_with_basic_client_auth_is_cached() {
    let (tokens, api) = (token_server(|_| 3600).await, api().await);
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = client_credentials(
        &api,
        &tokens,
        "scopes = ['read', 'write']\naudience = 'https://api.test'",
    );
    for n in 0..2 {
        let r = get_me(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(
            r.output.as_ref().unwrap()["body"]["auth"],
            "Bearer [REDACTED]"
        );
        assert_no_leak(&r, &[CLIENT_SECRET, "access-token-1"]);
        // The token request is listed first in the step that made it, and
        // marked as the host's.
        let listed: Vec<(&str, &str, bool)> = r
            .requests
            .iter()
            .map(|q| (q.method.as_str(), q.url.as_str(), q.token_request))
            .collect();
        let token_url = tokens.url("/oauth/token");
        let me = api.url("/me");
        let expected = if n == 0 {
            vec![
                ("POST", token_url.as_str(), true),
                ("GET", me.as_str(), false),
            ]
        } else {
            vec![("GET", me.as_str(), false)]
        };
        assert_eq!(listed, expected, "step {n}");
    }
    let got = tokens.received();
    assert_eq!(got.len(), 1, "the second step reuses the cached token");
    let basic = format!(
        "Basic {}",
        STANDARD.encode(format!(
            "app-1:{}",
            form_urlencoded::byte_serialize(CLIENT_SECRET.as_bytes()).collect::<String>()
        ))
    );
    assert_eq!(got[0].method, "POST");
    assert_eq!(got[0].header("authorization"), Some(basic.as_str()));
    assert_eq!(
        form(&got[0]),
        vec![
            ("grant_type".into(), "client_credentials".into()),
            ("scope".into(), "read write".into()),
            ("audience".into(), "https://api.test".into())
        ]
    );
    assert!(
        api.received()
            .iter()
            .all(|r| r.header("authorization") == Some("Bearer access-token-1"))
    );
}

#[tokio::test]
async fn token_requests_count_toward_the_step_request_limit() {
    let (tokens, api) = (token_server(|_| 3600).await, api().await);
    let conn = client_credentials(&api, &tokens, "");
    let limited = |n| {
        let limits = courier_host::Limits {
            max_requests_per_step: n,
            ..courier_host::Limits::default()
        };
        host_with(host_builder().limits(limits), &["http-request"])
    };
    let host = limited(1).await;
    let r = get_me(&host, &conn).await;
    assert_eq!(
        r.outcome,
        Outcome::MaxConnection,
        "the request and its token request are two: {r:?}"
    );
    assert!(
        r.error
            .as_ref()
            .unwrap()
            .message
            .contains("limit of 1 requests"),
        "{r:?}"
    );
    assert_eq!(
        (tokens.received().len(), api.received().len()),
        (0, 0),
        "nothing was sent"
    );

    let host = limited(2).await;
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.requests.len(), 2);
    assert_eq!((tokens.received().len(), api.received().len()), (1, 1));
}

#[tokio::test]
async fn client_auth_in_the_body_and_expired_tokens_are_renewed() {
    // 20 s is within the expiry skew: every step needs a new token.
    let (tokens, api) = (token_server(|_| 20).await, api().await);
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = client_credentials(&api, &tokens, "client_auth = 'body'");
    for _ in 0..2 {
        let r = get_me(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    let got = tokens.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].header("authorization"), None);
    assert_eq!(
        form(&got[0]),
        vec![
            ("grant_type".into(), "client_credentials".into()),
            ("client_id".into(), "app-1".into()),
            ("client_secret".into(), CLIENT_SECRET.into())
        ]
    );
    assert_eq!(
        api.received()[1].header("authorization"),
        Some("Bearer access-token-2")
    );
}

#[tokio::test]
async fn fifty_concurrent_steps_on_an_expired_token_make_one_token_request() {
    let (tokens, api) = (
        token_server(|n| if n == 1 { 1 } else { 3600 }).await,
        api().await,
    );
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = Arc::new(client_credentials(&api, &tokens, ""));
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/warm"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let mut steps = tokio::task::JoinSet::new();
    for i in 0..50 {
        let (host, conn) = (host.clone(), conn.clone());
        steps.spawn(async move {
            step(
                &host,
                "http-request",
                "request",
                json!({"url": format!("/n/{i}")}),
                &[&conn],
            )
            .await
        });
    }
    while let Some(r) = steps.join_next().await {
        let r = r.unwrap();
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    assert_eq!(
        tokens.received().len(),
        2,
        "one request for the first token, exactly one to renew it"
    );
    let renewed = api
        .received()
        .iter()
        .filter(|r| r.header("authorization") == Some("Bearer access-token-2"))
        .count();
    assert_eq!(renewed, 50);
}

#[tokio::test]
async fn a_rotated_refresh_token_is_used_next_time() {
    let issued = AtomicUsize::new(0);
    let tokens = TestServer::start(move |_| {
        let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
        Reply::json(200, json!({"access_token": format!("access-token-{n}"), "expires_in": 1, "refresh_token": format!("refresh-token-{}", n + 1)}))
    })
    .await;
    let api = api().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'oauth2-refresh-token'\ntoken_url = '{}'\nclient_auth = 'body'\n\
         [secrets]\nclient_id = 'app-1'\nrefresh_token = 'refresh-token-1'",
        api.url(""),
        tokens.url("/token")
    );
    for _ in 0..3 {
        let r = get_me(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_no_leak(
            &r,
            &["refresh-token-1", "refresh-token-2", "refresh-token-3"],
        );
    }
    let sent: Vec<Vec<(String, String)>> = tokens.received().iter().map(form).collect();
    for (i, form) in sent.iter().enumerate() {
        assert!(
            form.contains(&("grant_type".into(), "refresh_token".into())),
            "{form:?}"
        );
        assert!(
            form.contains(&("refresh_token".into(), format!("refresh-token-{}", i + 1))),
            "{form:?}"
        );
    }
    assert_eq!(sent.len(), 3);
}

#[tokio::test]
async fn password_grant_sends_the_owner_credentials() {
    let (tokens, api) = (token_server(|_| 3600).await, api().await);
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'oauth2-password'\ntoken_url = '{}'\nscopes = ['all']\n\
         [secrets]\nclient_id = 'app-1'\nclient_secret = 'client-secret-9'\nusername = 'ada'\npassword = '''{CANARY}'''",
        api.url(""),
        tokens.url("/token")
    );
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        form(&tokens.received()[0]),
        vec![
            ("grant_type".into(), "password".into()),
            ("username".into(), "ada".into()),
            ("password".into(), CANARY.into()),
            ("scope".into(), "all".into())
        ]
    );
    assert_eq!(
        api.received()[0].header("authorization"),
        Some("Bearer access-token-1")
    );
    assert_no_leak(&r, &[CANARY, "access-token-1"]);
}

#[tokio::test]
async fn a_401_renews_the_token_and_replays_once() {
    let tokens = token_server(|_| 3600).await;
    let api = TestServer::start(|r| match r.header("authorization") {
        Some("Bearer access-token-2") => Reply::json(200, json!({"ok": true})),
        _ => Reply::json(401, json!({"error": "expired"})),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = client_credentials(&api, &tokens, "");
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!((tokens.received().len(), api.received().len()), (2, 2));
    let listed: Vec<(&str, Option<u16>)> = r
        .requests
        .iter()
        .map(|q| (q.method.as_str(), q.status))
        .collect();
    let expected = [
        ("POST", Some(200)),
        ("GET", Some(401)),
        ("POST", Some(200)),
        ("GET", Some(200)),
    ];
    assert_eq!(
        listed, expected,
        "token requests and both attempts, in order"
    );

    // An API that always refuses: one replay, then the 401 goes to the plugin.
    let (tokens, api) = (
        token_server(|_| 3600).await,
        TestServer::start(|_| Reply::json(401, json!({}))).await,
    );
    let conn = client_credentials(&api, &tokens, "");
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(r.status, Some(401));
    assert_eq!((tokens.received().len(), api.received().len()), (2, 2));
}

#[tokio::test]
async fn a_refused_refresh_is_a_credential_error_and_needs_reauthorization() {
    let tokens = TestServer::start(|_| {
        Reply::json(
            400,
            json!({"error": "invalid_grant", "error_description": CANARY}),
        )
    })
    .await;
    let api = api().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nid = 'crm-7'\nbase_url = '{}'\nauth = 'oauth2-refresh-token'\ntoken_url = '{}'\n\
         [secrets]\nclient_id = 'app-1'\nclient_secret = 'client-secret-9'\nrefresh_token = '''{CANARY}'''",
        api.url(""),
        tokens.url("/token")
    );
    assert_eq!(host.needs_reauthorization("test", "crm-7"), None);
    for _ in 0..2 {
        let r = get_me(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Error, "{r:?}");
        let e = r.error.as_ref().unwrap();
        assert_eq!(e.kind, "credential", "{e:?}");
        assert_no_leak(&r, &[CANARY]);
    }
    assert_eq!(
        tokens.received().len(),
        1,
        "a connection needing re-authorization is not retried"
    );
    assert_eq!(api.received().len(), 0);
    assert_eq!(host.needs_reauthorization("test", "crm-7"), Some(true));
}

#[tokio::test]
async fn token_endpoints_obey_the_egress_policy() {
    let api = api().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'oauth2-client-credentials'\ntoken_url = 'http://10.1.2.3/token'\n\
         [secrets]\nclient_id = 'app-1'\nclient_secret = 'client-secret-9'",
        api.url("")
    );
    let r = get_me(&host, &conn).await;
    let e = r.error.as_ref().unwrap();
    assert_eq!(e.kind, "credential", "{e:?}");
    assert!(
        e.message.contains("denied") && e.message.contains("10.1.2.3"),
        "{e:?}"
    );
    assert_eq!(api.received().len(), 0);
}

/// RFC 6749 §2.2: a client id is not a secret. A short numeric one is sent as
/// given and never scrubbed, so the API's data that happens to contain it
/// (inside a number, a word, a header) reaches the plugin unchanged and the
/// JSON body stays JSON; the client secret and the access token are scrubbed.
#[tokio::test]
async fn a_client_id_is_an_identifier_and_data_holding_it_is_untouched() {
    let tokens = token_server(|_| 3600).await;
    let api = TestServer::start(|r| {
        let mut reply = Reply::json(
            200,
            json!({"id": 912345678, "client": "12345", "word": "a12345b", "auth": r.header("authorization")}),
        );
        reply.headers.push(("x-request-id".into(), "req-12345".into()));
        reply
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn =
        client_credentials(&api, &tokens, "client_auth = 'body'").replace("'app-1'", "'12345'");
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        form(&tokens.received()[0]).contains(&("client_id".into(), "12345".into())),
        "the client id is sent as given"
    );
    let out = r.output.as_ref().unwrap();
    assert_eq!(out["body"]["id"], 912345678, "{out}");
    assert_eq!(out["body"]["client"], "12345");
    assert_eq!(out["body"]["word"], "a12345b");
    assert_eq!(out["body"]["auth"], "Bearer [REDACTED]");
    assert_eq!(out["headers"]["x-request-id"], "req-12345");
    assert_eq!(out["headers"]["content-type"], "application/json");
    assert_no_leak(&r, &[CLIENT_SECRET, "access-token-1"]);
}

/// A secret too short to scrub without hitting unrelated text is refused
/// when the connection is bound, naming the key; nothing is sent.
#[tokio::test]
async fn a_secret_too_short_to_scrub_is_refused_at_binding() {
    let (tokens, api) = (token_server(|_| 3600).await, api().await);
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = client_credentials(&api, &tokens, "").replace(CLIENT_SECRET, "s3cr3t");
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let e = r.error.unwrap();
    assert_eq!(e.kind, "invalid-step");
    assert!(
        e.message
            .contains("secret `client_secret` is shorter than 8 characters"),
        "{}",
        e.message
    );
    assert!(!e.message.contains("s3cr3t"), "{}", e.message);
    assert_eq!(tokens.connections() + api.connections(), 0);
}

/// A token endpoint issuing a token too short to scrub fails the step with a
/// `credential` error; the API is never called with it.
#[tokio::test]
async fn an_issued_token_too_short_to_scrub_is_a_credential_error() {
    let tokens =
        TestServer::start(|_| Reply::json(200, json!({"access_token": "abc", "expires_in": 60})))
            .await;
    let api = api().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = client_credentials(&api, &tokens, "");
    let r = get_me(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().kind, "credential", "{r:?}");
    assert_eq!(api.connections(), 0);
}
