//! The writer against `yaml_serde`: every string and key reads back unchanged, documents read
//! back as the values written and as what `yaml_serde` writes for them, and the strings written
//! plain are exactly the plain keys the reader reads.

use std::collections::BTreeMap;

use proptest::prelude::*;
use registry_yaml::read::{self, Scratch};
use registry_yaml::write::{self, Slot};
use serde::Serialize;
use yaml_serde::{Mapping, Value};

use crate::tricky_strings;

fn emit<T: Serialize + ?Sized>(value: &T) -> String {
    write::to_string(value, 0).expect("the writer writes it")
}

fn parse(text: &str) -> Value {
    yaml_serde::from_str(text).unwrap_or_else(|e| panic!("{text}\ndoes not parse: {e}"))
}

#[test]
fn strings_read_back_unchanged() {
    for s in tricky_strings() {
        let doc = BTreeMap::from([("k", s.as_str())]);
        let yaml = emit(&doc);
        // Parsing into a `Value`, not a `String`, makes the parser resolve plain scalars, so a
        // `yes` or a `1` written plain would come back as a boolean or a number.
        let back: Value = yaml_serde::from_str(&yaml)
            .unwrap_or_else(|e| panic!("{s:?} wrote {yaml:?}, which does not parse: {e}"));
        assert_eq!(back["k"], Value::String(s.clone()), "{yaml:?}");
        assert_eq!(yaml.lines().count(), 1, "{yaml:?} spans lines");
    }
}

#[test]
fn keys_read_back_unchanged() {
    for s in tricky_strings() {
        let doc = BTreeMap::from([(s.as_str(), 1)]);
        let yaml = emit(&doc);
        let back: Mapping = yaml_serde::from_str(&yaml)
            .unwrap_or_else(|e| panic!("{s:?} wrote {yaml:?}, which does not parse: {e}"));
        let keys: Vec<&Value> = back.keys().collect();
        assert_eq!(keys, [&Value::String(s.clone())], "{yaml:?}");
    }
}

/// The strings the writer writes plain are exactly those the reader reads as plain keys: one
/// rule, seen from both sides. Every string the writer writes, in any style, is also read as a
/// value and as a key.
#[test]
fn plain_strings_are_the_readers_plain_keys() {
    let mut strings = tricky_strings();
    strings.extend(["Block SSH", "x;y=z", "Off", "nulls", "é", "ß-x", "a✓"].map(String::from));
    let mut scratch = Scratch::default();
    for s in strings {
        let mut written = String::new();
        write::write_scalar(&mut written, &s);
        let plain = written == s;
        let as_plain_key = read::scan(&format!("{s}: 1\n"), &mut scratch)
            .is_some_and(|d| d.paths() == [(s.clone(), false)]);
        assert_eq!(as_plain_key, plain, "{s:?} is written {written:?}");
        let key = read::scan(&format!("{written}: 1\n"), &mut scratch).map(|d| d.paths());
        assert_eq!(key, Some(vec![(s.clone(), false)]), "{written:?} as a key");
        let value = read::scan(&format!("k: {written}\n"), &mut scratch).map(|d| d.paths());
        assert_eq!(value, Some(vec![("k".to_owned(), false)]), "{written:?}");
    }
}

#[derive(Serialize)]
struct Nested {
    name: &'static str,
    count: u32,
    ratio: f64,
    flags: Vec<bool>,
    empty_list: Vec<u8>,
    empty_map: BTreeMap<String, u8>,
    none: Option<u8>,
    items: Vec<Item>,
    grid: Vec<Vec<i64>>,
    inner: Inner,
}

#[derive(Serialize)]
struct Item {
    a: u8,
    b: Vec<&'static str>,
}

#[derive(Serialize)]
struct Inner {
    deep: BTreeMap<&'static str, Vec<&'static str>>,
}

fn nested() -> Nested {
    Nested {
        name: "n: 1",
        count: 7,
        ratio: 1.0,
        flags: vec![true, false],
        empty_list: vec![],
        empty_map: BTreeMap::new(),
        none: None,
        items: vec![
            Item {
                a: 1,
                b: vec!["x", "y"],
            },
            Item { a: 2, b: vec![] },
        ],
        grid: vec![vec![1, -2], vec![]],
        inner: Inner {
            deep: BTreeMap::from([("k", vec!["v"])]),
        },
    }
}

#[test]
fn nested_collections_match_yaml_serde() {
    let value = nested();
    let ours = emit(&value);
    let theirs = yaml_serde::to_string(&value).expect("yaml_serde writes it");
    assert_eq!(
        parse(&ours),
        parse(&theirs),
        "ours:\n{ours}\ntheirs:\n{theirs}"
    );
}

/// A value written into a slot of a larger document is the text the whole document has there.
#[test]
fn values_written_in_place_are_the_documents_text() {
    let value = nested();
    let whole = emit(&BTreeMap::from([("outer", vec![&value])]));
    let mut pieces = String::from("outer:\n-");
    write::write_in(&mut pieces, Slot::Item { indent: 0 }, &value).expect("writes it");
    assert_eq!(pieces, whole);
    let whole = emit(&BTreeMap::from([("outer", &value)]));
    let mut pieces = String::from("outer:");
    write::write_in(&mut pieces, Slot::Value { indent: 0 }, &value).expect("writes it");
    assert_eq!(pieces, whole);
}

/// Strings for generated values: the tricky ones, short runs of YAML's indicators, and any
/// text at all.
pub fn string() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => proptest::sample::select(tricky_strings()),
        3 => "[a-zA-Z0-9 _./:#'\"\\\\,;=+()\\-]{0,10}",
        1 => "[a-zé✓ \\t\\n\u{85}\u{2028}\u{FEFF}\u{7F}\u{1}]{0,6}",
        1 => any::<String>(),
    ]
}

/// Scalars of every kind the writer writes, but NaN, which is not equal to itself.
fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("NaN is not equal to itself", |f| !f.is_nan())
            .prop_map(Value::from),
        prop_oneof![
            Just(1.0),
            Just(-0.0),
            Just(1e300),
            Just(1e-7),
            Just(f64::INFINITY)
        ]
        .prop_map(Value::from),
        string().prop_map(Value::String),
    ]
}

/// Values of a few levels of mappings (string keys) and sequences over [`scalar`]s.
pub fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Value::Sequence),
            prop::collection::vec((string(), inner), 0..6)
                .prop_map(|entries| Value::Mapping(mapping(entries))),
        ]
    })
}

/// A mapping of the entries, the last of a repeated key winning.
pub fn mapping(entries: Vec<(String, Value)>) -> Mapping {
    let mut map = Mapping::new();
    for (key, value) in entries {
        map.insert(Value::String(key), value);
    }
    map
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Whatever the writer writes reads back as the value written, and as what `yaml_serde`
    /// writes for it.
    #[test]
    fn written_values_read_back(value in value()) {
        let ours = emit(&value);
        prop_assert_eq!(&parse(&ours), &value, "{}", ours);
        let theirs = yaml_serde::to_string(&value).expect("yaml_serde writes it");
        prop_assert_eq!(parse(&ours), parse(&theirs), "ours:\n{}\ntheirs:\n{}", ours, theirs);
    }
}
