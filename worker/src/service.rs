//! The worker's lifecycle: models and engine start-up, the NATS subscriptions pulled under
//! permits, drain on shutdown, and the helpers the handlers share. What happens to one window
//! is [`crate::window`], to one enrollment [`crate::embed`].

pub use diglett_runtime::nats::round_trip;
use std::net::SocketAddr;
use std::sync::Arc;

use async_nats::{Client, Subscriber};
use diglett_model::compute::{Compute, ComputeError};
use diglett_schemas::{ErrorKind, codec, subjects};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::engine::{BatchSettings, Engine, ModelError, Models};
use crate::metrics::{self, Metrics};
use crate::stream::{self, StreamError};

/// Most enrolled speakers per window (bounds the scoring work a message can ask for).
pub const MAX_SPEAKERS: usize = 64;
/// Longest speaker id, speaker name or enrollment name (bytes): the API allows 256 characters,
/// and a character of UTF-8 takes up to 4 bytes.
pub const MAX_NAME_BYTES: usize = 1024;
/// Most parts of a chunked enrollment upload.
pub const MAX_PARTS: u32 = 1024;

/// Allowance for the client's clock being behind the worker's when checking
/// [`EmbedRequest::expires_at_unix_ms`] (ms): NTP keeps hosts well within this.
pub const CLOCK_SKEW_MS: u64 = 2_000;
/// `kind` label of `diglett_worker_errors_total` for enrollments dropped because their client
/// had stopped waiting (also counted as `part_timeout`, the kind of their reply).
pub const EXPIRED: &str = "expired";

/// Extra, test-facing inputs of [`run_with`].
#[derive(Debug, Default)]
pub struct RunOptions {
    /// Already loaded models (tests share one copy); `None` loads them.
    pub models: Option<Arc<Models>>,
    /// Told once the subscriptions are active at the server.
    pub ready: Option<oneshot::Sender<Ready>>,
}

/// Sent on [`RunOptions::ready`].
#[derive(Debug, Clone, Copy)]
pub struct Ready {
    /// Where `/metrics` is served (useful with port 0).
    pub metrics_addr: Option<SocketAddr>,
}

/// The worker could not start.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// Loading the models failed.
    #[error(transparent)]
    Models(#[from] ModelError),
    /// The compute pool could not be created.
    #[error(transparent)]
    Compute(#[from] ComputeError),
    /// The metrics endpoint could not be bound.
    #[error("metrics endpoint: {0}")]
    Metrics(std::io::Error),
    /// The inference thread could not be started.
    #[error("inference thread: {0}")]
    Thread(std::io::Error),
    /// The JetStream stream could not be ensured.
    #[error(transparent)]
    Stream(#[from] StreamError),
    /// Subscribing failed.
    #[error("NATS: {0}")]
    Nats(String),
    /// The inference thread ended while the worker was running (a panic outside any job): the
    /// worker drained and stopped, so that a supervisor restarts the process rather than it
    /// answering `internal` forever from inside the queue group.
    #[error("the inference thread died")]
    EngineDied,
}

/// Runs the worker until `shutdown` resolves, then drains (see the crate docs).
///
/// The subscriptions' buffers are bounded by the client's subscription capacity, which `run`
/// cannot change: build `client` with [`crate::connect_options`] so that
/// [`Config::subscription_capacity`] applies.
///
/// # Errors
/// Setup failures, and [`RunError::EngineDied`] if the inference thread ends while running.
pub async fn run(
    client: Client,
    config: Config,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    run_with(client, config, RunOptions::default(), shutdown).await
}

/// State shared by the message handlers.
#[derive(Debug)]
pub(crate) struct Ctx {
    /// `None` in-process ([`crate::local`]): no part fetching, results are returned instead of
    /// published.
    pub(crate) client: Option<Client>,
    pub(crate) engine: Engine,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) config: Config,
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Window,
    Embed,
}

/// A worker running on a task of its own, started by [`spawn`] (tests, benchmarks and anything
/// else that runs a worker beside other code in one process).
#[derive(Debug)]
pub struct Spawned {
    /// The readiness signal: resolves once the subscriptions are active (an error if the worker
    /// could not start).
    pub ready: oneshot::Receiver<Ready>,
    shutdown: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<Result<(), RunError>>>,
}

impl Spawned {
    /// Asks the worker to drain and stop, and waits for it: `None` when it has not stopped
    /// within `patience` (or was already stopped), else how `run` ended.
    pub async fn stop(&mut self, patience: std::time::Duration) -> Option<Result<(), RunError>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let task = self.task.take()?;
        match tokio::time::timeout(patience, task).await {
            Ok(Ok(result)) => Some(result),
            Ok(Err(join)) => std::panic::resume_unwind(join.into_panic()),
            Err(_) => None,
        }
    }
}

