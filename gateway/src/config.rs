//! Configuration from the environment (documented in the README's configuration table).
//!
//! Two switches choose the deployment:
//! - `DIGLETT_NATS_URL` set: windows and enrollments go over NATS to `diglett-worker`
//!   processes; unset: the worker library runs in-process (embedded mode).
//! - `DIGLETT_REDIS_URL` set: profiles live in Redis; unset: in an embedded database file under
//!   `DIGLETT_DATA_DIR`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use diglett_runtime::env::Var;
pub use diglett_runtime::env::{ConfigError, Env, OsEnv};

/// Address the HTTP server binds.
pub const ENV_LISTEN: &str = "DIGLETT_LISTEN";
/// Default listen address.
pub const DEFAULT_LISTEN: &str = "0.0.0.0:8080";
/// NATS server URL(s); unset means embedded mode.
pub const ENV_NATS_URL: &str = "DIGLETT_NATS_URL";
/// Redis URL; unset means the embedded profile store.
pub const ENV_REDIS_URL: &str = "DIGLETT_REDIS_URL";
/// A PEM file of the CA certificates that verify a `rediss://` server, in place of the system's
/// roots (for a private or self-signed CA).
pub const ENV_REDIS_CA: &str = "DIGLETT_REDIS_CA";
/// Prefix of every Redis key.
pub const ENV_REDIS_PREFIX: &str = "DIGLETT_REDIS_PREFIX";
/// Default Redis key prefix.
pub const DEFAULT_REDIS_PREFIX: &str = "diglett:v1:";
/// Directory of the embedded profile store.
pub const ENV_DATA_DIR: &str = "DIGLETT_DATA_DIR";
/// Default data directory (relative to the working directory).
pub const DEFAULT_DATA_DIR: &str = "diglett-data";
/// API keys: comma-separated `key=tenant` pairs; unset or empty means no authentication.
pub const ENV_API_KEYS: &str = "DIGLETT_API_KEYS";
/// Largest accepted request body (bytes).
pub const ENV_MAX_BODY_BYTES: &str = "DIGLETT_MAX_BODY_BYTES";
/// Default: 10 MiB.
pub const DEFAULT_MAX_BODY_BYTES: u64 = 10 * 1024 * 1024;
/// Longest accepted uploaded audio (s).
pub const ENV_MAX_AUDIO_SECONDS: &str = "DIGLETT_MAX_AUDIO_SECONDS";
/// Default: 60 s.
pub const DEFAULT_MAX_AUDIO_SECONDS: u64 = 60;
/// How long an enrollment may take at the workers (ms) before 504.
pub const ENV_EMBED_TIMEOUT_MS: &str = "DIGLETT_EMBED_TIMEOUT_MS";
/// Default: 30 s.
pub const DEFAULT_EMBED_TIMEOUT_MS: u64 = 30_000;
/// How long a window may wait for its result (ms) before it is re-published once, then dropped.
pub const ENV_WINDOW_TIMEOUT_MS: &str = "DIGLETT_WINDOW_TIMEOUT_MS";
/// Default: 2 s (a result normally takes a few ms; 2 s means the workers are saturated or a
/// worker died with the window).
pub const DEFAULT_WINDOW_TIMEOUT_MS: u64 = 2_000;
/// Most windows of one session waiting for results; more are skipped and reported.
pub const ENV_SESSION_MAX_IN_FLIGHT: &str = "DIGLETT_SESSION_MAX_IN_FLIGHT";
/// Default: 8 (4 s of audio at the default hop).
pub const DEFAULT_SESSION_MAX_IN_FLIGHT: u64 = 8;
/// A session with no audio for this long is closed (s).
pub const ENV_IDLE_TIMEOUT_SECS: &str = "DIGLETT_IDLE_TIMEOUT_SECS";
/// Default: 30 s.
pub const DEFAULT_IDLE_TIMEOUT_SECS: u64 = 30;
/// Bound on graceful shutdown (s).
pub const ENV_SHUTDOWN_TIMEOUT_SECS: &str = "DIGLETT_SHUTDOWN_TIMEOUT_SECS";
/// Default: 10 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 10;
/// Most concurrent WebSocket sessions; more are refused with 503.
pub const ENV_MAX_SESSIONS: &str = "DIGLETT_MAX_SESSIONS";
/// Default: 1000.
pub const DEFAULT_MAX_SESSIONS: u64 = 1000;

