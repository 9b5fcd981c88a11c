//! `courier serve` end to end: the real binary on 127.0.0.1 with a real
//! SQLite data directory, real plugins and real upstreams. Every endpoint,
//! cross-tenant access, secrets write-only, idempotency against a counting
//! upstream, history, bad input, graceful shutdown.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use bytes::Bytes;
use courier_tests::{Reply, Stall, TestServer, plugin, scratch_dir, stalling_server, target_dir};
use http::{HeaderMap, Method, StatusCode};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};

use crate::auth::{CANARY, encodings};

mod coverage;
mod plugins;

const ADMIN: &str = "test-admin-token-0123456789";

/// A running `courier serve`, killed when dropped.
struct Service {
    child: Child,
    base: String,
    dir: PathBuf,
    client: hyper_util::client::legacy::Client<
        hyper_util::client::legacy::connect::HttpConnector,
        Full<Bytes>,
    >,
}

/// An answer: status, headers, body as JSON (`Null` if empty).
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Value,
    text: String,
}

impl Answer {
    /// Fails unless the answer is an RFC 9457 problem with this status.
    fn assert_problem(&self, status: StatusCode) {
        assert_eq!(self.status, status, "{}", self.text);
        assert_eq!(
            self.headers["content-type"], "application/problem+json",
            "{}",
            self.text
        );
        assert_eq!(self.body["status"], status.as_u16());
        assert!(self.body["title"].is_string() && self.body["detail"].is_string());
    }
}

/// `courier` with the tests' compiled-component cache.
fn courier() -> Command {
    let mut cmd = Command::new(target_dir().join("debug/courier"));
    cmd.env("COURIER_CACHE_DIR", target_dir().join("courier-test-cache"))
        .env_remove("COURIER_ADMIN_TOKEN");
    cmd
}

/// Configuration the tests share: the built plugins, loopback upstreams
/// allowed by the operator, plus `extra` TOML.
fn config(dir: &std::path::Path, extra: &str) -> PathBuf {
    let plugins = plugin("http-request");
    let text = format!(
        "plugin_dir = {:?}\nallow_hosts = [\"http://127.0.0.1:*\"]\nallow_networks = [\"127.0.0.1/32\"]\n{extra}",
        plugins.parent().unwrap()
    );
    let path = dir.join("courier.toml");
    std::fs::write(&path, text).unwrap();
    path
}

impl Service {
    /// Starts the service with the admin token from the environment.
    fn start(extra: &str) -> Self {
        Self::start_in(scratch_dir("service"), extra, Some(ADMIN))
    }

    /// Starts the service on data directory `dir` (its config there too).
    fn start_in(dir: PathBuf, extra: &str, admin: Option<&str>) -> Self {
        let config = config(&dir, extra);
        let mut cmd = courier();
        cmd.arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(dir.join("stderr.log")).unwrap());
        if let Some(token) = admin {
            cmd.env("COURIER_ADMIN_TOKEN", token);
        }
        let mut child = cmd.spawn().expect("courier serve starts");
        let base = courier_tests::serve_address(&mut child).unwrap_or_else(|| {
            panic!(
                "no address; stderr: {}",
                std::fs::read_to_string(dir.join("stderr.log")).unwrap_or_default()
            )
        });
        assert!(base.starts_with("http://127.0.0.1:"), "{base}");
        Self {
            child,
            base,
            dir,
            client: hyper_util::client::legacy::Client::builder(
                hyper_util::rt::TokioExecutor::new(),
            )
            .build_http(),
        }
    }

    /// The service's log so far.
    fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap()
    }

    /// Sends a request: JSON body if any, bearer token if any, extra headers.
    async fn send(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        headers: &[(&str, &str)],
    ) -> Answer {
        let mut request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base));
        if let Some(t) = token {
            request = request.header("authorization", format!("Bearer {t}"));
        }
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        for (k, v) in headers {
            request = request.header(*k, *v);
        }
        let bytes = body.map_or_else(Bytes::new, |b| Bytes::from(b.to_string()));
        self.raw(request.body(Full::new(bytes)).unwrap()).await
    }

    async fn raw(&self, request: http::Request<Full<Bytes>>) -> Answer {
        let response = self
            .client
            .request(request)
            .await
            .expect("the service answers");
        let (parts, body) = response.into_parts();
        let bytes = body.collect().await.unwrap().to_bytes();
        let text = String::from_utf8(bytes.to_vec()).unwrap();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body: serde_json::from_str(&text).unwrap_or(Value::Null),
            text,
        }
    }

    async fn get(&self, path: &str, token: &str) -> Answer {
        self.send(Method::GET, path, Some(token), None, &[]).await
    }

    async fn post(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send(Method::POST, path, Some(token), Some(body), &[])
            .await
    }

    async fn put(&self, path: &str, token: &str, body: &Value) -> Answer {
        self.send(Method::PUT, path, Some(token), Some(body), &[])
            .await
    }

    async fn delete(&self, path: &str, token: &str) -> Answer {
        self.send(Method::DELETE, path, Some(token), None, &[])
            .await
    }

    /// Creates a tenant and returns a token of it.
    async fn tenant(&self, id: &str) -> String {
        let a = self.post("/v1/tenants", ADMIN, &json!({"id": id})).await;
        assert_eq!(a.status, StatusCode::CREATED, "{}", a.text);
        let t = self
            .send(
                Method::POST,
                &format!("/v1/tenants/{id}/tokens"),
                Some(ADMIN),
                None,
                &[],
            )
            .await;
        assert_eq!(t.status, StatusCode::CREATED, "{}", t.text);
        assert_eq!(t.body["tenant"], id);
        t.body["token"].as_str().unwrap().to_owned()
    }

    /// Stores a bearer connection `id` of `http-request` to `base_url`.
    async fn connection(&self, tenant: &str, token: &str, id: &str, base_url: &str) -> Answer {
        self.put(
            &format!("/v1/tenants/{tenant}/connections/{id}"),
            token,
            &json!({"plugin": "http-request", "connection": {
                "connection": "default", "base_url": base_url, "auth": "bearer",
                "secrets": {"token": CANARY}}}),
        )
        .await
    }

    /// Runs `http-request` `request` for `url` with connection `conn`.
    async fn step(&self, tenant: &str, token: &str, conn: &str, url: &str) -> Answer {
        self.post(
            &format!("/v1/tenants/{tenant}/steps"),
            token,
            &json!({"plugin": "http-request", "call": "request",
                    "input": {"url": url}, "connections": [conn]}),
        )
        .await
    }

    /// Sends SIGTERM to the service process.
    fn terminate(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Fails if any encoding of the canary appears in `text`.
fn assert_no_canary(text: &str) {
    for form in encodings(CANARY) {
        assert!(
            !text.contains(&form),
            "`{form}` (a form of the canary) leaked: {text}"
        );
    }
}

/// An upstream that counts the requests it gets.
async fn counting_upstream() -> (TestServer, Arc<AtomicUsize>) {
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let server = TestServer::start(move |r| {
        let n = seen.fetch_add(1, Ordering::SeqCst) + 1;
        let status = if r.uri.starts_with("/fail") { 503 } else { 200 };
        Reply::json(status, json!({"n": n, "path": r.uri}))
    })
    .await;
    (server, count)
}

#[tokio::test]
async fn serve_prints_its_address_and_answers_health() {
    let s = Service::start("");
    let health = s.send(Method::GET, "/healthz", None, None, &[]).await;
    assert_eq!(health.status, StatusCode::OK);
    assert_eq!(health.body["status"], "ok");
    let ready = s.send(Method::GET, "/readyz", None, None, &[]).await;
    assert_eq!(ready.status, StatusCode::OK);
    let plugins = s.get("/v1/tenants", ADMIN).await;
    assert_eq!(plugins.status, StatusCode::OK);
    // Structured logs: every line of the log is a JSON object.
    let logs = s.logs();
    assert!(logs.lines().count() > 1);
    for line in logs.lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("{e}: {line}"));
    }
}

