//! The single place requests leave the host.
//!
//! [`Sender::send`] takes a plugin's request and, for the first request and
//! every redirect hop alike: validates it, resolves its connection, joins the
//! URL, checks the egress policy, applies the credential's additions only for
//! the connection's origins, sends it through the [`Transport`] (by default
//! the vetted client), bounds time and size, and scrubs secrets from what
//! comes back. Around that, per plugin request: the retry policy (backoff
//! on the host's [`Clock`], waits the upstream announces, only replays that
//! are safe), the origin's circuit breaker, and the rate budget of the
//! connection whose credential a request carries.

mod additions;
mod announced;
mod body;
mod budget;
mod cache;
mod cassette;
mod circuit;
mod client;
mod decode;
mod paginate;
mod retry;
mod transport;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http_body_util::BodyExt;
use serde::Serialize;
use tokio::time::timeout_at;
use url::Url;

pub use budget::RateBudget;
use budget::{Admitted, Budgets};
pub use cassette::{Cassette, Recorder, Replayer};
use circuit::Circuits;
pub use circuit::{CircuitSettings, CircuitState};
use client::HttpTransport;
pub use client::{Resolve, SystemResolver};
use retry::Retry;
use transport::Route;
pub use transport::{
    Transport, TransportBody, TransportError, TransportRequest, TransportResponse,
};

use crate::clock::Clock;
use crate::credentials::{
    BoundConnection, Scrubber, TokenManager, TokenRequest, TokenSource, TokenTurn,
};
use crate::exchange::{Method, Request, Response, SendError, TimeoutPhase};
use crate::limits::{ClientSettings, Limits};
use crate::manifest::Manifest;
use crate::secret::Secret;
use crate::stop::Stop;
use courier_egress::head::{self, HostLists, Refusal};
use courier_egress::{AllowedHost, NetworkPolicy};

/// The operator's egress settings shared by every step.
pub(crate) struct Sender {
    /// Where checked, authenticated requests go.
    transport: Arc<dyn Transport>,
    /// The response-head caps (the default transport's buffers are sized by them too).
    head_caps: HeadCaps,
    allow_insecure_tls: bool,
    network: Arc<NetworkPolicy>,
    tokens: TokenManager,
    /// What backoff sleeps on and what circuit timers read.
    clock: Arc<dyn Clock>,
    circuits: Circuits,
    /// Responses kept for requests that ask for it.
    cache: cache::ResponseCache,
    /// The per-connection rate budgets.
    budgets: Budgets,
}

/// The sender's switches and shared timers, as the host builder sets them.
pub(crate) struct SenderOptions {
    /// Whether a connection may relax TLS verification.
    pub(crate) allow_insecure_tls: bool,
    /// Whether the default transport offers HTTP/2.
    pub(crate) http2: bool,
    /// The host's clock.
    pub(crate) clock: Arc<dyn Clock>,
    /// The per-origin circuit breakers.
    pub(crate) circuits: CircuitSettings,
    /// What goes in front of the transport (`HostBuilder::wrap_transport`).
    pub(crate) wrap_transport: Option<WrapTransport>,
}

/// Makes the transport the pipeline uses from the one it would use.
pub(crate) type WrapTransport = Box<dyn FnOnce(Arc<dyn Transport>) -> Arc<dyn Transport> + Send>;

/// What one step's requests are checked and authenticated against.
pub(crate) struct StepOutbound<'a> {
    /// The step's tenant.
    pub(crate) tenant: &'a str,
    pub(crate) manifest: &'a Manifest,
    pub(crate) plugin_hosts: &'a [AllowedHost],
    pub(crate) operator_hosts: &'a [AllowedHost],
    pub(crate) tenant_hosts: Option<&'a [AllowedHost]>,
    pub(crate) connections: &'a HashMap<String, Arc<BoundConnection>>,
    pub(crate) scrubber: &'a Scrubber,
    pub(crate) limits: &'a Limits,
    pub(crate) deadline: tokio::time::Instant,
    /// The embedder's stop: a request in flight ends as at the deadline.
    pub(crate) stop: &'a Stop,
    pub(crate) traffic: &'a StepTraffic,
    /// Whether the step's call is declared idempotent: then a PUT or DELETE
    /// may be replayed after its bytes may have reached the server.
    pub(crate) call_idempotent: bool,
}

