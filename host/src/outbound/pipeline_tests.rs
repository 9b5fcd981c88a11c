//! The pipeline without a guest: a [`Sender`] over a recording fake
//! [`Transport`] and a manual [`Clock`], driven with host-typed requests.
//! What is under test is everything above the transport (policy,
//! credentials, token requests, redirects, decoding, scrubbing, records);
//! the fake only records what reaches it and answers from a script.

use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use http::HeaderMap;
use hyper::body::Frame;

use super::*;
use crate::clock::Clock;
use crate::credentials::{Caches, ConnectionConfig};
use crate::exchange::{Body, Request};
use crate::limits::RateSettings;
use crate::manifest::{AuthScheme, ConnectionSpec, Manifest};

mod cache;
mod pagination;

const REDACTED: &str = "[REDACTED]";

/// What the fake transport was handed, copied out of the request.
#[derive(Debug, Clone)]
struct Seen {
    method: &'static str,
    url: String,
    origin: String,
    headers: HeaderMap,
    body: Bytes,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

type Script = Box<dyn Fn(&Seen) -> TransportResponse + Send + Sync>;

/// A script that may also fail the exchange.
type Outcomes = Box<dyn Fn(&Seen) -> Result<TransportResponse, TransportError> + Send + Sync>;

/// A transport that records every request it is handed and answers from
/// `script`, without any network.
struct Recording {
    seen: Mutex<Vec<Seen>>,
    script: Outcomes,
}

impl Recording {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

impl Transport for Recording {
    fn send(
        &self,
        request: TransportRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<TransportResponse, TransportError>> + Send + '_,
        >,
    > {
        let seen = Seen {
            method: request.method(),
            url: request.url().to_owned(),
            origin: request.origin().to_owned(),
            headers: request.headers().clone(),
            body: request.body().clone(),
        };
        let response = (self.script)(&seen);
        self.seen.lock().unwrap().push(seen);
        Box::pin(async move { response })
    }
}

/// A clock that moves only when told to (its `sleep` moves it at once).
/// Shared with the other guest-less tests of `outbound`.
pub(super) struct ManualClock {
    start: Instant,
    wall_start: SystemTime,
    elapsed: Mutex<Duration>,
}

impl ManualClock {
    pub(super) fn new(wall_start: SystemTime) -> Self {
        Self {
            start: Instant::now(),
            wall_start,
            elapsed: Mutex::new(Duration::ZERO),
        }
    }

    pub(super) fn advance(&self, by: Duration) {
        *self.elapsed.lock().unwrap() += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        self.start + *self.elapsed.lock().unwrap()
    }

    fn wall(&self) -> SystemTime {
        self.wall_start + *self.elapsed.lock().unwrap()
    }

    fn sleep(
        &self,
        duration: Duration,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        self.advance(duration);
        Box::pin(std::future::ready(()))
    }
}

fn respond(status: u16, headers: &[(&str, &str)], body: impl Into<Bytes>) -> TransportResponse {
    let mut response = http::Response::builder().status(status);
    for (k, v) in headers {
        response = response.header(*k, *v);
    }
    response.body(TransportBody::full(body)).unwrap()
}

/// A host, a plugin allowed `https://api.test` and `https://other.test`, and
/// one connection `default` bound from a connection file's text.
struct World {
    sender: Sender,
    transport: Arc<Recording>,
    clock: Arc<ManualClock>,
    manifest: Manifest,
    hosts: Vec<AllowedHost>,
    connections: HashMap<String, Arc<BoundConnection>>,
    scrubber: Scrubber,
    limits: Limits,
    /// Whether the step's call is declared idempotent.
    call_idempotent: bool,
}

impl World {
    fn new(connection_file: &str, script: Script) -> Self {
        Self::with_limits(connection_file, script, Limits::default())
    }

    fn with_limits(connection_file: &str, script: Script, limits: Limits) -> Self {
        Self::build(
            connection_file,
            Box::new(move |seen| Ok(script(seen))),
            limits,
            CircuitSettings::default(),
        )
    }

    fn build(
        connection_file: &str,
        script: Outcomes,
        limits: Limits,
        circuits: CircuitSettings,
    ) -> Self {
        let transport = Arc::new(Recording {
            seen: Mutex::default(),
            script,
        });
        let clock = Arc::new(ManualClock::new(
            UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        ));
        let sender = Sender::new(
            Some(transport.clone()),
            Arc::new(SystemResolver),
            NetworkPolicy::allowing(vec![]),
            &ClientSettings::default(),
            TokenManager::new(None, clock.clone()),
            SenderOptions {
                allow_insecure_tls: false,
                http2: true,
                clock: clock.clone(),
                circuits,
                wrap_transport: None,
            },
        );
        let spec = ConnectionSpec {
            name: "default".into(),
            description: String::new(),
            base_url: None,
            auth: AuthScheme::OperatorDefined,
            auth_origins: vec![],
            shared_headers: vec![],
            shared_query: vec![],
            verify_call: None,
            rate: RateSettings::default(),
        };
        let manifest = Manifest {
            name: "test".into(),
            version: "0.1.0".into(),
            description: String::new(),
            allowed_hosts: vec!["https://api.test".into(), "https://other.test".into()],
            connections: vec![spec.clone()],
            calls: vec![],
        };
        let caches = Caches::default();
        let config: ConnectionConfig = toml::from_str(connection_file).unwrap();
        let bound = BoundConnection::bind(&spec, config, "t", sender.tokens(), &caches).unwrap();
        let scrubber = Scrubber::new([&bound], &caches);
        let hosts = ["https://api.test", "https://other.test"]
            .iter()
            .map(|h| h.parse().unwrap())
            .collect();
        Self {
            sender,
            transport,
            clock,
            manifest,
            hosts,
            connections: HashMap::from([("default".to_owned(), Arc::new(bound))]),
            scrubber,
            limits,
            call_idempotent: false,
        }
    }

