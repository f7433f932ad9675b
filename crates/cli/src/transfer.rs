//! `registry export` and `registry import`: the arguments, and how the outcome is shown. What a
//! record holds and how files are read and written is `registry_host::transfer`.

use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use registry_host::transfer::{self, Failure, Imported, Source, Summary};
use serde::Serialize;

use crate::config::Settings;
use crate::progress::Progress;
use crate::registry::{Needs, open};
use crate::{CliError, Format, FormatArg, output};

/// The format of an export file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum FileFormat {
    /// One JSON object per line
    #[default]
    Jsonl,
    /// A stream of YAML documents, one per entry
    Yaml,
}

impl From<FileFormat> for transfer::FileFormat {
    fn from(f: FileFormat) -> Self {
        match f {
            FileFormat::Jsonl => transfer::FileFormat::Jsonl,
            FileFormat::Yaml => transfer::FileFormat::Yaml,
        }
    }
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File format
    #[arg(long, value_enum, default_value_t = FileFormat::Jsonl)]
    pub(crate) format: FileFormat,
    /// Export only the entries of this scope (repeatable)
    #[arg(long, value_name = "SCOPE")]
    pub(crate) scope: Vec<String>,
    /// Write to this file instead of standard output ("-" for standard output); it is replaced
    /// whole once the export is complete, never left half-written
    #[arg(long, short, value_name = "FILE")]
    pub(crate) output: Option<PathBuf>,
    /// Also write who made each revision, from where (`author`: the audit record of each
    /// write; `import` keeps it)
    #[arg(long)]
    pub(crate) audit: bool,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// Exported entries or plain requests, as JSONL or YAML ("-" for standard input)
    pub(crate) file: PathBuf,
    /// Check every record first and import nothing unless all of them are good
    #[arg(long)]
    pub(crate) atomic: bool,
    #[command(flatten)]
    pub(crate) format: FormatArg,
}

/// `registry export`.
///
/// # Errors
/// An unknown scope (exit 1), an output file that cannot be created (exit 1), or a storage or
/// write failure (exit 2); a file named by `--output` is then left as it was.
pub fn export(args: ExportArgs, settings: &Settings) -> Result<(), CliError> {
    let scopes = transfer::check_scopes(&args.scope, &settings.schema)?;
    let pipeline = open(settings, Needs::READ)?;
    // The export's own format is a file format: standard error is text.
    let mut progress = Progress::new(Format::Text);
    let format = args.format.into();
    match args.output.as_ref().filter(|p| p.as_os_str() != "-") {
        None => {
            let mut out = BufWriter::new(io::stdout().lock());
            transfer::export(
                &pipeline,
                &scopes,
                format,
                args.audit,
                &mut out,
                &output::write_err,
                &mut progress,
            )?;
            out.flush().map_err(output::write_err)?;
        }
        Some(path) => {
            transfer::export_file(&pipeline, &scopes, format, args.audit, path, &mut progress)?;
        }
    }
    progress.damage.result()
}

/// `registry import`: each failed record is printed as it is found (text) or listed in the
/// summary (JSON).
///
/// # Errors
/// Exit 1 when the file cannot be read or any record failed (each is reported, the others are
/// imported; with `--atomic`, none is); exit 2 when a stage fails as a whole, in which case the
/// batches before it stay imported.
pub fn import(args: ImportArgs, settings: &Settings) -> Result<(), CliError> {
    let source = Source::open(&args.file, settings.max_record_bytes, args.atomic)?;
    let pipeline = open(settings, Needs::REGISTER)?;
    let format = args.format.format;
    let name = source.name().to_owned();
    let mut kept = Vec::new();
    let mut progress = Progress::new(format);
    let imported = transfer::import(
        &pipeline,
        source,
        &mut |failures| match format {
            Format::Json => {
                kept.extend(failures);
                Ok(())
            }
            Format::Text => print_failures(&name, &failures),
        },
        &mut progress,
    )?;
    finish(&imported, kept, format)
}

/// Failures as text, one line each: `FILE:LINE: [ID: ]MESSAGE`.
pub(crate) fn print_failures(name: &str, failures: &[Failure]) -> Result<(), CliError> {
    let mut out = io::stdout().lock();
    for f in failures {
        let text = match &f.id {
            Some(id) if !f.message.contains(id.as_str()) => {
                format!("{name}:{}: {id}: {}", f.line, f.message)
            }
            _ => format!("{name}:{}: {}", f.line, f.message),
        };
        writeln!(out, "{text}").map_err(output::write_err)?;
    }
    Ok(())
}

/// The summary as JSON: the counts, then every failure.
#[derive(Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    summary: &'a Summary,
    failures: Vec<Failure>,
}

pub(crate) fn finish(
    imported: &Imported,
    failures: Vec<Failure>,
    format: Format,
) -> Result<(), CliError> {
    let s = &imported.summary;
    match format {
        Format::Json => output::json(&Report {
            summary: s,
            failures,
        })?,
        Format::Text => {
            // Entries restored from an export and entries registered from plain requests are
            // both created; JSON tells them apart (`imported`, `added`).
            let from_requests = match s.added {
                0 => String::new(),
                n => format!(" ({n} from requests)"),
            };
            writeln!(
                io::stdout().lock(),
                "created {}{from_requests}, unchanged {}, failed {}",
                s.imported + s.added,
                s.unchanged,
                s.failed
            )
            .map_err(output::write_err)?
        }
    }
    imported.result()
}
