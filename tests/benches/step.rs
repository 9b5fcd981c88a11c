//! The benchmark suite: every figure measured side by side in one run, against
//! the same local hyper server on 127.0.0.1, with the host configured as in
//! production (pooling allocator, epochs, limits, a fresh instance per step).
//!
//! `cargo bench -p courier-tests --bench step` runs the full suite (release);
//! without `--bench` (as `cargo test` runs it) a short smoke run checks that
//! every part works and claims nothing about the numbers.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_host::{
    ClientSettings, CompileSource, ConcurrencyLimits, ConnectionConfig, Host, HostBuilder, Limits,
    Outcome, StepRequest, bench,
};
use courier_tests::{
    LocalTransport, Reply, TestPki, TestServer, host_builder, host_with, plugin, scratch_dir,
};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde_json::{Value, json};

#[path = "step/plugins.rs"]
mod plugins;

/// How much work each part does.
struct Scale {
    full: bool,
    latency_iterations: usize,
    throughput_requests: usize,
    payload_sizes: &'static [usize],
    payload_iterations: usize,
    parked_steps: usize,
    plugin_iterations: usize,
    live_instances: usize,
}

const FULL: Scale = Scale {
    full: true,
    latency_iterations: 5_000,
    throughput_requests: 20_000,
    payload_sizes: &[1 << 10, 64 << 10, 1 << 20, 8 << 20],
    payload_iterations: 40,
    parked_steps: 1_000,
    plugin_iterations: 1_000,
    live_instances: 50,
};

const SMOKE: Scale = Scale {
    full: false,
    latency_iterations: 30,
    throughput_requests: 200,
    payload_sizes: &[1 << 10, 64 << 10],
    payload_iterations: 3,
    parked_steps: 20,
    plugin_iterations: 5,
    live_instances: 3,
};

fn main() {
    let scale: &'static Scale = if std::env::args().any(|a| a == "--bench") {
        &FULL
    } else {
        &SMOKE
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    if let Ok(steps) = std::env::var("COURIER_BENCH_PROFILE_STEPS") {
        // For a profiler: nothing but fresh steps, `steps` of them, of the
        // kind `COURIER_BENCH_PROFILE_KIND` names: `trivial` (the default),
        // `request` (the generic request step against a local server),
        // `bearer` (the same with a bearer connection, hence injection and
        // scrubbing) or `jwt` (the same with an RS256 JWT the host signs once
        // and caches: binding reads the key, each step learns the token);
        // `reused` runs the `request` kind's steps on one instance kept
        // across them (the G1/G2 reference); `raw` sends the same
        // GET with hyper alone (G1's reference), `raw-h2c` over HTTP/2,
        // `raw-https` over HTTPS with HTTP/2;
        // `post` sends the `request` kind's step as a POST with a 1 KiB text body;
        // `https` and `https1` run the `request` step against a local HTTPS
        // server offering HTTP/2 first, or HTTP/1.1 only.
        // `raw-post` sends the `post` kind's request with hyper alone.
        // `COURIER_BENCH_PROFILE_PLUGIN` names the generic request plugin of
        // the `request` and `reused` kinds: `http-request` (the default),
        // `http-request-py` or `http-request-js`.
        // `COURIER_BENCH_PROFILE_EPOCHS=off` runs them on a host without
        // epoch interruption (G7); `COURIER_BENCH_UPSTREAM=thread` runs the
        // local server on a runtime and thread of its own instead of the
        // host's workers.
        let steps: usize = steps
            .parse()
            .expect("COURIER_BENCH_PROFILE_STEPS is a number");
        let kind = std::env::var("COURIER_BENCH_PROFILE_KIND").unwrap_or_default();
        return runtime.block_on(async {
            tokio::spawn(async move { profile(steps, &kind).await })
                .await
                .unwrap()
        });
    }
    // The suite runs as a task on the runtime's workers, as a host's callers
    // do: measured from the `block_on` thread, every operation would also pay
    // a cross-thread wake-up each way.
    let report = runtime.block_on(async {
        tokio::spawn(async {
            let mut report = Report::default();
            // Part 8 alone, the plugins side by side (it takes a minute or two).
            if std::env::var_os("COURIER_BENCH_PLUGINS_ONLY").is_some() {
                plugins::plugins(scale, &mut report).await;
                return report;
            }
            // Memory first: a part before it can hand pages back to the
            // system while its steps are parked, which hid their growth
            // (G6 read 0 with the vendor part ahead of it).
            memory(scale, &mut report).await;
            latency(scale, &mut report).await;
            vendor(scale, &mut report).await;
            https(scale, &mut report).await;
            throughput(scale, &mut report).await;
            payload(scale, &mut report).await;
            scrubbing(scale, &mut report);
            cold_start(&mut report).await;
            plugins::plugins(scale, &mut report).await;
            report
        })
        .await
        .expect("the benchmark task")
    });
    report.print(scale);
}

