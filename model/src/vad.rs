//! Silero VAD v6 (16 kHz branch): speech probabilities per 32 ms chunk, and speech segments.
//!
//! The network, per 512-sample chunk (see `shared/README.md`, "Silero VAD v6, 16 kHz branch"):
//! 64 samples of context + 512 new ones (576) → reflect-pad 64 on the right (640) → STFT as a
//! strided conv1d (258 × 1 × 256, stride 128, 4 frames) → magnitude of the 129 bins → four
//! conv1d + ReLU (k = 3, padding 1, strides 1, 2, 2, 1; 129 → 128 → 64 → 64 → 128 channels, one
//! time step left) → LSTM cell 128 → 128 whose state is carried from chunk to chunk → ReLU →
//! conv1d 128 → 1 → sigmoid.
//!
//! Two implementations of that forward pass live here:
//! - [`SileroVad`], the burn module: the reference definition, loaded with
//!   [`crate::weights::load_exact`], used by [`Vad::probabilities_reference`] and
//!   the parity tests.
//! - A plain-Rust path on the same weights (extracted once), used by every production entry point
//!   ([`Vad::probabilities`], [`Vad::probabilities_many`], [`VadStream`]). burn-ndarray pays a
//!   fixed cost per op that dominates for tensors this small, and the LSTM recurrence is
//!   sequential, so the fast path batches everything that does not depend on the recurrent state
//!   (the whole conv front end *and* the LSTM's input projection) over all chunks at hand as a
//!   few matrix products, and keeps per-chunk work to one 128 → 512 matrix-vector product plus
//!   the gate nonlinearities. The STFT conv runs as window × real FFT once the loaded basis is
//!   verified to be a Hann-windowed DFT (it is; otherwise the product is used). The products use
//!   [`pulp`] for runtime SIMD dispatch (AVX-512 or AVX2+FMA where present) without `unsafe` in
//!   this crate, and everything runs on the caller's [`Compute`] pool only.
//!
//! Segmentation follows silero-vad's `get_speech_timestamps` (hysteresis between `threshold` and
//! `neg_threshold`, minimum speech and silence durations, padding) — see [`speech_segments`].
//!
//! # Layout
//! - this file: the constants of the 16 kHz branch, the burn module, [`Vad`] and [`VadStream`];
//! - `fast`: the plain-Rust forward pass (weights extracted once, batched front end, LSTM cell);
//! - `gemm`: its matrix-product kernel;
//! - [`segments`]: hysteresis segmentation, trimming and the voiced fraction.

mod fast;
pub(crate) mod gemm;
pub mod segments;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::{Lstm, LstmConfig, LstmState, PaddingConfig1d};
use burn::tensor::activation::{relu, sigmoid};
use burn::tensor::{Device, Tensor, TensorData};

pub use segments::{SpeechSegmenter, VadParams, speech_segments, trim_silences, voiced_fraction};

use fast::{FRONT_END_BLOCK, FastWeights};

use crate::compute::Compute;
use crate::weights::{LoadError, SILERO_VAD_SAFETENSORS, loaded};

/// Sample rate of the 16 kHz branch; every sample count below is at this rate.
pub const SAMPLE_RATE: usize = diglett_schemas::SAMPLE_RATE as usize;
/// New samples per chunk (32 ms): the 16 kHz branch's fixed window (`window_size_samples`).
pub const CHUNK: usize = 512;
/// Samples of the previous chunk prepended to each chunk (the 16 kHz branch's `context_size`).
pub const CONTEXT: usize = 64;
/// Right reflect-padding applied to the 576 context + chunk samples (the jit's `F.pad(x, [0, 64],
/// mode="reflect")`), giving [`MODEL_INPUT`] samples.
pub const REFLECT_PAD: usize = 64;
/// Samples the network sees per chunk: 64 context + 512 new + 64 reflected.
pub const MODEL_INPUT: usize = CONTEXT + CHUNK + REFLECT_PAD;

