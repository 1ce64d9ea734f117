//! Diglett's networks: the GE2E speaker encoder, Silero VAD v6 and pyannote segmentation-3.0 as
//! burn modules (burn-ndarray on the CPU), their features and weights, and the window pipeline that runs them.
//!
//! Audio decoding, resampling and levels are `diglett-audio`'s; every decision taken from the
//! networks' numbers is `diglett-decision`'s; the evaluation protocols are `diglett-tools`'.
//!
//! # Layout
//! - [`frontend`]: the encoder's features: the 40-band mel spectrogram and Resemblyzer's partial
//!   windows.
//! - [`weights`]: the converted weights, compiled in, and their checked loading.
//! - [`encoder`]: the GE2E speaker encoder — the burn module (reference) and the fused CPU path
//!   used in production; window and utterance embeddings.
//! - [`vad`]: Silero VAD v6 — the burn module, a fast batched CPU path, streaming, speech segments.
//! - [`campp`]: CAM++ (3D-Speaker) — Kaldi fbank and the burn module (192-d embeddings).
//! - [`segmentation`]: pyannote segmentation-3.0 — who speaks in each 17 ms frame of a 10 s chunk
//!   (powerset of ≤ 2 of 3 local speakers); the burn module and the plain-Rust path that serves.
//! - [`compute`]: the explicit compute-thread pool every inference call runs on.
//! - [`enroll`]: enrollment preprocessing (normalise, trim long silences with the VAD).
//! - [`pipeline`]: one window and one enrollment from samples to a label / an embedding, behind
//!   the [`pipeline::SpeakerModel`] trait.

/// Compile-time proof that each of the types can be shared by the worker's threads (`Send +
/// Sync`): a model loaded once serves every thread.
macro_rules! assert_send_sync {
    ($($t:ty),+ $(,)?) => {
        const _: fn() = || {
            fn assert_send_sync<T: Send + Sync>() {}
            $(assert_send_sync::<$t>();)+
        };
    };
}

pub mod campp;
pub mod compute;
pub mod encoder;
pub mod enroll;
pub mod frontend;
pub mod pipeline;
pub mod segmentation;
pub mod vad;
pub mod weights;
