//! The readable side of `cargo xtask bench`: `report.md` from a [`Report`], and the comparison
//! of two reports figure by figure (`--compare`).
//!
//! Figures are stored in base units (ns, bytes, items/s); here they are scaled for reading, so
//! that a table of nanoseconds and gigabytes stays legible.

use std::fmt::Write as _;

use crate::report::{ASSUMPTIONS, Better, Figure, Report, units};

/// A value in its unit, scaled for reading: `1.23 ms`, `70.1 MiB`, `22,305/s`, `1.52x`.
pub fn value(unit: &str, v: f64) -> String {
    if !v.is_finite() {
        return "-".to_owned();
    }
    match unit {
        units::NS => time_ns(v),
        units::BYTES => bytes(v),
        units::PER_S | units::ENTRIES_PER_S => format!("{}/s", grouped(v)),
        units::RATIO => format!("{}x", sig3(v)),
        units::SECONDS => duration_s(v),
        units::COUNT => grouped(v),
        _ => sig3(v),
    }
}

/// Three significant digits, without an exponent.
fn sig3(v: f64) -> String {
    let a = v.abs();
    if a >= 100.0 {
        format!("{v:.0}")
    } else if a >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// A number rounded to an integer with thousands separators when it is large; small ones keep
/// three significant digits.
fn grouped(v: f64) -> String {
    if v.abs() < 100.0 && v.fract() != 0.0 {
        return sig3(v);
    }
    let digits = format!("{:.0}", v.abs());
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if v < 0.0 { format!("-{out}") } else { out }
}

fn time_ns(ns: f64) -> String {
    let a = ns.abs();
    if a < 1e3 {
        format!("{} ns", sig3(ns))
    } else if a < 1e6 {
        format!("{} µs", sig3(ns / 1e3))
    } else if a < 1e9 {
        format!("{} ms", sig3(ns / 1e6))
    } else {
        format!("{} s", sig3(ns / 1e9))
    }
}

fn bytes(b: f64) -> String {
    const STEPS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b;
    let mut step = 0;
    while v.abs() >= 1024.0 && step + 1 < STEPS.len() {
        v /= 1024.0;
        step += 1;
    }
    if step == 0 {
        format!("{v:.0} B")
    } else {
        format!("{} {}", sig3(v), STEPS[step])
    }
}

fn duration_s(s: f64) -> String {
    if s < 120.0 {
        format!("{} s", sig3(s))
    } else if s < 7200.0 {
        format!("{} min", sig3(s / 60.0))
    } else if s < 2.0 * 86_400.0 {
        format!("{} h", sig3(s / 3600.0))
    } else {
        format!("{} days", sig3(s / 86_400.0))
    }
}

/// The median with its range and spread: `1.23 ms [1.20 ms – 1.31 ms] ±20.1 µs`.
fn with_range(f: &Figure) -> String {
    let mut out = value(f.unit, f.median);
    if f.low != f.high {
        let _ = write!(
            out,
            " [{} – {}]",
            value(f.unit, f.low),
            value(f.unit, f.high)
        );
    }
    if let Some(s) = f.spread.filter(|s| *s > 0.0) {
        let _ = write!(out, " ±{}", value(f.unit, s));
    }
    out
}

fn runs(f: &Figure) -> String {
    f.runs.map_or_else(|| "-".to_owned(), |r| r.to_string())
}

/// The header every report and comparison names a report by.
fn identity(r: &Report) -> String {
    format!(
        "commit {}, {}, on {}",
        r.commit.describe(),
        r.date,
        r.machine.describe()
    )
}

/// `report.md`: the header, how to read it, one table per section, the charts that were drawn
/// (file names relative to the report), and the comparison when one was made.
pub fn report(r: &Report, charts: &[(&str, &str)], comparison: Option<&str>) -> String {
    let mut md = String::from("# Benchmark report\n\n");
    let mode = if r.quick { "quick" } else { "full" };
    let _ = writeln!(md, "| | |\n|---|---|");
    let _ = writeln!(md, "| machine | {} |", r.machine.describe());
    let _ = writeln!(md, "| commit | {} |", r.commit.describe());
    let _ = writeln!(md, "| date (UTC) | {} |", r.date);
    let _ = writeln!(
        md,
        "| run | {mode}, filter: {}, took {} |\n",
        r.filter
            .as_deref()
            .map_or("none".to_owned(), |f| format!("`{f}`")),
        value(units::SECONDS, r.duration_s)
    );
    md.push_str(
        "## How to read this\n\n\
         Every figure is a median. In brackets, its range: for criterion benchmarks and latency \
         percentiles the 95 % confidence interval of that median or percentile, for repeated \
         runs (scale test, batch) the lowest and highest run, for ratios and the projection the \
         values the ends of their inputs' ranges give. After ±, the median absolute deviation \
         of the samples or runs. Times are per item handled where a benchmark handles a batch. \
         `dynamic` runs the stages through the plugin libraries as `registry` loads them, \
         `static` the same implementations linked into the benchmark: their ratio is the cost \
         of the plugin boundary. `ceiling` compares the whole pipeline with bare redb writes of \
         exactly the rows the redb storage writes for the same entries (latest revisions, \
         pending fingerprints, field index, sequences) at the same durability, encoded \
         beforehand and without the look-ups: `pipeline / bare` at or below 1.43x is 0.7 of \
         the ceiling's throughput or more. A machine shared with other work gives noisy \
         figures (±30 % is common on 2 cores): compare ratios within one report, and two \
         reports only from the same machine. `cargo xtask bench --compare OLD.json --against \
         NEW.json` prints the change of every figure.\n\n",
    );

    let section = |prefix: &str| -> Vec<&Figure> {
        r.figures
            .iter()
            .filter(|f| f.id.starts_with(prefix))
            .collect()
    };

    let criterion = section("criterion/");
    if !criterion.is_empty() {
        md.push_str(
            "## Criterion benchmarks\n\nTime per item where the benchmark handles several per \
             iteration (its items/s is given), else per iteration.\n\n\
             | benchmark | time | items/s | samples |\n|---|---|---|---|\n",
        );
        for t in criterion.iter().filter(|f| f.id.ends_with("/time")) {
            let bench = &t.id["criterion/".len()..t.id.len() - "/time".len()];
            let rate = r
                .figure(&format!("criterion/{bench}/rate"))
                .map_or_else(|| "-".to_owned(), with_range);
            let _ = writeln!(
                md,
                "| `{bench}` | {} | {rate} | {} |",
                with_range(t),
                runs(t)
            );
        }
        md.push('\n');
    }

    let ratios = section("ratio/");
    if !ratios.is_empty() {
        md.push_str(
            "## Ratios\n\nTime over time: above 1, the first costs more. `dynamic / static` is \
             the cost of the plugin boundary, `pipeline / bare` that of everything the pipeline \
             does besides redb's writes of storage's rows (at or below 1.43x: 0.7 of the \
             ceiling's throughput or more).\n\n| ratio | median [range] |\n|---|---|\n",
        );
        for f in ratios {
            let _ = writeln!(md, "| {} | {} |", f.label, with_range(f));
        }
        md.push('\n');
    }

    let redis = section("redis/");
    if !redis.is_empty() {
        md.push_str(
            "## Redis Cluster

`registry batch` into a loopback Redis Cluster of 3 masters and \
             3 replicas (`scripts/redis-cluster`), 12 shards; memory is the nodes' `used_memory` \
             grown over the run, per entry.\n\n\
             | figure | median [range] ±MAD | runs |\n|---|---|---|\n",
        );
        for f in redis {
            let _ = writeln!(md, "| {} | {} | {} |", f.label, with_range(f), runs(f));
        }
        let projected = section("sizing/redis/");
        if !projected.is_empty() {
            md.push_str(
                "\nFor 1,000,000,000 entries (constants in `xtask/src/bench_redis.rs`: one \
                 replica per master, nodes of 64 GB of which 75 % hold data):\n\n\
                 | result | median [range] |\n|---|---|\n",
            );
            for f in projected {
                let _ = writeln!(md, "| {} | {} |", f.label, with_range(f));
            }
        }
        md.push('\n');
    }

    let scale = section("scale/");
    if !scale.is_empty() {
        let (stages, totals): (Vec<&Figure>, Vec<&Figure>) = scale
            .into_iter()
            .partition(|f| f.id.starts_with("scale/latency/"));
        md.push_str(
            "## Scale test\n\n`registry scale-test` into a new data directory: generated \
             requests, registered in batches of 1,000.\n\n\
             | figure | median [range] ±MAD | runs |\n|---|---|---|\n",
        );
        for f in totals {
            let _ = writeln!(md, "| {} | {} | {} |", f.label, with_range(f), runs(f));
        }
        if !stages.is_empty() {
            md.push_str(
                "\nTime of each stage call, per call (one call per batch, per shard for \
                 storage), not per entry:\n\n| stage call | p50 | p99 |\n|---|---|---|\n",
            );
            for p50 in stages.iter().filter(|f| f.id.ends_with("/p50")) {
                let stage = &p50.id["scale/latency/".len()..p50.id.len() - "/p50".len()];
                let p99 = r
                    .figure(&format!("scale/latency/{stage}/p99"))
                    .map_or_else(|| "-".to_owned(), with_range);
                let _ = writeln!(md, "| `{stage}` | {} | {p99} |", with_range(p50));
            }
        }
        md.push('\n');
    }

    for (name, title, what) in [
        (
            "batch/shards",
            "## Batch: shards",
            "`registry batch` of the same requests into a new data directory per run, 1,000 \
             requests per call, with 1, 2 and 4 shards.",
        ),
        (
            "batch/batch_size",
            "## Batch: batch size",
            "`registry batch` with the default shard count (one per core) and 100, 1,000 and \
             10,000 requests per call.",
        ),
    ] {
        let rows: Vec<_> = r.batch.iter().filter(|b| b.section == name).collect();
        if rows.is_empty() {
            continue;
        }
        let _ = writeln!(
            md,
            "{title}\n\n{what} {} requests, {} runs each.\n\n\
             | shards | batch size | entries/s [range] ±MAD | speed-up | peak RSS |\n|---|---|---|---|---|",
            grouped(rows[0].requests as f64),
            rows[0].rates.len()
        );
        let base = r
            .figure(&batch_id(
                name,
                rows[0].shards,
                rows[0].batch_size,
                "entries_per_s",
            ))
            .map(|f| f.median);
        for b in &rows {
            let rate = r.figure(&batch_id(name, b.shards, b.batch_size, "entries_per_s"));
            let rss = r.figure(&batch_id(name, b.shards, b.batch_size, "peak_rss_bytes"));
            let speedup = match (rate, base) {
                (Some(f), Some(base)) if base > 0.0 => format!("{:.2}x", f.median / base),
                _ => "-".to_owned(),
            };
            let _ = writeln!(
                md,
                "| {} | {} | {} | {speedup} | {} |",
                b.shards,
                grouped(b.batch_size as f64),
                rate.map_or_else(|| "-".to_owned(), with_range),
                rss.map_or_else(|| "-".to_owned(), |f| value(f.unit, f.median)),
            );
        }
        md.push('\n');
    }
    for (file, title) in charts.iter().filter(|(f, _)| f.starts_with("throughput")) {
        let _ = writeln!(md, "![{title}]({file})\n");
    }

    let startup = section("startup/");
    if !startup.is_empty() {
        md.push_str(
            "## Start-up

A whole `registry get` of a stored id, process start to exit, \
             with the plugins built into the binary and with the same plugins loaded from their \
             libraries (alternating runs; range: 95 % confidence interval of the percentile).\n\n\
             | figure | value [range] | runs |\n|---|---|---|\n",
        );
        for f in startup {
            let _ = writeln!(md, "| {} | {} | {} |", f.label, with_range(f), runs(f));
        }
        md.push('\n');
    }

    if !section("serve/").is_empty() {
        md.push_str(&serve(r));
    }
    if !section("search/").is_empty() {
        md.push_str(&search(r));
    }

    let latency = section("add/latency/");
    if !latency.is_empty() {
        let _ = writeln!(
            md,
            "## Single add latency\n\nOne `add` at a time through the plugins, {} each: `miss` \
             registers a new request (one durable commit), `hit` an already registered one \
             (answered from the cache). The range is the 95 % confidence interval of the \
             percentile.\n\n| | miss | hit |\n|---|---|---|",
            r.latency_count
                .map_or_else(|| "-".to_owned(), |n| grouped(n as f64))
        );
        for p in ["p50", "p90", "p99", "max"] {
            let cell = |kind: &str| {
                r.figure(&format!("add/latency/{kind}/{p}"))
                    .map_or_else(|| "-".to_owned(), with_range)
            };
            let _ = writeln!(md, "| {p} | {} | {} |", cell("miss"), cell("hit"));
        }
        md.push('\n');
    }
    for (file, title) in charts.iter().filter(|(f, _)| f.starts_with("latency")) {
        let _ = writeln!(md, "![{title}]({file})\n");
    }

    if let Some(s) = &r.sizing {
        md.push_str(
            "## Sizing projection for 1,000,000,000 entries\n\n\
             From the figures measured here and these assumptions (constants in \
             `xtask/src/report.rs`):\n\n| assumption | value | meaning |\n|---|---|---|\n",
        );
        for (name, v, unit, meaning) in ASSUMPTIONS {
            let _ = writeln!(md, "| `{name}` | {} | {meaning} |", value(unit, v));
        }
        md.push_str("\n| measured input | value | from |\n|---|---|---|\n");
        let i = &s.inputs;
        for (name, key, v, unit) in [
            (
                "bytes per entry",
                "bytes_per_entry",
                i.bytes_per_entry,
                units::BYTES,
            ),
            (
                "peak RSS per process",
                "peak_rss_bytes",
                i.peak_rss_bytes,
                units::BYTES,
            ),
            (
                "shards per process",
                "shards_per_process",
                i.shards_per_process,
                units::COUNT,
            ),
            (
                "entries/s per machine",
                "entries_per_s",
                i.entries_per_s,
                units::ENTRIES_PER_S,
            ),
        ] {
            let from = s
                .sources
                .iter()
                .find(|(k, _)| *k == key)
                .map_or("-", |(_, v)| v.as_str());
            // A figure id is code; a description is not.
            let from = if from.contains(' ') {
                from.to_owned()
            } else {
                format!("`{from}`")
            };
            let _ = writeln!(md, "| {name} | {} | {from} |", value(unit, v));
        }
        let (m, b, w) = (&s.median, &s.best, &s.worst);
        md.push_str("\n| result | at the medians | best | worst |\n|---|---|---|---|\n");
        for ((_, name, unit, v), ((.., best), (.., worst))) in
            m.rows().into_iter().zip(b.rows().into_iter().zip(w.rows()))
        {
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                value(unit, v),
                value(unit, best),
                value(unit, worst)
            );
        }
        md.push_str(
            "\nMemory assumes a process's peak RSS does not grow with the entries already \
             stored (the caches, redb's page cache and the pending fingerprints are bounded by \
             configuration; the scale test measured it at its count only). Load time assumes \
             every machine loads its own shards at the rate measured here, without slowing the \
             others down. Best and worst take the favourable and unfavourable ends of the \
             measured ranges.\n\n",
        );
    }

    if !r.notes.is_empty() {
        md.push_str("## Notes\n\n");
        for n in &r.notes {
            let _ = writeln!(md, "- {n}");
        }
        md.push('\n');
    }
    if let Some(c) = comparison {
        md.push_str("## Compared with an earlier report\n\n");
        md.push_str(c);
    }
    md
}

