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

mod admission;
mod bindings;
mod clock;
mod compute;
mod credentials;
mod engine;
mod exchange;
mod limits;
mod manifest;
mod operator;
mod outbound;
mod outcome;
mod plugin;
mod prewarm;
mod secret;
mod shared;
mod spare;
mod state;
mod step;
mod stop;
mod store;
mod tls;
mod wasi;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Instant;

pub use admission::ConcurrencyLimits;
pub use clock::{Clock, SystemClock};
pub use courier_egress::{AllowedHost, PatternError};
pub use credentials::{
    ApiKey, Auth, Basic, Bearer, ClientSecrets, ConnectionAuth, ConnectionConfig, ConnectionError,
    Custom, Jwt, JwtExchange, JwtSecrets, KeySecret, NoCredential, NoSecrets, OAuth2,
    PasswordSecrets, RefreshTokenSecrets, Secrets, TokenSecret, UntypedAuth, UserPassword,
};
pub use engine::{CompileSource, PoolSlots, PoolUsage};
pub use ipnet::IpNet;
pub use limits::{ClientSettings, Limits, RateSettings};
pub use manifest::{
    AuthKind, AuthScheme, CallKind, CallSpec, ClientAuth, ConnectionSpec, JwtAlgorithm,
    JwtSettings, KeyLocation, Manifest, ManifestError, OAuth2Settings, PlacementTarget,
    SecretPlacement,
};
pub use operator::{ContractDrift, PluginPolicy};
pub use outbound::{
    Cassette, CircuitSettings, CircuitState, RateBudget, Recorder, Replayer, RequestRecord,
    Resolve, SystemResolver, Transport, TransportBody, TransportError, TransportRequest,
    TransportResponse,
};
pub use outcome::{FailureKind, Outcome};
pub use plugin::{LoadLimits, LoadReport};
pub use prewarm::{PrewarmError, prewarm};
pub use secret::Secret;
pub use state::LogLine;
pub use step::{Connection, StepConnection, StepFailure, StepRequest, StepResult};
pub use store::{
    ConnectionInfo, ConnectionStore, MASTER_KEY_ENV, MasterKey, SqliteStore, StoreError,
    StoreFuture,
};
pub use tls::TlsSettings;

use courier_egress::NetworkPolicy;
use credentials::{Caches, TokenManager, TokenPersistence};
use engine::{ComponentCache, EpochTicker};
use operator::OperatorPolicy;
use outbound::{Sender, SenderOptions, WrapTransport};
use plugin::Plugin;

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
    /// The host's configuration is inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// A plugin's manifest is invalid.
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    /// A connection cannot be bound: no such plugin or declared connection,
    /// or settings and secrets the declaration does not take.
    #[error("cannot bind connection: {0}")]
    Connection(String),
}

/// Configures a [`Host`]. Deny by default: no host is reachable until allowed,
/// and special-purpose networks (loopback, private, …) stay refused unless
/// allowed by CIDR.
pub struct HostBuilder {
    limits: Limits,
    client_settings: ClientSettings,
    concurrency: ConcurrencyLimits,
    load_limits: LoadLimits,
    cache_dir: Option<PathBuf>,
    allowed_hosts: Vec<AllowedHost>,
    allowed_networks: Vec<IpNet>,
    plugin_policies: HashMap<String, PluginPolicy>,
    contract_drift: ContractDrift,
    tenant_hosts: HashMap<String, Vec<AllowedHost>>,
    resolver: Arc<dyn Resolve>,
    transport: Option<Arc<dyn Transport>>,
    wrap_transport: Option<WrapTransport>,
    clock: Arc<dyn Clock>,
    circuits: CircuitSettings,
    store: Option<Arc<dyn ConnectionStore>>,
    allow_insecure_tls: bool,
    http2: bool,
    /// Off only through [`bench::without_epoch_interruption`].
    epoch_interruption: bool,
}

