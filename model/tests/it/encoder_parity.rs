//! Parity of the speaker encoder with Resemblyzer 0.1.4 (`shared/fixtures/encoder/*.json`), and
//! agreement of the fused CPU path with the burn reference module.
//!
//! Tolerances: cosine ≥ 0.9999 against the PyTorch reference, and cosine ≥ 0.99999 with max-abs
//! ≤ 5e-4 between our two implementations. The fused path differs from burn by design: a
//! rational tanh/sigmoid approximation (~1e-7 abs error), f32 sums in another order, and, on
//! AVX-512 CPUs, `W_hh` stored in half precision (observed: 1 − cosine ≈ 1e-7, max-abs ≈ 1e-4).
#![allow(clippy::unwrap_used)]

use crate::common;
#[path = "../../benches/common/mels.rs"]
mod mels;
use mels::mel_like;
use std::sync::{Arc, OnceLock};

use diglett_audio::normalize_volume;
use diglett_model::compute::Compute;
use diglett_model::encoder::{
    Backend, EMBEDDING_DIM, Embedding, Encoder, FusedEncoder, Kernel, N_MELS, WINDOW_FRAMES,
};
use diglett_model::frontend::MelSpectrogram;
use serde_json::Value;

/// Resemblyzer's `audio_norm_target_dBFS`, increase only (its `preprocess_wav`).
const TARGET_DBFS: f32 = -30.0;
const MIN_COSINE_REFERENCE: f64 = 0.9999;
const MIN_COSINE_INTERNAL: f64 = 0.99999;
const MAX_ABS_INTERNAL: f32 = 5e-4;

fn encoder() -> &'static Encoder {
    static ENCODER: OnceLock<Encoder> = OnceLock::new();
    ENCODER.get_or_init(|| Encoder::pretrained().unwrap())
}

fn floats(v: &Value) -> Vec<f32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap() as f32)
        .collect()
}

struct Fixture {
    name: String,
    json: Value,
    /// Volume-normalised input.
    wav: Vec<f32>,
}

fn fixtures() -> Vec<Fixture> {
    let dir = common::shared().join("fixtures/encoder");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no fixtures in {}", dir.display());
    paths
        .into_iter()
        .map(|path| {
            let json: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            let audio = dir.join(json["audio"].as_str().unwrap());
            let mut wav = common::read_wav(&audio);
            assert_eq!(wav.len() as u64, json["n_samples"].as_u64().unwrap());
            normalize_volume(&mut wav, TARGET_DBFS, true);
            Fixture {
                name: path.file_stem().unwrap().to_string_lossy().into_owned(),
                json,
                wav,
            }
        })
        .collect()
}

#[test]
fn window_embedding_matches_resemblyzer() {
    let compute = Compute::new(1).unwrap();
    let mel = MelSpectrogram::new();
    let (mut min_burn, mut min_fused) = (1.0f64, 1.0f64);
    for f in fixtures() {
        let mels = mel.compute(&f.wav);
        let window = &mels[..WINDOW_FRAMES * N_MELS];
        let expected = floats(&f.json["window_embedding_first_160_frames"]);
        for backend in [Backend::Burn, Backend::Fused] {
            let got = encoder()
                .embed_windows_with(&compute, window, 1, backend)
                .unwrap();
            let cos = common::cosine(&got[0], &expected);
            println!(
                "{}: {backend:?} window 1 - cosine {:.3e}",
                f.name,
                1.0 - cos
            );
            assert!(
                cos >= MIN_COSINE_REFERENCE,
                "{}: {backend:?} window embedding cosine {cos}",
                f.name
            );
            match backend {
                Backend::Burn => min_burn = min_burn.min(cos),
                Backend::Fused => min_fused = min_fused.min(cos),
            }
        }
    }
    println!(
        "min window cosine: burn 1 - {:.3e}, fused 1 - {:.3e}",
        1.0 - min_burn,
        1.0 - min_fused
    );
}

