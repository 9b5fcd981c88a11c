//! Envelope encryption of stored secrets: each record's secrets are sealed
//! with a fresh data key, the data key is sealed with the master key, and
//! both seals bind the record's tenant and connection id as associated data,
//! so a ciphertext copied to another record fails to open.

use std::io::Write as _;
use std::path::Path;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use super::StoreError;

/// The environment variable that may hold the master key (base64 of 32 bytes).
pub const MASTER_KEY_ENV: &str = "COURIER_MASTER_KEY";

const KEY_LEN: usize = 32;

/// The key that wraps every record's data key. Zeroized on drop.
pub struct MasterKey {
    key: Zeroizing<[u8; KEY_LEN]>,
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MasterKey({})", self.id())
    }
}

impl MasterKey {
    /// A new random key.
    pub fn generate() -> Result<Self, StoreError> {
        Ok(Self { key: random_key()? })
    }

    /// Parses the base64 text of a key.
    pub fn from_base64(text: &str) -> Result<Self, StoreError> {
        let bytes = Zeroizing::new(
            STANDARD
                .decode(text.trim())
                .map_err(|_| StoreError::MasterKey("the master key is not base64".into()))?,
        );
        let key: [u8; KEY_LEN] = bytes.as_slice().try_into().map_err(|_| {
            StoreError::MasterKey(format!("the master key must be {KEY_LEN} bytes"))
        })?;
        Ok(Self {
            key: Zeroizing::new(key),
        })
    }

