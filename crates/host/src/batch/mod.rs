//! Bulk registration: `batch` (a JSONL file of requests), `scale-test` (generated requests, then
//! read back) and `stats` (what a registry holds), and the report of what each cost.
//!
//! [`register`] streams requests through the pipeline in batches, several at a time: the calling
//! thread parses lines into batches and hands each to a blocking task of a tokio runtime that
//! calls [`Pipeline::add`]; at most twice as many batches as cores are in flight, and the oldest
//! is awaited before another is read, so memory stays bounded whatever the size of the input and
//! results come back in input order, and in a dense registry new entries are numbered in input
//! order too ([`Turns`]). A line that cannot be parsed or registered is reported with
//! its number; every other line is processed. An entry counts as stored only once `add` returned
//! it, which is after the storage committed the batch (one durable transaction per shard per
//! call).
//!
//! [`Results`] writes one JSON line per input line, `{"line", "status", "id", "message"}` with
//! `status` one of `created`, `duplicate`, `failed`, batch by batch as each is committed (in
//! input order), so a caller can map its inputs to ids, and a line there says `created` only
//! once its entry is durable: after an interruption, every line of the file is in the registry.
//!
//! [`scale_test`] feeds generated requests through the same code, then reopens the registry and
//! reads a sample back by id, checking each entry against the request that produced it.

mod backup;
mod check;
mod compact;
mod generate;
mod migrate;
mod scale;
mod stats;
mod summary;

use std::collections::VecDeque;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::num::NonZero;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use registry_core::{EntryId, Error as CoreError, Pipeline, Request, Schema, Turn, Turns};
use serde::Serialize;

use crate::error::{Error, io_reason};
use crate::events::{Events, Progress};
use crate::input::{self, BoundedLines};
use crate::requests::{RequestLine, strip_position};

pub use backup::{Backup, MANIFEST, Manifest, Mark, Raised, Restoration, backup, restore};
pub use check::{Checked, check};
pub use compact::{Compaction, compact};
pub use migrate::{Migration, migrate, rename};
pub use scale::{ScaleTest, Scaled, scale_test};
pub use stats::{SEARCH_DIR, SearchStats, Stats, count, stats};
pub use summary::{CallLatency, Latency, Summary, bytes_on_disk, peak_rss};

/// The most failures kept for the report; the rest are counted only, so that a file of bad
/// lines cannot make the report grow without bound.
pub const KEPT_FAILURES: usize = 1000;

/// The largest batch size: memory grows with it (about 24 KiB per request in flight, from
/// 77 MiB at 1,000 to 240 MiB at 10,000 in `cargo xtask bench`, with up to two batches per
/// core in flight), so 100,000 already asks for a few GiB; a larger one would fail by running
/// out of memory rather than say why.
pub const MAX_BATCH_SIZE: i64 = 100_000;

/// How many created entries a run keeps in its sample, at most.
const SAMPLE: usize = 1000;

/// How many settled batches between two returns of free memory to the system.
const TRIM_EVERY: u64 = 16;

/// One line that was not registered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Failure {
    pub line: u64,
    pub message: String,
}

/// A parsed line: its number and the request, or why it is not one.
pub type Item = (u64, Result<Request, String>);

/// What a run did, added up batch by batch.
#[derive(Debug, Default)]
pub struct Tally {
    pub processed: u64,
    pub created: u64,
    pub duplicates: u64,
    pub failed: u64,
    /// The first [`KEPT_FAILURES`] failures, by line.
    pub failures: Vec<Failure>,
    /// Whether some failure came from configuration, a plugin or storage, not from the line.
    pub severe: bool,
    /// A uniform sample of the entries created, with the lines that created them.
    pub sample: Vec<(u64, EntryId)>,
    rng: generate::Rng,
    results: Option<Results>,
}

/// One line of [`Results`].
#[derive(Serialize)]
struct Outcome<'a> {
    line: u64,
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a EntryId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    message: Option<&'a str>,
}

impl Tally {
    fn new(seed: u64) -> Tally {
        Tally {
            rng: generate::Rng::new(seed ^ 0x5a5a_5a5a),
            ..Tally::default()
        }
    }

