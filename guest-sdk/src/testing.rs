//! A test double for the host, so a plugin's calls run under `cargo test` on
//! the author's machine (natively; this module does not exist in a
//! component).
//!
//! A [`MockHost`] stands in for the host on the current thread while it
//! lives: each request a call sends must match an expectation given with
//! [`MockHost::expect`], which answers it; what was sent is kept for
//! assertions ([`MockHost::requests`]). A request that matches no
//! expectation panics at once, naming the request and why each remaining
//! expectation did not match; an expectation still unused when the
//! `MockHost` is dropped fails the test too.
//!
//! ```
//! use courier_sdk::prelude::*;
//! use courier_sdk::testing::{Expect, MockHost, Reply};
//!
//! fn create_customer(email: &str) -> Result<Value, StepError> {
//!     Request::post("/v1/customers")
//!         .connection("stripe")
//!         .form([("email", email)])
//!         .send()?
//!         .error_for_status()?
//!         .json()
//! }
//!
//! let host = MockHost::new();
//! host.expect(
//!     Expect::post("/v1/customers")
//!         .connection("stripe")
//!         .form([("email", "ada@example.test")])
//!         .reply(Reply::json(200, json!({"id": "cus_1"}))),
//! );
//! assert_eq!(create_customer("ada@example.test").unwrap(), json!({"id": "cus_1"}));
//! assert_eq!(host.requests().len(), 1);
//! ```
//!
//! The double answers as the plugin's code sees the host; it does not apply
//! the host's policy, credentials or limits (the host's own tests and
//! `courier run` against a local server cover those).

use std::cell::RefCell;
use std::fmt;
use std::rc::Rc;
use std::time::Duration;

use serde_json::Value;

use crate::http::{
    Body, Method, Pagination, Request, Response, RetryPolicy, SendError, SendReason,
};
use crate::log::Level;

/// A request as the plugin handed it to the host.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SentRequest {
    /// The method.
    pub method: Method,
    /// The URL as written: absolute, or relative to the connection's base URL.
    pub url: String,
    /// The query pairs, in order.
    pub query: Vec<(String, String)>,
    /// The headers, in order.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Body,
    /// The connection named.
    pub connection: Option<String>,
    /// The request's own timeout.
    pub timeout: Option<Duration>,
    /// Whether redirects are followed.
    pub follow_redirects: bool,
    /// The retry policy.
    pub retry: Option<RetryPolicy>,
    /// The idempotency key.
    pub idempotency_key: Option<String>,
    /// The pagination.
    pub pagination: Option<Pagination>,
    /// How long the host may answer it from its cache.
    pub cache_ttl: Option<Duration>,
}

impl SentRequest {
    /// The first header named `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The JSON body parsed, if the body is JSON.
    pub fn json(&self) -> Option<Value> {
        match &self.body {
            Body::Json(text) => serde_json::from_str(text).ok(),
            _ => None,
        }
    }
}

/// What a request looks like without sending it (for tests of code that
/// builds requests). A body that could not be built shows as
/// [`Body::None`]; [`Request::send`] would fail with `invalid-request`.
impl From<Request> for SentRequest {
    fn from(r: Request) -> Self {
        let ms = |ms: u32| Duration::from_millis(ms.into());
        Self {
            method: r.method,
            url: r.url,
            query: r.query,
            headers: r.headers,
            body: r.body,
            connection: r.connection,
            timeout: r.timeout_ms.map(ms),
            follow_redirects: r.follow_redirects,
            retry: r.retry,
            idempotency_key: r.idempotency_key,
            pagination: r.pagination,
            cache_ttl: r.cache_ttl_ms.map(ms),
        }
    }
}

/// One check an [`Expect`] makes, with how to describe it.
struct Check {
    what: String,
    test: Box<dyn Fn(&SentRequest) -> bool>,
}

/// A request the test expects, and the host's answer to it. Method and URL
/// must be equal; every further check ([`query`](Self::query),
/// [`header`](Self::header), [`json`](Self::json), …) must hold.
pub struct Expect {
    method: Method,
    url: String,
    checks: Vec<Check>,
    reply: Reply,
    times: usize,
}

impl Expect {
    /// A request with `method` to `url` (as the plugin writes it), answered
    /// `200` with no body unless [`reply`](Self::reply) says otherwise, once
    /// unless [`times`](Self::times) says otherwise.
    pub fn new(method: Method, url: impl Into<String>) -> Self {
        Self {
            method,
            url: url.into(),
            checks: Vec::new(),
            reply: Reply::status(200),
            times: 1,
        }
    }

