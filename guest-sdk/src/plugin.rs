//! What a plugin declares: its calls, the hosts it may reach, its connections.

use std::time::Duration;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::StepError;

/// How requests on a connection are authenticated. The plugin names the
/// scheme; the operator supplies the secrets, which the plugin never sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Auth {
    /// No authentication.
    None,
    /// The operator's connection file chooses the scheme (generic plugins
    /// such as a plain HTTP request step).
    OperatorDefined,
    /// `Authorization: Bearer <token>` (secret `token`).
    Bearer,
    /// HTTP Basic (secrets `username`, `password`).
    Basic,
    /// An API key in a header or query parameter (secret `key`); see
    /// [`Auth::api_key_header`] and [`Auth::api_key_query`].
    ApiKey(ApiKeyScheme),
    /// Secrets placed in headers, query, form or JSON fields by template.
    Custom(Vec<SecretPlacement>),
    /// OAuth 2 client credentials grant.
    Oauth2ClientCredentials(OAuth2),
    /// OAuth 2 refresh token grant; a rotated refresh token is stored.
    Oauth2RefreshToken(OAuth2),
    /// OAuth 2 resource owner password grant.
    Oauth2Password(OAuth2),
    /// A JWT signed by the host.
    Jwt(Jwt),
    /// A TLS client certificate (mTLS) from the operator's connection.
    ClientCertificate,
}

/// An API key scheme: the secret `key` placed under `name`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ApiKeyScheme {
    /// Header or query.
    pub location: KeyLocation,
    /// The header or query parameter name.
    pub name: String,
}

/// Where an API key goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyLocation {
    /// In a request header.
    Header,
    /// In a query parameter.
    Query,
}

/// Where a custom placement puts a secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
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

/// One secret the host puts into a request after the plugin built it; build
/// it with [`SecretPlacement::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SecretPlacement {
    /// Where it goes.
    pub target: PlacementTarget,
    /// The header, parameter or field name.
    pub name: String,
    /// The value, with `{secret}` standing for the secret.
    pub template: String,
    /// The name of the secret in the operator's connection (`[secrets]` key).
    pub secret: String,
}

/// How the host authenticates OAuth 2 clients at the token endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientAuth {
    /// HTTP Basic with client id and secret.
    Basic,
    /// `client_id` and `client_secret` in the form body.
    Body,
}

/// OAuth 2 settings for the API; build them with [`OAuth2::new`]. The
/// operator may override each of them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct OAuth2 {
    /// The token endpoint.
    pub token_url: Option<String>,
    /// Scopes requested.
    pub scopes: Vec<String>,
    /// The `audience` parameter some providers require.
    pub audience: Option<String>,
    /// How the client authenticates.
    pub client_auth: ClientAuth,
}

/// Signature algorithm of a host-signed JWT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum JwtAlgorithm {
    /// HMAC with SHA-256 (secret `hmac_key`).
    Hs256,
    /// RSA PKCS#1 v1.5 with SHA-256 (secret `private_key`, PEM).
    Rs256,
    /// ECDSA P-256 with SHA-256 (secret `private_key`, PEM).
    Es256,
}

/// A JWT the host signs; build it with [`Jwt::new`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Jwt {
    /// The algorithm.
    pub algorithm: JwtAlgorithm,
    /// A JSON object text of claims; `{now}` and `{exp}` are filled in.
    pub claims: String,
    /// Token lifetime in seconds.
    pub lifetime_secs: u32,
    /// When present, the JWT is exchanged at this URL for an access token.
    pub token_url: Option<String>,
}

/// Whether a call reads or changes things.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CallKind {
    /// Reads data; safe to repeat.
    Data,
    /// Changes something on the other side.
    Action,
}

/// A connection's rate budget; `None` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct RateBudget {
    pub(crate) requests: Option<u32>,
    pub(crate) per_secs: Option<u32>,
    pub(crate) concurrent: Option<u32>,
}

/// A plugin's declaration, returned by the function given to
/// [`export!`](crate::export).
pub struct Plugin {
    pub(crate) name: String,
    pub(crate) version: String,
    pub(crate) description: String,
    pub(crate) allowed_hosts: Vec<String>,
    pub(crate) connections: Vec<Connection>,
    pub(crate) calls: Vec<Call>,
}