/// The gateway's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// HTTP listen address.
    pub listen: SocketAddr,
    /// NATS URL(s); `None`: embedded mode.
    pub nats_url: Option<String>,
    /// Redis URL; `None`: embedded store.
    pub redis_url: Option<String>,
    /// [`ENV_REDIS_CA`]: the PEM text, read at start.
    pub redis_ca: Option<Vec<u8>>,
    /// Redis key prefix.
    pub redis_prefix: String,
    /// Embedded store directory.
    pub data_dir: PathBuf,
    /// API key → tenant; empty: no authentication (every caller is tenant `default`).
    pub api_keys: HashMap<String, String>,
    /// Largest request body.
    pub max_body_bytes: usize,
    /// Longest uploaded audio.
    pub max_audio_seconds: f32,
    /// Enrollment timeout at the workers.
    pub embed_timeout: Duration,
    /// Window result timeout.
    pub window_timeout: Duration,
    /// Per-session in-flight windows.
    pub session_max_in_flight: usize,
    /// Session idle timeout.
    pub idle_timeout: Duration,
    /// Graceful shutdown bound.
    pub shutdown_timeout: Duration,
    /// Most concurrent sessions.
    pub max_sessions: usize,
    /// The in-process worker's settings (embedded mode; its `DIGLETT_*` variables).
    pub worker: diglett_worker::Config,
}

/// Tenant of every caller when no API keys are configured.
pub const DEFAULT_TENANT: &str = "default";

fn bad(var: &'static str, value: &str, expected: &str) -> ConfigError {
    ConfigError {
        var,
        value: value.to_owned(),
        expected: expected.to_owned(),
    }
}

/// Parses `DIGLETT_API_KEYS`: `key=tenant` pairs separated by commas.
fn api_keys(value: &str) -> Result<HashMap<String, String>, ConfigError> {
    let mut keys = HashMap::new();
    for pair in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let expected = "expected comma-separated key=tenant pairs (keys of at least 16 characters, \
                        tenants of 1-64 characters from A-Z a-z 0-9 _ -)";
        let (key, tenant) = pair
            .split_once('=')
            .ok_or_else(|| bad(ENV_API_KEYS, "(hidden)", expected))?;
        let (key, tenant) = (key.trim(), tenant.trim());
        if key.len() < 16 || !crate::auth::valid_tenant(tenant) {
            return Err(bad(ENV_API_KEYS, "(hidden)", expected));
        }
        keys.insert(key.to_owned(), tenant.to_owned());
    }
    Ok(keys)
}

impl Config {
    /// Reads every variable, applying defaults; the first invalid one is the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let listen_value = env.var(ENV_LISTEN).unwrap_or_else(|| DEFAULT_LISTEN.into());
        let listen = SocketAddr::from_str(listen_value.trim()).map_err(|_| {
            bad(
                ENV_LISTEN,
                &listen_value,
                "expected host:port such as 0.0.0.0:8080",
            )
        })?;
        let nats_url = env.var(ENV_NATS_URL).filter(|v| !v.trim().is_empty());
        let redis_url = env.var(ENV_REDIS_URL).filter(|v| !v.trim().is_empty());
        if let Some(url) = &redis_url
            && !(url.starts_with("redis://")
                || url.starts_with("rediss://")
                || url.starts_with("unix://"))
        {
            return Err(bad(ENV_REDIS_URL, url, "expected a redis:// URL"));
        }
        let redis_ca = match env.var(ENV_REDIS_CA).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => match std::fs::read(v.trim()) {
                Ok(pem) if pem.windows(27).any(|w| w == b"-----BEGIN CERTIFICATE-----") => {
                    Some(pem)
                }
                _ => {
                    return Err(bad(
                        ENV_REDIS_CA,
                        &v,
                        "expected a readable PEM file of CA certificates",
                    ));
                }
            },
        };
        let redis_prefix = env
            .var(ENV_REDIS_PREFIX)
            .unwrap_or_else(|| DEFAULT_REDIS_PREFIX.into());
        let data_dir = PathBuf::from(
            env.var(ENV_DATA_DIR)
                .unwrap_or_else(|| DEFAULT_DATA_DIR.into()),
        );
        let api_keys = api_keys(&env.var(ENV_API_KEYS).unwrap_or_default())?;
        let max_body_bytes =
            Var::new(ENV_MAX_BODY_BYTES, DEFAULT_MAX_BODY_BYTES, 1024, 1 << 30).int(env)? as usize;
        let max_audio_seconds =
            Var::new(ENV_MAX_AUDIO_SECONDS, DEFAULT_MAX_AUDIO_SECONDS, 1, 3600).int(env)? as f32;
        let embed_timeout =
            Var::new(ENV_EMBED_TIMEOUT_MS, DEFAULT_EMBED_TIMEOUT_MS, 100, 600_000).millis(env)?;
        let window_timeout =
            Var::new(ENV_WINDOW_TIMEOUT_MS, DEFAULT_WINDOW_TIMEOUT_MS, 10, 60_000).millis(env)?;
        let session_max_in_flight = Var::new(
            ENV_SESSION_MAX_IN_FLIGHT,
            DEFAULT_SESSION_MAX_IN_FLIGHT,
            1,
            256,
        )
        .int(env)? as usize;
        let idle_timeout =
            Var::new(ENV_IDLE_TIMEOUT_SECS, DEFAULT_IDLE_TIMEOUT_SECS, 1, 86_400).secs(env)?;
        let shutdown_timeout = Var::new(
            ENV_SHUTDOWN_TIMEOUT_SECS,
            DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            1,
            3600,
        )
        .secs(env)?;
        let max_sessions =
            Var::new(ENV_MAX_SESSIONS, DEFAULT_MAX_SESSIONS, 1, 1_000_000).int(env)? as usize;
        // The worker reads its own variables; NATS_URL is ours to interpret (unset = embedded),
        // and its metrics are served on the gateway's /metrics in embedded mode.
        let mut worker = diglett_worker::Config::from_env(&WorkerEnv(env))?;
        worker.metrics_addr = None;
        worker.events_stream = false;
        if let Some(url) = &nats_url {
            worker.nats_url = url.clone();
        }
        Ok(Self {
            listen,
            nats_url,
            redis_url,
            redis_ca,
            redis_prefix,
            data_dir,
            api_keys,
            max_body_bytes,
            max_audio_seconds,
            embed_timeout,
            window_timeout,
            session_max_in_flight,
            idle_timeout,
            shutdown_timeout,
            max_sessions,
            worker,
        })
    }

    /// Whether the gateway runs the worker in-process.
    pub fn embedded(&self) -> bool {
        self.nats_url.is_none()
    }
}

