//! HTTPS with connection-level TLS: custom CA, client certificates (PEM,
//! encrypted PKCS#8, PKCS#12), relaxed verification behind the operator's
//! switch, and a pool keyed by TLS identity. Certificates are made with rcgen.

use std::future::Future;
use std::io;
use std::net::IpAddr;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;

use courier_host::{Host, HostBuilder, Outcome, Resolve, StepResult};
use courier_tests::{Reply, TestPki, TestServer, host_builder, host_with, scratch_dir};
use serde_json::json;

use crate::step;

async fn get(host: &Host, url: &str, connection: &str) -> StepResult {
    step(
        host,
        "http-request",
        "request",
        json!({"url": url}),
        &[connection],
    )
    .await
}

fn write(dir: &Path, name: &str, data: impl AsRef<[u8]>) -> String {
    let path = dir.join(name);
    std::fs::write(&path, data).unwrap();
    path.display().to_string().replace('\\', "/")
}

/// A connection file for `base` with this `[tls]` table body.
fn connection(base: &str, tls: &str) -> String {
    format!("connection = 'default'\nbase_url = '{base}'\nauth = 'none'\n[tls]\n{tls}")
}

fn ok_server_reply(_: &courier_tests::Received) -> Reply {
    Reply::json(200, json!({"ok": true}))
}

fn assert_tls_error(r: &StepResult) {
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    assert_eq!(r.error.as_ref().unwrap().kind, "tls", "{r:?}");
}

