//! The plain-Rust forward pass on weights extracted from [`SileroVad`] once: the batched,
//! state-free front end (STFT, encoder, LSTM input projection) and the per-chunk LSTM cell.

use std::sync::Arc;

use burn::tensor::Tensor;
use rayon::prelude::*;
use realfft::num_complex::Complex;
use realfft::{RealFftPlanner, RealToComplex};

use super::gemm::gemm_nt;
use super::{MODEL_INPUT, SileroVad, VadError};

/// A conv1d layer (k = 3, padding 1) in im2col layout.
#[derive(Debug)]
struct FastConv {
    channels_in: usize,
    channels_out: usize,
    stride: usize,
    /// `[channels_out, 3 * channels_in]`, tap-major per row (`w[o][tap * c_in + c]`) so that an
    /// im2col row is three contiguous time steps of a time-major activation.
    weight: Vec<f32>,
    bias: Vec<f32>,
}

/// The module's weights laid out for the fast path.
#[derive(Debug)]
pub(super) struct FastWeights {
    n_fft: usize,
    hop: usize,
    /// Frames per chunk: (640 − 256) / 128 + 1 = 4.
    frames: usize,
    bins: usize,
    /// `[2 * bins, n_fft]`, the conv weight as is.
    stft: Vec<f32>,
    /// The same transform as a real FFT, when the basis is a windowed DFT (it is, for the
    /// released weights: a periodic Hann window, checked at load to 1e-6).
    stft_fft: Option<WindowedFft>,
    encoder: Vec<FastConv>,
    pub(super) hidden: usize,
    /// `[4 * hidden, hidden]` (gates i, f, g, o): the LSTM's input weights, row per gate unit.
    w_input: Vec<f32>,
    /// `[4 * hidden, hidden]`: the recurrent weights.
    w_hidden: Vec<f32>,
    /// `[4 * hidden]`: input and hidden biases summed.
    bias: Vec<f32>,
    /// `[hidden]`, the decoder's 1×1 conv.
    decoder_weight: Vec<f32>,
    decoder_bias: f32,
}

/// A parameter's values as a flat row-major vector.
fn values<const D: usize>(param: &burn::module::Param<Tensor<D>>) -> Result<Vec<f32>, VadError> {
    param
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .map_err(|e| VadError::Layout(format!("{e:?}")))
}

fn bias_values(bias: Option<&burn::module::Param<Tensor<1>>>) -> Result<Vec<f32>, VadError> {
    values(bias.ok_or_else(|| VadError::Layout("a layer has no bias".into()))?)
}

impl FastWeights {
    pub(super) fn from_module(model: &SileroVad) -> Result<Self, VadError> {
        let [stft_rows, _, n_fft] = model.stft.weight.dims();
        let bins = stft_rows / 2;
        let hop = model.stft.stride;
        let frames = (MODEL_INPUT - n_fft) / hop + 1;

        let mut encoder = Vec::with_capacity(model.encoder.len());
        for conv in &model.encoder {
            let [channels_out, channels_in, kernel] = conv.weight.dims();
            if kernel != 3 {
                return Err(VadError::Layout(format!(
                    "encoder kernel {kernel}, expected 3"
                )));
            }
            let w = values(&conv.weight)?;
            let mut weight = vec![0.0; channels_out * 3 * channels_in];
            for o in 0..channels_out {
                for c in 0..channels_in {
                    for tap in 0..3 {
                        weight[o * 3 * channels_in + tap * channels_in + c] =
                            w[(o * channels_in + c) * 3 + tap];
                    }
                }
            }
            encoder.push(FastConv {
                channels_in,
                channels_out,
                stride: conv.stride,
                weight,
                bias: bias_values(conv.bias.as_ref())?,
            });
        }

        let rnn = &model.rnn;
        let forget = rnn
            .forget_gate
            .as_ref()
            .ok_or_else(|| VadError::Layout("coupled LSTM gates".into()))?;
        let hidden = rnn.d_hidden;
        let gates = [&rnn.input_gate, forget, &rnn.cell_gate, &rnn.output_gate];
        let mut w_input = Vec::with_capacity(4 * hidden * hidden);
        let mut w_hidden = Vec::with_capacity(4 * hidden * hidden);
        let mut bias = Vec::with_capacity(4 * hidden);
        for gate in gates {
            // burn's Linear stores [d_in, d_out]; the fast path wants one row per output unit.
            for (linear, out) in [
                (&gate.input_transform, &mut w_input),
                (&gate.hidden_transform, &mut w_hidden),
            ] {
                let [d_in, d_out] = linear.weight.dims();
                if d_out != hidden || d_in != hidden {
                    return Err(VadError::Layout(format!("LSTM linear {d_in}×{d_out}")));
                }
                let w = values(&linear.weight)?;
                for o in 0..d_out {
                    out.extend((0..d_in).map(|i| w[i * d_out + o]));
                }
            }
            let b_in = bias_values(gate.input_transform.bias.as_ref())?;
            let b_hid = bias_values(gate.hidden_transform.bias.as_ref())?;
            bias.extend(b_in.iter().zip(&b_hid).map(|(a, b)| a + b));
        }

        let decoder_bias = bias_values(model.decoder.bias.as_ref())?;
        let last_channels = encoder.last().map_or(bins, |c| c.channels_out);
        if last_channels != hidden || decoder_bias.len() != 1 {
            return Err(VadError::Layout(
                "encoder, LSTM and decoder widths differ".into(),
            ));
        }
        let stft = values(&model.stft.weight)?;
        Ok(Self {
            n_fft,
            hop,
            frames,
            bins,
            stft_fft: WindowedFft::matching(&stft, n_fft),
            stft,
            encoder,
            hidden,
            w_input,
            w_hidden,
            bias,
            decoder_weight: values(&model.decoder.weight)?,
            decoder_bias: decoder_bias[0],
        })
    }

