//! Printing results as text for people or JSON for programs.
//!
//! Text output leads with the readable header so that `registry list | grep` works; JSON output
//! is one document per command (an object, or an array for `list` and `history`).
//!
//! # Names from the file system in text output
//! A file name may hold any byte but `/` and NUL: a newline would forge a line of output, a
//! carriage return or an escape sequence would rewrite what the terminal shows, a bidirectional
//! override would reorder it. So every path (and every message that may quote one, or a value
//! read from a file) reaches text output through [`escaped`] or [`escaped_path`], which write
//! it with the escapes of Rust string literals, unquoted: `\\` for a backslash (not
//! on Windows, where it separates the path), `\n`, `\r` and `\t`, `\xHH` for other ASCII
//! control characters (ESC is `\x1b`) and for bytes that are not UTF-8, and `\u{…}` (hex) for
//! the C1 controls (NEL is `\u{85}`), the Unicode line and paragraph separators (U+2028,
//! U+2029) and the bidirectional controls (U+061C, U+200E, U+200F, U+202A to U+202E, U+2066 to
//! U+2069). Everything else, other scripts and combining marks included, is shown as it is, so
//! an ordinary name reads the same, and an escaped one can be told from a name that holds the
//! escape text itself (its backslash is doubled). This is the `ls --quoting-style=escape` rule
//! with Rust's spelling of the escapes. JSON output keeps the real text: JSON escapes it.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use registry_core::{Added, Entry, Field, Guess, Source, StageKind, Updated};
use serde::Serialize;

use crate::{CliError, Format};

/// `text` as it may be shown on a terminal: see the module doc for the escapes.
pub fn escaped(text: &str) -> Cow<'_, str> {
    if !text.chars().any(needs_escape) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    push_escaped(&mut out, text);
    Cow::Owned(out)
}

/// A path as it may be shown on a terminal: [`escaped`], and bytes that are not UTF-8 (which
/// [`Path::display`] would turn into U+FFFD) as `\xHH`.
pub fn escaped_path(path: &Path) -> String {
    let bytes = path.as_os_str().as_encoded_bytes();
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        push_escaped(&mut out, chunk.valid());
        for byte in chunk.invalid() {
            let _ = write!(out, "\\x{byte:02x}");
        }
    }
    out
}

fn push_escaped(out: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\\' if needs_escape(c) => out.push_str("\\\\"),
            c if c.is_ascii() && needs_escape(c) => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if needs_escape(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
}

/// What [`escaped`] escapes: characters that break, rewrite or reorder a terminal line (the
/// ones no title may hold, and the bidirectional marks), and the backslash that starts an
/// escape.
fn needs_escape(c: char) -> bool {
    registry_core::is_line_breaking(c)
        || registry_core::is_bidi_control(c)
        || (c == '\\' && !cfg!(windows))
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}')
}

/// Shows what the host said a person should know, one `warning:` line each on stderr.
pub fn warnings(warnings: &[String]) {
    for w in warnings {
        eprintln!("warning: {w}");
    }
}

pub fn write_err(e: io::Error) -> CliError {
    // A closed pipe (`registry list | head`) is not an error worth reporting.
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    CliError::config(format!("cannot write output: {e}"))
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value)
        .map_err(|e| CliError::config(format!("cannot write output: {e}")))?;
    writeln!(out).map_err(write_err)
}

pub fn source(g: &Guess) -> String {
    let how = match g.source {
        Source::Given => "given",
        Source::Model => "model",
        Source::Keyword => "keyword",
        Source::Default => "default",
        Source::Unrecorded => "unrecorded",
    };
    match g.confidence {
        Some(c) => format!("{how} {c:.2}"),
        None => how.to_owned(),
    }
}

fn summary(out: &mut impl Write, e: &Entry) -> io::Result<()> {
    writeln!(out, "{}", e.header.readable())?;
    writeln!(out, "grepable  {}", e.header.grepable())?;
    writeln!(out, "title     {}", e.title)?;
    if !e.context.is_empty() {
        let pairs: Vec<String> = e.context.iter().map(|(k, v)| format!("{k}={v}")).collect();
        writeln!(out, "context   {}", pairs.join(" "))?;
    }
    writeln!(out, "revision  {}", e.revision)?;
    writeln!(out, "hash      {}", e.hash)?;
    writeln!(out, "created   {}", e.created_at)?;
    if e.updated_at != e.created_at {
        writeln!(out, "updated   {}", e.updated_at)?;
    }
    Ok(())
}

pub fn added(a: &Added, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => json(a),
        Format::Text => {
            let mut out = io::stdout().lock();
            let verb = if a.created { "created" } else { "exists " };
            (|| {
                writeln!(out, "{verb}   {}", a.entry.header.id)?;
                summary(&mut out, &a.entry)?;
                if let Some(fields) = &a.fields {
                    let shown: Vec<String> = Field::ALL
                        .iter()
                        .map(|&f| format!("{f} {} ({})", fields[f].value, source(&fields[f])))
                        .collect();
                    writeln!(out, "fields    {}", shown.join(", "))?;
                }
                Ok(())
            })()
            .map_err(write_err)
        }
    }
}

