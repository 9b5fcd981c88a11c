//! Python plugins (componentize-py, `guest-sdk/python`) through the real
//! host: `http-request-py` answers as the Rust `http-request` does (the Rust
//! plugin is the oracle, run side by side on the same server), the host's
//! credentials stay out of its result, and the `hostile-py` fixture's
//! attempts each cost one step, never the host.

use std::time::{Duration, Instant};

use courier_host::{Host, Limits, Outcome, StepResult};
use courier_tests::{Reply, TestServer, echo_json, host_builder, host_with};
use serde_json::{Value, json};

use crate::step;

/// A server that echoes requests as JSON, answers `/missing` with 404 and
/// `/bytes` with bytes that are not UTF-8.
async fn server() -> TestServer {
    TestServer::start(|r| match r.uri.split('?').next() {
        Some("/missing") => Reply::json(404, json!({"error": "no such thing"})),
        Some("/bytes") => Reply {
            status: 200,
            headers: vec![("content-type".into(), "application/octet-stream".into())],
            body: vec![0xff, 0x00, 0xfe, b'a'],
        },
        _ => {
            let mut reply = Reply::json(200, echo_json(r));
            if let Some(auth) = r.header("authorization") {
                reply
                    .headers
                    .push(("x-echo-authorization".into(), auth.into()));
            }
            reply
        }
    })
    .await
}

/// A step's result with the parts that differ between two runs (time,
/// the `date` header) removed.
fn comparable(r: &StepResult) -> Value {
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
    let server = server().await;
    let host = host_with(host_builder(), &["http-request", "http-request-py"]).await;
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
        let python = step(&host, "http-request-py", "request", input.clone(), &[]).await;
        assert_eq!(
            comparable(&python),
            comparable(&rust),
            "input {input}\npython: {python:?}\nrust: {rust:?}"
        );
    }
    // What the server received: the same requests, in pairs.
    let received = server.received();
    assert_eq!(received.len(), 16, "two plugins, eight inputs sent");
    for pair in received.chunks(2) {
        let [rust, python] = pair else { unreachable!() };
        assert_eq!(
            (&python.method, &python.uri, &python.body),
            (&rust.method, &rust.uri, &rust.body)
        );
        for name in ["content-type", "x-trace", "x-a"] {
            assert_eq!(python.header(name), rust.header(name), "{name}");
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
    let server = server().await;
    let host = host_with(host_builder(), &["http-request-py"]).await;
    let connection = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'",
        server.url("/v1")
    );
    let r = step(
        &host,
        "http-request-py",
        "request",
        json!({"url": "/me"}),
        &[&connection],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
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

/// A host with the hostile fixture, checked to answer before and after.
async fn hostile() -> Host {
    let host = host_with(host_builder().limits(hostile_limits()), &["hostile-py"]).await;
    assert_still_serves(&host).await;
    host
}

async fn assert_still_serves(host: &Host) {
    let ok = step(host, "hostile-py", "ok", json!({}), &[]).await;
    assert_eq!(ok.outcome, Outcome::Success, "{ok:?}");
    assert_eq!(ok.output.unwrap(), json!({"ok": true}));
}

#[tokio::test]
async fn a_python_endless_loop_ends_at_the_deadline() {
    let host = hostile().await;
    let started = Instant::now();
    let r = step(&host, "hostile-py", "spin", json!({}), &[]).await;
    let took = started.elapsed();
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(took >= Duration::from_millis(1500), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn a_python_memory_hog_hits_the_limit() {
    let host = hostile().await;
    let r = step(&host, "hostile-py", "hog", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let err = r.error.unwrap();
    assert_eq!(err.kind.to_string(), "memory", "{err:?}");
    assert_still_serves(&host).await;
}

#[tokio::test]
async fn python_gets_no_socket_file_or_environment() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host has an environment"
    );
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    let host = hostile().await;

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
    assert_still_serves(&host).await;
}
