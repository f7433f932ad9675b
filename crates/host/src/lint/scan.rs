//! Finding header lines: a parallel walk of the given paths and a read of the head of each file.
//!
//! The walk is the `ignore` crate's, as in ripgrep: one worker per thread, each keeping its own
//! results and read buffer and sorting them when the walk ends, so nothing is shared per file.
//! A file smaller than [`HEAD`] (nearly all of them) costs one `open`, one `read` and one
//! `close`: a short read is its end. A file that fills the first read is asked its size
//! (`fstat`), which decides whether it is over `--max-file-size` before anything more is read;
//! a NUL byte in the first read makes it binary, also before anything more is read. More is
//! read only while the first `--lines` lines do not fit, and never past [`HEAD_LIMIT`] (1 MiB):
//! what lint reads of a file, the memory it holds for it and the time it spends on it are
//! bounded whatever the file's size (`--max-file-size` only decides which files are searched).
//! When the first lines do not fit in that limit, only the complete lines within it are
//! searched: a header cut short by the limit would otherwise be reported as malformed. Lines
//! are counted as they are read, each byte once. Files whose head holds no header and raises
//! no problem leave nothing behind but a count.

use std::cmp::Ordering;
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::time::Duration;

use ignore::{DirEntry, WalkBuilder, WalkState};
use registry_core::find_header;

use super::Level;
use crate::events::{Events, Progress};

/// Bytes read from each file at first: enough for the first lines of nearly every text file.
const HEAD: usize = 16 * 1024;

/// The most read from any file. A header is a short line near the top: a file whose first
/// `--lines` lines take more (minified code, data on one line) is searched in the complete
/// lines within this much, so that no file costs more memory or time than this.
pub(super) const HEAD_LIMIT: usize = 1 << 20;

/// A NUL byte among the first this many bytes makes a file binary, as git and ripgrep decide.
const BINARY_PROBE: usize = 8 * 1024;

/// `ELOOP`, what the OS says of a symbolic link that leads to itself: a loop, not an I/O error.
const ELOOP: i32 = if cfg!(any(
    target_os = "macos",
    target_os = "ios",
    target_os = "freebsd",
    target_os = "openbsd",
    target_os = "netbsd",
    target_os = "dragonfly"
)) {
    62
} else {
    40
};

/// How to walk and what to read.
#[derive(Debug, Clone)]
pub(super) struct Options {
    /// Headers are looked for in this many first lines of each file.
    pub lines: usize,
    /// Larger files are not read (a `too-large` note).
    pub max_file_size: u64,
    /// Follow symbolic links (a loop is then a `symlink-loop` note).
    pub follow: bool,
    /// Walker threads; 0 lets the walker choose.
    pub threads: usize,
    /// A searched file without a header is a `missing-header` error.
    pub require_header: bool,
    /// The files that must have a header (`[lint] require`), when any are named.
    pub require: Option<Required>,
}

/// `[lint] require`: globs matched against a file's path relative to a base directory.
#[derive(Debug, Clone)]
pub(super) struct Required {
    pub globs: globset::GlobSet,
    /// The directory the globs are relative to (the configuration file's), absolute.
    pub base: PathBuf,
    /// The working directory, which the walked paths are relative to, absolute.
    pub cwd: PathBuf,
}

impl Required {
    /// Whether `path` (as walked: relative to the working directory, or absolute) matches.
    /// Only files under the base directory can.
    pub fn matches(&self, path: &Path) -> bool {
        let mut full = PathBuf::new();
        for part in self.cwd.join(path).components() {
            match part {
                std::path::Component::CurDir => {}
                std::path::Component::ParentDir => {
                    full.pop();
                }
                other => full.push(other),
            }
        }
        full.strip_prefix(&self.base)
            .is_ok_and(|relative| self.globs.is_match(relative))
    }
}

/// A header-shaped text found in a file, nothing checked yet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Found {
    /// 1-based line number.
    pub line: u32,
    /// 1-based byte column of the header's `[` (a byte-order mark is not counted).
    pub column: u32,
    /// The UTF-16 code units before the header's `[` on its line, for SARIF, whose columns
    /// count those.
    pub before_utf16: u32,
    /// The header, brackets included.
    pub text: String,
}

