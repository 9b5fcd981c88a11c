//! The default [`Transport`]: hyper + rustls, pooled per origin, with a
//! resolver that vets every address before a socket is opened, so the client
//! connects only to addresses the network policy allows (no second lookup).

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::Uri;
use http_body_util::Full;
use hyper_rustls::MaybeHttpsStream;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::connect::capture_connection;
use hyper_util::client::legacy::connect::dns::Name;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_rustls::TlsConnector;

use super::transport::{
    Transport, TransportBody, TransportError, TransportRequest, TransportResponse,
};
use super::{origin_key, origin_text};
use crate::exchange::{SendError, TimeoutPhase};
use crate::limits::ClientSettings;
use crate::tls::{self, ConnectionTls};
use courier_egress::NetworkPolicy;
use courier_egress::head;

/// The host's own transport: the pooled client for the request's TLS
/// identity and HTTP/2 choice, names resolved through [`Resolve`] and every
/// address vetted against the network policy, per-origin connection slots
/// (held until the body is read or dropped), and the connect, TLS-handshake
/// and first-byte timeouts.
pub(crate) struct HttpTransport {
    clients: Clients,
    slots: OriginSlots,
}

impl HttpTransport {
    /// Clients built from `settings`, resolving through `resolver`,
    /// connecting only to addresses `network` allows, offering HTTP/2 when
    /// `http2` (unless a connection says otherwise).
    pub(crate) fn new(
        resolver: Arc<dyn Resolve>,
        network: Arc<NetworkPolicy>,
        settings: &ClientSettings,
        http2: bool,
    ) -> Self {
        Self {
            clients: Clients::new(resolver, network, settings, http2),
            slots: OriginSlots::new(settings),
        }
    }

    async fn exchange(&self, request: TransportRequest) -> Result<TransportResponse, SendError> {
        let TransportRequest {
            method,
            url,
            headers,
            body,
            first_byte_timeout,
            route,
            redactor: _,
        } = request;
        let client = self.clients.get(route.tls.as_deref(), route.http2);
        let slot = self.slots.acquire(origin_key(&url)).await.ok_or_else(|| {
            SendError::Limit(format!(
                "no free connection to {} within {:?}",
                origin_text(&url),
                self.slots.wait()
            ))
        })?;
        let mut builder = http::Request::builder()
            .method(method.as_str())
            .uri(head::request_uri(&url)?);
        *builder.headers_mut().expect("builder is valid") = headers;
        let request = builder
            .body(Full::new(body))
            .map_err(|e| SendError::InvalidRequest(format!("cannot build request: {e}")))?;
        let response = head_of(&client, request, first_byte_timeout).await?;
        Ok(response.map(|body| TransportBody::pooled(body, slot)))
    }
}

impl Transport for HttpTransport {
    fn send(
        &self,
        request: TransportRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TransportResponse, TransportError>> + Send + '_>> {
        Box::pin(async move { self.exchange(request).await.map_err(TransportError::from) })
    }
}

/// Sends a request and waits for the response head: connect and TLS are
/// timed by the connector, then the first-byte timeout runs from the
/// moment a connection (new or pooled) carries the request.
async fn head_of(
    client: &HttpClient,
    mut request: http::Request<Full<Bytes>>,
    first_byte_timeout: Duration,
) -> Result<http::Response<hyper::body::Incoming>, SendError> {
    let mut connection = capture_connection(&mut request);
    let response = client.request(request);
    tokio::pin!(response);
    // The response first: when a pooled connection is checked out at
    // once, polling it records the connection, so the wait below is
    // ready in the same poll. In the other order the record would wake
    // this task while it runs, and tokio reschedules a task woken during
    // its own poll behind the others and wakes an idle worker for it.
    tokio::select! {
        biased;
        done = &mut response => return done.map_err(classify_client_error),
        _ = connection.wait_for_connection_metadata() => {}
    }
    match tokio::time::timeout(first_byte_timeout, response).await {
        Ok(done) => done.map_err(classify_client_error),
        Err(_) => Err(SendError::Timeout(TimeoutPhase::FirstByte)),
    }
}

