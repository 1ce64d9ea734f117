//! One WebSocket session (protocol v1) driven like a microphone, with everything timed.
//!
//! The client sends `start`, waits for `ready`, then sends 16 kHz `pcm_s16le` in frames of
//! [`FRAME_SAMPLES`] (100 ms) and finally `stop`, recording when each frame went out and when
//! each server message arrived. Pacing:
//! - [`Pacing::RealTime`]: frame `n` goes out at `t0 + (n + 1) × 100 ms` — when a microphone
//!   would have captured its last sample — so "now" in stream time is `wall − t0`;
//! - [`Pacing::Fast`]: as fast as the server keeps up, never more than
//!   [`MAX_UNANSWERED_WINDOWS`] windows unanswered (the gateway's per-session in-flight bound,
//!   so its overload protection never skips a window).

use std::sync::Arc;
use std::time::{Duration, Instant as StdInstant};

use diglett_api::protocol::{
    AudioFormat, ClientMessage, Options, ServerMessage, SpeakerInfo, SpeakerRef, Start,
};
use futures_util::{SinkExt, StreamExt};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use crate::latency::Windowing;

/// Samples per binary frame: 100 ms at 16 kHz, as a browser's audio worklet or the
/// command-line client sends.
pub const FRAME_SAMPLES: usize = 1_600;
/// With [`Pacing::Fast`], stop sending while this many windows are unanswered
/// (`DIGLETT_SESSION_MAX_IN_FLIGHT`'s default).
pub const MAX_UNANSWERED_WINDOWS: u64 = 8;
/// Longest wait for `ready` after `start`, and for the end of the session after `stop`.
const PATIENCE: Duration = Duration::from_secs(60);

/// How to pace the audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pacing {
    /// One 100 ms frame every 100 ms.
    RealTime,
    /// As fast as the server answers.
    Fast,
}

/// The audio of a session: `samples` samples read cyclically from `corpus` at `offset`.
#[derive(Debug, Clone)]
pub struct Audio {
    /// 16 kHz mono PCM, shared by every session of a run.
    pub corpus: Arc<[i16]>,
    /// Where this session starts reading.
    pub offset: usize,
    /// How many samples it sends (the corpus wraps around).
    pub samples: usize,
}

impl Audio {
    /// All of `pcm`, once.
    pub fn whole(pcm: Vec<i16>) -> Self {
        let samples = pcm.len();
        Self {
            corpus: pcm.into(),
            offset: 0,
            samples,
        }
    }

    /// Frame `n` as little-endian bytes (shorter at the end; empty past it).
    fn frame(&self, n: usize) -> Vec<u8> {
        let from = n * FRAME_SAMPLES;
        let to = ((n + 1) * FRAME_SAMPLES).min(self.samples);
        let len = self.corpus.len();
        if from >= to || len == 0 {
            return Vec::new();
        }
        (from..to)
            .flat_map(|i| self.corpus[(self.offset + i) % len].to_le_bytes())
            .collect()
    }

    fn frames(&self) -> usize {
        self.samples.div_ceil(FRAME_SAMPLES)
    }
}

/// What to open.
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ws://…/v1/stream` (with `?token=` if needed; see `Client::stream_url`).
    pub url: String,
    /// Profile ids or inline signatures.
    pub speakers: Vec<SpeakerRef>,
    /// `start` options.
    pub options: Options,
    /// Pacing.
    pub pacing: Pacing,
}

/// A server message and when it arrived.
#[derive(Debug, Clone)]
pub struct Arrival {
    /// Arrival time.
    pub at: StdInstant,
    /// The message.
    pub msg: ServerMessage,
}

/// Everything that happened in one session.
#[derive(Debug, Clone)]
pub struct Record {
    /// Session id from `ready`.
    pub session: String,
    /// Hop (ms) from `ready`.
    pub hop_ms: u32,
    /// The session's speakers, in `ready` order.
    pub speakers: Vec<SpeakerInfo>,
    /// Just after `ready`: the pacing origin (see the module doc).
    pub t0: StdInstant,
    /// When each frame went out.
    pub frames_sent: Vec<StdInstant>,
    /// Samples sent.
    pub samples_sent: u64,
    /// Every server message after `ready`, in arrival order.
    pub messages: Vec<Arrival>,
    /// The close frame's code and reason, if one came.
    pub close: Option<(u16, String)>,
}

