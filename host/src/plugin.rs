//! Loading plugins: compile (or read from the cache), link, read and validate
//! the manifest once, and keep an `InstancePre` for fresh instances per step.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use wasmtime::Store;
use wasmtime::component::Linker;

use crate::bindings::{Invoke, Prepared};
use crate::credentials::KeptBindings;
use crate::engine::CompileSource;
use crate::manifest::Manifest;
use crate::spare::SpareSlot;
use crate::state::StepState;
use crate::{HostError, HostInner};
use courier_egress::AllowedHost;

/// A loaded plugin, ready to run steps.
pub(crate) struct Plugin {
    pub(crate) manifest: Arc<Manifest>,
    pub(crate) hosts: Arc<[AllowedHost]>,
    /// The component checked against the world, for fresh instances.
    pre: Prepared,
    /// Validators by call name, compiled once from the declared schemas.
    validators: HashMap<String, CallSchemas>,
    /// Connection bindings kept for this plugin's steps.
    pub(crate) bindings: KeptBindings,
    /// A fresh instance made ahead of the next step, if the host keeps spares.
    pub(crate) spare: SpareSlot,
}

/// Bounds on loading a plugin.
#[derive(Debug, Clone)]
pub struct LoadLimits {
    /// Size of a component file (default 64 MiB; Python and JavaScript
    /// components are 12–18 MiB).
    pub max_component_bytes: usize,
    /// Time to compile a component (default 120 s).
    pub compile_timeout: Duration,
    /// Size of the largest function body in the component's code (default
    /// 1 MiB). The compiler's peak memory grows with the functions it
    /// compiles at once (about 1.3 KiB per byte of straight-line code, one
    /// function per core), so this bounds what compiling may take
    /// (BENCHMARKS.md, "Compiling"). Interpreter loops of Python and
    /// JavaScript engines compiled to wasm are well under it.
    pub max_function_bytes: usize,
}

impl Default for LoadLimits {
    fn default() -> Self {
        Self {
            max_component_bytes: 64 << 20,
            compile_timeout: Duration::from_secs(120),
            max_function_bytes: 1 << 20,
        }
    }
}

/// What loading a plugin did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LoadReport {
    /// The plugin's name from its manifest.
    pub name: String,
    /// Whether the compiled code came from the cache.
    pub source: CompileSource,
    /// Time spent compiling or reading the cache.
    pub compile_ms: f64,
}

/// The size of the largest function body in the component's core modules,
/// read without compiling anything.
fn largest_function(bytes: &[u8]) -> Result<usize, wasmparser::BinaryReaderError> {
    let mut largest = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        if let wasmparser::Payload::CodeSectionEntry(body) = payload? {
            let range = body.range();
            largest = largest.max(usize::try_from(range.end - range.start).unwrap_or(usize::MAX));
        }
    }
    Ok(largest)
}

/// Links the host's imports (outbound, log, and a WASI that grants nothing).
pub(crate) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<StepState>> {
    let mut linker = Linker::new(engine);
    crate::bindings::link(&mut linker)?;
    wasmtime_wasi::p2::add_to_linker_async(&mut linker)?;
    Ok(linker)
}

