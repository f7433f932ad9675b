//! Stamping: registers each file that lacks a header and writes the header into it.
//!
//! For each FILE: a file whose first 20 lines hold a header ([`find_header`]) that parses and
//! checks against the schema is left as it is, byte for byte (`unchanged`); a file whose header
//! does not parse or check is an error naming the line and the problem, and is never stamped a
//! second time, so re-running `stamp` changes nothing. Any other file gets a request (title,
//! the fields and version given on the command line, context) registered through the ordinary
//! [`Pipeline::add`] path, then its header written as one comment line in the file's syntax
//! (see the `comment` module for the table and for the lines that must stay before it).
//!
//! Decisions:
//! - Title: the first Markdown ATX heading (`# Title`) of a `.md`/`.markdown` file, else the
//!   file name's stem with `_` and `-` turned into spaces. No guessing from comments or code.
//! - Context: `file=<path>` is added to every request, the path relative to the nearest
//!   ancestor directory holding a `.git` (directory or file), with `/` separators, or the path
//!   as given (without `./`) outside a repository. Registration is idempotent by fingerprint
//!   (title, given fields, context), so without it two `README.md` files in different folders
//!   would collapse into one entry. A `--context file=...` given by the user wins; giving one
//!   to several files with the same title makes them share one entry, as asked.
//! - Registration comes before the write. If the write fails, the entry stays registered; the
//!   file still has no header, so the next run registers the same request again, which the
//!   fingerprint resolves to the same entry and id: no duplicate.
//! - Writing: the new content goes to a temporary file in the same directory, which gets the
//!   original's permissions (and owner, on Unix), is synced, then renamed over the original;
//!   an interrupted stamp leaves either the old file or the new one, never a truncated one.
//!   Just before writing, the file is read again: if it changed since it was read, it is left
//!   alone and reported. The header line ends like the file's first line (CRLF or LF); a UTF-8
//!   byte order mark stays first. Extended attributes are not carried over.
//! - Writes stay inside the tree (the `place` module has the rule and how it is kept): a FILE that is a
//!   symbolic link is stamped only if its real path lies inside the directory it is named in
//!   (`rules/` for `rules/a.sh`, `.` for `a.sh`); then the link's target is stamped and the
//!   link stays a link. A link leading out of that directory is refused, naming its target,
//!   before anything is registered or written. No step writes by path: the directory checked
//!   is the one written in, so a link planted meanwhile (at the file, at a directory on the
//!   way, at the temporary file's name) cannot redirect the write.
//! - Links otherwise: a file named twice (or through a link and directly) is stamped and
//!   reported once. A file with several hard links is refused: replacing it would separate the
//!   links.
//! - Refused, each with its own message, the other files going ahead: a missing file, a
//!   directory or other non-regular file, a read-only file, a file over 64 MiB, a binary file
//!   (a NUL byte in the first 8 KiB), invalid UTF-8, a type with no known comment syntax (unless
//!   `--comment PREFIX` gives a line comment prefix; it applies only to such files, so a mixed
//!   list never gets `//` in a Python file), a title or request the pipeline rejects.
//! - Output: one line per file on stdout, in argument order: `stamped FILE HEADER`,
//!   `unchanged FILE HEADER`, `error FILE: REASON`; with `--format json` an array of objects
//!   `{file, status, header, id, title, line, created, message}` (absent keys omitted). When a
//!   file failed, stderr gets one line (the failure, or how many failed) and the exit code is 1;
//!   it is 2 when a failure comes from configuration, plugins or storage. In text, on stdout
//!   and stderr, FILE and REASON (which may quote a path) have control characters, Unicode
//!   line separators, bidirectional controls and backslashes escaped ([`crate::text`]), so
//!   a file name cannot forge a line; JSON keeps the real name.
//! - `--dry-run` asks the generator ([`Pipeline::predict`]) what it would fill in and shows the
//!   header with `?` for the id number, which only storage allocates
//!   (`[SEC][RULES][LIVE][SEC-RUL-?][v2.9][REQUIRED]`, status `would-stamp`). It registers and
//!   writes nothing (it does open the registry, creating a new data directory), and cannot
//!   know whether an earlier interrupted run registered the file already (that entry's fields
//!   would then be used), nor what the validator would say.

mod comment;
mod place;

use std::collections::HashSet;
use std::fs::{self, File};
use std::path::{Component, Path, PathBuf};

