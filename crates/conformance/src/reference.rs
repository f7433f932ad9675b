//! The reference generator the suites render valid entries with: [`KeywordlessGenerator`] and
//! its config, [`render_config`].
//!
//! The validator suite needs configs a validator must accept, and the sample entries need a
//! config their hash covers; both come from here, so they are the same bytes the testkit's
//! memory doubles render (it re-exports these items rather than keeping a copy).

use std::fmt::Write as _;

use registry_core::{Draft, FromConfig, Generator, Prediction, Request, Setup, StageResult};
use serde::Deserialize;

/// The config table of a stage with nothing to configure: any key is an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NoConfig {}

/// A generator with no model and no rules: it predicts nothing, so schema defaults fill every
/// field a request leaves empty, and renders a two-key YAML mapping (see [`render_config`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct KeywordlessGenerator;

impl FromConfig for KeywordlessGenerator {
    type Config = NoConfig;

    fn from_config(_config: NoConfig, _setup: &Setup) -> StageResult<KeywordlessGenerator> {
        Ok(KeywordlessGenerator)
    }
}

impl Generator for KeywordlessGenerator {
    fn predict(&self, requests: &[Request], out: &mut Vec<Prediction>) -> StageResult<()> {
        out.extend(requests.iter().map(|_| Prediction::default()));
        Ok(())
    }

    fn render(&self, drafts: &[Draft], out: &mut Vec<String>) -> StageResult<()> {
        out.extend(drafts.iter().map(render_config));
        Ok(())
    }
}

/// The config [`KeywordlessGenerator`] renders: the readable header and the title, as YAML.
///
/// ```text
/// header: "[SEC][RULES][LIVE][SEC-RUL-001][v2.9][REQUIRED]"
/// title: "Block SSH from the internet"
/// ```
pub fn render_config(draft: &Draft) -> String {
    let mut yaml = String::from("header: ");
    quote(&mut yaml, &draft.header.readable());
    yaml.push_str("\ntitle: ");
    quote(&mut yaml, &draft.title);
    yaml.push('\n');
    yaml
}

/// Appends `text` as a YAML double-quoted scalar. Everything YAML could read as a line break or
/// that is not printable is escaped, so any title stays one scalar on one line.
fn quote(yaml: &mut String, text: &str) {
    yaml.push('"');
    for c in text.chars() {
        match c {
            '"' => yaml.push_str("\\\""),
            '\\' => yaml.push_str("\\\\"),
            c if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}') => {
                // Every such character is in the Basic Multilingual Plane, so four digits do.
                let _ = write!(yaml, "\\u{:04x}", u32::from(c));
            }
            c => yaml.push(c),
        }
    }
    yaml.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_anything_into_one_line() {
        for (text, want) in [
            ("plain", r#""plain""#),
            (r#"say "hi" \ bye"#, r#""say \"hi\" \\ bye""#),
            ("a\nb\u{2028}c\td", r#""a\u000ab\u2028c\u0009d""#),
            ("naïve: ✓ 🦀", r#""naïve: ✓ 🦀""#),
        ] {
            let mut out = String::new();
            quote(&mut out, text);
            assert_eq!(out, want);
        }
    }
}
