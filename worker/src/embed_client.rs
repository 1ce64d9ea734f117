//! The client side of `diglett.v1.embed`, including the chunked upload (see
//! [`diglett_schemas::embed`]). It lives beside the worker, which serves the other side, so that
//! `diglett-schemas` stays wire types only (no NATS client).

use std::time::Duration;

use async_nats::{Client, Request};
use bytes::Bytes;
use futures_util::StreamExt;

use diglett_schemas::embed::{
    EmbedReply, EmbedRequest, MIN_PART_BYTES, PartRequest, PcmPart, unix_ms_now,
};
use diglett_schemas::{SAMPLE_RATE, SCHEMA_VERSION, codec, subjects};

/// Room left in every part for the message's other fields and MessagePack framing; generous,
/// because the name is free text (the worker caps it at 256 bytes).
pub const PART_HEADROOM: usize = 64 * 1024;

/// Default time to wait for the reply (covers fetching all parts and the inference).
pub const DEFAULT_EMBED_TIMEOUT: Duration = Duration::from_secs(30);

/// Options of [`embed_request_with`].
#[derive(Debug, Clone, Copy)]
pub struct EmbedOptions {
    /// Largest PCM part in bytes; `None`: the server's `max_payload` − [`PART_HEADROOM`].
    /// Never more than that, nor less than [`MIN_PART_BYTES`], whatever is set here (tests set
    /// it smaller to force many parts).
    pub part_bytes: Option<usize>,
    /// Time to wait for the reply.
    pub timeout: Duration,
}

impl Default for EmbedOptions {
    fn default() -> Self {
        Self {
            part_bytes: None,
            timeout: DEFAULT_EMBED_TIMEOUT,
        }
    }
}

/// Why [`embed_request`] got no reply.
#[derive(Debug, thiserror::Error)]
pub enum EmbedClientError {
    /// The PCM is not whole `i16` samples.
    #[error("PCM has an odd number of bytes ({0})")]
    OddLength(usize),
    /// The server's `max_payload` leaves no room for audio.
    #[error("server max_payload {0} is too small for audio parts")]
    PayloadTooSmall(usize),
    /// No worker is subscribed to `diglett.v1.embed`.
    #[error("no embed worker is running")]
    NoResponders,
    /// No reply in time.
    #[error("embed request timed out")]
    TimedOut,
    /// Another NATS failure.
    #[error("NATS: {0}")]
    Nats(String),
    /// The reply could not be decoded.
    #[error(transparent)]
    Codec(#[from] codec::CodecError),
}

/// Largest even number of PCM bytes per part for a server with this `max_payload`.
pub fn part_bytes_for(max_payload: usize) -> usize {
    max_payload.saturating_sub(PART_HEADROOM) & !1
}

/// Sends 16 kHz mono little-endian `i16` `pcm` for enrollment and waits for the reply, splitting
/// it into parts that fit the connected server's `max_payload`.
pub async fn embed_request(
    client: &Client,
    pcm: &[u8],
    name: Option<&str>,
) -> Result<EmbedReply, EmbedClientError> {
    embed_request_with(client, pcm, name, EmbedOptions::default()).await
}

/// Aborts the part server when the request ends, whichever way.
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// [`embed_request`] with options.
pub async fn embed_request_with(
    client: &Client,
    pcm: &[u8],
    name: Option<&str>,
    opts: EmbedOptions,
) -> Result<EmbedReply, EmbedClientError> {
    if !pcm.len().is_multiple_of(2) {
        return Err(EmbedClientError::OddLength(pcm.len()));
    }
    let max_payload = client.server_info().max_payload;
    let limit = part_bytes_for(max_payload);
    if limit < 2 {
        return Err(EmbedClientError::PayloadTooSmall(max_payload));
    }
    let part = opts
        .part_bytes
        .map_or(limit, |p| p.max(MIN_PART_BYTES).min(limit) & !1)
        .max(2);
    let pcm = Bytes::copy_from_slice(pcm);
    let parts: Vec<Bytes> = if pcm.is_empty() {
        vec![Bytes::new()]
    } else {
        (0..pcm.len())
            .step_by(part)
            .map(|s| pcm.slice(s..(s + part).min(pcm.len())))
            .collect()
    };
    let inbox = client.new_inbox();
    // The inbox's unique token doubles as the request id.
    let request_id = inbox.rsplit('.').next().unwrap_or(&inbox).to_owned();
    let nats = |e: &dyn std::fmt::Display| EmbedClientError::Nats(e.to_string());

    let mut _server = None;
    let mut parts_subject = None;
    if parts.len() > 1 {
        let subject = format!("{inbox}.parts");
        // Subscribed before the request is published on the same connection, so the server
        // knows the subscription before any worker can ask for a part.
        let mut sub = client
            .subscribe(subject.clone())
            .await
            .map_err(|e| nats(&e))?;
        let (client, id, parts) = (client.clone(), request_id.clone(), parts.clone());
        _server = Some(AbortOnDrop(tokio::spawn(async move {
            while let Some(msg) = sub.next().await {
                let Some(reply) = msg.reply else { continue };
                let Ok(req) = codec::decode::<PartRequest>(&msg.payload) else {
                    continue;
                };
                let Some(pcm) = parts
                    .get(req.index as usize)
                    .filter(|_| req.request_id == id)
                else {
                    continue;
                };
                let part = PcmPart {
                    v: SCHEMA_VERSION,
                    request_id: id.clone(),
                    index: req.index,
                    pcm: pcm.to_vec(),
                };
                if let Ok(bytes) = codec::encode(&part)
                    && let Err(e) = client.publish(reply, bytes.into()).await
                {
                    tracing::warn!(error = %e, "cannot send an embed part");
                }
            }
        })));
        parts_subject = Some(subject);
    }

    let request = EmbedRequest {
        v: SCHEMA_VERSION,
        request_id,
        name: name.map(str::to_owned),
        sample_rate: SAMPLE_RATE,
        total_samples: (pcm.len() / 2) as u64,
        parts: parts.len() as u32,
        parts_subject,
        pcm: parts[0].to_vec(),
        expires_at_unix_ms: Some(
            unix_ms_now()
                .saturating_add(u64::try_from(opts.timeout.as_millis()).unwrap_or(u64::MAX)),
        ),
    };
    let payload = codec::encode(&request)?;
    let reply = client
        .send_request(
            subjects::EMBED,
            Request::new()
                .payload(payload.into())
                .timeout(Some(opts.timeout)),
        )
        .await
        .map_err(|e| match e.kind() {
            async_nats::RequestErrorKind::NoResponders => EmbedClientError::NoResponders,
            async_nats::RequestErrorKind::TimedOut => EmbedClientError::TimedOut,
            _ => nats(&e),
        })?;
    Ok(codec::decode(&reply.payload)?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn part_sizes() {
        assert_eq!(part_bytes_for(1024 * 1024), 1024 * 1024 - 64 * 1024);
        assert_eq!(part_bytes_for(100), 0);
        assert_eq!(part_bytes_for(64 * 1024 + 3), 2);
        // 60 s of 16 kHz i16 needs 2 parts at the default 1 MiB.
        assert_eq!((60 * 16_000 * 2usize).div_ceil(part_bytes_for(1 << 20)), 2);
    }
}
