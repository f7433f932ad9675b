//! How a header is written into a file of a given type: the comment syntax, the lines that
//! must stay first, and where a title comes from.
//!
//! The file type is decided from the file name first (`Dockerfile`, `Makefile`, ...), then the
//! extension (case-insensitive), then the interpreter named on a `#!` line; a file none of them
//! identifies has no known syntax, and `stamp` refuses it rather than guess, unless the user
//! gives a line comment prefix with `--comment`. The tables below are the whole rule set.
//!
//! Some lines must stay before any comment, or the file changes meaning; the header goes after
//! them (see [`preamble_end`]):
//! - a `#!` line (but not Rust's `#![attribute]`), which the kernel reads only on line 1;
//! - an XML declaration `<?xml ...?>`, which must open an XML document;
//! - an encoding declaration or Emacs file-variables line (`# -*- coding: utf-8 -*-`), which
//!   Python, Ruby and Emacs read only on line 1 or 2;
//! - a Dockerfile's parser directives (`# syntax=...`, `# escape=...`, `# check=...`), which
//!   BuildKit stops looking for at the first other comment;
//! - Markdown front matter (`---` ... `---`, or `+++` ... `+++`), which site generators read only
//!   at the very top.
//!
//! A `%YAML` directive needs nothing: YAML allows comments before directives.

use std::path::Path;

/// How a one-line comment is written in a file type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Comment {
    /// A line comment: the prefix, a space and the text (`# [..]`).
    Line(String),
    /// A comment with an opening and a closing delimiter (`<!-- [..] -->`).
    Block {
        open: &'static str,
        close: &'static str,
    },
}

impl Comment {
    fn line(prefix: &str) -> Comment {
        Comment::Line(prefix.to_owned())
    }

    /// The comment line holding `text`, without a line ending.
    pub fn wrap(&self, text: &str) -> String {
        match self {
            Comment::Line(prefix) => format!("{prefix} {text}"),
            Comment::Block { open, close } => format!("{open} {text} {close}"),
        }
    }
}

/// What else about a file type changes how it is stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    /// The title comes from the first heading; front matter stays first.
    Markdown,
    /// Parser directives stay first.
    Dockerfile,
    Plain,
}

/// A file type as far as stamping is concerned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileType {
    pub comment: Comment,
    pub dialect: Dialect,
}

/// Why no comment syntax is known for a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unknown {
    /// An extension not in the table, lowercased, without the dot.
    Extension(String),
    /// A script whose interpreter is not in the table.
    Interpreter(String),
    /// No extension, no known name, no `#!` line.
    Nothing,
}

impl std::fmt::Display for Unknown {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unknown::Extension(ext) => write!(f, "no comment syntax known for .{ext} files"),
            Unknown::Interpreter(name) => {
                write!(f, "no comment syntax known for scripts run by `{name}`")
            }
            Unknown::Nothing => write!(
                f,
                "no comment syntax known for a file without extension or #! line"
            ),
        }
    }
}

/// Line comment prefixes by extension (lowercase, without the dot).
const BY_EXTENSION: &[(&str, &[&str])] = &[
    (
        "#",
        &[
            "py",
            "pyw",
            "pyi",
            "sh",
            "bash",
            "zsh",
            "ksh",
            "fish",
            "rb",
            "pl",
            "pm",
            "r",
            "ps1",
            "awk",
            "tcl",
            "jl",
            "ex",
            "exs",
            "nim",
            "yaml",
            "yml",
            "toml",
            "tf",
            "tfvars",
            "hcl",
            "nix",
            "conf",
            "cfg",
            "ini",
            "properties",
            "env",
            "cmake",
            "mk",
            "bzl",
            "bazel",
        ],
    ),
    (
        "//",
        &[
            "rs",
            "js",
            "mjs",
            "cjs",
            "ts",
            "mts",
            "cts",
            "jsx",
            "tsx",
            "go",
            "java",
            "c",
            "h",
            "cc",
            "cpp",
            "cxx",
            "hpp",
            "hh",
            "hxx",
            "cs",
            "swift",
            "kt",
            "kts",
            "scala",
            "groovy",
            "gradle",
            "dart",
            "zig",
            "jsonnet",
            "libsonnet",
            "proto",
            "jsonc",
            "json5",
            "scss",
            "less",
        ],
    ),
    (
        "--",
        &[
            "sql", "lua", "hs", "elm", "ada", "adb", "ads", "vhd", "vhdl",
        ],
    ),
    (
        ";",
        &[
            "lisp", "lsp", "el", "clj", "cljs", "cljc", "edn", "scm", "rkt",
        ],
    ),
    ("%", &["tex", "sty", "erl", "hrl"]),
    ("\"", &["vim"]),
];

