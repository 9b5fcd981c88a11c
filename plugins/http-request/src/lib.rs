//! The generic "External API Request" step: one HTTP request, described by the
//! step's input, sent by the host through the operator's `default` connection
//! when the step binds it.

mod json_text;

use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use courier_sdk::prelude::*;
use courier_sdk::schemars::{Schema, SchemaGenerator, json_schema};
use serde::de::{DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

/// The connection the operator configures for this step.
const CONNECTION: &str = "default";

fn plugin() -> Plugin {
    Plugin::new("http-request", env!("CARGO_PKG_VERSION"))
        .description("External API Request: sends one HTTP request and returns the response")
        .allow_host("https://*:*")
        .allow_host("http://*:*")
        .connection(
            Connection::new(CONNECTION)
                .description("The API to call: the operator sets its base URL and authentication")
                .auth(Auth::OperatorDefined),
        )
        .call(request::call())
}

courier_sdk::export!(plugin);

/// The step's input.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Input {
    /// An absolute `http(s)://` URL, or a path relative to the default
    /// connection's base URL.
    url: String,
    /// The HTTP method, in any case.
    #[serde(default = "default_method")]
    method: String,
    /// Query parameters appended to the URL: an object whose values are scalars
    /// or lists of scalars, or a list of `[name, value]` pairs (order and
    /// repeated names kept).
    #[serde(default)]
    params: Pairs<ParamValue>,
    /// Request headers: an object of strings or a list of `[name, value]` pairs.
    #[serde(default)]
    headers: Pairs<String>,
    /// The request body, encoded as `body_type` says.
    #[serde(default)]
    body: Option<Value>,
    /// How to encode `body` (default `json`).
    #[serde(default)]
    body_type: BodyType,
    /// How the string of a `raw` body is written (default `utf8`).
    #[serde(default)]
    encoding: Encoding,
    /// Time allowed for the whole request, in seconds.
    #[serde(default = "default_timeout")]
    timeout: f64,
    /// Whether to follow redirects.
    #[serde(default = "default_follow_location")]
    follow_location: bool,
    /// Retries of the request; sent once when absent. The host retries a
    /// listed status, or a failure before the request was sent; after its
    /// bytes may have reached the server (a reset, a timeout, a status)
    /// only GET, HEAD, OPTIONS, or a request with an `idempotency_key`.
    #[serde(default)]
    retry: Option<RetryInput>,
    /// Sent as `Idempotency-Key` on every attempt: a string, or `true` for a
    /// fresh key from the host (`false`: none).
    #[serde(default)]
    idempotency_key: Option<IdempotencyKey>,
    /// Follow the API's pages (the host sends them, each listed in the
    /// step's requests); the output's `body` is then the JSON array of
    /// every page's items, and its `courier-pagination` header says why
    /// paging ended.
    #[serde(default)]
    paginate: Option<PaginateInput>,
    /// Let the host answer a GET or HEAD from its response cache (per
    /// connection, never across tenants or credentials): responses marked
    /// `no-store`, `private` or `no-cache` are never kept, a shorter
    /// `max-age` wins, and a hit is marked `cache: "hit"` in the step's
    /// requests.
    #[serde(default)]
    cache: Option<CacheInput>,
}

/// How long a response may be reused.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct CacheInput {
    /// Seconds a kept response is reused, more than 0.
    ttl: f64,
}

/// How the API's pages are followed, with Nango's names.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct PaginateInput {
    /// `cursor`, `page`, `offset` or `link`.
    #[serde(rename = "type")]
    kind: PaginateType,
    /// `cursor`: the path to the next cursor in each page's JSON (keys
    /// separated by `.`, array indexes, `-1` for the last element:
    /// `data.-1.id` for Stripe's `starting_after`).
    #[serde(default)]
    cursor_path_in_response: Option<String>,
    /// `cursor`: the query parameter the cursor is sent in.
    #[serde(default)]
    cursor_name_in_request: Option<String>,
    /// `page`: the query parameter of the page number, from 1 (default `page`).
    #[serde(default)]
    page_name_in_request: Option<String>,
    /// `offset`: the query parameter of the offset, from 0 (default `offset`).
    #[serde(default)]
    offset_name_in_request: Option<String>,
    /// The path to the items array in each page's JSON (default: the body
    /// itself).
    #[serde(default)]
    response_path: String,
    /// The query parameter the page size is sent in (`limit`, `per_page`).
    #[serde(default)]
    limit_name_in_request: Option<String>,
    /// The page size sent in `limit_name_in_request`; with `page` and
    /// `offset` a shorter page is the last.
    #[serde(default)]
    #[schemars(range(min = 1))]
    limit: Option<u32>,
    /// At most this many pages (the host caps pages, items and bytes too).
    #[serde(default)]
    #[schemars(range(min = 1))]
    max_pages: Option<u32>,
}

