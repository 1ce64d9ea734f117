//! The speaker encoder's features: from 16 kHz samples to its input.
//!
//! The GE2E encoder was trained on Resemblyzer 0.1.4's features, so every step here reproduces
//! that package (with librosa 0.11) as `../shared/README.md` ("fixtures") states it:
//!
//! 1. decoding to 16 kHz mono and volume normalisation are `diglett_audio`'s
//!    (`decode_audio`, `normalize_volume` to `NORMALIZE_TARGET_DBFS`, increase only);
//! 2. [`MelSpectrogram::compute`]: the 40-band power mel spectrogram, one frame per 10 ms;
//! 3. [`compute_partial_slices`]: the 1.6 s windows that the encoder embeds one by one.
//!
//! Fixture parity is checked in `tests/frontend_parity.rs`.

use std::ops::Range;
use std::sync::Arc;

use diglett_schemas::SAMPLE_RATE;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

/// FFT size and window length: 25 ms at 16 kHz, Resemblyzer's `mel_window_length`.
pub const N_FFT: usize = 400;

/// Hop between mel frames: 10 ms at 16 kHz, Resemblyzer's `mel_window_step`.
pub const HOP_LENGTH: usize = 160;

/// Number of mel bands: Resemblyzer's `mel_n_channels`, the encoder's input width.
pub const N_MELS: usize = 40;

/// Number of one-sided FFT bins, `N_FFT / 2 + 1`.
pub const N_FREQS: usize = N_FFT / 2 + 1;

/// Frames per encoder window: 160 frames = 1.6 s, the encoder's training window
/// (Resemblyzer's `partials_n_frames`).
pub const PARTIAL_FRAMES: usize = 160;

/// Windows per second of audio: the default `rate` of Resemblyzer's `embed_utterance`
/// (one window every 77 frames = 0.77 s, so consecutive windows overlap by about half).
pub const PARTIAL_RATE: f32 = 1.3;

/// Minimum fraction of the last window that must be real audio for it to be kept: the default
/// `min_coverage` of Resemblyzer's `embed_utterance`.
pub const MIN_COVERAGE: f32 = 0.75;

/// Slaney mel scale (librosa `hz_to_mel(htk=False)`): linear below 1 kHz, logarithmic above.
fn hz_to_mel(hz: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel, logstep) = slaney();
    if hz >= min_log_hz {
        min_log_mel + (hz / min_log_hz).ln() / logstep
    } else {
        hz / f_sp
    }
}

/// The Slaney scale's constants: Hz per mel below 1 kHz, the 1 kHz break in Hz and in mels, and
/// the log step above it.
fn slaney() -> (f64, f64, f64, f64) {
    let f_sp = 200.0 / 3.0;
    let min_log_hz = 1000.0;
    (f_sp, min_log_hz, min_log_hz / f_sp, 6.4f64.ln() / 27.0)
}

/// Inverse of [`hz_to_mel`] (librosa `mel_to_hz(htk=False)`).
fn mel_to_hz(mel: f64) -> f64 {
    let (f_sp, min_log_hz, min_log_mel, logstep) = slaney();
    if mel >= min_log_mel {
        min_log_hz * (logstep * (mel - min_log_mel)).exp()
    } else {
        f_sp * mel
    }
}

