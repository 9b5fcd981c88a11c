//! `courier build`: compiles plugin crates written in Rust to
//! `wasm32-unknown-unknown` and turns each `cdylib` into a component; Python
//! and JavaScript plugin directories go to [`componentize`].
//!
//! The language is the one given (`--lang`), else the directory's marker:
//! `Cargo.toml` (Rust), `app.py` (Python) or `app.js` (JavaScript).
//!
//! Two toolchains can build guests. The usual one is a rustup toolchain with
//! the `wasm32-unknown-unknown` target installed. Where that target cannot be
//! downloaded, Debian's packages `rustc-web cargo-web rust-web-src lld-22`
//! provide a second Rust whose cargo builds the standard library for wasm
//! itself (`-Zbuild-std`) and links with LLVM's `wasm-ld`. The paths of that
//! toolchain default to `/usr/bin/cargo` and `/usr/bin/rustc`; the environment
//! variables `COURIER_GUEST_CARGO`, `COURIER_GUEST_RUSTC` and
//! `COURIER_GUEST_LINKER` override them (the linker is otherwise `wasm-ld`, or
//! the newest `wasm-ld-NN`, on `PATH`). `COURIER_GUEST_TOOLCHAIN=rustup` or
//! `=debian` takes one route only; unset, the rustup route is preferred.
//!
//! Cargo's compiler output goes to the user's terminal; its JSON messages name
//! the `.wasm` files built, which are encoded as components with
//! `wit-component` (the world comes from the custom section the guest's
//! bindings embed) and written to `<out>/<crate-name>.wasm`.

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};

use wit_component::ComponentEncoder;

mod componentize;
mod install;

/// The target guests are built for: no WASI, so nothing to grant by accident.
const TARGET: &str = "wasm32-unknown-unknown";

/// The environment variable that picks a route: `rustup` or `debian`.
const TOOLCHAIN_VAR: &str = "COURIER_GUEST_TOOLCHAIN";

/// Where the Debian toolchain is installed unless the environment says otherwise.
const DEBIAN_CARGO: &str = "/usr/bin/cargo";
const DEBIAN_RUSTC: &str = "/usr/bin/rustc";

/// How to install a toolchain that can build guests.
const INSTALL_HINT: &str = "install one: `rustup target add wasm32-unknown-unknown`, or on \
     Debian/Ubuntu `apt-get install rustc-web cargo-web rust-web-src lld-22`";

/// A plugin's language.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Lang {
    /// A crate (or guest workspace) with `Cargo.toml`.
    Rust,
    /// A directory with `app.py`, built with componentize-py.
    Python,
    /// A directory with `app.js`, built with componentize-js.
    Js,
}

impl Lang {
    /// The file that marks a plugin directory of this language.
    fn marker(self) -> &'static str {
        match self {
            Self::Rust => "Cargo.toml",
            Self::Python => "app.py",
            Self::Js => "app.js",
        }
    }

    /// The language of the plugin in `dir`, by its marker file.
    pub(crate) fn detect(dir: &Path) -> Result<Self, BuildError> {
        let found: Vec<Self> = [Self::Rust, Self::Python, Self::Js]
            .into_iter()
            .filter(|lang| dir.join(lang.marker()).is_file())
            .collect();
        match found[..] {
            [lang] => Ok(lang),
            [] => Err(BuildError::NotAPlugin {
                path: dir.to_owned(),
            }),
            _ => Err(BuildError::Ambiguous {
                path: dir.to_owned(),
                markers: found.iter().map(|lang| lang.marker()).collect(),
            }),
        }
    }
}

