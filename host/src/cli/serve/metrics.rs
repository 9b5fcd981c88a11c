//! `/metrics` in the Prometheus text format: steps by tenant, plugin, call
//! and outcome, and step latency by plugin and call.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Duration;

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
}

#[derive(Default)]
struct Histogram {
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Metrics {
    /// Counts one step. `plugin` and `call` are the installed plugin's and
    /// call's names, or `-` for one that does not exist (so callers cannot
    /// make up label values).
    pub(crate) fn step(
        &self,
        tenant: &str,
        plugin: &str,
        call: &str,
        outcome: &str,
        took: Duration,
    ) {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        *counts
            .steps
            .entry([tenant, plugin, call, outcome].map(str::to_owned))
            .or_default() += 1;
        let h = counts
            .latency
            .entry([plugin, call].map(str::to_owned))
            .or_default();
        let secs = took.as_secs_f64();
        for (bucket, bound) in h.buckets.iter_mut().zip(BUCKETS) {
            if secs <= bound {
                *bucket += 1;
            }
        }
        h.count += 1;
        h.sum += secs;
    }

    /// Counts one step's history write.
    pub(crate) fn history_write(&self, took: Duration) {
        let mut counts = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        counts.history_writes.0 += 1;
        counts.history_writes.1 += took.as_secs_f64();
    }

    /// The Prometheus text exposition.
    pub(crate) fn render(&self) -> String {
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
            for (n, bound) in h.buckets.iter().zip(BUCKETS) {
                let _ = writeln!(
                    out,
                    "courier_step_duration_seconds_bucket{{{base},le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "courier_step_duration_seconds_bucket{{{base},le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(out, "courier_step_duration_seconds_sum{{{base}}} {}", h.sum);
            let _ = writeln!(
                out,
                "courier_step_duration_seconds_count{{{base}}} {}",
                h.count
            );
        }
        let (n, secs) = counts.history_writes;
        out.push_str("# HELP courier_history_write_seconds Time to store a step in the history.\n");
        out.push_str("# TYPE courier_history_write_seconds summary\n");
        let _ = writeln!(out, "courier_history_write_seconds_sum {secs}");
        let _ = writeln!(out, "courier_history_write_seconds_count {n}");
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

    #[test]
    fn steps_are_counted_and_bucketed() {
        let m = Metrics::default();
        m.step("acme", "p", "c", "success", Duration::from_millis(20));
        m.step("acme", "p", "c", "success", Duration::from_secs(2));
        m.step("a\"b", "p", "c", "error", Duration::from_millis(1));
        let text = m.render();
        assert!(
            text.contains(
                r#"courier_steps_total{tenant="acme",plugin="p",call="c",outcome="success"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"courier_steps_total{tenant="a\"b",plugin="p",call="c",outcome="error"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"courier_step_duration_seconds_bucket{plugin="p",call="c",le="0.025"} 2"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"courier_step_duration_seconds_bucket{plugin="p",call="c",le="+Inf"} 3"#
            ),
            "{text}"
        );
        assert!(
            text.contains(r#"courier_step_duration_seconds_count{plugin="p",call="c"} 3"#),
            "{text}"
        );
        m.history_write(Duration::from_millis(250));
        m.history_write(Duration::from_millis(500));
        let text = m.render();
        assert!(
            text.contains("courier_history_write_seconds_sum 0.75\n"),
            "{text}"
        );
        assert!(
            text.contains("courier_history_write_seconds_count 2\n"),
            "{text}"
        );
    }
}
