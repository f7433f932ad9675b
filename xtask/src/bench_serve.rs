//! The `serve` section of `cargo xtask bench`: `registry serve` under load over 127.0.0.1, and
//! the command line doing the same work beside it.
//!
//! The server starts on a new data directory (`registry serve --listen 127.0.0.1:0`, the
//! defaults but `[serve] rate_limit = 0`: every client of the load generator comes from the
//! same address, and the default 1,000 requests/s per address would answer most of them 429).
//! The load generator ([`crate::loadgen`]) runs in this process, so its thread shares the
//! machine's cores with the server: on 2 cores the figures are what one machine serving its
//! own clients gets, a lower bound of what the server does for remote ones. The server logs
//! one line per request (its default), into a file of the scratch directory. Then, in order:
//! - batch: the generated requests (`bench_batch`'s, the same as the `batch` section's) in one
//!   `POST /v1/batch`, streamed both ways; entries/s from the first byte sent to the last
//!   result read. Every line must come back `created`; their ids are the ones read below.
//! - get: [`GET_CLIENTS`] clients, `GET /v1/entries/{id}` of random ids of those entries.
//! - list: [`LIST_CLIENTS`] clients, `GET /v1/entries?limit=100`, the first page.
//! - register: `POST /v1/entries` of new requests (the lines after the batch's in the same
//!   generated file, each sent once), from 1 client and then from [`REGISTER_CLIENTS`]; every
//!   answer must be 201. `/metrics` is read before and after each: the group commits written
//!   and the registrations they carried give the mean entries per commit.
//!
//! Each load phase stops after its number of requests or [`ServeSizes::phase_s`], whichever
//! comes first; its figures are requests/s, the p50 and p99 of every request's round trip,
//! and the CPU time per request of the server and of the load generator (`/proc/PID/stat`
//! before and after): how the cores were shared, and whether the server kept them busy.
//! The server is then stopped with SIGTERM (it must exit 0), and the command line does the
//! same work on a data directory of its own, one process at a time, each timed from spawn to
//! exit: `registry batch` of the same file (`--results`, as the server answers every line),
//! `registry get ID --format json` of random ids, `registry list --limit 100 --format json`,
//! and `registry add` of the first new requests. Runs per second there is one over the mean
//! time of a whole process, what a script calling the command gets.
//!
//! The issue's goals are printed beside the figures, whatever they are: get at
//! [`GOAL_GET_PER_S`] with a p99 of at most [`GOAL_GET_P99_NS`] at 32 clients on 2 cores, and
//! registration from 64 clients at least [`GOAL_REGISTER_SPEEDUP`] times the rate of one.

use std::fs;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::bench::progress;
use crate::bench_batch::requests;
use crate::loadgen::{self, Client, Load, Phase, Request, Rng};
use crate::markdown::value;
use crate::report::{Better, Figure, percentile_figures, units};

/// The section's name, as `--filter` matches it.
pub const SERVE: &str = "serve";
/// Clients of the get phase: the issue's goal is stated at 32.
pub const GET_CLIENTS: usize = 32;
/// Clients of the list phase: a page is 100 entries, far more work than a get.
pub const LIST_CLIENTS: usize = 8;
/// Entries on a list page, the server's default and the command's `--limit`.
pub const LIST_PAGE: usize = 100;
/// Clients of the second register phase (the first has one).
pub const REGISTER_CLIENTS: usize = 64;
/// The issue's goal for get at [`GET_CLIENTS`] clients on 2 cores: requests/s...
pub const GOAL_GET_PER_S: f64 = 30_000.0;
/// ...with a p99 of at most this, ns.
pub const GOAL_GET_P99_NS: f64 = 5e6;
/// The issue's goal for group commit: registrations/s from [`REGISTER_CLIENTS`] clients over
/// those from one.
pub const GOAL_REGISTER_SPEEDUP: f64 = 10.0;
/// How long the server may take to open its data directory and bind.
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long the server may take to stop on SIGTERM: its own deadline for requests under way is
/// 10 s, and the registrations queued are committed after it.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// Lines of the server's log quoted when it fails.
const LOG_LINES: usize = 20;

/// How much the section measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeSizes {
    /// Entries of the batch (through the server, then through `registry batch`).
    pub entries: usize,
    /// Requests of the get phase at most.
    pub get_requests: usize,
    /// Requests of the list phase at most.
    pub list_requests: usize,
    /// Registrations of the 1-client phase at most.
    pub register_1_requests: usize,
    /// Registrations of the [`REGISTER_CLIENTS`]-client phase at most.
    pub register_n_requests: usize,
    /// Seconds each load phase lasts at most.
    pub phase_s: u64,
    /// Runs of `registry get`, `registry list` and `registry add`.
    pub cli_get_runs: usize,
    pub cli_list_runs: usize,
    pub cli_add_runs: usize,
}

