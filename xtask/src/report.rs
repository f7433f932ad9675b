//! The model of `cargo xtask bench`'s report (`report.json`) and the pure arithmetic that
//! fills it: criterion's estimates read into figures, medians and spreads of repeated runs,
//! percentiles of single-add latencies, the ratios, the sizing projection, and the date.
//!
//! Every measured number is a [`Figure`] in one flat list, with a stable `id`, so that two
//! reports can be compared figure by figure whatever sections they ran (`--filter`). The JSON is
//! written and read with `serde_json::Value` by hand: xtask stays free of derive macros so that
//! `cargo xtask` compiles in seconds.

use std::fs;
use std::path::Path;

use serde_json::{Value, json};

/// Bumped when a field changes meaning, so that comparing with an older report can say so.
pub const FORMAT: u64 = 1;

/// Whether a larger or a smaller value of a figure is an improvement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Better {
    Higher,
    Lower,
}

impl Better {
    fn as_str(self) -> &'static str {
        match self {
            Better::Higher => "higher",
            Better::Lower => "lower",
        }
    }
}

/// One measured or derived number.
///
/// `low`–`high` is the 95 % confidence interval of the median for criterion benchmarks and for
/// latency percentiles, and the range (min–max) of the runs for repeated runs; derived figures
/// (ratios, the projection) carry the range their inputs' bounds give. `spread` is the median
/// absolute deviation of the samples or runs, where there is one.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    pub id: String,
    pub label: String,
    /// One of [`units`]: the markdown report formats each for reading.
    pub unit: &'static str,
    pub better: Better,
    pub median: f64,
    pub low: f64,
    pub high: f64,
    pub spread: Option<f64>,
    /// How many samples or runs the median is taken over.
    pub runs: Option<u64>,
}

/// The units figures are stored in: always the base unit, so that reports compare directly.
pub mod units {
    pub const NS: &str = "ns";
    pub const BYTES: &str = "bytes";
    pub const PER_S: &str = "items/s";
    pub const ENTRIES_PER_S: &str = "entries/s";
    pub const RATIO: &str = "x";
    pub const SECONDS: &str = "s";
    pub const COUNT: &str = "count";
}

impl Figure {
    /// A figure of one value with no spread (a derived number, or a single run).
    pub fn single(id: String, label: String, unit: &'static str, better: Better, v: f64) -> Self {
        Figure {
            id,
            label,
            unit,
            better,
            median: v,
            low: v,
            high: v,
            spread: None,
            runs: None,
        }
    }

    /// The median, range and median absolute deviation of repeated runs; `None` without runs.
    pub fn from_runs(
        id: String,
        label: String,
        unit: &'static str,
        better: Better,
        values: &[f64],
    ) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let median = crate::median(&mut values.to_vec(), f64::total_cmp);
        Some(Figure {
            id,
            label,
            unit,
            better,
            median,
            low: values.iter().copied().fold(f64::INFINITY, f64::min),
            high: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
            spread: Some(mad(values)),
            runs: Some(values.len() as u64),
        })
    }

    fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "label": self.label,
            "unit": self.unit,
            "better": self.better.as_str(),
            "median": self.median,
            "low": self.low,
            "high": self.high,
            "spread": self.spread,
            "runs": self.runs,
        })
    }

    fn from_json(v: &Value, at: usize) -> Result<Figure, String> {
        let text = |key: &str| {
            v[key]
                .as_str()
                .ok_or_else(|| format!("figure {at} has no text `{key}`"))
        };
        let number = |key: &str| {
            v[key]
                .as_f64()
                .ok_or_else(|| format!("figure {at} has no number `{key}`"))
        };
        let id = text("id")?.to_owned();
        let label = text("label")?.to_owned();
        let better = match text("better")? {
            "higher" => Better::Higher,
            "lower" => Better::Lower,
            other => {
                return Err(format!(
                    "figure {at} has `better` = `{other}`: expected `higher` or `lower`"
                ));
            }
        };
        Ok(Figure {
            id,
            label,
            unit: intern_unit(text("unit")?),
            better,
            median: number("median")?,
            low: number("low")?,
            high: number("high")?,
            spread: v["spread"].as_f64(),
            runs: v["runs"].as_u64(),
        })
    }
}

/// The unit as one of [`units`] when it is one, so that figures read back format like new ones;
/// an unknown unit (from a newer report) is kept as "?" rather than failing the comparison.
fn intern_unit(unit: &str) -> &'static str {
    use units::*;
    [NS, BYTES, PER_S, ENTRIES_PER_S, RATIO, SECONDS, COUNT]
        .into_iter()
        .find(|u| *u == unit)
        .unwrap_or("?")
}

/// The median absolute deviation (about the median, as [`crate::median`] takes it).
pub fn mad(values: &[f64]) -> f64 {
    if values.is_empty() {
        return 0.0;
    }
    let m = crate::median(&mut values.to_vec(), f64::total_cmp);
    let mut dev: Vec<f64> = values.iter().map(|v| (v - m).abs()).collect();
    crate::median(&mut dev, f64::total_cmp)
}

/// The machine a report was measured on.
#[derive(Debug, Clone, PartialEq)]
pub struct Machine {
    pub cores: u64,
    pub memory_bytes: Option<u64>,
    pub cpu_model: Option<String>,
    pub kernel: Option<String>,
}

