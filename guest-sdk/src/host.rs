//! Where the SDK calls the host. In a component (wasm32) these are the WIT
//! imports, reached through [`convert`](crate::convert); natively, in a
//! plugin's unit tests, they are the [`testing`](crate::testing) double.

use crate::http::{Request, Response, SendError};
use crate::log::Level;

#[cfg(target_arch = "wasm32")]
mod imports {
    use super::{Level, Request, Response, SendError};
    use crate::__private::bindings::courier::plugin::{log, outbound};
    use crate::convert;

    pub(crate) fn send(request: Request) -> Result<Response, SendError> {
        outbound::send(&convert::request(request))
            .map(convert::response)
            .map_err(convert::send_error)
    }

    pub(crate) fn send_all(requests: Vec<Request>) -> Vec<Result<Response, SendError>> {
        let requests: Vec<_> = requests.into_iter().map(convert::request).collect();
        outbound::send_all(&requests)
            .into_iter()
            .map(|result| result.map(convert::response).map_err(convert::send_error))
            .collect()
    }

    pub(crate) fn bound_connections() -> Vec<String> {
        outbound::bound_connections()
    }

    pub(crate) fn new_idempotency_key() -> String {
        outbound::new_idempotency_key()
    }

    pub(crate) fn log(level: Level, message: &str) {
        log::log(convert::level(level), message);
    }
}

#[cfg(not(target_arch = "wasm32"))]
use crate::testing::double as imports;

/// `outbound.send`.
pub(crate) fn send(request: Request) -> Result<Response, SendError> {
    imports::send(request)
}

/// `outbound.send-all`: one result per request, in order.
pub(crate) fn send_all(requests: Vec<Request>) -> Vec<Result<Response, SendError>> {
    imports::send_all(requests)
}

/// `outbound.bound-connections`.
pub(crate) fn bound_connections() -> Vec<String> {
    imports::bound_connections()
}

/// `outbound.new-idempotency-key`.
pub(crate) fn new_idempotency_key() -> String {
    imports::new_idempotency_key()
}

/// `log.log`.
pub(crate) fn log(level: Level, message: &str) {
    imports::log(level, message);
}
