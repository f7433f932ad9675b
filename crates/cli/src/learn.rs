//! `registry train` and `registry predict`: the generator's model, trained on the registered
//! entries or on a JSONL file of requests, and asked what it would fill in.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Write};

use crate::input::{BoundedLines, Read};
use std::path::Path;

use registry_core::{
    Context, Evaluation, Field, Fields, Guess, ListQuery, Pipeline, Request, Schema, TrainOptions,
    TrainReport,
};
use serde::{Deserialize, Serialize};

use crate::{CliError, Format};

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
    mut each: impl FnMut(usize, Result<RequestLine, String>) -> Result<(), CliError>,
) -> Result<(), CliError> {
    let name = path.display().to_string();
    let reader: Box<dyn BufRead> = if name == "-" {
        Box::new(BufReader::new(io::stdin()))
    } else {
        let file = File::open(path).map_err(|e| {
            CliError::input(format!(
                "cannot read {name}: {}",
                crate::registry::io_reason(&e)
            ))
        })?;
        Box::new(BufReader::new(file))
    };
    let mut lines = BoundedLines::new(reader, max);
    let mut buf = Vec::new();
    loop {
        let next = lines.next_line(&mut buf).map_err(|e| {
            CliError::input(format!(
                "{name}:{}: cannot read: {}",
                lines.number() + 1,
                crate::registry::io_reason(&e)
            ))
        })?;
        let Some((number, read)) = next else {
            return Ok(());
        };
        let number = usize::try_from(number).unwrap_or(usize::MAX);
        let parsed = match read {
            Read::TooLong(bytes) => Err(crate::input::too_long(bytes, max)),
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
pub(crate) fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(at) => message[..at].to_owned(),
        None => message.to_owned(),
    }
}

/// Examples for training: every line of `from` (given values must be in the schema), or every
/// registered entry.
fn examples(pipeline: &Pipeline, from: Option<&Path>, max: u64) -> Result<Vec<Request>, CliError> {
    let mut out = Vec::new();
    match from {
        Some(path) => {
            let name = path.display().to_string();
            read_lines(path, max, |line, parsed| {
                let request = parsed
                    .and_then(|l| l.into_request(pipeline.schema(), true))
                    .map_err(|e| CliError::input(format!("{name}:{line}: {e}")))?;
                out.push(request);
                Ok(())
            })?;
        }
        None => {
            let mut query = ListQuery {
                limit: 10_000,
                ..ListQuery::default()
            };
            loop {
                let page = pipeline.list(&query)?;
                // A damaged entry is named and left out; the model learns from the others.
                for d in &page.damaged {
                    eprintln!("warning: not trained on: {d}");
                }
                for e in page.entries {
                    let fields = e.header.fields.map(|_, v| Some(v));
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
        }
    }
    if out.is_empty() {
        return Err(CliError::input(match from {
            Some(p) => format!("{} holds no requests to train on", p.display()),
            None => "the registry holds no entries to train on: register some, or train --from a JSONL file".to_owned(),
        }));
    }
    Ok(out)
}

pub fn train(
    pipeline: &Pipeline,
    from: Option<&Path>,
    max: u64,
    evaluation: Evaluation,
    seed: u64,
    format: Format,
) -> Result<(), CliError> {
    let examples = examples(pipeline, from, max)?;
    let report = pipeline.train(examples, &TrainOptions { evaluation, seed })?;
    match format {
        Format::Json => crate::output::json(&report),
        Format::Text => print_report(&report).map_err(crate::output::write_err),
    }
}

fn print_report(r: &TrainReport) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(
        out,
        "trained {} on {} examples in {:.0} ms ({}); saved to {}",
        r.model, r.examples, r.elapsed_ms, r.evaluation, r.saved_to
    )?;
    writeln!(
        out,
        "{:<8} {:>8} {:>7} {:>8} {:>8} {:>9}",
        "field", "examples", "classes", "accuracy", "baseline", "time"
    )?;
    for f in &r.fields {
        let accuracy = f
            .accuracy
            .map_or_else(|| "-".to_owned(), |a| format!("{a:.3}"));
        write!(
            out,
            "{:<8} {:>8} {:>7} {:>8} {:>8.3} {:>6.0} ms",
            f.field, f.examples, f.classes, accuracy, f.baseline, f.train_ms
        )?;
        match &f.note {
            Some(note) => writeln!(out, "  {note}")?,
            None => writeln!(out)?,
        }
    }
    Ok(())
}

/// A prediction as printed: the title and, per field, the value and where it came from.
#[derive(Debug, Serialize)]
struct Predicted<'a> {
    title: &'a str,
    #[serde(flatten)]
    fields: &'a Fields<Guess>,
}

pub fn predict_one(pipeline: &Pipeline, request: Request, format: Format) -> Result<(), CliError> {
    let title = request.title().to_owned();
    let fields = pipeline
        .predict(vec![request])?
        .pop()
        .ok_or_else(|| CliError::config("the generator returned no prediction"))??;
    match format {
        Format::Json => crate::output::json(&Predicted {
            title: &title,
            fields: &fields,
        }),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                for f in Field::ALL {
                    let g = &fields[f];
                    writeln!(
                        out,
                        "{:<8} {:<12} {}",
                        f.name(),
                        g.value,
                        crate::output::source(g)
                    )?;
                }
                if Field::ALL
                    .iter()
                    .all(|&f| fields[f].source != registry_core::Source::Model)
                {
                    writeln!(
                        out,
                        "(no field came from a trained model: run `registry train` to train one)"
                    )?;
                }
                Ok(())
            })()
            .map_err(crate::output::write_err)
        }
    }
}

