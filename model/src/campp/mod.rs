//! CAM++ speaker embeddings (3D-Speaker, zh-en "common advanced"), `shared/MODELS.md` section 1.
//!
//! # Layout
//! - [`fbank`]: Kaldi 80-bin log-mel fbank and per-window mean normalisation.
//! - [`network`]: the burn modules (FCM head, D-TDNN with context-aware masking, stats pooling).

pub mod fbank;
pub mod network;

pub use network::{CamPlus, CamPlusConfig, Taps};

use burn::tensor::Device;

use crate::weights::{CAMPP_SAFETENSORS, LoadError, load_exact};

/// Length of a CAM++ embedding.
pub const EMBEDDING_DIM_CAMPP: usize = 192;

impl CamPlus {
    /// The converted zh-en common-advanced weights (compiled in), checked tensor by tensor.
    pub fn pretrained(device: &Device) -> Result<Self, LoadError> {
        let mut model = CamPlusConfig::new().init(device);
        load_exact(&mut model, CAMPP_SAFETENSORS)?;
        Ok(model)
    }
}
