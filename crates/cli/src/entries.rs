//! `registry add`, `get`, `list`, `update` and `history`: one entry at a time, or a listing.

use clap::Args;
use registry_core::{
    Changes, Context, EntryId, Error, Fields, Lifecycle, ListQuery, Pipeline, Request,
};

use crate::config::Settings;
use crate::registry::{Damage, Needs, open};
use crate::{CliError, FieldArgs, FormatArg, output};

/// The most entries `list` reads from storage per call; larger listings are paged.
const LIST_PAGE: usize = 1000;

#[derive(Debug, Args)]
pub struct AddArgs {
    /// Title: one line of text, at most 1 KiB
    #[arg(long)]
    pub title: String,
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Version, e.g. v2.9 [default: the schema's]
    #[arg(long)]
    pub version: Option<String>,
    /// Free-form context, repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// Entry id, e.g. SEC-RUL-042
    pub id: String,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    pub fields: FieldArgs,
    /// Also list retired entries and entries merged into others
    #[arg(long)]
    pub all: bool,
    /// Show at most this many entries
    #[arg(long)]
    pub limit: Option<usize>,
    /// Start after this id
    #[arg(long, value_name = "ID")]
    pub after: Option<String>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// Entry id, e.g. SEC-RUL-042
    pub id: String,
    #[arg(long)]
    pub title: Option<String>,
    #[arg(long)]
    pub variant: Option<String>,
    #[arg(long)]
    pub status: Option<String>,
    #[arg(long)]
    pub version: Option<String>,
    /// Context to set, repeatable
    #[arg(long, value_name = "KEY=VALUE")]
    pub context: Vec<String>,
    /// Context key to remove, repeatable (the entry must have it)
    #[arg(long, value_name = "KEY")]
    pub unset_context: Vec<String>,
    /// Update only if the entry is at this revision (as `get` or `history` shows it); else fail
    /// with a conflict, changing nothing
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub if_revision: Option<u32>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry add`.
///
/// # Errors
/// A bad request (exit 1), or a stage failing (exit 2).
pub fn add(args: AddArgs, settings: &Settings) -> Result<(), CliError> {
    let request = Request::new(
        &args.title,
        args.fields.into(),
        args.version,
        context(&args.context)?,
    )?;
    let pipeline = open(settings, Needs::REGISTER)?;
    let added = pipeline.add_one(request)?;
    output::added(&added, args.format.format)
}

/// `registry get`.
///
/// # Errors
/// A malformed or unknown id (exit 1), or a stage failing (exit 2).
pub fn get(args: IdArgs, settings: &Settings) -> Result<(), CliError> {
    let id = parse_id(&args.id)?;
    let pipeline = open(settings, Needs::READ)?;
    output::entry(&pipeline.get(&id)?, args.format.format)
}

/// `registry history`.
///
/// # Errors
/// A malformed or unknown id (exit 1), or a stage failing (exit 2).
pub fn history(args: IdArgs, settings: &Settings) -> Result<(), CliError> {
    let id = parse_id(&args.id)?;
    let pipeline = open(settings, Needs::READ)?;
    output::history(&pipeline.history(&id)?, args.format.format)
}

/// `registry list`: pages through storage, printing as it goes; a damaged entry is named on
/// stderr, the others listed, and the exit code is then 2.
///
/// # Errors
/// A filter value outside the schema or a malformed `--after` (exit 1), or a stage failing.
pub fn list(args: ListArgs, settings: &Settings) -> Result<(), CliError> {
    let filter: Fields<Option<String>> = args.fields.into();
    for (field, value) in filter.iter() {
        if let Some(v) = value
            && settings.schema.canonical(field, v).is_none()
        {
            return Err(CliError::input(format!(
                "unknown {field} `{v}`: allowed values are {}",
                settings.schema.allowed(field).join(", ")
            ))
            .with_kind(format!("unknown-{field}"))
            .on_field(field.name()));
        }
    }
    let after = args.after.as_deref().map(parse_id).transpose()?;
    let pipeline = open(settings, Needs::READ)?;
    let mut lister = output::Lister::new(args.format.format);
    let mut remaining = args.limit.unwrap_or(usize::MAX);
    let mut query = ListQuery {
        filter,
        after,
        limit: LIST_PAGE.min(remaining),
    };
    let mut damaged = Damage::default();
    while remaining > 0 {
        let mut page = pipeline.list(&query)?;
        if !args.all {
            page.entries.retain(|e| e.lifecycle.is_active());
        }
        remaining = remaining.saturating_sub(page.entries.len() + page.damaged.len());
        lister.push(&page.entries)?;
        damaged.report(&page.damaged);
        let Some(next) = page.next else { break };
        query.after = Some(next);
        query.limit = LIST_PAGE.min(remaining);
    }
    lister.finish()?;
    damaged.result()
}

/// `registry update`; with `--if-revision`, only from that revision.
///
/// # Errors
/// A malformed or unknown id, a bad change, or a revision conflict (exit 1); a stage failing.
pub fn update(args: UpdateArgs, settings: &Settings) -> Result<(), CliError> {
    let id = parse_id(&args.id)?;
    let pairs = args
        .context
        .iter()
        .map(|c| Context::parse_pair(c))
        .collect::<Result<Vec<_>, _>>()?;
    // Checks keys and values the same way `add` does, before anything is opened.
    Context::new(pairs.clone())?;
    let changes = Changes {
        title: args.title,
        variant: args.variant,
        status: args.status,
        version: args.version,
        context: pairs,
        unset_context: args.unset_context,
        expected_revision: args.if_revision,
        author: None,
    };
    let pipeline = open(settings, Needs::UPDATE)?;
    let updated = match (pipeline.update(&id, changes), args.if_revision) {
        (Err(Error::Conflict(id)), Some(expected)) => {
            return Err(revision_conflict(&pipeline, &id, expected));
        }
        (result, _) => result?,
    };
    output::updated(&updated, args.format.format)
}

#[derive(Debug, Args)]
pub struct RetireArgs {
    /// Entry id, e.g. SEC-RUL-042
    pub id: String,
    /// Retire only if the entry is at this revision; else fail with a conflict, changing nothing
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub if_revision: Option<u32>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The duplicate: the entry to merge, e.g. SEC-RUL-043
    pub id: String,
    /// The entry to keep, which must be active
    #[arg(long, value_name = "ID")]
    pub into: String,
    /// Merge only if the duplicate is at this revision; else fail with a conflict, changing
    /// nothing
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub if_revision: Option<u32>,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry retire`, `revive` and `merge`: one revision moving an entry to `lifecycle`.
///
/// # Errors
/// A malformed or unknown id, a merge the lifecycle does not allow, or a revision conflict
/// (exit 1); a stage failing.
fn set_lifecycle(
    settings: &Settings,
    id: &str,
    lifecycle: Lifecycle,
    if_revision: Option<u32>,
    verb: &str,
    format: crate::Format,
) -> Result<(), CliError> {
    let id = parse_id(id)?;
    let pipeline = open(settings, Needs::LIFECYCLE)?;
    let updated = match (
        pipeline.set_lifecycle(&id, lifecycle, if_revision),
        if_revision,
    ) {
        (Err(Error::Conflict(id)), Some(expected)) => {
            return Err(revision_conflict(&pipeline, &id, expected));
        }
        (result, _) => result?,
    };
    print_lifecycle(&updated, verb, format)
}

/// What `retire`, `revive` and `merge` print: `VERB ID at revision N` (`into TARGET` for a
/// merge), or the entry as JSON.
pub(crate) fn print_lifecycle(
    updated: &registry_core::Updated,
    verb: &str,
    format: crate::Format,
) -> Result<(), CliError> {
    let e = &updated.entry;
    let headline = match &e.lifecycle {
        Lifecycle::Merged(target) => format!(
            "{verb:<9} {} into {target} at revision {}",
            e.header.id, e.revision
        ),
        _ => format!("{verb:<9} {} at revision {}", e.header.id, e.revision),
    };
    output::changed(updated, &headline, format)
}

/// `registry retire`.
///
/// # Errors
/// As [`set_lifecycle`].
pub fn retire(args: RetireArgs, settings: &Settings) -> Result<(), CliError> {
    set_lifecycle(
        settings,
        &args.id,
        Lifecycle::Retired,
        args.if_revision,
        "retired",
        args.format.format,
    )
}

/// `registry revive`.
///
/// # Errors
/// As [`set_lifecycle`].
pub fn revive(args: RetireArgs, settings: &Settings) -> Result<(), CliError> {
    set_lifecycle(
        settings,
        &args.id,
        Lifecycle::Active,
        args.if_revision,
        "revived",
        args.format.format,
    )
}

/// `registry merge ID --into TARGET`.
///
/// # Errors
/// As [`set_lifecycle`]; a malformed `--into` (exit 1).
pub fn merge(args: MergeArgs, settings: &Settings) -> Result<(), CliError> {
    let target = parse_id(&args.into).map_err(|e| e.on_field("into"))?;
    set_lifecycle(
        settings,
        &args.id,
        Lifecycle::Merged(target),
        args.if_revision,
        "merged",
        args.format.format,
    )
}

/// The conflict of an `update --if-revision` that storage refused: names the revision the entry
/// is at now, read again, or falls back to the pipeline's message when it cannot be read.
fn revision_conflict(pipeline: &Pipeline, id: &EntryId, expected: u32) -> CliError {
    match pipeline.get(id) {
        Ok(entry) if entry.revision != expected => CliError::input(format!(
            "entry {id} is at revision {}, not {expected} as --if-revision says: nothing was \
             written (read it again, then retry)",
            entry.revision
        )),
        _ => Error::Conflict(id.clone()).into(),
    }
}

pub(crate) fn parse_id(id: &str) -> Result<EntryId, CliError> {
    id.parse().map_err(|e: registry_core::HeaderError| {
        CliError::input(e.to_string())
            .with_kind("invalid")
            .on_field("id")
    })
}

pub(crate) fn context(args: &[String]) -> Result<Context, CliError> {
    let pairs = args
        .iter()
        .map(|a| Context::parse_pair(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Context::new(pairs)?)
}

#[derive(Debug, Args)]
pub struct PurgeArgs {
    /// Entry id, e.g. SEC-RUL-042
    pub id: String,
    /// The revision to purge (`history` lists them)
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub revision: u32,
    /// What to purge: `title`, or `context.KEY`
    #[arg(long, value_name = "FIELD")]
    pub field: String,
    /// Why, recorded with the purge for everyone to read (one line)
    #[arg(long)]
    pub reason: String,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry purge ID --revision N --field FIELD --reason TEXT`.
///
/// # Errors
/// As [`Pipeline::purge`]: exit 1 for a field, revision or reason that is wrong, exit 2 for a
/// damaged history or a storage failure.
pub fn purge(args: PurgeArgs, settings: &Settings) -> Result<(), CliError> {
    let id = parse_id(&args.id)?;
    let pipeline = open(settings, Needs::LIFECYCLE)?;
    let purged = pipeline.purge(&id, args.revision, &args.field, &args.reason)?;
    match args.format.format {
        crate::Format::Json => output::json(&purged),
        crate::Format::Text => {
            use std::io::Write as _;
            let mut out = std::io::stdout().lock();
            (|| {
                writeln!(
                    out,
                    "purged    {} of {} revision {} ({} more in its config); hash {} -> {}, \
                     the chain kept",
                    purged.field,
                    purged.id,
                    purged.revision,
                    purged.in_config,
                    purged.hash_before,
                    purged.hash_after
                )?;
                if !purged.also_in.is_empty() {
                    let list: Vec<String> =
                        purged.also_in.iter().map(ToString::to_string).collect();
                    writeln!(
                        out,
                        "still held in revisions {} of {}: purge those too",
                        list.join(", "),
                        purged.id
                    )?;
                }
                Ok(())
            })()
            .map_err(output::write_err)
        }
    }
}