    /// Sends one request as a step of this world would.
    async fn send(&self, request: Request) -> (Result<Response, SendError>, Vec<RequestRecord>) {
        self.send_with(&self.connections, request).await
    }

    /// Sends one request as a step with these bound `connections` would.
    async fn send_with(
        &self,
        connections: &HashMap<String, Arc<BoundConnection>>,
        request: Request,
    ) -> (Result<Response, SendError>, Vec<RequestRecord>) {
        let traffic = StepTraffic::default();
        let stop = crate::stop::Stop::never();
        let step = StepOutbound {
            tenant: "t",
            manifest: &self.manifest,
            plugin_hosts: &self.hosts,
            operator_hosts: &self.hosts,
            tenant_hosts: None,
            connections,
            scrubber: &self.scrubber,
            limits: &self.limits,
            deadline: tokio::time::Instant::now() + self.limits.step_deadline,
            stop: &stop,
            traffic: &traffic,
            call_idempotent: self.call_idempotent,
        };
        self.sender.send(&step, request).await
    }
}

fn get(url: &str, connection: Option<&str>) -> Request {
    Request {
        method: Method::Get,
        url: url.into(),
        query: vec![],
        headers: vec![],
        body: Body::None,
        connection: connection.map(Into::into),
        timeout_ms: None,
        follow_redirects: true,
        retry: None,
        idempotency_key: None,
        pagination: None,
        cache_ttl_ms: None,
    }
}

const BEARER: &str = "connection='default'\nauth='bearer'\nbase_url='https://api.test/v1'\n\
                      [secrets]\ntoken='s3cret-bearer-value'";

const OAUTH: &str = "connection='default'\nauth='oauth2-client-credentials'\n\
                     base_url='https://api.test'\ntoken_url='https://api.test/token'\n\
                     [secrets]\nclient_id='client-1'\nclient_secret='client-secret-value'";

/// The token endpoint at `https://api.test/token` issues `access-token-N`
/// (N counting from 1) valid for `expires_in` seconds; every other request
/// gets 200 with the `Authorization` it carried echoed in the body and a
/// header.
fn token_endpoint(expires_in: u64) -> Script {
    let issued = std::sync::atomic::AtomicU32::new(0);
    Box::new(move |seen| {
        if seen.url == "https://api.test/token" {
            let n = issued.fetch_add(1, Ordering::SeqCst) + 1;
            let body = format!(
                r#"{{"access_token":"access-token-{n}","token_type":"Bearer","expires_in":{expires_in}}}"#
            );
            return respond(200, &[("content-type", "application/json")], body);
        }
        let auth = seen.header("authorization").unwrap_or("none").to_owned();
        respond(200, &[("x-seen-auth", &auth)], format!("you sent {auth}"))
    })
}

#[tokio::test]
async fn a_denied_url_never_reaches_the_transport() {
    let world = World::new(BEARER, Box::new(|_| respond(200, &[], "ok")));
    for url in [
        "https://evil.test/",
        "http://api.test/v1/x",
        "https://127.0.0.1/",
        "https://user:pw@api.test/",
        "ftp://api.test/",
    ] {
        let (result, records) = world.send(get(url, None)).await;
        let err = result.unwrap_err();
        assert!(
            matches!(err, SendError::Denied(_) | SendError::InvalidRequest(_)),
            "{url}: {err}"
        );
        assert!(records.is_empty(), "{url}: {records:?}");
    }
    assert_eq!(
        world.transport.seen().len(),
        0,
        "no denied request was sent"
    );
    // A redirect to a refused origin stops before the transport too.
    let world = World::new(
        BEARER,
        Box::new(|_| respond(302, &[("location", "https://evil.test/x")], "")),
    );
    let (result, records) = world.send(get("https://api.test/v1/a", None)).await;
    assert!(matches!(result, Err(SendError::Denied(_))), "{result:?}");
    assert_eq!(records.len(), 1);
    assert_eq!(
        world.transport.seen().len(),
        1,
        "only the first hop was sent"
    );
}

#[tokio::test]
async fn credentials_reach_the_transport_only_for_the_connections_origins() {
    let world = World::new(
        BEARER,
        Box::new(|seen| match seen.origin.as_str() {
            "https://api.test" => respond(302, &[("location", "https://other.test/landing")], ""),
            _ => respond(200, &[], "landed"),
        }),
    );
    let (result, records) = world.send(get("items", Some("default"))).await;
    let response = result.unwrap();
    assert_eq!(response.body, b"landed");
    assert_eq!(response.final_url, "https://other.test/landing");
    let seen = world.transport.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].url, "https://api.test/v1/items");
    assert_eq!(
        seen[0].header("authorization"),
        Some("Bearer s3cret-bearer-value")
    );
    assert!(seen[0].headers["authorization"].is_sensitive());
    assert_eq!(seen[1].url, "https://other.test/landing");
    assert_eq!(
        seen[1].header("authorization"),
        None,
        "dropped on the cross-origin redirect"
    );
    assert_eq!(records.len(), 2);

