//! JWTs signed by the host (HS256, RS256, ES256) from a claims template.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::SystemRandom;
use ring::signature::{
    ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, RSA_PKCS1_SHA256, RsaKeyPair,
};
use serde_json::{Map, Value};

use super::tokens::fingerprint;
use crate::manifest::JwtAlgorithm;
use crate::secret::Secret;
use crate::shared::BoundedCache;

/// The key a JWT is signed with. The host keeps them per key secret
/// ([`super::Caches::jwt_keys`]): steps binding the same key share it instead
/// of parsing (and, for RSA, validating) it each time. Like the TLS client
/// keys, they stay in memory between steps; ring does not zeroize them when
/// they are dropped (see [`crate::shared`]).
pub(crate) enum SigningKey {
    Hmac(ring::hmac::Key),
    Rsa(RsaKeyPair),
    Ecdsa(EcdsaKeyPair),
}

impl SigningKey {
    /// Parses the key `secret` holds for `algorithm`: the HMAC key itself, or
    /// a PKCS#8 PEM private key (for RS256 also a PKCS#1 one, `BEGIN RSA
    /// PRIVATE KEY`, the form GitHub hands out an app's key in).
    fn new(algorithm: JwtAlgorithm, secret: &Secret) -> Result<Self, String> {
        Ok(match algorithm {
            JwtAlgorithm::Hs256 => Self::Hmac(ring::hmac::Key::new(
                ring::hmac::HMAC_SHA256,
                secret.expose().as_bytes(),
            )),
            JwtAlgorithm::Rs256 => Self::Rsa(match pem_der(secret, PKCS1_LABEL) {
                Ok(der) => RsaKeyPair::from_der(&der)
                    .map_err(|e| format!("`private_key` is not an RSA PKCS#1 key: {e}"))?,
                Err(_) => RsaKeyPair::from_pkcs8(&pem_der(secret, PKCS8_LABEL)?)
                    .map_err(|e| format!("`private_key` is not an RSA PKCS#8 key: {e}"))?,
            }),
            JwtAlgorithm::Es256 => Self::Ecdsa(
                EcdsaKeyPair::from_pkcs8(
                    &ECDSA_P256_SHA256_FIXED_SIGNING,
                    &pem_der(secret, PKCS8_LABEL)?,
                    &SystemRandom::new(),
                )
                .map_err(|e| format!("`private_key` is not a P-256 PKCS#8 key: {e}"))?,
            ),
        })
    }
}

/// Signs JWTs for one connection.
pub(crate) struct JwtSigner {
    algorithm: JwtAlgorithm,
    key: Arc<SigningKey>,
    claims: Map<String, Value>,
    lifetime: Duration,
    backdate: Duration,
}

impl std::fmt::Debug for JwtSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtSigner")
            .field("algorithm", &self.algorithm)
            .field("key", &"[redacted]")
            .finish()
    }
}

impl JwtSigner {
    /// A signer for `algorithm` with its key (`hmac_key` for HS256, a PKCS#8
    /// PEM `private_key` for RS256/ES256; parsed once per host and key,
    /// kept in `keys` by the fingerprint of algorithm and key), the claims
    /// template (a JSON object), the lifetime of each token and how far its
    /// `iat` is set back from the clock's time.
    pub(crate) fn new(
        keys: &BoundedCache<[u8; 32], Arc<SigningKey>>,
        algorithm: JwtAlgorithm,
        hmac_key: Option<&Secret>,
        private_key: Option<&Secret>,
        claims: Map<String, Value>,
        lifetime_secs: u32,
        backdate_secs: u32,
    ) -> Result<Self, String> {
        let secret = match (algorithm, hmac_key, private_key) {
            (JwtAlgorithm::Hs256, Some(k), None) => k,
            (JwtAlgorithm::Rs256 | JwtAlgorithm::Es256, None, Some(pem)) => pem,
            (JwtAlgorithm::Hs256, _, _) => {
                return Err("HS256 needs the secret `hmac_key` (and no `private_key`)".into());
            }
            _ => {
                return Err(
                    "RS256 and ES256 need the secret `private_key` (and no `hmac_key`)".into(),
                );
            }
        };
        let key = keys.get_or_build(fingerprint([alg_name(algorithm), secret.expose()]), || {
            SigningKey::new(algorithm, secret).map(Arc::new)
        })?;
        if lifetime_secs == 0 {
            return Err("`lifetime_secs` must be positive".into());
        }
        Ok(Self {
            algorithm,
            key,
            claims,
            lifetime: Duration::from_secs(lifetime_secs.into()),
            backdate: Duration::from_secs(backdate_secs.into()),
        })
    }

