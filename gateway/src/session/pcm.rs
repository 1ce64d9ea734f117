//! The client's PCM frames → 16 kHz mono `f32`.

use diglett_api::protocol::{self, AudioFormat, Encoding, close};
use diglett_audio::StreamResampler;

use super::Fatal;

/// Converts the client's PCM frames (any split, any encoding, rate and channel count the
/// protocol allows) to 16 kHz mono `f32`.
pub(crate) struct PcmDecoder {
    encoding: Encoding,
    channels: usize,
    /// Bytes of an incomplete sample frame, kept for the next binary message.
    carry: Vec<u8>,
    mono: Vec<f32>,
    resampler: StreamResampler,
}

impl PcmDecoder {
    /// A decoder for the `start` message's format, or the `unsupported_format` error.
    pub(crate) fn new(format: AudioFormat) -> Result<Self, Fatal> {
        let unsupported = |m: String| Fatal::new(close::UNSUPPORTED_DATA, "unsupported_format", m);
        if format.encoding == Encoding::Unsupported {
            return Err(unsupported(
                "encoding must be pcm_s16le or pcm_f32le".into(),
            ));
        }
        if !protocol::SAMPLE_RATE_RANGE.contains(&format.sample_rate) {
            return Err(unsupported(format!(
                "sample_rate {} is outside 8000-48000 Hz",
                format.sample_rate
            )));
        }
        if !(1..=2).contains(&format.channels) {
            return Err(unsupported(format!(
                "{} channels (1 or 2 are accepted)",
                format.channels
            )));
        }
        let resampler =
            StreamResampler::new(format.sample_rate).map_err(|e| unsupported(e.to_string()))?;
        Ok(Self {
            encoding: format.encoding,
            channels: usize::from(format.channels),
            carry: Vec::new(),
            mono: Vec::new(),
            resampler,
        })
    }

    /// Appends the 16 kHz samples computable after `bytes` to `out`. Non-finite float samples
    /// become 0 and others are clamped to ±1, so nothing a client sends reaches the models
    /// out of range.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<f32>) -> Result<(), String> {
        let width = self.encoding.bytes();
        let frame = width * self.channels;
        self.carry.extend_from_slice(bytes);
        let whole = self.carry.len() / frame * frame;
        self.mono.clear();
        for f in self.carry[..whole].chunks_exact(frame) {
            let mut sum = 0f32;
            for s in f.chunks_exact(width) {
                sum += match self.encoding {
                    Encoding::PcmS16le => f32::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0,
                    Encoding::PcmF32le | Encoding::Unsupported => {
                        let x = f32::from_le_bytes([s[0], s[1], s[2], s[3]]);
                        if x.is_finite() {
                            x.clamp(-1.0, 1.0)
                        } else {
                            0.0
                        }
                    }
                };
            }
            self.mono.push(sum / self.channels as f32);
        }
        self.carry.drain(..whole);
        self.resampler
            .push(&self.mono, out)
            .map_err(|e| e.to_string())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn format(encoding: Encoding, sample_rate: u32, channels: u16) -> AudioFormat {
        AudioFormat {
            encoding,
            sample_rate,
            channels,
        }
    }

    #[test]
    fn frames_split_anywhere_decode_the_same() {
        // 0.1 s of stereo f32 at 16 kHz: left 0.5, right -0.25 → mono 0.125.
        let mut bytes = Vec::new();
        for _ in 0..1600 {
            bytes.extend_from_slice(&0.5f32.to_le_bytes());
            bytes.extend_from_slice(&(-0.25f32).to_le_bytes());
        }
        let mut whole = Vec::new();
        PcmDecoder::new(format(Encoding::PcmF32le, 16_000, 2))
            .unwrap()
            .push(&bytes, &mut whole)
            .unwrap();
        assert_eq!(whole.len(), 1600);
        assert!(whole.iter().all(|&x| (x - 0.125).abs() < 1e-6));
        let mut d = PcmDecoder::new(format(Encoding::PcmF32le, 16_000, 2)).unwrap();
        let mut pieces = Vec::new();
        for chunk in bytes.chunks(7) {
            d.push(chunk, &mut pieces).unwrap();
        }
        assert_eq!(pieces, whole);
    }

    #[test]
    fn bad_formats_and_samples() {
        for f in [
            format(Encoding::Unsupported, 16_000, 1),
            format(Encoding::PcmS16le, 7_999, 1),
            format(Encoding::PcmS16le, 16_000, 3),
        ] {
            let e = PcmDecoder::new(f).err().unwrap();
            assert_eq!(
                (e.code, e.error),
                (close::UNSUPPORTED_DATA, "unsupported_format")
            );
        }
        let mut d = PcmDecoder::new(format(Encoding::PcmF32le, 16_000, 1)).unwrap();
        let mut out = Vec::new();
        let mut bytes = Vec::new();
        for x in [f32::NAN, f32::INFINITY, 3.0, -3.0] {
            bytes.extend_from_slice(&x.to_le_bytes());
        }
        d.push(&bytes, &mut out).unwrap();
        assert_eq!(out, [0.0, 0.0, 1.0, -1.0]);
    }
}