    // Naming the connection for another origin adds nothing either.
    let (result, _) = world
        .send(get("https://other.test/direct", Some("default")))
        .await;
    result.unwrap();
    let last = world.transport.seen().pop().unwrap();
    assert_eq!(last.origin, "https://other.test");
    assert_eq!(last.header("authorization"), None);
}

#[tokio::test]
async fn a_query_credential_is_added_by_the_pipeline_and_hidden_from_the_caller() {
    let world = World::new(
        "connection='default'\nauth='api-key'\nquery='api_key'\nbase_url='https://api.test'\n\
         [secrets]\nkey='query-key-value-1'",
        Box::new(|_| respond(200, &[], "ok")),
    );
    let mut request = get("/search", Some("default"));
    request.query = vec![("q".into(), "x".into())];
    let (result, records) = world.send(request).await;
    let response = result.unwrap();
    let seen = world.transport.seen();
    assert_eq!(
        seen[0].url,
        "https://api.test/search?q=x&api_key=query-key-value-1"
    );
    assert_eq!(response.final_url, "https://api.test/search?q=x");
    assert!(!records[0].url.contains("query-key-value-1"), "{records:?}");
}

#[tokio::test]
async fn a_json_field_credential_is_added_to_the_body_the_transport_sees() {
    let world = World::new(
        "connection='default'\nauth='custom'\njson_field='api_token'\nbase_url='https://api.test'\n\
         [secrets]\nkey='json-field-secret-1'",
        Box::new(|_| respond(200, &[], "ok")),
    );
    let mut request = get("/submit", Some("default"));
    request.method = Method::Post;
    request.body = Body::Json(r#"{"a":1}"#.into());
    world.send(request.clone()).await.0.unwrap();
    let seen = world.transport.seen();
    let body: serde_json::Value = serde_json::from_slice(&seen[0].body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"a": 1, "api_token": "json-field-secret-1"})
    );
    // The checks stay: a body without room for the field is refused before
    // the transport.
    request.body = Body::Text("plain".into());
    let err = world.send(request).await.0.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid-request: connection `default` places its secret in a JSON object body field: send a JSON object body"
    );
    assert_eq!(world.transport.seen().len(), 1);
}

#[tokio::test]
async fn the_transport_sees_the_secret_and_the_caller_gets_it_scrubbed() {
    let world = World::new(
        BEARER,
        Box::new(|seen| {
            let auth = seen.header("authorization").unwrap().to_owned();
            respond(
                200,
                &[("x-echo", &auth)],
                format!(r#"{{"you_sent":"{auth}"}}"#),
            )
        }),
    );
    let (result, _) = world.send(get("me", Some("default"))).await;
    let response = result.unwrap();
    assert_eq!(
        world.transport.seen()[0].header("authorization"),
        Some("Bearer s3cret-bearer-value")
    );
    let body = String::from_utf8(response.body).unwrap();
    assert!(!body.contains("s3cret-bearer-value"), "{body}");
    assert!(body.contains(REDACTED), "{body}");
    let echo = &response
        .headers
        .iter()
        .find(|(k, _)| k == "x-echo")
        .unwrap()
        .1;
    assert!(!echo.contains("s3cret-bearer-value"), "{echo}");
    assert!(echo.contains(REDACTED), "{echo}");
}

#[tokio::test]
async fn a_token_request_goes_through_the_transport_and_is_recorded_first() {
    let world = World::new(OAUTH, token_endpoint(3600));
    let (result, records) = world.send(get("/data", Some("default"))).await;
    let response = result.unwrap();
    let seen = world.transport.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.method, s.url.as_str()))
            .collect::<Vec<_>>(),
        [
            ("POST", "https://api.test/token"),
            ("GET", "https://api.test/data")
        ]
    );
    let form = String::from_utf8(seen[0].body.to_vec()).unwrap();
    assert!(form.contains("grant_type=client_credentials"), "{form}");
    assert_eq!(
        seen[1].header("authorization"),
        Some("Bearer access-token-1")
    );
    assert_eq!(
        records
            .iter()
            .map(|r| (r.method.as_str(), r.url.as_str(), r.status))
            .collect::<Vec<_>>(),
        [
            ("POST", "https://api.test/token", Some(200)),
            ("GET", "https://api.test/data", Some(200))
        ],
        "the token request's record comes before the request it served"
    );
    let body = String::from_utf8(response.body).unwrap();
    assert_eq!(body, format!("you sent Bearer {REDACTED}"));
}

#[tokio::test]
async fn a_cached_token_is_reused_until_thirty_seconds_before_expiry() {
    let world = World::new(OAUTH, token_endpoint(120));
    let token_requests = |w: &World| {
        w.transport
            .seen()
            .iter()
            .filter(|s| s.url.ends_with("/token"))
            .count()
    };
    let sent_auth = |w: &World| {
        w.transport
            .seen()
            .last()
            .unwrap()
            .header("authorization")
            .unwrap()
            .to_owned()
    };
    world.send(get("/a", Some("default"))).await.0.unwrap();
    assert_eq!(token_requests(&world), 1);
    // Renewal is due at 120 s - 30 s = 90 s.
    world.clock.advance(Duration::from_secs(89));
    world.send(get("/b", Some("default"))).await.0.unwrap();
    assert_eq!(token_requests(&world), 1, "reused before expires_in - 30 s");
    assert_eq!(sent_auth(&world), "Bearer access-token-1");
    world.clock.advance(Duration::from_secs(2));
    let (result, records) = world.send(get("/c", Some("default"))).await;
    result.unwrap();
    assert_eq!(token_requests(&world), 2, "renewed after expires_in - 30 s");
    assert_eq!(sent_auth(&world), "Bearer access-token-2");
    assert_eq!(records.len(), 2, "the renewal is in this request's records");
}

#[tokio::test]
async fn a_host_signed_jwt_is_dated_by_the_host_clock() {
    let world = World::new(
        "connection='default'\nauth='jwt'\nalgorithm='HS256'\nlifetime_secs=600\n\
         base_url='https://api.test'\n[secrets]\nhmac_key='hmac-key-long-enough'",
        Box::new(|_| respond(200, &[], "ok")),
    );
    world.clock.advance(Duration::from_secs(5));
    world.send(get("/a", Some("default"))).await.0.unwrap();
    let auth = world.transport.seen()[0]
        .header("authorization")
        .unwrap()
        .to_owned();
    let jwt = auth.strip_prefix("Bearer ").unwrap();
    let payload = jwt.split('.').nth(1).unwrap();
    let claims: serde_json::Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
    assert_eq!(claims["iat"], 1_700_000_005);
    assert_eq!(claims["exp"], 1_700_000_605);
    // Reused until 30 s before its expiry, then signed anew.
    world.clock.advance(Duration::from_secs(569));
    world.send(get("/b", Some("default"))).await.0.unwrap();
    assert_eq!(
        world.transport.seen()[1].header("authorization"),
        Some(auth.as_str())
    );
    world.clock.advance(Duration::from_secs(2));
    world.send(get("/c", Some("default"))).await.0.unwrap();
    assert_ne!(
        world.transport.seen()[2].header("authorization"),
        Some(auth.as_str())
    );
}