/// Converts milliseconds to samples at [`SAMPLE_RATE`].
fn ms_to_samples(ms: u32) -> usize {
    ms as usize * SAMPLE_RATE / 1000
}

// ---------------------------------------------------------------------------------------------
// The burn module (reference definition)
// ---------------------------------------------------------------------------------------------

/// Layer shapes of Silero VAD v6's 16 kHz branch. The defaults are the released model's.
#[derive(Config, Debug)]
pub struct SileroVadConfig {
    /// STFT window (the conv kernel length of `stft.forward_basis_buffer`).
    #[config(default = 256)]
    pub n_fft: usize,
    /// STFT hop (the conv stride).
    #[config(default = 128)]
    pub hop_length: usize,
    /// Output channels of the four encoder convolutions.
    #[config(default = "vec![128, 64, 64, 128]")]
    pub encoder_channels: Vec<usize>,
    /// Strides of the four encoder convolutions.
    #[config(default = "vec![1, 2, 2, 1]")]
    pub encoder_strides: Vec<usize>,
}

/// Silero VAD v6, 16 kHz branch, as a burn module. Parameter paths match
/// `model/weights/silero_vad_v6.safetensors`.
#[derive(Module, Debug)]
pub struct SileroVad {
    /// The STFT as a conv1d: rows `0..bins` are the real basis, `bins..2 * bins` the imaginary.
    pub stft: Conv1d,
    /// Conv1d (k = 3, padding 1) + ReLU blocks.
    pub encoder: Vec<Conv1d>,
    /// The LSTM cell (one time step per chunk; state carried by the caller).
    pub rnn: Lstm,
    /// Conv1d k = 1 to one logit.
    pub decoder: Conv1d,
}

impl SileroVadConfig {
    /// A randomly initialised module of these shapes.
    pub fn init(&self, device: &Device) -> SileroVad {
        let bins = self.n_fft / 2 + 1;
        let stft = Conv1dConfig::new(1, 2 * bins, self.n_fft)
            .with_stride(self.hop_length)
            .with_bias(false)
            .init(device);
        let mut channels_in = bins;
        let encoder = self
            .encoder_channels
            .iter()
            .zip(&self.encoder_strides)
            .map(|(&channels_out, &stride)| {
                let conv = Conv1dConfig::new(channels_in, channels_out, 3)
                    .with_stride(stride)
                    .with_padding(PaddingConfig1d::Explicit(1, 1))
                    .init(device);
                channels_in = channels_out;
                conv
            })
            .collect();
        let rnn = LstmConfig::new(channels_in, channels_in, true).init(device);
        let decoder = Conv1dConfig::new(channels_in, 1, 1).init(device);
        SileroVad {
            stft,
            encoder,
            rnn,
            decoder,
        }
    }
}

impl SileroVad {
    /// The released weights (compiled in), checked tensor by tensor.
    pub fn pretrained(device: &Device) -> Result<Self, LoadError> {
        loaded(SileroVadConfig::new().init(device), SILERO_VAD_SAFETENSORS)
    }

    /// The stateless front end for a batch of chunks.
    ///
    /// - input: `[n_chunks, 640]`, each row from [`model_input`]
    /// - output: `[n_chunks, 128]`, the encoder's last (and only) time step
    pub fn features(&self, input: Tensor<2>) -> Tensor<2> {
        let [n, _] = input.dims();
        let spectrum = self.stft.forward(input.unsqueeze_dim(1)); // [n, 2 * bins, frames]
        let bins = spectrum.dims()[1] / 2;
        let re = spectrum.clone().narrow(1, 0, bins);
        let im = spectrum.narrow(1, bins, bins);
        let mut x = (re.square() + im.square()).sqrt();
        for conv in &self.encoder {
            x = relu(conv.forward(x));
        }
        let [_, channels, time] = x.dims();
        x.narrow(2, time - 1, 1).reshape([n, channels])
    }

