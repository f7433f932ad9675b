//! `registry lint PATH...`: the arguments, and the report as text (one diagnostic per line,
//! `file:line:column: severity code message`, escaped), JSON (`{"summary", "findings"}`), SARIF
//! 2.1.0 or JUnit XML. What is looked at and what is reported, and the SARIF and JUnit
//! documents, are `registry_host::lint`.

use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use clap::{Args, ValueEnum};
use registry_host::lint::{self, Level, Report, parse_size, shown};
use serde::Serialize;

use crate::config::Settings;
use crate::output::{self, escaped, escaped_path, write_err};
use crate::progress::Progress;
use crate::{CliError, Format};

/// What `registry lint` prints on standard output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LintFormat {
    /// One line per diagnostic, `file:line:column: severity code message`
    Text,
    /// One object: `summary` (the counts) and `findings` (one object per diagnostic)
    Json,
    /// SARIF 2.1.0, for code-scanning services
    Sarif,
    /// JUnit XML, for CI test reports: a test case per file, a failure per error
    Junit,
}

#[derive(Debug, Args)]
pub struct LintArgs {
    /// Files and directories to check
    #[arg(required_unless_present = "explain", value_name = "PATH")]
    paths: Vec<PathBuf>,
    /// Say what a lint code means, its severity and how to fix it, and check nothing
    #[arg(long, value_name = "CODE", conflicts_with = "paths")]
    explain: Option<String>,
    /// Also check each header against its registered entry
    #[arg(long)]
    pub(crate) registered: bool,
    /// First rewrite each header that differs from its registered entry's (as `stamp
    /// --refresh` does), saying so on stderr, then check
    #[arg(long)]
    pub(crate) fix: bool,
    /// Look for headers in the first N lines of each file
    #[arg(
        long,
        value_name = "N",
        default_value_t = 20,
        value_parser = clap::value_parser!(u32).range(1..=1_000_000)
    )]
    lines: u32,
    /// Skip larger files, with a note: bytes, or a number with K, M or G (powers of 1024)
    #[arg(long, value_name = "SIZE", default_value = "10M", value_parser = parse_size)]
    max_file_size: u64,
    /// Follow symbolic links
    #[arg(long, short = 'L')]
    follow: bool,
    /// Threads walking and checking [default: one per CPU]
    #[arg(long, short = 'j', value_name = "N")]
    threads: Option<usize>,
    /// Report only these codes (comma-separated; `--explain CODE` describes each)
    #[arg(long, value_name = "CODE,...", value_delimiter = ',')]
    select: Vec<String>,
    /// Never report these codes (comma-separated)
    #[arg(long, value_name = "CODE,...", value_delimiter = ',')]
    ignore: Vec<String>,
    /// A file searched without a header is an error (`missing-header`)
    #[arg(long)]
    require_header: bool,
    /// Output format
    #[arg(long, value_enum, default_value_t = LintFormat::Text)]
    format: LintFormat,
}

/// Runs `registry lint`; exits with code 1 when an error was found.
///
/// # Errors
/// A PATH that does not exist (exit 1); a validator, storage or configuration problem (exit 2).
pub fn run(args: LintArgs, settings: &Settings) -> Result<(), CliError> {
    let format = args.format;
    if let Some(code) = &args.explain {
        return explain(code, format);
    }
    if args.fix {
        fix(&args.paths, settings)?;
    }
    let options = lint::Options {
        paths: args.paths,
        registered: args.registered,
        lines: args.lines as usize,
        max_file_size: args.max_file_size,
        follow: args.follow,
        threads: args.threads,
        select: (!args.select.is_empty()).then_some(args.select),
        ignore: args.ignore,
        require_header: args.require_header,
    };
    // Only `--format json` makes standard error JSON lines; SARIF and JUnit are documents of
    // their own on standard output, and standard error stays text.
    let stderr = match format {
        LintFormat::Json => Format::Json,
        _ => Format::Text,
    };
    let report = lint::lint(settings, &options, &mut Progress::new(stderr))?;
    print(&report, format)?;
    if report.count(Level::Error) > 0 {
        // The diagnostics are the report: an `error:` line after them would only repeat the
        // summary. Everything is written and flushed, and nothing is left open but plugins,
        // which are never unloaded anyway.
        std::process::exit(1);
    }
    Ok(())
}

/// `--explain CODE`: the code's entry of `docs/LINT.md`, from the same list.
fn explain(code: &str, format: LintFormat) -> Result<(), CliError> {
    let Some(entry) = lint::codes::explain(code) else {
        return Err(CliError::input(format!(
            "unknown lint code `{}`: docs/LINT.md lists every code",
            escaped(code)
        )));
    };
    match format {
        LintFormat::Json => output::json(entry),
        _ => {
            let origin = match entry.origin {
                lint::codes::Origin::Lint => "lint",
                lint::codes::Origin::Validator => "the validator plugin",
            };
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "{} ({}, reported by {origin})\n{}\nfix: {}",
                entry.code,
                entry.severity.name(),
                entry.summary,
                entry.fix
            )
            .map_err(write_err)
        }
    }
}

