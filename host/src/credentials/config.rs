//! The operator's connection file (TOML): what it may say and how it is read.
//! Unknown keys are errors that name the key; so are keys and secrets that
//! the chosen scheme does not use.

use crate::tls::TlsSettings;
use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use serde::Deserialize;

use crate::manifest::{ClientAuth, JwtAlgorithm, SecretPlacement};
use crate::secret::Secret;

/// The scheme a connection file chooses (`auth`). When the plugin declares a
/// scheme, `auth` may be left out and must agree with it otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Deserialize)]
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
    /// The name as written in connection files.
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

    /// The top-level settings this scheme reads.
    pub(super) fn settings(self) -> &'static [&'static str] {
        match self {
            Self::None | Self::Bearer | Self::Basic | Self::ClientCertificate => &[],
            Self::ApiKey => &["header", "query"],
            Self::Custom => &[
                "header",
                "query",
                "form_field",
                "json_field",
                "template",
                "placements",
            ],
            Self::Oauth2ClientCredentials | Self::Oauth2RefreshToken | Self::Oauth2Password => {
                &["token_url", "scopes", "audience", "client_auth"]
            }
            Self::Jwt => &[
                "algorithm",
                "claims",
                "lifetime_secs",
                "token_url",
                "scopes",
            ],
        }
    }

    /// The `[secrets]` keys this scheme may read (custom placements name theirs).
    pub(super) fn secrets(self) -> &'static [&'static str] {
        match self {
            Self::None | Self::ClientCertificate => &[],
            Self::Bearer => &["token"],
            Self::Basic => &["username", "password"],
            Self::ApiKey => &["key"],
            Self::Custom => Secrets::KEYS,
            Self::Oauth2ClientCredentials => &["client_id", "client_secret"],
            Self::Oauth2RefreshToken => &["client_id", "client_secret", "refresh_token"],
            Self::Oauth2Password => &["client_id", "client_secret", "username", "password"],
            Self::Jwt => &["private_key", "hmac_key"],
        }
    }
}

/// The secrets of a connection file's `[secrets]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Bearer token.
    pub token: Option<Secret>,
    /// User name (basic, OAuth 2 password grant).
    pub username: Option<Secret>,
    /// Password (basic, OAuth 2 password grant).
    pub password: Option<Secret>,
    /// API key; also the secret of a single custom placement.
    pub key: Option<Secret>,
    /// OAuth 2 client id.
    pub client_id: Option<Secret>,
    /// OAuth 2 client secret.
    pub client_secret: Option<Secret>,
    /// OAuth 2 refresh token.
    pub refresh_token: Option<Secret>,
    /// PEM private key for RS256/ES256 JWTs.
    pub private_key: Option<Secret>,
    /// HMAC key for HS256 JWTs.
    pub hmac_key: Option<Secret>,
}

impl Secrets {
    /// Every key of the `[secrets]` table.
    pub(super) const KEYS: &'static [&'static str] = &[
        "token",
        "username",
        "password",
        "key",
        "client_id",
        "client_secret",
        "refresh_token",
        "private_key",
        "hmac_key",
    ];

    /// The secret under this key, if set.
    pub(super) fn get(&self, key: &str) -> Option<&Secret> {
        match key {
            "token" => self.token.as_ref(),
            "username" => self.username.as_ref(),
            "password" => self.password.as_ref(),
            "key" => self.key.as_ref(),
            "client_id" => self.client_id.as_ref(),
            "client_secret" => self.client_secret.as_ref(),
            "refresh_token" => self.refresh_token.as_ref(),
            "private_key" => self.private_key.as_ref(),
            "hmac_key" => self.hmac_key.as_ref(),
            _ => None,
        }
    }
}