use registry_core::{
    Added, Context, EntryId, Field, Fields, HeaderForm, Pipeline, RawHeader, Request, RequestError,
    Schema, find_header, is_version,
};
use serde::Serialize;

use crate::error::{Error, io_reason};
use crate::events::{Events, Progress};
use crate::registry::{Needs, Registry};
use crate::settings::Settings;
use crate::text::{escaped, escaped_path};
use comment::{Comment, Dialect, FileType};
use place::Place;

/// How many lines from the top a header is looked for in, as `lint` does.
const HEADER_LINES: usize = 20;
/// How much of a file is looked at for a NUL byte, the sign of a binary file.
const BINARY_SNIFF: usize = 8192;
/// Largest file stamped: files are read whole, and rules, scripts and configs are small.
const MAX_FILE_BYTES: u64 = 64 << 20;
const BOM: &str = "\u{feff}";

/// What happened to one file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Status {
    Stamped,
    Unchanged,
    WouldStamp,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Stamped => "stamped",
            Status::Unchanged => "unchanged",
            Status::WouldStamp => "would-stamp",
            Status::Error => "error",
        }
    }
}

/// One line of the report (one object in JSON).
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub status: Status,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub header: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub title: Option<String>,
    /// The header's line, 1-based.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    /// For a stamped file: false when an earlier run had registered it already.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub created: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// The failure comes from configuration, plugins or storage, not from the file.
    #[serde(skip)]
    pub severe: bool,
    /// `file` as text output shows it, escaped.
    #[serde(skip)]
    pub shown: String,
}

impl Report {
    fn new(given: &Path, status: Status) -> Report {
        Report {
            file: given.display().to_string(),
            shown: escaped_path(given),
            status,
            header: None,
            id: None,
            title: None,
            line: None,
            created: None,
            message: None,
            severe: false,
        }
    }

    fn failed(given: &Path, failure: Failure) -> Report {
        Report {
            message: Some(failure.message),
            line: failure.line,
            severe: failure.severe,
            ..Report::new(given, Status::Error)
        }
    }
}

/// Why one file cannot be stamped.
#[derive(Debug)]
pub(crate) struct Failure {
    message: String,
    line: Option<usize>,
    severe: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            line: None,
            severe: false,
        }
    }
}

/// What to stamp, and with what.
#[derive(Debug, Clone)]
pub struct Stamp {
    /// Files to stamp; a link's target is stamped if it is inside the link's directory.
    pub files: Vec<PathBuf>,
    /// Header fields given for every file.
    pub fields: Fields<Option<String>>,
    /// The version given for every file (else the schema's).
    pub version: Option<String>,
    /// Context for every file; `file=<path in the repository>` is added unless given.
    pub context: Context,
    /// How the header is written.
    pub form: HeaderForm,
    /// Line comment prefix for files whose type has no known comment syntax.
    pub comment: Option<String>,
    /// Show the headers that would be written; register and write nothing.
    pub dry_run: bool,
}

/// What every file of one run shares.
struct Options<'a> {
    schema: &'a Schema,
    fields: Fields<Option<String>>,
    version: Option<String>,
    context: Context,
    comment: Option<String>,
}

/// A file to stamp once its entry is registered.
struct Plan {
    /// Index of the file's report.
    slot: usize,
    place: Place,
    original: Vec<u8>,
    meta: fs::Metadata,
    /// Byte offset of the header line in `original`.
    at: usize,
    /// The header's line once written, 1-based.
    line: usize,
    /// The last line before the header has no line ending: one goes before the header.
    newline_before: bool,
    eol: &'static str,
    comment: Comment,
    request: Request,
}

/// What reading a file found.
enum Found {
    Header {
        line: usize,
        text: String,
        id: EntryId,
    },
    Missing(Box<Plan>),
}

