//! Injection: the host puts a connection's credential into a request bound
//! for one of its origins, after the plugin built the request.

use bytes::Bytes;
use http::HeaderMap;
use http::header::CONTENT_TYPE;
use url::Url;

use super::BoundConnection;
use super::connection::Credential;
use super::tokens::TokenSource;
use crate::exchange::SendError;
use crate::manifest::PlacementTarget;
use crate::secret::Secret;

impl BoundConnection {
    /// Where the access tokens of a token scheme come from (OAuth 2 grants,
    /// JWT): the caller obtains one through [`TokenSource::begin`] before
    /// [`Self::apply`]. `None` for the other schemes.
    pub(crate) fn token_source(&self) -> Option<&TokenSource> {
        match &self.credential {
            Credential::Token(source) => Some(source),
            Credential::None | Credential::Static(_) => None,
        }
    }

    /// Puts the credential into a request bound for one of the connection's
    /// origins (the caller checks [`Self::may_authenticate`]): headers, query
    /// parameters, and form or JSON body fields of the encoded body. For a
    /// token scheme, `token` is the access token the caller obtained from
    /// [`Self::token_source`], sent as a bearer token.
    pub(crate) fn apply(
        &self,
        url: &mut Url,
        headers: &mut HeaderMap,
        body: &mut Bytes,
        token: Option<&Secret>,
    ) -> Result<(), SendError> {
        if let Some(token) = token {
            let mut value = http::HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| self.not_a_header_value())?;
            value.set_sensitive(true);
            headers.insert(http::header::AUTHORIZATION, value);
            return Ok(());
        }
        for p in self.placements(PlacementTarget::Header) {
            let name = http::HeaderName::try_from(p.name.as_str())
                .expect("checked when the connection was bound");
            let mut value =
                http::HeaderValue::try_from(p.value()).map_err(|_| self.not_a_header_value())?;
            value.set_sensitive(true);
            headers.insert(name, value);
        }
        for p in self.placements(PlacementTarget::Query) {
            url.query_pairs_mut().append_pair(&p.name, p.value());
        }
        let mut form = self.placements(PlacementTarget::FormField).peekable();
        if form.peek().is_some() {
            if !has_media_type(headers, |m| m == "application/x-www-form-urlencoded") {
                return Err(self.body_needed("a form"));
            }
            let mut encoded =
                form_urlencoded::Serializer::new(String::from_utf8_lossy(body).into_owned());
            for p in form {
                if form_urlencoded::parse(body).any(|(k, _)| k == p.name.as_str()) {
                    return Err(reserved_field(&p.name));
                }
                encoded.append_pair(&p.name, p.value());
            }
            *body = Bytes::from(encoded.finish());
        }
        let mut json = self.placements(PlacementTarget::JsonField).peekable();
        if json.peek().is_some() {
            let is_json =
                has_media_type(headers, |m| m == "application/json" || m.ends_with("+json"));
            let mut object = match serde_json::from_slice::<serde_json::Value>(body) {
                Ok(serde_json::Value::Object(o)) if is_json => o,
                _ => return Err(self.body_needed("a JSON object")),
            };
            for p in json {
                if object.contains_key(&p.name) {
                    return Err(reserved_field(&p.name));
                }
                object.insert(
                    p.name.clone(),
                    serde_json::Value::String(p.value().to_owned()),
                );
            }
            *body = Bytes::from(serde_json::to_vec(&object).expect("a JSON object serializes"));
        }
        Ok(())
    }

    /// The API answered 401 to `token`: forget it so that the next
    /// [`TokenSource::begin`] obtains a new one.
    pub(crate) async fn token_rejected(&self, token: &Secret) {
        if let Credential::Token(source) = &self.credential {
            source.rejected(token).await;
        }
    }

    fn not_a_header_value(&self) -> SendError {
        SendError::Credential(format!(
            "connection `{}`: the secret is not a valid header value",
            self.name
        ))
    }

    fn body_needed(&self, kind: &str) -> SendError {
        SendError::InvalidRequest(format!(
            "connection `{}` places its secret in {kind} body field: send {kind} body",
            self.name
        ))
    }
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
