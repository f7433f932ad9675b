//! [`SearchIndex`]: the tantivy index on disk, its one writer and its reader, and
//! [`SearchError`].
//!
//! The directory holds tantivy's files and `search-version`, the schema version this crate
//! wrote it with. An index whose version file is missing or different, or that tantivy cannot
//! open, is emptied and created again ([`Opened::rebuilt`]): it is derived data, and the caller
//! refills it from storage. Emptying removes only the files an index has (tantivy's
//! `meta.json`, `.managed.json` and segment files, named by a 32-digit hexadecimal id, and the
//! version file), so a directory named by mistake loses nothing else. It happens under
//! tantivy's writer lock (whose file stays), so an index another process is writing is never
//! emptied under it.
//!
//! The writer's memory budget is 50 MB with one indexing thread: the budget bounds what the
//! writer holds before it writes a segment, so it is what indexing adds to the resident memory
//! of the server, while a budget much smaller writes many small segments that merges must then
//! rewrite (tantivy's minimum is 15 MB per thread). One thread, because on two cores a second
//! would take the core that answers searches during a rebuild (the crate doc has the
//! measurement).

use std::collections::HashMap;
use std::fmt;
use std::fs;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use registry_core::{Entry, EntryId, Field as HeaderField};
use tantivy::collector::Count;
use tantivy::directory::error::LockError;
use tantivy::directory::{Directory, INDEX_WRITER_LOCK, MmapDirectory};
use tantivy::query::{AllQuery, QueryParser};
use tantivy::schema::{
    FAST, Field, INDEXED, IndexRecordOption, STORED, STRING, Schema, TextFieldIndexing, TextOptions,
};
use tantivy::tokenizer::{
    Language, LowerCaser, RemoveLongFilter, SimpleTokenizer, StopWordFilter, TextAnalyzer,
};
use tantivy::{DocAddress, Index, IndexReader, IndexWriter, ReloadPolicy, TantivyDocument, Term};

/// The version of the index's schema and analysis. Raise it whenever a field, a tokenizer or
/// what a document holds changes: an index of another version is recreated on open.
pub const SCHEMA_VERSION: u32 = 1;

/// The file recording [`SCHEMA_VERSION`] in the index directory.
const VERSION_FILE: &str = "search-version";

/// The tokenizer of the text fields: words (runs of letters and digits), lowercased, English
/// stop words removed, tokens over 40 bytes dropped (no word is that long, and tantivy refuses
/// terms over 65,530 bytes).
const TOKENIZER: &str = "registry";

/// The writer's memory budget; see the module doc.
const WRITER_BUDGET: usize = 50_000_000;

/// The fields of the index's schema.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fields {
    pub id: Field,
    /// The id as text that sorts in id order: the prefix, a NUL, the number on 20 digits.
    pub order: Field,
    pub scope: Field,
    pub kind: Field,
    pub variant: Field,
    pub status: Field,
    pub lifecycle: Field,
    pub title: Field,
    pub context: Field,
    pub config: Field,
    pub revision: Field,
}

impl Fields {
    /// The field of an enumerated header field.
    pub fn header(&self, field: HeaderField) -> Field {
        match field {
            HeaderField::Scope => self.scope,
            HeaderField::Type => self.kind,
            HeaderField::Variant => self.variant,
            HeaderField::Status => self.status,
        }
    }
}

/// The schema, and its fields.
fn schema() -> (Schema, Fields) {
    let mut b = Schema::builder();
    let text = TextOptions::default().set_indexing_options(
        TextFieldIndexing::default()
            .set_tokenizer(TOKENIZER)
            .set_index_option(IndexRecordOption::WithFreqsAndPositions),
    );
    let order = TextOptions::default().set_fast(None);
    let fields = Fields {
        id: b.add_text_field("id", STRING | STORED | FAST),
        order: b.add_text_field("order", order),
        scope: b.add_text_field("scope", STRING | FAST),
        kind: b.add_text_field("type", STRING | FAST),
        variant: b.add_text_field("variant", STRING | FAST),
        status: b.add_text_field("status", STRING | FAST),
        lifecycle: b.add_text_field("lifecycle", STRING),
        title: b.add_text_field("title", text.clone()),
        context: b.add_text_field("context", text.clone()),
        config: b.add_text_field("config", text),
        revision: b.add_u64_field("revision", INDEXED | STORED | FAST),
    };
    (b.build(), fields)
}

