//! Compiled template documents: the parsed YAML with every string split into placeholders, the
//! deep merge of overlays, and the `when:` conditions that choose overlays.
//!
//! A document is compiled from a `yaml_serde::Value` once, when the templates are loaded; every
//! problem it holds is reported with its path (`dashboard.filters[2]`), so that rendering a
//! compiled tree cannot fail on anything the template says.

use std::fmt::{self, Write as _};

use crate::render::Parts;
use registry_yaml::write::{MAX_KEY_BYTES, key_bytes};
use yaml_serde::Value;

use super::placeholder::{self, Parsed, Part, PlaceholderError, is_context_key};

/// A compiled YAML value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Node {
    Null,
    Bool(bool),
    Int(i64),
    /// An integer above `i64::MAX`.
    UInt(u64),
    Float(f64),
    /// A string without placeholders.
    Text(Box<str>),
    /// A string with placeholders, as literal parts and values.
    Fill(Box<[Part]>),
    /// `{{context.KEY?}}`; only ever the value of a mapping entry.
    Optional(Box<str>),
    /// `{{context}}`; only ever the value of a mapping entry.
    WholeContext,
    Seq(Vec<Node>),
    /// Entries in the order the template writes them.
    Map(Vec<(Box<str>, Node)>),
}

/// Deep-merges `overlay` onto `base`: mappings merge key by key (a key the base lacks is appended
/// at the end, a key it has keeps its position), anything else replaces the base's value.
pub(crate) fn merge(base: &mut Node, overlay: &Node) {
    match (base, overlay) {
        (Node::Map(entries), Node::Map(changes)) => {
            for (key, value) in changes {
                match entries.iter_mut().find(|(k, _)| k == key) {
                    Some((_, old)) => merge(old, value),
                    None => entries.push((key.clone(), value.clone())),
                }
            }
        }
        (base, overlay) => *base = overlay.clone(),
    }
}

/// The conditions of an overlay's `when:` mapping: every context key must hold one of its values,
/// compared without case.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Condition(Vec<(Box<str>, Vec<Box<str>>)>);

impl Condition {
    /// Whether the context satisfies every condition.
    pub(crate) fn holds(&self, draft: &impl Parts) -> bool {
        self.0.iter().all(|(key, allowed)| {
            draft
                .get(key)
                .is_some_and(|v| allowed.iter().any(|a| v.eq_ignore_ascii_case(a)))
        })
    }

