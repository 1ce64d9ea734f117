//! Frame-accurate labels: a session's overlapping window results turned into one timeline of
//! 10 ms frames, decided a fixed latency behind the newest audio.
//!
//! Every window (1.6 s, one every hop) brings, besides its own label, the cosine score of each
//! enrolled speaker and Silero's speech probability for each of its 50 chunks of 32 ms. A frame
//! is covered by up to `1.6 / hop` windows (3 at the default hop); [`Decider`] accumulates, per
//! frame, the evidence of every window that covers it, each weighted by how central the frame
//! lies in that window ([`position_weight`]: a window's embedding speaks mostly for its middle),
//! and decides each frame once, when it lies `latency` behind the newest sample:
//!
//! 1. **speech or not**: the weighted mean speech probability through a hysteresis
//!    (on at [`TimelineParams::onset`], off below [`TimelineParams::offset`]); a pause shorter
//!    than [`TimelineParams::min_gap`] between speech is speech (it is one turn's breath).
//! 2. **who**, for speech frames: the weighted mean score of each speaker over the covering
//!    windows that were scored (a window under the VAD gate has no scores); the best speaker if
//!    its score reaches the threshold, else `unknown`; `overlap` where overlap is on and the
//!    most central covering window said `overlap`.
//! 3. **runs**: consecutive equal frames become a [`Segment`]; a speaker run shorter than
//!    [`TimelineParams::min_run`] between two runs of one other label takes that label.
//!
//! A larger latency lets more windows (and more of each frame's right context) vote: at hop
//! 0.5 s a frame decided 0.5 s behind has two or three windows, at 1.0 s three, at 1.5 s all.
//! Each call of [`Decider::push`] decides the frames from where the previous call stopped to
//! `latency` before the window's end, so the spans of consecutive results tile the stream;
//! [`Decider::finish`] decides the rest at the end of a stream.

use std::collections::VecDeque;

use crate::Label;

/// Seconds per frame (10 ms, the resolution of the timeline).
pub const FRAME_S: f64 = 0.01;
/// Samples per Silero chunk (32 ms at 16 kHz).
pub const CHUNK_S: f64 = 0.032;
/// Default decision latency: frames are decided this far behind the newest sample (ms).
pub const DEFAULT_LATENCY_MS: u32 = 500;
/// Accepted `latency_ms` (ms): 0 (decide the newest audio, with one window's evidence) to 3 s.
pub const LATENCY_MS_RANGE: std::ops::RangeInclusive<u32> = 0..=3000;

/// How frames become a timeline (defaults chosen in `docs/decision.md`, "Frame timeline").
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TimelineParams {
    /// Speech starts where the frame's speech probability reaches this.
    pub onset: f32,
    /// … and ends where it falls below this.
    pub offset: f32,
    /// Pauses shorter than this (s) between speech are speech.
    pub min_gap: f64,
    /// Speaker runs shorter than this (s) between two runs of one label take that label.
    pub min_run: f64,
    /// Speech is widened by this (s) on each side: Silero's 32 ms decisions fall silent on
    /// the soft starts and ends of words that annotators (and listeners) count as speech.
    pub pad: f64,
}

impl Default for TimelineParams {
    fn default() -> Self {
        Self {
            onset: 0.35,
            offset: 0.25,
            min_gap: 0.2,
            min_run: 0.1,
            pad: 0.0,
        }
    }
}

impl TimelineParams {
    /// The rule of a CAM++ session, whose frame speech comes from segmentation-3.0 (`1 − p(no
    /// speaker)`), not Silero: strict hysteresis 0.90 / 0.80, the rest as the default. Chosen
    /// with CAM++ at threshold 0.35 on all four sets (docs/decision.md, **CAM++ in the same
    /// study**).
    pub fn campp() -> Self {
        Self {
            onset: 0.90,
            offset: 0.80,
            ..Self::default()
        }
    }
}

