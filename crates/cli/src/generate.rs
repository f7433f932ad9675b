//! `registry completions SHELL` and `registry man [DIR]`: shell completion scripts
//! (`clap_complete`) and man pages (`clap_mangen`), both made from the command line's own
//! definition, so they never disagree with `--help`. Like the help, they list the values of
//! the schema in use when they are made (see `command`).
//!
//! Both render into memory first and write through `output::write_err`: the generators panic
//! when a write fails, and a closed pipe must end the command quietly.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use clap_complete::Shell;

use crate::{CliError, output};

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in
    #[arg(value_enum)]
    shell: Shell,
}

#[derive(Debug, Args)]
pub struct ManArgs {
    /// Write one page per command into this directory (created if missing): registry.1,
    /// registry-add.1 and so on; without it, registry.1 goes to standard output
    #[arg(value_name = "DIR")]
    dir: Option<PathBuf>,
}

/// `registry completions SHELL`: the script on standard output.
///
/// # Errors
/// Standard output cannot be written (exit 2).
pub fn completions(args: &CompletionsArgs, mut command: clap::Command) -> Result<(), CliError> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut command, "registry", &mut script);
    io::stdout()
        .lock()
        .write_all(&script)
        .map_err(output::write_err)
}

/// `registry man [DIR]`: registry(1) on standard output, or every page written into DIR, each
/// path written named on standard output.
///
/// # Errors
/// DIR cannot be created or a page cannot be written there (exit 1), or standard output cannot
/// be written (exit 2).
pub fn man(args: &ManArgs, command: clap::Command) -> Result<(), CliError> {
    let mut command = command.disable_help_subcommand(true);
    command.build();
    let Some(dir) = &args.dir else {
        return io::stdout()
            .lock()
            .write_all(&page(&command)?)
            .map_err(output::write_err);
    };
    std::fs::create_dir_all(dir).map_err(|e| {
        CliError::input(format!(
            "cannot create {}: {}",
            dir.display(),
            registry_host::io_reason(&e)
        ))
        .in_file(dir.display().to_string())
    })?;
    let mut written = Vec::new();
    pages(&command, dir, &mut written)?;
    let mut out = io::stdout().lock();
    for path in written {
        writeln!(out, "{}", output::escaped_path(&path)).map_err(output::write_err)?;
    }
    Ok(())
}

/// The page of `command` and of each of its visible subcommands, at any depth, written into
/// `dir`; their paths are added to `written`.
fn pages(command: &clap::Command, dir: &Path, written: &mut Vec<PathBuf>) -> Result<(), CliError> {
    let path = dir.join(clap_mangen::Man::new(command.clone()).get_filename());
    std::fs::write(&path, page(command)?).map_err(|e| {
        CliError::input(format!(
            "cannot write {}: {}",
            path.display(),
            registry_host::io_reason(&e)
        ))
        .in_file(path.display().to_string())
    })?;
    written.push(path);
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        pages(sub, dir, written)?;
    }
    Ok(())
}

/// One man page in roff.
fn page(command: &clap::Command) -> Result<Vec<u8>, CliError> {
    let mut roff = Vec::new();
    clap_mangen::Man::new(command.clone())
        .render(&mut roff)
        .map_err(|e| CliError::config(format!("cannot render a man page: {e}")))?;
    Ok(roff)
}
