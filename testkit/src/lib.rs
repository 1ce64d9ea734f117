//! Dev-only test support shared by every crate's tests, the examples and the benchmarks: real
//! servers on free ports, killed on drop, and the shared speech corpus, loaded once.
//!
//! - [`nats`]: a real `nats-server -js` ([`NatsServer`]), and [`free_port`].
//! - [`corpus`]: `../shared` and the six LibriSpeech speakers of `data/speakers`, decoded once.
//! - [`signal`]: test signals made independently of the code under test (band-limited upsampling).
//! - WAV writers are `diglett_audio::wav` (re-exported as [`wav`]).

pub mod corpus;
pub mod nats;
pub mod signal;

pub use diglett_audio::wav;
pub use nats::{NatsServer, NatsServerError, free_port};

/// Redis for the tests (`DIGLETT_TEST_REDIS_URL`, default the local one on 6379).
pub fn redis_url() -> String {
    std::env::var("DIGLETT_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}