    /// Whether there are no conditions, so the overlay always applies.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Where in a document a value sits, for messages: `dashboard.filters[2]`.
#[derive(Debug, Default)]
pub(crate) struct Path(Vec<Step>);

#[derive(Debug)]
enum Step {
    Key(String),
    Index(usize),
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("the top level");
        }
        for (i, step) in self.0.iter().enumerate() {
            match step {
                Step::Key(key) if i == 0 => f.write_str(key)?,
                Step::Key(key) => write!(f, ".{key}")?,
                Step::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Collects the problems of one document, each with its path.
#[derive(Debug, Default)]
pub(crate) struct Problems {
    path: Path,
    /// The document's number in its file, from 1; named in messages from the second on.
    document: usize,
    /// Messages without the template's name; the caller prefixes it.
    pub(crate) messages: Vec<String>,
}

impl Problems {
    /// No problems yet, in the document numbered `document` (from 1).
    pub(crate) fn new(document: usize) -> Problems {
        Problems {
            document,
            ..Problems::default()
        }
    }

    /// A problem of the value at the current path.
    pub(crate) fn push(&mut self, message: impl fmt::Display) {
        let text = self.located(message);
        self.messages.push(text);
    }

    fn placeholder(&mut self, error: &PlaceholderError) {
        let mut text = self.located(error);
        if error.is_unknown() {
            // Writing to a `String` cannot fail.
            let _ = write!(text, "; placeholders are {}", placeholder::NAMES);
        }
        self.messages.push(text);
    }

    fn located(&self, message: impl fmt::Display) -> String {
        let mut text = String::new();
        let _ = write!(text, "{message} at {}", self.path);
        if self.document > 1 {
            let _ = write!(text, " in document {}", self.document);
        }
        text
    }
}

/// Compiles a document: `value` is what yaml_serde parsed, a mapping (the caller checks).
pub(crate) fn compile(value: &Value, problems: &mut Problems) -> Node {
    compile_value(value, false, problems)
}

fn compile_value(value: &Value, map_value: bool, problems: &mut Problems) -> Node {
    match value {
        Value::Null => Node::Null,
        Value::Bool(b) => Node::Bool(*b),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                Node::Int(i)
            } else if let Some(u) = n.as_u64() {
                Node::UInt(u)
            } else {
                // A YAML number is an integer or a float; `as_f64` answers for every float.
                Node::Float(n.as_f64().unwrap_or(f64::NAN))
            }
        }
        Value::String(s) => compile_string(s, map_value, problems),
        Value::Sequence(items) => Node::Seq(
            items
                .iter()
                .enumerate()
                .map(|(i, item)| {
                    problems.path.0.push(Step::Index(i));
                    let node = compile_value(item, false, problems);
                    problems.path.0.pop();
                    node
                })
                .collect(),
        ),
        Value::Mapping(mapping) => {
            let mut entries = Vec::with_capacity(mapping.len());
            for (key, value) in mapping {
                let Some(key) = compile_key(key, problems) else {
                    continue;
                };
                problems.path.0.push(Step::Key(key.clone()));
                let node = compile_value(value, true, problems);
                problems.path.0.pop();
                entries.push((key.into_boxed_str(), node));
            }
            Node::Map(entries)
        }
        Value::Tagged(tagged) => {
            problems.push(format_args!(
                "tag `{}` is not supported: remove it",
                tagged.tag
            ));
            Node::Null
        }
    }
}

fn compile_string(s: &str, map_value: bool, problems: &mut Problems) -> Node {
    match placeholder::parse(s, map_value) {
        Ok(Parsed::Parts(parts)) => match &parts[..] {
            [] => Node::Text("".into()),
            [Part::Text(text)] => Node::Text(text.clone()),
            _ => Node::Fill(parts.into_boxed_slice()),
        },
        Ok(Parsed::Optional(key)) => Node::Optional(key),
        Ok(Parsed::WholeContext) => Node::WholeContext,
        Err(errors) => {
            for e in &errors {
                problems.placeholder(e);
            }
            Node::Null
        }
    }
}

/// A mapping key: a string without placeholders.
fn compile_key(key: &Value, problems: &mut Problems) -> Option<String> {
    match key {
        Value::String(s) if s.contains("{{") => {
            problems.push(format_args!(
                "key `{s}` holds a placeholder: placeholders may only be in values"
            ));
            None
        }
        // The writer writes keys as implicit keys, which YAML limits to 1024 bytes as written.
        Value::String(s) if key_bytes(s) > MAX_KEY_BYTES => {
            problems.push(format_args!(
                "key of {} bytes as written: the limit is {MAX_KEY_BYTES}",
                key_bytes(s)
            ));
            None
        }
        Value::String(s) => Some(s.clone()),
        Value::Mapping(_) => {
            // `key: {{title}}` without quotes reads as a mapping whose key is a mapping.
            problems.push(
                "a mapping is used as a key (an unquoted placeholder?): write placeholders in \
                 quotes, e.g. `title: \"{{title}}\"`",
            );
            None
        }
        other => {
            problems.push(format_args!(
                "key `{}` is not a string: quote it",
                scalar_text(other)
            ));
            None
        }
    }
}

/// Reads the `when:` value of an overlay.
pub(crate) fn condition(value: &Value, problems: &mut Problems) -> Condition {
    problems.path.0.push(Step::Key("when".into()));
    let mut conditions = Vec::new();
    match value {
        Value::Mapping(mapping) => {
            for (key, allowed) in mapping {
                let Value::String(key) = key else {
                    problems.push(format_args!(
                        "key `{}` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.`",
                        scalar_text(key)
                    ));
                    continue;
                };
                problems.path.0.push(Step::Key(key.clone()));
                let values: Vec<Box<str>> = match allowed {
                    Value::Sequence(items) => items.iter().filter_map(condition_value).collect(),
                    one => condition_value(one).into_iter().collect(),
                };
                let all_scalars = match allowed {
                    Value::Sequence(items) => values.len() == items.len(),
                    _ => !values.is_empty(),
                };
                if !all_scalars {
                    problems.push("expected a value or a list of values");
                } else if values.is_empty() {
                    problems.push("the list is empty: give at least one value");
                } else if !is_context_key(key) {
                    problems.push(format_args!(
                        "`{key}` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.`"
                    ));
                } else {
                    conditions.push((key.as_str().into(), values));
                }
                problems.path.0.pop();
            }
        }
        _ => problems.push("expected a mapping of context keys to values, e.g. `when: { env: [prod, production] }`"),
    }
    problems.path.0.pop();
    Condition(conditions)
}

/// A value a condition compares with: a string, or a number or boolean as YAML writes it.
fn condition_value(value: &Value) -> Option<Box<str>> {
    match value {
        Value::String(s) => Some(s.as_str().into()),
        Value::Bool(_) | Value::Number(_) => Some(scalar_text(value).into()),
        _ => None,
    }
}

/// A short text for a value in a message.
fn scalar_text(value: &Value) -> String {
    match value {
        Value::Null => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        Value::Sequence(_) => "a sequence".into(),
        Value::Mapping(_) => "a mapping".into(),
        Value::Tagged(t) => t.tag.to_string(),
    }
}

/// The name of a value's kind, for messages.
pub(crate) fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "empty",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Sequence(_) => "a sequence",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

#[cfg(test)]
mod tests {
    use registry_core::{Context, Draft, EntryId, Fields, Header};

    use super::*;

    fn compile_str(yaml: &str) -> (Node, Vec<String>) {
        let value: Value = yaml_serde::from_str(yaml).expect("test YAML parses");
        let mut problems = Problems::default();
        let node = compile(&value, &mut problems);
        (node, problems.messages)
    }

