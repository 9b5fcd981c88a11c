//! `courier test`: a plugin's test cases run through the real host, their
//! requests answered from cassettes (offline, the default) or sent to the
//! live upstream and recorded (`--record`).
//!
//! The cases file (`courier-test.toml` by default) holds `[[case]]` tables:
//! `name` (also the cassette's file name, `CASSETTES/NAME.json`), `call`,
//! `input` (a TOML table, default empty), `connections` (slot = connection
//! file, relative to the cases file), and what to expect: `outcome`
//! (default `"success"`) and `output` (the exact output, optional). A
//! top-level `allow_network` lists the CIDRs the cases' URLs may name
//! (loopback for a local upstream).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, OnceLock};

use anyhow::{Context, bail};
use courier_host::{
    Cassette, ConnectionConfig, Host, HostBuilder, IpNet, Recorder, Replayer, StepRequest,
    StepResult,
};
use serde::Deserialize;

/// The cases file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Cases {
    /// CIDRs, as `--allow-network` takes them.
    #[serde(default)]
    allow_network: Vec<String>,
    #[serde(default, rename = "case")]
    cases: Vec<Case>,
}

/// One test case.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    name: String,
    call: String,
    #[serde(default = "empty_input")]
    input: serde_json::Value,
    #[serde(default)]
    connections: BTreeMap<String, PathBuf>,
    #[serde(default = "success")]
    outcome: String,
    output: Option<serde_json::Value>,
}

fn empty_input() -> serde_json::Value {
    serde_json::json!({})
}

fn success() -> String {
    "success".to_owned()
}

/// What `courier test` was asked.
pub(super) struct TestOptions {
    /// The plugin component.
    pub(super) plugin: PathBuf,
    /// The cases file.
    pub(super) cases: PathBuf,
    /// The cassette directory (default: `cassettes/` beside the cases file).
    pub(super) cassettes: Option<PathBuf>,
    /// Sends to the live upstream and writes the cassettes.
    pub(super) record: bool,
}

/// Runs every case, prints `ok NAME` or `FAIL NAME: why` for each, and
/// exits 0 only when all pass.
pub(super) fn test(
    runtime: &tokio::runtime::Runtime,
    builder: impl Fn() -> HostBuilder,
    options: TestOptions,
) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&options.cases)
        .with_context(|| format!("reading {}", options.cases.display()))?;
    let cases: Cases =
        toml::from_str(&text).with_context(|| format!("{}", options.cases.display()))?;
    if cases.cases.is_empty() {
        bail!("{} has no [[case]]", options.cases.display());
    }
    let networks = cases
        .allow_network
        .iter()
        .map(|n| n.parse().with_context(|| format!("allow_network `{n}`")))
        .collect::<anyhow::Result<Vec<IpNet>>>()?;
    let base = options.cases.parent().unwrap_or(Path::new("."));
    let dir = options.cassettes.unwrap_or_else(|| base.join("cassettes"));
    let mut failed = 0;
    for case in &cases.cases {
        let valid = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        if case.name.is_empty() || !case.name.chars().all(valid) {
            bail!(
                "case name `{}`: use letters, digits, `-` and `_`",
                case.name
            );
        }
        let file = dir.join(format!("{}.json", case.name));
        let mut builder = builder();
        for n in &networks {
            builder = builder.allow_network(*n);
        }
        let run = CaseRun {
            runtime,
            plugin: &options.plugin,
            base,
            case,
            file,
        };
        let verdict = if options.record {
            run.record(builder)
        } else {
            run.replay(builder)
        }?;
        match verdict {
            Ok(note) => println!("ok {} ({note})", case.name),
            Err(why) => {
                failed += 1;
                println!("FAIL {}: {why}", case.name);
            }
        }
    }
    println!("{} passed, {failed} failed", cases.cases.len() - failed);
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// A case's verdict: `Ok(note)` or `Err(why it failed)`.
type Verdict = Result<String, String>;

/// One case to run.
struct CaseRun<'a> {
    runtime: &'a tokio::runtime::Runtime,
    /// The plugin component.
    plugin: &'a Path,
    /// The cases file's directory, which connection files are relative to.
    base: &'a Path,
    case: &'a Case,
    /// Its cassette.
    file: PathBuf,
}

impl CaseRun<'_> {
    /// Runs the case against the live upstream and writes its cassette
    /// (scrubbed) whatever the verdict, so a failing case can be looked at.
    fn record(&self, builder: HostBuilder) -> anyhow::Result<Verdict> {
        let (case, file) = (self.case, &self.file);
        let recorder: Arc<OnceLock<Arc<Recorder>>> = Arc::default();
        let slot = recorder.clone();
        let builder = builder.wrap_transport(move |inner| {
            let r = Arc::new(Recorder::new(inner));
            let _ = slot.set(r.clone());
            r
        });
        let result = self.run(builder)?;
        let cassette = recorder
            .get()
            .context("the host did not build its transport")?
            .cassette();
        if let Some(dir) = file.parent() {
            std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        }
        std::fs::write(file, cassette.to_json())
            .with_context(|| format!("writing {}", file.display()))?;
        Ok(check(case, &result).map(|()| {
            format!(
                "{} exchanges recorded in {}",
                cassette.len(),
                file.display()
            )
        }))
    }

    /// Runs the case with its cassette answering every request.
    fn replay(&self, builder: HostBuilder) -> anyhow::Result<Verdict> {
        let (case, file) = (self.case, &self.file);
        let text = std::fs::read_to_string(file).with_context(|| {
            format!(
                "reading {} (record it with `courier test --record`)",
                file.display()
            )
        })?;
        let cassette = Cassette::from_json(&text).with_context(|| format!("{}", file.display()))?;
        let count = cassette.len();
        let replayer = Arc::new(Replayer::new(cassette));
        let result = self.run(builder.transport(replayer.clone()))?;
        if let Some(why) = replayer.mismatches().first() {
            return Ok(Err(why.clone()));
        }
        Ok(check(case, &result).map(|()| format!("{count} exchanges in {}", file.display())))
    }

    /// Runs the case's step on a host of `builder`'s making.
    fn run(&self, builder: HostBuilder) -> anyhow::Result<StepResult> {
        let (case, base) = (self.case, self.base);
        let connections = case
            .connections
            .iter()
            .map(|(slot, file)| {
                let config = ConnectionConfig::from_file(&base.join(file))?;
                if &config.connection != slot {
                    bail!(
                        "{} binds connection `{}`, not `{slot}`",
                        file.display(),
                        config.connection
                    );
                }
                Ok(config.into())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.runtime.block_on(async {
            let host: Host = builder.build()?;
            let report = host.load_plugin_file(self.plugin).await?;
            Ok(host
                .run_step(StepRequest {
                    tenant: "default".to_owned(),
                    plugin: report.name,
                    call: case.call.clone(),
                    input: case.input.clone(),
                    connections,
                })
                .await)
        })
    }
}

/// Whether the step ended as the case expects.
fn check(case: &Case, result: &StepResult) -> Result<(), String> {
    let outcome = serde_json::to_value(result.outcome).unwrap_or_default();
    if outcome != case.outcome.as_str() {
        let error = result.error.as_ref().map(|e| e.message.as_str());
        return Err(format!(
            "outcome {outcome}, expected `{}`: {}",
            case.outcome,
            error.unwrap_or("")
        ));
    }
    match (&case.output, &result.output) {
        (Some(expected), Some(got)) if expected != got => {
            Err(format!("output {got}, expected {expected}"))
        }
        (Some(expected), None) => Err(format!("no output, expected {expected}")),
        _ => Ok(()),
    }
}
