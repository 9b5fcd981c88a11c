//! Retries of one plugin request, as the WIT `retry-policy` describes them:
//! which outcomes are retried, how long to wait before the next attempt.
//!
//! The loop itself is [`super::Sender::send`]'s; this module decides. The
//! backoff is "full jitter" (a uniform draw between zero and the doubled,
//! capped delay), written out here rather than taken from a backoff crate:
//! the formula is two lines, and the crates that offer it sleep on their
//! own timer, while the host sleeps on its [`crate::Clock`] so that tests
//! move a manual clock instead of waiting.

use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};

use crate::exchange::{Method, RetryPolicy, SendError, TimeoutPhase};
use crate::limits::Limits;

/// The longest delay a retry policy may name at all; more is a mistake the
/// plugin hears about (`invalid-request`), not a wish the host trims.
const ABSURD_DELAY_MS: u32 = 3_600_000;

/// A request's retry policy, checked and capped by the step's limits.
#[derive(Debug, Clone)]
pub(super) struct Retry {
    /// Attempts in all, the first included (1: no retry).
    pub(super) max_attempts: u32,
    initial: Duration,
    max: Duration,
    statuses: Vec<u16>,
}

impl Retry {
    /// The policy of a request: `None` sends once. A policy with 0 attempts,
    /// a delay over an hour, an initial delay over the maximum or a status
    /// outside 400–599 is `invalid-request` naming the field; attempts and
    /// the maximum delay are lowered to the host's caps.
    pub(super) fn new(policy: Option<&RetryPolicy>, limits: &Limits) -> Result<Self, SendError> {
        let Some(p) = policy else {
            return Ok(Self {
                max_attempts: 1,
                initial: Duration::ZERO,
                max: Duration::ZERO,
                statuses: vec![],
            });
        };
        let invalid = |m: String| Err(SendError::InvalidRequest(format!("retry policy: {m}")));
        if p.max_attempts == 0 {
            return invalid("`max-attempts` must be at least 1 (1 sends once)".into());
        }
        for (field, value) in [
            ("initial-backoff-ms", p.initial_backoff_ms),
            ("max-backoff-ms", p.max_backoff_ms),
        ] {
            if value > ABSURD_DELAY_MS {
                return invalid(format!(
                    "`{field}` of {value} ms exceeds {ABSURD_DELAY_MS} ms (one hour)"
                ));
            }
        }
        if p.initial_backoff_ms > p.max_backoff_ms {
            return invalid(format!(
                "`initial-backoff-ms` ({}) exceeds `max-backoff-ms` ({})",
                p.initial_backoff_ms, p.max_backoff_ms
            ));
        }
        if let Some(s) = p.retry_on_status.iter().find(|s| !(400..=599).contains(*s)) {
            return invalid(format!(
                "`retry-on-status` holds {s}: only 400–599 can be retried"
            ));
        }
        let ms = |v: u32| Duration::from_millis(v.into());
        Ok(Self {
            max_attempts: p.max_attempts.min(limits.max_retry_attempts.max(1)),
            initial: ms(p.initial_backoff_ms).min(limits.max_retry_backoff),
            max: ms(p.max_backoff_ms).min(limits.max_retry_backoff),
            statuses: p.retry_on_status.clone(),
        })
    }

    /// Whether the policy retries this response status.
    pub(super) fn retries_status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }

    /// The delay before retry number `retry` (1 for the second attempt):
    /// uniform in `[0, min(max, initial · 2^(retry-1))]`.
    pub(super) fn backoff(&self, retry: u32) -> Duration {
        let doubled = self.initial.saturating_mul(
            1u32.checked_shl(retry.saturating_sub(1))
                .unwrap_or(u32::MAX),
        );
        let ceiling = doubled.min(self.max).as_millis() as u64;
        Duration::from_millis(uniform(ceiling))
    }
}

/// A uniform draw from `0..=ceiling`. The modulo bias over a 64-bit draw is
/// far below what a backoff delay can show.
fn uniform(ceiling: u64) -> u64 {
    let mut bytes = [0u8; 8];
    if ceiling == 0 || SystemRandom::new().fill(&mut bytes).is_err() {
        return ceiling;
    }
    u64::from_le_bytes(bytes) % (ceiling + 1)
}

/// Whether a request may be sent again after its bytes may have reached the
/// server: it carries an idempotency key; or its method is safe (GET, HEAD,
/// OPTIONS: RFC 9110 §9.2.1, they ask for no change whatever the call);
/// or its method is idempotent (PUT, DELETE) and the step's call is
/// declared idempotent. POST and PATCH without a key, and PUT or DELETE in
/// a call not declared idempotent (an action's default), never are.
pub(super) fn replay_safe(method: Method, keyed: bool, call_idempotent: bool) -> bool {
    match method {
        Method::Get | Method::Head | Method::Options => true,
        Method::Put | Method::Delete => keyed || call_idempotent,
        Method::Post | Method::Patch => keyed,
    }
}

