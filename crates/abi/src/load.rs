//! The host side: finds plugin libraries, loads and checks them, builds the stages and adapts
//! the FFI objects back to the plain `registry_core` traits.
//!
//! Libraries are loaded once and never unloaded: stage objects and the strings they hand out
//! point into the library's code, and unloading a library that spawned threads or registered
//! thread-locals is unsound in general.

use std::fmt;
use std::path::{Path, PathBuf};

use abi_stable::library::{LibraryError, RootModule, lib_header_from_path};
use abi_stable::sabi_trait::TD_Opaque;
use abi_stable::std_types::{ROption, RResult, RSlice, RStr, RString, RVec};
use registry_core::layout;
use registry_core::{
    Cache, CacheKey, CacheStats, Draft, Entry, EntryId, ErrorCode, Fingerprint, Generator,
    Inserted, ListQuery, Prediction, Problem, RawHeader, Request, Restored, Router, Sequence,
    Setup, StageError, StageKind, StageResult, Storage, TrainOptions, TrainReport, Validator,
};

pub use crate::trust::{Refusal, Trust};

use crate::ffi::{
    FfiEntry, FfiEntryRef, FfiError, FfiId, FfiIdRef, FfiKey, FfiListQuery, FfiPredictionRef,
    FfiRawHeader, convert_all, prediction_from_view, restored_from_ffi, with_draft_views,
    with_entry_views, with_history_views, with_request_views, with_views_of,
};
use crate::module::{
    CacheBox, EntrySink, FfiConfigSink, FfiConfigSink_TO, FfiEntrySink, FfiEntrySink_TO,
    FfiPredictionSink, FfiPredictionSink_TO, GeneratorBox, PluginInfo, PluginModRef, RouterBox,
    StorageBox, ValidatorBox,
};

/// Which library provides a stage, and the stage's config table as JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageSpec {
    pub stage: StageKind,
    /// A plugin built into the program (`storage-redb`), a library's file name
    /// (`libstorage_redb.so`, in the plugin directory) or its path; see [`library`].
    pub library: String,
    /// The `[<stage>.config]` table, as a JSON object.
    pub config_json: String,
}

/// Where libraries are looked up, and where they may be loaded from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SearchPaths {
    /// Where library file names resolve.
    pub plugin_dir: PathBuf,
    /// What relative library paths are relative to (the directory of `registry.toml`).
    pub base_dir: PathBuf,
    /// Which libraries may be loaded: [`open_trusted`] checks every library against it first.
    pub trust: Trust,
}

/// What a `library = "…"` value names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Library {
    /// A plugin linked into the program, by its name (`storage-redb`). No file can stand in for
    /// it: a name never resolves to a file.
    Builtin(String),
    /// A plugin library file, resolved to its path.
    File(PathBuf),
}

/// What a `library = "…"` value names:
/// - a value with a path separator is a path, relative to `paths.base_dir` (the directory of
///   `registry.toml`) unless absolute: `./libmine.so`, `plugins/libmine.so`;
/// - a file name with the platform's library suffix (`libstorage_redb.so` on Linux) is a
///   library in `paths.plugin_dir`;
/// - anything else names a plugin built into the program (`storage-redb`), whether or not
///   there is one by that name (the caller says which there are).
pub fn library(value: &str, paths: &SearchPaths) -> Library {
    let is_path = value.contains('/') || value.contains(std::path::MAIN_SEPARATOR);
    if is_path {
        let p = Path::new(value);
        Library::File(if p.is_absolute() {
            p.to_owned()
        } else {
            paths.base_dir.join(p)
        })
    } else if value.ends_with(std::env::consts::DLL_SUFFIX) {
        Library::File(paths.plugin_dir.join(value))
    } else {
        Library::Builtin(value.to_owned())
    }
}

