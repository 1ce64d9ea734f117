//! The window pipeline: what happens to one 1.6 s window and to one enrollment recording, from
//! samples to a label — the one place the worker, the tests and the evaluation examples run it.
//!
//! A window: Silero VAD on the audio as received → voiced fraction → the VAD gate
//! ([`scoring::gate`]) → volume-normalised (increase only, −30 dBFS) mel frames → the speaker
//! encoder → cosine against each enrolled speaker → [`scoring::label_window_with`]. Every
//! window's analysis depends only on that window, whatever the batch ([`analyze_windows`] is
//! tested to give the same output batched and one by one in the worker's tests).
//!
//! Two speaker models are installed ([`Model`]: GE2E, the default, and CAM++); a window job
//! names the one its session runs, and its enrolled embeddings are that model's. GE2E embeds
//! the volume-normalised window; CAM++ the window as received (its fbank is mean-normalised per
//! window, so the level does not matter), each embedding L2-normalised. A CAM++ window's
//! `chunk_speech` (what the frame timeline reads) is segmentation-3.0's speech probability,
//! not Silero's: CAM++'s low threshold names whatever the timeline calls speech, and Silero's
//! rule lets far-field pauses through (docs/decision.md, **CAM++ in the same study**). The
//! window gate (`min_voiced`) stays Silero's for both.

use diglett_audio::level::{NORMALIZE_TARGET_DBFS, normalize_volume};
use diglett_audio::loudness::{self, Loudness};
use diglett_decision::scoring::{self, DecisionParams, VOICED_PROBABILITY, WindowDecision};
pub use diglett_schemas::SpeakerModel as Model;
use diglett_schemas::{EMBEDDING_DIM, SAMPLE_RATE};
use rayon::prelude::*;

use crate::campp::CamPlusEncoder;
use crate::compute::{Compute, device};
use crate::encoder::Encoder;
use crate::enroll::embed_enrollment;
use crate::segmentation::{self, SpeakerSegmenter};
use crate::vad::{self, Vad};

/// A speaker encoder as the pipeline uses it: 1.6 s windows in, unit-norm embeddings out.
pub trait SpeakerModel: Send + Sync + std::fmt::Debug {
    /// Embeds whole windows of 16 kHz audio (already volume-normalised), one embedding each.
    fn embed_windows(&self, compute: &Compute, windows: &[Vec<f32>]) -> Vec<[f32; EMBEDDING_DIM]>;
}

impl SpeakerModel for Encoder {
    fn embed_windows(&self, compute: &Compute, windows: &[Vec<f32>]) -> Vec<[f32; EMBEDDING_DIM]> {
        let mels: Vec<Vec<f32>> =
            compute.install(|| windows.par_iter().map(|w| self.window_mels(w)).collect());
        let flat: Vec<f32> = mels.concat();
        Encoder::embed_windows(self, compute, &flat, windows.len())
            .unwrap_or_else(|e| unreachable!("whole windows by construction: {e}"))
    }
}

/// The models, loaded once and shared by every job (immutable, `Send + Sync`).
#[derive(Debug)]
pub struct Models {
    /// The GE2E speaker encoder.
    pub encoder: Encoder,
    /// Silero VAD v6.
    pub vad: Vad,
    /// The CAM++ speaker encoder.
    pub campp: CamPlusEncoder,
    /// pyannote segmentation-3.0: the frame speech of CAM++ windows. (It runs on the caller's
    /// pool; the one-thread pool it is built with is for its own stand-alone methods.)
    pub segmenter: SpeakerSegmenter,
}

/// The models could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// The speaker encoder.
    #[error("speaker encoder: {0}")]
    Encoder(String),
    /// The VAD.
    #[error("VAD: {0}")]
    Vad(String),
    /// segmentation-3.0.
    #[error("segmentation: {0}")]
    Segmentation(String),
}

