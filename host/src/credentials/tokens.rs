//! The token manager: access tokens obtained by the host (OAuth 2 grants),
//! cached per tenant and connection until shortly before they expire, and
//! refreshed single-flight: however many steps need a new token at once, one
//! token request is made and the others wait for its result.
//!
//! The manager makes no request itself: [`TokenSource::begin`] hands the
//! outbound pipeline a [`TokenRequest`] to send (through the same checks,
//! limits and records as every request) together with a [`PendingToken`]
//! that keeps the connection's token state locked, and the pipeline hands
//! the answer back to [`PendingToken::finish`], which reads and caches it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use url::Url;

use super::Scrubber;
use super::jwt::JwtSigner;
use super::scrub::MIN_SECRET_LEN;
use crate::clock::{Clock, SystemClock};
use crate::exchange::{Response, SendError};
use crate::manifest::ClientAuth;
use crate::secret::Secret;

/// Where the token manager writes back what it learns about a connection
/// loaded from the connection store: a refresh token the token endpoint
/// rotated, and a refusal that needs the operator's attention. The store
/// seam (`store::ConnectionStore`, which sits above this module and loads
/// connections from its records) provides it; connections bound from files
/// are never written back. The token manager calls it from steps,
/// concurrently, hence `Send + Sync`.
pub(crate) trait TokenPersistence: std::fmt::Debug + Send + Sync {
    /// Replaces the refresh token of the tenant's connection `id` with
    /// `rotated`, at once. Awaited once per rotation, while the connection's
    /// token state is locked, right after a token endpoint answered with a
    /// new refresh token and before any step uses the new access token. On
    /// failure the caller logs a warning and goes on: the rotated token is
    /// kept in memory and used until the host restarts, but the record keeps
    /// the old one, which a provider that revokes rotated tokens will refuse
    /// after a restart (the connection then needs re-authorization).
    fn persist_refresh_token<'a>(
        &'a self,
        tenant: &'a str,
        id: &'a str,
        rotated: &'a Secret,
    ) -> PersistFuture<'a>;

    /// Records that the tenant's connection `id` needs re-authorization: its
    /// token endpoint refused the client or the grant. Awaited once per
    /// refusal, after the cell's own flag is set (steps see the refusal from
    /// the flag, not from here). On failure the caller logs a warning: steps
    /// on this host still refuse the connection, but listings of the store
    /// do not show that it needs new secrets.
    fn mark_needs_reauthorization<'a>(&'a self, tenant: &'a str, id: &'a str) -> PersistFuture<'a>;
}

/// What a [`TokenPersistence`] write returns.
pub(crate) type PersistFuture<'a> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), PersistError>> + Send + 'a>>;

/// Why a [`TokenPersistence`] write failed; only logged.
pub(crate) type PersistError = Box<dyn std::error::Error + Send + Sync>;

/// A token is renewed this long before the expiry its issuer announced.
pub(crate) const EXPIRY_SKEW: Duration = Duration::from_secs(30);

/// How a connection obtains its access tokens.
#[derive(Debug)]
pub(crate) enum Grant {
    /// OAuth 2 `grant_type=client_credentials`.
    ClientCredentials,
    /// OAuth 2 `grant_type=refresh_token`; the provider may rotate the refresh token.
    RefreshToken,
    /// OAuth 2 `grant_type=password` with the resource owner's credentials.
    Password { username: Secret, password: Secret },
    /// A JWT signed by the host: the token itself, or exchanged at the
    /// endpoint (`grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer`).
    Jwt(Box<JwtSigner>),
}

/// A token endpoint and how the client authenticates there.
#[derive(Debug)]
pub(crate) struct Endpoint {
    pub(super) token_url: Url,
    pub(super) exchange: Exchange,
    pub(super) scopes: Vec<String>,
    pub(super) audience: Option<String>,
    pub(super) client_auth: ClientAuth,
    pub(super) client_id: Option<Secret>,
    pub(super) client_secret: Option<Secret>,
}

/// How a token endpoint is asked for a token and answers.
#[derive(Debug)]
pub(crate) enum Exchange {
    /// An OAuth 2 token request: a form POST of the grant, answered by an
    /// OAuth 2 token response (RFC 6749 §5).
    OAuth2,
    /// A host-signed JWT as the bearer of an empty POST, answered by a JSON
    /// object with the token and its RFC 3339 expiry under these fields
    /// (`config::JwtExchange::Bearer`); `headers` are the connection's
    /// shared headers when the endpoint is one of its origins.
    JwtBearer {
        token_field: String,
        expires_at_field: String,
        headers: HeaderMap,
    },
}

