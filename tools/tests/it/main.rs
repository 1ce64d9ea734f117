//! The integration tests of `tools`, one binary (one link) for all of them: each module
//! was a test file of its own.

mod speaker_accuracy;
mod tools;
mod turns;