/// A path as shown in text output: [`shown`], with control characters and bytes that are not
/// UTF-8 escaped ([`escaped_path`]), so that a file name cannot forge a line of output.
fn shown_escaped(path: &Path) -> String {
    escaped_path(lint::relative(path))
}

fn plural(n: impl Into<u64>, one: &str, many: &str) -> String {
    let n = n.into();
    format!("{n} {}", if n == 1 { one } else { many })
}

/// One diagnostic as JSON.
#[derive(Serialize)]
struct JsonDiagnostic<'a> {
    file: &'a str,
    line: Option<u32>,
    column: Option<u32>,
    severity: Level,
    code: &'a str,
    message: &'a str,
}

fn print(report: &Report, format: LintFormat) -> Result<(), CliError> {
    let mut out = BufWriter::with_capacity(64 * 1024, io::stdout().lock());
    match format {
        LintFormat::Text => {
            for d in &report.diagnostics {
                // The message may quote another path or a value read from the file.
                let file = shown_escaped(&report.paths[d.file]);
                let message = escaped(&d.message);
                let written = match (d.line, d.column) {
                    (Some(line), Some(column)) => writeln!(
                        out,
                        "{file}:{line}:{column}: {} {} {message}",
                        d.severity.name(),
                        d.code
                    ),
                    _ => writeln!(out, "{file}: {} {} {message}", d.severity.name(), d.code),
                };
                written.map_err(write_err)?;
            }
        }
        LintFormat::Json => {
            // The summary first, then one finding per line, as readable and diffable as
            // the array this replaced.
            out.write_all(b"{\"summary\":").map_err(write_err)?;
            serde_json::to_writer(&mut out, &report.summary()).map_err(output::json_err)?;
            out.write_all(b",\"findings\":[").map_err(write_err)?;
            for (i, d) in report.diagnostics.iter().enumerate() {
                out.write_all(if i == 0 { b"\n" } else { b",\n" })
                    .map_err(write_err)?;
                let file = shown(&report.paths[d.file]);
                let json = JsonDiagnostic {
                    file: &file,
                    line: d.line,
                    column: d.column,
                    severity: d.severity,
                    code: &d.code,
                    message: &d.message,
                };
                serde_json::to_writer(&mut out, &json).map_err(output::json_err)?;
            }
            let end: &[u8] = if report.diagnostics.is_empty() {
                b"]}\n"
            } else {
                b"\n]}\n"
            };
            out.write_all(end).map_err(write_err)?;
        }
        LintFormat::Sarif => {
            let cwd = std::env::current_dir().ok();
            let log = lint::sarif(report, cwd.as_deref());
            serde_json::to_writer_pretty(&mut out, &log).map_err(output::json_err)?;
            out.write_all(b"\n").map_err(write_err)?;
        }
        LintFormat::Junit => {
            out.write_all(lint::junit(report).as_bytes())
                .map_err(write_err)?;
        }
    }
    out.flush().map_err(write_err)?;
    drop(out);
    if format != LintFormat::Json && !output::quiet() {
        let summary = format!(
            "{} scanned, {} found, {}, {}, {}, {} skipped",
            plural(report.scanned, "file", "files"),
            plural(report.headers as u64, "header", "headers"),
            plural(report.count(Level::Error) as u64, "error", "errors"),
            plural(report.count(Level::Warning) as u64, "warning", "warnings"),
            plural(report.count(Level::Note) as u64, "note", "notes"),
            plural(report.skipped, "file", "files"),
        );
        let mut err = io::stderr().lock();
        writeln!(err, "{summary}").map_err(write_err)?;
    }
    Ok(())
}

/// `--fix`: rewrites stale headers under `paths` from the registered entries, one `fixed` line
/// each on stderr.
///
/// # Errors
/// A registry that cannot be opened, or a header that could not be rewritten.
fn fix(paths: &[PathBuf], settings: &Settings) -> Result<(), CliError> {
    let request = registry_host::stamp::Stamp {
        files: paths.to_vec(),
        fields: registry_core::Fields::default(),
        version: None,
        context: registry_core::Context::default(),
        form: registry_core::HeaderForm::Readable,
        comment: None,
        dry_run: false,
        refresh: true,
        refresh_only: true,
        include: Vec::new(),
        exclude: Vec::new(),
    };
    let reports =
        registry_host::stamp::stamp(settings, request, &mut registry_host::events::Quiet)?;
    for r in &reports {
        if r.status == registry_host::stamp::Status::Refreshed
            && let Some(header) = &r.header
        {
            crate::output::note_line(&format!(
                "fixed {} {} (was {})",
                r.shown,
                crate::output::escaped(header),
                crate::output::escaped(r.was.as_deref().unwrap_or(""))
            ));
        }
    }
    let failed: Vec<_> = reports
        .iter()
        .filter(|r| r.status == registry_host::stamp::Status::Error && r.was.is_some())
        .collect();
    match failed.first() {
        None => Ok(()),
        Some(r) => Err(CliError::input(format!(
            "cannot fix {}: {}",
            r.shown,
            crate::output::escaped(r.message.as_deref().unwrap_or("failed"))
        ))),
    }
}
