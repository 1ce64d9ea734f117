//! The REST API: enrollment, speaker profiles, verification, health.

use axum::Json;
use axum::extract::multipart::{Field, MultipartRejection};
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Extension, Multipart, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
pub use diglett_api::rest::*;
use diglett_audio::{DecodeError, DecodeOptions, decode_audio};
use diglett_decision::enroll;
use diglett_decision::scoring::{self, Decision};
use diglett_schemas::{EmbedOutcome, Enrollment, ErrorKind, Verdict, pcm};
use serde::Deserialize;

use crate::app::AppState;
use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody};
use crate::store::{Lookup, Profile};

/// The fields of a multipart request.
#[derive(Debug, Default)]
struct Form {
    files: Vec<Vec<u8>>,
    name: Option<String>,
    speakers: Vec<String>,
    threshold: Option<String>,
}

fn multipart_error(e: &axum::extract::multipart::MultipartError) -> ApiError {
    let status = e.status();
    if status == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::new(
            status,
            "payload_too_large",
            "the request body is larger than the limit (DIGLETT_MAX_BODY_BYTES)",
        )
    } else {
        ApiError::new(
            status,
            "bad_multipart",
            format!("cannot read the form: {}", e.body_text()),
        )
    }
}

fn rejection(e: &MultipartRejection) -> ApiError {
    ApiError::new(
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        format!("expected a multipart/form-data body: {}", e.body_text()),
    )
}

async fn text(field: Field<'_>, what: &str) -> Result<String, ApiError> {
    let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
    if bytes.len() > 4096 {
        return Err(ApiError::bad_request(format!("field {what} is too long")));
    }
    String::from_utf8(bytes.to_vec())
        .map_err(|_| ApiError::bad_request(format!("field {what} is not UTF-8")))
}

/// The fields each form may hold (the OpenAPI forms list the same, `additionalProperties:
/// false`); `speaker` and `speaker_id` are the legacy names of `speakers`.
const EMBED_FIELDS: &[&str] = &["file", "name"];
const CREATE_FIELDS: &[&str] = &["file", "name"];
const SAMPLES_FIELDS: &[&str] = &["file"];
const VERIFY_FIELDS: &[&str] = &["file", "speakers", "speaker", "speaker_id", "threshold"];

async fn read_form(
    multipart: Result<Multipart, MultipartRejection>,
    allowed: &[&str],
) -> Result<Form, ApiError> {
    let mut multipart = multipart.map_err(|e| rejection(&e))?;
    let mut form = Form::default();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| multipart_error(&e))?
    {
        let name = field.name().unwrap_or("");
        if !allowed.contains(&name) {
            // A field the server does not know is a client's mistake (a misspelt `speakers`
            // would otherwise verify against nothing).
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_field",
                format!(
                    "unknown form field {:?}; this form takes {}",
                    diglett_schemas::clip(name, 64),
                    allowed.join(", ")
                ),
            ));
        }
        match name {
            "file" => {
                if form.files.len() == MAX_FILES {
                    return Err(ApiError::bad_request(format!("at most {MAX_FILES} files")));
                }
                let bytes = field.bytes().await.map_err(|e| multipart_error(&e))?;
                form.files.push(bytes.to_vec());
            }
            "name" => {
                // Kept as sent: the OpenAPI document's length and pattern hold for these bytes.
                let name = text(field, "name").await?;
                if name.chars().count() > MAX_NAME_CHARS {
                    return Err(ApiError::bad_request(format!(
                        "name is longer than {MAX_NAME_CHARS} characters"
                    )));
                }
                form.name = Some(name);
            }
            "speakers" | "speaker" | "speaker_id" => {
                let v = text(field, "speakers").await?;
                form.speakers.extend(
                    v.split(',')
                        .map(str::trim)
                        .filter(|s| !s.is_empty())
                        .map(str::to_owned),
                );
            }
            "threshold" => form.threshold = Some(text(field, "threshold").await?),
            // Every allowed name is one of the arms above.
            _ => {}
        }
    }
    Ok(form)
}