impl Machine {
    /// This machine, from `/proc` (fields stay empty where it cannot be read).
    pub fn this() -> Machine {
        let read = |p: &str| fs::read_to_string(p).ok();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get() as u64),
            memory_bytes: read("/proc/meminfo").and_then(|t| parse_meminfo(&t)),
            cpu_model: read("/proc/cpuinfo").and_then(|t| parse_cpu_model(&t)),
            kernel: read("/proc/sys/kernel/osrelease").map(|k| k.trim().to_owned()),
        }
    }

    /// One line: "2 cores, 23.4 GiB, AMD EPYC ..., Linux 6.1".
    pub fn describe(&self) -> String {
        let mut parts = vec![format!("{} cores", self.cores)];
        if let Some(m) = self.memory_bytes {
            parts.push(format!("{:.1} GiB", m as f64 / GIB));
        }
        if let Some(c) = &self.cpu_model {
            parts.push(c.clone());
        }
        if let Some(k) = &self.kernel {
            parts.push(format!("Linux {k}"));
        }
        parts.join(", ")
    }
}

const GIB: f64 = 1024.0 * 1024.0 * 1024.0;

/// `MemTotal` of /proc/meminfo, in bytes.
pub fn parse_meminfo(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line
        .trim_start_matches("MemTotal:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    kib.checked_mul(1024)
}

/// The first `model name` of /proc/cpuinfo.
pub fn parse_cpu_model(text: &str) -> Option<String> {
    text.lines()
        .filter_map(|l| l.split_once(':'))
        .find(|(k, _)| k.trim() == "model name")
        .map(|(_, v)| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

/// The file system `path` is on, from a `/proc/mounts` text: the type and device of the mount
/// whose point is the longest prefix of `path` (which must be canonical). Benchmarks of durable
/// writes are only meaningful on a real disk: a `tmpfs` makes fsync free.
pub fn file_system(mounts: &str, path: &Path) -> Option<(String, String)> {
    mounts
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (device, point, kind) = (parts.next()?, parts.next()?, parts.next()?);
            // Spaces in mount points are written \040.
            let point = point.replace("\\040", " ");
            path.starts_with(&point)
                .then(|| (point.len(), kind.to_owned(), device.to_owned()))
        })
        .max_by_key(|(len, _, _)| *len)
        .map(|(_, kind, device)| (kind, device))
}

/// A report note naming where benchmark data directories are, and their file system.
pub fn data_dirs_note(dirs: &[&Path]) -> String {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let each: Vec<String> = dirs
        .iter()
        .map(|d| {
            let _ = std::fs::create_dir_all(d);
            let canonical = std::fs::canonicalize(d).unwrap_or_else(|_| d.to_path_buf());
            match file_system(&mounts, &canonical) {
                Some((kind, device)) => format!("`{}` ({kind} on {device})", d.display()),
                None => format!("`{}` (file system unknown)", d.display()),
            }
        })
        .collect();
    format!(
        "data directories (durable writes are measured on these): {}",
        each.join(", ")
    )
}

/// The commit a report was measured at.
#[derive(Debug, Clone, PartialEq)]
pub struct Commit {
    pub id: String,
    /// Whether the work tree had changes not committed.
    pub dirty: bool,
}

impl Commit {
    pub fn describe(&self) -> String {
        let short: String = self.id.chars().take(12).collect();
        if self.dirty {
            format!("{short} (with uncommitted changes)")
        } else {
            short
        }
    }
}

/// One row of the batch tables: one configuration of `registry batch`, run several times.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRow {
    /// `batch/shards` or `batch/batch_size`: the table it belongs to.
    pub section: &'static str,
    pub shards: usize,
    pub batch_size: usize,
    pub requests: usize,
    /// entries/s of every run, in run order.
    pub rates: Vec<f64>,
    /// Peak RSS of every run, bytes.
    pub peak_rss: Vec<f64>,
}

/// The sizing projection: the assumptions, the measured inputs, and what follows.
#[derive(Debug, Clone, PartialEq)]
pub struct Sizing {
    pub inputs: SizingInputs,
    /// Where each input came from: figure ids.
    pub sources: Vec<(&'static str, String)>,
    pub median: Projection,
    /// The projection from the favourable and unfavourable ends of the inputs' ranges.
    pub best: Projection,
    pub worst: Projection,
}

/// The entries the projection sizes for.
pub const TARGET_ENTRIES: f64 = 1e9;
/// Disk provisioned per byte measured: room for growth of the files between compactions, for
/// the revisions of updated entries and for a copy during backup or restore.
pub const DISK_HEADROOM: f64 = 1.5;
/// The most entries one shard file is planned to hold, so that one file's backup, copy and
/// repair after a crash take minutes, not hours.
pub const MAX_ENTRIES_PER_SHARD: f64 = 25e6;
/// Usable disk per machine, bytes (one 2 TB NVMe drive).
pub const DISK_PER_MACHINE_BYTES: f64 = 2e12;
/// The longest a full load of the target entries may take, seconds (one day).
pub const TARGET_LOAD_S: f64 = 24.0 * 3600.0;

/// The assumptions, as written into the report: name, value, unit, meaning.
pub const ASSUMPTIONS: [(&str, f64, &str, &str); 5] = [
    (
        "TARGET_ENTRIES",
        TARGET_ENTRIES,
        units::COUNT,
        "entries the projection sizes for",
    ),
    (
        "DISK_HEADROOM",
        DISK_HEADROOM,
        units::RATIO,
        "disk provisioned per byte measured (growth between compactions, revisions, a backup copy)",
    ),
    (
        "MAX_ENTRIES_PER_SHARD",
        MAX_ENTRIES_PER_SHARD,
        units::COUNT,
        "most entries planned per shard file, so one file's backup and repair stay short",
    ),
    (
        "DISK_PER_MACHINE_BYTES",
        DISK_PER_MACHINE_BYTES,
        units::BYTES,
        "usable disk per machine",
    ),
    (
        "TARGET_LOAD_S",
        TARGET_LOAD_S,
        units::SECONDS,
        "longest a full load of TARGET_ENTRIES may take, machines loading their shards in parallel",
    ),
];

/// What the projection starts from, all measured on this machine.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SizingInputs {
    /// Bytes on disk per entry (scale test).
    pub bytes_per_entry: f64,
    /// Peak RSS of one `registry` process (scale test).
    pub peak_rss_bytes: f64,
    /// Shards that process wrote.
    pub shards_per_process: f64,
    /// Entries/s one machine loads (the fastest batch configuration).
    pub entries_per_s: f64,
}

