//! The commands: each builds a pipeline from the configured plugins and prints what it returns.

use std::fs;
use std::path::Path;

use registry_abi::load::{self, StageSpec};
use registry_core::{
    Changes, Context, EntryId, Evaluation, Fields, ListQuery, Pipeline, Request, Setup,
};

use crate::config::{self, Settings};
use crate::{Cli, CliError, Command, PluginsCommand};
use crate::{learn, lint, output, plugin_check, stamp, transfer};

/// The most entries `list` reads from storage per call; larger listings are paged.
const LIST_PAGE: usize = 1000;

pub fn run(cli: Cli) -> Result<(), CliError> {
    let settings = config::load(cli.config.as_deref(), cli.data_dir.as_deref())?;
    match cli.command {
        Command::Plugins(args) => match args.command {
            Some(PluginsCommand::Check(check)) => plugin_check::run(check, &settings),
            None => plugins(&settings, args.format.format),
        },
        Command::Add(args) => {
            let request = Request::new(
                &args.title,
                args.fields.into(),
                args.version,
                context(&args.context)?,
            )?;
            let pipeline = open(&settings)?;
            let added = pipeline.add_one(request)?;
            output::added(&added, args.format.format)
        }
        Command::Get { id, format } => {
            let id = parse_id(&id)?;
            let pipeline = open(&settings)?;
            output::entry(&pipeline.get(&id)?, format.format)
        }
        Command::List(args) => {
            let filter: Fields<Option<String>> = args.fields.into();
            for (field, value) in filter.iter() {
                if let Some(v) = value
                    && settings.schema.canonical(field, v).is_none()
                {
                    return Err(CliError::input(format!(
                        "unknown {field} `{v}`: allowed values are {}",
                        settings.schema.allowed(field).join(", ")
                    )));
                }
            }
            let after = args.after.as_deref().map(parse_id).transpose()?;
            let pipeline = open(&settings)?;
            let mut lister = output::Lister::new(args.format.format);
            let mut remaining = args.limit.unwrap_or(usize::MAX);
            let mut query = ListQuery {
                filter,
                after,
                limit: LIST_PAGE.min(remaining),
            };
            while remaining > 0 {
                let page = pipeline.list(&query)?;
                let Some(last) = page.last() else { break };
                query.after = Some(last.header.id.clone());
                remaining -= page.len();
                query.limit = LIST_PAGE.min(remaining);
                let full = page.len() == LIST_PAGE;
                lister.push(&page)?;
                if !full {
                    break;
                }
            }
            lister.finish()
        }
        Command::Update(args) => {
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
            };
            let pipeline = open(&settings)?;
            output::updated(&pipeline.update(&id, changes)?, args.format.format)
        }
        Command::Train(args) => {
            let evaluation = match (args.holdout, args.folds) {
                (_, Some(k)) => Evaluation::Folds(k),
                (Some(f), None) => Evaluation::Holdout(f),
                (None, None) => Evaluation::Holdout(0.2),
            };
            if let Evaluation::Holdout(f) = evaluation
                && !(f > 0.0 && f < 1.0)
            {
                return Err(CliError::input(format!(
                    "--holdout {f}: expected a fraction between 0 and 1"
                )));
            }
            if let Evaluation::Folds(k) = evaluation
                && k < 2
            {
                return Err(CliError::input(format!(
                    "--folds {k}: expected at least 2 folds"
                )));
            }
            let pipeline = open(&settings)?;
            learn::train(
                &pipeline,
                args.from.as_deref(),
                evaluation,
                args.seed,
                args.format.format,
            )
        }
        Command::Predict(args) => match (&args.title, &args.from) {
            (_, Some(path)) => learn::predict_file(&open(&settings)?, path),
            (Some(title), None) => {
                let request =
                    Request::new(title, Fields::default(), None, context(&args.context)?)?;
                learn::predict_one(&open(&settings)?, request, args.format.format)
            }
            (None, None) => Err(CliError::input("give --title or --from")),
        },
        Command::History { id, format } => {
            let id = parse_id(&id)?;
            let pipeline = open(&settings)?;
            output::history(&pipeline.history(&id)?, format.format)
        }
        Command::Lint(args) => lint::run(args, &settings),
        Command::Stamp(args) => stamp::run(args, &settings),
        Command::Export(args) => transfer::export(args, &settings),
        Command::Import(args) => transfer::import(args, &settings),
        Command::Batch(args) => crate::batch::batch(args, &settings),
        Command::ScaleTest(args) => {
            crate::batch::scale_test(args, settings, cli.data_dir.is_some())
        }
        Command::Stats(args) => crate::batch::stats(args, &settings),
    }
}

