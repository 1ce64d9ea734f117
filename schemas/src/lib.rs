//! Every message Diglett sends over NATS, the subjects they travel on, and the codec.
//!
//! Messages are MessagePack maps with **named fields** ([`codec::encode`] uses
//! `rmp_serde::to_vec_named`), so a newer writer may add fields and an older reader ignores
//! them. Every message carries `v`, the schema version ([`SCHEMA_VERSION`]); it changes only on
//! an incompatible change, and readers reject any other value with
//! [`codec::CodecError::UnsupportedVersion`]. Audio travels as 16 kHz mono little-endian `i16`
//! bytes (MessagePack `bin`, via `serde_bytes`), never as a list of numbers.
//!
//! # Subjects
//! | subject | pattern | payload |
//! |---|---|---|
//! | [`subjects::EMBED`] `diglett.v1.embed` | request/reply, queue group [`subjects::WORKER_QUEUE_GROUP`] | [`EmbedRequest`] → [`EmbedReply`] |
//! | `<parts_subject>` (a client inbox, [`subjects::is_valid_parts_subject`]) | request/reply, worker → client | [`PartRequest`] → [`PcmPart`] |
//! | [`subjects::windows`] `diglett.v1.windows.<session>` | publish, queue group | [`WindowRequest`] |
//! | [`subjects::results`] `diglett.v1.results.<session>` | publish | [`WindowResult`] |
//! | [`subjects::events`] `diglett.v1.events.<session>` | publish | [`SessionEvent`] |
//!
//! # Layout
//! - [`subjects`]: subject names, builders and the queue group.
//! - [`codec`]: encode/decode with the version check.
//! - [`pcm`]: 16-bit PCM bytes ⇄ `f32` samples.
//! - [`embed`]: enrollment request/reply and the chunked-upload messages.
//! - [`window`]: a window to verify, and its result.
//! - [`event`]: session and speaker-turn events.
//! - [`pcm`] also holds the one `f32` → `i16` conversion.
//!
//! The chunked embed client over `async-nats` is `diglett_worker::embed_client`: this crate is
//! wire types only, so a client of the HTTP API can use it without a NATS client.

pub mod codec;
pub mod embed;
pub mod event;
pub mod pcm;
pub mod subjects;
pub mod window;

pub use codec::{CodecError, decode, encode};
pub use embed::{
    EmbedError, EmbedOutcome, EmbedReply, EmbedRequest, Enrollment, ErrorKind, MIN_PART_BYTES,
    PartRequest, PcmPart, Verdict,
};
pub use event::{EventKind, SessionEvent};
pub use window::{
    DecisionParams, EnrolledSpeaker, Label, Loudness, SPEECH_CHUNK_SAMPLES, SpeakerScore,
    SpeechProbability, Timing, WindowError, WindowRequest, WindowResult,
};

/// The schema version every message of this crate carries in its `v` field.
pub const SCHEMA_VERSION: u32 = 1;

/// Sample rate of all PCM on the bus (Hz): the models' rate.
pub const SAMPLE_RATE: u32 = 16_000;

/// Samples in one window: 1.6 s at 16 kHz, the speaker encoder's training window (160 mel
/// frames of 10 ms).
pub const WINDOW_SAMPLES: usize = 25_600;

/// Length of a speaker embedding (the GE2E encoder's output).
pub const EMBEDDING_DIM: usize = 256;

/// Length of a CAM++ speaker embedding.
pub const EMBEDDING_DIM_CAMPP: usize = 192;

/// The speaker encoder that made an embedding. Embeddings of different models are not
/// comparable: a session runs one model, and every enrolled speaker's embedding must be that
/// model's.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum SpeakerModel {
    /// Resemblyzer's GE2E (256-d): the default, and the only model of profiles made before
    /// models were versioned.
    #[default]
    Ge2e,
    /// 3D-Speaker's CAM++ zh-en common (192-d).
    Campp,
}

impl SpeakerModel {
    /// Every installed model, the default first.
    pub const ALL: [SpeakerModel; 2] = [SpeakerModel::Ge2e, SpeakerModel::Campp];

    /// Its embedding's length.
    pub fn dim(self) -> usize {
        match self {
            SpeakerModel::Ge2e => EMBEDDING_DIM,
            SpeakerModel::Campp => EMBEDDING_DIM_CAMPP,
        }
    }

    /// The wire name (`ge2e`, `campp`).
    pub fn as_str(self) -> &'static str {
        match self {
            SpeakerModel::Ge2e => "ge2e",
            SpeakerModel::Campp => "campp",
        }
    }

    /// The model of a wire name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == name)
    }

    /// Whether this is the default (for `skip_serializing_if`).
    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

/// `s` cut to at most `max` bytes on a character boundary: how a client's string is echoed into
/// an error message or a log line without letting it grow them.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}
