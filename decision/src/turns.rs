//! Online turn smoothing: per-window labels in, speaker turns out.
//!
//! The worker labels every 1.6 s window on its own ([`crate::scoring::label_window_with`]), so a
//! single odd window (a cough scored as `unknown`, a window straddling a turn change scored as
//! the other voice) flips the label for one hop. [`TurnSmoother`] runs on the gateway over one
//! session's in-order window results and turns them into *turns*: a state (`speaker i`,
//! `unknown`, `overlap` or `silence`) that holds until another state is seen for long enough.
//!
//! # The rule (hysteresis with backdating)
//! - Each window is reduced to a state: its label, and for `speaker` its speaker. An `unknown`
//!   window whose best score is for the speaker currently talking and is at least
//!   [`TurnParams::keep_score`] counts as that speaker (a weaker window of the same voice, not a
//!   change).
//! - A window in the current state extends the current turn and cancels any pending change.
//! - Otherwise it starts (or continues) a *pending run* of consecutive windows in one new state.
//!   The run is confirmed, and becomes the new turn, once it has at least
//!   [`MIN_CONFIRM_WINDOWS`] windows whose centres span at least [`TurnParams::min_turn_s`]
//!   ([`TurnParams::min_silence_s`] for `silence`). So `A A B A A` never leaves `A`, and
//!   `A A B B B …` gives exactly one turn to `B`.
//! - The new turn is backdated: it starts at the centre of the run's first window, the time
//!   from which that window speaks for the stream under the "latest centre" convention (a
//!   window covers from its centre to the next window's centre), moved by the kind of change:
//!   [`TurnParams::change_lead_s`] earlier between speech states, [`TurnParams::silence_lead_s`]
//!   earlier into silence, [`TurnParams::speech_onset_s`] later out of silence.
//! - [`TurnSmoother::finish`] at the end of a stream keeps a change still pending.
//! - Windows the service dropped leave a gap in stream time; a gap longer than
//!   [`TurnParams::max_gap_s`] breaks a pending run (evidence across it is not consecutive).
//!
//! Delay: a change is reported when the run is confirmed, `max(hop, min_turn_s)` after the
//! first window of the new state (rounded up to whole hops) — one extra hop at the defaults
//! for any hop ≥ the default hold. The chosen defaults and the evaluation behind them are in
//! `docs/turns.md` (`model/examples/turns_eval.rs`).

use diglett_schemas::Label;

/// A change needs at least this many consecutive windows in the new state, whatever the hop:
/// a single window is never a turn (`A A B A A` stays `A`).
pub const MIN_CONFIRM_WINDOWS: usize = 2;

/// Tolerance for comparing stream times that are sums of hops (floating-point rounding).
const TIME_EPS: f64 = 1e-6;

/// The smoother's knobs, in seconds where they depend on time so that any hop (0.25–1.6 s)
/// behaves alike. `Default` gives the values chosen on synthetic conversations in
/// `docs/turns.md`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TurnParams {
    /// A new speaker / unknown / overlap state is confirmed once its consecutive windows'
    /// centres span at least this many seconds (and there are ≥ [`MIN_CONFIRM_WINDOWS`]).
    pub min_turn_s: f64,
    /// The same for `silence`: pauses are told apart from speech by the VAD, which rarely
    /// flickers, so they may need less (or more) evidence than a speaker change.
    pub min_silence_s: f64,
    /// An `unknown` window whose best score is the current speaker's and is ≥ this counts as
    /// that speaker. `f32::INFINITY` switches this off.
    pub keep_score: f32,
    /// A gap between consecutive window centres longer than this (windows dropped) breaks a
    /// pending run.
    pub max_gap_s: f64,
    /// A speaker / unknown / overlap turn that follows another such state starts this long
    /// before its first window's centre (at most back to the previous window's centre): the
    /// first window labelled with the new state holds mostly the new state, so the change lies
    /// between the two centres rather than at the later one.
    pub change_lead_s: f64,
    /// A silence turn starts this long before its first window's centre: a window is silence
    /// only when < 10% of its 1.6 s is voiced, so the pause began near the window's *start*.
    pub silence_lead_s: f64,
    /// A turn that follows silence starts this long *after* its first window's centre (at most
    /// at the confirming window's centre): ≥ 10% voiced is enough to leave silence, so the
    /// first voiced window's speech often sits in its last part.
    pub speech_onset_s: f64,
}

