//! Configuration from the environment.
//!
//! Every variable has an `ENV_*` name and a `DEFAULT_*` value here, and is documented in the
//! README section. [`Config::from_env`] reads through the [`Env`] trait, so tests pass a map
//! and never touch the process environment. The binary exits with code 64 (`EX_USAGE`) and one
//! line naming the variable when a value is invalid.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::str::FromStr;
use std::time::Duration;

pub use diglett_runtime::env::{ConfigError, Env, OsEnv, Var, int};

/// NATS server URL(s), comma-separated.
pub const ENV_NATS_URL: &str = "DIGLETT_NATS_URL";
/// Default: a local server.
pub const DEFAULT_NATS_URL: &str = "nats://127.0.0.1:4222";

/// A PEM file of CA certificates trusted for NATS over TLS (`tls://` URLs, or a server that
/// requires TLS), besides the system's roots: for a private or self-signed CA.
pub const ENV_NATS_CA: &str = "DIGLETT_NATS_CA";

/// Threads of the inference pool (the model's `Compute`).
pub const ENV_COMPUTE_THREADS: &str = "DIGLETT_COMPUTE_THREADS";
/// Default: 0, meaning one per available CPU.
pub const DEFAULT_COMPUTE_THREADS: usize = 0;

/// Most windows run through the encoder as one batch.
pub const ENV_BATCH_SIZE: &str = "DIGLETT_BATCH_SIZE";
/// Default: 32 — a batch of 32 1.6 s windows amortises weight streaming in the fused
/// encoder, and at 32 per batch a 2-thread pool is busy with no measurable latency cost.
pub const DEFAULT_BATCH_SIZE: usize = 32;

/// Longest the batcher waits for more windows after the first arrives (ms).
pub const ENV_BATCH_WAIT_MS: &str = "DIGLETT_BATCH_WAIT_MS";
/// Default: 3 ms, small against the 1.6 s window and the gateway's hop.
pub const DEFAULT_BATCH_WAIT_MS: u64 = 3;

/// Windows accepted but not yet published (permits of the window semaphore).
pub const ENV_MAX_IN_FLIGHT: &str = "DIGLETT_MAX_IN_FLIGHT";
/// Default: 128 (four full batches).
pub const DEFAULT_MAX_IN_FLIGHT: usize = 128;

/// Enrollments accepted but not yet answered.
pub const ENV_MAX_EMBEDS_IN_FLIGHT: &str = "DIGLETT_MAX_EMBEDS_IN_FLIGHT";
/// Default: 4 (each may hold up to `DIGLETT_MAX_ENROLL_SECONDS` of audio).
pub const DEFAULT_MAX_EMBEDS_IN_FLIGHT: usize = 4;

/// Messages the NATS client buffers per subscription before the server sees a slow consumer.
pub const ENV_SUBSCRIPTION_CAPACITY: &str = "DIGLETT_SUBSCRIPTION_CAPACITY";
/// Default: 1024.
pub const DEFAULT_SUBSCRIPTION_CAPACITY: usize = 1024;

/// Address of the Prometheus `/metrics` endpoint; empty or `off` disables it.
pub const ENV_METRICS_ADDR: &str = "DIGLETT_METRICS_ADDR";
/// Default: all interfaces, port 9464 (the conventional Prometheus-exporter port range).
pub const DEFAULT_METRICS_ADDR: &str = "0.0.0.0:9464";

/// Whether to ensure the `DIGLETT_EVENTS` JetStream stream at start (`true`/`false`).
pub const ENV_EVENTS_STREAM: &str = "DIGLETT_EVENTS_STREAM";
/// Default: true.
pub const DEFAULT_EVENTS_STREAM: bool = true;

/// How long the stream keeps results and events (s).
pub const ENV_EVENTS_MAX_AGE_SECS: &str = "DIGLETT_EVENTS_MAX_AGE_SECS";
/// Default: 24 h.
pub const DEFAULT_EVENTS_MAX_AGE_SECS: u64 = 24 * 3600;

