//! Golden documents: the exact bytes the writer writes for a few representative values, pinned.
//!
//! Configs' bytes feed their content hashes, so a change in any byte the writer writes would
//! change the hash of every config rendered afterwards, and entries rendered again would no
//! longer match the ones stored. A failure here is that change caught: it needs a decision and a
//! plan for stored entries, not an updated expectation. There is deliberately no switch that
//! rewrites these texts. They were taken from the emitter of the default generator before it
//! moved into this crate; the generator's own snapshot of its rendered configs
//! (`plugins/generator-default/tests/snapshots/built_in.yaml`) pins the same bytes end to end.

use std::collections::BTreeMap;

use registry_yaml::write;
use serde::Serialize;

fn w<T: Serialize + ?Sized>(value: &T) -> String {
    write::to_string(value, 0).expect("the writer writes every golden document")
}

/// A config as the default generator renders it: nested sections, a sequence level with its
/// key, optional entries, and a title and context values that need quoting.
#[derive(Serialize)]
struct Config {
    dashboard: Dashboard,
    governance: BTreeMap<&'static str, &'static str>,
    context: BTreeMap<&'static str, &'static str>,
}

#[derive(Serialize)]
struct Dashboard {
    title: &'static str,
    version: &'static str,
    header: &'static str,
    security: BTreeMap<&'static str, BTreeMap<&'static str, Scalar>>,
    filters: Vec<&'static str>,
    deployment: Deployment,
}

#[derive(Serialize)]
struct Deployment {
    environment: &'static str,
    region: Option<&'static str>,
    replicas: u8,
    health_check: &'static str,
}

