//! `registry batch`, `registry scale-test` and `registry stats`: bulk registration and what it
//! costs.
//!
//! `batch` streams a JSONL file of requests (the lines `add` takes) through the pipeline in
//! batches, several at a time: the reading thread parses lines into batches and hands each to a
//! blocking task of a tokio runtime that calls [`Pipeline::add`]; at most twice as many batches
//! as cores are in flight, and the oldest is awaited before another is read, so memory stays
//! bounded whatever the size of the input and results come back in input order. A line that
//! cannot be parsed or registered is reported with its number; every other line is processed.
//! An entry counts as stored only once `add` returned it, which is after the storage committed
//! the batch (one durable transaction per shard per call).
//!
//! `--results FILE` writes one JSON line per input line, `{"line", "status", "id", "message"}`
//! with `status` one of `created`, `duplicate`, `failed`, batch by batch as each is committed (in
//! input order), so a caller can map its inputs to ids, and a line there says `created` only
//! once its entry is durable: after an interruption, every line of the file is in the registry.
//!
//! `scale-test` feeds generated requests through the same code, then reopens the registry and
//! reads a sample back by id, checking each entry's hash. `stats` counts what a registry holds.

mod generate;

use std::collections::{BTreeMap, VecDeque};
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, IsTerminal, Read, Write};
use std::num::NonZero;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Args;
use registry_core::{EntryId, Error, Field, ListQuery, Pipeline, Request, Schema};
use serde::Serialize;
use serde::ser::SerializeMap;

use crate::config::Settings;
use crate::input::{self, BoundedLines};
use crate::registry::{Damage, Needs, io_reason, open};
use crate::{CliError, Format, FormatArg, output};
use registry_host::requests::{RequestLine, strip_position};

/// The most failures kept for the report; the rest are counted only, so that a file of bad
/// lines cannot make the report grow without bound.
const KEPT_FAILURES: usize = 1000;

/// The largest `--batch-size`: memory grows with it (about 24 KiB per request in flight, from
/// 77 MiB at 1,000 to 240 MiB at 10,000 in `cargo xtask bench`, with up to two batches per
/// core in flight), so 100,000 already asks for a few GiB; a larger one would fail by running
/// out of memory rather than say why.
pub const MAX_BATCH_SIZE: i64 = 100_000;

/// How many entries `scale-test` reads back and checks, at most.
const SAMPLE: usize = 1000;

/// The entries `stats` reads per storage call.
const STATS_PAGE: usize = 10_000;

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// JSONL file of requests, one per line, with the fields `add` takes ("-" for standard input)
    #[arg(value_name = "FILE.jsonl")]
    file: PathBuf,
    /// Requests per call to the pipeline (one storage transaction per shard per call)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_SIZE))]
    batch_size: u32,
    /// Write the outcome of every line to this file as JSON lines (line, status, id, message),
    /// each batch once it is committed
    #[arg(long, value_name = "FILE.jsonl")]
    results: Option<PathBuf>,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct ScaleTestArgs {
    /// How many distinct requests to generate and register
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    count: u64,
    /// Seed of the generated requests and of the sample read back: the same seed gives the
    /// same requests
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Requests per call to the pipeline
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_SIZE))]
    batch_size: u32,
    /// Keep the temporary data directory (used when --data-dir is not given) and print its path
    #[arg(long)]
    keep: bool,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    #[command(flatten)]
    format: FormatArg,
}

/// One line that was not registered.
#[derive(Debug, Clone, Serialize)]
struct Failure {
    line: u64,
    message: String,
}

/// A parsed line: its number and the request, or why it is not one.
type Item = (u64, Result<Request, String>);

/// What a run did, added up batch by batch.
#[derive(Debug, Default)]
struct Tally {
    processed: u64,
    created: u64,
    duplicates: u64,
    failed: u64,
    /// The first [`KEPT_FAILURES`] failures, by line.
    failures: Vec<Failure>,
    /// Whether some failure came from configuration, a plugin or storage, not from the line.
    severe: bool,
    /// A uniform sample of the ids created, for `scale-test` to read back.
    sample: Vec<EntryId>,
    rng: generate::Rng,
    /// Where `--results` go, with the file's name for errors.
    results: Option<(io::BufWriter<File>, String)>,
}

