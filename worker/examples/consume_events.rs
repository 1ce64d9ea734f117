//! Replays Diglett's verification results and session events from the `DIGLETT_EVENTS`
//! JetStream stream, then follows new ones.
//!
//! ```text
//! DIGLETT_NATS_URL=nats://127.0.0.1:4222 cargo run --release -p diglett-worker \
//!     --example consume_events -- [SUBJECT_FILTER]
//! ```
//! The filter defaults to `diglett.v1.>` (results and events of every session); use e.g.
//! `diglett.v1.results.my-session` for one session. The consumer is ordered and ephemeral:
//! it starts at the oldest message the stream still holds (24 h by default) and keeps no
//! server-side state. Stop with Ctrl-C.

use anyhow::Context;
use async_nats::jetstream::{self, consumer::pull::OrderedConfig};
use diglett_schemas::{SessionEvent, WindowResult, codec, subjects};
use futures_util::StreamExt;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DIGLETT_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into());
    let filter = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "diglett.v1.>".into());
    let client = async_nats::connect(&url)
        .await
        .with_context(|| format!("connecting to {url}"))?;
    let js = jetstream::new(client);
    let stream = js
        .get_stream(subjects::EVENTS_STREAM)
        .await
        .context("the DIGLETT_EVENTS stream (start a worker first)")?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    loop {
        let msg = tokio::select! {
            m = messages.next() => match m {
                Some(m) => m?,
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        };
        let subject = msg.subject.as_str();
        if subject.starts_with(subjects::RESULTS_PREFIX) {
            match codec::decode::<WindowResult>(&msg.payload) {
                Ok(r) => println!(
                    "{} #{:<5} {:>8.2}–{:<8.2} {:<8} {:<12} best {:>6} voiced {:.2} {:.1} dBFS",
                    r.session,
                    r.seq,
                    r.start,
                    r.end,
                    r.label.as_str(),
                    r.speaker_id.as_deref().unwrap_or("-"),
                    r.best_score.map_or("-".into(), |s| format!("{s:.3}")),
                    r.speech.voiced_fraction,
                    r.loudness.dbfs,
                ),
                Err(e) => println!("{subject}: undecodable result: {e}"),
            }
        } else {
            match codec::decode::<SessionEvent>(&msg.payload) {
                Ok(e) => println!("{} event {:?}", e.session, e.event),
                Err(e) => println!("{subject}: undecodable event: {e}"),
            }
        }
    }
    Ok(())
}
