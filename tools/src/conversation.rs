//! `diglett-eval conversation`: speaker attribution on a recorded conversation, through the
//! service.
//!
//! 1. Each RTTM speaker is enrolled (`POST /v1/speakers`) from their first
//!    [`DEFAULT_ENROLL_SECONDS`] of single-speaker speech in the recording
//!    ([`Reference::solo_spans`]), the way a user records a 5 s sample.
//! 2. The recording is streamed over the WebSocket with those profiles, in real time (a
//!    microphone) or `--fast`.
//! 3. Five timelines are scored every 10 ms against the RTTM ([`score_frames_for`]; a speaker
//!    with under [`MIN_ENROLL_SECONDS`] of solo speech is not enrolled, and their frames are
//!    right when labelled `unknown`):
//!    - **frame timeline**: the `timeline` runs of every `result` and of the summary, the
//!      service's frame-accurate answer (decided `latency_ms` behind the newest audio);
//!    - **raw windows**: each window's label from its centre to the next window's centre (the
//!      convention of `docs/turns.md`);
//!    - **smoothed turns**: each `turn` from its (backdated) start to the next;
//!    - **raw windows, live** / **smoothed turns, live**: each label only from the moment the
//!      client had it — the arrival time in stream time when paced in real time, else the end
//!      of the audio behind it ([`labels`]): what a live display shows.
//! 4. The delay of each label (when it was known − the stream time it labels) is reported.
//!
//! Profiles are deleted afterwards.

use std::path::{Path, PathBuf};

use crate::diarization::{FrameCounts, Reference, Span, score_frames_for, span_audio};
use diglett_api::protocol::{Options, ServerMessage, SpeakerRef};
use diglett_audio::{self as frontend, DecodeOptions};
use diglett_client::Client;
use diglett_schemas::Label;
use serde::{Deserialize, Serialize};

use crate::audio::{SAMPLE_RATE, pcm16, wav_bytes};
use crate::latency::{LatencyHistogram, LatencySummary, SecondsSummary, WINDOW_SAMPLES};
use crate::session::{self, Audio, Pacing, Plan, Record};

/// Seconds of single-speaker speech each speaker enrolls with (the product's ~5 s sample).
pub const DEFAULT_ENROLL_SECONDS: f64 = 5.0;
/// A speaker with less single-speaker speech than this in the recording is not enrolled (as a
/// participant who never gave a sample): their frames are right when labelled `unknown`.
pub const MIN_ENROLL_SECONDS: f64 = 1.0;

/// What to evaluate.
#[derive(Debug, Clone)]
pub struct Args {
    /// The recording (any format the service decodes).
    pub audio: PathBuf,
    /// Its RTTM reference.
    pub rttm: PathBuf,
    /// Only the first this many seconds (enrollment still comes from the whole recording).
    pub max_seconds: Option<f64>,
    /// Enrollment speech per speaker (s).
    pub enroll_seconds: f64,
    /// Pacing of the stream.
    pub pacing: Pacing,
    /// Session options (`hop_ms`, `threshold`, `min_voiced`, `overlap`).
    pub options: Options,
}

/// Why an evaluation (`conversation` or `speakers`) failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input (unreadable audio, RTTM or corpus, no single-speaker speech for a speaker,
    /// models that cannot load).
    #[error("{0}")]
    Input(String),
    /// The REST calls failed.
    #[error("{0}")]
    Client(#[from] diglett_client::ClientError),
    /// The session failed.
    #[error("session: {0}")]
    Session(#[from] session::SessionError),
}

impl Error {
    /// The tools' exit code for this failure, the same scheme as `diglett-client`'s (1 the server
    /// refused or failed, 2 bad usage or input, 3 the server cannot be reached).
    #[must_use]
    pub fn exit_code(&self) -> u8 {
        let code = match self {
            Self::Input(_) => diglett_client::EXIT_USAGE,
            Self::Client(c) => c.exit_code(),
            Self::Session(session::SessionError::Connect(_)) => diglett_client::EXIT_CONNECT,
            Self::Session(_) => diglett_client::EXIT_SERVER,
        };
        u8::try_from(code).unwrap_or(1)
    }
}

/// One reference speaker and their enrollment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Enrolled {
    /// RTTM name (also the profile's name).
    pub name: String,
    /// Profile id (empty: not enrolled, too little single-speaker speech).
    pub id: String,
    /// Seconds of the recording uploaded.
    pub upload_seconds: f64,
    /// Speech the service found in it.
    pub speech_seconds: f32,
    /// The service's verdict (`not enrolled` when the recording had too little of them).
    pub verdict: String,
}

