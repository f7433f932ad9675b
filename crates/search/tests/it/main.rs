//! The search index: what a search finds and in what order, how writes show, what opening a
//! directory does with what it finds there, and catching up with a registry's storage.

mod open;
mod search;
mod sync;

use registry_core::{Entry, EntryId, Lifecycle};
use registry_search::{SearchIndex, SearchQuery};
use registry_testkit::sample;

/// An entry `SEC-RUL-<number>` (or of the scope given) with these texts.
pub fn entry(number: u64, title: &str, pairs: &[(&str, &str)], config: &str) -> Entry {
    entry_in(
        ("SEC", "RULES", "LIVE", "REQUIRED"),
        number,
        title,
        pairs,
        config,
    )
}

/// [`entry`] with the header fields given (scope, type, variant, status).
pub fn entry_in(
    (scope, kind, variant, status): (&str, &str, &str, &str),
    number: u64,
    title: &str,
    pairs: &[(&str, &str)],
    config: &str,
) -> Entry {
    let draft = sample::draft(
        sample::fields(scope, kind, variant, status),
        number,
        title,
        sample::context(pairs),
    );
    sample::entry_of(draft, config.to_owned())
}

/// The id of `SEC-RUL-<number>`.
pub fn id(number: u64) -> EntryId {
    EntryId::new("SEC-RUL", number)
}

/// A fresh index in a temporary directory.
pub fn fresh() -> (tempfile::TempDir, SearchIndex) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let opened = SearchIndex::open(&dir.path().join("search")).expect("a new index opens");
    assert!(opened.rebuilt, "a new index starts empty and says so");
    (dir, opened.index)
}

/// An index holding these entries, committed.
pub fn holding(entries: &[Entry]) -> (tempfile::TempDir, SearchIndex) {
    let (dir, index) = fresh();
    index.upsert(entries).expect("upsert");
    index.commit().expect("commit");
    (dir, index)
}

/// The ids (as numbers) a text search finds, best first.
pub fn find(index: &SearchIndex, text: &str) -> Vec<u64> {
    numbers(
        index,
        &SearchQuery {
            text: text.to_owned(),
            limit: 100,
            ..SearchQuery::default()
        },
    )
}

/// The ids (as numbers) a query finds, in the order found.
pub fn numbers(index: &SearchIndex, query: &SearchQuery) -> Vec<u64> {
    index
        .search(query)
        .expect("search")
        .hits
        .iter()
        .map(|h| h.id.number())
        .collect()
}

/// An entry retired (or merged into `SEC-RUL-1`), at its next revision.
pub fn with_lifecycle(mut entry: Entry, lifecycle: Lifecycle) -> Entry {
    entry.lifecycle = lifecycle;
    entry.revision += 1;
    entry
}
