//! Fuzz target: the header parser and find_header (what it checks: `registry_fuzz::header`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::header(data));