/// The mel filterbank, `[N_MELS][N_FREQS]`, computed as librosa 0.11
/// `filters.mel(sr=16000, n_fft=400, n_mels=40)` does (fmin 0, fmax 8000, Slaney scale, Slaney
/// area normalisation, `dtype=float32`): in `f64`, with the triangles rounded to `f32` before
/// the normalisation and the product rounded again, because that is how numpy evaluates
/// librosa's in-place `weights *= enorm` on a `float32` array.
pub fn mel_filterbank() -> Vec<[f32; N_FREQS]> {
    let sr = f64::from(SAMPLE_RATE);
    // np.fft.rfftfreq(n=400, d=1/sr): k * (1 / (n * d)).
    let bin_hz = 1.0 / (N_FFT as f64 * (1.0 / sr));
    let fft_freqs: Vec<f64> = (0..N_FREQS).map(|k| k as f64 * bin_hz).collect();
    // mel_frequencies(n_mels + 2, fmin=0, fmax=sr/2): np.linspace in mel, then back to Hz.
    let (min_mel, max_mel) = (hz_to_mel(0.0), hz_to_mel(sr / 2.0));
    let n_points = N_MELS + 2;
    let step = (max_mel - min_mel) / (n_points - 1) as f64;
    let mel_f: Vec<f64> = (0..n_points)
        .map(|i| {
            // np.linspace sets its last point to `stop` exactly.
            let mel = if i == n_points - 1 {
                max_mel
            } else {
                i as f64 * step + min_mel
            };
            mel_to_hz(mel)
        })
        .collect();
    let fdiff: Vec<f64> = mel_f.windows(2).map(|w| w[1] - w[0]).collect();
    (0..N_MELS)
        .map(|i| {
            let enorm = 2.0 / (mel_f[i + 2] - mel_f[i]);
            let mut row = [0.0f32; N_FREQS];
            for (w, &f) in row.iter_mut().zip(&fft_freqs) {
                let lower = -(mel_f[i] - f) / fdiff[i];
                let upper = (mel_f[i + 2] - f) / fdiff[i + 1];
                let tri = lower.min(upper).max(0.0) as f32;
                *w = (f64::from(tri) * enorm) as f32;
            }
            row
        })
        .collect()
}

/// The encoder's front end: a power mel spectrogram, exactly as the shared README states
/// (librosa 0.11 `feature.melspectrogram(sr=16000, n_fft=400, hop_length=160, n_mels=40,
/// center=True, pad_mode="constant")`, power 2, no log).
///
/// Frames are centred: frame `t` covers samples `160 t - 200 .. 160 t + 200`, zeros outside the
/// signal, so there are `1 + n / 160` frames. The window is a periodic Hann of 400; the FFT,
/// the power and the band sums run in `f64` and round to `f32` once, which keeps even the
/// quietest bands (1e-10 next to 0.07 in the same frame) within 1e-6 relative of librosa.
///
/// Build it once and share it: it is `Send + Sync`, and [`compute`](Self::compute) allocates
/// only per call (three small scratch buffers and the output), never per frame. Each band
/// touches only the FFT bins its triangle spans (about 400 multiply-adds per frame in total,
/// against 8040 for the dense matrix).
pub struct MelSpectrogram {
    fft: Arc<dyn RealToComplex<f64>>,
    /// Periodic Hann: `0.5 - 0.5 cos(2 pi n / 400)` (scipy `get_window("hann", 400)`).
    window: Vec<f64>,
    /// First FFT bin of each band's non-zero span.
    band_start: [usize; N_MELS],
    /// Band `m`'s weights are `weights[band_offset[m]..band_offset[m + 1]]`.
    band_offset: [usize; N_MELS + 1],
    weights: Vec<f32>,
}

assert_send_sync!(MelSpectrogram);

impl std::fmt::Debug for MelSpectrogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MelSpectrogram")
            .field("n_fft", &N_FFT)
            .field("hop_length", &HOP_LENGTH)
            .field("n_mels", &N_MELS)
            .field("non_zero_weights", &self.weights.len())
            .finish()
    }
}

impl Default for MelSpectrogram {
    fn default() -> Self {
        Self::new()
    }
}

impl MelSpectrogram {
    /// Plans the FFT and builds the window and the (sparse) filterbank.
    pub fn new() -> Self {
        let fft = RealFftPlanner::<f64>::new().plan_fft_forward(N_FFT);
        let window = (0..N_FFT)
            .map(|n| 0.5 - 0.5 * (2.0 * std::f64::consts::PI * n as f64 / N_FFT as f64).cos())
            .collect();
        let mut band_start = [0usize; N_MELS];
        let mut band_offset = [0usize; N_MELS + 1];
        let mut weights = Vec::new();
        for (m, row) in mel_filterbank().iter().enumerate() {
            // Each triangle is one contiguous run of non-zero bins.
            if let Some(first) = row.iter().position(|&w| w != 0.0) {
                let last = row.iter().rposition(|&w| w != 0.0).unwrap_or(first);
                band_start[m] = first;
                weights.extend_from_slice(&row[first..=last]);
            }
            band_offset[m + 1] = weights.len();
        }
        Self {
            fft,
            window,
            band_start,
            band_offset,
            weights,
        }
    }

