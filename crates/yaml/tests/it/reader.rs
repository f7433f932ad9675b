//! The reader against `yaml_serde` on hand-written texts: those inside the subset are read and
//! agree with the parser, those outside it (valid YAML the subset leaves out, and invalid YAML)
//! are declined; and at its limits, on key length and nesting.

use registry_yaml::read::{self, MAX_DEPTH, MAX_KEY_BYTES, Scratch};
use yaml_serde::Value;

use crate::agrees;

/// Texts inside the subset, each valid YAML with a mapping at the top.
const INSIDE: &[&str] = &[
    "{}\n",
    // Integers at the edges of 64 bits, beyond 128 (a float) and zero-padded (a string).
    "a: 18446744073709551615\nb: -9223372036854775808\nc: -0x8000000000000000\n",
    "a: 3333333333333333333333333333333333333333333\nb: 00018446744073709551616\n",
    "a: +-18446744073709551616\nb: 0x-5\nc: -+0x5\n",
    "a: 1\n",
    "a:\n",
    "a:\nb: 2\n",
    "a: ~\nb: null\nc: Null\nd: NULL\ne: nulls\nf: ''\ng: \"\"\n",
    "a:\n  b:\n    c: x\n  d: []\ne: {}\n",
    "a:\n- x\n- 'y'\n- \"z\"\nb: 1\n",
    "a:\n- k: 1\n  j:\n  - 2\n  l: ~\n- - 1\n  - - 2\n    - 3\n- {}\n- []\n- ~\nb: 1\n",
    "x:\n- a:\n  - b\n  c: 1\n",
    "x:\n- a:\n    b: 1\n  c:\n- d\n",
    "'a b': 1\n\"c\\td\": 2\n'it''s': 3\n\"\\x41\\u00e9\\N\\L\\P\\0\\r\\n\\\"\\\\\": 4\n",
    "'true': 1\n'1': 2\n'null': 3\n'': 4\n'~': 5\n",
    "a: -1\nb: +1\nc: .5\nd: 1e300\ne: .nan\nf: -.inf\ng: 0x1F\nh: 012\ni: 1_000\n",
    "a: é ünïcödé\nb: 'é ✓ 😀'\nc: x (y), z; w=1 + 2/3\nd: --x\ne: -a-\n",
    "a b c: d e f\n_x: /y\n/z: (w)\n",
    "ünï: 1\n",
    "a: x,\n",
    "a:\n  b: 1\n  c:\n    d: ~\n  e:\nf: 2\n",
];

/// Valid YAML outside the subset, and invalid YAML: the scanner must decline them all.
const OUTSIDE: &[&str] = &[
    "",
    "\n",
    "a: 1",
    "a: 1\n\n",
    "\na: 1\n",
    " a: 1\n",
    "a: 1 \n",
    "a : 1\n",
    "a:  1\n",
    "a:\t1\n",
    "a: 1\t\n",
    "\ta: 1\n",
    "a:\n\tb: 1\n",
    "a: 1\r\n",
    "\u{FEFF}a: 1\n",
    "a: b: c\n",
    "a: b:\n",
    "a: b:c\n",
    "a: 1\na: 2\n",
    "a: 1\n'a': 2\n",
    "a: 1\n\"a\": 2\n",
    "\"\\x61\": 1\na: 2\n",
    "a:\n  k: 1\n  k: 2\n",
    "a:\n- k: 1\n  k: 2\n",
    "a:\n- x\n - y\n",
    "a:\n  - x\n",
    "a:\n - x\n",
    "- a\n",
    "a:\n-x\n",
    "a:\n-\n",
    "a: - b\n",
    "a: 1\n b: 2\n",
    "a: 1\n  b: 2\n",
    "a:\n   b: 1\n",
    "a:\n  b: 1\n c: 2\n",
    "a: b\n  c\n",
    "a: 'b\n  c'\n",
    "a: \"b\n  c\"\n",
    "a: \"\\q\"\n",
    "a: \"\\x4\"\n",
    "a: \"\\uD800\"\n",
    "a: \"\\U0001F600\"\n",
    "a: \"\\e\\a\\/\"\n",
    "a: 'b' \n",
    "a: 'b'c\n",
    "a: \"unterminated\n",
    "a: 'unterminated\n",
    "a: 1 # comment\n",
    "# comment\na: 1\n",
    "a: #x\n",
    "a: &x 1\nb: *x\n",
    "a: *x\n",
    "a: !tag 1\n",
    "!tag\na: 1\n",
    "? a\n: 1\n",
    "a: ? b\n",
    "---\na: 1\n",
    "a: 1\n---\nb: 2\n",
    "a: 1\n...\n",
    "%YAML 1.2\n---\na: 1\n",
    "a: {b: 1}\n",
    "a: [1, 2]\n",
    "a: { }\n",
    "a: [ ]\n",
    "a: {}x\n",
    "a: [b\n",
    "{a: 1}\n",
    "[]\n",
    "a: |\n  text\n",
    "a: |-\n  text\n",
    "a: >\n  text\n",
    "a: @x\n",
    "a: `x`\n",
    "a: %x\n",
    "a: ,x\n",
    "a: :x\n",
    "a: -\n",
    "a: - \n",
    "a: ~x\n",
    "a: nULL\n",
    "a: nuLL\n",
    "yes: 1\n",
    "True: 1\n",
    "null: 1\n",
    "1: 2\n",
    ".inf: 1\n",
    "-a: 1\n",
    "<<: 1\n",
    "a:\u{85}b\n",
    "a: b\u{2028}c\n",
    "a: 'b\u{2028}c'\n",
    "a: 'b\u{FEFF}'\n",
    "a: 'b\u{7F}'\n",
    "a: b\u{0}\n",
    "plain text\n",
    "a:\n  b: 1\n\n  c: 2\n",
    "a:\n  \n",
    // Integers wider than 64 bits, which `yaml_serde`'s `Value` cannot hold (the first was
    // found by the `yaml_scan` fuzz target).
    "qq  lll: 333333333333333333333333333333333333\n",
    "a: 18446744073709551616\n",
    "a: -9223372036854775809\n",
    "a: 0x10000000000000000\n",
    "a: -0xFFFFFFFFFFFFFFFF\n",
    "a: -0x8000000000000001\n",
    "a: +0o2000000000000000000000\n",
    "a: 0b11111111111111111111111111111111111111111111111111111111111111111\n",
];