impl Plugin {
    /// A plugin named `name` (lowercase, digits and `-`) at `version` (semver,
    /// usually `env!("CARGO_PKG_VERSION")`).
    pub fn new(name: impl Into<String>, version: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            version: version.into(),
            description: String::new(),
            allowed_hosts: Vec::new(),
            connections: Vec::new(),
            calls: Vec::new(),
        }
    }

    /// What the plugin integrates with.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Allows requests to `pattern`: `scheme://host[:port][/path[/*]]`, where
    /// host is a name, `*.` and a domain, or `*`; a path allows that path
    /// only, `/*` after it that path and everything under it
    /// (`https://api.example.com/v1/*`). The operator's policy narrows it.
    ///
    /// A connection's [`base_url`](Connection::base_url) allows its own
    /// origin already: call this only for other hosts (a file CDN, an
    /// upload host, a region pattern such as `https://*.myshopify.com`).
    pub fn allow_host(mut self, pattern: impl Into<String>) -> Self {
        self.allowed_hosts.push(pattern.into());
        self
    }

    /// Declares a connection.
    pub fn connection(mut self, connection: Connection) -> Self {
        self.connections.push(connection);
        self
    }

    /// Offers a call.
    pub fn call(mut self, call: Call) -> Self {
        self.calls.push(call);
        self
    }

    /// Runs the call named `call` on the JSON text `input`.
    pub(crate) fn invoke(&self, call: &str, input: &str) -> Result<String, StepError> {
        let found = self.calls.iter().find(|c| c.name == call);
        let found = found.ok_or_else(|| StepError::failed(format!("unknown call `{call}`")))?;
        (found.run)(input)
    }
}

/// A connection the plugin needs: one third-party account, bound per tenant
/// by the operator. Requests name it with [`Request::connection`](crate::Request::connection).
#[derive(Debug, Clone)]
pub struct Connection {
    pub(crate) name: String,
    pub(crate) description: String,
    pub(crate) base_url: Option<String>,
    pub(crate) auth: Auth,
    pub(crate) auth_origins: Vec<String>,
    pub(crate) shared_headers: Vec<(String, String)>,
    pub(crate) shared_query: Vec<(String, String)>,
    pub(crate) verify_call: Option<String>,
    pub(crate) rate: RateBudget,
}

impl Connection {
    /// A connection named `name`, without authentication or base URL.
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            description: String::new(),
            base_url: None,
            auth: Auth::None,
            auth_origins: Vec::new(),
            shared_headers: Vec::new(),
            shared_query: Vec::new(),
            verify_call: None,
            rate: RateBudget::default(),
        }
    }

    /// What it connects to, for the people setting it up.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// The default base URL of relative request URLs; the operator may
    /// override it. Its origin is allowed as if given to
    /// [`Plugin::allow_host`]: a host is written once.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.base_url = Some(url.into());
        self
    }

    /// The authentication scheme.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.auth = auth;
        self
    }

    /// A further origin (`https://host[:port]`) that may receive the credentials.
    pub fn auth_origin(mut self, origin: impl Into<String>) -> Self {
        self.auth_origins.push(origin.into());
        self
    }

    /// A non-secret header sent with every request on this connection.
    pub fn shared_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.shared_headers.push((name.into(), value.into()));
        self
    }

    /// A non-secret query pair sent with every request on this connection.
    pub fn shared_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.shared_query.push((name.into(), value.into()));
        self
    }

    /// The data call that checks the connection works.
    pub fn verify_call(mut self, call: impl Into<String>) -> Self {
        self.verify_call = Some(call.into());
        self
    }

    /// At most `requests` requests in any window of `per_secs` seconds on
    /// one credential (tenant and connection), shared by every step of the
    /// host; the operator may narrow it. A request over it waits within
    /// the step deadline or fails with `limit` without being sent. Both
    /// must be at least 1, or the host refuses the manifest.
    pub fn rate(mut self, requests: u32, per_secs: u32) -> Self {
        self.rate.requests = Some(requests);
        self.rate.per_secs = Some(per_secs);
        self
    }

    /// At most `requests` requests in flight at once on one credential,
    /// shared by every step of the host; the operator may narrow it. At
    /// least 1, or the host refuses the manifest.
    pub fn concurrent(mut self, requests: u32) -> Self {
        self.rate.concurrent = Some(requests);
        self
    }
}

impl Auth {
    /// An API key (secret `key`) in the header `name`.
    pub fn api_key_header(name: impl Into<String>) -> Self {
        Self::ApiKey(ApiKeyScheme {
            location: KeyLocation::Header,
            name: name.into(),
        })
    }

    /// An API key (secret `key`) in the query parameter `name`.
    pub fn api_key_query(name: impl Into<String>) -> Self {
        Self::ApiKey(ApiKeyScheme {
            location: KeyLocation::Query,
            name: name.into(),
        })
    }
}

impl SecretPlacement {
    /// Puts the operator's secret `secret` at `target` `name`, written as
    /// `template` where `{secret}` stands for the secret (`"Token {secret}"`).
    pub fn new(
        target: PlacementTarget,
        name: impl Into<String>,
        template: impl Into<String>,
        secret: impl Into<String>,
    ) -> Self {
        Self {
            target,
            name: name.into(),
            template: template.into(),
            secret: secret.into(),
        }
    }
}