/// Stamps every file of `stamp` (see the module doc), in argument order; one report per file.
/// The registry is opened (and created) only when some file needs registering.
///
/// # Errors
/// A bad argument (exit 1) or a pipeline that cannot be opened (exit 2), before any file is
/// touched. What happened to each file is in its report; [`result`] makes the exit status.
pub fn stamp(
    settings: &Settings,
    stamp: Stamp,
    events: &mut dyn Events,
) -> Result<Vec<Report>, Error> {
    let schema = &settings.schema;
    let Stamp {
        files,
        fields,
        version,
        context,
        form,
        comment,
        dry_run,
    } = stamp;
    for (field, value) in fields.iter() {
        if let Some(v) = value
            && schema.canonical(field, v).is_none()
        {
            return Err(Error::input(format!(
                "unknown {field} `{v}`: allowed values are {}",
                schema.allowed(field).join(", ")
            )));
        }
    }
    if let Some(v) = &version
        && !is_version(v)
    {
        return Err(RequestError::BadVersion(v.clone()).into());
    }
    if let Some(prefix) = &comment {
        check_prefix(prefix)?;
    }
    let options = Options {
        schema,
        fields,
        version,
        context,
        comment,
    };

    let mut reports = Vec::with_capacity(files.len());
    let mut plans = Vec::new();
    let mut seen = HashSet::new();
    for (done, given) in files.iter().enumerate() {
        events.progress(Progress {
            processed: done as u64,
            done: Some(done as f64 / files.len() as f64),
            unit: "files",
        });
        let (place, file, meta) = match Place::resolve(given) {
            Ok(found) => found,
            Err(failure) => {
                reports.push(Report::failed(given, failure));
                continue;
            }
        };
        if !seen.insert(place.target.clone()) {
            continue;
        }
        match inspect(given, place, file, &meta, &options) {
            Ok(Found::Header { line, text, id }) => reports.push(Report {
                header: Some(text),
                id: Some(id.to_string()),
                line: Some(line),
                ..Report::new(given, Status::Unchanged)
            }),
            Ok(Found::Missing(mut plan)) => {
                plan.slot = reports.len();
                // Filled in once the pipeline answers for the file.
                reports.push(Report {
                    title: Some(plan.request.title().to_owned()),
                    line: Some(plan.line),
                    message: Some("the pipeline returned no result for the file".to_owned()),
                    severe: true,
                    ..Report::new(given, Status::Error)
                });
                plans.push(*plan);
            }
            Err(failure) => reports.push(Report::failed(given, failure)),
        }
    }

    if !plans.is_empty() {
        let registry = Registry::open(settings, Needs::REGISTER)?;
        for w in &registry.warnings {
            events.warning(w);
        }
        let pipeline = registry.into_pipeline();
        if dry_run {
            predict(&pipeline, &plans, form, &mut reports)?;
        } else {
            register_and_write(&pipeline, plans, form, &mut reports);
        }
    }
    events.finished();
    Ok(reports)
}

/// The outcome of a run: Ok when every file was stamped or unchanged; else the one failure, or
/// how many failed, with exit code 1, or 2 when a failure came from configuration, plugins or
/// storage.
///
/// # Errors
/// Some file failed.
pub fn result(reports: &[Report]) -> Result<(), Error> {
    let failed: Vec<&Report> = reports
        .iter()
        .filter(|r| r.status == Status::Error)
        .collect();
    let code = if failed.iter().any(|r| r.severe) {
        2
    } else {
        1
    };
    match failed[..] {
        [] => Ok(()),
        [one] => Err(Error {
            code,
            ..Error::input(format!(
                "cannot stamp {}: {}",
                one.shown,
                escaped(one.message.as_deref().unwrap_or("failed"))
            ))
            .in_file(&one.file)
        }),
        ref many => Err(Error {
            code,
            ..Error::input(format!(
                "{} of {} files could not be stamped",
                many.len(),
                reports.len()
            ))
        }),
    }
}

/// A `--comment` prefix must keep the header on one line and findable.
fn check_prefix(prefix: &str) -> Result<(), Error> {
    let ok = !prefix.is_empty()
        && prefix.chars().count() <= 16
        && !prefix
            .chars()
            .any(|c| c.is_whitespace() || c.is_control() || matches!(c, '[' | ']'));
    if ok {
        Ok(())
    } else {
        Err(Error::input(format!(
            "--comment `{prefix}` is not a line comment prefix: use 1 to 16 characters without spaces, brackets or control characters, e.g. '#'"
        )))
    }
}

