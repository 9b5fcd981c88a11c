//! Running one step: a fresh store and instance (its data, with the host
//! side of the plugin's imports, is [`crate::state`]), the deadline, and the
//! classification of what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use courier_egress::AllowedHost;
use serde::Serialize;
use wasmtime::Store;

use crate::HostInner;
use crate::compute::ComputeShare;
use crate::credentials::{BoundConnection, ConnectionConfig, Scrubber};
use crate::exchange::{PluginError, SendError};
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::operator::{ContractDrift, Effective};
use crate::outbound::{RequestRecord, StepTraffic};
use crate::outcome::{FailureKind, Outcome};
use crate::plugin::Plugin;
use crate::spare::Spare;
use crate::state::{LogLine, OutboundCtx, StepOutput, StepState};
use crate::stop::Stop;

/// A step to run: which plugin, which call, what input, which connections.
#[derive(Debug)]
pub struct StepRequest {
    /// The tenant the step runs for.
    pub tenant: String,
    /// The plugin's name (from its manifest).
    pub plugin: String,
    /// The call to invoke.
    pub call: String,
    /// The call's input. Its objects reach the plugin with their keys in
    /// the order they were written (courier-host turns on `serde_json`'s
    /// `preserve_order`), so a plugin can send them in that order.
    pub input: serde_json::Value,
    /// Connections for this step, each naming a declared connection: a
    /// configuration bound when the step starts, or a [`Connection`] bound
    /// once with [`crate::Host::bind_connection`].
    pub connections: Vec<StepConnection>,
}

/// A connection a step uses.
#[derive(Debug, Clone)]
pub enum StepConnection {
    /// Bound when the step starts (a binding of the same content for the
    /// same tenant and plugin is reused when its scheme allows it).
    Config(Box<ConnectionConfig>),
    /// Bound once, shared by every step that names it.
    Bound(Connection),
}

impl From<ConnectionConfig> for StepConnection {
    fn from(config: ConnectionConfig) -> Self {
        Self::Config(Box::new(config))
    }
}

impl From<Connection> for StepConnection {
    fn from(connection: Connection) -> Self {
        Self::Bound(connection)
    }
}

/// A connection bound once to a loaded plugin's declared connection for one
/// tenant ([`crate::Host::bind_connection`]): its settings checked, its
/// secrets copied, its token cache and scrubber built once, however many
/// steps use it. Cloning is cheap. A step of another tenant or plugin
/// refuses it; after the plugin is loaded again, each step binds the
/// configuration anew to the new declaration.
#[derive(Debug, Clone)]
pub struct Connection {
    inner: Arc<BoundOnce>,
}

#[derive(Debug)]
struct BoundOnce {
    tenant: String,
    plugin: String,
    /// The declaration it was bound to.
    manifest: Arc<Manifest>,
    config: ConnectionConfig,
    bound: Arc<BoundConnection>,
}

impl Connection {
    /// Binds `config` to the plugin's declaration for `tenant`.
    pub(crate) fn bind(
        plugin: &Plugin,
        host: &HostInner,
        tenant: &str,
        config: ConnectionConfig,
    ) -> Result<Self, String> {
        let bound = bind(plugin, host, tenant, config.clone())?;
        Ok(Self {
            inner: Arc::new(BoundOnce {
                tenant: tenant.to_owned(),
                plugin: plugin.manifest.name.clone(),
                manifest: plugin.manifest.clone(),
                config,
                bound,
            }),
        })
    }

    /// The declared connection it binds.
    pub fn name(&self) -> &str {
        &self.inner.config.connection
    }

    /// The tenant it is bound for.
    pub fn tenant(&self) -> &str {
        &self.inner.tenant
    }

    /// The plugin it is bound to.
    pub fn plugin(&self) -> &str {
        &self.inner.plugin
    }

