//! The transport seam: the pipeline's *send* stage behind a trait, in the
//! spirit of wasi-http's `WasiHttpHooks::send_request`.
//!
//! Everything that decides *whether* and *what* to send stays in the
//! pipeline above it: preparing the request, the egress policy on the URL,
//! credentials, redirects, the total and step-deadline timeouts, reading and
//! decoding the body within the size cap, scrubbing, records and the step's
//! request count. A [`Transport`] only moves a request that passed all of
//! that to its origin and streams the answer back. The default one
//! ([`super::client::HttpTransport`]) is hyper with rustls: the pooled
//! client for the hop's TLS identity and HTTP/2 choice, DNS through the
//! `Resolve` seam, every resolved address vetted against the network
//! policy, per-origin connection slots, connect / TLS / first-byte timeouts.

use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use http_body_util::BodyExt;
use http_body_util::combinators::UnsyncBoxBody;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::OwnedSemaphorePermit;
use url::Url;

use crate::credentials::Redactor;
use crate::exchange::{Method, SendError, TimeoutPhase};
use crate::outcome::FailureKind;
use crate::tls::ConnectionTls;

/// Sends requests the pipeline has checked and authenticated, and streams
/// back the answers: the host's one way to the network.
///
/// [`HostBuilder::transport`](crate::HostBuilder::transport) replaces the
/// default, which connects with hyper and rustls. **Address vetting is the
/// default transport's job**: it resolves names through the host's
/// [`Resolve`](crate::Resolve) seam and connects only to addresses the
/// network policy (`HostBuilder::allow_network`) allows. A replacement owns
/// that check, as it owns TLS verification, connection pooling and the
/// connect, TLS and first-byte timeouts. The pipeline has already applied
/// the egress policy to the URL (scheme, allowed hosts, IP literals): a
/// transport only ever receives requests that passed it.
///
/// The pipeline bounds the whole exchange (the request's total timeout and
/// the step deadline) by dropping the future and the body, and reads the
/// body within the step's response size cap as it streams; a transport need
/// not buffer it.
pub trait Transport: Send + Sync + 'static {
    /// Sends `request` and returns the response head with a streaming body.
    fn send(
        &self,
        request: TransportRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TransportResponse, TransportError>> + Send + '_>>;
}

/// What a [`Transport`] answers: the response head and a streaming body.
pub type TransportResponse = http::Response<TransportBody>;

/// One request as it goes on the wire: policy checked, credentials added,
/// body encoded. The connection's TLS material (custom roots, client
/// certificate) stays inside the host; the default transport picks its
/// client by it.
pub struct TransportRequest {
    pub(super) method: Method,
    pub(super) url: Url,
    pub(super) headers: HeaderMap,
    pub(super) body: Bytes,
    pub(super) first_byte_timeout: Duration,
    pub(super) route: Route,
    /// The step's scrubber, for a transport that writes exchanges down.
    pub(super) redactor: Redactor,
}

/// How the connection a request belongs to wants its origins reached.
#[derive(Default)]
pub(super) struct Route {
    /// The connection's TLS material, for its own origins only.
    pub(super) tls: Option<Arc<ConnectionTls>>,
    /// The connection's HTTP/2 choice (`None`: the host's).
    pub(super) http2: Option<bool>,
}

impl TransportRequest {
    /// The method (`GET`, `POST`, …).
    pub fn method(&self) -> &'static str {
        self.method.as_str()
    }

    /// The absolute URL, query included (with any query credential).
    pub fn url(&self) -> &str {
        self.url.as_str()
    }

    /// The origin the request goes to: scheme, host, and port unless it is
    /// the scheme's default (`https://api.example.com`).
    pub fn origin(&self) -> &str {
        super::origin_key(&self.url)
    }

    /// The headers to send, credentials included (their values are marked
    /// sensitive).
    pub fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The encoded body (empty when there is none).
    pub fn body(&self) -> &Bytes {
        &self.body
    }

    /// How long to wait for the response head once a connection carries
    /// the request (the step's `first_byte_timeout`).
    pub fn first_byte_timeout(&self) -> Duration {
        self.first_byte_timeout
    }

    /// Whether the request's connection asks for HTTP/2 (`Some(true)`) or
    /// HTTP/1.1 (`Some(false)`) to its origins; `None`: the host's setting.
    pub fn http2(&self) -> Option<bool> {
        self.route.http2
    }

    /// Whether the request carries its connection's own TLS settings
    /// (custom roots, a client certificate, relaxed verification), which
    /// only the default transport can apply.
    pub fn has_connection_tls(&self) -> bool {
        self.route.tls.is_some()
    }
}

impl fmt::Debug for TransportRequest {
    /// Method and origin only: the URL, headers and body may carry secrets.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportRequest")
            .field("method", &self.method.as_str())
            .field("origin", &self.origin())
            .finish_non_exhaustive()
    }
}

/// A response body as a [`Transport`] streams it. The pipeline reads it
/// frame by frame, decoding and capping as it goes.
pub struct TransportBody {
    inner: Inner,
}

