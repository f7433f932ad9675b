//! `registry_core::nesting` held to `yaml_serde`, the parser it guards: on every text the parser
//! reads, the depth the check measures is the nesting of the parsed values (exactly, for flow
//! collections; within the levels libyaml's indentation stack does not record, for block ones),
//! and what aliases expand to stays within what the check counted. A check that saw less
//! nesting than the parser builds would let the quadratic inputs through; one that saw more
//! would refuse configs the parser reads.

use registry_core::nesting::{self, Limits, Measured};
use yaml_serde::Value;

/// No limits: every text is measured.
const UNLIMITED: Limits = Limits {
    max_depth: usize::MAX,
    max_aliased_nodes: u64::MAX,
};

fn measure(text: &str) -> Measured {
    nesting::check(text, &UNLIMITED).unwrap_or_else(|e| panic!("{text:?}: {e}"))
}

/// Every document of `text` as `yaml_serde` parses it, or `None` when it does not.
fn parse(text: &str) -> Option<Vec<Value>> {
    use serde::Deserialize;
    yaml_serde::Deserializer::from_str(text)
        .map(Value::deserialize)
        .collect::<Result<_, _>>()
        .ok()
}

/// How many collections nest in `value`, keys included.
fn depth(value: &Value) -> usize {
    match value {
        Value::Sequence(items) => 1 + items.iter().map(depth).max().unwrap_or(0),
        Value::Mapping(map) => {
            1 + map
                .iter()
                .map(|(k, v)| depth(k).max(depth(v)))
                .max()
                .unwrap_or(0)
        }
        Value::Tagged(tagged) => depth(&tagged.value),
        _ => 0,
    }
}

/// How many nodes `value` holds, keys included.
fn nodes(value: &Value) -> u64 {
    1 + match value {
        Value::Sequence(items) => items.iter().map(nodes).sum(),
        Value::Mapping(map) => map.iter().map(|(k, v)| nodes(k) + nodes(v)).sum(),
        Value::Tagged(tagged) => nodes(&tagged.value) - 1,
        _ => 0,
    }
}

/// A small deterministic generator (xorshift), so that a failure names its case.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

/// Scalars that hide brackets, quotes and `#` from a careless scanner, or show them to it.
const FLOW_SCALARS: &[&str] = &[
    "a",
    "a'b",
    "a\"b",
    "a#b",
    "a:b",
    "'[x'",
    "'it''s {'",
    "'multi\n line ['",
    "\"[\\\"{\"",
    "\"a\\\n  [b\"",
    "\"\\u005b\"",
    "!t x",
    "!!str '['",
    "!<tag:x,[]> y",
    "&n z",
    "~",
    "-1",
];

/// Separators between items of a flow collection, comments and line breaks included.
const FLOW_GAPS: &[&str] = &[", ", ",", " ,\n ", ", # a [comment {\n  ", ",\n\n "];

/// A flow collection nested up to `depth` levels, with tricky scalars.
fn flow_node(rng: &mut Rng, depth: usize, out: &mut String) {
    if depth == 0 || rng.below(3) == 0 {
        out.push_str(rng.pick(FLOW_SCALARS));
        return;
    }
    let mapping = rng.below(2) == 0;
    out.push(if mapping { '{' } else { '[' });
    for i in 0..rng.below(4) {
        if i > 0 {
            out.push_str(rng.pick(FLOW_GAPS));
        }
        if mapping {
            out.push_str(&format!("k{i}: "));
        }
        flow_node(rng, depth - 1, out);
    }
    out.push(if mapping { '}' } else { ']' });
}

/// Pure flow documents (no `key: value` inside a flow sequence, whose single-pair mappings
/// have no bracket): the check's depth is the parsed depth, exactly.
#[test]
fn flow_depth_is_the_parsed_depth() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut compared = 0;
    for _ in 0..4000 {
        let mut text = String::new();
        if rng.below(2) == 0 {
            text.push_str("key: ");
        }
        flow_node(&mut rng, 6, &mut text);
        text.push_str(rng.pick(&["\n", " # [[\n", ""]));
        let measured = measure(&text);
        if let Some(values) = parse(&text) {
            let parsed = values.iter().map(depth).max().unwrap_or(0);
            assert_eq!(measured.depth, parsed, "{text:?}");
            compared += 1;
        }
    }
    assert!(compared > 3000, "only {compared} texts parsed");
}

/// Fragments of YAML, to be strung together at random: most strings do not parse, the many
/// that do are compared.
const FRAGMENTS: &[&str] = &[
    "a",
    "b: ",
    "- ",
    "\n",
    "  ",
    "    ",
    "[",
    "]",
    "{",
    "}",
    ", ",
    ": ",
    "? ",
    "'x[y'",
    "\"q{\\\"\"",
    "# c[{\n",
    "|\n",
    ">-\n",
    "|2\n",
    "&a ",
    "*a",
    "&b ",
    "*b",
    "!t ",
    "'",
    "\"",
    "--- ",
    "...\n",
    "x",
    "\t",
    " #",
    "[a, b]",
    "{k: v}",
    "a'b",
    "c\"d",
    "%YAML 1.2\n",
    "\r\n",
    "\u{2028}",
    "é",
];

fn random_text(rng: &mut Rng) -> String {
    (0..1 + rng.below(30))
        .map(|_| rng.pick(FRAGMENTS))
        .collect()
}

