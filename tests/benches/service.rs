//! The service's cost: a step through `courier serve`'s HTTP API
//! (`POST …/steps`: authentication, the stored connection, the step, the
//! history write, JSON over loopback HTTP) against the same step by
//! `Host::run_step` in this process, in one run, with the same plugin,
//! bearer connection and local upstream, at concurrency 1 and 64; and the
//! history write per step, from the service's own `/metrics`.
//!
//! `cargo bench -p courier-tests --bench service` measures, against
//! `target/release/courier` (`./dev bench` builds it); without `--bench`
//! (as `cargo test` runs it) a short smoke run against `target/debug/courier`
//! checks that every part works and claims nothing about the numbers.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use courier_host::{ConnectionConfig, Host, Outcome, StepRequest};
use courier_tests::{Reply, TestServer, host_builder, host_with, plugin, scratch_dir, target_dir};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

const ADMIN: &str = "bench-admin-token-0123456789";
const SECRET: &str = "sk_bench_4f9a8b7c6d5e";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // Steps per figure: sequential (latency), then shared by the workers.
    let steps = if full { 5_000 } else { 64 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(steps));
    if !full {
        println!("\n(smoke run: `cargo bench -p courier-tests --bench service` measures)");
    }
}

async fn run(steps: usize) {
    let upstream = TestServer::start(|_| Reply::json(200, json!({"ok": true}))).await;
    let base_url = upstream.url("/v1");
    let service = Arc::new(Service::start());
    let token = service.tenant_with_connection(&base_url).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let connection: ConnectionConfig = serde_json::from_value(connection(&base_url)).unwrap();
    let direct = {
        let host = host.clone();
        move || {
            let (host, connection) = (host.clone(), connection.clone());
            async move { direct_step(&host, connection).await }
        }
    };
    let api = {
        let (service, token) = (service.clone(), token.clone());
        move || {
            let (service, token) = (service.clone(), token.clone());
            async move { service.step(&token).await }
        }
    };
    // Warm both paths (compiled code, pools, SQLite pages).
    load(1, steps / 10 + 1, direct.clone()).await;
    load(1, steps / 10 + 1, api.clone()).await;

    println!(
        "{:<6} {:>12} {:>12} {:>12} {:>12} {:>12} {:>12} {:>14}",
        "",
        "direct st/s",
        "API st/s",
        "direct p50",
        "API p50",
        "direct p99",
        "API p99",
        "history write"
    );
    let mut ratios = vec![];
    for concurrency in [1, 64] {
        let d = load(concurrency, steps, direct.clone()).await;
        let (writes, secs) = service.history_writes().await;
        let a = load(concurrency, steps, api.clone()).await;
        let (writes_after, secs_after) = service.history_writes().await;
        assert_eq!(
            writes_after - writes,
            steps as u64,
            "a history write per API step"
        );
        // The mean time of a step's history write (the service's own
        // `courier_history_write_seconds`).
        let history = (secs_after - secs) / steps as f64 * 1e6;
        println!(
            "c={concurrency:<4} {:>12.0} {:>12.0} {:>9.0} µs {:>9.0} µs {:>9.0} µs {:>9.0} µs {:>11.0} µs",
            d.per_second, a.per_second, d.p50, a.p50, d.p99, a.p99, history
        );
        ratios.push((concurrency, d, a, history));
    }
    println!("\nratios, API / direct:");
    for (concurrency, d, a, history) in &ratios {
        println!(
            "c={concurrency:<4} steps/s {:.2}×, p50 {:.2}×, p99 {:.2}×; history write {:.0}% of the API's p50",
            a.per_second / d.per_second,
            a.p50 / d.p50,
            a.p99 / d.p99,
            history / a.p50 * 100.0
        );
    }
}

/// Steps per second and the steps' p50 and p99 (µs) of `total` runs of `op`
/// shared by `concurrency` workers.
struct Load {
    per_second: f64,
    p50: f64,
    p99: f64,
}

