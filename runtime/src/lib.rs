//! What the gateway and the worker processes share and neither owns: reading configuration
//! from the environment ([`env`]) and checking that a NATS connection answers ([`nats`]).

pub mod env;
pub mod nats;

pub use env::{ConfigError, Env, OsEnv};