impl Enrolled {
    /// Whether a profile was made.
    #[must_use]
    pub fn is_enrolled(&self) -> bool {
        !self.id.is_empty()
    }
}

/// One timeline's frame scores (shares 0–1).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Timeline {
    /// Which timeline.
    pub name: String,
    /// Single-speaker frames given to the right speaker.
    pub single_right: f64,
    /// … to another speaker.
    pub single_wrong: f64,
    /// … labelled overlap.
    pub single_overlap: f64,
    /// … labelled unknown or silence (missed).
    pub single_missed: f64,
    /// Non-speech frames given to a speaker or overlap.
    pub nonspeech_false_alarm: f64,
    /// Overlapped frames labelled overlap.
    pub overlap_as_overlap: f64,
    /// Overlapped frames given to one speaker.
    pub overlap_as_one: f64,
    /// (Single right + non-speech right) / (single + non-speech).
    pub accuracy: f64,
    /// Label changes in the timeline.
    pub label_changes: usize,
    /// The raw counts.
    pub counts: Counts,
}

/// [`FrameCounts`] in the JSON.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Counts {
    /// Single-speaker frames.
    pub single: usize,
    /// … right.
    pub right: usize,
    /// … wrong speaker.
    pub wrong: usize,
    /// … overlap.
    pub single_overlap: usize,
    /// Non-speech frames.
    pub nonspeech: usize,
    /// … given to a speaker or overlap.
    pub false_alarm: usize,
    /// Overlapped frames.
    pub overlapped: usize,
    /// … labelled overlap.
    pub overlapped_overlap: usize,
    /// … given to one of the overlapping speakers.
    pub overlapped_one: usize,
    /// Changes of the reference speaker set.
    pub reference_changes: usize,
    /// Single-speaker frames of speakers who were not enrolled.
    #[serde(default)]
    pub single_unenrolled: usize,
}

impl Timeline {
    fn new(name: &str, c: &FrameCounts) -> Self {
        let r = |n: usize, d: usize| crate::diarization::ratio(n, d);
        Self {
            name: name.to_owned(),
            single_right: c.single_accuracy(),
            single_wrong: r(c.wrong, c.single),
            single_overlap: r(c.single_overlap, c.single),
            single_missed: r(c.single - c.right - c.wrong - c.single_overlap, c.single),
            nonspeech_false_alarm: c.false_alarm_rate(),
            overlap_as_overlap: r(c.both_overlap, c.both),
            overlap_as_one: r(c.both_one, c.both),
            accuracy: c.accuracy(),
            label_changes: c.changes,
            counts: Counts {
                single: c.single,
                right: c.right,
                wrong: c.wrong,
                single_overlap: c.single_overlap,
                nonspeech: c.none,
                false_alarm: c.false_alarm,
                overlapped: c.both,
                overlapped_overlap: c.both_overlap,
                overlapped_one: c.both_one,
                reference_changes: c.ref_changes,
                single_unenrolled: c.single_unenrolled,
            },
        }
    }
}

/// The outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    /// The recording.
    pub audio: String,
    /// The reference.
    pub rttm: String,
    /// Seconds streamed.
    pub seconds: f64,
    /// `real-time` or `fast`.
    pub pacing: String,
    /// Hop (ms) the server used.
    pub hop_ms: u32,
    /// The options sent in `start`.
    pub options: Options,
    /// Who was enrolled, from what.
    pub speakers: Vec<Enrolled>,
    /// Window results received.
    pub windows: usize,
    /// Windows the server dropped.
    pub dropped: u64,
    /// Turns received.
    pub turns: usize,
    /// The scored timelines.
    pub timelines: Vec<Timeline>,
    /// Raw window labels: when known − the window's centre (s). In real time this includes
    /// the service's processing; with `--fast` it is the algorithmic part alone (0.8 s).
    pub raw_label_delay_s: SecondsSummary,
    /// Turns: when known − the turn's start (s).
    pub turn_label_delay_s: SecondsSummary,
    /// Window results: arrival − send time of the frame holding the window's last sample.
    pub result_latency_ms: LatencySummary,
}