/// Maps a client failure to a typed error by what caused it.
fn classify_client_error(e: hyper_util::client::legacy::Error) -> SendError {
    let chain: Vec<&(dyn std::error::Error + 'static)> =
        std::iter::successors(Some(&e as &(dyn std::error::Error + 'static)), |err| {
            err.source()
        })
        .collect();
    // The most specific causes first, wherever they sit in the chain: a TLS
    // alert after the handshake (a refused client certificate) surfaces
    // inside hyper's "connection error".
    for err in &chain {
        if err.is::<TlsHandshakeTimeout>() {
            return SendError::Timeout(TimeoutPhase::TlsHandshake);
        }
        if let Some(r) = err.downcast_ref::<ResolveError>() {
            return match r {
                ResolveError::Denied(m) => SendError::Denied(m.clone()),
                ResolveError::Dns(m) => SendError::Dns(m.clone()),
            };
        }
        let io_inner = err
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref());
        if let Some(tls) = err
            .downcast_ref::<rustls::Error>()
            .or_else(|| io_inner.and_then(|i| i.downcast_ref()))
        {
            return SendError::Tls(tls.to_string());
        }
        // A TLS alert received after the handshake (the server refusing a
        // missing or rejected client certificate) reaches us as invalid data
        // from the TLS stream; TCP alone never produces it.
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::InvalidData
        {
            return SendError::Tls(io.to_string());
        }
    }
    for err in &chain {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::TimedOut {
                return SendError::Timeout(TimeoutPhase::Connect);
            }
            if e.is_connect() {
                return SendError::Connect(io.to_string());
            }
        }
        if let Some(h) = err.downcast_ref::<hyper::Error>() {
            // Text, not type: hyper's typed check, `is_parse_too_large`,
            // exists only with its `server` feature, which the host does not
            // otherwise need (it would compile hyper's server into the host
            // for this one test), and hyper keeps its error kinds private.
            // A head over the header caps reads "message head is too large".
            if h.is_parse() && h.to_string().contains("too large") {
                return SendError::TooLarge(format!("the response head is too large: {h}"));
            }
            return SendError::Protocol(h.to_string());
        }
    }
    if e.is_connect() {
        SendError::Connect(e.to_string())
    } else {
        SendError::Other(e.to_string())
    }
}

/// Resolves host names to addresses. The host's default uses the system
/// resolver; embedders and tests can supply their own.
pub trait Resolve: Send + Sync + 'static {
    /// All addresses of `host` (a name, never an IP literal).
    fn resolve(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + '_>>;
}

/// The system resolver (`getaddrinfo` through tokio).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(
        &self,
        host: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + '_>> {
        let host = host.to_owned();
        Box::pin(async move {
            Ok(tokio::net::lookup_host((host.as_str(), 0))
                .await?
                .map(|a| a.ip())
                .collect())
        })
    }
}

/// Why the vetting resolver gave no address; found again in the client's error chain.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ResolveError {
    /// Every address was refused by the network policy.
    #[error("{0}")]
    Denied(String),
    /// The lookup failed or found nothing.
    #[error("{0}")]
    Dns(String),
}

/// A resolver service for hyper's connector that drops refused addresses.
#[derive(Clone)]
pub(crate) struct VettingResolver {
    resolver: Arc<dyn Resolve>,
    network: Arc<NetworkPolicy>,
}

impl tower_service::Service<Name> for VettingResolver {
    type Response = std::vec::IntoIter<SocketAddr>;
    type Error = ResolveError;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, ResolveError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), ResolveError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, name: Name) -> Self::Future {
        let this = self.clone();
        Box::pin(async move {
            let host = name.as_str();
            let ips = match loopback_name(host) {
                true => vec![
                    IpAddr::from([127, 0, 0, 1]),
                    IpAddr::from(std::net::Ipv6Addr::LOCALHOST),
                ],
                false => this
                    .resolver
                    .resolve(host)
                    .await
                    .map_err(|e| ResolveError::Dns(format!("cannot resolve `{host}`: {e}")))?,
            };
            if ips.is_empty() {
                return Err(ResolveError::Dns(format!("`{host}` has no addresses")));
            }
            let mut refused = None;
            let vetted: Vec<SocketAddr> = ips
                .iter()
                .filter(|ip| match this.network.check(**ip) {
                    Ok(()) => true,
                    Err(range) => {
                        refused = Some(range);
                        false
                    }
                })
                .map(|ip| SocketAddr::new(*ip, 0))
                .collect();
            match refused {
                Some(range) if vetted.is_empty() => Err(ResolveError::Denied(format!(
                    "`{host}` resolves only to refused addresses ({range})"
                ))),
                _ => Ok(vetted.into_iter()),
            }
        })
    }
}