/// How the next page is found.
#[derive(Deserialize, JsonSchema, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
enum PaginateType {
    /// A cursor in the response, sent back in a query parameter.
    Cursor,
    /// Page numbers.
    Page,
    /// Item offsets.
    Offset,
    /// The `Link` header's `rel="next"`.
    Link,
}

/// How the request is retried.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct RetryInput {
    /// Attempts in all, the first included (default 3); the host caps it.
    #[serde(default = "default_attempts")]
    #[schemars(range(min = 1))]
    attempts: u32,
    /// The delays between attempts.
    #[serde(default)]
    backoff: Backoff,
    /// Response statuses that are retried (default 429, 502, 503, 504).
    #[serde(default = "default_retry_statuses")]
    statuses: Vec<u16>,
}

/// Exponential backoff with full jitter: the first delay at most `initial`
/// seconds, doubled each retry, never over `max`. A `Retry-After` or
/// rate-limit header of the upstream takes precedence.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Backoff {
    /// The first delay, in seconds (default 0.2).
    #[serde(default = "default_backoff_initial")]
    initial: f64,
    /// The longest delay, in seconds (default 5); the host caps it.
    #[serde(default = "default_backoff_max")]
    max: f64,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: default_backoff_initial(),
            max: default_backoff_max(),
        }
    }
}

/// An idempotency key given, or asked of the host.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum IdempotencyKey {
    /// This key.
    Given(String),
    /// `true`: a fresh key from the host; `false`: none.
    Generated(bool),
}

fn default_attempts() -> u32 {
    3
}

fn default_retry_statuses() -> Vec<u16> {
    vec![429, 502, 503, 504]
}

fn default_backoff_initial() -> f64 {
    0.2
}

fn default_backoff_max() -> f64 {
    5.0
}

fn default_method() -> String {
    "GET".to_owned()
}

fn default_timeout() -> f64 {
    30.0
}

fn default_follow_location() -> bool {
    true
}

/// How the body is encoded.
#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum BodyType {
    /// Any JSON value, sent as `application/json`.
    #[default]
    Json,
    /// An object whose values are scalars or lists of scalars, or a list of
    /// `[name, value]` pairs, sent as `application/x-www-form-urlencoded`.
    Form,
    /// A string, sent as `text/plain; charset=utf-8`.
    Text,
    /// A string (bytes written as `encoding` says), sent under the input's
    /// `Content-Type` header (default `application/octet-stream`).
    Raw,
    /// A string, sent as `application/xml`.
    Xml,
    /// An object `{"query", "variables", "operation_name"}`, sent as a GraphQL
    /// JSON POST body.
    Graphql,
    /// A list of parts (see [`Part`]), sent as `multipart/form-data`.
    Multipart,
}

/// How a string stands for bytes.
#[derive(Deserialize, JsonSchema, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Encoding {
    /// The string's own UTF-8 bytes.
    #[default]
    Utf8,
    /// Standard base64 (with padding).
    Base64,
    /// Hexadecimal digits, two per byte, in either case.
    Hex,
}

impl Encoding {
    /// The bytes `text` stands for.
    fn decode(self, text: String, what: &str) -> Result<Vec<u8>, StepError> {
        let invalid = |reason: &str| StepError::invalid_input(format!("{what}: {reason}"));
        match self {
            Self::Utf8 => Ok(text.into_bytes()),
            Self::Base64 => BASE64
                .decode(text)
                .map_err(|e| invalid(&format!("invalid base64: {e}"))),
            Self::Hex => {
                let digits = text.as_bytes();
                if !digits.len().is_multiple_of(2) {
                    return Err(invalid("hex needs an even number of digits"));
                }
                digits
                    .chunks(2)
                    .map(|pair| {
                        std::str::from_utf8(pair)
                            .ok()
                            .and_then(|pair| u8::from_str_radix(pair, 16).ok())
                            .ok_or_else(|| invalid("invalid hex digit"))
                    })
                    .collect()
            }
        }
    }
}

