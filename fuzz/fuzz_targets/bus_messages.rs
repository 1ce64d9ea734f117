#![no_main]
//! `cargo +nightly fuzz run bus_messages`: see `diglett_fuzzing::bus_messages`.

libfuzzer_sys::fuzz_target!(|data: &[u8]| diglett_fuzzing::bus_messages(data));
