//! The five stage traits and the values they exchange.
//!
//! Every method takes a batch (a slice) and fills a caller-owned output, so the cost of a call
//! across a plugin boundary is paid once per batch, not once per item. Implementations must be
//! `Send + Sync`: the host calls them from several threads at once.

use std::cell::RefCell;
use std::path::PathBuf;
use std::thread::LocalKey;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::entry::{Entry, Fingerprint};
use crate::entry_ref::EntryRef;
use crate::error::{ErrorCode, Problem, StageError, StageResult};
use crate::header::{EntryId, Field, Fields, Header, RawHeader};
use crate::request::{Context, ContextRef, Request, RequestRef, copy_into};
use crate::schema::Schema;

/// What the host tells every stage at construction, besides the stage's own config table.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Setup {
    /// The schema declared in `registry.toml`.
    pub schema: Schema,
    /// The registry's data directory (absolute). A stage that keeps files keeps them here.
    pub data_dir: PathBuf,
    /// The directory of the configuration file (absolute; the working directory when there is
    /// none): relative paths in a stage's config table are relative to it.
    pub config_dir: PathBuf,
    /// For storage: which shard this instance is, in `0..shards`.
    pub shard: u32,
    /// For storage: how many shards the registry has. 0 only when the host opens shard 0 to
    /// learn the count it recorded (see [`crate::layout`]): the shard then uses its recorded
    /// count, and reports it in [`Storage::meta`] under [`crate::layout::SHARDS`].
    pub shards: u32,
    /// For storage: `Some` when the constructor may create the shard's store if it does not
    /// exist, writing these metadata (see [`Storage::meta`]) in the same transaction as the
    /// store itself, so that a store never exists without them; `None` when it must not create
    /// anything, and a store that does not exist is an error with code `NotFound`. The host
    /// creates stores only when it creates a registry (see [`crate::layout`]).
    #[serde(default)]
    pub create: Option<Meta>,
}

/// Registry metadata a storage shard keeps: small named values (see [`crate::layout`] for the
/// names the host uses). Values are text; structured ones are JSON.
pub type Meta = std::collections::BTreeMap<String, String>;

impl Setup {
    /// Checks that `shard` is one of `shards` (at least one), or that this is shard 0 opened to
    /// learn the recorded count (`shards` 0, creating nothing): what a storage shard checks
    /// before it opens anything.
    ///
    /// # Errors
    /// A [`StageError`] with code `Config` naming the impossible numbers.
    pub fn check_shard(&self) -> StageResult<()> {
        if self.shards == 0 && self.shard == 0 && self.create.is_none() {
            return Ok(());
        }
        if self.shards == 0 {
            return Err(StageError::new(
                ErrorCode::Config,
                "shards is 0: a registry needs at least one shard",
            ));
        }
        if self.shard >= self.shards {
            return Err(StageError::new(
                ErrorCode::Config,
                format!(
                    "shard {} is out of range: the registry has {} shards, numbered from 0",
                    self.shard, self.shards
                ),
            ));
        }
        Ok(())
    }
}

/// Building a stage from its `[<stage>.config]` table in `registry.toml`.
///
/// `Config` should be `#[serde(default, deny_unknown_fields)]`: an empty table means the defaults,
/// and a misspelt key is an error that names it.
pub trait FromConfig: Sized {
    type Config: DeserializeOwned;

    /// # Errors
    /// A [`StageError`](crate::StageError) with code `Config` when the configuration cannot work
    /// (e.g. a data directory that cannot be written).
    fn from_config(config: Self::Config, setup: &Setup) -> StageResult<Self>;
}

/// A cache key: 128 bits naming either an id or a fingerprint. Keys of the two kinds never
/// collide (the top bit tells them apart); two ids may in theory share a key, so a caller checks
/// that a hit is the entry it asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CacheKey(pub u128);

impl CacheKey {
    const FINGERPRINT_BIT: u128 = 1 << 127;

    pub fn of_fingerprint(fp: &Fingerprint) -> CacheKey {
        CacheKey(u128::from_le_bytes(fp.0) | Self::FINGERPRINT_BIT)
    }

    pub fn of_id(id: &EntryId) -> CacheKey {
        let mut h = blake3::Hasher::new();
        h.update(id.prefix().as_bytes());
        h.update(&id.number().to_le_bytes());
        let mut b = [0u8; 16];
        b.copy_from_slice(&h.finalize().as_bytes()[..16]);
        CacheKey(u128::from_le_bytes(b) & !Self::FINGERPRINT_BIT)
    }

    /// The keys under which an entry is cached: its id and its fingerprint.
    pub fn of_entry(entry: &Entry) -> [CacheKey; 2] {
        [
            CacheKey::of_id(&entry.header.id),
            CacheKey::of_fingerprint(&entry.fingerprint),
        ]
    }
}

/// Counters a cache keeps about itself.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CacheStats {
    pub hits: u64,
    pub misses: u64,
    pub entries: u64,
}

/// An in-memory cache of entries by id and by fingerprint.
pub trait Cache: Send + Sync {
    /// Looks up each key: pushes exactly `keys.len()` values onto `out`, `None` for a miss.
    ///
    /// # Errors
    /// Only for a broken cache; a miss is not an error.
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()>;

    /// Caches each entry under both of [`CacheKey::of_entry`], replacing older revisions.
    ///
    /// # Errors
    /// Only for a broken cache.
    fn put(&self, entries: &[Entry]) -> StageResult<()>;

    /// [`Cache::put`] of entries the caller is done with: a cache that keeps its own copies
    /// can keep these instead of copying them (the pipeline caches copies it made for the
    /// cache, and a plugin the entries it has just read from the host's views).
    ///
    /// The default calls `put`.
    ///
    /// # Errors
    /// As [`Cache::put`].
    fn put_owned(&self, entries: Vec<Entry>) -> StageResult<()> {
        self.put(&entries)
    }

    /// Forgets the given keys.
    ///
    /// # Errors
    /// Only for a broken cache.
    fn remove(&self, keys: &[CacheKey]) -> StageResult<()>;

    /// Hit and miss counts since construction, and the number of cached keys.
    fn stats(&self) -> CacheStats {
        CacheStats::default()
    }

