//! Stamping: registers each file that lacks a header and writes the header into it; with
//! `--refresh`, rewrites headers an update made stale; and `link`, which writes an existing
//! entry's header into a file.
//!
//! Paths: a FILE is stamped as given; a directory is walked as `lint` walks it (`.gitignore`
//! and hidden files honoured, `.git` skipped, links not followed, `--include`/`--exclude`
//! globs relative to it), its files in path order, and those stamp cannot write into (binary,
//! not UTF-8, no known comment syntax) are reported `skipped`, not as errors: a tree holds
//! images and data files beside its rules. Named on its own, such a file is still an error.
//!
//! `--refresh`: each header found is compared with its entry's current header (looked up by
//! the id it names, in the form it is written in); a header that differs is rewritten in place,
//! atomically as a stamp is (`refreshed`, with the header it `was`). A header naming no
//! registered entry is an error pointing at `registry link`. A header naming an entry merged
//! into another is rewritten with that other entry's header ([`Pipeline::resolve`]), and so
//! is a file stamped or linked with a merged entry: merging a duplicate and refreshing
//! re-points its files. A retired entry's header stays as it is (`lint --registered` warns).
//! `link FILE ID` replaces whatever
//! header the file has with that entry's (`refreshed`), or writes it as a stamp would
//! (`linked`); it registers nothing.
//!
//! `--dry-run` everywhere reports what would happen (`would-stamp`, `would-refresh`,
//! `would-link`) with a unified diff of the file (`diff`), and writes nothing.
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
mod metadata;
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
    /// `--refresh`, `link`: the header was rewritten from the registered entry.
    Refreshed,
    /// `--refresh --dry-run`, `link --dry-run`: the header would be rewritten.
    WouldRefresh,
    /// `link`: a file without a header got the entry's.
    Linked,
    /// `link --dry-run`: the file would get the entry's header.
    WouldLink,
    /// A file found by walking a directory that stamp does not write into (binary, not UTF-8,
    /// no known comment syntax).
    Skipped,
    Error,
}

impl Status {
    pub fn name(self) -> &'static str {
        match self {
            Status::Stamped => "stamped",
            Status::Unchanged => "unchanged",
            Status::WouldStamp => "would-stamp",
            Status::Refreshed => "refreshed",
            Status::WouldRefresh => "would-refresh",
            Status::Linked => "linked",
            Status::WouldLink => "would-link",
            Status::Skipped => "skipped",
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
    /// For a header rewritten (or that would be): the header the file had.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub was: Option<String>,
    /// With `--dry-run`: what would be written, as a unified diff of the file.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
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
            was: None,
            diff: None,
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
    /// The file is of a kind stamp does not write into (binary, not UTF-8, no known comment
    /// syntax): skipped rather than an error when it was found by walking a directory.
    not_stampable: bool,
}

impl Failure {
    fn new(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            line: None,
            severe: false,
            not_stampable: false,
        }
    }

    fn not_stampable(message: impl Into<String>) -> Failure {
        Failure {
            not_stampable: true,
            ..Failure::new(message)
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
    /// Rewrite headers that differ from their registered entry's current header.
    pub refresh: bool,
    /// Only refresh: leave files without a header alone, unreported (`lint --fix`).
    pub refresh_only: bool,
    /// Globs a file found in a directory must match (all files when empty), relative to it.
    pub include: Vec<String>,
    /// Globs of files found in a directory to leave out, relative to it.
    pub exclude: Vec<String>,
}

/// What every file of one run shares.
struct Options<'a> {
    schema: &'a Schema,
    fields: Fields<Option<String>>,
    version: Option<String>,
    context: Context,
    comment: Option<String>,
    /// `[[stamp.map]]`: what files say about themselves.
    mappings: metadata::Mappings,
    /// `[stamp.comments]`: line comment prefixes per extension.
    comments: &'a std::collections::BTreeMap<String, String>,
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
    /// The file's own identifier, from a mapping: (context key, value).
    key: Option<(String, String)>,
}

/// What reading a file found.
enum Found {
    Header {
        line: usize,
        text: String,
        id: EntryId,
        /// How to rewrite the header in place.
        rewrite: Box<Rewrite>,
    },
    Missing(Box<Plan>),
}

/// A header found in a file, and what rewriting it needs.
struct Rewrite {
    place: Place,
    original: Vec<u8>,
    meta: fs::Metadata,
    /// The header's bytes in `original`.
    start: usize,
    end: usize,
    form: HeaderForm,
}

impl Rewrite {
    /// Writes `header` in place of the one found, unless the file changed since it was read.
    fn write(&self, header: &str) -> Result<(), String> {
        if self.meta.permissions().readonly() {
            return Err("the file is read-only".to_owned());
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if self.meta.nlink() > 1 {
                return Err(format!(
                    "the file has {} hard links: rewriting replaces the file, which would \
                     separate them",
                    self.meta.nlink()
                ));
            }
        }
        self.place.replace(
            &self.original,
            &self.content(header),
            &self.meta,
            MAX_FILE_BYTES,
        )
    }

