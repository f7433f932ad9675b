//! The `search` section of `cargo xtask bench`: full-text search of `registry serve` over a
//! registry of [`SearchSizes::entries`] generated entries, and what keeping the index up to
//! date costs the writes.
//!
//! The registry is made by `registry scale-test --count N --data-dir DIR` in
//! `target/bench-search/entries-N` (on the disk the project lives on, never a memory-backed
//! /tmp, and outside the scratch directory the other sections empty), with the defaults but
//! `[serve] rate_limit = 0` as in the `serve` section. Making a million entries takes a minute,
//! so a registry is kept for the next run: `made.json` beside it records the count it was made
//! with and the entries it held at the end of the last run, and it is reused while those are N
//! and at most [`REUSE_GROWTH`] more (each run's write phase adds entries to it). Then, in order:
//! - reindex: `registry reindex --format json` empties the index and fills it again from
//!   storage; its time, documents/s, and the bytes of `DATA/search` after it.
//! - ready: `registry serve --listen 127.0.0.1:0` starts and compares storage with the index
//!   (its catch-up at start); `/v1/live` is polled until `search.ready` and no lag, at most
//!   [`READY_TIMEOUT`].
//! - queries: two-word queries drawn from the titles of the first page of `GET
//!   /v1/entries?limit=1000` (three in four from one title, the fourth from two titles; English
//!   stop words and words under 3 characters left out, as the index leaves them out), the
//!   default page of 20 hits. After [`WARM_UP`] untimed queries, one client sends them one
//!   after the other (its queries/s is one over the mean round trip; each answer is read for
//!   its hits, total matches and the server's own `took_ms`), then [`CONCURRENT_CLIENTS`]
//!   clients of the load generator ([`crate::loadgen`]) send as many others. The same again
//!   with `&scope=` the commonest scope of the sample, the words taken from that scope's titles.
//! - write path: [`REGISTER_CLIENTS`] clients `POST /v1/entries` new requests for
//!   [`SearchSizes::register_s`] seconds while the index follows; `/v1/live` is polled every
//!   [`LAG_POLL`] meanwhile for the largest lag, then until the lag is 0 (at most
//!   [`CATCH_UP_TIMEOUT`]). There is no setting that turns search off, so the rate is not
//!   compared with a server without it; the `serve` section's register phases are the nearest.
//!
//! The server is then stopped with SIGTERM by its pid (it must exit 0); the registry stays.
//! The issue's goal, printed beside the figures: a p99 of at most [`GOAL_P99_NS`] for a
//! two-word query over [`GOAL_ENTRIES`] entries on this machine (2 cores, the load generator
//! on the same ones).
//!
//! Measured (`cargo xtask bench --filter search`, 2 cores, medians of three runs over 1.00 to
//! 1.04 million entries): one client 173 queries/s, p50 3.57 ms, p99 41.6 ms, max 53.3 ms
//! (the server's own `took_ms` p99 41.0 ms: HTTP and JSON add little); 4 clients p99 88.4 ms;
//! with a scope p99 6.75 ms. The tail is the queries of words nearly every entry holds
//! (`has enabled`: 592,604 matches; `enabled environment`: all of them, through the config's
//! YAML keys): the same with `limit=1` takes as long, `retired=true` (no lifecycle clause)
//! about half, and a profile of the server (perf) puts about 80 % of it in tantivy's posting
//! unions and intersections, none visible in reading the hits from storage.

use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::bench::progress;
use crate::bench_serve::Server;
use crate::loadgen::{self, Client, Load, Phase, Request, Rng};
use crate::markdown::value;
use crate::report::{Better, Figure, percentile, percentile_figures, units};

/// The section's name, as `--filter` matches it.
pub const SEARCH: &str = "search";
/// Clients of the concurrent query phases (the first of each kind has one).
pub const CONCURRENT_CLIENTS: usize = 4;
/// Clients of the write phase.
pub const REGISTER_CLIENTS: usize = 16;
/// The issue's goal: the p99 of a two-word query, ns...
pub const GOAL_P99_NS: f64 = 50e6;
/// ...over this many entries.
pub const GOAL_ENTRIES: usize = 1_000_000;
/// Entries read for the words of the queries (one page, the server's largest).
const SAMPLE: usize = 1000;
/// Untimed queries before the first timed phase.
const WARM_UP: usize = 100;
/// A registry is reused while the entries it holds are at most its count plus this share.
const REUSE_GROWTH: f64 = 0.1;
/// The seed of the query words: the same registry gets the same queries.
const SEED: u64 = 7;
/// The longest a query phase may take.
const QUERY_PHASE_MAX: Duration = Duration::from_secs(300);
/// How long the index may take to catch up with storage after the server starts.
const READY_TIMEOUT: Duration = Duration::from_secs(600);
/// How long the index may take to catch up with the write phase.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(300);
/// How often `/v1/live` is read while waiting or writing.
const LAG_POLL: Duration = Duration::from_millis(100);
/// Request bodies made for the write phase, more than [`REGISTER_CLIENTS`] clients send in
/// its time.
const REGISTER_BODIES: usize = 200_000;
/// tantivy's English stop words, which the index leaves out: a query of one of them and
/// another word would search one word.
const STOP_WORDS: [&str; 33] = [
    "a", "an", "and", "are", "as", "at", "be", "but", "by", "for", "if", "in", "into", "is", "it",
    "no", "not", "of", "on", "or", "such", "that", "the", "their", "then", "there", "these",
    "they", "this", "to", "was", "will", "with",
];

