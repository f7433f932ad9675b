//! Import: exported entries restored and plain requests registered, batch by batch, each bad
//! record reported with its line; `atomic` checks everything before writing anything.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Seek};
use std::path::Path;

use registry_core::{
    EntryId, Error as CoreError, ErrorCode, Fingerprint, Pipeline, Restored, StageKind,
};
use serde::Serialize;

use super::BATCH;
use super::read::Input;
use super::record::{Item, Parsed};
use crate::error::{Error, io_reason};
use crate::events::{Events, Progress};

/// One record that was not imported.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Failure {
    /// The line its record starts on.
    pub line: usize,
    /// The id it names, if it names one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub message: String,
}

/// What an import did.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Summary {
    /// Exported entries stored.
    pub imported: usize,
    /// Exported entries already stored as they are, and requests already registered.
    pub unchanged: usize,
    /// Plain requests registered.
    pub added: usize,
    pub failed: usize,
}

/// A file to import, opened: read once, or (for an atomic import) copied as it is read, to be
/// read again.
pub struct Source {
    input: Input,
    spool: Option<File>,
    /// Who registers the plain requests of the file (the pipeline's author when `None`).
    author: Option<registry_core::Author>,
}

impl Source {
    /// The same source, its plain requests registered by `author` (a server's caller).
    #[must_use]
    pub fn by(mut self, author: registry_core::Author) -> Source {
        self.author = Some(author);
        self
    }

    /// The input, read once (an atomic source's copy is not needed to compare).
    pub(super) fn into_input(self) -> Input {
        self.input
    }

    /// Opens `path` ("-" for standard input), each line and YAML document at most `max` bytes.
    ///
    /// # Errors
    /// The file cannot be read (exit 1), or, for `atomic`, no temporary copy can be made.
    pub fn open(path: &Path, max: u64, atomic: bool) -> Result<Source, Error> {
        if atomic {
            let (input, spool) = Input::spooled(path, max)?;
            Ok(Source {
                input,
                spool: Some(spool),
                author: None,
            })
        } else {
            Ok(Source {
                input: Input::open(path, max)?,
                spool: None,
                author: None,
            })
        }
    }

    /// How messages name the file: its path, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.input.name
    }
}

/// What an import did, once it has read the whole file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Imported {
    /// The file, as messages name it.
    pub name: String,
    pub summary: Summary,
    /// Records read.
    pub total: usize,
    /// Said after the count of failed records, when there is more to say.
    pub hint: Option<String>,
}

impl Imported {
    /// Ok when every record was imported, else the count of those that failed (exit 1).
    ///
    /// # Errors
    /// Some record failed.
    pub fn result(&self) -> Result<(), Error> {
        let s = &self.summary;
        if s.failed == 0 {
            return Ok(());
        }
        let hint = self
            .hint
            .as_ref()
            .map(|h| format!(": {h}"))
            .unwrap_or_default();
        Err(Error::input(format!(
            "{} of {} {} in {} failed{hint}",
            s.failed,
            self.total,
            if self.total == 1 { "record" } else { "records" },
            self.name
        ))
        .in_file(&self.name))
    }
}

/// Imports every record of `source` into `pipeline`. The records that fail are given to
/// `failed` batch by batch, in line order, as they are found; a front end shows them at once
/// or keeps them.
///
/// Without `atomic` (as the source was opened), each batch is imported as it is read: exported
/// entries first, in one restore, then the requests, in one add. With it, nothing is written
/// unless every record passes every check (the private `import_atomic` says how).
///
/// The records read so far are reported to `events` as progress after each batch, and
/// `finished` once the import ends, however it ends.
///
/// # Errors
/// A stage failing as a whole (exit 2; the batches before it stay imported, and the message
/// says so), a read error, or an error `failed` returns.
pub fn import(
    pipeline: &Pipeline,
    source: Source,
    failed: &mut dyn FnMut(Vec<Failure>) -> Result<(), Error>,
    events: &mut dyn Events,
) -> Result<Imported, Error> {
    let imported = import_all(pipeline, source, failed, events);
    events.finished();
    imported
}

fn import_all(
    pipeline: &Pipeline,
    source: Source,
    failed: &mut dyn FnMut(Vec<Failure>) -> Result<(), Error>,
    events: &mut dyn Events,
) -> Result<Imported, Error> {
    let Source {
        mut input,
        spool,
        author,
    } = source;
    let mut run = Run {
        failed,
        events,
        author,
        imported: Imported {
            name: input.name.clone(),
            summary: Summary::default(),
            total: 0,
            hint: None,
        },
    };
    if let Some(spool) = spool {
        import_atomic(pipeline, input, spool, &mut run)?;
    } else {
        let mut batch = Vec::with_capacity(BATCH);
        while input.next_item(&mut batch, pipeline.schema())? {
            if batch.len() == BATCH {
                import_batch(pipeline, std::mem::take(&mut batch), &mut run)?;
            }
        }
        import_batch(pipeline, batch, &mut run)?;
    }
    Ok(run.imported)
}

/// An import under way: its counts, and where its failures and progress go.
struct Run<'f> {
    failed: &'f mut dyn FnMut(Vec<Failure>) -> Result<(), Error>,
    events: &'f mut dyn Events,
    /// Who registers the plain requests.
    author: Option<registry_core::Author>,
    imported: Imported,
}

