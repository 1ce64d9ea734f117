//! The WebSocket streaming session (protocol v1; see `diglett_api::protocol` and the README).
//!
//! One task per session runs a `select!` loop over the client's frames, the session's result
//! subscription, the result deadlines and the shutdown signal. Audio is converted to 16 kHz
//! mono as it arrives ([`pcm`]) and kept in a ring only as long as a window may still need it;
//! a 1.6 s window is cut every hop and published ([`windower`]). Memory per session is bounded:
//! at most `DIGLETT_SESSION_MAX_IN_FLIGHT` windows wait for results ([`inflight`]), and while
//! that many wait the session stops reading the socket (TCP pushes back on the client); if no
//! slot frees within one hop, the oldest ready window is skipped and reported
//! (`warning`/`overloaded`), so a real-time client never lags without bound. A window without a
//! result after `DIGLETT_WINDOW_TIMEOUT_MS` is re-published once, then reported dropped
//! (`timeout`). Results go to the client in window order with smoothed turns ([`render`]).
//!
//! The loop ([`Session::serve`]) is generic over the transport (any `Sink<Message>` +
//! `Stream<Item = Result<Message, _>>`) and the bus ([`SessionBus`]), so the unit tests below
//! drive a whole session with channels and a paused clock, without a socket or a worker.
//!
//! - [`start`]: the `start` message validated and its speakers resolved.
//! - [`pcm`]: PCM frames → 16 kHz mono.
//! - [`windower`]: the ring and the window clock.
//! - [`inflight`]: deadlines, the retry, ordered release.
//! - [`render`]: result, turn and summary messages.
//! - [`transport`]: sending with a timeout, errors and close frames.

#[cfg(feature = "fuzz")]
#[doc(hidden)]
pub mod fuzz;
mod inflight;
mod pcm;
mod render;
mod start;
mod transport;
mod windower;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{Message, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use diglett_api::protocol::{self, ClientMessage, ServerMessage, close};
use diglett_decision::timeline::{Decider, TimelineParams, WindowEvidence};
use diglett_decision::turns::{Observation, TurnParams, TurnSmoother};
use diglett_schemas::{
    DecisionParams, EnrolledSpeaker, EventKind, Label, SAMPLE_RATE, SCHEMA_VERSION, SessionEvent,
    WindowRequest, WindowResult, embed::unix_ms_now,
};
use futures_util::{Sink, Stream, StreamExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use self::inflight::{InFlight, Outcome, expired};
use self::render::Speakers;
use self::start::Plan;
pub(crate) use self::transport::Fatal;
use self::transport::{Close, close_with, fail, gone, message, send};
use self::windower::Windower;
use crate::app::{AppState, RequestId};
use crate::auth::Tenant;
use crate::bus::{Bus, BusError};
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Largest WebSocket message the transport accepts; frames between
/// [`protocol::MAX_AUDIO_FRAME_BYTES`] and this get a proper `frame_too_large` error and 1009.
const MAX_WS_MESSAGE: usize = 4 * protocol::MAX_AUDIO_FRAME_BYTES;
/// Largest text message (the `start` message with 16 inline signatures is ~80 KB).
const MAX_TEXT_BYTES: usize = 256 * 1024;

/// `GET /v1/stream` (and `/ws/stream`): upgrades to a streaming session.
pub async fn stream(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    request: Option<Extension<RequestId>>,
    ws: WebSocketUpgrade,
) -> Response {
    let request = request.map(|Extension(r)| r).unwrap_or_default();
    if state.shutdown.is_cancelled() {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting_down",
            "the server is shutting down",
        )
        .into_response();
    }
    if state.metrics.sessions_active.get() >= state.config.max_sessions as i64 {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "too_many_sessions",
            "the gateway is at its session limit (DIGLETT_MAX_SESSIONS)",
        )
        .into_response();
    }
    let tracker = state.sessions.clone();
    ws.max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| tracker.track_future(run(socket, state, tenant, request)))
}

