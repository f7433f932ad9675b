//! Stages linked into the program instead of loaded from a library: the `registry` binary's
//! built-in plugins, and the benchmarks' static builds.
//!
//! A linked stage is built as its plugin library would build it, from the same `[<stage>.config]`
//! table (JSON) and setup, with the same messages for a config its `Config` type rejects; and each
//! of its calls is run under the same guard as a call into a library ([`crate::export::guard`]),
//! so a panic in a linked stage is an error with code `Panic` for that call, as it is in a
//! library, rather than the end of the process. The guard costs a `catch_unwind` and two
//! thread-local writes per call, not per item; the panic hook is installed once.
//!
//! Which names are built in is the program's business (`registry-builtin` for the binary): this
//! module gives it the [`Builtin`] table entry and the wrappers.

use registry_core::{
    Cache, CacheKey, CacheStats, Draft, DraftRef, Entry, EntryId, EntryRef, ErrorCode, Fingerprint,
    FromConfig, Generator, Inserted, ListQuery, Meta, Prediction, PredictionRef, Problem,
    RawHeader, Request, RequestRef, Restored, Router, Sequence, Setup, StageError, StageKind,
    StageResult, Storage, TrainOptions, TrainReport, Validator,
};

use crate::load::{BuildError, BuiltStage};

/// A plugin linked into the program, as `library = "<name>"` names it.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    /// The plugin's name (`storage-redb`), the same as its library's.
    pub name: &'static str,
    /// The plugin's version (its crate's).
    pub version: &'static str,
    /// The stages it provides.
    pub stages: &'static [StageKind],
    /// Builds one of its stages from the stage's config table (JSON) and a setup, adding to
    /// the notes what a person should know that is not an error (a linked stage can say more
    /// than a library, which has no way to).
    pub build: fn(StageKind, &str, &Setup, &mut Vec<String>) -> Result<BuiltStage, BuildError>,
}

impl Builtin {
    /// Builds `stage`, or says which stages this plugin provides.
    ///
    /// # Errors
    /// [`BuildError::NotProvided`] for a stage it does not provide, [`BuildError::Start`] when
    /// the constructor fails or panics.
    pub fn build(
        &self,
        stage: StageKind,
        config_json: &str,
        setup: &Setup,
        notes: &mut Vec<String>,
    ) -> Result<BuiltStage, BuildError> {
        if !self.stages.contains(&stage) {
            return Err(BuildError::NotProvided {
                stage,
                provided: self.stages.to_vec(),
            });
        }
        (self.build)(stage, config_json, setup, notes)
    }
}

/// Runs one call of a linked stage: a panic becomes an error with code `Panic`, with the
/// panic's message and location, as it would inside a plugin library.
///
/// # Errors
/// What `f` returns, or the panic.
pub fn guarded<R>(f: impl FnOnce() -> StageResult<R>) -> StageResult<R> {
    crate::export::install_panic_hook();
    crate::export::guard(f)
        .into_result()
        .map_err(StageError::from)
}

/// Builds `T` from its config table (JSON) and a setup, as a library's constructor does: the
/// same message for a config its `Config` type rejects, and a panic caught.
///
/// # Errors
/// [`BuildError::Start`] with code `Config` for a rejected table, or what
/// [`FromConfig::from_config`] returns.
pub fn construct<T: FromConfig>(config_json: &str, setup: &Setup) -> Result<T, BuildError> {
    guarded(|| {
        let config: T::Config = serde_json::from_str(config_json)
            .map_err(|e| StageError::new(ErrorCode::Config, crate::export::config_message(&e)))?;
        T::from_config(config, setup)
    })
    .map_err(BuildError::Start)
}

/// A linked stage whose every call runs under [`guarded`].
#[derive(Debug)]
pub struct Guarded<T>(pub T);

