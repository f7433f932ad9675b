//! Loads the built plugin libraries and the fixture libraries, one test per load failure mode.
//!
//! The libraries must be built first (`cargo build --workspace`, or `cargo xtask test`); they are
//! found next to this test binary's `deps/` directory.

mod conformance;

use std::path::PathBuf;

use registry_abi::load::{self, BuildError, Library, LoadError, SearchPaths, StageSpec};
use registry_core::{Context, ErrorCode, Fields, Pipeline, Request, Schema, Setup, StageKind};
use registry_host::assemble::{self, Assembled};

fn lib_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test binary path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("test binary lives in target/<profile>/deps")
        .to_owned()
}

pub fn paths() -> SearchPaths {
    SearchPaths {
        plugin_dir: lib_dir(),
        base_dir: lib_dir(),
        trust: load::Trust {
            own: vec![lib_dir()],
            trusted: Vec::new(),
        },
    }
}

/// Loads every stage, creating the registry with the setup's shard count.
pub fn load_all(
    specs: &[StageSpec],
    paths: &SearchPaths,
    setup: &Setup,
) -> Result<Assembled, Vec<LoadError>> {
    let options = assemble::Options {
        stages: &StageKind::ALL,
        access: registry_core::layout::Access::Create,
        shards: Some(setup.shards.max(1)),
        new_shards: setup.shards.max(1),
    };
    let source = assemble::Source {
        specs,
        paths,
        builtins: registry_builtin::BUILTINS,
    };
    assemble::assemble(&source, setup, &options)
}

/// Plugin `name`'s library file in the plugin directory.
pub fn lib(name: &str) -> PathBuf {
    lib_dir().join(load::library_file_name(name))
}

pub fn defaults() -> Vec<StageSpec> {
    [
        (StageKind::Cache, "cache-quick"),
        (StageKind::Generator, "generator-default"),
        (StageKind::Validator, "validator-schema"),
        (StageKind::Storage, "storage-redb"),
        (StageKind::Router, "router-hash"),
    ]
    .into_iter()
    .map(|(stage, name)| StageSpec {
        stage,
        library: load::library_file_name(name),
        config_json: "{}".into(),
    })
    .collect()
}

/// The default libraries, but `stage` from plugin `name`'s library file, with a config table.
fn with(stage: StageKind, name: &str, config_json: &str) -> Vec<StageSpec> {
    let mut specs = defaults();
    for s in &mut specs {
        if s.stage == stage {
            s.library = load::library_file_name(name);
            s.config_json = config_json.into();
        }
    }
    specs
}

pub fn setup(dir: &tempfile::TempDir) -> Setup {
    Setup {
        schema: Schema::default(),
        data_dir: dir.path().to_owned(),
        config_dir: dir.path().to_owned(),
        shard: 0,
        shards: 1,
        create: None,
    }
}

fn load_err(specs: &[StageSpec]) -> Vec<LoadError> {
    let dir = tempfile::tempdir().expect("temp dir");
    match load_all(specs, &paths(), &setup(&dir)) {
        Ok(_) => panic!("load succeeded"),
        Err(errors) => errors,
    }
}

fn open_err(path: &std::path::Path) -> LoadError {
    match load::open(path, StageKind::Validator) {
        Ok((_, info)) => panic!("{} opened as plugin {}", path.display(), info.name),
        Err(e) => e,
    }
}

#[test]
fn every_default_plugin_loads_and_runs() {
    let dir = tempfile::tempdir().expect("temp dir");
    let loaded = load_all(&defaults(), &paths(), &setup(&dir)).unwrap_or_else(|e| panic!("{e:?}"));
    let names: Vec<&str> = loaded.plugins.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "cache-quick",
            "generator-default",
            "validator-schema",
            "storage-redb",
            "router-hash"
        ]
    );
    let pipeline = Pipeline::new(Schema::default(), loaded.stages);
    let request = Request::new(
        "Block SSH from the internet",
        Fields::default(),
        None,
        Context::default(),
    )
    .expect("valid request");
    let added = pipeline.add_one(request.clone()).expect("added");
    assert!(added.created);
    assert_eq!(added.entry.revision, 1);
    assert!(added.entry.verify());
    let again = pipeline.add_one(request).expect("added again");
    assert!(!again.created);
    assert_eq!(again.entry.header.id, added.entry.header.id);
    assert_eq!(
        pipeline.get(&added.entry.header.id).expect("stored"),
        *added.entry
    );
}

