//! TLS client configurations for the outbound client (rustls with ring).

use std::sync::Arc;

use rustls::{ClientConfig, RootCertStore};

/// The rustls client configuration every request uses unless its connection
/// says otherwise: webpki roots, TLS 1.2 and 1.3, ALPN `h2` then `http/1.1`.
pub(crate) fn default_client_config() -> Arc<ClientConfig> {
    let roots = RootCertStore { roots: webpki_roots::TLS_SERVER_ROOTS.to_vec() };
    let mut config = ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .expect("ring supports the default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Arc::new(config)
}