    /// A token signed now (`now`: the host clock's wall time; its `iat`,
    /// which `{now}` in the claims stands for, is set back by the backdate)
    /// and its expiry, the lifetime after `iat`.
    pub(crate) fn sign(&self, now: SystemTime) -> Result<(Secret, SystemTime), String> {
        let now = now.checked_sub(self.backdate).unwrap_or(UNIX_EPOCH);
        let exp = now + self.lifetime;
        let secs = |t: SystemTime| {
            t.duration_since(UNIX_EPOCH)
                .map(|d| d.as_secs())
                .unwrap_or(0)
        };
        let mut claims = Map::new();
        for (name, value) in &self.claims {
            let value = match value.as_str() {
                Some("{now}") => Value::from(secs(now)),
                Some("{exp}") => Value::from(secs(exp)),
                _ => value.clone(),
            };
            claims.insert(name.clone(), value);
        }
        claims
            .entry("iat")
            .or_insert_with(|| Value::from(secs(now)));
        claims
            .entry("exp")
            .or_insert_with(|| Value::from(secs(exp)));
        let header = serde_json::json!({"alg": alg_name(self.algorithm), "typ": "JWT"});
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(header.to_string()),
            URL_SAFE_NO_PAD.encode(Value::Object(claims).to_string())
        );
        let signature = match &*self.key {
            SigningKey::Hmac(k) => ring::hmac::sign(k, signing_input.as_bytes())
                .as_ref()
                .to_vec(),
            SigningKey::Rsa(k) => {
                let mut sig = vec![0; k.public().modulus_len()];
                k.sign(
                    &RSA_PKCS1_SHA256,
                    &SystemRandom::new(),
                    signing_input.as_bytes(),
                    &mut sig,
                )
                .map_err(|_| "RSA signing failed".to_owned())?;
                sig
            }
            SigningKey::Ecdsa(k) => k
                .sign(&SystemRandom::new(), signing_input.as_bytes())
                .map_err(|_| "ECDSA signing failed".to_owned())?
                .as_ref()
                .to_vec(),
        };
        Ok((
            Secret::new(format!(
                "{signing_input}.{}",
                URL_SAFE_NO_PAD.encode(signature)
            )),
            exp,
        ))
    }
}

/// The algorithm's name in a JWT header (`alg`).
fn alg_name(algorithm: JwtAlgorithm) -> &'static str {
    match algorithm {
        JwtAlgorithm::Hs256 => "HS256",
        JwtAlgorithm::Rs256 => "RS256",
        JwtAlgorithm::Es256 => "ES256",
    }
}

/// The PEM label of a PKCS#8 private key.
const PKCS8_LABEL: &str = "PRIVATE KEY";

/// The PEM label of a PKCS#1 RSA private key.
const PKCS1_LABEL: &str = "RSA PRIVATE KEY";

/// The DER bytes of a `-----BEGIN {label}-----` PEM block.
fn pem_der(pem: &Secret, label: &str) -> Result<zeroize::Zeroizing<Vec<u8>>, String> {
    let text = pem.expose().trim();
    let body = text
        .strip_prefix(&format!("-----BEGIN {label}-----"))
        .and_then(|rest| rest.strip_suffix(&format!("-----END {label}-----")))
        .ok_or("`private_key` must be a PKCS#8 PEM block (`-----BEGIN PRIVATE KEY-----`)")?;
    let b64: zeroize::Zeroizing<String> = body
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .into();
    STANDARD
        .decode(b64.as_bytes())
        .map(Into::into)
        .map_err(|_| "`private_key` PEM is not valid base64".into())
}
