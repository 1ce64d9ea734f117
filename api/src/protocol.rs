//! WebSocket protocol v1 messages (JSON text frames; audio travels in binary frames).
//!
//! The README has a full example session. Both directions are `Serialize + Deserialize`, so
//! clients written in Rust (tests, `diglett-eval`, `diglett-load`) use the same types.

use std::collections::BTreeMap;

pub use diglett_schemas::SpeakerModel;
use serde::{Deserialize, Serialize};

/// Largest binary (audio) frame a client may send (bytes).
pub const MAX_AUDIO_FRAME_BYTES: usize = 256 * 1024;
/// Window length (ms).
pub const WINDOW_MS: u32 = 1600;
/// Default hop between windows (ms).
pub const DEFAULT_HOP_MS: u32 = 500;
/// Accepted hops (ms).
pub const HOP_MS_RANGE: std::ops::RangeInclusive<u32> = 250..=1600;
/// Speakers per session.
pub const SPEAKERS_RANGE: std::ops::RangeInclusive<usize> = 1..=16;
/// Accepted declared sample rates (Hz).
pub const SAMPLE_RATE_RANGE: std::ops::RangeInclusive<u32> = 8_000..=48_000;

/// WebSocket close codes used by the gateway.
pub mod close {
    /// Normal end (after `stop`, or after the idle timeout).
    pub const NORMAL: u16 = 1000;
    /// The server is shutting down.
    pub const GOING_AWAY: u16 = 1001;
    /// Data the server cannot accept: binary before `start`, unsupported audio format.
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// A message that does not parse or holds invalid values (bad `start`).
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// Policy: unknown or foreign speaker profile, too many sessions.
    pub const POLICY: u16 = 1008;
    /// A frame over [`super::MAX_AUDIO_FRAME_BYTES`].
    pub const TOO_BIG: u16 = 1009;
    /// The server failed.
    pub const INTERNAL: u16 = 1011;
}

/// Messages from the client.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ClientMessage {
    /// Opens the session.
    Start(Start),
    /// Ends the session after the remaining results.
    Stop,
}

/// The `start` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Start {
    /// The PCM format of the binary frames.
    pub audio: AudioFormat,
    /// Profile ids, or inline signatures.
    pub speakers: Vec<SpeakerRef>,
    /// Optional settings.
    #[serde(default)]
    pub options: Options,
}

/// Declared audio format.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AudioFormat {
    /// Hz, 8000 to 48000.
    pub sample_rate: u32,
    /// `pcm_s16le` or `pcm_f32le`.
    pub encoding: Encoding,
    /// 1 or 2 (interleaved; stereo is averaged to mono).
    #[serde(default = "one")]
    pub channels: u16,
}

impl AudioFormat {
    /// What Diglett's own clients send: 16 kHz mono 16-bit PCM (the models' rate, no resampling).
    pub const PCM_S16LE_16K_MONO: Self = Self {
        sample_rate: 16_000,
        encoding: Encoding::PcmS16le,
        channels: 1,
    };
}

fn one() -> u16 {
    1
}

/// Sample encodings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// Signed 16-bit little-endian.
    PcmS16le,
    /// 32-bit float little-endian, full scale ±1.
    PcmF32le,
    /// Anything else (refused with `unsupported_format` and close 1003).
    #[serde(other)]
    Unsupported,
}

impl Encoding {
    /// Bytes per sample.
    pub fn bytes(self) -> usize {
        match self {
            Self::PcmS16le => 2,
            Self::PcmF32le | Self::Unsupported => 4,
        }
    }
}

/// A speaker of the session: a stored profile's id, or a signature the client keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SpeakerRef {
    /// A profile id (`POST /v1/speakers`).
    Id(String),
    /// A client-held signature (`POST /embed`).
    Inline {
        /// Display name.
        name: String,
        /// The signature: 256 floats from GE2E (`/embed`'s `embedding`) or 192 from CAM++
        /// (`campp_embedding`).
        embedding: Vec<f32>,
        /// Optional id echoed in results (default: the name).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        id: Option<String>,
        /// The model that made `embedding` (default `ge2e`); it must be the session's.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        model: Option<SpeakerModel>,
    },
}

/// Optional session settings.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Options {
    /// Hop between windows (ms, 250–1600; default 500).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hop_ms: Option<u32>,
    /// Acceptance threshold on the cosine score (default 0.67).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f32>,
    /// VAD gate: a window with less voiced share is `silence` (default 0.10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_voiced: Option<f32>,
    /// `true` turns on the `overlap` label (off by default: the pair-fit rule is a weak
    /// detector and gives false overlaps between similar voices; see docs/decision.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub overlap: Option<bool>,
    /// How far behind the newest audio each result's `timeline` is decided (ms, 0–3000;
    /// default 500): more latency lets more overlapping windows vote on each frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u32>,
    /// The speaker model the session runs: `ge2e` (default) or `campp` (CAM++: better on
    /// far-field and meeting audio, ~4× the compute; docs/decision.md). Every speaker must have
    /// an embedding of this model: a profile enrolled before CAM++ was installed has none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<SpeakerModel>,
}

/// A speaker as the `ready` message lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SpeakerInfo {
    /// Profile id (or the inline speaker's id).
    pub id: String,
    /// The name used in `scores` and `speaker` (made unique within the session).
    pub name: String,
}