/// One line of `--results`.
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
    /// When `--results` cannot be written.
    fn settle(
        &mut self,
        mut bad: Vec<(u64, String)>,
        lines: Vec<u64>,
        results: Vec<Result<Settled, Error>>,
    ) -> Result<(), CliError> {
        self.processed += (bad.len() + lines.len()) as u64;
        let mut stored = Vec::with_capacity(lines.len());
        for (line, result) in lines.into_iter().zip(results) {
            match result {
                Ok(Settled { created, id }) => {
                    if created {
                        self.created += 1;
                        self.keep_in_sample(id.clone());
                    } else {
                        self.duplicates += 1;
                    }
                    stored.push((line, created, id));
                }
                Err(e) => {
                    self.severe |= !e.is_user_error();
                    bad.push((line, e.to_string()));
                }
            }
        }
        bad.sort_by_key(|(line, _)| *line);
        if let Some((out, name)) = &mut self.results {
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
            let written = outcomes.iter().try_for_each(|o| {
                serde_json::to_writer(&mut *out, o).map_err(io::Error::from)?;
                out.write_all(b"\n")
            });
            written
                .and_then(|()| out.flush())
                .map_err(|e| CliError::config(format!("cannot write {name}: {}", io_reason(&e))))?;
        }
        for (line, message) in bad {
            self.fail(line, message);
        }
        Ok(())
    }

    /// Reservoir sampling: after `created` entries, each is in the sample with equal chance.
    fn keep_in_sample(&mut self, id: EntryId) {
        if self.sample.len() < SAMPLE {
            self.sample.push(id);
        } else {
            let j = self.rng.below(self.created);
            if let Some(slot) = usize::try_from(j).ok().and_then(|j| self.sample.get_mut(j)) {
                *slot = id;
            }
        }
    }
}

/// How many settled batches between two returns of free memory to the system.
const TRIM_EVERY: u64 = 16;

/// A batch on its way through the pipeline.
struct Job {
    bad: Vec<(u64, String)>,
    lines: Vec<u64>,
    task: tokio::task::JoinHandle<Vec<Result<Settled, Error>>>,
}

/// What the tally needs of a registered request. The batch's worker thread reduces each
/// [`registry_core::Added`] to this, so the entries are freed there, in parallel, and not on
/// the one thread that reads the input and adds up the results.
struct Settled {
    created: bool,
    id: EntryId,
}

/// Registers a batch and keeps only what the tally needs of each result.
fn add_settled(pipeline: &Pipeline, batch: Vec<Request>) -> Vec<Result<Settled, Error>> {
    pipeline
        .add(batch)
        .into_iter()
        .map(|r| {
            r.map(|added| Settled {
                created: added.created,
                id: added.entry.header.id,
            })
        })
        .collect()
}

/// Runs every item through `pipeline.add`, `batch_size` at a time, with a bounded number of
/// batches in flight; results are added up in input order.
///
/// # Errors
/// When `items` yields an error (the input cannot be read) or the runtime cannot start; the
/// batches before stay registered.
fn register(
    pipeline: &Arc<Pipeline>,
    items: impl Iterator<Item = Result<Item, CliError>>,
    batch_size: usize,
    progress: &mut Progress,
    seed: u64,
    results: Option<(io::BufWriter<File>, String)>,
) -> Result<Tally, CliError> {
    let cores = std::thread::available_parallelism().map_or(1, NonZero::get);
    let in_flight = cores * 2;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores)
        .max_blocking_threads(in_flight)
        .thread_name("registry-batch")
        .build()
        .map_err(|e| CliError::config(format!("cannot start the batch runtime: {e}")))?;
    let mut tally = Tally::new(seed);
    tally.results = results;
    let mut queue: VecDeque<Job> = VecDeque::with_capacity(in_flight);
    let mut settled = 0u64;
    let mut settle = |job: Job, tally: &mut Tally| -> Result<(), CliError> {
        let results = runtime.block_on(job.task).map_err(|e| {
            CliError::config(format!("a batch of the pipeline did not finish: {e}"))
        })?;
        settled += 1;
        if settled.is_multiple_of(TRIM_EVERY) {
            crate::release_free_memory();
        }
        tally.settle(job.bad, job.lines, results)
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
            let task = runtime.spawn_blocking(move || add_settled(&p, batch));
            queue.push_back(Job {
                bad: std::mem::take(&mut bad),
                lines: std::mem::replace(&mut lines, Vec::with_capacity(batch_size)),
                task,
            });
            if queue.len() >= in_flight
                && let Some(job) = queue.pop_front()
            {
                settle(job, &mut tally)?;
                progress.tick(tally.processed);
            }
        }
    }
    while let Some(job) = queue.pop_front() {
        settle(job, &mut tally)?;
        progress.tick(tally.processed);
    }
    progress.clear();
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