/// One run of the timeline.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Segment {
    /// Start (s of stream time).
    pub start: f64,
    /// End (s).
    pub end: f64,
    /// `speaker`, `unknown`, `overlap` or `silence`.
    pub label: Label,
    /// The speaker (session index) for `speaker` and `overlap`.
    pub speaker: Option<usize>,
}

/// One window's evidence, as [`Decider::push`] takes it.
#[derive(Debug, Clone, Copy)]
pub struct WindowEvidence<'a> {
    /// Window start (s of stream time).
    pub start: f64,
    /// Window length (s).
    pub length: f64,
    /// Score per enrolled speaker in session order; empty when the window was not scored
    /// (VAD gate closed). NaN entries count as absent.
    pub scores: &'a [f32],
    /// Speech probability per 32 ms chunk from the window's start (may be empty).
    pub chunk_speech: &'a [f32],
    /// The window's own label (only `overlap` is used, and only with overlap on).
    pub label: Label,
}

/// How much a window speaks for a point `pos` seconds into it: a triangle peaking at the
/// window's centre, never quite zero, so a frame seen by one window only is still decided.
#[must_use]
pub fn position_weight(pos: f64, length: f64) -> f32 {
    let half = length / 2.0;
    (1.05 - ((pos - half).abs() / half).min(1.0)) as f32
}

#[derive(Debug, Clone, Default)]
struct Frame {
    /// Σ weight over covering windows with speech probabilities.
    speech_w: f32,
    /// Σ weight × probability.
    speech: f32,
    /// Σ weight over covering windows with scores.
    score_w: f32,
    /// Σ weight × score, per speaker.
    scores: Vec<f32>,
    /// The weight of the most central covering scored window, and whether it said overlap.
    best_w: f32,
    overlap: bool,
}

/// A session's frame decider (see the module documentation). Windows must come in stream order;
/// missing ones (dropped) leave their frames to the other windows that cover them.
#[derive(Debug)]
pub struct Decider {
    params: TimelineParams,
    threshold: f32,
    overlap: bool,
    n_speakers: usize,
    latency: f64,
    /// Accumulated frames, `frames[0]` being frame `first`.
    frames: VecDeque<Frame>,
    first: u64,
    /// Frames before this are decided.
    decided: u64,
    /// Hysteresis state at `decided`.
    in_speech: bool,
    /// The last frame before `decided` that the hysteresis called speech (for `pad`).
    last_on: Option<u64>,
    /// The last decided frame's label, for the run rules across spans.
    last: Option<(Label, Option<usize>)>,
}

impl Decider {
    /// A decider for `n_speakers` enrolled speakers; `latency_ms` behind the newest sample.
    #[must_use]
    pub fn new(
        params: TimelineParams,
        threshold: f32,
        overlap: bool,
        n_speakers: usize,
        latency_ms: u32,
    ) -> Self {
        Self {
            params,
            threshold,
            overlap,
            n_speakers,
            latency: f64::from(latency_ms) / 1000.0,
            frames: VecDeque::new(),
            first: 0,
            decided: 0,
            in_speech: false,
            last_on: None,
            last: None,
        }
    }

    fn frame_of(t: f64) -> u64 {
        (t / FRAME_S).round().max(0.0) as u64
    }

    fn frame_mut(&mut self, f: u64) -> &mut Frame {
        let i = usize::try_from(f - self.first).unwrap_or(usize::MAX);
        while self.frames.len() <= i {
            self.frames.push_back(Frame {
                scores: vec![0.0; self.n_speakers],
                ..Frame::default()
            });
        }
        &mut self.frames[i]
    }

