//! Mel-like encoder input, shared by the encoder bench and the encoder parity test (which
//! includes this file by path).

use diglett_model::encoder::{N_MELS, WINDOW_FRAMES};

/// `batch` windows of mel-like power frames, deterministic in `seed`: positive, log-uniform
/// between 1e-6 and 1, as real mel power frames spread over six decades.
pub fn mel_like(batch: usize, seed: u64) -> Vec<f32> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..batch * WINDOW_FRAMES * N_MELS)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let u = (state >> 40) as f32 / (1u64 << 24) as f32;
            10f32.powf(-6.0 * u)
        })
        .collect()
}
