//! The message bus between the gateway and the workers: NATS, or the worker library in-process.
//!
//! Both carry the same messages ([`EmbedRequest`]/[`EmbedReply`], [`WindowRequest`]/
//! [`WindowResult`], [`SessionEvent`]) with the same meaning; with NATS they travel on the
//! subjects of [`diglett_schemas::subjects`], where other services can subscribe too.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_nats::{Client, Request, Subscriber};
use diglett_schemas::{
    EmbedReply, EmbedRequest, SAMPLE_RATE, SCHEMA_VERSION, SessionEvent, WindowRequest,
    WindowResult, codec, subjects,
};
use diglett_worker::LocalWorker;
use diglett_worker::embed_client::{EmbedClientError, EmbedOptions, embed_request_with};
use futures_util::StreamExt;
use tokio::sync::{broadcast, mpsc};

/// Why the bus could not deliver.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// No worker is subscribed.
    #[error("no worker is answering")]
    NoWorkers,
    /// The workers did not answer in time.
    #[error("the workers did not answer in time")]
    Timeout,
    /// The bus itself failed.
    #[error("message bus: {0}")]
    Unavailable(String),
}

/// Results of one session, as they arrive (any order).
#[derive(Debug)]
pub enum ResultStream {
    /// A NATS subscription to `diglett.v1.results.<session>`.
    Nats(Subscriber),
    /// The in-process bus.
    Local(mpsc::Receiver<WindowResult>, LocalRoute),
}

impl ResultStream {
    /// The next result; `None` when the bus is gone. Undecodable messages are skipped (logged).
    pub async fn next(&mut self) -> Option<WindowResult> {
        match self {
            Self::Nats(sub) => loop {
                let msg = sub.next().await?;
                match codec::decode::<WindowResult>(&msg.payload) {
                    Ok(r) => return Some(r),
                    Err(e) => tracing::warn!(error = %e, "undecodable window result"),
                }
            },
            Self::Local(rx, _) => rx.recv().await,
        }
    }
}

/// Removes a session's route from the in-process bus when its stream is dropped.
#[derive(Debug)]
pub struct LocalRoute {
    routes: Routes,
    session: String,
}

impl Drop for LocalRoute {
    fn drop(&mut self) {
        if let Ok(mut r) = self.routes.lock() {
            r.remove(&self.session);
        }
    }
}

type Routes = Arc<Mutex<HashMap<String, mpsc::Sender<WindowResult>>>>;

/// The in-process bus: the worker library called directly.
#[derive(Debug, Clone)]
pub struct LocalBus {
    worker: LocalWorker,
    routes: Routes,
    events: broadcast::Sender<SessionEvent>,
}

/// Results buffered per session on the in-process bus (a session has at most its in-flight
/// cap of windows outstanding, plus re-publications).
const LOCAL_RESULT_BUFFER: usize = 1024;

/// The gateway's bus.
#[derive(Debug, Clone)]
pub enum Bus {
    /// NATS, with workers in other processes.
    Nats(Client),
    /// The worker in this process.
    Local(LocalBus),
}

impl Bus {
    /// The in-process bus around `worker`.
    pub fn local(worker: LocalWorker) -> Self {
        Self::Local(LocalBus {
            worker,
            routes: Arc::default(),
            events: broadcast::channel(1024).0,
        })
    }

