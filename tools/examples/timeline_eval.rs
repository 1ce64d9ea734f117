//! The evidence for the frame timeline's defaults (`diglett_decision::timeline`): the
//! threshold, the VAD gate and the timeline's speech rule, chosen on every set we have.
//!
//! ```sh
//! cargo run --release -p diglett-tools --example timeline_eval [-- <shared/data dir>]
//! DIGLETT_STUDY_ENCODER=campp cargo run …   # CAM++ instead of GE2E (no cohort normalisation)
//! DIGLETT_STUDY_ALL=<file> cargo run …      # also every grid point's row into <file>
//! ```
//!
//! Windows (1.6 s every 0.5 s, the service's default hop) are analysed as the worker analyses
//! them (`model/src/pipeline.rs`, `analyze_windows`): Silero on the raw window, the
//! volume-normalised window's embedding, cosine scores against the enrolled voices. Every
//! window is embedded once; the gate (`min_voiced`) is applied in the grid, as the worker
//! would (a window under it has no scores). Each grid point then runs the gateway's
//! [`Decider`] over each recording and scores its 10 ms frames against the reference
//! ([`score_frames_for`]: single-speaker frames right when they name that speaker, or
//! `unknown` for a speaker who was not enrolled; non-speech frames wrong when they name
//! anyone).
//!
//! Besides the timeline's knobs, the grid tries other speech detectors ([`VAD_SOURCES`]) and
//! cohort-normalised scores ([`as_norm`] against the 120 `data/cohort` voices), each shown
//! beside the selection (docs/decision.md, "Frame timeline").
//!
//! Sets:
//! - **synthetic**: 16 conversations of 60 s from `data/speakers` (`study::synthetic`), clean;
//! - **far-field**: the same conversations through `study::far_field` (levels, reverberation,
//!   −32 to −44 dBFS, noise), enrolled from the clean first utterance (a user enrolls at a
//!   desk and is heard across a room);
//! - **meetings**: the AMI clips `data/meetings/*.wav` with their RTTM, each speaker enrolled
//!   from their first 5 s alone in the clip (under 1 s alone: not enrolled), the protocol of
//!   `diglett-eval conversation`;
//! - **sample**: `data/conversation/sample.wav`, the same protocol.
//!
//! The selection: at the service's threshold ([`DEFAULT_THRESHOLD`], chosen on the open-set
//! cohort protocol, which these sets cannot weigh: an unknown voice accepted as an enrolled
//! one) and Silero on the window as received, the highest mean single-speaker accuracy over the four sets among the points whose
//! non-speech false alarm is at most [`MAX_FALSE_ALARM`] in every set (if none is, the lowest
//! worst false alarm); points within [`ACCURACY_TIE`] of that accuracy are ranked by their
//! mean false alarm. The grid's other thresholds are printed beside it.
#![allow(clippy::print_stdout)]

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use diglett_audio::{self as frontend, DecodeOptions};
use diglett_decision::scoring::{self, DEFAULT_THRESHOLD, Label};
use diglett_decision::timeline::{CHUNK_S, Decider, Segment, TimelineParams, WindowEvidence};
use diglett_model::campp::CamPlusEncoder;
use diglett_model::encoder::WINDOW_SAMPLES;
use diglett_model::enroll;
use diglett_model::segmentation::SpeakerSegmenter;
use diglett_tools::diarization::{FrameCounts, Reference, Span, score_frames_for, span_audio};
use diglett_tools::study::{self, Models, normalised};

const SR: usize = diglett_schemas::SAMPLE_RATE as usize;
/// The service's default hop (samples).
const HOP: usize = 8_000;
const ENROLL_S: f64 = 5.0;
/// A speaker alone for less than this is not enrolled (`diglett-eval`'s rule).
const MIN_ENROLL_S: f64 = 1.0;
/// The selection's bound on non-speech false alarm, per set.
const MAX_FALSE_ALARM: f64 = 0.05;

