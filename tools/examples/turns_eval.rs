//! The evidence for [`TurnParams::default`]: frame accuracy of the raw window labels against
//! the smoothed turns of `diglett_decision::turns::TurnSmoother`.
//!
//! ```sh
//! cargo run --release -p diglett-tools --example turns_eval [-- <shared/data dir>]
//! ```
//!
//! Windows are labelled exactly as the worker does (`worker/src/engine.rs`, `process_windows`):
//! voiced fraction from a fresh VAD on the raw window, the VAD gate, the volume-normalised
//! window's embedding, cosine scores against the enrolled speakers and `label_window_with`
//! with `DecisionParams::default().for_enrolled(n)`. Frames of 10 ms are scored with the
//! "latest centre" convention for raw labels (a window speaks from its centre to the next
//! window's centre) and with the final sequence of turns for the smoothed timeline (a turn
//! holds from its — possibly backdated — start to the next turn's start).
//!
//! Two sets:
//! - **synthetic** conversations from `data/speakers` (turns of 1–8 s, pauses, one-word
//!   interjections; 2–3 speakers each enrolled from their first utterance, the turns cut from the
//!   others): the parameter grid is run here and the defaults chosen;
//! - **sample.wav** (`data/conversation`, enrolled from the recording's first 5 s of each voice
//!   as in `tune_decision`): held out, only reported.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use diglett_audio::{self as frontend, DecodeOptions};
use diglett_decision::scoring::{self, DecisionParams, Label, score_all};
use diglett_decision::turns::{Observation, TurnParams, TurnSmoother};
use diglett_model::encoder::{Embedding, WINDOW_SAMPLES};
use diglett_tools::diarization::{
    FRAME_S, FrameCounts, Reference, Span, ratio, score_frames, span_audio,
};
use diglett_tools::study::{self, Models, normalised};

/// 16 kHz as usize, for sample ↔ second conversions.
const SR: usize = diglett_schemas::SAMPLE_RATE as usize;
/// The finest hop evaluated, in samples (0.25 s, the service's smallest); coarser hops take every
/// 2nd / 4th of these windows, so each window is embedded once.
const BASE_HOP: usize = 4_000;
/// Hops evaluated, as multiples of [`BASE_HOP`]: 0.25, 0.5 (the service default) and 1.0 s.
const HOP_STEPS: [usize; 3] = [1, 2, 4];
/// Seconds of enrollment speech (the product's ~5 s).
const ENROLL_S: f64 = 5.0;
/// Synthetic conversations: this many, each about this long.
const N_CONVERSATIONS: usize = 16;
const CONVERSATION_S: f64 = 60.0;
/// Grid of `min_turn_s`: at most 1.0 s, i.e. ≤ 2 hops of extra delay at the default hop.
const GRID_MIN_TURN: [f64; 4] = [0.25, 0.5, 0.75, 1.0];
/// Grid of `min_silence_s`.
const GRID_MIN_SILENCE: [f64; 2] = [0.25, 0.5];
/// Grid of `keep_score` (∞ = off); the decision threshold is 0.67.
const GRID_KEEP: [f32; 4] = [f32::INFINITY, 0.62, 0.60, 0.55];
/// Grid of `change_lead_s` (0.25 = half the default hop).
const GRID_CHANGE_LEAD: [f64; 3] = [0.0, 0.15, 0.25];
/// Grid of `silence_lead_s` (0.8 = back to the first silent window's start).
const GRID_SILENCE_LEAD: [f64; 3] = [0.0, 0.4, 0.8];
/// Grid of `speech_onset_s`.
const GRID_ONSET: [f64; 3] = [0.0, 0.3, 0.6];
/// Grid rows printed: the best this many by mean accuracy.
const GRID_TOP: usize = 15;

fn main() -> ExitCode {
    study::main("turns_eval", run)
}

/// One window's result at the finest hop.
struct Window {
    label: Label,
    speaker: Option<usize>,
    scores: Vec<f32>,
}

/// A conversation ready to score: reference speakers per 10 ms frame, and window results at
/// [`BASE_HOP`].
struct Conversation {
    frame_ref: Vec<Vec<usize>>,
    windows: Vec<Window>,
    n_speakers: usize,
}

