//! What a plugin declares: its calls, the hosts it may reach, its connections.

use std::time::Duration;

use schemars::JsonSchema;
use schemars::generate::SchemaSettings;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::__private::bindings::courier::plugin::types as wit;
use crate::StepError;

/// How requests on a connection are authenticated (the WIT `auth-scheme`).
/// The plugin names the scheme; the operator supplies the secrets.
pub use wit::AuthScheme as Auth;
/// A JWT the host signs (the WIT `jwt-scheme`); build it with [`Jwt::new`].
pub use wit::JwtScheme as Jwt;
/// OAuth 2 settings for the API (the WIT `oauth2-scheme`); build them with
/// [`OAuth2::new`]. The operator may override each of them.
pub use wit::Oauth2Scheme as OAuth2;
pub use wit::{
    ApiKeyScheme, CallKind, ClientAuth, JwtAlgorithm, KeyLocation, PlacementTarget, SecretPlacement,
};

/// A plugin's declaration, returned by the function given to
/// [`export!`](crate::export).
pub struct Plugin {
    name: String,
    version: String,
    description: String,
    allowed_hosts: Vec<String>,
    connections: Vec<Connection>,
    calls: Vec<Call>,
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

    /// The manifest, with each call's JSON Schemas.
    pub(crate) fn manifest(self) -> wit::Manifest {
        wit::Manifest {
            name: self.name,
            version: self.version,
            description: self.description,
            allowed_hosts: self.allowed_hosts,
            connections: self.connections.into_iter().map(|c| c.0).collect(),
            calls: self.calls.into_iter().map(Call::spec).collect(),
        }
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
pub struct Connection(wit::ConnectionSpec);

impl Connection {
    /// A connection named `name`, without authentication or base URL.
    pub fn new(name: impl Into<String>) -> Self {
        Self(wit::ConnectionSpec {
            name: name.into(),
            description: String::new(),
            base_url: None,
            auth: Auth::None,
            auth_origins: Vec::new(),
            shared_headers: Vec::new(),
            shared_query: Vec::new(),
            verify_call: None,
            rate: wit::RateBudget {
                requests: None,
                per_secs: None,
                concurrent: None,
            },
        })
    }

    /// What it connects to, for the people setting it up.
    pub fn description(mut self, description: impl Into<String>) -> Self {
        self.0.description = description.into();
        self
    }

    /// The default base URL of relative request URLs; the operator may override it.
    pub fn base_url(mut self, url: impl Into<String>) -> Self {
        self.0.base_url = Some(url.into());
        self
    }

    /// The authentication scheme.
    pub fn auth(mut self, auth: Auth) -> Self {
        self.0.auth = auth;
        self
    }

    /// A further origin (`https://host[:port]`) that may receive the credentials.
    pub fn auth_origin(mut self, origin: impl Into<String>) -> Self {
        self.0.auth_origins.push(origin.into());
        self
    }

    /// A non-secret header sent with every request on this connection.
    pub fn shared_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.shared_headers.push((name.into(), value.into()));
        self
    }

    /// A non-secret query pair sent with every request on this connection.
    pub fn shared_query(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.0.shared_query.push((name.into(), value.into()));
        self
    }

    /// The data call that checks the connection works.
    pub fn verify_call(mut self, call: impl Into<String>) -> Self {
        self.0.verify_call = Some(call.into());
        self
    }

    /// At most `requests` requests in any window of `per_secs` seconds on
    /// one credential (tenant and connection), shared by every step of the
    /// host; the operator may narrow it. A request over it waits within
    /// the step deadline or fails with `limit` without being sent. Both
    /// must be at least 1, or the host refuses the manifest.
    pub fn rate(mut self, requests: u32, per_secs: u32) -> Self {
        self.0.rate.requests = Some(requests);
        self.0.rate.per_secs = Some(per_secs);
        self
    }

    /// At most `requests` requests in flight at once on one credential,
    /// shared by every step of the host; the operator may narrow it. At
    /// least 1, or the host refuses the manifest.
    pub fn concurrent(mut self, requests: u32) -> Self {
        self.0.rate.concurrent = Some(requests);
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
    name: String,
    title: Option<String>,
    description: String,
    kind: CallKind,
    idempotent: bool,
    run: Handler,
    input_schema: fn() -> String,
    output_schema: fn() -> String,
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

    fn spec(self) -> wit::CallSpec {
        wit::CallSpec {
            title: self.title.unwrap_or_else(|| self.name.clone()),
            name: self.name,
            description: self.description,
            kind: self.kind,
            idempotent: self.idempotent,
            input_schema: (self.input_schema)(),
            output_schema: (self.output_schema)(),
        }
    }
}

/// The JSON Schema (draft 2020-12) of `T`, with subschemas inlined except
/// where a type refers to itself.
fn schema_of<T: JsonSchema>() -> String {
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
        let manifest = plugin()
            .connection(Connection::new("limited").rate(100, 60).concurrent(4))
            .manifest();
        assert_eq!(
            manifest.connections[0].rate,
            wit::RateBudget {
                requests: None,
                per_secs: None,
                concurrent: None
            },
            "undeclared: unlimited"
        );
        assert_eq!(
            manifest.connections[1].rate,
            wit::RateBudget {
                requests: Some(100),
                per_secs: Some(60),
                concurrent: Some(4)
            }
        );
    }

    #[test]
    fn manifest_lists_calls_with_schemas() {
        let manifest = plugin().manifest();
        assert_eq!(manifest.name, "shop");
        assert_eq!(manifest.allowed_hosts, ["https://api.shop.test"]);
        let connection = &manifest.connections[0];
        assert_eq!(connection.verify_call.as_deref(), Some("me"));
        assert_eq!(
            connection.auth,
            Auth::ApiKey(ApiKeyScheme {
                location: KeyLocation::Header,
                name: "X-Key".into()
            })
        );
        let [create, me] = &manifest.calls[..] else {
            panic!("two calls expected")
        };
        assert_eq!((create.kind, create.idempotent), (CallKind::Action, false));
        assert_eq!(
            (me.kind, me.idempotent, me.title.as_str()),
            (CallKind::Data, true, "me")
        );
        let input: Value = serde_json::from_str(&create.input_schema).unwrap();
        assert_eq!(input["type"], "object");
        assert_eq!(input["required"], serde_json::json!(["email"]));
        let output: Value = serde_json::from_str(&create.output_schema).unwrap();
        assert_eq!(output["properties"]["id"]["type"], "string");
    }
}
