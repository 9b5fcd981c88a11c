//! The host's caches of what binding builds from a connection's secrets: one
//! [`Caches`] per [`crate::Host`], handed to binding and scrubbing.

use std::sync::Arc;

use super::jwt::SigningKey;
use super::scrub::Matcher;
use crate::shared::BoundedCache;
use crate::tls::ConnectionTls;

/// Loaded TLS configurations a host keeps (by the digest of their settings
/// and files' bytes).
pub(crate) const TLS_CONFIGS: usize = 256;

/// JWT signing keys a host keeps (by the digest of algorithm and key).
pub(crate) const JWT_KEYS: usize = 256;

/// Scrubber automata a host keeps (by the digest of their secret set; a step
/// that learns an access token makes a new set).
pub(crate) const MATCHERS: usize = 256;

/// What steps of one host share across bindings, each bounded and evicted
/// least recently used first (see [`crate::shared`] for what eviction wipes).
/// Kept bindings are per plugin ([`super::KeptBindings`]).
///
/// The token manager's cells ([`super::TokenManager`]) are not among them:
/// a cell is state, not a rebuildable value (the single-flight lock, a
/// rotated refresh token that a file-bound connection keeps only there, the
/// re-authorization flag), so evicting one would change behaviour. They are
/// per host too, one per tenant and connection id used, unbounded.
pub(crate) struct Caches {
    /// Connections' TLS material: steps binding the same `[tls]` content
    /// share one rustls configuration (and so one pool of connections).
    pub(crate) tls: BoundedCache<[u8; 32], Arc<ConnectionTls>>,
    /// Signing keys: steps binding the same key share it instead of parsing
    /// (and, for RSA, validating) it each time.
    pub(super) jwt_keys: BoundedCache<[u8; 32], Arc<SigningKey>>,
    /// Scrubber automata: steps binding the same secrets, and steps learning
    /// the same cached access token, share one. Shared with each step's
    /// scrubber, which learns secrets while the step runs.
    pub(super) matchers: Arc<BoundedCache<[u8; 32], Arc<Matcher>>>,
}

impl Default for Caches {
    fn default() -> Self {
        Self {
            tls: BoundedCache::new(TLS_CONFIGS),
            jwt_keys: BoundedCache::new(JWT_KEYS),
            matchers: Arc::new(BoundedCache::new(MATCHERS)),
        }
    }
}
