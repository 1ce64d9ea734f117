//! Diglett's evaluation and load tools, run against a running gateway (embedded or
//! distributed), so that "accurate" and "real time" are measurable with one command each.
//!
//! - `diglett-eval conversation <wav> <rttm>`: enrolls every RTTM speaker from their first 5 s of
//!   single-speaker speech (REST), streams the recording over the WebSocket (real time or
//!   `--fast`) and scores every 10 ms frame of the raw window labels and of the smoothed turns.
//! - `diglett-eval speakers <dir>`: the model's 1.6 s-window speaker protocol (EER,
//!   identification) through the service.
//! - `diglett-load`: N concurrent real-time sessions of real speech; per-result latency, results
//!   per second, dropped windows, CPU and memory of the service's processes;
//!   `diglett-load report` turns a sweep's JSON files into a table and a plot.
//! - `examples/`: the studies behind the defaults (`tune_decision`, `turns_eval`, `eer`), run
//!   on the in-process models.
//!
//! # Layout
//! - [`session`]: one WebSocket session, paced like a microphone (or as fast as the server
//!   keeps up), every frame's send time and every message's arrival time recorded.
//! - [`latency`]: which frame carried a window's last sample, and latency statistics.
//! - [`audio`]: 16-bit PCM and WAV for what the tools send and upload.
//! - [`eval`]: the speaker-verification protocol (EER, identification) on a folder of speech
//!   (moved from the model crate: research code lives with the tools).
//! - [`diarization`]: who-spoke-when references (RTTM) and 10 ms frame scoring of label
//!   timelines.
//! - [`conversation`]: `diglett-eval conversation`.
//! - [`speakers`]: `diglett-eval speakers`.
//! - [`load`]: `diglett-load` (the run).
//! - [`procstat`]: CPU and resident memory of processes, from `/proc`.
//! - [`prometheus`]: before/after deltas of the services' `/metrics`.
//! - [`report`]: `diglett-load report` (Markdown table, PNG plot).
//! - [`study`]: the in-process models and per-window steps the decision studies share.

pub mod audio;
pub mod conversation;
pub mod diarization;
pub mod eval;
pub mod latency;
pub mod load;
pub mod procstat;
pub mod prometheus;
pub mod report;
pub mod session;
pub mod speakers;
pub mod study;

/// Exit code when a run finished but went past the limits it was given (`--limit-p99-ms`):
/// the sweep stops its series there.
pub const EXIT_OVER_LIMIT: i32 = 10;

/// Deletes the profiles a tool enrolled for its run, warning (not failing) about any that cannot
/// be deleted: the run's result stands either way.
pub(crate) async fn delete_profiles(client: &diglett_client::Client, ids: &[String]) {
    for id in ids {
        if let Err(e) = client.delete(id).await {
            eprintln!("warning: could not delete profile {id}: {e}");
        }
    }
}
