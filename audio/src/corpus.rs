//! Speech corpora on disk: a folder of `<speaker>/<utterance>.{flac,wav,…}`, decoded to 16 kHz
//! mono, folders and files in name order (the evaluation tools' and the tests' input).

use std::path::{Path, PathBuf};

use crate::{DecodeOptions, decode_audio};

/// Why a corpus could not be read.
#[derive(Debug, thiserror::Error)]
pub enum CorpusError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// What was being read.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// An audio file did not decode.
    #[error("{path}: {source}")]
    Decode {
        /// The file.
        path: PathBuf,
        /// The decoder's error.
        source: crate::DecodeError,
    },
    /// Fewer than two speakers, or a speaker with fewer than two utterances.
    #[error("corpus too small: {0}")]
    TooSmall(String),
}

/// One speaker's utterances, 16 kHz mono, in file-name order.
#[derive(Debug, Clone)]
pub struct Speaker {
    /// Folder name.
    pub id: String,
    /// (file name, samples) per utterance.
    pub utterances: Vec<(String, Vec<f32>)>,
}

/// Reads `<dir>/<speaker>/<audio files>`: folders and files in name order.
pub fn load_speakers(dir: &Path) -> Result<Vec<Speaker>, CorpusError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CorpusError::Io { path, source }
    };
    let mut speakers = Vec::new();
    for spk_dir in sorted_entries(dir).map_err(io(dir))? {
        if !spk_dir.is_dir() {
            continue;
        }
        let mut utterances = Vec::new();
        for file in sorted_entries(&spk_dir).map_err(io(&spk_dir))? {
            if !file.is_file() {
                continue;
            }
            let bytes = std::fs::read(&file).map_err(io(&file))?;
            let wav = decode_audio(&bytes, &DecodeOptions::default()).map_err(|source| {
                CorpusError::Decode {
                    path: file.clone(),
                    source,
                }
            })?;
            utterances.push((file_name(&file), wav));
        }
        if utterances.len() < 2 {
            return Err(CorpusError::TooSmall(format!(
                "speaker {} has {} utterance(s), needs 2",
                file_name(&spk_dir),
                utterances.len()
            )));
        }
        speakers.push(Speaker {
            id: file_name(&spk_dir),
            utterances,
        });
    }
    if speakers.len() < 2 {
        return Err(CorpusError::TooSmall(format!(
            "{} speaker folder(s) in {}",
            speakers.len(),
            dir.display()
        )));
    }
    Ok(speakers)
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut v = std::fs::read_dir(dir)?
        .map(|e| e.map(|e| e.path()))
        .collect::<std::io::Result<Vec<_>>>()?;
    v.sort();
    Ok(v)
}

fn file_name(p: &Path) -> String {
    p.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}