/// The configs and templates the registry ships, each with a few random fragments inserted.
fn mutated_template(rng: &mut Rng) -> String {
    const TEMPLATES: &[&str] = &[
        include_str!("../../../../templates/default.yaml"),
        include_str!("../../../../templates/SEC.yaml"),
        include_str!("../../../../templates/OPS.yaml"),
        include_str!("../../../../templates/ETL.yaml"),
        include_str!("../../../../templates/DASHBOARD.yaml"),
    ];
    let mut text = TEMPLATES[rng.below(TEMPLATES.len())].to_owned();
    for _ in 0..rng.below(3) {
        let mut at = rng.below(text.len() + 1);
        while !text.is_char_boundary(at) {
            at -= 1;
        }
        text.insert_str(at, rng.pick(FRAGMENTS));
    }
    text
}

/// The check never counts more levels than the parser builds, and never fewer than half:
/// libyaml opens no indentation level for a sequence at its key's column (`key:\n- item`) or
/// for a single-pair mapping in a flow sequence (`[a: b]`), so each level the check counts may
/// hold one such level more.
#[test]
fn measured_depth_bounds_the_parsed_depth() {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let mut compared = 0;
    for case in 0..20_000 {
        let text = if case % 4 == 0 {
            mutated_template(&mut rng)
        } else {
            random_text(&mut rng)
        };
        let measured = measure(&text);
        let Some(values) = parse(&text) else {
            continue;
        };
        if text.contains('*') {
            continue;
        }
        let parsed = values.iter().map(depth).max().unwrap_or(0);
        assert!(
            measured.depth <= parsed && parsed <= 2 * measured.depth + 1,
            "{text:?}: measured {}, parsed {parsed}",
            measured.depth
        );
        compared += 1;
    }
    assert!(compared > 3000, "only {compared} texts parsed");
}

/// A mapping whose entries are anchored and refer to the entries before them, in flow and in
/// block form.
fn aliased_text(rng: &mut Rng) -> String {
    let mut text = String::new();
    for i in 0..1 + rng.below(6) {
        let refer = |rng: &mut Rng| match i {
            0 => "x".to_owned(),
            _ => format!("*a{}", rng.below(i)),
        };
        text.push_str(&format!("k{i}: &a{i}"));
        match rng.below(4) {
            0 => text.push_str(&format!(" {}\n", refer(rng))),
            1 => {
                let items: Vec<String> = (0..rng.below(4)).map(|_| refer(rng)).collect();
                text.push_str(&format!(" [{}]\n", items.join(", ")));
            }
            2 => {
                text.push('\n');
                for j in 0..1 + rng.below(3) {
                    text.push_str(&format!("  m{j}: {}\n", refer(rng)));
                }
            }
            _ => {
                text.push('\n');
                for _ in 0..1 + rng.below(3) {
                    text.push_str(&format!("- {}\n", refer(rng)));
                }
            }
        }
    }
    text
}

/// What the parser builds from a text with aliases is within what the check counted: at most
/// two nodes per token (a key without a value is a key and a null).
#[test]
fn aliases_expand_to_no_more_than_counted() {
    let mut rng = Rng(0x0123_4567_89ab_cdef);
    let mut compared = 0;
    let texts = (0..10_000)
        .map(|i| match i % 2 {
            0 => random_text(&mut rng),
            _ => aliased_text(&mut rng),
        })
        .collect::<Vec<_>>()
        .into_iter()
        .chain(
            [
                "a: &x [1, 2, 3]\nb: *x\nc: [*x, *x]\n",
                "a: &x\n  k: [1, 2]\n  l: {m: n}\nb: *x\n",
                "a: &x\n- 1\n- [2, 3]\nb: [*x, *x, *x]\n",
                "- &x\n  - &y [1, 2]\n  - *y\n- *x\n- *y\n",
                "{&x [a, b]: *x, c: *x}\n",
                "a: &x !t [1, 2]\nb: !u *x\n",
                "a: &x [&y [1, 2, 3], *y]\nb: *x\nc: *y\n",
            ]
            .map(str::to_owned),
        );
    for text in texts {
        let measured = measure(&text);
        let Some(values) = parse(&text) else {
            continue;
        };
        let parsed: u64 = values.iter().map(nodes).sum();
        assert!(
            parsed <= 2 * measured.nodes + 2,
            "{text:?}: counted {}, parsed {parsed}",
            measured.nodes
        );
        if text.contains('*') {
            compared += 1;
        }
    }
    assert!(compared > 1500, "only {compared} texts with aliases parsed");
}

/// Whatever the check allows within the parser's own depth limit, the parser reads without
/// running into that limit: no text passes the check only to fail for nesting in the parser.
#[test]
fn allowed_texts_stay_within_the_parsers_limit() {
    // 64 levels by the check's count: never more than 2 × 64 + 1 for the parser, which allows
    // 128 nested collections and fails on the 129th.
    let cases = [
        format!("{}1{}\n", "[".repeat(64), "]".repeat(64)),
        format!("{}1{}\n", "{a: ".repeat(64), "}".repeat(64)),
        format!("{}x\n", "- ".repeat(64)),
        (0..64).fold(String::new(), |text, level| {
            text + &format!("{}k:\n", "  ".repeat(level))
        }),
    ];
    for text in &cases {
        assert_eq!(measure(text).depth, 64, "{text:?}");
        nesting::check(text, &Limits::default()).expect("within the default limit");
        assert!(parse(text).is_some(), "{text:?}");
    }
}