enum Inner {
    /// The default transport's body, holding the origin's connection slot
    /// until it is read or dropped.
    Pooled {
        body: hyper::body::Incoming,
        _slot: OwnedSemaphorePermit,
    },
    /// Whole bytes (taken when the first frame is read).
    Full(Option<Bytes>),
    /// Any other body.
    Boxed(UnsyncBoxBody<Bytes, TransportError>),
}

impl TransportBody {
    /// An empty body.
    pub fn empty() -> Self {
        Self::full(Bytes::new())
    }

    /// A body of these bytes, in one frame.
    pub fn full(data: impl Into<Bytes>) -> Self {
        let data: Bytes = data.into();
        Self {
            inner: Inner::Full((!data.is_empty()).then_some(data)),
        }
    }

    /// A body streamed from `body`; an error reading it is a `protocol`
    /// failure.
    pub fn streaming<B>(body: B) -> Self
    where
        B: Body<Data = Bytes> + Send + 'static,
        B::Error: Into<Box<dyn StdError + Send + Sync>>,
    {
        Self {
            inner: Inner::Boxed(
                body.map_err(|e| TransportError::body_read(&*e.into()))
                    .boxed_unsync(),
            ),
        }
    }

    /// The default transport's body, with the origin's connection slot.
    pub(super) fn pooled(body: hyper::body::Incoming, slot: OwnedSemaphorePermit) -> Self {
        Self {
            inner: Inner::Pooled { body, _slot: slot },
        }
    }
}

impl Body for TransportBody {
    type Data = Bytes;
    type Error = TransportError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, TransportError>>> {
        match &mut self.get_mut().inner {
            Inner::Pooled { body, .. } => Pin::new(body)
                .poll_frame(cx)
                .map_err(|e| TransportError::body_read(&e)),
            Inner::Full(data) => Poll::Ready(data.take().map(|d| Ok(Frame::data(d)))),
            Inner::Boxed(body) => Pin::new(body).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.inner {
            Inner::Pooled { body, .. } => body.is_end_stream(),
            Inner::Full(data) => data.is_none(),
            Inner::Boxed(body) => body.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.inner {
            Inner::Pooled { body, .. } => body.size_hint(),
            Inner::Full(data) => SizeHint::with_exact(data.as_ref().map_or(0, |d| d.len() as u64)),
            Inner::Boxed(body) => body.size_hint(),
        }
    }
}

impl fmt::Debug for TransportBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransportBody").finish_non_exhaustive()
    }
}

/// Why a [`Transport`] gave no response (or the body broke off). Each
/// becomes the request's failure, of the [`kind`](Self::kind) its
/// constructor names; the message is scrubbed of the step's secrets before
/// anyone sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransportError(SendError);

impl TransportError {
    /// The network policy refused every address of the origin (`denied`).
    pub fn denied(message: impl Into<String>) -> Self {
        Self(SendError::Denied(message.into()))
    }

    /// The name could not be resolved (`dns`).
    pub fn dns(message: impl Into<String>) -> Self {
        Self(SendError::Dns(message.into()))
    }

    /// The connection could not be opened (`connect`).
    pub fn connect(message: impl Into<String>) -> Self {
        Self(SendError::Connect(message.into()))
    }

    /// TLS failed (`tls`).
    pub fn tls(message: impl Into<String>) -> Self {
        Self(SendError::Tls(message.into()))
    }

    /// Opening the connection took longer than the connect timeout
    /// (`timeout`, phase `connect`).
    pub fn connect_timeout() -> Self {
        Self(SendError::Timeout(TimeoutPhase::Connect))
    }

    /// The TLS handshake took longer than its timeout (`timeout`, phase
    /// `tls-handshake`).
    pub fn tls_handshake_timeout() -> Self {
        Self(SendError::Timeout(TimeoutPhase::TlsHandshake))
    }

    /// The response head did not come within
    /// [`TransportRequest::first_byte_timeout`] (`timeout`, phase
    /// `first-byte`).
    pub fn first_byte_timeout() -> Self {
        Self(SendError::Timeout(TimeoutPhase::FirstByte))
    }

    /// The response exceeded a size cap (`too-large`).
    pub fn too_large(message: impl Into<String>) -> Self {
        Self(SendError::TooLarge(message.into()))
    }

    /// The peer broke HTTP (`protocol`).
    pub fn protocol(message: impl Into<String>) -> Self {
        Self(SendError::Protocol(message.into()))
    }

    /// Anything else (`other`).
    pub fn other(message: impl Into<String>) -> Self {
        Self(SendError::Other(message.into()))
    }

    /// The failure kind the step result reports for this error.
    pub fn kind(&self) -> FailureKind {
        self.0.kind()
    }

    /// Reading the response body failed (`protocol`).
    fn body_read(e: &dyn StdError) -> Self {
        Self::protocol(format!("reading the response body: {e}"))
    }
}

impl fmt::Display for TransportError {
    /// `kind: message`, as request records show it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl StdError for TransportError {}

impl From<SendError> for TransportError {
    fn from(e: SendError) -> Self {
        Self(e)
    }
}

impl From<TransportError> for SendError {
    fn from(e: TransportError) -> Self {
        e.0
    }
}