/// What a session publishes: windows to the workers, events to other services.
pub(crate) trait SessionBus: Send + Sync {
    /// Publishes a window (a failure is covered by the window's deadline).
    fn publish_window(
        &self,
        req: WindowRequest,
    ) -> impl Future<Output = Result<(), BusError>> + Send;
    /// Publishes a session event (best effort).
    fn publish_event(&self, event: SessionEvent) -> impl Future<Output = ()> + Send;
}

impl SessionBus for Bus {
    fn publish_window(
        &self,
        req: WindowRequest,
    ) -> impl Future<Output = Result<(), BusError>> + Send {
        Bus::publish_window(self, req)
    }
    fn publish_event(&self, event: SessionEvent) -> impl Future<Output = ()> + Send {
        Bus::publish_event(self, event)
    }
}

/// The settings a session runs with.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Windows waiting for results at once.
    pub max_in_flight: usize,
    /// Wait for a window's result before the retry, and again before giving up.
    pub window_timeout: Duration,
    /// A session without audio (or `start`) this long is closed.
    pub idle_timeout: Duration,
}

async fn run<S, E>(socket: S, state: AppState, tenant: String, request: RequestId)
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin + Send,
{
    let id = uuid::Uuid::new_v4().to_string();
    // Every line the session logs names it (and the upgrade request that opened it).
    let span = tracing::info_span!("session", session = %id, request = %request.0);
    run_session(socket, state, tenant, id)
        .instrument(span)
        .await;
}

async fn run_session<S, E>(mut socket: S, state: AppState, tenant: String, id: String)
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin + Send,
{
    state.metrics.sessions_active.inc();
    tracing::debug!(%tenant, "session connected");
    match handshake(&mut socket, &state, &tenant).await {
        Ok(Some(plan)) => match state.bus.subscribe_results(&id).await {
            Ok(results) => {
                state.metrics.sessions.inc();
                let results = Box::pin(futures_util::stream::unfold(results, |mut r| async move {
                    r.next().await.map(|x| (x, r))
                }));
                let limits = Limits {
                    max_in_flight: state.config.session_max_in_flight,
                    window_timeout: state.config.window_timeout,
                    idle_timeout: state.config.idle_timeout,
                };
                let session = Session::new(
                    id,
                    plan,
                    limits,
                    Arc::clone(&state.metrics),
                    state.shutdown.clone(),
                );
                session.serve(&mut socket, results, &state.bus).await;
            }
            Err(e) => {
                fail(
                    &mut socket,
                    Fatal::new(close::INTERNAL, "unavailable", e.to_string()),
                )
                .await;
            }
        },
        Ok(None) => {}
        Err(f) => fail(&mut socket, f).await,
    }
    state.metrics.sessions_active.dec();
}

/// Waits for `start`, validates it and resolves the speakers; `None` when the client left or
/// the session ended before it started.
async fn handshake<S, E>(
    socket: &mut S,
    state: &AppState,
    tenant: &str,
) -> Result<Option<Plan>, Fatal>
where
    S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
{
    let msg = tokio::select! {
        m = socket.next() => m,
        () = tokio::time::sleep(state.config.idle_timeout) => {
            close_with(socket, close::NORMAL, "idle: no start message").await;
            return Ok(None);
        }
        () = state.shutdown.cancelled() => {
            close_with(socket, close::GOING_AWAY, "server shutting down").await;
            return Ok(None);
        }
    };
    let start = match msg {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(None),
        Some(Ok(m)) => parse_start(m)?,
    };
    start::prepare(&state.store, tenant, start).await.map(Some)
}