    /// The binding for a step of `tenant` on `plugin`.
    fn for_step(
        &self,
        plugin: &Plugin,
        host: &HostInner,
        tenant: &str,
    ) -> Result<Arc<BoundConnection>, String> {
        let once = &self.inner;
        if once.tenant != tenant {
            return Err(format!(
                "connection `{}` is bound for another tenant",
                self.name()
            ));
        }
        if once.plugin != plugin.manifest.name {
            return Err(format!(
                "connection `{}` is bound to plugin `{}`",
                self.name(),
                once.plugin
            ));
        }
        if Arc::ptr_eq(&once.manifest, &plugin.manifest) {
            return Ok(once.bound.clone());
        }
        bind(plugin, host, tenant, once.config.clone())
    }
}

/// Binds `config` to the plugin's declared connection it names, for `tenant`.
fn bind(
    plugin: &Plugin,
    host: &HostInner,
    tenant: &str,
    config: ConnectionConfig,
) -> Result<Arc<BoundConnection>, String> {
    let name = &config.connection;
    let spec = plugin.manifest.connection(name).ok_or_else(|| {
        format!(
            "plugin `{}` declares no connection `{name}`",
            plugin.manifest.name
        )
    })?;
    plugin
        .bindings
        .bind(spec, config, tenant, host.sender.tokens(), &host.caches)
        .map_err(|e| e.to_string())
}

/// Why a step did not succeed.
#[derive(Debug, Clone, Serialize)]
pub struct StepFailure {
    /// A stable kind: a `send-error` case (`denied`, `timeout`, …), `http`,
    /// `invalid-input`, `invalid-step`, `plugin`, `trap`, `memory`,
    /// `deadline`, `limit`.
    pub kind: FailureKind,
    /// A description that never contains a secret.
    pub message: String,
}

/// What a step produced.
#[derive(Debug, Clone, Serialize)]
pub struct StepResult {
    /// The class of the ending.
    pub outcome: Outcome,
    /// The call's output (also for `http-error` when the plugin returns it).
    pub output: Option<serde_json::Value>,
    /// Why it failed, unless `success`.
    pub error: Option<StepFailure>,
    /// The upstream status, for `http-error`.
    pub status: Option<u16>,
    /// Wall-clock time of the step.
    pub duration_ms: u64,
    /// Every outbound request, secrets redacted.
    pub requests: Vec<RequestRecord>,
    /// The plugin's log lines.
    pub logs: Vec<LogLine>,
    /// Log lines dropped over the step's log budget.
    pub logs_dropped: u32,
    /// Where a successful step's output departs from its call's declared
    /// output schema (the contract drifted); absent when it matches.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub contract_drift: Vec<String>,
}

impl StepResult {
    /// Whether the step succeeded (its outcome is [`Outcome::Success`]).
    pub fn is_success(&self) -> bool {
        self.outcome == Outcome::Success
    }

    /// The kind of failure, unless the step succeeded.
    pub fn failure_kind(&self) -> Option<FailureKind> {
        self.error.as_ref().map(|e| e.kind)
    }

    /// A step that failed before the plugin ran.
    pub(crate) fn rejected(kind: FailureKind, message: String, started: Instant) -> Self {
        Self::failed(Outcome::Error, kind, message, started)
    }

    /// A step stopped by its embedder before it started.
    pub(crate) fn stopped(message: String, started: Instant) -> Self {
        Self::failed(Outcome::Timeout, FailureKind::Deadline, message, started)
    }

    /// A step the concurrency limits did not admit.
    pub(crate) fn refused(message: String, started: Instant) -> Self {
        Self::failed(Outcome::MaxConnection, FailureKind::Limit, message, started)
    }

    fn failed(outcome: Outcome, kind: FailureKind, message: String, started: Instant) -> Self {
        Self {
            outcome,
            output: None,
            error: Some(failure(kind, message)),
            status: None,
            duration_ms: started.elapsed().as_millis() as u64,
            requests: vec![],
            logs: vec![],
            logs_dropped: 0,
            contract_drift: vec![],
        }
    }