    fn map(entries: Vec<(&str, Node)>) -> Node {
        Node::Map(entries.into_iter().map(|(k, v)| (k.into(), v)).collect())
    }

    #[test]
    fn scalars_keep_their_types() {
        let (node, problems) = compile_str(
            "a: 1\nb: -2\nc: 18446744073709551615\nd: 1.5\ne: true\nf: ~\ng: '1.3'\nh: ''\n\
             i: '{{title}}'\nj: [x, 2]\n",
        );
        assert_eq!(problems, Vec::<String>::new());
        assert_eq!(
            node,
            map(vec![
                ("a", Node::Int(1)),
                ("b", Node::Int(-2)),
                ("c", Node::UInt(u64::MAX)),
                ("d", Node::Float(1.5)),
                ("e", Node::Bool(true)),
                ("f", Node::Null),
                ("g", Node::Text("1.3".into())),
                ("h", Node::Text("".into())),
                ("i", Node::Fill(vec![Part::Title].into_boxed_slice())),
                ("j", Node::Seq(vec![Node::Text("x".into()), Node::Int(2)])),
            ])
        );
    }

    #[test]
    fn problems_name_their_path() {
        let (_, problems) = compile_str(&format!(
            "a:\n  b: [ok, '{{{{nope}}}}']\n  '{{{{title}}}}': 1\n  c: {{{{title}}}}\n  1: x\n  \
                 d: !t 1\ne: 'x {{{{context}}}}'\n? {}\n: 1\n",
            "k".repeat(MAX_KEY_BYTES + 1)
        ));
        assert_eq!(
            problems,
            [
                format!(
                    "unknown placeholder `{{{{nope}}}}` at a.b[1]; placeholders are {}",
                    placeholder::NAMES
                ),
                "key `{{title}}` holds a placeholder: placeholders may only be in values at a"
                    .into(),
                "a mapping is used as a key (an unquoted placeholder?): write placeholders in \
                 quotes, e.g. `title: \"{{title}}\"` at a.c"
                    .into(),
                "key `1` is not a string: quote it at a".into(),
                "tag `!t` is not supported: remove it at a.d".into(),
                "`{{context}}` must be the whole value of a mapping entry, e.g. \
                 `key: \"{{context}}\"` at e"
                    .into(),
                "key of 1025 bytes as written: the limit is 1024 at the top level".into(),
            ]
        );
    }

    #[test]
    fn merge_keeps_order_and_replaces_non_mappings() {
        let (mut base, _) = compile_str("a: 1\nb:\n  x: 1\n  y: [1, 2]\nc: keep\n");
        let (overlay, _) = compile_str("b:\n  y: [3]\n  z: new\nd: added\na: {now: map}\n");
        merge(&mut base, &overlay);
        let (expected, _) =
            compile_str("a: {now: map}\nb:\n  x: 1\n  y: [3]\n  z: new\nc: keep\nd: added\n");
        assert_eq!(base, expected);
    }

    #[test]
    fn conditions() {
        // Whether the condition holds for a draft of this context, held as a `Draft` and as a
        // view of one: the two must agree.
        let holds = |c: &Condition, pairs: &[(&str, &str)]| {
            let context = Context::new(pairs.iter().map(|(k, v)| ((*k).into(), (*v).into())))
                .expect("valid context");
            let draft = Draft {
                header: Header {
                    fields: Fields::default(),
                    id: EntryId::new("SEC-RUL".to_owned(), 1),
                    version: "v1".into(),
                },
                title: "t".into(),
                context,
            };
            let held = c.holds(&draft);
            assert_eq!(c.holds(&draft.view()), held, "{pairs:?}");
            held
        };
        let parse = |yaml: &str| {
            let value: Value = yaml_serde::from_str(yaml).expect("test YAML parses");
            let mut problems = Problems::default();
            let c = condition(&value, &mut problems);
            (c, problems.messages)
        };
        let (prod, problems) = parse("{env: [prod, production], tier: 1}");
        assert!(problems.is_empty(), "{problems:?}");
        assert!(holds(&prod, &[("env", "PROD"), ("tier", "1")]));
        assert!(holds(
            &prod,
            &[("env", "production"), ("tier", "1"), ("x", "y")]
        ));
        assert!(!holds(&prod, &[("env", "prod")]));
        assert!(!holds(&prod, &[("env", "staging"), ("tier", "1")]));
        let (single, _) = parse("{flag: true}");
        assert!(holds(&single, &[("flag", "True")]));
        let (empty, _) = parse("{}");
        assert!(empty.is_empty() && holds(&empty, &[]));
        let (_, problems) = parse("{env: [], a: [x, [y]], 'b c': x, d: {e: f}}");
        assert_eq!(
            problems,
            [
                "the list is empty: give at least one value at when.env",
                "expected a value or a list of values at when.a",
                "`b c` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.` at when.b c",
                "expected a value or a list of values at when.d",
            ]
        );
        let (_, problems) = parse("[env]");
        assert_eq!(
            problems,
            [
                "expected a mapping of context keys to values, e.g. `when: { env: [prod, production] }` at when"
            ]
        );
    }
}
