//! `check`: the whole registry verified ([`registry_core::Pipeline::check`]) at a bounded rate.

use std::time::{Duration, Instant};

use registry_core::CheckReport;

use crate::error::Error;
use crate::events::{Events, Progress};
use crate::registry::{Needs, Registry};
use crate::settings::Settings;

/// Checks the registry of `settings`, reading at most `rate` entries per second (0: as fast as
/// it goes), and reports progress to `events`.
///
/// # Errors
/// The registry cannot be opened, or a shard cannot be listed.
pub fn check(
    settings: &Settings,
    rate: u64,
    events: &mut dyn Events,
) -> Result<CheckReport, Error> {
    let registry = Registry::open(settings, Needs::CHECK)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    let pipeline = registry.into_pipeline();
    let started = Instant::now();
    let report = pipeline.check(&mut |entries| {
        events.progress(Progress {
            processed: entries,
            done: None,
            unit: "entries",
        });
        if rate > 0 {
            // Sleep until the entries read so far are within the rate.
            let due = Duration::from_secs_f64(entries as f64 / rate as f64);
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead);
            }
        }
    })?;
    events.finished();
    Ok(report)
}
