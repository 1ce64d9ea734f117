//! Evaluation protocols on real speech, shared by the accuracy test, the `eer` example and
//! the service-level `diglett-eval speakers` (which enrolls and scores through a running
//! gateway: [`enrollment_audio`], [`report_from_scores`]).
//!
//! The speaker protocol, on a folder of `<speaker>/<utterance>.{flac,wav,…}`:
//! - each speaker enrolls from the first [`ENROLL_SECONDS`] of speech of their first utterance
//!   (files in name order), silence-trimmed — the way a user records a 5 s sample;
//! - trials are consecutive non-overlapping [`TRIAL_SAMPLES`] windows of every *other* utterance,
//!   volume-normalised but not trimmed, each scored against every enrolled speaker;
//! - reported: the equal error rate over all (target, non-target) scores, the score at that point,
//!   and closed-set identification accuracy (argmax over enrolled speakers).
//!
//! Embedding is passed in as closures so the same protocol runs on the in-process models, and
//! the pieces are public so a client of the running service can follow it too.

use diglett_decision::scoring;

/// Seconds of speech each speaker enrolls with: the product's ~5 s recording.
pub const ENROLL_SECONDS: f32 = 5.0;
/// One trial window: 1.6 s at 16 kHz, the encoder's training window (160 mel frames).
pub const TRIAL_SAMPLES: usize = diglett_schemas::WINDOW_SAMPLES;
/// Resemblyzer's volume normalisation target, applied to every utterance.
pub const TARGET_DBFS: f32 = diglett_audio::NORMALIZE_TARGET_DBFS;

pub use diglett_audio::corpus::{CorpusError as EvalError, Speaker, load_speakers};

/// Consecutive non-overlapping windows of `len` samples (a shorter tail is dropped).
pub fn windows(wav: &[f32], len: usize) -> impl Iterator<Item = &[f32]> {
    wav.chunks_exact(len.max(1))
}

/// Equal error rate of a verification system, and the score threshold where it occurs.
///
/// Sweeps every observed score as a threshold (accept when score ≥ threshold); the EER is the
/// mean of the false-accept and false-reject rates where they are closest.
pub fn equal_error_rate(target: &[f32], nontarget: &[f32]) -> (f32, f32) {
    if target.is_empty() || nontarget.is_empty() {
        return (f32::NAN, f32::NAN);
    }
    let mut all: Vec<(f32, bool)> = target
        .iter()
        .map(|&s| (s, true))
        .chain(nontarget.iter().map(|&s| (s, false)))
        .collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (nt, nn) = (target.len() as f32, nontarget.len() as f32);
    // Threshold just above all[i - 1]: targets below it are rejected, non-targets at or above
    // it are accepted.
    let (mut rejected_targets, mut rejected_nontargets) = (0usize, 0usize);
    let mut best = (f32::INFINITY, 0.0f32, 0.0f32);
    for i in 0..=all.len() {
        let frr = rejected_targets as f32 / nt;
        let far = (nn - rejected_nontargets as f32) / nn;
        let thr = all.get(i).map_or(f32::INFINITY, |x| x.0);
        if (far - frr).abs() < best.0 {
            best = ((far - frr).abs(), (far + frr) / 2.0, thr);
        }
        if let Some(&(_, is_target)) = all.get(i) {
            if is_target {
                rejected_targets += 1;
            } else {
                rejected_nontargets += 1;
            }
        }
    }
    (best.1, best.2)
}

/// The outcome of [`speaker_protocol`].
#[derive(Debug, Clone)]
pub struct SpeakerReport {
    /// Speaker ids, in enrollment order.
    pub speakers: Vec<String>,
    /// Seconds of (trimmed) speech each enrollment actually had.
    pub enroll_seconds: Vec<f32>,
    /// Number of trial windows.
    pub trials: usize,
    /// Equal error rate over all target/non-target scores, in [0, 1].
    pub eer: f32,
    /// Cosine score at the EER point.
    pub eer_threshold: f32,
    /// Share of trials whose best-scoring enrolled speaker is the true one.
    pub identification: f32,
    /// Per speaker: (trials, correctly identified).
    pub per_speaker: Vec<(usize, usize)>,
    /// Every target score (trial speaker = enrolled speaker).
    pub target_scores: Vec<f32>,
    /// Every non-target score.
    pub nontarget_scores: Vec<f32>,
}

/// `wav` volume-normalised to [`TARGET_DBFS`] (increase only), as every utterance of the
/// protocol is.
pub fn normalised(wav: &[f32]) -> Vec<f32> {
    let mut w = wav.to_vec();
    diglett_audio::normalize_volume(&mut w, TARGET_DBFS, true);
    w
}

