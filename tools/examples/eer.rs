//! The 1.6 s-window speaker-verification protocol (see `diglett_tools::eval`) on a folder of
//! `<speaker>/<utterance>` audio files, with the in-process models.
//!
//! ```sh
//! cargo run --release -p diglett-tools --example eer -- ../shared/data/speakers [--threads N] [--json out.json]
//!     [--encoder ge2e|campp] [--cohort ../shared/data/cohort]
//! ```
//!
//! `--encoder campp` runs CAM++ (`CamPlusEncoder`) instead of GE2E. `--cohort <dir>` adds the
//! open-set half of docs/decision.md section A: every 1.6 s window of every file in `<dir>`
//! (voices never enrolled) scored against the enrolled speakers, its best score an impostor
//! trial; the open-set equal-error point and, per threshold, target windows rejected against
//! impostor windows accepted.
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use diglett_audio::{self as frontend, DecodeOptions};
use diglett_model::campp::CamPlusEncoder;
use diglett_model::compute::{Compute, device};
use diglett_model::encoder::Encoder;
use diglett_model::enroll;
use diglett_model::vad::Vad;
use diglett_tools::eval;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut threads, mut json) = (None, 1usize, None);
    let (mut campp, mut cohort) = (false, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--json" => json = args.next().map(PathBuf::from),
            "--encoder" => campp = args.next().as_deref() == Some("campp"),
            "--cohort" => cohort = args.next().map(PathBuf::from),
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let Some(dir) = dir else {
        eprintln!(
            "usage: eer <speakers-dir> [--threads N] [--json out.json] [--encoder ge2e|campp] [--cohort <dir>]"
        );
        return ExitCode::from(64);
    };
    match run(&dir, threads, json, campp, cohort) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(
    dir: &std::path::Path,
    threads: usize,
    json: Option<PathBuf>,
    campp: bool,
    cohort: Option<PathBuf>,
) -> Result<(), String> {
    let compute = Compute::new(threads).map_err(|e| e.to_string())?;
    let encoder = Encoder::pretrained().map_err(|e| e.to_string())?;
    let campp = if campp {
        Some(CamPlusEncoder::pretrained().map_err(|e| e.to_string())?)
    } else {
        None
    };
    let vad = Vad::pretrained(&device()).map_err(|e| e.to_string())?;
    let speakers = eval::load_speakers(dir).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let embed_windows = |wins: &[&[f32]]| -> Vec<Vec<f32>> {
        match &campp {
            Some(c) => c
                .embed_windows(&compute, wins)
                .into_iter()
                .map(Option::unwrap_or_default)
                .collect(),
            None => wins
                .iter()
                .map(|w| encoder.embed_window(&compute, w).to_vec())
                .collect(),
        }
    };
    let mut enrolled: Vec<Vec<f32>> = Vec::new();
    let r = eval::speaker_protocol(
        &speakers,
        |wav| enroll::preprocess(&vad, &compute, wav).speech,
        |wav| {
            let e = match &campp {
                Some(c) => c
                    .embed_windows(&compute, &[wav])
                    .pop()
                    .flatten()
                    .unwrap_or_default(),
                None => encoder.embed_utterance(&compute, wav).embedding.to_vec(),
            };
            enrolled.push(e.clone());
            e
        },
        &embed_windows,
    );
    println!(
        "encoder: {}",
        if campp.is_some() { "CAM++" } else { "GE2E" }
    );
    println!("speaker  enrolled_s  trials  identified");
    for (i, id) in r.speakers.iter().enumerate() {
        let (n, ok) = r.per_speaker[i];
        println!("{id:>7}  {:>10.2}  {n:>6}  {ok:>10}", r.enroll_seconds[i]);
    }
    println!(
        "\n{} trials ({} target, {} non-target scores) in {:.1} s",
        r.trials,
        r.target_scores.len(),
        r.nontarget_scores.len(),
        started.elapsed().as_secs_f32()
    );
    println!(
        "EER {:.2}% at cosine {:.3}; closed-set identification {:.2}%",
        100.0 * r.eer,
        r.eer_threshold,
        100.0 * r.identification
    );
    if let Some(cohort) = cohort {
        open_set(&cohort, &r.target_scores, &enrolled, &embed_windows)?;
    }
    if let Some(path) = json {
        let body = format!(
            "{{\"speakers\":{:?},\"trials\":{},\"eer\":{},\"eer_threshold\":{},\"identification\":{}}}\n",
            r.speakers, r.trials, r.eer, r.eer_threshold, r.identification
        );
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}

/// Windows in, one embedding each out.
type EmbedWindows<'a> = dyn Fn(&[&[f32]]) -> Vec<Vec<f32>> + 'a;

/// The open-set protocol: impostor windows from `cohort` against the enrolled speakers.
fn open_set(
    cohort: &std::path::Path,
    target: &[f32],
    enrolled: &[Vec<f32>],
    embed_windows: &EmbedWindows<'_>,
) -> Result<(), String> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(cohort)
        .map_err(|e| format!("{}: {e}", cohort.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut best = Vec::new();
    for f in &files {
        let bytes = std::fs::read(f).map_err(|e| format!("{}: {e}", f.display()))?;
        let wav = frontend::decode_audio(&bytes, &DecodeOptions::default())
            .map_err(|e| format!("{}: {e}", f.display()))?;
        let wav = eval::normalised(&wav);
        let wins: Vec<&[f32]> = eval::windows(&wav, eval::TRIAL_SAMPLES).collect();
        for e in embed_windows(&wins) {
            let s = diglett_decision::scoring::score_all(&e, enrolled);
            best.push(s.into_iter().fold(f32::NEG_INFINITY, f32::max));
        }
    }
    let (eer, thr) = eval::equal_error_rate(target, &best);
    println!(
        "\nopen set: {} impostor windows from {} files; EER (target windows rejected = impostor \
         windows accepted) {:.2}% at cosine {thr:.3}",
        best.len(),
        files.len(),
        100.0 * eer
    );
    println!(
        "\n| threshold | target windows rejected | impostor windows accepted |\n|---|---|---|"
    );
    let share = |n: usize, d: usize| 100.0 * n as f64 / d.max(1) as f64;
    for t in [
        0.25f32, 0.30, 0.35, 0.40, 0.45, 0.50, 0.55, 0.60, 0.67, 0.70,
    ] {
        println!(
            "| {t:.2} | {:.1}% | {:.1}% |",
            share(target.iter().filter(|&&s| s < t).count(), target.len()),
            share(best.iter().filter(|&&s| s >= t).count(), best.len())
        );
    }
    Ok(())
}
