//! Outbound HTTP: the host sends every request on the plugin's behalf.
//!
//! Build a [`Request`], [`send`](Request::send) it (or several at once with
//! [`send_all`]) and read the [`Response`]. The host joins relative URLs to the
//! connection's base URL, checks its policy, adds credentials and enforces its
//! limits; a status outside 2xx is still a response
//! ([`Response::error_for_status`] turns it into a [`StepError`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::StepError;
use crate::host;

/// HTTP method of an outbound request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// GET: read a resource.
    Get,
    /// HEAD: like GET, the response has no body.
    Head,
    /// POST: create or act.
    Post,
    /// PUT: replace a resource.
    Put,
    /// PATCH: modify part of a resource.
    Patch,
    /// DELETE: remove a resource.
    Delete,
    /// OPTIONS: ask what the resource allows.
    Options,
}

/// A request body. The host encodes it and sets `Content-Type`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// No body.
    None,
    /// JSON text, sent as `application/json`.
    Json(String),
    /// `application/x-www-form-urlencoded` pairs, in order.
    Form(Vec<(String, String)>),
    /// `multipart/form-data` parts.
    Multipart(Vec<FormPart>),
    /// A GraphQL operation, sent as a JSON POST body.
    Graphql {
        /// The GraphQL document.
        query: String,
        /// The variables, a JSON object text.
        variables: Option<String>,
        /// The operation to run.
        operation_name: Option<String>,
    },
    /// XML text, sent as `application/xml`.
    Xml(String),
    /// Plain text, sent as `text/plain; charset=utf-8`.
    Text(String),
    /// Raw bytes with their content type.
    Bytes {
        /// Sent as `Content-Type`.
        content_type: String,
        /// The bytes.
        data: Vec<u8>,
    },
}

/// One part of a `multipart/form-data` body; build it with
/// [`FormPart::text`], [`FormPart::file`] or [`FormPart::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct FormPart {
    /// The form field name.
    pub name: String,
    /// A file name; when present the part is sent as a file.
    pub filename: Option<String>,
    /// The part's content type (the host picks `text/plain` or
    /// `application/octet-stream` when absent).
    pub content_type: Option<String>,
    /// The part's bytes.
    pub data: Vec<u8>,
}

/// How the host retries a request that failed in a retryable way; build
/// it with [`RetryPolicy::attempts`]. The WIT `retry-policy` documents
/// what is retried and how long the host waits.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Attempts in all, the first included.
    pub max_attempts: u32,
    /// Delay bound before the first retry, doubled each time (full jitter).
    pub initial_backoff_ms: u32,
    /// Upper bound on one delay.
    pub max_backoff_ms: u32,
    /// Response statuses that are retried.
    pub retry_on_status: Vec<u16>,
}

/// How the host follows a paginated API; build it with
/// [`Pagination::cursor`], [`page`](Pagination::page),
/// [`offset`](Pagination::offset) or [`link`](Pagination::link).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pagination {
    /// How the next page is found.
    pub style: PageStyle,
    /// The path to the items array in each page's JSON (`""`: the body).
    pub items_path: String,
    /// The query parameter the page size is sent in.
    pub limit_param: Option<String>,
    /// Items per page.
    pub page_size: Option<u32>,
    /// At most this many pages.
    pub max_pages: Option<u32>,
}

/// Where the next page's position comes from and goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PageStyle {
    /// A cursor in each page's JSON, sent in a query parameter.
    Cursor(CursorPages),
    /// Page numbers from 1, in this query parameter.
    Page(String),
    /// Item offsets from 0, in this query parameter.
    Offset(String),
    /// The `Link` header's `rel="next"` URL.
    Link,
}

/// A cursor and where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct CursorPages {
    /// The path to the cursor in each page's JSON (`data.-1.id`).
    pub path: String,
    /// The query parameter it is sent in.
    pub param: String,
}

