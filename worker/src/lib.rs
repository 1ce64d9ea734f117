//! Diglett's inference worker: enrollment embeddings and window verification over NATS.
//!
//! [`run`] queue-subscribes (group `diglett-workers`) to `diglett.v1.embed` and
//! `diglett.v1.windows.*`, runs the models on a dedicated inference thread with its own
//! compute pool, and publishes to `diglett.v1.results.<session>`. The binary (`main.rs`) only
//! reads the configuration, installs logging and the signal handler, connects, and calls
//! [`run`].
//!
//! Backpressure: every accepted message holds a semaphore permit until its reply or result is
//! published; with no permit free, the worker stops pulling from its subscriptions (whose
//! buffers are bounded by the client's subscription capacity, set from the configuration by
//! [`connect_options`]), so nothing queues without limit. A chunked enrollment holds its permit
//! for at most [`Config::embed_deadline`] while it fetches parts.
//!
//! Shutdown: when the shutdown future resolves, both subscriptions are drained (the server
//! stops sending, buffered messages are still handled), every accepted message is finished and
//! published, the connection is flushed, and [`run`] returns — all within
//! [`Config::shutdown_timeout`].
//!
//! # Layout
//! - [`config`]: the environment variables.
//! - [`engine`]: models, the inference thread, micro-batching, per-window processing.
//! - [`local`]: the same worker called in-process, without NATS (the gateway's embedded mode).
//! - [`service`]: start-up, subscriptions, drain; `window` and `embed`: one window, one
//!   enrollment (validation, inference, the result or reply); [`embed_client`]: the client
//!   side of the chunked enrollment.
//! - [`metrics`]: Prometheus metrics and the `/metrics` endpoint.
//! - [`stream`]: the `DIGLETT_EVENTS` JetStream stream.

pub mod config;
mod embed;
pub mod embed_client;
pub mod engine;
pub mod local;
pub mod metrics;
pub mod service;
pub mod stream;
mod window;

pub use config::{Config, ConfigError, Env, NatsCredentials, OsEnv};
pub use engine::{EngineExit, Models};
pub use local::LocalWorker;
pub use service::{Ready, RunError, RunOptions, Spawned, round_trip, run, run_with, spawn};

/// The options the worker's NATS client needs: its name, reconnecting forever (async-nats then
/// re-subscribes by itself), and [`Config::subscription_capacity`] as the per-subscription
/// buffer. [`run`] cannot change the capacity of a client it is given, so build that client
/// from these options (the binary and the tests do).
pub fn connect_options(config: &Config) -> async_nats::ConnectOptions {
    config.with_nats_security(
        async_nats::ConnectOptions::new()
            .name("diglett-worker")
            .max_reconnects(None)
            .subscription_capacity(config.subscription_capacity),
    )
}