    fn fail(&mut self, line: u64, message: String) {
        self.failed += 1;
        if self.failures.len() < KEPT_FAILURES {
            self.failures.push(Failure { line, message });
        }
    }

    /// Adds one batch: its lines that did not parse and the results of the others.
    ///
    /// # Errors
    /// When the results file cannot be written.
    fn settle(
        &mut self,
        mut bad: Vec<(u64, String)>,
        lines: Vec<u64>,
        results: Vec<Result<Settled, CoreError>>,
    ) -> Result<(), Error> {
        self.processed += (bad.len() + lines.len()) as u64;
        // Each line's outcome is kept only for a results file.
        let keep = self.results.is_some();
        let mut stored = Vec::with_capacity(if keep { lines.len() } else { 0 });
        for (line, result) in lines.into_iter().zip(results) {
            match result {
                Ok(Settled { created, id }) => {
                    if created {
                        self.created += 1;
                        self.keep_in_sample(line, &id);
                    } else {
                        self.duplicates += 1;
                    }
                    if keep {
                        stored.push((line, created, id));
                    }
                }
                Err(e) => {
                    self.severe |= !e.is_user_error();
                    bad.push((line, e.to_string()));
                }
            }
        }
        bad.sort_by_key(|(line, _)| *line);
        if let Some(results) = &mut self.results {
            results.write(&stored, &bad)?;
        }
        for (line, message) in bad {
            self.fail(line, message);
        }
        Ok(())
    }

    /// Reservoir sampling: after `created` entries, each is in the sample with equal chance.
    fn keep_in_sample(&mut self, line: u64, id: &EntryId) {
        if self.sample.len() < SAMPLE {
            self.sample.push((line, id.clone()));
        } else {
            let j = self.rng.below(self.created);
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.sample.get_mut(j)) {
                *slot = (line, id.clone());
            }
        }
    }
}

/// The outcome of every line, written as JSON lines batch by batch once each is committed.
#[derive(Debug)]
pub struct Results {
    out: io::BufWriter<File>,
    name: String,
}

impl Results {
    /// Creates (or truncates) the file at `path`, which must not be one of `inputs`; called
    /// before the registry is opened, so a run refused here changes nothing.
    ///
    /// # Errors
    /// `path` is one of the inputs or cannot be created (see [`input::create_output`]).
    pub fn create(path: &Path, inputs: &[&Path]) -> Result<Results, Error> {
        let file = input::create_output(path, inputs)?;
        Ok(Results {
            out: io::BufWriter::new(file),
            name: path.display().to_string(),
        })
    }

    fn write(
        &mut self,
        stored: &[(u64, bool, EntryId)],
        bad: &[(u64, String)],
    ) -> Result<(), Error> {
        let mut outcomes: Vec<Outcome<'_>> = stored
            .iter()
            .map(|(line, created, id)| Outcome {
                line: *line,
                status: if *created { "created" } else { "duplicate" },
                id: Some(id),
                message: None,
            })
            .chain(bad.iter().map(|(line, message)| Outcome {
                line: *line,
                status: "failed",
                id: None,
                message: Some(message),
            }))
            .collect();
        outcomes.sort_by_key(|o| o.line);
        let out = &mut self.out;
        let written = outcomes.iter().try_for_each(|o| {
            serde_json::to_writer(&mut *out, o).map_err(io::Error::from)?;
            out.write_all(b"\n")
        });
        written
            .and_then(|()| out.flush())
            .map_err(|e| Error::config(format!("cannot write {}: {}", self.name, io_reason(&e))))
    }
}

/// How a run registers: requests per call, and the seed of its sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Requests per call to the pipeline (one storage transaction per shard per call).
    pub batch_size: usize,
    pub seed: u64,
}

/// A batch on its way through the pipeline.
struct Job {
    bad: Vec<(u64, String)>,
    lines: Vec<u64>,
    task: tokio::task::JoinHandle<Vec<Result<Settled, CoreError>>>,
}

