//! Parity of the front end with the original Python pipeline (Resemblyzer 0.1.4 + librosa 0.11),
//! against every reference in `../shared/fixtures/encoder/`: decoding, volume normalisation,
//! the mel spectrogram (first five frames and frame count) and the partial windows.
#![allow(clippy::unwrap_used)]

use crate::common;
use std::path::{Path, PathBuf};

use diglett_audio::{DecodeOptions, NORMALIZE_TARGET_DBFS, decode_audio, normalize_volume};
use diglett_model::frontend::{
    HOP_LENGTH, MIN_COVERAGE, MelSpectrogram, N_FFT, N_MELS, PARTIAL_FRAMES, PARTIAL_RATE,
    compute_partial_slices,
};
use diglett_schemas::pcm::to_f32 as pcm16_to_f32;
use serde_json::Value;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/encoder");

/// Relative tolerance per mel element, as the task states it. What we measure is ~3e-7 (f32
/// rounding in librosa's float32 STFT and einsum; we compute in f64 and round once).
const MEL_REL_TOL: f64 = 1e-4;

/// Absolute floor: only there so that a band that is exactly 0 in the reference (possible in
/// principle for digital silence) cannot fail on a relative test. It is 100x below the smallest
/// reference value in the fixtures (1.7e-10), so it never hides a real relative error.
const MEL_ABS_FLOOR: f64 = 1e-12;

fn fixtures() -> Vec<PathBuf> {
    let mut paths: Vec<PathBuf> = std::fs::read_dir(FIXTURES)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert_eq!(
        paths.len(),
        4,
        "expected the four encoder fixtures in {FIXTURES}"
    );
    paths
}

/// The audio file a fixture names, relative to the fixture's directory.
fn audio_bytes(fixture: &Path, json: &Value) -> Vec<u8> {
    let rel = json["audio"].as_str().unwrap();
    std::fs::read(fixture.parent().unwrap().join(rel)).unwrap()
}

#[test]
fn fixtures_state_the_front_end_we_implement() {
    for path in fixtures() {
        let json = common::load_json(&path);
        assert_eq!(json["sample_rate"], 16_000);
        assert_eq!(json["pcm_to_float"], "sample / 32768.0");
        assert_eq!(
            json["normalize"]["target_dbfs"].as_f64().unwrap(),
            f64::from(NORMALIZE_TARGET_DBFS)
        );
        assert_eq!(json["normalize"]["increase_only"], true);
        let mel = &json["mel"];
        assert_eq!(mel["n_fft"], N_FFT);
        assert_eq!(mel["hop"], HOP_LENGTH);
        assert_eq!(mel["n_mels"], N_MELS);
        assert_eq!(mel["center"], true);
        assert_eq!(mel["power"].as_f64().unwrap(), 2.0);
        assert_eq!(mel["mel_scale"], "slaney");
        assert_eq!(mel["mel_norm"], "slaney");
        assert_eq!(mel["log"], false);
        let partials = &json["partials"];
        assert_eq!(
            partials["rate_per_s"].as_f64().unwrap() as f32,
            PARTIAL_RATE
        );
        assert_eq!(
            partials["min_coverage"].as_f64().unwrap() as f32,
            MIN_COVERAGE
        );
        assert_eq!(partials["n_frames"], PARTIAL_FRAMES);
    }
}

#[test]
fn decoded_fixture_audio_is_pcm_over_32768() {
    for path in fixtures() {
        let json = common::load_json(&path);
        let bytes = audio_bytes(&path, &json);
        let decoded = decode_audio(&bytes, &DecodeOptions::default()).unwrap();
        let expected = pcm16_to_f32(common::pcm16_data(&bytes));
        assert_eq!(
            decoded.len(),
            json["n_samples"].as_u64().unwrap() as usize,
            "{path:?}"
        );
        // Bit-exact: no resampling at 16 kHz, and symphonia converts i16 as x / 32768.
        assert!(
            decoded == expected,
            "{path:?}: decoded samples differ from pcm / 32768"
        );
    }
}

#[test]
fn mel_frames_match_librosa() {
    let mel = MelSpectrogram::new();
    let mut max_rel = 0.0f64;
    for path in fixtures() {
        let json = common::load_json(&path);
        let mut wav = decode_audio(&audio_bytes(&path, &json), &DecodeOptions::default()).unwrap();
        normalize_volume(&mut wav, NORMALIZE_TARGET_DBFS, true);
        let frames = mel.compute(&wav);
        let n_frames = json["mel_n_frames"].as_u64().unwrap() as usize;
        assert_eq!(MelSpectrogram::n_frames(wav.len()), n_frames, "{path:?}");
        assert_eq!(frames.len(), n_frames * N_MELS, "{path:?}");

        let reference = json["mel_frames_0_to_4"].as_array().unwrap();
        assert_eq!(reference.len(), 5);
        let mut file_max = 0.0f64;
        for (t, row) in reference.iter().enumerate() {
            let row = row.as_array().unwrap();
            assert_eq!(row.len(), N_MELS);
            for (m, want) in row.iter().enumerate() {
                let want = want.as_f64().unwrap();
                let have = f64::from(frames[t * N_MELS + m]);
                let err = (have - want).abs();
                assert!(
                    err <= MEL_REL_TOL * want.abs() + MEL_ABS_FLOOR,
                    "{path:?} frame {t} band {m}: {have} vs {want}"
                );
                if want != 0.0 {
                    file_max = file_max.max(err / want.abs());
                }
            }
        }
        eprintln!("{}: max mel relative error {file_max:.3e}", path.display());
        max_rel = max_rel.max(file_max);

        // Resemblyzer zero-pads the wav to the last window's end before its mel spectrogram;
        // that must not move the first frames.
        let (wav_slices, _) = compute_partial_slices(wav.len(), PARTIAL_RATE, MIN_COVERAGE);
        let mut padded = wav.clone();
        padded.resize(wav_slices.last().unwrap().end.max(wav.len()), 0.0);
        let padded_frames = mel.compute(&padded);
        assert_eq!(padded_frames[..5 * N_MELS], frames[..5 * N_MELS]);
    }
    eprintln!("max mel relative error over all fixtures: {max_rel:.3e}");
}

#[test]
fn partial_slices_match_resemblyzer() {
    for path in fixtures() {
        let json = common::load_json(&path);
        let n_samples = json["n_samples"].as_u64().unwrap() as usize;
        let expected = common::wav_slices(&json);
        let (wav_slices, mel_slices) =
            compute_partial_slices(n_samples, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav_slices, expected, "{path:?}");
        assert_eq!(mel_slices.len(), expected.len());
        assert_eq!(
            json["partials"]["embeddings"].as_array().unwrap().len(),
            expected.len(),
            "one embedding per window"
        );
    }
}
