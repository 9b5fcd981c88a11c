//! `courier`: run a plugin step, inspect a plugin, build a plugin crate,
//! manage stored connections. The command line over the library's public API
//! (and `build`, which needs no host at all).

mod build;
mod curl;
mod infer;
mod new;
#[cfg(feature = "serve")]
mod serve;
mod test;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use courier_host::{
    AllowedHost, ConnectionConfig, Host, HostBuilder, IpNet, Limits, MASTER_KEY_ENV, MasterKey,
    SqliteStore, StepRequest,
};

/// Courier: a WebAssembly plugin host for API request steps.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Where compiled components are cached [default: $COURIER_CACHE_DIR,
    /// else $XDG_CACHE_HOME/courier, else ~/.cache/courier].
    #[arg(long, global = true)]
    cache_dir: Option<PathBuf>,
    /// Where plugins named without a path are found [default: $COURIER_PLUGIN_DIR, else target/plugins].
    #[arg(long, global = true)]
    plugin_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Runs one step and prints its result as JSON; exits 0 only for `success`.
    Run(StepArgs),
    /// Runs a call once (or reads a sample response) and prints the JSON
    /// Schema inferred from its output, for the plugin author to adopt as
    /// the call's output schema.
    Initialize {
        #[command(flatten)]
        step: StepArgs,
        /// Infers from this sample output (a JSON file) instead of running the call.
        #[arg(long)]
        sample: Option<PathBuf>,
        /// Writes the schema to this file instead of stdout.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs a plugin's test cases (`courier-test.toml`) through the host,
    /// answering their requests from cassettes, offline; `--record` sends
    /// them to the live upstream and writes the cassettes, every secret
    /// replaced by `[REDACTED]`. Exits 0 only when every case passes.
    Test {
        /// A plugin component file, or a plugin name in the plugin directory.
        plugin: String,
        /// The test cases file.
        #[arg(long, default_value = "courier-test.toml")]
        cases: PathBuf,
        /// Where the cassettes are [default: `cassettes/` beside the cases file].
        #[arg(long)]
        cassettes: Option<PathBuf>,
        /// Sends to the live upstream and (re)writes the cassettes.
        #[arg(long)]
        record: bool,
    },
    /// Prints a plugin's manifest as JSON.
    Inspect {
        /// A plugin component file, or a plugin name in the plugin directory.
        plugin: String,
    },
    /// Manages stored connections: secrets are encrypted at rest and write-only.
    Connections {
        /// The data directory holding the store and the master key file
        /// [default: $COURIER_DATA_DIR, else $XDG_DATA_HOME/courier, else ~/.local/share/courier].
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(subcommand)]
        command: ConnectionsCommand,
    },
    /// Turns a cURL command (from an API's docs) into an `http-request`
    /// input and a connection file, the credential moved into `[secrets]`;
    /// options Courier cannot reproduce are named.
    Curl {
        /// The cURL command as pasted, quoted as one argument.
        command: String,
        /// Writes `input.json` and `connection.toml` (owner-only) into this
        /// directory instead of printing them as JSON.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Runs the HTTP service: tenants, connections, steps, history.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
    /// Writes a new plugin crate from a template: it builds with `courier
    /// build` and passes its own `cargo test` at once.
    New {
        /// The plugin's name (lowercase letters, digits and `-`); also the
        /// crate's name and, unless `--dir` says otherwise, its directory.
        name: String,
        /// The directory to write the crate into [default: ./NAME].
        #[arg(long)]
        dir: Option<PathBuf>,
        /// The Courier SDK's directory (`guest-sdk/` of Courier's source
        /// tree), which the crate depends on by path [default:
        /// $COURIER_SDK, else the SDK of the tree courier was built from].
        #[arg(long)]
        sdk: Option<PathBuf>,
    },
    /// Builds a plugin into a component: a Rust crate (or a workspace of
    /// them), a Python or a JavaScript plugin directory. The Python and
    /// JavaScript toolchains are installed on first use under
    /// `<cache dir>/toolchains`; their components are kept while the
    /// digest of their inputs is unchanged.
    Build {
        /// The plugin directory: a Rust crate or workspace (Cargo.toml), a
        /// Python plugin (app.py) or a JavaScript plugin (app.js).
        #[arg(default_value = ".")]
        path: PathBuf,
        /// The plugin's language [default: detected from the directory].
        #[arg(long, value_enum)]
        lang: Option<build::Lang>,
        /// Where the components go.
        #[arg(long, default_value = "target/plugins")]
        out: PathBuf,
    },
}