fn decode_error(e: DecodeError) -> ApiError {
    match e {
        DecodeError::Unsupported(m) => ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_audio",
            format!("unsupported audio format ({m}); send WAV, FLAC, MP3 or Ogg/Vorbis"),
        ),
        DecodeError::TooLong { .. } => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "audio_too_long",
            e.to_string(),
        ),
        DecodeError::Empty => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_audio",
            "the file holds no audio samples",
        ),
        DecodeError::Resample(m) => ApiError::internal(m),
        e => ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "undecodable_audio",
            e.to_string(),
        ),
    }
}

/// Decodes an upload and has a worker embed it.
async fn enroll_file(
    state: &AppState,
    bytes: Vec<u8>,
    name: Option<&str>,
) -> Result<Enrollment, ApiError> {
    let max_seconds = state.config.max_audio_seconds;
    let samples =
        tokio::task::spawn_blocking(move || decode_audio(&bytes, &DecodeOptions { max_seconds }))
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?
            .map_err(decode_error)?;
    let pcm = pcm::from_f32(&samples);
    drop(samples);
    let reply = state
        .bus
        .embed(&pcm, name, state.config.embed_timeout)
        .await?;
    match reply.outcome {
        EmbedOutcome::Ok(e) => Ok(e),
        EmbedOutcome::Error(e) => Err(match e.kind {
            ErrorKind::TooLong => ApiError::new(
                StatusCode::UNPROCESSABLE_ENTITY,
                "audio_too_long",
                e.message,
            ),
            ErrorKind::Empty => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "empty_audio", e.message)
            }
            ErrorKind::PartTimeout => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, "worker_timeout", e.message)
            }
            _ => ApiError::internal(format!("worker: {} ({})", e.message, e.kind.as_str())),
        }),
    }
}

/// The error answers every audio upload (`/embed`, `/v1/speakers`, `…/samples`, `/v1/verify`)
/// shares, described once for the OpenAPI document; each operation adds its own 400/404.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses only; the handlers answer with `ApiError`
pub enum UploadErrors {
    /// 401.
    #[response(status = 401, description = "Missing or wrong API key")]
    Unauthorized(ErrorBody),
    /// 413.
    #[response(
        status = 413,
        description = "Body over the limit (DIGLETT_MAX_BODY_BYTES)"
    )]
    TooLarge(ErrorBody),
    /// 415.
    #[response(
        status = 415,
        description = "Not multipart, or unsupported audio format"
    )]
    Unsupported(ErrorBody),
    /// 422.
    #[response(
        status = 422,
        description = "Audio too long, empty or corrupt, or no speech in it"
    )]
    Unusable(ErrorBody),
    /// 503.
    #[response(
        status = 503,
        description = "No worker answering, or the profile store unavailable"
    )]
    Unavailable(ErrorBody),
    /// 500.
    #[response(status = 500, description = "A fault of the server's")]
    Internal(ErrorBody),
    /// 504.
    #[response(status = 504, description = "Worker timeout")]
    Timeout(ErrorBody),
}

/// The error answers of the profile operations that take no upload.
#[derive(Debug, utoipa::IntoResponses)]
#[allow(dead_code)] // describes responses only; the handlers answer with `ApiError`
pub enum ProfileErrors {
    /// 401.
    #[response(status = 401, description = "Missing or wrong API key")]
    Unauthorized(ErrorBody),
    /// 500.
    #[response(
        status = 500,
        description = "A fault of the server's (e.g. a corrupt record)"
    )]
    Internal(ErrorBody),
    /// 503.
    #[response(status = 503, description = "Store unavailable")]
    Unavailable(ErrorBody),
}

