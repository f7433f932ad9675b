//! Lint: finds the header lines in files and checks them, the way a linter
//! reports on source: one diagnostic per problem, `file:line:column: severity code message`.
//!
//! # What is looked at
//! Directories are walked in parallel, honouring `.gitignore` (also outside a git repository),
//! `.ignore`, `.git/info/exclude` and the global git excludes, and skipping hidden files and
//! `.git`, as ripgrep does. A PATH that is a file is checked even if an ignore file names it.
//! Symbolic links are not followed unless `--follow`/`-L` is given (a PATH that is a link is
//! always followed); a link loop met while following is a note, never a hang. In each file the
//! first `--lines` lines (20) are searched with [`registry_core::find_header`], in any comment
//! syntax; only the head of a file is read, never more than 1 MiB of it (see `scan`), so time
//! and memory do not grow with a file's size.
//!
//! # Diagnostics
//! Every code, with its severity, what it means and how to fix it, is in [`codes::CODES`],
//! which `docs/LINT.md`, `registry lint --explain CODE` and the SARIF rules are made from:
//! problems of a header's shape (`malformed-header`), what the validator plugin reports
//! (`unknown-scope`, `bad-id`, ...; spelling the registry would not write is a warning), ids
//! repeated across files (`duplicate-id`; twice in one file is allowed, a file may carry both
//! forms), with `--registered` ids not registered or headers that differ, and files that could
//! not be searched (`unreadable`, a warning; `not-utf8`, `too-large`, `symlink-loop`, notes).
//!
//! `--select` and `--ignore` choose codes (an unknown one is refused); a file's own comment
//! `registry: ignore` or `registry: ignore[CODE,...]` on one of its first `--lines` lines
//! waives codes for that file; `--require-header` makes a searched file without a header a
//! `missing-header` error, and `[lint] require` in `registry.toml` does for the files its
//! globs match (relative to the file's directory). What is left out is not counted.
//!
//! Binary files (a NUL byte in the first 8 KiB) are skipped silently and counted. File-level
//! diagnostics have no line nor column. A column is the 1-based byte column of the part of the
//! header a problem is about (the scope, the id, ...), or of the header's `[`.
//!
//! # Output and exit code
//! Diagnostics are sorted by file, line and column, so the output is the same whatever order
//! the parallel walk found them in. Paths are shown as reached from the PATH given, without a
//! leading `./`. In text output a file name (and a message, which may quote another file's
//! name or a value read from a file) has its control characters, Unicode line separators,
//! bidirectional controls, backslashes and bytes that are not UTF-8 escaped (`\n`, `\x1b`,
//! `\u{202e}`, `\\`, `\xff`: see [`crate::text`]), so each problem is exactly one line
//! whatever the names in the tree. `--format json` prints one object: `summary` ([`Summary`])
//! and `findings`, an array of objects with `file`, `line`, `column` (`null` for file-level
//! diagnostics), `severity`, `code` and `message`, one object per line, with the real names
//! (JSON escapes them; bytes that are not UTF-8 become
//! U+FFFD). `--format sarif` and `--format junit` are [`sarif()`] and [`junit()`]. In text,
//! SARIF and JUnit mode a summary goes to stderr. The exit code is 1 when any error is found
//! (warnings and notes do not fail), or when a PATH does not exist (checked first: then nothing
//! is linted); 2 for configuration, plugin or storage problems.
//!
//! Without `--registered` only the validator plugin is loaded: storage is not opened and the
//! data directory is not created, so lint runs on any checkout.
//!
//! # Speed
//! The budget is ripgrep's time to search the same tree for the header pattern
//! (`cargo xtask bench-lint` measures it; lint takes about 1.5 times as long on 100,000 small
//! files). So: one `open` and one `read` of at most 16 KiB for nearly every file, and at most
//! 1 MiB for any (see `scan`),
//! header texts found on the walker threads, headers split and validated in batches of 4096 on
//! every core (each validator call crosses the plugin boundary), ids grouped by sorting their
//! hashes, and files sorted by each walker thread before one merge.

mod check;
pub mod codes;
mod junit;
mod sarif;
mod scan;

pub use junit::junit;
pub use sarif::sarif;

use std::borrow::Cow;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use registry_core::{Pipeline, Schema, Setup, Validator};
use serde::Serialize;

