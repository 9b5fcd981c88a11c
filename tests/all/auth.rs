//! Every static auth scheme end to end: the upstream receives the credential
//! exactly where the scheme puts it, and the plugin never sees it.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use courier_host::{ConnectionConfig, Outcome, StepResult};
use courier_tests::{Reply, TestServer, echo_json, form_pairs, host_builder, host_with};
use serde_json::json;

use crate::step;

/// A secret the tests look for in everything the plugin and the caller get back.
pub(crate) const CANARY: &str = "cnry-Zq9/x+7 \"k\\ey\"=&%";

/// Every form of `secret` an upstream might echo.
pub(crate) fn encodings(secret: &str) -> Vec<String> {
    let b = secret.as_bytes();
    let json = serde_json::to_string(secret).unwrap();
    vec![
        secret.to_owned(),
        STANDARD.encode(b),
        URL_SAFE.encode(b),
        URL_SAFE_NO_PAD.encode(b),
        percent_encoding::utf8_percent_encode(secret, percent_encoding::NON_ALPHANUMERIC)
            .to_string(),
        form_urlencoded::byte_serialize(b).collect(),
        json[1..json.len() - 1].to_owned(),
    ]
}

/// Fails if any encoding of any secret appears in the step result.
pub(crate) fn assert_no_leak(result: &StepResult, secrets: &[&str]) {
    let everything = serde_json::to_string(result).unwrap();
    for secret in secrets {
        for form in encodings(secret) {
            assert!(
                !everything.contains(&form),
                "`{form}` (a form of a secret) leaked: {everything}"
            );
        }
    }
}

fn custom(base: &str, placement: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'custom'\n{placement}\n[secrets]\nkey = '''{CANARY}'''"
    )
}

#[tokio::test]
async fn custom_header_template_and_query() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = custom(
        &server.url(""),
        "header = 'Authorization'\ntemplate = 'Token {secret}'",
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/h"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(format!("Token {CANARY}").as_str())
    );
    assert_eq!(
        r.output.as_ref().unwrap()["headers"]["x-echo-authorization"],
        "Token [REDACTED]"
    );
    assert_no_leak(&r, &[CANARY]);

    let conn = custom(&server.url(""), "query = 'sig'\ntemplate = 'v1:{secret}'");
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/q", "params": {"a": "1"}}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[1].query(),
        vec![
            ("a".into(), "1".into()),
            ("sig".into(), format!("v1:{CANARY}"))
        ]
    );
    assert_eq!(r.output.as_ref().unwrap()["url"], server.url("/q?a=1"));
    assert_no_leak(&r, &[CANARY]);
}

#[tokio::test]
async fn custom_form_and_json_fields_are_filled_in_by_the_host() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = custom(&server.url(""), "form_field = 'api_secret'");
    let input =
        json!({"url": "/f", "method": "POST", "body": {"amount": "5"}, "body_type": "form"});
    let r = step(&host, "http-request", "request", input, &[&conn]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        form_pairs(&server.received()[0].body),
        vec![
            ("amount".into(), "5".into()),
            ("api_secret".into(), CANARY.into())
        ]
    );
    assert_no_leak(&r, &[CANARY]);

    let conn = custom(
        &server.url(""),
        "json_field = 'auth'\ntemplate = 'k={secret}'",
    );
    let input = json!({"url": "/j", "method": "POST", "body": {"n": 1}});
    let r = step(&host, "http-request", "request", input, &[&conn]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let sent: serde_json::Value = serde_json::from_slice(&server.received()[1].body).unwrap();
    assert_eq!(sent, json!({"n": 1, "auth": format!("k={CANARY}")}));
    assert_no_leak(&r, &[CANARY]);

    // A JSON field needs a JSON object body; the plugin may not set the field itself.
    let input = json!({"url": "/j", "method": "POST", "body": "plain", "body_type": "text"});
    let r = step(&host, "http-request", "request", input, &[&conn]).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("invalid-request"),
        "{r:?}"
    );
    let input = json!({"url": "/j", "method": "POST", "body": {"auth": "mine"}});
    let r = step(&host, "http-request", "request", input, &[&conn]).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("invalid-request"),
        "{r:?}"
    );
    assert_eq!(server.received().len(), 2);
}

