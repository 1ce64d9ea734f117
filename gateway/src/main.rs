//! `diglett-gateway`: reads the configuration, starts, serves until SIGINT/SIGTERM.

use std::process::ExitCode;

use diglett_gateway::config::{Config, OsEnv};
use diglett_gateway::{StartOptions, serve, start};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| diglett_runtime::DEFAULT_LOG_FILTER.into()),
        )
        // Colours only on a terminal: a log file or a collector gets plain text.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .init();
    let config = match Config::from_env(&OsEnv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("diglett-gateway: {e}");
            return ExitCode::from(64);
        }
    };
    let listen = config.listen;
    let listener = match tokio::net::TcpListener::bind(listen).await {
        Ok(l) => l,
        Err(e) => {
            eprintln!("diglett-gateway: cannot listen on {listen}: {e}");
            return ExitCode::from(71);
        }
    };
    let (state, exit) = match start(config, StartOptions::default()).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("diglett-gateway: {e}");
            return ExitCode::from(69);
        }
    };
    tracing::info!(%listen, "listening");
    let engine_died = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let died = std::sync::Arc::clone(&engine_died);
    let shutdown = async move {
        let engine = async {
            match exit {
                Some(mut e) => e.wait().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = signal() => tracing::info!("shutting down"),
            () = engine => {
                tracing::error!("the inference thread died; shutting down");
                died.store(true, std::sync::atomic::Ordering::SeqCst);
            }
        }
    };
    if let Err(e) = serve(listener, state, shutdown).await {
        eprintln!("diglett-gateway: {e}");
        return ExitCode::from(70);
    }
    if engine_died.load(std::sync::atomic::Ordering::SeqCst) {
        return ExitCode::from(70);
    }
    ExitCode::SUCCESS
}

async fn signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