/// What `run` and `initialize` need to run one step.
#[derive(clap::Args)]
struct StepArgs {
    /// A plugin component file, or a plugin name in the plugin directory.
    plugin: String,
    /// The call to invoke.
    call: String,
    /// The call's input, as JSON.
    #[arg(long, default_value = "{}")]
    input: String,
    /// Binds a declared connection to a connection file: SLOT=FILE.
    #[arg(long = "connection", value_name = "SLOT=FILE")]
    connections: Vec<String>,
    /// Allows a special-purpose network by CIDR (e.g. 127.0.0.1/32); refused by default.
    #[arg(long = "allow-network", value_name = "CIDR")]
    networks: Vec<IpNet>,
    /// Lets connection files turn TLS verification off (`[tls]`
    /// `verify_host`/`verify_peer = false`); such requests are marked insecure.
    #[arg(long)]
    allow_insecure_tls: bool,
    /// Keeps HTTPS requests on HTTP/1.1 (no `h2` offered by ALPN), except
    /// to the origins of a connection whose `[tls]` says `http2 = true`.
    #[arg(long)]
    no_http2: bool,
    /// Narrows the hosts steps may call (`https://api.example.com`,
    /// `https://*.example.com:*`), optionally to a path (`/v1/orders`) or
    /// everything under one (`https://api.example.com/v1/*`); default:
    /// whatever the plugin declares.
    #[arg(long = "allow-host", value_name = "PATTERN")]
    hosts: Vec<AllowedHost>,
    /// The step's wall-clock deadline in seconds.
    #[arg(long, default_value_t = 30.0)]
    deadline: f64,
    /// Memory limit per instance, in MiB.
    #[arg(long, default_value_t = 64)]
    memory_mib: usize,
    /// The tenant the step runs for.
    #[arg(long, default_value = "default")]
    tenant: String,
    /// Prints how the plugin was loaded (compiled or cached) on stderr.
    #[arg(short, long)]
    verbose: bool,
}

#[derive(Subcommand)]
enum ConnectionsCommand {
    /// Stores (or replaces) a connection from a connection file.
    Set {
        /// The connection id within the tenant.
        id: String,
        /// The connection file (TOML).
        file: PathBuf,
        /// The plugin (name) whose declared connection it binds.
        #[arg(long)]
        plugin: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Lists stored connections as JSON: metadata and secret names, never values.
    List {
        /// Only this tenant's connections.
        #[arg(long)]
        tenant: Option<String>,
    },
    /// Deletes a stored connection.
    Delete {
        /// The connection id.
        id: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
    },
    /// Runs the plugin's verification call (or `--call`) with a stored
    /// connection and prints the step result; records whether it needs re-authorization.
    Test {
        /// The connection id.
        id: String,
        /// The tenant.
        #[arg(long, default_value = "default")]
        tenant: String,
        /// The call to run instead of the declared verification call.
        #[arg(long)]
        call: Option<String>,
        /// The call's input, as JSON.
        #[arg(long, default_value = "{}")]
        input: String,
        /// Allows a special-purpose network by CIDR (e.g. 127.0.0.1/32).
        #[arg(long = "allow-network", value_name = "CIDR")]
        networks: Vec<IpNet>,
    },
    /// Re-wraps every stored data key under a new master key (key file only),
    /// in one transaction; the old key file is replaced afterwards.
    RotateMasterKey,
}

/// Runs the command line: parses it, runs the command, maps errors to exit
/// code 2.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    let level = match std::env::var("COURIER_LOG").as_deref() {
        Ok("debug") => tracing::Level::DEBUG,
        Ok("info") => tracing::Level::INFO,
        Ok("warn") => tracing::Level::WARN,
        _ if cli.serves() => tracing::Level::INFO,
        _ => tracing::Level::WARN,
    };
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    #[cfg(feature = "serve")]
    if cli.serves() {
        // The service logs structured JSON, one object per line.
        logs.json().init();
    } else {
        logs.init();
    }
    #[cfg(not(feature = "serve"))]
    logs.init();
    match run(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("courier: {e:#}");
            ExitCode::from(2)
        }
    }
}