/// Extensions written with a block comment.
const BLOCK_BY_EXTENSION: &[(&str, &str, &[&str])] = &[
    (
        "<!--",
        "-->",
        &[
            "md", "markdown", "html", "htm", "xhtml", "xml", "svg", "xsd", "xsl", "xslt",
        ],
    ),
    ("/*", "*/", &["css"]),
];

/// Line comment prefixes by exact file name, checked before the extension.
const BY_NAME: &[(&str, &[&str])] = &[
    (
        "#",
        &[
            "Dockerfile",
            "Containerfile",
            "Makefile",
            "makefile",
            "GNUmakefile",
            "Rakefile",
            "Gemfile",
            "Vagrantfile",
            "Justfile",
            "justfile",
            "BUILD",
            "WORKSPACE",
            "CMakeLists.txt",
            ".gitignore",
            ".gitattributes",
            ".dockerignore",
            ".editorconfig",
            ".env",
        ],
    ),
    ("//", &["Jenkinsfile"]),
];

/// Line comment prefixes by the interpreter a `#!` line names (its file name, after `env`).
const BY_INTERPRETER: &[(&str, &[&str])] = &[
    (
        "#",
        &[
            "sh", "bash", "zsh", "ksh", "dash", "ash", "fish", "python", "ruby", "perl", "awk",
            "gawk", "mawk", "tclsh", "Rscript", "pwsh", "make",
        ],
    ),
    ("//", &["node", "nodejs", "deno", "bun", "ts-node", "tsx"]),
    ("--", &["lua", "luajit"]),
];

/// The file type of `path`, whose first line is `first_line` (for the `#!` line).
///
/// # Errors
/// [`Unknown`] when neither the name, the extension nor the interpreter is in the tables.
pub fn file_type(path: &Path, first_line: &str) -> Result<FileType, Unknown> {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    let ext = path
        .extension()
        .map(|e| e.to_string_lossy().to_ascii_lowercase());
    let dialect = if matches!(ext.as_deref(), Some("md" | "markdown")) {
        Dialect::Markdown
    } else if is_dockerfile(&name, ext.as_deref()) {
        Dialect::Dockerfile
    } else {
        Dialect::Plain
    };
    let typed = |comment| FileType { comment, dialect };

    if let Some((prefix, _)) = BY_NAME.iter().find(|(_, names)| names.contains(&&*name)) {
        return Ok(typed(Comment::line(prefix)));
    }
    if dialect == Dialect::Dockerfile {
        return Ok(typed(Comment::line("#")));
    }
    if let Some(ext) = &ext {
        if let Some((prefix, _)) = BY_EXTENSION
            .iter()
            .find(|(_, exts)| exts.contains(&ext.as_str()))
        {
            return Ok(typed(Comment::line(prefix)));
        }
        if let Some((open, close, _)) = BLOCK_BY_EXTENSION
            .iter()
            .find(|(_, _, exts)| exts.contains(&ext.as_str()))
        {
            return Ok(typed(Comment::Block { open, close }));
        }
    }
    match interpreter(first_line) {
        Some(program) => {
            // `python3.12` and `python3` are Python.
            let family = program.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.');
            BY_INTERPRETER
                .iter()
                .find(|(_, names)| names.contains(&program) || names.contains(&family))
                .map(|(prefix, _)| typed(Comment::line(prefix)))
                .ok_or_else(|| Unknown::Interpreter(program.to_owned()))
        }
        None => Err(match ext {
            Some(ext) => Unknown::Extension(ext),
            None => Unknown::Nothing,
        }),
    }
}