/// How a connection obtains its access tokens: the grant, the token endpoint
/// (absent for a JWT sent as it is), and the shared token cache.
#[derive(Debug)]
pub(crate) struct TokenSource {
    pub(super) grant: Grant,
    pub(super) endpoint: Option<Endpoint>,
    /// The shared cache entry of this tenant's connection.
    pub(super) cell: Arc<TokenCell>,
}

/// Cached token state of one connection of one tenant, shared by all steps.
#[derive(Debug)]
pub(crate) struct TokenCell {
    tenant: String,
    id: String,
    /// Settings and secrets, the refresh token excepted.
    fingerprint: [u8; 32],
    /// Hashes of the refresh tokens this cell has held (configured and rotated):
    /// a connection loaded with one of them is the same connection.
    refresh_tokens_seen: Mutex<Vec<[u8; 32]>>,
    /// Where rotated refresh tokens and refusals are persisted, for stored connections.
    store: Option<Arc<dyn TokenPersistence>>,
    /// What expiries are measured against and JWTs are dated by.
    clock: CellClock,
    /// Token requests started so far (read without the lock to detect that a
    /// request finished while a caller waited).
    attempts: AtomicU64,
    needs_reauthorization: AtomicBool,
    state: tokio::sync::Mutex<TokenState>,
}

#[derive(Debug)]
struct TokenState {
    access: Option<AccessToken>,
    /// The current refresh token (rotated ones replace the configured one).
    refresh_token: Option<Secret>,
    /// The outcome of the last failed request, handed to those who waited on it.
    last_failure: Option<SendError>,
}

#[derive(Debug, Clone)]
struct AccessToken {
    token: Secret,
    /// None when the issuer announced no lifetime: kept until a 401.
    renew_at: Option<Instant>,
}

impl TokenCell {
    /// Keeps a rotated refresh token: in the cell's memory, and in the store
    /// (one transaction) for a stored connection.
    async fn persist_refresh_token(&self, rotated: &Secret) {
        self.refresh_tokens_seen
            .lock()
            .expect("poisoned")
            .push(token_hash(rotated));
        if let Some(store) = &self.store
            && let Err(e) = store
                .persist_refresh_token(&self.tenant, &self.id, rotated)
                .await
        {
            tracing::warn!(tenant = %self.tenant, connection = %self.id, "cannot persist the rotated refresh token: {e}");
        }
    }

    async fn mark_needs_reauthorization(&self) {
        self.needs_reauthorization.store(true, Ordering::SeqCst);
        if let Some(store) = &self.store
            && let Err(e) = store
                .mark_needs_reauthorization(&self.tenant, &self.id)
                .await
        {
            tracing::warn!(tenant = %self.tenant, connection = %self.id, "cannot record that re-authorization is needed: {e}");
        }
    }

    /// Whether a token request was refused and the connection needs new
    /// secrets from the operator.
    pub(crate) fn needs_reauthorization(&self) -> bool {
        self.needs_reauthorization.load(Ordering::SeqCst)
    }
}

/// The host's clock as a token cell holds it.
struct CellClock(Arc<dyn Clock>);

impl std::ops::Deref for CellClock {
    type Target = dyn Clock;

    fn deref(&self) -> &dyn Clock {
        &*self.0
    }
}

impl std::fmt::Debug for CellClock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Clock")
    }
}

/// Identifies a connection's token cache: tenant and connection id.
type CellKey = (String, String);

/// Token caches of every tenant's connections, shared across steps.
pub(crate) struct TokenManager {
    cells: Mutex<HashMap<CellKey, Arc<TokenCell>>>,
    store: Option<Arc<dyn TokenPersistence>>,
    clock: Arc<dyn Clock>,
}

impl Default for TokenManager {
    /// No store, the system clock.
    fn default() -> Self {
        Self::new(None, Arc::new(SystemClock))
    }
}

impl TokenManager {
    /// A token manager that persists rotated refresh tokens and refusals of
    /// stored connections in `store`, and reads the time from `clock`
    /// (token expiry, JWT `iat`/`exp`).
    pub(crate) fn new(store: Option<Arc<dyn TokenPersistence>>, clock: Arc<dyn Clock>) -> Self {
        Self {
            cells: Mutex::default(),
            store,
            clock,
        }
    }

