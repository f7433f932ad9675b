//! The plugin side: wraps plain-Rust stage implementations as FFI objects, catches their panics,
//! and builds the root module that [`export_plugin!`](crate::export_plugin) exports.
//!
//! Everything here runs inside the plugin library, with the plugin's own copy of `std`: the panic
//! hook installed here is the plugin's, not the host's.
//!
//! Batches arrive as borrowed views of the host's values and are converted by reference: each
//! string is copied once, into the owned core value the stage trait takes, and checked as the
//! core constructors check it. Requests and drafts are the exception: they reach the generator
//! as core views of the host's strings ([`registry_core::RequestRef`],
//! [`registry_core::DraftRef`]), which the host made from checked parts.

use std::cell::{Cell, RefCell};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Once;
use std::thread::LocalKey;

use abi_stable::prefix_type::PrefixTypeTrait;
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use registry_core::{
    Cache, CacheKey, Entry, EntryId, ErrorCode, FromConfig, Generator, GuessRef, ListQuery,
    Problem, RawHeader, Request, Router, Sequence, Setup, StageError, Storage, TrainOptions,
    Validator,
};

use crate::ffi::{
    FfiCacheStats, FfiDraftRef, FfiEntry, FfiEntryRef, FfiError, FfiId, FfiIdRef, FfiInserted,
    FfiKey, FfiListQuery, FfiPrediction, FfiProblem, FfiRawHeader, FfiRequestRef, HostView, Refill,
    convert_all, lend, lend_views, pairs_of, prediction_to_ffi, prediction_to_view,
    restored_to_ffi,
};
use crate::module::{
    CacheBox, ConfigSink, EntrySink, FfiCache, FfiCache_TO, FfiGenerator, FfiGenerator_TO,
    FfiRouter, FfiRouter_TO, FfiStorage, FfiStorage_TO, FfiValidator, FfiValidator_TO,
    GeneratorBox, PluginInfo, PluginMod, PluginModRef, PredictionSink, RouterBox, StorageBox,
    ValidatorBox,
};

thread_local! {
    static IN_GUARD: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<Option<String>> = const { RefCell::new(None) };
    /// The owned copies of the last batch of ids a storage `get` was asked for on this thread.
    static IDS: RefCell<Vec<EntryId>> = const { RefCell::new(Vec::new()) };
    /// Entries a storage `get` lent on this thread, which the next decodes into.
    static SPARE: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
    /// The owned copies of the last batch of entries this thread was lent to check or store.
    static ENTRIES: RefCell<Vec<Entry>> = const { RefCell::new(Vec::new()) };
}

/// Requests or drafts [`with_core_views`] hands over at once, so that its vector of core views
/// stays a few KiB however large a batch the host lends.
const VIEWS_AT_ONCE: usize = 128;

/// Most owned copies a thread keeps between calls, of each kind (ids asked for, entries to
/// decode into, entries lent to check or store; a batch of the pipeline is 1,000 items).
///
/// Measured (`cargo xtask bench --filter stages`): making a fresh `Draft` or `Request` of every
/// view was most of what a call through the boundary cost over a linked one, a dozen
/// allocations and frees per item for a render of a few hundred nanoseconds. Requests and
/// drafts are now read in place ([`with_core_views`]); core's defaults of
/// `Generator::predict_lent` and `render_lent` keep copies under the same bounds. Entries the
/// pipeline built are read in place too (`Validator::check_built_lent`); those lent to
/// `check_entries`, `insert`, `insert_placed` and `update` are copied into kept ones: a batch of 1,000 through the redb plugin's insert took 0.7 µs less per entry
/// (8.84 → 8.16, means of six alternated `stage_times` runs).
const KEPT: usize = 4096;

/// Most text a thread's kept copies of one kind may have held in their last batch: after a
/// larger batch they are dropped. [`copy_into`] keeps no buffer over four times what the batch
/// put in it (or 64 bytes), so this bounds what a thread keeps to a few times 4 MiB of each
/// kind, however large a batch it once saw.
///
/// [`copy_into`]: registry_core::copy_into
const BUDGET: usize = 4 << 20;

