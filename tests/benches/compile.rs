//! Compiling a plugin: time and peak memory against the size of the largest
//! function, which `LoadLimits::max_function_bytes` bounds.
//!
//! `cargo bench -p courier-tests --bench compile` measures; without `--bench`
//! (as `cargo test` runs it) a short smoke run checks that it works. Peak
//! memory is the growth of the process's peak RSS (`VmHWM`, reset through
//! `/proc/self/clear_refs` before each load), so it needs Linux.

use std::time::Instant;

use courier_host::Host;
use courier_tests::{component_with_function, plugin};

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(run(full));
}

/// Peak RSS since the last reset, and resets it; in KiB.
fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("Linux /proc");
    let peak = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM in /proc/self/status");
    std::fs::write("/proc/self/clear_refs", "5").expect("resetting the peak RSS");
    peak
}

/// Loads `bytes` in a fresh host without a compiled cache: milliseconds and
/// peak RSS growth in MiB, or the refusal of a load limit.
async fn measure(bytes: &[u8]) -> Result<(f64, f64), String> {
    let host = Host::builder().build().expect("host");
    let before = peak_rss_kib();
    let started = Instant::now();
    // Synthetic components compile and then fail to link as plugins; either
    // way the compiler ran, unless a load limit refused the component first.
    if let Err(e) = host.load_plugin(bytes).await
        && e.to_string().contains("over the limit")
    {
        return Err(e.to_string());
    }
    let took = started.elapsed().as_secs_f64() * 1e3;
    let after = peak_rss_kib();
    Ok((took, after.saturating_sub(before) as f64 / 1024.0))
}

async fn run(full: bool) {
    // The last full size is just over the default `max_function_bytes` (1 MiB).
    let sizes: &[u32] = if full { &[64, 256, 900, 1100] } else { &[16] };
    println!(
        "{:<44} {:>10} {:>10} {:>12} {:>14}",
        "component", "KiB", "compile ms", "peak +MiB", "MiB per KiB fn"
    );
    let http_request =
        std::fs::read(plugin("http-request")).expect("built plugins (./dev build-plugins)");
    let (ms, mib) = measure(&http_request).await.expect("the plugin loads");
    println!(
        "{:<44} {:>10} {:>10.1} {:>12.1} {:>14}",
        "http-request plugin",
        http_request.len() / 1024,
        ms,
        mib,
        "-"
    );
    for &kib in sizes {
        // About 8 bytes per addition; the function is nearly all of the component.
        let component = component_with_function(kib * 1024 / 8);
        let name = format!("one function, component of {} KiB", component.len() / 1024);
        match measure(&component).await {
            Ok((ms, mib)) => {
                let per_kib = mib / component.len() as f64 * 1024.0;
                println!(
                    "{:<44} {:>10} {:>10.1} {:>12.1} {:>14.3}",
                    name,
                    component.len() / 1024,
                    ms,
                    mib,
                    per_kib
                );
            }
            Err(refused) => println!("{name}: refused before compiling ({refused})"),
        }
    }
    if !full {
        println!("(smoke run: `cargo bench -p courier-tests --bench compile` measures)");
    }
}
