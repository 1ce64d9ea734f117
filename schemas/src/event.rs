//! Session events on `diglett.v1.events.<session>`, published by the gateway.

use serde::{Deserialize, Serialize};

use crate::codec::current_version;

/// Something that happened in a session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionEvent {
    /// Schema version.
    #[serde(default = "current_version")]
    pub v: u32,
    /// Session id.
    pub session: String,
    /// Wall-clock time of the event, ms since the Unix epoch.
    pub at_unix_ms: u64,
    /// What happened.
    pub event: EventKind,
}

/// The kinds of session events. Internally tagged (`type` field) so that a reader meets an
/// unknown kind from a newer writer as [`EventKind::Other`] instead of an error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum EventKind {
    /// The session started with these enrolled speakers (ids).
    Started {
        /// Enrolled speaker ids.
        speakers: Vec<String>,
    },
    /// The session ended.
    Ended {
        /// Why (`client_closed`, `timeout`, `error`, …).
        reason: String,
        /// Windows sent to workers during the session.
        windows: u64,
    },
    /// The current speaker changed (after the gateway's smoothing).
    SpeakerTurn {
        /// The new speaker's id; `None` for unknown speech or silence.
        #[serde(default)]
        speaker_id: Option<String>,
        /// Its name.
        #[serde(default)]
        speaker_name: Option<String>,
        /// The label that started the turn (`speaker`, `unknown`, `overlap`, `silence`).
        label: String,
        /// Start of the turn, stream time (s).
        start: f64,
    },
    /// An event kind this reader does not know.
    #[serde(other)]
    Other,
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::codec::tests::{ignores_unknown_field, round_trip};

    fn events() -> Vec<SessionEvent> {
        [
            EventKind::Started {
                speakers: vec!["a".into(), "b".into()],
            },
            EventKind::Ended {
                reason: "client_closed".into(),
                windows: 12,
            },
            EventKind::SpeakerTurn {
                speaker_id: Some("a".into()),
                speaker_name: Some("Ada".into()),
                label: "speaker".into(),
                start: 3.2,
            },
            EventKind::SpeakerTurn {
                speaker_id: None,
                speaker_name: None,
                label: "silence".into(),
                start: 4.8,
            },
        ]
        .into_iter()
        .map(|event| SessionEvent {
            v: 1,
            session: "s1".into(),
            at_unix_ms: 1_700_000_000_000,
            event,
        })
        .collect()
    }

    #[test]
    fn round_trips() {
        for e in events() {
            round_trip(&e);
            ignores_unknown_field(&e);
        }
    }

    #[test]
    fn unknown_event_kind_is_other() {
        #[derive(Serialize)]
        struct Future {
            #[serde(rename = "type")]
            kind: &'static str,
            volume: u32,
        }
        #[derive(Serialize)]
        struct Ev {
            v: u32,
            session: &'static str,
            at_unix_ms: u64,
            event: Future,
        }
        let bytes = crate::encode(&Ev {
            v: 1,
            session: "s",
            at_unix_ms: 1,
            event: Future {
                kind: "muted",
                volume: 0,
            },
        })
        .unwrap();
        let e: SessionEvent = crate::decode(&bytes).unwrap();
        assert_eq!(e.event, EventKind::Other);
    }
}
