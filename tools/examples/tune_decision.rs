//! The evidence for [`DecisionParams::default`]: the acceptance threshold, the VAD gate and the
//! overlap rules of `diglett_decision::scoring::label_window` (scores only) and
//! `label_window_with` (pair-aware), measured on `shared/data`.
//!
//! ```sh
//! cargo run --release -p diglett-tools --example tune_decision [-- <shared/data dir>]
//! ```
//!
//! Prints five sections, copied into `docs/decision.md`:
//! - A. threshold: target / non-target window scores of the speaker protocol on
//!   `data/speakers`, and 1.6 s windows of the 120 `data/cohort` impostors scored against the 6
//!   enrolled speakers;
//! - B. VAD gate: voiced fraction against the reference speech coverage of the windows of
//!   `data/conversation/sample.wav`, and how many real speech windows of the corpora it drops;
//! - C. overlap on synthetic mixtures of two `data/speakers` windows, against single-speaker
//!   and impostor windows (the old, score-only rule, 6 enrolled);
//! - C2. the pair-aware rule against the old one with 2, 3, 4 and 6 speakers enrolled, on the
//!   same mixtures, single-speaker and impostor windows plus turn changes (half of one
//!   speaker's window, half of another's); the pair-aware defaults are selected here;
//! - D. frame accuracy on `sample.wav` (enrolled from the recording itself) for the original
//!   rule, the threshold + gate, the old overlap rule and the pair-aware one.
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use diglett_audio::{self as frontend, DecodeOptions, NORMALIZE_TARGET_DBFS};
use diglett_decision::scoring::{
    self, DecisionParams, Label, VOICED_PROBABILITY, WindowDecision, label_window,
    label_window_with, score_all,
};
use diglett_model::encoder::{Embedding, WINDOW_SAMPLES};
use diglett_model::enroll;
use diglett_model::vad::{self, CHUNK};
use diglett_tools::diarization::{FRAME_S, Reference, span_audio};
use diglett_tools::eval;
use diglett_tools::study::{self, Models, normalised};

/// The worker's hop between windows: 0.5 s at 16 kHz.
const HOP_SAMPLES: usize = 8_000;
/// 16 kHz as usize, for sample ↔ second conversions.
const SR: usize = diglett_schemas::SAMPLE_RATE as usize;
/// The original pipeline's threshold (Resemblyzer demo, seed-style worker).
const ORIGINAL_THRESHOLD: f32 = 0.62;
/// Mixture windows per speaker pair and level: 15 pairs × 12 = 180 mixtures per level.
const MIX_PER_PAIR: usize = 12;
/// Level of the second voice in a mixture, dB below the first.
const MIX_LEVELS_DB: [f32; 3] = [0.0, 3.0, 6.0];
/// Overlap grid: `overlap_min` candidates, from the cohort's median best score (≈ 0.58) up.
const OVERLAP_MINS: [f32; 6] = [0.55, 0.60, 0.65, 0.70, 0.75, 0.80];
/// Overlap grid: `overlap_margin` candidates (1.0 = no margin condition).
const OVERLAP_MARGINS: [f32; 5] = [0.02, 0.05, 0.10, 0.20, 1.0];
/// Selection rule for the overlap defaults: at most this share of single-speaker windows and of
/// impostor windows may be labelled overlap (0.5% ≈ one window in 200).
const OVERLAP_MAX_FALSE: f64 = 0.5;
/// Pair-aware overlap grid: `overlap_balance` candidates (weak voice's weight / strong's).
const OVERLAP_BALANCES: [f32; 6] = [0.4, 0.5, 0.6, 0.7, 0.8, 0.9];
/// Pair-aware overlap grid: `overlap_fit` candidates, from the median fit of a mixture (≈ 0.70)
/// up to single-speaker territory.
const OVERLAP_FITS: [f32; 6] = [0.66, 0.68, 0.70, 0.72, 0.74, 0.76];
/// Selection rule of the pair-aware defaults (2 enrolled): at most this share (%) of
/// single-speaker and of impostor windows may be labelled overlap.
const OVERLAP_MAX_FALSE_PAIR: f64 = 1.0;
/// Seconds of single-speaker speech each conversation speaker enrolls with (product: ~5 s).
const CONV_ENROLL_S: f64 = 5.0;

fn main() -> ExitCode {
    study::main("tune_decision", run)
}

fn decode(path: &Path) -> Result<Vec<f32>, String> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    frontend::decode_audio(&bytes, &DecodeOptions::default())
        .map_err(|e| format!("{}: {e}", path.display()))
}

fn pct(n: usize, d: usize) -> f64 {
    if d == 0 {
        f64::NAN
    } else {
        100.0 * n as f64 / d as f64
    }
}

/// One trial window of the speaker protocol.
struct Trial {
    speaker: usize,
    /// The raw (not normalised) audio, for the VAD.
    raw: Vec<f32>,
    /// Cut from the volume-normalised utterance, as the protocol does.
    norm: Vec<f32>,
    scores: Vec<f32>,
}

