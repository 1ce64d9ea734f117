//! The integration tests of `model`, one binary (one link) for all of them: each module
//! was a test file of its own.

mod common;

mod campp_parity;
mod encoder_parity;
mod enroll;
mod frontend_parity;
mod segmentation_parity;
mod vad_parity;
