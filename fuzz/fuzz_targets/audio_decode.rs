#![no_main]
//! `cargo +nightly fuzz run audio_decode`: see `diglett_fuzzing::audio_decode`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| diglett_fuzzing::audio_decode(data));