/// The `serve` section: the server's figures beside the command line's, and the goals.
fn serve(r: &Report) -> String {
    use crate::bench_serve::{
        GET_CLIENTS, GOAL_GET_P99_NS, GOAL_GET_PER_S, GOAL_REGISTER_SPEEDUP, LIST_CLIENTS,
        LIST_PAGE, REGISTER_CLIENTS,
    };
    let median = |id: &str| r.figure(&format!("serve/{id}")).map(|f| f.median);
    let cell = |id: &str| {
        r.figure(&format!("serve/{id}"))
            .map_or_else(|| "-".to_owned(), |f| value(f.unit, f.median))
    };
    let mut md = String::from(
        "## Server under load\n\n`registry serve` on 127.0.0.1 (the defaults, without the rate \
         limit), loaded from the bench's own process: one keep-alive connection per client, \
         each waiting for its answer before sending the next, on the same cores as the server. \
         Beside it, the command line does the same work on its own data directory, one process \
         at a time, each timed from spawn to exit. Latency is each request's round trip, or \
         each process's run (report.json gives each percentile's 95 % confidence interval).\n\n\
         | operation | clients | server: rate | p50 | p99 | command | command: rate | p50 | p99 |\n\
         |---|---|---|---|---|---|---|---|---|\n",
    );
    let entries = r
        .figure("serve/batch/entries_per_s")
        .and_then(|f| f.runs)
        .map_or_else(|| "-".to_owned(), |n| grouped(n as f64));
    for (what, clients, server, command, cli) in [
        (
            "get one entry".to_owned(),
            GET_CLIENTS,
            "get",
            "`registry get ID`".to_owned(),
            "cli/get",
        ),
        (
            format!("list a page of {LIST_PAGE}"),
            LIST_CLIENTS,
            "list",
            format!("`registry list --limit {LIST_PAGE}`"),
            "cli/list",
        ),
        (
            "register a new entry".to_owned(),
            1,
            "register_1",
            "`registry add`".to_owned(),
            "cli/add",
        ),
        (
            "register a new entry".to_owned(),
            REGISTER_CLIENTS,
            "register_n",
            "`registry add`".to_owned(),
            "cli/add",
        ),
    ] {
        let _ = writeln!(
            md,
            "| {what} | {clients} | {} | {} | {} | {command} | {} | {} | {} |",
            cell(&format!("{server}/per_s")),
            cell(&format!("{server}/p50")),
            cell(&format!("{server}/p99")),
            cell(&format!("{cli}/per_s")),
            cell(&format!("{cli}/p50")),
            cell(&format!("{cli}/p99")),
        );
    }
    let _ = writeln!(
        md,
        "| batch of {entries} requests (entries/s) | 1 | {} | - | - | `registry batch` | {} | - | - |\n",
        cell("batch/entries_per_s"),
        cell("cli/batch/entries_per_s"),
    );
    let verdict = |met: bool| if met { "met" } else { "not met" };
    if let (Some(rate), Some(p99)) = (median("get/per_s"), median("get/p99")) {
        let _ = writeln!(
            md,
            "- get, {GET_CLIENTS} clients: {} with a p99 of {}. The issue's goal, at least {} \
             with a p99 of at most {} at {GET_CLIENTS} clients on 2 cores (this machine: {} \
             cores): {}.",
            value(units::PER_S, rate),
            value(units::NS, p99),
            value(units::PER_S, GOAL_GET_PER_S),
            value(units::NS, GOAL_GET_P99_NS),
            r.machine.cores,
            verdict(rate >= GOAL_GET_PER_S && p99 <= GOAL_GET_P99_NS)
        );
    }
    if let Some(speedup) = median("register/speedup") {
        let _ = writeln!(
            md,
            "- register, {REGISTER_CLIENTS} clients over 1 client: {}. The issue's goal, at \
             least {}: {}.",
            value(units::RATIO, speedup),
            value(units::RATIO, GOAL_REGISTER_SPEEDUP),
            verdict(speedup >= GOAL_REGISTER_SPEEDUP)
        );
    }
    let cpu: Vec<String> = [
        ("get", "get".to_owned()),
        ("list", "list".to_owned()),
        ("register_1", "register, 1 client".to_owned()),
        (
            "register_n",
            format!("register, {REGISTER_CLIENTS} clients"),
        ),
    ]
    .into_iter()
    .filter_map(|(id, what)| {
        let rate = median(&format!("{id}/per_s"))?;
        let server = median(&format!("{id}/server_cpu_per_request"))?;
        let client = median(&format!("{id}/client_cpu_per_request"))?;
        Some(format!(
            "{what} {} / {} ({} / {} cores busy)",
            value(units::NS, server),
            value(units::NS, client),
            sig3(server * rate / 1e9),
            sig3(client * rate / 1e9)
        ))
    })
    .collect();
    if !cpu.is_empty() {
        let _ = writeln!(
            md,
            "- CPU time per request, server / load generator: {}.",
            cpu.join("; ")
        );
    }
    if let Some(n) = median("register_n/entries_per_commit") {
        let one = median("register_1/entries_per_commit")
            .map_or_else(String::new, |m| format!(", {} with 1 client", sig3(m)));
        let _ = writeln!(
            md,
            "- mean entries per group commit (`/metrics`): {} with {REGISTER_CLIENTS} \
             clients{one}.",
            sig3(n)
        );
    }
    if let Some(t) = median("register_n/commit_time") {
        let one = median("register_1/commit_time").map_or_else(String::new, |m| {
            format!(", {} ms with 1 client", sig3(m / 1e6))
        });
        let _ = writeln!(
            md,
            "- mean time of one group commit (`/metrics`): {} ms with {REGISTER_CLIENTS} \
             clients{one}.",
            sig3(t / 1e6)
        );
    }
    md.push('\n');
    md
}

