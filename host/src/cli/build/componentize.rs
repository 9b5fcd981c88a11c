//! `courier build` for Python and JavaScript plugins: componentize-py and
//! componentize-js, pinned here and installed on first use under the
//! toolchain directory, build the plugin against the WIT and the SDK embedded
//! in the `courier` binary, so an author needs nothing from the repository.
//!
//! A Python plugin is a directory with `app.py`, whose module-level
//! `Integration` exports the world `plugin`; it imports `courier_sdk`. The
//! build reads a copy of the plugin's files ([`source_files`]). A
//! JavaScript plugin is a directory with `app.js` exporting `integration`;
//! the build sees the plugin directory as `/`, with the SDK at
//! `/guest-sdk/js/courier-sdk.js` (so `../../guest-sdk/js/courier-sdk.js`,
//! the import the repository's plugins use, resolves inside and outside the
//! repository alike).
//!
//! A component is kept when the digest of its inputs (see [`Job::inputs`]),
//! stored beside it as `.<name>.wasm.inputs`, is the one its next build
//! computes: content decides, not modification times.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use sha2::{Digest, Sha256};

use super::{BuildError, BuiltPlugin, install, io_error, remove_dir};

/// The pinned componentize-py (PyPI).
const COMPONENTIZE_PY: &str = "0.25.1";
/// The pinned componentize-js (npm).
const COMPONENTIZE_JS: &str = "0.23.0";
/// The oldest Node.js componentize-js runs on.
const NODE_MAJOR: u32 = 18;
/// componentize-py's entry point, run by its venv's `python3`: the venv is
/// moved into place once installed, so the scripts pip wrote into it name a
/// path that is gone.
const RUN_COMPONENTIZE_PY: &str = "import sys; from componentize_py import script; \
     sys.argv[0] = 'componentize-py'; sys.exit(script())";

/// The WIT package, as the guests see it.
const WIT: &[(&str, &str)] = &[
    (
        "integration.wit",
        include_str!("../../../../wit/integration.wit"),
    ),
    ("log.wit", include_str!("../../../../wit/log.wit")),
    ("outbound.wit", include_str!("../../../../wit/outbound.wit")),
    ("types.wit", include_str!("../../../../wit/types.wit")),
    ("world.wit", include_str!("../../../../wit/world.wit")),
];

/// `guest-sdk/python`: the package `courier_sdk` (with its test double,
/// `testing.py` and the bindings' stand-in `_standin.py`, which a component
/// never imports).
const PYTHON_SDK: &[(&str, &str)] = &[
    (
        "courier_sdk/__init__.py",
        include_str!("../../../../guest-sdk/python/courier_sdk/__init__.py"),
    ),
    (
        "courier_sdk/_standin.py",
        include_str!("../../../../guest-sdk/python/courier_sdk/_standin.py"),
    ),
    (
        "courier_sdk/testing.py",
        include_str!("../../../../guest-sdk/python/courier_sdk/testing.py"),
    ),
];

/// `guest-sdk/js`, placed at `/guest-sdk/js/` in the build's view (with the
/// test double `testing.js`, which a component never imports).
const JS_SDK: &[(&str, &str)] = &[
    (
        "guest-sdk/js/courier-sdk.js",
        include_str!("../../../../guest-sdk/js/courier-sdk.js"),
    ),
    (
        "guest-sdk/js/testing.js",
        include_str!("../../../../guest-sdk/js/testing.js"),
    ),
];

/// The Node script that calls componentize-js with the sandbox's settings.
const COMPONENTIZE_JS_SCRIPT: &str = include_str!("componentize_js.mjs");

/// This file, which says how the tools run (their arguments): an input of
/// every build, so a `courier` that builds otherwise rebuilds.
const RECIPE: &str = include_str!("componentize.rs");

/// A componentizer and what `courier` gives its builds.
struct Tool {
    /// Its package (PyPI or npm).
    package: &'static str,
    /// Its pinned version.
    version: &'static str,
    /// The embedded files its builds read: WIT, SDK, scripts.
    embedded: &'static [&'static [(&'static str, &'static str)]],
}