impl ServeSizes {
    /// The new requests the register phases and `registry add` take, after the batch's.
    fn new_requests(&self) -> usize {
        (self.register_1_requests + self.register_n_requests).max(self.cli_add_runs)
    }
}

/// What the section measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Serve {
    pub entries: usize,
    /// `POST /v1/batch`: one request, its time.
    pub batch: Load,
    pub get: Load,
    pub list: Load,
    pub register_1: Load,
    pub register_n: Load,
    /// Mean registrations per group commit during each register phase, from `/metrics`.
    pub per_commit_1: Option<f64>,
    pub per_commit_n: Option<f64>,
    /// Mean time of one group commit during each register phase, seconds, from `/metrics`.
    pub commit_s_1: Option<f64>,
    pub commit_s_n: Option<f64>,
    /// CPU time of each load phase (by its figure id: `get`, `list`, `register_1`,
    /// `register_n`), where `/proc` tells it.
    pub cpu: Vec<(&'static str, Cpu)>,
    /// `registry batch`: one run, its time.
    pub cli_batch: Load,
    pub cli_get: Load,
    pub cli_list: Load,
    pub cli_add: Load,
}

/// The CPU time a load phase took, user and system, all threads: the server's and the load
/// generator's (this process's), seconds. On 2 cores, what the clients take the server cannot
/// have.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cpu {
    pub server_s: f64,
    pub client_s: f64,
}

