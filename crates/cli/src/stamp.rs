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
    /// Files to stamp; a link's target is stamped if it is inside the link's directory
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
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
    };
    let reports = stamp::stamp(settings, request, &mut Progress::new(args.format.format))?;
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
                            writeln!(out, "error {file}: {}", escaped(message))?;
                        }
                        (Some(header), None) => {
                            writeln!(out, "{} {file} {}", r.status.name(), escaped(header))?;
                        }
                        (None, None) => writeln!(out, "{} {file}", r.status.name())?,
                    }
                }
                Ok(())
            })()
            .map_err(crate::output::write_err)
        }
    }
}