use crate::assemble::{self, Source};
use crate::error::{Error, io_reason};
use crate::events::Events;
use crate::registry::{Needs, Registry, load_error};
use crate::settings::Settings;
use crate::text::escaped_path;

/// What to lint, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// Files and directories to check.
    pub paths: Vec<PathBuf>,
    /// Also check each header against its registered entry.
    pub registered: bool,
    /// Look for headers in the first this many lines of each file.
    pub lines: usize,
    /// Skip larger files, with a note.
    pub max_file_size: u64,
    /// Follow symbolic links.
    pub follow: bool,
    /// Threads walking and checking (one per CPU when `None`).
    pub threads: Option<usize>,
    /// Report only these codes (all when `None`): `--select`.
    pub select: Option<Vec<String>>,
    /// Never report these codes: `--ignore`.
    pub ignore: Vec<String>,
    /// A searched file without a header is a `missing-header` error: `--require-header`.
    pub require_header: bool,
}

/// How bad a diagnostic is: only errors fail the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warning,
    Note,
}

impl Level {
    pub fn name(self) -> &'static str {
        match self {
            Level::Error => "error",
            Level::Warning => "warning",
            Level::Note => "note",
        }
    }
}

/// One finding, about a header (with a line and column) or a whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Index into the sorted file list.
    pub file: usize,
    pub line: Option<u32>,
    /// 1-based byte column.
    pub column: Option<u32>,
    /// The same column counted in UTF-16 code units, as SARIF counts by default.
    pub column_utf16: Option<u32>,
    pub severity: Level,
    pub code: Cow<'static, str>,
    pub message: String,
}

/// What a run found, ready to show.
#[derive(Debug, Default)]
pub struct Report {
    /// The files with diagnostics or headers, sorted; diagnostics point into it.
    pub paths: Vec<PathBuf>,
    /// Sorted by file, line and column.
    pub diagnostics: Vec<Diagnostic>,
    /// Files searched.
    pub scanned: u64,
    /// Binary files skipped.
    pub skipped: u64,
    /// Headers found.
    pub headers: usize,
}

/// The counts of a run: what text output prints on stderr, and JSON and SARIF carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Files whose head was searched.
    pub scanned: u64,
    /// Headers found.
    pub headers: u64,
    pub errors: u64,
    pub warnings: u64,
    pub notes: u64,
    /// Files not searched: binary, too large, not UTF-8, unreadable, symbolic link loops.
    pub skipped: u64,
}

impl Report {
    /// The counts of this run.
    pub fn summary(&self) -> Summary {
        Summary {
            scanned: self.scanned,
            headers: self.headers as u64,
            errors: self.count(Level::Error) as u64,
            warnings: self.count(Level::Warning) as u64,
            notes: self.count(Level::Note) as u64,
            skipped: self.skipped,
        }
    }

    /// How many diagnostics have this severity.
    pub fn count(&self, level: Level) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == level)
            .count()
    }
}

/// Lints the files under `options.paths` against the settings' schema and validator plugin (and,
/// with `options.registered`, against the registry).
///
/// # Errors
/// A PATH that does not exist or is neither a file nor a directory (exit 1: then nothing is
/// linted); a validator, storage or configuration problem (exit 2).
pub fn lint(
    settings: &Settings,
    options: &Options,
    events: &mut dyn Events,
) -> Result<Report, Error> {
    check_codes(options)?;
    let roots = roots(&options.paths)?;
    let validator = validator(settings)?;
    // Opened before the walk, so that a configuration problem shows before any work is done.
    let pipeline = if options.registered {
        let registry = Registry::open(settings, Needs::READ)?;
        for w in &registry.warnings {
            events.warning(w);
        }
        Some(registry.into_pipeline())
    } else {
        None
    };
    let threads = options.threads.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get)
    });
    let scan_options = scan::Options {
        lines: options.lines,
        max_file_size: options.max_file_size,
        follow: options.follow,
        threads,
        require_header: options.require_header,
        require: (!settings.lint.require.is_empty()).then(|| scan::Required {
            globs: settings.lint.require.clone(),
            base: settings.lint.base.clone(),
            cwd: std::env::current_dir().unwrap_or_default(),
        }),
    };

    let mut scanned = scan::walk(&roots, &scan_options, events);
    // Each walker thread sorted its own files; a stable sort merges those runs.
    scanned
        .files
        .sort_by(|a, b| scan::path_order(&a.path, &b.path));
    // Compared as bytes: `Path` equality compares component by component, much slower.
    scanned
        .files
        .dedup_by(|a, b| a.path.as_os_str() == b.path.as_os_str());
    let mut report = checked(
        validator.as_ref(),
        &settings.schema,
        pipeline.as_ref(),
        scanned.files,
        options,
        threads,
    )?;
    report.scanned = scanned.scanned;
    report.skipped = scanned.skipped;
    Ok(report)
}