/// Runs `steps` fresh steps of one kind (or steps on a reused instance, or
/// raw GETs) and nothing else, for a profiler.
/// They run one at a time, so the host has the default limits, whose smaller
/// instance pool also fits in the address space `valgrind` allows.
async fn profile(steps: usize, kind: &str) {
    let builder = match std::env::var("COURIER_BENCH_PROFILE_EPOCHS").as_deref() {
        Ok("off") => bench::without_epoch_interruption(host_builder()),
        Ok("on") | Err(_) => host_builder(),
        Ok(other) => panic!("COURIER_BENCH_PROFILE_EPOCHS: `on` or `off`, not `{other}`"),
    };
    let plugin = std::env::var("COURIER_BENCH_PROFILE_PLUGIN");
    let plugin = plugin.as_deref().unwrap_or("http-request");
    let host = host_with(builder, &[plugin, "misbehave"]).await;
    let server = profiled_upstream(TestServer::start(|_| padded_reply())).await;
    let connection = bearer_connection(&server);
    let jwt = jwt_connection(&server);
    let plain = || request(plugin, "request", json!({"url": server.url("/profile")}));
    if kind == "raw" || kind == "raw-h2c" {
        let client = if kind == "raw" {
            raw_client()
        } else {
            raw_h2c_client()
        };
        let uri = server.url("/profile").parse().unwrap();
        for _ in 0..steps {
            raw_get(&client, &uri).await;
        }
        return;
    }
    if kind == "raw-post" {
        let (client, uri) = (raw_client(), server.url("/profile").parse().unwrap());
        for _ in 0..steps {
            raw_post(&client, &uri, Bytes::from("x".repeat(1 << 10))).await;
        }
        return;
    }
    if kind == "reused" {
        let mut reused = bench::reused_instance(&host, plugin).await.unwrap();
        for _ in 0..steps {
            assert_eq!(
                bench::run_reused(&host, &mut reused, plain()).await.outcome,
                Outcome::Success
            );
        }
        return;
    }
    if kind == "raw-https" {
        let pki = TestPki::new("bench");
        let server = profiled_upstream(TestServer::start_tls(pki.server_config(false), |_| {
            padded_reply()
        }))
        .await;
        let (client, uri) = (
            raw_https_client(&pki),
            server.https_url("/profile").parse().unwrap(),
        );
        for _ in 0..steps {
            raw_get(&client, &uri).await;
        }
        return;
    }
    let tls_connection = match kind {
        "https" | "https1" => Some(tls_connection(kind == "https1").await),
        _ => None,
    };
    let step = || match kind {
        "request" => plain(),
        "post" => request(
            "http-request",
            "request",
            text_post(&server.url("/profile"), "x".repeat(1 << 10)),
        ),
        "https" | "https1" => connection_request(
            &tls_connection.as_ref().expect("started above").1,
            "/profile",
        ),
        "bearer" => connection_request(&connection, "/profile"),
        "jwt" => connection_request(&jwt, "/profile"),
        "" | "trivial" => request("misbehave", "ok", json!({})),
        other => panic!("COURIER_BENCH_PROFILE_KIND: unknown kind `{other}`"),
    };
    // Built up front, as in the latency figures: the profile is the step's, not TOML's.
    let steps: Vec<StepRequest> = (0..steps).map(|_| step()).collect();
    for step in steps {
        run_ok(&host, step).await;
    }
}

/// Starts the profiling mode's server where `COURIER_BENCH_UPSTREAM` says:
/// on the host's workers (`runtime`, the default) or on a `thread` of its own.
async fn profiled_upstream(start: impl Future<Output = TestServer> + Send + 'static) -> TestServer {
    match std::env::var("COURIER_BENCH_UPSTREAM").as_deref() {
        Ok("thread") => on_own_thread(start).await,
        Ok("runtime") | Err(_) => start.await,
        Ok(other) => panic!("COURIER_BENCH_UPSTREAM: `runtime` or `thread`, not `{other}`"),
    }
}

/// Runs `start` (a server's start) on a runtime of its own, on its own
/// thread, so that the server's tasks never run on the host's workers, as a
/// remote upstream's never do.
async fn on_own_thread<T: Send + 'static>(start: impl Future<Output = T> + Send + 'static) -> T {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let handle = runtime.handle().clone();
    std::thread::spawn(move || runtime.block_on(std::future::pending::<()>()));
    handle.spawn(start).await.unwrap()
}

/// A local HTTPS server (HTTP/2 first by ALPN, or HTTP/1.1 only) and a
/// connection file trusting its CA.
async fn tls_connection(http1_only: bool) -> (TestServer, String) {
    let pki = TestPki::new("bench");
    let mut config = pki.server_config(false);
    if http1_only {
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
    }
    let server = profiled_upstream(TestServer::start_tls(config, |_| padded_reply())).await;
    let ca = scratch_dir("bench").join(if http1_only { "ca-h1.pem" } else { "ca.pem" });
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let text = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n[tls]\nca_file = '{}'",
        server.https_url("/"),
        ca.display()
    );
    (server, text)
}

