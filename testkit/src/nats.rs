//! A real `nats-server` for tests, examples and benchmarks: JetStream on, its own store
//! directory, a free port on 127.0.0.1, killed (and its directory removed) on drop.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::Duration;

/// How long a server may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running `nats-server -js`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    store: PathBuf,
}

/// The server could not be started.
#[derive(Debug, thiserror::Error)]
pub enum NatsServerError {
    /// The binary is not installed.
    #[error("nats-server not found on PATH: apt-get install nats-server")]
    NotInstalled,
    /// Anything else.
    #[error("nats-server: {0}")]
    Start(String),
}

/// A port on 127.0.0.1 that was free a moment ago (bound, read, released).
pub fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

impl NatsServer {
    /// Starts a server on a free port; panics with one line if that fails (for tests).
    pub fn start() -> Self {
        Self::try_start().unwrap_or_else(|e| panic!("{e}"))
    }

    /// Starts a server on a free port.
    pub fn try_start() -> Result<Self, NatsServerError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let store = std::env::temp_dir().join(format!(
            "diglett-nats-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        // A port picked by the OS can be taken by someone else before the server binds it:
        // try a few.
        let mut last = None;
        for _ in 0..5 {
            let port = free_port().map_err(|e| NatsServerError::Start(e.to_string()))?;
            let mut server = Self {
                child: None,
                port,
                store: store.clone(),
            };
            match server.spawn() {
                Ok(()) => return Ok(server),
                Err(e @ NatsServerError::NotInstalled) => return Err(e),
                Err(e) => last = Some(e),
            }
        }
        Err(last.unwrap_or_else(|| NatsServerError::Start("no port".into())))
    }

    /// Starts a server on a free port below Linux's ephemeral range (32768–60999), so that
    /// after [`NatsServer::restart`] no other test's port-0 bind can have taken the port in
    /// the gap.
    pub fn start_for_restarts() -> Self {
        let base = 20_000 + (std::process::id() % 10_000) as u16;
        let store =
            std::env::temp_dir().join(format!("diglett-nats-restart-{}", std::process::id()));
        for offset in 0..200u16 {
            let port = 20_000 + (base - 20_000 + offset * 37) % 12_000;
            if TcpListener::bind(("127.0.0.1", port)).is_err() {
                continue;
            }
            let mut server = Self {
                child: None,
                port,
                store: store.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e @ NatsServerError::NotInstalled) => panic!("{e}"),
                Err(_) => continue,
            }
        }
        panic!("nats-server: no free port in 20000..32000")
    }

    fn spawn(&mut self) -> Result<(), NatsServerError> {
        let mut child = Command::new("nats-server")
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.store)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => NatsServerError::NotInstalled,
                _ => NatsServerError::Start(e.to_string()),
            })?;
        let stderr = child
            .stderr
            .take()
            .ok_or_else(|| NatsServerError::Start("no stderr".into()))?;
        let (tx, rx) = mpsc::channel();
        // Reads the log until the server is ready, then keeps draining it so the pipe never
        // fills and blocks the server.
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if line.contains("Server is ready")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Ok(()));
                } else if line.contains("[FTL]")
                    && let Some(tx) = tx.take()
                {
                    let _ = tx.send(Err(line));
                }
            }
            if let Some(tx) = tx {
                let _ = tx.send(Err("nats-server exited".into()));
            }
        });
        match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(())) => {
                self.child = Some(child);
                Ok(())
            }
            Ok(Err(line)) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(NatsServerError::Start(line))
            }
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(NatsServerError::Start("not ready in time".into()))
            }
        }
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (clients start reconnecting).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port with the same store.
    pub fn restart(&mut self) -> Result<(), NatsServerError> {
        self.stop();
        self.spawn()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.store);
    }
}
