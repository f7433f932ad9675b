//! How text from outside (file names, values read from files, messages quoting them) is shown
//! on a terminal, so that it cannot forge or rewrite a line of output.
//!
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
use std::path::Path;

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
pub fn needs_escape(c: char) -> bool {
    registry_core::is_line_breaking(c)
        || registry_core::is_bidi_control(c)
        || (c == '\\' && !cfg!(windows))
        || matches!(c, '\u{061C}' | '\u{200E}' | '\u{200F}')
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
