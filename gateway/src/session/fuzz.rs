//! A whole WebSocket session driven by arbitrary client messages: the entry point of the
//! `ws_session` fuzz target (`fuzz/`) and of the test that replays its corpus.
//!
//! The bytes are cut into client messages (text, binary, ping, close); the first goes through the
//! real `start` parsing and checks, the rest through the real session loop, over an in-memory
//! socket, a bus that answers every window at once (or, as the input says, lets some time out),
//! and a store in which every UUID is a profile. Time is tokio's paused clock, so idle and
//! window timeouts fire as soon as nothing else can run. What must hold, whatever the client
//! sends: no panic, no hang, every server message valid JSON of the protocol, results in
//! increasing `seq`, and nothing after the close frame.

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ws::Message;
use diglett_api::protocol::ServerMessage;
use diglett_schemas::{
    EMBEDDING_DIM, EnrolledSpeaker, Label, SessionEvent, WindowRequest, WindowResult,
};
use futures_util::{Sink, Stream};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::transport::fail;
use super::{Limits, Session, SessionBus, parse_start, start};
use crate::bus::BusError;
use crate::metrics::Metrics;

/// Longest message the fuzzer's framing makes (the transport's own limit is far above).
const MAX_MESSAGE: usize = 1 << 16;

/// Cuts `data` into client messages: each is a kind byte (low 2 bits: 0 text, 1 binary,
/// 2 ping, 3 close), a little-endian `u16` length and that many bytes (fewer at the end).
pub fn messages(data: &[u8]) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = data;
    while let [kind, rest_after_kind @ ..] = rest {
        let (len, body) = match rest_after_kind {
            [a, b, body @ ..] => (usize::from(u16::from_le_bytes([*a, *b])), body),
            _ => (rest_after_kind.len(), &[][..]),
        };
        let len = len.min(body.len()).min(MAX_MESSAGE);
        let (payload, next) = body.split_at(len);
        out.push(match kind & 3 {
            0 => Message::Text(String::from_utf8_lossy(payload).into_owned().into()),
            1 => Message::Binary(payload.to_vec().into()),
            2 => Message::Ping(payload.to_vec().into()),
            _ => Message::Close(None),
        });
        rest = next;
    }
    out
}

/// The inverse of [`messages`] for building seeds: `(kind, payload)` pairs.
pub fn frame(parts: &[(u8, &[u8])]) -> Vec<u8> {
    let mut out = Vec::new();
    for (kind, payload) in parts {
        let len = u16::try_from(payload.len()).unwrap_or(u16::MAX);
        out.push(*kind);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&payload[..usize::from(len)]);
    }
    out
}

/// Runs one session on `data` (see the module docs); panics if an invariant breaks. Returns
/// how many results the server sent.
pub fn ws_session(data: &[u8]) -> usize {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime");
    // Which windows the bus leaves unanswered (they time out, are retried, then dropped).
    let silence_every = data.first().map_or(0, |b| b >> 4);
    rt.block_on(drive(messages(data), silence_every))
}

/// The socket's server end: reads the queued client messages, records what the server sends.
struct Pipe {
    rx: mpsc::UnboundedReceiver<Message>,
    sent: Vec<Message>,
}

