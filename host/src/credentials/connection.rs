//! A connection bound to a plugin's declaration: base URL, the origins that
//! may receive its credentials, and the credential with its secrets.

use std::sync::{Arc, OnceLock};

use crate::tls::ConnectionTls;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use courier_egress::head::parse_base_url;
use http::HeaderMap;
use url::Url;

use super::config::{Auth, Custom, Jwt, JwtExchange, OAuth2, Secrets};
use super::jwt::JwtSigner;
use super::scrub::{MIN_SECRET_LEN, Matcher};
use super::tokens::{
    Endpoint, Exchange, Grant, TokenManager, TokenSource, client_basic_pair, fingerprint,
};
use super::{Caches, ConnectionConfig, ConnectionError};
use crate::limits::RateSettings;
use crate::manifest::{
    AuthKind, AuthScheme, ClientAuth, ConnectionSpec, KeyLocation, OAuth2Settings, PlacementTarget,
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
    /// Who the connection's responses belong to: tenant, connection id (or
    /// name) and a fingerprint of its whole configuration, secrets included,
    /// under a per-process random hash key; never a secret value. Two
    /// bindings of the same content share it; any other setting or secret
    /// gives another.
    pub(crate) identity: String,
    pub(crate) base_url: Option<Url>,
    /// Whether `base_url`'s origin joins the plugin's allowed hosts for the
    /// step (a host is written once): for a configuration handed to the
    /// step by the embedder or the CLI, not for one loaded from a store,
    /// which tenants write through the service, so that a tenant cannot
    /// point a plugin at a host it does not declare.
    pub(crate) base_url_allowed: bool,
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
    /// Whose rate budget the connection's requests draw on, and its limits.
    pub(crate) rate: ConnectionRate,
}