    /// [`Cache::get`], the hits shared rather than copied: a cache that keeps entries behind an
    /// `Arc` hands out clones of it. The plugin boundary lends these to the host, which copies
    /// each hit once, as a built-in cache's `get` does. By default, `get` with each hit wrapped.
    ///
    /// # Errors
    /// As [`Cache::get`].
    fn get_shared(
        &self,
        keys: &[CacheKey],
        out: &mut Vec<Option<std::sync::Arc<Entry>>>,
    ) -> StageResult<()> {
        let mut found = Vec::with_capacity(keys.len());
        self.get(keys, &mut found)?;
        out.extend(found.into_iter().map(|e| e.map(std::sync::Arc::new)));
        Ok(())
    }

    /// [`Cache::put`] of entries the caller shares: a cache that keeps entries behind an `Arc`
    /// keeps these, without a copy (the pipeline caches the entries it hands out in
    /// [`crate::Added`]). By default, [`Cache::put_owned`] of a copy of each.
    ///
    /// # Errors
    /// As [`Cache::put`].
    fn put_shared(&self, entries: &[std::sync::Arc<Entry>]) -> StageResult<()> {
        self.put_owned(entries.iter().map(|e| Entry::clone(e)).collect())
    }
}

/// Where a header field's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The request named it.
    Given,
    /// A trained model predicted it.
    Model,
    /// A keyword rule matched the title or context.
    Keyword,
    /// The schema's default for the field.
    Default,
    /// Not given, and registered before the origin of values was recorded: a model, a keyword
    /// rule or the default chose it (see [`crate::Provenance::recover`]).
    Unrecorded,
}

/// A value a generator proposes for a field the request left empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Guess {
    pub value: String,
    /// How sure a trained model is, in `[0, 1]`; `None` for values that are not a model's estimate
    /// (given, keyword rules, defaults).
    pub confidence: Option<f32>,
    pub source: Source,
}

/// A generator's proposals for one request: `Some` for each field it can fill.
pub type Prediction = Fields<Option<Guess>>;

/// A [`Guess`] whose value is borrowed from the generator that made it (a model's class, a
/// keyword rule's value), for [`Generator::predict_each`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct GuessRef<'a> {
    pub value: &'a str,
    pub confidence: Option<f32>,
    pub source: Source,
}

impl GuessRef<'_> {
    /// The owned guess: the value copied.
    pub fn to_guess(&self) -> Guess {
        Guess {
            value: self.value.to_owned(),
            confidence: self.confidence,
            source: self.source,
        }
    }
}

impl<'a> From<&'a Guess> for GuessRef<'a> {
    fn from(g: &'a Guess) -> Self {
        GuessRef {
            value: &g.value,
            confidence: g.confidence,
            source: g.source,
        }
    }
}

/// A [`Prediction`] whose values are borrowed, for [`Generator::predict_each`].
pub type PredictionRef<'a> = Fields<Option<GuessRef<'a>>>;

/// What a config is rendered from: a complete header, the title and the context.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    pub header: Header,
    pub title: String,
    pub context: Context,
}

impl Draft {
    /// This draft, borrowed.
    #[must_use]
    pub fn view(&self) -> DraftRef<'_> {
        let h = &self.header;
        DraftRef {
            fields: Fields::from_fn(|f| h.fields[f].as_str()),
            id_prefix: h.id.prefix(),
            id_number: h.id.number(),
            version: &h.version,
            title: &self.title,
            context: ContextRef::Owned(&self.context),
        }
    }

    /// A copy of `view`; not checked, so not public (see [`DraftRef`]).
    fn from_view(view: &DraftRef<'_>) -> Draft {
        let mut context = Context::default();
        context.refill_from(view.context.iter());
        Draft {
            header: Header {
                fields: view.fields.map(|_, v| v.to_owned()),
                id: EntryId::new(view.id_prefix.to_owned(), view.id_number),
                version: view.version.to_owned(),
            },
            title: view.title.to_owned(),
            context,
        }
    }

    /// Makes this draft a copy of `view`, reusing the strings it holds (see [`copy_into`]).
    fn refill_from(&mut self, view: &DraftRef<'_>) {
        for (field, value) in view.fields.iter() {
            copy_into(&mut self.header.fields[field], value);
        }
        self.header.id.refill(view.id_prefix, view.id_number);
        copy_into(&mut self.header.version, view.version);
        copy_into(&mut self.title, view.title);
        self.context.refill_from(view.context.iter());
    }
}

/// A [`Draft`] borrowed from wherever it lives: a caller's own ([`Draft::view`]), or the view of
/// one that a plugin library is lent across the boundary ([`Generator::render_lent`]), read in
/// place. The header is flattened: its fields, the id's prefix and number, and the version.
///
/// A view is made from a draft the host built from checked parts; nothing checks it again (see
/// [`RequestRef`]).
#[derive(Debug, Clone, Copy)]
pub struct DraftRef<'a> {
    pub fields: Fields<&'a str>,
    /// The id's prefix, as [`EntryId::prefix`].
    pub id_prefix: &'a str,
    /// The id's number, as [`EntryId::number`].
    pub id_number: u64,
    pub version: &'a str,
    pub title: &'a str,
    pub context: ContextRef<'a>,
}

/// How `train` measures the model it builds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Evaluation {
    /// Train on a random `1 - fraction` of the examples, measure on the rest, then train the
    /// kept model on everything.
    Holdout(f64),
    /// Stratified K-fold cross-validation, then train the kept model on everything.
    Folds(u32),
}

/// Options for [`Generator::train`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainOptions {
    pub evaluation: Evaluation,
    /// Seeds every random choice (splits, sampling), so a run can be repeated exactly.
    pub seed: u64,
}

impl Default for TrainOptions {
    fn default() -> Self {
        TrainOptions {
            evaluation: Evaluation::Holdout(0.2),
            seed: 42,
        }
    }
}

