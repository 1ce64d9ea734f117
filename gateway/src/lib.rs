//! Diglett's gateway: REST enrollment and speaker profiles, and the WebSocket streaming
//! protocol, in front of the workers.
//!
//! The gateway is thin: it decodes uploads, cuts 1.6 s windows from live streams, resolves
//! profiles, publishes to the bus and relays results in order with turn smoothing; the neural
//! networks run in the workers. With `DIGLETT_NATS_URL` unset it runs the worker library
//! in-process ([`bus::Bus::Local`]) and, with `DIGLETT_REDIS_URL` unset, keeps profiles in an
//! embedded database: one binary is the whole service.
//!
//! # Layout
//! - [`config`]: environment variables.
//! - [`app`]: state, router, graceful shutdown.
//! - [`rest`]: the REST endpoints; [`openapi`]: `/openapi.json` and `/docs`.
//! - [`session`]: streaming sessions (their messages are `diglett_api::protocol`).
//! - [`bus`]: NATS or in-process; [`store`]: Redis or embedded profiles.
//! - [`auth`]: API keys and tenants; [`error`]: JSON errors; [`metrics`]: Prometheus.
//! - [`web`]: the web page at `/` (enroll voices, watch a conversation).
//!
//! The HTTP/WebSocket contract (messages, bodies, the error body) is the `diglett-api` crate;
//! the client library and command line are `diglett-client`; decisions are `diglett-decision`.

pub mod app;
pub mod auth;
pub mod bus;
pub mod config;
pub mod error;
pub mod metrics;
pub mod openapi;
pub mod rest;
pub mod session;
pub mod store;
pub mod web;

use std::sync::Arc;

pub use app::{AppState, router, serve};
pub use config::Config;

use crate::bus::Bus;
use crate::store::Store;

/// Why the gateway could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// NATS could not be reached.
    #[error("NATS: {0}")]
    Nats(String),
    /// The profile store could not be opened.
    #[error(transparent)]
    Store(#[from] store::StoreError),
    /// The in-process worker could not start.
    #[error("embedded worker: {0}")]
    Worker(#[from] diglett_worker::RunError),
}

/// Extra inputs for tests: preloaded models for the embedded worker.
#[derive(Debug, Default, Clone)]
pub struct StartOptions {
    /// Models shared between tests (`None` loads them).
    pub models: Option<Arc<diglett_worker::Models>>,
}

/// How long the gateway keeps trying to reach NATS at start (a compose stack may start the
/// gateway before the server); after that it exits, and a supervisor restarts it.
pub const NATS_CONNECT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(30);

/// Connects to NATS, retrying for [`NATS_CONNECT_PATIENCE`]; once connected, the client
/// reconnects by itself for ever.
async fn connect_nats(config: &Config) -> Result<async_nats::Client, StartError> {
    let deadline = tokio::time::Instant::now() + NATS_CONNECT_PATIENCE;
    loop {
        let attempt = config
            .worker
            .with_nats_security(
                async_nats::ConnectOptions::new()
                    .name("diglett-gateway")
                    .max_reconnects(None)
                    .connection_timeout(std::time::Duration::from_secs(2)),
            )
            .connect(config.worker.nats_servers())
            .await;
        match attempt {
            Ok(client) => return Ok(client),
            Err(e) if tokio::time::Instant::now() >= deadline => {
                return Err(StartError::Nats(e.to_string()));
            }
            Err(e) => {
                tracing::warn!(error = %e, "NATS not reachable yet; retrying");
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            }
        }
    }
}

/// Connects the bus and opens the store as the configuration says. In embedded mode the
/// returned [`diglett_worker::EngineExit`] resolves if the inference thread dies.
///
/// # Errors
/// See [`StartError`].
pub async fn start(
    config: Config,
    opts: StartOptions,
) -> Result<(AppState, Option<diglett_worker::EngineExit>), StartError> {
    let store = match &config.redis_url {
        Some(url) => {
            Store::connect_redis_with_ca(url, &config.redis_prefix, config.redis_ca.as_deref())
                .await?
        }
        None => Store::open_embedded(&config.data_dir).await?,
    };
    let (bus, exit) = match &config.nats_url {
        Some(_) => (Bus::Nats(connect_nats(&config).await?), None),
        None => {
            let (worker, exit) =
                diglett_worker::LocalWorker::start(config.worker.clone(), opts.models).await?;
            (Bus::local(worker), Some(exit))
        }
    };
    tracing::info!(bus = bus.kind(), store = store.backend(), "gateway started");
    Ok((AppState::new(config, bus, store), exit))
}
