//! The suites catch broken implementations: each case breaks one rule of a reference double and
//! checks that its suite fails naming that rule. A suite that passed everything would be no
//! suite at all.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::atomic::{AtomicU64, Ordering};

use registry_core::{
    Cache, CacheKey, Draft, Entry, EntryId, EntryRef, FromConfig, Generator, Guess, Inserted,
    ListQuery, Prediction, Problem, Request, Router, Schema, Setup, Source, StageResult, Storage,
    Validator,
};
use registry_testkit::memory::{
    KeywordlessGenerator, MemoryCache, MemoryStorage, ModuloRouter, NoConfig, SchemaOnlyValidator,
};
use registry_testkit::{cache, generator, router, storage, validator};

/// Runs a suite and checks it fails with a message containing `rule`.
fn fails_with(rule: &str, suite: impl FnOnce()) {
    let payload = catch_unwind(AssertUnwindSafe(suite))
        .expect_err("the suite passed a broken implementation");
    let message = payload
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        .unwrap_or_default();
    assert!(
        message.contains("contract broken") && message.contains(rule),
        "expected a failure naming {rule:?}, got {message:?}"
    );
}

/// A memory storage with `list` overridden, and `get_lent` as `lends` says.
struct Broken<F> {
    inner: MemoryStorage,
    list: F,
    lends: Lends,
}

/// How a [`Broken`] storage lends what it gets.
#[derive(Clone, Copy, PartialEq)]
enum Lends {
    Faithfully,
    /// Each entry with another's title.
    Shuffled,
    /// Twice in one call.
    Twice,
}

impl<F> Storage for Broken<F>
where
    F: Fn(&MemoryStorage, &ListQuery, &mut Vec<Entry>) -> StageResult<()> + Send + Sync,
{
    fn find(
        &self,
        fps: &[registry_core::Fingerprint],
        out: &mut Vec<Option<Entry>>,
    ) -> StageResult<()> {
        self.inner.find(fps, out)
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.inner.get(ids, out)
    }
    fn get_lent(
        &self,
        ids: &[EntryId],
        _spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        let mut found = Vec::new();
        self.inner.get(ids, &mut found)?;
        let mut views: Vec<Option<EntryRef<'_>>> = found
            .iter()
            .map(|e| e.as_ref().map(EntryRef::from))
            .collect();
        match self.lends {
            Lends::Faithfully => each(&views),
            Lends::Shuffled => {
                let titles: Vec<&str> = views.iter().flatten().map(|v| v.title).collect();
                for (i, v) in views.iter_mut().flatten().enumerate() {
                    v.title = titles[(i + 1) % titles.len()];
                }
                each(&views)
            }
            Lends::Twice => {
                each(&views)?;
                each(&views)
            }
        }
    }
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        self.inner.allocate(prefixes, out)
    }
    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        self.inner.insert(entries, out)
    }
    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        self.inner.update(entries, out)
    }
    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        self.inner.history(id, out)
    }
    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        (self.list)(&self.inner, query, out)
    }
}

fn shared(setup: &Setup) -> MemoryStorage {
    MemoryStorage::from_config(NoConfig {}, setup).expect("the suite gives valid shards")
}

#[test]
fn storage_that_forgets_on_reopen() {
    fails_with("never handed out twice", || {
        storage::check(&|_setup| Ok(Box::new(MemoryStorage::default())));
    });
}

#[test]
fn storage_that_ignores_its_shard() {
    // Numbering densely, it allocates where only shard 0 may.
    fails_with("shard 0 numbers every id", || {
        storage::check(&|setup| {
            let one = Setup {
                shard: 0,
                shards: 1,
                ..setup.clone()
            };
            Ok(Box::new(shared(&one)))
        });
    });
    // Numbering interleaved, it hands out another shard's numbers.
    fails_with("(n - 1) % 3 == 2", || {
        storage::check(&|setup| {
            let one = Setup {
                shard: 0,
                shards: 1,
                ..setup.clone()
            };
            Ok(Box::new(shared(&one).into_interleaved()))
        });
    });
}

#[test]
fn storage_that_forgets_where_entries_are() {
    fails_with("locate must give the shard place recorded", || {
        storage::check(&|setup| {
            Ok(Box::new(Placeless {
                inner: shared(setup),
            }))
        });
    });
}