/// A connection file binding `default` to the server with a bearer token.
fn bearer_connection(server: &TestServer) -> String {
    let token = "tok_bench_0123456789abcdef";
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = '{token}'",
        server.url("/")
    )
}

/// A connection file binding `default` to the server with a host-signed RS256 JWT.
fn jwt_connection(server: &TestServer) -> String {
    let key = include_str!("../fixtures/jwt-rs256-test-key.pem");
    format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'jwt'\nalgorithm = 'RS256'\n[secrets]\nprivate_key = '''{key}'''",
        server.url("/")
    )
}

/// A request step to `path` through the connection `connection` (its file's text).
fn connection_request(connection: &str, path: &str) -> StepRequest {
    let mut r = request("http-request", "request", json!({"url": path}));
    r.connections.push(
        toml::from_str::<ConnectionConfig>(connection)
            .unwrap()
            .into(),
    );
    r
}

/// The figures and goal ratios, printed at the end.
#[derive(Default)]
struct Report {
    rows: Vec<(String, String)>,
    goals: Vec<(&'static str, &'static str, f64, &'static str)>,
}

impl Report {
    fn row(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.rows.push((name.into(), value.into()));
    }

    fn goal(&mut self, id: &'static str, what: &'static str, value: f64, target: &'static str) {
        self.goals.push((id, what, value, target));
    }

    fn print(&self, scale: &Scale) {
        println!("\n{:<68} value", "figure");
        for (name, value) in &self.rows {
            println!("{name:<68} {value}");
        }
        println!("\n{:<4} {:<52} {:>8}  target", "goal", "ratio", "value");
        for (id, what, value, target) in &self.goals {
            println!("{id:<4} {what:<52} {value:>8.2}  {target}");
        }
        if !scale.full {
            println!("\n(smoke run: `cargo bench -p courier-tests --bench step` measures)");
        }
    }
}

/// A step request of the benchmark tenant.
fn request(plugin: &str, call: &str, input: Value) -> StepRequest {
    StepRequest {
        tenant: "bench".into(),
        plugin: plugin.into(),
        call: call.into(),
        input,
        connections: vec![],
    }
}

/// A host sized for the concurrency the suite uses.
async fn bench_host(plugins: &[&str]) -> Host {
    host_with(bench_builder(), plugins).await
}

/// The builder of [`bench_host`].
fn bench_builder() -> HostBuilder {
    let many = ConcurrencyLimits {
        max_steps: 1_100,
        max_steps_per_tenant: 1_100,
        max_steps_per_plugin: 1_100,
        max_queued_per_tenant: 1_100,
        ..ConcurrencyLimits::default()
    };
    host_builder().concurrency(many)
}

async fn run_ok(host: &Host, request: StepRequest) {
    let r = host.run_step(request).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

/// [`run_ok`] on a reused instance.
async fn run_reused_ok(host: &Host, instance: &mut bench::ReusedInstance, request: StepRequest) {
    let r = bench::run_reused(host, instance, request).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

/// p50 and p99 of `op` over `n` runs (after a warm-up), in µs.
async fn percentiles<F, Fut>(n: usize, mut op: F) -> (f64, f64)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = ()>,
{
    for _ in 0..n / 10 + 1 {
        op().await;
    }
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        let started = Instant::now();
        op().await;
        samples.push(started.elapsed());
    }
    summarize(samples)
}

/// Runs `op`, adding its duration to `samples`.
async fn timed(samples: &mut Vec<Duration>, op: impl Future<Output = ()>) {
    let started = Instant::now();
    op.await;
    samples.push(started.elapsed());
}

fn summarize(mut samples: Vec<Duration>) -> (f64, f64) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

fn raw_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new()).build_http()
}

/// hyper alone over cleartext HTTP/2 (prior knowledge).
fn raw_h2c_client() -> Client<HttpConnector, Full<Bytes>> {
    Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http()
}

/// hyper alone over HTTPS trusting `pki`'s CA, HTTP/2 or HTTP/1.1 by ALPN.
fn raw_https_client(
    pki: &TestPki,
) -> Client<hyper_rustls::HttpsConnector<HttpConnector>, Full<Bytes>> {
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(pki.client_config())
        .https_only()
        .enable_http1()
        .enable_http2()
        .build();
    Client::builder(TokioExecutor::new()).build(connector)
}

/// The 1 KiB JSON answer of the latency, HTTPS and profiling servers.
fn padded_reply() -> Reply {
    Reply::json(200, json!({"ok": true, "pad": "x".repeat(900)}))
}