/// The projection for [`TARGET_ENTRIES`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Projection {
    pub disk_bytes: f64,
    pub shards: f64,
    pub machines_for_disk: f64,
    pub machines_for_load_time: f64,
    pub machines: f64,
    pub shards_per_machine: f64,
    /// `registry` processes per machine, each with as many shards as the one measured.
    pub processes_per_machine: f64,
    pub memory_per_machine_bytes: f64,
    pub memory_total_bytes: f64,
    /// How long one machine alone would take to load every entry.
    pub load_time_one_machine_s: f64,
    /// How long the machines take, loading their shards in parallel.
    pub load_time_s: f64,
}

impl Projection {
    /// Every result as (key, label, unit, value), in reading order.
    pub fn rows(&self) -> [(&'static str, &'static str, &'static str, f64); 11] {
        [
            (
                "disk_bytes",
                "disk (x headroom)",
                units::BYTES,
                self.disk_bytes,
            ),
            ("shards", "shards", units::COUNT, self.shards),
            (
                "machines_for_disk",
                "machines for disk",
                units::COUNT,
                self.machines_for_disk,
            ),
            (
                "machines_for_load_time",
                "machines for load time",
                units::COUNT,
                self.machines_for_load_time,
            ),
            ("machines", "machines", units::COUNT, self.machines),
            (
                "shards_per_machine",
                "shards per machine",
                units::COUNT,
                self.shards_per_machine,
            ),
            (
                "processes_per_machine",
                "processes per machine",
                units::COUNT,
                self.processes_per_machine,
            ),
            (
                "memory_per_machine_bytes",
                "memory per machine",
                units::BYTES,
                self.memory_per_machine_bytes,
            ),
            (
                "memory_total_bytes",
                "memory, all machines",
                units::BYTES,
                self.memory_total_bytes,
            ),
            (
                "load_time_one_machine_s",
                "load time, one machine",
                units::SECONDS,
                self.load_time_one_machine_s,
            ),
            (
                "load_time_s",
                "load time, all machines",
                units::SECONDS,
                self.load_time_s,
            ),
        ]
    }
}

/// The sizing arithmetic. Memory assumes a process's peak RSS does not grow with the entries
/// already stored (the caches, redb's page cache and the pending fingerprints are bounded by
/// configuration); load time assumes machines do not slow each other down.
pub fn project(i: &SizingInputs) -> Projection {
    let disk_bytes = i.bytes_per_entry * TARGET_ENTRIES * DISK_HEADROOM;
    let shards = (TARGET_ENTRIES / MAX_ENTRIES_PER_SHARD).ceil();
    let machines_for_disk = (disk_bytes / DISK_PER_MACHINE_BYTES).ceil().max(1.0);
    let load_time_one_machine_s = TARGET_ENTRIES / i.entries_per_s.max(1e-9);
    let machines_for_load_time = (load_time_one_machine_s / TARGET_LOAD_S).ceil().max(1.0);
    let machines = machines_for_disk.max(machines_for_load_time);
    let shards_per_machine = (shards / machines).ceil();
    let processes_per_machine = (shards_per_machine / i.shards_per_process.max(1.0)).ceil();
    let memory_per_machine_bytes = processes_per_machine * i.peak_rss_bytes;
    Projection {
        disk_bytes,
        shards,
        machines_for_disk,
        machines_for_load_time,
        machines,
        shards_per_machine,
        processes_per_machine,
        memory_per_machine_bytes,
        memory_total_bytes: memory_per_machine_bytes * machines,
        load_time_one_machine_s,
        load_time_s: load_time_one_machine_s / machines,
    }
}

impl Sizing {
    /// The projection at the inputs' medians and at both ends of their ranges.
    pub fn new(
        median: SizingInputs,
        favourable: SizingInputs,
        unfavourable: SizingInputs,
        sources: Vec<(&'static str, String)>,
    ) -> Sizing {
        Sizing {
            inputs: median,
            sources,
            median: project(&median),
            best: project(&favourable),
            worst: project(&unfavourable),
        }
    }

    /// The results as figures (`sizing/*`), the range spanning the best and worst projections.
    pub fn figures(&self) -> Vec<Figure> {
        let best = self.best.rows();
        let worst = self.worst.rows();
        self.median
            .rows()
            .into_iter()
            .zip(best.into_iter().zip(worst))
            .map(|((key, label, unit, v), ((.., a), (.., b)))| Figure {
                low: a.min(b),
                high: a.max(b),
                ..Figure::single(
                    format!("sizing/{key}"),
                    format!("1e9 entries: {label}"),
                    unit,
                    Better::Lower,
                    v,
                )
            })
            .collect()
    }

    fn to_json(&self) -> Value {
        let projection = |p: &Projection| {
            p.rows()
                .into_iter()
                .map(|(key, _, _, v)| (key.to_owned(), json!(v)))
                .collect::<serde_json::Map<_, _>>()
        };
        let assumptions: serde_json::Map<String, Value> = ASSUMPTIONS
            .iter()
            .map(|(name, value, unit, meaning)| {
                (
                    (*name).to_owned(),
                    json!({"value": value, "unit": unit, "meaning": meaning}),
                )
            })
            .collect();
        json!({
            "assumptions": assumptions,
            "inputs": {
                "bytes_per_entry": self.inputs.bytes_per_entry,
                "peak_rss_bytes": self.inputs.peak_rss_bytes,
                "shards_per_process": self.inputs.shards_per_process,
                "entries_per_s": self.inputs.entries_per_s,
            },
            "sources": self.sources.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "median": projection(&self.median),
            "best": projection(&self.best),
            "worst": projection(&self.worst),
        })
    }
}

/// Everything one `cargo xtask bench` run measured.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    pub machine: Machine,
    pub commit: Commit,
    /// UTC, ISO-8601.
    pub date: String,
    pub quick: bool,
    pub filter: Option<String>,
    pub duration_s: f64,
    pub figures: Vec<Figure>,
    pub batch: Vec<BatchRow>,
    pub sizing: Option<Sizing>,
    /// Single adds timed per kind (`miss`, `hit`), when the latency section ran.
    pub latency_count: Option<u64>,
    /// What was skipped or could not be measured, in sentences.
    pub notes: Vec<String>,
}

impl Report {
    pub fn figure(&self, id: &str) -> Option<&Figure> {
        self.figures.iter().find(|f| f.id == id)
    }