/// What training one field gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FieldReport {
    /// The field's name (`scope`, `type`, …).
    pub field: String,
    /// Examples with a value for the field.
    pub examples: usize,
    /// Distinct values among them.
    pub classes: usize,
    /// False when the field was not modelled (fewer than two classes); `note` says why.
    pub modelled: bool,
    /// Accuracy measured as the options asked, if the field was modelled.
    pub accuracy: Option<f64>,
    /// Accuracy of always predicting the most frequent value, on the same examples.
    pub baseline: f64,
    /// Time to evaluate and train this field, in milliseconds.
    pub train_ms: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// What [`Generator::train`] reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainReport {
    /// The learner, e.g. `logistic-regression`.
    pub model: String,
    /// Examples trained on (after any sampling).
    pub examples: usize,
    /// How the model was evaluated, e.g. `5-fold cross-validation`.
    pub evaluation: String,
    pub fields: Vec<FieldReport>,
    /// Where the model was saved.
    pub saved_to: String,
    /// Total time, in milliseconds.
    pub elapsed_ms: f64,
}

/// Fills missing header fields and renders configs.
///
/// Each request's prediction and each draft's config depend on that item alone, never on the
/// rest of its batch: the pipeline may hand a batch over in parts (a batch alone is rendered on
/// two cores in halves; a plugin library is lent 128 views at a time).
pub trait Generator: Send + Sync {
    /// Proposes values for the fields each request leaves empty: pushes one [`Prediction`] per
    /// request. Leaving a field `None` lets the schema default apply.
    ///
    /// # Errors
    /// When the generator cannot work at all (e.g. a damaged model); the whole batch fails.
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()>;

    /// Renders the YAML config of each draft: pushes one string per draft. The same draft must
    /// always give the same bytes.
    ///
    /// # Errors
    /// When a config cannot be rendered; the whole batch fails.
    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()>;

    /// [`Generator::predict`], each request's prediction handed to `each` in request order, its
    /// values borrowed for that call only: for callers that copy the values anyway (the plugin
    /// boundary copies them into the host's strings), so that the generator need not make
    /// strings of its own. Must propose what `predict` proposes.
    ///
    /// The default predicts with `predict` and hands out its results; a generator whose values
    /// live in its model or rules can lend those instead.
    ///
    /// # Errors
    /// As [`Generator::predict`]; `each` may have been called for the requests before.
    fn predict_each(
        &self,
        requests: &[Request],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        let mut predictions = Vec::with_capacity(requests.len());
        self.predict(requests, &mut predictions)?;
        for p in &predictions {
            each(&Fields::from_fn(|f| p[f].as_ref().map(GuessRef::from)));
        }
        Ok(())
    }

    /// [`Generator::predict_each`] for requests lent as views: what a plugin library is called
    /// with across the boundary, so that a generator that reads requests in place copies
    /// nothing of them. Must propose what `predict` proposes.
    ///
    /// The default copies the views into owned requests and calls `predict_each`. Each thread
    /// keeps its copies of the last batch (up to 4,096 requests, unless they hold over 4 MiB of
    /// text) and refills their strings for the next one.
    ///
    /// # Errors
    /// As [`Generator::predict_each`].
    fn predict_lent(
        &self,
        requests: &[RequestRef<'_>],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        with_copies(&REQUESTS, requests, |owned| self.predict_each(owned, each))
    }

    /// [`Generator::render`], each draft's config handed to `each` in draft order, borrowed for
    /// that call only: for callers that copy the configs anyway (the plugin boundary), so that
    /// the generator can render every config into one buffer. Must give the bytes `render`
    /// gives.
    ///
    /// The default renders with `render` and hands out its results.
    ///
    /// # Errors
    /// As [`Generator::render`]; `each` may have been called for the drafts before.
    fn render_each(&self, drafts: &[Draft], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        let mut configs = Vec::with_capacity(drafts.len());
        self.render(drafts, &mut configs)?;
        configs.iter().for_each(|c| each(c));
        Ok(())
    }

    /// [`Generator::render_each`] for drafts lent as views: what a plugin library is called with
    /// across the boundary, so that a generator that reads drafts in place copies nothing of
    /// them. Must give the bytes `render` gives.
    ///
    /// The default copies the views into owned drafts, kept per thread as
    /// [`Generator::predict_lent`]'s default keeps requests, and calls `render_each`.
    ///
    /// # Errors
    /// As [`Generator::render_each`].
    fn render_lent(&self, drafts: &[DraftRef<'_>], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        with_copies(&DRAFTS, drafts, |owned| self.render_each(owned, each))
    }

    /// Learns to predict the enumerated fields from `examples` (requests with their fields
    /// filled in), reports how well it does, saves the model in the data directory and uses it
    /// for every later `predict`.
    ///
    /// # Errors
    /// Code `Invalid` when the generator cannot learn (the default) or the examples cannot train
    /// anything; code `Storage` when the model cannot be saved.
    fn train(&self, examples: &[Request], options: &TrainOptions) -> StageResult<TrainReport> {
        let _ = (examples, options);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this generator cannot be trained",
        ))
    }
}

/// Most requests, or drafts, a thread keeps copies of for the defaults of
/// [`Generator::predict_lent`], [`Generator::render_lent`] and
/// [`Validator::check_requests_lent`].
const KEPT_COPIES: usize = 4096;

/// Most bytes of text a thread's kept copies of one kind may hold after a batch; a batch over it
/// drops them.
const KEPT_BYTES: usize = 4 << 20;

thread_local! {
    /// This thread's copies of the last batch of requests lent ([`with_copies`]).
    static REQUESTS: RefCell<Vec<Request>> = const { RefCell::new(Vec::new()) };
    /// This thread's copies of the last batch of drafts lent.
    static DRAFTS: RefCell<Vec<Draft>> = const { RefCell::new(Vec::new()) };
    /// This thread's copies of the last batch of built entries lent.
    static BUILT: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// An owned value copied from a view of one, anew or into the strings of an earlier copy.
trait CopyOf<V> {
    fn make(view: &V) -> Self;
    fn refill(&mut self, view: &V);
    /// The bytes of text of `view`, near enough to bound what copies of it keep.
    fn text(view: &V) -> usize;
}

impl CopyOf<RequestRef<'_>> for Request {
    fn make(view: &RequestRef<'_>) -> Self {
        Request::from_view(view)
    }
    fn refill(&mut self, view: &RequestRef<'_>) {
        self.refill_from(view);
    }
    fn text(view: &RequestRef<'_>) -> usize {
        view.title.len() + context_text(view.context)
    }
}