impl HostBuilder {
    /// Writes rotated refresh tokens and refusals of connections loaded from
    /// this store back to it (any [`ConnectionStore`]; [`SqliteStore`] is
    /// the embedded one).
    pub fn connection_store(mut self, store: Arc<dyn ConnectionStore>) -> Self {
        self.store = Some(store);
        self
    }

    /// Sets the host-wide per-step budgets; a plugin's policy may replace
    /// them for its steps ([`PluginPolicy::limits`]).
    pub fn limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets the settings of the shared HTTP clients and per-origin connection
    /// slots (connect and TLS handshake timeouts, response-head caps, pooling):
    /// host-wide, for every plugin.
    pub fn client_settings(mut self, settings: ClientSettings) -> Self {
        self.client_settings = settings;
        self
    }

    /// Sets the host-wide concurrency limits (steps overall, per tenant, per plugin).
    pub fn concurrency(mut self, limits: ConcurrencyLimits) -> Self {
        self.concurrency = limits;
        self
    }

    /// Sets the bounds on loading plugins (component size, compile time).
    pub fn load_limits(mut self, limits: LoadLimits) -> Self {
        self.load_limits = limits;
        self
    }

    /// Keeps compiled components in this directory (created owner-only).
    pub fn cache_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.cache_dir = Some(dir.into());
        self
    }

    /// Allows requests matching this pattern (the plugin's manifest must allow
    /// them too). A CIDR pattern (`https://10.0.0.0/8`) matches IP-literal
    /// URLs in that network and also allows connecting to it, as
    /// [`allow_network`](Self::allow_network) does.
    pub fn allow_host(mut self, pattern: AllowedHost) -> Self {
        self.allowed_networks.extend(pattern.network());
        self.allowed_hosts.push(pattern);
        self
    }

    /// Sets the operator's policy for one plugin: its own allowed hosts
    /// (replacing the host-wide ones) and its own step budgets. A budget it
    /// cannot have (more memory than the host-wide limit, a deadline or
    /// request timeout over 365 days) makes [`build`](Self::build) fail with
    /// [`HostError::Config`].
    pub fn plugin_policy(mut self, plugin: impl Into<String>, policy: PluginPolicy) -> Self {
        self.plugin_policies.insert(plugin.into(), policy);
        self
    }

    /// What a successful step whose output departs from its call's declared
    /// output schema does: listed in the result's `contract_drift` (the
    /// default), or also failed with kind `contract-drift`. A plugin's policy
    /// may choose otherwise for its steps.
    pub fn contract_drift(mut self, drift: ContractDrift) -> Self {
        self.contract_drift = drift;
        self
    }

    /// Narrows what one tenant's steps may call: a request must also match
    /// one of these patterns.
    pub fn tenant_hosts(mut self, tenant: impl Into<String>, hosts: Vec<AllowedHost>) -> Self {
        self.tenant_hosts.insert(tenant.into(), hosts);
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

    /// Whether HTTPS requests offer HTTP/2 (ALPN `h2` before `http/1.1`; the
    /// server chooses). On by default; off, HTTPS connections speak
    /// HTTP/1.1, except to the origins of a connection whose `[tls]` table
    /// says `http2 = true`. Cleartext requests always use HTTP/1.1.
    pub fn http2(mut self, offer: bool) -> Self {
        self.http2 = offer;
        self
    }

    /// Replaces the system resolver (used by the default transport).
    pub fn resolver(mut self, resolver: Arc<dyn Resolve>) -> Self {
        self.resolver = resolver;
        self
    }

    /// Replaces the default transport (hyper and rustls), through which
    /// every request leaves once the pipeline has checked it against the
    /// egress policy, added its credentials and bounded it by the step's
    /// limits; token requests go through it too. The replacement owns what
    /// the default does below that line: resolving names (the
    /// [`resolver`](Self::resolver) is not used), vetting the addresses
    /// against the allowed networks ([`allow_network`](Self::allow_network)
    /// still refuses IP-literal URLs, above the transport), TLS, pooling and
    /// the connect, TLS and first-byte timeouts. See [`Transport`].
    pub fn transport(mut self, transport: Arc<dyn Transport>) -> Self {
        self.transport = Some(transport);
        self
    }

    /// Puts a transport of `wrap`'s making in front of the host's
    /// transport (the default one, or the [`transport`](Self::transport)
    /// given), which `wrap` receives: a [`Recorder`] records what passes
    /// through it. Called once, when the host is built.
    pub fn wrap_transport(
        mut self,
        wrap: impl FnOnce(Arc<dyn Transport>) -> Arc<dyn Transport> + Send + 'static,
    ) -> Self {
        self.wrap_transport = Some(Box::new(wrap));
        self
    }

    /// Replaces the system clock the host reads token expiry and JWT times
    /// from, sleeps retry backoff on and times circuit breakers with (a
    /// test moves a manual clock instead of sleeping).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Sets how the per-origin circuit breakers open, probe and close
    /// (default [`CircuitSettings::default`];
    /// [`CircuitSettings::disabled`] turns them off).
    pub fn circuit_breaker(mut self, settings: CircuitSettings) -> Self {
        self.circuits = settings;
        self
    }

    /// Builds the host: engine, linker, clients. Fails with
    /// [`HostError::Config`], naming the plugin and the field, when a limit
    /// cannot be honoured.
    ///
    /// **Runtime.** Call it, and use the host, inside a Tokio runtime with
    /// the time and I/O drivers enabled (`#[tokio::main]`, or a
    /// `Builder::new_multi_thread().enable_all()` runtime): steps use Tokio
    /// timers for deadlines and Tokio sockets for requests. A
    /// multi-threaded runtime runs steps in parallel; a current-thread one
    /// works too, one step at a time. The epoch ticker that interrupts
    /// runaway plugins is a plain thread of its own, so a busy runtime does
    /// not delay it.
    pub fn build(self) -> Result<Host, HostError> {
        let policy = OperatorPolicy::new(
            self.allowed_hosts,
            self.limits,
            self.contract_drift,
            self.plugin_policies,
            self.tenant_hosts,
        )
        .map_err(HostError::Config)?;
        // Spares hold pool slots as steps do.
        let slots = self.concurrency.max_steps + self.concurrency.spare_instances;
        let engine = engine::build_engine(policy.limits(), slots, self.epoch_interruption)
            .map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let linker = plugin::linker(&engine).map_err(|e| HostError::Engine(format!("{e:#}")))?;
        let sender = Sender::new(
            self.transport,
            self.resolver,
            NetworkPolicy::allowing(self.allowed_networks),
            &self.client_settings,
            TokenManager::new(
                self.store
                    .map(|s| Arc::new(store::WriteBack(s)) as Arc<dyn TokenPersistence>),
                self.clock.clone(),
            ),
            SenderOptions {
                allow_insecure_tls: self.allow_insecure_tls,
                http2: self.http2,
                clock: self.clock,
                circuits: self.circuits,
                wrap_transport: self.wrap_transport,
            },
        );
        let ticker = self.epoch_interruption.then(|| EpochTicker::start(&engine));
        Ok(Host {
            inner: Arc::new(HostInner {
                engine,
                linker,
                cache: ComponentCache::new(self.cache_dir),
                load_limits: self.load_limits,
                sender: Arc::new(sender),
                caches: Caches::default(),
                policy,
                pool: engine::Pool::for_steps(slots),
                spares: spare::SpareBudget::new(self.concurrency.spare_instances),
                admission: admission::Admission::new(self.concurrency),
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
    linker: wasmtime::component::Linker<state::StepState>,
    cache: ComponentCache,
    load_limits: LoadLimits,
    sender: Arc<Sender>,
    /// What binding builds from connections' secrets (TLS material, JWT
    /// keys, scrubber automata), this host's alone.
    caches: Caches,
    policy: OperatorPolicy,
    admission: admission::Admission,
    /// The instance pool's size, as the engine was built with.
    pool: engine::Pool,
    /// How many spare instances the host may hold.
    spares: Arc<spare::SpareBudget>,
    plugins: RwLock<HashMap<String, Arc<Plugin>>>,
    _ticker: Option<EpochTicker>,
}

impl Host {
    /// Starts configuring a host.
    pub fn builder() -> HostBuilder {
        HostBuilder {
            limits: Limits::default(),
            client_settings: ClientSettings::default(),
            concurrency: ConcurrencyLimits::default(),
            load_limits: LoadLimits::default(),
            cache_dir: None,
            allowed_hosts: vec![],
            allowed_networks: vec![],
            plugin_policies: HashMap::new(),
            contract_drift: ContractDrift::default(),
            tenant_hosts: HashMap::new(),
            resolver: Arc::new(SystemResolver),
            transport: None,
            wrap_transport: None,
            clock: Arc::new(SystemClock),
            circuits: CircuitSettings::default(),
            store: None,
            allow_insecure_tls: false,
            http2: true,
            epoch_interruption: true,
        }
    }

    /// Loads a plugin component from a file; it replaces a loaded plugin of the same name.
    pub async fn load_plugin_file(&self, path: &Path) -> Result<LoadReport, HostError> {
        let bytes =
            std::fs::read(path).map_err(|e| HostError::Load(format!("{}: {e}", path.display())))?;
        self.load_plugin(&bytes).await
    }

    /// Loads a plugin component from its bytes: [`prepare_plugin`] then
    /// [`install_plugin`].
    ///
    /// [`prepare_plugin`]: Self::prepare_plugin
    /// [`install_plugin`]: Self::install_plugin
    pub async fn load_plugin(&self, bytes: &[u8]) -> Result<LoadReport, HostError> {
        Ok(self.install_plugin(self.prepare_plugin(bytes).await?))
    }

    /// Compiles, links and describes a plugin component and validates its
    /// manifest, without installing it: steps cannot run it until
    /// [`install_plugin`](Self::install_plugin). A service checks an
    /// upload this way, and reads what the plugin asks for before an admin
    /// approves it.
    pub async fn prepare_plugin(&self, bytes: &[u8]) -> Result<PreparedPlugin, HostError> {
        let (plugin, report) = Plugin::load(&self.inner, bytes).await?;
        Ok(PreparedPlugin { plugin, report })
    }

    /// Installs a prepared plugin under its manifest's name, replacing the
    /// one of that name at once for the steps that start from now on;
    /// steps already running finish on the instance they started with.
    pub fn install_plugin(&self, prepared: PreparedPlugin) -> LoadReport {
        let PreparedPlugin { plugin, report } = prepared;
        let plugin = Arc::new(plugin);
        let name = plugin.manifest.name.clone();
        self.inner
            .plugins
            .write()
            .expect("plugin registry poisoned")
            .insert(name, plugin.clone());
        step::refill_spare(&plugin, &self.inner);
        report
    }

    /// How many steps hold a slot of the instance pool now: admitted and
    /// not yet ended (at most [`ConcurrencyLimits::max_steps`]).
    pub fn steps_running(&self) -> usize {
        self.inner.admission.running()
    }

    /// The instance pool's slots in use now, and how many there are, by
    /// kind (wasmtime's own count of what it has allocated).
    pub fn pool_usage(&self) -> PoolUsage {
        self.inner.pool.usage(&self.inner.engine)
    }

    /// The manifest of a loaded plugin.
    pub fn manifest(&self, plugin: &str) -> Option<Arc<Manifest>> {
        self.plugin(plugin).map(|p| p.manifest.clone())
    }

    fn plugin(&self, name: &str) -> Option<Arc<Plugin>> {
        self.inner
            .plugins
            .read()
            .expect("plugin registry poisoned")
            .get(name)
            .cloned()
    }

    /// Binds a connection to a loaded plugin's declared connection for a
    /// tenant, once: steps that name the returned [`Connection`] share the
    /// binding (settings checked, secrets copied, token cache and scrubber
    /// built once) instead of binding a [`ConnectionConfig`] each time.
    ///
    /// ```no_run
    /// # async fn demo(host: courier_host::Host) -> Result<(), courier_host::HostError> {
    /// use courier_host::{Auth, ConnectionConfig, StepRequest};
    /// let config = ConnectionConfig::new("default", Auth::bearer("secret-token-value"))
    ///     .base_url("https://api.example.com");
    /// let connection = host.bind_connection("acme", "http-request", config)?;
    /// let step = StepRequest {
    ///     tenant: "acme".into(),
    ///     plugin: "http-request".into(),
    ///     call: "request".into(),
    ///     input: serde_json::json!({"url": "/users"}),
    ///     connections: vec![connection.clone().into()],
    /// };
    /// let result = host.run_step(step).await;
    /// # Ok(()) }
    /// ```
    pub fn bind_connection(
        &self,
        tenant: &str,
        plugin: &str,
        config: ConnectionConfig,
    ) -> Result<Connection, HostError> {
        let loaded = self
            .plugin(plugin)
            .ok_or_else(|| HostError::Connection(format!("no plugin `{plugin}` is loaded")))?;
        Connection::bind(&loaded, &self.inner, tenant, config).map_err(HostError::Connection)
    }

    /// Whether a tenant's token-based connection (by connection id) needs
    /// re-authorization because its token endpoint refused the client or the
    /// grant; `None` if no step has used it since the host started.
    pub fn needs_reauthorization(&self, tenant: &str, connection_id: &str) -> Option<bool> {
        self.inner
            .sender
            .tokens()
            .needs_reauthorization(tenant, connection_id)
    }

    /// The state of the circuit breaker of `origin` (`https://host[:port]`,
    /// the port only when not the scheme's default): `Closed` for an origin
    /// never called or with the breaker off.
    pub fn circuit_state(&self, origin: &str) -> CircuitState {
        self.inner.sender.circuit_state(origin)
    }

    /// The rate budget of `tenant`'s connection `connection_id` (the
    /// connection file's `id`, else the declared connection's name), as
    /// every step of this host shares it: `None` when the host keeps none
    /// (no `[rate]` table and no exhausted rate limit announced, or not
    /// used since it was evicted).
    pub fn rate_budget(&self, tenant: &str, connection_id: &str) -> Option<RateBudget> {
        self.inner.sender.rate_budget(tenant, connection_id)
    }

    /// Runs one step in a fresh instance, once the concurrency limits admit
    /// it. Never fails: every ending is a classified [`StepResult`].
    pub async fn run_step(&self, request: StepRequest) -> StepResult {
        self.run_step_until(request, std::future::pending()).await
    }

    /// Runs a step as [`Host::run_step`] does, but ends it early if `stop`
    /// completes first (a service's shutdown grace running out): outcome
    /// `timeout`, kind `deadline`, what `stop` returned as the message. The
    /// records of the requests it made are kept; a request in flight ends
    /// as at the step deadline and is recorded too.
    pub async fn run_step_until(
        &self,
        request: StepRequest,
        stop: impl Future<Output = String>,
    ) -> StepResult {
        let started = Instant::now();
        let (stopper, stopped) = stop::channel();
        let run = async {
            let step = tokio::select! {
                admitted = self.admit(&request, started) => match admitted {
                    Ok(admitted) => admitted,
                    Err(rejected) => return *rejected,
                },
                () = stopped.stopped() => {
                    return StepResult::stopped(stopped.why().unwrap_or_default(), started);
                }
            };
            step::run(
                step.plugin,
                &self.inner,
                step.policy,
                request,
                &step.permit.compute,
                (started, stopped.clone()),
            )
            .await
        };
        let mut run = std::pin::pin!(run);
        tokio::select! {
            result = &mut run => return result,
            why = stop => stopper.stop(why),
        }
        run.await
    }

    /// Finds the step's plugin, waits for the concurrency limits to admit
    /// it and resolves its policy; the result of a step that cannot run.
    async fn admit(
        &self,
        request: &StepRequest,
        started: Instant,
    ) -> Result<Admitted, Box<StepResult>> {
        let Some(plugin) = self.plugin(&request.plugin) else {
            return Err(Box::new(StepResult::rejected(
                FailureKind::InvalidStep,
                format!("no plugin `{}` is loaded", request.plugin),
                started,
            )));
        };
        let permit = self
            .inner
            .admission
            .admit(&request.tenant, &request.plugin)
            .await
            .map_err(|why| Box::new(StepResult::refused(why, started)))?;
        let policy = self.inner.policy.for_step(&request.tenant, &request.plugin);
        Ok(Admitted {
            plugin,
            permit,
            policy,
        })
    }
}

/// A plugin compiled, linked and described by [`Host::prepare_plugin`],
/// not yet installed.
pub struct PreparedPlugin {
    plugin: Plugin,
    report: LoadReport,
}

impl PreparedPlugin {
    /// Its validated manifest (what it declares: hosts, connections and
    /// their auth schemes, calls).
    pub fn manifest(&self) -> &Manifest {
        &self.plugin.manifest
    }
}

/// A step the host has admitted: its plugin, its concurrency permit (held
/// until the step ends) and its policy.
struct Admitted {
    plugin: Arc<Plugin>,
    permit: admission::Permit,
    policy: operator::Effective,
}

/// Hooks for the benchmark suite, which measures the parts of a step against
/// each other: only with the `bench` feature, which product builds leave
/// off. Not a stable API, and not for production: a reused instance carries
/// state from one invocation to the next.
#[cfg(feature = "bench")]
pub mod bench {
    use super::*;
    pub use step::{DescribedInstance, ReusedInstance};

    /// Builds the host without epoch interruption, to measure what it costs
    /// (goal G7). **For measurement only:** epochs are what let the step
    /// deadline interrupt a plugin that computes without calling the host.
    /// Without them the deadline still ends a step at its next host call
    /// (a request, a log line), but a plugin looping on its own runs until it
    /// returns, so only trusted plugins may run on such a host.
    pub fn without_epoch_interruption(builder: HostBuilder) -> HostBuilder {
        HostBuilder {
            epoch_interruption: false,
            ..builder
        }
    }

    /// An instance of `plugin` to run steps on again and again.
    pub async fn reused_instance(host: &Host, plugin: &str) -> Result<ReusedInstance, String> {
        let plugin = host.plugin(plugin).ok_or("no such plugin")?;
        ReusedInstance::new(plugin, &host.inner.engine, host.inner.policy.limits()).await
    }

    /// A fresh instance of `plugin` that has answered `describe`.
    pub async fn described_instance(
        host: &Host,
        plugin: &str,
    ) -> Result<DescribedInstance, String> {
        let plugin = host.plugin(plugin).ok_or("no such plugin")?;
        DescribedInstance::new(&plugin, &host.inner.engine, host.inner.policy.limits()).await
    }

    /// The guest instructions the SDK's warm-up call costs on a fresh
    /// instance of a Python or JS `component` (warmed up or not).
    pub async fn warm_up_fuel(component: &[u8]) -> Result<u64, PrewarmError> {
        prewarm::warm_up_fuel(component).await
    }

    /// The scrubber for a set of secrets, to time scrubbing alone.
    pub struct Scrubbing(credentials::Scrubber);

    impl Scrubbing {
        /// A scrubber that knows these secrets (with caches of its own).
        pub fn new(secrets: &[&str]) -> Self {
            let scrubber = credentials::Scrubber::new([], &Caches::default());
            for secret in secrets {
                scrubber.learn(&Secret::new(*secret));
            }
            Self(scrubber)
        }

        /// Scrubs a response body, as the host does before the plugin sees it.
        pub fn body(&self, data: Vec<u8>) -> Vec<u8> {
            self.0.body(data)
        }
    }

    /// Runs a step like [`Host::run_step`], on `instance` instead of a fresh one.
    pub async fn run_reused(
        host: &Host,
        instance: &mut ReusedInstance,
        request: StepRequest,
    ) -> StepResult {
        let started = Instant::now();
        let step = match host.admit(&request, started).await {
            Ok(admitted) => admitted,
            Err(rejected) => return *rejected,
        };
        instance
            .run(
                &step.plugin,
                &host.inner,
                step.policy,
                request,
                &step.permit.compute,
                started,
            )
            .await
    }
}