/// What the tally needs of a registered request. The batch's worker thread reduces each
/// [`registry_core::Added`] to this, so the entries are freed there, in parallel, and not on
/// the one thread that reads the input and adds up the results.
struct Settled {
    created: bool,
    id: EntryId,
}

/// Registers a batch in its turn and keeps only what the tally needs of each result.
fn add_settled(
    pipeline: &Pipeline,
    batch: Vec<Request>,
    turn: Turn,
) -> Vec<Result<Settled, CoreError>> {
    pipeline
        .add_in_turn(batch, turn)
        .into_iter()
        .map(|r| {
            r.map(|added| Settled {
                created: added.created,
                // The entry is this result's alone unless the cache keeps it too.
                id: match Arc::try_unwrap(added.entry) {
                    Ok(entry) => entry.header.id,
                    Err(shared) => shared.header.id.clone(),
                },
            })
        })
        .collect()
}

/// Runs every item through `pipeline.add`, `batch_size` at a time, with a bounded number of
/// batches in flight; results are added up in input order, written to `results` if given, and
/// reported to `events` as each batch settles. `done` says what fraction of the work a count of
/// processed items is, when that is known.
///
/// # Errors
/// When `items` yields an error (the input cannot be read), the runtime cannot start, or the
/// results file cannot be written; the batches before stay registered.
pub fn register(
    pipeline: &Arc<Pipeline>,
    items: impl Iterator<Item = Result<Item, Error>>,
    options: Options,
    results: Option<Results>,
    done: &dyn Fn(u64) -> Option<f64>,
    events: &mut dyn Events,
) -> Result<Tally, Error> {
    let batch_size = options.batch_size.max(1);
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    let in_flight = cores * 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(in_flight)
        .thread_name("registry-batch")
        .build()
        .map_err(|e| Error::config(format!("cannot start the batch runtime: {e}")))?;
    let mut tally = Tally::new(options.seed);
    tally.results = results;
    let mut queue: VecDeque<Job> = VecDeque::with_capacity(in_flight);
    // Batches run several at once but take their ids in input order (see `Turns`): the pool
    // starts them in the order they are spawned, so the batch holding the earliest turn always
    // runs.
    let turns = Turns::new();
    let mut settled = 0u64;
    let mut settle = |job: Job, tally: &mut Tally| -> Result<(), Error> {
        let results = runtime
            .block_on(job.task)
            .map_err(|e| Error::config(format!("a batch of the pipeline did not finish: {e}")))?;
        settled += 1;
        if settled.is_multiple_of(TRIM_EVERY) {
            release_free_memory();
        }
        tally.settle(job.bad, job.lines, results)
    };
    let progress = |tally: &Tally, events: &mut dyn Events| {
        events.progress(Progress {
            processed: tally.processed,
            done: done(tally.processed),
            unit: "records",
        });
    };
    let mut bad = Vec::new();
    let mut lines = Vec::with_capacity(batch_size);
    let mut requests = Vec::with_capacity(batch_size);
    let mut items = items.peekable();
    while let Some(item) = items.next() {
        match item {
            Ok((line, Ok(request))) => {
                lines.push(line);
                requests.push(request);
            }
            Ok((line, Err(message))) => bad.push((line, message)),
            Err(e) => {
                // What was handed to the pipeline is registered: finish it before stopping.
                while let Some(job) = queue.pop_front() {
                    settle(job, &mut tally)?;
                }
                return Err(e);
            }
        }
        let last = items.peek().is_none();
        if requests.len() == batch_size
            || bad.len() >= batch_size
            || (last && lines.len() + bad.len() > 0)
        {
            let batch = std::mem::replace(&mut requests, Vec::with_capacity(batch_size));
            let p = Arc::clone(pipeline);
            let turn = turns.take();
            let task = runtime.spawn_blocking(move || add_settled(&p, batch, turn));
            queue.push_back(Job {
                bad: std::mem::take(&mut bad),
                lines: std::mem::replace(&mut lines, Vec::with_capacity(batch_size)),
                task,
            });
            if queue.len() >= in_flight
                && let Some(job) = queue.pop_front()
            {
                settle(job, &mut tally)?;
                progress(&tally, events);
            }
        }
    }
    while let Some(job) = queue.pop_front() {
        settle(job, &mut tally)?;
        progress(&tally, events);
    }
    Ok(tally)
}

