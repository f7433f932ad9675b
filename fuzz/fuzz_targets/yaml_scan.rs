//! Fuzz target: the YAML-subset reader, against yaml_serde (what it checks: `registry_fuzz::yaml_scan`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::yaml_scan(data));
