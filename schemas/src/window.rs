//! Windows to verify (`diglett.v1.windows.<session>`) and their results
//! (`diglett.v1.results.<session>`).

use serde::{Deserialize, Serialize};

use crate::codec::current_version;
use crate::embed::ErrorKind;

/// One 1.6 s window of a session's audio, gateway → workers (queue group `diglett-workers`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRequest {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// Session id; equals the subject's last token.
    pub session: String,
    /// Sequence number of the window within the session (the gateway's count).
    pub seq: u64,
    /// Start of the window in stream time (s since the session started).
    pub start: f64,
    /// Always 16 000.
    pub sample_rate: u32,
    /// Exactly [`crate::WINDOW_SAMPLES`] samples of 16 kHz mono little-endian `i16`.
    #[serde(with = "serde_bytes")]
    pub pcm: Vec<u8>,
    /// The speaker model the session runs; every speaker's embedding is this model's.
    /// Absent (older gateways): GE2E.
    #[serde(default, skip_serializing_if = "crate::SpeakerModel::is_default")]
    pub model: crate::SpeakerModel,
    /// The session's enrolled speakers; scores come back in this order.
    pub speakers: Vec<EnrolledSpeaker>,
    /// Decision parameters; unset fields take the model's defaults.
    #[serde(default)]
    pub params: DecisionParams,
    /// When the sender stops waiting for this window's result (Unix ms). A worker that cannot
    /// finish the window by then answers [`ErrorKind::Expired`] without computing it, so an overloaded
    /// worker spends its time on windows someone still waits for. Absent: always computed.
    /// Assumes the sender's and the worker's clocks agree to well under the sender's timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_unix_ms: Option<u64>,
}

/// An enrolled speaker of a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnrolledSpeaker {
    /// Stable id (the gateway's).
    pub id: String,
    /// Display name.
    #[serde(default)]
    pub name: Option<String>,
    /// Enrollment embedding: [`crate::SpeakerModel::dim`] finite numbers of the request's model.
    pub embedding: Vec<f32>,
}

/// Overrides of the model's decision parameters (`diglett_model::scoring::DecisionParams`);
/// `None` keeps the model's data-chosen default.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct DecisionParams {
    /// Cosine score at or above which the best speaker is accepted.
    #[serde(default)]
    pub threshold: Option<f32>,
    /// Score-only overlap rule (`label_window`, kept for old writers): both of the two best
    /// scores at or above this. The worker uses the pair-aware rule below.
    #[serde(default)]
    pub overlap_min: Option<f32>,
    /// Score-only overlap rule: the two best scores within this margin.
    #[serde(default)]
    pub overlap_margin: Option<f32>,
    /// Pair-aware overlap rule: the weaker voice's weight over the stronger's in the fit of the
    /// window onto the two best enrolled embeddings must reach this.
    #[serde(default)]
    pub overlap_balance: Option<f32>,
    /// Pair-aware overlap rule: the window's cosine to the plane of those two embeddings must
    /// reach this.
    #[serde(default)]
    pub overlap_fit: Option<f32>,
    /// Windows with a smaller voiced fraction are `silence` (no encoder run).
    #[serde(default)]
    pub min_voiced: Option<f32>,
}

/// What a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Label {
    /// One enrolled speaker ([`WindowResult::speaker_id`]).
    Speaker,
    /// Speech, but no enrolled speaker reached the threshold.
    Unknown,
    /// Two enrolled speakers at once.
    Overlap,
    /// Too little speech; the encoder was not run.
    Silence,
    /// The window could not be processed; see [`WindowResult::error`].
    Error,
    /// A label this reader does not know (from a newer writer).
    #[serde(other)]
    Other,
}

impl Label {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Speaker => "speaker",
            Label::Unknown => "unknown",
            Label::Overlap => "overlap",
            Label::Silence => "silence",
            Label::Error => "error",
            Label::Other => "other",
        }
    }
}

/// Loudness of a stretch of audio.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Loudness {
    /// RMS level, dBFS (floored at −100).
    pub dbfs: f32,
    /// EBU R128 integrated loudness, LUFS (floored at −70).
    pub lufs: f32,
}

/// The VAD's view of a window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct SpeechProbability {
    /// Mean Silero speech probability over the window's 32 ms chunks.
    pub mean: f32,
    /// Fraction of 32 ms chunks with probability ≥ 0.5.
    pub voiced_fraction: f32,
}

/// One enrolled speaker's score.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerScore {
    /// [`EnrolledSpeaker::id`].
    pub id: String,
    /// Cosine similarity.
    pub score: f32,
}

/// Where the worker's time went.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    /// Time in the worker's inference batch (VAD, features, encoder, scoring), ms.
    pub processing_ms: f32,
    /// Time from the worker receiving the window to its batch starting, ms.
    pub queue_wait_ms: f32,
    /// Windows in the batch this one ran in.
    pub batch_size: u32,
}

/// Why a window has no label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowError {
    /// Machine-readable kind.
    pub kind: ErrorKind,
    /// For people.
    pub message: String,
}