/// A request line parsed as `add` would take it: values outside the schema are refused here,
/// with the line's number.
fn parse_line(text: &[u8], schema: &Schema) -> Result<Request, String> {
    let text = std::str::from_utf8(text).map_err(|_| "line is not UTF-8 text".to_owned())?;
    let line: RequestLine =
        serde_json::from_str(text).map_err(|e| strip_position(&e.to_string()))?;
    line.into_request(schema, true)
}

/// A JSONL file of requests, opened, counting the bytes read for the progress of a run.
pub struct Input {
    /// How messages name it: its path, or `<stdin>`.
    pub name: String,
    reader: Box<dyn BufRead>,
    /// Its size (a regular file only) and the bytes read so far.
    size: Option<u64>,
    read: Arc<AtomicU64>,
    max: u64,
}

impl Input {
    /// Opens `path` ("-" for standard input); each line is read at most `max` bytes.
    ///
    /// # Errors
    /// The file cannot be opened (exit 1).
    pub fn open(path: &Path, max: u64) -> Result<Input, Error> {
        let is_stdin = path.as_os_str() == "-";
        let name = input::name(path);
        let read = Arc::new(AtomicU64::new(0));
        let (reader, size): (Box<dyn BufRead>, Option<u64>) = if is_stdin {
            (Box::new(BufReader::new(io::stdin())), None)
        } else {
            let file = File::open(path).map_err(|e| {
                Error::input(format!("cannot read {name}: {}", io_reason(&e))).in_file(&name)
            })?;
            let size = file
                .metadata()
                .ok()
                .filter(fs::Metadata::is_file)
                .map(|m| m.len());
            let counting = Counting {
                inner: file,
                read: Arc::clone(&read),
            };
            (Box::new(BufReader::with_capacity(1 << 16, counting)), size)
        };
        Ok(Input {
            name,
            reader,
            size,
            read,
            max,
        })
    }
}

/// What [`batch`] did: the tally, and the summary of the run.
#[derive(Debug)]
pub struct Batched {
    pub tally: Tally,
    pub summary: Summary,
}

impl Batched {
    /// The exit status: see [`Summary::result`].
    ///
    /// # Errors
    /// Some line failed.
    pub fn result(&self, name: &str) -> Result<(), Error> {
        self.summary.result(&self.tally, name)
    }
}

/// Registers every request line of `input` through `pipeline` (see [`register`]), with the
/// pipeline's call timings on and new entries kept out of the cache (a bulk load would only
/// evict what is hot).
///
/// # Errors
/// As [`register`].
pub fn batch(
    pipeline: &Arc<Pipeline>,
    input: Input,
    batch_size: usize,
    results: Option<Results>,
    events: &mut dyn Events,
) -> Result<Batched, Error> {
    pipeline.enable_timings();
    pipeline.set_cache_new_entries(false);
    let Input {
        name,
        reader,
        size,
        read,
        max,
    } = input;
    let lines = Lines {
        lines: BoundedLines::new(reader, max),
        max,
        name,
        schema: pipeline.schema(),
        buf: Vec::new(),
        done: false,
    };
    let done = |_: u64| match size {
        Some(size) if size > 0 => Some(read.load(Ordering::Relaxed) as f64 / size as f64),
        _ => None,
    };
    let start = std::time::Instant::now();
    let options = Options {
        batch_size,
        seed: 0,
    };
    let registered = register(pipeline, lines, options, results, &done, events);
    events.finished();
    let tally = registered?;
    let summary = Summary::new(&tally, pipeline, start.elapsed());
    Ok(Batched { tally, summary })
}

/// Reads a byte stream, counting the bytes read so far for the progress of a run.
struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// The non-blank lines of a stream, parsed, with their 1-based numbers; a line over the size
/// limit is an item that failed, never held in memory.
struct Lines<'s> {
    lines: BoundedLines<Box<dyn BufRead>>,
    max: u64,
    name: String,
    schema: &'s Schema,
    buf: Vec<u8>,
    done: bool,
}

