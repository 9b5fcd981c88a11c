//! `/metrics` in the Prometheus text format: steps by tenant, plugin, call
//! and outcome; step latency by plugin and call; outbound request latency,
//! token requests and contract drift, read from each step's result; the
//! circuit state of the origins steps called, and the steps holding a slot
//! of the instance pool, read from the host when scraped.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use courier_host::{CircuitState, Host, StepResult};

/// At most this many origins get a circuit-state series (the first seen).
const MAX_ORIGINS: usize = 256;

/// Upper bounds of the latency buckets, in seconds.
const BUCKETS: [f64; 13] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// The service's counters.
#[derive(Default)]
pub(crate) struct Metrics {
    inner: Mutex<Counts>,
}

#[derive(Default)]
struct Counts {
    /// (tenant, plugin, call, outcome) → steps.
    steps: BTreeMap<[String; 4], u64>,
    /// (plugin, call) → latency histogram.
    latency: BTreeMap<[String; 2], Histogram>,
    /// History writes: how many, and their total time in seconds.
    history_writes: (u64, f64),
    /// plugin → outbound request latency histogram.
    outbound: BTreeMap<String, Histogram>,
    /// plugin → token requests the host made for its connections.
    token_requests: BTreeMap<String, u64>,
    /// (plugin, call) → steps whose output departed from the declared schema.
    drift: BTreeMap<[String; 2], u64>,
    /// Origins steps sent requests to, for their circuit states.
    origins: BTreeSet<String>,
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, took: Duration) {
        let secs = took.as_secs_f64();
        for (bucket, bound) in self.buckets.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *bucket += 1;
            }
        }
        self.count += 1;
        self.sum += secs;
    }

    /// The `_bucket`, `_sum` and `_count` lines of `name` with labels `base`.
    fn render(&self, out: &mut String, name: &str, base: &str) {
        for (n, bound) in self.buckets.iter().zip(BUCKETS) {
            let _ = writeln!(out, "{name}_bucket{{{base},le=\"{bound}\"}} {n}");
        }
        let _ = writeln!(out, "{name}_bucket{{{base},le=\"+Inf\"}} {}", self.count);
        let _ = writeln!(out, "{name}_sum{{{base}}} {}", self.sum);
        let _ = writeln!(out, "{name}_count{{{base}}} {}", self.count);
    }
}

impl Metrics {
    /// Counts one step and what its result reports. `plugin` and `call` are
    /// the installed plugin's and call's names, or `-` for one that does
    /// not exist (so callers cannot make up label values).
    pub(crate) fn step(
        &self,
        tenant: &str,
        plugin: &str,
        call: &str,
        outcome: &str,
        result: &StepResult,
    ) {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counts
            .steps
            .entry([tenant, plugin, call, outcome].map(str::to_owned))
            .or_default() += 1;
        counts
            .latency
            .entry([plugin, call].map(str::to_owned))
            .or_default()
            .observe(Duration::from_millis(result.duration_ms));
        if !result.contract_drift.is_empty() {
            *counts
                .drift
                .entry([plugin, call].map(str::to_owned))
                .or_default() += 1;
        }
        for record in &result.requests {
            if record.token_request {
                *counts.token_requests.entry(plugin.to_owned()).or_default() += 1;
            }
            // A cache hit sent nothing.
            if record.cache.as_deref() != Some("hit") {
                counts
                    .outbound
                    .entry(plugin.to_owned())
                    .or_default()
                    .observe(Duration::from_millis(record.duration_ms));
            }
            if counts.origins.len() < MAX_ORIGINS
                && let Ok(url) = url::Url::parse(&record.url)
                && url.origin().is_tuple()
            {
                counts.origins.insert(url.origin().ascii_serialization());
            }
        }
    }

    /// Counts one step's history write.
    pub(crate) fn history_write(&self, took: Duration) {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counts.history_writes.0 += 1;
        counts.history_writes.1 += took.as_secs_f64();
    }