/// What to build and where to put the components.
#[derive(Debug, Clone)]
pub(crate) struct BuildOptions {
    /// A plugin crate or a guest workspace (the directory holding
    /// `Cargo.toml`; a workspace builds all of its `cdylib` members), or a
    /// Python or JavaScript plugin directory.
    pub(crate) path: PathBuf,
    /// The plugin's language; `None` detects it from the directory.
    pub(crate) lang: Option<Lang>,
    /// Where the components are written, as `<crate-name>.wasm` (Rust) or
    /// `<directory name>.wasm` (Python, JavaScript). Cargo's own build
    /// directory is `wasm-build` beside it.
    pub(crate) out_dir: PathBuf,
    /// Where the Python and JavaScript toolchains are installed on first
    /// use (`None` when there is no cache directory).
    pub(crate) toolchains: Option<PathBuf>,
}

/// A component written by [`build`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BuiltPlugin {
    /// The crate (package) name.
    pub(crate) name: String,
    /// The component's path: `<out_dir>/<name>.wasm`.
    pub(crate) component: PathBuf,
    /// The component's size in bytes.
    pub(crate) size: u64,
}

/// A Rust toolchain that can build `wasm32-unknown-unknown` guests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Toolchain {
    /// `cargo` on `PATH`, whose `rustc` (or `$RUSTC`) has the target installed.
    Rustup,
    /// Debian's `cargo-web`/`rustc-web`, building the standard library from
    /// `rust-web-src` and linking with `wasm-ld`.
    Debian {
        /// Debian's cargo.
        cargo: PathBuf,
        /// Debian's rustc.
        rustc: PathBuf,
        /// The `wasm-ld` linker.
        linker: PathBuf,
    },
}

impl fmt::Display for Toolchain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Rustup => write!(f, "cargo with the {TARGET} target"),
            Self::Debian {
                cargo,
                rustc,
                linker,
            } => write!(
                f,
                "{} with {} (-Zbuild-std), linked by {}",
                cargo.display(),
                rustc.display(),
                linker.display()
            ),
        }
    }
}

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BuildError {
    /// Neither toolchain is usable.
    #[error("no Rust toolchain can build {TARGET} guests ({missing}); {INSTALL_HINT}")]
    NoToolchain {
        /// What was missing, route by route.
        missing: String,
    },
    /// `COURIER_GUEST_TOOLCHAIN` names no route.
    #[error("COURIER_GUEST_TOOLCHAIN={value:?}: expected `rustup` or `debian` (or unset)")]
    UnknownToolchain {
        /// The value found.
        value: OsString,
    },
    /// The path holds no `Cargo.toml`.
    #[error("{} holds no Cargo.toml: expected a plugin crate or a guest workspace", path.display())]
    NotACrate {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds none of the marker files.
    #[error(
        "{} holds no plugin: expected Cargo.toml (Rust), app.py (Python) or app.js (JavaScript)",
        path.display()
    )]
    NotAPlugin {
        /// The path given.
        path: PathBuf,
    },
    /// The directory holds the markers of several languages.
    #[error("{} holds {}: say which with --lang", path.display(), markers.join(" and "))]
    Ambiguous {
        /// The path given.
        path: PathBuf,
        /// The marker files found.
        markers: Vec<&'static str>,
    },
    /// The built component failed its build-time warm-up.
    #[error("warming up the component: {0}")]
    Prewarm(#[source] courier_host::PrewarmError),
    /// A tool the Python or JavaScript build needs is missing or broken.
    #[error("{what} is needed to build this plugin and is missing or broken")]
    Missing {
        /// What to install.
        what: String,
    },
    /// A pinned toolchain could not be installed.
    #[error("cannot install {what} (is the package index reachable?): {reason}")]
    Install {
        /// The package, its version and the installer.
        what: String,
        /// The installer's error.
        reason: String,
    },
    /// componentize-py or componentize-js failed; its diagnostics went to the terminal.
    #[error("{tool} failed ({status}); see its output above")]
    Componentize {
        /// The tool.
        tool: &'static str,
        /// Its exit status.
        status: ExitStatus,
    },
    /// A program could not be started.
    #[error("cannot run {}: {source}", program.display())]
    Spawn {
        /// The program.
        program: PathBuf,
        /// Why.
        source: io::Error,
    },
    /// `cargo build` failed; its diagnostics went to the terminal.
    #[error("cargo build failed ({status}); see the compiler output above")]
    Cargo {
        /// Cargo's exit status.
        status: ExitStatus,
    },
    /// Cargo built no `cdylib`.
    #[error(
        "{} built no plugin: a plugin crate needs `[lib] crate-type = [\"cdylib\"]`",
        path.display()
    )]
    NoPlugins {
        /// The path given.
        path: PathBuf,
    },
    /// A module could not be encoded as a component.
    #[error("{name}: cannot make a component of {}: {reason}", module.display())]
    Component {
        /// The crate name.
        name: String,
        /// The core module.
        module: PathBuf,
        /// What wit-component said.
        reason: String,
    },
    /// Reading or writing a file failed.
    #[error("{}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// Why.
        source: io::Error,
    },
}

