#![no_main]
//! `cargo +nightly fuzz run ws_session`: see `diglett_fuzzing::ws_session`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| diglett_fuzzing::ws_session(data));
