//! The plugin interface: one FFI-safe object per stage and the root module a library exports.
//!
//! # Evolution
//! The root module and every stage object are prefix types: fields and methods may be appended
//! after the `#[sabi(last_prefix_field)]` marker in a minor release (a patch one while below
//! 1.0). abi_stable's layout check lets a library have more trailing fields than the host knows,
//! never fewer: a plugin built against the newer release loads on an older host, and a plugin
//! built against an older release is refused by a newer host with "rebuild the plugin" (measured
//! both ways between 0.7.2 and 0.7.3; PLUGINS.md, "ABI version policy"). Removing, reordering or
//! changing a field or method is a breaking change: it requires a new major version (a new minor
//! while below 1.0) of this crate.
//!
//! # Ownership across the boundary
//! What the host sends is borrowed for the call: entries, requests and drafts arrive as views
//! ([`FfiEntryRef`], [`FfiRequestRef`], [`FfiDraftRef`]) into the host's own values, which the
//! plugin copies once into the owned core values its trait takes. What the plugin returns is
//! owned and pushed onto the host's `RVec`, but for the entries of a cache or storage `get` and
//! a generator's predictions and configs: those the plugin lends ([`FfiEntrySink`],
//! [`FfiPredictionSink`], [`FfiConfigSink`]), views into its own values for the length of the
//! call, which the host copies once. Returning them owned cost a copy on each side: a loaded
//! cache hit took 2.1 times a built-in one (`cargo xtask bench --quick`, `cache/get_hit`).
//!
//! The plugin side keeps its owned copies of a batch's requests and drafts between calls, per
//! thread, and refills them from the next batch's views, so that copying them allocates nothing
//! once a thread has seen a batch as large.

use abi_stable::library::RootModule;
use abi_stable::sabi_types::RMut;
use abi_stable::sabi_types::VersionStrings;
use abi_stable::std_types::{RBox, ROption, RResult, RSlice, RStr, RString, RVec};
use abi_stable::{StableAbi, declare_root_module_statics, package_version_strings, sabi_trait};
use registry_core::EntryId;

use crate::ffi::{
    FfiCacheStats, FfiDraftRef, FfiEntry, FfiEntryRef, FfiError, FfiId, FfiIdRef, FfiInserted,
    FfiKey, FfiListQuery, FfiPrediction, FfiPredictionRef, FfiProblem, FfiRawHeader, FfiRequestRef,
    lend_owned, owned_prediction_view,
};

/// What a plugin lends the host for the length of one call: views into the plugin's own
/// entries, one per key or id asked for (`None` where there is none), valid only while
/// `receive` runs. The host copies what it keeps, once.
#[sabi_trait]
pub trait FfiEntrySink {
    #[sabi(last_prefix_field)]
    fn receive(&mut self, entries: RSlice<'_, ROption<FfiEntryRef<'_>>>) -> RResult<(), FfiError>;
}

/// The host's receiver of lent entries, as a plugin gets it.
pub type EntrySink<'a> = FfiEntrySink_TO<'a, RMut<'a, ()>>;