/// A memory storage whose `place` records nothing.
struct Placeless {
    inner: MemoryStorage,
}

impl Storage for Placeless {
    fn find(
        &self,
        fps: &[registry_core::Fingerprint],
        out: &mut Vec<Option<Entry>>,
    ) -> StageResult<()> {
        self.inner.find(fps, out)
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.inner.get(ids, out)
    }
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        self.inner.allocate(prefixes, out)
    }
    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        self.inner.insert(entries, out)
    }
    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        self.inner.update(entries, out)
    }
    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        self.inner.history(id, out)
    }
    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        self.inner.list(query, out)
    }
    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<registry_core::Restored>>,
    ) -> StageResult<()> {
        self.inner.restore(histories, out)
    }
    fn meta(&self, out: &mut registry_core::Meta) -> StageResult<()> {
        self.inner.meta(out)
    }
    fn set_meta(&self, changes: &registry_core::Meta) -> StageResult<()> {
        self.inner.set_meta(changes)
    }
    fn place(&self, ids: &[EntryId], _: &[u32]) -> StageResult<()> {
        // Checks its caller, as the real one does, and forgets.
        self.inner.locate(ids, &mut Vec::new())
    }
    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        self.inner.locate(ids, out)
    }
}

#[test]
fn storage_that_clears_the_output() {
    fails_with("keep what it held", || {
        storage::check(&|setup| {
            Ok(Box::new(Broken {
                inner: shared(setup),
                lends: Lends::Faithfully,
                list: |s: &MemoryStorage, q: &ListQuery, out: &mut Vec<Entry>| {
                    out.clear();
                    s.list(q, out)
                },
            }))
        });
    });
}

#[test]
fn storage_that_lends_other_than_it_gets() {
    for (lends, rule) in [
        (Lends::Shuffled, "get_lent must lend what get answers"),
        (Lends::Twice, "exactly once per call"),
    ] {
        fails_with(rule, || {
            storage::check(&|setup| {
                Ok(Box::new(Broken {
                    inner: shared(setup),
                    lends,
                    list: |s: &MemoryStorage, q: &ListQuery, out: &mut Vec<Entry>| s.list(q, out),
                }))
            });
        });
    }
}

#[test]
fn storage_that_reads_limit_0_as_no_limit() {
    fails_with("nothing when `limit` is 0", || {
        storage::check(&|setup| {
            Ok(Box::new(Broken {
                inner: shared(setup),
                lends: Lends::Faithfully,
                list: |s: &MemoryStorage, q: &ListQuery, out: &mut Vec<Entry>| {
                    let mut q = q.clone();
                    if q.limit == 0 {
                        q.limit = usize::MAX;
                    }
                    s.list(&q, out)
                },
            }))
        });
    });
}

/// Caches entries under their id only.
struct IdOnlyCache(MemoryCache);

impl Cache for IdOnlyCache {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        self.0.get(keys, out)
    }
    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        self.0.put(entries)?;
        let fps: Vec<CacheKey> = entries
            .iter()
            .map(|e| CacheKey::of_fingerprint(&e.fingerprint))
            .collect();
        self.0.remove(&fps)
    }
    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        self.0.remove(keys)
    }
}

#[test]
fn cache_that_ignores_fingerprints() {
    fails_with("by its fingerprint key", || {
        cache::check(&|| Box::new(IdOnlyCache(MemoryCache::new())));
    });
}

/// Routes through the modulo router, then breaks the result.
struct BadRouter<F>(F);

impl<F: Fn(u32, u32) -> u32 + Send + Sync> Router for BadRouter<F> {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        let start = out.len();
        ModuloRouter.route(keys, shards, out)?;
        for s in &mut out[start..] {
            *s = (self.0)(*s, shards);
        }
        Ok(())
    }
}

#[test]
fn router_out_of_range() {
    fails_with("shards are in 0..", || {
        router::check(&BadRouter(|s, shards| if shards > 3 { shards } else { s }));
    });
}

/// Shifts every key by one shard on every other call.
struct FlipFlopRouter(AtomicU64);

impl Router for FlipFlopRouter {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        let shift = self.0.fetch_add(1, Ordering::Relaxed) % 2 == 1;
        BadRouter(|s, k| if shift { (s + 1) % k } else { s }).route(keys, shards, out)
    }
}

