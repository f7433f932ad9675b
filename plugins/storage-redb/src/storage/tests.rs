//! Tests of [`RedbStorage`] against real files in temporary directories.

use std::time::Instant;

use registry_core::layout;
use registry_core::{Context, Fields, Header, Schema, Timestamp};
use tempfile::TempDir;

use super::open::io_reason;
use super::*;

/// The setup of a shard that is created if it does not exist.
fn setup(dir: &Path, shard: u32, shards: u32) -> Setup {
    Setup {
        schema: Schema::default(),
        data_dir: dir.to_path_buf(),
        config_dir: dir.to_path_buf(),
        shard,
        shards,
        create: Some(Meta::new()),
    }
}

/// The setup of a shard that must exist.
fn existing(dir: &Path, shard: u32, shards: u32) -> Setup {
    Setup {
        create: None,
        ..setup(dir, shard, shards)
    }
}

/// The setup of shard 0 of 1 kept on a disk that is not a directory (see `faults.rs`), created.
pub(super) fn new_setup() -> Setup {
    setup(Path::new("faulty-disk"), 0, 1)
}

/// As [`new_setup`], for a shard that exists.
pub(super) fn existing_setup() -> Setup {
    existing(Path::new("faulty-disk"), 0, 1)
}

fn open(dir: &Path) -> RedbStorage {
    RedbStorage::from_config(Config::default(), &setup(dir, 0, 1)).expect("opens")
}

/// An entry of `SEC-RUL-{number}` at revision 1, with a fingerprint unique to `number` unless
/// the test sets another.
pub(super) fn entry(number: u64, status: &str) -> Entry {
    let header = Header {
        fields: Fields {
            scope: "SEC".into(),
            kind: "RULES".into(),
            variant: "LIVE".into(),
            status: status.into(),
        },
        id: EntryId::new("SEC-RUL", number),
        version: "v2.9".into(),
    };
    let title = format!("rule {number}");
    let context = Context::new([("env".to_owned(), "prod".to_owned())]).expect("valid");
    let config = format!("rule: {number}\n");
    let mut fp = [0u8; 16];
    fp[..8].copy_from_slice(&number.to_le_bytes());
    Entry {
        hash: Entry::compute_hash(&header, &title, &context, &config),
        previous: None,
        purge: None,
        author: None,
        header,
        title,
        context,
        config,
        fingerprint: Fingerprint(fp),
        revision: 1,
        created_at: Timestamp(1_000),
        updated_at: Timestamp(1_000),
        provenance: None,
        lifecycle: registry_core::Lifecycle::Active,
    }
}

/// The next revision of `e` with another status.
pub(super) fn revised(e: &Entry, status: &str) -> Entry {
    let mut next = e.clone();
    next.header.fields.status = status.into();
    next.revision += 1;
    next.updated_at = Timestamp(e.updated_at.0 + 1);
    next.hash = Entry::compute_hash(&next.header, &next.title, &next.context, &next.config);
    next
}

fn insert(s: &RedbStorage, entries: &[Entry]) -> StageResult<Vec<Inserted>> {
    let mut out = Vec::new();
    s.insert(entries, &mut out).map(|()| out)
}

fn get(s: &RedbStorage, number: u64) -> Option<Entry> {
    let mut out = Vec::new();
    s.get(&[EntryId::new("SEC-RUL", number)], &mut out)
        .expect("reads");
    assert_eq!(out.len(), 1);
    out.pop().flatten()
}

fn allocate(s: &RedbStorage, prefixes: &[&str]) -> Vec<u64> {
    let prefixes: Vec<String> = prefixes.iter().map(|&p| p.to_owned()).collect();
    let mut out = Vec::new();
    s.allocate(&prefixes, &mut out).expect("allocates");
    out
}

fn list(s: &RedbStorage, filter: &[(Field, &str)], after: Option<u64>, limit: usize) -> Vec<u64> {
    let mut query = ListQuery {
        after: after.map(|n| EntryId::new("SEC-RUL", n)),
        limit,
        ..ListQuery::default()
    };
    for &(field, value) in filter {
        query.filter[field] = Some(value.to_owned());
    }
    let mut out = Vec::new();
    s.list(&query, &mut out).expect("lists");
    out.iter().map(|e| e.header.id.number()).collect()
}

#[test]
fn is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<RedbStorage>();
}

/// Rewrites a shard's `format` row (none: a file made before formats were recorded).
fn set_format(s: &RedbStorage, format: Option<u32>) {
    let txn = s.db().begin_write().expect("write");
    {
        let mut table = txn.open_table(LAYOUT).expect("layout");
        match format {
            Some(f) => table.insert("format", f).map(|_| ()),
            None => table.remove("format").map(|_| ()),
        }
        .expect("writes");
    }
    txn.commit().expect("commit");
}

#[test]
fn shard_0_numbers_every_id_densely_and_persists() {
    let dir = TempDir::new().expect("temp dir");
    let zero = RedbStorage::open(&Config::default(), &setup(dir.path(), 0, 3)).expect("opens");
    assert_eq!(
        allocate(&zero, &["SEC-RUL", "SEC-RUL", "OPS-SCR", "SEC-RUL"]),
        [1, 2, 1, 3]
    );
    assert_eq!(allocate(&zero, &["SEC-RUL"]), [4]);
    let mut meta = Meta::new();
    zero.meta(&mut meta).expect("meta");
    assert_eq!(
        meta.get(layout::IDS).map(String::as_str),
        Some(layout::DENSE)
    );
    for shard in 1..3 {
        let s = RedbStorage::open(&Config::default(), &setup(dir.path(), shard, 3)).expect("opens");
        let e = s
            .allocate(&["SEC-RUL".to_owned()], &mut Vec::new())
            .expect_err("only shard 0 numbers");
        assert_eq!(e.code, ErrorCode::Invalid);
        assert!(
            e.message.contains("shard 0 numbers every id"),
            "{}",
            e.message
        );
        assert!(s.place(&[EntryId::new("SEC-RUL", 1)], &[1]).is_err());
        assert!(
            s.locate(&[EntryId::new("SEC-RUL", 1)], &mut Vec::new())
                .is_err()
        );
    }
    // Reopening continues where shard 0 left off, even without a write in between.
    drop(zero);
    let zero = RedbStorage::open(&Config::default(), &existing(dir.path(), 0, 3)).expect("reopens");
    assert_eq!(allocate(&zero, &["SEC-RUL", "OPS-SCR"]), [5, 2]);
    let mut out = Vec::new();
    zero.allocate(&[], &mut out).expect("nothing to do");
    assert!(out.is_empty());
}

