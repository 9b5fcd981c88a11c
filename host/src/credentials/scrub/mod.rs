//! Scrubbing: every secret is removed, in any form a conformant decoder turns
//! back into it, from everything that goes back to the plugin or out of the
//! host, and nothing else is changed.
//!
//! Matching happens in the decoded domain: the text as it is, then as JSON
//! string escapes, percent-encoding and XML/HTML character references decode
//! it (up to [`MAX_PASSES`] times, for nested encodings), each view searched
//! for the secrets and their base64 and base64url forms at every alignment.
//! A match is mapped back to the bytes it came from, widened to whole
//! escapes, and those bytes become `[REDACTED]`. A body that is valid JSON is
//! scrubbed inside its strings (keys and values) only, and a number only as a
//! whole (it becomes the string `"[REDACTED]"`), so it stays valid JSON.

mod decode;

use std::borrow::Cow;
use std::convert::Infallible;
use std::ops::Range;
use std::sync::{Arc, RwLock};

use aho_corasick::AhoCorasick;
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};
use zeroize::Zeroizing;

use super::tokens::fingerprint;
use super::{BoundConnection, Caches};
use crate::secret::Secret;
use crate::shared::BoundedCache;
use decode::{Escapes, Map, decode, json_parts};

/// What a scrubbed secret is replaced with.
pub(crate) const REDACTED: &str = "[REDACTED]";

/// The fewest characters a secret may have. Scrubbing a shorter value would
/// hit unrelated text (numbers, words, header names), so binding a
/// connection with one is an error, and so is a token endpoint answering
/// with one.
pub(crate) const MIN_SECRET_LEN: usize = 8;

/// How many encodings deep text is decoded in search of a secret: three
/// layers cover a secret percent-encoded in a URL, inside an HTML attribute,
/// inside a JSON string. Every order is tried (at most 3 + 9 + 27 views, each
/// only where the text holds that encoding's escapes).
const MAX_PASSES: usize = 3;

/// Replaces every known secret, in every form a decoder turns back into it,
/// with `[REDACTED]`. It learns secrets the host obtains during a step
/// (access tokens, rotated refresh tokens) before their first use. Its
/// automaton is built once per set of secrets and host, and shared by every
/// step of the host that scrubs the same set (see [`shared_matcher`]).
pub(crate) struct Scrubber {
    inner: Arc<RwLock<Known>>,
    /// The host's automata, where a set with a learned secret is looked up.
    matchers: Arc<Matchers>,
}

/// Automata by the fingerprint of their secret set ([`Caches::matchers`]).
type Matchers = BoundedCache<[u8; 32], Arc<Matcher>>;

struct Known {
    secrets: Vec<Secret>,
    matcher: Option<Arc<Matcher>>,
}

/// The automata for one set of secrets and what each of its patterns is.
///
/// Its automata hold the secrets (their states spell out every pattern), and
/// aho-corasick offers no way to wipe them: dropping a `Matcher` frees that
/// memory without zeroizing it. The pattern buffers the host builds them from
/// are zeroized as soon as the automata are built (see [`matcher`]).
pub(crate) struct Matcher {
    /// Whether a text holds any pattern at all: leftmost-longest, so the
    /// SIMD literal prefilter (Teddy) applies; most texts hold none.
    detector: AhoCorasick,
    /// Every match, overlapping ones included (two secrets may overlap in a
    /// text, and each must go whole); used only on texts that hold one.
    automaton: AhoCorasick,
    /// By pattern id.
    kinds: Vec<Pattern>,
    /// Some secret contains a space, which form encoding writes as `+`:
    /// spaces in secrets and in the text searched are then both read as `+`.
    plus_for_space: bool,
}

impl std::fmt::Debug for Matcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Matcher({} patterns, redacted)", self.kinds.len())
    }
}

