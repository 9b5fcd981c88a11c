//! A circuit breaker per origin, shared by every step of the host.
//!
//! Closed, an origin takes every request. It **opens** after
//! [`CircuitSettings::consecutive_failures`] failures in a row, or when
//! within one [`CircuitSettings::window`] at least
//! [`CircuitSettings::min_requests`] requests went to it and
//! [`CircuitSettings::failure_rate_percent`] of them failed. Open, requests
//! end at once with `circuit-open`, without reaching the transport. After
//! the open time ([`CircuitSettings::open_for`], times the number of
//! openings in a row, at most [`CircuitSettings::max_open_for`]) it is
//! **half-open**: [`CircuitSettings::half_open_probes`] requests go through
//! as probes; one success closes it, a failure opens it again. A failure is
//! a 5xx response or a failure of the exchange itself (DNS, connect, a
//! timeout other than the step's deadline, a broken connection): what
//! Envoy's outlier detection counts, whose defaults these follow
//! (`consecutive_5xx` 5, `failure_percentage_threshold` 85 with
//! `failure_percentage_request_volume` 50 per 10 s `interval`,
//! `base_ejection_time` 30 s growing with each ejection up to
//! `max_ejection_time` 300 s).
//!
//! Time is read from the host's [`Clock`], so tests move a manual clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::Clock;
use crate::exchange::{Response, SendError, TimeoutPhase};
use crate::limits::MAX_BUDGET;

/// How the per-origin circuit breakers behave
/// ([`crate::HostBuilder::circuit_breaker`]). Every value has a default.
#[derive(Debug, Clone)]
pub struct CircuitSettings {
    /// Whether circuits open at all (default `true`); off, every request
    /// goes to the transport and [`crate::Host::circuit_state`] stays
    /// `Closed`.
    pub enabled: bool,
    /// Failures in a row that open an origin's circuit (default 5).
    pub consecutive_failures: u32,
    /// Share of failed requests, in percent, that opens the circuit within
    /// one window (default 85).
    pub failure_rate_percent: u8,
    /// Requests a window needs before its failure rate counts (default 50).
    pub min_requests: u32,
    /// The window the failure rate is measured over (default 10 s).
    pub window: Duration,
    /// How long a circuit stays open the first time (default 30 s); each
    /// further opening in a row adds as much again.
    pub open_for: Duration,
    /// The longest a circuit stays open (default 300 s; never more than a
    /// year, whatever is set).
    pub max_open_for: Duration,
    /// Requests let through at once while half-open (default 1).
    pub half_open_probes: u32,
}

impl Default for CircuitSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            consecutive_failures: 5,
            failure_rate_percent: 85,
            min_requests: 50,
            window: Duration::from_secs(10),
            open_for: Duration::from_secs(30),
            max_open_for: Duration::from_secs(300),
            half_open_probes: 1,
        }
    }
}

impl CircuitSettings {
    /// Settings with the breaker off.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

/// The state of one origin's circuit ([`crate::Host::circuit_state`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CircuitState {
    /// Requests go through (also: an origin never called, or the breaker off).
    Closed,
    /// Requests end with `circuit-open` for this much longer.
    Open {
        /// Time left until the circuit turns half-open.
        remaining: Duration,
    },
    /// Probes go through; their outcome closes or reopens the circuit.
    HalfOpen,
}

/// Every origin's circuit.
pub(super) struct Circuits {
    settings: CircuitSettings,
    clock: Arc<dyn Clock>,
    origins: Mutex<Origins>,
}

/// The circuits by origin, hashed with foldhash as the host's caches are.
type Origins = HashMap<String, Circuit, foldhash::quality::RandomState>;

/// `origin`'s circuit, made closed if there is none. (Looked up first: the
/// key is allocated only for an origin not seen before.)
fn circuit_of<'m>(origins: &'m mut Origins, origin: &str) -> &'m mut Circuit {
    if !origins.contains_key(origin) {
        origins.insert(origin.to_owned(), Circuit::default());
    }
    origins.get_mut(origin).expect("inserted above")
}

