//! The host side of the plugin's `courier:plugin` imports: each converts the
//! WIT values into host types, calls the host-typed method of [`StepState`]
//! that does the work, and converts the answer back.

use super::generated::courier::plugin::{log, outbound, types};
use crate::state::StepState;

impl types::Host for StepState {}

impl outbound::Host for StepState {
    async fn send(&mut self, request: types::Request) -> Result<types::Response, types::SendError> {
        StepState::send(self, request.into())
            .await
            .map(Into::into)
            .map_err(Into::into)
    }

    async fn send_all(
        &mut self,
        requests: Vec<types::Request>,
    ) -> Vec<Result<types::Response, types::SendError>> {
        let requests = requests.into_iter().map(Into::into).collect();
        StepState::send_all(self, requests)
            .await
            .into_iter()
            .map(|r| r.map(Into::into).map_err(Into::into))
            .collect()
    }

    async fn bound_connections(&mut self) -> Vec<String> {
        StepState::bound_connections(self)
    }

    async fn new_idempotency_key(&mut self) -> String {
        StepState::new_idempotency_key(self)
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
        StepState::log(self, level, message);
    }
}
