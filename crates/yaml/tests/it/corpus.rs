//! The reader and the writer together, against `yaml_serde`, on a corpus of generated
//! documents and their random mutations: documents shaped like the configs the default
//! generator renders (its template's sections, with titles and context values YAML could
//! misread), and random values, all written by the writer. Everything written with a mapping at
//! the top is read, agreeing with the parser; every mutation of it is either declined (and so
//! left to the parser) or read, agreeing with the parser.
//!
//! These were the validator's differential and mutation tests, run there on the generator's
//! rendered configs; the generator writes through this crate's writer, so the corpus is made
//! here with the writer, and the validator keeps one check that the generator's real configs
//! are read (`plugins/validator-schema/tests/it/fast_yaml.rs`).

use std::collections::BTreeMap;
use std::sync::OnceLock;

use proptest::prelude::*;
use registry_yaml::write;
use serde::Serialize;
use yaml_serde::Value;

use crate::agrees;
use crate::writer::{mapping, string, value};

use registry_testkit::text::TRICKY;

/// A config as the default generator's template shapes it.
#[derive(Serialize)]
struct Config<'a> {
    dashboard: Dashboard<'a>,
    governance: Governance<'a>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    context: BTreeMap<&'a str, &'a str>,
}

#[derive(Serialize)]
struct Dashboard<'a> {
    title: &'a str,
    version: String,
    header: String,
    grepable: String,
    security: Security,
    filters: Vec<&'a str>,
    deployment: Deployment<'a>,
    performance: Performance,
}

#[derive(Serialize)]
struct Security {
    csrf: bool,
    cookies: BTreeMap<&'static str, Value>,
    authentication: BTreeMap<&'static str, Value>,
    encryption: BTreeMap<&'static str, Value>,
    rate_limit: BTreeMap<&'static str, u32>,
}

#[derive(Serialize)]
struct Deployment<'a> {
    environment: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    region: Option<&'a str>,
    replicas: u8,
    health_check: &'a str,
}

#[derive(Serialize)]
struct Performance {
    cache: BTreeMap<&'static str, Value>,
    batch_size: u32,
    timeout_ms: u64,
    ratio: f64,
    spare: Option<u8>,
    empty: Vec<u8>,
    none: BTreeMap<String, u8>,
}

#[derive(Serialize)]
struct Governance<'a> {
    id: String,
    scope: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    variant: &'a str,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    owner: Option<&'a str>,
}

