//! `courier`: run a plugin step, inspect a plugin, build a plugin crate.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use courier_host::{AllowedHost, ConnectionConfig, Host, HostBuilder, IpNet, Limits, StepRequest};

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
    Run {
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
        /// Narrows the hosts steps may call (`https://api.example.com`,
        /// `https://*.example.com:*`); default: whatever the plugin declares.
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
    },
    /// Prints a plugin's manifest as JSON.
    Inspect {
        /// A plugin component file, or a plugin name in the plugin directory.
        plugin: String,
    },
    /// Builds a Rust plugin crate (or a workspace of them) into components.
    Build {
        /// The crate or workspace directory.
        #[arg(default_value = ".")]
        path: PathBuf,
        /// Where the components go.
        #[arg(long, default_value = "target/plugins")]
        out: PathBuf,
    },
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(match std::env::var("COURIER_LOG").as_deref() {
            Ok("debug") => tracing::Level::DEBUG,
            Ok("info") => tracing::Level::INFO,
            _ => tracing::Level::WARN,
        })
        .init();
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("courier: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let cache_dir = cli.cache_dir.or_else(default_cache_dir);
    let plugin_dir = cli
        .plugin_dir
        .or_else(|| std::env::var_os("COURIER_PLUGIN_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("target/plugins"));
    match cli.command {
        Command::Build { path, out } => {
            let built = courier_host::builder::build(&courier_host::builder::BuildOptions { path, out_dir: out })?;
            for p in built {
                println!("{} -> {} ({} bytes)", p.name, p.component.display(), p.size);
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { plugin } => runtime.block_on(async {
            let host = with_cache(Host::builder(), cache_dir).build()?;
            let report = host.load_plugin_file(&plugin_path(&plugin_dir, &plugin)).await?;
            let manifest = host.manifest(&report.name).context("the plugin disappeared")?;
            println!("{}", serde_json::to_string_pretty(&*manifest)?);
            Ok(ExitCode::SUCCESS)
        }),
        Command::Run { plugin, call, input, connections, networks, hosts, deadline, memory_mib, tenant, verbose, allow_insecure_tls } => {
            let input: serde_json::Value = serde_json::from_str(&input).context("--input is not valid JSON")?;
            let connections = connections.iter().map(|c| connection_arg(c)).collect::<anyhow::Result<Vec<_>>>()?;
            if !(deadline > 0.0 && deadline <= 3600.0) {
                bail!("--deadline must be between 0 and 3600 seconds");
            }
            let limits = Limits {
                step_deadline: Duration::from_secs_f64(deadline),
                memory_bytes: memory_mib.checked_mul(1 << 20).context("--memory-mib is too large")?,
                ..Limits::default()
            };
            let hosts = if hosts.is_empty() {
                // The CLI's operator is the person at the terminal: let the
                // plugin's own declaration decide which hosts it may call.
                vec!["https://*:*".parse()?, "http://*:*".parse()?]
            } else {
                hosts
            };
            runtime.block_on(async {
                let mut builder =
                    with_cache(Host::builder(), cache_dir).limits(limits).allow_insecure_tls(allow_insecure_tls);
                for h in hosts {
                    builder = builder.allow_host(h);
                }
                for n in networks {
                    builder = builder.allow_network(n);
                }
                let host = builder.build()?;
                let report = host.load_plugin_file(&plugin_path(&plugin_dir, &plugin)).await?;
                if verbose {
                    eprintln!("loaded {} ({:?} in {:.1} ms)", report.name, report.source, report.compile_ms);
                }
                let result = host.run_step(StepRequest { tenant, plugin: report.name, call, input, connections }).await;
                println!("{}", serde_json::to_string_pretty(&result)?);
                Ok(if result.outcome == courier_host::Outcome::Success { ExitCode::SUCCESS } else { ExitCode::FAILURE })
            })
        }
    }
}

fn with_cache(builder: HostBuilder, dir: Option<PathBuf>) -> HostBuilder {
    match dir {
        Some(d) => builder.cache_dir(d),
        None => builder,
    }
}

fn default_cache_dir() -> Option<PathBuf> {
    if let Some(d) = std::env::var_os("COURIER_CACHE_DIR") {
        return Some(d.into());
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| Path::new(&h).join(".cache")))?;
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
    let (slot, file) = arg.split_once('=').context("--connection takes SLOT=FILE")?;
    let config = ConnectionConfig::from_file(Path::new(file))?;
    if config.connection != slot {
        bail!("{file} binds connection `{}`, not `{slot}`", config.connection);
    }
    Ok(config)
}
