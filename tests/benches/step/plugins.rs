//! Part 8: the plugins themselves, side by side. The generic request plugin
//! in Rust (`http-request`), Python (`http-request-py`, componentize-py) and
//! JavaScript (`http-request-js`, componentize-js): component size, compile
//! time without and with the compiled-component cache, a fresh instance, the
//! trivial call (`describe`, which every plugin has, on a fresh instance),
//! the request step on a fresh and on a reused instance, and the memory each
//! live instance holds. Then each vendor plugin's size, trivial call and
//! memory per live instance, measured the same way.
//!
//! Memory per live instance: `live` instances are held at once (each has
//! answered `describe`, or run one request step) and the growth of the
//! process's `Rss` and `Pss` (`/proc/self/smaps_rollup`) is divided by
//! `live`. `Rss` counts a page once per slot that maps it, `Pss` once in
//! all: the copy-on-write image's pages that instances only read are shared.

use std::path::Path;
use std::time::Instant;

use courier_host::{CompileSource, ConcurrencyLimits, Host, Limits, LoadReport, bench};
use courier_tests::{TestServer, plugin};
use serde_json::json;

use super::{
    Report, Scale, bench_builder, bench_host, host_with, padded_reply, percentiles, request,
    run_ok, run_reused_ok, summarize,
};

/// The generic request plugin in each language, Rust first (the reference).
const LANGUAGES: [(&str, &str); 3] = [
    ("Rust", "http-request"),
    ("Python", "http-request-py"),
    ("JavaScript", "http-request-js"),
];

/// The vendor plugins.
const VENDORS: [&str; 5] = ["stripe", "slack", "github", "hubspot", "shopify"];

/// One plugin's figures; `None` where not measured.
#[derive(Default)]
struct Figures {
    kib: f64,
    compile_ms: Option<f64>,
    cached_ms: f64,
    instantiate_us: f64,
    describe_us: f64,
    fresh_step_us: Option<(f64, f64)>,
    /// The same, steps 2 ms apart.
    apart_step_us: Option<(f64, f64)>,
    /// The same on a host keeping a spare instance per plugin.
    spare_step_us: Option<(f64, f64)>,
    reused_step_us: Option<f64>,
    /// Page faults of the process per fresh and per reused request step.
    faults: Option<(f64, f64)>,
    /// KiB of `Rss` and of `Pss` per instance that has answered `describe`.
    described_kib: (f64, f64),
    /// The same per instance that has run one request step.
    stepped_kib: Option<(f64, f64)>,
}

pub(super) async fn plugins(scale: &Scale, report: &mut Report) {
    let server = TestServer::start(|_| padded_reply()).await;
    let url = server.url("/bench");
    let names: Vec<&str> = LANGUAGES.iter().map(|(_, p)| *p).chain(VENDORS).collect();
    let host = bench_host(&names).await;
    // A spare instance per language plugin, made ahead of each step.
    let spares = ConcurrencyLimits {
        spare_instances: LANGUAGES.len(),
        ..ConcurrencyLimits::default()
    };
    let languages_only: Vec<&str> = LANGUAGES.iter().map(|(_, p)| *p).collect();
    let spare_host = host_with(bench_builder().concurrency(spares), &languages_only).await;
    let n = scale.plugin_iterations;
    let live = scale.live_instances;
    let mut languages = Vec::new();
    for (language, name) in LANGUAGES {
        // A cold compile of the Python component takes a minute in a debug
        // build: the smoke run compiles only the Rust one.
        let compile = scale.full || language == "Rust";
        let mut figures = common(&host, name, compile, n, live).await;
        let step = || run_ok(&host, request(name, "request", json!({"url": url})));
        let runs = (n + n / 10 + 1) as f64;
        let faults = minor_faults();
        figures.fresh_step_us = Some(percentiles(n, step).await);
        let fresh_faults = (minor_faults() - faults) as f64 / runs;
        // Steps 2 ms apart (as they arrive at a host that is not saturated),
        // timed apart from the pauses, on the plain host and with spares.
        let apart = async |host: &Host| {
            let mut samples = Vec::with_capacity(n);
            for i in 0..n + n / 10 + 1 {
                tokio::time::sleep(std::time::Duration::from_millis(2)).await;
                let step = request(name, "request", json!({"url": url}));
                let started = Instant::now();
                run_ok(host, step).await;
                if i > n / 10 {
                    samples.push(started.elapsed());
                }
            }
            summarize(samples)
        };
        figures.apart_step_us = Some(apart(&host).await);
        let samples = apart(&spare_host).await;
        figures.spare_step_us = Some(samples);
        let mut reused = bench::reused_instance(&host, name).await.unwrap();
        let mut samples = Vec::with_capacity(n);
        let faults = minor_faults();
        for i in 0..n + n / 10 + 1 {
            let step = request(name, "request", json!({"url": url}));
            let started = Instant::now();
            run_reused_ok(&host, &mut reused, step).await;
            if i > n / 10 {
                samples.push(started.elapsed());
            }
        }
        figures.faults = Some((fresh_faults, (minor_faults() - faults) as f64 / runs));
        drop(reused);
        figures.reused_step_us = Some(summarize(samples).0);
        figures.stepped_kib = Some(live_memory(name, Some(&url), live).await);
        languages.push((language, figures));
    }
    language_rows(&languages, live, report);
    for name in VENDORS {
        let f = common(&host, name, false, n, live).await;
        report.row(
            format!(
                "{name}: KiB, cached load ms, describe p50 µs, Rss / Pss KiB per live instance"
            ),
            format!(
                "{:.0}, {:.1}, {:.1}, {:.0} / {:.0}",
                f.kib, f.cached_ms, f.describe_us, f.described_kib.0, f.described_kib.1
            ),
        );
    }
}

