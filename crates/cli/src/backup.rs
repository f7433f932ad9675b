//! `registry backup` and `registry restore` (see [`registry_host::batch::backup`]).

use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use registry_core::EntryId;
use registry_host::batch;

use crate::batch::mib;
use crate::config::Settings;
use crate::progress::Progress;
use crate::{CliError, Format, FormatArg, output};

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// A new (or empty) directory to copy the registry into
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    #[command(flatten)]
    pub format: FormatArg,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// A directory `registry backup` made
    #[arg(value_name = "DIR")]
    pub dir: PathBuf,
    /// Restore even when the registry being replaced cannot give its high-water marks (or
    /// there is none): ids issued after the backup may then be handed out again
    #[arg(long)]
    pub without_high_water: bool,
    #[command(flatten)]
    pub format: FormatArg,
}

/// `registry backup DIR`.
///
/// # Errors
/// As [`batch::backup`]: exit 1 for a directory that is not new or empty, 2 for a registry that
/// cannot be opened or copied.
pub fn backup(args: BackupArgs, settings: &Settings) -> Result<(), CliError> {
    let mut progress = Progress::new(args.format.format);
    let done = batch::backup(settings, &args.dir, &mut progress)?;
    match args.format.format {
        Format::Json => output::json(&done),
        Format::Text => {
            let m = &done.manifest;
            writeln!(
                io::stdout().lock(),
                "backed up {} entries ({} revisions, {} shards, {}) to {}; copied while this \
                 process held the registry, so no write came in between, and checked: no \
                 problem found",
                m.entries,
                m.revisions,
                m.shards,
                mib(m.bytes),
                done.dir.display()
            )
            .map_err(output::write_err)
        }
    }
}

/// `registry restore DIR`.
///
/// # Errors
/// As [`batch::restore`]: exit 1 for a directory that is not a backup or a registry whose
/// high-water marks cannot be read, 2 for a copy that cannot be made or fails its check; the
/// data directory is as it was.
pub fn restore(args: RestoreArgs, settings: &Settings) -> Result<(), CliError> {
    let mut progress = Progress::new(args.format.format);
    let done = batch::restore(settings, &args.dir, args.without_high_water, &mut progress)?;
    match args.format.format {
        Format::Json => output::json(&done),
        Format::Text => {
            let mut out = io::stdout().lock();
            (|| {
                writeln!(
                    out,
                    "restored {} entries ({} revisions, {} shards) from {}, checked: no problem \
                     found",
                    done.entries,
                    done.revisions,
                    done.shards,
                    done.from.display()
                )?;
                for r in &done.raised {
                    let id = |n| EntryId::new(&r.prefix, n);
                    let ends = match r.backup {
                        0 => "which holds none".to_owned(),
                        n => format!("which ends at {}", id(n)),
                    };
                    writeln!(
                        out,
                        "{}: ids up to {} were issued after the backup ({ends}) and will not be \
                         handed out again",
                        r.prefix,
                        id(r.last)
                    )?;
                }
                if !done.high_water_kept {
                    writeln!(
                        out,
                        "without high-water marks: ids issued after the backup may be handed \
                         out again"
                    )?;
                }
                if let Some(kept) = &done.replaced_kept_in {
                    writeln!(out, "the replaced registry is kept in {}", kept.display())?;
                }
                Ok(())
            })()
            .map_err(output::write_err)
        }
    }
}
