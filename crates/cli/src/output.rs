//! Printing results as text for people or JSON for programs.
//!
//! Text output leads with the readable header so that `registry list | grep` works; JSON output
//! is one document per command (an object, or an array for `list` and `history`).
//!
//! # Standard error
//! In text, one line per message: `warning: …`, `error: …`. With `--format json`, one JSON object
//! per line instead, so that a program can read standard error too: `{"warning": {"message"}}`,
//! `{"damaged": {"id", "message"}}` for an entry left out as it is met, and, when the command
//! fails, last, exactly one `{"error": {"code", "message", "file"?, "line"?, "field"?,
//! "detail"?}}` ([`error`]). The exit code is the same either way.
//!
//! # Names from the file system in text output
//! Every path, and every message that may quote one or a value read from a file, reaches text
//! output through [`escaped`] or [`escaped_path`] (`registry_host::text`, where the escapes are
//! described). JSON output keeps the real text: JSON escapes it.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};

use registry_core::{Added, Entry, Field, Guess, Source, StageKind, Updated};
use serde::Serialize;

pub use registry_host::text::{escaped, escaped_path};

use crate::{CliError, Format};

/// Whether `--quiet` was given: standard error then gets errors only.
static QUIET: AtomicBool = AtomicBool::new(false);

/// Whether the command runs with `--format json`: standard error then gets JSON lines.
static JSON: AtomicBool = AtomicBool::new(false);

/// Records that the command runs with `--format json` (see the module documentation).
pub fn set_json(json: bool) {
    JSON.store(json, Ordering::Relaxed);
}

pub(crate) fn json_stderr() -> bool {
    JSON.load(Ordering::Relaxed)
}

/// Records `--quiet` for the whole run (it is global: every command takes it).
pub fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Whether what a person would only like to know (warnings, notes, progress, summaries on
/// stderr) is left out: `--quiet`. Results on standard output and errors are never left out.
pub fn quiet() -> bool {
    QUIET.load(Ordering::Relaxed)
}

/// Shows what the host said a person should know, one `warning:` line each on stderr (none
/// with `--quiet`).
pub fn warnings(warnings: &[String]) {
    if quiet() {
        return;
    }
    for w in warnings {
        if json_stderr() {
            to_stderr(format_args!(
                "{}",
                serde_json::json!({ "warning": { "message": w } })
            ));
        } else {
            to_stderr(format_args!("warning: {w}"));
        }
    }
}

/// One line of what a command did on the side, on stderr (none with `--quiet`; a JSON line
/// `{"done": ...}` with `--format json`).
pub fn note_line(line: &str) {
    if quiet() {
        return;
    }
    if json_stderr() {
        to_stderr(format_args!("{}", serde_json::json!({ "done": line })));
    } else {
        to_stderr(format_args!("{line}"));
    }
}

/// Shows what the host said a person might like to know, one `note:` line each on stderr (none
/// with `--quiet`).
pub fn notes(notes: &[String]) {
    if quiet() {
        return;
    }
    for n in notes {
        if json_stderr() {
            to_stderr(format_args!(
                "{}",
                serde_json::json!({ "note": { "message": n } })
            ));
        } else {
            to_stderr(format_args!("note: {n}"));
        }
    }
}

/// Names an entry left out because it is damaged (the command then fails with exit code 2).
pub fn damaged(d: &registry_core::Damaged) {
    if json_stderr() {
        to_stderr(format_args!(
            "{}",
            serde_json::json!({ "damaged": { "id": d.id.to_string(), "message": d.to_string() } })
        ));
    } else {
        to_stderr(format_args!("error: {d}"));
    }
}

/// A failed command's error as JSON (see the module documentation).
#[derive(Serialize)]
struct ErrorReport<'a> {
    error: ErrorBody<'a>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    /// What went wrong, a stable kebab-case name: [`registry_host::Error::kind`], or `usage`.
    code: &'a str,
    message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    line: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    detail: Option<&'a str>,
}

/// Shows the error a command failed with: `error: MESSAGE` and, when there is more, the detail
/// (with `--verbose`) or a hint that there is; with `--format json`, one JSON object holding
/// both.
pub fn error(e: &CliError, verbose: bool) {
    if json_stderr() {
        let at = e.location.as_deref().cloned().unwrap_or_default();
        let report = ErrorReport {
            error: ErrorBody {
                code: e.kind(),
                message: &e.message,
                file: at.file.as_deref(),
                line: at.line,
                field: at.field.as_deref(),
                detail: e.detail.as_deref(),
            },
        };
        if let Ok(text) = serde_json::to_string(&report) {
            to_stderr(format_args!("{text}"));
        }
        return;
    }
    to_stderr(format_args!("error: {}", e.message));
    match (&e.detail, verbose) {
        (Some(detail), true) => to_stderr(format_args!("{detail}")),
        (Some(_), false) => to_stderr(format_args!("(run with --verbose for details)")),
        (None, _) => {}
    }
}

