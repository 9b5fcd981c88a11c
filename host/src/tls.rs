//! TLS for the outbound client (rustls with ring): the default client
//! configuration, and a connection's own TLS material from the `[tls]` table
//! of its connection file (custom CA, client certificate as PEM, encrypted
//! PKCS#8 or PKCS#12, relaxed verification where the operator allows it).

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkcs8::EncryptedPrivateKeyInfoRef;
use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::WebPkiSupportedAlgorithms;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::secret::Secret;
use crate::shared::BoundedCache;

/// The `[tls]` table of a connection file (operator side). Paths are read
/// when the connection is bound to a step.
///
/// ```toml
/// [tls]
/// ca_file = "/etc/courier/partner-ca.pem"   # PEM, added to the webpki roots
/// ca_only = true                            # trust only ca_file
/// # system_roots = true                     # (not with ca_only) also trust the platform's roots
/// client_cert_file = "client.pem"           # PEM chain, leaf first
/// client_key_file = "client.key"            # PEM: PKCS#8, encrypted PKCS#8, PKCS#1 or SEC1
/// client_key_password = "..."               # for an encrypted PKCS#8 key
/// # pkcs12_file = "client.p12"              # or a PKCS#12 bundle instead of the PEM pair
/// # pkcs12_password = "..."
/// verify_host = true                        # false/false take effect only where the
/// verify_peer = true                        # operator allows insecure TLS
/// # http2 = false                           # offer only HTTP/1.1 (default: the host's choice)
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// Trusted CA certificates (PEM), added to the webpki roots.
    pub ca_file: Option<PathBuf>,
    /// Trust only `ca_file`, not the webpki roots.
    #[serde(default)]
    pub ca_only: bool,
    /// Also trust the platform's roots (the system certificate store, or the
    /// file named by `SSL_CERT_FILE`), read when the connection is first bound.
    #[serde(default)]
    pub system_roots: bool,
    /// The client certificate chain (PEM), leaf first.
    pub client_cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    pub client_key_file: Option<PathBuf>,
    /// The password of an encrypted PKCS#8 `client_key_file`.
    pub client_key_password: Option<Secret>,
    /// A PKCS#12 bundle with the client certificate chain and key.
    pub pkcs12_file: Option<PathBuf>,
    /// The password of `pkcs12_file`.
    pub pkcs12_password: Option<Secret>,
    /// Check that the certificate names the host (default true).
    pub verify_host: Option<bool>,
    /// Check the certificate chain at all (default true).
    pub verify_peer: Option<bool>,
    /// Offer HTTP/2 to the connection's origins (ALPN `h2` before
    /// `http/1.1`); `false` keeps them on HTTP/1.1. Default: the host's
    /// setting ([`crate::HostBuilder::http2`], on).
    pub http2: Option<bool>,
}

/// A connection's TLS material could not be loaded.
#[derive(Debug, thiserror::Error)]
#[error("[tls]: {0}")]
pub(crate) struct TlsError(String);

fn fail(message: impl Into<String>) -> TlsError {
    TlsError(message.into())
}

/// How the server's certificate is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verification {
    /// Chain and host name (the default).
    Full,
    /// Chain only (`verify_host = false`).
    ChainOnly,
    /// Nothing (`verify_peer = false`).
    None,
}

impl TlsSettings {
    /// Whether the table names a client certificate (PEM files or PKCS#12).
    pub(crate) fn names_client_certificate(&self) -> bool {
        self.client_cert_file.is_some() || self.pkcs12_file.is_some()
    }

    /// The files the table names, which loading reads.
    pub(crate) fn files(&self) -> impl Iterator<Item = &Path> {
        [
            &self.ca_file,
            &self.client_cert_file,
            &self.client_key_file,
            &self.pkcs12_file,
        ]
        .into_iter()
        .flatten()
        .map(PathBuf::as_path)
    }
}

/// A connection's loaded TLS configuration: the rustls client configuration
/// for its origins and the identity that keys the connection pool.
pub(crate) struct ConnectionTls {
    config: Arc<ClientConfig>,
    identity: [u8; 32],
    verification: Verification,
}

impl fmt::Debug for ConnectionTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionTls")
            .field("verification", &self.verification)
            .finish_non_exhaustive()
    }
}