    /// The cache entry of this tenant's connection. A connection whose
    /// settings or secrets changed (another fingerprint, or a refresh token
    /// the cell never held) starts afresh. `stored`: the connection came from
    /// the store, where rotations and refusals are written back.
    pub(crate) fn cell(
        &self,
        tenant: &str,
        id: &str,
        fingerprint: [u8; 32],
        refresh_token: Option<Secret>,
        stored: bool,
    ) -> Arc<TokenCell> {
        let mut cells = self.cells.lock().expect("token cells poisoned");
        let key = (tenant.to_owned(), id.to_owned());
        let refresh_hash = refresh_token.as_ref().map(token_hash);
        if let Some(cell) = cells.get(&key).filter(|c| {
            c.fingerprint == fingerprint
                && refresh_hash
                    .is_none_or(|h| c.refresh_tokens_seen.lock().expect("poisoned").contains(&h))
        }) {
            return cell.clone();
        }
        let cell = Arc::new(TokenCell {
            tenant: tenant.to_owned(),
            id: id.to_owned(),
            refresh_tokens_seen: Mutex::new(refresh_hash.into_iter().collect()),
            store: self.store.clone().filter(|_| stored),
            clock: CellClock(self.clock.clone()),
            fingerprint,
            attempts: AtomicU64::new(0),
            needs_reauthorization: AtomicBool::new(false),
            state: tokio::sync::Mutex::new(TokenState {
                access: None,
                refresh_token,
                last_failure: None,
            }),
        });
        cells.insert(key, cell.clone());
        cell
    }

    /// Whether this tenant's connection needs re-authorization (a token
    /// request was refused); `None` if it has not been used.
    pub(crate) fn needs_reauthorization(&self, tenant: &str, id: &str) -> Option<bool> {
        let cells = self.cells.lock().expect("token cells poisoned");
        cells
            .get(&(tenant.to_owned(), id.to_owned()))
            .map(|c| c.needs_reauthorization())
    }
}

fn token_hash(token: &Secret) -> [u8; 32] {
    fingerprint([token.expose()])
}

/// A fingerprint of everything that identifies a connection's token source.
pub(crate) fn fingerprint<'a>(parts: impl IntoIterator<Item = &'a str>) -> [u8; 32] {
    let mut hash = Sha256::new();
    for p in parts {
        hash.update((p.len() as u64).to_le_bytes());
        hash.update(p.as_bytes());
    }
    hash.finalize().into()
}

/// The `client_id:client_secret` pair a token request sends with HTTP Basic,
/// each form-encoded first (RFC 6749 §2.3.1). It is a secret of its own: its
/// base64 does not contain the client secret's when encoding changes it.
pub(super) fn client_basic_pair(id: &Secret, secret: &Secret) -> Secret {
    let enc =
        |s: &Secret| form_urlencoded::byte_serialize(s.expose().as_bytes()).collect::<String>();
    Secret::new(format!("{}:{}", enc(id), enc(secret)))
}

/// A token endpoint's successful answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: Secret,
    token_type: Option<String>,
    expires_in: Option<u64>,
    refresh_token: Option<Secret>,
}

/// A token endpoint's error answer: the OAuth 2 code (RFC 6749 §5.2) or,
/// from other endpoints such as GitHub's, the `message`; only it is kept.
#[derive(Deserialize)]
struct TokenErrorResponse {
    #[serde(alias = "message")]
    error: String,
}

/// A token request for the outbound pipeline to make: a POST to the token
/// endpoint. The body and the headers carry the client's secrets (hence no
/// `Debug`).
pub(crate) struct TokenRequest {
    /// The token endpoint.
    pub(crate) url: Url,
    /// The body's content type and the client's authentication (HTTP Basic,
    /// or the JWT as a bearer), if it is not in the body.
    pub(crate) headers: HeaderMap,
    /// The body: the form-encoded grant and its parameters, or nothing.
    pub(crate) body: Bytes,
}

/// What a connection needs before a request can carry its access token.
pub(crate) enum TokenTurn<'a> {
    /// A valid token: cached, or signed by the host without a request.
    Ready(Secret),
    /// A token request to make. Until its answer is handed to
    /// [`PendingToken::finish`] (or the pending token is dropped, which
    /// leaves the cache as it was) every other caller for this tenant's
    /// connection waits.
    Request(Box<TokenRequest>, PendingToken<'a>),
}

