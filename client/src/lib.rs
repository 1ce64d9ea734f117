//! The library half of `diglett-client`: a REST client for enrollment and profiles, and a
//! streaming client that plays a recording into `/v1/stream` and renders what comes back.
//!
//! It depends on the API contract (`diglett-api`), the bus's PCM helpers (`diglett-schemas`) and
//! the audio decoder (`diglett-audio`), never on the server: no networks, no store.
//!
//! The binary (`src/main.rs`) only parses arguments and maps [`ClientError`] to
//! an exit code; everything that talks to the server lives here, so tests can drive it.

use std::collections::{HashMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use reqwest::{StatusCode, Url};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::{self, Message};

use diglett_api::ErrorBody;
use diglett_api::protocol::{
    AudioFormat, ClientMessage, Options, Segment, ServerMessage, SpeakerInfo, SpeakerRef, Start,
    WINDOW_MS,
};
use diglett_api::rest::{EnrollResponse, ProfileList, ProfileView};

/// Exit code for a server-side failure (an HTTP error, an `error` message, a bad close).
pub const EXIT_SERVER: i32 = 1;
/// Exit code for bad usage or input (arguments, unreadable audio, unknown speaker names).
pub const EXIT_USAGE: i32 = 2;
/// Exit code when the server cannot be reached.
pub const EXIT_CONNECT: i32 = 3;

// 16 kHz: the rate `decode_audio` delivers and the rate the client declares in `start`.
use diglett_schemas::SAMPLE_RATE;
/// 100 ms of 16-bit mono audio per binary frame: small enough for a smooth real-time feed,
/// large enough that frame overhead does not matter.
const FRAME_BYTES: usize = 3_200;
/// With `--fast`, stop sending while this many windows are unanswered. The gateway's
/// overload protection skips windows once `DIGLETT_SESSION_MAX_IN_FLIGHT` (default 8) are in
/// flight and no slot frees within a hop, so staying at that bound loses nothing.
const MAX_UNANSWERED_WINDOWS: u64 = 8;
/// How long a TCP connect may take before it counts as "cannot connect".
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Whole-request bound for REST calls: the gateway's own enrollment timeout is 30 s by default,
/// and an upload of several files may take a while on a slow link.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// ANSI foreground colours, one per speaker in `ready` order (green, blue, magenta, cyan,
/// yellow, red, then bright variants).
const COLOURS: [&str; 12] = [
    "32", "34", "35", "36", "33", "31", "92", "94", "95", "96", "93", "91",
];

/// Why a command failed; each variant carries the one line to print.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Bad arguments or input files.
    #[error("{0}")]
    Usage(String),
    /// The server could not be reached.
    #[error("{0}")]
    Connect(String),
    /// The server answered with an error, or closed the stream abnormally.
    #[error("{0}")]
    Server(String),
}

impl ClientError {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Usage(_) => EXIT_USAGE,
            Self::Connect(_) => EXIT_CONNECT,
            Self::Server(_) => EXIT_SERVER,
        }
    }
}

/// `e` and its sources on one line (reqwest's top-level message alone says little).
fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.contains(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}

/// Which gateway to talk to: the options every command-line tool shares (`diglett-client`,
/// `diglett-eval`, `diglett-load`), to `#[command(flatten)]` into their arguments.
#[derive(Debug, Clone, clap::Args)]
pub struct ServerArgs {
    /// The gateway's base URL (the WebSocket URL is derived: http → ws, https → wss).
    #[arg(
        long,
        env = "DIGLETT_URL",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub url: String,
    /// API key, sent as `Authorization: Bearer` (and `?token=` on the WebSocket).
    #[arg(long, env = "DIGLETT_API_KEY", hide_env_values = true, global = true)]
    pub key: Option<String>,
}

impl ServerArgs {
    /// A client for this gateway.
    ///
    /// # Errors
    /// As [`Client::new`].
    pub fn client(&self) -> Result<Client, ClientError> {
        Client::new(&self.url, self.key.clone())
    }
}