    /// One recurrent step for a batch of independent streams.
    ///
    /// - features: `[batch, 128]` from [`Self::features`]
    /// - state: the previous step's state (`None` = zeros, a stream's first chunk)
    /// - returns the speech probabilities `[batch]` and the state to carry
    pub fn step(
        &self,
        features: Tensor<2>,
        state: Option<LstmState<2>>,
    ) -> (Tensor<1>, LstmState<2>) {
        let [n, _] = features.dims();
        let (hidden, state) = self.rnn.forward(features.unsqueeze_dim(1), state); // [n, 1, h]
        let logits = self.decoder.forward(relu(hidden).swap_dims(1, 2)); // [n, 1, 1]
        (sigmoid(logits).reshape([n]), state)
    }
}

/// The 640 samples the network sees for one chunk: `context` (the last 64 samples before the
/// chunk; zeros at the start of a stream), the 512 new samples, and 64 reflected samples.
///
/// numpy/torch "reflect" mirrors around the last sample without repeating it:
/// `out[576 + k] = x[574 - k]`.
pub fn model_input(context: &[f32; CONTEXT], chunk: &[f32; CHUNK]) -> [f32; MODEL_INPUT] {
    let mut out = [0.0; MODEL_INPUT];
    out[..CONTEXT].copy_from_slice(context);
    out[CONTEXT..CONTEXT + CHUNK].copy_from_slice(chunk);
    write_reflect_pad(&mut out);
    out
}

/// Fills the last [`REFLECT_PAD`] samples of a model input from the 576 before them.
fn write_reflect_pad(input: &mut [f32]) {
    let n = CONTEXT + CHUNK;
    for k in 0..REFLECT_PAD {
        input[n + k] = input[n - 2 - k];
    }
}

/// Model inputs (`n * 640`) for the complete chunks of `samples`, the first of which follows
/// `context`.
fn model_inputs(context: &[f32; CONTEXT], samples: &[f32]) -> Vec<f32> {
    let n = samples.len() / CHUNK;
    let mut inputs = vec![0.0; n * MODEL_INPUT];
    for (i, input) in inputs.chunks_exact_mut(MODEL_INPUT).enumerate() {
        let start = i * CHUNK;
        if i == 0 {
            input[..CONTEXT].copy_from_slice(context);
        } else {
            input[..CONTEXT].copy_from_slice(&samples[start - CONTEXT..start]);
        }
        input[CONTEXT..CONTEXT + CHUNK].copy_from_slice(&samples[start..start + CHUNK]);
        write_reflect_pad(input);
    }
    inputs
}

// ---------------------------------------------------------------------------------------------
// The loaded model and its fast path
// ---------------------------------------------------------------------------------------------

/// Why a [`Vad`] could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    /// The weights file does not fit the module.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The module's tensors do not have the layout the fast path expects.
    #[error("unexpected Silero VAD layout: {0}")]
    Layout(String),
}

/// Silero VAD v6 ready for inference: the burn module plus the same weights laid out for the
/// plain-Rust fast path. Immutable after construction, so one instance serves any number of
/// threads (`Send + Sync`); per-stream state lives in [`VadStream`].
#[derive(Debug)]
pub struct Vad {
    model: SileroVad,
    device: Device,
    fast: FastWeights,
}

assert_send_sync!(Vad, VadStream);

impl Vad {
    /// The released weights on `device` (use [`crate::compute::device`]).
    pub fn pretrained(device: &Device) -> Result<Self, VadError> {
        Self::from_module(SileroVad::pretrained(device)?, device)
    }

    /// Wraps a loaded module, extracting its weights once for the fast path.
    pub fn from_module(model: SileroVad, device: &Device) -> Result<Self, VadError> {
        let fast = FastWeights::from_module(&model)?;
        Ok(Self {
            model,
            device: device.clone(),
            fast,
        })
    }

    /// The burn module (reference definition).
    pub fn module(&self) -> &SileroVad {
        &self.model
    }

    /// A fresh stream (zero state, zero context).
    pub fn stream(&self) -> VadStream {
        VadStream::new()
    }