/// A label's wire name as a [`Label`] (`None` for an unknown name).
pub fn parse_label(s: &str) -> Option<Label> {
    [
        Label::Speaker,
        Label::Unknown,
        Label::Overlap,
        Label::Silence,
    ]
    .into_iter()
    .find(|l| l.as_str() == s)
}

/// When each message was known, in stream seconds, and what it labels.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Labelled {
    /// The stream time from which the label holds (window centre, or turn start).
    pub from: f64,
    /// The stream time at which the client had it.
    pub known: f64,
    /// The label.
    pub label: Label,
    /// The speaker (index into the reference's names).
    pub speaker: Option<usize>,
}

/// The raw window labels and the turns of a session, in arrival order. `ids[i]` is the profile
/// id of reference speaker `i`; `real_time` says whether arrival times are stream times.
///
/// A label cannot be known before the audio behind it has been sent: a window's `end`, and
/// for a turn the end of the latest window received with it (a turn's own `end` is the
/// confirming window's centre + hop, 0.3 s short of that window's end at the default hop).
pub fn labels(record: &Record, ids: &[String], real_time: bool) -> (Vec<Labelled>, Vec<Labelled>) {
    let index = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| ids.iter().position(|x| x == id && !x.is_empty()))
    };
    let half = WINDOW_SAMPLES as f64 / f64::from(SAMPLE_RATE) / 2.0;
    let (mut raw, mut turns) = (Vec::new(), Vec::new());
    let mut audio_end = 0.0f64;
    for a in &record.messages {
        let (from, end, label, id) = match &a.msg {
            ServerMessage::Result(r) => (r.start + half, r.end, &r.label, &r.speaker_id),
            ServerMessage::Turn(t) => (t.start, t.end, &t.label, &t.speaker_id),
            _ => continue,
        };
        audio_end = audio_end.max(end);
        let l = Labelled {
            from,
            known: if real_time {
                record.stream_time(a.at).max(audio_end)
            } else {
                audio_end
            },
            label: parse_label(label).unwrap_or(Label::Unknown),
            speaker: index(id),
        };
        if matches!(a.msg, ServerMessage::Result(_)) {
            raw.push(l);
        } else {
            turns.push(l);
        }
    }
    (raw, turns)
}

/// The frame timeline of a session: every `result`'s `timeline` and the summary's tail, as
/// spans (each run from its start; `silence` after the last run).
pub fn frame_timeline(record: &Record, ids: &[String]) -> Vec<Span> {
    let index = |id: &Option<String>| {
        id.as_ref()
            .and_then(|id| ids.iter().position(|x| x == id && !x.is_empty()))
    };
    let mut spans = Vec::new();
    let mut end = 0.0f64;
    for a in &record.messages {
        let segments = match &a.msg {
            ServerMessage::Result(r) => &r.timeline,
            ServerMessage::Summary { timeline, .. } => timeline,
            _ => continue,
        };
        for s in segments {
            if s.start > end + 1e-9 {
                spans.push(Span {
                    start: end,
                    label: Label::Silence,
                    speaker: None,
                });
            }
            spans.push(Span {
                start: s.start,
                label: parse_label(&s.label).unwrap_or(Label::Unknown),
                speaker: index(&s.speaker_id),
            });
            end = end.max(s.end);
        }
    }
    spans.push(Span {
        start: end,
        label: Label::Silence,
        speaker: None,
    });
    spans
}