/// The `search` section: queries from 1 and several clients, with and without a scope, the
/// index's cost, the writes while it follows, and the goal.
fn search(r: &Report) -> String {
    use crate::bench_search::{CONCURRENT_CLIENTS, GOAL_ENTRIES, GOAL_P99_NS, REGISTER_CLIENTS};
    let median = |id: &str| r.figure(&format!("search/{id}")).map(|f| f.median);
    let cell = |id: &str| {
        r.figure(&format!("search/{id}"))
            .map_or_else(|| "-".to_owned(), |f| value(f.unit, f.median))
    };
    let entries = median("entries").unwrap_or(0.0);
    let mut md = format!(
        "## Search\n\n`GET /v1/search` of `registry serve` over {} entries made by `registry \
         scale-test`: two-word queries (words of the titles of a sample of entries, three in four \
         from one title), 20 hits a page, each hit read from storage. One client waits for each \
         answer before sending the next; {CONCURRENT_CLIENTS} clients are the load generator's, \
         on the same cores as the server. Matches are all the entries a query matches, hits \
         those on the page.\n\n\
         | query | clients | queries/s | p50 | p90 | p99 | max | median hits | median matches |\n\
         |---|---|---|---|---|---|---|---|---|\n",
        grouped(entries)
    );
    for (what, clients, id) in [
        ("two words", 1, "query_1"),
        ("two words", CONCURRENT_CLIENTS, "query_n"),
        ("two words, one scope", 1, "scoped_1"),
        ("two words, one scope", CONCURRENT_CLIENTS, "scoped_n"),
    ] {
        if median(&format!("{id}/per_s")).is_none() {
            continue;
        }
        let _ = writeln!(
            md,
            "| {what} | {clients} | {} | {} | {} | {} | {} | {} | {} |",
            cell(&format!("{id}/per_s")),
            cell(&format!("{id}/p50")),
            cell(&format!("{id}/p90")),
            cell(&format!("{id}/p99")),
            cell(&format!("{id}/max")),
            cell(&format!("{id}/hits")),
            cell(&format!("{id}/total")),
        );
    }
    md.push('\n');
    if let (Some(p50), Some(p99)) = (median("query_1/took/p50"), median("query_1/took/p99")) {
        let _ = writeln!(
            md,
            "- the server's own time of a query (`took_ms`: the index, then each hit read from \
             storage), 1 client: p50 {}, p99 {}.",
            value(units::NS, p50),
            value(units::NS, p99)
        );
    }
    if let Some(s) = median("reindex/seconds") {
        let _ = writeln!(
            md,
            "- `registry reindex`: {} ({}); the index takes {} on disk, {} per entry.",
            value(units::SECONDS, s),
            cell("reindex/per_s"),
            cell("index/bytes"),
            cell("index/bytes_per_entry")
        );
    }
    if let Some(s) = median("ready_s") {
        let _ = writeln!(
            md,
            "- `registry serve`: the index caught up with storage {} after the start.",
            value(units::SECONDS, s)
        );
    }
    if let Some(rate) = median("register/per_s") {
        let _ = writeln!(
            md,
            "- registering from {REGISTER_CLIENTS} clients while the index follows: {} (p50 {}, \
             p99 {}); the largest lag meanwhile {} changes ({}), none {} after the last write.",
            value(units::PER_S, rate),
            cell("register/p50"),
            cell("register/p99"),
            cell("register/lag_changes_max"),
            cell("register/lag_s_max"),
            cell("register/catch_up_s")
        );
    }
    if let Some(p99) = median("query_1/p99") {
        let verdict = if entries < GOAL_ENTRIES as f64 {
            format!(
                "not judged, this run searched fewer than {} entries",
                grouped(GOAL_ENTRIES as f64)
            )
        } else if p99 <= GOAL_P99_NS {
            "met".to_owned()
        } else {
            "not met".to_owned()
        };
        let _ = writeln!(
            md,
            "- two words, 1 client, over {} entries: p99 {}. The issue's goal, a p99 of at most \
             {} over {} entries on this machine ({} cores): {verdict}. A machine shared with \
             other work moves such figures by tens of percent between runs.",
            grouped(entries),
            value(units::NS, p99),
            value(units::NS, GOAL_P99_NS),
            grouped(GOAL_ENTRIES as f64),
            r.machine.cores
        );
    }
    md.push('\n');
    md
}