/// The phase of a request that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum TimeoutPhase {
    /// Opening the TCP connection.
    Connect,
    /// The TLS handshake.
    TlsHandshake,
    /// Waiting for the response head after sending.
    FirstByte,
    /// The request's total time.
    Total,
    /// The step's own deadline ran out first.
    StepDeadline,
}

/// Why the host sent no response, each case with a message that never
/// contains a secret. Read it through [`SendError::reason`]. New cases may
/// come with new hosts: match with a `_` arm.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SendReason {
    /// Policy refused the request.
    Denied(String),
    /// A phase of the request ran out of time.
    Timeout(TimeoutPhase),
    /// The host name could not be resolved.
    Dns(String),
    /// The TCP connection failed.
    Connect(String),
    /// TLS failed.
    Tls(String),
    /// The response exceeded a size cap.
    TooLarge(String),
    /// The peer broke HTTP.
    Protocol(String),
    /// The request itself is invalid (the message names the field).
    InvalidRequest(String),
    /// The connection is unknown, not bound, or its credentials could not
    /// be obtained.
    Credential(String),
    /// A step limit or the connection's rate budget was reached.
    Limit(String),
    /// The host stopped calling this origin for a while.
    CircuitOpen(String),
    /// Anything else, described.
    Other(String),
}

/// An outbound request, built step by step and sent by the host.
///
/// Redirects are followed by default; no body, no timeout of its own (the
/// host's default applies), no retries.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    pub(crate) method: Method,
    pub(crate) url: String,
    pub(crate) query: Vec<(String, String)>,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Body,
    pub(crate) connection: Option<String>,
    pub(crate) timeout_ms: Option<u32>,
    pub(crate) follow_redirects: bool,
    pub(crate) retry: Option<RetryPolicy>,
    pub(crate) idempotency_key: Option<String>,
    pub(crate) pagination: Option<Pagination>,
    pub(crate) cache_ttl_ms: Option<u32>,
    /// Set when a body could not be built; `send` then fails with `invalid-request`.
    body_error: Option<String>,
}

