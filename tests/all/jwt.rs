//! JWTs signed by the host: the upstream verifies the signature and claims;
//! the plugin never sees the token or the key.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use courier_host::Outcome;
use courier_tests::{Reply, TestServer, form_pairs, host_builder, host_with};
use ring::signature::{self, EcdsaKeyPair, KeyPair, RsaKeyPair};
use serde_json::{Value, json};

use crate::auth::{CANARY, assert_no_leak};
use crate::step;

const RSA_KEY: &str = include_str!("../fixtures/jwt-rs256-test-key.pem");
const EC_KEY: &str = include_str!("../fixtures/jwt-es256-test-key.pem");

fn der(pem: &str) -> Vec<u8> {
    let b64: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    STANDARD.decode(b64).unwrap()
}

/// Checks the JWT's signature with `verify` and returns its header and claims.
fn open(jwt: &str, verify: impl Fn(&[u8], &[u8]) -> bool) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let signing_input = format!("{}.{}", parts[0], parts[1]);
    assert!(
        verify(
            signing_input.as_bytes(),
            &URL_SAFE_NO_PAD.decode(parts[2]).unwrap()
        ),
        "bad signature"
    );
    let decode =
        |p: &str| serde_json::from_slice::<Value>(&URL_SAFE_NO_PAD.decode(p).unwrap()).unwrap();
    (decode(parts[0]), decode(parts[1]))
}

fn bearer(r: &courier_tests::Received) -> String {
    r.header("authorization")
        .unwrap()
        .strip_prefix("Bearer ")
        .unwrap()
        .to_owned()
}

fn jwt_connection(base: &str, settings: &str, secret: &str) -> String {
    format!(
        "connection = 'default'\nbase_url = '{base}'\nauth = 'jwt'\n{settings}\n[secrets]\n{secret}"
    )
}

#[tokio::test]
async fn hs256_bearer_with_claims_template() {
    let api = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = jwt_connection(
        &api.url(""),
        "algorithm = 'HS256'\nlifetime_secs = 600\n[claims]\niss = 'courier'\nsub = 'svc-1'\naud = 'https://api.test'\nnbf = '{now}'",
        &format!("hmac_key = '''{CANARY}'''"),
    );
    for _ in 0..2 {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": "/me"}),
            &[&conn],
        )
        .await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let jwt = bearer(&api.received()[0]);
        assert_no_leak(&r, &[CANARY, &jwt]);
    }
    let got = api.received();
    let jwt = bearer(&got[0]);
    assert_eq!(
        bearer(&got[1]),
        jwt,
        "the signed token is reused until it nears expiry"
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, CANARY.as_bytes());
    let (header, claims) = open(&jwt, |m, s| ring::hmac::verify(&key, m, s).is_ok());
    assert_eq!(header, json!({"alg": "HS256", "typ": "JWT"}));
    assert_eq!(
        (
            claims["iss"].as_str(),
            claims["sub"].as_str(),
            claims["aud"].as_str()
        ),
        (Some("courier"), Some("svc-1"), Some("https://api.test"))
    );
    let (iat, exp) = (
        claims["iat"].as_u64().unwrap(),
        claims["exp"].as_u64().unwrap(),
    );
    assert_eq!(exp - iat, 600);
    assert_eq!(claims["nbf"].as_u64(), Some(iat));
}

#[tokio::test]
async fn rs256_bearer_verifies_with_the_public_key() {
    let api = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = jwt_connection(
        &api.url(""),
        "algorithm = 'RS256'\n[claims]\niss = 'courier'",
        &format!("private_key = '''{RSA_KEY}'''"),
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let public = RsaKeyPair::from_pkcs8(&der(RSA_KEY))
        .unwrap()
        .public()
        .as_ref()
        .to_vec();
    let key = signature::UnparsedPublicKey::new(&signature::RSA_PKCS1_2048_8192_SHA256, public);
    let jwt = bearer(&api.received()[0]);
    let (header, claims) = open(&jwt, |m, s| key.verify(m, s).is_ok());
    assert_eq!(header["alg"], "RS256");
    assert_eq!(claims["iss"], "courier");
    assert_eq!(
        claims["exp"].as_u64().unwrap() - claims["iat"].as_u64().unwrap(),
        3600
    );
    assert_no_leak(&r, &[&jwt]);
    let key_body: String = RSA_KEY
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .collect();
    assert!(!serde_json::to_string(&r).unwrap().contains(&key_body[..40]));
}

#[tokio::test]
async fn es256_exchanged_at_a_token_url() {
    let tokens = TestServer::start(|_| {
        Reply::json(
            200,
            json!({"access_token": "at-from-jwt", "expires_in": 3600}),
        )
    })
    .await;
    let api = TestServer::echo().await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = jwt_connection(
        &api.url(""),
        &format!(
            "algorithm = 'ES256'\ntoken_url = '{}'\nscopes = ['crm']\n[claims]\niss = 'svc@courier'\naud = '{}'",
            tokens.url("/token"),
            tokens.url("/token")
        ),
        &format!("private_key = '''{EC_KEY}'''"),
    );
    let r = step(
        &host,
        "http-request",
        "request",
        json!({"url": "/me"}),
        &[&conn],
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(
        api.received()[0].header("authorization"),
        Some("Bearer at-from-jwt")
    );
    let form = form_pairs(&tokens.received()[0].body);
    assert_eq!(
        form[0],
        (
            "grant_type".into(),
            "urn:ietf:params:oauth:grant-type:jwt-bearer".into()
        )
    );
    assert_eq!(form[2], ("scope".into(), "crm".into()));
    let rng = ring::rand::SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(
        &signature::ECDSA_P256_SHA256_FIXED_SIGNING,
        &der(EC_KEY),
        &rng,
    )
    .unwrap();
    let key = signature::UnparsedPublicKey::new(
        &signature::ECDSA_P256_SHA256_FIXED,
        pair.public_key().as_ref().to_vec(),
    );
    assert_eq!(form[1].0, "assertion");
    let (header, claims) = open(&form[1].1, |m, s| key.verify(m, s).is_ok());
    assert_eq!(header["alg"], "ES256");
    assert_eq!(claims["aud"], tokens.url("/token"));
    assert_no_leak(&r, &["at-from-jwt", &form[1].1]);
}

#[tokio::test]
async fn a_wrong_key_is_refused_when_binding() {
    let host = host_with(host_builder(), &["http-request"]).await;
    for (settings, secret, named) in [
        (
            "algorithm = 'RS256'",
            format!("private_key = '''{EC_KEY}'''"),
            "not an RSA",
        ),
        (
            "algorithm = 'HS256'",
            format!("private_key = '''{RSA_KEY}'''"),
            "hmac_key",
        ),
        (
            "algorithm = 'ES256'",
            "private_key = 'not a pem'".to_owned(),
            "PKCS#8",
        ),
        (
            "algorithm = 'RS256'\nexchange = { kind = 'bearer' }",
            format!("private_key = '''{RSA_KEY}'''"),
            "`exchange` needs a `token_url`",
        ),
        (
            "algorithm = 'RS256'\ntoken_url = 'https://a.test/t'\nscopes = ['x']\nexchange = { kind = 'bearer' }",
            format!("private_key = '''{RSA_KEY}'''"),
            "`scopes` are for the `assertion` exchange",
        ),
    ] {
        let r = step(
            &host,
            "http-request",
            "request",
            json!({"url": "/"}),
            &[&jwt_connection("https://a.test", settings, &secret)],
        )
        .await;
        let e = r.error.expect("binding fails");
        assert!(
            e.message.contains(named),
            "{} should say {named}",
            e.message
        );
    }
}
