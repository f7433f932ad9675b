//! The conformance suites run through a built plugin library, as the host will load it.
//!
//! A plugin's in-process tests run its stage through the plain-Rust trait; they cannot see what
//! the FFI glue does to the values crossing the boundary, nor whether the library loads at all.
//! [`check`] loads the built library the way the host does (the same version and layout checks),
//! builds the stage from it with the given `[<stage>.config]` table and a temporary data
//! directory, and runs the stage's suite through the loaded object. [`smoke`] does the same with
//! a short subset of the suite, for `registry plugins check`.
//!
//! Both return `Err` with one line: the load error (naming the stage, the library and the
//! reason, as the host reports it), the constructor's error, or the [`Violation`] the suite
//! returned, as text. A `String` rather than a typed error, because every caller prints it and
//! none branches on it; the load and build errors are typed where they come from
//! (`registry_abi::load`).
//!
//! Nothing here catches a panic or installs a panic hook: the suites return their failures, and
//! a panic inside the plugin never reaches this code. Every call into a plugin library, its
//! constructors included, runs inside the plugin under `registry_abi::export::guard`, which
//! catches the panic there and returns it across the boundary as an error with code `Panic`
//! (unwinding across the boundary would abort the process): the suite reports that error as the
//! call failing (`check_requests failed (Panic): …`), and the constructor's as `cannot start:
//! panicked at …`. The one call with no error to return, a cache's `stats`, answers "counts
//! nothing" when the plugin panics.
//!
//! The relative paths in a stage's config table are relative to `Setup::config_dir`, which is the
//! current directory (a test's is its crate's root).

use std::path::{Path, PathBuf};

use registry_abi::PluginModRef;
use registry_abi::load::{self, BuildError, BuiltStage};
use registry_core::{ErrorCode, Schema, Setup, StageError, StageKind};

use crate::scratch::ScratchDir;
use crate::{Violation, cache, generator, router, storage, validator};

/// How much of a suite to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Depth {
    Full,
    Smoke,
}

/// Loads the library at `path`, builds its `stage` from `config_json` (the `[<stage>.config]`
/// table as a JSON object, `"{}"` for the defaults) and runs that stage's whole conformance suite
/// through the loaded object, with [`Schema::default`] as the registry's schema.
///
/// The validator suite checks entries whose configs the reference generator renders
/// (see [`validator::check`]); every other suite is the one a plugin runs in-process.
///
/// # Examples
/// ```no_run
/// use registry_core::StageKind;
///
/// let library = std::path::Path::new("target/debug/libvalidator_strict.so");
/// if let Err(e) = registry_conformance::library::check(library, StageKind::Validator, "{}") {
///     eprintln!("not usable: {e}");
/// }
/// ```
///
/// # Errors
/// One line saying why the stage is not usable: the library cannot be loaded (missing, not a
/// library, not a plugin, built against an incompatible `registry-abi`: the host's own message),
/// it provides no such stage, its constructor fails or panics, or the stage breaks a rule of its
/// suite (the [`Violation`]'s text, naming the rule). The suite not being able to run (no
/// temporary directory) is an error too, saying so.
pub fn check(path: &Path, stage: StageKind, config_json: &str) -> Result<(), String> {
    run(path, stage, config_json, &Schema::default(), Depth::Full)
}

/// [`check`] with another schema: the one the stage is built with (`Setup::schema`) and the one
/// the generator and validator suites draw their values from.
///
/// A schema that requires config keys (`schema.required`) makes valid entries of the validator
/// suite invalid, since the reference generator's configs carry no such keys: check a validator
/// against a schema without them.
///
/// # Errors
/// As [`check`].
pub fn check_with_schema(
    path: &Path,
    stage: StageKind,
    config_json: &str,
    schema: &Schema,
) -> Result<(), String> {
    run(path, stage, config_json, schema, Depth::Full)
}

/// Loads and builds the stage as [`check`] does and runs a short subset of its suite: enough to
/// show the stage works at all through the boundary, in well under a second. The storage, cache
/// and router suites are cut down ([`storage::smoke`], [`cache::smoke`], [`router::smoke`]);
/// the generator and validator suites are short already and run whole.
///
/// # Errors
/// As [`check`].
pub fn smoke(path: &Path, stage: StageKind, config_json: &str) -> Result<(), String> {
    run(path, stage, config_json, &Schema::default(), Depth::Smoke)
}

/// [`smoke`] with another schema, as [`check_with_schema`] is [`check`] with one.
///
/// # Errors
/// As [`check`].
pub fn smoke_with_schema(
    path: &Path,
    stage: StageKind,
    config_json: &str,
    schema: &Schema,
) -> Result<(), String> {
    run(path, stage, config_json, schema, Depth::Smoke)
}

