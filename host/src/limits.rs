//! The operator's limits, in two kinds:
//!
//! - [`Limits`]: the budgets of one step, read while the step runs. Set
//!   host-wide with [`crate::HostBuilder::limits`] and per plugin with
//!   [`crate::PluginPolicy::limits`] (whose memory limit may not exceed the
//!   host-wide one).
//! - [`ClientSettings`]: the settings of the shared HTTP clients and of the
//!   per-origin connection slots, fixed when the host is built and shared by
//!   every step of every plugin. Set host-wide only, with
//!   [`crate::HostBuilder::client_settings`].
//!
//! - [`RateSettings`]: a connection's rate budget, from the operator's
//!   connection file and the plugin's declaration.
//!
//! Every value has a default.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Per-step budgets. The host-wide ones apply to every step; a plugin's
/// policy ([`crate::PluginPolicy`]) replaces them for that plugin's steps.
#[derive(Debug, Clone)]
pub struct Limits {
    /// Wall-clock deadline of a step, plugin and requests together (default 30 s).
    pub step_deadline: Duration,
    /// Linear memory a plugin instance may use (default 64 MiB); growing past
    /// it traps the step. The host-wide value also sizes the engine's memory
    /// slots, so a plugin's may not exceed it.
    pub memory_bytes: usize,
    /// Time a request may take when the plugin sets none (default 30 s).
    pub request_timeout: Duration,
    /// Upper bound on a plugin-chosen request timeout (default 120 s).
    pub max_request_timeout: Duration,
    /// Time from the connection being ready (new or pooled) to the response
    /// head (default 30 s).
    pub first_byte_timeout: Duration,
    /// Response body size, after decoding (default 10 MiB).
    pub max_response_bytes: usize,
    /// Request body size (default 10 MiB).
    pub max_request_body_bytes: usize,
    /// Requests per step, each redirect hop counted (default 100).
    pub max_requests_per_step: u32,
    /// Requests of one `send-all` batch in flight at once (default 8).
    pub max_concurrent_requests: usize,
    /// Redirect hops followed per request (default 10).
    pub max_redirects: u32,
    /// Total log bytes kept per step, WASI stdout/stderr included (default 64 KiB).
    pub max_log_bytes: usize,
    /// Length of one log line; longer lines are cut (default 2 KiB).
    pub max_log_line: usize,
    /// Attempts of one request under a plugin's retry policy, the first
    /// included (default 5): a policy asking for more gets this many.
    pub max_retry_attempts: u32,
    /// Longest backoff delay before one retry (default 30 s): a policy's
    /// `max-backoff-ms` above it is lowered to it.
    pub max_retry_backoff: Duration,
    /// Longest wait the host sleeps for an upstream that announces when it
    /// accepts requests again (`Retry-After`, rate-limit headers; default
    /// 60 s). A longer announced wait is not slept: the response goes back
    /// to the plugin at once.
    pub max_retry_after: Duration,
    /// Pages a step reads through the requests' `pagination`, all paged
    /// requests together (default 50). Paging stops cleanly at the cap and
    /// the answer says so (`courier-pagination: max-pages`).
    pub max_pages_per_step: u32,
    /// Items a step gathers through `pagination` (default 10,000); the
    /// items past it are dropped and paging stops (`max-items`).
    pub max_page_items_per_step: usize,
    /// Bytes of page bodies a step reads through `pagination` (default
    /// 10 MiB); paging stops once they are reached (`max-bytes`).
    pub max_page_bytes_per_step: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            step_deadline: Duration::from_secs(30),
            memory_bytes: 64 << 20,
            request_timeout: Duration::from_secs(30),
            max_request_timeout: Duration::from_secs(120),
            first_byte_timeout: Duration::from_secs(30),
            max_response_bytes: 10 << 20,
            max_request_body_bytes: 10 << 20,
            max_requests_per_step: 100,
            max_concurrent_requests: 8,
            max_redirects: 10,
            max_log_bytes: 64 << 10,
            max_log_line: 2 << 10,
            max_retry_attempts: 5,
            max_retry_backoff: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(60),
            max_pages_per_step: 50,
            max_page_items_per_step: 10_000,
            max_page_bytes_per_step: 10 << 20,
        }
    }
}

/// The longest duration a step budget may take: the host adds budgets to the
/// current time, and a far larger one would overflow the clock.
pub(crate) const MAX_BUDGET: Duration = Duration::from_secs(365 * 24 * 3600);

impl Limits {
    /// The first budget that cannot be honoured, named by field, if any.
    pub(crate) fn check(&self) -> Result<(), String> {
        let durations = [
            ("step_deadline", self.step_deadline),
            ("request_timeout", self.request_timeout),
            ("max_request_timeout", self.max_request_timeout),
            ("max_retry_backoff", self.max_retry_backoff),
            ("max_retry_after", self.max_retry_after),
        ];
        for (field, value) in durations {
            if value > MAX_BUDGET {
                return Err(format!(
                    "`limits.{field}` of {value:?} exceeds the largest budget, {MAX_BUDGET:?}"
                ));
            }
        }
        Ok(())
    }
}

