//! Fuzz target: config loading (what it checks: `registry_fuzz::config`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::config(data));
