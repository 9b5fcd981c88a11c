//! Redirect hops: method rules, credentials left behind, https→http refused,
//! loops typed.

use courier_host::Outcome;
use courier_tests::{Reply, TestPki, TestServer, host_builder, host_with, scratch_dir};
use serde_json::json;

use crate::step;

fn redirect(status: u16, location: &str) -> Reply {
    Reply {
        status,
        headers: vec![("location".into(), location.into())],
        body: vec![],
    }
}

#[tokio::test]
async fn each_status_keeps_or_drops_method_and_body() {
    let server = TestServer::start(|r| match r.uri.strip_prefix("/from/") {
        Some(status) => redirect(status.parse().unwrap(), "/to"),
        None => Reply::json(
            200,
            json!({"method": r.method, "body": String::from_utf8_lossy(&r.body)}),
        ),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for (status, method, body) in [
        (301, "GET", ""),
        (302, "GET", ""),
        (303, "GET", ""),
        (307, "PUT", "{\"a\":1}"),
        (308, "PUT", "{\"a\":1}"),
    ] {
        let input = json!({"url": server.url(&format!("/from/{status}")), "method": "PUT", "body": {"a": 1}});
        let r = step(&host, "http-request", "request", input, &[]).await;
        assert_eq!(r.outcome, Outcome::Success, "{status}: {r:?}");
        let out = &r.output.unwrap()["body"];
        assert_eq!(
            (out["method"].as_str(), out["body"].as_str()),
            (Some(method), Some(body)),
            "{status}"
        );
    }
}

#[tokio::test]
async fn an_api_key_query_parameter_stays_with_its_origin() {
    const KEY: &str = "key_0f1e2d3c4b5a69788796a5b4";
    let other = TestServer::echo().await;
    let target = other.url("/landed?x=1");
    let home = TestServer::start(move |_| redirect(302, &target)).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'api-key'\nquery = 'api_key'\n[secrets]\nkey = '{KEY}'",
        home.url("/")
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/go"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        home.received()[0]
            .query()
            .contains(&("api_key".into(), KEY.into()))
    );
    assert_eq!(
        other.received()[0].query(),
        [("x".to_owned(), "1".to_owned())]
    );
}

#[tokio::test]
async fn https_to_http_is_refused() {
    let pki = TestPki::new("downgrade");
    let plain = TestServer::echo().await;
    let target = plain.url("/insecure");
    let secure =
        TestServer::start_tls(pki.server_config(false), move |_| redirect(302, &target)).await;
    let dir = scratch_dir("redirect-downgrade");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n[tls]\nca_file = '{}'",
        secure.https_url("/"),
        ca.display()
    );
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/start"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("https to http"));
    assert_eq!(secure.received().len(), 1);
    assert_eq!(plain.connections(), 0);
}

#[tokio::test]
async fn a_loop_is_a_typed_error() {
    let server = TestServer::start(|r| {
        if r.uri == "/a" {
            redirect(302, "/b")
        } else {
            redirect(302, "/a")
        }
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/a")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let error = r.error.unwrap();
    assert_eq!(error.kind, "protocol");
    assert!(error.message.contains("loop"), "{error:?}");
    assert_eq!(server.received().len(), 2);
}