/// What a generator lends the host: one call per request, in request order, with views into
/// the generator's own values (its model's classes, its rules' values), valid only while
/// `receive` runs. The host copies each value once.
#[sabi_trait]
pub trait FfiPredictionSink {
    #[sabi(last_prefix_field)]
    fn receive(&mut self, prediction: &FfiPredictionRef<'_>);
}

/// The host's receiver of lent predictions, as a plugin gets it.
pub type PredictionSink<'a> = FfiPredictionSink_TO<'a, RMut<'a, ()>>;

/// What a generator lends the host: one call per draft, in draft order, with the config it
/// rendered, valid only while `receive` runs. The host copies each config once.
#[sabi_trait]
pub trait FfiConfigSink {
    #[sabi(last_prefix_field)]
    fn receive(&mut self, config: RStr<'_>);
}

/// The host's receiver of lent configs, as a plugin gets it.
pub type ConfigSink<'a> = FfiConfigSink_TO<'a, RMut<'a, ()>>;

/// The cache stage across the boundary; mirrors `registry_core::Cache`.
#[sabi_trait]
pub trait FfiCache: Send + Sync {
    fn get(
        &self,
        keys: RSlice<'_, FfiKey>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError>;
    fn put(&self, entries: RSlice<'_, FfiEntryRef<'_>>) -> RResult<(), FfiError>;
    fn remove(&self, keys: RSlice<'_, FfiKey>) -> RResult<(), FfiError>;
    #[sabi(last_prefix_field)]
    fn stats(&self) -> FfiCacheStats;
    /// `Cache::get`, the hits lent to `sink` rather than returned as owned copies (added in
    /// 0.7.2). The default body gets the hits through `get` and lends those.
    fn get_lent(&self, keys: RSlice<'_, FfiKey>, sink: EntrySink<'_>) -> RResult<(), FfiError> {
        let mut found = RVec::with_capacity(keys.len());
        let got = self.get(keys, &mut found);
        lend_owned(got, found, sink)
    }
}

/// The generator stage across the boundary; mirrors `registry_core::Generator`.
#[sabi_trait]
pub trait FfiGenerator: Send + Sync {
    fn predict(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        out: &mut RVec<FfiPrediction>,
    ) -> RResult<(), FfiError>;
    #[sabi(last_prefix_field)]
    fn render(
        &self,
        drafts: RSlice<'_, FfiDraftRef<'_>>,
        out: &mut RVec<RString>,
    ) -> RResult<(), FfiError>;
    /// `Generator::train`, with the options and the report as JSON: training is rare and its
    /// report small, and JSON lets both grow without a layout change.
    fn train(
        &self,
        examples: RSlice<'_, FfiRequestRef<'_>>,
        options: RStr<'_>,
    ) -> RResult<RString, FfiError>;
    /// `Generator::predict_each`: the predictions lent to `sink` rather than returned as owned
    /// copies (added in 0.7.3). The default body predicts with `predict` and lends those.
    fn predict_lent(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        mut sink: PredictionSink<'_>,
    ) -> RResult<(), FfiError> {
        let mut predictions = RVec::with_capacity(requests.len());
        if let RResult::RErr(e) = self.predict(requests, &mut predictions) {
            return RResult::RErr(e);
        }
        for p in &predictions {
            sink.receive(&owned_prediction_view(p));
        }
        RResult::ROk(())
    }
    /// `Generator::render_each`: the configs lent to `sink` rather than returned as owned
    /// copies (added in 0.7.3). The default body renders with `render` and lends those.
    fn render_lent(
        &self,
        drafts: RSlice<'_, FfiDraftRef<'_>>,
        mut sink: ConfigSink<'_>,
    ) -> RResult<(), FfiError> {
        let mut configs = RVec::with_capacity(drafts.len());
        if let RResult::RErr(e) = self.render(drafts, &mut configs) {
            return RResult::RErr(e);
        }
        for c in &configs {
            sink.receive(c.as_rstr());
        }
        RResult::ROk(())
    }
}

/// The validator stage across the boundary; mirrors `registry_core::Validator`.
#[sabi_trait]
pub trait FfiValidator: Send + Sync {
    fn check_requests(
        &self,
        requests: RSlice<'_, FfiRequestRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError>;
    #[sabi(last_prefix_field)]
    fn check_entries(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError>;
    fn check_headers(
        &self,
        headers: RSlice<'_, FfiRawHeader>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError>;
    /// `Validator::check_built` (added in 0.7.1). The default body is `check_entries`.
    fn check_built(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiProblem>,
    ) -> RResult<(), FfiError> {
        self.check_entries(entries, out)
    }
}

/// The storage stage across the boundary; mirrors `registry_core::Storage`.
#[sabi_trait]
pub trait FfiStorage: Send + Sync {
    fn find(
        &self,
        fingerprints: RSlice<'_, [u8; 16]>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError>;
    fn get(
        &self,
        ids: RSlice<'_, FfiId>,
        out: &mut RVec<ROption<FfiEntry>>,
    ) -> RResult<(), FfiError>;
    fn allocate(&self, prefixes: RSlice<'_, RString>, out: &mut RVec<u64>)
    -> RResult<(), FfiError>;
    fn insert(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError>;
    fn update(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        out: &mut RVec<RResult<(), FfiError>>,
    ) -> RResult<(), FfiError>;
    fn history(&self, id: &FfiId, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError>;
    #[sabi(last_prefix_field)]
    fn list(&self, query: &FfiListQuery, out: &mut RVec<FfiEntry>) -> RResult<(), FfiError>;
    /// `Storage::restore`; each outcome is `true` for created, `false` for unchanged.
    fn restore(
        &self,
        histories: RSlice<'_, RSlice<'_, FfiEntryRef<'_>>>,
        out: &mut RVec<RResult<bool, FfiError>>,
    ) -> RResult<(), FfiError>;
    /// `Storage::meta`, as a JSON object of strings (rare, small: JSON keeps it free to grow).
    fn meta(&self) -> RResult<RString, FfiError>;
    /// `Storage::set_meta`, with the changes as a JSON object of strings.
    fn set_meta(&self, changes: RStr<'_>) -> RResult<(), FfiError>;
    /// `Storage::compact`.
    fn compact(&self) -> RResult<u64, FfiError>;
    /// `Storage::place`.
    fn place(&self, ids: RSlice<'_, FfiId>, shards: RSlice<'_, u32>) -> RResult<(), FfiError>;
    /// `Storage::locate`.
    fn locate(&self, ids: RSlice<'_, FfiId>, out: &mut RVec<u32>) -> RResult<(), FfiError>;
    /// `Storage::migrate`.
    fn migrate(&self, ids: RSlice<'_, FfiId>, shards: RSlice<'_, u32>) -> RResult<u64, FfiError>;
    /// `Storage::reindex`.
    fn reindex(&self) -> RResult<u64, FfiError>;
    /// `Storage::sequences`: each sequence as an id, its prefix and its last number.
    fn sequences(&self, raise: RSlice<'_, FfiId>, out: &mut RVec<FfiId>) -> RResult<(), FfiError>;
    /// `Storage::backup`.
    fn backup(&self, dir: RStr<'_>) -> RResult<u64, FfiError>;
    /// `Storage::purge`: one revision, as a batch of one so it crosses as the others do.
    fn purge(&self, revision: RSlice<'_, FfiEntryRef<'_>>) -> RResult<(), FfiError>;
    /// `Storage::insert_placed`.
    fn insert_placed(
        &self,
        entries: RSlice<'_, FfiEntryRef<'_>>,
        ids: RSlice<'_, FfiId>,
        shards: RSlice<'_, u32>,
        out: &mut RVec<FfiInserted>,
    ) -> RResult<(), FfiError>;
    /// `Storage::get` of borrowed ids, the entries lent to `sink` rather than returned as owned
    /// copies (added in 0.7.2). The default body gets them through `get` and lends those.
    fn get_lent(
        &self,
        ids: RSlice<'_, FfiIdRef<'_>>,
        sink: EntrySink<'_>,
    ) -> RResult<(), FfiError> {
        let owned: Vec<FfiId> = ids
            .iter()
            .map(|id| FfiId::from(&EntryId::from(id)))
            .collect();
        let mut found = RVec::with_capacity(ids.len());
        let got = self.get(RSlice::from_slice(&owned), &mut found);
        lend_owned(got, found, sink)
    }
}

/// The router stage across the boundary; mirrors `registry_core::Router`.
#[sabi_trait]
pub trait FfiRouter: Send + Sync {
    #[sabi(last_prefix_field)]
    fn route(
        &self,
        keys: RSlice<'_, u64>,
        shards: u32,
        out: &mut RVec<u32>,
    ) -> RResult<(), FfiError>;
}

pub type CacheBox = FfiCache_TO<'static, RBox<()>>;
pub type GeneratorBox = FfiGenerator_TO<'static, RBox<()>>;
pub type ValidatorBox = FfiValidator_TO<'static, RBox<()>>;
pub type StorageBox = FfiStorage_TO<'static, RBox<()>>;
pub type RouterBox = FfiRouter_TO<'static, RBox<()>>;

/// The plugin's name and version, shown by `registry plugins`.
#[repr(C)]
#[derive(StableAbi, Debug, Clone)]
pub struct PluginInfo {
    pub name: RString,
    pub version: RString,
}

/// The root module every plugin library exports: its info and a constructor for each stage it
/// provides (`None` for the others), so one library may provide several stages. A constructor
/// takes the stage's `[<stage>.config]` table and the host's `Setup`, both as JSON.
#[repr(C)]
#[derive(StableAbi)]
#[sabi(kind(Prefix(prefix_ref = PluginModRef)))]
pub struct PluginMod {
    #[sabi(last_prefix_field)]
    pub info: extern "C" fn() -> PluginInfo,
    pub cache: Option<extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<CacheBox, FfiError>>,
    pub generator: Option<extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<GeneratorBox, FfiError>>,
    pub validator: Option<extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<ValidatorBox, FfiError>>,
    pub storage: Option<extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<StorageBox, FfiError>>,
    pub router: Option<extern "C" fn(RStr<'_>, RStr<'_>) -> RResult<RouterBox, FfiError>>,
}

impl RootModule for PluginModRef {
    declare_root_module_statics! {PluginModRef}
    const BASE_NAME: &'static str = "registry_plugin";
    const NAME: &'static str = "registry plugin";
    const VERSION_STRINGS: VersionStrings = package_version_strings!();
}

/// The version of this interface crate, which a plugin must be compatible with to load.
pub const ABI_VERSION: &str = env!("CARGO_PKG_VERSION");