/// An operator's binding of one declared connection: the TOML connection file.
/// Every key is documented in the README ("Connection files").
///
/// ```toml
/// connection = "default"          # the plugin's declared connection name
/// base_url = "https://api.example.com/v1"
/// auth = "api-key"
/// header = "X-Api-Key"
/// [secrets]
/// key = "..."
/// ```
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The declared connection this binds.
    pub connection: String,
    /// The connection's id within its tenant (defaults to `connection`):
    /// cached tokens are kept per tenant and id.
    pub id: Option<String>,
    /// Overrides the manifest's base URL.
    pub base_url: Option<String>,
    /// The scheme; required when the plugin leaves it to the operator, else it
    /// must agree with the plugin's declaration.
    pub auth: Option<AuthKind>,
    /// Non-secret headers sent with every request, after the plugin's shared ones.
    #[serde(default)]
    pub shared_headers: BTreeMap<String, String>,
    /// Non-secret query pairs sent with every request, after the plugin's shared ones.
    #[serde(default)]
    pub shared_query: BTreeMap<String, String>,
    /// `api-key`/`custom`: the header that carries the secret.
    pub header: Option<String>,
    /// `api-key`/`custom`: the query parameter that carries the secret.
    pub query: Option<String>,
    /// `custom`: the form body field that carries the secret.
    pub form_field: Option<String>,
    /// `custom`: the top-level JSON body field that carries the secret.
    pub json_field: Option<String>,
    /// `custom`: the value around the secret, `{secret}` standing for it.
    pub template: Option<String>,
    /// `custom`: several placements, each naming its `[secrets]` key.
    pub placements: Option<Vec<SecretPlacement>>,
    /// OAuth 2 / JWT exchange: the token endpoint.
    pub token_url: Option<String>,
    /// OAuth 2: scopes requested.
    pub scopes: Option<Vec<String>>,
    /// OAuth 2: the `audience` parameter.
    pub audience: Option<String>,
    /// OAuth 2: `basic` (default) or `body`.
    pub client_auth: Option<ClientAuth>,
    /// JWT: `HS256`, `RS256` or `ES256`.
    pub algorithm: Option<JwtAlgorithm>,
    /// JWT: the claims template (a table).
    pub claims: Option<toml::Table>,
    /// JWT: lifetime of each signed token in seconds.
    pub lifetime_secs: Option<u32>,
    /// The secrets.
    #[serde(default)]
    pub secrets: Secrets,
    /// TLS settings for the connection's origins (see [`TlsSettings`]).
    #[serde(default)]
    pub tls: TlsSettings,
    /// Loaded from the connection store, which keeps rotated refresh tokens.
    #[serde(skip)]
    pub(crate) from_store: bool,
}

/// `claims` (a TOML table, which may hold floats) compares equal to itself
/// unless it holds a NaN; such a file is only ever unequal to others.
impl Eq for ConnectionConfig {}

/// Hashes every field but `claims`, which equal files share anyway.
impl Hash for ConnectionConfig {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let Self {
            connection,
            id,
            base_url,
            auth,
            shared_headers,
            shared_query,
            header,
            query,
            form_field,
            json_field,
            template,
            placements,
            token_url,
            scopes,
            audience,
            client_auth,
            algorithm,
            claims: _,
            lifetime_secs,
            secrets,
            tls,
            from_store,
        } = self;
        (
            connection,
            id,
            base_url,
            auth,
            shared_headers,
            shared_query,
            header,
            query,
        )
            .hash(state);
        (
            form_field,
            json_field,
            template,
            placements,
            token_url,
            scopes,
            audience,
            client_auth,
        )
            .hash(state);
        (algorithm, lifetime_secs, secrets, tls, from_store).hash(state);
    }
}

/// A connection configuration is invalid for the plugin it is bound to.
#[derive(Debug, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct ConnectionError {
    pub(super) connection: String,
    pub(super) message: String,
}

impl ConnectionConfig {
    /// Reads a TOML connection file.
    pub fn from_file(path: &Path) -> Result<Self, ConnectionError> {
        let fail = |message: String| ConnectionError {
            connection: path.display().to_string(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        toml::from_str(&text).map_err(|e| fail(format!("invalid connection file: {e}")))
    }

    /// Reads a connection from a parsed TOML table.
    pub(crate) fn deserialize_table(table: toml::Table) -> Result<Self, String> {
        table.try_into().map_err(|e: toml::de::Error| e.to_string())
    }

    /// The names of the top-level settings that are set.
    pub(super) fn settings_set(&self) -> Vec<&'static str> {
        let set = [
            ("header", self.header.is_some()),
            ("query", self.query.is_some()),
            ("form_field", self.form_field.is_some()),
            ("json_field", self.json_field.is_some()),
            ("template", self.template.is_some()),
            ("placements", self.placements.is_some()),
            ("token_url", self.token_url.is_some()),
            ("scopes", self.scopes.is_some()),
            ("audience", self.audience.is_some()),
            ("client_auth", self.client_auth.is_some()),
            ("algorithm", self.algorithm.is_some()),
            ("claims", self.claims.is_some()),
            ("lifetime_secs", self.lifetime_secs.is_some()),
        ];
        set.into_iter()
            .filter(|(_, s)| *s)
            .map(|(k, _)| k)
            .collect()
    }

    /// The `[secrets]` keys that are set.
    pub(super) fn secrets_set(&self) -> Vec<&'static str> {
        Secrets::KEYS
            .iter()
            .copied()
            .filter(|k| self.secrets.get(k).is_some())
            .collect()
    }
}
