//! What the decision studies in `examples/` (`tune_decision`, `turns_eval`, `timeline_eval`)
//! share: the in-process models and the worker's per-window steps on them, so that the studies
//! measure the pipeline the service runs rather than copies of it, and the synthetic
//! conversations (clean, and degraded as a far-field room would) they are tuned on.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use diglett_audio::{self as frontend, NORMALIZE_TARGET_DBFS};
use diglett_decision::scoring::VOICED_PROBABILITY;
use diglett_model::compute::{Compute, device};
use diglett_model::encoder::{Embedding, Encoder, N_MELS, WINDOW_FRAMES, WINDOW_SAMPLES};
use diglett_model::enroll;

use crate::diarization::FRAME_S;
use crate::eval;
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

/// A small deterministic generator (64-bit LCG, Knuth's MMIX constants) so the synthetic set is
/// the same on every run without a `rand` dependency.
#[derive(Debug, Clone)]
pub struct Lcg(pub u64);

impl Lcg {
    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in [a, b).
    pub fn uniform(&mut self, a: f64, b: f64) -> f64 {
        a + (b - a) * self.next_f64()
    }
    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        ((self.next_f64() * n as f64) as usize).min(n.saturating_sub(1))
    }
}

/// A speaker's turn material: the speech span (VAD first start to last end) of each of their
/// utterances but the first (the enrollment one), and a cursor through them.
struct Material {
    utterances: Vec<Vec<f32>>,
    utt: usize,
    pos: usize,
}

impl Material {
    /// The next `len` samples of this speaker's speech (moving to the next utterance when the
    /// current one has too little left; shorter if no utterance is that long).
    fn take(&mut self, len: usize) -> Vec<f32> {
        for _ in 0..=self.utterances.len() {
            let u = &self.utterances[self.utt];
            if self.pos + len <= u.len() {
                let out = u[self.pos..self.pos + len].to_vec();
                self.pos += len;
                return out;
            }
            self.utt = (self.utt + 1) % self.utterances.len();
            self.pos = 0;
        }
        let u = &self.utterances[self.utt];
        u[..len.min(u.len())].to_vec()
    }
}

/// A synthetic conversation built from `data/speakers`.
#[derive(Debug, Clone)]
pub struct Synthetic {
    /// 16 kHz audio.
    pub wav: Vec<f32>,
    /// Who speaks (local speaker indices) in each 10 ms frame.
    pub frame_ref: Vec<Vec<usize>>,
    /// The turns: (start sample, end sample, local speaker).
    pub spans: Vec<(usize, usize, usize)>,
    /// Each local speaker's enrollment (from their first utterance, trimmed and cut to
    /// `enroll_s` as the service enrolls).
    pub enrolled: Vec<Embedding>,
    /// The speech each of those enrollments was computed from (trimmed, cut to `enroll_s`), so
    /// that another encoder can enroll the same voices.
    pub enroll_speech: Vec<Vec<f32>>,
}

/// `n` synthetic conversations of about `seconds` each, alternately of 2 and 3 speakers from
/// `data/speakers`: each speaker enrolled from their first utterance, their turns cut from the
/// others (turns of 1–8 s, one in six a 0.3–0.9 s interjection; pauses of 0, 0.1–0.7 or 1–3 s;
/// a faint noise floor). Deterministic: the same set on every run.
///
/// # Errors
/// A message when the corpus cannot be read or has under 3 speakers.
pub fn synthetic(
    m: &Models,
    data: &Path,
    n: usize,
    seconds: f64,
    enroll_s: f64,
) -> Result<Vec<Synthetic>, String> {
    const SR: usize = diglett_schemas::SAMPLE_RATE as usize;
    let speakers = eval::load_speakers(&data.join("speakers")).map_err(|e| e.to_string())?;
    if speakers.len() < 3 {
        return Err("need ≥ 3 speakers in data/speakers".into());
    }
    let enroll_speech: Vec<Vec<f32>> = speakers
        .iter()
        .map(|s| {
            let mut speech = enroll::preprocess(&m.vad, &m.compute, &s.utterances[0].1).speech;
            speech.truncate((enroll_s * SR as f64) as usize);
            speech
        })
        .collect();
    let enrolled: Vec<Embedding> = enroll_speech.iter().map(|s| m.embed_speech(s)).collect();
    let mut material: Vec<Material> = speakers
        .iter()
        .map(|s| Material {
            utterances: s.utterances[1..]
                .iter()
                .map(|(_, wav)| {
                    let segs = enroll::preprocess(&m.vad, &m.compute, wav).segments;
                    match (segs.first(), segs.last()) {
                        (Some(a), Some(b)) => wav[a.start..b.end].to_vec(),
                        _ => wav.clone(),
                    }
                })
                .collect(),
            utt: 0,
            pos: 0,
        })
        .collect();
    let mut rng = Lcg(0x05ee_dd1a_1e77);
    let mut convs = Vec::new();
    let secs = |x: f64| (x * SR as f64) as usize;
    for ci in 0..n {
        let k = if ci % 2 == 0 { 2 } else { 3 };
        // Distinct speakers, rotating through the corpus.
        let mut who: Vec<usize> = Vec::new();
        while who.len() < k {
            let s = rng.below(speakers.len());
            if !who.contains(&s) {
                who.push(s);
            }
        }
        let mut wav: Vec<f32> = Vec::new();
        let mut spans: Vec<(usize, usize, usize)> = Vec::new(); // (start, end, local speaker)
        let mut last: Option<usize> = None;
        while (wav.len() as f64) < seconds * SR as f64 {
            // The next speaker is never the previous one.
            let mut s = rng.below(k);
            if Some(s) == last {
                s = (s + 1 + rng.below(k - 1)) % k;
            }
            last = Some(s);
            let r = rng.next_f64();
            let pause = if r < 0.25 {
                0.0
            } else if r < 0.85 {
                rng.uniform(0.1, 0.7)
            } else {
                rng.uniform(1.0, 3.0)
            };
            // One in six turns is a one-word interjection ("yeah", "right").
            let len = if rng.next_f64() < 1.0 / 6.0 {
                rng.uniform(0.3, 0.9)
            } else {
                rng.uniform(1.0, 8.0)
            };
            wav.extend(std::iter::repeat_n(0.0f32, secs(pause)));
            let speech = material[who[s]].take(secs(len));
            spans.push((wav.len(), wav.len() + speech.len(), s));
            wav.extend(speech);
        }
        wav.extend(std::iter::repeat_n(0.0f32, secs(1.0)));
        // A faint noise floor (≈ −80 dBFS) so pauses are not digital silence.
        for x in &mut wav {
            *x += (rng.next_f64() as f32 - 0.5) * 2e-4;
        }
        let n_frames = (wav.len() as f64 / SR as f64 / FRAME_S).floor() as usize;
        let frame_ref = (0..n_frames)
            .map(|i| {
                let t = ((i as f64 + 0.5) * FRAME_S * SR as f64) as usize;
                spans
                    .iter()
                    .filter(|(a, b, _)| *a <= t && t < *b)
                    .map(|x| x.2)
                    .collect()
            })
            .collect();
        convs.push(Synthetic {
            wav,
            frame_ref,
            spans,
            enrolled: who.iter().map(|&s| enrolled[s]).collect(),
            enroll_speech: who.iter().map(|&s| enroll_speech[s].clone()).collect(),
        });
    }
    Ok(convs)
}