/// The analyzer registered as [`TOKENIZER`].
fn analyzer() -> TextAnalyzer {
    let words = TextAnalyzer::builder(SimpleTokenizer::default())
        .filter(RemoveLongFilter::limit(40))
        .filter(LowerCaser);
    match StopWordFilter::new(Language::English) {
        Some(stop) => words.filter(stop).build(),
        None => words.build(),
    }
}

/// What [`SearchError`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SearchErrorKind {
    /// The directory or the index in it could not be opened or created.
    Open,
    /// Another writer (another process) holds the index.
    Locked,
    /// A document could not be written, or a commit or merge failed.
    Write,
    /// The index could not be searched or read.
    Read,
    /// Storage could not be read (by [`crate::catch_up`] or [`crate::rebuild`]).
    Storage,
    /// A write to an index opened with [`SearchIndex::open_read_only`].
    ReadOnly,
}

/// A failure of the search index: one line naming what failed and the index directory.
#[derive(Debug, Clone)]
pub struct SearchError {
    kind: SearchErrorKind,
    dir: PathBuf,
    what: String,
}

impl SearchError {
    /// An error about the index in `dir`; `what` is made one line.
    pub(crate) fn new(kind: SearchErrorKind, dir: &Path, what: impl fmt::Display) -> SearchError {
        let what = what.to_string();
        let what = what.split_whitespace().collect::<Vec<_>>().join(" ");
        SearchError {
            kind,
            dir: dir.to_owned(),
            what,
        }
    }

    /// What failed, for callers that act on it (a locked index, a storage failure).
    pub fn kind(&self) -> SearchErrorKind {
        self.kind
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl fmt::Display for SearchError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "search index in {}: {}", self.dir.display(), self.what)
    }
}

impl std::error::Error for SearchError {}

/// What [`SearchIndex::open`] gives.
#[derive(Debug)]
pub struct Opened {
    /// The index, ready.
    pub index: SearchIndex,
    /// True when the index was created empty (the directory was new, or held an index of
    /// another schema version or one tantivy could not open): the caller fills it
    /// ([`crate::rebuild`]). False when an existing index was opened as it was.
    pub rebuilt: bool,
}

/// The search index of a registry: shared by reader threads (`&self` everywhere) and written
/// by one thread at a time (the writer is behind a `Mutex`).
pub struct SearchIndex {
    pub(crate) dir: PathBuf,
    pub(crate) index: Index,
    pub(crate) fields: Fields,
    /// `None` in an index opened read-only, and while [`SearchIndex::expunge_deleted`]
    /// replaces it.
    writer: Mutex<Option<IndexWriter>>,
    read_only: bool,
    pub(crate) reader: IndexReader,
    pub(crate) parser: QueryParser,
}

impl fmt::Debug for SearchIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SearchIndex")
            .field("dir", &self.dir)
            .field("docs", &self.docs())
            .finish_non_exhaustive()
    }
}

/// Whether a file name is one an index directory holds: tantivy's or the version file.
fn is_index_file(name: &str) -> bool {
    let segment = name.len() > 33
        && name.as_bytes()[32] == b'.'
        && name.as_bytes()[..32].iter().all(u8::is_ascii_hexdigit);
    segment
        || matches!(
            name,
            "meta.json" | ".managed.json" | VERSION_FILE | "search-version.tmp"
        )
}

/// Removes the index files of `dir` (not the lock files, which the caller holds), the version
/// file first, so that an emptying cut short is redone at the next open.
fn empty_dir(dir: &Path) -> io::Result<()> {
    match fs::remove_file(dir.join(VERSION_FILE)) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    for item in fs::read_dir(dir)? {
        let item = item?;
        let name = item.file_name();
        if name.to_str().is_some_and(is_index_file) && item.file_type()?.is_file() {
            fs::remove_file(item.path())?;
        }
    }
    Ok(())
}