/// The worker's per-window pipeline (`process_windows`), at [`BASE_HOP`] over `wav`.
fn label_windows(m: &Models, wav: &[f32], enrolled: &[Embedding]) -> Vec<Window> {
    // The gateway's default is overlap off (opt-in per session); TURNS_EVAL_OVERLAP=1
    // evaluates with the overlap rule on.
    let params = DecisionParams::default().for_enrolled(enrolled.len());
    let params = if std::env::var("TURNS_EVAL_OVERLAP").is_ok_and(|v| v == "1") {
        params
    } else {
        params.without_overlap()
    };
    let raw = study::windows(wav, BASE_HOP);
    let voiced = m.voiced(&raw);
    let gated: Vec<usize> = (0..raw.len())
        .filter(|&i| scoring::gate(voiced[i], &params))
        .collect();
    let mut scores = vec![Vec::new(); raw.len()];
    let embs = m.embed(
        &gated
            .iter()
            .map(|&i| normalised(raw[i]))
            .collect::<Vec<_>>(),
    );
    for (&i, e) in gated.iter().zip(&embs) {
        scores[i] = score_all(e, enrolled);
    }
    scores
        .into_iter()
        .zip(voiced)
        .map(|(s, v)| {
            let d = scoring::label_window_with(
                &s,
                |a, b| scoring::cosine(&enrolled[a], &enrolled[b]),
                v,
                &params,
            );
            Window {
                label: d.label,
                speaker: d.speaker,
                scores: s,
            }
        })
        .collect()
}

fn pct(n: usize, d: usize) -> f64 {
    100.0 * ratio(n, d)
}

/// Raw labels: window k (of those at `step` × [`BASE_HOP`]) speaks from its centre.
fn raw_timeline(c: &Conversation, step: usize) -> Vec<Span> {
    let hop = (step * BASE_HOP) as f64 / SR as f64;
    let half = WINDOW_SAMPLES as f64 / SR as f64 / 2.0;
    c.windows
        .iter()
        .step_by(step)
        .enumerate()
        .map(|(k, w)| Span {
            start: k as f64 * hop + half,
            label: w.label,
            speaker: w.speaker,
        })
        .collect()
}

/// Smoothed labels: the final sequence of turns the smoother emitted.
fn smoothed_timeline(c: &Conversation, step: usize, p: TurnParams) -> (Vec<Span>, usize) {
    let hop = (step * BASE_HOP) as f64 / SR as f64;
    let len = WINDOW_SAMPLES as f64 / SR as f64;
    let mut sm = TurnSmoother::new(p, hop, c.n_speakers);
    let mut spans = Vec::new();
    for (k, w) in c.windows.iter().step_by(step).enumerate() {
        let start = k as f64 * hop;
        if let Some(t) = sm.push(&Observation {
            start,
            end: start + len,
            label: w.label,
            speaker: w.speaker,
            scores: &w.scores,
        }) {
            spans.push(Span {
                start: t.start,
                label: t.label,
                speaker: t.speaker,
            });
        }
    }
    // The stream ends here: the last pending change counts (`TurnSmoother::finish`).
    if let Some(t) = sm.finish() {
        spans.push(Span {
            start: t.start,
            label: t.label,
            speaker: t.speaker,
        });
    }
    let n = spans.len();
    (spans, n)
}

fn total(convs: &[Conversation], f: impl Fn(&Conversation) -> FrameCounts) -> FrameCounts {
    let mut t = FrameCounts::default();
    for c in convs {
        t.add(&f(c));
    }
    t
}

fn row(name: &str, hop: f64, c: &FrameCounts) {
    println!(
        "| {name} | {hop:.2} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {} ({}) |",
        pct(c.right, c.single),
        pct(c.wrong, c.single),
        pct(c.single_overlap, c.single),
        pct(c.false_alarm, c.none),
        100.0 * c.accuracy(),
        pct(c.both_overlap, c.both),
        pct(c.both_one, c.both),
        c.changes,
        c.ref_changes,
    );
}