/// `POST /embed`: a voice signature from one recording.
#[utoipa::path(post, path = "/embed", tag = "enrollment",
    request_body(content(
        (EmbedForm = "multipart/form-data",
         encoding(("file" = (content_type = AUDIO_MEDIA_TYPES)))))),
    responses(
        (status = 200, description = "The signature", body = EmbedResponse),
        (status = 400, description = "Missing file", body = ErrorBody),
        UploadErrors),
    security((), ("bearer" = [])))]
pub async fn embed(
    State(state): State<AppState>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<EmbedResponse>, ApiError> {
    let mut form = read_form(multipart, EMBED_FIELDS).await?;
    if form.files.len() != 1 {
        return Err(ApiError::bad_request("send exactly one `file` field"));
    }
    let file = form.files.remove(0);
    let e = enroll_file(&state, file, form.name.as_deref()).await?;
    Ok(Json(EmbedResponse {
        name: form.name,
        model: diglett_schemas::SpeakerModel::Ge2e.as_str().to_owned(),
        embedding: e.embedding,
        campp_embedding: e.campp_embedding,
        volume: e.loudness.dbfs,
        lufs: e.loudness.lufs,
        speech_seconds: e.speech_seconds,
        duration: e.duration_seconds,
        verdict: e.verdict.as_str().to_owned(),
    }))
}

fn rfc3339(ms: u64) -> String {
    let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
    humantime::format_rfc3339_millis(t).to_string()
}

/// A stored profile as the API shows it.
fn profile_view(p: Profile, with_embedding: bool) -> ProfileView {
    let models = p.models().iter().map(|m| m.as_str().to_owned()).collect();
    ProfileView {
        id: p.id,
        name: p.name,
        speech_seconds: p.speech_seconds,
        samples: p.samples,
        created_at: rfc3339(p.created_at_ms),
        updated_at: rfc3339(p.updated_at_ms),
        models,
        campp_embedding: if with_embedding { p.campp } else { None },
        embedding: with_embedding.then_some(p.embedding),
    }
}

/// The answer to a create or add-samples request: the stored profile and what each file gave.
fn enroll_response(p: Profile, verdict: Verdict, files: Vec<SampleReport>) -> EnrollResponse {
    EnrollResponse {
        created_at: rfc3339(p.created_at_ms),
        id: p.id,
        name: p.name,
        speech_seconds: p.speech_seconds,
        verdict: verdict.as_str().to_owned(),
        samples: p.samples,
        files,
    }
}

/// What the files of one upload give together.
struct Merged {
    /// Speech-weighted mean GE2E embedding.
    embedding: Vec<f32>,
    /// Speech-weighted mean CAM++ embedding, when every file with speech had one.
    campp: Option<Vec<f32>>,
    speech: f32,
    verdict: Verdict,
    files: Vec<SampleReport>,
}

/// Embeds every file and merges those with speech (each model's embeddings weighted by the
/// file's speech seconds), with the overall verdict and per-file reports.
async fn enroll_files(state: &AppState, files: Vec<Vec<u8>>) -> Result<Merged, ApiError> {
    if files.is_empty() {
        return Err(ApiError::bad_request("send at least one `file` field"));
    }
    let mut reports = Vec::with_capacity(files.len());
    // (GE2E embedding, CAM++ embedding, speech seconds, verdict) of each file with speech.
    struct Used(Vec<f32>, Option<Vec<f32>>, f32, Verdict);
    let mut used: Vec<Used> = Vec::new();
    for file in files {
        let e = enroll_file(state, file, None).await?;
        reports.push(SampleReport {
            verdict: e.verdict.as_str().to_owned(),
            speech_seconds: e.speech_seconds,
            duration: e.duration_seconds,
            volume: e.loudness.dbfs,
            lufs: e.loudness.lufs,
        });
        if let Some(emb) = e.embedding {
            used.push(Used(emb, e.campp_embedding, e.speech_seconds, e.verdict));
        }
    }
    let no_voice = || {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "no_voice",
            "no speech was found in the audio",
        )
    };
    if used.is_empty() {
        return Err(no_voice());
    }
    // A file with an embedding has some speech; weigh it by how much.
    let weight = |s: f32| s.max(enroll::MIN_MERGE_WEIGHT);
    let merged = enroll::weighted_mean(used.iter().map(|u| (u.0.as_slice(), weight(u.2))))
        .ok_or_else(no_voice)?;
    let campp = if used.iter().all(|u| u.1.is_some()) {
        enroll::weighted_mean(
            used.iter()
                .filter_map(|u| u.1.as_deref().map(|c| (c, weight(u.2)))),
        )
    } else {
        None
    };
    let speech: f32 = used.iter().map(|u| u.2).sum();
    let verdicts: Vec<Verdict> = used.iter().map(|u| u.3).collect();
    Ok(Merged {
        embedding: merged,
        campp,
        speech,
        verdict: enroll::overall_verdict(&verdicts, speech),
        files: reports,
    })
}