/// Reads a byte stream, counting the bytes read so far for the progress line.
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
    type Item = Result<Item, CliError>;

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
                    return Some(Err(CliError::input(format!(
                        "{}:{}: cannot read: {}",
                        self.name,
                        self.lines.number() + 1,
                        io_reason(&e)
                    ))));
                }
            }
        }
        None
    }
}

/// The self-overwriting progress line on a terminal's stderr; nothing otherwise.
struct Progress {
    on: bool,
    start: Instant,
    last: Instant,
    /// The input's size and the bytes read so far, for a regular file.
    bytes: Option<(u64, Arc<AtomicU64>)>,
    /// The number of items expected, when known in advance.
    total: Option<u64>,
    width: usize,
}

impl Progress {
    fn new(bytes: Option<(u64, Arc<AtomicU64>)>, total: Option<u64>) -> Progress {
        let now = Instant::now();
        Progress {
            on: io::stderr().is_terminal(),
            start: now,
            last: now,
            bytes,
            total,
            width: 0,
        }
    }

    fn tick(&mut self, processed: u64) {
        if !self.on || self.last.elapsed() < Duration::from_millis(200) {
            return;
        }
        self.last = Instant::now();
        let secs = self.start.elapsed().as_secs_f64();
        let rate = processed as f64 / secs.max(1e-9);
        let mut text = format!("{processed} processed, {rate:.0} entries/s");
        let done = match (&self.bytes, self.total) {
            (Some((size, read)), _) if *size > 0 => {
                Some(read.load(Ordering::Relaxed) as f64 / *size as f64)
            }
            (_, Some(total)) if total > 0 => Some(processed as f64 / total as f64),
            _ => None,
        };
        if let Some(done) = done {
            let done = done.clamp(0.0, 1.0);
            text.push_str(&format!(", {:.1}%", done * 100.0));
            if done > 0.0 {
                text.push_str(&format!(", eta {:.0} s", secs * (1.0 - done) / done));
            }
        }
        let pad = self.width.saturating_sub(text.len());
        self.width = text.len();
        let _ = write!(io::stderr().lock(), "\r{text}{:pad$}", "");
    }

    fn clear(&mut self) {
        if self.on && self.width > 0 {
            let _ = write!(io::stderr().lock(), "\r{:w$}\r", "", w = self.width);
            self.width = 0;
        }
    }
}

/// Per stage call latencies, serialized as an object keyed by call name, in pipeline order.
struct Latency(Vec<(&'static str, CallLatency)>);

#[derive(Debug, Serialize)]
struct CallLatency {
    calls: u64,
    p50_us: u64,
    p99_us: u64,
    total_us: u64,
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, l) in &self.0 {
            m.serialize_entry(name, l)?;
        }
        m.end()
    }
}

