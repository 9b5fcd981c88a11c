//! A connection bound to a plugin's declaration: base URL, the origins that
//! may receive its credentials, and the credential with its secrets.

use std::sync::{Arc, OnceLock};

use crate::tls::ConnectionTls;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use courier_egress::head::parse_base_url;
use url::Url;

use super::jwt::JwtSigner;
use super::scrub::{MIN_SECRET_LEN, Matcher};
use super::tokens::{Endpoint, Grant, TokenManager, TokenSource, client_basic_pair, fingerprint};
use super::{AuthKind, Caches, ConnectionConfig, ConnectionError, Secrets};
use crate::manifest::{
    AuthScheme, ClientAuth, ConnectionSpec, KeyLocation, OAuth2Settings, PlacementTarget,
    SecretPlacement, secret_template,
};
use crate::secret::Secret;

/// One secret the host puts into a request: where, and in what template.
#[derive(Debug)]
pub(crate) struct Placement {
    pub(super) target: PlacementTarget,
    pub(super) name: String,
    pub(super) template: String,
    pub(super) secret: Secret,
    /// The template with the secret filled in, once per binding.
    filled: Secret,
}

impl Placement {
    fn new(target: PlacementTarget, name: String, template: String, secret: Secret) -> Self {
        let filled = Secret::new(template.replace("{secret}", secret.expose()));
        Self {
            target,
            name,
            template,
            secret,
            filled,
        }
    }

    /// The template with the secret filled in.
    pub(super) fn value(&self) -> &str {
        self.filled.expose()
    }
}

/// How a bound connection authenticates, with its secrets.
#[derive(Debug)]
pub(crate) enum Credential {
    /// Nothing is added.
    None,
    /// Fixed secrets put in place (bearer, basic, api-key, custom).
    Static(Vec<Placement>),
    /// An access token the host obtains, sent as a bearer token.
    Token(Box<TokenSource>),
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
    /// Every secret value the scrubber must know (raw; it adds the encodings).
    pub(super) scrub: Vec<Secret>,
    /// TLS material for the connection's origins, if the `[tls]` table names any.
    pub(crate) tls: Option<Arc<ConnectionTls>>,
    /// Whether HTTPS requests to the connection's origins offer HTTP/2
    /// (`[tls]` `http2`); `None` leaves it to the host.
    pub(crate) http2: Option<bool>,
    /// The scrubber's automaton for `scrub` alone, found on first use.
    pub(super) matcher: OnceLock<Option<Arc<Matcher>>>,
}