/// Calls `f` with the host's requests or drafts as core views ([`RequestRef`], [`DraftRef`]),
/// read where the host keeps them, [`VIEWS_AT_ONCE`] at a time, their context pairs gathered
/// into `pairs` (the caller's, so that the views can borrow it for as long as they borrow the
/// host's strings): a generator that reads them in
/// place ([`Generator::predict_lent`], [`Generator::render_lent`]) copies none. Stops at `f`'s
/// first error.
///
/// Measured (`cargo xtask bench --filter stages`, keyword rules): copying each request into a
/// kept `Request` and checking it again was a quarter of a prediction through the boundary (240
/// against 166 ns linked).
fn with_core_views<'v, V: HostView>(
    views: &'v [V],
    pairs: &'v mut Vec<(&'v str, &'v str)>,
    mut f: impl FnMut(&[V::Core<'v>]) -> Result<(), StageError>,
) -> Result<(), StageError> {
    pairs.clear();
    pairs.reserve(views.iter().map(|v| v.context().len()).sum());
    pairs.extend(views.iter().flat_map(|v| pairs_of(v.context())));
    let mut rest: &'v [(&'v str, &'v str)] = pairs;
    let mut cores = Vec::with_capacity(views.len().min(VIEWS_AT_ONCE));
    for chunk in views.chunks(VIEWS_AT_ONCE) {
        cores.clear();
        cores.extend(chunk.iter().map(|v| {
            let (context, after) = rest.split_at(v.context().len());
            rest = after;
            v.core_view(context)
        }));
        f(&cores)?;
    }
    Ok(())
}

/// [`with_core_views`] for a validator: `check` pushes the problems of each part of views onto
/// `problems`, whose items are indices in the part, made indices in the whole batch here.
fn with_views_numbered<'v, V: HostView>(
    views: &'v [V],
    pairs: &'v mut Vec<(&'v str, &'v str)>,
    problems: &mut Vec<Problem>,
    mut check: impl FnMut(&[V::Core<'v>], &mut Vec<Problem>) -> Result<(), StageError>,
) -> Result<(), StageError> {
    let mut before = 0;
    with_core_views(views, pairs, |part| {
        let from = problems.len();
        check(part, problems)?;
        for p in &mut problems[from..] {
            p.item += before;
        }
        before += part.len();
        Ok(())
    })
}

/// Calls `f` with owned copies of `views`, made in the buffers this thread kept from the batch
/// before (see [`Refill`]). A call made while the thread's copies are in use (a stage that calls
/// back into its own plugin) gets copies of its own.
fn with_kept<V, T: Refill<V>, R>(
    kept: &'static LocalKey<RefCell<Vec<T>>>,
    views: &[V],
    f: impl FnOnce(&[T]) -> Result<R, StageError>,
) -> Result<R, StageError> {
    kept.with(|cell| match cell.try_borrow_mut() {
        Ok(mut owned) => {
            let mut text = 0;
            let result =
                refill_all(&mut owned, views, &mut text).and_then(|()| f(&owned[..views.len()]));
            if text > BUDGET {
                *owned = Vec::new();
            }
            owned.truncate(KEPT);
            result
        }
        Err(_) => {
            let mut owned = Vec::with_capacity(views.len());
            refill_all(&mut owned, views, &mut 0)?;
            f(&owned)
        }
    })
}

/// The bytes of text an entry holds, near enough to bound what spare entries keep.
fn entry_text_bytes(e: &Entry) -> usize {
    e.config.len()
        + e.title.len()
        + e.context
            .iter()
            .map(|(k, v)| k.len() + v.len())
            .sum::<usize>()
        + 1024
}

/// Calls `f` with the entries this thread's last storage `get` lent, for `Storage::get_reusing`
/// to decode into, and keeps what `f` hands back (at most [`KEPT`]).
fn with_spare<R>(f: impl FnOnce(&mut Vec<Entry>) -> R) -> R {
    SPARE.with(|cell| match cell.try_borrow_mut() {
        Ok(mut spare) => {
            let result = f(&mut spare);
            spare.truncate(KEPT);
            result
        }
        Err(_) => f(&mut Vec::new()),
    })
}

/// Makes the first `views.len()` values of `owned` the views' copies, adding the bytes of text
/// of each view reached to `text` ([`Refill::text_bytes`]).
fn refill_all<V, T: Refill<V>>(
    owned: &mut Vec<T>,
    views: &[V],
    text: &mut usize,
) -> Result<(), StageError> {
    for (i, view) in views.iter().enumerate() {
        *text += T::text_bytes(view);
        match owned.get_mut(i) {
            Some(kept) => kept.refill(view)?,
            None => owned.push(T::make(view)?),
        }
    }
    Ok(())
}

static HOOK: Once = Once::new();

/// Installs a panic hook that, inside [`guard`], records the panic's message and location
/// instead of printing them (they become the call's error); elsewhere it defers to the previous
/// hook.
pub(crate) fn install_panic_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(Cell::get) {
                let message = payload_message(info.payload());
                let text = match info.location() {
                    Some(at) => format!("panicked at {}:{}: {message}", at.file(), at.line()),
                    None => format!("panicked: {message}"),
                };
                LAST_PANIC.with(|p| *p.borrow_mut() = Some(text));
            } else {
                previous(info);
            }
        }));
    });
}

