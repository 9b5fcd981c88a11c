//! The host's own view of one request/response exchange: what a plugin asks
//! the host to send, what comes back, and why nothing did.
//!
//! These mirror the WIT types of `wit/types.wit` (`request`, `response`,
//! `send-error`, …), which exist only at the edge: `bindings` converts them
//! into these types when a plugin calls the host and back when the host
//! answers, so the rest of the host never depends on the generated bindings.

use std::fmt;

use crate::outcome::FailureKind;

/// An ordered list of name/value pairs, kept exactly as given (order and
/// repeated names included).
pub(crate) type Pairs = Vec<(String, String)>;

/// HTTP method of an outbound request; no other method can be expressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Method {
    /// GET.
    Get,
    /// HEAD.
    Head,
    /// POST.
    Post,
    /// PUT.
    Put,
    /// PATCH.
    Patch,
    /// DELETE.
    Delete,
    /// OPTIONS.
    Options,
}

impl Method {
    /// The method as it goes on the wire (`GET`, `POST`, …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One part of a `multipart/form-data` body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FormPart {
    /// The form field name.
    pub(crate) name: String,
    /// A file name; when present the part is sent as a file.
    pub(crate) filename: Option<String>,
    /// The part's content type (the host picks one when absent).
    pub(crate) content_type: Option<String>,
    /// The part's bytes.
    pub(crate) data: Vec<u8>,
}

/// A GraphQL operation, sent as a JSON POST body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct GraphqlRequest {
    /// The GraphQL document.
    pub(crate) query: String,
    /// Variables as JSON object text.
    pub(crate) variables: Option<String>,
    /// The operation to run when the document holds several.
    pub(crate) operation_name: Option<String>,
}

/// Bytes with the content type they are sent under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawBody {
    /// Sent as `Content-Type`.
    pub(crate) content_type: String,
    /// The bytes, sent as they are.
    pub(crate) data: Vec<u8>,
}

/// A request body, before the host encodes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Body {
    /// No body.
    None,
    /// JSON text.
    Json(String),
    /// `application/x-www-form-urlencoded` pairs.
    Form(Pairs),
    /// `multipart/form-data` parts.
    Multipart(Vec<FormPart>),
    /// A GraphQL operation.
    Graphql(GraphqlRequest),
    /// XML text.
    Xml(String),
    /// Plain text.
    Text(String),
    /// Raw bytes with their content type.
    Bytes(RawBody),
}

/// How a request that failed in a retryable way is retried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RetryPolicy {
    /// Attempts in all, the first included.
    pub(crate) max_attempts: u32,
    /// Delay before the first retry.
    pub(crate) initial_backoff_ms: u32,
    /// Upper bound on one delay.
    pub(crate) max_backoff_ms: u32,
    /// Response statuses that are retried.
    pub(crate) retry_on_status: Vec<u16>,
}

/// Where the next page's position comes from and goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PageStyle {
    /// A cursor at a JSON path of the page, sent in a query parameter.
    Cursor {
        /// The path to the cursor in the page's JSON.
        path: String,
        /// The query parameter the cursor is sent in.
        param: String,
    },
    /// Page numbers from 1 in this query parameter.
    Page(String),
    /// Item offsets from 0 in this query parameter.
    Offset(String),
    /// The `Link` header's `rel="next"` URL.
    Link,
}

/// How the host follows a paginated API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pagination {
    /// How the next page is found.
    pub(crate) style: PageStyle,
    /// The path to the items array in each page's JSON (`""`: the body).
    pub(crate) items_path: String,
    /// The query parameter the page size is sent in.
    pub(crate) limit_param: Option<String>,
    /// Items per page.
    pub(crate) page_size: Option<u32>,
    /// At most this many pages.
    pub(crate) max_pages: Option<u32>,
}

