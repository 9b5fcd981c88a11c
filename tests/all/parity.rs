//! The Python and JavaScript SDKs declare what the Rust SDK declares: the
//! `parity`, `parity-py` and `parity-js` fixtures declare every auth scheme
//! and every `connection-spec` field, each with its language's SDK; the host
//! reads the three manifests alike (the Rust SDK, an independent
//! implementation, is the oracle), and a step on the API key and custom
//! connections of each one reaches a real server with the secret where it
//! was declared, and never hands it back.

use courier_host::{Host, Outcome};
use courier_tests::{Received, TestServer, host_builder, host_with};
use serde_json::{Value, json};

use crate::auth::{CANARY, assert_no_leak};
use crate::step;

/// The fixtures, the Rust oracle first.
const FIXTURES: [&str; 3] = ["parity", "parity-py", "parity-js"];

/// A fixture's manifest as the host keeps it, without what differs by
/// design: the plugin's name and the calls' JSON Schemas (the Rust SDK
/// derives them from types, the others take them as written).
fn declared(host: &Host, plugin: &str) -> Value {
    let manifest = host.manifest(plugin).expect("the fixture is loaded");
    let mut manifest = serde_json::to_value(&*manifest).unwrap();
    let object = manifest.as_object_mut().unwrap();
    object.remove("name");
    for call in object["calls"].as_array_mut().unwrap() {
        let call = call.as_object_mut().unwrap();
        call.remove("input_schema");
        call.remove("output_schema");
    }
    manifest
}

#[tokio::test]
async fn the_three_sdks_declare_the_same_manifest() {
    let host = host_with(host_builder(), &FIXTURES).await;
    let oracle = declared(&host, "parity");
    // The oracle declares what the fixture says: every scheme, every field.
    let connections = oracle["connections"].as_array().unwrap();
    let schemes: Vec<&str> = connections
        .iter()
        .map(|c| c["auth"]["scheme"].as_str().unwrap())
        .collect();
    for scheme in [
        "none",
        "operator-defined",
        "bearer",
        "basic",
        "api-key",
        "custom",
        "oauth2-client-credentials",
        "oauth2-refresh-token",
        "oauth2-password",
        "jwt",
        "client-certificate",
    ] {
        assert!(
            schemes.contains(&scheme),
            "{scheme} missing from {schemes:?}"
        );
    }
    let plain = &connections[0];
    assert_eq!(plain["auth_origins"].as_array().unwrap().len(), 2);
    assert_eq!(plain["shared_headers"].as_array().unwrap().len(), 2);
    assert_eq!(plain["shared_query"], json!([["format", "json"]]));
    assert_eq!(plain["verify_call"], "fetch");
    assert_ne!(plain["rate"], Value::Null);
    for plugin in ["parity-py", "parity-js"] {
        assert_eq!(
            declared(&host, plugin),
            oracle,
            "{plugin} declares otherwise"
        );
    }
}

/// The only request `server` received.
fn only(server: &TestServer) -> Received {
    let received = server.received();
    assert_eq!(received.len(), 1, "{received:?}");
    received.into_iter().next().unwrap()
}

/// Runs `fetch` of `plugin` on `connection` (with `secrets`, TOML lines)
/// against `server`, checks it succeeded without handing a secret back, and
/// returns what the server received.
async fn fetch(
    host: &Host,
    plugin: &str,
    connection: &str,
    secrets: &str,
    input: Value,
) -> Received {
    let server = TestServer::echo().await;
    let base = server.url("");
    let file = format!("connection = '{connection}'\nbase_url = '{base}'\n[secrets]\n{secrets}");
    let mut input = input;
    input["connection"] = json!(connection);
    let r = step(host, plugin, "fetch", input, &[&file]).await;
    assert_eq!(
        r.outcome,
        Outcome::Success,
        "{plugin} on {connection}: {r:?}"
    );
    assert_eq!(r.output.as_ref().unwrap()["status"], 200, "{r:?}");
    assert_no_leak(&r, &[CANARY]);
    only(&server)
}

#[tokio::test]
async fn each_sdk_s_api_key_and_custom_placements_reach_the_upstream_only() {
    let host = host_with(host_builder(), &FIXTURES).await;
    let key = format!("key = '''{CANARY}'''");
    // The host reads a connection file without `auth` before it knows the
    // plugin's scheme: it takes only secret names a built-in scheme uses.
    let both = format!("key = 'sig-Qx7-5mA2'\ntoken = '''{CANARY}'''");
    for plugin in FIXTURES {
        let got = fetch(&host, plugin, "key-header", &key, json!({"path": "/h"})).await;
        assert_eq!(got.header("x-api-key"), Some(CANARY), "{plugin}");

        let got = fetch(&host, plugin, "key-query", &key, json!({"path": "/q?a=1"})).await;
        assert_eq!(
            got.query(),
            [("a".into(), "1".into()), ("api_key".into(), CANARY.into())],
            "{plugin}"
        );

        let input = json!({"path": "/c", "json": {"n": 1}});
        let got = fetch(&host, plugin, "custom", &both, input).await;
        assert_eq!(got.header("x-sig"), Some("v1:sig-Qx7-5mA2"), "{plugin}");
        assert_eq!(got.query(), [("token".into(), CANARY.into())], "{plugin}");
        let body: Value = serde_json::from_slice(&got.body).unwrap();
        assert_eq!(
            body,
            json!({"n": 1, "auth": format!("Key {CANARY}")}),
            "{plugin}"
        );
    }
}
