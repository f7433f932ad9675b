//! Placeholders in the strings of a template: `{{title}}`, `{{context.env | development}}`, ...
//!
//! A string is split once, when the template is loaded, into literal text and the values that
//! fill it, so rendering only looks values up and never scans text for braces. Every mistake a
//! string can hold (an unknown name, an unclosed `{{`, a form that only works as a whole value)
//! is found here, so a template that loads cannot fail to render.

use std::fmt;

/// The placeholder names, as listed in error messages.
pub(crate) const NAMES: &str =
    "title, id, header, grepable, scope, type, variant, status, version, context, context.KEY";

/// One piece of a string: literal text, or a value of the draft.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Part {
    Text(Box<str>),
    Title,
    Id,
    /// The readable header, `[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]`.
    Header,
    /// The grepable header, `[sec-rules-live-sec-rul-042-v2.9-required]`.
    Grepable,
    Scope,
    Type,
    Variant,
    Status,
    Version,
    /// A context value, or `default` when the context has no such key.
    Context {
        key: Box<str>,
        default: Box<str>,
    },
}

/// What a string of a template becomes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Parsed {
    /// Literal text and values, concatenated.
    Parts(Vec<Part>),
    /// Exactly `{{context.KEY?}}`: the context value, and the mapping entry is left out when the
    /// context has no such key.
    Optional(Box<str>),
    /// Exactly `{{context}}`: the whole context as a mapping, and the mapping entry is left out
    /// when the context is empty.
    WholeContext,
}

/// A string that cannot be a template string; `text` is the placeholder as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum PlaceholderError {
    Unknown(String),
    Unclosed(String),
    /// `{{context}}` or `{{context.KEY?}}` inside a longer string.
    WholeValueOnly(String),
    /// A `| default` after something other than `context.KEY`.
    DefaultNotAllowed(String),
    /// `context.KEY` with a key no context can hold.
    BadKey {
        text: String,
        key: String,
    },
}

impl PlaceholderError {
    /// Whether the error is about a name that does not exist, which the message follows with the
    /// list of names.
    pub(crate) fn is_unknown(&self) -> bool {
        matches!(self, PlaceholderError::Unknown(_))
    }
}

impl fmt::Display for PlaceholderError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlaceholderError::Unknown(text) => write!(f, "unknown placeholder `{text}`"),
            PlaceholderError::Unclosed(text) => {
                write!(f, "unclosed placeholder `{text}`: close it with `}}}}`")
            }
            PlaceholderError::WholeValueOnly(text) => write!(
                f,
                "`{text}` must be the whole value of a mapping entry, e.g. `key: \"{text}\"`"
            ),
            PlaceholderError::DefaultNotAllowed(text) => write!(
                f,
                "`{text}`: only context.KEY placeholders take a `| default`"
            ),
            PlaceholderError::BadKey { text, key } => write!(
                f,
                "`{text}`: `{key}` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.`"
            ),
        }
    }
}

/// Splits a string of a template into parts. `whole_value` says whether the string is the whole
/// value of a mapping entry, where `{{context}}` and `{{context.KEY?}}` may stand alone.
///
/// # Errors
/// Every placeholder of the string that is wrong, in order.
pub(crate) fn parse(s: &str, whole_value: bool) -> Result<Parsed, Vec<PlaceholderError>> {
    let mut parts = Vec::new();
    let mut errors = Vec::new();
    let mut rest = s;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            parts.push(Part::Text(rest[..open].into()));
        }
        let after = &rest[open + 2..];
        let Some(close) = after.find("}}") else {
            errors.push(PlaceholderError::Unclosed(rest[open..].to_owned()));
            rest = "";
            break;
        };
        let text = &rest[open..open + 2 + close + 2];
        let alone = whole_value && text.len() == s.len();
        match name(text, &after[..close], alone) {
            Ok(Name::Part(part)) => parts.push(part),
            Ok(Name::Optional(key)) => return Ok(Parsed::Optional(key)),
            Ok(Name::WholeContext) => return Ok(Parsed::WholeContext),
            Err(e) => errors.push(e),
        }
        rest = &after[close + 2..];
    }
    if !rest.is_empty() {
        parts.push(Part::Text(rest.into()));
    }
    if errors.is_empty() {
        Ok(Parsed::Parts(parts))
    } else {
        Err(errors)
    }
}

enum Name {
    Part(Part),
    Optional(Box<str>),
    WholeContext,
}