/// How much the section measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SearchSizes {
    /// Entries the registry is made with.
    pub entries: usize,
    /// Timed queries of each phase.
    pub queries: usize,
    /// Seconds of the write phase.
    pub register_s: u64,
}

/// The full run: the issue's million entries.
pub const FULL: SearchSizes = SearchSizes {
    entries: 1_000_000,
    queries: 2000,
    register_s: 5,
};

/// The quick run.
pub const QUICK: SearchSizes = SearchSizes {
    entries: 100_000,
    queries: 500,
    register_s: 5,
};

/// One client's queries, with what their answers held.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Answers {
    pub load: Load,
    /// Hits of each answer, total matches, and the server's `took_ms` in ns, each ascending.
    pub hits: Vec<u64>,
    pub totals: Vec<u64>,
    pub took_ns: Vec<u64>,
}

/// What the section measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Search {
    /// Where the registry is, and whether this run made it.
    pub dir: PathBuf,
    pub reused: bool,
    /// Entries the registry held when the queries ran (`/v1/live`).
    pub entries: usize,
    /// `registry scale-test`'s rate, when this run made the registry.
    pub made_per_s: Option<f64>,
    /// `registry reindex`: documents, its own seconds, and the index's bytes after it.
    pub reindexed: usize,
    pub reindex_s: f64,
    pub index_bytes: u64,
    /// From the server's start to the index caught up, seconds.
    pub ready_s: f64,
    /// The scope of the filtered queries.
    pub scope: String,
    pub query_1: Answers,
    pub query_n: Load,
    pub scoped_1: Answers,
    pub scoped_n: Load,
    pub register: Load,
    /// The largest lag `/v1/live` showed during the write phase: changes, seconds.
    pub lag_changes_max: u64,
    pub lag_s_max: f64,
    /// From the end of the write phase to no lag, seconds.
    pub catch_up_s: f64,
}