/// The file name of plugin `name`'s library on this platform: `storage-redb` is
/// `libstorage_redb.so` on Linux.
pub fn library_file_name(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Why a stage could not be loaded: what kind of failure (one per row of PLUGINS.md's table of
/// load errors), and the loader's full report when there is one (shown with `--verbose`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadError {
    pub stage: StageKind,
    /// The library; empty for a stage linked into the program.
    pub path: PathBuf,
    pub kind: LoadErrorKind,
    pub detail: Option<String>,
}

/// The kinds of [`LoadError`]. Their `Display` is the one-line reason.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LoadErrorKind {
    /// No file at the resolved path.
    NotFound,
    /// A FIFO, a device or a directory is named as the library.
    NotAFile,
    /// The library's path cannot be resolved or its metadata read (it vanished or changed
    /// while being checked, or a directory on the way cannot be searched).
    Unreadable(String),
    /// The trust policy refuses the library: it is outside the registry's own plugin directory
    /// and every trusted path ([`crate::trust`]).
    Untrusted(String),
    /// The trust policy refuses the library: someone other than the user (or root) could change
    /// it or a directory leading to it.
    Unsafe(String),
    /// The system loader refused the file (not a shared library, another architecture, a
    /// missing dependency).
    NotALibrary(String),
    /// A shared library without a plugin root module.
    NotAPlugin,
    /// A plugin built against a `registry-abi` version this host cannot use.
    IncompatibleVersion { plugin: String, host: String },
    /// A plugin built against a `registry-abi` whose types differ from this host's; `plugin` is
    /// the version it was built against, when that is not the host's.
    IncompatibleLayout { plugin: Option<String> },
    /// A plugin built with another abi_stable, or another Rust C ABI.
    IncompatibleAbi,
    /// The library's root module failed to initialize.
    InitFailed(String),
    /// The library's version strings are not a version.
    UnreadableVersion(String),
    /// Several failures the loader found together.
    Several(Vec<LoadErrorKind>),
    /// A plugin, but not for this stage.
    NotProvided { provided: Vec<StageKind> },
    /// The stage's constructor returned an error or panicked (code `Panic`).
    Start(StageError),
    /// The storage could not open the registry (see [`registry_core::layout`]).
    Registry(layout::OpenError),
    /// No library is configured for the stage.
    NotConfigured,
    /// A name that is neither a plugin built into the program nor a library file.
    NoSuchBuiltin { name: String, builtin: Vec<String> },
}

/// How every reason that calls for a rebuild ends.
const REBUILD: &str = "rebuild the plugin";

impl LoadErrorKind {
    /// The variant's name, as the table of load errors in PLUGINS.md gives it.
    pub fn name(&self) -> &'static str {
        match self {
            LoadErrorKind::NotFound => "NotFound",
            LoadErrorKind::NotAFile => "NotAFile",
            LoadErrorKind::Unreadable(_) => "Unreadable",
            LoadErrorKind::Untrusted(_) => "Untrusted",
            LoadErrorKind::Unsafe(_) => "Unsafe",
            LoadErrorKind::NotALibrary(_) => "NotALibrary",
            LoadErrorKind::NotAPlugin => "NotAPlugin",
            LoadErrorKind::IncompatibleVersion { .. } => "IncompatibleVersion",
            LoadErrorKind::IncompatibleLayout { .. } => "IncompatibleLayout",
            LoadErrorKind::IncompatibleAbi => "IncompatibleAbi",
            LoadErrorKind::InitFailed(_) => "InitFailed",
            LoadErrorKind::UnreadableVersion(_) => "UnreadableVersion",
            LoadErrorKind::Several(_) => "Several",
            LoadErrorKind::NotProvided { .. } => "NotProvided",
            LoadErrorKind::Start(_) => "Start",
            LoadErrorKind::Registry(_) => "Registry",
            LoadErrorKind::NotConfigured => "NotConfigured",
            LoadErrorKind::NoSuchBuiltin { .. } => "NoSuchBuiltin",
        }
    }

    /// Whether the library is a plugin built against an interface this host cannot use (another
    /// `registry-abi` version, other layouts, another abi_stable): rebuilding it against this
    /// host's `registry-abi` is the fix.
    pub fn needs_rebuild(&self) -> bool {
        match self {
            LoadErrorKind::IncompatibleVersion { .. }
            | LoadErrorKind::IncompatibleLayout { .. }
            | LoadErrorKind::IncompatibleAbi => true,
            LoadErrorKind::Several(all) => all.iter().any(LoadErrorKind::needs_rebuild),
            _ => false,
        }
    }

    /// The reason, for the given stage (a missing stage names it).
    fn reason(&self, stage: StageKind) -> String {
        match self {
            LoadErrorKind::NotFound => "library not found (build the plugins with `cargo build \
                 --workspace`, or fix `library` in registry.toml)"
                .to_owned(),
            LoadErrorKind::NotAFile => "not a regular file, so it is not a library".to_owned(),
            LoadErrorKind::Untrusted(why)
            | LoadErrorKind::Unsafe(why)
            | LoadErrorKind::Unreadable(why) => why.clone(),
            LoadErrorKind::NotALibrary(err) => format!("not a loadable library: {err}"),
            LoadErrorKind::NotAPlugin => {
                "not a registry plugin: the library exports no plugin root module".to_owned()
            }
            LoadErrorKind::IncompatibleVersion { plugin, host } => {
                format!("built against registry-abi {plugin}, host expects {host}: {REBUILD}")
            }
            LoadErrorKind::IncompatibleLayout { plugin: None } => format!(
                "built against an incompatible registry-abi (its types differ from this host's \
                 {}): {REBUILD}",
                crate::ABI_VERSION
            ),
            LoadErrorKind::IncompatibleLayout {
                plugin: Some(plugin),
            } => format!(
                "built against registry-abi {plugin}, whose types differ from this host's {} (a \
                 host loads plugins built against its own release of the interface or a later \
                 one with the same minor version, never an earlier one): {REBUILD}",
                crate::ABI_VERSION
            ),
            LoadErrorKind::IncompatibleAbi => format!(
                "built with an incompatible version of abi_stable or Rust's C ABI: {REBUILD}"
            ),
            LoadErrorKind::InitFailed(err) => {
                format!("the plugin failed while initializing: {err}")
            }
            LoadErrorKind::UnreadableVersion(v) => format!("unreadable interface version: {v}"),
            LoadErrorKind::Several(all) => all
                .iter()
                .map(|k| k.reason(stage))
                .collect::<Vec<_>>()
                .join("; "),
            LoadErrorKind::NotProvided { provided } => {
                let provided: Vec<&str> = provided.iter().map(|s| s.name()).collect();
                format!(
                    "the library provides no {stage} stage (it provides: {})",
                    if provided.is_empty() {
                        "none".to_owned()
                    } else {
                        provided.join(", ")
                    }
                )
            }
            LoadErrorKind::Start(e) => format!("cannot start: {}", e.message),
            LoadErrorKind::Registry(e) => e.to_string(),
            LoadErrorKind::NotConfigured => "no library configured".to_owned(),
            LoadErrorKind::NoSuchBuiltin { name, builtin } => format!(
                "no plugin named `{name}` is built in (built in: {}); name a plugin library by \
                 its file name (`{}`) or its path (`./{}`)",
                builtin.join(", "),
                library_file_name("name"),
                library_file_name("name")
            ),
        }
    }
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.as_os_str().is_empty() {
            write!(f, "{} stage: {}", self.stage, self.reason())
        } else {
            write!(
                f,
                "{} plugin {}: {}",
                self.stage,
                self.path.display(),
                self.reason()
            )
        }
    }
}