/// The report of `batch` and `scale-test`.
#[derive(Serialize)]
struct Summary {
    processed: u64,
    created: u64,
    duplicates: u64,
    failed: u64,
    elapsed_s: f64,
    entries_per_s: f64,
    /// Per stage call (one call per batch, per shard for storage), not per entry.
    latency: Latency,
    cache_hit_rate: Option<f64>,
    peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shards: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    data_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_on_disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    bytes_per_entry: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_checked: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sample_failed: Option<usize>,
    failures: Vec<Failure>,
    /// Failures counted but not listed (beyond the first 1000).
    #[serde(skip_serializing_if = "is_zero")]
    failures_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    fn new(tally: &Tally, pipeline: &Pipeline, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64();
        let (cache, _) = pipeline.cache_stats();
        let lookups = cache.hits + cache.misses;
        Summary {
            processed: tally.processed,
            created: tally.created,
            duplicates: tally.duplicates,
            failed: tally.failed,
            elapsed_s: round3(secs),
            entries_per_s: (tally.processed as f64 / secs.max(1e-9)).round(),
            latency: Latency(
                pipeline
                    .timings()
                    .into_iter()
                    .map(|t| {
                        (
                            t.call.name(),
                            CallLatency {
                                calls: t.calls,
                                p50_us: t.p50_us,
                                p99_us: t.p99_us,
                                total_us: t.total_us,
                            },
                        )
                    })
                    .collect(),
            ),
            cache_hit_rate: (lookups > 0).then(|| round3(cache.hits as f64 / lookups as f64)),
            peak_rss_bytes: peak_rss(),
            shards: None,
            data_dir: None,
            bytes_on_disk: None,
            bytes_per_entry: None,
            sample_checked: None,
            sample_failed: None,
            failures: tally.failures.clone(),
            failures_omitted: tally.failed - tally.failures.len() as u64,
        }
    }

    fn print(&self, name: &str, format: Format) -> Result<(), CliError> {
        match format {
            Format::Json => output::json(self),
            Format::Text => self.print_text(name).map_err(output::write_err),
        }
    }

    fn print_text(&self, name: &str) -> io::Result<()> {
        let mut out = io::BufWriter::new(io::stdout().lock());
        for f in &self.failures {
            writeln!(out, "{name}:{}: {}", f.line, f.message)?;
        }
        if self.failures_omitted > 0 {
            writeln!(out, "... and {} more", self.failures_omitted)?;
        }
        let row =
            |out: &mut dyn Write, key: &str, value: String| writeln!(out, "{key:<16} {value}");
        row(&mut out, "processed", self.processed.to_string())?;
        row(&mut out, "created", self.created.to_string())?;
        row(&mut out, "duplicates", self.duplicates.to_string())?;
        row(&mut out, "failed", self.failed.to_string())?;
        row(&mut out, "elapsed", format!("{:.3} s", self.elapsed_s))?;
        row(&mut out, "entries/s", format!("{:.0}", self.entries_per_s))?;
        let rate = self
            .cache_hit_rate
            .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
        row(&mut out, "cache hit rate", rate)?;
        row(
            &mut out,
            "peak rss",
            self.peak_rss_bytes.map_or_else(|| "-".to_owned(), mib),
        )?;
        if let Some(s) = self.shards {
            row(&mut out, "shards", s.to_string())?;
        }
        if let Some(d) = &self.data_dir {
            row(&mut out, "data dir", d.clone())?;
        }
        if let Some(b) = self.bytes_on_disk {
            row(&mut out, "bytes on disk", format!("{b} ({})", mib(b)))?;
        }
        if let Some(b) = self.bytes_per_entry {
            row(&mut out, "bytes/entry", format!("{b:.0}"))?;
        }
        if let Some(n) = self.sample_checked {
            let failed = self.sample_failed.unwrap_or(0);
            row(&mut out, "sample checked", format!("{n} ({failed} failed)"))?;
        }
        if !self.latency.0.is_empty() {
            writeln!(
                out,
                "{:<26} {:>7} {:>9} {:>9} {:>10}",
                "stage call (per batch)", "calls", "p50 us", "p99 us", "total ms"
            )?;
            for (name, l) in &self.latency.0 {
                writeln!(
                    out,
                    "{name:<26} {:>7} {:>9} {:>9} {:>10.1}",
                    l.calls,
                    l.p50_us,
                    l.p99_us,
                    l.total_us as f64 / 1000.0
                )?;
            }
        }
        out.flush()
    }