/// The `http-request` input of a POST with a text body.
fn text_post(url: &str, body: String) -> Value {
    json!({"url": url, "method": "POST", "body_type": "text", "body": body})
}

/// A POST of a text body with hyper alone; returns the response body.
async fn raw_post(
    client: &Client<HttpConnector, Full<Bytes>>,
    uri: &hyper::Uri,
    body: Bytes,
) -> Bytes {
    let post = hyper::Request::post(uri.clone())
        .header("content-type", "text/plain")
        .body(Full::new(body))
        .unwrap();
    client
        .request(post)
        .await
        .unwrap()
        .into_body()
        .collect()
        .await
        .unwrap()
        .to_bytes()
}

async fn raw_get<C>(client: &Client<C, Full<Bytes>>, uri: &hyper::Uri)
where
    C: hyper_util::client::legacy::connect::Connect + Clone + Send + Sync + 'static,
{
    let resp = client.get(uri.clone()).await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.into_body().collect().await.unwrap();
}

/// Parts 1, 2 and 6: raw vs reused vs fresh; instantiation alone; credential
/// injection and scrubbing vs none; epoch interruption on vs off.
async fn latency(scale: &Scale, report: &mut Report) {
    let server = TestServer::start(|_| padded_reply()).await;
    let url = server.url("/bench");
    let uri: hyper::Uri = url.parse().unwrap();
    let host = bench_host(&["http-request", "misbehave"]).await;
    let no_epochs = host_with(
        bench::without_epoch_interruption(bench_builder()),
        &["http-request"],
    )
    .await;
    let n = scale.latency_iterations;
    let input = json!({"url": url});

    let client = raw_client();
    let mut reused = bench::reused_instance(&host, "http-request").await.unwrap();
    let mut reused_ok = bench::reused_instance(&host, "misbehave").await.unwrap();
    let connection = bearer_connection(&server);
    let warm_up = n / 10 + 1;
    // Connection files are parsed up front: the figure is the step's cost, not TOML's.
    let mut bound: Vec<StepRequest> = (0..n + warm_up + n / 50 + 1)
        .map(|_| connection_request(&connection, "/bench"))
        .collect();

    // Every figure is sampled in the same rounds, a batch of each per round,
    // so that load from outside the benchmark weighs on all of them alike
    // while each batch runs back to back (as a single operation per round,
    // every one would start with cold caches and parked threads).
    let mut times: [Vec<Duration>; 7] = std::array::from_fn(|_| Vec::with_capacity(n + warm_up));
    let batch = (n / 50).max(1);
    while times[0].len() < n + warm_up {
        for _ in 0..batch {
            timed(&mut times[0], raw_get(&client, &uri)).await;
        }
        for _ in 0..batch {
            timed(
                &mut times[1],
                run_reused_ok(
                    &host,
                    &mut reused,
                    request("http-request", "request", input.clone()),
                ),
            )
            .await;
        }
        for _ in 0..batch {
            timed(
                &mut times[2],
                run_ok(&host, request("http-request", "request", input.clone())),
            )
            .await;
        }
        for _ in 0..batch {
            timed(
                &mut times[3],
                run_reused_ok(&host, &mut reused_ok, request("misbehave", "ok", json!({}))),
            )
            .await;
        }
        for _ in 0..batch {
            timed(
                &mut times[4],
                run_ok(&host, request("misbehave", "ok", json!({}))),
            )
            .await;
        }
        for _ in 0..batch {
            timed(
                &mut times[5],
                run_ok(&host, bound.pop().expect("a request per run")),
            )
            .await;
        }
        for _ in 0..batch {
            timed(
                &mut times[6],
                run_ok(
                    &no_epochs,
                    request("http-request", "request", input.clone()),
                ),
            )
            .await;
        }
    }
    let [
        raw,
        reuse,
        fresh,
        trivial_reused,
        trivial_fresh,
        with_credentials,
        without_epochs,
    ] = times.map(|mut samples| summarize(samples.split_off(warm_up)));

    report.row(
        "raw hyper GET, p50 / p99 µs",
        format!("{:.1} / {:.1}", raw.0, raw.1),
    );
    report.row(
        "http-request step, reused instance, p50 / p99 µs",
        format!("{:.1} / {:.1}", reuse.0, reuse.1),
    );
    report.row(
        "http-request step, fresh instance, p50 / p99 µs",
        format!("{:.1} / {:.1}", fresh.0, fresh.1),
    );
    report.row(
        "trivial step, reused instance, p50 µs",
        format!("{:.1}", trivial_reused.0),
    );
    report.row(
        "trivial step (instantiate + call + drop), p50 µs",
        format!("{:.1}", trivial_fresh.0),
    );
    report.row(
        "http-request step with bearer + scrubbing, p50 µs",
        format!("{:.1}", with_credentials.0),
    );
    report.row(
        "http-request step, fresh, epochs off (bench only), p50 µs",
        format!("{:.1}", without_epochs.0),
    );
    report.goal(
        "G1",
        "reused-instance step / raw hyper, p50",
        reuse.0 / raw.0,
        "<= 1.10",
    );
    report.goal(
        "G1",
        "reused-instance step / raw hyper, p99",
        reuse.1 / raw.1,
        "<= 1.20",
    );
    report.goal(
        "G2",
        "fresh-instance step / reused-instance step, p50",
        fresh.0 / reuse.0,
        "<= 1.15",
    );
    report.goal(
        "G7",
        "epochs on / off, fresh step p50",
        fresh.0 / without_epochs.0,
        "<= 1.03",
    );
    report.goal(
        "G8",
        "injection + scrubbing / none, step p50",
        with_credentials.0 / fresh.0,
        "<= 1.10",
    );
}