/// A validator as `registry.toml` names it, built once for [`lint_text`].
///
/// # Errors
/// The validator plugin cannot be loaded or built (exit 2).
pub fn validator(settings: &Settings) -> Result<Box<dyn Validator>, Error> {
    let setup = Setup {
        schema: settings.schema.clone(),
        data_dir: settings.data_dir.clone(),
        config_dir: settings.paths.base_dir.clone(),
        shard: 0,
        shards: 1,
        create: None,
    };
    let source = Source {
        specs: &settings.stages,
        paths: &settings.paths,
        builtins: settings.builtins,
    };
    assemble::validator(&source, &setup).map_err(|e| load_error(vec![e]))
}

/// Lints one text named `name` (a file's content posted to `registry serve`) as [`lint`] lints
/// a file: the headers in its first `options.lines` lines, its ignore comment, `--select`,
/// `--ignore` and `--require-header`; against the registry when `registered` is given.
/// `options.paths` is not read.
///
/// # Errors
/// An unknown code in `select` or `ignore` (exit 1); the validator or storage failing (exit 2).
pub fn lint_text(
    schema: &Schema,
    validator: &dyn Validator,
    registered: Option<&Pipeline>,
    name: &str,
    text: &str,
    options: &Options,
) -> Result<Report, Error> {
    check_codes(options)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let files: Vec<scan::FileReport> = scan::text_report(
        PathBuf::from(name),
        text,
        options.lines,
        options.require_header,
    )
    .into_iter()
    .collect();
    let mut report = checked(validator, schema, registered, files, options, 1)?;
    report.scanned = 1;
    Ok(report)
}

/// Checks the headers found in `files` (sorted by path, each once) and makes the report, with
/// what `options` selects and ignores; `scanned` and `skipped` are left for the caller.
fn checked(
    validator: &dyn Validator,
    schema: &Schema,
    pipeline: Option<&Pipeline>,
    files: Vec<scan::FileReport>,
    options: &Options,
    threads: usize,
) -> Result<Report, Error> {
    let headers: Vec<check::Located<'_>> = files
        .iter()
        .enumerate()
        .flat_map(|(file, report)| {
            report
                .headers
                .iter()
                .map(move |found| check::Located { file, found })
        })
        .collect();
    let (checked, mut diagnostics) =
        check::validate(validator, schema, &headers, threads, pipeline.is_some())?;
    diagnostics.extend(check::duplicates(&headers, &files, &checked));
    if let Some(pipeline) = pipeline {
        diagnostics.extend(check::registered(pipeline, &headers, &checked)?);
    }
    for (file, report) in files.iter().enumerate() {
        if let Some(p) = &report.problem {
            diagnostics.push(Diagnostic {
                file,
                line: None,
                column: None,
                column_utf16: None,
                severity: p.severity,
                code: Cow::Borrowed(p.code),
                message: p.message.clone(),
            });
        }
    }
    // What `--select`, `--ignore` and the files' own ignore comments leave out.
    diagnostics.retain(|d| {
        options
            .select
            .as_ref()
            .is_none_or(|s| s.iter().any(|c| *c == d.code))
            && !options.ignore.iter().any(|c| *c == d.code)
            && !files[d.file]
                .ignore
                .as_ref()
                .is_some_and(|i| i.covers(&d.code))
    });
    // Stable: diagnostics at one place keep the order they were found in, which is itself
    // fixed (headers in file order, then the validator's order).
    diagnostics.sort_by_key(|d| (d.file, d.line, d.column));
    let headers = headers.len();
    Ok(Report {
        paths: files.into_iter().map(|f| f.path).collect(),
        diagnostics,
        scanned: 0,
        skipped: 0,
        headers,
    })
}