/// Why a failed attempt may be retried, or `None` if it may not: failures
/// before any byte left (DNS, connect, connect and TLS handshake timeouts,
/// an open circuit) for every request, failures after it (waiting for or
/// reading the response, a broken connection) only for a [`replay_safe`]
/// one. Policy, TLS, size, credential, limit and step-deadline failures are
/// final.
pub(super) fn retryable_error(e: &SendError, replay_safe: bool) -> Option<String> {
    let before_sending = match e {
        SendError::Dns(_)
        | SendError::Connect(_)
        | SendError::CircuitOpen(_)
        | SendError::Timeout(TimeoutPhase::Connect | TimeoutPhase::TlsHandshake) => true,
        SendError::Timeout(TimeoutPhase::FirstByte | TimeoutPhase::Total)
        | SendError::Protocol(_) => false,
        _ => return None,
    };
    (before_sending || replay_safe).then(|| match e {
        SendError::Timeout(phase) => format!("timeout: {phase}"),
        other => other.kind().as_str().to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(attempts: u32, initial: u32, max: u32, statuses: &[u16]) -> RetryPolicy {
        RetryPolicy {
            max_attempts: attempts,
            initial_backoff_ms: initial,
            max_backoff_ms: max,
            retry_on_status: statuses.to_vec(),
        }
    }

    #[test]
    fn bad_policies_are_refused_naming_the_field() {
        let limits = Limits::default();
        for (p, field) in [
            (policy(0, 10, 100, &[]), "`max-attempts`"),
            (policy(3, 4_000_000, 4_000_000, &[]), "`initial-backoff-ms`"),
            (policy(3, 10, 3_600_001, &[]), "`max-backoff-ms`"),
            (policy(3, 500, 100, &[]), "`initial-backoff-ms` (500)"),
            (policy(3, 10, 100, &[200]), "`retry-on-status` holds 200"),
        ] {
            let err = Retry::new(Some(&p), &limits).unwrap_err();
            assert!(matches!(err, SendError::InvalidRequest(_)), "{err}");
            assert!(err.to_string().contains(field), "{err} lacks {field}");
        }
    }

    #[test]
    fn attempts_and_delays_are_capped_by_the_limits() {
        let limits = Limits {
            max_retry_attempts: 3,
            max_retry_backoff: Duration::from_millis(800),
            ..Limits::default()
        };
        let r = Retry::new(Some(&policy(50, 100, 60_000, &[503])), &limits).unwrap();
        assert_eq!(r.max_attempts, 3);
        for retry in 1..40 {
            let ceiling = (100u64 << (retry - 1).min(20)).min(800);
            assert!(
                r.backoff(retry).as_millis() as u64 <= ceiling,
                "retry {retry}"
            );
        }
        assert!(r.retries_status(503) && !r.retries_status(500));
        assert_eq!(Retry::new(None, &limits).unwrap().max_attempts, 1);
    }

    #[test]
    fn backoff_is_jittered_over_the_whole_range() {
        let r = Retry::new(Some(&policy(5, 1000, 1000, &[])), &Limits::default()).unwrap();
        let draws: Vec<u128> = (0..400).map(|_| r.backoff(1).as_millis()).collect();
        assert!(draws.iter().all(|d| *d <= 1000));
        assert!(
            draws.iter().any(|d| *d < 250),
            "full jitter reaches low values"
        );
        assert!(draws.iter().any(|d| *d > 750), "and high ones");
    }

    #[test]
    fn only_failures_before_sending_retry_a_request_that_is_not_replay_safe() {
        let before = [
            SendError::Dns("x".into()),
            SendError::Connect("x".into()),
            SendError::Timeout(TimeoutPhase::Connect),
            SendError::Timeout(TimeoutPhase::TlsHandshake),
            SendError::CircuitOpen("x".into()),
        ];
        let after = [
            SendError::Protocol("reset".into()),
            SendError::Timeout(TimeoutPhase::FirstByte),
            SendError::Timeout(TimeoutPhase::Total),
        ];
        let never = [
            SendError::Timeout(TimeoutPhase::StepDeadline),
            SendError::Denied("x".into()),
            SendError::Tls("x".into()),
            SendError::Limit("x".into()),
        ];
        for e in &before {
            assert!(retryable_error(e, false).is_some(), "{e}");
        }
        for e in &after {
            assert!(retryable_error(e, false).is_none(), "{e}");
            assert!(retryable_error(e, true).is_some(), "{e}");
        }
        for e in &never {
            assert!(retryable_error(e, true).is_none(), "{e}");
        }
        assert!(replay_safe(Method::Post, true, false));
        assert!(!replay_safe(Method::Post, false, true));
        assert!(!replay_safe(Method::Patch, false, true));
        assert!(replay_safe(Method::Get, false, false));
        assert!(replay_safe(Method::Put, false, true));
        assert!(!replay_safe(Method::Delete, false, false));
        assert!(replay_safe(Method::Delete, true, false));
    }
}
