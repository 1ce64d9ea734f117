//! The error body of every REST error: `{"error": {"code", "message"}}`.

use serde::{Deserialize, Serialize};

/// The JSON body of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// Code and message of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ErrorDetail {
    /// Stable machine-readable code, e.g. `payload_too_large`, `audio_too_long`,
    /// `unsupported_audio`, `not_found`, `no_workers`, `worker_timeout`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
}
