//! End-to-end tests: the real host, real compiled plugins (`target/plugins`),
//! real HTTP servers on 127.0.0.1. One binary, a module per area.

mod auth;
mod bodies;
mod build_languages;
mod cache;
mod cassettes;
mod cli;
mod contract;
mod curl_import;
mod embedding;
mod fault;
mod first_plugin;
mod http_request;
mod httpbin;
mod initialize;
mod jwt;
mod languages;
mod limits;
mod oauth;
mod pagination;
mod parity;
mod policy;
mod pool;
mod rate;
mod redirects;
mod reliability;
mod response_cache;
mod responses;
mod sandbox;
mod seams;
mod secrets;
mod service;
mod store;
mod timeouts;
mod tls;
mod vendors;

use courier_host::{ConnectionConfig, Host, StepRequest, StepResult};

/// Runs `call` of `plugin` with `input` and these connection files (TOML text).
async fn step(
    host: &Host,
    plugin: &str,
    call: &str,
    input: serde_json::Value,
    connections: &[&str],
) -> StepResult {
    let connections = connections
        .iter()
        .map(|t| {
            toml::from_str::<ConnectionConfig>(t)
                .expect("connection TOML parses")
                .into()
        })
        .collect();
    host.run_step(StepRequest {
        tenant: "test".into(),
        plugin: plugin.into(),
        call: call.into(),
        input,
        connections,
    })
    .await
}
