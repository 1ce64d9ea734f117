//! CAM++ speaker embeddings (3D-Speaker, zh-en "common advanced"), `shared/MODELS.md` section 1.
//!
//! # Layout
//! - [`fbank`]: Kaldi 80-bin log-mel fbank and per-window mean normalisation.
//! - [`network`]: the burn modules (FCM head, D-TDNN with context-aware masking, stats pooling).

pub mod fast;
pub mod fbank;
pub mod network;

pub use fast::CamPlusMm;
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
/// pool, through the matrix-product form [`CamPlusMm`]. Each window runs on its own (never
/// zero-padded: padding changes the embedding, MODELS.md 1.1), the windows of a call in parallel.
#[derive(Debug)]
pub struct CamPlusEncoder {
    model: CamPlusMm,
    fbank: fbank::Fbank,
    device: Device,
}

/// Fewest samples a window may have (3 fbank frames, so that the unbiased std is defined).
pub const MIN_SAMPLES: usize = fbank::FRAME_LENGTH + 2 * fbank::FRAME_SHIFT;

impl CamPlusEncoder {
    /// The shipped weights.
    pub fn pretrained() -> Result<Self, LoadError> {
        let device = crate::compute::device();
        Ok(Self {
            model: CamPlusMm::new(&CamPlus::pretrained(&device)?),
            fbank: fbank::Fbank::new(),
            device,
        })
    }

    /// One 192-d embedding (3D-Speaker form, not normalised) per window of 16 kHz mono samples
    /// in [-1, 1]; `None` for a window shorter than [`MIN_SAMPLES`] (or, not expected, when the
    /// backend's output cannot be read back as f32).
    pub fn embed_windows(
        &self,
        compute: &crate::compute::Compute,
        windows: &[&[f32]],
    ) -> Vec<Option<Vec<f32>>> {
        use rayon::prelude::*;
        // One forward pass per window, the windows spread over the pool: burn-ndarray's batched
        // product is slower per window than a batch of one (benches/campp.rs measured 9 windows/s
        // at batch 8 against 20 at batch 1 on one thread), so batching buys nothing here.
        compute.install(|| windows.par_iter().map(|w| self.embed_one(w)).collect())
    }

    fn embed_one(&self, window: &[f32]) -> Option<Vec<f32>> {
        use burn::tensor::{Tensor, TensorData};
        if window.len() < MIN_SAMPLES {
            return None;
        }
        let frames = fbank::num_frames(window.len());
        let x = Tensor::<3>::from_data(
            TensorData::new(self.fbank.compute_cmn(window), [1, frames, fbank::N_MELS]),
            &self.device,
        );
        self.model.forward(x).into_data().try_to_vec::<f32>().ok()
    }
}