/// Runs [`run_with`] on a new task with `models` (`None` loads them) until
/// [`Spawned::stop`].
pub fn spawn(client: Client, config: Config, models: Option<Arc<Models>>) -> Spawned {
    let (shutdown_tx, shutdown_rx) = oneshot::channel::<()>();
    let (ready_tx, ready) = oneshot::channel();
    let opts = RunOptions {
        models,
        ready: Some(ready_tx),
    };
    let task = tokio::spawn(run_with(client, config, opts, async {
        let _ = shutdown_rx.await;
    }));
    Spawned {
        ready,
        shutdown: Some(shutdown_tx),
        task: Some(task),
    }
}

/// [`run`] with preloaded models and a readiness signal.
pub async fn run_with(
    client: Client,
    config: Config,
    opts: RunOptions,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RunError> {
    let models = load_models(opts.models).await?;
    let compute = Compute::new(config.compute_threads)?;
    let metrics = Arc::new(Metrics::new());
    let (stop_tx, stop_rx) = watch::channel(false);

    let mut metrics_task = None;
    let mut metrics_addr = None;
    if let Some(addr) = config.metrics_addr {
        let listener = metrics::bind(addr).await.map_err(RunError::Metrics)?;
        metrics_addr = Some(listener.local_addr().map_err(RunError::Metrics)?);
        let mut stop = stop_rx.clone();
        metrics_task = Some(tokio::spawn(metrics::serve(
            listener,
            Arc::clone(&metrics),
            async move {
                let _ = stop.wait_for(|s| *s).await;
            },
        )));
    }

    if config.events_stream {
        let info = stream::ensure(&client, config.events_max_age, config.events_max_bytes).await?;
        tracing::info!(stream = %info.config.name, max_age = ?info.config.max_age, "events stream ready");
    }

    let (engine, mut engine_exit) = start_engine(&config, models, compute, &metrics)?;

    let nats = |e: &dyn std::fmt::Display| RunError::Nats(e.to_string());
    let windows = client
        .queue_subscribe(
            subjects::WINDOWS_ALL,
            subjects::WORKER_QUEUE_GROUP.to_owned(),
        )
        .await
        .map_err(|e| nats(&e))?;
    let embeds = client
        .queue_subscribe(subjects::EMBED, subjects::WORKER_QUEUE_GROUP.to_owned())
        .await
        .map_err(|e| nats(&e))?;
    // The server has the subscriptions once a round trip completes (`flush` only writes).
    round_trip(&client, ROUND_TRIP_TIMEOUT)
        .await
        .map_err(|e| nats(&e))?;

    let ctx = Arc::new(Ctx {
        client: Some(client.clone()),
        engine,
        metrics,
        config: config.clone(),
    });
    let window_loop = tokio::spawn(pull(
        windows,
        Arc::new(Semaphore::new(config.max_in_flight)),
        stop_rx.clone(),
        Arc::clone(&ctx),
        Kind::Window,
    ));
    let embed_loop = tokio::spawn(pull(
        embeds,
        Arc::new(Semaphore::new(config.max_embeds_in_flight)),
        stop_rx,
        ctx,
        Kind::Embed,
    ));
    tracing::info!(
        threads = config.compute_threads,
        batch_size = config.batch_size,
        ?metrics_addr,
        "worker ready"
    );
    if let Some(ready) = opts.ready {
        let _ = ready.send(Ready { metrics_addr });
    }

    let engine_died = tokio::select! {
        () = shutdown => false,
        () = engine_exit.wait() => true,
    };
    if engine_died {
        tracing::error!("the inference thread died; stopping");
    }
    tracing::info!("shutting down: draining subscriptions");
    stop_tx.send_replace(true);
    let drained = tokio::time::timeout(config.shutdown_timeout, async {
        let _ = window_loop.await;
        let _ = embed_loop.await;
        client.flush().await
    })
    .await;
    match drained {
        Ok(Ok(())) => tracing::info!("drained; every accepted message was answered"),
        Ok(Err(e)) => tracing::warn!(error = %e, "final flush failed"),
        Err(_) => tracing::warn!("shutdown timed out; unfinished work was dropped"),
    }
    if let Some(task) = metrics_task {
        let _ = tokio::time::timeout(config.shutdown_timeout, task).await;
    }
    if engine_died {
        return Err(RunError::EngineDied);
    }
    Ok(())
}

/// `models`, or the models loaded from the embedded weights (off the async threads).
pub(crate) async fn load_models(models: Option<Arc<Models>>) -> Result<Arc<Models>, RunError> {
    Ok(match models {
        Some(m) => m,
        None => Arc::new(
            tokio::task::spawn_blocking(Models::load)
                .await
                .map_err(|e| ModelError::Encoder(e.to_string()))??,
        ),
    })
}

/// The inference thread with the configuration's batching and queue capacity.
pub(crate) fn start_engine(
    config: &Config,
    models: Arc<Models>,
    compute: Compute,
    metrics: &Arc<Metrics>,
) -> Result<(Engine, crate::engine::EngineExit), RunError> {
    Engine::start(
        models,
        compute,
        BatchSettings {
            max_batch: config.batch_size,
            max_wait: config.batch_wait,
            capacity: config.max_in_flight + config.max_embeds_in_flight,
        },
        Arc::clone(metrics),
    )
    .map_err(RunError::Thread)
}

/// Pulls messages while permits are free, handles each in its own task, and on stop drains the
/// subscription and waits for every accepted message.
async fn pull(
    mut sub: Subscriber,
    permits: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
    ctx: Arc<Ctx>,
    kind: Kind,
) {
    let mut tasks = JoinSet::new();
    let mut draining = false;
    loop {
        while tasks.try_join_next().is_some() {}
        // No permit, no pull: the backlog stays in the bounded subscription buffer.
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => break,
            },
            _ = stop.changed(), if !draining => {
                if let Some(client) = &ctx.client {
                    drain(client, &mut sub).await;
                }
                draining = true;
                continue;
            }
        };
        let msg = tokio::select! {
            m = sub.next() => m,
            _ = stop.changed(), if !draining => {
                if let Some(client) = &ctx.client {
                    drain(client, &mut sub).await;
                }
                draining = true;
                continue;
            }
        };
        let Some(msg) = msg else { break };
        let ctx = Arc::clone(&ctx);
        tasks.spawn(async move {
            match kind {
                Kind::Window => crate::window::handle_window(&ctx, msg).await,
                Kind::Embed => crate::embed::handle_embed(&ctx, msg).await,
            }
            drop(permit);
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Stops the server sending to `sub` while keeping what it already sent.
///
/// async-nats 0.51 forgets a draining subscription on its next poll rather than after the
/// server has confirmed the UNSUB, and its `flush` only flushes the socket, so messages still
/// on the wire would be dropped. A [`round_trip`] first moves everything the server routed to
/// this connection before it into the subscription's buffer; only messages routed in the
/// moment between that round trip and the server reading the UNSUB can still be lost (see the
/// README's known gaps).
async fn drain(client: &Client, sub: &mut Subscriber) {
    if let Err(e) = round_trip(client, ROUND_TRIP_TIMEOUT).await {
        tracing::warn!(error = %e, "round trip before drain failed");
    }
    if let Err(e) = sub.drain().await {
        tracing::warn!(error = %e, "cannot drain subscription");
    }
}

/// Bound on [`round_trip`] during shutdown.
const ROUND_TRIP_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// A message the worker rejects, with what it could read of it.
#[derive(Debug)]
pub(crate) struct Rejected {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

/// Longest error message put in a reply or result (bytes): messages may quote what the sender
/// sent (a decoder's "unknown variant …", a session id), and a reply must stay far below
/// `max_payload`.
pub const MAX_MESSAGE_BYTES: usize = 512;

pub use diglett_schemas::clip;

impl Rejected {
    pub(crate) fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        let mut message = message.into();
        if message.len() > MAX_MESSAGE_BYTES {
            message = format!("{}…", clip(&message, MAX_MESSAGE_BYTES));
        }
        Self { kind, message }
    }
}

impl From<codec::CodecError> for Rejected {
    fn from(e: codec::CodecError) -> Self {
        Self::new(ErrorKind::from(&e), e.to_string())
    }
}

pub(crate) fn check_name(what: &str, s: &str) -> Result<(), Rejected> {
    if s.len() > MAX_NAME_BYTES {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!("{what} is longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

pub(crate) async fn publish<T: serde::Serialize>(ctx: &Ctx, subject: String, msg: &T) {
    let bytes = match codec::encode(msg) {
        Ok(b) => b,
        Err(e) => {
            tracing::error!(error = %e, "cannot encode a message");
            ctx.metrics.error("encode");
            return;
        }
    };
    let Some(client) = &ctx.client else { return };
    if let Err(e) = client.publish(subject, bytes.into()).await {
        tracing::warn!(error = %e, "cannot publish");
        ctx.metrics.error("publish");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("aé", 2), "a");
        let r = Rejected::new(ErrorKind::BadRequest, "x".repeat(10_000));
        assert_eq!(r.message.len(), MAX_MESSAGE_BYTES + '…'.len_utf8());
    }
}
