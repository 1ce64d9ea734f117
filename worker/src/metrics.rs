//! Prometheus metrics and their HTTP endpoint (`GET /metrics`, OpenMetrics text).

use std::net::SocketAddr;
use std::sync::Arc;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// One `(name, value)` label.
type Label1 = [(&'static str, &'static str); 1];

/// Everything the worker counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Windows published, by label (`speaker`, `unknown`, `overlap`, `silence`, `error`).
    pub windows: Family<Label1, Counter>,
    /// Enrollments answered, by verdict, or `error`.
    pub enrollments: Family<Label1, Counter>,
    /// Bad messages and failures, by kind (the wire `ErrorKind` names, plus `publish`).
    pub errors: Family<Label1, Counter>,
    /// Windows per encoder batch (gated-out windows included).
    pub batch_size: Histogram,
    /// Seconds per window batch in the inference thread.
    pub window_inference_seconds: Histogram,
    /// Seconds per enrollment in the inference thread.
    pub embed_inference_seconds: Histogram,
    /// Seconds from a window's arrival to the start of its batch.
    pub queue_wait_seconds: Histogram,
    /// Windows accepted and not yet published.
    pub windows_in_flight: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric (prefix `diglett_worker_`).
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("diglett_worker");
        let windows = Family::<Label1, Counter>::default();
        let enrollments = Family::<Label1, Counter>::default();
        let errors = Family::<Label1, Counter>::default();
        let batch_size = Histogram::new(exponential_buckets(1.0, 2.0, 9));
        // 100 µs to ~3 s.
        let window_inference_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 16));
        let embed_inference_seconds = Histogram::new(exponential_buckets(1e-2, 2.0, 12));
        let queue_wait_seconds = Histogram::new(exponential_buckets(1e-4, 2.0, 16));
        let windows_in_flight = Gauge::default();
        // One line per metric: its name is its field's.
        macro_rules! register {
            ($field:ident, $help:literal) => {
                registry.register(stringify!($field), $help, $field.clone())
            };
        }
        register!(windows, "Windows processed, by label");
        register!(enrollments, "Enrollments processed, by verdict");
        register!(errors, "Errors, by kind");
        register!(batch_size, "Windows per inference batch");
        register!(window_inference_seconds, "Inference time per window batch");
        register!(embed_inference_seconds, "Inference time per enrollment");
        register!(
            queue_wait_seconds,
            "Time from a window's arrival to the start of its batch"
        );
        register!(windows_in_flight, "Windows accepted and not yet published");
        Self {
            registry,
            windows,
            enrollments,
            errors,
            batch_size,
            window_inference_seconds,
            embed_inference_seconds,
            queue_wait_seconds,
            windows_in_flight,
        }
    }

    /// Counts an error of `kind`.
    pub fn error(&self, kind: &'static str) {
        self.errors.get_or_create(&[("kind", kind)]).inc();
    }

    /// The OpenMetrics text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        out
    }
}

/// Serves `GET /metrics` on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    use axum::{Router, http::header, response::IntoResponse, routing::get};
    let app = Router::new().route(
        "/metrics",
        get(move || {
            let metrics = Arc::clone(&metrics);
            async move {
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    metrics.render(),
                )
                    .into_response()
            }
        }),
    );
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds the metrics listener (separately from [`serve`] so a bad address fails at start).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
