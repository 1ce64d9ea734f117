//! Signal level as the speaker encoder's preprocessing measures it (Resemblyzer's
//! `normalize_volume`), and the gain to a target level. Loudness for reports (dBFS floored,
//! LUFS) is [`crate::loudness`].

/// Volume target of the encoder's preprocessing: Resemblyzer's `audio_norm_target_dBFS`.
pub const NORMALIZE_TARGET_DBFS: f32 = -30.0;

/// Resemblyzer's `int16_max` (2^15 - 1), the scale its `normalize_volume` measures RMS in.
const INT16_MAX: f64 = 32767.0;

/// Level of a signal in dBFS, exactly as Resemblyzer's `normalize_volume` measures it:
/// `20 * log10(sqrt(mean((x * 32767)^2)) / 32767)`, computed in `f64`.
/// Empty or all-zero input gives `f32::NEG_INFINITY` (never NaN).
pub fn rms_dbfs(wav: &[f32]) -> f32 {
    if wav.is_empty() {
        return f32::NEG_INFINITY;
    }
    let sum_sq: f64 = wav
        .iter()
        .map(|&x| {
            let v = f64::from(x) * INT16_MAX;
            v * v
        })
        .sum();
    let rms = (sum_sq / wav.len() as f64).sqrt();
    if rms == 0.0 {
        return f32::NEG_INFINITY;
    }
    (20.0 * (rms / INT16_MAX).log10()) as f32
}

/// Scales `wav` to `target_dbfs` ([`rms_dbfs`]), as Resemblyzer's
/// `normalize_volume(wav, target_dBFS, increase_only)`: the gain `10^((target - dBFS) / 20)` is
/// applied unless it would lower the level while `increase_only` is set. A silent (all-zero) or
/// empty signal has no level and is left unchanged. The encoder's preprocessing uses
/// `normalize_volume(wav, NORMALIZE_TARGET_DBFS, true)`.
pub fn normalize_volume(wav: &mut [f32], target_dbfs: f32, increase_only: bool) {
    let level = rms_dbfs(wav);
    if !level.is_finite() {
        return;
    }
    let change = f64::from(target_dbfs) - f64::from(level);
    if change < 0.0 && increase_only {
        return;
    }
    let gain = 10f64.powf(change / 20.0) as f32;
    wav.iter_mut().for_each(|x| *x *= gain);
}

/// Raises `wav` towards `target_dbfs` ([`rms_dbfs`]) by at most `max_gain_db`; never lowers it.
/// A silent or empty signal is left unchanged. (The frame-timeline study's "VAD gain": quiet
/// far-field speech lifted where Silero would miss it, room noise only so far.)
pub fn lift_towards(wav: &mut [f32], target_dbfs: f32, max_gain_db: f32) {
    let level = rms_dbfs(wav);
    if !level.is_finite() {
        return;
    }
    let change = (f64::from(target_dbfs) - f64::from(level)).clamp(0.0, f64::from(max_gain_db));
    if change > 0.0 {
        let gain = 10f64.powf(change / 20.0) as f32;
        wav.iter_mut().for_each(|x| *x *= gain);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::tone as sine;

    #[test]
    fn rms_dbfs_of_known_signals() {
        // A full-scale square wave has RMS 1: 0 dBFS.
        let square: Vec<f32> = (0..1000)
            .map(|i| if i % 2 == 0 { 1.0 } else { -1.0 })
            .collect();
        assert!(rms_dbfs(&square).abs() < 1e-6);
        // A full-scale sine: 20 log10(1/sqrt 2) = -3.0103 dBFS.
        let s = sine(1000.0, 16_000, 16_000, 1.0);
        assert!((rms_dbfs(&s) + 3.0103).abs() < 1e-3, "{}", rms_dbfs(&s));
        // Halving the amplitude is -6.02 dB.
        let half: Vec<f32> = s.iter().map(|x| x * 0.5).collect();
        assert!((rms_dbfs(&half) - rms_dbfs(&s) + 6.0206).abs() < 1e-3);
        assert_eq!(rms_dbfs(&[0.0; 100]), f32::NEG_INFINITY);
        assert_eq!(rms_dbfs(&[]), f32::NEG_INFINITY);
    }

    #[test]
    fn normalize_volume_leaves_silence_alone() {
        let mut silence = vec![0.0f32; 1600];
        normalize_volume(&mut silence, -30.0, true);
        assert!(silence.iter().all(|&x| x == 0.0));
        normalize_volume(&mut silence, -30.0, false);
        assert!(silence.iter().all(|&x| x == 0.0));
        let mut empty: Vec<f32> = Vec::new();
        normalize_volume(&mut empty, -30.0, true);
    }

    #[test]
    fn normalize_volume_increase_only_never_lowers() {
        let loud = sine(440.0, 16_000, 16_000, 0.5); // about -9 dBFS
        let mut wav = loud.clone();
        normalize_volume(&mut wav, -30.0, true);
        assert_eq!(wav, loud);
        // Without increase_only, the level comes down to the target.
        normalize_volume(&mut wav, -30.0, false);
        assert!((rms_dbfs(&wav) + 30.0).abs() < 1e-3, "{}", rms_dbfs(&wav));
    }

    #[test]
    fn normalize_volume_raises_quiet_audio_to_target() {
        let mut wav = sine(440.0, 16_000, 16_000, 0.001); // about -63 dBFS
        normalize_volume(&mut wav, -30.0, true);
        assert!((rms_dbfs(&wav) + 30.0).abs() < 1e-3, "{}", rms_dbfs(&wav));
        // Already at the target: the gain is 1.
        let before = wav.clone();
        normalize_volume(&mut wav, rms_dbfs(&before), true);
        for (a, b) in wav.iter().zip(&before) {
            assert!((a - b).abs() <= 1e-6 * b.abs());
        }
    }

    #[test]
    fn lift_is_capped_and_never_lowers() {
        let quiet = sine(440.0, 16_000, 16_000, 0.001);
        let before = rms_dbfs(&quiet);
        let mut w = quiet.clone();
        lift_towards(&mut w, -30.0, 12.0);
        assert!(
            (rms_dbfs(&w) - (before + 12.0)).abs() < 1e-3,
            "capped at +12 dB"
        );
        let mut w = quiet.clone();
        lift_towards(&mut w, before + 5.0, 12.0);
        assert!(
            (rms_dbfs(&w) - (before + 5.0)).abs() < 1e-3,
            "only to the target"
        );
        let mut w = quiet.clone();
        lift_towards(&mut w, before - 5.0, 12.0);
        assert_eq!(w, quiet, "never lowered");
        let mut zeros = vec![0.0f32; 100];
        lift_towards(&mut zeros, -30.0, 12.0);
        assert!(zeros.iter().all(|&x| x == 0.0));
    }
}