/// `c` as a far-field room would give it: each speaker at their own level (0 to −20 dB, a
/// speaker near or far from the microphone), then a reverberant room (a Schroeder reverberator:
/// four comb filters and two all-passes, decay time 0.3–0.8 s, mixed at 40–70 %), the whole
/// scaled to a quiet −32 to −44 dBFS (RMS of the speech), then a noise floor (low-passed noise
/// at 12–25 dB below the speech). Deterministic for a given `seed`.
#[must_use]
pub fn far_field(c: &Synthetic, seed: u64) -> Vec<f32> {
    const SR: f64 = diglett_schemas::SAMPLE_RATE as f64;
    let mut rng = Lcg(seed);
    let n_spk = c.spans.iter().map(|s| s.2 + 1).max().unwrap_or(0);
    let gains: Vec<f32> = (0..n_spk)
        .map(|_| 10f32.powf(-rng.uniform(0.0, 20.0) as f32 / 20.0))
        .collect();
    let mut dry = c.wav.clone();
    for &(a, b, s) in &c.spans {
        dry[a..b].iter_mut().for_each(|x| *x *= gains[s]);
    }
    // Schroeder: comb delays (ms) mutually prime-ish, feedback for the chosen decay time.
    let t60 = rng.uniform(0.3, 0.8);
    let mix = rng.uniform(0.4, 0.7) as f32;
    let mut wet = vec![0.0f32; dry.len()];
    for ms in [29.7, 37.1, 41.1, 43.7] {
        let d = (ms / 1000.0 * SR) as usize;
        let g = 10f64.powf(-3.0 * ms / 1000.0 / t60) as f32;
        let mut y = vec![0.0f32; dry.len()];
        for i in 0..dry.len() {
            y[i] = dry[i] + if i >= d { g * y[i - d] } else { 0.0 };
        }
        wet.iter_mut().zip(&y).for_each(|(w, v)| *w += 0.25 * v);
    }
    for (ms, g) in [(5.0, 0.7f32), (1.7, 0.7)] {
        let d = (ms / 1000.0 * SR) as usize;
        let x = wet.clone();
        for i in 0..x.len() {
            let xd = if i >= d { x[i - d] } else { 0.0 };
            let yd = if i >= d { wet[i - d] } else { 0.0 };
            wet[i] = -g * x[i] + xd + g * yd;
        }
    }
    let mut out: Vec<f32> = dry
        .iter()
        .zip(&wet)
        .map(|(d, w)| (1.0 - mix) * d + mix * w)
        .collect();
    // Level: the RMS over the turns to −32…−44 dBFS.
    let (sum, count) = c.spans.iter().fold((0.0f64, 0usize), |(s, n), &(a, b, _)| {
        (
            s + out[a..b]
                .iter()
                .map(|&x| f64::from(x) * f64::from(x))
                .sum::<f64>(),
            n + (b - a),
        )
    });
    let rms = (sum / count.max(1) as f64).sqrt().max(1e-9);
    let target_db = -rng.uniform(32.0, 44.0);
    let scale = (10f64.powf(target_db / 20.0) / rms) as f32;
    out.iter_mut().for_each(|x| *x *= scale);
    // Noise: white noise through a one-pole low-pass (room rumble and fans), at the SNR.
    let snr_db = rng.uniform(12.0, 25.0);
    let noise_rms = 10f64.powf((target_db - snr_db) / 20.0);
    let mut lp = 0.0f64;
    let mut noise: Vec<f64> = (0..out.len())
        .map(|_| {
            lp = 0.9 * lp + 0.1 * (rng.next_f64() - 0.5);
            lp
        })
        .collect();
    let nr = (noise.iter().map(|x| x * x).sum::<f64>() / noise.len().max(1) as f64)
        .sqrt()
        .max(1e-12);
    noise.iter_mut().for_each(|x| *x *= noise_rms / nr);
    out.iter_mut()
        .zip(&noise)
        .for_each(|(x, nz)| *x += *nz as f32);
    out
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