    /// The Prometheus text exposition; circuit states and running steps
    /// are read from `host` now.
    pub(crate) fn render(&self, host: &Host) -> String {
        let counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let mut out = String::new();
        out.push_str(
            "# HELP courier_steps_total Steps run, by tenant, plugin, call and outcome.\n",
        );
        out.push_str("# TYPE courier_steps_total counter\n");
        for ([tenant, plugin, call, outcome], n) in &counts.steps {
            let labels = labels(&[
                ("tenant", tenant),
                ("plugin", plugin),
                ("call", call),
                ("outcome", outcome),
            ]);
            let _ = writeln!(out, "courier_steps_total{{{labels}}} {n}");
        }
        out.push_str(
            "# HELP courier_step_duration_seconds Step wall-clock time, by plugin and call.\n",
        );
        out.push_str("# TYPE courier_step_duration_seconds histogram\n");
        for ([plugin, call], h) in &counts.latency {
            let base = labels(&[("plugin", plugin), ("call", call)]);
            h.render(&mut out, "courier_step_duration_seconds", &base);
        }
        out.push_str(
            "# HELP courier_outbound_request_duration_seconds Outbound request time (sent to body read), by plugin.\n",
        );
        out.push_str("# TYPE courier_outbound_request_duration_seconds histogram\n");
        for (plugin, h) in &counts.outbound {
            let base = labels(&[("plugin", plugin)]);
            h.render(&mut out, "courier_outbound_request_duration_seconds", &base);
        }
        out.push_str("# HELP courier_token_requests_total Token requests (OAuth 2 token endpoint) the host made, by plugin.\n");
        out.push_str("# TYPE courier_token_requests_total counter\n");
        for (plugin, n) in &counts.token_requests {
            let labels = labels(&[("plugin", plugin)]);
            let _ = writeln!(out, "courier_token_requests_total{{{labels}}} {n}");
        }
        out.push_str("# HELP courier_contract_drift_total Steps whose output departed from the call's declared schema, by plugin and call.\n");
        out.push_str("# TYPE courier_contract_drift_total counter\n");
        for ([plugin, call], n) in &counts.drift {
            let labels = labels(&[("plugin", plugin), ("call", call)]);
            let _ = writeln!(out, "courier_contract_drift_total{{{labels}}} {n}");
        }
        out.push_str("# HELP courier_circuit_state Circuit breaker state of each origin steps called (1 for the state it is in).\n");
        out.push_str("# TYPE courier_circuit_state gauge\n");
        for origin in &counts.origins {
            let now = match host.circuit_state(origin) {
                CircuitState::Closed => "closed",
                CircuitState::Open { .. } => "open",
                CircuitState::HalfOpen => "half-open",
            };
            for state in ["closed", "open", "half-open"] {
                let state_label = state.to_owned();
                let labels = labels(&[("origin", origin), ("state", &state_label)]);
                let _ = writeln!(
                    out,
                    "courier_circuit_state{{{labels}}} {}",
                    u8::from(state == now)
                );
            }
        }
        let (n, secs) = counts.history_writes;
        out.push_str("# HELP courier_history_write_seconds Time to store a step in the history.\n");
        out.push_str("# TYPE courier_history_write_seconds summary\n");
        let _ = writeln!(out, "courier_history_write_seconds_sum {secs}");
        let _ = writeln!(out, "courier_history_write_seconds_count {n}");
        out.push_str("# HELP courier_steps_running Steps holding a slot of the instance pool.\n");
        out.push_str("# TYPE courier_steps_running gauge\n");
        let _ = writeln!(out, "courier_steps_running {}", host.steps_running());
        let pool = host.pool_usage();
        let kinds = [
            ("component_instance", pool.component_instances),
            ("core_instance", pool.core_instances),
            ("memory", pool.memories),
            ("table", pool.tables),
            ("stack", pool.stacks),
        ];
        let gauges = [
            (
                "courier_pool_slots_in_use",
                "Slots of the instance pool allocated now, by kind.",
                true,
            ),
            (
                "courier_pool_slots",
                "Slots of the instance pool, by kind.",
                false,
            ),
        ];
        for (name, help, in_use) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            for (kind, slots) in kinds {
                let value = if in_use { slots.in_use } else { slots.capacity };
                let _ = writeln!(out, "{name}{{kind=\"{kind}\"}} {value}");
            }
        }
        out
    }
}