/// Why a file was not searched: a diagnostic about the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileProblem {
    pub severity: Level,
    pub code: &'static str,
    pub message: String,
}

/// What one file gave: the headers found, or why it was not searched (or, with
/// `--require-header`, that it has no header).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct FileReport {
    pub path: PathBuf,
    pub headers: Vec<Found>,
    pub problem: Option<FileProblem>,
    /// The file's own ignore comment, if its head has one.
    pub ignore: Option<Ignore>,
}

/// What a file's ignore comment (`registry: ignore` or `registry: ignore[CODE,...]` on one of
/// its first `--lines` lines) leaves out of the report for that file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Ignore {
    /// `registry: ignore`: every diagnostic about the file.
    All,
    /// `registry: ignore[CODE,...]`: these codes. A list without its `]` is an empty one, so a
    /// typo never hides more than was asked.
    Codes(Vec<String>),
}

impl Ignore {
    /// Whether a diagnostic with `code` about the file is left out.
    pub fn covers(&self, code: &str) -> bool {
        match self {
            Ignore::All => true,
            Ignore::Codes(codes) => codes.iter().any(|c| c == code),
        }
    }
}

/// The text that starts an ignore comment.
const IGNORE: &str = "registry: ignore";

/// The ignore comment in the first `lines` lines of `text`, if any (the first one counts).
fn find_ignore(text: &str, lines: usize) -> Option<Ignore> {
    // `registry: ignored` or `registry: ignore-me` is prose, not the comment.
    let (at, rest) = text.match_indices(IGNORE).find_map(|(at, _)| {
        let rest = &text[at + IGNORE.len()..];
        let word = rest
            .chars()
            .next()
            .is_some_and(|c| c.is_alphanumeric() || c == '-' || c == '_');
        (!word).then_some((at, rest))
    })?;
    if count_lines(&text.as_bytes()[..at]) >= lines {
        return None;
    }
    let Some(list) = rest.strip_prefix('[') else {
        return Some(Ignore::All);
    };
    let line = list.split('\n').next().unwrap_or_default();
    let codes = match line.find(']') {
        Some(end) => line[..end]
            .split(',')
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(str::to_owned)
            .collect(),
        None => Vec::new(),
    };
    Some(Ignore::Codes(codes))
}

/// Everything the walk found, files in no particular order.
#[derive(Debug, Default)]
pub(super) struct Scanned {
    /// Files with a header or a problem.
    pub files: Vec<FileReport>,
    /// Files whose head was searched.
    pub scanned: u64,
    /// Files not searched: binary, too large, not UTF-8, unreadable, symbolic link loops.
    pub skipped: u64,
}

/// [`scan`], on threads of its own, while this thread reports the files met so far to `events`
/// about ten times a second (and `finished` at the end). The walk wakes this thread when it
/// ends, so waiting adds nothing to the run's time.
pub(super) fn walk(roots: &[PathBuf], options: &Options, events: &mut dyn Events) -> Scanned {
    let visited = AtomicU64::new(0);
    let visited = &visited;
    let scanned = std::thread::scope(|scope| {
        let waiting = std::thread::current();
        let walker = scope.spawn(move || {
            let scanned = scan(roots, options, visited);
            waiting.unpark();
            scanned
        });
        while !walker.is_finished() {
            std::thread::park_timeout(Duration::from_millis(100));
            events.progress(Progress {
                processed: visited.load(AtomicOrdering::Relaxed),
                done: None,
                unit: "files",
            });
        }
        walker.join()
    });
    events.finished();
    match scanned {
        Ok(scanned) => scanned,
        // The walk's own code does not panic; should it, the panic is the caller's.
        Err(panic) => std::panic::resume_unwind(panic),
    }
}

