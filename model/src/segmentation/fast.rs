//! The plain-Rust forward pass of segmentation-3.0 on weights extracted from [`Segmentation`]
//! once. Activations are time-major (`[frames, channels]`), so every convolution is one matrix
//! product whose rows are overlapping windows of its input ([`gemm_nt_strided`]), and the
//! LSTM's input projections are single products over all frames of the batch.

use burn::module::Param;
use burn::nn::Lstm;
use burn::tensor::Tensor;
use rayon::prelude::*;

use super::{LEAKY_SLOPE, NUM_CLASSES, POOL, Segmentation, SegmentationError};
use crate::vad::gemm::{gemm_nt, gemm_nt_strided};

/// InstanceNorm's epsilon (PyTorch's default, as the checkpoint uses it).
const EPS: f64 = 1e-5;
/// Filterbank frames per matrix product: a multiple of the pool size, small enough that the
/// block (192 × 80 floats) stays in L1/L2 between the product and the pooling.
const SINC_BLOCK: usize = 64 * POOL;

/// Every intermediate of one chunk, in the fixtures' layouts.
#[derive(Debug, Clone)]
pub struct Stages {
    /// Output frames.
    pub frames: usize,
    /// SincNet output, channel-major `[60, frames]` (as pyannote's `(feature, frame)`).
    pub sincnet: Vec<f32>,
    /// LSTM stack output `[frames, 256]`, forward direction first.
    pub lstm: Vec<f32>,
    /// Log-probabilities per frame.
    pub log_probs: Vec<[f32; NUM_CLASSES]>,
}

/// Per-channel affine parameters of an InstanceNorm.
#[derive(Debug)]
struct Norm {
    gamma: Vec<f32>,
    beta: Vec<f32>,
}

/// A learned conv1d (stride 1, no padding).
#[derive(Debug)]
struct Conv {
    channels_in: usize,
    channels_out: usize,
    kernel: usize,
    /// `[channels_out, kernel * channels_in]`, tap-major per row (`w[o][tap * c_in + c]`), so
    /// that one output frame's window is `kernel` contiguous rows of a time-major input.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// One direction of one LSTM layer.
#[derive(Debug)]
struct LstmDirection {
    d_input: usize,
    /// `[4 * hidden, d_input]` (gates i, f, g, o), one row per gate unit.
    w_input: Vec<f32>,
    /// `[4 * hidden, hidden]`.
    w_hidden: Vec<f32>,
    /// `[4 * hidden]`: input and hidden biases summed.
    bias: Vec<f32>,
}

/// A linear layer, `[d_output, d_input]` row per output unit.
#[derive(Debug)]
struct Dense {
    d_input: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The module's weights laid out for the fast path.
#[derive(Debug)]
pub(super) struct FastWeights {
    wav_gamma: f32,
    wav_beta: f32,
    filters: usize,
    taps: usize,
    stride: usize,
    /// `[filters, taps]`.
    filterbank: Vec<f32>,
    /// One per max-pool stage (3).
    norms: Vec<Norm>,
    /// The two learned convolutions.
    convs: Vec<Conv>,
    hidden: usize,
    /// `[forward, reverse]` per layer.
    lstm: Vec<[LstmDirection; 2]>,
    linear: Vec<Dense>,
    classifier: Dense,
}

/// A parameter's values as a flat row-major vector.
fn values<const D: usize>(param: &Param<Tensor<D>>) -> Result<Vec<f32>, SegmentationError> {
    param
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| SegmentationError::Layout(format!("{e:?}")))
}

fn present<'a, T>(x: Option<&'a T>, what: &str) -> Result<&'a T, SegmentationError> {
    x.ok_or_else(|| SegmentationError::Layout(format!("{what} missing")))
}

fn norm(n: &burn::nn::InstanceNorm) -> Result<Norm, SegmentationError> {
    Ok(Norm {
        gamma: values(present(n.gamma.as_ref(), "InstanceNorm gamma")?)?,
        beta: values(present(n.beta.as_ref(), "InstanceNorm beta")?)?,
    })
}

/// burn's `Linear` stores `[d_input, d_output]`; the fast path wants one row per output unit.
fn transposed(linear: &burn::nn::Linear) -> Result<(usize, usize, Vec<f32>), SegmentationError> {
    let [d_input, d_output] = linear.weight.dims();
    let w = values(&linear.weight)?;
    let mut out = Vec::with_capacity(w.len());
    for o in 0..d_output {
        out.extend((0..d_input).map(|i| w[i * d_output + o]));
    }
    Ok((d_input, d_output, out))
}

fn dense(linear: &burn::nn::Linear) -> Result<Dense, SegmentationError> {
    let (d_input, _, weight) = transposed(linear)?;
    Ok(Dense {
        d_input,
        weight,
        bias: values(present(linear.bias.as_ref(), "linear bias")?)?,
    })
}

