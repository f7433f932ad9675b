//! The full-text search index of the registry's entries, on tantivy.
//!
//! One document per entry, its latest revision: the title, the context (each pair as the text
//! `key value`) and the YAML config are tokenized and ranked by BM25; the header fields and the
//! lifecycle are exact terms, used as filters. The index is derived data. Storage stays the
//! truth: a document holds only the entry's id and revision (as fast fields), and whoever shows
//! a hit reads the entry from storage and checks the revision. So the index can be thrown away
//! at any time: [`SearchIndex::open`] recreates one it cannot use (another schema version,
//! files tantivy cannot read) and says so, [`catch_up`] brings an index back in line with
//! storage by comparing revisions, and [`rebuild`] refills it from nothing.
//!
//! - `index.rs`: [`SearchIndex`] (open, open read-only, write, commit, expunge) and
//!   [`SearchError`];
//! - `query.rs`: [`SearchQuery`], [`Found`], [`Hit`], and the taming of query text;
//! - `sync.rs`: [`catch_up`] and [`rebuild`], which page through storage.
//!
//! Design decision: tantivy, in the process, on its own directory beside the shards. One
//! `IndexWriter` behind a `Mutex` (tantivy allows one writer per index) and one `IndexReader`
//! reloaded by hand after each commit, so a search sees exactly what was committed. Rejected:
//! indexing inside the storage plugins (each storage would need a full-text engine of its
//! own, and every plugin would have to rank alike); storing whole entries in the index (a
//! second copy of every config to keep consistent, which a purge would have to reach too: a
//! document holds only what finds an entry, and its text leaves the disk when
//! [`SearchIndex::expunge_deleted`] merges its segment away); SQLite FTS5 (a C library and a
//! second storage engine beside the shards, for one feature).
//!
//! Measured (release build, this 2-core machine, `cargo run --release -p registry-search
//! --example measure -- 100000`; synthetic entries of 544 bytes of text: 60-character titles,
//! three context pairs, 400-byte YAML configs, words drawn with a Zipf-like skew from a
//! vocabulary of 3,000; one indexing thread, 50 MB writer budget):
//!
//! | entries | indexing | index on disk | two-word query, limit 20, exact total: p50 / p99 |
//! |---|---|---|---|
//! | 100,000 | 53,000-56,000 docs/s (1.8-1.9 s, commit included) | 16.5 MB | 0.59 ms / 5.1-5.3 ms |
//! | 1,000,000 | 40,800 docs/s (24.5 s) | 158 MB | 4.6 ms / 53 ms |
//!
//! Queries average 9,400 matches at 100,000 entries and 100,000 at a million, since skewed
//! words are common: the exact count walks every match, and is most of the time. With other
//! builds loading the machine, 100,000 entries indexed at 24,000-45,000 docs/s and p99 rose to
//! 9-15 ms. Two indexing threads (100 MB) indexed 100,000 at 79,000-84,000 docs/s; one was
//! kept, since only a rebuild indexes in bulk (18 s for a million entries instead of 12) and a
//! second thread would take the core that answers searches while it runs.

mod index;
mod query;
mod sync;

pub use index::{Opened, SCHEMA_VERSION, SearchError, SearchErrorKind, SearchIndex};
pub use query::{Found, Hit, MAX_NESTING, MAX_QUERY_BYTES, SearchQuery};
pub use sync::{COMMIT_EVERY, CaughtUp, PAGE, catch_up, rebuild};
