//! Fuzz target: the import record reader (what it checks: `registry_fuzz::import`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::import(data));
