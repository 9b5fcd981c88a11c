//! Build-time warm-up of a plugin component (`courier build` runs it on Python
//! and JavaScript plugins): the component is instantiated once with imports
//! that answer without a network, the SDK's warm-up call runs (`describe`,
//! then a request built, sent and its JSON response read, the way a step
//! does it; the plugin's own handlers do not run), and the instance's memories
//! and globals are written back into the component as its initial state
//! (Wizer's component snapshot).
//!
//! Why: every step runs on a fresh instance of that initial state. An
//! interpreter snapshotted right after loading its code compiles, specialises
//! and caches on the first call of every instance; warmed up once here, each
//! fresh instance starts with that work done. What stays per step is what a
//! copy-on-write image cannot share: the pages the call writes. Measured in
//! BENCHMARKS.md ("Plugins side by side").

use std::fmt;

use wasmtime::component::{Component, Instance, Lift, Linker, WasmList};
use wasmtime::{Config, Engine, OptLevel, Store};
use wasmtime_wizer::{ComponentInstanceState, Wizer};

use crate::bindings::{self, WarmUpState};

/// Guest instructions the warm-up may run (fuel): far above what it needs
/// (a few million), low enough that a plugin looping in it fails the build.
const FUEL: u64 = 20_000_000_000;

/// Why a component could not be warmed up.
#[derive(Debug)]
pub struct PrewarmError(String);

impl fmt::Display for PrewarmError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PrewarmError {}

fn error(context: &str) -> impl Fn(wasmtime::Error) -> PrewarmError {
    move |e| PrewarmError(format!("{context}: {e:?}"))
}

/// `component` with the state it has after the SDK's warm-up call as its
/// initial state. Fails when the component is not a Courier plugin built
/// with the Python or JavaScript SDK, traps, or sends nothing in the call.
pub async fn prewarm(component: &[u8]) -> Result<Vec<u8>, PrewarmError> {
    let wizer = Wizer::new();
    let (context, instrumented) = wizer
        .instrument_component(component)
        .map_err(error("instrumenting the component"))?;
    let (mut store, instance) = instantiate(&instrumented).await?;
    bindings::warm_up(&mut store, &instance)
        .await
        .map_err(error("the warm-up call"))?;
    if store.data().sent == 0 {
        return Err(PrewarmError(
            "the warm-up call sent no request (a plugin built without Courier's Python or JS SDK?)"
                .into(),
        ));
    }
    let mut state = Snapshot {
        store,
        instance,
        failed: None,
    };
    let warmed = wizer
        .snapshot_component(&context, &mut state)
        .await
        .map_err(error("snapshotting the instance"))?;
    match state.failed {
        Some(e) => Err(error("reading the instance's state")(e)),
        None => Ok(warmed),
    }
}

/// A fresh instance of `component` with the warm-up's imports and fuel.
async fn instantiate(component: &[u8]) -> Result<(Store<WarmUpState>, Instance), PrewarmError> {
    let mut config = Config::new();
    // The warm-up runs milliseconds of guest code: compiling fast matters
    // more than the code's speed.
    config
        .wasm_component_model(true)
        .consume_fuel(true)
        .cranelift_opt_level(OptLevel::None);
    let engine = Engine::new(&config).map_err(error("the warm-up engine"))?;
    let component = Component::new(&engine, component).map_err(error("compiling the component"))?;
    let mut linker = Linker::new(&engine);
    bindings::link_warm_up(&mut linker).map_err(error("linking the warm-up imports"))?;
    let mut store = Store::new(&engine, WarmUpState::new());
    store
        .set_fuel(FUEL)
        .map_err(error("setting the warm-up's fuel"))?;
    let instance = linker
        .instantiate_async(&mut store, &component)
        .await
        .map_err(error("instantiating the component"))?;
    Ok((store, instance))
}

/// The guest instructions (fuel) the SDK's warm-up call costs on a fresh
/// instance of `component`: what a warmed-up component saves on each first
/// call shows here (for tests and benchmarks).
#[cfg(feature = "bench")]
pub(crate) async fn warm_up_fuel(component: &[u8]) -> Result<u64, PrewarmError> {
    let (mut store, instance) = instantiate(component).await?;
    let before = store.get_fuel().map_err(error("reading fuel"))?;
    bindings::warm_up(&mut store, &instance)
        .await
        .map_err(error("the warm-up call"))?;
    let after = store.get_fuel().map_err(error("reading fuel"))?;
    Ok(before - after)
}

/// The warmed-up instance, read by Wizer through the accessors it added.
struct Snapshot {
    store: Store<WarmUpState>,
    instance: Instance,
    /// The first accessor call that failed; its value reads as zero.
    failed: Option<wasmtime::Error>,
}

impl Snapshot {
    async fn call<R: Lift + Default + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> R {
        let result = self.try_call::<R>(instance, func).await;
        result.unwrap_or_else(|e| {
            self.failed.get_or_insert(e);
            R::default()
        })
    }

    async fn try_call<R: Lift + Send + Sync + 'static>(
        &mut self,
        instance: &str,
        func: &str,
    ) -> wasmtime::Result<R> {
        let (_, parent) = self
            .instance
            .get_export(&mut self.store, None, instance)
            .ok_or_else(|| wasmtime::format_err!("no export `{instance}`"))?;
        let (_, index) = self
            .instance
            .get_export(&mut self.store, Some(&parent), func)
            .ok_or_else(|| wasmtime::format_err!("no export `{instance}#{func}`"))?;
        let func = self
            .instance
            .get_typed_func::<(), (R,)>(&mut self.store, index)?;
        let (value,) = func.call_async(&mut self.store, ()).await?;
        Ok(value)
    }
}

impl ComponentInstanceState for Snapshot {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        match self.try_call::<WasmList<u8>>(instance, func).await {
            Ok(list) => contents(list.as_le_slice(&self.store)),
            Err(e) => {
                self.failed.get_or_insert(e);
                contents(&[]);
            }
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call::<f32>(instance, func).await.to_bits()
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call::<f64>(instance, func).await.to_bits()
    }
}
