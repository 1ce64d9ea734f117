//! Shared support for the gateway's tests: one gateway per test, in embedded mode (in-process
//! worker, redb store) or distributed mode (a real `nats-server`, a worker on it, Redis).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use diglett_gateway::{AppState, Config, StartOptions};
use diglett_testkit::NatsServer;
use diglett_worker::Models;
use futures_util::{SinkExt, StreamExt};
use http_body_util::BodyExt;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::Message;
use tower::ServiceExt;

pub use diglett_testkit::corpus::speech;
pub use diglett_testkit::redis_url;
pub use diglett_testkit::wav::wav_bytes as wav;

pub fn models() -> Arc<Models> {
    static MODELS: OnceLock<Arc<Models>> = OnceLock::new();
    MODELS
        .get_or_init(|| Arc::new(Models::load().expect("models")))
        .clone()
}

/// A multipart/form-data part.
pub enum Part<'a> {
    Text(&'a str, &'a str),
    File(&'a str, Vec<u8>),
}

pub const BOUNDARY: &str = "diglett-test-boundary-7MA4YWxkTrZu0gW";

pub fn multipart(parts: Vec<Part<'_>>) -> Vec<u8> {
    let mut body = Vec::new();
    for p in parts {
        body.extend_from_slice(format!("--{BOUNDARY}\r\n").as_bytes());
        match p {
            Part::Text(name, value) => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n")
                        .as_bytes(),
                );
            }
            Part::File(name, bytes) => {
                body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"a.wav\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                );
                body.extend_from_slice(&bytes);
                body.extend_from_slice(b"\r\n");
            }
        }
    }
    body.extend_from_slice(format!("--{BOUNDARY}--\r\n").as_bytes());
    body
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In-process worker, redb store.
    Embedded,
    /// nats-server + a worker on it + Redis.
    Distributed,
}

/// A worker running on its own nats-server.
pub struct Worker(diglett_worker::Spawned);

impl Worker {
    pub async fn start(url: &str) -> Self {
        let mut env: HashMap<&str, &str> = HashMap::from([
            ("DIGLETT_COMPUTE_THREADS", "1"),
            ("DIGLETT_METRICS_ADDR", "off"),
            ("DIGLETT_SHUTDOWN_TIMEOUT_SECS", "20"),
        ]);
        env.insert("DIGLETT_NATS_URL", url);
        let config = diglett_worker::Config::from_env(&env).unwrap();
        let client = diglett_worker::connect_options(&config)
            .connect(url)
            .await
            .expect("worker connects");
        let mut worker = diglett_worker::spawn(client, config, Some(models()));
        tokio::time::timeout(Duration::from_secs(60), &mut worker.ready)
            .await
            .expect("worker ready in time")
            .expect("worker started");
        Self(worker)
    }

    pub async fn stop(&mut self) {
        let _ = self.0.stop(Duration::from_secs(30)).await;
    }
}

/// An HTTP answer: status and JSON body (`null` when there is none).
pub type Answer = (StatusCode, serde_json::Value);

/// A gateway under test.
pub struct Gateway {
    pub mode: Mode,
    pub state: AppState,
    pub nats: Option<NatsServer>,
    pub worker: Option<Worker>,
    pub data_dir: Option<tempfile::TempDir>,
    pub redis_prefix: Option<String>,
    serving: Option<(SocketAddr, oneshot::Sender<()>, tokio::task::JoinHandle<()>)>,
}

pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

impl Gateway {
    /// A gateway in `mode` with extra environment variables.
    pub async fn start(mode: Mode, extra: &[(&str, &str)]) -> Self {
        Self::start_with(mode, extra, true).await
    }