/// Walks `roots` in parallel and searches the head of every file not ignored. A root that is a
/// file is searched even if an ignore file names it. `visited` counts the files met as they are
/// met (one relaxed add each), for a progress report.
pub(super) fn scan(roots: &[PathBuf], options: &Options, visited: &AtomicU64) -> Scanned {
    let Some((first, rest)) = roots.split_first() else {
        return Scanned::default();
    };
    let mut builder = WalkBuilder::new(first);
    for root in rest {
        builder.add(root);
    }
    builder
        .standard_filters(true)
        // `.gitignore` files apply outside a git repository too: a tree copied out of its
        // repository, or one that is not versioned, is linted alike.
        .require_git(false)
        .follow_links(options.follow)
        .threads(options.threads)
        // Hidden files are skipped already; `.git` is skipped even if that changes.
        .filter_entry(|entry| entry.file_name() != ".git");
    let merged = Mutex::new(Scanned::default());
    builder.build_parallel().run(|| {
        let mut worker = Worker {
            options,
            buf: vec![0; HEAD],
            found: Scanned::default(),
            merged: &merged,
            visited,
        };
        Box::new(move |entry| {
            worker.visit(entry);
            WalkState::Continue
        })
    });
    merged
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// One walker thread: its read buffer and its results, merged into the shared ones when the
/// walk drops it.
struct Worker<'a> {
    options: &'a Options,
    buf: Vec<u8>,
    found: Scanned,
    merged: &'a Mutex<Scanned>,
    visited: &'a AtomicU64,
}

impl Drop for Worker<'_> {
    fn drop(&mut self) {
        // Sorted here, on every walker thread at once, the lists only need merging later.
        self.found
            .files
            .sort_unstable_by(|a, b| path_order(&a.path, &b.path));
        let mut merged = self
            .merged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        merged.files.append(&mut self.found.files);
        merged.scanned += self.found.scanned;
        merged.skipped += self.found.skipped;
    }
}

