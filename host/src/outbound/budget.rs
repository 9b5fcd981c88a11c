//! Rate budgets per connection, shared by every step of the host that uses
//! the same credential (tenant and connection id).
//!
//! A budget holds the narrower of the plugin's declared limits and the
//! operator's (the connection file's `[rate]` table): at most `requests` requests in any window of `per_secs` seconds
//! (a sliding log of send times, so the `requests + 1`-th waits exactly
//! until the oldest leaves the window) and at most `concurrent` requests in
//! flight. What the upstream announces narrows it: a rate-limit field with
//! a remaining count of 0 ([`super::announced::rate_limit_wait`]) holds
//! every request of the connection until its reset, with or without a
//! `[rate]` table.
//!
//! A request that would exceed the budget waits on the host's [`Clock`]
//! (a slot for a concurrent request: on a semaphore, bounded by the step
//! deadline) or, when the wait would pass the step deadline, ends at once
//! with a [`SendError::Limit`] (`max-connection`) without reaching the
//! transport. Token requests are not counted.
//!
//! Steps of different plugins (or bindings) may bring different limits for
//! one tenant and connection id: the budget follows the latest request's and
//! keeps its send log, so no binding starts a fresh window. A changed
//! `concurrent` starts a fresh set of slots (requests in flight on the old
//! ones are not counted against the new).
//!
//! The window and semaphore are hand-written: `governor`'s GCRA refills one
//! place every `per_secs / requests` rather than allowing `requests` in any
//! window of `per_secs`, and its clock trait only reads the time (its waits
//! sleep on a real timer), so the host's [`Clock`] seam could not drive
//! them in tests.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::announced;
use crate::clock::Clock;
use crate::credentials::ConnectionRate;
use crate::exchange::SendError;
use crate::limits::RateSettings;
use crate::shared::BoundedCache;

/// How many connections' budgets a host keeps; past it, the least recently
/// used is dropped (and starts afresh when next used).
const BUDGETS: usize = 4096;

/// A connection's budget as [`crate::Host::rate_budget`] shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateBudget {
    /// The limits in force (the narrower of the plugin's and the operator's,
    /// as the latest request of the connection brought them).
    pub settings: RateSettings,
    /// Requests sent within the current window (0 without a window).
    pub in_window: u32,
    /// Requests in flight now (0 without a concurrency limit).
    pub in_flight: u32,
    /// How long the upstream's announcement still holds requests back.
    pub held_for: Option<Duration>,
}

/// Every connection's budget, keyed by tenant and connection id.
pub(super) struct Budgets {
    clock: Arc<dyn Clock>,
    entries: BoundedCache<(String, String), Arc<Budget>>,
}

/// One connection's budget.
#[derive(Default)]
struct Budget {
    state: Mutex<Window>,
}

/// What a budget remembers.
#[derive(Default)]
struct Window {
    /// The limits in force.
    settings: RateSettings,
    /// Slots for concurrent requests, when `concurrent` is set.
    slots: Option<Arc<Semaphore>>,
    /// Send times within the window, oldest first.
    sent: VecDeque<Instant>,
    /// Until when the upstream said it accepts no request.
    held_until: Option<Instant>,
}

/// A request's place in its connection's budget: holds a concurrent slot
/// until dropped.
pub(super) struct Admitted {
    _slot: Option<OwnedSemaphorePermit>,
    /// How long the request waited for the budget.
    pub(super) waited: Duration,
}

impl Budgets {
    /// No budget yet; times read from `clock`.
    pub(super) fn new(clock: Arc<dyn Clock>) -> Self {
        Self {
            clock,
            entries: BoundedCache::new(BUDGETS),
        }
    }

    /// The kept budget of the connection `owner` (tenant, connection id).
    fn kept(&self, owner: &(String, String)) -> Option<Arc<Budget>> {
        self.entries.get_with(owner, |b| Some(b.clone()))
    }

    /// The budget of `rate`'s connection, made if there is none, following
    /// `rate`'s limits.
    fn budget(&self, rate: &ConnectionRate) -> Arc<Budget> {
        let budget = match self.kept(&rate.owner) {
            Some(budget) => budget,
            None => {
                let built = self
                    .entries
                    .get_or_build(rate.owner.clone(), || Ok::<_, Infallible>(Arc::default()));
                let Ok(budget) = built;
                budget
            }
        };
        budget.lock().follow(rate.settings);
        budget
    }