/// The first message must be a `start` text message.
fn parse_start(msg: Message) -> Result<protocol::Start, Fatal> {
    let text = match msg {
        Message::Binary(_) => {
            return Err(Fatal::new(
                close::UNSUPPORTED_DATA,
                "binary_before_start",
                "send the start message before any audio",
            ));
        }
        Message::Text(t) => t,
        _ => {
            return Err(start::bad_start(
                "the first message must be a start message",
            ));
        }
    };
    if text.len() > MAX_TEXT_BYTES {
        return Err(Fatal::new(
            close::TOO_BIG,
            "frame_too_large",
            "start message too large",
        ));
    }
    match serde_json::from_str::<ClientMessage>(text.as_str()) {
        Ok(ClientMessage::Start(s)) => Ok(s),
        Ok(ClientMessage::Stop) => Err(start::bad_start("stop before start")),
        Err(e) => Err(start::bad_start(format!("invalid start message: {e}"))),
    }
}

/// Everything a running session holds.
pub(crate) struct Session {
    id: String,
    limits: Limits,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
    speakers: Speakers,
    enrolled: Vec<EnrolledSpeaker>,
    /// The speaker model every window runs (and every enrolled embedding is).
    model: diglett_schemas::SpeakerModel,
    params: DecisionParams,
    hop_ms: u32,
    decoder: pcm::PcmDecoder,
    windows: Windower,
    in_flight: InFlight,
    /// When the oldest ready-but-uncut window started waiting for a slot.
    blocked_since: Option<Instant>,
    /// When the latest audio (or `start`) arrived.
    last_audio: Instant,
    results_sent: u64,
    dropped: u64,
    smoother: TurnSmoother,
    /// The frame timeline (`result.timeline`).
    decider: Decider,
    scratch: Vec<f32>,
}

impl Session {
    pub(crate) fn new(
        id: String,
        plan: Plan,
        limits: Limits,
        metrics: Arc<Metrics>,
        shutdown: CancellationToken,
    ) -> Self {
        let hop = plan.hop_samples();
        let speakers = Speakers::new(&plan.enrolled);
        let smoother = TurnSmoother::new(
            TurnParams::default(),
            f64::from(plan.hop_ms) / 1000.0,
            plan.enrolled.len(),
        );
        // The threshold the workers label with (defaults, then the client's override).
        let threshold = diglett_decision::params::resolve(&plan.params, plan.enrolled.len())
            .map_or(diglett_decision::scoring::DEFAULT_THRESHOLD, |p| {
                p.threshold
            });
        // A CAM++ window's frame speech is segmentation-3.0's, read with its own rule.
        let timeline = match plan.model {
            diglett_schemas::SpeakerModel::Ge2e => TimelineParams::default(),
            diglett_schemas::SpeakerModel::Campp => TimelineParams::campp(),
        };
        let decider = Decider::new(
            timeline,
            threshold,
            plan.overlap,
            plan.enrolled.len(),
            plan.latency_ms,
        );
        Self {
            id,
            limits,
            metrics,
            shutdown,
            speakers,
            enrolled: plan.enrolled,
            model: plan.model,
            params: plan.params,
            hop_ms: plan.hop_ms,
            decoder: plan.decoder,
            windows: Windower::new(hop),
            in_flight: InFlight::new(limits.max_in_flight, limits.window_timeout),
            blocked_since: None,
            last_audio: Instant::now(),
            results_sent: 0,
            dropped: 0,
            smoother,
            decider,
            scratch: Vec::new(),
        }
    }

    fn event(&self, event: EventKind) -> SessionEvent {
        SessionEvent {
            v: SCHEMA_VERSION,
            session: self.id.clone(),
            at_unix_ms: unix_ms_now(),
            event,
        }
    }

