//! `diglett-eval speakers`: the model's speaker protocol (`diglett_model::eval`) through the
//! service.
//!
//! - Enrollment: each speaker's protocol enrollment audio ([`eval::enrollment_audio`]: the
//!   first utterance, volume-normalised, silence-trimmed by the same VAD step as the model's
//!   evaluation, cut to 5 s), uploaded to `POST /v1/speakers`.
//! - Trials: every other utterance, volume-normalised, streamed (`--fast`) with every profile
//!   in one session, at hop 1.6 s so the service's windows are exactly the protocol's
//!   consecutive 1.6 s windows; `min_voiced` 0, so no window is gated to `silence` and every
//!   one is scored. Each result's `scores` is one trial.
//! - [`eval::report_from_scores`]: window EER and closed-set identification.
//!
//! One difference from the in-process protocol remains: the worker also normalises each
//! window's volume on its own (increase only), as it does in production.

use std::path::Path;
use std::sync::Arc;

use crate::eval::{self, Speaker, SpeakerReport, TRIAL_SAMPLES};
use diglett_api::protocol::{Options, ServerMessage, SpeakerModel, SpeakerRef};
use diglett_client::Client;
use diglett_model::compute::{Compute, device};
use diglett_model::vad::Vad;
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};

use crate::audio::{SAMPLE_RATE, pcm16, wav_bytes};
use crate::session::{self, Audio, Pacing, Plan};

/// Hop that makes the service's windows the protocol's consecutive trial windows (1.6 s).
const TRIAL_HOP_MS: u32 = 1_600;
/// One trial window: the true speaker's index and the score against each enrolled speaker.
type Trial = (usize, Vec<f32>);
/// Utterances streamed at once.
const CONCURRENT_SESSIONS: usize = 4;

/// Why the evaluation failed (the corpus could not be read, or the models for trimming could
/// not be loaded: [`Error::Input`]).
pub use crate::conversation::Error;

/// One speaker's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerSpeaker {
    /// Folder name.
    pub speaker: String,
    /// Enrollment audio uploaded (s).
    pub enroll_seconds: f32,
    /// The service's enrollment verdict.
    pub verdict: String,
    /// Trial windows.
    pub trials: usize,
    /// Correctly identified.
    pub identified: usize,
}

/// The outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The corpus folder.
    pub dir: String,
    /// Trial windows scored.
    pub trials: usize,
    /// Trial windows expected from the audio (a shortfall: windows the service dropped).
    pub expected_trials: usize,
    /// Window equal error rate (0–1).
    pub eer: f32,
    /// Cosine score at the EER point.
    pub eer_threshold: f32,
    /// Closed-set identification accuracy (0–1).
    pub identification: f32,
    /// Per speaker.
    pub speakers: Vec<PerSpeaker>,
}

impl Report {
    fn new(dir: &Path, r: &SpeakerReport, verdicts: Vec<String>, expected_trials: usize) -> Self {
        Self {
            dir: dir.display().to_string(),
            trials: r.trials,
            expected_trials,
            eer: r.eer,
            eer_threshold: r.eer_threshold,
            identification: r.identification,
            speakers: r
                .speakers
                .iter()
                .zip(&r.enroll_seconds)
                .zip(&r.per_speaker)
                .zip(verdicts)
                .map(|(((s, &e), &(trials, identified)), verdict)| PerSpeaker {
                    speaker: s.clone(),
                    enroll_seconds: e,
                    verdict,
                    trials,
                    identified,
                })
                .collect(),
        }
    }
}

/// Runs the protocol on `dir` against the gateway behind `client`, sessions of `model` (the
/// server's default when `None`).
pub async fn evaluate(
    client: &Client,
    dir: &Path,
    model: Option<SpeakerModel>,
) -> Result<Report, Error> {
    let speakers = eval::load_speakers(dir).map_err(|e| Error::Input(e.to_string()))?;
    let compute = Compute::new(1).map_err(|e| Error::Input(e.to_string()))?;
    let vad = Vad::pretrained(&device()).map_err(|e| Error::Input(e.to_string()))?;
    let mut ids = Vec::new();
    let result = run(client, dir, &speakers, &compute, &vad, &mut ids, model).await;
    crate::delete_profiles(client, &ids).await;
    result
}

