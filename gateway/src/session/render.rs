//! What the client is shown: window results, turns and the summary, with the session's
//! speaker names.

use diglett_api::protocol::{self, ServerMessage, SpeakerInfo, TurnMsg, WindowResultMsg};
use diglett_decision::timeline::Segment;
use diglett_decision::turns::Turn;
use diglett_schemas::{EnrolledSpeaker, SAMPLE_RATE, WindowResult};
use tokio::time::Instant;

pub(crate) use diglett_schemas::clip;

/// A speaker of the session as the client sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Speaker {
    pub id: String,
    /// Unique within the session.
    pub name: String,
}

/// The session's speakers, in `start` order: names made unique (a repeated name gets its id's
/// first 8 characters).
#[derive(Debug)]
pub(crate) struct Speakers(Vec<Speaker>);

impl Speakers {
    pub(crate) fn new(enrolled: &[EnrolledSpeaker]) -> Self {
        let name_of = |s: &EnrolledSpeaker| s.name.clone().unwrap_or_else(|| s.id.clone());
        Self(
            enrolled
                .iter()
                .map(|s| {
                    let name = name_of(s);
                    let repeated = enrolled.iter().filter(|o| name_of(o) == name).count() > 1;
                    Speaker {
                        id: s.id.clone(),
                        name: if repeated {
                            format!("{name} ({})", clip(&s.id, 8))
                        } else {
                            name
                        },
                    }
                })
                .collect(),
        )
    }

    /// How many.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    /// The index of the speaker with this id.
    pub(crate) fn index(&self, id: Option<&str>) -> Option<usize> {
        let id = id?;
        self.0.iter().position(|s| s.id == id)
    }

    /// For `ready`.
    pub(crate) fn info(&self) -> Vec<SpeakerInfo> {
        self.0
            .iter()
            .map(|s| SpeakerInfo {
                id: s.id.clone(),
                name: s.name.clone(),
            })
            .collect()
    }

    /// A worker's result as the `result` message.
    pub(crate) fn result(&self, r: &WindowResult, arrival: Instant) -> WindowResultMsg {
        let who = self.index(r.speaker_id.as_deref()).map(|i| &self.0[i]);
        WindowResultMsg {
            seq: r.seq,
            start: r.start,
            end: r.end,
            label: r.label.as_str().to_owned(),
            speaker: who.map(|s| s.name.clone()),
            speaker_id: who.map(|s| s.id.clone()),
            score: r.best_score,
            scores: r
                .scores
                .iter()
                .filter_map(|s| {
                    let i = self.index(Some(&s.id))?;
                    Some((self.0[i].name.clone(), s.score))
                })
                .collect(),
            speech: r.speech.voiced_fraction,
            volume: r.loudness.dbfs,
            lufs: r.loudness.lufs,
            latency_ms: arrival.elapsed().as_secs_f64() * 1e3,
            timeline: Vec::new(),
        }
    }

    /// Frame-timeline runs as the client sees them.
    pub(crate) fn segments(&self, segments: &[Segment]) -> Vec<protocol::Segment> {
        segments
            .iter()
            .map(|s| {
                let who = s.speaker.and_then(|i| self.0.get(i));
                protocol::Segment {
                    start: s.start,
                    end: s.end,
                    label: s.label.as_str().to_owned(),
                    speaker: who.map(|w| w.name.clone()),
                    speaker_id: who.map(|w| w.id.clone()),
                }
            })
            .collect()
    }

    /// The result's scores in session order (NaN for a speaker without a score), for the turn
    /// smoother.
    pub(crate) fn scores(&self, r: &WindowResult) -> Vec<f32> {
        let mut scores = vec![f32::NAN; self.len()];
        for s in &r.scores {
            if let Some(i) = self.index(Some(&s.id)) {
                scores[i] = s.score;
            }
        }
        scores
    }

    /// A smoothed turn as the `turn` message.
    pub(crate) fn turn(&self, turn: &Turn) -> TurnMsg {
        let who = turn.speaker.and_then(|i| self.0.get(i));
        TurnMsg {
            label: turn.label.as_str().to_owned(),
            speaker: who.map(|s| s.name.clone()),
            speaker_id: who.map(|s| s.id.clone()),
            start: turn.start,
            end: turn.end,
        }
    }

    /// The `summary` message: `total` samples received, talk time per speaker.
    pub(crate) fn summary(
        &self,
        total: u64,
        talk: Vec<f64>,
        windows: u64,
        dropped: u64,
        timeline: Vec<protocol::Segment>,
    ) -> ServerMessage {
        ServerMessage::Summary {
            duration: total as f64 / f64::from(SAMPLE_RATE),
            talk_time: self
                .0
                .iter()
                .zip(talk)
                .map(|(s, t)| (s.name.clone(), t))
                .collect(),
            windows,
            dropped,
            timeline,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn enrolled(id: &str, name: Option<&str>) -> EnrolledSpeaker {
        EnrolledSpeaker {
            id: id.into(),
            name: name.map(str::to_owned),
            embedding: Vec::new(),
        }
    }

    #[test]
    fn repeated_names_get_their_id() {
        let s = Speakers::new(&[
            enrolled("0b9e6c1e-aaaa", Some("Alice")),
            enrolled("5d2a0000-bbbb", Some("Alice")),
            enrolled("bob", None),
        ]);
        let names: Vec<String> = s.info().into_iter().map(|i| i.name).collect();
        assert_eq!(names, ["Alice (0b9e6c1e)", "Alice (5d2a0000)", "bob"]);
        assert_eq!(s.index(Some("bob")), Some(2));
        assert_eq!(s.index(None), None);
        assert_eq!(clip("héllo", 2), "h");
    }
}
