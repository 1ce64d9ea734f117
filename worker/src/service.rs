//! Subscriptions, validation, and the replies and results the worker publishes.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use async_nats::{Client, Message, Request, Subscriber};
use diglett_model::compute::{Compute, ComputeError};
use diglett_model::scoring::{self, Label as ModelLabel};
use diglett_schemas::{
    self as schemas, EMBEDDING_DIM, EmbedError, EmbedOutcome, EmbedReply, EmbedRequest, Enrollment,
    ErrorKind, Label, MIN_PART_BYTES, PartRequest, PcmPart, SAMPLE_RATE, SCHEMA_VERSION,
    SpeakerScore, SpeechProbability, Timing, Verdict, WINDOW_SAMPLES, WindowError, WindowRequest,
    WindowResult, codec, pcm, subjects,
};
use futures_util::StreamExt;
use tokio::sync::{Semaphore, oneshot, watch};
use tokio::task::JoinSet;

use crate::config::Config;
use crate::engine::{
    BatchSettings, Engine, EnrollmentOutput, Expired, ModelError, Models, WindowInput, WindowOutput,
};
use crate::metrics::{self, Metrics};
use crate::stream::{self, StreamError};

/// Most enrolled speakers per window (bounds the scoring work a message can ask for).
pub const MAX_SPEAKERS: usize = 64;
/// Longest speaker id, speaker name or enrollment name (bytes).
pub const MAX_NAME_BYTES: usize = 256;
/// Most parts of a chunked enrollment upload.
pub const MAX_PARTS: u32 = 1024;
/// Enrollment needs this much speech (s).
pub const MIN_SPEECH_SECONDS: f32 = 2.0;
/// Enrollment is `clipped` above this share of full-scale samples (1%).
pub const MAX_CLIPPED_FRACTION: f32 = 0.01;
/// Enrollment is `too_quiet` below this level (dBFS, before normalisation): about 20 dB under
/// ordinary close-microphone speech, where the noise floor starts to dominate after the
/// front end's gain to −30 dBFS.
pub const MIN_ENROLL_DBFS: f32 = -50.0;

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
                Kind::Window => handle_window(&ctx, msg).await,
                Kind::Embed => handle_embed(&ctx, msg).await,
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

/// A round trip through the server: publishes to a fresh inbox of this connection and waits
/// for the message to come back. When it returns, the server has processed everything this
/// connection sent before, and this connection has read everything the server routed to it
/// before that (the server keeps one ordered outbound stream per connection).
pub async fn round_trip(
    client: &Client,
    timeout: std::time::Duration,
) -> Result<(), async_nats::Error> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, bytes::Bytes::new()).await?;
    tokio::time::timeout(timeout, sub.next())
        .await?
        .ok_or("round-trip subscription closed")?;
    Ok(())
}

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

/// `s` cut to at most `max` bytes, on a character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

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