/// Refuses an unknown code in `--select` or `--ignore`.
fn check_codes(options: &Options) -> Result<(), Error> {
    for (option, codes) in [
        ("--select", options.select.as_deref().unwrap_or_default()),
        ("--ignore", &options.ignore[..]),
    ] {
        if let Some(unknown) = codes.iter().find(|c| codes::explain(c).is_none()) {
            return Err(Error::input(format!(
                "{option}: unknown lint code `{}`: docs/LINT.md lists every code",
                crate::text::escaped(unknown)
            )));
        }
    }
    Ok(())
}

/// Checks that every PATH exists and is a file or directory, before anything is walked, and
/// returns the roots to walk.
fn roots(paths: &[PathBuf]) -> Result<Vec<PathBuf>, Error> {
    let mut roots = Vec::with_capacity(paths.len());
    for path in paths {
        let meta = fs::metadata(path).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                Error::input(format!("{}: no such file or directory", escaped_path(path)))
            } else {
                Error::input(format!(
                    "{}: cannot read: {}",
                    escaped_path(path),
                    io_reason(&e)
                ))
            }
        })?;
        if !meta.is_file() && !meta.is_dir() {
            return Err(Error::input(format!(
                "{}: not a file or directory",
                escaped_path(path)
            )));
        }
        // A PATH that is a link to a directory is walked, as one that is a link to a file is
        // read: the walker would take it for a file without the trailing `/`.
        let is_link = fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
        if path.as_os_str() == "-" {
            // The walker reads `-` as standard input; here it is a file of that name.
            roots.push(Path::new(".").join(path));
        } else if meta.is_dir() && is_link {
            let mut with_slash = path.as_os_str().to_owned();
            with_slash.push("/");
            roots.push(PathBuf::from(with_slash));
        } else {
            roots.push(path.clone());
        }
    }
    Ok(roots)
}

/// A path as shown: as reached from the PATH given, without a leading `./`. This is the real
/// name, for JSON and for messages; text output escapes it ([`crate::text::escaped_path`]).
pub fn shown(path: &Path) -> String {
    relative(path).display().to_string()
}

/// `path` without a leading `./` (`.` for the current directory itself).
pub fn relative(path: &Path) -> &Path {
    let path = path.strip_prefix(".").unwrap_or(path);
    if path.as_os_str().is_empty() {
        Path::new(".")
    } else {
        path
    }
}

/// Parses a file size: bytes, or a number with K, M or G (KiB, MiB, GiB also accepted).
///
/// # Errors
/// Text that is not such a size, or one over `u64::MAX` bytes.
pub fn parse_size(text: &str) -> Result<u64, String> {
    let bad =
        || format!("`{text}` is not a size: expected bytes or a number with K, M or G, e.g. 10M");
    let lower = text.trim().to_ascii_lowercase();
    let digits = lower.trim_end_matches(|c: char| c.is_ascii_alphabetic());
    let unit = &lower[digits.len()..];
    let scale: u64 = match unit {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => return Err(bad()),
    };
    let number: u64 = digits.trim().parse().map_err(|_| bad())?;
    number.checked_mul(scale).ok_or_else(bad)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse_with_units() {
        for (text, want) in [
            ("0", Some(0)),
            ("1024", Some(1024)),
            ("10M", Some(10 << 20)),
            ("10mib", Some(10 << 20)),
            ("512K", Some(512 << 10)),
            ("2 GiB", Some(2 << 30)),
            ("1B", Some(1)),
            ("", None),
            ("M", None),
            ("10X", None),
            ("-1", None),
            ("1.5M", None),
            ("99999999999999999999G", None),
        ] {
            assert_eq!(parse_size(text).ok(), want, "{text:?}");
        }
    }

    #[test]
    fn paths_are_shown_without_a_leading_dot() {
        for (path, want) in [
            ("./a/b.rs", "a/b.rs"),
            ("a/b.rs", "a/b.rs"),
            ("/abs/x.sql", "/abs/x.sql"),
            (".", "."),
            ("../up", "../up"),
        ] {
            assert_eq!(shown(Path::new(path)), want, "{path}");
        }
    }
}
