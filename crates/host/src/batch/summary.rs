//! The report of `batch` and `scale-test`: counts, throughput, per-stage-call latency, cache hit
//! rate, peak memory and (for `scale-test`) space on disk and the sample read back.

use std::fs;
use std::path::Path;
use std::time::Duration;

use registry_core::Pipeline;
use serde::Serialize;
use serde::ser::SerializeMap;

use super::{Failure, Tally};
use crate::error::Error;

/// Per stage call latencies, serialized as an object keyed by call name, in pipeline order.
#[derive(Debug, Clone, PartialEq)]
pub struct Latency(pub Vec<(&'static str, CallLatency)>);

/// The latency of one kind of stage call over a run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CallLatency {
    pub calls: u64,
    pub p50_us: u64,
    pub p99_us: u64,
    pub total_us: u64,
}

impl Serialize for Latency {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(Some(self.0.len()))?;
        for (name, l) in &self.0 {
            m.serialize_entry(name, l)?;
        }
        m.end()
    }
}

/// The report of `batch` and `scale-test`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Records read (requests, for `scale-test`).
    pub processed: u64,
    /// New entries stored.
    pub created: u64,
    /// Requests already registered: nothing written (text output says `unchanged`; the key
    /// keeps its first name).
    pub duplicates: u64,
    pub failed: u64,
    pub elapsed_s: f64,
    pub entries_per_s: f64,
    /// Per stage call (one call per batch, per shard for storage), not per entry.
    pub latency: Latency,
    pub cache_hit_rate: Option<f64>,
    pub peak_rss_bytes: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shards: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_on_disk: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bytes_per_entry: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_checked: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sample_failed: Option<usize>,
    pub failures: Vec<Failure>,
    /// Failures counted but not listed (beyond the first 1000).
    #[serde(skip_serializing_if = "is_zero")]
    pub failures_omitted: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Summary {
    /// The summary of a run that took `elapsed`, with the pipeline's timings and cache counts.
    pub fn new(tally: &Tally, pipeline: &Pipeline, elapsed: Duration) -> Summary {
        let secs = elapsed.as_secs_f64();
        let (cache, _) = pipeline.cache_stats();
        let lookups = cache.hits + cache.misses;
        Summary {
            processed: tally.processed,
            created: tally.created,
            duplicates: tally.duplicates,
            failed: tally.failed,
            elapsed_s: round3(secs),
            entries_per_s: (tally.processed as f64 / secs.max(1e-9)).round(),
            latency: Latency(
                pipeline
                    .timings()
                    .into_iter()
                    .map(|t| {
                        (
                            t.call.name(),
                            CallLatency {
                                calls: t.calls,
                                p50_us: t.p50_us,
                                p99_us: t.p99_us,
                                total_us: t.total_us,
                            },
                        )
                    })
                    .collect(),
            ),
            cache_hit_rate: (lookups > 0).then(|| round3(cache.hits as f64 / lookups as f64)),
            peak_rss_bytes: peak_rss(),
            shards: None,
            data_dir: None,
            bytes_on_disk: None,
            bytes_per_entry: None,
            sample_checked: None,
            sample_failed: None,
            failures: tally.failures.clone(),
            failures_omitted: tally.failed - tally.failures.len() as u64,
        }
    }

    /// The outcome of the run whose lines come from `name`: an error (exit 2) when a failure
    /// came from configuration, plugins or storage, an error (exit 1) when lines failed, else
    /// success.
    ///
    /// # Errors
    /// Some line failed.
    pub fn result(&self, tally: &Tally, name: &str) -> Result<(), Error> {
        let message = format!(
            "{} of {} {} in {name} failed",
            self.failed,
            self.processed,
            if self.processed == 1 {
                "record"
            } else {
                "records"
            }
        );
        if tally.severe {
            Err(Error::config(format!(
                "{message}, some for a storage or plugin error: registering the file again \
                 completes it"
            ))
            .in_file(name))
        } else if self.failed > 0 {
            Err(Error::input(message).in_file(name))
        } else {
            Ok(())
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// The process's peak resident set size, from `VmHWM` in /proc/self/status (Linux only).
pub fn peak_rss() -> Option<u64> {
    let status = fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line
        .trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

/// The total size of the files under `dir`.
pub fn bytes_on_disk(dir: &Path) -> u64 {
    let Ok(entries) = fs::read_dir(dir) else {
        return 0;
    };
    entries
        .filter_map(Result::ok)
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => bytes_on_disk(&e.path()),
            Ok(_) => e.metadata().map_or(0, |m| m.len()),
            Err(_) => 0,
        })
        .sum()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peak_rss_is_read_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(peak_rss().is_some_and(|b| b > 0));
        }
    }
}