/// Whether the version file says [`SCHEMA_VERSION`].
fn version_matches(dir: &Path) -> bool {
    fs::read_to_string(dir.join(VERSION_FILE))
        .is_ok_and(|text| text.trim().parse::<u32>() == Ok(SCHEMA_VERSION))
}

/// Writes the version file durably.
fn write_version(dir: &Path) -> io::Result<()> {
    let path = dir.join(VERSION_FILE);
    let tmp = dir.join(format!("{VERSION_FILE}.tmp"));
    {
        let mut file = fs::File::create(&tmp)?;
        io::Write::write_all(&mut file, format!("{SCHEMA_VERSION}\n").as_bytes())?;
        file.sync_all()?;
    }
    fs::rename(&tmp, &path)?;
    fs::File::open(dir)?.sync_all()
}

impl SearchIndex {
    /// Opens the index in `dir`, creating the directory when it is missing. An index of
    /// another schema version, or one tantivy cannot open, is emptied and created again;
    /// [`Opened::rebuilt`] says the index starts empty, so the caller refills it.
    ///
    /// # Errors
    /// [`SearchErrorKind::Locked`] when another process writes the index;
    /// [`SearchErrorKind::Open`] when the directory cannot be created, read or emptied.
    pub fn open(dir: &Path) -> Result<Opened, SearchError> {
        let open_err = |what: String| SearchError::new(SearchErrorKind::Open, dir, what);
        fs::create_dir_all(dir).map_err(|e| open_err(format!("cannot create: {e}")))?;
        let directory =
            MmapDirectory::open(dir).map_err(|e| open_err(format!("cannot open: {e}")))?;
        let (schema, fields) = schema();

        let (half, rebuilt) = {
            // Held while the directory is judged and perhaps emptied: another process writing
            // the index makes this fail, and its index is left alone. Released before the
            // writer takes it.
            let _lock = directory
                .acquire_lock(&INDEX_WRITER_LOCK)
                .map_err(|e| match e {
                    LockError::LockBusy => SearchError::new(
                        SearchErrorKind::Locked,
                        dir,
                        "cannot open: another process is writing it",
                    ),
                    e => open_err(format!("cannot lock: {e}")),
                })?;
            let existing = (version_matches(dir) && Index::exists(&directory).unwrap_or(false))
                .then(|| Self::try_open(&directory, &schema, false).ok())
                .flatten();
            match existing {
                Some(half) => (half, false),
                None => {
                    empty_dir(dir).map_err(|e| open_err(format!("cannot empty: {e}")))?;
                    let half = Self::try_open(&directory, &schema, true)
                        .map_err(|e| open_err(format!("cannot create: {e}")))?;
                    write_version(dir)
                        .map_err(|e| open_err(format!("cannot write {VERSION_FILE}: {e}")))?;
                    (half, true)
                }
            }
        };
        Ok(Opened {
            index: Self::finish(half, dir, fields, false)?,
            rebuilt,
        })
    }

    /// Opens the index in `dir` for searching only, beside the process that writes it (a
    /// command-line search while the server runs): no lock is taken and nothing is ever
    /// emptied or created. Writes fail with [`SearchErrorKind::ReadOnly`]; [`SearchIndex::reload`]
    /// shows what the writer has committed since.
    ///
    /// # Errors
    /// [`SearchErrorKind::Open`] when there is no index of this schema version in `dir`, or
    /// tantivy cannot open it (opening it for writing recreates it).
    pub fn open_read_only(dir: &Path) -> Result<SearchIndex, SearchError> {
        let open_err = |what: String| SearchError::new(SearchErrorKind::Open, dir, what);
        if !version_matches(dir) {
            return Err(open_err(format!(
                "cannot open: no index of schema version {SCHEMA_VERSION} (no {VERSION_FILE} \
                 saying so); opening it for writing creates one"
            )));
        }
        let directory =
            MmapDirectory::open(dir).map_err(|e| open_err(format!("cannot open: {e}")))?;
        let (schema, fields) = schema();
        let half = Self::try_open(&directory, &schema, false)
            .map_err(|e| open_err(format!("cannot open: {e}")))?;
        Self::finish(half, dir, fields, true)
    }