/// A connection to one gateway.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: Url,
    key: Option<String>,
}

impl Client {
    /// A client for the gateway at `url` (`http://` or `https://`), sending `key` as a bearer
    /// token when given.
    pub fn new(url: &str, key: Option<String>) -> Result<Self, ClientError> {
        let mut base = Url::parse(url)
            .map_err(|e| ClientError::Usage(format!("invalid --url {url:?}: {e}")))?;
        if !matches!(base.scheme(), "http" | "https") || base.host_str().is_none() {
            return Err(ClientError::Usage(format!(
                "invalid --url {url:?}: expected http://host[:port] or https://host[:port]"
            )));
        }
        // A base path ("/diglett" behind a proxy) keeps its segments when joined.
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if let Some(k) = &key
            && (k.is_empty() || k.chars().any(char::is_control))
        {
            return Err(ClientError::Usage(
                "invalid API key: empty or contains control characters".into(),
            ));
        }
        // reqwest is built without a bundled crypto provider; ring is already linked (NATS).
        // `Err` means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(REQUEST_TIMEOUT)
            .build()
            .map_err(|e| {
                ClientError::Usage(format!("cannot build the HTTP client: {}", chain(&e)))
            })?;
        Ok(Self { http, base, key })
    }

    fn url(&self, path: &str) -> Result<Url, ClientError> {
        self.base
            .join(path)
            .map_err(|e| ClientError::Usage(format!("bad path {path:?}: {e}")))
    }