/// componentize-py, building Python plugins.
const PYTHON: Tool = Tool {
    package: "componentize-py",
    version: COMPONENTIZE_PY,
    embedded: &[WIT, PYTHON_SDK],
};

/// componentize-js, building JavaScript plugins.
const JS: Tool = Tool {
    package: "componentize-js",
    version: COMPONENTIZE_JS,
    embedded: &[
        WIT,
        JS_SDK,
        &[("componentize_js.mjs", COMPONENTIZE_JS_SCRIPT)],
    ],
};

/// Builds the Python plugin in `dir` into `<out_dir>/<dir name>.wasm`.
pub(super) fn build_python(
    dir: &Path,
    out_dir: &Path,
    toolchains: &Path,
) -> Result<BuiltPlugin, BuildError> {
    let install = || install_componentize_py(toolchains);
    build_with(dir, out_dir, &PYTHON, install, |job, stage, python| {
        // A copy, without `__pycache__`: componentize-py's Python trusts a
        // cached module whose source kept its size and modification time.
        copy_sources(&job.dir, &stage.join("app"))?;
        write_files(&stage.join("sdk"), PYTHON_SDK)?;
        let mut command = Command::new(python);
        command
            .args(["-c", RUN_COMPONENTIZE_PY, "-d"])
            .arg(stage.join("wit"))
            .args(["-w", "plugin", "componentize", "-p"])
            .arg(stage.join("app"))
            .arg("-p")
            .arg(stage.join("sdk"))
            .arg("app")
            .arg("-o")
            .arg(job.partial());
        Ok(command)
    })
}

/// Builds the JavaScript plugin in `dir` into `<out_dir>/<dir name>.wasm`.
pub(super) fn build_js(
    dir: &Path,
    out_dir: &Path,
    toolchains: &Path,
) -> Result<BuiltPlugin, BuildError> {
    let install = || install_componentize_js(toolchains);
    build_with(dir, out_dir, &JS, install, |job, stage, script| {
        copy_sources(&job.dir, stage)?;
        write_files(stage, JS_SDK)?;
        let mut command = Command::new("node");
        command
            .arg(script)
            .arg("app.js")
            .arg(job.partial())
            .arg("wit")
            .current_dir(stage);
        Ok(command)
    })
}

/// Unless the component is up to date (says which on stderr): installs
/// the toolchain (`install` returns what `command` runs), writes the WIT
/// into a scratch directory, and runs the `tool` command that `command`
/// makes for the job and the scratch directory.
fn build_with<T>(
    dir: &Path,
    out_dir: &Path,
    tool: &Tool,
    install: impl FnOnce() -> Result<T, BuildError>,
    command: impl FnOnce(&Job, &Path, T) -> Result<Command, BuildError>,
) -> Result<BuiltPlugin, BuildError> {
    let job = Job::new(dir, out_dir)?;
    let inputs = job.inputs(tool)?;
    if let Some(built) = job.up_to_date(&inputs)? {
        eprintln!("{}: up to date (its inputs are unchanged)", job.name);
        return Ok(built);
    }
    eprintln!(
        "{}: building with {} {}",
        job.name, tool.package, tool.version
    );
    let installed = install()?;
    let stage = job.stage()?;
    write_files(&stage.join("wit"), WIT)?;
    let command = command(&job, &stage, installed)?;
    job.finish(command, tool.package, &inputs)
}

/// One plugin directory being built.
struct Job {
    /// The plugin directory, absolute.
    dir: PathBuf,
    /// The plugin's name: the directory's.
    name: String,
    /// Where the component goes, absolute.
    out_dir: PathBuf,
}

impl Job {
    fn new(dir: &Path, out_dir: &Path) -> Result<Self, BuildError> {
        let dir = fs::canonicalize(dir).map_err(io_error(dir))?;
        let name = dir
            .file_name()
            .and_then(|name| name.to_str())
            .ok_or_else(|| BuildError::NotAPlugin { path: dir.clone() })?
            .to_owned();
        let out_dir = std::path::absolute(out_dir).map_err(io_error(out_dir))?;
        fs::create_dir_all(&out_dir).map_err(io_error(&out_dir))?;
        Ok(Self { dir, name, out_dir })
    }