impl OAuth2 {
    /// No token URL, scopes or audience (the operator provides what is
    /// needed); client authentication with HTTP Basic.
    pub fn new() -> Self {
        Self {
            token_url: None,
            scopes: Vec::new(),
            audience: None,
            client_auth: ClientAuth::Basic,
        }
    }

    /// The token endpoint.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }

    /// Requests `scope` too.
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scopes.push(scope.into());
        self
    }

    /// The `audience` parameter.
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// How the client authenticates at the token endpoint.
    pub fn client_auth(mut self, client_auth: ClientAuth) -> Self {
        self.client_auth = client_auth;
        self
    }
}

impl Default for OAuth2 {
    fn default() -> Self {
        Self::new()
    }
}

impl Jwt {
    /// A JWT signed with `algorithm`, carrying `claims` (a JSON object where
    /// `{now}` and `{exp}` are filled in), valid for `lifetime`; sent as a
    /// bearer token unless [`token_url`](Self::token_url) is set.
    pub fn new(algorithm: JwtAlgorithm, claims: &Value, lifetime: Duration) -> Self {
        Self {
            algorithm,
            claims: claims.to_string(),
            lifetime_secs: u32::try_from(lifetime.as_secs()).unwrap_or(u32::MAX),
            token_url: None,
        }
    }

    /// Exchanges the JWT at `url` for an access token.
    pub fn token_url(mut self, url: impl Into<String>) -> Self {
        self.token_url = Some(url.into());
        self
    }
}

/// Runs a call on its JSON input text and returns the JSON output text.
type Handler = Box<dyn Fn(&str) -> Result<String, StepError>>;

/// One call a plugin offers: a function from a deserialized input to a
/// serializable output.
///
/// Its input and output JSON Schemas are derived from the types (with
/// `#[derive(JsonSchema)]`) when the host asks for the manifest, never when the
/// call runs.
pub struct Call {
    pub(crate) name: String,
    pub(crate) title: Option<String>,
    pub(crate) description: String,
    pub(crate) kind: CallKind,
    pub(crate) idempotent: bool,
    run: Handler,
    pub(crate) input_schema: fn() -> String,
    pub(crate) output_schema: fn() -> String,
}