/// Default [`TurnParams::min_turn_s`] (see `docs/turns.md`).
pub const DEFAULT_MIN_TURN_S: f64 = 0.25;
/// Default [`TurnParams::min_silence_s`] (see `docs/turns.md`).
pub const DEFAULT_MIN_SILENCE_S: f64 = 0.25;
/// Default [`TurnParams::keep_score`] (see `docs/turns.md`).
pub const DEFAULT_KEEP_SCORE: f32 = 0.60;
/// Default [`TurnParams::max_gap_s`]: one window length (1.6 s, the encoder's window): beyond
/// that, two windows share no audio at all.
pub const DEFAULT_MAX_GAP_S: f64 = 1.6;

/// Default [`TurnParams::change_lead_s`] (see `docs/turns.md`).
pub const DEFAULT_CHANGE_LEAD_S: f64 = 0.25;
/// Default [`TurnParams::silence_lead_s`] (see `docs/turns.md`).
pub const DEFAULT_SILENCE_LEAD_S: f64 = 0.8;
/// Default [`TurnParams::speech_onset_s`] (see `docs/turns.md`).
pub const DEFAULT_SPEECH_ONSET_S: f64 = 0.3;

impl Default for TurnParams {
    fn default() -> Self {
        Self {
            min_turn_s: DEFAULT_MIN_TURN_S,
            min_silence_s: DEFAULT_MIN_SILENCE_S,
            keep_score: DEFAULT_KEEP_SCORE,
            max_gap_s: DEFAULT_MAX_GAP_S,
            change_lead_s: DEFAULT_CHANGE_LEAD_S,
            silence_lead_s: DEFAULT_SILENCE_LEAD_S,
            speech_onset_s: DEFAULT_SPEECH_ONSET_S,
        }
    }
}

/// One window's result, as the gateway receives it.
#[derive(Debug, Clone, Copy)]
pub struct Observation<'a> {
    /// Window start, stream seconds.
    pub start: f64,
    /// Window end (start + 1.6).
    pub end: f64,
    /// The window's label.
    pub label: Label,
    /// Index into the enrolled speakers when `label == Speaker` (ignored otherwise).
    pub speaker: Option<usize>,
    /// Cosine score per enrolled speaker (may be empty for silence).
    pub scores: &'a [f32],
}

impl Observation<'_> {
    /// The window's centre: the time from which it speaks for the stream.
    pub fn centre(&self) -> f64 {
        0.5 * (self.start + self.end)
    }
}

/// A smoothed turn.
#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    /// The state: `Speaker`, `Unknown`, `Overlap` or `Silence`.
    pub label: Label,
    /// The speaker for `Speaker`; `None` for every other label (overlaps of any pair are one
    /// state: the pair is the window's business, not the turn's).
    pub speaker: Option<usize>,
    /// When the state is judged to have begun, stream seconds: the centre of the first window
    /// of the run that confirmed it (earlier than the confirming window: backdated).
    pub start: f64,
    /// How far the evidence reaches so far: the latest window's centre + hop, i.e. the end of
    /// the span the latest window speaks for. Grows while the turn is in force; once another
    /// turn begins, this one really ended at the next turn's `start`.
    pub end: f64,
}

/// A window reduced to a state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    label: Label,
    speaker: Option<usize>,
}