#[test]
fn shard_0_records_where_entries_are_and_raises_its_sequences() {
    let dir = TempDir::new().expect("temp dir");
    let zero = RedbStorage::open(&Config::default(), &setup(dir.path(), 0, 3)).expect("opens");
    let id = |n| EntryId::new("SEC-RUL", n);
    let far = rules::LOCATION_BLOCK * 3 + 7;
    zero.place(&[id(2), id(5), id(far)], &[1, 2, 1])
        .expect("places");
    zero.place(&[id(3)], &[2]).expect("places");
    let mut shards = Vec::new();
    zero.locate(
        &[id(1), id(2), id(3), id(4), id(5), id(far), id(far + 1)],
        &mut shards,
    )
    .expect("locates");
    assert_eq!(shards, [0, 1, 2, 0, 2, 1, 0]);
    // A placed number is never handed out again, even after a reopen.
    assert_eq!(allocate(&zero, &["SEC-RUL"]), [far + 1]);
    drop(zero);
    let zero = RedbStorage::open(&Config::default(), &existing(dir.path(), 0, 3)).expect("reopens");
    assert_eq!(allocate(&zero, &["SEC-RUL"]), [far + 2]);
    let mut again = Vec::new();
    zero.locate(&[id(3), id(far)], &mut again).expect("locates");
    assert_eq!(again, [2, 1]);
    let e = zero.place(&[id(9)], &[3]).expect_err("shard 3 of 3");
    assert_eq!(e.code, ErrorCode::Invalid);
    assert!(zero.place(&[id(9), id(10)], &[1]).is_err());
}

/// Shard 0's own entries and the locations of others' go in one transaction: both or neither.
#[test]
fn shard_0_stores_its_entries_and_places_others_together() {
    let dir = TempDir::new().expect("temp dir");
    let zero = RedbStorage::open(&Config::default(), &setup(dir.path(), 0, 3)).expect("opens");
    let id = |n| EntryId::new("SEC-RUL", n);
    let mut out = Vec::new();
    zero.insert_placed(
        &[entry(1, "DEV"), entry(3, "DEV")],
        &[id(2), id(4)],
        &[1, 2],
        &mut out,
    )
    .expect("stores and places");
    assert_eq!(out, [Inserted::Created, Inserted::Created]);
    let mut shards = Vec::new();
    zero.locate(&[id(1), id(2), id(3), id(4)], &mut shards)
        .expect("locates");
    assert_eq!(shards, [0, 1, 0, 2]);
    assert!(get(&zero, 3).is_some());
    assert_eq!(allocate(&zero, &["SEC-RUL"]), [5]);

    // An entry whose id is taken (by another request) fails the transaction: its locations
    // are not recorded.
    let mut taken = entry(3, "LIVE");
    taken.fingerprint = Fingerprint([9; 16]);
    let e = zero
        .insert_placed(&[taken], &[id(7)], &[1], &mut Vec::new())
        .expect_err("id 3 is taken");
    assert_eq!(e.code, ErrorCode::Conflict, "{e:?}");
    let mut shards = Vec::new();
    zero.locate(&[id(7)], &mut shards).expect("locates");
    assert_eq!(shards, [0], "not placed");
    // Bad places are refused before anything is written.
    assert!(
        zero.insert_placed(&[entry(8, "DEV")], &[id(9)], &[3], &mut Vec::new())
            .is_err()
    );
    assert!(get(&zero, 8).is_none());
}

#[test]
fn a_format_1_shard_numbers_its_own_ids_interleaved() {
    let dir = TempDir::new().expect("temp dir");
    for shard in 0..3 {
        let s = RedbStorage::open(&Config::default(), &setup(dir.path(), shard, 3)).expect("opens");
        set_format(&s, None);
    }
    for shard in 0..3 {
        let s = RedbStorage::open(&Config::default(), &existing(dir.path(), shard, 3))
            .expect("reopens");
        let mut meta = Meta::new();
        s.meta(&mut meta).expect("meta");
        assert_eq!(meta.get(layout::IDS), None, "no dense numbering recorded");
        let numbers = allocate(&s, &["SEC-RUL", "SEC-RUL", "OPS-SCR", "SEC-RUL"]);
        let s1 = u64::from(shard) + 1;
        assert_eq!(numbers, [s1, s1 + 3, s1, s1 + 6], "shard {shard}");
        let more = allocate(&s, &["SEC-RUL"]);
        assert_eq!(more, [s1 + 9]);
        assert!(
            s.locate(&[EntryId::new("SEC-RUL", 1)], &mut Vec::new())
                .is_err()
        );
    }
    // Reopening continues where each shard left off.
    let s = RedbStorage::open(&Config::default(), &existing(dir.path(), 1, 3)).expect("reopens");
    assert_eq!(allocate(&s, &["SEC-RUL", "OPS-SCR"]), [14, 5]);
}

#[test]
fn insert_raises_the_sequence() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    assert_eq!(allocate(&s, &["SEC-RUL"]), [1]);
    insert(&s, &[entry(7, "LIVE")]).expect("inserts");
    assert_eq!(allocate(&s, &["SEC-RUL"]), [8]);
}

#[test]
fn inserts_and_reads_back() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let entries: Vec<Entry> = (1..=5).map(|n| entry(n, "LIVE")).collect();
    let outcomes = insert(&s, &entries).expect("inserts");
    assert_eq!(outcomes, vec![Inserted::Created; 5]);

    assert_eq!(get(&s, 3), Some(entries[2].clone()));
    assert_eq!(get(&s, 6), None);
    let mut out = Vec::new();
    s.get(
        &[EntryId::new("SEC-RUL", 5), EntryId::new("OPS-SCR", 1)],
        &mut out,
    )
    .expect("reads");
    assert_eq!(out, [Some(entries[4].clone()), None]);

    let mut out = Vec::new();
    s.find(&[entries[1].fingerprint, Fingerprint([9; 16])], &mut out)
        .expect("reads");
    assert_eq!(out, [Some(entries[1].clone()), None]);

    let mut out = Vec::new();
    s.history(&EntryId::new("SEC-RUL", 4), &mut out)
        .expect("reads");
    assert_eq!(out, [entries[3].clone()]);
    let mut out = Vec::new();
    s.history(&EntryId::new("SEC-RUL", 40), &mut out)
        .expect("reads");
    assert!(out.is_empty());
}

#[test]
fn insert_is_idempotent_by_fingerprint() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let first = entry(1, "LIVE");
    insert(&s, std::slice::from_ref(&first)).expect("inserts");

    // Same fingerprint, another id: the stored entry comes back, nothing is written.
    let mut again = entry(2, "DEV");
    again.fingerprint = first.fingerprint;
    // Within one batch, the first of two equal fingerprints wins.
    let third = entry(3, "LIVE");
    let mut third_again = entry(4, "LIVE");
    third_again.fingerprint = third.fingerprint;
    let outcomes = insert(&s, &[again, third.clone(), third_again]).expect("inserts");
    assert_eq!(
        outcomes,
        [
            Inserted::Existing(first),
            Inserted::Created,
            Inserted::Existing(third)
        ]
    );
    assert_eq!(get(&s, 2), None);
    assert_eq!(get(&s, 4), None);
    assert_eq!(list(&s, &[], None, 10), [1, 3]);
}