/// `name="value",…` with values escaped as the text format asks.
fn labels(pairs: &[(&str, &String)]) -> String {
    pairs
        .iter()
        .map(|(name, value)| {
            let escaped = value
                .replace('\\', "\\\\")
                .replace('"', "\\\"")
                .replace('\n', "\\n");
            format!("{name}=\"{escaped}\"")
        })
        .collect::<Vec<_>>()
        .join(",")
}

#[cfg(test)]
mod tests {
    use super::*;
    use courier_host::{Outcome, RequestRecord};

    /// A result of `ms` milliseconds with these requests (URL, took ms, token request).
    fn result(ms: u64, requests: &[(&str, u64, bool)]) -> StepResult {
        StepResult {
            outcome: Outcome::Success,
            output: None,
            error: None,
            status: None,
            duration_ms: ms,
            requests: requests
                .iter()
                .map(|&(url, took, token_request)| RequestRecord {
                    method: "GET".into(),
                    url: url.into(),
                    status: Some(200),
                    duration_ms: took,
                    attempt: 1,
                    token_request,
                    ..RequestRecord::default()
                })
                .collect(),
            logs: vec![],
            logs_dropped: 0,
            contract_drift: vec![],
        }
    }

    #[tokio::test]
    async fn steps_are_counted_and_bucketed() {
        let host = Host::builder().build().unwrap();
        let m = Metrics::default();
        m.step("acme", "p", "c", "success", &result(20, &[]));
        let mut drifted = result(2000, &[("https://a.example/x?q=1", 30, false)]);
        drifted.contract_drift = vec!["/id: not a string".into()];
        m.step("acme", "p", "c", "success", &drifted);
        m.step(
            "a\"b",
            "p",
            "c",
            "error",
            &result(
                1,
                &[
                    ("https://id.example/token", 5, true),
                    ("http://b.example:8080/", 700, false),
                ],
            ),
        );
        m.history_write(Duration::from_millis(250));
        m.history_write(Duration::from_millis(500));
        let text = m.render(&host);
        for line in [
            r#"courier_steps_total{tenant="acme",plugin="p",call="c",outcome="success"} 2"#,
            r#"courier_steps_total{tenant="a\"b",plugin="p",call="c",outcome="error"} 1"#,
            r#"courier_step_duration_seconds_bucket{plugin="p",call="c",le="0.025"} 2"#,
            r#"courier_step_duration_seconds_bucket{plugin="p",call="c",le="+Inf"} 3"#,
            r#"courier_step_duration_seconds_count{plugin="p",call="c"} 3"#,
            r#"courier_outbound_request_duration_seconds_bucket{plugin="p",le="0.005"} 1"#,
            r#"courier_outbound_request_duration_seconds_bucket{plugin="p",le="0.05"} 2"#,
            r#"courier_outbound_request_duration_seconds_count{plugin="p"} 3"#,
            r#"courier_token_requests_total{plugin="p"} 1"#,
            r#"courier_contract_drift_total{plugin="p",call="c"} 1"#,
            r#"courier_circuit_state{origin="https://a.example",state="closed"} 1"#,
            r#"courier_circuit_state{origin="http://b.example:8080",state="open"} 0"#,
            "courier_steps_running 0",
            "courier_history_write_seconds_sum 0.75\n",
            "courier_history_write_seconds_count 2\n",
        ] {
            assert!(text.contains(line), "{line} missing from:\n{text}");
        }
    }
}