/// Runs the section in `scratch/serve`, removed afterwards.
///
/// # Errors
/// When the server does not start, an answer is not the one expected, the server does not
/// exit 0 on SIGTERM, or a command fails.
pub fn run(registry: &Path, scratch: &Path, sizes: &ServeSizes) -> Result<Serve, String> {
    let dir = scratch.join(SERVE);
    fs::create_dir_all(&dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let result = measure(registry, &dir, sizes);
    let _ = fs::remove_dir_all(&dir);
    result
}

fn measure(registry: &Path, dir: &Path, sizes: &ServeSizes) -> Result<Serve, String> {
    let config = dir.join("registry.toml");
    fs::write(
        &config,
        "# The bench's: the defaults, but no rate limit (every client has the same address).\n\
         data_dir = \"server\"\n\n[serve]\nrate_limit = 0\n",
    )
    .map_err(|e| format!("cannot write {}: {e}", config.display()))?;
    let batch_input = requests(sizes.entries)?;
    let all = requests(sizes.entries + sizes.new_requests())?;
    let lines = read_lines(&all)?;
    let fresh = lines.get(sizes.entries..).unwrap_or_default();

    let mut out = Serve {
        entries: sizes.entries,
        ..Serve::default()
    };
    let mut server = Server::start(registry, &config, dir)?;
    let addr = server.addr;
    let ids = server.checked(|| {
        let started = Instant::now();
        let reply = loadgen::post_file(addr, "/v1/batch", &batch_input)
            .map_err(|e| format!("POST /v1/batch: {e}"))?;
        let seconds = started.elapsed().as_secs_f64();
        if reply.status != 200 {
            return Err(format!(
                "POST /v1/batch answered {}: {}",
                reply.status,
                reply.text()
            ));
        }
        let ids = batch_ids(&String::from_utf8_lossy(&reply.body), sizes.entries)
            .map_err(|e| format!("POST /v1/batch: {e}"))?;
        out.batch = Load {
            requests: sizes.entries,
            seconds,
            latencies_ns: Vec::new(),
        };
        progress(&format!(
            "{SERVE}: POST /v1/batch of {} requests: {}",
            value(units::COUNT, sizes.entries as f64),
            value(units::ENTRIES_PER_S, out.batch.rate())
        ));
        check_reads(addr, &ids)?;
        Ok(ids)
    })?;

    let phase = |clients, max_requests, expect| Phase {
        clients,
        max_requests,
        max_time: Duration::from_secs(sizes.phase_s),
        expect,
    };
    let (get, cpu) = server.load(phase(GET_CLIENTS, sizes.get_requests, 200), |_, r| {
        Request {
            method: "GET",
            path: format!("/v1/entries/{}", ids[pick(r, ids.len())]),
            body: b"",
        }
    })?;
    report_phase(
        &format!("get, {GET_CLIENTS} clients"),
        "requests",
        &get,
        cpu,
    );
    out.get = get;
    out.cpu.extend(cpu.map(|c| ("get", c)));
    let list = format!("/v1/entries?limit={LIST_PAGE}");
    let (page, cpu) = server.load(phase(LIST_CLIENTS, sizes.list_requests, 200), |_, _| {
        Request {
            method: "GET",
            path: list.clone(),
            body: b"",
        }
    })?;
    report_phase(
        &format!("list, {LIST_CLIENTS} clients"),
        "requests",
        &page,
        cpu,
    );
    out.list = page;
    out.cpu.extend(cpu.map(|c| ("list", c)));

    let (first, second) = fresh.split_at(sizes.register_1_requests.min(fresh.len()));
    for (id, clients, lines) in [
        ("register_1", 1, first),
        ("register_n", REGISTER_CLIENTS, second),
    ] {
        let before = server.checked(|| commits(addr))?;
        let (load, cpu) = server.load(phase(clients, lines.len(), 201), |i, _| Request {
            method: "POST",
            path: "/v1/entries".into(),
            body: lines[i].as_bytes(),
        })?;
        let after = server.checked(|| commits(addr))?;
        report_phase(
            &format!("register, {clients} client(s)"),
            "requests",
            &load,
            cpu,
        );
        out.cpu.extend(cpu.map(|c| (id, c)));
        let per_commit = per_commit_mean(before, after);
        let commit_s = commit_mean_s(before, after);
        if let (Some(n), Some(t)) = (per_commit, commit_s) {
            progress(&format!(
                "{SERVE}: {clients} client(s): {n:.1} entries per group commit, {:.2} ms each",
                t * 1e3
            ));
        }
        if clients == 1 {
            (out.register_1, out.per_commit_1, out.commit_s_1) = (load, per_commit, commit_s);
        } else {
            (out.register_n, out.per_commit_n, out.commit_s_n) = (load, per_commit, commit_s);
        }
    }
    server.stop()?;

    let cli = Cli {
        registry,
        config: &config,
        data: dir.join("cli"),
        dir,
    };
    let (cli_batch, cli_ids) = cli.batch(&batch_input, sizes.entries)?;
    out.cli_batch = cli_batch;
    progress(&format!(
        "{SERVE}: registry batch of the same requests: {}",
        value(units::ENTRIES_PER_S, out.cli_batch.rate())
    ));
    let mut rng = Rng::new(u64::MAX);
    out.cli_get = cli.runs(sizes.cli_get_runs, |_| {
        let id = &cli_ids[pick(rng.next(), cli_ids.len())];
        vec!["get".into(), id.clone(), "--format".into(), "json".into()]
    })?;
    report_phase(
        "registry get, one process at a time",
        "runs",
        &out.cli_get,
        None,
    );
    out.cli_list = cli.runs(sizes.cli_list_runs, |_| {
        [
            "list",
            "--limit",
            &LIST_PAGE.to_string(),
            "--format",
            "json",
        ]
        .map(str::to_owned)
        .to_vec()
    })?;
    report_phase(
        "registry list, one process at a time",
        "runs",
        &out.cli_list,
        None,
    );
    let adds = fresh
        .iter()
        .take(sizes.cli_add_runs)
        .map(|l| add_args(l))
        .collect::<Result<Vec<_>, _>>()?;
    out.cli_add = cli.runs(adds.len(), |i| adds[i].clone())?;
    report_phase(
        "registry add, one process at a time",
        "runs",
        &out.cli_add,
        None,
    );
    Ok(out)
}

fn read_lines(path: &Path) -> Result<Vec<String>, String> {
    let text =
        fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().map(str::to_owned).collect())
}

/// A random index below `len`, which is not 0.
fn pick(random: u64, len: usize) -> usize {
    (random % len as u64) as usize
}

/// One line of progress for a phase of `load.requests` requests (or runs, `noun`).
fn report_phase(what: &str, noun: &str, load: &Load, cpu: Option<Cpu>) {
    if load.latencies_ns.is_empty() {
        progress(&format!("{SERVE}: {what}: nothing done"));
        return;
    }
    let busy = cpu.map_or_else(String::new, |c| {
        format!(
            ", cores busy: server {:.2}, load generator {:.2}",
            c.server_s / load.seconds.max(1e-9),
            c.client_s / load.seconds.max(1e-9)
        )
    });
    progress(&format!(
        "{SERVE}: {what}: {} {noun} in {}: {}, p50 {}, p99 {}{busy}",
        load.requests,
        value(units::SECONDS, load.seconds),
        value(units::PER_S, load.rate()),
        value(
            units::NS,
            crate::report::percentile(&load.latencies_ns, 0.5) as f64
        ),
        value(
            units::NS,
            crate::report::percentile(&load.latencies_ns, 0.99) as f64
        ),
    ));
}

/// CPU time of a process so far (`self`, or a pid), user and system, every thread; `None`
/// without `/proc`.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_of_stat(&stat, clock_ticks())
}