impl BoundConnection {
    /// Checks an operator's configuration against the plugin's declaration.
    /// Token-based schemes share their token cache with every step of the
    /// same tenant and connection id through `tokens`; what is built from
    /// the secrets (TLS material, JWT keys) comes from the host's `caches`.
    pub(crate) fn bind(
        spec: &ConnectionSpec,
        config: ConnectionConfig,
        tenant: &str,
        tokens: &TokenManager,
        caches: &Caches,
    ) -> Result<Self, ConnectionError> {
        let fail = |message: String| ConnectionError {
            connection: spec.name.clone(),
            message,
        };
        let base_url = match config.base_url.as_deref().or(spec.base_url.as_deref()) {
            Some(u) => Some(parse_base_url(u).map_err(|e| fail(e.to_string()))?),
            None => None,
        };
        let mut origins: Vec<url::Origin> = base_url.iter().map(Url::origin).collect();
        for o in &spec.auth_origins {
            origins.push(
                Url::parse(o)
                    .map_err(|e| fail(format!("auth origin `{o}`: {e}")))?
                    .origin(),
            );
        }
        let tls = ConnectionTls::load(&config.tls, &caches.tls).map_err(|e| fail(e.to_string()))?;
        let http2 = config.tls.http2;
        let kind = scheme_kind(&spec.auth, config.auth).map_err(fail)?;
        check_keys(kind, &config).map_err(fail)?;
        let mut scrub = Vec::new();
        let credential = match kind {
            AuthKind::Oauth2ClientCredentials
            | AuthKind::Oauth2RefreshToken
            | AuthKind::Oauth2Password
            | AuthKind::Jwt => {
                let (grant, endpoint) = match kind {
                    AuthKind::Jwt => jwt_grant(&spec.auth, &config, caches).map_err(fail)?,
                    _ => oauth2_grant(kind, &spec.auth, &config).map_err(fail)?,
                };
                let id = config.id.as_deref().unwrap_or(&spec.name);
                let fp = config_fingerprint(&spec.auth, &config);
                let cell = tokens.cell(
                    tenant,
                    id,
                    fp,
                    config.secrets.refresh_token.clone(),
                    config.from_store,
                );
                scrub.extend(
                    config
                        .secrets_set()
                        .into_iter()
                        .filter(|k| !IDENTIFIERS.contains(k))
                        .filter_map(|k| config.secrets.get(k).cloned()),
                );
                if let (Some(id), Some(secret)) =
                    (&config.secrets.client_id, &config.secrets.client_secret)
                {
                    scrub.push(client_basic_pair(id, secret));
                }
                Credential::Token(Box::new(TokenSource {
                    grant,
                    endpoint,
                    cell,
                }))
            }
            _ => static_credential(kind, &spec.auth, &config, &mut scrub).map_err(fail)?,
        };
        check_scrubbable(kind, &config).map_err(fail)?;
        let certificate = kind == AuthKind::ClientCertificate;
        if base_url.is_none()
            && (certificate || !matches!(credential, Credential::None))
            && origins.is_empty()
        {
            return Err(fail(
                "credentials need a `base_url` whose origin may receive them".into(),
            ));
        }
        let mut shared_headers = spec.shared_headers.clone();
        for (k, v) in config.shared_headers {
            http::HeaderName::try_from(k.as_str())
                .map_err(|_| fail(format!("shared header name `{k}` is invalid")))?;
            shared_headers.push((k, v));
        }
        let mut shared_query = spec.shared_query.clone();
        shared_query.extend(config.shared_query);
        let matcher = OnceLock::new();
        Ok(Self {
            name: spec.name.clone(),
            base_url,
            origins,
            credential,
            shared_headers,
            shared_query,
            scrub,
            tls,
            http2,
            matcher,
        })
    }

    /// Whether this URL's origin may receive the connection's credentials.
    pub(crate) fn may_authenticate(&self, url: &Url) -> bool {
        let origin = url.origin();
        self.origins.contains(&origin)
    }

    /// The placements of one kind.
    pub(super) fn placements(&self, target: PlacementTarget) -> impl Iterator<Item = &Placement> {
        let all: &[Placement] = match &self.credential {
            Credential::Static(p) => p,
            Credential::None | Credential::Token(_) => &[],
        };
        all.iter().filter(move |p| p.target == target)
    }

    /// Whether the credential occupies this header, which a plugin may not set.
    pub(crate) fn reserves_header(&self, name: &str) -> bool {
        self.placements(PlacementTarget::Header)
            .any(|p| p.name.eq_ignore_ascii_case(name))
    }

    /// Whether the credential occupies this query parameter, which a plugin may not set.
    pub(crate) fn reserves_query(&self, name: &str) -> bool {
        self.placements(PlacementTarget::Query)
            .any(|p| p.name == name)
    }
}

/// The scheme in force: the plugin's, or the operator's where the plugin leaves it open.
fn scheme_kind(declared: &AuthScheme, chosen: Option<AuthKind>) -> Result<AuthKind, String> {
    let kind = match declared {
        AuthScheme::OperatorDefined => {
            return chosen.ok_or_else(|| {
                "the plugin leaves the scheme to the operator: set `auth`".to_owned()
            });
        }
        AuthScheme::None => AuthKind::None,
        AuthScheme::Bearer => AuthKind::Bearer,
        AuthScheme::Basic => AuthKind::Basic,
        AuthScheme::ApiKey { .. } => AuthKind::ApiKey,
        AuthScheme::Custom { .. } => AuthKind::Custom,
        AuthScheme::Oauth2ClientCredentials(_) => AuthKind::Oauth2ClientCredentials,
        AuthScheme::Oauth2RefreshToken(_) => AuthKind::Oauth2RefreshToken,
        AuthScheme::Oauth2Password(_) => AuthKind::Oauth2Password,
        AuthScheme::Jwt(_) => AuthKind::Jwt,
        AuthScheme::ClientCertificate => AuthKind::ClientCertificate,
    };
    match chosen {
        Some(c) if c != kind => Err(format!(
            "`auth = \"{}\"` disagrees with the plugin's scheme `{}`",
            c.name(),
            kind.name()
        )),
        _ => Ok(kind),
    }
}