/// A token request in flight: holds the connection's token state, which is
/// what makes the request single-flight.
#[must_use = "the token request's answer goes to `finish`"]
pub(crate) struct PendingToken<'a> {
    source: &'a TokenSource,
    connection: &'a str,
    state: tokio::sync::MutexGuard<'a, TokenState>,
}

impl TokenSource {
    /// The first half of obtaining a valid access token: the cached one, or
    /// one signed here, or a token request for the caller to make (one
    /// however many callers wait: the others wait here, and take the token
    /// it obtained or the error it met). A token and any rotated refresh
    /// token are taught to `scrubber`. `connection` names the connection in
    /// errors.
    pub(crate) async fn begin<'a>(
        &'a self,
        connection: &'a str,
        scrubber: &Scrubber,
    ) -> Result<TokenTurn<'a>, SendError> {
        let cell = &self.cell;
        let seen = cell.attempts.load(Ordering::SeqCst);
        let mut state = cell.state.lock().await;
        if let Some(access) = state
            .access
            .as_ref()
            .filter(|a| a.renew_at.is_none_or(|t| cell.clock.now() < t))
        {
            scrubber.learn(&access.token);
            return Ok(TokenTurn::Ready(access.token.clone()));
        }
        if cell.needs_reauthorization() {
            return Err(SendError::Credential(format!(
                "connection `{connection}` needs re-authorization: its token request was refused"
            )));
        }
        if cell.attempts.load(Ordering::SeqCst) != seen
            && let Some(failure) = &state.last_failure
        {
            return Err(failure.clone());
        }
        cell.attempts.fetch_add(1, Ordering::SeqCst);
        let fail = |m: String| SendError::Credential(format!("connection `{connection}`: {m}"));
        let obtained = match (&self.grant, &self.endpoint) {
            (Grant::Jwt(signer), None) => {
                let now = cell.clock.wall();
                signer
                    .sign(now)
                    .map(|(token, exp)| TokenResponse {
                        access_token: token,
                        token_type: None,
                        expires_in: Some(exp.duration_since(now).unwrap_or_default().as_secs()),
                        refresh_token: None,
                    })
                    .map_err(|m| (fail(m), false))
            }
            (_, Some(endpoint)) => {
                match self.token_request(endpoint, state.refresh_token.as_ref(), scrubber) {
                    Ok(request) => {
                        let request = Box::new(request);
                        let pending = PendingToken {
                            source: self,
                            connection,
                            state,
                        };
                        return Ok(TokenTurn::Request(request, pending));
                    }
                    Err(m) => Err((fail(m), true)),
                }
            }
            (_, None) => Err((
                SendError::Credential(format!("connection `{connection}` has no token endpoint")),
                false,
            )),
        };
        settle(cell, &mut state, obtained, scrubber)
            .await
            .map(TokenTurn::Ready)
    }

    /// Forgets `rejected` (the API answered 401 to it), unless another caller
    /// already replaced it.
    pub(crate) async fn rejected(&self, rejected: &Secret) {
        let mut state = self.cell.state.lock().await;
        if state
            .access
            .as_ref()
            .is_some_and(|a| a.token.expose() == rejected.expose())
        {
            state.access = None;
        }
    }

    /// The token request: a form POST of the grant for an OAuth 2
    /// endpoint, or the JWT as the bearer of an empty POST. A JWT is taught
    /// to `scrubber`.
    fn token_request(
        &self,
        endpoint: &Endpoint,
        refresh_token: Option<&Secret>,
        scrubber: &Scrubber,
    ) -> Result<TokenRequest, String> {
        let url = endpoint.token_url.clone();
        match (&endpoint.exchange, &self.grant) {
            (Exchange::OAuth2, _) => {
                let (headers, body) = self.token_form(endpoint, refresh_token, scrubber)?;
                Ok(TokenRequest { url, headers, body })
            }
            (Exchange::JwtBearer { headers, .. }, Grant::Jwt(signer)) => {
                let (jwt, _) = signer.sign(self.cell.clock.wall())?;
                scrubber.learn(&jwt);
                let mut headers = headers.clone();
                headers.insert(
                    header::AUTHORIZATION,
                    sensitive(&format!("Bearer {}", jwt.expose())),
                );
                let body = Bytes::new();
                Ok(TokenRequest { url, headers, body })
            }
            (Exchange::JwtBearer { .. }, _) => Err("only a JWT is exchanged as a bearer".into()),
        }
    }

    /// The OAuth 2 token request's client authentication header and form body.
    fn token_form(
        &self,
        endpoint: &Endpoint,
        refresh_token: Option<&Secret>,
        scrubber: &Scrubber,
    ) -> Result<(HeaderMap, Bytes), String> {
        let mut form = form_urlencoded::Serializer::new(String::new());
        match &self.grant {
            Grant::ClientCredentials => form.append_pair("grant_type", "client_credentials"),
            Grant::RefreshToken => {
                let token = refresh_token.ok_or("no refresh token")?;
                form.append_pair("grant_type", "refresh_token")
                    .append_pair("refresh_token", token.expose())
            }
            Grant::Jwt(signer) => {
                let (assertion, _) = signer.sign(self.cell.clock.wall())?;
                scrubber.learn(&assertion);
                form.append_pair("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer")
                    .append_pair("assertion", assertion.expose())
            }
            Grant::Password { username, password } => form
                .append_pair("grant_type", "password")
                .append_pair("username", username.expose())
                .append_pair("password", password.expose()),
        };
        if !endpoint.scopes.is_empty() {
            form.append_pair("scope", &endpoint.scopes.join(" "));
        }
        if let Some(audience) = &endpoint.audience {
            form.append_pair("audience", audience);
        }
        let mut headers = HeaderMap::new();
        headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/x-www-form-urlencoded"),
        );
        match (
            &endpoint.client_id,
            &endpoint.client_secret,
            endpoint.client_auth,
        ) {
            (None, _, _) => {}
            (Some(id), Some(secret), ClientAuth::Basic) => {
                let pair = client_basic_pair(id, secret);
                let basic = format!("Basic {}", STANDARD.encode(pair.expose().as_bytes()));
                headers.insert(header::AUTHORIZATION, sensitive(&basic));
            }
            (Some(id), secret, _) => {
                form.append_pair("client_id", id.expose());
                if let Some(secret) = secret {
                    form.append_pair("client_secret", secret.expose());
                }
            }
        }
        let text = zeroize::Zeroizing::new(form.finish());
        Ok((headers, Bytes::copy_from_slice(text.as_bytes())))
    }
}