impl Worker<'_> {
    fn visit(&mut self, entry: Result<DirEntry, ignore::Error>) {
        let entry = match entry {
            Ok(entry) => entry,
            Err(e) => return self.walk_error(None, e),
        };
        let Some(kind) = entry.file_type() else {
            return;
        };
        // A root is what the user named: searched whatever it is (its kind was checked before
        // the walk). Below it, only regular files: a symbolic link shows up here only when
        // links are not followed, and then it is skipped, as ripgrep does.
        if kind.is_dir() || (entry.depth() > 0 && !kind.is_file()) {
            return;
        }
        self.file(entry.into_path());
    }

    /// Reports a walk error on the path it names: a loop as a note, anything else as an
    /// unreadable file or directory.
    fn walk_error(&mut self, path: Option<PathBuf>, e: ignore::Error) {
        match e {
            ignore::Error::WithPath { path, err } => self.walk_error(Some(path), *err),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => {
                self.walk_error(path, *err);
            }
            ignore::Error::Partial(errors) => {
                for e in errors {
                    self.walk_error(path.clone(), e);
                }
            }
            ignore::Error::Loop { ancestor, child } => {
                let message = format!(
                    "symbolic link loop: {} leads back to {}, not followed",
                    super::shown(&child),
                    super::shown(&ancestor)
                );
                self.problem(child, Level::Note, "symlink-loop", message);
            }
            ignore::Error::Io(e) => {
                let path = path.unwrap_or_default();
                self.io_problem(path, &e);
            }
            other => {
                let path = path.unwrap_or_default();
                self.problem(path, Level::Warning, "unreadable", other.to_string());
            }
        }
    }

    fn io_problem(&mut self, path: PathBuf, e: &io::Error) {
        if e.raw_os_error() == Some(ELOOP) {
            let message = "symbolic link loop (too many levels of symbolic links), not followed";
            self.problem(path, Level::Note, "symlink-loop", message.to_owned());
        } else {
            let message = format!("cannot read: {}", crate::error::io_reason(e));
            self.problem(path, Level::Warning, "unreadable", message);
        }
    }

    fn problem(&mut self, path: PathBuf, severity: Level, code: &'static str, message: String) {
        self.found.skipped += 1;
        self.found.files.push(FileReport {
            path,
            headers: Vec::new(),
            problem: Some(FileProblem {
                severity,
                code,
                message,
            }),
            ignore: None,
        });
    }

    fn file(&mut self, path: PathBuf) {
        self.visited.fetch_add(1, AtomicOrdering::Relaxed);
        match self.read_head(&path) {
            Err(e) => self.io_problem(path, &e),
            Ok(Head::NotRegular) => {}
            Ok(Head::Binary) => self.found.skipped += 1,
            Ok(Head::TooLarge(size)) => {
                let message = format!(
                    "file is {}, over --max-file-size {}: not checked",
                    human_size(size),
                    human_size(self.options.max_file_size)
                );
                self.problem(path, Level::Note, "too-large", message);
            }
            Ok(Head::Read(len)) => self.search(path, len),
        }
    }

    /// Opens the file and reads its first lines into `self.buf`, at most [`HEAD_LIMIT`] bytes.
    ///
    /// Most files are smaller than [`HEAD`]: for them one `read` returns the whole file (a
    /// regular file gives less than asked only at its end), and that is all. A file that fills
    /// the first read is asked its size (`fstat`), which decides whether it is too large and
    /// when its end is reached.
    fn read_head(&mut self, path: &Path) -> io::Result<Head> {
        let mut file = File::open(path)?;
        let max = self.options.max_file_size;
        let first = read_some(&mut file, &mut self.buf[..HEAD])?;
        let size = if first < HEAD {
            first as u64
        } else {
            let meta = file.metadata()?;
            if !meta.is_file() {
                return Ok(Head::NotRegular);
            }
            meta.len()
        };
        if size > max {
            return Ok(Head::TooLarge(size));
        }
        if self.buf[..first.min(BINARY_PROBE)].contains(&0) {
            return Ok(Head::Binary);
        }
        if first < HEAD {
            return Ok(Head::Read(first));
        }
        // More, in a buffer doubling up to the limit, only while the first lines do not fit.
        let wanted = self.options.lines;
        let limit = usize::try_from(size).unwrap_or(usize::MAX).min(HEAD_LIMIT);
        let mut len = first;
        let mut lines = count_lines(&self.buf[..len]);
        while lines < wanted && len < limit {
            if len == self.buf.len() {
                let grown = self.buf.len().saturating_mul(2).min(limit);
                self.buf.resize(grown, 0);
            }
            let end = self.buf.len().min(limit);
            match read_some(&mut file, &mut self.buf[len..end])? {
                0 => break,
                n => {
                    lines += count_lines(&self.buf[len..len + n]);
                    len += n;
                }
            }
        }
        if lines < wanted && len == HEAD_LIMIT && size > HEAD_LIMIT as u64 {
            // The limit cut the last line read short: the head ends with the last whole line.
            len = self.buf[..len]
                .iter()
                .rposition(|&b| b == b'\n')
                .map_or(0, |at| at + 1);
        }
        Ok(Head::Read(len))
    }

    /// Looks for headers in the first lines of the head just read.
    fn search(&mut self, path: PathBuf, len: usize) {
        let head = &self.buf[..len];
        let head = head.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(head);
        let lines = self.options.lines;
        let text = match head_text(head, lines) {
            Ok(text) => text,
            Err(line) => {
                let message = format!(
                    "line {line} is not valid UTF-8: headers are not looked for in this file"
                );
                self.problem(path, Level::Note, "not-utf8", message);
                return;
            }
        };
        self.found.scanned += 1;
        let required = self.options.require_header
            || self
                .options
                .require
                .as_ref()
                .is_some_and(|r| r.matches(&path));
        if let Some(report) = text_report(path, text, lines, required) {
            self.found.files.push(report);
        }
    }
}

/// What the first `lines` lines of `text` hold, read from `path`: its headers, its ignore
/// comment and, when a header is `required` and there is none, that problem; `None` when there
/// is nothing to report.
pub(super) fn text_report(
    path: PathBuf,
    text: &str,
    lines: usize,
    required: bool,
) -> Option<FileReport> {
    let headers = find_headers(text, lines);
    let problem = (headers.is_empty() && required).then(|| FileProblem {
        severity: Level::Error,
        code: "missing-header",
        message: format!("no header in the first {lines} lines, and one is required"),
    });
    (!headers.is_empty() || problem.is_some()).then(|| FileReport {
        path,
        headers,
        problem,
        ignore: find_ignore(text, lines),
    })
}

