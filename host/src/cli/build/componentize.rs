//! `courier build` for Python and JavaScript plugins: componentize-py and
//! componentize-js, pinned here and installed on first use under the
//! toolchain directory, build the plugin against the WIT and the SDK embedded
//! in the `courier` binary, so an author needs nothing from the repository.
//!
//! A Python plugin is a directory with `app.py`, whose module-level
//! `Integration` exports the world `plugin`; it imports `courier_sdk`. A
//! JavaScript plugin is a directory with `app.js` exporting `integration`;
//! the build sees the plugin directory as `/`, with the SDK at
//! `/guest-sdk/js/courier-sdk.js` (so `../../guest-sdk/js/courier-sdk.js`,
//! the import the repository's plugins use, resolves inside and outside the
//! repository alike).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::SystemTime;

use super::{BuildError, BuiltPlugin, io_error};

/// The pinned componentize-py (PyPI).
const COMPONENTIZE_PY: &str = "0.25.1";
/// The pinned componentize-js (npm).
const COMPONENTIZE_JS: &str = "0.23.0";
/// The oldest Node.js componentize-js runs on.
const NODE_MAJOR: u32 = 18;
/// The file written into a toolchain's directory once it is installed.
const INSTALLED: &str = "installed";

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

/// Builds the Python plugin in `dir` into `<out_dir>/<dir name>.wasm`.
pub(super) fn build_python(
    dir: &Path,
    out_dir: &Path,
    toolchains: &Path,
) -> Result<BuiltPlugin, BuildError> {
    let install = || install_componentize_py(toolchains);
    build_with(
        dir,
        out_dir,
        "componentize-py",
        install,
        |job, stage, program| {
            write_files(&stage.join("sdk"), PYTHON_SDK)?;
            let mut command = Command::new(program);
            command
                .arg("-d")
                .arg(stage.join("wit"))
                .args(["-w", "plugin", "componentize", "-p"])
                .arg(&job.dir)
                .arg("-p")
                .arg(stage.join("sdk"))
                .arg("app")
                .arg("-o")
                .arg(job.partial());
            Ok(command)
        },
    )
}

/// Builds the JavaScript plugin in `dir` into `<out_dir>/<dir name>.wasm`.
pub(super) fn build_js(
    dir: &Path,
    out_dir: &Path,
    toolchains: &Path,
) -> Result<BuiltPlugin, BuildError> {
    let install = || install_componentize_js(toolchains);
    build_with(
        dir,
        out_dir,
        "componentize-js",
        install,
        |job, stage, script| {
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
        },
    )
}

/// Unless the component is up to date: installs the toolchain (`install`
/// returns what `command` runs), writes the WIT into a scratch directory,
/// and runs the `tool` command that `command` makes for the job and the
/// scratch directory.
fn build_with<T>(
    dir: &Path,
    out_dir: &Path,
    tool: &'static str,
    install: impl FnOnce() -> Result<T, BuildError>,
    command: impl FnOnce(&Job, &Path, T) -> Result<Command, BuildError>,
) -> Result<BuiltPlugin, BuildError> {
    let job = Job::new(dir, out_dir)?;
    if let Some(built) = job.up_to_date()? {
        return Ok(built);
    }
    let installed = install()?;
    let stage = job.stage()?;
    write_files(&stage.join("wit"), WIT)?;
    let command = command(&job, &stage, installed)?;
    job.finish(command, tool)
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

    /// The component, when it is newer than every file of the plugin and
    /// than `courier` itself (which embeds the SDK and the WIT).
    fn up_to_date(&self) -> Result<Option<BuiltPlugin>, BuildError> {
        let component = self.component();
        let Ok(built) = fs::metadata(&component).and_then(|m| m.modified()) else {
            return Ok(None);
        };
        let exe = std::env::current_exe()
            .and_then(fs::metadata)
            .and_then(|m| m.modified())
            .unwrap_or(SystemTime::now());
        let newest = newest_source(&self.dir).map_err(io_error(&self.dir))?;
        if built <= exe || newest.is_some_and(|newest| built <= newest) {
            return Ok(None);
        }
        let size = fs::metadata(&component)
            .map_err(io_error(&component))?
            .len();
        Ok(Some(BuiltPlugin {
            name: self.name.clone(),
            component,
            size,
        }))
    }

    /// An empty scratch directory beside the component.
    fn stage(&self) -> Result<PathBuf, BuildError> {
        let stage = self.out_dir.join(format!(".{}.build", self.name));
        remove_dir(&stage)?;
        fs::create_dir_all(&stage).map_err(io_error(&stage))?;
        Ok(stage)
    }

    /// Runs the componentizer, then moves its output into place and removes
    /// the scratch directory.
    fn finish(&self, mut command: Command, tool: &'static str) -> Result<BuiltPlugin, BuildError> {
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
        fs::rename(&partial, &component).map_err(io_error(&component))?;
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

/// The newest modification time among the plugin's files (hidden entries
/// and `node_modules` skipped).
fn newest_source(dir: &Path) -> io::Result<Option<SystemTime>> {
    let mut newest = None;
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        if skipped(&entry.file_name()) {
            continue;
        }
        let kind = entry.file_type()?;
        let time = if kind.is_dir() {
            newest_source(&entry.path())?
        } else {
            Some(entry.metadata()?.modified()?)
        };
        newest = newest.max(time);
    }
    Ok(newest)
}

/// Whether a plugin directory's entry stays out of the build.
fn skipped(name: &std::ffi::OsStr) -> bool {
    name.to_str()
        .is_none_or(|name| name.starts_with('.') || name == "node_modules")
}

/// Copies the plugin's files (not hidden ones, not `node_modules`) to `to`.
fn copy_sources(from: &Path, to: &Path) -> Result<(), BuildError> {
    for entry in fs::read_dir(from).map_err(io_error(from))? {
        let entry = entry.map_err(io_error(from))?;
        if skipped(&entry.file_name()) {
            continue;
        }
        let (source, target) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type().map_err(io_error(&source))?.is_dir() {
            fs::create_dir_all(&target).map_err(io_error(&target))?;
            copy_sources(&source, &target)?;
        } else {
            fs::copy(&source, &target).map_err(io_error(&target))?;
        }
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

fn remove_dir(dir: &Path) -> Result<(), BuildError> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(dir)(error)),
        _ => Ok(()),
    }
}