async fn run(
    client: &Client,
    dir: &Path,
    speakers: &[Speaker],
    compute: &Compute,
    vad: &Vad,
    ids: &mut Vec<String>,
    model: Option<SpeakerModel>,
) -> Result<Report, Error> {
    let mut enroll_seconds = Vec::new();
    let mut verdicts = Vec::new();
    for s in speakers {
        let audio = eval::enrollment_audio(s, |wav| {
            diglett_model::enroll::preprocess(vad, compute, wav).speech
        });
        let (resp, _) = client
            .enroll_recordings(
                &format!("eval-{}", s.id),
                vec![(format!("{}.wav", s.id), wav_bytes(&audio))],
            )
            .await?;
        ids.push(resp.id);
        verdicts.push(resp.verdict);
        enroll_seconds.push(audio.len() as f32 / SAMPLE_RATE as f32);
    }
    let url = client.stream_url()?.to_string();
    let plan = Arc::new(Plan {
        url,
        speakers: ids.iter().cloned().map(SpeakerRef::Id).collect(),
        options: Options {
            hop_ms: Some(TRIAL_HOP_MS),
            min_voiced: Some(0.0),
            overlap: Some(false),
            threshold: None,
            latency_ms: None,
            model,
        },
        pacing: Pacing::Fast,
    });
    // (true speaker, utterance) for every trial utterance.
    let jobs: Vec<(usize, Vec<i16>)> = speakers
        .iter()
        .enumerate()
        .flat_map(|(si, s)| {
            s.utterances[1..].iter().map(move |(_, wav)| {
                (
                    si,
                    eval::normalised(wav).iter().map(|&x| pcm16(x)).collect(),
                )
            })
        })
        .collect();
    let expected_trials: usize = jobs.iter().map(|(_, pcm)| pcm.len() / TRIAL_SAMPLES).sum();
    let outcomes: Vec<Result<Vec<Trial>, Error>> = futures_util::stream::iter(jobs)
        .map(|(si, pcm)| {
            let plan = Arc::clone(&plan);
            let profiles = ids.clone();
            async move {
                let record = session::run(&plan, &Audio::whole(pcm)).await?;
                // Scores are keyed by the names in `ready`; put them in enrollment order.
                let names: Vec<Option<&str>> = profiles
                    .iter()
                    .map(|id| {
                        record
                            .speakers
                            .iter()
                            .find(|s| s.id == *id)
                            .map(|s| s.name.as_str())
                    })
                    .collect();
                let mut trials = Vec::new();
                for a in &record.messages {
                    if let ServerMessage::Result(r) = &a.msg {
                        let scores: Option<Vec<f32>> = names
                            .iter()
                            .map(|n| n.and_then(|n| r.scores.get(n).copied()))
                            .collect();
                        if let Some(scores) = scores {
                            trials.push((si, scores));
                        }
                    }
                }
                Ok(trials)
            }
        })
        .buffered(CONCURRENT_SESSIONS)
        .collect()
        .await;
    let mut trials = Vec::new();
    for o in outcomes {
        trials.extend(o?);
    }
    let report = eval::report_from_scores(speakers, enroll_seconds, trials);
    Ok(Report::new(dir, &report, verdicts, expected_trials))
}

/// The report as Markdown.
pub fn markdown(r: &Report) -> String {
    let mut s = format!(
        "{}: {} trial windows of 1.6 s ({} expected), window EER {:.2}% at cosine {:.3}, \
         identification {:.1}%\n\n| speaker | enrollment (s) | verdict | trials | identified |\n|---|---|---|---|---|\n",
        r.dir,
        r.trials,
        r.expected_trials,
        100.0 * r.eer,
        r.eer_threshold,
        100.0 * r.identification
    );
    for p in &r.speakers {
        s += &format!(
            "| {} | {:.1} | {} | {} | {} |\n",
            p.speaker, p.enroll_seconds, p.verdict, p.trials, p.identified
        );
    }
    s
}