    /// The WebSocket URL of `/v1/stream` (`ws`/`wss`, with `?token=` when a key is set).
    pub fn stream_url(&self) -> Result<Url, ClientError> {
        let mut url = self.url("v1/stream")?;
        let scheme = if url.scheme() == "https" { "wss" } else { "ws" };
        url.set_scheme(scheme).map_err(|()| {
            ClientError::Usage(format!("cannot derive a WebSocket URL from {url}"))
        })?;
        if let Some(k) = &self.key {
            url.query_pairs_mut().append_pair("token", k);
        }
        Ok(url)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let req = match &self.key {
            Some(k) => req.bearer_auth(k),
            None => req,
        };
        let resp = req.send().await.map_err(|e| {
            if e.is_connect() || e.is_timeout() {
                ClientError::Connect(format!("cannot reach {}: {}", self.base, chain(&e)))
            } else {
                ClientError::Server(format!("request to {} failed: {}", self.base, chain(&e)))
            }
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = resp.bytes().await.unwrap_or_default();
        Err(http_error(status, &body))
    }

    async fn json<T: serde::de::DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<(T, String), ClientError> {
        let resp = self.send(req).await?;
        let text = resp
            .text()
            .await
            .map_err(|e| ClientError::Server(format!("reading the response: {}", chain(&e))))?;
        let value = serde_json::from_str(&text)
            .map_err(|e| ClientError::Server(format!("unexpected response ({e}): {text}")))?;
        Ok((value, text))
    }

    /// `POST /v1/speakers`: a new profile from `files`. Also returns the raw JSON.
    pub async fn enroll(
        &self,
        name: &str,
        files: &[PathBuf],
    ) -> Result<(EnrollResponse, String), ClientError> {
        self.enroll_recordings(name, read_recordings(files)?).await
    }

    /// `POST /v1/speakers` from recordings in memory, `(file name, bytes)` each (the
    /// evaluation tools enroll from cuts of a longer recording).
    pub async fn enroll_recordings(
        &self,
        name: &str,
        recordings: Vec<(String, Vec<u8>)>,
    ) -> Result<(EnrollResponse, String), ClientError> {
        let form = recordings_form(recordings)?.text("name", name.to_owned());
        self.json(self.http.post(self.url("v1/speakers")?).multipart(form))
            .await
    }

    /// `POST /v1/speakers/{id}/samples`: more speech for a profile.
    pub async fn add_samples(
        &self,
        id: &str,
        files: &[PathBuf],
    ) -> Result<(EnrollResponse, String), ClientError> {
        let url = self.url(&format!("v1/speakers/{}/samples", path_segment(id)))?;
        self.json(self.http.post(url).multipart(audio_form(files)?))
            .await
    }

    /// `GET /v1/speakers`.
    pub async fn speakers(&self) -> Result<(Vec<ProfileView>, String), ClientError> {
        let (list, raw): (ProfileList, String) =
            self.json(self.http.get(self.url("v1/speakers")?)).await?;
        Ok((list.speakers, raw))
    }

    /// `DELETE /v1/speakers/{id}`.
    pub async fn delete(&self, id: &str) -> Result<(), ClientError> {
        let url = self.url(&format!("v1/speakers/{}", path_segment(id)))?;
        self.send(self.http.delete(url)).await.map(drop)
    }

    /// `POST /embed`: the signature of one recording, as the server's JSON text.
    pub async fn embed(&self, file: &Path, name: Option<&str>) -> Result<String, ClientError> {
        let mut form = audio_form(std::slice::from_ref(&file.to_path_buf()))?;
        if let Some(n) = name {
            form = form.text("name", n.to_owned());
        }
        let (_, raw): (serde_json::Value, String) = self
            .json(self.http.post(self.url("embed")?).multipart(form))
            .await?;
        Ok(raw)
    }

    /// Turns `--speakers` entries (profile ids or names) into profile ids, by one
    /// `GET /v1/speakers`. An id wins over a name; a name must match exactly one profile.
    pub async fn resolve_speakers(&self, wanted: &[String]) -> Result<Vec<String>, ClientError> {
        let (profiles, _) = self.speakers().await?;
        resolve(&profiles, wanted)
    }
}

/// Percent-encodes an id for use as one path segment (ids are UUIDs, but the user typed it).
fn path_segment(id: &str) -> String {
    id.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' || b == b'_' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// The one line for an HTTP error: the server's `{"error":{code,message}}` when it sent one.
fn http_error(status: StatusCode, body: &[u8]) -> ClientError {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(e) => ClientError::Server(format!(
            "server error {} {}: {}",
            status.as_u16(),
            e.error.code,
            e.error.message
        )),
        Err(_) => {
            let text = String::from_utf8_lossy(body);
            let text: String = text.trim().chars().take(200).collect();
            ClientError::Server(if text.is_empty() {
                format!("server error {status}")
            } else {
                format!("server error {status}: {text}")
            })
        }
    }
}

fn read_file(path: &Path) -> Result<Vec<u8>, ClientError> {
    std::fs::read(path)
        .map_err(|e| ClientError::Usage(format!("cannot read {}: {e}", path.display())))
}

fn audio_form(files: &[PathBuf]) -> Result<reqwest::multipart::Form, ClientError> {
    recordings_form(read_recordings(files)?)
}

/// Each file's name and bytes.
fn read_recordings(files: &[PathBuf]) -> Result<Vec<(String, Vec<u8>)>, ClientError> {
    files
        .iter()
        .map(|path| {
            let name = path
                .file_name()
                .map_or_else(|| "audio".into(), |n| n.to_string_lossy().into_owned());
            Ok((name, read_file(path)?))
        })
        .collect()
}

fn recordings_form(
    recordings: Vec<(String, Vec<u8>)>,
) -> Result<reqwest::multipart::Form, ClientError> {
    let mut form = reqwest::multipart::Form::new();
    for (name, bytes) in recordings {
        let part = reqwest::multipart::Part::bytes(bytes)
            .file_name(name)
            .mime_str("application/octet-stream")
            .map_err(|e| ClientError::Usage(format!("multipart: {e}")))?;
        form = form.part("file", part);
    }
    Ok(form)
}

/// See [`Client::resolve_speakers`].
pub fn resolve(profiles: &[ProfileView], wanted: &[String]) -> Result<Vec<String>, ClientError> {
    let mut ids = Vec::with_capacity(wanted.len());
    for w in wanted {
        let w = w.trim();
        if w.is_empty() {
            return Err(ClientError::Usage("empty name in --speakers".into()));
        }
        if profiles.iter().any(|p| p.id == w) {
            ids.push(w.to_owned());
            continue;
        }
        let named: Vec<&ProfileView> = profiles.iter().filter(|p| p.name == w).collect();
        match named.as_slice() {
            [one] => ids.push(one.id.clone()),
            [] => {
                let known: Vec<&str> = profiles.iter().map(|p| p.name.as_str()).collect();
                return Err(ClientError::Usage(if known.is_empty() {
                    format!("unknown speaker {w:?}: no profiles enrolled (see `enroll`)")
                } else {
                    format!(
                        "unknown speaker {w:?}: not a profile name or id (known: {})",
                        known.join(", ")
                    )
                }));
            }
            many => {
                let ids: Vec<&str> = many.iter().map(|p| p.id.as_str()).collect();
                return Err(ClientError::Usage(format!(
                    "ambiguous speaker {w:?}: {} profiles have this name; use an id ({})",
                    many.len(),
                    ids.join(", ")
                )));
            }
        }
    }
    Ok(ids)
}

/// Decodes any supported recording to 16 kHz mono 16-bit PCM (little-endian bytes).
pub fn decode_to_pcm(path: &Path) -> Result<Vec<u8>, ClientError> {
    let bytes = read_file(path)?;
    let opts = diglett_audio::DecodeOptions {
        // A conversation may be long; the client streams it, so there is no reason to cap it.
        max_seconds: f32::INFINITY,
    };
    let samples = diglett_audio::decode_audio(&bytes, &opts)
        .map_err(|e| ClientError::Usage(format!("{}: {e}", path.display())))?;
    Ok(diglett_schemas::pcm::from_f32(&samples))
}

/// How to play the recording and what to print.
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamOptions {
    /// The session options sent in `start`.
    pub options: Options,
    /// Send as fast as the server keeps up, instead of in real time.
    pub fast: bool,
    /// What to print.
    pub output: Output,
}

/// Output style of `stream`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Output {
    /// One live line rewritten in place, coloured per speaker (a terminal).
    #[default]
    Live,
    /// One line per turn and per window result.
    Plain,
    /// Every server message as one JSON line.
    Json,
}

/// What the stream ended with.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamOutcome {
    /// The `summary`, if the server sent one.
    pub summary: Option<ServerMessage>,
    /// The close code (and reason), if the server sent a close frame.
    pub close: Option<(u16, String)>,
}