    /// Opens (or, with `create`, creates) the index and its reader, checking that its schema
    /// is this crate's. A panic of tantivy on damaged files counts as a failure to open: the
    /// index is derived data and is recreated rather than taking the process down.
    fn try_open(directory: &MmapDirectory, schema: &Schema, create: bool) -> Result<Half, String> {
        let attempt = || -> Result<Half, String> {
            let index = if create {
                Index::create(directory.clone(), schema.clone(), Default::default())
            } else {
                Index::open(directory.clone())
            }
            .map_err(|e| e.to_string())?;
            if index.schema() != *schema {
                return Err("its schema is not this version's".to_owned());
            }
            index.tokenizers().register(TOKENIZER, analyzer());
            let reader = index
                .reader_builder()
                .reload_policy(ReloadPolicy::Manual)
                .try_into()
                .map_err(|e: tantivy::TantivyError| e.to_string())?;
            // Every segment's columns are read here, so a damaged one fails now, not at the
            // first search.
            let searcher = reader.searcher();
            for segment in searcher.segment_readers() {
                segment.fast_fields().str("id").map_err(|e| e.to_string())?;
                segment
                    .fast_fields()
                    .u64("revision")
                    .map_err(|e| e.to_string())?;
            }
            searcher
                .search(&AllQuery, &Count)
                .map_err(|e| e.to_string())?;
            Ok(Half { index, reader })
        };
        catch_unwind(AssertUnwindSafe(attempt))
            .unwrap_or_else(|_| Err("tantivy panicked reading it".to_owned()))
    }

    /// The writer (unless `read_only`), the query parser.
    fn finish(
        half: Half,
        dir: &Path,
        fields: Fields,
        read_only: bool,
    ) -> Result<SearchIndex, SearchError> {
        let writer = if read_only {
            None
        } else {
            Some(Self::writer(&half.index, dir)?)
        };
        let mut parser = QueryParser::for_index(
            &half.index,
            vec![fields.title, fields.context, fields.config],
        );
        parser.set_field_boost(fields.title, 2.0);
        parser.set_conjunction_by_default();
        Ok(SearchIndex {
            dir: dir.to_owned(),
            index: half.index,
            fields,
            writer: Mutex::new(writer),
            read_only,
            reader: half.reader,
            parser,
        })
    }

    /// A new writer on the index.
    fn writer(index: &Index, dir: &Path) -> Result<IndexWriter, SearchError> {
        index
            .writer_with_num_threads(1, WRITER_BUDGET)
            .map_err(|e| match e {
                tantivy::TantivyError::LockFailure(..) => {
                    SearchError::new(SearchErrorKind::Locked, dir, format!("cannot write: {e}"))
                }
                e => SearchError::new(SearchErrorKind::Open, dir, format!("cannot write: {e}")),
            })
    }

    fn err(&self, kind: SearchErrorKind, what: impl fmt::Display) -> SearchError {
        SearchError::new(kind, &self.dir, what)
    }

    /// The error of a write without a writer.
    fn closed(&self) -> SearchError {
        if self.read_only {
            self.err(SearchErrorKind::ReadOnly, "cannot write: opened read-only")
        } else {
            self.err(SearchErrorKind::Write, "writer unusable: it was closed")
        }
    }

    /// The writer, locked.
    fn lock(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>, SearchError> {
        self.writer.lock().map_err(|_| {
            self.err(
                SearchErrorKind::Write,
                "writer unusable: a thread panicked while writing",
            )
        })
    }

    /// The writer, locked, made again if an earlier failure dropped it.
    fn writer_guard(&self) -> Result<MutexGuard<'_, Option<IndexWriter>>, SearchError> {
        let mut guard = self.lock()?;
        if guard.is_none() {
            if self.read_only {
                return Err(self.closed());
            }
            *guard = Some(Self::writer(&self.index, &self.dir)?);
        }
        Ok(guard)
    }