#[derive(Default)]
struct Circuit {
    /// Failures in a row.
    consecutive: u32,
    window_start: Option<Instant>,
    window_requests: u32,
    window_failures: u32,
    /// Openings in a row (reset when a probe succeeds).
    openings: u32,
    /// Open until then; half-open once past it.
    open_until: Option<Instant>,
    /// Probes under way while half-open.
    probes: u32,
}

/// Leave to send one request to an origin; [`Ticket::settle`] reports how it
/// went. Dropped unsettled (the step ended first), it frees its probe slot.
pub(super) struct Ticket<'a> {
    circuits: &'a Circuits,
    origin: String,
    probe: bool,
    settled: bool,
}

impl Circuits {
    pub(super) fn new(settings: CircuitSettings, clock: Arc<dyn Clock>) -> Self {
        Self {
            settings,
            clock,
            origins: Mutex::default(),
        }
    }

    /// Leave to send to `origin`, or `circuit-open` while its circuit is
    /// open (or half-open with every probe slot taken).
    pub(super) fn admit(&self, origin: &str) -> Result<Option<Ticket<'_>>, SendError> {
        if !self.settings.enabled {
            return Ok(None);
        }
        let now = self.clock.now();
        let mut origins = self.origins.lock().expect("circuits poisoned");
        let circuit = circuit_of(&mut origins, origin);
        let probe = match circuit.open_until {
            None => false,
            Some(until) if now < until => {
                return Err(SendError::CircuitOpen(format!(
                    "{origin} failed repeatedly; the host sends to it again in {} ms",
                    (until - now).as_millis()
                )));
            }
            Some(_) if circuit.probes >= self.settings.half_open_probes.max(1) => {
                return Err(SendError::CircuitOpen(format!(
                    "{origin} failed repeatedly; a probe request is under way"
                )));
            }
            Some(_) => {
                circuit.probes += 1;
                true
            }
        };
        Ok(Some(Ticket {
            circuits: self,
            origin: origin.to_owned(),
            probe,
            settled: false,
        }))
    }

    /// The state of `origin`'s circuit now.
    pub(super) fn state(&self, origin: &str) -> CircuitState {
        let now = self.clock.now();
        let origins = self.origins.lock().expect("circuits poisoned");
        match origins.get(origin).and_then(|c| c.open_until) {
            None => CircuitState::Closed,
            Some(until) if now < until => CircuitState::Open {
                remaining: until - now,
            },
            Some(_) => CircuitState::HalfOpen,
        }
    }

    fn record(&self, origin: &str, probe: bool, failed: bool) {
        let s = &self.settings;
        let now = self.clock.now();
        let mut origins = self.origins.lock().expect("circuits poisoned");
        let c = circuit_of(&mut origins, origin);
        if probe {
            c.probes = c.probes.saturating_sub(1);
        }
        if c.open_until.is_some() && !probe {
            // A request admitted before the circuit opened: the probes decide.
            return;
        }
        if c.window_start
            .is_none_or(|start| now.duration_since(start) >= s.window)
        {
            c.window_start = Some(now);
            c.window_requests = 0;
            c.window_failures = 0;
        }
        c.window_requests += 1;
        if !failed {
            c.consecutive = 0;
            if probe {
                *c = Circuit::default();
            }
            return;
        }
        c.consecutive += 1;
        c.window_failures += 1;
        let rate_exceeded = c.window_requests >= s.min_requests.max(1)
            && u64::from(c.window_failures) * 100
                >= u64::from(s.failure_rate_percent) * u64::from(c.window_requests);
        if probe || c.consecutive >= s.consecutive_failures.max(1) || rate_exceeded {
            c.openings += 1;
            let open_for = s
                .open_for
                .saturating_mul(c.openings)
                .min(s.max_open_for)
                .min(MAX_BUDGET);
            c.open_until = Some(now + open_for);
            c.consecutive = 0;
            c.window_start = None;
            tracing::warn!(origin, ?open_for, "circuit opened");
        }
    }
}

