//! Diglett's models: the audio front end, the GE2E speaker encoder and Silero VAD v6 as burn
//! modules (burn-ndarray on the CPU), loudness, and scoring.
//!
//! # Layout
//! - [`frontend`]: decoding (WAV, FLAC, MP3, Ogg/Vorbis) to 16 kHz mono, volume normalisation,
//!   the 40-band mel spectrogram and Resemblyzer's partial windows.
//! - [`weights`]: the converted weights, compiled in, and their checked loading.
//! - [`encoder`]: the GE2E speaker encoder — the burn module (reference) and the fused CPU path
//!   used in production; window and utterance embeddings.
//! - [`vad`]: Silero VAD v6 — the burn module, a fast batched CPU path, streaming, speech segments.
//! - [`compute`]: the explicit compute-thread pool every inference call runs on.
//! - [`loudness`]: RMS level (dBFS) and EBU R128 loudness (LUFS), finite even for silence.
//! - [`scoring`]: cosine similarity and the speaker decision rule.
//! - [`turns`]: online smoothing of per-window labels into speaker turns (hysteresis, backdated).
//! - [`enroll`]: enrollment preprocessing (normalise, trim long silences with the VAD).
//! - [`eval`]: the speaker-verification protocol (EER, identification) on a folder of speech.
//! - [`diarization`]: who-spoke-when references (RTTM) and 10 ms frame scoring of label timelines.

pub mod compute;
pub mod diarization;
pub mod encoder;
pub mod enroll;
pub mod eval;
pub mod frontend;
pub mod loudness;
pub mod scoring;
pub mod turns;
pub mod vad;
pub mod weights;