/// Finds a toolchain that can build guests: the route named by
/// `COURIER_GUEST_TOOLCHAIN`, else a rustup toolchain with the target, else
/// Debian's (see the module documentation).
pub(crate) fn detect_toolchain() -> Result<Toolchain, BuildError> {
    detect(|name| std::env::var_os(name))
}

/// [`detect_toolchain`] with the environment `var`.
fn detect(var: impl Fn(&str) -> Option<OsString> + Copy) -> Result<Toolchain, BuildError> {
    let choice = var(TOOLCHAIN_VAR).unwrap_or_default();
    let found = match choice.to_str() {
        Some("") => rustup_toolchain(var).or_else(|rustup| {
            debian_toolchain(var).map_err(|debian| format!("{rustup}; {debian}"))
        }),
        Some("rustup") => rustup_toolchain(var),
        Some("debian") => debian_toolchain(var),
        _ => return Err(BuildError::UnknownToolchain { value: choice }),
    };
    found.map_err(|missing| BuildError::NoToolchain { missing })
}

/// Builds the plugin at `opts.path` into components in `opts.out_dir`.
pub(crate) fn build(opts: &BuildOptions) -> Result<Vec<BuiltPlugin>, BuildError> {
    let lang = match opts.lang {
        Some(lang) => lang,
        None => Lang::detect(&opts.path)?,
    };
    let (path, out) = (&opts.path, &opts.out_dir);
    let toolchains = || {
        let dir = opts
            .toolchains
            .as_deref()
            .ok_or_else(|| BuildError::Missing {
                what: "a directory for the toolchains (--cache-dir or COURIER_CACHE_DIR)".into(),
            })?;
        std::path::absolute(dir).map_err(io_error(dir))
    };
    match lang {
        Lang::Rust => build_rust(opts),
        Lang::Python => componentize::build_python(path, out, &toolchains()?).map(|p| vec![p]),
        Lang::Js => componentize::build_js(path, out, &toolchains()?).map(|p| vec![p]),
    }
}