impl Models {
    /// Loads the pretrained encoders and VAD (weights compiled into this crate).
    pub fn load() -> Result<Self, ModelError> {
        Ok(Self {
            encoder: Encoder::pretrained().map_err(|e| ModelError::Encoder(e.to_string()))?,
            vad: Vad::pretrained(&device()).map_err(|e| ModelError::Vad(e.to_string()))?,
            campp: CamPlusEncoder::pretrained()
                .map_err(|e| ModelError::Encoder(format!("CAM++: {e}")))?,
            segmenter: Compute::new(1)
                .map_err(|e| ModelError::Segmentation(e.to_string()))
                .and_then(|c| {
                    SpeakerSegmenter::pretrained(c)
                        .map_err(|e| ModelError::Segmentation(e.to_string()))
                })?,
        })
    }
}

/// `v` scaled to unit length ([`scoring::l2_normalize`]).
fn unit(mut v: Vec<f32>) -> Vec<f32> {
    scoring::l2_normalize(&mut v);
    v
}

/// One window to analyse: 1.6 s of 16 kHz audio and what to score it against.
#[derive(Debug, Clone, Copy)]
pub struct WindowJob<'a> {
    /// The window's samples, as received (not normalised).
    pub samples: &'a [f32],
    /// The model the session runs.
    pub model: Model,
    /// Enrolled embeddings of that model, in the session's order.
    pub speakers: &'a [Vec<f32>],
    /// The decision parameters.
    pub params: &'a DecisionParams,
}

/// What [`analyze_windows`] found for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowAnalysis {
    /// The label and the chosen speaker.
    pub decision: WindowDecision,
    /// Cosine score per enrolled speaker (empty when the VAD gate closed).
    pub scores: Vec<f32>,
    /// Mean Silero speech probability.
    pub speech_mean: f32,
    /// Fraction of 32 ms chunks at probability ≥ [`VOICED_PROBABILITY`].
    pub voiced_fraction: f32,
    /// Loudness as received.
    pub loudness: Loudness,
    /// Speech probability per 32 ms chunk, from the window's start: Silero's for GE2E
    /// windows, segmentation-3.0's for CAM++ windows.
    pub chunk_speech: Vec<f32>,
}