    /// The file's content with `header` in place of the one found.
    fn content(&self, header: &str) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.original.len() + header.len());
        out.extend_from_slice(&self.original[..self.start]);
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(&self.original[self.end..]);
        out
    }
}

/// What a `--dry-run` would write into `file`: a unified diff of its content, as `diff -u`
/// and `git diff` show it (both contents are UTF-8: stamp reads only UTF-8 files).
fn unified_diff(file: &str, before: &[u8], after: &[u8]) -> String {
    let before = String::from_utf8_lossy(before);
    let after = String::from_utf8_lossy(after);
    similar::TextDiff::from_lines(&before, &after)
        .unified_diff()
        .context_radius(3)
        .header(&format!("a/{file}"), &format!("b/{file}"))
        .to_string()
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
        refresh,
        refresh_only,
        include,
        exclude,
    } = stamp;
    let config = settings.file.as_ref().and_then(|f| f.canonicalize().ok());
    let files = walk(&files, &include, &exclude, config.as_deref())?;
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
        mappings: metadata::Mappings::new(&settings.stamp, &settings.paths.base_dir),
        comments: &settings.stamp.comments,
    };

    let mut reports = Vec::with_capacity(files.len());
    let mut plans = Vec::new();
    let mut rewrites: Vec<(usize, EntryId, Box<Rewrite>)> = Vec::new();
    let mut seen = HashSet::new();
    for (done, (given, walked)) in files.iter().enumerate() {
        let walked = *walked;
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
        let failed = |failure: Failure| {
            if walked && failure.not_stampable {
                Report {
                    message: Some(failure.message),
                    ..Report::new(given, Status::Skipped)
                }
            } else {
                Report::failed(given, failure)
            }
        };
        match inspect(given, place, file, &meta, &options) {
            Ok(Found::Header {
                line,
                text,
                id,
                rewrite,
            }) => {
                if refresh {
                    rewrites.push((reports.len(), id.clone(), rewrite));
                }
                reports.push(Report {
                    header: Some(text),
                    id: Some(id.to_string()),
                    line: Some(line),
                    ..Report::new(given, Status::Unchanged)
                });
            }
            Ok(Found::Missing(_)) if refresh_only => {}
            Err(failure) if refresh_only && failure.not_stampable => {}
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
            Err(failure) => reports.push(failed(failure)),
        }
    }

    if !plans.is_empty() || !rewrites.is_empty() {
        let needs = if plans.is_empty() {
            Needs::READ
        } else {
            Needs::REGISTER
        };
        let registry = Registry::open(settings, needs)?;
        for w in &registry.warnings {
            events.warning(w);
        }
        let pipeline = registry.into_pipeline();
        // A file whose own identifier is registered is linked to that entry, never registered
        // again, whatever its title or path says now.
        let known = keyed_entries(&pipeline, &plans)?;
        let (linked, plans): (Vec<Plan>, Vec<Plan>) = plans
            .into_iter()
            .partition(|p| p.key.as_ref().is_some_and(|k| known.contains_key(k)));
        for plan in &linked {
            let entry = plan.key.as_ref().and_then(|k| known.get(k));
            if let Some(entry) = entry {
                write_linked(plan, entry, form, dry_run, &mut reports[plan.slot]);
            }
        }
        if !plans.is_empty() {
            if dry_run {
                predict(&pipeline, &plans, form, &mut reports)?;
            } else {
                register_and_write(&pipeline, plans, form, &mut reports);
            }
        }
        for (slot, id, rewrite) in rewrites {
            refresh_one(&pipeline, &id, &rewrite, dry_run, &mut reports[slot]);
        }
    }
    events.finished();
    Ok(reports)
}

