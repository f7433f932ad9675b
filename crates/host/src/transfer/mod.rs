//! Export and import: every entry with its history, as JSON lines or a YAML
//! stream, and back into a registry (the same one, or another with any shard count).
//!
//! One record per entry. Its keys, always in this order: `id`, `header` (readable), `scope`,
//! `type`, `variant`, `status`, `version`, `title`, `context` (an object, keys sorted), `config`,
//! `hash`, `previous` (the hash of the revision before, which this revision's hash covers; left
//! out for a revision that records none: revision 1, and revisions written before hash chains),
//! `purge` (what `registry purge` removed from the revision, why, when, and the hash it had;
//! left out for a revision never purged), `fingerprint`, `provenance` (which fingerprint derivation, and where each field came
//! from; left out for an entry stored without it), `revision`, `created_at`, `updated_at`,
//! `history`. The top level is the latest revision; `history` lists the earlier ones, oldest
//! first, each with the same keys but `id`, `fingerprint`, `provenance` and `history`, which
//! every revision shares with the entry. Keeping only the
//! earlier revisions there means a config is written once per revision, and an entry never
//! updated has `history: []`. Entries come in id order across all shards, and nothing in a record
//! depends on when or where it was exported, so export, import elsewhere and export again gives
//! the same bytes.
//!
//! The top level's `hash` is the head of the entry's hash chain: it covers every revision back
//! to the first one that records its predecessor, so keeping an export (or only its hashes) is
//! enough to tell later whether any of that history was rewritten, and import refuses a history
//! whose links do not hold.
//!
//! JSONL is one compact JSON object per line. YAML is a stream of documents, each starting with a
//! `---` line; a document marker can only stand at the start of a line outside any scalar, so the
//! reader splits the stream there without parsing it whole, and reports a document by the line
//! its marker is on.
//!
//! Import reads either, deciding by content: a file whose first non-blank line starts with `{` is
//! JSONL, anything else a YAML stream. A record without `hash` and `history` is a plain request,
//! with the keys `registry add` takes (`title`, `scope`, `type`, `variant`, `status`, `version`,
//! `context`), and is registered through the pipeline like one. Records are read and imported in
//! batches, so a file of any size is never held whole.
//!
//! A bad record (unreadable, a missing field, a hash that does not match, a schema problem, a
//! conflict with what is stored) is reported with its line and the rest are imported; the exit
//! code is then 1. `--atomic` reads and checks everything first (hashes, structure, the
//! validator, and lookups by id and fingerprint in every shard and in the earlier batches of the
//! file) and writes nothing if any record fails. Plain requests are refused there: their ids are
//! allocated as they are added, so they cannot be checked before a write. The writes are one
//! restore call per batch, each one transaction per shard, so a storage failure (I/O) between
//! two commits leaves the earlier ones imported. Restores are idempotent (what is stored comes
//! back unchanged), so importing the file again completes it.
//!
//! Entries keep their ids, so each goes to the shard its id names. Importing into a registry
//! with another shard count works and exports the same bytes. When an entry lands in a shard
//! other than the one the router picks for its fingerprint, the restore first records in that
//! shard's metadata that it holds foreign fingerprints, and from then on `add` looks for a
//! request there too, so registering an imported request again finds it.
//!
//! Every record is checked before it is stored: hashes, times, and its fingerprint recomputed
//! from its first revision and its provenance (`registry_core::integrity`); a record exported
//! before provenance was recorded is accepted when some set of given fields gives its
//! fingerprint. Lines and YAML documents are read at most `limits.max_record_bytes` each
//! ([`crate::input`]), and YAML nesting is bounded before it is parsed. `--atomic` reads the
//! input twice, from a private temporary copy, so it never holds more than a batch.

mod compare;
mod export;
mod import;
mod read;
mod record;

pub use compare::{Compared, Difference, compare};
pub use export::{check_scopes, export, export_file, write_replacing};
pub use import::{Failure, Imported, Source, Summary, import};