fn check_name(what: &str, s: &str) -> Result<(), Rejected> {
    if s.len() > MAX_NAME_BYTES {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!("{what} is longer than {MAX_NAME_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// Validates a window request and turns it into engine input.
pub(crate) fn window_input(
    req: &WindowRequest,
    session: &str,
    received: Instant,
) -> Result<WindowInput, Rejected> {
    if req.session != session {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!(
                "session {:?} does not match the subject's {session:?}",
                clip(&req.session, subjects::MAX_SESSION_LEN)
            ),
        ));
    }
    if req.sample_rate != SAMPLE_RATE {
        return Err(Rejected::new(
            ErrorKind::BadPcm,
            format!("sample_rate {} (expected {SAMPLE_RATE})", req.sample_rate),
        ));
    }
    if req.pcm.len() != WINDOW_SAMPLES * 2 {
        return Err(Rejected::new(
            ErrorKind::BadPcm,
            format!(
                "window has {} PCM bytes (expected {} = 1.6 s of 16 kHz i16)",
                req.pcm.len(),
                WINDOW_SAMPLES * 2
            ),
        ));
    }
    if !req.start.is_finite() || req.start < 0.0 {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            "start is not a time ≥ 0",
        ));
    }
    if req.speakers.len() > MAX_SPEAKERS {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!("{} speakers (at most {MAX_SPEAKERS})", req.speakers.len()),
        ));
    }
    let mut speakers = Vec::with_capacity(req.speakers.len());
    for s in &req.speakers {
        check_name("speaker id", &s.id)?;
        check_name("speaker name", s.name.as_deref().unwrap_or(""))?;
        let e: [f32; EMBEDDING_DIM] = s
            .embedding
            .as_slice()
            .try_into()
            .ok()
            .filter(|e: &[f32; EMBEDDING_DIM]| e.iter().all(|x| x.is_finite()))
            .ok_or_else(|| {
                Rejected::new(
                    ErrorKind::BadEmbedding,
                    format!(
                        "speaker {:?}: embedding must be {EMBEDDING_DIM} finite numbers",
                        s.id
                    ),
                )
            })?;
        speakers.push(e);
    }
    // Data-chosen defaults, with the overlap rule as strict as this many speakers need
    // (docs/decision.md); explicit overrides in the request win.
    let mut params = scoring::DecisionParams::default().for_enrolled(speakers.len());
    let p = req.params;
    for (value, field) in [
        (p.threshold, &mut params.threshold),
        (p.overlap_min, &mut params.overlap_min),
        (p.overlap_margin, &mut params.overlap_margin),
        (p.overlap_balance, &mut params.overlap_balance),
        (p.overlap_fit, &mut params.overlap_fit),
        (p.min_voiced, &mut params.min_voiced),
    ] {
        if let Some(v) = value {
            // +∞ is meaningful for overlap_min / overlap_fit (switches overlap off); NaN never is.
            if v.is_nan() {
                return Err(Rejected::new(
                    ErrorKind::BadRequest,
                    "decision parameter is NaN",
                ));
            }
            *field = v;
        }
    }
    let deadline = match req.expires_at_unix_ms {
        None => None,
        Some(at) => {
            let left = at.saturating_sub(schemas::embed::unix_ms_now());
            if left == 0 {
                return Err(expired());
            }
            // Measured now, when `left` was: `received` may be a while ago (a permit wait).
            Some(Instant::now() + std::time::Duration::from_millis(left))
        }
    };
    Ok(WindowInput {
        samples: pcm::to_f32(&req.pcm),
        speakers,
        params,
        received,
        deadline,
    })
}

fn expired() -> Rejected {
    Rejected::new(
        ErrorKind::Expired,
        "the sender stopped waiting before the worker got to this window (overloaded)",
    )
}

fn label_of(label: ModelLabel) -> Label {
    match label {
        ModelLabel::Speaker => Label::Speaker,
        ModelLabel::Unknown => Label::Unknown,
        ModelLabel::Overlap => Label::Overlap,
        ModelLabel::Silence => Label::Silence,
    }
}

pub(crate) fn window_result(req: &WindowRequest, out: &WindowOutput) -> WindowResult {
    let speaker = out.decision.speaker.and_then(|i| req.speakers.get(i));
    WindowResult {
        v: SCHEMA_VERSION,
        session: req.session.clone(),
        seq: req.seq,
        start: req.start,
        end: req.start + WINDOW_SAMPLES as f64 / f64::from(SAMPLE_RATE),
        label: label_of(out.decision.label),
        speaker_id: speaker.map(|s| s.id.clone()),
        speaker_name: speaker.and_then(|s| s.name.clone()),
        best_score: out.decision.best_score,
        scores: req
            .speakers
            .iter()
            .zip(&out.scores)
            .map(|(s, &score)| SpeakerScore {
                id: s.id.clone(),
                score,
            })
            .collect(),
        speech: SpeechProbability {
            mean: out.speech_mean,
            voiced_fraction: out.voiced_fraction,
        },
        loudness: schemas::Loudness {
            dbfs: out.loudness.dbfs,
            lufs: out.loudness.lufs,
        },
        timing: Timing {
            processing_ms: out.processing.as_secs_f32() * 1e3,
            queue_wait_ms: out.queue_wait.as_secs_f32() * 1e3,
            batch_size: u32::try_from(out.batch_size).unwrap_or(u32::MAX),
        },
        error: None,
    }
}

pub(crate) fn error_result(
    session: &str,
    req: Option<&WindowRequest>,
    rejected: Rejected,
) -> WindowResult {
    let (seq, start) = req.map_or((0, 0.0), |r| (r.seq, r.start));
    WindowResult {
        v: SCHEMA_VERSION,
        session: session.to_owned(),
        seq,
        start,
        end: start + WINDOW_SAMPLES as f64 / f64::from(SAMPLE_RATE),
        label: Label::Error,
        speaker_id: None,
        speaker_name: None,
        best_score: None,
        scores: Vec::new(),
        speech: SpeechProbability::default(),
        loudness: schemas::Loudness::default(),
        timing: Timing::default(),
        error: Some(WindowError {
            kind: rejected.kind,
            message: rejected.message,
        }),
    }
}