#[test]
fn utterance_embedding_matches_resemblyzer() {
    let compute = Compute::new(1).unwrap();
    let (mut min_partial, mut min_utterance) = (1.0f64, 1.0f64);
    for f in fixtures() {
        let got = encoder().embed_utterance(&compute, &f.wav);
        let partials = &f.json["partials"];
        let slices = common::wav_slices(&f.json);
        assert_eq!(got.wav_slices, slices, "{}: wav slices", f.name);
        let expected = partials["embeddings"].as_array().unwrap();
        assert_eq!(got.partial_embeddings.len(), expected.len());
        for (i, (g, e)) in got.partial_embeddings.iter().zip(expected).enumerate() {
            let cos = common::cosine(g, &floats(e));
            min_partial = min_partial.min(cos);
            assert!(
                cos >= MIN_COSINE_REFERENCE,
                "{}: partial {i} cosine {cos}",
                f.name
            );
        }
        let cos = common::cosine(&got.embedding, &floats(&f.json["utterance_embedding"]));
        println!(
            "{}: {} partials, utterance 1 - cosine {:.3e}",
            f.name,
            slices.len(),
            1.0 - cos
        );
        min_utterance = min_utterance.min(cos);
        assert!(
            cos >= MIN_COSINE_REFERENCE,
            "{}: utterance cosine {cos}",
            f.name
        );
        let norm: f32 = got.embedding.iter().map(|v| v * v).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
    println!(
        "min cosine: partials 1 - {:.3e}, utterance 1 - {:.3e}",
        1.0 - min_partial,
        1.0 - min_utterance
    );
}

#[test]
fn fused_matches_burn_and_batching_is_exact() {
    let compute = Compute::new(1).unwrap();
    let window = WINDOW_FRAMES * N_MELS;
    let (mut min_cos, mut worst_abs) = (1.0f64, 0.0f32);
    for batch in [1, 3, 32] {
        let mels = mel_like(batch, batch as u64);
        let fused = encoder().embed_windows(&compute, &mels, batch).unwrap();
        let burn = encoder()
            .embed_windows_with(&compute, &mels, batch, Backend::Burn)
            .unwrap();
        assert_eq!(fused.len(), batch);
        assert_eq!(burn.len(), batch);
        for (i, (f, b)) in fused.iter().zip(&burn).enumerate() {
            let cos = common::cosine(f, b);
            let abs = common::max_abs(f, b);
            min_cos = min_cos.min(cos);
            worst_abs = worst_abs.max(abs);
            assert!(
                cos >= MIN_COSINE_INTERNAL && abs <= MAX_ABS_INTERNAL,
                "batch {batch}, window {i}: cosine {cos}, max abs {abs}"
            );
            // Each window alone gives bit-identical results: the kernel's per-row arithmetic
            // does not depend on the tile the row falls in.
            let alone = encoder()
                .embed_windows(&compute, &mels[i * window..(i + 1) * window], 1)
                .unwrap();
            assert_eq!(
                alone[0], *f,
                "batch {batch}, window {i}: batched != unbatched"
            );
        }
    }
    println!(
        "fused vs burn: min cosine 1 - {:.3e}, max abs {worst_abs:.3e}",
        1.0 - min_cos
    );
}

/// Every kernel this CPU can run (not only the one production picks) agrees with burn, and
/// gives each window the same result alone as in a batch (7 = a 6-row tile + 1, or 2+2+2+1).
#[test]
fn every_available_kernel_matches_burn() {
    let compute = Compute::new(1).unwrap();
    let window = WINDOW_FRAMES * N_MELS;
    let batch = 7;
    let mels = mel_like(batch, 11);
    let burn = encoder()
        .embed_windows_with(&compute, &mels, batch, Backend::Burn)
        .unwrap();
    let mut tested = Vec::new();
    for kernel in [
        Kernel::Avx512F16,
        Kernel::Avx512,
        Kernel::Avx2,
        Kernel::Generic,
    ] {
        let Some(fused) = FusedEncoder::with_kernel(encoder().reference(), kernel) else {
            continue;
        };
        tested.push(fused.kernel());
        let out = fused.forward(&mels, batch, WINDOW_FRAMES);
        for (i, (f, b)) in out.chunks_exact(EMBEDDING_DIM).zip(&burn).enumerate() {
            let (cos, abs) = (common::cosine(f, b), common::max_abs(f, b));
            println!(
                "{kernel:?} window {i}: 1 - cosine {:.3e}, max abs {abs:.3e}",
                1.0 - cos
            );
            assert!(
                cos >= MIN_COSINE_INTERNAL && abs <= MAX_ABS_INTERNAL,
                "{kernel:?}, window {i}: cosine {cos}, max abs {abs}"
            );
            let alone = fused.forward(&mels[i * window..(i + 1) * window], 1, WINDOW_FRAMES);
            assert_eq!(alone, f, "{kernel:?}, window {i}: batched != unbatched");
        }
    }
    println!("kernels tested: {tested:?}");
    assert!(tested.contains(&Kernel::Generic));
    assert!(tested.contains(&encoder().fused().kernel()));
}

#[test]
fn concurrent_callers_and_thread_pools_agree() {
    let batch = 12;
    let mels = Arc::new(mel_like(batch, 7));
    let single = Compute::new(1).unwrap();
    let expected = encoder().embed_windows(&single, &mels, batch).unwrap();
    // A pool with several threads splits the batch; the result must not change.
    let pool = Compute::new(3).unwrap();
    assert_eq!(
        encoder().embed_windows(&pool, &mels, batch).unwrap(),
        expected
    );
    let handles: Vec<_> = (0..4)
        .map(|i| {
            let mels = Arc::clone(&mels);
            let pool = pool.clone();
            std::thread::spawn(move || {
                let compute = if i % 2 == 0 {
                    pool
                } else {
                    Compute::new(1).unwrap()
                };
                encoder().embed_windows(&compute, &mels, batch).unwrap()
            })
        })
        .collect();
    for h in handles {
        assert_eq!(h.join().unwrap(), expected);
    }
}

#[test]
fn embed_window_is_the_first_partial_of_a_short_utterance() {
    let compute = Compute::new(1).unwrap();
    let f = &fixtures()[0];
    // 1.6 s exactly: one partial window, so the utterance embedding is that window's.
    let clip = &f.wav[..diglett_model::encoder::WINDOW_SAMPLES];
    let window: Embedding = encoder().embed_window(&compute, clip);
    let utterance = encoder().embed_utterance(&compute, clip);
    assert_eq!(utterance.partial_embeddings.len(), 1);
    assert!(common::max_abs(&window, &utterance.partial_embeddings[0]) <= 1e-6);
    assert_eq!(window.len(), EMBEDDING_DIM);
}

#[test]
fn wrong_window_shape_is_an_error() {
    let compute = Compute::new(1).unwrap();
    let mels = vec![0.0f32; WINDOW_FRAMES * N_MELS + 1];
    assert!(encoder().embed_windows(&compute, &mels, 1).is_err());
    assert!(
        encoder()
            .embed_windows(&compute, &[], 0)
            .unwrap()
            .is_empty()
    );
}