/// `Dockerfile.dev`, `app.Dockerfile` and the like (the exact names are in [`BY_NAME`]).
fn is_dockerfile(name: &str, ext: Option<&str>) -> bool {
    name.starts_with("Dockerfile.")
        || name.starts_with("Containerfile.")
        || matches!(ext, Some("dockerfile" | "containerfile"))
        || name == "Dockerfile"
        || name == "Containerfile"
}

/// Whether `line` is a `#!` line; Rust's inner attributes `#![...]` are not.
pub fn is_shebang(line: &str) -> bool {
    line.starts_with("#!") && !line.starts_with("#![")
}

/// The program a `#!` line runs: the file name of its first word, or for `env` the first word
/// after `env`'s options and variable assignments (`#!/usr/bin/env -S VAR=1 python3 -u`).
fn interpreter<'a>(first_line: &'a str) -> Option<&'a str> {
    if !is_shebang(first_line) {
        return None;
    }
    let base = |word: &'a str| word.rsplit('/').next().unwrap_or(word);
    let mut words = first_line[2..].split_whitespace();
    let first = base(words.next()?);
    if first == "env" {
        words
            .find(|w| !w.starts_with('-') && !w.contains('='))
            .map(base)
    } else {
        Some(first)
    }
}

/// The byte offset in `text` (a file's text without byte order mark) after the lines that must
/// stay before the header, and how many lines that is. See the module documentation.
pub fn preamble_end(text: &str, file: &FileType) -> (usize, usize) {
    let lines = split_lines(text);
    let mut kept = 0;
    let line = |i: usize| lines.get(i).map(|&(start, end)| content(&text[start..end]));

    if let Some(first) = line(0)
        && (is_shebang(first) || first.starts_with("<?xml"))
    {
        kept = 1;
    }
    match file.dialect {
        Dialect::Markdown if kept == 0 => {
            if let Some(end) = front_matter_end(&lines, text) {
                kept = end;
            }
        }
        Dialect::Dockerfile => {
            while line(kept).is_some_and(is_parser_directive) {
                kept += 1;
            }
        }
        _ => {}
    }
    if kept <= 1
        && let Comment::Line(prefix) = &file.comment
        && line(kept).is_some_and(|l| is_encoding_line(l, prefix))
    {
        kept += 1;
    }
    match kept {
        0 => (0, 0),
        n => (lines[n - 1].1, n),
    }
}

/// The line count of the front matter, delimiters included, when `text` opens with one.
fn front_matter_end(lines: &[(usize, usize)], text: &str) -> Option<usize> {
    let at = |i: usize| content(&text[lines[i].0..lines[i].1]).trim_end();
    if lines.is_empty() {
        return None;
    }
    let open = at(0);
    if open != "---" && open != "+++" {
        return None;
    }
    (1..lines.len())
        .find(|&i| at(i) == open || (open == "---" && at(i) == "..."))
        .map(|i| i + 1)
}

/// `# syntax=docker/dockerfile:1`, `# escape=\``, `# check=skip=...`.
fn is_parser_directive(line: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix('#') else {
        return false;
    };
    let Some((key, _)) = rest.split_once('=') else {
        return false;
    };
    matches!(
        key.trim().to_ascii_lowercase().as_str(),
        "syntax" | "escape" | "check"
    )
}

/// A comment declaring the encoding or Emacs file variables: `# -*- coding: utf-8 -*-`,
/// `# vim: set fileencoding=utf-8 :`, `# encoding: utf-8`.
fn is_encoding_line(line: &str, prefix: &str) -> bool {
    let Some(rest) = line.trim_start().strip_prefix(prefix) else {
        return false;
    };
    if rest.matches("-*-").count() >= 2 {
        return true;
    }
    // Python's rule: `coding` directly followed by `:` or `=`.
    rest.match_indices("coding")
        .any(|(at, word)| rest[at + word.len()..].starts_with([':', '=']))
}

