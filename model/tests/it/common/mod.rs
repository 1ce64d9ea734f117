//! Helpers shared by the parity tests: where `../shared` is, and an independent reader for the
//! fixtures' 16 kHz mono PCM16 WAVs (independent of the decoder under test on purpose).
#![allow(dead_code, clippy::unwrap_used)]

pub mod npy;

use std::path::{Path, PathBuf};

/// `../shared` next to the workspace (fixtures and speech corpus).
pub fn shared() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared")
}

/// The bytes of the `data` chunk of a 16 kHz mono PCM16 WAV. Walks the RIFF chunks (so LIST
/// and other chunks are skipped) and asserts the format.
pub fn pcm16_data(bytes: &[u8]) -> &[u8] {
    assert_eq!(&bytes[0..4], b"RIFF");
    assert_eq!(&bytes[8..12], b"WAVE");
    let u16_at = |i: usize| u16::from_le_bytes([bytes[i], bytes[i + 1]]);
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap());
    let mut at = 12;
    while at + 8 <= bytes.len() {
        let id = &bytes[at..at + 4];
        let size = u32_at(at + 4) as usize;
        let body = at + 8;
        if id == b"fmt " {
            assert_eq!(u16_at(body), 1, "PCM");
            assert_eq!(u16_at(body + 2), 1, "mono");
            assert_eq!(u32_at(body + 4), 16_000, "16 kHz");
            assert_eq!(u16_at(body + 14), 16, "16-bit");
        } else if id == b"data" {
            return &bytes[body..(body + size).min(bytes.len())];
        }
        // RIFF chunks are padded to an even length.
        at = body + size + (size & 1);
    }
    panic!("no data chunk")
}

/// A fixture WAV as floats `pcm / 32768` (the fixtures' convention).
pub fn read_wav(path: &Path) -> Vec<f32> {
    let bytes = std::fs::read(path).unwrap();
    pcm16_data(&bytes)
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// A JSON fixture.
pub fn load_json(path: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(path).unwrap()).unwrap()
}

/// An encoder fixture's `partials.wav_slices` (`[[start, stop], …]`) as sample ranges.
pub fn wav_slices(fixture: &serde_json::Value) -> Vec<std::ops::Range<usize>> {
    fixture["partials"]["wav_slices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            let s = s.as_array().unwrap();
            s[0].as_u64().unwrap() as usize..s[1].as_u64().unwrap() as usize
        })
        .collect()
}

/// The largest absolute difference between two equally long slices.
pub fn max_abs(got: &[f32], want: &[f32]) -> f32 {
    assert_eq!(got.len(), want.len());
    got.iter()
        .zip(want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0, f32::max)
}

/// Cosine similarity, accumulated in f64 so that it can resolve 1 − 1e-12.
pub use diglett_decision::scoring::cosine_f64 as cosine;
