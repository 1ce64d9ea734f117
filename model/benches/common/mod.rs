//! The test signal the model benches share.

/// Deterministic speech-like audio at 16 kHz: a few harmonics of 140 Hz under a slow amplitude
/// envelope, plus a little noise seeded by `seed` (the networks' cost does not depend on the
/// content, only on the length).
pub fn speech_like(samples: usize, seed: u32) -> Vec<f32> {
    let mut noise = 0x2545_f491_u32 ^ seed;
    (0..samples)
        .map(|i| {
            let t = i as f32 / 16_000.0;
            noise ^= noise << 13;
            noise ^= noise >> 17;
            noise ^= noise << 5;
            let envelope = 0.5 + 0.5 * (std::f32::consts::TAU * 3.0 * t).sin();
            let voice: f32 = (1..6)
                .map(|h| (std::f32::consts::TAU * 140.0 * h as f32 * t).sin() / h as f32)
                .sum();
            0.1 * envelope * voice + 0.003 * (noise as f32 / u32::MAX as f32 - 0.5)
        })
        .collect()
}