/// The `stripe` plugin's `create_customer` step next to the generic
/// `http-request` step sending the same request (a form POST with
/// `metadata[order_id]`, a bearer secret and an idempotency key from the
/// host), both at Stripe's address through the same [`LocalTransport`] to a
/// local server answering a customer object, in alternating batches.
async fn vendor(scale: &Scale, report: &mut Report) {
    const BASE: &str = "https://api.stripe.com";
    let customer = json!({"id": "cus_bench", "object": "customer", "created": 1_700_000_000,
        "livemode": false, "email": "bench@example.com", "name": null, "description": null,
        "phone": null, "metadata": {"order_id": "6735"}});
    let server = TestServer::start(move |_| Reply::json(200, customer.clone())).await;
    let builder = bench_builder()
        .allow_host(format!("{BASE}/*").parse().unwrap())
        .transport(Arc::new(LocalTransport::new(BASE, server.addr)));
    let host = host_with(builder, &["http-request", "stripe"]).await;
    let secrets = "auth = 'bearer'\n[secrets]\ntoken = 'sk_test_bench_0123456789abcdef'";
    let with = |mut request: StepRequest, connection: &str| {
        let text = format!("{connection}\n{secrets}");
        let config = toml::from_str::<ConnectionConfig>(&text).unwrap();
        request.connections.push(config.into());
        request
    };
    let generic = || {
        let input = json!({"url": "/v1/customers", "method": "POST", "body_type": "form",
            "body": {"email": "bench@example.com", "metadata[order_id]": "6735"},
            "idempotency_key": true});
        let connection = format!("connection = 'default'\nbase_url = '{BASE}'");
        with(request("http-request", "request", input), &connection)
    };
    let stripe = || {
        let input = json!({"email": "bench@example.com", "metadata": {"order_id": "6735"}});
        with(
            request("stripe", "create_customer", input),
            "connection = 'stripe'",
        )
    };
    let n = scale.latency_iterations;
    let warm_up = n / 10 + 1;
    let mut times: [Vec<Duration>; 2] = std::array::from_fn(|_| Vec::with_capacity(n + warm_up));
    let batch = (n / 50).max(1);
    while times[0].len() < n + warm_up {
        for _ in 0..batch {
            timed(&mut times[0], run_ok(&host, generic())).await;
        }
        for _ in 0..batch {
            timed(&mut times[1], run_ok(&host, stripe())).await;
        }
    }
    let [generic, stripe] = times.map(|mut samples| summarize(samples.split_off(warm_up)));
    report.row(
        "http-request step, a Stripe create-customer POST, p50 / p99 µs",
        format!("{:.1} / {:.1}", generic.0, generic.1),
    );
    report.row(
        "stripe create_customer step, p50 / p99 µs",
        format!("{:.1} / {:.1}", stripe.0, stripe.1),
    );
    report.goal(
        "V1",
        "stripe create_customer / http-request step, p50",
        stripe.0 / generic.0,
        "(measured)",
    );
}

