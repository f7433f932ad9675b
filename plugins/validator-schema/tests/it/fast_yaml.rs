//! The validator's fast YAML path against its full parse, on the configs the default generator
//! really renders: every one of them is read by `registry-yaml`'s reader (so the fast path is
//! taken), with the key paths `yaml_serde` reads; and the validator reports the same problems
//! with `fast_yaml` on as with it off, on those configs and on texts of every verdict.
//!
//! The reader itself is held to `yaml_serde` in `registry-yaml`'s tests, on hand-written
//! hazards, generated documents and random mutations; these were its tests while it was this
//! crate's `scan` module.

use std::path::PathBuf;
use std::sync::OnceLock;

use registry_core::{
    Context, Draft, EntryId, Field, Fields, FromConfig, Generator, Header, Schema,
};
use registry_generator_default::DefaultGenerator;
use registry_validator_schema::{Config, SchemaValidator};
use registry_yaml::read::{self, Scratch};
use yaml_serde::Value;

use crate::setup;

use registry_testkit::text::TRICKY;

/// The configs the default generator renders, with the shipped templates and with its
/// built-in copy, for every scope and type and a range of titles and contexts.
fn rendered() -> &'static [String] {
    static CONFIGS: OnceLock<Vec<String>> = OnceLock::new();
    CONFIGS.get_or_init(|| {
        let shipped = registry_generator_default::Config {
            templates_dir: Some(PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../templates"
            ))),
            ..Default::default()
        };
        let generators = [
            DefaultGenerator::from_config(shipped, &setup()).expect("the shipped templates"),
            DefaultGenerator::from_config(Default::default(), &setup())
                .expect("the built-in templates"),
        ];
        let schema = Schema::default();
        let pairs = |p: &[(&str, &str)]| {
            Context::new(p.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
                .expect("valid context")
        };
        let mut contexts = vec![
            Context::default(),
            pairs(&[("env", "prod")]),
            pairs(&[
                ("env", "PRODUCTION"),
                ("owner", "secops"),
                ("region", "eu-west-1"),
            ]),
            pairs(&[
                ("env", "dev"),
                ("true", "1"),
                ("null", ""),
                ("1", "~"),
                ("a.b", "x: y"),
                ("-x", "- y"),
                ("_", "'"),
                ("note", "# x: [y]"),
            ]),
        ];
        for value in TRICKY.iter().filter(|v| !v.contains(['\n', '\u{85}'])) {
            if let Ok(context) = Context::new([
                ("owner".to_owned(), (*value).to_owned()),
                ("region".to_owned(), (*value).to_owned()),
                ("Tricky-Key_1.x".to_owned(), (*value).to_owned()),
            ]) {
                contexts.push(context);
            }
        }
        let mut drafts = Vec::new();
        let mut number = 1;
        for scope in schema.allowed(Field::Scope) {
            for kind in schema.allowed(Field::Type) {
                for (i, title) in TRICKY.iter().enumerate() {
                    let context = &contexts[(i + number as usize) % contexts.len()];
                    let variant = schema.allowed(Field::Variant);
                    let status = schema.allowed(Field::Status);
                    drafts.push(Draft {
                        header: Header {
                            fields: Fields {
                                scope: scope.clone(),
                                kind: kind.clone(),
                                variant: variant[i % variant.len()].clone(),
                                status: status[i % status.len()].clone(),
                            },
                            id: EntryId::new(EntryId::prefix_for(scope, kind), number),
                            version: format!("v{}.{}", i % 3, number % 11),
                        },
                        title: (*title).to_owned(),
                        context: context.clone(),
                    });
                    number += 1;
                }
            }
            // Every context, once per scope.
            for context in &contexts {
                drafts.push(Draft {
                    header: Header {
                        fields: Fields {
                            scope: scope.clone(),
                            kind: "RULES".into(),
                            variant: "LIVE".into(),
                            status: "DEV".into(),
                        },
                        id: EntryId::new(EntryId::prefix_for(scope, "RULES"), number),
                        version: "v2.9".into(),
                    },
                    title: "A rule".into(),
                    context: context.clone(),
                });
                number += 1;
            }
        }
        let mut configs = Vec::new();
        for generator in &generators {
            generator
                .render(&drafts, &mut configs)
                .expect("the drafts render");
        }
        configs
    })
}

