//! Fairness: tenant B's step latency while tenant A floods the host, measured
//! against B alone in the same run.
//!
//! `cargo bench -p courier-tests --bench fairness` measures; without `--bench`
//! (as `cargo test` runs it) a short smoke run checks that it works.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use courier_host::{ConcurrencyLimits, Host, Limits, Outcome, PluginPolicy, StepRequest};
use courier_tests::{host_builder, host_with};
use serde_json::json;

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (samples, flooders, rounds) = if full { (200, 256, 2) } else { (20, 16, 1) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(WORKERS)
        .enable_all()
        .build()
        .unwrap();
    // Both tenants run as tasks on the same two workers, as in a server.
    runtime.block_on(async {
        tokio::spawn(run(samples, flooders, rounds, full))
            .await
            .expect("the benchmark task")
    });
}

/// The runtime's workers, and the compute slots per tenant of the host that shares CPU.
const WORKERS: usize = 2;

fn request(tenant: &str, call: &str) -> StepRequest {
    StepRequest {
        tenant: tenant.into(),
        plugin: "misbehave".into(),
        call: call.into(),
        input: json!({}),
        connections: vec![],
    }
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

/// Figures of one host: B alone, B while A floods, and A's counts.
#[derive(Default)]
struct Figures {
    alone: Vec<(f64, f64)>,
    flooded: Vec<(f64, f64)>,
    ran: usize,
    refused: usize,
}

/// A host whose tenants get `compute_slots` compute slots each; tenant A's
/// steps are busy loops ended by a 100 ms deadline: the worst neighbour, pure CPU.
async fn host(compute_slots: usize) -> Host {
    let spin = PluginPolicy {
        allowed_hosts: None,
        contract_drift: None,
        limits: Some(Limits {
            step_deadline: Duration::from_millis(100),
            ..Limits::default()
        }),
    };
    let concurrency = ConcurrencyLimits {
        compute_slots_per_tenant: compute_slots,
        ..ConcurrencyLimits::default()
    };
    host_with(
        host_builder()
            .plugin_policy("misbehave", spin)
            .concurrency(concurrency),
        &["misbehave"],
    )
    .await
}

/// One round on one host: B alone, then B while A's `flooders` loop.
async fn round(host: &Host, samples: usize, flooders: usize, figures: &mut Figures) {
    figures.alone.push(tenant_b(host, samples).await);
    let stop = Arc::new(AtomicBool::new(false));
    let (ran, refused) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let flood: Vec<_> = (0..flooders)
        .map(|_| {
            let (host, stop, ran, refused) =
                (host.clone(), stop.clone(), ran.clone(), refused.clone());
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
    figures.flooded.push(tenant_b(host, samples).await);
    stop.store(true, Ordering::Relaxed);
    for f in flood {
        f.await.unwrap();
    }
    figures.ran += ran.load(Ordering::Relaxed);
    figures.refused += refused.load(Ordering::Relaxed);
}

/// The median over rounds of each quantile.
fn median(of: &[(f64, f64)]) -> (f64, f64) {
    let pick = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    (
        pick(of.iter().map(|x| x.0).collect()),
        pick(of.iter().map(|x| x.1).collect()),
    )
}

async fn run(samples: usize, flooders: usize, rounds: usize, full: bool) {
    // Side by side, in alternating rounds: the default host (A's busy steps
    // take turns on as many compute slots as there are workers) and one where
    // every running step of A may run at once (yielding at ticks only).
    let max_running = ConcurrencyLimits::default().max_steps_per_tenant;
    let (shared, yielding) = (host(WORKERS).await, host(max_running).await);
    let (mut by_turns, mut by_yield) = (Figures::default(), Figures::default());
    for _ in 0..rounds {
        round(&shared, samples, flooders, &mut by_turns).await;
        round(&yielding, samples, flooders, &mut by_yield).await;
    }

    println!(
        "tenant B: {samples} sequential trivial steps; tenant A: {flooders} workers looping CPU-bound steps (100 ms deadline); {rounds} round(s), medians"
    );
    println!("{:<52} {:>10} {:>10}", "", "p50 µs", "p99 µs");
    for (name, f) in [
        ("compute slots per tenant = workers", &by_turns),
        ("no compute slots (yield at ticks only)", &by_yield),
    ] {
        let (alone, flooded) = (median(&f.alone), median(&f.flooded));
        println!("{name}");
        println!("{:<52} {:>10.1} {:>10.1}", "  B alone", alone.0, alone.1);
        println!(
            "{:<52} {:>10.1} {:>10.1}",
            "  B while A floods", flooded.0, flooded.1
        );
        println!(
            "{:<52} {:>10} {:>10}",
            "  A: steps ran / refused by its concurrency cap", f.ran, f.refused
        );
    }
    let (turns, yields) = (median(&by_turns.flooded), median(&by_yield.flooded));
    println!(
        "{:<52} {:>10.2} {:>10.2}",
        "B while A floods: slots / no slots",
        turns.0 / yields.0,
        turns.1 / yields.1
    );
    if !full {
        println!("(smoke run: `cargo bench -p courier-tests --bench fairness` measures)");
    }
}
