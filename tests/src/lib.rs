//! Diglett's end-to-end harness: real servers and the real binaries, each on its own ports,
//! stopped on drop.
//!
//! - NATS: the local `nats-server -js` (via `diglett_testkit::NatsServer`), else the
//!   URL in `DIGLETT_TEST_NATS_URL` (then tests that restart the server fail with a line
//!   saying they need the binary).
//! - Redis: the local `redis-server` on a free port (no persistence), else
//!   `DIGLETT_TEST_REDIS_URL`.
//! - If neither is possible, the test fails with one line saying how to install them; it
//!   never skips silently. (testcontainers is not used: our machines have no Docker engine,
//!   and an untested code path would be worse than none; see the README.)
//! - The gateway and the workers run as processes from the workspace's build of
//!   `diglett-gateway` and `diglett-worker` (next to the test executable).

use std::collections::HashMap;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub use diglett_testkit::NatsServer;

/// A free TCP port on 127.0.0.1.
///
/// # Panics
/// If no port can be bound.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("no free port: {e}"))
}

/// NATS for a test.
#[derive(Debug)]
pub enum Nats {
    /// A local server this test owns (can be restarted).
    Local(NatsServer),
    /// A server given by `DIGLETT_TEST_NATS_URL`.
    External(String),
}

impl Nats {
    /// A server this test may restart (a port outside the ephemeral range).
    ///
    /// # Panics
    /// With one line on how to install `nats-server` when it cannot be started.
    pub fn start() -> Self {
        match NatsServer::try_start() {
            Ok(_) => {}
            Err(diglett_testkit::NatsServerError::NotInstalled) => {
                if let Ok(url) = std::env::var("DIGLETT_TEST_NATS_URL") {
                    return Self::External(url);
                }
                panic!(
                    "nats-server is not installed and DIGLETT_TEST_NATS_URL is not set: \
                     apt-get install nats-server (or run ./scripts/test, which does)"
                );
            }
            Err(e) => panic!("{e}"),
        }
        Self::Local(NatsServer::start_for_restarts())
    }

    /// Its URL.
    pub fn url(&self) -> String {
        match self {
            Self::Local(s) => s.url(),
            Self::External(u) => u.clone(),
        }
    }

    /// Stops and starts the server on the same port (JetStream data kept).
    ///
    /// # Panics
    /// For an external server, or if it does not come back.
    pub fn restart(&mut self) {
        match self {
            Self::Local(s) => s.restart().unwrap_or_else(|e| panic!("{e}")),
            Self::External(_) => panic!("restarting NATS needs a local nats-server"),
        }
    }
}

/// A `redis-server` process on a free port, no persistence; killed on drop.
#[derive(Debug)]
pub struct Redis {
    child: Option<Child>,
    port: u16,
    external: Option<String>,
}

impl Redis {
    /// Starts one (or uses `DIGLETT_TEST_REDIS_URL` when `redis-server` is missing).
    ///
    /// # Panics
    /// With one line on how to install it.
    pub fn start() -> Self {
        let mut r = Self {
            child: None,
            port: free_port(),
            external: None,
        };
        if Command::new("redis-server")
            .arg("--version")
            .output()
            .is_err()
        {
            if let Ok(url) = std::env::var("DIGLETT_TEST_REDIS_URL") {
                r.external = Some(url);
                return r;
            }
            panic!(
                "redis-server is not installed and DIGLETT_TEST_REDIS_URL is not set: \
                 apt-get install redis-server (or run ./scripts/test, which does)"
            );
        }
        r.resume();
        r
    }

    /// Its URL.
    pub fn url(&self) -> String {
        self.external
            .clone()
            .unwrap_or_else(|| format!("redis://127.0.0.1:{}", self.port))
    }

