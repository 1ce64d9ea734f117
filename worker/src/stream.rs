//! The `DIGLETT_EVENTS` JetStream stream: results and session events kept for replay.

use std::time::Duration;

use async_nats::jetstream::{self, stream};
use diglett_schemas::subjects;

/// The stream could not be created or updated.
#[derive(Debug, thiserror::Error)]
#[error("cannot ensure JetStream stream {name}: {message}")]
pub struct StreamError {
    /// Stream name.
    pub name: &'static str,
    /// The server's or client's message.
    pub message: String,
}

/// The stream's configuration: file storage, `diglett.v1.results.>` and `diglett.v1.events.>`,
/// limited by age and size (the oldest messages go first).
pub fn config(max_age: Duration, max_bytes: u64) -> stream::Config {
    stream::Config {
        name: subjects::EVENTS_STREAM.to_owned(),
        subjects: vec![
            subjects::RESULTS_ALL.to_owned(),
            subjects::EVENTS_ALL.to_owned(),
        ],
        max_age,
        max_bytes: i64::try_from(max_bytes).unwrap_or(i64::MAX),
        storage: stream::StorageType::File,
        discard: stream::DiscardPolicy::Old,
        ..Default::default()
    }
}

/// Creates the stream, or updates it to this configuration (several workers may race here;
/// both calls are idempotent).
pub async fn ensure(
    client: &async_nats::Client,
    max_age: Duration,
    max_bytes: u64,
) -> Result<stream::Info, StreamError> {
    let js = jetstream::new(client.clone());
    let err = |e: &dyn std::fmt::Display| StreamError {
        name: subjects::EVENTS_STREAM,
        message: e.to_string(),
    };
    js.create_or_update_stream(config(max_age, max_bytes))
        .await
        .map_err(|e| err(&e))
}
