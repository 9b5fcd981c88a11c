//! The response cache: scrubbed responses to GET and HEAD requests that ask
//! for it (`request.cache-ttl-ms`), per [`Sender`](super::Sender), so per
//! host.
//!
//! Bounded: at most [`ClientSettings::response_cache_entries`] entries, each
//! body at most [`ClientSettings::response_cache_entry_bytes`], least
//! recently used evicted first ([`BoundedCache`]). Keyed by tenant, plugin,
//! the connection's identity (a fingerprint, never a secret), method and the
//! URL before credentials are added; the values of the request headers the
//! response's `Vary` names are kept hashed beside the entry and must match.
//! One variant per key: a newer response replaces the older. Expiry is read
//! from the host's [`Clock`].

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderMap;

use super::{Prepared, RequestRecord, Sender, StepOutbound};
use crate::clock::Clock;
use crate::exchange::{Method, Response, SendError};
use crate::limits::ClientSettings;
use crate::shared::BoundedCache;

/// What a cached response is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key(String);

impl Key {
    /// The key of `p` in this step, if `p` may be cached: a GET or HEAD
    /// with a TTL.
    pub(super) fn of(
        step: &StepOutbound<'_>,
        p: &Prepared<'_>,
        ttl_ms: Option<u32>,
    ) -> Option<(Self, Duration)> {
        let ttl = Duration::from_millis(ttl_ms?.into());
        if !matches!(p.method, Method::Get | Method::Head) || ttl.is_zero() {
            return None;
        }
        let identity = p.connection.map_or("", |c| c.identity.as_str());
        let key = format!(
            "{}\u{0}{}\u{0}{identity}\u{0}{}\u{0}{}",
            step.tenant, step.manifest.name, p.method, p.url
        );
        Some((Self(key), ttl))
    }
}

/// One kept response.
struct Entry {
    response: Response,
    expires: Instant,
    /// The request headers the response varies on, each with a keyed hash
    /// of the request's values (none when it sent none).
    vary: Vec<(String, Option<u64>)>,
}

/// The host's response cache.
pub(super) struct ResponseCache {
    entries: Option<BoundedCache<Key, Arc<Entry>>>,
    entry_bytes: usize,
    clock: Arc<dyn Clock>,
    /// The keys of the hashes of varying header values.
    hasher: RandomState,
}

impl ResponseCache {
    /// A cache as `settings` size it (off with 0 entries), expiring on `clock`.
    pub(super) fn new(settings: &ClientSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            entries: (settings.response_cache_entries > 0)
                .then(|| BoundedCache::new(settings.response_cache_entries)),
            entry_bytes: settings.response_cache_entry_bytes,
            clock,
            hasher: RandomState::new(),
        }
    }

    /// The response kept under `key` for a request with `headers`, if it has
    /// not expired and its varying headers match.
    pub(super) fn get(&self, key: &Key, headers: &HeaderMap) -> Option<Response> {
        let now = self.clock.now();
        self.entries.as_ref()?.get_with(key, |entry| {
            let fresh = entry.expires > now;
            let matches = entry
                .vary
                .iter()
                .all(|(name, hash)| self.value_hash(headers, name) == *hash);
            (fresh && matches).then(|| entry.response.clone())
        })
    }

    /// Keeps `response` (already scrubbed) under `key` for `ttl` or the
    /// shorter `max-age`, unless it is not a 200, is too large, or its
    /// `Cache-Control` or `Vary` forbid it.
    pub(super) fn put(&self, key: Key, ttl: Duration, headers: &HeaderMap, response: &Response) {
        let Some(entries) = &self.entries else {
            return;
        };
        if response.status != 200 || response.body.len() > self.entry_bytes {
            return;
        }
        let Some(ttl) = allowed_ttl(response, ttl) else {
            return;
        };
        let mut vary = Vec::new();
        for name in field_values(response, "vary") {
            if name == "*" {
                return;
            }
            let name = name.to_ascii_lowercase();
            vary.push((name.clone(), self.value_hash(headers, &name)));
        }
        let entry = Entry {
            response: response.clone(),
            expires: self.clock.now() + ttl,
            vary,
        };
        entries.insert(key, Arc::new(entry));
    }

    /// A keyed hash of the request's values of header `name`, if it sent any.
    fn value_hash(&self, headers: &HeaderMap, name: &str) -> Option<u64> {
        let values: Vec<&[u8]> = headers.get_all(name).iter().map(|v| v.as_bytes()).collect();
        (!values.is_empty()).then(|| self.hasher.hash_one(&values))
    }
}