impl Iterator for Lines<'_> {
    type Item = Result<Item, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        while !self.done {
            match self.lines.next_line(&mut self.buf) {
                Ok(None) => self.done = true,
                Ok(Some((line, input::Read::TooLong(bytes)))) => {
                    return Some(Ok((line, Err(input::too_long(bytes, self.max)))));
                }
                Ok(Some((line, input::Read::Line))) => {
                    if self.buf.iter().all(u8::is_ascii_whitespace) {
                        continue;
                    }
                    return Some(Ok((line, parse_line(&self.buf, self.schema))));
                }
                Err(e) => {
                    self.done = true;
                    return Some(Err(Error::input(format!(
                        "{}:{}: cannot read: {}",
                        self.name,
                        self.lines.number() + 1,
                        io_reason(&e)
                    ))
                    .in_file(&self.name)
                    .at_line(self.lines.number() + 1)));
                }
            }
        }
        None
    }
}

/// Returns the allocator's free memory to the system. A long bulk load frees as much as it
/// allocates, but glibc keeps freed blocks in its arenas, and they add up over the run: called
/// every 16 batches, it took the peak RSS of a 1M-entry `scale-test` from 101 to 94 MB at the
/// same speed (100k entries: 70 MB either way).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn release_free_memory() {
    // SAFETY: `malloc_trim` only returns free memory to the system; it is thread-safe.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Returns the allocator's free memory to the system (glibc only; nothing elsewhere).
#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_memory() {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_line_names_what_is_wrong() {
        let schema = Schema::default();
        let check = |line: &str, want: &str| match parse_line(line.as_bytes(), &schema) {
            Ok(r) => assert_eq!(want, format!("ok {}", r.title()), "{line}"),
            Err(e) => assert!(e.contains(want), "{line}: {e} lacks {want}"),
        };
        check(r#"{"title": "Block SSH"}"#, "ok Block SSH");
        check(r#"{"title": "x", "scope": "sec"}"#, "ok x");
        check(
            r#"{"title": "x", "scope": "NOPE"}"#,
            "scope `NOPE` is not in the schema",
        );
        check(
            r#"{"title": "x", "colour": "red"}"#,
            "unknown field `colour`",
        );
        check(r#"{"title": "#, "EOF while parsing");
        check(r#"{"title": ""}"#, "title");
        check("\u{feff}", "expected value");
        assert_eq!(
            parse_line(b"{\"title\": \"\xff\"}", &schema),
            Err("line is not UTF-8 text".to_owned())
        );
    }

    #[test]
    fn failures_are_kept_by_line_up_to_the_cap_and_all_counted() {
        let mut t = Tally::new(1);
        t.settle(vec![(3, "c".into()), (1, "a".into())], vec![], vec![])
            .expect("no results file");
        assert_eq!(
            t.failures.iter().map(|f| f.line).collect::<Vec<_>>(),
            [1, 3]
        );
        for line in 4..(KEPT_FAILURES as u64 + 10) {
            t.settle(vec![(line, "x".into())], vec![], vec![])
                .expect("no results file");
        }
        assert_eq!(t.failures.len(), KEPT_FAILURES);
        assert_eq!(t.failed, KEPT_FAILURES as u64 + 8);
        assert_eq!(t.processed, t.failed);
    }

    #[test]
    fn the_sample_is_uniform_and_keeps_each_entry_with_its_line() {
        let mut t = Tally::new(3);
        let n = (SAMPLE * 4) as u64;
        for line in 1..=n {
            t.created += 1;
            t.keep_in_sample(line, &EntryId::new("SEC-RUL", line));
        }
        assert_eq!(t.sample.len(), SAMPLE);
        assert!(t.sample.iter().all(|(line, id)| id.number() == *line));
        // Each quarter of the lines holds about a quarter of the sample.
        let late = t.sample.iter().filter(|(line, _)| *line > n / 2).count();
        assert!((SAMPLE * 2 / 5..SAMPLE * 3 / 5).contains(&late), "{late}");
    }
}
