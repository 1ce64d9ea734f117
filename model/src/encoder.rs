//! The GE2E speaker encoder (Resemblyzer 0.1.4 `VoiceEncoder`): 1.6 s of 40-band mel frames →
//! a 256-dimensional, L2-normalised speaker embedding (d-vector).
//!
//! Two implementations of the same network:
//! - [`SpeakerEncoder`], the burn module: the reference definition. It loads the converted
//!   weights with a checked one-to-one mapping and runs on any burn device, but its step-by-step
//!   recurrence costs thousands of small tensor ops per window (≈ 70 ms on one core).
//! - [`FusedEncoder`], the production CPU path: the same weights packed once for a fused
//!   LSTM kernel (see the `fused` module docs and `shared/PERF-NOTES.md`).
//!
//! [`Encoder`] bundles both with the mel front end and is what callers use: windows
//! ([`Encoder::embed_windows`]), a single 1.6 s clip ([`Encoder::embed_window`]) and whole
//! utterances exactly as Resemblyzer's `embed_utterance` ([`Encoder::embed_utterance`]). All of
//! them run inside a caller-provided [`Compute`] pool.

mod fused;

use std::ops::Range;

use burn::config::Config;
use burn::module::Module;
use burn::nn::{Linear, LinearConfig, Lstm, LstmConfig};
use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;

use self::fused::GateWeights;
pub use self::fused::{FusedEncoder, Kernel};
use crate::compute::{Compute, device};
use crate::frontend::{self, MelSpectrogram, compute_partial_slices};
use crate::weights::{GE2E_SAFETENSORS, LoadError, loaded};

/// Mel bands per frame, the encoder's input width (Resemblyzer `mel_n_channels`).
pub const N_MELS: usize = frontend::N_MELS;
/// Frames per window: 160 frames of 10 ms = 1.6 s, the encoder's training window
/// (Resemblyzer `partials_n_frames`).
pub const WINDOW_FRAMES: usize = frontend::PARTIAL_FRAMES;
/// Samples in one window: 160 frames × 160 samples (10 ms hop at 16 kHz) = 1.6 s.
pub const WINDOW_SAMPLES: usize = WINDOW_FRAMES * frontend::HOP_LENGTH;
/// Length of an embedding (Resemblyzer `model_embedding_size`): the bus's
/// [`diglett_schemas::EMBEDDING_DIM`], the one definition.
pub use diglett_schemas::EMBEDDING_DIM;
// The window the encoder was trained on is the window the bus carries.
const _: () = assert!(WINDOW_SAMPLES == diglett_schemas::WINDOW_SAMPLES);
/// One speaker embedding: L2-normalised, non-negative (it follows a ReLU).
pub type Embedding = [f32; EMBEDDING_DIM];

/// Hyper-parameters of [`SpeakerEncoder`]; the defaults are Resemblyzer's `pretrained.pt`.
#[derive(Config, Debug)]
pub struct SpeakerEncoderConfig {
    /// Mel bands per input frame.
    #[config(default = 40)]
    pub n_mels: usize,
    /// LSTM hidden size (Resemblyzer `model_hidden_size`).
    #[config(default = 256)]
    pub hidden: usize,
    /// Stacked LSTM layers (Resemblyzer `model_num_layers`).
    #[config(default = 3)]
    pub layers: usize,
    /// Embedding size (Resemblyzer `model_embedding_size`).
    #[config(default = 256)]
    pub embedding: usize,
}

impl SpeakerEncoderConfig {
    /// A randomly initialised encoder of this shape.
    pub fn init(&self, device: &Device) -> SpeakerEncoder {
        let lstm = (0..self.layers)
            .map(|l| {
                let d_in = if l == 0 { self.n_mels } else { self.hidden };
                // torch.nn.LSTM(batch_first=True) with both biases; burn's default is also
                // batch-first, set explicitly because the weights depend on it.
                LstmConfig::new(d_in, self.hidden, true)
                    .with_batch_first(true)
                    .init(device)
            })
            .collect();
        SpeakerEncoder {
            lstm,
            linear: LinearConfig::new(self.hidden, self.embedding).init(device),
        }
    }
}