/// Builds a linked stage of `kind` from `T`'s config table: `T` must implement that stage's
/// trait (the `$kind` arm names it).
#[macro_export]
macro_rules! linked_stage {
    (Cache, $t:ty, $config:expr, $setup:expr) => {
        $crate::linked::construct::<$t>($config, $setup)
            .map(|s| $crate::load::BuiltStage::Cache(Box::new($crate::linked::Guarded(s))))
    };
    (Generator, $t:ty, $config:expr, $setup:expr) => {
        $crate::linked::construct::<$t>($config, $setup)
            .map(|s| $crate::load::BuiltStage::Generator(Box::new($crate::linked::Guarded(s))))
    };
    (Validator, $t:ty, $config:expr, $setup:expr) => {
        $crate::linked::construct::<$t>($config, $setup)
            .map(|s| $crate::load::BuiltStage::Validator(Box::new($crate::linked::Guarded(s))))
    };
    (Storage, $t:ty, $config:expr, $setup:expr) => {
        $crate::linked::construct::<$t>($config, $setup)
            .map(|s| $crate::load::BuiltStage::Storage(Box::new($crate::linked::Guarded(s))))
    };
    (Router, $t:ty, $config:expr, $setup:expr) => {
        $crate::linked::construct::<$t>($config, $setup)
            .map(|s| $crate::load::BuiltStage::Router(Box::new($crate::linked::Guarded(s))))
    };
}

impl<T: Cache> Cache for Guarded<T> {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        guarded(|| self.0.get(keys, out))
    }
    fn get_shared(
        &self,
        keys: &[CacheKey],
        out: &mut Vec<Option<std::sync::Arc<Entry>>>,
    ) -> StageResult<()> {
        guarded(|| self.0.get_shared(keys, out))
    }
    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        guarded(|| self.0.put(entries))
    }
    fn put_owned(&self, entries: Vec<Entry>) -> StageResult<()> {
        guarded(|| self.0.put_owned(entries))
    }
    fn put_shared(&self, entries: &[std::sync::Arc<Entry>]) -> StageResult<()> {
        guarded(|| self.0.put_shared(entries))
    }
    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        guarded(|| self.0.remove(keys))
    }
    fn stats(&self) -> CacheStats {
        guarded(|| Ok(self.0.stats())).unwrap_or_default()
    }
}