    pub fn to_json(&self) -> Value {
        json!({
            "format": FORMAT,
            "machine": {
                "cores": self.machine.cores,
                "memory_bytes": self.machine.memory_bytes,
                "cpu_model": self.machine.cpu_model,
                "kernel": self.machine.kernel,
            },
            "commit": {"id": self.commit.id, "dirty": self.commit.dirty},
            "date": self.date,
            "quick": self.quick,
            "filter": self.filter,
            "duration_s": self.duration_s,
            "figures": self.figures.iter().map(Figure::to_json).collect::<Vec<_>>(),
            "batch": self.batch.iter().map(|r| json!({
                "section": r.section,
                "shards": r.shards,
                "batch_size": r.batch_size,
                "requests": r.requests,
                "entries_per_s": r.rates,
                "peak_rss_bytes": r.peak_rss,
            })).collect::<Vec<_>>(),
            "sizing": self.sizing.as_ref().map(Sizing::to_json),
            "latency_count": self.latency_count,
            "notes": self.notes,
        })
    }

    /// Reads what a comparison needs (machine, commit, date, figures) from a report's JSON;
    /// other sections are not read back.
    ///
    /// # Errors
    /// When the text is not JSON or a figure lacks a field.
    pub fn from_json(text: &str) -> Result<Report, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
        let format = v["format"].as_u64();
        if format != Some(FORMAT) {
            return Err(format!(
                "report format {}, expected {FORMAT}",
                format.map_or_else(|| "missing".to_owned(), |f| f.to_string())
            ));
        }
        let figures = v["figures"]
            .as_array()
            .ok_or("no list `figures`")?
            .iter()
            .enumerate()
            .map(|(i, f)| Figure::from_json(f, i + 1))
            .collect::<Result<Vec<_>, _>>()?;
        let m = &v["machine"];
        Ok(Report {
            machine: Machine {
                cores: m["cores"].as_u64().unwrap_or(0),
                memory_bytes: m["memory_bytes"].as_u64(),
                cpu_model: m["cpu_model"].as_str().map(str::to_owned),
                kernel: m["kernel"].as_str().map(str::to_owned),
            },
            commit: Commit {
                id: v["commit"]["id"].as_str().unwrap_or("unknown").to_owned(),
                dirty: v["commit"]["dirty"].as_bool().unwrap_or(false),
            },
            date: v["date"].as_str().unwrap_or("unknown").to_owned(),
            quick: v["quick"].as_bool().unwrap_or(false),
            filter: v["filter"].as_str().map(str::to_owned),
            duration_s: v["duration_s"].as_f64().unwrap_or(0.0),
            figures,
            batch: Vec::new(),
            sizing: None,
            latency_count: v["latency_count"].as_u64(),
            notes: Vec::new(),
        })
    }

    /// Reads a report file.
    ///
    /// # Errors
    /// One line naming the file and what is wrong with it.
    pub fn read(path: &Path) -> Result<Report, String> {
        let text =
            fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        Report::from_json(&text).map_err(|e| format!("cannot read {}: {e}", path.display()))
    }
}

/// One criterion benchmark's result, as criterion wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct Bench {
    /// `group/function`, or the group alone for a benchmark outside a group.
    pub id: String,
    pub group: String,
    pub function: Option<String>,
    /// Items handled per iteration (`Throughput::Elements`).
    pub elements: Option<u64>,
    /// Per iteration, ns.
    pub median_ns: f64,
    pub low_ns: f64,
    pub high_ns: f64,
    pub mad_ns: f64,
    pub samples: Option<u64>,
}

/// Reads one benchmark from the text of its `benchmark.json` and `estimates.json` (and
/// `sample.json` for the sample count, if there is one).
///
/// # Errors
/// When a file is not JSON or lacks a field the report needs.
pub fn parse_bench(
    benchmark: &str,
    estimates: &str,
    sample: Option<&str>,
) -> Result<Bench, String> {
    let b: Value =
        serde_json::from_str(benchmark).map_err(|e| format!("benchmark.json is not JSON: {e}"))?;
    let e: Value =
        serde_json::from_str(estimates).map_err(|e| format!("estimates.json is not JSON: {e}"))?;
    let group = b["group_id"]
        .as_str()
        .ok_or("benchmark.json has no `group_id`")?
        .to_owned();
    let function = b["function_id"].as_str().map(str::to_owned);
    let number = |v: &Value, path: &str| {
        v.pointer(path)
            .and_then(Value::as_f64)
            .ok_or_else(|| format!("estimates.json has no number at {path}"))
    };
    let samples = sample
        .and_then(|s| serde_json::from_str::<Value>(s).ok())
        .and_then(|s| s["iters"].as_array().map(|a| a.len() as u64));
    Ok(Bench {
        id: match &function {
            Some(f) => format!("{group}/{f}"),
            None => group.clone(),
        },
        group,
        function,
        elements: b["throughput"]["Elements"].as_u64().filter(|&n| n > 0),
        median_ns: number(&e, "/median/point_estimate")?,
        low_ns: number(&e, "/median/confidence_interval/lower_bound")?,
        high_ns: number(&e, "/median/confidence_interval/upper_bound")?,
        mad_ns: number(&e, "/median_abs_dev/point_estimate")?,
        samples,
    })
}

