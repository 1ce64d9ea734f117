//! `diglett-load`: N concurrent real-time sessions against a running gateway.
//!
//! Speakers are enrolled once over REST (the first utterance of the first `--profiles`
//! speakers of `data/speakers`); then N sessions open, their starts spread over `--stagger`
//! seconds so that windows do not all fall due at once, each streaming `--duration` seconds
//! of real speech (every utterance of `data/speakers` end to end, each session from its own
//! offset) in 100 ms frames paced like a microphone, then `stop`.
//!
//! Measured: per-result latency (the frame holding the window's last sample sent → the result
//! received; an HDR histogram), the gateway's own `latency_ms`, results per second, windows
//! dropped (summaries; warnings) or missing, failed sessions; CPU and resident memory of the
//! watched processes (`/proc`, sampled every 0.5 s; this process too); and the deltas of the
//! services' `/metrics` over the run (per-stage timings).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::eval;
use diglett_api::protocol::{Options, ServerMessage, SpeakerRef};
use diglett_client::Client;
use serde::{Deserialize, Serialize};

use crate::audio::{SAMPLE_RATE, pcm16, wav_bytes};
use crate::latency::{LatencyHistogram, LatencySummary};
use crate::procstat::{self, ProcessReport, Watched};
use crate::prometheus::{self, Delta};
use crate::session::{self, Audio, Pacing, Plan, Record};

/// Longest enrollment recording uploaded per profile (s).
const ENROLL_MAX_SECONDS: usize = 10;
/// Process sampling interval.
const SAMPLE_EVERY: Duration = Duration::from_millis(500);
/// Distinct session errors kept in the report.
const MAX_ERRORS: usize = 10;

/// A run's settings.
#[derive(Debug, Clone)]
pub struct Args {
    /// Concurrent sessions.
    pub streams: usize,
    /// Seconds of audio per session.
    pub duration_s: f64,
    /// Session hop (ms).
    pub hop_ms: u32,
    /// `data/speakers`: enrollment and stream audio.
    pub speakers_dir: PathBuf,
    /// Profiles per session.
    pub profiles: usize,
    /// Session starts are spread over this many seconds.
    pub stagger_s: f64,
    /// Processes to watch (`LABEL=PID`, `LABEL=NAME` or `NAME`).
    pub processes: Vec<String>,
    /// Prometheus endpoints to diff over the run.
    pub metrics: Vec<String>,
    /// Name of the configuration (e.g. `1 worker`), for the sweep's table.
    pub label: String,
    /// The sessions' speaker model (`None`: the server's default).
    pub model: Option<diglett_api::protocol::SpeakerModel>,
}

/// Why a run could not happen: bad arguments or corpus, or enrollment failed (failed sessions are
/// measured, not errors). The tools share one error type.
pub use crate::conversation::Error;

/// One run's figures.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Configuration name.
    pub label: String,
    /// The gateway.
    pub url: String,
    /// Concurrent sessions.
    pub streams: usize,
    /// Seconds of audio per session.
    pub duration_s: f64,
    /// Hop (ms).
    pub hop_ms: u32,
    /// Starts spread over (s).
    pub stagger_s: f64,
    /// Sessions that ended with a summary.
    pub sessions_ok: usize,
    /// Sessions that failed.
    pub sessions_failed: usize,
    /// Distinct session errors (at most 10).
    pub errors: Vec<String>,
    /// Windows the audio sent makes (completed sessions).
    pub windows_expected: u64,
    /// Results received.
    pub results: u64,
    /// Windows the server reported dropped.
    pub dropped: u64,
    /// Windows neither answered nor reported dropped.
    pub missing: u64,
    /// `warning` messages.
    pub warnings: u64,
    /// From the first session's start to the last one's end (s).
    pub elapsed_s: f64,
    /// Results per second over `elapsed_s`.
    pub results_per_s: f64,
    /// Last sample of the window sent → result received.
    pub latency_ms: LatencySummary,
    /// The gateway's `latency_ms` (last sample arrived → result sent).
    pub gateway_latency_ms: LatencySummary,
    /// Watched processes.
    pub processes: Vec<ProcessReport>,
    /// (Gateway peak RSS − idle RSS) / streams, KiB.
    pub gateway_kib_per_stream: Option<f64>,
    /// `/metrics` deltas per endpoint.
    pub metrics: BTreeMap<String, Delta>,
    /// `/proc/loadavg` before the run.
    pub load_average_before: Option<[f64; 3]>,
    /// CPUs of this machine.
    pub cpus: usize,
}

