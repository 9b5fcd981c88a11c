//! Host-wide concurrency limits: a flood is capped per tenant and refused
//! fast beyond a short bounded wait, while other tenants keep running.

use std::time::{Duration, Instant};

use courier_host::{ConcurrencyLimits, Limits, Outcome, StepRequest};
use courier_tests::{host_builder, host_with};
use serde_json::json;

#[tokio::test]
async fn a_flooding_tenant_is_capped_and_others_still_run() {
    let concurrency = ConcurrencyLimits {
        max_steps_per_tenant: 2,
        max_queued_per_tenant: 1,
        max_wait: Duration::from_millis(200),
        ..ConcurrencyLimits::default()
    };
    let limits = Limits {
        step_deadline: Duration::from_millis(1500),
        ..Limits::default()
    };
    let host = host_with(
        host_builder().concurrency(concurrency).limits(limits),
        &["misbehave"],
    )
    .await;
    let run = |tenant: &str, call: &str| {
        let host = host.clone();
        let request = StepRequest {
            tenant: tenant.into(),
            plugin: "misbehave".into(),
            call: call.into(),
            input: json!({}),
            connections: vec![],
        };
        tokio::spawn(async move {
            let r = host.run_step(request).await;
            (r, Instant::now())
        })
    };
    let flood: Vec<_> = (0..4).map(|_| run("tenant-a", "spin")).collect();
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (other, other_done) = run("tenant-b", "ok").await.unwrap();
    assert_eq!(
        other.outcome,
        Outcome::Success,
        "another tenant is not blocked: {other:?}"
    );

    let mut outcomes = vec![];
    for handle in flood {
        let (r, done) = handle.await.unwrap();
        match r.outcome {
            Outcome::MaxConnection => {
                assert_eq!(r.error.as_ref().unwrap().kind, "limit");
                assert!(
                    r.duration_ms < 1000,
                    "a refused step ends fast, it does not hang: {r:?}"
                );
            }
            Outcome::Timeout => assert!(
                done > other_done,
                "tenant B finished while A's steps still ran"
            ),
            other => panic!("unexpected outcome {other:?}: {r:?}"),
        }
        outcomes.push(r.outcome);
    }
    let count = |o: Outcome| outcomes.iter().filter(|x| **x == o).count();
    assert_eq!(
        count(Outcome::Timeout),
        2,
        "two of tenant A's steps ran to the deadline: {outcomes:?}"
    );
    assert_eq!(
        count(Outcome::MaxConnection),
        2,
        "the rest were refused: {outcomes:?}"
    );
}

#[tokio::test]
async fn a_tenants_busy_steps_take_turns_on_its_compute_slots() {
    // One compute slot per tenant: tenant A's busy step holds it, so A's next
    // step waits for its turn (one quantum) while tenant B's runs at once.
    let concurrency = ConcurrencyLimits {
        compute_slots_per_tenant: 1,
        ..ConcurrencyLimits::default()
    };
    let limits = Limits {
        step_deadline: Duration::from_millis(1500),
        ..Limits::default()
    };
    let host = host_with(
        host_builder().concurrency(concurrency).limits(limits),
        &["misbehave"],
    )
    .await;
    let run = |tenant: &str, call: &str| {
        let host = host.clone();
        let request = StepRequest {
            tenant: tenant.into(),
            plugin: "misbehave".into(),
            call: call.into(),
            input: json!({}),
            connections: vec![],
        };
        tokio::spawn(async move { host.run_step(request).await })
    };
    let busy = run("tenant-a", "spin");
    tokio::time::sleep(Duration::from_millis(30)).await;
    let (same_tenant, other_tenant) = (run("tenant-a", "ok"), run("tenant-b", "ok"));

    let other = other_tenant.await.unwrap();
    assert_eq!(other.outcome, Outcome::Success, "{other:?}");
    assert!(
        !busy.is_finished(),
        "tenant B ran while A's busy step held A's slot"
    );
    let same = same_tenant.await.unwrap();
    assert_eq!(same.outcome, Outcome::Success, "{same:?}");
    assert!(
        same.duration_ms >= 60,
        "A's second step waited for A's slot: {same:?}"
    );
    assert!(
        !busy.is_finished(),
        "and got it from the busy step before that one ended"
    );
    assert_eq!(busy.await.unwrap().outcome, Outcome::Timeout);
}

