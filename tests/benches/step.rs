//! Step latency against raw hyper, side by side in one run, same local server.
//!
//! `cargo bench -p courier-tests --bench step` runs the full measurement;
//! without `--bench` (as `cargo test` runs it) a short smoke run checks that
//! the benchmark works, with no claim about the numbers.

use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_host::{Outcome, StepRequest};
use courier_tests::{Reply, TestServer, host_builder, host_with};
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
    let input = serde_json::json!({"url": url});
    let step = measure(iterations, || {
        let (host, input) = (host.clone(), input.clone());
        async move {
            let r = host
                .run_step(StepRequest { tenant: "bench".into(), plugin: "http-request".into(), call: "request".into(), input, connections: vec![] })
                .await;
            assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        }
    })
    .await;

    println!("step latency, {iterations} sequential GETs (1 KiB JSON response), one run");
    println!("{:<34} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!("{:<34} {:>10.1} {:>10.1}", "raw hyper", raw.p50, raw.p99);
    println!("{:<34} {:>10.1} {:>10.1}", "http-request step, fresh instance", step.p50, step.p99);
    println!("{:<34} {:>10.2} {:>10.2}", "ratio step / raw", step.p50 / raw.p50, step.p99 / raw.p99);
    if !full {
        println!("(smoke run: run `cargo bench -p courier-tests --bench step` for figures)");
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
