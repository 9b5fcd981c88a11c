//! The imports of a plugin instance warmed up at build time: `send` answers
//! every request with one fixed JSON response and nothing leaves the process,
//! `log` drops its lines. Only the SDKs' warm-up call runs against them
//! (`courier build` snapshots the instance after it).

use wasmtime::component::ResourceTable;
use wasmtime_wasi::{WasiCtxView, WasiView};

use super::generated::courier::plugin::{log, outbound, types};
use crate::wasi::NoGrantWasi;

/// What the warm-up may print, per stream (dropped).
const OUTPUT_CAP: usize = 64 << 10;

/// The state of a build-time instance; its imports never reach a network,
/// and its WASI grants nothing (as a step's).
pub(crate) struct WarmUpState {
    /// Requests the warm-up sent (it must send at least one).
    pub(crate) sent: usize,
    wasi: NoGrantWasi,
    table: ResourceTable,
}

impl WarmUpState {
    pub(crate) fn new() -> Self {
        Self {
            sent: 0,
            wasi: NoGrantWasi::new(OUTPUT_CAP),
            table: ResourceTable::new(),
        }
    }
}

impl WasiView for WarmUpState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi.ctx,
            table: &mut self.table,
        }
    }
}

/// The body of every warm-up response.
const BODY: &[u8] = br#"{"courier":"warm-up","items":[{"id":1,"ok":true}]}"#;

impl WarmUpState {
    fn answer(&mut self, request: types::Request) -> types::Response {
        self.sent += 1;
        types::Response {
            status: 200,
            headers: vec![("content-type".into(), "application/json".into())],
            body: BODY.to_vec(),
            final_url: request.url,
        }
    }
}

impl types::Host for WarmUpState {}

impl outbound::Host for WarmUpState {
    async fn send(&mut self, request: types::Request) -> Result<types::Response, types::SendError> {
        Ok(self.answer(request))
    }

    async fn send_all(
        &mut self,
        requests: Vec<types::Request>,
    ) -> Vec<Result<types::Response, types::SendError>> {
        requests.into_iter().map(|r| Ok(self.answer(r))).collect()
    }

    async fn bound_connections(&mut self) -> Vec<String> {
        Vec::new()
    }

    async fn new_idempotency_key(&mut self) -> String {
        "00000000-0000-4000-8000-000000000000".into()
    }
}

impl log::Host for WarmUpState {
    async fn log(&mut self, _level: log::Level, _message: String) {}
}