    /// Checks a successful step's output against the call's output schema:
    /// a mismatch is listed, and fails the step when `drift` says so.
    fn check_contract(mut self, plugin: &Plugin, call: &str, drift: ContractDrift) -> Self {
        let Some(output) = self.output.as_ref().filter(|_| self.is_success()) else {
            return self;
        };
        self.contract_drift = plugin.output_drift(call, output);
        if drift == ContractDrift::Fail && !self.contract_drift.is_empty() {
            self.outcome = Outcome::Error;
            self.error = Some(failure(
                FailureKind::ContractDrift,
                format!(
                    "the output does not match the call's output schema: {}",
                    self.contract_drift.join("; ")
                ),
            ));
        }
        self
    }
}

/// Runs one step of a loaded plugin of `host`, in a fresh store and instance.
pub(crate) async fn run(
    plugin: Arc<Plugin>,
    host: &HostInner,
    policy: Effective,
    req: StepRequest,
    compute: &ComputeShare,
    (started, stop): (Instant, Stop),
) -> StepResult {
    let (limits, drift) = (policy.limits.clone(), policy.drift);
    let (state, call, input) = match prepare(&plugin, host, policy, req, compute, (started, stop)) {
        Ok(prepared) => prepared,
        Err(rejected) => return *rejected,
    };
    // Without spares (the default) a step takes no lock for them.
    let spare = host
        .spares
        .enabled()
        .then(|| plugin.spare.take(limits.memory_bytes))
        .flatten()
        .map(Spare::into_parts);
    let (mut store, spare) = match spare {
        Some((mut store, invoke)) => {
            *store.data_mut() = state;
            store.data().compute().clone().install(&mut store);
            (store, Some(invoke))
        }
        None => (new_store(&host.engine, state), None),
    };
    let result = within_deadline(&mut store, async |store| {
        let invoke = match spare {
            Some(invoke) => invoke,
            None => plugin.instantiate_invoke(store).await?,
        };
        invoke.call(store, call.clone(), input).await
    })
    .await;
    let result =
        finish(store.data_mut(), result, &limits, started).check_contract(&plugin, &call, drift);
    // Once the step is done, not while it runs: the next spare costs this
    // step nothing (with idle cores between steps, nothing at all).
    drop(store);
    refill_spare(&plugin, host);
    result
}

/// Makes a spare instance of `plugin` in the background, unless it has one
/// or the host holds as many as it may ([`crate::ConcurrencyLimits::spare_instances`]).
pub(crate) fn refill_spare(plugin: &Arc<Plugin>, host: &HostInner) {
    if !host.spares.enabled() || !plugin.spare.is_empty() {
        return;
    }
    let Some(ticket) = host.spares.reserve() else {
        return;
    };
    let (plugin, engine) = (plugin.clone(), host.engine.clone());
    let limits = host.policy.limits().clone();
    // On a thread of its own, not as a task: a task spawned from a step
    // runs next on that step's worker, ahead of the step itself.
    let runtime = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        let mut store = new_store(&engine, StepState::for_describe(&limits));
        // A failed instantiation (the pool full) leaves the next step to
        // instantiate its own, as without spares.
        if let Ok(invoke) = runtime.block_on(plugin.instantiate_invoke(&mut store)) {
            let spare = Spare::new(store, invoke, limits.memory_bytes, ticket);
            plugin.spare.put(spare);
        }
    });
}

/// The plugin's allowed hosts for one step: with the origin of each bound
/// connection's base URL that they do not already allow, so a host is
/// written once, when the connection was handed to the step by the
/// embedder or the CLI (`BoundConnection::base_url_allowed`; a stored
/// connection, which a tenant may have written, widens nothing). The
/// operator's and tenant's host lists still apply on top; without a base
/// URL nothing is added.
fn with_base_urls<'a>(
    declared: &Arc<[AllowedHost]>,
    connections: impl Iterator<Item = &'a Arc<BoundConnection>>,
) -> Arc<[AllowedHost]> {
    let added: Vec<AllowedHost> = connections
        .filter(|c| c.base_url_allowed)
        .filter_map(|c| c.base_url.as_ref())
        .filter(|base| !declared.iter().any(|h| h.matches(base)))
        .filter_map(AllowedHost::origin_of)
        .collect();
    if added.is_empty() {
        return declared.clone();
    }
    declared.iter().cloned().chain(added).collect()
}

