//! Subject names: the single place they are spelled.
//!
//! The `v1` in every subject is the *protocol* generation: a worker for `v1` never sees traffic
//! for a future `v2`. Within `v1`, messages evolve by adding named fields.

/// Enrollment embedding, request/reply: [`crate::EmbedRequest`] → [`crate::EmbedReply`].
pub const EMBED: &str = "diglett.v1.embed";

/// Prefix of per-session window subjects (`diglett.v1.windows.<session>`).
pub const WINDOWS_PREFIX: &str = "diglett.v1.windows";
/// Every session's windows (what workers subscribe to).
pub const WINDOWS_ALL: &str = "diglett.v1.windows.*";

/// Prefix of per-session result subjects (`diglett.v1.results.<session>`).
pub const RESULTS_PREFIX: &str = "diglett.v1.results";
/// Every session's results.
pub const RESULTS_ALL: &str = "diglett.v1.results.>";

/// Prefix of per-session event subjects (`diglett.v1.events.<session>`).
pub const EVENTS_PREFIX: &str = "diglett.v1.events";
/// Every session's events.
pub const EVENTS_ALL: &str = "diglett.v1.events.>";

/// The queue group workers share, so that each request or window goes to one worker.
pub const WORKER_QUEUE_GROUP: &str = "diglett-workers";

/// The JetStream stream that keeps results and events for replay.
pub const EVENTS_STREAM: &str = "DIGLETT_EVENTS";

/// Why a session id cannot be used in a subject.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid session id {0:?}: use 1 to 128 characters from [A-Za-z0-9_-]")]
pub struct InvalidSession(pub String);

/// Longest accepted session id (bytes).
pub const MAX_SESSION_LEN: usize = 128;

/// Checks that `session` is one NATS subject token we can round-trip: 1 to
/// [`MAX_SESSION_LEN`] characters from `[A-Za-z0-9_-]` (no `.`, `*`, `>` or whitespace, which
/// would change the subject's meaning).
pub fn validate_session(session: &str) -> Result<(), InvalidSession> {
    let ok = !session.is_empty()
        && session.len() <= MAX_SESSION_LEN
        && session
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(InvalidSession(session.to_owned()))
    }
}

/// `diglett.v1.windows.<session>`.
pub fn windows(session: &str) -> Result<String, InvalidSession> {
    validate_session(session)?;
    Ok(format!("{WINDOWS_PREFIX}.{session}"))
}

/// `diglett.v1.results.<session>`.
pub fn results(session: &str) -> Result<String, InvalidSession> {
    validate_session(session)?;
    Ok(format!("{RESULTS_PREFIX}.{session}"))
}

/// `diglett.v1.events.<session>`.
pub fn events(session: &str) -> Result<String, InvalidSession> {
    validate_session(session)?;
    Ok(format!("{EVENTS_PREFIX}.{session}"))
}

/// Prefix of NATS client inboxes (`Client::new_inbox`), the only place a chunked upload's
/// parts subject may be.
pub const INBOX_PREFIX: &str = "_INBOX.";

/// Longest accepted parts subject (bytes); an async-nats inbox plus `.parts` is about 36.
pub const MAX_PARTS_SUBJECT_LEN: usize = 256;

/// Whether a worker may send [`crate::PartRequest`]s to `subject`: a literal subject (no `*`
/// or `>`) under [`INBOX_PREFIX`], of printable ASCII without empty tokens, at most
/// [`MAX_PARTS_SUBJECT_LEN`] bytes. Anything else would let a client make the worker publish
/// on another service's subject.
pub fn is_valid_parts_subject(subject: &str) -> bool {
    subject.len() <= MAX_PARTS_SUBJECT_LEN
        && subject
            .bytes()
            .all(|b| b.is_ascii_graphic() && b != b'*' && b != b'>')
        && subject
            .strip_prefix(INBOX_PREFIX)
            .is_some_and(|rest| !rest.is_empty() && rest.split('.').all(|t| !t.is_empty()))
}

/// The session token of a `diglett.v1.windows.<session>` subject, if it is one.
pub fn session_of_window_subject(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(WINDOWS_PREFIX)?
        .strip_prefix('.')
        .filter(|s| validate_session(s).is_ok())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn builders_and_parsing() {
        assert_eq!(windows("s-1").as_deref(), Ok("diglett.v1.windows.s-1"));
        assert_eq!(results("s_1").as_deref(), Ok("diglett.v1.results.s_1"));
        assert_eq!(events("abc").as_deref(), Ok("diglett.v1.events.abc"));
        for bad in ["", "a.b", "*", ">", "a b", &"x".repeat(129)] {
            assert!(windows(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            session_of_window_subject("diglett.v1.windows.s-1"),
            Some("s-1")
        );
        assert_eq!(session_of_window_subject("diglett.v1.windowsX.s"), None);
        assert_eq!(session_of_window_subject("diglett.v1.results.s"), None);
    }

    #[test]
    fn parts_subjects() {
        assert!(is_valid_parts_subject("_INBOX.abc123.parts"));
        assert!(is_valid_parts_subject("_INBOX.x"));
        let long = format!("_INBOX.{}", "x".repeat(MAX_PARTS_SUBJECT_LEN));
        for bad in [
            "",
            "_INBOX.",
            "_INBOX",
            "_INBOX..x",
            "_INBOX.x.",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOX.a*b",
            "_INBOX.a b",
            "_INBOX.a\tb",
            "diglett.v1.results.victim",
            "$JS.API.STREAM.DELETE.DIGLETT_EVENTS",
            "x._INBOX.y",
            &long,
        ] {
            assert!(!is_valid_parts_subject(bad), "{bad:?}");
        }
    }
}