impl LoadError {
    pub fn new(stage: StageKind, path: &Path, kind: LoadErrorKind) -> LoadError {
        LoadError {
            stage,
            path: path.to_owned(),
            kind,
            detail: None,
        }
    }

    /// The one-line reason, without the stage and the path.
    pub fn reason(&self) -> String {
        self.kind.reason(self.stage)
    }

    /// See [`LoadErrorKind::needs_rebuild`].
    pub fn needs_rebuild(&self) -> bool {
        self.kind.needs_rebuild()
    }
}

/// A loaded plugin library: what it says about itself and what it provides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LibraryInfo {
    pub path: PathBuf,
    pub name: String,
    pub version: String,
    pub stages: Vec<StageKind>,
}

/// The plugin behind one stage, for `registry plugins`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StageInfo {
    pub stage: StageKind,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
}

/// Loads a library and checks it is a plugin built against a compatible interface.
///
/// # Errors
/// A [`LoadError`] (with `stage` set to the given one) saying why: missing file, not a library,
/// not a plugin, an incompatible interface version or layout.
pub fn open(path: &Path, stage: StageKind) -> Result<(PluginModRef, LibraryInfo), LoadError> {
    let fail = |e: LibraryError| LoadError {
        detail: Some(full_report(&e)),
        ..LoadError::new(stage, path, kind_of(&e))
    };
    // The interface version the library names, to say when its types differ because it is
    // another release than the host's.
    let other_release = |e: LoadError, header: &abi_stable::library::LibHeader| match e.kind {
        LoadErrorKind::IncompatibleLayout { plugin: None } => {
            let plugin = header.version_strings().version.as_str().to_owned();
            LoadError {
                kind: LoadErrorKind::IncompatibleLayout {
                    plugin: (plugin != crate::ABI_VERSION).then_some(plugin),
                },
                ..e
            }
        }
        _ => e,
    };
    if !path.exists() {
        return Err(LoadError::new(stage, path, LoadErrorKind::NotFound));
    }
    // `dlopen` on anything but a regular file (a FIFO, a device) can block or read forever.
    if !path.is_file() {
        return Err(LoadError::new(stage, path, LoadErrorKind::NotAFile));
    }
    let header = lib_header_from_path(path).map_err(fail)?;
    let module = header
        .init_root_module::<PluginModRef>()
        .map_err(|e| other_release(fail(e), header))?;
    let PluginInfo { name, version } = (module.info())();
    let stages = StageKind::ALL
        .into_iter()
        .filter(|&s| provides(module, s))
        .collect();
    Ok((
        module,
        LibraryInfo {
            path: path.to_owned(),
            name: name.into_string(),
            version: version.into_string(),
            stages,
        },
    ))
}

