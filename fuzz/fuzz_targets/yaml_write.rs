//! Fuzz target: the YAML-subset writer, against yaml_serde (what it checks: `registry_fuzz::yaml_write`).

#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| registry_fuzz::yaml_write(data));