    /// Kills the server (data lost: it keeps nothing).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Starts the server again on the same port.
    ///
    /// # Panics
    /// If it does not answer within 10 s.
    pub fn resume(&mut self) {
        assert!(self.external.is_none(), "cannot restart an external Redis");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("redis-server: {e}"));
        self.child = Some(child);
        wait_for_port(self.port, Duration::from_secs(10));
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits until something accepts connections on `port`.
///
/// # Panics
/// After `limit`.
pub fn wait_for_port(port: u16, limit: Duration) {
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "nothing listens on {port} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The directory holding the workspace's binaries (the test executable's grandparent).
///
/// # Panics
/// If the binaries are not built.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current_exe: {e}"));
    let dir = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap_or_else(|| panic!("unexpected test path {}", exe.display()));
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --release -p diglett-gateway -p diglett-worker` \
         (cargo test --workspace builds it)",
        path.display()
    );
    path
}

/// A child process killed on drop.
#[derive(Debug)]
pub struct Proc {
    /// What it is (for messages).
    pub name: String,
    child: Option<Child>,
}

impl Proc {
    /// Starts `program` with `args` and `env` (added to a clean-ish environment: `PATH`,
    /// `HOME`, `RUST_LOG`).
    ///
    /// # Panics
    /// If it cannot start.
    pub fn spawn(
        name: &str,
        program: &PathBuf,
        args: &[&str],
        env: &HashMap<String, String>,
    ) -> Self {
        let mut cmd = Command::new(program);
        cmd.args(args).env_clear();
        for var in ["PATH", "HOME", "RUST_LOG", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        cmd.envs(env).stdin(Stdio::null());
        if std::env::var("DIGLETT_E2E_LOGS").is_err() {
            cmd.stdout(Stdio::null()).stderr(Stdio::null());
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Self {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    /// Starts `program` as [`Proc::spawn`] does but without the test's `RUST_LOG` (so it logs
    /// with its own default filter) and with stdout and stderr appended to `log`.
    ///
    /// # Panics
    /// If it cannot start or `log` cannot be created.
    pub fn spawn_logged(
        name: &str,
        program: &PathBuf,
        env: &HashMap<String, String>,
        log: &std::path::Path,
    ) -> Self {
        let out = std::fs::File::create(log)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", log.display()));
        let err = out
            .try_clone()
            .unwrap_or_else(|e| panic!("cannot reopen {}: {e}", log.display()));
        let mut cmd = Command::new(program);
        cmd.env_clear();
        for var in ["PATH", "HOME", "RUST_BACKTRACE"] {
            if let Ok(v) = std::env::var(var) {
                cmd.env(var, v);
            }
        }
        let child = cmd
            .envs(env)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name} ({}): {e}", program.display()));
        Self {
            name: name.to_owned(),
            child: Some(child),
        }
    }

    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// SIGKILL.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM (via `kill`, no libc binding needed).
    pub fn terminate(&self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status();
    }

    /// Waits for the process to exit, at most `limit`; its exit code.
    pub fn wait(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        while start.elapsed() < limit {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(status)) = c.try_wait()
            {
                self.child = None;
                return status.code();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Environment every service process of a stack gets.
pub fn base_env(nats: &str, redis: &str) -> HashMap<String, String> {
    HashMap::from([
        ("DIGLETT_NATS_URL".into(), nats.into()),
        ("DIGLETT_REDIS_URL".into(), redis.into()),
        ("DIGLETT_COMPUTE_THREADS".into(), "1".into()),
        ("DIGLETT_METRICS_ADDR".into(), "off".into()),
        ("DIGLETT_EVENTS_STREAM".into(), "true".into()),
    ])
}

/// A worker process.
///
/// # Panics
/// If it cannot start.
pub fn start_worker(env: &HashMap<String, String>) -> Proc {
    Proc::spawn("worker", &bin("diglett-worker"), &[], env)
}

/// A gateway process on a free port; returns it with its base URL once `/healthz` answers.
///
/// # Panics
/// If it does not come up within 60 s.
pub fn start_gateway(env: &HashMap<String, String>) -> (Proc, String) {
    let port = free_port();
    let mut env = env.clone();
    env.insert("DIGLETT_LISTEN".into(), format!("127.0.0.1:{port}"));
    let p = Proc::spawn("gateway", &bin("diglett-gateway"), &[], &env);
    wait_for_port(port, Duration::from_secs(60));
    (p, format!("127.0.0.1:{port}"))
}

/// An HTTP client (reqwest is built without a bundled TLS crypto provider; ring is linked
/// through async-nats, so install it once).
///
/// # Panics
/// If the client cannot be built.
pub fn http() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::builder()
        .build()
        .unwrap_or_else(|e| panic!("HTTP client: {e}"))
}

/// Waits until `GET /readyz` on `addr` is 200 (NATS, Redis and a worker).
///
/// # Panics
/// After `limit`.
pub async fn wait_ready(addr: &str, limit: Duration) {
    let start = Instant::now();
    let client = http();
    loop {
        if let Ok(r) = client.get(format!("http://{addr}/readyz")).send().await
            && r.status().is_success()
        {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "gateway {addr} not ready after {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
