//! The commands: each builds a pipeline from the configured plugins and prints what it returns.

use registry_abi::load::{self, StageSpec};
use registry_core::{
    Changes, Context, Damaged, EntryId, Error, Evaluation, Fields, ListQuery, Pipeline, Request,
};

use crate::config::{self, Settings};
use crate::{Cli, CliError, Command, PluginsCommand};
use crate::{learn, lint, output, plugin_check, stamp, transfer};

/// The most entries `list` reads from storage per call; larger listings are paged.
const LIST_PAGE: usize = 1000;

pub fn run(cli: Cli) -> Result<(), CliError> {
    let settings = config::load(cli.config.as_deref(), cli.data_dir.as_deref())?;
    output::warnings(&settings.warnings);
    match cli.command {
        Command::Trust(args) => crate::trust::run(args),
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
            let pipeline = open(&settings, Needs::REGISTER)?;
            let added = pipeline.add_one(request)?;
            output::added(&added, args.format.format)
        }
        Command::Get { id, format } => {
            let id = parse_id(&id)?;
            let pipeline = open(&settings, Needs::READ)?;
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
            let pipeline = open(&settings, Needs::READ)?;
            let mut lister = output::Lister::new(args.format.format);
            let mut remaining = args.limit.unwrap_or(usize::MAX);
            let mut query = ListQuery {
                filter,
                after,
                limit: LIST_PAGE.min(remaining),
            };
            let mut damaged = Damage::default();
            while remaining > 0 {
                let page = pipeline.list(&query)?;
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
                expected_revision: args.if_revision,
            };
            let pipeline = open(&settings, Needs::UPDATE)?;
            let updated = match (pipeline.update(&id, changes), args.if_revision) {
                (Err(Error::Conflict(id)), Some(expected)) => {
                    return Err(revision_conflict(&pipeline, &id, expected));
                }
                (result, _) => result?,
            };
            output::updated(&updated, args.format.format)
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
            let needs = if args.from.is_some() {
                Needs::GENERATOR
            } else {
                Needs::TRAIN
            };
            let pipeline = open(&settings, needs)?;
            learn::train(
                &pipeline,
                args.from.as_deref(),
                settings.max_record_bytes,
                evaluation,
                args.seed,
                args.format.format,
            )
        }
        Command::Predict(args) => match (&args.title, &args.from) {
            (_, Some(path)) => learn::predict_file(
                &open(&settings, Needs::GENERATOR)?,
                path,
                settings.max_record_bytes,
            ),
            (Some(title), None) => {
                let request =
                    Request::new(title, Fields::default(), None, context(&args.context)?)?;
                learn::predict_one(
                    &open(&settings, Needs::GENERATOR)?,
                    request,
                    args.format.format,
                )
            }
            (None, None) => Err(CliError::input("give --title or --from")),
        },
        Command::History { id, format } => {
            let id = parse_id(&id)?;
            let pipeline = open(&settings, Needs::READ)?;
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

/// Damaged entries met while reading many: each is reported on standard error as it is met,
/// the others are still served, and the command then fails with exit code 2.
#[derive(Debug, Default)]
pub(crate) struct Damage {
    count: usize,
}

impl Damage {
    pub(crate) fn report(&mut self, damaged: &[Damaged]) {
        for d in damaged {
            eprintln!("error: {d}");
        }
        self.count += damaged.len();
    }

    pub(crate) fn result(&self) -> Result<(), CliError> {
        match self.count {
            0 => Ok(()),
            n => Err(CliError::config(format!(
                "{n} damaged {} (named above) left out; the others were served",
                if n == 1 { "entry was" } else { "entries were" }
            ))),
        }
    }
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

pub(crate) use registry_host::Needs;
pub(crate) use registry_host::registry::load_error;

/// Loads the plugins a command needs and opens the registry (creating it only if the command
/// may), shows what a person should know about it, and gives its pipeline.
pub(crate) fn open(settings: &Settings, needs: Needs) -> Result<Pipeline, CliError> {
    let registry = registry_host::Registry::open(settings, needs)?;
    output::warnings(&registry.warnings);
    Ok(registry.into_pipeline())
}

/// `registry plugins`: opens each configured library (without starting the stages) and shows
/// what it is; a library that cannot be opened is reported and makes the exit code 2.
fn plugins(settings: &Settings, format: crate::Format) -> Result<(), CliError> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for StageSpec { stage, library, .. } in &settings.stages {
        let path = load::resolve_library(library, &settings.paths);
        match load::open_trusted(&path, *stage, &settings.paths.trust) {
            Ok((_, info)) if info.stages.contains(stage) => rows.push(output::PluginRow {
                stage: *stage,
                name: info.name,
                version: info.version,
                path,
                error: None,
            }),
            Ok((_, info)) => {
                let e = load::LoadError::new(
                    *stage,
                    &path,
                    load::LoadErrorKind::NotProvided {
                        provided: info.stages.clone(),
                    },
                );
                rows.push(output::PluginRow {
                    stage: *stage,
                    name: info.name,
                    version: info.version,
                    path,
                    error: Some(e.reason()),
                });
                errors.push(e);
            }
            Err(e) => {
                rows.push(output::PluginRow {
                    stage: *stage,
                    name: String::new(),
                    version: String::new(),
                    path,
                    error: Some(e.reason()),
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