/// [`open`], once `trust` allows the library (a missing one is `open`'s to report, with how to
/// build the plugins).
///
/// # Errors
/// Why the library may not be loaded, or why it does not open.
pub fn open_trusted(
    path: &Path,
    stage: StageKind,
    trust: &Trust,
) -> Result<(PluginModRef, LibraryInfo), LoadError> {
    if path.is_file() {
        trust.check(path).map_err(|refusal| {
            let kind = match refusal {
                Refusal::Untrusted(why) => LoadErrorKind::Untrusted(why),
                Refusal::Unsafe(why) => LoadErrorKind::Unsafe(why),
                Refusal::Unreadable(why) => LoadErrorKind::Unreadable(why),
            };
            LoadError::new(stage, path, kind)
        })?;
    }
    open(path, stage)
}

fn provides(module: PluginModRef, stage: StageKind) -> bool {
    match stage {
        StageKind::Cache => module.cache().flatten().is_some(),
        StageKind::Generator => module.generator().flatten().is_some(),
        StageKind::Validator => module.validator().flatten().is_some(),
        StageKind::Storage => module.storage().flatten().is_some(),
        StageKind::Router => module.router().flatten().is_some(),
    }
}

fn full_report(e: &LibraryError) -> String {
    e.to_string().trim().to_owned()
}

/// The kind of a loader error; the multi-line report stays for `--verbose`.
fn kind_of(e: &LibraryError) -> LoadErrorKind {
    match e {
        LibraryError::OpenError { err, .. } => LoadErrorKind::NotALibrary(err.to_string()),
        LibraryError::GetSymbolError { .. } => LoadErrorKind::NotAPlugin,
        LibraryError::IncompatibleVersionNumber {
            expected_version,
            actual_version,
            ..
        } => LoadErrorKind::IncompatibleVersion {
            plugin: actual_version.to_string(),
            host: expected_version.to_string(),
        },
        LibraryError::AbiInstability(_) => LoadErrorKind::IncompatibleLayout { plugin: None },
        LibraryError::InvalidAbiHeader(_) | LibraryError::InvalidCAbi { .. } => {
            LoadErrorKind::IncompatibleAbi
        }
        LibraryError::RootModule { err, .. } => {
            LoadErrorKind::InitFailed(err.to_string().trim().to_owned())
        }
        LibraryError::ParseVersionError(v) => LoadErrorKind::UnreadableVersion(v.to_string()),
        LibraryError::Many(list) => LoadErrorKind::Several(list.iter().map(kind_of).collect()),
    }
}

/// A stage built from a plugin library by [`build`], seen through its `registry_core` trait.
pub enum BuiltStage {
    Cache(Box<dyn Cache>),
    Generator(Box<dyn Generator>),
    Validator(Box<dyn Validator>),
    Storage(Box<dyn Storage>),
    Router(Box<dyn Router>),
}

impl BuiltStage {
    /// Which stage this is.
    pub fn kind(&self) -> StageKind {
        match self {
            BuiltStage::Cache(_) => StageKind::Cache,
            BuiltStage::Generator(_) => StageKind::Generator,
            BuiltStage::Validator(_) => StageKind::Validator,
            BuiltStage::Storage(_) => StageKind::Storage,
            BuiltStage::Router(_) => StageKind::Router,
        }
    }
}

impl fmt::Debug for BuiltStage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "BuiltStage({})", self.kind())
    }
}

/// Why [`build`] could not build a stage. Its `Display` is one line, the reason a
/// [`LoadError`] gives.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The library has no constructor for the stage; `provided` lists the stages it has.
    NotProvided {
        stage: StageKind,
        provided: Vec<StageKind>,
    },
    /// The stage's constructor returned an error (a config table its `Config` rejects, a store
    /// that cannot open) or panicked (code `Panic`).
    Start(StageError),
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::NotProvided { stage, provided } => {
                let provided: Vec<&str> = provided.iter().map(|s| s.name()).collect();
                write!(
                    f,
                    "the library provides no {stage} stage (it provides: {})",
                    if provided.is_empty() {
                        "none".to_owned()
                    } else {
                        provided.join(", ")
                    }
                )
            }
            BuildError::Start(e) => write!(f, "cannot start: {}", e.message),
        }
    }
}

impl std::error::Error for BuildError {}