/// What one step has sent so far: the count its request limit applies to.
#[derive(Default)]
pub(crate) struct StepTraffic {
    made: AtomicU32,
    /// Pages, items and bytes read through pagination.
    pages: paginate::PageBudget,
}

impl StepTraffic {
    /// Counts one more request, refusing it past the step's limit.
    fn count(&self, limits: &Limits) -> Result<(), SendError> {
        let used = self.made.fetch_add(1, Ordering::Relaxed) + 1;
        if used > limits.max_requests_per_step {
            return Err(SendError::Limit(format!(
                "the step's limit of {} requests is reached",
                limits.max_requests_per_step
            )));
        }
        Ok(())
    }

    /// Whether another request fits in the step's limit.
    fn has_room(&self, limits: &Limits) -> bool {
        self.made.load(Ordering::Relaxed) < limits.max_requests_per_step
    }
}

/// One outbound request as the step result reports it (secrets scrubbed).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RequestRecord {
    /// The method sent.
    pub method: String,
    /// The URL sent, with secrets redacted.
    pub url: String,
    /// The response status, if one came.
    pub status: Option<u16>,
    /// Time from sending to the whole body read, in milliseconds.
    pub duration_ms: u64,
    /// Why no response came, if so.
    pub error: Option<String>,
    /// Whether TLS verification was relaxed for this request (the
    /// connection's `verify_host`/`verify_peer`, allowed by the operator).
    pub insecure: bool,
    /// Which attempt of the plugin's request this is, from 1 (every hop
    /// and token request of an attempt carries its number).
    pub attempt: u32,
    /// Why the previous attempt was retried (`status 503`, `connect`,
    /// `timeout: first-byte`, …); on the first record of each retry.
    pub retry_reason: Option<String>,
    /// The request's `Idempotency-Key`, the same on every attempt (not a
    /// secret, scrubbed all the same).
    pub idempotency_key: Option<String>,
    /// In how many milliseconds the upstream said it accepts requests
    /// again (`Retry-After` or rate-limit headers), if it said so.
    pub retry_after_ms: Option<u64>,
    /// Which page of a paginated request this is, from 1 (every hop and
    /// attempt of the page carries its number).
    pub page: Option<u32>,
    /// On the last record of a paginated request: why paging ended
    /// (`complete`, `max-pages`, `max-items`, `max-bytes`, `request-limit`).
    pub pagination: Option<String>,
    /// For a request that asked for the response cache: `hit` (answered
    /// from the cache, nothing sent) or `miss` (sent; on its last record).
    pub cache: Option<String>,
    /// How long the request waited for its connection's rate budget, in
    /// milliseconds, when it waited at all.
    pub rate_wait_ms: Option<u64>,
    /// Whether this is a token request the host made for a connection
    /// (an OAuth 2 token endpoint), not a request of the plugin.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub token_request: bool,
}

impl RequestRecord {
    /// The record of one exchange, its URL and error scrubbed.
    fn of(
        step: &StepOutbound<'_>,
        method: Method,
        url: &Url,
        started: Instant,
        outcome: &Result<Response, SendError>,
        insecure: bool,
    ) -> Self {
        Self {
            method: method.as_str().to_owned(),
            url: step.scrubber.text(url.to_string()),
            status: outcome.as_ref().ok().map(|r| r.status),
            duration_ms: started.elapsed().as_millis() as u64,
            error: outcome
                .as_ref()
                .err()
                .map(|e| step.scrubber.text(e.to_string())),
            insecure,
            attempt: 1,
            ..Self::default()
        }
    }

    /// The record of a request its origin's open circuit refused.
    fn refused(step: &StepOutbound<'_>, method: Method, url: &Url, e: &SendError) -> Self {
        Self {
            duration_ms: 0,
            ..Self::of(step, method, url, Instant::now(), &Err(e.clone()), false)
        }
    }
}