/// `utime` + `stime` of `/proc/PID/stat` (fields 14 and 15, counted after the command name,
/// which may hold spaces and parentheses), in seconds at `ticks` a second.
fn cpu_of_stat(stat: &str, ticks: f64) -> Option<f64> {
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let field = |n: usize| fields.get(n - 3)?.parse::<f64>().ok();
    Some((field(14)? + field(15)?) / ticks)
}

/// The kernel's clock ticks a second (`getconf CLK_TCK`; 100 on Linux when it cannot say).
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// The ids of a batch's NDJSON results, which must all be `created`, `count` of them.
fn batch_ids(results: &str, count: usize) -> Result<Vec<String>, String> {
    let mut ids = Vec::with_capacity(count);
    for (n, line) in results.lines().filter(|l| !l.trim().is_empty()).enumerate() {
        let v: Value = serde_json::from_str(line)
            .map_err(|e| format!("result line {} is not JSON ({e}): {line}", n + 1))?;
        if let Some(error) = v.get("error") {
            return Err(format!("the batch stopped: {error}"));
        }
        match (v["status"].as_str(), v["id"].as_str()) {
            (Some("created"), Some(id)) => ids.push(id.to_owned()),
            _ => return Err(format!("a line was not created: {line}")),
        }
    }
    if ids.len() != count {
        return Err(format!("{} results for {count} requests", ids.len()));
    }
    Ok(ids)
}

/// Before timing reads: one get and one list page answer what the batch stored, so that a
/// rate of quick errors or empty pages cannot pass for a figure.
fn check_reads(addr: SocketAddr, ids: &[String]) -> Result<(), String> {
    let mut client = Client::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    let id = ids.first().ok_or("the batch stored nothing")?;
    let path = format!("/v1/entries/{id}");
    let reply = client
        .send("GET", &path, b"")
        .map_err(|e| format!("GET {path}: {e}"))?;
    let entry: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    if reply.status != 200 || entry["id"].as_str() != Some(id) {
        return Err(format!(
            "GET {path} answered {} without that entry: {}",
            reply.status,
            reply.text()
        ));
    }
    let path = format!("/v1/entries?limit={LIST_PAGE}");
    let reply = client
        .send("GET", &path, b"")
        .map_err(|e| format!("GET {path}: {e}"))?;
    let page: Value = serde_json::from_slice(&reply.body).unwrap_or_default();
    let listed = page["entries"].as_array().map_or(0, Vec::len);
    let expected = LIST_PAGE.min(ids.len());
    if reply.status != 200 || listed != expected {
        return Err(format!(
            "GET {path} answered {} with {listed} entries, not {expected}: {}",
            reply.status,
            reply.text()
        ));
    }
    Ok(())
}

/// The group commits written, the registrations they carried and the seconds they took, from
/// `/metrics`.
fn commits(addr: SocketAddr) -> Result<(f64, f64, f64), String> {
    let mut client = Client::connect(addr).map_err(|e| format!("cannot connect: {e}"))?;
    let reply = client.get_ok("/metrics")?;
    let text = String::from_utf8_lossy(&reply.body);
    let read = |name: &str| {
        counter(&text, name).ok_or_else(|| format!("GET /metrics has no counter {name}"))
    };
    Ok((
        read("registry_group_commits_total")?,
        read("registry_group_commit_registrations_total")?,
        read("registry_group_commit_duration_seconds_sum")?,
    ))
}

/// The value of an unlabelled metric in Prometheus text.
fn counter(text: &str, name: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// Registrations per commit between two readings of [`commits`]; none without a commit.
fn per_commit_mean(before: (f64, f64, f64), after: (f64, f64, f64)) -> Option<f64> {
    let commits = after.0 - before.0;
    (commits > 0.0).then(|| (after.1 - before.1) / commits)
}

/// Seconds per commit between two readings of [`commits`]; none without a commit.
fn commit_mean_s(before: (f64, f64, f64), after: (f64, f64, f64)) -> Option<f64> {
    let commits = after.0 - before.0;
    (commits > 0.0).then(|| (after.2 - before.2) / commits)
}

/// The `registry serve` process of the section. Dropped while it runs (the section failed),
/// it gets SIGTERM and, if it has not stopped in [`STOP_TIMEOUT`], SIGKILL.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: SocketAddr,
    log: PathBuf,
    /// The section it serves, as its progress lines name it.
    section: &'static str,
}

impl Server {
    fn start(registry: &Path, config: &Path, dir: &Path) -> Result<Server, String> {
        let mut command = Command::new(registry);
        command
            .arg("--config")
            .arg(config)
            .args(["serve", "--listen", "127.0.0.1:0"]);
        Server::spawn(command, dir, SERVE)
    }

