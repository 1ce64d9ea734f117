//! What the tools send: 16 kHz mono 16-bit PCM (the WebSocket's `pcm_s16le`) and WAV files of
//! it (REST uploads), through the workspace's one converter and writer.

/// The service's analysis rate, and the rate every tool declares in `start`.
pub use diglett_schemas::SAMPLE_RATE;

/// A sample of full scale ±1 as 16-bit PCM (`diglett_schemas::pcm::to_i16`).
pub use diglett_schemas::pcm::to_i16 as pcm16;

/// `samples` (16 kHz mono, full scale ±1) as a 16-bit PCM WAV file.
pub use diglett_audio::wav::wav_16k as wav_bytes;
