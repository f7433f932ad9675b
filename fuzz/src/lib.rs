//! What each fuzz target checks of its input, beyond "no panic, no hang, no unbounded memory".
//! The targets (`fuzz_targets/`) only call these; `cargo xtask fuzz` builds and runs them, and
//! replays every input kept under `fuzz/corpus/` (seeds, and each finding once fixed) first.

use std::path::PathBuf;
use std::sync::OnceLock;

use registry_codec::Dictionaries;
use registry_codec::entry::{Writing, decode, encoded};
use registry_core::{Header, RawHeader, Schema, find_header};
use registry_yaml::read::{self, Scratch};

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(Schema::default)
}

/// The header parser and `find_header`: a header that parses reads back the same from its
/// readable and grepable forms, and what `find_header` finds is where it says.
pub fn header(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let schema = schema();
    let _ = RawHeader::split(text, schema);
    if let Ok(header) = Header::parse(text, schema) {
        for form in [header.readable(), header.grepable()] {
            let again = Header::parse(&form, schema)
                .unwrap_or_else(|e| panic!("{text:?} parsed, its form {form:?} does not: {e}"));
            assert_eq!(again, header, "{form:?} reads back differently");
        }
    }
    for line in text.lines() {
        if let Some((at, found)) = find_header(line) {
            assert!(
                line.get(at..).is_some_and(|rest| rest.starts_with(found)),
                "find_header({line:?}) gave {found:?} at {at}"
            );
            assert!(found.starts_with('[') && found.ends_with(']'), "{found:?}");
        }
    }
}

/// The entry codec: bytes that decode re-encode (in the newest format) into bytes that decode
/// to the same entry.
pub fn codec(data: &[u8]) {
    let dictionaries = Dictionaries::default();
    let Ok(entry) = decode(data, &dictionaries) else {
        return;
    };
    let bytes = encoded(&entry, Writing::Compressed(None));
    let again = decode(&bytes, &dictionaries)
        .unwrap_or_else(|e| panic!("{entry:?} re-encoded does not decode: {e}"));
    assert_eq!(again, entry);
}

/// The YAML-subset scanner against `yaml_serde`: what it accepts parses as a mapping with the
/// same key paths, and answers the same for any key asked.
pub fn yaml_scan(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut scratch = Scratch::default();
    let Some(document) = read::scan(text, &mut scratch) else {
        return;
    };
    let value: yaml_serde::Value = yaml_serde::from_str(text)
        .unwrap_or_else(|e| panic!("scanned {text:?}, which does not parse: {e}"));
    assert!(value.is_mapping(), "scanned {text:?}, not a mapping");
    let mut ours = document.paths();
    let mut theirs = read::value_paths(&value);
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "key paths of {text:?}");
    for (path, _) in &theirs {
        for query in [path.clone(), format!("{path}.x"), format!("{path}.")] {
            assert_eq!(
                document.has_key(&query),
                read::value_has_key(&value, &query),
                "has_key({query:?}) of {text:?}"
            );
        }
    }
}

/// The YAML-subset writer against `yaml_serde`: any JSON value it writes reads back as that
/// value.
pub fn yaml_write(data: &[u8]) {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    let Ok(yaml) = registry_yaml::write::to_string(&value, 0) else {
        return;
    };
    let back: serde_json::Value = yaml_serde::from_str(&yaml)
        .unwrap_or_else(|e| panic!("wrote {value} as {yaml:?}, which does not parse: {e}"));
    assert_eq!(back, value, "wrote {yaml:?}");
}

/// Config loading: any `registry.toml` loads or is refused with one line.
pub fn config(data: &[u8]) {
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    let file = FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("registry-fuzz-{}.toml", std::process::id()))
    });
    std::fs::write(file, data).expect("the scratch file is writable");
    if let Err(e) = registry_host::settings::load(Some(file), None, &[]) {
        let message = e.to_string();
        assert!(!message.contains('\n'), "not one line: {message:?}");
    }
}

/// The import record reader: every record of any file is read (or fails alone) without
/// stopping the import.
pub fn import(data: &[u8]) {
    registry_host::transfer::read_records(data, 64 * 1024, schema())
        .unwrap_or_else(|e| panic!("the import stopped: {e}"));
}