/// `POST /v1/speakers`: creates a profile from one or more recordings.
#[utoipa::path(post, path = "/v1/speakers", tag = "profiles",
    request_body(content(
        (CreateSpeakerForm = "multipart/form-data",
         encoding(("file" = (content_type = AUDIO_MEDIA_TYPES)))))),
    responses(
        (status = 201, description = "Created", body = EnrollResponse, links(
            ("GetSpeaker" = (operation_id = "get_speaker",
                parameters(("id" = "$response.body#/id")),
                description = "The profile just created")),
            ("AddSamples" = (operation_id = "add_samples",
                parameters(("id" = "$response.body#/id")),
                description = "More recordings for it")),
            ("DeleteSpeaker" = (operation_id = "delete_speaker",
                parameters(("id" = "$response.body#/id")),
                description = "Delete it")))),
        (status = 400, description = "Missing or bad name, missing file", body = ErrorBody),
        UploadErrors),
    security((), ("bearer" = [])))]
pub async fn create_speaker(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Response, ApiError> {
    let form = read_form(multipart, CREATE_FIELDS).await?;
    let name = form
        .name
        .ok_or_else(|| ApiError::bad_request("a `name` field is required"))?;
    // Checked before the (costly) embedding; the store checks the same.
    crate::store::validate_name(&name)?;
    let m = enroll_files(&state, form.files).await?;
    let p = state
        .store
        .create_with(&tenant, &name, &m.embedding, m.campp.as_deref(), m.speech)
        .await?;
    state.metrics.profiles_created.inc();
    let body = enroll_response(p, m.verdict, m.files);
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// The `{id}` of a profile path. Profile ids are UUIDs: anything else (a path segment that is
/// not even UTF-8 included) cannot exist, so it is a 404 with the usual JSON body.
fn profile_id(path: Result<Path<String>, PathRejection>) -> Result<String, ApiError> {
    let Path(id) = path.map_err(|e| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no speaker profile here: {}", e.body_text()),
        )
    })?;
    uuid::Uuid::parse_str(&id)
        .map(|_| ())
        .map_err(|_| ApiError::profile_not_found(&id))?;
    Ok(id)
}

/// `POST /v1/speakers/{id}/samples`: more recordings improve a profile.
#[utoipa::path(post, path = "/v1/speakers/{id}/samples", tag = "profiles",
    params(("id" = uuid::Uuid, Path, description = "Profile id")),
    request_body(content(
        (SamplesForm = "multipart/form-data",
         encoding(("file" = (content_type = AUDIO_MEDIA_TYPES)))))),
    responses(
        (status = 200, description = "Updated", body = EnrollResponse),
        (status = 400, description = "Missing file", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
        UploadErrors),
    security((), ("bearer" = [])))]
