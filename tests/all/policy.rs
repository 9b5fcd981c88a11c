//! Egress policy: denials are typed and nothing reaches the target.

use courier_host::{Host, Outcome};
use courier_tests::{TestServer, host_with};
use serde_json::json;

use crate::step;

#[tokio::test]
async fn loopback_is_refused_unless_the_operator_allows_it() {
    let server = TestServer::echo().await;
    let builder = Host::builder().allow_host("http://*:*".parse().unwrap());
    let host = host_with(builder, &["http-request"]).await;
    for url in [server.url("/"), format!("http://localhost:{}/", server.addr.port()), format!("http://0x7f.0.0.1:{}/", server.addr.port())] {
        let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
        assert_eq!(r.outcome, Outcome::Denied, "{url}: {r:?}");
        assert_eq!(r.error.unwrap().kind, "denied");
    }
    assert_eq!(server.connections(), 0, "the target must see no connection");
}

#[tokio::test]
async fn hosts_outside_the_operator_allowlist_are_denied() {
    let server = TestServer::echo().await;
    let builder = Host::builder()
        .allow_host("https://api.example.com".parse().unwrap())
        .allow_network("127.0.0.1/32".parse().unwrap());
    let host = host_with(builder, &["http-request"]).await;
    let r = step(&host, "http-request", "request", json!({"url": server.url("/")}), &[]).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("operator"));
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn no_allowlist_means_nothing_is_reachable() {
    let server = TestServer::echo().await;
    let host = host_with(Host::builder().allow_network("127.0.0.1/32".parse().unwrap()), &["http-request"]).await;
    let r = step(&host, "http-request", "request", json!({"url": server.url("/")}), &[]).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert_eq!(server.connections(), 0);
}

#[tokio::test]
async fn redirect_to_a_refused_address_is_denied() {
    let server = TestServer::start(|_| courier_tests::Reply {
        status: 302,
        headers: vec![("location".into(), "http://169.254.169.254/latest/meta-data".into())],
        body: vec![],
    })
    .await;
    let host = host_with(courier_tests::host_builder(), &["http-request"]).await;
    let r = step(&host, "http-request", "request", json!({"url": server.url("/")}), &[]).await;
    assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    assert!(r.error.unwrap().message.contains("link-local"));
}
