//! Opening a directory: reopening, and what is recreated.

use std::fs;

use registry_search::{SCHEMA_VERSION, SearchErrorKind, SearchIndex};

use crate::{entry, find};

#[test]
fn a_reopened_index_keeps_its_documents() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let opened = SearchIndex::open(dir.path()).expect("open");
        assert!(opened.rebuilt);
        opened
            .index
            .upsert(&[entry(1, "durable lantern", &[], "x: 1\n")])
            .expect("upsert");
        opened.index.commit().expect("commit");
    }
    let opened = SearchIndex::open(dir.path()).expect("reopen");
    assert!(
        !opened.rebuilt,
        "an index of this version is opened as it is"
    );
    assert_eq!(opened.index.docs(), 1);
    assert_eq!(find(&opened.index, "lantern"), vec![1]);
    // And it can still be written.
    opened
        .index
        .upsert(&[entry(2, "second lantern", &[], "x: 1\n")])
        .expect("upsert");
    opened.index.commit().expect("commit");
    assert_eq!(opened.index.docs(), 2);
}

#[test]
fn uncommitted_documents_are_not_kept() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    {
        let index = SearchIndex::open(dir.path()).expect("open").index;
        index
            .upsert(&[entry(1, "never committed", &[], "x: 1\n")])
            .expect("upsert");
    }
    assert_eq!(
        SearchIndex::open(dir.path()).expect("reopen").index.docs(),
        0
    );
}

/// An index of one document in a new directory, closed.
fn closed_index() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = SearchIndex::open(dir.path()).expect("open").index;
    index
        .upsert(&[entry(1, "lantern", &[], "x: 1\n")])
        .expect("upsert");
    index.commit().expect("commit");
    dir
}

#[test]
fn another_schema_version_is_recreated_empty() {
    for version in [
        format!("{}\n", SCHEMA_VERSION + 1),
        "0".to_owned(),
        "garbage".to_owned(),
    ] {
        let dir = closed_index();
        fs::write(dir.path().join("search-version"), &version).expect("write");
        let opened = SearchIndex::open(dir.path()).expect("open");
        assert!(opened.rebuilt, "version {version:?}");
        assert_eq!(opened.index.docs(), 0);
        assert!(find(&opened.index, "lantern").is_empty());
        drop(opened);
        let again = SearchIndex::open(dir.path()).expect("open");
        assert!(!again.rebuilt, "the recreated index records its version");
    }
}

#[test]
fn a_missing_version_file_is_recreated_empty() {
    let dir = closed_index();
    fs::remove_file(dir.path().join("search-version")).expect("remove");
    let opened = SearchIndex::open(dir.path()).expect("open");
    assert!(opened.rebuilt);
    assert_eq!(opened.index.docs(), 0);
}

#[test]
fn files_tantivy_cannot_read_are_recreated_empty() {
    // meta.json garbled.
    let dir = closed_index();
    fs::write(dir.path().join("meta.json"), b"{not json").expect("write");
    let opened = SearchIndex::open(dir.path()).expect("open");
    assert!(opened.rebuilt);
    assert_eq!(opened.index.docs(), 0);
    drop(opened);

    // Every segment file overwritten with garbage.
    let dir = closed_index();
    for item in fs::read_dir(dir.path()).expect("read_dir") {
        let path = item.expect("entry").path();
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        if name.len() > 32 && name.as_bytes()[32] == b'.' {
            fs::write(&path, b"garbage garbage garbage").expect("write");
        }
    }
    let opened = SearchIndex::open(dir.path()).expect("open");
    assert!(opened.rebuilt);
    assert_eq!(opened.index.docs(), 0);
    opened
        .index
        .upsert(&[entry(2, "works again", &[], "x: 1\n")])
        .expect("upsert");
    opened.index.commit().expect("commit");
    assert_eq!(find(&opened.index, "works"), vec![2]);
    drop(opened);

    // A segment file missing.
    let dir = closed_index();
    let segment = fs::read_dir(dir.path())
        .expect("read_dir")
        .map(|i| i.expect("entry").path())
        .find(|p| p.extension().is_some_and(|e| e == "idx"))
        .expect("a segment's term index");
    fs::remove_file(segment).expect("remove");
    let opened = SearchIndex::open(dir.path()).expect("open");
    assert!(opened.rebuilt);
    assert_eq!(opened.index.docs(), 0);
}

#[test]
fn emptying_leaves_other_files_alone() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    fs::write(dir.path().join("notes.txt"), b"mine").expect("write");
    fs::write(dir.path().join("meta.json"), b"garbage").expect("write");
    let opened = SearchIndex::open(dir.path()).expect("open");
    assert!(opened.rebuilt);
    assert_eq!(
        fs::read(dir.path().join("notes.txt")).expect("read"),
        b"mine"
    );
}

#[test]
fn a_second_writer_is_refused_and_the_first_kept() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let first = SearchIndex::open(dir.path()).expect("open").index;
    first
        .upsert(&[entry(1, "lantern", &[], "x: 1\n")])
        .expect("upsert");
    first.commit().expect("commit");
    let second = SearchIndex::open(dir.path());
    let err = second.expect_err("the index is locked");
    assert_eq!(err.kind(), SearchErrorKind::Locked);
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("search index in {}: ", dir.path().display())),
        "{text}"
    );
    assert!(!text.contains('\n'), "{text}");
    assert_eq!(find(&first, "lantern"), vec![1], "nothing was emptied");
}

