//! Scrubbing: every secret, in every encoding an upstream might echo it in,
//! is replaced before anything reaches the plugin, a record or an error.

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use std::convert::Infallible;
use std::sync::{Arc, RwLock};

use super::tokens::fingerprint;
use super::{BoundConnection, Secret};
use crate::shared::SharedBuilds;

/// Replaces every known secret, in every encoding an upstream might echo it
/// in, with `[REDACTED]`. It learns secrets the host obtains during a step
/// (access tokens, rotated refresh tokens) before their first use. Its
/// automaton is built once per set of secrets and shared by every step that
/// scrubs the same set (see [`shared_matcher`]).
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
    /// A scrubber for the secrets of these connections. A step with one connection that has secrets uses that connection's
    /// automaton, found once per binding (kept bindings are shared by steps).
    pub(crate) fn new<'a>(connections: impl IntoIterator<Item = &'a BoundConnection>) -> Self {
        let with_secrets: Vec<&BoundConnection> = connections
            .into_iter()
            .filter(|c| !c.scrub.is_empty())
            .collect();
        let secrets: Vec<Secret> = with_secrets
            .iter()
            .flat_map(|c| c.scrub.iter().cloned())
            .collect();
        let matcher = match with_secrets.as_slice() {
            [one] => one
                .matcher
                .get_or_init(|| shared_matcher(&one.scrub))
                .clone(),
            _ => shared_matcher(&secrets),
        };
        Self {
            inner: RwLock::new(Known { secrets, matcher }),
        }
    }

    /// Adds a secret (no-op if known).
    pub(crate) fn learn(&self, secret: &Secret) {
        let mut known = self.inner.write().expect("scrubber poisoned");
        if known.secrets.iter().any(|s| s.expose() == secret.expose()) {
            return;
        }
        known.secrets.push(secret.clone());
        known.matcher = shared_matcher(&known.secrets);
    }

    /// The automaton in use, `None` when there is nothing to scrub.
    pub(super) fn matcher(&self) -> Option<Arc<AhoCorasick>> {
        self.inner
            .read()
            .expect("scrubber poisoned")
            .matcher
            .clone()
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

/// Automata by the fingerprint of their secret set: steps binding the same
/// secrets, and steps learning the same cached access token, share one
/// automaton instead of building it each. Like the token caches, it keeps
/// the secrets of recently used connections in memory between steps.
static BUILT: SharedBuilds<AhoCorasick> = SharedBuilds::new(256);

/// The automaton for these secrets (order and repetitions aside), built once
/// per set; `None` when there is nothing to scrub.
fn shared_matcher(secrets: &[Secret]) -> Option<Arc<AhoCorasick>> {
    let mut values: Vec<&str> = secrets
        .iter()
        .map(Secret::expose)
        .filter(|v| !v.is_empty())
        .collect();
    if values.is_empty() {
        return None;
    }
    values.sort_unstable();
    values.dedup();
    let Ok(built) = BUILT.get_or_build(fingerprint(values.iter().copied()), || {
        Ok::<_, Infallible>(matcher(&values))
    });
    Some(built)
}

/// One automaton for every secret in every encoding, longest match first.
fn matcher(values: &[&str]) -> AhoCorasick {
    let mut patterns: Vec<Zeroizing<String>> = Vec::new();
    for &value in values {
        let bytes = value.as_bytes();
        for encoded in [
            STANDARD.encode(bytes),
            URL_SAFE.encode(bytes),
            URL_SAFE_NO_PAD.encode(bytes),
            percent_encoding::utf8_percent_encode(value, percent_encoding::NON_ALPHANUMERIC)
                .to_string(),
            form_urlencoded::byte_serialize(bytes).collect(),
            json_escaped(value),
            value.to_owned(),
        ] {
            patterns.push(Zeroizing::new(encoded));
        }
    }
    patterns.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
    patterns.dedup();
    // A noncontiguous NFA builds in a fraction of the time of the DFA the
    // builder would pick for so few patterns (it is still built for each new
    // access token), and the literal prefilter does most of the scanning anyway.
    AhoCorasick::builder()
        .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
        .match_kind(aho_corasick::MatchKind::LeftmostLongest)
        .build(patterns.iter().map(|p| p.as_bytes()))
        .expect("secret patterns are plain literals")
}