/// Checks a step request against the plugin and binds its connections
/// (through `host`'s token manager and caches); returns the step's state,
/// call and input text, or why it is rejected.
fn prepare(
    plugin: &Arc<Plugin>,
    host: &HostInner,
    policy: Effective,
    req: StepRequest,
    compute: &ComputeShare,
    (started, stop): (Instant, Stop),
) -> Result<(StepState, String, String), Box<StepResult>> {
    let reject =
        |kind: FailureKind, message: String| Box::new(StepResult::rejected(kind, message, started));
    let Effective {
        hosts: operator_hosts,
        tenant_hosts,
        limits,
        drift: _,
    } = policy;
    if plugin.manifest.call(&req.call).is_none() {
        let known: Vec<&str> = plugin
            .manifest
            .calls
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        return Err(reject(
            FailureKind::InvalidStep,
            format!(
                "plugin `{}` has no call `{}` (calls: {})",
                plugin.manifest.name,
                req.call,
                known.join(", ")
            ),
        ));
    }
    plugin
        .validate_input(&req.call, &req.input)
        .map_err(|problems| reject(FailureKind::InvalidInput, problems))?;
    let mut connections = HashMap::new();
    for connection in req.connections {
        let bound = match connection {
            StepConnection::Config(config) => bind(plugin, host, &req.tenant, *config),
            StepConnection::Bound(bound) => bound.for_step(plugin, host, &req.tenant),
        }
        .map_err(|message| reject(FailureKind::InvalidStep, message))?;
        let name = bound.name.clone();
        if connections.insert(name.clone(), bound).is_some() {
            return Err(reject(
                FailureKind::InvalidStep,
                format!("connection `{name}` is bound twice"),
            ));
        }
    }
    let scrubber = Scrubber::new(connections.values().map(Arc::as_ref), &host.caches);
    let deadline = tokio::time::Instant::now() + limits.step_deadline;
    let outbound = OutboundCtx {
        sender: host.sender.clone(),
        tenant: req.tenant.clone(),
        manifest: plugin.manifest.clone(),
        plugin_hosts: with_base_urls(&plugin.hosts, connections.values()),
        operator_hosts,
        tenant_hosts,
        connections,
        scrubber,
        deadline,
        stop,
        traffic: StepTraffic::default(),
        call_idempotent: plugin
            .manifest
            .call(&req.call)
            .is_some_and(|c| c.idempotent),
    };
    let state = StepState::for_step(&limits, compute.step(), outbound);
    Ok((state, req.call, req.input.to_string()))
}

/// A store for a step's state, with its memory limiter and compute slot.
fn new_store(engine: &wasmtime::Engine, state: StepState) -> Store<StepState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    store.data().compute().clone().install(&mut store);
    store
}

/// How a step ended before its call returned.
enum Ended {
    /// Its deadline ran out.
    Deadline,
    /// Its embedder stopped it, saying why.
    Stopped(String),
}

