//! The one boundary between the host and the generated wasmtime bindings for
//! `wit/` (world `courier:plugin/plugin`). The generated code is private to
//! this module; the rest of the host sees only the host-typed API below:
//!
//! - [`link`]: adds the host side of the `courier:plugin` imports to a linker
//!   (`imports.rs` implements them on [`StepState`] by converting and calling
//!   its host-typed methods);
//! - [`Prepared`]: a component checked against the world, which instantiates
//!   for [`Prepared::describe`] (the declared manifest, [`Declared`]) or for
//!   [`Prepared::instantiate_invoke`];
//! - [`Invoke`]: the `invoke` export of one instance, called with host types
//!   and answering with output text or a [`PluginError`].
//!
//! - [`link_warm_up`] and [`warm_up`]: the same imports answered without a
//!   network, and the SDKs' warm-up call, for the build-time warm-up.
//!
//! Every conversion between WIT and host types is in `convert.rs`.

mod convert;
mod imports;
mod warm_up;

pub(crate) use warm_up::WarmUpState;

use wasmtime::Store;
use wasmtime::component::{ComponentExportIndex, HasSelf, InstancePre, Linker, TypedFunc};

use crate::exchange::PluginError;
use crate::manifest::Declared;
use crate::state::StepState;

/// The generated code, named nowhere outside `bindings`.
#[allow(missing_docs, unsafe_code, unreachable_pub)]
mod generated {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "plugin",
        imports: { default: async },
        exports: { default: async },
    });
}

use generated::courier::plugin::types;

/// The exported interface with the calls (`wit/integration.wit`).
const INTEGRATION: &str = "courier:plugin/integration@0.1.0";

/// Adds the host side of the `courier:plugin` imports (outbound, log) to `linker`.
pub(crate) fn link(linker: &mut Linker<StepState>) -> wasmtime::Result<()> {
    generated::Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// Adds the build-time imports of [`WarmUpState`] to `linker`, and WASI
/// granting nothing.
pub(crate) fn link_warm_up(linker: &mut Linker<WarmUpState>) -> wasmtime::Result<()> {
    wasmtime_wasi::p2::add_to_linker_async(linker)?;
    generated::Plugin::add_to_linker::<_, HasSelf<_>>(linker, |s| s)
}

/// The call name the SDKs answer by exercising their request and response
/// paths against the host (a name no manifest may declare: the host refuses
/// a step on a call its plugin does not declare).
pub(crate) const WARM_UP_CALL: &str = "courier:warm-up";

/// Runs `describe` and the SDKs' warm-up call on `instance`: what a step
/// runs, minus the plugin's own handler. Fails when the plugin does not
/// answer the warm-up call (a plugin built without the Python or JS SDK).
pub(crate) async fn warm_up(
    store: &mut Store<WarmUpState>,
    instance: &wasmtime::component::Instance,
) -> wasmtime::Result<()> {
    let plugin = generated::Plugin::new(&mut *store, instance)?;
    let integration = plugin.courier_plugin_integration();
    integration.call_describe(&mut *store).await?;
    integration
        .call_invoke(&mut *store, WARM_UP_CALL, "{}")
        .await?
        .map_err(|e| wasmtime::format_err!("the warm-up call failed: {e:?}"))?;
    Ok(())
}

/// A plugin component linked and type-checked against the world (every
/// export, `describe` included), ready for fresh instances.
pub(crate) struct Prepared {
    pre: generated::PluginPre<StepState>,
    /// The `invoke` export, which a step type-checks and calls.
    invoke: ComponentExportIndex,
}

impl Prepared {
    /// Checks the linked component against the world; fails when it does not
    /// export what a plugin must.
    pub(crate) fn new(instance_pre: InstancePre<StepState>) -> wasmtime::Result<Self> {
        let component = instance_pre.component();
        let invoke = component
            .get_export_index(None, INTEGRATION)
            .and_then(|integration| component.get_export_index(Some(&integration), "invoke"))
            .ok_or_else(|| {
                wasmtime::format_err!("the component does not export `{INTEGRATION}#invoke`")
            })?;
        let pre = generated::PluginPre::new(instance_pre)?;
        Ok(Self { pre, invoke })
    }

    /// Instantiates in `store` and calls `describe`: the manifest as the
    /// plugin declares it.
    pub(crate) async fn describe(
        &self,
        store: &mut Store<StepState>,
    ) -> wasmtime::Result<Declared> {
        let instance = self.pre.instantiate_async(&mut *store).await?;
        let manifest = instance
            .courier_plugin_integration()
            .call_describe(&mut *store)
            .await?;
        Ok(manifest.into())
    }

    /// A fresh instance in `store`, and its `invoke` export.
    pub(crate) async fn instantiate_invoke(
        &self,
        store: &mut Store<StepState>,
    ) -> wasmtime::Result<Invoke> {
        let instance = self
            .pre
            .instance_pre()
            .instantiate_async(&mut *store)
            .await?;
        instance.get_typed_func(store, self.invoke).map(Invoke)
    }
}

/// The `invoke` export of one instance.
#[derive(Clone, Copy)]
pub(crate) struct Invoke(TypedFunc<(String, String), (Result<String, types::StepError>,)>);

impl Invoke {
    /// Calls `invoke(call, input)`: the output JSON text or the plugin's
    /// error; `Err` when the call itself failed (a trap, the store's limits).
    pub(crate) async fn call(
        self,
        store: &mut Store<StepState>,
        call: String,
        input: String,
    ) -> wasmtime::Result<Result<String, PluginError>> {
        let (result,) = self.0.call_async(store, (call, input)).await?;
        Ok(result.map_err(Into::into))
    }
}
