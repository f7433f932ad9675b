//! `/metrics`: the server's counters in the Prometheus text format (`prometheus-client`).
//!
//! Counted as requests are served: requests by route, method and status, their latency, the
//! group commits (entries per commit, commit time), entries created by scope. Read at each
//! scrape: the pipeline's per-stage call latencies (median and 99th percentile of the calls
//! timed since start), cache hits and misses, each shard's health, the process's resident
//! memory, and the entries by scope (the count taken when the server started, in the
//! background, plus the entries created since it started: an entry created while that count
//! was running may be counted twice until the server restarts).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::Method;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use registry_core::Pipeline;

/// A request's labels: route pattern, method and status. Static strings and a number, so that
/// counting a request allocates nothing.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    route: &'static str,
    method: &'static str,
    status: u16,
}

/// A route pattern, the label of the latency histograms.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabel {
    route: &'static str,
}

/// Every metric the server keeps.
pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    latency: Family<RouteLabel, Histogram>,
    commit_entries: Histogram,
    commit_seconds: Histogram,
    commits: Counter,
    committed: Counter,
    /// Entries created since start, by scope.
    created: Mutex<BTreeMap<String, u64>>,
    /// Entries by scope counted at start, once the count is done.
    counted: Mutex<Option<BTreeMap<String, u64>>>,
    /// Reads the search index's documents and lag (changes, seconds) at a scrape.
    search: std::sync::OnceLock<SearchFigures>,
}

/// What a scrape reads of the search index: documents, and the lag in changes and seconds.
pub type SearchFigures = Box<dyn Fn() -> (u64, u64, f64) + Send + Sync>;

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}

impl Metrics {
    /// The metrics of a server on `pipeline`.
    pub fn new(pipeline: Arc<Pipeline>) -> Arc<Metrics> {
        Arc::new_cyclic(|me: &std::sync::Weak<Metrics>| {
            let mut registry = Registry::with_prefix("registry");
            let requests = Family::<RequestLabels, Counter>::default();
            registry.register(
                "http_requests",
                "HTTP requests answered, by route, method and status",
                requests.clone(),
            );
            let latency = Family::<RouteLabel, Histogram>::new_with_constructor(
                (|| Histogram::new(exponential_buckets(0.000_05, 2.0, 20))) as fn() -> Histogram,
            );
            registry.register(
                "http_request_duration_seconds",
                "Time from a request's arrival to its answer's head, by route",
                latency.clone(),
            );
            let commit_entries = Histogram::new(exponential_buckets(1.0, 2.0, 12));
            registry.register(
                "group_commit_entries",
                "Registrations gathered into one commit",
                commit_entries.clone(),
            );
            let commit_seconds = Histogram::new(exponential_buckets(0.000_1, 2.0, 16));
            registry.register(
                "group_commit_duration_seconds",
                "Time one group commit takes, durable",
                commit_seconds.clone(),
            );
            let commits = Counter::default();
            registry.register("group_commits", "Group commits written", commits.clone());
            let committed = Counter::default();
            registry.register(
                "group_commit_registrations",
                "Registrations answered by group commits (mean entries per commit: this over \
                 registry_group_commits_total)",
                committed.clone(),
            );
            registry.register_collector(Box::new(Scraped {
                pipeline,
                metrics: me.clone(),
            }));
            Metrics {
                registry,
                requests,
                latency,
                commit_entries,
                commit_seconds,
                commits,
                committed,
                created: Mutex::new(BTreeMap::new()),
                counted: Mutex::new(None),
                search: std::sync::OnceLock::new(),
            }
        })
    }

    /// One request answered.
    pub fn request(&self, route: &'static str, method: &Method, status: u16, took: Duration) {
        let method = match *method {
            Method::GET => "GET",
            Method::POST => "POST",
            Method::PATCH => "PATCH",
            Method::PUT => "PUT",
            Method::DELETE => "DELETE",
            Method::HEAD => "HEAD",
            Method::OPTIONS => "OPTIONS",
            _ => "other",
        };
        self.requests
            .get_or_create(&RequestLabels {
                route,
                method,
                status,
            })
            .inc();
        self.latency
            .get_or_create(&RouteLabel { route })
            .observe(took.as_secs_f64());
    }

    /// One group commit of `entries` registrations, which took `took`.
    pub fn commit(&self, entries: usize, took: Duration) {
        self.commits.inc();
        self.committed.inc_by(entries as u64);
        self.commit_entries.observe(entries as f64);
        self.commit_seconds.observe(took.as_secs_f64());
    }

    /// One entry created, of `scope`.
    pub fn created(&self, scope: &str) {
        if let Ok(mut created) = self.created.lock() {
            match created.get_mut(scope) {
                Some(n) => *n += 1,
                None => {
                    created.insert(scope.to_owned(), 1);
                }
            }
        }
    }

