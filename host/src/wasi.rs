//! The WASI a plugin component may import: linked so that components built by
//! toolchains that always import WASI (componentize-py, jco, wasip2) load,
//! but granting nothing: no files, no environment, no arguments, no sockets,
//! no name lookups. Stdout and stderr are captured, capped, into the step log.

use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

/// A WASI context that grants nothing, and the pipes capturing its output.
pub(crate) struct NoGrantWasi {
    pub(crate) ctx: WasiCtx,
    pub(crate) stdout: MemoryOutputPipe,
    pub(crate) stderr: MemoryOutputPipe,
}

impl NoGrantWasi {
    /// `output_cap` bounds what stdout and stderr each keep.
    pub(crate) fn new(output_cap: usize) -> Self {
        let stdout = MemoryOutputPipe::new(output_cap);
        let stderr = MemoryOutputPipe::new(output_cap);
        let ctx = WasiCtxBuilder::new()
            .stdout(stdout.clone())
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .socket_addr_check(|_, _| Box::pin(async { false }))
            .build();
        Self {
            ctx,
            stdout,
            stderr,
        }
    }
}