/// What every plugin is measured on: size, loads, a fresh instance, the
/// trivial call, and `live` instances that answered it.
async fn common(host: &Host, name: &str, compile: bool, n: usize, live: usize) -> Figures {
    let path = plugin(name);
    let kib = std::fs::metadata(&path).unwrap().len() as f64 / 1024.0;
    let compile_ms = if compile {
        Some(cold_load(&path).await)
    } else {
        None
    };
    // From the test suite's cache, which the suite host loaded it into.
    let cached = load(
        &courier_tests::target_dir().join("courier-test-cache"),
        &path,
    )
    .await;
    assert_eq!(cached.source, CompileSource::Cache);
    let (instantiate_us, _) = percentiles(n, || async {
        drop(bench::reused_instance(host, name).await.unwrap());
    })
    .await;
    let (describe_us, _) = percentiles(n, || async {
        drop(bench::described_instance(host, name).await.unwrap());
    })
    .await;
    let described_kib = live_memory(name, None, live).await;
    Figures {
        kib,
        compile_ms,
        cached_ms: cached.compile_ms,
        instantiate_us,
        describe_us,
        described_kib,
        ..Figures::default()
    }
}

/// `Rss` and `Pss` KiB per live instance of `name`: `live` instances held at
/// once, each after `describe`, or after a request step to `url`. On a host
/// of its own, whose pool has no slot another instance has used (a used slot
/// keeps pages resident).
async fn live_memory(name: &str, url: Option<&str>, live: usize) -> (f64, f64) {
    let host = bench_host(&[name]).await;
    let before = memory_kib();
    let mut described = Vec::with_capacity(live);
    let mut stepped = Vec::with_capacity(live);
    for _ in 0..live {
        match url {
            None => described.push(bench::described_instance(&host, name).await.unwrap()),
            Some(url) => {
                let mut instance = bench::reused_instance(&host, name).await.unwrap();
                let step = request(name, "request", json!({"url": url}));
                run_reused_ok(&host, &mut instance, step).await;
                stepped.push(instance);
            }
        }
    }
    let (rss, pss) = memory_kib();
    let per = |b: u64, a: u64| a.saturating_sub(b) as f64 / live as f64;
    (per(before.0, rss), per(before.1, pss))
}

/// Loads the component at `path` on a host with the default limits and the
/// compiled-component cache in `cache`.
async fn load(cache: &Path, path: &Path) -> LoadReport {
    let host = Host::builder()
        .cache_dir(cache)
        .limits(Limits::default())
        .build()
        .unwrap();
    host.load_plugin_file(path).await.unwrap()
}

