//! `courier serve`'s configuration: a TOML file (every key optional, unknown
//! keys refused by name), command-line flags over it, the environment over
//! the secret-bearing settings.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use courier_host::{AllowedHost, IpNet, Secret};
use serde::Deserialize;

/// The environment variable that overrides `admin_token`.
pub(crate) const ADMIN_TOKEN_ENV: &str = "COURIER_ADMIN_TOKEN";

/// The file in the data directory holding the first-run admin token.
pub(crate) const ADMIN_TOKEN_FILE: &str = "admin.token";

/// The configuration file, as written (README: "Service").
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Config {
    /// The address to listen on [default: 127.0.0.1:7878]; port 0 picks one.
    pub(crate) listen: Option<SocketAddr>,
    /// The data directory: the connection store, the service database, the
    /// first-run admin token [default: as the CLI's].
    pub(crate) data_dir: Option<PathBuf>,
    /// The operator's plugins: every `*.wasm` in it the service has not
    /// seen is installed at start, current and enabled for every tenant
    /// [default: the CLI's plugin directory].
    pub(crate) plugin_dir: Option<PathBuf>,
    /// The admin token; `$COURIER_ADMIN_TOKEN` overrides it.
    pub(crate) admin_token: Option<Secret>,
    /// The largest request body accepted, in bytes [default: 1 MiB].
    pub(crate) max_body_bytes: Option<usize>,
    /// The largest plugin component accepted by `POST /v1/plugins`, in
    /// bytes [default: 64 MiB].
    pub(crate) max_plugin_bytes: Option<usize>,
    /// How long steps in flight may take to finish after SIGTERM [default: 30].
    pub(crate) shutdown_grace_secs: Option<u64>,
    /// How long the service keeps accepting requests after SIGTERM, with
    /// `/readyz` answering 503, so that a load balancer stops sending to it
    /// first [default: 0].
    pub(crate) shutdown_drain_secs: Option<u64>,
    /// Fresh instances kept ready ahead of steps, at most one per plugin
    /// (`ConcurrencyLimits::spare_instances`) [default: 0].
    pub(crate) spare_instances: Option<usize>,
    /// Hosts steps may call (patterns as `courier run --allow-host`)
    /// [default: `https://*:*`, narrowed by each plugin's declaration].
    pub(crate) allow_hosts: Option<Vec<String>>,
    /// Special-purpose networks steps may reach by CIDR [default: none].
    pub(crate) allow_networks: Option<Vec<String>>,
    /// The step's wall-clock deadline in seconds [default: 30].
    pub(crate) step_deadline_secs: Option<f64>,
    /// Step history retention.
    #[serde(default)]
    pub(crate) history: HistoryConfig,
}

/// `[history]`: how long and how many step results are kept.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct HistoryConfig {
    /// Results older than this many seconds are deleted [default: 30 days].
    pub(crate) max_age_secs: Option<u64>,
    /// At most this many results per tenant, the newest [default: 10000].
    pub(crate) max_per_tenant: Option<u64>,
}

/// The settings the service runs with, defaults filled in.
#[derive(Debug)]
pub(crate) struct Settings {
    pub(crate) listen: SocketAddr,
    pub(crate) data_dir: PathBuf,
    pub(crate) plugin_dir: PathBuf,
    pub(crate) admin_token: Secret,
    pub(crate) max_body_bytes: usize,
    pub(crate) max_plugin_bytes: usize,
    pub(crate) shutdown_grace: Duration,
    pub(crate) shutdown_drain: Duration,
    pub(crate) spare_instances: usize,
    pub(crate) allow_hosts: Vec<AllowedHost>,
    pub(crate) allow_networks: Vec<IpNet>,
    pub(crate) step_deadline: Duration,
    pub(crate) history: Retention,
}

/// Step history retention, in force.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Retention {
    /// Oldest result kept, in milliseconds of age.
    pub(crate) max_age_ms: u64,
    /// Most results kept per tenant.
    pub(crate) max_per_tenant: u64,
}

