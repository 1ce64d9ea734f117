//! Scoring embeddings against enrolled speakers, and the decision rules.
//!
//! Embeddings from [`crate::encoder`] are L2-normalised, so cosine similarity is a dot product;
//! [`cosine`] still divides by the norms so that it is correct for any input (profiles averaged
//! by a client, say) and returns 0 rather than NaN for a zero vector.
//!
//! Two rules live here:
//! - [`decide`]: the original pipeline's rule (argmax, accept at a threshold), kept for callers
//!   that only verify one speaker;
//! - [`label_window`]: the worker's per-window label — `silence` (VAD gate), `overlap`,
//!   `speaker` or `unknown` — with [`DecisionParams`]. Its defaults were chosen from data by
//!   `model/examples/tune_decision.rs`; the numbers behind each are in `docs/decision.md`.

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

/// Default acceptance threshold of [`label_window`] (cosine).
///
/// From `tune_decision` (see `docs/decision.md`): the *open-set* equal-error point, where the
/// share of target windows rejected (`data/speakers`) equals the share of impostor windows
/// (`data/cohort`, 120 unseen speakers) whose best score over the 6 enrolled is accepted:
/// 6.5% at cosine 0.668. The closed-set EER point (0.622, 2.0%) only weighs enrolled speakers
/// against each other and lets 23.6% of impostor windows through; at 0.67 that drops to 6.1%
/// for an FRR of 6.8% (target windows) and a trial FAR of 1.0%.
pub const DEFAULT_THRESHOLD: f32 = 0.67;

/// Default [`DecisionParams::overlap_min`]: both of the two best scores must reach it.
///
/// Conservative on purpose (see `docs/decision.md`): with 1.6 s windows, a mixture's two best
/// scores look like an unknown voice's (cohort impostors' best scores have median 0.58), and
/// two enrolled voices recorded on one channel score ≈ 0.75 against each other's windows. At
/// 0.80 (with [`DEFAULT_OVERLAP_MARGIN`]) no single-speaker or impostor window of
/// `data/speakers` / `data/cohort` and no single-speaker frame of `sample.wav` is called
/// overlap — and almost no overlap is found either; lower values mislabel more than they find.
pub const DEFAULT_OVERLAP_MIN: f32 = 0.80;

/// Default [`DecisionParams::overlap_margin`]: the two best scores must be this close.
///
/// With [`DEFAULT_OVERLAP_MIN`]: the narrowest margin tried (0.02); wider margins only added
/// single-speaker windows labelled overlap (see `docs/decision.md`).
pub const DEFAULT_OVERLAP_MARGIN: f32 = 0.02;

/// Default [`DecisionParams::min_voiced`]: windows with a smaller voiced fraction are silence.
///
/// 0.10 = "under 10% of the window is speech" (5 of the 50 chunks of 1.6 s, 160 ms: too little
/// for a speaker embedding), the same cut that defines a silence window in the evaluation. On
/// `sample.wav` every value in 0.05–0.50 separates the windows with < 10% reference speech
/// (voiced 0.00) from those with > 50% (≥ 0.52) without error and saves 19% of encoder runs;
/// 0.10 keeps the largest margin below real speech (the least-voiced `data/speakers` window
/// has 0.28, none is gated).
pub const DEFAULT_MIN_VOICED: f32 = 0.10;

/// A 32 ms VAD chunk counts as voiced at Silero probability ≥ this: silero-vad's own default
/// speech threshold (`get_speech_timestamps(threshold=0.5)`), the same one enrollment trims with.
pub const VOICED_PROBABILITY: f32 = 0.5;

/// Parameters of [`label_window`]. `Default` gives the values chosen in `docs/decision.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionParams {
    /// The best speaker is accepted when its cosine score is ≥ this.
    pub threshold: f32,
    /// Overlap needs both of the two best scores ≥ this: a mixture of two enrolled voices
    /// resembles both, while an unknown voice or a single speaker resembles at most one.
    pub overlap_min: f32,
    /// Overlap needs `best − second ≤ overlap_margin`: a clear winner is one speaker.
    pub overlap_margin: f32,
    /// VAD gate: a window whose voiced fraction ([`crate::vad::voiced_fraction`] of its 32 ms
    /// chunks at [`VOICED_PROBABILITY`]) is below this is silence, and needs no encoder run.
    pub min_voiced: f32,
}

impl Default for DecisionParams {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            overlap_min: DEFAULT_OVERLAP_MIN,
            overlap_margin: DEFAULT_OVERLAP_MARGIN,
            min_voiced: DEFAULT_MIN_VOICED,
        }
    }
}