/// `localhost` and its subdomains always mean the loopback addresses (RFC 6761),
/// whatever a resolver would answer, so they meet the loopback policy.
fn loopback_name(host: &str) -> bool {
    let host = host.trim_end_matches('.');
    let suffix = host
        .len()
        .checked_sub(".localhost".len())
        .and_then(|at| host.get(at..));
    host.eq_ignore_ascii_case("localhost")
        || suffix.is_some_and(|s| s.eq_ignore_ascii_case(".localhost"))
}

/// A connection phase that ran out of time inside the connector; found again
/// in the client's error chain.
#[derive(Debug, thiserror::Error)]
#[error("the TLS handshake did not finish in time")]
struct TlsHandshakeTimeout;

/// Opens connections: TCP to a vetted address (under the connect timeout),
/// then, for `https`, the TLS handshake under its own timeout.
#[derive(Clone)]
pub(crate) struct Connector {
    http: HttpConnector<VettingResolver>,
    tls: TlsConnector,
    tls_timeout: Duration,
}

/// The stream a [`Connector`] opens.
pub(crate) type Stream = MaybeHttpsStream<TokioIo<TcpStream>>;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

impl tower_service::Service<Uri> for Connector {
    type Response = Stream;
    type Error = BoxError;
    type Future = Pin<Box<dyn Future<Output = Result<Stream, BoxError>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), BoxError>> {
        self.http.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let https = uri.scheme() == Some(&http::uri::Scheme::HTTPS);
        let server_name = uri
            .host()
            .map(|h| h.trim_start_matches('[').trim_end_matches(']').to_owned());
        let connecting = self.http.call(uri);
        let (tls, tls_timeout) = (self.tls.clone(), self.tls_timeout);
        Box::pin(async move {
            let tcp = connecting.await?;
            if !https {
                return Ok(MaybeHttpsStream::Http(tcp));
            }
            let name = ServerName::try_from(server_name.ok_or("the URL has no host")?)?;
            let handshake = tls.connect(name, TokioIo::new(tcp));
            let stream = tokio::time::timeout(tls_timeout, handshake)
                .await
                .map_err(|_| TlsHandshakeTimeout)??;
            Ok(MaybeHttpsStream::from(stream))
        })
    }
}

/// The pooled client type.
type HttpClient = Client<Connector, Full<Bytes>>;

/// The pooled clients: one for requests that carry no connection TLS and
/// follow the host's HTTP/2 setting, one per TLS identity (roots, client
/// certificate, verification mode) and HTTP/2 choice otherwise, so a
/// connection opened with one tenant's client certificate is never reused
/// for another's request.
struct Clients {
    resolver: Arc<dyn Resolve>,
    network: Arc<NetworkPolicy>,
    settings: ClientSettings,
    http2: bool,
    plain: HttpClient,
    by_identity: Mutex<HashMap<ClientKey, HttpClient>>,
}

/// What sets a client apart: the connection's TLS identity (none: the
/// host's default TLS) and whether it offers HTTP/2.
type ClientKey = (Option<[u8; 32]>, bool);

/// Caps the requests in flight to each origin, so the host never holds more
/// than `max_connections_per_origin` connections to it.
struct OriginSlots {
    per_origin: usize,
    wait: Duration,
    slots: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// Origins tracked before idle entries are dropped.
const MAX_TRACKED_ORIGINS: usize = 1024;

impl OriginSlots {
    pub(crate) fn new(settings: &ClientSettings) -> Self {
        Self {
            per_origin: settings.max_connections_per_origin.max(1),
            wait: settings.connection_wait,
            slots: Mutex::new(HashMap::new()),
        }
    }

    /// How long [`acquire`](Self::acquire) waits for a slot.
    pub(crate) fn wait(&self) -> Duration {
        self.wait
    }