/// The id of a batch figure.
pub fn batch_id(section: &str, shards: usize, batch_size: usize, what: &str) -> String {
    format!("{section}/shards_{shards}/batch_{batch_size}/{what}")
}

/// How a figure changed between two reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub id: String,
    pub unit: &'static str,
    pub old: Option<f64>,
    pub new: Option<f64>,
    /// (new - old) / old, in percent; `None` when the figure is in one report only or old is 0.
    pub percent: Option<f64>,
    pub verdict: &'static str,
}

/// Every figure of either report: those in both with their change, then those only in the new
/// one (`added`), then those only in the old one (`removed`).
pub fn compare(old: &Report, new: &Report) -> Vec<Change> {
    let mut out = Vec::new();
    for n in &new.figures {
        let Some(o) = old.figure(&n.id) else {
            out.push(Change {
                id: n.id.clone(),
                unit: n.unit,
                old: None,
                new: Some(n.median),
                percent: None,
                verdict: "added",
            });
            continue;
        };
        let percent = (o.median != 0.0).then(|| (n.median - o.median) / o.median.abs() * 100.0);
        let improved = match n.better {
            Better::Higher => n.median > o.median,
            Better::Lower => n.median < o.median,
        };
        // Overlapping ranges: the change is within what either run could have measured.
        let overlap = n.low <= o.high && o.low <= n.high;
        let verdict = match (n.median == o.median, improved, overlap) {
            (true, _, _) => "same",
            (false, true, false) => "better",
            (false, false, false) => "worse",
            (false, true, true) => "better (within noise)",
            (false, false, true) => "worse (within noise)",
        };
        out.push(Change {
            id: n.id.clone(),
            unit: n.unit,
            old: Some(o.median),
            new: Some(n.median),
            percent,
            verdict,
        });
    }
    for o in old.figures.iter().filter(|o| new.figure(&o.id).is_none()) {
        out.push(Change {
            id: o.id.clone(),
            unit: o.unit,
            old: Some(o.median),
            new: None,
            percent: None,
            verdict: "removed",
        });
    }
    out
}