impl Request {
    /// A request with `method` to `url`: absolute `http(s)://…`, or a path
    /// relative to the base URL of the request's [`connection`](Self::connection).
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            query: Vec::new(),
            headers: Vec::new(),
            body: Body::None,
            connection: None,
            timeout_ms: None,
            follow_redirects: true,
            retry: None,
            idempotency_key: None,
            pagination: None,
            cache_ttl_ms: None,
            body_error: None,
        }
    }

    /// A `GET` request.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` request.
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// A `PUT` request.
    pub fn put(url: impl Into<String>) -> Self {
        Self::new(Method::Put, url)
    }

    /// A `PATCH` request.
    pub fn patch(url: impl Into<String>) -> Self {
        Self::new(Method::Patch, url)
    }

    /// A `DELETE` request.
    pub fn delete(url: impl Into<String>) -> Self {
        Self::new(Method::Delete, url)
    }

    /// A `HEAD` request.
    pub fn head(url: impl Into<String>) -> Self {
        Self::new(Method::Head, url)
    }

    /// An `OPTIONS` request.
    pub fn options(url: impl Into<String>) -> Self {
        Self::new(Method::Options, url)
    }

    /// Appends a query pair; the host percent-encodes it. Repeated names are kept.
    pub fn query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.query.push((name.into(), value.into()));
        self
    }

    /// Appends a header. Names the host owns (`Authorization`, `Cookie`,
    /// `Host`, …) make the request fail with `invalid-request`.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// A JSON body (`application/json`). If `value` cannot be serialized,
    /// sending fails with `invalid-request`.
    pub fn json(self, value: &impl Serialize) -> Self {
        let body = serde_json::to_string(value)
            .map(Body::Json)
            .map_err(|error| format!("the JSON body cannot be serialized: {error}"));
        self.body(body)
    }

    /// A body that is already JSON text (`application/json`); the host
    /// rejects text that is not JSON.
    pub fn json_text(self, json: impl Into<String>) -> Self {
        self.body(Ok(Body::Json(json.into())))
    }

    /// An `application/x-www-form-urlencoded` body; order and repeated names are kept.
    pub fn form<K, V>(self, pairs: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let pairs = pairs
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.body(Ok(Body::Form(pairs)))
    }

    /// A `text/plain; charset=utf-8` body.
    pub fn text(self, text: impl Into<String>) -> Self {
        self.body(Ok(Body::Text(text.into())))
    }

    /// An `application/xml` body.
    pub fn xml(self, xml: impl Into<String>) -> Self {
        self.body(Ok(Body::Xml(xml.into())))
    }

    /// Raw bytes sent under `content_type`.
    pub fn bytes(self, content_type: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        self.body(Ok(Body::Bytes {
            content_type: content_type.into(),
            data: data.into(),
        }))
    }

    /// A `multipart/form-data` body.
    pub fn multipart(self, parts: impl IntoIterator<Item = FormPart>) -> Self {
        self.body(Ok(Body::Multipart(parts.into_iter().collect())))
    }

    /// A GraphQL operation, sent as a JSON POST body. `variables` must be a
    /// JSON object.
    pub fn graphql(
        self,
        query: impl Into<String>,
        variables: Option<Value>,
        operation_name: Option<&str>,
    ) -> Self {
        self.body(Ok(Body::Graphql {
            query: query.into(),
            variables: variables.map(|variables| variables.to_string()),
            operation_name: operation_name.map(str::to_owned),
        }))
    }

    /// The declared connection whose base URL and credentials apply; the step
    /// must have bound it (see [`bound_connections`]).
    pub fn connection(mut self, name: impl Into<String>) -> Self {
        self.connection = Some(name.into());
        self
    }

    /// Total time allowed for the request; the host caps it.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout_ms = Some(millis(timeout));
        self
    }

    /// Whether to follow 3xx redirects (default `true`); each hop is checked
    /// by the host's policy again.
    pub fn follow_redirects(mut self, follow: bool) -> Self {
        self.follow_redirects = follow;
        self
    }

    /// Retries on failure as `policy` says: a listed status, or a failed
    /// exchange. After the request's bytes may have reached the server (a
    /// status, a reset, a timeout waiting for the answer) the host sends it
    /// again only if it is a GET, HEAD or OPTIONS, a PUT or DELETE of a call
    /// declared idempotent, or carries an
    /// [`idempotency_key`](Self::idempotency_key). The host waits as the
    /// upstream's `Retry-After` or rate-limit headers say, else with
    /// jittered exponential backoff, and never past the step deadline.
    pub fn retry(mut self, policy: RetryPolicy) -> Self {
        self.retry = Some(policy);
        self
    }

    /// Sent as `Idempotency-Key`, the same on every attempt; makes a POST or
    /// PATCH retryable after its bytes may have reached the server, and
    /// shows in the step's request records.
    pub fn idempotency_key(mut self, key: impl Into<String>) -> Self {
        self.idempotency_key = Some(key.into());
        self
    }

    /// Sends a fresh key from the host ([`new_idempotency_key`]) as
    /// `Idempotency-Key`. For a key that stays the same when the platform
    /// runs the step again, derive one from the input and use
    /// [`idempotency_key`](Self::idempotency_key).
    pub fn generated_idempotency_key(self) -> Self {
        self.idempotency_key(new_idempotency_key())
    }

    /// Follows the API's pages as `pagination` says: the host sends page
    /// after page (each through its policy, credentials and retries, each in
    /// the step's records) and answers with one response whose body is the
    /// JSON array of every page's items; its `courier-pagination` header
    /// says why paging ended (`complete`, or the cap reached).
    pub fn paginate(mut self, pagination: Pagination) -> Self {
        self.pagination = Some(pagination);
        self
    }

    /// Lets the host answer this GET or HEAD from its response cache for up
    /// to `ttl` (at most `u32::MAX` ms; a shorter `Cache-Control: max-age`
    /// wins). Responses marked `no-store`, `private` or `no-cache` are
    /// never kept; a hit shows as `cache: "hit"` in the step's records.
    pub fn cache(mut self, ttl: Duration) -> Self {
        self.cache_ttl_ms = Some(millis(ttl));
        self
    }

    /// Sends the request and waits for the response.
    pub fn send(self) -> Result<Response, SendError> {
        host::send(self.checked()?)
    }

    fn body(mut self, body: Result<Body, String>) -> Self {
        match body {
            Ok(body) => {
                self.body = body;
                self.body_error = None;
            }
            Err(error) => self.body_error = Some(error),
        }
        self
    }

    /// The request, or `invalid-request` if its body could not be built.
    pub(crate) fn checked(self) -> Result<Self, SendError> {
        match &self.body_error {
            Some(error) => Err(SendError(SendReason::InvalidRequest(error.clone()))),
            None => Ok(self),
        }
    }
}