/// Part 6: HTTPS vs HTTP steps through the pooled client (custom CA from the
/// connection's `[tls]` table); every new TCP connection is one handshake.
async fn https(scale: &Scale, report: &mut Report) {
    let plain = TestServer::start(|_| padded_reply()).await;
    let pki = TestPki::new("bench");
    // One server offers HTTP/2 first (as most public APIs do), one HTTP/1.1 only.
    let tls = TestServer::start_tls(pki.server_config(false), |_| padded_reply()).await;
    let mut http1_only = pki.server_config(false);
    http1_only.alpn_protocols = vec![b"http/1.1".to_vec()];
    let tls_h1 = TestServer::start_tls(http1_only, |_| padded_reply()).await;
    let ca = scratch_dir("bench").join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let host = bench_host(&["http-request"]).await;
    let connection = |base: String| {
        let tls_table = if base.starts_with("https:") {
            format!("[tls]\nca_file = '{}'", ca.display())
        } else {
            String::new()
        };
        format!("connection = 'default'\nbase_url = '{base}'\nauth = 'none'\n{tls_table}")
    };
    let n = scale.latency_iterations;
    let step_with = |conn: &str| {
        let mut r = request("http-request", "request", json!({"url": "/bench"}));
        r.connections
            .push(toml::from_str::<ConnectionConfig>(conn).unwrap().into());
        run_ok(&host, r)
    };
    let [http, https, https_h1] =
        [plain.url("/"), tls.https_url("/"), tls_h1.https_url("/")].map(connection);
    let http = percentiles(n, || step_with(&http)).await;
    let https = percentiles(n, || step_with(&https)).await;
    let https_h1 = percentiles(n, || step_with(&https_h1)).await;
    let handshakes = tls.connections();
    // The same HTTP/2 server with the connection keeping to HTTP/1.1 (`[tls]` `http2 = false`).
    let http2_off = format!("{}\nhttp2 = false", connection(tls.https_url("/")));
    let https_http2_off = percentiles(n, || step_with(&http2_off)).await;
    // hyper alone over HTTP/2 (cleartext, prior knowledge) against the same
    // kind of server: what HTTP/2 itself costs in this process.
    let (h2c, uri) = (raw_h2c_client(), plain.url("/bench").parse().unwrap());
    let raw_h2c = percentiles(n, || raw_get(&h2c, &uri)).await;
    // hyper alone over HTTPS against the two TLS servers (HTTP/2 and HTTP/1.1 by ALPN).
    let (client, uri) = (
        raw_https_client(&pki),
        tls.https_url("/bench").parse().unwrap(),
    );
    let raw_https = percentiles(n, || raw_get(&client, &uri)).await;
    let (client, uri) = (
        raw_https_client(&pki),
        tls_h1.https_url("/bench").parse().unwrap(),
    );
    let raw_https_h1 = percentiles(n, || raw_get(&client, &uri)).await;
    let steps = n + n / 10 + 1;
    report.row(
        "step over HTTP / HTTPS (pooled), p50 µs",
        format!("{:.1} / {:.1}", http.0, https.0),
    );
    report.row(
        "step over HTTPS, server speaking HTTP/1.1 only, p50 µs",
        format!("{:.1}", https_h1.0),
    );
    report.row(
        "step over HTTPS, HTTP/2 server, connection `http2 = false`, p50 µs",
        format!("{:.1}", https_http2_off.0),
    );
    report.row(
        "raw hyper GET over HTTP/2 (h2c), p50 µs",
        format!("{:.1}", raw_h2c.0),
    );
    report.row(
        "raw hyper GET over HTTPS: HTTP/2 / HTTP/1.1 server, p50 µs",
        format!("{:.1} / {:.1}", raw_https.0, raw_https_h1.0),
    );
    report.row(
        "steps needing a new TLS handshake",
        format!(
            "{handshakes} of {steps} ({:.2} %)",
            100.0 * handshakes as f64 / steps as f64
        ),
    );
}

/// Part 3: requests per second at several concurrencies, raw vs steps.
async fn throughput(scale: &Scale, report: &mut Report) {
    let server = TestServer::start(|_| Reply::json(200, json!({"ok": true}))).await;
    let url = server.url("/t");
    let uri: hyper::Uri = url.parse().unwrap();
    // The production caps (a tenant runs 64 steps at once), with a queue long
    // enough that no step of the 256 is refused: the excess waits in
    // admission, before it has an instance.
    let queued = ConcurrencyLimits {
        max_queued_per_tenant: 256,
        ..ConcurrencyLimits::default()
    };
    let host = host_with(host_builder().concurrency(queued), &["http-request"]).await;
    let client = raw_client();
    let total = scale.throughput_requests;
    let steps_at = |host: Host, concurrency: usize| {
        let url = url.clone();
        rate(concurrency, total, move || {
            let (host, url) = (host.clone(), url.clone());
            async move {
                run_ok(
                    &host,
                    request("http-request", "request", json!({"url": url})),
                )
                .await
            }
        })
    };
    let mut at = std::collections::HashMap::new();
    for concurrency in [1usize, 16, 64, 256] {
        let raw = rate(concurrency, total, {
            let (client, uri) = (client.clone(), uri.clone());
            move || {
                let (client, uri) = (client.clone(), uri.clone());
                async move { raw_get(&client, &uri).await }
            }
        })
        .await;
        let steps = steps_at(host.clone(), concurrency).await;
        report.row(
            format!("throughput c={concurrency}: raw req/s, steps/s"),
            format!("{raw:.0}, {steps:.0}"),
        );
        at.insert(concurrency, (raw, steps));
    }
    // The same 256 with every one running at once (an instance each).
    let uncapped = steps_at(bench_host(&["http-request"]).await, 256).await;
    report.row(
        "throughput c=256, all 256 running: steps/s",
        format!("{uncapped:.0}"),
    );
    report.goal(
        "G3",
        "steps/s / raw req/s at c=64",
        at[&64].1 / at[&64].0,
        ">= 0.85",
    );
    report.goal(
        "G4",
        "steps/s at c=256 / steps/s at c=16",
        at[&256].1 / at[&16].1,
        ">= 0.95",
    );
}