/// The start and end (after the line ending) of each line of `text`.
pub fn split_lines(text: &str) -> Vec<(usize, usize)> {
    let mut lines = Vec::new();
    let mut start = 0;
    while start < text.len() {
        let end = text[start..]
            .find('\n')
            .map_or(text.len(), |at| start + at + 1);
        lines.push((start, end));
        start = end;
    }
    lines
}

/// A line without its line ending.
pub fn content(line: &str) -> &str {
    let line = line.strip_suffix('\n').unwrap_or(line);
    line.strip_suffix('\r').unwrap_or(line)
}

/// The first ATX heading (`# Title`, up to `######`) of a Markdown text, outside front matter
/// and fenced code blocks, without its `#` marks.
pub fn markdown_heading(text: &str) -> Option<String> {
    let lines = split_lines(text);
    let skip = front_matter_end(&lines, text).unwrap_or(0);
    let mut fence: Option<&str> = None;
    for &(start, end) in &lines[skip.min(lines.len())..] {
        let line = content(&text[start..end]);
        let indent = line.len() - line.trim_start_matches(' ').len();
        if indent > 3 {
            continue;
        }
        let line = line.trim_start_matches(' ');
        if let Some(open) = fence {
            if line.starts_with(open) {
                fence = None;
            }
            continue;
        }
        if line.starts_with("```") {
            fence = Some("```");
            continue;
        }
        if line.starts_with("~~~") {
            fence = Some("~~~");
            continue;
        }
        let marks = line.len() - line.trim_start_matches('#').len();
        let rest = &line[marks..];
        if !(1..=6).contains(&marks) || !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            continue;
        }
        // A closing sequence of `#` counts only after a space: `# C#` keeps its `#`.
        let mut title = rest.trim();
        let unclosed = title.trim_end_matches('#');
        if unclosed.is_empty() || unclosed.ends_with([' ', '\t']) {
            title = unclosed.trim_end();
        }
        if !title.is_empty() {
            return Some(title.to_owned());
        }
    }
    None
}