    /// One probability per complete 512-sample chunk of `wav` (16 kHz mono), the LSTM state and
    /// context carried through, exactly as if the chunks were streamed one by one; trailing
    /// samples that do not fill a chunk are ignored.
    pub fn probabilities(&self, compute: &Compute, wav: &[f32]) -> Vec<f32> {
        let mut state = StreamState::new(self.fast.hidden);
        compute.install(|| self.run_stream(&mut state, &wav[..wav.len() / CHUNK * CHUNK]))
    }

    /// [`Self::probabilities`] for several independent buffers (e.g. windows of different
    /// streams) at once: their front ends run as one batch, and their LSTMs step in lockstep as
    /// one batch. Each result equals `self.probabilities(compute, wav)` for its buffer.
    pub fn probabilities_many(&self, compute: &Compute, wavs: &[&[f32]]) -> Vec<Vec<f32>> {
        compute.install(|| self.run_many(wavs))
    }

    /// [`Self::probabilities`] through the burn module: the front end batched, then one burn
    /// LSTM step per chunk. Slow; it is the reference the fast path is tested against.
    pub fn probabilities_reference(&self, compute: &Compute, wav: &[f32]) -> Vec<f32> {
        let n = wav.len() / CHUNK;
        if n == 0 {
            return Vec::new();
        }
        compute.install(|| {
            let inputs = model_inputs(&[0.0; CONTEXT], &wav[..n * CHUNK]);
            let inputs =
                Tensor::<2>::from_data(TensorData::new(inputs, [n, MODEL_INPUT]), &self.device);
            let features = self.model.features(inputs);
            let mut state = None;
            let mut probabilities = Vec::with_capacity(n);
            for i in 0..n {
                let (p, next) = self.model.step(features.clone().narrow(0, i, 1), state);
                state = Some(next);
                probabilities.extend(p.into_data().iter::<f32>());
            }
            probabilities
        })
    }

    /// Runs the complete chunks in `samples` (a multiple of [`CHUNK`]) through the fast path,
    /// continuing `state`. Must run inside `Compute::install`. Works in passes of one front-end
    /// block per thread, so memory stays bounded and hot for any input length.
    fn run_stream(&self, state: &mut StreamState, samples: &[f32]) -> Vec<f32> {
        let gates_width = 4 * self.fast.hidden;
        let mut gates = vec![0.0; gates_width];
        let mut probabilities = Vec::with_capacity(samples.len() / CHUNK);
        let per_pass = FRONT_END_BLOCK * rayon::current_num_threads();
        for pass in samples.chunks(per_pass * CHUNK) {
            let inputs = model_inputs(&state.context, pass);
            let projected = self.fast.front_end(&inputs);
            for x in projected.chunks_exact(gates_width) {
                self.fast.recurrent(&state.h, &mut gates);
                probabilities.push(self.fast.cell(x, &gates, &mut state.h, &mut state.c));
            }
            state.context.copy_from_slice(&pass[pass.len() - CONTEXT..]);
        }
        probabilities
    }

    /// Lockstep batch over independent buffers. Must run inside `Compute::install`.
    fn run_many(&self, wavs: &[&[f32]]) -> Vec<Vec<f32>> {
        let hidden = self.fast.hidden;
        let gates_width = 4 * hidden;
        let counts: Vec<usize> = wavs.iter().map(|w| w.len() / CHUNK).collect();
        // Longest first, so that the buffers still running at any step are a prefix and their
        // states stay contiguous rows of one matrix.
        let mut order: Vec<usize> = (0..wavs.len()).collect();
        order.sort_by_key(|&b| std::cmp::Reverse(counts[b]));

        let mut inputs = Vec::new();
        let mut offsets = Vec::with_capacity(order.len());
        for &b in &order {
            offsets.push(inputs.len() / MODEL_INPUT);
            inputs.extend(model_inputs(&[0.0; CONTEXT], wavs[b]));
        }
        let projected = self.fast.front_end(&inputs);

        let mut h = vec![0.0; order.len() * hidden];
        let mut c = vec![0.0; order.len() * hidden];
        let mut gates = vec![0.0; order.len() * gates_width];
        let mut results: Vec<Vec<f32>> = counts.iter().map(|&n| Vec::with_capacity(n)).collect();
        let steps = order.first().map_or(0, |&b| counts[b]);
        for t in 0..steps {
            let active = order.iter().take_while(|&&b| counts[b] > t).count();
            let gates = &mut gates[..active * gates_width];
            self.fast.recurrent(&h[..active * hidden], gates);
            for (row, &b) in order[..active].iter().enumerate() {
                let x = &projected[(offsets[row] + t) * gates_width..][..gates_width];
                let p = self.fast.cell(
                    x,
                    &gates[row * gates_width..][..gates_width],
                    &mut h[row * hidden..][..hidden],
                    &mut c[row * hidden..][..hidden],
                );
                results[b].push(p);
            }
        }
        results
    }
}