#[tokio::test]
async fn the_size_cap_applies_to_a_streaming_transport_body() {
    let limits = Limits {
        max_response_bytes: 1000,
        ..Limits::default()
    };
    let world = World::with_limits(
        BEARER,
        Box::new(|_| {
            let chunks =
                (0..10).map(|_| Ok::<_, Infallible>(Frame::data(Bytes::from(vec![b'x'; 300]))));
            let body = http_body_util::StreamBody::new(futures_util::stream::iter(chunks));
            http::Response::new(TransportBody::streaming(body))
        }),
        limits,
    );
    let (result, records) = world.send(get("https://api.test/big", None)).await;
    assert!(matches!(result, Err(SendError::TooLarge(_))), "{result:?}");
    assert!(
        records[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("too-large")
    );
}

/// A world of [`World::build`] whose transport answers the `n`-th request
/// (from 0) with `script(n, seen)`.
fn counting(
    limits: Limits,
    circuits: CircuitSettings,
    script: impl Fn(u32, &Seen) -> Result<TransportResponse, TransportError> + Send + Sync + 'static,
) -> World {
    let n = std::sync::atomic::AtomicU32::new(0);
    World::build(
        BEARER,
        Box::new(move |seen| script(n.fetch_add(1, Ordering::SeqCst), seen)),
        limits,
        circuits,
    )
}

fn with_retry(
    mut request: Request,
    attempts: u32,
    backoff_ms: (u32, u32),
    statuses: &[u16],
) -> Request {
    request.retry = Some(crate::exchange::RetryPolicy {
        max_attempts: attempts,
        initial_backoff_ms: backoff_ms.0,
        max_backoff_ms: backoff_ms.1,
        retry_on_status: statuses.to_vec(),
    });
    request
}

fn post(url: &str) -> Request {
    Request {
        method: Method::Post,
        body: Body::Json(r#"{"a":1}"#.into()),
        ..get(url, None)
    }
}

impl World {
    /// How far the manual clock has moved.
    fn slept(&self) -> Duration {
        self.clock.now() - self.clock.start
    }
}

fn reasons(records: &[RequestRecord]) -> Vec<(u32, Option<&str>)> {
    records
        .iter()
        .map(|r| (r.attempt, r.retry_reason.as_deref()))
        .collect()
}

#[tokio::test]
async fn a_listed_status_is_retried_with_backoff_slept_on_the_clock() {
    let world = counting(Limits::default(), CircuitSettings::disabled(), |n, _| {
        Ok(respond(if n < 2 { 503 } else { 200 }, &[], "x"))
    });
    let request = with_retry(get("https://api.test/a", None), 4, (100, 1000), &[503]);
    let (result, records) = world.send(request).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(world.transport.seen().len(), 3);
    assert_eq!(
        reasons(&records),
        [(1, None), (2, Some("status 503")), (3, Some("status 503"))]
    );
    assert_eq!(
        records.iter().map(|r| r.status).collect::<Vec<_>>(),
        [Some(503), Some(503), Some(200)]
    );
    // Full jitter: at most 100 ms, then at most 200 ms.
    assert!(
        world.slept() <= Duration::from_millis(300),
        "{:?}",
        world.slept()
    );
}

#[tokio::test]
async fn attempts_end_at_the_policy_with_the_last_answer_and_unlisted_statuses_are_not_retried() {
    let world = counting(Limits::default(), CircuitSettings::disabled(), |_, _| {
        Ok(respond(503, &[], "down"))
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            3,
            (0, 0),
            &[503],
        ))
        .await;
    assert_eq!(result.unwrap().status, 503);
    assert_eq!(records.len(), 3);
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/b", None),
            3,
            (0, 0),
            &[502],
        ))
        .await;
    assert_eq!(result.unwrap().status, 503);
    assert_eq!(records.len(), 1, "503 is not in retry-on-status");
    assert_eq!(world.transport.seen().len(), 4);
}

#[tokio::test]
async fn a_post_is_replayed_after_a_reset_only_with_an_idempotency_key() {
    let reset = |n: u32, _: &Seen| match n % 2 {
        0 => Err(TransportError::protocol("connection reset by peer")),
        _ => Ok(respond(201, &[], "created")),
    };
    let world = counting(Limits::default(), CircuitSettings::disabled(), reset);
    let (result, records) = world
        .send(with_retry(
            post("https://api.test/orders"),
            3,
            (10, 10),
            &[503],
        ))
        .await;
    assert!(matches!(result, Err(SendError::Protocol(_))), "{result:?}");
    assert_eq!(
        records.len(),
        1,
        "no key: the bytes may have reached the server"
    );

    let world = counting(Limits::default(), CircuitSettings::disabled(), reset);
    let mut request = with_retry(post("https://api.test/orders"), 3, (10, 10), &[503]);
    request.idempotency_key = Some("order-7-create".into());
    let (result, records) = world.send(request).await;
    assert_eq!(result.unwrap().status, 201);
    let seen = world.transport.seen();
    assert_eq!(seen.len(), 2);
    assert!(
        seen.iter()
            .all(|s| s.header("idempotency-key") == Some("order-7-create")),
        "the same key on every attempt"
    );
    assert_eq!(reasons(&records), [(1, None), (2, Some("protocol"))]);
    assert!(
        records
            .iter()
            .all(|r| r.idempotency_key.as_deref() == Some("order-7-create"))
    );
}

