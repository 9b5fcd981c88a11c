//! The plugin manifest as the host keeps it: declared by the plugin
//! ([`Declared`], converted from the WIT record by `bindings`), validated
//! once at load time, serialized for `courier inspect`.

use serde::Serialize;

use crate::limits::RateSettings;

use courier_egress::head::parse_base_url;
use courier_egress::{AllowedHost, parse_plugin_hosts};

/// What a plugin declares about itself.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Plugin name.
    pub name: String,
    /// Plugin version.
    pub version: String,
    /// What it integrates with.
    pub description: String,
    /// Hosts it may call (`scheme://host[:port][/path]` patterns): those it
    /// declared, then the origin of each connection's declared base URL
    /// that no declared pattern already allows (a host is written once).
    pub allowed_hosts: Vec<String>,
    /// Connections it uses.
    pub connections: Vec<ConnectionSpec>,
    /// Calls it offers.
    pub calls: Vec<CallSpec>,
}

/// A connection the plugin declares.
#[derive(Debug, Clone, Serialize)]
pub struct ConnectionSpec {
    /// Name requests use.
    pub name: String,
    /// What it connects to.
    pub description: String,
    /// Default base URL.
    pub base_url: Option<String>,
    /// Authentication scheme.
    pub auth: AuthScheme,
    /// Further origins that may receive its credentials.
    pub auth_origins: Vec<String>,
    /// Non-secret headers sent with every request.
    pub shared_headers: Vec<(String, String)>,
    /// Non-secret query pairs sent with every request.
    pub shared_query: Vec<(String, String)>,
    /// A call that checks the connection.
    pub verify_call: Option<String>,
    /// The rate budget the plugin declares (the operator's `[rate]` table
    /// may narrow it, never widen it).
    pub rate: RateSettings,
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyLocation {
    /// A header.
    Header,
    /// A query parameter.
    Query,
}

/// How a connection authenticates (mirrors the WIT `auth-scheme`; the
/// settings of the OAuth 2, JWT and custom schemes are kept as declared).
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "scheme", rename_all = "kebab-case")]
pub enum AuthScheme {
    /// No authentication.
    None,
    /// Chosen by the operator's connection file.
    OperatorDefined,
    /// Bearer token.
    Bearer,
    /// HTTP Basic.
    Basic,
    /// API key.
    ApiKey {
        /// Header or query.
        location: KeyLocation,
        /// Header or parameter name.
        name: String,
    },
    /// Secrets placed by template.
    Custom {
        /// Where each secret goes.
        placements: Vec<SecretPlacement>,
    },
    /// OAuth 2 client credentials.
    Oauth2ClientCredentials(OAuth2Settings),
    /// OAuth 2 refresh token.
    Oauth2RefreshToken(OAuth2Settings),
    /// OAuth 2 password grant.
    Oauth2Password(OAuth2Settings),
    /// Host-signed JWT.
    Jwt(JwtSettings),
    /// TLS client certificate.
    ClientCertificate,
}

impl AuthScheme {
    /// The scheme's name as written in WIT and connection files.
    pub fn name(&self) -> &'static str {
        self.kind().map_or("operator-defined", AuthKind::name)
    }

    /// The kind of credential it needs; `None` when the operator chooses.
    pub fn kind(&self) -> Option<AuthKind> {
        Some(match self {
            Self::OperatorDefined => return None,
            Self::None => AuthKind::None,
            Self::Bearer => AuthKind::Bearer,
            Self::Basic => AuthKind::Basic,
            Self::ApiKey { .. } => AuthKind::ApiKey,
            Self::Custom { .. } => AuthKind::Custom,
            Self::Oauth2ClientCredentials(_) => AuthKind::Oauth2ClientCredentials,
            Self::Oauth2RefreshToken(_) => AuthKind::Oauth2RefreshToken,
            Self::Oauth2Password(_) => AuthKind::Oauth2Password,
            Self::Jwt(_) => AuthKind::Jwt,
            Self::ClientCertificate => AuthKind::ClientCertificate,
        })
    }
}

/// The kinds of credential, as a plugin declares them and a connection
/// chooses them (`auth`): the one list of schemes the host knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
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
    /// Secrets placed by template in headers, query, form or JSON fields.
    Custom,
    /// OAuth 2 client credentials grant.
    Oauth2ClientCredentials,
    /// OAuth 2 refresh token grant.
    Oauth2RefreshToken,
    /// OAuth 2 resource owner password grant.
    Oauth2Password,
    /// A JWT signed by the host.
    Jwt,
    /// A TLS client certificate.
    ClientCertificate,
}

impl AuthKind {
    /// Every kind.
    pub const ALL: [Self; 10] = [
        Self::None,
        Self::Bearer,
        Self::Basic,
        Self::ApiKey,
        Self::Custom,
        Self::Oauth2ClientCredentials,
        Self::Oauth2RefreshToken,
        Self::Oauth2Password,
        Self::Jwt,
        Self::ClientCertificate,
    ];