#[tokio::test]
async fn a_plugin_policys_budgets_apply_to_its_steps_only() {
    use courier_host::PluginPolicy;
    use courier_tests::{Reply, TestServer};

    let server = TestServer::start(|_| Reply {
        status: 200,
        headers: vec![],
        body: vec![b'x'; 4096],
    })
    .await;
    let small = Limits {
        max_response_bytes: 1000,
        max_requests_per_step: 1,
        ..Limits::default()
    };
    let builder = host_builder().plugin_policy(
        "misbehave",
        PluginPolicy {
            allowed_hosts: None,
            contract_drift: None,
            limits: Some(small),
        },
    );
    let host = host_with(builder, &["misbehave", "http-request"]).await;
    let url = server.url("/big");
    let run = |plugin: &str, call: &str, input: serde_json::Value| {
        host.run_step(StepRequest {
            tenant: "t".into(),
            plugin: plugin.into(),
            call: call.into(),
            input,
            connections: vec![],
        })
    };

    let r = run("misbehave", "send", json!({"url": url})).await;
    assert_eq!(
        r.error.as_ref().map(|e| e.kind.as_str()),
        Some("too-large"),
        "the plugin's 1000-byte response budget applied: {r:?}"
    );
    let r = run("misbehave", "flood", json!({"url": url, "count": 3})).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        r.requests.len(),
        1,
        "the plugin's one-request budget applied: {r:?}"
    );
    let out = r.output.unwrap();
    let limited: u64 = out["failed"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("limit"))
        .map(|(_, v)| v.as_u64().unwrap())
        .sum();
    assert_eq!(limited, 2, "{out}");

    let r = run("http-request", "request", json!({"url": url})).await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "another plugin keeps the host-wide budgets: {r:?}"
    );
    assert_eq!(r.output.unwrap()["body"].as_str().map(str::len), Some(4096));
}

#[tokio::test]
async fn a_plugin_budget_the_host_cannot_honour_fails_the_build() {
    use courier_host::{HostError, PluginPolicy};

    let host_wide = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let policy = |limits| PluginPolicy {
        allowed_hosts: None,
        contract_drift: None,
        limits: Some(limits),
    };
    // A valid policy of another plugin: the error names the one at fault.
    let modest = Limits {
        memory_bytes: 16 << 20,
        ..Limits::default()
    };
    let build = |plugin_limits: Limits| {
        host_builder()
            .limits(host_wide.clone())
            .plugin_policy("greedy", policy(plugin_limits))
            .plugin_policy("modest", policy(modest.clone()))
            .build()
    };

    // Up to the host-wide memory is fine.
    let equal = Limits {
        memory_bytes: 32 << 20,
        ..Limits::default()
    };
    let ok = host_builder()
        .limits(host_wide.clone())
        .plugin_policy("greedy", policy(equal))
        .build();
    assert!(ok.is_ok(), "{:?}", ok.err());

    // More memory than the host-wide limit; budgets past the clock.
    for (limits, field) in [
        (
            Limits {
                memory_bytes: (32 << 20) + 1,
                ..Limits::default()
            },
            "`limits.memory_bytes`",
        ),
        (
            Limits {
                memory_bytes: 1 << 20,
                step_deadline: Duration::MAX,
                ..Limits::default()
            },
            "`limits.step_deadline`",
        ),
        (
            Limits {
                memory_bytes: 1 << 20,
                max_request_timeout: Duration::MAX,
                ..Limits::default()
            },
            "`limits.max_request_timeout`",
        ),
    ] {
        match build(limits) {
            Err(HostError::Config(message)) => {
                assert!(message.contains("plugin `greedy`"), "{message}");
                assert!(message.contains(field), "{field}: {message}");
            }
            Err(other) => panic!("{field}: not a configuration error: {other}"),
            Ok(_) => panic!("{field}: the host built"),
        }
    }

    // A host-wide budget past the clock is refused too.
    let err = host_builder()
        .limits(Limits {
            request_timeout: Duration::MAX,
            ..Limits::default()
        })
        .build()
        .err()
        .expect("a budget past the clock is refused");
    assert!(
        err.to_string().contains("`limits.request_timeout`"),
        "{err}"
    );
}