/// Renders server messages to `out` (stdout) and warnings to `err` (stderr).
#[derive(Debug)]
struct Renderer<O, E> {
    output: Output,
    out: O,
    err: E,
    colours: HashMap<String, &'static str>,
    /// The smoothed speaker now (label or name), and since when.
    current: Option<(String, f64)>,
    /// The live line is on screen and must be cleared before printing a full line.
    live_line: bool,
    /// The frame timeline's newest runs (live mode draws the last [`STRIP_S`] of them).
    frames: VecDeque<Segment>,
}

/// Seconds of frame timeline the live line draws, and per character.
const STRIP_S: f64 = 3.0;
const STRIP_CELL_S: f64 = 0.05;

impl<O: Write, E: Write> Renderer<O, E> {
    fn new(output: Output, out: O, err: E) -> Self {
        Self {
            output,
            out,
            err,
            colours: HashMap::new(),
            current: None,
            live_line: false,
            frames: VecDeque::new(),
        }
    }

    /// Who a run is, as printed: the speaker's name, else the label.
    fn run_name(s: &Segment) -> &str {
        s.speaker.as_deref().unwrap_or(&s.label)
    }

    /// Plain mode: one `frames` line per result (and for the summary's tail) with each run's
    /// times, e.g. `frames   12.30–12.62 alice | 12.62–12.80 silence`.
    fn frames_line(&mut self, timeline: &[Segment]) {
        if timeline.is_empty() {
            return;
        }
        let runs: Vec<String> = timeline
            .iter()
            .map(|s| format!("{:.2}–{:.2} {}", s.start, s.end, Self::run_name(s)))
            .collect();
        let _ = writeln!(self.out, "frames   {}", runs.join(" | "));
    }

