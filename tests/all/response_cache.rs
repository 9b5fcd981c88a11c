//! The response cache end to end: the real `http-request` plugin with
//! `cache`, a real server on 127.0.0.1 that counts what reaches it (the
//! oracle of a hit: nothing arrives).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use courier_host::{ConnectionConfig, Host, Outcome, StepRequest, StepResult};
use courier_tests::{Reply, TestServer, host_builder, host_with};
use serde_json::json;

/// A server answering `{"n": <request number>}` with these headers.
async fn numbered(headers: &'static [(&'static str, &'static str)]) -> TestServer {
    let n = Arc::new(AtomicU32::new(0));
    TestServer::start(move |_| {
        let mut reply = Reply::json(200, json!({"n": n.fetch_add(1, Ordering::SeqCst) + 1}));
        reply
            .headers
            .extend(headers.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        reply
    })
    .await
}

fn connection(server: &TestServer, token: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{token}'",
        server.url("")
    )
}

async fn cached_step(host: &Host, tenant: &str, connection: &str) -> StepResult {
    let config: ConnectionConfig = toml::from_str(connection).unwrap();
    host.run_step(StepRequest {
        tenant: tenant.into(),
        plugin: "http-request".into(),
        call: "request".into(),
        input: json!({"url": "/things", "cache": {"ttl": 60}}),
        connections: vec![config.into()],
    })
    .await
}

#[tokio::test]
async fn a_cached_get_is_answered_without_reaching_the_server() {
    let server = numbered(&[]).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let file = connection(&server, "cache-test-token-one");
    let first = cached_step(&host, "t", &file).await;
    assert_eq!(first.outcome, Outcome::Success, "{first:?}");
    assert_eq!(first.requests[0].cache.as_deref(), Some("miss"));
    let second = cached_step(&host, "t", &file).await;
    assert_eq!(second.outcome, Outcome::Success, "{second:?}");
    assert_eq!(second.output.unwrap()["body"], json!({"n": 1}));
    assert_eq!(second.requests[0].cache.as_deref(), Some("hit"));
    assert_eq!(server.received().len(), 1);
    let record = serde_json::to_value(&second.requests[0]).unwrap();
    assert_eq!(record["cache"], "hit");
}

#[tokio::test]
async fn another_tenant_or_credential_is_never_served_the_entry() {
    let server = numbered(&[]).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let one = connection(&server, "cache-test-token-one");
    let two = connection(&server, "cache-test-token-two");
    let n = |r: StepResult| r.output.unwrap()["body"]["n"].as_u64().unwrap();
    assert_eq!(n(cached_step(&host, "t", &one).await), 1);
    assert_eq!(n(cached_step(&host, "t", &two).await), 2, "another token");
    assert_eq!(n(cached_step(&host, "u", &one).await), 3, "another tenant");
    assert_eq!(
        n(cached_step(&host, "t", &one).await),
        1,
        "the first entry still"
    );
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn no_store_is_fetched_every_time() {
    let server = numbered(&[("cache-control", "no-store")]).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let file = connection(&server, "cache-test-token-one");
    for _ in 0..2 {
        let r = cached_step(&host, "t", &file).await;
        assert_eq!(r.requests[0].cache.as_deref(), Some("miss"));
    }
    assert_eq!(server.received().len(), 2);
}
