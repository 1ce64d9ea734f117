//! What the tools send: 16 kHz mono 16-bit PCM (the WebSocket's `pcm_s16le`) and WAV files of
//! it (REST uploads).

/// The service's analysis rate, and the rate every tool declares in `start`.
pub const SAMPLE_RATE: u32 = diglett_model::frontend::SAMPLE_RATE;

/// A sample of full scale ±1 as 16-bit PCM (rounded; the clamp makes the cast exact).
#[allow(clippy::cast_possible_truncation)]
pub fn pcm16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

/// `samples` (16 kHz mono, full scale ±1) as a 16-bit PCM WAV file.
pub fn wav_bytes(samples: &[f32]) -> Vec<u8> {
    let data = u32::try_from(samples.len() * 2).unwrap_or(u32::MAX);
    let header: [&[u8]; 13] = [
        b"RIFF",
        &(36 + data).to_le_bytes(),
        b"WAVE",
        b"fmt ",
        &16u32.to_le_bytes(), // fmt chunk size
        &1u16.to_le_bytes(),  // PCM
        &1u16.to_le_bytes(),  // mono
        &SAMPLE_RATE.to_le_bytes(),
        &(SAMPLE_RATE * 2).to_le_bytes(), // bytes per second
        &2u16.to_le_bytes(),              // block align
        &16u16.to_le_bytes(),             // bits per sample
        b"data",
        &data.to_le_bytes(),
    ];
    let mut out: Vec<u8> = header.concat();
    out.reserve(samples.len() * 2);
    for &x in samples {
        out.extend_from_slice(&pcm16(x).to_le_bytes());
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use diglett_model::frontend::{DecodeOptions, decode_audio};

    #[test]
    fn wav_round_trips_through_the_decoder() {
        let x: Vec<f32> = (0..16_000).map(|i| 0.5 * (i as f32 * 0.05).sin()).collect();
        let back = decode_audio(&wav_bytes(&x), &DecodeOptions::default()).unwrap();
        assert_eq!(back.len(), x.len());
        let err = x
            .iter()
            .zip(&back)
            .map(|(a, b)| (a - b).abs())
            .fold(0.0f32, f32::max);
        assert!(err < 1e-4, "{err}");
        assert_eq!(pcm16(2.0), i16::MAX);
        assert_eq!(pcm16(-2.0), i16::MIN);
    }
}