/// Completed operations per second with `concurrency` workers sharing `total` operations.
async fn rate<F, Fut>(concurrency: usize, total: usize, op: F) -> f64
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let remaining = Arc::new(std::sync::atomic::AtomicUsize::new(total));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, remaining) = (op.clone(), remaining.clone());
            tokio::spawn(async move {
                while remaining
                    .fetch_update(
                        std::sync::atomic::Ordering::SeqCst,
                        std::sync::atomic::Ordering::SeqCst,
                        |n| n.checked_sub(1),
                    )
                    .is_ok()
                {
                    op().await;
                }
            })
        })
        .collect();
    for w in workers {
        w.await.unwrap();
    }
    total as f64 / started.elapsed().as_secs_f64()
}

/// Part 4: per-byte cost of a step vs raw hyper vs memcpy, request and response of each size.
async fn payload(scale: &Scale, report: &mut Report) {
    let server = TestServer::start(|r| Reply {
        status: 200,
        headers: vec![("content-type".into(), "text/plain".into())],
        body: r.body.clone(),
    })
    .await;
    let url = server.url("/echo");
    let uri: hyper::Uri = url.parse().unwrap();
    let host = bench_host(&["http-request"]).await;
    let client = raw_client();
    let n = scale.payload_iterations;
    let mut points = vec![];
    for &size in scale.payload_sizes {
        let body = "x".repeat(size);
        let raw = percentiles(n, || {
            let (client, uri, body) = (client.clone(), uri.clone(), Bytes::from(body.clone()));
            async move { assert_eq!(raw_post(&client, &uri, body).await.len(), size) }
        })
        .await
        .0;
        let input = text_post(&url, body.clone());
        let step = percentiles(n, || {
            run_ok(&host, request("http-request", "request", input.clone()))
        })
        .await
        .0;
        let source = vec![1u8; size];
        let mut target = vec![0u8; size];
        let copy = percentiles(n.max(20), || {
            target.copy_from_slice(std::hint::black_box(&source));
            std::hint::black_box(&target);
            async {}
        })
        .await
        .0;
        report.row(
            format!("payload {} KiB: raw / step / memcpy p50 µs", size >> 10),
            format!("{raw:.1} / {step:.1} / {copy:.2}"),
        );
        points.push((size as f64, raw, step, copy));
    }
    let (first, last) = (points[0], points[points.len() - 1]);
    let slope =
        |pick: fn(&(f64, f64, f64, f64)) -> f64| (pick(&last) - pick(&first)) / (last.0 - first.0);
    let (raw_b, step_b, copy_b) = (slope(|p| p.1), slope(|p| p.2), slope(|p| p.3));
    report.row(
        "per-byte cost ns: raw, step, memcpy",
        format!(
            "{:.3}, {:.3}, {:.4}",
            raw_b * 1e3,
            step_b * 1e3,
            copy_b * 1e3
        ),
    );
    // The server runs in this process: its own per-byte work is in both slopes.
    report.row(
        "per-byte cost a step adds to raw hyper / memcpy's",
        format!("{:.1}", (step_b - raw_b) / copy_b),
    );
    report.goal(
        "G5",
        "per-byte step cost / per-byte memcpy",
        step_b / copy_b,
        "<= 3",
    );
}

/// Part 4b: scrubbing a 1 MiB response body that holds the secret (JSON
/// with escapes, which is scrubbed string by string in the decoded domain;
/// text with percent-encoding and character references) next to memcpy of
/// the same size.
fn scrubbing(scale: &Scale, report: &mut Report) {
    const SECRET: &str = "sk_live_4eC39HqLyjWDarjtT1zdp7dc+/x";
    let scrubber = bench::Scrubbing::new(&[SECRET]);
    let size = 1 << 20;
    let mut json = String::from("[");
    let mut text = String::new();
    let mut n = 0;
    while json.len() < size {
        let token = if n % 1000 == 0 {
            SECRET
        } else {
            "tok_nothing_here"
        };
        json.push_str(&format!(
            r#"{{"id": {n}, "url": "https:\/\/api.example.com\/v1\/items\/{n}?a=1&b=%20", "note": "line\nbreak \u00e9", "token": "{}"}},"#,
            token.replace('/', "\\/")
        ));
        text.push_str(&format!(
            "{n} GET /v1/items?q=a%20b&amp;token={} &lt;ok&gt;\n\n",
            percent_encoding::utf8_percent_encode(token, percent_encoding::NON_ALPHANUMERIC)
        ));
        n += 1;
    }
    json.push_str("{}]");
    text.truncate(size);
    let iterations = if scale.full { 40 } else { 3 };
    let time = |data: &[u8], op: &dyn Fn(Vec<u8>) -> Vec<u8>| {
        let mut samples: Vec<Duration> = (0..iterations)
            .map(|_| {
                let input = data.to_vec();
                let started = Instant::now();
                std::hint::black_box(op(std::hint::black_box(input)));
                started.elapsed()
            })
            .collect();
        samples.sort();
        samples[samples.len() / 2].as_secs_f64() * 1e3
    };
    let copy = time(json.as_bytes(), &|d| {
        let mut target = vec![0u8; d.len()];
        target.copy_from_slice(&d);
        target
    });
    let scrubbed = scrubber.body(json.clone().into_bytes());
    assert!(
        serde_json::from_slice::<serde_json::Value>(&scrubbed).is_ok(),
        "scrubbed JSON stays JSON"
    );
    assert!(!String::from_utf8_lossy(&scrubbed).contains("sk_live"));
    let json_ms = time(json.as_bytes(), &|d| scrubber.body(d));
    let text_ms = time(text.as_bytes(), &|d| scrubber.body(d));
    report.row(
        "scrub 1 MiB: JSON / text / memcpy p50 ms",
        format!("{json_ms:.2} / {text_ms:.2} / {copy:.3}"),
    );
    report.row(
        "scrub 1 MiB / memcpy: JSON, text",
        format!("{:.0}, {:.0}", json_ms / copy, text_ms / copy),
    );
}

