//! A connection as the operator gives it: a TOML connection file, or one
//! built in code. The credential is one typed value per scheme ([`Auth`]),
//! read by serde from the file's `auth` tag, its settings and its
//! `[secrets]`; a key the scheme does not take is an error that names it.

use std::collections::BTreeMap;
use std::hash::{Hash, Hasher};
use std::path::Path;

use serde::Deserialize;

use crate::limits::RateSettings;
use crate::manifest::{AuthKind, ClientAuth, JwtAlgorithm, SecretPlacement};
use crate::secret::Secret;
use crate::tls::TlsSettings;

/// An operator's binding of one declared connection: the TOML connection
/// file, or the same built in code ([`ConnectionConfig::new`]). Every key is
/// documented in the README ("Connection files").
///
/// ```toml
/// connection = "default"          # the plugin's declared connection name
/// base_url = "https://api.example.com/v1"
/// auth = "api-key"
/// header = "X-Api-Key"
/// [secrets]
/// key = "..."
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(try_from = "ConnectionFile")]
pub struct ConnectionConfig {
    /// The declared connection this binds.
    pub connection: String,
    /// The connection's id within its tenant (defaults to `connection`):
    /// cached tokens are kept per tenant and id.
    pub id: Option<String>,
    /// Overrides the manifest's base URL.
    pub base_url: Option<String>,
    /// Non-secret headers sent with every request, after the plugin's shared ones.
    pub shared_headers: BTreeMap<String, String>,
    /// Non-secret query pairs sent with every request, after the plugin's shared ones.
    pub shared_query: BTreeMap<String, String>,
    /// The credential: chosen here, or the plugin's declared scheme.
    pub auth: ConnectionAuth,
    /// TLS settings for the connection's origins (see [`TlsSettings`]).
    pub tls: TlsSettings,
    /// The operator's rate budget for the connection (the `[rate]` table).
    pub rate: RateSettings,
    /// Loaded from the connection store, which keeps rotated refresh tokens.
    pub(crate) from_store: bool,
}

impl ConnectionConfig {
    /// A connection binding the plugin's declared connection `connection`
    /// with this credential; the builder methods set the rest.
    ///
    /// ```
    /// use courier_host::{Auth, ConnectionConfig};
    /// let github = ConnectionConfig::new("default", Auth::bearer("ghp_example-token-value"))
    ///     .base_url("https://api.github.com")
    ///     .id("acme-github");
    /// ```
    pub fn new(connection: impl Into<String>, auth: Auth) -> Self {
        Self {
            connection: connection.into(),
            id: None,
            base_url: None,
            shared_headers: BTreeMap::new(),
            shared_query: BTreeMap::new(),
            auth: ConnectionAuth::Given(auth),
            tls: TlsSettings::default(),
            rate: RateSettings::default(),
            from_store: false,
        }
    }

    /// Sets the base URL (overriding the plugin's).
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// Sets the connection's id within its tenant.
    pub fn id(mut self, id: impl Into<String>) -> Self {
        self.id = Some(id.into());
        self
    }

    /// Adds a non-secret header sent with every request.
    pub fn shared_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.shared_headers.insert(name.into(), value.into());
        self
    }

    /// Adds a non-secret query pair sent with every request.
    pub fn shared_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.shared_query.insert(name.into(), value.into());
        self
    }

    /// Sets the TLS settings for the connection's origins.
    pub fn tls(mut self, tls: TlsSettings) -> Self {
        self.tls = tls;
        self
    }

    /// Sets the operator's rate budget for the connection.
    pub fn rate(mut self, rate: RateSettings) -> Self {
        self.rate = rate;
        self
    }

    /// Marks the connection as loaded from a [`ConnectionStore`]: the host
    /// writes what it learns back to the store's record for the step's
    /// tenant and the connection's id (a refresh token the token endpoint
    /// rotated, a refusal that needs re-authorization). A store's `get`
    /// returns its connections marked so.
    ///
    /// [`ConnectionStore`]: crate::ConnectionStore
    pub fn loaded_from_store(mut self) -> Self {
        self.from_store = true;
        self
    }

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
}

/// The credential of a connection.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ConnectionAuth {
    /// The file says `auth` (or the connection was built in code).
    Given(Auth),
    /// The file leaves `auth` out: the plugin's declared scheme, with these
    /// settings and secrets, typed when the connection is bound to it. Keys
    /// that no scheme takes were refused when the file was read.
    Declared(UntypedAuth),
}