async fn load<F, Fut>(concurrency: usize, total: usize, op: F) -> Load
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let remaining = Arc::new(AtomicUsize::new(total));
    let started = Instant::now();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (op, remaining) = (op.clone(), remaining.clone());
            tokio::spawn(async move {
                let mut samples = vec![];
                while remaining
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok()
                {
                    let at = Instant::now();
                    op().await;
                    samples.push(at.elapsed());
                }
                samples
            })
        })
        .collect();
    let mut samples: Vec<Duration> = vec![];
    for w in workers {
        samples.extend(w.await.unwrap());
    }
    let per_second = total as f64 / started.elapsed().as_secs_f64();
    samples.sort();
    let at = |q: f64| samples[((samples.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    Load {
        per_second,
        p50: at(0.5),
        p99: at(0.99),
    }
}

/// The stored connection, as the API takes it and a connection file reads.
fn connection(base_url: &str) -> Value {
    json!({"connection": "default", "base_url": base_url, "auth": "bearer",
           "secrets": {"token": SECRET}})
}

/// The step's input: a GET relative to the connection's base URL.
fn input() -> Value {
    json!({"url": "/item"})
}

async fn direct_step(host: &Host, connection: ConnectionConfig) {
    let r = host
        .run_step(StepRequest {
            tenant: "bench".into(),
            plugin: "http-request".into(),
            call: "request".into(),
            input: input(),
            connections: vec![connection.into()],
        })
        .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

/// `courier serve` on a free port with a fresh data directory, killed when dropped.
struct Service {
    child: Child,
    base: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// The binary of this build's profile: release under `cargo bench`.
    fn start() -> Self {
        let profile = if cfg!(debug_assertions) {
            "debug"
        } else {
            "release"
        };
        let binary = target_dir().join(profile).join("courier");
        assert!(
            binary.exists(),
            "{} is missing: `cargo build{} -p courier-host --bin courier`",
            binary.display(),
            if profile == "release" {
                " --release"
            } else {
                ""
            }
        );
        let dir = scratch_dir("service-bench");
        let config = dir.join("courier.toml");
        std::fs::write(
            &config,
            format!(
                "plugin_dir = {:?}\nallow_hosts = [\"http://127.0.0.1:*\"]\nallow_networks = [\"127.0.0.1/32\"]\n",
                plugin("http-request").parent().unwrap()
            ),
        )
        .unwrap();
        let mut child = Command::new(binary)
            .arg("serve")
            .arg("--config")
            .arg(&config)
            .args(["--listen", "127.0.0.1:0", "--data-dir"])
            .arg(dir.join("data"))
            .env("COURIER_ADMIN_TOKEN", ADMIN)
            .env(
                "COURIER_CACHE_DIR",
                target_dir().join("courier-bench-cache"),
            )
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("courier serve starts");
        let base = courier_tests::serve_address(&mut child).expect("courier serve's address");
        Self {
            child,
            base,
            client: Client::builder(TokioExecutor::new()).build_http(),
        }
    }

    /// Sends a request; the status and the body.
    async fn send(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> (u16, Bytes) {
        let request = http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Full::new(
                body.map_or_else(Bytes::new, |b| b.to_string().into()),
            ))
            .unwrap();
        let response = self
            .client
            .request(request)
            .await
            .expect("the service answers");
        let status = response.status().as_u16();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    /// Creates tenant `bench`, a token and its connection `crm`; the token.
    async fn tenant_with_connection(&self, base_url: &str) -> String {
        let (status, _) = self
            .send("POST", "/v1/tenants", ADMIN, Some(json!({"id": "bench"})))
            .await;
        assert_eq!(status, 201);
        let (_, body) = self
            .send("POST", "/v1/tenants/bench/tokens", ADMIN, None)
            .await;
        let token: Value = serde_json::from_slice(&body).unwrap();
        let token = token["token"].as_str().unwrap().to_owned();
        let body = json!({"plugin": "http-request", "connection": connection(base_url)});
        let (status, _) = self
            .send(
                "PUT",
                "/v1/tenants/bench/connections/crm",
                &token,
                Some(body),
            )
            .await;
        assert_eq!(status, 201);
        token
    }

    async fn step(&self, token: &str) {
        let body = json!({"plugin": "http-request", "call": "request",
                          "input": input(), "connections": ["crm"]});
        let (status, body) = self
            .send("POST", "/v1/tenants/bench/steps", token, Some(body))
            .await;
        let result: Value = serde_json::from_slice(&body).unwrap();
        assert!(
            status == 200 && result["outcome"] == "success",
            "{status} {result}"
        );
    }

    /// History writes so far and their total seconds, from `/metrics`.
    async fn history_writes(&self) -> (u64, f64) {
        let (_, body) = self.send("GET", "/metrics", ADMIN, None).await;
        let text = String::from_utf8(body.to_vec()).unwrap();
        let value = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in /metrics"))
                .to_owned()
        };
        (
            value("courier_history_write_seconds_count")
                .parse()
                .unwrap(),
            value("courier_history_write_seconds_sum").parse().unwrap(),
        )
    }
}