/// Part 5: resident memory per live instance, with steps parked in a host call.
async fn memory(scale: &Scale, report: &mut Report) {
    let release = Arc::new(tokio::sync::Notify::new());
    let addr = parking_server(release.clone()).await;
    // Every parked step holds a connection to the one parking origin.
    let settings = ClientSettings {
        max_connections_per_origin: scale.parked_steps,
        ..ClientSettings::default()
    };
    let host = host_with(bench_builder().client_settings(settings), &["http-request"]).await;
    let url = format!("http://{addr}/park");
    run_ok(
        &host,
        request("http-request", "request", json!({"url": url.clone()})),
    )
    .await;
    let before = resident_bytes();
    let steps: Vec<_> = (0..scale.parked_steps)
        .map(|_| {
            let (host, url) = (host.clone(), url.clone());
            tokio::spawn(async move {
                host.run_step(request("http-request", "request", json!({"url": url})))
                    .await
            })
        })
        .collect();
    while PARKED.load(std::sync::atomic::Ordering::SeqCst) < scale.parked_steps {
        if let Some(ended) = steps.iter().position(|s| s.is_finished()) {
            panic!(
                "a step ended before all were parked: {:?}",
                steps.into_iter().nth(ended).unwrap().await
            );
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let during = resident_bytes();
    release.notify_waiters();
    for s in steps {
        assert_eq!(s.await.unwrap().outcome, Outcome::Success);
    }
    let per_instance = (during.saturating_sub(before)) as f64 / scale.parked_steps as f64 / 1024.0;
    report.row(
        format!(
            "RSS growth with {} parked steps, KiB per step",
            scale.parked_steps
        ),
        format!("{per_instance:.0}"),
    );
    report.goal(
        "G6",
        "RSS per live instance, KiB",
        per_instance,
        "<= 128 + touched guest memory",
    );
}

/// Requests parked on the server so far.
static PARKED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// A server that answers the first request at once and parks every later one
/// until `release` is notified.
async fn parking_server(release: Arc<tokio::sync::Notify>) -> std::net::SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let first = Arc::new(std::sync::atomic::AtomicBool::new(true));
    tokio::spawn(async move {
        loop {
            let (stream, _) = listener.accept().await.unwrap();
            let (release, first) = (release.clone(), first.clone());
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req| {
                    let (release, first) = (release.clone(), first.clone());
                    async move {
                        if !first.swap(false, std::sync::atomic::Ordering::SeqCst) {
                            let released = release.notified();
                            PARKED.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                            released.await;
                        }
                        Ok::<_, Infallible>(hyper::Response::new(Full::new(Bytes::from_static(
                            b"ok",
                        ))))
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

fn resident_bytes() -> usize {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(0)
        * 4096
}

/// Part 7: loading a plugin by compiling it vs from the compiled cache.
async fn cold_start(report: &mut Report) {
    let dir = std::env::temp_dir().join(format!("courier-bench-cache-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let load = || async {
        let host = Host::builder()
            .cache_dir(&dir)
            .limits(Limits::default())
            .build()
            .unwrap();
        host.load_plugin_file(&plugin("http-request"))
            .await
            .unwrap()
    };
    let compiled = load().await;
    let cached = load().await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(
        (compiled.source, cached.source),
        (CompileSource::Compiled, CompileSource::Cache)
    );
    report.row(
        "load http-request: compile / from cache, ms",
        format!("{:.1} / {:.1}", compiled.compile_ms, cached.compile_ms),
    );
}