    /// As [`Gateway::start`]; `with_worker: false` starts no worker in distributed mode.
    pub async fn start_with(mode: Mode, extra: &[(&str, &str)], with_worker: bool) -> Self {
        init_logging();
        let mut env: HashMap<String, String> = HashMap::from([
            ("DIGLETT_COMPUTE_THREADS".into(), "1".into()),
            ("DIGLETT_LISTEN".into(), "127.0.0.1:0".into()),
            ("DIGLETT_SHUTDOWN_TIMEOUT_SECS".into(), "20".into()),
        ]);
        let mut nats = None;
        let mut worker = None;
        let mut data_dir = None;
        let mut redis_prefix = None;
        match mode {
            Mode::Embedded => {
                let dir = tempfile::tempdir().unwrap();
                env.insert("DIGLETT_DATA_DIR".into(), dir.path().display().to_string());
                data_dir = Some(dir);
            }
            Mode::Distributed => {
                let server = NatsServer::start();
                env.insert("DIGLETT_NATS_URL".into(), server.url());
                env.insert("DIGLETT_REDIS_URL".into(), redis_url());
                let prefix = format!("diglett-test-{}:v1:", uuid::Uuid::new_v4().simple());
                env.insert("DIGLETT_REDIS_PREFIX".into(), prefix.clone());
                redis_prefix = Some(prefix);
                if with_worker {
                    worker = Some(Worker::start(&server.url()).await);
                }
                nats = Some(server);
            }
        }
        for (k, v) in extra {
            env.insert((*k).into(), (*v).into());
        }
        let config = Config::from_env(&env).expect("test config");
        let (state, _exit) = diglett_gateway::start(
            config,
            StartOptions {
                models: Some(models()),
            },
        )
        .await
        .expect("gateway starts");
        Self {
            mode,
            state,
            nats,
            worker,
            data_dir,
            redis_prefix,
            serving: None,
        }
    }

    pub fn nats_url(&self) -> String {
        self.nats.as_ref().expect("distributed mode").url()
    }

    /// Sends one request through the router.
    pub async fn call(&self, req: Request<Body>) -> Answer {
        let resp = diglett_gateway::router(self.state.clone())
            .oneshot(req)
            .await
            .unwrap();
        let status = resp.status();
        let bytes = resp.into_body().collect().await.unwrap().to_bytes();
        let json = if bytes.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                serde_json::Value::String(String::from_utf8_lossy(&bytes).into_owned())
            })
        };
        (status, json)
    }

    pub async fn get(&self, uri: &str, key: Option<&str>) -> Answer {
        self.bodyless(Request::get(uri), key).await
    }

    pub async fn delete(&self, uri: &str, key: Option<&str>) -> Answer {
        self.bodyless(Request::delete(uri), key).await
    }

    async fn bodyless(&self, req: axum::http::request::Builder, key: Option<&str>) -> Answer {
        self.call(with_key(req, key).body(Body::empty()).unwrap())
            .await
    }

    pub async fn post_form(&self, uri: &str, parts: Vec<Part<'_>>, key: Option<&str>) -> Answer {
        let req = with_key(Request::post(uri), key)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(Body::from(multipart(parts)))
            .unwrap();
        self.call(req).await
    }

    /// `POST /embed` of `audio` (a file's bytes), no key.
    pub async fn embed(&self, audio: Vec<u8>) -> Answer {
        self.post_form("/embed", vec![Part::File("file", audio)], None)
            .await
    }

    /// `POST /v1/verify` of `audio` (a file's bytes) against `speakers` (comma-separated ids).
    pub async fn verify(&self, audio: Vec<u8>, speakers: &str, key: Option<&str>) -> Answer {
        let parts = vec![Part::File("file", audio), Part::Text("speakers", speakers)];
        self.post_form("/v1/verify", parts, key).await
    }

    /// `POST /v1/speakers/{id}/samples` of `audio` (a file's bytes).
    pub async fn add_sample(&self, id: &str, audio: Vec<u8>, key: Option<&str>) -> Answer {
        let uri = format!("/v1/speakers/{id}/samples");
        self.post_form(&uri, vec![Part::File("file", audio)], key)
            .await
    }

    /// `POST /v1/speakers` of `audio` (a file's bytes) named `name`.
    pub async fn create(&self, name: &str, audio: Vec<u8>, key: Option<&str>) -> Answer {
        let parts = vec![Part::Text("name", name), Part::File("file", audio)];
        self.post_form("/v1/speakers", parts, key).await
    }

    /// Creates a profile from ~5 s of a data speaker; returns its id.
    pub async fn enroll(&self, name: &str, speaker: usize, key: Option<&str>) -> String {
        let audio = wav(&speech(speaker, 0, 5.0), 16_000, 1);
        let (status, body) = self.create(name, audio, key).await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        body["id"].as_str().unwrap().to_owned()
    }

    /// Serves over TCP; returns the address.
    pub async fn serve(&mut self) -> SocketAddr {
        if let Some((addr, ..)) = &self.serving {
            return *addr;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let state = self.state.clone();
        let task = tokio::spawn(async move {
            diglett_gateway::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
        });
        self.serving = Some((addr, tx, task));
        addr
    }

    /// Signals shutdown of [`Gateway::serve`] (sessions are told to finish).
    pub fn begin_shutdown(&mut self) -> Option<tokio::task::JoinHandle<()>> {
        let (_, tx, task) = self.serving.take()?;
        let _ = tx.send(());
        Some(task)
    }

    pub async fn stop(mut self) {
        if let Some(task) = self.begin_shutdown() {
            let _ = tokio::time::timeout(Duration::from_secs(30), task).await;
        }
        if let Some(w) = self.worker.as_mut() {
            w.stop().await;
        }
    }
}

