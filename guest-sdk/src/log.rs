//! Step logs, recorded by the host and attached to the step's result.
//!
//! The host escapes control characters and caps each line and the step's
//! total; past the budget, lines are counted and dropped. Logging never fails.
//! The macros [`trace!`](crate::trace), [`debug!`](crate::debug),
//! [`info!`](crate::info), [`warn!`](crate::warn) and [`error!`](crate::error)
//! take `format!` arguments.

/// How much a log line matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Level {
    /// Fine detail.
    Trace,
    /// Diagnostics.
    Debug,
    /// Normal events.
    Info,
    /// Something unexpected that was handled.
    Warn,
    /// A failure.
    Error,
}

/// Records one line at `level`.
pub fn log(level: Level, message: &str) {
    crate::host::log(level, message);
}

/// Records a line of fine detail.
pub fn trace(message: &str) {
    log(Level::Trace, message);
}

/// Records a diagnostic line.
pub fn debug(message: &str) {
    log(Level::Debug, message);
}

/// Records a normal event.
pub fn info(message: &str) {
    log(Level::Info, message);
}

/// Records something unexpected that the plugin handled.
pub fn warn(message: &str) {
    log(Level::Warn, message);
}

/// Records a failure.
pub fn error(message: &str) {
    log(Level::Error, message);
}

/// Records a `trace` line: `trace!("sent {} requests", n)`.
#[macro_export]
macro_rules! trace {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Trace, &::std::format!($($arg)+)) };
}

/// Records a `debug` line: `debug!("page {page}")`.
#[macro_export]
macro_rules! debug {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Debug, &::std::format!($($arg)+)) };
}

/// Records an `info` line: `info!("created {id}")`.
#[macro_export]
macro_rules! info {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Info, &::std::format!($($arg)+)) };
}

/// Records a `warn` line: `warn!("retrying after {status}")`.
#[macro_export]
macro_rules! warn {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Warn, &::std::format!($($arg)+)) };
}

/// Records an `error` line: `error!("gave up: {error}")`.
#[macro_export]
macro_rules! error {
    ($($arg:tt)+) => { $crate::log::log($crate::log::Level::Error, &::std::format!($($arg)+)) };
}