    /// Number of frames for `n_samples` samples: `1 + n_samples / 160`, as librosa's centred STFT.
    pub fn n_frames(n_samples: usize) -> usize {
        1 + n_samples / HOP_LENGTH
    }

    /// The mel spectrogram of 16 kHz mono `wav`, flat and row-major `[n_frames, N_MELS]`:
    /// band `m` of frame `t` is at `t * N_MELS + m`.
    pub fn compute(&self, wav: &[f32]) -> Vec<f32> {
        let mut out = Vec::new();
        self.compute_into(wav, &mut out);
        out
    }

    /// [`compute`](Self::compute) into a caller-owned buffer (cleared first), so that a stream
    /// processor can reuse its allocation.
    pub fn compute_into(&self, wav: &[f32], out: &mut Vec<f32>) {
        let n_frames = Self::n_frames(wav.len());
        out.clear();
        out.resize(n_frames * N_MELS, 0.0);
        let mut frame = self.fft.make_input_vec();
        let mut spectrum = self.fft.make_output_vec();
        let mut scratch = self.fft.make_scratch_vec();
        let mut power = [0.0f64; N_FREQS];
        for (t, row) in out.chunks_exact_mut(N_MELS).enumerate() {
            self.fill_frame(wav, t, &mut frame);
            // The buffers come from the plan itself, so their lengths cannot be wrong.
            let planned = self
                .fft
                .process_with_scratch(&mut frame, &mut spectrum, &mut scratch);
            debug_assert!(planned.is_ok());
            for (p, c) in power.iter_mut().zip(&spectrum) {
                *p = Complex::norm_sqr(c);
            }
            for (m, value) in row.iter_mut().enumerate() {
                let w = &self.weights[self.band_offset[m]..self.band_offset[m + 1]];
                let bins = &power[self.band_start[m]..self.band_start[m] + w.len()];
                let sum: f64 = w.iter().zip(bins).map(|(&w, &p)| f64::from(w) * p).sum();
                *value = sum as f32;
            }
        }
    }

    /// Writes frame `t` (samples `160 t - 200 .. 160 t + 200`, zero outside) times the window.
    fn fill_frame(&self, wav: &[f32], t: usize, frame: &mut [f64]) {
        let centre = t * HOP_LENGTH;
        // Signal indices covered, and where they land in the frame.
        let lo = centre.saturating_sub(N_FFT / 2);
        let hi = (centre + N_FFT / 2).min(wav.len());
        let offset = lo + N_FFT / 2 - centre;
        frame.fill(0.0);
        if lo < hi {
            let dst = &mut frame[offset..offset + (hi - lo)];
            for ((d, &x), &w) in dst.iter_mut().zip(&wav[lo..hi]).zip(&self.window[offset..]) {
                *d = f64::from(x) * w;
            }
        }
    }
}