/// Settings and secrets the scheme does not use are errors that name them.
fn check_keys(kind: AuthKind, config: &ConnectionConfig) -> Result<(), String> {
    if let Some(key) = config
        .settings_set()
        .into_iter()
        .find(|k| !kind.settings().contains(k))
    {
        return Err(format!("`{key}` does not apply to auth `{}`", kind.name()));
    }
    if let Some(key) = config
        .secrets_set()
        .into_iter()
        .find(|k| !kind.secrets().contains(k))
    {
        return Err(format!(
            "secret `{key}` is not used by auth `{}`",
            kind.name()
        ));
    }
    Ok(())
}

fn need(secrets: &Secrets, key: &str) -> Result<Secret, String> {
    secrets
        .get(key)
        .cloned()
        .ok_or_else(|| format!("missing secret `{key}` in [secrets]"))
}

fn header_placement(name: &str, template: &str, secret: Secret) -> Placement {
    Placement::new(
        PlacementTarget::Header,
        name.into(),
        template.into(),
        secret,
    )
}

/// Secrets that identify rather than authenticate: a Basic or OAuth 2
/// password-grant `username` and an OAuth 2 `client_id` (RFC 6749 §2.2: "not
/// a secret"). They are sent as given and not scrubbed, so an identifier that
/// also appears in an API's data (a short numeric id inside a number, a name
/// inside a word) never damages it. A custom placement's secrets are all
/// secret, whatever their key.
const IDENTIFIERS: &[&str] = &["username", "client_id"];

/// Every value the scrubber will look for is long enough to be found without
/// hitting unrelated text, and holds no NUL (which no request may carry).
fn check_scrubbable(kind: AuthKind, config: &ConnectionConfig) -> Result<(), String> {
    for key in config.secrets_set() {
        if kind != AuthKind::Custom && IDENTIFIERS.contains(&key) {
            continue;
        }
        let value = config.secrets.get(key).map_or("", Secret::expose);
        if value.chars().count() < MIN_SECRET_LEN {
            return Err(format!(
                "secret `{key}` is shorter than {MIN_SECRET_LEN} characters: Courier scrubs every secret from what comes back, and a value this short would also match unrelated text"
            ));
        }
        if value.contains('\0') {
            return Err(format!("secret `{key}` contains a NUL character"));
        }
    }
    Ok(())
}

/// The credential of the schemes that put fixed secrets in place.
fn static_credential(
    kind: AuthKind,
    declared: &AuthScheme,
    config: &ConnectionConfig,
    scrub: &mut Vec<Secret>,
) -> Result<Credential, String> {
    let secrets = &config.secrets;
    let placements = match kind {
        AuthKind::None => return Ok(Credential::None),
        AuthKind::Bearer => vec![header_placement(
            "authorization",
            "Bearer {secret}",
            need(secrets, "token")?,
        )],
        AuthKind::Basic => {
            let (user, password) = (need(secrets, "username")?, need(secrets, "password")?);
            let pair = Secret::new(format!("{}:{}", user.expose(), password.expose()));
            let encoded = Secret::new(STANDARD.encode(pair.expose()));
            scrub.extend([password, pair]);
            vec![header_placement("authorization", "Basic {secret}", encoded)]
        }
        AuthKind::ApiKey => {
            let (target, name) = match (declared, &config.header, &config.query) {
                (AuthScheme::ApiKey { location, name }, None, None) => (
                    match location {
                        KeyLocation::Header => PlacementTarget::Header,
                        KeyLocation::Query => PlacementTarget::Query,
                    },
                    name.clone(),
                ),
                (_, Some(h), None) => (PlacementTarget::Header, h.clone()),
                (_, None, Some(q)) => (PlacementTarget::Query, q.clone()),
                _ => return Err("api-key needs exactly one of `header` or `query`".into()),
            };
            vec![Placement::new(
                target,
                name,
                secret_template(),
                need(secrets, "key")?,
            )]
        }
        AuthKind::Custom => {
            let wanted = custom_placements(declared, config)?;
            if let Some(unused) = config
                .secrets_set()
                .into_iter()
                .find(|k| !wanted.iter().any(|p| p.secret == *k))
            {
                return Err(format!("secret `{unused}` is not used by any placement"));
            }
            wanted
                .into_iter()
                .map(|p| {
                    Ok(Placement::new(
                        p.target,
                        p.name,
                        p.template,
                        need(secrets, &p.secret)?,
                    ))
                })
                .collect::<Result<_, String>>()?
        }
        // The credential is the TLS client certificate of the `[tls]` table,
        // which the sender presents to the connection's origins only.
        AuthKind::ClientCertificate if config.tls.names_client_certificate() => vec![],
        AuthKind::ClientCertificate => {
            return Err("client-certificate needs `client_cert_file` + `client_key_file` or `pkcs12_file` in [tls]".into());
        }
        other => {
            return Err(format!(
                "auth scheme `{}` is not implemented yet",
                other.name()
            ));
        }
    };
    for p in &placements {
        check_placement(p)?;
        if !matches!(kind, AuthKind::Basic) {
            scrub.push(p.secret.clone());
        }
    }
    Ok(Credential::Static(placements))
}