/// Spans from labels: from their labelled time, or (`live`) from when they were known.
pub fn timeline(labels: &[Labelled], live: bool) -> Vec<Span> {
    let mut spans: Vec<Span> = labels
        .iter()
        .map(|l| Span {
            start: if live { l.known } else { l.from },
            label: l.label,
            speaker: l.speaker,
        })
        .collect();
    // Arrival order is stream order for both; a stable sort keeps it for equal times.
    spans.sort_by(|a, b| a.start.total_cmp(&b.start));
    spans
}

/// Runs the evaluation against the gateway behind `client`.
pub async fn evaluate(client: &Client, args: &Args) -> Result<Report, Error> {
    let bytes = std::fs::read(&args.audio)
        .map_err(|e| Error::Input(format!("{}: {e}", args.audio.display())))?;
    let opts = DecodeOptions {
        max_seconds: f32::INFINITY,
    };
    let wav = frontend::decode_audio(&bytes, &opts)
        .map_err(|e| Error::Input(format!("{}: {e}", args.audio.display())))?;
    let reference = Reference::read(&args.rttm).map_err(|e| Error::Input(e.to_string()))?;
    if reference.names.is_empty() {
        return Err(Error::Input(format!(
            "{}: no SPEAKER lines",
            args.rttm.display()
        )));
    }

    let mut enrolled = Vec::new();
    let result = run(client, args, &wav, &reference, &mut enrolled).await;
    for e in enrolled.iter().filter(|e| e.is_enrolled()) {
        if let Err(err) = client.delete(&e.id).await {
            eprintln!(
                "warning: could not delete profile {} ({}): {err}",
                e.id, e.name
            );
        }
    }
    result
}

async fn run(
    client: &Client,
    args: &Args,
    wav: &[f32],
    reference: &Reference,
    enrolled: &mut Vec<Enrolled>,
) -> Result<Report, Error> {
    for (i, name) in reference.names.iter().enumerate() {
        let spans = reference.solo_spans(i, args.enroll_seconds);
        let audio = span_audio(wav, SAMPLE_RATE, &spans);
        let seconds = audio.len() as f64 / f64::from(SAMPLE_RATE);
        if seconds < MIN_ENROLL_SECONDS {
            eprintln!(
                "note: speaker {name} speaks alone for only {seconds:.1} s in the recording: not enrolled"
            );
            enrolled.push(Enrolled {
                name: name.clone(),
                id: String::new(),
                upload_seconds: seconds,
                speech_seconds: 0.0,
                verdict: "not enrolled".into(),
            });
            continue;
        }
        let (resp, _) = client
            .enroll_recordings(name, vec![(format!("{name}.wav"), wav_bytes(&audio))])
            .await?;
        enrolled.push(Enrolled {
            name: name.clone(),
            id: resp.id,
            upload_seconds: seconds,
            speech_seconds: resp.speech_seconds,
            verdict: resp.verdict,
        });
    }
    // By reference index; "" for a speaker who was not enrolled.
    let ids: Vec<String> = enrolled.iter().map(|e| e.id.clone()).collect();
    let mask: Vec<bool> = enrolled.iter().map(Enrolled::is_enrolled).collect();
    if !mask.contains(&true) {
        return Err(Error::Input(format!(
            "no speaker speaks alone for {MIN_ENROLL_SECONDS} s in the recording"
        )));
    }

    let samples = args.max_seconds.map_or(wav.len(), |s| {
        ((s * f64::from(SAMPLE_RATE)) as usize).min(wav.len())
    });
    let pcm: Vec<i16> = wav[..samples].iter().map(|&x| pcm16(x)).collect();
    let url = client.stream_url().map_err(Error::Client)?.to_string();
    let plan = Plan {
        url,
        speakers: ids
            .iter()
            .filter(|id| !id.is_empty())
            .cloned()
            .map(SpeakerRef::Id)
            .collect(),
        options: args.options,
        pacing: args.pacing,
    };
    let record = session::run(&plan, &Audio::whole(pcm)).await?;

    let seconds = samples as f64 / f64::from(SAMPLE_RATE);
    let frame_ref = reference.frames(Reference::n_frames(seconds));
    let real_time = args.pacing == Pacing::RealTime;
    let (raw, turns) = labels(&record, &ids, real_time);
    let frames = frame_timeline(&record, &ids);
    let mut timelines = vec![Timeline::new(
        "frame timeline",
        &score_frames_for(&frame_ref, &frames, &mask),
    )];
    timelines.extend(
        [
            ("raw windows", &raw, false),
            ("smoothed turns", &turns, false),
            ("raw windows, live", &raw, true),
            ("smoothed turns, live", &turns, true),
        ]
        .into_iter()
        .map(|(name, spans, live)| {
            Timeline::new(
                name,
                &score_frames_for(&frame_ref, &timeline(spans, live), &mask),
            )
        }),
    );
    let delay = |l: &[Labelled]| {
        SecondsSummary::of(&l.iter().map(|x| x.known - x.from).collect::<Vec<_>>())
    };
    let win = record.windowing();
    let mut hist = LatencyHistogram::default();
    for a in &record.messages {
        if let ServerMessage::Result(r) = &a.msg
            && let Some(d) = win.latency(r.seq, &record.frames_sent, a.at)
        {
            hist.record(d);
        }
    }
    Ok(Report {
        audio: display(&args.audio),
        rttm: display(&args.rttm),
        seconds,
        pacing: if real_time { "real-time" } else { "fast" }.into(),
        hop_ms: record.hop_ms,
        options: args.options,
        speakers: enrolled.clone(),
        windows: raw.len(),
        dropped: record.dropped(),
        turns: turns.len(),
        timelines,
        raw_label_delay_s: delay(&raw),
        turn_label_delay_s: delay(&turns),
        result_latency_ms: hist.summary(),
    })
}

