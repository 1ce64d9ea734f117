//! Windows: a `WindowRequest` validated, inferred by the engine and labelled, and every failure
//! turned into an error result on the session's result subject.

use std::time::Instant;

use async_nats::Message;
use diglett_decision::params;
use diglett_schemas::{
    self as schemas, ErrorKind, Label, SAMPLE_RATE, SCHEMA_VERSION, SpeakerScore,
    SpeechProbability, Timing, WINDOW_SAMPLES, WindowError, WindowRequest, WindowResult, codec,
    pcm, subjects,
};

use crate::engine::{Expired, WindowInput, WindowOutput};
use crate::metrics::Metrics;
use crate::service::{Ctx, MAX_MESSAGE_BYTES, MAX_SPEAKERS, Rejected, check_name, clip, publish};

/// Validates a window request and turns it into engine input.
pub(crate) fn window_input(
    req: &WindowRequest,
    session: &str,
    received: Instant,
) -> Result<WindowInput, Rejected> {
    if req.session != session {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!(
                "session {:?} does not match the subject's {session:?}",
                clip(&req.session, subjects::MAX_SESSION_LEN)
            ),
        ));
    }
    if req.sample_rate != SAMPLE_RATE {
        return Err(Rejected::new(
            ErrorKind::BadPcm,
            format!("sample_rate {} (expected {SAMPLE_RATE})", req.sample_rate),
        ));
    }
    if req.pcm.len() != WINDOW_SAMPLES * 2 {
        return Err(Rejected::new(
            ErrorKind::BadPcm,
            format!(
                "window has {} PCM bytes (expected {} = 1.6 s of 16 kHz i16)",
                req.pcm.len(),
                WINDOW_SAMPLES * 2
            ),
        ));
    }
    if !req.start.is_finite() || req.start < 0.0 {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            "start is not a time ≥ 0",
        ));
    }
    if req.speakers.len() > MAX_SPEAKERS {
        return Err(Rejected::new(
            ErrorKind::BadRequest,
            format!("{} speakers (at most {MAX_SPEAKERS})", req.speakers.len()),
        ));
    }
    let mut speakers = Vec::with_capacity(req.speakers.len());
    for s in &req.speakers {
        check_name("speaker id", &s.id)?;
        check_name("speaker name", s.name.as_deref().unwrap_or(""))?;
        let dim = req.model.dim();
        if s.embedding.len() != dim || s.embedding.iter().any(|x| !x.is_finite()) {
            return Err(Rejected::new(
                ErrorKind::BadEmbedding,
                format!(
                    "speaker {:?}: a {} embedding must be {dim} finite numbers",
                    s.id,
                    req.model.as_str()
                ),
            ));
        }
        let e = s.embedding.clone();
        speakers.push(e);
    }
    // Data-chosen defaults, the overlap rule as strict as this many speakers need, then the
    // request's explicit values (diglett_decision::params).
    let params = params::resolve(&req.params, speakers.len())
        .map_err(|e| Rejected::new(ErrorKind::BadRequest, e.to_string()))?;
    let deadline = match req.expires_at_unix_ms {
        None => None,
        Some(at) => {
            let left = at.saturating_sub(schemas::embed::unix_ms_now());
            if left == 0 {
                return Err(expired());
            }
            // Measured now, when `left` was: `received` may be a while ago (a permit wait).
            Some(Instant::now() + std::time::Duration::from_millis(left))
        }
    };
    Ok(WindowInput {
        samples: pcm::to_f32(&req.pcm),
        model: req.model,
        speakers,
        params,
        received,
        deadline,
    })
}

fn expired() -> Rejected {
    Rejected::new(
        ErrorKind::Expired,
        "the sender stopped waiting before the worker got to this window (overloaded)",
    )
}

