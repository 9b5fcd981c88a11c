//! Python (componentize-py, `guest-sdk/python`) and JavaScript
//! (componentize-js, `guest-sdk/js`) plugins through the real host:
//! `http-request-py` and `http-request-js` answer as the Rust `http-request`
//! does (the Rust plugin is the oracle, run side by side on the same server),
//! the host's credentials stay out of their results, the SDKs' retry
//! policies, idempotency keys, pagination, GraphQL, multipart and `send-all`
//! send what the Rust SDK sends, and the `hostile-py` and `hostile-js`
//! fixtures' attempts each cost one step, never the host.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use courier_host::{Host, Limits, Outcome, StepResult};
use courier_tests::{
    Received, Reply, TestServer, echo_reply, host_builder, host_with, multipart_parts,
};
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
        _ => echo_reply(r),
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

/// A server for the SDK features: `/fail-first/N` answers 503 to the first
/// N-1 of every N requests to its URI and 200 to the Nth, `/always/503`
/// answers 503, `/pages` serves the items 1 to 5 in cursor pages (`cursor`,
/// `limit`, the next cursor at `next`), anything else `{"ok": true}`.
async fn feature_server() -> TestServer {
    let seen = Mutex::new(HashMap::<String, usize>::new());
    TestServer::start(move |r| {
        let path = r.uri.split('?').next().unwrap();
        let param = |name: &str| {
            r.query()
                .into_iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v)
        };
        if let Some(n) = path.strip_prefix("/fail-first/") {
            let mut seen = seen.lock().unwrap();
            let count = seen.entry(r.uri.clone()).or_default();
            *count += 1;
            if !count.is_multiple_of(n.parse().unwrap()) {
                return Reply::json(503, json!({"error": "try again"}));
            }
        } else if path == "/always/503" {
            return Reply::json(503, json!({"error": "down"}));
        } else if path == "/pages" {
            let start: usize = param("cursor").map_or(0, |c| c.parse().unwrap());
            let limit: usize = param("limit").unwrap().parse().unwrap();
            let end = (start + limit).min(5);
            let next = (end < 5).then(|| end.to_string());
            return Reply::json(
                200,
                json!({"items": (start + 1..=end).collect::<Vec<_>>(), "next": next}),
            );
        }
        Reply::json(200, json!({"ok": true}))
    })
    .await
}

/// What the server saw of one request, in a form two SDKs must agree on:
/// the multipart boundary is replaced by the parsed parts, and a key the
/// host generated by its shape.
fn seen(r: &Received) -> Value {
    let content_type = r.header("content-type").unwrap_or_default();
    let body = if content_type.starts_with("multipart/form-data") {
        let parts = multipart_parts(content_type, &r.body);
        json!(
            parts
                .iter()
                .map(|p| json!([p.name, p.filename, p.content_type, p.data]))
                .collect::<Vec<_>>()
        )
    } else {
        json!(String::from_utf8_lossy(&r.body))
    };
    let key = r.header("idempotency-key").map(|key| {
        if is_uuid_v4(key) {
            "a fresh version 4 UUID".to_owned()
        } else {
            key.to_owned()
        }
    });
    json!({"method": r.method, "uri": r.uri, "content-type": content_type.split(';').next(),
           "idempotency-key": key, "body": body})
}

/// Whether `key` is a lowercase version 4 UUID (RFC 9562: the version digit
/// 4, the variant bits 10).
fn is_uuid_v4(key: &str) -> bool {
    let groups: Vec<&str> = key.split('-').collect();
    groups.iter().map(|g| g.len()).eq([8, 4, 4, 4, 12])
        && groups
            .iter()
            .all(|g| g.chars().all(|c| matches!(c, '0'..='9' | 'a'..='f')))
        && groups[2].starts_with('4')
        && groups[3].starts_with(['8', '9', 'a', 'b'])
}

#[tokio::test]
async fn python_sdk_features_send_what_the_rust_sdk_sends() {
    sdk_features_send_what_the_rust_sdk_sends("http-request-py").await;
}

#[tokio::test]
async fn javascript_sdk_features_send_what_the_rust_sdk_sends() {
    sdk_features_send_what_the_rust_sdk_sends("http-request-js").await;
}