/// The files to stamp, in order: each FILE given, and for each directory given, the files
/// under it as `lint` walks them (`.gitignore` and hidden files honoured, `.git` skipped, links
/// not followed), narrowed by the `include` and `exclude` globs, sorted by path, without the
/// registry's own configuration file. `true` marks a file found by walking.
///
/// # Errors
/// A glob that does not parse (exit 1).
fn walk(
    given: &[PathBuf],
    include: &[String],
    exclude: &[String],
    config: Option<&Path>,
) -> Result<Vec<(PathBuf, bool)>, Error> {
    let mut out = Vec::new();
    for path in given {
        if !path.is_dir() {
            out.push((path.clone(), false));
            continue;
        }
        let mut globs = ignore::overrides::OverrideBuilder::new(path);
        for (glob, whitelist) in include
            .iter()
            .map(|g| (g.clone(), true))
            .chain(exclude.iter().map(|g| (format!("!{g}"), false)))
        {
            let flag = if whitelist { "--include" } else { "--exclude" };
            globs.add(&glob).map_err(|e| {
                Error::input(format!(
                    "{flag} `{}`: not a glob: {e}",
                    glob.trim_start_matches('!')
                ))
            })?;
        }
        let globs = globs
            .build()
            .map_err(|e| Error::input(format!("--include/--exclude: {e}")))?;
        let mut found: Vec<PathBuf> = ignore::WalkBuilder::new(path)
            .standard_filters(true)
            .require_git(false)
            .follow_links(false)
            .overrides(globs)
            .filter_entry(|entry| entry.file_name() != ".git")
            .build()
            .filter_map(Result::ok)
            .filter(|entry| entry.file_type().is_some_and(|t| t.is_file()))
            .map(ignore::DirEntry::into_path)
            .filter(|p| config.is_none_or(|c| p.canonicalize().ok().as_deref() != Some(c)))
            .collect();
        found.sort();
        out.extend(found.into_iter().map(|p| (p, true)));
    }
    Ok(out)
}

/// The registered entries that carry, in their context, the identifier a planned file's
/// mapping reads (`id = <Sigma id>`), by (key, value). Every entry is listed once, page by
/// page, and only when some planned file has an identifier.
///
/// # Errors
/// Storage failing.
fn keyed_entries(
    pipeline: &Pipeline,
    plans: &[Plan],
) -> Result<std::collections::HashMap<(String, String), registry_core::Entry>, Error> {
    let wanted: HashSet<&str> = plans
        .iter()
        .filter_map(|p| p.key.as_ref().map(|(k, _)| k.as_str()))
        .collect();
    let mut out = std::collections::HashMap::new();
    if wanted.is_empty() {
        return Ok(out);
    }
    let mut query = registry_core::ListQuery {
        limit: 10_000,
        ..registry_core::ListQuery::default()
    };
    loop {
        let page = pipeline.list(&query)?;
        for entry in page.entries {
            for key in &wanted {
                if let Some(value) = entry.context.get(key) {
                    // Of two entries with the same key (a duplicate merged into the other, say)
                    // the one in use wins.
                    let key = ((*key).to_owned(), value.to_owned());
                    if out.get(&key).is_none_or(|held: &registry_core::Entry| {
                        !held.lifecycle.is_active() && entry.lifecycle.is_active()
                    }) {
                        out.insert(key, entry.clone());
                    }
                }
            }
        }
        let Some(next) = page.next else { break };
        query.after = Some(next);
    }
    for entry in out.values_mut() {
        if entry.lifecycle.merged_into().is_some() {
            *entry = pipeline.resolve(&entry.header.id)?;
        }
    }
    Ok(out)
}

/// Writes a registered entry's header into a planned file (`linked`), or shows it (`would-link`).
fn write_linked(
    plan: &Plan,
    entry: &registry_core::Entry,
    form: HeaderForm,
    dry_run: bool,
    report: &mut Report,
) {
    let header = entry.header.format(form);
    let line = plan.comment.wrap(&header);
    report.id = Some(entry.header.id.to_string());
    report.title = Some(entry.title.clone());
    report.severe = false;
    if dry_run {
        report.status = Status::WouldLink;
        report.diff = Some(unified_diff(
            &report.file,
            &plan.original,
            &content(plan, &line),
        ));
        report.message = None;
    } else {
        match write(plan, &line) {
            Ok(()) => {
                report.status = Status::Linked;
                report.message = None;
            }
            Err(reason) => report.message = Some(reason),
        }
    }
    report.header = Some(header);
}

