//! Connections and their secrets: what the operator supplies, how the host
//! injects it into requests, and how every form of a secret is scrubbed from
//! what goes back to the plugin.
//!
//! - `caches`: what binding builds from secrets, kept per host;
//! - `config`: the connection file (TOML) and its validation;
//! - `connection`: binding a file to the plugin's declared connection, per scheme;
//! - `kept`: bindings kept by content, shared by the steps binding the same file;
//! - `inject`: what the credential adds to a request for one of its origins;
//! - `tokens`: the token manager (OAuth 2 grants, JWT), shared across steps;
//! - `jwt`: host-signed JWTs;
//! - `scrub`: removing secrets, in every encoding, from what the plugin sees.
//!
//! The secret type itself, [`crate::secret::Secret`], sits below this module
//! (TLS material and the store hold secrets too).

mod caches;
mod config;
mod connection;
mod inject;
mod jwt;
mod kept;
mod scrub;
mod tokens;

pub(crate) use caches::Caches;
pub use config::{
    ApiKey, Auth, Basic, Bearer, ClientSecrets, ConnectionAuth, ConnectionConfig, ConnectionError,
    Custom, Jwt, JwtExchange, JwtSecrets, KeySecret, NoCredential, NoSecrets, OAuth2,
    PasswordSecrets, RefreshTokenSecrets, Secrets, TokenSecret, UntypedAuth, UserPassword,
};
pub(crate) use connection::{BoundConnection, ConnectionRate};
pub(crate) use inject::Additions;
pub(crate) use kept::KeptBindings;
pub(crate) use scrub::{Redactor, Scrubber};
pub(crate) use tokens::{
    PersistFuture, TokenManager, TokenPersistence, TokenRequest, TokenSource, TokenTurn,
};

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::RateSettings;
    use crate::manifest::AuthScheme;
    use crate::manifest::ConnectionSpec;
    use crate::secret::Secret;
    use base64::Engine as _;
    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use scrub::REDACTED;
    use url::Url;

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
            rate: RateSettings::default(),
        }
    }

    /// Binds a connection file's text to a connection declaring `auth`, with
    /// `caches` (one host's).
    fn bind_with(
        caches: &Caches,
        auth: AuthScheme,
        text: &str,
    ) -> Result<BoundConnection, ConnectionError> {
        let config: ConnectionConfig = toml::from_str(text).map_err(|e| ConnectionError {
            connection: "file".into(),
            message: e.to_string(),
        })?;
        BoundConnection::bind(&spec(auth), config, "t", &TokenManager::default(), caches)
    }

    /// Binds a connection file's text to a connection declaring `auth`.
    fn bind(auth: AuthScheme, text: &str) -> Result<BoundConnection, ConnectionError> {
        bind_with(&Caches::default(), auth, text)
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let bound = bind(AuthScheme::OperatorDefined, "connection='default'\nauth='bearer'\nbase_url='https://a.test'\n[secrets]\ntoken='s3cr3t-value'").unwrap();
        let debug = format!("{bound:?}");
        assert!(!debug.contains("s3cr3t-value"), "{debug}");
        assert!(debug.contains("redacted"));
    }

    /// `exchange` is a table typed by its `kind`; a bearer exchange takes the
    /// connection's shared headers only to one of the connection's origins.
    #[test]
    fn a_jwt_exchange_is_typed_and_gets_shared_headers_on_its_origins_only() {
        let file = |token_url: &str, exchange: &str| {
            format!(
                "connection='default'\nauth='jwt'\nalgorithm='HS256'\nbase_url='https://a.test'\n\
                 token_url='{token_url}'\nexchange={exchange}\n[shared_headers]\nX-Api-Version='7'\n\
                 [secrets]\nhmac_key='hmac-key-value'"
            )
        };
        let exchange_of = |token_url: &str, exchange: &str| {
            let bound = bind(AuthScheme::OperatorDefined, &file(token_url, exchange))?;
            let connection::Credential::Token(source) = bound.credential else {
                panic!("a JWT is a token credential")
            };
            Ok::<_, ConnectionError>(source.endpoint.expect("a token endpoint").exchange)
        };
        let same = "https://a.test/app/installations/1/access_tokens";
        match exchange_of(same, "{ kind = 'bearer', token_field = 'access' }").unwrap() {
            tokens::Exchange::JwtBearer {
                token_field,
                expires_at_field,
                headers,
            } => {
                assert_eq!(
                    (token_field.as_str(), expires_at_field.as_str()),
                    ("access", "expires_at")
                );
                assert_eq!(headers.get("x-api-version").unwrap(), "7");
            }
            other => panic!("{other:?}"),
        }
        match exchange_of("https://auth.test/token", "{ kind = 'bearer' }").unwrap() {
            tokens::Exchange::JwtBearer { headers, .. } => assert!(headers.is_empty()),
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            exchange_of(same, "{ kind = 'assertion' }").unwrap(),
            tokens::Exchange::OAuth2
        ));
        for (exchange, named) in [
            ("'bearer'", "invalid type: string \"bearer\""),
            ("{ kind = 'bearer', field = 'x' }", "`field` does not apply"),
            ("{ kind = 'form' }", "unknown variant `form`"),
        ] {
            let err = exchange_of(same, exchange).unwrap_err().to_string();
            assert!(err.contains(named), "{exchange}: {err}");
        }
    }

    #[test]
    fn operator_defined_scheme_needs_auth() {
        let err = bind(
            AuthScheme::OperatorDefined,
            "connection='default'\nbase_url='https://a.test'",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("set `auth`"), "{err}");
    }

    #[test]
    fn missing_secret_is_named() {
        let err = bind(AuthScheme::OperatorDefined, "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='u'").unwrap_err().to_string();
        assert!(err.contains("missing secret `password`"), "{err}");
    }

    #[test]
    fn a_bad_rate_table_is_refused_naming_the_key() {
        let file = |rate: &str| {
            format!(
                "connection='default'\nauth='bearer'\nbase_url='https://a.test'\n\
                 [secrets]\ntoken='s3cr3t-value'\n[rate]\n{rate}"
            )
        };
        let refused = |rate: &str| {
            bind(AuthScheme::OperatorDefined, &file(rate))
                .unwrap_err()
                .to_string()
        };
        let err = refused("requests=10\nper_secs=1\nburst=5");
        assert!(err.contains("unknown field `burst`"), "{err}");
        let err = refused("requests=10");
        assert!(
            err.contains("`rate.requests` needs `rate.per_secs`"),
            "{err}"
        );
        let err = refused("concurrent=0");
        assert!(
            err.contains("`rate.concurrent` must be at least 1"),
            "{err}"
        );
        let err = refused("per_secs='60'");
        assert!(err.contains("per_secs"), "{err}");
        let bound = bind(
            AuthScheme::OperatorDefined,
            &file("requests=10\nper_secs=60\nconcurrent=2"),
        )
        .unwrap();
        assert_eq!(
            bound.rate.settings,
            RateSettings {
                requests: Some(10),
                per_secs: Some(60),
                concurrent: Some(2),
            }
        );
        assert_eq!(
            (bound.rate.owner.0.as_str(), bound.rate.owner.1.as_str()),
            ("t", "default")
        );
        // A connection built in code is checked when bound.
        let config = ConnectionConfig::new("default", Auth::bearer("s3cr3t-value"))
            .base_url("https://a.test")
            .rate(RateSettings {
                per_secs: Some(5),
                ..RateSettings::default()
            });
        let err = BoundConnection::bind(
            &spec(AuthScheme::OperatorDefined),
            config,
            "t",
            &TokenManager::default(),
            &Caches::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`rate.per_secs` needs `rate.requests`"),
            "{err}"
        );
    }

    #[test]
    fn declared_scheme_must_agree() {
        let err = bind(
            AuthScheme::Bearer,
            "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='u'\npassword='p-long-enough'",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("disagrees"), "{err}");
    }

    #[test]
    fn a_file_without_auth_is_typed_by_the_declared_scheme() {
        let key = "connection='default'\nbase_url='https://a.test'\n[secrets]\nkey='k-long-enough'";
        let declared = AuthScheme::ApiKey {
            location: crate::manifest::KeyLocation::Header,
            name: "X-Key".into(),
        };
        let bound = bind(declared, key).unwrap();
        assert!(bound.reserves_header("x-key"));
        let err = bind(AuthScheme::Bearer, key).unwrap_err().to_string();
        assert!(
            err.contains("secret `key` is not used by auth `bearer`"),
            "{err}"
        );
        let err = bind(
            AuthScheme::Bearer,
            "connection='default'\nbase_url='https://a.test'\nheader='X'\n[secrets]\ntoken='t-long-enough'",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("`header` does not apply to auth `bearer`"),
            "{err}"
        );
        let err = bind(AuthScheme::Bearer, "connection='default'\nheadr='X'")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("no auth scheme takes the key `headr`"),
            "{err}"
        );
    }

    #[test]
    fn a_connection_built_in_code_is_the_file_that_says_the_same() {
        let file = |text: &str| -> ConnectionConfig { toml::from_str(text).unwrap() };
        assert_eq!(
            ConnectionConfig::new("default", Auth::bearer("t-long-enough"))
                .base_url("https://a.test/v1")
                .id("gh")
                .shared_header("Accept", "application/json"),
            file(
                "connection='default'\nid='gh'\nbase_url='https://a.test/v1'\nauth='bearer'\n\
                  [shared_headers]\nAccept='application/json'\n[secrets]\ntoken='t-long-enough'"
            )
        );
        assert_eq!(
            ConnectionConfig::new("default", Auth::api_key_query("k", "key-long-enough")),
            file(
                "connection='default'\nauth='api-key'\nquery='k'\n[secrets]\nkey='key-long-enough'"
            )
        );
        assert_eq!(
            ConnectionConfig::new(
                "default",
                Auth::oauth2_refresh_token(
                    "https://a.test/t",
                    "c",
                    "s-long-enough",
                    "r-long-enough"
                )
            ),
            file(
                "connection='default'\nauth='oauth2-refresh-token'\ntoken_url='https://a.test/t'\n\
                  [secrets]\nclient_id='c'\nclient_secret='s-long-enough'\nrefresh_token='r-long-enough'"
            )
        );
        assert_ne!(
            ConnectionConfig::new("default", Auth::basic("u", "p-long-enough")),
            file(
                "connection='default'\nauth='basic'\n[secrets]\nusername='u'\npassword='p-other-value'"
            )
        );
    }

    #[test]
    fn a_basic_user_name_with_an_empty_password_is_the_secret() {
        let file = |user: &str| {
            format!(
                "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='{user}'\npassword=''"
            )
        };
        let key = "sk_test_4eC39HqLyjWDarjtT1zdp7dc";
        let bound = bind(AuthScheme::OperatorDefined, &file(key)).unwrap();
        let scrub = Scrubber::new([&bound], &Caches::default());
        assert_eq!(scrub.text(format!("id={key}")), format!("id={REDACTED}"));
        let err = bind(AuthScheme::OperatorDefined, &file("short"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("secret `username` is shorter than 8"), "{err}");
        let with_password = "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='alice'\npassword='p-long-enough'";
        let bound = bind(AuthScheme::OperatorDefined, with_password).unwrap();
        let scrub = Scrubber::new([&bound], &Caches::default());
        assert_eq!(
            scrub.text("user alice".into()),
            "user alice",
            "an identifier otherwise"
        );
    }

    #[test]
    fn credentials_go_only_to_the_base_origin() {
        let bound = bind(AuthScheme::OperatorDefined, "connection='default'\nauth='bearer'\nbase_url='https://api.a.test/v1'\n[secrets]\ntoken='t-long-enough'").unwrap();
        assert!(bound.may_authenticate(&Url::parse("https://api.a.test/other").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("http://api.a.test/v1").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("https://api.a.test:444/v1").unwrap()));
        assert!(!bound.may_authenticate(&Url::parse("https://evil.test/v1").unwrap()));
    }

    #[test]
    fn scrubber_removes_every_encoding() {
        let bound = bind(
            AuthScheme::OperatorDefined,
            "connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='alice'\npassword='p@ss w/rd+?'",
        )
        .unwrap();
        let scrub = Scrubber::new([&bound], &Caches::default());
        let basic = STANDARD.encode("alice:p@ss w/rd+?");
        let body = format!(
            "raw=p@ss w/rd+? b64={} url={} pct={} form={} basic={basic}",
            STANDARD.encode("p@ss w/rd+?"),
            URL_SAFE_NO_PAD.encode("p@ss w/rd+?"),
            percent_encoding::utf8_percent_encode(
                "p@ss w/rd+?",
                percent_encoding::NON_ALPHANUMERIC
            ),
            form_urlencoded::byte_serialize(b"p@ss w/rd+?").collect::<String>(),
        );
        let out = scrub.text(body);
        assert!(!out.contains("p@ss"), "{out}");
        assert!(!out.contains(&basic), "{out}");
        assert_eq!(out.matches(REDACTED).count(), 6, "{out}");
        assert_eq!(scrub.body(b"nothing here".to_vec()), b"nothing here");
    }

    #[test]
    fn bindings_are_kept_per_tenant_and_file_content_but_not_for_tokens() {
        let kept = KeptBindings::default();
        let tokens = TokenManager::default();
        let caches = Caches::default();
        let config = |text: &str| -> ConnectionConfig { toml::from_str(text).unwrap() };
        let bind = |tenant: &str, text: &str| {
            kept.bind(
                &spec(AuthScheme::OperatorDefined),
                config(text),
                tenant,
                &tokens,
                &caches,
            )
            .unwrap()
        };
        let bearer = "connection='default'\nauth='bearer'\nbase_url='https://a.test'\n[secrets]\ntoken='tok-1-abcdef'";
        let first = bind("t", bearer);
        assert!(
            std::sync::Arc::ptr_eq(&first, &bind("t", bearer)),
            "the same file binds once"
        );
        assert!(
            !std::sync::Arc::ptr_eq(&first, &bind("u", bearer)),
            "tenants never share a binding"
        );
        let rotated = bind("t", &bearer.replace("tok-1-abcdef", "tok-2-abcdef"));
        assert!(!std::sync::Arc::ptr_eq(&first, &rotated));
        assert_eq!(rotated.scrub[0].expose(), "tok-2-abcdef");
        assert_eq!(kept.len(), 3);
        let oauth = "connection='default'\nauth='oauth2-client-credentials'\nbase_url='https://a.test'\n\
                     token_url='https://a.test/token'\n[secrets]\nclient_id='c'\nclient_secret='s-long-enough'";
        assert!(
            !std::sync::Arc::ptr_eq(&bind("t", oauth), &bind("t", oauth)),
            "token schemes bind on every step"
        );
        let tls = "connection='default'\nauth='none'\nbase_url='https://a.test'\n[tls]\nverify_host=false";
        assert!(
            std::sync::Arc::ptr_eq(&bind("t", tls), &bind("t", tls)),
            "TLS settings naming no file are kept"
        );
        assert_eq!(kept.len(), 4);
        assert!(
            kept.bind(
                &spec(AuthScheme::Bearer),
                config("connection='default'\nauth='basic'\nbase_url='https://a.test'\n[secrets]\nusername='u'\npassword='p-long-enough'"),
                "t",
                &tokens,
                &caches
            )
            .is_err()
        );
        assert_eq!(kept.len(), 4, "a refused binding is not kept");
    }

    #[test]
    fn the_least_recently_used_binding_is_dropped_first() {
        let kept = KeptBindings::with_capacity(2);
        let (tokens, caches) = (TokenManager::default(), Caches::default());
        let bearer = "connection='default'\nauth='bearer'\nbase_url='https://a.test'\n[secrets]\ntoken='tok-1-abcdef'";
        let bind = |tenant: &str| {
            let config = toml::from_str(bearer).unwrap();
            kept.bind(
                &spec(AuthScheme::OperatorDefined),
                config,
                tenant,
                &tokens,
                &caches,
            )
            .unwrap()
        };
        let (a, b) = (bind("a"), bind("b"));
        assert!(std::sync::Arc::ptr_eq(&a, &bind("a")), "a is used again");
        bind("c");
        assert_eq!(kept.len(), 2);
        assert!(std::sync::Arc::ptr_eq(&a, &bind("a")), "a was kept");
        assert!(!std::sync::Arc::ptr_eq(&b, &bind("b")), "b was dropped");
    }

    #[test]
    fn scrubbers_share_an_automaton_per_secret_set_and_learn_new_secrets() {
        let text = "connection='default'\nauth='bearer'\nbase_url='https://a.test'\n[secrets]\ntoken='shared-tok-1'";
        let (host, other_host) = (Caches::default(), Caches::default());
        let (first, second, elsewhere) = (
            bind_with(&host, AuthScheme::OperatorDefined, text).unwrap(),
            bind_with(&host, AuthScheme::OperatorDefined, text).unwrap(),
            bind_with(&other_host, AuthScheme::OperatorDefined, text).unwrap(),
        );
        let (a, b) = (
            Scrubber::new([&first], &host),
            Scrubber::new([&second], &host),
        );
        let c = Scrubber::new([&elsewhere], &other_host);
        assert!(std::sync::Arc::ptr_eq(
            &a.matcher().unwrap(),
            &b.matcher().unwrap()
        ));
        assert!(
            !std::sync::Arc::ptr_eq(&a.matcher().unwrap(), &c.matcher().unwrap()),
            "another host builds its own automaton"
        );
        a.learn(&Secret::new("learned-access-tok"));
        assert_eq!(
            a.text("shared-tok-1 learned-access-tok".into()),
            format!("{REDACTED} {REDACTED}")
        );
        assert_eq!(
            b.text("learned-access-tok".into()),
            "learned-access-tok",
            "learning is per step"
        );
        b.learn(&Secret::new("learned-access-tok"));
        assert!(std::sync::Arc::ptr_eq(
            &a.matcher().unwrap(),
            &b.matcher().unwrap()
        ));
        c.learn(&Secret::new("learned-access-tok"));
        assert!(
            !std::sync::Arc::ptr_eq(&a.matcher().unwrap(), &c.matcher().unwrap()),
            "nor do learned secrets cross hosts"
        );
    }

    #[test]
    fn signing_keys_and_tls_material_are_built_once_per_host() {
        let text = "connection='default'\nauth='jwt'\nalgorithm='HS256'\nbase_url='https://a.test'\n\
                    [tls]\nverify_host=false\n[secrets]\nhmac_key='hmac-key-long-enough'";
        let (host, other_host) = (Caches::default(), Caches::default());
        let first = bind_with(&host, AuthScheme::OperatorDefined, text).unwrap();
        let tls = |b: &BoundConnection| b.tls.clone().unwrap();
        assert!(std::sync::Arc::ptr_eq(
            &tls(&first),
            &tls(&bind_with(&host, AuthScheme::OperatorDefined, text).unwrap())
        ));
        assert!(!std::sync::Arc::ptr_eq(
            &tls(&first),
            &tls(&bind_with(&other_host, AuthScheme::OperatorDefined, text).unwrap())
        ));
        assert_eq!((host.tls.len(), host.jwt_keys.len()), (1, 1));
        assert_eq!((other_host.tls.len(), other_host.jwt_keys.len()), (1, 1));
    }
}
