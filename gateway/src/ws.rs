//! The WebSocket streaming session (protocol v1; see [`crate::protocol`] and the README).
//!
//! One task per session runs a `select!` loop over the client's frames, the session's result
//! subscription, the result deadlines and the shutdown signal. Audio is converted to 16 kHz
//! mono as it arrives and kept in a ring only as long as a window may still need it; a
//! 1.6 s window is cut every hop and published. Memory per session is bounded: at most
//! `DIGLETT_SESSION_MAX_IN_FLIGHT` windows wait for results, and while that many wait the
//! session stops reading the socket (TCP pushes back on the client); if no slot frees within
//! one hop, the oldest ready window is skipped and reported (`warning`/`overloaded`), so a
//! real-time client never lags without bound. A window without a result after
//! `DIGLETT_WINDOW_TIMEOUT_MS` is re-published once, then reported dropped (`timeout`).

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use diglett_model::frontend::StreamResampler;
use diglett_model::scoring::Label as ModelLabel;
use diglett_model::turns::{Observation, TurnParams, TurnSmoother};
use diglett_schemas::{
    DecisionParams, EMBEDDING_DIM, EnrolledSpeaker, EventKind, Label, SAMPLE_RATE, SCHEMA_VERSION,
    SessionEvent, WINDOW_SAMPLES, WindowRequest, WindowResult,
};

use diglett_worker::service::clip;

use crate::app::AppState;
use crate::auth::Tenant;
use crate::bus::ResultStream;
use crate::error::ApiError;
use crate::protocol::{
    self, ClientMessage, Encoding, ServerMessage, SpeakerInfo, SpeakerRef, Start, TurnMsg,
    WindowResultMsg, close,
};

/// Largest WebSocket message the transport accepts; frames between
/// [`protocol::MAX_AUDIO_FRAME_BYTES`] and this get a proper `frame_too_large` error and 1009.
const MAX_WS_MESSAGE: usize = 4 * protocol::MAX_AUDIO_FRAME_BYTES;
/// Largest text message (the `start` message with 16 inline signatures is ~80 KB).
const MAX_TEXT_BYTES: usize = 256 * 1024;
/// A client that does not read its results for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// `GET /v1/stream` (and `/ws/stream`): upgrades to a streaming session.
pub async fn stream(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    ws: WebSocketUpgrade,
) -> Response {
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
        .on_upgrade(move |socket| tracker.track_future(run(socket, state, tenant)))
}

/// Why a session ends, and how it closes.
struct Close {
    code: u16,
    reason: &'static str,
}

/// A fatal protocol error: sent as an `error` message, then a close frame.
struct Fatal {
    code: u16,
    error: &'static str,
    message: String,
}

impl Fatal {
    fn new(code: u16, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            error,
            message: message.into(),
        }
    }
}

