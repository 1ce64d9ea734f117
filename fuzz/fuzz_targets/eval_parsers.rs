#![no_main]
//! `cargo +nightly fuzz run eval_parsers`: see `diglett_fuzzing::eval_parsers`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| diglett_fuzzing::eval_parsers(data));
