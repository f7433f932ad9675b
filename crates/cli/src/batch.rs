//! `registry batch`, `registry scale-test` and `registry stats`: the arguments and the reports.
//! The work is `registry_host::batch`; its progress is drawn by `progress`.

use std::io::{self, Write};
use std::path::PathBuf;
use std::sync::Arc;

use clap::Args;
use registry_host::batch::{self, MAX_BATCH_SIZE, ScaleTest, Stats, Summary};

use crate::config::Settings;
use crate::progress::Progress;
use crate::registry::{Needs, open};
use crate::{CliError, Format, FormatArg, output};

#[derive(Debug, Args)]
pub struct BatchArgs {
    /// JSONL file of requests, one per line, with the fields `add` takes ("-" for standard input)
    #[arg(value_name = "FILE.jsonl")]
    pub(crate) file: PathBuf,
    /// Requests per call to the pipeline (one storage transaction per shard per call)
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..=MAX_BATCH_SIZE))]
    batch_size: u32,
    /// Write the outcome of every line to this file as JSON lines (line, status, id, message),
    /// each batch once it is committed
    #[arg(long, value_name = "FILE.jsonl")]
    pub(crate) results: Option<PathBuf>,
    #[command(flatten)]
    pub(crate) format: FormatArg,
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
    pub(crate) format: FormatArg,
}

/// `registry batch`.
///
/// # Errors
/// Exit 1 when a line failed or the input cannot be read, 2 for configuration and storage.
pub fn batch(args: BatchArgs, settings: &Settings) -> Result<(), CliError> {
    if args.results.as_ref().is_some_and(|p| p.as_os_str() == "-") {
        return Err(CliError::input(
            "--results -: standard output holds the summary; name a file for the results",
        )
        .on_field("--results"));
    }
    let input = batch::Input::open(&args.file, settings.max_record_bytes)?;
    // Checked before the registry is opened: a run refused here changes nothing.
    let results = match &args.results {
        None => None,
        Some(path) => Some(batch::Results::create(path, &[args.file.as_path()])?),
    };
    let pipeline = Arc::new(open(settings, Needs::REGISTER)?);
    let name = input.name.clone();
    let batched = batch::batch(
        &pipeline,
        input,
        args.batch_size as usize,
        results,
        &mut Progress::new(args.format.format),
    )?;
    print(&batched.summary, &name, args.format.format)?;
    batched.result(&name)
}

/// `registry scale-test`; see [`registry_host::batch::scale_test`].
///
/// # Errors
/// Exit 1 when a request fails or the data directory is not empty; 2 for configuration and
/// storage, and when a sampled entry cannot be read back as its request asked.
pub fn scale_test(
    args: ScaleTestArgs,
    settings: Settings,
    data_dir_given: bool,
) -> Result<(), CliError> {
    let test = ScaleTest {
        count: args.count,
        seed: args.seed,
        batch_size: args.batch_size as usize,
        keep: args.keep,
        data_dir_given,
    };
    let scaled = batch::scale_test(settings, &test, &mut Progress::new(args.format.format))?;
    print(&scaled.summary, "<generated>", args.format.format)?;
    scaled.result()
}

/// `registry stats`.
///
/// # Errors
/// Exit 2 when the registry cannot be opened or read, or holds damaged entries (each is named,
/// the others counted).
pub fn stats(args: StatsArgs, settings: &Settings) -> Result<(), CliError> {
    let pipeline = open(settings, Needs::READ)?;
    let mut progress = Progress::new(args.format.format);
    let stats = batch::stats(pipeline, &settings.data_dir, &mut progress)?;
    match args.format.format {
        Format::Json => output::json(&stats)?,
        Format::Text => print_stats(&stats).map_err(output::write_err)?,
    }
    progress.damage.result()
}