fn run(data: &Path) -> Result<(), String> {
    let started = Instant::now();
    let m = Models::load()?;
    let defaults = DecisionParams::default();
    println!(
        "defaults: threshold {:.3}, overlap_min {:.3}, overlap_margin {:.3}, overlap_balance \
         {:.3}, overlap_fit {:.3}, min_voiced {:.3} (voiced = Silero p >= {VOICED_PROBABILITY})",
        defaults.threshold,
        defaults.overlap_min,
        defaults.overlap_margin,
        defaults.overlap_balance,
        defaults.overlap_fit,
        defaults.min_voiced
    );

    // ---------------------------------------------------------------- A. threshold
    let speakers = eval::load_speakers(&data.join("speakers")).map_err(|e| e.to_string())?;
    let report = eval::speaker_protocol(
        &speakers,
        |wav| enroll::preprocess(&m.vad, &m.compute, wav).speech,
        |wav| {
            m.encoder
                .embed_utterance(&m.compute, wav)
                .embedding
                .to_vec()
        },
        |wins| m.embed(wins).iter().map(|e| e.to_vec()).collect(),
    );
    // The same enrollment and trials again, kept per window (the protocol only returns pooled
    // scores): enroll from the first 5 s of trimmed speech of each speaker's first utterance.
    let enroll_samples = (eval::ENROLL_SECONDS * SR as f32) as usize;
    let enrolled: Vec<Embedding> = speakers
        .iter()
        .map(|s| {
            let mut speech =
                enroll::preprocess(&m.vad, &m.compute, &normalised(&s.utterances[0].1)).speech;
            speech.truncate(enroll_samples);
            m.encoder.embed_utterance(&m.compute, &speech).embedding
        })
        .collect();
    let mut trials = Vec::new();
    for (si, s) in speakers.iter().enumerate() {
        for (_, wav) in &s.utterances[1..] {
            let norm = normalised(wav);
            for (r, n) in eval::windows(wav, eval::TRIAL_SAMPLES)
                .zip(eval::windows(&norm, eval::TRIAL_SAMPLES))
            {
                trials.push(Trial {
                    speaker: si,
                    raw: r.to_vec(),
                    norm: n.to_vec(),
                    scores: Vec::new(),
                });
            }
        }
    }
    let embs = m.embed(&trials.iter().map(|t| t.norm.as_slice()).collect::<Vec<_>>());
    for (t, e) in trials.iter_mut().zip(&embs) {
        t.scores = score_all(e, &enrolled);
    }
    let (mut target, mut nontarget) = (Vec::new(), Vec::new());
    for t in &trials {
        for (i, &s) in t.scores.iter().enumerate() {
            if i == t.speaker {
                target.push(s);
            } else {
                nontarget.push(s);
            }
        }
    }
    let (eer, eer_thr) = eval::equal_error_rate(&target, &nontarget);

    // Cohort: each utterance volume-normalised, cut into consecutive 1.6 s windows.
    let mut cohort_files: Vec<PathBuf> = std::fs::read_dir(data.join("cohort"))
        .map_err(|e| e.to_string())?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    cohort_files.sort();
    let (mut cohort_raw, mut cohort_norm) = (Vec::new(), Vec::new());
    for f in &cohort_files {
        let wav = decode(f)?;
        let norm = normalised(&wav);
        cohort_raw.extend(eval::windows(&wav, eval::TRIAL_SAMPLES).map(<[f32]>::to_vec));
        cohort_norm.extend(eval::windows(&norm, eval::TRIAL_SAMPLES).map(<[f32]>::to_vec));
    }
    let cohort_scores: Vec<Vec<f32>> = m
        .embed(&cohort_norm)
        .iter()
        .map(|e| score_all(e, &enrolled))
        .collect();
    let cohort_max: Vec<f32> = cohort_scores
        .iter()
        .map(|s| s.iter().copied().fold(f32::NEG_INFINITY, f32::max))
        .collect();

    // Open-set equal-error point: target windows rejected = impostor windows accepted (an
    // impostor window is accepted when its best score over the 6 enrolled reaches the threshold).
    let (open_eer, open_thr) = eval::equal_error_rate(&target, &cohort_max);

    println!("\n## A. Threshold\n");
    println!(
        "speaker protocol (data/speakers, 6 enrolled, 5 s each): {} windows, {} target / {} \
         non-target scores; EER {:.2}% at cosine {:.3} (eval::speaker_protocol: {:.2}% at {:.3}); \
         identification {:.2}%",
        trials.len(),
        target.len(),
        nontarget.len(),
        100.0 * eer,
        eer_thr,
        100.0 * report.eer,
        report.eer_threshold,
        100.0 * report.identification
    );
    println!(
        "cohort impostors: {} utterances -> {} windows of 1.6 s, each scored against the 6 enrolled",
        cohort_files.len(),
        cohort_norm.len()
    );
    println!(
        "open-set EER (target windows vs cohort impostor windows' best score): {:.2}% at cosine {:.3}",
        100.0 * open_eer,
        open_thr
    );
    println!(
        "\n| threshold | FRR (target) | FAR (non-target trials) | speakers: right speaker | \
         speakers: wrong speaker | cohort: window accepted |"
    );
    println!("|---|---|---|---|---|---|");
    let mut thresholds: Vec<f32> = (0..=16).map(|i| 0.56 + 0.01 * i as f32).collect();
    thresholds.extend([eer_thr, open_thr, ORIGINAL_THRESHOLD, defaults.threshold]);
    thresholds.sort_by(f32::total_cmp);
    thresholds.dedup_by(|a, b| (*a - *b).abs() < 1e-4);
    for &thr in &thresholds {
        let frr = target.iter().filter(|&&s| s < thr).count();
        let far = nontarget.iter().filter(|&&s| s >= thr).count();
        let (mut right, mut wrong) = (0, 0);
        for t in &trials {
            if let scoring::Decision::Speaker { index, .. } = scoring::decide(&t.scores, thr) {
                if index == t.speaker {
                    right += 1;
                } else {
                    wrong += 1;
                }
            }
        }
        let cohort_fa = cohort_max.iter().filter(|&&s| s >= thr).count();
        let mut tags = Vec::new();
        if (thr - eer_thr).abs() < 1e-4 {
            tags.push("EER");
        }
        if (thr - open_thr).abs() < 1e-4 {
            tags.push("open-set EER");
        }
        if (thr - ORIGINAL_THRESHOLD).abs() < 1e-4 {
            tags.push("original");
        }
        if (thr - defaults.threshold).abs() < 1e-4 {
            tags.push("**default**");
        }
        let tag = if tags.is_empty() {
            String::new()
        } else {
            format!(" ({})", tags.join(", "))
        };
        println!(
            "| {thr:.3}{tag} | {:.2}% | {:.2}% | {:.1}% | {:.2}% | {:.2}% ({cohort_fa}) |",
            pct(frr, target.len()),
            pct(far, nontarget.len()),
            pct(right, trials.len()),
            pct(wrong, trials.len()),
            pct(cohort_fa, cohort_max.len()),
        );
    }
    let mut sorted_max = cohort_max.clone();
    sorted_max.sort_by(f32::total_cmp);
    let q = |p: f64| sorted_max[((p * (sorted_max.len() - 1) as f64).round()) as usize];
    println!(
        "\ncohort best-score quantiles: median {:.3}, 90% {:.3}, 95% {:.3}, 99% {:.3}, max {:.3}",
        q(0.5),
        q(0.9),
        q(0.95),
        q(0.99),
        q(1.0)
    );
    println!("[A done at {:.1} s]", started.elapsed().as_secs_f32());

    // ---------------------------------------------------------------- B. VAD gate
    let conv = decode(&data.join("conversation/sample.wav"))?;
    let reference =
        Reference::read(&data.join("conversation/sample.rttm")).map_err(|e| e.to_string())?;
    let names = &reference.names;
    // Reference speakers active at each 10 ms frame's centre.
    let frame_ref = reference.frames(Reference::n_frames(conv.len() as f64 / SR as f64));
    let starts: Vec<usize> = (0..)
        .map(|k| k * HOP_SAMPLES)
        .take_while(|s| s + WINDOW_SAMPLES <= conv.len())
        .collect();
    let conv_raw = study::windows(&conv, HOP_SAMPLES);
    let coverage: Vec<f64> = starts
        .iter()
        .map(|&s| {
            let (a, b) = (
                s as f64 / SR as f64,
                (s + WINDOW_SAMPLES) as f64 / SR as f64,
            );
            let frames: Vec<&Vec<usize>> = frame_ref
                .iter()
                .enumerate()
                .filter(|(i, _)| {
                    let t = (*i as f64 + 0.5) * FRAME_S;
                    a <= t && t < b
                })
                .map(|(_, r)| r)
                .collect();
            frames.iter().filter(|r| !r.is_empty()).count() as f64 / frames.len().max(1) as f64
        })
        .collect();
    let conv_voiced = m.voiced(&conv_raw);
    // The alternative: one VAD stream over the whole file, chunks lying inside the window.
    let stream_probs = m.vad.probabilities(&m.compute, &conv);
    let conv_voiced_stream: Vec<f32> = starts
        .iter()
        .map(|&s| {
            let first = s.div_ceil(CHUNK);
            let last = ((s + WINDOW_SAMPLES) / CHUNK).min(stream_probs.len());
            vad::voiced_fraction(&stream_probs[first..last], VOICED_PROBABILITY)
        })
        .collect();
    let trial_voiced = m.voiced(&trials.iter().map(|t| t.raw.as_slice()).collect::<Vec<_>>());
    let cohort_voiced = m.voiced(&cohort_raw);

    println!("\n## B. VAD gate (min_voiced)\n");
    let quiet = coverage.iter().filter(|&&c| c < 0.1).count();
    let speechy = coverage.iter().filter(|&&c| c > 0.5).count();
    println!(
        "sample.wav: {} windows (1.6 s every 0.5 s); {quiet} with < 10% reference speech, \
         {speechy} with > 50%; voiced fraction from a fresh VAD per window on the raw audio \
         (stream = one VAD pass over the file, chunks inside the window)",
        starts.len()
    );
    println!(
        "\n| min_voiced | sample: gated (encoder runs saved) | sample: gated with > 50% speech | \
         sample: passed with < 10% speech | sample (stream VAD): errors (>50% gated + <10% passed) | \
         speakers: speech windows gated | cohort: speech windows gated |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut gates = vec![0.0, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.6];
    gates.push(defaults.min_voiced);
    gates.sort_by(f32::total_cmp);
    gates.dedup_by(|a, b| (*a - *b).abs() < 1e-4);
    for &g in &gates {
        let p = DecisionParams {
            min_voiced: g,
            ..defaults
        };
        let gated = |v: f32| !scoring::gate(v, &p);
        let n_gated = conv_voiced.iter().filter(|&&v| gated(v)).count();
        let lost = (0..starts.len())
            .filter(|&i| coverage[i] > 0.5 && gated(conv_voiced[i]))
            .count();
        let passed = (0..starts.len())
            .filter(|&i| coverage[i] < 0.1 && !gated(conv_voiced[i]))
            .count();
        let stream_err = (0..starts.len())
            .filter(|&i| {
                (coverage[i] > 0.5 && gated(conv_voiced_stream[i]))
                    || (coverage[i] < 0.1 && !gated(conv_voiced_stream[i]))
            })
            .count();
        let spk_gated = trial_voiced.iter().filter(|&&v| gated(v)).count();
        let coh_gated = cohort_voiced.iter().filter(|&&v| gated(v)).count();
        let tag = if (g - defaults.min_voiced).abs() < 1e-4 {
            " (**default**)"
        } else {
            ""
        };
        println!(
            "| {g:.2}{tag} | {n_gated}/{} ({:.0}%) | {lost}/{speechy} | {passed}/{quiet} | {stream_err} | \
             {spk_gated}/{} ({:.2}%) | {coh_gated}/{} ({:.2}%) |",
            starts.len(),
            pct(n_gated, starts.len()),
            trial_voiced.len(),
            pct(spk_gated, trial_voiced.len()),
            cohort_voiced.len(),
            pct(coh_gated, cohort_voiced.len()),
        );
    }
    let min_of = |v: &[f32]| v.iter().copied().fold(f32::INFINITY, f32::min);
    println!(
        "\nlowest voiced fraction of a real speech window: data/speakers {:.2}, cohort {:.2}; \
         sample.wav windows with > 50% reference speech: {:.2}",
        min_of(&trial_voiced),
        min_of(&cohort_voiced),
        min_of(
            &(0..starts.len())
                .filter(|&i| coverage[i] > 0.5)
                .map(|i| conv_voiced[i])
                .collect::<Vec<_>>()
        )
    );
    let gated_cohort_dbfs = (0..cohort_raw.len())
        .filter(|&i| !scoring::gate(cohort_voiced[i], &defaults))
        .map(|i| frontend::rms_dbfs(&cohort_raw[i]))
        .fold(f32::NEG_INFINITY, f32::max);
    println!(
        "cohort windows gated at the default are pauses in the utterances: the loudest has RMS \
         {gated_cohort_dbfs:.1} dBFS (speech is normalised to -30)"
    );
    println!(
        "highest voiced fraction of a sample.wav window with < 10% reference speech: {:.2}",
        (0..starts.len())
            .filter(|&i| coverage[i] < 0.1)
            .map(|i| conv_voiced[i])
            .fold(f32::NEG_INFINITY, f32::max)
    );
    println!("[B done at {:.1} s]", started.elapsed().as_secs_f32());

    // ---------------------------------------------------------------- C. overlap, synthetic
    // Mixture of window k of speaker a and window k of speaker b (a < b), each scaled to
    // -30 dBFS first (similar loudness), b attenuated by `level` dB, the sum normalised like any
    // window.
    let by_speaker: Vec<Vec<&Trial>> = (0..speakers.len())
        .map(|si| trials.iter().filter(|t| t.speaker == si).collect())
        .collect();
    let mut mixes: Vec<(usize, usize, usize, Vec<f32>)> = Vec::new(); // (level idx, a, b, wav)
    for (li, &level) in MIX_LEVELS_DB.iter().enumerate() {
        let gain = 10f32.powf(-level / 20.0);
        for a in 0..speakers.len() {
            for b in a + 1..speakers.len() {
                for k in 0..MIX_PER_PAIR
                    .min(by_speaker[a].len())
                    .min(by_speaker[b].len())
                {
                    // Spread the pairs over each speaker's windows.
                    let wa = &by_speaker[a][(k * 7 + b) % by_speaker[a].len()].norm;
                    let wb = &by_speaker[b][(k * 5 + a) % by_speaker[b].len()].norm;
                    let (mut x, mut y) = (wa.clone(), wb.clone());
                    frontend::normalize_volume(&mut x, NORMALIZE_TARGET_DBFS, false);
                    frontend::normalize_volume(&mut y, NORMALIZE_TARGET_DBFS, false);
                    let mut mix: Vec<f32> = x.iter().zip(&y).map(|(p, q)| p + gain * q).collect();
                    frontend::normalize_volume(&mut mix, NORMALIZE_TARGET_DBFS, true);
                    mixes.push((li, a, b, mix));
                }
            }
        }
    }
    let mix_scores: Vec<Vec<f32>> = m
        .embed(&mixes.iter().map(|x| x.3.as_slice()).collect::<Vec<_>>())
        .iter()
        .map(|e| score_all(e, &enrolled))
        .collect();
    // Turn changes: the first half (0.8 s) of one speaker's window, then the second half of
    // another's -- the same window pairs as the mixtures, in both orders.
    let half = WINDOW_SAMPLES / 2;
    let mut turn_wins: Vec<(usize, usize, Vec<f32>)> = Vec::new(); // (first, second, wav)
    for a in 0..speakers.len() {
        for b in a + 1..speakers.len() {
            for k in 0..MIX_PER_PAIR
                .min(by_speaker[a].len())
                .min(by_speaker[b].len())
            {
                let mut x = by_speaker[a][(k * 7 + b) % by_speaker[a].len()]
                    .norm
                    .clone();
                let mut y = by_speaker[b][(k * 5 + a) % by_speaker[b].len()]
                    .norm
                    .clone();
                frontend::normalize_volume(&mut x, NORMALIZE_TARGET_DBFS, false);
                frontend::normalize_volume(&mut y, NORMALIZE_TARGET_DBFS, false);
                for (f, s, p, q) in [(a, b, &x, &y), (b, a, &y, &x)] {
                    let mut w: Vec<f32> = p[..half].iter().chain(&q[half..]).copied().collect();
                    frontend::normalize_volume(&mut w, NORMALIZE_TARGET_DBFS, true);
                    turn_wins.push((f, s, w));
                }
            }
        }
    }
    // Every synthetic / corpus window here is speech: pass the gate (voiced fraction 1).
    let label = |scores: &[f32], p: &DecisionParams| label_window(scores, 1.0, p);
    let overlap_stats = |p: &DecisionParams, level: usize| {
        let (mut n, mut ov, mut pair) = (0, 0, 0);
        for ((li, a, b, _), s) in mixes.iter().zip(&mix_scores) {
            if *li != level {
                continue;
            }
            n += 1;
            let d = label(s, p);
            if d.label == Label::Overlap {
                ov += 1;
                let got = [d.speaker, d.second.map(|x| x.0)];
                if got.contains(&Some(*a)) && got.contains(&Some(*b)) {
                    pair += 1;
                }
            }
        }
        let single_ov = trials
            .iter()
            .filter(|t| label(&t.scores, p).label == Label::Overlap)
            .count();
        let cohort_ov = cohort_scores
            .iter()
            .filter(|s| label(s, p).label == Label::Overlap)
            .count();
        (n, ov, pair, single_ov, cohort_ov)
    };
    println!("\n## C. Overlap rule on synthetic mixtures (data/speakers, 6 enrolled)\n");
    println!(
        "{} mixtures per level ({} pairs of different speakers × {MIX_PER_PAIR}); {} single-speaker \
         windows; {} cohort (impostor) windows",
        mixes.iter().filter(|x| x.0 == 0).count(),
        speakers.len() * (speakers.len() - 1) / 2,
        trials.len(),
        cohort_scores.len()
    );
    println!(
        "\n| overlap_min | margin | 0 dB mixtures: overlap (right pair) | single-speaker: overlap | \
         cohort: overlap |"
    );
    println!("|---|---|---|---|---|");
    let grid = grid_2d(
        &OVERLAP_MINS,
        &OVERLAP_MARGINS,
        (defaults.overlap_min, defaults.overlap_margin),
    );
    let mut selected: Option<(f32, f32, f64)> = None;
    for &(mn, mg) in &grid {
        let p = DecisionParams {
            overlap_min: mn,
            overlap_margin: mg,
            ..defaults
        };
        let (n, ov, pair, single_ov, cohort_ov) = overlap_stats(&p, 0);
        if pct(single_ov, trials.len()) <= OVERLAP_MAX_FALSE
            && pct(cohort_ov, cohort_scores.len()) <= OVERLAP_MAX_FALSE
            && selected.is_none_or(|(_, _, best)| pct(pair, n) > best)
        {
            selected = Some((mn, mg, pct(pair, n)));
        }
        let tag = if (mn - defaults.overlap_min).abs() < 1e-4
            && (mg - defaults.overlap_margin).abs() < 1e-4
        {
            " (**default**)"
        } else {
            ""
        };
        println!(
            "| {mn:.2}{tag} | {mg:.2} | {:.1}% ({:.1}%) | {:.2}% ({single_ov}) | {:.2}% ({cohort_ov}) |",
            pct(ov, n),
            pct(pair, n),
            pct(single_ov, trials.len()),
            pct(cohort_ov, cohort_scores.len()),
        );
    }
    match selected {
        Some((mn, mg, det)) => println!(
            "\nselection (most 0 dB mixtures found as overlap of the right pair, with <= \
             {OVERLAP_MAX_FALSE}% of single-speaker and of cohort windows labelled overlap): \
             overlap_min {mn:.2}, margin {mg:.2} ({det:.1}%)"
        ),
        None => println!("\nselection: no grid point meets <= {OVERLAP_MAX_FALSE}% false overlap"),
    }
    println!("\nat the defaults, what each kind of window is labelled:\n");
    println!(
        "| windows | n | overlap | speaker (one of the voices) | speaker (someone else) | unknown |"
    );
    println!("|---|---|---|---|---|---|");
    for (li, level) in MIX_LEVELS_DB.iter().enumerate() {
        let (mut n, mut c) = (0, [0usize; 4]);
        for ((l, a, b, _), s) in mixes.iter().zip(&mix_scores) {
            if *l != li {
                continue;
            }
            n += 1;
            let d = label(s, &defaults);
            c[column(&d, |i| i == *a || i == *b)] += 1;
        }
        println!(
            "| mixture, 2nd voice −{level:.0} dB | {n} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            pct(c[0], n),
            pct(c[1], n),
            pct(c[2], n),
            pct(c[3], n)
        );
    }
    let (mut c, n) = ([0usize; 4], trials.len());
    for t in &trials {
        let d = label(&t.scores, &defaults);
        c[column(&d, |i| i == t.speaker)] += 1;
    }
    println!(
        "| single speaker (speaker = the true one) | {n} | {:.2}% | {:.1}% | {:.2}% | {:.1}% |",
        pct(c[0], n),
        pct(c[1], n),
        pct(c[2], n),
        pct(c[3], n)
    );
    let (mut c, n) = ([0usize; 4], cohort_scores.len());
    for s in &cohort_scores {
        let d = label(s, &defaults);
        c[column(&d, |_| false)] += 1;
    }
    println!(
        "| cohort impostor | {n} | {:.2}% | – | {:.2}% | {:.1}% |",
        pct(c[0], n),
        pct(c[2], n),
        pct(c[3], n)
    );
    println!("[C done at {:.1} s]", started.elapsed().as_secs_f32());

    // ---------------------------------------------------------------- C2. pair-aware overlap
    let turn_scores: Vec<Vec<f32>> = m
        .embed(&turn_wins.iter().map(|x| x.2.as_slice()).collect::<Vec<_>>())
        .iter()
        .map(|e| score_all(e, &enrolled))
        .collect();
    let gram: Vec<Vec<f32>> = enrolled
        .iter()
        .map(|a| enrolled.iter().map(|b| scoring::cosine(a, b)).collect())
        .collect();
    let corpus = Corpus {
        names: speakers.iter().map(|s| s.id.as_str()).collect(),
        gram: &gram,
        mixes: mixes
            .iter()
            .zip(&mix_scores)
            .map(|((l, a, b, _), s)| (*l, *a, *b, s.as_slice()))
            .collect(),
        singles: trials
            .iter()
            .map(|t| (t.speaker, t.scores.as_slice()))
            .collect(),
        cohort: cohort_scores.iter().map(Vec::as_slice).collect(),
        turns: turn_wins
            .iter()
            .zip(&turn_scores)
            .map(|((f, s, _), sc)| (*f, *s, sc.as_slice()))
            .collect(),
    };
    let n_spk = speakers.len();
    println!("\n## C2. Pair-aware overlap rule (label_window_with) on synthetic windows\n");
    println!(
        "Each speaker set of data/speakers is enrolled in turn (2 enrolled: the 15 pairs, as in a \
         two-person conversation; 6: all). Per set: mixtures of two of its speakers (0/−3/−6 dB, \
         {MIX_PER_PAIR} per pair and level), its speakers' single-speaker windows, all {} cohort \
         windows, and turn changes (first 0.8 s of one speaker's window + last 0.8 s of another's, \
         both orders, {} per pair). Counts are pooled over the sets. A mixture counts as found \
         when labelled overlap with the right pair.",
        cohort_scores.len(),
        2 * MIX_PER_PAIR
    );
    let rate = |x: (usize, usize)| pct(x.1, x.0);
    let mix_mean = |c: &OverlapCounts| {
        (0..MIX_LEVELS_DB.len())
            .map(|l| pct(c.mix[l].2, c.mix[l].0))
            .sum::<f64>()
            / MIX_LEVELS_DB.len() as f64
    };
    let feasible = |c: &OverlapCounts| {
        rate(c.single) <= OVERLAP_MAX_FALSE_PAIR && rate(c.cohort) <= OVERLAP_MAX_FALSE_PAIR
    };
    let header = "| mixtures 0 dB found | −3 dB | −6 dB | single-speaker: overlap | \
                  cohort: overlap | turn changes: overlap |";
    let row = |c: &OverlapCounts| {
        format!(
            "{:.1}% | {:.1}% | {:.1}% | {:.2}% ({}) | {:.2}% ({}) | {:.1}% |",
            pct(c.mix[0].2, c.mix[0].0),
            pct(c.mix[1].2, c.mix[1].0),
            pct(c.mix[2].2, c.mix[2].0),
            rate(c.single),
            c.single.1,
            rate(c.cohort),
            c.cohort.1,
            rate(c.turn),
        )
    };
    // New rule grid, 2 enrolled.
    let c0 = corpus.evaluate(&Rule::Pair(defaults), 2);
    println!(
        "\nnew rule, 2 enrolled (threshold and gate at the defaults; (window, pair) trials: \
         mixtures {} per level, single {}, cohort {}, turn {}):\n",
        c0.mix[0].0, c0.single.0, c0.cohort.0, c0.turn.0,
    );
    println!("| overlap_balance | overlap_fit {header}");
    println!("|---|---|---|---|---|---|---|---|");
    let new_grid = grid_2d(
        &OVERLAP_BALANCES,
        &OVERLAP_FITS,
        (defaults.overlap_balance, defaults.overlap_fit),
    );
    let mut new_sel: Option<(f32, f32, f64)> = None;
    for &(b, f) in &new_grid {
        let p = DecisionParams {
            overlap_balance: b,
            overlap_fit: f,
            ..defaults
        };
        let c = corpus.evaluate(&Rule::Pair(p), 2);
        if feasible(&c) && new_sel.is_none_or(|(_, _, best)| mix_mean(&c) > best) {
            new_sel = Some((b, f, mix_mean(&c)));
        }
        let tag = if (b - defaults.overlap_balance).abs() < 1e-4
            && (f - defaults.overlap_fit).abs() < 1e-4
        {
            " (**default**)"
        } else {
            ""
        };
        println!("| {b:.2}{tag} | {f:.2} | {}", row(&c));
    }
    // Old rule on the same windows, 2 enrolled.
    println!("\nold rule (label_window), 2 enrolled, same windows:\n");
    println!("| overlap_min | margin {header}");
    println!("|---|---|---|---|---|---|---|---|");
    let mut old_sel: Option<(f32, f32, f64)> = None;
    for &(mn, mg) in &grid {
        let p = DecisionParams {
            overlap_min: mn,
            overlap_margin: mg,
            ..defaults
        };
        let c = corpus.evaluate(&Rule::Scores(p), 2);
        if feasible(&c) && old_sel.is_none_or(|(_, _, best)| mix_mean(&c) > best) {
            old_sel = Some((mn, mg, mix_mean(&c)));
        }
        println!("| {mn:.2} | {mg:.2} | {}", row(&c));
    }
    let show_sel = |name: &str, sel: Option<(f32, f32, f64)>| match sel {
        Some((x, y, det)) => println!(
            "selection, {name} (most mixtures found, mean of the 3 levels, with <= \
             {OVERLAP_MAX_FALSE_PAIR}% of single-speaker and of cohort windows labelled overlap, \
             2 enrolled): {x:.2} / {y:.2} ({det:.1}%)"
        ),
        None => println!("selection, {name}: no grid point meets <= {OVERLAP_MAX_FALSE_PAIR}%"),
    };
    println!();
    show_sel("new rule (balance / fit)", new_sel);
    show_sel("old rule (overlap_min / margin)", old_sel);
    let old_best = old_sel.map(|(mn, mg, _)| DecisionParams {
        overlap_min: mn,
        overlap_margin: mg,
        ..defaults
    });

    // By number of enrolled speakers.
    println!(
        "\nby number of enrolled speakers (every set of that size; worst set = the highest single-speaker false-overlap rate of one set):\n"
    );
    println!("| rule | enrolled | sets {header} worst set: single-speaker overlap |");
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut rules_c2: Vec<(String, Rule)> = vec![(
        format!(
            "old, defaults ({:.2} / {:.2})",
            defaults.overlap_min, defaults.overlap_margin
        ),
        Rule::Scores(defaults),
    )];
    if let Some(p) = old_best {
        rules_c2.push((
            format!(
                "old, its selection ({:.2} / {:.2})",
                p.overlap_min, p.overlap_margin
            ),
            Rule::Scores(p),
        ));
    }
    rules_c2.push((
        format!(
            "**new, defaults** ({:.2} / {:.2})",
            defaults.overlap_balance, defaults.overlap_fit
        ),
        Rule::Pair(defaults),
    ));
    for (name, rule) in &rules_c2 {
        for k in [2, 3, 4, n_spk] {
            let c = corpus.evaluate(rule, k);
            println!(
                "| {name} | {k} | {} | {} {:.1}% ({}) |",
                c.sets,
                row(&c),
                c.worst_single.0,
                c.worst_single.1
            );
        }
    }

    // What the same selection would pick with more speakers enrolled.
    println!(
        "\nthe new rule's selection (same grid and criterion) if made with more speakers enrolled:\n"
    );
    println!("| enrolled | overlap_balance | overlap_fit {header}");
    println!("|---|---|---|---|---|---|---|---|---|");
    for k in [2, 3, 4, n_spk] {
        let mut best: Option<((f32, f32), OverlapCounts)> = None;
        for &(b, f) in &new_grid {
            let c = corpus.evaluate(
                &Rule::Pair(DecisionParams {
                    overlap_balance: b,
                    overlap_fit: f,
                    ..defaults
                }),
                k,
            );
            if feasible(&c)
                && best
                    .as_ref()
                    .is_none_or(|(_, bc)| mix_mean(&c) > mix_mean(bc))
            {
                best = Some(((b, f), c));
            }
        }
        match best {
            Some(((b, f), c)) => println!("| {k} | {b:.2} | {f:.2} | {}", row(&c)),
            None => println!("| {k} | – | – | no grid point meets the criterion |"),
        }
    }

    // Per pair at the defaults.
    println!("\nnew rule at the defaults, per enrolled pair:\n");
    println!(
        "| pair | cosine | single-speaker: overlap | cohort: overlap | mixtures 0/−3/−6 dB found | turn changes: overlap |"
    );
    println!("|---|---|---|---|---|---|");
    for set in subsets(n_spk, 2) {
        let c = corpus.evaluate_set(&Rule::Pair(defaults), &set);
        println!(
            "| {}–{} | {:.2} | {:.1}% ({}/{}) | {:.2}% | {:.0}% / {:.0}% / {:.0}% | {:.0}% |",
            speakers[set[0]].id,
            speakers[set[1]].id,
            gram[set[0]][set[1]],
            rate(c.single),
            c.single.1,
            c.single.0,
            rate(c.cohort),
            pct(c.mix[0].2, c.mix[0].0),
            pct(c.mix[1].2, c.mix[1].0),
            pct(c.mix[2].2, c.mix[2].0),
            rate(c.turn),
        );
    }

    // (c) What turn changes get.
    println!(
        "\nturn-change windows (2 enrolled: the two speakers of the window), what they are labelled:\n"
    );
    println!(
        "| rule | n | overlap | speaker: the first voice | speaker: the second voice | unknown |"
    );
    println!("|---|---|---|---|---|---|");
    for (name, rule) in &rules_c2 {
        let mut c = [0usize; 4];
        for &(f, s, sc) in &corpus.turns {
            let set = [f.min(s), f.max(s)];
            let d = rule.label(&set.iter().map(|&k| sc[k]).collect::<Vec<_>>(), |i, j| {
                gram[set[i]][set[j]]
            });
            c[match (d.label, d.speaker.map(|i| set[i])) {
                (Label::Overlap, _) => 0,
                (Label::Speaker, Some(x)) if x == f => 1,
                (Label::Speaker, _) => 2,
                _ => 3,
            }] += 1;
        }
        let n = corpus.turns.len();
        println!(
            "| {name} | {n} | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
            pct(c[0], n),
            pct(c[1], n),
            pct(c[2], n),
            pct(c[3], n)
        );
    }
    println!("[C2 done at {:.1} s]", started.elapsed().as_secs_f32());

    // ---------------------------------------------------------------- D. conversation
    // Enroll each reference speaker from their first 5 s of single-speaker speech.
    let mut conv_enrolled = Vec::new();
    let mut enroll_spans = Vec::new();
    for si in 0..names.len() {
        let spans = reference.solo_spans(si, CONV_ENROLL_S);
        let total: f64 = spans.iter().map(|(a, b)| b - a).sum();
        let audio = normalised(&span_audio(&conv, diglett_schemas::SAMPLE_RATE, &spans));
        conv_enrolled.push(m.encoder.embed_utterance(&m.compute, &audio).embedding);
        enroll_spans.push((si, spans, total));
    }
    let conv_norm: Vec<Vec<f32>> = conv_raw.iter().map(|w| normalised(w)).collect();
    let conv_scores: Vec<Vec<f32>> = m
        .embed(&conv_norm)
        .iter()
        .map(|e| score_all(e, &conv_enrolled))
        .collect();

    println!("\n## D. Conversation (sample.wav, 2 speakers enrolled from the recording)\n");
    for (si, spans, total) in &enroll_spans {
        let s: Vec<String> = spans
            .iter()
            .map(|(a, b)| format!("{a:.2}–{b:.2}"))
            .collect();
        println!("enroll {} ({total:.2} s): {}", names[*si], s.join(", "));
    }
    let n_single = frame_ref.iter().filter(|r| r.len() == 1).count();
    let n_none = frame_ref.iter().filter(|r| r.is_empty()).count();
    let n_both = frame_ref.iter().filter(|r| r.len() >= 2).count();
    println!(
        "frames of 10 ms: {n_single} single-speaker, {n_none} non-speech, {n_both} overlapped"
    );
    let original: Vec<WindowLabel> = conv_scores
        .iter()
        .map(|s| match scoring::decide(s, ORIGINAL_THRESHOLD) {
            scoring::Decision::Speaker { index, .. } => (Label::Speaker, Some(index)),
            scoring::Decision::Unknown { .. } => (Label::Unknown, None),
        })
        .collect();
    let with = |p: DecisionParams| -> Vec<WindowLabel> {
        conv_scores
            .iter()
            .zip(&conv_voiced)
            .map(|(s, &v)| {
                let d = label_window(s, v, &p);
                (d.label, d.speaker)
            })
            .collect()
    };
    let no_vad = DecisionParams {
        min_voiced: 0.0,
        ..defaults
    };
    let conv_pair = scoring::cosine(&conv_enrolled[0], &conv_enrolled[1]);
    let with_pair = |p: DecisionParams| -> Vec<WindowLabel> {
        conv_scores
            .iter()
            .zip(&conv_voiced)
            .map(|(s, &v)| {
                let d = label_window_with(
                    s,
                    |i, j| scoring::cosine(&conv_enrolled[i], &conv_enrolled[j]),
                    v,
                    &p,
                );
                (d.label, d.speaker)
            })
            .collect()
    };
    let mut rules: Vec<(String, Vec<WindowLabel>)> = vec![
        ("(i) original: argmax, 0.62, no VAD".into(), original),
        (
            "(i') default threshold, no VAD, no overlap".into(),
            with(no_vad.without_overlap()),
        ),
        (
            "(ii) default threshold + VAD gate".into(),
            with(defaults.without_overlap()),
        ),
        (
            "(iii) + old overlap rule (all defaults)".into(),
            with(defaults),
        ),
    ];
    if let Some(p) = old_best {
        rules.push((
            format!(
                "(iii') + old overlap rule at its C2 selection ({:.2} / {:.2})",
                p.overlap_min, p.overlap_margin
            ),
            with(p),
        ));
    }
    rules.push((
        "(iv) + **pair-aware overlap rule** (label_window_with, all defaults)".into(),
        with_pair(defaults),
    ));
    let pair_rule = rules.len() - 1;
    let conventions: [(&str, Convention); 3] = [
        ("latest centre ≤ t", Convention::LatestCentre),
        ("nearest centre", Convention::NearestCentre),
        ("latest end ≤ t (causal)", Convention::LatestEnd),
    ];
    println!(
        "\n| rule | frame → window | single-speaker: right | single: overlap | single: wrong spk | \
         non-speech: false alarm | overlapped: overlap | overlapped: one of the 2 | overlapped: \
         unknown/silence |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for (ci, (cname, conv_kind)) in conventions.iter().enumerate() {
        for (rname, labels) in &rules {
            let (mut right, mut s_ov, mut s_wrong, mut fa, mut o_ov, mut o_one, mut o_none) =
                (0, 0, 0, 0, 0, 0, 0);
            for (i, r) in frame_ref.iter().enumerate() {
                let t = (i as f64 + 0.5) * FRAME_S;
                let (l, spk) = window_for(t, starts.len(), *conv_kind)
                    .map_or((Label::Silence, None), |w| labels[w]);
                match r.len() {
                    0 => fa += usize::from(matches!(l, Label::Speaker | Label::Overlap)),
                    1 => match l {
                        Label::Speaker if spk == Some(r[0]) => right += 1,
                        Label::Speaker => s_wrong += 1,
                        Label::Overlap => s_ov += 1,
                        _ => {}
                    },
                    _ => match l {
                        Label::Overlap => o_ov += 1,
                        Label::Speaker => o_one += 1,
                        _ => o_none += 1,
                    },
                }
            }
            println!(
                "| {rname} | {cname} | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% | {:.1}% |",
                pct(right, n_single),
                pct(s_ov, n_single),
                pct(s_wrong, n_single),
                pct(fa, n_none),
                pct(o_ov, n_both),
                pct(o_one, n_both),
                pct(o_none, n_both),
            );
        }
        if ci + 1 < conventions.len() {
            println!("| | | | | | | | | |");
        }
    }
    println!(
        "\noverlap grid on sample.wav (threshold and gate at the defaults, frame → latest centre):\n"
    );
    println!(
        "| overlap_min | margin | single-speaker frames: overlap | overlapped frames: overlap |"
    );
    println!("|---|---|---|---|");
    for &(mn, mg) in &grid {
        let labels = with(DecisionParams {
            overlap_min: mn,
            overlap_margin: mg,
            ..defaults
        });
        let (mut s_ov, mut o_ov) = (0, 0);
        for (i, r) in frame_ref.iter().enumerate() {
            let t = (i as f64 + 0.5) * FRAME_S;
            let is_ov = window_for(t, starts.len(), Convention::LatestCentre)
                .is_some_and(|w| labels[w].0 == Label::Overlap);
            match r.len() {
                0 => {}
                1 => s_ov += usize::from(is_ov),
                _ => o_ov += usize::from(is_ov),
            }
        }
        println!(
            "| {mn:.2} | {mg:.2} | {:.1}% | {:.1}% |",
            pct(s_ov, n_single),
            pct(o_ov, n_both)
        );
    }
    println!(
        "\npair-aware overlap grid on sample.wav (label_window_with; threshold and gate at the \
         defaults, frame → latest centre; enrolled pair cosine {conv_pair:.3}):\n"
    );
    println!(
        "| overlap_balance | overlap_fit | single-speaker frames: overlap | overlapped frames: overlap | non-speech frames: overlap |"
    );
    println!("|---|---|---|---|---|");
    for &(b, f) in &new_grid {
        let labels = with_pair(DecisionParams {
            overlap_balance: b,
            overlap_fit: f,
            ..defaults
        });
        let (mut s_ov, mut o_ov, mut n_ov) = (0, 0, 0);
        for (i, r) in frame_ref.iter().enumerate() {
            let t = (i as f64 + 0.5) * FRAME_S;
            let is_ov = window_for(t, starts.len(), Convention::LatestCentre)
                .is_some_and(|w| labels[w].0 == Label::Overlap);
            match r.len() {
                0 => n_ov += usize::from(is_ov),
                1 => s_ov += usize::from(is_ov),
                _ => o_ov += usize::from(is_ov),
            }
        }
        let tag = if (b - defaults.overlap_balance).abs() < 1e-4
            && (f - defaults.overlap_fit).abs() < 1e-4
        {
            " (**default**)"
        } else {
            ""
        };
        println!(
            "| {b:.2}{tag} | {f:.2} | {:.1}% | {:.1}% | {:.1}% |",
            pct(s_ov, n_single),
            pct(o_ov, n_both),
            pct(n_ov, n_none)
        );
    }
    println!(
        "\nrule (i) with a frame labelled by the latest window starting ≤ t − offset (offset 0.8 s = \
         latest centre, 1.6 s = latest end):\n"
    );
    println!("| offset s | single-speaker right | non-speech false alarm |");
    println!("|---|---|---|");
    for off10 in (0..=16).step_by(2) {
        let off = f64::from(off10) * 0.1;
        let (mut right, mut fa) = (0, 0);
        for (i, r) in frame_ref.iter().enumerate() {
            let t = (i as f64 + 0.5) * FRAME_S;
            let k = ((t - off) / (HOP_SAMPLES as f64 / SR as f64)).floor();
            if k < 0.0 {
                continue;
            }
            let (l, spk) = rules[0].1[(k as usize).min(starts.len() - 1)];
            match r.len() {
                0 => fa += usize::from(l == Label::Speaker),
                1 => right += usize::from(l == Label::Speaker && spk == Some(r[0])),
                _ => {}
            }
        }
        println!(
            "| {off:.1} | {:.1}% | {:.1}% |",
            pct(right, n_single),
            pct(fa, n_none)
        );
    }
    println!(
        "\ncosine between the two conversation enrollments: {:.3} (data/speakers pairs: {})",
        scoring::cosine(&conv_enrolled[0], &conv_enrolled[1]),
        {
            let mut c = Vec::new();
            for a in 0..enrolled.len() {
                for b in a + 1..enrolled.len() {
                    c.push(scoring::cosine(&enrolled[a], &enrolled[b]));
                }
            }
            c.sort_by(f32::total_cmp);
            format!("{:.2}–{:.2}", c[0], c[c.len() - 1])
        }
    );
    println!(
        "\nper window (voiced = fresh VAD per window; balance / fit of the two-speaker fit; labels \
         of rules (i) and (iv)):\n"
    );
    println!(
        "| start s | ref speech | ref speakers (frames) | voiced | voiced (stream) | {} | {} | balance | fit | (i) | (iv) |",
        names[0],
        names.get(1).map_or("", String::as_str)
    );
    println!("|---|---|---|---|---|---|---|---|---|---|---|");
    for (w, &s) in starts.iter().enumerate() {
        let (a, b) = (
            s as f64 / SR as f64,
            (s + WINDOW_SAMPLES) as f64 / SR as f64,
        );
        let mut counts = vec![0usize; names.len()];
        let mut both = 0;
        for (i, r) in frame_ref.iter().enumerate() {
            let t = (i as f64 + 0.5) * FRAME_S;
            if a <= t && t < b {
                r.iter().for_each(|&k| counts[k] += 1);
                both += usize::from(r.len() >= 2);
            }
        }
        let who: Vec<String> = names
            .iter()
            .zip(&counts)
            .filter(|(_, c)| **c > 0)
            .map(|(n, c)| format!("{n}:{c}"))
            .chain((both > 0).then(|| format!("both:{both}")))
            .collect();
        let show = |(l, spk): WindowLabel| match spk {
            Some(i) if l != Label::Unknown && l != Label::Silence => {
                format!("{} {}", l.as_str(), names[i])
            }
            _ => l.as_str().to_string(),
        };
        let fit = match conv_scores[w].as_slice() {
            &[x, y] => scoring::pair_fit(x.max(y), x.min(y), conv_pair)
                .map_or(String::from("– | –"), |f| {
                    format!("{:.2} | {:.3}", f.balance(), f.fit)
                }),
            _ => String::from("– | –"),
        };
        println!(
            "| {a:.1} | {:.0}% | {} | {:.2} | {:.2} | {:.3} | {} | {fit} | {} | {} |",
            100.0 * coverage[w],
            who.join(" "),
            conv_voiced[w],
            conv_voiced_stream[w],
            conv_scores[w][0],
            conv_scores[w]
                .get(1)
                .map_or(String::new(), |x| format!("{x:.3}")),
            show(rules[0].1[w]),
            show(rules[pair_rule].1[w]),
        );
    }
    println!(
        "\n[total {:.1} s on {} threads]",
        started.elapsed().as_secs_f32(),
        m.compute.threads()
    );
    Ok(())
}

/// An overlap rule under test.
#[derive(Debug, Clone, Copy)]
enum Rule {
    /// `label_window`: scores only.
    Scores(DecisionParams),
    /// `label_window_with`: scores and the enrolled pair's cosine.
    Pair(DecisionParams),
}

impl Rule {
    /// Labels a (speech) window from its scores against the enrolled set.
    fn label(&self, scores: &[f32], pair: impl Fn(usize, usize) -> f32) -> WindowDecision {
        match self {
            Rule::Scores(p) => label_window(scores, 1.0, p),
            Rule::Pair(p) => label_window_with(scores, pair, 1.0, p),
        }
    }
}

/// Overlap labels on the synthetic windows, pooled over enrolled sets: (n, overlap) pairs.
#[derive(Debug, Default)]
struct OverlapCounts {
    /// Enrolled sets evaluated.
    sets: usize,
    /// Per mixture level: (mixtures, labelled overlap, labelled overlap of the right pair).
    mix: [(usize, usize, usize); 3],
    single: (usize, usize),
    cohort: (usize, usize),
    turn: (usize, usize),
    /// The highest single-speaker overlap rate (%) of one set, and the set.
    worst_single: (f64, String),
}

/// The synthetic windows of sections C / C2 as scores against all enrolled speakers.
struct Corpus<'a> {
    /// The enrolled speakers' ids.
    names: Vec<&'a str>,
    /// Cosines between the enrolled embeddings.
    gram: &'a [Vec<f32>],
    /// (level index, speaker a, speaker b, scores).
    mixes: Vec<(usize, usize, usize, &'a [f32])>,
    /// (speaker, scores).
    singles: Vec<(usize, &'a [f32])>,
    cohort: Vec<&'a [f32]>,
    /// (first speaker, second speaker, scores).
    turns: Vec<(usize, usize, &'a [f32])>,
}

impl Corpus<'_> {
    /// Every enrolled set of size `k`, pooled.
    fn evaluate(&self, rule: &Rule, k: usize) -> OverlapCounts {
        let mut total = OverlapCounts::default();
        for set in subsets(self.gram.len(), k) {
            let c = self.evaluate_set(rule, &set);
            total.sets += 1;
            for l in 0..3 {
                total.mix[l].0 += c.mix[l].0;
                total.mix[l].1 += c.mix[l].1;
                total.mix[l].2 += c.mix[l].2;
            }
            for (t, x) in [
                (&mut total.single, c.single),
                (&mut total.cohort, c.cohort),
                (&mut total.turn, c.turn),
            ] {
                t.0 += x.0;
                t.1 += x.1;
            }
            if c.worst_single.0 > total.worst_single.0 || total.sets == 1 {
                total.worst_single = c.worst_single;
            }
        }
        total
    }

    /// One enrolled set (indices into the 6 enrolled speakers, ascending).
    fn evaluate_set(&self, rule: &Rule, set: &[usize]) -> OverlapCounts {
        let label = |scores: &[f32]| {
            let sub: Vec<f32> = set.iter().map(|&k| scores[k]).collect();
            let d = rule.label(&sub, |i, j| self.gram[set[i]][set[j]]);
            let pair = [d.speaker, d.second.map(|x| x.0)].map(|i| i.map(|i| set[i]));
            (d.label == Label::Overlap, pair)
        };
        let mut c = OverlapCounts {
            sets: 1,
            ..OverlapCounts::default()
        };
        for &(l, a, b, s) in &self.mixes {
            if set.contains(&a) && set.contains(&b) {
                let (ov, pair) = label(s);
                c.mix[l].0 += 1;
                c.mix[l].1 += usize::from(ov);
                c.mix[l].2 += usize::from(ov && pair.contains(&Some(a)) && pair.contains(&Some(b)));
            }
        }
        for &(spk, s) in &self.singles {
            if set.contains(&spk) {
                c.single.0 += 1;
                c.single.1 += usize::from(label(s).0);
            }
        }
        for &s in &self.cohort {
            c.cohort.0 += 1;
            c.cohort.1 += usize::from(label(s).0);
        }
        for &(f, sp, s) in &self.turns {
            if set.contains(&f) && set.contains(&sp) {
                c.turn.0 += 1;
                c.turn.1 += usize::from(label(s).0);
            }
        }
        let names: Vec<&str> = set.iter().map(|&k| self.names[k]).collect();
        c.worst_single = (pct(c.single.1, c.single.0), names.join("+"));
        c
    }
}

/// All subsets of `0..n` of size `k`, each ascending.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    if k == 0 {
        return vec![Vec::new()];
    }
    if k > n {
        return Vec::new();
    }
    // Those without n − 1, then those with it.
    let mut out = subsets(n - 1, k);
    for mut s in subsets(n - 1, k - 1) {
        s.push(n - 1);
        out.push(s);
    }
    out
}