/// Counts a window in `diglett_worker_windows_in_flight` until dropped, whichever way the
/// handler ends (returns early, or its task panics or is cancelled).
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.windows_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.windows_in_flight.dec();
    }
}

async fn handle_window(ctx: &Ctx, msg: Message) {
    let received = Instant::now();
    let Some(session) = subjects::session_of_window_subject(msg.subject.as_str()) else {
        // A session token we cannot echo into a result subject: count and drop.
        tracing::warn!(subject = %clip(msg.subject.as_str(), MAX_MESSAGE_BYTES), "window on an invalid session subject");
        ctx.metrics.error(ErrorKind::BadRequest.as_str());
        return;
    };
    let req = codec::decode::<WindowRequest>(&msg.payload)
        .map_err(|e| Rejected::new(ErrorKind::from(&e), e.to_string()));
    let result = window(ctx, session, req, received).await;
    let subject = format!("{}.{session}", subjects::RESULTS_PREFIX);
    publish(ctx, subject, &result).await;
}

/// Validates, infers and labels one window; every failure becomes an error result.
pub(crate) async fn window(
    ctx: &Ctx,
    session: &str,
    req: Result<WindowRequest, Rejected>,
    received: Instant,
) -> WindowResult {
    let _in_flight = InFlight::new(&ctx.metrics);
    let result = match &req {
        Err(r) => Err(Rejected::new(r.kind, r.message.clone())),
        Ok(req) => match window_input(req, session, received) {
            Err(r) => Err(r),
            Ok(input) => match ctx.engine.window(input) {
                Err(e) => Err(Rejected::new(ErrorKind::Internal, e.to_string())),
                Ok(rx) => match rx.await {
                    Ok(Ok(out)) => Ok(window_result(req, &out)),
                    Ok(Err(Expired)) => Err(expired()),
                    Err(_) => Err(Rejected::new(
                        ErrorKind::Internal,
                        "inference was cancelled",
                    )),
                },
            },
        },
    };
    let result = result.unwrap_or_else(|r| {
        tracing::debug!(session, kind = r.kind.as_str(), message = %r.message, "bad window");
        ctx.metrics.error(r.kind.as_str());
        error_result(session, req.as_ref().ok(), r)
    });
    ctx.metrics
        .windows
        .get_or_create(&[("label", result.label.as_str())])
        .inc();
    result
}

async fn publish<T: serde::Serialize>(ctx: &Ctx, subject: String, msg: &T) {
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

/// The enrollment verdict; the first rule that applies wins.
pub fn verdict(out: &EnrollmentOutput) -> Verdict {
    if out.embedding.is_none() {
        Verdict::NoVoice
    } else if out.clipped_fraction > MAX_CLIPPED_FRACTION {
        Verdict::Clipped
    } else if out.loudness.dbfs < MIN_ENROLL_DBFS {
        Verdict::TooQuiet
    } else if out.speech_seconds < MIN_SPEECH_SECONDS {
        Verdict::TooShort
    } else {
        Verdict::Ok
    }
}

async fn handle_embed(ctx: &Ctx, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        tracing::warn!("embed message without a reply subject");
        ctx.metrics.error("no_reply_subject");
        return;
    };
    let (request_id, outcome) = embed_outcome(ctx, embed(ctx, &msg.payload).await);
    let reply = EmbedReply {
        v: SCHEMA_VERSION,
        request_id,
        outcome,
    };
    publish(ctx, reply_to.to_string(), &reply).await;
}

/// The reply outcome of an enrollment, counted in the metrics.
pub(crate) fn embed_outcome(
    ctx: &Ctx,
    result: Result<(String, Enrollment), (String, Rejected)>,
) -> (String, EmbedOutcome) {
    match result {
        Ok((id, enrollment)) => {
            ctx.metrics
                .enrollments
                .get_or_create(&[("verdict", enrollment.verdict.as_str())])
                .inc();
            (id, EmbedOutcome::Ok(enrollment))
        }
        Err((id, r)) => {
            tracing::debug!(kind = r.kind.as_str(), message = %r.message, "embed rejected");
            ctx.metrics.error(r.kind.as_str());
            ctx.metrics
                .enrollments
                .get_or_create(&[("verdict", "error")])
                .inc();
            (
                id,
                EmbedOutcome::Error(EmbedError {
                    kind: r.kind,
                    message: r.message,
                }),
            )
        }
    }
}

