//! Every code `registry lint` reports, with its severity, what it means and how to fix it: the
//! one list that `--explain`, the SARIF `rules` array and `docs/LINT.md` are made from (a test
//! holds the documentation's table to it).
//!
//! The validator codes are those of the built-in schema validator. A validator plugin of one's
//! own may report others; they are shown as the plugin gives them, and SARIF output describes
//! them by code alone.

use serde::Serialize;

use super::Level;

/// Who reports a code: the lint engine itself, or the validator plugin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Origin {
    /// The lint engine: the shape of headers, ids across files, files it could not search.
    Lint,
    /// The validator plugin's `check_headers` (here: the built-in schema validator's codes).
    Validator,
}

/// One lint code and its documentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LintCode {
    /// The stable kebab-case code, as printed.
    pub code: &'static str,
    /// How bad it is: only errors fail a run.
    pub severity: Level,
    /// Who reports it.
    pub origin: Origin,
    /// What it means, one sentence.
    pub summary: &'static str,
    /// How to fix it.
    pub fix: &'static str,
}

const fn code(
    code: &'static str,
    severity: Level,
    origin: Origin,
    summary: &'static str,
    fix: &'static str,
) -> LintCode {
    LintCode {
        code,
        severity,
        origin,
        summary,
        fix,
    }
}

use Level::{Error, Note, Warning};
use Origin::{Lint, Validator};

/// Every code, in the order of `docs/LINT.md`'s table.
pub const CODES: &[LintCode] = &[
    code(
        "malformed-header",
        Error,
        Lint,
        "A header-shaped text that is not a header: a wrong number of fields, an empty field, or no version.",
        "Write all six parts, `[SCOPE][TYPE][VARIANT][ID][VERSION][STATUS]` (or the grepable `[scope-type-variant-id-version-status]`), or let `registry stamp` write the header.",
    ),
    code(
        "unknown-scope",
        Error,
        Validator,
        "The scope is none of the values `[schema] scope` allows (values are case-sensitive in the readable form).",
        "Use one of the allowed scopes the message lists, or add the value to `registry.toml`.",
    ),
    code(
        "unknown-type",
        Error,
        Validator,
        "The type is none of the values `[schema] type` allows.",
        "Use one of the allowed types the message lists, or add the value to `registry.toml`.",
    ),
    code(
        "unknown-variant",
        Error,
        Validator,
        "The variant is none of the values `[schema] variant` allows.",
        "Use one of the allowed variants the message lists, or add the value to `registry.toml`.",
    ),
    code(
        "unknown-status",
        Error,
        Validator,
        "The status is none of the values `[schema] status` allows.",
        "Use one of the allowed statuses the message lists, or add the value to `registry.toml`.",
    ),
    code(
        "not-canonical",
        Warning,
        Validator,
        "A value spelled otherwise than the registry writes it (its case, for this form of header).",
        "Write the value as the message shows: upper case in the readable form, lower case in the grepable form.",
    ),
    code(
        "bad-version",
        Error,
        Validator,
        "The version is not `v` followed by dot-separated numbers.",
        "Write a version such as `v2.9`.",
    ),
    code(
        "bad-id",
        Error,
        Validator,
        "The id is not SCOPE-TYP-NUMBER, or its number is 0.",
        "Write the id the registry gave the entry (`registry get`), e.g. `SEC-RUL-042`.",
    ),
    code(
        "id-prefix-mismatch",
        Error,
        Validator,
        "The id's prefix is not the scope and the first three letters of the type of the header.",
        "Correct the scope or type, or use the id of the entry this file belongs to.",
    ),
    code(
        "id-not-canonical",
        Warning,
        Validator,
        "The id is spelled otherwise than the registry writes it (case, or a number without zero padding).",
        "Write the id as the message shows, e.g. `SEC-RUL-042` rather than `sec-rul-42` in the readable form.",
    ),
    code(
        "duplicate-id",
        Error,
        Lint,
        "The same id is in two or more files (ids compare parsed: `SEC-RUL-42` is `sec-rul-042`); the same id twice in one file is allowed.",
        "An id names one entry: give the copied rule its own entry (`registry stamp` on it after removing the header).",
    ),
    code(
        "unregistered-id",
        Error,
        Lint,
        "With `--registered`: no entry has this id.",
        "Register the rule (`registry stamp`), or correct the id, or import the registry it came from.",
    ),
    code(
        "header-mismatch",
        Error,
        Lint,
        "With `--registered`: parts of the header differ from the latest revision of its entry.",
        "Write the registered header into the file (`registry get ID` shows it), or `registry update` the entry.",
    ),
    code(
        "merged-entry",
        Error,
        Lint,
        "With `--registered`: the header names an entry that was merged into another (a duplicate).",
        "Re-point the file with `registry stamp --refresh FILE` or `registry lint --fix`, which write the header of the entry it was merged into.",
    ),
    code(
        "retired-entry",
        Warning,
        Lint,
        "With `--registered`: the header names a retired entry.",
        "Remove the file if the rule is out of use, or make the entry active again with `registry revive ID`.",
    ),
    code(
        "missing-header",
        Error,
        Lint,
        "With `--require-header`, or for a file matching `[lint] require` in `registry.toml`: the file has no header in its first lines.",
        "Register the rule and write its header with `registry stamp FILE`, or exclude the file from the requirement.",
    ),
    code(
        "unreadable",
        Warning,
        Lint,
        "A file or directory that cannot be read (permissions, a dangling link followed).",
        "Make it readable, or ignore it (`.gitignore`, `.ignore`).",
    ),
    code(
        "not-utf8",
        Note,
        Lint,
        "Invalid UTF-8 in the lines searched: headers are not looked for in this file.",
        "Save the file as UTF-8, or ignore it if it is not a rule.",
    ),
    code(
        "too-large",
        Note,
        Lint,
        "The file is larger than `--max-file-size`: not searched.",
        "Raise `--max-file-size`, or ignore the file if it is not a rule.",
    ),
    code(
        "symlink-loop",
        Note,
        Lint,
        "A symbolic link that leads back to a directory it is in: not followed.",
        "Remove the loop, or lint without `--follow`.",
    ),
];

/// The documentation of `code`, if it is one of [`CODES`].
pub fn explain(code: &str) -> Option<&'static LintCode> {
    CODES.iter().find(|c| c.code == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_kebab_case_and_documented() {
        let mut seen = std::collections::HashSet::new();
        for c in CODES {
            assert!(seen.insert(c.code), "{} twice", c.code);
            assert!(
                c.code
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'),
                "{}",
                c.code
            );
            assert!(
                c.summary.ends_with('.') && c.fix.ends_with('.'),
                "{}",
                c.code
            );
            assert_eq!(explain(c.code), Some(c));
        }
        assert_eq!(explain("no-such-code"), None);
    }
}