fn display(p: &Path) -> String {
    p.display().to_string()
}

/// The report as Markdown (a table per timeline, then the delays).
pub fn markdown(r: &Report) -> String {
    let pct = |x: f64| format!("{:.1}%", 100.0 * x);
    let mut s = format!(
        "{} ({:.1} s, {}, hop {} ms): {} windows ({} dropped), {} turns; enrolled {}\n\n",
        r.audio,
        r.seconds,
        r.pacing,
        r.hop_ms,
        r.windows,
        r.dropped,
        r.turns,
        r.speakers
            .iter()
            .map(|e| format!(
                "{} ({:.1} s, {:.1} s speech, {})",
                e.name, e.upload_seconds, e.speech_seconds, e.verdict
            ))
            .collect::<Vec<_>>()
            .join(", ")
    );
    if let Some(t) = r.timelines.first() {
        s += &format!(
            "frames of 10 ms: {} single-speaker, {} non-speech, {} overlapped\n\n",
            t.counts.single, t.counts.nonspeech, t.counts.overlapped
        );
    }
    s += "| timeline | single-speaker: right | wrong speaker | overlap | missed | non-speech: false alarm | overlapped: overlap | overlapped: one speaker | accuracy (single + non-speech) | label changes |\n";
    s += "|---|---|---|---|---|---|---|---|---|---|\n";
    for t in &r.timelines {
        s += &format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} ({}) |\n",
            t.name,
            pct(t.single_right),
            pct(t.single_wrong),
            pct(t.single_overlap),
            pct(t.single_missed),
            pct(t.nonspeech_false_alarm),
            pct(t.overlap_as_overlap),
            pct(t.overlap_as_one),
            pct(t.accuracy),
            t.label_changes,
            t.counts.reference_changes
        );
    }
    let d = |x: &SecondsSummary| {
        format!(
            "mean {:.2} s, median {:.2} s, p90 {:.2} s, max {:.2} s",
            x.mean, x.p50, x.p90, x.max
        )
    };
    s += &format!(
        "\nlabel delay (known − labelled time): raw windows {}; turns {}\n",
        d(&r.raw_label_delay_s),
        d(&r.turn_label_delay_s)
    );
    let l = &r.result_latency_ms;
    s += &format!(
        "result latency (last sample sent → result): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms\n",
        l.p50, l.p99, l.max
    );
    s
}

