//! Writing WAV files: the one writer of the workspace (uploads the tools and clients build, test
//! fixtures made on the fly).

use diglett_schemas::pcm::to_i16;

/// The sample formats [`wav_bytes_with`] writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WavFormat {
    /// 16-bit integer PCM (format tag 1); samples through [`to_i16`].
    Pcm16,
    /// 32-bit IEEE float (format tag 3), samples as given.
    Float32,
}

/// The canonical 44-byte header of a WAV with `data_bytes` of interleaved samples: format `tag`
/// (1 integer PCM, 3 IEEE float), `bits` per sample. Tests write odd formats with it too.
pub fn header(rate: u32, channels: u16, tag: u16, bits: u16, data_bytes: u32) -> Vec<u8> {
    let block = channels * bits / 8;
    let mut out = Vec::with_capacity(44);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&data_bytes.saturating_add(36).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes());
    out.extend_from_slice(&tag.to_le_bytes());
    out.extend_from_slice(&channels.to_le_bytes());
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * u32::from(block)).to_le_bytes());
    out.extend_from_slice(&block.to_le_bytes());
    out.extend_from_slice(&bits.to_le_bytes());
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_bytes.to_le_bytes());
    out
}

/// A canonical 44-byte-header WAV of interleaved `samples` (full scale ±1) at `rate` Hz with
/// `channels` channels.
pub fn wav_bytes_with(samples: &[f32], rate: u32, channels: u16, format: WavFormat) -> Vec<u8> {
    let (tag, bytes_per_sample) = match format {
        WavFormat::Pcm16 => (1u16, 2u16),
        WavFormat::Float32 => (3u16, 4u16),
    };
    let data = u32::try_from(samples.len() * usize::from(bytes_per_sample)).unwrap_or(u32::MAX);
    let mut out = header(rate, channels, tag, bytes_per_sample * 8, data);
    out.reserve(samples.len() * usize::from(bytes_per_sample));
    for &x in samples {
        match format {
            WavFormat::Pcm16 => out.extend_from_slice(&to_i16(x).to_le_bytes()),
            WavFormat::Float32 => out.extend_from_slice(&x.to_le_bytes()),
        }
    }
    out
}

/// A 16-bit PCM WAV of interleaved `samples` at `rate` Hz with `channels` channels.
pub fn wav_bytes(samples: &[f32], rate: u32, channels: u16) -> Vec<u8> {
    wav_bytes_with(samples, rate, channels, WavFormat::Pcm16)
}

/// A 16 kHz mono 16-bit PCM WAV: what the service analyses.
pub fn wav_16k(samples: &[f32]) -> Vec<u8> {
    wav_bytes(samples, diglett_schemas::SAMPLE_RATE, 1)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::decode::{DecodeOptions, decode_audio};

    #[test]
    fn wav_round_trips_through_the_decoder() {
        let x: Vec<f32> = (0..16_000).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        for bytes in [
            wav_16k(&x),
            wav_bytes_with(&x, 16_000, 1, WavFormat::Float32),
        ] {
            let back = decode_audio(&bytes, &DecodeOptions::default()).unwrap();
            assert_eq!(back.len(), x.len());
            let err = crate::test_util::max_abs_diff(&x, &back);
            assert!(err < 1e-4, "{err}");
        }
        let stereo: Vec<f32> = x.iter().flat_map(|&s| [s, s]).collect();
        let back = decode_audio(&wav_bytes(&stereo, 16_000, 2), &DecodeOptions::default()).unwrap();
        assert_eq!(back.len(), x.len());
    }
}
