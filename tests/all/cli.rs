//! The `courier` CLI contract: `run` prints one step result as JSON and exits
//! 0 only for `success`; `inspect` prints the manifest.

use std::path::PathBuf;
use std::process::Command;

use courier_tests::{Reply, TestServer, plugin, target_dir};
use serde_json::json;

/// The built `courier` binary, with the tests' compile cache.
pub(crate) fn courier() -> Command {
    let bin: PathBuf = target_dir().join("debug/courier");
    assert!(
        bin.exists(),
        "{} is missing: build it with `cargo build -p courier-host`",
        bin.display()
    );
    let mut cmd = Command::new(bin);
    cmd.env("COURIER_CACHE_DIR", target_dir().join("courier-test-cache"));
    cmd
}

async fn run(args: &[&str]) -> (i32, serde_json::Value) {
    run_with_env(args, &[]).await
}

/// Runs the CLI with extra environment variables.
async fn run_with_env(args: &[&str], env: &[(&str, &str)]) -> (i32, serde_json::Value) {
    let out = tokio::task::spawn_blocking({
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move || courier().args(&args).envs(env).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    let value = serde_json::from_str(&stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {stdout}\nstderr: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.code().unwrap(), value)
}

#[tokio::test]
async fn run_prints_the_step_result_and_exit_code() {
    let server = TestServer::start(|r| {
        if r.uri == "/ok" {
            Reply::json(200, json!({"fine": true}))
        } else {
            Reply::json(500, json!({}))
        }
    })
    .await;
    let p = plugin("http-request");
    let p = p.to_str().unwrap();
    let ok_input = json!({"url": server.url("/ok")}).to_string();
    let (code, result) = run(&[
        "run",
        p,
        "request",
        "--input",
        &ok_input,
        "--allow-network",
        "127.0.0.1/32",
    ])
    .await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(result["outcome"], "success");
    assert_eq!(result["output"]["body"]["fine"], true);
    assert_eq!(result["requests"][0]["method"], "GET");
    assert_eq!(result["requests"][0]["status"], 200);
    assert!(result["duration_ms"].is_u64());

    let bad_input = json!({"url": server.url("/fail")}).to_string();
    let (code, result) = run(&[
        "run",
        p,
        "request",
        "--input",
        &bad_input,
        "--allow-network",
        "127.0.0.1/32",
    ])
    .await;
    assert_ne!(code, 0);
    assert_eq!(result["outcome"], "http-error");

    let (code, result) = run(&["run", p, "request", "--input", &ok_input]).await;
    assert_ne!(code, 0);
    assert_eq!(
        result["outcome"], "denied",
        "loopback needs --allow-network: {result}"
    );
}

#[tokio::test]
async fn run_binds_a_connection_file() {
    let server = TestServer::echo().await;
    let dir = std::env::temp_dir().join(format!("courier-cli-conn-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("conn.toml");
    std::fs::write(
        &file,
        format!("connection = 'default'\nbase_url = '{}'\nauth = 'bearer'\n[secrets]\ntoken = 'cli-secret-123'\n", server.url("/")),
    )
    .unwrap();
    let p = plugin("http-request");
    let conn = format!("default={}", file.display());
    let (code, result) = run(&[
        "run",
        p.to_str().unwrap(),
        "request",
        "--input",
        r#"{"url":"/hello"}"#,
        "--connection",
        &conn,
        "--allow-network",
        "127.0.0.1/32",
    ])
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        server.received()[0].header("authorization"),
        Some("Bearer cli-secret-123")
    );
    assert!(!result.to_string().contains("cli-secret-123"), "{result}");
}

#[tokio::test]
async fn inspect_prints_the_manifest() {
    let out = courier()
        .args(["inspect", plugin("http-request").to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(manifest["name"], "http-request");
    assert_eq!(manifest["connections"][0]["name"], "default");
    assert_eq!(
        manifest["connections"][0]["auth"]["scheme"],
        "operator-defined"
    );
    let call = &manifest["calls"][0];
    assert_eq!(call["name"], "request");
    assert!(
        call["input_schema"]["properties"]["url"].is_object(),
        "{call}"
    );
}

#[tokio::test]
async fn system_roots_are_trusted_only_when_the_connection_asks() {
    // The platform's store is replaced by SSL_CERT_FILE in the child process,
    // so the test trusts its own CA without touching the machine.
    let pki = courier_tests::TestPki::new("system-roots");
    let server = TestServer::start_tls(pki.server_config(false), |_| {
        Reply::json(200, json!({"ok": true}))
    })
    .await;
    let dir = courier_tests::scratch_dir("cli-system-roots");
    let ca = dir.join("system-ca.pem");
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let p = plugin("http-request");
    let mut outcomes = vec![];
    for system_roots in [true, false] {
        let file = dir.join(format!("conn-{system_roots}.toml"));
        let tls = if system_roots {
            "[tls]\nsystem_roots = true\n"
        } else {
            ""
        };
        std::fs::write(
            &file,
            format!(
                "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n{tls}",
                server.https_url("/")
            ),
        )
        .unwrap();
        let conn = format!("default={}", file.display());
        let args = [
            "run",
            p.to_str().unwrap(),
            "request",
            "--input",
            r#"{"url":"/sys"}"#,
            "--connection",
            &conn,
            "--allow-network",
            "127.0.0.1/32",
        ];
        let (_, result) = run_with_env(&args, &[("SSL_CERT_FILE", ca.to_str().unwrap())]).await;
        outcomes.push((result["outcome"].clone(), result["error"]["kind"].clone()));
    }
    assert_eq!(outcomes[0], (json!("success"), json!(null)), "{outcomes:?}");
    assert_eq!(
        outcomes[1],
        (json!("error"), json!("tls")),
        "without system_roots the CA is unknown: {outcomes:?}"
    );
}

#[tokio::test]
async fn proxy_settings_in_the_environment_are_ignored() {
    let (server, proxy) = (TestServer::echo().await, TestServer::echo().await);
    let proxy_url = proxy.url("/");
    let env: Vec<(&str, &str)> = [
        "HTTP_PROXY",
        "http_proxy",
        "HTTPS_PROXY",
        "https_proxy",
        "ALL_PROXY",
        "all_proxy",
    ]
    .into_iter()
    .map(|name| (name, proxy_url.as_str()))
    .collect();
    let input = json!({"url": server.url("/direct")}).to_string();
    let p = plugin("http-request");
    let (code, result) = run_with_env(
        &[
            "run",
            p.to_str().unwrap(),
            "request",
            "--input",
            &input,
            "--allow-network",
            "127.0.0.1/32",
        ],
        &env,
    )
    .await;
    assert_eq!(code, 0, "{result}");
    assert_eq!(
        server.received().len(),
        1,
        "the request went straight to its target"
    );
    assert_eq!(
        proxy.connections(),
        0,
        "no proxy taken from the environment"
    );
}

#[tokio::test]
async fn no_http2_keeps_https_on_http1() {
    let pki = courier_tests::TestPki::new("cli-http2");
    let server = TestServer::start_tls(pki.server_config(false), |_| {
        Reply::json(200, json!({"ok": true}))
    })
    .await;
    let dir = courier_tests::scratch_dir("cli-http2");
    let (ca, file) = (dir.join("ca.pem"), dir.join("conn.toml"));
    std::fs::write(&ca, pki.ca_pem()).unwrap();
    let text = format!(
        "connection = 'default'\nbase_url = '{}'\nauth = 'none'\n[tls]\nca_file = '{}'\n",
        server.https_url("/"),
        ca.display()
    );
    std::fs::write(&file, text).unwrap();
    let (p, conn) = (
        plugin("http-request"),
        format!("default={}", file.display()),
    );
    let args = [
        "run",
        p.to_str().unwrap(),
        "request",
        "--input",
        r#"{"url":"/v"}"#,
        "--connection",
        &conn,
        "--allow-network",
        "127.0.0.1/32",
    ];
    for extra in [&[][..], &["--no-http2"][..]] {
        let (code, result) = run(&[&args[..], extra].concat()).await;
        assert_eq!(code, 0, "{result}");
    }
    let versions: Vec<http::Version> = server.received().iter().map(|r| r.version).collect();
    assert_eq!(versions, [http::Version::HTTP_2, http::Version::HTTP_11]);
}