    /// Everything that does not depend on the recurrent state, for `inputs` = `n * 640`
    /// samples: returns `[n, 4 * hidden]`, the LSTM input projection `W_x · features + b`.
    /// Splits the batch over the current rayon pool (the caller's `Compute`), and each part
    /// into blocks of [`FRONT_END_BLOCK`] chunks whose intermediates stay in cache.
    pub(super) fn front_end(&self, inputs: &[f32]) -> Vec<f32> {
        let n = inputs.len() / MODEL_INPUT;
        let width = 4 * self.hidden;
        let mut out = vec![0.0; n * width];
        let run = |inputs: &[f32], out: &mut [f32]| {
            let mut scratch = Scratch::default();
            for (inputs, out) in inputs
                .chunks(FRONT_END_BLOCK * MODEL_INPUT)
                .zip(out.chunks_mut(FRONT_END_BLOCK * width))
            {
                self.front_end_block(inputs, out, &mut scratch);
            }
        };
        // Below this many chunks per thread the split costs more than it saves.
        const MIN_CHUNKS_PER_TASK: usize = 8;
        let tasks = rayon::current_num_threads()
            .min(n / MIN_CHUNKS_PER_TASK)
            .max(1);
        if tasks == 1 {
            run(inputs, &mut out);
        } else {
            let per_task = n.div_ceil(tasks);
            inputs
                .par_chunks(per_task * MODEL_INPUT)
                .zip(out.par_chunks_mut(per_task * width))
                .for_each(|(inputs, out)| run(inputs, out));
        }
        out
    }

