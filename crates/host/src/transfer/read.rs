//! Reading an import file: line by line, each line and each YAML document bounded, the format
//! decided by the first line, and a copy kept when it must be read twice.

use std::fs::File;
use std::io::{self, BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use registry_core::{Schema, nesting};

use super::BATCH;
use super::record::{Item, RawRecord, item_of, nesting_message};
use crate::error::{Error, io_reason};
use crate::input::{self, BoundedLines};
use crate::requests::strip_position;

/// A line read: its number, and its text or why it is not text.
pub(super) type Line = (usize, Result<String, String>);

/// A reader that writes a copy of what it reads.
pub(super) struct Tee {
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
pub(super) struct Input {
    pub(super) name: String,
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
    pub(super) fn open(path: &Path, max: u64) -> Result<Input, Error> {
        let is_stdin = path.as_os_str() == "-";
        let name = crate::input::name(path);
        let reader: Box<dyn BufRead> = if is_stdin {
            Box::new(BufReader::new(io::stdin()))
        } else {
            let file = File::open(path).map_err(|e| {
                Error::input(format!("cannot read {name}: {}", io_reason(&e))).in_file(&name)
            })?;
            Box::new(BufReader::new(file))
        };
        Ok(Input::of(name, reader, max))
    }

    /// The input, copied as it is read into a private temporary file: the file, to read it
    /// again.
    pub(super) fn spooled(path: &Path, max: u64) -> Result<(Input, File), Error> {
        let spool = tempfile::tempfile().map_err(|e| {
            Error::config(format!(
                "cannot make a temporary copy of the input: {}",
                io_reason(&e)
            ))
        })?;
        let copy = spool.try_clone().map_err(|e| {
            Error::config(format!(
                "cannot make a temporary copy of the input: {}",
                io_reason(&e)
            ))
        })?;
        let is_stdin = path.as_os_str() == "-";
        let name = crate::input::name(path);
        let source: Box<dyn io::Read> = if is_stdin {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path).map_err(|e| {
                Error::input(format!("cannot read {name}: {}", io_reason(&e))).in_file(&name)
            })?)
        };
        let tee = Tee {
            source,
            copy: BufWriter::new(copy),
        };
        Ok((Input::of(name, Box::new(BufReader::new(tee)), max), spool))
    }

    /// The most bytes a line or a YAML document may take.
    pub(super) fn max(&self) -> u64 {
        self.max
    }

    pub(super) fn of(name: String, reader: Box<dyn BufRead>, max: u64) -> Input {
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
    fn read_line(&mut self) -> Result<Option<Line>, Error> {
        if let Some(p) = self.pending.take() {
            return Ok(Some(p));
        }
        if self.done {
            return Ok(None);
        }
        let next = self.lines.next_line(&mut self.buf).map_err(|e| {
            Error::input(format!(
                "{}:{}: cannot read: {}",
                self.name,
                self.line + 1,
                io_reason(&e)
            ))
            .in_file(&self.name)
            .at_line(self.line as u64 + 1)
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
    pub(super) fn next_batch(&mut self, schema: &Schema) -> Result<Vec<Item>, Error> {
        let mut items = Vec::with_capacity(BATCH);
        while items.len() < BATCH && self.next_item(&mut items, schema)? {}
        Ok(items)
    }

    /// Reads the next record onto `items`; false at the end of the input.
    pub(super) fn next_item(
        &mut self,
        items: &mut Vec<Item>,
        schema: &Schema,
    ) -> Result<bool, Error> {
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

    fn next_json(&mut self, items: &mut Vec<Item>, schema: &Schema) -> Result<bool, Error> {
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

    fn next_yaml(&mut self, items: &mut Vec<Item>, schema: &Schema) -> Result<bool, Error> {
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