#[tokio::test]
async fn a_post_status_is_not_retried_without_a_key_but_a_connect_failure_is() {
    let world = counting(Limits::default(), CircuitSettings::disabled(), |n, _| {
        Ok(respond(if n == 0 { 503 } else { 200 }, &[], ""))
    });
    let (result, _) = world
        .send(with_retry(
            post("https://api.test/orders"),
            3,
            (0, 0),
            &[503],
        ))
        .await;
    assert_eq!(result.unwrap().status, 503);
    assert_eq!(world.transport.seen().len(), 1);

    let world = counting(Limits::default(), CircuitSettings::disabled(), |n, _| {
        if n == 0 {
            Err(TransportError::connect("connection refused"))
        } else {
            Ok(respond(201, &[], ""))
        }
    });
    let (result, records) = world
        .send(with_retry(post("https://api.test/orders"), 3, (0, 0), &[]))
        .await;
    assert_eq!(result.unwrap().status, 201);
    assert_eq!(reasons(&records), [(1, None), (2, Some("connect"))]);
}

#[tokio::test]
async fn a_put_is_replayed_after_a_timeout_only_in_a_call_declared_idempotent() {
    let script = |n: u32, _: &Seen| match n {
        0 => Err(TransportError::first_byte_timeout()),
        _ => Ok(respond(200, &[], "")),
    };
    let put = || Request {
        method: Method::Put,
        ..with_retry(get("https://api.test/item/1", None), 2, (0, 0), &[])
    };
    let world = counting(Limits::default(), CircuitSettings::disabled(), script);
    let (result, _) = world.send(put()).await;
    assert_eq!(result, Err(SendError::Timeout(TimeoutPhase::FirstByte)));
    let mut world = counting(Limits::default(), CircuitSettings::disabled(), script);
    world.call_idempotent = true;
    let (result, records) = world.send(put()).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(
        reasons(&records),
        [(1, None), (2, Some("timeout: first-byte"))]
    );
}

#[tokio::test]
async fn retry_after_is_slept_as_the_upstream_says_in_seconds_or_as_a_date() {
    let world = counting(Limits::default(), CircuitSettings::disabled(), |n, _| {
        Ok(match n {
            0 => respond(429, &[("retry-after", "3")], ""),
            _ => respond(200, &[], ""),
        })
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            2,
            (0, 0),
            &[429],
        ))
        .await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(world.slept(), Duration::from_secs(3));
    assert_eq!(records[0].retry_after_ms, Some(3000));
    assert_eq!(records[1].retry_after_ms, None);

    // The HTTP-date: formatted by `httpdate` from the manual clock's wall
    // time, 7 s ahead.
    let clock = Arc::new(ManualClock::new(
        UNIX_EPOCH + Duration::from_secs(1_700_000_000),
    ));
    let date = httpdate::fmt_http_date(clock.wall() + Duration::from_secs(7));
    let world = counting(
        Limits::default(),
        CircuitSettings::disabled(),
        move |n, _| {
            Ok(match n {
                0 => respond(503, &[("retry-after", &date)], ""),
                _ => respond(200, &[], ""),
            })
        },
    );
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            2,
            (0, 0),
            &[503],
        ))
        .await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(world.slept(), Duration::from_secs(7));
    assert_eq!(records[0].retry_after_ms, Some(7000));
}

#[tokio::test]
async fn a_wait_past_the_deadline_or_the_cap_is_not_slept_and_the_answer_comes_back_at_once() {
    let limits = Limits {
        step_deadline: Duration::from_secs(5),
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::disabled(), |_, _| {
        Ok(respond(
            429,
            &[
                ("x-ratelimit-remaining", "0"),
                ("x-ratelimit-reset", "1700000010"),
            ],
            "slow down",
        ))
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            5,
            (0, 0),
            &[429],
        ))
        .await;
    assert_eq!(result.unwrap().status, 429);
    assert_eq!(records.len(), 1);
    assert_eq!(world.slept(), Duration::ZERO);
    assert_eq!(
        records[0].retry_after_ms,
        Some(10_000),
        "when it accepts again"
    );

    let limits = Limits {
        max_retry_after: Duration::from_secs(2),
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::disabled(), |_, _| {
        Ok(respond(429, &[("ratelimit", "\"default\";r=0;t=3")], ""))
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            5,
            (0, 0),
            &[429],
        ))
        .await;
    assert_eq!(result.unwrap().status, 429);
    assert_eq!((records.len(), world.slept()), (1, Duration::ZERO));
}

#[tokio::test]
async fn backoff_never_passes_the_step_deadline_nor_the_request_limit() {
    let limits = Limits {
        step_deadline: Duration::from_secs(1),
        max_retry_attempts: 1000,
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::disabled(), |_, _| {
        Ok(respond(503, &[], ""))
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            1000,
            (300, 300),
            &[503],
        ))
        .await;
    assert_eq!(result.unwrap().status, 503);
    assert!(
        world.slept() < Duration::from_secs(1),
        "{:?}",
        world.slept()
    );
    assert!(records.len() >= 2, "{}", records.len());

    let limits = Limits {
        max_requests_per_step: 3,
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::disabled(), |_, _| {
        Ok(respond(503, &[], ""))
    });
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            5,
            (0, 0),
            &[503],
        ))
        .await;
    assert_eq!(
        result.unwrap().status,
        503,
        "the last answer, not a limit error"
    );
    assert_eq!(records.len(), 3);
}

#[tokio::test]
async fn a_bad_retry_policy_is_an_invalid_request_naming_the_field() {
    let world = counting(Limits::default(), CircuitSettings::disabled(), |_, _| {
        Ok(respond(200, &[], ""))
    });
    let (result, records) = world
        .send(with_retry(get("https://api.test/a", None), 0, (0, 0), &[]))
        .await;
    let err = result.unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid-request: retry policy: `max-attempts` must be at least 1 (1 sends once)"
    );
    assert!(records.is_empty());
    assert!(world.transport.seen().is_empty());
}

