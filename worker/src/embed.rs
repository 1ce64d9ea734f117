//! Enrollment over `diglett.v1.embed`: the request (and its chunked parts) read and validated,
//! the audio embedded by the engine, the verdict given, the reply published. The client side
//! is [`crate::embed_client`].

use async_nats::{Message, Request};
use diglett_decision::enroll::{self as verdicts, Recording};
use diglett_schemas::{
    self as schemas, EmbedError, EmbedOutcome, EmbedReply, EmbedRequest, Enrollment, ErrorKind,
    MIN_PART_BYTES, PartRequest, PcmPart, SAMPLE_RATE, SCHEMA_VERSION, Verdict, codec, pcm,
    subjects,
};

use crate::engine::EnrollmentOutput;
use crate::service::{
    CLOCK_SKEW_MS, Ctx, EXPIRED, MAX_NAME_BYTES, MAX_PARTS, Rejected, check_name, clip, publish,
};

/// The enrollment verdict ([`diglett_decision::enroll::verdict`]).
pub(crate) fn verdict(out: &EnrollmentOutput) -> Verdict {
    verdicts::verdict(&Recording {
        has_embedding: out.embedding.is_some(),
        clipped_fraction: out.clipped_fraction,
        dbfs: out.loudness.dbfs,
        speech_seconds: out.speech_seconds,
    })
}

pub(crate) async fn handle_embed(ctx: &Ctx, msg: Message) {
    let Some(reply_to) = msg.reply.clone() else {
        tracing::warn!("embed message without a reply subject");
        ctx.metrics.error("no_reply_subject");
        return;
    };
    let (request_id, outcome) = embed_outcome(ctx, embed(ctx, &msg.payload).await);
    let reply = EmbedReply {
        v: SCHEMA_VERSION,
        request_id,
        outcome,
    };
    publish(ctx, reply_to.to_string(), &reply).await;
}

/// The reply outcome of an enrollment, counted in the metrics.
pub(crate) fn embed_outcome(
    ctx: &Ctx,
    result: Result<(String, Enrollment), (String, Rejected)>,
) -> (String, EmbedOutcome) {
    match result {
        Ok((id, enrollment)) => {
            ctx.metrics
                .enrollments
                .get_or_create(&[("verdict", enrollment.verdict.as_str())])
                .inc();
            (id, EmbedOutcome::Ok(enrollment))
        }
        Err((id, r)) => {
            tracing::debug!(kind = r.kind.as_str(), message = %r.message, "embed rejected");
            ctx.metrics.error(r.kind.as_str());
            ctx.metrics
                .enrollments
                .get_or_create(&[("verdict", "error")])
                .inc();
            (
                id,
                EmbedOutcome::Error(EmbedError {
                    kind: r.kind,
                    message: r.message,
                }),
            )
        }
    }
}

/// Requests parts `1..parts` in order from `subject` and appends them to `audio`, stopping
/// early once `audio` holds `total_bytes` or more (the caller checks the exact length).
async fn fetch_parts(
    ctx: &Ctx,
    subject: &str,
    id: &str,
    parts: u32,
    total_bytes: usize,
    audio: &mut Vec<u8>,
) -> Result<(), Rejected> {
    for index in 1..parts {
        if audio.len() >= total_bytes {
            break;
        }
        let ask = codec::encode(&PartRequest {
            v: SCHEMA_VERSION,
            request_id: id.to_owned(),
            index,
        })
        .map_err(|e| Rejected::new(ErrorKind::Internal, e.to_string()))?;
        let Some(client) = &ctx.client else {
            return Err(Rejected::new(
                ErrorKind::BadRequest,
                "chunked enrollment needs a NATS connection",
            ));
        };
        let reply = client
            .send_request(
                subject.to_owned(),
                Request::new()
                    .payload(ask.into())
                    .timeout(Some(ctx.config.part_timeout)),
            )
            .await
            .map_err(|e| Rejected::new(ErrorKind::PartTimeout, format!("part {index}: {e}")))?;
        let part: PcmPart = codec::decode(&reply.payload)
            .map_err(|e| Rejected::new(ErrorKind::from(&e), format!("part {index}: {e}")))?;
        if part.index != index || part.request_id != id {
            return Err(Rejected::new(
                ErrorKind::BadRequest,
                format!("part {index}: wrong part"),
            ));
        }
        // Whole samples in every part, and progress with every round trip.
        if part.pcm.is_empty() || !part.pcm.len().is_multiple_of(2) {
            return Err(Rejected::new(
                ErrorKind::BadPcm,
                format!(
                    "part {index} has {} PCM bytes (must be even, not 0)",
                    part.pcm.len()
                ),
            ));
        }
        audio.extend_from_slice(&part.pcm);
    }
    Ok(())
}

async fn embed(ctx: &Ctx, payload: &[u8]) -> Result<(String, Enrollment), (String, Rejected)> {
    let req: EmbedRequest = codec::decode(payload).map_err(|e| (String::new(), e.into()))?;
    embed_decoded(ctx, req).await
}