impl Plugin {
    /// Compiles (or reads from cache) and instantiates once to read the manifest.
    pub(crate) async fn load(
        host: &HostInner,
        bytes: &[u8],
    ) -> Result<(Self, LoadReport), HostError> {
        let load_err = |e: wasmtime::Error| HostError::Load(format!("{e:#}"));
        let limits = &host.load_limits;
        if bytes.len() > limits.max_component_bytes {
            return Err(HostError::Load(format!(
                "the component is {} bytes, over the limit of {}",
                bytes.len(),
                limits.max_component_bytes
            )));
        }
        let largest = largest_function(bytes)
            .map_err(|e| HostError::Load(format!("not a valid component: {e}")))?;
        if largest > limits.max_function_bytes {
            return Err(HostError::Load(format!(
                "the component has a function of {largest} bytes, over the limit of {}",
                limits.max_function_bytes
            )));
        }
        // Compilation is CPU-bound: it runs on a blocking thread, and a load
        // that takes too long fails (the thread finishes in the background).
        let (engine, cache, owned) = (host.engine.clone(), host.cache.clone(), bytes.to_vec());
        let compile = tokio::task::spawn_blocking(move || cache.load(&engine, &owned));
        let (component, source, took) = tokio::time::timeout(limits.compile_timeout, compile)
            .await
            .map_err(|_| {
                HostError::Load(format!(
                    "compiling took longer than {:?}",
                    limits.compile_timeout
                ))
            })?
            .map_err(|e| HostError::Load(format!("the compiler thread failed: {e}")))?
            .map_err(load_err)?;
        let instance_pre = host.linker.instantiate_pre(&component).map_err(|e| {
            HostError::Load(format!(
                "{e:#} (plugins may import only courier:plugin interfaces and WASI)"
            ))
        })?;
        let pre = Prepared::new(instance_pre).map_err(load_err)?;
        let mut store = Store::new(&host.engine, StepState::for_describe(host.policy.limits()));
        store.limiter(|s| s.limiter());
        store.set_epoch_deadline(1);
        store.epoch_deadline_async_yield_and_update(1);
        let declared = tokio::time::timeout(Duration::from_secs(10), pre.describe(&mut store))
            .await
            .map_err(|_| HostError::Load("describe() did not return within 10 s".into()))?
            .map_err(load_err)?;
        let (manifest, hosts) = Manifest::validate(declared)?;
        let mut validators = HashMap::new();
        for call in &manifest.calls {
            let compile = |schema: &serde_json::Value, which: &str| {
                jsonschema::validator_for(schema).map_err(|e| {
                    HostError::Load(format!("call `{}`: invalid {which} schema: {e}", call.name))
                })
            };
            let output = match &call.output_schema {
                schema if allows_anything(schema) => None,
                schema => Some(compile(schema, "output")?),
            };
            let schemas = CallSchemas {
                input: compile(&call.input_schema, "input")?,
                output,
            };
            validators.insert(call.name.clone(), schemas);
        }
        let report = LoadReport {
            name: manifest.name.clone(),
            source,
            compile_ms: took.as_secs_f64() * 1e3,
        };
        Ok((
            Self {
                manifest: Arc::new(manifest),
                hosts: hosts.into(),
                pre,
                validators,
                bindings: KeptBindings::default(),
                spare: SpareSlot::default(),
            },
            report,
        ))
    }

    /// A fresh instance in `store`, and its `invoke` export.
    pub(crate) async fn instantiate_invoke(
        &self,
        store: &mut Store<StepState>,
    ) -> wasmtime::Result<Invoke> {
        self.pre.instantiate_invoke(store).await
    }

    /// A fresh instance in `store` that has answered `describe`.
    #[cfg(feature = "bench")]
    pub(crate) async fn describe(&self, store: &mut Store<StepState>) -> wasmtime::Result<()> {
        self.pre.describe(store).await.map(drop)
    }

    /// Checks a call's input against its declared schema; `Err` lists what is wrong.
    pub(crate) fn validate_input(
        &self,
        call: &str,
        input: &serde_json::Value,
    ) -> Result<(), String> {
        let Some(schemas) = self.validators.get(call) else {
            return Ok(());
        };
        let problems = problems(&schemas.input, input);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "input does not match the call's schema: {}",
                problems.join("; ")
            ))
        }
    }

    /// Where a call's output departs from its declared output schema (at
    /// most five places); empty when it matches or declares nothing.
    pub(crate) fn output_drift(&self, call: &str, output: &serde_json::Value) -> Vec<String> {
        match self.validators.get(call).and_then(|s| s.output.as_ref()) {
            Some(validator) => problems(validator, output),
            None => vec![],
        }
    }
}

/// A call's compiled schemas; no output validator when the schema allows anything.
struct CallSchemas {
    input: jsonschema::Validator,
    output: Option<jsonschema::Validator>,
}

/// Whether a schema constrains nothing (`true`, or an object of annotations only).
fn allows_anything(schema: &serde_json::Value) -> bool {
    match schema {
        serde_json::Value::Bool(b) => *b,
        serde_json::Value::Object(o) => o
            .keys()
            .all(|k| k.starts_with('$') || matches!(k.as_str(), "title" | "description")),
        _ => false,
    }
}

/// The first five places where `value` does not match, each with its JSON pointer.
fn problems(validator: &jsonschema::Validator, value: &serde_json::Value) -> Vec<String> {
    // `is_valid` stops at nothing and builds no errors: the path of every
    // step whose input and output match.
    if validator.is_valid(value) {
        return vec![];
    }
    validator
        .iter_errors(value)
        .take(5)
        .map(|e| {
            let at = e.instance_path().to_string();
            if at.is_empty() {
                e.to_string()
            } else {
                format!("{at}: {e}")
            }
        })
        .collect()
}
