//! Step latency against raw hyper, side by side in one run, same local server.
//!
//! `cargo bench -p courier-tests --bench step` runs the full measurement;
//! without `--bench` (as `cargo test` runs it) a short smoke run checks that
//! the benchmark works, with no claim about the numbers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_host::{ConnectionConfig, Host, Outcome, StepRequest};
use courier_tests::{Reply, TestPki, TestServer, host_builder, host_with, scratch_dir};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let iterations = if full { 5_000 } else { 50 };
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(run(iterations, full));
}

async fn run(iterations: usize, full: bool) {
    let server = TestServer::start(|_| Reply::json(200, serde_json::json!({"ok": true, "pad": "x".repeat(900)}))).await;
    let url = server.url("/bench");

    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let uri: hyper::Uri = url.parse().unwrap();
    let raw = measure(iterations, || {
        let (client, uri) = (client.clone(), uri.clone());
        async move {
            let resp = client.get(uri).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.unwrap();
        }
    })
    .await;

    let host = host_with(host_builder(), &["http-request"]).await;
    let step = measure(iterations, step_op(&host, serde_json::json!({"url": url}), None)).await;

    // The same step over HTTPS (custom CA from the connection's [tls] table),
    // through the pooled client: every new TCP connection is one handshake.
    let pki = TestPki::new("bench");
    let tls_server = TestServer::start_tls(pki.server_config(false), |_| {
        Reply::json(200, serde_json::json!({"ok": true, "pad": "x".repeat(900)}))
    })
    .await;
    let ca = scratch_dir("bench").join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let connection = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n[tls]\nca_file = '{}'",
        tls_server.https_url("/"),
        ca.display()
    );
    let https = measure(iterations, step_op(&host, serde_json::json!({"url": "/bench"}), Some(&connection))).await;
    let steps = iterations + iterations / 10 + 1;
    let handshakes = tls_server.connections();

    println!("step latency, {iterations} sequential GETs (1 KiB JSON response), one run");
    println!("{:<34} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!("{:<34} {:>10.1} {:>10.1}", "raw hyper", raw.p50, raw.p99);
    println!("{:<34} {:>10.1} {:>10.1}", "http-request step, fresh instance", step.p50, step.p99);
    println!("{:<34} {:>10.2} {:>10.2}", "ratio step / raw", step.p50 / raw.p50, step.p99 / raw.p99);
    println!("{:<34} {:>10.1} {:>10.1}", "https step (pooled, custom CA)", https.p50, https.p99);
    println!("{:<34} {:>10.2} {:>10.2}", "ratio https step / http step", https.p50 / step.p50, https.p99 / step.p99);
    println!(
        "new TLS handshakes: {handshakes} in {steps} https steps ({:.2} %)",
        100.0 * handshakes as f64 / steps as f64
    );
    if !full {
        println!("(smoke run: run `cargo bench -p courier-tests --bench step` for figures)");
    }
}

/// One `http-request` step with `input`, and this connection file if any.
fn step_op(host: &Host, input: serde_json::Value, connection: Option<&str>) -> impl FnMut() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()>>> {
    let host = host.clone();
    let connection = connection.map(str::to_owned);
    move || {
        let (host, input) = (host.clone(), input.clone());
        let connections: Vec<ConnectionConfig> = connection.iter().map(|t| toml::from_str(t).unwrap()).collect();
        Box::pin(async move {
            let request = StepRequest { tenant: "bench".into(), plugin: "http-request".into(), call: "request".into(), input, connections };
            let r = host.run_step(request).await;
            assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        })
    }
}

struct Percentiles {
    p50: f64,
    p99: f64,
}

async fn measure<F, Fut>(iterations: usize, mut op: F) -> Percentiles
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for _ in 0..iterations / 10 + 1 {
        op().await;
    }
    let mut samples: Vec<Duration> = Vec::with_capacity(iterations);
    for _ in 0..iterations {
        let started = Instant::now();
        op().await;
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 - 1.0) * q) as usize].as_secs_f64() * 1e6;
    Percentiles { p50: at(0.50), p99: at(0.99) }
}