/// The title made from a file name: its stem with `_` and `-` turned into spaces.
pub fn title_from_name(path: &Path) -> String {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    stem.replace(['_', '-'], " ")
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn syntax(name: &str, first_line: &str) -> Result<String, Unknown> {
        file_type(Path::new(name), first_line).map(|t| t.comment.wrap("H"))
    }

    #[test]
    fn comment_syntax_by_name_extension_and_interpreter() {
        for (name, first, expected) in [
            ("a.py", "", "# H"),
            ("dir/b.YML", "", "# H"),
            ("c.rs", "#![allow(dead_code)]", "// H"),
            ("d.tsx", "", "// H"),
            ("e.sql", "", "-- H"),
            ("f.md", "", "<!-- H -->"),
            ("g.svg", "<?xml version=\"1.0\"?>", "<!-- H -->"),
            ("h.css", "", "/* H */"),
            ("i.clj", "", "; H"),
            ("j.tex", "", "% H"),
            ("k.vim", "", "\" H"),
            ("Dockerfile", "", "# H"),
            ("Dockerfile.dev", "", "# H"),
            ("api.dockerfile", "", "# H"),
            ("Makefile", "", "# H"),
            ("CMakeLists.txt", "", "# H"),
            ("Jenkinsfile", "", "// H"),
            (".gitignore", "", "# H"),
            ("run", "#!/bin/sh", "# H"),
            ("run", "#!/usr/bin/env python3.12", "# H"),
            ("run", "#!/usr/bin/env -S VAR=1 node --flag", "// H"),
            ("run", "#! /usr/bin/lua", "-- H"),
            // The extension wins over the interpreter.
            ("tool.js", "#!/bin/sh", "// H"),
        ] {
            assert_eq!(
                syntax(name, first).as_deref(),
                Ok(expected),
                "{name} {first:?}"
            );
        }
    }

    #[test]
    fn unknown_types_are_named() {
        for (name, first, message) in [
            ("x.json", "", "no comment syntax known for .json files"),
            ("X.JSON", "", "no comment syntax known for .json files"),
            (
                "x.weird",
                "#!/usr/bin/env tclx",
                "no comment syntax known for scripts run by `tclx`",
            ),
            (
                "LICENSE",
                "MIT License",
                "no comment syntax known for a file without extension or #! line",
            ),
            (
                "lib.rs.orig",
                "#![no_std]",
                "no comment syntax known for .orig files",
            ),
        ] {
            let got = file_type(Path::new(name), first).map_err(|e| e.to_string());
            assert_eq!(got, Err(message.to_owned()), "{name}");
        }
    }

    /// Where the header goes: the text before it, for a file of type `name`.
    fn kept(name: &str, text: &str) -> (String, usize) {
        let first = text.lines().next().unwrap_or("");
        let t = file_type(Path::new(name), first).expect("known type");
        let (at, lines) = preamble_end(text, &t);
        (text[..at].to_owned(), lines)
    }

    #[test]
    fn lines_that_must_stay_first() {
        for (name, text, before) in [
            ("a.py", "print(1)\n", ""),
            (
                "a.py",
                "#!/usr/bin/env python3\nprint(1)\n",
                "#!/usr/bin/env python3\n",
            ),
            (
                "a.py",
                "#!/usr/bin/python\n# -*- coding: latin-1 -*-\nx\n",
                "#!/usr/bin/python\n# -*- coding: latin-1 -*-\n",
            ),
            ("a.py", "# coding=utf-8\nx\n", "# coding=utf-8\n"),
            ("a.py", "# a comment\n# coding: utf-8\n", ""),
            ("a.rb", "# encoding: utf-8\n", "# encoding: utf-8\n"),
            ("a.rs", "#![no_std]\nfn f() {}\n", ""),
            ("a.sh", "#!/bin/sh", "#!/bin/sh"),
            ("a.sh", "#!/bin/sh\r\necho\r\n", "#!/bin/sh\r\n"),
            (
                "a.xml",
                "<?xml version=\"1.0\"?>\n<a/>\n",
                "<?xml version=\"1.0\"?>\n",
            ),
            (
                "Dockerfile",
                "# syntax=docker/dockerfile:1\n#escape=`\nFROM x\n",
                "# syntax=docker/dockerfile:1\n#escape=`\n",
            ),
            ("Dockerfile", "# build the app\nFROM x\n", ""),
            (
                "a.md",
                "---\ntitle: x\n---\n# Heading\n",
                "---\ntitle: x\n---\n",
            ),
            (
                "a.md",
                "+++\ntitle = 1\n+++\ntext\n",
                "+++\ntitle = 1\n+++\n",
            ),
            // Not closed: a thematic break, not front matter.
            ("a.md", "---\ntext\n", ""),
            ("a.md", "# Decoding: a guide\n", ""),
            ("a.yaml", "%YAML 1.2\n---\na: 1\n", ""),
            ("a.py", "", ""),
        ] {
            let (got, lines) = kept(name, text);
            assert_eq!(got, before, "{name} {text:?}");
            assert_eq!(lines, before.lines().count(), "{name} {text:?}");
        }
    }

    #[test]
    fn markdown_titles() {
        for (text, title) in [
            ("# Block SSH\n", Some("Block SSH")),
            ("intro\n\n## Second level ##\n", Some("Second level")),
            ("# C#\n", Some("C#")),
            ("#hashtag\n# Real\n", Some("Real")),
            (
                "```\n# not a heading\n```\n# After the fence\n",
                Some("After the fence"),
            ),
            ("    # indented code\n", None),
            ("---\ntitle: x\n---\n# Body\n", Some("Body")),
            ("#\n# \n####### seven\n", None),
            ("no heading at all\n", None),
            ("", None),
        ] {
            assert_eq!(markdown_heading(text).as_deref(), title, "{text:?}");
        }
    }

    #[test]
    fn titles_from_names() {
        for (name, title) in [
            ("dir/block_ssh-access.py", "block ssh access"),
            ("Dockerfile", "Dockerfile"),
            ("a__b.tar.gz", "a b.tar"),
            ("-.py", ""),
        ] {
            assert_eq!(title_from_name(Path::new(name)), title, "{name}");
        }
    }
}