/// The GE2E speaker encoder as a burn module: the reference definition.
///
/// Parameter paths match `model/weights/ge2e.safetensors` (`lstm.{0,1,2}.<gate>.…`,
/// `linear.{weight,bias}`).
#[derive(Module, Debug)]
pub struct SpeakerEncoder {
    /// `torch.nn.LSTM(40, 256, num_layers=3)` as three single-layer LSTMs.
    pub lstm: Vec<Lstm>,
    /// 256 → 256 projection of the last layer's final hidden state.
    pub linear: Linear,
}

impl SpeakerEncoder {
    /// Resemblyzer's pretrained weights, compiled into the binary, on `device`.
    pub fn pretrained(device: &Device) -> Result<Self, LoadError> {
        loaded(SpeakerEncoderConfig::new().init(device), GE2E_SAFETENSORS)
    }

    /// Embeds a batch of windows.
    ///
    /// - `mels`: `[batch, frames, n_mels]` mel power frames (160 frames in training and use).
    /// - returns `[batch, embedding]`: `normalize(relu(linear(h_T)))` where `h_T` is the last
    ///   LSTM layer's final hidden state.
    pub fn forward(&self, mels: Tensor<3>) -> Tensor<2> {
        let mut x = mels;
        let mut last_hidden = None;
        for lstm in &self.lstm {
            let (seq, state) = lstm.forward(x, None);
            x = seq;
            last_hidden = Some(state.hidden);
        }
        let hidden = last_hidden.expect("SpeakerEncoderConfig::layers must be at least 1");
        let raw = burn::tensor::activation::relu(self.linear.forward(hidden));
        // Resemblyzer divides by the norm with no epsilon; the floor only keeps an all-zero
        // output at zero instead of NaN.
        let norm = raw
            .clone()
            .powi_scalar(2)
            .sum_dim(1)
            .sqrt()
            .clamp_min(f32::MIN_POSITIVE);
        raw / norm
    }

    /// The weights in plain row-major buffers, for [`FusedEncoder`].
    fn extract(&self) -> (Vec<[GateWeights; 4]>, Vec<f32>, Vec<f32>) {
        fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
            t.into_data()
                .try_into_vec_as::<f32>()
                .unwrap_or_else(|e| unreachable!("f32 tensor data: {e:?}"))
        }
        let bias = |linear: &Linear, len: usize| {
            linear
                .bias
                .as_ref()
                .map_or_else(|| vec![0.0; len], |b| values(b.val()))
        };
        let gate = |g: &burn::nn::GateController| {
            let hidden = g.hidden_transform.weight.dims()[1];
            GateWeights {
                w_ih: values(g.input_transform.weight.val()),
                w_hh: values(g.hidden_transform.weight.val()),
                b_ih: bias(&g.input_transform, hidden),
                b_hh: bias(&g.hidden_transform, hidden),
            }
        };
        let layers =
            self.lstm
                .iter()
                .map(|l| {
                    let forget = l.forget_gate.as_ref().unwrap_or_else(|| {
                        unreachable!("SpeakerEncoderConfig never couples gates")
                    });
                    // torch's gate order, which the fused kernel follows: i, f, g (cell), o.
                    [
                        gate(&l.input_gate),
                        gate(forget),
                        gate(&l.cell_gate),
                        gate(&l.output_gate),
                    ]
                })
                .collect();
        let embedding = self.linear.weight.dims()[1];
        (
            layers,
            values(self.linear.weight.val()),
            bias(&self.linear, embedding),
        )
    }
}

impl FusedEncoder {
    /// Packs the weights of a (loaded) burn module for the fastest kernel this CPU runs.
    pub fn from_module(module: &SpeakerEncoder) -> Self {
        Self::with_kernel(module, Kernel::best())
            .or_else(|| Self::with_kernel(module, Kernel::Generic))
            .unwrap_or_else(|| unreachable!("the generic kernel runs everywhere"))
    }

    /// Packs the weights for a given kernel; `None` if this CPU lacks its instructions.
    pub fn with_kernel(module: &SpeakerEncoder, kernel: Kernel) -> Option<Self> {
        let (layers, linear_w, linear_b) = module.extract();
        let n_mels = layers
            .first()
            .map_or(N_MELS, |g| g[0].w_ih.len() / g[0].b_ih.len());
        let hidden = linear_w.len() / linear_b.len();
        Self::new(kernel, n_mels, hidden, &layers, linear_w, linear_b)
    }
}

