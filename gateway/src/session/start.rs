//! The `start` message: validated, its speakers resolved (profiles from the store, inline
//! signatures checked), and its options turned into the session's parameters.

use diglett_api::protocol::{self, Options, SpeakerRef, Start, close};
use diglett_decision::params::{SessionOptions, wire_params};
use diglett_decision::timeline;
use diglett_schemas::{DecisionParams, EnrolledSpeaker, SAMPLE_RATE, SpeakerModel};

use super::Fatal;
use super::pcm::PcmDecoder;
use super::render::clip;
use crate::store::{Lookup, Store};

use diglett_api::rest::MAX_NAME_CHARS;

/// What a valid `start` sets up.
pub(crate) struct Plan {
    pub decoder: PcmDecoder,
    pub enrolled: Vec<EnrolledSpeaker>,
    /// The speaker model of every window and every enrolled embedding.
    pub model: SpeakerModel,
    pub params: DecisionParams,
    pub hop_ms: u32,
    /// How far behind the newest audio the frame timeline is decided.
    pub latency_ms: u32,
    /// Whether `overlap` may be reported.
    pub overlap: bool,
}

impl Plan {
    /// The hop in 16 kHz samples.
    pub(crate) fn hop_samples(&self) -> u64 {
        u64::from(self.hop_ms) * u64::from(SAMPLE_RATE) / 1000
    }
}

pub(crate) fn bad_start(message: impl Into<String>) -> Fatal {
    Fatal::new(close::INVALID_PAYLOAD, "bad_start", message)
}

/// A speaker the `start` message asks for, before the store is asked.
pub(crate) enum Wanted {
    /// A client-held signature, already checked.
    Inline(EnrolledSpeaker),
    /// A profile id, to resolve against the tenant's profiles.
    Profile(String),
}

/// What `start` asks for, checked without the store.
pub(crate) struct Checked {
    decoder: PcmDecoder,
    pub speakers: Vec<Wanted>,
    /// The session's speaker model.
    pub model: SpeakerModel,
    hop_ms: u32,
    latency_ms: u32,
    options: SessionOptions,
}

/// Everything about `start` that needs no store: the audio format, the speaker count, the
/// options and the inline signatures.
pub(crate) fn check(start: Start) -> Result<Checked, Fatal> {
    let decoder = PcmDecoder::new(start.audio)?;
    if !protocol::SPEAKERS_RANGE.contains(&start.speakers.len()) {
        return Err(bad_start(format!(
            "speakers must list 1 to {} speakers",
            protocol::SPEAKERS_RANGE.end()
        )));
    }
    let (hop_ms, latency_ms, options) = options(&start.options)?;
    let model = start.options.model.unwrap_or_default();
    let speakers = start
        .speakers
        .into_iter()
        .map(|s| match s {
            SpeakerRef::Id(id) => Ok(Wanted::Profile(id)),
            SpeakerRef::Inline {
                name,
                embedding,
                id,
                model: of,
            } => inline(name, embedding, id, of.unwrap_or_default(), model).map(Wanted::Inline),
        })
        .collect::<Result<_, _>>()?;
    Ok(Checked {
        decoder,
        speakers,
        model,
        hop_ms,
        latency_ms,
        options,
    })
}

impl Checked {
    /// The plan once every speaker is resolved (in the order asked); ids must be unique.
    pub(crate) fn into_plan(self, enrolled: Vec<EnrolledSpeaker>) -> Result<Plan, Fatal> {
        unique_ids(&enrolled)?;
        let mut params = wire_params(&self.options);
        // Each model's scores have their own scale: CAM++'s default threshold is its own.
        if self.model == SpeakerModel::Campp && params.threshold.is_none() {
            params.threshold = Some(diglett_decision::scoring::DEFAULT_THRESHOLD_CAMPP);
        }
        Ok(Plan {
            decoder: self.decoder,
            enrolled,
            model: self.model,
            params,
            hop_ms: self.hop_ms,
            latency_ms: self.latency_ms,
            overlap: self.options.overlap,
        })
    }
}

/// Validates `start` and resolves its speakers against the tenant's profiles, in order.
pub(crate) async fn prepare(store: &Store, tenant: &str, start: Start) -> Result<Plan, Fatal> {
    let mut checked = check(start)?;
    let mut enrolled = Vec::with_capacity(checked.speakers.len());
    for wanted in std::mem::take(&mut checked.speakers) {
        enrolled.push(match wanted {
            Wanted::Profile(id) => profile(store, tenant, &id, checked.model).await?,
            Wanted::Inline(s) => s,
        });
    }
    checked.into_plan(enrolled)
}

