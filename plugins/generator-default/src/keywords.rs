//! Keyword rules: which header values a word in a request's title or context suggests.
//!
//! Rules are checked against the schema once, at construction, and kept in the schema's spelling,
//! so prediction only scans text and clones the chosen values. Matching works on words, not on
//! raw substrings, so that `ops` does not fire on "stops" nor `etl` on "kettle".

use registry_core::{
    ErrorCode, Field, Fields, GuessRef, PredictionRef, RequestRef, Schema, Source, StageError,
    StageResult,
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

/// An ordered list of checked rules, indexed by the first letters of their words.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rules {
    list: Vec<Rule>,
    /// For each ASCII byte, the rules (bit `i` for rule `i`, the first 64 rules) with a word
    /// starting with it, lowercase: an ASCII word of a request can only start with the words of
    /// these rules, so the others are not compared with it.
    by_first: Box<[u64; 128]>,
}

/// How many rules the index covers; with more, every rule is checked on its own.
const INDEXED: usize = u64::BITS as usize;

impl Rules {
    fn new(list: Vec<Rule>) -> Rules {
        let mut by_first = Box::new([0u64; 128]);
        for (i, rule) in list.iter().enumerate().take(INDEXED) {
            for word in &rule.words {
                if let Some(&b) = word.as_bytes().first().filter(|b| b.is_ascii()) {
                    by_first[usize::from(b.to_ascii_lowercase())] |= 1 << i;
                }
            }
        }
        Rules { list, by_first }
    }

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
        Rules::new(rules)
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
            Ok(Rules::new(rules))
        } else {
            Err(StageError::new(ErrorCode::Config, problems.join("; ")))
        }
    }

    /// Fills each field `needed` marks with the value of the first rule, in rule order, that sets
    /// the field and has a word in the title or a context value; a field no such rule sets is left
    /// as it is.
    pub(crate) fn predict_into<'r>(
        &'r self,
        request: &RequestRef<'_>,
        needed: &Fields<bool>,
        out: &mut PredictionRef<'r>,
    ) {
        let guess = |value: &'r String| GuessRef {
            value,
            confidence: None,
            source: Source::Keyword,
        };
        if self.list.len() > INDEXED {
            for field in Field::ALL.into_iter().filter(|&f| needed[f]) {
                let chosen = self
                    .list
                    .iter()
                    .filter_map(|rule| rule.values[field].as_ref().map(|v| (rule, v)))
                    .find(|(rule, _)| rule.matches(request));
                if let Some((_, value)) = chosen {
                    out[field] = Some(guess(value));
                }
            }
            return;
        }
        // Only rules that would set a needed field are worth matching.
        let useful = self
            .list
            .iter()
            .enumerate()
            .filter(|(_, rule)| rule.values.iter().any(|(f, v)| needed[f] && v.is_some()))
            .fold(0u64, |mask, (i, _)| mask | 1 << i);
        if useful == 0 {
            return;
        }
        let matched = self.matching(request, useful);
        for field in Field::ALL.into_iter().filter(|&f| needed[f]) {
            let mut rules = matched;
            while rules != 0 {
                let i = rules.trailing_zeros() as usize;
                rules &= rules - 1;
                if let Some(value) = self.list.get(i).and_then(|r| r.values[field].as_ref()) {
                    out[field] = Some(guess(value));
                    break;
                }
            }
        }
    }

    /// Which of the rules `candidates` marks match the request: one pass over its words, each
    /// compared only with the rules whose words can start it.
    fn matching(&self, request: &RequestRef<'_>, candidates: u64) -> u64 {
        let mut matched = 0u64;
        let texts = std::iter::once(request.title).chain(request.context.iter().map(|(_, v)| v));
        for text in texts {
            let open = candidates & !matched;
            if open == 0 {
                break;
            }
            if text.is_ascii() {
                // Words are runs of ASCII letters and digits here, found byte by byte; a word
                // whose first letter starts no rule's word is passed over at once.
                let bytes = text.as_bytes();
                let mut i = 0;
                while i < bytes.len() {
                    if !bytes[i].is_ascii_alphanumeric() {
                        i += 1;
                        continue;
                    }
                    let start = i;
                    while i < bytes.len() && bytes[i].is_ascii_alphanumeric() {
                        i += 1;
                    }
                    let first = usize::from(bytes[start].to_ascii_lowercase());
                    let rules = candidates & !matched & self.by_first[first];
                    if rules != 0
                        && let Some(token) = text.get(start..i)
                    {
                        matched |= self.match_rules(token, rules);
                    }
                }
            } else {
                for token in text.split(|c: char| !c.is_alphanumeric()) {
                    matched |= self.match_token(token, candidates & !matched);
                }
            }
        }
        matched
    }

    /// Which of the rules `open` marks have a word that starts `token`.
    fn match_token(&self, token: &str, open: u64) -> u64 {
        let Some(&first) = token.as_bytes().first() else {
            return 0;
        };
        let rules = if first.is_ascii() {
            open & self.by_first[usize::from(first.to_ascii_lowercase())]
        } else {
            open
        };
        self.match_rules(token, rules)
    }

    /// Which of the rules `rules` marks have a word that starts `token`.
    fn match_rules(&self, token: &str, mut rules: u64) -> u64 {
        let mut matched = 0;
        while rules != 0 {
            let i = rules.trailing_zeros() as usize;
            rules &= rules - 1;
            let hit = self
                .list
                .get(i)
                .is_some_and(|rule| rule.words.iter().any(|w| starts_with_word(token, w)));
            if hit {
                matched |= 1 << i;
            }
        }
        matched
    }
}