/// componentize-py in a venv under `toolchains`, installed on first use;
/// returns its program.
fn install_componentize_py(toolchains: &Path) -> Result<PathBuf, BuildError> {
    let dir = toolchains.join(format!("componentize-py-{COMPONENTIZE_PY}"));
    let program = dir.join("bin/componentize-py");
    if dir.join(INSTALLED).is_file() {
        return Ok(program);
    }
    remove_dir(&dir)?;
    eprintln!(
        "installing componentize-py {COMPONENTIZE_PY} into {}",
        dir.display()
    );
    let mut venv = Command::new("python3");
    venv.args(["-m", "venv"]).arg(&dir);
    run(venv)
        .map_err(|error| error.missing("python3 (3.10 or newer, with the venv module and pip)"))?;
    let mut pip = Command::new(dir.join("bin/pip"));
    pip.args(["install", "-q", "--disable-pip-version-check"])
        .arg(format!("componentize-py=={COMPONENTIZE_PY}"));
    run(pip).map_err(|error| error.install_failed("componentize-py", COMPONENTIZE_PY, "pip"))?;
    mark_installed(&dir)?;
    Ok(program)
}

/// componentize-js under `toolchains`, installed with npm on first use,
/// with the build script beside it; returns the script. Checks that `node`
/// is recent enough on every build.
fn install_componentize_js(toolchains: &Path) -> Result<PathBuf, BuildError> {
    check_node()?;
    let dir = toolchains.join(format!("componentize-js-{COMPONENTIZE_JS}"));
    if !dir.join(INSTALLED).is_file() {
        remove_dir(&dir)?;
        eprintln!(
            "installing componentize-js {COMPONENTIZE_JS} into {}",
            dir.display()
        );
        write_files(&dir, &[("package.json", "{\"private\": true}\n")])?;
        let mut npm = Command::new("npm");
        npm.args([
            "install",
            "--no-audit",
            "--no-fund",
            "--loglevel=error",
            "--prefix",
        ])
        .arg(&dir)
        .arg(format!(
            "@bytecodealliance/componentize-js@{COMPONENTIZE_JS}"
        ));
        run(npm)
            .map_err(|error| error.install_failed("componentize-js", COMPONENTIZE_JS, "npm"))?;
        mark_installed(&dir)?;
    }
    let script = dir.join("componentize_js.mjs");
    write_files(&dir, &[("componentize_js.mjs", COMPONENTIZE_JS_SCRIPT)])?;
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

fn mark_installed(dir: &Path) -> Result<(), BuildError> {
    write_files(dir, &[(INSTALLED, "")])
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
