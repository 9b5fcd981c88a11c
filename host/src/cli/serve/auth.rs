//! API tokens: high-entropy random values, kept only as SHA-256 hashes and
//! compared in constant time. A tenant token reads `ctk_<id>_<secret>`: the
//! id finds the record, the secret's hash must match it.

use courier_host::Secret;
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// Who a request's bearer token says the caller is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Caller {
    /// The operator: every endpoint, every tenant.
    Admin,
    /// A tenant's token: that tenant's endpoints only.
    Tenant(String),
}

impl Caller {
    /// Whether the caller may see `tenant` (others are answered 404).
    pub(crate) fn sees(&self, tenant: &str) -> bool {
        match self {
            Caller::Admin => true,
            Caller::Tenant(t) => t == tenant,
        }
    }
}

/// 32 random bytes, hex.
pub(crate) fn random_token() -> anyhow::Result<String> {
    Ok(hex::encode(random_bytes::<32>()?))
}

/// `N` bytes from the system's random source.
pub(crate) fn random_bytes<const N: usize>() -> anyhow::Result<[u8; N]> {
    let mut bytes = [0u8; N];
    SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| anyhow::anyhow!("no system randomness"))?;
    Ok(bytes)
}

/// The SHA-256 hash of a token, hex, as stored and compared.
pub(crate) fn hash(token: &str) -> Secret {
    Secret::new(hex::encode(Sha256::digest(token.as_bytes())))
}

/// Whether `presented` hashes to `stored`; the comparison takes the same
/// time wherever the hashes differ.
pub(crate) fn matches(presented: &str, stored: &Secret) -> bool {
    hash(presented) == *stored
}

/// A new tenant token: (record id, the token as handed out once).
pub(crate) fn new_tenant_token() -> anyhow::Result<(String, String)> {
    let id = hex::encode(random_bytes::<8>()?);
    let secret = random_token()?;
    Ok((id.clone(), format!("ctk_{id}_{secret}")))
}

/// The record id of a token of the `ctk_<id>_<secret>` form.
pub(crate) fn token_id(token: &str) -> Option<&str> {
    let rest = token.strip_prefix("ctk_")?;
    let (id, secret) = rest.split_once('_')?;
    (id.len() == 16 && !secret.is_empty()).then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_hash_and_match() {
        let (id, token) = new_tenant_token().unwrap();
        assert_eq!(token_id(&token), Some(id.as_str()));
        let stored = hash(&token);
        assert!(matches(&token, &stored));
        assert!(!matches(&format!("{token}x"), &stored));
        assert_eq!(token_id("ctk_short_x"), None);
        assert_eq!(token_id("Bearer"), None);
    }
}
