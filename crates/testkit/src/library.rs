//! The conformance suites run through a built plugin library, as the host will load it.
//!
//! A plugin's in-process tests run its stage through the plain-Rust trait; they cannot see what
//! the FFI glue does to the values crossing the boundary, nor whether the library loads at all.
//! [`check`] loads the built library the way the host does (the same version and layout checks),
//! builds the stage from it with the given `[<stage>.config]` table and a temporary data
//! directory, and runs the stage's suite through the loaded object. [`smoke`] does the same with
//! a short subset of the suite, for `registry plugins check`.
//!
//! Both return `Err` with one line instead of panicking: the load error (naming the stage, the
//! library and the reason, as the host reports it), the constructor's error, or the rule the
//! stage broke. The suites themselves panic at the first broken rule, so they run under
//! `catch_unwind`; while one runs, a panic hook installed for the purpose keeps quiet about
//! panics on that thread (their message becomes the `Err`) and hands every other panic to the
//! hook that was there before. The hook is installed once and left in place rather than swapped
//! in and out around each check: the panic hook is global to the process, and tests run checks
//! on several threads at once, so swapping it could lose another thread's hook or its output.
//!
//! The relative paths in a stage's config table are relative to `Setup::config_dir`, which is the
//! current directory (a test's is its crate's root).

use std::cell::Cell;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Once;

use registry_abi::PluginModRef;
use registry_abi::load::{self, BuiltStage};
use registry_core::{Schema, Setup, StageKind};
use tempfile::TempDir;

use crate::{cache, generator, router, storage, validator};

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
/// The validator suite checks entries whose configs the testkit's reference generator renders
/// (see [`validator::check`]); every other suite is the one a plugin runs in-process.
///
/// # Examples
/// ```no_run
/// use registry_core::StageKind;
///
/// let library = std::path::Path::new("target/debug/libvalidator_strict.so");
/// registry_testkit::library::check(library, StageKind::Validator, "{}")
///     .unwrap_or_else(|e| panic!("{e}"));
/// ```
///
/// # Errors
/// One line saying why the stage is not usable: the library cannot be loaded (missing, not a
/// library, not a plugin, built against an incompatible `registry-abi`: the host's own message),
/// it provides no such stage, its constructor fails or panics, or the stage breaks a rule of its
/// suite (the message names the rule).
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
    dir: TempDir,
    config_dir: PathBuf,
    schema: Schema,
}

impl Scratch {
    fn new(schema: &Schema) -> Result<Scratch, String> {
        let dir = tempfile::tempdir()
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

/// Builds the stage, or panics naming the library and why; for the suites' `make` closures,
/// whose panics [`captured`] turns into the `Err`.
fn built(
    module: PluginModRef,
    path: &Path,
    stage: StageKind,
    config_json: &str,
    setup: &Setup,
) -> BuiltStage {
    load::build(module, stage, config_json, setup)
        .unwrap_or_else(|e| panic!("{stage} plugin {}: {e}", path.display()))
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
    captured(|| match first {
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
                match load::build(module, stage, config_json, &setup) {
                    Ok(BuiltStage::Storage(s)) => Ok(s),
                    Ok(other) => panic!("built {} for a storage stage", other.kind()),
                    Err(load::BuildError::Start(e)) => Err(e),
                    Err(e) => panic!("{stage} plugin {}: {e}", path.display()),
                }
            };
            match depth {
                Depth::Full => storage::check(&make),
                Depth::Smoke => storage::smoke(&make),
            }
        }
        BuiltStage::Cache(first) => {
            drop(first);
            let make = || match built(module, path, stage, config_json, &scratch.setup()) {
                BuiltStage::Cache(c) => c,
                other => panic!("built {} for a cache stage", other.kind()),
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
        BuiltStage::Generator(g) => generator::check(&*g, schema),
        BuiltStage::Validator(v) => validator::check(&*v, schema),
    })
}

thread_local! {
    /// Whether this thread is inside [`captured`], whose panics the hook keeps quiet about.
    static CAPTURING: Cell<bool> = const { Cell::new(false) };
}

static HOOK: Once = Once::new();

/// Installs, once, a panic hook that says nothing for a thread inside [`captured`] and hands
/// every other panic to the hook that was installed before it.
fn install_quiet_hook() {
    HOOK.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !CAPTURING.with(Cell::get) {
                previous(info);
            }
        }));
    });
}

/// Runs `f`, turning a panic into `Err` with its message on one line.
fn captured(f: impl FnOnce()) -> Result<(), String> {
    install_quiet_hook();
    let was = CAPTURING.with(|c| c.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    CAPTURING.with(|c| c.set(was));
    result.map_err(|payload| {
        let message = if let Some(s) = payload.downcast_ref::<String>() {
            s.as_str()
        } else if let Some(s) = payload.downcast_ref::<&str>() {
            s
        } else {
            "the suite panicked with a value that is not a message"
        };
        one_line(message)
    })
}

/// The lines of `message`, trimmed and joined by spaces.
fn one_line(message: &str) -> String {
    message
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_becomes_its_message_on_one_line() {
        let got = captured(|| panic!("validator contract broken:\n  check_requests must push"));
        assert_eq!(
            got,
            Err("validator contract broken: check_requests must push".to_owned())
        );
        let got = captured(|| std::panic::panic_any(7_u32));
        assert_eq!(
            got,
            Err("the suite panicked with a value that is not a message".to_owned())
        );
    }

    #[test]
    fn no_panic_is_ok_and_the_thread_is_left_uncaptured() {
        assert_eq!(captured(|| {}), Ok(()));
        let nested = captured(|| {
            let inner = captured(|| panic!("inner"));
            assert_eq!(inner, Err("inner".to_owned()));
            assert!(CAPTURING.with(Cell::get), "still inside the outer capture");
        });
        assert_eq!(nested, Ok(()));
        assert!(!CAPTURING.with(Cell::get));
    }

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