    /// Live mode: keeps the newest runs and draws the last [`STRIP_S`] as one character per
    /// [`STRIP_CELL_S`]: a speaker's coloured block, `?` unknown, `≈` overlap, `·` silence.
    fn strip(&mut self, timeline: &[Segment]) -> String {
        self.frames.extend(timeline.iter().cloned());
        let Some(end) = self.frames.back().map(|s| s.end) else {
            return String::new();
        };
        while self.frames.front().is_some_and(|s| s.end < end - STRIP_S) {
            self.frames.pop_front();
        }
        let cells = (STRIP_S / STRIP_CELL_S).round() as usize;
        let mut out = String::new();
        for c in 0..cells {
            let t = end - STRIP_S + (c as f64 + 0.5) * STRIP_CELL_S;
            let run = self.frames.iter().find(|s| s.start <= t && t < s.end);
            out.push_str(&match run {
                None => " ".to_owned(),
                Some(s) => match s.label.as_str() {
                    "speaker" => match self.colours.get(Self::run_name(s)) {
                        Some(col) => format!("\x1b[{col}m█\x1b[0m"),
                        None => "█".to_owned(),
                    },
                    "overlap" => "≈".to_owned(),
                    "unknown" => "?".to_owned(),
                    _ => "·".to_owned(),
                },
            });
        }
        format!("[{out}] ")
    }

    fn paint(&self, name: &str) -> String {
        match (self.output, self.colours.get(name)) {
            (Output::Live, Some(c)) => format!("\x1b[1;{c}m{name}\x1b[0m"),
            _ => name.to_owned(),
        }
    }

    fn clear_live(&mut self) {
        if self.live_line {
            let _ = write!(self.out, "\r\x1b[2K");
            self.live_line = false;
        }
    }