impl Sender {
    /// Sends `p`, or answers it from the cache when it asked for the cache
    /// (`ttl_ms`) and a fresh entry matches. A hit is checked against policy
    /// as any request, is recorded with `cache: "hit"` and never reaches the
    /// transport or the step's request count; a miss is sent, its scrubbed
    /// response kept if it may be, and its last record marked `miss`.
    pub(super) async fn send_cached(
        &self,
        step: &StepOutbound<'_>,
        p: &Prepared<'_>,
        ttl_ms: Option<u32>,
        records: &mut Vec<RequestRecord>,
    ) -> Result<Response, SendError> {
        let Some((key, ttl)) = Key::of(step, p, ttl_ms) else {
            return self.send_scrubbed(step, p, records).await;
        };
        if let Some(hit) = self.cache.get(&key, &p.headers) {
            self.check_url(step, &p.url)?;
            let outcome = Ok(hit);
            let mut record =
                RequestRecord::of(step, p.method, &p.url, Instant::now(), &outcome, false);
            record.duration_ms = 0;
            record.cache = Some("hit".into());
            records.push(record);
            return outcome;
        }
        let result = self.send_scrubbed(step, p, records).await;
        if let Ok(response) = &result {
            self.cache.put(key, ttl, &p.headers, response);
            if let Some(record) = records.last_mut() {
                record.cache = Some("miss".into());
            }
        }
        result
    }
}

/// The comma-separated items of every `name` field of the response, trimmed.
fn field_values<'r>(response: &'r Response, name: &'r str) -> impl Iterator<Item = &'r str> {
    response
        .headers
        .iter()
        .filter(move |(k, _)| k.eq_ignore_ascii_case(name))
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
}

/// How long `response` may be kept, asked for `ttl`: `None` under
/// `Cache-Control: no-store`, `private` or `no-cache`; else `ttl`, capped by
/// `max-age`.
fn allowed_ttl(response: &Response, ttl: Duration) -> Option<Duration> {
    let mut ttl = ttl;
    for directive in field_values(response, "cache-control") {
        let (name, value) = directive.split_once('=').unwrap_or((directive, ""));
        let name = name.trim().to_ascii_lowercase();
        match name.as_str() {
            "no-store" | "private" | "no-cache" => return None,
            "max-age" => {
                let seconds: u64 = value.trim().trim_matches('"').parse().ok()?;
                ttl = ttl.min(Duration::from_secs(seconds));
            }
            _ => {}
        }
    }
    (!ttl.is_zero()).then_some(ttl)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(headers: &[(&str, &str)]) -> Response {
        Response {
            status: 200,
            headers: headers
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            body: vec![],
            final_url: String::new(),
        }
    }

    #[test]
    fn cache_control_forbids_or_shortens() {
        let hour = Duration::from_secs(3600);
        let ttl = |headers: &[(&str, &str)]| allowed_ttl(&response(headers), hour);
        assert_eq!(ttl(&[]), Some(hour));
        assert_eq!(
            ttl(&[("Cache-Control", "public, max-age=60")]),
            Some(Duration::from_secs(60))
        );
        assert_eq!(ttl(&[("cache-control", "max-age=7200")]), Some(hour));
        for forbidding in [
            "no-store",
            "private",
            "No-Cache",
            "max-age=60, private",
            "private=\"x\"",
            "max-age=0",
            "max-age=soon",
        ] {
            assert_eq!(ttl(&[("cache-control", forbidding)]), None, "{forbidding}");
        }
        // Across two fields.
        assert_eq!(
            ttl(&[
                ("cache-control", "max-age=60"),
                ("Cache-Control", "no-store")
            ]),
            None
        );
    }
}
