//! The edge between the SDK's types and the WIT-generated bindings: every
//! conversion between the two is here, and nowhere else names a generated
//! type except [`host`](crate::host) (which calls the imports), the
//! export glue in `lib.rs` and tests.
//!
//! Why: plugins use only the SDK's own types ([`Request`], [`Auth`],
//! [`FormPart`], [`RetryPolicy`], [`Method`], …). When the WIT contract
//! gains a field or a case, `wit-bindgen` changes the generated records, the
//! struct literals and exhaustive matches below stop compiling, and this
//! file alone is updated (a new request field gets its default here, a new
//! `send-error` case maps to a [`SendReason`] that plugins match with a `_`
//! arm since the SDK's enums are `#[non_exhaustive]`). Plugin code compiles
//! unchanged. The tests at the end pin every field of every conversion, so
//! a field left behind fails them.

// Natively (a plugin's unit tests) the imports are never called, so the
// conversions towards them are only used by this file's tests.
#![cfg_attr(not(target_arch = "wasm32"), allow(dead_code))]

use crate::__private::bindings::courier::plugin::log as wit_log;
use crate::__private::bindings::courier::plugin::types as wit;
use crate::StepError;
use crate::http::{
    Body, CursorPages, FormPart, Method, PageStyle, Pagination, Request, Response, RetryPolicy,
    SendError, SendReason, TimeoutPhase,
};
use crate::log::Level;
use crate::plugin::{
    ApiKeyScheme, Auth, Call, CallKind, ClientAuth, Connection, Jwt, JwtAlgorithm, KeyLocation,
    OAuth2, PlacementTarget, Plugin, SecretPlacement,
};

/// The manifest `describe` returns, with each call's JSON Schemas.
pub(crate) fn manifest(plugin: Plugin) -> wit::Manifest {
    wit::Manifest {
        name: plugin.name,
        version: plugin.version,
        description: plugin.description,
        allowed_hosts: plugin.allowed_hosts,
        connections: plugin.connections.into_iter().map(connection).collect(),
        calls: plugin.calls.into_iter().map(call).collect(),
    }
}

fn connection(c: Connection) -> wit::ConnectionSpec {
    wit::ConnectionSpec {
        name: c.name,
        description: c.description,
        base_url: c.base_url,
        auth: auth(c.auth),
        auth_origins: c.auth_origins,
        shared_headers: c.shared_headers,
        shared_query: c.shared_query,
        verify_call: c.verify_call,
        rate: wit::RateBudget {
            requests: c.rate.requests,
            per_secs: c.rate.per_secs,
            concurrent: c.rate.concurrent,
        },
    }
}

fn call(c: Call) -> wit::CallSpec {
    wit::CallSpec {
        title: c.title.unwrap_or_else(|| c.name.clone()),
        name: c.name,
        description: c.description,
        kind: match c.kind {
            CallKind::Data => wit::CallKind::Data,
            CallKind::Action => wit::CallKind::Action,
        },
        idempotent: c.idempotent,
        input_schema: (c.input_schema)(),
        output_schema: (c.output_schema)(),
    }
}

fn auth(a: Auth) -> wit::AuthScheme {
    use wit::AuthScheme as W;
    match a {
        Auth::None => W::None,
        Auth::OperatorDefined => W::OperatorDefined,
        Auth::Bearer => W::Bearer,
        Auth::Basic => W::Basic,
        Auth::ApiKey(ApiKeyScheme { location, name }) => W::ApiKey(wit::ApiKeyScheme {
            location: match location {
                KeyLocation::Header => wit::KeyLocation::Header,
                KeyLocation::Query => wit::KeyLocation::Query,
            },
            name,
        }),
        Auth::Custom(placements) => W::Custom(placements.into_iter().map(placement).collect()),
        Auth::Oauth2ClientCredentials(o) => W::Oauth2ClientCredentials(oauth2(o)),
        Auth::Oauth2RefreshToken(o) => W::Oauth2RefreshToken(oauth2(o)),
        Auth::Oauth2Password(o) => W::Oauth2Password(oauth2(o)),
        Auth::Jwt(j) => W::Jwt(jwt(j)),
        Auth::ClientCertificate => W::ClientCertificate,
    }
}