    /// Prints one message; `raw` is the server's text, printed as is in JSON mode.
    fn message(&mut self, msg: &ServerMessage, raw: &str) {
        if self.output == Output::Json {
            // The server sends compact JSON; a newline inside would break the line format.
            let line = if raw.contains('\n') {
                serde_json::to_string(msg).unwrap_or_else(|_| raw.replace('\n', " "))
            } else {
                raw.to_owned()
            };
            let _ = writeln!(self.out, "{line}");
            let _ = self.out.flush();
            return;
        }
        match msg {
            ServerMessage::Ready {
                speakers, hop_ms, ..
            } => self.ready(speakers, *hop_ms),
            ServerMessage::Result(r) => {
                let who = r.speaker.as_deref().unwrap_or(&r.label);
                let score = r.score.map_or_else(String::new, |s| format!(" {s:.2}"));
                if self.output == Output::Plain {
                    let _ = writeln!(
                        self.out,
                        "window {:>5}  {:>8.2}–{:<8.2} {:<8} {}{score}",
                        r.seq, r.start, r.end, r.label, who
                    );
                    self.frames_line(&r.timeline);
                } else {
                    let strip = self.strip(&r.timeline);
                    let now = match &self.current {
                        Some((name, since)) => format!("{} since {since:.1}s", self.paint(name)),
                        None => "…".into(),
                    };
                    let _ = write!(
                        self.out,
                        "\r\x1b[2K[{:>7.1}s] {strip}now: {now}   (window {}: {}{score}, speech {:.0}%, {:.0} dBFS)",
                        r.end,
                        r.seq,
                        self.paint(who),
                        r.speech * 100.0,
                        r.volume
                    );
                    self.live_line = true;
                }
            }
            ServerMessage::Turn(t) => {
                let who = t.speaker.clone().unwrap_or_else(|| t.label.clone());
                self.clear_live();
                let _ = writeln!(self.out, "turn   {:>8.2}s  {}", t.start, self.paint(&who));
                self.current = Some((who, t.start));
            }
            ServerMessage::Warning {
                code,
                dropped,
                total_dropped,
                message,
            } => {
                self.clear_live();
                let _ = writeln!(
                    self.err,
                    "warning: {code}: {message} ({dropped} dropped, {total_dropped} so far)"
                );
            }
            ServerMessage::Error { code, message, seq } => {
                self.clear_live();
                let at = seq.map_or_else(String::new, |s| format!(" (window {s})"));
                let _ = writeln!(self.err, "error: {code}{at}: {message}");
            }
            ServerMessage::Summary {
                duration,
                talk_time,
                windows,
                dropped,
                timeline,
            } => {
                self.clear_live();
                if self.output == Output::Plain {
                    self.frames_line(timeline);
                }
                let _ = writeln!(
                    self.out,
                    "summary: {duration:.1} s of audio, {windows} windows, {dropped} dropped"
                );
                let width = talk_time
                    .keys()
                    .map(|k| k.chars().count())
                    .max()
                    .unwrap_or(0);
                for (name, secs) in talk_time {
                    let share = if *duration > 0.0 {
                        100.0 * secs / duration
                    } else {
                        0.0
                    };
                    let pad = " ".repeat(width - name.chars().count());
                    let _ = writeln!(
                        self.out,
                        "  {}{pad}  {secs:>8.1} s  {share:>5.1}%",
                        self.paint(name)
                    );
                }
            }
        }
        let _ = self.out.flush();
    }

    fn ready(&mut self, speakers: &[SpeakerInfo], hop_ms: u32) {
        for (i, s) in speakers.iter().enumerate() {
            self.colours
                .insert(s.name.clone(), COLOURS[i % COLOURS.len()]);
        }
        let names: Vec<String> = speakers.iter().map(|s| self.paint(&s.name)).collect();
        let _ = writeln!(
            self.out,
            "streaming: {} (window {WINDOW_MS} ms, hop {hop_ms} ms)",
            names.join(", ")
        );
    }

    fn note(&mut self, line: &str) {
        self.clear_live();
        let _ = writeln!(self.err, "{line}");
    }
}

/// Windows the server owes for `samples` samples sent (one per hop once a window is full).
fn windows_for(samples: u64, hop_samples: u64) -> u64 {
    let window = u64::from(WINDOW_MS) * u64::from(SAMPLE_RATE) / 1000;
    if samples < window {
        0
    } else {
        (samples - window) / hop_samples.max(1) + 1
    }
}

fn close_of(frame: Option<&tungstenite::protocol::CloseFrame>) -> Option<(u16, String)> {
    frame.map(|f| (u16::from(f.code), f.reason.to_string()))
}

