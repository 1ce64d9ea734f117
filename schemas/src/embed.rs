//! Enrollment: `diglett.v1.embed` request/reply, and the chunked upload for long audio.
//!
//! # Chunked upload
//! A NATS message may not exceed the server's `max_payload` (1 MiB by default; the client sees
//! the server's value in `server_info()`), but 60 s of 16 kHz `i16` PCM is 1.92 MB. So:
//!
//! 1. The client splits the PCM into `parts` pieces of at most `max_payload − 64 KiB` and, but
//!    for the last, at least [`MIN_PART_BYTES`] (every part even and non-empty). It subscribes
//!    to a fresh inbox under `_INBOX.`, the *parts subject*
//!    ([`crate::subjects::is_valid_parts_subject`]), and answers each [`PartRequest`] there
//!    with the requested [`PcmPart`].
//! 2. It sends one [`EmbedRequest`] to `diglett.v1.embed` carrying part 0, `parts`,
//!    `total_samples` and the parts subject.
//! 3. The one worker that the queue group chose *pulls* parts 1.. in order by requesting them
//!    from the parts subject (so the worker sets the pace and holds the only state), checks
//!    every length, and replies to the original request with an [`EmbedReply`].
//!
//! Audio that fits in one message is a plain request/reply (`parts` = 1, no parts subject).
//! The worker gives up (`part_timeout`) when one part does not come within its part timeout
//! or all of them not within its overall deadline. If the client goes away, the worker's part
//! request times out and the work is dropped; if
//! the worker goes away, the client's request times out. `diglett_worker::embed_client::embed_request` does
//! the client side.

use serde::{Deserialize, Serialize};

use crate::codec::current_version;
use crate::window::Loudness;

/// Smallest part of a chunked upload but the last (bytes): the worker rejects `parts` above
/// `ceil(total bytes / MIN_PART_BYTES)`, so a client cannot make it do a round trip per sample.
pub const MIN_PART_BYTES: usize = 4096;

/// Asks for an enrollment embedding. Sent to [`crate::subjects::EMBED`] as a request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedRequest {
    /// Schema version ([`crate::SCHEMA_VERSION`]).
    #[serde(default = "current_version")]
    pub v: u32,
    /// Client-chosen id echoed in the reply and in every [`PartRequest`].
    pub request_id: String,
    /// Display name of the person enrolling, if known (echoed, not used by the model).
    #[serde(default)]
    pub name: Option<String>,
    /// Always 16 000: the only rate on the bus; present so a wrong sender is caught.
    pub sample_rate: u32,
    /// Samples in the whole recording (all parts together).
    pub total_samples: u64,
    /// Number of parts; this message carries part 0.
    pub parts: u32,
    /// Where the worker fetches parts 1.. ; `None` when `parts` is 1.
    #[serde(default)]
    pub parts_subject: Option<String>,
    /// Part 0: 16 kHz mono little-endian `i16`.
    #[serde(with = "serde_bytes")]
    pub pcm: Vec<u8>,
    /// When the client stops waiting for the reply (Unix time in ms, by the client's clock).
    /// A worker that takes the request later than this (plus a clock-skew allowance) answers
    /// `part_timeout` without fetching parts or running inference. `None`: no expiry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at_unix_ms: Option<u64>,
}

/// Milliseconds since the Unix epoch by this machine's clock (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// Worker → client on the parts subject: "send me part `index`".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartRequest {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// The [`EmbedRequest::request_id`] this part belongs to.
    pub request_id: String,
    /// Part index, 1 ≤ index < parts.
    pub index: u32,
}

/// Client → worker: one part of the recording.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PcmPart {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// The request this part belongs to.
    pub request_id: String,
    /// Part index.
    pub index: u32,
    /// 16 kHz mono little-endian `i16`.
    #[serde(with = "serde_bytes")]
    pub pcm: Vec<u8>,
}

/// The reply on `diglett.v1.embed`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedReply {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// The request's id (empty when the request could not be read at all).
    pub request_id: String,
    /// The enrollment, or why there is none.
    pub outcome: EmbedOutcome,
}

/// An enrollment or a typed error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EmbedOutcome {
    /// The audio was processed; see [`Enrollment::verdict`] for whether it is usable.
    Ok(Enrollment),
    /// The request was rejected.
    Error(EmbedError),
}

/// The result of processing enrollment audio.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Enrollment {
    /// Echo of [`EmbedRequest::name`].
    #[serde(default)]
    pub name: Option<String>,
    /// The L2-normalised 256-dim GE2E speaker embedding; `None` when there was no speech at all.
    #[serde(default)]
    pub embedding: Option<Vec<f32>>,
    /// The L2-normalised 192-dim CAM++ embedding of the same speech; `None` without speech or
    /// from a worker that predates versioned models.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub campp_embedding: Option<Vec<f32>>,
    /// Seconds of speech left after trimming long silences.
    pub speech_seconds: f32,
    /// Length of the received audio (s).
    pub duration_seconds: f32,
    /// Loudness of the received audio, before normalisation.
    pub loudness: Loudness,
    /// Share of samples at full scale (|x| ≥ 32767), in [0, 1].
    pub clipped_fraction: f32,
    /// Whether the recording is fit for enrollment.
    pub verdict: Verdict,
}

/// Is the enrollment recording usable? Checked in this order; the first that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Usable.
    Ok,
    /// The VAD found no speech.
    NoVoice,
    /// More than 1% of samples are at full scale.
    Clipped,
    /// The recording is below −50 dBFS.
    TooQuiet,
    /// Less than 2 s of speech.
    TooShort,
    /// A verdict this reader does not know (from a newer writer).
    #[serde(other)]
    Other,
}