#[test]
fn router_that_changes_its_mind() {
    fails_with("same shards when asked again", || {
        router::check(&FlipFlopRouter(AtomicU64::new(0)));
    });
}

#[test]
fn router_that_uses_one_shard() {
    fails_with("spread", || router::check(&BadRouter(|_, _| 0)));
}

/// Renders with a counter in the config, and predicts an undeclared scope when asked to.
struct BadGenerator {
    renders: AtomicU64,
    predict_junk: bool,
}

impl Generator for BadGenerator {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        for _ in requests {
            let mut p = Prediction::default();
            if self.predict_junk {
                p.scope = Some(Guess {
                    value: "NOWHERE".into(),
                    confidence: Some(0.9),
                    source: Source::Model,
                });
            }
            out.push(p);
        }
        Ok(())
    }
    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        let start = out.len();
        KeywordlessGenerator.render(drafts, out)?;
        if !self.predict_junk {
            for config in &mut out[start..] {
                let n = self.renders.fetch_add(1, Ordering::Relaxed);
                config.push_str(&format!("rendered: {n}\n"));
            }
        }
        Ok(())
    }
}

#[test]
fn generator_that_renders_differently_each_time() {
    let bad = BadGenerator {
        renders: AtomicU64::new(0),
        predict_junk: false,
    };
    fails_with("same bytes", || generator::check(&bad, &Schema::default()));
}

#[test]
fn generator_that_proposes_undeclared_values() {
    let bad = BadGenerator {
        renders: AtomicU64::new(0),
        predict_junk: true,
    };
    fails_with("values the schema declares", || {
        generator::check(&bad, &Schema::default());
    });
}

/// Accepts everything, or reports the reference validator's problems against item 0.
struct BadValidator {
    misplace: bool,
}

impl Validator for BadValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        if self.misplace {
            let start = out.len();
            SchemaOnlyValidator::default().check_requests(requests, out)?;
            out[start..].iter_mut().for_each(|p| p.item = 0);
        }
        Ok(())
    }
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        SchemaOnlyValidator::default().check_entries(entries, out)
    }
    fn check_headers(
        &self,
        headers: &[registry_core::RawHeader],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        SchemaOnlyValidator::default().check_headers(headers, out)
    }
}

#[test]
fn validator_that_accepts_everything() {
    fails_with("must report an error on field `scope`", || {
        validator::check(&BadValidator { misplace: false }, &Schema::default());
    });
}

/// Checks requests 128 at a time and numbers each part's problems from 0, as a plugin boundary
/// that lent a batch in parts did.
struct PartedValidator;

impl Validator for PartedValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        for part in requests.chunks(128) {
            SchemaOnlyValidator::default().check_requests(part, out)?;
        }
        Ok(())
    }
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        SchemaOnlyValidator::default().check_entries(entries, out)
    }
    fn check_headers(
        &self,
        headers: &[registry_core::RawHeader],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        SchemaOnlyValidator::default().check_headers(headers, out)
    }
}

/// Checks entries as the schema-only validator does, but lets every lent one pass.
struct BlindToViews;

impl Validator for BlindToViews {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        SchemaOnlyValidator::default().check_requests(requests, out)
    }
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        SchemaOnlyValidator::default().check_entries(entries, out)
    }
    fn check_headers(
        &self,
        headers: &[registry_core::RawHeader],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        SchemaOnlyValidator::default().check_headers(headers, out)
    }
    fn check_built_lent(&self, _: &[EntryRef<'_>], _: &mut Vec<Problem>) -> StageResult<()> {
        Ok(())
    }
}

#[test]
fn validator_that_passes_lent_entries_unchecked() {
    fails_with("check_built_lent of a batch of 8 entries", || {
        validator::check(&BlindToViews, &Schema::default());
    });
}

#[test]
fn validator_that_numbers_problems_within_parts() {
    fails_with("its index in the whole batch", || {
        validator::check(&PartedValidator, &Schema::default());
    });
}

#[test]
fn validator_that_misplaces_problems() {
    fails_with("must accept item 0", || {
        validator::check(&BadValidator { misplace: true }, &Schema::default());
    });
}