impl ConnectionTls {
    /// Loads the material a `[tls]` table names; `None` when it names nothing.
    /// An unchanged configuration is built once per host and kept in
    /// `loaded`, so steps binding the same connection share one rustls
    /// configuration (and so one pool of connections).
    pub(crate) fn load(
        settings: &TlsSettings,
        loaded: &BoundedCache<[u8; 32], Arc<Self>>,
    ) -> Result<Option<Arc<Self>>, TlsError> {
        let verification = match (
            settings.verify_peer.unwrap_or(true),
            settings.verify_host.unwrap_or(true),
        ) {
            (false, _) => Verification::None,
            (true, false) => Verification::ChainOnly,
            (true, true) => Verification::Full,
        };
        if settings.ca_only && settings.ca_file.is_none() {
            return Err(fail("`ca_only` needs a `ca_file`"));
        }
        if settings.ca_only && settings.system_roots {
            return Err(fail("`ca_only` and `system_roots` exclude each other"));
        }
        let source = ClientSource::of(settings)?;
        if settings.ca_file.is_none()
            && !settings.system_roots
            && matches!(source, ClientSource::None)
            && verification == Verification::Full
        {
            return Ok(None);
        }
        // The identity digests the settings and the files' bytes: an unchanged
        // configuration is parsed, decrypted and built once, then shared.
        let read_opt = |path: &Option<PathBuf>| path.as_deref().map(read).transpose();
        let files = Files {
            ca: read_opt(&settings.ca_file)?,
            cert: read_opt(&settings.client_cert_file)?,
            key: read_opt(&settings.client_key_file)?,
            pkcs12: read_opt(&settings.pkcs12_file)?,
        };
        let mut digest = Sha256::new();
        digest.update(b"courier-tls-v1");
        for part in [&files.ca, &files.cert, &files.key, &files.pkcs12] {
            digest.update(Sha256::digest(bytes(part)));
        }
        for password in [&settings.client_key_password, &settings.pkcs12_password] {
            digest.update(Sha256::digest(
                password.as_ref().map(Secret::expose).unwrap_or_default(),
            ));
        }
        digest.update([
            u8::from(settings.ca_only),
            u8::from(settings.system_roots),
            verification as u8,
        ]);
        let identity: [u8; 32] = digest.finalize().into();
        loaded
            .get_or_build(identity, || {
                Self::build(settings, &files, &source, verification, identity).map(Arc::new)
            })
            .map(Some)
    }

    fn build(
        settings: &TlsSettings,
        files: &Files,
        source: &ClientSource<'_>,
        verification: Verification,
        identity: [u8; 32],
    ) -> Result<Self, TlsError> {
        let mut roots = RootCertStore::empty();
        if !settings.ca_only {
            roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
        }
        if settings.system_roots {
            let native = rustls_native_certs::load_native_certs();
            if native.certs.is_empty() {
                let why = native
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_else(|| "none found".into());
                return Err(fail(format!(
                    "`system_roots`: cannot read the platform's roots: {why}"
                )));
            }
            let (added, _unusable) = roots.add_parsable_certificates(native.certs);
            tracing::debug!(added, "platform roots trusted for a connection");
        }
        if let (Some(path), Some(data)) = (&settings.ca_file, &files.ca) {
            for cert in parse_certs(path, data)? {
                roots.add(cert).map_err(|e| {
                    fail(format!(
                        "{}: not a usable CA certificate: {e}",
                        path.display()
                    ))
                })?;
            }
        }
        let client = source.identity(settings, files)?;
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions");
        let roots = Arc::new(roots);
        let builder = match verification {
            Verification::Full => builder.with_root_certificates(roots),
            Verification::ChainOnly => {
                let inner = WebPkiServerVerifier::builder_with_provider(roots, provider)
                    .build()
                    .map_err(|e| fail(format!("cannot build the certificate verifier: {e}")))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyHostName(inner)))
            }
            Verification::None => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                    provider.signature_verification_algorithms,
                ))),
        };
        let mut config = match client {
            Some((chain, key)) => builder.with_client_auth_cert(chain, key).map_err(|e| {
                fail(format!(
                    "the client certificate and key do not fit together: {e}"
                ))
            })?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = alpn();
        Ok(Self {
            config: Arc::new(config),
            identity,
            verification,
        })
    }

    /// The rustls configuration for this connection's origins.
    pub(crate) fn config(&self) -> Arc<ClientConfig> {
        self.config.clone()
    }

    /// A digest of everything that makes a TLS connection this connection's:
    /// roots, client certificate and key (their files' bytes and passwords),
    /// verification mode. Pooled
    /// connections are shared only between equal identities.
    pub(crate) fn identity(&self) -> [u8; 32] {
        self.identity
    }

    /// Whether verification is relaxed (`verify_host` or `verify_peer` off).
    pub(crate) fn is_insecure(&self) -> bool {
        self.verification != Verification::Full
    }
}