/// Sends a server message; `false` if the client is gone or too slow.
async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    let Ok(text) = serde_json::to_string(msg) else {
        return false;
    };
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &str) {
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

async fn fail(socket: &mut WebSocket, f: Fatal) {
    send(
        socket,
        &ServerMessage::Error {
            code: f.error.into(),
            message: f.message.clone(),
            seq: None,
        },
    )
    .await;
    let mut reason = f.message;
    // Close reasons are limited to 123 bytes.
    if reason.len() > 120 {
        let mut end = 120;
        while !reason.is_char_boundary(end) {
            end -= 1;
        }
        reason.truncate(end);
    }
    close_with(socket, f.code, &reason).await;
}

/// Converts the client's PCM frames to 16 kHz mono `f32`.
struct PcmDecoder {
    encoding: Encoding,
    channels: usize,
    carry: Vec<u8>,
    mono: Vec<f32>,
    resampler: StreamResampler,
}

impl PcmDecoder {
    fn new(format: protocol::AudioFormat) -> Result<Self, Fatal> {
        if format.encoding == Encoding::Unsupported {
            return Err(Fatal::new(
                close::UNSUPPORTED_DATA,
                "unsupported_format",
                "encoding must be pcm_s16le or pcm_f32le",
            ));
        }
        if !protocol::SAMPLE_RATE_RANGE.contains(&format.sample_rate) {
            return Err(Fatal::new(
                close::UNSUPPORTED_DATA,
                "unsupported_format",
                format!(
                    "sample_rate {} is outside 8000-48000 Hz",
                    format.sample_rate
                ),
            ));
        }
        if !(1..=2).contains(&format.channels) {
            return Err(Fatal::new(
                close::UNSUPPORTED_DATA,
                "unsupported_format",
                format!("{} channels (1 or 2 are accepted)", format.channels),
            ));
        }
        let resampler = StreamResampler::new(format.sample_rate).map_err(|e| {
            Fatal::new(close::UNSUPPORTED_DATA, "unsupported_format", e.to_string())
        })?;
        Ok(Self {
            encoding: format.encoding,
            channels: usize::from(format.channels),
            carry: Vec::new(),
            mono: Vec::new(),
            resampler,
        })
    }

    /// Appends the 16 kHz samples computable after `bytes` to `out`.
    fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        let frame = self.encoding.bytes() * self.channels;
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / frame * frame;
        self.mono.clear();
        for f in self.carry[..whole].chunks_exact(frame) {
            let mut sum = 0f32;
            for s in f.chunks_exact(self.encoding.bytes()) {
                sum += match self.encoding {
                    Encoding::PcmS16le => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
                    Encoding::PcmF32le | Encoding::Unsupported => {
                        let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                        if x.is_finite() {
                            x.clamp(-1.0, 1.0)
                        } else {
                            0.0
                        }
                    }
                };
            }
            self.mono.push(sum / self.channels as f32);
        }
        self.carry.drain(..whole);
        self.resampler
            .push(&self.mono, out)
            .map_err(|e| e.to_string())
    }
}

/// A speaker of the session.
struct Speaker {
    id: String,
    /// Unique within the session.
    name: String,
}

/// A published window waiting for its result.
struct Pending {
    /// First sample (16 kHz, from the stream start).
    first: u64,
    /// When its last sample arrived.
    arrival: Instant,
    deadline: Instant,
    retried: bool,
    outcome: Option<Outcome>,
}

enum Outcome {
    Result(Box<WindowResult>),
    Dropped,
}

/// Everything a running session holds.
struct Session {
    id: String,
    state: AppState,
    speakers: Vec<Speaker>,
    enrolled: Vec<EnrolledSpeaker>,
    params: DecisionParams,
    hop: u64,
    hop_ms: u32,
    decoder: PcmDecoder,
    /// 16 kHz samples from `ring_start` on.
    ring: VecDeque<i16>,
    ring_start: u64,
    /// 16 kHz samples received so far.
    total: u64,
    /// End (exclusive) of the next window to cut.
    next_end: u64,
    next_seq: u64,
    pending: BTreeMap<u64, Pending>,
    /// When the oldest ready-but-uncut window started waiting for a slot.
    blocked_since: Option<Instant>,
    /// When the latest audio (or `start`) arrived.
    last_audio: Instant,
    /// `(samples received after the frame, its arrival)` for frames whose audio may end a
    /// window not yet cut, so a window's latency counts from its last sample's arrival even
    /// when the in-flight cap held it back.
    arrivals: VecDeque<(u64, Instant)>,
    results_sent: u64,
    dropped: u64,
    smoother: TurnSmoother,
    scratch: Vec<f32>,
}

async fn run(mut socket: WebSocket, state: AppState, tenant: String) {
    state.metrics.sessions_active.inc();
    let session = uuid::Uuid::new_v4().to_string();
    tracing::debug!(%session, %tenant, "session connected");
    let outcome = handshake(&mut socket, &state, &tenant, session.clone()).await;
    match outcome {
        Ok(Some((s, results))) => {
            state.metrics.sessions.inc();
            s.run(socket, results).await;
        }
        Ok(None) => {}
        Err(f) => fail(&mut socket, f).await,
    }
    state.metrics.sessions_active.dec();
}