    fn component(&self) -> PathBuf {
        self.out_dir.join(format!("{}.wasm", self.name))
    }

    fn partial(&self) -> PathBuf {
        self.out_dir.join(format!(".{}.wasm.partial", self.name))
    }

    /// Beside the component: the digest of the inputs it was built from.
    fn stamp(&self) -> PathBuf {
        self.out_dir.join(format!(".{}.wasm.inputs", self.name))
    }

    /// The SHA-256 (hex) of everything a build with `tool` reads: the tool
    /// and its version (so the language), [`RECIPE`], whether it warms up, the files `courier`
    /// embeds for the tool (WIT, SDK, script), and the plugin's files, by
    /// name and content.
    fn inputs(&self, tool: &Tool) -> Result<String, BuildError> {
        let mut hasher = Sha256::new();
        let mut field = |bytes: &[u8]| {
            hasher.update((bytes.len() as u64).to_le_bytes());
            hasher.update(bytes);
        };
        field(tool.package.as_bytes());
        field(tool.version.as_bytes());
        field(RECIPE.as_bytes());
        field(if warms_up() { b"warm-up" } else { b"cold" });
        for (path, contents) in tool.embedded.iter().copied().flatten() {
            field(path.as_bytes());
            field(contents.as_bytes());
        }
        for relative in source_files(&self.dir)? {
            let path = self.dir.join(&relative);
            field(relative.as_bytes());
            field(&fs::read(&path).map_err(io_error(&path))?);
        }
        Ok(format!("{:x}", hasher.finalize()))
    }

    /// The component, when the stamp beside it says it was built from
    /// `inputs`.
    fn up_to_date(&self, inputs: &str) -> Result<Option<BuiltPlugin>, BuildError> {
        if fs::read_to_string(self.stamp()).ok().as_deref() != Some(inputs) {
            return Ok(None);
        }
        let component = self.component();
        let Ok(metadata) = fs::metadata(&component) else {
            return Ok(None);
        };
        Ok(Some(BuiltPlugin {
            name: self.name.clone(),
            component,
            size: metadata.len(),
        }))
    }

    /// An empty scratch directory beside the component.
    fn stage(&self) -> Result<PathBuf, BuildError> {
        let stage = self.out_dir.join(format!(".{}.build", self.name));
        remove_dir(&stage)?;
        fs::create_dir_all(&stage).map_err(io_error(&stage))?;
        Ok(stage)
    }

    /// Runs the componentizer, then moves its output into place, stamps it
    /// with `inputs` and removes the scratch directory. The old stamp goes
    /// first, so a build stopped halfway leaves no component that looks up
    /// to date.
    fn finish(
        &self,
        mut command: Command,
        tool: &'static str,
        inputs: &str,
    ) -> Result<BuiltPlugin, BuildError> {
        let stamp = self.stamp();
        match fs::remove_file(&stamp) {
            Err(error) if error.kind() != io::ErrorKind::NotFound => {
                return Err(io_error(&stamp)(error));
            }
            _ => {}
        }
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .status()
            .map_err(|source| BuildError::Spawn {
                program: command.get_program().into(),
                source,
            })?;
        remove_dir(&self.out_dir.join(format!(".{}.build", self.name)))?;
        let (partial, component) = (self.partial(), self.component());
        if !status.success() {
            let _ = fs::remove_file(&partial);
            return Err(BuildError::Componentize { tool, status });
        }
        if warms_up() {
            prewarm_file(&partial)?;
        }
        fs::rename(&partial, &component).map_err(io_error(&component))?;
        fs::write(&stamp, inputs).map_err(io_error(&stamp))?;
        let size = fs::metadata(&component)
            .map_err(io_error(&component))?
            .len();
        Ok(BuiltPlugin {
            name: self.name.clone(),
            component,
            size,
        })
    }
}

/// Set (to anything), the build skips the warm-up: to compare, or to look
/// at a component as its toolchain made it.
const NO_WARM_UP: &str = "COURIER_NO_WARM_UP";