    /// Adds a window's evidence and decides the frames it completes: from where the previous
    /// call stopped to `latency` before the window's end. Returns those frames as segments
    /// (empty when nothing is due yet, e.g. the first windows at a large latency).
    pub fn push(&mut self, w: &WindowEvidence<'_>) -> Vec<Segment> {
        let a = Self::frame_of(w.start).max(self.decided);
        let b = Self::frame_of(w.start + w.length);
        let scored = w.scores.len() == self.n_speakers && self.n_speakers > 0;
        let overlap = w.label == Label::Overlap;
        for f in a..b {
            let t = (f as f64 + 0.5) * FRAME_S;
            let pos = t - w.start;
            let wt = position_weight(pos, w.length);
            let chunk = (pos / CHUNK_S).floor() as usize;
            let p = w.chunk_speech.get(chunk).copied();
            let fr = self.frame_mut(f);
            if let Some(p) = p.filter(|p| p.is_finite()) {
                fr.speech_w += wt;
                fr.speech += wt * p;
            }
            if scored {
                fr.score_w += wt;
                for (acc, s) in fr.scores.iter_mut().zip(w.scores) {
                    *acc += wt * if s.is_finite() { *s } else { -1.0 };
                }
                if wt > fr.best_w {
                    fr.best_w = wt;
                    fr.overlap = overlap;
                }
            }
        }
        let due = Self::frame_of(w.start + w.length - self.latency);
        self.decide_to(due)
    }

    /// Decides every frame seen so far (the end of a stream).
    pub fn finish(&mut self) -> Vec<Segment> {
        let end = self.first + self.frames.len() as u64;
        self.decide_to(end)
    }

    /// Stream time up to which frames are decided (s).
    #[must_use]
    pub fn decided_until(&self) -> f64 {
        self.decided as f64 * FRAME_S
    }

    fn speech_prob(fr: &Frame) -> f32 {
        if fr.speech_w > 0.0 {
            fr.speech / fr.speech_w
        } else {
            0.0
        }
    }

    fn decide_to(&mut self, due: u64) -> Vec<Segment> {
        let end = self.first + self.frames.len() as u64;
        let due = due.min(end);
        if due <= self.decided {
            return Vec::new();
        }
        let p = self.params;
        // Speech through the hysteresis, over everything accumulated (the frames after `due`
        // are the right context of the pause rule), from the state at `decided`.
        let lo = self.decided;
        let idx = |f: u64| usize::try_from(f - self.first).unwrap_or(usize::MAX);
        let mut speech: Vec<bool> = Vec::with_capacity(usize::try_from(end - lo).unwrap_or(0));
        let mut on = self.in_speech;
        let mut state_at_due = on;
        for f in lo..end {
            let prob = Self::speech_prob(&self.frames[idx(f)]);
            on = if on {
                prob >= p.offset
            } else {
                prob >= p.onset
            };
            speech.push(on);
            if f + 1 == due {
                state_at_due = on;
            }
        }
        // Widen speech by `pad` each side (the left side may reach back into decided frames'
        // speech through `last_on`; the right looks ahead into the undecided frames).
        let last_on = (lo..due.min(end))
            .rev()
            .find(|&f| speech[usize::try_from(f - lo).unwrap_or(0)])
            .or(self.last_on);
        let pad = (p.pad / FRAME_S).round() as u64;
        if pad > 0 {
            let raw = speech.clone();
            let mut prev_on = self.last_on;
            let mut next_on: Option<u64> = None;
            let mut next = vec![None; raw.len()];
            for k in (0..raw.len()).rev() {
                if raw[k] {
                    next_on = Some(lo + k as u64);
                }
                next[k] = next_on;
            }
            for (k, s) in speech.iter_mut().enumerate() {
                let f = lo + k as u64;
                if raw[k] {
                    prev_on = Some(f);
                }
                *s = raw[k]
                    || prev_on.is_some_and(|o| f - o <= pad)
                    || next[k].is_some_and(|o| o - f <= pad);
            }
        }
        // Short pauses between speech are speech; a pause that started before `lo` counts
        // from the last decided label.
        let max_gap = (p.min_gap / FRAME_S).round() as usize;
        let before = self.last.is_some_and(|(l, _)| l != Label::Silence);
        let mut i = 0;
        while i < speech.len() {
            if speech[i] {
                i += 1;
                continue;
            }
            let j = (i..speech.len())
                .find(|&k| speech[k])
                .unwrap_or(speech.len());
            let left = if i == 0 { before } else { true };
            if left && j < speech.len() && j - i < max_gap {
                speech[i..j].iter_mut().for_each(|s| *s = true);
            }
            i = j;
        }
        let n = usize::try_from(due - lo).unwrap_or(0);
        let mut labels: Vec<(Label, Option<usize>)> = (0..n)
            .map(|k| {
                let fr = &self.frames[idx(lo + k as u64)];
                if !speech[k] {
                    return (Label::Silence, None);
                }
                if fr.score_w <= 0.0 {
                    return (Label::Unknown, None);
                }
                let (best, score) = fr
                    .scores
                    .iter()
                    .enumerate()
                    .map(|(i, s)| (i, s / fr.score_w))
                    .fold((0, f32::NEG_INFINITY), |a, b| if b.1 > a.1 { b } else { a });
                if score < self.threshold {
                    (Label::Unknown, None)
                } else if self.overlap && fr.overlap {
                    (Label::Overlap, Some(best))
                } else {
                    (Label::Speaker, Some(best))
                }
            })
            .collect();
        self.smooth_runs(&mut labels);
        let segments = self.segments(lo, &labels);
        self.last = labels.last().copied().or(self.last);
        self.decided = due;
        self.in_speech = state_at_due;
        self.last_on = last_on;
        // Keep nothing decided: later windows only add to frames not yet decided.
        while self.first < self.decided && !self.frames.is_empty() {
            self.frames.pop_front();
            self.first += 1;
        }
        if self.frames.is_empty() {
            self.first = self.decided;
        }
        segments
    }

