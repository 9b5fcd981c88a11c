//! Fairness: tenant B's step latency while tenant A floods the host, measured
//! against B alone in the same run.
//!
//! `cargo bench -p courier-tests --bench fairness` measures; without `--bench`
//! (as `cargo test` runs it) a short smoke run checks that it works.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use courier_host::{Host, Limits, Outcome, PluginPolicy, StepRequest};
use courier_tests::{host_builder, host_with};
use serde_json::json;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (samples, flooders) = if full { (50, 256) } else { (20, 16) };
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    // Both tenants run as tasks on the same two workers, as in a server.
    runtime.block_on(async { tokio::spawn(run(samples, flooders, full)).await.expect("the benchmark task") });
}

fn request(tenant: &str, call: &str) -> StepRequest {
    StepRequest { tenant: tenant.into(), plugin: "misbehave".into(), call: call.into(), input: json!({}), connections: vec![] }
}

/// p50 and p99 of `n` sequential trivial steps of tenant B, each spawned as a task, in µs.
async fn tenant_b(host: &Host, n: usize) -> (f64, f64) {
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        // Each step is a new task, as a server's request would be: its
        // latency includes waiting for a worker, not only running.
        let started = Instant::now();
        let r = tokio::spawn({
            let host = host.clone();
            async move { host.run_step(request("tenant-b", "ok")).await }
        })
        .await
        .expect("the step task");
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        samples.push(started.elapsed());
    }
    samples.sort();
    let at = |q: f64| samples[((n - 1) as f64 * q) as usize].as_secs_f64() * 1e6;
    (at(0.50), at(0.99))
}

async fn run(samples: usize, flooders: usize, full: bool) {
    // Tenant A's steps are busy loops ended by a 100 ms deadline: the worst
    // neighbour, pure CPU.
    let spin = PluginPolicy {
        allowed_hosts: None,
        limits: Some(Limits { step_deadline: Duration::from_millis(100), ..Limits::default() }),
    };
    let host = host_with(host_builder().plugin_policy("misbehave", spin), &["misbehave"]).await;
    let alone = tenant_b(&host, samples).await;

    let stop = Arc::new(AtomicBool::new(false));
    let (ran, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood: Vec<_> = (0..flooders)
        .map(|_| {
            let (host, stop, ran, refused) = (host.clone(), stop.clone(), ran.clone(), refused.clone());
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    match host.run_step(request("tenant-a", "spin")).await.outcome {
                        Outcome::MaxConnection => {
                            refused.fetch_add(1, Ordering::Relaxed);
                            // A refusal returns at once: yield, or this loop
                            // would never let the workers run anything else.
                            tokio::task::yield_now().await;
                        }
                        _ => {
                            ran.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            })
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let flooded = tenant_b(&host, samples).await;
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }

    println!("tenant B: {samples} sequential trivial steps; tenant A: {flooders} workers looping CPU-bound steps (100 ms deadline)");
    println!("{:<40} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    println!("{:<40} {:>10.1} {:>10.1}", "B alone", alone.0, alone.1);
    println!("{:<40} {:>10.1} {:>10.1}", "B while A floods", flooded.0, flooded.1);
    println!("{:<40} {:>10.2} {:>10.2}", "ratio", flooded.0 / alone.0, flooded.1 / alone.1);
    println!("tenant A: {} steps ran, {} refused by its concurrency cap", ran.load(Ordering::Relaxed), refused.load(Ordering::Relaxed));
    if !full {
        println!("(smoke run: `cargo bench -p courier-tests --bench fairness` measures)");
    }
}
