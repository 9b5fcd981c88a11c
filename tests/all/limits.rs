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