impl ConnectionAuth {
    /// The typed credential for the scheme in force: the plugin's `declared`
    /// kind, or the operator's where the plugin leaves it open; the two must
    /// agree.
    pub(crate) fn resolve(&self, declared: Option<AuthKind>) -> Result<Auth, String> {
        match (self, declared) {
            (Self::Given(auth), Some(kind)) if auth.kind() != kind => Err(format!(
                "`auth = \"{}\"` disagrees with the plugin's scheme `{}`",
                auth.kind().name(),
                kind.name()
            )),
            (Self::Given(auth), _) => Ok(auth.clone()),
            (Self::Declared(_), None) => {
                Err("the plugin leaves the scheme to the operator: set `auth`".to_owned())
            }
            (Self::Declared(raw), Some(kind)) => Auth::from_table(kind, raw.0.clone()),
        }
    }
}

/// A connection file's settings and `[secrets]` without `auth`, as written.
#[derive(Debug, Clone, PartialEq)]
pub struct UntypedAuth(toml::Table);

/// A TOML table compares equal to itself unless it holds a NaN.
impl Eq for UntypedAuth {}

/// Hashes the table as JSON text.
impl Hash for UntypedAuth {
    fn hash<H: Hasher>(&self, state: &mut H) {
        serde_json::to_string(&self.0)
            .unwrap_or_default()
            .hash(state);
    }
}

/// A connection's credential: the scheme with its settings and secrets.
/// In a connection file, `auth` names the variant; settings are top-level
/// keys and secrets live in `[secrets]`. Settings left out fall back to the
/// plugin's declaration.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(tag = "auth", rename_all = "kebab-case")]
pub enum Auth {
    /// No credentials.
    None(NoCredential),
    /// `Authorization: Bearer <token>`.
    Bearer(Bearer),
    /// HTTP Basic.
    Basic(Basic),
    /// An API key in a header or query parameter.
    ApiKey(ApiKey),
    /// Secrets placed by template in headers, query, form or JSON fields.
    Custom(Box<Custom>),
    /// OAuth 2 client credentials grant.
    Oauth2ClientCredentials(OAuth2<ClientSecrets>),
    /// OAuth 2 refresh token grant.
    Oauth2RefreshToken(OAuth2<RefreshTokenSecrets>),
    /// OAuth 2 resource owner password grant.
    Oauth2Password(OAuth2<PasswordSecrets>),
    /// A JWT signed by the host.
    Jwt(Jwt),
    /// The TLS client certificate of the connection's `[tls]` table.
    ClientCertificate(NoCredential),
}

/// No settings and no secrets (`none`, `client-certificate`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoCredential {
    /// An empty `[secrets]` table may be written.
    #[serde(default)]
    pub secrets: NoSecrets,
}

/// An empty `[secrets]` table.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NoSecrets {}

/// `auth = "bearer"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Bearer {
    /// `[secrets]`.
    pub secrets: TokenSecret,
}

/// The bearer token.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TokenSecret {
    /// The token.
    pub token: Secret,
}

/// `auth = "basic"`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Basic {
    /// `[secrets]`.
    pub secrets: UserPassword,
}

/// A user name (an identifier, not scrubbed) and password.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserPassword {
    /// The user name.
    pub username: Secret,
    /// The password.
    pub password: Secret,
}

/// `auth = "api-key"`: the key in the header or query parameter the plugin
/// declares, or in the one named here (exactly one of `header`, `query`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApiKey {
    /// The header that carries the key.
    pub header: Option<String>,
    /// The query parameter that carries the key.
    pub query: Option<String>,
    /// `[secrets]`.
    pub secrets: KeySecret,
}

/// An API key.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeySecret {
    /// The key.
    pub key: Secret,
}

/// `auth = "custom"`: one placement (`header`, `query`, `form_field` or
/// `json_field`, with `template`, placing the secret `key`), several
/// (`placements`, each naming its `[secrets]` key), or the plugin's.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Custom {
    /// The header that carries the secret.
    pub header: Option<String>,
    /// The query parameter that carries the secret.
    pub query: Option<String>,
    /// The form body field that carries the secret.
    pub form_field: Option<String>,
    /// The top-level JSON body field that carries the secret.
    pub json_field: Option<String>,
    /// The value around the secret, `{secret}` standing for it.
    pub template: Option<String>,
    /// Several placements, each naming its `[secrets]` key.
    pub placements: Option<Vec<SecretPlacement>>,
    /// `[secrets]`: any of the keys, each one a placement names.
    #[serde(default)]
    pub secrets: Secrets,
}

