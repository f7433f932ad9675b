//! Reading input files: one line at a time, never more than a limit of it, and telling apart
//! the files a command reads from the ones it writes.
//!
//! A line is read through the reader's own buffer and copied out only while it stays under the
//! limit (`limits.max_record_bytes` in `registry.toml`, 1 MiB by default): the rest of a longer
//! line is skipped without being kept, so a 1 GB line costs a 64 KiB buffer, not 2 GB, and is
//! reported with its number and length. A UTF-8 byte order mark at the start of a file is not
//! part of its first line (editors on Windows write one).
//!
//! An output that is one of the inputs (the same file by device and inode, whatever name, link
//! or redirection leads to it) is refused before it is opened for writing: truncating it would
//! destroy the input being read.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Seek};
use std::path::Path;

use crate::error::{Error, io_reason};

/// What [`BoundedLines::next_line`] read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// A line, in the caller's buffer, without its line break.
    Line,
    /// A line longer than the limit, skipped: its length in bytes.
    TooLong(u64),
}

/// The lines of a stream, each at most `max` bytes, with their 1-based numbers.
pub struct BoundedLines<R> {
    reader: R,
    max: usize,
    number: u64,
}

impl<R: BufRead> BoundedLines<R> {
    pub fn new(reader: R, max: u64) -> Self {
        BoundedLines {
            reader,
            max: usize::try_from(max).unwrap_or(usize::MAX),
            number: 0,
        }
    }

    /// The number of the last line read.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Reads the next line into `buf` (cleared first); `None` at the end.
    ///
    /// # Errors
    /// What the reader fails with.
    pub fn next_line(&mut self, buf: &mut Vec<u8>) -> io::Result<Option<(u64, Read)>> {
        buf.clear();
        let mut total: u64 = 0;
        let mut over = false;
        let mut any = false;
        loop {
            let chunk = match self.reader.fill_buf() {
                Ok(c) => c,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if chunk.is_empty() {
                break;
            }
            any = true;
            let (take, end) = match chunk.iter().position(|&b| b == b'\n') {
                Some(at) => (at + 1, true),
                None => (chunk.len(), false),
            };
            total += take as u64;
            // The limit is on the line's content; its line break (up to two bytes) is free.
            if !over {
                if buf.len() + take > self.max.saturating_add(2) {
                    over = true;
                    buf.clear();
                    buf.shrink_to(64 * 1024);
                } else {
                    buf.extend_from_slice(&chunk[..take]);
                }
            }
            self.reader.consume(take);
            if end {
                break;
            }
        }
        if !any {
            return Ok(None);
        }
        self.number += 1;
        if !over {
            if buf.last() == Some(&b'\n') {
                buf.pop();
                if buf.last() == Some(&b'\r') {
                    buf.pop();
                }
            }
            if buf.len() > self.max {
                over = true;
            }
        }
        if over {
            buf.clear();
            let content = total.saturating_sub(1);
            return Ok(Some((self.number, Read::TooLong(content))));
        }
        if self.number == 1 && buf.starts_with(b"\xEF\xBB\xBF") {
            buf.drain(..3);
        }
        Ok(Some((self.number, Read::Line)))
    }
}

/// How messages name an input file: its path, or `<stdin>` for `-` (standard input, as every
/// command that reads a file of records takes it).
pub fn name(path: &Path) -> String {
    if path.as_os_str() == "-" {
        "<stdin>".to_owned()
    } else {
        path.display().to_string()
    }
}

/// The one-line reason for a line over the limit.
pub fn too_long(bytes: u64, max: u64) -> String {
    format!(
        "line is {bytes} bytes long: the limit is {max} (limits.max_record_bytes in \
         registry.toml); it was skipped"
    )
}

/// The file identity of an input: a path, or standard input (`-`), whatever it is redirected
/// from.
#[cfg(unix)]
fn identity(input: &Path) -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt;
    let meta = if input.as_os_str() == "-" {
        std::fs::metadata("/dev/stdin").ok()?
    } else {
        std::fs::metadata(input).ok()?
    };
    meta.is_file().then(|| (meta.dev(), meta.ino()))
}