fn payload_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic payload".to_owned()
    }
}

/// Runs one stage call, turning an error into an [`FfiError`] and a panic into an error with
/// code `Panic`: a panic must never unwind across the boundary, which would abort the host.
pub fn guard<R>(f: impl FnOnce() -> Result<R, StageError>) -> RResult<R, FfiError> {
    let was = IN_GUARD.with(|g| g.replace(true));
    if !was {
        // A panic a stage caught itself left its message behind: it is no call's.
        LAST_PANIC.with(|p| p.borrow_mut().take());
    }
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    match result {
        Ok(Ok(v)) => RResult::ROk(v),
        Ok(Err(e)) => RResult::RErr(e.into()),
        Err(payload) => {
            let message = LAST_PANIC
                .with(|p| p.borrow_mut().take())
                .unwrap_or_else(|| format!("panicked: {}", payload_message(&*payload)));
            RResult::RErr(FfiError {
                code: ErrorCode::Panic as u32,
                message: message.into(),
            })
        }
    }
}

/// Parses the host's setup and the stage's config table, then builds the stage.
///
/// # Errors
/// Code `Config` for a config table the stage's `Config` type rejects (the message names the
/// key), or whatever [`FromConfig::from_config`] returns.
pub fn construct<T: FromConfig>(config: RStr<'_>, setup: RStr<'_>) -> Result<T, StageError> {
    install_panic_hook();
    let setup: Setup = serde_json::from_str(setup.as_str()).map_err(|e| {
        StageError::new(
            ErrorCode::Internal,
            format!("host sent an unreadable setup: {e}"),
        )
    })?;
    let config: T::Config = serde_json::from_str(config.as_str())
        .map_err(|e| StageError::new(ErrorCode::Config, config_message(&e)))?;
    T::from_config(config, &setup)
}

/// The message for a config table its `Config` type rejects: serde's, without the position
/// and without any string value it quotes.
pub(crate) fn config_message(e: &serde_json::Error) -> String {
    hide_strings(&strip_position(&e.to_string()))
}

