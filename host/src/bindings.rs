//! The generated wasmtime bindings for `wit/` (world `courier:plugin/plugin`),
//! kept private to the crate: the rest of the host converts them into its own
//! typed values at the edges.
//!
//! The conversions between the WIT exchange types (`request`, `response`,
//! `send-error`, …) and the host's own ([`crate::exchange`]) live here and
//! nowhere else.
#![allow(missing_docs, unsafe_code, unreachable_pub)]

use crate::exchange;

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use courier::plugin::types;

impl From<types::Method> for exchange::Method {
    fn from(m: types::Method) -> Self {
        match m {
            types::Method::Get => Self::Get,
            types::Method::Head => Self::Head,
            types::Method::Post => Self::Post,
            types::Method::Put => Self::Put,
            types::Method::Patch => Self::Patch,
            types::Method::Delete => Self::Delete,
            types::Method::Options => Self::Options,
        }
    }
}

impl From<types::FormPart> for exchange::FormPart {
    fn from(p: types::FormPart) -> Self {
        Self {
            name: p.name,
            filename: p.filename,
            content_type: p.content_type,
            data: p.data,
        }
    }
}

impl From<types::GraphqlRequest> for exchange::GraphqlRequest {
    fn from(q: types::GraphqlRequest) -> Self {
        Self {
            query: q.query,
            variables: q.variables,
            operation_name: q.operation_name,
        }
    }
}

impl From<types::RawBody> for exchange::RawBody {
    fn from(r: types::RawBody) -> Self {
        Self {
            content_type: r.content_type,
            data: r.data,
        }
    }
}

impl From<types::Body> for exchange::Body {
    fn from(b: types::Body) -> Self {
        match b {
            types::Body::None => Self::None,
            types::Body::Json(text) => Self::Json(text),
            types::Body::Form(pairs) => Self::Form(pairs),
            types::Body::Multipart(parts) => {
                Self::Multipart(parts.into_iter().map(Into::into).collect())
            }
            types::Body::Graphql(q) => Self::Graphql(q.into()),
            types::Body::Xml(text) => Self::Xml(text),
            types::Body::Text(text) => Self::Text(text),
            types::Body::Bytes(raw) => Self::Bytes(raw.into()),
        }
    }
}

impl From<types::RetryPolicy> for exchange::RetryPolicy {
    fn from(r: types::RetryPolicy) -> Self {
        Self {
            max_attempts: r.max_attempts,
            initial_backoff_ms: r.initial_backoff_ms,
            max_backoff_ms: r.max_backoff_ms,
            retry_on_status: r.retry_on_status,
        }
    }
}

impl From<types::Request> for exchange::Request {
    fn from(r: types::Request) -> Self {
        Self {
            method: r.method.into(),
            url: r.url,
            query: r.query,
            headers: r.headers,
            body: r.body.into(),
            connection: r.connection,
            timeout_ms: r.timeout_ms,
            follow_redirects: r.follow_redirects,
            retry: r.retry.map(Into::into),
            idempotency_key: r.idempotency_key,
        }
    }
}

impl From<exchange::Response> for types::Response {
    fn from(r: exchange::Response) -> Self {
        Self {
            status: r.status,
            headers: r.headers,
            body: r.body,
            final_url: r.final_url,
        }
    }
}

impl From<types::TimeoutPhase> for exchange::TimeoutPhase {
    fn from(p: types::TimeoutPhase) -> Self {
        match p {
            types::TimeoutPhase::Connect => Self::Connect,
            types::TimeoutPhase::TlsHandshake => Self::TlsHandshake,
            types::TimeoutPhase::FirstByte => Self::FirstByte,
            types::TimeoutPhase::Total => Self::Total,
            types::TimeoutPhase::StepDeadline => Self::StepDeadline,
        }
    }
}

impl From<exchange::TimeoutPhase> for types::TimeoutPhase {
    fn from(p: exchange::TimeoutPhase) -> Self {
        match p {
            exchange::TimeoutPhase::Connect => Self::Connect,
            exchange::TimeoutPhase::TlsHandshake => Self::TlsHandshake,
            exchange::TimeoutPhase::FirstByte => Self::FirstByte,
            exchange::TimeoutPhase::Total => Self::Total,
            exchange::TimeoutPhase::StepDeadline => Self::StepDeadline,
        }
    }
}

/// What a plugin reports in `step-error.send`.
impl From<types::SendError> for exchange::SendError {
    fn from(e: types::SendError) -> Self {
        match e {
            types::SendError::Denied(m) => Self::Denied(m),
            types::SendError::Timeout(p) => Self::Timeout(p.into()),
            types::SendError::Dns(m) => Self::Dns(m),
            types::SendError::Connect(m) => Self::Connect(m),
            types::SendError::Tls(m) => Self::Tls(m),
            types::SendError::TooLarge(m) => Self::TooLarge(m),
            types::SendError::Protocol(m) => Self::Protocol(m),
            types::SendError::InvalidRequest(m) => Self::InvalidRequest(m),
            types::SendError::Credential(m) => Self::Credential(m),
            types::SendError::Limit(m) => Self::Limit(m),
            types::SendError::CircuitOpen(m) => Self::CircuitOpen(m),
            types::SendError::Other(m) => Self::Other(m),
        }
    }
}

/// What the host answers to `outbound.send`.
impl From<exchange::SendError> for types::SendError {
    fn from(e: exchange::SendError) -> Self {
        use exchange::SendError as E;
        match e {
            E::Denied(m) => Self::Denied(m),
            E::Timeout(p) => Self::Timeout(p.into()),
            E::Dns(m) => Self::Dns(m),
            E::Connect(m) => Self::Connect(m),
            E::Tls(m) => Self::Tls(m),
            E::TooLarge(m) => Self::TooLarge(m),
            E::Protocol(m) => Self::Protocol(m),
            E::InvalidRequest(m) => Self::InvalidRequest(m),
            E::Credential(m) => Self::Credential(m),
            E::Limit(m) => Self::Limit(m),
            E::CircuitOpen(m) => Self::CircuitOpen(m),
            E::Other(m) => Self::Other(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::exchange::{SendError, TimeoutPhase};

    use super::types;

    #[test]
    fn send_errors_survive_the_round_trip_through_wit() {
        let m = || "why".to_owned();
        let phases = [
            TimeoutPhase::Connect,
            TimeoutPhase::TlsHandshake,
            TimeoutPhase::FirstByte,
            TimeoutPhase::Total,
            TimeoutPhase::StepDeadline,
        ];
        let errors = phases.into_iter().map(SendError::Timeout).chain([
            SendError::Denied(m()),
            SendError::Dns(m()),
            SendError::Connect(m()),
            SendError::Tls(m()),
            SendError::TooLarge(m()),
            SendError::Protocol(m()),
            SendError::InvalidRequest(m()),
            SendError::Credential(m()),
            SendError::Limit(m()),
            SendError::CircuitOpen(m()),
            SendError::Other(m()),
        ]);
        for e in errors {
            let wit = types::SendError::from(e.clone());
            assert_eq!(SendError::from(wit), e);
        }
    }
}