pub(crate) fn parse_id(id: &str) -> Result<EntryId, CliError> {
    id.parse()
        .map_err(|e: registry_core::HeaderError| CliError::input(e.to_string()))
}

pub(crate) fn context(args: &[String]) -> Result<Context, CliError> {
    let pairs = args
        .iter()
        .map(|a| Context::parse_pair(a))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Context::new(pairs)?)
}

/// The shard count of a data directory: recorded in `shards` at creation, never changed.
fn shards(settings: &Settings) -> Result<u32, CliError> {
    let dir = &settings.data_dir;
    fs::create_dir_all(dir).map_err(|e| {
        CliError::config(format!(
            "cannot create data directory {}: {}",
            dir.display(),
            io_reason(&e)
        ))
    })?;
    let file = dir.join("shards");
    let recorded = match read_shards(&file)? {
        Some(k) => k,
        None => {
            // A new registry gets one shard per core unless told otherwise: shards are written
            // in parallel, and the count cannot change later.
            let k = settings.shards.unwrap_or_else(|| {
                std::thread::available_parallelism()
                    .map_or(1, |n| u32::try_from(n.get()).unwrap_or(1))
            });
            match record_shards(&file, k) {
                Ok(()) => k,
                // Another process created the registry at the same moment: its count stands.
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    read_shards(&file)?.unwrap_or(k)
                }
                Err(e) => {
                    return Err(CliError::config(format!(
                        "cannot write to data directory {}: {}",
                        dir.display(),
                        io_reason(&e)
                    )));
                }
            }
        }
    };
    match settings.shards {
        Some(wanted) if wanted != recorded => Err(CliError::config(format!(
            "data directory {} has {recorded} shard(s) but the configuration asks for {wanted}: resharding is not supported",
            dir.display()
        ))),
        _ => Ok(recorded),
    }
}