impl Sender {
    /// A sender through `transport`, or when `None` the host's own
    /// ([`HttpTransport`]: resolving through `resolver`, connecting only to
    /// addresses `network` allows, with the client `settings`, offering
    /// HTTP/2 when `http2`). `network` also refuses IP-literal URLs.
    pub(crate) fn new(
        transport: Option<Arc<dyn Transport>>,
        resolver: Arc<dyn Resolve>,
        network: NetworkPolicy,
        settings: &ClientSettings,
        tokens: TokenManager,
        options: SenderOptions,
    ) -> Self {
        let SenderOptions {
            allow_insecure_tls,
            http2,
            clock,
            circuits,
            wrap_transport,
        } = options;
        let network = Arc::new(network);
        let transport = transport.unwrap_or_else(|| {
            Arc::new(HttpTransport::new(
                resolver,
                network.clone(),
                settings,
                http2,
            ))
        });
        let transport = match wrap_transport {
            Some(wrap) => wrap(transport),
            None => transport,
        };
        Self {
            transport,
            head_caps: HeadCaps {
                fields: settings.max_response_headers,
                bytes: settings.max_response_header_bytes,
            },
            allow_insecure_tls,
            network,
            tokens,
            circuits: Circuits::new(circuits, clock.clone()),
            cache: cache::ResponseCache::new(settings, clock.clone()),
            budgets: Budgets::new(clock.clone()),
            clock,
        }
    }

    /// The state of `origin`'s circuit breaker. `origin` is read as a URL,
    /// so `https://API.example.com:443/` names `https://api.example.com`.
    pub(crate) fn circuit_state(&self, origin: &str) -> CircuitState {
        match Url::parse(origin) {
            Ok(url) => self.circuits.state(&origin_text(&url)),
            Err(_) => self.circuits.state(origin),
        }
    }

    /// The rate budget of `tenant`'s connection `id`, if the host keeps one.
    pub(crate) fn rate_budget(&self, tenant: &str, id: &str) -> Option<RateBudget> {
        self.budgets.state(tenant, id)
    }

    /// The step deadline on the host's clock, so that waits slept on a
    /// manual clock count against it.
    fn clock_deadline(&self, step: &StepOutbound<'_>) -> Instant {
        self.clock.now()
            + step
                .deadline
                .saturating_duration_since(tokio::time::Instant::now())
    }