impl Report {
    /// Whether the run went past the limits: p99 over `p99_ms`, any window dropped or missing,
    /// any session failed.
    pub fn over(&self, p99_ms: f64) -> bool {
        self.latency_ms.p99 > p99_ms
            || self.dropped > 0
            || self.missing > 0
            || self.sessions_failed > 0
    }
}

/// Every utterance of `speakers` end to end, as PCM.
fn corpus(speakers: &[eval::Speaker]) -> Vec<i16> {
    speakers
        .iter()
        .flat_map(|s| s.utterances.iter())
        .flat_map(|(_, wav)| wav.iter().map(|&x| pcm16(x)))
        .collect()
}

fn load_average() -> Option<[f64; 3]> {
    let text = std::fs::read_to_string("/proc/loadavg").ok()?;
    let v: Vec<f64> = text
        .split_whitespace()
        .take(3)
        .filter_map(|x| x.parse().ok())
        .collect();
    v.try_into().ok()
}

/// Runs the load against the gateway behind `client`.
pub async fn run(client: &Client, args: &Args) -> Result<Report, Error> {
    if args.streams == 0 || args.duration_s <= 0.0 {
        return Err(Error::Input(
            "--streams and --duration must be positive".into(),
        ));
    }
    let mut watched = vec![Watched {
        label: "diglett-load".into(),
        pid: std::process::id(),
    }];
    for spec in &args.processes {
        watched.extend(procstat::resolve(spec).map_err(Error::Input)?);
    }
    let speakers =
        eval::load_speakers(&args.speakers_dir).map_err(|e| Error::Input(e.to_string()))?;
    let pcm: Arc<[i16]> = corpus(&speakers).into();
    let mut ids = Vec::new();
    for s in speakers.iter().take(args.profiles.max(1)) {
        let wav = &s.utterances[0].1;
        let wav = &wav[..wav.len().min(ENROLL_MAX_SECONDS * SAMPLE_RATE as usize)];
        let (resp, _) = client
            .enroll_recordings(
                &format!("load-{}", s.id),
                vec![(format!("{}.wav", s.id), wav_bytes(wav))],
            )
            .await?;
        ids.push(resp.id);
    }
    let result = measure(client, args, watched, pcm, &ids).await;
    crate::delete_profiles(client, &ids).await;
    result
}