/// Milliseconds to compile the component at `path` with an empty cache.
async fn cold_load(path: &Path) -> f64 {
    let dir = std::env::temp_dir().join(format!("courier-bench-cold-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let compiled = load(&dir, path).await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(compiled.source, CompileSource::Compiled);
    compiled.compile_ms
}

/// The language rows: each figure for Rust, Python and JavaScript, then
/// Python's and JavaScript's as multiples of Rust's.
fn language_rows(languages: &[(&str, Figures)], live: usize, report: &mut Report) {
    let names: Vec<&str> = languages.iter().map(|(l, _)| *l).collect();
    let heading = names.join(" / ");
    let mut row = |what: &str, value: &dyn Fn(&Figures) -> Option<f64>, decimals: usize| {
        let values: Vec<Option<f64>> = languages.iter().map(|(_, f)| value(f)).collect();
        let shown: Vec<String> = values
            .iter()
            .map(|v| v.map_or("-".into(), |v| format!("{v:.decimals$}")))
            .collect();
        let ratios: Vec<String> = values[1..]
            .iter()
            .map(|v| match (v, values[0]) {
                (Some(v), Some(rust)) if rust > 0.0 => format!("{:.1}", v / rust),
                _ => "-".into(),
            })
            .collect();
        report.row(
            format!("{what} ({heading})"),
            format!("{}  (×Rust {})", shown.join(" / "), ratios.join(" / ")),
        );
    };
    type Value = fn(&Figures) -> Option<f64>;
    let held = format!("KiB ({live} held)");
    let figures: [(String, Value, usize); 16] = [
        ("component size, KiB".into(), |f| Some(f.kib), 0),
        ("load, compiling (no cache), ms".into(), |f| f.compile_ms, 0),
        (
            "load from the compiled cache, ms".into(),
            |f| Some(f.cached_ms),
            1,
        ),
        (
            "fresh instance (instantiate + drop), p50 µs".into(),
            |f| Some(f.instantiate_us),
            1,
        ),
        (
            "trivial call: fresh instance + describe, p50 µs".into(),
            |f| Some(f.describe_us),
            1,
        ),
        (
            "request step, fresh instance, p50 µs".into(),
            |f| f.fresh_step_us.map(|s| s.0),
            1,
        ),
        (
            "request step, fresh instance, p99 µs".into(),
            |f| f.fresh_step_us.map(|s| s.1),
            1,
        ),
        (
            "request step, fresh instance, steps 2 ms apart, p50 µs".into(),
            |f| f.apart_step_us.map(|s| s.0),
            1,
        ),
        (
            "request step, a spare instance (made ahead), steps 2 ms apart, p50 µs".into(),
            |f| f.spare_step_us.map(|s| s.0),
            1,
        ),
        (
            "request step, reused instance, p50 µs".into(),
            |f| f.reused_step_us,
            1,
        ),
        (
            "page faults per request step, fresh instance".into(),
            |f| f.faults.map(|x| x.0),
            0,
        ),
        (
            "page faults per request step, reused instance".into(),
            |f| f.faults.map(|x| x.1),
            0,
        ),
        (
            format!("Rss per live instance after describe, {held}"),
            |f| Some(f.described_kib.0),
            0,
        ),
        (
            format!("Pss per live instance after describe, {held}"),
            |f| Some(f.described_kib.1),
            0,
        ),
        (
            format!("Rss per live instance after a request step, {held}"),
            |f| f.stepped_kib.map(|m| m.0),
            0,
        ),
        (
            format!("Pss per live instance after a request step, {held}"),
            |f| f.stepped_kib.map(|m| m.1),
            0,
        ),
    ];
    for (what, value, decimals) in &figures {
        row(what, value, *decimals);
    }
}

/// The process's minor page faults so far (`minflt` in `/proc/self/stat`).
fn minor_faults() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("Linux /proc");
    // The fields after the command name, which is in parentheses: `minflt` is the eighth.
    let (_, fields) = stat.rsplit_once(')').expect("the command name");
    fields
        .split_whitespace()
        .nth(7)
        .and_then(|f| f.parse().ok())
        .expect("minflt in /proc/self/stat")
}

/// The process's `Rss` and `Pss` in KiB.
fn memory_kib() -> (u64, u64) {
    let rollup = std::fs::read_to_string("/proc/self/smaps_rollup").expect("Linux /proc");
    let field = |name: &str| {
        rollup
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in /proc/self/smaps_rollup"))
    };
    (field("Rss:"), field("Pss:"))
}