    /// The name as written in WIT and connection files.
    pub fn name(self) -> &'static str {
        match self {
            Self::None => "none",
            Self::Bearer => "bearer",
            Self::Basic => "basic",
            Self::ApiKey => "api-key",
            Self::Custom => "custom",
            Self::Oauth2ClientCredentials => "oauth2-client-credentials",
            Self::Oauth2RefreshToken => "oauth2-refresh-token",
            Self::Oauth2Password => "oauth2-password",
            Self::Jwt => "jwt",
            Self::ClientCertificate => "client-certificate",
        }
    }
}

/// Where a custom placement puts a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PlacementTarget {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
    /// A field of a form body.
    FormField,
    /// A top-level field of a JSON object body.
    JsonField,
}

/// One secret the host puts into a request after the plugin built it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretPlacement {
    /// Where it goes.
    pub target: PlacementTarget,
    /// The header, parameter or field name.
    pub name: String,
    /// The value, `{secret}` standing for the secret.
    #[serde(default = "secret_template")]
    pub template: String,
    /// The `[secrets]` key whose value is placed.
    pub secret: String,
}

/// The bare-secret template.
pub(crate) fn secret_template() -> String {
    "{secret}".into()
}

/// How the host authenticates an OAuth 2 client at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret.
    #[default]
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// OAuth 2 settings a plugin declares (the operator may override each).
#[derive(Debug, Clone, Default, Serialize)]
pub struct OAuth2Settings {
    /// The token endpoint.
    pub token_url: Option<String>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The `audience` parameter.
    pub audience: Option<String>,
    /// How the client authenticates.
    pub client_auth: ClientAuth,
}

/// Signature algorithm of a host-signed JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum JwtAlgorithm {
    /// HMAC SHA-256 (secret `hmac_key`).
    #[serde(alias = "hs256")]
    Hs256,
    /// RSA PKCS#1 v1.5 SHA-256 (secret `private_key`, PEM).
    #[serde(alias = "rs256")]
    Rs256,
    /// ECDSA P-256 SHA-256 (secret `private_key`, PEM).
    #[serde(alias = "es256")]
    Es256,
}

/// Settings of a host-signed JWT a plugin declares.
#[derive(Debug, Clone, Serialize)]
pub struct JwtSettings {
    /// The algorithm.
    pub algorithm: JwtAlgorithm,
    /// The claims template, a JSON object text.
    pub claims: String,
    /// Token lifetime in seconds.
    pub lifetime_secs: u32,
    /// Where the JWT is exchanged for an access token, if it is.
    pub token_url: Option<String>,
}

/// Whether a call reads or changes things.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum CallKind {
    /// Reads data.
    Data,
    /// Changes something.
    Action,
}

/// A call the plugin offers.
#[derive(Debug, Clone, Serialize)]
pub struct CallSpec {
    /// Name `invoke` receives.
    pub name: String,
    /// Short title.
    pub title: String,
    /// What it does.
    pub description: String,
    /// Data or action.
    pub kind: CallKind,
    /// Whether repeating it has no further effect.
    pub idempotent: bool,
    /// JSON Schema of the input.
    pub input_schema: serde_json::Value,
    /// JSON Schema of the output.
    pub output_schema: serde_json::Value,
}

/// A manifest as the plugin declared it, before validation: the host's
/// types except for the calls' schemas, still text.
#[derive(Debug, Clone)]
pub(crate) struct Declared {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) connections: Vec<ConnectionSpec>,
    pub(crate) calls: Vec<DeclaredCall>,
}

/// A call as the plugin declared it: its schemas are JSON text.
#[derive(Debug, Clone)]
pub(crate) struct DeclaredCall {
    pub(crate) name: String,
    pub(crate) title: String,
    pub(crate) description: String,
    pub(crate) kind: CallKind,
    pub(crate) idempotent: bool,
    pub(crate) input_schema: String,
    pub(crate) output_schema: String,
}

/// The manifest a plugin returned is invalid.
#[derive(Debug, thiserror::Error)]
#[error("invalid manifest: {0}")]
pub struct ManifestError(String);