/// Sends `requests` concurrently (within the step's limit) and returns one
/// result per request, in order. One failure does not cancel the others.
pub fn send_all(requests: Vec<Request>) -> Vec<Result<Response, SendError>> {
    let mut to_send = Vec::with_capacity(requests.len());
    // `None` marks a request handed to the host; its result comes back in order.
    let slots: Vec<Option<SendError>> = requests
        .into_iter()
        .map(|request| match request.checked() {
            Ok(request) => {
                to_send.push(request);
                None
            }
            Err(error) => Some(error),
        })
        .collect();
    let mut sent = if to_send.is_empty() {
        Vec::new()
    } else {
        host::send_all(to_send)
    }
    .into_iter();
    slots
        .into_iter()
        .map(|slot| match slot {
            Some(error) => Err(error),
            None => sent.next().unwrap_or_else(|| {
                Err(SendError(SendReason::Other(
                    "the host returned fewer results than requests".to_owned(),
                )))
            }),
        })
        .collect()
}

/// Names of the plugin's connections that the running step has bound. A
/// request on a connection that is not bound fails with `credential`.
pub fn bound_connections() -> Vec<String> {
    host::bound_connections()
}

/// A fresh idempotency key from the host: a random version 4 UUID.
pub fn new_idempotency_key() -> String {
    host::new_idempotency_key()
}

fn millis(duration: Duration) -> u32 {
    u32::try_from(duration.as_millis()).unwrap_or(u32::MAX)
}

/// The response the host received, already scrubbed of every secret it added.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub(crate) status: u16,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
    pub(crate) final_url: String,
}

impl Response {
    /// A response as the host would hand it back; for a plugin's own tests
    /// (see also [`testing`](crate::testing) natively).
    pub fn new(
        status: u16,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
        final_url: impl Into<String>,
    ) -> Self {
        Self {
            status,
            headers,
            body,
            final_url: final_url.into(),
        }
    }

    /// The final status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// Whether the status is 2xx.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The headers, in the order received.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body, decoded from any content encoding.
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body.
    pub fn into_body(self) -> Vec<u8> {
        self.body
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<String, StepError> {
        String::from_utf8(self.body.clone())
            .map_err(|error| StepError::failed(format!("the response body is not UTF-8: {error}")))
    }

    /// The body parsed as JSON into `T`.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, StepError> {
        serde_json::from_slice(&self.body).map_err(|error| {
            StepError::failed(format!(
                "the response body is not the expected JSON: {error}"
            ))
        })
    }

    /// The URL that answered, after redirects.
    pub fn final_url(&self) -> &str {
        &self.final_url
    }