/// Runs the section on the registry of `target/bench-search/entries-N`, made first when there
/// is none to reuse.
///
/// # Errors
/// When a command fails, the server does not start or stop cleanly, an answer is not the one
/// expected, or the index does not catch up in time.
pub fn run(registry: &Path, sizes: &SearchSizes) -> Result<Search, String> {
    let dir = crate::target_dir()
        .join("bench-search")
        .join(format!("entries-{}", sizes.entries));
    let config = dir.join("registry.toml");
    let data = dir.join("data");
    let marker = dir.join("made.json");
    let mut out = Search {
        dir: dir.clone(),
        ..Search::default()
    };
    let held = fs::read_to_string(&marker)
        .ok()
        .and_then(|t| reusable(&t, sizes.entries));
    match held {
        Some(entries) if data.is_dir() && config.is_file() => {
            out.reused = true;
            progress(&format!(
                "{SEARCH}: reusing the registry of {} entries in {} (made by an earlier run)",
                value(units::COUNT, entries as f64),
                dir.display()
            ));
        }
        _ => out.made_per_s = Some(make(registry, &dir, sizes.entries)?),
    }
    let cli = |args: &[&str]| {
        let mut c = Command::new(registry);
        c.arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data)
            .args(args)
            .current_dir(&dir)
            .stdin(Stdio::null());
        c
    };

    let started = Instant::now();
    let text = output(cli(&["reindex", "--format", "json"]), "registry reindex")?;
    let wall = started.elapsed().as_secs_f64();
    (out.reindexed, out.reindex_s) = reindex_summary(&text)?;
    out.index_bytes = dir_bytes(&data.join("search"));
    progress(&format!(
        "{SEARCH}: registry reindex: {} documents in {} ({} with start and exit), {}, index {}",
        value(units::COUNT, out.reindexed as f64),
        value(units::SECONDS, out.reindex_s),
        value(units::SECONDS, wall),
        value(units::PER_S, out.reindexed as f64 / out.reindex_s.max(1e-9)),
        value(units::BYTES, out.index_bytes as f64)
    ));

    let mut server = Server::spawn(cli(&["serve", "--listen", "127.0.0.1:0"]), &dir, SEARCH)?;
    let addr = server.addr;
    let started = Instant::now();
    let live = server.checked(|| wait_for_lag_0(addr, READY_TIMEOUT, true))?;
    out.ready_s = started.elapsed().as_secs_f64();
    out.entries = live.entries.unwrap_or_default();
    progress(&format!(
        "{SEARCH}: the index caught up with {} entries {} after the start",
        value(units::COUNT, out.entries as f64),
        value(units::SECONDS, out.ready_s)
    ));

    let sample = server.checked(|| sample_titles(addr))?;
    out.scope = commonest_scope(&sample).ok_or("GET /v1/entries listed no entry")?;
    let all: Vec<&str> = sample.iter().map(|(_, t)| t.as_str()).collect();
    let scoped: Vec<&str> = sample
        .iter()
        .filter(|(s, _)| *s == out.scope)
        .map(|(_, t)| t.as_str())
        .collect();
    let paths = |titles: &[&str], seed: u64, n: usize, scope: Option<&str>| {
        let mut rng = Rng::new(seed);
        queries(titles, n, &mut rng)
            .iter()
            .map(|q| search_path(q, scope))
            .collect::<Vec<_>>()
    };
    let n = sizes.queries;
    let warm = paths(&all, SEED + 100, WARM_UP, None);
    server.checked(|| sequential(addr, &warm).map(|_| ()))?;
    let scope = Some(out.scope.as_str());
    for (what, titles, seed, scope) in [
        ("two words", &all, SEED, None),
        ("two words, one scope", &scoped, SEED + 2, scope),
    ] {
        let one = paths(titles, seed, n, scope);
        let answers = server.checked(|| sequential(addr, &one))?;
        report_queries(&format!("{what}, 1 client"), &answers.load, Some(&answers));
        let many = paths(titles, seed + 1, n, scope);
        let phase = Phase {
            clients: CONCURRENT_CLIENTS,
            max_requests: many.len(),
            max_time: QUERY_PHASE_MAX,
            expect: 200,
        };
        let load = server.checked(|| {
            loadgen::run(addr, phase, |i, _| Request {
                method: "GET",
                path: many[i % many.len()].clone(),
                body: b"",
            })
        })?;
        report_queries(
            &format!("{what}, {CONCURRENT_CLIENTS} clients"),
            &load,
            None,
        );
        if scope.is_none() {
            (out.query_1, out.query_n) = (answers, load);
        } else {
            (out.scoped_1, out.scoped_n) = (answers, load);
        }
    }

    let bodies = register_bodies(REGISTER_BODIES);
    let stop = AtomicBool::new(false);
    let phase = Phase {
        clients: REGISTER_CLIENTS,
        max_requests: bodies.len(),
        max_time: Duration::from_secs(sizes.register_s),
        expect: 201,
    };
    let (load, lag) = std::thread::scope(|s| {
        let watcher = s.spawn(|| largest_lag(addr, &stop));
        let load = loadgen::run(addr, phase, |i, _| Request {
            method: "POST",
            path: "/v1/entries".into(),
            body: bodies[i].as_bytes(),
        });
        stop.store(true, Ordering::Relaxed);
        (load, watcher.join().unwrap_or_default())
    });
    out.register = server.checked(|| load)?;
    let ended = Instant::now();
    (out.lag_changes_max, out.lag_s_max) = lag;
    let live = server.checked(|| wait_for_lag_0(addr, CATCH_UP_TIMEOUT, false))?;
    out.catch_up_s = ended.elapsed().as_secs_f64();
    report_queries(
        &format!("POST /v1/entries, {REGISTER_CLIENTS} clients"),
        &out.register,
        None,
    );
    progress(&format!(
        "{SEARCH}: meanwhile the largest lag was {} changes, {}; no lag {} after the phase",
        value(units::COUNT, out.lag_changes_max as f64),
        value(units::SECONDS, out.lag_s_max),
        value(units::SECONDS, out.catch_up_s)
    ));
    server.stop()?;
    let entries = live.entries.unwrap_or(out.entries + out.register.requests);
    record(&marker, sizes.entries, entries)?;
    Ok(out)
}

/// Writes `made.json`: the count the registry was made with and the entries it holds now.
fn record(marker: &Path, count: usize, entries: usize) -> Result<(), String> {
    let text = json!({ "count": count, "entries": entries }).to_string();
    fs::write(marker, text).map_err(|e| format!("cannot write {}: {e}", marker.display()))
}

/// The entries a registry's `made.json` says it holds, when it was made with `count` and has
/// not grown past [`REUSE_GROWTH`] since.
fn reusable(made: &str, count: usize) -> Option<usize> {
    let v: Value = serde_json::from_str(made).ok()?;
    let entries = usize::try_from(v["entries"].as_u64()?).ok()?;
    let limit = count as f64 * (1.0 + REUSE_GROWTH);
    (v["count"].as_u64()? == count as u64 && entries >= count && entries as f64 <= limit)
        .then_some(entries)
}