    /// Takes a place in the rate budget of the connection whose credential
    /// this hop carries (a hop elsewhere draws on none), waiting within the
    /// step deadline; a refusal is recorded.
    async fn admit_budget(
        &self,
        step: &StepOutbound<'_>,
        p: &Prepared<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Option<Admitted>, SendError> {
        let Some(conn) = p.connection.filter(|c| c.may_authenticate(&p.url)) else {
            return Ok(None);
        };
        let deadline = self.clock_deadline(step);
        self.budgets
            .admit(&conn.rate, deadline, step.deadline)
            .await
            .inspect_err(|e| records.push(RequestRecord::refused(step, p.method, &p.url, e)))
    }

    /// Notes on the hop's `record` how long it waited for its budget, takes
    /// in the rate-limit fields of its response, and releases its
    /// concurrent slot (`admitted` is dropped here).
    fn settle_budget(
        &self,
        p: &Prepared<'_>,
        admitted: Option<Admitted>,
        outcome: &Result<Response, SendError>,
        record: Option<&mut RequestRecord>,
    ) {
        let Some(conn) = p.connection.filter(|c| c.may_authenticate(&p.url)) else {
            return;
        };
        if let (Some(record), Some(a)) = (record, &admitted)
            && !a.waited.is_zero()
        {
            record.rate_wait_ms = Some(u64::try_from(a.waited.as_millis()).unwrap_or(u64::MAX));
        }
        if let Ok(response) = outcome {
            self.budgets
                .announce(&conn.rate, &response.headers, self.clock.wall());
        }
    }

    /// The access-token caches shared by every step.
    pub(crate) fn tokens(&self) -> &TokenManager {
        &self.tokens
    }

    /// A valid access token of a connection of this step: the cached one,
    /// or one the token source obtains with a token request that this
    /// sender makes and hands back to it (one request however many callers
    /// wait). The token request's record goes to `records`.
    async fn access_token(
        &self,
        source: &TokenSource,
        connection: &str,
        step: &StepOutbound<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Secret, SendError> {
        match source.begin(connection, step.scrubber).await? {
            TokenTurn::Ready(token) => Ok(token),
            TokenTurn::Request(request, pending) => {
                // Boxed: a token request is rare (tokens are cached) and its
                // exchange would otherwise grow every request's future.
                let outcome = Box::pin(self.request_token(step, *request, records)).await;
                pending.finish(outcome, step.scrubber).await
            }
        }
    }

    /// A token request (an OAuth 2 token endpoint, or a JWT exchange) for a connection of this
    /// step: the same policy checks and vetted client as every request, no
    /// redirects, bounded by the request timeout and the step deadline. Its
    /// record goes to `records`, before the request that caused it. The
    /// caller scrubs what it passes on.
    async fn request_token(
        &self,
        step: &StepOutbound<'_>,
        request: TokenRequest,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        let TokenRequest {
            url,
            mut headers,
            body,
        } = request;
        let url = &url;
        self.check_url(step, url)?;
        step.traffic.count(step.limits)?;
        headers
            .entry(header::ACCEPT)
            .or_insert(HeaderValue::from_static("application/json"));
        let deadline = step
            .deadline
            .min(tokio::time::Instant::now() + step.limits.request_timeout);
        let started = Instant::now();
        let outgoing = TransportRequest {
            method: Method::Post,
            url: url.clone(),
            headers,
            body,
            first_byte_timeout: step.limits.first_byte_timeout,
            route: Route::default(),
            redactor: step.scrubber.redactor(),
        };
        let exchange = self.exchange(outgoing, None, step.limits);
        let outcome = timeout_at(deadline, exchange)
            .await
            .unwrap_or(Err(SendError::Timeout(TimeoutPhase::Total)));
        records.push(RequestRecord {
            token_request: true,
            ..RequestRecord::of(step, Method::Post, url, started, &outcome, false)
        });
        outcome
    }

    /// Sends one plugin request: page after page when it asks for
    /// pagination ([`Sender::send_paged`]), else once ([`Sender::send_one`]).
    pub(crate) async fn send(
        &self,
        step: &StepOutbound<'_>,
        mut request: Request,
    ) -> (Result<Response, SendError>, Vec<RequestRecord>) {
        match request.pagination.take() {
            // Boxed: the page loop holds a whole `send_one` future, which
            // inline would double the future every request is sent in (and
            // wasmtime moves that future to the heap once per import call).
            Some(pagination) => Box::pin(self.send_paged(step, request, pagination)).await,
            None => self.send_one(step, request).await,
        }
    }

    /// Sends one plugin request (following redirects if asked, retrying as
    /// its policy says). Returns the scrubbed response or a typed error,
    /// and a record per hop of every attempt.
    async fn send_one(
        &self,
        step: &StepOutbound<'_>,
        request: Request,
    ) -> (Result<Response, SendError>, Vec<RequestRecord>) {
        let mut records = Vec::new();
        let ttl = request.cache_ttl_ms;
        let result = match Prepared::new(step, request) {
            Ok(prepared) => self.send_cached(step, &prepared, ttl, &mut records).await,
            Err(e) => Err(scrub_error(step.scrubber, e)),
        };
        (result, records)
    }

    /// Sends `p` ([`Sender::send_with_retries`]) and scrubs the answer.
    async fn send_scrubbed(
        &self,
        step: &StepOutbound<'_>,
        p: &Prepared<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        self.send_with_retries(step, p, records)
            .await
            .map(|r| scrub_response(step.scrubber, r))
            .map_err(|e| scrub_error(step.scrubber, e))
    }

    /// Sends `p` once, then again while its retry policy allows: a status
    /// the policy names, or a failure [`retry::retryable_error`] accepts
    /// (after the bytes may have reached the server, only for a
    /// [`retry::replay_safe`] request), while attempts, the step's request
    /// limit and the step deadline leave room. Before each retry it sleeps
    /// on the host's clock for the wait the upstream announced or else the
    /// backoff; an announced wait over `max_retry_after` or past the
    /// deadline is not slept: the last answer goes back at once. An open
    /// circuit announces its own wait: the time until it turns half-open.
    /// (Attempts past it go through the circuit's admission, so a
    /// half-open circuit still lets only its probes through.)
    async fn send_with_retries(
        &self,
        step: &StepOutbound<'_>,
        p: &Prepared<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        let replay_safe =
            retry::replay_safe(p.method, p.idempotency_key.is_some(), step.call_idempotent);
        let deadline = self.clock_deadline(step);
        let mut reason = None;
        let mut attempt = 1;
        loop {
            let first = records.len();
            let outcome = self.send_prepared(step, p.clone(), records).await;
            let announced = match &outcome {
                Ok(r) => announced::announced_wait(&r.headers, self.clock.wall()),
                Err(SendError::CircuitOpen(_)) => match self.circuits.state(origin_key(&p.url)) {
                    CircuitState::Open { remaining } => Some(remaining),
                    CircuitState::Closed | CircuitState::HalfOpen => None,
                },
                Err(_) => None,
            };
            for record in &mut records[first..] {
                record.attempt = attempt;
                record.idempotency_key = p
                    .idempotency_key
                    .as_ref()
                    .map(|k| step.scrubber.text(k.clone()));
            }
            if let Some(record) = records.get_mut(first) {
                record.retry_reason = reason.take();
            }
            if let (Some(record), Some(wait)) = (records.last_mut(), announced) {
                record.retry_after_ms = Some(u64::try_from(wait.as_millis()).unwrap_or(u64::MAX));
            }
            let why = match &outcome {
                Ok(r) if replay_safe && p.retry.retries_status(r.status) => {
                    format!("status {}", r.status)
                }
                Ok(_) => return outcome,
                Err(e) => match retry::retryable_error(e, replay_safe) {
                    Some(why) => why,
                    None => return outcome,
                },
            };
            if attempt >= p.retry.max_attempts || !step.traffic.has_room(step.limits) {
                return outcome;
            }
            let wait = match announced {
                Some(wait) if wait > step.limits.max_retry_after => return outcome,
                Some(wait) => wait,
                None => p.retry.backoff(attempt),
            };
            if self.clock.now() + wait >= deadline {
                return outcome;
            }
            self.clock.sleep(wait).await;
            reason = Some(why);
            attempt += 1;
        }
    }

    async fn send_prepared(
        &self,
        step: &StepOutbound<'_>,
        mut p: Prepared<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        let requested = p.timeout.min(step.limits.max_request_timeout);
        let own_deadline = tokio::time::Instant::now() + requested;
        let (deadline, phase) = if own_deadline <= step.deadline {
            (own_deadline, TimeoutPhase::Total)
        } else {
            (step.deadline, TimeoutPhase::StepDeadline)
        };
        let mut visited = vec![p.url.clone()];
        for _hop in 0..=step.limits.max_redirects {
            self.check_url(step, &p.url)?;
            let mut replayed = false;
            let response = loop {
                let ticket = match self.circuits.admit(origin_key(&p.url)) {
                    Ok(ticket) => ticket,
                    Err(e) => {
                        records.push(RequestRecord::refused(step, p.method, &p.url, &e));
                        return Err(e);
                    }
                };
                let admitted = self.admit_budget(step, &p, records).await?;
                step.traffic.count(step.limits)?;
                let (url, headers, body, token) = p.authenticated(self, step, records).await?;
                let (route, insecure) = self.route_for(&p)?;
                let started = Instant::now();
                let outgoing = TransportRequest {
                    method: p.method,
                    url,
                    headers,
                    body,
                    first_byte_timeout: step.limits.first_byte_timeout,
                    route,
                    redactor: step.scrubber.redactor(),
                };
                let exchange = self.exchange(outgoing, p.connection, step.limits);
                let outcome = tokio::select! {
                    biased;
                    r = timeout_at(deadline, exchange) => r.unwrap_or(Err(SendError::Timeout(phase))),
                    () = step.stop.stopped() => Err(SendError::Timeout(TimeoutPhase::StepDeadline)),
                };
                records.push(RequestRecord::of(
                    step, p.method, &p.url, started, &outcome, insecure,
                ));
                self.settle_budget(&p, admitted, &outcome, records.last_mut());
                if let Some(ticket) = ticket {
                    ticket.settle(&outcome);
                }
                let response = outcome?;
                // A 401 to a token the host obtained: renew it and replay once.
                match (token, p.connection) {
                    (Some(token), Some(conn)) if response.status == 401 && !replayed => {
                        conn.token_rejected(&token).await;
                        replayed = true;
                    }
                    _ => break response,
                }
            };
            match redirect_target(&p, &response)? {
                Some(next) if p.follow_redirects => {
                    if visited.contains(&next) {
                        return Err(SendError::Protocol(format!("redirect loop at {next}")));
                    }
                    visited.push(next.clone());
                    p.redirect(response.status, next)?;
                }
                _ => return Ok(response),
            }
        }
        Err(SendError::Protocol(format!(
            "more than {} redirects",
            step.limits.max_redirects
        )))
    }

    /// How the transport reaches the next hop, and whether it relaxes TLS
    /// verification. The connection's TLS (custom roots, client
    /// certificate, relaxed verification, HTTP/2 choice) applies only to its
    /// own origins: a hop elsewhere gets the host's, so no client
    /// certificate follows a redirect away.
    fn route_for(&self, p: &Prepared<'_>) -> Result<(Route, bool), SendError> {
        let conn = p.connection.filter(|c| c.may_authenticate(&p.url));
        let tls = conn.and_then(|c| c.tls.as_deref());
        let insecure = p.url.scheme() == "https" && tls.is_some_and(|t| t.is_insecure());
        if insecure {
            let name = conn.map(|c| c.name.as_str()).unwrap_or_default();
            if !self.allow_insecure_tls {
                return Err(SendError::Denied(format!(
                    "connection `{name}` turns TLS verification off, which the operator's policy does not allow"
                )));
            }
            tracing::warn!(connection = name, origin = %origin_text(&p.url), "insecure TLS: certificate verification relaxed");
        }
        let route = Route {
            tls: conn.and_then(|c| c.tls.clone()),
            http2: conn.and_then(|c| c.http2),
        };
        Ok((route, insecure))
    }

    /// Scheme, user info, allowed hosts (plugin, operator, tenant) and IP literals.
    fn check_url(&self, step: &StepOutbound<'_>, url: &Url) -> Result<(), SendError> {
        let hosts = HostLists {
            plugin: step.plugin_hosts,
            operator: step.operator_hosts,
            tenant: step.tenant_hosts,
        };
        Ok(head::check_url(url, hosts, &self.network)?)
    }

    /// One HTTP exchange: send through the transport, check the response
    /// head, read the body within the cap as it streams.
    async fn exchange(
        &self,
        outgoing: TransportRequest,
        connection: Option<&BoundConnection>,
        limits: &Limits,
    ) -> Result<Response, SendError> {
        let final_url = url_without_secrets(&outgoing.url, connection).to_string();
        let response = self.transport.send(outgoing).await?;
        let (parts, mut body) = response.into_parts();
        check_head_size(&parts.headers, &self.head_caps)?;
        let encoding = parts
            .headers
            .get(header::CONTENT_ENCODING)
            .map(HeaderValue::as_bytes);
        let mut decoder = decode::Decoder::for_encoding(encoding, limits.max_response_bytes)?;
        // The plugin sees the decoded body: the coding and its length no longer apply.
        let decoded = !matches!(decoder, decode::Decoder::Identity(_));
        while let Some(frame) = body.frame().await {
            if let Some(chunk) = frame?.data_ref() {
                decoder.write(chunk)?;
            }
        }
        let data = decoder.finish()?;
        Ok(Response {
            status: parts.status.as_u16(),
            headers: parts
                .headers
                .iter()
                .filter(|(k, _)| {
                    !decoded || (*k != header::CONTENT_ENCODING && *k != header::CONTENT_LENGTH)
                })
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect(),
            body: data,
            final_url,
        })
    }
}

/// A validated request: URL joined, headers checked, body encoded, retry
/// policy checked.
#[derive(Clone)]
struct Prepared<'a> {
    method: Method,
    url: Url,
    headers: HeaderMap,
    body: Bytes,
    connection: Option<&'a BoundConnection>,
    follow_redirects: bool,
    timeout: std::time::Duration,
    retry: Retry,
    /// The `Idempotency-Key` sent on every attempt (from the request's
    /// field or its own header).
    idempotency_key: Option<String>,
}

impl<'a> Prepared<'a> {
    fn new(step: &StepOutbound<'a>, r: Request) -> Result<Self, SendError> {
        let connection = match &r.connection {
            None => None,
            Some(name) => {
                if step.manifest.connection(name).is_none() {
                    return Err(SendError::Credential(format!(
                        "the plugin declares no connection `{name}`"
                    )));
                }
                Some(step.connections.get(name).map(Arc::as_ref).ok_or_else(|| {
                    SendError::Credential(format!("connection `{name}` is not bound to this step"))
                })?)
            }
        };
        if connection.is_some_and(|c| c.base_url.is_none())
            && matches!(
                Url::parse(&r.url),
                Err(url::ParseError::RelativeUrlWithoutBase)
            )
        {
            let name = connection.map(|c| c.name.as_str()).unwrap_or_default();
            return Err(SendError::InvalidRequest(format!(
                "connection `{name}` has no base URL for `{}`",
                r.url
            )));
        }
        let mut url = head::join_url(connection.and_then(|c| c.base_url.as_ref()), &r.url)?;
        let shared = connection.iter().flat_map(|c| c.shared_query.iter());
        head::append_query(
            &mut url,
            shared
                .chain(r.query.iter())
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )?;
        if let Some(conn) = connection
            && let Some((name, _)) = url.query_pairs().find(|(k, _)| conn.reserves_query(k))
        {
            return Err(SendError::InvalidRequest(format!(
                "query parameter `{name}` carries the connection's credential and is set by the host"
            )));
        }
        let mut headers = HeaderMap::new();
        for (k, v) in connection
            .iter()
            .flat_map(|c| c.shared_headers.iter())
            .chain(r.headers.iter())
        {
            let (name, value) = head::plugin_header(k, v)?;
            if connection.is_some_and(|c| c.reserves_header(name.as_str())) {
                return Err(SendError::InvalidRequest(format!(
                    "header `{name}` carries the connection's credential and is set by the host"
                )));
            }
            headers.append(name, value);
        }
        let (body, content_type) = body::encode(r.body, &headers)?;
        if body.len() > step.limits.max_request_body_bytes {
            return Err(SendError::Limit(format!(
                "the request body exceeds {} bytes",
                step.limits.max_request_body_bytes
            )));
        }
        if let Some(ct) = content_type {
            headers.insert(header::CONTENT_TYPE, ct);
        }
        headers.insert(
            header::ACCEPT_ENCODING,
            HeaderValue::from_static(decode::ACCEPT_ENCODING),
        );
        if let Some(key) = &r.idempotency_key {
            let (name, value) = head::header_pair("idempotency-key", key)?;
            headers.insert(name, value);
        }
        let retry = Retry::new(r.retry.as_ref(), step.limits)?;
        let idempotency_key = headers
            .get("idempotency-key")
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
        let timeout = r
            .timeout_ms
            .map(|ms| std::time::Duration::from_millis(ms.into()))
            .unwrap_or(step.limits.request_timeout);
        Ok(Self {
            method: r.method,
            url,
            headers,
            body,
            connection,
            follow_redirects: r.follow_redirects,
            timeout,
            retry,
            idempotency_key,
        })
    }

