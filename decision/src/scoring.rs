//! Scoring embeddings against enrolled speakers, and the decision rules.
//!
//! Embeddings from the speaker encoders are L2-normalised, so cosine similarity is a dot product;
//! [`cosine`] still divides by the norms so that it is correct for any input (profiles averaged
//! by a client, say) and returns 0 rather than NaN for a zero vector.
//!
//! Two rules live here:
//! - [`decide`]: the original pipeline's rule (argmax, accept at a threshold), kept for callers
//!   that only verify one speaker;
//! - [`label_window`]: the worker's per-window label — `silence` (VAD gate), `overlap`,
//!   `speaker` or `unknown` — with [`DecisionParams`], from the scores alone;
//! - [`label_window_with`]: the same labels, but overlap is decided by [`pair_fit`], which also
//!   knows how similar the two best-scoring enrolled speakers are to each other (their cosine).
//!   This is the one to use when the enrolled embeddings are at hand.
//!
//! The defaults were chosen from data by `model/examples/tune_decision.rs`; the numbers behind
//! each are in `docs/decision.md`.

pub use diglett_schemas::Label;

/// Cosine similarity of two vectors of equal length; 0 when either is all zeros or lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    cosine_f64(a, b) as f32
}

/// [`cosine`] accumulated and returned in f64, so that it resolves 1 − 1e-12 (parity tests).
pub fn cosine_f64(a: &[f32], b: &[f32]) -> f64 {
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
        dot / denom
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

/// The acceptance threshold of a CAM++ session (its cosines sit lower than GE2E's): the
/// frame-timeline study's selection over every set with segmentation-3.0's speech rule
/// ([`crate::timeline::TimelineParams::campp`]), and the open-set protocol's equal-error region
/// for CAM++ (2.84 % at 0.325; at 0.35, 6.0 % of target windows rejected and 1.5 % of unknown
/// voices accepted; docs/decision.md, **CAM++ in the same study**). Gateways send it as the
/// window's threshold when the client gives none.
pub const DEFAULT_THRESHOLD_CAMPP: f32 = 0.35;

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

/// Default [`DecisionParams::overlap_balance`]: the weaker voice's weight must be ≥ this share of
/// the stronger one's in the two-speaker fit ([`pair_fit`]).
///
/// From `tune_decision` (see `docs/decision.md`), chosen with [`DEFAULT_OVERLAP_FIT`] on
/// synthetic mixtures of two `data/speakers` voices with those two enrolled: the grid point that
/// finds the most mixtures while labelling ≤ 1% of single-speaker windows and ≤ 1% of impostor
/// (`data/cohort`) windows overlap. A single speaker's window has a median balance of 0.15
/// (95th percentile 0.46), a 0 dB mixture's 0.62.
pub const DEFAULT_OVERLAP_BALANCE: f32 = 0.6;

/// Default [`DecisionParams::overlap_fit`]: the cosine between the window embedding and the
/// plane of the two enrolled embeddings must be ≥ this.
///
/// Chosen with [`DEFAULT_OVERLAP_BALANCE`] (see there). An unknown voice resembles most enrolled
/// speakers a little and is balanced too, so this floor is what keeps it out: impostor windows
/// fit a pair of enrolled speakers with median cosine 0.58 (99th percentile 0.72), mixtures
/// with 0.70, single speakers with 0.78.
pub const DEFAULT_OVERLAP_FIT: f32 = 0.70;

/// [`pair_fit`] gives no fit when the two enrolled embeddings have a cosine above this: the 2×2
/// system is then ill-conditioned (its determinant 1 − g² is < 0.1), and two enrollments this
/// alike cannot be told apart in a mixture anyway. Enrolled pairs measured so far: 0.42–0.66
/// (`data/speakers`), 0.80 (the two voices of `sample.wav`, one channel).
pub const MAX_PAIR_COSINE: f32 = 0.95;

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

/// Parameters of [`label_window`] and [`label_window_with`]. `Default` gives the values chosen in
/// `docs/decision.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecisionParams {
    /// The best speaker is accepted when its cosine score is ≥ this.
    pub threshold: f32,
    /// [`label_window`] only: overlap needs both of the two best scores ≥ this: a mixture of
    /// two enrolled voices resembles both, while an unknown voice or a single speaker resembles
    /// at most one.
    pub overlap_min: f32,
    /// [`label_window`] only: overlap needs `best − second ≤ overlap_margin`: a clear winner is
    /// one speaker.
    pub overlap_margin: f32,
    /// [`label_window_with`] only: overlap needs the two-speaker fit's weights to satisfy
    /// `weak / strong ≥ overlap_balance` ([`PairFit::balance`]): both voices must be present.
    pub overlap_balance: f32,
    /// [`label_window_with`] only: overlap needs the window to lie close to the plane of the
    /// two enrolled embeddings, cosine ≥ `overlap_fit` ([`PairFit::fit`]): an unknown voice is
    /// balanced between enrolled speakers too, but far from all of them.
    pub overlap_fit: f32,
    /// VAD gate: a window whose voiced fraction (`diglett_model::vad::voiced_fraction` of its 32 ms
    /// chunks at [`VOICED_PROBABILITY`]) is below this is silence, and needs no encoder run.
    pub min_voiced: f32,
}