/// A scalar of any kind, written as its content.
#[derive(Serialize)]
#[serde(untagged)]
enum Scalar {
    Bool(bool),
    Int(i64),
    Text(&'static str),
}

fn config() -> Config {
    Config {
        dashboard: Dashboard {
            title: "Block SSH: from 0.0.0.0/0 # now",
            version: "v2.9",
            header: "[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]",
            security: BTreeMap::from([
                (
                    "authentication",
                    BTreeMap::from([
                        ("mfa", Scalar::Bool(true)),
                        ("session_timeout_minutes", Scalar::Int(15)),
                    ]),
                ),
                (
                    "encryption",
                    BTreeMap::from([("min_tls_version", Scalar::Text("1.3"))]),
                ),
            ]),
            filters: vec!["threat_level", "source_ip", "destination_port"],
            deployment: Deployment {
                environment: "production",
                region: None,
                replicas: 3,
                health_check: "/health",
            },
        },
        governance: BTreeMap::from([("id", "SEC-RUL-042"), ("owner", "it's me")]),
        context: BTreeMap::from([
            ("env", "PRODUCTION"),
            ("note", "# x: [y]"),
            ("true", "1"),
            ("Tricky-Key_1.x", "é ünïcödé ✓"),
        ]),
    }
}

#[derive(Serialize)]
enum Variant {
    Alpha,
}

#[derive(Serialize)]
struct Newtype(u16);

#[derive(Serialize)]
struct Unit;

/// Every kind of scalar, and strings in each style with each escape.
#[derive(Serialize)]
struct Scalars {
    yes: bool,
    no: bool,
    negative: i64,
    large: u64,
    wide: i128,
    one: f64,
    negative_zero: f64,
    huge: f64,
    tiny: f32,
    nan: f64,
    infinity: f64,
    negative_infinity: f64,
    none: Option<u8>,
    unit: (),
    unit_struct: Unit,
    variant: Variant,
    newtype: Newtype,
    letter: char,
    hash: char,
    strings: Vec<&'static str>,
}

fn scalars() -> Scalars {
    Scalars {
        yes: true,
        no: false,
        negative: -42,
        large: u64::MAX,
        wide: i128::MIN,
        one: 1.0,
        negative_zero: -0.0,
        huge: 1e300,
        tiny: 1.5e-7,
        nan: f64::NAN,
        infinity: f64::INFINITY,
        negative_infinity: f64::NEG_INFINITY,
        none: None,
        unit: (),
        unit_struct: Unit,
        variant: Variant::Alpha,
        newtype: Newtype(7),
        letter: 'x',
        hash: '#',
        strings: vec![
            "Block SSH",
            "/health",
            "a-b_c.d/e (f) +g, h; i=j",
            "é ünïcödé",
            "",
            "yes",
            "Null",
            "~",
            "123",
            "-1",
            "1.5",
            "- item",
            "key: value",
            "it's",
            "trailing ",
            "✓ done",
            "say \"hi\" \\ there",
            "tab\tline\nreturn\rnul\0",
            "nel\u{85}ls\u{2028}ps\u{2029}",
            "del\u{7F}esc\u{1B}c1\u{9B}",
            "bom\u{FEFF}nonchar\u{FFFE}",
            "😀 astral",
        ],
    }
}

/// Collections in every position: sequences of sequences, mappings in sequences, empty ones
/// everywhere, and keys that need quoting.
#[derive(Serialize)]
struct Nesting {
    grid: Vec<Vec<Vec<u8>>>,
    records: Vec<BTreeMap<&'static str, Vec<&'static str>>>,
    tuple: (u8, &'static str, Option<bool>),
    empty_list: Vec<u8>,
    empty_map: BTreeMap<&'static str, u8>,
    deep: BTreeMap<&'static str, BTreeMap<&'static str, BTreeMap<&'static str, Vec<u8>>>>,
    keys: BTreeMap<&'static str, u8>,
}

fn nesting() -> Nesting {
    Nesting {
        grid: vec![vec![vec![1, 2], vec![]], vec![], vec![vec![3]]],
        records: vec![
            BTreeMap::from([("a", vec!["x", "y"]), ("b", vec![])]),
            BTreeMap::new(),
            BTreeMap::from([("c", vec!["z"])]),
        ],
        tuple: (1, "x", None),
        empty_list: vec![],
        empty_map: BTreeMap::new(),
        deep: BTreeMap::from([(
            "one",
            BTreeMap::from([(
                "two",
                BTreeMap::from([("three", vec![4]), ("four", vec![])]),
            )]),
        )]),
        keys: BTreeMap::from([
            ("", 1),
            ("key: value", 2),
            ("yes", 3),
            ("tab\t", 4),
            ("it's", 5),
            ("plain key", 6),
        ]),
    }
}

/// Each document, written.
fn documents() -> Vec<(&'static str, String)> {
    let root_sequence: Vec<Vec<BTreeMap<&str, u8>>> = vec![
        vec![BTreeMap::from([("a", 1), ("b", 2)])],
        vec![],
        vec![BTreeMap::new()],
    ];
    vec![
        ("config", w(&config())),
        ("scalars", w(&scalars())),
        ("nesting", w(&nesting())),
        ("root sequence", w(&root_sequence)),
        ("root scalar", w("yes")),
        ("root empty mapping", w(&BTreeMap::<String, u8>::new())),
        ("root empty sequence", w(&Vec::<u8>::new())),
    ]
}

/// What the writer writes for each of [`documents`], byte for byte.
const EXPECTED: &[(&str, &str)] = &[
    (
        "config",
        r##"dashboard:
  title: 'Block SSH: from 0.0.0.0/0 # now'
  version: v2.9
  header: '[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]'
  security:
    authentication:
      mfa: true
      session_timeout_minutes: 15
    encryption:
      min_tls_version: '1.3'
  filters:
  - threat_level
  - source_ip
  - destination_port
  deployment:
    environment: production
    region: null
    replicas: 3
    health_check: /health
governance:
  id: SEC-RUL-042
  owner: 'it''s me'
context:
  Tricky-Key_1.x: 'é ünïcödé ✓'
  env: PRODUCTION
  note: '# x: [y]'
  'true': '1'
"##,
    ),
    (
        "scalars",
        r##"'yes': true
'no': false
negative: -42
large: 18446744073709551615
wide: -170141183460469231731687303715884105728
one: 1.0
negative_zero: -0.0
huge: 1e300
tiny: 1.500000053056283e-7
nan: .nan
infinity: .inf
negative_infinity: -.inf
none: null
unit: null
unit_struct: null
variant: Alpha
newtype: 7
letter: x
hash: '#'
strings:
- Block SSH
- /health
- a-b_c.d/e (f) +g, h; i=j
- é ünïcödé
- ''
- 'yes'
- 'Null'
- '~'
- '123'
- '-1'
- '1.5'
- '- item'
- 'key: value'
- 'it''s'
- 'trailing '
- '✓ done'
- 'say "hi" \ there'
- "tab\tline\nreturn\rnul\0"
- "nel\Nls\Lps\P"
- "del\x7Fesc\x1Bc1\x9B"
- "bom\uFEFFnonchar\uFFFE"
- '😀 astral'
"##,
    ),
    (
        "nesting",
        r##"grid:
- - - 1
    - 2
  - []
- []
- - - 3
records:
- a:
  - x
  - 'y'
  b: []
- {}
- c:
  - z
tuple:
- 1
- x
- null
empty_list: []
empty_map: {}
deep:
  one:
    two:
      four: []
      three:
      - 4
keys:
  '': 1
  'it''s': 5
  'key: value': 2
  plain key: 6
  "tab\t": 4
  'yes': 3
"##,
    ),
    (
        "root sequence",
        r##"- - a: 1
    b: 2
- []
- - {}
"##,
    ),
    (
        "root scalar",
        r##"'yes'
"##,
    ),
    (
        "root empty mapping",
        r##"{}
"##,
    ),
    (
        "root empty sequence",
        r##"[]
"##,
    ),
];

#[test]
fn the_writer_writes_these_bytes() {
    let documents = documents();
    let names: Vec<&str> = documents.iter().map(|(name, _)| *name).collect();
    let expected_names: Vec<&str> = EXPECTED.iter().map(|(name, _)| *name).collect();
    assert_eq!(names, expected_names);
    for ((name, written), (_, expected)) in documents.iter().zip(EXPECTED) {
        assert_eq!(
            written, expected,
            "the writer no longer writes the golden document `{name}` byte for byte; it wrote:\n{written}"
        );
    }
}

/// The golden documents read back through `yaml_serde` as what `yaml_serde` itself writes for
/// the same values, so the pinned bytes are also right, not only unchanged.
#[test]
fn the_golden_documents_are_the_values() {
    // Three lines are left out of the comparison: `yaml_serde`'s values hold no integer beyond
    // 64 bits (`wide`), NaN is not equal to itself (`nan`), and the writer writes an `f32` as
    // the `f64` it widens to (`1.500000053056283e-7`) where `yaml_serde` writes the `f32`'s own
    // shortest form (`1.5e-7`): both read back as the same `f32`, not as the same `f64`.
    let parse = |text: &str| -> yaml_serde::Value {
        let kept: String = text
            .split_inclusive('\n')
            .filter(|line| {
                !["wide:", "nan:", "tiny:"]
                    .iter()
                    .any(|k| line.starts_with(k))
            })
            .collect();
        yaml_serde::from_str(&kept).unwrap_or_else(|e| panic!("{kept}\ndoes not parse: {e}"))
    };
    let references = [
        ("config", yaml_serde::to_string(&config())),
        ("scalars", yaml_serde::to_string(&scalars())),
        ("nesting", yaml_serde::to_string(&nesting())),
    ];
    let documents = documents();
    for (name, reference) in references {
        let reference = reference.expect("yaml_serde writes it");
        let (_, ours) = documents
            .iter()
            .find(|(n, _)| *n == name)
            .expect("a golden document of that name");
        assert_eq!(parse(ours), parse(&reference), "{name}");
    }
}