/// Analyses a batch of windows; each window's result depends only on that window.
pub fn analyze_windows(
    models: &Models,
    compute: &Compute,
    jobs: &[WindowJob<'_>],
) -> Vec<WindowAnalysis> {
    if jobs.is_empty() {
        return Vec::new();
    }
    // VAD on the audio as received: normalising first would lift near-silence (room noise) to
    // −30 dBFS and make the VAD fire on it.
    let raw: Vec<&[f32]> = jobs.iter().map(|j| j.samples).collect();
    let probs = models.vad.probabilities_many(compute, &raw);
    let loudness: Vec<Loudness> = compute.install(|| {
        jobs.par_iter()
            .map(|j| loudness::measure(j.samples, SAMPLE_RATE))
            .collect()
    });
    let voiced: Vec<f32> = probs
        .iter()
        .map(|p| vad::voiced_fraction(p, VOICED_PROBABILITY))
        .collect();
    let gated = |model: Model| -> Vec<usize> {
        (0..jobs.len())
            .filter(|&i| jobs[i].model == model && scoring::gate(voiced[i], jobs[i].params))
            .collect()
    };
    let mut embedded: Vec<(usize, Vec<f32>)> = Vec::new();
    // GE2E: features as enrollment computes them, volume-normalised (increase only) to −30 dBFS.
    let ge2e = gated(Model::Ge2e);
    if !ge2e.is_empty() {
        let normalised: Vec<Vec<f32>> = compute.install(|| {
            ge2e.par_iter()
                .map(|&i| {
                    let mut w = jobs[i].samples.to_vec();
                    normalize_volume(&mut w, NORMALIZE_TARGET_DBFS, true);
                    w
                })
                .collect()
        });
        let e = SpeakerModel::embed_windows(&models.encoder, compute, &normalised);
        embedded.extend(ge2e.iter().copied().zip(e.into_iter().map(|e| e.to_vec())));
    }
    // CAM++: the window as received.
    let campp = gated(Model::Campp);
    if !campp.is_empty() {
        let wins: Vec<&[f32]> = campp.iter().map(|&i| jobs[i].samples).collect();
        let e = models.campp.embed_windows(compute, &wins);
        embedded.extend(
            campp
                .iter()
                .copied()
                .zip(e.into_iter().map(|e| unit(e.unwrap_or_default()))),
        );
    }

    // CAM++ windows' frame speech: segmentation-3.0 over every such window (gated or not: the
    // timeline reads every window's chunks).
    let mut chunk_speech: Vec<Option<Vec<f32>>> = vec![None; jobs.len()];
    let seg_jobs: Vec<usize> = (0..jobs.len())
        .filter(|&i| jobs[i].model == Model::Campp)
        .collect();
    if !seg_jobs.is_empty() {
        let wins: Vec<&[f32]> = seg_jobs.iter().map(|&i| jobs[i].samples).collect();
        if let Ok(frames) = models.segmenter.log_probs_batch_on(compute, &wins) {
            for (&i, f) in seg_jobs.iter().zip(frames) {
                let n = probs[i].len();
                chunk_speech[i] = Some(segmentation::speech_per_chunk(&f, n, CHUNK_SECONDS));
            }
        }
    }
    let mut scores: Vec<Vec<f32>> = vec![Vec::new(); jobs.len()];
    for (i, e) in &embedded {
        scores[*i] = scoring::score_all(e, jobs[*i].speakers);
    }
    jobs.iter()
        .enumerate()
        .map(|(i, job)| {
            let p = &probs[i];
            let speech_mean = if p.is_empty() {
                0.0
            } else {
                p.iter().sum::<f32>() / p.len() as f32
            };
            WindowAnalysis {
                // The pair-aware overlap rule needs the cosine between enrolled voices; it asks
                // for at most one pair per window.
                decision: scoring::label_window_with(
                    &scores[i],
                    |a, b| scoring::cosine(&job.speakers[a], &job.speakers[b]),
                    voiced[i],
                    job.params,
                ),
                scores: std::mem::take(&mut scores[i]),
                speech_mean,
                voiced_fraction: voiced[i],
                loudness: loudness[i],
                chunk_speech: chunk_speech[i].take().unwrap_or_else(|| p.clone()),
            }
        })
        .collect()
}

/// What [`analyze_enrollment`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentAnalysis {
    /// The GE2E embedding, `None` without speech.
    pub embedding: Option<[f32; EMBEDDING_DIM]>,
    /// The CAM++ embedding of the same trimmed speech (L2-normalised), `None` without speech.
    pub campp_embedding: Option<Vec<f32>>,
    /// Seconds of speech kept after trimming.
    pub speech_seconds: f32,
    /// Seconds received.
    pub duration_seconds: f32,
    /// Loudness as received.
    pub loudness: Loudness,
    /// Share of samples at full scale.
    pub clipped_fraction: f32,
}

/// Seconds of one Silero chunk (512 samples at 16 kHz), the unit of `chunk_speech`.
const CHUNK_SECONDS: f64 = vad::CHUNK as f64 / SAMPLE_RATE as f64;

/// A sample at or beyond ±32767/32768 is at full scale (the largest positive `i16`).
const FULL_SCALE: f32 = 32767.0 / 32768.0;

/// Embeds enrollment audio the way [`crate::enroll`] does, plus loudness and clipping.
pub fn analyze_enrollment(
    models: &Models,
    compute: &Compute,
    samples: &[f32],
) -> EnrollmentAnalysis {
    let loudness = loudness::measure(samples, SAMPLE_RATE);
    let clipped = samples.iter().filter(|x| x.abs() >= FULL_SCALE).count();
    let (pre, embedding) = embed_enrollment(&models.encoder, &models.vad, compute, samples);
    let campp_embedding = if embedding.is_some() {
        models
            .campp
            .embed_windows(compute, &[&pre.speech])
            .pop()
            .flatten()
            .map(unit)
    } else {
        None
    };
    EnrollmentAnalysis {
        embedding: embedding.map(|e| e.embedding),
        campp_embedding,
        speech_seconds: pre.speech_seconds,
        duration_seconds: samples.len() as f32 / SAMPLE_RATE as f32,
        loudness,
        clipped_fraction: if samples.is_empty() {
            0.0
        } else {
            clipped as f32 / samples.len() as f32
        },
    }
}