/// Consecutive windows in one state that differs from the current turn's.
#[derive(Debug, Clone, Copy)]
struct Pending {
    state: State,
    /// Centre of the window before the run (any state), if any: how far back a change may lie.
    before: Option<f64>,
    first_centre: f64,
    last_centre: f64,
    windows: usize,
}

/// Turns one session's stream of window results into smoothed turns. See the module docs.
#[derive(Debug, Clone)]
pub struct TurnSmoother {
    params: TurnParams,
    hop: f64,
    current: Option<Turn>,
    pending: Option<Pending>,
    /// Centre of the latest window pushed, to order windows and detect gaps.
    last_centre: Option<f64>,
    /// Seconds of closed (superseded) speaker turns per enrolled speaker: kept as sums so that
    /// a long session needs no history.
    closed: Vec<f64>,
}

impl TurnSmoother {
    /// A smoother for a stream whose windows are `hop_seconds` apart, with `n_speakers`
    /// enrolled. A non-finite or non-positive hop is taken as the service's default 0.5 s.
    pub fn new(params: TurnParams, hop_seconds: f64, n_speakers: usize) -> Self {
        let hop = if hop_seconds.is_finite() && hop_seconds > 0.0 {
            hop_seconds
        } else {
            0.5
        };
        Self {
            params,
            hop,
            current: None,
            pending: None,
            last_centre: None,
            closed: vec![0.0; n_speakers],
        }
    }

    /// The parameters in use.
    pub fn params(&self) -> &TurnParams {
        &self.params
    }

    /// Feeds the next window's result (in seq order; windows may be missing when the service
    /// dropped them). A window whose centre is not after the previous one's (a duplicate or a
    /// late arrival) is ignored.
    ///
    /// Returns `Some(turn)` when the smoothed state changes: the new turn, with `start`
    /// backdated to the first window of the run that confirmed it and `end` = this window's
    /// centre + hop. The first turn of a stream is confirmed the same way.
    pub fn push(&mut self, obs: &Observation) -> Option<Turn> {
        let centre = obs.centre();
        if !centre.is_finite() {
            return None;
        }
        let mut before = self.last_centre;
        if let Some(last) = self.last_centre {
            if centre <= last + TIME_EPS {
                return None;
            }
            if centre - last > self.params.max_gap_s + TIME_EPS {
                self.pending = None;
                before = None;
            }
        }
        self.last_centre = Some(centre);
        let evidence_end = centre + self.hop;
        let state = self.state_of(obs);
        if let Some(cur) = self.current.as_mut() {
            cur.end = evidence_end;
            if cur.label == state.label && cur.speaker == state.speaker {
                self.pending = None;
                return None;
            }
        }
        let run = match self.pending {
            Some(mut p) if p.state == state => {
                p.last_centre = centre;
                p.windows += 1;
                p
            }
            _ => Pending {
                state,
                before,
                first_centre: centre,
                last_centre: centre,
                windows: 1,
            },
        };
        let hold = if state.label == Label::Silence {
            self.params.min_silence_s
        } else {
            self.params.min_turn_s
        };
        if run.windows < MIN_CONFIRM_WINDOWS || run.last_centre - run.first_centre + TIME_EPS < hold
        {
            self.pending = Some(run);
            return None;
        }
        self.pending = None;
        let turn = Turn {
            label: state.label,
            speaker: state.speaker,
            start: self.start_of(&run),
            end: evidence_end,
        };
        if let Some(old) = self.current.replace(turn.clone()) {
            self.close(&old, turn.start);
        }
        Some(turn)
    }

    /// Ends the stream: a pending run (the latest windows disagreeing with the current turn,
    /// too few to confirm yet) becomes the final turn, since no later window can confirm or
    /// refute it and it is the latest evidence. Without this a session's last state change is
    /// lost whenever the stream stops less than a hold after it. Call once, after the last
    /// [`push`](Self::push); returns the final turn when it is new.
    pub fn finish(&mut self) -> Option<Turn> {
        let run = self.pending.take()?;
        let end = run.last_centre + self.hop;
        let turn = Turn {
            label: run.state.label,
            speaker: run.state.speaker,
            start: self.start_of(&run),
            end,
        };
        if let Some(old) = self.current.replace(turn.clone()) {
            self.close(&old, turn.start);
        }
        Some(turn)
    }