impl Record {
    /// The session's windowing.
    pub fn windowing(&self) -> Windowing {
        Windowing::new(self.hop_ms, FRAME_SAMPLES as u64)
    }

    /// Stream time (s) at which `at` falls under real-time pacing.
    pub fn stream_time(&self, at: StdInstant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// The `summary`, if one came.
    pub fn summary(&self) -> Option<&ServerMessage> {
        self.messages
            .iter()
            .map(|a| &a.msg)
            .find(|m| matches!(m, ServerMessage::Summary { .. }))
    }

    /// Windows lost: the summary's `dropped`, or without a summary the warnings' and failed
    /// windows' count.
    pub fn dropped(&self) -> u64 {
        if let Some(ServerMessage::Summary { dropped, .. }) = self.summary() {
            return *dropped;
        }
        self.messages
            .iter()
            .map(|a| match &a.msg {
                ServerMessage::Warning { dropped, .. } => *dropped,
                ServerMessage::Error { seq: Some(_), .. } => 1,
                _ => 0,
            })
            .sum()
    }
}

/// Why a session failed.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// No connection, or it broke.
    #[error("connection: {0}")]
    Connect(String),
    /// The server refused or ended the session with an error.
    #[error("server: {0}")]
    Server(String),
    /// The server took longer than a minute to answer `start` or to finish after `stop`.
    #[error("timeout: {0}")]
    Timeout(String),
}