/// serde quotes a string value it rejects (`invalid type: string "…", expected …`); a config
/// value may be a secret (a password, a token in a URL), and the message goes to a terminal or a
/// log, so the value is left out: `invalid type: a string, expected …`.
fn hide_strings(message: &str) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("string \"") {
        out.push_str(&rest[..at]);
        out.push_str("a string");
        let value = &rest[at + "string \"".len()..];
        let mut escaped = false;
        let end = value.char_indices().find_map(|(i, c)| {
            let closes = c == '"' && !escaped;
            escaped = c == '\\' && !escaped;
            closes.then_some(i + 1)
        });
        rest = &value[end.unwrap_or(value.len())..];
    }
    out.push_str(rest);
    out
}

/// serde_json appends "at line 1 column 9", a position in JSON the user never wrote.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// A plain-Rust stage wrapped for export.
#[derive(Debug)]
pub struct Exported<T>(pub T);

fn extend_entries(out: &mut RVec<ROption<FfiEntry>>, found: &[Option<Entry>]) {
    out.extend(
        found
            .iter()
            .map(|e| ROption::from(e.as_ref().map(FfiEntry::from))),
    );
}

impl<T: Cache> FfiCache for Exported<T> {
    fn get(
        &self,
        keys: RSlice<'_, FfiKey>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let keys: Vec<CacheKey> = keys.iter().map(|&k| k.into()).collect();
            let mut found = Vec::with_capacity(keys.len());
            self.0.get(&keys, &mut found)?;
            extend_entries(out, &found);
            Ok(())
        })
    }

    fn put(&self, entries: RSlice<'_, FfiEntryRef<'_>>) -> RResult<(), FfiError> {
        guard(|| {
            let mut batch = Vec::with_capacity(entries.len());
            convert_all(entries.iter(), &mut batch)?;
            self.0.put_owned(batch)
        })
    }

    fn get_lent(&self, keys: RSlice<'_, FfiKey>, sink: EntrySink<'_>) -> RResult<(), FfiError> {
        guard(|| {
            let keys: Vec<CacheKey> = keys.iter().map(|&k| k.into()).collect();
            let mut found = Vec::with_capacity(keys.len());
            self.0.get_shared(&keys, &mut found)?;
            let refs: Vec<Option<&Entry>> = found.iter().map(Option::as_deref).collect();
            lend(&refs, sink).into_result().map_err(StageError::from)
        })
    }

    fn remove(&self, keys: RSlice<'_, FfiKey>) -> RResult<(), FfiError> {
        guard(|| {
            let keys: Vec<CacheKey> = keys.iter().map(|&k| k.into()).collect();
            self.0.remove(&keys)
        })
    }

    fn stats(&self) -> FfiCacheStats {
        match guard(|| Ok(self.0.stats())) {
            RResult::ROk(s) => s.into(),
            RResult::RErr(_) => FfiCacheStats::default(),
        }
    }
}

impl<T: Generator> FfiGenerator for Exported<T> {
    fn predict(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        out: &mut RVec<FfiPrediction>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let start = out.len();
            out.reserve(requests.len());
            let made = with_core_views(&requests, &mut Vec::new(), |views| {
                self.0.predict_lent(views, &mut |p| {
                    out.push(prediction_to_ffi(
                        p.map(|_, g| g.as_ref().map(GuessRef::to_guess)),
                    ));
                })
            });
            // Nothing of a failed call stays in the host's output.
            if made.is_err() {
                out.truncate(start);
            }
            made
        })
    }

    fn render(
        &self,
        drafts: RSlice<'_, FfiDraftRef<'_>>,
        out: &mut RVec<RString>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let start = out.len();
            out.reserve(drafts.len());
            let made = with_core_views(&drafts, &mut Vec::new(), |views| {
                self.0
                    .render_lent(views, &mut |c| out.push(RString::from(c)))
            });
            if made.is_err() {
                out.truncate(start);
            }
            made
        })
    }

    fn train(
        &self,
        examples: RSlice<'_, FfiRequestRef<'_>>,
        options: RStr<'_>,
    ) -> RResult<RString, FfiError> {
        guard(|| {
            let mut batch: Vec<Request> = Vec::with_capacity(examples.len());
            convert_all(examples.iter(), &mut batch)?;
            let options: TrainOptions = serde_json::from_str(options.as_str()).map_err(|e| {
                StageError::new(
                    ErrorCode::Internal,
                    format!("host sent unreadable training options: {e}"),
                )
            })?;
            let report = self.0.train(&batch, &options)?;
            serde_json::to_string(&report)
                .map(RString::from)
                .map_err(|e| {
                    StageError::new(
                        ErrorCode::Internal,
                        format!("cannot encode the training report: {e}"),
                    )
                })
        })
    }

    fn predict_lent(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        mut sink: PredictionSink<'_>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            with_core_views(&requests, &mut Vec::new(), |views| {
                self.0
                    .predict_lent(views, &mut |p| sink.receive(&prediction_to_view(p)))
            })
        })
    }

    fn render_lent(
        &self,
        drafts: RSlice<'_, FfiDraftRef<'_>>,
        mut sink: ConfigSink<'_>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            with_core_views(&drafts, &mut Vec::new(), |views| {
                self.0.render_lent(views, &mut |c| sink.receive(c.into()))
            })
        })
    }
}