    /// The URL, headers and body of the next hop, with the credential's
    /// additions applied only when the hop's origin belongs to the
    /// connection. Also returns the access token used, if the host obtained
    /// one; the record of a token request made for it goes to `records`.
    async fn authenticated(
        &self,
        sender: &Sender,
        step: &StepOutbound<'_>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<(Url, HeaderMap, Bytes, Option<Secret>), SendError> {
        let (mut url, mut headers, mut body) =
            (self.url.clone(), self.headers.clone(), self.body.clone());
        let mut token = None;
        if let Some(conn) = self.connection.filter(|c| c.may_authenticate(&self.url)) {
            if let Some(source) = conn.token_source() {
                token = Some(
                    sender
                        .access_token(source, &conn.name, step, records)
                        .await?,
                );
            }
            let added = conn.apply(token.as_ref())?;
            additions::apply(&conn.name, added, &mut url, &mut headers, &mut body)?;
        }
        Ok((url, headers, body, token))
    }

    /// Moves to a redirect target: 301/302/303 turn into a body-less GET
    /// (HEAD stays HEAD), 307/308 keep method and body; HTTPS to HTTP is refused.
    fn redirect(&mut self, status: u16, next: Url) -> Result<(), SendError> {
        if self.url.scheme() == "https" && next.scheme() == "http" {
            return Err(SendError::Denied(format!(
                "redirect from https to http ({}) is refused",
                origin_text(&next)
            )));
        }
        if matches!(status, 301..=303) && self.method != Method::Head {
            self.method = Method::Get;
            self.body = Bytes::new();
            self.headers.remove(header::CONTENT_TYPE);
        }
        self.url = next;
        Ok(())
    }
}

/// The host's caps on a response head ([`ClientSettings`]).
struct HeadCaps {
    /// Header fields.
    fields: usize,
    /// Bytes of all header fields together.
    bytes: usize,
}

/// The response head within the header caps. hyper's HTTP/1 settings bound
/// what is buffered; this checks the exact figures (and HTTP/2 heads alike).
fn check_head_size(headers: &HeaderMap, caps: &HeadCaps) -> Result<(), SendError> {
    if headers.len() > caps.fields {
        return Err(SendError::TooLarge(format!(
            "the response has {} header fields, more than {}",
            headers.len(),
            caps.fields
        )));
    }
    let bytes: usize = headers
        .iter()
        .map(|(k, v)| k.as_str().len() + v.len() + 4)
        .sum();
    if bytes > caps.bytes {
        return Err(SendError::TooLarge(format!(
            "the response headers take {bytes} bytes, more than {}",
            caps.bytes
        )));
    }
    Ok(())
}

/// The redirect target of a 3xx response with a `Location`, if any.
fn redirect_target(p: &Prepared<'_>, response: &Response) -> Result<Option<Url>, SendError> {
    if !matches!(response.status, 301 | 302 | 303 | 307 | 308) {
        return Ok(None);
    }
    let Some((_, location)) = response
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("location"))
    else {
        return Ok(None);
    };
    p.url
        .join(location)
        .map(Some)
        .map_err(|e| SendError::Protocol(format!("invalid redirect location `{location}`: {e}")))
}

