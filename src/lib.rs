//! The giftdrop application: configuration, wiring of every crate into a
//! running process, the HTTP and WebSocket transports, and shutdown.
//! `main.rs` only parses the command line; tests start the same wiring with
//! [`app::start`].

pub mod app;
pub mod cli;
pub mod config;
pub mod db;
pub mod http;
pub mod serve;
pub mod telemetry;

use anyhow::Context;

use crate::cli::{Cli, Command};

/// Installs ring as the process's TLS crypto provider; must happen before
/// anything opens a TLS connection (Sentry, SMTP, HTTP clients).
pub fn install_crypto_provider() {
    // Fails only when a provider is already installed, which is fine.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Runs the command line's mode until it finishes or SIGTERM/SIGINT.
pub fn run(cli: Cli) -> anyhow::Result<()> {
    install_crypto_provider();
    let _sentry = telemetry::init(&cli.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async move {
        let command = cli.command.unwrap_or(Command::All);
        if command == Command::Migrate {
            db::prepare(cli.config.migration_url()).await?;
            tracing::info!("migrations applied");
            return Ok(());
        }
        let shutdown = tokio_util::sync::CancellationToken::new();
        let running = app::start(cli.config, app::Mode::from(command), shutdown.clone()).await?;
        if let Some(addr) = running.http_addr {
            tracing::info!(%addr, "giftdrop is listening");
        }
        app::shutdown_signal().await;
        tracing::info!("shutting down: finishing in-flight requests and jobs");
        shutdown.cancel();
        running.stopped().await
    })
}
