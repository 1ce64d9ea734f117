//! What the gateway and the worker processes share and neither owns: reading configuration
//! from the environment ([`env`]) and checking that a NATS connection answers ([`nats`]).

pub mod env;
pub mod nats;

pub use env::{ConfigError, Env, OsEnv};

/// The processes' log filter when `RUST_LOG` is unset. symphonia's probe logs every upload it
/// cannot read at `ERROR` — a client's bad file, not a server fault, and at load a flood — so
/// it is off; the gateway logs each rejected request itself (at `info`, 5xx at `error`).
pub const DEFAULT_LOG_FILTER: &str = "info,symphonia_core::probe=off";
