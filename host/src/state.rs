//! The store data of one plugin instance (a step's, or the load-time
//! `describe` call's): its memory limiter, compute slot and WASI, and the
//! host side of the plugin's imports in host types (outbound requests through
//! the sender, log lines within the budget; `bindings` implements the WIT
//! import traits by calling these). It sits below `bindings`, and below both
//! `plugin`, whose `InstancePre` and linker are typed by it, and `step`,
//! which fills it for a step and reads what the step left in it.

use std::collections::HashMap;
use std::sync::Arc;

use futures_util::StreamExt;
use serde::Serialize;
use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtxView, WasiView};

use crate::compute::{ComputeShare, ComputeSlot};
use crate::credentials::{BoundConnection, Scrubber};
use crate::exchange::{Request, Response, SendError};
use crate::limits::Limits;
use crate::manifest::Manifest;
use crate::outbound::{RequestRecord, Sender, StepOutbound, StepTraffic};
use crate::stop::Stop;
use crate::wasi::NoGrantWasi;
use courier_egress::AllowedHost;

/// One log line of a step.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// `trace`, `debug`, `info`, `warn`, `error`, or `stdout`/`stderr` for WASI output.
    pub level: &'static str,
    /// The line, control characters escaped, cut at the line limit.
    pub message: String,
}

/// Memory and instance limits of one store; records whether memory ran out.
struct StepLimiter {
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
pub(crate) struct OutboundCtx {
    pub(crate) sender: Arc<Sender>,
    /// The step's tenant (part of the response cache's key).
    pub(crate) tenant: String,
    /// The plugin's manifest (its declared connections).
    pub(crate) manifest: Arc<Manifest>,
    /// The hosts the plugin's manifest allows.
    pub(crate) plugin_hosts: Arc<[AllowedHost]>,
    pub(crate) operator_hosts: Arc<[AllowedHost]>,
    pub(crate) tenant_hosts: Option<Arc<[AllowedHost]>>,
    pub(crate) connections: HashMap<String, Arc<BoundConnection>>,
    pub(crate) scrubber: Scrubber,
    pub(crate) deadline: tokio::time::Instant,
    /// The embedder's stop (`Host::run_step_until`).
    pub(crate) stop: Stop,
    pub(crate) traffic: StepTraffic,
    /// Whether the step's call is declared idempotent (retries of PUT and
    /// DELETE after their bytes may have reached the server).
    pub(crate) call_idempotent: bool,
}

/// What a step leaves in its state: its requests and log lines.
pub(crate) struct StepOutput {
    /// Every outbound request, secrets redacted.
    pub(crate) requests: Vec<RequestRecord>,
    /// The plugin's log lines and its WASI output, secrets redacted.
    pub(crate) logs: Vec<LogLine>,
    /// Log lines dropped over the step's log budget.
    pub(crate) logs_dropped: u32,
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

    /// State for a step: its requests go through `outbound`, its guest code
    /// runs on `compute`.
    pub(crate) fn for_step(
        limits: &Arc<Limits>,
        compute: ComputeSlot,
        outbound: OutboundCtx,
    ) -> Self {
        Self {
            outbound: Some(outbound),
            ..Self::new(limits, compute)
        }
    }

    /// State with no outbound context, running guest code on `compute`.
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
    pub(crate) fn scrub(&self, text: String) -> String {
        match &self.outbound {
            Some(o) => o.scrubber.text(text),
            None => text,
        }
    }

    /// JSON text the plugin returns (its output), scrubbed like a response
    /// body so it stays valid JSON: a backstop, since everything the plugin
    /// could have read a secret from was scrubbed already.
    pub(crate) fn scrub_json(&self, text: String) -> String {
        match &self.outbound {
            Some(o) if !o.scrubber.is_empty() => {
                String::from_utf8(o.scrubber.body(text.into_bytes()))
                    .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned())
            }
            _ => text,
        }
    }

    pub(crate) fn limiter(&mut self) -> &mut dyn ResourceLimiter {
        &mut self.limiter
    }

    /// Whether the plugin asked for more memory than its limit.
    pub(crate) fn memory_exceeded(&self) -> bool {
        self.limiter.memory_exceeded
    }

    /// The compute slot the guest code runs on.
    pub(crate) fn compute(&self) -> &ComputeSlot {
        &self.compute
    }

