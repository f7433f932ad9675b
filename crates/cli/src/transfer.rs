//! `registry export` and `registry import`: every entry with its history, as JSON lines or a YAML
//! stream, and back into a registry (the same one, or another with any shard count).
//!
//! One record per entry. Its keys, always in this order: `id`, `header` (readable), `scope`,
//! `type`, `variant`, `status`, `version`, `title`, `context` (an object, keys sorted), `config`,
//! `hash`, `fingerprint`, `provenance` (which fingerprint derivation, and where each field came
//! from; left out for an entry stored without it), `revision`, `created_at`, `updated_at`,
//! `history`. The top level is the latest revision; `history` lists the earlier ones, oldest
//! first, each with the same keys but `id`, `fingerprint`, `provenance` and `history`, which
//! every revision shares with the entry. Keeping only the
//! earlier revisions there means a config is written once per revision, and an entry never
//! updated has `history: []`. Entries come in id order across all shards, and nothing in a record
//! depends on when or where it was exported, so export, import elsewhere and export again gives
//! the same bytes.
//!
//! JSONL is one compact JSON object per line. YAML is a stream of documents, each starting with a
//! `---` line; a document marker can only stand at the start of a line outside any scalar, so the
//! reader splits the stream there without parsing it whole, and reports a document by the line
//! its marker is on.
//!
//! Import reads either, deciding by content: a file whose first non-blank line starts with `{` is
//! JSONL, anything else a YAML stream. A record without `hash` and `history` is a plain request,
//! with the keys `registry add` takes (`title`, `scope`, `type`, `variant`, `status`, `version`,
//! `context`), and is registered through the pipeline like one. Records are read and imported in
//! batches, so a file of any size is never held whole.
//!
//! A bad record (unreadable, a missing field, a hash that does not match, a schema problem, a
//! conflict with what is stored) is reported with its line and the rest are imported; the exit
//! code is then 1. `--atomic` reads and checks everything first (hashes, structure, the
//! validator, and lookups by id and fingerprint in every shard and in the earlier batches of the
//! file) and writes nothing if any record fails. Plain requests are refused there: their ids are
//! allocated as they are added, so they cannot be checked before a write. The writes are one
//! restore call per batch, each one transaction per shard, so a storage failure (I/O) between
//! two commits leaves the earlier ones imported. Restores are idempotent (what is stored comes
//! back unchanged), so importing the file again completes it.
//!
//! Entries keep their ids, so each goes to the shard its id names. Importing into a registry
//! with another shard count works and exports the same bytes. When an entry lands in a shard
//! other than the one the router picks for its fingerprint, the restore first records in that
//! shard's metadata that it holds foreign fingerprints, and from then on `add` looks for a
//! request there too, so registering an imported request again finds it.
//!
//! Every record is checked before it is stored: hashes, times, and its fingerprint recomputed
//! from its first revision and its provenance (`registry_core::integrity`); a record exported
//! before provenance was recorded is accepted when some set of given fields gives its
//! fingerprint. Lines and YAML documents are read at most `limits.max_record_bytes` each
//! (`crate::input`), and YAML nesting is bounded before it is parsed. `--atomic` reads the
//! input twice, from a private temporary copy, so it never holds more than a batch.

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, BufWriter, Seek, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use registry_core::{
    ContentHash, Context, Entry, EntryId, Error, ErrorCode, Field, Fields, Fingerprint, Header,
    ListQuery, Pipeline, Provenance, Request, Restored, Schema, StageKind, Timestamp, nesting,
};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::input::{self, BoundedLines};
use crate::learn::{RequestLine, strip_position};
use crate::registry::{Damage, Needs, io_reason, open};
use crate::{CliError, Format, FormatArg, output};

/// How many records are read, checked and stored together: one storage transaction per shard.
const BATCH: usize = 1000;

/// Entries listed per storage call while exporting.
const PAGE: usize = 1000;

/// The format of an export file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// One JSON object per line
    #[default]
    Jsonl,
    /// A stream of YAML documents, one per entry
    Yaml,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File format
    #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
    format: FileFormat,
    /// Export only the entries of this scope (repeatable)
    #[arg(long, value_name = "SCOPE")]
    scope: Vec<String>,
    /// Write to this file instead of standard output; it is replaced whole once the export is
    /// complete, never left half-written
    #[arg(long, short, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Exported entries or plain requests, as JSONL or YAML ("-" for standard input)
    file: PathBuf,
    /// Check every record first and import nothing unless all of them are good
    #[arg(long)]
    atomic: bool,
    #[command(flatten)]
    format: FormatArg,
}

/// One revision as exported. `id`, `fingerprint` and `history` are written for the top level only.
#[derive(Debug, Serialize)]
struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a EntryId>,
    header: String,
    scope: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    variant: &'a str,
    status: &'a str,
    version: &'a str,
    title: &'a str,
    context: &'a Context,
    config: &'a str,
    hash: ContentHash,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<Provenance>,
    revision: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Record<'a>>>,
}