/// Where the stage is built: a fresh data directory and the current directory for config paths.
struct Scratch {
    dir: ScratchDir,
    config_dir: PathBuf,
    schema: Schema,
}

impl Scratch {
    fn new(schema: &Schema) -> Result<Scratch, String> {
        let dir = ScratchDir::new()
            .map_err(|e| format!("cannot create a temporary data directory: {e}"))?;
        let config_dir = std::env::current_dir().unwrap_or_else(|_| dir.path().to_owned());
        Ok(Scratch {
            dir,
            config_dir,
            schema: schema.clone(),
        })
    }

    fn setup(&self) -> Setup {
        Setup {
            schema: self.schema.clone(),
            data_dir: self.dir.path().to_owned(),
            config_dir: self.config_dir.clone(),
            shard: 0,
            shards: 1,
            // The suites choose their own data directories; a storage built here creates one.
            create: Some(registry_core::Meta::new()),
        }
    }
}

/// A stage built again for a suite, or the error the suite reports as its constructor's. The
/// first build of the stage succeeded, so anything but the constructor's own error here means
/// the library changed its answer; it is reported as an internal error naming the library.
fn rebuilt<T>(
    built: Result<BuiltStage, BuildError>,
    unpack: impl FnOnce(BuiltStage) -> Result<T, BuiltStage>,
    stage: StageKind,
    path: &Path,
) -> Result<T, StageError> {
    let unusable = |why: String| {
        StageError::new(
            ErrorCode::Internal,
            format!("{stage} plugin {}: {why}", path.display()),
        )
    };
    match built {
        Ok(built) => unpack(built)
            .map_err(|other| unusable(format!("built {} for a {stage} stage", other.kind()))),
        Err(BuildError::Start(e)) => Err(e),
        Err(e) => Err(unusable(e.to_string())),
    }
}

fn run(
    path: &Path,
    stage: StageKind,
    config_json: &str,
    schema: &Schema,
    depth: Depth,
) -> Result<(), String> {
    let (module, _) = load::open(path, stage).map_err(|e| e.to_string())?;
    let scratch = Scratch::new(schema)?;
    // Built once up front, so a constructor that fails is reported as such rather than as the
    // first rule of the suite.
    let first = load::build(module, stage, config_json, &scratch.setup())
        .map_err(|e| format!("{stage} plugin {}: {e}", path.display()))?;
    suite(module, path, stage, config_json, &scratch, first, depth).map_err(|v| v.to_string())
}

/// Runs the suite of the stage `first` is, building more of it from `module` as the suite asks.
fn suite(
    module: PluginModRef,
    path: &Path,
    stage: StageKind,
    config_json: &str,
    scratch: &Scratch,
    first: BuiltStage,
    depth: Depth,
) -> Result<(), Violation> {
    match first {
        BuiltStage::Storage(first) => {
            // The suite chooses the data directories and shards; the schema and config
            // directory stay the caller's.
            drop(first);
            let make = |setup: &Setup| {
                let setup = Setup {
                    schema: scratch.schema.clone(),
                    config_dir: scratch.config_dir.clone(),
                    ..setup.clone()
                };
                let built = load::build(module, stage, config_json, &setup);
                rebuilt(
                    built,
                    |b| match b {
                        BuiltStage::Storage(s) => Ok(s),
                        other => Err(other),
                    },
                    stage,
                    path,
                )
            };
            match depth {
                Depth::Full => storage::check(&make),
                Depth::Smoke => storage::smoke(&make),
            }
        }
        BuiltStage::Cache(first) => {
            drop(first);
            let make = || {
                let built = load::build(module, stage, config_json, &scratch.setup());
                rebuilt(
                    built,
                    |b| match b {
                        BuiltStage::Cache(c) => Ok(c),
                        other => Err(other),
                    },
                    stage,
                    path,
                )
            };
            match depth {
                Depth::Full => cache::check(&make),
                Depth::Smoke => cache::smoke(&make),
            }
        }
        BuiltStage::Router(r) => match depth {
            Depth::Full => router::check(&*r),
            Depth::Smoke => router::smoke(&*r),
        },
        BuiltStage::Generator(g) => generator::check(&*g, &scratch.schema),
        BuiltStage::Validator(v) => validator::check(&*v, &scratch.schema),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_library_is_the_hosts_load_error() {
        let path = Path::new("/nonexistent/libnothing.so");
        let err = check(path, StageKind::Router, "{}").expect_err("no library there");
        assert!(
            err.starts_with("router plugin /nonexistent/libnothing.so: library not found"),
            "{err}"
        );
        assert!(!err.contains('\n'));
    }
}
