//! The host's clock: the time the token manager reads (when a cached access
//! token is due for renewal, the `iat`/`exp` of host-signed JWTs) and the
//! sleep that timers (retry backoff, circuit breakers) will wait on.
//!
//! [`SystemClock`] is the default; an embedder or a test sets another with
//! `HostBuilder::clock`, so that token expiry can be tested by moving a
//! manual clock forward instead of sleeping.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, Instant, SystemTime};

/// A source of time for the host. Called from steps, concurrently, hence
/// `Send + Sync`.
pub trait Clock: Send + Sync + 'static {
    /// Monotonic now: what expiries and timers are measured against.
    fn now(&self) -> Instant;

    /// Wall-clock now: what goes into tokens other parties read (a JWT's
    /// `iat` and `exp`).
    fn wall(&self) -> SystemTime;

    /// Waits `duration` of this clock's time. A manual clock may complete
    /// the future when the test moves the clock past it.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

/// The system's clocks ([`Instant::now`], [`SystemTime::now`]) and tokio's
/// timer.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        Instant::now()
    }

    fn wall(&self) -> SystemTime {
        SystemTime::now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(tokio::time::sleep(duration))
    }
}
