//! Connections and their secrets: what the operator supplies, how the host
//! injects it into requests, and how every form of a secret is scrubbed from
//! what goes back to the plugin.

use std::fmt;
use std::path::Path;
use std::sync::Arc;

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use serde::Deserialize;
use url::Url;
use zeroize::Zeroizing;

use crate::bindings::types::SendError;
use crate::manifest::{AuthScheme, ConnectionSpec, KeyLocation};
use crate::tls::{ConnectionTls, TlsSettings};

/// A secret value: zeroized on drop, redacted in `Debug` and `Display`.
#[derive(Clone)]
pub struct Secret(Zeroizing<String>);

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Self::new)
    }
}

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(Zeroizing::new(value.into()))
    }

    /// The value, for injection only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

/// What a connection file or the library caller may choose as the scheme of a
/// connection whose plugin leaves it to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// HTTP Basic.
    Basic,
    /// An API key in a header or query parameter.
    ApiKey,
}

/// The secrets of a connection file's `[secrets]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Bearer token.
    pub token: Option<Secret>,
    /// Basic user name.
    pub username: Option<Secret>,
    /// Basic password.
    pub password: Option<Secret>,
    /// API key.
    pub key: Option<Secret>,
}

/// An operator's binding of one declared connection: the TOML connection file.
///
/// ```toml
/// connection = "default"          # the plugin's declared connection name
/// base_url = "https://api.example.com/v1"
/// auth = "api-key"                # none | bearer | basic | api-key
/// header = "X-Api-Key"            # api-key: a header name, or
/// # query = "api_key"             # a query parameter name
/// [secrets]
/// key = "..."
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The declared connection this binds.
    pub connection: String,
    /// Overrides the manifest's base URL.
    pub base_url: Option<String>,
    /// The scheme; required when the plugin leaves it to the operator, else it
    /// must agree with the plugin's declaration.
    pub auth: Option<AuthKind>,
    /// API key header name.
    pub header: Option<String>,
    /// API key query parameter name.
    pub query: Option<String>,
    /// The secrets.
    #[serde(default)]
    pub secrets: Secrets,
    /// TLS settings for the connection's origins (see [`TlsSettings`]).
    #[serde(default)]
    pub tls: TlsSettings,
}

/// A connection configuration is invalid for the plugin it is bound to.
#[derive(Debug, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct ConnectionError {
    connection: String,
    message: String,
}