fn placement(p: SecretPlacement) -> wit::SecretPlacement {
    wit::SecretPlacement {
        target: match p.target {
            PlacementTarget::Header => wit::PlacementTarget::Header,
            PlacementTarget::Query => wit::PlacementTarget::Query,
            PlacementTarget::FormField => wit::PlacementTarget::FormField,
            PlacementTarget::JsonField => wit::PlacementTarget::JsonField,
        },
        name: p.name,
        template: p.template,
        secret: p.secret,
    }
}

fn oauth2(o: OAuth2) -> wit::Oauth2Scheme {
    wit::Oauth2Scheme {
        token_url: o.token_url,
        scopes: o.scopes,
        audience: o.audience,
        client_auth: match o.client_auth {
            ClientAuth::Basic => wit::ClientAuth::Basic,
            ClientAuth::Body => wit::ClientAuth::Body,
        },
    }
}

fn jwt(j: Jwt) -> wit::JwtScheme {
    wit::JwtScheme {
        algorithm: match j.algorithm {
            JwtAlgorithm::Hs256 => wit::JwtAlgorithm::Hs256,
            JwtAlgorithm::Rs256 => wit::JwtAlgorithm::Rs256,
            JwtAlgorithm::Es256 => wit::JwtAlgorithm::Es256,
        },
        claims: j.claims,
        lifetime_secs: j.lifetime_secs,
        token_url: j.token_url,
    }
}

/// The WIT request for a checked SDK request.
pub(crate) fn request(r: Request) -> wit::Request {
    wit::Request {
        method: method(r.method),
        url: r.url,
        query: r.query,
        headers: r.headers,
        body: body(r.body),
        connection: r.connection,
        timeout_ms: r.timeout_ms,
        follow_redirects: r.follow_redirects,
        retry: r.retry.map(retry),
        idempotency_key: r.idempotency_key,
        pagination: r.pagination.map(pagination),
        cache_ttl_ms: r.cache_ttl_ms,
    }
}

fn method(m: Method) -> wit::Method {
    match m {
        Method::Get => wit::Method::Get,
        Method::Head => wit::Method::Head,
        Method::Post => wit::Method::Post,
        Method::Put => wit::Method::Put,
        Method::Patch => wit::Method::Patch,
        Method::Delete => wit::Method::Delete,
        Method::Options => wit::Method::Options,
    }
}

fn body(b: Body) -> wit::Body {
    match b {
        Body::None => wit::Body::None,
        Body::Json(text) => wit::Body::Json(text),
        Body::Form(pairs) => wit::Body::Form(pairs),
        Body::Multipart(parts) => wit::Body::Multipart(parts.into_iter().map(form_part).collect()),
        Body::Graphql {
            query,
            variables,
            operation_name,
        } => wit::Body::Graphql(wit::GraphqlRequest {
            query,
            variables,
            operation_name,
        }),
        Body::Xml(text) => wit::Body::Xml(text),
        Body::Text(text) => wit::Body::Text(text),
        Body::Bytes { content_type, data } => wit::Body::Bytes(wit::RawBody { content_type, data }),
    }
}

fn form_part(p: FormPart) -> wit::FormPart {
    wit::FormPart {
        name: p.name,
        filename: p.filename,
        content_type: p.content_type,
        data: p.data,
    }
}

fn retry(p: RetryPolicy) -> wit::RetryPolicy {
    wit::RetryPolicy {
        max_attempts: p.max_attempts,
        initial_backoff_ms: p.initial_backoff_ms,
        max_backoff_ms: p.max_backoff_ms,
        retry_on_status: p.retry_on_status,
    }
}