    /// The exit status: 2 when a failure came from configuration, plugins or storage, 1 when
    /// lines failed, else success.
    fn outcome(&self, tally: &Tally, name: &str) -> Result<(), CliError> {
        let message = format!(
            "{} of {} line(s) of {name} failed",
            self.failed, self.processed
        );
        if tally.severe {
            Err(CliError::config(format!(
                "{message}, some for a storage or plugin error: registering the file again \
                 completes it"
            )))
        } else if self.failed > 0 {
            Err(CliError::input(message))
        } else {
            Ok(())
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

/// The process's peak resident set size, from `VmHWM` in /proc/self/status (Linux only).
fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The total size of the files under `dir`.
fn bytes_on_disk(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_on_disk(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

/// `registry batch`.
///
/// # Errors
/// Exit 1 when a line failed or the input cannot be read, 2 for configuration and storage.
pub fn batch(args: BatchArgs, settings: &Settings) -> Result<(), CliError> {
    let is_stdin = args.file.as_os_str() == "-";
    let name = if is_stdin {
        "<stdin>".to_owned()
    } else {
        args.file.display().to_string()
    };
    let read = Arc::new(AtomicU64::new(0));
    let (reader, size): (Box<dyn BufRead>, Option<u64>) = if is_stdin {
        (Box::new(BufReader::new(io::stdin())), None)
    } else {
        let file = File::open(&args.file)
            .map_err(|e| CliError::input(format!("cannot read {name}: {}", io_reason(&e))))?;
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
    // Checked before the registry is opened: a run refused here changes nothing.
    let results = match &args.results {
        None => None,
        Some(path) => {
            let file = input::create_output(path, &[args.file.as_path()])?;
            Some((io::BufWriter::new(file), path.display().to_string()))
        }
    };
    let pipeline = Arc::new(open(settings, Needs::REGISTER)?);
    pipeline.enable_timings();
    pipeline.set_cache_new_entries(false);
    let lines = Lines {
        lines: BoundedLines::new(reader, settings.max_record_bytes),
        max: settings.max_record_bytes,
        name: name.clone(),
        schema: pipeline.schema(),
        buf: Vec::new(),
        done: false,
    };
    let mut progress = Progress::new(size.map(|s| (s, read)), None);
    let start = Instant::now();
    let tally = register(
        &pipeline,
        lines,
        args.batch_size as usize,
        &mut progress,
        0,
        results,
    )?;
    let summary = Summary::new(&tally, &pipeline, start.elapsed());
    summary.print(&name, args.format.format)?;
    summary.outcome(&tally, &name)
}

/// A data directory made for one run, removed when dropped unless kept.
struct Scratch {
    path: PathBuf,
    keep: bool,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// `registry scale-test`. Without `--data-dir` (the global flag) the requests go to a new
/// directory under the system's temporary directory, removed at the end unless `--keep`; with
/// it, the directory must be new or empty, so that every request is a new entry and the figures
/// measure registration, not lookups.
///
/// # Errors
/// Exit 1 when a request fails or a sampled entry cannot be read back intact, or the data
/// directory is not empty; 2 for configuration and storage.
pub fn scale_test(
    args: ScaleTestArgs,
    mut settings: Settings,
    data_dir_given: bool,
) -> Result<(), CliError> {
    let _scratch = if data_dir_given {
        let dir = &settings.data_dir;
        if fs::read_dir(dir).is_ok_and(|mut d| d.next().is_some()) {
            return Err(CliError::input(format!(
                "data directory {} is not empty: scale-test needs a new or empty one, or no \
                 --data-dir for a temporary one",
                dir.display()
            )));
        }
        None
    } else {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let path = std::env::temp_dir().join(format!(
            "registry-scale-test-{}-{nanos}",
            std::process::id()
        ));
        fs::create_dir(&path).map_err(|e| {
            CliError::config(format!(
                "cannot create data directory {}: {}",
                path.display(),
                io_reason(&e)
            ))
        })?;
        settings.data_dir = path.clone();
        Some(Scratch {
            path,
            keep: args.keep,
        })
    };

    let pipeline = Arc::new(open(&settings, Needs::REGISTER)?);
    pipeline.enable_timings();
    pipeline.set_cache_new_entries(false);
    let generator = generate::Requests::new(args.seed, args.count, pipeline.schema());
    let mut progress = Progress::new(None, Some(args.count));
    let start = Instant::now();
    let tally = register(
        &pipeline,
        generator.map(Ok),
        args.batch_size as usize,
        &mut progress,
        args.seed,
        None,
    )?;
    let mut summary = Summary::new(&tally, &pipeline, start.elapsed());
    summary.shards = Some(pipeline.shards());
    drop(pipeline);

    // A new pipeline has an empty cache: the sample is read from the storage files.
    let pipeline = open(&settings, Needs::READ)?;
    let mut sample_failed = 0;
    for id in &tally.sample {
        match pipeline.get(id) {
            Ok(e) if e.header.id == *id && e.verify() => {}
            Ok(_) => sample_failed += 1,
            Err(_) => sample_failed += 1,
        }
    }
    drop(pipeline);
    let bytes = bytes_on_disk(&settings.data_dir);
    summary.bytes_on_disk = Some(bytes);
    summary.bytes_per_entry =
        (tally.created > 0).then(|| (bytes as f64 / tally.created as f64).round());
    summary.sample_checked = Some(tally.sample.len());
    summary.sample_failed = Some(sample_failed);
    if data_dir_given || args.keep {
        summary.data_dir = Some(settings.data_dir.display().to_string());
    }
    summary.print("<generated>", args.format.format)?;
    summary.outcome(&tally, "the generated requests")?;
    if sample_failed > 0 {
        return Err(CliError::config(format!(
            "{sample_failed} of {} sampled entries could not be read back intact",
            tally.sample.len()
        )));
    }
    Ok(())
}

/// What `stats` reports.
#[derive(Serialize)]
struct Stats {
    /// Entries that pass their hash check; a damaged one is reported and not counted.
    entries: u64,
    shards: usize,
    by_scope: BTreeMap<String, u64>,
    by_type: BTreeMap<String, u64>,
    by_variant: BTreeMap<String, u64>,
    by_status: BTreeMap<String, u64>,
    bytes_on_disk: u64,
    bytes_per_entry: Option<f64>,
}

/// `registry stats`: reads every entry, page by page.
///
/// # Errors
/// Exit 2 when the registry cannot be opened or read.
pub fn stats(args: StatsArgs, settings: &Settings) -> Result<(), CliError> {
    let pipeline = open(settings, Needs::READ)?;
    let mut counts: [BTreeMap<String, u64>; 4] = Default::default();
    let mut entries = 0u64;
    let mut query = ListQuery {
        limit: STATS_PAGE,
        ..ListQuery::default()
    };
    let mut damaged = Damage::default();
    loop {
        let page = pipeline.list(&query)?;
        damaged.report(&page.damaged);
        for e in &page.entries {
            entries += 1;
            for (i, f) in Field::ALL.iter().enumerate() {
                *counts[i].entry(e.header.fields[*f].clone()).or_default() += 1;
            }
        }
        let Some(next) = page.next else { break };
        query.after = Some(next);
    }
    let shards = pipeline.shards();
    drop(pipeline);
    let bytes = bytes_on_disk(&settings.data_dir);
    let [by_scope, by_type, by_variant, by_status] = counts;
    let stats = Stats {
        entries,
        shards,
        by_scope,
        by_type,
        by_variant,
        by_status,
        bytes_on_disk: bytes,
        bytes_per_entry: (entries > 0).then(|| (bytes as f64 / entries as f64).round()),
    };
    match args.format.format {
        Format::Json => output::json(&stats)?,
        Format::Text => print_stats(&stats).map_err(output::write_err)?,
    }
    damaged.result()
}

fn print_stats(s: &Stats) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{:<16} {}", "entries", s.entries)?;
    writeln!(out, "{:<16} {}", "shards", s.shards)?;
    writeln!(
        out,
        "{:<16} {} ({})",
        "bytes on disk",
        s.bytes_on_disk,
        mib(s.bytes_on_disk)
    )?;
    if let Some(b) = s.bytes_per_entry {
        writeln!(out, "{:<16} {b:.0}", "bytes/entry")?;
    }
    for (name, counts) in [
        ("scope", &s.by_scope),
        ("type", &s.by_type),
        ("variant", &s.by_variant),
        ("status", &s.by_status),
    ] {
        for (value, n) in counts {
            writeln!(out, "{name:<8} {value:<12} {n:>10}")?;
        }
    }
    Ok(())
}

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
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().is_some_and(|b| b > 0));
        }
    }
}