async fn measure(
    client: &Client,
    args: &Args,
    watched: Vec<Watched>,
    pcm: Arc<[i16]>,
    ids: &[String],
) -> Result<Report, Error> {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::Input(format!("HTTP client: {e}")))?;
    let mut before = BTreeMap::new();
    for url in &args.metrics {
        match prometheus::scrape(&http, url).await {
            Ok(m) => {
                before.insert(url.clone(), m);
            }
            Err(e) => eprintln!("warning: metrics: {e}"),
        }
    }
    let load_average_before = load_average();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(procstat::sample(watched, SAMPLE_EVERY, async {
        let _ = stop_rx.await;
    }));

    let plan = Arc::new(Plan {
        url: client.stream_url()?.to_string(),
        speakers: ids.iter().cloned().map(SpeakerRef::Id).collect(),
        options: Options {
            hop_ms: Some(args.hop_ms),
            model: args.model,
            ..Options::default()
        },
        pacing: Pacing::RealTime,
    });
    let samples = (args.duration_s * f64::from(SAMPLE_RATE)) as usize;
    let started = Instant::now();
    let tasks: Vec<_> = (0..args.streams)
        .map(|i| {
            let plan = Arc::clone(&plan);
            let audio = Audio {
                corpus: Arc::clone(&pcm),
                offset: i * pcm.len() / args.streams,
                samples,
            };
            let delay =
                Duration::from_secs_f64(args.stagger_s.max(0.0) * i as f64 / args.streams as f64);
            tokio::spawn(async move {
                tokio::time::sleep(delay).await;
                session::run(&plan, &audio).await
            })
        })
        .collect();
    let mut records: Vec<Result<Record, String>> = Vec::with_capacity(tasks.len());
    for t in tasks {
        records.push(match t.await {
            Ok(r) => r.map_err(|e| e.to_string()),
            Err(e) => Err(format!("task: {e}")),
        });
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    let _ = stop_tx.send(());
    let series = sampler.await.unwrap_or_default();

    let mut metrics = BTreeMap::new();
    for (url, b) in &before {
        match prometheus::scrape(&http, url).await {
            Ok(a) => {
                metrics.insert(url.clone(), prometheus::delta(b, &a));
            }
            Err(e) => eprintln!("warning: metrics: {e}"),
        }
    }
    let ticks = procstat::clock_ticks();
    let processes: Vec<ProcessReport> = series.iter().filter_map(|s| s.report(ticks)).collect();
    let gateway_kib_per_stream = processes
        .iter()
        .find(|p| p.label.starts_with("gateway"))
        .map(|p| (p.rss_peak_mib - p.rss_idle_mib) * 1024.0 / args.streams as f64);

    let mut latency = LatencyHistogram::default();
    let mut gateway_latency = LatencyHistogram::default();
    let (mut ok, mut failed, mut errors) = (0, 0, Vec::new());
    let (mut expected, mut results, mut dropped, mut warnings) = (0u64, 0u64, 0u64, 0u64);
    for r in &records {
        let rec = match r {
            Ok(rec) => rec,
            Err(e) => {
                failed += 1;
                if errors.len() < MAX_ERRORS && !errors.contains(e) {
                    errors.push(e.clone());
                }
                continue;
            }
        };
        ok += 1;
        let win = rec.windowing();
        expected += win.windows_in(rec.samples_sent);
        dropped += rec.dropped();
        for a in &rec.messages {
            match &a.msg {
                ServerMessage::Result(res) => {
                    results += 1;
                    if let Some(d) = win.latency(res.seq, &rec.frames_sent, a.at) {
                        latency.record(d);
                    }
                    gateway_latency
                        .record(Duration::from_secs_f64(res.latency_ms.max(0.0) / 1000.0));
                }
                ServerMessage::Warning { .. } => warnings += 1,
                _ => {}
            }
        }
    }
    Ok(Report {
        label: args.label.clone(),
        url: plan.url.clone(),
        streams: args.streams,
        duration_s: args.duration_s,
        hop_ms: args.hop_ms,
        stagger_s: args.stagger_s,
        sessions_ok: ok,
        sessions_failed: failed,
        errors,
        windows_expected: expected,
        results,
        dropped,
        missing: expected.saturating_sub(results + dropped),
        warnings,
        elapsed_s,
        results_per_s: results as f64 / elapsed_s.max(1e-9),
        latency_ms: latency.summary(),
        gateway_latency_ms: gateway_latency.summary(),
        processes,
        gateway_kib_per_stream,
        metrics,
        load_average_before,
        cpus: std::thread::available_parallelism().map_or(0, usize::from),
    })
}

/// A one-screen summary of a run.
pub fn text(r: &Report) -> String {
    let l = &r.latency_ms;
    let mut s = format!(
        "{} — {} streams × {:.0} s (hop {} ms): {} results ({:.1}/s), {} dropped, {} missing, \
         {} failed sessions\nlatency (last sample sent → result): p50 {:.1} ms, p90 {:.1} ms, \
         p99 {:.1} ms, max {:.1} ms; gateway's own p50 {:.1} ms, p99 {:.1} ms\n",
        r.label,
        r.streams,
        r.duration_s,
        r.hop_ms,
        r.results,
        r.results_per_s,
        r.dropped,
        r.missing,
        r.sessions_failed,
        l.p50,
        l.p90,
        l.p99,
        l.max,
        r.gateway_latency_ms.p50,
        r.gateway_latency_ms.p99
    );
    for p in &r.processes {
        s += &format!(
            "{} (pid {}): CPU {:.0}% (peak {:.0}%), RSS idle {:.1} MiB, mean {:.1} MiB, peak {:.1} MiB\n",
            p.label,
            p.pid,
            p.cpu_percent,
            p.cpu_percent_peak,
            p.rss_idle_mib,
            p.rss_mean_mib,
            p.rss_peak_mib
        );
    }
    if let Some(k) = r.gateway_kib_per_stream {
        s += &format!("gateway memory per stream: {k:.0} KiB\n");
    }
    for e in &r.errors {
        s += &format!("session error: {e}\n");
    }
    s
}
