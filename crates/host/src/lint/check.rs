//! Checking the headers found: splitting and validating them in batches, ids repeated across
//! files, and (with `--registered`) each header against its registered entry.

use std::borrow::Cow;
use std::collections::HashMap;
use std::collections::hash_map::Entry as Slot;

use registry_core::{
    Entry, EntryId, Error, Field, HeaderForm, Lifecycle, Pipeline, RawHeader, Schema, Severity,
    StageError, Validator,
};

use super::scan::{FileReport, Found};
use super::{Diagnostic, Level, shown};
use crate::error::Error as HostError;

/// Headers per `check_headers` call: each call crosses the plugin boundary, so headers go in
/// large batches, and batches are checked on several threads at once.
const BATCH: usize = 4096;

/// At most this many other places are named in a `duplicate-id` message.
const MAX_PLACES: usize = 3;

/// A header found, with the index of its file in the sorted file list.
#[derive(Debug, Clone, Copy)]
pub(super) struct Located<'a> {
    pub file: usize,
    pub found: &'a Found,
}

impl Located<'_> {
    /// A diagnostic about this header, `offset` bytes into its text.
    fn at(
        &self,
        offset: u32,
        severity: Level,
        code: impl Into<Cow<'static, str>>,
        message: String,
    ) -> Diagnostic {
        // The offset is at a part's start, so within the text; else the `[`.
        let within = self.found.text.get(..offset as usize).unwrap_or_default();
        let utf16 = u32::try_from(within.encode_utf16().count()).unwrap_or(0);
        Diagnostic {
            file: self.file,
            line: Some(self.found.line),
            column: Some(self.found.column.saturating_add(offset)),
            column_utf16: Some(
                self.found
                    .before_utf16
                    .saturating_add(utf16)
                    .saturating_add(1),
            ),
            severity,
            code: code.into(),
            message,
        }
    }
}

/// The header parts in header order, with their names as the validator gives them in
/// [`registry_core::Problem::field`].
const PARTS: [&str; 6] = ["scope", "type", "variant", "id", "version", "status"];

/// The byte offset of a part (`scope`, `id`, ...) within the header text, so a diagnostic
/// points at the part it is about; 0 (the `[`) for anything else.
fn offset_of(raw: &RawHeader, text: &str, part: &str) -> u32 {
    let f = &raw.fields;
    let parts = [
        &f.scope,
        &f.kind,
        &f.variant,
        &raw.id,
        &raw.version,
        &f.status,
    ];
    let separator = match raw.form {
        HeaderForm::Readable => 2,
        HeaderForm::Grepable => 1,
    };
    // The parts are the text as written only if they add up to it; if not, point at the start.
    let total: usize = parts.iter().map(|p| p.len()).sum::<usize>() + 5 * separator + 2;
    let Some(at) = PARTS.iter().position(|p| *p == part) else {
        return 0;
    };
    if total != text.len() {
        return 0;
    }
    let offset = 1 + parts[..at]
        .iter()
        .map(|p| p.len() + separator)
        .sum::<usize>();
    u32::try_from(offset).unwrap_or(0)
}

/// What checking one header leaves for the checks across headers.
#[derive(Debug, Clone, Default)]
pub(super) struct Checked {
    /// The id, if well-formed, compared parsed, so that `SEC-RUL-42` and `sec-rul-042` are
    /// the same.
    pub id: Option<EntryId>,
    /// A hash of the id, so that ids are grouped by sorting plain numbers.
    pub id_hash: u64,
    /// Where the id starts in the header text, for diagnostics about it.
    pub id_offset: u32,
    /// The split header, kept only when asked for (`--registered` compares its parts).
    pub raw: Option<RawHeader>,
}