fn read_shards(file: &Path) -> Result<Option<u32>, CliError> {
    match fs::read_to_string(file) {
        Ok(text) => text.trim().parse().map(Some).map_err(|_| {
            CliError::config(format!(
                "{} is damaged: expected a shard count, found `{}`",
                file.display(),
                text.trim()
            ))
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(CliError::config(format!(
            "cannot read {}: {}",
            file.display(),
            io_reason(&e)
        ))),
    }
}

/// Writes the count to a private temporary file, then links it into place: the link either
/// creates `shards` whole or fails with `AlreadyExists`, so concurrent first runs agree and a
/// crash never leaves a partial file.
fn record_shards(file: &Path, k: u32) -> std::io::Result<()> {
    let tmp = file.with_extension(format!("{}.tmp", std::process::id()));
    fs::write(&tmp, format!("{k}\n"))?;
    fs::File::open(&tmp)?.sync_all()?;
    let linked = fs::hard_link(&tmp, file);
    let _ = fs::remove_file(&tmp);
    linked
}

/// The OS reason without Rust's "(os error N)" suffix, lowercased like every other message.
pub fn io_reason(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text.split(" (os error").next().unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(c) => c.to_lowercase().chain(chars).collect(),
        None => text.to_owned(),
    }
}

/// Loads the plugins and builds the pipeline.
pub(crate) fn open(settings: &Settings) -> Result<Pipeline, CliError> {
    let shards = shards(settings)?;
    let setup = Setup {
        schema: settings.schema.clone(),
        data_dir: settings.data_dir.clone(),
        config_dir: settings.paths.base_dir.clone(),
        shard: 0,
        shards,
    };
    let loaded = load::load(&settings.stages, &settings.paths, &setup).map_err(load_error)?;
    // A shard that cannot be opened is set aside: the others keep working, and every request
    // for it fails naming it. Said once here, so that a run is never silently partial.
    for u in &loaded.unavailable {
        eprintln!(
            "warning: shard {} of {shards} is unavailable, its entries can be neither read nor \
             written until it is repaired: {}",
            u.shard, u.reason
        );
    }
    let pipeline = Pipeline::new(settings.schema.clone(), loaded.stages);
    if settings.data_dir.join(FINGERPRINTS_ANYWHERE).exists() {
        pipeline.set_fingerprints_anywhere(true);
    }
    Ok(pipeline)
}

/// A file in the data directory whose presence says that some entry sits in a shard other than
/// the one the router picks for its fingerprint (it was imported from a registry with another
/// layout), so `add` must look for fingerprints in every shard.
const FINGERPRINTS_ANYWHERE: &str = "fingerprints-anywhere";

/// Before a restore: if it would place an entry outside the shard the router picks for its
/// fingerprint, records that in the data directory (first, so a crash cannot lose it) and tells
/// the pipeline.
///
/// # Errors
/// When the router fails or the file cannot be written.
pub(crate) fn before_restore(
    pipeline: &Pipeline,
    settings: &Settings,
    histories: &[Vec<registry_core::Entry>],
) -> Result<(), CliError> {
    if pipeline.fingerprints_anywhere() || !pipeline.restore_misplaces(histories)? {
        return Ok(());
    }
    let file = settings.data_dir.join(FINGERPRINTS_ANYWHERE);
    fs::File::create(&file)
        .and_then(|f| f.sync_all())
        .map_err(|e| {
            CliError::config(format!(
                "cannot write {}: {}",
                file.display(),
                io_reason(&e)
            ))
        })?;
    pipeline.set_fingerprints_anywhere(true);
    Ok(())
}

pub(crate) fn load_error(errors: Vec<load::LoadError>) -> CliError {
    let message = match errors.len() {
        1 => errors[0].to_string(),
        n => format!(
            "{n} stages failed to load: {}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        ),
    };
    let details: Vec<String> = errors
        .iter()
        .filter_map(|e| {
            e.detail
                .as_ref()
                .map(|d| format!("{} plugin {}:\n{d}", e.stage, e.path.display()))
        })
        .collect();
    CliError {
        code: 2,
        message,
        detail: (!details.is_empty()).then(|| details.join("\n\n")),
    }
}

/// `registry plugins`: opens each configured library (without starting the stages) and shows
/// what it is; a library that cannot be opened is reported and makes the exit code 2.
fn plugins(settings: &Settings, format: crate::Format) -> Result<(), CliError> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for StageSpec { stage, library, .. } in &settings.stages {
        let path = load::resolve_library(library, &settings.paths);
        match load::open(&path, *stage) {
            Ok((_, info)) if info.stages.contains(stage) => rows.push(output::PluginRow {
                stage: *stage,
                name: info.name,
                version: info.version,
                path,
                error: None,
            }),
            Ok((_, info)) => {
                let e = load::LoadError {
                    stage: *stage,
                    path: path.clone(),
                    reason: format!("the library provides no {stage} stage"),
                    detail: None,
                };
                rows.push(output::PluginRow {
                    stage: *stage,
                    name: info.name,
                    version: info.version,
                    path,
                    error: Some(e.reason.clone()),
                });
                errors.push(e);
            }
            Err(e) => {
                rows.push(output::PluginRow {
                    stage: *stage,
                    name: String::new(),
                    version: String::new(),
                    path,
                    error: Some(e.reason.clone()),
                });
                errors.push(e);
            }
        }
    }
    output::plugins(&rows, settings.file.as_deref(), format)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(load_error(errors))
    }
}