/// Which implementation [`Encoder::embed_windows_with`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// The fused CPU kernel (production).
    Fused,
    /// The burn module on burn-ndarray (reference; 5–25× slower).
    Burn,
}

/// `mels` does not hold `batch` whole windows.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("expected {batch} windows of {WINDOW_FRAMES}×{N_MELS} mel values ({expected}), got {got}")]
pub struct WindowShapeError {
    batch: usize,
    expected: usize,
    got: usize,
}

/// The result of [`Encoder::embed_utterance`].
#[derive(Debug, Clone, PartialEq)]
pub struct UtteranceEmbedding {
    /// L2-normalised mean of the partial embeddings.
    pub embedding: Embedding,
    /// One embedding per 1.6 s partial window.
    pub partial_embeddings: Vec<Embedding>,
    /// The partial windows, in samples of the (unpadded) input.
    pub wav_slices: Vec<Range<usize>>,
}

/// The speaker encoder ready for inference: the fused CPU path, the burn reference and the mel
/// front end. Immutable, `Send + Sync`: share one (e.g. in an `Arc`) between all threads.
#[derive(Debug)]
pub struct Encoder {
    fused: FusedEncoder,
    reference: SpeakerEncoder,
    mel: MelSpectrogram,
}

// Compile-time check: every path is callable from many threads at once.
const _: () = {
    const fn send_sync<T: Send + Sync>() {}
    send_sync::<Encoder>();
    send_sync::<FusedEncoder>();
    send_sync::<SpeakerEncoder>();
};

/// Below this many windows per thread, splitting a batch over the pool costs more than it saves
/// (each split re-streams all weights).
const MIN_WINDOWS_PER_THREAD: usize = 4;

impl Encoder {
    /// Loads Resemblyzer's pretrained weights (compiled in) and packs them for the fused path.
    pub fn pretrained() -> Result<Self, LoadError> {
        Ok(Self::from_module(SpeakerEncoder::pretrained(&device())?))
    }

    /// Wraps an already loaded burn module.
    pub fn from_module(reference: SpeakerEncoder) -> Self {
        Self {
            fused: FusedEncoder::from_module(&reference),
            reference,
            mel: MelSpectrogram::new(),
        }
    }

    /// The burn reference module.
    pub fn reference(&self) -> &SpeakerEncoder {
        &self.reference
    }

    /// The fused CPU implementation.
    pub fn fused(&self) -> &FusedEncoder {
        &self.fused
    }

    /// Embeds `batch` windows with the fused path. `mels` is row-major
    /// `[batch, 160, 40]` (as produced by [`MelSpectrogram::compute`]).
    ///
    /// With more than one thread in `compute`, the batch is split between them.
    pub fn embed_windows(
        &self,
        compute: &Compute,
        mels: &[f32],
        batch: usize,
    ) -> Result<Vec<Embedding>, WindowShapeError> {
        self.embed_windows_with(compute, mels, batch, Backend::Fused)
    }

    /// [`Encoder::embed_windows`] with a chosen implementation (tests compare the two).
    pub fn embed_windows_with(
        &self,
        compute: &Compute,
        mels: &[f32],
        batch: usize,
        backend: Backend,
    ) -> Result<Vec<Embedding>, WindowShapeError> {
        let window = WINDOW_FRAMES * N_MELS;
        let expected = batch * window;
        if mels.len() != expected {
            return Err(WindowShapeError {
                batch,
                expected,
                got: mels.len(),
            });
        }
        if batch == 0 {
            return Ok(Vec::new());
        }
        let flat = compute.install(|| match backend {
            Backend::Fused => {
                let threads = compute.threads();
                if threads <= 1 || batch < 2 * MIN_WINDOWS_PER_THREAD {
                    self.fused.forward(mels, batch, WINDOW_FRAMES)
                } else {
                    let per = batch.div_ceil(threads).max(MIN_WINDOWS_PER_THREAD);
                    mels.par_chunks(per * window)
                        .flat_map_iter(|chunk| {
                            self.fused
                                .forward(chunk, chunk.len() / window, WINDOW_FRAMES)
                        })
                        .collect()
                }
            }
            Backend::Burn => {
                let input = Tensor::<3>::from_data(
                    TensorData::new(mels.to_vec(), [batch, WINDOW_FRAMES, N_MELS]),
                    &device(),
                );
                self.reference
                    .forward(input)
                    .into_data()
                    .try_into_vec_as::<f32>()
                    .unwrap_or_else(|e| unreachable!("f32 tensor data: {e:?}"))
            }
        });
        Ok(to_embeddings(&flat))
    }

