//! Diglett's audio handling that needs no network: decoding uploads, resampling to 16 kHz,
//! levels and loudness, and WAV writing. The gateway, the worker, the model crate, the client
//! and the tools share it, so the client decodes exactly as the server does without linking
//! the networks.
//!
//! - [`decode`]: WAV, FLAC, MP3 or Ogg/Vorbis bytes → mono `f32` at 16 kHz, with hard limits.
//! - [`resample`]: the time-aligned windowed-sinc resampler, whole-signal and streaming.
//! - [`level`]: Resemblyzer's dBFS level and volume normalisation (the encoder's preprocessing).
//! - [`loudness`]: reported loudness: RMS dBFS (floored) and EBU R128 LUFS.
//! - [`wav`]: WAV writers.
//! - [`corpus`]: a folder of speakers' recordings, decoded.

pub mod corpus;
pub mod decode;
pub mod level;
pub mod loudness;
pub mod resample;
pub mod wav;

pub use decode::{DecodeError, DecodeOptions, decode_audio};
pub use level::{NORMALIZE_TARGET_DBFS, normalize_volume, rms_dbfs};
pub use resample::{StreamResampler, resample_to_16k};

/// `n` samples of a sine of `freq` Hz and amplitude `amp` at `rate` Hz: the test signal of the
/// workspace's signal-processing tests and benchmarks.
pub fn tone(freq: f64, rate: u32, n: usize, amp: f64) -> Vec<f32> {
    (0..n)
        .map(|i| {
            (amp * (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin()) as f32
        })
        .collect()
}

/// Helpers the unit tests of several modules share.
#[cfg(test)]
mod test_util {
    /// The largest absolute difference between two signals, sample by sample.
    pub fn max_abs_diff(a: &[f32], b: &[f32]) -> f32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    }
}
