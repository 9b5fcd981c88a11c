//! Every status the served OpenAPI document promises is one a request gets
//! (issue 15 item 7): a table of scenarios, each a real request to a running
//! `courier serve`, and the set of (method, path template, status) they got
//! must equal the set `/openapi.json` lists. A documented status nothing
//! produces fails, and so does a status a scenario gets that the document
//! does not list (each scenario also names the status it expects, so a
//! mismatch says which request went wrong).

use std::collections::BTreeSet;

use super::plugins::relay;
use super::*;

/// An answer as the document speaks of it: method, path template, status.
type Triple = (String, String, u16);

/// A scenario's body.
enum Payload {
    /// No body.
    Empty,
    /// A JSON body, `Content-Type: application/json`.
    Json(Value),
    /// These bytes with this content type.
    Raw(&'static str, Vec<u8>),
}

/// The document's operations and what the scenarios got.
struct Coverage<'a> {
    s: &'a Service,
    /// The document's path templates.
    templates: Vec<String>,
    observed: BTreeSet<Triple>,
    /// Scenarios that got another status than they expected.
    unexpected: Vec<String>,
}

impl<'a> Coverage<'a> {
    fn new(s: &'a Service, doc: &Value) -> Self {
        Self {
            s,
            templates: doc["paths"].as_object().unwrap().keys().cloned().collect(),
            observed: BTreeSet::new(),
            unexpected: vec![],
        }
    }

    /// The document's template that `path` (query left out) falls under:
    /// `{name}` takes any one segment, literal segments win.
    fn template(&self, path: &str) -> String {
        let path = path.split('?').next().unwrap();
        let segments: Vec<&str> = path.split('/').collect();
        self.templates
            .iter()
            .filter_map(|t| {
                let parts: Vec<&str> = t.split('/').collect();
                let fits = parts.len() == segments.len()
                    && parts
                        .iter()
                        .zip(&segments)
                        .all(|(p, s)| p == s || p.starts_with('{'));
                let literal = parts.iter().filter(|p| !p.starts_with('{')).count();
                fits.then_some((literal, t))
            })
            .max()
            .unwrap_or_else(|| panic!("{path} is under no documented path"))
            .1
            .clone()
    }

    /// Sends one request and notes what it got.
    async fn expect(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        payload: Payload,
        expected: u16,
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method.clone())
            .uri(format!("{}{path}", self.s.base));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        let body = match payload {
            Payload::Empty => Bytes::new(),
            Payload::Json(v) => {
                request = request.header("content-type", "application/json");
                Bytes::from(v.to_string())
            }
            Payload::Raw(content_type, bytes) => {
                request = request.header("content-type", content_type);
                Bytes::from(bytes)
            }
        };
        let answer = self.s.raw(request.body(Full::new(body)).unwrap()).await;
        let status = answer.status.as_u16();
        if status != expected {
            self.unexpected.push(format!(
                "{method} {path}: {status}, expected {expected}: {}",
                answer.text
            ));
        }
        if status >= 400 {
            answer.assert_problem(answer.status);
        }
        self.observed
            .insert((method.to_string(), self.template(path), status));
        answer
    }

    /// The usual problem scenarios of an operation on `path` with `token`:
    /// no token (401), and each of `statuses` from 400, 413, 415, 422
    /// (a JSON body of this operation broken in that way).
    async fn problems(&mut self, method: Method, path: &str, token: &str, statuses: &[u16]) {
        self.expect(method.clone(), path, None, Payload::Empty, 401)
            .await;
        for &status in statuses {
            let payload = match status {
                400 => Payload::Raw("application/json", b"{,".to_vec()),
                413 => Payload::Json(json!({ "id": "x".repeat(8192) })),
                415 => Payload::Raw("text/plain", b"{}".to_vec()),
                422 => Payload::Json(json!({"colour": "red"})),
                _ => unreachable!("{status}"),
            };
            self.expect(method.clone(), path, Some(token), payload, status)
                .await;
        }
    }
}

