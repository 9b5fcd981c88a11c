//! Cassettes: a step's exchanges recorded once against a live upstream and
//! answered from the recording later, offline (`courier test`).
//!
//! Both are [`Transport`]s, so the whole pipeline above them (policy,
//! credentials, redirects, limits, scrubbing) runs as it always does. The
//! [`Recorder`] wraps the real transport; it keeps each exchange in memory
//! and writes nothing itself: [`Recorder::cassette`] hands back the exchanges
//! with every secret of their step (the connections' secrets and every token
//! the host obtained, in every encoding the step's scrubber finds) replaced
//! by `[REDACTED]`, response bodies content-decoded first so that no
//! compressed form escapes. The [`Replayer`] scrubs each request it gets the
//! same way and answers it from the cassette, so a placeholder matches
//! whatever secret the connection holds on replay (a dummy one in CI).

use std::sync::Mutex;

use bytes::Bytes;
use http::header::{CONTENT_ENCODING, CONTENT_LENGTH, HeaderMap, TRANSFER_ENCODING};
use http_body_util::BodyExt;
use serde::{Deserialize, Serialize};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::decode::Decoder;
use super::transport::{
    Transport, TransportBody, TransportError, TransportRequest, TransportResponse,
};
use crate::credentials::Redactor;

/// The largest decoded response body a [`Recorder`] keeps.
const MAX_RECORDED_BODY: usize = 16 << 20;

/// Request headers whose values change from run to run: recorded, never
/// matched on.
const UNMATCHED_HEADERS: [&str; 5] = [
    "content-length",
    "date",
    "idempotency-key",
    "traceparent",
    "x-request-id",
];

/// Recorded exchanges, secrets replaced by `[REDACTED]`; stored as JSON.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Cassette {
    /// The format's version (1).
    courier_cassette: u32,
    interactions: Vec<Interaction>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Interaction {
    request: RecordedRequest,
    response: RecordedResponse,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    #[serde(flatten)]
    body: RecordedBody,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordedResponse {
    status: u16,
    headers: Vec<(String, String)>,
    #[serde(flatten)]
    body: RecordedBody,
}

/// A body as text, or as base64 when it is not UTF-8.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct RecordedBody {
    body: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    body_base64: bool,
}

impl RecordedBody {
    fn new(data: Vec<u8>) -> Self {
        match String::from_utf8(data) {
            Ok(body) => Self {
                body,
                body_base64: false,
            },
            Err(e) => Self {
                body: STANDARD.encode(e.as_bytes()),
                body_base64: true,
            },
        }
    }

    fn bytes(&self) -> Bytes {
        match self.body_base64 {
            true => STANDARD
                .decode(&self.body)
                .unwrap_or_else(|_| self.body.clone().into_bytes())
                .into(),
            false => Bytes::from(self.body.clone()),
        }
    }
}

impl Cassette {
    /// Reads a cassette from its JSON text.
    pub fn from_json(text: &str) -> Result<Self, serde_json::Error> {
        serde_json::from_str(text)
    }

    /// The cassette as pretty JSON.
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a cassette serializes") + "\n"
    }

    /// How many exchanges it holds.
    pub fn len(&self) -> usize {
        self.interactions.len()
    }

    /// Whether it holds none.
    pub fn is_empty(&self) -> bool {
        self.interactions.is_empty()
    }
}

/// One exchange as it happened, secrets still in it: kept in memory only.
struct Taken {
    redactor: Redactor,
    method: &'static str,
    url: String,
    headers: HeaderMap,
    body: Bytes,
    status: u16,
    response_headers: HeaderMap,
    response_body: Vec<u8>,
}

impl Taken {
    fn redacted(&self) -> Interaction {
        let r = &self.redactor;
        Interaction {
            request: RecordedRequest {
                method: self.method.to_owned(),
                url: r.text(self.url.clone()),
                headers: redact_headers(r, &self.headers),
                body: RecordedBody::new(r.body(self.body.to_vec())),
            },
            response: RecordedResponse {
                status: self.status,
                headers: redact_headers(r, &self.response_headers),
                body: RecordedBody::new(r.body(self.response_body.clone())),
            },
        }
    }
}

fn redact_headers(r: &Redactor, headers: &HeaderMap) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(name, value)| {
            let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
            (name.as_str().to_owned(), r.text(value))
        })
        .collect()
}

/// A [`Transport`] that sends through another one and keeps every exchange
/// for [`cassette`](Self::cassette). It reads each response body whole (up
/// to 16 MiB, content-decoded) and answers the pipeline with the decoded
/// body, without `Content-Encoding`.
pub struct Recorder {
    inner: Arc<dyn Transport>,
    taken: Mutex<Vec<Taken>>,
}