/// Reads every record of an import file held in `bytes`, as `import` does before anything is
/// written (lines bounded by `max`, each record parsed and checked: hashes, histories, the
/// schema); returns how many were read and how many of those failed. For the fuzz targets.
///
/// # Errors
/// What stops an import from reading on (none is expected from bytes in memory).
#[cfg(feature = "fuzzing")]
pub fn read_records(
    bytes: &[u8],
    max: u64,
    schema: &registry_core::Schema,
) -> Result<(usize, usize), crate::Error> {
    let reader = Box::new(std::io::Cursor::new(bytes.to_vec()));
    let mut input = read::Input::of("fuzz".to_owned(), reader, max);
    let (mut read, mut failed) = (0, 0);
    loop {
        let batch = input.next_batch(schema)?;
        if batch.is_empty() {
            return Ok((read, failed));
        }
        read += batch.len();
        failed += batch.iter().filter(|i| i.parsed.is_err()).count();
    }
}

/// How many records are read, checked and stored together: one storage transaction per shard.
const BATCH: usize = 1000;

/// Entries listed per storage call while exporting.
const PAGE: usize = 1000;

/// The format of an export file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FileFormat {
    /// One JSON object per line
    #[default]
    Jsonl,
    /// A stream of YAML documents, one per entry
    Yaml,
}

#[cfg(test)]
mod tests {
    use std::io;

    use registry_core::{
        Context, Entry, EntryId, Fields, Fingerprint, Header, Lifecycle, Schema, Timestamp,
    };

    use super::read::Input;
    use super::record::{Item, Parsed, Record};

