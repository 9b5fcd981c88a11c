//! Contract drift: a step's output checked against the output schema its
//! call declares (`misbehave`'s `drift` call declares `id` a string and
//! returns whatever `id` it is given). The oracle for a mismatch is the
//! schema text the plugin declares, read back from its manifest.

use courier_host::{ContractDrift, FailureKind, Host, Outcome, PluginPolicy};
use courier_tests::{host_builder, host_with};
use serde_json::json;

use crate::step;

async fn drift(host: &Host, id: serde_json::Value) -> courier_host::StepResult {
    step(host, "misbehave", "drift", json!({ "id": id }), &[]).await
}

#[tokio::test]
async fn an_output_that_keeps_the_contract_is_not_flagged() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    let declared = &host.manifest("misbehave").unwrap().calls;
    let call = declared.iter().find(|c| c.name == "drift").unwrap();
    assert_eq!(call.output_schema["properties"]["id"]["type"], "string");
    let r = drift(&host, json!("cus_123")).await;
    assert!(r.is_success(), "{r:?}");
    assert!(r.contract_drift.is_empty(), "{r:?}");
    let text = serde_json::to_value(&r).unwrap();
    assert!(
        text.get("contract_drift").is_none(),
        "absent when it matches"
    );
}

#[tokio::test]
async fn drift_is_recorded_by_default_and_the_step_stands() {
    let host = host_with(host_builder(), &["misbehave"]).await;
    let r = drift(&host, json!(42)).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(r.output, Some(json!({"id": 42})));
    assert_eq!(r.contract_drift.len(), 1, "{r:?}");
    assert!(r.contract_drift[0].starts_with("/id:"), "{r:?}");
    assert!(r.contract_drift[0].contains("string"), "{r:?}");
    let text = serde_json::to_value(&r).unwrap();
    assert_eq!(text["contract_drift"][0], r.contract_drift[0].as_str());
}

#[tokio::test]
async fn an_operator_can_make_drift_fail_the_step_host_wide_or_per_plugin() {
    let strict = host_with(
        host_builder().contract_drift(ContractDrift::Fail),
        &["misbehave"],
    )
    .await;
    let r = drift(&strict, json!([1, 2])).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.failure_kind(), Some(FailureKind::ContractDrift));
    assert!(r.error.unwrap().message.contains("/id"));
    assert_eq!(r.output, Some(json!({"id": [1, 2]})), "kept for inspection");
    assert!(drift(&strict, json!("ok")).await.is_success());

    let lenient_for_misbehave = host_with(
        host_builder()
            .contract_drift(ContractDrift::Fail)
            .plugin_policy(
                "misbehave",
                PluginPolicy {
                    contract_drift: Some(ContractDrift::Record),
                    ..PluginPolicy::default()
                },
            ),
        &["misbehave"],
    )
    .await;
    let r = drift(&lenient_for_misbehave, json!(7)).await;
    assert!(r.is_success(), "{r:?}");
    assert_eq!(r.contract_drift.len(), 1);
}

/// The bundled generic plugin keeps its own contract for JSON, text and
/// binary responses.
#[tokio::test]
async fn the_http_request_plugin_keeps_its_contract() {
    let server = courier_tests::TestServer::start(|r| {
        let (content_type, body) = match r.uri.as_str() {
            "/json" => ("application/json", br#"{"a": [1, {"b": null}]}"#.to_vec()),
            "/bytes" => ("application/octet-stream", vec![0, 159, 146, 150]),
            _ => ("text/plain", b"plain text".to_vec()),
        };
        let headers = vec![("content-type".into(), content_type.into())];
        courier_tests::Reply {
            status: 200,
            headers,
            body,
        }
    })
    .await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let manifest = host.manifest("http-request").unwrap();
    let declared = &manifest.calls[0].output_schema;
    assert!(declared["properties"]["status"].is_object(), "{declared}");
    for path in ["/json", "/bytes", "/text"] {
        let input = json!({"url": server.url(path), "method": "POST", "body": {"x": 1}});
        let r = step(&host, "http-request", "request", input, &[]).await;
        assert!(r.is_success(), "{r:?}");
        assert!(
            r.contract_drift.is_empty(),
            "{path}: {:?}",
            r.contract_drift
        );
    }
}