/// Runs one session to its end (close frame after the summary).
pub async fn run(plan: &Plan, audio: &Audio) -> Result<Record, SessionError> {
    let (ws, _) = tokio_tungstenite::connect_async(plan.url.as_str())
        .await
        .map_err(|e| SessionError::Connect(e.to_string()))?;
    let (mut tx, mut rx) = ws.split();
    let start = ClientMessage::Start(Start {
        audio: AudioFormat::PCM_S16LE_16K_MONO,
        speakers: plan.speakers.clone(),
        options: plan.options,
    });
    let text = serde_json::to_string(&start).map_err(|e| SessionError::Server(e.to_string()))?;
    send(&mut tx, Message::Text(text.into())).await?;

    // `ready` (or why not).
    let deadline = Instant::now() + PATIENCE;
    let (session, hop_ms, speakers) = loop {
        let msg = tokio::time::timeout_at(deadline, rx.next())
            .await
            .map_err(|_| SessionError::Timeout("no `ready` after `start`".into()))?;
        match msg {
            None => return Err(SessionError::Connect("closed before `ready`".into())),
            Some(Err(e)) => return Err(SessionError::Connect(e.to_string())),
            Some(Ok(Message::Text(t))) => match serde_json::from_str::<ServerMessage>(t.as_str()) {
                Ok(ServerMessage::Ready {
                    session,
                    hop_ms,
                    speakers,
                    ..
                }) => break (session, hop_ms, speakers),
                Ok(ServerMessage::Error { code, message, .. }) => {
                    return Err(SessionError::Server(format!("{code}: {message}")));
                }
                _ => {}
            },
            Some(Ok(Message::Close(f))) => {
                let why = f.map_or_else(String::new, |f| format!("{} {}", f.code, f.reason));
                return Err(SessionError::Server(format!(
                    "closed before `ready`: {why}"
                )));
            }
            Some(Ok(_)) => {}
        }
    };

    let t0 = Instant::now();
    let win = Windowing::new(hop_ms, FRAME_SAMPLES as u64);
    let n_frames = audio.frames();
    let mut frames_sent = Vec::with_capacity(n_frames);
    let mut samples_sent = 0u64;
    let mut answered = 0u64;
    let mut stop_sent = false;
    let mut stop_deadline = None;
    let mut messages = Vec::new();
    if n_frames == 0 {
        send_stop(&mut tx).await?;
        stop_sent = true;
        stop_deadline = Some(Instant::now() + PATIENCE);
    }
    let close = loop {
        let n = frames_sent.len();
        let unanswered = win.windows_in(samples_sent).saturating_sub(answered);
        let can_send =
            !stop_sent && (plan.pacing == Pacing::RealTime || unanswered < MAX_UNANSWERED_WINDOWS);
        let due = match plan.pacing {
            Pacing::RealTime => t0 + Duration::from_millis(100 * (n as u64 + 1)),
            Pacing::Fast => Instant::now(),
        };
        let patience = stop_deadline.unwrap_or_else(|| Instant::now() + PATIENCE * 10);
        tokio::select! {
            biased;
            msg = tokio::time::timeout_at(patience, rx.next()) => {
                let msg = match msg {
                    Err(_) => return Err(SessionError::Timeout("no end of session after `stop`".into())),
                    Ok(None) => break None,
                    Ok(Some(Err(e))) => return Err(SessionError::Connect(e.to_string())),
                    Ok(Some(Ok(m))) => m,
                };
                let at = StdInstant::now();
                match msg {
                    Message::Text(t) => {
                        let Ok(msg) = serde_json::from_str::<ServerMessage>(t.as_str()) else {
                            continue;
                        };
                        match &msg {
                            ServerMessage::Result(r) => answered = answered.max(r.seq + 1),
                            ServerMessage::Error { seq: Some(s), .. } => answered = answered.max(s + 1),
                            ServerMessage::Warning { dropped, .. } => answered += dropped,
                            _ => {}
                        }
                        messages.push(Arrival { at, msg });
                    }
                    Message::Close(f) => break f.map(|f| (u16::from(f.code), f.reason.to_string())),
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(due), if can_send => {
                let bytes = audio.frame(n);
                samples_sent += (bytes.len() / 2) as u64;
                send(&mut tx, Message::Binary(bytes.into())).await?;
                frames_sent.push(StdInstant::now());
                if frames_sent.len() >= n_frames {
                    send_stop(&mut tx).await?;
                    stop_sent = true;
                    stop_deadline = Some(Instant::now() + PATIENCE);
                }
            }
        }
    };
    let record = Record {
        session,
        hop_ms,
        speakers,
        t0: t0.into_std(),
        frames_sent,
        samples_sent,
        messages,
        close,
    };
    match (&record.close, record.summary()) {
        (Some((1000 | 1001, _)), Some(_)) => Ok(record),
        (close, _) => {
            let error = record.messages.iter().find_map(|a| match &a.msg {
                ServerMessage::Error {
                    code,
                    message,
                    seq: None,
                } => Some(format!("{code}: {message}")),
                _ => None,
            });
            let close = close.as_ref().map_or_else(
                || "no close frame".to_owned(),
                |(c, r)| format!("close {c} {r}"),
            );
            Err(SessionError::Server(match error {
                Some(e) => format!("{e} ({close})"),
                None => format!("the session ended without a summary ({close})"),
            }))
        }
    }
}

async fn send<S>(tx: &mut S, msg: Message) -> Result<(), SessionError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    tx.send(msg)
        .await
        .map_err(|e| SessionError::Connect(format!("send: {e}")))
}

async fn send_stop<S>(tx: &mut S) -> Result<(), SessionError>
where
    S: futures_util::Sink<Message, Error = tokio_tungstenite::tungstenite::Error> + Unpin,
{
    let stop = serde_json::to_string(&ClientMessage::Stop)
        .map_err(|e| SessionError::Server(e.to_string()))?;
    send(tx, Message::Text(stop.into())).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_wrap_around_the_corpus() {
        let corpus: Arc<[i16]> = (0..4_000i16).collect::<Vec<_>>().into();
        let a = Audio {
            corpus,
            offset: 3_000,
            samples: 3_500,
        };
        assert_eq!(a.frames(), 3);
        let f0 = a.frame(0);
        assert_eq!(f0.len(), 2 * FRAME_SAMPLES);
        assert_eq!(i16::from_le_bytes([f0[0], f0[1]]), 3_000);
        // Sample 1 000 of the session is corpus sample 0 (wrapped).
        assert_eq!(i16::from_le_bytes([f0[2_000], f0[2_001]]), 0);
        assert_eq!(a.frame(2).len(), 2 * 300);
        assert!(a.frame(3).is_empty());
        assert_eq!(Audio::whole(vec![1, 2, 3]).frames(), 1);
    }
}