    /// The response itself if its status is 2xx, else
    /// [`StepError::Http`] without output.
    pub fn error_for_status(self) -> Result<Self, StepError> {
        if self.is_success() {
            Ok(self)
        } else {
            Err(StepError::http(
                self.status,
                format!("upstream answered {}", self.status),
            ))
        }
    }
}

/// The first value of the header `name` in `headers` (compared case-insensitively).
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(header, _)| header.eq_ignore_ascii_case(name))
        .map(|(_, value)| value.as_str())
}

/// Why the host sent no response (the WIT `send-error`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendError(pub(crate) SendReason);

impl SendError {
    /// The case and its message.
    pub fn reason(&self) -> &SendReason {
        &self.0
    }

    /// Takes the case and its message.
    pub fn into_reason(self) -> SendReason {
        self.0
    }
}

impl From<SendReason> for SendError {
    fn from(reason: SendReason) -> Self {
        Self(reason)
    }
}

impl fmt::Display for SendError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (kind, message) = match &self.0 {
            SendReason::Timeout(phase) => return write!(f, "timed out ({phase})"),
            SendReason::Denied(message) => ("denied", message),
            SendReason::Dns(message) => ("DNS", message),
            SendReason::Connect(message) => ("connect", message),
            SendReason::Tls(message) => ("TLS", message),
            SendReason::TooLarge(message) => ("too large", message),
            SendReason::Protocol(message) => ("protocol", message),
            SendReason::InvalidRequest(message) => ("invalid request", message),
            SendReason::Credential(message) => ("credential", message),
            SendReason::Limit(message) => ("limit", message),
            SendReason::CircuitOpen(message) => ("circuit open", message),
            SendReason::Other(message) => ("other", message),
        };
        write!(f, "{kind}: {message}")
    }
}

impl std::error::Error for SendError {}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Connect => "connect",
            Self::TlsHandshake => "TLS handshake",
            Self::FirstByte => "first byte",
            Self::Total => "total",
            Self::StepDeadline => "step deadline",
        })
    }
}

impl Method {
    /// The method's name, upper case.
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Head => "HEAD",
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
            Self::Delete => "DELETE",
            Self::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A method name that is none of [`Method`]'s.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownMethod(pub String);

impl fmt::Display for UnknownMethod {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown HTTP method `{}` (expected GET, HEAD, POST, PUT, PATCH, DELETE or OPTIONS)",
            self.0
        )
    }
}

impl std::error::Error for UnknownMethod {}

impl FromStr for Method {
    type Err = UnknownMethod;

    /// Parses a method name, ignoring case.
    fn from_str(name: &str) -> Result<Self, Self::Err> {
        [
            Self::Get,
            Self::Head,
            Self::Post,
            Self::Put,
            Self::Patch,
            Self::Delete,
            Self::Options,
        ]
        .into_iter()
        .find(|method| method.as_str().eq_ignore_ascii_case(name))
        .ok_or_else(|| UnknownMethod(name.to_owned()))
    }
}

impl FormPart {
    /// A part named `name` holding `data`, sent as a field unless
    /// [`filename`](Self::filename) makes it a file.
    pub fn new(name: impl Into<String>, data: impl Into<Vec<u8>>) -> Self {
        Self {
            name: name.into(),
            filename: None,
            content_type: None,
            data: data.into(),
        }
    }

    /// Sends the part as a file named `filename`.
    pub fn filename(mut self, filename: impl Into<String>) -> Self {
        self.filename = Some(filename.into());
        self
    }

    /// A text field.
    pub fn text(name: impl Into<String>, value: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            filename: None,
            content_type: None,
            data: value.into().into(),
        }
    }

    /// A file part (`application/octet-stream` unless [`content_type`](Self::content_type) says otherwise).
    pub fn file(
        name: impl Into<String>,
        filename: impl Into<String>,
        data: impl Into<Vec<u8>>,
    ) -> Self {
        Self {
            name: name.into(),
            filename: Some(filename.into()),
            content_type: None,
            data: data.into(),
        }
    }

    /// Sets the part's content type.
    pub fn content_type(mut self, content_type: impl Into<String>) -> Self {
        self.content_type = Some(content_type.into());
        self
    }
}