    /// Runs the session to its end: `ready`, the loop, the events, the close.
    pub(crate) async fn serve<S, E, R, B>(mut self, socket: &mut S, mut results: R, bus: &B)
    where
        S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
        R: Stream<Item = WindowResult> + Unpin,
        B: SessionBus,
    {
        let ready = ServerMessage::Ready {
            session: self.id.clone(),
            window_ms: protocol::WINDOW_MS,
            hop_ms: self.hop_ms,
            speakers: self.speakers.info(),
            model: self.model,
        };
        if send(socket, &ready).await {
            let started = self.event(EventKind::Started {
                speakers: self.enrolled.iter().map(|s| s.id.clone()).collect(),
            });
            bus.publish_event(started).await;
            tracing::info!(session = %self.id, speakers = self.enrolled.len(), hop_ms = self.hop_ms, model = self.model.as_str(), "session started");

            let end = self.event_loop(socket, &mut results, bus).await;
            let reason = match &end {
                Ok(c) => c.reason,
                Err(f) => f.error,
            };
            let ended = self.event(EventKind::Ended {
                reason: reason.to_owned(),
                windows: self.results_sent,
            });
            bus.publish_event(ended).await;
            tracing::info!(session = %self.id, reason, results = self.results_sent, dropped = self.dropped, "session ended");
            match end {
                Ok(c) if c.code != 0 => close_with(socket, c.code, c.reason).await,
                Ok(_) => {}
                Err(f) => fail(socket, f).await,
            }
        }
        self.metrics
            .buffered_samples
            .dec_by(self.windows.buffered() as i64);
    }