#[test]
fn a_taken_id_fails_the_whole_batch() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    insert(&s, &[entry(2, "LIVE")]).expect("inserts");
    let mut clash = entry(2, "DEV");
    clash.fingerprint = Fingerprint([1; 16]);
    let mut out = Vec::new();
    let err = s
        .insert(&[entry(1, "LIVE"), clash], &mut out)
        .expect_err("id 2 is taken");
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(
        err.message,
        "id SEC-RUL-002 is already taken by another entry"
    );
    assert!(out.is_empty());
    assert_eq!(get(&s, 1), None, "the batch was rolled back");

    // Two new entries with one id in one batch clash too.
    let mut twin = entry(3, "LIVE");
    twin.fingerprint = Fingerprint([2; 16]);
    let err = insert(&s, &[entry(3, "LIVE"), twin]).expect_err("id 3 twice");
    assert_eq!(err.code, ErrorCode::Conflict);
    assert_eq!(get(&s, 3), None);

    let mut later = entry(5, "LIVE");
    later.revision = 2;
    let err = insert(&s, &[later]).expect_err("not revision 1");
    assert_eq!(err.code, ErrorCode::Invalid);
}

#[test]
fn each_revision_is_stored_once_and_older_files_read_the_same() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let v1 = entry(1, "LIVE");
    insert(&s, std::slice::from_ref(&v1)).expect("inserts");
    let v2 = revised(&v1, "DEPRECATED");
    let v3 = revised(&v2, "DEV");
    for v in [&v2, &v3] {
        let mut out = Vec::new();
        s.update(std::slice::from_ref(v), &mut out)
            .expect("updates");
        assert!(out[0].is_ok(), "{out:?}");
    }
    let count_revisions = |s: &RedbStorage| {
        use redb::ReadableTableMetadata as _;
        let txn = s.db().begin_read().expect("read");
        let table = txn.open_table(REVISIONS).expect("table");
        table.len().expect("len")
    };
    // Revisions 1 and 2 in `revisions`, the latest only in `entries`.
    assert_eq!(count_revisions(&s), 2);
    let history = |s: &RedbStorage| {
        let mut out = Vec::new();
        s.history(&EntryId::new("SEC-RUL", 1), &mut out)
            .expect("reads");
        out
    };
    assert_eq!(history(&s), [v1.clone(), v2.clone(), v3.clone()]);

    // A file of the earlier layout also holds the latest revision in `revisions`.
    let mut buf = Vec::new();
    s.encode(&v3, crate::codec::Writing::Uncompressed, &mut buf)
        .expect("encodes");
    let txn = s.db().begin_write().expect("write");
    {
        let mut table = txn.open_table(REVISIONS).expect("table");
        table
            .insert(("SEC-RUL", 1, 3), buf.as_slice())
            .expect("insert");
    }
    txn.commit().expect("commit");
    assert_eq!(count_revisions(&s), 3);
    assert_eq!(history(&s), [v1, v2, v3]);
}

#[test]
fn updates_keep_history_and_check_revisions() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let v1 = entry(1, "LIVE");
    insert(&s, &[v1.clone(), entry(2, "LIVE")]).expect("inserts");
    let v2 = revised(&v1, "DEPRECATED");
    let stale = revised(&revised(&revised(&v1, "DEV"), "DEV"), "DEV");
    let mut unknown = revised(&entry(9, "LIVE"), "DEV");
    unknown.fingerprint = Fingerprint([3; 16]);

    let mut out = Vec::new();
    s.update(&[v2.clone(), stale, unknown, v2.clone()], &mut out)
        .expect("updates");
    let codes: Vec<Option<ErrorCode>> = out
        .iter()
        .map(|r| r.as_ref().err().map(|e| e.code))
        .collect();
    assert_eq!(
        codes,
        [
            None,
            Some(ErrorCode::Conflict),
            Some(ErrorCode::NotFound),
            Some(ErrorCode::Conflict)
        ]
    );
    assert_eq!(
        out[1].as_ref().err().map(|e| e.message.as_str()),
        Some("entry SEC-RUL-001 is at revision 2: revision 4 does not follow it")
    );
    assert_eq!(get(&s, 1), Some(v2.clone()));
    let mut history = Vec::new();
    s.history(&EntryId::new("SEC-RUL", 1), &mut history)
        .expect("reads");
    assert_eq!(history, [v1.clone(), v2.clone()]);

    // The fingerprint still finds the entry, now at its latest revision.
    let mut found = Vec::new();
    s.find(&[v1.fingerprint], &mut found).expect("reads");
    assert_eq!(found, [Some(v2)]);

    // A batch with nothing to store succeeds and pushes one result per entry.
    let mut out = Vec::new();
    s.update(&[revised(&v1, "DEV")], &mut out).expect("runs");
    assert_eq!(out.len(), 1);
    assert!(
        out[0]
            .as_ref()
            .is_err_and(|e| e.code == ErrorCode::Conflict)
    );
}

#[test]
fn restore_messages_name_the_entry_and_what_is_wrong() {
    let dir = TempDir::new().expect("temp dir");
    let s = RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 2)).expect("opens");
    let restore = |histories: &[Vec<Entry>]| {
        let mut out = Vec::new();
        s.restore(histories, &mut out).expect("restores");
        out.into_iter()
            .map(|r| r.map_err(|e| (e.code, e.message)))
            .collect::<Vec<_>>()
    };
    let e2 = entry(2, "LIVE");
    let e2b = revised(&e2, "DEV");
    let mut twin = entry(4, "LIVE");
    twin.fingerprint = e2.fingerprint;
    let got = restore(&[
        vec![e2.clone(), e2b.clone()],
        vec![entry(0, "LIVE")],
        vec![e2.clone()],
        vec![twin.clone()],
    ]);
    assert_eq!(got[0], Ok(Restored::Created));
    let message = |i: usize| got[i].clone().expect_err("fails").1;
    assert!(
        message(1).starts_with("entry SEC-RUL-000 has number 0"),
        "{}",
        message(1)
    );
    assert_eq!(
        message(2),
        "entry SEC-RUL-002 is given twice in one batch: only the first is restored"
    );
    assert!(message(3).starts_with("entry SEC-RUL-004 has the fingerprint"));

    // In a later batch: the fingerprint is registered, and a stale history conflicts.
    let mut got = restore(&[vec![twin]]);
    got.extend(restore(&[vec![e2.clone()]]));
    assert_eq!(
        got[0].clone().expect_err("taken").1,
        format!(
            "the request of entry SEC-RUL-004 is already registered as entry SEC-RUL-002 \
             (fingerprint {})",
            e2.fingerprint
        )
    );
    assert_eq!(
        got[1].clone().expect_err("stale").1,
        format!(
            "entry SEC-RUL-002 is already stored with other content: stored revision 2 ({}), \
             given revision 1 ({})",
            e2b.hash, e2.hash
        )
    );
    assert_eq!(get(&s, 2), Some(e2b));
}