/// Every benchmark under a criterion output directory: each `*/new/benchmark.json` with the
/// `estimates.json` beside it, sorted by id.
///
/// # Errors
/// When a directory cannot be listed or a result cannot be read.
pub fn read_criterion(dir: &Path) -> Result<Vec<Bench>, String> {
    let mut out = Vec::new();
    walk(dir, &mut out)?;
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

fn walk(dir: &Path, out: &mut Vec<Bench>) -> Result<(), String> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(format!("cannot list {}: {e}", dir.display())),
    };
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if path.file_name().is_some_and(|n| n == "new") {
            let benchmark = path.join("benchmark.json");
            if !benchmark.is_file() {
                continue;
            }
            let read = |p: &Path| {
                fs::read_to_string(p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            let sample = fs::read_to_string(path.join("sample.json")).ok();
            let bench = parse_bench(
                &read(&benchmark)?,
                &read(&path.join("estimates.json"))?,
                sample.as_deref(),
            )
            .map_err(|e| format!("{}: {e}", path.display()))?;
            out.push(bench);
        } else {
            walk(&path, out)?;
        }
    }
    Ok(())
}

/// The figures of criterion benchmarks: time per item (per iteration without a throughput)
/// and, with a throughput, items per second.
pub fn criterion_figures(benches: &[Bench]) -> Vec<Figure> {
    let mut out = Vec::new();
    for b in benches {
        let n = b.elements.unwrap_or(1) as f64;
        let per = if b.elements.is_some() {
            "item"
        } else {
            "iteration"
        };
        out.push(Figure {
            id: format!("criterion/{}/time", b.id),
            label: format!("{}: time per {per}", b.id),
            unit: units::NS,
            better: Better::Lower,
            median: b.median_ns / n,
            low: b.low_ns / n,
            high: b.high_ns / n,
            spread: Some(b.mad_ns / n),
            runs: b.samples,
        });
        if b.elements.is_some() {
            let rate = |ns: f64| n * 1e9 / ns.max(1e-9);
            out.push(Figure {
                id: format!("criterion/{}/rate", b.id),
                label: format!("{}: items per second", b.id),
                unit: units::PER_S,
                better: Better::Higher,
                median: rate(b.median_ns),
                low: rate(b.high_ns),
                high: rate(b.low_ns),
                // The deviation of 1/t to first order: |d(n/t)| = n dt / t^2.
                spread: Some(n * 1e9 * b.mad_ns / (b.median_ns * b.median_ns).max(1e-9)),
                runs: b.samples,
            });
        }
    }
    out
}

/// The pipeline/ceiling pairs of the `ceiling` group: the pipeline's benchmark and the bare redb
/// writes of the rows the storage writes for the same entries, at the same durability.
pub const CEILING_PAIRS: [(&str, &str); 5] = [
    ("ceiling/pipeline_add_1000", "ceiling/bare_redb_insert_1000"),
    (
        "ceiling/pipeline_add_1000_builtin",
        "ceiling/bare_redb_insert_1000",
    ),
    ("ceiling/pipeline_parallel", "ceiling/bare_redb_parallel"),
    ("ceiling/pipeline_sharded", "ceiling/bare_redb_parallel"),
    (
        "ceiling/pipeline_sharded_builtin",
        "ceiling/bare_redb_parallel",
    ),
];

/// A ratio of two figures, its range from the ends of theirs (numerator low over denominator
/// high, and the reverse).
pub fn ratio(id: String, label: String, num: &Figure, den: &Figure) -> Figure {
    let div = |a: f64, b: f64| a / b.max(1e-12);
    Figure {
        low: div(num.low, den.high),
        high: div(num.high, den.low),
        ..Figure::single(
            id,
            label,
            units::RATIO,
            Better::Lower,
            div(num.median, den.median),
        )
    }
}

/// The cost of the plugin boundary (time dynamic / time static, per group that has both) and
/// of the pipeline over bare redb (time pipeline / time ceiling), from the `criterion/*/time`
/// figures.
pub fn ratio_figures(benches: &[Bench], figures: &[Figure]) -> Vec<Figure> {
    let time = |id: &str| {
        let key = format!("criterion/{id}/time");
        figures.iter().find(|f| f.id == key)
    };
    let mut out = Vec::new();
    let mut groups: Vec<&str> = benches.iter().map(|b| b.group.as_str()).collect();
    groups.dedup();
    for g in groups {
        if let (Some(d), Some(s)) = (time(&format!("{g}/dynamic")), time(&format!("{g}/static"))) {
            out.push(ratio(
                format!("ratio/{g}/dynamic_over_static"),
                format!("{g}: time dynamic / static"),
                d,
                s,
            ));
        }
    }
    for (pipeline, ceiling) in CEILING_PAIRS {
        if let (Some(p), Some(c)) = (time(pipeline), time(ceiling)) {
            let name = |id: &str| id.rsplit('/').next().unwrap_or(id).to_owned();
            out.push(ratio(
                format!("ratio/{}_over_{}", pipeline, name(ceiling)),
                format!("{}: time / {}", pipeline, name(ceiling)),
                p,
                c,
            ));
        }
    }
    out
}

/// The nearest-rank percentile `q` (0 < q <= 1) of sorted values.
///
/// # Panics
/// If `sorted` is empty.
pub fn percentile(sorted: &[u64], q: f64) -> u64 {
    let n = sorted.len();
    let rank = (q * n as f64).ceil() as usize;
    sorted[rank.clamp(1, n) - 1]
}