    /// `"nats"` or `"embedded"`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Nats(_) => "nats",
            Self::Local(_) => "embedded",
        }
    }

    /// The in-process worker's metrics, rendered (embedded mode only).
    pub fn worker_metrics(&self) -> Option<String> {
        match self {
            Self::Nats(_) => None,
            Self::Local(l) => Some(l.worker.metrics().render()),
        }
    }

    /// Enrolls 16 kHz mono PCM (little-endian i16): the worker's embedding and verdict.
    ///
    /// # Errors
    /// No worker, timeout, or a bus failure.
    pub async fn embed(
        &self,
        pcm: &[u8],
        name: Option<&str>,
        timeout: Duration,
    ) -> Result<EmbedReply, BusError> {
        match self {
            Self::Nats(client) => embed_request_with(
                client,
                pcm,
                name,
                EmbedOptions {
                    part_bytes: None,
                    timeout,
                },
            )
            .await
            .map_err(|e| match e {
                EmbedClientError::NoResponders => BusError::NoWorkers,
                EmbedClientError::TimedOut => BusError::Timeout,
                e => BusError::Unavailable(e.to_string()),
            }),
            Self::Local(l) => {
                let req = EmbedRequest {
                    v: SCHEMA_VERSION,
                    request_id: uuid::Uuid::new_v4().simple().to_string(),
                    name: name.map(str::to_owned),
                    sample_rate: SAMPLE_RATE,
                    total_samples: (pcm.len() / 2) as u64,
                    parts: 1,
                    parts_subject: None,
                    pcm: pcm.to_vec(),
                    expires_at_unix_ms: None,
                };
                tokio::time::timeout(timeout, l.worker.embed(req))
                    .await
                    .map_err(|_| BusError::Timeout)
            }
        }
    }

    /// Subscribes to a session's results. Call before publishing its first window.
    ///
    /// # Errors
    /// The session id is not a valid subject token, or the subscription failed.
    pub async fn subscribe_results(&self, session: &str) -> Result<ResultStream, BusError> {
        let subject =
            subjects::results(session).map_err(|e| BusError::Unavailable(e.to_string()))?;
        match self {
            Self::Nats(client) => {
                let sub = client
                    .subscribe(subject)
                    .await
                    .map_err(|e| BusError::Unavailable(e.to_string()))?;
                // The server knows the subscription once a round trip completes.
                diglett_runtime::nats::round_trip(client, Duration::from_secs(5))
                    .await
                    .map_err(|e| BusError::Unavailable(e.to_string()))?;
                Ok(ResultStream::Nats(sub))
            }
            Self::Local(l) => {
                let (tx, rx) = mpsc::channel(LOCAL_RESULT_BUFFER);
                l.routes
                    .lock()
                    .map_err(|_| BusError::Unavailable("routes poisoned".into()))?
                    .insert(session.to_owned(), tx);
                Ok(ResultStream::Local(
                    rx,
                    LocalRoute {
                        routes: Arc::clone(&l.routes),
                        session: session.to_owned(),
                    },
                ))
            }
        }
    }

    /// Publishes a window for the workers; its result arrives on the session's stream.
    ///
    /// # Errors
    /// The bus failed (the window is lost; the caller's timeout handles it too).
    pub async fn publish_window(&self, req: WindowRequest) -> Result<(), BusError> {
        match self {
            Self::Nats(client) => {
                let subject = subjects::windows(&req.session)
                    .map_err(|e| BusError::Unavailable(e.to_string()))?;
                let bytes =
                    codec::encode(&req).map_err(|e| BusError::Unavailable(e.to_string()))?;
                client
                    .publish(subject, bytes.into())
                    .await
                    .map_err(|e| BusError::Unavailable(e.to_string()))
            }
            Self::Local(l) => {
                let route = l
                    .routes
                    .lock()
                    .map_err(|_| BusError::Unavailable("routes poisoned".into()))?
                    .get(&req.session)
                    .cloned();
                let Some(route) = route else {
                    return Err(BusError::Unavailable(
                        "no subscriber for the session".into(),
                    ));
                };
                let worker = l.worker.clone();
                tokio::spawn(async move {
                    let result = worker.window(req).await;
                    // A full or closed route means the session is gone or far behind: its
                    // timeout accounts for the window.
                    let _ = route.try_send(result);
                });
                Ok(())
            }
        }
    }

    /// Publishes a session event (best effort: logged on failure).
    pub async fn publish_event(&self, event: SessionEvent) {
        match self {
            Self::Nats(client) => {
                let Ok(subject) = subjects::events(&event.session) else {
                    return;
                };
                match codec::encode(&event) {
                    Ok(bytes) => {
                        if let Err(e) = client.publish(subject, bytes.into()).await {
                            tracing::warn!(error = %e, "cannot publish a session event");
                        }
                    }
                    Err(e) => tracing::warn!(error = %e, "cannot encode a session event"),
                }
            }
            Self::Local(l) => {
                let _ = l.events.send(event);
            }
        }
    }

    /// Session events on the in-process bus (embedded mode; with NATS, subscribe to
    /// `diglett.v1.events.>` instead).
    pub fn local_events(&self) -> Option<broadcast::Receiver<SessionEvent>> {
        match self {
            Self::Nats(_) => None,
            Self::Local(l) => Some(l.events.subscribe()),
        }
    }

    /// Whether the bus is connected and at least one worker answers (an empty enrollment,
    /// which a worker refuses at once with `empty`).
    ///
    /// # Errors
    /// What is not ready.
    pub async fn ready(&self, timeout: Duration) -> Result<(), BusError> {
        match self {
            Self::Nats(client) => {
                if client.connection_state() != async_nats::connection::State::Connected {
                    return Err(BusError::Unavailable("not connected to NATS".into()));
                }
                let probe = EmbedRequest {
                    v: SCHEMA_VERSION,
                    request_id: "readyz".into(),
                    name: None,
                    sample_rate: SAMPLE_RATE,
                    total_samples: 0,
                    parts: 1,
                    parts_subject: None,
                    pcm: Vec::new(),
                    expires_at_unix_ms: None,
                };
                let bytes =
                    codec::encode(&probe).map_err(|e| BusError::Unavailable(e.to_string()))?;
                let reply = client
                    .send_request(
                        subjects::EMBED,
                        Request::new().payload(bytes.into()).timeout(Some(timeout)),
                    )
                    .await
                    .map_err(|e| match e.kind() {
                        async_nats::RequestErrorKind::NoResponders => BusError::NoWorkers,
                        async_nats::RequestErrorKind::TimedOut => BusError::Timeout,
                        _ => BusError::Unavailable(e.to_string()),
                    })?;
                codec::decode::<EmbedReply>(&reply.payload)
                    .map(|_| ())
                    .map_err(|e| BusError::Unavailable(format!("worker reply: {e}")))
            }
            Self::Local(_) => Ok(()),
        }
    }
}