/// The rustls client configuration every request uses unless its connection
/// says otherwise: webpki roots, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub(crate) fn default_client_config() -> Arc<ClientConfig> {
    let roots = RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    };
    let mut config =
        ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("ring supports the default protocol versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
    config.alpn_protocols = alpn();
    Arc::new(config)
}

fn alpn() -> Vec<Vec<u8>> {
    vec![b"h2".to_vec(), b"http/1.1".to_vec()]
}

/// `config` as it is when `http2`, else a copy offering only `http/1.1` by
/// ALPN, so that the server never picks HTTP/2.
pub(crate) fn offering_http2(config: Arc<ClientConfig>, http2: bool) -> Arc<ClientConfig> {
    if http2 {
        return config;
    }
    let mut http1 = (*config).clone();
    http1.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(http1)
}

fn bytes(file: &Option<Zeroizing<Vec<u8>>>) -> &[u8] {
    file.as_deref().map(Vec::as_slice).unwrap_or_default()
}

/// The bytes of the files a `[tls]` table names.
struct Files {
    ca: Option<Zeroizing<Vec<u8>>>,
    cert: Option<Zeroizing<Vec<u8>>>,
    key: Option<Zeroizing<Vec<u8>>>,
    pkcs12: Option<Zeroizing<Vec<u8>>>,
}

fn read(path: &Path) -> Result<Zeroizing<Vec<u8>>, TlsError> {
    std::fs::read(path)
        .map(Zeroizing::new)
        .map_err(|e| fail(format!("cannot read {}: {e}", path.display())))
}

