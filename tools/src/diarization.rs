//! Who spoke when: RTTM references, enrollment from a reference, and 10 ms frame scoring of a
//! label timeline — shared by the model's evaluations (`examples/tune_decision.rs`,
//! `examples/turns_eval.rs`) and the service-level `diglett-eval conversation`.
//!
//! - [`Reference`]: the RTTM turns, the speaker names (sorted, so an index is stable), the
//!   reference speakers of every 10 ms frame ([`Reference::frames`]) and each speaker's first
//!   seconds of single-speaker speech ([`Reference::solo_spans`], what a user's 5 s enrollment
//!   recording would hold).
//! - [`Span`]: one entry of a label timeline, in force from its `start` until the next one.
//! - [`score_frames`]: a timeline against the reference, frame by frame ([`FrameCounts`]).

use std::path::{Path, PathBuf};

use diglett_schemas::Label;

/// Frame step of the scoring: 10 ms, the usual diarization-error resolution.
pub const FRAME_S: f64 = 0.01;

/// One reference turn (an RTTM `SPEAKER` line), in seconds.
#[derive(Debug, Clone, PartialEq)]
pub struct RefTurn {
    /// The speaker's name (RTTM field 8).
    pub speaker: String,
    /// Onset (s).
    pub start: f64,
    /// Onset + duration (s).
    pub end: f64,
}

/// Why an RTTM file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RttmError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A `SPEAKER` line without a numeric onset and duration and a speaker name.
    #[error(
        "RTTM line {line}: expected `SPEAKER <uri> <channel> <onset> <duration> <NA> <NA> <name> …`, got {text:?}"
    )]
    BadLine {
        /// 1-based line number.
        line: usize,
        /// The line.
        text: String,
    },
}

/// Parses RTTM text: every `SPEAKER` line (`SPEAKER <uri> 1 <onset> <duration> <NA> <NA>
/// <name> <NA> <NA>`); other line types and blank lines are ignored.
pub fn parse_rttm(text: &str) -> Result<Vec<RefTurn>, RttmError> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| l.split_whitespace().next() == Some("SPEAKER"))
        .map(|(i, l)| {
            let bad = || RttmError::BadLine {
                line: i + 1,
                text: l.to_owned(),
            };
            let f: Vec<&str> = l.split_whitespace().collect();
            let num = |k: usize| -> Result<f64, RttmError> {
                f.get(k)
                    .and_then(|x| x.parse::<f64>().ok())
                    .filter(|x| x.is_finite() && *x >= 0.0)
                    .ok_or_else(bad)
            };
            let (start, dur) = (num(3)?, num(4)?);
            Ok(RefTurn {
                speaker: f.get(7).ok_or_else(bad)?.to_string(),
                start,
                end: start + dur,
            })
        })
        .collect()
}

/// A conversation's who-spoke-when reference.
#[derive(Debug, Clone, PartialEq)]
pub struct Reference {
    /// The turns, in file order.
    pub turns: Vec<RefTurn>,
    /// Distinct speaker names, sorted: a speaker's index everywhere else.
    pub names: Vec<String>,
}

impl Reference {
    /// A reference from its turns.
    pub fn new(turns: Vec<RefTurn>) -> Self {
        let mut names: Vec<String> = turns.iter().map(|t| t.speaker.clone()).collect();
        names.sort();
        names.dedup();
        Self { turns, names }
    }

    /// Parses RTTM text ([`parse_rttm`]).
    pub fn parse(text: &str) -> Result<Self, RttmError> {
        parse_rttm(text).map(Self::new)
    }