/// Makes the registry of `count` entries in `dir` (emptied first); its entries/s.
fn make(registry: &Path, dir: &Path, count: usize) -> Result<f64, String> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(|e| format!("cannot remove {}: {e}", dir.display()))?;
    }
    fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let config = dir.join("registry.toml");
    fs::write(
        &config,
        "# The bench's: the defaults, but no rate limit (every client has the same address).\n\
         data_dir = \"data\"\n\n[serve]\nrate_limit = 0\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    progress(&format!(
        "{SEARCH}: making a registry of {} entries in {} (kept for the next runs)",
        value(units::COUNT, count as f64),
        dir.display()
    ));
    let mut c = Command::new(registry);
    c.arg("--config")
        .arg(&config)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .args([
            "scale-test",
            "--count",
            &count.to_string(),
            "--format",
            "json",
        ])
        .current_dir(dir)
        .stdin(Stdio::null());
    let text = output(c, "registry scale-test")?;
    let v: Value = serde_json::from_str(&text)
        .map_err(|e| format!("registry scale-test printed no JSON ({e}): {text}"))?;
    let created = v["created"].as_u64().unwrap_or(0);
    if created != count as u64 {
        return Err(format!(
            "registry scale-test created {created} of {count} entries"
        ));
    }
    let rate = v["entries_per_s"].as_f64().unwrap_or(f64::NAN);
    record(&dir.join("made.json"), count, count)?;
    progress(&format!(
        "{SEARCH}: registry scale-test: {}",
        value(units::ENTRIES_PER_S, rate)
    ));
    Ok(rate)
}

