//! Keyword rules: which header values a word in a request's title or context suggests.
//!
//! Rules are checked against the schema once, at construction, and kept in the schema's spelling,
//! so prediction only scans text and clones the chosen values. Matching works on words, not on
//! raw substrings, so that `ops` does not fire on "stops" nor `etl` on "kettle".

use registry_core::{
    ErrorCode, Fields, Guess, Prediction, Request, Schema, Source, StageError, StageResult,
};
use serde::Deserialize;

/// One keyword rule as written under `keywords` in the generator's config.
///
/// ```toml
/// [[generator.config.keywords]]
/// words = ["security", "vulnerability"]
/// scope = "SEC"
/// type = "RULES"
/// status = "REQUIRED"
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeywordRule {
    /// The words that make the rule match: letters and digits only, compared case-insensitively
    /// with the start of each word of the title and of the context values.
    pub words: Vec<String>,
    /// The scope to propose, one of `schema.scope`.
    pub scope: Option<String>,
    /// The type to propose, one of `schema.type`.
    #[serde(rename = "type")]
    pub kind: Option<String>,
    /// The variant to propose, one of `schema.variant`.
    pub variant: Option<String>,
    /// The status to propose, one of `schema.status`.
    pub status: Option<String>,
}

/// The original system's rules, plus `alert` and `bash`/`shell`, in the order they are tried.
/// `devops` is listed because word matching, unlike the original's substring test, would
/// otherwise miss it.
const BUILT_IN: &[(&[&str], [Option<&str>; 4])] = &[
    (
        &["security"],
        [Some("SEC"), Some("RULES"), None, Some("REQUIRED")],
    ),
    (
        &["ops", "devops"],
        [Some("OPS"), Some("SCRIPT"), None, None],
    ),
    (
        &["dashboard"],
        [Some("DASHBOARD"), Some("CONFIG"), None, None],
    ),
    (&["etl"], [Some("ETL"), Some("MULTI-ETL"), None, None]),
    (&["alert"], [Some("ALERT"), None, None, None]),
    (
        &["bash", "shell"],
        [Some("BASH"), Some("SCRIPT"), None, None],
    ),
];

/// A checked rule: lowercase words and values in the schema's spelling.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Rule {
    words: Vec<String>,
    values: Fields<Option<String>>,
}

/// An ordered list of checked rules.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules(Vec<Rule>);

impl Rules {
    /// The built-in rules, keeping only the values `schema` declares: a custom schema without
    /// `SEC` still gets `RULES`/`REQUIRED` from a title about security, and a rule left with no
    /// value at all is dropped.
    pub(crate) fn built_in(schema: &Schema) -> Rules {
        let rules = BUILT_IN
            .iter()
            .filter_map(|(words, values)| {
                let values = Fields::from_fn(|f| {
                    values[f as usize]
                        .and_then(|v| schema.canonical(f, v))
                        .map(str::to_owned)
                });
                let any = values.iter().any(|(_, v)| v.is_some());
                any.then(|| Rule {
                    words: words.iter().map(|w| (*w).to_owned()).collect(),
                    values,
                })
            })
            .collect();
        Rules(rules)
    }

    /// Checks rules from the config against the schema, reporting every problem found.
    ///
    /// # Errors
    /// A `Config` error listing each rule without words, each word that is not letters and
    /// digits, and each value the schema does not declare for its field.
    pub(crate) fn from_config(config: &[KeywordRule], schema: &Schema) -> StageResult<Rules> {
        let mut problems = Vec::new();
        let mut rules = Vec::with_capacity(config.len());
        for (i, rule) in config.iter().enumerate() {
            if rule.words.is_empty() {
                problems.push(format!(
                    "keywords[{i}].words: the list is empty: give at least one word"
                ));
            }
            let mut words = Vec::with_capacity(rule.words.len());
            for word in &rule.words {
                let lower = word.to_lowercase();
                if lower.is_empty() || !lower.chars().all(char::is_alphanumeric) {
                    problems.push(format!(
                        "keywords[{i}].words: `{word}` is not a word: use letters and digits only"
                    ));
                } else {
                    words.push(lower);
                }
            }
            let given = Fields {
                scope: &rule.scope,
                kind: &rule.kind,
                variant: &rule.variant,
                status: &rule.status,
            };
            let mut values: Fields<Option<String>> = Fields::default();
            for (field, value) in given.iter() {
                let Some(value) = value.as_deref() else {
                    continue;
                };
                match schema.canonical(field, value) {
                    Some(canonical) => values[field] = Some(canonical.to_owned()),
                    None => problems.push(format!(
                        "keywords[{i}].{field}: `{value}` is not one of schema.{field}: {}",
                        schema.allowed(field).join(", ")
                    )),
                }
            }
            rules.push(Rule { words, values });
        }
        if problems.is_empty() {
            Ok(Rules(rules))
        } else {
            Err(StageError::new(ErrorCode::Config, problems.join("; ")))
        }
    }

    /// Proposes a value for each field the request leaves empty: the value of the first rule, in
    /// rule order, that sets the field and has a word in the title or a context value.
    pub(crate) fn predict(&self, request: &Request) -> Prediction {
        let mut chosen: Fields<Option<&str>> = Fields::default();
        // Fields still open: left empty by the request and not yet set by a matching rule.
        let mut open = Fields::from_fn(|f| request.fields[f].is_none());
        for rule in &self.0 {
            let useful = rule.values.iter().any(|(f, v)| open[f] && v.is_some());
            if !useful || !rule.matches(request) {
                continue;
            }
            for (f, value) in rule.values.iter() {
                if open[f] && value.is_some() {
                    chosen[f] = value.as_deref();
                    open[f] = false;
                }
            }
            if !open.iter().any(|(_, &o)| o) {
                break;
            }
        }
        chosen.map(|_, value| {
            value.map(|v| Guess {
                value: v.to_owned(),
                confidence: None,
                source: Source::Keyword,
            })
        })
    }
}

impl Rule {
    /// Whether one of the rule's words starts a word of the title or of a context value.
    fn matches(&self, request: &Request) -> bool {
        std::iter::once(request.title())
            .chain(request.context.iter().map(|(_, v)| v))
            .flat_map(|text| text.split(|c: char| !c.is_alphanumeric()))
            .filter(|token| !token.is_empty())
            .any(|token| self.words.iter().any(|w| starts_with_word(token, w)))
    }
}

/// Whether `token` starts with the lowercase `word`, ignoring the case of `token`: `alert` matches
/// "Alerts" and "alerting". ASCII tokens, the usual case, are compared without decoding.
fn starts_with_word(token: &str, word: &str) -> bool {
    if token.is_ascii() {
        token.len() >= word.len()
            && token.as_bytes()[..word.len()].eq_ignore_ascii_case(word.as_bytes())
    } else {
        let mut folded = token.chars().flat_map(char::to_lowercase);
        word.chars().all(|w| folded.next() == Some(w))
    }
}