impl Call {
    /// A call that reads data (idempotent unless said otherwise).
    pub fn data<I, O>(
        name: impl Into<String>,
        handler: impl Fn(I) -> Result<O, StepError> + 'static,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
    {
        Self::new(CallKind::Data, name, handler)
    }

    /// A call that changes something (not idempotent unless said otherwise).
    pub fn action<I, O>(
        name: impl Into<String>,
        handler: impl Fn(I) -> Result<O, StepError> + 'static,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
    {
        Self::new(CallKind::Action, name, handler)
    }

    fn new<I, O>(
        kind: CallKind,
        name: impl Into<String>,
        handler: impl Fn(I) -> Result<O, StepError> + 'static,
    ) -> Self
    where
        I: DeserializeOwned + JsonSchema,
        O: Serialize + JsonSchema,
    {
        let run = move |input: &str| {
            let input = serde_json::from_str(input)
                .map_err(|error| StepError::invalid_input(error.to_string()))?;
            let output = handler(input)?;
            serde_json::to_string(&output).map_err(|error| {
                StepError::failed(format!("the output cannot be serialized: {error}"))
            })
        };
        Self {
            name: name.into(),
            title: None,
            description: String::new(),
            kind,
            idempotent: kind == CallKind::Data,
            run: Box::new(run),
            input_schema: schema_of::<I>,
            output_schema: schema_of::<O>,
        }
    }

    /// A short human title (defaults to the name).
    pub fn title(mut self, title: impl Into<String>) -> Self {
        self.title = Some(title.into());
        self
    }

    /// What the call does.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.description = description.into();
        self
    }

    /// Whether repeating the call with the same input has no further effect
    /// (the host then retries its PUT and DELETE requests like reads).
    pub fn idempotent(mut self, idempotent: bool) -> Self {
        self.idempotent = idempotent;
        self
    }
}

/// The JSON Schema (draft 2020-12) of `T`, with subschemas inlined except
/// where a type refers to itself.
pub(crate) fn schema_of<T: JsonSchema>() -> String {
    let mut generator = SchemaSettings::draft2020_12()
        .with(|settings| settings.inline_subschemas = true)
        .into_generator();
    generator.root_schema_for::<T>().to_value().to_string()
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Deserialize, JsonSchema)]
    struct Input {
        email: String,
    }

    #[derive(Serialize, JsonSchema)]
    struct Output {
        id: String,
    }

    fn create(input: Input) -> Result<Output, StepError> {
        if input.email.is_empty() {
            return Err(StepError::invalid_input("empty email"));
        }
        Ok(Output {
            id: format!("cus_{}", input.email),
        })
    }

    fn plugin() -> Plugin {
        Plugin::new("shop", "1.2.3")
            .description("A shop")
            .allow_host("https://api.shop.test")
            .connection(
                Connection::new("shop")
                    .base_url("https://api.shop.test")
                    .auth(Auth::api_key_header("X-Key"))
                    .verify_call("me"),
            )
            .call(
                Call::action("create", create)
                    .title("Create")
                    .description("Creates"),
            )
            .call(Call::data("me", |_: Value| {
                Ok(serde_json::json!({"me": true}))
            }))
    }

    #[test]
    fn invoke_runs_the_named_call() {
        assert_eq!(
            plugin().invoke("create", r#"{"email":"a"}"#).unwrap(),
            r#"{"id":"cus_a"}"#
        );
        assert_eq!(plugin().invoke("me", "null").unwrap(), r#"{"me":true}"#);
        assert_eq!(
            plugin().invoke("create", r#"{"email":""}"#).unwrap_err(),
            StepError::invalid_input("empty email")
        );
    }

    #[test]
    fn invoke_reports_bad_input_and_unknown_calls() {
        let error = plugin().invoke("create", r#"{"mail":"a"}"#).unwrap_err();
        assert!(matches!(error, StepError::InvalidInput(m) if m.contains("missing field `email`")));
        assert_eq!(
            plugin().invoke("delete", "{}").unwrap_err(),
            StepError::failed("unknown call `delete`")
        );
    }

    #[test]
    fn a_connection_declares_its_rate_budget() {
        let plugin = plugin().connection(Connection::new("limited").rate(100, 60).concurrent(4));
        assert_eq!(
            plugin.connections[0].rate,
            RateBudget::default(),
            "undeclared: unlimited"
        );
        assert_eq!(
            plugin.connections[1].rate,
            RateBudget {
                requests: Some(100),
                per_secs: Some(60),
                concurrent: Some(4)
            }
        );
    }

    #[test]
    fn manifest_lists_calls_with_schemas() {
        let manifest = crate::convert::manifest(plugin());
        use crate::__private::bindings::courier::plugin::types as wit;
        assert_eq!(manifest.name, "shop");
        assert_eq!(manifest.allowed_hosts, ["https://api.shop.test"]);
        let connection = &manifest.connections[0];
        assert_eq!(connection.verify_call.as_deref(), Some("me"));
        assert_eq!(
            connection.auth,
            wit::AuthScheme::ApiKey(wit::ApiKeyScheme {
                location: wit::KeyLocation::Header,
                name: "X-Key".into()
            })
        );
        let [create, me] = &manifest.calls[..] else {
            panic!("two calls expected")
        };
        assert_eq!(
            (create.kind, create.idempotent),
            (wit::CallKind::Action, false)
        );
        assert_eq!(
            (me.kind, me.idempotent, me.title.as_str()),
            (wit::CallKind::Data, true, "me")
        );
        let input: Value = serde_json::from_str(&create.input_schema).unwrap();
        assert_eq!(input["type"], "object");
        assert_eq!(input["required"], serde_json::json!(["email"]));
        let output: Value = serde_json::from_str(&create.output_schema).unwrap();
        assert_eq!(output["properties"]["id"]["type"], "string");
    }

    /// Finds a shop's orders.
    ///
    /// By status.
    #[crate::call(data, name = "find-orders", title = "Find orders")]
    fn find_orders(input: Input) -> Result<Output, StepError> {
        Ok(Output { id: input.email })
    }

    #[crate::call(action, idempotent)]
    fn cancel(_: Value) -> Result<Value, StepError> {
        Ok(Value::Null)
    }

    #[test]
    fn the_call_attribute_declares_the_function() {
        let plugin = Plugin::new("shop", "1.0.0")
            .call(find_orders::call())
            .call(cancel::call());
        let [find, cancel] = &plugin.calls[..] else {
            panic!("two calls expected")
        };
        assert_eq!(
            (
                find.name.as_str(),
                find.title.as_deref(),
                find.kind,
                find.idempotent
            ),
            ("find-orders", Some("Find orders"), CallKind::Data, true)
        );
        assert_eq!(find.description, "Finds a shop's orders.\n\nBy status.");
        assert_eq!(
            plugin.invoke("find-orders", r#"{"email":"x"}"#).unwrap(),
            r#"{"id":"x"}"#
        );
        assert_eq!(
            (
                cancel.name.as_str(),
                cancel.kind,
                cancel.idempotent,
                cancel.description.as_str()
            ),
            ("cancel", CallKind::Action, true, "")
        );
        let input: Value = serde_json::from_str(&(find.input_schema)()).unwrap();
        assert_eq!(input["required"], serde_json::json!(["email"]));
    }
}