fn lstm_direction(lstm: &Lstm, hidden: usize) -> Result<LstmDirection, SegmentationError> {
    let forget = lstm
        .forget_gate
        .as_ref()
        .ok_or_else(|| SegmentationError::Layout("coupled LSTM gates".into()))?;
    let mut w_input = Vec::new();
    let mut w_hidden = Vec::new();
    let mut bias = Vec::with_capacity(4 * hidden);
    let mut d_input = 0;
    // torch's packed order i, f, g, o, which `cell` below assumes.
    for gate in [&lstm.input_gate, forget, &lstm.cell_gate, &lstm.output_gate] {
        let (d_in, d_out, w) = transposed(&gate.input_transform)?;
        let (h_in, h_out, u) = transposed(&gate.hidden_transform)?;
        if d_out != hidden || h_in != hidden || h_out != hidden {
            return Err(SegmentationError::Layout(format!(
                "LSTM gate {d_in}×{d_out}, {h_in}×{h_out}"
            )));
        }
        d_input = d_in;
        w_input.extend(w);
        w_hidden.extend(u);
        let b_in = values(present(gate.input_transform.bias.as_ref(), "LSTM bias")?)?;
        let b_hid = values(present(gate.hidden_transform.bias.as_ref(), "LSTM bias")?)?;
        bias.extend(b_in.iter().zip(&b_hid).map(|(a, b)| a + b));
    }
    Ok(LstmDirection {
        d_input,
        w_input,
        w_hidden,
        bias,
    })
}

impl FastWeights {
    pub(super) fn from_module(model: &Segmentation) -> Result<Self, SegmentationError> {
        let s = &model.sincnet;
        let [filters, one, taps] = s.filterbank.weight.dims();
        if one != 1 || s.norm1d.len() != s.conv1d.len() + 1 {
            return Err(SegmentationError::Layout("SincNet stages".into()));
        }
        let wav = norm(&s.wav_norm)?;
        let mut convs = Vec::with_capacity(s.conv1d.len());
        for conv in &s.conv1d {
            let [channels_out, channels_in, kernel] = conv.weight.dims();
            let w = values(&conv.weight)?;
            let mut weight = vec![0.0; w.len()];
            for o in 0..channels_out {
                for c in 0..channels_in {
                    for tap in 0..kernel {
                        weight[(o * kernel + tap) * channels_in + c] =
                            w[(o * channels_in + c) * kernel + tap];
                    }
                }
            }
            convs.push(Conv {
                channels_in,
                channels_out,
                kernel,
                weight,
                bias: values(present(conv.bias.as_ref(), "conv bias")?)?,
            });
        }
        let hidden = model
            .lstm
            .first()
            .map(|l| l.d_hidden)
            .ok_or_else(|| SegmentationError::Layout("no LSTM layer".into()))?;
        let lstm = model
            .lstm
            .iter()
            .map(|l| {
                Ok([
                    lstm_direction(&l.forward, hidden)?,
                    lstm_direction(&l.reverse, hidden)?,
                ])
            })
            .collect::<Result<Vec<_>, SegmentationError>>()?;
        Ok(Self {
            wav_gamma: wav.gamma.first().copied().unwrap_or(1.0),
            wav_beta: wav.beta.first().copied().unwrap_or(0.0),
            filters,
            taps,
            stride: s.filterbank.stride,
            filterbank: values(&s.filterbank.weight)?,
            norms: s.norm1d.iter().map(norm).collect::<Result<_, _>>()?,
            convs,
            hidden,
            lstm,
            linear: model.linear.iter().map(dense).collect::<Result<_, _>>()?,
            classifier: dense(&model.classifier)?,
        })
    }

    /// Log-probs of equal-length chunks (each at least one receptive field long). Must run
    /// inside `Compute::install`: the SincNet front ends of a batch run in parallel on the pool,
    /// and the two directions of each LSTM layer run side by side.
    pub(super) fn forward(&self, chunks: &[&[f32]]) -> Vec<Vec<[f32; NUM_CLASSES]>> {
        if chunks.is_empty() {
            return Vec::new();
        }
        let (features, frames) = self.sincnet_batch(chunks);
        let lstm = self.lstm(features, chunks.len(), frames);
        let log_probs = self.classify(lstm);
        log_probs.chunks_exact(frames).map(<[_]>::to_vec).collect()
    }

    /// One chunk's intermediates. Must run inside `Compute::install`.
    pub(super) fn stages(&self, chunk: &[f32]) -> Stages {
        let (features, frames) = self.sincnet(chunk);
        let channels = features.len() / frames;
        let mut sincnet = vec![0.0; features.len()];
        for (t, row) in features.chunks_exact(channels).enumerate() {
            for (c, &v) in row.iter().enumerate() {
                sincnet[c * frames + t] = v;
            }
        }
        let lstm = self.lstm(features, 1, frames);
        let log_probs = self.classify(lstm.clone());
        Stages {
            frames,
            sincnet,
            lstm,
            log_probs,
        }
    }

