//! A connection bound to a plugin's declaration: base URL, the origins that
//! may receive its credentials, the credential, and its injection.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use url::Url;

use super::{AuthKind, ConnectionConfig, ConnectionError, Secret};
use crate::bindings::types::SendError;
use crate::manifest::{AuthScheme, ConnectionSpec, KeyLocation};

/// How a bound connection authenticates, with its secrets.
#[derive(Debug)]
pub(crate) enum Credential {
    None,
    Bearer(Secret),
    Basic { username: Secret, password: Secret },
    ApiKey { location: KeyLocation, name: String, key: Secret },
}

/// A connection ready for requests: base URL, the origins that may receive its
/// credentials, and the credential itself.
#[derive(Debug)]
pub(crate) struct BoundConnection {
    pub(crate) name: String,
    pub(crate) base_url: Option<Url>,
    pub(crate) origins: Vec<url::Origin>,
    pub(crate) credential: Credential,
    pub(crate) shared_headers: Vec<(String, String)>,
    pub(crate) shared_query: Vec<(String, String)>,
}

impl BoundConnection {
    /// Checks an operator's configuration against the plugin's declaration.
    pub(crate) fn bind(spec: &ConnectionSpec, config: ConnectionConfig) -> Result<Self, ConnectionError> {
        let fail = |message: String| ConnectionError { connection: spec.name.clone(), message };
        let base_url = match config.base_url.as_deref().or(spec.base_url.as_deref()) {
            Some(u) => Some(parse_base_url(u).map_err(fail)?),
            None => None,
        };
        let mut origins: Vec<url::Origin> = base_url.iter().map(Url::origin).collect();
        for o in &spec.auth_origins {
            origins.push(Url::parse(o).map_err(|e| fail(format!("auth origin `{o}`: {e}")))?.origin());
        }
        let ConnectionConfig { auth, header, query, secrets, .. } = config;
        let kind = match (&spec.auth, auth) {
            (AuthScheme::OperatorDefined, Some(kind)) => kind,
            (AuthScheme::OperatorDefined, None) => {
                return Err(fail("the plugin leaves the scheme to the operator: set `auth`".into()));
            }
            (declared, chosen) => {
                let kind = declared_kind(declared).ok_or_else(|| {
                    fail(format!("auth scheme `{}` is not implemented yet", declared.name()))
                })?;
                if chosen.is_some_and(|c| c != kind) {
                    return Err(fail(format!("`auth` disagrees with the plugin's scheme `{}`", declared.name())));
                }
                kind
            }
        };
        let need = |s: Option<Secret>, key: &str| s.ok_or_else(|| fail(format!("missing secret `{key}` in [secrets]")));
        let credential = match kind {
            AuthKind::None => Credential::None,
            AuthKind::Bearer => Credential::Bearer(need(secrets.token, "token")?),
            AuthKind::Basic => Credential::Basic {
                username: need(secrets.username, "username")?,
                password: need(secrets.password, "password")?,
            },
            AuthKind::ApiKey => {
                let (location, name) = match (&spec.auth, header, query) {
                    (AuthScheme::ApiKey { location, name }, None, None) => (*location, name.clone()),
                    (_, Some(h), None) => (KeyLocation::Header, h),
                    (_, None, Some(q)) => (KeyLocation::Query, q),
                    _ => return Err(fail("api-key needs exactly one of `header` or `query`".into())),
                };
                if location == KeyLocation::Header {
                    http::HeaderName::try_from(name.as_str())
                        .map_err(|_| fail(format!("invalid header name `{name}`")))?;
                }
                Credential::ApiKey { location, name, key: need(secrets.key, "key")? }
            }
        };
        if base_url.is_none() && !matches!(credential, Credential::None) && origins.is_empty() {
            return Err(fail("credentials need a `base_url` whose origin may receive them".into()));
        }
        Ok(Self {
            name: spec.name.clone(),
            base_url,
            origins,
            credential,
            shared_headers: spec.shared_headers.clone(),
            shared_query: spec.shared_query.clone(),
        })
    }

    /// A connection without credentials, for unit tests of URL handling.
    #[cfg(test)]
    pub(crate) fn unauthenticated(name: &str, base_url: Url) -> Self {
        Self {
            name: name.into(),
            origins: vec![base_url.origin()],
            base_url: Some(base_url),
            credential: Credential::None,
            shared_headers: vec![],
            shared_query: vec![],
        }
    }

    /// Whether this URL's origin may receive the connection's credentials.
    pub(crate) fn may_authenticate(&self, url: &Url) -> bool {
        let origin = url.origin();
        self.origins.iter().any(|o| *o == origin)
    }

    /// Puts the credential into a request bound for one of the connection's
    /// origins (the caller checks [`Self::may_authenticate`]).
    pub(crate) fn apply(&self, url: &mut Url, headers: &mut http::HeaderMap) -> Result<(), SendError> {
        let secret_header = |value: String| {
            let mut v = http::HeaderValue::try_from(value).map_err(|_| {
                SendError::Credential(format!("connection `{}`: the secret is not a valid header value", self.name))
            })?;
            v.set_sensitive(true);
            Ok::<_, SendError>(v)
        };
        match &self.credential {
            Credential::None => {}
            Credential::Bearer(token) => {
                headers.insert(http::header::AUTHORIZATION, secret_header(format!("Bearer {}", token.expose()))?);
            }
            Credential::Basic { username, password } => {
                let encoded = STANDARD.encode(format!("{}:{}", username.expose(), password.expose()));
                headers.insert(http::header::AUTHORIZATION, secret_header(format!("Basic {encoded}"))?);
            }
            Credential::ApiKey { location: KeyLocation::Header, name, key } => {
                let name = http::HeaderName::try_from(name.as_str()).expect("checked when the connection was bound");
                headers.insert(name, secret_header(key.expose().to_owned())?);
            }
            Credential::ApiKey { location: KeyLocation::Query, name, key } => {
                url.query_pairs_mut().append_pair(name, key.expose());
            }
        }
        Ok(())
    }

    /// The header or query name the credential occupies, which a plugin may not set.
    pub(crate) fn reserved_name(&self) -> Option<(KeyLocation, &str)> {
        match &self.credential {
            Credential::ApiKey { location, name, .. } => Some((*location, name)),
            _ => None,
        }
    }

    /// Every secret value of this connection, for the scrubber.
    pub(super) fn secret_values(&self) -> Vec<String> {
        match &self.credential {
            Credential::None => vec![],
            Credential::Bearer(t) => vec![t.expose().to_owned()],
            Credential::Basic { username, password } => vec![
                password.expose().to_owned(),
                format!("{}:{}", username.expose(), password.expose()),
            ],
            Credential::ApiKey { key, .. } => vec![key.expose().to_owned()],
        }
    }
}

fn declared_kind(scheme: &AuthScheme) -> Option<AuthKind> {
    match scheme {
        AuthScheme::None => Some(AuthKind::None),
        AuthScheme::Bearer => Some(AuthKind::Bearer),
        AuthScheme::Basic => Some(AuthKind::Basic),
        AuthScheme::ApiKey { .. } => Some(AuthKind::ApiKey),
        _ => None,
    }
}

/// Parses a base URL: absolute http(s), no user info, no query or fragment.
pub(crate) fn parse_base_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("base URL `{s}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("base URL `{s}` must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("base URL `{s}` must not carry user info"));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(format!("base URL `{s}` must not carry a query or fragment"));
    }
    Ok(url)
}
