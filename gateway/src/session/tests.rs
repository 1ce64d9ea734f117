//! Whole sessions over an in-memory transport and a fake bus, on a paused clock: the loop's
//! windowing, ordered flush, retry, drop and overload paths without a socket or a worker.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};

use diglett_api::protocol::{AudioFormat, Encoding};
use diglett_decision::params::{SessionOptions, wire_params};
use diglett_schemas::{SpeakerScore, SpeechProbability, WINDOW_SAMPLES, WindowError};
use tokio::sync::mpsc;

use super::*;

/// The client's end of an in-memory WebSocket.
struct Client {
    to_server: mpsc::UnboundedSender<Message>,
    from_server: mpsc::UnboundedReceiver<Message>,
}

/// The server's end: a `Sink<Message>` + `Stream<Item = Result<Message, _>>`, as the loop
/// needs.
struct Pipe {
    rx: mpsc::UnboundedReceiver<Message>,
    tx: mpsc::UnboundedSender<Message>,
}

impl Stream for Pipe {
    type Item = Result<Message, Infallible>;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx).map(|m| m.map(Ok))
    }
}

impl Sink<Message> for Pipe {
    type Error = ();
    fn poll_ready(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn start_send(self: Pin<&mut Self>, item: Message) -> Result<(), ()> {
        self.tx.send(item).map_err(|_| ())
    }
    fn poll_flush(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
    fn poll_close(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<Result<(), ()>> {
        Poll::Ready(Ok(()))
    }
}

fn pipe() -> (Client, Pipe) {
    let (to_server, rx) = mpsc::unbounded_channel();
    let (tx, from_server) = mpsc::unbounded_channel();
    (
        Client {
            to_server,
            from_server,
        },
        Pipe { rx, tx },
    )
}

/// Records what the session publishes.
struct FakeBus {
    windows: mpsc::UnboundedSender<WindowRequest>,
    events: Mutex<Vec<SessionEvent>>,
}

impl SessionBus for FakeBus {
    fn publish_window(
        &self,
        req: WindowRequest,
    ) -> impl Future<Output = Result<(), BusError>> + Send {
        let _ = self.windows.send(req);
        std::future::ready(Ok(()))
    }
    fn publish_event(&self, event: SessionEvent) -> impl Future<Output = ()> + Send {
        self.events.lock().unwrap().push(event);
        std::future::ready(())
    }
}

struct Harness {
    client: Client,
    windows: mpsc::UnboundedReceiver<WindowRequest>,
    results: mpsc::UnboundedSender<WindowResult>,
    bus: Arc<FakeBus>,
    task: tokio::task::JoinHandle<()>,
}

fn speaker(id: &str, x: f32) -> EnrolledSpeaker {
    let mut embedding = vec![0.0; diglett_schemas::EMBEDDING_DIM];
    embedding[0] = 1.0;
    embedding[1] = x;
    EnrolledSpeaker {
        id: id.into(),
        name: Some(id.to_uppercase()),
        embedding,
    }
}

/// [`session`] once it has said `ready`.
async fn ready_session(max_in_flight: usize) -> Harness {
    let mut h = session(max_in_flight);
    assert!(matches!(
        h.next().await,
        Some(ServerMessage::Ready { hop_ms: 500, .. })
    ));
    h
}

/// A session with speakers `a` and `b`, 16 kHz mono s16 audio, hop 500 ms.
fn session(max_in_flight: usize) -> Harness {
    let plan = Plan {
        decoder: pcm::PcmDecoder::new(AudioFormat {
            sample_rate: 16_000,
            encoding: Encoding::PcmS16le,
            channels: 1,
        })
        .unwrap(),
        enrolled: vec![speaker("a", 0.0), speaker("b", 1.0)],
        model: diglett_schemas::SpeakerModel::Ge2e,
        params: wire_params(&SessionOptions::default()),
        latency_ms: diglett_decision::timeline::DEFAULT_LATENCY_MS,
        overlap: false,
        hop_ms: 500,
    };
    let limits = Limits {
        max_in_flight,
        window_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3600),
    };
    let s = Session::new(
        "s1".into(),
        plan,
        limits,
        Arc::new(Metrics::new()),
        CancellationToken::new(),
    );
    let (client, mut pipe) = pipe();
    let (windows_tx, windows) = mpsc::unbounded_channel();
    let (results, results_rx) = mpsc::unbounded_channel::<WindowResult>();
    let bus = Arc::new(FakeBus {
        windows: windows_tx,
        events: Mutex::new(Vec::new()),
    });
    let task_bus = Arc::clone(&bus);
    let task = tokio::spawn(async move {
        let results = tokio_stream_of(results_rx);
        s.serve(&mut pipe, results, &*task_bus).await;
    });
    Harness {
        client,
        windows,
        results,
        bus,
        task,
    }
}

fn tokio_stream_of(
    rx: mpsc::UnboundedReceiver<WindowResult>,
) -> Pin<Box<dyn Stream<Item = WindowResult> + Send>> {
    Box::pin(futures_util::stream::unfold(rx, |mut rx| async move {
        rx.recv().await.map(|r| (r, rx))
    }))
}

impl Harness {
    fn audio(&self, seconds: f32) {
        let n = (seconds * 16_000.0) as usize;
        let bytes: Vec<u8> = (0..n).flat_map(|_| 1000i16.to_le_bytes()).collect();
        self.client
            .to_server
            .send(Message::Binary(bytes.into()))
            .unwrap();
    }

    fn stop(&self) {
        self.client
            .to_server
            .send(Message::Text(r#"{"type":"stop"}"#.into()))
            .unwrap();
    }

    /// The next JSON message from the server; `None` for a close frame.
    async fn next(&mut self) -> Option<ServerMessage> {
        match self
            .client
            .from_server
            .recv()
            .await
            .expect("server message")
        {
            Message::Text(t) => Some(serde_json::from_str(t.as_str()).unwrap()),
            Message::Close(_) => None,
            m => panic!("unexpected {m:?}"),
        }
    }

    async fn window(&mut self) -> WindowRequest {
        self.windows.recv().await.expect("a published window")
    }

    fn answer(&self, w: &WindowRequest, label: Label, speaker: Option<&str>) {
        self.results
            .send(WindowResult {
                label,
                speaker_id: speaker.map(str::to_owned),
                best_score: Some(0.9),
                scores: vec![
                    SpeakerScore {
                        id: "a".into(),
                        score: 0.9,
                    },
                    SpeakerScore {
                        id: "b".into(),
                        score: 0.1,
                    },
                ],
                speech: SpeechProbability {
                    mean: 0.9,
                    voiced_fraction: 1.0,
                },
                ..result_of(w)
            })
            .unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn results_answered_out_of_order_reach_the_client_in_order() {
    let mut h = ready_session(8).await;
    // 2.6 s: windows at 0, 0.5 and 1.0 s.
    h.audio(2.6);
    let w: Vec<WindowRequest> = [h.window().await, h.window().await, h.window().await].into();
    assert_eq!(w.iter().map(|w| w.seq).collect::<Vec<_>>(), [0, 1, 2]);
    assert_eq!(w[2].start, 1.0);
    assert!(w.iter().all(|w| w.pcm.len() == 2 * WINDOW_SAMPLES));
    // Overlap off by default: the wire parameters say so.
    assert_eq!(w[0].params.overlap_fit, Some(f32::INFINITY));
    for x in w.iter().rev() {
        h.answer(x, Label::Speaker, Some("a"));
    }
    let mut seqs = Vec::new();
    let mut turns = 0;
    h.stop();
    loop {
        match h.next().await {
            Some(ServerMessage::Result(r)) => {
                assert_eq!(r.speaker.as_deref(), Some("A"));
                seqs.push(r.seq);
            }
            Some(ServerMessage::Turn(_)) => turns += 1,
            Some(ServerMessage::Summary {
                windows,
                dropped,
                duration,
                ..
            }) => {
                assert_eq!((windows, dropped), (3, 0));
                assert!((duration - 2.6).abs() < 1e-9);
            }
            None => break,
            Some(m) => panic!("unexpected {m:?}"),
        }
    }
    assert_eq!(seqs, [0, 1, 2]);
    assert!(turns >= 1, "speaker A's turn");
    h.task.await.unwrap();
    let events = h.bus.events.lock().unwrap();
    assert!(matches!(
        events.first().map(|e| &e.event),
        Some(EventKind::Started { .. })
    ));
    assert!(matches!(
        events.last().map(|e| &e.event),
        Some(EventKind::Ended { windows: 3, .. })
    ));
}

#[tokio::test(start_paused = true)]
async fn an_unanswered_window_is_republished_once_then_reported_dropped() {
    let mut h = ready_session(8).await;
    h.audio(1.6);
    let first = h.window().await;
    let t0 = Instant::now();
    // Nobody answers: after the timeout the same window is published again.
    let again = h.window().await;
    assert_eq!((again.seq, again.pcm == first.pcm), (0, true));
    assert!(Instant::now() - t0 >= Duration::from_secs(2));
    // An "expired in the queue" answer to the first copy does not end it: the retry may still
    // be answered.
    h.results
        .send(WindowResult {
            label: Label::Error,
            error: Some(WindowError {
                kind: diglett_schemas::ErrorKind::Expired,
                message: "late".into(),
            }),
            ..result_of(&first)
        })
        .unwrap();
    match h.next().await {
        Some(ServerMessage::Warning {
            code,
            dropped,
            total_dropped,
            ..
        }) => assert_eq!((code.as_str(), dropped, total_dropped), ("timeout", 1, 1)),
        m => panic!("expected a timeout warning, got {m:?}"),
    }
    assert!(Instant::now() - t0 >= Duration::from_secs(4));
    h.stop();
    match h.next().await {
        Some(ServerMessage::Summary {
            windows, dropped, ..
        }) => assert_eq!((windows, dropped), (0, 1)),
        m => panic!("expected the summary, got {m:?}"),
    }
    assert!(h.next().await.is_none(), "then the close frame");
}

fn result_of(w: &WindowRequest) -> WindowResult {
    WindowResult::bare(&w.session, w.seq, w.start, Label::Silence)
}

#[tokio::test(start_paused = true)]
async fn a_full_session_skips_one_window_per_hop_blocked() {
    let mut h = ready_session(1).await;
    // Three windows' worth; only one may be in flight.
    h.audio(2.6);
    let w0 = h.window().await;
    for total in [1, 2] {
        match h.next().await {
            Some(ServerMessage::Warning {
                code,
                total_dropped,
                ..
            }) => assert_eq!((code.as_str(), total_dropped), ("overloaded", total)),
            m => panic!("expected an overload warning, got {m:?}"),
        }
    }
    h.answer(&w0, Label::Silence, None);
    assert!(matches!(h.next().await, Some(ServerMessage::Result(r)) if r.seq == 0));
    h.stop();
    loop {
        match h.next().await {
            Some(ServerMessage::Summary {
                windows, dropped, ..
            }) => {
                assert_eq!((windows, dropped), (1, 2));
                break;
            }
            Some(ServerMessage::Turn(_)) => {}
            m => panic!("unexpected {m:?}"),
        }
    }
}