#[test]
fn a_directory_that_cannot_be_created_is_an_error() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let file = dir.path().join("file");
    fs::write(&file, b"x").expect("write");
    let err = SearchIndex::open(&file.join("index")).expect_err("below a file");
    assert_eq!(err.kind(), SearchErrorKind::Open);
    assert!(err.to_string().contains("cannot create"), "{err}");
}

/// What the index in `dir` holds of `word`, read through tantivy from a second, read-only
/// opening: whether any segment's term dictionary has it (deleted documents' terms included),
/// and the segment files on disk that belong to no segment of the index.
fn on_disk(dir: &std::path::Path, word: &str) -> (bool, Vec<String>) {
    let index = tantivy::Index::open_in_dir(dir).expect("open read-only");
    let title = index.schema().get_field("title").expect("a title field");
    let searcher = index.reader().expect("reader").searcher();
    let in_terms = searcher.segment_readers().iter().any(|segment| {
        segment
            .inverted_index(title)
            .expect("inverted index")
            .terms()
            .term_ord(word)
            .expect("term dictionary")
            .is_some()
    });
    let live: std::collections::HashSet<String> = index
        .searchable_segment_metas()
        .expect("metas")
        .iter()
        .flat_map(|m| m.list_files())
        .map(|p| p.display().to_string())
        .collect();
    let stray = fs::read_dir(dir)
        .expect("read_dir")
        .map(|i| i.expect("entry").file_name().to_string_lossy().into_owned())
        .filter(|name| name.len() > 32 && name.as_bytes()[32] == b'.' && !live.contains(name))
        .collect();
    (in_terms, stray)
}

#[test]
fn expunging_removes_deleted_text_from_disk() {
    // tantivy keeps terms in a finite-state transducer, which does not spell a word out byte
    // by byte, so the check reads the term dictionaries of the segments on disk and checks
    // that no segment file outside them is left.
    let dir = tempfile::tempdir().expect("a temporary directory");
    let index = SearchIndex::open(dir.path()).expect("open").index;
    let secret = "xylophonequartzsecret";
    index
        .upsert(&[
            entry(1, &format!("purged {secret}"), &[], "x: 1\n"),
            entry(2, "kept words", &[], "x: 1\n"),
        ])
        .expect("upsert");
    index.commit().expect("commit");
    // A second segment, with no deletes.
    index
        .upsert(&[entry(3, "other segment", &[], "x: 1\n")])
        .expect("upsert");
    index.commit().expect("commit");
    assert_eq!(on_disk(dir.path(), secret), (true, vec![]));
    let mut purged = entry(1, "purged", &[], "x: 1\n");
    purged.revision = 2;
    index.upsert(&[purged]).expect("upsert");
    index.commit().expect("commit");
    assert!(find(&index, secret).is_empty());
    assert!(
        on_disk(dir.path(), secret).0,
        "a deleted document's terms stay until its segment is merged"
    );
    index.expunge_deleted().expect("expunge");
    assert_eq!(
        on_disk(dir.path(), secret),
        (false, vec![]),
        "no segment holds the word, and no other segment file is left"
    );
    assert_eq!(index.docs(), 3);
    let mut all = find(&index, "purged OR kept OR other");
    all.sort_unstable();
    assert_eq!(all, vec![1, 2, 3]);
    // The writer works after.
    index.remove(&[crate::id(3)]).expect("remove");
    index.commit().expect("commit");
    assert_eq!(index.docs(), 2);
    index.expunge_deleted().expect("expunge twice");
    assert_eq!(on_disk(dir.path(), "other"), (false, vec![]));
}

#[test]
fn a_read_only_index_searches_beside_the_writer() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    assert_eq!(
        SearchIndex::open_read_only(dir.path())
            .expect_err("no index yet")
            .kind(),
        SearchErrorKind::Open
    );
    let writer = SearchIndex::open(dir.path()).expect("open").index;
    writer
        .upsert(&[entry(1, "lantern", &[], "x: 1\n")])
        .expect("upsert");
    writer.commit().expect("commit");
    let reader = SearchIndex::open_read_only(dir.path()).expect("open read-only");
    assert_eq!(find(&reader, "lantern"), vec![1]);
    let refused = reader
        .upsert(&[entry(2, "refused", &[], "x: 1\n")])
        .expect_err("read-only");
    assert_eq!(refused.kind(), SearchErrorKind::ReadOnly);
    assert_eq!(
        reader.commit().expect_err("read-only").kind(),
        SearchErrorKind::ReadOnly
    );
    assert_eq!(
        reader.clear().expect_err("read-only").kind(),
        SearchErrorKind::ReadOnly
    );

    writer
        .upsert(&[entry(2, "second lantern", &[], "x: 1\n")])
        .expect("upsert");
    writer.commit().expect("commit");
    assert_eq!(reader.docs(), 1, "not seen before a reload");
    reader.reload().expect("reload");
    assert_eq!(reader.docs(), 2);
}