pub(crate) fn window_result(req: &WindowRequest, out: &WindowOutput) -> WindowResult {
    let speaker = out.decision.speaker.and_then(|i| req.speakers.get(i));
    WindowResult {
        v: SCHEMA_VERSION,
        session: req.session.clone(),
        seq: req.seq,
        start: req.start,
        end: req.start + WINDOW_SAMPLES as f64 / f64::from(SAMPLE_RATE),
        label: out.decision.label,
        speaker_id: speaker.map(|s| s.id.clone()),
        speaker_name: speaker.and_then(|s| s.name.clone()),
        best_score: out.decision.best_score,
        scores: req
            .speakers
            .iter()
            .zip(&out.scores)
            .map(|(s, &score)| SpeakerScore {
                id: s.id.clone(),
                score,
            })
            .collect(),
        speech: SpeechProbability {
            mean: out.speech_mean,
            voiced_fraction: out.voiced_fraction,
        },
        loudness: schemas::Loudness {
            dbfs: out.loudness.dbfs,
            lufs: out.loudness.lufs,
        },
        timing: Timing {
            processing_ms: out.processing.as_secs_f32() * 1e3,
            queue_wait_ms: out.queue_wait.as_secs_f32() * 1e3,
            batch_size: u32::try_from(out.batch_size).unwrap_or(u32::MAX),
        },
        error: None,
        chunk_speech: out.chunk_speech.clone(),
    }
}

pub(crate) fn error_result(
    session: &str,
    req: Option<&WindowRequest>,
    rejected: Rejected,
) -> WindowResult {
    let (seq, start) = req.map_or((0, 0.0), |r| (r.seq, r.start));
    WindowResult {
        error: Some(WindowError {
            kind: rejected.kind,
            message: rejected.message,
        }),
        ..WindowResult::bare(session, seq, start, Label::Error)
    }
}

/// Counts a window in `diglett_worker_windows_in_flight` until dropped, whichever way the
/// handler ends (returns early, or its task panics or is cancelled).
struct InFlight<'a>(&'a Metrics);

impl<'a> InFlight<'a> {
    fn new(metrics: &'a Metrics) -> Self {
        metrics.windows_in_flight.inc();
        Self(metrics)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.windows_in_flight.dec();
    }
}

pub(crate) async fn handle_window(ctx: &Ctx, msg: Message) {
    let received = Instant::now();
    let Some(session) = subjects::session_of_window_subject(msg.subject.as_str()) else {
        // A session token we cannot echo into a result subject: count and drop.
        tracing::warn!(subject = %clip(msg.subject.as_str(), MAX_MESSAGE_BYTES), "window on an invalid session subject");
        ctx.metrics.error(ErrorKind::BadRequest.as_str());
        return;
    };
    let req = codec::decode::<WindowRequest>(&msg.payload)
        .map_err(|e| Rejected::new(ErrorKind::from(&e), e.to_string()));
    let result = window(ctx, session, req, received).await;
    let subject = format!("{}.{session}", subjects::RESULTS_PREFIX);
    publish(ctx, subject, &result).await;
}

/// Validates, infers and labels one window; every failure becomes an error result.
pub(crate) async fn window(
    ctx: &Ctx,
    session: &str,
    req: Result<WindowRequest, Rejected>,
    received: Instant,
) -> WindowResult {
    let _in_flight = InFlight::new(&ctx.metrics);
    let result = match &req {
        Err(r) => Err(Rejected::new(r.kind, r.message.clone())),
        Ok(req) => match window_input(req, session, received) {
            Err(r) => Err(r),
            Ok(input) => match ctx.engine.window(input) {
                Err(e) => Err(Rejected::new(ErrorKind::Internal, e.to_string())),
                Ok(rx) => match rx.await {
                    Ok(Ok(out)) => Ok(window_result(req, &out)),
                    Ok(Err(Expired)) => Err(expired()),
                    Err(_) => Err(Rejected::new(
                        ErrorKind::Internal,
                        "inference was cancelled",
                    )),
                },
            },
        },
    };
    let result = result.unwrap_or_else(|r| {
        tracing::debug!(session, kind = r.kind.as_str(), message = %r.message, "bad window");
        ctx.metrics.error(r.kind.as_str());
        error_result(session, req.as_ref().ok(), r)
    });
    ctx.metrics
        .windows
        .get_or_create(&[("label", result.label.as_str())])
        .inc();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_flight_is_released_on_panic() {
        let metrics = Metrics::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = InFlight::new(&metrics);
            assert_eq!(metrics.windows_in_flight.get(), 1);
            panic!("handler failed");
        }));
        assert!(r.is_err());
        assert_eq!(metrics.windows_in_flight.get(), 0);
    }
}