    /// Runs `f` on the writer.
    fn with_writer<T>(
        &self,
        f: impl FnOnce(&mut IndexWriter) -> tantivy::Result<T>,
    ) -> Result<T, SearchError> {
        let mut guard = self.writer_guard()?;
        let writer = guard.as_mut().ok_or_else(|| self.closed())?;
        f(writer).map_err(|e| self.err(SearchErrorKind::Write, format!("cannot write: {e}")))
    }

    /// The document of an entry.
    fn document(&self, entry: &Entry) -> TantivyDocument {
        let f = &self.fields;
        let mut doc = TantivyDocument::new();
        let id = entry.header.id.to_string();
        doc.add_text(f.id, &id);
        doc.add_text(f.order, order_key(&entry.header.id));
        for (field, value) in entry.header.fields.iter() {
            doc.add_text(f.header(field), value.to_lowercase());
        }
        doc.add_text(f.lifecycle, entry.lifecycle.name());
        doc.add_text(f.title, &entry.title);
        for (key, value) in entry.context.iter() {
            doc.add_text(f.context, format!("{key} {value}"));
        }
        doc.add_text(f.config, &entry.config);
        doc.add_u64(f.revision, u64::from(entry.revision));
        doc
    }

    /// Replaces each entry's document by one of the revision given (a later entry of the slice
    /// wins over an earlier one with the same id). Not visible until [`SearchIndex::commit`].
    ///
    /// # Errors
    /// When the writer fails.
    pub fn upsert(&self, entries: &[Entry]) -> Result<(), SearchError> {
        let docs: Vec<(Term, TantivyDocument)> = entries
            .iter()
            .map(|e| (self.id_term(&e.header.id.to_string()), self.document(e)))
            .collect();
        self.with_writer(|w| {
            for (term, doc) in docs {
                w.delete_term(term);
                w.add_document(doc)?;
            }
            Ok(())
        })
    }

    fn id_term(&self, id: &str) -> Term {
        Term::from_field_text(self.fields.id, id)
    }

    /// Deletes the documents of these ids (an id without one is no error). Not visible until
    /// [`SearchIndex::commit`].
    ///
    /// # Errors
    /// When the writer fails.
    pub fn remove(&self, ids: &[EntryId]) -> Result<(), SearchError> {
        let ids: Vec<String> = ids.iter().map(ToString::to_string).collect();
        self.remove_texts(&ids)
    }

    /// [`SearchIndex::remove`] by id text, as [`SearchIndex::revisions`] gives it.
    pub(crate) fn remove_texts(&self, ids: &[String]) -> Result<(), SearchError> {
        let terms: Vec<Term> = ids.iter().map(|id| self.id_term(id)).collect();
        self.with_writer(|w| {
            for term in terms {
                w.delete_term(term);
            }
            Ok(())
        })
    }

    /// Deletes every document, those added before it and not yet committed too. Not visible
    /// until [`SearchIndex::commit`], so searches see the old documents until then.
    ///
    /// # Errors
    /// When the writer fails.
    pub fn clear(&self) -> Result<(), SearchError> {
        self.with_writer(|w| w.delete_query(Box::new(AllQuery)).map(|_| ()))
    }

    /// Makes the changes since the last commit durable, then visible to searches: the reader
    /// is reloaded before this returns.
    ///
    /// # Errors
    /// When the commit or the reload fails. A failed commit drops the writer, and the changes
    /// since the last commit with it (tantivy's writer is not to be trusted after one); the
    /// next write makes a new writer, and [`crate::catch_up`] redoes what was lost.
    pub fn commit(&self) -> Result<(), SearchError> {
        {
            let mut guard = self.writer_guard()?;
            let committed = guard.as_mut().map(IndexWriter::commit);
            if let Some(Err(e)) = committed {
                *guard = None;
                return Err(self.err(SearchErrorKind::Write, format!("cannot commit: {e}")));
            }
        }
        self.reload()
    }

    /// Moves searches to the last commit: what [`SearchIndex::commit`] does after committing,
    /// and what an index opened read-only calls to see another process's commits.
    ///
    /// # Errors
    /// When the new segments cannot be opened.
    pub fn reload(&self) -> Result<(), SearchError> {
        self.reader
            .reload()
            .map_err(|e| self.err(SearchErrorKind::Read, format!("cannot reload: {e}")))
    }