impl DecisionParams {
    /// These parameters with the overlap rule switched off (`overlap_min` = +∞), for a caller
    /// that wants only `speaker` / `unknown` / `silence`.
    pub fn without_overlap(self) -> Self {
        Self {
            overlap_min: f32::INFINITY,
            ..self
        }
    }
}

/// What a window holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Label {
    /// One enrolled speaker.
    Speaker,
    /// Speech, but no enrolled speaker reached the threshold.
    Unknown,
    /// Two enrolled speakers at once.
    Overlap,
    /// Too little speech for the encoder (VAD gate).
    Silence,
}

impl Label {
    /// The label's wire name: `speaker`, `unknown`, `overlap` or `silence`.
    pub fn as_str(self) -> &'static str {
        match self {
            Label::Speaker => "speaker",
            Label::Unknown => "unknown",
            Label::Overlap => "overlap",
            Label::Silence => "silence",
        }
    }
}

/// The outcome of [`label_window`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowDecision {
    /// The label.
    pub label: Label,
    /// The enrolled speaker (index into the enrolled list): the accepted one for `speaker`, the
    /// better-scoring of the two for `overlap`; `None` for `unknown` and `silence`.
    pub speaker: Option<usize>,
    /// The best score, whatever the label (`None` when no score was given, e.g. a gated window).
    pub best_score: Option<f32>,
    /// The runner-up and its score, whatever the label (the other voice for `overlap`).
    pub second: Option<(usize, f32)>,
}

/// Whether a window with this voiced fraction passes the VAD gate, i.e. is worth an encoder run.
///
/// `false` means [`label_window`] will say `silence` whatever the scores, so the worker can skip
/// the encoder and pass no scores. NaN passes: on bad input, run the encoder rather than drop
/// speech.
pub fn gate(voiced_fraction: f32, params: &DecisionParams) -> bool {
    voiced_fraction >= params.min_voiced || voiced_fraction.is_nan()
}

/// An enrolled speaker's index and score.
type Scored = Option<(usize, f32)>;

/// The best and second-best (index, score), NaN scores skipped, ties to the lower index.
fn top_two(scores: &[f32]) -> (Scored, Scored) {
    let (mut best, mut second) = (None::<(usize, f32)>, None::<(usize, f32)>);
    for (i, s) in scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !s.is_nan())
    {
        match best {
            Some((_, bs)) if bs >= s => {
                if second.is_none_or(|(_, ss)| s > ss) {
                    second = Some((i, s));
                }
            }
            _ => {
                second = best;
                best = Some((i, s));
            }
        }
    }
    (best, second)
}

