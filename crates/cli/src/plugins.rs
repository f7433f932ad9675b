//! `registry plugins`: the plugin library behind each configured stage, or (`plugins check`) a
//! library checked as the host would load it.

use clap::{Args, Subcommand};
use registry_abi::load::{self, StageSpec};

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