/// One part of a `multipart` body: a text field, or a file when `filename` is set.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Part {
    /// The form field name.
    name: String,
    /// The part's content, written as `encoding` says.
    value: String,
    /// A file name; the part is sent as a file when present.
    #[serde(default)]
    filename: Option<String>,
    /// The part's content type (files default to `application/octet-stream`).
    #[serde(default)]
    content_type: Option<String>,
    /// How `value` is written (default `utf8`).
    #[serde(default)]
    encoding: Encoding,
}

/// A GraphQL operation.
#[derive(Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
struct Graphql {
    /// The query document.
    query: String,
    /// The variables, an object.
    #[serde(default)]
    variables: Option<serde_json::Map<String, Value>>,
    /// Which operation of the document to run.
    #[serde(default)]
    operation_name: Option<String>,
}

/// A query or form value: one scalar or several (a repeated name).
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum ParamValue {
    /// One value.
    One(Scalar),
    /// Several values under the same name.
    Many(Vec<Scalar>),
}

/// A string, number or boolean, sent as text.
#[derive(Deserialize, JsonSchema)]
#[serde(untagged)]
enum Scalar {
    /// Sent as it is.
    Text(String),
    /// Sent as JSON writes it.
    Number(serde_json::Number),
    /// `true` or `false`.
    Bool(bool),
}

impl fmt::Display for Scalar {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Text(text) => f.write_str(text),
            Self::Number(number) => number.fmt(f),
            Self::Bool(flag) => flag.fmt(f),
        }
    }
}

/// Name/value pairs, written as a JSON object (kept in its order) or as a list
/// of `[name, value]` pairs (order and repeated names kept).
struct Pairs<V>(Vec<(String, V)>);

impl<V> Default for Pairs<V> {
    fn default() -> Self {
        Self(Vec::new())
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Pairs<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PairsVisitor<V>(PhantomData<V>);

        impl<'de, V: Deserialize<'de>> Visitor<'de> for PairsVisitor<V> {
            type Value = Pairs<V>;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an object or a list of [name, value] pairs")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(map.size_hint().unwrap_or(0));
                while let Some(pair) = map.next_entry()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut pairs = Vec::with_capacity(seq.size_hint().unwrap_or(0));
                while let Some(pair) = seq.next_element()? {
                    pairs.push(pair);
                }
                Ok(Pairs(pairs))
            }
        }

        deserializer.deserialize_any(PairsVisitor(PhantomData))
    }
}

impl<V: JsonSchema> JsonSchema for Pairs<V> {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        format!("Pairs_of_{}", V::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "anyOf": [
                { "type": "object", "additionalProperties": generator.subschema_for::<V>() },
                { "type": "array", "items": generator.subschema_for::<(String, V)>() },
            ]
        })
    }
}

/// The response, as the step's output.
#[derive(Serialize, JsonSchema, Debug)]
struct Output {
    /// The final status code.
    status: u16,
    /// Response headers by lowercase name; repeated headers joined with `, `.
    headers: BTreeMap<String, String>,
    /// The body: parsed JSON when the content type is JSON and it parses, else
    /// the text when it is UTF-8, else base64.
    #[schemars(with = "Value")]
    body: Box<RawValue>,
    /// Whether `body` is base64.
    body_base64: bool,
    /// The URL that answered, after redirects.
    url: String,
}

/// Sends an HTTP request and returns its status, headers and body. A status
/// outside 2xx fails the step with outcome http-error, still carrying the
/// response as output.
#[call(action, title = "External API Request")]
fn request(input: Input) -> Result<Output, StepError> {
    let mut request = build(input)?;
    if bound_connections().iter().any(|name| name == CONNECTION) {
        request = request.connection(CONNECTION);
    }
    let output = output(request.send()?);
    if (200..300).contains(&output.status) {
        return Ok(output);
    }
    Err(StepError::Http {
        status: output.status,
        message: format!("upstream answered {}", output.status),
        output: Some(serde_json::to_value(&output)?),
    })
}