/// What the command line gives, over the file.
pub(crate) struct Overrides {
    pub(crate) listen: Option<SocketAddr>,
    pub(crate) data_dir: Option<PathBuf>,
    pub(crate) default_data_dir: Option<PathBuf>,
    pub(crate) default_plugin_dir: PathBuf,
}

impl Config {
    /// Reads a configuration file; an unknown key is an error naming it.
    pub(crate) fn read(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        toml::from_str(&text).map_err(|e| anyhow::anyhow!("{}: {}", path.display(), e.message()))
    }

    /// Fills in defaults, applies the command line and the environment, and
    /// finds (or creates, on first run) the admin token.
    pub(crate) fn settings(self, over: Overrides) -> anyhow::Result<Settings> {
        let data_dir = over
            .data_dir
            .or(self.data_dir)
            .or(over.default_data_dir)
            .context("no data directory: pass --data-dir or set `data_dir`")?;
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("cannot create {}", data_dir.display()))?;
        let admin_token = match std::env::var(ADMIN_TOKEN_ENV) {
            Ok(t) => Secret::new(t),
            Err(_) => match self.admin_token {
                Some(t) => t,
                None => first_run_token(&data_dir.join(ADMIN_TOKEN_FILE))?,
            },
        };
        if admin_token.expose().len() < 16 {
            anyhow::bail!("the admin token must be at least 16 characters");
        }
        let allow_hosts = self
            .allow_hosts
            .unwrap_or_else(|| vec!["https://*:*".into()])
            .iter()
            .map(|h| h.parse().with_context(|| format!("allow_hosts: `{h}`")))
            .collect::<anyhow::Result<_>>()?;
        let allow_networks = self
            .allow_networks
            .unwrap_or_default()
            .iter()
            .map(|n| n.parse().with_context(|| format!("allow_networks: `{n}`")))
            .collect::<anyhow::Result<_>>()?;
        let deadline = self.step_deadline_secs.unwrap_or(30.0);
        if !(deadline > 0.0 && deadline <= 3600.0) {
            anyhow::bail!("step_deadline_secs must be between 0 and 3600");
        }
        let max_per_tenant = self.history.max_per_tenant.unwrap_or(10_000);
        if max_per_tenant == 0 {
            anyhow::bail!("[history] max_per_tenant must be at least 1");
        }
        Ok(Settings {
            listen: over
                .listen
                .or(self.listen)
                .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 7878))),
            data_dir,
            plugin_dir: self.plugin_dir.unwrap_or(over.default_plugin_dir),
            admin_token,
            max_body_bytes: self.max_body_bytes.unwrap_or(1 << 20),
            max_plugin_bytes: self.max_plugin_bytes.unwrap_or(64 << 20),
            shutdown_grace: Duration::from_secs(self.shutdown_grace_secs.unwrap_or(30)),
            shutdown_drain: Duration::from_secs(self.shutdown_drain_secs.unwrap_or(0)),
            spare_instances: self.spare_instances.unwrap_or(0),
            allow_hosts,
            allow_networks,
            step_deadline: Duration::from_secs_f64(deadline),
            history: Retention {
                max_age_ms: self
                    .history
                    .max_age_secs
                    .unwrap_or(30 * 24 * 3600)
                    .saturating_mul(1000),
                max_per_tenant,
            },
        })
    }
}

/// The admin token kept in `path`, created (owner-only, 0600) with a new
/// random token if there is none yet.
fn first_run_token(path: &Path) -> anyhow::Result<Secret> {
    match std::fs::read_to_string(path) {
        Ok(t) => return Ok(Secret::new(t.trim())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
    let token = super::auth::random_token()?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    std::io::Write::write_all(&mut file, token.as_bytes())?;
    eprintln!(
        "courier serve: created the admin token in {}",
        path.display()
    );
    Ok(Secret::new(token))
}
