//! httpbin (PyPI) as a real third-party peer, served on 127.0.0.1.

use base64::Engine as _;
use courier_host::{Host, Limits, Outcome, StepResult};
use courier_tests::{Httpbin, host_builder, host_with};
use serde_json::{Value, json};

use crate::step;

async fn host() -> Host {
    host_with(host_builder(), &["http-request"]).await
}

async fn request(host: &Host, input: Value) -> StepResult {
    step(host, "http-request", "request", input, &[]).await
}

fn body(r: &StepResult) -> &Value {
    &r.output
        .as_ref()
        .unwrap_or_else(|| panic!("no output: {r:?}"))["body"]
}

#[tokio::test]
async fn anything_echoes_query_headers_and_every_body_kind() {
    let bin = Httpbin::get();
    let host = host().await;
    let r = request(
        &host,
        json!({
            "url": bin.url("/anything/path"), "method": "PATCH",
            "params": [["tag", "a"], ["tag", "b c"]],
            "headers": {"X-Trace": "t-1"},
            "body": {"amount": 1200, "nested": {"ok": true}},
        }),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let echo = body(&r);
    assert_eq!(echo["method"], "PATCH");
    assert_eq!(echo["args"]["tag"], json!(["a", "b c"]));
    assert_eq!(echo["headers"]["X-Trace"], "t-1");
    assert_eq!(
        echo["json"],
        json!({"amount": 1200, "nested": {"ok": true}})
    );

    let r = request(
        &host,
        json!({
            "url": bin.url("/anything"), "method": "POST", "body_type": "form",
            "body": {"metadata[order_id]": "6735", "item": ["x", "y"]},
        }),
    )
    .await;
    assert_eq!(
        body(&r)["form"],
        json!({"metadata[order_id]": "6735", "item": ["x", "y"]}),
        "{r:?}"
    );

    let r = request(&host, json!({
        "url": bin.url("/anything"), "method": "PUT", "body_type": "multipart",
        "body": [
            {"name": "purpose", "value": "evidence"},
            {"name": "file", "filename": "a.txt", "content_type": "text/plain", "value": "aGVsbG8=", "encoding": "base64"},
        ],
    }))
    .await;
    let echo = body(&r);
    assert_eq!(echo["form"]["purpose"], "evidence", "{r:?}");
    assert_eq!(echo["files"]["file"], "hello");
    assert!(
        echo["headers"]["Content-Type"]
            .as_str()
            .unwrap()
            .starts_with("multipart/form-data; boundary=")
    );
}

#[tokio::test]
async fn status_codes_become_http_errors() {
    let bin = Httpbin::get();
    let host = host().await;
    for status in [418, 503] {
        let r = request(&host, json!({"url": bin.url(&format!("/status/{status}"))})).await;
        assert_eq!(
            (r.outcome, r.status),
            (Outcome::HttpError, Some(status)),
            "{r:?}"
        );
    }
    let r = request(
        &host,
        json!({"url": bin.url("/status/204"), "method": "DELETE"}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn redirects_relative_and_absolute() {
    let bin = Httpbin::get();
    let host = host().await;
    let target = bin.url("/anything/landed");
    let r = request(
        &host,
        json!({
            "url": bin.url("/redirect-to"), "method": "POST",
            "params": {"url": target, "status_code": 307}, "body": {"kept": true},
        }),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        (body(&r)["method"].clone(), body(&r)["json"].clone()),
        (json!("POST"), json!({"kept": true})),
        "307 keeps method and body"
    );
    assert_eq!(r.output.as_ref().unwrap()["url"], target);

    let r = request(&host, json!({"url": bin.url("/redirect-to"), "method": "POST", "params": {"url": target, "status_code": 303}, "body": {"dropped": true}})).await;
    assert_eq!(
        (body(&r)["method"].clone(), body(&r)["json"].clone()),
        (json!("GET"), Value::Null),
        "303 becomes a body-less GET"
    );

    let r = request(&host, json!({"url": bin.url("/absolute-redirect/3")})).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.requests.len(), 4, "three hops and the target: {r:?}");
    assert_eq!(r.output.as_ref().unwrap()["url"], bin.url("/get"));

    let limits = Limits {
        max_redirects: 2,
        ..Limits::default()
    };
    let strict = host_with(host_builder().limits(limits), &["http-request"]).await;
    let r = request(&strict, json!({"url": bin.url("/absolute-redirect/3")})).await;
    assert_eq!(
        r.error.unwrap().kind,
        "protocol",
        "too many hops is a typed error"
    );
}

#[tokio::test]
async fn gzip_deflate_and_brotli_are_decoded() {
    let bin = Httpbin::get();
    let host = host().await;
    for (path, flag) in [
        ("/gzip", "gzipped"),
        ("/deflate", "deflated"),
        ("/brotli", "brotli"),
    ] {
        let r = request(&host, json!({"url": bin.url(path)})).await;
        assert_eq!(r.outcome, Outcome::Success, "{path}: {r:?}");
        assert_eq!(body(&r)[flag], true, "{path}: {r:?}");
        assert_eq!(body(&r)["headers"]["Accept-Encoding"], "gzip, deflate, br");
    }
}

#[tokio::test]
async fn delay_beyond_the_timeout_is_a_total_timeout() {
    let bin = Httpbin::get();
    let host = host().await;
    let r = request(&host, json!({"url": bin.url("/delay/3"), "timeout": 0.5})).await;
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert_eq!(r.error.unwrap().message, "total");
    let r = request(&host, json!({"url": bin.url("/delay/0")})).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn basic_and_bearer_auth_from_the_connection_and_scrubbed() {
    let bin = Httpbin::get();
    let host = host().await;
    let basic = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'basic'\n[secrets]\nusername = 'courier-user'\npassword = 'pw-9f8e7d6c5b4a'",
        bin.url("/")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/basic-auth/courier-user/pw-9f8e7d6c5b4a"}),
        &[&basic],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(body(&r)["authenticated"], true);
    let everything = serde_json::to_string(&r.output).unwrap();
    assert!(
        !everything.contains("pw-9f8e7d6c5b4a"),
        "the password is scrubbed, even from the echoed URL: {everything}"
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/basic-auth/courier-user/other"}),
        &[&basic],
    )
    .await;
    assert_eq!(r.status, Some(401), "{r:?}");

    const TOKEN: &str = "tok_live_0123456789abcdef";
    let bearer = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{TOKEN}'",
        bin.url("/")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/bearer"}),
        &[&bearer],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(body(&r)["authenticated"], true);
    assert!(
        !serde_json::to_string(&r.output).unwrap().contains(TOKEN),
        "httpbin echoes the token; it must be scrubbed"
    );
    let r = request(&host, json!({"url": bin.url("/bearer")})).await;
    assert_eq!(r.status, Some(401), "no connection, no token: {r:?}");
}

#[tokio::test]
async fn response_headers_and_bytes() {
    let bin = Httpbin::get();
    let host = host().await;
    let r = request(&host, json!({"url": bin.url("/response-headers"), "params": [["X-Custom", "one"], ["X-Custom", "two"]]})).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.as_ref().unwrap()["headers"]["x-custom"],
        "one, two"
    );

    let r = request(
        &host,
        json!({"url": bin.url("/bytes/2048"), "params": {"seed": 7}}),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["body_base64"], true);
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(out["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(bytes.len(), 2048);

    let limits = Limits {
        max_response_bytes: 1000,
        ..Limits::default()
    };
    let small = host_with(host_builder().limits(limits), &["http-request"]).await;
    let r = request(&small, json!({"url": bin.url("/bytes/2048")})).await;
    assert_eq!(r.error.unwrap().kind, "too-large");
}

#[tokio::test]
async fn a_batch_runs_concurrently_and_answers_in_input_order() {
    let bin = Httpbin::get();
    let host = host_with(host_builder(), &["misbehave"]).await;
    // The first request is the slowest: sequential sending would take 3 × 0.5 s,
    // and answers in completion order would put it last.
    let urls = [
        bin.url("/delay/0.5"),
        bin.url("/status/201"),
        bin.url("/delay/0.5"),
        bin.url("/status/202"),
        bin.url("/delay/0.5"),
    ];
    let started = std::time::Instant::now();
    let r = step(&host, "misbehave", "batch", json!({"urls": urls}), &[]).await;
    let took = started.elapsed();
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let statuses: Vec<Value> = r
        .output
        .unwrap()
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["status"].clone())
        .collect();
    assert_eq!(
        statuses,
        [json!(200), json!(201), json!(200), json!(202), json!(200)]
    );
    assert!(
        took < std::time::Duration::from_millis(1400),
        "the batch ran concurrently: {took:?}"
    );
}