const GRID_THRESHOLD: [f32; 6] = [0.45, 0.50, 0.55, 0.60, 0.64, 0.67];
/// CAM++'s cosines sit lower (3D-Speaker's own verification threshold is about 0.3–0.5).
const GRID_THRESHOLD_CAMPP: [f32; 7] = [0.25, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55];
const GRID_MIN_VOICED: [f32; 1] = [0.10];
const GRID_ONSET: [(f32, f32); 6] = [
    (0.9, 0.8),
    (0.7, 0.5),
    (0.5, 0.35),
    (0.35, 0.25),
    (0.25, 0.15),
    (0.15, 0.1),
];
const GRID_MIN_GAP: [f64; 2] = [0.2, 0.5];
const GRID_MIN_RUN: [f64; 1] = [0.1];
/// The speech detector each window's chunk probabilities come from. Silero hears the window as
/// received (what the worker does), or lifted towards −30 dBFS by at most 12 dB (quiet far-field
/// speech is lost at its own level; room noise must stay noise); or pyannote segmentation-3.0
/// runs on the 1.6 s window itself (as a worker could: speech probability `1 − p(no speaker)`
/// per 16.9 ms frame, averaged into Silero's 32 ms chunks). Only the first is selected: the
/// others also move the window gate, which the turn rules (`docs/turns.md`) were tuned on.
const VAD_SOURCES: [&str; 3] = ["silero", "silero +12 dB", "segmentation-3.0"];
const GRID_PAD: [f64; 4] = [0.0, 0.1, 0.2, 0.3];
const GRID_LATENCY_MS: [u32; 2] = [500, 1000];

fn main() -> ExitCode {
    study::main("timeline_eval", run)
}

/// One window's evidence, every window scored; speech per [`VAD_SOURCES`] entry.
struct Window {
    chunk_speech: Vec<Vec<f32>>,
    voiced: Vec<f32>,
    scores: Vec<f32>,
    /// The same scores, adaptive-S-normalised against the cohort ([`as_norm`]).
    scores_norm: Vec<f32>,
}

/// Cohort speakers whose scores make the adaptive normalisation's statistics (the closest
/// [`COHORT_TOP`] of them to each side of a trial).
const COHORT_TOP: usize = 20;
/// Thresholds of the normalised score (standard deviations above the cohort's closest).
const GRID_NORM_THRESHOLD: [f32; 8] = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0];

/// A voice or window embedding of either encoder.
type Voice = Vec<f32>;

/// Cosine similarity (0 when either side is all zeros).
fn cos(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    if na > 0.0 && nb > 0.0 {
        dot / (na * nb)
    } else {
        0.0
    }
}

/// The speaker encoder a run studies (`DIGLETT_STUDY_ENCODER=campp` for CAM++; GE2E otherwise).
enum Enc<'a> {
    /// GE2E as the worker runs it: the volume-normalised window.
    Ge2e,
    /// CAM++ (burn, `model/src/campp`, the matrix-product form) on the window as received (its
    /// fbank is mean-normalised per window).
    Campp(&'a CamPlusEncoder),
}

impl Enc<'_> {
    fn embed(&self, m: &Models, raw: &[&[f32]]) -> Vec<Voice> {
        match self {
            Enc::Ge2e => m
                .embed(&raw.iter().map(|w| normalised(w)).collect::<Vec<_>>())
                .iter()
                .map(|e| e.to_vec())
                .collect(),
            Enc::Campp(c) => c
                .embed_windows(&m.compute, raw)
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
        }
    }

    /// An enrollment as the service makes it: pauses trimmed, then the whole speech embedded.
    fn enroll(&self, m: &Models, audio: &[f32]) -> Option<Voice> {
        match self {
            Enc::Ge2e => enroll::embed_enrollment(&m.encoder, &m.vad, &m.compute, audio)
                .1
                .map(|u| u.embedding.to_vec()),
            Enc::Campp(_) => {
                let speech = enroll::preprocess(&m.vad, &m.compute, audio).speech;
                self.enroll_speech(m, &speech)
            }
        }
    }

    /// CAM++'s enrollment from speech already trimmed (GE2E's comes with the synthetic set).
    fn enroll_speech(&self, m: &Models, speech: &[f32]) -> Option<Voice> {
        match self {
            Enc::Ge2e => None,
            Enc::Campp(c) => c.embed_windows(&m.compute, &[speech]).pop().flatten(),
        }
    }
}