/// Predicts for every line of a JSONL file, writing one JSON line per request in input order; a
/// bad line is reported on its own output line and makes the exit code 1.
pub fn predict_file(pipeline: &Pipeline, path: &Path, max: u64) -> Result<(), CliError> {
    const CHUNK: usize = 1000;
    let name = path.display().to_string();
    let mut failed = 0usize;
    let mut chunk: Vec<(usize, Result<Request, String>)> = Vec::with_capacity(CHUNK);
    let mut out = io::BufWriter::new(io::stdout().lock());
    let flush = |chunk: &mut Vec<(usize, Result<Request, String>)>,
                 out: &mut dyn Write,
                 failed: &mut usize|
     -> Result<(), CliError> {
        let titles: Vec<Option<String>> = chunk
            .iter()
            .map(|(_, r)| r.as_ref().ok().map(|r| r.title().to_owned()))
            .collect();
        let requests: Vec<Request> = chunk
            .iter()
            .filter_map(|(_, r)| r.as_ref().ok().cloned())
            .collect();
        let mut predictions = pipeline.predict(requests)?.into_iter();
        for ((line, parsed), title) in chunk.drain(..).zip(titles) {
            let text = match (parsed, title) {
                (Err(e), _) => {
                    *failed += 1;
                    serde_json::to_string(&serde_json::json!({ "line": line, "error": format!("{name}:{line}: {e}") }))
                }
                (Ok(_), title) => match (title, predictions.next()) {
                    (Some(title), Some(Ok(fields))) => {
                        serde_json::to_string(&Predicted { title: &title, fields: &fields })
                    }
                    (_, Some(Err(e))) => {
                        *failed += 1;
                        serde_json::to_string(&serde_json::json!({ "line": line, "error": e.to_string() }))
                    }
                    _ => return Err(CliError::config("the generator returned fewer predictions than requests")),
                },
            }
            .map_err(|e| CliError::config(format!("cannot write output: {e}")))?;
            writeln!(out, "{text}").map_err(crate::output::write_err)?;
        }
        Ok(())
    };
    read_lines(path, max, |line, parsed| {
        chunk.push((
            line,
            parsed.and_then(|l| l.into_request(pipeline.schema(), false)),
        ));
        if chunk.len() == CHUNK {
            flush(&mut chunk, &mut out, &mut failed)?;
        }
        Ok(())
    })?;
    flush(&mut chunk, &mut out, &mut failed)?;
    out.flush().map_err(crate::output::write_err)?;
    if failed > 0 {
        return Err(CliError::input(format!(
            "{failed} line(s) of {name} could not be predicted"
        )));
    }
    Ok(())
}
