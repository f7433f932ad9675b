//! `registry audit` (who wrote what, when, from where) and `registry diff` (what changed
//! between two revisions): `registry_host::audit` and `registry_host::diff`, shown.

use std::io::Write as _;

use clap::Args;
use registry_core::Timestamp;
use registry_host::text::escaped;

use crate::config::Settings;
use crate::entries::parse_id;
use crate::progress::Progress;
use crate::registry::{Needs, open};
use crate::{CliError, Format, FormatArg, output};

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only writes at or after this instant: RFC 3339 in UTC, a date, or a time ago (24h, 7d)
    #[arg(long, value_name = "WHEN")]
    pub(crate) since: Option<String>,
    /// Only writes by this author (a token's name, or a user of the command line)
    #[arg(long, value_name = "NAME")]
    pub(crate) actor: Option<String>,
    /// Only writes of this entry
    #[arg(long, value_name = "ID")]
    pub(crate) id: Option<String>,
    #[command(flatten)]
    pub(crate) format: FormatArg,
}

/// `registry audit`: one line (or JSON object) per write, oldest first.
///
/// # Errors
/// A malformed `--since` or `--id`, or an unknown id (exit 1); storage failing, or damaged
/// entries met (named, left out: exit 2).
pub fn audit(args: AuditArgs, settings: &Settings) -> Result<(), CliError> {
    let since = args
        .since
        .as_deref()
        .map(|s| Timestamp::parse_instant(s, Timestamp::now()))
        .transpose()
        .map_err(|why| CliError::input(format!("--since: {why}")).on_field("since"))?;
    let id = args.id.as_deref().map(parse_id).transpose()?;
    let query = registry_host::audit::Query {
        since,
        actor: args.actor,
        id,
        scopes: Vec::new(),
    };
    let pipeline = open(settings, Needs::READ)?;
    let mut progress = Progress::new(args.format.format);
    let (records, _) = registry_host::audit::read(&pipeline, &query, &mut progress)?;
    print_records(&records, args.format.format)?;
    progress.damage.result()
}

/// The audit records, one line or JSON object each.
pub(crate) fn print_records(
    records: &[registry_host::audit::Record],
    format: Format,
) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(&records)?,
        Format::Text => {
            let mut out = std::io::stdout().lock();
            (|| {
                for r in records {
                    let revisions = match r.revision_before {
                        Some(b) if b != r.revision_after => format!("{b}->{}", r.revision_after),
                        Some(_) | None => r.revision_after.to_string(),
                    };
                    write!(out, "{}  {:<8} {} rev {revisions}", r.at, r.action, r.id)?;
                    match (&r.actor, &r.origin) {
                        (Some(actor), Some(origin)) => {
                            write!(out, "  by {} from {}", escaped(actor), escaped(origin))?;
                        }
                        _ if r.action != "purged" => write!(out, "  by (not recorded)")?,
                        _ => {}
                    }
                    if let Some(request) = &r.request {
                        write!(out, "  request {}", escaped(request))?;
                    }
                    if let Some(detail) = &r.detail {
                        write!(out, "  {}", escaped(detail))?;
                    }
                    writeln!(out)?;
                }
                Ok(())
            })()
            .map_err(output::write_err)?;
        }
    }
    Ok(())
}

#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Entry id, e.g. SEC-RUL-042
    pub(crate) id: String,
    /// The revision to compare from [default: the one before --to]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) from: Option<u32>,
    /// The revision to compare to [default: the latest]
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub(crate) to: Option<u32>,
    #[command(flatten)]
    pub(crate) format: FormatArg,
}

/// `registry diff ID`: the fields that changed, then the config as a unified diff.
///
/// # Errors
/// A malformed or unknown id, or a revision the entry does not have (exit 1); storage failing.
pub fn diff(args: DiffArgs, settings: &Settings) -> Result<(), CliError> {
    let id = parse_id(&args.id)?;
    let pipeline = open(settings, Needs::READ)?;
    let diff = registry_host::diff::diff(&pipeline, &id, args.from, args.to)?;
    print_diff(&diff, args.format.format)
}

/// The changed fields and the config's unified diff, or the diff as JSON.
pub(crate) fn print_diff(diff: &registry_host::diff::Diff, format: Format) -> Result<(), CliError> {
    match format {
        Format::Json => output::json(&diff),
        Format::Text => {
            let mut out = std::io::stdout().lock();
            (|| {
                writeln!(out, "{} revision {} -> {}", diff.id, diff.from, diff.to)?;
                for c in &diff.changes {
                    let show = |v: &Option<String>| {
                        v.as_deref()
                            .map_or_else(|| "(none)".to_owned(), |v| escaped(v).into_owned())
                    };
                    writeln!(
                        out,
                        "{}: {} -> {}",
                        c.field,
                        show(&c.before),
                        show(&c.after)
                    )?;
                }
                if !diff.config.is_empty() {
                    out.write_all(diff.config.as_bytes())?;
                }
                Ok(())
            })()
            .map_err(output::write_err)
        }
    }
}
