//! Why a call failed.

use std::fmt;

use serde_json::Value;

use crate::http::SendError;

/// Why a call failed; the host turns it into the step's outcome.
///
/// `?` converts a [`SendError`] (into [`StepError::Send`]) and a
/// [`serde_json::Error`] (into [`StepError::Failed`]: the SDK itself reports
/// input that does not match the call's input type as
/// [`StepError::InvalidInput`], so a JSON error inside a call comes from data
/// the plugin handles, such as an upstream body or its own output).
#[derive(Debug, Clone, PartialEq)]
pub enum StepError {
    /// The input is not what the call accepts (outcome `error`).
    InvalidInput(String),
    /// The upstream answered with a status outside 2xx (outcome `http-error`).
    Http {
        /// The final status.
        status: u16,
        /// A short description.
        message: String,
        /// Output the step still returns (for example the response), so a
        /// platform can route on it.
        output: Option<Value>,
    },
    /// A request failed; the outcome follows the host's error (`timeout`,
    /// `denied`, `max-connection`, `error`).
    Send(SendError),
    /// Anything else (outcome `error`).
    Failed(String),
}

impl StepError {
    /// The input is not what the call accepts.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::InvalidInput(message.into())
    }

    /// The upstream answered `status` (outside 2xx); no output.
    pub fn http(status: u16, message: impl Into<String>) -> Self {
        Self::Http {
            status,
            message: message.into(),
            output: None,
        }
    }

    /// A request failed.
    pub fn send(error: SendError) -> Self {
        Self::Send(error)
    }

    /// Anything else.
    pub fn failed(message: impl Into<String>) -> Self {
        Self::Failed(message.into())
    }
}

impl fmt::Display for StepError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::InvalidInput(message) => write!(f, "invalid input: {message}"),
            Self::Http {
                status, message, ..
            } => write!(f, "HTTP {status}: {message}"),
            Self::Send(error) => write!(f, "request failed: {error}"),
            Self::Failed(message) => f.write_str(message),
        }
    }
}

impl std::error::Error for StepError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Send(error) => Some(error),
            _ => None,
        }
    }
}

impl From<SendError> for StepError {
    fn from(error: SendError) -> Self {
        Self::Send(error)
    }
}

impl From<serde_json::Error> for StepError {
    fn from(error: serde_json::Error) -> Self {
        Self::Failed(format!("JSON: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::SendReason;

    #[test]
    fn question_mark_converts_send_and_json_errors() {
        fn send() -> Result<(), StepError> {
            Err(SendError::from(SendReason::Denied(
                "host not allowed".into(),
            )))?
        }
        fn parse() -> Result<Value, StepError> {
            Ok(serde_json::from_str("{")?)
        }
        assert_eq!(
            send().unwrap_err(),
            StepError::Send(SendReason::Denied("host not allowed".into()).into())
        );
        assert!(matches!(parse().unwrap_err(), StepError::Failed(m) if m.starts_with("JSON: ")));
    }

    #[test]
    fn display_names_the_kind() {
        assert_eq!(
            StepError::invalid_input("no email").to_string(),
            "invalid input: no email"
        );
        assert_eq!(
            StepError::http(404, "not found").to_string(),
            "HTTP 404: not found"
        );
        assert_eq!(
            StepError::send(SendReason::Timeout(crate::http::TimeoutPhase::Connect).into())
                .to_string(),
            "request failed: timed out (connect)"
        );
        assert_eq!(StepError::failed("boom").to_string(), "boom");
    }
}
