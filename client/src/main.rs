//! `diglett-client`: enroll speakers, list and delete profiles, and stream a recording to a
//! Diglett gateway from the command line. The work is in the library, `diglett_client`.
//!
//! Exit codes: 0 success, 1 the server refused or failed, 2 bad usage or input, 3 the server
//! cannot be reached.

use std::io::IsTerminal;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use diglett_api::protocol::Options;
use diglett_client::{self as client, ClientError, Output, ServerArgs, StreamOptions};

/// Command-line client of a Diglett gateway
#[derive(Debug, Parser)]
#[command(name = "diglett-client", version)]
struct Cli {
    #[command(flatten)]
    server: ServerArgs,
    /// Print the server's JSON instead of text (for `stream`: every message, one per line).
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a profile from recordings (`--name`), or add recordings to one (`--to ID`).
    Enroll {
        /// Name of the new profile.
        #[arg(long, required_unless_present = "to", conflicts_with = "to")]
        name: Option<String>,
        /// Id of an existing profile to add the recordings to.
        #[arg(long)]
        to: Option<String>,
        /// Recordings (WAV, FLAC, MP3, Ogg/Vorbis), 1 to 16.
        #[arg(required = true, num_args = 1..=16)]
        files: Vec<PathBuf>,
    },
    /// List the profiles (`speakers rm ID…` deletes).
    Speakers {
        #[command(subcommand)]
        action: Option<SpeakersAction>,
    },
    /// Print the voice signature of one recording (`POST /embed`).
    Embed {
        /// The recording.
        file: PathBuf,
        /// A name echoed in the answer.
        #[arg(long)]
        name: Option<String>,
    },
    /// Stream a recording and show who speaks when.
    Stream {
        /// The recording (any supported format and rate; sent as 16 kHz mono).
        file: PathBuf,
        /// Profiles to listen for: names or ids, comma-separated.
        #[arg(long, required = true, value_delimiter = ',')]
        speakers: Vec<String>,
        /// Hop between windows (ms, 250–1600; server default 500).
        #[arg(long)]
        hop_ms: Option<u32>,
        /// Acceptance threshold on the cosine score (−1…1; server default 0.67).
        #[arg(long, allow_negative_numbers = true)]
        threshold: Option<f32>,
        /// Turn on the `overlap` label.
        #[arg(long)]
        overlap: bool,
        /// How far behind the newest audio the 10 ms timeline is decided (ms, 0–3000; server
        /// default 500): more is more accurate.
        #[arg(long)]
        latency_ms: Option<u32>,
        /// Speaker model: `ge2e` (server default) or `campp` (better on far-field and meeting
        /// audio; every profile must have a CAM++ embedding).
        #[arg(long, value_parser = parse_model)]
        model: Option<diglett_api::protocol::SpeakerModel>,
        /// Send as fast as the server keeps up instead of in real time.
        #[arg(long)]
        fast: bool,
        /// One line per turn and per window, no colours or line rewriting.
        #[arg(long)]
        plain: bool,
    },
}

#[derive(Debug, Subcommand)]
enum SpeakersAction {
    /// Delete profiles.
    Rm {
        /// Profile ids.
        #[arg(required = true)]
        ids: Vec<String>,
    },
}

fn main() {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("diglett-client: cannot start the runtime: {e}");
            std::process::exit(client::EXIT_SERVER);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("diglett-client: {e}");
        std::process::exit(e.exit_code());
    }
}

async fn run(cli: Cli) -> Result<(), ClientError> {
    let c = cli.server.client()?;
    match cli.command {
        Command::Enroll { name, to, files } => {
            let (profile, raw) = match (name, to) {
                (_, Some(id)) => c.add_samples(&id, &files).await?,
                (Some(name), None) => c.enroll(&name, &files).await?,
                (None, None) => {
                    return Err(ClientError::Usage("enroll needs --name or --to".into()));
                }
            };
            if cli.json {
                println!("{raw}");
                return Ok(());
            }
            println!(
                "{}  {}  {:.1} s of speech  verdict {}  ({} sample{})",
                profile.id,
                profile.name,
                profile.speech_seconds,
                profile.verdict,
                profile.samples,
                if profile.samples == 1 { "" } else { "s" }
            );
            for (path, f) in files.iter().zip(&profile.files) {
                println!(
                    "  {}: {}, {:.1} s of speech in {:.1} s, {:.1} dBFS",
                    path.display(),
                    f.verdict,
                    f.speech_seconds,
                    f.duration,
                    f.volume
                );
            }
            if profile.verdict != "ok" {
                eprintln!(
                    "warning: verdict {}: the profile may be weak; add clearer speech with `enroll --to {}`",
                    profile.verdict, profile.id
                );
            }
        }
        Command::Speakers { action: None } => {
            let (speakers, raw) = c.speakers().await?;
            if cli.json {
                println!("{raw}");
                return Ok(());
            }
            if speakers.is_empty() {
                println!("no speakers enrolled");
                return Ok(());
            }
            let w = speakers
                .iter()
                .map(|s| s.name.chars().count())
                .max()
                .unwrap_or(0)
                .max(4);
            println!(
                "{:<36}  {:<w$}  {:>8}  {:>7}  CREATED",
                "ID", "NAME", "SPEECH", "SAMPLES"
            );
            for s in &speakers {
                println!(
                    "{:<36}  {:<w$}  {:>6.1} s  {:>7}  {}",
                    s.id, s.name, s.speech_seconds, s.samples, s.created_at
                );
            }
        }
        Command::Speakers {
            action: Some(SpeakersAction::Rm { ids }),
        } => {
            for id in &ids {
                c.delete(id).await?;
                if !cli.json {
                    println!("deleted {id}");
                }
            }
        }
        Command::Embed { file, name } => println!("{}", c.embed(&file, name.as_deref()).await?),
        Command::Stream {
            file,
            speakers,
            hop_ms,
            threshold,
            overlap,
            latency_ms,
            model,
            fast,
            plain,
        } => {
            // Decode first: a bad file is the user's to fix before any network traffic.
            let pcm = client::decode_to_pcm(&file)?;
            let ids = c.resolve_speakers(&speakers).await?;
            let output = if cli.json {
                Output::Json
            } else if plain || !std::io::stdout().is_terminal() {
                Output::Plain
            } else {
                Output::Live
            };
            let opts = StreamOptions {
                options: Options {
                    hop_ms,
                    threshold,
                    min_voiced: None,
                    overlap: overlap.then_some(true),
                    latency_ms,
                    model,
                },
                fast,
                output,
            };
            client::stream(&c, &pcm, ids, opts, std::io::stdout(), std::io::stderr()).await?;
        }
    }
    Ok(())
}

/// A `--model` value.
fn parse_model(s: &str) -> Result<diglett_api::protocol::SpeakerModel, String> {
    diglett_api::protocol::SpeakerModel::parse(s)
        .ok_or_else(|| format!("unknown model {s:?} (ge2e or campp)"))
}
