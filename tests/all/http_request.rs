//! The generic `http-request` plugin against a real server.

use courier_host::Outcome;
use courier_tests::{Reply, TestServer, form_pairs, host_builder, host_with};
use serde_json::json;

use crate::step;

#[tokio::test]
async fn get_sends_repeated_query_keys_and_headers() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": server.url("/items?fixed=1"),
        "params": [["tag", "a"], ["tag", "b c"], ["n", "1"]],
        "headers": {"X-Trace": "t-1", "Accept": "application/json"},
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let got = &server.received()[0];
    assert_eq!(got.method, "GET");
    assert_eq!(
        got.query(),
        [("fixed", "1"), ("tag", "a"), ("tag", "b c"), ("n", "1")]
            .map(|(k, v)| (k.to_string(), v.to_string()))
    );
    assert_eq!(got.header("x-trace"), Some("t-1"));
    let out = r.output.unwrap();
    assert_eq!(out["status"], 200);
    assert_eq!(
        out["body"]["method"], "GET",
        "a JSON response body is parsed: {out}"
    );
    assert_eq!(out["headers"]["content-type"], "application/json");
    assert_eq!(r.requests.len(), 1);
    assert_eq!(r.requests[0].status, Some(200));
}

#[tokio::test]
async fn post_json_arrives_as_json() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let body = json!({"name": "Ada", "tags": ["x", "y"], "n": 3});
    let input =
        json!({"url": server.url("/json"), "method": "post", "body": body, "body_type": "json"});
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let got = &server.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let arrived: serde_json::Value = serde_json::from_slice(&got.body).unwrap();
    assert_eq!(arrived, body);
}

#[tokio::test]
async fn post_form_keeps_repeated_and_bracketed_keys() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": server.url("/form"),
        "method": "POST",
        "body_type": "form",
        "body": {"metadata[order_id]": "6735", "item": ["a", "b"], "note": "x&y=z"},
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let got = &server.received()[0];
    assert_eq!(
        got.header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    let pairs = form_pairs(&got.body);
    let want: Vec<(String, String)> = [
        ("metadata[order_id]", "6735"),
        ("item", "a"),
        ("item", "b"),
        ("note", "x&y=z"),
    ]
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .into();
    assert_eq!(pairs, want, "in the input's order");
}

/// Objects keep the order their JSON text wrote: the raw query string and
/// form body the server received, byte for byte, for an input given to
/// `courier run` as text (keys deliberately not sorted).
#[tokio::test]
async fn params_and_form_objects_keep_their_input_order_to_the_wire() {
    let server = TestServer::echo().await;
    let input = format!(
        r#"{{"url": "{}", "method": "POST", "params": {{"zeta": 1, "alpha": ["x", true], "mid": 2.5}},
            "body_type": "form", "body": {{"z": "1", "b": "2", "a": "3"}}}}"#,
        server.url("/order")
    );
    let plugin = courier_tests::plugin("http-request");
    let out = tokio::task::spawn_blocking(move || {
        crate::cli::courier()
            .arg("run")
            .arg(plugin)
            .args(["request", "--input", &input])
            .args(["--allow-network", "127.0.0.1/32"])
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let got = &server.received()[0];
    assert_eq!(got.uri, "/order?zeta=1&alpha=x&alpha=true&mid=2.5");
    assert_eq!(got.body, b"z=1&b=2&a=3");
}

#[tokio::test]
async fn text_body_and_non_json_response() {
    let server = TestServer::start(|r| Reply {
        status: 201,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: format!("got {} bytes", r.body.len()).into_bytes(),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input =
        json!({"url": server.url("/t"), "method": "PUT", "body": "hello", "body_type": "text"});
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.received()[0].header("content-type"),
        Some("text/plain; charset=utf-8")
    );
    let out = r.output.unwrap();
    assert_eq!(out["status"], 201);
    assert_eq!(out["body"], "got 5 bytes");
    assert_eq!(out["body_base64"], false);
}

#[tokio::test]
async fn non_2xx_is_an_http_error_with_the_response_in_output() {
    let server = TestServer::start(|_| Reply::json(404, json!({"error": "no such thing"}))).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/missing")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(r.status, Some(404));
    let out = r.output.expect("the response stays in output");
    assert_eq!(out["status"], 404);
    assert_eq!(out["body"]["error"], "no such thing");
}

/// Response bodies reach the output as the upstream sent them: JSON as the
/// same value (escapes, numbers, nesting), text byte for byte
/// whatever it needs escaping, across the plugin's word-at-a-time escaper.
#[tokio::test]
async fn json_and_text_bodies_arrive_in_the_output_unchanged() {
    let json_text =
        r#"{"z":1,"a":[1.5,-0,1e3,12345678901234567890,{"\u00e9\"":"\ud83e\udd80\n"}],"m":null}"#;
    let text: String = (0u8..0x80)
        .map(char::from)
        .chain("é漢字🦀 \"q\" \\".chars())
        .cycle()
        .take(5000)
        .collect();
    let (json_reply, text_reply) = (json_text.to_owned(), text.clone());
    let server = TestServer::start(move |r| {
        let (kind, body) = if r.uri == "/json" {
            ("application/json", &json_reply)
        } else {
            ("text/plain; charset=utf-8", &text_reply)
        };
        Reply {
            status: 200,
            headers: vec![("content-type".into(), kind.into())],
            body: body.clone().into_bytes(),
        }
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/json")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let expected: serde_json::Value = serde_json::from_str(json_text).unwrap();
    let output = r.output.unwrap();
    assert_eq!(output["body"], expected);
    assert_eq!(output["body_base64"], false);
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/text")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output.unwrap()["body"].as_str(), Some(text.as_str()));
}

#[tokio::test]
async fn binary_response_is_base64_with_a_flag() {
    let server = TestServer::start(|_| Reply {
        status: 200,
        headers: vec![("content-type".into(), "application/octet-stream".into())],
        body: vec![0xff, 0x00, 0xfe, 0x01],
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/bin")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["body_base64"], true);
    assert_eq!(out["body"], "/wD+AQ==");
}

#[tokio::test]
async fn relative_url_joins_the_connection_base_url() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'",
        server.url("/api/v2/")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/users/7?x=1"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received()[0].uri, "/api/v2/users/7?x=1");
}

#[tokio::test]
async fn redirects_are_followed_within_the_origin() {
    let server = TestServer::start(|r| match r.uri.as_str() {
        "/old" => Reply {
            status: 302,
            headers: vec![("location".into(), "/new".into())],
            body: vec![],
        },
        _ => Reply::json(200, json!({"at": r.uri})),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/old")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["body"]["at"], "/new");
    assert_eq!(out["url"], server.url("/new"));
    assert_eq!(r.requests.len(), 2, "each hop is recorded");

    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/old"), "follow_location": false}),
        &[],
    )
    .await;
    assert_eq!(r.status, Some(302), "{r:?}");
}

#[tokio::test]
async fn invalid_input_is_an_error_before_any_request() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/"), "method": "BREW"}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "invalid-input");
    assert_eq!(server.connections(), 0);
}