/// Mean and standard deviation of `x`'s [`COHORT_TOP`] highest cosines against `cohort`.
fn top_stats(x: &[f32], cohort: &[Voice]) -> (f32, f32) {
    let mut s: Vec<f32> = cohort.iter().map(|c| cos(x, c)).collect();
    s.sort_by(|a, b| b.total_cmp(a));
    s.truncate(COHORT_TOP);
    let n = s.len().max(1) as f32;
    let mean = s.iter().sum::<f32>() / n;
    let var = s.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / n;
    (mean, var.sqrt().max(1e-3))
}

/// Adaptive S-norm (Matějka et al. 2017): the mean of the score standardised by the enrolled
/// voice's cohort statistics and by the window's, so a window heard through a room (that
/// scores lower against everyone) keeps its standing.
fn as_norm(score: f32, voice: (f32, f32), window: (f32, f32)) -> f32 {
    0.5 * ((score - voice.0) / voice.1 + (score - window.0) / window.1)
}

/// `w` lifted towards −30 dBFS by at most `max_gain_db`, as the worker lifts it for Silero.
fn lifted(w: &[f32], max_gain_db: f32) -> Vec<f32> {
    let mut w = w.to_vec();
    diglett_audio::level::lift_towards(
        &mut w,
        diglett_audio::level::NORMALIZE_TARGET_DBFS,
        max_gain_db,
    );
    w
}

/// A recording ready to score.
struct Recording {
    name: String,
    frame_ref: Vec<Vec<usize>>,
    enrolled: Vec<bool>,
    windows: Vec<Window>,
}

/// segmentation-3.0's speech probability on each window, in Silero's 50 chunks of 32 ms: the
/// mean of `1 − p(no speaker)` over the frames whose centre lies in the chunk (the nearest frame
/// where none does).
fn seg_chunk_speech(seg: &SpeakerSegmenter, windows: &[&[f32]]) -> Vec<Vec<f32>> {
    use diglett_model::segmentation as sg;
    let n_chunks = WINDOW_SAMPLES / (CHUNK_S * SR as f64).round() as usize;
    windows
        .chunks(16)
        .flat_map(|batch| seg.log_probs_batch(batch).unwrap_or_default())
        .map(|frames| sg::speech_per_chunk(&frames, n_chunks, CHUNK_S))
        .collect()
}

/// The worker's per-window steps at hop 0.5 s; every window embedded.
#[allow(clippy::too_many_arguments)]
fn analyse(
    m: &Models,
    seg: &SpeakerSegmenter,
    enc: &Enc<'_>,
    name: String,
    wav: &[f32],
    frame_ref: Vec<Vec<usize>>,
    voices: &[Option<Voice>],
    cohort: &[Voice],
) -> Recording {
    let raw = study::windows(wav, HOP);
    let voice_stats: Vec<Option<(f32, f32)>> = voices
        .iter()
        .map(|v| v.as_ref().map(|v| top_stats(v, cohort)))
        .collect();
    let mut per_gain: Vec<Vec<Vec<f32>>> = [0.0, 12.0]
        .iter()
        .map(|&g| {
            let heard: Vec<Vec<f32>> = raw.iter().map(|w| lifted(w, g)).collect();
            let heard: Vec<&[f32]> = heard.iter().map(Vec::as_slice).collect();
            m.vad.probabilities_many(&m.compute, &heard)
        })
        .collect();
    per_gain.push(seg_chunk_speech(seg, &raw));
    let probs: Vec<Vec<Vec<f32>>> = (0..raw.len())
        .map(|k| per_gain.iter().map(|p| p[k].clone()).collect())
        .collect();
    let embs = enc.embed(m, &raw);
    // Scores in reference order; a speaker who was not enrolled scores −1 (never chosen).
    let windows = probs
        .into_iter()
        .zip(&embs)
        .map(|(p, e)| {
            let scores: Vec<f32> = voices
                .iter()
                .map(|v| v.as_ref().map_or(-1.0, |v| cos(e, v)))
                .collect();
            let ws = top_stats(e, cohort);
            let scores_norm = scores
                .iter()
                .zip(&voice_stats)
                .map(|(&s, v)| v.map_or(-100.0, |v| as_norm(s, v, ws)))
                .collect();
            Window {
                scores_norm,
                voiced: p
                    .iter()
                    .map(|p| diglett_model::vad::voiced_fraction(p, scoring::VOICED_PROBABILITY))
                    .collect(),
                chunk_speech: p,
                scores,
            }
        })
        .collect();
    Recording {
        name,
        frame_ref,
        enrolled: voices.iter().map(Option::is_some).collect(),
        windows,
    }
}

