//! Configuration from the environment, read through the [`Env`] trait so that tests pass a
//! map and never touch the process environment. Each process names its own variables; an
//! invalid value is a [`ConfigError`] naming the variable, and the binaries exit with code 64.

use std::collections::HashMap;
use std::time::Duration;

/// A source of configuration strings.
pub trait Env {
    /// The value of `name`, if set.
    fn var(&self, name: &str) -> Option<String>;
}

/// The process environment.
#[derive(Debug, Clone, Copy, Default)]
pub struct OsEnv;

impl Env for OsEnv {
    fn var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<String, String, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<S: std::hash::BuildHasher> Env for HashMap<&str, &str, S> {
    fn var(&self, name: &str) -> Option<String> {
        self.get(name).map(|s| (*s).to_owned())
    }
}

/// A variable has a value the process cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {var}={value:?}: {expected}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What would have been accepted.
    pub expected: String,
}

/// An integer variable in `min..=max`, or `default` when unset.
pub fn int(
    env: &impl Env,
    var: &'static str,
    default: u64,
    min: u64,
    max: u64,
) -> Result<u64, ConfigError> {
    let Some(value) = env.var(var) else {
        return Ok(default);
    };
    match value.trim().parse::<u64>() {
        Ok(v) if (min..=max).contains(&v) => Ok(v),
        _ => Err(ConfigError {
            var,
            value,
            expected: format!("expected an integer from {min} to {max}"),
        }),
    }
}

/// One bounded integer variable, declared once: its name, its default and the values it may
/// take. Read it with [`Var::int`], [`Var::secs`] or [`Var::millis`].
#[derive(Debug, Clone, Copy)]
pub struct Var {
    /// The environment variable.
    pub name: &'static str,
    /// Its value when unset.
    pub default: u64,
    /// The smallest value accepted.
    pub min: u64,
    /// The largest value accepted.
    pub max: u64,
}

impl Var {
    /// The variable `name`, `default` when unset, accepted in `min..=max`.
    #[must_use]
    pub const fn new(name: &'static str, default: u64, min: u64, max: u64) -> Self {
        Self {
            name,
            default,
            min,
            max,
        }
    }

    /// Its value as an integer ([`int`]).
    ///
    /// # Errors
    /// [`ConfigError`] when set to anything but an integer in range.
    pub fn int(self, env: &impl Env) -> Result<u64, ConfigError> {
        int(env, self.name, self.default, self.min, self.max)
    }

    /// Its value as a duration in whole seconds.
    ///
    /// # Errors
    /// [`ConfigError`] when set to anything but an integer in range.
    pub fn secs(self, env: &impl Env) -> Result<Duration, ConfigError> {
        self.int(env).map(Duration::from_secs)
    }

    /// Its value as a duration in whole milliseconds.
    ///
    /// # Errors
    /// [`ConfigError`] when set to anything but an integer in range.
    pub fn millis(self, env: &impl Env) -> Result<Duration, ConfigError> {
        self.int(env).map(Duration::from_millis)
    }
}