#[tokio::test]
async fn a_custom_ca_is_trusted_and_a_wrong_one_is_not() {
    let pki = TestPki::new("partner");
    let other = TestPki::new("stranger");
    let server = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let dir = scratch_dir("tls-ca");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let wrong = write(&dir, "wrong.pem", other.ca_pem());
    let host = host_with(host_builder(), &["http-request"]).await;
    let base = server.https_url("/");

    let r = get(
        &host,
        "/x",
        &connection(&base, &format!("ca_file = '{ca}'")),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    let r = get(
        &host,
        "/x",
        &connection(&base, &format!("ca_file = '{ca}'\nca_only = true")),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received().len(), 2);

    assert_tls_error(
        &get(
            &host,
            "/x",
            &connection(&base, &format!("ca_file = '{wrong}'")),
        )
        .await,
    );
    assert_tls_error(
        &get(
            &host,
            &server.https_url("/x"),
            "connection = 'default'\nauth = 'none'",
        )
        .await,
    );
    assert_eq!(
        server.received().len(),
        2,
        "no request passes an untrusted handshake"
    );
}

/// Steps binding the same connection file share its TLS material, but a CA
/// file replaced on disk is read by the very next step: trusting the new CA
/// only, it refuses the server the old one vouched for, and trusts it again
/// once the old CA is back.
#[tokio::test]
async fn a_replaced_ca_file_is_read_by_the_next_step() {
    let pki = TestPki::new("partner");
    let other = TestPki::new("stranger");
    let server = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let dir = scratch_dir("tls-ca-replaced");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = connection(
        &server.https_url("/"),
        &format!("ca_file = '{ca}'\nca_only = true"),
    );
    for _ in 0..2 {
        assert_eq!(get(&host, "/x", &conn).await.outcome, Outcome::Success);
    }
    write(&dir, "ca.pem", other.ca_pem());
    assert_tls_error(&get(&host, "/x", &conn).await);
    write(&dir, "ca.pem", pki.ca_pem());
    assert_eq!(get(&host, "/x", &conn).await.outcome, Outcome::Success);
    assert_eq!(server.received().len(), 3);
}

#[tokio::test]
async fn mtls_with_pem_encrypted_pkcs8_and_pkcs12_and_a_typed_error_without() {
    let pki = TestPki::new("mtls");
    let server = TestServer::start_tls(pki.server_config(true), ok_server_reply).await;
    let dir = scratch_dir("tls-mtls");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let cert = write(&dir, "client.pem", &pki.client_cert_pem);
    let key = write(&dir, "client.key", pki.client_key_pem());

    let encrypted = {
        let der = pki.client_key_der();
        let info = pkcs8::PrivateKeyInfoRef::try_from(der.as_slice()).unwrap();
        let params = pkcs8::pkcs5::pbes2::Parameters::generate_pbkdf2_sha256_aes256cbc(
            2048,
            b"test salt 123456",
            [7; 16],
        )
        .unwrap();
        let doc = info.encrypt_with_params(params, "key password").unwrap();
        doc.to_pem("ENCRYPTED PRIVATE KEY", pkcs8::LineEnding::LF)
            .unwrap()
    };
    let encrypted_key = write(&dir, "client-enc.key", encrypted.as_bytes());

    let p12 = {
        let chain = p12_keystore::PrivateKeyChain::new(
            b"client".to_vec(),
            p12_keystore::PrivateKey::from_der(&pki.client_key_der()).unwrap(),
            [
                p12_keystore::Certificate::from_der(&pem_der(&pki.client_cert_pem)).unwrap(),
                p12_keystore::Certificate::from_der(&pem_der(&pki.ca_pem())).unwrap(),
            ],
        );
        let mut store = p12_keystore::KeyStore::new();
        store.add_entry(
            "client",
            p12_keystore::KeyStoreEntry::PrivateKeyChain(chain),
        );
        store.writer("bundle password").write().unwrap()
    };
    let bundle = write(&dir, "client.p12", p12);

    let host = host_with(host_builder(), &["http-request"]).await;
    let base = server.https_url("/");
    for tls in [
        format!("ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{key}'"),
        format!(
            "ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{encrypted_key}'\nclient_key_password = 'key password'"
        ),
        format!("ca_file = '{ca}'\npkcs12_file = '{bundle}'\npkcs12_password = 'bundle password'"),
    ] {
        let r = get(&host, "/mtls", &connection(&base, &tls)).await;
        assert_eq!(r.outcome, Outcome::Success, "{tls}: {r:?}");
    }
    let received = server.received();
    assert_eq!(received.len(), 3);
    assert!(received.iter().all(|r| r.client_cert));

    assert_tls_error(
        &get(
            &host,
            "/mtls",
            &connection(&base, &format!("ca_file = '{ca}'")),
        )
        .await,
    );

    for (tls, why) in [
        (
            format!(
                "ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{encrypted_key}'\nclient_key_password = 'wrong'"
            ),
            "wrong password",
        ),
        (
            format!("ca_file = '{ca}'\npkcs12_file = '{bundle}'\npkcs12_password = 'wrong'"),
            "wrong password",
        ),
        (
            format!(
                "ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{encrypted_key}'"
            ),
            "client_key_password",
        ),
    ] {
        let r = get(&host, "/mtls", &connection(&base, &tls)).await;
        let error = r.error.unwrap();
        assert!(error.message.contains(why), "{tls}: {error:?}");
        assert!(
            !error.message.contains("wrong'") && !error.message.contains("bundle password"),
            "{error:?}"
        );
    }
    assert_eq!(server.received().len(), 3);
}

fn pem_der(pem: &str) -> Vec<u8> {
    pkcs8::der::pem::decode_vec(pem.as_bytes()).unwrap().1
}

#[tokio::test]
async fn pooled_connections_are_never_shared_between_tls_identities() {
    let pki = TestPki::new("pool");
    let other = TestPki::new("pool-other");
    let server = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let dir = scratch_dir("tls-pool");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let both = write(
        &dir,
        "both.pem",
        format!("{}{}", pki.ca_pem(), other.ca_pem()),
    );
    let host = host_with(host_builder(), &["http-request"]).await;
    let base = server.https_url("/");
    let tenant_a = connection(&base, &format!("ca_file = '{ca}'"));
    let tenant_b = connection(&base, &format!("ca_file = '{both}'"));

    for _ in 0..3 {
        assert_eq!(get(&host, "/a", &tenant_a).await.outcome, Outcome::Success);
    }
    assert_eq!(
        server.connections(),
        1,
        "one identity reuses its pooled connection"
    );
    assert_eq!(get(&host, "/b", &tenant_b).await.outcome, Outcome::Success);
    assert_eq!(
        server.connections(),
        2,
        "another identity opens its own connection"
    );
    assert_eq!(get(&host, "/a", &tenant_a).await.outcome, Outcome::Success);
    assert_eq!(server.connections(), 2);
}

#[tokio::test]
async fn the_client_certificate_stays_with_the_connections_origin() {
    let pki = TestPki::new("redirect");
    let elsewhere = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let target = elsewhere.https_url("/landing");
    let server = TestServer::start_tls(pki.server_config(true), move |_| Reply {
        status: 302,
        headers: vec![("location".into(), target.clone())],
        body: vec![],
    })
    .await;
    let dir = scratch_dir("tls-redirect");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let cert = write(&dir, "client.pem", &pki.client_cert_pem);
    let key = write(&dir, "client.key", pki.client_key_pem());
    let host = host_with(host_builder(), &["http-request"]).await;
    let conn = connection(
        &server.https_url("/"),
        &format!("ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{key}'"),
    );
    let r = get(&host, "/start", &conn).await;
    assert!(
        server.received()[0].client_cert,
        "the connection's origin gets the client certificate"
    );
    // The hop to another origin uses the host's default TLS: webpki roots, no
    // client certificate, so this test CA is not trusted there either.
    assert_tls_error(&r);
    assert_eq!(r.requests.len(), 2, "{r:?}");
    assert!(elsewhere.received().is_empty());
}

/// Resolves every name to 127.0.0.1.
struct Loopback;

impl Resolve for Loopback {
    fn resolve(
        &self,
        _: &str,
    ) -> Pin<Box<dyn Future<Output = io::Result<Vec<IpAddr>>> + Send + '_>> {
        Box::pin(async { Ok(vec![IpAddr::from([127, 0, 0, 1])]) })
    }
}

fn loopback_builder() -> HostBuilder {
    host_builder().resolver(Arc::new(Loopback))
}