/// The 95 % confidence interval of the percentile `q` from order statistics: the ranks
/// n q -/+ 1.96 sqrt(n q (1 - q)), distribution-free.
///
/// # Panics
/// If `sorted` is empty.
pub fn percentile_interval(sorted: &[u64], q: f64) -> (u64, u64) {
    let n = sorted.len() as f64;
    let half = 1.96 * (n * q * (1.0 - q)).sqrt();
    let at = |rank: f64| sorted[(rank.max(1.0) as usize).min(sorted.len()) - 1];
    (at((n * q - half).floor()), at((n * q + half).ceil()))
}

/// Percentile figures of nanosecond samples (`sorted` ascending, not empty), `{id}/{name}`
/// labelled `{label}: {name}`, each with the 95 % confidence interval of its percentile.
pub fn percentile_figures(
    id: &str,
    label: &str,
    sorted: &[u64],
    quantiles: &[(&str, f64)],
) -> Vec<Figure> {
    quantiles
        .iter()
        .map(|&(name, q)| {
            let (low, high) = percentile_interval(sorted, q);
            Figure {
                id: format!("{id}/{name}"),
                label: format!("{label}: {name}"),
                unit: units::NS,
                better: Better::Lower,
                median: percentile(sorted, q) as f64,
                low: low as f64,
                high: high as f64,
                spread: None,
                runs: Some(sorted.len() as u64),
            }
        })
        .collect()
}

/// The latency figures of one kind of single add (`miss` or `hit`): p50, p90, p99 and max.
pub fn latency_figures(kind: &str, ns: &[u64]) -> Vec<Figure> {
    if ns.is_empty() {
        return Vec::new();
    }
    let mut sorted = ns.to_vec();
    sorted.sort_unstable();
    let mut out = percentile_figures(
        &format!("add/latency/{kind}"),
        &format!("single add, {kind}"),
        &sorted,
        &[("p50", 0.50), ("p90", 0.90), ("p99", 0.99)],
    );
    let max = sorted[sorted.len() - 1] as f64;
    out.push(Figure {
        runs: Some(sorted.len() as u64),
        ..Figure::single(
            format!("add/latency/{kind}/max"),
            format!("single add, {kind}: max"),
            units::NS,
            Better::Lower,
            max,
        )
    });
    out
}