    /// Takes a slot for `origin`, waiting up to the connection wait; `None`
    /// when the origin's slots stayed taken.
    pub(crate) async fn acquire(&self, origin: &str) -> Option<OwnedSemaphorePermit> {
        let semaphore = {
            let mut slots = self
                .slots
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            if slots.len() >= MAX_TRACKED_ORIGINS {
                slots.retain(|_, s| s.available_permits() < self.per_origin);
            }
            slots
                .entry(origin.to_owned())
                .or_insert_with(|| Arc::new(Semaphore::new(self.per_origin)))
                .clone()
        };
        tokio::time::timeout(self.wait, semaphore.acquire_owned())
            .await
            .ok()?
            .ok()
    }
}

/// Clients kept beyond the plain one (a TLS identity and HTTP/2 choice each);
/// past it the map starts afresh (connections in use stay open, idle ones
/// close with their client).
const MAX_CLIENTS: usize = 256;

impl Clients {
    /// Clients offering HTTP/2 to HTTPS origins when `http2`, unless a
    /// connection says otherwise.
    pub(crate) fn new(
        resolver: Arc<dyn Resolve>,
        network: Arc<NetworkPolicy>,
        settings: &ClientSettings,
        http2: bool,
    ) -> Self {
        let config = tls::offering_http2(tls::default_client_config(), http2);
        let plain = build_client(resolver.clone(), network.clone(), config, settings);
        Self {
            resolver,
            network,
            settings: settings.clone(),
            http2,
            plain,
            by_identity: Mutex::new(HashMap::new()),
        }
    }

    /// The client for a hop: the connection's TLS identity and HTTP/2 choice
    /// (`None`: the host's), or the plain one.
    pub(crate) fn get(&self, tls: Option<&ConnectionTls>, http2: Option<bool>) -> HttpClient {
        let http2 = http2.unwrap_or(self.http2);
        if tls.is_none() && http2 == self.http2 {
            return self.plain.clone();
        }
        let key = (tls.map(ConnectionTls::identity), http2);
        let mut clients = self
            .by_identity
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(client) = clients.get(&key) {
            return client.clone();
        }
        if clients.len() >= MAX_CLIENTS {
            clients.clear();
        }
        let config = tls.map_or_else(tls::default_client_config, ConnectionTls::config);
        let client = build_client(
            self.resolver.clone(),
            self.network.clone(),
            tls::offering_http2(config, http2),
            &self.settings,
        );
        clients.insert(key, client.clone());
        client
    }
}

/// Builds a pooled client: HTTP/1.1, and HTTP/2 where `tls` offers it by ALPN,
/// connection and handshake timeouts and response-head caps as `settings`
/// say, idle connections closed after `pool_idle_timeout`.
fn build_client(
    resolver: Arc<dyn Resolve>,
    network: Arc<NetworkPolicy>,
    tls: Arc<rustls::ClientConfig>,
    settings: &ClientSettings,
) -> HttpClient {
    let mut http = HttpConnector::new_with_resolver(VettingResolver { resolver, network });
    http.enforce_http(false);
    http.set_nodelay(true);
    http.set_connect_timeout(Some(settings.connect_timeout));
    let connector = Connector {
        http,
        tls: TlsConnector::from(tls),
        tls_timeout: settings.tls_handshake_timeout,
    };
    // hyper's HTTP/1 read buffer holds the whole response head; 8 KiB is its minimum.
    let head_bytes = settings.max_response_header_bytes.max(8 << 10);
    Client::builder(TokioExecutor::new())
        .pool_idle_timeout(settings.pool_idle_timeout)
        .pool_timer(TokioTimer::new())
        .pool_max_idle_per_host(settings.max_connections_per_origin)
        .http1_max_headers(settings.max_response_headers)
        .http1_max_buf_size(head_bytes)
        .http2_max_header_list_size(u32::try_from(head_bytes).unwrap_or(u32::MAX))
        .build(connector)
}

#[cfg(test)]
mod tests {
    use super::loopback_name;

    #[test]
    fn localhost_names_are_loopback() {
        for name in ["localhost", "LOCALHOST.", "a.b.localhost", "x.Localhost."] {
            assert!(loopback_name(name), "{name}");
        }
        for name in [
            "localhost.example.com",
            "notlocalhost",
            "example.com",
            "ocalhost",
        ] {
            assert!(!loopback_name(name), "{name}");
        }
    }
}