/// The environment as the in-process worker sees it (without `DIGLETT_NATS_URL`, which the
/// gateway interprets, and without `DIGLETT_METRICS_ADDR`).
struct WorkerEnv<'a, E>(&'a E);

impl<E: Env> Env for WorkerEnv<'_, E> {
    fn var(&self, name: &str) -> Option<String> {
        match name {
            ENV_NATS_URL | "DIGLETT_METRICS_ADDR" => None,
            _ => self.0.var(name),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self::from_env(&HashMap::<&str, &str>::new())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_embedded() {
        let c = Config::default();
        assert!(c.embedded());
        assert!(c.redis_url.is_none());
        assert!(c.api_keys.is_empty());
        assert_eq!(c.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(c.listen.port(), 8080);
    }

    #[test]
    fn api_keys_parse_and_validate() {
        let env = HashMap::from([(
            ENV_API_KEYS,
            "0123456789abcdef=acme, fedcba9876543210=globex",
        )]);
        let c = Config::from_env(&env).unwrap();
        assert_eq!(c.api_keys["0123456789abcdef"], "acme");
        assert_eq!(c.api_keys["fedcba9876543210"], "globex");
        for bad in [
            "short=acme",
            "0123456789abcdef",
            "0123456789abcdef=bad tenant",
            "0123456789abcdef=",
        ] {
            let env = HashMap::from([(ENV_API_KEYS, bad)]);
            let e = Config::from_env(&env).unwrap_err();
            assert_eq!(e.var, ENV_API_KEYS);
            assert!(
                !e.to_string().contains("0123456789abcdef"),
                "keys must not be echoed: {e}"
            );
        }
    }

    #[test]
    fn invalid_values_name_the_variable() {
        for (var, value) in [
            (ENV_LISTEN, "nope"),
            (ENV_REDIS_URL, "http://x"),
            (ENV_MAX_BODY_BYTES, "-1"),
            (ENV_SESSION_MAX_IN_FLIGHT, "0"),
            ("DIGLETT_BATCH_SIZE", "0"),
        ] {
            let env = HashMap::from([(var, value)]);
            assert_eq!(Config::from_env(&env).unwrap_err().var, var);
        }
        let env = HashMap::from([(ENV_NATS_URL, "nats://10.0.0.1:4222")]);
        let c = Config::from_env(&env).unwrap();
        assert!(!c.embedded());
        assert_eq!(c.worker.nats_url, "nats://10.0.0.1:4222");
    }
}
