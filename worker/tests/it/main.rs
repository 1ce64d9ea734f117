//! The integration tests of `worker`, one binary (one link) for all of them: each module
//! was a test file of its own.

mod common;

mod binary;
mod worker;