/// Most bytes the stream keeps (oldest dropped first).
pub const ENV_EVENTS_MAX_BYTES: &str = "DIGLETT_EVENTS_MAX_BYTES";
/// Default: 1 GiB.
pub const DEFAULT_EVENTS_MAX_BYTES: u64 = 1 << 30;

/// Longest enrollment recording accepted (s).
pub const ENV_MAX_ENROLL_SECONDS: &str = "DIGLETT_MAX_ENROLL_SECONDS";
/// Default: 120 s (twice what the product asks users for, at most).
pub const DEFAULT_MAX_ENROLL_SECONDS: u64 = 120;

/// Time to wait for each part of a chunked enrollment upload (ms).
pub const ENV_PART_TIMEOUT_MS: &str = "DIGLETT_PART_TIMEOUT_MS";
/// Default: 5 s.
pub const DEFAULT_PART_TIMEOUT_MS: u64 = 5_000;

/// Longest a chunked enrollment may take to fetch all its parts, and longest an enrollment
/// request may wait in the worker before it is taken (ms).
pub const ENV_EMBED_DEADLINE_MS: &str = "DIGLETT_EMBED_DEADLINE_MS";
/// Default: 30 s, the client's default reply timeout
/// (`crate::embed_client::DEFAULT_EMBED_TIMEOUT`): past it nobody waits for the reply.
pub const DEFAULT_EMBED_DEADLINE_MS: u64 = 30_000;

/// Longest the graceful shutdown may take before the worker gives up on in-flight work (s).
pub const ENV_SHUTDOWN_TIMEOUT_SECS: &str = "DIGLETT_SHUTDOWN_TIMEOUT_SECS";
/// Default: 30 s.
pub const DEFAULT_SHUTDOWN_TIMEOUT_SECS: u64 = 30;

/// The worker's configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// [`ENV_NATS_URL`].
    pub nats_url: String,
    /// [`ENV_NATS_CA`]: a readable PEM file, or `None`.
    pub nats_ca: Option<std::path::PathBuf>,
    /// [`ENV_COMPUTE_THREADS`], resolved (≥ 1).
    pub compute_threads: usize,
    /// [`ENV_BATCH_SIZE`].
    pub batch_size: usize,
    /// [`ENV_BATCH_WAIT_MS`].
    pub batch_wait: Duration,
    /// [`ENV_MAX_IN_FLIGHT`].
    pub max_in_flight: usize,
    /// [`ENV_MAX_EMBEDS_IN_FLIGHT`].
    pub max_embeds_in_flight: usize,
    /// [`ENV_SUBSCRIPTION_CAPACITY`].
    pub subscription_capacity: usize,
    /// [`ENV_METRICS_ADDR`]; `None` disables the endpoint.
    pub metrics_addr: Option<SocketAddr>,
    /// [`ENV_EVENTS_STREAM`].
    pub events_stream: bool,
    /// [`ENV_EVENTS_MAX_AGE_SECS`].
    pub events_max_age: Duration,
    /// [`ENV_EVENTS_MAX_BYTES`].
    pub events_max_bytes: u64,
    /// [`ENV_MAX_ENROLL_SECONDS`].
    pub max_enroll_seconds: u64,
    /// [`ENV_PART_TIMEOUT_MS`].
    pub part_timeout: Duration,
    /// [`ENV_EMBED_DEADLINE_MS`].
    pub embed_deadline: Duration,
    /// [`ENV_SHUTDOWN_TIMEOUT_SECS`].
    pub shutdown_timeout: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Self::from_env(&HashMap::<&str, &str>::new())
            .unwrap_or_else(|e| unreachable!("defaults are valid: {e}"))
    }
}

/// Credentials from a NATS URL ([`Config::nats_credentials`]).
#[derive(Clone, PartialEq, Eq)]
pub enum NatsCredentials {
    /// `nats://user:password@host`.
    UserPassword(String, String),
    /// `nats://token@host`.
    Token(String),
}