    /// A `GET` to `url`.
    pub fn get(url: impl Into<String>) -> Self {
        Self::new(Method::Get, url)
    }

    /// A `POST` to `url` (other methods: [`Expect::new`]).
    pub fn post(url: impl Into<String>) -> Self {
        Self::new(Method::Post, url)
    }

    /// The request carries the query pair `name=value` (among others).
    pub fn query(self, name: &str, value: &str) -> Self {
        let pair = (name.to_owned(), value.to_owned());
        self.check(format!("query `{name}={value}`"), move |r| {
            r.query.contains(&pair)
        })
    }

    /// The request's query pairs are exactly these, in this order.
    pub fn query_exactly<K: Into<String>, V: Into<String>>(
        self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let pairs = collect_pairs(pairs);
        self.check(format!("query exactly {pairs:?}"), move |r| {
            r.query == pairs
        })
    }

    /// The request has the header `name` (any case) with this value.
    pub fn header(self, name: &str, value: &str) -> Self {
        let (name, value) = (name.to_owned(), value.to_owned());
        self.check(format!("header `{name}: {value}`"), move |r| {
            r.headers
                .iter()
                .any(|(n, v)| n.eq_ignore_ascii_case(&name) && *v == value)
        })
    }

    /// The request names this connection.
    pub fn connection(self, name: &str) -> Self {
        let name = name.to_owned();
        self.check(format!("connection `{name}`"), move |r| {
            r.connection.as_deref() == Some(name.as_str())
        })
    }

    /// The body is JSON equal to `value` (key order aside).
    pub fn json(self, value: Value) -> Self {
        self.check(format!("JSON body {value}"), move |r| {
            r.json().as_ref() == Some(&value)
        })
    }

    /// The body is a form of exactly these pairs, in this order.
    pub fn form<K: Into<String>, V: Into<String>>(
        self,
        pairs: impl IntoIterator<Item = (K, V)>,
    ) -> Self {
        let body = Body::Form(collect_pairs(pairs));
        self.body(body)
    }

    /// The body is exactly `body`.
    pub fn body(self, body: Body) -> Self {
        self.check(format!("body {body:?}"), move |r| r.body == body)
    }

    /// Any other check on the request, described by `what` in failures.
    pub fn matching(
        self,
        what: impl Into<String>,
        test: impl Fn(&SentRequest) -> bool + 'static,
    ) -> Self {
        self.check(what.into(), test)
    }

    /// How the host answers.
    pub fn reply(mut self, reply: Reply) -> Self {
        self.reply = reply;
        self
    }

    /// Expects `times` such requests (each answered the same).
    pub fn times(mut self, times: usize) -> Self {
        self.times = times;
        self
    }

    fn check(mut self, what: String, test: impl Fn(&SentRequest) -> bool + 'static) -> Self {
        self.checks.push(Check {
            what,
            test: Box::new(test),
        });
        self
    }

    /// Why `request` does not match, if it does not.
    fn mismatch(&self, request: &SentRequest) -> Option<String> {
        if request.method != self.method || request.url != self.url {
            return Some(format!("expected {} {}", self.method, self.url));
        }
        let failed: Vec<&str> = self
            .checks
            .iter()
            .filter(|check| !(check.test)(request))
            .map(|check| check.what.as_str())
            .collect();
        (!failed.is_empty()).then(|| format!("{self}: not {}", failed.join(", not ")))
    }
}

impl fmt::Display for Expect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.url)?;
        for check in &self.checks {
            write!(f, " with {}", check.what)?;
        }
        Ok(())
    }
}

fn collect_pairs<K: Into<String>, V: Into<String>>(
    pairs: impl IntoIterator<Item = (K, V)>,
) -> Vec<(String, String)> {
    pairs
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
}

/// The host's answer to an expected request: a response, or a
/// [`SendError`] as the host returns when it sends nothing.
#[derive(Debug, Clone)]
pub struct Reply(Result<Response, SendError>);

impl Reply {
    /// A response with `status` and no body.
    pub fn status(status: u16) -> Self {
        Self(Ok(Response::new(status, Vec::new(), Vec::new(), "")))
    }

    /// A JSON response (`content-type: application/json`).
    pub fn json(status: u16, body: Value) -> Self {
        Self::status(status)
            .header("content-type", "application/json")
            .body(body.to_string())
    }

