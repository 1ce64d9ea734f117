//! `diglett-worker`: reads the configuration, installs logging and the signal handler,
//! connects to NATS, and runs [`diglett_worker::run`].

use std::process::ExitCode;

use anyhow::Context;
use diglett_worker::{Config, OsEnv};
use tokio::sync::watch;
use tracing_subscriber::EnvFilter;

/// `EX_USAGE` from sysexits.h: bad configuration.
const EXIT_BAD_CONFIG: u8 = 64;

/// Installs the SIGINT/SIGTERM listener once, at the start, so that a signal during the
/// connection retries is not lost; every clone of the receiver sees it.
fn install_shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    // Registered here, synchronously, rather than on the task's first poll.
    #[cfg(unix)]
    let streams = {
        use tokio::signal::unix::{SignalKind, signal};
        [SignalKind::interrupt(), SignalKind::terminate()].map(|kind| {
            signal(kind)
                .map_err(|e| tracing::error!(error = %e, ?kind, "cannot listen for a signal"))
                .ok()
        })
    };
    tokio::spawn(async move {
        #[cfg(unix)]
        {
            let [int, term] = streams;
            let wait = |s: Option<tokio::signal::unix::Signal>| async move {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                () = wait(int) => {},
                () = wait(term) => {},
            }
        }
        #[cfg(not(unix))]
        if let Err(e) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %e, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
        tracing::info!("shutdown signal received");
        tx.send_replace(true);
    });
    rx
}

/// Resolves once the signal listener has seen SIGINT or SIGTERM (also if it came earlier).
async fn shutdown_requested(mut rx: watch::Receiver<bool>) {
    if rx.wait_for(|s| *s).await.is_err() {
        // The listener is gone without a signal: never shut down on that account.
        std::future::pending::<()>().await;
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
            EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| EnvFilter::new(diglett_runtime::DEFAULT_LOG_FILTER)),
        )
        // Colours only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
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
async fn connect(
    config: &Config,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<Option<async_nats::Client>> {
    let mut backoff = std::time::Duration::from_millis(250);
    let shutdown = shutdown_requested(shutdown);
    tokio::pin!(shutdown);
    loop {
        let attempt = diglett_worker::connect_options(config).connect(config.nats_servers());
        let attempt = tokio::select! {
            a = attempt => a,
            () = &mut shutdown => return Ok(None),
        };
        match attempt {
            Ok(client) => {
                tracing::info!(url = %config.nats_url_redacted(), "connected to NATS");
                return Ok(Some(client));
            }
            Err(e) => {
                tracing::warn!(url = %config.nats_url_redacted(), error = %e, retry_in = ?backoff, "cannot connect to NATS");
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
    let shutdown = install_shutdown_signal();
    let Some(client) = connect(&config, shutdown.clone())
        .await
        .context("connecting to NATS")?
    else {
        return Ok(());
    };
    diglett_worker::run(client, config, shutdown_requested(shutdown))
        .await
        .context("worker")?;
    Ok(())
}