    /// The turn in force now, if any (none until the first run is confirmed).
    pub fn current(&self) -> Option<&Turn> {
        self.current.as_ref()
    }

    /// Seconds attributed to each enrolled speaker by the smoothed turns up to stream time
    /// `until` (a session summary's talk time): every superseded speaker turn in full (from its
    /// start to the next turn's start), plus the current one from its start to
    /// `min(until, its end)`. `until` only clips the current turn: pass the present.
    pub fn talk_seconds(&self, until: f64) -> Vec<f64> {
        let mut out = self.closed.clone();
        if let Some(t) = &self.current
            && let Some(slot) = t.speaker.and_then(|i| out.get_mut(i))
        {
            *slot += (until.min(t.end) - t.start).max(0.0);
        }
        out
    }

    /// The state a window stands for, given the current turn.
    fn state_of(&self, obs: &Observation) -> State {
        let current_speaker = self
            .current
            .as_ref()
            .filter(|t| t.label == Label::Speaker)
            .and_then(|t| t.speaker);
        match obs.label {
            Label::Speaker if obs.speaker.is_some() => State {
                label: Label::Speaker,
                speaker: obs.speaker,
            },
            Label::Unknown
                if current_speaker.is_some()
                    && best_speaker(obs.scores).is_some_and(|(i, s)| {
                        Some(i) == current_speaker && s >= self.params.keep_score
                    }) =>
            {
                State {
                    label: Label::Speaker,
                    speaker: current_speaker,
                }
            }
            // A `speaker` label without a speaker is malformed: treat it as unknown speech.
            Label::Speaker => State {
                label: Label::Unknown,
                speaker: None,
            },
            // A window that was not decided (an error, or a label from a newer writer) is
            // speech of nobody known.
            Label::Error | Label::Other => State {
                label: Label::Unknown,
                speaker: None,
            },
            label => State {
                label,
                speaker: None,
            },
        }
    }

    /// When a confirmed run's state began: its first window's centre, moved by the lead / onset
    /// of its kind of change, never before the current turn's start nor after the run's last
    /// window's centre.
    fn start_of(&self, run: &Pending) -> f64 {
        let p = &self.params;
        let previous = self.current.as_ref().map(|t| t.label);
        let start = if run.state.label == Label::Silence {
            run.first_centre - p.silence_lead_s
        } else if previous == Some(Label::Silence) {
            run.first_centre + p.speech_onset_s
        } else {
            let room = run.before.map_or(0.0, |b| run.first_centre - b);
            run.first_centre - p.change_lead_s.min(room)
        };
        // Stream time starts at 0: the first turn is not moved before it.
        let floor = self
            .current
            .as_ref()
            .map_or(run.first_centre.min(0.0), |t| t.start);
        start.min(run.last_centre).max(floor)
    }

    /// Adds a superseded turn's time, `[old.start, new_start)`, to its speaker's total.
    fn close(&mut self, old: &Turn, new_start: f64) {
        if let Some(slot) = old.speaker.and_then(|i| self.closed.get_mut(i)) {
            *slot += (new_start - old.start).max(0.0);
        }
    }
}