impl<'a> Record<'a> {
    fn revision(e: &'a Entry) -> Record<'a> {
        let f = &e.header.fields;
        Record {
            id: None,
            header: e.header.readable(),
            scope: &f.scope,
            kind: &f.kind,
            variant: &f.variant,
            status: &f.status,
            version: &e.header.version,
            title: &e.title,
            context: &e.context,
            config: &e.config,
            hash: e.hash,
            fingerprint: None,
            provenance: None,
            revision: e.revision,
            created_at: e.created_at,
            updated_at: e.updated_at,
            history: None,
        }
    }

    /// The record of an entry from its history, oldest first; `None` for an empty history.
    fn entry(history: &'a [Entry]) -> Option<Record<'a>> {
        let (latest, earlier) = history.split_last()?;
        Some(Record {
            id: Some(&latest.header.id),
            fingerprint: Some(latest.fingerprint),
            provenance: latest.provenance,
            history: Some(earlier.iter().map(Record::revision).collect()),
            ..Record::revision(latest)
        })
    }
}

/// A record as read: every key optional, so one type reads both exported entries and plain
/// requests, and a missing key is reported by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRecord {
    id: Option<EntryId>,
    header: Option<String>,
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    variant: Option<String>,
    status: Option<String>,
    version: Option<String>,
    title: Option<String>,
    context: Option<Context>,
    config: Option<String>,
    hash: Option<ContentHash>,
    fingerprint: Option<Fingerprint>,
    provenance: Option<Provenance>,
    revision: Option<u32>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    history: Option<Vec<RawRevision>>,
}

/// An earlier revision in a record's `history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRevision {
    header: String,
    scope: String,
    #[serde(rename = "type")]
    kind: String,
    variant: String,
    status: String,
    version: String,
    title: String,
    context: Context,
    config: String,
    hash: ContentHash,
    revision: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
}

/// What a record asks for.
enum Parsed {
    /// An exported entry: every revision, oldest first.
    Entry(Vec<Entry>),
    Request(Request),
}

/// A record read from the file: where it starts, its id if it names one, and what it asks for
/// or why it cannot be read.
struct Item {
    line: usize,
    id: Option<String>,
    parsed: Result<Parsed, String>,
}

impl Item {
    /// A record at `line` that could not be read, for `reason`.
    fn unreadable(line: usize, reason: String) -> Item {
        Item {
            line,
            id: None,
            parsed: Err(reason),
        }
    }
}

/// One record that was not imported.
#[derive(Debug, Serialize)]
struct Failure {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<String>,
    message: String,
}

/// What an import did.
#[derive(Debug, Default, Serialize)]
struct Summary {
    /// Exported entries stored.
    imported: usize,
    /// Exported entries already stored as they are, and requests already registered.
    unchanged: usize,
    /// Plain requests registered.
    added: usize,
    failed: usize,
    /// Every failure, in JSON output only (text output prints them as they come).
    failures: Vec<Failure>,
}

/// `registry export`.
///
/// # Errors
/// An unknown scope (exit 1), an output file that cannot be created (exit 1), or a storage or
/// write failure (exit 2); a file named by `--output` is then left as it was.
pub fn export(args: ExportArgs, settings: &Settings) -> Result<(), CliError> {
    let scopes = check_scopes(&args.scope, &settings.schema)?;
    let pipeline = open(settings, Needs::READ)?;
    match &args.output {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            let damage = write_export(
                &pipeline,
                &scopes,
                args.format,
                &mut out,
                &output::write_err,
            )?;
            out.flush().map_err(output::write_err)?;
            damage.result()
        }
        Some(path) => {
            let mut damage = Damage::default();
            write_replacing(path, |out| {
                let fail = |e: io::Error| {
                    CliError::config(format!(
                        "cannot write {}: {}",
                        path.display(),
                        io_reason(&e)
                    ))
                };
                damage = write_export(&pipeline, &scopes, args.format, out, &fail)?;
                Ok(())
            })?;
            damage.result()
        }
    }
}

/// The scopes asked for, in the schema's spelling, each once.
fn check_scopes(asked: &[String], schema: &Schema) -> Result<Vec<String>, CliError> {
    let mut scopes: Vec<String> = Vec::with_capacity(asked.len());
    for s in asked {
        let canonical = schema.canonical(Field::Scope, s).ok_or_else(|| {
            CliError::input(format!(
                "unknown scope `{s}`: allowed values are {}",
                schema.allowed(Field::Scope).join(", ")
            ))
        })?;
        if !scopes.iter().any(|c| c == canonical) {
            scopes.push(canonical.to_owned());
        }
    }
    Ok(scopes)
}