/// The URL the plugin may see: a query credential the host added is removed.
fn url_without_secrets(url: &Url, connection: Option<&BoundConnection>) -> Url {
    let Some(conn) = connection else {
        return url.clone();
    };
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !conn.reserves_query(k))
        .map(|(k, v)| (k.into(), v.into()))
        .collect();
    let mut clean = url.clone();
    clean.set_query(None);
    if !kept.is_empty() {
        clean.query_pairs_mut().extend_pairs(kept);
    }
    clean
}

impl From<Refusal> for SendError {
    fn from(r: Refusal) -> Self {
        match r {
            Refusal::Denied(m) => SendError::Denied(m),
            Refusal::Invalid(m) => SendError::InvalidRequest(m),
        }
    }
}

fn origin_text(url: &Url) -> String {
    url.origin().ascii_serialization()
}

/// The origin as the URL spells it (scheme, host, port unless the default),
/// without allocating: the same text as [`origin_text`] for the `http(s)`
/// URLs without user info that [`Sender::check_url`] lets through.
fn origin_key(url: &Url) -> &str {
    &url[..url::Position::BeforePath]
}

fn scrub_error(s: &Scrubber, e: SendError) -> SendError {
    e.map_message(|m| s.text(m))
}

fn scrub_response(s: &Scrubber, r: Response) -> Response {
    if s.is_empty() {
        return r;
    }
    Response {
        status: r.status,
        headers: r.headers.into_iter().map(|(k, v)| (k, s.text(v))).collect(),
        body: s.body(r.body),
        final_url: s.text(r.final_url),
    }
}

#[cfg(test)]
mod pipeline_tests;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origin_key_is_the_origin_text() {
        for url in [
            "https://api.test/v1?a=b",
            "http://api.test:8080/",
            "https://API.Test:443/x",
            "http://[::1]:9/p",
            "https://bücher.test/",
        ] {
            let url = Url::parse(url).unwrap();
            assert_eq!(origin_key(&url), origin_text(&url));
        }
    }
}