/// The rate budget of a connection: kept per tenant and connection id (no
/// secret in either), limited by the operator's `[rate]` table and the
/// plugin's declaration, whichever is narrower.
#[derive(Debug, Clone)]
pub(crate) struct ConnectionRate {
    /// The step's tenant and the connection's id within it: the key of the
    /// connection's budget, made once here rather than per request.
    pub(crate) owner: (String, String),
    /// The narrower of the operator's and the plugin's limits.
    pub(crate) settings: RateSettings,
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
        let identity = identity(tenant, &config);
        let base_url_allowed = !config.from_store;
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
        config.rate.check().map_err(fail)?;
        let rate = ConnectionRate {
            owner: (
                tenant.to_owned(),
                config.id.clone().unwrap_or_else(|| spec.name.clone()),
            ),
            settings: config.rate.narrowest(spec.rate),
        };
        let tls = ConnectionTls::load(&config.tls, &caches.tls).map_err(|e| fail(e.to_string()))?;
        let http2 = config.tls.http2;
        let auth = config.auth.resolve(spec.auth.kind()).map_err(fail)?;
        let mut shared_headers = spec.shared_headers.clone();
        for (k, v) in &config.shared_headers {
            http::HeaderName::try_from(k.as_str())
                .map_err(|_| fail(format!("shared header name `{k}` is invalid")))?;
            shared_headers.push((k.clone(), v.clone()));
        }
        let mut scrub = Vec::new();
        let declared = &spec.auth;
        let token_grant = match &auth {
            Auth::Oauth2ClientCredentials(o) => {
                let s = &o.secrets;
                let grant = Grant::ClientCredentials;
                Some(oauth2_grant(
                    declared,
                    o,
                    grant,
                    &s.client_id,
                    &s.client_secret,
                ))
            }
            Auth::Oauth2RefreshToken(o) => {
                let s = &o.secrets;
                let grant = Grant::RefreshToken;
                Some(oauth2_grant(
                    declared,
                    o,
                    grant,
                    &s.client_id,
                    &s.client_secret,
                ))
            }
            Auth::Oauth2Password(o) => {
                let s = &o.secrets;
                let grant = Grant::Password {
                    username: s.username.clone(),
                    password: s.password.clone(),
                };
                Some(oauth2_grant(
                    declared,
                    o,
                    grant,
                    &s.client_id,
                    &s.client_secret,
                ))
            }
            Auth::Jwt(jwt) => Some(jwt_grant(
                declared,
                jwt,
                caches,
                (&origins, &shared_headers),
            )),
            _ => None,
        };
        let credential = match token_grant.transpose().map_err(fail)? {
            Some((grant, endpoint)) => {
                let id = config.id.as_deref().unwrap_or(&spec.name);
                let fp = config_fingerprint(declared, &config, &auth);
                let refresh_token = match &auth {
                    Auth::Oauth2RefreshToken(o) => Some(o.secrets.refresh_token.clone()),
                    _ => None,
                };
                let cell = tokens.cell(tenant, id, fp, refresh_token, config.from_store);
                let secrets = auth.secrets();
                scrub.extend(scrubbed(&auth).into_iter().map(|(_, v)| v.clone()));
                let find = |key| secrets.iter().find(|(k, _)| *k == key).map(|(_, v)| *v);
                if let (Some(id), Some(secret)) = (find("client_id"), find("client_secret")) {
                    scrub.push(client_basic_pair(id, secret));
                }
                Credential::Token(Box::new(TokenSource {
                    grant,
                    endpoint,
                    cell,
                }))
            }
            None => static_credential(declared, &auth, &config, &mut scrub).map_err(fail)?,
        };
        check_scrubbable(&auth).map_err(fail)?;
        let certificate = auth.kind() == AuthKind::ClientCertificate;
        if base_url.is_none()
            && (certificate || !matches!(credential, Credential::None))
            && origins.is_empty()
        {
            return Err(fail(
                "credentials need a `base_url` whose origin may receive them".into(),
            ));
        }
        let mut shared_query = spec.shared_query.clone();
        shared_query.extend(config.shared_query);
        let matcher = OnceLock::new();
        Ok(Self {
            name: spec.name.clone(),
            identity,
            base_url,
            base_url_allowed,
            origins,
            credential,
            shared_headers,
            shared_query,
            scrub,
            tls,
            http2,
            matcher,
            rate,
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
fn check_scrubbable(auth: &Auth) -> Result<(), String> {
    for (key, value) in scrubbed(auth) {
        let value = value.expose();
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

/// The secrets the scrubber looks for: all but the identifiers, except that
/// a custom placement's secrets are all secret, and so is a Basic user name
/// sent with an empty password (an API key as the user name, as Stripe and
/// others take it: `curl -u KEY:`).
fn scrubbed(auth: &Auth) -> Vec<(&'static str, &Secret)> {
    let all = auth.secrets();
    match auth {
        Auth::Custom(_) => all,
        Auth::Basic(b) if b.secrets.password.expose().is_empty() => {
            vec![("username", &b.secrets.username)]
        }
        _ => all
            .into_iter()
            .filter(|(k, _)| !IDENTIFIERS.contains(k))
            .collect(),
    }
}

/// The credential of the schemes that put fixed secrets in place.
fn static_credential(
    declared: &AuthScheme,
    auth: &Auth,
    config: &ConnectionConfig,
    scrub: &mut Vec<Secret>,
) -> Result<Credential, String> {
    let placements = match auth {
        Auth::None(_) => return Ok(Credential::None),
        Auth::Bearer(b) => vec![header_placement(
            "authorization",
            "Bearer {secret}",
            b.secrets.token.clone(),
        )],
        Auth::Basic(b) => {
            let (user, password) = (&b.secrets.username, &b.secrets.password);
            let pair = Secret::new(format!("{}:{}", user.expose(), password.expose()));
            let encoded = Secret::new(STANDARD.encode(pair.expose()));
            scrub.extend(scrubbed(auth).into_iter().map(|(_, s)| s.clone()));
            scrub.push(pair);
            vec![header_placement("authorization", "Basic {secret}", encoded)]
        }
        Auth::ApiKey(a) => {
            let (target, name) = match (declared, &a.header, &a.query) {
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
            let key = a.secrets.key.clone();
            vec![Placement::new(target, name, secret_template(), key)]
        }
        Auth::Custom(custom) => {
            let wanted = custom_placements(declared, custom)?;
            if let Some((unused, _)) = custom
                .secrets
                .set()
                .into_iter()
                .find(|(k, _)| !wanted.iter().any(|p| p.secret == *k))
            {
                return Err(format!("secret `{unused}` is not used by any placement"));
            }
            wanted
                .into_iter()
                .map(|p| {
                    let secret = need(&custom.secrets, &p.secret)?;
                    Ok(Placement::new(p.target, p.name, p.template, secret))
                })
                .collect::<Result<_, String>>()?
        }
        // The credential is the TLS client certificate of the `[tls]` table,
        // which the sender presents to the connection's origins only.
        Auth::ClientCertificate(_) if config.tls.names_client_certificate() => vec![],
        Auth::ClientCertificate(_) => {
            return Err("client-certificate needs `client_cert_file` + `client_key_file` or `pkcs12_file` in [tls]".into());
        }
        Auth::Oauth2ClientCredentials(_)
        | Auth::Oauth2RefreshToken(_)
        | Auth::Oauth2Password(_)
        | Auth::Jwt(_) => unreachable!("token schemes have no fixed placements"),
    };
    for p in &placements {
        check_placement(p)?;
        if !matches!(auth, Auth::Basic(_)) {
            scrub.push(p.secret.clone());
        }
    }
    Ok(Credential::Static(placements))
}

/// Identifies everything a token depends on: the declared scheme, the
/// connection's settings and its secrets, except the refresh token, which
/// the token cell tracks through rotations.
fn config_fingerprint(declared: &AuthScheme, config: &ConnectionConfig, auth: &Auth) -> [u8; 32] {
    let settings = format!("{declared:?}\n{config:?}");
    let mut parts = vec![settings.as_str()];
    for (key, value) in auth.secrets() {
        if key != "refresh_token" {
            parts.extend([key, value.expose()]);
        }
    }
    fingerprint(parts)
}

/// The OAuth 2 grant and token endpoint: the plugin's settings, each
/// overridden by the operator's, and the client's secrets.
fn oauth2_grant<S>(
    declared: &AuthScheme,
    operator: &OAuth2<S>,
    grant: Grant,
    client_id: &Secret,
    client_secret: &Option<Secret>,
) -> Result<(Grant, Option<Endpoint>), String> {
    let plugin = match declared {
        AuthScheme::Oauth2ClientCredentials(s)
        | AuthScheme::Oauth2RefreshToken(s)
        | AuthScheme::Oauth2Password(s) => s.clone(),
        _ => OAuth2Settings::default(),
    };
    let token_url = operator
        .token_url
        .clone()
        .or(plugin.token_url)
        .ok_or("OAuth 2 needs a `token_url`")?;
    if client_secret.is_none() && operator.client_auth == Some(ClientAuth::Basic) {
        return Err("`client_auth = \"basic\"` needs the secret `client_secret`".into());
    }
    let endpoint = Endpoint {
        token_url: parse_token_url(&token_url)?,
        exchange: Exchange::OAuth2,
        scopes: operator.scopes.clone().unwrap_or(plugin.scopes),
        audience: operator.audience.clone().or(plugin.audience),
        client_auth: operator.client_auth.unwrap_or(plugin.client_auth),
        client_id: Some(client_id.clone()),
        client_secret: client_secret.clone(),
    };
    Ok((grant, Some(endpoint)))
}

/// The host-signed JWT: algorithm, claims and lifetime from the operator or
/// the plugin; exchanged at `token_url` when there is one, as the operator's
/// `exchange` says. The signing key comes from the host's `caches`. A bearer
/// exchange carries the connection's shared headers when `token_url` is one
/// of its `origins`.
fn jwt_grant(
    declared: &AuthScheme,
    operator: &Jwt,
    caches: &Caches,
    (origins, shared_headers): (&[url::Origin], &[(String, String)]),
) -> Result<(Grant, Option<Endpoint>), String> {
    let plugin = match declared {
        AuthScheme::Jwt(j) => Some(j),
        _ => None,
    };
    let algorithm = operator
        .algorithm
        .or(plugin.map(|j| j.algorithm))
        .ok_or("jwt needs an `algorithm`")?;
    let claims = match (&operator.claims, plugin) {
        (Some(table), _) => serde_json::to_value(table).map_err(|e| format!("`claims`: {e}"))?,
        (None, Some(j)) => {
            serde_json::from_str(&j.claims).map_err(|e| format!("the plugin's claims: {e}"))?
        }
        (None, None) => serde_json::Value::Object(Default::default()),
    };
    let serde_json::Value::Object(claims) = claims else {
        return Err("`claims` must be a table".into());
    };
    let lifetime = operator
        .lifetime_secs
        .or(plugin.map(|j| j.lifetime_secs))
        .unwrap_or(DEFAULT_JWT_LIFETIME_SECS);
    let signer = JwtSigner::new(
        &caches.jwt_keys,
        algorithm,
        operator.secrets.hmac_key.as_ref(),
        operator.secrets.private_key.as_ref(),
        claims,
        lifetime,
        operator.backdate_secs.unwrap_or(0),
    )?;
    let token_url = operator
        .token_url
        .clone()
        .or(plugin.and_then(|j| j.token_url.clone()));
    let endpoint = match (token_url, &operator.exchange) {
        (Some(url), exchange) => {
            let token_url = parse_token_url(&url)?;
            let exchange = match exchange {
                None | Some(JwtExchange::Assertion) => Exchange::OAuth2,
                Some(JwtExchange::Bearer { .. }) if operator.scopes.is_some() => {
                    return Err("`scopes` are for the `assertion` exchange".into());
                }
                Some(JwtExchange::Bearer {
                    token_field,
                    expires_at_field,
                }) => Exchange::JwtBearer {
                    token_field: token_field.clone(),
                    expires_at_field: expires_at_field.clone(),
                    headers: if origins.contains(&token_url.origin()) {
                        header_map(shared_headers)?
                    } else {
                        HeaderMap::new()
                    },
                },
            };
            Some(Endpoint {
                token_url,
                exchange,
                scopes: operator.scopes.clone().unwrap_or_default(),
                audience: None,
                client_auth: ClientAuth::Body,
                client_id: None,
                client_secret: None,
            })
        }
        (None, Some(_)) => return Err("`exchange` needs a `token_url`".into()),
        (None, None) => {
            if operator.scopes.is_some() {
                return Err("`scopes` needs a `token_url` to exchange the JWT at".into());
            }
            None
        }
    };
    Ok((Grant::Jwt(Box::new(signer)), endpoint))
}

/// Headers as a request carries them.
fn header_map(headers: &[(String, String)]) -> Result<HeaderMap, String> {
    headers
        .iter()
        .map(|(name, value)| {
            let name = http::HeaderName::try_from(name.as_str())
                .map_err(|_| format!("shared header name `{name}` is invalid"))?;
            let value = http::HeaderValue::try_from(value.as_str())
                .map_err(|_| format!("shared header `{name}` has an invalid value"))?;
            Ok((name, value))
        })
        .collect()
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
    custom: &Custom,
) -> Result<Vec<SecretPlacement>, String> {
    let single: Vec<(PlacementTarget, &String)> = [
        (PlacementTarget::Header, &custom.header),
        (PlacementTarget::Query, &custom.query),
        (PlacementTarget::FormField, &custom.form_field),
        (PlacementTarget::JsonField, &custom.json_field),
    ]
    .into_iter()
    .filter_map(|(t, n)| n.as_ref().map(|n| (t, n)))
    .collect();
    let placements = match (&custom.placements, single.as_slice()) {
        (Some(_), [_, ..]) => return Err("`placements` and `header`/`query`/`form_field`/`json_field` exclude each other".into()),
        (Some(list), []) => list.clone(),
        (None, [(target, name)]) => vec![SecretPlacement {
            target: *target,
            name: (*name).clone(),
            template: custom.template.clone().unwrap_or_else(secret_template),
            secret: "key".into(),
        }],
        (None, [_, _, ..]) => return Err("custom takes one of `header`, `query`, `form_field`, `json_field` (or `[[placements]]`)".into()),
        (None, []) => match declared {
            AuthScheme::Custom { placements } if custom.template.is_none() => placements.clone(),
            _ => return Err("custom needs `header`, `query`, `form_field` or `json_field`, or `[[placements]]`".into()),
        },
    };
    if placements.is_empty() {
        return Err("custom needs at least one placement".into());
    }
    if let Some(p) = placements.iter().find(|p| !Secrets::is_key(&p.secret)) {
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

/// The identity of a connection's responses (see
/// [`BoundConnection::identity`]): the configuration hashed with SipHash
/// under keys drawn once per process, so equal content gives equal
/// identities and nothing outside this process can relate one to a secret.
fn identity(tenant: &str, config: &ConnectionConfig) -> String {
    use std::hash::{BuildHasher, RandomState};
    static KEYS: OnceLock<RandomState> = OnceLock::new();
    let hash = KEYS.get_or_init(RandomState::new).hash_one(config);
    let id = config.id.as_deref().unwrap_or(&config.connection);
    format!("{tenant}\u{0}{id}\u{0}{hash:016x}")
}
