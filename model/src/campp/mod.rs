//! CAM++ speaker embeddings (3D-Speaker, zh-en "common advanced"), `shared/MODELS.md` section 1.
//!
//! # Layout
//! - [`fbank`]: Kaldi 80-bin log-mel fbank and per-window mean normalisation.
//! - [`network`]: the burn modules (FCM head, D-TDNN with context-aware masking, stats pooling).

pub mod fbank;
pub mod network;

pub use network::{CamPlus, CamPlusConfig, Taps};

use burn::tensor::Device;

use crate::weights::{CAMPP_SAFETENSORS, LoadError, loaded};

/// Length of a CAM++ embedding.
pub const EMBEDDING_DIM_CAMPP: usize = 192;

impl CamPlus {
    /// The converted zh-en common-advanced weights (compiled in), checked tensor by tensor.
    pub fn pretrained(device: &Device) -> Result<Self, LoadError> {
        loaded(CamPlusConfig::new().init(device), CAMPP_SAFETENSORS)
    }
}

/// CAM++ from audio: fbank, per-window mean normalisation and the network, on a [`Compute`]
/// pool. Windows of equal length run as one batch; windows are never zero-padded (padding
/// changes the embedding, MODELS.md 1.1). Not yet used by the window pipeline.
#[derive(Debug)]
pub struct CamPlusEncoder {
    model: CamPlus,
    fbank: fbank::Fbank,
    compute: crate::compute::Compute,
    device: Device,
}

/// Fewest samples a window may have (3 fbank frames, so that the unbiased std is defined).
pub const MIN_SAMPLES: usize = fbank::FRAME_LENGTH + 2 * fbank::FRAME_SHIFT;

impl CamPlusEncoder {
    /// The shipped weights on `compute`.
    pub fn pretrained(compute: crate::compute::Compute) -> Result<Self, LoadError> {
        let device = crate::compute::device();
        Ok(Self {
            model: CamPlus::pretrained(&device)?,
            fbank: fbank::Fbank::new(),
            compute,
            device,
        })
    }

    /// One 192-d embedding (3D-Speaker form, not normalised) per window of 16 kHz mono samples
    /// in [-1, 1]; `None` for a window shorter than [`MIN_SAMPLES`] (or, not expected, when the
    /// backend's output cannot be read back as f32).
    pub fn embed_windows(&self, windows: &[&[f32]]) -> Vec<Option<Vec<f32>>> {
        use burn::tensor::{Tensor, TensorData};
        let mut out = vec![None; windows.len()];
        // Group equal lengths into batches.
        let mut by_len: std::collections::BTreeMap<usize, Vec<usize>> = Default::default();
        for (i, w) in windows.iter().enumerate() {
            if w.len() >= MIN_SAMPLES {
                by_len.entry(w.len()).or_default().push(i);
            }
        }
        self.compute.install(|| {
            for (len, idx) in by_len {
                let frames = fbank::num_frames(len);
                let mut feats = Vec::with_capacity(idx.len() * frames * fbank::N_MELS);
                for &i in &idx {
                    feats.extend(self.fbank.compute_cmn(windows[i]));
                }
                let x = Tensor::<3>::from_data(
                    TensorData::new(feats, [idx.len(), frames, fbank::N_MELS]),
                    &self.device,
                );
                let Ok(emb) = self.model.forward(x).into_data().try_to_vec::<f32>() else {
                    continue;
                };
                for (k, &i) in idx.iter().enumerate() {
                    out[i] =
                        Some(emb[k * EMBEDDING_DIM_CAMPP..(k + 1) * EMBEDDING_DIM_CAMPP].to_vec());
                }
            }
        });
        out
    }
}
