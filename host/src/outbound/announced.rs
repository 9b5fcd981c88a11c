//! When an upstream says it will accept requests again, read from its
//! response headers:
//!
//! - `Retry-After` (RFC 9110 §10.2.3): delta-seconds or an HTTP-date;
//! - GitHub-style `x-ratelimit-remaining: 0` with `x-ratelimit-reset`
//!   (epoch seconds; a value under 10⁹ is taken as delta-seconds, as some
//!   providers send);
//! - the IETF `RateLimit` field (draft-ietf-httpapi-ratelimit-headers):
//!   items such as `"default";r=0;t=30` (remaining `r`, reset `t` seconds),
//!   the older `remaining=0, reset=30` form and the separate
//!   `RateLimit-Remaining`/`RateLimit-Reset` fields; with `r=0` and no reset,
//!   the window `w` of `RateLimit-Policy` (`"default";q=100;w=60`).
//!
//! A rate-limit field only announces a wait when its remaining count is 0.
//! When several fields announce one, the longest wins.

use std::time::{Duration, SystemTime};

/// Epoch seconds start here; a smaller reset value is a delta.
const EPOCH_THRESHOLD: u64 = 1_000_000_000;

/// The wait the response headers announce, measured from `now` (wall
/// clock), or `None` when they announce none.
pub(super) fn announced_wait(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let until = |at: SystemTime| at.duration_since(now).unwrap_or(Duration::ZERO);
    let retry_after = field(headers, "retry-after").and_then(|v| {
        secs(v)
            .map(Duration::from_secs)
            .or_else(|| httpdate::parse_http_date(v).ok().map(until))
    });
    retry_after.max(rate_limit_wait(headers, now))
}

/// The wait the rate-limit fields alone announce (a remaining count of 0
/// until the reset), without `Retry-After`: what narrows a connection's
/// rate budget.
pub(super) fn rate_limit_wait(headers: &[(String, String)], now: SystemTime) -> Option<Duration> {
    let field = |name: &str| field(headers, name);
    let until = |at: SystemTime| at.duration_since(now).unwrap_or(Duration::ZERO);
    let reset = |v: &str| {
        secs(v).map(|n| match n {
            // A time past what the system clock can hold is as good as never.
            n if n >= EPOCH_THRESHOLD => SystemTime::UNIX_EPOCH
                .checked_add(Duration::from_secs(n))
                .map_or(Duration::MAX, until),
            n => Duration::from_secs(n),
        })
    };
    let exhausted = |name: &str| field(name).and_then(secs) == Some(0);

    let github = exhausted("x-ratelimit-remaining")
        .then(|| field("x-ratelimit-reset").and_then(reset))
        .flatten();
    let separate = exhausted("ratelimit-remaining")
        .then(|| {
            field("ratelimit-reset")
                .and_then(secs)
                .map(Duration::from_secs)
        })
        .flatten();
    let window = field("ratelimit-policy").and_then(|v| {
        v.split(',')
            .filter_map(|item| param(item, "w"))
            .max()
            .map(Duration::from_secs)
    });
    let ietf = field("ratelimit").and_then(|v| {
        if v.contains("remaining=") {
            // The older dictionary form: one quota, its members comma-separated.
            let member = |k: &str| v.split(',').find_map(|m| param(m, k));
            return (member("remaining") == Some(0))
                .then(|| member("reset").map(Duration::from_secs).or(window))
                .flatten();
        }
        v.split(',')
            .filter(|item| param(item, "r") == Some(0))
            .filter_map(|item| param(item, "t").map(Duration::from_secs).or(window))
            .max()
    });
    [github, separate, ietf].into_iter().flatten().max()
}

/// The trimmed value of the header field `name`, if present.
fn field<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
}

/// A whole number of seconds.
fn secs(v: &str) -> Option<u64> {
    v.trim().parse().ok()
}