impl CopyOf<DraftRef<'_>> for Draft {
    fn make(view: &DraftRef<'_>) -> Self {
        Draft::from_view(view)
    }
    fn refill(&mut self, view: &DraftRef<'_>) {
        self.refill_from(view);
    }
    fn text(view: &DraftRef<'_>) -> usize {
        view.title.len()
            + view.fields.iter().map(|(_, v)| v.len()).sum::<usize>()
            + view.id_prefix.len()
            + view.version.len()
            + context_text(view.context)
    }
}

impl CopyOf<EntryRef<'_>> for Entry {
    fn make(view: &EntryRef<'_>) -> Self {
        let mut entry = Entry::blank();
        view.copy_to(&mut entry);
        entry
    }
    fn refill(&mut self, view: &EntryRef<'_>) {
        view.copy_to(self);
    }
    fn text(view: &EntryRef<'_>) -> usize {
        view.title.len() + view.config.len() + context_text(view.context)
    }
}

fn context_text(context: ContextRef<'_>) -> usize {
    context.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// Calls `f` with owned copies of `views`, in the strings this thread kept (in `kept`) from its
/// last batch where it has them.
fn with_copies<V, T: CopyOf<V>, R>(
    kept: &'static LocalKey<RefCell<Vec<T>>>,
    views: &[V],
    f: impl FnOnce(&[T]) -> R,
) -> R {
    kept.with(|cell| match cell.try_borrow_mut() {
        Ok(mut kept) => {
            let mut text = 0;
            for (i, view) in views.iter().enumerate() {
                text += T::text(view);
                match kept.get_mut(i) {
                    Some(copy) => copy.refill(view),
                    None => kept.push(T::make(view)),
                }
            }
            let result = f(&kept[..views.len()]);
            if text > KEPT_BYTES {
                *kept = Vec::new();
            }
            kept.truncate(KEPT_COPIES);
            result
        }
        // `f` lent views again on this thread (a generator calling another).
        Err(_) => f(&views.iter().map(T::make).collect::<Vec<_>>()),
    })
}

/// Checks requests and entries against the schema.
///
/// Each item's problems depend on that item alone, never on the rest of its batch: the
/// pipeline may hand a batch over in parts (a batch alone is checked on two cores in halves; a
/// plugin library is lent 128 views at a time), each part's problems numbered by their index in
/// the whole batch. A check across items (two requests of one batch alike) belongs to the
/// pipeline, which sees them all.
pub trait Validator: Send + Sync {
    /// Checks requests whose fields are all filled in (given or predicted), before an id is
    /// allocated. Pushes every problem found, with [`Problem::item`] the request's index.
    ///
    /// # Errors
    /// Only when the validator cannot work; invalid input is reported as problems.
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()>;

    /// [`Validator::check_requests`] for requests lent as views: what a plugin library is
    /// called with across the boundary, so that a validator that reads requests in place copies
    /// nothing of them. Must report what `check_requests` reports.
    ///
    /// The default copies the views into owned requests, kept per thread as
    /// [`Generator::predict_lent`] keeps them, and calls `check_requests`.
    ///
    /// # Errors
    /// As [`Validator::check_requests`].
    fn check_requests_lent(
        &self,
        requests: &[RequestRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        with_copies(&REQUESTS, requests, |owned| self.check_requests(owned, out))
    }

    /// Checks complete entries (header and config) before they are stored.
    ///
    /// # Errors
    /// As [`Validator::check_requests`].
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()>;

    /// Checks headers as written in files (found by `registry lint`), before anything is known
    /// about them but their text: pushes every problem of each, with [`Problem::item`] the
    /// header's index. Values may be in any case (the grepable form is lowercase); a value the
    /// schema knows in another case, or an id without its zero padding, is at most a warning.
    ///
    /// # Errors
    /// As [`Validator::check_requests`].
    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()>;

    /// [`Validator::check_entries`] of entries the pipeline has just built, whose hashes it
    /// computed from the very content given here: a validator may leave out the hash check,
    /// which would compute each hash a second time. Entries from anywhere else (an import, a
    /// stored revision) go through `check_entries`. By default, `check_entries`.
    ///
    /// # Errors
    /// As [`Validator::check_requests`].
    fn check_built(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        self.check_entries(entries, out)
    }

    /// [`Validator::check_built`] of entries lent as views: what a plugin library is called
    /// with across the boundary, so that a validator that reads entries in place copies
    /// nothing of them. Must report what `check_built` reports.
    ///
    /// The default copies the views into owned entries, kept per thread as
    /// [`Generator::predict_lent`] keeps its copies, and calls `check_built`.
    ///
    /// # Errors
    /// As [`Validator::check_requests`].
    fn check_built_lent(
        &self,
        entries: &[EntryRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        with_copies(&BUILT, entries, |owned| self.check_built(owned, out))
    }
}

/// What storage did with an entry given to [`Storage::insert`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "outcomes are short-lived and mostly `Created`"
)]
pub enum Inserted {
    /// The entry is stored, durably once `insert` returns.
    Created,
    /// An entry with the same fingerprint was already stored: this one, which was kept.
    Existing(Entry),
}

/// The highest number of one id prefix a shard has handed out or stored (its sequence): the
/// next number it allocates is above it. See [`Storage::sequences`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sequence {
    pub prefix: String,
    pub last: u64,
}

/// What storage did with an entry's history given to [`Storage::restore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Restored {
    /// The entry and all its revisions are stored now.
    Created,
    /// The same entry was already stored: same id, latest revision and content hash.
    Unchanged,
}

/// Filters and a page for [`Storage::list`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListQuery {
    /// Only entries whose field equals the value (schema spelling); `None` matches all.
    pub filter: Fields<Option<String>>,
    /// Only entries whose id orders after this one.
    pub after: Option<EntryId>,
    /// At most this many entries.
    pub limit: usize,
}

impl ListQuery {
    /// Whether an entry passes the filter (not the page bounds).
    pub fn matches(&self, entry: &Entry) -> bool {
        Field::ALL.iter().all(|&f| {
            self.filter[f]
                .as_deref()
                .is_none_or(|want| entry.header.fields[f] == want)
        })
    }
}

