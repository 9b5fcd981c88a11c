//! Every conversion between the generated WIT types and the host's own:
//! the exchange types ([`crate::exchange`]), the step error
//! ([`PluginError`]) and the declared manifest ([`crate::manifest`]).

use super::generated::courier::plugin::types;
use crate::exchange::{self, PluginError};
use crate::limits::RateSettings;
use crate::manifest::{
    AuthScheme, CallKind, ClientAuth, ConnectionSpec, Declared, DeclaredCall, JwtAlgorithm,
    JwtSettings, KeyLocation, OAuth2Settings, PlacementTarget, SecretPlacement,
};

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

impl From<types::PageStyle> for exchange::PageStyle {
    fn from(s: types::PageStyle) -> Self {
        match s {
            types::PageStyle::Cursor(c) => Self::Cursor {
                path: c.path,
                param: c.param,
            },
            types::PageStyle::Page(param) => Self::Page(param),
            types::PageStyle::Offset(param) => Self::Offset(param),
            types::PageStyle::Link => Self::Link,
        }
    }
}

impl From<types::Pagination> for exchange::Pagination {
    fn from(p: types::Pagination) -> Self {
        Self {
            style: p.style.into(),
            items_path: p.items_path,
            limit_param: p.limit_param,
            page_size: p.page_size,
            max_pages: p.max_pages,
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
            pagination: r.pagination.map(Into::into),
            cache_ttl_ms: r.cache_ttl_ms,
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

/// What a plugin's `invoke` returns instead of output.
impl From<types::StepError> for PluginError {
    fn from(e: types::StepError) -> Self {
        match e {
            types::StepError::InvalidInput(m) => Self::InvalidInput(m),
            types::StepError::Failed(m) => Self::Failed(m),
            types::StepError::Http(h) => Self::Http {
                status: h.status,
                message: h.message,
                output: h.output,
            },
            types::StepError::Send(s) => Self::Send(s.into()),
        }
    }
}

/// What a plugin's `describe` returns, before the host validates it.
impl From<types::Manifest> for Declared {
    fn from(m: types::Manifest) -> Self {
        Self {
            name: m.name,
            version: m.version,
            description: m.description,
            allowed_hosts: m.allowed_hosts,
            connections: m.connections.into_iter().map(Into::into).collect(),
            calls: m.calls.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<types::CallSpec> for DeclaredCall {
    fn from(c: types::CallSpec) -> Self {
        Self {
            name: c.name,
            title: c.title,
            description: c.description,
            kind: match c.kind {
                types::CallKind::Data => CallKind::Data,
                types::CallKind::Action => CallKind::Action,
            },
            idempotent: c.idempotent,
            input_schema: c.input_schema,
            output_schema: c.output_schema,
        }
    }
}

impl From<types::ConnectionSpec> for ConnectionSpec {
    fn from(c: types::ConnectionSpec) -> Self {
        Self {
            name: c.name,
            description: c.description,
            base_url: c.base_url,
            auth: c.auth.into(),
            auth_origins: c.auth_origins,
            shared_headers: c.shared_headers,
            shared_query: c.shared_query,
            verify_call: c.verify_call,
            rate: RateSettings {
                requests: c.rate.requests,
                per_secs: c.rate.per_secs,
                concurrent: c.rate.concurrent,
            },
        }
    }
}

impl From<types::AuthScheme> for AuthScheme {
    fn from(a: types::AuthScheme) -> Self {
        use types::AuthScheme as W;
        match a {
            W::None => Self::None,
            W::OperatorDefined => Self::OperatorDefined,
            W::Bearer => Self::Bearer,
            W::Basic => Self::Basic,
            W::ApiKey(k) => Self::ApiKey {
                location: match k.location {
                    types::KeyLocation::Header => KeyLocation::Header,
                    types::KeyLocation::Query => KeyLocation::Query,
                },
                name: k.name,
            },
            W::Custom(p) => Self::Custom {
                placements: p.into_iter().map(SecretPlacement::from).collect(),
            },
            W::Oauth2ClientCredentials(o) => Self::Oauth2ClientCredentials(o.into()),
            W::Oauth2RefreshToken(o) => Self::Oauth2RefreshToken(o.into()),
            W::Oauth2Password(o) => Self::Oauth2Password(o.into()),
            W::Jwt(j) => Self::Jwt(JwtSettings {
                algorithm: match j.algorithm {
                    types::JwtAlgorithm::Hs256 => JwtAlgorithm::Hs256,
                    types::JwtAlgorithm::Rs256 => JwtAlgorithm::Rs256,
                    types::JwtAlgorithm::Es256 => JwtAlgorithm::Es256,
                },
                claims: j.claims,
                lifetime_secs: j.lifetime_secs,
                token_url: j.token_url,
            }),
            W::ClientCertificate => Self::ClientCertificate,
        }
    }
}

impl From<types::SecretPlacement> for SecretPlacement {
    fn from(p: types::SecretPlacement) -> Self {
        Self {
            target: match p.target {
                types::PlacementTarget::Header => PlacementTarget::Header,
                types::PlacementTarget::Query => PlacementTarget::Query,
                types::PlacementTarget::FormField => PlacementTarget::FormField,
                types::PlacementTarget::JsonField => PlacementTarget::JsonField,
            },
            name: p.name,
            template: p.template,
            secret: p.secret,
        }
    }
}

impl From<types::Oauth2Scheme> for OAuth2Settings {
    fn from(o: types::Oauth2Scheme) -> Self {
        Self {
            token_url: o.token_url,
            scopes: o.scopes,
            audience: o.audience,
            client_auth: match o.client_auth {
                types::ClientAuth::Basic => ClientAuth::Basic,
                types::ClientAuth::Body => ClientAuth::Body,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::exchange::SendError;
    use crate::exchange::tests::every_error;

    use super::types;

    #[test]
    fn send_errors_survive_the_round_trip_through_wit() {
        for e in every_error() {
            let wit = types::SendError::from(e.clone());
            assert_eq!(SendError::from(wit), e);
        }
    }
}