impl std::fmt::Debug for NatsCredentials {
    // Never print a secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserPassword(u, _) => write!(f, "UserPassword({u:?}, ***)"),
            Self::Token(_) => write!(f, "Token(***)"),
        }
    }
}

/// `%XX` escapes of a URL's user-info decoded (invalid escapes and non-UTF-8 kept as written).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).unwrap_or_else(|_| s.to_owned())
}

impl Config {
    /// The servers of [`Config::nats_url`], for `ConnectOptions::connect` (which would read a
    /// plain string with commas as one URL). Validated by [`Config::from_env`].
    pub fn nats_servers(&self) -> Vec<async_nats::ServerAddr> {
        self.nats_url
            .split(',')
            .filter_map(|u| async_nats::ServerAddr::from_str(u.trim()).ok())
            .collect()
    }

    /// The credentials written into the first server URL (`nats://user:password@host`, or
    /// `nats://token@host`), percent-decoded: async-nats 0.51 parses them but never sends them,
    /// so without this a server with authorization on refuses the connection.
    pub fn nats_credentials(&self) -> Option<NatsCredentials> {
        let first = self.nats_servers().into_iter().next()?;
        let user = percent_decode(first.username()?);
        Some(match first.password() {
            Some(p) => NatsCredentials::UserPassword(user, percent_decode(p)),
            None => NatsCredentials::Token(user),
        })
    }

    /// [`Config::nats_url`] fit for a log: passwords and tokens replaced by `***`.
    pub fn nats_url_redacted(&self) -> String {
        self.nats_url
            .split(',')
            .map(|u| {
                let u = u.trim();
                let Some(scheme_end) = u.find("://").map(|i| i + 3) else {
                    return u.to_owned();
                };
                let rest = &u[scheme_end..];
                match rest.find('@') {
                    Some(at) => {
                        let info = &rest[..at];
                        let shown = info
                            .split_once(':')
                            .map_or("***".to_owned(), |(user, _)| format!("{user}:***"));
                        format!("{}{shown}{}", &u[..scheme_end], &rest[at..])
                    }
                    None => u.to_owned(),
                }
            })
            .collect::<Vec<_>>()
            .join(",")
    }

    /// `opts` with [`Config::nats_credentials`] applied, if the URL has any, and the CA of
    /// [`ENV_NATS_CA`] trusted. A `tls://` URL makes async-nats require TLS (and verify the
    /// server's certificate against the system's roots plus that CA).
    pub fn with_nats_security(
        &self,
        opts: async_nats::ConnectOptions,
    ) -> async_nats::ConnectOptions {
        let opts = match &self.nats_ca {
            Some(ca) => opts.add_root_certificates(ca.clone()),
            None => opts,
        };
        match self.nats_credentials() {
            Some(NatsCredentials::UserPassword(u, p)) => opts.user_and_password(u, p),
            Some(NatsCredentials::Token(t)) => opts.token(t),
            None => opts,
        }
    }