    /// A text response (`content-type: text/plain; charset=utf-8`).
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("content-type", "text/plain; charset=utf-8")
            .body(body.into())
    }

    /// The host sends nothing and returns `reason`.
    pub fn error(reason: SendReason) -> Self {
        Self(Err(SendError::from(reason)))
    }

    /// Adds a response header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        if let Ok(response) = &mut self.0 {
            response.headers.push((name.to_owned(), value.to_owned()));
        }
        self
    }

    /// The response body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        if let Ok(response) = &mut self.0 {
            response.body = body.into();
        }
        self
    }

    /// The answer to `request`: the final URL is the request's URL.
    fn answer(&self, request: &SentRequest) -> Result<Response, SendError> {
        self.0.clone().map(|mut response| {
            if response.final_url.is_empty() {
                response.final_url = request.url.clone();
            }
            response
        })
    }
}

/// What the double holds for one test thread.
#[derive(Default)]
struct State {
    expected: Vec<Expect>,
    sent: Vec<SentRequest>,
    bound: Vec<String>,
    logs: Vec<(Level, String)>,
    keys: u32,
}

std::thread_local! {
    static INSTALLED: RefCell<Option<Rc<RefCell<State>>>> = const { RefCell::new(None) };
}

/// The host, stood in for on this thread while the value lives. See the
/// [module](self) documentation.
pub struct MockHost {
    state: Rc<RefCell<State>>,
}

impl MockHost {
    /// Stands in for the host on this thread. Panics if another `MockHost`
    /// already does (each test runs on its own thread).
    pub fn new() -> Self {
        let state = Rc::new(RefCell::new(State::default()));
        INSTALLED.with(|installed| {
            let mut installed = installed.borrow_mut();
            assert!(
                installed.is_none(),
                "a courier_sdk::testing::MockHost is already installed on this thread"
            );
            *installed = Some(Rc::clone(&state));
        });
        Self { state }
    }

    /// Reports `connection` as bound to the step ([`bound_connections`](crate::bound_connections)).
    pub fn bind(&self, connection: &str) -> &Self {
        self.state.borrow_mut().bound.push(connection.to_owned());
        self
    }

    /// Expects a request; requests are matched against the expectations in
    /// the order given, skipping those used up.
    pub fn expect(&self, expectation: Expect) -> &Self {
        self.state.borrow_mut().expected.push(expectation);
        self
    }

    /// Every request sent so far, in order.
    pub fn requests(&self) -> Vec<SentRequest> {
        self.state.borrow().sent.clone()
    }

    /// Every line logged so far.
    pub fn logs(&self) -> Vec<(Level, String)> {
        self.state.borrow().logs.clone()
    }

    /// Panics if an expectation is not used up, listing them.
    pub fn verify(&self) {
        let unused = self.unused();
        assert!(
            unused.is_empty(),
            "expected requests that were never sent:\n  {}",
            unused.join("\n  ")
        );
    }

    fn unused(&self) -> Vec<String> {
        self.state
            .borrow()
            .expected
            .iter()
            .filter(|e| e.times > 0)
            .map(|e| format!("{e} ({} more time(s))", e.times))
            .collect()
    }
}

impl Default for MockHost {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for MockHost {
    fn drop(&mut self) {
        INSTALLED.with(|installed| installed.borrow_mut().take());
        if !std::thread::panicking() {
            self.verify();
        }
    }
}

/// The imports, as [`host`](crate::host) calls them natively.
pub(crate) mod double {
    use super::*;

    fn with_state<T>(use_it: impl FnOnce(&mut State) -> T) -> T {
        INSTALLED.with(|installed| {
            let installed = installed.borrow();
            let state = installed.as_ref().expect(
                "a plugin call sent a request natively without a host: create a \
                 courier_sdk::testing::MockHost in the test first",
            );
            use_it(&mut state.borrow_mut())
        })
    }

    pub(crate) fn send(request: Request) -> Result<Response, SendError> {
        let request = SentRequest::from(request);
        with_state(|state| {
            let found = state
                .expected
                .iter_mut()
                .find(|e| e.times > 0 && e.mismatch(&request).is_none());
            let Some(expectation) = found else {
                let why: Vec<String> = state
                    .expected
                    .iter()
                    .filter(|e| e.times > 0)
                    .filter_map(|e| e.mismatch(&request))
                    .collect();
                panic!(
                    "unexpected request: {} {} (query {:?}, headers {:?}, body {:?}, connection {:?})\n{}",
                    request.method,
                    request.url,
                    request.query,
                    request.headers,
                    request.body,
                    request.connection,
                    if why.is_empty() {
                        "no expectation is left".to_owned()
                    } else {
                        format!("expectations left:\n  {}", why.join("\n  "))
                    }
                );
            };
            expectation.times -= 1;
            let answer = expectation.reply.answer(&request);
            state.sent.push(request);
            answer
        })
    }

