//! The operator's connection file (TOML): what it may say and how it is read.

use std::path::Path;

use serde::Deserialize;

use super::Secret;

/// What a connection file or the library caller may choose as the scheme of a
/// connection whose plugin leaves it to the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AuthKind {
    /// No credentials.
    None,
    /// `Authorization: Bearer <token>`.
    Bearer,
    /// HTTP Basic.
    Basic,
    /// An API key in a header or query parameter.
    ApiKey,
}

/// The secrets of a connection file's `[secrets]` table.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Secrets {
    /// Bearer token.
    pub token: Option<Secret>,
    /// Basic user name.
    pub username: Option<Secret>,
    /// Basic password.
    pub password: Option<Secret>,
    /// API key.
    pub key: Option<Secret>,
}

/// An operator's binding of one declared connection: the TOML connection file.
///
/// ```toml
/// connection = "default"          # the plugin's declared connection name
/// base_url = "https://api.example.com/v1"
/// auth = "api-key"                # none | bearer | basic | api-key
/// header = "X-Api-Key"            # api-key: a header name, or
/// # query = "api_key"             # a query parameter name
/// [secrets]
/// key = "..."
/// ```
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectionConfig {
    /// The declared connection this binds.
    pub connection: String,
    /// Overrides the manifest's base URL.
    pub base_url: Option<String>,
    /// The scheme; required when the plugin leaves it to the operator, else it
    /// must agree with the plugin's declaration.
    pub auth: Option<AuthKind>,
    /// API key header name.
    pub header: Option<String>,
    /// API key query parameter name.
    pub query: Option<String>,
    /// The secrets.
    #[serde(default)]
    pub secrets: Secrets,
}

/// A connection configuration is invalid for the plugin it is bound to.
#[derive(Debug, thiserror::Error)]
#[error("connection `{connection}`: {message}")]
pub struct ConnectionError {
    pub(super) connection: String,
    pub(super) message: String,
}

impl ConnectionConfig {
    /// Reads a TOML connection file.
    pub fn from_file(path: &Path) -> Result<Self, ConnectionError> {
        let fail = |message: String| ConnectionError { connection: path.display().to_string(), message };
        let text = std::fs::read_to_string(path).map_err(|e| fail(format!("cannot read: {e}")))?;
        toml::from_str(&text).map_err(|e| fail(format!("invalid connection file: {e}")))
    }
}