/// The best (index, score), NaN skipped, ties to the lower index.
fn best_speaker(scores: &[f32]) -> Option<(usize, f32)> {
    scores
        .iter()
        .copied()
        .enumerate()
        .filter(|(_, s)| !s.is_nan())
        .fold(None, |acc, (i, s)| match acc {
            Some((_, b)) if b >= s => acc,
            _ => Some((i, s)),
        })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const WIN: f64 = 1.6;

    /// The defaults without the start leads, so that starts fall on window centres.
    fn plain() -> TurnParams {
        TurnParams {
            change_lead_s: 0.0,
            silence_lead_s: 0.0,
            speech_onset_s: 0.0,
            ..TurnParams::default()
        }
    }

    /// A window `k` of a stream with this hop: label from a compact code.
    /// `'a'`/`'b'`/`'c'` = speaker 0/1/2, `'u'` unknown, `'o'` overlap, `'s'` silence.
    fn obs(k: usize, hop: f64, code: char) -> Observation<'static> {
        let start = k as f64 * hop;
        let (label, speaker) = match code {
            'a' => (Label::Speaker, Some(0)),
            'b' => (Label::Speaker, Some(1)),
            'c' => (Label::Speaker, Some(2)),
            'u' => (Label::Unknown, None),
            'o' => (Label::Overlap, None),
            _ => (Label::Silence, None),
        };
        Observation {
            start,
            end: start + WIN,
            label,
            speaker,
            scores: &[],
        }
    }

    /// Pushes `codes` (window k = k-th char; '-' = dropped window) and returns the turns.
    fn run(params: TurnParams, hop: f64, codes: &str) -> (TurnSmoother, Vec<Turn>) {
        let mut sm = TurnSmoother::new(params, hop, 3);
        let mut turns = Vec::new();
        for (k, c) in codes.chars().enumerate() {
            if c == '-' {
                continue;
            }
            let o = obs(k, hop, c);
            turns.extend(sm.push(&o));
        }
        (sm, turns)
    }

    fn centre(k: usize, hop: f64) -> f64 {
        k as f64 * hop + WIN / 2.0
    }

    #[test]
    fn single_window_flicker_never_makes_a_turn() {
        for hop in [0.25, 0.5, 1.0, 1.6] {
            let (sm, turns) = run(plain(), hop, "aaaabaaaauaaaasaaaaoaaaa");
            assert_eq!(turns.len(), 1, "hop {hop}: {turns:?}");
            assert_eq!(turns[0].speaker, Some(0));
            assert_eq!(sm.current().unwrap().speaker, Some(0));
        }
    }

    #[test]
    fn real_change_gives_exactly_one_turn_backdated() {
        for hop in [0.25, 0.5, 1.0, 1.6] {
            let (_, turns) = run(plain(), hop, "aaaaaabbbbbbbb");
            assert_eq!(turns.len(), 2, "hop {hop}: {turns:?}");
            let b = &turns[1];
            assert_eq!((b.label, b.speaker), (Label::Speaker, Some(1)));
            // Backdated to the first `b` window's centre, not the confirming one's.
            assert!((b.start - centre(6, hop)).abs() < 1e-9, "hop {hop}: {b:?}");
            // The first turn is backdated to the stream's first window too.
            assert!((turns[0].start - centre(0, hop)).abs() < 1e-9);
        }
    }

    #[test]
    fn change_is_reported_within_bounded_delay() {
        let hop = 0.5;
        let mut sm = TurnSmoother::new(plain(), hop, 2);
        let mut reported_at = None;
        for (k, c) in "aaaaabbbbb".chars().enumerate() {
            let o = obs(k, hop, c);
            if let Some(t) = sm.push(&o)
                && t.speaker == Some(1)
            {
                reported_at = Some(k);
            }
        }
        // First `b` is window 5; at the default hold (0.5 s) it is confirmed by window 6.
        assert_eq!(reported_at, Some(6));
    }

    #[test]
    fn hold_is_in_seconds_not_windows() {
        let p = TurnParams {
            min_turn_s: 1.0,
            ..plain()
        };
        // hop 0.25: a 1 s hold needs centres 1 s apart = 5 windows; 4 are not enough.
        let (_, turns) = run(p, 0.25, "aaaaaaaabbbbaaaa");
        assert_eq!(turns.len(), 1, "{turns:?}");
        let (_, turns) = run(p, 0.25, "aaaaaaaabbbbbaaaaaaaaa");
        assert_eq!(turns.len(), 3, "{turns:?}");
        // hop 1.0: two windows already span 1 s.
        let (_, turns) = run(p, 1.0, "aaaabbaaaa");
        assert_eq!(turns.len(), 3, "{turns:?}");
    }

    #[test]
    fn silence_unknown_and_overlap_are_states() {
        let (_, turns) = run(plain(), 0.5, "aaaassssuuuuoooobbbb");
        let labels: Vec<Label> = turns.iter().map(|t| t.label).collect();
        assert_eq!(
            labels,
            [
                Label::Speaker,
                Label::Silence,
                Label::Unknown,
                Label::Overlap,
                Label::Speaker
            ]
        );
    }

    #[test]
    fn weak_window_of_the_current_speaker_is_not_a_change() {
        let mut sm = TurnSmoother::new(plain(), 0.5, 2);
        let push = |sm: &mut TurnSmoother, k: usize, label, speaker, scores: &[f32]| {
            let start = k as f64 * 0.5;
            sm.push(&Observation {
                start,
                end: start + WIN,
                label,
                speaker,
                scores,
            })
        };
        for k in 0..4 {
            push(&mut sm, k, Label::Speaker, Some(0), &[0.8, 0.5]);
        }
        // Three `unknown` windows that still lean clearly towards speaker 0.
        for k in 4..7 {
            assert_eq!(push(&mut sm, k, Label::Unknown, None, &[0.63, 0.5]), None);
        }
        assert_eq!(sm.current().unwrap().speaker, Some(0));
        // Unknown windows that lean to nobody (or to someone else) do change the state.
        push(&mut sm, 7, Label::Unknown, None, &[0.50, 0.45]);
        let t = push(&mut sm, 8, Label::Unknown, None, &[0.40, 0.55]).unwrap();
        assert_eq!(t.label, Label::Unknown);
        assert!((t.start - (7.0 * 0.5 + 0.8)).abs() < 1e-9, "{t:?}");
    }

    #[test]
    fn dropped_windows_break_a_pending_run_only_when_the_gap_is_long() {
        // One dropped window (gap 1 s at hop 0.5): the run a-a-b-[drop]-b still confirms b.
        let (_, turns) = run(plain(), 0.5, "aaaab-bbb");
        assert_eq!(turns.len(), 2, "{turns:?}");
        assert!((turns[1].start - centre(4, 0.5)).abs() < 1e-9);
        // Four dropped windows (gap 2.5 s > 1.6 s): the lone `b` before the gap is forgotten,
        // and b's turn starts after the gap.
        let (_, turns) = run(plain(), 0.5, "aaaab----bbb");
        assert_eq!(turns.len(), 2, "{turns:?}");
        assert!((turns[1].start - centre(9, 0.5)).abs() < 1e-9);
        // Duplicates and late windows are ignored.
        let mut sm = TurnSmoother::new(plain(), 0.5, 1);
        let o = Observation {
            start: 1.0,
            end: 2.6,
            label: Label::Speaker,
            speaker: Some(0),
            scores: &[],
        };
        assert_eq!(sm.push(&o), None);
        assert_eq!(sm.push(&o), None);
        let earlier = Observation { start: 0.5, ..o };
        assert_eq!(sm.push(&earlier), None);
        assert!(sm.current().is_none(), "one window is not a turn");
    }

    #[test]
    fn talk_seconds_follow_the_smoothed_turns() {
        let hop = 0.5;
        // a: windows 0..6 (6 windows), b: 6..10, then silence.
        let (sm, turns) = run(plain(), hop, "aaaaaabbbbssss");
        assert_eq!(turns.len(), 3, "{turns:?}");
        let now = sm.current().unwrap().end;
        let talk = sm.talk_seconds(now);
        // a from centre 0 to centre 6 = 3 s; b from centre 6 to centre 10 = 2 s; silence: none.
        assert!((talk[0] - 3.0).abs() < 1e-9, "{talk:?}");
        assert!((talk[1] - 2.0).abs() < 1e-9, "{talk:?}");
        assert_eq!(talk[2], 0.0);
        // The current turn is clipped at `until`.
        let (sm, _) = run(plain(), hop, "aaaaaa");
        let t0 = sm.current().unwrap().start;
        assert!((sm.talk_seconds(t0 + 1.0)[0] - 1.0).abs() < 1e-9);
        assert!(
            (sm.talk_seconds(1e9)[0] - 3.0).abs() < 1e-9,
            "up to centre 5 + hop"
        );
        assert_eq!(sm.talk_seconds(0.0)[0], 0.0);
    }

    #[test]
    fn alternating_noise_never_settles_and_out_of_range_speakers_are_safe() {
        let (sm, turns) = run(plain(), 0.5, "aaaababababab");
        assert_eq!(turns.len(), 1, "{turns:?}");
        // Speaker index beyond n_speakers: a turn, but no talk time slot to add to.
        let mut sm2 = TurnSmoother::new(plain(), 0.5, 1);
        for k in 0..4 {
            sm2.push(&Observation {
                speaker: Some(7),
                ..obs(k, 0.5, 'c')
            });
        }
        assert_eq!(sm2.current().unwrap().speaker, Some(7));
        assert_eq!(sm2.talk_seconds(100.0), vec![0.0]);
        drop(sm);
    }

    #[test]
    fn finish_keeps_the_last_change_of_a_stream() {
        let (mut sm, turns) = run(plain(), 0.5, "aaaab");
        assert_eq!(turns.len(), 1);
        let last = sm.finish().unwrap();
        assert_eq!(last.speaker, Some(1));
        assert!((last.start - centre(4, 0.5)).abs() < 1e-9);
        assert_eq!(sm.finish(), None, "nothing pending any more");
        let (mut sm, _) = run(plain(), 0.5, "aaaa");
        assert_eq!(sm.finish(), None, "no pending change, no new turn");
    }

    #[test]
    fn leads_move_starts_but_never_past_their_bounds() {
        let p = TurnParams {
            change_lead_s: 0.25,
            silence_lead_s: 0.8,
            speech_onset_s: 0.3,
            ..TurnParams::default()
        };
        let hop = 0.5;
        let (_, turns) = run(p, hop, "aaaaaabbbbssssaaaa");
        let starts: Vec<f64> = turns.iter().map(|t| t.start).collect();
        let want = [
            centre(0, hop),        // first turn: no window before it, no lead
            centre(6, hop) - 0.25, // a → b: half-way back to the previous centre
            centre(10, hop) - 0.8, // b → silence: back to the silent window's start
            centre(14, hop) + 0.3, // silence → a: speech starts late in the first window
        ];
        assert_eq!(starts.len(), want.len(), "{turns:?}");
        for (s, w) in starts.iter().zip(want) {
            assert!((s - w).abs() < 1e-9, "{starts:?} vs {want:?}");
        }
        // A lead longer than a hop goes back at most to the previous window's centre, and a
        // silence lead never before the current turn's start.
        let p = TurnParams {
            change_lead_s: 5.0,
            silence_lead_s: 50.0,
            ..p
        };
        let (_, turns) = run(p, hop, "aaaabbbbss");
        assert!((turns[1].start - centre(3, hop)).abs() < 1e-9, "{turns:?}");
        assert!((turns[2].start - turns[1].start).abs() < 1e-9, "{turns:?}");
        // An onset later than the confirming window is clipped to it.
        let p = TurnParams {
            speech_onset_s: 10.0,
            ..p
        };
        let (_, turns) = run(p, hop, "ssssaa");
        assert!((turns[1].start - centre(5, hop)).abs() < 1e-9, "{turns:?}");
    }
}