/// Streams `pcm` (16 kHz mono s16le) for `speakers` (profile ids), printing to `out`/`err`.
/// Ctrl-C sends `stop` early (the summary still comes).
pub async fn stream<O: Write, E: Write>(
    client: &Client,
    pcm: &[u8],
    speakers: Vec<String>,
    opts: StreamOptions,
    out: O,
    err: E,
) -> Result<StreamOutcome, ClientError> {
    let mut r = Renderer::new(opts.output, out, err);
    let url = client.stream_url()?;
    let (ws, _) = tokio_tungstenite::connect_async(url.as_str())
        .await
        .map_err(|e| ws_connect_error(&e, client))?;
    let (mut tx, mut rx) = ws.split();
    let start = ClientMessage::Start(Start {
        audio: AudioFormat::PCM_S16LE_16K_MONO,
        speakers: speakers.into_iter().map(SpeakerRef::Id).collect(),
        options: opts.options,
    });
    let text = serde_json::to_string(&start)
        .map_err(|e| ClientError::Usage(format!("cannot encode start: {e}")))?;
    tx.send(Message::Text(text.into()))
        .await
        .map_err(|e| ClientError::Connect(format!("sending start: {}", chain(&e))))?;

    let mut hop_samples = 0u64;
    let mut ready = false;
    let mut sent = 0usize;
    let mut stop_sent = false;
    let mut last_error: Option<String> = None;
    let mut answered = 0u64;
    let mut summary = None;
    let mut started_at = Instant::now();
    let mut interrupted = false;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);

    let close = loop {
        let samples_sent = (sent / 2) as u64;
        let unanswered = windows_for(samples_sent, hop_samples).saturating_sub(answered);
        let can_send = ready && !stop_sent && (!opts.fast || unanswered < MAX_UNANSWERED_WINDOWS);
        // Real time: frame n goes out at n × 100 ms after `ready`.
        let due = if opts.fast {
            Instant::now()
        } else {
            started_at + Duration::from_secs_f64(samples_sent as f64 / f64::from(SAMPLE_RATE))
        };
        tokio::select! {
            biased;
            _ = &mut ctrl_c => {
                if interrupted || !ready {
                    r.note("interrupted");
                    return Err(ClientError::Usage("interrupted".into()));
                }
                interrupted = true;
                // Re-arm, so that a second Ctrl-C quits without waiting for the summary.
                ctrl_c.set(tokio::signal::ctrl_c());
                r.note("interrupted: stopping (Ctrl-C again to quit)");
                if !stop_sent {
                    stop_sent = true;
                    send_stop(&mut tx).await?;
                }
            }
            msg = rx.next() => {
                let msg = match msg {
                    None => break None,
                    Some(Err(e)) => {
                        return Err(ClientError::Connect(format!("connection lost: {}", chain(&e))));
                    }
                    Some(Ok(m)) => m,
                };
                match msg {
                    Message::Text(t) => {
                        let parsed: ServerMessage = match serde_json::from_str(t.as_str()) {
                            Ok(m) => m,
                            Err(e) => {
                                r.note(&format!("warning: unreadable server message ({e}): {t}"));
                                continue;
                            }
                        };
                        r.message(&parsed, t.as_str());
                        match &parsed {
                            ServerMessage::Ready { hop_ms, .. } => {
                                ready = true;
                                hop_samples = u64::from(*hop_ms) * u64::from(SAMPLE_RATE) / 1000;
                                started_at = Instant::now();
                                if pcm.is_empty() {
                                    stop_sent = true;
                                    send_stop(&mut tx).await?;
                                }
                            }
                            ServerMessage::Result(w) => answered = answered.max(w.seq + 1),
                            ServerMessage::Warning { .. } => {}
                            ServerMessage::Error { code, message, seq } => {
                                if seq.is_some() {
                                    // A failed window counts as answered (it is in `dropped`).
                                    answered = answered.max(seq.map_or(0, |s| s + 1));
                                } else {
                                    last_error = Some(format!("{code}: {message}"));
                                }
                            }
                            ServerMessage::Summary { .. } => summary = Some(parsed.clone()),
                            ServerMessage::Turn(_) => {}
                        }
                    }
                    Message::Close(f) => break close_of(f.as_ref()),
                    _ => {}
                }
            }
            () = tokio::time::sleep_until(due), if can_send => {
                let end = (sent + FRAME_BYTES).min(pcm.len());
                tx.send(Message::Binary(pcm[sent..end].to_vec().into()))
                    .await
                    .map_err(|e| ClientError::Connect(format!("sending audio: {}", chain(&e))))?;
                sent = end;
                if sent >= pcm.len() {
                    stop_sent = true;
                    send_stop(&mut tx).await?;
                }
            }
        }
    };
    r.clear_live();
    let _ = r.out.flush();
    let outcome = StreamOutcome { summary, close };
    match (&outcome.close, &outcome.summary) {
        (Some((1000 | 1001, _)), Some(_)) => Ok(outcome),
        (Some((code, reason)), _) => {
            let why = last_error.unwrap_or_else(|| reason.clone());
            Err(ClientError::Server(format!(
                "the server closed the stream ({code}): {why}"
            )))
        }
        (None, _) => Err(ClientError::Server(match last_error {
            Some(e) => format!("the stream ended: {e}"),
            None => "the server ended the stream without a close frame".into(),
        })),
    }
}