impl PendingToken<'_> {
    /// The second half: the token endpoint's answer to the [`TokenRequest`]
    /// (or why none came), read, checked and cached for every caller. A
    /// refusal (400 or 401) marks the connection as needing
    /// re-authorization. The access token and any rotated refresh token are
    /// taught to `scrubber`, and a rotated refresh token is persisted.
    pub(crate) async fn finish(
        mut self,
        outcome: Result<Response, SendError>,
        scrubber: &Scrubber,
    ) -> Result<Secret, SendError> {
        let source = self.source;
        let obtained = match source.endpoint.as_ref().map(|e| &e.exchange) {
            Some(Exchange::JwtBearer {
                token_field,
                expires_at_field,
                ..
            }) => read_bearer_answer(
                self.connection,
                outcome,
                (token_field, expires_at_field),
                source.cell.clock.wall(),
            ),
            _ => read_token_response(self.connection, outcome),
        };
        settle(&self.source.cell, &mut self.state, obtained, scrubber).await
    }
}

/// Caches the outcome of an attempt to obtain a token, for the caller and
/// every caller waiting on it. The error says whether the endpoint refused
/// the client or grant (re-authorization needed).
async fn settle(
    cell: &TokenCell,
    state: &mut TokenState,
    obtained: Result<TokenResponse, (SendError, bool)>,
    scrubber: &Scrubber,
) -> Result<Secret, SendError> {
    match obtained {
        Ok(answer) => {
            if let Some(rotated) = answer.refresh_token {
                scrubber.learn(&rotated);
                cell.persist_refresh_token(&rotated).await;
                state.refresh_token = Some(rotated);
            }
            scrubber.learn(&answer.access_token);
            let renew_at = answer
                .expires_in
                .map(|s| cell.clock.now() + Duration::from_secs(s).saturating_sub(EXPIRY_SKEW));
            state.access = Some(AccessToken {
                token: answer.access_token.clone(),
                renew_at,
            });
            state.last_failure = None;
            Ok(answer.access_token)
        }
        Err((error, refused)) => {
            if refused {
                cell.mark_needs_reauthorization().await;
            }
            state.access = None;
            // The step's own request limit is not news for the steps waiting on this attempt.
            if !matches!(error, SendError::Limit(_)) {
                state.last_failure = Some(error.clone());
            }
            Err(error)
        }
    }
}