/// The request the input describes, without a connection.
fn build(input: Input) -> Result<Request, StepError> {
    let method: Method = input
        .method
        .parse()
        .map_err(|e| StepError::invalid_input(format!("method: {e}")))?;
    let timeout = Duration::try_from_secs_f64(input.timeout)
        .ok()
        .filter(|timeout| !timeout.is_zero())
        .ok_or_else(|| {
            StepError::invalid_input("timeout: expected a positive number of seconds")
        })?;

    let mut request = Request::new(method, input.url)
        .timeout(timeout)
        .follow_redirects(input.follow_location);
    if let Some(retry) = input.retry {
        request = request.retry(retry_policy(retry)?);
    }
    if let Some(cache) = input.cache {
        let ttl = Duration::try_from_secs_f64(cache.ttl)
            .ok()
            .filter(|ttl| !ttl.is_zero())
            .ok_or_else(|| {
                StepError::invalid_input("cache.ttl: expected a positive number of seconds")
            })?;
        request = request.cache(ttl);
    }
    if let Some(paginate) = input.paginate {
        request = request.paginate(pagination(paginate)?);
    }
    request = match input.idempotency_key {
        Some(IdempotencyKey::Given(key)) => request.idempotency_key(key),
        Some(IdempotencyKey::Generated(true)) => request.generated_idempotency_key(),
        Some(IdempotencyKey::Generated(false)) | None => request,
    };
    for (name, value) in flatten(input.params) {
        request = request.query(name, value);
    }
    let mut headers = input.headers.0;
    if let Some(body) = input.body {
        request = match input.body_type {
            BodyType::Json => request.json_text(body.to_string()),
            BodyType::Form => request.form(flatten(from_body::<Pairs<ParamValue>>(body, "form")?)),
            BodyType::Text => request.text(from_body::<String>(body, "text")?),
            BodyType::Raw => {
                let content_type = take_header(&mut headers, "content-type")
                    .unwrap_or_else(|| "application/octet-stream".to_owned());
                let data = input
                    .encoding
                    .decode(from_body::<String>(body, "raw")?, "body")?;
                request.bytes(content_type, data)
            }
            BodyType::Xml => request.xml(from_body::<String>(body, "xml")?),
            BodyType::Graphql => {
                let op = from_body::<Graphql>(body, "graphql")?;
                let variables = op.variables.map(Value::Object);
                request.graphql(op.query, variables, op.operation_name.as_deref())
            }
            BodyType::Multipart => {
                let parts = from_body::<Vec<Part>>(body, "multipart")?;
                request.multipart(
                    parts
                        .into_iter()
                        .map(form_part)
                        .collect::<Result<Vec<_>, _>>()?,
                )
            }
        };
    }
    for (name, value) in headers {
        request = request.header(name, value);
    }
    Ok(request)
}

/// The host's retry policy for the input's `retry`.
fn retry_policy(retry: RetryInput) -> Result<RetryPolicy, StepError> {
    let seconds = |value: f64, field: &str| {
        Duration::try_from_secs_f64(value).map_err(|_| {
            StepError::invalid_input(format!(
                "retry.backoff.{field}: expected a number of seconds, 0 or more"
            ))
        })
    };
    Ok(RetryPolicy::attempts(retry.attempts)
        .backoff(
            seconds(retry.backoff.initial, "initial")?,
            seconds(retry.backoff.max, "max")?,
        )
        .on_status(retry.statuses))
}

/// The host's pagination for the input's `paginate`. A name that belongs
/// to another `type` is refused, so a mistyped configuration does not page
/// silently in another way.
fn pagination(p: PaginateInput) -> Result<Pagination, StepError> {
    let foreign = [
        (
            PaginateType::Cursor,
            "cursor_path_in_response",
            p.cursor_path_in_response.is_some(),
        ),
        (
            PaginateType::Cursor,
            "cursor_name_in_request",
            p.cursor_name_in_request.is_some(),
        ),
        (
            PaginateType::Page,
            "page_name_in_request",
            p.page_name_in_request.is_some(),
        ),
        (
            PaginateType::Offset,
            "offset_name_in_request",
            p.offset_name_in_request.is_some(),
        ),
    ];
    if let Some((_, field, _)) = foreign
        .iter()
        .find(|(kind, _, set)| *set && *kind != p.kind)
    {
        return Err(StepError::invalid_input(format!(
            "paginate.{field}: does not apply to this `type`"
        )));
    }
    let required = |value: Option<String>, field: &str| {
        value.ok_or_else(|| {
            StepError::invalid_input(format!("paginate.{field}: required with `type` cursor"))
        })
    };
    let mut pages = match p.kind {
        PaginateType::Cursor => Pagination::cursor(
            required(p.cursor_path_in_response, "cursor_path_in_response")?,
            required(p.cursor_name_in_request, "cursor_name_in_request")?,
        ),
        PaginateType::Page => {
            Pagination::page(p.page_name_in_request.unwrap_or_else(|| "page".into()))
        }
        PaginateType::Offset => {
            Pagination::offset(p.offset_name_in_request.unwrap_or_else(|| "offset".into()))
        }
        PaginateType::Link => Pagination::link(),
    }
    .items(p.response_path);
    match (p.limit_name_in_request, p.limit) {
        (Some(name), Some(limit)) => pages = pages.page_size(name, limit),
        (None, Some(limit)) => pages.page_size = Some(limit),
        (Some(_), None) => {
            return Err(StepError::invalid_input(
                "paginate.limit: required with `limit_name_in_request`",
            ));
        }
        (None, None) => {}
    }
    if let Some(max) = p.max_pages {
        pages = pages.max_pages(max);
    }
    Ok(pages)
}

