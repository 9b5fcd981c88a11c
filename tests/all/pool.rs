//! The cap on connections per origin: a request that finds no free slot
//! within the short wait ends the step with `max-connection`.

use std::time::Duration;

use courier_host::{ClientSettings, Outcome};
use courier_tests::{Stall, TestServer, host_builder, host_with, stalling_server};
use serde_json::json;

use crate::step;

#[tokio::test]
async fn an_exhausted_origin_ends_the_step_with_max_connection() {
    let server = stalling_server(Stall::AfterRequest).await;
    let other = TestServer::echo().await;
    let settings = ClientSettings {
        max_connections_per_origin: 1,
        connection_wait: Duration::from_millis(100),
        ..ClientSettings::default()
    };
    let host = host_with(host_builder().client_settings(settings), &["http-request"]).await;
    let url = format!("http://{}/held", server.addr);

    let first = tokio::spawn({
        let (host, url) = (host.clone(), url.clone());
        async move { step(&host, "http-request", "request", json!({"url": url}), &[]).await }
    });
    server.request_arrived().await;

    let r = step(&host, "http-request", "request", json!({"url": url}), &[]).await;
    assert_eq!(r.outcome, Outcome::MaxConnection, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "limit");

    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": other.url("/free")}),
        &[],
    )
    .await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "another origin has its own slots: {r:?}"
    );

    first.abort();
    let _ = first.await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": other.url("/again")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn idle_connections_are_reused_then_closed() {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    for _ in 0..3 {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": server.url("/")}),
            &[],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    assert_eq!(server.connections(), 1, "steps share the pooled connection");

    let settings = ClientSettings {
        pool_idle_timeout: Duration::from_millis(50),
        ..ClientSettings::default()
    };
    let host = host_with(host_builder().client_settings(settings), &["http-request"]).await;
    let server = TestServer::echo().await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    // Wait well past the idle timeout (the pool's timer checks periodically).
    tokio::time::sleep(Duration::from_millis(600)).await;
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": server.url("/")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        server.connections(),
        2,
        "the idle connection was closed, a new one opened"
    );
}