/// One shard of durable storage: entries, their history, id sequences and indexes.
///
/// A registry with K shards opens K storages, each told its `shard` index at construction. An
/// entry is stored in the shard the [`Router`] picks for its fingerprint, so that registering
/// the same request twice finds it in one lookup. How ids are numbered depends on the
/// registry's storage format, which the storage reports in its metadata
/// ([`crate::layout::IDS`]):
///
/// - **dense** (`ids = dense`): shard 0 allocates every number, per prefix `1, 2, 3, …` in the
///   order asked, whatever shard the entry goes to, and records where each entry not stored in
///   shard 0 is ([`Storage::place`], [`Storage::locate`]); the other shards allocate nothing;
/// - **interleaved** (no `ids` record, the first storage format): shard `s` allocates the
///   numbers `n` with `(n - 1) % K == s` and stores those entries itself, so an id names its
///   shard ([`crate::rules::shard_of`]).
///
/// Either way ids are unique across shards.
pub trait Storage: Send + Sync {
    /// Looks up registration fingerprints: pushes one value per fingerprint, the latest revision
    /// of the entry registered with it, if any.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()>;

    /// Looks up ids: pushes the latest revision of each, `None` if unknown.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()>;

    /// [`Storage::get`], given entries the caller is done with: the storage may take entries
    /// from the end of `spare` and decode into them, reusing their strings, so that a caller
    /// that copies what it gets and hands the entries back (the plugin boundary, which lends
    /// them to the host) allocates nothing per entry once it has enough to spare. Must answer
    /// what `get` answers.
    ///
    /// The default leaves `spare` alone and calls `get`.
    ///
    /// # Errors
    /// As [`Storage::get`].
    fn get_reusing(
        &self,
        ids: &[EntryId],
        out: &mut Vec<Option<Entry>>,
        spare: &mut Vec<Entry>,
    ) -> StageResult<()> {
        let _ = spare;
        self.get(ids, out)
    }

    /// [`Storage::get`], lent: calls `each` once with the latest revision of each id (`None` if
    /// unknown), as views that live for the call. A storage that can lend its records' fields
    /// where they lie (the redb storage lends its stored bytes, the compressed configs
    /// decompressed into strings it keeps) spares the caller an entry it would only copy: across the plugin boundary
    /// the host copies what is lent, so an entry decoded on the plugin's side first is one copy
    /// of every string too many. `spare` holds entries the caller is done with, as for
    /// [`Storage::get_reusing`]: an implementation that makes entries after all takes them from
    /// there and pushes the ones it made back once `each` has returned.
    ///
    /// Must answer what `get` answers, and call `each` exactly once when it answers `Ok`; an
    /// error `each` returns is the call's. The default calls `get_reusing` and lends views of
    /// its entries.
    ///
    /// # Errors
    /// As [`Storage::get`], or what `each` returns.
    fn get_lent(
        &self,
        ids: &[EntryId],
        spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        let mut found = Vec::with_capacity(ids.len());
        self.get_reusing(ids, &mut found, spare)?;
        lend_found(found, spare, each)
    }

    /// Allocates the next sequence number for each id prefix (`SEC-RUL`): pushes one number per
    /// prefix, increasing in the order of `prefixes`. A number is never handed out twice, even
    /// if the entry it was meant for is never stored (ids may have gaps, never collisions). In
    /// a dense registry only shard 0 allocates, consecutive numbers per prefix (see the trait
    /// documentation); another shard refuses with code `Invalid`.
    ///
    /// # Errors
    /// When the store cannot be written.
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()>;