/// `--refresh` of one file: rewrites its header from the registered entry when they differ.
fn refresh_one(
    pipeline: &Pipeline,
    id: &EntryId,
    rewrite: &Rewrite,
    dry_run: bool,
    report: &mut Report,
) {
    // A merged entry's files are re-pointed to the entry it was merged into.
    let entry = match pipeline.resolve(id) {
        Ok(entry) => entry,
        Err(e) => {
            report.status = Status::Error;
            report.severe = !e.is_user_error();
            report.message = Some(if e.is_user_error() {
                format!(
                    "{e}: its header names no registered entry (`registry link FILE ID` points \
                     it at one)"
                )
            } else {
                e.to_string()
            });
            return;
        }
    };
    let header = entry.header.format(rewrite.form);
    if Some(&header) == report.header.as_ref() {
        return;
    }
    report.was = report.header.replace(header.clone());
    if dry_run {
        report.status = Status::WouldRefresh;
        report.diff = Some(unified_diff(
            &report.file,
            &rewrite.original,
            &rewrite.content(&header),
        ));
        return;
    }
    match rewrite.write(&header) {
        Ok(()) => report.status = Status::Refreshed,
        Err(reason) => {
            report.status = Status::Error;
            report.message = Some(reason);
        }
    }
}

/// What `registry link FILE ID` does.
#[derive(Debug, Clone)]
pub struct Link {
    pub file: PathBuf,
    pub id: String,
    /// How the header is written into a file without one (a header found keeps its form).
    pub form: HeaderForm,
    /// Line comment prefix for a file whose type has no known comment syntax.
    pub comment: Option<String>,
    pub dry_run: bool,
}