/// The order files are reported in: by path bytes, with `/` before any other byte, which is
/// the order of comparing paths component by component (`a/b` before `a.b/c`) without the cost
/// of splitting them into components at every comparison.
pub(super) fn path_order(a: &Path, b: &Path) -> Ordering {
    let (a, b) = (
        a.as_os_str().as_encoded_bytes(),
        b.as_os_str().as_encoded_bytes(),
    );
    let rank = |byte: u8| if byte == b'/' { 0 } else { u16::from(byte) + 1 };
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(at) => rank(a[at]).cmp(&rank(b[at])),
        None => a.len().cmp(&b.len()),
    }
}

/// One `read`, retried if a signal interrupts it.
fn read_some(file: &mut File, buf: &mut [u8]) -> io::Result<usize> {
    loop {
        match file.read(buf) {
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            other => return other,
        }
    }
}

/// What reading a file's head gave.
enum Head {
    /// The first bytes of the file are in the buffer, this many.
    Read(usize),
    /// Larger than `--max-file-size`: its size.
    TooLarge(u64),
    /// A NUL byte in the first [`BINARY_PROBE`] bytes: skipped, nothing more read.
    Binary,
    /// Not a regular file (a device or pipe reached through a followed link): not read.
    NotRegular,
}

/// The head as text, up to the first invalid UTF-8 if that comes after the first `lines`
/// lines; or the line number of invalid UTF-8 within them. Validating the whole head at once
/// is faster than finding the lines first.
fn head_text(head: &[u8], lines: usize) -> Result<&str, usize> {
    match std::str::from_utf8(head) {
        Ok(text) => Ok(text),
        Err(e) => {
            let valid = &head[..e.valid_up_to()];
            let line = count_lines(valid) + 1;
            // A character cut by the end of what was read is not an encoding error.
            if line > lines || e.error_len().is_none() {
                Ok(std::str::from_utf8(valid).unwrap_or_default())
            } else {
                Err(line)
            }
        }
    }
}

/// The headers in the first `lines` lines of `text`, at most one per line. Only lines with a
/// `[` are looked at: the search jumps from one `[` to the next and counts the lines between.
fn find_headers(text: &str, lines: usize) -> Vec<Found> {
    let mut found = Vec::new();
    let bytes = text.as_bytes();
    let mut line = 1;
    let mut counted = 0;
    let mut from = 0;
    while let Some(at) = text[from..].find('[').map(|at| from + at) {
        let gap = &bytes[counted..at];
        line += count_lines(gap);
        if line > lines {
            break;
        }
        let start = gap
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| counted + i + 1);
        let end = text[at..].find('\n').map_or(text.len(), |i| at + i);
        if let Some((offset, header)) = find_header(&text[start..end]) {
            found.push(Found {
                line: u32::try_from(line).unwrap_or(u32::MAX),
                column: u32::try_from(offset + 1).unwrap_or(u32::MAX),
                before_utf16: u32::try_from(text[start..start + offset].encode_utf16().count())
                    .unwrap_or(u32::MAX),
                text: header.to_owned(),
            });
        }
        // The next search starts on the next line; its newline is counted then.
        counted = end;
        from = end;
    }
    found
}

fn count_lines(text: &[u8]) -> usize {
    text.iter().filter(|&&b| b == b'\n').count()
}

