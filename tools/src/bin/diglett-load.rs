//! `diglett-load`: N concurrent real-time sessions against a running gateway (latency,
//! throughput, drops, CPU and memory); `diglett-load report`: a sweep's table and plot. See the
//! crate doc.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use diglett_client::{EXIT_USAGE, ServerArgs};
use diglett_tools::{EXIT_OVER_LIMIT, load, report};

#[derive(Debug, Parser)]
#[command(
    name = "diglett-load",
    version,
    about = "Load generator for a running Diglett gateway",
    args_conflicts_with_subcommands = true
)]
struct Cli {
    #[command(flatten)]
    run: RunArgs,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Args)]
struct RunArgs {
    #[command(flatten)]
    server: ServerArgs,
    /// Concurrent sessions.
    #[arg(long, default_value_t = 10)]
    streams: usize,
    /// Seconds of audio each session streams (in real time).
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Session hop (ms).
    #[arg(long, default_value_t = 500)]
    hop_ms: u32,
    /// Speech to enroll and stream: `<dir>/<speaker>/<utterances>`.
    #[arg(long, default_value = "../shared/data/speakers")]
    speakers_dir: PathBuf,
    /// Profiles enrolled and used by every session.
    #[arg(long, default_value_t = 3)]
    profiles: usize,
    /// Session starts are spread over this many seconds.
    #[arg(long, default_value_t = 1.0)]
    stagger: f64,
    /// A process to watch (CPU, RSS): LABEL=PID, LABEL=NAME or NAME; repeatable. Label the
    /// gateway `gateway` and workers `worker` for the table.
    #[arg(long = "proc")]
    processes: Vec<String>,
    /// A Prometheus endpoint to diff over the run (the workers'); repeatable. The gateway's
    /// `/metrics` is always included.
    #[arg(long)]
    metrics: Vec<String>,
    /// Configuration name for the sweep's table (e.g. "1 worker").
    #[arg(long, default_value = "run")]
    label: String,
    /// The sessions' speaker model: `ge2e` (the server's default) or `campp`.
    #[arg(long, value_parser = parse_model)]
    model: Option<diglett_api::protocol::SpeakerModel>,
    /// Write the report as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Exit with status 10 when p99 latency is over this (ms), or any window is dropped or
    /// missing, or any session fails (the sweep stops a series there).
    #[arg(long)]
    limit_p99_ms: Option<f64>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Turns load reports (JSON files, or folders of them) into a Markdown table and a PNG plot.
    Report {
        /// JSON files or folders.
        #[arg(required = true)]
        inputs: Vec<PathBuf>,
        /// Write the table here (else print it).
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write the plot here.
        #[arg(long)]
        png: Option<PathBuf>,
        /// Plot title.
        #[arg(long, default_value = "diglett-load")]
        title: String,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Report {
            inputs,
            markdown,
            png,
            title,
        }) => report_command(&inputs, markdown.as_ref(), png.as_ref(), &title),
        None => run_command(&cli.run).await,
    }
}

fn report_command(
    inputs: &[PathBuf],
    markdown: Option<&PathBuf>,
    png: Option<&PathBuf>,
    title: &str,
) -> ExitCode {
    let result = report::read(inputs).and_then(|reports| {
        if reports.is_empty() {
            return Err("no load reports found".into());
        }
        let table = report::markdown(&reports);
        match markdown {
            Some(p) => std::fs::write(p, &table).map_err(|e| format!("{}: {e}", p.display()))?,
            None => println!("{table}"),
        }
        if let Some(p) = png {
            report::plot(&reports, p, title)?;
        }
        Ok(())
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("diglett-load report: {e}");
            ExitCode::from(EXIT_USAGE as u8)
        }
    }
}

async fn run_command(a: &RunArgs) -> ExitCode {
    let client = match a.server.client() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("diglett-load: {e}");
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    let mut metrics = vec![format!("{}/metrics", a.server.url.trim_end_matches('/'))];
    metrics.extend(a.metrics.iter().cloned());
    let args = load::Args {
        streams: a.streams,
        duration_s: a.duration,
        hop_ms: a.hop_ms,
        speakers_dir: a.speakers_dir.clone(),
        profiles: a.profiles,
        stagger_s: a.stagger,
        processes: a.processes.clone(),
        metrics,
        label: a.label.clone(),
        model: a.model,
    };
    let r = match load::run(&client, &args).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("diglett-load: {e}");
            return ExitCode::from(e.exit_code());
        }
    };
    print!("{}", load::text(&r));
    if let Some(path) = &a.json {
        let written = serde_json::to_string_pretty(&r)
            .map_err(|e| e.to_string())
            .and_then(|j| std::fs::write(path, j + "\n").map_err(|e| e.to_string()));
        if let Err(e) = written {
            eprintln!("diglett-load: {}: {e}", path.display());
            return ExitCode::from(EXIT_USAGE as u8);
        }
    }
    match a.limit_p99_ms {
        Some(limit) if r.over(limit) => ExitCode::from(EXIT_OVER_LIMIT as u8),
        _ => ExitCode::SUCCESS,
    }
}

/// A `--model` value.
fn parse_model(s: &str) -> Result<diglett_api::protocol::SpeakerModel, String> {
    diglett_api::protocol::SpeakerModel::parse(s)
        .ok_or_else(|| format!("unknown model {s:?} (ge2e or campp)"))
}