    /// Starts `command` (a `registry serve` listening on 127.0.0.1:0) in `dir`, its log in
    /// `dir/serve.log`, and reads where it listens from its first line.
    pub(crate) fn spawn(
        mut command: Command,
        dir: &Path,
        section: &'static str,
    ) -> Result<Server, String> {
        let log = dir.join("serve.log");
        let stderr =
            fs::File::create(&log).map_err(|e| format!("cannot create {}: {e}", log.display()))?;
        let mut child = command
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("cannot run {:?}: {e}", command.get_program()))?;
        let stdout = child.stdout.take();
        let (tx, rx) = mpsc::channel();
        // Read on a thread, so that a server that neither binds nor exits is waited for a
        // bounded time; the thread then reads the rest of stdout until the server exits.
        std::thread::spawn(move || {
            let Some(stdout) = stdout else { return };
            let mut r = BufReader::new(stdout);
            let mut line = String::new();
            let _ = tx.send(r.read_line(&mut line).map(|_| line));
            let _ = std::io::copy(&mut r, &mut std::io::sink());
        });
        let placeholder = SocketAddr::from(([127, 0, 0, 1], 0));
        let mut server = Server {
            child,
            addr: placeholder,
            log,
            section,
        };
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(Ok(line)) => line,
            Ok(Err(e)) => return Err(server.failed(&format!("its output cannot be read: {e}"))),
            Err(_) => {
                return Err(server.failed(&format!(
                    "it did not say where it listens within {}",
                    value(units::SECONDS, START_TIMEOUT.as_secs_f64())
                )));
            }
        };
        server.addr = listening(&line).ok_or_else(|| {
            server.failed(&format!(
                "its first line is not `listening on http://127.0.0.1:PORT`: {:?}",
                line.trim_end()
            ))
        })?;
        progress(&format!(
            "{section}: registry serve listening on {}",
            server.addr
        ));
        Ok(server)
    }

    /// Runs `f`; when it fails, the error says whether the server is still running, and
    /// quotes the end of its log.
    pub(crate) fn checked<T>(
        &mut self,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<T, String> {
        f().map_err(|e| {
            let state = match self.child.try_wait() {
                Ok(Some(status)) => format!("registry serve has exited ({status})"),
                _ => "registry serve is still running".to_owned(),
            };
            format!("{e} ({state}; end of its log:\n{})", self.log_tail())
        })
    }

    /// A load phase against this server, and the CPU it and this process took meanwhile.
    fn load<'a>(
        &mut self,
        phase: Phase,
        make: impl Fn(usize, u64) -> Request<'a> + Sync,
    ) -> Result<(Load, Option<Cpu>), String> {
        let (addr, pid) = (self.addr, self.child.id().to_string());
        let before = (cpu_s(&pid), cpu_s("self"));
        let load = self.checked(|| loadgen::run(addr, phase, make))?;
        let cpu = match (before, (cpu_s(&pid), cpu_s("self"))) {
            ((Some(s0), Some(c0)), (Some(s1), Some(c1))) => Some(Cpu {
                server_s: s1 - s0,
                client_s: c1 - c0,
            }),
            _ => None,
        };
        Ok((load, cpu))
    }

    fn failed(&mut self, why: &str) -> String {
        let exited = self.child.try_wait().ok().flatten();
        let state = exited.map_or_else(
            || "it is still running".to_owned(),
            |s| format!("it exited ({s})"),
        );
        format!(
            "registry serve did not start: {why}; {state}; end of its log:\n{}",
            self.log_tail()
        )
    }

    fn log_tail(&self) -> String {
        let text = fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(LOG_LINES)..].join("\n")
    }

    /// Sends SIGTERM to this server's process (by its pid, which stays ours until it is waited
    /// for).
    fn terminate(&self) -> Result<(), String> {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .map_err(|e| format!("cannot run kill: {e}"))?;
        if status.success() {
            Ok(())
        } else {
            Err(format!("kill -TERM {} failed ({status})", self.child.id()))
        }
    }

    /// Waits up to [`STOP_TIMEOUT`] for the process to exit.
    fn wait(&mut self) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + STOP_TIMEOUT;
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => return None,
            }
        }
    }

    /// SIGTERM, then the exit, which must be 0 within [`STOP_TIMEOUT`].
    pub(crate) fn stop(mut self) -> Result<(), String> {
        self.terminate()?;
        match self.wait() {
            Some(status) if status.success() => {
                progress(&format!(
                    "{}: registry serve stopped on SIGTERM (exit 0)",
                    self.section
                ));
                Ok(())
            }
            Some(status) => Err(format!(
                "registry serve exited {status} on SIGTERM, not 0; end of its log:\n{}",
                self.log_tail()
            )),
            None => Err(format!(
                "registry serve was still running {} after SIGTERM",
                value(units::SECONDS, STOP_TIMEOUT.as_secs_f64())
            )),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.terminate();
            if self.wait().is_none() {
                let _ = self.child.kill();
                let _ = self.child.wait();
            }
        }
    }
}