/// An outbound request as a plugin describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Request {
    /// The method.
    pub(crate) method: Method,
    /// An absolute URL, or a path relative to the connection's base URL.
    pub(crate) url: String,
    /// Query pairs appended to the URL.
    pub(crate) query: Pairs,
    /// Request headers.
    pub(crate) headers: Pairs,
    /// The body.
    pub(crate) body: Body,
    /// The declared connection whose base URL and credentials apply.
    pub(crate) connection: Option<String>,
    /// Total time allowed for this request.
    pub(crate) timeout_ms: Option<u32>,
    /// Whether 3xx redirects are followed.
    pub(crate) follow_redirects: bool,
    /// Retry behaviour; no retries when absent.
    pub(crate) retry: Option<RetryPolicy>,
    /// Sent as `Idempotency-Key`.
    pub(crate) idempotency_key: Option<String>,
    /// Follow the API's pages; one page when absent.
    pub(crate) pagination: Option<Pagination>,
    /// Serve from the host's response cache for up to this many milliseconds.
    pub(crate) cache_ttl_ms: Option<u32>,
}

/// The response the host hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Response {
    /// Final status code.
    pub(crate) status: u16,
    /// Response headers, in the order received.
    pub(crate) headers: Pairs,
    /// The decoded body.
    pub(crate) body: Vec<u8>,
    /// The URL that answered, after redirects.
    pub(crate) final_url: String,
}

/// The phase of a request that ran out of time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum TimeoutPhase {
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

impl TimeoutPhase {
    /// The phase's name as records and step results show it (`tls-handshake`, …).
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            TimeoutPhase::Connect => "connect",
            TimeoutPhase::TlsHandshake => "tls-handshake",
            TimeoutPhase::FirstByte => "first-byte",
            TimeoutPhase::Total => "total",
            TimeoutPhase::StepDeadline => "step-deadline",
        }
    }
}

impl fmt::Display for TimeoutPhase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the host did not return a response. Every message is safe to show
/// once the step's secrets are scrubbed from it ([`SendError::map_message`]).
///
/// `Display` gives the one-line `kind: message` text that request records
/// and step results show (`denied: …`, `timeout: connect`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SendError {
    /// Policy refused the request.
    #[error("denied: {0}")]
    Denied(String),
    /// A phase of the request ran out of time.
    #[error("timeout: {0}")]
    Timeout(TimeoutPhase),
    /// The host name could not be resolved.
    #[error("dns: {0}")]
    Dns(String),
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(String),
    /// TLS failed.
    #[error("tls: {0}")]
    Tls(String),
    /// The response exceeded a size cap.
    #[error("too-large: {0}")]
    TooLarge(String),
    /// The peer broke HTTP.
    #[error("protocol: {0}")]
    Protocol(String),
    /// The request itself is invalid.
    #[error("invalid-request: {0}")]
    InvalidRequest(String),
    /// The connection is unknown, unbound, or its credentials could not be obtained.
    #[error("credential: {0}")]
    Credential(String),
    /// A step limit was reached.
    #[error("limit: {0}")]
    Limit(String),
    /// The host stopped calling this origin for a while.
    #[error("circuit-open: {0}")]
    CircuitOpen(String),
    /// Anything else.
    #[error("other: {0}")]
    Other(String),
}

impl SendError {
    /// The failure kind a step result reports for this error.
    pub(crate) fn kind(&self) -> FailureKind {
        match self {
            SendError::Denied(_) => FailureKind::Denied,
            SendError::Timeout(_) => FailureKind::Timeout,
            SendError::Dns(_) => FailureKind::Dns,
            SendError::Connect(_) => FailureKind::Connect,
            SendError::Tls(_) => FailureKind::Tls,
            SendError::TooLarge(_) => FailureKind::TooLarge,
            SendError::Protocol(_) => FailureKind::Protocol,
            SendError::InvalidRequest(_) => FailureKind::InvalidRequest,
            SendError::Credential(_) => FailureKind::Credential,
            SendError::Limit(_) => FailureKind::Limit,
            SendError::CircuitOpen(_) => FailureKind::CircuitOpen,
            SendError::Other(_) => FailureKind::Other,
        }
    }

