//! Kaldi log-mel filterbank (`torchaudio.compliance.kaldi.fbank` defaults, 80 bins, dither 0) and
//! the per-window mean normalisation CAM++ was trained with — `shared/MODELS.md` 1.1.
//!
//! Computed in f64 (one frame at a time) and rounded to f32 at the end: the reference is a float64
//! implementation and the parity tolerance is 2e-4 abs on log energies.

use std::sync::Arc;

use realfft::{RealFftPlanner, RealToComplex};

/// Sample rate the features (and CAM++) assume.
pub const SAMPLE_RATE: usize = 16_000;
/// 25 ms frames (Kaldi `frame_length`).
pub const FRAME_LENGTH: usize = 400;
/// 10 ms shift (Kaldi `frame_shift`).
pub const FRAME_SHIFT: usize = 160;
/// `round_to_power_of_two(400)`.
const N_FFT: usize = 512;
/// Mel bins (3D-Speaker `FBank(80, …)`).
pub const N_MELS: usize = 80;
/// Kaldi `low_freq` default.
const LOW_FREQ: f64 = 20.0;
/// Kaldi `high_freq` = 0 → Nyquist.
const HIGH_FREQ: f64 = 8_000.0;
/// Kaldi `preemphasis_coefficient` default.
const PREEMPHASIS: f64 = 0.97;

/// Frames Kaldi produces with `snip_edges = true`: `1 + (n − 400) / 160`, none below 400 samples.
pub fn num_frames(samples: usize) -> usize {
    if samples < FRAME_LENGTH {
        0
    } else {
        1 + (samples - FRAME_LENGTH) / FRAME_SHIFT
    }
}

fn mel(f: f64) -> f64 {
    1127.0 * (1.0 + f / 700.0).ln()
}

/// The Kaldi fbank extractor: window, mel filters and FFT plan built once.
pub struct Fbank {
    window: Vec<f64>,
    /// Per mel bin: first FFT bin with a non-zero weight, and the weights from there.
    filters: Vec<(usize, Vec<f64>)>,
    fft: Arc<dyn RealToComplex<f64>>,
}

impl std::fmt::Debug for Fbank {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fbank").field("n_mels", &N_MELS).finish()
    }
}

impl Default for Fbank {
    fn default() -> Self {
        Self::new()
    }
}

impl Fbank {
    /// Builds the povey window, the 80 triangular mel filters and the 512-point FFT plan.
    pub fn new() -> Self {
        let window = (0..FRAME_LENGTH)
            .map(|i| {
                let a = 2.0 * std::f64::consts::PI * i as f64 / (FRAME_LENGTH - 1) as f64;
                (0.5 - 0.5 * a.cos()).powf(0.85)
            })
            .collect();
        let (mel_low, mel_high) = (mel(LOW_FREQ), mel(HIGH_FREQ));
        let delta = (mel_high - mel_low) / (N_MELS + 1) as f64;
        let filters = (0..N_MELS)
            .map(|m| {
                let l = mel_low + m as f64 * delta;
                let (c, r) = (l + delta, l + 2.0 * delta);
                let weights: Vec<f64> = (0..N_FFT / 2)
                    .map(|k| {
                        let mu = mel(k as f64 * SAMPLE_RATE as f64 / N_FFT as f64);
                        if l < mu && mu <= c {
                            (mu - l) / (c - l)
                        } else if c < mu && mu < r {
                            (r - mu) / (r - c)
                        } else {
                            0.0
                        }
                    })
                    .collect();
                let first = weights.iter().position(|&w| w > 0.0).unwrap_or(0);
                let last = weights
                    .iter()
                    .rposition(|&w| w > 0.0)
                    .map_or(first, |p| p + 1);
                (first, weights[first..last].to_vec())
            })
            .collect();
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        Self {
            window,
            filters,
            fft,
        }
    }

    /// Raw log-mel features, row-major `(num_frames(len), 80)`, of 16 kHz samples.
    pub fn compute(&self, samples: &[f32]) -> Vec<f32> {
        let n = num_frames(samples.len());
        let mut out = Vec::with_capacity(n * N_MELS);
        let mut frame = vec![0.0f64; N_FFT];
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = vec![0.0f64; N_FFT / 2];
        for t in 0..n {
            let src = &samples[t * FRAME_SHIFT..t * FRAME_SHIFT + FRAME_LENGTH];
            let mean = src.iter().map(|&x| f64::from(x)).sum::<f64>() / FRAME_LENGTH as f64;
            for (d, &s) in frame.iter_mut().zip(src) {
                *d = f64::from(s) - mean;
            }
            for i in (1..FRAME_LENGTH).rev() {
                frame[i] -= PREEMPHASIS * frame[i - 1];
            }
            frame[0] -= PREEMPHASIS * frame[0];
            for (x, w) in frame.iter_mut().zip(&self.window) {
                *x *= w;
            }
            frame[FRAME_LENGTH..].fill(0.0);
            // Lengths are fixed by construction, so the FFT cannot fail.
            if self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch)
                .is_err()
            {
                unreachable!("FFT buffers are sized by the plan");
            }
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = c.norm_sqr();
            }
            for (first, weights) in &self.filters {
                let e: f64 = weights
                    .iter()
                    .zip(&power[*first..])
                    .map(|(w, p)| w * p)
                    .sum();
                out.push(e.max(f64::from(f32::EPSILON)).ln() as f32);
            }
        }
        out
    }

    /// [`Self::compute`] followed by [`mean_normalise`]: the network's input for one window.
    pub fn compute_cmn(&self, samples: &[f32]) -> Vec<f32> {
        let mut feats = self.compute(samples);
        mean_normalise(&mut feats);
        feats
    }
}

/// Subtracts each bin's mean over all frames (CMN, mean only), in place; `feats` is `(T, 80)`.
pub fn mean_normalise(feats: &mut [f32]) {
    let t = feats.len() / N_MELS;
    if t == 0 {
        return;
    }
    let mut mean = [0.0f64; N_MELS];
    for row in feats.chunks_exact(N_MELS) {
        for (m, &x) in mean.iter_mut().zip(row) {
            *m += f64::from(x);
        }
    }
    for m in &mut mean {
        *m /= t as f64;
    }
    for row in feats.chunks_exact_mut(N_MELS) {
        for (x, &m) in row.iter_mut().zip(&mean) {
            *x = (f64::from(*x) - m) as f32;
        }
    }
}
