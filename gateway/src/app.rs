//! The application: state, router, and serving with graceful shutdown.

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::auth::{self, Keys};
use crate::bus::Bus;
use crate::config::Config;
use crate::error::ApiError;
use crate::metrics::Metrics;
use crate::store::Store;
use crate::{openapi, rest, session, web};

/// What every handler shares.
#[derive(Debug, Clone)]
pub struct AppState {
    /// Configuration.
    pub config: Arc<Config>,
    /// The bus to the workers.
    pub bus: Bus,
    /// The profile store.
    pub store: Store,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Cancelled when the server shuts down: sessions finish and close with 1001.
    pub shutdown: CancellationToken,
    /// Open WebSocket sessions (waited for on shutdown).
    pub sessions: TaskTracker,
}

impl AppState {
    /// State around a bus and a store.
    pub fn new(config: Config, bus: Bus, store: Store) -> Self {
        Self {
            config: Arc::new(config),
            bus,
            store,
            metrics: Arc::new(Metrics::new()),
            shutdown: CancellationToken::new(),
            sessions: TaskTracker::new(),
        }
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(state.bus.worker_metrics().as_deref()),
    )
        .into_response()
}

async fn count_responses(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    state
        .metrics
        .http_responses
        .get_or_create(&[
            ("method", method),
            ("status", response.status().as_u16().to_string()),
        ])
        .inc();
    response
}

/// The id of one HTTP request (or of the upgrade that opened a session): the client's
/// `x-request-id` when it sent a usable one (1–128 visible ASCII characters), else a new UUID.
/// It is echoed in the response's `x-request-id` and named by every log line of the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl Default for RequestId {
    fn default() -> Self {
        Self(uuid::Uuid::new_v4().to_string())
    }
}

/// The request-id header.
pub const REQUEST_ID: &str = "x-request-id";

impl RequestId {
    /// The client's id if it is usable, else a fresh one.
    pub fn from_header(value: Option<&header::HeaderValue>) -> Self {
        value
            .and_then(|v| v.to_str().ok())
            .filter(|v| (1..=128).contains(&v.len()) && v.bytes().all(|b| b.is_ascii_graphic()))
            .map_or_else(Self::default, |v| Self(v.to_owned()))
    }
}

async fn request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId::from_header(req.headers().get(REQUEST_ID));
    let span = tracing::info_span!(
        "request",
        id = %id.0,
        method = %req.method(),
        path = %req.uri().path()
    );
    req.extensions_mut().insert(id.clone());
    let mut response = next.run(req).instrument(span).await;
    if let Ok(v) = header::HeaderValue::from_str(&id.0) {
        response.headers_mut().insert(REQUEST_ID, v);
    }
    response
}

async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The whole HTTP API.
pub fn router(state: AppState) -> Router {
    let keys = Keys::new(state.config.api_keys.clone());
    let protected = Router::new()
        .route("/embed", post(rest::embed))
        .route(
            "/v1/speakers",
            post(rest::create_speaker).get(rest::list_speakers),
        )
        .route(
            "/v1/speakers/{id}",
            get(rest::get_speaker).delete(rest::delete_speaker),
        )
        .route("/v1/speakers/{id}/samples", post(rest::add_samples))
        .route("/v1/verify", post(rest::verify))
        .route("/v1/stream", get(session::stream))
        .route("/ws/stream", get(session::stream))
        .layer(middleware::from_fn_with_state(keys, auth::require_key));
    let open = Router::new()
        .route("/healthz", get(rest::healthz))
        .route("/readyz", get(rest::readyz))
        .route("/metrics", get(metrics))
        .route("/openapi.json", get(openapi::document))
        .merge(web::routes());
    let limit = state.config.max_body_bytes;
    protected
        .merge(open)
        .fallback(not_found)
        .with_state(state.clone())
        .merge(openapi::docs_routes())
        .layer(DefaultBodyLimit::max(limit))
        .layer(middleware::from_fn_with_state(state, count_responses))
        .layer(middleware::from_fn(request_id))
}

/// Serves `app` on `listener` until `shutdown` resolves; then stops accepting, tells open
/// sessions to finish (they send their remaining results and close with 1001), and waits for
/// them at most `DIGLETT_SHUTDOWN_TIMEOUT_SECS`.
///
/// # Errors
/// The listener failed.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let app = router(state.clone());
    let token = state.shutdown.clone();
    let signal = async move {
        shutdown.await;
        token.cancel();
    };
    let server = axum::serve(listener, app).with_graceful_shutdown(signal);
    let result = server.await;
    state.sessions.close();
    let bound = state.config.shutdown_timeout;
    if tokio::time::timeout(bound, state.sessions.wait())
        .await
        .is_err()
    {
        tracing::warn!(?bound, "sessions did not finish in time; closing anyway");
    } else {
        tracing::info!("every session finished");
    }
    // Results still buffered in the NATS client go out before the process ends.
    if let Bus::Nats(client) = &state.bus {
        let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    }
    result
}