/// Builds one stage from a library [`open`] returned, with its `[<stage>.config]` table as JSON
/// and the host's setup (for storage, `setup.shard` names the shard), and adapts it to its
/// `registry_core` trait. The host builds every stage this way; conformance kits use it to build
/// a stage alone.
///
/// # Errors
/// [`BuildError::NotProvided`] when the library has no constructor for `stage`, and
/// [`BuildError::Start`] when the constructor fails or panics.
pub fn build(
    module: PluginModRef,
    stage: StageKind,
    config_json: &str,
    setup: &Setup,
) -> Result<BuiltStage, BuildError> {
    let setup = serde_json::to_string(setup).unwrap_or_default();
    let (config, setup) = (RStr::from(config_json), RStr::from(setup.as_str()));
    let started = |e: FfiError| BuildError::Start(StageError::from(e));
    let missing = || BuildError::NotProvided {
        stage,
        provided: StageKind::ALL
            .into_iter()
            .filter(|&s| provides(module, s))
            .collect(),
    };
    match stage {
        StageKind::Cache => {
            let ctor = module.cache().flatten().ok_or_else(missing)?;
            let b = ctor(config, setup).into_result().map_err(started)?;
            Ok(BuiltStage::Cache(Box::new(HostCache(b))))
        }
        StageKind::Generator => {
            let ctor = module.generator().flatten().ok_or_else(missing)?;
            let b = ctor(config, setup).into_result().map_err(started)?;
            Ok(BuiltStage::Generator(Box::new(HostGenerator(b))))
        }
        StageKind::Validator => {
            let ctor = module.validator().flatten().ok_or_else(missing)?;
            let b = ctor(config, setup).into_result().map_err(started)?;
            Ok(BuiltStage::Validator(Box::new(HostValidator(b))))
        }
        StageKind::Storage => {
            let ctor = module.storage().flatten().ok_or_else(missing)?;
            let b = ctor(config, setup).into_result().map_err(started)?;
            Ok(BuiltStage::Storage(Box::new(HostStorage(b))))
        }
        StageKind::Router => {
            let ctor = module.router().flatten().ok_or_else(missing)?;
            let b = ctor(config, setup).into_result().map_err(started)?;
            Ok(BuiltStage::Router(Box::new(HostRouter(b))))
        }
    }
}

fn call(r: RResult<(), FfiError>) -> StageResult<()> {
    r.into_result().map_err(StageError::from)
}

fn entries_out(
    found: RVec<abi_stable::std_types::ROption<FfiEntry>>,
    out: &mut Vec<Option<Entry>>,
) -> StageResult<()> {
    let start = out.len();
    for e in found {
        match e.into_option().map(Entry::try_from).transpose() {
            Ok(e) => out.push(e),
            Err(e) => {
                out.truncate(start);
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The host's receiver of the entries a plugin lends ([`FfiEntrySink`]): copies each into `out`,
/// once, refusing an invalid one as an owned entry would be refused. What it refused stays
/// refused whatever the plugin then returns.
struct Received<'o> {
    out: &'o mut Vec<Option<Entry>>,
    received: bool,
    refused: Option<StageError>,
}

impl Received<'_> {
    fn refuse(&mut self, e: StageError) -> RResult<(), FfiError> {
        self.refused = Some(e.clone());
        RResult::RErr(e.into())
    }
}

impl FfiEntrySink for Received<'_> {
    fn receive(&mut self, entries: RSlice<'_, ROption<FfiEntryRef<'_>>>) -> RResult<(), FfiError> {
        if self.received {
            return self.refuse(StageError::new(
                ErrorCode::Internal,
                "plugin lent its entries twice in one call",
            ));
        }
        self.received = true;
        self.out.reserve(entries.len());
        for e in entries.iter() {
            match e.as_ref().map(Entry::try_from).into_option().transpose() {
                Ok(e) => self.out.push(e),
                Err(e) => return self.refuse(e),
            }
        }
        RResult::ROk(())
    }
}

/// Calls `f` with a sink that copies the lent entries into `out`. A plugin that returns without
/// lending anything answers nothing, which the pipeline counts as a miscount, as for `get`; on
/// any error (the plugin's, or a refusal of what it lent) nothing of the call stays in `out`.
pub(crate) fn receive_lent(
    out: &mut Vec<Option<Entry>>,
    f: impl FnOnce(EntrySink<'_>) -> RResult<(), FfiError>,
) -> StageResult<()> {
    let start = out.len();
    let mut sink = Received {
        out,
        received: false,
        refused: None,
    };
    let result = call(f(FfiEntrySink_TO::from_ptr(&mut sink, TD_Opaque)));
    let result = match sink.refused.take() {
        Some(refused) => Err(refused),
        None => result,
    };
    if result.is_err() {
        sink.out.truncate(start);
    }
    result
}

/// A loaded cache plugin seen as a `registry_core::Cache`.
pub struct HostCache(pub CacheBox);
/// A loaded generator plugin seen as a `registry_core::Generator`.
pub struct HostGenerator(pub GeneratorBox);
/// A loaded validator plugin seen as a `registry_core::Validator`.
pub struct HostValidator(pub ValidatorBox);
/// A loaded storage plugin seen as a `registry_core::Storage`.
pub struct HostStorage(pub StorageBox);
/// A loaded router plugin seen as a `registry_core::Router`.
pub struct HostRouter(pub RouterBox);

impl Cache for HostCache {
    fn get(&self, keys: &[CacheKey], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let keys: Vec<FfiKey> = keys.iter().map(|&k| k.into()).collect();
        receive_lent(out, |sink| self.0.get_lent(RSlice::from_slice(&keys), sink))
    }

    fn put(&self, entries: &[Entry]) -> StageResult<()> {
        call(with_entry_views(entries, |batch| self.0.put(batch)))
    }

    /// Lends views of the shared entries, as `put` does of its own: the plugin makes its copies
    /// from them, and the host makes none.
    fn put_shared(&self, entries: &[std::sync::Arc<Entry>]) -> StageResult<()> {
        call(with_views_of(entries.iter().map(|e| &**e), |batch| {
            self.0.put(batch)
        }))
    }

    fn remove(&self, keys: &[CacheKey]) -> StageResult<()> {
        let keys: Vec<FfiKey> = keys.iter().map(|&k| k.into()).collect();
        call(self.0.remove(RSlice::from_slice(&keys)))
    }

    fn stats(&self) -> CacheStats {
        self.0.stats().into()
    }
}

/// The host's side of a plugin's lent predictions: each copied once onto `out`.
struct Predictions<'o>(&'o mut Vec<Prediction>);

impl FfiPredictionSink for Predictions<'_> {
    fn receive(&mut self, prediction: &FfiPredictionRef<'_>) {
        self.0.push(prediction_from_view(prediction));
    }
}