/// The `data/cohort` speakers (never enrolled, never in a conversation), each embedded as the
/// service enrolls: the first 10 s of their utterance, pauses trimmed.
fn cohort_voices(m: &Models, dir: &Path) -> Result<Vec<Voice>, String> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    files.sort();
    let mut out = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let wav = frontend::decode_audio(&bytes, &DecodeOptions::default())
            .map_err(|e| format!("{}: {e}", f.display()))?;
        let cut = &wav[..wav.len().min((ENROLL_S * 2.0) as usize * SR)];
        if let Some(v) = Enc::Ge2e.enroll(m, cut) {
            out.push(v);
        }
    }
    Ok(out)
}

/// A recording with an RTTM: each speaker enrolled from their first 5 s alone in it, as the
/// service enrolls (pauses trimmed).
fn annotated(
    m: &Models,
    seg: &SpeakerSegmenter,
    enc: &Enc<'_>,
    cohort: &[Voice],
    wav_path: &Path,
) -> Result<Recording, String> {
    let bytes = std::fs::read(wav_path).map_err(|e| format!("{}: {e}", wav_path.display()))?;
    let wav = frontend::decode_audio(&bytes, &DecodeOptions::default())
        .map_err(|e| format!("{}: {e}", wav_path.display()))?;
    let reference = Reference::read(&wav_path.with_extension("rttm")).map_err(|e| e.to_string())?;
    let frame_ref = reference.frames(Reference::n_frames(wav.len() as f64 / SR as f64));
    let voices: Vec<Option<Voice>> = (0..reference.names.len())
        .map(|i| {
            let audio = span_audio(
                &wav,
                diglett_schemas::SAMPLE_RATE,
                &reference.solo_spans(i, ENROLL_S),
            );
            if (audio.len() as f64) < MIN_ENROLL_S * SR as f64 {
                return None;
            }
            enc.enroll(m, &audio)
        })
        .collect();
    let name = wav_path
        .file_name()
        .map_or_else(String::new, |f| f.to_string_lossy().into_owned());
    Ok(analyse(m, seg, enc, name, &wav, frame_ref, &voices, cohort))
}

/// One grid point.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Point {
    threshold: f32,
    min_voiced: f32,
    params: TimelineParams,
    /// Index into [`VAD_SOURCES`].
    vad: usize,
    /// Scores adaptive-S-normalised against the cohort (the threshold is then in their units).
    norm: bool,
    latency_ms: u32,
}

