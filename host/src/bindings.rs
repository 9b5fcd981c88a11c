//! The generated wasmtime bindings for `wit/` (world `courier:plugin/plugin`),
//! kept private to the crate: the rest of the host converts them into its own
//! typed values at the edges.
#![allow(missing_docs, unsafe_code, unreachable_pub)]

wasmtime::component::bindgen!({
    path: "../wit",
    world: "plugin",
    imports: { default: async },
    exports: { default: async },
});

pub(crate) use courier::plugin::types;
