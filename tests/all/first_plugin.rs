//! A plugin author's first steps: `courier new`, the crate's own `cargo
//! test`, `courier build` and `courier run` of the built component, and
//! `docs/first-plugin.md` run exactly as written (it ends recording a case
//! with `courier test --record` and replaying it with the server stopped).
//!
//! Both tests build a fresh crate natively and for wasm, in one build
//! directory: the guide crate's own `target/` (under `target/first-plugin/`,
//! kept between runs; only the crates' sources are written anew). Its
//! `wasm-build/` and `debug/` are symlinks to the plugins' wasm build
//! (`target/wasm-build`, what `./dev build-plugins` fills) and the guest
//! SDK's native one (`target/guest-native/debug`), so the crates compile
//! little that is not compiled already; cargo's locks serialize the builds.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use courier_host::{ConnectionConfig, Outcome, StepRequest};
use courier_tests::{TestServer, target_dir};
use serde_json::{Value, json};

use crate::cli::courier;

/// Where both tests work; kept between runs for its build directories.
fn root() -> PathBuf {
    target_dir().join("first-plugin")
}

/// The build directory both crates share: the guide's crate's own `target/`.
fn shared_target() -> PathBuf {
    root().join("guide/hello/target")
}

/// The shared build directory, its `wasm-build/` and `debug/` linked to
/// the builds the rest of the test run fills (see the module's doc).
fn prepare_shared_target() -> PathBuf {
    let shared = shared_target();
    std::fs::create_dir_all(&shared).unwrap();
    let links = [
        ("wasm-build", target_dir().join("wasm-build")),
        ("debug", target_dir().join("guest-native/debug")),
    ];
    for (name, to) in links {
        let link = shared.join(name);
        if link.is_symlink() {
            continue;
        }
        if link.is_dir() {
            std::fs::remove_dir_all(&link).unwrap();
        }
        std::fs::create_dir_all(&to).unwrap();
        match std::os::unix::fs::symlink(&to, &link) {
            Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => panic!("{e}"),
            _ => {}
        }
    }
    shared
}

/// Runs `command`, panicking with its output unless it succeeds.
fn succeed(command: &mut Command) -> Output {
    let out = command.stdin(Stdio::null()).output().unwrap();
    assert!(
        out.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Empties `dir` (creating it) except for the entry named `keep`.
fn clear_except(dir: &Path, keep: &str) {
    std::fs::create_dir_all(dir).unwrap();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|name| name == keep) {
            continue;
        }
        if path.is_dir() {
            std::fs::remove_dir_all(&path).unwrap();
        } else {
            std::fs::remove_file(&path).unwrap();
        }
    }
}

