//! Retries, `Retry-After`, idempotency keys and the circuit breaker, end to
//! end: the real `http-request` plugin, a real server on 127.0.0.1 that
//! decides the faults and counts what reaches it.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use courier_host::{CircuitSettings, CircuitState, FailureKind, Outcome};
use courier_tests::{Reply, TestServer, host_builder, host_with};
use serde_json::json;

use crate::step;

fn reply(status: u16, headers: &[(&str, &str)]) -> Reply {
    Reply {
        status,
        headers: headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        body: vec![],
    }
}

/// A server answering its `n`-th request (from 0) with `answer(n)`, and
/// noting when each arrived.
async fn scripted(
    answer: impl Fn(u32) -> Reply + Send + Sync + 'static,
) -> (TestServer, Arc<Mutex<Vec<Instant>>>) {
    let n = AtomicU32::new(0);
    let arrivals = Arc::new(Mutex::new(vec![]));
    let noted = arrivals.clone();
    let server = TestServer::start(move |_| {
        noted.lock().unwrap().push(Instant::now());
        answer(n.fetch_add(1, Ordering::SeqCst))
    })
    .await;
    (server, arrivals)
}

#[tokio::test]
async fn a_5xx_storm_is_retried_and_every_attempt_is_listed() {
    let (server, _) = scripted(|n| reply(if n < 2 { 503 } else { 200 }, &[])).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": server.url("/flaky"),
        "retry": {"attempts": 4, "backoff": {"initial": 0.01, "max": 0.05}, "statuses": [503]},
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received().len(), 3);
    let listed: Vec<_> = r
        .requests
        .iter()
        .map(|q| (q.attempt, q.status, q.retry_reason.as_deref()))
        .collect();
    assert_eq!(
        listed,
        [
            (1, Some(503), None),
            (2, Some(503), Some("status 503")),
            (3, Some(200), Some("status 503"))
        ]
    );
    let record = serde_json::to_value(&r.requests[1]).unwrap();
    for field in [
        "method",
        "url",
        "status",
        "duration_ms",
        "error",
        "insecure",
    ] {
        assert!(record.get(field).is_some(), "{field} kept: {record}");
    }
    assert_eq!(record["attempt"], 2);
}

#[tokio::test]
async fn retry_after_is_waited_for_and_a_wait_too_long_ends_the_step_at_once() {
    let (server, arrivals) = scripted(|n| match n {
        0 => reply(429, &[("retry-after", "1")]),
        _ => reply(200, &[]),
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({"url": server.url("/limited"), "retry": {"statuses": [429]}});
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let arrivals = arrivals.lock().unwrap().clone();
    assert_eq!(arrivals.len(), 2);
    assert!(
        arrivals[1] - arrivals[0] >= Duration::from_millis(950),
        "waited {:?}",
        arrivals[1] - arrivals[0]
    );
    assert_eq!(r.requests[0].retry_after_ms, Some(1000));

    // 120 s is over the host's 60 s cap: no wait, the 429 is the result.
    let (server, _) = scripted(|_| reply(429, &[("retry-after", "120")])).await;
    let input = json!({"url": server.url("/limited"), "retry": {"statuses": [429]}});
    let started = Instant::now();
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(r.status, Some(429));
    assert_eq!(r.requests.len(), 1);
    assert_eq!(r.requests[0].retry_after_ms, Some(120_000));
}

#[tokio::test]
async fn a_post_with_a_host_generated_key_sends_the_same_key_on_every_attempt() {
    let (server, _) = scripted(|n| reply(if n == 0 { 503 } else { 201 }, &[])).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let input = json!({
        "url": server.url("/orders"), "method": "POST", "body": {"sku": "a"},
        "idempotency_key": true,
        "retry": {"attempts": 3, "backoff": {"initial": 0.01, "max": 0.01}, "statuses": [503]},
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let received = server.received();
    assert_eq!(received.len(), 2);
    let key = received[0].header("idempotency-key").unwrap().to_owned();
    assert_eq!(received[1].header("idempotency-key"), Some(key.as_str()));
    // A version 4 UUID: 8-4-4-4-12 hex digits, version 4, variant 10xx.
    let groups: Vec<&str> = key.split('-').collect();
    assert_eq!(
        groups.iter().map(|g| g.len()).collect::<Vec<_>>(),
        [8, 4, 4, 4, 12],
        "{key}"
    );
    assert!(key.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
    assert!(
        groups[2].starts_with('4') && "89ab".contains(&groups[3][..1]),
        "{key}"
    );
    assert!(
        r.requests
            .iter()
            .all(|q| q.idempotency_key.as_deref() == Some(key.as_str()))
    );

    // Without a key, the POST's 503 reached the server: not sent again.
    let (server, _) = scripted(|_| reply(503, &[])).await;
    let input = json!({
        "url": server.url("/orders"), "method": "POST", "body": {"sku": "a"},
        "retry": {"attempts": 3, "statuses": [503]},
    });
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    assert_eq!(server.received().len(), 1);
}

#[tokio::test]
async fn an_open_circuit_refuses_without_reaching_the_origin() {
    let (server, _) = scripted(|_| reply(500, &[])).await;
    let circuits = CircuitSettings {
        consecutive_failures: 2,
        ..CircuitSettings::default()
    };
    let host = host_with(host_builder().circuit_breaker(circuits), &["http-request"]).await;
    let origin = format!("http://{}", server.addr);
    let input = json!({"url": server.url("/down")});
    for _ in 0..2 {
        let r = step(&host, "http-request", "request", input.clone(), &[]).await;
        assert_eq!(r.outcome, Outcome::HttpError, "{r:?}");
    }
    assert!(
        matches!(host.circuit_state(&origin), CircuitState::Open { remaining } if remaining <= Duration::from_secs(30)),
        "{:?}",
        host.circuit_state(&origin)
    );
    let r = step(&host, "http-request", "request", input, &[]).await;
    assert_eq!(r.failure_kind(), Some(FailureKind::CircuitOpen), "{r:?}");
    assert_eq!(server.received().len(), 2, "refused without a request");

    let off = host_with(
        host_builder().circuit_breaker(CircuitSettings::disabled()),
        &["http-request"],
    )
    .await;
    for _ in 0..6 {
        step(
            &off,
            "http-request",
            "request",
            json!({"url": server.url("/down")}),
            &[],
        )
        .await;
    }
    assert_eq!(off.circuit_state(&origin), CircuitState::Closed);
    assert_eq!(server.received().len(), 8);
}
