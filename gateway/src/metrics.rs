//! The gateway's Prometheus metrics (`GET /metrics`, OpenMetrics text, prefix
//! `diglett_gateway_`); in embedded mode the in-process worker's `diglett_worker_*` follow.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

type Label1 = [(&'static str, &'static str); 1];
type Label2 = [(&'static str, String); 2];

/// Everything the gateway counts.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// HTTP responses by method and status.
    pub http_responses: Family<Label2, Counter>,
    /// Open WebSocket sessions.
    pub sessions_active: Gauge,
    /// Sessions started.
    pub sessions: Counter,
    /// Windows published to the workers (re-publications included).
    pub windows_published: Counter,
    /// Windows re-published after a timeout.
    pub windows_republished: Counter,
    /// Windows without a result, by reason (`overloaded`, `timeout`, `error`).
    pub windows_dropped: Family<Label1, Counter>,
    /// Results relayed to clients.
    pub results: Counter,
    /// Seconds from a window's last sample arriving to its result being sent.
    pub result_latency_seconds: Histogram,
    /// Smoothed speaker turns sent.
    pub turns: Counter,
    /// 16 kHz samples held by all sessions' window buffers (2 bytes each).
    pub buffered_samples: Gauge,
    /// Profiles created.
    pub profiles_created: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("diglett_gateway");
        let m = Self {
            http_responses: Family::default(),
            sessions_active: Gauge::default(),
            sessions: Counter::default(),
            windows_published: Counter::default(),
            windows_republished: Counter::default(),
            windows_dropped: Family::default(),
            results: Counter::default(),
            // 1 ms to ~16 s.
            result_latency_seconds: Histogram::new(exponential_buckets(1e-3, 2.0, 15)),
            turns: Counter::default(),
            buffered_samples: Gauge::default(),
            profiles_created: Counter::default(),
            registry: Registry::default(),
        };
        // One line per metric: its name is its field's.
        macro_rules! register {
            ($field:ident, $help:literal) => {
                registry.register(stringify!($field), $help, m.$field.clone())
            };
        }
        register!(http_responses, "HTTP responses, by method and status");
        register!(sessions_active, "Open WebSocket sessions");
        register!(sessions, "WebSocket sessions started");
        register!(windows_published, "Windows published to the workers");
        register!(windows_republished, "Windows re-published after a timeout");
        register!(windows_dropped, "Windows without a result, by reason");
        register!(results, "Window results sent to clients");
        register!(
            result_latency_seconds,
            "From a window's last sample arriving to its result being sent"
        );
        register!(turns, "Smoothed speaker turns sent");
        register!(
            buffered_samples,
            "16 kHz samples held in session window buffers (2 bytes each)"
        );
        register!(profiles_created, "Speaker profiles created");
        Self { registry, ..m }
    }

    /// Counts a dropped window.
    pub fn dropped(&self, reason: &'static str, n: u64) {
        self.windows_dropped
            .get_or_create(&[("reason", reason)])
            .inc_by(n);
    }

    /// The OpenMetrics text; `extra` (another registry's exposition) is appended before the
    /// single `# EOF`.
    pub fn render(&self, extra: Option<&str>) -> String {
        let mut out = String::new();
        if let Err(e) = encode(&mut out, &self.registry) {
            tracing::error!(error = %e, "cannot encode metrics");
        }
        if let Some(extra) = extra {
            let trimmed = out
                .trim_end()
                .strip_suffix("# EOF")
                .unwrap_or(&out)
                .to_owned();
            out = trimmed + extra;
        }
        out
    }
}