#[tokio::test]
async fn five_failures_in_a_row_open_the_origins_circuit_until_a_probe_succeeds() {
    let healthy = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let up = healthy.clone();
    let world = counting(
        Limits::default(),
        CircuitSettings::default(),
        move |_, seen| {
            Ok(match seen.origin.as_str() {
                "https://api.test" if !up.load(Ordering::SeqCst) => respond(500, &[], ""),
                _ => respond(200, &[], ""),
            })
        },
    );
    let origin = "https://api.test";
    for _ in 0..5 {
        assert_eq!(world.sender.circuit_state(origin), CircuitState::Closed);
        world.send(get("https://api.test/a", None)).await.0.unwrap();
    }
    assert_eq!(
        world.sender.circuit_state(origin),
        CircuitState::Open {
            remaining: Duration::from_secs(30)
        }
    );
    let (result, records) = world.send(get("https://api.test/a", None)).await;
    assert!(
        matches!(result, Err(SendError::CircuitOpen(_))),
        "{result:?}"
    );
    assert_eq!(
        world.transport.seen().len(),
        5,
        "refused without a transport call"
    );
    assert!(
        records[0]
            .error
            .as_deref()
            .unwrap()
            .starts_with("circuit-open")
    );
    // Other origins are not affected.
    world
        .send(get("https://other.test/", None))
        .await
        .0
        .unwrap();

    // Half-open after 30 s; a failed probe opens it for twice as long.
    world.clock.advance(Duration::from_secs(30));
    assert_eq!(world.sender.circuit_state(origin), CircuitState::HalfOpen);
    world.send(get("https://api.test/a", None)).await.0.unwrap();
    assert_eq!(
        world.sender.circuit_state(origin),
        CircuitState::Open {
            remaining: Duration::from_secs(60)
        }
    );
    world.clock.advance(Duration::from_secs(60));
    healthy.store(true, Ordering::SeqCst);
    world.send(get("https://api.test/a", None)).await.0.unwrap();
    assert_eq!(world.sender.circuit_state(origin), CircuitState::Closed);
}

#[tokio::test]
async fn a_failure_rate_over_the_window_opens_the_circuit_and_the_breaker_can_be_off() {
    let circuits = CircuitSettings {
        min_requests: 10,
        failure_rate_percent: 50,
        ..CircuitSettings::default()
    };
    let alternate = |n: u32, _: &Seen| match n % 2 {
        0 => Err(TransportError::connect("refused")),
        _ => Ok(respond(200, &[], "")),
    };
    let world = counting(Limits::default(), circuits, alternate);
    for _ in 0..9 {
        let _ = world.send(get("https://api.test/a", None)).await;
    }
    assert_eq!(
        world.sender.circuit_state("https://api.test"),
        CircuitState::Closed
    );
    let _ = world.send(get("https://api.test/a", None)).await; // a success: 5 of 10 failed
    let _ = world.send(get("https://api.test/a", None)).await; // a failure: 6 of 11
    assert!(matches!(
        world.sender.circuit_state("https://api.test"),
        CircuitState::Open { .. }
    ));

    let world = counting(Limits::default(), CircuitSettings::disabled(), |_, _| {
        Ok(respond(500, &[], ""))
    });
    for _ in 0..20 {
        world.send(get("https://api.test/a", None)).await.0.unwrap();
    }
    assert_eq!(
        world.sender.circuit_state("https://api.test"),
        CircuitState::Closed
    );
    assert_eq!(world.transport.seen().len(), 20);
}

#[tokio::test]
async fn a_retry_starts_over_at_the_connections_origin_and_never_carries_the_credential_away() {
    // The first attempt is redirected to another origin, which fails; the
    // retry starts again at the connection's URL.
    let world = counting(Limits::default(), CircuitSettings::disabled(), |n, seen| {
        Ok(match (n, seen.origin.as_str()) {
            (0, _) => respond(302, &[("location", "https://other.test/elsewhere")], ""),
            (1, _) => respond(503, &[], ""),
            _ => respond(200, &[], "ok"),
        })
    });
    let request = with_retry(get("items", Some("default")), 3, (0, 0), &[503]);
    let (result, records) = world.send(request).await;
    assert_eq!(result.unwrap().status, 200);
    let seen = world.transport.seen();
    assert_eq!(
        seen.iter()
            .map(|s| (s.url.as_str(), s.header("authorization")))
            .collect::<Vec<_>>(),
        [
            (
                "https://api.test/v1/items",
                Some("Bearer s3cret-bearer-value")
            ),
            ("https://other.test/elsewhere", None),
            (
                "https://api.test/v1/items",
                Some("Bearer s3cret-bearer-value")
            ),
        ]
    );
    assert_eq!(
        reasons(&records),
        [(1, None), (1, None), (2, Some("status 503"))]
    );
    assert!(records.iter().all(|r| !r.url.contains("s3cret")));
}

#[tokio::test]
async fn circuit_state_reads_the_origin_as_a_url() {
    let world = counting(Limits::default(), CircuitSettings::default(), |_, _| {
        Ok(respond(502, &[], ""))
    });
    for _ in 0..5 {
        world.send(get("https://api.test/a", None)).await.0.unwrap();
    }
    for spelled in [
        "https://api.test",
        "https://API.test:443/",
        "https://api.test/x?y",
    ] {
        assert!(
            matches!(
                world.sender.circuit_state(spelled),
                CircuitState::Open { .. }
            ),
            "{spelled}"
        );
    }
    assert_eq!(
        world.sender.circuit_state("http://api.test"),
        CircuitState::Closed
    );
}