/// The hop, the timeline's latency and the decision options, range-checked.
pub(crate) fn options(opts: &Options) -> Result<(u32, u32, SessionOptions), Fatal> {
    let hop_ms = opts.hop_ms.unwrap_or(protocol::DEFAULT_HOP_MS);
    if !protocol::HOP_MS_RANGE.contains(&hop_ms) {
        return Err(bad_start(format!("hop_ms {hop_ms} is outside 250-1600")));
    }
    let latency_ms = opts.latency_ms.unwrap_or(timeline::DEFAULT_LATENCY_MS);
    if !timeline::LATENCY_MS_RANGE.contains(&latency_ms) {
        return Err(bad_start(format!(
            "latency_ms {latency_ms} is outside {}-{}",
            timeline::LATENCY_MS_RANGE.start(),
            timeline::LATENCY_MS_RANGE.end()
        )));
    }
    for (name, v, lo, hi) in [
        ("threshold", opts.threshold, -1.0, 1.0),
        ("min_voiced", opts.min_voiced, 0.0, 1.0),
    ] {
        if v.is_some_and(|v| !(lo..=hi).contains(&v)) {
            return Err(bad_start(format!("{name} must be from {lo} to {hi}")));
        }
    }
    Ok((
        hop_ms,
        latency_ms,
        SessionOptions {
            threshold: opts.threshold,
            min_voiced: opts.min_voiced,
            overlap: opts.overlap == Some(true),
        },
    ))
}

async fn profile(
    store: &Store,
    tenant: &str,
    id: &str,
    model: SpeakerModel,
) -> Result<EnrolledSpeaker, Fatal> {
    match store.profile(tenant, id).await {
        Ok(p) => match p.embedding_for(model) {
            Some(e) => Ok(EnrolledSpeaker {
                embedding: e.to_vec(),
                id: p.id,
                name: Some(p.name),
            }),
            None => Err(model_unavailable(id, model)),
        },
        Err(Lookup::Unknown) => Err(unknown_profile(id)),
        Err(Lookup::Store(e)) => Err(Fatal::new(
            close::INTERNAL,
            "store_unavailable",
            e.to_string(),
        )),
    }
}

/// The answer to a profile that has no embedding of the session's model (it was enrolled
/// before that model was installed, and no audio is kept to compute one).
pub(crate) fn model_unavailable(id: &str, model: SpeakerModel) -> Fatal {
    Fatal::new(
        close::POLICY,
        "model_unavailable",
        format!(
            "speaker profile {:?} has no {} embedding (enrolled before the model was installed): \
             add a sample to it, or run the session with model ge2e",
            clip(id, 80),
            model.as_str()
        ),
    )
}

/// The answer to an id that is no profile of the tenant's.
pub(crate) fn unknown_profile(id: &str) -> Fatal {
    Fatal::new(
        close::POLICY,
        "unknown_profile",
        format!("no speaker profile {:?}", clip(id, 80)),
    )
}

/// A client-held signature: a name of 1–256 characters, an embedding of the session's model
/// (`of`, the model the client says made it, must be `session`'s: mixing models is refused) of
/// that model's length, finite and not all zero, an id (default: the name) of 1–256 characters.
pub(crate) fn inline(
    name: String,
    embedding: Vec<f32>,
    id: Option<String>,
    of: SpeakerModel,
    session: SpeakerModel,
) -> Result<EnrolledSpeaker, Fatal> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(bad_start(
            "an inline speaker needs a name of 1-256 characters",
        ));
    }
    if of != session {
        return Err(bad_start(format!(
            "speaker {:?}: a {} signature in a {} session (every speaker must be of the \
             session's model; set options.model or send that model's signature)",
            clip(&name, 80),
            of.as_str(),
            session.as_str()
        )));
    }
    let dim = of.dim();
    if embedding.len() != dim
        || embedding.iter().any(|x| !x.is_finite())
        || embedding.iter().all(|&x| x == 0.0)
    {
        return Err(bad_start(format!(
            "speaker {:?}: a {} embedding must be {dim} finite numbers, not all zero",
            clip(&name, 80),
            of.as_str()
        )));
    }
    let id = id.unwrap_or_else(|| name.clone());
    if id.is_empty() || id.chars().count() > MAX_NAME_CHARS {
        return Err(bad_start("an inline speaker id must be 1-256 characters"));
    }
    Ok(EnrolledSpeaker {
        id,
        name: Some(name),
        embedding,
    })
}