/// What a pattern of the automaton stands for.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Pattern {
    /// The secret itself.
    Plain,
    /// The base64 characters wholly determined by the secret at one
    /// alignment; the character before (`left`) or after (`right`) also
    /// carries some of its bits, and is taken with it.
    Base64 { left: bool, right: bool },
}

impl Scrubber {
    /// A scrubber for the secrets of these connections. A step with one
    /// connection that has secrets uses that connection's automaton, found
    /// once per binding (kept bindings are shared by steps). Automata come
    /// from, and go to, the host's `caches`.
    pub(crate) fn new<'a>(
        connections: impl IntoIterator<Item = &'a BoundConnection>,
        caches: &Caches,
    ) -> Self {
        let matchers = &caches.matchers;
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
                .get_or_init(|| shared_matcher(matchers, &one.scrub))
                .clone(),
            _ => shared_matcher(matchers, &secrets),
        };
        Self {
            inner: Arc::new(RwLock::new(Known { secrets, matcher })),
            matchers: matchers.clone(),
        }
    }

    /// Adds a secret (no-op if known).
    pub(crate) fn learn(&self, secret: &Secret) {
        let mut known = self.inner.write().expect("scrubber poisoned");
        if known.secrets.iter().any(|s| s.expose() == secret.expose()) {
            return;
        }
        known.secrets.push(secret.clone());
        known.matcher = shared_matcher(&self.matchers, &known.secrets);
    }

    /// The automaton in use, `None` when there is nothing to scrub.
    pub(super) fn matcher(&self) -> Option<Arc<Matcher>> {
        self.redactor().matcher()
    }

    /// Whether there is anything to scrub.
    pub(crate) fn is_empty(&self) -> bool {
        self.matcher().is_none()
    }

    /// A handle that scrubs as this scrubber does, including the secrets it
    /// learns later, and outlives the step's borrow (a recording transport
    /// keeps it until it writes).
    pub(crate) fn redactor(&self) -> Redactor {
        Redactor(self.inner.clone())
    }

    /// Scrubs a response body of any content type (already content-decoded).
    /// A valid JSON document stays valid JSON.
    pub(crate) fn body(&self, data: Vec<u8>) -> Vec<u8> {
        self.redactor().body(data)
    }

    /// Scrubs text: a header value, a URL, a message.
    pub(crate) fn text(&self, text: String) -> String {
        self.redactor().text(text)
    }
}

/// A step's secrets, shared with its [`Scrubber`] (learned ones included),
/// for what scrubs after the step's borrow has ended.
#[derive(Clone)]
pub(crate) struct Redactor(Arc<RwLock<Known>>);

impl Redactor {
    /// The automaton in use, `None` when there is nothing to scrub.
    fn matcher(&self) -> Option<Arc<Matcher>> {
        self.0.read().expect("scrubber poisoned").matcher.clone()
    }

    /// Scrubs a body of any content type (not content-encoded). A valid JSON
    /// document stays valid JSON.
    pub(crate) fn body(&self, data: Vec<u8>) -> Vec<u8> {
        match self.matcher() {
            Some(m) => m.scrub(&data, true).unwrap_or(data),
            None => data,
        }
    }

    /// Scrubs text: a header value, a URL, a message.
    pub(crate) fn text(&self, text: String) -> String {
        let Some(m) = self.matcher() else {
            return text;
        };
        match m.scrub(text.as_bytes(), false) {
            // Replacements cover whole characters of valid UTF-8 (patterns
            // are UTF-8, escapes ASCII), so this never loses anything.
            Some(out) => String::from_utf8(out)
                .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned()),
            None => text,
        }
    }
}