/// Resemblyzer 0.1.4's `VoiceEncoder.compute_partial_slices`: where the encoder windows of an
/// utterance of `n_samples` 16 kHz samples lie. Returns `(wav_slices, mel_slices)`: window `i`
/// covers mel frames `mel_slices[i]` ([`PARTIAL_FRAMES`] of them) and samples `wav_slices[i]`
/// (160 samples per frame). Windows start every `round(16000 / rate / 160)` frames; the last
/// one is dropped when less than `min_coverage` of it is audio, unless it is the only one.
/// Windows may run past the end of the audio: Resemblyzer zero-pads the wav to the last
/// window's end before computing the mel spectrogram.
///
/// The encoder uses `compute_partial_slices(n, PARTIAL_RATE, MIN_COVERAGE)`.
///
/// # Panics
/// As Resemblyzer's assertions: if `min_coverage` is not in `(0, 1]`, or `rate` puts windows
/// further apart than one window (`rate` below 0.625) or less than one frame apart.
pub fn compute_partial_slices(
    n_samples: usize,
    rate: f32,
    min_coverage: f32,
) -> (Vec<Range<usize>>, Vec<Range<usize>>) {
    assert!(
        0.0 < min_coverage && min_coverage <= 1.0,
        "min_coverage must be in (0, 1]"
    );
    let samples_per_frame = HOP_LENGTH; // int(16000 * 10 ms / 1000)
    let n_frames = (n_samples + 1).div_ceil(samples_per_frame);
    // np.round rounds half to even.
    let frame_step =
        ((f64::from(SAMPLE_RATE) / f64::from(rate)) / samples_per_frame as f64).round_ties_even();
    assert!(
        frame_step >= 1.0 && frame_step <= PARTIAL_FRAMES as f64,
        "rate {rate} gives a window step of {frame_step} frames, outside 1..=160"
    );
    let frame_step = frame_step as usize;
    let steps = (n_frames + frame_step + 1)
        .saturating_sub(PARTIAL_FRAMES)
        .max(1);
    let mel_slices: Vec<Range<usize>> = (0..steps)
        .step_by(frame_step)
        .map(|i| i..i + PARTIAL_FRAMES)
        .collect();
    let mut wav_slices: Vec<Range<usize>> = mel_slices
        .iter()
        .map(|m| m.start * samples_per_frame..m.end * samples_per_frame)
        .collect();
    let mut mel_slices = mel_slices;
    if let Some(last) = wav_slices.last() {
        let coverage =
            (n_samples as f64 - last.start as f64) / (last.end as f64 - last.start as f64);
        if coverage < f64::from(min_coverage) && mel_slices.len() > 1 {
            mel_slices.pop();
            wav_slices.pop();
        }
    }
    (wav_slices, mel_slices)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use diglett_audio::tone as sine;

    #[test]
    fn filterbank_shape_and_row_sums() {
        let fb = mel_filterbank();
        assert_eq!(fb.len(), N_MELS);
        // Expected row sums from an independent NumPy transcription of librosa 0.11
        // `filters.mel(sr=16000, n_fft=400, n_mels=40)`, which reproduces the fixtures' mel
        // frames to 3e-7. Area normalisation makes wide bands sum to about 1 / 40 Hz = 0.025.
        let expected = [
            (0, 0.024_809_042_0),
            (1, 0.024_809_041_1),
            (10, 0.024_809_041_8),
            (20, 0.025_219_751_5),
            (30, 0.024_935_600_2),
            (39, 0.024_978_757_0),
        ];
        for (m, want) in expected {
            let sum: f64 = fb[m].iter().map(|&w| f64::from(w)).sum();
            assert!((sum - want).abs() < 1e-9, "band {m}: {sum} vs {want}");
        }
        for (m, row) in fb.iter().enumerate() {
            assert!(row.iter().all(|&w| w >= 0.0));
            // Each band is one contiguous run of non-zero bins.
            let first = row.iter().position(|&w| w > 0.0).unwrap();
            let last = row.iter().rposition(|&w| w > 0.0).unwrap();
            assert!(
                row[first..=last].iter().all(|&w| w > 0.0),
                "band {m} has a hole"
            );
            if m > 0 {
                let prev = fb[m - 1].iter().position(|&w| w > 0.0).unwrap();
                assert!(first >= prev, "bands must move up in frequency");
            }
        }
        // The top band reaches 8 kHz's neighbourhood, the DC bin belongs to no band.
        assert!(fb[N_MELS - 1][N_FREQS - 2] > 0.0);
        assert!(fb.iter().all(|row| row[0] == 0.0));
    }

    /// The FFT, the centring and the sparse filterbank against a dense O(n^2) DFT in f64.
    #[test]
    fn mel_matches_direct_dft() {
        let mut state = 12345u64;
        let wav: Vec<f32> = (0..2000)
            .map(|_| {
                state = state
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                ((state >> 40) as f32 / (1u64 << 24) as f32) - 0.5
            })
            .collect();
        let mel = MelSpectrogram::new();
        let got = mel.compute(&wav);
        let n_frames = MelSpectrogram::n_frames(wav.len());
        assert_eq!(n_frames, 13);
        assert_eq!(got.len(), n_frames * N_MELS);
        let fb = mel_filterbank();
        for t in [0, 1, 6, 12] {
            let frame: Vec<f64> = (0..N_FFT)
                .map(|j| {
                    let i = (t * HOP_LENGTH + j) as isize - (N_FFT / 2) as isize;
                    let x = usize::try_from(i)
                        .ok()
                        .and_then(|i| wav.get(i))
                        .copied()
                        .unwrap_or(0.0);
                    let w =
                        0.5 - 0.5 * (2.0 * std::f64::consts::PI * j as f64 / N_FFT as f64).cos();
                    f64::from(x) * w
                })
                .collect();
            let power: Vec<f64> = (0..N_FREQS)
                .map(|k| {
                    let (mut re, mut im) = (0.0, 0.0);
                    for (j, &x) in frame.iter().enumerate() {
                        let a = -2.0 * std::f64::consts::PI * (k * j) as f64 / N_FFT as f64;
                        re += x * a.cos();
                        im += x * a.sin();
                    }
                    re * re + im * im
                })
                .collect();
            for m in 0..N_MELS {
                let want: f64 = fb[m]
                    .iter()
                    .zip(&power)
                    .map(|(&w, &p)| f64::from(w) * p)
                    .sum();
                let have = f64::from(got[t * N_MELS + m]);
                assert!(
                    (have - want).abs() <= 1e-6 * want.abs() + 1e-12,
                    "t {t} m {m}: {have} vs {want}"
                );
            }
        }
    }

    #[test]
    fn mel_of_a_tone_peaks_in_its_band() {
        let wav = sine(1000.0, 16_000, 16_000, 0.5);
        let mel = MelSpectrogram::new().compute(&wav);
        let frame = &mel[50 * N_MELS..51 * N_MELS];
        let peak = (0..N_MELS)
            .max_by(|&a, &b| frame[a].total_cmp(&frame[b]))
            .unwrap();
        // Slaney band centres are linear below 1 kHz: centre m+1 is at (m+1) * 8000/41... the
        // 1 kHz tone falls in the band whose triangle peaks nearest 1 kHz.
        let fb = mel_filterbank();
        let bin = 1000 / 40; // 40 Hz per bin
        let best = (0..N_MELS)
            .max_by(|&a, &b| fb[a][bin].total_cmp(&fb[b][bin]))
            .unwrap();
        assert_eq!(peak, best);
        // Empty input still has one (silent) frame, as librosa's centred STFT.
        let empty = MelSpectrogram::new().compute(&[]);
        assert_eq!(empty, vec![0.0; N_MELS]);
    }

    #[test]
    fn partial_slices_short_input_gives_one_window() {
        for n in [0, 1, 160, 16_000, 25_599] {
            let (wav, mel) = compute_partial_slices(n, PARTIAL_RATE, MIN_COVERAGE);
            assert_eq!(wav, vec![0..25_600], "n = {n}");
            assert_eq!(mel, vec![0..160], "n = {n}");
        }
    }

    #[test]
    fn partial_slices_step_and_coverage() {
        // 1.3 windows/s: round(16000 / 1.3 / 160) = 77 frames = 12320 samples.
        let (wav, mel) = compute_partial_slices(45_360, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav, vec![0..25_600, 12_320..37_920, 24_640..50_240]);
        assert_eq!(mel, vec![0..160, 77..237, 154..314]);
        // The second window starts at 12320; it is kept once 0.75 of it is audio.
        let keep = 12_320 + 19_200; // coverage exactly 0.75
        let (wav, _) = compute_partial_slices(keep, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav.len(), 2);
        assert_eq!(wav[1], 12_320..37_920);
        let (wav, _) = compute_partial_slices(keep - 1, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav, vec![0..25_600]);
        // Every window is 160 frames, and wav slices are 160 samples per frame.
        let (wav, mel) = compute_partial_slices(480_000, PARTIAL_RATE, MIN_COVERAGE);
        assert_eq!(wav.len(), 38);
        for (w, m) in wav.iter().zip(&mel) {
            assert_eq!(m.len(), PARTIAL_FRAMES);
            assert_eq!((w.start, w.end), (m.start * 160, m.end * 160));
        }
    }

    #[test]
    #[should_panic(expected = "min_coverage")]
    fn partial_slices_reject_zero_coverage() {
        let _ = compute_partial_slices(16_000, PARTIAL_RATE, 0.0);
    }
}