/// Splits every header and hands the well-formed ones to the validator, [`BATCH`] at a time on
/// up to `threads` threads. Returns, in order, what each header leaves for the checks across
/// headers (with its split form if `keep_raw`), and the diagnostics: `malformed-header` and
/// every problem the validator reports.
///
/// # Errors
/// Exit code 2 when the validator fails (as opposed to finding problems).
pub(super) fn validate(
    validator: &dyn Validator,
    schema: &Schema,
    headers: &[Located<'_>],
    threads: usize,
    keep_raw: bool,
) -> Result<(Vec<Checked>, Vec<Diagnostic>), HostError> {
    let chunks: Vec<&[Located<'_>]> = headers.chunks(BATCH).collect();
    let threads = threads.clamp(1, chunks.len().max(1));
    let check = |chunk: &[Located<'_>]| check_batch(validator, schema, chunk, keep_raw);
    let mut done: Vec<(usize, Result<Batch, StageError>)> = if threads == 1 {
        chunks
            .iter()
            .enumerate()
            .map(|(i, chunk)| (i, check(chunk)))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let workers: Vec<_> = (0..threads)
                .map(|t| {
                    let (chunks, check) = (&chunks, &check);
                    scope.spawn(move || {
                        chunks
                            .iter()
                            .enumerate()
                            .skip(t)
                            .step_by(threads)
                            .map(|(i, chunk)| (i, check(chunk)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| match w.join() {
                    Ok(done) => done,
                    // A panic here is a bug of this program, not bad input: pass it on.
                    Err(panic) => std::panic::resume_unwind(panic),
                })
                .collect()
        })
    };
    done.sort_by_key(|(i, _)| *i);
    let mut checked = Vec::with_capacity(headers.len());
    let mut diagnostics = Vec::new();
    for (_, result) in done {
        let (c, d) = result.map_err(|e| HostError::config(format!("validator: {e}")))?;
        checked.extend(c);
        diagnostics.extend(d);
    }
    Ok((checked, diagnostics))
}

/// What one batch gives: per header what it leaves, and the diagnostics.
type Batch = (Vec<Checked>, Vec<Diagnostic>);

fn check_batch(
    validator: &dyn Validator,
    schema: &Schema,
    chunk: &[Located<'_>],
    keep_raw: bool,
) -> Result<Batch, StageError> {
    let mut diagnostics = Vec::new();
    let mut batch = Vec::with_capacity(chunk.len());
    let mut index = Vec::with_capacity(chunk.len());
    for (i, h) in chunk.iter().enumerate() {
        match RawHeader::split(&h.found.text, schema) {
            Ok(raw) => {
                batch.push(raw);
                index.push(i);
            }
            Err(e) => diagnostics.push(h.at(0, Level::Error, "malformed-header", e.to_string())),
        }
    }
    let mut problems = Vec::new();
    validator.check_headers(&batch, &mut problems)?;
    for p in problems {
        let Some(&i) = index.get(p.item) else {
            return Err(StageError::new(
                registry_core::ErrorCode::Internal,
                format!(
                    "the validator reported a problem for header {} of a batch of {}",
                    p.item,
                    batch.len()
                ),
            ));
        };
        let h = &chunk[i];
        let offset = offset_of(&batch[p.item], &h.found.text, &p.field);
        let severity = match p.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        };
        diagnostics.push(h.at(offset, severity, p.code, p.message));
    }
    // The split headers are dropped here, on this thread, unless they are wanted later.
    let mut checked = vec![Checked::default(); chunk.len()];
    for (raw, i) in batch.into_iter().zip(index) {
        let id: Option<EntryId> = raw.id.parse().ok();
        checked[i] = Checked {
            id_hash: id.as_ref().map_or(0, hash_of),
            id,
            id_offset: offset_of(&raw, &chunk[i].found.text, "id"),
            raw: keep_raw.then_some(raw),
        };
    }
    Ok((checked, diagnostics))
}

/// `duplicate-id`: an id written in two or more files, reported at every occurrence, naming
/// the others. The same id twice in one file (a file may carry both forms of its header) is
/// not a duplicate.
pub(super) fn duplicates(
    headers: &[Located<'_>],
    files: &[FileReport],
    checked: &[Checked],
) -> Vec<Diagnostic> {
    // Sorting by the ids' hashes (plain numbers, fast to sort) brings each id's places
    // together; the rare headers that share a hash are then sorted by id, which also
    // separates different ids with the same hash. Places stay in header order.
    let mut by_hash: Vec<(u64, usize)> = checked
        .iter()
        .enumerate()
        .filter(|(_, c)| c.id.is_some())
        .map(|(i, c)| (c.id_hash, i))
        .collect();
    by_hash.sort_unstable();
    let mut groups: Vec<Vec<(&EntryId, usize)>> = Vec::new();
    for same_hash in by_hash.chunk_by(|a, b| a.0 == b.0) {
        if same_hash.len() < 2 {
            continue;
        }
        let mut ids: Vec<(&EntryId, usize)> = same_hash
            .iter()
            .filter_map(|&(_, i)| checked[i].id.as_ref().map(|id| (id, i)))
            .collect();
        ids.sort();
        groups.extend(ids.chunk_by(|a, b| a.0 == b.0).map(<[_]>::to_vec));
    }
    let mut diagnostics = Vec::new();
    for group in &groups {
        let first_file = headers[group[0].1].file;
        if group.iter().all(|&(_, i)| headers[i].file == first_file) {
            continue;
        }
        for &(id, i) in group {
            let h = &headers[i];
            let others: Vec<String> = group
                .iter()
                .map(|&(_, j)| &headers[j])
                .filter(|o| o.file != h.file)
                .map(|o| format!("{}:{}", shown(&files[o.file].path), o.found.line))
                .collect();
            let mut list = others[..others.len().min(MAX_PLACES)].join(", ");
            if others.len() > MAX_PLACES {
                list.push_str(&format!(" and {} more", others.len() - MAX_PLACES));
            }
            diagnostics.push(h.at(
                checked[i].id_offset,
                Level::Error,
                "duplicate-id",
                format!("id {id} is also in {list}: an id names one entry"),
            ));
        }
    }
    diagnostics
}

fn hash_of(id: &EntryId) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    // Fixed keys: the same id gives the same hash on every thread.
    BuildHasherDefault::<DefaultHasher>::default().hash_one(id)
}

/// `--registered`: each header against the latest revision of its registered entry:
/// `unregistered-id` when there is none, `header-mismatch` naming each part that differs.
/// Values compare case-insensitively (the grepable form is lowercase). Each id is looked up
/// once.
///
/// # Errors
/// As [`Pipeline::get`] for anything but an unknown id: storage or plugin failures (exit 2).
pub(super) fn registered(
    pipeline: &Pipeline,
    headers: &[Located<'_>],
    checked: &[Checked],
) -> Result<Vec<Diagnostic>, HostError> {
    let mut entries: HashMap<&EntryId, Option<Entry>> = HashMap::new();
    let mut diagnostics = Vec::new();
    for (h, c) in headers.iter().zip(checked) {
        let (Some(raw), Some(id)) = (&c.raw, &c.id) else {
            continue;
        };
        let entry = match entries.entry(id) {
            Slot::Occupied(slot) => slot.into_mut(),
            Slot::Vacant(slot) => slot.insert(match pipeline.get(id) {
                Ok(entry) => Some(entry),
                Err(Error::NotFound(_)) => None,
                Err(e) => return Err(e.into()),
            }),
        };
        let Some(entry) = entry else {
            diagnostics.push(h.at(
                c.id_offset,
                Level::Error,
                "unregistered-id",
                format!("id {id} is not registered"),
            ));
            continue;
        };
        match &entry.lifecycle {
            Lifecycle::Active => {}
            Lifecycle::Retired => diagnostics.push(h.at(
                c.id_offset,
                Level::Warning,
                "retired-entry",
                format!("entry {id} is retired (revision {})", entry.revision),
            )),
            Lifecycle::Merged(target) => {
                diagnostics.push(h.at(
                    c.id_offset,
                    Level::Error,
                    "merged-entry",
                    format!(
                        "entry {id} is merged into {target}: `registry stamp --refresh` (or \
                         `lint --fix`) re-points this file"
                    ),
                ));
                continue;
            }
        }
        let registered = &entry.header;
        let mut differing: Vec<(&str, &str, &str)> = Field::ALL
            .iter()
            .map(|&f| {
                (
                    f.name(),
                    raw.fields[f].as_str(),
                    registered.fields[f].as_str(),
                )
            })
            .collect();
        differing.insert(3, ("version", &raw.version, &registered.version));
        differing.retain(|(_, here, there)| !here.eq_ignore_ascii_case(there));
        let Some((first, ..)) = differing.first() else {
            continue;
        };
        let offset = offset_of(raw, &h.found.text, first);
        let list: Vec<String> = differing
            .iter()
            .map(|(part, here, there)| format!("{part} `{here}` here, `{there}` registered"))
            .collect();
        diagnostics.push(h.at(
            offset,
            Level::Error,
            "header-mismatch",
            format!(
                "header differs from registered {id} (revision {}): {}",
                entry.revision,
                list.join("; ")
            ),
        ));
    }
    Ok(diagnostics)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_point_at_each_part() {
        let schema = Schema::default();
        let readable = "[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]";
        let grepable = "[sec-multi-etl-live-sec-mul-042-v2.9-required]";
        for (text, part, want) in [
            (readable, "scope", "SEC]"),
            (readable, "type", "RULES]"),
            (readable, "variant", "LIVE]"),
            (readable, "id", "SEC-RUL-042]"),
            (readable, "version", "v2.9]"),
            (readable, "status", "REQUIRED]"),
            (readable, "config", "[SEC]"),
            (grepable, "type", "multi-etl-live"),
            (grepable, "variant", "live-sec"),
            (grepable, "id", "sec-mul-042-v2.9"),
            (grepable, "version", "v2.9-required"),
            (grepable, "status", "required]"),
        ] {
            let raw = RawHeader::split(text, &schema).expect("splits");
            let at = offset_of(&raw, text, part) as usize;
            assert!(
                text[at..].starts_with(want),
                "{text} {part}: {}",
                &text[at..]
            );
        }
    }

    #[test]
    fn offsets_fall_back_to_the_start_when_parts_do_not_add_up() {
        let schema = Schema::default();
        let raw = RawHeader::split("[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]", &schema)
            .expect("splits");
        assert_eq!(offset_of(&raw, "[SEC]", "status"), 0);
    }
}