    /// Commits, then merges every segment holding deleted documents into a new one without
    /// them and removes the files no longer used: afterwards the text of a deleted document
    /// (an entry purged, or an old revision) is no longer on disk in the index. tantivy only
    /// marks a document deleted; its terms stay in its segment's files until the segment is
    /// merged. A search holding an older [`tantivy::Searcher`] keeps those files open until it
    /// ends (unlinked, on Unix).
    ///
    /// Costs a rewrite of the segments concerned; meant for after a purge, not every commit.
    ///
    /// # Errors
    /// When the commit, the merge or the removal fails.
    pub fn expunge_deleted(&self) -> Result<(), SearchError> {
        let mut guard = self.writer_guard()?;
        let write_err = |e: tantivy::TantivyError| {
            self.err(SearchErrorKind::Write, format!("cannot expunge: {e}"))
        };
        let Some(mut writer) = guard.take() else {
            return Err(self.closed());
        };
        // From here the writer is taken: a failure leaves none, and the next write makes one.
        writer.commit().map_err(write_err)?;
        // Merges started by the merge policy must end first: a segment being merged cannot
        // be merged again.
        writer.wait_merging_threads().map_err(write_err)?;
        let mut writer = Self::writer(&self.index, &self.dir)?;
        let metas = self.index.searchable_segment_metas().map_err(write_err);
        let result = metas.and_then(|metas| {
            let ids: Vec<_> = metas
                .iter()
                .filter(|m| m.has_deletes())
                .map(|m| m.id())
                .collect();
            if !ids.is_empty() {
                writer.merge(&ids).wait().map_err(write_err)?;
            }
            Ok(())
        });
        // The old segments are no longer read once the reader moves to the merged one.
        let result = result.and_then(|()| self.reload()).and_then(|()| {
            writer
                .garbage_collect_files()
                .wait()
                .map(|_| ())
                .map_err(write_err)
        });
        *guard = Some(writer);
        result
    }

    /// Every id the index holds (as text) with its revision, for [`crate::catch_up`].
    ///
    /// # Errors
    /// When a segment's columns cannot be read.
    pub fn revisions(&self) -> Result<HashMap<String, u32>, SearchError> {
        let searcher = self.reader.searcher();
        let read_err = |e: &dyn fmt::Display| self.err(SearchErrorKind::Read, format!("{e}"));
        let mut out = HashMap::with_capacity(usize::try_from(searcher.num_docs()).unwrap_or(0));
        let mut id = String::new();
        for segment in searcher.segment_readers() {
            let columns = Columns::of(segment).map_err(|e| read_err(&e))?;
            for doc in segment.doc_ids_alive() {
                let revision = columns.read(doc, &mut id).map_err(|e| read_err(&e))?;
                out.insert(id.clone(), revision);
            }
        }
        Ok(out)
    }

    /// Whether any segment's term dictionary holds `word` (lower case, as indexed) in a title,
    /// context or config, deleted documents' terms included: how to check that a purged word
    /// has left the index's files, not only its answers.
    ///
    /// # Errors
    /// When a segment's term dictionary cannot be read.
    pub fn holds_word(&self, word: &str) -> Result<bool, SearchError> {
        let searcher = self.reader.searcher();
        let read_err = |e: &dyn fmt::Display| self.err(SearchErrorKind::Read, format!("{e}"));
        for segment in searcher.segment_readers() {
            for field in [self.fields.title, self.fields.context, self.fields.config] {
                let inverted = segment.inverted_index(field).map_err(|e| read_err(&e))?;
                if inverted
                    .terms()
                    .term_ord(word)
                    .map_err(|e| read_err(&e))?
                    .is_some()
                {
                    return Ok(true);
                }
            }
        }
        Ok(false)
    }

    /// The committed documents the index holds.
    pub fn docs(&self) -> u64 {
        self.reader.searcher().num_docs()
    }