#[test]
fn lists_in_id_order_with_filters_and_pages() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let statuses = ["LIVE", "DEV", "LIVE", "DEV", "LIVE", "LIVE"];
    // Inserted out of order; 1000 sorts after 999 and before nothing else of its prefix.
    let mut entries: Vec<Entry> = statuses
        .iter()
        .enumerate()
        .rev()
        .map(|(i, st)| entry(i as u64 + 1, st))
        .collect();
    entries.push(entry(1000, "DEV"));
    insert(&s, &entries).expect("inserts");

    let live = [(Field::Status, "LIVE")];
    let dev = [(Field::Status, "DEV")];
    for (filter, after, limit, want) in [
        (&[][..], None, 100, &[1, 2, 3, 4, 5, 6, 1000][..]),
        (&[], None, 3, &[1, 2, 3]),
        (&[], Some(3), 2, &[4, 5]),
        (&[], Some(1000), 5, &[]),
        (&[], None, 0, &[]),
        (&live, None, 100, &[1, 3, 5, 6]),
        (&live, Some(3), 100, &[5, 6]),
        (&live, Some(1), 2, &[3, 5]),
        (&dev, None, 100, &[2, 4, 1000]),
        (
            &[(Field::Scope, "SEC"), (Field::Status, "DEV")],
            Some(2),
            100,
            &[4, 1000],
        ),
        (&[(Field::Scope, "OPS")], None, 100, &[]),
        (&[(Field::Status, "LIV")], None, 100, &[]),
        (
            &[(Field::Variant, "LIVE"), (Field::Status, "LIVE")],
            None,
            100,
            &[1, 3, 5, 6],
        ),
    ] {
        assert_eq!(
            list(&s, filter, after, limit),
            want,
            "{filter:?} after {after:?}"
        );
    }

    // An `after` of another prefix orders by prefix first.
    let mut query = ListQuery {
        after: Some(EntryId::new("OPS-SCR", 50)),
        limit: 2,
        ..ListQuery::default()
    };
    let mut out = Vec::new();
    s.list(&query, &mut out).expect("lists");
    assert_eq!(out.len(), 2);
    query.after = Some(EntryId::new("ZZZ-ZZZ", 1));
    out.clear();
    s.list(&query, &mut out).expect("lists");
    assert!(out.is_empty());
}

#[test]
fn indexes_follow_updates() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let e1 = entry(1, "LIVE");
    insert(&s, &[e1.clone(), entry(2, "LIVE")]).expect("inserts");
    let mut out = Vec::new();
    s.update(&[revised(&e1, "DEPRECATED")], &mut out)
        .expect("updates");
    assert!(out[0].is_ok());
    assert_eq!(list(&s, &[(Field::Status, "LIVE")], None, 10), [2]);
    assert_eq!(list(&s, &[(Field::Status, "DEPRECATED")], None, 10), [1]);
    // Unchanged fields keep their index rows.
    assert_eq!(list(&s, &[(Field::Variant, "LIVE")], None, 10), [1, 2]);
}

/// Rows in `pending_fingerprints`.
fn pending_rows(s: &RedbStorage) -> u64 {
    let txn = s.begin_read().expect("reads");
    let table = s.read_table(&txn, PENDING).expect("opens");
    redb::ReadableTableMetadata::len(&table).expect("counts")
}