pub async fn add_samples(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    path: Result<Path<String>, PathRejection>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<EnrollResponse>, ApiError> {
    let id = profile_id(path)?;
    // Fail fast before running the encoder for a profile that does not exist.
    if state.store.get(&tenant, &id).await?.is_none() {
        return Err(ApiError::profile_not_found(&id));
    }
    let form = read_form(multipart, SAMPLES_FIELDS).await?;
    let m = enroll_files(&state, form.files).await?;
    let p = state
        .store
        .add_sample_with(&tenant, &id, &m.embedding, m.campp.as_deref(), m.speech)
        .await?
        .ok_or_else(|| ApiError::profile_not_found(&id))?;
    Ok(Json(enroll_response(p, m.verdict, m.files)))
}

/// `GET /v1/speakers`: the caller's profiles (without embeddings).
#[utoipa::path(get, path = "/v1/speakers", tag = "profiles",
    responses(
        (status = 200, description = "The profiles", body = ProfileList),
        ProfileErrors),
    security((), ("bearer" = [])))]
pub async fn list_speakers(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
) -> Result<Json<ProfileList>, ApiError> {
    let speakers = state
        .store
        .list(&tenant)
        .await?
        .into_iter()
        .map(|p| profile_view(p, false))
        .collect();
    Ok(Json(ProfileList { speakers }))
}

/// Query of `GET /v1/speakers/{id}`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
pub struct GetQuery {
    /// `embedding` to include the signature.
    include: Option<String>,
}

/// `GET /v1/speakers/{id}`: one profile; the embedding only with `?include=embedding`.
#[utoipa::path(get, path = "/v1/speakers/{id}", tag = "profiles",
    params(("id" = uuid::Uuid, Path, description = "Profile id"), GetQuery),
    responses(
        (status = 200, description = "The profile", body = ProfileView),
        (status = 400, description = "Unreadable query", body = ErrorBody),
        (status = 404, description = "No such profile", body = ErrorBody),
        ProfileErrors),
    security((), ("bearer" = [])))]
pub async fn get_speaker(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<GetQuery>, QueryRejection>,
) -> Result<Json<ProfileView>, ApiError> {
    let id = profile_id(path)?;
    let Query(q) = query.map_err(|e| ApiError::bad_request(e.body_text()))?;
    let with_embedding = q
        .include
        .is_some_and(|i| i.split(',').any(|x| x.trim() == "embedding"));
    let p = state
        .store
        .get(&tenant, &id)
        .await?
        .ok_or_else(|| ApiError::profile_not_found(&id))?;
    Ok(Json(profile_view(p, with_embedding)))
}

/// `DELETE /v1/speakers/{id}`: deletes a profile for good.
#[utoipa::path(delete, path = "/v1/speakers/{id}", tag = "profiles",
    params(("id" = uuid::Uuid, Path, description = "Profile id")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 404, description = "No such profile", body = ErrorBody),
        ProfileErrors),
    security((), ("bearer" = [])))]
pub async fn delete_speaker(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    path: Result<Path<String>, PathRejection>,
) -> Result<StatusCode, ApiError> {
    let id = profile_id(path)?;
    if state.store.delete(&tenant, &id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::profile_not_found(&id))
    }
}

/// Resolves profile ids of one tenant, in order; the first unknown one is a 404.
pub async fn resolve_profiles(
    state: &AppState,
    tenant: &str,
    ids: &[String],
) -> Result<Vec<Profile>, ApiError> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        out.push(match state.store.profile(tenant, id).await {
            Ok(p) => p,
            Err(Lookup::Unknown) => return Err(ApiError::profile_not_found(id)),
            Err(Lookup::Store(e)) => return Err(e.into()),
        });
    }
    Ok(out)
}

/// `POST /v1/verify`: scores a recording against one or more profiles.
#[utoipa::path(post, path = "/v1/verify", tag = "verification",
    request_body(content(
        (VerifyForm = "multipart/form-data",
         encoding(("file" = (content_type = AUDIO_MEDIA_TYPES)))))),
    responses(
        (status = 200, description = "Scores and decision", body = VerifyResponse),
        (status = 400, description = "Missing file or speakers, bad threshold", body = ErrorBody),
        (status = 404, description = "Unknown profile", body = ErrorBody),
        UploadErrors),
    security((), ("bearer" = [])))]