impl Recorder {
    /// A recorder sending through `inner` (the host's default transport,
    /// given by [`HostBuilder::wrap_transport`](crate::HostBuilder::wrap_transport)).
    pub fn new(inner: Arc<dyn Transport>) -> Self {
        Self {
            inner,
            taken: Mutex::default(),
        }
    }

    /// The exchanges so far, each scrubbed of its step's secrets (those the
    /// step learned after the exchange included). Call it once the steps
    /// have ended.
    pub fn cassette(&self) -> Cassette {
        Cassette {
            courier_cassette: 1,
            interactions: self
                .taken
                .lock()
                .expect("recorder poisoned")
                .iter()
                .map(Taken::redacted)
                .collect(),
        }
    }

    async fn record(&self, request: TransportRequest) -> Result<TransportResponse, TransportError> {
        let (method, url) = (request.method(), request.url().to_owned());
        let (headers, body) = (request.headers().clone(), request.body().clone());
        let redactor = request.redactor.clone();
        let (mut head, mut incoming) = self.inner.send(request).await?.into_parts();
        let mut decoder = Decoder::for_encoding(
            head.headers.get(CONTENT_ENCODING).map(|v| v.as_bytes()),
            MAX_RECORDED_BODY,
        )?;
        while let Some(frame) = incoming.frame().await {
            if let Ok(data) = frame?.into_data() {
                decoder.write(&data)?;
            }
        }
        let decoded = decoder.finish()?;
        for name in [CONTENT_ENCODING, CONTENT_LENGTH, TRANSFER_ENCODING] {
            head.headers.remove(name);
        }
        self.taken.lock().expect("recorder poisoned").push(Taken {
            redactor,
            method,
            url,
            headers,
            body,
            status: head.status.as_u16(),
            response_headers: head.headers.clone(),
            response_body: decoded.clone(),
        });
        Ok(TransportResponse::from_parts(
            head,
            TransportBody::full(decoded),
        ))
    }
}

impl Transport for Recorder {
    fn send(
        &self,
        request: TransportRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TransportResponse, TransportError>> + Send + '_>> {
        Box::pin(self.record(request))
    }
}

/// A [`Transport`] that answers from a [`Cassette`] and never touches the
/// network. A request matches a recorded one when, both scrubbed, method,
/// URL (query included), body and headers agree (headers that change per
/// run — `Content-Length`, `Date`, `Idempotency-Key`, `traceparent`,
/// `X-Request-Id` — are not compared). Recorded exchanges are used in order
/// of recording, each once while an unused one matches. A request that
/// matches none fails (`other`) with what differs from the closest one.
pub struct Replayer {
    interactions: Vec<Interaction>,
    used: Mutex<Vec<bool>>,
    mismatches: Mutex<Vec<String>>,
}

impl Replayer {
    /// A replayer answering from `cassette`.
    pub fn new(cassette: Cassette) -> Self {
        let used = vec![false; cassette.interactions.len()];
        Self {
            interactions: cassette.interactions,
            used: Mutex::new(used),
            mismatches: Mutex::default(),
        }
    }

    /// Why each request that matched nothing did not: the closest recorded
    /// request and what differs from it.
    pub fn mismatches(&self) -> Vec<String> {
        self.mismatches.lock().expect("replayer poisoned").clone()
    }

    fn answer(&self, request: &TransportRequest) -> Result<TransportResponse, TransportError> {
        let r = &request.redactor;
        let sent = RecordedRequest {
            method: request.method().to_owned(),
            url: r.text(request.url().to_owned()),
            headers: redact_headers(r, request.headers()),
            body: RecordedBody::new(r.body(request.body().to_vec())),
        };
        let mut used = self.used.lock().expect("replayer poisoned");
        let diffs: Vec<Vec<String>> = self
            .interactions
            .iter()
            .map(|i| differences(&i.request, &sent))
            .collect();
        let pick = (0..diffs.len())
            .filter(|&i| diffs[i].is_empty())
            .min_by_key(|&i| used[i]);
        let Some(i) = pick else {
            let why = match (0..diffs.len()).min_by_key(|&i| (diffs[i].len(), used[i])) {
                Some(i) => format!(
                    "{} {} matches no recorded request; the closest, #{} ({} {}), differs in {}",
                    sent.method,
                    sent.url,
                    i + 1,
                    self.interactions[i].request.method,
                    self.interactions[i].request.url,
                    diffs[i].join("; ")
                ),
                None => format!("{} {}: the cassette is empty", sent.method, sent.url),
            };
            self.mismatches
                .lock()
                .expect("replayer poisoned")
                .push(why.clone());
            return Err(TransportError::other(format!("cassette mismatch: {why}")));
        };
        used[i] = true;
        let recorded = &self.interactions[i].response;
        let mut response = http::Response::builder().status(recorded.status);
        for (name, value) in &recorded.headers {
            response = response.header(name, value);
        }
        response
            .body(TransportBody::full(recorded.body.bytes()))
            .map_err(|e| TransportError::other(format!("cassette response #{}: {e}", i + 1)))
    }
}