#[test]
fn fingerprints_are_found_pending_merged_and_after_reopening() {
    let dir = TempDir::new().expect("temp dir");
    let config = Config {
        fingerprint_merge: 3,
        ..Config::default()
    };
    let fps = |upto: u64| -> Vec<Fingerprint> {
        (1..=upto).map(|n| entry(n, "LIVE").fingerprint).collect()
    };
    let find = |s: &RedbStorage, upto: u64| -> Vec<Option<u64>> {
        let mut out = Vec::new();
        s.find(&fps(upto), &mut out).expect("finds");
        out.iter()
            .map(|e| e.as_ref().map(|e| e.header.id.number()))
            .collect()
    };
    {
        let s = RedbStorage::from_config(config.clone(), &setup(dir.path(), 0, 1)).expect("opens");
        // Batches of two: merges happen before the batches that find 3 or more pending.
        let mut rows = Vec::new();
        for first in [1, 3, 5, 7, 9] {
            let batch = [entry(first, "LIVE"), entry(first + 1, "LIVE")];
            let outcomes = insert(&s, &batch).expect("inserts");
            assert!(outcomes.iter().all(|o| *o == Inserted::Created));
            rows.push(pending_rows(&s));
            let want: Vec<Option<u64>> = (1..=first + 1).map(Some).collect();
            assert_eq!(find(&s, first + 1), want, "after {}", first + 1);
            // A repeat is found whether its fingerprint is pending or merged.
            let again = insert(&s, &[entry(1, "LIVE"), entry(first, "LIVE")]).expect("ok");
            assert!(
                matches!(&again[..], [Inserted::Existing(a), Inserted::Existing(b)]
                    if a.header.id.number() == 1 && b.header.id.number() == first),
                "{again:?}"
            );
        }
        assert_eq!(rows, [2, 4, 2, 4, 2], "pending rows after each batch");
    }
    // The pending ones are read back when first needed, not at open (a read by id does not
    // need them); merged ones are in the table.
    let s = RedbStorage::from_config(config, &setup(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(pending_rows(&s), 2);
    assert_eq!(get(&s, 10).map(|e| e.header.id.number()), Some(10));
    assert!(!s.pending_loaded.load(Ordering::Acquire), "read by id only");
    assert_eq!(find(&s, 10), (1..=10).map(Some).collect::<Vec<_>>());
    assert!(s.pending_loaded.load(Ordering::Acquire));

    let again = insert(&s, &[entry(10, "LIVE"), entry(2, "LIVE")]).expect("ok");
    assert!(
        again.iter().all(|o| matches!(o, Inserted::Existing(_))),
        "{again:?}"
    );
    // A restore names a fingerprint pending in memory as taken.
    let mut other = entry(11, "LIVE");
    other.fingerprint = entry(10, "LIVE").fingerprint;
    let mut out = Vec::new();
    s.restore(&[vec![other]], &mut out).expect("restores");
    assert!(
        matches!(&out[..], [Err(e)] if e.code == ErrorCode::Conflict),
        "{out:?}"
    );
}

#[test]
fn concurrent_inserts_keep_every_pending_fingerprint_on_disk() {
    let dir = TempDir::new().expect("temp dir");
    let (threads, batches, size) = (4u64, 40u64, 10u64);
    {
        let s = open(dir.path());
        std::thread::scope(|scope| {
            for t in 0..threads {
                let s = &s;
                scope.spawn(move || {
                    for b in 0..batches {
                        let first = 1 + (t * batches + b) * size;
                        let batch: Vec<Entry> =
                            (first..first + size).map(|n| entry(n, "LIVE")).collect();
                        insert(s, &batch).expect("inserts");
                    }
                });
            }
        });
    }
    let total = threads * batches * size;
    let s = open(dir.path());
    assert_eq!(pending_rows(&s), total, "a pending row was overwritten");
    let fps: Vec<Fingerprint> = (1..=total).map(|n| entry(n, "LIVE").fingerprint).collect();
    let mut found = Vec::new();
    s.find(&fps, &mut found).expect("finds");
    let missing: Vec<u64> = (1..=total)
        .zip(&found)
        .filter(|(_, f)| f.is_none())
        .map(|(n, _)| n)
        .collect();
    assert!(missing.is_empty(), "lost after reopening: {missing:?}");
}

#[test]
fn allocations_are_saved_by_the_next_write_and_at_close() {
    let dir = TempDir::new().expect("temp dir");
    {
        let s = open(dir.path());
        assert_eq!(allocate(&s, &["SEC-RUL", "SEC-RUL", "SEC-RUL"]), [1, 2, 3]);
        insert(&s, &[entry(1, "LIVE")]).expect("inserts");
        // Saved by the insert: a store that is not closed cleanly still knows them.
        let txn = s.begin_read().expect("reads");
        let seq = s.read_table(&txn, SEQUENCES).expect("opens");
        let saved = seq.get("SEC-RUL").expect("reads").map(|g| g.value());
        assert_eq!(saved, Some(3));
        drop((seq, txn));
        assert_eq!(allocate(&s, &["SEC-RUL"]), [4]);
    }
    // 4 was saved by the close.
    let s = open(dir.path());
    assert_eq!(allocate(&s, &["SEC-RUL"]), [5]);
}

#[test]
fn reopening_keeps_everything() {
    let dir = TempDir::new().expect("temp dir");
    let e1 = entry(1, "LIVE");
    let e2 = revised(&e1, "DEV");
    {
        let s = open(dir.path());
        assert_eq!(allocate(&s, &["SEC-RUL", "SEC-RUL"]), [1, 2]);
        insert(&s, &[e1.clone(), entry(2, "LIVE")]).expect("inserts");
        let mut out = Vec::new();
        s.update(std::slice::from_ref(&e2), &mut out)
            .expect("updates");
        assert_eq!(allocate(&s, &["SEC-RUL"]), [3]);
    }
    assert!(dir.path().join("shard-000.redb").is_file());
    let s = open(dir.path());
    assert_eq!(get(&s, 1), Some(e2.clone()));
    let mut history = Vec::new();
    s.history(&EntryId::new("SEC-RUL", 1), &mut history)
        .expect("reads");
    assert_eq!(history, [e1.clone(), e2]);
    assert_eq!(list(&s, &[(Field::Status, "DEV")], None, 10), [1]);
    assert_eq!(allocate(&s, &["SEC-RUL"]), [4]);
    let outcomes = insert(&s, std::slice::from_ref(&e1)).expect("inserts");
    assert!(matches!(&outcomes[..], [Inserted::Existing(e)] if e.revision == 2));
}

#[test]
fn non_durable_mode_works_and_survives_a_clean_close() {
    let dir = TempDir::new().expect("temp dir");
    let config = Config {
        durable: false,
        ..Config::default()
    };
    {
        let s = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect("opens");
        insert(&s, &[entry(1, "LIVE")]).expect("inserts");
    }
    let s = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(get(&s, 1), Some(entry(1, "LIVE")));
}

#[test]
fn damaged_rows_are_reported_with_their_id() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    insert(&s, &[entry(4, "LIVE")]).expect("inserts");
    let txn = s.db().begin_write().expect("writes");
    {
        let name = entries::table_name("SEC-RUL");
        let mut entries = txn
            .open_table(TableDefinition::<u64, &[u8]>::new(&name))
            .expect("table exists");
        entries
            .insert(4, [1u8, 0xff, 0, 0].as_slice())
            .expect("writes");
    }
    txn.commit().expect("commits");
    let mut out = Vec::new();
    let err = s
        .get(&[EntryId::new("SEC-RUL", 4)], &mut out)
        .expect_err("damaged");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(
        err.message
            .starts_with("entry SEC-RUL-004 is damaged: truncated"),
        "{}",
        err.message
    );
    assert!(err.message.contains("shard-000.redb"), "{}", err.message);
    assert!(out.is_empty());
}

#[test]
fn damaged_rows_of_the_shared_format_are_reported_with_their_id_when_read_or_lent() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    insert(&s, &[entry(4, "LIVE"), entry(6, "LIVE"), entry(8, "LIVE")]).expect("inserts");
    let mut other = Vec::new();
    registry_codec::entry::encode(
        &entry(7, "LIVE"),
        codec::Writing::Compressed(None),
        &mut other,
    );
    let txn = s.db().begin_write().expect("writes");
    {
        let name = entries::table_name("SEC-RUL");
        let mut entries = txn
            .open_table(TableDefinition::<u64, &[u8]>::new(&name))
            .expect("table exists");
        entries
            .insert(4, [4u8, 3, b'S'].as_slice())
            .expect("writes");
        entries.insert(6, other.as_slice()).expect("writes");
    }
    txn.commit().expect("commits");
    for (number, why) in [
        (
            4,
            "entry SEC-RUL-004 is damaged: truncated: scope needs 3 bytes",
        ),
        (
            6,
            "entry SEC-RUL-006 is damaged: its row holds entry SEC-RUL-007",
        ),
    ] {
        let ids = [EntryId::new("SEC-RUL", 8), EntryId::new("SEC-RUL", number)];
        let mut out = vec![None];
        let err = s.get(&ids, &mut out).expect_err("damaged");
        assert_eq!(err.code, ErrorCode::Storage);
        assert!(err.message.starts_with(why), "{}", err.message);
        assert_eq!(out, [None], "nothing of the failed call is kept");
        let mut lent = 0;
        let err = s
            .get_lent(&ids, &mut Vec::new(), &mut |_| {
                lent += 1;
                Ok(())
            })
            .expect_err("damaged");
        assert!(err.message.starts_with(why), "{}", err.message);
        assert_eq!(lent, 0, "nothing is lent");
    }
    // The rows around them still read.
    assert_eq!(get(&s, 8), Some(entry(8, "LIVE")));
}

#[test]
fn a_held_file_times_out_as_unavailable() {
    let dir = TempDir::new().expect("temp dir");
    let _holder = open(dir.path());
    let config = Config {
        lock_timeout_ms: 60,
        ..Config::default()
    };
    let started = Instant::now();
    let err = RedbStorage::open(&config, &setup(dir.path(), 0, 1)).expect_err("held");
    assert!(started.elapsed() >= Duration::from_millis(60));
    assert_eq!(err.code, ErrorCode::Unavailable);
    assert!(err.message.contains("shard-000.redb"), "{}", err.message);
    assert!(
        err.message.contains("another registry process"),
        "{}",
        err.message
    );
}

#[test]
fn an_unwritable_data_dir_is_a_config_error() {
    let dir = TempDir::new().expect("temp dir");
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "not a directory").expect("writes");
    let data_dir = file.join("data");
    let err =
        RedbStorage::open(&Config::default(), &setup(&data_dir, 0, 1)).expect_err("cannot create");
    assert_eq!(err.code, ErrorCode::Config);
    assert_eq!(
        err.message,
        format!(
            "cannot create data directory `{}`: not a directory",
            data_dir.display()
        )
    );
}