impl Run<'_> {
    /// The records read so far, as progress.
    fn progress(&mut self) {
        self.events.progress(Progress {
            processed: self.imported.total as u64,
            done: None,
            unit: "records",
        });
    }

    fn failed(&mut self, failures: Vec<Failure>) -> Result<(), Error> {
        self.imported.summary.failed += failures.len();
        if failures.is_empty() {
            return Ok(());
        }
        (self.failed)(failures)
    }

    fn restored(&mut self, outcome: Restored) {
        match outcome {
            Restored::Created => self.imported.summary.imported += 1,
            Restored::Unchanged => self.imported.summary.unchanged += 1,
        }
    }
}

/// Imports one batch: exported entries first, in one restore, then the requests, in one add, so
/// a request never takes an id an entry of its batch holds. Across batches the file's order
/// holds: put plain requests after the entries, or import them on their own, to keep them from
/// taking the ids of entries further down.
fn import_batch(pipeline: &Pipeline, batch: Vec<Item>, run: &mut Run<'_>) -> Result<(), Error> {
    let Some(first_line) = batch.first().map(|i| i.line) else {
        return Ok(());
    };
    let name = run.imported.name.clone();
    let aborted = |e: CoreError| {
        let mut err = Error::from(e);
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
        run.imported.total += 1;
        match item.parsed {
            Err(message) => failures.push(failure(item.line, item.id, message)),
            Ok(Parsed::Entry(history)) => entries.push(((item.line, item.id), history)),
            Ok(Parsed::Request(request)) => {
                let request = match &run.author {
                    Some(author) => request.by(Some(author.clone())),
                    None => *request,
                };
                requests.push((item.line, request));
            }
        }
    }
    let (places, histories): (Vec<_>, Vec<_>) = entries.into_iter().unzip();
    let outcomes = pipeline.restore(histories).map_err(aborted)?;
    for ((line, id), outcome) in places.into_iter().zip(outcomes) {
        match outcome {
            Ok(restored) => run.restored(restored),
            Err(e) => failures.push(failure(line, id, item_message(&e))),
        }
    }
    let (lines, requests): (Vec<_>, Vec<_>) = requests.into_iter().unzip();
    for (line, added) in lines.into_iter().zip(pipeline.add(requests)) {
        match added {
            Ok(a) if a.created => run.imported.summary.added += 1,
            Ok(_) => run.imported.summary.unchanged += 1,
            Err(e) => failures.push(failure(line, None, item_message(&e))),
        }
    }
    failures.sort_by_key(|f| f.line);
    run.failed(failures)?;
    run.progress();
    Ok(())
}

/// Checks every record, and restores them only if none fails, in memory bounded by one batch
/// (plus about a hundred bytes per record, for the ids and fingerprints seen):
///
/// 1. The input is read once, batch by batch, and copied as it is read into a private
///    temporary file (deleted when the import ends). Each batch gets every check a restore
///    makes ([`Pipeline::check_restore`]); an id or fingerprint that an earlier batch of the
///    file names is a failure too.
/// 2. Only if nothing failed, the copy (not the input, which may change meanwhile) is read again
///    and restored batch by batch. A restore checks everything again, so another writer that
///    got in between is found, not overwritten.
fn import_atomic(
    pipeline: &Pipeline,
    mut input: Input,
    spool: File,
    run: &mut Run<'_>,
) -> Result<(), Error> {
    let refused_request = "a plain request cannot be imported with --atomic: its id is allocated \
                           as it is added, so it cannot be checked before anything is written; \
                           import requests without --atomic";
    let max = input.max();
    let mut failures = Vec::new();
    let mut ids: HashMap<EntryId, usize> = HashMap::new();
    let mut fingerprints: HashMap<Fingerprint, (EntryId, usize)> = HashMap::new();
    loop {
        let items = input.next_batch(pipeline.schema())?;
        if items.is_empty() {
            break;
        }
        run.imported.total += items.len();
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
        run.progress();
    }
    if !failures.is_empty() {
        failures.sort_by_key(|f| f.line);
        run.imported.hint = Some("nothing was imported (--atomic)".to_owned());
        return run.failed(failures);
    }
    drop((ids, fingerprints));
    let name = input.name.clone();
    drop(input);
    let mut spool = spool;
    spool
        .rewind()
        .map_err(|e| Error::config(format!("cannot read the copy of {name}: {}", io_reason(&e))))?;
    let mut copy = Input::of(name, Box::new(BufReader::new(spool)), max);
    // Each batch, and in it each shard, commits on its own: should one fail, the others keep
    // their part, which a second run finds `Unchanged`.
    run.imported.hint =
        Some("what was committed stays, and importing the file again completes it".to_owned());
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
                Ok(restored) => run.restored(restored),
                Err(e) => failures.push(failure(line, id, item_message(&e))),
            }
        }
        // The second pass: the records restored so far, of all the file's.
        let s = &run.imported.summary;
        let restored = (s.imported + s.unchanged) as u64;
        let total = run.imported.total.max(1) as f64;
        run.events.progress(Progress {
            processed: restored,
            done: Some(restored as f64 / total),
            unit: "records",
        });
    }
    run.failed(failures)
}

fn failure(line: usize, id: Option<String>, message: String) -> Failure {
    Failure { line, id, message }
}

/// An item's error as the user needs it: a conflict or malformed history from storage without
/// the stage's name, which says nothing to someone importing a file.
fn item_message(e: &CoreError) -> String {
    match e {
        CoreError::Stage {
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