async fn send_stop<S>(tx: &mut S) -> Result<(), ClientError>
where
    S: futures_util::Sink<Message, Error = tungstenite::Error> + Unpin,
{
    let stop = serde_json::to_string(&ClientMessage::Stop)
        .map_err(|e| ClientError::Usage(format!("cannot encode stop: {e}")))?;
    tx.send(Message::Text(stop.into()))
        .await
        .map_err(|e| ClientError::Connect(format!("sending stop: {}", chain(&e))))
}

fn ws_connect_error(e: &tungstenite::Error, client: &Client) -> ClientError {
    match e {
        tungstenite::Error::Http(resp) => {
            let body = resp.body().as_deref().unwrap_or_default();
            http_error(resp.status(), body)
        }
        tungstenite::Error::Io(_) | tungstenite::Error::Tls(_) => {
            ClientError::Connect(format!("cannot reach {}: {}", client.base, chain(e)))
        }
        other => ClientError::Server(format!("WebSocket handshake failed: {}", chain(other))),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn profile(id: &str, name: &str) -> ProfileView {
        ProfileView {
            id: id.into(),
            name: name.into(),
            speech_seconds: 5.0,
            samples: 1,
            created_at: String::new(),
            updated_at: String::new(),
            models: vec!["ge2e".into()],
            embedding: None,
            campp_embedding: None,
        }
    }

    #[test]
    fn names_and_ids_resolve() {
        let p = [
            profile("a1", "alice"),
            profile("b1", "bob"),
            profile("b2", "bob"),
        ];
        let ids = resolve(&p, &["alice".into(), "b2".into()]).unwrap();
        assert_eq!(ids, ["a1", "b2"]);
        let e = resolve(&p, &["bob".into()]).unwrap_err();
        assert!(
            e.to_string().contains("ambiguous") && e.to_string().contains("b1, b2"),
            "{e}"
        );
        let e = resolve(&p, &["zed".into()]).unwrap_err();
        assert!(e.to_string().contains("unknown speaker \"zed\""), "{e}");
        assert_eq!(e.exit_code(), EXIT_USAGE);
    }

    #[test]
    fn ws_url_is_derived_and_token_encoded() {
        let c = Client::new("https://example.com/base", Some("k y&=+/".into())).unwrap();
        assert_eq!(
            c.stream_url().unwrap().as_str(),
            "wss://example.com/base/v1/stream?token=k+y%26%3D%2B%2F"
        );
        let c = Client::new("http://127.0.0.1:8080", None).unwrap();
        assert_eq!(
            c.stream_url().unwrap().as_str(),
            "ws://127.0.0.1:8080/v1/stream"
        );
        assert_eq!(
            Client::new("ftp://x", None).unwrap_err().exit_code(),
            EXIT_USAGE
        );
    }

    #[test]
    fn window_count_follows_the_hop() {
        assert_eq!(windows_for(25_599, 8_000), 0);
        assert_eq!(windows_for(25_600, 8_000), 1);
        assert_eq!(windows_for(16 * 16_000, 8_000), 29);
    }

    #[test]
    fn errors_use_the_server_body() {
        let e = http_error(
            StatusCode::NOT_FOUND,
            br#"{"error":{"code":"not_found","message":"no such profile"}}"#,
        );
        assert_eq!(e.to_string(), "server error 404 not_found: no such profile");
        assert_eq!(path_segment("a/b c"), "a%2Fb%20c");
    }
}