    /// Takes a place for one request of `rate`'s connection, waiting for it
    /// until `deadline` at most (`deadline` on the host's clock for the
    /// window, `step_deadline` on tokio's for a concurrent slot). A wait
    /// that would pass the deadline is not begun: the request ends with
    /// [`SendError::Limit`]. `None` when the connection has no budget: no
    /// limits declared or set and nothing announced.
    pub(super) async fn admit(
        &self,
        rate: &ConnectionRate,
        deadline: Instant,
        step_deadline: tokio::time::Instant,
    ) -> Result<Option<Admitted>, SendError> {
        if rate.settings.is_unlimited() && self.kept(&rate.owner).is_none() {
            return Ok(None);
        }
        let budget = self.budget(rate);
        let began = self.clock.now();
        let slots = budget.lock().slots.clone();
        let slot = match slots {
            Some(slots) => {
                match tokio::time::timeout_at(step_deadline, slots.acquire_owned()).await {
                    Ok(Ok(slot)) => Some(slot),
                    _ => {
                        let n = rate.settings.concurrent.unwrap_or_default();
                        return Err(refusal(
                            rate,
                            &format!("all {n} concurrent slots stay taken"),
                        ));
                    }
                }
            }
            None => None,
        };
        loop {
            let now = self.clock.now();
            let wait = budget.lock().take(now);
            let Some(wait) = wait else { break };
            if now + wait > deadline {
                return Err(refusal(
                    rate,
                    &format!("the next place frees in {} ms", wait.as_millis()),
                ));
            }
            self.clock.sleep(wait).await;
        }
        Ok(Some(Admitted {
            _slot: slot,
            waited: self.clock.now().saturating_duration_since(began),
        }))
    }

    /// The budget of `tenant`'s connection `id`, if the host keeps one.
    pub(super) fn state(&self, tenant: &str, id: &str) -> Option<RateBudget> {
        let budget = self.kept(&(tenant.to_owned(), id.to_owned()))?;
        let now = self.clock.now();
        let mut window = budget.lock();
        window.forget(now);
        let in_flight = match (&window.slots, window.settings.concurrent) {
            (Some(slots), Some(n)) => n.saturating_sub(slots.available_permits() as u32),
            _ => 0,
        };
        Some(RateBudget {
            settings: window.settings,
            in_window: window.sent.len() as u32,
            in_flight,
            held_for: window
                .held_until
                .map(|t| t.saturating_duration_since(now))
                .filter(|d| !d.is_zero()),
        })
    }

    /// Takes in what a response of `rate`'s connection announces: a
    /// remaining count of 0 holds the connection's requests until the reset.
    /// A connection without limits gets a budget only then.
    pub(super) fn announce(
        &self,
        rate: &ConnectionRate,
        headers: &[(String, String)],
        wall: SystemTime,
    ) {
        let Some(wait) = announced::rate_limit_wait(headers, wall) else {
            return;
        };
        let now = self.clock.now();
        // A reset past what the clock can hold: as long as can be said.
        let until = now
            .checked_add(wait)
            .unwrap_or(now + Duration::from_secs(u32::MAX.into()));
        let budget = self.budget(rate);
        let mut window = budget.lock();
        window.held_until = Some(window.held_until.map_or(until, |held| held.max(until)));
    }
}

impl Budget {
    fn lock(&self) -> MutexGuard<'_, Window> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl Window {
    /// Takes `settings` as the limits in force, keeping the send log; a
    /// changed `concurrent` gets fresh slots.
    fn follow(&mut self, settings: RateSettings) {
        if self.settings == settings {
            return;
        }
        if self.settings.concurrent != settings.concurrent || self.slots.is_none() {
            self.slots = settings
                .concurrent
                .map(|n| Arc::new(Semaphore::new(n as usize)));
        }
        self.settings = settings;
    }

    /// Drops send times that left the window.
    fn forget(&mut self, now: Instant) {
        let Some(per) = self
            .settings
            .per_secs
            .map(|s| Duration::from_secs(s.into()))
        else {
            return;
        };
        while self
            .sent
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= per)
        {
            self.sent.pop_front();
        }
    }

    /// Counts a request sent `now` and returns `None`, or returns how long
    /// it must wait first.
    fn take(&mut self, now: Instant) -> Option<Duration> {
        if let Some(until) = self.held_until {
            if until > now {
                return Some(until - now);
            }
            self.held_until = None;
        }
        self.forget(now);
        let (requests, per) = self.settings.requests.zip(self.settings.per_secs)?;
        if self.sent.len() >= requests as usize {
            // The log may hold more than `requests` when the limits narrowed.
            let frees = self.sent.len() - requests as usize;
            let at = self.sent.get(frees).copied().unwrap_or(now);
            return Some((at + Duration::from_secs(per.into())).saturating_duration_since(now));
        }
        self.sent.push_back(now);
        None
    }
}

/// The error of a request whose budget has no room before the deadline.
fn refusal(rate: &ConnectionRate, why: &str) -> SendError {
    SendError::Limit(format!(
        "the rate budget of connection `{}` has no room before the step deadline ({why}); the request was not sent",
        rate.owner.1
    ))
}