    /// Reads an RTTM file.
    pub fn read(path: &Path) -> Result<Self, RttmError> {
        let text = std::fs::read_to_string(path).map_err(|source| RttmError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(&text)
    }

    /// Frames of [`FRAME_S`] in `seconds` of audio (whole frames only).
    pub fn n_frames(seconds: f64) -> usize {
        (seconds / FRAME_S).floor() as usize
    }

    /// The reference speakers (indices into [`Self::names`], sorted, distinct) active at the
    /// centre of each of the first `n_frames` frames.
    pub fn frames(&self, n_frames: usize) -> Vec<Vec<usize>> {
        (0..n_frames)
            .map(|i| {
                let t = (i as f64 + 0.5) * FRAME_S;
                let mut who: Vec<usize> = self
                    .turns
                    .iter()
                    .filter(|s| s.start <= t && t < s.end)
                    .filter_map(|s| self.names.iter().position(|n| *n == s.speaker))
                    .collect();
                who.sort_unstable();
                who.dedup();
                who
            })
            .collect()
    }

    /// The first `seconds` of speaker `index`'s single-speaker speech (their turns minus every
    /// other speaker's), as `(start, end)` spans in time order; fewer seconds if they never
    /// speak alone that long.
    pub fn solo_spans(&self, index: usize, seconds: f64) -> Vec<(f64, f64)> {
        let Some(name) = self.names.get(index) else {
            return Vec::new();
        };
        let mut own: Vec<&RefTurn> = self.turns.iter().filter(|t| t.speaker == *name).collect();
        own.sort_by(|a, b| a.start.total_cmp(&b.start));
        let mut spans = Vec::new();
        let mut total = 0.0;
        for t in own {
            let others = self.turns.iter().filter(|o| o.speaker != *name);
            for (a, b) in subtract((t.start, t.end), others) {
                let take = (b - a).min(seconds - total);
                if take <= 0.0 {
                    return spans;
                }
                spans.push((a, a + take));
                total += take;
            }
        }
        spans
    }
}

/// The samples of `spans` (seconds) of `wav` (at `sample_rate` Hz), concatenated; spans are
/// clipped to the audio.
pub fn span_audio(wav: &[f32], sample_rate: u32, spans: &[(f64, f64)]) -> Vec<f32> {
    let at = |t: f64| ((t * f64::from(sample_rate)) as usize).min(wav.len());
    let mut out = Vec::new();
    for &(a, b) in spans {
        let (a, b) = (at(a), at(b));
        if b > a {
            out.extend_from_slice(&wav[a..b]);
        }
    }
    out
}

/// The parts of `span` not covered by any of `others`, in time order.
fn subtract<'a>(span: (f64, f64), others: impl Iterator<Item = &'a RefTurn>) -> Vec<(f64, f64)> {
    let mut parts = vec![span];
    for o in others {
        parts = parts
            .into_iter()
            .flat_map(|(a, b)| {
                let mut v = Vec::new();
                if o.start > a {
                    v.push((a, b.min(o.start)));
                }
                if o.end < b {
                    v.push((a.max(o.end), b));
                }
                v.into_iter().filter(|(x, y)| y > x)
            })
            .collect();
    }
    parts.sort_by(|x, y| x.0.total_cmp(&y.0));
    parts
}

/// One entry of a label timeline: `label` (and for `speaker`/`overlap` the speaker's index in
/// [`Reference::names`]) holds from `start` until the next span's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Span {
    /// From when (s of stream audio).
    pub start: f64,
    /// The label.
    pub label: Label,
    /// The speaker, for `speaker` (and the louder one for `overlap`).
    pub speaker: Option<usize>,
}