impl RetryPolicy {
    /// Up to `max_attempts` attempts in all (the first included), with a
    /// backoff from 200 ms up to 5 s, retrying statuses 429, 502, 503 and 504.
    pub fn attempts(max_attempts: u32) -> Self {
        Self {
            max_attempts,
            initial_backoff_ms: 200,
            max_backoff_ms: 5_000,
            retry_on_status: vec![429, 502, 503, 504],
        }
    }

    /// The first delay (doubled each time, with jitter) and the longest one.
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff_ms = millis(initial);
        self.max_backoff_ms = millis(max);
        self
    }

    /// The response statuses that are retried.
    pub fn on_status(mut self, statuses: impl IntoIterator<Item = u16>) -> Self {
        self.retry_on_status = statuses.into_iter().collect();
        self
    }
}

impl Pagination {
    /// Cursor pages: the next cursor at `path` in each page's JSON (keys
    /// separated by `.`, array indexes, `-1` for the last element), sent in
    /// the query parameter `param`. Items at the body's top level until
    /// [`items`](Self::items) says otherwise.
    pub fn cursor(path: impl Into<String>, param: impl Into<String>) -> Self {
        Self::of(PageStyle::Cursor(CursorPages {
            path: path.into(),
            param: param.into(),
        }))
    }

    /// Numbered pages from 1, sent in the query parameter `param`.
    pub fn page(param: impl Into<String>) -> Self {
        Self::of(PageStyle::Page(param.into()))
    }

    /// Item offsets from 0, sent in the query parameter `param`.
    pub fn offset(param: impl Into<String>) -> Self {
        Self::of(PageStyle::Offset(param.into()))
    }

    /// The `Link` response header's `rel="next"` URL.
    pub fn link() -> Self {
        Self::of(PageStyle::Link)
    }

    /// The path to the items array in each page's JSON (`data`,
    /// `result.items`).
    pub fn items(mut self, path: impl Into<String>) -> Self {
        self.items_path = path.into();
        self
    }

    /// Sends `size` in the query parameter `param` (`limit`, `per_page`);
    /// with numbered pages and offsets a shorter page is the last.
    pub fn page_size(mut self, param: impl Into<String>, size: u32) -> Self {
        self.limit_param = Some(param.into());
        self.page_size = Some(size);
        self
    }

    /// At most `pages` pages (the host's own cap applies as well).
    pub fn max_pages(mut self, pages: u32) -> Self {
        self.max_pages = Some(pages);
        self
    }

