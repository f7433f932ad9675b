//! Requests as files hold them: one JSON object per line, with the fields `registry add` takes
//! (`batch`, `predict --from`, `train --from`, and plain requests in `import`), read line by line
//! within the record size limit; and the training examples a registry or a file gives.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use registry_core::{Context, Entry, Fields, ListQuery, Pipeline, Request, Schema, Source};
use serde::Deserialize;

use crate::error::{Error, io_reason};
use crate::input::{self, BoundedLines, Read};

/// One request per JSONL line, as `add` takes it.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RequestLine {
    pub title: String,
    pub scope: Option<String>,
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub variant: Option<String>,
    pub status: Option<String>,
    pub version: Option<String>,
    /// Checked as it is read: a key given twice is an error, not silently one of its values.
    #[serde(default)]
    pub context: Context,
}

impl RequestLine {
    /// Builds the request, requiring given field values to be in the schema when `strict`.
    ///
    /// # Errors
    /// A message naming the field (the caller prefixes the file and line).
    pub fn into_request(self, schema: &Schema, strict: bool) -> Result<Request, String> {
        let fields = Fields {
            scope: self.scope,
            kind: self.kind,
            variant: self.variant,
            status: self.status,
        };
        if strict {
            for (field, value) in fields.iter() {
                if let Some(v) = value
                    && schema.canonical(field, v).is_none()
                {
                    return Err(format!(
                        "{field} `{v}` is not in the schema: allowed values are {}",
                        schema.allowed(field).join(", ")
                    ));
                }
            }
        }
        Request::new(&self.title, fields, self.version, self.context).map_err(|e| e.to_string())
    }
}

/// Reads a JSONL file of requests (`-` for standard input), calling `each` with the 1-based line
/// number and the parsed line; blank lines are skipped, and a line over `max` bytes is an error
/// for that line, never held in memory (see [`crate::input`]).
///
/// # Errors
/// An unreadable file, or what `each` returns.
pub fn read_lines(
    path: &Path,
    max: u64,
    mut each: impl FnMut(usize, Result<RequestLine, String>) -> Result<(), Error>,
) -> Result<(), Error> {
    let name = input::name(path);
    let reader: Box<dyn BufRead> = if path.as_os_str() == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(path).map_err(|e| {
            Error::input(format!("cannot read {name}: {}", io_reason(&e))).in_file(&name)
        })?;
        Box::new(BufReader::new(file))
    };
    let mut lines = BoundedLines::new(reader, max);
    let mut buf = Vec::new();
    loop {
        let next = lines.next_line(&mut buf).map_err(|e| {
            Error::input(format!(
                "{name}:{}: cannot read: {}",
                lines.number() + 1,
                io_reason(&e)
            ))
            .in_file(&name)
            .at_line(lines.number() + 1)
        })?;
        let Some((number, read)) = next else {
            return Ok(());
        };
        let number = usize::try_from(number).unwrap_or(usize::MAX);
        let parsed = match read {
            Read::TooLong(bytes) => Err(input::too_long(bytes, max)),
            Read::Line if buf.iter().all(u8::is_ascii_whitespace) => continue,
            Read::Line => std::str::from_utf8(&buf)
                .map_err(|_| "line is not UTF-8 text".to_owned())
                .and_then(|text| {
                    serde_json::from_str::<RequestLine>(text)
                        .map_err(|e| strip_position(&e.to_string()))
                }),
        };
        each(number, parsed)?;
    }
}

/// serde_json's and yaml_serde's "at line 1 column 9" points into the line or record, which the
/// caller already names by its own line number.
pub fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Examples for training: every line of `from` (given values must be in the schema), or every
/// registered entry (a damaged one is left out, with a warning).
///
/// From the registry, only real labels are learned: a field's value is an example's label when
/// a person chose it, that is when the request gave it (its recorded provenance says `Given`)
/// or an update changed it since revision 1. Values the generator filled in (a model, a keyword
/// rule, a default, or `Unrecorded`: chosen by one of them before origins were recorded) are
/// left out, or the model would learn back its own guesses and the schema's defaults. An entry
/// with no label at all is no example. An entry merged into another is no example either: it
/// is a duplicate of that one, which carries the labels; a retired entry's labels are still
/// real and are learned.
pub fn examples(
    pipeline: &Pipeline,
    from: Option<&Path>,
    max: u64,
    warnings: &mut Vec<String>,
) -> Result<Vec<Request>, Error> {
    let mut out = Vec::new();
    match from {
        Some(path) => {
            let name = input::name(path);
            read_lines(path, max, |line, parsed| {
                let request = parsed
                    .and_then(|l| l.into_request(pipeline.schema(), true))
                    .map_err(|e| {
                        Error::input(format!("{name}:{line}: {e}"))
                            .in_file(&name)
                            .at_line(line as u64)
                    })?;
                out.push(request);
                Ok(())
            })?;
        }
        None => {
            let mut unlabelled = 0usize;
            let mut query = ListQuery {
                limit: 10_000,
                ..ListQuery::default()
            };
            loop {
                let page = pipeline.list(&query)?;
                // A damaged entry is named and left out; the model learns from the others.
                warnings.extend(page.damaged.iter().map(|d| format!("not trained on: {d}")));
                for e in page.entries {
                    if e.lifecycle.merged_into().is_some() {
                        continue;
                    }
                    let fields = labels(pipeline, &e)?;
                    if fields.iter().all(|(_, v)| v.is_none()) {
                        unlabelled += 1;
                        continue;
                    }
                    out.push(Request::new(
                        &e.title,
                        fields,
                        Some(e.header.version),
                        e.context,
                    )?);
                }
                let Some(next) = page.next else { break };
                query.after = Some(next);
            }
            if unlabelled > 0 {
                warnings.push(format!(
                    "not trained on {unlabelled} {}: every field of {} was filled in by the \
                     generator, none given or changed by a person",
                    if unlabelled == 1 { "entry" } else { "entries" },
                    if unlabelled == 1 { "it" } else { "them" }
                ));
            }
        }
    }
    if out.is_empty() {
        return Err(Error::input(match from {
            Some(p) => format!("{} holds no requests to train on", input::name(p)),
            None => "the registry holds no entries to train on: register some, or train --from a JSONL file".to_owned(),
        }));
    }
    Ok(out)
}

/// The labels of a registered entry: each field a person chose (see [`examples`]), `None` for
/// the others.
///
/// # Errors
/// The entry's history cannot be read (for an entry updated since revision 1).
fn labels(pipeline: &Pipeline, entry: &Entry) -> Result<Fields<Option<String>>, Error> {
    let given = match &entry.provenance {
        Some(p) => p.fields,
        None => Fields::from_fn(|_| Source::Unrecorded),
    };
    // A field an update changed was chosen by a person, whatever filled it in first.
    let first = if entry.revision > 1 {
        pipeline
            .history(&entry.header.id)?
            .into_iter()
            .next()
            .map(|first| first.header.fields)
    } else {
        None
    };
    Ok(Fields::from_fn(|f| {
        let value = &entry.header.fields[f];
        let changed = first.as_ref().is_some_and(|first| first[f] != *value);
        (given[f] == Source::Given || changed).then(|| value.clone())
    }))
}