impl Ticket<'_> {
    /// Reports the exchange's outcome: a 5xx or a failure of the exchange
    /// counts against the origin, anything else for it.
    pub(super) fn settle(mut self, outcome: &Result<Response, SendError>) {
        self.settled = true;
        let failed = match outcome {
            Ok(r) => r.status >= 500,
            Err(e) => counts_as_failure(e),
        };
        self.circuits.record(&self.origin, self.probe, failed);
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.settled {
            let mut origins = self.circuits.origins.lock().expect("circuits poisoned");
            if let Some(c) = origins.get_mut(&self.origin) {
                c.probes = c.probes.saturating_sub(1);
            }
        }
    }
}

/// Whether a failed exchange says something about the origin's health.
fn counts_as_failure(e: &SendError) -> bool {
    match e {
        SendError::Timeout(phase) => *phase != TimeoutPhase::StepDeadline,
        SendError::Dns(_) | SendError::Connect(_) | SendError::Protocol(_) => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;
    use crate::outbound::pipeline_tests::ManualClock;

    fn circuits(settings: CircuitSettings) -> (Circuits, Arc<ManualClock>) {
        let clock = Arc::new(ManualClock::new(UNIX_EPOCH));
        (Circuits::new(settings, clock.clone()), clock)
    }

    fn failed() -> Result<Response, SendError> {
        Err(SendError::Connect("refused".into()))
    }

    fn answered(status: u16) -> Result<Response, SendError> {
        Ok(Response {
            status,
            headers: vec![],
            body: vec![],
            final_url: String::new(),
        })
    }

    #[test]
    fn half_open_lets_one_probe_through_and_a_dropped_probe_frees_its_slot() {
        let (c, clock) = circuits(CircuitSettings {
            consecutive_failures: 1,
            ..CircuitSettings::default()
        });
        c.admit("o").unwrap().unwrap().settle(&failed());
        assert!(matches!(c.admit("o"), Err(SendError::CircuitOpen(_))));
        clock.advance(Duration::from_secs(30));
        let probe = c.admit("o").unwrap().unwrap();
        let second = c.admit("o").err().unwrap();
        assert!(second.to_string().contains("probe"), "{second}");
        drop(probe);
        assert_eq!(c.state("o"), CircuitState::HalfOpen);
        let probe = c.admit("o").unwrap().unwrap();
        probe.settle(&answered(200));
        assert_eq!(c.state("o"), CircuitState::Closed);
    }

    #[test]
    fn open_times_grow_with_each_opening_up_to_the_maximum() {
        let (c, clock) = circuits(CircuitSettings {
            consecutive_failures: 1,
            open_for: Duration::from_secs(100),
            max_open_for: Duration::from_secs(250),
            ..CircuitSettings::default()
        });
        c.admit("o").unwrap().unwrap().settle(&failed());
        for expected in [200, 250, 250] {
            clock.advance(Duration::from_secs(300));
            c.admit("o").unwrap().unwrap().settle(&failed());
            assert_eq!(
                c.state("o"),
                CircuitState::Open {
                    remaining: Duration::from_secs(expected)
                }
            );
        }
    }

    #[test]
    fn a_step_deadline_or_a_4xx_says_nothing_about_the_origin() {
        let (c, _) = circuits(CircuitSettings {
            consecutive_failures: 1,
            ..CircuitSettings::default()
        });
        c.admit("o")
            .unwrap()
            .unwrap()
            .settle(&Err(SendError::Timeout(TimeoutPhase::StepDeadline)));
        c.admit("o").unwrap().unwrap().settle(&answered(429));
        assert_eq!(c.state("o"), CircuitState::Closed);
        assert!(
            Circuits::new(
                CircuitSettings::disabled(),
                Arc::new(crate::clock::SystemClock)
            )
            .admit("o")
            .unwrap()
            .is_none()
        );
    }
}