/// Identifies everything a token depends on: the declared scheme, the
/// connection file's settings and its secrets, except the refresh token,
/// which the token cell tracks through rotations.
fn config_fingerprint(declared: &AuthScheme, config: &ConnectionConfig) -> [u8; 32] {
    let settings = format!("{declared:?}\n{config:?}");
    let mut parts = vec![settings.as_str()];
    for key in config
        .secrets_set()
        .into_iter()
        .filter(|k| *k != "refresh_token")
    {
        parts.extend([
            key,
            config.secrets.get(key).map(Secret::expose).unwrap_or(""),
        ]);
    }
    fingerprint(parts)
}

/// The OAuth 2 grant and token endpoint: the plugin's settings, each
/// overridden by the operator's, and the client's secrets.
fn oauth2_grant(
    kind: AuthKind,
    declared: &AuthScheme,
    config: &ConnectionConfig,
) -> Result<(Grant, Option<Endpoint>), String> {
    let plugin = match declared {
        AuthScheme::Oauth2ClientCredentials(s)
        | AuthScheme::Oauth2RefreshToken(s)
        | AuthScheme::Oauth2Password(s) => s.clone(),
        _ => OAuth2Settings::default(),
    };
    let secrets = &config.secrets;
    let token_url = config
        .token_url
        .clone()
        .or(plugin.token_url)
        .ok_or("OAuth 2 needs a `token_url`")?;
    let client_auth = config.client_auth.unwrap_or(plugin.client_auth);
    let client_secret = secrets.client_secret.clone();
    if client_secret.is_none() && config.client_auth == Some(ClientAuth::Basic) {
        return Err("`client_auth = \"basic\"` needs the secret `client_secret`".into());
    }
    let endpoint = Endpoint {
        token_url: parse_token_url(&token_url)?,
        scopes: config.scopes.clone().unwrap_or(plugin.scopes),
        audience: config.audience.clone().or(plugin.audience),
        client_auth,
        client_id: Some(need(secrets, "client_id")?),
        client_secret,
    };
    let grant = match kind {
        AuthKind::Oauth2ClientCredentials => Grant::ClientCredentials,
        AuthKind::Oauth2RefreshToken => {
            need(secrets, "refresh_token")?;
            Grant::RefreshToken
        }
        _ => Grant::Password {
            username: need(secrets, "username")?,
            password: need(secrets, "password")?,
        },
    };
    Ok((grant, Some(endpoint)))
}

