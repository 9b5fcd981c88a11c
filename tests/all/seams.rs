//! The embedder's seams through the public API: a host built with a
//! recording fake [`Transport`] (no network at all) and a manual [`Clock`],
//! running the real `http-request` plugin.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use courier_host::{
    Host, HostBuilder, Outcome, Transport, TransportBody, TransportError, TransportRequest,
    TransportResponse,
};
use courier_tests::{ManualClock, host_with, target_dir};
use serde_json::json;

use crate::auth::{CANARY, assert_no_leak};
use crate::step;

/// What the fake transport was handed.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    url: String,
    authorization: Option<String>,
}

/// Answers token requests (`…/token`) with `access-token-N` valid for
/// `expires_in` seconds, and every other request with 200 and the
/// `Authorization` it carried, as JSON.
struct FakeTransport {
    seen: Mutex<Vec<Seen>>,
    issued: AtomicU32,
    expires_in: u64,
}

impl FakeTransport {
    fn new(expires_in: u64) -> Arc<Self> {
        Arc::new(Self {
            seen: Mutex::default(),
            issued: AtomicU32::new(0),
            expires_in,
        })
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    fn token_requests(&self) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.url.ends_with("/token"))
            .count()
    }

    fn answer(&self, request: &TransportRequest) -> TransportResponse {
        let body = if request.url().ends_with("/token") {
            let n = self.issued.fetch_add(1, Ordering::SeqCst) + 1;
            json!({"access_token": format!("access-token-{n}"), "token_type": "Bearer", "expires_in": self.expires_in})
        } else {
            json!({"auth": request.headers().get("authorization").map(|v| v.to_str().unwrap())})
        };
        http::Response::builder()
            .status(200)
            .header("content-type", "application/json")
            .body(TransportBody::full(body.to_string()))
            .unwrap()
    }
}

impl Transport for FakeTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TransportResponse, TransportError>> + Send + '_>> {
        let response = self.answer(&request);
        self.seen.lock().unwrap().push(Seen {
            method: request.method(),
            url: request.url().to_owned(),
            authorization: request
                .headers()
                .get("authorization")
                .map(|v| v.to_str().unwrap().to_owned()),
        });
        Box::pin(async move { Ok(response) })
    }
}

/// A host that may call `https://api.example.test` only, through `transport`.
fn builder(transport: Arc<FakeTransport>) -> HostBuilder {
    Host::builder()
        .cache_dir(target_dir().join("courier-test-cache"))
        .allow_host("https://api.example.test".parse().unwrap())
        .transport(transport)
}

const BEARER: &str =
    "connection = 'default'\nbase_url = 'https://api.example.test'\nauth = 'bearer'\n";

#[tokio::test]
async fn a_fake_transport_sees_checked_authenticated_requests_and_steps_see_them_scrubbed() {
    let transport = FakeTransport::new(3600);
    let host = host_with(builder(transport.clone()), &["http-request"]).await;
    let conn = format!("{BEARER}[secrets]\ntoken = '''{CANARY}'''");
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let seen = transport.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].url, "https://api.example.test/me");
    assert_eq!(
        seen[0].authorization.as_deref(),
        Some(format!("Bearer {CANARY}").as_str())
    );
    assert_eq!(
        r.output.as_ref().unwrap()["body"]["auth"],
        "Bearer [REDACTED]"
    );
    assert_no_leak(&r, &[CANARY]);

    // A host the operator does not allow never reaches the transport.
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "https://elsewhere.example.test/me"}),
        &[&conn],
    )
    .await;
    assert_ne!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(transport.seen().len(), 1, "{r:?}");
}

#[tokio::test]
async fn a_cached_token_follows_the_injected_clock() {
    let (transport, clock) = (FakeTransport::new(120), ManualClock::new());
    let host = host_with(
        builder(transport.clone()).clock(clock.clone()),
        &["http-request"],
    )
    .await;
    let conn = "connection = 'default'\nbase_url = 'https://api.example.test'\n\
                auth = 'oauth2-client-credentials'\ntoken_url = 'https://api.example.test/token'\n\
                [secrets]\nclient_id = 'app-1'\nclient_secret = 'client-secret-value'";
    let conns = [conn];
    let get = || {
        step(
            &host,
            "http-request",
            "request",
            json!({"url": "/me"}),
            &conns,
        )
    };
    let r = get().await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let listed: Vec<(&str, &str)> = r
        .requests
        .iter()
        .map(|q| (q.method.as_str(), q.url.as_str()))
        .collect();
    assert_eq!(
        listed,
        [
            ("POST", "https://api.example.test/token"),
            ("GET", "https://api.example.test/me")
        ]
    );
    assert_eq!(transport.token_requests(), 1);
    // Due for renewal at 120 s - 30 s.
    clock.advance(Duration::from_secs(89));
    assert_eq!(get().await.outcome, Outcome::Success);
    assert_eq!(
        transport.token_requests(),
        1,
        "reused before expires_in - 30 s"
    );
    clock.advance(Duration::from_secs(2));
    assert_eq!(get().await.outcome, Outcome::Success);
    assert_eq!(
        transport.token_requests(),
        2,
        "renewed after expires_in - 30 s"
    );
    let last = transport.seen().pop().unwrap();
    assert_eq!(
        (last.method, last.authorization.as_deref()),
        ("GET", Some("Bearer access-token-2"))
    );
}