/// A size in bytes, KiB, MiB or GiB, for messages.
pub(super) fn human_size(bytes: u64) -> String {
    const UNITS: [(&str, u64); 3] = [("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)];
    for (unit, scale) in UNITS {
        if bytes >= scale {
            return if bytes.is_multiple_of(scale) {
                format!("{} {unit}", bytes / scale)
            } else {
                let value = bytes as f64 / scale as f64;
                format!("{value:.1} {unit}")
            };
        }
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use std::fs;

    use super::*;

    #[test]
    fn headers_are_found_in_the_first_lines_only() {
        let h = "[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]";
        let g = "[sec-rules-live-sec-rul-042-v2.9-required]";
        let found = |text: &str, lines: usize| -> Vec<(u32, u32, String)> {
            find_headers(text, lines)
                .into_iter()
                .map(|f| (f.line, f.column, f.text))
                .collect()
        };
        for (text, lines, want) in [
            (format!("# {h}\n"), 20, vec![(1, 3, h)]),
            (
                format!("#!/bin/sh\n# {h}\nx = a[1][2][3]\n"),
                20,
                vec![(2, 3, h)],
            ),
            (format!("a [x]\n\n<!-- {g} -->"), 20, vec![(3, 6, g)]),
            (
                format!("// {h}\r\n// {g}\r\n"),
                20,
                vec![(1, 4, h), (2, 4, g)],
            ),
            (format!("1\n2\n# {h}"), 3, vec![(3, 3, h)]),
            (format!("1\n2\n# {h}"), 2, vec![]),
            (format!("[a] [b] {h} [c]\n[d]"), 20, vec![(1, 9, h)]),
            ("no header [here]\n".to_owned(), 20, vec![]),
            (String::new(), 20, vec![]),
        ] {
            let want: Vec<(u32, u32, String)> = want
                .into_iter()
                .map(|(l, c, t)| (l, c, t.to_owned()))
                .collect();
            assert_eq!(found(&text, lines), want, "{text:?} {lines}");
        }
    }

    /// What a walker thread finds in `path` reading `lines` lines, and the size its read
    /// buffer grew to.
    fn scan_file(path: &Path, lines: usize) -> (Vec<FileReport>, u64, usize) {
        let options = Options {
            lines,
            max_file_size: u64::MAX,
            follow: false,
            threads: 1,
            require_header: false,
            require: None,
        };
        let merged = Mutex::new(Scanned::default());
        let mut worker = Worker {
            options: &options,
            buf: vec![0; HEAD],
            found: Scanned::default(),
            merged: &merged,
            visited: &AtomicU64::new(0),
        };
        worker.file(path.to_owned());
        let grown = worker.buf.len();
        drop(worker);
        let scanned = merged
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        (scanned.files, scanned.skipped, grown)
    }

    const HEADER: &str = "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][LIVE]\n";

    #[test]
    fn no_more_than_the_limit_is_read_whatever_the_file_size() {
        let dir = tempfile::tempdir().expect("temp dir");
        // One line, then a line longer than the limit; the rest a hole of NUL bytes.
        let long = dir.path().join("long.txt");
        let mut text = HEADER.as_bytes().to_vec();
        text.resize(text.len() + 2 * HEAD, b'x');
        fs::write(&long, &text).expect("write");
        File::options()
            .write(true)
            .open(&long)
            .and_then(|f| f.set_len(64 << 20))
            .expect("set length");
        let (files, skipped, grown) = scan_file(&long, 1_000_000);
        assert!(grown <= HEAD_LIMIT, "buffer grew to {grown}");
        assert_eq!(skipped, 0);
        assert_eq!(files.len(), 1);
        let found: Vec<u32> = files[0].headers.iter().map(|h| h.line).collect();
        assert_eq!(found, [1]);

        // Binary: decided on the first read.
        let binary = dir.path().join("zeros.bin");
        File::create(&binary)
            .and_then(|f| f.set_len(64 << 20))
            .expect("sparse file");
        let (files, skipped, grown) = scan_file(&binary, 1_000_000);
        assert_eq!((files.len(), skipped, grown), (0, 1, HEAD));
    }

    #[test]
    fn a_line_cut_by_the_limit_is_not_searched() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("cut.txt");
        let mut text = HEADER.as_bytes().to_vec();
        // A line of filler ending 24 bytes before the limit, then a header across it: the
        // part within the limit is header-shaped (`# [SEC][RULES][LIVE][SE`), but cut.
        text.resize(HEAD_LIMIT - 25, b'x');
        text.push(b'\n');
        text.extend_from_slice(HEADER.replace("001", "002").as_bytes());
        text.extend_from_slice(b"more\n");
        fs::write(&path, &text).expect("write");
        let (files, _, _) = scan_file(&path, 1_000_000);
        let found: Vec<(u32, &str)> = files[0]
            .headers
            .iter()
            .map(|h| (h.line, h.text.as_str()))
            .collect();
        assert_eq!(found, [(1, HEADER[2..].trim_end())]);

        let (files, _, _) = scan_file(&path, 2);
        assert_eq!(files[0].headers.len(), 1, "line 3 is beyond --lines 2");
        let (files, _, _) = scan_file(&path, 3);
        assert_eq!(
            files[0].headers.len(),
            1,
            "line 3 begins within the limit but is cut"
        );
    }

    #[test]
    fn required_globs_match_paths_relative_to_the_base() {
        let mut set = globset::GlobSetBuilder::new();
        for glob in ["rules/**/*.yml", "*.rego"] {
            set.add(
                globset::GlobBuilder::new(glob)
                    .literal_separator(true)
                    .build()
                    .expect("glob"),
            );
        }
        let required = Required {
            globs: set.build().expect("set"),
            base: PathBuf::from("/repo"),
            cwd: PathBuf::from("/repo/rules"),
        };
        for (path, want) in [
            ("a.yml", true),
            ("./deep/er/b.yml", true),
            ("a.yaml", false),
            ("../policy.rego", true),
            ("../sub/policy.rego", false),
            ("/repo/rules/x.yml", true),
            ("/elsewhere/rules/x.yml", false),
            ("../../repo/rules/x.yml", true),
        ] {
            assert_eq!(required.matches(Path::new(path)), want, "{path}");
        }
    }

    #[test]
    fn ignore_comments_are_read_in_the_first_lines() {
        let codes = |c: &[&str]| Some(Ignore::Codes(c.iter().map(|c| (*c).to_owned()).collect()));
        for (text, lines, want) in [
            ("# registry: ignore\n", 20, Some(Ignore::All)),
            ("x\n// registry: ignore[bad-id]\n", 20, codes(&["bad-id"])),
            (
                "# registry: ignore[ bad-id , duplicate-id,]\n",
                20,
                codes(&["bad-id", "duplicate-id"]),
            ),
            ("# registry: ignore[bad-id\nx]\n", 20, codes(&[])),
            ("1\n2\n# registry: ignore\n", 2, None),
            ("1\n2\n# registry: ignore\n", 3, Some(Ignore::All)),
            ("# registry ignore\n", 20, None),
            ("# registry: ignored\n# registry: ignore-me\n", 20, None),
            (
                "# registry: ignored\n# registry: ignore\n",
                20,
                Some(Ignore::All),
            ),
        ] {
            assert_eq!(find_ignore(text, lines), want, "{text:?} {lines}");
        }
        assert!(Ignore::All.covers("bad-id"));
        assert!(codes(&["bad-id"]).is_some_and(|i| i.covers("bad-id") && !i.covers("bad-version")));
    }

    #[test]
    fn invalid_utf8_matters_only_in_the_scanned_lines() {
        assert_eq!(head_text(b"a\nb\n", 1), Ok("a\nb\n"));
        assert_eq!(head_text(b"a\n\xff\n", 2), Err(2));
        assert_eq!(head_text(b"a\n\xff\n", 1), Ok("a\n"));
        // A character cut by the end of the read: the text before it.
        assert_eq!(head_text(b"a\n\xc3", 5), Ok("a\n"));
    }

    #[test]
    fn paths_order_component_by_component() {
        let mut paths: Vec<&Path> = ["a.b/c", "a/b", "a-b", "a", "b", "a/b/c", "a/a.z", "A"]
            .into_iter()
            .map(Path::new)
            .collect();
        let mut by_components = paths.clone();
        by_components.sort();
        paths.sort_by(|a, b| path_order(a, b));
        assert_eq!(paths, by_components);
    }

    #[test]
    fn sizes_read_as_people_write_them() {
        for (bytes, want) in [
            (0, "0 bytes"),
            (1023, "1023 bytes"),
            (1024, "1 KiB"),
            (1536, "1.5 KiB"),
            (10 << 20, "10 MiB"),
            (3 << 30, "3 GiB"),
        ] {
            assert_eq!(human_size(bytes), want);
        }
    }
}