/// The gateway's timeline of `r` at `p`, as spans from 0 (silence after the last window).
fn timeline(r: &Recording, p: &Point) -> Vec<Span> {
    let n = r.enrolled.len();
    let mut d = Decider::new(p.params, p.threshold, false, n, p.latency_ms);
    let mut segs: Vec<Segment> = Vec::new();
    let len = WINDOW_SAMPLES as f64 / SR as f64;
    let mut end = 0.0;
    for (k, w) in r.windows.iter().enumerate() {
        let scored = w.voiced[p.vad] >= p.min_voiced; // scoring::gate
        let start = (k * HOP) as f64 / SR as f64;
        segs.extend(d.push(&WindowEvidence {
            start,
            length: len,
            scores: if !scored {
                &[]
            } else if p.norm {
                &w.scores_norm
            } else {
                &w.scores
            },
            chunk_speech: &w.chunk_speech[p.vad],
            label: Label::Speaker,
        }));
        end = start + len;
    }
    segs.extend(d.finish());
    let mut spans: Vec<Span> = segs
        .iter()
        .map(|s| Span {
            start: s.start,
            label: s.label,
            speaker: s.speaker,
        })
        .collect();
    spans.push(Span {
        start: end,
        label: Label::Silence,
        speaker: None,
    });
    spans
}

/// The service's raw window labels at `p` (threshold and gate only): each window's label holds
/// from its centre to the next window's centre (the first from 0), `silence` under the gate,
/// the best speaker at or above the threshold, else `unknown` — `diglett-eval`'s "raw windows".
fn raw_windows(r: &Recording, p: &Point) -> Vec<Span> {
    let len = WINDOW_SAMPLES as f64 / SR as f64;
    let mut spans: Vec<Span> = r
        .windows
        .iter()
        .enumerate()
        .map(|(k, w)| {
            let start = if k == 0 {
                0.0
            } else {
                (k * HOP) as f64 / SR as f64 + len / 2.0
            };
            let best = if p.norm { &w.scores_norm } else { &w.scores }
                .iter()
                .enumerate()
                .filter(|(_, s)| s.is_finite())
                .max_by(|a, b| a.1.total_cmp(b.1));
            let (label, speaker) = match best {
                _ if w.voiced[p.vad] < p.min_voiced => (Label::Silence, None),
                Some((i, s)) if *s >= p.threshold => (Label::Speaker, Some(i)),
                _ => (Label::Unknown, None),
            };
            Span {
                start,
                label,
                speaker,
            }
        })
        .collect();
    let end = ((r.windows.len().saturating_sub(1)) * HOP) as f64 / SR as f64 + len;
    spans.push(Span {
        start: end,
        label: Label::Silence,
        speaker: None,
    });
    spans
}

/// Where a set's single-speaker frames went, and its false alarm, for one way of labelling.
fn breakdown_row(name: &str, set: &[Recording], spans: impl Fn(&Recording) -> Vec<Span>) -> String {
    let mut c = FrameCounts::default();
    for r in set {
        c.add(&score_frames_for(&r.frame_ref, &spans(r), &r.enrolled));
    }
    let share = |n: usize| pct(diglett_tools::diarization::ratio(n, c.single));
    let silence = c.single - c.right - c.wrong - c.single_overlap - c.single_unknown;
    format!(
        "| {name} | {} | {} | {} | {} | {} |",
        share(c.right),
        share(c.wrong),
        share(c.single_unknown),
        share(silence),
        pct(c.false_alarm_rate())
    )
}

/// Mean accuracies this close (0–1) count as equal in the selection.
const ACCURACY_TIE: f64 = 0.0025;

/// The mean over the sets of the non-speech false alarm.
fn mean_false_alarm(r: &Outcome) -> f64 {
    r.per_set.iter().map(|x| x.1).sum::<f64>() / r.per_set.len() as f64
}

/// A grid point's outcome.
struct Outcome {
    point: Point,
    /// Per set: (single-speaker accuracy, non-speech false alarm).
    per_set: Vec<(f64, f64)>,
    mean_accuracy: f64,
    worst_false_alarm: f64,
}

fn score(set: &[Recording], p: &Point) -> FrameCounts {
    let mut c = FrameCounts::default();
    for r in set {
        c.add(&score_frames_for(
            &r.frame_ref,
            &timeline(r, p),
            &r.enrolled,
        ));
    }
    c
}

fn pct(x: f64) -> String {
    format!("{:.1}%", 100.0 * x)
}

