//! The 1.6 s-window speaker-verification protocol (see `diglett_tools::eval`) on a folder of
//! `<speaker>/<utterance>` audio files, with the in-process models.
//!
//! ```sh
//! cargo run --release -p diglett-tools --example eer -- ../shared/data/speakers [--threads N] [--json out.json]
//! ```
#![allow(clippy::print_stdout)]

use std::path::PathBuf;
use std::process::ExitCode;

use diglett_model::compute::{Compute, device};
use diglett_model::encoder::Encoder;
use diglett_model::enroll;
use diglett_model::vad::Vad;
use diglett_tools::eval;

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (mut dir, mut threads, mut json) = (None, 1usize, None);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--threads" => threads = args.next().and_then(|v| v.parse().ok()).unwrap_or(1),
            "--json" => json = args.next().map(PathBuf::from),
            _ => dir = Some(PathBuf::from(a)),
        }
    }
    let Some(dir) = dir else {
        eprintln!("usage: eer <speakers-dir> [--threads N] [--json out.json]");
        return ExitCode::from(64);
    };
    match run(&dir, threads, json) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eer: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(dir: &std::path::Path, threads: usize, json: Option<PathBuf>) -> Result<(), String> {
    let compute = Compute::new(threads).map_err(|e| e.to_string())?;
    let encoder = Encoder::pretrained().map_err(|e| e.to_string())?;
    let vad = Vad::pretrained(&device()).map_err(|e| e.to_string())?;
    let speakers = eval::load_speakers(dir).map_err(|e| e.to_string())?;
    let started = std::time::Instant::now();
    let r = eval::speaker_protocol(
        &speakers,
        |wav| enroll::preprocess(&vad, &compute, wav).speech,
        |wav| encoder.embed_utterance(&compute, wav).embedding.to_vec(),
        |wins| {
            wins.iter()
                .map(|w| encoder.embed_window(&compute, w).to_vec())
                .collect()
        },
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
    if let Some(path) = json {
        let body = format!(
            "{{\"speakers\":{:?},\"trials\":{},\"eer\":{},\"eer_threshold\":{},\"identification\":{}}}\n",
            r.speakers, r.trials, r.eer, r.eer_threshold, r.identification
        );
        std::fs::write(&path, body).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    Ok(())
}
