//! RFC 9457 problem documents: every error the API answers with.

use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An `application/problem+json` answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct Problem {
    /// Always `about:blank`: the status says what kind of problem it is.
    #[serde(rename = "type")]
    kind: &'static str,
    /// The status's reason phrase.
    title: String,
    /// The HTTP status.
    status: u16,
    /// What went wrong, for a person.
    detail: String,
    #[serde(skip)]
    code: StatusCode,
}

impl Problem {
    /// A problem with this status and message.
    pub(crate) fn new(code: StatusCode, detail: impl Into<String>) -> Self {
        Self {
            kind: "about:blank",
            title: code.canonical_reason().unwrap_or("Error").to_owned(),
            status: code.as_u16(),
            detail: detail.into(),
            code,
        }
    }

    /// 404 with this message.
    pub(crate) fn not_found(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, detail)
    }

    /// 422: well-formed but not acceptable.
    pub(crate) fn unprocessable(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, detail)
    }

    /// What went wrong, for a person.
    pub(crate) fn detail(&self) -> &str {
        &self.detail
    }

    /// 500, logged; the caller learns nothing of the internals.
    pub(crate) fn internal(error: &anyhow::Error) -> Self {
        tracing::error!(error = %format!("{error:#}"), "internal error");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error")
    }
}

impl IntoResponse for Problem {
    fn into_response(self) -> Response {
        let mut response = (self.code, axum::Json(&self)).into_response();
        if self.code == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        response
    }
}

/// 403: a tenant token on an admin endpoint. Its own type so that the
/// operations that can answer it document it (`response = Forbidden`).
#[derive(Debug, utoipa::ToResponse)]
#[response(
    description = "A tenant token on an admin endpoint",
    content_type = "application/problem+json"
)]
pub(crate) struct Forbidden(Problem);

impl Forbidden {
    /// The admin's token is needed.
    pub(crate) fn admin_only() -> Self {
        Self(Problem::new(
            StatusCode::FORBIDDEN,
            "this endpoint needs the admin token",
        ))
    }
}

impl From<Forbidden> for Problem {
    fn from(f: Forbidden) -> Self {
        f.0
    }
}

impl From<anyhow::Error> for Problem {
    fn from(e: anyhow::Error) -> Self {
        Self::internal(&e)
    }
}

impl From<JsonRejection> for Problem {
    fn from(r: JsonRejection) -> Self {
        let code = match &r {
            // A well-formed body the type refuses (unknown field, wrong
            // type, missing field) is 422; broken JSON is 400.
            JsonRejection::JsonDataError(_) => StatusCode::UNPROCESSABLE_ENTITY,
            _ => r.status(),
        };
        Self::new(code, r.body_text())
    }
}

impl From<QueryRejection> for Problem {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}

impl From<PathRejection> for Problem {
    fn from(r: PathRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, r.body_text())
    }
}
