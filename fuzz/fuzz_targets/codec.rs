//! Fuzz target: the entry codec (what it checks: `registry_fuzz::codec`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::codec(data));