impl Matcher {
    /// The scrubbed bytes, `None` if there was nothing to scrub. With
    /// `json`, a valid JSON document is scrubbed as JSON.
    fn scrub(&self, data: &[u8], json: bool) -> Option<Vec<u8>> {
        let may_hold_secret = self.plus_for_space
            || memchr::memchr3(b'\\', b'%', b'&', data).is_some()
            || self.detector.is_match(data);
        if !may_hold_secret {
            return None;
        }
        let mut spans = Vec::new();
        if json && serde_json::from_slice::<serde::de::IgnoredAny>(data).is_ok() {
            let parts = json_parts(data);
            for number in parts.numbers {
                if self.is_whole_secret(&data[number.clone()]) {
                    spans.push((number, true));
                }
            }
            self.search(
                parts.strings.bytes,
                &mut vec![parts.strings.map],
                0,
                &mut spans,
            );
        } else {
            self.search(data.to_vec(), &mut vec![], 0, &mut spans);
        }
        (!spans.is_empty()).then(|| replace(data, spans))
    }

    /// Searches `view` (which `chain` maps back to the original) and every
    /// decoding of it, up to [`MAX_PASSES`] deep, adding the original ranges
    /// of every match to `spans`.
    fn search(
        &self,
        mut view: Vec<u8>,
        chain: &mut Vec<Map>,
        depth: usize,
        spans: &mut Vec<(Range<usize>, bool)>,
    ) {
        if self.plus_for_space {
            view.iter_mut()
                .filter(|b| **b == b' ')
                .for_each(|b| *b = b'+');
        }
        let matches = match self.detector.is_match(&view[..]) {
            true => self.automaton.find_overlapping_iter(&view[..]).collect(),
            false => vec![],
        };
        for m in matches {
            let mut found = m.range();
            if let Pattern::Base64 { left, right } = self.kinds[m.pattern().as_usize()] {
                if left && found.start > 0 && is_base64(view[found.start - 1]) {
                    found.start -= 1;
                }
                if right && view.get(found.end).copied().is_some_and(is_base64) {
                    found.end += 1;
                }
            }
            let original = chain.iter().rev().fold(found, |r, map| map.source(r));
            spans.push((original, false));
        }
        if depth == MAX_PASSES {
            return;
        }
        for escapes in Escapes::ALL {
            if let Some(decoded) = decode(&view, escapes) {
                chain.push(decoded.map);
                self.search(decoded.bytes, chain, depth + 1, spans);
                chain.pop();
            }
        }
        // What a URL serializer added is the innermost layer: its view is
        // searched but not decoded further.
        if let Some(decoded) = decode(&view, Escapes::UrlSerialized) {
            chain.push(decoded.map);
            self.search(decoded.bytes, chain, MAX_PASSES, spans);
            chain.pop();
        }
    }

    /// Whether these bytes are exactly one secret.
    fn is_whole_secret(&self, token: &[u8]) -> bool {
        self.detector.is_match(token)
            && self.automaton.find_overlapping_iter(token).any(|m| {
                m.range() == (0..token.len())
                    && self.kinds[m.pattern().as_usize()] == Pattern::Plain
            })
    }
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'-' | b'_')
}

/// `data` with every span replaced by `[REDACTED]` (`"[REDACTED]"` where the
/// flag says a JSON value needs quotes); overlapping spans become one.
fn replace(data: &[u8], mut spans: Vec<(Range<usize>, bool)>) -> Vec<u8> {
    spans.sort_unstable_by_key(|(r, _)| (r.start, r.end));
    let mut out = Vec::with_capacity(data.len());
    let mut copied = 0;
    let mut spans = spans.into_iter().peekable();
    while let Some((mut range, quoted)) = spans.next() {
        while let Some((next, _)) = spans.next_if(|(next, _)| next.start < range.end) {
            range.end = range.end.max(next.end);
        }
        out.extend_from_slice(&data[copied..range.start]);
        if quoted {
            out.extend_from_slice(format!("\"{REDACTED}\"").as_bytes());
        } else {
            out.extend_from_slice(REDACTED.as_bytes());
        }
        copied = range.end;
    }
    out.extend_from_slice(&data[copied..]);
    out
}