    /// The step's deadline; `None` for the `describe` call.
    pub(crate) fn deadline(&self) -> Option<(tokio::time::Instant, Stop)> {
        self.outbound.as_ref().map(|o| (o.deadline, o.stop.clone()))
    }

    /// Takes the step's requests and log lines, after adding what the plugin
    /// wrote to WASI stdout and stderr (scrubbed) to the logs.
    pub(crate) fn take_output(&mut self) -> StepOutput {
        if let Some(wasi) = &self.wasi {
            for (level, output) in [
                ("stdout", wasi.stdout.contents()),
                ("stderr", wasi.stderr.contents()),
            ] {
                let output = self.scrub(String::from_utf8_lossy(&output).into_owned());
                self.logs.push_output(level, &output);
            }
        }
        StepOutput {
            requests: std::mem::take(&mut self.records),
            logs: std::mem::take(&mut self.logs.lines),
            logs_dropped: self.logs.dropped,
        }
    }

    fn step_outbound(&self) -> Result<(&Sender, StepOutbound<'_>), SendError> {
        let ctx = self.outbound.as_ref().ok_or_else(|| {
            SendError::Other("requests are not allowed while the plugin describes itself".into())
        })?;
        Ok((
            &ctx.sender,
            StepOutbound {
                tenant: &ctx.tenant,
                manifest: &ctx.manifest,
                plugin_hosts: &ctx.plugin_hosts,
                operator_hosts: &ctx.operator_hosts,
                tenant_hosts: ctx.tenant_hosts.as_deref(),
                connections: &ctx.connections,
                scrubber: &ctx.scrubber,
                limits: &self.limits,
                deadline: ctx.deadline,
                stop: &ctx.stop,
                traffic: &ctx.traffic,
                call_idempotent: ctx.call_idempotent,
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

/// The host side of the plugin's imports, in host types (`bindings`
/// converts the WIT values at its boundary).
impl StepState {
    /// Sends one request of the plugin through the sender, recording it;
    /// the compute slot is free while the request is under way.
    pub(crate) async fn send(&mut self, request: Request) -> Result<Response, SendError> {
        self.compute.release();
        let (result, records) = match self.step_outbound() {
            Ok((sender, step)) => sender.send(&step, request).await,
            Err(e) => (Err(e), vec![]),
        };
        self.records.extend(records);
        self.compute.take().await;
        result
    }

    /// Sends the plugin's requests concurrently (within the step's limit),
    /// answering each in order.
    pub(crate) async fn send_all(
        &mut self,
        requests: Vec<Request>,
    ) -> Vec<Result<Response, SendError>> {
        self.compute.release();
        let (results, records): (Vec<_>, Vec<_>) = match self.step_outbound() {
            Ok((sender, step)) => {
                let step = &step;
                futures_util::stream::iter(requests)
                    .map(|r| sender.send(step, r))
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
    }

    /// The names of the connections bound to the step, sorted.
    pub(crate) fn bound_connections(&self) -> Vec<String> {
        let mut names: Vec<String> = self
            .outbound
            .iter()
            .flat_map(|o| o.connections.keys().cloned())
            .collect();
        names.sort();
        names
    }

    /// A fresh idempotency key: 128 random bits as a version 4 UUID.
    pub(crate) fn new_idempotency_key(&self) -> String {
        let mut bytes = [0u8; 16];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
            .expect("the system's random source failed");
        uuid_v4(bytes)
    }

    /// Adds a log line of the plugin at `level` (`trace` … `error`), scrubbed,
    /// within the step's log budget.
    pub(crate) fn log(&mut self, level: &'static str, message: String) {
        let message = self.scrub(message);
        self.logs.push(level, &message);
    }
}

/// 16 random bytes as a version 4 UUID text (RFC 9562 §5.4): the version
/// and variant bits set, lowercase hex in 8-4-4-4-12 groups.
fn uuid_v4(mut bytes: [u8; 16]) -> String {
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..]
    )
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

#[cfg(test)]
mod tests {
    use super::uuid_v4;

    #[test]
    fn an_idempotency_key_is_a_version_4_uuid() {
        assert_eq!(uuid_v4([0xff; 16]), "ffffffff-ffff-4fff-bfff-ffffffffffff");
        assert_eq!(uuid_v4([0; 16]), "00000000-0000-4000-8000-000000000000");
        let bytes: [u8; 16] = std::array::from_fn(|i| i as u8 * 17);
        assert_eq!(uuid_v4(bytes), "00112233-4455-4677-8899-aabbccddeeff");
    }
}