    /// The key from `$COURIER_MASTER_KEY`, else from the key file, which is
    /// created (owner-only) with a new random key on first use.
    pub fn from_env_or_file(path: &Path) -> Result<Self, StoreError> {
        if let Ok(text) = std::env::var(MASTER_KEY_ENV) {
            return Self::from_base64(&text);
        }
        match std::fs::read_to_string(path) {
            Ok(text) => Self::from_base64(&Zeroizing::new(text)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = Self::generate()?;
                key.write_new_file(path)?;
                Ok(key)
            }
            Err(e) => Err(StoreError::MasterKey(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the key to a file that must not exist yet, readable by the owner only.
    pub fn write_new_file(&self, path: &Path) -> Result<(), StoreError> {
        let fail = |e: std::io::Error| {
            StoreError::MasterKey(format!("cannot create {}: {e}", path.display()))
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let mut file = options.open(path).map_err(fail)?;
        let text = Zeroizing::new(STANDARD.encode(self.key.as_slice()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(fail)
    }

    /// A short public identifier of the key (not derived reversibly from it).
    pub fn id(&self) -> String {
        let mut hash = Sha256::new();
        hash.update(b"courier master key id\0");
        hash.update(self.key.as_slice());
        hex::encode(&hash.finalize()[..8])
    }
}

/// A record sealed for the store: the secrets under a data key, the data key
/// under the master key.
pub(super) struct Sealed {
    pub(super) secrets: Vec<u8>,
    pub(super) wrapped_key: Vec<u8>,
}

/// The associated data of a record: tenant and connection id.
fn aad(tenant: &str, id: &str) -> Vec<u8> {
    let mut aad = b"courier connection\0".to_vec();
    aad.extend_from_slice(tenant.as_bytes());
    aad.push(0);
    aad.extend_from_slice(id.as_bytes());
    aad
}

/// Seals a record's secrets under a fresh data key.
pub(super) fn seal(
    master: &MasterKey,
    tenant: &str,
    id: &str,
    plaintext: &[u8],
) -> Result<Sealed, StoreError> {
    let data_key = random_key()?;
    let aad = aad(tenant, id);
    Ok(Sealed {
        secrets: seal_with(&data_key, &aad, plaintext)?,
        wrapped_key: seal_with(&master.key, &aad, data_key.as_slice())?,
    })
}

/// Opens a record's secrets; fails closed when the master key, the record
/// (tenant, id) or the bytes do not match.
pub(super) fn open(
    master: &MasterKey,
    tenant: &str,
    id: &str,
    sealed: &Sealed,
) -> Result<Zeroizing<Vec<u8>>, StoreError> {
    let aad = aad(tenant, id);
    let undecryptable = || StoreError::Undecryptable {
        tenant: tenant.into(),
        id: id.into(),
    };
    let data_key = open_with(&master.key, &aad, &sealed.wrapped_key).ok_or_else(undecryptable)?;
    let data_key: [u8; KEY_LEN] = data_key
        .as_slice()
        .try_into()
        .map_err(|_| undecryptable())?;
    open_with(&Zeroizing::new(data_key), &aad, &sealed.secrets).ok_or_else(undecryptable)
}

/// Re-wraps a record's data key under a new master key.
pub(super) fn rewrap(
    old: &MasterKey,
    new: &MasterKey,
    tenant: &str,
    id: &str,
    wrapped: &[u8],
) -> Result<Vec<u8>, StoreError> {
    let aad = aad(tenant, id);
    let data_key = open_with(&old.key, &aad, wrapped).ok_or_else(|| StoreError::Undecryptable {
        tenant: tenant.into(),
        id: id.into(),
    })?;
    seal_with(&new.key, &aad, &data_key)
}

fn random_key() -> Result<Zeroizing<[u8; KEY_LEN]>, StoreError> {
    let mut key = Zeroizing::new([0u8; KEY_LEN]);
    SystemRandom::new()
        .fill(key.as_mut_slice())
        .map_err(|_| StoreError::MasterKey("no system randomness".into()))?;
    Ok(key)
}

fn aead_key(key: &[u8; KEY_LEN]) -> LessSafeKey {
    LessSafeKey::new(
        UnboundKey::new(&CHACHA20_POLY1305, key).expect("a 32-byte key suits ChaCha20-Poly1305"),
    )
}

/// `nonce || ciphertext || tag` (ChaCha20-Poly1305, random 96-bit nonce:
/// each key seals very few messages).
fn seal_with(key: &[u8; KEY_LEN], aad: &[u8], plaintext: &[u8]) -> Result<Vec<u8>, StoreError> {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| StoreError::MasterKey("no system randomness".into()))?;
    let mut out = Zeroizing::new(plaintext.to_vec());
    aead_key(key)
        .seal_in_place_append_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(aad),
            &mut *out,
        )
        .map_err(|_| StoreError::MasterKey("sealing failed".into()))?;
    let mut sealed = nonce.to_vec();
    sealed.extend_from_slice(&out);
    Ok(sealed)
}

fn open_with(key: &[u8; KEY_LEN], aad: &[u8], sealed: &[u8]) -> Option<Zeroizing<Vec<u8>>> {
    if sealed.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).ok()?;
    let mut buffer = Zeroizing::new(ciphertext.to_vec());
    let plain_len = aead_key(key)
        .open_in_place(nonce, Aad::from(aad), &mut buffer)
        .ok()?
        .len();
    buffer.truncate(plain_len);
    Some(buffer)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_record_opens_only_as_itself_under_its_master_key() {
        let master = MasterKey::generate().unwrap();
        let sealed = seal(&master, "acme", "crm", b"hello").unwrap();
        assert_eq!(
            open(&master, "acme", "crm", &sealed).unwrap().as_slice(),
            b"hello"
        );
        assert!(open(&master, "acme", "crm2", &sealed).is_err());
        assert!(open(&master, "other", "crm", &sealed).is_err());
        assert!(open(&MasterKey::generate().unwrap(), "acme", "crm", &sealed).is_err());
        let mut tampered = Sealed {
            secrets: sealed.secrets.clone(),
            wrapped_key: sealed.wrapped_key.clone(),
        };
        *tampered.secrets.last_mut().unwrap() ^= 1;
        assert!(open(&master, "acme", "crm", &tampered).is_err());
    }
}