impl Manifest {
    /// Validates the declared manifest; also returns the parsed host patterns.
    pub(crate) fn validate(m: Declared) -> Result<(Self, Vec<AllowedHost>), ManifestError> {
        let fail = |s: String| ManifestError(s);
        if m.name.is_empty()
            || !m
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(fail(format!(
                "name `{}` must be lowercase letters, digits and `-`",
                m.name
            )));
        }
        let mut hosts = parse_plugin_hosts(&m.allowed_hosts).map_err(|e| fail(e.to_string()))?;
        let mut allowed_hosts = m.allowed_hosts;
        let connections = m.connections;
        let calls = m
            .calls
            .into_iter()
            .map(CallSpec::try_from)
            .collect::<Result<Vec<_>, _>>()
            .map_err(fail)?;
        if let Some(dup) = first_duplicate(connections.iter().map(|c| c.name.as_str())) {
            return Err(fail(format!("connection `{dup}` is declared twice")));
        }
        if let Some(dup) = first_duplicate(calls.iter().map(|c| c.name.as_str())) {
            return Err(fail(format!("call `{dup}` is declared twice")));
        }
        for c in &connections {
            if let Some(u) = &c.base_url {
                let base =
                    parse_base_url(u).map_err(|e| fail(format!("connection `{}`: {e}", c.name)))?;
                // A host is written once: the base URL's origin is allowed.
                if !hosts.iter().any(|h| h.matches(&base)) {
                    hosts.extend(AllowedHost::origin_of(&base));
                    allowed_hosts.push(base.origin().ascii_serialization());
                }
            }
            c.rate
                .check()
                .map_err(|e| fail(format!("connection `{}`: {e}", c.name)))?;
        }
        let manifest = Self {
            name: m.name,
            version: m.version,
            description: m.description,
            allowed_hosts,
            connections,
            calls,
        };
        Ok((manifest, hosts))
    }

    /// The declared call with this name.
    pub fn call(&self, name: &str) -> Option<&CallSpec> {
        self.calls.iter().find(|c| c.name == name)
    }

    /// The declared connection with this name.
    pub fn connection(&self, name: &str) -> Option<&ConnectionSpec> {
        self.connections.iter().find(|c| c.name == name)
    }
}

fn first_duplicate<'a>(names: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let mut seen = std::collections::HashSet::new();
    names.into_iter().find(|n| !seen.insert(*n))
}

impl TryFrom<DeclaredCall> for CallSpec {
    type Error = String;

    fn try_from(c: DeclaredCall) -> Result<Self, String> {
        let schema = |text: &str, which: &str| {
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| format!("call `{}`: {which} schema is not JSON: {e}", c.name))
        };
        Ok(Self {
            input_schema: schema(&c.input_schema, "input")?,
            output_schema: schema(&c.output_schema, "output")?,
            kind: c.kind,
            name: c.name,
            title: c.title,
            description: c.description,
            idempotent: c.idempotent,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn declaring(rate: RateSettings) -> Declared {
        Declared {
            name: "p".into(),
            version: "0.1.0".into(),
            description: String::new(),
            allowed_hosts: vec![],
            connections: vec![ConnectionSpec {
                name: "default".into(),
                description: String::new(),
                base_url: None,
                auth: AuthScheme::None,
                auth_origins: vec![],
                shared_headers: vec![],
                shared_query: vec![],
                verify_call: None,
                rate,
            }],
            calls: vec![],
        }
    }

    #[test]
    fn a_declared_base_url_allows_its_origin() {
        let mut declared = declaring(RateSettings::default());
        declared.connections[0].base_url = Some("https://api.shop.test/v1".into());
        let (manifest, hosts) = Manifest::validate(declared.clone()).unwrap();
        assert_eq!(manifest.allowed_hosts, ["https://api.shop.test"]);
        let url = |s: &str| url::Url::parse(s).unwrap();
        assert!(
            hosts
                .iter()
                .any(|h| h.matches(&url("https://api.shop.test/v2/x")))
        );
        assert!(!hosts.iter().any(|h| h.matches(&url("https://other.test/"))));
        assert!(
            !hosts
                .iter()
                .any(|h| h.matches(&url("http://api.shop.test/")))
        );

        // A declared pattern that already allows the base URL is kept as the
        // narrower rule: the origin is not added.
        declared.allowed_hosts = vec!["https://api.shop.test/v1/*".into()];
        let (manifest, hosts) = Manifest::validate(declared.clone()).unwrap();
        assert_eq!(manifest.allowed_hosts, ["https://api.shop.test/v1/*"]);
        assert!(
            !hosts
                .iter()
                .any(|h| h.matches(&url("https://api.shop.test/v2")))
        );

        // Without a base URL nothing is allowed (deny by default).
        declared.allowed_hosts.clear();
        declared.connections[0].base_url = None;
        let (manifest, hosts) = Manifest::validate(declared).unwrap();
        assert!(manifest.allowed_hosts.is_empty() && hosts.is_empty());
    }

    #[test]
    fn a_declared_rate_budget_with_a_zero_or_half_a_window_is_refused() {
        let refused = |rate| Manifest::validate(declaring(rate)).unwrap_err().to_string();
        let err = refused(RateSettings {
            concurrent: Some(0),
            ..RateSettings::default()
        });
        assert!(
            err.contains("connection `default`: `rate.concurrent` must be at least 1"),
            "{err}"
        );
        let err = refused(RateSettings {
            requests: Some(5),
            ..RateSettings::default()
        });
        assert!(
            err.contains("`rate.requests` needs `rate.per_secs`"),
            "{err}"
        );
        let whole = RateSettings {
            requests: Some(5),
            per_secs: Some(1),
            concurrent: Some(2),
        };
        let (manifest, _) = Manifest::validate(declaring(whole)).unwrap();
        assert_eq!(manifest.connections[0].rate, whole);
    }
}