/// Runs `call` on the store under the step's deadline and stop signal,
/// holding the step's compute slot whenever guest code runs. When stopped,
/// the call is polled first, so that its request in flight ends (and is
/// recorded) before the call is dropped; a stopped step is stopped even if
/// its call returned meanwhile.
async fn within_deadline<T>(
    store: &mut Store<StepState>,
    call: impl AsyncFnOnce(&mut Store<StepState>) -> wasmtime::Result<T>,
) -> Result<wasmtime::Result<T>, Ended> {
    let (deadline, stop) = store
        .data()
        .deadline()
        .expect("a step has an outbound context");
    let slot = store.data().compute().clone();
    let run = async {
        slot.take().await;
        call(store).await
    };
    let ended = tokio::select! {
        biased;
        result = tokio::time::timeout_at(deadline, run) => result.map_err(|_| Ended::Deadline),
        () = stop.stopped() => Err(Ended::Deadline),
    };
    match stop.why() {
        Some(why) => Err(Ended::Stopped(why)),
        None => ended,
    }
}

/// A fresh instance that has answered `describe`, the one call every plugin
/// has, kept alive until dropped: for benchmarks of a plugin's trivial call
/// and of the memory a live instance holds.
#[cfg(feature = "bench")]
pub struct DescribedInstance {
    _store: Store<StepState>,
}

#[cfg(feature = "bench")]
impl DescribedInstance {
    pub(crate) async fn new(
        plugin: &Plugin,
        engine: &wasmtime::Engine,
        limits: &Arc<Limits>,
    ) -> Result<Self, String> {
        let mut store = new_store(engine, StepState::for_describe(limits));
        plugin
            .describe(&mut store)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(Self { _store: store })
    }
}

/// An instance kept across steps: the opposite of Courier's isolation, for
/// benchmarks that measure what a fresh instance per step costs. Each step
/// on it does everything a step does (admission, input validation, binding,
/// deadline, output parsing) except instantiating.
#[cfg(feature = "bench")]
pub struct ReusedInstance {
    plugin: Arc<Plugin>,
    store: Store<StepState>,
    invoke: crate::bindings::Invoke,
}

#[cfg(feature = "bench")]
impl ReusedInstance {
    pub(crate) async fn new(
        plugin: Arc<Plugin>,
        engine: &wasmtime::Engine,
        limits: &Arc<Limits>,
    ) -> Result<Self, String> {
        let mut store = new_store(engine, StepState::for_describe(limits));
        let invoke = plugin
            .instantiate_invoke(&mut store)
            .await
            .map_err(|e| format!("{e:#}"))?;
        Ok(Self {
            plugin,
            store,
            invoke,
        })
    }

    /// Runs a step of `plugin` (the one this instance was made from) on this instance.
    pub(crate) async fn run(
        &mut self,
        plugin: &Arc<Plugin>,
        host: &HostInner,
        policy: Effective,
        req: StepRequest,
        compute: &ComputeShare,
        started: Instant,
    ) -> StepResult {
        if !Arc::ptr_eq(plugin, &self.plugin) {
            return StepResult::rejected(
                FailureKind::InvalidStep,
                "the instance is of another plugin".into(),
                started,
            );
        }
        let (limits, drift) = (policy.limits.clone(), policy.drift);
        let (state, call, input) =
            match prepare(plugin, host, policy, req, compute, (started, Stop::never())) {
                Ok(prepared) => prepared,
                Err(rejected) => return *rejected,
            };
        *self.store.data_mut() = state;
        self.store.data().compute().clone().install(&mut self.store);
        let invoke = self.invoke;
        let result = within_deadline(&mut self.store, async |store| {
            invoke.call(store, call.clone(), input).await
        })
        .await;
        // The epoch callback holds the slot too, until the next step installs its own.
        self.store.data().compute().release();
        finish(self.store.data_mut(), result, &limits, started).check_contract(plugin, &call, drift)
    }
}

