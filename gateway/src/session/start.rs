//! The `start` message: validated, its speakers resolved (profiles from the store, inline
//! signatures checked), and its options turned into the session's parameters.

use diglett_api::protocol::{self, Options, SpeakerRef, Start, close};
use diglett_decision::params::{SessionOptions, wire_params};
use diglett_decision::timeline;
use diglett_schemas::{DecisionParams, EMBEDDING_DIM, EnrolledSpeaker, SAMPLE_RATE};

use super::Fatal;
use super::pcm::PcmDecoder;
use super::render::clip;
use crate::store::{Lookup, Store};

use diglett_api::rest::MAX_NAME_CHARS;

/// What a valid `start` sets up.
pub(crate) struct Plan {
    pub decoder: PcmDecoder,
    pub enrolled: Vec<EnrolledSpeaker>,
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
    let speakers = start
        .speakers
        .into_iter()
        .map(|s| match s {
            SpeakerRef::Id(id) => Ok(Wanted::Profile(id)),
            SpeakerRef::Inline {
                name,
                embedding,
                id,
            } => inline(name, embedding, id).map(Wanted::Inline),
        })
        .collect::<Result<_, _>>()?;
    Ok(Checked {
        decoder,
        speakers,
        hop_ms,
        latency_ms,
        options,
    })
}

impl Checked {
    /// The plan once every speaker is resolved (in the order asked); ids must be unique.
    pub(crate) fn into_plan(self, enrolled: Vec<EnrolledSpeaker>) -> Result<Plan, Fatal> {
        unique_ids(&enrolled)?;
        Ok(Plan {
            decoder: self.decoder,
            enrolled,
            params: wire_params(&self.options),
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
            Wanted::Profile(id) => profile(store, tenant, &id).await?,
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

async fn profile(store: &Store, tenant: &str, id: &str) -> Result<EnrolledSpeaker, Fatal> {
    match store.profile(tenant, id).await {
        Ok(p) => Ok(EnrolledSpeaker {
            id: p.id,
            name: Some(p.name),
            embedding: p.embedding,
        }),
        Err(Lookup::Unknown) => Err(unknown_profile(id)),
        Err(Lookup::Store(e)) => Err(Fatal::new(
            close::INTERNAL,
            "store_unavailable",
            e.to_string(),
        )),
    }
}

/// The answer to an id that is no profile of the tenant's.
pub(crate) fn unknown_profile(id: &str) -> Fatal {
    Fatal::new(
        close::POLICY,
        "unknown_profile",
        format!("no speaker profile {:?}", clip(id, 80)),
    )
}

/// A client-held signature: a name of 1–256 characters, [`EMBEDDING_DIM`] finite numbers not
/// all zero, an id (default: the name) of 1–256 characters.
pub(crate) fn inline(
    name: String,
    embedding: Vec<f32>,
    id: Option<String>,
) -> Result<EnrolledSpeaker, Fatal> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(bad_start(
            "an inline speaker needs a name of 1-256 characters",
        ));
    }
    if embedding.len() != EMBEDDING_DIM
        || embedding.iter().any(|x| !x.is_finite())
        || embedding.iter().all(|&x| x == 0.0)
    {
        return Err(bad_start(format!(
            "speaker {:?}: embedding must be {EMBEDDING_DIM} finite numbers, not all zero",
            clip(&name, 80)
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
        let ok = vec![0.1; EMBEDDING_DIM];
        let s = inline("Ada".into(), ok.clone(), None).unwrap();
        assert_eq!(s.id, "Ada");
        assert!(inline(String::new(), ok.clone(), None).is_err());
        assert!(inline("Ada".into(), vec![0.0; EMBEDDING_DIM], None).is_err());
        assert!(inline("Ada".into(), vec![0.1; 3], None).is_err());
        let mut nan = ok.clone();
        nan[7] = f32::NAN;
        assert!(inline("Ada".into(), nan, None).is_err());
        assert!(inline("Ada".into(), ok.clone(), Some(String::new())).is_err());
        let twice = [s.clone(), s];
        assert!(unique_ids(&twice).is_err());
    }
}