/// The SDK's form part for a multipart input part.
fn form_part(part: Part) -> Result<FormPart, StepError> {
    let what = format!("multipart part `{}`", part.name);
    let data = part.encoding.decode(part.value, &what)?;
    let mut form_part = FormPart::new(part.name, data);
    if let Some(filename) = part.filename {
        form_part = form_part.filename(filename);
    }
    if let Some(content_type) = part.content_type {
        form_part = form_part.content_type(content_type);
    }
    Ok(form_part)
}

/// One `(name, value)` pair per scalar, in order.
fn flatten(pairs: Pairs<ParamValue>) -> impl Iterator<Item = (String, String)> {
    pairs.0.into_iter().flat_map(|(name, value)| {
        let values = match value {
            ParamValue::One(scalar) => vec![scalar],
            ParamValue::Many(scalars) => scalars,
        };
        values
            .into_iter()
            .map(move |scalar| (name.clone(), scalar.to_string()))
    })
}

/// The body as `body_type` requires it.
fn from_body<T: DeserializeOwned>(body: Value, body_type: &str) -> Result<T, StepError> {
    serde_json::from_value(body).map_err(|e| {
        StepError::invalid_input(format!("body does not suit body_type {body_type}: {e}"))
    })
}

/// Removes every header named `name` and returns the last value.
fn take_header(headers: &mut Vec<(String, String)>, name: &str) -> Option<String> {
    let mut found = None;
    headers.retain(|(header, value)| {
        let matches = header.eq_ignore_ascii_case(name);
        if matches {
            found = Some(value.clone());
        }
        !matches
    });
    found
}

fn output(response: Response) -> Output {
    let mut headers = BTreeMap::<String, String>::new();
    for (name, value) in response.headers() {
        headers
            .entry(name.to_ascii_lowercase())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(value);
            })
            .or_insert_with(|| value.clone());
    }
    let is_json = response
        .header("content-type")
        .is_some_and(is_json_media_type);
    let status = response.status();
    let url = response.final_url().to_owned();
    let (body, body_base64) = body_value(response.into_body(), is_json);
    Output {
        status,
        headers,
        body,
        body_base64,
        url,
    }
}

