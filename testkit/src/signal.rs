//! Test signals made independently of the code under test.

/// Band-limited interpolation of 16 kHz `x` at `rate` (> 16 kHz), independent of Diglett's
/// resampler: a Blackman-windowed sinc with 64 zero crossings either side, in f64.
pub fn upsample(x: &[f32], rate: u32) -> Vec<f32> {
    const HALF: isize = 64;
    let n_out = (x.len() as u64 * u64::from(rate) / 16_000) as usize;
    (0..n_out)
        .map(|m| {
            let t = m as f64 * 16_000.0 / f64::from(rate);
            let centre = t.floor() as isize;
            let mut acc = 0.0;
            for j in centre - HALF + 1..=centre + HALF {
                if j < 0 || j as usize >= x.len() {
                    continue;
                }
                let d = t - j as f64;
                let sinc = if d == 0.0 {
                    1.0
                } else {
                    (std::f64::consts::PI * d).sin() / (std::f64::consts::PI * d)
                };
                let u = (d / HALF as f64 + 1.0) * 0.5; // 0..1 across the window
                let w = 0.42 - 0.5 * (2.0 * std::f64::consts::PI * u).cos()
                    + 0.08 * (4.0 * std::f64::consts::PI * u).cos();
                acc += f64::from(x[j as usize]) * sinc * w;
            }
            acc as f32
        })
        .collect()
}