/// Labels one window from its voiced fraction and its scores against the enrolled speakers.
///
/// In order:
/// 1. `silence` if the window fails the VAD [`gate`] (scores may then be empty);
/// 2. `overlap` if there are ≥ 2 scores, the runner-up reaches `overlap_min` and is within
///    `overlap_margin` of the best. Checked before the threshold because a mixture's embedding
///    lies between its two voices, so it often scores *below* the single-speaker threshold for
///    both; requiring both scores to be high keeps unknown voices (which resemble one enrolled
///    speaker at most) out. With one enrolled speaker there is no runner-up and never overlap;
/// 3. `speaker` if the best score is ≥ `threshold`;
/// 4. `unknown` otherwise (including no scores at all).
///
/// NaN scores are never chosen; ties go to the lower index.
pub fn label_window(
    scores: &[f32],
    voiced_fraction: f32,
    params: &DecisionParams,
) -> WindowDecision {
    let (best, second) = top_two(scores);
    let decision = |label, speaker| WindowDecision {
        label,
        speaker,
        best_score: best.map(|(_, s)| s),
        second,
    };
    if !gate(voiced_fraction, params) {
        return decision(Label::Silence, None);
    }
    match (best, second) {
        (Some((i, s1)), Some((_, s2)))
            if s2 >= params.overlap_min && s1 - s2 <= params.overlap_margin =>
        {
            decision(Label::Overlap, Some(i))
        }
        (Some((i, s1)), _) if s1 >= params.threshold => decision(Label::Speaker, Some(i)),
        _ => decision(Label::Unknown, None),
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

    fn params() -> DecisionParams {
        DecisionParams {
            threshold: 0.6,
            overlap_min: 0.5,
            overlap_margin: 0.1,
            min_voiced: 0.2,
        }
    }

    #[test]
    fn gate_threshold() {
        let p = params();
        assert!(!gate(0.19, &p));
        // Exactly at `min_voiced` passes; NaN passes (never drop speech on bad input).
        assert!(gate(0.2, &p));
        assert!(gate(1.0, &p));
        assert!(gate(f32::NAN, &p));
    }

    #[test]
    fn silence_whatever_the_scores() {
        let d = label_window(&[0.9, 0.1], 0.1, &params());
        assert_eq!(d.label, Label::Silence);
        assert_eq!(d.speaker, None);
        // Scores, when given, are still reported.
        assert_eq!(d.best_score, Some(0.9));
        assert_eq!(d.second, Some((1, 0.1)));
        // A gated window needs no scores.
        let d = label_window(&[], 0.0, &params());
        assert_eq!(
            (d.label, d.best_score, d.second),
            (Label::Silence, None, None)
        );
    }

    #[test]
    fn speaker_when_clear_winner_above_threshold() {
        let d = label_window(&[0.2, 0.8, 0.55], 0.9, &params());
        assert_eq!(d.label, Label::Speaker);
        assert_eq!(d.speaker, Some(1));
        assert_eq!(d.best_score, Some(0.8));
        assert_eq!(d.second, Some((2, 0.55)));
        // Exactly at the threshold counts.
        assert_eq!(label_window(&[0.6], 1.0, &params()).label, Label::Speaker);
    }

    #[test]
    fn unknown_below_threshold_or_no_scores() {
        let d = label_window(&[0.3, 0.59], 0.9, &params());
        assert_eq!((d.label, d.speaker), (Label::Unknown, None));
        assert_eq!(d.best_score, Some(0.59));
        let d = label_window(&[], 0.9, &params());
        assert_eq!(
            (d.label, d.best_score, d.second),
            (Label::Unknown, None, None)
        );
        let d = label_window(&[f32::NAN, f32::NAN], 0.9, &params());
        assert_eq!((d.label, d.best_score), (Label::Unknown, None));
    }

    #[test]
    fn overlap_when_two_close_high_scores() {
        // Both ≥ 0.5 and 0.05 apart: overlap, even though neither reaches the 0.6 threshold.
        let d = label_window(&[0.1, 0.55, 0.58], 0.9, &params());
        assert_eq!(d.label, Label::Overlap);
        assert_eq!(d.speaker, Some(2));
        assert_eq!(d.second, Some((1, 0.55)));
        // Above the threshold too.
        assert_eq!(
            label_window(&[0.7, 0.75], 0.9, &params()).label,
            Label::Overlap
        );
    }

    #[test]
    fn no_overlap_when_far_apart_or_runner_up_low() {
        // Margin 0.2 > 0.1: the best one wins.
        let d = label_window(&[0.85, 0.65], 0.9, &params());
        assert_eq!((d.label, d.speaker), (Label::Speaker, Some(0)));
        // Close but the runner-up is below overlap_min: an unknown voice, not two speakers.
        assert_eq!(
            label_window(&[0.45, 0.49], 0.9, &params()).label,
            Label::Unknown
        );
        // A single enrolled speaker can never overlap.
        assert_eq!(label_window(&[0.9], 0.9, &params()).label, Label::Speaker);
        // Switched off.
        let d = label_window(&[0.7, 0.75], 0.9, &params().without_overlap());
        assert_eq!((d.label, d.speaker), (Label::Speaker, Some(1)));
    }

    #[test]
    fn top_two_order_ties_and_nan() {
        assert_eq!(top_two(&[]), (None, None));
        assert_eq!(top_two(&[0.3]), (Some((0, 0.3)), None));
        assert_eq!(top_two(&[0.3, 0.9, 0.5]), (Some((1, 0.9)), Some((2, 0.5))));
        assert_eq!(top_two(&[0.9, 0.3, 0.5]), (Some((0, 0.9)), Some((2, 0.5))));
        assert_eq!(
            top_two(&[0.7, f32::NAN, 0.7]),
            (Some((0, 0.7)), Some((2, 0.7)))
        );
        assert_eq!(top_two(&[0.5, 0.5, 0.5]), (Some((0, 0.5)), Some((1, 0.5))));
    }

    #[test]
    fn defaults_are_the_constants() {
        let p = DecisionParams::default();
        assert_eq!(p.threshold, DEFAULT_THRESHOLD);
        assert_eq!(p.overlap_min, DEFAULT_OVERLAP_MIN);
        assert_eq!(p.overlap_margin, DEFAULT_OVERLAP_MARGIN);
        assert_eq!(p.min_voiced, DEFAULT_MIN_VOICED);
        // The overlap rule can only fire when both scores may reach it; the gate must let
        // fully voiced windows through.
        const { assert!(DEFAULT_OVERLAP_MIN <= 1.0 && DEFAULT_MIN_VOICED < 1.0) };
    }
}
