//! Write Courier integration plugins in Rust.
//!
//! A plugin is a WebAssembly component of the `courier:plugin/plugin` world. It
//! declares what it offers in a [`Plugin`] (its calls, the hosts it may reach and
//! the connections it needs) and talks to the outside only through the host:
//! [`Request`] describes a request, the host sends it, adds the credentials of
//! the named connection and hands back a [`Response`]. A plugin never sees a
//! secret.
//!
//! ```no_run
//! use courier_sdk::prelude::*;
//!
//! #[derive(Deserialize, JsonSchema)]
//! struct Input { email: String }
//!
//! /// Creates a Stripe customer.
//! #[call(action, idempotent = false)]
//! fn create_customer(input: Input) -> Result<Value, StepError> {
//!     let resp = Request::post("/v1/customers")    // relative to the connection's base URL
//!         .connection("stripe")                     // the host adds the secret key
//!         .form([("email", input.email.as_str())])
//!         .send()?;                                 // Err(StepError::Send(..)) if denied
//!     resp.error_for_status()?.json()
//! }
//!
//! fn plugin() -> Plugin {
//!     Plugin::new("stripe", env!("CARGO_PKG_VERSION"))
//!         .description("Stripe payments")
//!         .connection(
//!             Connection::new("stripe")
//!                 .base_url("https://api.stripe.com")  // also allows this host
//!                 .auth(Auth::Bearer),
//!         )
//!         .call(create_customer::call())
//! }
//!
//! courier_sdk::export!(plugin);
//! # fn main() {}
//! ```
//!
//! [`#[call]`](call) keeps the function as written and puts its declaration
//! beside it (`create_customer::call()`); [`Call::action`] and
//! [`Call::data`] build one at run time. Input and output JSON Schemas come
//! from the `schemars` derive (`JsonSchema`, in the prelude) of the
//! function's types. Plugins use only this crate's types: the generated WIT
//! bindings stay inside it (`convert.rs` is the one place that converts), so
//! a field added to the WIT contract does not break a plugin. Natively,
//! [`testing`] stands in for the host so calls run under `cargo test`.
//!
//! A plugin crate is a `cdylib` that depends on `courier-sdk` and `serde` (the
//! serde derives need the `serde` crate by name; the schemars derive works
//! through the prelude). Build it with `courier build`.

// The bindings' runtime path is spelled `courier_sdk::…` so that it also
// resolves in plugin crates, where the export macro expands.
extern crate self as courier_sdk;

mod alloc;
mod convert;
mod errors;
mod host;
pub mod http;
pub mod log;
mod plugin;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[cfg(target_arch = "wasm32")]
#[global_allocator]
static ALLOCATOR: alloc::StepAllocator = alloc::StepAllocator::new();

pub use courier_sdk_macros::call;
pub use errors::StepError;
pub use http::{
    Body, CursorPages, FormPart, Method, PageStyle, Pagination, Request, Response, RetryPolicy,
    SendError, SendReason, TimeoutPhase, bound_connections, new_idempotency_key, send_all,
};
pub use plugin::{
    ApiKeyScheme, Auth, Call, CallKind, ClientAuth, Connection, Jwt, JwtAlgorithm, KeyLocation,
    OAuth2, PlacementTarget, Plugin, SecretPlacement,
};
pub use schemars;
pub use serde;
pub use serde_json;
pub use serde_json::{Value, json};

/// Everything a plugin usually needs: `use courier_sdk::prelude::*;`.
pub mod prelude {
    pub use crate::{
        ApiKeyScheme, Auth, Body, Call, CallKind, ClientAuth, Connection, FormPart, Jwt,
        JwtAlgorithm, KeyLocation, Method, OAuth2, PageStyle, Pagination, PlacementTarget, Plugin,
        Request, Response, RetryPolicy, SecretPlacement, SendError, SendReason, StepError,
        TimeoutPhase, Value, bound_connections, call, json, new_idempotency_key, schemars,
        send_all, serde_json,
    };
    pub use crate::{debug, error, info, trace, warn};
    pub use schemars::JsonSchema;
    pub use serde::{Deserialize, Serialize};
}

/// Declares the plugin's entry point: `courier_sdk::export!(plugin);` where
/// `plugin` is a `fn() -> Plugin`.
///
/// The function runs once per `describe`, and in an instance that runs calls
/// once, before its first `invoke` (each step runs in a fresh instance), so it
/// should only build the [`Plugin`] value. JSON Schemas are generated in
/// `describe` only.
#[macro_export]
macro_rules! export {
    ($plugin:path) => {
        #[allow(unsafe_code)]
        const _: () = {
            struct CourierPlugin;

            impl $crate::__private::Guest for CourierPlugin {
                fn describe() -> $crate::__private::Manifest {
                    $crate::__private::describe($plugin)
                }

                fn invoke(
                    call: ::std::string::String,
                    input: ::std::string::String,
                ) -> ::core::result::Result<::std::string::String, $crate::__private::WitStepError>
                {
                    $crate::__private::invoke($plugin, &call, &input)
                }
            }

            $crate::__private::bindings::__export_plugin!(
                CourierPlugin with_types_in $crate::__private::bindings
            );
        };
    };
}

/// Support for [`export!`]; not a public API.
#[doc(hidden)]
pub mod __private {
    pub use wit_bindgen;

    /// Raw bindings of the `courier:plugin/plugin` world.
    #[allow(unsafe_code, missing_docs, clippy::all)]
    pub mod bindings {
        wit_bindgen::generate!({
            world: "plugin",
            path: "../wit",
            additional_derives: [PartialEq],
            pub_export_macro: true,
            export_macro_name: "__export_plugin",
            runtime_path: "courier_sdk::__private::wit_bindgen::rt",
        });
    }

    pub use bindings::courier::plugin::types::{Manifest, StepError as WitStepError};
    pub use bindings::exports::courier::plugin::integration::Guest;

    use crate::{Plugin, convert};

    /// `integration.describe`: the manifest, with the calls' JSON Schemas.
    pub fn describe(plugin: fn() -> Plugin) -> Manifest {
        convert::manifest(plugin())
    }

    std::thread_local! {
        /// The plugin's declaration, built on the instance's first `invoke`:
        /// an instance is single-threaded and exports one plugin.
        static PLUGIN: std::cell::OnceCell<Plugin> = const { std::cell::OnceCell::new() };
    }

    /// `integration.invoke`: runs one call. A panic aborts the instance (the
    /// host reports a trap); its message goes to the step's log first.
    pub fn invoke(plugin: fn() -> Plugin, call: &str, input: &str) -> Result<String, WitStepError> {
        PLUGIN.with(|built| {
            let plugin = built.get_or_init(|| {
                std::panic::set_hook(Box::new(|info| crate::log::error(&info.to_string())));
                plugin()
            });
            plugin.invoke(call, input).map_err(convert::step_error)
        })
    }
}
