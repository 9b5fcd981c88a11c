//! Running one step: a fresh store and instance, the host side of the
//! plugin's imports, the deadline, and the classification of what happened.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use futures_util::StreamExt;
use serde::Serialize;
use wasmtime::component::ResourceTable;
use wasmtime::{ResourceLimiter, Store};
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::bindings::courier::plugin::{log, outbound, types};
use crate::bindings::types::{self as wit, StepError};
use crate::compute::{ComputeShare, ComputeSlot};
use crate::credentials::{BoundConnection, ConnectionConfig, Scrubber};
use crate::exchange::SendError;
use crate::limits::Limits;
use crate::operator::Effective;
use crate::outbound::{RequestRecord, Sender, StepOutbound, StepTraffic};
use crate::outcome::{FailureKind, Outcome};
use crate::plugin::Plugin;
use crate::wasi::NoGrantWasi;
use courier_egress::AllowedHost;

/// A step to run: which plugin, which call, what input, which connections.
#[derive(Debug)]
pub struct StepRequest {
    /// The tenant the step runs for.
    pub tenant: String,
    /// The plugin's name (from its manifest).
    pub plugin: String,
    /// The call to invoke.
    pub call: String,
    /// The call's input.
    pub input: serde_json::Value,
    /// Connections bound to this step, each naming a declared connection.
    pub connections: Vec<ConnectionConfig>,
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

/// One log line of a step.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error`, or `stdout`/`stderr` for WASI output.
    pub level: &'static str,
    /// The line, control characters escaped, cut at the line limit.
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
        }
    }
}

/// Memory and instance limits of one store; records whether memory ran out.
pub(crate) struct StepLimiter {
    memory_bytes: usize,
    memory_exceeded: bool,
}

impl ResourceLimiter for StepLimiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired > self.memory_bytes {
            self.memory_exceeded = true;
            wasmtime::bail!("memory limit of {} bytes exceeded", self.memory_bytes);
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= 100_000)
    }

    fn instances(&self) -> usize {
        16
    }

    fn tables(&self) -> usize {
        16
    }

    fn memories(&self) -> usize {
        4
    }
}

/// Per-step outbound context: what the plugin's requests are checked against.
struct OutboundCtx {
    sender: Arc<Sender>,
    plugin: Arc<Plugin>,
    operator_hosts: Arc<[AllowedHost]>,
    tenant_hosts: Option<Arc<[AllowedHost]>>,
    connections: HashMap<String, Arc<BoundConnection>>,
    scrubber: Scrubber,
    deadline: tokio::time::Instant,
    traffic: StepTraffic,
}

/// The store data of one step.
pub(crate) struct StepState {
    /// Built when the plugin first calls WASI (components built with the
    /// SDK import none of it).
    wasi: Option<NoGrantWasi>,
    table: ResourceTable,
    limiter: StepLimiter,
    limits: Arc<Limits>,
    outbound: Option<OutboundCtx>,
    records: Vec<RequestRecord>,
    logs: LogBuffer,
    /// The step's compute slot: held while guest code runs.
    compute: ComputeSlot,
}

impl StepState {
    /// State for the load-time `describe` call: no requests allowed.
    pub(crate) fn for_describe(limits: &Arc<Limits>) -> Self {
        Self::new(limits, ComputeShare::new(1).step())
    }

    /// State with no outbound context yet, running guest code on `compute`.
    fn new(limits: &Arc<Limits>, compute: ComputeSlot) -> Self {
        Self {
            wasi: None,
            table: ResourceTable::new(),
            limiter: StepLimiter {
                memory_bytes: limits.memory_bytes,
                memory_exceeded: false,
            },
            limits: limits.clone(),
            outbound: None,
            records: vec![],
            logs: LogBuffer::new(limits),
            compute,
        }
    }

    /// Text with the step's secrets scrubbed (for logs and messages).
    fn scrub(&self, text: String) -> String {
        match &self.outbound {
            Some(o) => o.scrubber.text(text),
            None => text,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    fn step_outbound(&self) -> Result<(&Sender, StepOutbound<'_>), SendError> {
        let ctx = self.outbound.as_ref().ok_or_else(|| {
            SendError::Other("requests are not allowed while the plugin describes itself".into())
        })?;
        Ok((
            &ctx.sender,
            StepOutbound {
                manifest: &ctx.plugin.manifest,
                plugin_hosts: &ctx.plugin.hosts,
                operator_hosts: &ctx.operator_hosts,
                tenant_hosts: ctx.tenant_hosts.as_deref(),
                connections: &ctx.connections,
                scrubber: &ctx.scrubber,
                limits: &self.limits,
                deadline: ctx.deadline,
                traffic: &ctx.traffic,
            },
        ))
    }
}

impl WasiView for StepState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        let output_cap = self.limits.max_log_bytes;
        let wasi = self
            .wasi
            .get_or_insert_with(|| NoGrantWasi::new(output_cap));
        WasiCtxView {
            ctx: &mut wasi.ctx,
            table: &mut self.table,
        }
    }
}