/// `courier new` writes a crate that passes its own tests, builds into a
/// component whose manifest allows the connection's base URL host (and no
/// other), and runs against a local server: the operator's base URL is
/// allowed without the plugin naming it, and the token reaches the server
/// but never the step result.
#[tokio::test]
async fn courier_new_builds_tests_and_runs() {
    let dir = root().join("new");
    clear_except(&dir, "");
    succeed(courier().current_dir(&dir).args(["new", "acme-items"]));
    let krate = dir.join("acme-items");
    let shared = prepare_shared_target();
    succeed(
        Command::new("cargo")
            .arg("test")
            .current_dir(&krate)
            .env("CARGO_TARGET_DIR", &shared),
    );
    let out_dir = shared.join("plugins-new");
    succeed(
        courier()
            .arg("build")
            .arg(&krate)
            .arg("--out")
            .arg(&out_dir),
    );
    let component = out_dir.join("acme-items.wasm");

    let manifest: Value =
        serde_json::from_slice(&succeed(courier().arg("inspect").arg(&component)).stdout).unwrap();
    assert_eq!(
        manifest["allowed_hosts"],
        json!(["https://api.example.com"])
    );
    let calls: Vec<&str> = manifest["calls"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(calls, ["get_item", "create_item"]);
    assert_eq!(manifest["calls"][0]["description"], "Reads one item.");
    assert_eq!(manifest["calls"][1]["kind"], "action");

    let server = TestServer::start(|r| {
        courier_tests::Reply::json(
            200,
            json!({"id": r.uri.trim_start_matches("/v1/items/"), "name": "Ada"}),
        )
    })
    .await;
    let connection = dir.join("api.toml");
    let token = "tok-0123456789abcdef";
    std::fs::write(
        &connection,
        format!(
            "connection = \"api\"\nbase_url = \"{}\"\nauth = \"bearer\"\n[secrets]\ntoken = \"{token}\"\n",
            server.url("/v1")
        ),
    )
    .unwrap();
    let run = |networks: &'static [&'static str]| {
        let mut cmd = courier();
        cmd.arg("run")
            .arg(&component)
            .args(["get_item", "--input", r#"{"id": "42"}"#])
            .arg("--connection")
            .arg(format!("api={}", connection.display()));
        for network in networks {
            cmd.args(["--allow-network", network]);
        }
        async move {
            tokio::task::spawn_blocking(move || cmd.output().unwrap())
                .await
                .unwrap()
        }
    };
    // The base URL's host is allowed; a loopback address still is not,
    // until the operator allows it.
    let refused = run(&[]).await;
    let result: Value = serde_json::from_slice(&refused.stdout).unwrap();
    assert_eq!(result["outcome"], "denied", "{result}");
    let message = result["error"]["message"].as_str().unwrap();
    assert!(message.contains("refused range"), "{message}");
    assert!(server.received().is_empty());
    let out = run(&["127.0.0.1/32"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{stdout}");
    let result: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(result["output"], json!({"id": "42", "name": "Ada"}));
    assert!(!stdout.contains(token), "{stdout}");
    let got = &server.received()[0];
    assert_eq!(
        (got.method.as_str(), got.uri.as_str()),
        ("GET", "/v1/items/42")
    );

    // A stored connection (which a tenant may write through the service)
    // does not widen the plugin's hosts: its base URL must be one the
    // plugin allows. The same configuration handed to the step does.
    let host = courier_tests::host_builder().build().unwrap();
    host.load_plugin_file(&component).await.unwrap();
    let config: ConnectionConfig =
        toml::from_str(&std::fs::read_to_string(&connection).unwrap()).unwrap();
    let step = |config: ConnectionConfig| {
        host.run_step(StepRequest {
            tenant: "t".into(),
            plugin: "acme-items".into(),
            call: "get_item".into(),
            input: json!({"id": "7"}),
            connections: vec![config.into()],
        })
    };
    let stored = step(config.clone().loaded_from_store()).await;
    assert_eq!(stored.outcome, Outcome::Denied, "{stored:?}");
    let message = &stored.error.as_ref().unwrap().message;
    assert!(
        message.contains("not among the plugin's allowed hosts"),
        "{message}"
    );
    assert_eq!(server.received().len(), 1);
    let given = step(config).await;
    assert_eq!(given.outcome, Outcome::Success, "{given:?}");
    assert_eq!(server.received().len(), 2);
    assert_eq!(
        got.header("authorization").map(str::to_owned),
        Some(format!("Bearer {token}"))
    );
}

/// The fenced blocks of `docs/first-plugin.md` with this info string.
fn blocks(markdown: &str, language: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut current: Option<String> = None;
    for line in markdown.lines() {
        match (&mut current, line.trim_end()) {
            (None, fence) if fence == format!("```{language}") => current = Some(String::new()),
            (Some(_), "```") => found.push(current.take().unwrap()),
            (Some(block), text) => {
                block.push_str(text);
                block.push('\n');
            }
            (None, _) => {}
        }
    }
    found
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs every `sh` block of the guide, in order, in one `bash` (stopping at
/// the first failure) in a fresh directory, with `courier` on `PATH` and
/// `PORT` set to a free port; checks the step result it prints, and that
/// each `rust` block is a verbatim excerpt of the crate `courier new` wrote.
#[tokio::test]
async fn the_first_plugin_guide_runs_as_written() {
    let guide_path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/first-plugin.md");
    let guide = std::fs::read_to_string(&guide_path).unwrap();
    let shell = blocks(&guide, "sh");
    assert!(shell.len() >= 4, "the guide's sh blocks: {shell:?}");
    let dir = root().join("guide");
    clear_except(&dir, "hello");
    clear_except(&dir.join("hello"), "target");
    prepare_shared_target();

    let script = format!("set -euo pipefail\n{}", shell.join("\n"));
    let path = format!(
        "{}:{}",
        target_dir().join("debug").display(),
        std::env::var("PATH").unwrap()
    );
    let cache = target_dir().join("courier-test-cache");
    let port = free_port().to_string();
    let mut bash = Command::new("bash");
    bash.args(["-c", &script])
        .current_dir(&dir)
        .env("PATH", path)
        .env("PORT", &port)
        .env("COURIER_CACHE_DIR", cache)
        .env_remove("CARGO_TARGET_DIR")
        .stdin(Stdio::null());
    // Its own process group, so that the server the guide starts in the
    // background is stopped here too should the guide fail before it does.
    std::os::unix::process::CommandExt::process_group(&mut bash, 0);
    let out = tokio::task::spawn_blocking(move || {
        let child = bash
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let group = child.id();
        let out = child.wait_with_output().unwrap();
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{group}")])
            .stderr(Stdio::null())
            .status();
        out
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "the guide failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let result_start = stdout.rfind("\n{\n  \"outcome\"").expect("a step result") + 1;
    let result: Value = serde_json::Deserializer::from_str(&stdout[result_start..])
        .into_iter()
        .next()
        .expect("a step result")
        .unwrap();
    assert_eq!(result["outcome"], "success", "{stdout}");
    assert_eq!(
        stdout.matches("ok get-first-item").count(),
        2,
        "recorded, then replayed with the server stopped: {stdout}"
    );
    let cassette =
        std::fs::read_to_string(dir.join("hello/cassettes/get-first-item.json")).unwrap();
    assert!(
        cassette.contains("Bearer [REDACTED]") && !cassette.contains("test-token-not-a-secret"),
        "{cassette}"
    );
    assert_eq!(result["output"], json!({"id": "1", "name": "First item"}));
    assert!(stdout.contains("test result: ok. 3 passed"), "{stdout}");

    let lib = std::fs::read_to_string(dir.join("hello/src/lib.rs")).unwrap();
    for excerpt in blocks(&guide, "rust") {
        assert!(lib.contains(&excerpt), "not in src/lib.rs:\n{excerpt}");
    }
}
