//! `check`: the whole registry verified ([`registry_core::Pipeline::check`]) at a bounded rate,
//! and with `--repair` its indexes rebuilt ([`registry_core::Pipeline::repair`]) and checked
//! again.

use std::path::Path;
use std::time::{Duration, Instant};

use registry_core::{CheckReport, Pipeline, Repaired};
use serde::Serialize;

use crate::error::Error;
use crate::events::{Events, Progress};
use crate::registry::{Needs, Registry};
use crate::settings::Settings;
use crate::transfer::{Compared, Source, compare};

/// What `check` found, and with `--repair` what it rebuilt and found afterwards.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Checked {
    #[serde(flatten)]
    pub report: CheckReport,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub repaired: Option<Repaired>,
    /// The check run again after the repair.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub after: Option<CheckReport>,
    /// The registry held against an export (`--against`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub against: Option<Compared>,
}

impl Checked {
    /// The problems left: after the repair, when there was one, and the differences from the
    /// export.
    pub fn remaining(&self) -> usize {
        self.after.as_ref().unwrap_or(&self.report).findings.len()
            + self.against.as_ref().map_or(0, |c| c.differences.len())
    }
}

/// Checks the registry of `settings`, reading at most `rate` entries per second (0: as fast as
/// it goes); with `repair`, rebuilds its indexes when the check found a problem and checks
/// again.
///
/// # Errors
/// The registry cannot be opened, a shard cannot be listed, or the repair fails.
pub fn check(
    settings: &Settings,
    rate: u64,
    repair: bool,
    against: Option<&Path>,
    events: &mut dyn Events,
) -> Result<Checked, Error> {
    let needs = if repair { Needs::REPAIR } else { Needs::CHECK };
    let registry = Registry::open(settings, needs)?;
    for w in &registry.warnings {
        events.warning(w);
    }
    let pipeline = registry.into_pipeline();
    // The export is opened first: a mistyped path fails before the long read.
    let source = against
        .map(|path| Source::open(path, settings.max_record_bytes, false))
        .transpose()?;
    let report = paced(&pipeline, rate, events)?;
    let (repaired, after) = if repair && !report.findings.is_empty() {
        let repaired = pipeline.repair()?;
        (Some(repaired), Some(paced(&pipeline, rate, events)?))
    } else {
        (None, None)
    };
    let against = source
        .map(|source| compare(&pipeline, source, events))
        .transpose()?;
    Ok(Checked {
        report,
        repaired,
        after,
        against,
    })
}

pub(super) fn paced(
    pipeline: &Pipeline,
    rate: u64,
    events: &mut dyn Events,
) -> Result<CheckReport, Error> {
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