/// Frame counts of the timeline `name` summed over `reports` (recordings without it add
/// nothing): the pooled figures of several recordings.
#[must_use]
pub fn pooled(reports: &[Report], name: &str) -> Counts {
    let mut p = Counts {
        single: 0,
        right: 0,
        wrong: 0,
        single_overlap: 0,
        nonspeech: 0,
        false_alarm: 0,
        overlapped: 0,
        overlapped_overlap: 0,
        overlapped_one: 0,
        reference_changes: 0,
        single_unenrolled: 0,
    };
    for c in reports
        .iter()
        .filter_map(|r| r.timelines.iter().find(|t| t.name == name))
        .map(|t| t.counts)
    {
        p.single += c.single;
        p.right += c.right;
        p.wrong += c.wrong;
        p.single_overlap += c.single_overlap;
        p.nonspeech += c.nonspeech;
        p.false_alarm += c.false_alarm;
        p.overlapped += c.overlapped;
        p.overlapped_overlap += c.overlapped_overlap;
        p.overlapped_one += c.overlapped_one;
        p.reference_changes += c.reference_changes;
        p.single_unenrolled += c.single_unenrolled;
    }
    p
}

/// Several recordings as one Markdown table: per recording (and pooled over all) the
/// single-speaker accuracy and non-speech false alarm of each timeline that is not live.
pub fn pooled_markdown(reports: &[Report]) -> String {
    const NAMES: [&str; 3] = ["frame timeline", "raw windows", "smoothed turns"];
    let pct = |n: usize, d: usize| {
        if d == 0 {
            "–".to_owned()
        } else {
            format!("{:.1}%", 100.0 * crate::diarization::ratio(n, d))
        }
    };
    let cells = |c: &Counts| {
        format!(
            "{} / {}",
            pct(c.right, c.single),
            pct(c.false_alarm, c.nonspeech)
        )
    };
    let mut s = String::from(
        "single-speaker frames right / non-speech frames given to a speaker; overlapped frames \
         named as one of their speakers (frame timeline)\n\n\
         | recording | speakers (enrolled) | single-speaker / non-speech / overlapped s |",
    );
    for n in NAMES {
        s += &format!(" {n} |");
    }
    s += " overlapped: one of them |";
    s += "\n|---|---|---|";
    s += &"---|".repeat(NAMES.len() + 1);
    s += "\n";
    let secs = |c: &Counts| {
        format!(
            "{:.1} / {:.1} / {:.1}",
            c.single as f64 / 100.0,
            c.nonspeech as f64 / 100.0,
            c.overlapped as f64 / 100.0
        )
    };
    for r in reports {
        let name = Path::new(&r.audio)
            .file_name()
            .map_or_else(|| r.audio.clone(), |f| f.to_string_lossy().into_owned());
        let enrolled = r.speakers.iter().filter(|e| e.is_enrolled()).count();
        let first = pooled(std::slice::from_ref(r), NAMES[0]);
        s += &format!(
            "| {name} | {} ({enrolled}) | {} |",
            r.speakers.len(),
            secs(&first)
        );
        for n in NAMES {
            s += &format!(" {} |", cells(&pooled(std::slice::from_ref(r), n)));
        }
        s += &format!(" {} |", pct(first.overlapped_one, first.overlapped));
        s += "\n";
    }
    let all = pooled(reports, NAMES[0]);
    let speakers: usize = reports.iter().map(|r| r.speakers.len()).sum();
    let enrolled: usize = reports
        .iter()
        .map(|r| r.speakers.iter().filter(|e| e.is_enrolled()).count())
        .sum();
    s += &format!("| **pooled** | {speakers} ({enrolled}) | {} |", secs(&all));
    for n in NAMES {
        s += &format!(" **{}** |", cells(&pooled(reports, n)));
    }
    s += &format!(" **{}** |", pct(all.overlapped_one, all.overlapped));
    s += "\n";
    s
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use diglett_api::protocol::{self, TurnMsg, WindowResultMsg};
    use session::Arrival;
    use std::time::{Duration, Instant};

    fn result(seq: u64, label: &str, id: Option<&str>) -> ServerMessage {
        let start = seq as f64 * 0.5;
        ServerMessage::Result(WindowResultMsg {
            seq,
            start,
            end: start + 1.6,
            label: label.into(),
            speaker: id.map(str::to_owned),
            speaker_id: id.map(str::to_owned),
            score: None,
            scores: Default::default(),
            speech: 1.0,
            volume: -20.0,
            lufs: -20.0,
            latency_ms: 1.0,
            timeline: Vec::new(),
        })
    }

    /// A session record at hop 0.5 s of these messages.
    fn record(t0: Instant, messages: Vec<Arrival>) -> Record {
        Record {
            session: "s".into(),
            hop_ms: 500,
            speakers: vec![],
            t0,
            frames_sent: vec![],
            samples_sent: 0,
            messages,
            close: None,
        }
    }

    fn turn(start: f64, end: f64, label: &str, id: Option<&str>) -> ServerMessage {
        ServerMessage::Turn(TurnMsg {
            label: label.into(),
            speaker: id.map(str::to_owned),
            speaker_id: id.map(str::to_owned),
            start,
            end,
        })
    }

    #[test]
    fn labels_and_live_timelines() {
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let msgs = vec![
            (1.65, result(0, "speaker", Some("id-a"))),
            (1.70, turn(0.0, 1.6, "speaker", Some("id-a"))),
            (2.15, result(1, "silence", None)),
            (2.62, result(2, "speaker", Some("id-b"))),
            (2.70, result(3, "speaker", Some("stranger"))),
            (2.75, turn(1.55, 2.6, "overlap", Some("id-b"))),
        ];
        let record = record(
            t0,
            msgs.into_iter()
                .map(|(s, msg)| Arrival { at: at(s), msg })
                .collect(),
        );
        let ids = ["id-a".to_owned(), "id-b".to_owned()];
        let (raw, turns) = labels(&record, &ids, true);
        assert_eq!(raw.len(), 4);
        assert_eq!(turns.len(), 2);
        assert!((raw[0].from - 0.8).abs() < 1e-9);
        assert!((raw[0].known - 1.65).abs() < 1e-3, "arrival in stream time");
        assert_eq!((raw[0].label, raw[0].speaker), (Label::Speaker, Some(0)));
        assert_eq!((raw[1].label, raw[1].speaker), (Label::Silence, None));
        assert_eq!(raw[2].speaker, Some(1));
        assert_eq!(raw[3].speaker, None, "an id that is no reference speaker");
        assert_eq!(
            (turns[1].label, turns[1].speaker),
            (Label::Overlap, Some(1))
        );
        assert!((turns[1].from - 1.55).abs() < 1e-9);
        // Without real-time pacing a label is known when its audio ends: a window's end, and
        // for a turn the end of the latest window before it (window 3, 3.1 s; not its own 2.6).
        let (raw_fast, turns_fast) = labels(&record, &ids, false);
        assert!((raw_fast[0].known - 1.6).abs() < 1e-9);
        assert!((turns_fast[0].known - 1.6).abs() < 1e-9);
        assert!((turns_fast[1].known - 3.1).abs() < 1e-9);
        assert!(
            (turns[1].known - 3.1).abs() < 1e-9,
            "never before its audio was sent"
        );
        // Timelines: from the labelled time, or from when known.
        let spans = timeline(&raw, false);
        assert_eq!(
            spans.iter().map(|s| s.start).collect::<Vec<_>>(),
            [0.8, 1.3, 1.8, 2.3]
        );
        let live = timeline(&turns, true);
        assert!((live[0].start - 1.7).abs() < 1e-3);
        // Scored against a reference of 3 s: speaker a (0) until 1.5 s, then b (1).
        let frame_ref: Vec<Vec<usize>> = (0..300)
            .map(|i| if i < 150 { vec![0] } else { vec![1] })
            .collect();
        let c = crate::diarization::score_frames(&frame_ref, &timeline(&turns, false));
        // Turn a from 0.0, overlap from 1.55: frames 0..155 a (150 right), 155.. overlap.
        assert_eq!(c.right, 150);
        assert_eq!(c.single_overlap, 145);
        // Frames 150..155 (centres 1.505–1.545) are b's but still labelled a.
        assert_eq!(c.wrong, 5);
        let t = Timeline::new("x", &c);
        assert!((t.single_right - 0.5).abs() < 1e-9);
        assert!((t.single_wrong - 5.0 / 300.0).abs() < 1e-9);
        assert_eq!(t.single_missed, 0.0);
        assert!(t.nonspeech_false_alarm.is_nan());
        assert_eq!(parse_label("overlap"), Some(Label::Overlap));
        assert_eq!(parse_label("nope"), None);
    }

    fn seg(start: f64, end: f64, label: &str, id: Option<&str>) -> protocol::Segment {
        protocol::Segment {
            start,
            end,
            label: label.into(),
            speaker: id.map(str::to_owned),
            speaker_id: id.map(str::to_owned),
        }
    }

    #[test]
    fn frame_timeline_joins_results_and_summary_and_pools() {
        let t0 = Instant::now();
        let mut r0 = result(0, "speaker", Some("id-a"));
        let mut r1 = result(1, "speaker", Some("id-b"));
        if let ServerMessage::Result(r) = &mut r0 {
            r.timeline = vec![
                seg(0.0, 0.7, "silence", None),
                seg(0.7, 1.1, "speaker", Some("id-a")),
            ];
        }
        if let ServerMessage::Result(r) = &mut r1 {
            r.timeline = vec![seg(1.1, 1.6, "speaker", Some("id-b"))];
        }
        let summary = ServerMessage::Summary {
            duration: 2.1,
            talk_time: Default::default(),
            windows: 2,
            dropped: 0,
            timeline: vec![seg(1.6, 2.1, "unknown", None)],
        };
        let record = record(
            t0,
            [r0, r1, summary]
                .into_iter()
                .map(|msg| Arrival { at: t0, msg })
                .collect(),
        );
        let ids = ["id-a".to_owned(), "id-b".to_owned()];
        let spans = frame_timeline(&record, &ids);
        let got: Vec<(f64, Label, Option<usize>)> = spans
            .iter()
            .map(|s| (s.start, s.label, s.speaker))
            .collect();
        assert_eq!(
            got,
            [
                (0.0, Label::Silence, None),
                (0.7, Label::Speaker, Some(0)),
                (1.1, Label::Speaker, Some(1)),
                (1.6, Label::Unknown, None),
                (2.1, Label::Silence, None),
            ]
        );
        // a speaks 0.5–1.1 s, b 1.1–2.1 s: a's first 0.2 s is missed, b's last 0.5 s unknown.
        let frame_ref: Vec<Vec<usize>> = (0..210)
            .map(|i| match i {
                50..110 => vec![0],
                110.. => vec![1],
                _ => vec![],
            })
            .collect();
        let c = score_frames_for(&frame_ref, &spans, &[true, true]);
        assert_eq!((c.single, c.right, c.none, c.false_alarm), (160, 90, 50, 0));
        let report = |audio: &str| Report {
            audio: audio.into(),
            rttm: String::new(),
            seconds: 2.1,
            pacing: "fast".into(),
            hop_ms: 500,
            options: Options::default(),
            speakers: vec![],
            windows: 2,
            dropped: 0,
            turns: 0,
            timelines: vec![Timeline::new("frame timeline", &c)],
            raw_label_delay_s: SecondsSummary::of(&[]),
            turn_label_delay_s: SecondsSummary::of(&[]),
            result_latency_ms: LatencyHistogram::default().summary(),
        };
        let reports = [report("x/a.wav"), report("b.wav")];
        let p = pooled(&reports, "frame timeline");
        assert_eq!((p.single, p.right, p.nonspeech), (320, 180, 100));
        assert_eq!(pooled(&reports, "raw windows").single, 0);
        let md = pooled_markdown(&reports);
        assert!(md.contains("| a.wav | 0 (0) | 1.6 / 0.5 / 0.0 | 5"), "{md}");
        assert!(md.contains("% / 0.0% | – / – |"), "{md}");
        assert!(md.contains("| **pooled** |"), "{md}");
    }
}
