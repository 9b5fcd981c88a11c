//! A misbehaving plugin costs one step, never the host.

use std::time::{Duration, Instant};

use courier_host::{Host, Limits, Outcome};
use courier_tests::{host_builder, host_with};
use serde_json::json;

use crate::step;

fn limits(deadline_ms: u64) -> Limits {
    Limits {
        step_deadline: Duration::from_millis(deadline_ms),
        memory_bytes: 16 << 20,
        ..Limits::default()
    }
}

#[tokio::test]
async fn an_endless_loop_ends_at_the_deadline() {
    let host = host_with(host_builder().limits(limits(500)), &["misbehave"]).await;
    let started = Instant::now();
    let r = step(&host, "misbehave", "spin", json!({}), &[]).await;
    let took = started.elapsed();
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(
        took >= Duration::from_millis(500),
        "ended before the deadline: {took:?}"
    );
    assert!(
        took < Duration::from_secs(3),
        "ended long after the deadline: {took:?}"
    );
    let ok = step(&host, "misbehave", "ok", json!({}), &[]).await;
    assert_eq!(
        ok.outcome,
        Outcome::Success,
        "the next step must succeed: {ok:?}"
    );
}

#[tokio::test]
async fn a_memory_hog_hits_the_limit() {
    let host = host_with(host_builder().limits(limits(10_000)), &["misbehave"]).await;
    let r = step(&host, "misbehave", "hog", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let err = r.error.unwrap();
    assert_eq!(err.kind, "memory", "{err:?}");
    assert!(err.message.contains("memory limit"), "{err:?}");
    let ok = step(&host, "misbehave", "ok", json!({}), &[]).await;
    assert_eq!(ok.outcome, Outcome::Success, "{ok:?}");
}

#[tokio::test]
async fn traps_and_panics_are_errors() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    for call in ["trap", "panic"] {
        let r = step(&host, "misbehave", call, json!({}), &[]).await;
        assert_eq!(r.outcome, Outcome::Error, "{call}: {r:?}");
        assert_eq!(r.error.as_ref().unwrap().kind, "trap", "{call}: {r:?}");
        if call == "panic" {
            assert!(
                r.logs.iter().any(
                    |l| l.level == "error" && l.message.contains("misbehave: panic on request")
                ),
                "the panic message reaches the step log: {:?}",
                r.logs
            );
        }
        let ok = step(&host, "misbehave", "ok", json!({}), &[]).await;
        assert_eq!(ok.outcome, Outcome::Success, "after {call}: {ok:?}");
    }
}