fn pagination(p: Pagination) -> wit::Pagination {
    wit::Pagination {
        style: match p.style {
            PageStyle::Cursor(CursorPages { path, param }) => {
                wit::PageStyle::Cursor(wit::CursorPages { path, param })
            }
            PageStyle::Page(param) => wit::PageStyle::Page(param),
            PageStyle::Offset(param) => wit::PageStyle::Offset(param),
            PageStyle::Link => wit::PageStyle::Link,
        },
        items_path: p.items_path,
        limit_param: p.limit_param,
        page_size: p.page_size,
        max_pages: p.max_pages,
    }
}

/// The SDK's response for the host's.
pub(crate) fn response(r: wit::Response) -> Response {
    Response::new(r.status, r.headers, r.body, r.final_url)
}

/// The SDK's error for the host's `send-error`.
pub(crate) fn send_error(e: wit::SendError) -> SendError {
    use wit::SendError as W;
    SendError(match e {
        W::Denied(m) => SendReason::Denied(m),
        W::Timeout(phase) => SendReason::Timeout(match phase {
            wit::TimeoutPhase::Connect => TimeoutPhase::Connect,
            wit::TimeoutPhase::TlsHandshake => TimeoutPhase::TlsHandshake,
            wit::TimeoutPhase::FirstByte => TimeoutPhase::FirstByte,
            wit::TimeoutPhase::Total => TimeoutPhase::Total,
            wit::TimeoutPhase::StepDeadline => TimeoutPhase::StepDeadline,
        }),
        W::Dns(m) => SendReason::Dns(m),
        W::Connect(m) => SendReason::Connect(m),
        W::Tls(m) => SendReason::Tls(m),
        W::TooLarge(m) => SendReason::TooLarge(m),
        W::Protocol(m) => SendReason::Protocol(m),
        W::InvalidRequest(m) => SendReason::InvalidRequest(m),
        W::Credential(m) => SendReason::Credential(m),
        W::Limit(m) => SendReason::Limit(m),
        W::CircuitOpen(m) => SendReason::CircuitOpen(m),
        W::Other(m) => SendReason::Other(m),
    })
}

/// The WIT `send-error` for the SDK's (a call's error carries it back).
fn wit_send_error(e: SendError) -> wit::SendError {
    use wit::SendError as W;
    match e.0 {
        SendReason::Denied(m) => W::Denied(m),
        SendReason::Timeout(phase) => W::Timeout(match phase {
            TimeoutPhase::Connect => wit::TimeoutPhase::Connect,
            TimeoutPhase::TlsHandshake => wit::TimeoutPhase::TlsHandshake,
            TimeoutPhase::FirstByte => wit::TimeoutPhase::FirstByte,
            TimeoutPhase::Total => wit::TimeoutPhase::Total,
            TimeoutPhase::StepDeadline => wit::TimeoutPhase::StepDeadline,
        }),
        SendReason::Dns(m) => W::Dns(m),
        SendReason::Connect(m) => W::Connect(m),
        SendReason::Tls(m) => W::Tls(m),
        SendReason::TooLarge(m) => W::TooLarge(m),
        SendReason::Protocol(m) => W::Protocol(m),
        SendReason::InvalidRequest(m) => W::InvalidRequest(m),
        SendReason::Credential(m) => W::Credential(m),
        SendReason::Limit(m) => W::Limit(m),
        SendReason::CircuitOpen(m) => W::CircuitOpen(m),
        SendReason::Other(m) => W::Other(m),
    }
}

/// The WIT `step-error` a failed call returns.
pub(crate) fn step_error(error: StepError) -> wit::StepError {
    match error {
        StepError::InvalidInput(message) => wit::StepError::InvalidInput(message),
        StepError::Http {
            status,
            message,
            output,
        } => wit::StepError::Http(wit::HttpFailure {
            status,
            message,
            output: output.map(|value| value.to_string()),
        }),
        StepError::Send(error) => wit::StepError::Send(wit_send_error(error)),
        StepError::Failed(message) => wit::StepError::Failed(message),
    }
}