impl Stream for Pipe {
    type Item = Result<Message, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for Pipe {
    type Error = Infallible;
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(mut self: Pin<&mut Self>, item: Message) -> Result<(), Infallible> {
        self.sent.push(item);
        Ok(())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }
}

/// Answers each window at once with a result naming the first speaker (or silence), except
/// every `silence_every`-th, which it never answers.
struct AnsweringBus {
    results: mpsc::UnboundedSender<WindowResult>,
    silence_every: u8,
}

impl SessionBus for AnsweringBus {
    fn publish_window(
        &self,
        req: WindowRequest,
    ) -> impl Future<Output = Result<(), BusError>> + Send {
        let skip = self.silence_every > 1 && req.seq.is_multiple_of(u64::from(self.silence_every));
        if !skip {
            let label = if req.seq % 3 == 2 {
                Label::Silence
            } else {
                Label::Speaker
            };
            let mut r = WindowResult::bare(&req.session, req.seq, req.start, label);
            if label == Label::Speaker {
                r.speaker_id = req.speakers.first().map(|s| s.id.clone());
                r.best_score = Some(0.8);
            }
            let _ = self.results.send(r);
        }
        std::future::ready(Ok(()))
    }
    fn publish_event(&self, _event: SessionEvent) -> impl Future<Output = ()> + Send {
        std::future::ready(())
    }
}

/// A store in which every UUID names a profile (its signature derived from the id) and
/// nothing else does.
fn profile(id: &str) -> Result<EnrolledSpeaker, super::Fatal> {
    let uuid = uuid::Uuid::parse_str(id).map_err(|_| start::unknown_profile(id))?;
    let mut embedding = vec![0.0; EMBEDDING_DIM];
    embedding[0] = 1.0;
    embedding[1] = f32::from(uuid.as_bytes()[0]) / 255.0;
    Ok(EnrolledSpeaker {
        id: id.to_owned(),
        name: Some(format!("profile {}", &id[..8.min(id.len())])),
        embedding,
    })
}

async fn drive(messages: Vec<Message>, silence_every: u8) -> usize {
    let mut messages = messages.into_iter();
    let (to_server, rx) = mpsc::unbounded_channel();
    let mut pipe = Pipe {
        rx,
        sent: Vec::new(),
    };
    let Some(first) = messages.next() else {
        return 0;
    };
    let plan = parse_start(first).and_then(start::check).and_then(|c| {
        let enrolled = c
            .speakers
            .iter()
            .map(|w| match w {
                start::Wanted::Inline(s) => Ok(s.clone()),
                start::Wanted::Profile(id) => profile(id),
            })
            .collect::<Result<Vec<_>, _>>()?;
        c.into_plan(enrolled)
    });
    match plan {
        Err(f) => fail(&mut pipe, f).await,
        Ok(plan) => {
            for m in messages {
                let _ = to_server.send(m);
            }
            drop(to_server);
            let (results_tx, mut results_rx) = mpsc::unbounded_channel();
            let bus = AnsweringBus {
                results: results_tx,
                silence_every,
            };
            let results = Box::pin(futures_util::stream::poll_fn(move |cx| {
                results_rx.poll_recv(cx)
            }));
            let limits = Limits {
                max_in_flight: 4,
                window_timeout: Duration::from_secs(2),
                idle_timeout: Duration::from_secs(30),
            };
            let session = Session::new(
                "fuzz".into(),
                plan,
                limits,
                Arc::new(Metrics::new()),
                CancellationToken::new(),
            );
            session.serve(&mut pipe, results, &bus).await;
        }
    }
    check_replies(&pipe.sent)
}

/// What the server sent must be protocol JSON, results in order, nothing after the close.
/// Returns the number of results.
fn check_replies(sent: &[Message]) -> usize {
    let mut last_seq = None;
    let mut results = 0;
    for (i, m) in sent.iter().enumerate() {
        match m {
            Message::Text(t) => {
                let msg: ServerMessage = serde_json::from_str(t.as_str()).unwrap_or_else(|e| {
                    panic!("server message {i} is not protocol JSON: {e}: {t}")
                });
                if let ServerMessage::Result(r) = msg {
                    assert!(
                        last_seq.is_none_or(|s| r.seq > s),
                        "results out of order: {} after {last_seq:?}",
                        r.seq
                    );
                    last_seq = Some(r.seq);
                    results += 1;
                }
            }
            Message::Close(_) => assert_eq!(i + 1, sent.len(), "messages after the close frame"),
            Message::Pong(_) | Message::Ping(_) => {}
            Message::Binary(_) => panic!("the server sent a binary message"),
        }
    }
    results
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn framing_round_trips() {
        let data = frame(&[(0, b"{}"), (1, &[1, 2, 3]), (3, b"")]);
        let m = messages(&data);
        assert_eq!(m.len(), 3);
        assert!(matches!(&m[0], Message::Text(t) if t.as_str() == "{}"));
        assert!(matches!(&m[1], Message::Binary(b) if b.as_ref() == [1, 2, 3]));
        assert!(matches!(&m[2], Message::Close(None)));
    }

    #[test]
    fn a_good_session_and_bad_starts_run_to_the_end() {
        let start = br#"{"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le","channels":1},"speakers":["00000000-0000-4000-8000-000000000001"]}"#;
        let audio = vec![0x10u8; 16_000 * 2 * 3];
        let mut parts: Vec<(u8, &[u8])> = vec![(0, start)];
        parts.extend(audio.chunks(6400).map(|c| (1u8, c)));
        parts.push((0, br#"{"type":"stop"}"#));
        // 3 s at hop 500 ms: windows at 0, 0.5, 1.0 s and the tail's.
        assert!(ws_session(&frame(&parts)) >= 3);
        assert_eq!(ws_session(&frame(&[(1, b"audio first")])), 0);
        assert_eq!(ws_session(&frame(&[(0, b"{not json")])), 0);
        let unknown = br#"{"type":"start","audio":{"sample_rate":16000,"encoding":"pcm_s16le","channels":1},"speakers":["nope"]}"#;
        assert_eq!(ws_session(&frame(&[(0, unknown)])), 0);
    }
}
