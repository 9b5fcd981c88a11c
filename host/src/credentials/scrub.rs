//! Scrubbing: every secret, in every encoding an upstream might echo it in,
//! is replaced before anything reaches the plugin, a record or an error.

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use std::sync::{Arc, RwLock};

use super::{BoundConnection, Secret};

/// Replaces every known secret, in every encoding an upstream might echo it
/// in, with `[REDACTED]`. It learns secrets the host obtains during a step
/// (access tokens, rotated refresh tokens) before their first use.
pub(crate) struct Scrubber {
    inner: RwLock<Known>,
}

struct Known {
    secrets: Vec<Secret>,
    matcher: Option<Arc<AhoCorasick>>,
}

/// The value as it appears inside a JSON string (quotes, backslashes and
/// control characters escaped).
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).expect("a string serializes");
    quoted[1..quoted.len() - 1].to_owned()
}

/// What a scrubbed secret is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

impl Scrubber {
    /// A scrubber for the secrets of these connections.
    pub(crate) fn new<'a>(connections: impl IntoIterator<Item = &'a BoundConnection>) -> Self {
        let secrets: Vec<Secret> = connections.into_iter().flat_map(|c| c.scrub.iter().cloned()).collect();
        let matcher = matcher(&secrets);
        Self { inner: RwLock::new(Known { secrets, matcher }) }
    }

    /// Adds a secret (no-op if known).
    pub(crate) fn learn(&self, secret: &Secret) {
        let mut known = self.inner.write().expect("scrubber poisoned");
        if known.secrets.iter().any(|s| s.expose() == secret.expose()) {
            return;
        }
        known.secrets.push(secret.clone());
        known.matcher = matcher(&known.secrets);
    }

    fn matcher(&self) -> Option<Arc<AhoCorasick>> {
        self.inner.read().expect("scrubber poisoned").matcher.clone()
    }

    /// Whether there is anything to scrub.
    pub(crate) fn is_empty(&self) -> bool {
        self.matcher().is_none()
    }

    /// Scrubs bytes.
    pub(crate) fn bytes(&self, data: Vec<u8>) -> Vec<u8> {
        match self.matcher() {
            Some(m) if m.is_match(&data) => {
                let mut out = Vec::with_capacity(data.len());
                m.replace_all_with_bytes(&data, &mut out, |_, _, dst| {
                    dst.extend_from_slice(REDACTED.as_bytes());
                    true
                });
                out
            }
            _ => data,
        }
    }

    /// Scrubs text.
    pub(crate) fn text(&self, text: String) -> String {
        match self.matcher() {
            Some(m) if m.is_match(&text) => m.replace_all(&text, &vec![REDACTED; m.patterns_len()]),
            _ => text,
        }
    }
}

/// One automaton for every secret in every encoding, longest match first.
fn matcher(secrets: &[Secret]) -> Option<Arc<AhoCorasick>> {
    let mut patterns: Vec<Zeroizing<String>> = Vec::new();
    for secret in secrets {
        let value = secret.expose();
        if value.is_empty() {
            continue;
        }
        let bytes = value.as_bytes();
        for encoded in [
            STANDARD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC).to_string(),
            form_urlencoded::byte_serialize(bytes).collect(),
            json_escaped(value),
            value.to_owned(),
        ] {
            patterns.push(Zeroizing::new(encoded));
        }
    }
    patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    patterns.dedup();
    (!patterns.is_empty()).then(|| {
        Arc::new(
            // Built once per step: a noncontiguous NFA builds in a fraction of
            // the time of the DFA the builder would pick for so few patterns,
            // and the literal prefilter does most of the scanning anyway.
            AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
                .match_kind(aho_corasick::MatchKind::LeftmostLongest)
                .build(patterns.iter().map(|p| p.as_bytes()))
                .expect("secret patterns are plain literals"),
        )
    })
}