#[test]
fn missing_library() {
    let e = open_err(&lib("no-such-plugin"));
    assert!(
        e.reason().starts_with("library not found"),
        "{}",
        e.reason()
    );
}

#[test]
fn file_that_is_not_a_library() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("libfake.so");
    std::fs::write(&path, "not a library\n").expect("write");
    let e = open_err(&path);
    assert!(
        e.reason().starts_with("not a loadable library"),
        "{}",
        e.reason()
    );
}

#[test]
fn library_that_is_not_a_plugin() {
    let e = open_err(&lib("fixture-not-a-plugin"));
    assert_eq!(
        e.reason(),
        "not a registry plugin: the library exports no plugin root module"
    );
    assert!(
        !e.needs_rebuild(),
        "rebuilding a library that is no plugin does not help"
    );
}

#[test]
fn plugin_built_against_another_abi_version() {
    let e = open_err(&lib("fixture-abi-version"));
    assert_eq!(
        e.reason(),
        format!(
            "built against registry-abi 0.0.1, host expects {}: rebuild the plugin",
            registry_abi::ABI_VERSION
        )
    );
    assert!(e.detail.is_some(), "the full report is kept for --verbose");
    assert!(e.needs_rebuild());
}

#[test]
fn plugin_with_an_incompatible_layout() {
    let e = open_err(&lib("fixture-abi-layout"));
    assert!(
        e.reason()
            .starts_with("built against an incompatible registry-abi"),
        "{}",
        e.reason()
    );
    let detail = e.detail.as_deref().expect("layout report");
    assert!(
        detail.lines().count() > 3,
        "full layout report expected, got {detail}"
    );
    assert!(!e.reason().contains('\n'));
    assert!(e.needs_rebuild());
}