/// Settings of the shared HTTP clients and of the per-origin connection
/// slots. They are built into the pooled clients when the host is built and
/// apply to every request of every plugin: a plugin's policy cannot change
/// them.
#[derive(Debug, Clone)]
pub struct ClientSettings {
    /// Time to open a TCP connection (default 10 s).
    pub connect_timeout: Duration,
    /// Time for the TLS handshake once TCP is connected (default 10 s).
    pub tls_handshake_timeout: Duration,
    /// Response header fields (default 100); more is `too-large`.
    pub max_response_headers: usize,
    /// Size of a response head, all header fields together (default 64 KiB,
    /// at least 8 KiB); more is `too-large`.
    pub max_response_header_bytes: usize,
    /// How long a pooled connection may stay idle before the host closes it
    /// (default 50 s, under the 60 s after which many servers and load
    /// balancers drop idle connections themselves).
    pub pool_idle_timeout: Duration,
    /// Requests in flight to one origin, across all steps: a cap on the
    /// connections the host opens to it (default 32).
    pub max_connections_per_origin: usize,
    /// How long a request waits for a free connection slot to its origin
    /// before the step ends with `max-connection` (default 1 s).
    pub connection_wait: Duration,
    /// Responses the host's cache keeps for requests that ask for it
    /// (`request.cache-ttl-ms`), least recently used evicted first (default
    /// 256; 0 turns the cache off).
    pub response_cache_entries: usize,
    /// The largest response body the cache keeps (default 256 KiB), so the
    /// cache holds at most `response_cache_entries` times this.
    pub response_cache_entry_bytes: usize,
}

impl Default for ClientSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(10),
            tls_handshake_timeout: Duration::from_secs(10),
            max_response_headers: 100,
            max_response_header_bytes: 64 << 10,
            pool_idle_timeout: Duration::from_secs(50),
            max_connections_per_origin: 32,
            connection_wait: Duration::from_secs(1),
            response_cache_entries: 256,
            response_cache_entry_bytes: 256 << 10,
        }
    }
}

/// A connection's rate budget, shared by every step of this host that uses
/// the same tenant and connection id: at most `requests` requests in any
/// `per_secs` seconds, and at most `concurrent` requests at once. Each part
/// left out is unlimited; `requests` and `per_secs` go together. Set by the
/// operator (a connection file's `[rate]` table,
/// [`crate::ConnectionConfig::rate`]) and by the plugin (the WIT
/// `connection-spec.rate`); the narrower of the two applies, and the
/// upstream's rate-limit headers narrow it further (README, "Rate budgets
/// per connection").
///
/// ```toml
/// [rate]
/// requests = 100   # requests per window
/// per_secs = 60    # the window, in seconds
/// concurrent = 4   # requests in flight at once
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RateSettings {
    /// Requests allowed in any window of `per_secs` seconds.
    pub requests: Option<u32>,
    /// The window's length in seconds.
    pub per_secs: Option<u32>,
    /// Requests in flight at once.
    pub concurrent: Option<u32>,
}

impl RateSettings {
    /// Whether the table is whole: no zero, and `requests` with `per_secs`.
    pub(crate) fn check(&self) -> Result<(), String> {
        let zero = [
            ("requests", self.requests),
            ("per_secs", self.per_secs),
            ("concurrent", self.concurrent),
        ]
        .into_iter()
        .find(|(_, v)| *v == Some(0));
        if let Some((key, _)) = zero {
            return Err(format!("`rate.{key}` must be at least 1"));
        }
        match (self.requests, self.per_secs) {
            (Some(_), None) => Err("`rate.requests` needs `rate.per_secs`".into()),
            (None, Some(_)) => Err("`rate.per_secs` needs `rate.requests`".into()),
            _ => Ok(()),
        }
    }

    /// The narrower of two budgets, part by part; of two windows, the one
    /// with the lower rate (requests per second).
    pub(crate) fn narrowest(self, other: Self) -> Self {
        let window = |s: Self| s.requests.zip(s.per_secs);
        let windows = match (window(self), window(other)) {
            (Some((r1, s1)), Some((r2, s2))) => {
                let first = u64::from(r1) * u64::from(s2) <= u64::from(r2) * u64::from(s1);
                Some(if first { (r1, s1) } else { (r2, s2) })
            }
            (a, b) => a.or(b),
        };
        let concurrent = match (self.concurrent, other.concurrent) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        Self {
            requests: windows.map(|w| w.0),
            per_secs: windows.map(|w| w.1),
            concurrent,
        }
    }

    /// Whether no part is limited.
    pub(crate) fn is_unlimited(&self) -> bool {
        self.requests.is_none() && self.concurrent.is_none()
    }
}
