//! `diglett-eval`: accuracy of a running gateway — on a recorded conversation with its RTTM
//! reference, or on a folder of speakers (window EER, identification). See the crate doc.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use diglett_api::protocol::{Options, SpeakerModel};
use diglett_client::{EXIT_USAGE, ServerArgs};
use diglett_tools::session::Pacing;
use diglett_tools::{conversation, speakers};

/// Accuracy of a running Diglett gateway
#[derive(Debug, Parser)]
#[command(name = "diglett-eval", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Also write the report as JSON here.
    #[arg(long, global = true)]
    json: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Speaker attribution on a conversation: enroll each RTTM speaker from their first 5 s
    /// alone, stream the recording, score every 10 ms frame.
    Conversation {
        /// The recording (WAV, FLAC, MP3, Ogg; any rate).
        audio: PathBuf,
        /// Its who-spoke-when reference (RTTM).
        rttm: PathBuf,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// `conversation` on several recordings (each with its RTTM beside it: `x.wav` → `x.rttm`),
    /// one after another: a row per recording and the pooled frames of all.
    Conversations {
        /// The recordings.
        #[arg(required = true)]
        audio: Vec<PathBuf>,
        #[command(flatten)]
        session: SessionArgs,
    },
    /// The 1.6 s-window speaker protocol (EER, identification) through the service.
    Speakers {
        /// `<dir>/<speaker>/<utterances>`, files in name order, the first one enrolls.
        #[arg(default_value = "../shared/data/speakers")]
        dir: PathBuf,
        /// `start` option model: `ge2e` (the server's default) or `campp`.
        #[arg(long, value_parser = parse_model)]
        model: Option<SpeakerModel>,
    },
}

/// A `--model` value.
fn parse_model(s: &str) -> Result<SpeakerModel, String> {
    SpeakerModel::parse(s).ok_or_else(|| format!("unknown model {s:?} (ge2e or campp)"))
}

/// How each recording is streamed.
#[derive(Debug, Clone, clap::Args)]
struct SessionArgs {
    /// Send as fast as the server keeps up instead of in real time.
    #[arg(long)]
    fast: bool,
    /// Stream only the first this many seconds.
    #[arg(long)]
    max_seconds: Option<f64>,
    /// Seconds of single-speaker speech each speaker enrolls with.
    #[arg(long, default_value_t = conversation::DEFAULT_ENROLL_SECONDS)]
    enroll_seconds: f64,
    /// `start` option hop_ms (250–1600; the server's default 500).
    #[arg(long)]
    hop_ms: Option<u32>,
    /// `start` option threshold (the server's default).
    #[arg(long)]
    threshold: Option<f32>,
    /// `start` option overlap: turn the overlap label on.
    #[arg(long)]
    overlap: bool,
    /// `start` option min_voiced (the VAD gate; the server's default).
    #[arg(long)]
    min_voiced: Option<f32>,
    /// `start` option latency_ms: how far behind the newest audio the frame timeline is
    /// decided (0–3000; the server's default 500).
    #[arg(long)]
    latency_ms: Option<u32>,
    /// `start` option model: `ge2e` (the server's default) or `campp`.
    #[arg(long, value_parser = parse_model)]
    model: Option<SpeakerModel>,
}

impl SessionArgs {
    fn args(&self, audio: PathBuf, rttm: PathBuf) -> conversation::Args {
        conversation::Args {
            audio,
            rttm,
            max_seconds: self.max_seconds,
            enroll_seconds: self.enroll_seconds,
            pacing: if self.fast {
                Pacing::Fast
            } else {
                Pacing::RealTime
            },
            options: Options {
                hop_ms: self.hop_ms,
                threshold: self.threshold,
                min_voiced: self.min_voiced,
                overlap: self.overlap.then_some(true),
                latency_ms: self.latency_ms,
                model: self.model,
            },
        }
    }
}

/// Reports an evaluation's failure and picks the exit code.
fn failed(e: &conversation::Error) -> ExitCode {
    eprintln!("diglett-eval: {e}");
    ExitCode::from(e.exit_code())
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let client = match cli.server.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("diglett-eval: {e}");
            return ExitCode::from(u8::try_from(e.exit_code()).unwrap_or(1));
        }
    };
    let (markdown, json) = match &cli.command {
        Command::Conversation {
            audio,
            rttm,
            session,
        } => {
            match conversation::evaluate(&client, &session.args(audio.clone(), rttm.clone())).await
            {
                Ok(r) => (conversation::markdown(&r), serde_json::to_string_pretty(&r)),
                Err(e) => return failed(&e),
            }
        }
        Command::Conversations { audio, session } => {
            let mut reports = Vec::new();
            for a in audio {
                let args = session.args(a.clone(), a.with_extension("rttm"));
                match conversation::evaluate(&client, &args).await {
                    Ok(r) => {
                        eprintln!("{}", conversation::markdown(&r));
                        reports.push(r);
                    }
                    Err(e) => return failed(&e),
                }
            }
            (
                conversation::pooled_markdown(&reports),
                serde_json::to_string_pretty(&reports),
            )
        }
        Command::Speakers { dir, model } => match speakers::evaluate(&client, dir, *model).await {
            Ok(r) => (speakers::markdown(&r), serde_json::to_string_pretty(&r)),
            Err(e) => return failed(&e),
        },
    };
    println!("{markdown}");
    if let Some(path) = &cli.json {
        let written = json
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("diglett-eval: {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE as u8);
        }
    }
    ExitCode::SUCCESS
}