#[test]
fn plugin_init_error() {
    let errors = load_err(&with(
        StageKind::Validator,
        "fixture-faulty",
        r#"{"fail_init": true}"#,
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(errors[0].stage, StageKind::Validator);
    assert_eq!(errors[0].reason(), "cannot start: fixture refuses to start");
}

#[test]
fn plugin_init_panic() {
    let errors = load_err(&with(
        StageKind::Validator,
        "fixture-faulty",
        r#"{"panic_init": true}"#,
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    let reason = &errors[0].reason();
    assert!(reason.starts_with("cannot start: panicked at "), "{reason}");
    assert!(
        reason.ends_with("fixture panics while starting"),
        "{reason}"
    );
}

#[test]
fn plugin_panic_during_a_call_is_an_error_for_that_call() {
    let dir = tempfile::tempdir().expect("temp dir");
    let specs = with(
        StageKind::Validator,
        "fixture-faulty",
        r#"{"panic_on_call": true}"#,
    );
    let loaded = load_all(&specs, &paths(), &setup(&dir)).unwrap_or_else(|e| panic!("{e:?}"));
    let request = Request::new("t", Fields::default(), None, Context::default()).expect("valid");
    let mut problems = Vec::new();
    let err = loaded
        .stages
        .validator
        .check_requests(std::slice::from_ref(&request), &mut problems)
        .expect_err("panics");
    assert_eq!(err.code, ErrorCode::Panic);
    assert!(
        err.message.contains("fixture panics while checking"),
        "{}",
        err.message
    );
    // The host and the plugin are still usable afterwards.
    let err = loaded
        .stages
        .validator
        .check_requests(&[request], &mut problems)
        .expect_err("panics again");
    assert_eq!(err.code, ErrorCode::Panic);
}

#[test]
fn unknown_config_key_is_named() {
    let errors = load_err(&with(
        StageKind::Cache,
        "cache-quick",
        r#"{"max_entires": 5}"#,
    ));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        errors[0]
            .reason()
            .starts_with("cannot start: unknown field `max_entires`"),
        "{}",
        errors[0].reason()
    );
}

#[test]
fn every_failing_stage_is_reported() {
    let mut specs = with(StageKind::Cache, "no-such-cache", "{}");
    specs[4].library = "fixture-not-a-plugin".into();
    let errors = load_err(&specs);
    let stages: Vec<StageKind> = errors.iter().map(|e| e.stage).collect();
    assert_eq!(stages, [StageKind::Cache, StageKind::Router]);
    assert!(
        errors[0].to_string().starts_with("cache plugin "),
        "{}",
        errors[0]
    );
}

#[test]
fn stage_the_library_does_not_provide() {
    let errors = load_err(&with(StageKind::Cache, "storage-redb", "{}"));
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert_eq!(
        errors[0].reason(),
        "the library provides no cache stage (it provides: storage)"
    );
}

#[test]
fn names_are_builtins_and_files_resolve() {
    let p = paths();
    let file = load::library_file_name("storage-redb");
    assert_eq!(
        file,
        format!(
            "{}storage_redb{}",
            std::env::consts::DLL_PREFIX,
            std::env::consts::DLL_SUFFIX
        )
    );
    // A bare name is a built-in, even with its library file right there.
    assert!(lib_dir().join(&file).is_file());
    assert_eq!(
        load::library("storage-redb", &p),
        Library::Builtin("storage-redb".into())
    );
    // A file name is looked up in the plugin directory, a path beside registry.toml.
    assert_eq!(
        load::library(&file, &p),
        Library::File(lib_dir().join(&file))
    );
    assert_eq!(
        load::library("plugins/x.so", &p),
        Library::File(lib_dir().join("plugins/x.so"))
    );
    assert_eq!(
        load::library("/opt/x.so", &p),
        Library::File(PathBuf::from("/opt/x.so"))
    );
}

#[test]
fn builtins_are_built_and_unknown_names_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    // The default plugins, named as registry.toml names the built-ins.
    let specs: Vec<StageSpec> = defaults()
        .into_iter()
        .map(|spec| StageSpec {
            library: registry_builtin::BUILTINS
                .iter()
                .find(|b| load::library_file_name(b.name) == spec.library)
                .expect("each default is built in")
                .name
                .to_owned(),
            ..spec
        })
        .collect();
    let names: Vec<&str> = registry_builtin::BUILTINS.iter().map(|b| b.name).collect();
    let built = load_all(&specs, &paths(), &setup(&dir)).unwrap_or_else(|e| panic!("{e:?}"));
    for info in &built.plugins {
        assert_eq!(info.path, PathBuf::new(), "{info:?}: built in, no file");
        assert!(names.contains(&info.name.as_str()), "{info:?}");
    }
    let pipeline = Pipeline::new(Schema::default(), built.stages);
    let request =
        Request::new("Block SSH", Fields::default(), None, Context::default()).expect("request");
    let added = pipeline.add_one(request).expect("added");
    assert!(added.created && added.entry.verify());
    drop(pipeline);

    // A name that is no built-in, and one that is but not of this stage.
    let mut wrong = specs.clone();
    for s in &mut wrong {
        match s.stage {
            StageKind::Cache => s.library = "cache-mokka".into(),
            StageKind::Router => s.library = "storage-redb".into(),
            _ => {}
        }
    }
    let errors = load_err(&wrong);
    assert_eq!(errors.len(), 2, "{errors:?}");
    let cache = errors
        .iter()
        .find(|e| e.stage == StageKind::Cache)
        .expect("cache");
    assert_eq!(cache.kind.name(), "NoSuchBuiltin");
    assert!(
        cache.to_string().starts_with(
            "cache stage: no plugin named `cache-mokka` is built in (built in: cache-quick, cache-moka, "
        ),
        "{cache}"
    );
    let router = errors
        .iter()
        .find(|e| e.stage == StageKind::Router)
        .expect("router");
    assert_eq!(router.kind.name(), "NotProvided", "{router}");
}

#[test]
fn one_stage_is_built_alone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (module, info) = load::open(&lib("storage-redb"), StageKind::Storage).expect("open");
    assert_eq!(info.stages, [StageKind::Storage]);
    let creating = Setup {
        create: Some(registry_core::Meta::new()),
        ..setup(&dir)
    };
    let built = load::build(module, StageKind::Storage, "{}", &creating).expect("built");
    assert_eq!(built.kind(), StageKind::Storage);
    match load::build(module, StageKind::Router, "{}", &setup(&dir)) {
        Err(e @ BuildError::NotProvided { .. }) => assert_eq!(
            e.to_string(),
            "the library provides no router stage (it provides: storage)"
        ),
        other => panic!("expected NotProvided, got {other:?}"),
    }
    let (module, _) = load::open(&lib("fixture-faulty"), StageKind::Validator).expect("open");
    match load::build(
        module,
        StageKind::Validator,
        r#"{"fail_init": true}"#,
        &setup(&dir),
    ) {
        Err(BuildError::Start(e)) => {
            assert_eq!(e.code, ErrorCode::Config);
            assert_eq!(e.message, "fixture refuses to start");
        }
        other => panic!("expected Start, got {other:?}"),
    }
}
