//! The REST bodies: what the gateway answers and a client reads, and the multipart forms as
//! the OpenAPI document describes them.

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// Most files in one multipart request.
pub const MAX_FILES: usize = 16;
/// Most profiles in one verification.
pub const MAX_VERIFY_SPEAKERS: usize = 16;
/// Longest profile name, and longest `name` of `/embed` (characters, i.e. Unicode scalar values).
pub const MAX_NAME_CHARS: usize = 256;
/// What a profile name must contain: a character that is not white space (Rust's
/// `char::is_whitespace`, the Unicode `White_Space` property, spelled out so that every regex
/// dialect reads it the same).
pub const NAME_PATTERN: &str =
    "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]";
/// Media types an audio part may declare (any is accepted: the content decides).
pub const AUDIO_MEDIA_TYPES: &str =
    "audio/wav, audio/x-wav, audio/flac, audio/mpeg, audio/ogg, application/octet-stream";

/// Multipart form of `POST /embed`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema for the OpenAPI document only: multipart is read field by field
pub struct EmbedForm {
    /// One audio file: WAV, FLAC, MP3 or Ogg/Vorbis, any rate 8–48 kHz, any channel count, at
    /// most `DIGLETT_MAX_AUDIO_SECONDS`. Bytes that are not such audio get 415 or 422.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// A name echoed back (0–256 characters).
    #[schema(max_length = 256, nullable = false)]
    name: Option<String>,
}

/// Multipart form of `POST /v1/speakers/{id}/samples`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema for the OpenAPI document only: multipart is read field by field
pub struct SamplesForm {
    /// 1 to 16 audio files of the speaker alone (repeat the field); formats as for `/embed`.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 16)]
    file: Vec<Vec<u8>>,
}

/// Multipart form of `POST /v1/speakers`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema for the OpenAPI document only: multipart is read field by field
pub struct CreateSpeakerForm {
    /// The speaker's display name: 1–256 characters, not all white space, kept as sent.
    #[schema(
        min_length = 1,
        max_length = 256,
        pattern = "[^\\t-\\r \\u0085\\u00a0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000]"
    )]
    name: String,
    /// 1 to 16 audio files of the speaker alone (repeat the field); formats as for `/embed`.
    #[schema(value_type = Vec<String>, format = Binary, min_items = 1, max_items = 16)]
    file: Vec<Vec<u8>>,
}

/// Multipart form of `POST /v1/verify`.
#[derive(Debug, ToSchema)]
#[allow(dead_code)] // a schema for the OpenAPI document only: multipart is read field by field
pub struct VerifyForm {
    /// The audio to verify; formats as for `/embed`.
    #[schema(value_type = String, format = Binary)]
    file: Vec<u8>,
    /// 1 to 16 profile ids to score against (repeat the field; a comma-separated list in one
    /// field, and the legacy field names `speaker` and `speaker_id`, are also read). An id that
    /// is no profile of the caller's gets 404.
    #[schema(value_type = Vec<uuid::Uuid>, min_items = 1, max_items = 16)]
    speakers: Vec<String>,
    /// Acceptance threshold on the cosine score, −1 to 1 (default 0.67).
    #[schema(minimum = -1.0, maximum = 1.0, nullable = false)]
    threshold: Option<f64>,
}

/// Response of `POST /embed` (the original Diglett's shape, plus `lufs` and `verdict`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EmbedResponse {
    /// The `name` field of the request, if any.
    pub name: Option<String>,
    /// The model that made `embedding`: `ge2e`.
    pub model: String,
    /// The voice signature for GE2E sessions (the default model): 256 floats, L2-normalised;
    /// `null` when no speech was found. Send it inline with `"model": "ge2e"` (or no model).
    pub embedding: Option<Vec<f32>>,
    /// The signature for CAM++ sessions (`options.model` `campp`): 192 floats, L2-normalised;
    /// `null` without speech. Send it inline with `"model": "campp"`.
    #[serde(default)]
    pub campp_embedding: Option<Vec<f32>>,
    /// Loudness of the recording in dBFS (RMS).
    pub volume: f32,
    /// Integrated loudness (EBU R128, LUFS).
    pub lufs: f32,
    /// Seconds of speech found by the VAD.
    pub speech_seconds: f32,
    /// Duration of the recording (s).
    pub duration: f32,
    /// `ok`, `no_voice`, `clipped`, `too_quiet` or `too_short` (less than 2 s of speech).
    pub verdict: String,
}

/// What one uploaded file gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SampleReport {
    /// The file's verdict.
    pub verdict: String,
    /// Its speech (s).
    pub speech_seconds: f32,
    /// Its duration (s).
    pub duration: f32,
    /// Its loudness (dBFS).
    pub volume: f32,
    /// Its integrated loudness (LUFS).
    pub lufs: f32,
}

/// A profile as returned by the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfileView {
    /// Profile id (UUID).
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Total speech enrolled (s).
    pub speech_seconds: f32,
    /// Recordings merged into the profile.
    pub samples: u32,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Last update (RFC 3339).
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The speaker models this profile can serve (`ge2e`, and `campp` for profiles enrolled
    /// since CAM++ was installed); a session of another model refuses it.
    #[serde(default)]
    pub models: Vec<String>,
    /// The GE2E signature (only with `?include=embedding`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub embedding: Option<Vec<f32>>,
    /// The CAM++ signature, if the profile has one (only with `?include=embedding`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campp_embedding: Option<Vec<f32>>,
}

/// Response of `POST /v1/speakers` and `POST /v1/speakers/{id}/samples`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EnrollResponse {
    /// Profile id (UUID).
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// Display name.
    pub name: String,
    /// Total speech in the profile (s).
    pub speech_seconds: f32,
    /// Verdict on this upload: `ok`, or why the profile may be weak (`too_short`, `clipped`,
    /// `too_quiet`).
    pub verdict: String,
    /// Creation time (RFC 3339).
    #[schema(format = DateTime)]
    pub created_at: String,
    /// Recordings merged into the profile so far.
    pub samples: u32,
    /// Per file of this upload.
    pub files: Vec<SampleReport>,
}

/// Response of `GET /v1/speakers`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ProfileList {
    /// The tenant's profiles, oldest first.
    pub speakers: Vec<ProfileView>,
}

/// One profile's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ScoreView {
    /// Profile id.
    #[schema(value_type = uuid::Uuid)]
    pub id: String,
    /// Its name.
    pub name: String,
    /// Cosine similarity of the recording to the profile.
    pub score: f32,
}

/// Response of `POST /v1/verify`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct VerifyResponse {
    /// `speaker` (a profile reached the threshold), `unknown`, or `silence` (no speech).
    pub label: String,
    /// The best profile at or above the threshold.
    #[schema(value_type = Option<uuid::Uuid>)]
    pub speaker_id: Option<String>,
    /// Its name.
    pub speaker: Option<String>,
    /// The best score.
    pub score: Option<f32>,
    /// The threshold applied.
    pub threshold: f32,
    /// Every profile's score, in request order.
    pub scores: Vec<ScoreView>,
    /// Speech in the recording (s).
    pub speech_seconds: f32,
}

/// Health and readiness.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct Health {
    /// `ok` or `unavailable`.
    pub status: String,
    /// Per dependency: `ok` or what is wrong.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<std::collections::BTreeMap<String, String>>,
}