/// Builds the plugin crate or every `cdylib` member of the workspace at
/// `opts.path` in release mode and writes one component per crate to
/// `opts.out_dir`.
fn build_rust(opts: &BuildOptions) -> Result<Vec<BuiltPlugin>, BuildError> {
    let manifest = opts.path.join("Cargo.toml");
    if !manifest.is_file() {
        return Err(BuildError::NotACrate {
            path: opts.path.clone(),
        });
    }
    let out_dir = std::path::absolute(&opts.out_dir).map_err(io_error(&opts.out_dir))?;
    let target_dir = out_dir.parent().unwrap_or(&out_dir).join("wasm-build");
    let toolchain = detect_toolchain()?;

    let mut cargo = toolchain.cargo_build();
    cargo
        .args([
            "--release",
            "--target",
            TARGET,
            "--message-format=json-render-diagnostics",
        ])
        .arg("--manifest-path")
        .arg(&manifest)
        .arg("--target-dir")
        .arg(&target_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    let output = cargo.output().map_err(|source| BuildError::Spawn {
        program: cargo.get_program().into(),
        source,
    })?;
    if !output.status.success() {
        return Err(BuildError::Cargo {
            status: output.status,
        });
    }

    let artifacts = cdylib_artifacts(&String::from_utf8_lossy(&output.stdout));
    if artifacts.is_empty() {
        return Err(BuildError::NoPlugins {
            path: opts.path.clone(),
        });
    }
    fs::create_dir_all(&out_dir).map_err(io_error(&out_dir))?;
    artifacts
        .into_iter()
        .map(|artifact| componentize(artifact, &out_dir))
        .collect()
}

impl Toolchain {
    /// `cargo build` with what this toolchain needs to target wasm.
    fn cargo_build(&self) -> Command {
        match self {
            Self::Rustup => {
                let mut command = Command::new("cargo");
                command.arg("build");
                command
            }
            Self::Debian {
                cargo,
                rustc,
                linker,
            } => {
                let mut command = Command::new(cargo);
                command
                    .arg("build")
                    .arg("-Zbuild-std=std,panic_abort")
                    // Unstable `-Z` flags on Debian's stable cargo.
                    .env("RUSTC_BOOTSTRAP", "1")
                    .env("RUSTC", rustc)
                    .env("CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_LINKER", linker)
                    // Set by rustup's proxies when courier runs under them;
                    // meaningless (or misleading) for Debian's cargo.
                    .env_remove("RUSTUP_TOOLCHAIN")
                    .env_remove("RUSTDOC");
                command
            }
        }
    }
}

/// `rustc --print sysroot`, if `rustc` runs.
fn sysroot(rustc: &Path) -> Option<PathBuf> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|output| output.status.success())?;
    let root = String::from_utf8(output.stdout).ok()?;
    Some(PathBuf::from(root.trim_end()))
}

/// Whether the sysroot holds the standard library built for [`TARGET`].
fn has_target(sysroot: &Path) -> bool {
    sysroot
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib")
        .is_dir()
}

/// Whether the sysroot holds the standard library's source (for `-Zbuild-std`).
fn has_library_source(sysroot: &Path) -> bool {
    sysroot.join("lib/rustlib/src/rust/library/std").is_dir()
}

/// The toolchain of `cargo` on `PATH` if its rustc (`$RUSTC`, else `rustc`)
/// has the target; the error says what is missing.
fn rustup_toolchain(var: impl Fn(&str) -> Option<OsString>) -> Result<Toolchain, String> {
    let rustc = var("RUSTC").map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
    match sysroot(&rustc) {
        Some(root) if has_target(&root) => Ok(Toolchain::Rustup),
        Some(root) => Err(format!("{} has no {TARGET} target", root.display())),
        None => Err(format!("`{} --print sysroot` failed", rustc.display())),
    }
}

/// Debian's toolchain, with paths taken from the environment `var`; the error
/// lists everything missing.
fn debian_toolchain(var: impl Fn(&str) -> Option<OsString>) -> Result<Toolchain, String> {
    let path_of =
        |name: &str, default: &str| var(name).map_or_else(|| default.into(), PathBuf::from);
    let cargo = path_of("COURIER_GUEST_CARGO", DEBIAN_CARGO);
    let rustc = path_of("COURIER_GUEST_RUSTC", DEBIAN_RUSTC);
    let linker = match var("COURIER_GUEST_LINKER") {
        Some(linker) => Some(PathBuf::from(linker)),
        None => var("PATH").and_then(|path| find_linker(&path)),
    };

    let mut missing = Vec::new();
    if !cargo.is_file() {
        missing.push(format!("no {} (cargo-web)", cargo.display()));
    }
    match sysroot(&rustc) {
        None => missing.push(format!("no working {} (rustc-web)", rustc.display())),
        Some(root) if !has_library_source(&root) => {
            missing.push(format!(
                "no library source in {} (rust-web-src)",
                root.display()
            ));
        }
        Some(_) => {}
    }
    match linker {
        Some(linker) if missing.is_empty() => Ok(Toolchain::Debian {
            cargo,
            rustc,
            linker,
        }),
        Some(_) => Err(missing.join(", ")),
        None => {
            missing.push("no wasm-ld on PATH (lld-22)".to_owned());
            Err(missing.join(", "))
        }
    }
}