/// Waits for `start`, validates it, resolves the speakers and subscribes to the results.
async fn handshake(
    socket: &mut WebSocket,
    state: &AppState,
    tenant: &str,
    id: String,
) -> Result<Option<(Session, ResultStream)>, Fatal> {
    let idle = state.config.idle_timeout;
    let msg = tokio::select! {
        m = socket.recv() => m,
        () = tokio::time::sleep(idle) => {
            close_with(socket, close::NORMAL, "idle: no start message").await;
            return Ok(None);
        }
        () = state.shutdown.cancelled() => {
            close_with(socket, close::GOING_AWAY, "server shutting down").await;
            return Ok(None);
        }
    };
    let text = match msg {
        None | Some(Err(_)) | Some(Ok(Message::Close(_))) => return Ok(None),
        Some(Ok(Message::Binary(_))) => {
            return Err(Fatal::new(
                close::UNSUPPORTED_DATA,
                "binary_before_start",
                "send the start message before any audio",
            ));
        }
        Some(Ok(Message::Text(t))) => t,
        Some(Ok(_)) => {
            return Err(Fatal::new(
                close::INVALID_PAYLOAD,
                "bad_start",
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
    let start = match serde_json::from_str::<ClientMessage>(text.as_str()) {
        Ok(ClientMessage::Start(s)) => s,
        Ok(ClientMessage::Stop) => {
            return Err(Fatal::new(
                close::INVALID_PAYLOAD,
                "bad_start",
                "stop before start",
            ));
        }
        Err(e) => {
            return Err(Fatal::new(
                close::INVALID_PAYLOAD,
                "bad_start",
                format!("invalid start message: {e}"),
            ));
        }
    };
    let session = Session::new(state, tenant, id, start).await?;
    let results = state
        .bus
        .subscribe_results(&session.id)
        .await
        .map_err(|e| Fatal::new(close::INTERNAL, "unavailable", e.to_string()))?;
    Ok(Some((session, results)))
}

fn bad_start(message: impl Into<String>) -> Fatal {
    Fatal::new(close::INVALID_PAYLOAD, "bad_start", message)
}

impl Session {
    async fn new(state: &AppState, tenant: &str, id: String, start: Start) -> Result<Self, Fatal> {
        let decoder = PcmDecoder::new(start.audio)?;
        if !protocol::SPEAKERS_RANGE.contains(&start.speakers.len()) {
            return Err(bad_start(format!(
                "speakers must list 1 to {} speakers",
                protocol::SPEAKERS_RANGE.end()
            )));
        }
        let opts = start.options;
        let hop_ms = opts.hop_ms.unwrap_or(protocol::DEFAULT_HOP_MS);
        if !protocol::HOP_MS_RANGE.contains(&hop_ms) {
            return Err(bad_start(format!("hop_ms {hop_ms} is outside 250-1600")));
        }
        for (name, v, lo, hi) in [
            ("threshold", opts.threshold, -1.0, 1.0),
            ("min_voiced", opts.min_voiced, 0.0, 1.0),
        ] {
            if v.is_some_and(|v| !(lo..=hi).contains(&v)) {
                return Err(bad_start(format!("{name} must be from {lo} to {hi}")));
            }
        }
        let mut params = DecisionParams {
            threshold: opts.threshold,
            min_voiced: opts.min_voiced,
            ..DecisionParams::default()
        };
        // Overlap detection is opt-in: with two similar enrolled voices the pair-fit rule
        // labels many single-speaker windows `overlap` (docs/decision.md; the gateway's stream
        // test shows it on two data/speakers voices), and a false overlap is worse for a
        // client than a missed one.
        if opts.overlap != Some(true) {
            params.overlap_fit = Some(f32::INFINITY);
            params.overlap_min = Some(f32::INFINITY);
        }

        let mut enrolled = Vec::with_capacity(start.speakers.len());
        for s in start.speakers {
            match s {
                SpeakerRef::Id(pid) => {
                    let profile = if uuid::Uuid::parse_str(&pid).is_ok() {
                        state.store.get(tenant, &pid).await.map_err(|e| {
                            Fatal::new(close::INTERNAL, "store_unavailable", e.to_string())
                        })?
                    } else {
                        None
                    };
                    let p = profile.ok_or_else(|| {
                        Fatal::new(
                            close::POLICY,
                            "unknown_profile",
                            format!("no speaker profile {:?}", clip(&pid, 80)),
                        )
                    })?;
                    enrolled.push(EnrolledSpeaker {
                        id: p.id,
                        name: Some(p.name),
                        embedding: p.embedding,
                    });
                }
                SpeakerRef::Inline {
                    name,
                    embedding,
                    id,
                } => {
                    if name.is_empty() || name.len() > 256 {
                        return Err(bad_start("an inline speaker needs a name of 1-256 bytes"));
                    }
                    if embedding.len() != EMBEDDING_DIM
                        || embedding.iter().any(|x| !x.is_finite())
                        || embedding.iter().all(|&x| x == 0.0)
                    {
                        return Err(bad_start(format!(
                            "speaker {:?}: embedding must be {EMBEDDING_DIM} finite numbers, not all zero",
                            clip(&name, 80)
                        )));
                    }
                    let id = id.unwrap_or_else(|| name.clone());
                    if id.is_empty() || id.len() > 256 {
                        return Err(bad_start("an inline speaker id must be 1-256 bytes"));
                    }
                    enrolled.push(EnrolledSpeaker {
                        id,
                        name: Some(name),
                        embedding,
                    });
                }
            }
        }
        for (i, s) in enrolled.iter().enumerate() {
            if enrolled[..i].iter().any(|o| o.id == s.id) {
                return Err(bad_start(format!(
                    "speaker {:?} is listed twice",
                    clip(&s.id, 80)
                )));
            }
        }
        let speakers = unique_names(&enrolled);
        let hop = u64::from(hop_ms) * u64::from(SAMPLE_RATE) / 1000;
        let smoother = TurnSmoother::new(
            TurnParams::default(),
            f64::from(hop_ms) / 1000.0,
            enrolled.len(),
        );
        Ok(Self {
            id,
            state: state.clone(),
            speakers,
            enrolled,
            params,
            hop,
            hop_ms,
            decoder,
            ring: VecDeque::new(),
            ring_start: 0,
            total: 0,
            next_end: WINDOW_SAMPLES as u64,
            next_seq: 0,
            pending: BTreeMap::new(),
            blocked_since: None,
            last_audio: Instant::now(),
            arrivals: VecDeque::new(),
            results_sent: 0,
            dropped: 0,
            smoother,
            scratch: Vec::new(),
        })
    }

    fn event(&self, event: EventKind) -> SessionEvent {
        SessionEvent {
            v: SCHEMA_VERSION,
            session: self.id.clone(),
            at_unix_ms: diglett_schemas::embed::unix_ms_now(),
            event,
        }
    }

    async fn run(mut self, mut socket: WebSocket, mut results: ResultStream) {
        let end = self.serve(&mut socket, &mut results).await;
        self.state
            .metrics
            .buffered_samples
            .dec_by(self.ring.len() as i64);
        end
    }

    async fn serve(&mut self, socket: &mut WebSocket, results: &mut ResultStream) {
        let ready = ServerMessage::Ready {
            session: self.id.clone(),
            window_ms: protocol::WINDOW_MS,
            hop_ms: self.hop_ms,
            speakers: self
                .speakers
                .iter()
                .map(|s| SpeakerInfo {
                    id: s.id.clone(),
                    name: s.name.clone(),
                })
                .collect(),
        };
        if !send(socket, &ready).await {
            return;
        }
        let started = self.event(EventKind::Started {
            speakers: self.enrolled.iter().map(|s| s.id.clone()).collect(),
        });
        self.state.bus.publish_event(started).await;
        tracing::info!(session = %self.id, speakers = self.enrolled.len(), hop_ms = self.hop_ms, "session started");

        let end = self.event_loop(socket, results).await;
        let reason = match &end {
            Ok(c) => c.reason,
            Err(f) => f.error,
        };
        let ended = self.event(EventKind::Ended {
            reason: reason.to_owned(),
            windows: self.results_sent,
        });
        self.state.bus.publish_event(ended).await;
        tracing::info!(session = %self.id, reason, results = self.results_sent, dropped = self.dropped, "session ended");
        match end {
            Ok(c) => {
                if c.code != 0 {
                    close_with(socket, c.code, c.reason).await;
                }
            }
            Err(f) => fail(socket, f).await,
        }
    }

    /// Runs until the session ends; `Ok` carries the close to send (code 0: the client is
    /// already gone).
    async fn event_loop(
        &mut self,
        socket: &mut WebSocket,
        results: &mut ResultStream,
    ) -> Result<Close, Fatal> {
        let cfg = std::sync::Arc::clone(&self.state.config);
        let grace = Duration::from_millis(u64::from(self.hop_ms));
        let mut stopping: Option<Close> = None;
        loop {
            // Cut every window the audio allows, while slots are free.
            let skipped = self.cut_windows(grace).await;
            if skipped > 0 {
                self.dropped += skipped;
                self.state.metrics.dropped("overloaded", skipped);
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
            if !self.flush(socket).await {
                return Ok(gone());
            }
            let backlog = self.total >= self.next_end;
            if let Some(c) = &stopping
                && self.pending.is_empty()
                && !backlog
            {
                // The stream is over: a change the smoother was still confirming is the last
                // evidence, so it becomes the final turn.
                if let Some(turn) = self.smoother.finish() {
                    let msg = self.turn_message(&turn);
                    if !self.send_turn(socket, msg).await {
                        return Ok(gone());
                    }
                }
                let summary = self.summary();
                if !send(socket, &summary).await {
                    return Ok(gone());
                }
                return Ok(Close {
                    code: c.code,
                    reason: c.reason,
                });
            }
            let next_deadline = self
                .pending
                .values()
                .filter(|p| p.outcome.is_none())
                .map(|p| p.deadline)
                .min();
            let unblock_at = self.blocked_since.map(|t| t + grace);
            let idle_at = self.last_audio + cfg.idle_timeout;
            let reading = stopping.is_none() && !backlog;
            tokio::select! {
                msg = socket.recv(), if reading => {
                    match msg {
                        None | Some(Err(_)) => return Ok(gone()),
                        Some(Ok(Message::Close(_))) => return Ok(gone()),
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
                            match serde_json::from_str::<ClientMessage>(t.as_str()) {
                                Ok(ClientMessage::Stop) => {
                                    stopping = Some(Close { code: close::NORMAL, reason: "stopped" });
                                }
                                Ok(ClientMessage::Start(_)) => {
                                    let e = ServerMessage::Error {
                                        code: "already_started".into(),
                                        message: "the session has already started".into(),
                                        seq: None,
                                    };
                                    if !send(socket, &e).await {
                                        return Ok(gone());
                                    }
                                }
                                Err(e) => {
                                    let e = ServerMessage::Error {
                                        code: "bad_message".into(),
                                        message: format!("invalid message: {e}"),
                                        seq: None,
                                    };
                                    if !send(socket, &e).await {
                                        return Ok(gone());
                                    }
                                }
                            }
                        }
                        Some(Ok(_)) => {}
                    }
                }
                r = results.next() => {
                    let Some(r) = r else {
                        return Err(Fatal::new(close::INTERNAL, "unavailable", "the message bus closed"));
                    };
                    self.on_result(r);
                }
                () = sleep_until(next_deadline), if next_deadline.is_some() => {
                    if !self.on_timeouts(socket).await {
                        return Ok(gone());
                    }
                }
                () = sleep_until(unblock_at), if unblock_at.is_some() => {}
                () = tokio::time::sleep_until(idle_at.into()), if stopping.is_none() => {
                    stopping = Some(Close { code: close::NORMAL, reason: "idle: no audio for the idle timeout" });
                }
                () = self.state.shutdown.cancelled(), if stopping.as_ref().is_none_or(|c| c.code != close::GOING_AWAY) => {
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
        self.ring.extend(out.iter().map(|&x| to_i16(x)));
        self.total += out.len() as u64;
        self.state.metrics.buffered_samples.inc_by(out.len() as i64);
        if !out.is_empty() {
            self.arrivals.push_back((self.total, self.last_audio));
        }
        self.scratch = out;
        Ok(())
    }

    fn in_flight(&self) -> usize {
        self.pending
            .values()
            .filter(|p| p.outcome.is_none())
            .count()
    }

    /// Publishes ready windows while slots are free; skips one window per `grace` spent
    /// blocked. Returns how many were skipped.
    async fn cut_windows(&mut self, grace: Duration) -> u64 {
        let mut skipped = 0;
        while self.total >= self.next_end {
            if self.in_flight() < self.state.config.session_max_in_flight {
                self.blocked_since = None;
                let first = self.next_end - WINDOW_SAMPLES as u64;
                let seq = self.next_seq;
                let arrival = self.arrival_of(self.next_end);
                self.publish(seq, first).await;
                self.pending.insert(
                    seq,
                    Pending {
                        first,
                        arrival,
                        deadline: Instant::now() + self.state.config.window_timeout,
                        retried: false,
                        outcome: None,
                    },
                );
            } else {
                let now = Instant::now();
                let since = *self.blocked_since.get_or_insert(now);
                if now < since + grace {
                    break;
                }
                self.blocked_since = Some(now);
                skipped += 1;
            }
            self.next_end += self.hop;
            self.next_seq += 1;
        }
        self.trim_ring();
        skipped
    }

    /// When the sample just before `end` arrived; forgets frames before it.
    fn arrival_of(&mut self, end: u64) -> Instant {
        while self.arrivals.len() > 1 && self.arrivals.front().is_some_and(|&(t, _)| t < end) {
            self.arrivals.pop_front();
        }
        self.arrivals
            .front()
            .filter(|&&(t, _)| t >= end)
            .map_or_else(Instant::now, |&(_, at)| at)
    }

    /// Drops ring samples no pending or future window needs.
    fn trim_ring(&mut self) {
        let oldest_pending = self
            .pending
            .values()
            .filter(|p| p.outcome.is_none())
            .map(|p| p.first)
            .min();
        let next_first = self.next_end.saturating_sub(WINDOW_SAMPLES as u64);
        let keep_from = oldest_pending.map_or(next_first, |p| p.min(next_first));
        let n = keep_from
            .saturating_sub(self.ring_start)
            .min(self.ring.len() as u64) as usize;
        self.ring.drain(..n);
        self.ring_start += n as u64;
        self.state.metrics.buffered_samples.dec_by(n as i64);
    }

    async fn publish(&mut self, seq: u64, first: u64) {
        let from = (first - self.ring_start) as usize;
        let mut pcm = Vec::with_capacity(WINDOW_SAMPLES * 2);
        for &s in self.ring.range(from..from + WINDOW_SAMPLES) {
            pcm.extend_from_slice(&s.to_le_bytes());
        }
        let req = WindowRequest {
            v: SCHEMA_VERSION,
            session: self.id.clone(),
            seq,
            start: first as f64 / f64::from(SAMPLE_RATE),
            sample_rate: SAMPLE_RATE,
            pcm,
            speakers: self.enrolled.clone(),
            params: self.params,
            // The worker skips it once this session has stopped waiting (the timeout below).
            expires_at_unix_ms: Some(
                diglett_schemas::embed::unix_ms_now()
                    + self.state.config.window_timeout.as_millis() as u64,
            ),
        };
        self.state.metrics.windows_published.inc();
        if let Err(e) = self.state.bus.publish_window(req).await {
            // The deadline accounts for it.
            tracing::warn!(session = %self.id, seq, error = %e, "cannot publish a window");
        }
    }

    fn on_result(&mut self, r: WindowResult) {
        let Some(p) = self.pending.get_mut(&r.seq) else {
            return; // late duplicate, or a window already given up
        };
        if p.outcome.is_some() {
            return;
        }
        // The first copy of a re-published window expired in a worker's queue: the second
        // copy is still on its way (its result, or its own expiry and then the timeout).
        if p.retried && expired(&r) {
            return;
        }
        p.outcome = Some(Outcome::Result(Box::new(r)));
    }

    /// Re-publishes windows past their deadline once, then gives up on them.
    async fn on_timeouts(&mut self, socket: &mut WebSocket) -> bool {
        let now = Instant::now();
        let due: Vec<(u64, u64, bool)> = self
            .pending
            .iter()
            .filter(|(_, p)| p.outcome.is_none() && p.deadline <= now)
            .map(|(&seq, p)| (seq, p.first, p.retried))
            .collect();
        let mut given_up = 0;
        for (seq, first, retried) in due {
            if retried {
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.outcome = Some(Outcome::Dropped);
                }
                given_up += 1;
            } else {
                self.publish(seq, first).await;
                self.state.metrics.windows_republished.inc();
                if let Some(p) = self.pending.get_mut(&seq) {
                    p.retried = true;
                    p.deadline = now + self.state.config.window_timeout;
                }
            }
        }
        if given_up > 0 {
            self.dropped += given_up;
            self.state.metrics.dropped("timeout", given_up);
            let w = ServerMessage::Warning {
                code: "timeout".into(),
                dropped: given_up,
                total_dropped: self.dropped,
                message: "windows got no result in time, even after a retry".into(),
            };
            return send(socket, &w).await;
        }
        true
    }

    /// Sends every finished window at the head of the queue, in order, with turns.
    async fn flush(&mut self, socket: &mut WebSocket) -> bool {
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().outcome.is_none() {
                break;
            }
            let (seq, p) = entry.remove_entry();
            let Some(Outcome::Result(r)) = p.outcome else {
                continue; // dropped: already reported
            };
            if r.label == Label::Error && expired(&r) {
                // Not computed: it waited in a worker's queue past the timeout (overload).
                self.dropped += 1;
                self.state.metrics.dropped("expired", 1);
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
                self.state.metrics.dropped("error", 1);
                let (code, message) = r.error.as_ref().map_or_else(
                    || ("internal".to_owned(), "the worker failed".to_owned()),
                    |e| (e.kind.as_str().to_owned(), e.message.clone()),
                );
                let e = ServerMessage::Error {
                    code,
                    message,
                    seq: Some(seq),
                };
                if !send(socket, &e).await {
                    return false;
                }
                continue;
            }
            let msg = self.result_message(&r, p.arrival);
            self.results_sent += 1;
            self.state.metrics.results.inc();
            self.state
                .metrics
                .result_latency_seconds
                .observe(p.arrival.elapsed().as_secs_f64());
            if !send(socket, &ServerMessage::Result(msg)).await {
                return false;
            }
            if let Some(turn) = self.smooth(&r)
                && !self.send_turn(socket, turn).await
            {
                return false;
            }
        }
        self.trim_ring();
        true
    }

    fn speaker_index(&self, id: Option<&str>) -> Option<usize> {
        let id = id?;
        self.enrolled.iter().position(|s| s.id == id)
    }

    fn result_message(&self, r: &WindowResult, arrival: Instant) -> WindowResultMsg {
        let who = self.speaker_index(r.speaker_id.as_deref());
        WindowResultMsg {
            seq: r.seq,
            start: r.start,
            end: r.end,
            label: r.label.as_str().to_owned(),
            speaker: who.map(|i| self.speakers[i].name.clone()),
            speaker_id: who.map(|i| self.speakers[i].id.clone()),
            score: r.best_score,
            scores: r
                .scores
                .iter()
                .filter_map(|s| {
                    let i = self.speaker_index(Some(&s.id))?;
                    Some((self.speakers[i].name.clone(), s.score))
                })
                .collect(),
            speech: r.speech.voiced_fraction,
            volume: r.loudness.dbfs,
            lufs: r.loudness.lufs,
            latency_ms: arrival.elapsed().as_secs_f64() * 1e3,
        }
    }

    fn smooth(&mut self, r: &WindowResult) -> Option<TurnMsg> {
        let label = match r.label {
            Label::Speaker => ModelLabel::Speaker,
            Label::Overlap => ModelLabel::Overlap,
            Label::Silence => ModelLabel::Silence,
            Label::Unknown | Label::Error | Label::Other => ModelLabel::Unknown,
        };
        let mut scores = vec![f32::NAN; self.enrolled.len()];
        for s in &r.scores {
            if let Some(i) = self.speaker_index(Some(&s.id)) {
                scores[i] = s.score;
            }
        }
        let speaker = self.speaker_index(r.speaker_id.as_deref());
        let turn = self.smoother.push(&Observation {
            start: r.start,
            end: r.end,
            label,
            speaker,
            scores: &scores,
        })?;
        Some(self.turn_message(&turn))
    }

    /// Sends a `turn` and publishes it as a `speaker_turn` event.
    async fn send_turn(&mut self, socket: &mut WebSocket, turn: TurnMsg) -> bool {
        self.state.metrics.turns.inc();
        let event = self.event(EventKind::SpeakerTurn {
            speaker_id: turn.speaker_id.clone(),
            speaker_name: turn.speaker.clone(),
            label: turn.label.clone(),
            start: turn.start,
        });
        if !send(socket, &ServerMessage::Turn(turn)).await {
            return false;
        }
        self.state.bus.publish_event(event).await;
        true
    }

    fn turn_message(&self, turn: &diglett_model::turns::Turn) -> TurnMsg {
        let label = match turn.label {
            ModelLabel::Speaker => "speaker",
            ModelLabel::Overlap => "overlap",
            ModelLabel::Silence => "silence",
            ModelLabel::Unknown => "unknown",
        };
        TurnMsg {
            label: label.to_owned(),
            speaker: turn
                .speaker
                .and_then(|i| self.speakers.get(i))
                .map(|s| s.name.clone()),
            speaker_id: turn
                .speaker
                .and_then(|i| self.speakers.get(i))
                .map(|s| s.id.clone()),
            start: turn.start,
            end: turn.end,
        }
    }

    fn summary(&self) -> ServerMessage {
        let duration = self.total as f64 / f64::from(SAMPLE_RATE);
        let talk = self.smoother.talk_seconds(duration);
        ServerMessage::Summary {
            duration,
            talk_time: self
                .speakers
                .iter()
                .zip(talk)
                .map(|(s, t)| (s.name.clone(), t))
                .collect(),
            windows: self.results_sent,
            dropped: self.dropped,
        }
    }
}

fn gone() -> Close {
    Close {
        code: 0,
        reason: "client_closed",
    }
}

async fn sleep_until(t: Option<Instant>) {
    match t {
        Some(t) => tokio::time::sleep_until(t.into()).await,
        None => std::future::pending().await,
    }
}

fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// Names unique within the session: a repeated name gets its id's first 8 characters.
fn unique_names(enrolled: &[EnrolledSpeaker]) -> Vec<Speaker> {
    let name_of = |s: &EnrolledSpeaker| s.name.clone().unwrap_or_else(|| s.id.clone());
    enrolled
        .iter()
        .map(|s| {
            let name = name_of(s);
            let repeated = enrolled.iter().filter(|o| name_of(o) == name).count() > 1;
            Speaker {
                id: s.id.clone(),
                name: if repeated {
                    format!("{name} ({})", clip(&s.id, 8))
                } else {
                    name
                },
            }
        })
        .collect()
}

/// Whether a worker answered that the window expired in its queue before being computed.
fn expired(r: &WindowResult) -> bool {
    r.error
        .as_ref()
        .is_some_and(|e| e.kind == diglett_schemas::ErrorKind::Expired)
}