fn run(data: &Path) -> Result<(), String> {
    let started = Instant::now();
    let m = Models::load()?;
    let seg = SpeakerSegmenter::pretrained(m.compute.clone()).map_err(|e| e.to_string())?;
    let campp_model = match std::env::var("DIGLETT_STUDY_ENCODER").as_deref() {
        Ok("campp") => Some(CamPlusEncoder::pretrained().map_err(|e| e.to_string())?),
        _ => None,
    };
    let enc = campp_model.as_ref().map_or(Enc::Ge2e, Enc::Campp);
    let campp = campp_model.is_some();
    // CAM++: no cohort normalisation (the cohort voices are GE2E's).
    let cohort = if campp {
        Vec::new()
    } else {
        cohort_voices(&m, &data.join("cohort"))?
    };
    let synth = study::synthetic(&m, data, 16, 60.0, ENROLL_S)?;
    let mut sets: Vec<(&str, Vec<Recording>)> = Vec::new();
    {
        // The synthetic conversations, clean and through `study::far_field`.
        let synthetic_set = |name: &str, far: bool| -> Vec<Recording> {
            synth
                .iter()
                .enumerate()
                .map(|(i, c)| {
                    let far_wav;
                    let wav = if far {
                        far_wav = study::far_field(c, 0x0fa2_f1e1_d000 + i as u64);
                        &far_wav
                    } else {
                        &c.wav
                    };
                    let voices: Vec<Option<Voice>> = if campp {
                        c.enroll_speech
                            .iter()
                            .map(|s| enc.enroll_speech(&m, s))
                            .collect()
                    } else {
                        c.enrolled.iter().map(|e| Some(e.to_vec())).collect()
                    };
                    analyse(
                        &m,
                        &seg,
                        &enc,
                        format!("{name} {i}"),
                        wav,
                        c.frame_ref.clone(),
                        &voices,
                        &cohort,
                    )
                })
                .collect()
        };
        sets.push(("synthetic", synthetic_set("synthetic", false)));
        sets.push(("far-field", synthetic_set("far-field", true)));
    }
    let mut meetings: Vec<_> = std::fs::read_dir(data.join("meetings"))
        .map_err(|e| format!("{}: {e}", data.join("meetings").display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wav"))
        .collect();
    meetings.sort();
    sets.push((
        "meetings",
        meetings
            .iter()
            .map(|p| annotated(&m, &seg, &enc, &cohort, p))
            .collect::<Result<_, _>>()?,
    ));
    sets.push((
        "sample",
        vec![annotated(
            &m,
            &seg,
            &enc,
            &cohort,
            &data.join("conversation/sample.wav"),
        )?],
    ));
    for (name, set) in &sets {
        let c = score(
            set,
            &Point {
                threshold: 0.0,
                min_voiced: 0.0,
                params: TimelineParams::default(),
                vad: 0,
                norm: false,
                latency_ms: 500,
            },
        );
        println!(
            "{name}: {} recordings, {:.0} s single-speaker, {:.0} s non-speech, {:.0} s overlapped",
            set.len(),
            c.single as f64 / 100.0,
            c.none as f64 / 100.0,
            c.both as f64 / 100.0
        );
    }
    println!("[analysed in {:.1} s]\n", started.elapsed().as_secs_f32());

    let mut grid = Vec::new();
    for &latency_ms in &GRID_LATENCY_MS {
        for &threshold in if campp {
            &GRID_THRESHOLD_CAMPP[..]
        } else {
            &GRID_THRESHOLD[..]
        } {
            for &min_voiced in &GRID_MIN_VOICED {
                for &(onset, offset) in &GRID_ONSET {
                    for &min_gap in &GRID_MIN_GAP {
                        for &min_run in &GRID_MIN_RUN {
                            for (&pad, vad) in GRID_PAD
                                .iter()
                                .flat_map(|p| (0..VAD_SOURCES.len()).map(move |v| (p, v)))
                            {
                                grid.push(Point {
                                    threshold,
                                    min_voiced,
                                    params: TimelineParams {
                                        onset,
                                        offset,
                                        min_gap,
                                        min_run,
                                        pad,
                                    },
                                    latency_ms,
                                    vad,
                                    norm: false,
                                });
                            }
                        }
                    }
                }
            }
        }
    }
    // Normalised scores: Silero as received, no pad.
    for &latency_ms in GRID_LATENCY_MS.iter().filter(|_| !campp) {
        for &threshold in &GRID_NORM_THRESHOLD {
            for &(onset, offset) in &GRID_ONSET {
                for &min_gap in &GRID_MIN_GAP {
                    grid.push(Point {
                        threshold,
                        min_voiced: GRID_MIN_VOICED[0],
                        params: TimelineParams {
                            onset,
                            offset,
                            min_gap,
                            min_run: GRID_MIN_RUN[0],
                            pad: 0.0,
                        },
                        latency_ms,
                        vad: 0,
                        norm: true,
                    });
                }
            }
        }
    }
    let results: Vec<Outcome> = grid
        .iter()
        .map(|p| {
            let per: Vec<(f64, f64)> = sets
                .iter()
                .map(|(_, s)| {
                    let c = score(s, p);
                    (c.single_accuracy(), c.false_alarm_rate())
                })
                .collect();
            let mean = per.iter().map(|x| x.0).sum::<f64>() / per.len() as f64;
            let fa = per.iter().map(|x| x.1).fold(0.0, f64::max);
            Outcome {
                point: *p,
                per_set: per,
                mean_accuracy: mean,
                worst_false_alarm: fa,
            }
        })
        .collect();
    println!(
        "{} grid points [{:.1} s]\n",
        results.len(),
        started.elapsed().as_secs_f32()
    );
    let header = || {
        let mut h = String::from(
            "| latency ms | speech from | scores | threshold | min_voiced | onset / offset | min_gap | min_run | pad |",
        );
        for (n, _) in &sets {
            h += &format!(" {n} |");
        }
        h += " mean accuracy | worst false alarm |\n|---|---|---|---|---|---|---|---|---|";
        h += &"---|".repeat(sets.len() + 2);
        h
    };
    let row = |r: &Outcome| {
        let p = &r.point;
        let mut s = format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} / {:.2} | {:.1} | {:.1} | {:.1} |",
            p.latency_ms,
            VAD_SOURCES[p.vad],
            if p.norm { "AS-norm" } else { "cosine" },
            p.threshold,
            p.min_voiced,
            p.params.onset,
            p.params.offset,
            p.params.min_gap,
            p.params.min_run,
            p.params.pad
        );
        for (a, f) in &r.per_set {
            s += &format!(" {} / {} |", pct(*a), pct(*f));
        }
        s += &format!(" {} | {} |", pct(r.mean_accuracy), pct(r.worst_false_alarm));
        s
    };
    // Every grid point, for further reading (DIGLETT_STUDY_ALL=<file>).
    if let Ok(path) = std::env::var("DIGLETT_STUDY_ALL") {
        let mut all = header();
        for r in &results {
            all += "\n";
            all += &row(r);
        }
        std::fs::write(&path, all + "\n").map_err(|e| format!("{path}: {e}"))?;
    }
    for &latency in &GRID_LATENCY_MS {
        let mut at: Vec<_> = results
            .iter()
            .filter(|r| r.point.latency_ms == latency)
            .collect();
        // The selection is at the service's threshold and VAD input; the best of the rest are
        // shown after it.
        // CAM++ has no service threshold or detector yet: every cosine point competes.
        let at_default = |r: &Outcome| {
            !r.point.norm
                && (campp
                    || ((r.point.threshold - DEFAULT_THRESHOLD).abs() < 1e-6 && r.point.vad == 0))
        };
        at.sort_by(|a, b| {
            let ok = |r: &Outcome| r.worst_false_alarm <= MAX_FALSE_ALARM;
            at_default(b)
                .cmp(&at_default(a))
                .then(ok(b).cmp(&ok(a)))
                .then(if ok(a) && ok(b) {
                    b.mean_accuracy.total_cmp(&a.mean_accuracy)
                } else {
                    a.worst_false_alarm.total_cmp(&b.worst_false_alarm)
                })
        });
        // Within ACCURACY_TIE of the best, the lowest mean false alarm: differences that small
        // are a few frames of one recording, and fewer false alarms is the safer default.
        if let Some(best) = at.first().map(|r| r.mean_accuracy) {
            let tied = at
                .iter()
                .take_while(|r| {
                    at_default(r)
                        && r.worst_false_alarm <= MAX_FALSE_ALARM
                        && best - r.mean_accuracy <= ACCURACY_TIE
                })
                .count();
            at[..tied].sort_by(|a, b| mean_false_alarm(a).total_cmp(&mean_false_alarm(b)));
        }
        let scope = if campp {
            "over every threshold and speech detector".to_string()
        } else {
            format!("at threshold {DEFAULT_THRESHOLD}, Silero as received first")
        };
        println!(
            "## latency {latency} ms: the best 12 {scope} (single-speaker right / \
             non-speech false alarm per set; false alarm ≤ {} in every set first)\n",
            pct(MAX_FALSE_ALARM)
        );
        println!("{}", header());
        for r in at.iter().take(12) {
            println!("{}", row(r));
        }
        let mut any: Vec<_> = at
            .iter()
            .filter(|r| !at_default(r) && r.worst_false_alarm <= MAX_FALSE_ALARM)
            .collect();
        any.sort_by(|a, b| b.mean_accuracy.total_cmp(&a.mean_accuracy));
        println!(
            "\nthe best 6 at other thresholds or speech detectors (false alarm ≤ {} in every set):\n\n{}",
            pct(MAX_FALSE_ALARM),
            header()
        );
        for r in any.iter().take(6) {
            println!("{}", row(r));
        }
        println!();
        if let Some(best) = at.first() {
            println!("\nselection at {latency} ms: {:?}\n", best.point);
            // Sensitivity around the selection: one knob at a time.
            println!("one knob away from the selection:\n\n{}", header());
            for r in results.iter().filter(|r| {
                let (a, b) = (&r.point, &best.point);
                let diffs = [
                    a.threshold != b.threshold,
                    a.min_voiced != b.min_voiced,
                    a.params.onset != b.params.onset,
                    a.params.min_gap != b.params.min_gap,
                    a.params.min_run != b.params.min_run,
                    a.params.pad != b.params.pad,
                    a.vad != b.vad,
                    a.norm != b.norm,
                ];
                a.latency_ms == b.latency_ms && diffs.iter().filter(|&&x| x).count() == 1
            }) {
                println!("{}", row(r));
            }
            println!();
            println!(
                "where the single-speaker frames went, at the selection and with the raw window \
                 labels at the same threshold and gate:\n\n\
                 | set, labels | right | wrong speaker | unknown | silence | non-speech false alarm |\n\
                 |---|---|---|---|---|---|"
            );
            for (name, set) in &sets {
                println!(
                    "{}",
                    breakdown_row(&format!("{name}, timeline"), set, |r| timeline(
                        r,
                        &best.point
                    ))
                );
                println!(
                    "{}",
                    breakdown_row(&format!("{name}, raw windows"), set, |r| raw_windows(
                        r,
                        &best.point
                    ))
                );
            }
            println!();
            println!(
                "per recording at the selection:\n\n| recording | single-speaker right | non-speech false alarm |\n|---|---|---|"
            );
            for (_, set) in &sets {
                for rec in set.iter().filter(|r| {
                    !r.name.starts_with("synthetic") && !r.name.starts_with("far-field")
                }) {
                    let c = score_frames_for(
                        &rec.frame_ref,
                        &timeline(rec, &best.point),
                        &rec.enrolled,
                    );
                    println!(
                        "| {} | {} | {} |",
                        rec.name,
                        pct(c.single_accuracy()),
                        pct(c.false_alarm_rate())
                    );
                }
            }
            println!();
        }
    }
    println!("[done in {:.1} s]", started.elapsed().as_secs_f32());
    Ok(())
}