/// Calls `check` on the entries of `entries`, converted, and pushes its problems onto `out`.
fn check_entries_with(
    entries: RSlice<'_, FfiEntryRef<'_>>,
    out: &mut RVec<FfiProblem>,
    check: impl FnOnce(&[Entry], &mut Vec<Problem>) -> Result<(), StageError>,
) -> RResult<(), FfiError> {
    guard(|| {
        let mut problems = Vec::new();
        with_kept(&ENTRIES, entries.as_slice(), |batch| {
            check(batch, &mut problems)
        })?;
        out.extend(problems.into_iter().map(FfiProblem::from));
        Ok(())
    })
}

impl<T: Validator> FfiValidator for Exported<T> {
    fn check_requests(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut problems = Vec::new();
            with_views_numbered(
                &requests,
                &mut Vec::new(),
                &mut problems,
                |views, problems| self.0.check_requests_lent(views, problems),
            )?;
            out.extend(problems.into_iter().map(FfiProblem::from));
            Ok(())
        })
    }

    fn check_entries(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError> {
        check_entries_with(entries, out, |batch, problems| {
            self.0.check_entries(batch, problems)
        })
    }

    fn check_built(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut problems = Vec::new();
            with_views_numbered(
                &entries,
                &mut Vec::new(),
                &mut problems,
                |views, problems| self.0.check_built_lent(views, problems),
            )?;
            out.extend(problems.into_iter().map(FfiProblem::from));
            Ok(())
        })
    }

    fn check_headers(
        &self,
        headers: RSlice<'_, FfiRawHeader>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let batch: Vec<RawHeader> = headers.iter().map(RawHeader::from).collect();
            let mut problems = Vec::new();
            self.0.check_headers(&batch, &mut problems)?;
            out.extend(problems.into_iter().map(FfiProblem::from));
            Ok(())
        })
    }
}

