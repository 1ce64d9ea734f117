//! Enrollment audio: Resemblyzer's `preprocess_wav` with the Silero VAD in place of webrtcvad.
//!
//! A user's ~5 s recording is volume-normalised to −30 dBFS (increase only), its long silences
//! are cut out with the VAD, and what remains is embedded with
//! [`Encoder::embed_utterance`](crate::encoder::Encoder::embed_utterance). Resemblyzer trimmed
//! with webrtcvad (30 ms frames, a moving average over 8 and a dilation of 6 frames, so pauses
//! shorter than roughly a third of a second survive); [`TRIM_PARAMS`] keeps that behaviour with
//! Silero's probabilities. It need not match webrtcvad bit for bit.

use std::ops::Range;

use crate::compute::Compute;
use crate::encoder::{Encoder, UtteranceEmbedding};
use crate::vad::{self, Vad, VadParams};
use diglett_audio::level::{NORMALIZE_TARGET_DBFS, normalize_volume};
use diglett_schemas::SAMPLE_RATE;

/// Trimming parameters: silences of 300 ms or more are cut (shorter pauses are part of how a
/// person speaks, and Resemblyzer kept them too), and 90 ms of context is kept around speech
/// (≈ Resemblyzer's dilation of 3 webrtcvad frames per side).
pub const TRIM_PARAMS: VadParams = VadParams {
    threshold: 0.5,
    neg_threshold: 0.35,
    min_speech_ms: 250,
    min_silence_ms: 300,
    speech_pad_ms: 90,
};

/// Enrollment audio after preprocessing.
#[derive(Debug, Clone)]
pub struct Preprocessed {
    /// Volume-normalised speech with long silences removed, 16 kHz.
    pub speech: Vec<f32>,
    /// The kept segments, in samples of the input.
    pub segments: Vec<Range<usize>>,
    /// Seconds of audio kept.
    pub speech_seconds: f32,
}

/// Normalises the volume of `wav` (16 kHz mono) and cuts its long silences with the VAD.
pub fn preprocess(vad: &Vad, compute: &Compute, wav: &[f32]) -> Preprocessed {
    let mut normalised = wav.to_vec();
    normalize_volume(&mut normalised, NORMALIZE_TARGET_DBFS, true);
    let probs = vad.probabilities(compute, &normalised);
    let segments = vad::speech_segments(&probs, &TRIM_PARAMS);
    let speech = vad::trim_silences(&normalised, &segments);
    let speech_seconds = speech.len() as f32 / SAMPLE_RATE as f32;
    Preprocessed {
        speech,
        segments,
        speech_seconds,
    }
}

/// Preprocesses `wav` and embeds the speech that remains; `None` when the VAD found no speech.
pub fn embed_enrollment(
    encoder: &Encoder,
    vad: &Vad,
    compute: &Compute,
    wav: &[f32],
) -> (Preprocessed, Option<UtteranceEmbedding>) {
    let pre = preprocess(vad, compute, wav);
    let embedding = (!pre.speech.is_empty()).then(|| encoder.embed_utterance(compute, &pre.speech));
    (pre, embedding)
}