/// Reads one file: its header, or the plan to stamp it.
fn inspect(
    given: &Path,
    place: Place,
    mut file: File,
    meta: &fs::Metadata,
    options: &Options<'_>,
) -> Result<Found, Failure> {
    let too_large = |len: u64| {
        Failure::new(format!(
            "the file is {len} bytes: files over {} MiB are not stamped",
            MAX_FILE_BYTES >> 20
        ))
    };
    if meta.len() > MAX_FILE_BYTES {
        return Err(too_large(meta.len()));
    }
    // At most the limit, even if the file grew since its size was asked.
    let original = place::read_at_most(&mut file, MAX_FILE_BYTES)
        .map_err(|e| Failure::new(io_reason(&e)))?
        .ok_or_else(|| too_large(MAX_FILE_BYTES + 1))?;
    drop(file);
    let target = &place.target;
    if let Some(at) = original.iter().take(BINARY_SNIFF).position(|&b| b == 0) {
        return Err(Failure::new(format!(
            "a binary file (NUL byte at offset {at}): only text files are stamped"
        )));
    }
    let whole = std::str::from_utf8(&original).map_err(|e| {
        Failure::new(format!(
            "not valid UTF-8 (at byte {}): only UTF-8 text files are stamped",
            e.valid_up_to()
        ))
    })?;
    let bom = if whole.starts_with(BOM) { BOM.len() } else { 0 };
    let text = &whole[bom..];
    let lines = comment::split_lines(text);

    for (i, &(start, end)) in lines.iter().take(HEADER_LINES).enumerate() {
        let Some((_, found)) = find_header(comment::content(&text[start..end])) else {
            continue;
        };
        let checked = RawHeader::split(found, options.schema)
            .and_then(|raw| raw.check(found, options.schema));
        return match checked {
            Ok(header) => Ok(Found::Header {
                line: i + 1,
                text: found.to_owned(),
                id: header.id,
            }),
            Err(e) => Err(Failure {
                message: format!(
                    "line {}: {e}: fix or remove the header, stamp does not replace it",
                    i + 1
                ),
                line: Some(i + 1),
                severe: false,
            }),
        };
    }

    // Checked only now: a file that already carries its header is fine as it is.
    if meta.permissions().readonly() {
        return Err(Failure::new("the file is read-only"));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        if meta.nlink() > 1 {
            return Err(Failure::new(format!(
                "the file has {} hard links: stamping replaces the file, which would separate them",
                meta.nlink()
            )));
        }
    }

    let first = lines
        .first()
        .map_or("", |&(s, e)| comment::content(&text[s..e]));
    let file_type = match (comment::file_type(target, first), &options.comment) {
        (Ok(t), _) => t,
        (Err(_), Some(prefix)) => FileType {
            comment: Comment::Line(prefix.clone()),
            dialect: Dialect::Plain,
        },
        (Err(unknown), None) => {
            return Err(Failure::new(format!(
                "{unknown}: give --comment PREFIX to stamp it with a line comment"
            )));
        }
    };
    let (at, kept) = comment::preamble_end(text, &file_type);
    let eol = match text.find('\n') {
        Some(n) if text[..n].ends_with('\r') => "\r\n",
        _ => "\n",
    };

    let heading = match file_type.dialect {
        Dialect::Markdown => comment::markdown_heading(text),
        _ => None,
    };
    let from = if heading.is_some() {
        "the first heading"
    } else {
        "the file name"
    };
    let title = heading.unwrap_or_else(|| comment::title_from_name(target));
    let mut context = options.context.clone();
    if context.get("file").is_none() {
        context
            .set("file".to_owned(), file_context(given, target))
            .map_err(|e| Failure::new(format!("cannot record the path: {e}")))?;
    }
    let request = Request::new(
        &title,
        options.fields.clone(),
        options.version.clone(),
        context,
    )
    .map_err(|e| Failure::new(format!("{e} (the title comes from {from})")))?;

    Ok(Found::Missing(Box::new(Plan {
        slot: 0,
        place,
        meta: meta.clone(),
        at: bom + at,
        line: kept + 1,
        newline_before: at > 0 && !text[..at].ends_with('\n'),
        eol,
        comment: file_type.comment,
        request,
        original,
    })))
}

/// The `file` context of a file: its path in the repository holding it, else as given.
fn file_context(given: &Path, target: &Path) -> String {
    let root = target.parent().and_then(|dir| {
        dir.ancestors()
            .find(|a| fs::symlink_metadata(a.join(".git")).is_ok())
    });
    match root.and_then(|r| target.strip_prefix(r).ok()) {
        Some(inside) => slash_path(inside),
        None => slash_path(given),
    }
}

/// A path with `/` separators and without `.` components, the same on every platform.
fn slash_path(path: &Path) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut absolute = false;
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::RootDir if parts.is_empty() => absolute = true,
            Component::RootDir => {}
            other => parts.push(other.as_os_str().to_string_lossy().into_owned()),
        }
    }
    let joined = parts.join("/");
    if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// `--dry-run`: the headers the generator would fill in, the id number unknown.