impl<T: Storage> FfiStorage for Exported<T> {
    fn find(
        &self,
        fingerprints: RSlice<'_, [u8; 16]>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let fps: Vec<_> = fingerprints
                .iter()
                .map(|&f| registry_core::Fingerprint(f))
                .collect();
            let mut found = Vec::with_capacity(fps.len());
            self.0.find(&fps, &mut found)?;
            extend_entries(out, &found);
            Ok(())
        })
    }

    fn get(
        &self,
        ids: RSlice<'_, FfiId>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let ids: Vec<EntryId> = ids.iter().map(EntryId::from).collect();
            let mut found = Vec::with_capacity(ids.len());
            self.0.get(&ids, &mut found)?;
            extend_entries(out, &found);
            Ok(())
        })
    }

    fn get_lent(
        &self,
        ids: RSlice<'_, FfiIdRef<'_>>,
        sink: EntrySink<'_>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            with_kept(&IDS, &ids, |ids| {
                with_spare(|spare| {
                    let mut sink = Some(sink);
                    let lent = self.0.get_lent(ids, spare, &mut |views| {
                        let sink = sink.take().ok_or_else(|| {
                            StageError::new(
                                ErrorCode::Internal,
                                "the storage lent its entries twice in one call",
                            )
                        })?;
                        lend_views(views, sink)
                            .into_result()
                            .map_err(StageError::from)
                    });
                    // A storage that decodes into entries hands them back; they are kept
                    // while their text stays within the budget.
                    if !spare.is_empty()
                        && spare.iter().map(entry_text_bytes).sum::<usize>() > BUDGET
                    {
                        spare.clear();
                    }
                    lent
                })
            })
        })
    }

    fn allocate(
        &self,
        prefixes: RSlice<'_, RString>,
        out: &mut RVec<u64>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let prefixes: Vec<String> = prefixes.iter().map(|p| p.as_str().to_owned()).collect();
            let mut numbers = Vec::with_capacity(prefixes.len());
            self.0.allocate(&prefixes, &mut numbers)?;
            out.extend(numbers);
            Ok(())
        })
    }

    fn insert(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut outcomes = Vec::with_capacity(entries.len());
            with_kept(&ENTRIES, entries.as_slice(), |batch| {
                self.0.insert(batch, &mut outcomes)
            })?;
            out.extend(outcomes.into_iter().map(FfiInserted::from));
            Ok(())
        })
    }

    fn update(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<RResult<(), FfiError>>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut outcomes = Vec::with_capacity(entries.len());
            with_kept(&ENTRIES, entries.as_slice(), |batch| {
                self.0.update(batch, &mut outcomes)
            })?;
            out.extend(
                outcomes
                    .into_iter()
                    .map(|r| r.map_err(FfiError::from).into()),
            );
            Ok(())
        })
    }

    fn history(&self, id: &FfiId, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError> {
        guard(|| {
            let mut revisions = Vec::new();
            self.0.history(&EntryId::from(id), &mut revisions)?;
            out.extend(revisions.iter().map(FfiEntry::from));
            Ok(())
        })
    }

    fn list(&self, query: &FfiListQuery, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError> {
        guard(|| {
            let mut entries = Vec::new();
            self.0.list(&ListQuery::from(query), &mut entries)?;
            out.extend(entries.iter().map(FfiEntry::from));
            Ok(())
        })
    }

    fn restore(
        &self,
        histories: RSlice<'_, RSlice<'_, FfiEntryRef<'_>>>,
        out: &mut RVec<RResult<bool, FfiError>>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut batch: Vec<Vec<Entry>> = Vec::with_capacity(histories.len());
            for history in histories.iter() {
                let mut revisions = Vec::with_capacity(history.len());
                convert_all(history.iter(), &mut revisions)?;
                batch.push(revisions);
            }
            let mut outcomes = Vec::with_capacity(batch.len());
            self.0.restore(&batch, &mut outcomes)?;
            out.extend(
                outcomes
                    .into_iter()
                    .map(|r| r.map(restored_to_ffi).map_err(FfiError::from).into()),
            );
            Ok(())
        })
    }

    fn meta(&self) -> RResult<RString, FfiError> {
        guard(|| {
            let mut meta = registry_core::Meta::new();
            self.0.meta(&mut meta)?;
            Ok(serde_json::to_string(&meta).unwrap_or_default().into())
        })
    }

    fn set_meta(&self, changes: RStr<'_>) -> RResult<(), FfiError> {
        guard(|| {
            let changes: registry_core::Meta =
                serde_json::from_str(changes.as_str()).map_err(|e| {
                    StageError::new(
                        registry_core::ErrorCode::Internal,
                        format!("the host sent unreadable metadata: {e}"),
                    )
                })?;
            self.0.set_meta(&changes)
        })
    }

    fn compact(&self) -> RResult<u64, FfiError> {
        guard(|| self.0.compact())
    }

    fn place(&self, ids: RSlice<'_, FfiId>, shards: RSlice<'_, u32>) -> RResult<(), FfiError> {
        guard(|| {
            let ids: Vec<EntryId> = ids.iter().map(EntryId::from).collect();
            self.0.place(&ids, shards.as_slice())
        })
    }

    fn insert_placed(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        ids: RSlice<'_, FfiId>,
        shards: RSlice<'_, u32>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let ids: Vec<EntryId> = ids.iter().map(EntryId::from).collect();
            let mut outcomes = Vec::with_capacity(entries.len());
            with_kept(&ENTRIES, entries.as_slice(), |batch| {
                self.0
                    .insert_placed(batch, &ids, shards.as_slice(), &mut outcomes)
            })?;
            out.extend(outcomes.into_iter().map(FfiInserted::from));
            Ok(())
        })
    }

    fn reindex(&self) -> RResult<u64, FfiError> {
        guard(|| self.0.reindex())
    }

    fn sequences(&self, raise: RSlice<'_, FfiId>, out: &mut RVec<FfiId>) -> RResult<(), FfiError> {
        guard(|| {
            let raise: Vec<Sequence> = raise
                .iter()
                .map(|s| Sequence {
                    prefix: s.prefix.as_str().to_owned(),
                    last: s.number,
                })
                .collect();
            let mut sequences = Vec::new();
            self.0.sequences(&raise, &mut sequences)?;
            out.extend(sequences.into_iter().map(|s| FfiId {
                prefix: s.prefix.into(),
                number: s.last,
            }));
            Ok(())
        })
    }

    fn backup(&self, dir: RStr<'_>) -> RResult<u64, FfiError> {
        guard(|| self.0.backup(dir.as_str()))
    }

    fn purge(&self, revision: RSlice<'_, FfiEntryRef<'_>>) -> RResult<(), FfiError> {
        guard(|| {
            let mut batch: Vec<Entry> = Vec::with_capacity(1);
            convert_all(revision.iter(), &mut batch)?;
            match &batch[..] {
                [one] => self.0.purge(one),
                _ => Err(StageError::new(
                    ErrorCode::Invalid,
                    format!("purge takes one revision, not {}", batch.len()),
                )),
            }
        })
    }

    fn migrate(&self, ids: RSlice<'_, FfiId>, shards: RSlice<'_, u32>) -> RResult<u64, FfiError> {
        guard(|| {
            let ids: Vec<EntryId> = ids.iter().map(EntryId::from).collect();
            self.0.migrate(&ids, shards.as_slice())
        })
    }

    fn locate(&self, ids: RSlice<'_, FfiId>, out: &mut RVec<u32>) -> RResult<(), FfiError> {
        guard(|| {
            let ids: Vec<EntryId> = ids.iter().map(EntryId::from).collect();
            let mut shards = Vec::with_capacity(ids.len());
            self.0.locate(&ids, &mut shards)?;
            out.extend(shards);
            Ok(())
        })
    }
}