    /// Dense registries, shard 0 only: records durably, in one transaction, that each entry of
    /// `ids` is (about to be) stored in the shard of the same index in `shards`, and raises each
    /// prefix's sequence to at least its number, so the number is never allocated again. Called
    /// before those entries are stored elsewhere: a crash in between leaves a location without
    /// an entry, which reads as no entry (a gap in the ids), never an entry without a
    /// location. Shard 0's own entries need no record.
    ///
    /// # Errors
    /// When the transaction fails (then nothing is recorded), or code `Invalid` when the
    /// storage keeps no locations (the default) or is not shard 0 of a dense registry.
    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        let _ = (ids, shards);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage keeps no id locations",
        ))
    }

    /// Dense registries, shard 0 only: pushes, for each id, the shard [`Storage::place`]
    /// recorded for it, or 0 when it recorded none (the entry is in shard 0, or does not
    /// exist).
    ///
    /// # Errors
    /// When the store cannot be read, or code `Invalid` as for [`Storage::place`].
    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        let _ = (ids, out);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage keeps no id locations",
        ))
    }

    /// Stores new entries (revision 1) in one durable transaction: pushes one [`Inserted`] per
    /// entry. An entry whose fingerprint is already registered is not stored.
    ///
    /// # Errors
    /// When the transaction fails; then nothing of the batch is stored.
    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()>;

    /// Dense registries, shard 0 only: [`Storage::place`] and [`Storage::insert`] in one
    /// durable transaction, so that a group of registrations costs shard 0 one commit, not
    /// two: records that each of `ids` is (about to be) stored in the shard of the same index
    /// in `shards`, and stores `entries` (shard 0's own), both or neither. The default places,
    /// then inserts: two transactions, in the order that matters (the locations first).
    ///
    /// # Errors
    /// As [`Storage::place`] and [`Storage::insert`]; when it fails, neither is done (with
    /// the default, the locations may be recorded: a location without an entry reads as no
    /// entry).
    fn insert_placed(
        &self,
        entries: &[Entry],
        ids: &[EntryId],
        shards: &[u32],
        out: &mut Vec<Inserted>,
    ) -> StageResult<()> {
        self.place(ids, shards)?;
        self.insert(entries, out)
    }

    /// Stores new revisions in one durable transaction. Each entry's `revision` must be exactly
    /// one more than the stored one; pushes per entry `Ok`, or an error with code `NotFound` or
    /// `Conflict` (the stored revision moved on), and stores only the `Ok` ones.
    ///
    /// # Errors
    /// When the transaction fails; then nothing of the batch is stored.
    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()>;

    /// Pushes every revision of an entry, oldest first; nothing if the id is unknown.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()>;

    /// Pushes up to `query.limit` latest revisions matching the query, in id order.
    ///
    /// # Errors
    /// When the store cannot be read.
    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()>;

    /// Stores entries exactly as exported from another registry, ids, revisions and times
    /// included, in one durable transaction. Each item is one entry's history: every revision,
    /// oldest first, numbered 1 to n, all with the same id and fingerprint. Each prefix's
    /// sequence is raised to at least the restored number, so `allocate` never hands it out.
    ///
    /// Pushes per item `Ok(Restored::Created)`, `Ok(Restored::Unchanged)` when the same id is
    /// stored with the same latest revision and hash, or an error: code `Conflict` when the id
    /// or the fingerprint is taken by other content, `Invalid` for a malformed history. Only the
    /// `Created` items are written.
    ///
    /// # Errors
    /// When the transaction fails (then nothing of the batch is stored), or code `Invalid` when
    /// the storage cannot restore (the default).
    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        let _ = (histories, out);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot restore exported entries",
        ))
    }

    /// The registry metadata this shard keeps: what the host recorded with [`Storage::set_meta`]
    /// or at creation ([`Setup::create`]), and [`crate::layout::SHARDS`], the shard count the
    /// store was created with, which the storage records itself.
    ///
    /// # Errors
    /// When the store cannot be read, or code `Invalid` when the storage keeps no metadata (the
    /// default).
    fn meta(&self, out: &mut Meta) -> StageResult<()> {
        let _ = out;
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage keeps no registry metadata",
        ))
    }

    /// Sets metadata durably, in one transaction: each key to its value, or removes it when
    /// the value is empty. [`crate::layout::SHARDS`] cannot be set (code `Invalid`).
    ///
    /// # Errors
    /// When the transaction fails (then nothing is set), or code `Invalid` (the default).
    fn set_meta(&self, changes: &Meta) -> StageResult<()> {
        let _ = changes;
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage keeps no registry metadata",
        ))
    }
    /// Reclaims space: rewrites what the store keeps in its most compact form (for a store that
    /// compresses with trained dictionaries, with a dictionary trained afresh on what it holds
    /// now) and gives free space back to the file system. Changes no entry: every revision
    /// reads back the same. Returns how many stored revisions were rewritten. May take long on a
    /// large store; other calls wait or fail meanwhile, as the store says.
    ///
    /// # Errors
    /// When the store cannot be read or written (then every revision still reads back as
    /// before), or code `Invalid` when the storage cannot compact (the default).
    fn compact(&self) -> StageResult<u64> {
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot compact",
        ))
    }

    /// Converts the shard to the newest storage format this storage writes, when it is of an
    /// older one ([`crate::layout::FORMAT`]): every revision rewritten in the newest form and the
    /// new format recorded, so that a crash at any point leaves the shard in its old form or
    /// its new one, each readable. Every revision reads back the same afterwards; ids,
    /// fingerprints and times do not change.
    ///
    /// When the registry becomes dense, the host migrates shard 0 last and gives it the shard
    /// of every entry stored in another one, which it records as [`Storage::place`] would, in
    /// the same transaction as its new format (so a dense shard 0 never lacks a location);
    /// every other shard gets none. Returns how many stored revisions were rewritten: 0 for a
    /// shard already of the newest format, which records nothing.
    ///
    /// # Errors
    /// When the store cannot be read or written (then the shard is as it was), or code
    /// `Invalid` when the storage has one format only (the default).
    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        let _ = (ids, shards);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage has one storage format: there is nothing to migrate",
        ))
    }

    /// Rebuilds every index of the shard (the fingerprint index, the field index, the
    /// sequences' floor) from its entries, changing no entry: what `registry check --repair`
    /// does. The old indexes stay in use until the new ones are complete, so a crash leaves one
    /// or the other. Returns how many entries were indexed.
    ///
    /// # Errors
    /// When the store cannot be read or written (then the old indexes are as they were), or
    /// code `Invalid` when the storage cannot rebuild its indexes (the default).
    fn reindex(&self) -> StageResult<u64> {
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot rebuild its indexes",
        ))
    }

    /// Raises the sequence of each prefix in `raise` to at least its `last`, durably, so that
    /// [`Storage::allocate`] never hands out a number up to it, then pushes the shard's
    /// sequences (every prefix it knows, in prefix order; numbers allocated but not yet saved
    /// count). With `raise` empty, only reads. What `registry restore` uses to carry the high-water
    /// marks of the registry it replaces into the restored one.
    ///
    /// # Errors
    /// When the store cannot be read or written (then no sequence is changed), or code
    /// `Invalid` when the storage keeps no sequences it can show (the default).
    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        let _ = (raise, out);
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot show or raise its id sequences",
        ))
    }

    /// Replaces the stored revision `revision.revision` of `revision`'s id with `revision`, its
    /// title, context or config purged ([`crate::Purge`]), in one durable transaction, after
    /// [`crate::rules::check_purge`] of the stored revision against it: nothing else may change,
    /// so no index does. What `registry purge` uses.
    ///
    /// # Errors
    /// Code `NotFound` when the entry or that revision is not stored, `Invalid` when
    /// `check_purge` refuses (nothing is written), a store failure, or code `Invalid` when the
    /// storage cannot purge (the default).
    fn purge(&self, revision: &Entry) -> StageResult<()> {
        let _ = revision;
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot purge a revision",
        ))
    }

    /// Writes a consistent copy of the shard into the directory `dir` (which exists), under the
    /// name the shard has in its own data directory, so that `dir` holding every shard's copy
    /// opens as the registry did: no write of this process lands between the copy's first byte
    /// and its last, and the copy is durable (synced) when this returns. Returns the bytes
    /// copied. What `registry backup` and `registry restore` use.
    ///
    /// # Errors
    /// When the shard cannot be read or the copy written (then no file of that name is left
    /// in `dir`), or code `Invalid` when the storage cannot copy itself (the default; e.g. a
    /// server's storage, backed up by its server).
    fn backup(&self, dir: &str) -> StageResult<u64> {
        let _ = dir;
        Err(crate::StageError::new(
            crate::ErrorCode::Invalid,
            "this storage cannot copy itself into a directory",
        ))
    }
}