#[tokio::test]
async fn config_unknown_key_is_an_error_naming_it() {
    let dir = scratch_dir("service-config");
    let config = config(&dir, "listen_address = \"127.0.0.1:0\"\n");
    let out = courier()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("unknown field `listen_address`"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());

    std::fs::write(&config, "[history]\nmax_rows = 3\n").unwrap();
    let out = courier()
        .arg("serve")
        .arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("`max_rows`"),
        "{stderr}"
    );
}

#[tokio::test]
async fn first_run_admin_token_is_an_owner_only_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch_dir("service-first-run");
    let token_file = dir.join("data/admin.token");
    let first = Service::start_in(dir.clone(), "", None);
    let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let token = std::fs::read_to_string(&token_file).unwrap();
    assert!(token.len() >= 32);
    assert_eq!(
        first.get("/v1/tenants", &token).await.status,
        StatusCode::OK
    );
    assert!(!first.logs().contains(&token), "the token is logged");
    drop(first);
    // A second start reuses it; the environment overrides it.
    let second = Service::start_in(dir.clone(), "", None);
    assert_eq!(
        second.get("/v1/tenants", &token).await.status,
        StatusCode::OK
    );
    drop(second);
    let third = Service::start_in(dir, "", Some(ADMIN));
    third
        .get("/v1/tenants", &token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(third.get("/v1/tenants", ADMIN).await.status, StatusCode::OK);
}