fn header() {
    println!(
        "| timeline | hop (s) | single-speaker: right | single: wrong speaker | single: overlap | \
         non-speech: false alarm | accuracy (single + non-speech) | overlapped: overlap | \
         overlapped: one speaker | label changes (reference) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
}

/// The synthetic set: `N_CONVERSATIONS` conversations of 2 or 3 speakers (`study::synthetic`).
fn synthetic(m: &Models, data: &Path) -> Result<Vec<Conversation>, String> {
    Ok(
        study::synthetic(m, data, N_CONVERSATIONS, CONVERSATION_S, ENROLL_S)?
            .into_iter()
            .map(|c| Conversation {
                windows: label_windows(m, &c.wav, &c.enrolled),
                frame_ref: c.frame_ref,
                n_speakers: c.enrolled.len(),
            })
            .collect(),
    )
}

/// `sample.wav`, each speaker enrolled from their first 5 s of single-speaker speech (the same
/// enrollment as `tune_decision` section D).
fn sample(m: &Models, data: &Path) -> Result<Conversation, String> {
    let path = data.join("conversation/sample.wav");
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let conv = frontend::decode_audio(&bytes, &DecodeOptions::default())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let reference =
        Reference::read(&data.join("conversation/sample.rttm")).map_err(|e| e.to_string())?;
    let frame_ref = reference.frames(Reference::n_frames(conv.len() as f64 / SR as f64));
    let enrolled: Vec<Embedding> = (0..reference.names.len())
        .map(|i| {
            let audio = span_audio(
                &conv,
                diglett_schemas::SAMPLE_RATE,
                &reference.solo_spans(i, ENROLL_S),
            );
            m.embed_speech(&normalised(&audio))
        })
        .collect();
    Ok(Conversation {
        frame_ref,
        windows: label_windows(m, &conv, &enrolled),
        n_speakers: reference.names.len(),
    })
}

fn run(data: &Path) -> Result<(), String> {
    let started = Instant::now();
    let m = Models::load()?;
    let synth = synthetic(&m, data)?;
    let seconds: f64 = synth
        .iter()
        .map(|c| c.frame_ref.len() as f64 * FRAME_S)
        .sum();
    println!(
        "synthetic set: {} conversations ({} with 2 speakers, {} with 3), {seconds:.0} s, {} \
         windows at hop 0.25 s [{:.1} s]",
        synth.len(),
        synth.iter().filter(|c| c.n_speakers == 2).count(),
        synth.iter().filter(|c| c.n_speakers == 3).count(),
        synth.iter().map(|c| c.windows.len()).sum::<usize>(),
        started.elapsed().as_secs_f32()
    );

    // ------------------------------------------------------------- grid on the synthetic set
    println!("\n## Grid (synthetic set; accuracy = mean over hops 0.25 / 0.5 / 1.0 s)\n");
    let raw_acc: Vec<FrameCounts> = HOP_STEPS
        .iter()
        .map(|&st| total(&synth, |c| score_frames(&c.frame_ref, &raw_timeline(c, st))))
        .collect();
    let raw_mean =
        raw_acc.iter().map(|c| 100.0 * c.accuracy()).sum::<f64>() / HOP_STEPS.len() as f64;
    let raw_fa = raw_acc
        .iter()
        .map(|c| pct(c.false_alarm, c.none))
        .fold(f64::NEG_INFINITY, f64::max);
    println!("raw window labels: mean accuracy {raw_mean:.2}%\n");
    let mut grid: Vec<TurnParams> = Vec::new();
    for &min_turn_s in &GRID_MIN_TURN {
        for &min_silence_s in &GRID_MIN_SILENCE {
            for &keep_score in &GRID_KEEP {
                for &change_lead_s in &GRID_CHANGE_LEAD {
                    for &silence_lead_s in &GRID_SILENCE_LEAD {
                        for &speech_onset_s in &GRID_ONSET {
                            grid.push(TurnParams {
                                min_turn_s,
                                min_silence_s,
                                keep_score,
                                change_lead_s,
                                silence_lead_s,
                                speech_onset_s,
                                ..TurnParams::default()
                            });
                        }
                    }
                }
            }
        }
    }
    if !grid.contains(&TurnParams::default()) {
        grid.push(TurnParams::default());
    }
    // (params, accuracy per hop, mean, worst false alarm, single right at hop 0.5)
    let mut results: Vec<(TurnParams, Vec<f64>, f64, f64)> = grid
        .iter()
        .map(|&p| {
            let per_hop: Vec<FrameCounts> = HOP_STEPS
                .iter()
                .map(|&st| {
                    total(&synth, |c| {
                        score_frames(&c.frame_ref, &smoothed_timeline(c, st, p).0)
                    })
                })
                .collect();
            let accs: Vec<f64> = per_hop.iter().map(|c| 100.0 * c.accuracy()).collect();
            let mean = accs.iter().sum::<f64>() / accs.len() as f64;
            let fa = per_hop
                .iter()
                .map(|c| pct(c.false_alarm, c.none))
                .fold(f64::NEG_INFINITY, f64::max);
            (p, accs, mean, fa)
        })
        .collect();
    results.sort_by(|x, y| y.2.total_cmp(&x.2));
    println!(
        "{} grid points; the best {GRID_TOP}, and the default:\n",
        results.len()
    );
    println!(
        "| rank | min_turn_s | min_silence_s | keep_score | change_lead_s | silence_lead_s | \
         speech_onset_s | accuracy hop 0.25 | hop 0.5 | hop 1.0 | mean | worst false alarm |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|");
    for (rank, (p, accs, mean, fa)) in results.iter().enumerate() {
        let is_default = *p == TurnParams::default();
        if rank >= GRID_TOP && !is_default {
            continue;
        }
        let tag = if is_default { " (**default**)" } else { "" };
        println!(
            "| {}{tag} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2} | {:.2}% | {:.2}% | {:.2}% | {mean:.2}% | {fa:.1}% |",
            rank + 1,
            p.min_turn_s,
            p.min_silence_s,
            p.keep_score,
            p.change_lead_s,
            p.silence_lead_s,
            p.speech_onset_s,
            accs[0],
            accs[1],
            accs[2]
        );
    }
    // Sensitivity: the best mean accuracy with each knob held at each of its values.
    println!("\nbest mean accuracy with one knob fixed (the others free):\n");
    type Knob = (&'static str, fn(&TurnParams) -> f64);
    let knobs: [Knob; 6] = [
        ("min_turn_s", |p| p.min_turn_s),
        ("min_silence_s", |p| p.min_silence_s),
        ("keep_score", |p| f64::from(p.keep_score)),
        ("change_lead_s", |p| p.change_lead_s),
        ("silence_lead_s", |p| p.silence_lead_s),
        ("speech_onset_s", |p| p.speech_onset_s),
    ];
    for (name, get) in knobs {
        let mut vals: Vec<f64> = results.iter().map(|r| get(&r.0)).collect();
        vals.sort_by(f64::total_cmp);
        vals.dedup();
        let cells: Vec<String> = vals
            .iter()
            .map(|&v| {
                let best = results
                    .iter()
                    .filter(|r| get(&r.0) == v)
                    .map(|r| r.2)
                    .fold(f64::NEG_INFINITY, f64::max);
                format!("{v:.2} → {best:.2}%")
            })
            .collect();
        println!("- {name}: {}", cells.join(", "));
    }
    if let Some((p, _, mean, _)) = results.first() {
        println!(
            "\nselection (highest mean accuracy): {p:?} ({mean:.2}%; raw {raw_mean:.2}%, raw worst \
             false alarm {raw_fa:.1}%)"
        );
    }

    // ------------------------------------------------------------- tables at the defaults
    let defaults = TurnParams::default();
    println!("\n## Raw vs smoothed at the defaults ({defaults:?})\n");
    let conv = sample(&m, data)?;
    for (name, set) in [
        ("synthetic (tuning set)", &synth[..]),
        ("sample.wav (held out)", std::slice::from_ref(&conv)),
    ] {
        let c0 = &set[0];
        let n_single: usize = set
            .iter()
            .map(|c| c.frame_ref.iter().filter(|r| r.len() == 1).count())
            .sum();
        let n_none: usize = set
            .iter()
            .map(|c| c.frame_ref.iter().filter(|r| r.is_empty()).count())
            .sum();
        let n_both: usize = set
            .iter()
            .map(|c| c.frame_ref.iter().filter(|r| r.len() >= 2).count())
            .sum();
        let _ = c0;
        println!(
            "### {name}: {n_single} single-speaker, {n_none} non-speech, {n_both} overlapped \
             frames of 10 ms\n"
        );
        header();
        for &st in &HOP_STEPS {
            let hop = (st * BASE_HOP) as f64 / SR as f64;
            row(
                "raw windows",
                hop,
                &total(set, |c| score_frames(&c.frame_ref, &raw_timeline(c, st))),
            );
            row(
                "**smoothed turns**",
                hop,
                &total(set, |c| {
                    score_frames(&c.frame_ref, &smoothed_timeline(c, st, defaults).0)
                }),
            );
        }
        println!();
    }
    // The held-out conversation window by window, to see what smoothing does to it.
    for &st in &HOP_STEPS {
        let code = |l: Label, spk: Option<usize>| match (l, spk) {
            (Label::Speaker, Some(i)) => char::from(b'A' + (i % 26) as u8),
            (Label::Overlap, _) => 'o',
            (Label::Unknown, _) => 'u',
            _ => '.',
        };
        let raw: String = conv
            .windows
            .iter()
            .step_by(st)
            .map(|w| code(w.label, w.speaker))
            .collect();
        let hop = (st * BASE_HOP) as f64 / SR as f64;
        let turns: Vec<String> = smoothed_timeline(&conv, st, defaults)
            .0
            .iter()
            .map(|s| format!("{:.2} {}", s.start, code(s.label, s.speaker)))
            .collect();
        println!(
            "sample.wav hop {hop:.2}: windows {raw}\n  turns: {}",
            turns.join(", ")
        );
    }
    println!("[done in {:.1} s]", started.elapsed().as_secs_f32());
    Ok(())
}