/// Turns what the call returned into a step result.
fn finish(
    state: &mut StepState,
    result: Result<wasmtime::Result<Result<String, PluginError>>, Ended>,
    limits: &Limits,
    started: Instant,
) -> StepResult {
    let (outcome, output, error, status) = match result {
        Err(Ended::Stopped(why)) => (
            Outcome::Timeout,
            None,
            Some(failure(FailureKind::Deadline, why)),
            None,
        ),
        Err(Ended::Deadline) => (
            Outcome::Timeout,
            None,
            Some(failure(
                FailureKind::Deadline,
                format!("the step did not finish within {:?}", limits.step_deadline),
            )),
            None,
        ),
        Ok(Err(trap)) if state.memory_exceeded() => (
            Outcome::Error,
            None,
            Some(failure(
                FailureKind::Memory,
                format!(
                    "the plugin exceeded its memory limit of {} bytes ({trap})",
                    limits.memory_bytes
                ),
            )),
            None,
        ),
        Ok(Err(trap)) => {
            let (kind, outcome) = match trap.downcast_ref::<wasmtime::Trap>() {
                Some(_) => (FailureKind::Trap, Outcome::Error),
                None if is_pool_exhausted(&trap) => (FailureKind::Limit, Outcome::MaxConnection),
                None => (FailureKind::Plugin, Outcome::Error),
            };
            tracing::debug!("step failed in the plugin: {trap:?}");
            (
                outcome,
                None,
                Some(failure(kind, trap.root_cause().to_string())),
                None,
            )
        }
        Ok(Ok(Ok(text))) => match serde_json::from_str(&state.scrub_json(text)) {
            Ok(value) => (Outcome::Success, Some(value), None, None),
            Err(e) => (
                Outcome::Error,
                None,
                Some(failure(
                    FailureKind::Plugin,
                    format!("the plugin returned invalid JSON: {e}"),
                )),
                None,
            ),
        },
        Ok(Ok(Err(step_error))) => classify(step_error, |output| state.scrub_json(output)),
    };
    let StepOutput {
        requests,
        logs,
        logs_dropped,
    } = state.take_output();
    let error = error.map(|f| StepFailure {
        kind: f.kind,
        message: state.scrub(f.message),
    });
    StepResult {
        outcome,
        output,
        error,
        status,
        duration_ms: started.elapsed().as_millis() as u64,
        requests,
        logs,
        logs_dropped,
        contract_drift: vec![],
    }
}

fn failure(kind: FailureKind, message: String) -> StepFailure {
    StepFailure { kind, message }
}

type Classified = (
    Outcome,
    Option<serde_json::Value>,
    Option<StepFailure>,
    Option<u16>,
);

/// Maps the plugin's step error to an outcome; the output an `http` error
/// carries passes through `scrub_output` first.
fn classify(e: PluginError, scrub_output: impl FnOnce(String) -> String) -> Classified {
    match e {
        PluginError::InvalidInput(m) => (
            Outcome::Error,
            None,
            Some(failure(FailureKind::InvalidInput, m)),
            None,
        ),
        PluginError::Failed(m) => (
            Outcome::Error,
            None,
            Some(failure(FailureKind::Plugin, m)),
            None,
        ),
        PluginError::Http {
            status,
            message,
            output,
        } => {
            let output = output
                .map(scrub_output)
                .and_then(|o| serde_json::from_str(&o).ok());
            (
                Outcome::HttpError,
                output,
                Some(failure(FailureKind::Http, message)),
                Some(status),
            )
        }
        PluginError::Send(s) => {
            let outcome = match &s {
                SendError::Timeout(_) => Outcome::Timeout,
                SendError::Denied(_) => Outcome::Denied,
                SendError::Limit(_) | SendError::CircuitOpen(_) => Outcome::MaxConnection,
                _ => Outcome::Error,
            };
            (outcome, None, Some(failure(s.kind(), s.message())), None)
        }
    }
}

