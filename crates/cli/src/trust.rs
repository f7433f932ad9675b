//! `registry trust`: the plugin libraries the user allows outside the registry's own plugin
//! directory, and the `registry.toml` files found in repositories that may choose plugins and
//! paths; the list itself is `registry_host::trust`'s.

use std::io::Write;
use std::path::PathBuf;

use clap::Args;
use registry_host::trust;

use crate::{CliError, Format, FormatArg};

#[derive(Debug, Args)]
pub struct TrustArgs {
    /// A plugin library, a registry.toml, or a directory whose libraries and registry.toml
    /// files (at any depth) are trusted
    #[arg(value_name = "PATH", required_unless_present = "list")]
    path: Option<PathBuf>,
    /// Stop trusting PATH
    #[arg(long, requires = "path")]
    remove: bool,
    /// Show the trusted paths and where each comes from
    #[arg(long, conflicts_with_all = ["path", "remove"])]
    list: bool,
    #[command(flatten)]
    format: FormatArg,
}

/// `registry trust PATH | --remove PATH | --list`.
pub fn run(args: TrustArgs) -> Result<(), CliError> {
    let format = args.format.format;
    let mut warnings = Vec::new();
    let result = if args.list {
        let all = trust::list(&mut warnings);
        crate::output::warnings(&warnings);
        return match format {
            Format::Json => crate::output::json(&all),
            Format::Text => {
                let mut out = std::io::stdout().lock();
                for t in &all {
                    writeln!(
                        out,
                        "{}\t{}",
                        crate::output::escaped_path(&t.path),
                        t.source
                    )
                    .map_err(crate::output::write_err)?;
                }
                Ok(())
            }
        };
    } else {
        let Some(path) = args.path else {
            return Err(CliError::input("give a PATH to trust, or --list"));
        };
        if args.remove {
            trust::remove(&path, &mut warnings)
        } else {
            trust::add(&path, &mut warnings)
        }
    };
    crate::output::warnings(&warnings);
    let change = result?;
    let action = match (args.remove, change.changed) {
        (false, true) => "trusted",
        (false, false) => "already trusted",
        (true, true) => "no longer trusted",
        (true, false) => "was not trusted",
    };
    match format {
        Format::Json => crate::output::json(&serde_json::json!({
            "path": change.path,
            "action": action.replace(' ', "-"),
            "file": change.file,
        })),
        Format::Text => writeln!(
            std::io::stdout().lock(),
            "{}: {action} (in {})",
            crate::output::escaped_path(&change.path),
            crate::output::escaped_path(&change.file)
        )
        .map_err(crate::output::write_err),
    }
}