#[test]
fn a_file_that_is_not_redb_is_a_storage_error() {
    let dir = TempDir::new().expect("temp dir");
    std::fs::write(dir.path().join("shard-000.redb"), vec![7u8; 8192]).expect("writes");
    let err =
        RedbStorage::open(&Config::default(), &setup(dir.path(), 0, 1)).expect_err("not redb");
    assert_eq!(err.code, ErrorCode::Storage);
    assert!(err.message.starts_with("cannot open `"), "{}", err.message);
    assert!(!err.message.contains('\n'));
}

#[test]
fn a_missing_or_emptied_file_is_never_recreated() {
    let dir = TempDir::new().expect("temp dir");
    let config = Config::default();
    let err = RedbStorage::open(&config, &existing(dir.path(), 0, 2)).expect_err("missing");
    assert_eq!(err.code, ErrorCode::NotFound, "{}", err.message);
    assert!(
        err.message.contains("shard-000.redb` does not exist"),
        "{}",
        err.message
    );
    assert!(
        !dir.path().join("shard-000.redb").exists(),
        "a shard that must exist is not created"
    );
    let probe = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect_err("none");
    assert_eq!(probe.code, ErrorCode::NotFound, "{}", probe.message);
    for shard in 0..2 {
        let mut s = RedbStorage::open(&config, &setup(dir.path(), shard, 2)).expect("creates");
        s.shards = 2;
        drop(s);
    }
    let probe = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect("exists");
    assert_eq!(
        probe.shards, 2,
        "shard 0 tells the count it was created with"
    );
    drop(probe);
    // Truncated to nothing: `Builder::create` would make a fresh empty database of it.
    let one = dir.path().join("shard-001.redb");
    std::fs::File::create(&one).expect("truncates");
    for create in [None, Some(Meta::new())] {
        let err = RedbStorage::open(
            &config,
            &Setup {
                create,
                ..setup(dir.path(), 1, 2)
            },
        )
        .expect_err("emptied");
        assert_eq!(err.code, ErrorCode::Missing, "{}", err.message);
        assert!(
            err.message.contains("is empty (0 bytes)"),
            "{}",
            err.message
        );
    }
    assert_eq!(std::fs::metadata(&one).expect("still there").len(), 0);
    // Shard 0 gone while another shard is there: not "no registry".
    std::fs::remove_file(dir.path().join("shard-000.redb")).expect("removes");
    let err = RedbStorage::open(&config, &existing(dir.path(), 0, 0)).expect_err("gone");
    assert_eq!(err.code, ErrorCode::Missing, "{}", err.message);
    assert!(err.message.contains("shard-001.redb"), "{}", err.message);
}

#[test]
fn creation_is_whole_or_nothing() {
    let dir = TempDir::new().expect("temp dir");
    let config = Config::default();
    let meta: Meta = [("state".to_owned(), "creating".to_owned())].into();
    let creating = Setup {
        create: Some(meta.clone()),
        ..setup(dir.path(), 0, 1)
    };
    // The temporary file cannot be made (a directory holds its name), as when the disk is
    // full: no file is left under the shard's name, and none that could never be opened.
    let tmp = dir
        .path()
        .join(format!(".shard-000.redb.{}.creating", std::process::id()));
    std::fs::create_dir(&tmp).expect("blocks the temporary name");
    std::fs::write(tmp.join("x"), "x").expect("makes it non-empty");
    let err = RedbStorage::open(&config, &creating).expect_err("cannot create");
    assert!(err.message.contains("cannot create"), "{}", err.message);
    assert!(!dir.path().join("shard-000.redb").exists());
    std::fs::remove_dir_all(&tmp).expect("unblocks");
    // Created whole: its metadata came in the same transaction as its tables.
    let s = RedbStorage::open(&config, &creating).expect("creates");
    let mut got = Meta::new();
    s.meta(&mut got).expect("reads");
    assert_eq!(got.get("state").map(String::as_str), Some("creating"));
    assert_eq!(got.get(layout::SHARDS).map(String::as_str), Some("1"));
    drop(s);
    let names: Vec<String> = std::fs::read_dir(dir.path())
        .expect("lists")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["shard-000.redb"], "no temporary file is left");
    // Opening an existing shard with `create` keeps what it holds.
    let again = RedbStorage::open(
        &config,
        &Setup {
            create: Some(Meta::new()),
            ..setup(dir.path(), 0, 1)
        },
    )
    .expect("opens");
    let mut got = Meta::new();
    again.meta(&mut got).expect("reads");
    assert_eq!(got.get("state").map(String::as_str), Some("creating"));
}

#[test]
fn shard_layout_is_checked() {
    let dir = TempDir::new().expect("temp dir");
    for (shard, shards) in [(0, 0), (3, 3)] {
        let err = RedbStorage::open(&Config::default(), &setup(dir.path(), shard, shards))
            .expect_err("impossible shard");
        assert_eq!(err.code, ErrorCode::Config, "{}", err.message);
    }
    drop(RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 3)).expect("opens"));
    let err =
        RedbStorage::open(&Config::default(), &setup(dir.path(), 1, 4)).expect_err("other layout");
    assert_eq!(err.code, ErrorCode::Config);
    assert!(err.message.contains("shards = 3"), "{}", err.message);
}

#[test]
fn config_keys_and_defaults() {
    let parse = |v: serde_json::Value| serde_json::from_value::<Config>(v);
    assert_eq!(
        parse(serde_json::json!({})).expect("empty is default"),
        Config::default()
    );
    assert_eq!(
        parse(serde_json::json!({
            "cache_size_mb": 8, "lock_timeout_ms": 0, "durable": false, "fingerprint_merge": 3
        }))
        .expect("all keys"),
        Config {
            cache_size_mb: 8,
            lock_timeout_ms: 0,
            durable: false,
            fingerprint_merge: 3,
        }
    );
    let err = parse(serde_json::json!({"cache_size": 8})).expect_err("misspelt");
    assert!(
        err.to_string().contains("unknown field `cache_size`"),
        "{err}"
    );
    assert!(parse(serde_json::json!({"durable": "yes"})).is_err());
}

#[test]
fn messages_are_one_lowercase_line() {
    for (input, want) in [
        (
            "Database already open. Cannot acquire lock.",
            "database already open. cannot acquire lock",
        ),
        ("I/O error:\n  disk full.", "i/o error: disk full"),
        ("", ""),
    ] {
        assert_eq!(one_line(input), want);
    }
    let e = std::io::Error::from_raw_os_error(13);
    assert_eq!(io_reason(&e), "permission denied");
}

