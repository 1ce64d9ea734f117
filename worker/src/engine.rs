//! The inference side: models, micro-batching, and per-window / per-enrollment processing.
//!
//! One dedicated OS thread owns the queue of accepted jobs and runs every job on the model's
//! [`Compute`] pool, so the async runtime never blocks on inference. Windows that arrive
//! together are processed as one batch: the VAD runs for all of them in lockstep, and the
//! windows that pass the VAD gate go through the encoder as one `[batch, 160, 40]` tensor.
//! Every window's result depends only on that window ([`process_windows`] is tested to give
//! the same output batched and one by one). What a window goes through is
//! `diglett_model::pipeline`; this module only schedules it.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use diglett_decision::scoring::{DecisionParams, WindowDecision};
use diglett_model::compute::Compute;
use diglett_model::pipeline::{self, WindowJob};
pub use diglett_model::pipeline::{ModelError, Models};
use diglett_schemas::EMBEDDING_DIM;
use tokio::sync::oneshot;

use crate::metrics::Metrics;

/// Loudness as the pipeline reports it.
pub use diglett_audio::loudness::Loudness;

/// One window to process: 1.6 s of 16 kHz audio and what to score it against.
#[derive(Debug, Clone)]
pub struct WindowInput {
    /// Exactly `WINDOW_SAMPLES` samples, as received (not normalised).
    pub samples: Vec<f32>,
    /// The model the session runs.
    pub model: pipeline::Model,
    /// Enrolled embeddings of that model, in the request's order.
    pub speakers: Vec<Vec<f32>>,
    /// The decision parameters.
    pub params: DecisionParams,
    /// When the worker received the window (for queue-wait).
    pub received: Instant,
    /// When nobody waits for the result any more (the request's `expires_at_unix_ms`): a
    /// window still queued then is not computed, and its reply is dropped.
    pub deadline: Option<Instant>,
}

/// A window was not computed: its deadline would pass before its batch could finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Expired;

/// What [`process_windows`] found for one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowOutput {
    /// The label and the chosen speaker.
    pub decision: WindowDecision,
    /// Cosine score per enrolled speaker (empty when the VAD gate closed).
    pub scores: Vec<f32>,
    /// Mean Silero speech probability.
    pub speech_mean: f32,
    /// Fraction of 32 ms chunks at probability ≥ 0.5.
    pub voiced_fraction: f32,
    /// Loudness as received.
    pub loudness: Loudness,
    /// Silero's speech probability per 32 ms chunk.
    pub chunk_speech: Vec<f32>,
    /// Seconds the batch took.
    pub processing: Duration,
    /// Seconds from receipt to the batch's start.
    pub queue_wait: Duration,
    /// Windows in the batch.
    pub batch_size: usize,
}

/// Processes a batch of windows through [`pipeline::analyze_windows`]. Each window's decision,
/// scores, speech and loudness depend only on that window; only the timing fields reflect the
/// batch.
pub fn process_windows(
    models: &Models,
    compute: &Compute,
    jobs: &[WindowInput],
) -> Vec<WindowOutput> {
    let started = Instant::now();
    let pipeline_jobs: Vec<WindowJob<'_>> = jobs
        .iter()
        .map(|j| WindowJob {
            samples: &j.samples,
            model: j.model,
            speakers: &j.speakers,
            params: &j.params,
        })
        .collect();
    let analyses = pipeline::analyze_windows(models, compute, &pipeline_jobs);
    let processing = started.elapsed();
    analyses
        .into_iter()
        .zip(jobs)
        .map(|(a, job)| WindowOutput {
            decision: a.decision,
            scores: a.scores,
            speech_mean: a.speech_mean,
            voiced_fraction: a.voiced_fraction,
            loudness: a.loudness,
            chunk_speech: a.chunk_speech,
            processing,
            queue_wait: started.saturating_duration_since(job.received),
            batch_size: jobs.len(),
        })
        .collect()
}

