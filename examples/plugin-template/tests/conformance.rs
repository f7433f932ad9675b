//! The validator conformance suite of `registry-testkit`, run twice: in-process against
//! [`PolicyValidator`], and through the plugin ABI against the library cargo built for the
//! tests, loaded the way the registry loads it.

use std::path::{Path, PathBuf};

use plugin_template::{Config, PolicyValidator};
use registry_core::{FromConfig, Schema, Setup, StageKind};

fn setup(schema: &Schema) -> Setup {
    Setup {
        schema: schema.clone(),
        data_dir: PathBuf::from("/nonexistent"),
        config_dir: PathBuf::from("/nonexistent"),
        shard: 0,
        shards: 1,
        create: None,
    }
}

#[test]
fn conforms_in_process() {
    let schema = Schema::default();
    let v = PolicyValidator::from_config(Config::default(), &setup(&schema)).expect("starts");
    registry_testkit::validator::check(&v, &schema);

    // A policy must not break the contract: the suite's titles contain none of these words and
    // have at most four words.
    let config = Config {
        forbidden_words: vec!["password".into(), "tmp".into()],
        max_title_words: Some(4),
        ..Config::default()
    };
    let v = PolicyValidator::from_config(config, &setup(&schema)).expect("starts");
    registry_testkit::validator::check(&v, &schema);
}

/// The plugin library of this crate. Cargo builds the `cdylib` with the `rlib` whenever an
/// integration test needs the library, into the directory holding the test binary
/// (`target/<profile>/deps`), so the file found there is the one built from the current source.
/// (`cargo build` also copies it one level up, to the path README.md gives; that copy is only as
/// fresh as the last `cargo build`, so it is not looked at here.)
fn built_library() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary has a path");
    let deps = exe.parent().expect("the test binary is in a directory");
    let library = deps.join(format!(
        "{}plugin_template{}",
        std::env::consts::DLL_PREFIX,
        std::env::consts::DLL_SUFFIX
    ));
    assert!(
        library.is_file(),
        "{} not found: cargo builds it beside the test binary",
        library.display()
    );
    library
}

#[test]
fn conforms_through_the_built_library() {
    let library = built_library();
    check_library(&library, "{}");
    check_library(
        &library,
        r#"{ "forbidden_words": ["password"], "max_title_words": 4 }"#,
    );
}

fn check_library(library: &Path, config: &str) {
    if let Err(e) = registry_testkit::library::check(library, StageKind::Validator, config) {
        panic!("{}: {e}", library.display());
    }
}
