//! Every REST error is `{"error": {"code", "message"}}` with the fitting status.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use diglett_api::error::{ErrorBody, ErrorDetail};

use crate::bus::BusError;
use crate::store::StoreError;

/// An error answered to a REST client.
#[derive(Debug, Clone)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// Stable machine-readable code (snake_case).
    pub code: &'static str,
    /// Human-readable explanation.
    pub message: String,
}

impl ApiError {
    /// An error with this status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// 400 `bad_request`.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404 `not_found` for a speaker profile.
    pub fn profile_not_found(id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no speaker profile {id:?}"),
        )
    }

    /// 500 `internal`.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        // A client's mistake is news, not a fault: `info`; the server's own failures `error`.
        if self.status.is_server_error() {
            tracing::error!(
                status = self.status.as_u16(),
                code = self.code,
                detail = %self.message,
                "request failed"
            );
        } else {
            tracing::info!(
                status = self.status.as_u16(),
                code = self.code,
                detail = %self.message,
                "request rejected"
            );
        }
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code.to_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer"),
            );
        }
        response
    }
}

impl From<BusError> for ApiError {
    fn from(e: BusError) -> Self {
        match e {
            BusError::NoWorkers => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "no_workers",
                "no worker is answering; try again later",
            ),
            BusError::Timeout => Self::new(
                StatusCode::GATEWAY_TIMEOUT,
                "worker_timeout",
                "the workers did not answer in time",
            ),
            BusError::Unavailable(m) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "bus_unavailable",
                format!("message bus unavailable: {m}"),
            ),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Unavailable(m) => Self::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "store_unavailable",
                format!("profile store unavailable: {m}"),
            ),
            StoreError::Invalid(m) => Self::bad_request(m),
            e @ StoreError::Corrupt { .. } => Self::internal(e.to_string()),
        }
    }
}