/// Whether this build warms its component up (part of its inputs).
fn warms_up() -> bool {
    std::env::var_os(NO_WARM_UP).is_none()
}

/// Replaces the component at `path` by its warmed-up snapshot
/// ([`courier_host::prewarm`]); removes it when that fails.
fn prewarm_file(path: &Path) -> Result<(), BuildError> {
    let component = fs::read(path).map_err(io_error(path))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .map_err(io_error(path))?;
    let warmed = runtime
        .block_on(courier_host::prewarm(&component))
        .map_err(|e| {
            let _ = fs::remove_file(path);
            BuildError::Prewarm(e)
        })?;
    fs::write(path, warmed).map_err(io_error(path))
}

/// The plugin's files under `dir` as sorted relative paths (`/`-separated),
/// without hidden entries, `node_modules` and `__pycache__`.
fn source_files(dir: &Path) -> Result<Vec<String>, BuildError> {
    let mut files = Vec::new();
    let mut pending = vec![String::new()];
    while let Some(relative) = pending.pop() {
        let from = dir.join(&relative);
        for entry in fs::read_dir(&from).map_err(io_error(&from))? {
            let entry = entry.map_err(io_error(&from))?;
            let name = entry.file_name();
            let Some(name) = name.to_str().filter(|name| !skipped(name)) else {
                continue;
            };
            let path = match relative.as_str() {
                "" => name.to_owned(),
                parent => format!("{parent}/{name}"),
            };
            if entry.path().is_dir() {
                pending.push(path);
            } else {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Whether a plugin directory's entry stays out of the build.
fn skipped(name: &str) -> bool {
    name.starts_with('.') || name == "node_modules" || name == "__pycache__"
}

/// Copies the plugin's files ([`source_files`]) to `to`.
fn copy_sources(from: &Path, to: &Path) -> Result<(), BuildError> {
    fs::create_dir_all(to).map_err(io_error(to))?;
    for relative in source_files(from)? {
        let target = to.join(&relative);
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::copy(from.join(&relative), &target).map_err(io_error(&target))?;
    }
    Ok(())
}

/// Writes embedded `(relative path, contents)` files under `dir`.
fn write_files(dir: &Path, files: &[(&str, &str)]) -> Result<(), BuildError> {
    for (relative, contents) in files {
        let path = dir.join(relative);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(io_error(parent))?;
        }
        fs::write(&path, contents).map_err(io_error(&path))?;
    }
    Ok(())
}

/// componentize-py in a venv under `toolchains`, installed on first use;
/// returns the venv's `python3`, which runs it ([`RUN_COMPONENTIZE_PY`]).
fn install_componentize_py(toolchains: &Path) -> Result<PathBuf, BuildError> {
    let dir = install::installed(toolchains, PYTHON.package, COMPONENTIZE_PY, |dir| {
        let mut venv = Command::new("python3");
        venv.args(["-m", "venv"]).arg(dir);
        run(venv).map_err(|error| {
            error.missing("python3 (3.10 or newer, with the venv module and pip)")
        })?;
        let mut pip = Command::new(dir.join("bin/python3"));
        pip.args(["-m", "pip", "install", "-q", "--disable-pip-version-check"])
            .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
        run(pip).map_err(|error| error.install_failed(PYTHON.package, COMPONENTIZE_PY, "pip"))?;
        Ok(())
    })?;
    Ok(dir.join("bin/python3"))
}

/// componentize-js under `toolchains`, installed with npm on first use,
/// with the build script beside it; returns the script. Checks that `node`
/// is recent enough on every build.
fn install_componentize_js(toolchains: &Path) -> Result<PathBuf, BuildError> {
    check_node()?;
    let dir = install::installed(toolchains, JS.package, COMPONENTIZE_JS, |dir| {
        write_files(dir, &[("package.json", "{\"private\": true}\n")])?;
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(dir)
        .arg(format!(
            "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
        ));
        run(npm).map_err(|error| error.install_failed(JS.package, COMPONENTIZE_JS, "npm"))?;
        Ok(())
    })?;
    // This `courier`'s script, written through a rename: builds running at
    // the same time read a whole script, theirs or this one.
    let script = dir.join("componentize_js.mjs");
    if fs::read_to_string(&script).ok().as_deref() != Some(COMPONENTIZE_JS_SCRIPT) {
        let partial = dir.join(format!(".componentize_js.mjs.{}", std::process::id()));
        fs::write(&partial, COMPONENTIZE_JS_SCRIPT).map_err(io_error(&partial))?;
        fs::rename(&partial, &script).map_err(io_error(&script))?;
    }
    Ok(script)
}

/// Fails unless `node --version` says [`NODE_MAJOR`] or newer.
fn check_node() -> Result<(), BuildError> {
    let wanted = || format!("node (Node.js {NODE_MAJOR} or newer)");
    let mut node = Command::new("node");
    node.arg("--version");
    let output = run(node).map_err(|error| error.missing(&wanted()))?;
    let version = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let major = version
        .strip_prefix('v')
        .and_then(|v| v.split('.').next())
        .and_then(|major| major.parse::<u32>().ok());
    match major {
        Some(major) if major >= NODE_MAJOR => Ok(()),
        _ => Err(BuildError::Missing {
            what: format!("{} (found {version})", wanted()),
        }),
    }
}

/// Why a helper program did not succeed.
enum RunError {
    /// It is not installed.
    NotFound,
    /// It ran and failed, or could not be started: the end of its stderr.
    Failed(String),
}

impl RunError {
    /// A tool the build needs is missing or broken; `wanted` names it.
    fn missing(self, wanted: &str) -> BuildError {
        let what = match self {
            Self::NotFound => wanted.to_owned(),
            Self::Failed(reason) => format!("{wanted}: {reason}"),
        };
        BuildError::Missing { what }
    }

    /// A package install failed (the index may be unreachable); `client` is
    /// the installer.
    fn install_failed(self, package: &str, version: &str, client: &str) -> BuildError {
        match self {
            Self::NotFound => self.missing(client),
            Self::Failed(reason) => BuildError::Install {
                what: format!("{package} {version} with {client}"),
                reason,
            },
        }
    }
}

/// Runs `command` quietly; a failure carries the end of its stderr.
fn run(mut command: Command) -> Result<Output, RunError> {
    let program = command.get_program().to_string_lossy().into_owned();
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => RunError::NotFound,
            _ => RunError::Failed(format!("cannot run {program}: {error}")),
        })?;
    if output.status.success() {
        return Ok(output);
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    let tail = lines[lines.len().saturating_sub(8)..].join("\n");
    Err(RunError::Failed(format!(
        "`{program}` failed ({}){}{tail}",
        output.status,
        if tail.is_empty() { "" } else { ":\n" }
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The relative paths of the files under `dir`, sorted.
    fn files_under(dir: &Path) -> Vec<String> {
        let mut found = Vec::new();
        let mut pending = vec![dir.to_owned()];
        while let Some(next) = pending.pop() {
            for entry in fs::read_dir(&next).unwrap() {
                let path = entry.unwrap().path();
                let name = path.file_name().unwrap().to_str().unwrap();
                if name == "__pycache__" || name == "types" {
                    continue;
                }
                if path.is_dir() {
                    pending.push(path);
                } else {
                    let relative = path.strip_prefix(dir).unwrap();
                    found.push(relative.to_str().unwrap().to_owned());
                }
            }
        }
        found.sort();
        found
    }

    fn embedded(files: &[(&str, &str)], prefix: &str) -> Vec<String> {
        let mut names: Vec<String> = files
            .iter()
            .map(|(path, _)| path.strip_prefix(prefix).unwrap().to_owned())
            .collect();
        names.sort();
        names
    }

    /// A file added to the WIT or an SDK must be embedded too, or plugins
    /// built outside the repository would miss it.
    #[test]
    fn every_wit_and_sdk_file_is_embedded() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        assert_eq!(files_under(&root.join("wit")), embedded(WIT, ""));
        assert_eq!(
            files_under(&root.join("guest-sdk/python")),
            embedded(PYTHON_SDK, "")
        );
        assert_eq!(
            files_under(&root.join("guest-sdk/js")),
            embedded(JS_SDK, "guest-sdk/js/")
        );
    }
}
