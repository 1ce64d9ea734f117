//! The shared speech corpus: `../shared` beside the checkout, and its `data/speakers`.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

pub use diglett_audio::corpus::Speaker;
use diglett_schemas::SAMPLE_RATE;

/// `../shared` beside the workspace (fixtures and speech corpus; read-only).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// Every speaker of `shared/data/speakers`, decoded to 16 kHz, loaded once per process.
pub fn speakers() -> &'static [Speaker] {
    static SPEAKERS: OnceLock<Vec<Speaker>> = OnceLock::new();
    SPEAKERS.get_or_init(|| {
        diglett_audio::corpus::load_speakers(&shared().join("data/speakers"))
            .unwrap_or_else(|e| panic!("../shared/data/speakers: {e}"))
    })
}

/// About `seconds` of a speaker's utterances from utterance `first` on, concatenated and cut
/// to exactly `seconds`; panics if the speaker has less than 90% of that left.
pub fn speech(speaker: usize, first: usize, seconds: f32) -> Vec<f32> {
    let want = (seconds * SAMPLE_RATE as f32) as usize;
    let s = &speakers()[speaker];
    let mut out = Vec::new();
    for (_, wav) in s.utterances.iter().skip(first) {
        if out.len() >= want {
            break;
        }
        out.extend_from_slice(wav);
    }
    out.truncate(want);
    assert!(
        out.len() as f32 >= 0.9 * want as f32,
        "speaker {speaker} has too little audio from utterance {first}"
    );
    out
}

/// The first ≥ `seconds` of a speaker's utterances concatenated (whole utterances), and the
/// index of the first utterance not used.
pub fn enrollment_audio(speaker: &Speaker, seconds: f32) -> (Vec<f32>, usize) {
    let mut out = Vec::new();
    for (i, (_, wav)) in speaker.utterances.iter().enumerate() {
        if out.len() as f32 >= seconds * SAMPLE_RATE as f32 {
            return (out, i);
        }
        out.extend_from_slice(wav);
    }
    (out, speaker.utterances.len())
}