// ---------------------------------------------------------------------------------------------
// Streaming
// ---------------------------------------------------------------------------------------------

/// Per-stream recurrent state of the fast path.
#[derive(Debug, Clone)]
struct StreamState {
    h: Vec<f32>,
    c: Vec<f32>,
    /// The last 64 samples of the previous chunk (zeros before the first).
    context: [f32; CONTEXT],
}

impl StreamState {
    fn new(hidden: usize) -> Self {
        Self {
            h: vec![0.0; hidden],
            c: vec![0.0; hidden],
            context: [0.0; CONTEXT],
        }
    }
}

/// One audio stream's VAD state: the LSTM state, the 64-sample context and any samples that do
/// not yet fill a chunk. Feed it any number of samples at a time; it emits one probability per
/// completed 512-sample chunk, identical to [`Vad::probabilities`] over the concatenated audio.
#[derive(Debug, Clone, Default)]
pub struct VadStream {
    /// `None` until the first chunk, so that a stream can be created without the model.
    state: Option<StreamState>,
    /// Samples received but not yet part of a complete chunk (always fewer than 512 between
    /// calls).
    pending: Vec<f32>,
}

impl VadStream {
    /// A stream at its start: zero LSTM state, zero context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Forgets everything, as at a stream's start.
    pub fn reset(&mut self) {
        self.state = None;
        self.pending.clear();
    }

    /// Samples waiting for the rest of their chunk.
    pub fn buffered(&self) -> usize {
        self.pending.len()
    }

    /// Appends `samples` and returns the probabilities of every chunk they complete (possibly
    /// none). All completed chunks' front ends run as one batch.
    pub fn process(&mut self, vad: &Vad, compute: &Compute, samples: &[f32]) -> Vec<f32> {
        let state = self
            .state
            .get_or_insert_with(|| StreamState::new(vad.fast.hidden));
        self.pending.extend_from_slice(samples);
        let complete = self.pending.len() / CHUNK * CHUNK;
        if complete == 0 {
            return Vec::new();
        }
        let pending = &self.pending[..complete];
        let probabilities = compute.install(|| vad.run_stream(state, pending));
        self.pending.drain(..complete);
        probabilities
    }

    /// Processes exactly one chunk. Any samples buffered by [`Self::process`] come first, so
    /// the returned probability is for the oldest chunk completed by this call; if that leaves
    /// a second complete chunk its probability is dropped — do not mix the two calls unless
    /// [`Self::buffered`] is zero.
    pub fn push(&mut self, vad: &Vad, compute: &Compute, chunk: &[f32; CHUNK]) -> f32 {
        self.process(vad, compute, chunk)
            .first()
            .copied()
            .unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn reflect_padding_mirrors_without_repeating_the_edge() {
        let context = [0.0; CONTEXT];
        let chunk: [f32; CHUNK] = std::array::from_fn(|i| i as f32);
        let input = model_input(&context, &chunk);
        // x[575] = 511, so x[576] = x[574] = 510, x[639] = x[511] = 447.
        assert_eq!(input[576], 510.0);
        assert_eq!(input[639], 447.0);
    }
}