/// Reads what is between the braces of one placeholder; `text` is the whole placeholder and
/// `alone` says whether it is the whole value of a mapping entry.
fn name(text: &str, inner: &str, alone: bool) -> Result<Name, PlaceholderError> {
    let (name, default) = match inner.split_once('|') {
        Some((name, default)) => (name.trim(), Some(default.trim())),
        None => (inner.trim(), None),
    };
    if let Some(key) = name.strip_prefix("context.") {
        let (key, optional) = match key.strip_suffix('?') {
            Some(key) => (key.trim_end(), true),
            None => (key, false),
        };
        if !is_context_key(key) {
            return Err(PlaceholderError::BadKey {
                text: text.to_owned(),
                key: key.to_owned(),
            });
        }
        return match (optional, default) {
            (true, Some(_)) => Err(PlaceholderError::DefaultNotAllowed(text.to_owned())),
            (true, None) if alone => Ok(Name::Optional(key.into())),
            (true, None) => Err(PlaceholderError::WholeValueOnly(text.to_owned())),
            (false, default) => Ok(Name::Part(Part::Context {
                key: key.into(),
                default: default.unwrap_or_default().into(),
            })),
        };
    }
    let part = match name {
        "title" => Part::Title,
        "id" => Part::Id,
        "header" => Part::Header,
        "grepable" => Part::Grepable,
        "scope" => Part::Scope,
        "type" => Part::Type,
        "variant" => Part::Variant,
        "status" => Part::Status,
        "version" => Part::Version,
        "context" => {
            return if default.is_some() {
                Err(PlaceholderError::DefaultNotAllowed(text.to_owned()))
            } else if alone {
                Ok(Name::WholeContext)
            } else {
                Err(PlaceholderError::WholeValueOnly(text.to_owned()))
            };
        }
        _ => return Err(PlaceholderError::Unknown(text.to_owned())),
    };
    if default.is_some() {
        return Err(PlaceholderError::DefaultNotAllowed(text.to_owned()));
    }
    Ok(Name::Part(part))
}

/// Whether `key` could be a key of a request context (the rule `registry_core::Context` applies).
pub(crate) fn is_context_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= 64
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(s: &str) -> Part {
        Part::Text(s.into())
    }

    fn context(key: &str, default: &str) -> Part {
        Part::Context {
            key: key.into(),
            default: default.into(),
        }
    }

    #[test]
    fn strings_split_into_parts() {
        let check = |s: &str, expected: Vec<Part>| {
            assert_eq!(parse(s, true), Ok(Parsed::Parts(expected)), "{s:?}");
        };
        check("plain", vec![text("plain")]);
        check("", vec![]);
        check("{{title}}", vec![Part::Title]);
        check("{{ title }}", vec![Part::Title]);
        check(
            "{{id}} of {{scope}}/{{type}}",
            vec![Part::Id, text(" of "), Part::Scope, text("/"), Part::Type],
        );
        check(
            "{{header}}{{grepable}}{{variant}}{{status}}{{version}}",
            vec![
                Part::Header,
                Part::Grepable,
                Part::Variant,
                Part::Status,
                Part::Version,
            ],
        );
        check("{{context.env}}", vec![context("env", "")]);
        check(
            "env: {{ context.env | development }}!",
            vec![text("env: "), context("env", "development"), text("!")],
        );
        check(
            "{{context.a.b-c_d|two words}}",
            vec![context("a.b-c_d", "two words")],
        );
        check("{{context.x |}}", vec![context("x", "")]);
        check("a } b }} c {", vec![text("a } b }} c {")]);
    }

    #[test]
    fn whole_value_forms() {
        assert_eq!(parse("{{context}}", true), Ok(Parsed::WholeContext));
        assert_eq!(parse("{{ context }}", true), Ok(Parsed::WholeContext));
        assert_eq!(
            parse("{{context.region?}}", true),
            Ok(Parsed::Optional("region".into()))
        );
        assert_eq!(
            parse("{{ context.region ? }}", true),
            Ok(Parsed::Optional("region".into()))
        );
    }

    #[test]
    fn mistakes_are_reported_with_the_text_as_written() {
        let check = |s: &str, whole_value: bool, expected: &[&str]| {
            let errors = parse(s, whole_value).expect_err(s);
            let messages: Vec<String> = errors.iter().map(ToString::to_string).collect();
            assert_eq!(messages, expected, "{s:?}");
        };
        check("{{titel}}", true, &["unknown placeholder `{{titel}}`"]);
        check("{{Title}}", true, &["unknown placeholder `{{Title}}`"]);
        check("{{}}", true, &["unknown placeholder `{{}}`"]);
        check(
            "{{ nope }} and {{ never }}",
            true,
            &[
                "unknown placeholder `{{ nope }}`",
                "unknown placeholder `{{ never }}`",
            ],
        );
        check(
            "a {{title",
            true,
            &["unclosed placeholder `{{title`: close it with `}}`"],
        );
        check(
            "{{context}} and more",
            true,
            &[
                "`{{context}}` must be the whole value of a mapping entry, e.g. `key: \"{{context}}\"`",
            ],
        );
        check(
            "{{context}}",
            false,
            &[
                "`{{context}}` must be the whole value of a mapping entry, e.g. `key: \"{{context}}\"`",
            ],
        );
        check(
            "x{{context.r?}}",
            true,
            &[
                "`{{context.r?}}` must be the whole value of a mapping entry, e.g. `key: \"{{context.r?}}\"`",
            ],
        );
        check(
            "{{title | x}}",
            true,
            &["`{{title | x}}`: only context.KEY placeholders take a `| default`"],
        );
        check(
            "{{context.r? | x}}",
            true,
            &["`{{context.r? | x}}`: only context.KEY placeholders take a `| default`"],
        );
        check(
            "{{context.}}",
            true,
            &[
                "`{{context.}}`: `` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.`",
            ],
        );
        check(
            "{{context.a b}}",
            true,
            &[
                "`{{context.a b}}`: `a b` is not a context key: use 1 to 64 letters, digits, `_`, `-` or `.`",
            ],
        );
    }
}
