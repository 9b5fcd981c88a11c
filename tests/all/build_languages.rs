//! `courier build` for Python and JavaScript plugins through the real
//! binary: a plugin copied to a directory outside the repository builds with
//! nothing but `courier` (the WIT and the SDKs are embedded; the pinned
//! toolchains are the ones `./dev build-plugins` installed under
//! `target/courier-cache`) and answers as the Rust `http-request` does; and
//! a missing `python3`, `node` or `npm`, or an unreachable package index,
//! fails the build with an error that names it.

use std::path::{Path, PathBuf};
use std::process::Output;

use courier_host::bench;
use courier_tests::{host_builder, plugin, target_dir};
use serde_json::json;

use crate::cli::courier;
use crate::languages::{comparable, server};
use crate::step;

/// A fresh directory under the system's temporary directory (outside the
/// repository), removed when dropped.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("courier-build-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The repository's plugin directory `name`.
fn repo_plugin(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../plugins")
        .join(name)
}

/// `courier --cache-dir CACHE build DIR --out OUT` with extra environment.
fn build(cache: &Path, dir: &Path, out: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    courier()
        .arg("--cache-dir")
        .arg(cache)
        .arg("build")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

#[tokio::test]
async fn python_and_javascript_plugins_build_outside_the_repository() {
    let scratch = Scratch::new("author");
    let out = scratch.0.join("out");
    let mut built = Vec::new();
    for (source, file, name) in [
        ("http-request-py", "app.py", "author-py"),
        ("http-request-js", "app.js", "author-js"),
    ] {
        let dir = scratch.0.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo_plugin(source).join(file), dir.join(file)).unwrap();
        let output = tokio::task::spawn_blocking({
            let (dir, out) = (dir.clone(), out.clone());
            move || build(&target_dir().join("courier-cache"), &dir, &out, &[])
        })
        .await
        .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(output.status.success(), "{name}: {stderr}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(stdout.starts_with(&format!("{name} -> ")), "{stdout}");
        built.push((source, out.join(format!("{name}.wasm"))));
    }

    let server = server().await;
    let host = host_builder().build().unwrap();
    host.load_plugin_file(&plugin("http-request"))
        .await
        .unwrap();
    let input = json!({"url": server.url("/items?fixed=1"), "method": "post",
                       "headers": {"X-Trace": "t-1"}, "body": {"name": "Ada"}});
    let rust = step(&host, "http-request", "request", input.clone(), &[]).await;
    for (name, component) in built {
        host.load_plugin_file(&component).await.unwrap();
        let other = step(&host, name, "request", input.clone(), &[]).await;
        assert_eq!(comparable(&other), comparable(&rust), "{name}: {other:?}");
    }
}

/// The directory on `PATH` that holds `program`.
fn on_path(program: &str) -> PathBuf {
    let path = std::env::var_os("PATH").unwrap();
    std::env::split_paths(&path)
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
        .unwrap_or_else(|| panic!("{program} is not on PATH"))
}

/// Builds `plugin` with a fresh toolchain directory and `env`; returns the
/// error `courier` printed.
fn failed_build(plugin: &str, env: &[(&str, &std::ffi::OsStr)]) -> String {
    let scratch = Scratch::new(&format!("missing-{plugin}"));
    let output = build(
        &scratch.0.join("cache"),
        &repo_plugin(plugin),
        &scratch.0.join("out"),
        env,
    );
    assert!(!output.status.success(), "{plugin} built with {env:?}");
    assert!(
        !scratch
            .0
            .join("out")
            .join(format!("{plugin}.wasm"))
            .exists()
    );
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_missing_tool_or_package_index_is_named() {
    let nothing = Scratch::new("empty-path");
    let only_node = Scratch::new("only-node");
    std::os::unix::fs::symlink(on_path("node"), only_node.0.join("node")).unwrap();
    let empty_path = [("PATH", nothing.0.as_os_str())];

    let error = failed_build("http-request-py", &empty_path);
    assert!(
        error.contains("python3 (3.10 or newer, with the venv module and pip) is needed"),
        "{error}"
    );
    let error = failed_build("http-request-js", &empty_path);
    assert!(
        error.contains("node (Node.js 18 or newer) is needed"),
        "{error}"
    );
    let error = failed_build("http-request-js", &[("PATH", only_node.0.as_os_str())]);
    assert!(error.contains("npm is needed"), "{error}");

    // Nothing listens on port 9 (discard) of the loopback address.
    let closed = std::ffi::OsStr::new("http://127.0.0.1:9/");
    let npm_cache = Scratch::new("npm-cache");
    let error = failed_build(
        "http-request-js",
        &[
            ("npm_config_registry", closed),
            ("npm_config_cache", npm_cache.0.as_os_str()),
            ("npm_config_fetch_retries", "0".as_ref()),
        ],
    );
    assert!(
        error.contains(
            "cannot install componentize-js 0.23.0 with npm (is the package index reachable?)"
        ),
        "{error}"
    );
    let error = failed_build(
        "http-request-py",
        &[
            ("PIP_INDEX_URL", closed),
            ("PIP_CONFIG_FILE", "/dev/null".as_ref()),
            ("PIP_NO_CACHE_DIR", "1".as_ref()),
            ("PIP_RETRIES", "0".as_ref()),
        ],
    );
    assert!(
        error.contains(
            "cannot install componentize-py 0.25.1 with pip (is the package index reachable?)"
        ),
        "{error}"
    );
}

/// `courier build` warms a Python or JS component up (the SDK's request and
/// response paths run once, then the instance is snapshotted): a fresh
/// instance of the warmed component does less on that first call than one
/// of the same plugin built without the warm-up. Counted in guest
/// instructions (fuel), which do not drift as time does.
#[tokio::test]
async fn a_warmed_up_component_does_less_on_its_first_call() {
    let scratch = Scratch::new("cold");
    let out = scratch.0.join("out");
    for (source, file) in [("http-request-py", "app.py"), ("http-request-js", "app.js")] {
        let dir = scratch.0.join(source);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::copy(repo_plugin(source).join(file), dir.join(file)).unwrap();
        let output = tokio::task::spawn_blocking({
            let (dir, out) = (dir.clone(), out.clone());
            let no = std::ffi::OsStr::new("1");
            move || {
                build(
                    &target_dir().join("courier-cache"),
                    &dir,
                    &out,
                    &[("COURIER_NO_WARM_UP", no)],
                )
            }
        })
        .await
        .unwrap();
        assert!(
            output.status.success(),
            "{source}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        let cold = std::fs::read(out.join(format!("{source}.wasm"))).unwrap();
        // `./dev build-plugins` built the repository's copy, warmed up.
        let warm = std::fs::read(plugin(source)).unwrap();
        let cold = bench::warm_up_fuel(&cold).await.unwrap();
        let warm = bench::warm_up_fuel(&warm).await.unwrap();
        eprintln!("{source}: first-call fuel cold {cold}, warm {warm}");
        assert!(warm < cold, "{source}: warmed up {warm}, cold {cold}");
    }
}

/// The warm-up is the Python and JS SDKs' call: a component that does not
/// answer it (a Rust plugin) is refused with the reason, not snapshotted.
#[tokio::test]
async fn a_component_without_the_warm_up_call_is_refused() {
    let rust = std::fs::read(plugin("http-request")).unwrap();
    let error = courier_host::prewarm(&rust).await.unwrap_err().to_string();
    assert!(error.contains("the warm-up call failed"), "{error}");
    assert!(error.contains("courier:warm-up"), "{error}");
}