/// A config like the default generator's: mostly the same template text in every entry.
fn templated(e: &Entry) -> Entry {
    let n = e.header.id.number();
    let mut e = e.clone();
    e.config = format!(
        "dashboard:\n  title: {}\n  version: v2.9\n  header: '{}'\n  security:\n    csrf: {}\n    \
         cookies:\n      secure: true\n      http_only: true\n      same_site: lax\n    \
         authentication:\n      required: true\n      session_timeout_minutes: 480\n  \
         filters:\n  - threat_level\n  - source_ip\n  - destination_port\n  deployment:\n    \
         environment: production\n    replicas: {}\ngovernance:\n  id: {}\n  scope: SEC\n",
        e.title,
        e.header.readable(),
        n.is_multiple_of(2),
        1 + n % 3,
        e.header.id
    );
    e.hash = e.content_hash();
    e
}

fn layout_row(s: &RedbStorage, key: &str) -> Option<u32> {
    let txn = s.db().begin_read().expect("read");
    let table = txn.open_table(LAYOUT).expect("layout");
    table.get(key).expect("reads").map(|g| g.value())
}

#[test]
fn a_new_shard_is_format_2_and_trains_a_dictionary_at_its_thousandth_entry() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    assert_eq!(layout_row(&s, "format"), Some(STORAGE_FORMAT));
    let all: Vec<Entry> = (1..=1500).map(|n| templated(&entry(n, "LIVE"))).collect();
    // 999 entries: no dictionary yet; each config is compressed without one.
    for chunk in all[..999].chunks(333) {
        insert(&s, chunk).expect("inserts");
    }
    assert!(s.dictionaries().is_empty());
    // The insert that reaches 1,000 trains one, in its own transaction, and uses it.
    insert(&s, &all[999..1200]).expect("inserts");
    assert_eq!(s.dictionaries().newest().map(|d| d.id()), Some(1));
    insert(&s, &all[1200..]).expect("inserts");
    let stored_len = |n: u64| {
        let txn = s.db().begin_read().expect("read");
        let name = entries::table_name("SEC-RUL");
        let table = txn
            .open_table(TableDefinition::<u64, &[u8]>::new(&name))
            .expect("entries of SEC-RUL");
        let row = table.get(n).expect("reads").expect("stored");
        row.value().len()
    };
    let (before, after) = (stored_len(10), stored_len(1400));
    assert!(
        after * 2 < before,
        "with the dictionary {after} bytes, without {before}"
    );
    // The batch that trained it is stored with it too, not as encoded before the insert took
    // the writer (when the shard had no dictionary).
    let trained_with = stored_len(1100);
    assert!(
        trained_with * 2 < before,
        "the training batch's entry: {trained_with} bytes, without a dictionary {before}"
    );
    for e in [&all[0], &all[998], &all[999], &all[1499]] {
        assert_eq!(get(&s, e.header.id.number()).as_ref(), Some(e));
    }
    drop(s);
    // Reopened, the dictionary is read back and every entry decodes.
    let s =
        RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(s.dictionaries().len(), 1);
    assert_eq!(list(&s, &[], None, 2000).len(), 1500);
    assert_eq!(get(&s, 1500).as_ref(), Some(&all[1499]));

    // A batch of 500 configs or more trains on itself at once, however empty the shard.
    let other = TempDir::new().expect("temp dir");
    let s = open(other.path());
    insert(&s, &all[..TRAIN_SAMPLES]).expect("inserts");
    assert_eq!(s.dictionaries().len(), 1);
    assert_eq!(get(&s, 1).as_ref(), Some(&all[0]));
}

#[test]
fn a_format_1_shard_is_written_as_its_builds_wrote_it_and_a_newer_one_is_refused() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    // A file made before formats were recorded has no `format` row.
    set_format(&s, None);
    drop(s);
    let old =
        RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(old.format(), 1);
    let all: Vec<Entry> = (1..=1100).map(|n| templated(&entry(n, "LIVE"))).collect();
    insert(&old, &all).expect("inserts");
    assert!(
        old.dictionaries().is_empty(),
        "a format 1 shard trains nothing"
    );
    let txn = old.db().begin_read().expect("read");
    let first_byte = txn
        .open_table(ENTRIES)
        .expect("entries")
        .get(("SEC-RUL", 5))
        .expect("reads")
        .expect("stored")
        .value()[0];
    drop(txn);
    assert_eq!(
        first_byte, 2,
        "entry format 2, as the builds that made the file write"
    );
    assert_eq!(get(&old, 5).as_ref(), Some(&all[4]));
    // Its rows are lent from entries decoded as those builds wrote them.
    let ids = [EntryId::new("SEC-RUL", 5), EntryId::new("SEC-RUL", 99_999)];
    let lent = registry_testkit::storage::lent(&old, &ids).expect("lends");
    assert_eq!(lent, [Some(all[4].clone()), None]);
    assert_eq!(
        layout_row(&old, "format"),
        None,
        "opening it changed no format"
    );

    set_format(&old, Some(STORAGE_FORMAT + 1));
    drop(old);
    let e = RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1))
        .expect_err("a newer format");
    assert_eq!(e.code, ErrorCode::Config);
    assert!(
        e.message.ends_with(&format!(
            "shard-000.redb` is of storage format {}, newer than this build's {STORAGE_FORMAT}: \
             open it with the build of the registry that wrote it, or a newer one",
            STORAGE_FORMAT + 1
        )),
        "{}",
        e.message
    );
}

impl RedbStorage {
    /// The database, for tests that look at tables directly.
    fn db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        self.db.read().expect("no test panics holding the lock")
    }
}

#[test]
fn compact_rewrites_with_a_fresh_dictionary_and_gives_space_back() {
    let dir = TempDir::new().expect("temp dir");
    let s = open(dir.path());
    let all: Vec<Entry> = (1..=1500).map(|n| templated(&entry(n, "LIVE"))).collect();
    for chunk in all.chunks(250) {
        insert(&s, chunk).expect("inserts");
    }
    // Revisions: the first 100 updated once.
    let updated: Vec<Entry> = all[..100]
        .iter()
        .map(|e| templated(&revised(e, "DEPRECATED")))
        .collect();
    let mut out = Vec::new();
    s.update(&updated, &mut out).expect("updates");
    assert!(out.iter().all(Result::is_ok));
    let size = || {
        std::fs::metadata(dir.path().join("shard-000.redb"))
            .expect("the file")
            .len()
    };
    let before = size();
    // The 999 entries stored before the first dictionary, and the 100 revisions moved aside,
    // are rewritten with the new one; so is every entry written with the first.
    let rewritten = s.compact().expect("compacts");
    assert!(rewritten >= 999 + 100, "{rewritten} rewritten");
    assert_eq!(s.dictionaries().newest().map(|d| d.id()), Some(2));
    assert!(size() <= before, "{} bytes after, {before} before", size());
    let history = |n: u64| {
        let mut out = Vec::new();
        s.history(&EntryId::new("SEC-RUL", n), &mut out)
            .expect("reads");
        out
    };
    assert_eq!(history(1), [all[0].clone(), updated[0].clone()]);
    assert_eq!(get(&s, 1500).as_ref(), Some(&all[1499]));
    // Compacting again rewrites what the newest dictionary changes, and no entry changes.
    s.compact().expect("compacts again");
    assert_eq!(list(&s, &[], None, 2000).len(), 1500);
    drop(s);
    let s =
        RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(s.dictionaries().len(), 3);
    assert_eq!(get(&s, 100).as_ref(), Some(&updated[99]));
}