/// What [`process_enrollment`] found.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrollmentOutput {
    /// The GE2E embedding, `None` without speech.
    pub embedding: Option<[f32; EMBEDDING_DIM]>,
    /// The CAM++ embedding, `None` without speech.
    pub campp_embedding: Option<Vec<f32>>,
    /// Seconds of speech kept after trimming.
    pub speech_seconds: f32,
    /// Seconds received.
    pub duration_seconds: f32,
    /// Loudness as received.
    pub loudness: Loudness,
    /// Share of samples at full scale.
    pub clipped_fraction: f32,
    /// Time in the inference thread.
    pub processing: Duration,
}

/// Embeds enrollment audio ([`pipeline::analyze_enrollment`]), timed.
pub fn process_enrollment(models: &Models, compute: &Compute, samples: &[f32]) -> EnrollmentOutput {
    let started = Instant::now();
    let a = pipeline::analyze_enrollment(models, compute, samples);
    EnrollmentOutput {
        embedding: a.embedding,
        campp_embedding: a.campp_embedding,
        speech_seconds: a.speech_seconds,
        duration_seconds: a.duration_seconds,
        loudness: a.loudness,
        clipped_fraction: a.clipped_fraction,
        processing: started.elapsed(),
    }
}

/// A job for the inference thread.
#[derive(Debug)]
enum Job {
    Window(WindowInput, oneshot::Sender<Result<WindowOutput, Expired>>),
    Enroll(Vec<f32>, oneshot::Sender<EnrollmentOutput>),
}

/// The inference thread is gone (only after shutdown) or its queue is full (a bug: the
/// semaphores keep it below capacity).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the inference engine is not accepting work")]
pub struct EngineUnavailable;

/// Handle to the inference thread. Cloning shares it; the thread exits when every handle is
/// dropped and its queue is empty.
#[derive(Debug, Clone)]
pub struct Engine {
    tx: SyncSender<Job>,
}

/// Settings of the batcher.
#[derive(Debug, Clone, Copy)]
pub struct BatchSettings {
    /// Most windows per batch.
    pub max_batch: usize,
    /// Longest wait for more windows once one is queued.
    pub max_wait: Duration,
    /// Queue capacity (≥ the permits handed out for windows and enrollments together).
    pub capacity: usize,
}

/// Resolves when the inference thread has ended, normally (every [`Engine`] dropped) or not.
#[derive(Debug)]
pub struct EngineExit(oneshot::Receiver<()>);

impl EngineExit {
    /// Waits for the inference thread to end.
    pub async fn wait(&mut self) {
        // The sender is never used: it is dropped when the thread ends, even by unwinding.
        let _ = (&mut self.0).await;
    }
}

impl Engine {
    /// Starts the inference thread.
    pub fn start(
        models: Arc<Models>,
        compute: Compute,
        settings: BatchSettings,
        metrics: Arc<Metrics>,
    ) -> std::io::Result<(Self, EngineExit)> {
        let (tx, rx) = std::sync::mpsc::sync_channel(settings.capacity.max(1));
        let (exit_tx, exit_rx) = oneshot::channel::<()>();
        std::thread::Builder::new()
            .name("diglett-inference".into())
            .spawn(move || {
                let _exit = exit_tx;
                inference_loop(&models, &compute, settings, &metrics, &rx);
            })?;
        Ok((Self { tx }, EngineExit(exit_rx)))
    }

    /// Queues a window; the receiver yields its output.
    pub fn window(
        &self,
        input: WindowInput,
    ) -> Result<oneshot::Receiver<Result<WindowOutput, Expired>>, EngineUnavailable> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Window(input, tx))?;
        Ok(rx)
    }

    /// Queues an enrollment.
    pub fn enroll(
        &self,
        samples: Vec<f32>,
    ) -> Result<oneshot::Receiver<EnrollmentOutput>, EngineUnavailable> {
        let (tx, rx) = oneshot::channel();
        self.send(Job::Enroll(samples, tx))?;
        Ok(rx)
    }

    fn send(&self, job: Job) -> Result<(), EngineUnavailable> {
        self.tx.try_send(job).map_err(|e| {
            if matches!(e, TrySendError::Full(_)) {
                tracing::error!("inference queue full despite the semaphores");
            }
            EngineUnavailable
        })
    }
}

/// `kind` label of `diglett_worker_errors_total` for a job whose inference panicked.
pub const INFERENCE_PANIC: &str = "inference_panic";