/// Whether instantiating failed because the engine's instance pool is full
/// (all its component instances, memories, tables or stacks in use).
/// wasmtime's `Error::is` looks through the whole context chain.
fn is_pool_exhausted(e: &wasmtime::Error) -> bool {
    e.is::<wasmtime::PoolConcurrencyLimitError>()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_kinds_serialize_to_their_stable_text() {
        let kinds = [
            (FailureKind::InvalidStep, "invalid-step"),
            (FailureKind::InvalidInput, "invalid-input"),
            (FailureKind::Plugin, "plugin"),
            (FailureKind::Trap, "trap"),
            (FailureKind::Memory, "memory"),
            (FailureKind::Deadline, "deadline"),
            (FailureKind::Limit, "limit"),
            (FailureKind::Http, "http"),
            (FailureKind::Denied, "denied"),
            (FailureKind::Timeout, "timeout"),
            (FailureKind::Dns, "dns"),
            (FailureKind::Connect, "connect"),
            (FailureKind::Tls, "tls"),
            (FailureKind::TooLarge, "too-large"),
            (FailureKind::Protocol, "protocol"),
            (FailureKind::InvalidRequest, "invalid-request"),
            (FailureKind::Credential, "credential"),
            (FailureKind::CircuitOpen, "circuit-open"),
            (FailureKind::Other, "other"),
        ];
        for (kind, text) in kinds {
            assert_eq!(serde_json::to_value(kind).unwrap(), text);
            assert_eq!(kind.as_str(), text);
            assert_eq!(kind.to_string(), text);
            assert_eq!(kind, text);
        }
    }

    #[test]
    fn a_failed_result_reports_its_kind() {
        let r = StepResult::refused("full".into(), Instant::now());
        assert!(!r.is_success());
        assert_eq!(r.failure_kind(), Some(FailureKind::Limit));
        let json = serde_json::to_value(&r).unwrap();
        assert_eq!(
            json["error"],
            serde_json::json!({"kind": "limit", "message": "full"})
        );
    }

    #[test]
    fn send_errors_classify_by_kind_with_their_message() {
        use crate::exchange::TimeoutPhase;
        let cases = [
            (
                SendError::Denied("no".into()),
                Outcome::Denied,
                FailureKind::Denied,
                "no",
            ),
            (
                SendError::Timeout(TimeoutPhase::FirstByte),
                Outcome::Timeout,
                FailureKind::Timeout,
                "first-byte",
            ),
            (
                SendError::Timeout(TimeoutPhase::StepDeadline),
                Outcome::Timeout,
                FailureKind::Timeout,
                "the step deadline ran out during a request",
            ),
            (
                SendError::Limit("a: b".into()),
                Outcome::MaxConnection,
                FailureKind::Limit,
                "a: b",
            ),
            (
                SendError::CircuitOpen("x".into()),
                Outcome::MaxConnection,
                FailureKind::CircuitOpen,
                "x",
            ),
            (
                SendError::TooLarge("big".into()),
                Outcome::Error,
                FailureKind::TooLarge,
                "big",
            ),
        ];
        for (error, outcome, kind, message) in cases {
            let (got, output, failure, status) = classify(PluginError::Send(error), |o| o);
            let failure = failure.unwrap();
            assert_eq!(
                (got, failure.kind, failure.message.as_str()),
                (outcome, kind, message)
            );
            assert!(output.is_none() && status.is_none());
        }
    }

    /// An empty component (the binary header alone).
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[tokio::test]
    async fn a_full_instance_pool_is_recognized_by_type() {
        let engine = crate::engine::build_engine(&Limits::default(), 0, false).unwrap();
        let component =
            wasmtime::component::Component::from_binary(&engine, EMPTY_COMPONENT).unwrap();
        let pre = wasmtime::component::Linker::<()>::new(&engine)
            .instantiate_pre(&component)
            .unwrap();
        let mut stores = vec![];
        let error = loop {
            let mut store = Store::new(&engine, ());
            match pre.instantiate_async(&mut store).await {
                Ok(_) => stores.push(store),
                Err(e) => break e,
            }
            assert!(stores.len() <= 1000, "the pool never ran out");
        };
        assert!(is_pool_exhausted(&error), "{error:#}");
        assert!(is_pool_exhausted(&error.context("instantiating")));
        assert!(!is_pool_exhausted(&wasmtime::format_err!(
            "maximum concurrent limit reached"
        )));
    }
}