/// Documented (method, template, status) triples of `doc`.
fn documented(doc: &Value) -> BTreeSet<Triple> {
    let mut all = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let Some(responses) = op["responses"].as_object() else {
                continue;
            };
            for status in responses.keys() {
                all.insert((method.to_uppercase(), path.clone(), status.parse().unwrap()));
            }
        }
    }
    all
}

#[tokio::test]
async fn every_documented_status_is_reachable_and_no_other() {
    use Method as M;
    use Payload::{Empty, Json as J, Raw};
    let (upstream, _) = counting_upstream().await;
    let max_plugin = 1 << 20;
    let s = Service::start(&format!(
        "max_body_bytes = 4096\nmax_plugin_bytes = {max_plugin}\nshutdown_drain_secs = 30\n"
    ));
    let doc = s.send(Method::GET, "/openapi.json", None, None, &[]).await;
    let mut c = Coverage::new(&s, &doc.body);
    let a = Some(ADMIN);

    c.expect(M::GET, "/healthz", None, Empty, 200).await;
    c.expect(M::GET, "/openapi.json", None, Empty, 200).await;
    c.expect(M::GET, "/readyz", None, Empty, 200).await;

    // Tenants and their tokens (admin only).
    let tenants = "/v1/tenants";
    c.expect(M::POST, tenants, a, J(json!({"id": "acme"})), 201)
        .await;
    c.expect(M::POST, tenants, a, J(json!({"id": "acme"})), 409)
        .await;
    c.expect(M::POST, tenants, a, J(json!({"id": "Bad Id"})), 422)
        .await;
    c.problems(M::POST, tenants, ADMIN, &[400, 413, 415, 422])
        .await;
    let tokens = "/v1/tenants/acme/tokens";
    let t = c.expect(M::POST, tokens, a, Empty, 201).await;
    let t = t.body["token"].as_str().unwrap().to_owned();
    let tenant = Some(t.as_str());
    c.expect(M::POST, tenants, tenant, J(json!({"id": "evil"})), 403)
        .await;
    c.expect(M::GET, tenants, a, Empty, 200).await;
    c.expect(M::GET, tenants, tenant, Empty, 403).await;
    c.problems(M::GET, tenants, ADMIN, &[]).await;
    c.expect(M::POST, tokens, tenant, Empty, 403).await;
    c.expect(M::POST, "/v1/tenants/ghost/tokens", a, Empty, 404)
        .await;
    c.expect(M::POST, "/v1/tenants/%FF/tokens", a, Empty, 400)
        .await;
    c.problems(M::POST, tokens, ADMIN, &[]).await;
    let second = c.expect(M::POST, tokens, a, Empty, 201).await;
    let revoke = format!("{tokens}/{}", second.body["id"].as_str().unwrap());
    c.expect(M::DELETE, &revoke, tenant, Empty, 403).await;
    c.expect(M::DELETE, &revoke, a, Empty, 204).await;
    c.expect(M::DELETE, &revoke, a, Empty, 404).await;
    c.expect(M::DELETE, &format!("{tokens}/%FF"), a, Empty, 400)
        .await;
    c.problems(M::DELETE, &revoke, ADMIN, &[]).await;

    c.expect(M::GET, "/metrics", a, Empty, 200).await;
    c.expect(M::GET, "/metrics", tenant, Empty, 403).await;
    c.problems(M::GET, "/metrics", ADMIN, &[]).await;

    // Plugin versions (admin only).
    let wasm = |bytes| Raw("application/wasm", bytes);
    let v1 = c
        .expect(M::POST, "/v1/plugins", a, wasm(relay(1)), 201)
        .await;
    c.expect(M::POST, "/v1/plugins", a, wasm(relay(1)), 200)
        .await;
    let v2 = c
        .expect(M::POST, "/v1/plugins", a, wasm(relay(2)), 201)
        .await;
    c.expect(M::POST, "/v1/plugins", tenant, wasm(relay(1)), 403)
        .await;
    c.expect(M::POST, "/v1/plugins", a, Raw("text/plain", relay(1)), 415)
        .await;
    c.expect(M::POST, "/v1/plugins", a, wasm(b"\0asm nope".to_vec()), 422)
        .await;
    c.expect(
        M::POST,
        "/v1/plugins",
        a,
        wasm(vec![0; max_plugin + 1]),
        413,
    )
    .await;
    c.problems(M::POST, "/v1/plugins", ADMIN, &[]).await;
    c.expect(M::GET, "/v1/plugins", a, Empty, 200).await;
    c.expect(M::GET, "/v1/plugins", tenant, Empty, 403).await;
    c.problems(M::GET, "/v1/plugins", ADMIN, &[]).await;
    let digest = |a: &Answer| a.body["digest"].as_str().unwrap().to_owned();
    let (v1, v2) = (digest(&v1), digest(&v2));
    let unknown = "0".repeat(64);
    for (method, tail, ok) in [
        (M::GET, "", &v1),
        (M::GET, "/diff", &v2),
        (M::POST, "/approve", &v2),
    ] {
        let path = |d: &str| format!("/v1/plugins/{d}{tail}");
        c.expect(method.clone(), &path(ok), a, Empty, 200).await;
        c.expect(method.clone(), &path(ok), tenant, Empty, 403)
            .await;
        c.expect(method.clone(), &path(&unknown), a, Empty, 404)
            .await;
        c.expect(method.clone(), &path("%FF"), a, Empty, 400).await;
        c.problems(method, &path(ok), ADMIN, &[]).await;
    }

    // A tenant's plugins.
    let plugins = "/v1/tenants/acme/plugins";
    c.expect(M::GET, plugins, tenant, Empty, 200).await;
    c.expect(M::GET, "/v1/tenants/%FF/plugins", tenant, Empty, 400)
        .await;
    c.expect(M::GET, "/v1/tenants/ghost/plugins", tenant, Empty, 404)
        .await;
    c.problems(M::GET, plugins, &t, &[]).await;
    let http_request = format!("{plugins}/http-request");
    c.expect(M::GET, &http_request, tenant, Empty, 200).await;
    c.expect(M::GET, &format!("{plugins}/absent"), tenant, Empty, 404)
        .await;
    c.expect(M::GET, &format!("{plugins}/%FF"), tenant, Empty, 400)
        .await;
    c.problems(M::GET, &http_request, &t, &[]).await;
    let access = || J(json!({"enabled": true}));
    let relay_access = format!("{plugins}/relay");
    c.expect(M::PUT, &relay_access, a, access(), 200).await;
    c.expect(M::PUT, &relay_access, tenant, access(), 403).await;
    c.expect(M::PUT, &format!("{plugins}/absent"), a, access(), 404)
        .await;
    c.expect(M::PUT, &format!("{plugins}/%FF"), a, access(), 400)
        .await;
    c.problems(M::PUT, &relay_access, ADMIN, &[400, 413, 415, 422])
        .await;

    // Connections.
    let conns = "/v1/tenants/acme/connections";
    let crm = format!("{conns}/crm");
    let conn = |plugin: &str| {
        J(json!({"plugin": plugin, "connection": {
            "connection": "default", "base_url": upstream.url(""), "auth": "bearer",
            "secrets": {"token": CANARY}}}))
    };
    c.expect(M::PUT, &crm, tenant, conn("http-request"), 201)
        .await;
    c.expect(M::PUT, &crm, tenant, conn("http-request"), 200)
        .await;
    c.expect(M::PUT, &crm, tenant, conn("absent"), 404).await;
    c.expect(
        M::PUT,
        &format!("{conns}/%FF"),
        tenant,
        conn("http-request"),
        400,
    )
    .await;
    c.problems(M::PUT, &crm, &t, &[400, 413, 415, 422]).await;
    c.expect(M::GET, conns, tenant, Empty, 200).await;
    c.expect(M::GET, "/v1/tenants/%FF/connections", tenant, Empty, 400)
        .await;
    c.expect(M::GET, "/v1/tenants/ghost/connections", a, Empty, 404)
        .await;
    c.problems(M::GET, conns, &t, &[]).await;
    c.expect(M::GET, &crm, tenant, Empty, 200).await;
    c.expect(M::GET, &format!("{conns}/nope"), tenant, Empty, 404)
        .await;
    c.expect(M::GET, &format!("{conns}/%FF"), tenant, Empty, 400)
        .await;
    c.problems(M::GET, &crm, &t, &[]).await;
    let test = format!("{crm}/test");
    let call = || J(json!({"call": "request", "input": {"url": "/t"}}));
    c.expect(M::POST, &test, tenant, call(), 200).await;
    c.expect(M::POST, &format!("{conns}/nope/test"), tenant, call(), 404)
        .await;
    c.expect(M::POST, &format!("{conns}/%FF/test"), tenant, call(), 400)
        .await;
    c.problems(M::POST, &test, &t, &[400, 413, 415, 422]).await;

    // Steps and their history.
    let steps = "/v1/tenants/acme/steps";
    let step = |plugin: &str| {
        J(json!({"plugin": plugin, "call": "request",
                 "input": {"url": "/s"}, "connections": ["crm"]}))
    };
    let ran = c
        .expect(M::POST, steps, tenant, step("http-request"), 200)
        .await;
    c.expect(M::POST, steps, tenant, step("absent"), 404).await;
    c.problems(M::POST, steps, &t, &[400, 413, 415, 422]).await;
    c.expect(M::GET, steps, tenant, Empty, 200).await;
    c.expect(M::GET, &format!("{steps}?limit=0"), tenant, Empty, 400)
        .await;
    c.expect(M::GET, "/v1/tenants/ghost/steps", tenant, Empty, 404)
        .await;
    c.problems(M::GET, steps, &t, &[]).await;
    let one = format!(
        "{steps}/{}",
        ran.headers["courier-step-id"].to_str().unwrap()
    );
    c.expect(M::GET, &one, tenant, Empty, 200).await;
    c.expect(M::GET, &format!("{steps}/nope"), tenant, Empty, 404)
        .await;
    c.expect(M::GET, &format!("{steps}/%FF"), tenant, Empty, 400)
        .await;
    c.problems(M::GET, &one, &t, &[]).await;

    c.expect(M::DELETE, &crm, tenant, Empty, 204).await;
    c.expect(M::DELETE, &crm, tenant, Empty, 404).await;
    c.expect(M::DELETE, &format!("{conns}/%FF"), tenant, Empty, 400)
        .await;
    c.problems(M::DELETE, &crm, &t, &[]).await;

    // After SIGTERM, while the service drains, it is not ready.
    s.terminate();
    let drained = async {
        loop {
            let r = s.send(Method::GET, "/readyz", None, None, &[]).await;
            if r.status == StatusCode::SERVICE_UNAVAILABLE {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(10), drained)
        .await
        .expect("/readyz answers 503 after SIGTERM");
    c.expect(M::GET, "/readyz", None, Empty, 503).await;

    assert!(c.unexpected.is_empty(), "{:#?}", c.unexpected);
    let documented = documented(&doc.body);
    let never: Vec<_> = documented.difference(&c.observed).collect();
    let undocumented: Vec<_> = c.observed.difference(&documented).collect();
    assert!(
        never.is_empty() && undocumented.is_empty(),
        "documented but reached by no scenario: {never:#?}\nreached but not documented: {undocumented:#?}"
    );
}