/// The host's side of a plugin's lent configs: each copied once onto `out`.
struct Configs<'o>(&'o mut Vec<String>);

impl FfiConfigSink for Configs<'_> {
    fn receive(&mut self, config: RStr<'_>) {
        self.0.push(config.as_str().to_owned());
    }
}

impl Generator for HostGenerator {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        let start = out.len();
        out.reserve(requests.len());
        let mut sink = Predictions(out);
        let lent = call(with_request_views(requests, |batch| {
            let sink = FfiPredictionSink_TO::from_ptr(&mut sink, TD_Opaque);
            self.0.predict_lent(batch, sink)
        }));
        if lent.is_err() {
            out.truncate(start);
        }
        lent
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        let start = out.len();
        out.reserve(drafts.len());
        let mut sink = Configs(out);
        let lent = call(with_draft_views(drafts, |batch| {
            let sink = FfiConfigSink_TO::from_ptr(&mut sink, TD_Opaque);
            self.0.render_lent(batch, sink)
        }));
        if lent.is_err() {
            out.truncate(start);
        }
        lent
    }

    fn train(&self, examples: &[Request], options: &TrainOptions) -> StageResult<TrainReport> {
        let options = serde_json::to_string(options).unwrap_or_default();
        let report = with_request_views(examples, |batch| {
            self.0.train(batch, options.as_str().into())
        })
        .into_result()
        .map_err(StageError::from)?;
        serde_json::from_str(report.as_str()).map_err(|e| {
            StageError::new(
                ErrorCode::Internal,
                format!("plugin returned an unreadable training report: {e}"),
            )
        })
    }
}

impl Validator for HostValidator {
    fn check_requests(&self, requests: &[Request], out: &mut Vec<Problem>) -> StageResult<()> {
        let mut problems = RVec::new();
        call(with_request_views(requests, |batch| {
            self.0.check_requests(batch, &mut problems)
        }))?;
        out.extend(problems.into_iter().map(Problem::from));
        Ok(())
    }

    fn check_entries(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        let mut problems = RVec::new();
        call(with_entry_views(entries, |batch| {
            self.0.check_entries(batch, &mut problems)
        }))?;
        out.extend(problems.into_iter().map(Problem::from));
        Ok(())
    }

    fn check_built(&self, entries: &[Entry], out: &mut Vec<Problem>) -> StageResult<()> {
        let mut problems = RVec::new();
        call(with_entry_views(entries, |batch| {
            self.0.check_built(batch, &mut problems)
        }))?;
        out.extend(problems.into_iter().map(Problem::from));
        Ok(())
    }

    fn check_headers(&self, headers: &[RawHeader], out: &mut Vec<Problem>) -> StageResult<()> {
        let batch: Vec<FfiRawHeader> = headers.iter().map(FfiRawHeader::from).collect();
        let mut problems = RVec::new();
        call(
            self.0
                .check_headers(RSlice::from_slice(&batch), &mut problems),
        )?;
        out.extend(problems.into_iter().map(Problem::from));
        Ok(())
    }
}

impl Storage for HostStorage {
    fn find(&self, fingerprints: &[Fingerprint], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let fps: Vec<[u8; 16]> = fingerprints.iter().map(|f| f.0).collect();
        let mut found = RVec::with_capacity(fps.len());
        call(self.0.find(RSlice::from_slice(&fps), &mut found))?;
        entries_out(found, out)
    }