    /// Reads every variable, applying defaults; the first invalid one is the error.
    pub fn from_env(env: &impl Env) -> Result<Self, ConfigError> {
        let nats_url = env
            .var(ENV_NATS_URL)
            .unwrap_or_else(|| DEFAULT_NATS_URL.to_owned());
        // Checked here, because the binary retries connection failures forever and a URL that
        // cannot parse would never succeed.
        if nats_url.trim().is_empty()
            || nats_url
                .split(',')
                .any(|u| u.trim().is_empty() || async_nats::ServerAddr::from_str(u.trim()).is_err())
        {
            return Err(ConfigError {
                var: ENV_NATS_URL,
                value: nats_url,
                expected: "expected comma-separated NATS URLs such as nats://127.0.0.1:4222".into(),
            });
        }
        let nats_ca = match env.var(ENV_NATS_CA).filter(|v| !v.trim().is_empty()) {
            None => None,
            Some(v) => {
                let path = std::path::PathBuf::from(v.trim());
                let pem = std::fs::read_to_string(&path).unwrap_or_default();
                if !pem.contains("-----BEGIN CERTIFICATE-----") {
                    return Err(ConfigError {
                        var: ENV_NATS_CA,
                        value: v,
                        expected: "expected a readable PEM file of CA certificates".into(),
                    });
                }
                Some(path)
            }
        };
        let threads = Var::new(ENV_COMPUTE_THREADS, DEFAULT_COMPUTE_THREADS as u64, 0, 256)
            .int(env)? as usize;
        let compute_threads = if threads == 0 {
            std::thread::available_parallelism().map_or(1, usize::from)
        } else {
            threads
        };
        let batch_size =
            Var::new(ENV_BATCH_SIZE, DEFAULT_BATCH_SIZE as u64, 1, 256).int(env)? as usize;
        let batch_wait = Var::new(ENV_BATCH_WAIT_MS, DEFAULT_BATCH_WAIT_MS, 0, 1000).millis(env)?;
        let max_in_flight =
            Var::new(ENV_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT as u64, 1, 65_536).int(env)? as usize;
        let max_embeds_in_flight = Var::new(
            ENV_MAX_EMBEDS_IN_FLIGHT,
            DEFAULT_MAX_EMBEDS_IN_FLIGHT as u64,
            1,
            1024,
        )
        .int(env)? as usize;
        let subscription_capacity = Var::new(
            ENV_SUBSCRIPTION_CAPACITY,
            DEFAULT_SUBSCRIPTION_CAPACITY as u64,
            1,
            1 << 20,
        )
        .int(env)? as usize;
        let metrics_value = env
            .var(ENV_METRICS_ADDR)
            .unwrap_or_else(|| DEFAULT_METRICS_ADDR.to_owned());
        let metrics_addr = match metrics_value.trim() {
            "" | "off" => None,
            v => Some(v.parse::<SocketAddr>().map_err(|_| ConfigError {
                var: ENV_METRICS_ADDR,
                value: metrics_value.clone(),
                expected: "expected host:port such as 0.0.0.0:9464, or off".into(),
            })?),
        };
        let events_stream = match env.var(ENV_EVENTS_STREAM) {
            None => DEFAULT_EVENTS_STREAM,
            Some(v) => match v.trim() {
                "true" | "1" => true,
                "false" | "0" => false,
                _ => {
                    return Err(ConfigError {
                        var: ENV_EVENTS_STREAM,
                        value: v,
                        expected: "expected true or false".into(),
                    });
                }
            },
        };
        let events_max_age = Var::new(
            ENV_EVENTS_MAX_AGE_SECS,
            DEFAULT_EVENTS_MAX_AGE_SECS,
            1,
            365 * 24 * 3600,
        )
        .secs(env)?;
        let events_max_bytes = Var::new(
            ENV_EVENTS_MAX_BYTES,
            DEFAULT_EVENTS_MAX_BYTES,
            1 << 20,
            1 << 50,
        )
        .int(env)?;
        let max_enroll_seconds =
            Var::new(ENV_MAX_ENROLL_SECONDS, DEFAULT_MAX_ENROLL_SECONDS, 1, 3600).int(env)?;
        let part_timeout =
            Var::new(ENV_PART_TIMEOUT_MS, DEFAULT_PART_TIMEOUT_MS, 1, 600_000).millis(env)?;
        let embed_deadline = Var::new(
            ENV_EMBED_DEADLINE_MS,
            DEFAULT_EMBED_DEADLINE_MS,
            1,
            3_600_000,
        )
        .millis(env)?;
        let shutdown_timeout = Var::new(
            ENV_SHUTDOWN_TIMEOUT_SECS,
            DEFAULT_SHUTDOWN_TIMEOUT_SECS,
            1,
            3600,
        )
        .secs(env)?;
        Ok(Self {
            nats_url,
            nats_ca,
            compute_threads,
            batch_size,
            batch_wait,
            max_in_flight,
            max_embeds_in_flight,
            subscription_capacity,
            metrics_addr,
            events_stream,
            events_max_age,
            events_max_bytes,
            max_enroll_seconds,
            part_timeout,
            embed_deadline,
            shutdown_timeout,
        })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nats_credentials_come_from_the_first_url_decoded_and_never_printed() {
        let c = |url: &str| {
            Config::from_env(&HashMap::from([(ENV_NATS_URL, url)]))
                .unwrap()
                .nats_credentials()
        };
        assert_eq!(c("nats://127.0.0.1:4222"), None);
        assert_eq!(
            c("nats://worker:s%40cr%3At@127.0.0.1:4222, nats://other:4222"),
            Some(NatsCredentials::UserPassword(
                "worker".into(),
                "s@cr:t".into()
            ))
        );
        assert_eq!(
            c("nats://tok%2Fen@127.0.0.1"),
            Some(NatsCredentials::Token("tok/en".into()))
        );
        let shown = format!("{:?}", c("nats://u:secret@h").unwrap());
        assert!(!shown.contains("secret"), "{shown}");
        assert_eq!(percent_decode("a%zz%4"), "a%zz%4", "invalid escapes kept");
        let logged = |url: &str| {
            Config::from_env(&HashMap::from([(ENV_NATS_URL, url)]))
                .unwrap()
                .nats_url_redacted()
        };
        assert_eq!(
            logged("nats://w:secret@a:4222,nats://tok@b,nats://c:4222"),
            "nats://w:***@a:4222,nats://***@b,nats://c:4222"
        );
    }

    #[test]
    fn defaults() {
        let c = Config::from_env(&HashMap::<&str, &str>::new()).unwrap();
        assert_eq!(c.nats_url, DEFAULT_NATS_URL);
        assert!(c.compute_threads >= 1);
        assert_eq!(c.batch_size, 32);
        assert_eq!(c.batch_wait, Duration::from_millis(3));
        assert_eq!(c.metrics_addr, Some("0.0.0.0:9464".parse().unwrap()));
        assert_eq!(c.events_max_age, Duration::from_secs(86_400));
        assert!(c.events_stream);
        assert_eq!(c.embed_deadline, Duration::from_secs(30));
    }

    #[test]
    fn several_nats_urls() {
        let env = HashMap::from([(
            ENV_NATS_URL,
            "nats://10.0.0.1:4222, tls://nats.example:4443,127.0.0.1",
        )]);
        let c = Config::from_env(&env).unwrap();
        let ports: Vec<u16> = c.nats_servers().iter().map(|s| s.port()).collect();
        assert_eq!(ports, [4222, 4443, 4222]);
    }

    #[test]
    fn values_and_errors() {
        let env = HashMap::from([
            (ENV_COMPUTE_THREADS, "2"),
            (ENV_BATCH_SIZE, "8"),
            (ENV_METRICS_ADDR, "off"),
            (ENV_EVENTS_STREAM, "false"),
        ]);
        let c = Config::from_env(&env).unwrap();
        assert_eq!((c.compute_threads, c.batch_size), (2, 8));
        assert_eq!(c.metrics_addr, None);
        assert!(!c.events_stream);

        let bad = HashMap::from([(ENV_BATCH_SIZE, "0")]);
        let e = Config::from_env(&bad).unwrap_err();
        assert_eq!(e.var, ENV_BATCH_SIZE);
        assert_eq!(
            e.to_string(),
            "invalid DIGLETT_BATCH_SIZE=\"0\": expected an integer from 1 to 256"
        );
        for (var, value) in [
            (ENV_METRICS_ADDR, "nowhere"),
            (ENV_EVENTS_STREAM, "maybe"),
            (ENV_BATCH_WAIT_MS, "-1"),
            (ENV_NATS_URL, " "),
            (ENV_NATS_URL, "nats://[bad"),
            (ENV_NATS_URL, "not a url at all"),
            (ENV_NATS_URL, "nats://127.0.0.1:4222,"),
            (ENV_NATS_URL, "nats://127.0.0.1:99999"),
            (ENV_EMBED_DEADLINE_MS, "0"),
        ] {
            let e = Config::from_env(&HashMap::from([(var, value)])).unwrap_err();
            assert_eq!(e.var, var);
        }
    }
}