/// `application/json` or any `+json` type, parameters ignored.
fn is_json_media_type(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

/// The body as the output's JSON text: the body itself when `is_json` and it
/// parses, else a string of its text, else of its base64.
///
/// A JSON body is parsed only to check it (as the host will read it: numbers
/// in range, no lone surrogates) and is then passed on as it came, not
/// serialized again (`RawValue::from_string` scans it once more, still far
/// less than serializing the parsed value).
fn body_value(body: Vec<u8>, is_json: bool) -> (Box<RawValue>, bool) {
    let body = match String::from_utf8(body) {
        Ok(text) => text,
        Err(error) => {
            return (
                json_text::string_literal(&BASE64.encode(error.into_bytes())),
                true,
            );
        }
    };
    if is_json && serde_json::from_str::<Value>(&body).is_ok() {
        return (
            RawValue::from_string(body).expect("checked to be JSON"),
            false,
        );
    }
    (json_text::string_literal(&body), false)
}

#[cfg(test)]
mod tests {
    use courier_sdk::testing::{Expect, MockHost, Reply, SentRequest};

    use super::*;

    fn input(json: Value) -> Input {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn a_get_goes_out_with_params_in_order_through_the_bound_connection() {
        let host = MockHost::new();
        host.bind(CONNECTION).expect(
            Expect::get("/v1/customers")
                .connection(CONNECTION)
                .query_exactly([("z", "1"), ("a", "x"), ("a", "true"), ("m", "2.5")])
                .header("X-Trace", "t-1")
                .reply(Reply::json(200, json!({"data": [{"id": "cus_1"}]}))),
        );
        let output = request(input(json!({
            "url": "/v1/customers",
            "params": {"z": 1, "a": ["x", true], "m": 2.5},
            "headers": {"X-Trace": "t-1"}
        })))
        .unwrap();
        assert_eq!(
            serde_json::to_value(output).unwrap(),
            json!({
                "status": 200,
                "headers": {"content-type": "application/json"},
                "body": {"data": [{"id": "cus_1"}]},
                "body_base64": false,
                "url": "/v1/customers",
            })
        );
        assert_eq!(host.requests()[0].timeout, Some(Duration::from_secs(30)));
    }

    #[test]
    fn a_failed_status_is_an_http_error_carrying_the_response() {
        let host = MockHost::new();
        host.expect(
            Expect::post("https://api.test/orders")
                .form([("item", "a"), ("item", "b"), ("note", "x y")])
                .reply(Reply::text(422, "no stock")),
        );
        let error = request(input(json!({
            "url": "https://api.test/orders", "method": "post", "body_type": "form",
            "body": {"item": ["a", "b"], "note": "x y"}
        })))
        .unwrap_err();
        let StepError::Http {
            status: 422,
            output: Some(output),
            ..
        } = error
        else {
            panic!("{error:?}")
        };
        assert_eq!(output["body"], "no stock");
        assert_eq!(
            host.requests()[0].connection,
            None,
            "no connection is named when the step binds none"
        );
    }

    #[test]
    fn a_refused_request_is_the_step_error() {
        let host = MockHost::new();
        host.expect(
            Expect::new(Method::Put, "/items/1")
                .json(json!({"name": "n", "tags": ["a"]}))
                .matching("an idempotency key from the host", |r| {
                    r.idempotency_key.as_deref() == Some("test-idempotency-key-1")
                })
                .reply(Reply::error(SendReason::Denied("not allowed".into()))),
        );
        let error = request(input(json!({
            "url": "/items/1", "method": "PUT", "idempotency_key": true,
            "body": {"name": "n", "tags": ["a"]}
        })))
        .unwrap_err();
        assert_eq!(
            error,
            StepError::Send(SendReason::Denied("not allowed".into()).into())
        );
    }

    #[test]
    fn input_defaults() {
        let input = input(json!({"url": "https://api.test/x"}));
        assert_eq!(input.method, "GET");
        assert!(input.params.0.is_empty() && input.headers.0.is_empty() && input.body.is_none());
        assert!(matches!(input.body_type, BodyType::Json));
        assert_eq!(input.timeout, 30.0);
        assert!(input.follow_location);
        assert!(input.retry.is_none() && input.idempotency_key.is_none());
    }

    #[test]
    fn cache_input_needs_a_positive_ttl() {
        for ttl in [json!(0), json!(-1)] {
            let error = build(input(json!({"url": "u", "cache": {"ttl": ttl}}))).unwrap_err();
            assert!(
                matches!(&error, StepError::InvalidInput(m) if m.starts_with("cache.ttl")),
                "{error:?}"
            );
        }
        assert!(build(input(json!({"url": "u", "cache": {"ttl": 1.5}}))).is_ok());
        assert!(
            serde_json::from_value::<Input>(json!({"url": "u", "cache": {"ttl": 1, "x": 1}}))
                .is_err()
        );
    }

    #[test]
    fn paginate_input_becomes_the_hosts_pagination() {
        let pages = |paginate: Value| pagination(serde_json::from_value(paginate).unwrap());
        let stripe = pages(json!({
            "type": "cursor", "cursor_path_in_response": "data.-1.id",
            "cursor_name_in_request": "starting_after", "response_path": "data",
            "limit_name_in_request": "limit", "limit": 2, "max_pages": 9
        }))
        .unwrap();
        assert!(matches!(&stripe.style,
            PageStyle::Cursor(c) if c.path == "data.-1.id" && c.param == "starting_after"));
        assert_eq!(
            (
                stripe.items_path.as_str(),
                stripe.limit_param.as_deref(),
                stripe.page_size,
                stripe.max_pages
            ),
            ("data", Some("limit"), Some(2), Some(9))
        );
        let page = pages(json!({"type": "page"})).unwrap();
        assert!(matches!(&page.style, PageStyle::Page(p) if p == "page"));
        assert_eq!((page.items_path.as_str(), page.page_size), ("", None));
        let offset =
            pages(json!({"type": "offset", "offset_name_in_request": "skip", "limit": 5})).unwrap();
        assert!(matches!(&offset.style, PageStyle::Offset(p) if p == "skip"));
        assert_eq!((offset.limit_param, offset.page_size), (None, Some(5)));
        assert!(matches!(
            pages(json!({"type": "link"})).unwrap().style,
            PageStyle::Link
        ));
        for (bad, field) in [
            (
                json!({"type": "cursor", "cursor_name_in_request": "c"}),
                "paginate.cursor_path_in_response",
            ),
            (
                json!({"type": "link", "page_name_in_request": "p"}),
                "paginate.page_name_in_request",
            ),
            (
                json!({"type": "page", "limit_name_in_request": "per_page"}),
                "paginate.limit",
            ),
        ] {
            let error = pages(bad).unwrap_err();
            assert!(
                matches!(&error, StepError::InvalidInput(m) if m.starts_with(field)),
                "{field}: {error:?}"
            );
        }
        for unknown in [
            json!({"type": "next"}),
            json!({"type": "link", "rel": "next"}),
        ] {
            assert!(serde_json::from_value::<PaginateInput>(unknown).is_err());
        }
    }

    #[test]
    fn retry_input_becomes_the_hosts_policy() {
        let policy = |retry: Value| {
            retry_policy(serde_json::from_value(retry).unwrap()).map(|p| {
                (
                    p.max_attempts,
                    p.initial_backoff_ms,
                    p.max_backoff_ms,
                    p.retry_on_status,
                )
            })
        };
        assert_eq!(
            policy(json!({})).unwrap(),
            (3, 200, 5000, vec![429, 502, 503, 504])
        );
        assert_eq!(
            policy(
                json!({"attempts": 5, "backoff": {"initial": 0.5, "max": 2}, "statuses": [503]})
            )
            .unwrap(),
            (5, 500, 2000, vec![503])
        );
        let error = policy(json!({"backoff": {"initial": -1}})).unwrap_err();
        assert!(
            matches!(&error, StepError::InvalidInput(m) if m.starts_with("retry.backoff.initial")),
            "{error}"
        );
        let request = build(input(json!({
            "url": "u", "method": "POST", "retry": {"attempts": 2}, "idempotency_key": "k-1"
        })))
        .unwrap();
        let sent = SentRequest::from(request);
        assert_eq!(sent.retry.map(|r| r.max_attempts), Some(2));
        assert_eq!(sent.idempotency_key.as_deref(), Some("k-1"));
        for bad in [
            json!({"url": "u", "retry": {"attempts": 2, "tries": 1}}),
            json!({"url": "u", "retry": {"statuses": "503"}}),
            json!({"url": "u", "idempotency_key": 7}),
        ] {
            assert!(
                serde_json::from_value::<Input>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn params_as_object_or_pairs_keep_order_and_repeats() {
        let object = input(json!({"url": "u", "params": {"z": 1, "a": ["x", true], "m": 2.5}}));
        assert_eq!(
            flatten(object.params).collect::<Vec<_>>(),
            [("z", "1"), ("a", "x"), ("a", "true"), ("m", "2.5")]
                .map(|(k, v)| (k.into(), v.into()))
        );
        let pairs = input(json!({"url": "u", "params": [["a", "1"], ["b", 2], ["a", "3"]]}));
        assert_eq!(
            flatten(pairs.params).collect::<Vec<_>>(),
            [("a", "1"), ("b", "2"), ("a", "3")].map(|(k, v)| (k.into(), v.into()))
        );
        let headers = input(json!({"url": "u", "headers": [["X-A", "1"], ["X-A", "2"]]}));
        assert_eq!(headers.headers.0.len(), 2);
    }

    #[test]
    fn bad_input_is_rejected() {
        for bad in [
            json!({"url": "u", "params": {"a": {"nested": 1}}}),
            json!({"url": "u", "params": [["a"]]}),
            json!({"url": "u", "headers": {"a": 1}}),
            json!({"url": "u", "body_type": "yaml"}),
            json!({"url": "u", "unknown": 1}),
        ] {
            assert!(
                serde_json::from_value::<Input>(bad.clone()).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn method_timeout_and_body_errors_are_invalid_input() {
        for (bad, expected) in [
            (
                json!({"url": "u", "method": "BREW"}),
                "method: unknown HTTP method `BREW`",
            ),
            (json!({"url": "u", "timeout": 0}), "timeout"),
            (json!({"url": "u", "timeout": -1.5}), "timeout"),
            (
                json!({"url": "u", "body": 1, "body_type": "text"}),
                "body_type text",
            ),
            (
                json!({"url": "u", "body": "a=1", "body_type": "form"}),
                "body_type form",
            ),
        ] {
            let error = build(input(bad)).err().unwrap();
            assert!(
                matches!(&error, StepError::InvalidInput(m) if m.contains(expected)),
                "{error}"
            );
        }
    }

    #[test]
    fn encodings_decode_or_say_why_not() {
        assert_eq!(
            Encoding::Utf8.decode("hé".into(), "b").unwrap(),
            "hé".as_bytes()
        );
        assert_eq!(
            Encoding::Base64.decode("/wD+AQ==".into(), "b").unwrap(),
            [0xff, 0, 0xfe, 1]
        );
        assert_eq!(
            Encoding::Hex.decode("ff00FE01".into(), "b").unwrap(),
            [0xff, 0, 0xfe, 1]
        );
        for (encoding, bad) in [
            (Encoding::Base64, "***"),
            (Encoding::Hex, "abc"),
            (Encoding::Hex, "zz"),
            (Encoding::Hex, "é1"),
        ] {
            let error = encoding.decode(bad.into(), "body").unwrap_err();
            assert!(
                matches!(&error, StepError::InvalidInput(m) if m.starts_with("body: ")),
                "{error}"
            );
        }
    }

    #[test]
    fn raw_content_type_comes_from_the_headers() {
        let mut headers = vec![
            ("Content-Type".into(), "image/png".into()),
            ("X-A".into(), "1".into()),
        ];
        assert_eq!(
            take_header(&mut headers, "content-type").as_deref(),
            Some("image/png")
        );
        assert_eq!(headers, [("X-A".to_owned(), "1".to_owned())]);
        assert_eq!(take_header(&mut headers, "content-type"), None);
    }

    #[test]
    fn output_lowercases_and_joins_headers() {
        let headers = [
            ("Set-Cookie", "a=1"),
            ("Content-Type", "application/json"),
            ("set-cookie", "b=2"),
        ];
        let headers = headers.map(|(k, v)| (k.to_owned(), v.to_owned())).to_vec();
        let response = Response::new(
            200,
            headers,
            br#"{"ok":true}"#.to_vec(),
            "https://api.test/x",
        );
        assert_eq!(
            serde_json::to_value(output(response)).unwrap(),
            json!({
                "status": 200,
                "headers": {"content-type": "application/json", "set-cookie": "a=1, b=2"},
                "body": {"ok": true},
                "body_base64": false,
                "url": "https://api.test/x",
            })
        );
    }

    #[test]
    fn body_is_json_text_or_base64() {
        assert!(is_json_media_type("application/json; charset=utf-8"));
        assert!(is_json_media_type("Application/Problem+JSON"));
        assert!(!is_json_media_type("text/json-ish"));
        let value = |body: &[u8], is_json| {
            let (raw, base64) = body_value(body.to_vec(), is_json);
            (serde_json::from_str::<Value>(raw.get()).unwrap(), base64)
        };
        assert_eq!(value(br#" {"a": 1} "#, true), (json!({"a": 1}), false));
        assert_eq!(value(br#"{"a":1}"#, false), (json!(r#"{"a":1}"#), false));
        assert_eq!(value(b"not json", true), (json!("not json"), false));
        assert_eq!(
            value(b"line\n\"x\"\t\x01", false),
            (json!("line\n\"x\"\t\u{1}"), false)
        );
        assert_eq!(value(&[0xff, 0x00], false), (json!("/wA="), true));
        // JSON the host could not read stays text: a number out of range,
        // a lone surrogate.
        assert_eq!(value(b"[1e400]", true), (json!("[1e400]"), false));
        assert_eq!(
            value(br#"["\ud800"]"#, true),
            (json!(r#"["\ud800"]"#), false)
        );
    }
}