fn parse_certs(path: &Path, data: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(data)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| fail(format!("{}: invalid PEM: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(fail(format!("{}: no certificate found", path.display())));
    }
    Ok(certs)
}

type ClientIdentity = (Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// Where the client certificate comes from, as the `[tls]` table says.
enum ClientSource<'a> {
    /// No client certificate.
    None,
    /// A PEM certificate chain and key.
    Pem { cert: &'a Path, key: &'a Path },
    /// A PKCS#12 bundle.
    Pkcs12(&'a Path),
}

impl<'a> ClientSource<'a> {
    /// Checks the combination of keys before any file is read.
    fn of(s: &'a TlsSettings) -> Result<Self, TlsError> {
        match (&s.client_cert_file, &s.client_key_file, &s.pkcs12_file) {
            (None, None, None)
                if s.client_key_password.is_some() || s.pkcs12_password.is_some() =>
            {
                Err(fail("a password is set but no key file"))
            }
            (None, None, None) => Ok(Self::None),
            (Some(cert), Some(key), None) => Ok(Self::Pem { cert, key }),
            (None, None, Some(p12)) => Ok(Self::Pkcs12(p12)),
            (Some(_), None, None) | (None, Some(_), None) => {
                Err(fail("`client_cert_file` and `client_key_file` go together"))
            }
            _ => Err(fail(
                "use either `pkcs12_file` or `client_cert_file` + `client_key_file`, not both",
            )),
        }
    }

    /// The client certificate chain and key, parsed from the files' bytes.
    fn identity(&self, s: &TlsSettings, files: &Files) -> Result<Option<ClientIdentity>, TlsError> {
        Ok(match self {
            Self::None => None,
            Self::Pem { cert, key } => Some((
                parse_certs(cert, bytes(&files.cert))?,
                parse_key(key, bytes(&files.key), s.client_key_password.as_ref())?,
            )),
            Self::Pkcs12(p12) => Some(pkcs12_identity(
                p12,
                bytes(&files.pkcs12),
                s.pkcs12_password.as_ref(),
            )?),
        })
    }
}

/// A PEM private key; an `ENCRYPTED PRIVATE KEY` (PKCS#8, PBES2) needs its password.
fn parse_key(
    path: &Path,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<PrivateKeyDer<'static>, TlsError> {
    let invalid = |e: &dyn fmt::Display| fail(format!("{}: invalid key: {e}", path.display()));
    if let Ok((label, der)) = pkcs8::der::pem::decode_vec(data)
        && label == "ENCRYPTED PRIVATE KEY"
    {
        let der = Zeroizing::new(der);
        let password = password.ok_or_else(|| {
            fail(format!(
                "{} is encrypted: set `client_key_password`",
                path.display()
            ))
        })?;
        let info = EncryptedPrivateKeyInfoRef::try_from(der.as_slice()).map_err(|e| invalid(&e))?;
        let plain = info.decrypt(password.expose().as_bytes()).map_err(|_| {
            fail(format!(
                "{}: cannot decrypt the key (wrong password?)",
                path.display()
            ))
        })?;
        return Ok(PrivatePkcs8KeyDer::from(plain.as_bytes().to_vec()).into());
    }
    if password.is_some() {
        return Err(fail(format!(
            "{} is not an encrypted PKCS#8 key, yet `client_key_password` is set",
            path.display()
        )));
    }
    PrivateKeyDer::from_pem_slice(data).map_err(|e| invalid(&e))
}

fn pkcs12_identity(
    path: &Path,
    data: &[u8],
    password: Option<&Secret>,
) -> Result<ClientIdentity, TlsError> {
    let password = password.map(Secret::expose).unwrap_or_default();
    let store = p12_keystore::KeyStore::from_pkcs12(
        data,
        password,
        p12_keystore::Pkcs12ImportPolicy::Relaxed,
    )
    .map_err(|e| {
        fail(format!(
            "{}: cannot open the PKCS#12 bundle (wrong password?): {e}",
            path.display()
        ))
    })?;
    let (_, chain) = store.private_key_chain().ok_or_else(|| {
        fail(format!(
            "{}: the bundle holds no private key",
            path.display()
        ))
    })?;
    let certs = chain
        .certs()
        .iter()
        .map(|c| CertificateDer::from(c.as_der().to_vec()))
        .collect();
    let key = PrivatePkcs8KeyDer::from(chain.key().as_der().to_vec()).into();
    Ok((certs, key))
}

/// Checks the chain but accepts any host name (`verify_host = false`).
#[derive(Debug)]
struct AnyHostName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyHostName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

/// Accepts any certificate (`verify_peer = false`); handshake signatures are
/// still checked, so the peer must hold the key of what it presents.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(settings: &TlsSettings) -> Result<Option<Arc<ConnectionTls>>, TlsError> {
        ConnectionTls::load(settings, &BoundedCache::new(4))
    }

    #[test]
    fn an_empty_table_is_the_default_configuration() {
        assert!(load(&TlsSettings::default()).unwrap().is_none());
    }

    #[test]
    fn inconsistent_tables_are_refused() {
        let only = TlsSettings {
            ca_only: true,
            ..TlsSettings::default()
        };
        assert!(load(&only).is_err());
        let half = TlsSettings {
            client_cert_file: Some("c.pem".into()),
            ..TlsSettings::default()
        };
        assert!(load(&half).unwrap_err().to_string().contains("go together"));
    }

    #[test]
    fn relaxed_verification_is_insecure_and_keys_its_own_pool() {
        let host = load(&TlsSettings {
            verify_host: Some(false),
            ..TlsSettings::default()
        })
        .unwrap()
        .unwrap();
        let peer = load(&TlsSettings {
            verify_peer: Some(false),
            ..TlsSettings::default()
        })
        .unwrap()
        .unwrap();
        assert!(host.is_insecure() && peer.is_insecure());
        assert_ne!(host.identity(), peer.identity());
    }

    #[test]
    fn an_unchanged_configuration_is_built_once() {
        let settings = || TlsSettings {
            verify_host: Some(false),
            ..TlsSettings::default()
        };
        let (host, other_host) = (BoundedCache::new(4), BoundedCache::new(4));
        let first = ConnectionTls::load(&settings(), &host).unwrap().unwrap();
        let again = ConnectionTls::load(&settings(), &host).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first, &again));
        let other = ConnectionTls::load(&settings(), &other_host)
            .unwrap()
            .unwrap();
        assert!(!Arc::ptr_eq(&first, &other), "each host builds its own");
        assert_eq!(first.identity(), other.identity());
    }
}