    /// SincNet for every chunk, concatenated: `([batch * frames, 60], frames)`.
    fn sincnet_batch(&self, chunks: &[&[f32]]) -> (Vec<f32>, usize) {
        let per_chunk: Vec<(Vec<f32>, usize)> =
            chunks.par_iter().map(|c| self.sincnet(c)).collect();
        let frames = per_chunk.first().map_or(0, |(_, f)| *f);
        (per_chunk.into_iter().flat_map(|(x, _)| x).collect(), frames)
    }

    /// SincNet for one waveform: `([frames, 60] time-major, frames)`.
    fn sincnet(&self, wave: &[f32]) -> (Vec<f32>, usize) {
        // InstanceNorm1d(1) over the whole waveform (biased variance), then its affine.
        let n = wave.len() as f64;
        let mean = wave.iter().map(|&x| f64::from(x)).sum::<f64>() / n;
        let var = wave
            .iter()
            .map(|&x| (f64::from(x) - mean).powi(2))
            .sum::<f64>()
            / n;
        let scale = 1.0 / (var + EPS).sqrt();
        let x: Vec<f32> = wave
            .iter()
            .map(|&v| ((f64::from(v) - mean) * scale) as f32 * self.wav_gamma + self.wav_beta)
            .collect();

        // Sinc filterbank (stride 10) → |·| → max-pool, in blocks of whole pool windows; the 0–2
        // trailing frames that do not fill a window are never computed (floor mode).
        let f0 = (x.len() - self.taps) / self.stride + 1;
        let pooled_frames = f0 / POOL;
        let mut y = vec![0.0; pooled_frames * self.filters];
        let mut block = vec![0.0; SINC_BLOCK * self.filters];
        for start in (0..pooled_frames * POOL).step_by(SINC_BLOCK) {
            let m = SINC_BLOCK.min(pooled_frames * POOL - start);
            let out = &mut block[..m * self.filters];
            gemm_nt_strided(
                &x[start * self.stride..],
                self.stride,
                m,
                &self.filterbank,
                self.taps,
                out,
            );
            let dst = &mut y[start / POOL * self.filters..][..m / POOL * self.filters];
            for (pooled, window) in dst
                .chunks_exact_mut(self.filters)
                .zip(out.chunks_exact(POOL * self.filters))
            {
                for (c, p) in pooled.iter_mut().enumerate() {
                    *p = (0..POOL)
                        .map(|j| window[j * self.filters + c].abs())
                        .fold(f32::NEG_INFINITY, f32::max);
                }
            }
        }
        let mut frames = pooled_frames;
        norm_leaky(&mut y, self.filters, &self.norms[0]);

        for (conv, norm) in self.convs.iter().zip(&self.norms[1..]) {
            let t_out = frames - conv.kernel + 1;
            let mut z = vec![0.0; t_out * conv.channels_out];
            gemm_nt_strided(
                &y,
                conv.channels_in,
                t_out,
                &conv.weight,
                conv.kernel * conv.channels_in,
                &mut z,
            );
            frames = t_out / POOL;
            y = vec![0.0; frames * conv.channels_out];
            for (pooled, window) in y
                .chunks_exact_mut(conv.channels_out)
                .zip(z.chunks_exact(POOL * conv.channels_out))
            {
                for (c, p) in pooled.iter_mut().enumerate() {
                    *p = (0..POOL)
                        .map(|j| window[j * conv.channels_out + c])
                        .fold(f32::NEG_INFINITY, f32::max)
                        + conv.bias[c];
                }
            }
            norm_leaky(&mut y, conv.channels_out, norm);
        }
        (y, frames)
    }

    /// The bidirectional LSTM stack on `[batch * frames, 60]` → `[batch * frames, 256]`.
    fn lstm(&self, mut x: Vec<f32>, batch: usize, frames: usize) -> Vec<f32> {
        let h = self.hidden;
        for [forward, reverse] in &self.lstm {
            let (fwd, rev) = rayon::join(
                || self.direction(forward, &x, batch, frames, false),
                || self.direction(reverse, &x, batch, frames, true),
            );
            x = vec![0.0; batch * frames * 2 * h];
            for ((out, f), r) in x
                .chunks_exact_mut(2 * h)
                .zip(fwd.chunks_exact(h))
                .zip(rev.chunks_exact(h))
            {
                out[..h].copy_from_slice(f);
                out[h..].copy_from_slice(r);
            }
        }
        x
    }