    /// A speaker run shorter than `min_run` between two runs of one label takes that label
    /// (the left neighbour may be the previous span's last label).
    fn smooth_runs(&self, labels: &mut [(Label, Option<usize>)]) {
        let min = (self.params.min_run / FRAME_S).round() as usize;
        let runs = runs(labels);
        for (k, &(s, e)) in runs.iter().enumerate() {
            if e - s >= min || labels[s].0 != Label::Speaker {
                continue;
            }
            let left = if k == 0 {
                self.last
            } else {
                Some(labels[runs[k - 1].0])
            };
            let right = runs.get(k + 1).map(|&(s2, _)| labels[s2]);
            if let (Some(l), Some(r)) = (left, right)
                && l == r
            {
                labels[s..e].iter_mut().for_each(|x| *x = l);
            }
        }
    }

    fn segments(&self, lo: u64, labels: &[(Label, Option<usize>)]) -> Vec<Segment> {
        runs(labels)
            .into_iter()
            .map(|(s, e)| Segment {
                start: (lo + s as u64) as f64 * FRAME_S,
                end: (lo + e as u64) as f64 * FRAME_S,
                label: labels[s].0,
                speaker: labels[s].1,
            })
            .collect()
    }
}

/// Maximal runs of equal values, as `(start, end)` index pairs.
fn runs<T: PartialEq>(xs: &[T]) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut s = 0;
    for i in 1..=xs.len() {
        if i == xs.len() || xs[i] != xs[s] {
            if i > s {
                out.push((s, i));
            }
            s = i;
        }
    }
    out
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const LEN: f64 = 1.6;

    /// Speech per chunk from a function of stream time.
    fn chunks(start: f64, speech: impl Fn(f64) -> f32) -> Vec<f32> {
        (0..50)
            .map(|c| speech(start + (f64::from(c) + 0.5) * CHUNK_S))
            .collect()
    }

    fn run(
        d: &mut Decider,
        hop: f64,
        n: usize,
        scores: impl Fn(f64) -> Vec<f32>,
        speech: impl Fn(f64) -> f32 + Copy,
    ) -> Vec<Vec<Segment>> {
        let mut out = Vec::new();
        for k in 0..n {
            let start = k as f64 * hop;
            let s = scores(start);
            let c = chunks(start, speech);
            out.push(d.push(&WindowEvidence {
                start,
                length: LEN,
                scores: &s,
                chunk_speech: &c,
                label: Label::Speaker,
            }));
        }
        out.push(d.finish());
        out
    }

    /// Segments of consecutive spans with one label joined.
    fn merged(spans: &[Vec<Segment>]) -> Vec<Segment> {
        let mut out: Vec<Segment> = Vec::new();
        for s in spans.concat() {
            match out.last_mut() {
                Some(l) if l.label == s.label && l.speaker == s.speaker && l.end == s.start => {
                    l.end = s.end;
                }
                _ => out.push(s),
            }
        }
        out
    }

    fn label_at(segs: &[Segment], t: f64) -> (Label, Option<usize>) {
        let s = segs.iter().find(|s| s.start <= t && t < s.end).unwrap();
        (s.label, s.speaker)
    }

    #[test]
    fn spans_tile_the_stream_one_hop_each() {
        for (hop_ms, latency_ms) in [(500u32, 500u32), (500, 1000), (250, 0), (1000, 1500)] {
            let hop = f64::from(hop_ms) / 1000.0;
            let mut d = Decider::new(TimelineParams::default(), 0.6, false, 2, latency_ms);
            let spans = run(
                &mut d,
                hop,
                20,
                |_| vec![0.8, 0.1],
                |t| f32::from(t % 3.0 < 2.0),
            );
            let mut t = 0.0;
            let (n_windows, tail) = (spans.len() - 1, spans.last().unwrap());
            for (k, segs) in spans.iter().enumerate() {
                for s in segs {
                    assert!(
                        (s.start - t).abs() < 1e-9,
                        "{hop_ms}/{latency_ms}: gap at {t}"
                    );
                    assert!(s.end > s.start);
                    t = s.end;
                }
                // After the first windows, each window decides exactly one hop.
                let previous_due = (k as f64 - 1.0) * hop + LEN - f64::from(latency_ms) / 1000.0;
                if k >= 1 && k < n_windows && previous_due > 1e-9 {
                    let len = segs.last().unwrap().end - segs[0].start;
                    assert!(
                        (len - hop).abs() < 1e-9,
                        "{hop_ms}/{latency_ms}: span {len}"
                    );
                }
            }
            assert!(!tail.is_empty() || latency_ms == 0);
            let end = (n_windows - 1) as f64 * hop + LEN;
            assert!((t - end).abs() < 1e-9, "{hop_ms}/{latency_ms}: ends at {t}");
        }
    }

    #[test]
    fn pauses_are_silence_and_turns_follow_the_scores() {
        // Speaker 0 for 0–4 s, a 1 s pause, speaker 1 from 5 s; each window's score is the
        // share of its speech that is each speaker's.
        let who = |t: f64| usize::from(t >= 4.5);
        let speech = |t: f64| if (4.0..5.0).contains(&t) { 0.02 } else { 0.95 };
        let scores = |start: f64| {
            let share1 = (0..160)
                .map(|i| start + (f64::from(i) + 0.5) * 0.01)
                .filter(|&t| speech(t) > 0.5 && who(t) == 1)
                .count() as f32
                / 160.0;
            vec![0.9 - 0.8 * share1, 0.1 + 0.8 * share1]
        };
        let mut d = Decider::new(TimelineParams::default(), 0.6, false, 2, 500);
        let segs = merged(&run(&mut d, 0.5, 16, scores, speech));
        assert_eq!(label_at(&segs, 1.0), (Label::Speaker, Some(0)));
        assert_eq!(label_at(&segs, 3.8), (Label::Speaker, Some(0)));
        assert_eq!(label_at(&segs, 4.2), (Label::Silence, None));
        assert_eq!(label_at(&segs, 4.8), (Label::Silence, None));
        assert_eq!(label_at(&segs, 6.5), (Label::Speaker, Some(1)));
        // The pause is cut at frame resolution, within the hysteresis' reach.
        let pause = segs.iter().find(|s| s.label == Label::Silence).unwrap();
        assert!((pause.start - 4.0).abs() <= 0.05, "{pause:?}");
        assert!((pause.end - 5.0).abs() <= 0.05, "{pause:?}");
    }

    #[test]
    fn pad_widens_speech_on_both_sides_across_spans() {
        // A word 3.00–3.40 s in silence; with pad 0.15 s speech is 2.85–3.55 s, whichever
        // results' spans the edges fall in, at every latency.
        let speech = |t: f64| if (3.0..3.4).contains(&t) { 0.9 } else { 0.0 };
        for latency_ms in [0u32, 500, 1000] {
            let params = TimelineParams {
                pad: 0.15,
                ..TimelineParams::default()
            };
            let mut d = Decider::new(params, 0.6, false, 1, latency_ms);
            let segs = merged(&run(&mut d, 0.5, 14, |_| vec![0.9], speech));
            let word: Vec<_> = segs.iter().filter(|s| s.label != Label::Silence).collect();
            assert_eq!(word.len(), 1, "{latency_ms}: {segs:?}");
            // Within one 32 ms chunk and one frame of the padded edges.
            assert!(
                (word[0].start - 2.85).abs() <= 0.045,
                "{latency_ms}: {word:?}"
            );
            assert!(
                (word[0].end - 3.55).abs() <= 0.045,
                "{latency_ms}: {word:?}"
            );
        }
    }

    #[test]
    fn low_scores_are_unknown_short_pauses_are_kept_as_speech() {
        let speech = |t: f64| if (2.0..2.1).contains(&t) { 0.0 } else { 0.9 };
        let mut d = Decider::new(TimelineParams::default(), 0.6, false, 1, 500);
        let segs = merged(&run(&mut d, 0.5, 10, |_| vec![0.3], speech));
        assert!(segs.iter().all(|s| s.label == Label::Unknown), "{segs:?}");
        assert_eq!(segs.len(), 1, "one run: the 0.1 s pause is speech");
    }

    #[test]
    fn overlap_follows_the_central_window_and_only_when_on() {
        for overlap in [false, true] {
            let mut d = Decider::new(TimelineParams::default(), 0.6, overlap, 2, 500);
            let c = chunks(0.0, |_| 0.9);
            let segs = [
                d.push(&WindowEvidence {
                    start: 0.0,
                    length: LEN,
                    scores: &[0.8, 0.7],
                    chunk_speech: &c,
                    label: Label::Overlap,
                }),
                d.finish(),
            ]
            .concat();
            let want = if overlap {
                Label::Overlap
            } else {
                Label::Speaker
            };
            assert_eq!(label_at(&segs, 0.8), (want, Some(0)));
        }
    }

    #[test]
    fn unscored_windows_leave_speech_unknown_and_runs_are_maximal() {
        let mut d = Decider::new(TimelineParams::default(), 0.6, false, 2, 0);
        let c = chunks(0.0, |_| 0.9);
        let segs = d.push(&WindowEvidence {
            start: 0.0,
            length: LEN,
            scores: &[],
            chunk_speech: &c,
            label: Label::Silence,
        });
        assert_eq!(segs.len(), 1);
        assert_eq!(
            (segs[0].label, segs[0].start, segs[0].end),
            (Label::Unknown, 0.0, 1.6)
        );
        assert_eq!(runs(&[1, 1, 2, 2, 2, 1]), [(0, 2), (2, 5), (5, 6)]);
    }
}
