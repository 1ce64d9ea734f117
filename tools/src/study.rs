//! What the decision studies in `examples/` (`tune_decision`, `turns_eval`) share: the
//! in-process models and the worker's per-window steps on them, so that both studies measure the
//! pipeline the service runs rather than two copies of it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use diglett_audio::{self as frontend, NORMALIZE_TARGET_DBFS};
use diglett_decision::scoring::VOICED_PROBABILITY;
use diglett_model::compute::{Compute, device};
use diglett_model::encoder::{Embedding, Encoder, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES};
use diglett_model::frontend::MelSpectrogram;
use diglett_model::vad::{self, Vad};

/// Windows per encoder call (the worker's batch size).
pub const BATCH: usize = 32;

/// The models and the thread pool, shared by every section of a study.
#[allow(missing_debug_implementations)] // the networks have no useful Debug
pub struct Models {
    pub compute: Compute,
    pub encoder: Encoder,
    pub vad: Vad,
    pub mel: MelSpectrogram,
}

impl Models {
    /// The pretrained encoder and VAD on two threads (this machine's cores).
    ///
    /// # Errors
    /// A message when a network's weights fail to load.
    pub fn load() -> Result<Self, String> {
        Ok(Self {
            compute: Compute::new(2).map_err(|e| e.to_string())?,
            encoder: Encoder::pretrained().map_err(|e| e.to_string())?,
            vad: Vad::pretrained(&device()).map_err(|e| e.to_string())?,
            mel: MelSpectrogram::new(),
        })
    }

    /// One embedding per window (≤ 1.6 s, zero-padded), batched; the same as `embed_window`.
    pub fn embed<W: AsRef<[f32]>>(&self, wins: &[W]) -> Vec<Embedding> {
        let mut out = Vec::with_capacity(wins.len());
        let mut clip = vec![0.0f32; WINDOW_SAMPLES];
        for chunk in wins.chunks(BATCH) {
            let mut mels = Vec::with_capacity(chunk.len() * WINDOW_FRAMES * N_MELS);
            for w in chunk {
                let w = w.as_ref();
                let n = w.len().min(WINDOW_SAMPLES);
                clip.fill(0.0);
                clip[..n].copy_from_slice(&w[..n]);
                mels.extend_from_slice(&self.mel.compute(&clip)[..WINDOW_FRAMES * N_MELS]);
            }
            let embs = self
                .encoder
                .embed_windows(&self.compute, &mels, chunk.len())
                .unwrap_or_else(|e| unreachable!("shape by construction: {e}"));
            out.extend(embs);
        }
        out
    }

    /// Voiced fraction of each window, its VAD run from a fresh state (as a worker that sees
    /// one window at a time would).
    pub fn voiced<W: AsRef<[f32]>>(&self, wins: &[W]) -> Vec<f32> {
        let refs: Vec<&[f32]> = wins.iter().map(AsRef::as_ref).collect();
        self.vad
            .probabilities_many(&self.compute, &refs)
            .iter()
            .map(|p| vad::voiced_fraction(p, VOICED_PROBABILITY))
            .collect()
    }

    /// The utterance embedding of (already trimmed) speech, as enrollment computes it.
    pub fn embed_speech(&self, speech: &[f32]) -> Embedding {
        self.encoder
            .embed_utterance(&self.compute, speech)
            .embedding
    }
}

/// The whole windows of `wav` at `hop` samples, from its start.
pub fn windows(wav: &[f32], hop: usize) -> Vec<&[f32]> {
    (0..)
        .map(|k| k * hop)
        .take_while(|s| s + WINDOW_SAMPLES <= wav.len())
        .map(|s| &wav[s..s + WINDOW_SAMPLES])
        .collect()
}

/// A copy of `wav` volume-normalised as the worker normalises every window.
pub fn normalised(wav: &[f32]) -> Vec<f32> {
    let mut w = wav.to_vec();
    frontend::normalize_volume(&mut w, NORMALIZE_TARGET_DBFS, true);
    w
}

/// A study's `main`: the data folder from the first argument (default `../shared/data`), `run`
/// on it, and its error printed under the study's `name`.
pub fn main(name: &str, run: impl FnOnce(&Path) -> Result<(), String>) -> ExitCode {
    let data = std::env::args().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/data"),
        PathBuf::from,
    );
    match run(&data) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}