/// `wasm-ld` on `path`, else the `wasm-ld-NN` with the highest `NN`.
fn find_linker(path: &OsStr) -> Option<PathBuf> {
    let dirs: Vec<PathBuf> = std::env::split_paths(path).collect();
    if let Some(plain) = dirs
        .iter()
        .map(|dir| dir.join("wasm-ld"))
        .find(|ld| ld.is_file())
    {
        return Some(plain);
    }
    dirs.iter()
        .filter_map(|dir| fs::read_dir(dir).ok())
        .flatten()
        .filter_map(|entry| {
            let entry = entry.ok()?;
            let version: u32 = entry
                .file_name()
                .to_str()?
                .strip_prefix("wasm-ld-")?
                .parse()
                .ok()?;
            entry.path().is_file().then(|| (version, entry.path()))
        })
        // The newest version; on a tie, the first on `PATH`.
        .min_by_key(|(version, _)| std::cmp::Reverse(*version))
        .map(|(_, linker)| linker)
}

/// A core module cargo built for a `cdylib` crate.
#[derive(Debug, PartialEq, Eq)]
struct Artifact {
    /// The crate's package name.
    name: String,
    /// The `.wasm` file.
    module: PathBuf,
}

/// The `cdylib` modules named in cargo's JSON messages (lines that are not
/// JSON, such as a proc macro's prints, are skipped).
fn cdylib_artifacts(messages: &str) -> Vec<Artifact> {
    messages
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|message| message["reason"] == "compiler-artifact")
        .filter(|message| {
            let kinds = message["target"]["kind"].as_array();
            kinds.is_some_and(|kinds| kinds.iter().any(|kind| kind == "cdylib"))
        })
        .filter_map(|message| {
            let name = package_name(message["package_id"].as_str()?)?;
            let files = message["filenames"].as_array()?;
            let module = files
                .iter()
                .filter_map(|file| file.as_str())
                .find(|f| f.ends_with(".wasm"))?;
            Some(Artifact {
                name: name.to_owned(),
                module: PathBuf::from(module),
            })
        })
        .collect()
}

/// The package name in a cargo package ID: `path+file:///dir/name#1.0.0`,
/// `path+file:///dir#name@1.0.0`, or the older `name 1.0.0 (source)`.
fn package_name(id: &str) -> Option<&str> {
    if let Some((name, _)) = id.split_once(' ') {
        return Some(name);
    }
    let (url, fragment) = id.rsplit_once('#')?;
    match fragment.split_once('@') {
        Some((name, _)) => Some(name),
        None => url
            .split('?')
            .next()?
            .rsplit('/')
            .next()
            .filter(|name| !name.is_empty()),
    }
}

/// Encodes the module as a component and writes `<out_dir>/<name>.wasm`
/// atomically (a temporary file renamed into place).
fn componentize(artifact: Artifact, out_dir: &Path) -> Result<BuiltPlugin, BuildError> {
    let module = fs::read(&artifact.module).map_err(io_error(&artifact.module))?;
    let component = ComponentEncoder::default()
        .module(&module)
        .and_then(|encoder| encoder.validate(true).encode())
        .map_err(|error| BuildError::Component {
            name: artifact.name.clone(),
            module: artifact.module.clone(),
            reason: format!("{error:#}"),
        })?;
    let path = out_dir.join(format!("{}.wasm", artifact.name));
    let partial = out_dir.join(format!(".{}.wasm.partial", artifact.name));
    fs::write(&partial, &component).map_err(io_error(&partial))?;
    fs::rename(&partial, &path).map_err(io_error(&path))?;
    Ok(BuiltPlugin {
        name: artifact.name,
        component: path,
        size: component.len() as u64,
    })
}

fn io_error(path: &Path) -> impl FnOnce(io::Error) -> BuildError + '_ {
    move |source| BuildError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Removes `dir` and what it holds, if it is there.