/// The host-signed JWT: algorithm, claims and lifetime from the operator or
/// the plugin; exchanged at `token_url` when there is one. The signing key
/// comes from the host's `caches`.
fn jwt_grant(
    declared: &AuthScheme,
    config: &ConnectionConfig,
    caches: &Caches,
) -> Result<(Grant, Option<Endpoint>), String> {
    let plugin = match declared {
        AuthScheme::Jwt(j) => Some(j),
        _ => None,
    };
    let algorithm = config
        .algorithm
        .or(plugin.map(|j| j.algorithm))
        .ok_or("jwt needs an `algorithm`")?;
    let claims = match (&config.claims, plugin) {
        (Some(table), _) => serde_json::to_value(table).map_err(|e| format!("`claims`: {e}"))?,
        (None, Some(j)) => {
            serde_json::from_str(&j.claims).map_err(|e| format!("the plugin's claims: {e}"))?
        }
        (None, None) => serde_json::Value::Object(Default::default()),
    };
    let serde_json::Value::Object(claims) = claims else {
        return Err("`claims` must be a table".into());
    };
    let lifetime = config
        .lifetime_secs
        .or(plugin.map(|j| j.lifetime_secs))
        .unwrap_or(DEFAULT_JWT_LIFETIME_SECS);
    let signer = JwtSigner::new(
        &caches.jwt_keys,
        algorithm,
        config.secrets.hmac_key.as_ref(),
        config.secrets.private_key.as_ref(),
        claims,
        lifetime,
    )?;
    let endpoint = match config
        .token_url
        .clone()
        .or(plugin.and_then(|j| j.token_url.clone()))
    {
        Some(url) => Some(Endpoint {
            token_url: parse_token_url(&url)?,
            scopes: config.scopes.clone().unwrap_or_default(),
            audience: None,
            client_auth: ClientAuth::Body,
            client_id: None,
            client_secret: None,
        }),
        None => {
            if config.scopes.is_some() {
                return Err("`scopes` needs a `token_url` to exchange the JWT at".into());
            }
            None
        }
    };
    Ok((Grant::Jwt(Box::new(signer)), endpoint))
}

/// Lifetime of a host-signed JWT when neither the plugin nor the operator sets one.
const DEFAULT_JWT_LIFETIME_SECS: u32 = 3600;

/// A token endpoint: absolute http(s), no user info or fragment.
fn parse_token_url(s: &str) -> Result<Url, String> {
    let url = Url::parse(s).map_err(|e| format!("token URL `{s}`: {e}"))?;
    if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
        return Err(format!("token URL `{s}` must be an http or https URL"));
    }
    if !url.username().is_empty() || url.password().is_some() || url.fragment().is_some() {
        return Err(format!(
            "token URL `{s}` must not carry user info or a fragment"
        ));
    }
    Ok(url)
}

/// The operator's placements (`[[placements]]`, or one of `header`/`query`/
/// `form_field`/`json_field` with `template` and the secret `key`), else the plugin's.
fn custom_placements(
    declared: &AuthScheme,
    config: &ConnectionConfig,
) -> Result<Vec<SecretPlacement>, String> {
    let single: Vec<(PlacementTarget, &String)> = [
        (PlacementTarget::Header, &config.header),
        (PlacementTarget::Query, &config.query),
        (PlacementTarget::FormField, &config.form_field),
        (PlacementTarget::JsonField, &config.json_field),
    ]
    .into_iter()
    .filter_map(|(t, n)| n.as_ref().map(|n| (t, n)))
    .collect();
    let placements = match (&config.placements, single.as_slice()) {
        (Some(_), [_, ..]) => return Err("`placements` and `header`/`query`/`form_field`/`json_field` exclude each other".into()),
        (Some(list), []) => list.clone(),
        (None, [(target, name)]) => vec![SecretPlacement {
            target: *target,
            name: (*name).clone(),
            template: config.template.clone().unwrap_or_else(secret_template),
            secret: "key".into(),
        }],
        (None, [_, _, ..]) => return Err("custom takes one of `header`, `query`, `form_field`, `json_field` (or `[[placements]]`)".into()),
        (None, []) => match declared {
            AuthScheme::Custom { placements } if config.template.is_none() => placements.clone(),
            _ => return Err("custom needs `header`, `query`, `form_field` or `json_field`, or `[[placements]]`".into()),
        },
    };
    if placements.is_empty() {
        return Err("custom needs at least one placement".into());
    }
    if let Some(p) = placements
        .iter()
        .find(|p| !Secrets::KEYS.contains(&p.secret.as_str()))
    {
        return Err(format!(
            "placement `{}` names secret `{}`, which is not a [secrets] key",
            p.name, p.secret
        ));
    }
    Ok(placements)
}

fn check_placement(p: &Placement) -> Result<(), String> {
    if !p.template.contains("{secret}") {
        return Err(format!(
            "the template of `{}` must contain `{{secret}}`",
            p.name
        ));
    }
    if p.name.is_empty() {
        return Err("a placement needs a name".into());
    }
    if p.target == PlacementTarget::Header {
        http::HeaderName::try_from(p.name.as_str())
            .map_err(|_| format!("invalid header name `{}`", p.name))?;
        http::HeaderValue::try_from(p.value()).map_err(|_| {
            format!(
                "the secret for header `{}` is not a valid header value",
                p.name
            )
        })?;
    }
    Ok(())
}
