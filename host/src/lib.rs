//! Courier host: runs integration plugins (WebAssembly components) as request
//! steps. The host alone performs network I/O and alone holds credentials.
//!
//! ```no_run
//! # async fn demo() -> Result<(), courier_host::HostError> {
//! use courier_host::{Host, StepRequest};
//! let host = Host::builder().allow_host("https://*".parse().unwrap()).build()?;
//! let report = host.load_plugin_file("target/plugins/http-request.wasm".as_ref()).await?;
//! let result = host
//!     .run_step(StepRequest {
//!         tenant: "acme".into(),
//!         plugin: report.name,
//!         call: "request".into(),
//!         input: serde_json::json!({"url": "https://example.com/"}),
//!         connections: vec![],
//!     })
//!     .await;
//! println!("{}", serde_json::to_string_pretty(&result).unwrap());
//! # Ok(()) }
//! ```

mod bindings;
pub mod builder;
mod credentials;
mod engine;
mod limits;
mod manifest;
mod outbound;
mod plugin;
mod policy;
mod step;
mod tls;
mod wasi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

pub use credentials::{AuthKind, ConnectionConfig, ConnectionError, Secret, Secrets};
pub use engine::CompileSource;
pub use ipnet::IpNet;
pub use limits::Limits;
pub use manifest::{AuthScheme, CallKind, CallSpec, ConnectionSpec, KeyLocation, Manifest, ManifestError};
pub use outbound::{RequestRecord, Resolve, SystemResolver};
pub use plugin::LoadReport;
pub use policy::{AllowedHost, PatternError};
pub use step::{LogLine, Outcome, StepFailure, StepRequest, StepResult};
pub use tls::TlsSettings;

use engine::{ComponentCache, EpochTicker};
use outbound::Sender;
use plugin::Plugin;
use policy::NetworkPolicy;

/// Errors of setting up the host or loading plugins. Step failures are not
/// errors: they are [`StepResult`]s.
#[derive(Debug, thiserror::Error)]
pub enum HostError {
    /// The wasmtime engine could not be built.
    #[error("engine: {0}")]
    Engine(String),
    /// A plugin could not be read, compiled, linked or described.
    #[error("cannot load plugin: {0}")]
    Load(String),
    /// A plugin's manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
}

/// Configures a [`Host`]. Deny by default: no host is reachable until allowed,
/// and special-purpose networks (loopback, private, …) stay refused unless
/// allowed by CIDR.
pub struct HostBuilder {
    limits: Limits,
    cache_dir: Option<PathBuf>,
    allowed_hosts: Vec<AllowedHost>,
    allowed_networks: Vec<IpNet>,
    resolver: Arc<dyn Resolve>,
    allow_insecure_tls: bool,
}

impl HostBuilder {
    /// Sets the per-step limits.
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Keeps compiled components in this directory (created owner-only).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Allows requests matching this pattern (the plugin's manifest must allow
    /// them too).
    pub fn allow_host(mut self, pattern: AllowedHost) -> Self {
        self.allowed_hosts.push(pattern);
        self
    }

    /// Allows connections to addresses in this network even if it is a
    /// special-purpose range (loopback, private, link-local, …).
    pub fn allow_network(mut self, net: IpNet) -> Self {
        self.allowed_networks.push(net);
        self
    }

    /// Lets connection files turn TLS verification off (`verify_host` /
    /// `verify_peer = false` in `[tls]`); without it such a request is
    /// `denied`. Each relaxed request is marked `insecure` in the step result
    /// and logged. Off by default.
    pub fn allow_insecure_tls(mut self, allow: bool) -> Self {
        self.allow_insecure_tls = allow;
        self
    }

    /// Replaces the system resolver.
    pub fn resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Builds the host: engine, linker, client. Must be called within a tokio runtime.
    pub fn build(self) -> Result<Host, HostError> {
        let engine = engine::build_engine(&self.limits).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let linker = plugin::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let sender = Sender::new(
            self.resolver,
            NetworkPolicy::allowing(self.allowed_networks),
            self.allowed_hosts,
            &self.limits,
            self.allow_insecure_tls,
        );
        let ticker = EpochTicker::start(&engine);
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache: ComponentCache::new(self.cache_dir),
                sender: Arc::new(sender),
                limits: Arc::new(self.limits),
                plugins: RwLock::new(HashMap::new()),
                _ticker: ticker,
            }),
        })
    }
}

/// The plugin host: load plugins once, run steps many times, concurrently.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

pub(crate) struct HostInner {
    engine: wasmtime::Engine,
    linker: wasmtime::component::Linker<step::StepState>,
    cache: ComponentCache,
    sender: Arc<Sender>,
    limits: Arc<Limits>,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    _ticker: EpochTicker,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            limits: Limits::default(),
            cache_dir: None,
            allowed_hosts: vec![],
            allowed_networks: vec![],
            resolver: Arc::new(SystemResolver),
            allow_insecure_tls: false,
        }
    }

    /// Loads a plugin component from a file; it replaces a loaded plugin of the same name.
    pub async fn load_plugin_file(&self, path: &Path) -> Result<LoadReport, HostError> {
        let bytes = std::fs::read(path).map_err(|e| HostError::Load(format!("{}: {e}", path.display())))?;
        self.load_plugin(&bytes).await
    }

    /// Loads a plugin component from its bytes.
    pub async fn load_plugin(&self, bytes: &[u8]) -> Result<LoadReport, HostError> {
        let (plugin, report) = Plugin::load(&self.inner, bytes).await?;
        let name = plugin.manifest.name.clone();
        self.inner.plugins.write().expect("plugin registry poisoned").insert(name, Arc::new(plugin));
        Ok(report)
    }

    /// The manifest of a loaded plugin.
    pub fn manifest(&self, plugin: &str) -> Option<Arc<Manifest>> {
        self.plugin(plugin).map(|p| p.manifest.clone())
    }

    fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.inner.plugins.read().expect("plugin registry poisoned").get(name).cloned()
    }

    /// Runs one step in a fresh instance. Never fails: every ending is a
    /// classified [`StepResult`].
    pub async fn run_step(&self, request: StepRequest) -> StepResult {
        let Some(plugin) = self.plugin(&request.plugin) else {
            return StepResult::rejected(
                "invalid-step",
                format!("no plugin `{}` is loaded", request.plugin),
                Instant::now(),
            );
        };
        step::run(plugin, &self.inner.engine, self.inner.sender.clone(), self.inner.limits.clone(), request).await
    }
}