/// Runs a command to its end; its standard output, when it succeeds.
fn output(mut c: Command, what: &str) -> Result<String, String> {
    let out = c.output().map_err(|e| format!("cannot run {what}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{what} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// Documents indexed and seconds taken, from `registry reindex --format json`; every entry
/// indexed must be a document.
fn reindex_summary(text: &str) -> Result<(usize, f64), String> {
    let v: Value = serde_json::from_str(text)
        .map_err(|e| format!("registry reindex printed no JSON ({e}): {text}"))?;
    let number = |key: &str| {
        v[key]
            .as_f64()
            .ok_or_else(|| format!("registry reindex reported no number `{key}`: {text}"))
    };
    let (indexed, documents) = (number("indexed")?, number("documents")?);
    if indexed != documents {
        return Err(format!(
            "registry reindex indexed {indexed} entries into {documents} documents"
        ));
    }
    Ok((documents as usize, number("seconds")?))
}

/// Bytes of the files under `dir`, all levels.
fn dir_bytes(dir: &Path) -> u64 {
    fs::read_dir(dir).map_or(0, |entries| {
        entries
            .flatten()
            .map(|e| match e.file_type() {
                Ok(t) if t.is_dir() => dir_bytes(&e.path()),
                _ => e.metadata().map_or(0, |m| m.len()),
            })
            .sum()
    })
}

/// What `/v1/live` says of the registry and its index.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Live {
    /// `None` until the server has counted them.
    entries: Option<usize>,
    ready: bool,
    lag_changes: u64,
    lag_s: f64,
}

/// `/v1/live`'s entries and `search` object; its `search.error` as the error when set.
fn parse_live(body: &str) -> Result<Live, String> {
    let v: Value =
        serde_json::from_str(body).map_err(|e| format!("GET /v1/live is not JSON ({e})"))?;
    let s = &v["search"];
    if let Some(e) = s["error"].as_str() {
        return Err(format!("the search index failed: {e}"));
    }
    Ok(Live {
        entries: v["entries"].as_u64().and_then(|n| usize::try_from(n).ok()),
        ready: s["ready"]
            .as_bool()
            .ok_or("GET /v1/live has no `search.ready`")?,
        lag_changes: s["lag_changes"]
            .as_u64()
            .ok_or("GET /v1/live has no `search.lag_changes`")?,
        lag_s: s["lag_seconds"].as_f64().unwrap_or(0.0),
    })
}

fn live(client: &mut Client) -> Result<Live, String> {
    let reply = client.get_ok("/v1/live")?;
    parse_live(&String::from_utf8_lossy(&reply.body))
}

/// Polls `/v1/live` until the index has no lag (and, with `ready`, has caught up with storage
/// since the start and the entries are counted), at most `timeout`; the last answer.
fn wait_for_lag_0(addr: SocketAddr, timeout: Duration, ready: bool) -> Result<Live, String> {
    let mut client = Client::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    let until = Instant::now() + timeout;
    loop {
        let l = live(&mut client)?;
        if (!ready || (l.ready && l.entries.is_some())) && l.lag_changes == 0 {
            return Ok(l);
        }
        if Instant::now() >= until {
            return Err(format!(
                "the search index has not caught up after {} (ready: {}, lag: {} changes)",
                value(units::SECONDS, timeout.as_secs_f64()),
                l.ready,
                l.lag_changes
            ));
        }
        std::thread::sleep(LAG_POLL);
    }
}

/// The largest lag `/v1/live` shows until `stop`: changes, seconds. A failed read ends the
/// watch (the write phase reports its own failures).
fn largest_lag(addr: SocketAddr, stop: &AtomicBool) -> (u64, f64) {
    let mut most = (0, 0.0f64);
    let Ok(mut client) = Client::connect(addr) else {
        return most;
    };
    while !stop.load(Ordering::Relaxed) {
        let Ok(l) = live(&mut client) else {
            break;
        };
        most = (most.0.max(l.lag_changes), most.1.max(l.lag_s));
        std::thread::sleep(LAG_POLL);
    }
    most
}

/// The (scope, title) of each entry of the first page of [`SAMPLE`].
fn sample_titles(addr: SocketAddr) -> Result<Vec<(String, String)>, String> {
    let mut client = Client::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    let path = format!("/v1/entries?limit={SAMPLE}");
    let reply = client.get_ok(&path)?;
    page_titles(&String::from_utf8_lossy(&reply.body)).map_err(|e| format!("GET {path}: {e}"))
}

/// The (scope, title) of each entry of a list page.
fn page_titles(body: &str) -> Result<Vec<(String, String)>, String> {
    let v: Value = serde_json::from_str(body).map_err(|e| format!("not JSON ({e})"))?;
    let entries = v["entries"].as_array().ok_or("no `entries`")?;
    Ok(entries
        .iter()
        .filter_map(|e| {
            Some((
                e["scope"].as_str()?.to_owned(),
                e["title"].as_str()?.to_owned(),
            ))
        })
        .collect())
}

/// The scope most entries of the sample have (the first in order of a tie).
fn commonest_scope(sample: &[(String, String)]) -> Option<String> {
    let mut counts: Vec<(&str, usize)> = Vec::new();
    for (scope, _) in sample {
        match counts.iter_mut().find(|(s, _)| s == scope) {
            Some((_, n)) => *n += 1,
            None => counts.push((scope, 1)),
        }
    }
    let most = counts.iter().map(|(_, n)| *n).max()?;
    counts
        .into_iter()
        .find(|(_, n)| *n == most)
        .map(|(s, _)| s.to_owned())
}

/// The words of a title a query can search: runs of letters and digits, lowercased, at least 3
/// characters with a letter, no stop word, each once.
fn title_words(title: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in title
        .split(|c: char| !c.is_ascii_alphanumeric())
        .map(str::to_ascii_lowercase)
    {
        if word.len() >= 3
            && word.chars().any(|c| c.is_ascii_alphabetic())
            && !STOP_WORDS.contains(&word.as_str())
            && !out.contains(&word)
        {
            out.push(word);
        }
    }
    out
}

/// `count` two-word queries: three in four are two words of one title, the fourth a word of
/// each of two titles. Empty when no title has two words.
fn queries(titles: &[&str], count: usize, rng: &mut Rng) -> Vec<String> {
    let words: Vec<Vec<String>> = titles
        .iter()
        .map(|t| title_words(t))
        .filter(|w| w.len() >= 2)
        .collect();
    if words.is_empty() {
        return Vec::new();
    }
    let mut pick = |n: usize| (rng.next() % n as u64) as usize;
    (0..count)
        .map(|i| {
            let one = &words[pick(words.len())];
            let a = pick(one.len());
            let second = if i % 4 == 3 {
                words[pick(words.len())].as_slice()
            } else {
                one.as_slice()
            };
            let mut b = pick(second.len());
            if second[b] == one[a] {
                b = (b + 1) % second.len();
            }
            format!("{} {}", one[a], second[b])
        })
        .collect()
}

/// The path of a search for `words` (letters and digits, separated by spaces).
fn search_path(words: &str, scope: Option<&str>) -> String {
    let q = words.replace(' ', "+");
    match scope {
        Some(s) => format!("/v1/search?q={q}&scope={s}"),
        None => format!("/v1/search?q={q}"),
    }
}

/// Hits, total matches and the server's `took_ms` of a `GET /v1/search` answer.
fn search_answer(body: &[u8]) -> Result<(u64, u64, f64), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON ({e})"))?;
    let hits = v["hits"].as_array().ok_or("no `hits`")?.len() as u64;
    let total = v["total"].as_u64().ok_or("no `total`")?;
    let took = v["took_ms"].as_f64().ok_or("no `took_ms`")?;
    Ok((hits, total, took))
}

/// One client sends each query after the answer to the one before; every answer must be 200.
fn sequential(addr: SocketAddr, paths: &[String]) -> Result<Answers, String> {
    let mut client = Client::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    let mut out = Answers::default();
    let mut times = Vec::with_capacity(paths.len());
    let started = Instant::now();
    for path in paths {
        if started.elapsed() > QUERY_PHASE_MAX {
            break;
        }
        let sent = Instant::now();
        let reply = client.get_ok(path)?;
        times.push(u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX));
        let (hits, total, took_ms) =
            search_answer(&reply.body).map_err(|e| format!("GET {path}: {e}"))?;
        out.hits.push(hits);
        out.totals.push(total);
        out.took_ns.push((took_ms * 1e6) as u64);
    }
    out.load = Load::sequential(times);
    for v in [&mut out.hits, &mut out.totals, &mut out.took_ns] {
        v.sort_unstable();
    }
    Ok(out)
}

/// `count` new registration bodies, distinct from every earlier run's (the title names this
/// run's start time).
fn register_bodies(count: usize) -> Vec<String> {
    const VERBS: [&str; 4] = ["Review", "Rotate", "Restrict", "Monitor"];
    const OBJECTS: [&str; 4] = ["access keys", "audit logs", "storage buckets", "API tokens"];
    let run = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (0..count)
        .map(|i| {
            json!({
                "title": format!(
                    "{} the {} of indexed service {run}-{i}",
                    VERBS[i % VERBS.len()],
                    OBJECTS[i / VERBS.len() % OBJECTS.len()]
                ),
                "context": { "env": "prod", "team": format!("team-{}", i % 23) },
            })
            .to_string()
        })
        .collect()
}

