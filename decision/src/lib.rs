//! Every decision Diglett makes from numbers the networks produced, in one crate that links no
//! network: the worker, the gateway and the evaluation tools all decide through it, so "why was
//! this window labelled X?" has one answer.
//!
//! - [`scoring`]: cosine scores, the window rule ([`scoring::label_window_with`]) and its
//!   data-chosen defaults ([`scoring::DecisionParams`]); the original argmax rule
//!   ([`scoring::decide`]) that `/v1/verify` uses.
//! - [`params`]: the session's wire options turned into parameters: the overlap switch, the
//!   per-speaker-count strictness, and a request's explicit overrides.
//! - [`turns`]: the online turn smoother over a session's in-order window labels.
//! - [`timeline`]: frame-accurate labels (10 ms) from the overlapping windows, decided a set
//!   latency behind the newest audio.
//! - [`enroll`]: enrollment verdicts (one file, several files) and the speech-weighted profile
//!   merge.
//!
//! Labels are the wire's [`diglett_schemas::Label`], re-exported as [`Label`].

pub mod enroll;
pub mod params;
pub mod scoring;
pub mod timeline;
pub mod turns;

pub use diglett_schemas::Label;
