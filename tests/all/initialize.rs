//! `courier initialize`: the output schema inferred from one real run of a
//! call (or from a sample), checked with an independent validator (the
//! `jsonschema` crate) against the output it came from and against outputs
//! it must refuse.

use courier_tests::{Reply, TestServer, plugin, scratch_dir};
use serde_json::{Value, json};

use crate::cli::courier;

/// Runs the CLI off the test's runtime (the local server runs on it).
async fn cli(args: Vec<String>) -> std::process::Output {
    tokio::task::spawn_blocking(move || courier().args(args).output().unwrap())
        .await
        .unwrap()
}

fn step_args(command: &str, url: &str) -> Vec<String> {
    let input = json!({ "url": url }).to_string();
    let plugin = plugin("http-request").display().to_string();
    [
        command,
        &plugin,
        "request",
        "--allow-network",
        "127.0.0.1/32",
        "--input",
        &input,
    ]
    .map(str::to_owned)
    .to_vec()
}

#[tokio::test]
async fn the_schema_of_one_run_holds_its_output_and_refuses_other_shapes() {
    let server = TestServer::start(|_| {
        Reply::json(
            200,
            json!({"object": "list", "has_more": false, "data": [
                {"id": "cus_1", "email": "a@x.test", "balance": 0, "metadata": {"tier": "gold"}},
                {"id": "cus_2", "email": null, "balance": 1250}
            ]}),
        )
    })
    .await;
    let url = server.url("/v1/customers");
    let out = scratch_dir("initialize").join("request.output.json");
    let mut args = step_args("initialize", &url);
    args.extend(["--out".into(), out.display().to_string()]);
    let made = cli(args).await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("a valid JSON Schema");

    let ran = cli(step_args("run", &url)).await;
    let result: Value = serde_json::from_slice(&ran.stdout).unwrap();
    let output = result["output"].clone();
    assert!(validator.is_valid(&output), "{schema}");
    let customer = &schema["properties"]["body"]["properties"]["data"]["items"];
    assert_eq!(customer["required"], json!(["balance", "email", "id"]));
    for (pointer, other) in [
        ("/body/has_more", json!("no")),
        ("/body/data/0/id", json!(1)),
        ("/body/data/1/balance", json!("12.50")),
        ("/status", json!("200")),
    ] {
        let mut changed = output.clone();
        *changed.pointer_mut(pointer).unwrap() = other;
        assert!(
            !validator.is_valid(&changed),
            "{pointer} changed must be refused"
        );
    }
    let mut without = output.clone();
    without["body"]["data"][0]
        .as_object_mut()
        .unwrap()
        .remove("email");
    assert!(
        !validator.is_valid(&without),
        "a key every customer had is required"
    );
}

#[tokio::test]
async fn a_sample_works_too_and_a_failed_call_is_named() {
    let dir = scratch_dir("initialize-sample");
    let sample = dir.join("sample.json");
    std::fs::write(&sample, r#"{"ok": true, "channel": "C1", "ts": "1.2"}"#).unwrap();
    let mut args = step_args("initialize", "http://127.0.0.1:9/");
    args.extend(["--sample".into(), sample.display().to_string()]);
    let made = cli(args).await;
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let schema: Value = serde_json::from_slice(&made.stdout).unwrap();
    assert_eq!(schema["properties"]["ok"]["type"], "boolean");
    assert_eq!(schema["required"], json!(["channel", "ok", "ts"]));

    let server = TestServer::start(|_| Reply::json(500, json!({"error": "boom"}))).await;
    let failed = cli(step_args("initialize", &server.url("/x"))).await;
    assert_eq!(failed.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        stderr.contains("did not succeed") && stderr.contains("http-error"),
        "{stderr}"
    );
}