    /// The entries by scope counted at start.
    pub fn set_counted(&self, by_scope: BTreeMap<String, u64>) {
        if let Ok(mut counted) = self.counted.lock() {
            *counted = Some(by_scope);
        }
    }

    /// The entries the registry holds: those counted at start plus those created since;
    /// `None` until the count is done.
    pub fn entries(&self) -> Option<u64> {
        let counted: u64 = self.counted.lock().ok()?.as_ref()?.values().sum();
        let created: u64 = self.created.lock().ok()?.values().sum();
        Some(counted + created)
    }

    /// Reports the search index's figures at each scrape from now on.
    pub fn set_search(&self, figures: SearchFigures) {
        let _ = self.search.set(figures);
    }

    /// The text a scrape gets.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry);
        out
    }
}

/// What is read at each scrape.
#[derive(Debug)]
struct Scraped {
    pipeline: Arc<Pipeline>,
    metrics: std::sync::Weak<Metrics>,
}

impl Collector for Scraped {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let (cache, failed) = self.pipeline.cache_stats();
        for (name, help, value) in [
            (
                "cache_hits",
                "Cache lookups that found the entry",
                cache.hits,
            ),
            ("cache_misses", "Cache lookups that did not", cache.misses),
            ("cache_errors", "Cache calls that failed (bypassed)", failed),
        ] {
            let counter = ConstCounter::new(value);
            counter.encode(encoder.encode_descriptor(
                name,
                help,
                None,
                counter.metric_type(),
            )?)?;
        }

        let mut family = encoder.encode_descriptor(
            "stage_call_seconds",
            "Latency of the pipeline's calls into each stage since start, by stage call and \
             quantile",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for t in self.pipeline.timings() {
            for (quantile, us) in [("0.5", t.p50_us), ("0.99", t.p99_us)] {
                let labels = [("call", t.call.name()), ("quantile", quantile)];
                ConstGauge::new(us as f64 / 1e6).encode(family.encode_family(&labels)?)?;
            }
        }

        let mut family = encoder.encode_descriptor(
            "shard_up",
            "1 when the shard answers, 0 when it does not",
            None,
            prometheus_client::metrics::MetricType::Gauge,
        )?;
        for (shard, health) in self.pipeline.health().iter().enumerate() {
            let labels = [("shard", shard.to_string())];
            ConstGauge::new(i64::from(health.is_ok())).encode(family.encode_family(&labels)?)?;
        }

        if let Some(rss) = resident_bytes() {
            let gauge = ConstGauge::new(i64::try_from(rss).unwrap_or(i64::MAX));
            gauge.encode(encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of the server process",
                None,
                gauge.metric_type(),
            )?)?;
        }

        let Some(metrics) = self.metrics.upgrade() else {
            return Ok(());
        };
        if let Some(search) = metrics.search.get() {
            let (docs, changes, seconds) = search();
            for (name, help, value) in [
                (
                    "search_documents",
                    "Documents in the full-text index",
                    docs as f64,
                ),
                (
                    "search_lag_changes",
                    "Changes written and not yet searchable",
                    changes as f64,
                ),
                (
                    "search_lag_seconds",
                    "How long the oldest change not yet searchable has waited",
                    seconds,
                ),
            ] {
                let gauge = ConstGauge::new(value);
                gauge.encode(encoder.encode_descriptor(
                    name,
                    help,
                    None,
                    gauge.metric_type(),
                )?)?;
            }
        }
        let created = metrics
            .created
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        let mut family = encoder.encode_descriptor(
            "entries_created",
            "Entries this server created since it started, by scope",
            None,
            prometheus_client::metrics::MetricType::Counter,
        )?;
        for (scope, n) in &created {
            let labels = [("scope", scope.as_str())];
            ConstCounter::new(*n).encode(family.encode_family(&labels)?)?;
        }
        let counted = metrics
            .counted
            .lock()
            .map(|c| c.clone())
            .unwrap_or_default();
        if let Some(mut by_scope) = counted {
            for (scope, n) in created {
                *by_scope.entry(scope).or_default() += n;
            }
            let mut family = encoder.encode_descriptor(
                "entries",
                "Entries in the registry by scope (counted at start, plus those created since)",
                None,
                prometheus_client::metrics::MetricType::Gauge,
            )?;
            for (scope, n) in by_scope {
                let labels = [("scope", scope)];
                ConstGauge::new(i64::try_from(n).unwrap_or(i64::MAX))
                    .encode(family.encode_family(&labels)?)?;
            }
        }
        Ok(())
    }
}

/// The process's resident memory, from `/proc/self/status` (Linux; `None` elsewhere).
fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}