fn remove_dir(dir: &Path) -> Result<(), BuildError> {
    match fs::remove_dir_all(dir) {
        Err(error) if error.kind() != io::ErrorKind::NotFound => Err(io_error(dir)(error)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh, empty directory for one test, removed when dropped.
    struct Scratch(PathBuf);

    impl Scratch {
        fn new(name: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("courier-builder-{}-{name}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap();
            Self(dir)
        }

        fn file(&self, relative: &str) -> PathBuf {
            let path = self.0.join(relative);
            fs::create_dir_all(path.parent().unwrap()).unwrap();
            fs::write(&path, "").unwrap();
            path
        }
    }

    impl Drop for Scratch {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    #[test]
    fn the_language_is_the_one_marker_file() {
        let scratch = Scratch::new("lang");
        assert!(matches!(
            Lang::detect(&scratch.0),
            Err(BuildError::NotAPlugin { .. })
        ));
        for (marker, lang) in [
            ("py/app.py", Lang::Python),
            ("js/app.js", Lang::Js),
            ("rs/Cargo.toml", Lang::Rust),
        ] {
            let dir = scratch.file(marker).parent().unwrap().to_owned();
            assert_eq!(Lang::detect(&dir).unwrap(), lang, "{marker}");
        }
        scratch.file("py/app.js");
        let error = Lang::detect(&scratch.0.join("py")).unwrap_err();
        assert_eq!(
            error.to_string(),
            format!(
                "{} holds app.py and app.js: say which with --lang",
                scratch.0.join("py").display()
            )
        );
    }

    #[test]
    fn package_names_from_every_id_format() {
        assert_eq!(
            package_name("path+file:///src/plugins/http-request#0.1.0"),
            Some("http-request")
        );
        assert_eq!(
            package_name("path+file:///src/plugins/probe#wasi-probe@0.1.0"),
            Some("wasi-probe")
        );
        assert_eq!(
            package_name("registry+https://index.example/#serde@1.0.228"),
            Some("serde")
        );
        assert_eq!(
            package_name("git+https://example.test/repo?branch=main#0.2.0"),
            Some("repo")
        );
        assert_eq!(
            package_name("misbehave 0.1.0 (path+file:///src/misbehave)"),
            Some("misbehave")
        );
        assert_eq!(package_name("no-fragment"), None);
    }

    #[test]
    fn artifacts_are_the_cdylib_wasm_files() {
        let messages = [
            r#"{"reason":"compiler-artifact","package_id":"registry+https://index.example/#serde@1.0.228","target":{"kind":["lib"],"name":"serde"},"filenames":["/t/libserde.rlib"]}"#,
            r#"{"reason":"compiler-artifact","package_id":"path+file:///p/http-request#0.1.0","target":{"kind":["cdylib"],"name":"http_request"},"filenames":["/t/wasm32-unknown-unknown/release/http_request.wasm"],"fresh":true}"#,
            "a proc macro printed this",
            r#"{"reason":"compiler-artifact","package_id":"path+file:///p/fixtures/misbehave#0.1.0","target":{"kind":["cdylib","rlib"],"name":"misbehave"},"filenames":["/t/libmisbehave.rlib","/t/misbehave.wasm"]}"#,
            r#"{"reason":"build-finished","success":true}"#,
        ]
        .join("\n");
        assert_eq!(
            cdylib_artifacts(&messages),
            [
                Artifact {
                    name: "http-request".into(),
                    module: "/t/wasm32-unknown-unknown/release/http_request.wasm".into(),
                },
                Artifact {
                    name: "misbehave".into(),
                    module: "/t/misbehave.wasm".into()
                },
            ]
        );
    }

    #[test]
    fn linker_prefers_plain_wasm_ld_then_the_newest_version() {
        let scratch = Scratch::new("linker");
        let path = |dirs: &[&str]| {
            std::env::join_paths(dirs.iter().map(|dir| scratch.0.join(dir))).unwrap()
        };
        scratch.file("a/wasm-ld-19");
        let newest = scratch.file("b/wasm-ld-22");
        scratch.file("b/wasm-ld-x");
        scratch.file("c/wasm-ld-22");
        assert_eq!(find_linker(&path(&["a", "b", "c"])), Some(newest));
        let plain = scratch.file("d/wasm-ld");
        assert_eq!(find_linker(&path(&["a", "b", "d"])), Some(plain));
        assert_eq!(find_linker(&path(&["missing"])), None);
    }

    #[test]
    fn target_and_library_source_are_found_in_the_sysroot() {
        let scratch = Scratch::new("sysroot");
        assert!(!has_target(&scratch.0) && !has_library_source(&scratch.0));
        scratch.file("lib/rustlib/wasm32-unknown-unknown/lib/libstd.rlib");
        scratch.file("lib/rustlib/src/rust/library/std/Cargo.toml");
        assert!(has_target(&scratch.0) && has_library_source(&scratch.0));
    }

    /// Writes a stand-in rustc at `path` whose sysroot is `sysroot`.
    #[cfg(unix)]
    fn fake_rustc(path: &Path, sysroot: &Path) {
        use std::os::unix::fs::PermissionsExt;

        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, format!("#!/bin/sh\necho '{}'\n", sysroot.display())).unwrap();
        fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
    }

    #[cfg(unix)]
    #[test]
    fn routes_follow_the_environment_and_name_what_is_missing() {
        let scratch = Scratch::new("routes");
        let rustup_rustc = scratch.0.join("bin/rustup-rustc");
        fake_rustc(&rustup_rustc, &scratch.0.join("rustup"));
        let debian_rustc = scratch.0.join("bin/rustc");
        fake_rustc(&debian_rustc, &scratch.0.join("debian"));
        let debian_cargo = scratch.0.join("bin/cargo");
        let mut vars: Vec<(&str, PathBuf)> = vec![
            ("RUSTC", rustup_rustc),
            ("COURIER_GUEST_RUSTC", debian_rustc.clone()),
            ("COURIER_GUEST_CARGO", debian_cargo.clone()),
            ("PATH", scratch.0.join("bin")),
        ];
        let detect_with = |vars: &[(&str, PathBuf)], choice: &str| {
            let var = |name: &str| match name {
                TOOLCHAIN_VAR => Some(OsString::from(choice)),
                _ => vars
                    .iter()
                    .find(|(key, _)| *key == name)
                    .map(|(_, v)| v.clone().into()),
            };
            detect(var)
        };

        let Err(BuildError::NoToolchain { missing }) = detect_with(&vars, "") else {
            panic!("nothing is installed yet")
        };
        for what in [
            "has no wasm32-unknown-unknown target",
            "(cargo-web)",
            "(rust-web-src)",
            "(lld-22)",
        ] {
            assert!(missing.contains(what), "{what} in {missing}");
        }

        scratch.file("rustup/lib/rustlib/wasm32-unknown-unknown/lib/libstd.rlib");
        scratch.file("debian/lib/rustlib/src/rust/library/std/Cargo.toml");
        scratch.file("bin/cargo");
        let linker = scratch.file("bin/wasm-ld-22");
        assert_eq!(detect_with(&vars, "").unwrap(), Toolchain::Rustup);
        assert_eq!(detect_with(&vars, "rustup").unwrap(), Toolchain::Rustup);
        let debian = Toolchain::Debian {
            cargo: debian_cargo,
            rustc: debian_rustc,
            linker,
        };
        assert_eq!(detect_with(&vars, "debian").unwrap(), debian);
        vars.push(("COURIER_GUEST_LINKER", "/opt/llvm/wasm-ld".into()));
        let Toolchain::Debian { linker, .. } = detect_with(&vars, "debian").unwrap() else {
            panic!("the Debian route was asked for")
        };
        assert_eq!(linker, Path::new("/opt/llvm/wasm-ld"));
        assert!(matches!(
            detect_with(&vars, "nix"),
            Err(BuildError::UnknownToolchain { .. })
        ));
    }
}
