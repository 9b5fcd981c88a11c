//! Rate budgets per connection, end to end: the real `http-request` plugin
//! and a server on 127.0.0.1 noting when each request arrives.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_host::{FailureKind, Host, Outcome, StepResult};
use courier_tests::{Reply, TestServer, host_builder, host_with};
use serde_json::json;

use crate::step;

/// A server answering its `n`-th request (from 0) with `headers(n)`, and
/// noting when each arrived.
async fn noting(
    headers: impl Fn(u32) -> Vec<(String, String)> + Send + Sync + 'static,
) -> (TestServer, Arc<Mutex<Vec<Instant>>>) {
    let n = AtomicU32::new(0);
    let arrivals = Arc::new(Mutex::new(vec![]));
    let noted = arrivals.clone();
    let server = TestServer::start(move |_| {
        noted.lock().unwrap().push(Instant::now());
        Reply {
            status: 200,
            headers: headers(n.fetch_add(1, Ordering::SeqCst)),
            body: b"{}".to_vec(),
        }
    })
    .await;
    (server, arrivals)
}

/// A connection file for the server with the `[rate]` table `rate`.
fn connection(server: &TestServer, rate: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n[rate]\n{rate}",
        server.url("/")
    )
}

async fn get(host: &Host, conn: &str) -> StepResult {
    step(
        host,
        "http-request",
        "request",
        json!({"url": "/x"}),
        &[conn],
    )
    .await
}

#[tokio::test]
async fn steps_on_one_connection_share_its_window_and_the_next_waits_for_it() {
    let (server, arrivals) = noting(|_| vec![]).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = connection(&server, "requests = 2\nper_secs = 1");
    for _ in 0..3 {
        let r = get(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 3);
    assert!(
        arrivals[2] - arrivals[0] >= Duration::from_millis(990),
        "the third waited for the window: {:?}",
        arrivals[2] - arrivals[0]
    );
    let budget = host.rate_budget("test", "default").unwrap();
    assert_eq!(budget.settings.requests, Some(2));
}

#[tokio::test]
async fn a_wait_past_the_deadline_ends_the_step_with_max_connection() {
    let (server, _) = noting(|_| vec![]).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = connection(&server, "requests = 1\nper_secs = 3600");
    let r = get(&host, &conn).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let started = Instant::now();
    let r = get(&host, &conn).await;
    assert!(started.elapsed() < Duration::from_secs(5), "not slept");
    assert_eq!(r.outcome, Outcome::MaxConnection, "{r:?}");
    let error = r.error.as_ref().unwrap();
    assert_eq!(error.kind, FailureKind::Limit);
    assert!(error.message.contains("rate budget"), "{}", error.message);
    assert_eq!(server.received().len(), 1, "the second was not sent");
    let text = serde_json::to_string(&r.requests).unwrap();
    assert!(text.contains("rate budget"), "recorded: {text}");
}

#[tokio::test]
async fn an_exhausted_upstream_limit_holds_the_connection_until_its_reset() {
    let (server, arrivals) = noting(|n| match n {
        0 => vec![
            ("x-ratelimit-remaining".into(), "0".into()),
            ("x-ratelimit-reset".into(), "1".into()),
        ],
        _ => vec![],
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'",
        server.url("/")
    );
    for _ in 0..2 {
        let r = get(&host, &conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    }
    let arrivals = arrivals.lock().unwrap().clone();
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(990),
        "waited for the reset: {:?}",
        arrivals[1] - arrivals[0]
    );
}