impl Default for DecisionParams {
    fn default() -> Self {
        Self {
            threshold: DEFAULT_THRESHOLD,
            overlap_min: DEFAULT_OVERLAP_MIN,
            overlap_margin: DEFAULT_OVERLAP_MARGIN,
            overlap_balance: DEFAULT_OVERLAP_BALANCE,
            overlap_fit: DEFAULT_OVERLAP_FIT,
            min_voiced: DEFAULT_MIN_VOICED,
        }
    }
}

impl DecisionParams {
    /// These parameters with both overlap rules switched off (`overlap_min` = `overlap_fit` =
    /// +∞), for a caller that wants only `speaker` / `unknown` / `silence`.
    pub fn without_overlap(self) -> Self {
        Self {
            overlap_min: f32::INFINITY,
            overlap_fit: f32::INFINITY,
            ..self
        }
    }

    /// These parameters with the pair-aware overlap rule made as strict as `n_enrolled` needs.
    ///
    /// The false-overlap rate grows with the number of enrolled speakers (more pairs, and a
    /// better chance that two of them sound alike; `docs/decision.md`, "more enrolled
    /// speakers"): the defaults hold ≤ 1% on single-speaker and cohort windows with 2 enrolled,
    /// 3–4 need balance 0.80 / fit 0.72 for the same rate, and from 5 on no setting that still
    /// finds overlap stays under it, so overlap is switched off. Stricter values already set by
    /// the caller are kept.
    pub fn for_enrolled(self, n_enrolled: usize) -> Self {
        match n_enrolled {
            0..=2 => self,
            3 | 4 => Self {
                overlap_balance: self.overlap_balance.max(STRICT_OVERLAP_BALANCE),
                overlap_fit: self.overlap_fit.max(STRICT_OVERLAP_FIT),
                ..self
            },
            _ => self.without_overlap(),
        }
    }
}

/// [`DecisionParams::for_enrolled`] with 3–4 speakers: the setting the synthetic-mixture
/// selection picks there (≈ 7% of mixtures found at ≤ 1% false overlap).
pub const STRICT_OVERLAP_BALANCE: f32 = 0.80;
/// See [`STRICT_OVERLAP_BALANCE`].
pub const STRICT_OVERLAP_FIT: f32 = 0.72;

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
///
/// This rule cannot tell two similar enrolled voices apart from a mixture of them (see
/// `docs/decision.md`), so its defaults leave it effectively off; prefer [`label_window_with`].
pub fn label_window(
    scores: &[f32],
    voiced_fraction: f32,
    params: &DecisionParams,
) -> WindowDecision {
    label_by(scores, voiced_fraction, params, |(_, s1), (_, s2)| {
        s2 >= params.overlap_min && s1 - s2 <= params.overlap_margin
    })
}