impl<T: Router> FfiRouter for Exported<T> {
    fn route(
        &self,
        keys: RSlice<'_, u64>,
        shards: u32,
        out: &mut RVec<u32>,
    ) -> RResult<(), FfiError> {
        guard(|| {
            let mut routes = Vec::with_capacity(keys.len());
            self.0.route(keys.as_slice(), shards, &mut routes)?;
            out.extend(routes);
            Ok(())
        })
    }
}

/// Constructors of each stage's FFI object, named after the stages so that
/// [`export_plugin!`](crate::export_plugin) can pick them by the stage name it is given.
pub mod stages {
    use super::*;

    macro_rules! stage_ctor {
        ($stage:ident, $tr:ident, $boxed:ident, $to:ident) => {
            #[doc = concat!("The ", stringify!($stage), " stage.")]
            pub mod $stage {
                use super::*;

                /// The FFI object this stage's constructor returns.
                pub type Boxed = $boxed;

                /// Builds the stage from its config and the host's setup, catching panics.
                pub fn new<T: $tr + FromConfig + 'static>(
                    config: RStr<'_>,
                    setup: RStr<'_>,
                ) -> RResult<Boxed, FfiError> {
                    guard(|| {
                        construct::<T>(config, setup)
                            .map(|stage| $to::from_value(Exported(stage), TD_Opaque))
                    })
                }
            }
        };
    }

    stage_ctor!(cache, Cache, CacheBox, FfiCache_TO);
    stage_ctor!(generator, Generator, GeneratorBox, FfiGenerator_TO);
    stage_ctor!(validator, Validator, ValidatorBox, FfiValidator_TO);
    stage_ctor!(storage, Storage, StorageBox, FfiStorage_TO);
    stage_ctor!(router, Router, RouterBox, FfiRouter_TO);
}