#[tokio::test]
async fn logs_are_capped_and_escaped() {
    let lim = Limits {
        max_log_bytes: 1000,
        max_log_line: 100,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(lim), &["misbehave"]).await;
    let r = step(
        &host,
        "misbehave",
        "log",
        json!({"lines": 50, "size": 300}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let kept: usize = r.logs.iter().map(|l| l.message.len()).sum();
    assert!(kept <= 1000, "kept {kept} bytes");
    assert!(
        r.logs
            .iter()
            .all(|l| l.message.len() <= 100 + '…'.len_utf8())
    );
    assert!(r.logs_dropped > 0);
    assert_eq!(r.logs.len() as u32 + r.logs_dropped, 50);
}

#[tokio::test]
async fn unknown_calls_and_plugins_are_rejected() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    let r = step(&host, "misbehave", "nope", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Error);
    assert!(r.error.unwrap().message.contains("has no call `nope`"));
    let r = step(&host, "ghost", "ok", json!({}), &[]).await;
    assert!(r.error.unwrap().message.contains("no plugin `ghost`"));
}

#[tokio::test]
async fn wasi_grants_nothing_and_stdout_goes_to_the_log() {
    assert!(
        std::env::var_os("PATH").is_some(),
        "the host process has an environment to leak"
    );
    let host = host_with(host_builder(), &["wasi-probe"]).await;
    let r = step(&host, "wasi-probe", "env", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output.unwrap(), json!({"env": [], "args": []}));

    let r = step(&host, "wasi-probe", "sockets", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let out = r.output.unwrap();
    assert_eq!(out["tcp"], "access-denied", "{out}");
    assert_ne!(out["lookup"], "granted", "{out}");

    let r = step(
        &host,
        "wasi-probe",
        "stdout",
        json!({"text": "hello\nfrom wasi\u{1b}[31m"}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let lines: Vec<(&str, &str)> = r
        .logs
        .iter()
        .map(|l| (l.level, l.message.as_str()))
        .collect();
    assert_eq!(
        lines,
        [("stdout", "hello"), ("stdout", "from wasi\\u{1b}[31m")]
    );
}

#[tokio::test]
async fn thousands_of_requests_stop_at_the_step_limit() {
    let server = courier_tests::TestServer::echo().await;
    let lim = Limits {
        max_requests_per_step: 100,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(lim), &["misbehave"]).await;
    for batch in [false, true] {
        let before = server.received().len();
        let r = step(
            &host,
            "misbehave",
            "flood",
            json!({"url": server.url("/f"), "count": 2000, "batch": batch}),
            &[],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let out = r.output.unwrap();
        assert_eq!(out["answered"], 100, "batch={batch}: {out}");
        let limited: u64 = out["failed"]
            .as_object()
            .unwrap()
            .iter()
            .filter(|(k, _)| k.starts_with("limit"))
            .map(|(_, v)| v.as_u64().unwrap())
            .sum();
        assert_eq!(limited, 1900, "batch={batch}: {out}");
        assert_eq!(
            server.received().len() - before,
            100,
            "the upstream saw only the allowed requests"
        );
    }
}

#[tokio::test]
async fn an_oversized_request_body_is_refused_before_sending() {
    let server = courier_tests::TestServer::echo().await;
    let lim = Limits {
        max_request_body_bytes: 1 << 20,
        ..Limits::default()
    };
    let host = host_with(host_builder().limits(lim), &["misbehave"]).await;
    let r = step(
        &host,
        "misbehave",
        "upload",
        json!({"url": server.url("/u"), "size": 2 << 20}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::MaxConnection, "{r:?}");
    assert_eq!(r.error.unwrap().kind, "limit");
    assert_eq!(server.connections(), 0);
    let r = step(
        &host,
        "misbehave",
        "upload",
        json!({"url": server.url("/u"), "size": 1000}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
}

#[tokio::test]
async fn a_reused_pool_slot_leaks_nothing_to_the_next_step() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    for i in 0..20 {
        canary_step(&host, i).await;
    }
}

/// Step `i` of `misbehave`'s `canary`: it leaves a secret in its instance's
/// memory and must find none left by an earlier step.
async fn canary_step(host: &Host, i: usize) {
    let r = step(
        host,
        "misbehave",
        "canary",
        json!({"value": format!("tenant-secret-{i}")}),
        &[],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.output.unwrap()["found"],
        "",
        "step {i} found a previous step's canary"
    );
}

#[tokio::test]
async fn limits_can_be_set_per_plugin() {
    let plugin_limits = courier_host::PluginPolicy {
        allowed_hosts: None,
        contract_drift: None,
        limits: Some(limits(300)),
    };
    let host = host_with(
        host_builder().plugin_policy("misbehave", plugin_limits),
        &["misbehave"],
    )
    .await;
    let r = step(&host, "misbehave", "spin", json!({}), &[]).await;
    assert_eq!(r.outcome, Outcome::Timeout, "{r:?}");
    assert!(
        r.duration_ms < 5_000,
        "the plugin's 300 ms deadline applied, not the host's 30 s: {r:?}"
    );

    let too_big = Limits {
        memory_bytes: 1 << 30,
        ..Limits::default()
    };
    let err = host_builder()
        .plugin_policy(
            "misbehave",
            courier_host::PluginPolicy {
                allowed_hosts: None,
                contract_drift: None,
                limits: Some(too_big),
            },
        )
        .build()
        .err()
        .expect("a plugin cannot get more memory than the engine's slots");
    let message = err.to_string();
    for part in [
        "plugin `misbehave`",
        "`limits.memory_bytes`",
        "exceeds the host-wide",
    ] {
        assert!(message.contains(part), "{part}: {err}");
    }
}

#[tokio::test]
async fn loading_is_bounded_and_rejects_garbage() {
    let small = courier_host::LoadLimits {
        max_component_bytes: 1000,
        ..Default::default()
    };
    let host = host_builder().load_limits(small).build().unwrap();
    let err = host
        .load_plugin_file(&courier_tests::plugin("misbehave"))
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("over the limit of 1000"), "{err}");

    let host = host_builder().build().unwrap();
    // Empty, a core module (not a component), not wasm at all.
    for garbage in [&b""[..], b"\0asm\x01\0\0\0", b"not wasm at all"] {
        let err = host
            .load_plugin(garbage)
            .await
            .expect_err("garbage must not load");
        assert!(err.to_string().starts_with("cannot load plugin"), "{err}");
    }
}

#[tokio::test]
async fn a_function_over_the_size_limit_is_refused_before_compiling() {
    let component = courier_tests::component_with_function(20_000);
    let limits = courier_host::LoadLimits {
        max_function_bytes: 64 << 10,
        ..Default::default()
    };
    let host = Host::builder().load_limits(limits).build().unwrap();
    let err = host
        .load_plugin(&component)
        .await
        .expect_err("over the limit")
        .to_string();
    assert!(
        err.contains("a function of") && err.contains("over the limit of 65536"),
        "{err}"
    );

    // Within the limit it compiles, and fails only where a plugin must export Courier's interface.
    let host = Host::builder().build().unwrap();
    let err = host
        .load_plugin(&component)
        .await
        .expect_err("not a plugin")
        .to_string();
    assert!(!err.contains("over the limit"), "{err}");
}

#[tokio::test]
async fn invalid_strings_and_lists_from_the_guest_cost_one_step() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    for (call, why) in [
        ("bad-string", "invalid utf-8"),
        ("huge-list", "out of bounds"),
    ] {
        let r = step(&host, "misbehave", call, json!({}), &[]).await;
        assert_eq!(
            r.outcome,
            Outcome::Error,
            "{call}: the host must refuse what it cannot lift: {r:?}"
        );
        assert!(r.output.is_none(), "{call}: {r:?}");
        let message = &r.error.as_ref().unwrap().message;
        assert!(
            message.contains(why) && !message.contains("backtrace"),
            "{call}: {message}"
        );
        let ok = step(&host, "misbehave", "ok", json!({}), &[]).await;
        assert_eq!(ok.outcome, Outcome::Success, "after {call}: {ok:?}");
    }
}

/// Waits until `host` holds `n` component instances while no step runs
/// (its spares), and returns how many it holds then.
async fn idle_instances(host: &Host, n: u64) -> u64 {
    for _ in 0..200 {
        let held = host.pool_usage().component_instances.in_use;
        if held == n {
            return held;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    host.pool_usage().component_instances.in_use
}

/// With spare instances on, steps start on instances made ahead of them:
/// one is ready after the load and again after each step, none holds a
/// previous step's state (each spare has run no call), and the host holds
/// no more spares than it may, whatever the number of plugins.
#[tokio::test]
async fn spare_instances_are_made_ahead_and_leak_nothing() {
    let concurrency = courier_host::ConcurrencyLimits {
        spare_instances: 1,
        ..courier_host::ConcurrencyLimits::default()
    };
    let host = host_with(
        host_builder().concurrency(concurrency),
        &["misbehave", "http-request"],
    )
    .await;
    // One spare in all: for whichever plugin was loaded first.
    assert_eq!(idle_instances(&host, 1).await, 1, "a spare after the load");
    for i in 0..20 {
        canary_step(&host, i).await;
        assert_eq!(idle_instances(&host, 1).await, 1, "a spare after step {i}");
    }
    // Without spares nothing is held between steps.
    let host = host_with(host_builder(), &["misbehave"]).await;
    step(&host, "misbehave", "canary", json!({"value": "x"}), &[]).await;
    assert_eq!(idle_instances(&host, 0).await, 0);
}
