//! How a step ended, as platforms route on it: the [`Outcome`] class and,
//! for a failure, its stable [`FailureKind`]. The lowest layer of step
//! results: requests (`exchange`) and steps (`step`) both classify into it.

use serde::Serialize;

/// How a step ended, in the classes platforms route on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Outcome {
    /// The call returned output.
    Success,
    /// The upstream answered with a non-2xx status.
    HttpError,
    /// The step or one of its requests ran out of time.
    Timeout,
    /// A limit or pool was exhausted.
    MaxConnection,
    /// Policy refused a request.
    Denied,
    /// Anything else: invalid input, plugin failure, trap.
    Error,
}

/// Every kind of failure a step result can carry: the step's own kinds,
/// then the `send-error` cases of `wit/types.wit` (`limit` is both). Each
/// serializes to the stable kebab-case text shown in step results
/// (`invalid-step`, `too-large`, …), which [`FailureKind::as_str`] also gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum FailureKind {
    /// The step request itself is wrong: unknown plugin or call, a
    /// connection not declared, bound twice or not valid.
    InvalidStep,
    /// The input does not match the call's schema, or the plugin refused it.
    InvalidInput,
    /// The plugin failed: it reported a failure, returned invalid JSON or
    /// could not be instantiated.
    Plugin,
    /// The plugin trapped.
    Trap,
    /// The plugin exceeded its memory limit.
    Memory,
    /// The step did not finish within its deadline.
    Deadline,
    /// A limit was reached: the step was not admitted, the instance pool was
    /// full, or a request hit a step limit (`send-error.limit`).
    Limit,
    /// The upstream answered with a non-2xx status the plugin reported.
    Http,
    /// `send-error.denied`: policy refused a request.
    Denied,
    /// `send-error.timeout`: a phase of a request ran out of time.
    Timeout,
    /// `send-error.dns`: a host name could not be resolved.
    Dns,
    /// `send-error.connect`: the TCP connection failed.
    Connect,
    /// `send-error.tls`: TLS failed.
    Tls,
    /// `send-error.too-large`: a response exceeded a size cap.
    TooLarge,
    /// `send-error.protocol`: the peer broke HTTP.
    Protocol,
    /// `send-error.invalid-request`: a request was invalid.
    InvalidRequest,
    /// `send-error.credential`: a connection's credentials were unavailable.
    Credential,
    /// `send-error.circuit-open`: the host stopped calling an origin for a while.
    CircuitOpen,
    /// The output does not match the call's declared output schema, and the
    /// operator makes that fail the step.
    ContractDrift,
    /// `send-error.other`: anything else.
    Other,
}

impl FailureKind {
    /// The kind's stable text, as step results serialize it.
    pub fn as_str(&self) -> &'static str {
        match self {
            FailureKind::InvalidStep => "invalid-step",
            FailureKind::InvalidInput => "invalid-input",
            FailureKind::Plugin => "plugin",
            FailureKind::Trap => "trap",
            FailureKind::Memory => "memory",
            FailureKind::Deadline => "deadline",
            FailureKind::Limit => "limit",
            FailureKind::Http => "http",
            FailureKind::Denied => "denied",
            FailureKind::Timeout => "timeout",
            FailureKind::Dns => "dns",
            FailureKind::Connect => "connect",
            FailureKind::Tls => "tls",
            FailureKind::TooLarge => "too-large",
            FailureKind::Protocol => "protocol",
            FailureKind::InvalidRequest => "invalid-request",
            FailureKind::Credential => "credential",
            FailureKind::CircuitOpen => "circuit-open",
            FailureKind::ContractDrift => "contract-drift",
            FailureKind::Other => "other",
        }
    }
}

impl std::fmt::Display for FailureKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<str> for FailureKind {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for FailureKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}