/// Labels one window like [`label_window`], but decides overlap from the two-speaker fit
/// ([`pair_fit`]), which accounts for how similar the two best-scoring enrolled speakers are.
///
/// `pair_cosine(i, j)` is the cosine between enrolled embeddings `i` and `j` (indices into
/// `scores`); it is called at most once per window, for the two best. For example
/// `|i, j| cosine(&enrolled[i], &enrolled[j])`.
///
/// In order:
/// 1. `silence` if the window fails the VAD [`gate`];
/// 2. `overlap` if there are ≥ 2 scores and the fit of the two best, `f = pair_fit(best, second,
///    pair_cosine(best, second))`, exists (the pair cosine is finite and ≤ [`MAX_PAIR_COSINE`])
///    with `f.balance() ≥ overlap_balance` and `f.fit ≥ overlap_fit`. Checked before the
///    threshold, as in [`label_window`];
/// 3. `speaker` if the best score is ≥ `threshold`;
/// 4. `unknown` otherwise.
///
/// `overlap_min` and `overlap_margin` play no part here.
pub fn label_window_with(
    scores: &[f32],
    pair_cosine: impl Fn(usize, usize) -> f32,
    voiced_fraction: f32,
    params: &DecisionParams,
) -> WindowDecision {
    label_by(scores, voiced_fraction, params, |(i, s1), (j, s2)| {
        pair_fit(s1, s2, pair_cosine(i, j))
            .is_some_and(|f| f.balance() >= params.overlap_balance && f.fit >= params.overlap_fit)
    })
}

/// The shared order of both rules; `overlap(best, second)` decides step 2.
fn label_by(
    scores: &[f32],
    voiced_fraction: f32,
    params: &DecisionParams,
    overlap: impl FnOnce((usize, f32), (usize, f32)) -> bool,
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
        (Some(b), Some(r)) if overlap(b, r) => decision(Label::Overlap, Some(b.0)),
        (Some((i, s1)), _) if s1 >= params.threshold => decision(Label::Speaker, Some(i)),
        _ => decision(Label::Unknown, None),
    }
}

/// The least-squares fit of a window embedding `e` by two enrolled embeddings `a` (the better
/// scoring) and `b`: `e ≈ alpha·a + beta·b`.
///
/// A window holding both voices embeds roughly along `normalise(α·a + β·b)` with both weights
/// substantial; a single speaker's window needs only its own voice (`beta ≈ 0` once the
/// similarity of the two enrollments is accounted for). Scores alone cannot tell these apart
/// when the enrollments are alike: with cosine 0.8 between them, a single speaker scoring 0.92
/// scores ≈ 0.74 against the other just by that similarity.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PairFit {
    /// Weight of the better-scoring speaker (> 0 whenever its score is > 0).
    pub alpha: f32,
    /// Weight of the other speaker; ≤ `alpha`, negative when the second score is *below* what
    /// the enrollments' similarity alone predicts.
    pub beta: f32,
    /// Cosine between the window embedding and its projection on the plane of the two
    /// enrollments, `sqrt(alpha·s_a + beta·s_b)`: how well the pair explains the window at all
    /// (≥ the best score; equal when `beta` = 0).
    pub fit: f32,
}

impl PairFit {
    /// `beta / alpha` (≤ 1): the weaker voice's share relative to the stronger; 1 = equal,
    /// ≤ 0 = the second voice adds nothing. NaN-free for a fit from [`pair_fit`].
    pub fn balance(&self) -> f32 {
        if self.alpha > 0.0 {
            self.beta / self.alpha
        } else {
            f32::NEG_INFINITY
        }
    }
}