impl<T: Generator> Generator for Guarded<T> {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        guarded(|| self.0.predict(requests, out))
    }
    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        guarded(|| self.0.render(drafts, out))
    }
    fn predict_each(
        &self,
        requests: &[Request],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        guarded(|| self.0.predict_each(requests, each))
    }
    fn predict_lent(
        &self,
        requests: &[RequestRef<'_>],
        each: &mut dyn FnMut(&PredictionRef<'_>),
    ) -> StageResult<()> {
        guarded(|| self.0.predict_lent(requests, each))
    }
    fn render_each(&self, drafts: &[Draft], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        guarded(|| self.0.render_each(drafts, each))
    }
    fn render_lent(&self, drafts: &[DraftRef<'_>], each: &mut dyn FnMut(&str)) -> StageResult<()> {
        guarded(|| self.0.render_lent(drafts, each))
    }
    fn train(&self, examples: &[Request], options: &TrainOptions) -> StageResult<TrainReport> {
        guarded(|| self.0.train(examples, options))
    }
}

impl<T: Validator> Validator for Guarded<T> {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        guarded(|| self.0.check_requests(requests, out))
    }
    fn check_requests_lent(
        &self,
        requests: &[RequestRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        guarded(|| self.0.check_requests_lent(requests, out))
    }
    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        guarded(|| self.0.check_entries(entries, out))
    }
    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()> {
        guarded(|| self.0.check_headers(headers, out))
    }
    fn check_built(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        guarded(|| self.0.check_built(entries, out))
    }
    fn check_built_lent(
        &self,
        entries: &[EntryRef<'_>],
        out: &mut Vec<Problem>,
    ) -> StageResult<()> {
        guarded(|| self.0.check_built_lent(entries, out))
    }
}

impl<T: Storage> Storage for Guarded<T> {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        guarded(|| self.0.find(fingerprints, out))
    }
    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        guarded(|| self.0.get(ids, out))
    }
    fn get_reusing(
        &self,
        ids: &[EntryId],
        out: &mut Vec<Option<Entry>>,
        spare: &mut Vec<Entry>,
    ) -> StageResult<()> {
        guarded(|| self.0.get_reusing(ids, out, spare))
    }
    fn get_lent(
        &self,
        ids: &[EntryId],
        spare: &mut Vec<Entry>,
        each: &mut dyn FnMut(&[Option<EntryRef<'_>>]) -> StageResult<()>,
    ) -> StageResult<()> {
        guarded(|| self.0.get_lent(ids, spare, each))
    }
    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        guarded(|| self.0.allocate(prefixes, out))
    }
    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        guarded(|| self.0.insert(entries, out))
    }
    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        guarded(|| self.0.update(entries, out))
    }
    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        guarded(|| self.0.history(id, out))
    }
    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        guarded(|| self.0.list(query, out))
    }
    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        guarded(|| self.0.restore(histories, out))
    }
    fn meta(&self, out: &mut Meta) -> StageResult<()> {
        guarded(|| self.0.meta(out))
    }
    fn set_meta(&self, changes: &Meta) -> StageResult<()> {
        guarded(|| self.0.set_meta(changes))
    }
    fn compact(&self) -> StageResult<u64> {
        guarded(|| self.0.compact())
    }
    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        guarded(|| self.0.place(ids, shards))
    }
    fn insert_placed(
        &self,
        entries: &[Entry],
        ids: &[EntryId],
        shards: &[u32],
        out: &mut Vec<Inserted>,
    ) -> StageResult<()> {
        guarded(|| self.0.insert_placed(entries, ids, shards, out))
    }
    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        guarded(|| self.0.locate(ids, out))
    }
    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        guarded(|| self.0.migrate(ids, shards))
    }
    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        guarded(|| self.0.sequences(raise, out))
    }
    fn backup(&self, dir: &str) -> StageResult<u64> {
        guarded(|| self.0.backup(dir))
    }
    fn purge(&self, revision: &Entry) -> StageResult<()> {
        guarded(|| self.0.purge(revision))
    }
    fn reindex(&self) -> StageResult<u64> {
        guarded(|| self.0.reindex())
    }
}

impl<T: Router> Router for Guarded<T> {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        guarded(|| self.0.route(keys, shards, out))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Panicking;

    impl Router for Panicking {
        fn route(&self, _: &[u64], _: u32, _: &mut Vec<u32>) -> StageResult<()> {
            panic!("a linked router breaks");
        }
    }

    #[test]
    fn a_panic_in_a_linked_stage_is_an_error_for_the_call() {
        let router = Guarded(Panicking);
        let mut out = Vec::new();
        let e = router.route(&[1], 2, &mut out).expect_err("panicked");
        assert_eq!(e.code, ErrorCode::Panic);
        assert!(e.message.starts_with("panicked at "), "{}", e.message);
        assert!(
            e.message.ends_with(": a linked router breaks"),
            "{}",
            e.message
        );
        // The stage is still there for the next call, which panics again the same way.
        assert!(router.route(&[1], 2, &mut out).is_err());
    }

    #[test]
    fn a_config_is_read_as_a_library_reads_it() {
        #[derive(Debug, serde::Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Config {
            #[allow(dead_code)]
            size: u32,
        }
        #[derive(Debug)]
        struct Sized;
        impl FromConfig for Sized {
            type Config = Config;
            fn from_config(_: Config, _: &Setup) -> StageResult<Sized> {
                Ok(Sized)
            }
        }
        let setup = Setup {
            schema: registry_core::Schema::default(),
            data_dir: std::path::PathBuf::new(),
            config_dir: std::path::PathBuf::new(),
            shard: 0,
            shards: 1,
            create: None,
        };
        assert!(construct::<Sized>(r#"{"size": 3}"#, &setup).is_ok());
        match construct::<Sized>(r#"{"size": "secret-token"}"#, &setup) {
            Err(BuildError::Start(e)) => {
                assert_eq!(e.code, ErrorCode::Config);
                assert!(!e.message.contains("secret-token"), "{}", e.message);
            }
            other => panic!("{other:?}"),
        }
    }
}