/// The secrets a custom placement may name.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Bearer token.
    pub token: Option<Secret>,
    /// User name.
    pub username: Option<Secret>,
    /// Password.
    pub password: Option<Secret>,
    /// API key; the secret of a single placement.
    pub key: Option<Secret>,
    /// OAuth 2 client id.
    pub client_id: Option<Secret>,
    /// OAuth 2 client secret.
    pub client_secret: Option<Secret>,
    /// OAuth 2 refresh token.
    pub refresh_token: Option<Secret>,
    /// PEM private key.
    pub private_key: Option<Secret>,
    /// HMAC key.
    pub hmac_key: Option<Secret>,
}

impl Secrets {
    /// Every secret that is set, with its key.
    pub(super) fn set(&self) -> Vec<(&'static str, &Secret)> {
        let all = [
            ("token", &self.token),
            ("username", &self.username),
            ("password", &self.password),
            ("key", &self.key),
            ("client_id", &self.client_id),
            ("client_secret", &self.client_secret),
            ("refresh_token", &self.refresh_token),
            ("private_key", &self.private_key),
            ("hmac_key", &self.hmac_key),
        ];
        all.into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect()
    }

    /// The secret under this key, if set.
    pub(super) fn get(&self, key: &str) -> Option<&Secret> {
        self.set()
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
    }

    /// Whether `key` is one of the table's keys.
    pub(super) fn is_key(key: &str) -> bool {
        let mut table = toml::Table::new();
        table.insert(key.into(), "x".into());
        table.try_into::<Self>().is_ok()
    }
}

/// `auth = "oauth2-…"`: the token endpoint settings (each overriding the
/// plugin's) and the grant's secrets.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuth2<S> {
    /// The token endpoint.
    pub token_url: Option<String>,
    /// Scopes requested.
    pub scopes: Option<Vec<String>>,
    /// The `audience` parameter.
    pub audience: Option<String>,
    /// `basic` (default) or `body`.
    pub client_auth: Option<ClientAuth>,
    /// `[secrets]`.
    pub secrets: S,
}

/// The client of the client credentials grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientSecrets {
    /// The client id (an identifier, not scrubbed).
    pub client_id: Secret,
    /// The client secret (needed unless `client_auth = "body"` for a public client).
    pub client_secret: Option<Secret>,
}

/// The client and refresh token of the refresh token grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshTokenSecrets {
    /// The client id.
    pub client_id: Secret,
    /// The client secret.
    pub client_secret: Option<Secret>,
    /// The refresh token (the host keeps rotations).
    pub refresh_token: Secret,
}

/// The client and resource owner of the password grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PasswordSecrets {
    /// The client id.
    pub client_id: Secret,
    /// The client secret.
    pub client_secret: Option<Secret>,
    /// The resource owner's user name (an identifier, not scrubbed).
    pub username: Secret,
    /// The resource owner's password.
    pub password: Secret,
}

/// `auth = "jwt"`: a JWT the host signs, sent as it is or exchanged at `token_url`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Jwt {
    /// `HS256`, `RS256` or `ES256`.
    pub algorithm: Option<JwtAlgorithm>,
    /// The claims template (a table).
    pub claims: Option<toml::Table>,
    /// Lifetime of each signed token in seconds, counted from its `iat`.
    pub lifetime_secs: Option<u32>,
    /// Seconds `iat` is set before the host clock's time, for an issuer
    /// whose clock may lag (GitHub asks for 60); 0 by default.
    pub backdate_secs: Option<u32>,
    /// Where the JWT is exchanged for an access token.
    pub token_url: Option<String>,
    /// How the JWT is exchanged at `token_url`: `assertion` (default) or `bearer`.
    pub exchange: Option<JwtExchange>,
    /// Scopes requested at an `assertion` exchange.
    pub scopes: Option<Vec<String>>,
    /// `[secrets]`.
    #[serde(default)]
    pub secrets: JwtSecrets,
}

