//! `registry plugins`: the plugin library behind each configured stage, or (`plugins check`) a
//! library checked as the host would load it.

use clap::{Args, Subcommand};
use std::path::PathBuf;

use registry_abi::load::{self, LoadError, LoadErrorKind, StageSpec};
use registry_core::StageKind;

use crate::config::Settings;
use crate::registry::load_error;
use crate::{CliError, FormatArg, output, plugin_check};

#[derive(Debug, Args)]
pub struct PluginsArgs {
    #[command(subcommand)]
    pub command: Option<PluginsCommand>,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Subcommand)]
pub enum PluginsCommand {
    /// Load a plugin library as the host would, show its name, version, stages and ABI
    /// compatibility, and run a short conformance test of each stage; exit 0 if usable, 2 if not
    Check(plugin_check::CheckArgs),
}

/// Runs `registry plugins` or `registry plugins check`.
///
/// # Errors
/// A library that cannot be opened (exit 2); see [`plugin_check::run`] for `check`.
pub fn run(args: PluginsArgs, settings: &Settings) -> Result<(), CliError> {
    match args.command {
        Some(PluginsCommand::Check(check)) => plugin_check::run(check, settings),
        None => plugins(settings, args.format.format),
    }
}

/// `registry plugins`: for each stage, the built-in plugin it uses, or the library it names,
/// opened (without starting the stage) to show what it is; a stage whose plugin cannot be found
/// or opened is reported and makes the exit code 2.
fn plugins(settings: &Settings, format: crate::Format) -> Result<(), CliError> {
    let mut rows = Vec::new();
    let mut errors = Vec::new();
    for StageSpec { stage, library, .. } in &settings.stages {
        let (row, error) = row(*stage, library, settings);
        rows.push(row);
        errors.extend(error);
    }
    output::plugins(&rows, settings.file.as_deref(), format)?;
    if errors.is_empty() {
        Ok(())
    } else {
        Err(load_error(errors))
    }
}

/// One stage's row, and its error.
fn row(
    stage: StageKind,
    library: &str,
    settings: &Settings,
) -> (output::PluginRow, Option<LoadError>) {
    let failed = |path: Option<PathBuf>, builtin: bool, e: LoadError| {
        let row = output::PluginRow {
            stage,
            name: String::new(),
            version: String::new(),
            builtin,
            path,
            error: Some(e.reason()),
        };
        (row, Some(e))
    };
    match load::library(library, &settings.paths) {
        load::Library::Builtin(name) => {
            let Some(builtin) = settings.builtins.iter().find(|b| b.name == name) else {
                let kind = LoadErrorKind::NoSuchBuiltin {
                    name,
                    builtin: settings
                        .builtins
                        .iter()
                        .map(|b| b.name.to_owned())
                        .collect(),
                };
                return failed(None, false, LoadError::new(stage, &PathBuf::new(), kind));
            };
            let row = output::PluginRow {
                stage,
                name: builtin.name.to_owned(),
                version: builtin.version.to_owned(),
                builtin: true,
                path: None,
                error: None,
            };
            if builtin.stages.contains(&stage) {
                (row, None)
            } else {
                let kind = LoadErrorKind::NotProvided {
                    provided: builtin.stages.to_vec(),
                };
                let e = LoadError::new(stage, &PathBuf::new(), kind);
                let row = output::PluginRow {
                    error: Some(e.reason()),
                    ..row
                };
                (row, Some(e))
            }
        }
        load::Library::File(path) => {
            match load::open_trusted(&path, stage, &settings.paths.trust) {
                Ok((_, info)) if info.stages.contains(&stage) => {
                    let row = output::PluginRow {
                        stage,
                        name: info.name,
                        version: info.version,
                        builtin: false,
                        path: Some(path),
                        error: None,
                    };
                    (row, None)
                }
                Ok((_, info)) => {
                    let kind = LoadErrorKind::NotProvided {
                        provided: info.stages.clone(),
                    };
                    let e = LoadError::new(stage, &path, kind);
                    let row = output::PluginRow {
                        stage,
                        name: info.name,
                        version: info.version,
                        builtin: false,
                        path: Some(path),
                        error: Some(e.reason()),
                    };
                    (row, Some(e))
                }
                Err(e) => failed(Some(path), false, e),
            }
        }
    }
}