/// Why a token could not be obtained, and whether the endpoint refused the
/// client or grant (re-authorization needed).
type Failure = (SendError, bool);

/// The token endpoint's answer read as an OAuth 2 token response.
fn read_token_response(
    connection: &str,
    outcome: Result<Response, SendError>,
) -> Result<TokenResponse, Failure> {
    let fail = |m: String| (credential_error(connection, m), false);
    let response = successful(connection, outcome, &[400, 401])?;
    let answer: TokenResponse = serde_json::from_slice(&response.body)
        .map_err(|_| fail("the token endpoint's answer is not an OAuth 2 token response".into()))?;
    if answer
        .token_type
        .as_deref()
        .is_some_and(|t| !t.eq_ignore_ascii_case("bearer"))
    {
        return Err(fail(
            "the token endpoint issued a token type other than bearer".into(),
        ));
    }
    long_enough(connection, answer)
}

/// The answer to a JWT bearer exchange: a JSON object with the token under
/// `fields.0` and its RFC 3339 expiry under `fields.1` (without one, the
/// token is kept until a 401), measured against `now`, the clock's wall
/// time. 400, 401, 403 and 404 refuse the key or the installation.
fn read_bearer_answer(
    connection: &str,
    outcome: Result<Response, SendError>,
    (token_field, expires_at_field): (&str, &str),
    now: SystemTime,
) -> Result<TokenResponse, Failure> {
    let fail = |m: String| (credential_error(connection, m), false);
    let response = successful(connection, outcome, &[400, 401, 403, 404])?;
    let answer: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&response.body)
        .map_err(|_| fail("the token endpoint's answer is not a JSON object".into()))?;
    let token = answer
        .get(token_field)
        .and_then(|t| t.as_str())
        .ok_or_else(|| {
            fail(format!(
                "the token endpoint's answer has no `{token_field}`"
            ))
        })?;
    let expires_in = match answer.get(expires_at_field) {
        None => None,
        Some(at) => {
            let at = at
                .as_str()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
                .ok_or_else(|| {
                    fail(format!(
                        "the token endpoint's `{expires_at_field}` is not an RFC 3339 time"
                    ))
                })?;
            let at = SystemTime::from(at);
            Some(at.duration_since(now).unwrap_or_default().as_secs())
        }
    };
    long_enough(
        connection,
        TokenResponse {
            access_token: Secret::new(token),
            token_type: None,
            expires_in,
            refresh_token: None,
        },
    )
}

/// The token endpoint's successful (2xx) answer. Another status is a
/// failure, a refusal (re-authorization needed) if it is one of `refusals`.
fn successful(
    connection: &str,
    outcome: Result<Response, SendError>,
    refusals: &[u16],
) -> Result<Response, Failure> {
    let response = outcome.map_err(|e| match e {
        // The step's own limit, not a credential problem.
        SendError::Limit(_) => (e, false),
        e => (
            credential_error(connection, format!("token request failed: {e}")),
            false,
        ),
    })?;
    if (200..300).contains(&response.status) {
        return Ok(response);
    }
    let code = serde_json::from_slice::<TokenErrorResponse>(&response.body)
        .map(|e| e.error.chars().take(64).collect::<String>())
        .unwrap_or_else(|_| "no error code".into());
    let message = format!("the token endpoint answered {} ({code})", response.status);
    Err((
        credential_error(connection, message),
        refusals.contains(&response.status),
    ))
}

/// `answer`, unless a token in it is too short to scrub.
fn long_enough(connection: &str, answer: TokenResponse) -> Result<TokenResponse, Failure> {
    let short = |t: &Secret| t.expose().chars().count() < MIN_SECRET_LEN;
    if short(&answer.access_token) || answer.refresh_token.as_ref().is_some_and(short) {
        return Err((
            credential_error(
                connection,
                format!(
                    "the token endpoint issued a token shorter than {MIN_SECRET_LEN} characters, too short to scrub safely"
                ),
            ),
            false,
        ));
    }
    Ok(answer)
}

/// A credential failure of `connection`.
fn credential_error(connection: &str, message: String) -> SendError {
    SendError::Credential(format!("connection `{connection}`: {message}"))
}

/// A header value that carries a secret.
fn sensitive(value: &str) -> HeaderValue {
    let mut value = HeaderValue::try_from(value).expect("a token is a valid header value");
    value.set_sensitive(true);
    value
}