/// Every rendered config is read by the fast path, with the key paths and null values the
/// parser reads.
#[test]
fn every_rendered_config_is_read_and_agrees() {
    let configs = rendered();
    assert!(configs.len() > 2000, "{}", configs.len());
    let mut scratch = Scratch::default();
    for config in configs {
        let document = read::scan(config, &mut scratch)
            .unwrap_or_else(|| panic!("the reader declined a rendered config:\n{config}"));
        let mut ours = document.paths();
        let value: Value = yaml_serde::from_str(config).expect("a rendered config parses");
        let mut theirs = read::value_paths(&value);
        ours.sort();
        theirs.sort();
        assert_eq!(ours, theirs, "key paths of\n{config}");
    }
    // The tricky titles and contexts reach the configs in every style of scalar.
    let all = configs.concat();
    for needle in [": '", ": \"", "\\x", "\\u", "''", "- "] {
        assert!(
            all.contains(needle),
            "no rendered config contains {needle:?}"
        );
    }
}

/// Texts of every verdict: read by the reader, with null values and nested keys; valid YAML it
/// leaves to the parser; not a mapping; not YAML at all (a repeated key, bad indentation, an
/// unknown escape, an unterminated quote).
const HAZARDS: &[&str] = &[
    "{}\n",
    "a:\n",
    "a: ~\nb: null\nc: Null\nd: NULL\ne: nulls\nf: ''\n",
    "a:\n  b:\n    c: x\n  d: []\ne: {}\n",
    "a:\n- k: 1\n  j:\n  - 2\n- - 1\n- {}\nb: 1\n",
    "'a b': 1\n\"c\\td\": 2\n'it''s': 3\n'a.b': 4\n",
    "a: 1 # comment\n",
    "a: {b: 1}\ne: [1]\n",
    "a: &x 1\nb: *x\n",
    "a: nULL\n",
    "a: |\n  text\n",
    "---\na:\n  b: 2\n",
    "a:\n\tb: 1\n",
    "",
    "- a\n",
    "plain text\n",
    "[]\n",
    "a: 1\na: 2\n",
    "a:\n  k: 1\n  k: 2\n",
    "a: 1\n b: 2\n",
    "a: \"\\q\"\n",
    "a: 'unterminated\n",
    "a: b: c\n",
];

/// The validator reports the same problems with the fast path as without it, for rendered
/// configs, the hazards and their required keys.
#[test]
fn the_validator_reports_the_same_either_way() {
    use registry_core::{Entry, Fingerprint, Timestamp, Validator};

    let required = std::collections::BTreeMap::from([
        (
            "*".to_owned(),
            vec![
                "dashboard.title".to_owned(),
                "dashboard.deployment.region".to_owned(),
                "governance.owner".to_owned(),
                "context".to_owned(),
                "a".to_owned(),
                "a.b".to_owned(),
            ],
        ),
        (
            "SEC".to_owned(),
            vec![
                "dashboard.security.authentication.mfa".to_owned(),
                "e".to_owned(),
            ],
        ),
    ]);
    let mut setup = setup();
    setup.schema = Schema::default()
        .with_required(required)
        .expect("valid schema");
    let validator = |fast_yaml: bool| {
        let config = Config {
            fast_yaml,
            ..Config::default()
        };
        SchemaValidator::from_config(config, &setup).expect("valid config")
    };
    let texts = rendered()
        .iter()
        .map(String::as_str)
        .chain(HAZARDS.iter().copied());
    let entries: Vec<Entry> = texts
        .enumerate()
        .map(|(i, config)| {
            let scope = if i % 2 == 0 { "SEC" } else { "OPS" };
            let header = Header {
                fields: Fields {
                    scope: scope.into(),
                    kind: "RULES".into(),
                    variant: "LIVE".into(),
                    status: "DEV".into(),
                },
                id: EntryId::new(EntryId::prefix_for(scope, "RULES"), 1),
                version: "v1".into(),
            };
            let context = Context::default();
            Entry {
                hash: Entry::compute_hash(&header, "t", &context, config),
                previous: None,
                purge: None,
                author: None,
                header,
                title: "t".into(),
                context,
                config: config.to_owned(),
                fingerprint: Fingerprint([0; 16]),
                revision: 1,
                created_at: Timestamp(0),
                updated_at: Timestamp(0),
                provenance: None,
                lifecycle: registry_core::Lifecycle::Active,
            }
        })
        .collect();
    let (mut fast, mut full) = (Vec::new(), Vec::new());
    validator(true)
        .check_entries(&entries, &mut fast)
        .expect("validator works");
    validator(false)
        .check_entries(&entries, &mut full)
        .expect("validator works");
    assert_eq!(fast, full);
    // The comparison covers every kind of answer.
    for code in [
        "missing-config-key",
        "config-not-yaml",
        "config-not-mapping",
    ] {
        assert!(fast.iter().any(|p| p.code == code), "no {code}");
    }
}