/// What [`Storage::get_lent`] does by default with the entries `get_reusing` answered: lends
/// views of them to `each`, then hands them to `spare` for the next call to decode into.
/// Public for a storage whose own `get_lent` decodes after all (the redb storage, for the
/// records of its first format).
///
/// # Errors
/// What `each` returns.
pub fn lend_found(
    found: Vec<Option<Entry>>,
    spare: &mut Vec<Entry>,
    each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
) -> StageResult<()> {
    let views: Vec<Option<EntryRef<'_>>> = found
        .iter()
        .map(|e| e.as_ref().map(EntryRef::from))
        .collect();
    let lent = each(&views);
    drop(views);
    spare.extend(found.into_iter().flatten());
    lent
}

/// Chooses the shard of each key.
pub trait Router: Send + Sync {
    /// Pushes, for each key, a shard in `0..shards`. The same key and shard count must always give
    /// the same shard.
    ///
    /// # Errors
    /// When `shards` is 0 or the router cannot work.
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()>;
}

/// A storage shard that could not be opened (its file is damaged, unreadable, or locked by
/// another process for too long): every call fails with code `Unavailable`, naming the shard
/// and why, so requests for this shard fail clearly while the other shards keep working.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnavailableShard {
    pub shard: u32,
    /// Why the shard could not be opened, as its storage reported it.
    pub reason: String,
}

impl UnavailableShard {
    fn error(&self) -> crate::StageError {
        crate::StageError::new(
            crate::ErrorCode::Unavailable,
            format!("shard {} is unavailable: {}", self.shard, self.reason),
        )
    }
}

/// Implements [`Storage`] for a type whose every call fails with its `error()`.
macro_rules! refusing_storage {
    ($t:ty) => {
        impl Storage for $t {
            fn find(&self, _: &[Fingerprint], _: &mut Vec<Option<Entry>>) -> StageResult<()> {
                Err(self.error())
            }
            fn get(&self, _: &[EntryId], _: &mut Vec<Option<Entry>>) -> StageResult<()> {
                Err(self.error())
            }
            fn allocate(&self, _: &[String], _: &mut Vec<u64>) -> StageResult<()> {
                Err(self.error())
            }
            fn insert(&self, _: &[Entry], _: &mut Vec<Inserted>) -> StageResult<()> {
                Err(self.error())
            }
            fn update(&self, _: &[Entry], _: &mut Vec<StageResult<()>>) -> StageResult<()> {
                Err(self.error())
            }
            fn history(&self, _: &EntryId, _: &mut Vec<Entry>) -> StageResult<()> {
                Err(self.error())
            }
            fn list(&self, _: &ListQuery, _: &mut Vec<Entry>) -> StageResult<()> {
                Err(self.error())
            }
            fn meta(&self, _: &mut Meta) -> StageResult<()> {
                Err(self.error())
            }
            fn set_meta(&self, _: &Meta) -> StageResult<()> {
                Err(self.error())
            }
            fn compact(&self) -> StageResult<u64> {
                Err(self.error())
            }
            fn place(&self, _: &[EntryId], _: &[u32]) -> StageResult<()> {
                Err(self.error())
            }
            fn migrate(&self, _: &[EntryId], _: &[u32]) -> StageResult<u64> {
                Err(self.error())
            }
            fn reindex(&self) -> StageResult<u64> {
                Err(self.error())
            }
            fn sequences(&self, _: &[Sequence], _: &mut Vec<Sequence>) -> StageResult<()> {
                Err(self.error())
            }
            fn backup(&self, _: &str) -> StageResult<u64> {
                Err(self.error())
            }
            fn purge(&self, _: &Entry) -> StageResult<()> {
                Err(self.error())
            }
            fn locate(&self, _: &[EntryId], _: &mut Vec<u32>) -> StageResult<()> {
                Err(self.error())
            }
            fn restore(
                &self,
                _: &[Vec<Entry>],
                _: &mut Vec<StageResult<Restored>>,
            ) -> StageResult<()> {
                Err(self.error())
            }
        }
    };
}

refusing_storage!(UnavailableShard);

/// A stage a command does not load, because it does not need it (`registry get` needs no
/// generator): a command loads only the plugin libraries it uses, so a library named for a
/// stage it does not use is never run. As a cache it always misses; as any other stage every
/// call fails with code `Internal`, naming the stage, which would be a bug in the command's
/// choice of stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotLoaded(pub crate::StageKind);

impl NotLoaded {
    fn error(&self) -> crate::StageError {
        crate::StageError::new(
            crate::ErrorCode::Internal,
            format!("the {} stage is not loaded for this command", self.0),
        )
    }
}

impl Cache for NotLoaded {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        out.extend(keys.iter().map(|_| None));
        Ok(())
    }
    fn put(&self, _: &[Entry]) -> StageResult<()> {
        Ok(())
    }
    fn remove(&self, _: &[CacheKey]) -> StageResult<()> {
        Ok(())
    }
}

impl Generator for NotLoaded {
    fn predict(&self, _: &[Request], _: &mut Vec<Prediction>) -> StageResult<()> {
        Err(self.error())
    }
    fn render(&self, _: &[Draft], _: &mut Vec<String>) -> StageResult<()> {
        Err(self.error())
    }
}

impl Validator for NotLoaded {
    fn check_requests(&self, _: &[Request], _: &mut Vec<Problem>) -> StageResult<()> {
        Err(self.error())
    }
    fn check_entries(&self, _: &[Entry], _: &mut Vec<Problem>) -> StageResult<()> {
        Err(self.error())
    }
    fn check_headers(&self, _: &[RawHeader], _: &mut Vec<Problem>) -> StageResult<()> {
        Err(self.error())
    }
}

impl Router for NotLoaded {
    fn route(&self, _: &[u64], _: u32, _: &mut Vec<u32>) -> StageResult<()> {
        Err(self.error())
    }
}

refusing_storage!(NotLoaded);

#[cfg(test)]
mod tests {
    use super::*;