/// Messages from the server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The session is open; send audio.
    Ready {
        /// Session id (UUID); results are also on `diglett.v1.results.<session>`.
        session: String,
        /// Window length (ms).
        window_ms: u32,
        /// Hop (ms).
        hop_ms: u32,
        /// The session's speakers.
        speakers: Vec<SpeakerInfo>,
        /// The speaker model the session runs (absent from older servers: `ge2e`).
        #[serde(default)]
        model: SpeakerModel,
    },
    /// One window's result, in `seq` order.
    Result(WindowResultMsg),
    /// The smoothed speaker changed.
    Turn(TurnMsg),
    /// Something non-fatal (`overloaded`: windows were skipped; `timeout`: windows got no
    /// result).
    Warning {
        /// `overloaded` or `timeout`.
        code: String,
        /// Windows dropped by this event.
        dropped: u64,
        /// Windows dropped so far in the session.
        total_dropped: u64,
        /// For people.
        message: String,
    },
    /// The end of the session.
    Summary {
        /// Seconds of audio received.
        duration: f64,
        /// Seconds attributed to each speaker by the smoothed turns.
        talk_time: BTreeMap<String, f64>,
        /// Results sent.
        windows: u64,
        /// Windows without a result (skipped, timed out, or failed).
        dropped: u64,
        /// The frame timeline of the stream's last `latency_ms`, which no `result` decided.
        #[serde(default)]
        timeline: Vec<Segment>,
    },
    /// An error; fatal ones are followed by a close frame.
    Error {
        /// Machine-readable code.
        code: String,
        /// For people.
        message: String,
        /// The window it concerns, if any.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        seq: Option<u64>,
    },
}

/// The `result` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowResultMsg {
    /// Window number (0-based; window `seq` starts at `seq × hop`).
    pub seq: u64,
    /// Window start (s of stream audio).
    pub start: f64,
    /// Window end (s).
    pub end: f64,
    /// `speaker`, `unknown`, `overlap` or `silence`.
    pub label: String,
    /// The recognised speaker's name (`speaker`; for `overlap`, the louder of the two).
    pub speaker: Option<String>,
    /// Its id.
    pub speaker_id: Option<String>,
    /// Best cosine score.
    pub score: Option<f32>,
    /// Score per speaker name.
    pub scores: BTreeMap<String, f32>,
    /// Share of the window that is speech (VAD, 0–1).
    pub speech: f32,
    /// Window loudness (dBFS).
    pub volume: f32,
    /// Window loudness (LUFS).
    pub lufs: f32,
    /// Wall time from the window's last sample arriving at the gateway to this message (ms).
    pub latency_ms: f64,
    /// The frame timeline this result decides: runs at 10 ms resolution, from where the
    /// previous result's timeline ended to `latency_ms` (the session option) before this
    /// window's end. Consecutive results' timelines tile the stream; the summary holds the tail.
    /// Empty while the first windows are not yet that far in.
    #[serde(default)]
    pub timeline: Vec<Segment>,
}

/// One run of the frame timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Segment {
    /// Start (s of stream audio, a multiple of 0.01).
    pub start: f64,
    /// End (s).
    pub end: f64,
    /// `speaker`, `unknown`, `overlap` or `silence`.
    pub label: String,
    /// The speaker's name (`speaker`; for `overlap`, the better-scoring of the two).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker: Option<String>,
    /// Its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speaker_id: Option<String>,
}

/// The `turn` message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TurnMsg {
    /// The new turn's label.
    pub label: String,
    /// Its speaker's name (for `speaker`).
    pub speaker: Option<String>,
    /// Its speaker's id.
    pub speaker_id: Option<String>,
    /// When the turn began (s of stream audio).
    pub start: f64,
    /// The end of the span the confirming window speaks for: its centre + hop (s); its audio
    /// reaches 0.8 s − hop further. The turn lasts until the next `turn`.
    pub end: f64,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn start_parses_ids_and_inline() {
        let m: ClientMessage = serde_json::from_str(
            r#"{"type":"start","audio":{"sample_rate":44100,"encoding":"pcm_f32le","channels":2},
               "speakers":["a1",{"name":"bob","embedding":[0.5,0.5]}],"options":{"hop_ms":250}}"#,
        )
        .unwrap();
        let ClientMessage::Start(s) = m else { panic!() };
        assert_eq!(s.audio.encoding, Encoding::PcmF32le);
        assert_eq!(s.audio.channels, 2);
        assert_eq!(s.speakers[0], SpeakerRef::Id("a1".into()));
        assert!(matches!(&s.speakers[1], SpeakerRef::Inline { name, .. } if name == "bob"));
        assert_eq!(s.options.hop_ms, Some(250));
        let stop: ClientMessage = serde_json::from_str(r#"{"type":"stop"}"#).unwrap();
        assert_eq!(stop, ClientMessage::Stop);
    }

    #[test]
    fn server_messages_are_tagged() {
        let v = serde_json::to_value(ServerMessage::Warning {
            code: "overloaded".into(),
            dropped: 2,
            total_dropped: 5,
            message: "x".into(),
        })
        .unwrap();
        assert_eq!(v["type"], "warning");
        assert_eq!(v["dropped"], 2);
    }
}
