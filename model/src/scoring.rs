//! Scoring embeddings against enrolled speakers, and the decision rule.
//!
//! Embeddings from [`crate::encoder`] are L2-normalised, so cosine similarity is a dot product;
//! [`cosine`] still divides by the norms so that it is correct for any input (profiles averaged
//! by a client, say) and returns 0 rather than NaN for a zero vector.

/// Cosine similarity of two vectors of equal length; 0 when either is all zeros or lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    let (mut dot, mut na, mut nb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (f64::from(x), f64::from(y));
        dot += x * y;
        na += x * x;
        nb += y * y;
    }
    let denom = (na * nb).sqrt();
    if denom > 0.0 && denom.is_finite() {
        (dot / denom) as f32
    } else {
        0.0
    }
}

/// Scales `v` to unit L2 norm in place; leaves an all-zero vector unchanged.
pub fn l2_normalize(v: &mut [f32]) {
    let norm = v
        .iter()
        .map(|&x| f64::from(x) * f64::from(x))
        .sum::<f64>()
        .sqrt();
    if norm > 0.0 && norm.is_finite() {
        let inv = (1.0 / norm) as f32;
        v.iter_mut().for_each(|x| *x *= inv);
    }
}

/// Cosine of `embedding` against each enrolled embedding, in the same order.
pub fn score_all<E: AsRef<[f32]>>(embedding: &[f32], enrolled: &[E]) -> Vec<f32> {
    enrolled
        .iter()
        .map(|e| cosine(embedding, e.as_ref()))
        .collect()
}

/// The outcome of scoring one window against the enrolled speakers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decision {
    /// The best-scoring speaker reached the threshold.
    Speaker {
        /// Index into the enrolled list.
        index: usize,
        /// Its cosine score.
        score: f32,
    },
    /// Nobody reached the threshold (or nobody is enrolled); `best` is the closest speaker.
    Unknown {
        /// The closest speaker and its score, if any speaker was scored.
        best: Option<(usize, f32)>,
    },
}

impl Decision {
    /// The best score, whatever the decision (`None` when nobody was scored).
    pub fn best_score(&self) -> Option<f32> {
        match *self {
            Decision::Speaker { score, .. } => Some(score),
            Decision::Unknown { best } => best.map(|(_, s)| s),
        }
    }
}

/// Best enrolled speaker if its score is ≥ `threshold`, else unknown.
///
/// NaN scores are never chosen; ties go to the lower index so the result is deterministic.
pub fn decide(scores: &[f32], threshold: f32) -> Decision {
    let best = scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !s.is_nan())
        .fold(None::<(usize, f32)>, |acc, (i, s)| match acc {
            Some((_, bs)) if bs >= s => acc,
            _ => Some((i, s)),
        });
    match best {
        Some((index, score)) if score >= threshold => Decision::Speaker { index, score },
        best => Decision::Unknown { best },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_basics() {
        assert!((cosine(&[1.0, 0.0], &[1.0, 0.0]) - 1.0).abs() < 1e-7);
        assert!(cosine(&[1.0, 0.0], &[0.0, 2.0]).abs() < 1e-7);
        assert!((cosine(&[1.0, 1.0], &[-2.0, -2.0]) + 1.0).abs() < 1e-7);
        assert_eq!(cosine(&[0.0, 0.0], &[1.0, 0.0]), 0.0);
        assert_eq!(cosine(&[1.0], &[1.0, 0.0]), 0.0);
    }

    #[test]
    fn normalize() {
        let mut v = vec![3.0, 4.0];
        l2_normalize(&mut v);
        assert!((v[0] - 0.6).abs() < 1e-7 && (v[1] - 0.8).abs() < 1e-7);
        let mut z = vec![0.0; 3];
        l2_normalize(&mut z);
        assert_eq!(z, vec![0.0; 3]);
    }

    #[test]
    fn decision_rule() {
        assert_eq!(
            decide(&[0.2, 0.8, 0.7], 0.6),
            Decision::Speaker {
                index: 1,
                score: 0.8
            }
        );
        assert_eq!(
            decide(&[0.2, 0.5], 0.6),
            Decision::Unknown {
                best: Some((1, 0.5))
            }
        );
        assert_eq!(decide(&[], 0.6), Decision::Unknown { best: None });
        // Exactly at the threshold counts as the speaker.
        assert!(matches!(decide(&[0.6], 0.6), Decision::Speaker { .. }));
        // NaN is never chosen, ties go to the first.
        assert_eq!(
            decide(&[f32::NAN, 0.7, 0.7], 0.6),
            Decision::Speaker {
                index: 1,
                score: 0.7
            }
        );
        assert_eq!(decide(&[f32::NAN], 0.6), Decision::Unknown { best: None });
    }

    #[test]
    fn score_all_in_order() {
        let e = [1.0, 0.0];
        let s = score_all(&e, &[vec![1.0, 0.0], vec![0.0, 1.0]]);
        assert_eq!(s.len(), 2);
        assert!(s[0] > 0.99 && s[1].abs() < 1e-6);
    }
}