/// How a host-signed JWT is exchanged for an access token at `token_url`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(tag = "kind", rename_all = "kebab-case", deny_unknown_fields)]
pub enum JwtExchange {
    /// The OAuth 2 JWT bearer grant (RFC 7523): a form POST with
    /// `grant_type=urn:ietf:params:oauth:grant-type:jwt-bearer` and
    /// `assertion=<JWT>`, answered by an OAuth 2 token response.
    Assertion,
    /// An empty POST authenticated with `Authorization: Bearer <JWT>`,
    /// answered (any 2xx) by a JSON object holding the token under
    /// `token_field` and its expiry, an RFC 3339 time, under
    /// `expires_at_field` (GitHub's installation access tokens:
    /// `POST /app/installations/{id}/access_tokens`). The connection's
    /// shared headers go with it when `token_url` is one of its origins.
    Bearer {
        /// The answer's field holding the token (default `token`).
        #[serde(default = "default_token_field")]
        token_field: String,
        /// The answer's field holding the expiry (default `expires_at`).
        #[serde(default = "default_expires_at_field")]
        expires_at_field: String,
    },
}

fn default_token_field() -> String {
    "token".into()
}

fn default_expires_at_field() -> String {
    "expires_at".into()
}

/// `claims` (a TOML table, which may hold floats) compares equal to itself
/// unless it holds a NaN; such a connection is only ever unequal to others.
impl Eq for Jwt {}

/// Hashes every field but `claims`, which equal connections share anyway.
impl Hash for Jwt {
    fn hash<H: Hasher>(&self, state: &mut H) {
        let Self {
            algorithm,
            claims: _,
            lifetime_secs,
            backdate_secs,
            token_url,
            exchange,
            scopes,
            secrets,
        } = self;
        (algorithm, lifetime_secs, backdate_secs, token_url).hash(state);
        (exchange, scopes, secrets).hash(state);
    }
}

/// The signing key: `private_key` for RS256/ES256, `hmac_key` for HS256.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JwtSecrets {
    /// PEM private key.
    pub private_key: Option<Secret>,
    /// HMAC key.
    pub hmac_key: Option<Secret>,
}

impl Auth {
    /// No credentials.
    pub fn none() -> Self {
        Self::None(NoCredential::default())
    }

    /// A bearer token.
    pub fn bearer(token: impl Into<String>) -> Self {
        Self::Bearer(Bearer {
            secrets: TokenSecret {
                token: Secret::new(token),
            },
        })
    }

    /// HTTP Basic.
    pub fn basic(username: impl Into<String>, password: impl Into<String>) -> Self {
        Self::Basic(Basic {
            secrets: UserPassword {
                username: Secret::new(username),
                password: Secret::new(password),
            },
        })
    }

    /// An API key where the plugin declares it.
    pub fn api_key(key: impl Into<String>) -> Self {
        Self::ApiKey(ApiKey {
            header: None,
            query: None,
            secrets: KeySecret {
                key: Secret::new(key),
            },
        })
    }

    /// An API key in this header.
    pub fn api_key_header(header: impl Into<String>, key: impl Into<String>) -> Self {
        let Self::ApiKey(mut settings) = Self::api_key(key) else {
            unreachable!("api_key builds an API key")
        };
        settings.header = Some(header.into());
        Self::ApiKey(settings)
    }

    /// An API key in this query parameter.
    pub fn api_key_query(parameter: impl Into<String>, key: impl Into<String>) -> Self {
        let Self::ApiKey(mut settings) = Self::api_key(key) else {
            unreachable!("api_key builds an API key")
        };
        settings.query = Some(parameter.into());
        Self::ApiKey(settings)
    }

    /// The OAuth 2 client credentials grant at `token_url`.
    pub fn oauth2_client_credentials(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
    ) -> Self {
        Self::Oauth2ClientCredentials(OAuth2::at(
            token_url,
            ClientSecrets {
                client_id: Secret::new(client_id),
                client_secret: Some(Secret::new(client_secret)),
            },
        ))
    }

    /// The OAuth 2 refresh token grant at `token_url`.
    pub fn oauth2_refresh_token(
        token_url: impl Into<String>,
        client_id: impl Into<String>,
        client_secret: impl Into<String>,
        refresh_token: impl Into<String>,
    ) -> Self {
        Self::Oauth2RefreshToken(OAuth2::at(
            token_url,
            RefreshTokenSecrets {
                client_id: Secret::new(client_id),
                client_secret: Some(Secret::new(client_secret)),
                refresh_token: Secret::new(refresh_token),
            },
        ))
    }

    /// An HS256 JWT signed with `hmac_key`, sent as the bearer token.
    pub fn jwt_hs256(hmac_key: impl Into<String>, claims: toml::Table) -> Self {
        Self::Jwt(Jwt {
            algorithm: Some(JwtAlgorithm::Hs256),
            claims: Some(claims),
            lifetime_secs: None,
            backdate_secs: None,
            token_url: None,
            exchange: None,
            scopes: None,
            secrets: JwtSecrets {
                private_key: None,
                hmac_key: Some(Secret::new(hmac_key)),
            },
        })
    }