impl Verdict {
    /// The wire name (`ok`, `too_short`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::NoVoice => "no_voice",
            Verdict::Clipped => "clipped",
            Verdict::TooQuiet => "too_quiet",
            Verdict::TooShort => "too_short",
            Verdict::Other => "other",
        }
    }
}

/// A typed error, for embed replies and window results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedError {
    /// What went wrong, machine-readable.
    pub kind: ErrorKind,
    /// For people; never contains internals beyond what the sender sent.
    pub message: String,
}

/// Kinds of errors on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    /// The payload is not a message of the expected type (garbage bytes, missing fields).
    Malformed,
    /// The message's `v` is not one this worker understands.
    UnsupportedVersion,
    /// The audio could not be decoded (gateway: unsupported or corrupt file).
    Undecodable,
    /// The audio is longer than the service accepts.
    TooLong,
    /// The audio is empty.
    Empty,
    /// PCM of the wrong length or rate (odd byte count, a window that is not 1.6 s, parts that
    /// do not add up).
    BadPcm,
    /// An enrolled speaker's embedding is not 256 finite numbers.
    BadEmbedding,
    /// Another field is out of range (session id, decision parameters, names).
    BadRequest,
    /// A part of a chunked upload could not be fetched in time.
    PartTimeout,
    /// The request's `expires_at_unix_ms` passed before the worker got to it (overload): not
    /// computed.
    Expired,
    /// The worker is shutting down or failed internally.
    Internal,
    /// A kind this reader does not know (from a newer writer).
    #[serde(other)]
    Other,
}

impl ErrorKind {
    /// The wire name (`malformed`, `bad_pcm`, …), also the `kind` label of the error metric.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Malformed => "malformed",
            ErrorKind::UnsupportedVersion => "unsupported_version",
            ErrorKind::Undecodable => "undecodable",
            ErrorKind::TooLong => "too_long",
            ErrorKind::Empty => "empty",
            ErrorKind::BadPcm => "bad_pcm",
            ErrorKind::BadEmbedding => "bad_embedding",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::PartTimeout => "part_timeout",
            ErrorKind::Expired => "expired",
            ErrorKind::Internal => "internal",
            ErrorKind::Other => "other",
        }
    }
}

impl From<&crate::CodecError> for ErrorKind {
    fn from(e: &crate::CodecError) -> Self {
        match e {
            crate::CodecError::UnsupportedVersion { .. } => ErrorKind::UnsupportedVersion,
            _ => ErrorKind::Malformed,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::tests::{ignores_unknown_field, round_trip};

    fn request() -> EmbedRequest {
        EmbedRequest {
            v: 1,
            request_id: "r1".into(),
            name: Some("Ada".into()),
            sample_rate: 16_000,
            total_samples: 3,
            parts: 1,
            parts_subject: None,
            pcm: vec![1, 0, 2, 0, 255, 255],
            expires_at_unix_ms: Some(1_700_000_000_000),
        }
    }

    fn enrollment() -> EmbedReply {
        EmbedReply {
            v: 1,
            request_id: "r1".into(),
            outcome: EmbedOutcome::Ok(Enrollment {
                name: Some("Ada".into()),
                embedding: Some(vec![0.5; 256]),
                campp_embedding: Some(vec![0.25; 192]),
                speech_seconds: 4.25,
                duration_seconds: 5.0,
                loudness: Loudness {
                    dbfs: -23.5,
                    lufs: -20.25,
                },
                clipped_fraction: 0.0,
                verdict: Verdict::Ok,
            }),
        }
    }

    #[test]
    fn round_trips() {
        let bytes = round_trip(&request());
        // PCM is a MessagePack bin (0xc4 + len), not an array of numbers.
        assert!(bytes.windows(2).any(|w| w == [0xc4, 6]));
        round_trip(&PartRequest {
            v: 1,
            request_id: "r1".into(),
            index: 2,
        });
        round_trip(&PcmPart {
            v: 1,
            request_id: "r1".into(),
            index: 2,
            pcm: vec![0; 10],
        });
        round_trip(&enrollment());
        for verdict in [
            Verdict::NoVoice,
            Verdict::Clipped,
            Verdict::TooQuiet,
            Verdict::TooShort,
        ] {
            let mut r = enrollment();
            if let EmbedOutcome::Ok(e) = &mut r.outcome {
                e.verdict = verdict;
                e.embedding = None;
            }
            round_trip(&r);
        }
        round_trip(&EmbedReply {
            v: 1,
            request_id: String::new(),
            outcome: EmbedOutcome::Error(EmbedError {
                kind: ErrorKind::TooLong,
                message: "too long".into(),
            }),
        });
    }

    #[test]
    fn unknown_fields_are_ignored() {
        ignores_unknown_field(&request());
        ignores_unknown_field(&enrollment());
        ignores_unknown_field(&PartRequest {
            v: 1,
            request_id: "r".into(),
            index: 1,
        });
    }

    #[test]
    fn unknown_enum_values_map_to_other() {
        #[derive(Serialize)]
        struct W {
            kind: &'static str,
            message: &'static str,
        }
        let bytes = crate::encode(&W {
            kind: "quota_exceeded",
            message: "m",
        })
        .unwrap();
        let e: EmbedError = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(e.kind, ErrorKind::Other);
        let v: Verdict = rmp_serde::from_slice(&crate::encode(&"muffled").unwrap()).unwrap();
        assert_eq!(v, Verdict::Other);
    }
}