/// A usage error of clap's (the arguments do not parse) as [`error`] shows it with `--format
/// json`: code `usage`, clap's first line as the message, the argument as the field.
pub fn usage_error(e: &clap::Error) -> CliError {
    let rendered = e.render().to_string();
    let first = rendered.lines().next().unwrap_or_default();
    let message = first.strip_prefix("error: ").unwrap_or(first).to_owned();
    let error = CliError::input(message).with_kind("usage");
    match e.get(clap::error::ContextKind::InvalidArg) {
        Some(arg) => error.on_field(arg.to_string()),
        None => error,
    }
}

/// Writes one line to stderr, ignoring a failure: there is nowhere left to report it, and
/// `eprintln!` would panic.
pub fn to_stderr(line: std::fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

/// The error of a write to standard output that failed.
///
/// # A closed pipe
/// When whoever reads the output stops (`registry list | head -1`), the next write fails with
/// `BrokenPipe`, and the command ends there, quietly, with exit code 0, as ripgrep does: what
/// was asked for was delivered to a reader that wanted no more. Every write to standard output
/// goes through this function (or [`json_err`]); nothing prints with `println!`, which panics
/// on a closed pipe.
///
/// Rejected: restoring the default action of `SIGPIPE` at start-up (the C tools' way). The
/// process would then be killed by the signal, which a shell reports as exit code 141 and
/// `set -o pipefail` as a failure, and a plugin writing to a socket whose peer went away (a Redis
/// connection) would kill the whole process instead of getting an error it retries.
pub fn write_err(e: io::Error) -> CliError {
    if e.kind() == io::ErrorKind::BrokenPipe {
        std::process::exit(0);
    }
    CliError::config(format!(
        "cannot write output: {}",
        registry_host::io_reason(&e)
    ))
}

/// [`write_err`] for a value serialized straight to standard output.
pub fn json_err(e: serde_json::Error) -> CliError {
    match e.io_error_kind() {
        Some(io::ErrorKind::BrokenPipe) => write_err(io::ErrorKind::BrokenPipe.into()),
        _ => CliError::config(format!("cannot write output: {e}")),
    }
}

pub fn json<T: Serialize + ?Sized>(value: &T) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, value).map_err(json_err)?;
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
    if !e.lifecycle.is_active() {
        writeln!(out, "lifecycle {}", e.lifecycle)?;
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
            let verb = if a.created { "created" } else { "unchanged" };
            (|| {
                writeln!(out, "{verb:<9} {}", a.entry.header.id)?;
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
    let headline = format!(
        "updated   {} to revision {}",
        u.entry.header.id, u.entry.revision
    );
    changed(u, &headline, format)
}

/// The outcome of `update`, `retire`, `merge` or `revive`: `headline` says what the revision
/// written did (shown only when one was written).
pub fn changed(u: &Updated, headline: &str, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => json(u),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                if u.changed {
                    writeln!(out, "{headline}")?;
                } else {
                    writeln!(out, "unchanged {}: no revision written", u.entry.header.id)?;
                }
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
                    write!(
                        out,
                        "rev {:<4} {}  {}  {}  {}",
                        e.revision,
                        e.updated_at,
                        e.hash,
                        e.header.readable(),
                        e.title
                    )?;
                    if !e.lifecycle.is_active() {
                        write!(out, "  ({})", e.lifecycle)?;
                    }
                    // Names a client gave (or an imported file held): one line whatever they
                    // hold.
                    if let Some(a) = &e.author {
                        write!(
                            out,
                            "  by {} from {}",
                            registry_host::text::escaped(&a.name),
                            registry_host::text::escaped(&a.origin)
                        )?;
                    }
                    writeln!(out)?;
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
                Format::Text => if e.lifecycle.is_active() {
                    writeln!(out, "{}  {}", e.header.readable(), e.title)
                } else {
                    writeln!(
                        out,
                        "{}  {}  ({})",
                        e.header.readable(),
                        e.title,
                        e.lifecycle
                    )
                }
                .map_err(write_err)?,
                Format::Json => {
                    out.write_all(if self.count == 0 { b"[\n" } else { b",\n" })
                        .map_err(write_err)?;
                    serde_json::to_writer(&mut out, e).map_err(json_err)?;
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
    /// Whether the stage is linked into the program (then `path` is `None`).
    pub builtin: bool,
    /// The library file loaded, or that could not be.
    pub path: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl PluginRow {
    /// What the text output's last column says: `built in`, or the library's path.
    fn library(&self) -> String {
        match &self.path {
            Some(path) => escaped_path(path),
            None if self.builtin => "built in".to_owned(),
            None => "-".to_owned(),
        }
    }
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
                            r.library()
                        )?,
                        Some(e) => writeln!(
                            out,
                            "{:<10} {:<20} {:<8} {} ({e})",
                            r.stage.name(),
                            "-",
                            "-",
                            r.library()
                        )?,
                    }
                }
                Ok(())
            })()
            .map_err(write_err)
        }
    }
}