/// Frame counts of one timeline against a reference ([`score_frames`]).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FrameCounts {
    /// Frames with exactly one reference speaker.
    pub single: usize,
    /// … labelled `speaker` with that speaker.
    pub right: usize,
    /// … labelled `speaker` with another speaker.
    pub wrong: usize,
    /// … labelled `overlap`.
    pub single_overlap: usize,
    /// … of an enrolled speaker, labelled `unknown` (heard as speech, not named; the rest of
    /// the missed frames were called silence).
    pub single_unknown: usize,
    /// Frames with no reference speaker.
    pub none: usize,
    /// … labelled `speaker` or `overlap` (a false alarm).
    pub false_alarm: usize,
    /// Frames with two or more reference speakers.
    pub both: usize,
    /// … labelled `overlap`.
    pub both_overlap: usize,
    /// … labelled `speaker`, naming one of the overlapping voices.
    pub both_one: usize,
    /// Label changes in the timeline, frame to frame (fragmentation).
    pub changes: usize,
    /// Changes of the reference speaker set, frame to frame.
    pub ref_changes: usize,
    /// Single-speaker frames of a speaker who was not enrolled (right when `unknown`; counted
    /// in `single`, and in `right` when so labelled).
    pub single_unenrolled: usize,
}

impl FrameCounts {
    /// Adds another conversation's counts.
    pub fn add(&mut self, o: &FrameCounts) {
        self.single += o.single;
        self.right += o.right;
        self.wrong += o.wrong;
        self.single_overlap += o.single_overlap;
        self.single_unknown += o.single_unknown;
        self.none += o.none;
        self.false_alarm += o.false_alarm;
        self.both += o.both;
        self.both_overlap += o.both_overlap;
        self.both_one += o.both_one;
        self.changes += o.changes;
        self.ref_changes += o.ref_changes;
        self.single_unenrolled += o.single_unenrolled;
    }

    /// Share (0–1) of single-speaker frames given to the right speaker.
    pub fn single_accuracy(&self) -> f64 {
        ratio(self.right, self.single)
    }

    /// Share (0–1) of non-speech frames given to a speaker (or overlap).
    pub fn false_alarm_rate(&self) -> f64 {
        ratio(self.false_alarm, self.none)
    }

    /// Frames right out of single-speaker + non-speech frames (non-speech is right unless a
    /// speaker or overlap is claimed), 0–1: the turn smoother's selection objective.
    pub fn accuracy(&self) -> f64 {
        ratio(
            self.right + self.none - self.false_alarm,
            self.single + self.none,
        )
    }
}

/// `n / d`, NaN when `d` is 0.
pub fn ratio(n: usize, d: usize) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        n as f64 / d as f64
    }
}

/// Scores `spans` (sorted by start) against the reference speakers of each frame
/// ([`Reference::frames`]): frame `i` (centre `(i + ½) · FRAME_S`) takes the label of the last
/// span starting at or before its centre, `silence` before the first.
pub fn score_frames(frame_ref: &[Vec<usize>], spans: &[Span]) -> FrameCounts {
    score_frames_for(frame_ref, spans, &[])
}

