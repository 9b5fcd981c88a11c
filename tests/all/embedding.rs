//! The embedder's API: connections built in code with typed constructors,
//! bound once with `Host::bind_connection` and named by many steps.

use courier_host::{
    Auth, Connection, ConnectionConfig, FailureKind, Host, HostError, StepConnection, StepRequest,
    StepResult, TlsSettings,
};
use courier_tests::{Reply, TestPki, TestServer, host_builder, host_with, scratch_dir};
use serde_json::json;

const TOKEN: &str = "embedded-bearer-token-1234";

async fn run(host: &Host, tenant: &str, connection: &Connection, url: &str) -> StepResult {
    run_with(host, tenant, connection.clone(), url).await
}

async fn run_with(
    host: &Host,
    tenant: &str,
    connection: impl Into<StepConnection>,
    url: &str,
) -> StepResult {
    host.run_step(StepRequest {
        tenant: tenant.into(),
        plugin: "http-request".into(),
        call: "request".into(),
        input: json!({ "url": url }),
        connections: vec![connection.into()],
    })
    .await
}

/// An echo server, a host with `plugins`, and a bearer connection to the
/// server built in code and bound for tenant `acme` to `http-request`.
async fn bound_bearer(plugins: &[&str]) -> (TestServer, Host, Connection) {
    let server = TestServer::echo().await;
    let host = host_with(host_builder(), plugins).await;
    let config = ConnectionConfig::new("default", Auth::bearer(TOKEN)).base_url(server.url(""));
    let connection = host
        .bind_connection("acme", "http-request", config)
        .unwrap();
    (server, host, connection)
}

/// A bearer connection built in code and bound once serves many steps: the
/// upstream gets the token every time, the steps never see it.
#[tokio::test]
async fn a_connection_built_in_code_and_bound_once_serves_every_step() {
    let (server, host, connection) = bound_bearer(&["http-request"]).await;
    assert_eq!(
        (connection.name(), connection.tenant(), connection.plugin()),
        ("default", "acme", "http-request")
    );
    for i in 0..3 {
        let r = run(&host, "acme", &connection, &format!("/n/{i}")).await;
        assert!(r.is_success(), "{r:?}");
        let text = serde_json::to_string(&r).unwrap();
        assert!(!text.contains(TOKEN), "{text}");
    }
    let received = server.received();
    assert_eq!(received.len(), 3);
    for r in &received {
        assert_eq!(r.header("authorization"), Some(&*format!("Bearer {TOKEN}")));
    }
}

/// A bound connection is refused by a step of another tenant or another
/// plugin, before anything is sent.
#[tokio::test]
async fn a_bound_connection_stays_with_its_tenant_and_plugin() {
    let (server, host, connection) = bound_bearer(&["http-request", "misbehave"]).await;
    let r = run(&host, "globex", &connection, "/x").await;
    assert_eq!(r.failure_kind(), Some(FailureKind::InvalidStep), "{r:?}");
    assert!(
        r.error.unwrap().message.contains("another tenant"),
        "the step names why"
    );
    let r = host
        .run_step(StepRequest {
            tenant: "acme".into(),
            plugin: "misbehave".into(),
            call: "ok".into(),
            input: json!({}),
            connections: vec![connection.into()],
        })
        .await;
    assert_eq!(r.failure_kind(), Some(FailureKind::InvalidStep), "{r:?}");
    assert!(
        r.error
            .unwrap()
            .message
            .contains("bound to plugin `http-request`")
    );
    assert!(server.received().is_empty());
}

/// Binding checks everything at once and names what is wrong.
#[tokio::test]
async fn binding_errors_name_the_plugin_the_connection_or_the_secret() {
    let host = host_with(host_builder(), &["http-request"]).await;
    let bind = |plugin: &str, config: ConnectionConfig| match host
        .bind_connection("acme", plugin, config)
    {
        Err(HostError::Connection(message)) => message,
        other => panic!("binding should fail: {other:?}"),
    };
    let ok = || ConnectionConfig::new("default", Auth::bearer(TOKEN)).base_url("https://a.test");
    assert!(bind("nope", ok()).contains("no plugin `nope`"));
    assert!(
        bind(
            "http-request",
            ConnectionConfig::new("other", Auth::bearer(TOKEN))
        )
        .contains("declares no connection `other`")
    );
    let short = ConnectionConfig::new("default", Auth::bearer("short")).base_url("https://a.test");
    assert!(bind("http-request", short).contains("secret `token` is shorter than 8"));
    let no_origin = ConnectionConfig::new("default", Auth::bearer(TOKEN));
    assert!(bind("http-request", no_origin).contains("base_url"));
}

/// What binding reads is read once: a bound connection keeps the CA it was
/// bound with after the file is gone, where a connection file bound by each
/// step reads it again (and fails without it).
#[tokio::test]
async fn a_bound_connection_keeps_what_it_read_when_it_was_bound() {
    let pki = TestPki::new("embedded");
    let server = TestServer::start_tls(pki.server_config(false), |_| {
        Reply::json(200, json!({"ok": true}))
    })
    .await;
    let dir = scratch_dir("embedding-ca");
    let ca = dir.join("ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let host = host_with(host_builder(), &["http-request"]).await;
    let config = ConnectionConfig::new("default", Auth::none())
        .base_url(server.https_url("/"))
        .tls(TlsSettings {
            ca_file: Some(ca.clone()),
            ca_only: true,
            ..TlsSettings::default()
        });
    let connection = host
        .bind_connection("acme", "http-request", config.clone())
        .unwrap();
    std::fs::remove_file(&ca).unwrap();
    let r = run(&host, "acme", &connection, "/x").await;
    assert!(r.is_success(), "{r:?}");
    let r = run_with(&host, "acme", config, "/x").await;
    assert_eq!(r.failure_kind(), Some(FailureKind::InvalidStep), "{r:?}");
    assert!(r.error.unwrap().message.contains("ca.pem"));
    assert_eq!(server.received().len(), 1);
}

/// After the plugin is loaded again, a connection bound to the old load is
/// bound anew to the new declaration by the steps that name it.
#[tokio::test]
async fn a_bound_connection_follows_a_reloaded_plugin() {
    let (server, host, connection) = bound_bearer(&["http-request"]).await;
    host.load_plugin_file(&courier_tests::plugin("http-request"))
        .await
        .unwrap();
    let r = run(&host, "acme", &connection, "/again").await;
    assert!(r.is_success(), "{r:?}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some(&*format!("Bearer {TOKEN}"))
    );
}
