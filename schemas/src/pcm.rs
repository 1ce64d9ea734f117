//! 16 kHz mono little-endian `i16` PCM, the bus's audio format.
//!
//! Conversions are the decoder's for 16-bit WAV (`x / 32768`), so a window sent as PCM and
//! decoded by the worker is exactly what the model would read from a 16-bit WAV.

/// Converts `f32` samples in [-1, 1] to little-endian `i16` bytes: `round(x * 32768)`, clamped
/// to the `i16` range (so 1.0 becomes 32767). NaN becomes 0.
pub fn from_f32(samples: &[f32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(samples.len() * 2);
    for &x in samples {
        out.extend_from_slice(&to_i16(x).to_le_bytes());
    }
    out
}

/// One `f32` sample in [-1, 1] as `i16`: `round(x * 32768)`, clamped to the `i16` range. NaN
/// becomes 0. The one conversion every writer of 16-bit audio in the workspace uses.
pub fn to_i16(x: f32) -> i16 {
    if x.is_nan() {
        0
    } else {
        (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
    }
}

/// Converts little-endian `i16` bytes to `f32` as `x / 32768`. A trailing odd byte is ignored
/// (callers validate lengths first).
pub fn to_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
        .collect()
}

/// Number of samples in `bytes`, or `None` when the length is odd (not whole samples).
pub fn sample_count(bytes: &[u8]) -> Option<usize> {
    bytes.len().is_multiple_of(2).then_some(bytes.len() / 2)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_is_exact_on_the_grid() {
        let ints: Vec<i16> = vec![i16::MIN, -1, 0, 1, 12345, i16::MAX];
        let f: Vec<f32> = ints.iter().map(|&i| f32::from(i) / 32768.0).collect();
        let bytes = from_f32(&f);
        assert_eq!(bytes.len(), 12);
        assert_eq!(to_f32(&bytes), f);
        assert_eq!(
            to_f32(&from_f32(&[1.5, -2.0, f32::NAN])),
            vec![32767.0 / 32768.0, -1.0, 0.0]
        );
        assert_eq!(sample_count(&[0; 4]), Some(2));
        assert_eq!(sample_count(&[0; 3]), None);
    }
}