/// [`score_frames`] where `enrolled[i]` says whether reference speaker `i` was enrolled (missing
/// entries: enrolled). A frame where only a speaker who was not enrolled speaks is right when
/// labelled `unknown` — the service cannot name a voice it was never given — and wrong when
/// given to an enrolled speaker.
pub fn score_frames_for(
    frame_ref: &[Vec<usize>],
    spans: &[Span],
    enrolled: &[bool],
) -> FrameCounts {
    let is_enrolled = |i: usize| enrolled.get(i).copied().unwrap_or(true);
    let mut c = FrameCounts::default();
    let mut j = 0usize; // spans[..j] start ≤ t
    let mut prev: Option<(Label, Option<usize>)> = None;
    for (i, r) in frame_ref.iter().enumerate() {
        let t = (i as f64 + 0.5) * FRAME_S;
        while j < spans.len() && spans[j].start <= t {
            j += 1;
        }
        let (l, spk) = match j.checked_sub(1).map(|k| spans[k]) {
            Some(s) => (s.label, s.speaker),
            None => (Label::Silence, None),
        };
        if prev.is_some_and(|p| p != (l, spk)) {
            c.changes += 1;
        }
        prev = Some((l, spk));
        if i > 0 && frame_ref[i - 1] != *r {
            c.ref_changes += 1;
        }
        match r.len() {
            0 => {
                c.none += 1;
                c.false_alarm += usize::from(matches!(l, Label::Speaker | Label::Overlap));
            }
            1 if !is_enrolled(r[0]) => {
                c.single += 1;
                c.single_unenrolled += 1;
                match l {
                    Label::Unknown => c.right += 1,
                    Label::Speaker => c.wrong += 1,
                    Label::Overlap => c.single_overlap += 1,
                    Label::Silence | Label::Error | Label::Other => {}
                }
            }
            1 => {
                c.single += 1;
                match l {
                    Label::Speaker if spk == Some(r[0]) => c.right += 1,
                    Label::Speaker => c.wrong += 1,
                    Label::Overlap => c.single_overlap += 1,
                    Label::Unknown => c.single_unknown += 1,
                    Label::Silence | Label::Error | Label::Other => {}
                }
            }
            _ => {
                c.both += 1;
                match l {
                    Label::Overlap => c.both_overlap += 1,
                    Label::Speaker if spk.is_some_and(|s| r.contains(&s)) => c.both_one += 1,
                    Label::Speaker
                    | Label::Unknown
                    | Label::Silence
                    | Label::Error
                    | Label::Other => {}
                }
            }
        }
    }
    c
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const RTTM: &str = "\
SPEAKER conv 1 0.50 2.00 <NA> <NA> bob <NA> <NA>
SPEAKER conv 1 2.00 3.00 <NA> <NA> alice <NA> <NA>

SPEAKER conv 1 6.00 4.00 <NA> <NA> bob <NA> <NA>
";

    fn span(start: f64, label: Label, speaker: Option<usize>) -> Span {
        Span {
            start,
            label,
            speaker,
        }
    }

    #[test]
    fn rttm_parses_and_names_sort() {
        let r = Reference::parse(RTTM).unwrap();
        assert_eq!(r.turns.len(), 3);
        assert_eq!(r.names, ["alice", "bob"]);
        assert_eq!(r.turns[0].speaker, "bob");
        assert!((r.turns[0].end - 2.5).abs() < 1e-12);
        assert!(Reference::parse("").unwrap().turns.is_empty());
        // Other record types are ignored; a bad SPEAKER line names its line.
        let e = Reference::parse("SPKR-INFO x\nSPEAKER conv 1 abc 1.0 <NA> <NA> a").unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
        assert!(Reference::parse("SPEAKER conv 1 1.0 2.0 <NA> <NA>").is_err());
        assert!(Reference::parse("SPEAKER conv 1 1.0 -2.0 <NA> <NA> a").is_err());
    }

    #[test]
    fn frames_hold_the_active_speakers() {
        let r = Reference::parse(RTTM).unwrap();
        let f = r.frames(Reference::n_frames(10.0));
        assert_eq!(f.len(), 1000);
        assert!(f[10].is_empty()); // 0.105 s
        assert_eq!(f[100], [1]); // 1.005 s: bob
        assert_eq!(f[220], [0, 1]); // 2.205 s: both
        assert_eq!(f[300], [0]); // 3.005 s: alice
        assert!(f[550].is_empty()); // 5.505 s: pause
        assert_eq!(f[999], [1]);
    }

    #[test]
    fn solo_spans_skip_overlap_and_stop_at_the_budget() {
        let r = Reference::parse(RTTM).unwrap();
        // alice (0): 2.0–5.0 minus bob's 0.5–2.5 → 2.5–5.0; 2 s of it.
        assert_eq!(r.solo_spans(0, 2.0), [(2.5, 4.5)]);
        // bob (1): 0.5–2.0 alone, then 6.0–10.0: 1.5 + 2.5 s.
        let b = r.solo_spans(1, 4.0);
        assert_eq!(b.len(), 2);
        assert_eq!(b[0], (0.5, 2.0));
        assert!((b[1].0 - 6.0).abs() < 1e-12 && (b[1].1 - 8.5).abs() < 1e-12);
        // Less speech than asked: all of it.
        assert_eq!(r.solo_spans(0, 60.0), [(2.5, 5.0)]);
        assert!(r.solo_spans(7, 5.0).is_empty());
        // At 10 Hz: samples 25..45 of a 48-sample ramp, clipped at its end.
        let wav: Vec<f32> = (0..48).map(|i| i as f32).collect();
        let a = span_audio(&wav, 10, &r.solo_spans(0, 2.0));
        assert_eq!(a, (25..45).map(|i| i as f32).collect::<Vec<_>>());
        assert_eq!(span_audio(&wav, 10, &[(4.6, 9.0)]).len(), 2);
    }

    #[test]
    fn frame_scoring_counts_every_kind_of_frame() {
        // Reference, 10 frames: 2 silent, 3 of speaker 0, 2 of both, 3 of speaker 1.
        let r: Vec<Vec<usize>> = vec![
            vec![],
            vec![],
            vec![0],
            vec![0],
            vec![0],
            vec![0, 1],
            vec![0, 1],
            vec![1],
            vec![1],
            vec![1],
        ];
        // Timeline (starts between frame centres, 0.005 + k · 0.01): silence, speaker 0 from
        // frame 1, overlap from frame 4, speaker 1 from frame 6, unknown from frame 8.
        let spans = [
            span(0.012, Label::Speaker, Some(0)),
            span(0.042, Label::Overlap, Some(0)),
            span(0.062, Label::Speaker, Some(1)),
            span(0.082, Label::Unknown, None),
        ];
        let c = score_frames(&r, &spans);
        assert_eq!(c.none, 2);
        assert_eq!(c.false_alarm, 1, "frame 1: non-speech given to speaker 0");
        assert_eq!(c.single, 6);
        assert_eq!(c.right, 3, "frames 2, 3 (speaker 0) and 7 (speaker 1)");
        assert_eq!(c.wrong, 0);
        assert_eq!(c.single_overlap, 1, "frame 4");
        assert_eq!(c.single_unknown, 2, "frames 8, 9 (speaker 1)");
        assert_eq!(c.both, 2);
        assert_eq!(c.both_overlap, 1, "frame 5");
        assert_eq!(c.both_one, 1, "frame 6, speaker 1");
        assert_eq!(c.changes, 4);
        assert_eq!(c.ref_changes, 3);
        assert!((c.single_accuracy() - 0.5).abs() < 1e-12);
        assert!((c.false_alarm_rate() - 0.5).abs() < 1e-12);
        // (3 right + 2 non-speech − 1 false alarm) / (6 + 2).
        assert!((c.accuracy() - 0.5).abs() < 1e-12);
        let mut twice = c;
        twice.add(&c);
        assert_eq!((twice.single, twice.false_alarm), (12, 2));
        // Speaker 1 not enrolled: frame 7 (given to them) is now wrong, frames 8 and 9 (unknown)
        // are right; speaker 0's frames score as before.
        let u = score_frames_for(&r, &spans, &[true, false]);
        assert_eq!(u.single_unenrolled, 3);
        assert_eq!((u.single, u.right, u.wrong), (6, 4, 1));
        assert_eq!(u.false_alarm, 1);
        assert_eq!(score_frames_for(&r, &spans, &[true, true]), c);
    }

    #[test]
    fn wrong_speaker_and_empty_timelines() {
        let r = vec![vec![0], vec![0], vec![]];
        let c = score_frames(&r, &[span(0.0, Label::Speaker, Some(1))]);
        assert_eq!((c.single, c.right, c.wrong, c.false_alarm), (2, 0, 2, 1));
        let c = score_frames(&r, &[]);
        assert_eq!((c.right, c.false_alarm, c.changes), (0, 0, 0));
        assert!(FrameCounts::default().single_accuracy().is_nan());
    }
}