/// A module with only the info function; [`export_plugin!`](crate::export_plugin) fills in the
/// constructors of the stages the plugin provides.
pub fn empty_module(info: extern "C" fn() -> PluginInfo) -> PluginMod {
    PluginMod {
        info,
        cache: None,
        generator: None,
        validator: None,
        storage: None,
        router: None,
    }
}

/// Makes the module `'static` for the host to read.
pub fn leak(module: PluginMod) -> PluginModRef {
    module.leak_into_prefix()
}

/// The plugin's info.
pub fn info(name: &str, version: &str) -> PluginInfo {
    PluginInfo {
        name: name.into(),
        version: version.into(),
    }
}

/// Exports a plugin library's root module: its name and the stage implementations it provides.
///
/// Each stage is given as `stage: Type`, where `stage` is one of `cache`, `generator`,
/// `validator`, `storage`, `router` and `Type` implements that stage's trait from
/// `registry_core` and [`registry_core::FromConfig`]. The crate must be built as a `cdylib`, and
/// a library exports exactly one root module.
///
/// The root module is exported by abi_stable's `#[export_root_module]`, which records the
/// module's type layout and this crate's version for the host's checks at load. Its expansion
/// names `::abi_stable::library` by absolute path; so that a plugin crate needs no dependency
/// on abi_stable (this crate is the only one that names it), the macro brings `registry_abi`
/// into the crate root under the name `abi_stable`, whose `library` module re-exports
/// abi_stable's. Hence two rules: invoke it at the crate root (an `extern crate` elsewhere does
/// not reach absolute paths), depend on this crate under its own name `registry_abi`, and do not
/// also depend on abi_stable itself (the two names would clash).
///
/// # Examples
/// ```ignore
/// registry_abi::export_plugin! {
///     name: "validator-strict",
///     validator: my_crate::StrictValidator,
/// }
/// ```
#[macro_export]
macro_rules! export_plugin {
    (name: $name:expr, $($stage:ident : $ty:ty),+ $(,)?) => {
        extern "C" fn __registry_plugin_info() -> $crate::PluginInfo {
            $crate::export::info($name, env!("CARGO_PKG_VERSION"))
        }

        fn __registry_plugin_root() -> $crate::PluginModRef {
            let mut module = $crate::export::empty_module(__registry_plugin_info);
            $(
                module.$stage = {
                    extern "C" fn ctor(
                        config: $crate::__private::RStr<'_>,
                        setup: $crate::__private::RStr<'_>,
                    ) -> $crate::__private::RResult<$crate::export::stages::$stage::Boxed, $crate::FfiError> {
                        $crate::export::stages::$stage::new::<$ty>(config, setup)
                    }
                    Some(ctor)
                };
            )+
            $crate::export::leak(module)
        }

        // See the macro's documentation: `#[export_root_module]` expands to `::abi_stable::…`.
        extern crate registry_abi as abi_stable;

        #[$crate::__private::export_root_module]
        fn __registry_plugin_module() -> $crate::PluginModRef {
            __registry_plugin_root()
        }
    };
}

#[cfg(test)]
mod tests;