    /// The scheme.
    pub fn kind(&self) -> AuthKind {
        match self {
            Self::None(_) => AuthKind::None,
            Self::Bearer(_) => AuthKind::Bearer,
            Self::Basic(_) => AuthKind::Basic,
            Self::ApiKey(_) => AuthKind::ApiKey,
            Self::Custom(_) => AuthKind::Custom,
            Self::Oauth2ClientCredentials(_) => AuthKind::Oauth2ClientCredentials,
            Self::Oauth2RefreshToken(_) => AuthKind::Oauth2RefreshToken,
            Self::Oauth2Password(_) => AuthKind::Oauth2Password,
            Self::Jwt(_) => AuthKind::Jwt,
            Self::ClientCertificate(_) => AuthKind::ClientCertificate,
        }
    }

    /// Every secret it holds, with its `[secrets]` key.
    pub(super) fn secrets(&self) -> Vec<(&'static str, &Secret)> {
        match self {
            Self::None(_) | Self::ClientCertificate(_) => vec![],
            Self::Bearer(b) => vec![("token", &b.secrets.token)],
            Self::Basic(b) => vec![
                ("username", &b.secrets.username),
                ("password", &b.secrets.password),
            ],
            Self::ApiKey(a) => vec![("key", &a.secrets.key)],
            Self::Custom(c) => c.secrets.set(),
            Self::Oauth2ClientCredentials(o) => {
                with_client(&o.secrets.client_id, &o.secrets.client_secret, [])
            }
            Self::Oauth2RefreshToken(o) => with_client(
                &o.secrets.client_id,
                &o.secrets.client_secret,
                [("refresh_token", &o.secrets.refresh_token)],
            ),
            Self::Oauth2Password(o) => with_client(
                &o.secrets.client_id,
                &o.secrets.client_secret,
                [
                    ("username", &o.secrets.username),
                    ("password", &o.secrets.password),
                ],
            ),
            Self::Jwt(j) => [
                ("private_key", &j.secrets.private_key),
                ("hmac_key", &j.secrets.hmac_key),
            ]
            .into_iter()
            .filter_map(|(k, v)| v.as_ref().map(|v| (k, v)))
            .collect(),
        }
    }

    /// Reads the credential of scheme `kind` from a connection file's
    /// settings and `[secrets]` (a table without `auth`). Errors name the
    /// key: one the scheme does not take, or a secret it needs.
    pub(super) fn from_table(kind: AuthKind, table: toml::Table) -> Result<Self, String> {
        Self::typed(kind, table).map_err(|refusal| match refusal {
            Refusal::Unknown { key, secret: true } => {
                format!("secret `{key}` is not used by auth `{}`", kind.name())
            }
            Refusal::Unknown { key, secret: false } => {
                format!("`{key}` does not apply to auth `{}`", kind.name())
            }
            Refusal::Missing(key) => format!("missing secret `{key}` in [secrets]"),
            Refusal::Invalid(message) => format!("auth `{}`: {message}", kind.name()),
        })
    }

    /// Deserializes the variant of `kind` (serde checks every key). A key
    /// the scheme does not take is reported before a missing secret, which
    /// serde may meet first (keys come in sorted order).
    fn typed(kind: AuthKind, mut table: toml::Table) -> Result<Self, Refusal> {
        let secrets = match table
            .entry("secrets")
            .or_insert_with(|| toml::Table::new().into())
        {
            toml::Value::Table(t) => t.keys().cloned().collect::<Vec<_>>(),
            _ => return Err(Refusal::Invalid("`secrets` must be a table".into())),
        };
        table.insert("auth".into(), kind.name().into());
        let mut missing = None;
        loop {
            match Self::deserialize(toml::Value::Table(table.clone())) {
                Ok(auth) => return missing.map_or(Ok(auth), |key| Err(Refusal::Missing(key))),
                Err(e) => {
                    let message = e.message().trim().to_owned();
                    if let Some(key) = field_named(&message, "unknown field `") {
                        let secret = secrets.iter().any(|s| s == key);
                        let key = key.to_owned();
                        return Err(Refusal::Unknown { key, secret });
                    }
                    let Some(key) = field_named(&message, "missing field `") else {
                        return Err(Refusal::Invalid(message));
                    };
                    // Stand a placeholder in for the missing secret and read on.
                    let stand_in = toml::Value::from("missing");
                    let Some(toml::Value::Table(t)) = table.get_mut("secrets") else {
                        unreachable!("inserted above")
                    };
                    if t.insert(key.to_owned(), stand_in).is_some() {
                        return Err(Refusal::Invalid(message));
                    }
                    missing.get_or_insert_with(|| key.to_owned());
                }
            }
        }
    }
}