/// One line of progress for a phase.
fn report_queries(what: &str, load: &Load, answers: Option<&Answers>) {
    if load.latencies_ns.is_empty() {
        progress(&format!("{SEARCH}: {what}: nothing done"));
        return;
    }
    let at = |q| value(units::NS, percentile(&load.latencies_ns, q) as f64);
    let found = answers.map_or_else(String::new, |a| {
        format!(
            "; median {} hits of {} matches, server's own time p50 {} p99 {}",
            percentile(&a.hits, 0.5),
            value(units::COUNT, percentile(&a.totals, 0.5) as f64),
            value(units::NS, percentile(&a.took_ns, 0.5) as f64),
            value(units::NS, percentile(&a.took_ns, 0.99) as f64),
        )
    });
    progress(&format!(
        "{SEARCH}: {what}: {} requests in {}: {}, p50 {}, p90 {}, p99 {}, max {}{found}",
        load.requests,
        value(units::SECONDS, load.seconds),
        value(units::PER_S, load.rate()),
        at(0.5),
        at(0.9),
        at(0.99),
        at(1.0),
    ));
}

/// What `cargo xtask bench` says before it starts.
pub fn describe(sizes: &SearchSizes) -> String {
    format!(
        "  {SEARCH}       registry serve's GET /v1/search over {} entries (made once into \
         target/bench-search, then reused): reindex, {} two-word queries from 1 and {} clients, \
         with and without a scope, then {} s of registrations from {} clients while the index \
         follows",
        value(units::COUNT, sizes.entries as f64),
        sizes.queries,
        CONCURRENT_CLIENTS,
        sizes.register_s,
        REGISTER_CLIENTS
    )
}

/// Rough seconds the section takes, from the rates measured on 2 cores at 1,000,000 entries:
/// making the registry at about 40,000 entries/s (when it is not reused), reindexing and the
/// catch-up at start at about 25,000 entries/s each, 5 ms a query, the write phase, and a
/// few seconds of start and stop.
pub fn estimate_s(sizes: &SearchSizes) -> f64 {
    let n = sizes.entries as f64;
    n / 40_000.0
        + 2.0 * n / 25_000.0
        + (4 * sizes.queries + WARM_UP) as f64 * 0.005
        + sizes.register_s as f64
        + 5.0
}

/// Where the registry was and whether it was reused, for the report's notes.
pub fn note(s: &Search) -> String {
    let made = s.made_per_s.map_or_else(
        || "reused, made by an earlier run".to_owned(),
        |rate| {
            format!(
                "made by this run with `registry scale-test` at {}",
                value(units::ENTRIES_PER_S, rate)
            )
        },
    );
    format!(
        "{SEARCH}: the registry of {} entries is in `{}` ({made}; kept for the next run); the \
         filtered queries use `&scope={}`",
        value(units::COUNT, s.entries as f64),
        s.dir.display(),
        s.scope
    )
}