/// Requests parts `1..parts` in order from `subject` and appends them to `audio`, stopping
/// early once `audio` holds `total_bytes` or more (the caller checks the exact length).
async fn fetch_parts(
    ctx: &Ctx,
    subject: &str,
    id: &str,
    parts: u32,
    total_bytes: usize,
    audio: &mut Vec<u8>,
) -> Result<(), Rejected> {
    for index in 1..parts {
        if audio.len() >= total_bytes {
            break;
        }
        let ask = codec::encode(&PartRequest {
            v: SCHEMA_VERSION,
            request_id: id.to_owned(),
            index,
        })
        .map_err(|e| Rejected::new(ErrorKind::Internal, e.to_string()))?;
        let Some(client) = &ctx.client else {
            return Err(Rejected::new(
                ErrorKind::BadRequest,
                "chunked enrollment needs a NATS connection",
            ));
        };
        let reply = client
            .send_request(
                subject.to_owned(),
                Request::new()
                    .payload(ask.into())
                    .timeout(Some(ctx.config.part_timeout)),
            )
            .await
            .map_err(|e| Rejected::new(ErrorKind::PartTimeout, format!("part {index}: {e}")))?;
        let part: PcmPart = codec::decode(&reply.payload)
            .map_err(|e| Rejected::new(ErrorKind::from(&e), format!("part {index}: {e}")))?;
        if part.index != index || part.request_id != id {
            return Err(Rejected::new(
                ErrorKind::BadRequest,
                format!("part {index}: wrong part"),
            ));
        }
        // Whole samples in every part, and progress with every round trip.
        if part.pcm.is_empty() || !part.pcm.len().is_multiple_of(2) {
            return Err(Rejected::new(
                ErrorKind::BadPcm,
                format!(
                    "part {index} has {} PCM bytes (must be even, not 0)",
                    part.pcm.len()
                ),
            ));
        }
        audio.extend_from_slice(&part.pcm);
    }
    Ok(())
}

async fn embed(ctx: &Ctx, payload: &[u8]) -> Result<(String, Enrollment), (String, Rejected)> {
    let req: EmbedRequest = codec::decode(payload).map_err(|e| (String::new(), e.into()))?;
    embed_decoded(ctx, req).await
}