    pub(crate) fn send_all(requests: Vec<Request>) -> Vec<Result<Response, SendError>> {
        requests.into_iter().map(send).collect()
    }

    pub(crate) fn bound_connections() -> Vec<String> {
        with_state(|state| state.bound.clone())
    }

    pub(crate) fn new_idempotency_key() -> String {
        with_state(|state| {
            state.keys += 1;
            format!("test-idempotency-key-{}", state.keys)
        })
    }

    pub(crate) fn log(level: Level, message: &str) {
        let logged = INSTALLED.with(|installed| {
            installed
                .borrow()
                .as_ref()
                .map(|state| state.borrow_mut().logs.push((level, message.to_owned())))
        });
        if logged.is_none() {
            eprintln!("[{level:?}] {message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::{StepError, bound_connections, new_idempotency_key, send_all};

    fn panic_message(run: impl FnOnce() + std::panic::UnwindSafe) -> String {
        let error = std::panic::catch_unwind(run).unwrap_err();
        error
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| error.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap()
    }

    #[test]
    fn an_expected_request_is_answered_and_recorded() {
        let host = MockHost::new();
        host.bind("crm").expect(
            Expect::get("/contacts")
                .query("limit", "2")
                .header("accept", "application/json")
                .connection("crm")
                .reply(Reply::json(200, json!([{"id": 1}])).header("x-next", "abc")),
        );
        assert_eq!(bound_connections(), ["crm"]);
        let response = Request::get("/contacts")
            .query("limit", "2")
            .header("Accept", "application/json")
            .connection("crm")
            .send()
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(response.header("X-Next"), Some("abc"));
        assert_eq!(response.json::<Value>().unwrap(), json!([{"id": 1}]));
        assert_eq!(response.final_url(), "/contacts");
        let sent = host.requests();
        assert_eq!(sent[0].query, [("limit".to_owned(), "2".to_owned())]);
        assert_eq!(sent[0].connection.as_deref(), Some("crm"));
    }

    #[test]
    fn an_unexpected_request_panics_naming_what_did_not_match() {
        let message = panic_message(|| {
            let host = MockHost::new();
            host.expect(Expect::post("/v1/customers").json(json!({"email": "a"})));
            let _ = Request::post("/v1/customers")
                .json(&json!({"email": "b"}))
                .send();
        });
        assert!(
            message.contains("unexpected request: POST /v1/customers"),
            "{message}"
        );
        assert!(
            message.contains(r#"POST /v1/customers with JSON body {"email":"a"}: not JSON body"#),
            "{message}"
        );
        let message = panic_message(|| {
            let _host = MockHost::new();
            let _ = Request::get("/x").send();
        });
        assert!(message.contains("no expectation is left"), "{message}");
    }

    #[test]
    fn an_unused_expectation_fails_when_the_double_is_dropped() {
        let message = panic_message(|| {
            let host = MockHost::new();
            host.expect(Expect::new(Method::Delete, "/items/1").times(2));
            Request::delete("/items/1").send().unwrap();
        });
        assert_eq!(
            message,
            "expected requests that were never sent:\n  DELETE /items/1 (1 more time(s))"
        );
    }

    #[test]
    fn errors_batches_logs_and_keys() {
        let host = MockHost::new();
        host.expect(Expect::get("/a").reply(Reply::error(SendReason::Denied("no".into()))))
            .expect(Expect::get("/b").reply(Reply::text(503, "busy")))
            .expect(Expect::post("/c").form([("k", "v")]));
        let results = send_all(vec![
            Request::get("/a"),
            Request::get("/b"),
            Request::post("/c").form([("k", "v")]),
        ]);
        assert_eq!(
            results[0].as_ref().unwrap_err().reason(),
            &SendReason::Denied("no".into())
        );
        let busy = results[1].clone().unwrap();
        assert_eq!(
            (busy.status(), busy.text().unwrap().as_str()),
            (503, "busy")
        );
        assert!(matches!(
            busy.error_for_status(),
            Err(StepError::Http { status: 503, .. })
        ));
        assert_eq!(results[2].as_ref().unwrap().status(), 200);
        crate::info!("done {}", 3);
        assert_eq!(host.logs(), [(Level::Info, "done 3".to_owned())]);
        assert_eq!(new_idempotency_key(), "test-idempotency-key-1");
        assert_eq!(new_idempotency_key(), "test-idempotency-key-2");
    }
}