    fn entry(revision: u32, status: &str, config: &str) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "MULTI-ETL".into(),
                variant: "LIVE".into(),
                status: status.into(),
            },
            id: EntryId::new("SEC-MUL", 7),
            version: "v2.9".into(),
        };
        let context = Context::new([
            ("env".to_owned(), "true".to_owned()),
            ("a.b".to_owned(), "null".to_owned()),
        ])
        .expect("valid context");
        let title = "say \"hi\": #1 — ✓";
        Entry {
            hash: Entry::compute_hash(&header, title, &context, config),
            previous: None,
            purge: None,
            author: None,
            header,
            title: title.into(),
            context,
            config: config.into(),
            fingerprint: Fingerprint([0x12; 16]),
            revision,
            created_at: Timestamp(-5),
            updated_at: Timestamp(1_795_801_784_123 + i64::from(revision)),
            provenance: None,
            lifecycle: registry_core::Lifecycle::Active,
        }
    }

    /// Four revisions: active, retired, active again, merged (the latest), so every lifecycle
    /// state is carried by an earlier revision and by the latest one.
    fn history() -> Vec<Entry> {
        let mut h = vec![
            entry(1, "DEV", "a: 1\n  b: ' x'\n\n"),
            entry(2, "LIVE", "---\nkey: \"--- not a marker\"\n...\n"),
            // Trailing spaces rule out a literal block: the emitter folds a quoted scalar.
            entry(3, "TEST", "---  \n--- x \n...\n\n  ---\n"),
            entry(4, "REQUIRED", "tabs\tand trailing spaces  \nno final break"),
        ];
        h[1].lifecycle = Lifecycle::Retired;
        h[3].lifecycle = Lifecycle::Merged(EntryId::new("SEC-MUL", 1));
        for e in &mut h {
            e.hash = e.content_hash();
        }
        h
    }

    /// Reads records from `text` as `import` does.
    fn read(text: &str) -> Vec<Item> {
        read_bytes(text.as_bytes().to_vec())
    }

    /// Reads records from raw bytes as `import` does.
    fn read_bytes(bytes: Vec<u8>) -> Vec<Item> {
        let mut input = Input::of(
            "test".into(),
            Box::new(io::Cursor::new(bytes)),
            crate::settings::DEFAULT_MAX_RECORD_BYTES,
        );
        let mut items = Vec::new();
        while input
            .next_item(&mut items, &Schema::default())
            .expect("reads")
        {}
        items
    }

    fn histories(items: Vec<Item>) -> Vec<(usize, Vec<Entry>)> {
        items
            .into_iter()
            .map(|i| match i.parsed {
                Ok(Parsed::Entry(h)) => (i.line, h),
                Ok(Parsed::Request(r)) => panic!("line {}: a request {r}", i.line),
                Err(e) => panic!("line {}: {e}", i.line),
            })
            .collect()
    }

    #[test]
    fn records_round_trip_in_both_formats() {
        let h = history();
        let record = Record::entry(&h, true).expect("not empty");
        let json = serde_json::to_string(&record).expect("json");
        assert!(json.starts_with(r#"{"id":"SEC-MUL-007","header":"[SEC][MULTI-ETL][LIVE][SEC-MUL-007][v2.9][REQUIRED]","scope":"SEC","type":"MULTI-ETL","#), "{json}");
        let text = format!("{json}\n\n{json}\n");
        assert_eq!(histories(read(&text)), [(1, h.clone()), (3, h.clone())]);

        let yaml = format!("---\n{}", yaml_serde::to_string(&record).expect("yaml"));
        let lines = yaml.lines().count();
        let stream = format!("# exported\n{yaml}{yaml}---\n");
        assert_eq!(
            histories(read(&stream)),
            [(2, h.clone()), (2 + lines, h.clone())]
        );
        // Without markers, a single document starts at its first content line.
        let bare = yaml.trim_start_matches("---\n");
        assert_eq!(histories(read(&format!("\n{bare}"))), [(2, h)]);
    }

    #[test]
    fn bad_records_name_what_is_wrong() {
        let h = history();
        let good =
            serde_json::to_string(&Record::entry(&h, true).expect("not empty")).expect("json");
        let check = |text: &str, want: &str| {
            let items = read(text);
            assert_eq!(items.len(), 1, "{text}");
            match &items[0].parsed {
                Err(e) => assert!(e.contains(want), "{e:?} lacks {want:?}"),
                Ok(_) => panic!("{text} was read"),
            }
        };
        check("{\"title\": ", "not valid JSON: EOF while parsing");
        check(
            &good.replace("\"hash\"", "\"hsah\""),
            "unknown field `hsah`",
        );
        check(
            &good.replace(",\"merged_into\":\"SEC-MUL-001\"", ""),
            "revision 4: a merged entry needs `merged_into`",
        );
        check(
            &good.replacen("\"lifecycle\":\"retired\"", "\"lifecycle\":\"gone\"", 1),
            "revision 2: unknown lifecycle `gone`",
        );
        check(
            &good.replace(",\"fingerprint\":\"12121212121212121212121212121212\"", ""),
            "missing field `fingerprint`",
        );
        check(
            &good.replacen("\"header\":\"[SEC]", "\"header\":\"[OPS]", 1),
            "header `[OPS][MULTI-ETL]",
        );
        check(
            r#"{"title": "t", "revision": 2}"#,
            "`revision` is given but `hash` and `history` are not",
        );
        check(
            r#"{"title": "t", "scope": "NOPE"}"#,
            "scope `NOPE` is not in the schema",
        );
        check("key: [unclosed\n", "not a valid record: ");
        check(
            "---\n- a list\n",
            "not a valid record: invalid type: sequence",
        );
    }

    #[test]
    fn requests_and_non_utf8_lines() {
        let items = read(
            "{\"title\": \"block ssh\", \"scope\": \"sec\", \"context\": {\"env\": \"prod\"}}\n",
        );
        assert!(matches!(&items[0].parsed, Ok(Parsed::Request(r)) if r.title() == "block ssh"));
        let items = read_bytes(b"{\"title\": \"a\"}\n{\"title\": \"\xff\"}\n".to_vec());
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1].parsed, Err(e) if e == "line 2 is not valid UTF-8 (byte 11)"));
    }
}