impl Cli {
    /// Whether the command is `serve`.
    fn serves(&self) -> bool {
        #[cfg(feature = "serve")]
        if let Command::Serve(_) = self.command {
            return true;
        }
        false
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let cache_dir = cli.cache_dir.or_else(default_cache_dir);
    let plugin_dir = cli
        .plugin_dir
        .or_else(|| std::env::var_os("COURIER_PLUGIN_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/plugins"));
    match cli.command {
        Command::Build { path, lang, out } => {
            let built = build::build(&build::BuildOptions {
                path,
                lang,
                out_dir: out,
                toolchains: cache_dir.map(|dir| dir.join("toolchains")),
            })?;
            for p in built {
                println!("{} -> {} ({} bytes)", p.name, p.component.display(), p.size);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::New { name, dir, sdk } => {
            let dir = dir.unwrap_or_else(|| PathBuf::from(&name));
            for file in new::new_plugin(&name, &dir, sdk)? {
                println!("wrote {}", file.display());
            }
            println!("next: cd {} && cargo test && courier build", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Command::Curl { command, out } => {
            let imported = curl::import(&command)?;
            for note in &imported.notes {
                eprintln!("note: {note}");
            }
            match out {
                Some(dir) => write_imported(&dir, &imported)?,
                None => println!(
                    "{}",
                    serde_json::to_string_pretty(&serde_json::json!({
                        "input": imported.input,
                        "connection": imported.connection,
                    }))?
                ),
            }
            Ok(ExitCode::SUCCESS)
        }
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::serve(
            &runtime,
            args,
            serve::Defaults {
                plugin_dir,
                data_dir: default_data_dir(),
                builder: with_cache(Host::builder(), cache_dir),
            },
        ),
        Command::Connections { data_dir, command } => {
            let data_dir = data_dir
                .or_else(default_data_dir)
                .context("no data directory: pass --data-dir")?;
            connections(&runtime, &data_dir, command, cache_dir, &plugin_dir)
        }
        Command::Test {
            plugin,
            cases,
            cassettes,
            record,
        } => test::test(
            &runtime,
            || {
                any_host()
                    .into_iter()
                    .fold(with_cache(Host::builder(), cache_dir.clone()), |b, h| {
                        b.allow_host(h)
                    })
            },
            test::TestOptions {
                plugin: plugin_path(&plugin_dir, &plugin),
                cases,
                cassettes,
                record,
            },
        ),
        Command::Inspect { plugin } => runtime.block_on(async {
            let host = with_cache(Host::builder(), cache_dir).build()?;
            let report = host
                .load_plugin_file(&plugin_path(&plugin_dir, &plugin))
                .await?;
            let manifest = host
                .manifest(&report.name)
                .context("the plugin disappeared")?;
            println!("{}", serde_json::to_string_pretty(&*manifest)?);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Run(step) => {
            let result = run_step(&runtime, cache_dir, &plugin_dir, step)?;
            println!("{}", serde_json::to_string_pretty(&result)?);
            Ok(if result.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            })
        }
        Command::Initialize { step, sample, out } => {
            let output = match sample {
                Some(file) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("reading {}", file.display()))?;
                    serde_json::from_str(&text)
                        .with_context(|| format!("{} is not JSON", file.display()))?
                }
                None => {
                    let call = step.call.clone();
                    let result = run_step(&runtime, cache_dir, &plugin_dir, step)?;
                    match (result.is_success(), result.output) {
                        (true, Some(output)) => output,
                        (_, _) => bail!(
                            "the call `{call}` did not succeed ({}): {}",
                            serde_json::to_string(&result.outcome)?,
                            result.error.map(|e| e.message).unwrap_or_default()
                        ),
                    }
                }
            };
            let schema = serde_json::to_string_pretty(&infer::infer([&output]))? + "\n";
            match out {
                Some(file) => std::fs::write(&file, schema)
                    .with_context(|| format!("writing {}", file.display()))?,
                None => print!("{schema}"),
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs the step `args` describe on a host of its own.
fn run_step(
    runtime: &tokio::runtime::Runtime,
    cache_dir: Option<PathBuf>,
    plugin_dir: &Path,
    args: StepArgs,
) -> anyhow::Result<courier_host::StepResult> {
    let StepArgs {
        plugin,
        call,
        input,
        connections,
        networks,
        hosts,
        deadline,
        memory_mib,
        tenant,
        verbose,
        allow_insecure_tls,
        no_http2,
    } = args;
    let input: serde_json::Value =
        serde_json::from_str(&input).context("--input is not valid JSON")?;
    let connections = connections
        .iter()
        .map(|c| connection_arg(c))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if !(deadline > 0.0 && deadline <= 3600.0) {
        bail!("--deadline must be between 0 and 3600 seconds");
    }
    let limits = Limits {
        step_deadline: Duration::from_secs_f64(deadline),
        memory_bytes: memory_mib
            .checked_mul(1 << 20)
            .context("--memory-mib is too large")?,
        ..Limits::default()
    };
    let hosts = if hosts.is_empty() { any_host() } else { hosts };
    runtime.block_on(async {
        let mut builder = with_cache(Host::builder(), cache_dir)
            .limits(limits)
            .allow_insecure_tls(allow_insecure_tls)
            .http2(!no_http2);
        for h in hosts {
            builder = builder.allow_host(h);
        }
        for n in networks {
            builder = builder.allow_network(n);
        }
        let host = builder.build()?;
        let report = host
            .load_plugin_file(&plugin_path(plugin_dir, &plugin))
            .await?;
        if verbose {
            eprintln!(
                "loaded {} ({:?} in {:.1} ms)",
                report.name, report.source, report.compile_ms
            );
        }
        Ok(host
            .run_step(StepRequest {
                tenant,
                plugin: report.name,
                call,
                input,
                connections: connections.into_iter().map(Into::into).collect(),
            })
            .await)
    })
}

/// `courier connections …`.
fn connections(
    runtime: &tokio::runtime::Runtime,
    data_dir: &Path,
    command: ConnectionsCommand,
    cache_dir: Option<PathBuf>,
    plugin_dir: &Path,
) -> anyhow::Result<ExitCode> {
    let open = || SqliteStore::open_in(data_dir);
    match command {
        ConnectionsCommand::RotateMasterKey => {
            if std::env::var_os(MASTER_KEY_ENV).is_some() {
                bail!(
                    "the master key comes from ${MASTER_KEY_ENV}: rotation replaces the key file only"
                );
            }
            let mut store = open()?;
            let new = MasterKey::generate()?;
            let pending = data_dir.join("master.key.new");
            new.write_new_file(&pending)?;
            let id = new.id();
            let n = store.rotate_master_key(new)?;
            std::fs::rename(&pending, SqliteStore::key_file(data_dir))
                .with_context(|| format!("the records now use the key in {}", pending.display()))?;
            println!("{n} connections re-wrapped under master key {id}");
        }
        ConnectionsCommand::Set {
            id,
            file,
            plugin,
            tenant,
        } => {
            let text = zeroize::Zeroizing::new(
                std::fs::read_to_string(&file)
                    .with_context(|| format!("cannot read {}", file.display()))?,
            );
            open()?.put(&tenant, &id, &plugin, &text)?;
            println!("stored connection `{id}` for tenant `{tenant}`");
        }
        ConnectionsCommand::List { tenant } => {
            println!(
                "{}",
                serde_json::to_string_pretty(&open()?.list(tenant.as_deref())?)?
            );
        }
        ConnectionsCommand::Delete { id, tenant } => {
            if !open()?.delete(&tenant, &id)? {
                bail!("no connection `{id}` for tenant `{tenant}`");
            }
            println!("deleted connection `{id}` of tenant `{tenant}`");
        }
        ConnectionsCommand::Test {
            id,
            tenant,
            call,
            input,
            networks,
        } => {
            let input: serde_json::Value =
                serde_json::from_str(&input).context("--input is not valid JSON")?;
            let store = std::sync::Arc::new(open()?);
            let (plugin, config) = store.get(&tenant, &id)?;
            return runtime.block_on(async {
                let mut builder = with_cache(Host::builder(), cache_dir)
                    .connection_store(store.clone())
                    .allow_host("https://*:*".parse()?)
                    .allow_host("http://*:*".parse()?);
                for n in networks {
                    builder = builder.allow_network(n);
                }
                let host = builder.build()?;
                let report = host
                    .load_plugin_file(&plugin_path(plugin_dir, &plugin))
                    .await?;
                let manifest = host
                    .manifest(&report.name)
                    .context("the plugin disappeared")?;
                let call = match call {
                    Some(c) => c,
                    None => manifest
                        .connection(&config.connection)
                        .and_then(|c| c.verify_call.clone())
                        .with_context(|| {
                            format!(
                                "`{plugin}` declares no verification call for `{}`: pass --call",
                                config.connection
                            )
                        })?,
                };
                let request = StepRequest {
                    tenant: tenant.clone(),
                    plugin: report.name,
                    call,
                    input,
                    connections: vec![config.into()],
                };
                let result = host.run_step(request).await;
                let needs = host.needs_reauthorization(&tenant, &id).unwrap_or(false);
                store.set_needs_reauthorization(&tenant, &id, needs)?;
                println!("{}", serde_json::to_string_pretty(&result)?);
                Ok(if result.outcome == courier_host::Outcome::Success {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::FAILURE
                })
            });
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `$COURIER_DATA_DIR`, else `$XDG_DATA_HOME/courier`, else `~/.local/share/courier`.
fn default_data_dir() -> Option<PathBuf> {
    user_dir("COURIER_DATA_DIR", "XDG_DATA_HOME", ".local/share")
}

/// Every host: the CLI's operator is the person at the terminal, so the
/// plugin's own declaration decides which hosts it may call.
fn any_host() -> Vec<AllowedHost> {
    ["https://*:*", "http://*:*"]
        .map(|p| p.parse().expect("a valid pattern"))
        .into()
}

fn with_cache(builder: HostBuilder, dir: Option<PathBuf>) -> HostBuilder {
    match dir {
        Some(d) => builder.cache_dir(d),
        None => builder,
    }
}

/// `$COURIER_CACHE_DIR`, else `$XDG_CACHE_HOME/courier`, else `~/.cache/courier`.
fn default_cache_dir() -> Option<PathBuf> {
    user_dir("COURIER_CACHE_DIR", "XDG_CACHE_HOME", ".cache")
}

/// `$own` as given, else `courier` under `$xdg`, else under `~/<home_relative>`.
fn user_dir(own: &str, xdg: &str, home_relative: &str) -> Option<PathBuf> {
    if let Some(d) = std::env::var_os(own) {
        return Some(d.into());
    }
    let base = std::env::var_os(xdg)
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(home_relative)))?;
    Some(base.join("courier"))
}

/// A file path as given, else `<dir>/<name>.wasm`.
fn plugin_path(dir: &Path, plugin: &str) -> PathBuf {
    let given = PathBuf::from(plugin);
    if given.exists() || plugin.contains('/') || plugin.ends_with(".wasm") {
        given
    } else {
        dir.join(format!("{plugin}.wasm"))
    }
}

/// Parses `SLOT=FILE` and checks the file binds that slot.
fn connection_arg(arg: &str) -> anyhow::Result<ConnectionConfig> {
    let (slot, file) = arg
        .split_once('=')
        .context("--connection takes SLOT=FILE")?;
    let config = ConnectionConfig::from_file(Path::new(file))?;
    if config.connection != slot {
        bail!(
            "{file} binds connection `{}`, not `{slot}`",
            config.connection
        );
    }
    Ok(config)
}

/// Writes an imported cURL command: `input.json`, and `connection.toml`
/// readable by the owner only (it holds the secret).
fn write_imported(dir: &Path, imported: &curl::Imported) -> anyhow::Result<()> {
    use std::io::Write as _;
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let input = dir.join("input.json");
    std::fs::write(
        &input,
        serde_json::to_string_pretty(&imported.input)? + "\n",
    )?;
    let connection = dir.join("connection.toml");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
        .open(&connection)
        .and_then(|mut f| f.write_all(imported.connection.as_bytes()))
        .with_context(|| format!("writing {}", connection.display()))?;
    eprintln!(
        "wrote {} and {}\nrun: courier run http-request request --input \"$(cat {})\" --connection default={}",
        input.display(),
        connection.display(),
        input.display(),
        connection.display()
    );
    Ok(())
}