fn predict(
    pipeline: &Pipeline,
    plans: &[Plan],
    form: HeaderForm,
    reports: &mut [Report],
) -> Result<(), Error> {
    let requests = plans.iter().map(|p| p.request.clone()).collect();
    let predictions = pipeline.predict(requests)?;
    if predictions.len() != plans.len() {
        return Err(Error::config(
            "the generator returned fewer predictions than requests",
        ));
    }
    for (plan, prediction) in plans.iter().zip(predictions) {
        let report = &mut reports[plan.slot];
        match prediction {
            Ok(guesses) => {
                let fields = Fields::from_fn(|f: Field| guesses[f].value.clone());
                let version = plan
                    .request
                    .version
                    .clone()
                    .unwrap_or_else(|| pipeline.schema().version().to_owned());
                let id = format!("{}-?", EntryId::prefix_for(&fields.scope, &fields.kind));
                let raw = RawHeader {
                    form,
                    fields,
                    id,
                    version,
                };
                let header = match form {
                    HeaderForm::Readable => raw.text(),
                    HeaderForm::Grepable => raw.text().to_lowercase(),
                };
                report.status = Status::WouldStamp;
                report.header = Some(header);
                report.message = None;
                report.severe = false;
            }
            Err(e) => {
                report.severe = !e.is_user_error();
                report.message = Some(e.to_string());
            }
        }
    }
    Ok(())
}

/// Registers every planned file in one batch, then writes each header.
fn register_and_write(
    pipeline: &Pipeline,
    plans: Vec<Plan>,
    form: HeaderForm,
    reports: &mut [Report],
) {
    let requests = plans.iter().map(|p| p.request.clone()).collect();
    let results = pipeline.add(requests);
    for (plan, result) in plans.iter().zip(results) {
        let report = &mut reports[plan.slot];
        match result {
            Ok(Added { entry, created, .. }) => {
                let header = entry.header.format(form);
                match write(plan, &plan.comment.wrap(&header)) {
                    Ok(()) => {
                        report.status = Status::Stamped;
                        report.created = Some(created);
                        report.message = None;
                    }
                    Err(reason) => {
                        report.message = Some(format!(
                            "{reason}; it is registered as {}: run stamp again to write the header",
                            entry.header.id
                        ));
                    }
                }
                report.header = Some(header);
                report.id = Some(entry.header.id.to_string());
                report.severe = false;
            }
            Err(e) => {
                report.severe = !e.is_user_error();
                report.message = Some(e.to_string());
            }
        }
    }
}

/// Writes the header line into the planned file, unless it changed since it was read.
fn write(plan: &Plan, line: &str) -> Result<(), String> {
    let eol = plan.eol.as_bytes();
    let mut out = Vec::with_capacity(plan.original.len() + line.len() + 2 * eol.len());
    out.extend_from_slice(&plan.original[..plan.at]);
    if plan.newline_before {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&plan.original[plan.at..]);
    plan.place
        .replace(&plan.original, &out, &plan.meta, MAX_FILE_BYTES)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slash_paths() {
        for (path, expected) in [
            ("./a/./b.py", "a/b.py"),
            ("a/../b.py", "a/../b.py"),
            ("/srv/rules/x.sql", "/srv/rules/x.sql"),
            ("x.md", "x.md"),
        ] {
            assert_eq!(slash_path(Path::new(path)), expected, "{path}");
        }
    }

    #[test]
    fn comment_prefixes() {
        for ok in ["#", "//", "--", ";;", "REM", "%"] {
            assert!(check_prefix(ok).is_ok(), "{ok}");
        }
        for bad in ["", "# ", "a b", "[", "x]", "\t", &"#".repeat(17)] {
            assert!(check_prefix(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn file_context_is_relative_to_the_repository() {
        let dir = tempfile::tempdir().expect("temp dir");
        let root = dir.path().join("repo");
        fs::create_dir_all(root.join("sub")).expect("mkdir");
        fs::create_dir(root.join(".git")).expect("mkdir .git");
        let file = root.join("sub/a.py");
        fs::write(&file, "x\n").expect("write");
        let target = fs::canonicalize(&file).expect("canonical");
        assert_eq!(file_context(Path::new("given.py"), &target), "sub/a.py");
        let outside = dir.path().join("b.py");
        fs::write(&outside, "x\n").expect("write");
        let target = fs::canonicalize(&outside).expect("canonical");
        assert_eq!(file_context(Path::new("./b.py"), &target), "b.py");
    }
}