/// Why a table is not a scheme's credential.
enum Refusal {
    /// A key the scheme does not take (in `[secrets]` or not).
    Unknown { key: String, secret: bool },
    /// A secret the scheme needs.
    Missing(String),
    /// Anything else serde says (a value of the wrong type, …).
    Invalid(String),
}

/// The secrets of an OAuth 2 client, then the grant's own.
fn with_client<'a, const N: usize>(
    id: &'a Secret,
    secret: &'a Option<Secret>,
    grant: [(&'static str, &'a Secret); N],
) -> Vec<(&'static str, &'a Secret)> {
    let mut all = vec![("client_id", id)];
    all.extend(secret.as_ref().map(|s| ("client_secret", s)));
    all.extend(grant);
    all
}

/// The name in a serde message such as "unknown field `x`, expected …".
fn field_named<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = &message[message.find(prefix)? + prefix.len()..];
    rest.split('`').next()
}

impl<S> OAuth2<S> {
    fn at(token_url: impl Into<String>, secrets: S) -> Self {
        Self {
            token_url: Some(token_url.into()),
            scopes: None,
            audience: None,
            client_auth: None,
            secrets,
        }
    }
}

/// A connection configuration is invalid for the plugin it is bound to.
#[derive(Debug, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct ConnectionError {
    pub(super) connection: String,
    pub(super) message: String,
}

/// A connection file as TOML has it, before its credential is typed.
#[derive(Deserialize)]
struct ConnectionFile {
    connection: String,
    id: Option<String>,
    base_url: Option<String>,
    #[serde(default)]
    shared_headers: BTreeMap<String, String>,
    #[serde(default)]
    shared_query: BTreeMap<String, String>,
    #[serde(default)]
    tls: TlsSettings,
    #[serde(default)]
    rate: RateSettings,
    /// `auth`, the scheme's settings and `[secrets]`.
    #[serde(flatten)]
    credential: toml::Table,
}

impl TryFrom<ConnectionFile> for ConnectionConfig {
    type Error = String;

    fn try_from(file: ConnectionFile) -> Result<Self, String> {
        file.rate.check()?;
        let mut credential = file.credential;
        let auth = match credential.remove("auth") {
            Some(tag) => {
                let kind = AuthKind::deserialize(tag).map_err(|e| format!("`auth`: {e}"))?;
                ConnectionAuth::Given(Auth::from_table(kind, credential)?)
            }
            None => {
                refuse_keys_of_no_scheme(&credential)?;
                ConnectionAuth::Declared(UntypedAuth(credential))
            }
        };
        Ok(Self {
            connection: file.connection,
            id: file.id,
            base_url: file.base_url,
            shared_headers: file.shared_headers,
            shared_query: file.shared_query,
            auth,
            tls: file.tls,
            rate: file.rate,
            from_store: false,
        })
    }
}

/// A file without `auth` is typed once the plugin's scheme is known; a key
/// that no scheme takes (a typo) is refused when it is read.
fn refuse_keys_of_no_scheme(credential: &toml::Table) -> Result<(), String> {
    let taken = |key: &str, table: toml::Table| {
        AuthKind::ALL.into_iter().any(|kind| {
            !matches!(Auth::typed(kind, table.clone()), Err(Refusal::Unknown { key: k, .. }) if k == key)
        })
    };
    for (key, value) in credential {
        if key == "secrets" {
            let Some(secrets) = value.as_table() else {
                return Err("`secrets` must be a table".into());
            };
            for (name, secret) in secrets {
                let table = toml::Table::from_iter([(name.clone(), secret.clone())]);
                let outer = toml::Table::from_iter([("secrets".to_owned(), table.into())]);
                if !taken(name, outer) {
                    return Err(format!("no auth scheme uses the secret `{name}`"));
                }
            }
        } else {
            let table = toml::Table::from_iter([(key.clone(), value.clone())]);
            if !taken(key, table) {
                return Err(format!("no auth scheme takes the key `{key}`"));
            }
        }
    }
    Ok(())
}