/// A window's label and speaker (for `speaker` / `overlap`).
type WindowLabel = (Label, Option<usize>);

/// How a 10 ms frame at time t takes its label from the windows (start k × 0.5 s, 1.6 s long).
#[derive(Debug, Clone, Copy)]
enum Convention {
    /// The most recent window whose centre is ≤ t (a window speaks for the time from its centre
    /// until the next window's centre).
    LatestCentre,
    /// The window whose centre is nearest to t.
    NearestCentre,
    /// The most recent window that has ended by t: what a real-time worker can have emitted.
    LatestEnd,
}

/// The window that labels time `t`, or `None` before the first one applies.
fn window_for(t: f64, n_windows: usize, c: Convention) -> Option<usize> {
    let hop = HOP_SAMPLES as f64 / SR as f64;
    let len = WINDOW_SAMPLES as f64 / SR as f64;
    // Window k applies from k·hop + offset.
    let offset = match c {
        Convention::LatestCentre => len / 2.0,
        Convention::NearestCentre => len / 2.0 - hop / 2.0,
        Convention::LatestEnd => len,
    };
    let k = ((t - offset) / hop).floor();
    if k < 0.0 {
        // Nearest centre: the first window also covers everything before its centre.
        return matches!(c, Convention::NearestCentre).then_some(0);
    }
    Some((k as usize).min(n_windows - 1))
}

/// Every `(x, y)` of the two axes plus the current `default`, sorted, without duplicates.
fn grid_2d(xs: &[f32], ys: &[f32], default: (f32, f32)) -> Vec<(f32, f32)> {
    let mut grid: Vec<(f32, f32)> = xs
        .iter()
        .flat_map(|&x| ys.iter().map(move |&y| (x, y)))
        .chain([default])
        .collect();
    grid.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    grid.dedup_by(|a, b| (a.0 - b.0).abs() < 1e-4 && (a.1 - b.1).abs() < 1e-4);
    grid
}

/// The column of the "what each kind of window is labelled" table a decision falls in: 0
/// overlap, 1 one of the `true_voice`s, 2 someone else, 3 unknown or silence.
fn column(d: &WindowDecision, true_voice: impl Fn(usize) -> bool) -> usize {
    match (d.label, d.speaker) {
        (Label::Overlap, _) => 0,
        (Label::Speaker, Some(i)) if true_voice(i) => 1,
        (Label::Speaker, _) => 2,
        _ => 3,
    }
}