impl ConnectionConfig {
    /// Reads a TOML connection file.
    pub fn from_file(path: &Path) -> Result<Self, ConnectionError> {
        let fail = |message: String| ConnectionError { connection: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        toml::from_str(&text).map_err(|e| fail(format!("invalid connection file: {e}")))
    }
}

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
    /// TLS material for the connection's origins, if the `[tls]` table names any.
    pub(crate) tls: Option<Arc<ConnectionTls>>,
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
        let tls = ConnectionTls::load(&config.tls).map_err(|e| fail(e.to_string()))?;
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
            tls,
        })
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
    fn secret_values(&self) -> Vec<String> {
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

/// Replaces every known secret, in every encoding an upstream might echo it
/// in, with `[REDACTED]`.
pub(crate) struct Scrubber {
    matcher: Option<AhoCorasick>,
}

/// What a scrubbed secret is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

impl Scrubber {
    /// A scrubber for the secrets of these connections.
    pub(crate) fn new<'a>(connections: impl IntoIterator<Item = &'a BoundConnection>) -> Self {
        let mut patterns: Vec<Zeroizing<String>> = Vec::new();
        for value in connections.into_iter().flat_map(BoundConnection::secret_values) {
            let value = Zeroizing::new(value);
            if value.is_empty() {
                continue;
            }
            let bytes = value.as_bytes();
            for encoded in [
                STANDARD.encode(bytes),
                URL_SAFE.encode(bytes),
                URL_SAFE_NO_PAD.encode(bytes),
                percent_encoding::utf8_percent_encode(&value, percent_encoding::NON_ALPHANUMERIC).to_string(),
                form_urlencoded::byte_serialize(bytes).collect(),
            ] {
                patterns.push(Zeroizing::new(encoded));
            }
            patterns.push(value);
        }
        patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        patterns.dedup();
        let matcher = (!patterns.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_bytes()))
                .expect("secret patterns are plain literals")
        });
        Self { matcher }
    }

    /// Whether there is anything to scrub.
    pub(crate) fn is_empty(&self) -> bool {
        self.matcher.is_none()
    }

    /// Scrubs bytes.
    pub(crate) fn bytes(&self, data: Vec<u8>) -> Vec<u8> {
        match &self.matcher {
            Some(m) if m.is_match(&data) => {
                let mut out = Vec::with_capacity(data.len());
                m.replace_all_with_bytes(&data, &mut out, |_, _, dst| {
                    dst.extend_from_slice(REDACTED.as_bytes());
                    true
                });
                out
            }
            _ => data,
        }
    }

    /// Scrubs text.
    pub(crate) fn text(&self, text: String) -> String {
        match &self.matcher {
            Some(m) if m.is_match(&text) => m.replace_all(&text, &vec![REDACTED; m.patterns_len()]),
            _ => text,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ConnectionSpec;

    fn spec(auth: AuthScheme) -> ConnectionSpec {
        ConnectionSpec {
            name: "default".into(),
            description: String::new(),
            base_url: None,
            auth,
            auth_origins: vec![],
            shared_headers: vec![],
            shared_query: vec![],
            verify_call: None,
        }
    }

    fn config(text: &str) -> ConnectionConfig {
        toml::from_str(text).unwrap()
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let c = config("connection='default'\nauth='bearer'\nbase_url='https://a.test'\n[secrets]\ntoken='s3cr3t-value'");
        let bound = BoundConnection::bind(&spec(AuthScheme::OperatorDefined), c).unwrap();
        let debug = format!("{bound:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    #[test]
    fn operator_defined_scheme_needs_auth() {
        let c = config("connection='default'\nbase_url='https://a.test'");
        let err = BoundConnection::bind(&spec(AuthScheme::OperatorDefined), c).unwrap_err().to_string();
        assert!(err.contains("set `auth`"), "{err}");
    }

    #[test]
    fn missing_secret_is_named() {
        let c = config("connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='u'");
        let err = BoundConnection::bind(&spec(AuthScheme::OperatorDefined), c).unwrap_err().to_string();
        assert!(err.contains("missing secret `password`"), "{err}");
    }

    #[test]
    fn declared_scheme_must_agree() {
        let c = config("connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\ntoken='t'");
        let err = BoundConnection::bind(&spec(AuthScheme::Bearer), c).unwrap_err().to_string();
        assert!(err.contains("disagrees"), "{err}");
    }

    #[test]
    fn credentials_go_only_to_the_base_origin() {
        let c = config("connection='default'\nauth='bearer'\nbase_url='https://api.a.test/v1'\n[secrets]\ntoken='t'");
        let bound = BoundConnection::bind(&spec(AuthScheme::OperatorDefined), c).unwrap();
        assert!(bound.may_authenticate(&Url::parse("https://api.a.test/other").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("http://api.a.test/v1").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("https://api.a.test:444/v1").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("https://evil.test/v1").unwrap()));
    }

    #[test]
    fn scrubber_removes_every_encoding() {
        let c = config(
            "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='alice'\npassword='p@ss w/rd+?'",
        );
        let bound = BoundConnection::bind(&spec(AuthScheme::OperatorDefined), c).unwrap();
        let scrub = Scrubber::new([&bound]);
        let basic = STANDARD.encode("alice:p@ss w/rd+?");
        let body = format!(
            "raw=p@ss w/rd+? b64={} url={} pct={} form={} basic={basic}",
            STANDARD.encode("p@ss w/rd+?"),
            URL_SAFE_NO_PAD.encode("p@ss w/rd+?"),
            percent_encoding::utf8_percent_encode("p@ss w/rd+?", percent_encoding::NON_ALPHANUMERIC),
            form_urlencoded::byte_serialize(b"p@ss w/rd+?").collect::<String>(),
        );
        let out = scrub.text(body);
        assert!(!out.contains("p@ss"), "{out}");
        assert!(!out.contains(&basic), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 6, "{out}");
        assert_eq!(scrub.bytes(b"nothing here".to_vec()), b"nothing here");
    }
}