    fn of(style: PageStyle) -> Self {
        Self {
            style,
            items_path: String::new(),
            limit_param: None,
            page_size: None,
            max_pages: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        let headers = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Response::new(
            status,
            headers,
            body.as_bytes().to_vec(),
            "https://example.test/x",
        )
    }

    #[test]
    fn the_pagination_builder_fills_the_record() {
        let p = Pagination::cursor("data.-1.id", "starting_after")
            .items("data")
            .page_size("limit", 100)
            .max_pages(5);
        assert!(
            matches!(&p.style, PageStyle::Cursor(c) if c.path == "data.-1.id" && c.param == "starting_after")
        );
        assert_eq!(
            (
                p.items_path.as_str(),
                p.limit_param.as_deref(),
                p.page_size,
                p.max_pages
            ),
            ("data", Some("limit"), Some(100), Some(5))
        );
        let request = Request::get("/repos").paginate(Pagination::link());
        let sent = request.checked().unwrap().pagination.unwrap();
        assert!(matches!(sent.style, PageStyle::Link));
        assert_eq!((sent.items_path.as_str(), sent.page_size), ("", None));
        assert!(Request::get("/x").checked().unwrap().pagination.is_none());
        let cached = Request::get("/x").cache(Duration::from_secs(90));
        assert_eq!(cached.checked().unwrap().cache_ttl_ms, Some(90_000));
        assert!(matches!(Pagination::offset("skip").style, PageStyle::Offset(p) if p == "skip"));
        assert!(matches!(Pagination::page("p").style, PageStyle::Page(p) if p == "p"));
    }

    #[test]
    fn header_lookup_ignores_case_and_returns_the_first() {
        let response = response(200, &[("Content-Type", "a"), ("content-type", "b")], "");
        assert_eq!(response.header("CONTENT-TYPE"), Some("a"));
        assert_eq!(response.header("x-missing"), None);
    }

    #[test]
    fn body_as_text_and_json() {
        let ok = response(200, &[], r#"{"id":"cus_1"}"#);
        assert_eq!(ok.text().unwrap(), r#"{"id":"cus_1"}"#);
        assert_eq!(ok.json::<Value>().unwrap()["id"], "cus_1");
        assert!(matches!(ok.json::<Vec<u8>>(), Err(StepError::Failed(_))));
        let binary = Response {
            body: vec![0xff],
            ..ok.clone()
        };
        assert!(matches!(binary.text(), Err(StepError::Failed(_))));
    }

    #[test]
    fn error_for_status_keeps_2xx_only() {
        assert!(response(204, &[], "").error_for_status().is_ok());
        assert_eq!(
            response(404, &[], "").error_for_status().unwrap_err(),
            StepError::Http {
                status: 404,
                message: "upstream answered 404".into(),
                output: None
            }
        );
    }

    #[test]
    fn builder_fills_the_request() {
        let request = Request::post("/v1/customers")
            .query("a", "1")
            .query("a", "2")
            .header("X-Trace", "t")
            .form([("email", "a@example.test")])
            .connection("stripe")
            .timeout(Duration::from_millis(1500))
            .follow_redirects(false)
            .idempotency_key("k")
            .checked()
            .unwrap();
        assert_eq!(request.method, Method::Post);
        assert_eq!(
            request.query,
            [("a".into(), "1".into()), ("a".into(), "2".into())]
        );
        assert_eq!(
            request.body,
            Body::Form(vec![("email".into(), "a@example.test".into())])
        );
        assert_eq!(request.connection.as_deref(), Some("stripe"));
        assert_eq!(request.timeout_ms, Some(1500));
        assert!(!request.follow_redirects);
        assert_eq!(request.idempotency_key.as_deref(), Some("k"));
        assert!(
            Request::get("https://x.test")
                .checked()
                .unwrap()
                .follow_redirects
        );
    }

    #[test]
    fn unserializable_json_body_fails_as_invalid_request() {
        let map = std::collections::BTreeMap::from([((1, 2), 3)]);
        let error = Request::post("https://x.test")
            .json(&map)
            .checked()
            .unwrap_err();
        assert!(matches!(error.reason(), SendReason::InvalidRequest(m) if m.contains("JSON body")));
        let fixed = Request::post("https://x.test")
            .json(&map)
            .text("ok")
            .checked()
            .unwrap();
        assert_eq!(fixed.body, Body::Text("ok".into()));
    }

    #[test]
    fn methods_parse_ignoring_case() {
        assert_eq!("patch".parse::<Method>().unwrap(), Method::Patch);
        assert_eq!("OPTIONS".parse::<Method>().unwrap().to_string(), "OPTIONS");
        assert_eq!(
            "BREW".parse::<Method>().unwrap_err(),
            UnknownMethod("BREW".into())
        );
    }

    #[test]
    fn send_error_display() {
        assert_eq!(
            SendError(SendReason::Denied("x".into())).to_string(),
            "denied: x"
        );
        assert_eq!(
            SendError(SendReason::Timeout(TimeoutPhase::StepDeadline)).to_string(),
            "timed out (step deadline)"
        );
    }
}
