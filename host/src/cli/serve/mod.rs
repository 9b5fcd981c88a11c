//! `courier serve`: the HTTP service over the library's public API —
//! tenants and their tokens, plugins (installs, upgrades, per-tenant
//! access), connections through the [`ConnectionStore`]
//! seam, steps (with `Idempotency-Key`), the step history, health. The
//! service's own records (tenants, token hashes, plugin versions, history)
//! are in `service.db` beside the connection store, components in
//! `plugins/`.
//!
//! [`ConnectionStore`]: courier_host::ConnectionStore

mod api;
mod auth;
mod config;
mod db;
mod mcp;
mod metrics;
mod openapi;
mod plugins;
mod problem;

use std::future::IntoFuture;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use anyhow::Context;
use courier_host::{ConcurrencyLimits, HostBuilder, Limits, LoadLimits, SqliteStore};

use config::{Config, Overrides, Settings};

/// `courier serve`'s own arguments.
#[derive(clap::Args)]
pub(crate) struct ServeArgs {
    /// The configuration file (TOML; every key is optional, see the README).
    #[arg(long)]
    config: Option<PathBuf>,
    /// The address to listen on (port 0 picks a free one) [default: 127.0.0.1:7878].
    #[arg(long)]
    listen: Option<SocketAddr>,
    /// The data directory [default: $COURIER_DATA_DIR, else
    /// $XDG_DATA_HOME/courier, else ~/.local/share/courier].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

/// Where the service's defaults come from the rest of the command line.
pub(crate) struct Defaults {
    /// `--plugin-dir` (or its default).
    pub(crate) plugin_dir: PathBuf,
    /// The CLI's data directory.
    pub(crate) data_dir: Option<PathBuf>,
    /// A host builder with the CLI's compiled-component cache.
    pub(crate) builder: HostBuilder,
}

/// Runs the service until SIGTERM or Ctrl-C.
pub(crate) fn serve(
    runtime: &tokio::runtime::Runtime,
    args: ServeArgs,
    defaults: Defaults,
) -> anyhow::Result<ExitCode> {
    let config = match &args.config {
        Some(path) => Config::read(path)?,
        None => Config::default(),
    };
    let settings = config.settings(Overrides {
        listen: args.listen,
        data_dir: args.data_dir,
        default_data_dir: defaults.data_dir,
        default_plugin_dir: defaults.plugin_dir,
    })?;
    runtime.block_on(run(settings, defaults.builder))?;
    Ok(ExitCode::SUCCESS)
}

async fn run(settings: Settings, builder: HostBuilder) -> anyhow::Result<()> {
    let store = Arc::new(SqliteStore::open_in(&settings.data_dir)?);
    let db = db::Db::open(&settings.data_dir)?;
    let mut builder = builder
        .connection_store(store.clone())
        .concurrency(ConcurrencyLimits {
            spare_instances: settings.spare_instances,
            ..ConcurrencyLimits::default()
        })
        .limits(Limits {
            step_deadline: settings.step_deadline,
            ..Limits::default()
        })
        // Uploads are capped by the API; a larger cap lifts the library's too.
        .load_limits(LoadLimits {
            max_component_bytes: settings
                .max_plugin_bytes
                .max(LoadLimits::default().max_component_bytes),
            ..LoadLimits::default()
        });
    for h in &settings.allow_hosts {
        builder = builder.allow_host(h.clone());
    }
    for n in &settings.allow_networks {
        builder = builder.allow_network(*n);
    }
    let host = builder.build()?;
    let registry = plugins::Registry::open(
        db.clone(),
        &settings.data_dir,
        &settings.plugin_dir,
        settings.max_plugin_bytes,
        &host,
    )
    .await?;
    db.delete_expired_steps(settings.history).await?;
    expire_history(db.clone(), settings.history);
    let (cut_off, cut_off_rx) = tokio::sync::watch::channel(false);
    let app = Arc::new(api::App::new(
        host,
        store,
        db,
        &settings.admin_token,
        registry,
        settings.history,
        cut_off_rx,
    ));
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .with_context(|| format!("cannot listen on {}", settings.listen))?;
    let addr = listener.local_addr()?;
    {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        writeln!(out, "listening on http://{addr}")?;
        out.flush()?;
    }
    tracing::info!(%addr, "listening");

    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let drain = settings.shutdown_drain;
    let signalled = {
        let app = app.clone();
        async move {
            shutdown_signal().await;
            app.shutting_down.store(true, Ordering::SeqCst);
            if !drain.is_zero() {
                tracing::info!(
                    drain_secs = drain.as_secs(),
                    "shutting down: not ready, still accepting"
                );
                tokio::time::sleep(drain).await;
            }
            tracing::info!("shutting down: no new connections, steps in flight may finish");
            let _ = stop_tx.send(true);
        }
    };
    let mut server = tokio::spawn(
        axum::serve(listener, api::router(app, settings.max_body_bytes))
            .with_graceful_shutdown(signalled)
            .into_future(),
    );
    let grace = settings.shutdown_grace;
    let deadline = async move {
        let _ = stop_rx.wait_for(|stopped| *stopped).await;
        tokio::time::sleep(grace).await;
    };
    tokio::select! {
        served = &mut server => served??,
        () = deadline => {
            tracing::warn!(grace_secs = grace.as_secs(), "shutdown grace over: steps still running end now");
            let _ = cut_off.send(true);
            // Their endings are recorded and answered; then the connections close.
            match tokio::time::timeout(std::time::Duration::from_secs(5), &mut server).await {
                Ok(served) => served??,
                Err(_) => tracing::warn!("connections still open after the steps ended: closed"),
            }
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Deletes history past its age every minute (so does starting, and
/// writing a step), so that it expires when no steps arrive.
fn expire_history(db: db::Db, retention: config::Retention) {
    tokio::spawn(async move {
        let minute = std::time::Duration::from_secs(60);
        let mut every = tokio::time::interval_at(tokio::time::Instant::now() + minute, minute);
        loop {
            every.tick().await;
            match db.delete_expired_steps(retention).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "history past its age deleted"),
                Err(e) => tracing::warn!(error = %format!("{e:#}"), "history expiry failed"),
            }
        }
    });
}

/// SIGTERM or Ctrl-C.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