/// The WIT log level.
pub(crate) fn level(level: Level) -> wit_log::Level {
    match level {
        Level::Trace => wit_log::Level::Trace,
        Level::Debug => wit_log::Level::Debug,
        Level::Info => wit_log::Level::Info,
        Level::Warn => wit_log::Level::Warn,
        Level::Error => wit_log::Level::Error,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use serde_json::json;

    use super::*;

    #[test]
    fn a_request_converts_field_by_field() {
        let sdk = Request::post("/v1/customers")
            .query("a", "1")
            .header("X-Trace", "t")
            .form([("email", "a@example.test")])
            .connection("stripe")
            .timeout(Duration::from_millis(1500))
            .follow_redirects(false)
            .retry(RetryPolicy::attempts(3).on_status([503]))
            .idempotency_key("k")
            .paginate(Pagination::cursor("data.-1.id", "starting_after").items("data"))
            .cache(Duration::from_secs(2));
        let w = request(sdk);
        // Written out whole: a field the WIT gains fails to compile here.
        let wit::Request {
            method,
            url,
            query,
            headers,
            body,
            connection,
            timeout_ms,
            follow_redirects,
            retry,
            idempotency_key,
            pagination,
            cache_ttl_ms,
        } = w;
        assert_eq!((method, url.as_str()), (wit::Method::Post, "/v1/customers"));
        assert_eq!(query, [("a".to_owned(), "1".to_owned())]);
        assert_eq!(headers, [("X-Trace".to_owned(), "t".to_owned())]);
        assert_eq!(
            body,
            wit::Body::Form(vec![("email".into(), "a@example.test".into())])
        );
        assert_eq!(connection.as_deref(), Some("stripe"));
        assert_eq!((timeout_ms, follow_redirects), (Some(1500), false));
        assert_eq!(
            retry,
            Some(wit::RetryPolicy {
                max_attempts: 3,
                initial_backoff_ms: 200,
                max_backoff_ms: 5000,
                retry_on_status: vec![503],
            })
        );
        assert_eq!(idempotency_key.as_deref(), Some("k"));
        assert_eq!(
            pagination,
            Some(wit::Pagination {
                style: wit::PageStyle::Cursor(wit::CursorPages {
                    path: "data.-1.id".into(),
                    param: "starting_after".into()
                }),
                items_path: "data".into(),
                limit_param: None,
                page_size: None,
                max_pages: None,
            })
        );
        assert_eq!(cache_ttl_ms, Some(2000));
    }

    #[test]
    fn bodies_convert() {
        let cases = [
            (
                Request::post("/")
                    .multipart([FormPart::file("f", "a.txt", "x").content_type("text/plain")]),
                wit::Body::Multipart(vec![wit::FormPart {
                    name: "f".into(),
                    filename: Some("a.txt".into()),
                    content_type: Some("text/plain".into()),
                    data: b"x".to_vec(),
                }]),
            ),
            (
                Request::post("/").graphql("{a}", Some(json!({"x": 1})), Some("Op")),
                wit::Body::Graphql(wit::GraphqlRequest {
                    query: "{a}".into(),
                    variables: Some(r#"{"x":1}"#.into()),
                    operation_name: Some("Op".into()),
                }),
            ),
            (
                Request::post("/").bytes("image/png", [1, 2]),
                wit::Body::Bytes(wit::RawBody {
                    content_type: "image/png".into(),
                    data: vec![1, 2],
                }),
            ),
            (
                Request::post("/").xml("<a/>"),
                wit::Body::Xml("<a/>".into()),
            ),
            (Request::post("/").text("t"), wit::Body::Text("t".into())),
            (
                Request::post("/").json(&json!({"b": 1, "a": 2})),
                wit::Body::Json(r#"{"b":1,"a":2}"#.into()),
            ),
            (Request::get("/"), wit::Body::None),
        ];
        for (sdk, expected) in cases {
            assert_eq!(request(sdk).body, expected);
        }
    }

    #[test]
    fn the_manifest_converts_connections_auth_and_calls() {
        let plugin = Plugin::new("shop", "1.0.0")
            .connection(
                Connection::new("a")
                    .base_url("https://api.shop.test")
                    .auth(Auth::Custom(vec![SecretPlacement::new(
                        PlacementTarget::JsonField,
                        "sig",
                        "v1:{secret}",
                        "key",
                    )]))
                    .auth_origin("https://files.shop.test")
                    .shared_header("Accept", "application/json")
                    .shared_query("v", "2")
                    .rate(10, 1),
            )
            .connection(
                Connection::new("b").auth(Auth::Oauth2RefreshToken(
                    OAuth2::new()
                        .token_url("https://auth.test/token")
                        .scope("read")
                        .client_auth(ClientAuth::Body),
                )),
            )
            .connection(
                Connection::new("c").auth(Auth::Jwt(
                    Jwt::new(
                        JwtAlgorithm::Es256,
                        &json!({"iss": "x"}),
                        Duration::from_secs(60),
                    )
                    .token_url("https://auth.test/jwt"),
                )),
            )
            .connection(Connection::new("d").auth(Auth::api_key_query("key")));
        let m = manifest(plugin);
        let a = &m.connections[0];
        assert_eq!(a.base_url.as_deref(), Some("https://api.shop.test"));
        assert_eq!(
            a.auth,
            wit::AuthScheme::Custom(vec![wit::SecretPlacement {
                target: wit::PlacementTarget::JsonField,
                name: "sig".into(),
                template: "v1:{secret}".into(),
                secret: "key".into(),
            }])
        );
        assert_eq!(a.auth_origins, ["https://files.shop.test"]);
        assert_eq!(a.shared_headers[0].0, "Accept");
        assert_eq!(a.shared_query[0].1, "2");
        assert_eq!((a.rate.requests, a.rate.per_secs), (Some(10), Some(1)));
        assert_eq!(
            m.connections[1].auth,
            wit::AuthScheme::Oauth2RefreshToken(wit::Oauth2Scheme {
                token_url: Some("https://auth.test/token".into()),
                scopes: vec!["read".into()],
                audience: None,
                client_auth: wit::ClientAuth::Body,
            })
        );
        assert_eq!(
            m.connections[2].auth,
            wit::AuthScheme::Jwt(wit::JwtScheme {
                algorithm: wit::JwtAlgorithm::Es256,
                claims: r#"{"iss":"x"}"#.into(),
                lifetime_secs: 60,
                token_url: Some("https://auth.test/jwt".into()),
            })
        );
        assert_eq!(
            m.connections[3].auth,
            wit::AuthScheme::ApiKey(wit::ApiKeyScheme {
                location: wit::KeyLocation::Query,
                name: "key".into()
            })
        );
    }

    #[test]
    fn errors_convert_both_ways() {
        for (w, sdk) in [
            (
                wit::SendError::Denied("d".into()),
                SendReason::Denied("d".into()),
            ),
            (
                wit::SendError::Timeout(wit::TimeoutPhase::TlsHandshake),
                SendReason::Timeout(TimeoutPhase::TlsHandshake),
            ),
            (
                wit::SendError::Limit("l".into()),
                SendReason::Limit("l".into()),
            ),
            (
                wit::SendError::CircuitOpen("c".into()),
                SendReason::CircuitOpen("c".into()),
            ),
        ] {
            assert_eq!(send_error(w.clone()), SendError(sdk.clone()));
            assert_eq!(wit_send_error(SendError(sdk)), w);
        }
        assert_eq!(
            step_error(StepError::Http {
                status: 500,
                message: "upstream answered 500".into(),
                output: Some(json!({"status": 500})),
            }),
            wit::StepError::Http(wit::HttpFailure {
                status: 500,
                message: "upstream answered 500".into(),
                output: Some(r#"{"status":500}"#.into()),
            })
        );
        assert_eq!(
            step_error(StepError::send(SendReason::Other("x".into()).into())),
            wit::StepError::Send(wit::SendError::Other("x".into()))
        );
    }
}
