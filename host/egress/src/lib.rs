//! Courier's egress checks, kept free of the runtime (no wasmtime, no I/O)
//! so that they can be fuzzed on their own (`host/fuzz`).
//!
//! - [`AllowedHost`]: typed `scheme://host[:port][/path[/*]]` patterns and
//!   their matching.
//! - [`NetworkPolicy`]: the special-purpose address ranges refused at connect
//!   time unless the operator allows them.
//! - [`head`]: the request head a plugin may send: base URLs, URL joining and checking,
//!   query pairs, headers (host-owned names, CR/LF/NUL).

mod hosts;
mod network;

pub mod head;

pub use hosts::{AllowedHost, PatternError, parse_plugin_hosts};
pub use network::{NetworkPolicy, special_range};
