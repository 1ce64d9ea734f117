//! Shared test support: models and speech loaded once per test binary, a worker on its own
//! `nats-server`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use diglett_schemas::{EnrolledSpeaker, WindowRequest, pcm};
use diglett_testkit::NatsServer;
use diglett_worker::{Config, Models, Ready};

pub use diglett_testkit::corpus::{enrollment_audio, speakers};

pub fn models() -> Arc<Models> {
    static MODELS: OnceLock<Arc<Models>> = OnceLock::new();
    MODELS
        .get_or_init(|| Arc::new(Models::load().expect("models")))
        .clone()
}

/// A test configuration: metrics on an ephemeral port, small timeouts.
pub fn config(extra: &[(&str, &str)]) -> Config {
    let mut env: HashMap<&str, &str> = HashMap::from([
        ("DIGLETT_COMPUTE_THREADS", "1"),
        ("DIGLETT_METRICS_ADDR", "127.0.0.1:0"),
        ("DIGLETT_PART_TIMEOUT_MS", "2000"),
        ("DIGLETT_SHUTDOWN_TIMEOUT_SECS", "20"),
    ]);
    env.extend(extra.iter().copied());
    Config::from_env(&env).expect("test config")
}

/// A worker running on its own server.
pub struct Harness {
    pub server: NatsServer,
    pub client: async_nats::Client,
    pub ready: Ready,
    worker: diglett_worker::Spawned,
}

pub async fn connect(url: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .max_reconnects(None)
        .connect(url)
        .await
        .expect("connect")
}

impl Harness {
    pub async fn start(config: Config) -> Self {
        Self::start_on(NatsServer::start(), config).await
    }

    pub async fn start_on(server: NatsServer, config: Config) -> Self {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        // As the binary connects: the configured subscription capacity applies.
        let worker_client = diglett_worker::connect_options(&config)
            .connect(server.url())
            .await
            .expect("worker connects");
        let client = connect(&server.url()).await;
        let mut worker = diglett_worker::spawn(worker_client, config, Some(models()));
        let ready = tokio::time::timeout(Duration::from_secs(30), &mut worker.ready)
            .await
            .expect("worker ready in time")
            .expect("worker started");
        Self {
            server,
            client,
            ready,
            worker,
        }
    }

    /// Signals shutdown and waits for `run` to return.
    pub async fn shutdown(&mut self) {
        if let Some(result) = self.worker.stop(Duration::from_secs(30)).await {
            result.expect("run");
        }
    }

    /// GET /metrics.
    pub async fn metrics(&self) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.ready.metrics_addr.expect("metrics on");
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        out
    }
}

/// A window request for `samples` (exactly 25 600).
pub fn window(
    session: &str,
    seq: u64,
    samples: &[f32],
    speakers: &[EnrolledSpeaker],
) -> WindowRequest {
    assert_eq!(samples.len(), 25_600);
    WindowRequest {
        model: diglett_schemas::SpeakerModel::Ge2e,
        v: 1,
        session: session.into(),
        seq,
        start: seq as f64 * 1.6,
        sample_rate: 16_000,
        pcm: pcm::from_f32(samples),
        speakers: speakers.to_vec(),
        params: Default::default(),
        expires_at_unix_ms: None,
    }
}

/// A sample of value `value` of a metric line starting with `prefix`, if present.
pub fn metric(text: &str, prefix: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}