impl Transport for Replayer {
    fn send(
        &self,
        request: TransportRequest,
    ) -> Pin<Box<dyn Future<Output = Result<TransportResponse, TransportError>> + Send + '_>> {
        let answer = self.answer(&request);
        Box::pin(async move { answer })
    }
}

/// What differs between a recorded request and one sent, each as
/// `part: recorded …, sent …`; empty when they match.
fn differences(recorded: &RecordedRequest, sent: &RecordedRequest) -> Vec<String> {
    let mut out = vec![];
    let mut differ = |part: &str, a: &str, b: &str| {
        if a != b {
            out.push(format!("{part}: recorded `{a}`, sent `{b}`"));
        }
    };
    differ("method", &recorded.method, &sent.method);
    let (a, b) = (
        url::Url::parse(&recorded.url).ok(),
        url::Url::parse(&sent.url).ok(),
    );
    match (a, b) {
        (Some(a), Some(b)) => {
            differ(
                "origin",
                &a.origin().ascii_serialization(),
                &b.origin().ascii_serialization(),
            );
            differ("path", a.path(), b.path());
            differ("query", a.query().unwrap_or(""), b.query().unwrap_or(""));
        }
        _ => differ("url", &recorded.url, &sent.url),
    }
    let compared = |headers: &[(String, String)]| -> Vec<(String, String)> {
        let mut h: Vec<(String, String)> = headers
            .iter()
            .filter(|(n, _)| !UNMATCHED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        h.sort();
        h
    };
    let (ha, hb) = (compared(&recorded.headers), compared(&sent.headers));
    let mut names: Vec<&String> = ha.iter().chain(&hb).map(|(n, _)| n).collect();
    names.sort();
    names.dedup();
    for name in names {
        let values = |h: &[(String, String)]| -> String {
            let v: Vec<&str> = h
                .iter()
                .filter(|(n, _)| n == name)
                .map(|(_, v)| v.as_str())
                .collect();
            if v.is_empty() {
                "(none)".to_owned()
            } else {
                v.join(", ")
            }
        };
        differ(&format!("header {name}"), &values(&ha), &values(&hb));
    }
    if recorded.body != sent.body {
        out.push(body_difference(&recorded.body, &sent.body));
    }
    out
}

/// Where two bodies first differ: a JSON pointer for JSON, else the first
/// differing position with some context.
fn body_difference(recorded: &RecordedBody, sent: &RecordedBody) -> String {
    let json = |b: &RecordedBody| serde_json::from_str::<serde_json::Value>(&b.body).ok();
    if let (false, false, Some(a), Some(b)) = (
        recorded.body_base64,
        sent.body_base64,
        json(recorded),
        json(sent),
    ) && let Some((pointer, a, b)) = json_difference(&a, &b, String::new())
    {
        return format!("body at `{pointer}`: recorded `{a}`, sent `{b}`");
    }
    let (a, b) = (recorded.body.as_bytes(), sent.body.as_bytes());
    let at = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    let around = |s: &str| -> String {
        let start = s.floor_char_boundary(at.saturating_sub(20));
        let end = s.ceil_char_boundary((at + 40).min(s.len()));
        s[start..end].to_owned()
    };
    format!(
        "body from byte {at}: recorded `{}`, sent `{}`",
        around(&recorded.body),
        around(&sent.body)
    )
}

/// The first place two JSON values differ: its pointer and both values.
fn json_difference(
    a: &serde_json::Value,
    b: &serde_json::Value,
    at: String,
) -> Option<(String, String, String)> {
    use serde_json::Value;
    let missing = || "(none)".to_owned();
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let mut keys: Vec<&String> = x.keys().chain(y.keys()).collect();
            keys.sort();
            keys.dedup();
            keys.into_iter().find_map(|k| {
                let here = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                match (x.get(k), y.get(k)) {
                    (Some(p), Some(q)) => json_difference(p, q, here),
                    (p, q) => Some((
                        here,
                        p.map_or_else(missing, Value::to_string),
                        q.map_or_else(missing, Value::to_string),
                    )),
                }
            })
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => x
            .iter()
            .zip(y)
            .enumerate()
            .find_map(|(i, (p, q))| json_difference(p, q, format!("{at}/{i}"))),
        _ if a == b => None,
        _ => Some((at, a.to_string(), b.to_string())),
    }
}