#[tokio::test]
async fn several_placements_with_their_own_secrets() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'custom'\n\
         [[placements]]\ntarget = 'header'\nname = 'X-Client'\nsecret = 'client_id'\n\
         [[placements]]\ntarget = 'header'\nname = 'X-Signature'\ntemplate = 'sig {{secret}}'\nsecret = 'client_secret'\n\
         [secrets]\nclient_id = 'cid-12345'\nclient_secret = '''{CANARY}'''",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/m"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let got = &server.received()[0];
    assert_eq!(got.header("x-client"), Some("cid-12345"));
    assert_eq!(
        got.header("x-signature"),
        Some(format!("sig {CANARY}").as_str())
    );
    assert_no_leak(&r, &[CANARY, "cid-12345"]);

    // The plugin may not set a header the connection places its secret in.
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/m", "headers": {"x-signature": "x"}}),
        &[&conn],
    )
    .await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("invalid-request"),
        "{r:?}"
    );
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn shared_headers_and_query_of_the_connection_are_sent() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n\
         [shared_headers]\nX-Org = 'acme'\n[shared_query]\nregion = 'eu'",
        server.url("")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/s"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received()[0].header("x-org"), Some("acme"));
    assert_eq!(
        server.received()[0].query(),
        vec![("region".into(), "eu".into())]
    );
}

/// Steps binding the same connection file share one binding; any change to
/// the file (a rotated token, another base URL) binds afresh, so the upstream
/// always receives the file's current credential, and one step's secrets are
/// scrubbed for the next even though the binding is shared.
#[tokio::test]
async fn a_changed_connection_file_is_bound_afresh() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let bearer = |token: &str| {
        format!(
            "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{token}'",
            server.url("")
        )
    };
    for (i, token) in ["tok-first-1", "tok-first-1", "tok-rotated-2", "tok-first-1"]
        .into_iter()
        .enumerate()
    {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": format!("/{i}")}),
            &[&bearer(token)],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert_eq!(
            server.received()[i].header("authorization"),
            Some(format!("Bearer {token}").as_str())
        );
        assert_eq!(
            r.output.as_ref().unwrap()["headers"]["x-echo-authorization"],
            "Bearer [REDACTED]"
        );
        assert_no_leak(&r, &[token]);
    }
    let other = TestServer::echo().await;
    let moved = bearer("tok-first-1").replace(&server.url(""), &other.url(""));
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/moved"}),
        &[&moved],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        other.received()[0].header("authorization"),
        Some("Bearer tok-first-1")
    );
    assert_eq!(
        server.received().len(),
        4,
        "the old base URL got nothing more"
    );
}

#[tokio::test]
async fn an_echo_of_everything_leaks_nothing() {
    // The upstream reflects the request in headers, body, an error body and
    // a redirect Location; the secret travels in a header, the query and the body.
    let hits = std::sync::atomic::AtomicUsize::new(0);
    let server = TestServer::start(move |r| {
        let all = serde_json::to_string(&echo_json(r)).unwrap();
        match hits.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
            0 => Reply {
                status: 307,
                headers: vec![(
                    "location".into(),
                    format!("/again?{}", r.uri.split_once('?').unwrap().1),
                )],
                body: all.into_bytes(),
            },
            _ => {
                let mut reply = Reply::json(400, json!({"error": "bad request", "you_sent": all}));
                reply.headers.extend(
                    r.headers
                        .iter()
                        .map(|(k, v)| (format!("x-echo-{k}"), v.clone())),
                );
                reply.headers.push(("x-echo-uri".into(), r.uri.clone()));
                reply
            }
        }
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'custom'\n\
         [[placements]]\ntarget = 'header'\nname = 'X-Key'\nsecret = 'key'\n\
         [[placements]]\ntarget = 'query'\nname = 'k'\nsecret = 'key'\n\
         [[placements]]\ntarget = 'json-field'\nname = 'k'\nsecret = 'key'\n\
         [secrets]\nkey = '''{CANARY}'''",
        server.url("")
    );
    let input = json!({"url": "/e", "method": "POST", "body": {"q": 1}});
    let r = step(&host, "http-request", "request", input, &[&conn]).await;
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(server.received().len(), 2);
    assert_eq!(server.received()[1].header("x-key"), Some(CANARY));
    assert_no_leak(&r, &[CANARY]);
}