pub async fn verify(
    State(state): State<AppState>,
    Extension(Tenant(tenant)): Extension<Tenant>,
    multipart: Result<Multipart, MultipartRejection>,
) -> Result<Json<VerifyResponse>, ApiError> {
    let mut form = read_form(multipart, VERIFY_FIELDS).await?;
    if form.files.len() != 1 {
        return Err(ApiError::bad_request("send exactly one `file` field"));
    }
    if form.speakers.is_empty() || form.speakers.len() > MAX_VERIFY_SPEAKERS {
        return Err(ApiError::bad_request(format!(
            "send 1 to {MAX_VERIFY_SPEAKERS} profile ids in `speakers`"
        )));
    }
    // Range-checked before rounding to f32, so that 1.0000000001 is refused as the document says.
    let threshold = match form.threshold.as_deref() {
        None => scoring::DecisionParams::default().threshold,
        Some(t) => t
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|t| (-1.0..=1.0).contains(t))
            .map(|t| t as f32)
            .ok_or_else(|| ApiError::bad_request("threshold must be a number from -1 to 1"))?,
    };
    let profiles = resolve_profiles(&state, &tenant, &form.speakers).await?;
    let e = enroll_file(&state, form.files.remove(0), None).await?;
    let Some(embedding) = e.embedding else {
        return Ok(Json(VerifyResponse {
            label: "silence".into(),
            speaker_id: None,
            speaker: None,
            score: None,
            threshold,
            scores: Vec::new(),
            speech_seconds: e.speech_seconds,
        }));
    };
    let scores: Vec<f32> = profiles
        .iter()
        .map(|p| scoring::cosine(&embedding, &p.embedding))
        .collect();
    let decision = scoring::decide(&scores, threshold);
    let (label, winner) = match decision {
        Decision::Speaker { index, .. } => ("speaker", profiles.get(index)),
        Decision::Unknown { .. } => ("unknown", None),
    };
    Ok(Json(VerifyResponse {
        label: label.into(),
        speaker_id: winner.map(|p| p.id.clone()),
        speaker: winner.map(|p| p.name.clone()),
        score: decision.best_score(),
        threshold,
        scores: profiles
            .iter()
            .zip(&scores)
            .map(|(p, &score)| ScoreView {
                id: p.id.clone(),
                name: p.name.clone(),
                score,
            })
            .collect(),
        speech_seconds: e.speech_seconds,
    }))
}

/// `GET /healthz`: the process is up.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "Up", body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        checks: None,
    })
}

/// `GET /readyz`: the bus and the store are reachable and at least one worker answers.
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Health),
        (status = 503, description = "Not ready; `checks` says why", body = Health)))]
pub async fn readyz(State(state): State<AppState>) -> Response {
    let timeout = std::time::Duration::from_secs(2);
    let (bus, store) = tokio::join!(
        state.bus.ready(timeout),
        tokio::time::timeout(timeout, state.store.ping())
    );
    let mut checks = std::collections::BTreeMap::new();
    let bus_ok = bus.is_ok();
    checks.insert(
        format!("bus ({})", state.bus.kind()),
        bus.map_or_else(|e| e.to_string(), |()| "ok".into()),
    );
    let store_ok = matches!(store, Ok(Ok(())));
    checks.insert(
        format!("store ({})", state.store.backend()),
        match store {
            Ok(Ok(())) => "ok".into(),
            Ok(Err(e)) => e.to_string(),
            Err(_) => "timed out".into(),
        },
    );
    let ok = bus_ok && store_ok;
    let status = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(Health {
            status: if ok { "ok" } else { "unavailable" }.into(),
            checks: Some(checks),
        }),
    )
        .into_response()
}