/// A UTC time as ISO-8601 (`2024-05-01T12:00:00Z`), from seconds since the Unix epoch.
pub fn iso8601_utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// The proleptic Gregorian date of a day count since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`: eras of 400 years, years starting in March so leap days come last).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Real output of criterion 0.8 for one benchmark of the `ceiling` group.
    const BENCHMARK: &str = r#"{"group_id":"ceiling","function_id":"pipeline_parallel","value_str":null,"throughput":{"Elements":2000},"full_id":"ceiling/pipeline_parallel","directory_name":"ceiling/pipeline_parallel","title":"ceiling/pipeline_parallel"}"#;
    const ESTIMATES: &str = r#"{"mean":{"confidence_interval":{"confidence_level":0.95,"lower_bound":118613348.36,"upper_bound":130076064.23},"point_estimate":123862522.33,"standard_error":2952152.95},"median":{"confidence_interval":{"confidence_level":0.95,"lower_bound":116695526.14,"upper_bound":129765823.75},"point_estimate":120506474.7,"standard_error":3763833.28},"median_abs_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":1241523.45,"upper_bound":15570526.75},"point_estimate":6962872.13,"standard_error":3744739.44},"slope":null,"std_dev":{"confidence_interval":{"confidence_level":0.95,"lower_bound":4143313.11,"upper_bound":13062460.29},"point_estimate":9846892.87,"standard_error":2400581.19}}"#;
    const SAMPLE: &str =
        r#"{"sampling_mode":"Linear","iters":[1.0,2.0,3.0],"times":[1.0,2.0,3.0]}"#;
    const NO_GROUP: &str = r#"{"group_id":"generator/predict","function_id":null,"value_str":null,"throughput":null,"full_id":"generator/predict","directory_name":"generator_predict","title":"generator/predict"}"#;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-9 * a.abs().max(b.abs()).max(1.0)
    }

    #[test]
    fn the_file_system_of_a_path_is_its_longest_mount_point() {
        let mounts = "/dev/vda / ext4 rw 0 0\ntmpfs /tmp tmpfs rw 0 0\n\
                      /dev/vdb /work/my\\040disk xfs rw 0 0\n";
        let fs = |p: &str| file_system(mounts, Path::new(p)).map(|(k, d)| format!("{k} {d}"));
        assert_eq!(fs("/tmp/x").as_deref(), Some("tmpfs tmpfs"));
        assert_eq!(fs("/tmpx/y").as_deref(), Some("ext4 /dev/vda"));
        assert_eq!(fs("/work/my disk/t").as_deref(), Some("xfs /dev/vdb"));
        assert_eq!(fs("/").as_deref(), Some("ext4 /dev/vda"));
        assert_eq!(file_system("", Path::new("/x")), None);
    }

    #[test]
    fn criterion_files_are_read() {
        let b = parse_bench(BENCHMARK, ESTIMATES, Some(SAMPLE)).expect("the fixture parses");
        assert_eq!(b.id, "ceiling/pipeline_parallel");
        assert_eq!(b.group, "ceiling");
        assert_eq!(b.elements, Some(2000));
        assert!(close(b.median_ns, 120_506_474.7));
        assert!(close(b.low_ns, 116_695_526.14));
        assert!(close(b.high_ns, 129_765_823.75));
        assert!(close(b.mad_ns, 6_962_872.13));
        assert_eq!(b.samples, Some(3));

        let p = parse_bench(NO_GROUP, ESTIMATES, None).expect("the fixture parses");
        assert_eq!(p.id, "generator/predict");
        assert_eq!(p.function, None);
        assert_eq!(p.elements, None);
        assert_eq!(p.samples, None);
    }

    #[test]
    fn criterion_files_missing_fields_are_named() {
        let err = parse_bench(BENCHMARK, r#"{"median":{}}"#, None).expect_err("no estimate");
        assert!(err.contains("/median/point_estimate"), "{err}");
        let err = parse_bench("{}", ESTIMATES, None).expect_err("no group");
        assert!(err.contains("group_id"), "{err}");
        let err = parse_bench("not json", ESTIMATES, None).expect_err("not json");
        assert!(err.starts_with("benchmark.json is not JSON"), "{err}");
    }

    #[test]
    fn criterion_directory_is_walked() {
        let dir = std::env::temp_dir().join(format!("xtask-criterion-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let put = |rel: &str, text: &str| {
            let p = dir.join(rel);
            fs::create_dir_all(p.parent().expect("a relative path has a parent"))
                .expect("the temporary directory is writable");
            fs::write(p, text).expect("the temporary directory is writable");
        };
        put("ceiling/pipeline_parallel/new/benchmark.json", BENCHMARK);
        put("ceiling/pipeline_parallel/new/estimates.json", ESTIMATES);
        // The previous run's results are not this run's.
        put("ceiling/pipeline_parallel/base/benchmark.json", NO_GROUP);
        put("ceiling/pipeline_parallel/base/estimates.json", ESTIMATES);
        put("generator_predict/new/benchmark.json", NO_GROUP);
        put("generator_predict/new/estimates.json", ESTIMATES);
        put("report/index.html", "<html></html>");
        let benches = read_criterion(&dir).expect("the directory reads");
        let _ = fs::remove_dir_all(&dir);
        let ids: Vec<&str> = benches.iter().map(|b| b.id.as_str()).collect();
        assert_eq!(ids, ["ceiling/pipeline_parallel", "generator/predict"]);
        assert_eq!(
            read_criterion(Path::new("/nonexistent/criterion")).expect("absent is empty"),
            []
        );
    }

    fn bench(id: &str, elements: Option<u64>, median: f64) -> Bench {
        let (group, function) = id.rsplit_once('/').expect("ids in tests have a slash");
        Bench {
            id: id.to_owned(),
            group: group.to_owned(),
            function: Some(function.to_owned()),
            elements,
            median_ns: median,
            low_ns: median * 0.9,
            high_ns: median * 1.2,
            mad_ns: median * 0.1,
            samples: Some(10),
        }
    }

    #[test]
    fn criterion_figures_convert_to_items() {
        let f = criterion_figures(&[bench("cache/get_hit/dynamic", Some(1000), 2_000_000.0)]);
        assert_eq!(f.len(), 2);
        assert_eq!(f[0].id, "criterion/cache/get_hit/dynamic/time");
        assert!(close(f[0].median, 2000.0));
        assert!(close(f[0].low, 1800.0));
        assert!(close(f[0].high, 2400.0));
        assert_eq!(f[1].id, "criterion/cache/get_hit/dynamic/rate");
        assert_eq!(f[1].better, Better::Higher);
        assert!(close(f[1].median, 500_000.0));
        // The slowest time gives the lowest rate.
        assert!(close(f[1].low, 1e12 / 2_400_000.0));
        assert!(close(f[1].high, 1e12 / 1_800_000.0));

        let f = criterion_figures(&[bench("add/hit/static", None, 5000.0)]);
        assert_eq!(f.len(), 1);
        assert!(close(f[0].median, 5000.0));
        assert!(f[0].label.ends_with("per iteration"));
    }

    #[test]
    fn ratios_pair_dynamic_with_static_and_pipeline_with_ceiling() {
        let benches = [
            bench("cache/get_hit/dynamic", Some(1000), 3000.0),
            bench("cache/get_hit/static", Some(1000), 2000.0),
            bench("cache/put/dynamic", Some(1000), 1000.0),
            bench("ceiling/pipeline_add_1000", Some(1000), 50_000.0),
            bench("ceiling/bare_redb_insert_1000", Some(1000), 10_000.0),
            bench("ceiling/pipeline_parallel", Some(2000), 80_000.0),
        ];
        let figures = criterion_figures(&benches);
        let r = ratio_figures(&benches, &figures);
        let ids: Vec<&str> = r.iter().map(|f| f.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ratio/cache/get_hit/dynamic_over_static",
                "ratio/ceiling/pipeline_add_1000_over_bare_redb_insert_1000"
            ]
        );
        assert!(close(r[0].median, 1.5));
        assert!(close(r[0].low, 2700.0 / 2400.0));
        assert!(close(r[0].high, 3600.0 / 1800.0));
        assert!(close(r[1].median, 5.0));
    }

    #[test]
    fn runs_give_median_range_and_mad() {
        let f = Figure::from_runs(
            "x".into(),
            "x".into(),
            units::ENTRIES_PER_S,
            Better::Higher,
            &[10.0, 30.0, 20.0, 100.0],
        )
        .expect("there are runs");
        // The upper middle value: a value that was measured.
        assert_eq!(f.median, 30.0);
        assert_eq!((f.low, f.high), (10.0, 100.0));
        // Deviations from 30: 20, 0, 10, 70 -> upper middle 20.
        assert_eq!(f.spread, Some(20.0));
        assert_eq!(f.runs, Some(4));
        assert!(Figure::from_runs("x".into(), "x".into(), "s", Better::Lower, &[]).is_none());
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let v: Vec<u64> = (1..=100).collect();
        for (q, want) in [(0.5, 50), (0.9, 90), (0.99, 99), (1.0, 100), (0.001, 1)] {
            assert_eq!(percentile(&v, q), want, "q = {q}");
        }
        assert_eq!(percentile(&[7], 0.5), 7);
        let (lo, hi) = percentile_interval(&v, 0.5);
        // 100 * 0.5 -/+ 1.96 * 5 = 40.2 .. 59.8 -> ranks 40 and 60.
        assert_eq!((lo, hi), (40, 60));
        let (lo, hi) = percentile_interval(&v, 0.99);
        assert!(lo <= 99 && hi == 100, "{lo}..{hi}");
        assert_eq!(percentile_interval(&[3], 0.99), (3, 3));
    }

    #[test]
    fn latency_figures_cover_the_percentiles_and_max() {
        let ns: Vec<u64> = (1..=1000).rev().collect();
        let f = latency_figures("miss", &ns);
        let got: Vec<(&str, f64)> = f.iter().map(|f| (f.id.as_str(), f.median)).collect();
        assert_eq!(
            got,
            [
                ("add/latency/miss/p50", 500.0),
                ("add/latency/miss/p90", 900.0),
                ("add/latency/miss/p99", 990.0),
                ("add/latency/miss/max", 1000.0),
            ]
        );
        assert!(f.iter().all(|f| f.runs == Some(1000)));
        assert!(latency_figures("hit", &[]).is_empty());
    }

    #[test]
    fn sizing_arithmetic() {
        let p = project(&SizingInputs {
            bytes_per_entry: 3000.0,
            peak_rss_bytes: 100e6,
            shards_per_process: 2.0,
            entries_per_s: 20_000.0,
        });
        // 3000 B x 1e9 x 1.5 = 4.5 TB -> 3 machines of 2 TB.
        assert!(close(p.disk_bytes, 4.5e12));
        assert_eq!(p.machines_for_disk, 3.0);
        // 1e9 / 20,000/s = 50,000 s: within a day on one machine.
        assert!(close(p.load_time_one_machine_s, 50_000.0));
        assert_eq!(p.machines_for_load_time, 1.0);
        assert_eq!(p.machines, 3.0);
        // 1e9 / 25e6 = 40 shards, 14 per machine, 7 processes of 2.
        assert_eq!(p.shards, 40.0);
        assert_eq!(p.shards_per_machine, 14.0);
        assert_eq!(p.processes_per_machine, 7.0);
        assert!(close(p.memory_per_machine_bytes, 700e6));
        assert!(close(p.memory_total_bytes, 2100e6));
        assert!(close(p.load_time_s, 50_000.0 / 3.0));

        // Slow loading needs machines for time, not for disk.
        let p = project(&SizingInputs {
            bytes_per_entry: 100.0,
            peak_rss_bytes: 1.0,
            shards_per_process: 1.0,
            entries_per_s: 1000.0,
        });
        assert_eq!(p.machines_for_disk, 1.0);
        // 1e6 s / 86,400 s = 11.6 -> 12.
        assert_eq!(p.machines_for_load_time, 12.0);
        assert_eq!(p.machines, 12.0);
    }

    #[test]
    fn sizing_figures_span_best_and_worst() {
        let at = |b: f64, r: f64| SizingInputs {
            bytes_per_entry: b,
            peak_rss_bytes: 1e8,
            shards_per_process: 2.0,
            entries_per_s: r,
        };
        let s = Sizing::new(
            at(3000.0, 20_000.0),
            at(2000.0, 30_000.0),
            at(4000.0, 10_000.0),
            vec![],
        );
        let f = s.figures();
        let disk = f
            .iter()
            .find(|f| f.id == "sizing/disk_bytes")
            .expect("disk is a figure");
        assert!(close(disk.median, 4.5e12));
        assert!(close(disk.low, 3e12));
        assert!(close(disk.high, 6e12));
    }

    #[test]
    fn dates_are_iso8601_utc() {
        for (secs, want) in [
            (0, "1970-01-01T00:00:00Z"),
            (951_782_400, "2000-02-29T00:00:00Z"),
            (1_700_000_000, "2023-11-14T22:13:20Z"),
            (4_107_542_399, "2100-02-28T23:59:59Z"),
            (4_107_542_400, "2100-03-01T00:00:00Z"),
        ] {
            assert_eq!(iso8601_utc(secs), want, "{secs}");
        }
    }

    #[test]
    fn proc_files_are_parsed() {
        let meminfo = "MemTotal:       24589164 kB\nMemFree:        22000000 kB\n";
        assert_eq!(parse_meminfo(meminfo), Some(24_589_164 * 1024));
        assert_eq!(parse_meminfo("MemFree: 1 kB\n"), None);
        let cpuinfo = "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 7B13\n\nprocessor\t: 1\nmodel name\t: AMD EPYC 7B13\n";
        assert_eq!(parse_cpu_model(cpuinfo), Some("AMD EPYC 7B13".to_owned()));
        assert_eq!(parse_cpu_model("processor : 0\n"), None);
    }

    #[test]
    fn reports_round_trip_through_json() {
        let report = Report {
            machine: Machine {
                cores: 2,
                memory_bytes: Some(1 << 30),
                cpu_model: Some("cpu".into()),
                kernel: None,
            },
            commit: Commit {
                id: "abc".into(),
                dirty: true,
            },
            date: "2024-01-01T00:00:00Z".into(),
            quick: true,
            filter: Some("add".into()),
            duration_s: 12.5,
            figures: latency_figures("hit", &[1, 2, 3]),
            batch: Vec::new(),
            sizing: None,
            latency_count: Some(3),
            notes: Vec::new(),
        };
        let text = report.to_json().to_string();
        assert_eq!(Report::from_json(&text), Ok(report));

        let err = Report::from_json(r#"{"format": 1, "figures": [{"id": "x"}]}"#)
            .expect_err("a figure without fields");
        assert_eq!(err, "figure 1 has no text `label`");
        let err = Report::from_json(r#"{"figures": []}"#).expect_err("no format");
        assert_eq!(err, "report format missing, expected 1");
    }
}