#[test]
fn hand_written_texts() {
    for text in INSIDE {
        assert!(agrees(text), "the reader declined {text:?}");
    }
    for text in OUTSIDE {
        assert!(
            read::scan(text, &mut Scratch::default()).is_none(),
            "the reader accepted {text:?}"
        );
    }
}

/// One scratch reused across texts answers as a fresh one would: nothing of an earlier
/// text, accepted or declined, leaks into the next.
#[test]
fn scratch_is_reused_cleanly() {
    let mut scratch = Scratch::default();
    for text in INSIDE.iter().chain(OUTSIDE).chain(INSIDE.iter().rev()) {
        let fresh = read::scan(text, &mut Scratch::default()).map(|d| d.paths());
        let reused = read::scan(text, &mut scratch).map(|d| d.paths());
        assert_eq!(reused, fresh, "{text:?}");
    }
}

#[test]
fn limits() {
    let key = |n: usize| format!("{}: 1\n", "k".repeat(n));
    assert!(agrees(&key(MAX_KEY_BYTES)));
    assert!(read::scan(&key(MAX_KEY_BYTES + 1), &mut Scratch::default()).is_none());
    let quoted = format!("'{}': 1\n", "k".repeat(MAX_KEY_BYTES - 2));
    assert!(agrees(&quoted));
    // Over the parser's own limit on implicit keys: the parser refuses it.
    let long = format!("{}: 1\n", "k".repeat(1100));
    assert!(read::scan(&long, &mut Scratch::default()).is_none());
    assert!(yaml_serde::from_str::<Value>(&long).is_err());

    let nested = |levels: usize| {
        let mut text = String::new();
        for level in 0..levels {
            text.push_str(&" ".repeat(2 * level));
            text.push_str("k:\n");
        }
        text.push_str(&" ".repeat(2 * levels));
        text.push_str("v: 1\n");
        text
    };
    assert!(agrees(&nested(MAX_DEPTH)));
    assert!(read::scan(&nested(MAX_DEPTH + 1), &mut Scratch::default()).is_none());
    // Deeper than the parser follows: refused by it, declined by the reader.
    let deep = nested(200);
    assert!(read::scan(&deep, &mut Scratch::default()).is_none());
    assert!(yaml_serde::from_str::<Value>(&deep).is_err());
    let items = format!("a:\n{}x\n", "- ".repeat(200));
    assert!(read::scan(&items, &mut Scratch::default()).is_none());
}

#[test]
fn lookups() {
    let text = "a:\n  b: 1\n  u: ~\n  e:\n  s:\n  - x\n  m: {}\nt: 'q'\n'c.d': 2\n";
    let mut scratch = Scratch::default();
    let document = read::scan(text, &mut scratch).expect("inside the subset");
    let cases = [
        ("a", true),
        ("a.b", true),
        ("a.u", false),
        ("a.e", false),
        ("a.s", true),
        ("a.s.x", false),
        ("a.m", true),
        ("a.m.x", false),
        ("a.b.c", false),
        ("t", true),
        ("t.q", false),
        ("c.d", false),
        ("c", false),
        ("", false),
        ("a.", false),
    ];
    for (path, expected) in cases {
        assert_eq!(document.has_key(path), expected, "{path}");
    }
    assert!(agrees(text));
}