/// The comparison as markdown: both reports named, then one row per figure.
pub fn comparison(old: &Report, new: &Report) -> String {
    let mut md = String::new();
    let _ = writeln!(md, "- old: {}", identity(old));
    let _ = writeln!(md, "- new: {}", identity(new));
    if old.machine != new.machine {
        md.push_str("- the machines differ: changes may come from the machine, not the code\n");
    }
    if old.quick != new.quick {
        md.push_str("- one run was quick and the other full: their sample sizes differ\n");
    }
    md.push_str("\n| figure | old | new | change | |\n|---|---|---|---|---|\n");
    let cell = |unit: &str, v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| value(unit, v));
    for c in compare(old, new) {
        let _ = writeln!(
            md,
            "| `{}` | {} | {} | {} | {} |",
            c.id,
            cell(c.unit, c.old),
            cell(c.unit, c.new),
            c.percent
                .map_or_else(|| "-".to_owned(), |p| format!("{p:+.1} %")),
            c.verdict
        );
    }
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Commit, Machine};

    fn figure(id: &str, better: Better, median: f64, low: f64, high: f64) -> Figure {
        Figure {
            id: id.to_owned(),
            label: id.to_owned(),
            unit: units::NS,
            better,
            median,
            low,
            high,
            spread: None,
            runs: None,
        }
    }

    /// A figure measured once: `v` in `unit`, its range `v` too.
    fn single(id: &str, unit: &'static str, v: f64) -> Figure {
        Figure {
            unit,
            ..figure(id, Better::Higher, v, v, v)
        }
    }

    fn sample(figures: Vec<Figure>) -> Report {
        Report {
            machine: Machine {
                cores: 2,
                memory_bytes: None,
                cpu_model: None,
                kernel: None,
            },
            commit: Commit {
                id: "0123456789abcdef".into(),
                dirty: false,
            },
            date: "2024-01-01T00:00:00Z".into(),
            quick: false,
            filter: None,
            duration_s: 1.0,
            figures,
            batch: Vec::new(),
            sizing: None,
            latency_count: None,
            notes: Vec::new(),
        }
    }

    #[test]
    fn values_are_scaled_for_reading() {
        for (unit, v, want) in [
            (units::NS, 512.0, "512 ns"),
            (units::NS, 1_234.0, "1.23 µs"),
            (units::NS, 45_600_000.0, "45.6 ms"),
            (units::NS, 2.5e9, "2.50 s"),
            (units::BYTES, 900.0, "900 B"),
            (units::BYTES, 73_662_464.0, "70.2 MiB"),
            (units::BYTES, 4.5e12, "4.09 TiB"),
            (units::ENTRIES_PER_S, 22_305.4, "22,305/s"),
            (units::PER_S, 1_234_567.0, "1,234,567/s"),
            (units::PER_S, 12.345, "12.3/s"),
            (units::RATIO, 1.5234, "1.52x"),
            (units::SECONDS, 42.0, "42.0 s"),
            (units::SECONDS, 600.0, "10.0 min"),
            (units::SECONDS, 50_000.0, "13.9 h"),
            (units::SECONDS, 1e6, "11.6 days"),
            (units::COUNT, 40.0, "40"),
            (units::ENTRIES_PER_S, 12.0, "12/s"),
            (units::COUNT, 1e9, "1,000,000,000"),
            (units::NS, f64::NAN, "-"),
        ] {
            assert_eq!(value(unit, v), want, "{unit} {v}");
        }
    }

    #[test]
    fn comparison_judges_each_change_by_its_direction() {
        let old = sample(vec![
            figure("faster", Better::Lower, 100.0, 95.0, 105.0),
            figure("slower", Better::Lower, 100.0, 95.0, 105.0),
            figure("noisy", Better::Higher, 100.0, 80.0, 120.0),
            figure("same", Better::Lower, 100.0, 100.0, 100.0),
            figure("gone", Better::Lower, 1.0, 1.0, 1.0),
        ]);
        let new = sample(vec![
            figure("faster", Better::Lower, 50.0, 45.0, 55.0),
            figure("slower", Better::Lower, 200.0, 190.0, 210.0),
            figure("noisy", Better::Higher, 90.0, 70.0, 110.0),
            figure("same", Better::Lower, 100.0, 100.0, 100.0),
            figure("new", Better::Lower, 1.0, 1.0, 1.0),
        ]);
        let got: Vec<String> = compare(&old, &new)
            .iter()
            .map(|c| format!("{} {:?} {}", c.id, c.percent, c.verdict))
            .collect();
        let want = [
            "faster Some(-50.0) better",
            "slower Some(100.0) worse",
            "noisy Some(-10.0) worse (within noise)",
            "same Some(0.0) same",
            "new None added",
            "gone None removed",
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn comparison_names_both_reports_and_rows() {
        let old = sample(vec![figure("a", Better::Lower, 2000.0, 2000.0, 2000.0)]);
        let mut new = sample(vec![figure("a", Better::Lower, 1000.0, 1000.0, 1000.0)]);
        new.commit.dirty = true;
        new.machine.cores = 4;
        let md = comparison(&old, &new);
        assert!(md.contains("- old: commit 0123456789ab, 2024-01-01T00:00:00Z, on 2 cores"));
        assert!(md.contains("- new: commit 0123456789ab (with uncommitted changes)"));
        assert!(md.contains("the machines differ"));
        assert!(
            md.contains("| `a` | 2.00 µs | 1.00 µs | -50.0 % | better |"),
            "{md}"
        );
    }

    #[test]
    fn the_server_section_sets_the_server_beside_the_command_and_judges_the_goals() {
        let mut r = sample(vec![
            single("serve/get/per_s", units::PER_S, 31_000.0),
            single("serve/get/p50", units::NS, 1e6),
            single("serve/get/p99", units::NS, 6e6),
            single("serve/cli/get/per_s", units::PER_S, 40.0),
            single("serve/get/server_cpu_per_request", units::NS, 50_000.0),
            single("serve/get/client_cpu_per_request", units::NS, 10_000.0),
            single("serve/register/speedup", units::RATIO, 12.0),
            single("serve/register_n/entries_per_commit", units::COUNT, 30.5),
        ]);
        r.figures.push(Figure {
            runs: Some(5000),
            ..single("serve/batch/entries_per_s", units::ENTRIES_PER_S, 9000.0)
        });
        let md = report(&r, &[], None);
        assert!(md.contains("## Server under load"), "{md}");
        assert!(
            md.contains("| get one entry | 32 | 31,000/s | 1.00 ms | 6.00 ms | `registry get ID` | 40/s | - | - |"),
            "{md}"
        );
        assert!(md.contains("| batch of 5,000 requests (entries/s) | 1 | 9,000/s |"));
        // Fast enough, but the p99 is over the goal's.
        assert!(md.contains("on 2 cores (this machine: 2 cores): not met."));
        assert!(md.contains("least 10.0x: met."));
        assert!(md.contains("get 50.0 µs / 10.0 µs (1.55 / 0.31 cores busy)"));
        assert!(md.contains("30.5 with 64 clients."));
    }

    #[test]
    fn the_search_section_tabulates_the_queries_and_judges_the_goal() {
        let mut r = sample(vec![
            single("search/entries", units::COUNT, 1e6),
            single("search/query_1/per_s", units::PER_S, 80.0),
            single("search/query_1/p50", units::NS, 10e6),
            single("search/query_1/p99", units::NS, 60e6),
            single("search/query_1/hits", units::COUNT, 20.0),
            single("search/query_1/total", units::COUNT, 41_000.0),
            single("search/reindex/seconds", units::SECONDS, 75.0),
            single("search/register/per_s", units::PER_S, 2500.0),
        ]);
        let md = report(&r, &[], None);
        assert!(md.contains("## Search"), "{md}");
        assert!(md.contains("over 1,000,000 entries made by"), "{md}");
        assert!(
            md.contains("| two words | 1 | 80/s | 10.0 ms | - | 60.0 ms | - | 20 | 41,000 |"),
            "{md}"
        );
        assert!(!md.contains("| two words | 4 |"), "{md}");
        assert!(md.contains("over 1,000,000 entries on this machine (2 cores): not met."));
        assert!(md.contains("`registry reindex`: 75.0 s"));
        assert!(md.contains("registering from 16 clients while the index follows: 2,500/s"));
        r.figures[0].median = 1e5;
        let md = report(&r, &[], None);
        assert!(md.contains("not judged, this run searched fewer than 1,000,000 entries"));
    }

    #[test]
    fn report_has_header_and_sections() {
        let mut r = sample(vec![
            figure(
                "criterion/add/hit/dynamic/time",
                Better::Lower,
                1e4,
                9e3,
                11e3,
            ),
            figure("add/latency/miss/p50", Better::Lower, 4e6, 3.9e6, 4.1e6),
        ]);
        r.notes.push("the scale test did not run".into());
        let md = report(
            &r,
            &[("latency-single-add.svg", "latency")],
            Some("| x |\n"),
        );
        assert!(md.starts_with("# Benchmark report\n"));
        assert!(md.contains("| commit | 0123456789ab |"));
        assert!(md.contains("## How to read this"));
        assert!(md.contains("| `add/hit/dynamic` | 10.0 µs [9.00 µs – 11.0 µs] | - | - |"));
        assert!(md.contains("| p50 | 4.00 ms [3.90 ms – 4.10 ms] | - |"));
        assert!(md.contains("![latency](latency-single-add.svg)"));
        assert!(md.contains("- the scale test did not run"));
        assert!(md.ends_with("## Compared with an earlier report\n\n| x |\n"));
        assert!(!md.contains("## Sizing"));
    }
}