    fn front_end_block(&self, inputs: &[f32], out: &mut [f32], scratch: &mut Scratch) {
        let n = inputs.len() / MODEL_INPUT;
        let Scratch {
            frames,
            spectrum,
            x,
            y,
            columns,
            fft: fft_scratch,
        } = scratch;
        // STFT frames, time-major: [n * frames, n_fft].
        frames.clear();
        for input in inputs.chunks_exact(MODEL_INPUT) {
            for f in 0..self.frames {
                frames.extend_from_slice(&input[f * self.hop..][..self.n_fft]);
            }
        }
        x.clear();
        if let Some(fft) = &self.stft_fft {
            // ≈ 25× fewer operations than the 258 × 256 product, which was 40% of the work.
            for frame in frames.chunks_exact_mut(self.n_fft) {
                fft.magnitude(frame, fft_scratch, x);
            }
        } else {
            spectrum.resize(n * self.frames * 2 * self.bins, 0.0);
            gemm_nt(frames, &self.stft, self.n_fft, spectrum);
            for s in spectrum.chunks_exact(2 * self.bins) {
                let (re, im) = s.split_at(self.bins);
                x.extend(re.iter().zip(im).map(|(r, i)| (r * r + i * i).sqrt()));
            }
        }

        let mut time = self.frames;
        for conv in &self.encoder {
            time = conv.forward(x, n, time, columns, y);
            std::mem::swap(x, y);
        }
        // The encoder's last time step per chunk: [n, hidden].
        y.clear();
        for chunk in x.chunks_exact(time * self.hidden) {
            y.extend_from_slice(&chunk[(time - 1) * self.hidden..]);
        }
        gemm_nt(y, &self.w_input, self.hidden, out);
        for row in out.chunks_exact_mut(4 * self.hidden) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v += b;
            }
        }
    }

    /// `gates[b] = W_h · h[b]` for each row `b` of `h` (`[batch, hidden]` → `[batch, 4 * hidden]`).
    pub(super) fn recurrent(&self, h: &[f32], gates: &mut [f32]) {
        gemm_nt(h, &self.w_hidden, self.hidden, gates);
    }

    /// The rest of one LSTM step and the decoder for one stream: `x` is this chunk's input
    /// projection, `recurrent` is `W_h · h`; updates `h`, `c` and returns the probability.
    pub(super) fn cell(&self, x: &[f32], recurrent: &[f32], h: &mut [f32], c: &mut [f32]) -> f32 {
        let n = self.hidden;
        let (xi, rest) = x.split_at(n);
        let (xf, rest) = rest.split_at(n);
        let (xg, xo) = rest.split_at(n);
        let (ri, rest) = recurrent.split_at(n);
        let (rf, rest) = rest.split_at(n);
        let (rg, ro) = rest.split_at(n);
        let mut logit = self.decoder_bias;
        for j in 0..n {
            let i = sigmoid_f32(xi[j] + ri[j]);
            let f = sigmoid_f32(xf[j] + rf[j]);
            let g = tanh_f32(xg[j] + rg[j]);
            let o = sigmoid_f32(xo[j] + ro[j]);
            c[j] = f * c[j] + i * g;
            h[j] = o * tanh_f32(c[j]);
            logit += self.decoder_weight[j] * h[j].max(0.0);
        }
        sigmoid_f32(logit)
    }
}

fn sigmoid_f32(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `tanh` through `exp`: glibc's `tanhf` goes through the much slower `expm1f` and was 16% of
/// the whole batch run. Absolute error ≲ 1e-7 (the relative error near 0 does not matter here);
/// saturates correctly since `exp` overflows to ∞ and underflows to 0.
fn tanh_f32(x: f32) -> f32 {
    1.0 - 2.0 / (1.0 + (2.0 * x).exp())
}

impl FastConv {
    /// `x`: `[n, t_in, channels_in]` time-major → `y`: `[n, t_out, channels_out]` after ReLU;
    /// returns t_out. `columns` is scratch space for the im2col matrix.
    fn forward(
        &self,
        x: &[f32],
        n: usize,
        t_in: usize,
        columns: &mut Vec<f32>,
        y: &mut Vec<f32>,
    ) -> usize {
        let c_in = self.channels_in;
        // Output length of a k = 3, padding 1 convolution.
        let t_out = (t_in + 2 - 3) / self.stride + 1;
        let width = 3 * c_in;
        columns.clear();
        columns.resize(n * t_out * width, 0.0);
        for (chunk, x) in x.chunks_exact(t_in * c_in).enumerate() {
            for t in 0..t_out {
                let row = &mut columns[(chunk * t_out + t) * width..][..width];
                for (tap, dst) in row.chunks_exact_mut(c_in).enumerate() {
                    // Input time of this tap: t * stride + tap − padding; outside is zero padding.
                    if let Some(t_src) = (t * self.stride + tap).checked_sub(1)
                        && t_src < t_in
                    {
                        dst.copy_from_slice(&x[t_src * c_in..][..c_in]);
                    }
                }
            }
        }
        y.resize(n * t_out * self.channels_out, 0.0);
        gemm_nt(columns, &self.weight, width, y);
        for row in y.chunks_exact_mut(self.channels_out) {
            for (v, b) in row.iter_mut().zip(&self.bias) {
                *v = (*v + b).max(0.0);
            }
        }
        t_out
    }
}

/// Chunks per front-end block: large enough for the matrix products to run at full speed,
/// small enough that a block's intermediates (≈ 32 × 4 × 258 floats at most) stay in L2.
pub(super) const FRONT_END_BLOCK: usize = 32;

/// The front end's intermediate buffers, reused from block to block.
#[derive(Debug, Default)]
struct Scratch {
    frames: Vec<f32>,
    spectrum: Vec<f32>,
    x: Vec<f32>,
    y: Vec<f32>,
    columns: Vec<f32>,
    fft: FftScratch,
}

/// The STFT conv computed as window × real FFT, used only when the loaded basis is exactly
/// that (so the weights still define the model; anything else falls back to the product).
struct WindowedFft {
    window: Vec<f32>,
    fft: Arc<dyn RealToComplex<f32>>,
}

impl std::fmt::Debug for WindowedFft {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WindowedFft")
            .field("len", &self.window.len())
            .finish_non_exhaustive()
    }
}

