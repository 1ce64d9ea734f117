//! The Redis backend across an outage: operations fail fast with
//! `Unavailable` while Redis is down (what `/readyz` reports as 503) and the
//! same `Store` recovers on its own when Redis comes back.
//!
//! Starts its own throwaway `redis-server` (no persistence) on a free local
//! port, so the shared test server is never stopped. Needs the `redis-server`
//! binary on PATH, or its path in `DIGLETT_TEST_REDIS_SERVER`; fails (does not
//! skip) without it.

#![allow(clippy::unwrap_used)]

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use diglett_gateway::store::{EMBEDDING_DIM, Store, StoreError};

struct Server(Child);

impl Server {
    fn start(port: u16) -> Self {
        let bin =
            std::env::var("DIGLETT_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(&bin)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("this test starts its own Redis and needs `{bin}` (set DIGLETT_TEST_REDIS_SERVER): {e}")
            });
        Server(child)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

async fn wait_until_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(
            Instant::now() < deadline,
            "redis-server did not start on port {port}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_outage_fails_fast_and_recovers() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = Server::start(port);
    wait_until_listening(port).await;
    let store = Store::connect_redis(&format!("redis://127.0.0.1:{port}"), "outage:")
        .await
        .unwrap();
    let embedding = vec![0.5f32; EMBEDDING_DIM];
    let profile = store.create("t", "n", &embedding, 1.0).await.unwrap();

    drop(server);
    for _ in 0..3 {
        let started = Instant::now();
        assert!(matches!(
            store.get("t", &profile.id).await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(matches!(
            store.ping().await,
            Err(StoreError::Unavailable(_))
        ));
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "took {:?}",
            started.elapsed()
        );
    }

    // Back (empty: no persistence); the same Store reconnects by itself.
    let _server = Server::start(port);
    wait_until_listening(port).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while store.ping().await.is_err() {
        assert!(Instant::now() < deadline, "store did not reconnect");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(store.get("t", &profile.id).await.unwrap(), None);
    let again = store.create("t", "n", &embedding, 1.0).await.unwrap();
    assert_eq!(store.get("t", &again.id).await.unwrap(), Some(again));
}