/// A speaker's enrollment audio under the protocol: their first utterance, volume-normalised,
/// trimmed by `trim` (the caller's VAD), cut to the first [`ENROLL_SECONDS`].
pub fn enrollment_audio(speaker: &Speaker, trim: impl FnOnce(&[f32]) -> Vec<f32>) -> Vec<f32> {
    let mut speech = trim(&normalised(&speaker.utterances[0].1));
    speech.truncate((ENROLL_SECONDS * diglett_schemas::SAMPLE_RATE as f32) as usize);
    speech
}

/// Builds the report from every trial's scores: `(true speaker index, score per enrolled
/// speaker)`. `enroll_seconds` is each enrollment's length.
pub fn report_from_scores(
    speakers: &[Speaker],
    enroll_seconds: Vec<f32>,
    trials: impl IntoIterator<Item = (usize, Vec<f32>)>,
) -> SpeakerReport {
    let (mut target_scores, mut nontarget_scores) = (Vec::new(), Vec::new());
    let mut per_speaker = vec![(0usize, 0usize); speakers.len()];
    for (si, scores) in trials {
        for (ei, &sc) in scores.iter().enumerate() {
            if ei == si {
                target_scores.push(sc);
            } else {
                nontarget_scores.push(sc);
            }
        }
        per_speaker[si].0 += 1;
        if let scoring::Decision::Speaker { index, .. } =
            scoring::decide(&scores, f32::NEG_INFINITY)
            && index == si
        {
            per_speaker[si].1 += 1;
        }
    }
    let (eer, eer_threshold) = equal_error_rate(&target_scores, &nontarget_scores);
    let trials: usize = per_speaker.iter().map(|p| p.0).sum();
    let correct: usize = per_speaker.iter().map(|p| p.1).sum();
    SpeakerReport {
        speakers: speakers.iter().map(|s| s.id.clone()).collect(),
        enroll_seconds,
        trials,
        eer,
        eer_threshold,
        identification: if trials > 0 {
            correct as f32 / trials as f32
        } else {
            0.0
        },
        per_speaker,
        target_scores,
        nontarget_scores,
    }
}

/// Runs the speaker protocol.
///
/// - `trim(wav)`: from a volume-normalised utterance, returns its silence-trimmed speech
///   (the caller's VAD), which this function cuts to the first [`ENROLL_SECONDS`];
/// - `embed_utterance(wav)`: the enrollment embedding;
/// - `embed_windows(windows)`: one embedding per trial window, batched as the caller likes.
pub fn speaker_protocol(
    speakers: &[Speaker],
    mut trim: impl FnMut(&[f32]) -> Vec<f32>,
    mut embed_utterance: impl FnMut(&[f32]) -> Vec<f32>,
    mut embed_windows: impl FnMut(&[&[f32]]) -> Vec<Vec<f32>>,
) -> SpeakerReport {
    let mut enrolled = Vec::new();
    let mut enroll_seconds = Vec::new();
    for s in speakers {
        let speech = enrollment_audio(s, &mut trim);
        enroll_seconds.push(speech.len() as f32 / diglett_schemas::SAMPLE_RATE as f32);
        enrolled.push(embed_utterance(&speech));
    }
    let mut trials = Vec::new();
    for (si, s) in speakers.iter().enumerate() {
        for (_, wav) in &s.utterances[1..] {
            let wav = normalised(wav);
            let wins: Vec<&[f32]> = windows(&wav, TRIAL_SAMPLES).collect();
            for emb in embed_windows(&wins) {
                trials.push((si, scoring::score_all(&emb, &enrolled)));
            }
        }
    }
    report_from_scores(speakers, enroll_seconds, trials)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eer_of_separable_scores_is_zero() {
        let (eer, thr) = equal_error_rate(&[0.8, 0.9, 0.7], &[0.1, 0.2, 0.3, 0.4]);
        assert_eq!(eer, 0.0);
        assert!(thr > 0.4 && thr <= 0.7, "{thr}");
    }

    #[test]
    fn eer_of_identical_distributions_is_half() {
        let s: Vec<f32> = (0..100).map(|i| i as f32 / 100.0).collect();
        let (eer, _) = equal_error_rate(&s, &s);
        assert!((eer - 0.5).abs() < 0.02, "{eer}");
    }

    #[test]
    fn eer_with_overlap() {
        // 1 of 4 targets below 1 of 4 non-targets: FAR = FRR = 25% at a threshold between.
        let (eer, thr) = equal_error_rate(&[0.35, 0.6, 0.7, 0.8], &[0.1, 0.2, 0.3, 0.5]);
        assert!((eer - 0.25).abs() < 1e-6, "{eer}");
        assert!((0.35..=0.6).contains(&thr), "{thr}");
    }

    #[test]
    fn windows_drop_the_tail() {
        let w = vec![0.0; 25_600 * 2 + 100];
        assert_eq!(windows(&w, TRIAL_SAMPLES).count(), 2);
    }
}