pub fn entry(e: &Entry, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => json(e),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                summary(&mut out, e)?;
                writeln!(out, "config:")?;
                for line in e.config.lines() {
                    writeln!(out, "  {line}")?;
                }
                Ok(())
            })()
            .map_err(write_err)
        }
    }
}

pub fn updated(u: &Updated, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => json(u),
        Format::Text => {
            let mut out = io::stdout().lock();
            let verb = if u.changed { "updated" } else { "unchanged" };
            (|| {
                writeln!(
                    out,
                    "{verb} {} to revision {}",
                    u.entry.header.id, u.entry.revision
                )?;
                summary(&mut out, &u.entry)
            })()
            .map_err(write_err)
        }
    }
}

pub fn history(revisions: &[Entry], format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => json(revisions),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                for e in revisions {
                    writeln!(
                        out,
                        "rev {:<4} {}  {}  {}  {}",
                        e.revision,
                        e.updated_at,
                        e.hash,
                        e.header.readable(),
                        e.title
                    )?;
                }
                Ok(())
            })()
            .map_err(write_err)
        }
    }
}

/// Streams a listing page by page: text lines as they come, or one JSON array.
pub struct Lister {
    format: Format,
    count: usize,
}

impl Lister {
    pub fn new(format: Format) -> Self {
        Lister { format, count: 0 }
    }

    pub fn push(&mut self, page: &[Entry]) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        for e in page {
            match self.format {
                Format::Text => {
                    writeln!(out, "{}  {}", e.header.readable(), e.title).map_err(write_err)?
                }
                Format::Json => {
                    out.write_all(if self.count == 0 { b"[\n" } else { b",\n" })
                        .map_err(write_err)?;
                    serde_json::to_writer(&mut out, e)
                        .map_err(|e| CliError::config(format!("cannot write output: {e}")))?;
                }
            }
            self.count += 1;
        }
        Ok(())
    }

    pub fn finish(self) -> Result<(), CliError> {
        let mut out = io::stdout().lock();
        match (self.format, self.count) {
            (Format::Json, 0) => writeln!(out, "[]"),
            (Format::Json, _) => writeln!(out, "\n]"),
            (Format::Text, _) => Ok(()),
        }
        .map_err(write_err)
    }
}

/// One stage of `registry plugins`.
#[derive(Debug, Serialize)]
pub struct PluginRow {
    #[serde(serialize_with = "stage_name")]
    pub stage: StageKind,
    pub name: String,
    pub version: String,
    pub path: PathBuf,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

fn stage_name<S: serde::Serializer>(s: &StageKind, ser: S) -> Result<S::Ok, S::Error> {
    ser.serialize_str(s.name())
}

pub fn plugins(
    rows: &[PluginRow],
    config: Option<&std::path::Path>,
    format: Format,
) -> Result<(), CliError> {
    match format {
        Format::Json => json(rows),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                match config {
                    Some(file) => writeln!(out, "configuration {}", file.display())?,
                    None => writeln!(out, "configuration built-in defaults")?,
                }
                writeln!(
                    out,
                    "{:<10} {:<20} {:<8} library",
                    "stage", "plugin", "version"
                )?;
                for r in rows {
                    match &r.error {
                        None => writeln!(
                            out,
                            "{:<10} {:<20} {:<8} {}",
                            r.stage.name(),
                            r.name,
                            r.version,
                            r.path.display()
                        )?,
                        Some(e) => writeln!(
                            out,
                            "{:<10} {:<20} {:<8} {} ({e})",
                            r.stage.name(),
                            "-",
                            "-",
                            r.path.display()
                        )?,
                    }
                }
                Ok(())
            })()
            .map_err(write_err)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_and_reordering_characters_are_escaped() {
        for (text, want) in [
            ("rules/a.py", "rules/a.py"),
            ("caf\u{e9} \u{65}\u{301}.md", "caf\u{e9} \u{65}\u{301}.md"),
            ("a\nb.py:1:1: error fake", "a\\nb.py:1:1: error fake"),
            ("a\rb\tc", "a\\rb\\tc"),
            ("\u{1b}[31mred", "\\x1b[31mred"),
            ("nul\0del\u{7f}", "nul\\x00del\\x7f"),
            ("nel\u{85}", "nel\\u{85}"),
            ("ls\u{2028}ps\u{2029}", "ls\\u{2028}ps\\u{2029}"),
            ("\u{202e}cod.exe", "\\u{202e}cod.exe"),
            ("\u{2066}\u{200f}\u{61c}", "\\u{2066}\\u{200f}\\u{61c}"),
        ] {
            assert_eq!(escaped(text), want, "{text:?}");
        }
        // A backslash is doubled, so a name holding the text of an escape reads differently
        // from one holding the character.
        let backslash = if cfg!(windows) { "a\\n" } else { "a\\\\n" };
        assert_eq!(escaped("a\\n"), backslash);
        assert!(matches!(escaped("plain"), Cow::Borrowed(_)));
    }

    #[cfg(unix)]
    #[test]
    fn bytes_that_are_not_utf8_are_escaped_in_paths() {
        use std::ffi::OsStr;
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(OsStr::from_bytes(b"caf\xe9\n.txt"));
        assert_eq!(escaped_path(path), "caf\\xe9\\n.txt");
        assert_eq!(escaped_path(Path::new("d/\u{e9}.md")), "d/\u{e9}.md");
    }
}
