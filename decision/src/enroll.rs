//! Enrollment verdicts and the profile merge.
//!
//! One recording's verdict is the worker's ([`verdict`]); several recordings of one request are
//! judged together ([`overall_verdict`]); their embeddings, and later a stored profile and a new
//! sample, are combined by [`weighted_mean`] — speech-weighted, re-normalised.

use diglett_schemas::Verdict;

/// Enrollment needs this much speech (s) for the verdict `ok`.
pub const MIN_SPEECH_SECONDS: f32 = 2.0;
/// Enrollment is `clipped` above this share of full-scale samples (1%).
pub const MAX_CLIPPED_FRACTION: f32 = 0.01;
/// Enrollment is `too_quiet` below this level (dBFS, before normalisation): about 20 dB under
/// ordinary close-microphone speech, where the noise floor starts to dominate after the
/// front end's gain to −30 dBFS.
pub const MIN_ENROLL_DBFS: f32 = -50.0;
/// A file with an embedding has some speech: it weighs at least this much (s) in a merge.
pub const MIN_MERGE_WEIGHT: f32 = 0.1;

/// What the verdict on one recording looks at.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recording {
    /// Whether an embedding could be computed (there was speech).
    pub has_embedding: bool,
    /// Share of samples at full scale.
    pub clipped_fraction: f32,
    /// RMS level as received (dBFS).
    pub dbfs: f32,
    /// Speech the VAD found (s).
    pub speech_seconds: f32,
}

/// The verdict on one recording; the first rule that applies wins.
pub fn verdict(r: &Recording) -> Verdict {
    if !r.has_embedding {
        Verdict::NoVoice
    } else if r.clipped_fraction > MAX_CLIPPED_FRACTION {
        Verdict::Clipped
    } else if r.dbfs < MIN_ENROLL_DBFS {
        Verdict::TooQuiet
    } else if r.speech_seconds < MIN_SPEECH_SECONDS {
        Verdict::TooShort
    } else {
        Verdict::Ok
    }
}

/// The verdict on several files together (`used`: the verdicts of those that had speech,
/// `speech`: their total speech): the first `clipped` or `too_quiet` file, else `too_short`
/// when the total is under [`MIN_SPEECH_SECONDS`], else `ok`.
pub fn overall_verdict(used: &[Verdict], speech: f32) -> Verdict {
    used.iter()
        .copied()
        .find(|v| matches!(v, Verdict::Clipped | Verdict::TooQuiet))
        .unwrap_or(if speech < MIN_SPEECH_SECONDS {
            Verdict::TooShort
        } else {
            Verdict::Ok
        })
}

/// The weighted mean of equally long embeddings, L2-normalised (in f64, narrowed to f32).
///
/// `None` when there is nothing to merge, lengths differ, a weight or value is not finite, the
/// weights do not sum to a positive number, or the mean is (nearly) the zero vector — two
/// samples that cancel out.
pub fn weighted_mean<'a>(parts: impl IntoIterator<Item = (&'a [f32], f32)>) -> Option<Vec<f32>> {
    let mut sum: Option<Vec<f64>> = None;
    let mut total = 0f64;
    for (embedding, weight) in parts {
        let w = f64::from(weight);
        if !w.is_finite() || w < 0.0 {
            return None;
        }
        let acc = sum.get_or_insert_with(|| vec![0.0; embedding.len()]);
        if acc.len() != embedding.len() {
            return None;
        }
        for (a, &x) in acc.iter_mut().zip(embedding) {
            *a += w * f64::from(x);
        }
        total += w;
    }
    let sum = sum?;
    if total <= 0.0 {
        return None;
    }
    let norm = sum.iter().map(|x| x * x).sum::<f64>().sqrt();
    if !norm.is_finite() || norm < 1e-12 * total {
        return None;
    }
    #[allow(clippy::cast_possible_truncation)]
    Some(sum.iter().map(|x| (x / norm) as f32).collect())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn rec(speech: f32) -> Recording {
        Recording {
            has_embedding: true,
            clipped_fraction: 0.0,
            dbfs: -30.0,
            speech_seconds: speech,
        }
    }

    #[test]
    fn verdict_rules_in_order() {
        assert_eq!(verdict(&rec(3.0)), Verdict::Ok);
        assert_eq!(verdict(&rec(1.0)), Verdict::TooShort);
        let quiet = Recording {
            dbfs: -60.0,
            ..rec(1.0)
        };
        assert_eq!(verdict(&quiet), Verdict::TooQuiet);
        let clipped = Recording {
            clipped_fraction: 0.2,
            ..quiet
        };
        assert_eq!(verdict(&clipped), Verdict::Clipped);
        let none = Recording {
            has_embedding: false,
            ..clipped
        };
        assert_eq!(verdict(&none), Verdict::NoVoice);
    }

    #[test]
    fn overall_verdicts() {
        assert_eq!(overall_verdict(&[Verdict::Ok], 3.0), Verdict::Ok);
        assert_eq!(
            overall_verdict(&[Verdict::TooShort, Verdict::TooShort], 3.0),
            Verdict::Ok
        );
        assert_eq!(overall_verdict(&[Verdict::Ok], 1.0), Verdict::TooShort);
        assert_eq!(
            overall_verdict(&[Verdict::Ok, Verdict::Clipped], 9.0),
            Verdict::Clipped
        );
    }

    #[test]
    fn weighted_mean_weighs_and_normalises() {
        let a = [1.0f32, 0.0];
        let b = [0.0f32, 1.0];
        let m = weighted_mean([(&a[..], 3.0), (&b[..], 1.0)]).unwrap();
        assert!((m[0] - 3.0 / 10f32.sqrt()).abs() < 1e-6, "{m:?}");
        assert!((m[1] - 1.0 / 10f32.sqrt()).abs() < 1e-6, "{m:?}");
        let neg = [-1.0f32, 0.0];
        assert_eq!(weighted_mean([(&a[..], 1.0), (&neg[..], 1.0)]), None);
        assert_eq!(weighted_mean(std::iter::empty()), None);
        assert_eq!(weighted_mean([(&a[..], 1.0), (&[1.0f32][..], 1.0)]), None);
        assert_eq!(weighted_mean([(&a[..], f32::NAN)]), None);
    }
}