/// Fits a window by the two best-scoring enrolled speakers, from the window's scores against
/// them (`s_best` ≥ `s_second`, cosines) and their enrollments' cosine `pair_cosine`.
///
/// Solves the 2×2 Gram system `[[1, g], [g, 1]]·[α, β] = [s_best, s_second]` (the least
/// squares of a unit-norm window embedding onto the span of the two unit-norm enrollments).
/// `None` when an input is not finite, `s_best < s_second`, or `|g| > MAX_PAIR_COSINE`
/// (ill-conditioned: [`label_window_with`] then says no overlap).
pub fn pair_fit(s_best: f32, s_second: f32, pair_cosine: f32) -> Option<PairFit> {
    let (s1, s2, g) = (
        f64::from(s_best),
        f64::from(s_second),
        f64::from(pair_cosine),
    );
    if !(s1.is_finite() && s2.is_finite() && g.is_finite())
        || s1 < s2
        || g.abs() > f64::from(MAX_PAIR_COSINE)
    {
        return None;
    }
    let det = 1.0 - g * g;
    let alpha = (s1 - g * s2) / det;
    let beta = (s2 - g * s1) / det;
    // s^T G^-1 s ≥ 0 since G is positive definite for |g| < 1; max() guards rounding only.
    let fit = (alpha * s1 + beta * s2).max(0.0).sqrt();
    Some(PairFit {
        alpha: alpha as f32,
        beta: beta as f32,
        fit: fit as f32,
    })
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
            overlap_balance: 0.5,
            overlap_fit: 0.75,
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
        assert_eq!(p.overlap_balance, DEFAULT_OVERLAP_BALANCE);
        assert_eq!(p.overlap_fit, DEFAULT_OVERLAP_FIT);
        assert_eq!(p.min_voiced, DEFAULT_MIN_VOICED);
        // The overlap rules can only fire when both scores may reach them (balance ≤ 1 and fit
        // ≤ 1 are the most a fit can give); the gate must let fully voiced windows through.
        const {
            assert!(DEFAULT_OVERLAP_MIN <= 1.0 && DEFAULT_MIN_VOICED < 1.0);
            assert!(DEFAULT_OVERLAP_BALANCE <= 1.0 && DEFAULT_OVERLAP_FIT <= 1.0);
            assert!(MAX_PAIR_COSINE < 1.0);
        };
    }

    fn unit(v: &[f32]) -> Vec<f32> {
        let mut v = v.to_vec();
        l2_normalize(&mut v);
        v
    }

    fn close(x: f32, y: f32) -> bool {
        (x - y).abs() < 1e-5
    }

    #[test]
    fn pair_fit_recovers_mixtures_and_single_voices() {
        // Two enrollments with cosine 0.8 (as the two voices of sample.wav).
        let a = [1.0, 0.0];
        let b = [0.8, 0.6];
        let g = cosine(&a, &b);
        assert!(close(g, 0.8));
        // A window that is exactly voice b: it scores 0.8 against a just by similarity, yet
        // the fit puts all the weight on b.
        let f = pair_fit(1.0, 0.8, g).expect("finite, ordered, well-conditioned");
        assert!(close(f.alpha, 1.0) && close(f.beta, 0.0) && close(f.fit, 1.0));
        assert!(close(f.balance(), 0.0));
        // An equal mixture, normalise(a + b): equal weights, perfect fit.
        let e = unit(&[a[0] + b[0], a[1] + b[1]]);
        let (sa, sb) = (cosine(&e, &a), cosine(&e, &b));
        let f = pair_fit(sa.max(sb), sa.min(sb), g).expect("finite, ordered, well-conditioned");
        assert!(close(f.alpha, f.beta) && close(f.balance(), 1.0) && close(f.fit, 1.0));
        // 2:1 mixture.
        let e = unit(&[2.0 * a[0] + b[0], 2.0 * a[1] + b[1]]);
        let f =
            pair_fit(cosine(&e, &a), cosine(&e, &b), g).expect("finite, ordered, well-conditioned");
        assert!(close(f.balance(), 0.5) && close(f.fit, 1.0));
        // Orthogonal enrollments: the weights are the scores.
        let f = pair_fit(0.6, 0.3, 0.0).expect("finite, ordered, well-conditioned");
        assert!(close(f.alpha, 0.6) && close(f.beta, 0.3));
        assert!(close(f.fit, (0.6f32 * 0.6 + 0.3 * 0.3).sqrt()));
        // A second score below what the similarity predicts: negative beta, balance < 0.
        let f = pair_fit(0.9, 0.5, 0.8).expect("finite, ordered, well-conditioned");
        assert!(f.beta < 0.0 && f.balance() < 0.0);
        // The fit never falls below the best score.
        assert!(f.fit >= 0.9);
    }

    #[test]
    fn pair_fit_refuses_bad_input() {
        assert_eq!(pair_fit(f32::NAN, 0.5, 0.5), None);
        assert_eq!(pair_fit(0.7, f32::NAN, 0.5), None);
        assert_eq!(pair_fit(0.7, 0.5, f32::NAN), None);
        assert_eq!(pair_fit(0.7, 0.5, f32::INFINITY), None);
        // Scores out of order.
        assert_eq!(pair_fit(0.5, 0.7, 0.5), None);
        // Ill-conditioned: enrollments nearly identical (either sign).
        assert_eq!(pair_fit(0.8, 0.79, 0.96), None);
        assert_eq!(pair_fit(0.8, 0.79, -0.96), None);
        assert!(pair_fit(0.8, 0.79, MAX_PAIR_COSINE).is_some());
        // A non-positive best score gives alpha ≤ 0 and no balance.
        let f = pair_fit(0.0, 0.0, 0.5).expect("finite, ordered, well-conditioned");
        assert_eq!(f.balance(), f32::NEG_INFINITY);
    }

    /// Pair cosines for `label_window_with` tests: every pair has cosine `g`.
    fn all_pairs(g: f32) -> impl Fn(usize, usize) -> f32 {
        move |_, _| g
    }

    #[test]
    fn with_pairs_silence_whatever_the_scores() {
        let d = label_window_with(&[0.77, 0.8], all_pairs(0.8), 0.1, &params());
        assert_eq!((d.label, d.speaker), (Label::Silence, None));
        assert_eq!(d.second, Some((0, 0.77)));
        let d = label_window_with(&[], all_pairs(0.8), 0.0, &params());
        assert_eq!((d.label, d.best_score), (Label::Silence, None));
    }

    #[test]
    fn with_pairs_overlap_when_both_voices_fit() {
        // Window 9.5 s of sample.wav: 0.767 / 0.796 with enrollments at cosine 0.80: balance
        // 0.72, fit 0.83.
        let d = label_window_with(&[0.767, 0.796], all_pairs(0.798), 0.9, &params());
        assert_eq!(d.label, Label::Overlap);
        assert_eq!(d.speaker, Some(1));
        assert_eq!(d.second, Some((0, 0.767)));
        // Overlap even when neither score reaches the 0.6 threshold: orthogonal enrollments,
        // 0.55 / 0.54 → fit 0.77, balance 0.98.
        let d = label_window_with(&[0.1, 0.54, 0.55], all_pairs(0.0), 0.9, &params());
        assert_eq!((d.label, d.speaker), (Label::Overlap, Some(2)));
    }

    #[test]
    fn with_pairs_single_speaker_despite_similar_enrollments() {
        // Window 11.5 s of sample.wav: 0.936 / 0.747, cosine 0.80. Both scores are high and the
        // old rule with overlap_min 0.7 / margin 0.2 calls it overlap; the fit gives the second
        // voice no weight (balance ≈ 0).
        let scores = [0.936, 0.747];
        let old = DecisionParams {
            overlap_min: 0.7,
            overlap_margin: 0.2,
            ..params()
        };
        assert_eq!(label_window(&scores, 0.9, &old).label, Label::Overlap);
        let d = label_window_with(&scores, all_pairs(0.798), 0.9, &old);
        assert_eq!((d.label, d.speaker), (Label::Speaker, Some(0)));
        // overlap_min / overlap_margin play no part: 0 / 0 would make the old rule fire on
        // nothing, yet the pair rule still finds overlap.
        let none = DecisionParams {
            overlap_min: 2.0,
            overlap_margin: 0.0,
            ..params()
        };
        assert_eq!(
            label_window_with(&[0.767, 0.796], all_pairs(0.798), 0.9, &none).label,
            Label::Overlap
        );
    }

    #[test]
    fn with_pairs_unknown_voice_is_balanced_but_fits_badly() {
        // An impostor resembling two enrolled speakers (cosine 0.5) a little and equally:
        // balance 0.9, but fit 0.66 < 0.75.
        let d = label_window_with(&[0.56, 0.58], all_pairs(0.5), 0.9, &params());
        assert_eq!((d.label, d.speaker), (Label::Unknown, None));
        // The same fit floor with a balanced window above it is overlap.
        let d = label_window_with(&[0.66, 0.68], all_pairs(0.5), 0.9, &params());
        assert_eq!(d.label, Label::Overlap);
    }

    #[test]
    fn with_pairs_no_overlap_when_unbalanced_or_unusable() {
        // Unbalanced (balance 0.43 < 0.5) with a good fit: the best speaker.
        let d = label_window_with(&[0.8, 0.55], all_pairs(0.3), 0.9, &params());
        assert_eq!((d.label, d.speaker), (Label::Speaker, Some(0)));
        // Ill-conditioned (cosine 0.99) or unknown (NaN) pair cosine: no overlap.
        for g in [0.99, f32::NAN] {
            let d = label_window_with(&[0.767, 0.796], all_pairs(g), 0.9, &params());
            assert_eq!((d.label, d.speaker), (Label::Speaker, Some(1)));
        }
        // One enrolled speaker: never overlap, and the pair cosine is never asked for.
        let d = label_window_with(&[0.9], |_, _| unreachable!("no pair"), 0.9, &params());
        assert_eq!(d.label, Label::Speaker);
        // No scores.
        let d = label_window_with(&[], |_, _| unreachable!("no pair"), 0.9, &params());
        assert_eq!((d.label, d.best_score), (Label::Unknown, None));
        // Switched off.
        let d = label_window_with(
            &[0.767, 0.796],
            all_pairs(0.798),
            0.9,
            &params().without_overlap(),
        );
        assert_eq!((d.label, d.speaker), (Label::Speaker, Some(1)));
    }

    #[test]
    fn with_pairs_asks_for_the_two_best() {
        let asked = std::cell::Cell::new(None);
        let g = |i, j| {
            asked.set(Some((i, j)));
            0.5
        };
        label_window_with(&[0.2, 0.7, 0.1, 0.75], g, 0.9, &params());
        assert_eq!(asked.get(), Some((3, 1)));
    }

    #[test]
    fn overlap_gets_stricter_with_more_enrolled_speakers() {
        let p = DecisionParams::default();
        assert_eq!(p.for_enrolled(2), p);
        let three = p.for_enrolled(3);
        assert_eq!(three.overlap_balance, STRICT_OVERLAP_BALANCE);
        assert_eq!(three.overlap_fit, STRICT_OVERLAP_FIT);
        assert_eq!(three.threshold, p.threshold);
        assert_eq!(p.for_enrolled(6), p.without_overlap());
        // A caller's stricter choice survives.
        let strict = DecisionParams {
            overlap_fit: 0.9,
            ..p
        };
        assert_eq!(strict.for_enrolled(4).overlap_fit, 0.9);
    }
}