/// [`embed`] after decoding: validation, part fetching, inference.
pub(crate) async fn embed_decoded(
    ctx: &Ctx,
    req: EmbedRequest,
) -> Result<(String, Enrollment), (String, Rejected)> {
    // Echoed in the reply: never more than a valid id can be.
    let id = clip(&req.request_id, MAX_NAME_BYTES).to_owned();
    let fail = |kind, message: String| (id.clone(), Rejected::new(kind, message));
    // A request that waited in the subscription buffer until its client gave up costs no part
    // fetches and no inference.
    let expired = || {
        let expired = req
            .expires_at_unix_ms
            .is_some_and(|t| schemas::embed::unix_ms_now() > t.saturating_add(CLOCK_SKEW_MS));
        if expired {
            ctx.metrics.error(EXPIRED);
        }
        expired
    };
    if expired() {
        return Err(fail(
            ErrorKind::PartTimeout,
            "the request expired before the worker took it".into(),
        ));
    }
    check_name("request_id", &req.request_id).map_err(|r| (id.clone(), r))?;
    check_name("name", req.name.as_deref().unwrap_or("")).map_err(|r| (id.clone(), r))?;
    if req.sample_rate != SAMPLE_RATE {
        return Err(fail(
            ErrorKind::BadPcm,
            format!("sample_rate {} (expected {SAMPLE_RATE})", req.sample_rate),
        ));
    }
    let max_samples = ctx.config.max_enroll_seconds * u64::from(SAMPLE_RATE);
    if req.total_samples > max_samples {
        return Err(fail(
            ErrorKind::TooLong,
            format!(
                "{:.1} s of audio, at most {} s",
                req.total_samples as f64 / f64::from(SAMPLE_RATE),
                ctx.config.max_enroll_seconds
            ),
        ));
    }
    if req.total_samples == 0 {
        return Err(fail(ErrorKind::Empty, "no audio".into()));
    }
    let total_bytes = usize::try_from(req.total_samples * 2).unwrap_or(usize::MAX);
    // Every part but the last holds at least MIN_PART_BYTES, so more parts than this cannot
    // be needed; more would only make the worker do more round trips.
    let max_parts = u32::try_from(total_bytes.div_ceil(MIN_PART_BYTES))
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_PARTS);
    if req.parts == 0 || req.parts > max_parts {
        return Err(fail(
            ErrorKind::BadRequest,
            format!(
                "parts must be 1 to {max_parts} for {} samples (parts of at least \
                 {MIN_PART_BYTES} bytes, at most {MAX_PARTS} parts)",
                req.total_samples
            ),
        ));
    }
    let mut audio = req.pcm;
    let parts_subject = match (&req.parts_subject, req.parts) {
        (_, 1) => None,
        // Only a client inbox: the worker publishes part requests there, and must not be
        // made to publish on anyone else's subject (a result subject, a JetStream API).
        (Some(s), _) if subjects::is_valid_parts_subject(s) => Some(s.clone()),
        _ => {
            return Err(fail(
                ErrorKind::BadRequest,
                format!(
                    "a chunked request needs a parts_subject under {} (at most {} bytes, no \
                     wildcards)",
                    subjects::INBOX_PREFIX,
                    subjects::MAX_PARTS_SUBJECT_LEN
                ),
            ));
        }
    };
    if let Some(subject) = parts_subject {
        if audio.is_empty() || !audio.len().is_multiple_of(2) {
            return Err(fail(
                ErrorKind::BadPcm,
                format!("part 0 has {} PCM bytes (must be even, not 0)", audio.len()),
            ));
        }
        audio.reserve(total_bytes.saturating_sub(audio.len()));
        // One deadline for the whole upload, so that a client answering slowly (or with tiny
        // parts) holds an enrollment permit for at most this long.
        let fetch = fetch_parts(ctx, &subject, &id, req.parts, total_bytes, &mut audio);
        match tokio::time::timeout(ctx.config.embed_deadline, fetch).await {
            Ok(result) => result.map_err(|r| (id.clone(), r))?,
            Err(_) => {
                return Err(fail(
                    ErrorKind::PartTimeout,
                    format!(
                        "the parts did not all arrive within {} ms",
                        ctx.config.embed_deadline.as_millis()
                    ),
                ));
            }
        }
    }
    if audio.len() != total_bytes {
        return Err(fail(
            ErrorKind::BadPcm,
            format!(
                "received {} PCM bytes, total_samples says {total_bytes}",
                audio.len()
            ),
        ));
    }
    if expired() {
        return Err(fail(
            ErrorKind::PartTimeout,
            "the request expired while its parts were fetched".into(),
        ));
    }
    let samples = pcm::to_f32(&audio);
    drop(audio);
    let out = ctx
        .engine
        .enroll(samples)
        .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?
        .await
        .map_err(|_| fail(ErrorKind::Internal, "inference was cancelled".into()))?;
    if out
        .embedding
        .is_some_and(|e| e.iter().any(|x| !x.is_finite()))
    {
        return Err(fail(ErrorKind::Internal, "non-finite embedding".into()));
    }
    let verdict = verdict(&out);
    Ok((
        id.clone(),
        Enrollment {
            name: req.name,
            embedding: out.embedding.map(|e| e.to_vec()),
            speech_seconds: out.speech_seconds,
            duration_seconds: out.duration_seconds,
            loudness: schemas::Loudness {
                dbfs: out.loudness.dbfs,
                lufs: out.loudness.lufs,
            },
            clipped_fraction: out.clipped_fraction,
            verdict,
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_released_on_panic() {
        let metrics = Metrics::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = InFlight::new(&metrics);
            assert_eq!(metrics.windows_in_flight.get(), 1);
            panic!("handler failed");
        }));
        assert!(r.is_err());
        assert_eq!(metrics.windows_in_flight.get(), 0);
    }

    #[test]
    fn clip_keeps_char_boundaries() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("aé", 2), "a");
        let r = Rejected::new(ErrorKind::BadRequest, "x".repeat(10_000));
        assert_eq!(r.message.len(), MAX_MESSAGE_BYTES + '…'.len_utf8());
    }
}