    /// The message a step result reports with [`Self::kind`]: the text after
    /// `kind: ` in the `Display` form, except for a timeout at the step
    /// deadline, which says so in words.
    pub(crate) fn message(&self) -> String {
        match self {
            SendError::Timeout(TimeoutPhase::StepDeadline) => {
                "the step deadline ran out during a request".into()
            }
            SendError::Timeout(phase) => phase.as_str().to_owned(),
            SendError::Denied(m)
            | SendError::Dns(m)
            | SendError::Connect(m)
            | SendError::Tls(m)
            | SendError::TooLarge(m)
            | SendError::Protocol(m)
            | SendError::InvalidRequest(m)
            | SendError::Credential(m)
            | SendError::Limit(m)
            | SendError::CircuitOpen(m)
            | SendError::Other(m) => m.clone(),
        }
    }

    /// The same error with `f` applied to its message (a timeout carries
    /// none and stays as it is).
    pub(crate) fn map_message(mut self, f: impl FnOnce(String) -> String) -> Self {
        match &mut self {
            SendError::Timeout(_) => {}
            SendError::Denied(m)
            | SendError::Dns(m)
            | SendError::Connect(m)
            | SendError::Tls(m)
            | SendError::TooLarge(m)
            | SendError::Protocol(m)
            | SendError::InvalidRequest(m)
            | SendError::Credential(m)
            | SendError::Limit(m)
            | SendError::CircuitOpen(m)
            | SendError::Other(m) => *m = f(std::mem::take(m)),
        }
        self
    }
}

/// Why a plugin's call did not return output (mirrors the WIT `step-error`):
/// what the plugin itself reports, classified by `step`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PluginError {
    /// The input is not what the call accepts.
    InvalidInput(String),
    /// The call failed for a reason of its own.
    Failed(String),
    /// The upstream answered with an HTTP error.
    Http {
        /// The upstream status.
        status: u16,
        /// What went wrong.
        message: String,
        /// Output JSON text the plugin returns with the error, if any.
        output: Option<String>,
    },
    /// A request the call depended on was not sent or not answered.
    Send(SendError),
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// One error of every kind (every timeout phase), for tests here and at
    /// the binding boundary.
    pub(crate) fn every_error() -> Vec<SendError> {
        let m = || "why".to_owned();
        vec![
            SendError::Denied(m()),
            SendError::Timeout(TimeoutPhase::Connect),
            SendError::Timeout(TimeoutPhase::TlsHandshake),
            SendError::Timeout(TimeoutPhase::FirstByte),
            SendError::Timeout(TimeoutPhase::Total),
            SendError::Timeout(TimeoutPhase::StepDeadline),
            SendError::Dns(m()),
            SendError::Connect(m()),
            SendError::Tls(m()),
            SendError::TooLarge(m()),
            SendError::Protocol(m()),
            SendError::InvalidRequest(m()),
            SendError::Credential(m()),
            SendError::Limit(m()),
            SendError::CircuitOpen(m()),
            SendError::Other(m()),
        ]
    }

    #[test]
    fn display_is_kind_colon_message() {
        let shown: Vec<String> = every_error().iter().map(ToString::to_string).collect();
        assert_eq!(
            shown,
            [
                "denied: why",
                "timeout: connect",
                "timeout: tls-handshake",
                "timeout: first-byte",
                "timeout: total",
                "timeout: step-deadline",
                "dns: why",
                "connect: why",
                "tls: why",
                "too-large: why",
                "protocol: why",
                "invalid-request: why",
                "credential: why",
                "limit: why",
                "circuit-open: why",
                "other: why",
            ]
        );
    }

    #[test]
    fn kind_and_message_split_the_display_text() {
        for e in every_error() {
            let text = e.to_string();
            let (kind, message) = text.split_once(": ").unwrap();
            assert_eq!(e.kind().as_str(), kind, "{e:?}");
            if e != SendError::Timeout(TimeoutPhase::StepDeadline) {
                assert_eq!(e.message(), message, "{e:?}");
            }
        }
        assert_eq!(
            SendError::Timeout(TimeoutPhase::StepDeadline).message(),
            "the step deadline ran out during a request"
        );
    }

    #[test]
    fn map_message_keeps_the_kind_and_leaves_timeouts_alone() {
        for e in every_error() {
            let mapped = e.clone().map_message(|m| m.to_uppercase());
            assert_eq!(mapped.kind(), e.kind());
            match e {
                SendError::Timeout(_) => assert_eq!(mapped, e),
                _ => assert_eq!(mapped.message(), "WHY"),
            }
        }
    }
}