/// Runs one job's inference, turning a panic into `None` (logged, and counted as
/// [`INFERENCE_PANIC`]) so that the inference thread survives it.
fn guarded<T>(metrics: &Metrics, what: &str, job: impl FnOnce() -> T) -> Option<T> {
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(out) => Some(out),
        Err(panic) => {
            let message = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_default();
            tracing::error!(job = what, panic = %message, "inference panicked; the job fails");
            metrics.error(INFERENCE_PANIC);
            None
        }
    }
}

fn inference_loop(
    models: &Models,
    compute: &Compute,
    settings: BatchSettings,
    metrics: &Metrics,
    rx: &Receiver<Job>,
) {
    let mut pending: Option<Job> = None;
    // How long the latest window batch took: the estimate for the next one.
    let mut last_batch = Duration::ZERO;
    loop {
        let job = match pending.take() {
            Some(job) => job,
            None => match rx.recv() {
                Ok(job) => job,
                Err(_) => return,
            },
        };
        match job {
            Job::Enroll(samples, reply) => {
                // A panic fails this job only (its reply is dropped: the handler answers
                // `internal`); the thread and the other jobs carry on. The models are
                // immutable, so nothing is left half-updated.
                let Some(out) = guarded(metrics, "enrollment", || {
                    process_enrollment(models, compute, &samples)
                }) else {
                    continue;
                };
                metrics
                    .embed_inference_seconds
                    .observe(out.processing.as_secs_f64());
                // The requester may have given up; nothing to do then.
                let _ = reply.send(out);
            }
            Job::Window(first, reply) => {
                let mut inputs = vec![first];
                let mut replies = vec![reply];
                let deadline = Instant::now() + settings.max_wait;
                while inputs.len() < settings.max_batch {
                    let next = match rx.try_recv() {
                        Ok(job) => Some(job),
                        Err(_) => {
                            let left = deadline.saturating_duration_since(Instant::now());
                            if left.is_zero() {
                                None
                            } else {
                                rx.recv_timeout(left).ok()
                            }
                        }
                    };
                    match next {
                        Some(Job::Window(input, reply)) => {
                            inputs.push(input);
                            replies.push(reply);
                        }
                        Some(enroll) => {
                            // Run the batch first; the enrollment is next.
                            pending = Some(enroll);
                            break;
                        }
                        None => break,
                    }
                }
                // Windows whose sender will have stopped waiting before this batch can finish
                // (judged by the last batch's time) are not computed: under overload the time
                // goes to windows someone still waits for.
                let finish = Instant::now() + last_batch;
                let (inputs, replies): (Vec<_>, Vec<_>) = inputs
                    .into_iter()
                    .zip(replies)
                    .filter_map(|(input, reply)| {
                        if input.deadline.is_none_or(|d| d > finish) {
                            Some((input, reply))
                        } else {
                            let _ = reply.send(Err(Expired));
                            None
                        }
                    })
                    .unzip();
                if inputs.is_empty() {
                    continue;
                }
                // On a panic the whole batch fails (`internal`), not only the window at fault:
                // the batch shares one encoder run.
                let Some(outputs) = guarded(metrics, "window batch", || {
                    process_windows(models, compute, &inputs)
                }) else {
                    continue;
                };
                metrics.batch_size.observe(inputs.len() as f64);
                if let Some(o) = outputs.first() {
                    metrics
                        .window_inference_seconds
                        .observe(o.processing.as_secs_f64());
                    last_batch = o.processing;
                }
                for (out, reply) in outputs.into_iter().zip(replies) {
                    metrics
                        .queue_wait_seconds
                        .observe(out.queue_wait.as_secs_f64());
                    let _ = reply.send(Ok(out));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panicking_job_fails_alone() {
        let metrics = Metrics::new();
        assert_eq!(guarded(&metrics, "ok", || 7), Some(7));
        let r: Option<()> = guarded(&metrics, "boom", || panic!("boom"));
        assert_eq!(r, None);
        assert_eq!(guarded(&metrics, "after", || 8), Some(8));
        assert!(
            metrics
                .render()
                .contains("diglett_worker_errors_total{kind=\"inference_panic\"} 1"),
            "{}",
            metrics.render()
        );
    }
}