    /// Proposes, for each request, its own parts: the title as scope, the version as kind, the
    /// context as variant and the scope it names as status. What it sees is what it proposes.
    struct Echo;

    impl Generator for Echo {
        fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
            let guess = |value: String| {
                Some(Guess {
                    value,
                    confidence: None,
                    source: Source::Default,
                })
            };
            out.extend(requests.iter().map(|r| Fields {
                scope: guess(r.title().to_owned()),
                kind: r.version.clone().and_then(guess),
                variant: guess(r.context.iter().map(|(k, v)| format!("{k}={v};")).collect()),
                status: r.fields.scope.clone().and_then(guess),
            }));
            Ok(())
        }

        fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
            out.extend(drafts.iter().map(|d| {
                format!(
                    "{}|{}|{:?}",
                    d.header.readable(),
                    d.title,
                    d.context.iter().collect::<Vec<_>>()
                )
            }));
            Ok(())
        }
    }

    /// Reports every request as a problem whose message holds all of it.
    impl Validator for Echo {
        fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
            out.extend(requests.iter().enumerate().map(|(item, r)| Problem {
                item,
                severity: crate::Severity::Warning,
                code: "echo".to_owned(),
                field: "title".to_owned(),
                message: format!(
                    "{}|{:?}|{:?}|{:?}",
                    r.title(),
                    r.fields,
                    r.version,
                    r.context.iter().collect::<Vec<_>>()
                ),
            }));
            Ok(())
        }

        fn check_entries(&self, _: &[Entry], _: &mut Vec<Problem>) -> StageResult<()> {
            Ok(())
        }

        fn check_headers(&self, _: &[RawHeader], _: &mut Vec<Problem>) -> StageResult<()> {
            Ok(())
        }
    }

    fn request(
        title: &str,
        scope: Option<&str>,
        version: Option<&str>,
        pairs: &[(&str, &str)],
    ) -> Request {
        let fields = Fields {
            scope: scope.map(str::to_owned),
            ..Fields::default()
        };
        let context = Context::new(pairs.iter().map(|&(k, v)| (k.to_owned(), v.to_owned())))
            .expect("valid context");
        Request::new(title, fields, version.map(str::to_owned), context).expect("valid request")
    }

    /// The defaults of `predict_lent`, `check_requests_lent` and `render_lent` copy each view
    /// exactly, into the copies the batch before left on this thread, whatever each batch's
    /// shape: longer and shorter strings, fields and versions that come and go, more and fewer
    /// pairs and items.
    #[test]
    fn lent_views_are_answered_as_the_values_themselves() {
        let long = "x".repeat(300);
        let batches = [
            vec![
                request(
                    "first of all",
                    Some("SEC"),
                    Some("v1.2"),
                    &[("a", "1"), ("b", "2")],
                ),
                request(&long, None, None, &[]),
                request("third", None, Some("v3"), &[("env", &long)]),
            ],
            vec![
                request("short", None, None, &[("z", "9"), ("a", "1"), ("m", "")]),
                request("second, now with a scope", Some("OPS"), Some("v2"), &[]),
            ],
            vec![
                request("one", None, None, &[]),
                request("two", Some("DEV"), None, &[("k", "v")]),
                request(&long, None, Some("v9.9.9"), &[("k", "v")]),
                request("four", None, None, &[("only", "pair")]),
            ],
            Vec::new(),
            vec![request("again", None, None, &[])],
        ];
        for requests in &batches {
            let mut expected = Vec::new();
            Echo.predict(requests, &mut expected).expect("predicts");
            let views: Vec<RequestRef<'_>> = requests.iter().map(Request::view).collect();
            let mut lent = Vec::new();
            Echo.predict_lent(&views, &mut |p| {
                lent.push(p.map(|_, g| g.as_ref().map(GuessRef::to_guess)));
            })
            .expect("predicts");
            assert_eq!(lent, expected);

            // Checked from views.
            let mut expected = Vec::new();
            Echo.check_requests(requests, &mut expected)
                .expect("checks");
            let mut lent = Vec::new();
            Echo.check_requests_lent(&views, &mut lent).expect("checks");
            assert_eq!(lent, expected);

            // The same parts as drafts, rendered from views.
            let drafts: Vec<Draft> = requests
                .iter()
                .enumerate()
                .map(|(i, r)| Draft {
                    header: Header {
                        fields: r.fields.clone().map(|_, v| v.unwrap_or_default()),
                        id: EntryId::new(
                            r.title().chars().take(3).collect::<String>(),
                            i as u64 * 1000,
                        ),
                        version: r.version.clone().unwrap_or_default(),
                    },
                    title: r.title().to_owned(),
                    context: r.context.clone(),
                })
                .collect();
            let mut expected = Vec::new();
            Echo.render(&drafts, &mut expected).expect("renders");
            let views: Vec<DraftRef<'_>> = drafts.iter().map(Draft::view).collect();
            let mut lent = Vec::new();
            Echo.render_lent(&views, &mut |c| lent.push(c.to_owned()))
                .expect("renders");
            assert_eq!(lent, expected);
        }
    }

    #[test]
    fn check_shard_accepts_only_a_shard_of_at_least_one() {
        let setup = |shard, shards| Setup {
            schema: Schema::default(),
            data_dir: PathBuf::from("/data"),
            config_dir: PathBuf::from("/"),
            shard,
            shards,
            create: None,
        };
        for (shard, shards, error) in [
            (0, 1, None),
            (3, 4, None),
            (0, 0, None),
            (
                1,
                0,
                Some("shards is 0: a registry needs at least one shard"),
            ),
            (
                4,
                4,
                Some("shard 4 is out of range: the registry has 4 shards, numbered from 0"),
            ),
        ] {
            let got = setup(shard, shards).check_shard();
            match error {
                None => assert!(got.is_ok(), "{shard} of {shards}: {got:?}"),
                Some(message) => {
                    let e = got.expect_err("impossible shard numbers");
                    assert_eq!((e.code, e.message.as_str()), (ErrorCode::Config, message));
                }
            }
        }
        let creating = Setup {
            create: Some(Meta::new()),
            ..setup(0, 0)
        };
        assert!(
            creating.check_shard().is_err(),
            "a store is created only with its shard count"
        );
    }
}