impl Rule {
    /// Whether one of the rule's words starts a word of the title or of a context value.
    fn matches(&self, request: &RequestRef<'_>) -> bool {
        std::iter::once(request.title)
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

#[cfg(test)]
mod tests {
    use registry_core::{Context, Request};

    use super::*;

    /// The rule-by-rule reading of the rules: for each needed field, the first rule in order
    /// that sets it and matches. The index must choose the same.
    fn reference(
        rules: &Rules,
        request: &Request,
        needed: &Fields<bool>,
    ) -> Fields<Option<String>> {
        Fields::from_fn(|f| {
            if !needed[f] {
                return None;
            }
            rules
                .list
                .iter()
                .find(|r| r.values[f].is_some() && r.matches(&request.view()))
                .and_then(|r| r.values[f].clone())
        })
    }

    fn rule(words: &[&str], values: [Option<&str>; 4]) -> Rule {
        Rule {
            words: words.iter().map(|w| (*w).to_owned()).collect(),
            values: Fields::from_fn(|f| values[f as usize].map(str::to_owned)),
        }
    }

    fn requests() -> Vec<Request> {
        let titles = [
            "Block SSH security group",
            "DevOps: ETL dashboards, alerting",
            "stops the kettle",
            "Ünïcode Sécurité ÉTL über-ops",
            "Σ security ΣΑΣ",
            "shell-bash 2ops x9",
            "",
            "a b c",
        ];
        let mut out = Vec::new();
        for title in titles {
            for ctx in [
                &[][..],
                &[("note", "alert ops"), ("owner", "Éric dashboard")][..],
            ] {
                let context =
                    Context::new(ctx.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())))
                        .expect("valid context");
                let title = if title.is_empty() { "x" } else { title };
                out.push(
                    Request::new(title, Fields::default(), None, context).expect("valid request"),
                );
            }
        }
        out
    }

    fn check(rules: &Rules) {
        let all = Fields::from_fn(|_| true);
        let some = Fields {
            scope: false,
            kind: true,
            variant: false,
            status: true,
        };
        for request in requests() {
            for needed in [&all, &some] {
                let mut out = PredictionRef::default();
                rules.predict_into(&request.view(), needed, &mut out);
                let got = out.map(|_, g| {
                    g.map(|g| {
                        assert_eq!((g.confidence, g.source), (None, Source::Keyword));
                        g.value.to_owned()
                    })
                });
                assert_eq!(
                    got,
                    reference(rules, &request, needed),
                    "{:?}",
                    request.title()
                );
            }
        }
    }

    #[test]
    fn the_index_chooses_what_rule_order_chooses() {
        let schema = Schema::default();
        let built_in = Rules::built_in(&schema);
        check(&built_in);
        let mut list = vec![
            rule(&["ét", "über"], [None, Some("A"), None, None]),
            rule(&["σ"], [Some("S"), None, None, Some("Z")]),
            rule(&["2ops", "x"], [None, None, Some("V"), None]),
        ];
        list.extend(built_in.list.iter().cloned());
        check(&Rules::new(list.clone()));
        // Beyond what the index covers, rules are matched one by one, with the same result.
        let mut many: Vec<Rule> = (0..INDEXED)
            .map(|i| rule(&[&format!("w{i}")], [Some("N"), None, None, None]))
            .collect();
        many.extend(list);
        check(&Rules::new(many));
        let got = {
            let rules = Rules::new(vec![rule(&["kettle"], [Some("K"), None, None, None])]);
            let mut out = PredictionRef::default();
            rules.predict_into(&requests()[4].view(), &Fields::from_fn(|_| true), &mut out);
            out.scope.map(|g| g.value.to_owned())
        };
        assert_eq!(
            got.as_deref(),
            Some("K"),
            "a rule that matches sets its field"
        );
    }
}