#[tokio::test]
async fn relaxed_verification_needs_the_operators_switch_and_is_marked() {
    let pki = TestPki::new("relaxed");
    let server = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let dir = scratch_dir("tls-relaxed");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    // A name the certificate does not carry.
    let base = format!("https://elsewhere.test:{}/", server.addr.port());
    let any_host = connection(&base, &format!("ca_file = '{ca}'\nverify_host = false"));
    let any_peer = connection(&base, "verify_peer = false");

    let strict = host_with(loopback_builder(), &["http-request"]).await;
    assert_tls_error(
        &get(
            &strict,
            "/x",
            &connection(&base, &format!("ca_file = '{ca}'")),
        )
        .await,
    );
    for conn in [&any_host, &any_peer] {
        let r = get(&strict, "/x", conn).await;
        assert_eq!(r.outcome, Outcome::Denied, "{r:?}");
    }
    assert!(server.received().is_empty());

    let lenient = host_with(
        loopback_builder().allow_insecure_tls(true),
        &["http-request"],
    )
    .await;
    for conn in [&any_host, &any_peer] {
        let r = get(&lenient, "/x", conn).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        assert!(r.requests[0].insecure, "{r:?}");
    }
    let r = get(
        &lenient,
        "/x",
        &connection(&server.https_url("/"), &format!("ca_file = '{ca}'")),
    )
    .await;
    assert!(
        !r.requests[0].insecure,
        "full verification is not marked: {r:?}"
    );
}

#[tokio::test]
async fn client_certificate_auth_presents_the_certificate_to_its_origin_only() {
    let pki = TestPki::new("cert-auth");
    let server = TestServer::start_tls(pki.server_config(true), ok_server_reply).await;
    let dir = scratch_dir("tls-cert-auth");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let cert = write(&dir, "client.pem", &pki.client_cert_pem);
    let key = write(&dir, "client.key", pki.client_key_pem());
    let host = host_with(host_builder(), &["http-request"]).await;
    let base = server.https_url("/");
    let file = |tls: &str| {
        format!(
            "connection = 'default'\nbase_url = '{base}'\nauth = 'client-certificate'\n[tls]\n{tls}"
        )
    };

    let r = get(
        &host,
        "/with-cert",
        &file(&format!(
            "ca_file = '{ca}'\nclient_cert_file = '{cert}'\nclient_key_file = '{key}'"
        )),
    )
    .await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert!(
        server.received()[0].client_cert,
        "the server saw the client certificate"
    );

    let r = get(&host, "/no-cert", &file(&format!("ca_file = '{ca}'"))).await;
    assert_eq!(r.outcome, Outcome::Error, "{r:?}");
    let err = r.error.unwrap();
    assert_eq!(err.kind, "invalid-step", "{err:?}");
    assert!(err.message.contains("client-certificate needs"), "{err:?}");
    assert_eq!(
        server.received().len(),
        1,
        "nothing was sent without the certificate"
    );
}

/// HTTPS offers HTTP/2 by default; `HostBuilder::http2(false)` keeps it on
/// HTTP/1.1, and a connection's `[tls]` `http2` overrides the host for the
/// connection's origins, each choice on its own pooled connection.
#[tokio::test]
async fn http2_is_offered_unless_the_host_or_the_connection_turns_it_off() {
    let pki = TestPki::new("h2");
    let server = TestServer::start_tls(pki.server_config(false), ok_server_reply).await;
    let dir = scratch_dir("tls-http2");
    let ca = write(&dir, "ca.pem", pki.ca_pem());
    let base = server.https_url("/");
    let with = |extra: &str| connection(&base, &format!("ca_file = '{ca}'\n{extra}"));
    let offering = host_with(host_builder(), &["http-request"]).await;
    let http1 = host_with(host_builder().http2(false), &["http-request"]).await;
    let cases = [
        (&offering, "", http::Version::HTTP_2),
        (&offering, "http2 = false", http::Version::HTTP_11),
        (&http1, "", http::Version::HTTP_11),
        (&http1, "http2 = true", http::Version::HTTP_2),
        (&offering, "", http::Version::HTTP_2),
    ];
    for (i, (host, extra, version)) in cases.into_iter().enumerate() {
        let r = get(host, "/x", &with(extra)).await;
        assert_eq!(r.outcome, Outcome::Success, "{r:?}");
        let received = server.received();
        assert_eq!(
            (received.len(), received[i].version),
            (i + 1, version),
            "case {i}: `{extra}`"
        );
    }
    assert_eq!(
        server.connections(),
        4,
        "each host and HTTP/2 choice has its own connection; the last case reused the first's"
    );
}

/// `http2` concerns HTTPS only: cleartext requests stay on HTTP/1.1 (no
/// `h2c`), whatever the connection asks for.
#[tokio::test]
async fn http2_never_applies_to_cleartext() {
    let server = TestServer::start(ok_server_reply).await;
    let host = host_with(host_builder(), &["http-request"]).await;
    let r = get(&host, "/x", &connection(&server.url("/"), "http2 = true")).await;
    assert_eq!(r.outcome, Outcome::Success, "{r:?}");
    assert_eq!(server.received()[0].version, http::Version::HTTP_11);
}
