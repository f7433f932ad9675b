//! Export: every entry's record, in id order, to any writer or whole to a file.

use std::fs::{self, File};
use std::io::{self, BufWriter, Write};
use std::path::Path;

use registry_core::{EntryId, Error as CoreError, Field, Fields, ListQuery, Pipeline, Schema};

use super::record::Record;
use super::{FileFormat, PAGE};
use crate::error::{Error, io_reason};
use crate::events::{Events, Progress};

/// Writes every entry's record to the file at `path`, replacing it whole once the export is
/// complete (see [`write_replacing`]). Returns how many entries were damaged and left out.
///
/// # Errors
/// As [`export`] and [`write_replacing`]; `path` is then left as it was.
pub fn export_file(
    pipeline: &Pipeline,
    scopes: &[String],
    format: FileFormat,
    audit: bool,
    path: &Path,
    events: &mut dyn Events,
) -> Result<usize, Error> {
    let mut count = 0;
    write_replacing(path, |out| {
        let fail = |e: io::Error| {
            Error::config(format!(
                "cannot write {}: {}",
                path.display(),
                io_reason(&e)
            ))
        };
        count = export(pipeline, scopes, format, audit, out, &fail, events)?;
        Ok(())
    })?;
    Ok(count)
}

/// The scopes asked for, in the schema's spelling, each once.
///
/// # Errors
/// A scope the schema does not know.
pub fn check_scopes(asked: &[String], schema: &Schema) -> Result<Vec<String>, Error> {
    let mut scopes: Vec<String> = Vec::with_capacity(asked.len());
    for s in asked {
        let canonical = schema.canonical(Field::Scope, s).ok_or_else(|| {
            Error::input(format!(
                "unknown scope `{s}`: allowed values are {}",
                schema.allowed(Field::Scope).join(", ")
            ))
            .with_kind("unknown-scope")
            .on_field("scope")
        })?;
        if !scopes.iter().any(|c| c == canonical) {
            scopes.push(canonical.to_owned());
        }
    }
    Ok(scopes)
}

/// Writes to a temporary file beside `path`, synced, then renamed over it: readers of `path` see
/// the old file or the whole new one, never a part.
///
/// # Errors
/// `path` names no file (exit 1), the temporary file cannot be created (exit 1), or `write`
/// or the final write fails (then `path` is left as it was).
pub fn write_replacing(
    path: &Path,
    write: impl FnOnce(&mut BufWriter<File>) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = path
        .file_name()
        .ok_or_else(|| Error::input(format!("--output {}: not a file name", path.display())))?;
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".{}.tmp", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let file = File::create(&tmp).map_err(|e| {
        Error::input(format!(
            "cannot create {}: {}",
            tmp.display(),
            io_reason(&e)
        ))
    })?;
    let mut out = BufWriter::new(file);
    let done = write(&mut out).and_then(|()| {
        sync_and_rename(out, &tmp, path).map_err(|e| {
            Error::config(format!(
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
/// checked first (see `registry_core::integrity`): a damaged entry is given to `events` and left
/// out, the others are written. Returns how many were damaged. `fail` makes an error of a write
/// that failed (a front end knows what its output is). The entries written so far are reported
/// as progress; `events` hears `finished` once the export ends, however it ends. With `audit`,
/// each revision's author is written too (`export --audit`).
///
/// # Errors
/// A storage failure, or a write that failed.
pub fn export(
    pipeline: &Pipeline,
    scopes: &[String],
    format: FileFormat,
    audit: bool,
    out: &mut dyn Write,
    fail: &dyn Fn(io::Error) -> Error,
    events: &mut dyn Events,
) -> Result<usize, Error> {
    let written = export_entries(pipeline, scopes, format, audit, out, fail, events);
    events.finished();
    written
}

fn export_entries(
    pipeline: &Pipeline,
    scopes: &[String],
    format: FileFormat,
    audit: bool,
    out: &mut dyn Write,
    fail: &dyn Fn(io::Error) -> Error,
    events: &mut dyn Events,
) -> Result<usize, Error> {
    let mut count = 0;
    let mut written = 0u64;
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
            Err(CoreError::Damaged(d)) => {
                events.damaged(&d);
                count += 1;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        let Some(record) = Record::entry(&history, audit) else {
            continue;
        };
        line.clear();
        match format {
            FileFormat::Jsonl => {
                line = serde_json::to_string(&record)
                    .map_err(|e| Error::config(format!("cannot write entry {id} as JSON: {e}")))?;
                line.push('\n');
            }
            FileFormat::Yaml => {
                line.push_str("---\n");
                line.push_str(
                    &yaml_serde::to_string(&record).map_err(|e| {
                        Error::config(format!("cannot write entry {id} as YAML: {e}"))
                    })?,
                );
            }
        }
        out.write_all(line.as_bytes()).map_err(fail)?;
        written += 1;
        events.progress(Progress {
            processed: written,
            done: None,
            unit: "entries",
        });
    }
    Ok(count)
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
    fn fill(&mut self) -> Result<(), Error> {
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