/// The automaton for these secrets (order and repetitions aside), built once
/// per set and kept in the host's `matchers`: steps binding the same
/// secrets, and steps learning the same cached access token, share one
/// automaton instead of building it each. Like the token caches, the host
/// keeps the secrets of recently used connections in memory between steps.
/// `None` when there is nothing to scrub.
fn shared_matcher(matchers: &Matchers, secrets: &[Secret]) -> Option<Arc<Matcher>> {
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
    let Ok(built) = matchers.get_or_build(fingerprint(values.iter().copied()), || {
        Ok::<_, Infallible>(Arc::new(matcher(&values)))
    });
    Some(built)
}

/// One automaton for every secret: the value itself and the base64 and
/// base64url characters it determines at each of the three alignments (so
/// it is found inside a longer encoded text, with or without padding).
/// Other encodings need no patterns: the text is decoded instead. The
/// pattern buffers are `Zeroizing`, wiped when this returns; the automata
/// keep their own copies, which cannot be wiped.
fn matcher(values: &[&str]) -> Matcher {
    let plus_for_space = values.iter().any(|v| v.contains(' '));
    let mut patterns: Vec<(Zeroizing<Vec<u8>>, Pattern)> = Vec::new();
    for &value in values {
        let plain = match plus_for_space {
            true => Cow::Owned(value.replace(' ', "+")),
            false => Cow::Borrowed(value),
        };
        patterns.push((Zeroizing::new(plain.as_bytes().to_vec()), Pattern::Plain));
        for engine in [STANDARD_NO_PAD, URL_SAFE_NO_PAD] {
            for shift in 0..3 {
                patterns.push(base64_core(&engine, value.as_bytes(), shift));
            }
        }
    }
    // A core can be empty only for values shorter than a base64 group, which
    // binding refuses; an empty pattern would match everywhere.
    patterns.retain(|(p, _)| !p.is_empty());
    patterns.sort_by(|(a, ka), (b, kb)| (a.as_slice(), ka).cmp(&(b.as_slice(), kb)));
    patterns.dedup_by(|(a, ka), (b, kb)| a.as_slice() == b.as_slice() && ka == kb);
    // Noncontiguous NFAs build in a fraction of the time of a DFA (they are
    // still built for each new access token), and the literal prefilter does
    // most of the scanning anyway. Overlapping search rules out the packed
    // (Teddy) prefilter, so a leftmost-longest twin answers "any match?" for
    // the common case of none (BENCHMARKS.md, fifth round).
    let build = |kind| {
        AhoCorasick::builder()
            .kind(Some(aho_corasick::AhoCorasickKind::NoncontiguousNFA))
            .match_kind(kind)
            .build(patterns.iter().map(|(p, _)| p.as_slice()))
            .expect("secret patterns are plain literals")
    };
    Matcher {
        detector: build(aho_corasick::MatchKind::LeftmostLongest),
        automaton: build(aho_corasick::MatchKind::Standard),
        kinds: patterns.iter().map(|(_, kind)| *kind).collect(),
        plus_for_space,
    }
}

/// The base64 characters that depend on `value` alone when it starts
/// `shift` bytes into a 3-byte group, and whether a partly determined
/// character precedes or follows them.
fn base64_core(
    engine: &base64::engine::GeneralPurpose,
    value: &[u8],
    shift: usize,
) -> (Zeroizing<Vec<u8>>, Pattern) {
    let mut shifted = Zeroizing::new(vec![0; shift]);
    shifted.extend_from_slice(value);
    let encoded = Zeroizing::new(engine.encode(&shifted[..]));
    let (first_bit, end_bit) = (8 * shift, 8 * (shift + value.len()));
    let core = encoded.as_bytes()[first_bit.div_ceil(6)..end_bit / 6].to_vec();
    let kind = Pattern::Base64 {
        left: first_bit % 6 != 0,
        right: end_bit % 6 != 0,
    };
    (Zeroizing::new(core), kind)
}

#[cfg(test)]
mod tests;