/// A format 1 shard of `count` templated entries, every tenth with a second revision; returns
/// the shard and, per entry, its history.
fn format_1_shard(dir: &Path, count: u64) -> (RedbStorage, Vec<Vec<Entry>>) {
    let s = open(dir);
    set_format(&s, None);
    drop(s);
    let old = RedbStorage::from_config(Config::default(), &existing(dir, 0, 1)).expect("reopens");
    let first: Vec<Entry> = (1..=count).map(|n| templated(&entry(n, "LIVE"))).collect();
    insert(&old, &first).expect("inserts");
    let second: Vec<Entry> = first
        .iter()
        .step_by(10)
        .map(|e| revised(e, "DEPRECATED"))
        .collect();
    let mut out = Vec::new();
    old.update(&second, &mut out).expect("updates");
    assert!(out.iter().all(Result::is_ok));
    let histories = first
        .into_iter()
        .map(|e| {
            let mut h = vec![e.clone()];
            h.extend(second.iter().find(|r| r.header.id == e.header.id).cloned());
            h
        })
        .collect();
    (old, histories)
}

fn read_all(s: &RedbStorage, histories: &[Vec<Entry>]) -> Vec<Vec<Entry>> {
    histories
        .iter()
        .map(|h| {
            let mut out = Vec::new();
            s.history(&h[0].header.id, &mut out).expect("reads");
            out
        })
        .collect()
}

#[test]
fn a_format_1_shard_migrates_in_chunks_and_reads_back_the_same() {
    let dir = TempDir::new().expect("temp dir");
    // More than two chunks of the copy.
    let (old, histories) = format_1_shard(dir.path(), 25_000);
    let size_before = std::fs::metadata(&old.path).expect("file").len();
    assert_eq!(old.migrate(&[], &[]), Ok(25_000 + 2_500));
    assert_eq!(old.format(), STORAGE_FORMAT);
    assert_eq!(
        read_all(&old, &histories),
        histories,
        "the same, in this process"
    );
    assert!(!old.dictionaries().is_empty(), "trained on its configs");
    drop(old);
    let new =
        RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(new.format(), STORAGE_FORMAT);
    assert_eq!(layout_row(&new, "format"), Some(STORAGE_FORMAT));
    assert_eq!(read_all(&new, &histories), histories, "the same, reopened");
    // The field index came along: every tenth entry was deprecated, across blocks of bits.
    let deprecated: Vec<u64> = (1..=25_000).step_by(10).collect();
    assert_eq!(
        list(&new, &[(Field::Status, "DEPRECATED")], None, usize::MAX),
        deprecated
    );
    assert_eq!(
        list(&new, &[(Field::Status, "DEPRECATED")], Some(4091), 3),
        [4101, 4111, 4121]
    );
    assert_eq!(
        list(&new, &[(Field::Status, "LIVE")], None, usize::MAX).len(),
        22_500
    );
    let size_after = std::fs::metadata(&new.path).expect("file").len();
    assert!(
        size_after < size_before / 2,
        "{size_before} bytes before, {size_after} after"
    );
    // Numbering is dense from the highest stored number on; once is enough.
    assert_eq!(allocate(&new, &["SEC-RUL"]), [25_001]);
    assert_eq!(new.migrate(&[], &[]), Ok(0));
    // The staging tables are gone.
    let txn = new.db().begin_read().expect("read");
    let names: Vec<String> = txn
        .list_tables()
        .expect("tables")
        .map(|t| t.name().to_owned())
        .collect();
    assert!(!names.iter().any(|n| n.contains(".migrating")), "{names:?}");
    assert!(names.contains(&entries::table_name("SEC-RUL")), "{names:?}");
}

#[test]
fn a_migration_cut_short_leaves_format_1_readable_and_a_rerun_finishes() {
    let dir = TempDir::new().expect("temp dir");
    let (old, histories) = format_1_shard(dir.path(), 12_000);
    // What a crash after the copy's last transaction, before the switch, leaves: a dictionary
    // and full staging tables, every one committed.
    let dictionaries = old.train_for_migration().expect("trains");
    old.stage_entries(&dictionaries).expect("stages");
    old.stage_revisions(&dictionaries).expect("stages");
    drop(old);
    let reopened =
        RedbStorage::from_config(Config::default(), &existing(dir.path(), 0, 1)).expect("reopens");
    assert_eq!(reopened.format(), 1, "still format 1");
    assert_eq!(layout_row(&reopened, "format"), None);
    assert_eq!(read_all(&reopened, &histories), histories);
    // A format 1 shard keeps writing as its builds did, staging tables or not.
    insert(&reopened, &[templated(&entry(12_001, "LIVE"))]).expect("inserts");
    let first_byte = {
        let txn = reopened.db().begin_read().expect("read");
        txn.open_table(ENTRIES)
            .expect("entries")
            .get(("SEC-RUL", 12_001))
            .expect("reads")
            .expect("stored")
            .value()[0]
    };
    assert_eq!(first_byte, 2);
    // The rerun starts the copy over, so the entry stored meanwhile is migrated too.
    assert_eq!(reopened.migrate(&[], &[]), Ok(12_001 + 1_200));
    let mut all = histories;
    all.push(vec![templated(&entry(12_001, "LIVE"))]);
    assert_eq!(read_all(&reopened, &all), all);
}

/// A shard reopened and written before anything read its pending fingerprints loads them first:
/// a repeat of a pending fingerprint is found, and new pending rows are numbered after the
/// stored ones, so none is overwritten and all are found after the next reopening.
#[test]
fn an_insert_first_after_reopening_loads_the_pending_fingerprints() {
    let dir = TempDir::new().expect("temp dir");
    let config = Config {
        fingerprint_merge: 100,
        ..Config::default()
    };
    let open =
        || RedbStorage::from_config(config.clone(), &setup(dir.path(), 0, 1)).expect("opens");
    {
        let s = open();
        insert(&s, &[entry(1, "LIVE"), entry(2, "LIVE")]).expect("inserts");
    }
    {
        let s = open();
        let outcomes = insert(&s, &[entry(2, "LIVE"), entry(3, "LIVE")]).expect("inserts");
        assert!(
            matches!(&outcomes[..], [Inserted::Existing(e), Inserted::Created] if e.header.id.number() == 2),
            "{outcomes:?}"
        );
        assert_eq!(pending_rows(&s), 3);
    }
    let s = open();
    let fps: Vec<Fingerprint> = (1..=3).map(|n| entry(n, "LIVE").fingerprint).collect();
    let mut out = Vec::new();
    s.find(&fps, &mut out).expect("finds");
    let found: Vec<Option<u64>> = out
        .iter()
        .map(|e| e.as_ref().map(|e| e.header.id.number()))
        .collect();
    assert_eq!(found, [Some(1), Some(2), Some(3)]);
}