    fn get(&self, ids: &[EntryId], out: &mut Vec<Option<Entry>>) -> StageResult<()> {
        let ids: Vec<FfiIdRef<'_>> = ids.iter().map(FfiIdRef::from).collect();
        receive_lent(out, |sink| self.0.get_lent(RSlice::from_slice(&ids), sink))
    }

    fn allocate(&self, prefixes: &[String], out: &mut Vec<u64>) -> StageResult<()> {
        let prefixes: Vec<RString> = prefixes.iter().map(|p| RString::from(p.as_str())).collect();
        let mut numbers = RVec::with_capacity(prefixes.len());
        call(self.0.allocate(RSlice::from_slice(&prefixes), &mut numbers))?;
        out.extend(numbers);
        Ok(())
    }

    fn insert(&self, entries: &[Entry], out: &mut Vec<Inserted>) -> StageResult<()> {
        let mut outcomes = RVec::with_capacity(entries.len());
        call(with_entry_views(entries, |batch| {
            self.0.insert(batch, &mut outcomes)
        }))?;
        convert_all(outcomes, out)
    }

    fn update(&self, entries: &[Entry], out: &mut Vec<StageResult<()>>) -> StageResult<()> {
        let mut outcomes = RVec::with_capacity(entries.len());
        call(with_entry_views(entries, |batch| {
            self.0.update(batch, &mut outcomes)
        }))?;
        out.extend(outcomes.into_iter().map(call));
        Ok(())
    }

    fn history(&self, id: &EntryId, out: &mut Vec<Entry>) -> StageResult<()> {
        let mut revisions = RVec::new();
        call(self.0.history(&FfiId::from(id), &mut revisions))?;
        convert_all(revisions, out)
    }

    fn list(&self, query: &ListQuery, out: &mut Vec<Entry>) -> StageResult<()> {
        let mut entries = RVec::new();
        call(self.0.list(&FfiListQuery::from(query), &mut entries))?;
        convert_all(entries, out)
    }

    fn restore(
        &self,
        histories: &[Vec<Entry>],
        out: &mut Vec<StageResult<Restored>>,
    ) -> StageResult<()> {
        let mut outcomes = RVec::with_capacity(histories.len());
        call(with_history_views(histories, |batch| {
            self.0.restore(batch, &mut outcomes)
        }))?;
        out.extend(outcomes.into_iter().map(|r| {
            r.into_result()
                .map(restored_from_ffi)
                .map_err(StageError::from)
        }));
        Ok(())
    }

    fn meta(&self, out: &mut registry_core::Meta) -> StageResult<()> {
        let json = self.0.meta().into_result().map_err(StageError::from)?;
        let meta: registry_core::Meta = serde_json::from_str(json.as_str()).map_err(|e| {
            StageError::new(
                ErrorCode::Internal,
                format!("plugin returned unreadable metadata: {e}"),
            )
        })?;
        out.extend(meta);
        Ok(())
    }

    fn set_meta(&self, changes: &registry_core::Meta) -> StageResult<()> {
        let json = serde_json::to_string(changes).unwrap_or_default();
        call(self.0.set_meta(json.as_str().into()))
    }

    fn compact(&self) -> StageResult<u64> {
        self.0.compact().into_result().map_err(StageError::from)
    }

    fn place(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<()> {
        let ids: Vec<FfiId> = ids.iter().map(FfiId::from).collect();
        call(
            self.0
                .place(RSlice::from_slice(&ids), RSlice::from_slice(shards)),
        )
    }

    fn insert_placed(
        &self,
        entries: &[Entry],
        ids: &[EntryId],
        shards: &[u32],
        out: &mut Vec<Inserted>,
    ) -> StageResult<()> {
        let ids: Vec<FfiId> = ids.iter().map(FfiId::from).collect();
        let mut outcomes = RVec::with_capacity(entries.len());
        call(with_entry_views(entries, |batch| {
            self.0.insert_placed(
                batch,
                RSlice::from_slice(&ids),
                RSlice::from_slice(shards),
                &mut outcomes,
            )
        }))?;
        convert_all(outcomes, out)
    }

    fn reindex(&self) -> StageResult<u64> {
        self.0.reindex().into_result().map_err(StageError::from)
    }

    fn sequences(&self, raise: &[Sequence], out: &mut Vec<Sequence>) -> StageResult<()> {
        let raise: Vec<FfiId> = raise
            .iter()
            .map(|s| FfiId {
                prefix: s.prefix.as_str().into(),
                number: s.last,
            })
            .collect();
        let mut sequences = RVec::new();
        call(self.0.sequences(RSlice::from_slice(&raise), &mut sequences))?;
        out.extend(sequences.into_iter().map(|s| Sequence {
            prefix: s.prefix.into_string(),
            last: s.number,
        }));
        Ok(())
    }

    fn purge(&self, revision: &Entry) -> StageResult<()> {
        call(with_entry_views(std::slice::from_ref(revision), |batch| {
            self.0.purge(batch)
        }))
    }

    fn backup(&self, dir: &str) -> StageResult<u64> {
        self.0
            .backup(dir.into())
            .into_result()
            .map_err(StageError::from)
    }

    fn migrate(&self, ids: &[EntryId], shards: &[u32]) -> StageResult<u64> {
        let ids: Vec<FfiId> = ids.iter().map(FfiId::from).collect();
        self.0
            .migrate(RSlice::from_slice(&ids), RSlice::from_slice(shards))
            .into_result()
            .map_err(StageError::from)
    }

    fn locate(&self, ids: &[EntryId], out: &mut Vec<u32>) -> StageResult<()> {
        let ids: Vec<FfiId> = ids.iter().map(FfiId::from).collect();
        let mut shards = RVec::with_capacity(ids.len());
        call(self.0.locate(RSlice::from_slice(&ids), &mut shards))?;
        out.extend(shards);
        Ok(())
    }
}

impl Router for HostRouter {
    fn route(&self, keys: &[u64], shards: u32, out: &mut Vec<u32>) -> StageResult<()> {
        let mut routes = RVec::with_capacity(keys.len());
        call(self.0.route(RSlice::from_slice(keys), shards, &mut routes))?;
        out.extend(routes);
        Ok(())
    }
}

/// The module type's name, used in tests and diagnostics.
pub fn module_name() -> &'static str {
    PluginModRef::NAME
}