fn unique_ids(enrolled: &[EnrolledSpeaker]) -> Result<(), Fatal> {
    for (i, s) in enrolled.iter().enumerate() {
        if enrolled[..i].iter().any(|o| o.id == s.id) {
            return Err(bad_start(format!(
                "speaker {:?} is listed twice",
                clip(&s.id, 80)
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn options_are_range_checked() {
        let (hop, latency, o) = options(&Options::default()).unwrap();
        assert_eq!(
            (hop, latency, o.overlap),
            (
                protocol::DEFAULT_HOP_MS,
                timeline::DEFAULT_LATENCY_MS,
                false
            )
        );
        for bad in [
            Options {
                hop_ms: Some(100),
                ..Options::default()
            },
            Options {
                threshold: Some(1.5),
                ..Options::default()
            },
            Options {
                min_voiced: Some(-0.1),
                ..Options::default()
            },
            Options {
                latency_ms: Some(3001),
                ..Options::default()
            },
        ] {
            assert_eq!(options(&bad).err().unwrap().error, "bad_start");
        }
    }

    #[test]
    fn inline_signatures_are_checked() {
        let g = SpeakerModel::Ge2e;
        let ok = vec![0.1; g.dim()];
        let s = inline("Ada".into(), ok.clone(), None, g, g).unwrap();
        assert_eq!(s.id, "Ada");
        assert!(inline(String::new(), ok.clone(), None, g, g).is_err());
        assert!(inline("Ada".into(), vec![0.0; g.dim()], None, g, g).is_err());
        assert!(inline("Ada".into(), vec![0.1; 3], None, g, g).is_err());
        let mut nan = ok.clone();
        nan[7] = f32::NAN;
        assert!(inline("Ada".into(), nan, None, g, g).is_err());
        assert!(inline("Ada".into(), ok.clone(), Some(String::new()), g, g).is_err());
        let twice = [s.clone(), s];
        assert!(unique_ids(&twice).is_err());
    }

    #[test]
    fn a_session_runs_one_model() {
        let (g, c) = (SpeakerModel::Ge2e, SpeakerModel::Campp);
        // CAM++ signatures are 192 long, in a CAM++ session only.
        assert!(inline("Ada".into(), vec![0.1; 192], None, c, c).is_ok());
        let mixed = inline("Ada".into(), vec![0.1; 192], None, c, g)
            .err()
            .unwrap();
        assert_eq!(mixed.error, "bad_start");
        assert!(mixed.message.contains("campp signature in a ge2e session"));
        assert!(inline("Ada".into(), vec![0.1; 256], None, g, c).is_err());
        // A GE2E-length vector said to be CAM++'s is refused for its length.
        assert!(inline("Ada".into(), vec![0.1; 256], None, c, c).is_err());
    }

    #[test]
    fn a_campp_session_gets_campp_defaults_and_refuses_ge2e_only_profiles() {
        let start = |model: Option<SpeakerModel>, threshold: Option<f32>| Start {
            audio: diglett_api::protocol::AudioFormat::PCM_S16LE_16K_MONO,
            speakers: vec![SpeakerRef::Inline {
                name: "Ada".into(),
                embedding: vec![0.1; model.unwrap_or_default().dim()],
                id: None,
                model,
            }],
            options: Options {
                model,
                threshold,
                ..Options::default()
            },
        };
        let plan = |s: Start| {
            let mut c = check(s).ok().unwrap();
            let enrolled = c
                .speakers
                .drain(..)
                .map(|w| match w {
                    Wanted::Inline(s) => s,
                    Wanted::Profile(_) => unreachable!(),
                })
                .collect();
            c.into_plan(enrolled).ok().unwrap()
        };
        let p = plan(start(Some(SpeakerModel::Campp), None));
        assert_eq!(p.model, SpeakerModel::Campp);
        assert_eq!(
            p.params.threshold,
            Some(diglett_decision::scoring::DEFAULT_THRESHOLD_CAMPP)
        );
        let p = plan(start(Some(SpeakerModel::Campp), Some(0.4)));
        assert_eq!(p.params.threshold, Some(0.4));
        let p = plan(start(None, None));
        assert_eq!(p.model, SpeakerModel::Ge2e);
        assert_eq!(p.params.threshold, None);
        let f = model_unavailable("5b1f0c1e-0000-4000-8000-000000000000", SpeakerModel::Campp);
        assert_eq!(f.error, "model_unavailable");
        assert!(f.message.contains("no campp embedding"));
    }

    /// A profile made before CAM++ (GE2E only) serves GE2E sessions and is refused, with a
    /// clear error, by a CAM++ session; one with both embeddings serves both.
    #[tokio::test]
    async fn profiles_serve_the_models_they_have() {
        let dir = std::env::temp_dir().join(format!("diglett-start-{}", uuid::Uuid::new_v4()));
        let store = Store::open_embedded(&dir).await.unwrap();
        let g: Vec<f32> = (0..256).map(|i| 1.0 + (i % 7) as f32).collect();
        let c: Vec<f32> = (0..192).map(|i| 1.0 + (i % 5) as f32).collect();
        let old = store.create("t", "Old", &g, 3.0).await.unwrap();
        let new = store
            .create_with("t", "New", &g, Some(&c), 3.0)
            .await
            .unwrap();
        let start = |id: &str, model: Option<SpeakerModel>| Start {
            audio: diglett_api::protocol::AudioFormat::PCM_S16LE_16K_MONO,
            speakers: vec![SpeakerRef::Id(id.into())],
            options: Options {
                model,
                ..Options::default()
            },
        };
        let plan = prepare(&store, "t", start(&old.id, None))
            .await
            .ok()
            .unwrap();
        assert_eq!(plan.model, SpeakerModel::Ge2e);
        assert_eq!(plan.enrolled[0].embedding, old.embedding);
        let refused = prepare(&store, "t", start(&old.id, Some(SpeakerModel::Campp)))
            .await
            .err()
            .unwrap();
        assert_eq!(refused.error, "model_unavailable");
        let plan = prepare(&store, "t", start(&new.id, Some(SpeakerModel::Campp)))
            .await
            .ok()
            .unwrap();
        assert_eq!(plan.enrolled[0].embedding.len(), 192);
        assert_eq!(
            Some(plan.enrolled[0].embedding.as_slice()),
            new.campp.as_deref()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