#[test]
fn unknown_and_misplaced_keys_are_named() {
    let err =
        toml::from_str::<ConnectionConfig>("connection = 'd'\nauth = 'bearer'\ntoken_urll = 'x'")
            .unwrap_err();
    assert!(err.to_string().contains("token_urll"), "{err}");
    let err = toml::from_str::<ConnectionConfig>("connection = 'd'\n[secrets]\napi_token = 'x'")
        .unwrap_err();
    assert!(err.to_string().contains("api_token"), "{err}");
}

/// A key the chosen scheme does not take is refused when the file is read
/// (the scheme is typed there); what only binding can check fails the step.
#[tokio::test]
async fn settings_foreign_to_the_scheme_are_refused() {
    for (conn, named) in [
        (
            "auth = 'bearer'\ntoken_url = 'https://a.test/t'\n[secrets]\ntoken = 't-long-enough'",
            "`token_url` does not apply to auth `bearer`",
        ),
        (
            "auth = 'bearer'\n[secrets]\ntoken = 't-long-enough'\nclient_secret = 's-long-enough'",
            "secret `client_secret` is not used by auth `bearer`",
        ),
        (
            "auth = 'basic'\n[secrets]\nusername = 'u'",
            "missing secret `password`",
        ),
    ] {
        let text = format!("connection = 'default'\nbase_url = 'https://a.test'\n{conn}");
        let err = toml::from_str::<ConnectionConfig>(&text).expect_err("the file is refused");
        assert!(err.to_string().contains(named), "{err} should name {named}");
    }
    let host = host_with(host_builder(), &["http-request"]).await;
    for (conn, named) in [
        (
            "auth = 'custom'\nheader = 'X-A'\ntemplate = 'no placeholder'\n[secrets]\nkey = 'k-long-enough'",
            "{secret}",
        ),
        (
            "auth = 'custom'\nheader = 'X-A'\n[secrets]\ntoken = 'k-long-enough'",
            "secret `token`",
        ),
    ] {
        let text = format!("connection = 'default'\nbase_url = 'https://a.test'\n{conn}");
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": "/"}),
            &[&text],
        )
        .await;
        let e = r.error.expect("binding fails");
        assert_eq!(e.kind, "invalid-step");
        assert!(
            e.message.contains(named),
            "{} should name {named}",
            e.message
        );
    }
}

#[tokio::test]
async fn a_plugin_cannot_set_host_owned_or_credential_names() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request", "misbehave"]).await;
    let conn = custom(&server.url(""), "query = 'sig'");
    for headers in [
        json!({"Cookie": "a=b"}),
        json!({"Proxy-Authorization": "Basic eA=="}),
        json!({"authorization": "x"}),
    ] {
        let input = json!({"url": server.url("/"), "headers": headers});
        let r = step(&host, "misbehave", "send", input, &[]).await;
        assert_eq!(
            r.error.as_ref().map(|e| e.kind.as_str()),
            Some("invalid-request"),
            "{headers}: {r:?}"
        );
    }
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/", "params": {"sig": "mine"}}),
        &[&conn],
    )
    .await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("invalid-request"),
        "{r:?}"
    );
    assert_eq!(server.connections(), 0);
}