fn config<'a>(
    scope: &'a str,
    kind: &'a str,
    number: usize,
    title: &'a str,
    context: &BTreeMap<&'a str, &'a str>,
) -> Config<'a> {
    let production = context.get("env").is_some_and(|env| {
        env.eq_ignore_ascii_case("prod") || env.eq_ignore_ascii_case("production")
    });
    let id = format!("{scope}-{}-{number:03}", &kind[..3]);
    let version = format!("v{}.{}", number % 3, number % 11);
    let header = format!("[{scope}][{kind}][LIVE][{id}][{version}][DEV]");
    let flags = |pairs: &[(&'static str, Value)]| pairs.iter().cloned().collect();
    Config {
        dashboard: Dashboard {
            title,
            grepable: header.replace("][", "-").to_lowercase(),
            header,
            version,
            security: Security {
                csrf: production,
                cookies: flags(&[
                    ("secure", production.into()),
                    ("http_only", true.into()),
                    (
                        "same_site",
                        if production { "strict" } else { "lax" }.into(),
                    ),
                ]),
                authentication: flags(&[
                    ("required", true.into()),
                    ("mfa", production.into()),
                    (
                        "session_timeout_minutes",
                        if production { 15 } else { 480 }.into(),
                    ),
                ]),
                encryption: flags(&[
                    ("at_rest", production.into()),
                    (
                        "min_tls_version",
                        if production { "1.3" } else { "1.2" }.into(),
                    ),
                ]),
                rate_limit: BTreeMap::from([("requests_per_minute", 1000), ("burst", 200)]),
            },
            filters: match scope {
                "SEC" => vec!["threat_level", "source_ip", "destination_port", "action"],
                _ => vec!["id", "status", "created_at"],
            },
            deployment: Deployment {
                environment: context.get("env").copied().unwrap_or("development"),
                region: context.get("region").copied(),
                replicas: if production { 3 } else { 1 },
                health_check: "/health",
            },
            performance: Performance {
                cache: flags(&[
                    ("enabled", true.into()),
                    ("ttl_seconds", 300.into()),
                    ("max_entries", 10_000.into()),
                ]),
                batch_size: 50,
                timeout_ms: 5000,
                ratio: 0.25,
                spare: None,
                empty: vec![],
                none: BTreeMap::new(),
            },
        },
        governance: Governance {
            id: format!("{scope}-{}-{number:03}", &kind[..3]),
            scope,
            kind,
            variant: "LIVE",
            status: "DEV",
            owner: context.get("owner").copied(),
        },
        context: context.clone(),
    }
}

/// The corpus: a config for every scope and type of the default schema and every tricky
/// title, with contexts in turn, and one for every context in each scope.
fn corpus() -> &'static [String] {
    static CORPUS: OnceLock<Vec<String>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let mut contexts: Vec<BTreeMap<&str, &str>> = vec![
            BTreeMap::new(),
            BTreeMap::from([("env", "prod")]),
            BTreeMap::from([
                ("env", "PRODUCTION"),
                ("owner", "secops"),
                ("region", "eu-west-1"),
            ]),
            BTreeMap::from([
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
        for value in TRICKY {
            contexts.push(BTreeMap::from([
                ("owner", *value),
                ("region", *value),
                ("Tricky-Key_1.x", *value),
            ]));
        }
        let scopes = ["GOV", "SEC", "OPS", "ALERT", "BASH", "DASHBOARD", "ETL"];
        let kinds = ["RULES", "CONFIG", "SCRIPT", "MULTI-ETL"];
        let mut documents = Vec::new();
        let mut number = 1;
        for scope in scopes {
            for kind in kinds {
                for title in TRICKY {
                    let context = &contexts[number % contexts.len()];
                    documents.push(config(scope, kind, number, title, context));
                    number += 1;
                }
            }
            for context in &contexts {
                documents.push(config(scope, "RULES", number, "A rule", context));
                number += 1;
            }
        }
        documents
            .iter()
            .map(|d| write::to_string(d, 0).expect("the writer writes a config"))
            .collect()
    })
}

#[test]
fn every_corpus_document_is_read_and_agrees() {
    let documents = corpus();
    assert!(documents.len() > 1000, "{}", documents.len());
    for document in documents {
        assert!(agrees(document), "the reader declined:\n{document}");
    }
    // The tricky titles and contexts reach the documents in every style of scalar.
    let all = documents.concat();
    for needle in [
        ": '", ": \"", "\\x", "\\u", "''", "- ", "\\t", ": {}", ": []", ": null",
    ] {
        assert!(all.contains(needle), "no document contains {needle:?}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever the writer writes with a mapping at the top, the reader reads and agrees with
    /// the parser on (keys here are short: the reader leaves keys over `MAX_KEY_BYTES` to the
    /// parser, and `value()` nests far less than `MAX_DEPTH`).
    #[test]
    fn written_mappings_are_read_and_agree(
        entries in prop::collection::vec(
            (string().prop_filter("a short key", |k| k.len() <= 200), value()),
            0..8,
        ),
    ) {
        let text = write::to_string(&mapping(entries), 0).expect("the writer writes it");
        prop_assert!(agrees(&text), "the reader declined:\n{}", text);
    }

    /// Whatever the writer writes, mapping at the top or not, the reader declines or agrees on.
    #[test]
    fn written_values_agree_or_fall_back(value in value()) {
        let text = write::to_string(&value, 0).expect("the writer writes it");
        agrees(&text);
    }
}

/// The characters the mutations insert: those YAML gives a meaning, and a letter.
const ALPHABET: &[char] = &[
    ':', '-', ' ', '\n', '#', '\'', '"', '{', '}', '[', ']', '&', '*', '!', '?', '|', '>', '%',
    '@', '\t', '~', ',', '\\', '.', 'a', '1',
];

/// One edit of a text: insert, delete or replace one character at a position given as a
/// fraction of the length, so that it applies to any text.
#[derive(Debug, Clone, Copy)]
enum Edit {
    Insert(f64, char),
    Delete(f64),
    Replace(f64, char),
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for edit in edits {
        let at = |f: f64, len: usize| ((f * len as f64) as usize).min(len);
        match *edit {
            Edit::Insert(f, c) => chars.insert(at(f, chars.len()), c),
            Edit::Delete(f) if !chars.is_empty() => {
                chars.remove(at(f, chars.len() - 1));
            }
            Edit::Replace(f, c) if !chars.is_empty() => {
                let i = at(f, chars.len() - 1);
                chars[i] = c;
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = || proptest::sample::select(ALPHABET);
    prop_oneof![
        (0.0..1.0, c()).prop_map(|(f, c)| Edit::Insert(f, c)),
        (0.0..1.0f64).prop_map(Edit::Delete),
        (0.0..1.0, c()).prop_map(|(f, c)| Edit::Replace(f, c)),
    ]
}

/// A few documents of the corpus, of each scope, to mutate.
fn samples() -> Vec<&'static str> {
    corpus().iter().step_by(11).map(String::as_str).collect()
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 4000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn mutated_documents_agree_or_fall_back(
        pick in any::<prop::sample::Index>(),
        edits in prop::collection::vec(edit(), 1..4),
    ) {
        let samples = samples();
        let text = apply(samples[pick.index(samples.len())], &edits);
        agrees(&text);
    }
}

/// The mutation test has teeth: a fixed run of single edits both keeps many mutants inside
/// the subset (so they are compared with the parser) and pushes many outside it.
#[test]
fn mutations_reach_both_answers() {
    let samples = samples();
    let (mut inside, mut outside) = (0, 0);
    let mut seed = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..3000 {
        let text = samples[next() as usize % samples.len()];
        let f = (next() % 10_000) as f64 / 10_000.0;
        let c = ALPHABET[next() as usize % ALPHABET.len()];
        let edit = match next() % 3 {
            0 => Edit::Insert(f, c),
            1 => Edit::Delete(f),
            _ => Edit::Replace(f, c),
        };
        if agrees(&apply(text, &[edit])) {
            inside += 1;
        } else {
            outside += 1;
        }
    }
    assert!(
        inside > 300 && outside > 300,
        "{inside} inside, {outside} outside"
    );
}