    /// One direction of one layer, zero initial state: `[batch * frames, d_input]` →
    /// `[batch * frames, hidden]`; `reverse` runs t = frames − 1 … 0 and writes each output at
    /// its own t (PyTorch's `_reverse`).
    fn direction(
        &self,
        dir: &LstmDirection,
        x: &[f32],
        batch: usize,
        frames: usize,
        reverse: bool,
    ) -> Vec<f32> {
        let h = self.hidden;
        let width = 4 * h;
        // Everything that does not depend on the state: W_x · x_t + b for all frames at once.
        let mut projected = vec![0.0; batch * frames * width];
        gemm_nt(x, &dir.w_input, dir.d_input, &mut projected);
        for row in projected.chunks_exact_mut(width) {
            for (v, b) in row.iter_mut().zip(&dir.bias) {
                *v += b;
            }
        }
        let mut out = vec![0.0; batch * frames * h];
        let mut state_h = vec![0.0; batch * h];
        let mut state_c = vec![0.0; batch * h];
        let mut recurrent = vec![0.0; batch * width];
        for step in 0..frames {
            let t = if reverse { frames - 1 - step } else { step };
            gemm_nt(&state_h, &dir.w_hidden, h, &mut recurrent);
            for b in 0..batch {
                let row = b * frames + t;
                let hb = &mut state_h[b * h..][..h];
                cell(
                    &projected[row * width..][..width],
                    &recurrent[b * width..][..width],
                    hb,
                    &mut state_c[b * h..][..h],
                );
                out[row * h..][..h].copy_from_slice(hb);
            }
        }
        out
    }

    /// Linear + LeakyReLU layers, classifier, log-softmax: `[rows, 256]` → `[rows]` of 7.
    fn classify(&self, mut x: Vec<f32>) -> Vec<[f32; NUM_CLASSES]> {
        for layer in &self.linear {
            x = layer.forward(&x);
            for v in &mut x {
                *v = leaky(*v);
            }
        }
        self.classifier
            .forward(&x)
            .chunks_exact(NUM_CLASSES)
            .map(|z| {
                let max = z.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let sum: f32 = z.iter().map(|v| (v - max).exp()).sum();
                let log_sum = sum.ln();
                std::array::from_fn(|k| z[k] - max - log_sum)
            })
            .collect()
    }
}

impl Dense {
    fn forward(&self, x: &[f32]) -> Vec<f32> {
        let d_output = self.bias.len();
        let mut y = vec![0.0; x.len() / self.d_input * d_output];
        gemm_nt(x, &self.weight, self.d_input, &mut y);
        for row in y.chunks_exact_mut(d_output) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
        y
    }
}

/// InstanceNorm (per channel over time, biased variance, statistics in f64) then LeakyReLU, in
/// place on a time-major `[frames, channels]` buffer.
fn norm_leaky(x: &mut [f32], channels: usize, norm: &Norm) {
    let frames = (x.len() / channels) as f64;
    let mut mean = vec![0.0f64; channels];
    for row in x.chunks_exact(channels) {
        for (m, &v) in mean.iter_mut().zip(row) {
            *m += f64::from(v);
        }
    }
    for m in &mut mean {
        *m /= frames;
    }
    let mut var = vec![0.0f64; channels];
    for row in x.chunks_exact(channels) {
        for ((s, &v), m) in var.iter_mut().zip(row).zip(&mean) {
            *s += (f64::from(v) - m).powi(2);
        }
    }
    let scale: Vec<f64> = var
        .iter()
        .map(|s| 1.0 / (s / frames + EPS).sqrt())
        .collect();
    for row in x.chunks_exact_mut(channels) {
        for (c, v) in row.iter_mut().enumerate() {
            let normalised = ((f64::from(*v) - mean[c]) * scale[c]) as f32;
            *v = leaky(normalised * norm.gamma[c] + norm.beta[c]);
        }
    }
}

fn leaky(x: f32) -> f32 {
    if x >= 0.0 { x } else { x * LEAKY_SLOPE as f32 }
}

/// The rest of one LSTM step (torch gate order i, f, g, o): `x` is this frame's input
/// projection, `recurrent` is `W_h · h`; updates `h` and `c`.
fn cell(x: &[f32], recurrent: &[f32], h: &mut [f32], c: &mut [f32]) {
    let n = h.len();
    for j in 0..n {
        let i = sigmoid(x[j] + recurrent[j]);
        let f = sigmoid(x[n + j] + recurrent[n + j]);
        let g = tanh(x[2 * n + j] + recurrent[2 * n + j]);
        let o = sigmoid(x[3 * n + j] + recurrent[3 * n + j]);
        c[j] = f * c[j] + i * g;
        h[j] = o * tanh(c[j]);
    }
}

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh` through `exp` (as the VAD's fast path: glibc's `tanhf` is much slower); absolute
/// error ≲ 1e-7, saturates correctly.
fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + (2.0 * x).exp())
}