    /// The index directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The id and revision of the documents at these addresses.
    pub(crate) fn read_hits(
        &self,
        searcher: &tantivy::Searcher,
        addresses: &[DocAddress],
    ) -> Result<Vec<(EntryId, u32)>, SearchError> {
        let read_err = |e: &dyn fmt::Display| self.err(SearchErrorKind::Read, format!("{e}"));
        let mut columns: Vec<Option<Columns>> = Vec::new();
        columns.resize_with(searcher.segment_readers().len(), || None);
        let mut out = Vec::with_capacity(addresses.len());
        let mut text = String::new();
        for address in addresses {
            let slot = usize::try_from(address.segment_ord)
                .ok()
                .and_then(|i| columns.get_mut(i))
                .ok_or_else(|| read_err(&"a hit names no segment"))?;
            if slot.is_none() {
                let segment = searcher.segment_reader(address.segment_ord);
                *slot = Some(Columns::of(segment).map_err(|e| read_err(&e))?);
            }
            let Some(c) = slot.as_ref() else {
                continue;
            };
            let revision = c
                .read(address.doc_id, &mut text)
                .map_err(|e| read_err(&e))?;
            let id: EntryId = text
                .parse()
                .map_err(|e| read_err(&format!("a document holds {e}")))?;
            out.push((id, revision));
        }
        Ok(out)
    }
}

/// An index and its reader, opened; the writer comes after.
struct Half {
    index: Index,
    reader: IndexReader,
}

/// The id and revision columns of one segment.
struct Columns {
    id: tantivy::columnar::StrColumn,
    revision: tantivy::columnar::Column<u64>,
}

impl Columns {
    fn of(segment: &tantivy::SegmentReader) -> Result<Columns, String> {
        let fast = segment.fast_fields();
        let id = fast
            .str("id")
            .map_err(|e| e.to_string())?
            .ok_or("the id column is missing")?;
        let revision = fast.u64("revision").map_err(|e| e.to_string())?;
        Ok(Columns { id, revision })
    }

    /// Puts the id of a document in `id` and returns its revision.
    fn read(&self, doc: tantivy::DocId, id: &mut String) -> Result<u32, String> {
        id.clear();
        let ord = self
            .id
            .term_ords(doc)
            .next()
            .ok_or_else(|| format!("document {doc} has no id"))?;
        self.id.ord_to_str(ord, id).map_err(|e| e.to_string())?;
        let revision = self
            .revision
            .first(doc)
            .ok_or_else(|| format!("document {id} has no revision"))?;
        u32::try_from(revision).map_err(|_| format!("document {id} has revision {revision}"))
    }
}

/// Text that sorts as ids do ([`EntryId`]'s order: prefix, then number): the prefix, a NUL
/// (below every character a prefix has, so a shorter prefix sorts first), then the number on
/// 20 digits.
fn order_key(id: &EntryId) -> String {
    format!("{}\u{0}{:020}", id.prefix(), id.number())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn order_keys_sort_as_ids() {
        let ids: Vec<EntryId> = [
            "SEC-RUL-999",
            "SEC-RUL-1000",
            "SE-RUL-5",
            "SEC-RU-7",
            "A-B-1",
        ]
        .iter()
        .map(|s| s.parse().expect("valid id"))
        .collect();
        let mut by_id = ids.clone();
        by_id.sort();
        let mut by_key = ids;
        by_key.sort_by_key(order_key);
        assert_eq!(by_id, by_key);
    }

    #[test]
    fn index_files_are_recognised() {
        assert!(is_index_file("0123456789abcdef0123456789abcdef.idx"));
        assert!(is_index_file("0123456789abcdef0123456789abcdef.12.del"));
        assert!(is_index_file("meta.json"));
        assert!(is_index_file(VERSION_FILE));
        assert!(!is_index_file("notes.txt"));
        assert!(!is_index_file("0123456789abcdef0123456789abcdeg.idx"));
        assert!(!is_index_file(".tantivy-writer.lock"));
    }

    #[test]
    fn the_index_is_shared_between_threads() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<SearchIndex>();
    }

    #[test]
    fn errors_are_one_line() {
        let e = SearchError::new(
            SearchErrorKind::Open,
            Path::new("/tmp/x"),
            "cannot open:\n  two\tlines",
        );
        assert_eq!(
            e.to_string(),
            "search index in /tmp/x: cannot open: two lines"
        );
    }
}