#[tokio::test]
async fn a_request_with_a_retry_policy_waits_out_an_open_circuit_and_probes() {
    let limits = Limits {
        step_deadline: Duration::from_secs(60),
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::default(), |n, _| {
        Ok(respond(if n < 5 { 500 } else { 200 }, &[], ""))
    });
    for _ in 0..5 {
        world.send(get("https://api.test/a", None)).await.0.unwrap();
    }
    let (result, records) = world
        .send(with_retry(post("https://api.test/orders"), 3, (0, 0), &[]))
        .await;
    assert_eq!(result.unwrap().status, 200, "the probe went through");
    assert_eq!(
        world.slept(),
        Duration::from_secs(30),
        "the open time, slept"
    );
    assert_eq!(
        records
            .iter()
            .map(|r| (r.attempt, r.retry_reason.as_deref(), r.retry_after_ms))
            .collect::<Vec<_>>(),
        [(1, None, Some(30_000)), (2, Some("circuit-open"), None)]
    );
    assert_eq!(world.transport.seen().len(), 6, "the refusal sent nothing");
    assert_eq!(
        world.sender.circuit_state("https://api.test"),
        CircuitState::Closed
    );

    // An open time past the step deadline is not waited.
    let limits = Limits {
        step_deadline: Duration::from_secs(10),
        ..Limits::default()
    };
    let world = counting(limits, CircuitSettings::default(), |_, _| {
        Ok(respond(500, &[], ""))
    });
    for _ in 0..5 {
        world.send(get("https://api.test/a", None)).await.0.unwrap();
    }
    let (result, records) = world
        .send(with_retry(
            get("https://api.test/a", None),
            3,
            (0, 0),
            &[500],
        ))
        .await;
    assert!(
        matches!(result, Err(SendError::CircuitOpen(_))),
        "{result:?}"
    );
    assert_eq!((records.len(), world.slept()), (1, Duration::ZERO));
}

impl World {
    /// The connection `default` bound afresh for `tenant` from a
    /// connection file's text, as another step would bind it.
    fn bind(&self, tenant: &str, file: &str) -> HashMap<String, Arc<BoundConnection>> {
        let spec = self.manifest.connection("default").unwrap();
        let config: ConnectionConfig = toml::from_str(file).unwrap();
        let bound = BoundConnection::bind(
            spec,
            config,
            tenant,
            self.sender.tokens(),
            &Caches::default(),
        )
        .unwrap();
        HashMap::from([("default".to_owned(), Arc::new(bound))])
    }
}

/// [`BEARER`] with the operator's `[rate]` table `rate`.
fn bearer_rated(rate: &str) -> String {
    format!("{BEARER}\n[rate]\n{rate}")
}

/// The milliseconds each record waited for its rate budget.
fn rate_waits(records: &[RequestRecord]) -> Vec<Option<u64>> {
    records.iter().map(|r| r.rate_wait_ms).collect()
}