/// [`embed`] after decoding: validation, part fetching, inference.
pub(crate) async fn embed_decoded(
    ctx: &Ctx,
    req: EmbedRequest,
) -> Result<(String, Enrollment), (String, Rejected)> {
    // Echoed in the reply: never more than a valid id can be.
    let id = clip(&req.request_id, MAX_NAME_BYTES).to_owned();
    let fail = |kind, message: String| (id.clone(), Rejected::new(kind, message));
    // A request that waited in the subscription buffer until its client gave up costs no part
    // fetches and no inference.
    let expired = || {
        let expired = req
            .expires_at_unix_ms
            .is_some_and(|t| schemas::embed::unix_ms_now() > t.saturating_add(CLOCK_SKEW_MS));
        if expired {
            ctx.metrics.error(EXPIRED);
        }
        expired
    };
    if expired() {
        return Err(fail(
            ErrorKind::PartTimeout,
            "the request expired before the worker took it".into(),
        ));
    }
    check_name("request_id", &req.request_id).map_err(|r| (id.clone(), r))?;
    check_name("name", req.name.as_deref().unwrap_or("")).map_err(|r| (id.clone(), r))?;
    if req.sample_rate != SAMPLE_RATE {
        return Err(fail(
            ErrorKind::BadPcm,
            format!("sample_rate {} (expected {SAMPLE_RATE})", req.sample_rate),
        ));
    }
    let max_samples = ctx.config.max_enroll_seconds * u64::from(SAMPLE_RATE);
    if req.total_samples > max_samples {
        return Err(fail(
            ErrorKind::TooLong,
            format!(
                "{:.1} s of audio, at most {} s",
                req.total_samples as f64 / f64::from(SAMPLE_RATE),
                ctx.config.max_enroll_seconds
            ),
        ));
    }
    if req.total_samples == 0 {
        return Err(fail(ErrorKind::Empty, "no audio".into()));
    }
    let total_bytes = usize::try_from(req.total_samples * 2).unwrap_or(usize::MAX);
    // Every part but the last holds at least MIN_PART_BYTES, so more parts than this cannot
    // be needed; more would only make the worker do more round trips.
    let max_parts = u32::try_from(total_bytes.div_ceil(MIN_PART_BYTES))
        .unwrap_or(u32::MAX)
        .clamp(1, MAX_PARTS);
    if req.parts == 0 || req.parts > max_parts {
        return Err(fail(
            ErrorKind::BadRequest,
            format!(
                "parts must be 1 to {max_parts} for {} samples (parts of at least \
                 {MIN_PART_BYTES} bytes, at most {MAX_PARTS} parts)",
                req.total_samples
            ),
        ));
    }
    let mut audio = req.pcm;
    let parts_subject = match (&req.parts_subject, req.parts) {
        (_, 1) => None,
        // Only a client inbox: the worker publishes part requests there, and must not be
        // made to publish on anyone else's subject (a result subject, a JetStream API).
        (Some(s), _) if subjects::is_valid_parts_subject(s) => Some(s.clone()),
        _ => {
            return Err(fail(
                ErrorKind::BadRequest,
                format!(
                    "a chunked request needs a parts_subject under {} (at most {} bytes, no \
                     wildcards)",
                    subjects::INBOX_PREFIX,
                    subjects::MAX_PARTS_SUBJECT_LEN
                ),
            ));
        }
    };
    if let Some(subject) = parts_subject {
        if audio.is_empty() || !audio.len().is_multiple_of(2) {
            return Err(fail(
                ErrorKind::BadPcm,
                format!("part 0 has {} PCM bytes (must be even, not 0)", audio.len()),
            ));
        }
        audio.reserve(total_bytes.saturating_sub(audio.len()));
        // One deadline for the whole upload, so that a client answering slowly (or with tiny
        // parts) holds an enrollment permit for at most this long.
        let fetch = fetch_parts(ctx, &subject, &id, req.parts, total_bytes, &mut audio);
        match tokio::time::timeout(ctx.config.embed_deadline, fetch).await {
            Ok(result) => result.map_err(|r| (id.clone(), r))?,
            Err(_) => {
                return Err(fail(
                    ErrorKind::PartTimeout,
                    format!(
                        "the parts did not all arrive within {} ms",
                        ctx.config.embed_deadline.as_millis()
                    ),
                ));
            }
        }
    }
    if audio.len() != total_bytes {
        return Err(fail(
            ErrorKind::BadPcm,
            format!(
                "received {} PCM bytes, total_samples says {total_bytes}",
                audio.len()
            ),
        ));
    }
    if expired() {
        return Err(fail(
            ErrorKind::PartTimeout,
            "the request expired while its parts were fetched".into(),
        ));
    }
    let samples = pcm::to_f32(&audio);
    drop(audio);
    let out = ctx
        .engine
        .enroll(samples)
        .map_err(|e| fail(ErrorKind::Internal, e.to_string()))?
        .await
        .map_err(|_| fail(ErrorKind::Internal, "inference was cancelled".into()))?;
    if out
        .embedding
        .is_some_and(|e| e.iter().any(|x| !x.is_finite()))
        || out
            .campp_embedding
            .as_ref()
            .is_some_and(|e| e.iter().any(|x| !x.is_finite()))
    {
        return Err(fail(ErrorKind::Internal, "non-finite embedding".into()));
    }
    let verdict = verdict(&out);
    Ok((
        id.clone(),
        Enrollment {
            name: req.name,
            embedding: out.embedding.map(|e| e.to_vec()),
            campp_embedding: out.campp_embedding,
            speech_seconds: out.speech_seconds,
            duration_seconds: out.duration_seconds,
            loudness: schemas::Loudness {
                dbfs: out.loudness.dbfs,
                lufs: out.loudness.lufs,
            },
            clipped_fraction: out.clipped_fraction,
            verdict,
        },
    ))
}