#[cfg(test)]
mod tests {
    use registry_core::ErrorCode;

    use super::*;

    /// One value of every kind. `name` matches every variant (the compiler sees to it); a kind
    /// added there must be added here too, and to PLUGINS.md's table.
    fn one_of_each() -> Vec<LoadErrorKind> {
        let s = String::new;
        vec![
            LoadErrorKind::NotFound,
            LoadErrorKind::NotAFile,
            LoadErrorKind::Unreadable(s()),
            LoadErrorKind::Untrusted(s()),
            LoadErrorKind::Unsafe(s()),
            LoadErrorKind::NotALibrary(s()),
            LoadErrorKind::NotAPlugin,
            LoadErrorKind::IncompatibleVersion {
                plugin: s(),
                host: s(),
            },
            LoadErrorKind::IncompatibleLayout { plugin: None },
            LoadErrorKind::IncompatibleAbi,
            LoadErrorKind::InitFailed(s()),
            LoadErrorKind::UnreadableVersion(s()),
            LoadErrorKind::Several(vec![]),
            LoadErrorKind::NotProvided { provided: vec![] },
            LoadErrorKind::Start(StageError::new(ErrorCode::Config, "x")),
            LoadErrorKind::Registry(layout::OpenError::Absent),
            LoadErrorKind::NotConfigured,
            LoadErrorKind::NoSuchBuiltin {
                name: s(),
                builtin: vec![],
            },
        ]
    }

    /// The kinds named in the first column of PLUGINS.md's table of load errors.
    fn documented() -> Vec<String> {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../PLUGINS.md");
        let text = std::fs::read_to_string(path).expect("PLUGINS.md");
        let table = text
            .split("## Load errors")
            .nth(1)
            .and_then(|rest| rest.split("\n## ").next())
            .expect("a Load errors section");
        table
            .lines()
            .filter_map(|l| l.strip_prefix("| `"))
            .filter_map(|l| l.split('`').next())
            .filter(|k| k.chars().next().is_some_and(char::is_uppercase))
            .map(str::to_owned)
            .collect()
    }

    /// A layout refused because the plugin is of another release names both versions and the
    /// rule, so that whoever reads it knows which side to rebuild.
    #[test]
    fn a_layout_of_another_release_names_both_versions() {
        let older = LoadErrorKind::IncompatibleLayout {
            plugin: Some("0.7.2".into()),
        };
        let reason = older.reason(StageKind::Generator);
        assert!(
            reason.starts_with(&format!(
                "built against registry-abi 0.7.2, whose types differ from this host's {}",
                crate::ABI_VERSION
            )),
            "{reason}"
        );
        assert!(reason.ends_with(REBUILD), "{reason}");
        assert!(older.needs_rebuild());
        let same = LoadErrorKind::IncompatibleLayout { plugin: None }.reason(StageKind::Cache);
        assert!(same.contains("its types differ from this host's"), "{same}");
    }

    #[test]
    fn every_kind_has_one_row_in_the_table_of_load_errors() {
        let mut kinds: Vec<&str> = one_of_each().iter().map(LoadErrorKind::name).collect();
        kinds.sort_unstable();
        let mut rows = documented();
        rows.sort();
        assert_eq!(
            rows, kinds,
            "PLUGINS.md's table of load errors, first column"
        );
    }
}