/// The section's figures (`search/*`).
pub fn figures(s: &Search) -> Vec<Figure> {
    let mut out = Vec::new();
    if s.entries == 0 {
        return out;
    }
    let single = |id: &str, label: String, unit, better, v: f64| {
        Figure::single(format!("{SEARCH}/{id}"), label, unit, better, v)
    };
    out.push(single(
        "entries",
        "entries searched".to_owned(),
        units::COUNT,
        Better::Higher,
        s.entries as f64,
    ));
    if let Some(rate) = s.made_per_s {
        out.push(single(
            "make/entries_per_s",
            "registry scale-test making the registry: entries/s".to_owned(),
            units::ENTRIES_PER_S,
            Better::Higher,
            rate,
        ));
    }
    if s.reindexed > 0 {
        let docs = value(units::COUNT, s.reindexed as f64);
        out.extend([
            single(
                "reindex/seconds",
                format!("registry reindex of {docs} entries: time"),
                units::SECONDS,
                Better::Lower,
                s.reindex_s,
            ),
            single(
                "reindex/per_s",
                format!("registry reindex of {docs} entries: documents/s"),
                units::PER_S,
                Better::Higher,
                s.reindexed as f64 / s.reindex_s.max(1e-9),
            ),
            single(
                "index/bytes",
                format!("search index of {docs} entries: bytes on disk"),
                units::BYTES,
                Better::Lower,
                s.index_bytes as f64,
            ),
            single(
                "index/bytes_per_entry",
                "search index: bytes on disk per entry".to_owned(),
                units::BYTES,
                Better::Lower,
                s.index_bytes as f64 / s.reindexed as f64,
            ),
        ]);
    }
    out.push(single(
        "ready_s",
        "registry serve: from start to the index caught up with storage".to_owned(),
        units::SECONDS,
        Better::Lower,
        s.ready_s,
    ));
    let clients = CONCURRENT_CLIENTS;
    for (id, label, load, answers) in [
        (
            "query_1",
            "two words, 1 client".to_owned(),
            &s.query_1.load,
            Some(&s.query_1),
        ),
        (
            "query_n",
            format!("two words, {clients} clients"),
            &s.query_n,
            None,
        ),
        (
            "scoped_1",
            format!("two words and scope={}, 1 client", s.scope),
            &s.scoped_1.load,
            Some(&s.scoped_1),
        ),
        (
            "scoped_n",
            format!("two words and scope={}, {clients} clients", s.scope),
            &s.scoped_n,
            None,
        ),
        (
            "register",
            format!("POST /v1/entries while the index follows, {REGISTER_CLIENTS} clients"),
            &s.register,
            None,
        ),
    ] {
        if load.latencies_ns.is_empty() {
            continue;
        }
        let label = if id == "register" {
            label
        } else {
            format!("GET /v1/search, {label}")
        };
        out.push(Figure {
            runs: Some(load.requests as u64),
            ..single(
                &format!("{id}/per_s"),
                format!("{label}: requests/s"),
                units::PER_S,
                Better::Higher,
                load.rate(),
            )
        });
        out.extend(percentile_figures(
            &format!("{SEARCH}/{id}"),
            &label,
            &load.latencies_ns,
            &[("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)],
        ));
        let Some(a) = answers.filter(|a| !a.hits.is_empty()) else {
            continue;
        };
        for (what, name, v) in [
            ("hits", "median hits", &a.hits),
            ("total", "median matches", &a.totals),
        ] {
            out.push(single(
                &format!("{id}/{what}"),
                format!("{label}: {name}"),
                units::COUNT,
                Better::Higher,
                percentile(v, 0.5) as f64,
            ));
        }
        out.extend(percentile_figures(
            &format!("{SEARCH}/{id}/took"),
            &format!("{label}: the server's own time (took_ms)"),
            &a.took_ns,
            &[("p50", 0.50), ("p99", 0.99)],
        ));
    }
    if !s.register.latencies_ns.is_empty() {
        out.extend([
            single(
                "register/lag_changes_max",
                "while registering: the largest search lag, changes".to_owned(),
                units::COUNT,
                Better::Lower,
                s.lag_changes_max as f64,
            ),
            single(
                "register/lag_s_max",
                "while registering: the largest search lag, seconds".to_owned(),
                units::SECONDS,
                Better::Lower,
                s.lag_s_max,
            ),
            single(
                "register/catch_up_s",
                "after registering: until the index had no lag".to_owned(),
                units::SECONDS,
                Better::Lower,
                s.catch_up_s,
            ),
        ]);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_registry_is_reused_while_it_holds_about_its_count() {
        assert_eq!(
            reusable(r#"{"count": 1000, "entries": 1000}"#, 1000),
            Some(1000)
        );
        assert_eq!(
            reusable(r#"{"count": 1000, "entries": 1100}"#, 1000),
            Some(1100)
        );
        assert_eq!(reusable(r#"{"count": 1000, "entries": 1101}"#, 1000), None);
        assert_eq!(reusable(r#"{"count": 1000, "entries": 999}"#, 1000), None);
        assert_eq!(reusable(r#"{"count": 100, "entries": 1000}"#, 1000), None);
        assert_eq!(reusable("{}", 1000), None);
        assert_eq!(reusable("not json", 1000), None);
    }

    #[test]
    fn reindex_summary_is_read() {
        assert_eq!(
            reindex_summary(r#"{"documents": 5000, "indexed": 5000, "seconds": 0.25}"#),
            Ok((5000, 0.25))
        );
        for (text, error) in [
            (
                r#"{"documents": 4999, "indexed": 5000, "seconds": 1}"#,
                "registry reindex indexed 5000",
            ),
            (
                r#"{"documents": 1, "indexed": 1}"#,
                "registry reindex reported no number `seconds`",
            ),
            ("indexed 5000", "registry reindex printed no JSON"),
        ] {
            let err = reindex_summary(text).expect_err(text);
            assert!(err.starts_with(error), "{text}: {err}");
        }
    }

    #[test]
    fn live_gives_the_entries_and_the_search_lag() {
        let body = r#"{"entries": 5000, "search": {"docs": 4990, "error": null,
            "lag_changes": 10, "lag_seconds": 0.5, "ready": true}, "uptime_s": 1}"#;
        assert_eq!(
            parse_live(body),
            Ok(Live {
                entries: Some(5000),
                ready: true,
                lag_changes: 10,
                lag_s: 0.5
            })
        );
        let failed = r#"{"entries": 1, "search": {"error": "disk full", "ready": false}}"#;
        assert_eq!(
            parse_live(failed),
            Err("the search index failed: disk full".to_owned())
        );
        let off = r#"{"entries": 1, "search": null}"#;
        assert!(parse_live(off).is_err());
        let counting = r#"{"entries": null, "search": {"error": null, "lag_changes": 0,
            "ready": true}}"#;
        assert_eq!(parse_live(counting).map(|l| l.entries), Ok(None));
    }

    #[test]
    fn search_answers_give_hits_total_and_took() {
        let body = br#"{"hits": [{"score": 1.5, "entry": {}}, {"score": 1.0, "entry": {}}],
            "total": 4210, "stale": 0, "took_ms": 3.25, "lag": {"changes": 0, "seconds": 0}}"#;
        assert_eq!(search_answer(body), Ok((2, 4210, 3.25)));
        assert!(search_answer(br#"{"hits": [], "took_ms": 1}"#).is_err());
        assert!(search_answer(b"<html>").is_err());
    }

    #[test]
    fn the_sample_gives_titles_and_the_commonest_scope() {
        let body = r#"{"entries": [
            {"scope": "ALERT", "title": "Ensure Glue ETL job has Capacity Rebalancing enabled"},
            {"scope": "BASH", "title": "Rotate keys"},
            {"scope": "BASH", "title": "Audit logs"},
            {"scope": "ALERT"}
        ], "next": null}"#;
        let page = page_titles(body).expect("a page");
        assert_eq!(page.len(), 3);
        assert_eq!(commonest_scope(&page), Some("BASH".to_owned()));
        assert_eq!(commonest_scope(&page[..2]), Some("ALERT".to_owned()));
        assert_eq!(commonest_scope(&[]), None);
        assert!(page_titles(r#"{"next": null}"#).is_err());
    }

    #[test]
    fn query_words_are_those_the_index_keeps() {
        assert_eq!(
            title_words("Alert unless the X-Ray tracing of the S3 bucket is on, at 2 AZs; X-Ray"),
            ["alert", "unless", "ray", "tracing", "bucket", "azs"]
        );
    }

    #[test]
    fn queries_are_two_distinct_words_mostly_of_one_title() {
        let titles = [
            "Rotate access keys",
            "Audit TLS certificates",
            "Enable",
            "of the",
        ];
        let mut rng = Rng::new(1);
        let q = queries(&titles, 400, &mut rng);
        assert_eq!(q.len(), 400);
        let words: Vec<Vec<String>> = titles.iter().map(|t| title_words(t)).collect();
        let one_title = |q: &str| {
            let (a, b) = q.split_once(' ').expect("two words");
            assert_ne!(a, b, "{q}");
            words
                .iter()
                .any(|w| w.iter().any(|x| x == a) && w.iter().any(|x| x == b))
        };
        for (i, q) in q.iter().enumerate() {
            if i % 4 != 3 {
                assert!(one_title(q), "{q}");
            }
        }
        assert!(q.iter().any(|q| !one_title(q)));
        let again = queries(&titles, 400, &mut Rng::new(1));
        assert_eq!(q, again);
        assert!(queries(&["Enable"], 10, &mut rng).is_empty());
        assert_eq!(
            search_path("rotate keys", Some("SEC")),
            "/v1/search?q=rotate+keys&scope=SEC"
        );
        assert_eq!(search_path("rotate keys", None), "/v1/search?q=rotate+keys");
    }

    #[test]
    fn registration_bodies_are_distinct_requests() {
        let bodies = register_bodies(40);
        let titles: Vec<String> = bodies
            .iter()
            .map(|b| {
                let v: Value = serde_json::from_str(b).expect("JSON");
                v["title"].as_str().expect("a title").to_owned()
            })
            .collect();
        let mut unique = titles.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(unique.len(), 40);
    }

    fn load(ms: u64) -> Load {
        Load::sequential(vec![ms * 1_000_000; 100])
    }

    #[test]
    fn figures_give_rates_percentiles_and_what_was_found() {
        let s = Search {
            entries: 1_000_000,
            reindexed: 1_000_000,
            reindex_s: 50.0,
            index_bytes: 400_000_000,
            scope: "ALERT".into(),
            query_1: Answers {
                load: load(10),
                hits: vec![20; 100],
                totals: vec![4000; 100],
                took_ns: vec![8_000_000; 100],
            },
            query_n: load(20),
            register: load(5),
            lag_changes_max: 3000,
            ..Search::default()
        };
        let f = figures(&s);
        let get = |id: &str| f.iter().find(|x| x.id == id).expect(id).median;
        assert_eq!(get("search/entries"), 1e6);
        assert_eq!(get("search/reindex/per_s"), 20_000.0);
        assert_eq!(get("search/index/bytes_per_entry"), 400.0);
        assert_eq!(get("search/query_1/p99"), 1e7);
        assert_eq!(get("search/query_1/max"), 1e7);
        assert!((get("search/query_1/per_s") - 100.0).abs() < 1e-9);
        assert_eq!(get("search/query_1/hits"), 20.0);
        assert_eq!(get("search/query_1/total"), 4000.0);
        assert_eq!(get("search/query_1/took/p50"), 8e6);
        assert_eq!(get("search/query_n/p90"), 2e7);
        assert_eq!(get("search/register/lag_changes_max"), 3000.0);
        assert!(!f.iter().any(|x| x.id.starts_with("search/scoped")));
        assert!(!f.iter().any(|x| x.id.starts_with("search/make")));
        assert!(figures(&Search::default()).is_empty());
    }
}