/// Opens `output` for writing, replacing its content, unless it is one of `inputs` (by device
/// and inode: a symbolic or hard link, or the file standard input is redirected from, counts).
/// The check is made on the opened file, before anything is truncated.
///
/// # Errors
/// Exit code 1 naming both when the output is an input, or when it cannot be opened.
pub fn create_output(output: &Path, inputs: &[&Path]) -> Result<File, Error> {
    let name = output.display();
    let at = || output.display().to_string();
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .open(output)
        .map_err(|e| {
            Error::input(format!("cannot create {name}: {}", io_reason(&e))).in_file(at())
        })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let meta = file.metadata().map_err(|e| {
            Error::input(format!("cannot read {name}: {}", io_reason(&e))).in_file(at())
        })?;
        for input in inputs {
            if identity(input) == Some((meta.dev(), meta.ino())) {
                let what = if input.as_os_str() == "-" {
                    "standard input is read from it".to_owned()
                } else {
                    format!("it is the input {}", input.display())
                };
                return Err(Error::input(format!(
                    "{name} cannot be written: {what}, which writing would destroy; choose \
                     another output file"
                ))
                .in_file(at()));
            }
        }
    }
    #[cfg(not(unix))]
    let _ = inputs;
    // A regular file is emptied; a terminal, pipe or device (`/dev/stdout`) is written as is.
    let regular = file.metadata().is_ok_and(|m| m.is_file());
    if regular {
        file.set_len(0)
            .and_then(|()| (&file).rewind())
            .map_err(|e| {
                Error::input(format!("cannot write {name}: {}", io_reason(&e))).in_file(at())
            })?;
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    #[cfg(unix)]
    use std::os::unix::fs::FileTypeExt;

    use super::*;

    fn lines(input: &[u8], max: u64) -> Vec<Result<String, u64>> {
        let mut l = BoundedLines::new(io::BufReader::with_capacity(4, input), max);
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some((_, read)) = l.next_line(&mut buf).expect("reads") {
            out.push(match read {
                Read::Line => Ok(String::from_utf8(buf.clone()).expect("utf-8")),
                Read::TooLong(n) => Err(n),
            });
        }
        out
    }

    #[test]
    fn long_lines_are_skipped_whole_and_the_rest_read() {
        assert_eq!(
            lines(b"ab\r\n0123456789\nxyz", 5),
            [Ok("ab".to_owned()), Err(10), Ok("xyz".to_owned())]
        );
        assert_eq!(
            lines(b"12345\n123456\n", 5),
            [Ok("12345".to_owned()), Err(6)]
        );
        assert_eq!(lines(b"", 5), Vec::<Result<String, u64>>::new());
        assert_eq!(lines(b"\n\n", 5), [Ok(String::new()), Ok(String::new())]);
    }

    #[test]
    fn a_byte_order_mark_starts_only_the_file() {
        assert_eq!(
            lines("\u{feff}{\"a\":1}\n\u{feff}x\n".as_bytes(), 100),
            [Ok("{\"a\":1}".to_owned()), Ok("\u{feff}x".to_owned())]
        );
    }

    #[test]
    fn memory_stays_bounded_on_a_huge_line() {
        // 64 MiB in one line, read through a small buffer: the line buffer never grows past
        // the limit.
        struct Endless(u64);
        impl io::Read for Endless {
            fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
                let n = (out.len() as u64).min(self.0) as usize;
                out[..n].fill(b'x');
                self.0 -= n as u64;
                Ok(n)
            }
        }
        let mut l = BoundedLines::new(io::BufReader::new(Endless(64 << 20)), 1024);
        let mut buf = Vec::new();
        let got = l.next_line(&mut buf).expect("reads");
        assert_eq!(got, Some((1, Read::TooLong((64 << 20) - 1))));
        assert!(buf.capacity() <= 64 * 1024 + 1024, "{}", buf.capacity());
    }

    #[cfg(unix)]
    #[test]
    fn a_device_is_written_as_is() {
        let file = create_output(Path::new("/dev/null"), &[Path::new("-")]).expect("a device");
        assert!(file.metadata().expect("stat").file_type().is_char_device());
    }

    #[cfg(unix)]
    #[test]
    fn an_output_that_is_an_input_is_refused_before_truncation() {
        let dir = tempfile::tempdir().expect("temp dir");
        let input = dir.path().join("in.jsonl");
        std::fs::write(&input, "{\"title\": \"x\"}\n").expect("writes");
        let link = dir.path().join("link.jsonl");
        std::os::unix::fs::symlink(&input, &link).expect("symlink");
        let hard = dir.path().join("hard.jsonl");
        std::fs::hard_link(&input, &hard).expect("hard link");
        for output in [&input, &link, &hard] {
            let e = create_output(output, &[&input]).expect_err("the input");
            assert!(e.message.contains("it is the input"), "{}", e.message);
        }
        assert_eq!(
            std::fs::read_to_string(&input).expect("reads"),
            "{\"title\": \"x\"}\n",
            "nothing truncated"
        );
        let other = dir.path().join("out.jsonl");
        std::fs::write(&other, "old content\n").expect("writes");
        create_output(&other, &[&input]).expect("another file");
        assert_eq!(std::fs::read_to_string(&other).expect("reads"), "");
    }
}
