//! `registry stamp`: the arguments, and one line per file (or a JSON array). What is stamped and
//! how is `registry_host::stamp`.

use std::io::{self, Write};
use std::path::PathBuf;

use clap::{Args, ValueEnum};
use registry_core::HeaderForm;
use registry_host::stamp::{self, Report, Stamp};

use crate::config::Settings;
use crate::entries::context;
use crate::output::escaped;
use crate::progress::Progress;
use crate::{CliError, FieldArgs, Format, FormatArg};

#[derive(Debug, Args)]
pub struct StampArgs {
    /// Files to stamp, or directories whose files are stamped (walked as `lint` walks them,
    /// honouring .gitignore; files of a kind stamp cannot write into are skipped); a link's
    /// target is stamped if it is inside the link's directory
    #[arg(required = true, value_name = "PATH")]
    files: Vec<PathBuf>,
    /// In directories, stamp only files matching this glob (relative to the directory),
    /// repeatable
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// In directories, leave out files matching this glob, repeatable
    #[arg(long, value_name = "GLOB")]
    exclude: Vec<String>,
    #[command(flatten)]
    fields: FieldArgs,
    /// Version, e.g. v2.9 [default: the schema's]
    #[arg(long)]
    version: Option<String>,
    /// Context for every file, repeatable; `file=<path in the repository>` is added unless given
    #[arg(long, value_name = "KEY=VALUE")]
    context: Vec<String>,
    /// How the header is written
    #[arg(long, value_enum, default_value_t = Form::Readable)]
    form: Form,
    /// Line comment prefix for files whose type has no known comment syntax, e.g. '#'
    #[arg(long, value_name = "PREFIX")]
    comment: Option<String>,
    /// Show the headers that would be written (id number `?`); register and write nothing
    #[arg(long)]
    dry_run: bool,
    /// Also rewrite each header that differs from its registered entry's current header (after
    /// `registry update`), in place; with --dry-run, show what would change
    #[arg(long)]
    refresh: bool,
    #[command(flatten)]
    format: FormatArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Form {
    /// `[SEC][RULES][LIVE][SEC-RUL-042][v2.9][REQUIRED]`
    Readable,
    /// `[sec-rules-live-sec-rul-042-v2.9-required]`
    Grepable,
}

impl From<Form> for HeaderForm {
    fn from(f: Form) -> Self {
        match f {
            Form::Readable => HeaderForm::Readable,
            Form::Grepable => HeaderForm::Grepable,
        }
    }
}

/// Runs `registry stamp`.
///
/// # Errors
/// A bad argument (exit 1) or a pipeline that cannot be opened (exit 2) before any file is
/// touched; afterwards, when a file failed: 1, or 2 when the failure came from configuration,
/// plugins or storage.
pub fn run(args: StampArgs, settings: &Settings) -> Result<(), CliError> {
    let request = Stamp {
        files: args.files,
        fields: args.fields.into(),
        version: args.version,
        context: context(&args.context)?,
        form: args.form.into(),
        comment: args.comment,
        dry_run: args.dry_run,
        refresh: args.refresh,
        refresh_only: false,
        include: args.include,
        exclude: args.exclude,
    };
    let reports = stamp::stamp(settings, request, &mut Progress::new(args.format.format))?;
    print(&reports, args.format.format)?;
    stamp::result(&reports)
}

#[derive(Debug, Args)]
pub struct LinkArgs {
    /// The file to write the header into
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// The registered entry whose header it gets
    #[arg(value_name = "ID")]
    id: String,
    /// How the header is written into a file without one (a header found keeps its form)
    #[arg(long, value_enum, default_value_t = Form::Readable)]
    form: Form,
    /// Line comment prefix for a file whose type has no known comment syntax, e.g. '#'
    #[arg(long, value_name = "PREFIX")]
    comment: Option<String>,
    /// Show what would be written; write nothing
    #[arg(long)]
    dry_run: bool,
    #[command(flatten)]
    format: FormatArg,
}

/// Runs `registry link FILE ID`.
///
/// # Errors
/// A malformed or unregistered id (exit 1), a registry that cannot be opened (exit 2), or a
/// file that cannot be written (exit 1).
pub fn link(args: LinkArgs, settings: &Settings) -> Result<(), CliError> {
    let report = stamp::link(
        settings,
        stamp::Link {
            file: args.file,
            id: args.id,
            form: args.form.into(),
            comment: args.comment,
            dry_run: args.dry_run,
        },
    )?;
    let reports = [report];
    print(&reports, args.format.format)?;
    stamp::result(&reports)
}

fn print(reports: &[Report], format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => crate::output::json(reports),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                for r in reports {
                    let file = &r.shown;
                    match (&r.header, &r.message) {
                        (_, Some(message)) => {
                            writeln!(out, "{} {file}: {}", r.status.name(), escaped(message))?;
                        }
                        (Some(header), None) if r.diff.is_some() => {
                            writeln!(out, "{} {file} {}", r.status.name(), escaped(header))?;
                            // The diff quotes the file as it is: escaped like everything else.
                            for line in r.diff.iter().flat_map(|d| d.lines()) {
                                writeln!(out, "{}", escaped(line))?;
                            }
                        }
                        (Some(header), None) => match &r.was {
                            Some(was) => writeln!(
                                out,
                                "{} {file} {} (was {})",
                                r.status.name(),
                                escaped(header),
                                escaped(was)
                            )?,
                            None => {
                                writeln!(out, "{} {file} {}", r.status.name(), escaped(header))?;
                            }
                        },
                        (None, None) => writeln!(out, "{} {file}", r.status.name())?,
                    }
                }
                Ok(())
            })()
            .map_err(crate::output::write_err)
        }
    }
}