/// The integer value of parameter `name` (`name=12`) among the `;`- or
/// space-separated parts of one list item, if any.
fn param(item: &str, name: &str) -> Option<u64> {
    item.split([';', ' '])
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim() == name)
        .and_then(|(_, v)| v.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn wait(headers: &[(&str, &str)], now: SystemTime) -> Option<Duration> {
        let owned: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        announced_wait(&owned, now)
    }

    #[test]
    fn retry_after_in_seconds_and_as_an_http_date() {
        let now = at(1_700_000_000);
        assert_eq!(
            wait(&[("Retry-After", "7")], now),
            Some(Duration::from_secs(7))
        );
        // The oracle: a date formatted by `httpdate` from a time the test picks.
        let date = httpdate::fmt_http_date(at(1_700_000_042));
        assert_eq!(
            wait(&[("retry-after", &date)], now),
            Some(Duration::from_secs(42))
        );
        let past = httpdate::fmt_http_date(at(1_600_000_000));
        assert_eq!(wait(&[("retry-after", &past)], now), Some(Duration::ZERO));
        assert_eq!(wait(&[("retry-after", "soon")], now), None);
        assert_eq!(wait(&[("content-type", "text/plain")], now), None);
    }

    #[test]
    fn github_rate_limit_headers_count_only_when_exhausted() {
        let now = at(1_700_000_000);
        let reset = "1700000090";
        assert_eq!(
            wait(
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", reset)],
                now
            ),
            Some(Duration::from_secs(90))
        );
        assert_eq!(
            wait(
                &[
                    ("x-ratelimit-remaining", "12"),
                    ("x-ratelimit-reset", reset)
                ],
                now
            ),
            None
        );
        assert_eq!(
            wait(
                &[("x-ratelimit-remaining", "0"), ("x-ratelimit-reset", "15")],
                now
            ),
            Some(Duration::from_secs(15)),
            "a small reset is delta-seconds"
        );
    }

    #[test]
    fn ietf_ratelimit_fields_in_their_draft_forms() {
        let now = at(0);
        let secs = |s| Some(Duration::from_secs(s));
        assert_eq!(
            wait(&[("RateLimit", "\"default\";r=0;t=30")], now),
            secs(30)
        );
        assert_eq!(wait(&[("RateLimit", "\"default\";r=5;t=30")], now), None);
        assert_eq!(
            wait(
                &[("RateLimit", "\"burst\";r=3;t=1, \"day\";r=0;t=600")],
                now
            ),
            secs(600)
        );
        assert_eq!(
            wait(
                &[
                    ("RateLimit", "\"default\";r=0"),
                    ("RateLimit-Policy", "\"default\";q=100;w=60")
                ],
                now
            ),
            secs(60),
            "without a reset, the policy's window"
        );
        assert_eq!(
            wait(&[("RateLimit", "limit=100, remaining=0, reset=12")], now),
            secs(12)
        );
        assert_eq!(
            wait(
                &[("RateLimit-Remaining", "0"), ("RateLimit-Reset", "9")],
                now
            ),
            secs(9)
        );
    }

    #[test]
    fn absurd_values_mean_a_long_wait_and_never_a_panic() {
        let huge = u64::MAX.to_string();
        for (name, value) in [
            ("retry-after", huge.as_str()),
            ("x-ratelimit-reset", huge.as_str()),
            ("ratelimit", "\"q\";r=0;t=18446744073709551615"),
        ] {
            let headers = [(name, value), ("x-ratelimit-remaining", "0")];
            let got = wait(&headers, at(1_700_000_000)).unwrap();
            assert!(got > Duration::from_secs(1 << 40), "{name}: {got:?}");
        }
        assert_eq!(wait(&[("retry-after", "-5")], at(0)), None);
        assert_eq!(
            wait(&[("retry-after", "99999999999999999999999")], at(0)),
            None
        );
    }

    #[test]
    fn the_longest_announced_wait_wins() {
        assert_eq!(
            wait(
                &[("retry-after", "5"), ("ratelimit", "\"default\";r=0;t=20")],
                at(0)
            ),
            Some(Duration::from_secs(20))
        );
    }
}