#[derive(Debug, Args)]
pub struct CompactArgs {
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry compact`.
///
/// # Errors
/// The registry cannot be opened, or a shard cannot be compacted (exit 2; code `Invalid` of a
/// storage that cannot compact is exit 1).
pub fn compact(args: CompactArgs, settings: &Settings) -> Result<(), CliError> {
    let pipeline = open(settings, Needs::COMPACT)?;
    let done = batch::compact(pipeline, &settings.data_dir)?;
    match args.format.format {
        Format::Json => output::json(&done),
        Format::Text => {
            let mut out = io::stdout().lock();
            let saved = done.bytes_before.saturating_sub(done.bytes_after);
            (|| {
                writeln!(
                    out,
                    "{:<16} {} revisions in {} shards",
                    "rewritten", done.rewritten, done.shards
                )?;
                for (name, bytes) in [
                    ("bytes before", done.bytes_before),
                    ("bytes after", done.bytes_after),
                    ("reclaimed", saved),
                ] {
                    writeln!(out, "{name:<16} {bytes} ({})", mib(bytes))?;
                }
                Ok(())
            })()
            .map_err(output::write_err)
        }
    }
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Read at most this many entries per second, so a live registry keeps serving (0: as fast
    /// as the storage goes)
    #[arg(long, default_value_t = 20_000)]
    pub rate: u64,
    /// When a problem is found, rebuild every index from the entries (and the locations of a
    /// dense registry's entries), then check again; no entry is changed
    #[arg(long)]
    pub repair: bool,
    /// Also hold the registry against an export taken earlier (JSONL or YAML): name each
    /// exported revision now held with another hash (rewritten since) or not held at all
    #[arg(long, value_name = "EXPORT")]
    pub against: Option<PathBuf>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry check`.
///
/// # Errors
/// Exit 1 when a problem is left (each is printed with its shard and id), exit 2 when the
/// registry cannot be opened, a shard cannot be read, or the repair fails.
pub fn check(args: CheckArgs, settings: &Settings) -> Result<(), CliError> {
    let mut progress = Progress::new(args.format.format);
    let checked = batch::check(
        settings,
        args.rate,
        args.repair,
        args.against.as_deref(),
        &mut progress,
    )?;
    match args.format.format {
        Format::Json => output::json(&checked)?,
        Format::Text => {
            let mut out = io::stdout().lock();
            let print = |out: &mut io::StdoutLock<'_>, report: &registry_core::CheckReport| {
                for f in &report.findings {
                    writeln!(out, "shard {}: {}: {}", f.shard, f.code, f.message)?;
                }
                writeln!(
                    out,
                    "checked {} entries ({} revisions) in {} shards: {}",
                    report.entries,
                    report.revisions,
                    report.shards,
                    match report.findings.len() {
                        0 => "no problem found".to_owned(),
                        1 => "1 problem".to_owned(),
                        n => format!("{n} problems"),
                    }
                )
            };
            (|| {
                print(&mut out, &checked.report)?;
                if let (Some(repaired), Some(after)) = (&checked.repaired, &checked.after) {
                    writeln!(
                        out,
                        "repaired: the indexes of {} entries rebuilt, {} locations recorded; \
                         checking again",
                        repaired.reindexed, repaired.placed
                    )?;
                    print(&mut out, after)?;
                }
                if let Some(c) = &checked.against {
                    for d in &c.differences {
                        writeln!(out, "{}:{}: {}: {}", c.export, d.line, d.code, d.message)?;
                    }
                    writeln!(
                        out,
                        "held against {}: {} entries ({} revisions): {}",
                        c.export,
                        c.entries,
                        c.revisions,
                        match c.differences.len() {
                            0 => "every revision as exported".to_owned(),
                            1 => "1 difference".to_owned(),
                            n => format!("{n} differences"),
                        }
                    )?;
                }
                Ok(())
            })()
            .map_err(output::write_err)?;
        }
    }
    match checked.remaining() {
        0 => Ok(()),
        n => Err(CliError::input(format!(
            "the check found {n} {} (named above)",
            if n == 1 { "problem" } else { "problems" }
        ))
        .with_kind("check")),
    }
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Instead of converting the storage format: give every entry whose FIELD is OLD a new
    /// revision with NEW (declared in the schema), history kept and ids unchanged, e.g.
    /// `--rename scope SEC=SECURITY`
    #[arg(long, num_args = 2, value_names = ["FIELD", "OLD=NEW"])]
    pub rename: Option<Vec<String>>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry migrate`.
///
/// # Errors
/// The registry cannot be opened or read, holds damaged entries, or a shard cannot be migrated
/// (exit 2; a re-run finishes an interrupted migration).
pub fn migrate(args: MigrateArgs, settings: &Settings) -> Result<(), CliError> {
    let mut progress = Progress::new(args.format.format);
    if let Some([field, rename]) = args.rename.as_deref() {
        let renamed = batch::rename(settings, field, rename, &mut progress)?;
        return match args.format.format {
            Format::Json => output::json(&renamed),
            Format::Text => writeln!(
                io::stdout().lock(),
                "renamed {} `{}` to `{}` in {} entries (a new revision each)",
                renamed.field,
                renamed.from,
                renamed.to,
                renamed.entries
            )
            .map_err(output::write_err),
        };
    }
    let done = batch::migrate(settings, &mut progress)?;
    match args.format.format {
        Format::Json => output::json(&done),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                if !done.migrated {
                    let format = done.shards.first().map_or(1, |s| s.to);
                    return writeln!(
                        out,
                        "nothing to do: every shard is of storage format {format}, the newest"
                    );
                }
                for s in &done.shards {
                    writeln!(
                        out,
                        "shard {:<10} format {} -> {}, {} revisions rewritten",
                        s.shard, s.from, s.to, s.rewritten
                    )?;
                }
                writeln!(
                    out,
                    "{:<16} {} entries read back identically (blake3 {})",
                    "verified", done.entries, done.digest
                )?;
                for (name, bytes) in [
                    ("bytes before", done.bytes_before),
                    ("bytes after", done.bytes_after),
                ] {
                    writeln!(out, "{name:<16} {bytes} ({})", mib(bytes))?;
                }
                Ok(())
            })()
            .map_err(output::write_err)
        }
    }
}

fn print(summary: &Summary, name: &str, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(summary),
        Format::Text => print_text(summary, name).map_err(output::write_err),
    }
}

fn print_text(s: &Summary, name: &str) -> io::Result<()> {
    let mut out = io::BufWriter::new(io::stdout().lock());
    for f in &s.failures {
        writeln!(out, "{name}:{}: {}", f.line, f.message)?;
    }
    if s.failures_omitted > 0 {
        writeln!(out, "... and {} more", s.failures_omitted)?;
    }
    let row = |out: &mut dyn Write, key: &str, value: String| writeln!(out, "{key:<16} {value}");
    row(&mut out, "processed", s.processed.to_string())?;
    row(&mut out, "created", s.created.to_string())?;
    row(&mut out, "unchanged", s.duplicates.to_string())?;
    row(&mut out, "failed", s.failed.to_string())?;
    row(&mut out, "elapsed", format!("{:.3} s", s.elapsed_s))?;
    row(&mut out, "entries/s", format!("{:.0}", s.entries_per_s))?;
    let rate = s
        .cache_hit_rate
        .map_or_else(|| "-".to_owned(), |r| format!("{:.1}%", r * 100.0));
    row(&mut out, "cache hit rate", rate)?;
    row(
        &mut out,
        "peak rss",
        s.peak_rss_bytes.map_or_else(|| "-".to_owned(), mib),
    )?;
    if let Some(n) = s.shards {
        row(&mut out, "shards", n.to_string())?;
    }
    if let Some(d) = &s.data_dir {
        row(&mut out, "data dir", d.clone())?;
    }
    if let Some(b) = s.bytes_on_disk {
        row(&mut out, "bytes on disk", format!("{b} ({})", mib(b)))?;
    }
    if let Some(b) = s.bytes_per_entry {
        row(&mut out, "bytes/entry", format!("{b:.0}"))?;
    }
    if let Some(n) = s.sample_checked {
        let failed = s.sample_failed.unwrap_or(0);
        row(&mut out, "sample checked", format!("{n} ({failed} failed)"))?;
    }
    if !s.latency.0.is_empty() {
        writeln!(
            out,
            "{:<26} {:>7} {:>9} {:>9} {:>10}",
            "stage call (per batch)", "calls", "p50 us", "p99 us", "total ms"
        )?;
        for (name, l) in &s.latency.0 {
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

pub(crate) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

pub(crate) fn print_stats(s: &Stats) -> io::Result<()> {
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
        ("lifecycle", &s.by_lifecycle),
    ] {
        for (value, n) in counts {
            writeln!(out, "{name:<9} {value:<12} {n:>10}")?;
        }
    }
    Ok(())
}
