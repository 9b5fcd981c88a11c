//! The credentials stage's last step: applying what a connection's
//! credential adds ([`Additions`]) to a hop bound for one of its origins.
//! Credentials decide what to add; only the pipeline edits the request.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use url::Url;

use crate::credentials::Additions;
use crate::exchange::SendError;

/// Applies `added`, the additions of connection `connection`: headers set,
/// query pairs appended, form or JSON fields added to the encoded body. A
/// body field needs a body of that type (by `Content-Type`) that does not
/// already have the field.
pub(super) fn apply(
    connection: &str,
    added: Additions<'_>,
    url: &mut Url,
    headers: &mut HeaderMap,
    body: &mut Bytes,
) -> Result<(), SendError> {
    for (name, value) in added.headers {
        headers.insert(name, value);
    }
    if !added.query.is_empty() {
        url.query_pairs_mut().extend_pairs(added.query);
    }
    if !added.form_fields.is_empty() {
        if !has_media_type(headers, |m| m == "application/x-www-form-urlencoded") {
            return Err(body_needed(connection, "a form"));
        }
        let mut encoded =
            form_urlencoded::Serializer::new(String::from_utf8_lossy(body).into_owned());
        for (name, value) in added.form_fields {
            if form_urlencoded::parse(body).any(|(k, _)| k == name) {
                return Err(reserved_field(name));
            }
            encoded.append_pair(name, value);
        }
        *body = Bytes::from(encoded.finish());
    }
    if !added.json_fields.is_empty() {
        let is_json = has_media_type(headers, |m| m == "application/json" || m.ends_with("+json"));
        let mut object = match serde_json::from_slice::<serde_json::Value>(body) {
            Ok(serde_json::Value::Object(o)) if is_json => o,
            _ => return Err(body_needed(connection, "a JSON object")),
        };
        for (name, value) in added.json_fields {
            if object.contains_key(name) {
                return Err(reserved_field(name));
            }
            object.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
        }
        *body = Bytes::from(serde_json::to_vec(&object).expect("a JSON object serializes"));
    }
    Ok(())
}

fn body_needed(connection: &str, kind: &str) -> SendError {
    SendError::InvalidRequest(format!(
        "connection `{connection}` places its secret in {kind} body field: send {kind} body"
    ))
}

fn reserved_field(name: &str) -> SendError {
    SendError::InvalidRequest(format!(
        "body field `{name}` carries the connection's credential and is set by the host"
    ))
}

/// Whether the request's `Content-Type` media type (lowercase, without parameters) passes `check`.
fn has_media_type(headers: &HeaderMap, check: impl Fn(&str) -> bool) -> bool {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| {
            v.split(';')
                .next()
                .unwrap_or("")
                .trim()
                .to_ascii_lowercase()
        })
        .is_some_and(|m| check(&m))
}
