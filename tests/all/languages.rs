//! Python (componentize-py, `guest-sdk/python`) and JavaScript
//! (componentize-js, `guest-sdk/js`) plugins through the real host:
//! `http-request-py` and `http-request-js` answer as the Rust `http-request`
//! does (the Rust plugin is the oracle, run side by side on the same server),
//! the host's credentials stay out of their results, and the `hostile-py` and
//! `hostile-js` fixtures' attempts each cost one step, never the host.

use std::time::{Duration, Instant};

use courier_host::{Host, Limits, Outcome, StepResult};
use courier_tests::{Reply, TestServer, echo_reply, host_builder, host_with};
use serde_json::{Value, json};

use crate::step;

/// A server that echoes requests as JSON, answers `/missing` with 404 and
/// `/bytes` with bytes that are not UTF-8.
pub(crate) async fn server() -> TestServer {
    TestServer::start(|r| match r.uri.split('?').next() {
        Some("/missing") => Reply::json(404, json!({"error": "no such thing"})),
        Some("/bytes") => Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body: vec![0xff, 0x00, 0xfe, b'a'],
        },
        _ => echo_reply(r),
    })
    .await
}

/// A step's result with the parts that differ between two runs (time,
/// the `date` header) removed.
pub(crate) fn comparable(r: &StepResult) -> Value {
    let mut output = r.output.clone().unwrap_or(Value::Null);
    if let Some(headers) = output.get_mut("headers").and_then(Value::as_object_mut) {
        headers.remove("date");
    }
    json!({
        "outcome": r.outcome,
        "status": r.status,
        "error": r.error.as_ref().map(|e| e.kind.to_string()),
        "output": output,
        "requests": r.requests.len(),
    })
}

#[tokio::test]
async fn python_http_request_answers_as_the_rust_one() {
    answers_as_the_rust_one("http-request-py").await;
}

#[tokio::test]
async fn javascript_http_request_answers_as_the_rust_one() {
    answers_as_the_rust_one("http-request-js").await;
}

async fn answers_as_the_rust_one(plugin: &str) {
    let server = server().await;
    let host = host_with(host_builder(), &["http-request", plugin]).await;
    let inputs = [
        json!({"url": server.url("/items?fixed=1"),
               "params": [["tag", "a"], ["tag", "b c"], ["n", 1.5], ["on", true]],
               "headers": {"X-Trace": "t-1"}}),
        json!({"url": server.url("/obj"), "params": {"a": ["x", "y"], "é": "ü&="}}),
        json!({"url": server.url("/json"), "method": "post",
               "body": {"name": "Ada", "tags": ["x", "y"], "n": 3, "z": null}}),
        json!({"url": server.url("/form"), "method": "PUT", "body_type": "form",
               "body": [["metadata[id]", "7"], ["a", "1"], ["a", "2"]]}),
        json!({"url": server.url("/raw"), "method": "POST", "body_type": "raw",
               "encoding": "base64", "body": "AAEC/w==",
               "headers": [["Content-Type", "image/png"], ["X-A", "1"]]}),
        json!({"url": server.url("/text"), "method": "PATCH", "body_type": "text",
               "body": "héllo"}),
        json!({"url": server.url("/missing"), "method": "DELETE"}),
        json!({"url": server.url("/bytes")}),
        json!({"url": server.url("/x"), "method": "BREW"}),
        json!({"url": server.url("/x"), "timeout": 0}),
    ];
    for input in inputs {
        let rust = step(&host, "http-request", "request", input.clone(), &[]).await;
        let other = step(&host, plugin, "request", input.clone(), &[]).await;
        assert_eq!(
            comparable(&other),
            comparable(&rust),
            "input {input}\n{plugin}: {other:?}\nrust: {rust:?}"
        );
    }
    // What the server received: the same requests, in pairs.
    let received = server.received();
    assert_eq!(received.len(), 16, "two plugins, eight inputs sent");
    for pair in received.chunks(2) {
        let [rust, other] = pair else { unreachable!() };
        assert_eq!(
            (&other.method, &other.uri, &other.body),
            (&rust.method, &rust.uri, &rust.body)
        );
        for name in ["content-type", "x-trace", "x-a"] {
            assert_eq!(other.header(name), rust.header(name), "{name}");
        }
    }
    let form = &received[6];
    assert_eq!(
        courier_tests::form_pairs(&form.body),
        [("metadata[id]", "7"), ("a", "1"), ("a", "2")].map(|(k, v)| (k.into(), v.into()))
    );
}

const TOKEN: &str = "tok_Py7h0n-S3cret-1a2b";

#[tokio::test]
async fn the_bearer_secret_is_injected_by_the_host_and_scrubbed() {
    for plugin in ["http-request-py", "http-request-js"] {
        bearer_is_injected_and_scrubbed(plugin).await;
    }
}