#[tokio::test]
async fn n_requests_pass_in_a_window_and_the_next_waits_exactly_until_it_frees() {
    let world = World::new(
        &bearer_rated("requests = 3\nper_secs = 10"),
        Box::new(|_| respond(200, &[], "ok")),
    );
    for _ in 0..3 {
        let (result, records) = world.send(get("/x", Some("default"))).await;
        assert_eq!(result.unwrap().status, 200);
        assert_eq!(rate_waits(&records), [None]);
    }
    assert_eq!(world.slept(), Duration::ZERO, "three fit in the window");
    let state = world.sender.rate_budget("t", "default").unwrap();
    assert_eq!(state.in_window, 3);
    world.clock.advance(Duration::from_secs(4));
    let (result, records) = world.send(get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(
        world.slept(),
        Duration::from_secs(10),
        "the fourth waited until the first left the window"
    );
    assert_eq!(rate_waits(&records), [Some(6_000)]);
    assert_eq!(world.transport.seen().len(), 4);
    // A request without the connection draws on no budget.
    let (result, _) = world.send(get("https://other.test/", None)).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(world.slept(), Duration::from_secs(10));
}

#[tokio::test]
async fn a_wait_past_the_deadline_ends_with_max_connection_without_a_transport_call() {
    let world = World::new(
        &bearer_rated("requests = 1\nper_secs = 3600"),
        Box::new(|_| respond(200, &[], "ok")),
    );
    let (result, _) = world.send(get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    let (result, records) = world.send(get("/x", Some("default"))).await;
    let err = result.unwrap_err();
    assert!(matches!(err, SendError::Limit(_)), "{err}");
    assert!(
        err.to_string().contains(
            "the rate budget of connection `default` has no room before the step deadline"
        ),
        "{err}"
    );
    assert_eq!(records.len(), 1, "the refusal is recorded");
    assert_eq!(records[0].status, None);
    assert!(records[0].error.as_deref().unwrap().contains("rate budget"));
    assert_eq!(world.transport.seen().len(), 1, "the second was never sent");
    assert_eq!(world.slept(), Duration::ZERO, "nothing was slept");
}

#[tokio::test]
async fn a_token_request_is_not_counted_against_the_api_budget() {
    let world = World::new(
        &format!("{OAUTH}\n[rate]\nrequests = 1\nper_secs = 3600"),
        token_endpoint(3600),
    );
    let (result, records) = world.send(get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(records.len(), 2, "the token request, then the API request");
    let (result, _) = world.send(get("/x", Some("default"))).await;
    assert!(matches!(result, Err(SendError::Limit(_))), "{result:?}");
    assert_eq!(world.transport.seen().len(), 2);
}

/// A transport whose exchanges stay in flight for a few scheduler turns,
/// counting the most in flight at once.
#[derive(Default)]
struct Gate {
    in_flight: std::sync::atomic::AtomicU32,
    most: std::sync::atomic::AtomicU32,
    sent: std::sync::atomic::AtomicU32,
}

impl Transport for Gate {
    fn send(
        &self,
        _request: TransportRequest,
    ) -> std::pin::Pin<
        Box<
            dyn std::future::Future<Output = Result<TransportResponse, TransportError>> + Send + '_,
        >,
    > {
        Box::pin(async move {
            let now = self.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(now, Ordering::SeqCst);
            for _ in 0..10 {
                tokio::task::yield_now().await;
            }
            self.in_flight.fetch_sub(1, Ordering::SeqCst);
            self.sent.fetch_add(1, Ordering::SeqCst);
            Ok(respond(200, &[], "ok"))
        })
    }
}

#[tokio::test]
async fn the_concurrency_cap_holds_with_concurrent_sends() {
    let mut world = World::new(
        &bearer_rated("concurrent = 2"),
        Box::new(|_| respond(200, &[], "ok")),
    );
    let gate = Arc::new(Gate::default());
    world.sender.transport = gate.clone();
    let send = || world.send(get("/x", Some("default")));
    let (a, b, c, d, e) = tokio::join!(send(), send(), send(), send(), send());
    for (result, _) in [a, b, c, d, e] {
        assert_eq!(result.unwrap().status, 200);
    }
    assert_eq!(gate.sent.load(Ordering::SeqCst), 5);
    assert_eq!(
        gate.most.load(Ordering::SeqCst),
        2,
        "never more than two in flight, and two at once"
    );
    let state = world.sender.rate_budget("t", "default").unwrap();
    assert_eq!(state.in_flight, 0, "every slot is back");
}

#[tokio::test]
async fn an_announced_remaining_of_zero_holds_the_connection_until_the_reset() {
    let answered = std::sync::atomic::AtomicU32::new(0);
    let world = World::new(
        BEARER,
        Box::new(move |_| match answered.fetch_add(1, Ordering::SeqCst) {
            0 => respond(
                200,
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "5")],
                "ok",
            ),
            1 => respond(200, &[("RateLimit", "\"default\";r=0;t=3600")], "ok"),
            _ => respond(200, &[], "ok"),
        }),
    );
    assert_eq!(
        world.sender.rate_budget("t", "default"),
        None,
        "no [rate] table, nothing announced: no budget"
    );
    let (result, _) = world.send(get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    let state = world.sender.rate_budget("t", "default").unwrap();
    assert_eq!(state.held_for, Some(Duration::from_secs(5)));
    let (result, records) = world.send(get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(
        world.slept(),
        Duration::from_secs(5),
        "waited for the reset"
    );
    assert_eq!(rate_waits(&records), [Some(5_000)]);
    // An IETF reset past the deadline: the next request is not sent.
    let (result, _) = world.send(get("/x", Some("default"))).await;
    assert!(matches!(result, Err(SendError::Limit(_))), "{result:?}");
    assert_eq!(world.transport.seen().len(), 2);
    // A request to another origin carries no credential and is not held.
    let (result, _) = world.send(get("https://other.test/", None)).await;
    assert_eq!(result.unwrap().status, 200);
}

#[tokio::test]
async fn steps_of_one_tenant_and_connection_share_a_budget_and_another_tenant_does_not() {
    let file = bearer_rated("requests = 1\nper_secs = 3600");
    let world = World::new(&file, Box::new(|_| respond(200, &[], "ok")));
    let bind = |tenant: &str| world.bind(tenant, &file);
    // Two steps of tenant `t`, each with its own binding of the connection.
    let (result, _) = world
        .send_with(&bind("t"), get("/x", Some("default")))
        .await;
    assert_eq!(result.unwrap().status, 200);
    let (result, _) = world
        .send_with(&bind("t"), get("/x", Some("default")))
        .await;
    assert!(matches!(result, Err(SendError::Limit(_))), "{result:?}");
    // Another binding of `t`'s connection with other limits (another
    // plugin's declaration, an edited file) keeps the send log: no fresh window.
    let other = world.bind("t", &bearer_rated("requests = 1\nper_secs = 1800"));
    let (result, _) = world.send_with(&other, get("/x", Some("default"))).await;
    assert!(matches!(result, Err(SendError::Limit(_))), "{result:?}");
    // Tenant `u` has its own budget.
    let (result, _) = world
        .send_with(&bind("u"), get("/x", Some("default")))
        .await;
    assert_eq!(result.unwrap().status, 200);
    assert_eq!(world.transport.seen().len(), 2);
    assert_eq!(
        world.sender.rate_budget("u", "default").unwrap().in_window,
        1
    );
}

#[tokio::test]
async fn the_plugins_declared_budget_applies_and_the_operators_narrower_one_wins() {
    let mut world = World::new(BEARER, Box::new(|_| respond(200, &[], "ok")));
    world.manifest.connections[0].rate = RateSettings {
        requests: Some(2),
        per_secs: Some(10),
        concurrent: Some(4),
    };
    // The plugin's budget alone: two in the window, the third waits 10 s.
    let plugin_only = world.bind("t", BEARER);
    for _ in 0..3 {
        let (result, _) = world
            .send_with(&plugin_only, get("/x", Some("default")))
            .await;
        assert_eq!(result.unwrap().status, 200);
    }
    assert_eq!(world.slept(), Duration::from_secs(10));
    // The operator's is narrower (1 per 10 s < 2 per 10 s; 1 at once < 4):
    // it applies, and the declared one cannot widen it.
    let narrowed = world.bind(
        "u",
        &bearer_rated("requests = 1\nper_secs = 10\nconcurrent = 1"),
    );
    let state = |w: &World| w.sender.rate_budget("u", "default");
    for _ in 0..2 {
        let (result, _) = world.send_with(&narrowed, get("/x", Some("default"))).await;
        assert_eq!(result.unwrap().status, 200);
    }
    assert_eq!(
        world.slept(),
        Duration::from_secs(20),
        "the second waited 10 s"
    );
    assert_eq!(
        state(&world).unwrap().settings,
        RateSettings {
            requests: Some(1),
            per_secs: Some(10),
            concurrent: Some(1),
        }
    );
    // A wider operator table does not widen the plugin's budget.
    let wider = world.bind("v", &bearer_rated("requests = 100\nper_secs = 10"));
    let (result, _) = world.send_with(&wider, get("/x", Some("default"))).await;
    assert_eq!(result.unwrap().status, 200);
    let settings = world.sender.rate_budget("v", "default").unwrap().settings;
    assert_eq!(
        (settings.requests, settings.per_secs, settings.concurrent),
        (Some(2), Some(10), Some(4))
    );
}