/// The address of `listening on http://ADDR`, when it is a loopback one.
fn listening(line: &str) -> Option<SocketAddr> {
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("listening on http://")?
        .parse()
        .ok()?;
    addr.ip().is_loopback().then_some(addr)
}

/// The command line on its own data directory, with the server's configuration.
struct Cli<'a> {
    registry: &'a Path,
    config: &'a Path,
    data: PathBuf,
    dir: &'a Path,
}

impl Cli<'_> {
    fn command(&self) -> Command {
        let mut c = Command::new(self.registry);
        c.arg("--config")
            .arg(self.config)
            .arg("--data-dir")
            .arg(&self.data)
            .current_dir(self.dir)
            .stdin(Stdio::null());
        c
    }

    /// `registry batch` of `input`, timed as a whole; the ids of its `--results`.
    fn batch(&self, input: &Path, count: usize) -> Result<(Load, Vec<String>), String> {
        let results = self.dir.join("cli-results.jsonl");
        let mut c = self.command();
        c.arg("batch")
            .arg(input)
            .arg("--results")
            .arg(&results)
            .args(["--format", "json"]);
        let started = Instant::now();
        let out = c
            .output()
            .map_err(|e| format!("cannot run {}: {e}", self.registry.display()))?;
        let seconds = started.elapsed().as_secs_f64();
        if !out.status.success() {
            return Err(format!(
                "registry batch failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        let text = fs::read_to_string(&results)
            .map_err(|e| format!("cannot read {}: {e}", results.display()))?;
        let ids = batch_ids(&text, count).map_err(|e| format!("registry batch: {e}"))?;
        Ok((
            Load {
                requests: count,
                seconds,
                latencies_ns: Vec::new(),
            },
            ids,
        ))
    }

    /// `runs` commands one after the other, the arguments of run `i` from `args(i)`, each
    /// timed from spawn to exit; each must succeed.
    fn runs(
        &self,
        runs: usize,
        mut args: impl FnMut(usize) -> Vec<String>,
    ) -> Result<Load, String> {
        let mut times = Vec::with_capacity(runs);
        for i in 0..runs {
            let args = args(i);
            let mut c = self.command();
            c.args(&args).stdout(Stdio::null()).stderr(Stdio::piped());
            let started = Instant::now();
            let out = c
                .output()
                .map_err(|e| format!("cannot run {}: {e}", self.registry.display()))?;
            let took = started.elapsed();
            if !out.status.success() {
                return Err(format!(
                    "registry {} failed ({}): {}",
                    args.join(" "),
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
            }
            times.push(u64::try_from(took.as_nanos()).unwrap_or(u64::MAX));
        }
        Ok(Load::sequential(times))
    }
}

/// `add` arguments for one generated request line (title and context).
fn add_args(line: &str) -> Result<Vec<String>, String> {
    let v: Value = serde_json::from_str(line)
        .map_err(|e| format!("a generated request is not JSON ({e}): {line}"))?;
    let title = v["title"]
        .as_str()
        .ok_or_else(|| format!("a generated request has no title: {line}"))?;
    let mut args = vec!["add".to_owned(), "--title".to_owned(), title.to_owned()];
    if let Some(context) = v["context"].as_object() {
        for (k, v) in context {
            args.push("--context".into());
            args.push(format!("{k}={}", v.as_str().unwrap_or_default()));
        }
    }
    args.extend(["--format".into(), "json".into()]);
    Ok(args)
}

/// Rough seconds the section takes at `sizes`: every phase at its time bound (the bound is
/// what a slow server reaches), and the command line at `process_s` a run (`commit_s` more for
/// an add) and `entry_s` an entry, twice for the batch.
pub fn estimate_s(sizes: &ServeSizes, process_s: f64, commit_s: f64, entry_s: f64) -> f64 {
    4.0 * sizes.phase_s as f64
        + 2.0 * (sizes.entries as f64 * entry_s + process_s)
        + (sizes.cli_get_runs + sizes.cli_list_runs) as f64 * process_s
        + sizes.cli_add_runs as f64 * (process_s + commit_s)
}

/// The section's figures (`serve/*`).
pub fn figures(s: &Serve) -> Vec<Figure> {
    let mut out = Vec::new();
    let entries = value(units::COUNT, s.entries as f64);
    let rate = |id: &str, label: String, unit: &'static str, load: &Load| {
        (load.requests > 0).then(|| Figure {
            runs: Some(load.requests as u64),
            ..Figure::single(
                format!("{SERVE}/{id}"),
                label,
                unit,
                Better::Higher,
                load.rate(),
            )
        })
    };
    out.extend(rate(
        "batch/entries_per_s",
        format!("POST /v1/batch of {entries} requests: entries/s"),
        units::ENTRIES_PER_S,
        &s.batch,
    ));
    out.extend(rate(
        "cli/batch/entries_per_s",
        format!("registry batch of {entries} requests: entries/s"),
        units::ENTRIES_PER_S,
        &s.cli_batch,
    ));
    for (id, label, load) in [
        (
            "get",
            format!("GET /v1/entries/ID, {GET_CLIENTS} clients"),
            &s.get,
        ),
        (
            "list",
            format!("GET /v1/entries?limit={LIST_PAGE}, {LIST_CLIENTS} clients"),
            &s.list,
        ),
        (
            "register_1",
            "POST /v1/entries, 1 client".to_owned(),
            &s.register_1,
        ),
        (
            "register_n",
            format!("POST /v1/entries, {REGISTER_CLIENTS} clients"),
            &s.register_n,
        ),
        ("cli/get", "registry get".to_owned(), &s.cli_get),
        (
            "cli/list",
            format!("registry list --limit {LIST_PAGE}"),
            &s.cli_list,
        ),
        ("cli/add", "registry add".to_owned(), &s.cli_add),
    ] {
        if load.latencies_ns.is_empty() {
            continue;
        }
        let per = if id.starts_with("cli/") {
            "runs/s"
        } else {
            "requests/s"
        };
        out.extend(rate(
            &format!("{id}/per_s"),
            format!("{label}: {per}"),
            units::PER_S,
            load,
        ));
        out.extend(percentile_figures(
            &format!("{SERVE}/{id}"),
            &label,
            &load.latencies_ns,
            &[("p50", 0.50), ("p99", 0.99)],
        ));
    }
    if !s.register_1.latencies_ns.is_empty() && !s.register_n.latencies_ns.is_empty() {
        out.push(Figure::single(
            format!("{SERVE}/register/speedup"),
            format!("POST /v1/entries: requests/s of {REGISTER_CLIENTS} clients / 1 client"),
            units::RATIO,
            Better::Higher,
            s.register_n.rate() / s.register_1.rate().max(1e-9),
        ));
    }
    for (id, cpu) in &s.cpu {
        let (load, what) = match *id {
            "get" => (&s.get, format!("GET /v1/entries/ID, {GET_CLIENTS} clients")),
            "list" => (
                &s.list,
                format!("GET /v1/entries?limit={LIST_PAGE}, {LIST_CLIENTS} clients"),
            ),
            "register_1" => (&s.register_1, "POST /v1/entries, 1 client".to_owned()),
            _ => (
                &s.register_n,
                format!("POST /v1/entries, {REGISTER_CLIENTS} clients"),
            ),
        };
        if load.requests == 0 {
            continue;
        }
        let n = load.requests as f64;
        for (who, seconds) in [("server", cpu.server_s), ("client", cpu.client_s)] {
            let whose = if who == "server" {
                "the server's"
            } else {
                "the load generator's"
            };
            out.push(Figure {
                runs: Some(load.requests as u64),
                ..Figure::single(
                    format!("{SERVE}/{id}/{who}_cpu_per_request"),
                    format!("{what}: {whose} CPU time per request"),
                    units::NS,
                    Better::Lower,
                    seconds * 1e9 / n,
                )
            });
        }
    }
    for (id, clients, mean, seconds) in [
        ("register_1", 1, s.per_commit_1, s.commit_s_1),
        ("register_n", REGISTER_CLIENTS, s.per_commit_n, s.commit_s_n),
    ] {
        out.extend(mean.map(|m| {
            Figure::single(
                format!("{SERVE}/{id}/entries_per_commit"),
                format!("POST /v1/entries, {clients} client(s): mean entries per group commit"),
                units::COUNT,
                Better::Higher,
                m,
            )
        }));
        out.extend(seconds.map(|t| {
            Figure::single(
                format!("{SERVE}/{id}/commit_time"),
                format!("POST /v1/entries, {clients} client(s): mean time of one group commit"),
                units::NS,
                Better::Lower,
                t * 1e9,
            )
        }));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_listening_line_gives_a_loopback_address() {
        assert_eq!(
            listening("listening on http://127.0.0.1:41234\n"),
            Some("127.0.0.1:41234".parse().expect("an address"))
        );
        assert_eq!(listening("listening on http://0.0.0.0:80"), None);
        assert_eq!(listening("error: cannot open"), None);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        // A command name with a space and a parenthesis; utime 250 and stime 50 ticks.
        let stat = "4242 (registry (x) y) S 1 4242 4242 0 -1 4194560 1200 0 0 0 250 50 0 0 20 0 \
                    9 0 100 1000000 500 18446744073709551615";
        assert_eq!(cpu_of_stat(stat, 100.0), Some(3.0));
        assert_eq!(cpu_of_stat("4242 (cut", 100.0), None);
        assert!(cpu_s("self").is_some_and(|s| s >= 0.0));
    }

    #[test]
    fn metrics_counters_are_read_by_exact_name() {
        let text = "# HELP registry_group_commits Group commits written.\n\
                    # TYPE registry_group_commits counter\n\
                    registry_group_commits_total 12\n\
                    registry_group_commit_registrations_total 480\n\
                    registry_group_commit_entries_sum 480.0\n";
        assert_eq!(counter(text, "registry_group_commits_total"), Some(12.0));
        assert_eq!(
            counter(text, "registry_group_commit_registrations_total"),
            Some(480.0)
        );
        assert_eq!(counter(text, "registry_group_commit"), None);
        assert_eq!(
            per_commit_mean((2.0, 2.0, 0.5), (12.0, 482.0, 0.52)),
            Some(48.0)
        );
        assert_eq!(per_commit_mean((2.0, 2.0, 0.5), (2.0, 2.0, 0.5)), None);
        let t = commit_mean_s((2.0, 2.0, 0.5), (12.0, 482.0, 0.52)).expect("commits");
        assert!((t - 0.002).abs() < 1e-12, "{t}");
        assert_eq!(commit_mean_s((2.0, 2.0, 0.5), (2.0, 2.0, 0.5)), None);
    }

    #[test]
    fn batch_results_must_all_be_created() {
        let ok = "{\"line\":1,\"status\":\"created\",\"id\":\"SEC-RUL-001\"}\n\
                  {\"line\":2,\"status\":\"created\",\"id\":\"OPS-SCR-002\"}\n";
        assert_eq!(
            batch_ids(ok, 2).expect("two created"),
            ["SEC-RUL-001", "OPS-SCR-002"]
        );
        for (text, count, error) in [
            (ok, 3, "2 results for 3 requests"),
            (
                "{\"line\":1,\"status\":\"duplicate\",\"id\":\"X\"}",
                1,
                "a line was not created",
            ),
            ("{\"error\":{\"status\":413}}", 1, "the batch stopped"),
            ("not json", 1, "result line 1 is not JSON"),
        ] {
            let err = batch_ids(text, count).expect_err(text);
            assert!(err.starts_with(error), "{text}: {err}");
        }
    }

    #[test]
    fn add_takes_the_title_and_context_of_a_request_line() {
        let args = add_args(
            r#"{"title": "Rotate the API tokens of service 7", "context": {"env": "prod"}}"#,
        )
        .expect("a request");
        assert_eq!(
            args,
            [
                "add",
                "--title",
                "Rotate the API tokens of service 7",
                "--context",
                "env=prod",
                "--format",
                "json"
            ]
        );
        assert!(add_args("{}").is_err());
    }

    fn load(rate: f64, ms: u64) -> Load {
        Load {
            requests: 100,
            seconds: 100.0 / rate,
            latencies_ns: vec![ms * 1_000_000; 100],
        }
    }

    #[test]
    fn figures_give_rates_percentiles_and_the_group_commit_speedup() {
        let s = Serve {
            entries: 1000,
            batch: load(5000.0, 0),
            get: load(20_000.0, 1),
            register_1: load(200.0, 5),
            register_n: load(3000.0, 20),
            per_commit_n: Some(40.0),
            commit_s_n: Some(0.003),
            cpu: vec![(
                "get",
                Cpu {
                    server_s: 0.01,
                    client_s: 0.002,
                },
            )],
            cli_get: load(30.0, 33),
            ..Serve::default()
        };
        let f = figures(&s);
        let get = |id: &str| f.iter().find(|x| x.id == id).expect(id).median;
        assert_eq!(get("serve/batch/entries_per_s"), 5000.0);
        assert_eq!(get("serve/get/per_s"), 20_000.0);
        assert_eq!(get("serve/get/p99"), 1e6);
        assert_eq!(get("serve/cli/get/p50"), 33e6);
        assert_eq!(get("serve/register/speedup"), 15.0);
        assert_eq!(get("serve/register_n/entries_per_commit"), 40.0);
        assert_eq!(get("serve/register_n/commit_time"), 3e6);
        assert_eq!(get("serve/get/server_cpu_per_request"), 1e5);
        assert_eq!(get("serve/get/client_cpu_per_request"), 2e4);
        assert!(!f.iter().any(|x| x.id.starts_with("serve/list")));
        assert!(figures(&Serve::default()).is_empty());
    }
}