async fn bearer_is_injected_and_scrubbed(plugin: &str) {
    let server = server().await;
    let host = host_with(host_builder(), &[plugin]).await;
    let connection = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'",
        server.url("/v1")
    );
    let r = step(
        &host,
        plugin,
        "request",
        json!({"url": "/me"}),
        &[&connection],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{plugin}: {r:?}");
    let got = &server.received()[0];
    assert_eq!(got.uri, "/v1/me");
    assert_eq!(
        got.header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    let everything = serde_json::to_string(&r).unwrap();
    assert!(!everything.contains(TOKEN), "leaked: {everything}");
    assert_eq!(
        r.output.unwrap()["headers"]["x-echo-authorization"],
        "Bearer [REDACTED]"
    );
}

fn hostile_limits() -> Limits {
    Limits {
        step_deadline: Duration::from_millis(1500),
        ..Limits::default()
    }
}

/// A host with a hostile fixture, checked to answer before and after.
async fn hostile(plugin: &str) -> Host {
    let host = host_with(host_builder().limits(hostile_limits()), &[plugin]).await;
    assert_still_serves(&host, plugin).await;
    host
}

async fn assert_still_serves(host: &Host, plugin: &str) {
    let ok = step(host, plugin, "ok", json!({}), &[]).await;
    assert_eq!(ok.outcome, Outcome::Success, "{ok:?}");
    assert_eq!(ok.output.unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn an_endless_loop_ends_at_the_deadline() {
    for plugin in ["hostile-py", "hostile-js"] {
        let host = hostile(plugin).await;
        let started = Instant::now();
        let r = step(&host, plugin, "spin", json!({}), &[]).await;
        let took = started.elapsed();
        assert_eq!(r.outcome, Outcome::Timeout, "{plugin}: {r:?}");
        assert!(took >= Duration::from_millis(1500), "{plugin}: {took:?}");
        assert!(took < Duration::from_secs(5), "{plugin}: {took:?}");
        assert_still_serves(&host, plugin).await;
    }
}

#[tokio::test]
async fn a_memory_hog_hits_the_limit() {
    for plugin in ["hostile-py", "hostile-js"] {
        let host = hostile(plugin).await;
        let r = step(&host, plugin, "hog", json!({}), &[]).await;
        assert_eq!(r.outcome, Outcome::Error, "{plugin}: {r:?}");
        let err = r.error.unwrap();
        assert_eq!(err.kind.to_string(), "memory", "{plugin}: {err:?}");
        assert_still_serves(&host, plugin).await;
    }
}

/// A listener on 127.0.0.1 that no connection may reach, and its port.
fn untouched_listener() -> (std::net::TcpListener, u16) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    (listener, port)
}

#[tokio::test]
async fn javascript_gets_no_fetch_or_environment() {
    let (listener, port) = untouched_listener();
    let host = hostile("hostile-js").await;
    // With `http` disabled at build time, `fetch` traps: the step fails.
    let r = step(&host, "hostile-js", "tcp", json!({"port": port}), &[]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "trap");
    assert!(listener.accept().is_err(), "a connection arrived");
    let r = step(&host, "hostile-js", "env", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.unwrap(),
        json!({"env": {}, "require": "undefined"})
    );
    assert_still_serves(&host, "hostile-js").await;
}

#[tokio::test]
async fn python_gets_no_socket_file_or_environment() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has an environment"
    );
    let (listener, port) = untouched_listener();
    let host = hostile("hostile-py").await;

    let r = step(&host, "hostile-py", "tcp", json!({"port": port}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert_ne!(out["socket"], "connected", "{out}");
    assert!(listener.accept().is_err(), "a connection arrived");

    let secret_file = courier_tests::scratch_dir("python-file").join("secret.txt");
    std::fs::write(&secret_file, "do not read").unwrap();
    let r = step(
        &host,
        "hostile-py",
        "read_file",
        json!({"path": secret_file.to_str().unwrap()}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert!(out["file"].as_str().unwrap().contains("Error"), "{out}");
    assert!(!out.to_string().contains("do not read"), "{out}");

    let r = step(&host, "hostile-py", "env", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output.unwrap()["env"], json!({}));
    assert_still_serves(&host, "hostile-py").await;
}

#[tokio::test]
async fn an_import_the_host_does_not_provide_fails_the_load_by_name() {
    let host = host_builder().build().unwrap();
    for name in [
        "wasi:http/outgoing-handler@0.2.0",
        "wasi:keyvalue/store@0.2.0-draft",
    ] {
        let err = host
            .load_plugin(&courier_tests::component_importing(name))
            .await
            .expect_err(name)
            .to_string();
        assert!(err.contains(name), "{err}");
        assert!(err.contains("may import only"), "{err}");
    }
}