/// Worker → `diglett.v1.results.<session>` (and the `DIGLETT_EVENTS` stream).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResult {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// Session id.
    pub session: String,
    /// [`WindowRequest::seq`] (0 when the request could not be read).
    pub seq: u64,
    /// Window start, stream time (s).
    pub start: f64,
    /// Window end, stream time (s): start + 1.6.
    pub end: f64,
    /// The decision.
    pub label: Label,
    /// The speaker for `speaker` and `overlap` (the better-scoring of the two).
    #[serde(default)]
    pub speaker_id: Option<String>,
    /// That speaker's name.
    #[serde(default)]
    pub speaker_name: Option<String>,
    /// The best score (none for `silence` and `error`).
    #[serde(default)]
    pub best_score: Option<f32>,
    /// Every enrolled speaker's score, in the request's order (empty for `silence`).
    #[serde(default)]
    pub scores: Vec<SpeakerScore>,
    /// VAD summary.
    pub speech: SpeechProbability,
    /// Loudness of the window as received.
    pub loudness: Loudness,
    /// Worker timings.
    pub timing: Timing,
    /// Set when `label` is `error`.
    #[serde(default)]
    pub error: Option<WindowError>,
    /// Silero's speech probability for each [`SPEECH_CHUNK_SAMPLES`]-sample chunk of the window,
    /// from its start (50 for a 1.6 s window; empty for `error` and from older writers). The
    /// gateway's frame timeline is cut from these.
    #[serde(default)]
    pub chunk_speech: Vec<f32>,
}

/// Samples per [`WindowResult::chunk_speech`] entry (Silero's 32 ms chunk at 16 kHz).
pub const SPEECH_CHUNK_SAMPLES: usize = 512;

impl WindowResult {
    /// `label` for window `seq` of `session`, one window long from `start`, and nothing else: no
    /// speaker, scores, speech, loudness, timing or error. The worker's error answers start from
    /// it, and tests use it as a stand-in answer.
    #[must_use]
    pub fn bare(session: &str, seq: u64, start: f64, label: Label) -> Self {
        Self {
            v: crate::SCHEMA_VERSION,
            session: session.to_owned(),
            seq,
            start,
            end: start + crate::WINDOW_SAMPLES as f64 / f64::from(crate::SAMPLE_RATE),
            label,
            speaker_id: None,
            speaker_name: None,
            best_score: None,
            scores: Vec::new(),
            speech: SpeechProbability::default(),
            loudness: Loudness::default(),
            timing: Timing::default(),
            error: None,
            chunk_speech: Vec::new(),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::tests::{ignores_unknown_field, round_trip};

    pub(crate) fn window() -> WindowRequest {
        WindowRequest {
            model: crate::SpeakerModel::Ge2e,
            v: 1,
            session: "s1".into(),
            seq: 7,
            start: 11.2,
            sample_rate: 16_000,
            pcm: vec![0; crate::WINDOW_SAMPLES * 2],
            speakers: vec![EnrolledSpeaker {
                id: "a".into(),
                name: Some("Ada".into()),
                embedding: vec![0.0625; 256],
            }],
            params: DecisionParams {
                threshold: Some(0.7),
                ..DecisionParams::default()
            },
            expires_at_unix_ms: Some(1_700_000_002_000),
        }
    }

    fn result(label: Label) -> WindowResult {
        WindowResult {
            v: 1,
            session: "s1".into(),
            seq: 7,
            start: 11.2,
            end: 12.8,
            label,
            speaker_id: Some("a".into()),
            speaker_name: None,
            best_score: Some(0.75),
            scores: vec![SpeakerScore {
                id: "a".into(),
                score: 0.75,
            }],
            speech: SpeechProbability {
                mean: 0.8,
                voiced_fraction: 0.9,
            },
            loudness: Loudness {
                dbfs: -20.0,
                lufs: -18.0,
            },
            timing: Timing {
                processing_ms: 3.5,
                queue_wait_ms: 0.25,
                batch_size: 4,
            },
            error: (label == Label::Error).then(|| WindowError {
                kind: ErrorKind::BadPcm,
                message: "short".into(),
            }),
            chunk_speech: vec![0.25; 50],
        }
    }

    #[test]
    fn round_trips() {
        let bytes = round_trip(&window());
        // 25 600 samples as one bin16: 0xc5 + big-endian length 51 200.
        assert!(bytes.windows(3).any(|w| w == [0xc5, 0xc8, 0]));
        assert!(bytes.len() < 53_000, "{}", bytes.len());
        for label in [
            Label::Speaker,
            Label::Unknown,
            Label::Overlap,
            Label::Silence,
            Label::Error,
        ] {
            round_trip(&result(label));
        }
    }

    #[test]
    fn unknown_fields_are_ignored() {
        ignores_unknown_field(&window());
        ignores_unknown_field(&result(Label::Speaker));
    }

    #[test]
    fn missing_params_take_defaults() {
        #[derive(Serialize)]
        struct Old {
            v: u32,
            session: &'static str,
            seq: u64,
            start: f64,
            sample_rate: u32,
            #[serde(with = "serde_bytes")]
            pcm: Vec<u8>,
            speakers: Vec<EnrolledSpeaker>,
        }
        let bytes = crate::encode(&Old {
            v: 1,
            session: "s",
            seq: 0,
            start: 0.0,
            sample_rate: 16_000,
            pcm: vec![0; 4],
            speakers: vec![],
        })
        .unwrap();
        let w: WindowRequest = crate::decode(&bytes).unwrap();
        assert_eq!(w.params, DecisionParams::default());
    }
}