impl types::Host for StepState {}

/// The plugin's requests, converted at this boundary: WIT requests in, the
/// host's [`crate::exchange`] types through the sender, WIT results out.
impl outbound::Host for StepState {
    async fn send(&mut self, request: wit::Request) -> Result<wit::Response, wit::SendError> {
        self.compute.release();
        let (result, records) = match self.step_outbound() {
            Ok((sender, step)) => sender.send(&step, request.into()).await,
            Err(e) => (Err(e), vec![]),
        };
        self.records.extend(records);
        self.compute.take().await;
        result.map(Into::into).map_err(Into::into)
    }

    async fn send_all(
        &mut self,
        requests: Vec<wit::Request>,
    ) -> Vec<Result<wit::Response, wit::SendError>> {
        self.compute.release();
        let (results, records): (Vec<_>, Vec<_>) = match self.step_outbound() {
            Ok((sender, step)) => {
                let step = &step;
                futures_util::stream::iter(requests)
                    .map(|r| sender.send(step, r.into()))
                    .buffered(self.limits.max_concurrent_requests.max(1))
                    .collect::<Vec<_>>()
                    .await
                    .into_iter()
                    .unzip()
            }
            Err(e) => requests.iter().map(|_| (Err(e.clone()), vec![])).unzip(),
        };
        self.records.extend(records.into_iter().flatten());
        self.compute.take().await;
        results
            .into_iter()
            .map(|r| r.map(Into::into).map_err(Into::into))
            .collect()
    }

    async fn bound_connections(&mut self) -> Vec<String> {
        let mut names: Vec<String> = self
            .outbound
            .iter()
            .flat_map(|o| o.connections.keys().cloned())
            .collect();
        names.sort();
        names
    }
}

impl log::Host for StepState {
    async fn log(&mut self, level: log::Level, message: String) {
        let level = match level {
            log::Level::Trace => "trace",
            log::Level::Debug => "debug",
            log::Level::Info => "info",
            log::Level::Warn => "warn",
            log::Level::Error => "error",
        };
        let message = self.scrub(message);
        self.logs.push(level, &message);
    }
}

/// The step's log lines within the budget.
struct LogBuffer {
    lines: Vec<LogLine>,
    bytes: usize,
    dropped: u32,
    max_bytes: usize,
    max_line: usize,
}

impl LogBuffer {
    fn new(limits: &Limits) -> Self {
        Self {
            lines: vec![],
            bytes: 0,
            dropped: 0,
            max_bytes: limits.max_log_bytes,
            max_line: limits.max_log_line,
        }
    }

    fn push(&mut self, level: &'static str, message: &str) {
        let mut escaped: String = message.escape_debug().collect();
        if escaped.len() > self.max_line {
            let mut cut = self.max_line;
            while !escaped.is_char_boundary(cut) {
                cut -= 1;
            }
            escaped.truncate(cut);
            escaped.push('…');
        }
        if self.bytes + escaped.len() > self.max_bytes {
            self.dropped = self.dropped.saturating_add(1);
            return;
        }
        self.bytes += escaped.len();
        self.lines.push(LogLine {
            level,
            message: escaped,
        });
    }

    /// Adds captured WASI output, a line per line.
    fn push_output(&mut self, level: &'static str, output: &str) {
        for line in output.lines() {
            self.push(level, line);
        }
    }
}

/// Runs one step of a loaded plugin, in a fresh store and instance.
pub(crate) async fn run(
    plugin: Arc<Plugin>,
    engine: &wasmtime::Engine,
    sender: Arc<Sender>,
    policy: Effective,
    req: StepRequest,
    compute: &ComputeShare,
    started: Instant,
) -> StepResult {
    let limits = policy.limits.clone();
    let (state, call, input) = match prepare(&plugin, sender, policy, req, compute, started) {
        Ok(prepared) => prepared,
        Err(rejected) => return *rejected,
    };
    let mut store = new_store(engine, state);
    let result = within_deadline(&mut store, async |store| {
        let invoke = plugin.instantiate_invoke(store).await?;
        invoke
            .call_async(store, (call, input))
            .await
            .map(|(result,)| result)
    })
    .await;
    finish(store.data_mut(), result, &limits, started)
}