/// Writes to a temporary file beside `path`, synced, then renamed over it: readers of `path` see
/// the old file or the whole new one, never a part.
fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let name = path
        .file_name()
        .ok_or_else(|| CliError::input(format!("--output {}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let file = File::create(&tmp).map_err(|e| {
        CliError::input(format!(
            "cannot create {}: {}",
            tmp.display(),
            io_reason(&e)
        ))
    })?;
    let mut out = BufWriter::new(file);
    let done = write(&mut out).and_then(|()| {
        sync_and_rename(out, &tmp, path).map_err(|e| {
            CliError::config(format!(
                "cannot write {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })
    });
    if done.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    done
}

fn sync_and_rename(out: BufWriter<File>, tmp: &Path, path: &Path) -> io::Result<()> {
    let file = out.into_inner().map_err(io::IntoInnerError::into_error)?;
    file.sync_all()?;
    fs::rename(tmp, path)
}

/// Writes the record of every entry (of the given scopes, or all), in id order, each history
/// checked first (see `registry_core::integrity`): a damaged entry is reported on standard error
/// and left out, the others are written, and the damage is returned for the exit code.
fn write_export(
    pipeline: &Pipeline,
    scopes: &[String],
    format: FileFormat,
    out: &mut dyn Write,
    fail: &dyn Fn(io::Error) -> CliError,
) -> Result<Damage, CliError> {
    let mut damage = Damage::default();
    // One pager per scope, merged by id: ids order by prefix first, and the prefixes of two
    // scopes may interleave, so each scope's listing is read in order and the smallest id taken.
    let mut pagers: Vec<Pager<'_>> = if scopes.is_empty() {
        vec![Pager::new(pipeline, None)]
    } else {
        scopes
            .iter()
            .map(|s| Pager::new(pipeline, Some(s.clone())))
            .collect()
    };
    let mut line = String::new();
    loop {
        for pager in &mut pagers {
            pager.fill()?;
        }
        let next = pagers
            .iter()
            .enumerate()
            .filter_map(|(i, p)| p.head().map(|id| (i, id)))
            .min_by(|a, b| a.1.cmp(b.1))
            .map(|(i, _)| i);
        let Some(id) = next.and_then(|i| pagers[i].pop()) else {
            break;
        };
        let history = match pipeline.history(&id) {
            Ok(history) => history,
            Err(Error::Damaged(d)) => {
                damage.report(std::slice::from_ref(&d));
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(record) = Record::entry(&history) else {
            continue;
        };
        line.clear();
        match format {
            FileFormat::Jsonl => {
                line = serde_json::to_string(&record).map_err(|e| {
                    CliError::config(format!("cannot write entry {id} as JSON: {e}"))
                })?;
                line.push('\n');
            }
            FileFormat::Yaml => {
                line.push_str("---\n");
                line.push_str(&yaml_serde::to_string(&record).map_err(|e| {
                    CliError::config(format!("cannot write entry {id} as YAML: {e}"))
                })?);
            }
        }
        out.write_all(line.as_bytes()).map_err(fail)?;
    }
    Ok(damage)
}

/// The ids of one listing, in order, read a page at a time.
struct Pager<'p> {
    pipeline: &'p Pipeline,
    query: ListQuery,
    page: std::collections::VecDeque<EntryId>,
    done: bool,
}

impl<'p> Pager<'p> {
    fn new(pipeline: &'p Pipeline, scope: Option<String>) -> Pager<'p> {
        Pager {
            pipeline,
            query: ListQuery {
                filter: Fields {
                    scope,
                    ..Fields::default()
                },
                after: None,
                limit: PAGE,
            },
            page: std::collections::VecDeque::new(),
            done: false,
        }
    }

    /// Reads the next page when the last one is used up.
    fn fill(&mut self) -> Result<(), CliError> {
        if self.page.is_empty() && !self.done {
            let page = self.pipeline.list(&self.query)?;
            // A damaged entry stays in the listing: reading its history reports it.
            let mut ids: Vec<EntryId> = page
                .entries
                .into_iter()
                .map(|e| e.header.id)
                .chain(page.damaged.into_iter().map(|d| d.id))
                .collect();
            ids.sort();
            self.done = page.next.is_none();
            self.query.after = page.next;
            self.page.extend(ids);
        }
        Ok(())
    }

    /// The next id, if the page read holds one.
    fn head(&self) -> Option<&EntryId> {
        self.page.front()
    }

    fn pop(&mut self) -> Option<EntryId> {
        self.page.pop_front()
    }
}

/// `registry import`.
///
/// # Errors
/// Exit 1 when the file cannot be read or any record failed (each is reported, the others are
/// imported; with `--atomic`, none is); exit 2 when a stage fails as a whole, in which case the
/// batches before it stay imported.
pub fn import(args: ImportArgs, settings: &Settings) -> Result<(), CliError> {
    let max = settings.max_record_bytes;
    let (mut input, spool) = if args.atomic {
        let (input, spool) = Input::spooled(&args.file, max)?;
        (input, Some(spool))
    } else {
        (Input::open(&args.file, max)?, None)
    };
    let pipeline = open(settings, Needs::REGISTER)?;
    let format = args.format.format;
    let mut report = Report {
        name: input.name.clone(),
        format,
        summary: Summary::default(),
        total: 0,
        hint: None,
    };
    if let Some(spool) = spool {
        import_atomic(&pipeline, input, spool, max, &mut report)?;
    } else {
        let mut batch = Vec::with_capacity(BATCH);
        while input.next_item(&mut batch, pipeline.schema())? {
            if batch.len() == BATCH {
                import_batch(&pipeline, std::mem::take(&mut batch), &mut report)?;
            }
        }
        import_batch(&pipeline, batch, &mut report)?;
    }
    report.finish()
}

/// Imports one batch: exported entries first, in one restore, then the requests, in one add, so
/// a request never takes an id an entry of its batch holds. Across batches the file's order
/// holds: put plain requests after the entries, or import them on their own, to keep them from
/// taking the ids of entries further down.
fn import_batch(
    pipeline: &Pipeline,
    batch: Vec<Item>,
    report: &mut Report,
) -> Result<(), CliError> {
    let Some(first_line) = batch.first().map(|i| i.line) else {
        return Ok(());
    };
    let name = report.name.clone();
    let aborted = |e: Error| {
        let mut err = CliError::from(e);
        err.message = format!(
            "{}; the records before line {first_line} of {name} are imported, and importing the \
             file again completes it",
            err.message
        );
        err
    };
    let mut failures = Vec::new();
    let mut entries = Vec::new();
    let mut requests = Vec::new();
    for item in batch {
        report.total += 1;
        match item.parsed {
            Err(message) => failures.push(failure(item.line, item.id, message)),
            Ok(Parsed::Entry(history)) => entries.push(((item.line, item.id), history)),
            Ok(Parsed::Request(request)) => requests.push((item.line, request)),
        }
    }
    let (places, histories): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
    let outcomes = pipeline.restore(histories).map_err(aborted)?;
    for ((line, id), outcome) in places.into_iter().zip(outcomes) {
        match outcome {
            Ok(Restored::Created) => report.summary.imported += 1,
            Ok(Restored::Unchanged) => report.summary.unchanged += 1,
            Err(e) => failures.push(failure(line, id, item_message(&e))),
        }
    }
    let (lines, requests): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
    for (line, added) in lines.into_iter().zip(pipeline.add(requests)) {
        match added {
            Ok(a) if a.created => report.summary.added += 1,
            Ok(_) => report.summary.unchanged += 1,
            Err(e) => failures.push(failure(line, None, item_message(&e))),
        }
    }
    failures.sort_by_key(|f| f.line);
    report.failed(failures)
}

/// Checks every record, and restores them only if none fails, in memory bounded by one batch
/// (plus about a hundred bytes per record, for the ids and fingerprints seen):
///
/// 1. The input is read once, batch by batch, and copied as it is read into a private
///    temporary file (deleted when the command ends). Each batch gets every check a restore
///    makes ([`Pipeline::check_restore`]); an id or fingerprint that an earlier batch of the
///    file names is a failure too.
/// 2. Only if nothing failed, the copy (not the input, which may change meanwhile) is read again
///    and restored batch by batch. A restore checks everything again, so another writer that
///    got in between is found, not overwritten.
fn import_atomic(
    pipeline: &Pipeline,
    mut input: Input,
    spool: File,
    max: u64,
    report: &mut Report,
) -> Result<(), CliError> {
    let refused_request = "a plain request cannot be imported with --atomic: its id is allocated \
                           as it is added, so it cannot be checked before anything is written; \
                           import requests without --atomic";
    let mut failures = Vec::new();
    let mut ids: HashMap<EntryId, usize> = HashMap::new();
    let mut fingerprints: HashMap<Fingerprint, (EntryId, usize)> = HashMap::new();
    loop {
        let items = input.next_batch(pipeline.schema())?;
        if items.is_empty() {
            break;
        }
        report.total += items.len();
        let mut places = Vec::new();
        let mut histories = Vec::new();
        for item in items {
            match item.parsed {
                Err(message) => failures.push(failure(item.line, item.id, message)),
                Ok(Parsed::Request(_)) => {
                    failures.push(failure(item.line, None, refused_request.to_owned()));
                }
                Ok(Parsed::Entry(history)) => {
                    let Some(latest) = history.last() else {
                        places.push((item.line, item.id));
                        histories.push(history);
                        continue;
                    };
                    let id = latest.header.id.clone();
                    if let Some(&first) = ids.get(&id) {
                        failures.push(failure(
                            item.line,
                            item.id,
                            format!("conflict: entry {id} is given twice: first at line {first}"),
                        ));
                        continue;
                    }
                    if let Some((other, first)) = fingerprints.get(&latest.fingerprint) {
                        failures.push(failure(
                            item.line,
                            item.id,
                            format!(
                                "conflict: entry {id} has the fingerprint of entry {other} at \
                                 line {first}: a request is registered once"
                            ),
                        ));
                        continue;
                    }
                    ids.insert(id.clone(), item.line);
                    fingerprints.insert(latest.fingerprint, (id, item.line));
                    places.push((item.line, item.id));
                    histories.push(history);
                }
            }
        }
        let checked = pipeline.check_restore(&histories)?;
        for ((line, id), outcome) in places.iter().zip(checked) {
            if let Err(e) = outcome {
                failures.push(failure(*line, id.clone(), item_message(&e)));
            }
        }
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.line);
        report.hint = Some("nothing was imported (--atomic)");
        return report.failed(failures);
    }
    drop((ids, fingerprints));
    let name = input.name.clone();
    drop(input);
    let mut spool = spool;
    spool.rewind().map_err(|e| {
        CliError::config(format!("cannot read the copy of {name}: {}", io_reason(&e)))
    })?;
    let mut copy = Input::of(name, Box::new(BufReader::new(spool)), max);
    // Each batch, and in it each shard, commits on its own: should one fail, the others keep
    // their part, which a second run finds `Unchanged`.
    report.hint = Some("what was committed stays, and importing the file again completes it");
    loop {
        let items = copy.next_batch(pipeline.schema())?;
        if items.is_empty() {
            break;
        }
        let mut places = Vec::new();
        let mut histories = Vec::new();
        for item in items {
            if let Ok(Parsed::Entry(history)) = item.parsed {
                places.push((item.line, item.id));
                histories.push(history);
            }
        }
        let outcomes = pipeline.restore(histories)?;
        for ((line, id), outcome) in places.into_iter().zip(outcomes) {
            match outcome {
                Ok(Restored::Created) => report.summary.imported += 1,
                Ok(Restored::Unchanged) => report.summary.unchanged += 1,
                Err(e) => failures.push(failure(line, id, item_message(&e))),
            }
        }
    }
    report.failed(failures)
}

fn failure(line: usize, id: Option<String>, message: String) -> Failure {
    Failure { line, id, message }
}

/// An item's error as the user needs it: a conflict or malformed history from storage without
/// the stage's name, which says nothing to someone importing a file.
fn item_message(e: &Error) -> String {
    match e {
        Error::Stage {
            stage: StageKind::Storage,
            error,
        } => match error.code {
            ErrorCode::Conflict => format!("conflict: {}", error.message),
            ErrorCode::Invalid => error.message.clone(),
            _ => e.to_string(),
        },
        other => other.to_string(),
    }
}

/// Counts and failures of an import, and how to show them.
struct Report {
    name: String,
    format: Format,
    summary: Summary,
    total: usize,
    /// Said after the count of failed records, when there is more to say.
    hint: Option<&'static str>,
}

impl Report {
    /// Records failures: printed at once as text, kept for the JSON summary.
    fn failed(&mut self, failures: Vec<Failure>) -> Result<(), CliError> {
        self.summary.failed += failures.len();
        match self.format {
            Format::Json => self.summary.failures.extend(failures),
            Format::Text => {
                let mut out = io::stdout().lock();
                for f in failures {
                    let text = match &f.id {
                        Some(id) if !f.message.contains(id.as_str()) => {
                            format!("{}:{}: {id}: {}", self.name, f.line, f.message)
                        }
                        _ => format!("{}:{}: {}", self.name, f.line, f.message),
                    };
                    writeln!(out, "{text}").map_err(output::write_err)?;
                }
            }
        }
        Ok(())
    }

    fn finish(self) -> Result<(), CliError> {
        let s = &self.summary;
        match self.format {
            Format::Json => output::json(s)?,
            Format::Text => writeln!(
                io::stdout().lock(),
                "imported {}, unchanged {}, added {}, failed {}",
                s.imported,
                s.unchanged,
                s.added,
                s.failed
            )
            .map_err(output::write_err)?,
        }
        if s.failed == 0 {
            return Ok(());
        }
        let hint = self.hint.map(|h| format!(": {h}")).unwrap_or_default();
        Err(CliError::input(format!(
            "{} of {} record(s) in {} failed{hint}",
            s.failed, self.total, self.name
        )))
    }
}

/// A line read: its number, and its text or why it is not text.
type Line = (usize, Result<String, String>);

/// A reader that writes a copy of what it reads.
struct Tee {
    source: Box<dyn io::Read>,
    copy: BufWriter<File>,
}

impl io::Read for Tee {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        let n = self.source.read(out)?;
        self.copy.write_all(&out[..n])?;
        if n == 0 {
            self.copy.flush()?;
        }
        Ok(n)
    }
}

/// The file being imported, read line by line, each line and each YAML document at most
/// `max` bytes (see [`crate::input`]).
struct Input {
    name: String,
    lines: BoundedLines<Box<dyn BufRead>>,
    max: u64,
    buf: Vec<u8>,
    /// The number of the last line read.
    line: usize,
    /// JSONL, or else a YAML stream; decided by the first non-blank line.
    jsonl: Option<bool>,
    /// A line read ahead: the first line, while deciding the format, or the marker that ended
    /// the last YAML document.
    pending: Option<Line>,
    done: bool,
}

impl Input {
    fn open(path: &Path, max: u64) -> Result<Input, CliError> {
        let is_stdin = path.as_os_str() == "-";
        let name = if is_stdin {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let reader: Box<dyn BufRead> = if is_stdin {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(path)
                .map_err(|e| CliError::input(format!("cannot read {name}: {}", io_reason(&e))))?;
            Box::new(BufReader::new(file))
        };
        Ok(Input::of(name, reader, max))
    }

    /// The input, copied as it is read into a private temporary file: the file, to read it
    /// again.
    fn spooled(path: &Path, max: u64) -> Result<(Input, File), CliError> {
        let spool = tempfile::tempfile().map_err(|e| {
            CliError::config(format!(
                "cannot make a temporary copy of the input: {}",
                io_reason(&e)
            ))
        })?;
        let copy = spool.try_clone().map_err(|e| {
            CliError::config(format!(
                "cannot make a temporary copy of the input: {}",
                io_reason(&e)
            ))
        })?;
        let is_stdin = path.as_os_str() == "-";
        let name = if is_stdin {
            "<stdin>".to_owned()
        } else {
            path.display().to_string()
        };
        let source: Box<dyn io::Read> =
            if is_stdin {
                Box::new(io::stdin())
            } else {
                Box::new(File::open(path).map_err(|e| {
                    CliError::input(format!("cannot read {name}: {}", io_reason(&e)))
                })?)
            };
        let tee = Tee {
            source,
            copy: BufWriter::new(copy),
        };
        Ok((Input::of(name, Box::new(BufReader::new(tee)), max), spool))
    }

    fn of(name: String, reader: Box<dyn BufRead>, max: u64) -> Input {
        Input {
            name,
            lines: BoundedLines::new(reader, max),
            max,
            buf: Vec::new(),
            line: 0,
            jsonl: None,
            pending: None,
            done: false,
        }
    }

    /// The next line without its line break: `Err` with a reason when it is not UTF-8, `None`
    /// at the end.
    fn read_line(&mut self) -> Result<Option<Line>, CliError> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        if self.done {
            return Ok(None);
        }
        let next = self.lines.next_line(&mut self.buf).map_err(|e| {
            CliError::input(format!(
                "{}:{}: cannot read: {}",
                self.name,
                self.line + 1,
                io_reason(&e)
            ))
        })?;
        let Some((number, read)) = next else {
            self.done = true;
            return Ok(None);
        };
        self.line = usize::try_from(number).unwrap_or(usize::MAX);
        let text = match read {
            input::Read::TooLong(bytes) => Err(input::too_long(bytes, self.max)),
            input::Read::Line => String::from_utf8(std::mem::take(&mut self.buf)).map_err(|e| {
                format!(
                    "line {} is not valid UTF-8 (byte {})",
                    self.line,
                    e.utf8_error().valid_up_to()
                )
            }),
        };
        Ok(Some((self.line, text)))
    }

    /// The next [`BATCH`] records (fewer at the end; none after it).
    fn next_batch(&mut self, schema: &Schema) -> Result<Vec<Item>, CliError> {
        let mut items = Vec::with_capacity(BATCH);
        while items.len() < BATCH && self.next_item(&mut items, schema)? {}
        Ok(items)
    }

    /// Reads the next record onto `items`; false at the end of the input.
    fn next_item(&mut self, items: &mut Vec<Item>, schema: &Schema) -> Result<bool, CliError> {
        let jsonl = match self.jsonl {
            Some(j) => j,
            None => {
                // Skip to the first non-blank line, keep it, and decide.
                loop {
                    match self.read_line()? {
                        None => return Ok(false),
                        Some((_, Ok(text))) if text.trim().is_empty() => {}
                        // A line too long or not UTF-8 fails alone and decides nothing.
                        Some((line, Err(reason))) => {
                            items.push(Item::unreadable(line, reason));
                            return Ok(true);
                        }
                        Some(first) => {
                            let j = matches!(&first.1, Ok(t) if t.trim_start().starts_with('{'));
                            self.jsonl = Some(j);
                            self.pending = Some(first);
                            break j;
                        }
                    }
                }
            }
        };
        if jsonl {
            self.next_json(items, schema)
        } else {
            self.next_yaml(items, schema)
        }
    }

    fn next_json(&mut self, items: &mut Vec<Item>, schema: &Schema) -> Result<bool, CliError> {
        loop {
            let Some((line, text)) = self.read_line()? else {
                return Ok(false);
            };
            let text = match text {
                Ok(t) if t.trim().is_empty() => continue,
                Ok(t) => t,
                Err(reason) => {
                    items.push(Item::unreadable(line, reason));
                    return Ok(true);
                }
            };
            let item = match serde_json::from_str::<RawRecord>(&text) {
                Ok(raw) => item_of(line, raw, schema),
                Err(e) => {
                    let what = if e.is_data() { "" } else { "not valid JSON: " };
                    Item::unreadable(line, format!("{what}{}", strip_position(&e.to_string())))
                }
            };
            items.push(item);
            return Ok(true);
        }
    }

    fn next_yaml(&mut self, items: &mut Vec<Item>, schema: &Schema) -> Result<bool, CliError> {
        // The document's text, its first line (its marker, or else its first content line), and
        // whether it holds anything but blank lines, comments and directives.
        let mut text = String::new();
        let mut start: Option<usize> = None;
        let mut content = false;
        let mut bad_utf8: Option<String> = None;
        let mut too_big = false;
        while let Some((line, read)) = self.read_line()? {
            let row = match read {
                Ok(row) => row,
                Err(reason) => {
                    bad_utf8.get_or_insert(reason);
                    start.get_or_insert(line);
                    content = true;
                    continue;
                }
            };
            let marker = row == "---" || row.starts_with("--- ") || row.starts_with("---\t");
            let end = row == "..." || row.starts_with("... ");
            if (marker || end) && content {
                if marker {
                    self.pending = Some((line, Ok(row)));
                }
                break;
            }
            if end {
                text.clear();
                start = None;
                continue;
            }
            if marker {
                // A marker after nothing but comments or directives starts the document anew.
                text.clear();
                start = Some(line);
                let rest = row[3..].trim_start();
                content = !rest.is_empty() && !rest.starts_with('#');
            } else {
                let trimmed = row.trim_start();
                if !trimmed.is_empty() && !trimmed.starts_with('#') && !row.starts_with('%') {
                    content = true;
                    start.get_or_insert(line);
                }
            }
            // A document is held whole to be parsed, so it is bounded as a line is; the rest of
            // an oversized one is read past, not kept.
            if text.len() as u64 + row.len() as u64 >= self.max {
                too_big = true;
                text.clear();
            }
            if !too_big {
                text.push_str(&row);
                text.push('\n');
            }
        }
        if !content {
            return Ok(false);
        }
        let line = start.unwrap_or(self.line);
        if let Some(reason) = bad_utf8 {
            items.push(Item::unreadable(line, reason));
            return Ok(true);
        }
        if too_big {
            items.push(Item::unreadable(
                line,
                format!(
                    "the document is over {} bytes (limits.max_record_bytes in registry.toml); \
                     it was skipped",
                    self.max
                ),
            ));
            return Ok(true);
        }
        // Nesting is bounded before the parser sees the text (see `registry_core::nesting`).
        if let Err(e) = nesting::check(&text, &nesting::Limits::default()) {
            items.push(Item::unreadable(line, nesting_message(&e, line)));
            return Ok(true);
        }
        let item = match yaml_serde::from_str::<RawRecord>(&text) {
            Ok(raw) => item_of(line, raw, schema),
            Err(e) => {
                let message = strip_position(&e.to_string());
                let at = e
                    .location()
                    .map(|l| format!(" (line {})", line + l.line() - 1))
                    .unwrap_or_default();
                Item::unreadable(line, format!("not a valid record: {message}{at}"))
            }
        };
        items.push(item);
        Ok(true)
    }
}

/// A nesting error of the document starting at `line`, its position made a line of the file.
fn nesting_message(e: &nesting::NestingError, line: usize) -> String {
    let at = line + e.line() - 1;
    match e {
        nesting::NestingError::TooDeep {
            collection,
            depth,
            max,
            column,
            ..
        } => format!(
            "not a valid record: a {collection} collection at line {at} column {column} nests \
             {depth} levels deep: at most {max} are allowed"
        ),
        nesting::NestingError::TooManyAliasedNodes { max, column, .. } => format!(
            "not a valid record: the alias at line {at} column {column} makes aliases repeat \
             more than {max} nodes"
        ),
        other => format!("not a valid record: {other}"),
    }
}

/// What a record read from line `line` asks for.
fn item_of(line: usize, raw: RawRecord, schema: &Schema) -> Item {
    let id = raw.id.as_ref().map(ToString::to_string);
    let parsed = if raw.hash.is_none() && raw.history.is_none() {
        request_of(raw, schema).map(Parsed::Request)
    } else {
        history_of(raw).map(Parsed::Entry)
    };
    Item { line, id, parsed }
}

/// A plain request, checked as `registry add` checks one.
fn request_of(raw: RawRecord, schema: &Schema) -> Result<Request, String> {
    let exported_only = [
        ("id", raw.id.is_some()),
        ("header", raw.header.is_some()),
        ("config", raw.config.is_some()),
        ("fingerprint", raw.fingerprint.is_some()),
        ("provenance", raw.provenance.is_some()),
        ("revision", raw.revision.is_some()),
        ("created_at", raw.created_at.is_some()),
        ("updated_at", raw.updated_at.is_some()),
    ];
    if let Some((key, _)) = exported_only.iter().find(|(_, given)| *given) {
        return Err(format!(
            "`{key}` is given but `hash` and `history` are not: an exported entry has every \
             field of an export, a plain request only title, scope, type, variant, status, \
             version and context"
        ));
    }
    let title = raw.title.ok_or("missing field `title`")?;
    RequestLine {
        title,
        scope: raw.scope,
        kind: raw.kind,
        variant: raw.variant,
        status: raw.status,
        version: raw.version,
        context: raw.context.unwrap_or_default(),
    }
    .into_request(schema, true)
}

/// Every revision of an exported entry, oldest first.
fn history_of(raw: RawRecord) -> Result<Vec<Entry>, String> {
    fn need<T>(value: Option<T>, key: &str) -> Result<T, String> {
        value.ok_or_else(|| format!("missing field `{key}`"))
    }
    let id = need(raw.id, "id")?;
    let fingerprint = need(raw.fingerprint, "fingerprint")?;
    // Optional: a record exported before provenance was recorded has none, and import finds
    // it from the fingerprint.
    let provenance = raw.provenance;
    let earlier = need(raw.history, "history")?;
    let latest = RawRevision {
        header: need(raw.header, "header")?,
        scope: need(raw.scope, "scope")?,
        kind: need(raw.kind, "type")?,
        variant: need(raw.variant, "variant")?,
        status: need(raw.status, "status")?,
        version: need(raw.version, "version")?,
        title: need(raw.title, "title")?,
        context: need(raw.context, "context")?,
        config: need(raw.config, "config")?,
        hash: need(raw.hash, "hash")?,
        revision: need(raw.revision, "revision")?,
        created_at: need(raw.created_at, "created_at")?,
        updated_at: need(raw.updated_at, "updated_at")?,
    };
    earlier
        .into_iter()
        .chain([latest])
        .map(|r| entry_of(r, &id, fingerprint, provenance))
        .collect()
}

/// One revision, its header rebuilt from its fields and checked against the `header` written.
fn entry_of(
    r: RawRevision,
    id: &EntryId,
    fingerprint: Fingerprint,
    provenance: Option<Provenance>,
) -> Result<Entry, String> {
    let header = Header {
        fields: Fields {
            scope: r.scope,
            kind: r.kind,
            variant: r.variant,
            status: r.status,
        },
        id: id.clone(),
        version: r.version,
    };
    let readable = header.readable();
    if r.header != readable {
        return Err(format!(
            "revision {}: header `{}` does not match its fields, which make {readable}",
            r.revision, r.header
        ));
    }
    Ok(Entry {
        header,
        title: r.title,
        context: r.context,
        config: r.config,
        hash: r.hash,
        fingerprint,
        revision: r.revision,
        created_at: r.created_at,
        updated_at: r.updated_at,
        provenance,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(revision: u32, status: &str, config: &str) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "MULTI-ETL".into(),
                variant: "LIVE".into(),
                status: status.into(),
            },
            id: EntryId::new("SEC-MUL", 7),
            version: "v2.9".into(),
        };
        let context = Context::new([
            ("env".to_owned(), "true".to_owned()),
            ("a.b".to_owned(), "null".to_owned()),
        ])
        .expect("valid context");
        let title = "say \"hi\": #1 — ✓";
        Entry {
            hash: Entry::compute_hash(&header, title, &context, config),
            header,
            title: title.into(),
            context,
            config: config.into(),
            fingerprint: Fingerprint([0x12; 16]),
            revision,
            created_at: Timestamp(-5),
            updated_at: Timestamp(1_795_801_784_123 + i64::from(revision)),
            provenance: None,
        }
    }

    fn history() -> Vec<Entry> {
        vec![
            entry(1, "DEV", "a: 1\n  b: ' x'\n\n"),
            entry(2, "LIVE", "---\nkey: \"--- not a marker\"\n...\n"),
            // Trailing spaces rule out a literal block: the emitter folds a quoted scalar.
            entry(3, "TEST", "---  \n--- x \n...\n\n  ---\n"),
            entry(4, "REQUIRED", "tabs\tand trailing spaces  \nno final break"),
        ]
    }

    /// Reads records from `text` as `import` does.
    fn read(text: &str) -> Vec<Item> {
        read_bytes(text.as_bytes().to_vec())
    }

    /// Reads records from raw bytes as `import` does.
    fn read_bytes(bytes: Vec<u8>) -> Vec<Item> {
        let mut input = Input::of(
            "test".into(),
            Box::new(io::Cursor::new(bytes)),
            crate::config::DEFAULT_MAX_RECORD_BYTES,
        );
        let mut items = Vec::new();
        while input
            .next_item(&mut items, &Schema::default())
            .expect("reads")
        {}
        items
    }

    fn histories(items: Vec<Item>) -> Vec<(usize, Vec<Entry>)> {
        items
            .into_iter()
            .map(|i| match i.parsed {
                Ok(Parsed::Entry(h)) => (i.line, h),
                Ok(Parsed::Request(r)) => panic!("line {}: a request {r}", i.line),
                Err(e) => panic!("line {}: {e}", i.line),
            })
            .collect()
    }

    #[test]
    fn records_round_trip_in_both_formats() {
        let h = history();
        let record = Record::entry(&h).expect("not empty");
        let json = serde_json::to_string(&record).expect("json");
        assert!(json.starts_with(r#"{"id":"SEC-MUL-007","header":"[SEC][MULTI-ETL][LIVE][SEC-MUL-007][v2.9][REQUIRED]","scope":"SEC","type":"MULTI-ETL","#), "{json}");
        let text = format!("{json}\n\n{json}\n");
        assert_eq!(histories(read(&text)), [(1, h.clone()), (3, h.clone())]);

        let yaml = format!("---\n{}", yaml_serde::to_string(&record).expect("yaml"));
        let lines = yaml.lines().count();
        let stream = format!("# exported\n{yaml}{yaml}---\n");
        assert_eq!(
            histories(read(&stream)),
            [(2, h.clone()), (2 + lines, h.clone())]
        );
        // Without markers, a single document starts at its first content line.
        let bare = yaml.trim_start_matches("---\n");
        assert_eq!(histories(read(&format!("\n{bare}"))), [(2, h)]);
    }

    #[test]
    fn bad_records_name_what_is_wrong() {
        let h = history();
        let good = serde_json::to_string(&Record::entry(&h).expect("not empty")).expect("json");
        let check = |text: &str, want: &str| {
            let items = read(text);
            assert_eq!(items.len(), 1, "{text}");
            match &items[0].parsed {
                Err(e) => assert!(e.contains(want), "{e:?} lacks {want:?}"),
                Ok(_) => panic!("{text} was read"),
            }
        };
        check("{\"title\": ", "not valid JSON: EOF while parsing");
        check(
            &good.replace("\"hash\"", "\"hsah\""),
            "unknown field `hsah`",
        );
        check(
            &good.replace(",\"fingerprint\":\"12121212121212121212121212121212\"", ""),
            "missing field `fingerprint`",
        );
        check(
            &good.replacen("\"header\":\"[SEC]", "\"header\":\"[OPS]", 1),
            "header `[OPS][MULTI-ETL]",
        );
        check(
            r#"{"title": "t", "revision": 2}"#,
            "`revision` is given but `hash` and `history` are not",
        );
        check(
            r#"{"title": "t", "scope": "NOPE"}"#,
            "scope `NOPE` is not in the schema",
        );
        check("key: [unclosed\n", "not a valid record: ");
        check(
            "---\n- a list\n",
            "not a valid record: invalid type: sequence",
        );
    }

    #[test]
    fn requests_and_non_utf8_lines() {
        let items = read(
            "{\"title\": \"block ssh\", \"scope\": \"sec\", \"context\": {\"env\": \"prod\"}}\n",
        );
        assert!(matches!(&items[0].parsed, Ok(Parsed::Request(r)) if r.title() == "block ssh"));
        let items = read_bytes(b"{\"title\": \"a\"}\n{\"title\": \"\xff\"}\n".to_vec());
        assert_eq!(items.len(), 2);
        assert!(matches!(&items[1].parsed, Err(e) if e == "line 2 is not valid UTF-8 (byte 11)"));
    }
}
