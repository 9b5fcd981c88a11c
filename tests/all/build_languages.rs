//! `courier build` for Python and JavaScript plugins through the real
//! binary: a plugin copied to a directory outside the repository builds with
//! nothing but `courier` (the WIT and the SDKs are embedded; the pinned
//! toolchains are the ones `./dev build-plugins` installed under
//! `target/courier-cache`) and answers as the Rust `http-request` does; and
//! a missing `python3`, `node` or `npm`, or an unreachable package index,
//! fails the build with an error that names it. Two first builds at once
//! on an empty toolchain directory install componentize-py once; a build
//! whose inputs are unchanged keeps the component, and one whose inputs
//! changed (even with the old modification times) rebuilds it.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

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

/// `courier --cache-dir CACHE build DIR --out OUT ARGS…` with extra
/// environment.
fn build_command(
    cache: &Path,
    dir: &Path,
    out: &Path,
    args: &[&str],
    env: &[(&str, &std::ffi::OsStr)],
) -> Command {
    let mut command = courier();
    command
        .arg("--cache-dir")
        .arg(cache)
        .arg("build")
        .arg(dir)
        .arg("--out")
        .arg(out)
        .args(args)
        .envs(env.iter().copied());
    command
}

/// `courier --cache-dir CACHE build DIR --out OUT` with extra environment.
fn build(cache: &Path, dir: &Path, out: &Path, env: &[(&str, &std::ffi::OsStr)]) -> Output {
    build_command(cache, dir, out, &[], env).output().unwrap()
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

/// Whether `haystack` holds `needle`.
fn holds(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|window| window == needle.as_bytes())
}

#[test]
fn concurrent_first_builds_install_the_toolchain_once() {
    let scratch = Scratch::new("concurrent");
    let toolchains = scratch.0.join("cache/toolchains");
    // What an older Courier killed halfway left (no `installed` file), and
    // what a killed install of this one leaves.
    let older = toolchains.join("componentize-py-0.25.1");
    let killed = toolchains.join(".componentize-py-0.25.1.partial");
    for dir in [&older, &killed] {
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/leftover"), "").unwrap();
    }

    // `python3` on PATH counts its runs (creating the venv is one of them),
    // then runs the real one.
    let shims = scratch.0.join("shims");
    let runs = scratch.0.join("python3-runs");
    std::fs::create_dir_all(&shims).unwrap();
    let shim = shims.join("python3");
    std::fs::write(
        &shim,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            runs.display(),
            on_path("python3").display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&shim, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let path = std::env::join_paths(
        std::iter::once(shims).chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();

    let children: Vec<_> = ["one", "two"]
        .into_iter()
        .map(|name| {
            let dir = scratch.0.join(name).join("http-request-py");
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::copy(
                repo_plugin("http-request-py").join("app.py"),
                dir.join("app.py"),
            )
            .unwrap();
            let out = scratch.0.join(name).join("out");
            let mut command = build_command(
                &scratch.0.join("cache"),
                &dir,
                &out,
                &[],
                &[("PATH", path.as_os_str())],
            );
            let child = command
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            (child, out.join("http-request-py.wasm"))
        })
        .collect();
    let mut stderrs = Vec::new();
    for (child, component) in children {
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        assert!(component.is_file(), "{stderr}");
        stderrs.push(stderr);
    }

    let runs = std::fs::read_to_string(&runs).unwrap();
    let venvs = runs
        .lines()
        .filter(|run| run.starts_with("-m venv"))
        .count();
    assert_eq!(venvs, 1, "python3 ran: {runs}\n{stderrs:#?}");
    let count = |text: &str| {
        stderrs
            .iter()
            .map(|stderr| stderr.matches(text).count())
            .collect::<Vec<_>>()
    };
    // One installed; the other said once that it waited for it.
    let installing = count("installing componentize-py 0.25.1");
    let waiting = count("waiting for another courier to install componentize-py 0.25.1");
    assert!(
        [[1, 0], [0, 1]].contains(&[installing[0], waiting[0]])
            && [installing[1], waiting[1]] == [installing[0], waiting[0]].map(|n| 1 - n),
        "{stderrs:#?}"
    );
    assert!(older.join("bin/python3").exists());
    assert!(!older.join("bin/leftover").exists());
    assert!(!killed.exists());
}

#[test]
fn a_component_is_rebuilt_exactly_when_its_inputs_change() {
    let scratch = Scratch::new("up-to-date");
    let cache = target_dir().join("courier-cache");
    let dir = scratch.0.join("plugin");
    std::fs::create_dir_all(&dir).unwrap();
    for (source, file) in [("http-request-py", "app.py"), ("http-request-js", "app.js")] {
        std::fs::copy(repo_plugin(source).join(file), dir.join(file)).unwrap();
    }
    let out = scratch.0.join("out");
    let component = out.join("plugin.wasm");
    let build = |lang: &str| {
        let output = build_command(&cache, &dir, &out, &["--lang", lang], &[])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{stderr}");
        let metadata = std::fs::metadata(&component).unwrap();
        (stderr, metadata.ino(), std::fs::read(&component).unwrap())
    };

    let (_, first, built) = build("python");
    assert!(holds(&built, "External API Request (Python): sends"));
    let (stderr, kept, _) = build("python");
    assert!(stderr.contains("plugin: up to date"), "{stderr}");
    assert_eq!(kept, first, "the component was written again");

    // An edit that keeps the file's size and modification time, as `touch
    // -r` or a checkout can: older than the component.
    let app = dir.join("app.py");
    let modified = std::fs::metadata(&app).unwrap().modified().unwrap();
    let source = std::fs::read_to_string(&app).unwrap();
    let edited = source.replace("(Python): sends", "(PYTHON): sends");
    assert_ne!(edited, source);
    std::fs::write(&app, edited).unwrap();
    std::fs::File::options()
        .write(true)
        .open(&app)
        .unwrap()
        .set_modified(modified)
        .unwrap();
    let (stderr, rebuilt, built) = build("python");
    assert!(
        stderr.contains("plugin: building with componentize-py"),
        "{stderr}"
    );
    assert_ne!(rebuilt, first);
    assert!(holds(&built, "External API Request (PYTHON): sends"));

    let (stderr, _, built) = build("js");
    assert!(
        stderr.contains("plugin: building with componentize-js"),
        "{stderr}"
    );
    assert!(holds(&built, "External API Request (JavaScript): sends"));
}