pub fn with_key(
    b: axum::http::request::Builder,
    key: Option<&str>,
) -> axum::http::request::Builder {
    match key {
        Some(k) => b.header("authorization", format!("Bearer {k}")),
        None => b,
    }
}

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` (with query) on `addr`.
pub async fn ws_connect(addr: SocketAddr, path: &str) -> Ws {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}{path}"))
        .await
        .expect("websocket connects");
    ws
}

pub async fn send_json(ws: &mut Ws, v: serde_json::Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

/// What the server sent: JSON messages in order, then the close frame (code, reason) if any.
#[derive(Debug, Default)]
pub struct Transcript {
    pub messages: Vec<serde_json::Value>,
    pub close: Option<(u16, String)>,
}

impl Transcript {
    pub fn of_type(&self, t: &str) -> Vec<&serde_json::Value> {
        self.messages.iter().filter(|m| m["type"] == t).collect()
    }
}

/// Reads until the server closes (or `limit` passes).
pub async fn read_all(ws: &mut Ws, limit: Duration) -> Transcript {
    let mut t = Transcript::default();
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => panic!("no close within {limit:?}; got {:?}", t.messages.last()),
            Ok(None) | Ok(Some(Err(_))) => return t,
            Ok(Some(Ok(m))) => m,
        };
        match msg {
            Message::Text(s) => t.messages.push(serde_json::from_str(&s).unwrap()),
            Message::Close(f) => {
                t.close = f.map(|f| (u16::from(f.code), f.reason.to_string()));
                return t;
            }
            _ => {}
        }
    }
}

/// Reads the next JSON message.
pub async fn next_json(ws: &mut Ws) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(s))) => return serde_json::from_str(&s).unwrap(),
            Some(Ok(Message::Close(f))) => panic!("closed: {f:?}"),
            Some(Ok(_)) => {}
            other => panic!("socket ended: {other:?}"),
        }
    }
}

/// 16-bit little-endian PCM bytes.
pub fn s16(samples: &[f32]) -> Vec<u8> {
    samples
        .iter()
        .flat_map(|&x| ((x * 32768.0).round().clamp(-32768.0, 32767.0) as i16).to_le_bytes())
        .collect()
}

/// Streams `pcm` in frames of `frame` bytes, paced at `speed` × real time (`None`: no pacing).
pub async fn stream_pcm(
    ws: &mut Ws,
    pcm: &[u8],
    frame: usize,
    bytes_per_second: f64,
    speed: Option<f64>,
) {
    let start = tokio::time::Instant::now();
    let mut sent = 0usize;
    for chunk in pcm.chunks(frame) {
        ws.send(Message::Binary(chunk.to_vec().into()))
            .await
            .unwrap();
        sent += chunk.len();
        if let Some(speed) = speed {
            let due = Duration::from_secs_f64(sent as f64 / bytes_per_second / speed);
            tokio::time::sleep_until(start + due).await;
        }
    }
}

/// Runs a test body in both modes (each in its own test function).
#[macro_export]
macro_rules! both_modes {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn embedded() {
                    super::$name(super::common::Mode::Embedded).await;
                }
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn distributed() {
                    super::$name(super::common::Mode::Distributed).await;
                }
            }
        )*
    };
}
