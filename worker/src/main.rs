//! `diglett-worker`: reads the configuration, installs logging and the signal handler,
//! connects to NATS, and runs [`diglett_worker::run`].

use std::process::ExitCode;

use anyhow::Context;
use diglett_worker::{Config, OsEnv};
use tracing_subscriber::EnvFilter;

/// `EX_USAGE` from sysexits.h: bad configuration.
const EXIT_BAD_CONFIG: u8 = 64;

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

fn main() -> ExitCode {
    let config = match Config::from_env(&OsEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("diglett-worker: {e}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("diglett-worker: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(serve(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Connects, retrying with backoff (0.25 s doubling to 5 s) until the server answers or a
/// shutdown signal arrives. After the first connection async-nats reconnects and re-subscribes
/// by itself, forever (`max_reconnects(None)`).
async fn connect(config: &Config) -> anyhow::Result<Option<async_nats::Client>> {
    let mut backoff = std::time::Duration::from_millis(250);
    let shutdown = shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        let attempt = async_nats::ConnectOptions::new()
            .name("diglett-worker")
            .max_reconnects(None)
            .subscription_capacity(config.subscription_capacity)
            .connect(config.nats_url.as_str());
        match attempt.await {
            Ok(client) => return Ok(Some(client)),
            Err(e) => {
                tracing::warn!(url = %config.nats_url, error = %e, retry_in = ?backoff, "cannot connect to NATS");
            }
        }
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = &mut shutdown => return Ok(None),
        }
        backoff = (backoff * 2).min(std::time::Duration::from_secs(5));
    }
}

async fn serve(config: Config) -> anyhow::Result<()> {
    let Some(client) = connect(&config).await.context("connecting to NATS")? else {
        return Ok(());
    };
    diglett_worker::run(client, config, shutdown_signal())
        .await
        .context("worker")?;
    Ok(())
}