/// Checks a step request against the plugin and binds its connections;
/// returns the step's state, call and input text, or why it is rejected.
fn prepare(
    plugin: &Arc<Plugin>,
    sender: Arc<Sender>,
    policy: Effective,
    req: StepRequest,
    compute: &ComputeShare,
    started: Instant,
) -> Result<(StepState, String, String), Box<StepResult>> {
    let reject =
        |kind: FailureKind, message: String| Box::new(StepResult::rejected(kind, message, started));
    let Effective {
        hosts: operator_hosts,
        tenant_hosts,
        limits,
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
    for config in req.connections {
        let name = config.connection.clone();
        let spec = plugin.manifest.connection(&name).ok_or_else(|| {
            reject(
                FailureKind::InvalidStep,
                format!(
                    "plugin `{}` declares no connection `{name}`",
                    plugin.manifest.name
                ),
            )
        })?;
        let bound = plugin
            .bindings
            .bind(spec, config, &req.tenant, sender.tokens())
            .map_err(|e| reject(FailureKind::InvalidStep, e.to_string()))?;
        if connections.insert(name.clone(), bound).is_some() {
            return Err(reject(
                FailureKind::InvalidStep,
                format!("connection `{name}` is bound twice"),
            ));
        }
    }
    let scrubber = Scrubber::new(connections.values().map(Arc::as_ref));
    let deadline = tokio::time::Instant::now() + limits.step_deadline;
    let mut state = StepState::new(&limits, compute.step());
    state.outbound = Some(OutboundCtx {
        sender,
        plugin: plugin.clone(),
        operator_hosts,
        tenant_hosts,
        connections,
        scrubber,
        deadline,
        traffic: StepTraffic::default(),
    });
    Ok((state, req.call, req.input.to_string()))
}

/// A store for a step's state, with its memory limiter and compute slot.
fn new_store(engine: &wasmtime::Engine, state: StepState) -> Store<StepState> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| s.limiter());
    store.data().compute.clone().install(&mut store);
    store
}

/// Runs `call` on the store under the step's deadline, holding the step's
/// compute slot whenever guest code runs.
async fn within_deadline<T>(
    store: &mut Store<StepState>,
    call: impl AsyncFnOnce(&mut Store<StepState>) -> wasmtime::Result<T>,
) -> Result<wasmtime::Result<T>, tokio::time::error::Elapsed> {
    let deadline = store
        .data()
        .outbound
        .as_ref()
        .expect("a step has an outbound context")
        .deadline;
    let slot = store.data().compute.clone();
    let run = async {
        slot.take().await;
        call(store).await
    };
    tokio::time::timeout_at(deadline, run).await
}

/// An instance kept across steps: the opposite of Courier's isolation, for
/// benchmarks that measure what a fresh instance per step costs. Each step
/// on it does everything a step does (admission, input validation, binding,
/// deadline, output parsing) except instantiating.
#[cfg(feature = "bench")]
pub struct ReusedInstance {
    plugin: Arc<Plugin>,
    store: Store<StepState>,
    invoke: crate::plugin::InvokeFunc,
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
        sender: Arc<Sender>,
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
        let limits = policy.limits.clone();
        let (state, call, input) = match prepare(plugin, sender, policy, req, compute, started) {
            Ok(prepared) => prepared,
            Err(rejected) => return *rejected,
        };
        *self.store.data_mut() = state;
        self.store.data().compute.clone().install(&mut self.store);
        let invoke = self.invoke;
        let result = within_deadline(&mut self.store, async |store| {
            invoke
                .call_async(store, (call, input))
                .await
                .map(|(result,)| result)
        })
        .await;
        // The epoch callback holds the slot too, until the next step installs its own.
        self.store.data().compute.release();
        finish(self.store.data_mut(), result, &limits, started)
    }
}

/// Turns what the call returned into a step result.
fn finish(
    state: &mut StepState,
    result: Result<wasmtime::Result<Result<String, StepError>>, tokio::time::error::Elapsed>,
    limits: &Limits,
    started: Instant,
) -> StepResult {
    let (outcome, output, error, status) = match result {
        Err(_) => (
            Outcome::Timeout,
            None,
            Some(failure(
                FailureKind::Deadline,
                format!("the step did not finish within {:?}", limits.step_deadline),
            )),
            None,
        ),
        Ok(Err(trap)) if state.limiter.memory_exceeded => (
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
        Ok(Ok(Ok(text))) => match serde_json::from_str(&text) {
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
        Ok(Ok(Err(step_error))) => classify(step_error),
    };
    if let Some(wasi) = &state.wasi {
        for (level, output) in [
            ("stdout", wasi.stdout.contents()),
            ("stderr", wasi.stderr.contents()),
        ] {
            let output = state.scrub(String::from_utf8_lossy(&output).into_owned());
            state.logs.push_output(level, &output);
        }
    }
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
        requests: std::mem::take(&mut state.records),
        logs: std::mem::take(&mut state.logs.lines),
        logs_dropped: state.logs.dropped,
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

/// Maps the plugin's step error to an outcome.
fn classify(e: StepError) -> Classified {
    match e {
        StepError::InvalidInput(m) => (
            Outcome::Error,
            None,
            Some(failure(FailureKind::InvalidInput, m)),
            None,
        ),
        StepError::Failed(m) => (
            Outcome::Error,
            None,
            Some(failure(FailureKind::Plugin, m)),
            None,
        ),
        StepError::Http(h) => {
            let output = h
                .output
                .as_deref()
                .and_then(|o| serde_json::from_str(o).ok());
            (
                Outcome::HttpError,
                output,
                Some(failure(FailureKind::Http, h.message)),
                Some(h.status),
            )
        }
        StepError::Send(s) => {
            let s = SendError::from(s);
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
            let (got, output, failure, status) = classify(StepError::Send(error.into()));
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
