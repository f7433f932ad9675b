//! What every command shares: opening the registry (and showing what a person should know about
//! it), and reporting damaged entries met while reading many.

use registry_core::{Damaged, Pipeline};

use crate::config::Settings;
use crate::{CliError, output};

/// Damaged entries met while reading many: each is reported on standard error as it is met,
/// the others are still served, and the command then fails with exit code 2.
#[derive(Debug, Default)]
pub(crate) struct Damage {
    count: usize,
}

impl Damage {
    pub(crate) fn report(&mut self, damaged: &[Damaged]) {
        for d in damaged {
            output::damaged(d);
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

pub(crate) use registry_host::Needs;
pub(crate) use registry_host::registry::load_error;

/// Loads the plugins a command needs and opens the registry (creating it only if the command
/// may), shows what a person should know about it, and gives its pipeline.
pub(crate) fn open(settings: &Settings, needs: Needs) -> Result<Pipeline, CliError> {
    let registry = registry_host::Registry::open(settings, needs)?;
    output::warnings(&registry.warnings);
    output::notes(&registry.notes);
    Ok(registry.into_pipeline())
}
