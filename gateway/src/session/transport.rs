//! Talking to the client: messages sent with a timeout, fatal errors, close frames.

use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, Utf8Bytes};
use diglett_api::protocol::{ServerMessage, close};
use futures_util::{Sink, SinkExt};

use super::render;

/// A client that does not read its results for this long is dropped.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a session ends, and how it closes.
pub(crate) struct Close {
    pub code: u16,
    pub reason: &'static str,
}

/// The client is gone: nothing more to send.
pub(crate) fn gone() -> Close {
    Close {
        code: 0,
        reason: "client_closed",
    }
}

/// A fatal protocol error: sent as an `error` message, then a close frame.
#[derive(Debug)]
pub(crate) struct Fatal {
    pub code: u16,
    pub error: &'static str,
    pub message: String,
}

impl Fatal {
    pub(crate) fn new(code: u16, error: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            error,
            message: message.into(),
        }
    }
}

/// Sends a server message; `false` if the client is gone or too slow.
pub(crate) async fn send<S>(socket: &mut S, msg: &ServerMessage) -> bool
where
    S: Sink<Message> + Unpin,
{
    let Ok(text) = serde_json::to_string(msg) else {
        return false;
    };
    matches!(
        tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Text(text.into()))).await,
        Ok(Ok(()))
    )
}

pub(crate) async fn close_with<S>(socket: &mut S, code: u16, reason: &str)
where
    S: Sink<Message> + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: Utf8Bytes::from(reason),
    };
    let _ = tokio::time::timeout(SEND_TIMEOUT, socket.send(Message::Close(Some(frame)))).await;
}

pub(crate) async fn fail<S>(socket: &mut S, f: Fatal)
where
    S: Sink<Message> + Unpin,
{
    // The client's mistake (bad start, bad frame, unknown profile) is `info`; only a failure
    // of ours (close code 1011) is an `error`. The session's span carries its id.
    if f.code == close::INTERNAL {
        tracing::error!(code = f.error, close = f.code, detail = %f.message, "session failed");
    } else {
        tracing::info!(code = f.error, close = f.code, detail = %f.message, "session refused");
    }
    send(
        socket,
        &ServerMessage::Error {
            code: f.error.into(),
            message: f.message.clone(),
            seq: None,
        },
    )
    .await;
    // Close reasons are limited to 123 bytes.
    close_with(socket, f.code, render::clip(&f.message, 120)).await;
}

pub(crate) fn message(code: &str, message: impl Into<String>) -> ServerMessage {
    ServerMessage::Error {
        code: code.into(),
        message: message.into(),
        seq: None,
    }
}
