//! The subset's tests through its public API: golden documents pin the writer's bytes
//! (`golden`), the writer is held to `yaml_serde` (`writer`), the reader is held to `yaml_serde`
//! on hand-written hazards and at its limits (`reader`), and both on a corpus of generated
//! documents and their random mutations (`corpus`).
//!
//! The reference throughout is `yaml_serde`: what the writer writes must read back as the value
//! written, and whatever the reader accepts must parse to a mapping with the same key paths and
//! null values, answering every lookup the same way ([`agrees`]).

mod corpus;
mod golden;
mod reader;
mod writer;

use registry_yaml::read::{self, Scratch};
use yaml_serde::Value;

/// Checks the reader against the parser on `text`: either the reader declines, or the parser
/// reads a mapping with the same key paths, the same null values and the same answer to every
/// lookup. Returns whether the reader answered; panics on a disagreement.
pub fn agrees(text: &str) -> bool {
    let mut scratch = Scratch::default();
    let Some(document) = read::scan(text, &mut scratch) else {
        return false;
    };
    let value: Value = yaml_serde::from_str(text)
        .unwrap_or_else(|e| panic!("scanned {text:?}, which does not parse: {e}"));
    assert!(
        value.is_mapping(),
        "scanned {text:?}, which is not a mapping"
    );
    let mut ours = document.paths();
    let mut theirs = read::value_paths(&value);
    ours.sort();
    theirs.sort();
    assert_eq!(ours, theirs, "key paths of {text:?}");
    let mut queries: Vec<String> = ["", "nope", "a", "a.b", "dashboard.nope.deeper", "."]
        .map(str::to_owned)
        .to_vec();
    for (path, _) in &theirs {
        queries.extend([
            path.clone(),
            format!("{path}.x"),
            format!("{path}."),
            format!(".{path}"),
            format!("{path}.{path}"),
        ]);
    }
    for query in &queries {
        assert_eq!(
            document.has_key(query),
            read::value_has_key(&value, query),
            "lookup of {query:?} in {text:?}"
        );
    }
    true
}

/// Strings that stress the choice of style: YAML's indicators, words it reads as booleans,
/// nulls or numbers, quotes, escapes, line breaks and characters outside ASCII, and every ASCII
/// character alone, first, last and inside.
pub fn tricky_strings() -> Vec<String> {
    let mut all: Vec<String> = [
        "",
        " ",
        "  two",
        "trailing ",
        "plain words",
        "a-b_c.d/e (f) +g, h; i=j",
        "/health",
        "_x",
        "yes",
        "No",
        "ON",
        "off",
        "y",
        "N",
        "true",
        "False",
        "null",
        "NULL",
        "nUll",
        "~",
        "-",
        "- item",
        "-1",
        "+1",
        "1",
        "0x1F",
        "0o17",
        "0b101",
        "1e3",
        "1_000",
        "12:30",
        "1.5",
        ".5",
        ".inf",
        "-.inf",
        ".nan",
        "NaN",
        "2024-01-01",
        "v2.9",
        "key: value",
        "a:b",
        "trailing colon:",
        "# comment",
        "a # b",
        "a#b",
        "[x]",
        "]",
        "{a: b}",
        "}",
        "a, b",
        "&anchor",
        "*alias",
        "!tag",
        "!!str",
        "%YAML",
        "@at",
        "`tick`",
        "|",
        ">",
        "? key",
        "'",
        "''",
        "it's",
        "\"",
        "say \"hi\"",
        "back\\slash",
        "\\n",
        "tab\there",
        "line\nbreak",
        "cr\rlf",
        "nul\0",
        "del\u{7F}",
        "nel\u{85}",
        "ls\u{2028}",
        "ps\u{2029}",
        "bom\u{FEFF}",
        "nonchar\u{FFFE}\u{FFFF}",
        "c1\u{9B}",
        "nbsp\u{A0}",
        "é ünïcödé ✓ 日本語",
        "😀 emoji",
        "Ⅻ roman",
        "٣ arabic digit",
        "<<",
        "=",
        "a\u{1}b",
        "\u{1B}[31mred",
        "--- marker",
        "... end",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    for b in 0u8..0x80 {
        let c = char::from(b);
        all.extend([
            c.to_string(),
            format!("{c}x"),
            format!("x{c}"),
            format!("x{c}x"),
            format!("x {c} x"),
        ]);
    }
    all
}