    /// The `[160, 40]` mel frames (row-major) of one 1.6 s clip at 16 kHz, ready for
    /// [`Encoder::embed_windows`]. Shorter input is zero-padded to 1.6 s (as
    /// [`Encoder::embed_utterance`] pads); longer input is cut to its first 1.6 s.
    pub fn window_mels(&self, wav: &[f32]) -> Vec<f32> {
        let mut clip = vec![0.0f32; WINDOW_SAMPLES];
        let n = wav.len().min(WINDOW_SAMPLES);
        clip[..n].copy_from_slice(&wav[..n]);
        let mut mels = self.mel.compute(&clip);
        // 25 600 samples give 161 centred frames; the window is the first 160, as in
        // Resemblyzer's `mel_slices[0]`.
        mels.truncate(WINDOW_FRAMES * N_MELS);
        mels
    }

    /// Embeds one 1.6 s clip (16 kHz), padded or cut as [`Encoder::window_mels`] says — use
    /// `embed_utterance` for anything longer.
    pub fn embed_window(&self, compute: &Compute, wav: &[f32]) -> Embedding {
        self.embed_windows(compute, &self.window_mels(wav), 1)
            .unwrap_or_else(|e| unreachable!("one window by construction: {e}"))
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!("one window in, one embedding out"))
    }

    /// Embeds a whole utterance exactly as Resemblyzer 0.1.4
    /// `VoiceEncoder.embed_utterance(wav, return_partials=True, rate=1.3, min_coverage=0.75)`:
    /// 1.6 s partial windows at 1.3 per second, the wav zero-padded to the last window's end,
    /// all windows embedded as one batch, then the L2-normalised mean.
    ///
    /// `wav` is 16 kHz mono, already volume-normalised by the caller.
    pub fn embed_utterance(&self, compute: &Compute, wav: &[f32]) -> UtteranceEmbedding {
        let (wav_slices, mel_slices) =
            compute_partial_slices(wav.len(), frontend::PARTIAL_RATE, frontend::MIN_COVERAGE);
        let end = wav_slices.last().map_or(0, |s| s.end);
        let padded;
        let wav = if end > wav.len() {
            let mut p = wav.to_vec();
            p.resize(end, 0.0);
            padded = p;
            &padded[..]
        } else {
            wav
        };
        let mel = self.mel.compute(wav);
        let mut batch = Vec::with_capacity(mel_slices.len() * WINDOW_FRAMES * N_MELS);
        for s in &mel_slices {
            batch.extend_from_slice(&mel[s.start * N_MELS..s.end * N_MELS]);
        }
        let partial_embeddings = self
            .embed_windows(compute, &batch, mel_slices.len())
            .unwrap_or_else(|e| unreachable!("partial slices are whole windows: {e}"));
        let mut mean = [0.0f32; EMBEDDING_DIM];
        for e in &partial_embeddings {
            for (m, v) in mean.iter_mut().zip(e) {
                *m += v;
            }
        }
        // The 1/n of the mean cancels in the normalisation.
        let norm = mean.iter().map(|v| v * v).sum::<f32>().sqrt();
        let inv = 1.0 / norm.max(f32::MIN_POSITIVE);
        let embedding = mean.map(|v| v * inv);
        UtteranceEmbedding {
            embedding,
            partial_embeddings,
            wav_slices,
        }
    }
}

fn to_embeddings(flat: &[f32]) -> Vec<Embedding> {
    flat.chunks_exact(EMBEDDING_DIM)
        .map(|c| {
            let mut e = [0.0f32; EMBEDDING_DIM];
            e.copy_from_slice(c);
            e
        })
        .collect()
}