/// Retry policies, idempotency keys, pagination, GraphQL and multipart
/// bodies through each SDK, with the Rust `http-request` (the Rust SDK) as
/// the oracle: the same inputs give the same results, and the server sees
/// the same requests, attempts and pages; and the response cache.
async fn sdk_features_send_what_the_rust_sdk_sends(plugin: &str) {
    let server = feature_server().await;
    let host = host_with(host_builder(), &["http-request", plugin]).await;
    let retry = json!({"attempts": 3, "backoff": {"initial": 0, "max": 0}, "statuses": [503]});
    let cursor = json!({"type": "cursor", "cursor_path_in_response": "next",
                        "cursor_name_in_request": "cursor", "response_path": "items",
                        "limit_name_in_request": "limit", "limit": 2});
    let mut capped = cursor.clone();
    capped["max_pages"] = json!(2);
    let cases = [
        // A GET is retried until the third attempt answers.
        (
            json!({"url": server.url("/fail-first/3?m=get"), "retry": retry}),
            3,
        ),
        // A POST with a key is retried, the key on every attempt ...
        (
            json!({"url": server.url("/fail-first/3?m=post"), "method": "POST", "body": {"n": 1},
                "idempotency_key": "order-7", "retry": retry}),
            3,
        ),
        // ... and without one it is not.
        (
            json!({"url": server.url("/always/503"), "method": "POST", "body": {"n": 1},
                "retry": retry}),
            1,
        ),
        (
            json!({"url": server.url("/key"), "method": "POST", "body": [], "idempotency_key": true}),
            1,
        ),
        (json!({"url": server.url("/pages"), "paginate": cursor}), 3),
        (json!({"url": server.url("/pages"), "paginate": capped}), 2),
        (
            json!({"url": server.url("/graphql"), "method": "POST", "body_type": "graphql",
                "body": {"query": "query Q($id: ID!) { node(id: $id) { id } }",
                         "variables": {"id": "n1", "deep": {"é": [1, null]}}, "operation_name": "Q"}}),
            1,
        ),
        (
            json!({"url": server.url("/upload"), "method": "POST", "body_type": "multipart",
                "body": [{"name": "title", "value": "héllo"},
                         {"name": "file", "value": "AAEC/w==", "encoding": "base64",
                          "filename": "a.png", "content_type": "image/png"},
                         {"name": "notes", "value": "6869", "encoding": "hex", "filename": "n.txt"}]}),
            1,
        ),
        (
            json!({"url": server.url("/x"), "paginate": {"type": "page", "cursor_name_in_request": "c"}}),
            0,
        ),
        (
            json!({"url": server.url("/x"), "paginate": {"type": "cursor", "limit": 2,
                "cursor_path_in_response": "next", "cursor_name_in_request": "cursor",
                "limit_name_in_request": "limit", "max_pages": 0}}),
            0,
        ),
    ];
    for (input, sent) in cases {
        let before = server.received().len();
        let rust = step(&host, "http-request", "request", input.clone(), &[]).await;
        let middle = server.received().len();
        let other = step(&host, plugin, "request", input.clone(), &[]).await;
        let received = server.received();
        assert_eq!(
            comparable(&other),
            comparable(&rust),
            "input {input}\n{plugin}: {other:?}\nrust: {rust:?}"
        );
        let (by_rust, by_other) = (&received[before..middle], &received[middle..]);
        assert_eq!(by_rust.len(), sent, "input {input}: {rust:?}");
        let seen_all = |requests: &[Received]| requests.iter().map(seen).collect::<Vec<_>>();
        assert_eq!(seen_all(by_other), seen_all(by_rust), "input {input}");
    }
    // The response cache: each plugin's second GET of its own URL is a hit
    // that never reaches the server.
    for by in ["http-request", plugin] {
        let input = json!({"url": server.url(&format!("/cached?by={by}")), "cache": {"ttl": 60}});
        let mut marks = Vec::new();
        for _ in 0..2 {
            let r = step(&host, by, "request", input.clone(), &[]).await;
            assert_eq!(r.outcome, Outcome::Success, "{by}: {r:?}");
            marks.push(r.requests[0].cache.clone());
        }
        assert_eq!(marks, [Some("miss".into()), Some("hit".into())], "{by}");
        let uri = format!("/cached?by={by}");
        assert_eq!(
            server.received().iter().filter(|r| r.uri == uri).count(),
            1,
            "{by}"
        );
    }
}

#[tokio::test]
async fn a_send_all_batch_answers_as_the_rust_sdk_does() {
    let server = feature_server().await;
    let host = host_with(host_builder(), &["misbehave", "hostile-py", "hostile-js"]).await;
    // Answers, a failure status, a URL the host cannot parse and an address
    // policy denies: one result each, in input order.
    let urls = json!([
        server.url("/a"),
        server.url("/always/503"),
        "not a url",
        "http://192.0.2.1:9/",
        server.url("/b")
    ]);
    let rust = step(&host, "misbehave", "batch", json!({"urls": urls}), &[]).await;
    assert_eq!(rust.outcome, Outcome::Success, "{rust:?}");
    let expected = rust.output.unwrap();
    assert_eq!(expected[1], json!({"status": 503}));
    assert!(
        expected[2]["error"].is_string() && expected[3]["error"].is_string(),
        "{expected}"
    );
    for plugin in ["hostile-py", "hostile-js"] {
        let r = step(&host, plugin, "batch", json!({"urls": urls}), &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{plugin}: {r:?}");
        assert_eq!(r.output.unwrap(), expected, "{plugin}");
    }
    let mut uris: Vec<String> = server.received().into_iter().map(|r| r.uri).collect();
    uris.sort();
    assert_eq!(
        uris,
        [
            "/a",
            "/a",
            "/a",
            "/always/503",
            "/always/503",
            "/always/503",
            "/b",
            "/b",
            "/b"
        ]
    );
}