    /// Runs until the session ends; `Ok` carries the close to send (code 0: the client is
    /// already gone).
    async fn event_loop<S, E, R, B>(
        &mut self,
        socket: &mut S,
        results: &mut R,
        bus: &B,
    ) -> Result<Close, Fatal>
    where
        S: Sink<Message> + Stream<Item = Result<Message, E>> + Unpin,
        R: Stream<Item = WindowResult> + Unpin,
        B: SessionBus,
    {
        let grace = Duration::from_millis(u64::from(self.hop_ms));
        let mut stopping: Option<Close> = None;
        loop {
            // Cut every window the audio allows, while slots are free.
            let skipped = self.cut_windows(grace, bus).await;
            if skipped > 0 {
                self.dropped += skipped;
                self.metrics.dropped("overloaded", skipped);
                let w = ServerMessage::Warning {
                    code: "overloaded".into(),
                    dropped: skipped,
                    total_dropped: self.dropped,
                    message: "the workers are not keeping up; windows were skipped".into(),
                };
                if !send(socket, &w).await {
                    return Ok(gone());
                }
            }
            if !self.flush(socket, bus).await {
                return Ok(gone());
            }
            let backlog = self.windows.ready();
            if let Some(c) = &stopping
                && self.in_flight.is_empty()
                && !backlog
            {
                // The stream is over: a change the smoother was still confirming is the last
                // evidence, so it becomes the final turn.
                if let Some(turn) = self.smoother.finish() {
                    let msg = self.speakers.turn(&turn);
                    if !self.send_turn(socket, msg, bus).await {
                        return Ok(gone());
                    }
                }
                let talk = self
                    .smoother
                    .talk_seconds(self.windows.total() as f64 / f64::from(SAMPLE_RATE));
                let tail = self.decider.finish();
                let summary = self.speakers.summary(
                    self.windows.total(),
                    talk,
                    self.results_sent,
                    self.dropped,
                    self.speakers.segments(&tail),
                );
                if !send(socket, &summary).await {
                    return Ok(gone());
                }
                return Ok(Close {
                    code: c.code,
                    reason: c.reason,
                });
            }
            let next_deadline = self.in_flight.next_deadline();
            let unblock_at = self.blocked_since.map(|t| t + grace);
            let idle_at = self.last_audio + self.limits.idle_timeout;
            let reading = stopping.is_none() && !backlog;
            tokio::select! {
                msg = socket.next(), if reading => {
                    match msg {
                        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(gone()),
                        Some(Ok(Message::Binary(b))) => {
                            if b.len() > protocol::MAX_AUDIO_FRAME_BYTES {
                                return Err(Fatal::new(
                                    close::TOO_BIG,
                                    "frame_too_large",
                                    format!("audio frames are limited to {} bytes", protocol::MAX_AUDIO_FRAME_BYTES),
                                ));
                            }
                            self.last_audio = Instant::now();
                            self.push_audio(&b)?;
                        }
                        Some(Ok(Message::Text(t))) => {
                            let reply = match serde_json::from_str::<ClientMessage>(t.as_str()) {
                                Ok(ClientMessage::Stop) => {
                                    stopping = Some(Close { code: close::NORMAL, reason: "stopped" });
                                    None
                                }
                                Ok(ClientMessage::Start(_)) => {
                                    Some(message("already_started", "the session has already started"))
                                }
                                Err(e) => Some(message("bad_message", format!("invalid message: {e}"))),
                            };
                            if let Some(reply) = reply && !send(socket, &reply).await {
                                return Ok(gone());
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                r = results.next() => {
                    let Some(r) = r else {
                        return Err(Fatal::new(close::INTERNAL, "unavailable", "the message bus closed"));
                    };
                    self.in_flight.on_result(r);
                }
                () = sleep_until(next_deadline), if next_deadline.is_some() => {
                    if !self.on_timeouts(socket, bus).await {
                        return Ok(gone());
                    }
                }
                () = sleep_until(unblock_at), if unblock_at.is_some() => {}
                () = tokio::time::sleep_until(idle_at), if stopping.is_none() => {
                    stopping = Some(Close { code: close::NORMAL, reason: "idle: no audio for the idle timeout" });
                }
                () = self.shutdown.cancelled(), if stopping.as_ref().is_none_or(|c| c.code != close::GOING_AWAY) => {
                    stopping = Some(Close { code: close::GOING_AWAY, reason: "server shutting down" });
                }
            }
        }
    }

    /// Converts a binary frame and appends it to the ring.
    fn push_audio(&mut self, bytes: &[u8]) -> Result<(), Fatal> {
        let mut out = std::mem::take(&mut self.scratch);
        out.clear();
        self.decoder
            .push(bytes, &mut out)
            .map_err(|e| Fatal::new(close::INTERNAL, "internal", e))?;
        self.windows.push(&out, self.last_audio);
        self.metrics.buffered_samples.inc_by(out.len() as i64);
        self.scratch = out;
        Ok(())
    }

    /// Publishes ready windows while slots are free; skips one window per `grace` spent
    /// blocked. Returns how many were skipped.
    async fn cut_windows<B: SessionBus>(&mut self, grace: Duration, bus: &B) -> u64 {
        let mut skipped = 0;
        while self.windows.ready() {
            let now = Instant::now();
            if self.in_flight.has_slot() {
                self.blocked_since = None;
                let cut = self.windows.cut(now);
                self.publish(cut.seq, cut.first, bus).await;
                self.in_flight
                    .insert(cut.seq, cut.first, cut.arrival, Instant::now());
            } else {
                let since = *self.blocked_since.get_or_insert(now);
                if now < since + grace {
                    break;
                }
                self.blocked_since = Some(now);
                self.windows.skip();
                skipped += 1;
            }
        }
        self.trim_ring();
        skipped
    }

    /// Drops ring samples no waiting or future window needs.
    fn trim_ring(&mut self) {
        let n = self.windows.trim(self.in_flight.oldest_waiting_first());
        self.metrics.buffered_samples.dec_by(n as i64);
    }

    async fn publish<B: SessionBus>(&mut self, seq: u64, first: u64, bus: &B) {
        let Some(pcm) = self.windows.pcm(first) else {
            // The ring always holds what a waiting window needs (trim_ring): a bug if not.
            tracing::error!(session = %self.id, seq, "window audio no longer buffered");
            return;
        };
        let req = WindowRequest {
            model: self.model,
            v: SCHEMA_VERSION,
            session: self.id.clone(),
            seq,
            start: first as f64 / f64::from(SAMPLE_RATE),
            sample_rate: SAMPLE_RATE,
            pcm,
            speakers: self.enrolled.clone(),
            params: self.params,
            // The worker skips it once this session has stopped waiting (the timeout below).
            expires_at_unix_ms: Some(unix_ms_now() + self.limits.window_timeout.as_millis() as u64),
        };
        self.metrics.windows_published.inc();
        if let Err(e) = bus.publish_window(req).await {
            // The deadline accounts for it.
            tracing::warn!(session = %self.id, seq, error = %e, "cannot publish a window");
        }
    }

    /// Re-publishes windows past their deadline once, then gives up on them.
    async fn on_timeouts<S, B>(&mut self, socket: &mut S, bus: &B) -> bool
    where
        S: Sink<Message> + Unpin,
        B: SessionBus,
    {
        let due = self.in_flight.on_deadlines(Instant::now());
        for (seq, first) in due.retry {
            self.publish(seq, first, bus).await;
            self.metrics.windows_republished.inc();
        }
        if due.given_up > 0 {
            self.dropped += due.given_up;
            self.metrics.dropped("timeout", due.given_up);
            let w = ServerMessage::Warning {
                code: "timeout".into(),
                dropped: due.given_up,
                total_dropped: self.dropped,
                message: "windows got no result in time, even after a retry".into(),
            };
            return send(socket, &w).await;
        }
        true
    }

    /// Sends every finished window at the head of the queue, in order, with turns.
    async fn flush<S, B>(&mut self, socket: &mut S, bus: &B) -> bool
    where
        S: Sink<Message> + Unpin,
        B: SessionBus,
    {
        while let Some(done) = self.in_flight.pop_finished() {
            let Outcome::Result(r) = done.outcome else {
                continue; // dropped: already reported
            };
            if r.label == Label::Error && expired(&r) {
                // Not computed: it waited in a worker's queue past the timeout (overload).
                self.dropped += 1;
                self.metrics.dropped("expired", 1);
                let w = ServerMessage::Warning {
                    code: "overloaded".into(),
                    dropped: 1,
                    total_dropped: self.dropped,
                    message: "the workers are not keeping up; a window expired in their queue"
                        .into(),
                };
                if !send(socket, &w).await {
                    return false;
                }
                continue;
            }
            if r.label == Label::Error {
                self.dropped += 1;
                self.metrics.dropped("error", 1);
                let (code, message) = r.error.as_ref().map_or_else(
                    || ("internal".to_owned(), "the worker failed".to_owned()),
                    |e| (e.kind.as_str().to_owned(), e.message.clone()),
                );
                let e = ServerMessage::Error {
                    code,
                    message,
                    seq: Some(done.seq),
                };
                if !send(socket, &e).await {
                    return false;
                }
                continue;
            }
            let mut msg = self.speakers.result(&r, done.arrival);
            let scores = self.speakers.scores(&r);
            let segments = self.decider.push(&WindowEvidence {
                start: r.start,
                length: r.end - r.start,
                scores: if r.scores.is_empty() { &[] } else { &scores },
                chunk_speech: &r.chunk_speech,
                label: r.label,
            });
            msg.timeline = self.speakers.segments(&segments);
            self.results_sent += 1;
            self.metrics.results.inc();
            self.metrics
                .result_latency_seconds
                .observe(done.arrival.elapsed().as_secs_f64());
            if !send(socket, &ServerMessage::Result(msg)).await {
                return false;
            }
            let turn = self.smoother.push(&Observation {
                start: r.start,
                end: r.end,
                label: r.label,
                speaker: self.speakers.index(r.speaker_id.as_deref()),
                scores: &scores,
            });
            if let Some(turn) = turn {
                let msg = self.speakers.turn(&turn);
                if !self.send_turn(socket, msg, bus).await {
                    return false;
                }
            }
        }
        self.trim_ring();
        true
    }

    /// Sends a `turn` and publishes it as a `speaker_turn` event.
    async fn send_turn<S, B>(&mut self, socket: &mut S, turn: protocol::TurnMsg, bus: &B) -> bool
    where
        S: Sink<Message> + Unpin,
        B: SessionBus,
    {
        self.metrics.turns.inc();
        let event = self.event(EventKind::SpeakerTurn {
            speaker_id: turn.speaker_id.clone(),
            speaker_name: turn.speaker.clone(),
            label: turn.label.clone(),
            start: turn.start,
        });
        if !send(socket, &ServerMessage::Turn(turn)).await {
            return false;
        }
        bus.publish_event(event).await;
        true
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests;
