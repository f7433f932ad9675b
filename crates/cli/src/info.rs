//! `registry info`: which configuration and data directory commands use from here, and how each
//! was found; `--verbose` says the same on every command.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use crate::config::Settings;
use crate::output::{escaped_path, write_err};
use crate::{CliError, Format, FormatArg};

#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    format: FormatArg,
}

/// What `registry info --format json` prints.
#[derive(Debug, Serialize)]
struct Info {
    version: &'static str,
    /// The configuration file, or `None` for built-in defaults.
    config: Option<PathBuf>,
    /// `flag`, `environment`, `discovered` or `defaults`.
    config_source: &'static str,
    /// Whether the configuration may choose plugin libraries and paths outside its directory.
    config_trusted: bool,
    data_dir: PathBuf,
    data_dir_source: String,
    /// Whether a registry is there (its first shard, for a storage keeping files there).
    data_dir_exists: bool,
    plugin_dir: PathBuf,
}

fn info(settings: &Settings) -> Info {
    use registry_host::settings::ConfigSource;
    Info {
        version: env!("CARGO_PKG_VERSION"),
        config: settings.file.clone(),
        config_source: match settings.source {
            ConfigSource::Flag => "flag",
            ConfigSource::Environment => "environment",
            ConfigSource::Discovered => "discovered",
            ConfigSource::Defaults => "defaults",
        },
        config_trusted: settings.trusted,
        data_dir: settings.data_dir.clone(),
        data_dir_source: settings.data_dir_source.clone(),
        data_dir_exists: settings.data_dir.is_dir(),
        plugin_dir: settings.paths.plugin_dir.clone(),
    }
}

/// The configuration line: the file and how it was found, or built-in defaults.
fn config_line(settings: &Settings) -> String {
    match &settings.file {
        Some(file) => format!(
            "{} ({}{})",
            escaped_path(file),
            settings.source.describe(),
            if settings.trusted {
                ""
            } else {
                "; not trusted: built-in plugins and paths inside its directory only"
            }
        ),
        None => settings.source.describe().to_owned(),
    }
}

/// `registry info`.
///
/// # Errors
/// Output that cannot be written.
pub fn run(args: InfoArgs, settings: &Settings) -> Result<(), CliError> {
    let info = info(settings);
    match args.format.format {
        Format::Json => crate::output::json(&info),
        Format::Text => {
            let mut out = std::io::stdout().lock();
            (|| {
                writeln!(out, "version     {}", info.version)?;
                writeln!(out, "config      {}", config_line(settings))?;
                writeln!(
                    out,
                    "data dir    {} ({}; {})",
                    escaped_path(&info.data_dir),
                    info.data_dir_source,
                    if info.data_dir_exists {
                        "exists"
                    } else {
                        "does not exist yet"
                    }
                )?;
                writeln!(out, "plugin dir  {}", escaped_path(&info.plugin_dir))
            })()
            .map_err(write_err)
        }
    }
}

/// Says on stderr which configuration and data directory a command uses (`--verbose`).
pub fn announce(settings: &Settings) {
    if crate::output::json_stderr() {
        crate::output::to_stderr(format_args!(
            "{}",
            serde_json::json!({ "using": {
                "config": settings.file,
                "config_source": settings.source.describe(),
                "config_trusted": settings.trusted,
                "data_dir": settings.data_dir,
                "data_dir_source": settings.data_dir_source,
            } })
        ));
        return;
    }
    crate::output::to_stderr(format_args!("config: {}", config_line(settings)));
    crate::output::to_stderr(format_args!(
        "data dir: {} ({})",
        escaped_path(&settings.data_dir),
        settings.data_dir_source
    ));
}