/// `registry link FILE ID`: writes an existing entry's header into a file, in place of the
/// header it has (any header that parses, whatever entry it names) or as stamp writes a new
/// one. Nothing is registered.
///
/// # Errors
/// A malformed or unregistered id (exit 1), a registry that cannot be opened (exit 2). What
/// happened to the file is in the report; [`result`] makes the exit status.
pub fn link(settings: &Settings, link: Link) -> Result<Report, Error> {
    let id: EntryId = link
        .id
        .parse()
        .map_err(|e| Error::input(format!("{e}")).on_field("id"))?;
    if let Some(prefix) = &link.comment {
        check_prefix(prefix)?;
    }
    let registry = Registry::open(settings, Needs::READ)?;
    let pipeline = registry.into_pipeline();
    // Linking to a merged entry links to the one it was merged into.
    let entry = pipeline.resolve(&id)?;
    let id = entry.header.id.clone();
    let given = link.file.as_path();
    let (place, file, meta) = match Place::resolve(given) {
        Ok(found) => found,
        Err(failure) => return Ok(Report::failed(given, failure)),
    };
    let options = Options {
        schema: &settings.schema,
        fields: Fields::default(),
        version: None,
        context: Context::default(),
        comment: link.comment.clone(),
        mappings: metadata::Mappings::new(&settings.stamp, &settings.paths.base_dir),
        comments: &settings.stamp.comments,
    };
    let mut report = Report::new(given, Status::Unchanged);
    report.id = Some(id.to_string());
    report.title = Some(entry.title.clone());
    match inspect(given, place, file, &meta, &options) {
        Ok(Found::Header {
            line,
            text,
            rewrite,
            ..
        }) => {
            let header = entry.header.format(rewrite.form);
            report.line = Some(line);
            report.header = Some(header.clone());
            if header != text {
                report.was = Some(text);
                if link.dry_run {
                    report.status = Status::WouldRefresh;
                    report.diff = Some(unified_diff(
                        &report.file,
                        &rewrite.original,
                        &rewrite.content(&header),
                    ));
                } else {
                    match rewrite.write(&header) {
                        Ok(()) => report.status = Status::Refreshed,
                        Err(reason) => {
                            report.status = Status::Error;
                            report.message = Some(reason);
                        }
                    }
                }
            }
        }
        Ok(Found::Missing(plan)) => {
            let header = entry.header.format(link.form);
            report.line = Some(plan.line);
            report.header = Some(header.clone());
            if link.dry_run {
                report.status = Status::WouldLink;
                report.diff = Some(unified_diff(
                    &report.file,
                    &plan.original,
                    &content(&plan, &plan.comment.wrap(&header)),
                ));
            } else {
                match write(&plan, &plan.comment.wrap(&header)) {
                    Ok(()) => report.status = Status::Linked,
                    Err(reason) => {
                        report.status = Status::Error;
                        report.message = Some(reason);
                    }
                }
            }
        }
        Err(failure) => return Ok(Report::failed(given, failure)),
    }
    Ok(report)
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
        return Err(Failure::not_stampable(format!(
            "a binary file (NUL byte at offset {at}): only text files are stamped"
        )));
    }
    let whole = std::str::from_utf8(&original).map_err(|e| {
        Failure::not_stampable(format!(
            "not valid UTF-8 (at byte {}): only UTF-8 text files are stamped",
            e.valid_up_to()
        ))
    })?;
    let bom = if whole.starts_with(BOM) { BOM.len() } else { 0 };
    let text = &whole[bom..];
    let lines = comment::split_lines(text);

    let mut header_found = None;
    for (i, &(start, end)) in lines.iter().take(HEADER_LINES).enumerate() {
        let Some((_, found)) = find_header(comment::content(&text[start..end])) else {
            continue;
        };
        let raw = RawHeader::split(found, options.schema);
        let form = raw.as_ref().map_or(HeaderForm::Readable, |r| r.form);
        let checked = raw.and_then(|raw| raw.check(found, options.schema));
        // `found` is a part of `text`, which starts `bom` bytes into `original`.
        let offset = found.as_ptr().addr() - text.as_ptr().addr() + bom;
        header_found = Some((i + 1, found.to_owned(), offset, form, checked));
        break;
    }
    if let Some((line, found, offset, form, checked)) = header_found {
        return match checked {
            Ok(header) => Ok(Found::Header {
                line,
                id: header.id,
                rewrite: Box::new(Rewrite {
                    place,
                    start: offset,
                    end: offset + found.len(),
                    form,
                    meta: meta.clone(),
                    original,
                }),
                text: found,
            }),
            Err(e) => Err(Failure {
                message: format!(
                    "line {line}: {e}: fix or remove the header, stamp does not replace it"
                ),
                line: Some(line),
                ..Failure::new(String::new())
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
    let configured = target
        .extension()
        .and_then(|e| e.to_str())
        .and_then(|e| options.comments.get(&format!(".{e}")));
    let file_type = match (
        comment::file_type(target, first),
        configured,
        &options.comment,
    ) {
        (_, Some(prefix), _) => FileType {
            comment: Comment::Line(prefix.clone()),
            dialect: Dialect::Plain,
        },
        (Ok(t), None, _) => t,
        (Err(_), None, Some(prefix)) => FileType {
            comment: Comment::Line(prefix.clone()),
            dialect: Dialect::Plain,
        },
        (Err(unknown), None, None) => {
            return Err(Failure::not_stampable(format!(
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
    let said = match options.mappings.find(target) {
        Some(mapping) => metadata::read(text, mapping, options.schema).map_err(|e| {
            Failure::new(format!(
                "{e} (read by the [[stamp.map]] for `{}`)",
                mapping.glob
            ))
        })?,
        None => metadata::Said::default(),
    };
    let from = if said.title.is_some() {
        "the file's metadata"
    } else {
        from
    };
    let title = said
        .title
        .or(heading)
        .unwrap_or_else(|| comment::title_from_name(target));
    let mut fields = options.fields.clone();
    for f in Field::ALL {
        // What the command line gives wins over what the file says.
        if fields[f].is_none() {
            fields[f] = said.fields[f].clone();
        }
    }
    let mut context = options.context.clone();
    for (k, v) in said.context.into_iter().chain(said.key.clone()) {
        if context.get(&k).is_none() {
            context
                .set(k.clone(), v)
                .map_err(|e| Failure::new(format!("cannot record `{k}` from the file: {e}")))?;
        }
    }
    if context.get("file").is_none() {
        context
            .set("file".to_owned(), file_context(given, target))
            .map_err(|e| Failure::new(format!("cannot record the path: {e}")))?;
    }
    let request = Request::new(&title, fields, options.version.clone(), context)
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
        key: said.key,
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
                let id = format!(
                    "{}-?",
                    pipeline.schema().id_prefix(&fields.scope, &fields.kind)
                );
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
                report.diff = Some(unified_diff(
                    &report.file,
                    &plan.original,
                    &content(plan, &plan.comment.wrap(&header)),
                ));
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
        // A request registered as an entry since merged gets the header of the one in use.
        let result = result.and_then(|added| match added.entry.lifecycle {
            registry_core::Lifecycle::Merged(_) => Ok(Added {
                entry: std::sync::Arc::new(pipeline.resolve(&added.entry.header.id)?),
                ..added
            }),
            _ => Ok(added),
        });
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
    plan.place.replace(
        &plan.original,
        &content(plan, line),
        &plan.meta,
        MAX_FILE_BYTES,
    )
}

/// The planned file's content with the header line in.
fn content(plan: &Plan, line: &str) -> Vec<u8> {
    let eol = plan.eol.as_bytes();
    let mut out = Vec::with_capacity(plan.original.len() + line.len() + 2 * eol.len());
    out.extend_from_slice(&plan.original[..plan.at]);
    if plan.newline_before {
        out.extend_from_slice(eol);
    }
    out.extend_from_slice(line.as_bytes());
    out.extend_from_slice(eol);
    out.extend_from_slice(&plan.original[plan.at..]);
    out
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
