//! `stats`: how many entries a registry holds per scope, type, variant and status, and the space
//! they take.

use std::collections::BTreeMap;
use std::path::Path;

use registry_core::{Field, ListQuery, Pipeline};
use serde::{Deserialize, Serialize};

use super::bytes_on_disk;
use crate::error::Error;
use crate::events::Events;

/// The entries read per storage call.
const STATS_PAGE: usize = 10_000;

/// The full-text index's directory in a data directory, kept by `registry-search`.
pub const SEARCH_DIR: &str = "search";

/// What a registry holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    /// Entries that pass their hash check; a damaged one is reported and not counted.
    pub entries: u64,
    pub shards: usize,
    pub by_scope: BTreeMap<String, u64>,
    pub by_type: BTreeMap<String, u64>,
    pub by_variant: BTreeMap<String, u64>,
    pub by_status: BTreeMap<String, u64>,
    /// `active`, `retired`, `merged`: only the states some entry is in.
    pub by_lifecycle: BTreeMap<String, u64>,
    pub bytes_on_disk: u64,
    pub bytes_per_entry: Option<f64>,
    /// Entries that failed their integrity check (each given to the events as it is met).
    #[serde(skip)]
    pub damaged: usize,
    /// The full-text index (`DATA/search`, not counted in `bytes_on_disk`), as a server
    /// reports it; `None` from the command line, or when search is off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub search: Option<SearchStats>,
}

/// The full-text index of a running server.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SearchStats {
    /// Documents in the index.
    pub docs: u64,
    /// The index's files.
    pub bytes: u64,
    /// Changes written and not yet searchable.
    pub lag_changes: u64,
    /// How long the oldest of them has waited, in seconds.
    pub lag_seconds: f64,
}

/// Reads every entry of `pipeline`, page by page, and counts them; `data_dir` is measured for
/// the space they take (after `pipeline` is dropped, so its files are complete).
///
/// # Errors
/// The registry cannot be read.
pub fn stats(pipeline: Pipeline, data_dir: &Path, events: &mut dyn Events) -> Result<Stats, Error> {
    let mut stats = count(&pipeline, events)?;
    drop(pipeline);
    stats.measure(data_dir);
    Ok(stats)
}

impl Stats {
    /// Measures the space `data_dir` takes (its files as they are now: a registry still open
    /// may hold more in memory) and the bytes per entry.
    pub fn measure(&mut self, data_dir: &Path) {
        // The search index is derived data, not what storage takes.
        self.bytes_on_disk =
            bytes_on_disk(data_dir).saturating_sub(bytes_on_disk(&data_dir.join(SEARCH_DIR)));
        self.bytes_per_entry =
            (self.entries > 0).then(|| (self.bytes_on_disk as f64 / self.entries as f64).round());
    }
}

/// Reads every entry of `pipeline`, page by page, and counts them; the space is left at 0 (see
/// [`Stats::measure`]).
///
/// # Errors
/// The registry cannot be read.
pub fn count(pipeline: &Pipeline, events: &mut dyn Events) -> Result<Stats, Error> {
    let mut counts: [BTreeMap<String, u64>; 4] = Default::default();
    let mut by_lifecycle: BTreeMap<String, u64> = BTreeMap::new();
    let mut entries = 0u64;
    let mut damaged = 0;
    let mut query = ListQuery {
        limit: STATS_PAGE,
        ..ListQuery::default()
    };
    loop {
        let page = pipeline.list(&query)?;
        for d in &page.damaged {
            events.damaged(d);
        }
        damaged += page.damaged.len();
        for e in &page.entries {
            entries += 1;
            *by_lifecycle
                .entry(e.lifecycle.name().to_owned())
                .or_default() += 1;
            for (i, f) in Field::ALL.iter().enumerate() {
                *counts[i].entry(e.header.fields[*f].clone()).or_default() += 1;
            }
        }
        let Some(next) = page.next else { break };
        query.after = Some(next);
    }
    let shards = pipeline.shards();
    let [by_scope, by_type, by_variant, by_status] = counts;
    Ok(Stats {
        entries,
        shards,
        by_scope,
        by_type,
        by_variant,
        by_status,
        by_lifecycle,
        bytes_on_disk: 0,
        bytes_per_entry: None,
        damaged,
        search: None,
    })
}
