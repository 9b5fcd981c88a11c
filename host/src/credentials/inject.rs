//! Injection: what a connection's credential adds to a request bound for
//! one of its origins, after the plugin built the request. The outbound
//! pipeline applies the [`Additions`]; credentials never edit a request.

use http::{HeaderName, HeaderValue};

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

    /// What the credential adds to a request bound for one of the
    /// connection's origins (the caller checks [`Self::may_authenticate`]):
    /// headers, query parameters, and form or JSON body fields, for the
    /// outbound pipeline to apply. For a token scheme, `token` is the access
    /// token the caller obtained from [`Self::token_source`], sent as a
    /// bearer token. Fails when a secret is not a valid header value.
    pub(crate) fn apply(&self, token: Option<&Secret>) -> Result<Additions<'_>, SendError> {
        let mut additions = Additions::default();
        if let Some(token) = token {
            let mut value = HeaderValue::try_from(format!("Bearer {}", token.expose()))
                .map_err(|_| self.not_a_header_value())?;
            value.set_sensitive(true);
            additions.headers.push((http::header::AUTHORIZATION, value));
            return Ok(additions);
        }
        for p in self.placements(PlacementTarget::Header) {
            let name = HeaderName::try_from(p.name.as_str())
                .expect("checked when the connection was bound");
            let mut value =
                HeaderValue::try_from(p.value()).map_err(|_| self.not_a_header_value())?;
            value.set_sensitive(true);
            additions.headers.push((name, value));
        }
        let pairs = |target| {
            self.placements(target)
                .map(|p| (p.name.as_str(), p.value()))
                .collect::<Vec<_>>()
        };
        additions.query = pairs(PlacementTarget::Query);
        additions.form_fields = pairs(PlacementTarget::FormField);
        additions.json_fields = pairs(PlacementTarget::JsonField);
        Ok(additions)
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
}

/// What a credential adds to one request, for the outbound pipeline to
/// apply: headers (set, replacing any of the same name; values marked
/// sensitive), query pairs (appended), and fields of a form or JSON object
/// body (added; the pipeline refuses a body of another type or one that
/// already has the field). The values are secrets, hence no `Debug`.
#[derive(Default)]
pub(crate) struct Additions<'a> {
    /// Headers to set.
    pub(crate) headers: Vec<(HeaderName, HeaderValue)>,
    /// Query pairs to append.
    pub(crate) query: Vec<(&'a str, &'a str)>,
    /// Fields to add to an `application/x-www-form-urlencoded` body.
    pub(crate) form_fields: Vec<(&'a str, &'a str)>,
    /// String fields to add to a JSON object body.
    pub(crate) json_fields: Vec<(&'a str, &'a str)>,
}
