//! NATS connection checks.

use async_nats::Client;
use futures_util::StreamExt;

/// A round trip through the server: publishes to a fresh inbox of this connection and waits
/// for the message to come back. When it returns, the server has processed everything this
/// connection sent before, and this connection has read everything the server routed to it
/// before that (the server keeps one ordered outbound stream per connection). The worker
/// drains with it; the gateway's readiness check uses it.
pub async fn round_trip(
    client: &Client,
    timeout: std::time::Duration,
) -> Result<(), async_nats::Error> {
    let inbox = client.new_inbox();
    let mut sub = client.subscribe(inbox.clone()).await?;
    client.publish(inbox, bytes::Bytes::new()).await?;
    tokio::time::timeout(timeout, sub.next())
        .await?
        .ok_or("round-trip subscription closed")?;
    Ok(())
}