#[tokio::test]
async fn missing_or_wrong_tokens_are_refused() {
    let s = Service::start("");
    let token = s.tenant("acme").await;
    let path = "/v1/tenants/acme/connections";
    let none = s.send(Method::GET, path, None, None, &[]).await;
    none.assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(none.headers["www-authenticate"], "Bearer");
    s.send(
        Method::GET,
        path,
        None,
        None,
        &[("authorization", &format!("Basic {token}"))],
    )
    .await
    .assert_problem(StatusCode::UNAUTHORIZED);
    // One character changed in the secret part, or in the id part.
    let mut wrong = token.clone().into_bytes();
    let last = wrong.len() - 1;
    wrong[last] = if wrong[last] == b'0' { b'1' } else { b'0' };
    let wrong = String::from_utf8(wrong).unwrap();
    s.get(path, &wrong)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    let other_id = format!("ctk_0000000000000000{}", &token[20..]);
    s.get(path, &other_id)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    s.get(path, "not-the-admin-token-at-all")
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    assert_eq!(s.get(path, &token).await.status, StatusCode::OK);
    // A tenant token is not an admin token.
    s.get("/v1/tenants", &token)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    s.post("/v1/tenants", &token, &json!({"id": "evil"}))
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    s.send(
        Method::POST,
        "/v1/tenants/acme/tokens",
        Some(&token),
        None,
        &[],
    )
    .await
    .assert_problem(StatusCode::FORBIDDEN);
    // A revoked token stops working.
    let id = &token[4..20];
    assert_eq!(
        s.delete(&format!("/v1/tenants/acme/tokens/{id}"), ADMIN)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.get(path, &token)
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    // Tokens are stored hashed: the database holds no token.
    let db = std::fs::read(s.dir.join("data/service.db")).unwrap();
    assert!(!db.windows(token.len()).any(|w| w == token.as_bytes()));
}

#[tokio::test]
async fn another_tenants_things_are_404_on_every_endpoint() {
    let (upstream, _) = counting_upstream().await;
    let s = Service::start("");
    let a = s.tenant("alpha").await;
    let b = s.tenant("beta").await;
    assert_eq!(
        s.connection("beta", &b, "crm", &upstream.url(""))
            .await
            .status,
        StatusCode::CREATED
    );
    let step = s.step("beta", &b, "crm", "/x").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.text);
    let step_id = step.headers["courier-step-id"].to_str().unwrap().to_owned();

    let conn = json!({"plugin": "http-request", "connection": {
        "connection": "default", "base_url": upstream.url(""), "auth": "bearer",
        "secrets": {"token": "replaced-by-alpha"}}});
    let step_body = json!({"plugin": "http-request", "call": "request", "input": {"url": "/x"}, "connections": ["crm"]});
    let beta = "/v1/tenants/beta";
    let attempts: Vec<(Method, String, Option<Value>)> = vec![
        (Method::GET, format!("{beta}/plugins"), None),
        (Method::GET, format!("{beta}/plugins/http-request"), None),
        (Method::GET, format!("{beta}/connections"), None),
        (Method::GET, format!("{beta}/connections/crm"), None),
        (Method::PUT, format!("{beta}/connections/crm"), Some(conn)),
        (Method::DELETE, format!("{beta}/connections/crm"), None),
        (
            Method::POST,
            format!("{beta}/connections/crm/test"),
            Some(json!({"call": "request", "input": {"url": "/t"}})),
        ),
        (
            Method::POST,
            format!("{beta}/steps"),
            Some(step_body.clone()),
        ),
        (Method::GET, format!("{beta}/steps"), None),
        (Method::GET, format!("{beta}/steps/{step_id}"), None),
    ];
    for (method, path, body) in &attempts {
        let answer = s
            .send(method.clone(), path, Some(&a), body.as_ref(), &[])
            .await;
        answer.assert_problem(StatusCode::NOT_FOUND);
        assert!(!answer.text.contains("crm\","), "{}", answer.text);
    }
    // Alpha's own paths do not reach beta's things either.
    s.get(&format!("/v1/tenants/alpha/steps/{step_id}"), &a)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    s.get("/v1/tenants/alpha/connections/crm", &a)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    let borrowed = s.post("/v1/tenants/alpha/steps", &a, &step_body).await;
    borrowed.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(
        s.get("/v1/tenants/alpha/steps", &a).await.body["steps"],
        json!([])
    );
    // An unknown tenant looks the same to the admin.
    s.get("/v1/tenants/gamma/steps", ADMIN)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    // Beta's things are untouched.
    let listed = s.get("/v1/tenants/beta/connections/crm", &b).await;
    assert_eq!(listed.status, StatusCode::OK);
    assert_eq!(
        listed.body["updated_at"],
        s.get("/v1/tenants/beta/connections", &b).await.body["connections"][0]["updated_at"]
    );
    let history = s.get("/v1/tenants/beta/steps", &b).await;
    assert_eq!(history.body["steps"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn connections_are_write_only_and_secrets_never_leave() {
    let echo = TestServer::echo().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    let created = s.connection("acme", &t, "crm", &echo.url("/v1")).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.body["secrets"], json!(["token"]));
    assert_eq!(created.body["auth"], "bearer");
    let replaced = s.connection("acme", &t, "crm", &echo.url("/v2")).await;
    assert_eq!(replaced.status, StatusCode::OK);
    assert_eq!(replaced.body["base_url"], echo.url("/v2"));
    let listed = s.get("/v1/tenants/acme/connections", &t).await;
    assert_eq!(listed.body["connections"].as_array().unwrap().len(), 1);
    let one = s.get("/v1/tenants/acme/connections/crm", &t).await;

    // The upstream gets the secret; the step result, its history and the
    // logs never show it.
    let step = s.step("acme", &t, "crm", "/echo").await;
    assert_eq!(step.status, StatusCode::OK, "{}", step.text);
    assert_eq!(step.body["outcome"], "success", "{}", step.text);
    assert_eq!(
        echo.received()[0].header("authorization"),
        Some(format!("Bearer {CANARY}").as_str())
    );
    let tested = s
        .post(
            "/v1/tenants/acme/connections/crm/test",
            &t,
            &json!({"call": "request", "input": {"url": "/again"}}),
        )
        .await;
    assert_eq!(tested.body["outcome"], "success", "{}", tested.text);
    // A wrongly typed secret: the error names no value.
    let bad = s
        .put(
            "/v1/tenants/acme/connections/bad",
            &t,
            &json!({"plugin": "http-request", "connection": {"connection": "default",
                "auth": "bearer", "secrets": {"token": [CANARY], "extra": CANARY}}}),
        )
        .await;
    bad.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let history = s.get("/v1/tenants/acme/steps", &t).await;
    assert_eq!(history.body["steps"].as_array().unwrap().len(), 2);
    for text in [
        &created.text,
        &replaced.text,
        &listed.text,
        &one.text,
        &step.text,
        &tested.text,
        &bad.text,
        &history.text,
        &s.logs(),
    ] {
        assert_no_canary(text);
    }
    // Nor is it in the service's database (history rows, tokens), WAL included.
    for file in ["service.db", "service.db-wal"] {
        if let Ok(bytes) = std::fs::read(s.dir.join("data").join(file)) {
            assert_no_canary(&String::from_utf8_lossy(&bytes));
        }
    }
    // Deleted, it is gone.
    assert_eq!(
        s.delete("/v1/tenants/acme/connections/crm", &t)
            .await
            .status,
        StatusCode::NO_CONTENT
    );
    s.delete("/v1/tenants/acme/connections/crm", &t)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    assert_eq!(
        s.get("/v1/tenants/acme/connections", &t).await.body["connections"],
        json!([])
    );
}

#[tokio::test]
async fn a_step_returns_what_courier_run_prints() {
    let (upstream, _) = counting_upstream().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let api = s.step("acme", &t, "crm", "/same").await;
    let file = s.dir.join("conn.toml");
    std::fs::write(
        &file,
        format!(
            "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '''{CANARY}'''\n",
            upstream.url("")
        ),
    )
    .unwrap();
    let mut run = courier();
    run.args([
        "run",
        plugin("http-request").to_str().unwrap(),
        "request",
        "--input",
        r#"{"url": "/same"}"#,
        "--allow-network",
        "127.0.0.1/32",
        "--tenant",
        "acme",
        "--connection",
    ])
    .arg(format!("default={}", file.display()));
    let out = tokio::task::spawn_blocking(move || run.output().unwrap())
        .await
        .unwrap();
    let cli: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The same document but for what differs between two runs.
    let normalized = |mut v: Value| {
        v["duration_ms"] = json!(0);
        for r in v["requests"].as_array_mut().unwrap() {
            r["duration_ms"] = json!(0);
        }
        v["output"]["body"]["n"] = json!(0);
        v["output"]["headers"]["date"] = json!("");
        v
    };
    assert_eq!(
        normalized(api.body.clone()),
        normalized(cli),
        "{}",
        api.text
    );
    let id = api.headers["courier-step-id"].to_str().unwrap();
    assert!(s.logs().contains(id), "the step id is in the logs");
    let stored = s.get(&format!("/v1/tenants/acme/steps/{id}"), &t).await;
    assert_eq!(stored.body["result"], api.body);
    assert_eq!(stored.body["id"], id);
}

#[tokio::test]
async fn an_idempotency_key_runs_the_step_once() {
    let (upstream, count) = counting_upstream().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let body = json!({"plugin": "http-request", "call": "request",
                      "input": {"url": "/pay"}, "connections": ["crm"]});
    let send = |key: &'static str, body: Value| {
        let s = &s;
        let t = t.clone();
        async move {
            s.send(
                Method::POST,
                "/v1/tenants/acme/steps",
                Some(&t),
                Some(&body),
                &[("idempotency-key", key)],
            )
            .await
        }
    };
    let (first, second) = tokio::join!(send("k-1", body.clone()), send("k-1", body.clone()));
    let third = send("k-1", body.clone()).await;
    assert_eq!(
        count.load(Ordering::SeqCst),
        1,
        "the upstream was called once"
    );
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(first.text, second.text);
    assert_eq!(first.text, third.text);
    assert_eq!(
        first.headers["courier-step-id"],
        third.headers["courier-step-id"]
    );
    assert_eq!(third.headers["idempotent-replayed"], "true");
    // Another key runs again; the same key with another request is refused.
    send("k-2", body.clone()).await;
    assert_eq!(count.load(Ordering::SeqCst), 2);
    let mut other = body.clone();
    other["input"]["url"] = json!("/refund");
    send("k-1", other)
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(count.load(Ordering::SeqCst), 2);
    s.send(
        Method::POST,
        "/v1/tenants/acme/steps",
        Some(&t),
        Some(&body),
        &[("idempotency-key", "")],
    )
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
    // The key is the tenant's: another tenant's same key runs its own step.
    let u = s.tenant("other").await;
    s.connection("other", &u, "crm", &upstream.url("")).await;
    s.send(
        Method::POST,
        "/v1/tenants/other/steps",
        Some(&u),
        Some(&body),
        &[("idempotency-key", "k-1")],
    )
    .await;
    assert_eq!(count.load(Ordering::SeqCst), 3);
    assert_eq!(
        s.get("/v1/tenants/acme/steps", &t).await.body["steps"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn history_filters_and_pages() {
    let (upstream, _) = counting_upstream().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let mut ids = vec![];
    for path in ["/a", "/fail/1", "/b", "/fail/2", "/c"] {
        let a = s.step("acme", &t, "crm", path).await;
        ids.push(a.headers["courier-step-id"].to_str().unwrap().to_owned());
    }
    ids.reverse(); // newest first
    let mut seen = vec![];
    let mut path = "/v1/tenants/acme/steps?limit=2".to_owned();
    loop {
        let page = s.get(&path, &t).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for step in page.body["steps"].as_array().unwrap() {
            seen.push(step["id"].as_str().unwrap().to_owned());
            assert_eq!(step["outcome"], step["result"]["outcome"]);
        }
        match page.body["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/tenants/acme/steps?limit=2&cursor={c}"),
            None => break,
        }
    }
    assert_eq!(seen, ids);
    let failed = s.get("/v1/tenants/acme/steps?outcome=http-error", &t).await;
    let failed: Vec<&str> = failed.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap())
        .collect();
    assert_eq!(failed, [ids[1].as_str(), ids[3].as_str()]);
    let by_call = s
        .get(
            "/v1/tenants/acme/steps?plugin=http-request&call=request",
            &t,
        )
        .await;
    assert_eq!(by_call.body["steps"].as_array().unwrap().len(), 5);
    assert_eq!(
        s.get("/v1/tenants/acme/steps?call=other", &t).await.body["steps"],
        json!([])
    );
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis();
    let later = s
        .get(
            &format!("/v1/tenants/acme/steps?since={}", now + 60_000),
            &t,
        )
        .await;
    assert_eq!(later.body["steps"], json!([]));
    let earlier = s
        .get(
            &format!(
                "/v1/tenants/acme/steps?since={}&until={}",
                now - 600_000,
                now + 1
            ),
            &t,
        )
        .await;
    assert_eq!(earlier.body["steps"].as_array().unwrap().len(), 5);
    s.get("/v1/tenants/acme/steps?cursor=nope", &t)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    s.get("/v1/tenants/acme/steps?limit=0", &t)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    s.get("/v1/tenants/acme/steps?colour=red", &t)
        .await
        .assert_problem(StatusCode::BAD_REQUEST);
    s.get("/v1/tenants/acme/steps/stp_none", &t)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn history_keeps_the_newest_within_count_and_age() {
    let (upstream, _) = counting_upstream().await;
    let s = Service::start("[history]\nmax_per_tenant = 2\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let mut ids = vec![];
    for _ in 0..3 {
        let a = s.step("acme", &t, "crm", "/x").await;
        ids.push(a.headers["courier-step-id"].to_str().unwrap().to_owned());
    }
    let kept: Vec<String> = s.get("/v1/tenants/acme/steps", &t).await.body["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(kept, [ids[2].clone(), ids[1].clone()]);
    s.get(&format!("/v1/tenants/acme/steps/{}", ids[0]), &t)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    drop(s);

    let s = Service::start("[history]\nmax_age_secs = 1\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    let old = s.step("acme", &t, "crm", "/x").await;
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let new = s.step("acme", &t, "crm", "/x").await;
    let steps = s.get("/v1/tenants/acme/steps", &t).await.body["steps"].clone();
    assert_eq!(steps.as_array().unwrap().len(), 1);
    assert_eq!(
        steps[0]["id"],
        new.headers["courier-step-id"].to_str().unwrap()
    );
    assert_ne!(
        steps[0]["id"],
        old.headers["courier-step-id"].to_str().unwrap()
    );

    // With no new steps, history expires too: here at the next start.
    let dir = s.dir.clone();
    drop(s);
    tokio::time::sleep(std::time::Duration::from_millis(1100)).await;
    let s = Service::start_in(dir, "[history]\nmax_age_secs = 1\n", Some(ADMIN));
    let steps = s.get("/v1/tenants/acme/steps", &t).await;
    assert_eq!(steps.body["steps"], json!([]), "{}", steps.text);
}

#[tokio::test]
async fn bad_input_gets_problem_documents_and_stores_nothing() {
    let s = Service::start("max_body_bytes = 2048\n");
    let t = s.tenant("acme").await;
    let conn_path = "/v1/tenants/acme/connections/crm";
    let raw = |method: Method, path: &str, content_type: Option<&str>, body: String| {
        let mut r = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", s.base))
            .header("authorization", format!("Bearer {t}"));
        if let Some(ct) = content_type {
            r = r.header("content-type", ct);
        }
        r.body(Full::new(Bytes::from(body))).unwrap()
    };
    let malformed = s
        .raw(raw(
            Method::PUT,
            conn_path,
            Some("application/json"),
            "{\"plugin\": ".into(),
        ))
        .await;
    malformed.assert_problem(StatusCode::BAD_REQUEST);
    s.raw(raw(
        Method::POST,
        "/v1/tenants/acme/steps",
        Some("application/json"),
        "{\"plugin\": ".into(),
    ))
    .await
    .assert_problem(StatusCode::BAD_REQUEST);
    s.raw(raw(
        Method::POST,
        "/v1/tenants/acme/steps",
        None,
        "{}".into(),
    ))
    .await
    .assert_problem(StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let unknown = s
        .post(
            "/v1/tenants/acme/steps",
            &t,
            &json!({"plugin": "http-request", "call": "request", "colour": "red"}),
        )
        .await;
    unknown.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown.body["detail"].as_str().unwrap().contains("colour"),
        "{}",
        unknown.text
    );
    let unknown_key = s
        .put(conn_path, &t, &json!({"plugin": "http-request", "connection": {"connection": "default", "auth": "bearer", "colour": "red", "secrets": {"token": CANARY}}}))
        .await;
    unknown_key.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        unknown_key.body["detail"]
            .as_str()
            .unwrap()
            .contains("colour"),
        "{}",
        unknown_key.text
    );
    let wrong_slot = s
        .put(conn_path, &t, &json!({"plugin": "http-request", "connection": {"connection": "nope", "auth": "bearer", "secrets": {"token": CANARY}}}))
        .await;
    wrong_slot.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    let no_plugin = s
        .put(conn_path, &t, &json!({"plugin": "absent", "connection": {"connection": "default", "auth": "bearer", "secrets": {"token": CANARY}}}))
        .await;
    no_plugin.assert_problem(StatusCode::NOT_FOUND);
    let oversized = s
        .put(conn_path, &t, &json!({"plugin": "http-request", "connection": {"connection": "default", "auth": "bearer", "secrets": {"token": "x".repeat(4096)}}}))
        .await;
    oversized.assert_problem(StatusCode::PAYLOAD_TOO_LARGE);
    s.post("/v1/tenants", ADMIN, &json!({"id": "Bad Id"}))
        .await
        .assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    s.post("/v1/tenants", ADMIN, &json!({"id": "acme"}))
        .await
        .assert_problem(StatusCode::CONFLICT);
    s.send(Method::PATCH, "/v1/tenants", Some(ADMIN), None, &[])
        .await
        .assert_problem(StatusCode::METHOD_NOT_ALLOWED);
    s.get("/v1/nothing", ADMIN)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
    // A step naming an unknown call or a missing connection is not run or stored.
    let missing = s
        .post(
            "/v1/tenants/acme/steps",
            &t,
            &json!({"plugin": "http-request", "call": "request", "connections": ["ghost"]}),
        )
        .await;
    missing.assert_problem(StatusCode::UNPROCESSABLE_ENTITY);
    for answer in [
        &malformed,
        &unknown_key,
        &wrong_slot,
        &no_plugin,
        &oversized,
    ] {
        assert_no_canary(&answer.text);
    }
    // Nothing was stored by any of them.
    assert_eq!(
        s.get("/v1/tenants/acme/connections", &t).await.body["connections"],
        json!([])
    );
    assert_eq!(
        s.get("/v1/tenants/acme/steps", &t).await.body["steps"],
        json!([])
    );
    let tenants = s.get("/v1/tenants", ADMIN).await;
    assert_eq!(tenants.body["tenants"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn sigterm_lets_the_step_in_flight_finish() {
    let stalling = stalling_server(Stall::AfterRequest).await;
    let s = Service::start("step_deadline_secs = 2\nshutdown_grace_secs = 20\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "slow", &format!("http://{}", stalling.addr))
        .await;
    let in_flight = s.step("acme", &t, "slow", "/wait");
    let terminate = async {
        stalling.request_arrived().await;
        s.terminate();
    };
    let (answer, ()) = tokio::join!(in_flight, terminate);
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "timeout", "{}", answer.text);
    let mut child = s;
    let status = tokio::task::spawn_blocking(move || {
        let status = child.child.wait().unwrap();
        (status, child.logs())
    })
    .await
    .unwrap();
    assert!(status.0.success(), "{:?}", status.0);
    assert!(status.1.contains("shutting down"), "{}", status.1);
}

#[tokio::test]
async fn openapi_documents_every_route() {
    let s = Service::start("");
    let doc = s.send(Method::GET, "/openapi.json", None, None, &[]).await;
    assert_eq!(doc.status, StatusCode::OK);
    assert_eq!(doc.body["openapi"], "3.1.0");
    let paths = doc.body["paths"].as_object().unwrap();
    let documented: Vec<String> = paths
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .filter(|m| ["get", "put", "post", "delete"].contains(&m.as_str()))
                .map(move |m| format!("{} {path}", m.to_uppercase()))
        })
        .collect();
    let t = "/v1/tenants/{tenant}";
    for route in [
        "GET /healthz".to_owned(),
        "GET /readyz".into(),
        "GET /openapi.json".into(),
        "GET /metrics".into(),
        "GET /v1/tenants".into(),
        "POST /v1/tenants".into(),
        format!("POST {t}/tokens"),
        format!("DELETE {t}/tokens/{{token}}"),
        format!("GET {t}/plugins"),
        format!("GET {t}/plugins/{{plugin}}"),
        format!("PUT {t}/plugins/{{plugin}}"),
        "GET /v1/plugins".into(),
        "POST /v1/plugins".into(),
        "GET /v1/plugins/{digest}".into(),
        "GET /v1/plugins/{digest}/diff".into(),
        "POST /v1/plugins/{digest}/approve".into(),
        format!("GET {t}/connections"),
        format!("GET {t}/connections/{{id}}"),
        format!("PUT {t}/connections/{{id}}"),
        format!("DELETE {t}/connections/{{id}}"),
        format!("POST {t}/connections/{{id}}/test"),
        format!("POST {t}/steps"),
        format!("GET {t}/steps"),
        format!("GET {t}/steps/{{id}}"),
    ] {
        assert!(documented.contains(&route), "{route} is not documented");
    }
    assert_eq!(documented.len(), 24, "{documented:?}");
    // Every /v1 operation documents its problem answers and the bearer scheme.
    let steps = &paths["/v1/tenants/{tenant}/steps"]["post"];
    for status in ["200", "400", "401", "404", "413", "415", "422"] {
        assert!(steps["responses"][status].is_object(), "{status}");
    }
    assert_eq!(
        doc.body["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
}

#[tokio::test]
async fn metrics_count_steps_by_tenant_plugin_call_and_outcome() {
    let (upstream, _) = counting_upstream().await;
    let s = Service::start("");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "crm", &upstream.url("")).await;
    for path in ["/a", "/b", "/fail/1"] {
        s.step("acme", &t, "crm", path).await;
    }
    // Made-up names do not become label values: a plugin the tenant
    // cannot use is not run at all, a call it lacks is counted as `-`.
    s.post(
        "/v1/tenants/acme/steps",
        &t,
        &json!({"plugin": "made-up", "call": "x"}),
    )
    .await
    .assert_problem(StatusCode::NOT_FOUND);
    s.post(
        "/v1/tenants/acme/steps",
        &t,
        &json!({"plugin": "http-request", "call": "made-up"}),
    )
    .await;
    s.get("/metrics", &t)
        .await
        .assert_problem(StatusCode::FORBIDDEN);
    s.send(Method::GET, "/metrics", None, None, &[])
        .await
        .assert_problem(StatusCode::UNAUTHORIZED);
    let m = s.get("/metrics", ADMIN).await;
    assert_eq!(m.status, StatusCode::OK);
    assert!(
        m.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let line = |prefix: &str| {
        m.text
            .lines()
            .find(|l| l.starts_with(prefix))
            .unwrap_or_else(|| panic!("no `{prefix}` in {}", m.text))
            .rsplit(' ')
            .next()
            .unwrap()
            .to_owned()
    };
    let labels = r#"tenant="acme",plugin="http-request",call="request""#;
    assert_eq!(
        line(&format!(
            "courier_steps_total{{{labels},outcome=\"success\"}}"
        )),
        "2"
    );
    assert_eq!(
        line(&format!(
            "courier_steps_total{{{labels},outcome=\"http-error\"}}"
        )),
        "1"
    );
    assert_eq!(
        line(
            r#"courier_steps_total{tenant="acme",plugin="http-request",call="-",outcome="error"}"#
        ),
        "1"
    );
    assert_eq!(
        line(r#"courier_step_duration_seconds_count{plugin="http-request",call="request"}"#),
        "3"
    );
    assert_eq!(
        line(
            r#"courier_step_duration_seconds_bucket{plugin="http-request",call="request",le="+Inf"}"#
        ),
        "3"
    );
    assert!(!m.text.contains("made-up"));
}

/// The value of the metric line that starts with `prefix`.
fn metric(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_else(|| panic!("no `{prefix}` in {text}"))
        .rsplit(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

#[tokio::test]
async fn metrics_show_the_pool_slots_steps_hold() {
    let stalling = stalling_server(Stall::AfterRequest).await;
    let s = Service::start("step_deadline_secs = 3\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "slow", &format!("http://{}", stalling.addr))
        .await;
    let slots = |text: &str, kind: &str| {
        (
            metric(
                text,
                &format!("courier_pool_slots_in_use{{kind=\"{kind}\"}} "),
            ),
            metric(text, &format!("courier_pool_slots{{kind=\"{kind}\"}} ")),
        )
    };
    let idle = s.get("/metrics", ADMIN).await.text;
    let (in_use, capacity) = slots(&idle, "component_instance");
    assert_eq!(in_use, 0.0, "{idle}");
    assert!(capacity >= 3.0, "{idle}");
    // Three steps held on the upstream hold three instances and stacks.
    let held = async {
        for _ in 0..3 {
            stalling.request_arrived().await;
        }
        s.get("/metrics", ADMIN).await.text
    };
    let (a, b, c, busy) = tokio::join!(
        s.step("acme", &t, "slow", "/1"),
        s.step("acme", &t, "slow", "/2"),
        s.step("acme", &t, "slow", "/3"),
        held
    );
    assert_eq!(slots(&busy, "component_instance").0, 3.0, "{busy}");
    assert_eq!(slots(&busy, "stack").0, 3.0, "{busy}");
    assert!(slots(&busy, "memory").0 >= 3.0, "{busy}");
    assert_eq!(metric(&busy, "courier_steps_running "), 3.0, "{busy}");
    for answer in [a, b, c] {
        assert_eq!(answer.body["outcome"], "timeout", "{}", answer.text);
    }
    // Ended steps give their slots back.
    let after = s.get("/metrics", ADMIN).await.text;
    for kind in [
        "component_instance",
        "core_instance",
        "memory",
        "table",
        "stack",
    ] {
        let (in_use, capacity) = slots(&after, kind);
        assert_eq!(in_use, 0.0, "{kind}: {after}");
        assert!(capacity >= 3.0, "{kind}: {after}");
    }
}

#[tokio::test]
async fn a_step_whose_caller_goes_away_still_finishes_and_is_recorded() {
    let stalling = stalling_server(Stall::AfterRequest).await;
    let s = Service::start("step_deadline_secs = 1\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "slow", &format!("http://{}", stalling.addr))
        .await;
    let body = json!({"plugin": "http-request", "call": "request",
                      "input": {"url": "/wait"}, "connections": ["slow"]});
    let send = || {
        s.send(
            Method::POST,
            "/v1/tenants/acme/steps",
            Some(&t),
            Some(&body),
            &[("idempotency-key", "once")],
        )
    };
    // The caller hangs up once the upstream has the request.
    tokio::select! {
        _ = send() => panic!("the step answered before its deadline"),
        () = stalling.request_arrived() => {}
    }
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    let history = s.get("/v1/tenants/acme/steps", &t).await;
    assert_eq!(
        history.body["steps"][0]["outcome"], "timeout",
        "{}",
        history.text
    );
    // The retry gets the recorded answer and runs nothing.
    let retry = send().await;
    assert_eq!(retry.headers["idempotent-replayed"], "true");
    assert_eq!(retry.body, history.body["steps"][0]["result"]);
}

#[tokio::test]
async fn a_step_still_running_when_the_grace_ends_is_ended_classified_and_recorded() {
    let stalling = stalling_server(Stall::AfterRequest).await;
    let dir = scratch_dir("service-grace");
    let extra = "shutdown_grace_secs = 1\nstep_deadline_secs = 60\n";
    let s = Service::start_in(dir.clone(), extra, Some(ADMIN));
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "slow", &format!("http://{}", stalling.addr))
        .await;
    let in_flight = s.step("acme", &t, "slow", "/wait");
    let terminate = async {
        stalling.request_arrived().await;
        s.terminate();
    };
    let started = std::time::Instant::now();
    let (answer, ()) = tokio::join!(in_flight, terminate);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.body["outcome"], "timeout", "{}", answer.text);
    assert_eq!(answer.body["error"]["kind"], "deadline", "{}", answer.text);
    assert_eq!(
        answer.body["error"]["message"], "the service shut down before the step finished",
        "{}",
        answer.text
    );
    // The request in flight is ended with the step and kept in its record,
    // after waiting out the grace (1 s) at the stalling upstream.
    let requests = answer.body["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 1, "{}", answer.text);
    let record = &requests[0];
    assert_eq!(
        record["url"],
        format!("http://{}/wait", stalling.addr),
        "{}",
        answer.text
    );
    assert!(
        record["status"].is_null() && record["error"].is_string(),
        "{record}"
    );
    assert!(record["duration_ms"].as_u64().unwrap() >= 900, "{record}");
    let id = answer.headers["courier-step-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let mut s = s;
    let (code, logs) = tokio::task::spawn_blocking(move || {
        let code = s.child.wait().unwrap();
        (code, s.logs())
    })
    .await
    .unwrap();
    assert!(code.success(), "{code:?}");
    // Its log line (which the metrics are counted beside) has the request.
    let finished: Value = logs
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["fields"]["message"] == "step finished")
        .unwrap_or_else(|| panic!("no `step finished` line: {logs}"));
    assert_eq!(finished["fields"]["requests"], 1, "{finished}");
    // Started again on the same data: the ending is in the history.
    let again = Service::start_in(dir, extra, Some(ADMIN));
    let stored = again.get(&format!("/v1/tenants/acme/steps/{id}"), &t).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
    assert_eq!(stored.body["result"], answer.body);
}

#[tokio::test]
async fn installed_plugins_are_listed_and_described() {
    let s = Service::start("");
    let t = s.tenant("acme").await;
    let list = s.get("/v1/tenants/acme/plugins", &t).await;
    assert_eq!(list.status, StatusCode::OK);
    // Every component in the plugin directory is installed at start.
    let mut installed: Vec<String> = std::fs::read_dir(plugin("http-request").parent().unwrap())
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_suffix(".wasm").map(str::to_owned)
        })
        .collect();
    installed.sort();
    let listed: Vec<&str> = list.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(listed, installed);
    let http = list.body["plugins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "http-request")
        .unwrap();
    assert_eq!(http["calls"], json!(["request"]));
    let manifest = s.get("/v1/tenants/acme/plugins/http-request", &t).await;
    assert_eq!(manifest.status, StatusCode::OK);
    assert_eq!(manifest.body["name"], "http-request");
    assert_eq!(manifest.body["calls"][0]["name"], "request");
    // The same manifest `courier inspect` prints.
    assert_eq!(manifest.body["connections"][0]["name"], "default");
    assert!(manifest.body["calls"][0]["input_schema"].is_object());
    s.get("/v1/tenants/acme/plugins/absent", &t)
        .await
        .assert_problem(StatusCode::NOT_FOUND);
}

mod mcp;

/// `spare_instances` in the configuration reaches the host: the service
/// holds one instance per plugin while idle, within that number, and a step
/// runs as without it.
#[tokio::test]
async fn spare_instances_in_the_configuration_are_held_while_idle() {
    let upstream = TestServer::echo().await;
    let s = Service::start("spare_instances = 1\n");
    let t = s.tenant("acme").await;
    s.connection("acme", &t, "echo", &upstream.url("")).await;
    let held = async || {
        let text = s.get("/metrics", ADMIN).await.text;
        metric(
            &text,
            "courier_pool_slots_in_use{kind=\"component_instance\"} ",
        )
    };
    // Made in the background after the bundled plugins load.
    let mut idle = held().await;
    for _ in 0..100 {
        if idle == 1.0 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        idle = held().await;
    }
    assert_eq!(
        idle, 1.0,
        "one spare in all, whatever the number of plugins"
    );
    let answer = s.step("acme", &t, "echo", "/spare").await;
    assert_eq!(answer.body["outcome"], "success", "{}", answer.text);
}