/// Buffers of one [`WindowedFft::magnitude`] call.
#[derive(Debug, Default)]
struct FftScratch {
    spectrum: Vec<Complex<f32>>,
    work: Vec<Complex<f32>>,
}

impl WindowedFft {
    /// Largest deviation of the basis from `window · e^{-2πikn/N}` still taken as equal; the
    /// released basis deviates by 8e-8 (float32 rounding of the same formula).
    const TOLERANCE: f64 = 1e-6;

    /// `Some` when `basis` (`[2 * (n_fft / 2 + 1), n_fft]`, real rows then imaginary rows) is a
    /// windowed DFT; the window is then its first (zero-frequency, real) row.
    fn matching(basis: &[f32], n_fft: usize) -> Option<Self> {
        let bins = n_fft / 2 + 1;
        if n_fft == 0 || basis.len() != 2 * bins * n_fft {
            return None;
        }
        let window = basis[..n_fft].to_vec();
        let (re, im) = basis.split_at(bins * n_fft);
        for k in 0..bins {
            for (n, &w) in window.iter().enumerate() {
                // (k · n) mod N keeps the angle small, so the reference itself is exact.
                let angle = std::f64::consts::TAU * ((k * n) % n_fft) as f64 / n_fft as f64;
                let w = f64::from(w);
                let re_err = (f64::from(re[k * n_fft + n]) - w * angle.cos()).abs();
                let im_err = (f64::from(im[k * n_fft + n]) + w * angle.sin()).abs();
                if re_err.max(im_err) > Self::TOLERANCE {
                    return None;
                }
            }
        }
        let fft = RealFftPlanner::<f32>::new().plan_fft_forward(n_fft);
        Some(Self { window, fft })
    }

    /// Appends `|X_k|` for k = 0..=N/2 of the windowed `frame` (overwritten) to `out`.
    fn magnitude(&self, frame: &mut [f32], scratch: &mut FftScratch, out: &mut Vec<f32>) {
        for (x, w) in frame.iter_mut().zip(&self.window) {
            *x *= w;
        }
        scratch
            .spectrum
            .resize(self.fft.complex_len(), Complex::default());
        scratch
            .work
            .resize(self.fft.get_scratch_len(), Complex::default());
        self.fft
            .process_with_scratch(frame, &mut scratch.spectrum, &mut scratch.work)
            .expect("FFT buffers are sized from the plan");
        // sqrt(re² + im²) as the original computes it (not `norm`'s slower hypot).
        out.extend(
            scratch
                .spectrum
                .iter()
                .map(|c| (c.re * c.re + c.im * c.im).sqrt()),
        );
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::vad::{CHUNK, CONTEXT, model_inputs};

    #[test]
    fn fft_front_end_matches_the_stft_product() {
        let model = SileroVad::pretrained(&crate::compute::device()).unwrap();
        let with_fft = FastWeights::from_module(&model).unwrap();
        assert!(
            with_fft.stft_fft.is_some(),
            "released basis is a Hann-windowed DFT"
        );
        let mut with_product = FastWeights::from_module(&model).unwrap();
        with_product.stft_fft = None;
        // 40 chunks of a deterministic chirp-like signal.
        let samples: Vec<f32> = (0..40 * CHUNK)
            .map(|i| (i as f32 * 0.01 * (1.0 + i as f32 * 1e-4)).sin() * 0.3)
            .collect();
        let inputs = model_inputs(&[0.0; CONTEXT], &samples);
        let a = with_fft.front_end(&inputs);
        let b = with_product.front_end(&inputs);
        let max = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0, f32::max);
        let scale = b.iter().map(|x| x.abs()).fold(0.0, f32::max);
        assert!(max <= 1e-4 * scale, "max diff {max}, scale {scale}");
    }
}
