//! A lint [`Report`] as JUnit XML, the test report CI systems (GitLab, Jenkins, Azure
//! Pipelines, GitHub actions that publish test results) show: one `<testsuite name="registry
//! lint">`, one `<testcase>` per file with a header or a diagnostic, a `<failure>` per error
//! (its message and `file:line:col`), and the warnings and notes of a file in its
//! `<system-out>`, so they are shown without failing or skipping anything.
//!
//! File names and messages come from the files linted. They are written as text output
//! writes them ([`crate::text::escaped`]: control characters, which XML 1.0 cannot carry even
//! as character references, become `\x1b` and the like), then XML-escaped (`&`, `<`, `>`,
//! `"`, `'`), and the two non-characters XML also refuses (U+FFFE, U+FFFF) written `\u{fffe}`,
//! so no name can end an attribute or element early or make the document unreadable.

use std::fmt::Write as _;

use super::{Diagnostic, Level, Report, relative};
use crate::text::{escaped, escaped_path};

/// `report` as one JUnit XML document.
pub fn junit(report: &Report) -> String {
    let errors = report.count(Level::Error);
    let tests = report.paths.len();
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<testsuites name=\"registry lint\" tests=\"{tests}\" failures=\"{errors}\" errors=\"0\" skipped=\"0\">"
    );
    let _ = writeln!(
        out,
        "  <testsuite name=\"registry lint\" tests=\"{tests}\" failures=\"{errors}\" errors=\"0\" skipped=\"0\">"
    );
    let mut diagnostics = report.diagnostics.iter().peekable();
    for (file, path) in report.paths.iter().enumerate() {
        let mut here: Vec<&Diagnostic> = Vec::new();
        while let Some(d) = diagnostics.next_if(|d| d.file == file) {
            here.push(d);
        }
        let name = xml(&escaped_path(relative(path)));
        let _ = write!(
            out,
            "    <testcase name=\"{name}\" classname=\"registry lint\" file=\"{name}\""
        );
        if here.is_empty() {
            out.push_str("/>\n");
            continue;
        }
        out.push_str(">\n");
        let mut other = String::new();
        for d in &here {
            let place = match (d.line, d.column) {
                (Some(line), Some(column)) => format!("{name}:{line}:{column}"),
                _ => name.clone(),
            };
            let message = xml(&escaped(&d.message));
            let line = format!("{place}: {} {} {message}", d.severity.name(), xml(&d.code));
            if d.severity == Level::Error {
                let _ = writeln!(
                    out,
                    "      <failure message=\"{message}\" type=\"{}\">{line}</failure>",
                    xml(&d.code)
                );
            } else {
                other.push_str(&line);
                other.push('\n');
            }
        }
        if !other.is_empty() {
            let _ = writeln!(out, "      <system-out>{other}</system-out>");
        }
        out.push_str("    </testcase>\n");
    }
    out.push_str("  </testsuite>\n</testsuites>\n");
    out
}

/// Text already escaped for a terminal, escaped for XML text and attribute values.
fn xml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Never in XML, not even as a reference; the terminal escapes leave them.
            '\u{fffe}' | '\u{ffff}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c if c < ' ' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn markup_and_refused_characters_are_escaped() {
        assert_eq!(xml("a<b>&\"c'"), "a&lt;b&gt;&amp;&quot;c&apos;");
        assert_eq!(xml("x\u{fffe}\u{1}"), "x\\u{fffe}\\x01");
        assert_eq!(xml("plain ü"), "plain ü");
    }
}
