//! Loudness of a stretch of audio: RMS level in dBFS and EBU R128 integrated loudness in LUFS.
//!
//! Every value is finite: digital silence, or audio too short or too quiet for R128's gating,
//! reports the documented floor instead of `-inf` or NaN, so the numbers can travel as JSON and
//! be averaged or plotted without special cases.

use ebur128::{EbuR128, Mode};

/// Floor for [`rms_dbfs`]: well below 16-bit quantisation noise (about −101 dBFS RMS for
/// dithered silence), so only true digital silence or near-silence reaches it.
pub const DBFS_FLOOR: f32 = -100.0;

/// Floor for [`lufs`]: EBU R128's absolute gate. Blocks quieter than −70 LUFS are excluded
/// from integrated loudness by the standard, so anything at or below it is silence there.
pub const LUFS_FLOOR: f32 = -70.0;

/// Loudness of one stretch of audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Loudness {
    /// RMS level relative to full scale (a full-scale square wave is 0 dBFS, a full-scale sine
    /// −3.01 dBFS), floored at [`DBFS_FLOOR`].
    pub dbfs: f32,
    /// EBU R128 / ITU-R BS.1770 integrated loudness, floored at [`LUFS_FLOOR`].
    pub lufs: f32,
}

/// RMS level of `samples` (floats in [-1, 1]) in dBFS, never below [`DBFS_FLOOR`].
pub fn rms_dbfs(samples: &[f32]) -> f32 {
    if samples.is_empty() {
        return DBFS_FLOOR;
    }
    // Accumulate in f64: 60 s at 16 kHz is ~10^6 squares.
    let mean_sq = samples
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        / samples.len() as f64;
    let db = 10.0 * mean_sq.log10();
    if db.is_finite() {
        (db as f32).max(DBFS_FLOOR)
    } else {
        DBFS_FLOOR
    }
}

/// EBU R128 integrated loudness of mono `samples` at `sample_rate`, never below [`LUFS_FLOOR`].
///
/// R128 measures in 400 ms blocks: audio shorter than one block, or entirely below the
/// absolute gate, reports the floor. Non-finite samples are treated as silence rather than
/// poisoning the meter (the front end rejects them earlier anyway).
pub fn lufs(samples: &[f32], sample_rate: u32) -> f32 {
    let Ok(mut meter) = EbuR128::new(1, sample_rate, Mode::I) else {
        return LUFS_FLOOR;
    };
    let added = if samples.iter().all(|x| x.is_finite()) {
        meter.add_frames_f32(samples)
    } else {
        let clean: Vec<f32> = samples
            .iter()
            .map(|&x| if x.is_finite() { x } else { 0.0 })
            .collect();
        meter.add_frames_f32(&clean)
    };
    if added.is_err() {
        return LUFS_FLOOR;
    }
    match meter.loudness_global() {
        Ok(l) if l.is_finite() => (l as f32).max(LUFS_FLOOR),
        _ => LUFS_FLOOR,
    }
}

/// Both measures at once.
pub fn measure(samples: &[f32], sample_rate: u32) -> Loudness {
    Loudness {
        dbfs: rms_dbfs(samples),
        lufs: lufs(samples, sample_rate),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(freq: f32, amp: f32, seconds: f32, sr: u32) -> Vec<f32> {
        let n = (seconds * sr as f32) as usize;
        (0..n)
            .map(|i| amp * (2.0 * std::f32::consts::PI * freq * i as f32 / sr as f32).sin())
            .collect()
    }

    #[test]
    fn silence_and_empty_are_finite_floors() {
        for s in [vec![], vec![0.0; 16_000], vec![0.0; 10]] {
            let l = measure(&s, 16_000);
            assert_eq!(l.dbfs, DBFS_FLOOR);
            assert_eq!(l.lufs, LUFS_FLOOR);
        }
    }

    #[test]
    fn full_scale_sine_is_minus_3_dbfs() {
        let l = rms_dbfs(&sine(1000.0, 1.0, 1.0, 16_000));
        assert!((l - (-3.0103)).abs() < 0.01, "{l}");
        let half = rms_dbfs(&sine(1000.0, 0.5, 1.0, 16_000));
        assert!((l - half - 6.0206).abs() < 0.01);
    }

    #[test]
    fn r128_reference_tone() {
        // BS.1770's calibration: a full-scale 997 Hz sine measures -3.01 LUFS, so amplitude 0.1
        // (-20 dB) measures -23.01 LUFS.
        let l = lufs(&sine(997.0, 0.1, 3.0, 48_000), 48_000);
        assert!((l - (-23.0)).abs() < 0.3, "{l}");
        // Same tone at 16 kHz agrees within a few tenths of a dB.
        let l16 = lufs(&sine(997.0, 0.1, 3.0, 16_000), 16_000);
        assert!((l16 - l).abs() < 0.5, "{l16} vs {l}");
    }

    #[test]
    fn too_short_or_too_quiet_is_floor() {
        assert_eq!(lufs(&sine(997.0, 0.5, 0.2, 16_000), 16_000), LUFS_FLOOR);
        assert_eq!(lufs(&sine(997.0, 1e-5, 2.0, 16_000), 16_000), LUFS_FLOOR);
        assert!(rms_dbfs(&sine(997.0, 1e-7, 1.0, 16_000)) >= DBFS_FLOOR);
    }

    #[test]
    fn non_finite_samples_do_not_poison() {
        let mut s = sine(997.0, 0.1, 2.0, 16_000);
        s[100] = f32::NAN;
        s[200] = f32::INFINITY;
        assert!(lufs(&s, 16_000).is_finite());
        assert!(rms_dbfs(&s).is_finite());
    }
}
