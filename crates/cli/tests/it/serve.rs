//! `registry serve`, over loopback: health, register and get with the command line's
//! idempotency, problem+json errors, and bearer tokens (401, 403, scopes). Each test starts its
//! own server on a free port and ends it by its PID.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Scratch;

/// A server this test started, ended when dropped.
pub(crate) struct Server {
    child: Child,
    pub(crate) addr: String,
}

/// One answer: status, headers (names in lower case) and body.
pub(crate) struct Answer {
    pub(crate) status: u16,
    pub(crate) headers: BTreeMap<String, String>,
    pub(crate) body: String,
}

impl Answer {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl Server {
    pub(crate) fn start(s: &Scratch) -> Server {
        Server::start_with(s, &[])
    }

    /// A server with these `[serve]` settings, as `REGISTRY_SERVE__*` variables.
    fn start_with(s: &Scratch, env: &[(&str, &str)]) -> Server {
        let mut command = s.command(&["serve", "--listen", "127.0.0.1:0"]);
        for (k, v) in env {
            command.env(k, v);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("starts");
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("stdout"))
            .read_line(&mut line)
            .expect("reads its first line");
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// One request; the status and the body as JSON (`Null` when empty or not JSON).
    pub(crate) fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: &str,
    ) -> (u16, Value) {
        let answer = self.send(method, path, token, &[], body);
        (answer.status, answer.json())
    }

    /// One request with extra headers, on a connection of its own.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: &str,
    ) -> Answer {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .expect("timeout");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}{extra}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("writes");
        let mut raw = Vec::new();
        let _ = stream.read_to_end(&mut raw);
        parse_answer(&raw)
    }

    /// Sends SIGTERM and waits for the exit status.
    fn terminate(mut self) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("waits") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "the server did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Parses an HTTP/1.1 answer, its body whole or chunked.
fn parse_answer(raw: &[u8]) -> Answer {
    let text = String::from_utf8_lossy(raw);
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: BTreeMap<String, String> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let body = if headers
        .get("transfer-encoding")
        .is_some_and(|t| t == "chunked")
    {
        let mut body = String::new();
        let mut rest = rest;
        while let Some((size, after)) = rest.split_once("\r\n") {
            let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
            if size == 0 || after.len() < size {
                break;
            }
            body.push_str(&after[..size]);
            rest = after[size..].strip_prefix("\r\n").unwrap_or(&after[size..]);
        }
        body
    } else {
        rest.to_owned()
    };
    Answer {
        status,
        headers,
        body,
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const SSH: &str = r#"{"title": "Block SSH from the internet", "scope": "SEC"}"#;

#[test]
fn registers_and_gets_as_the_command_line_does() {
    let s = Scratch::new();
    let server = Server::start(&s);
    let (status, _) = server.call("GET", "/healthz", None, "");
    assert_eq!(status, 200);
    let (status, created) = server.call("POST", "/v1/entries", None, SSH);
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["id"], "SEC-RUL-001");
    let (status, again) = server.call("POST", "/v1/entries", None, SSH);
    assert_eq!(
        (status, again["created"].clone()),
        (200, false.into()),
        "{again}"
    );
    let (status, got) = server.call("GET", "/v1/entries/SEC-RUL-001", None, "");
    assert_eq!(status, 200);
    assert_eq!(got["hash"], created["hash"]);
    let (status, missing) = server.call("GET", "/v1/entries/SEC-RUL-009", None, "");
    assert_eq!((status, missing["code"].as_str()), (404, Some("not-found")));
    let (status, bad) = server.call("POST", "/v1/entries", None, r#"{"title": ""}"#);
    assert_eq!(status, 422, "{bad}");
    let (status, bad) = server.call("POST", "/v1/entries", None, "not json");
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid")),
        "{bad}"
    );
}

#[test]
fn tokens_are_required_once_any_exists_and_hold_to_their_role_and_scopes() {
    let s = Scratch::new();
    let token = |args: &[&str]| {
        let mut all = vec!["token", "add"];
        all.extend(args);
        s.json(&all)["token"].as_str().expect("token").to_owned()
    };
    let reader = token(&["reader", "--role", "read"]);
    let writer = token(&["writer", "--role", "write", "--scope", "OPS"]);
    let admin = token(&["admin", "--role", "admin"]);
    let server = Server::start(&s);

    let (status, body) = server.call("POST", "/v1/entries", None, SSH);
    assert_eq!(
        (status, body["code"].as_str()),
        (401, Some("unauthorized")),
        "{body}"
    );
    let (status, _) = server.call("POST", "/v1/entries", Some("reg_00"), SSH);
    assert_eq!(status, 401);
    let (status, body) = server.call("POST", "/v1/entries", Some(&reader), SSH);
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("forbidden")),
        "{body}"
    );
    let (status, body) = server.call("POST", "/v1/entries", Some(&writer), SSH);
    assert_eq!(status, 403, "SEC is outside the writer's scopes: {body}");
    let (status, body) = server.call(
        "POST",
        "/v1/entries",
        Some(&writer),
        r#"{"title": "Rotate the keys"}"#,
    );
    assert_eq!(status, 403, "a scoped token must name the scope: {body}");
    let (status, body) = server.call(
        "POST",
        "/v1/entries",
        Some(&writer),
        r#"{"title": "Deploy the agent", "scope": "OPS"}"#,
    );
    assert_eq!(status, 201, "{body}");
    let (status, body) = server.call("POST", "/v1/entries", Some(&admin), SSH);
    assert_eq!(status, 201, "{body}");
    let (status, _) = server.call("GET", "/v1/entries/SEC-RUL-001", Some(&reader), "");
    assert_eq!(status, 200);
    let (status, _) = server.call("GET", "/v1/entries/SEC-RUL-001", Some(&writer), "");
    assert_eq!(
        status, 404,
        "an entry outside its scopes does not exist for it"
    );
    // The health check needs no token.
    assert_eq!(server.call("GET", "/healthz", None, "").0, 200);
}

#[test]
fn without_a_token_it_refuses_to_listen_beyond_loopback() {
    let s = Scratch::new();
    let (code, message) = s.fail(&["serve", "--listen", "0.0.0.0:0"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("needs authentication"), "{message}");
}

/// Registers `titles` in scope `scope` through the batch route; the ids, in order.
fn batch(server: &Server, scope: &str, titles: &[&str]) -> Vec<String> {
    let body: String = titles
        .iter()
        .map(|t| format!("{}\n", serde_json::json!({"title": t, "scope": scope})))
        .collect();
    let answer = server.send("POST", "/v1/batch", None, &[], &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    answer
        .body
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("a result line");
            v["id"].as_str().expect("an id").to_owned()
        })
        .collect()
}

#[test]
fn lists_page_by_page_with_a_cursor_and_filters() {
    let s = Scratch::new();
    let server = Server::start(&s);
    let sec = batch(&server, "SEC", &["alpha one", "beta two", "gamma three"]);
    let ops = batch(&server, "OPS", &["delta four", "epsilon five"]);
    let mut seen = Vec::new();
    let mut path = "/v1/entries?limit=2".to_owned();
    loop {
        let (status, page) = server.call("GET", &path, None, "");
        assert_eq!(status, 200, "{page}");
        let entries = page["entries"].as_array().expect("entries");
        assert!(entries.len() <= 2);
        seen.extend(
            entries
                .iter()
                .map(|e| e["id"].as_str().expect("id").to_owned()),
        );
        match page["next"].as_str() {
            Some(next) => path = format!("/v1/entries?limit=2&after={next}"),
            None => break,
        }
    }
    let mut all: Vec<String> = sec.iter().chain(&ops).cloned().collect();
    all.sort();
    assert_eq!(seen, all, "every entry once, in id order");

    let (_, page) = server.call("GET", "/v1/entries?scope=ops", None, "");
    let ids: Vec<&str> = page["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["id"].as_str().expect("id"))
        .collect();
    assert_eq!(ids, ops.iter().map(String::as_str).collect::<Vec<_>>());
    let (status, bad) = server.call("GET", "/v1/entries?scope=NOPE", None, "");
    assert_eq!(
        (status, bad["code"].as_str()),
        (422, Some("unknown-scope")),
        "{bad}"
    );
    let (status, bad) = server.call("GET", "/v1/entries?limit=0", None, "");
    assert_eq!(status, 400, "{bad}");
    let (status, bad) = server.call("GET", "/v1/entries?colour=red", None, "");
    assert_eq!(status, 400, "{bad}");
}

#[test]
fn updates_only_from_the_revision_if_match_names() {
    let s = Scratch::new();
    let server = Server::start(&s);
    let id = &batch(&server, "SEC", &["Block SSH from the internet"])[0];
    let got = server.send("GET", &format!("/v1/entries/{id}"), None, &[], "");
    assert_eq!(got.headers.get("etag").map(String::as_str), Some("\"1\""));

    let path = format!("/v1/entries/{id}");
    let change = r#"{"title": "Block SSH from anywhere", "context": {"owner": "netsec"}}"#;
    let updated = server.send("PATCH", &path, None, &[("If-Match", "\"1\"")], change);
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        updated.headers.get("etag").map(String::as_str),
        Some("\"2\"")
    );
    assert_eq!(updated.json()["revision"], 2);

    let stale = server.send(
        "PATCH",
        &path,
        None,
        &[("If-Match", "\"1\"")],
        r#"{"title": "Something else"}"#,
    );
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(
        stale.headers.get("content-type").map(String::as_str),
        Some("application/problem+json")
    );
    assert!(
        stale.body.contains("is at revision 2, not 1"),
        "{}",
        stale.body
    );
    let (_, now) = server.call("GET", &path, None, "");
    assert_eq!(
        (now["revision"].clone(), now["title"].clone()),
        (2.into(), "Block SSH from anywhere".into()),
        "nothing was written"
    );

    let (status, history) = server.call("GET", &format!("{path}/history"), None, "");
    assert_eq!(status, 200);
    assert_eq!(history.as_array().map(Vec::len), Some(2));
    let (status, diff) = server.call("GET", &format!("{path}/diff?from=1&to=2"), None, "");
    assert_eq!(status, 200, "{diff}");
    let fields: Vec<&str> = diff["changes"]
        .as_array()
        .expect("changes")
        .iter()
        .map(|c| c["field"].as_str().expect("field"))
        .collect();
    assert_eq!(fields, ["title", "context.owner"]);
    assert!(
        diff["config"]
            .as_str()
            .is_some_and(|c| c.contains("+  title: Block SSH from anywhere")),
        "{diff}"
    );
    let (status, bad) = server.call("GET", &format!("{path}/diff?from=1&to=9"), None, "");
    assert_eq!(status, 422, "{bad}");

    let retired = server.send(
        "POST",
        &format!("{path}/retire"),
        None,
        &[("If-Match", "\"2\"")],
        "",
    );
    assert_eq!(retired.status, 200, "{}", retired.body);
    assert_eq!(retired.json()["lifecycle"], "retired");
    // A get after each write answers the new revision, never the JSON kept for the one before.
    let after = server.send("GET", &path, None, &[], "");
    assert_eq!(after.headers.get("etag").map(String::as_str), Some("\"3\""));
    assert_eq!(
        (
            after.json()["revision"].clone(),
            after.json()["lifecycle"].clone()
        ),
        (3.into(), "retired".into())
    );
    let (_, page) = server.call("GET", "/v1/entries", None, "");
    assert_eq!(
        page["entries"].as_array().map(Vec::len),
        Some(0),
        "retired is not listed"
    );
    let (_, page) = server.call("GET", "/v1/entries?all=true", None, "");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(1));
    let bad = server.send("PATCH", &path, None, &[("If-Match", "three")], "{}");
    assert_eq!(bad.status, 400, "{}", bad.body);
}

#[test]
fn batch_answers_every_line_and_isolates_the_bad_ones() {
    let s = Scratch::new();
    let server = Server::start_with(&s, &[("REGISTRY_LIMITS__MAX_RECORD_BYTES", "200")]);
    let long = format!(r#"{{"title": "{}", "scope": "SEC"}}"#, "x".repeat(300));
    let body = format!(
        "{}\n\n{}\nnot json\n{long}\n{}\n{}",
        r#"{"title": "Block SSH from the internet", "scope": "SEC"}"#,
        r#"{"title": "", "scope": "SEC"}"#,
        r#"{"title": "Block SSH from the internet", "scope": "SEC"}"#,
        r#"{"title": "Rotate the keys", "scope": "NOPE"}"#,
    );
    let answer = server.send("POST", "/v1/batch", None, &[], &body);
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert_eq!(
        answer.headers.get("content-type").map(String::as_str),
        Some("application/x-ndjson")
    );
    let results: Vec<Value> = answer
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let summary: Vec<(u64, &str)> = results
        .iter()
        .map(|r| {
            (
                r["line"].as_u64().expect("line"),
                r["status"].as_str().expect("status"),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (1, "created"),
            (3, "failed"),
            (4, "failed"),
            (5, "failed"),
            (6, "duplicate"),
            (7, "failed"),
        ],
        "{}",
        answer.body
    );
    assert_eq!(results[3]["code"], "too-large");
    assert_eq!(results[4]["id"], results[0]["id"]);
}

#[test]
fn export_streams_what_registry_export_writes() {
    let s = Scratch::with_shards(2);
    let server = Server::start(&s);
    let titles: Vec<String> = (0..300)
        .map(|i| format!("rule number {i} of the export"))
        .collect();
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    batch(&server, "SEC", &refs);
    let id = batch(&server, "OPS", &["Deploy the agent"])[0].clone();
    let (status, _) = server.call(
        "PATCH",
        &format!("/v1/entries/{id}"),
        None,
        r#"{"title": "Deploy the agent everywhere"}"#,
    );
    assert_eq!(status, 200);
    let served = server.send("GET", "/v1/export", None, &[], "");
    assert_eq!(served.status, 200);
    let ops = server.send("GET", "/v1/export?scope=OPS", None, &[], "");
    assert_eq!(ops.body.lines().count(), 1, "{}", ops.body);
    assert!(server.terminate().success());
    let written = s.ok(&["export"]);
    assert_eq!(served.body.lines().count(), 301);
    assert_eq!(served.body, written, "the same bytes as `registry export`");
}

#[test]
fn requests_over_a_tokens_rate_get_429_with_retry_after() {
    let s = Scratch::new();
    let server = Server::start_with(
        &s,
        &[
            ("REGISTRY_SERVE__RATE_LIMIT", "1"),
            ("REGISTRY_SERVE__RATE_BURST", "3"),
        ],
    );
    let statuses: Vec<u16> = (0..6)
        .map(|_| server.send("GET", "/v1/entries", None, &[], "").status)
        .collect();
    assert_eq!(&statuses[..3], [200, 200, 200], "{statuses:?}");
    let limited = server.send("GET", "/v1/entries", None, &[], "");
    assert_eq!(limited.status, 429, "{}", limited.body);
    assert!(
        limited
            .headers
            .get("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|s| s >= 1),
        "{:?}",
        limited.headers
    );
    assert_eq!(limited.json()["code"], "rate-limited");
    // Health checks are not rate-limited.
    assert_eq!(server.send("GET", "/healthz", None, &[], "").status, 200);
}

#[test]
fn bodies_over_the_limit_are_refused_whole() {
    let s = Scratch::new();
    let server = Server::start_with(&s, &[("REGISTRY_SERVE__MAX_BODY_BYTES", "64")]);
    let big = format!(r#"{{"title": "{}", "scope": "SEC"}}"#, "y".repeat(100));
    let (status, body) = server.call("POST", "/v1/entries", None, &big);
    assert_eq!(
        (status, body["code"].as_str()),
        (413, Some("too-large")),
        "{body}"
    );
    let (_, page) = server.call("GET", "/v1/entries", None, "");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(0));
    let (status, bad) = server.call("GET", "/v1/nothing-here", None, "");
    assert_eq!((status, bad["code"].as_str()), (404, Some("not-found")));
}

#[test]
fn lint_predict_and_stats_answer_as_the_command_line_does() {
    let s = Scratch::new();
    let server = Server::start(&s);
    batch(&server, "SEC", &["Block SSH from the internet"]);
    let text = "# [SEC][RULES][LIVE][SEC-RUL-001][v2.9][DEV]\n# [NOPE][RULES][LIVE][SEC-RUL-002][v2.9][DEV]\n";
    let (status, linted) = server.call("POST", "/v1/lint?name=rules/ssh.rego", None, text);
    assert_eq!(status, 200, "{linted}");
    assert_eq!(linted["summary"]["headers"], 2);
    let findings = linted["findings"].as_array().expect("findings");
    assert!(
        findings.iter().any(|f| f["code"] == "unknown-scope"
            && f["line"] == 2
            && f["file"] == "rules/ssh.rego"),
        "{linted}"
    );
    s.write("ssh.rego", text);
    let (status, bad) = server.call("POST", "/v1/lint?select=no-such-code", None, text);
    assert_eq!(status, 422, "{bad}");

    let (status, predicted) = server.call(
        "POST",
        "/v1/predict",
        None,
        r#"{"title": "Block SSH from the internet", "scope": "SEC"}"#,
    );
    assert_eq!(status, 200, "{predicted}");
    assert_eq!(predicted["scope"]["source"], "given");

    let (status, stats) = server.call("GET", "/v1/stats", None, "");
    assert_eq!(status, 200, "{stats}");
    assert_eq!(stats["entries"], 1);
    assert_eq!(stats["by_scope"]["SEC"], 1);
    assert!(
        stats["bytes_on_disk"].as_u64().is_some_and(|b| b > 0),
        "{stats}"
    );
    assert!(server.terminate().success());
    let lint = s.run(&["lint", "ssh.rego", "--format", "json"]);
    let local: Value = serde_json::from_slice(&lint.stdout).expect("lint json");
    assert_eq!(local["summary"], linted["summary"]);
}

#[test]
fn readiness_and_metrics_report_the_registry() {
    let s = Scratch::new();
    let server = Server::start(&s);
    let ready = server.send("GET", "/readyz", None, &[], "");
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready\n"));
    batch(&server, "SEC", &["one rule", "another rule"]);
    for title in ["first single", "second single"] {
        let body = serde_json::json!({"title": title, "scope": "OPS"}).to_string();
        assert_eq!(server.call("POST", "/v1/entries", None, &body).0, 201);
    }
    let metrics = server.send("GET", "/metrics", None, &[], "");
    assert_eq!(metrics.status, 200);
    assert!(
        metrics
            .headers
            .get("content-type")
            .is_some_and(|c| c.starts_with("text/plain; version=0.0.4")),
        "{:?}",
        metrics.headers
    );
    let value = |name: &str| -> f64 {
        metrics
            .body
            .lines()
            .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in:\n{}", metrics.body))
    };
    assert_eq!(value("registry_group_commit_registrations_total"), 2.0);
    assert!(value("registry_group_commits_total") >= 1.0);
    assert_eq!(value(r#"registry_entries_created_total{scope="OPS"}"#), 2.0);
    assert_eq!(value(r#"registry_entries_created_total{scope="SEC"}"#), 2.0);
    assert_eq!(value(r#"registry_shard_up{shard="0"}"#), 1.0);
    assert!(value("registry_process_resident_memory_bytes") > 1e6);
    assert!(
        value(r#"registry_http_requests_total{route="/v1/entries",method="POST",status="201"}"#)
            == 2.0
    );
    assert!(metrics.body.contains("registry_cache_hits_total"));
    assert!(metrics.body.contains("registry_stage_call_seconds{"));
}

#[test]
fn a_revoked_token_stops_working_without_a_restart() {
    let s = Scratch::new();
    let token = s.json(&["token", "add", "ci", "--role", "write"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let server = Server::start(&s);
    assert_eq!(server.call("GET", "/v1/entries", Some(&token), "").0, 200);
    assert_eq!(server.call("GET", "/metrics", None, "").0, 401);
    s.ok(&["token", "revoke", "ci"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _) = server.call("GET", "/v1/entries", Some(&token), "");
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked token still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    // With every token revoked, no one is let in (never everyone).
    assert_eq!(server.call("GET", "/v1/entries", None, "").0, 401);
}

/// Registers from `clients` threads until told to stop; the ids the server acknowledged.
fn register_until_stopped(
    addr: &str,
    clients: usize,
    stop: &std::sync::atomic::AtomicBool,
) -> Vec<String> {
    std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|c| {
                scope.spawn(move || {
                    let mut acked = Vec::new();
                    let mut n = 0;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) && n < 5000 {
                        n += 1;
                        let body = serde_json::json!({
                            "title": format!("client {c} entry {n}"),
                            "scope": "SEC",
                        })
                        .to_string();
                        let Ok(mut stream) = TcpStream::connect(addr) else {
                            break;
                        };
                        let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
                        let request = format!(
                            "POST /v1/entries HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
                             Content-Length: {}\r\n\r\n{body}",
                            body.len()
                        );
                        if stream.write_all(request.as_bytes()).is_err() {
                            break;
                        }
                        let mut raw = Vec::new();
                        let _ = stream.read_to_end(&mut raw);
                        let answer = parse_answer(&raw);
                        if answer.status == 201 {
                            acked.push(answer.json()["id"].as_str().expect("id").to_owned());
                        }
                    }
                    acked
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().expect("client thread"))
            .collect()
    })
}

/// Every id of the registry, as the command line exports them.
fn stored_ids(s: &Scratch) -> std::collections::BTreeSet<String> {
    s.ok(&["export"])
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).expect("record");
            v["id"].as_str().expect("id").to_owned()
        })
        .collect()
}

/// Registers from 8 clients, stops the server with `stop` after 800 ms, then checks that
/// every acknowledged registration is stored and the registry passes `check`.
fn stopped_under_load_loses_nothing(stop_server: impl FnOnce(Server)) {
    let s = Scratch::with_shards(2);
    let server = Server::start(&s);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let addr = server.addr.clone();
    let acked = std::thread::scope(|scope| {
        let load = scope.spawn(|| register_until_stopped(&addr, 8, &stop));
        std::thread::sleep(Duration::from_millis(800));
        stop_server(server);
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        load.join().expect("load")
    });
    assert!(acked.len() > 10, "only {} acknowledged", acked.len());
    let stored = stored_ids(&s);
    let lost: Vec<&String> = acked.iter().filter(|id| !stored.contains(*id)).collect();
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
    s.ok(&["check"]);
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_registration() {
    stopped_under_load_loses_nothing(|server| {
        let status = server.terminate();
        assert!(status.success(), "exit status {status:?}");
    });
}

#[test]
fn sigkill_under_load_loses_no_acknowledged_registration() {
    stopped_under_load_loses_nothing(|mut server| {
        server.child.kill().expect("SIGKILL");
        let _ = server.child.wait();
    });
}

#[test]
fn writes_over_http_are_audited_with_the_token_address_and_request() {
    let s = Scratch::new();
    let token = |name: &str, role: &str| {
        s.json(&["token", "add", name, "--role", role])["token"]
            .as_str()
            .expect("token")
            .to_owned()
    };
    let ci = token("ci", "write");
    let admin = token("ops", "admin");
    let server = Server::start(&s);
    let created = server.send("POST", "/v1/entries", Some(&ci), &[], SSH);
    assert_eq!(created.status, 201, "{}", created.body);
    let request = created
        .headers
        .get("x-request-id")
        .expect("a request id")
        .clone();
    let updated = server.send(
        "PATCH",
        "/v1/entries/SEC-RUL-001",
        Some(&admin),
        &[("X-Request-Id", "change-42")],
        r#"{"status": "LIVE"}"#,
    );
    assert_eq!(updated.status, 200, "{}", updated.body);
    assert_eq!(
        updated.headers.get("x-request-id").map(String::as_str),
        Some("change-42")
    );
    let retired = server.send(
        "POST",
        "/v1/entries/SEC-RUL-001/retire",
        Some(&ci),
        &[("X-Request-Id", "retire-1")],
        "",
    );
    assert_eq!(retired.status, 200, "{}", retired.body);
    let (status, _) = server.call("GET", "/v1/audit", Some(&ci), "");
    assert_eq!(status, 403, "the audit is for admins");
    let (status, audit) = server.call("GET", "/v1/audit?id=SEC-RUL-001", Some(&admin), "");
    assert_eq!(status, 200, "{audit}");
    let records = audit["records"].as_array().expect("records");
    let got: Vec<(&str, &str, &str, &str)> = records
        .iter()
        .map(|r| {
            (
                r["action"].as_str().expect("action"),
                r["actor"].as_str().expect("actor"),
                r["origin"].as_str().expect("origin"),
                r["request"].as_str().expect("request"),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("created", "ci", "127.0.0.1", request.as_str()),
            ("updated", "ops", "127.0.0.1", "change-42"),
            ("retired", "ci", "127.0.0.1", "retire-1"),
        ]
    );
    let (_, by_ci) = server.call("GET", "/v1/audit?actor=ci&since=1h", Some(&admin), "");
    assert_eq!(by_ci["records"].as_array().map(Vec::len), Some(2));
    let (status, _) = server.call("GET", "/v1/export?audit=true", Some(&ci), "");
    assert_eq!(status, 403);
    let export = server.send("GET", "/v1/export?audit=true", Some(&admin), &[], "");
    assert!(
        export
            .body
            .contains(r#""author":{"name":"ops","origin":"127.0.0.1","request":"change-42"}"#),
        "{}",
        export.body
    );
    assert!(server.terminate().success());
    // The command line reads the same log.
    let local = s.json(&["audit"]);
    assert_eq!(local.as_array().map(Vec::len), Some(3));
}

/// The OpenAPI document's schema of the answer to `method` on `template` with `status`, as a
/// validator (its `$ref`s resolved against the document's components).
fn answer_schema(doc: &Value, method: &str, template: &str, status: u16) -> jsonschema::Validator {
    let response = &doc["paths"][template][method]["responses"][status.to_string()];
    let content = response["content"]
        .as_object()
        .unwrap_or_else(|| panic!("no content for {method} {template} {status}: {response}"));
    let (_, media) = content.iter().next().expect("one media type");
    let mut schema = media["schema"].clone();
    schema["components"] = doc["components"].clone();
    jsonschema::draft202012::options()
        .build(&schema)
        .unwrap_or_else(|e| panic!("the schema of {method} {template} {status} compiles: {e}"))
}

/// Checks an answer against the document, naming every violation.
fn assert_documented(doc: &Value, method: &str, template: &str, answer: &Answer) {
    let validator = answer_schema(doc, method, template, answer.status);
    let body: Value =
        serde_json::from_str(&answer.body).unwrap_or_else(|_| Value::String(answer.body.clone()));
    let errors: Vec<String> = validator
        .iter_errors(&body)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    assert!(
        errors.is_empty(),
        "{method} {template} {}: not as documented: {errors:#?}\n{}",
        answer.status,
        answer.body
    );
}

#[test]
fn real_answers_are_as_the_openapi_document_says() {
    let s = Scratch::new();
    let admin = s.json(&["token", "add", "ops", "--role", "admin"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let server = Server::start(&s);
    let doc = server.send("GET", "/v1/openapi.json", None, &[], "").json();
    assert_eq!(doc["openapi"], "3.1.0");
    let t = Some(admin.as_str());
    let check = |method: &str, path: &str, template: &str, headers: &[(&str, &str)], body: &str| {
        let answer = server.send(&method.to_ascii_uppercase(), path, t, headers, body);
        assert_documented(&doc, method, template, &answer);
        answer
    };
    let created = check("post", "/v1/entries", "/v1/entries", &[], SSH);
    assert_eq!(created.status, 201);
    assert_eq!(
        check("post", "/v1/entries", "/v1/entries", &[], SSH).status,
        200
    );
    let other = r#"{"title": "Rotate the keys", "scope": "SEC", "context": {"owner": "ops"}}"#;
    check("post", "/v1/entries", "/v1/entries", &[], other);
    assert_eq!(
        check(
            "post",
            "/v1/entries",
            "/v1/entries",
            &[],
            r#"{"title": ""}"#
        )
        .status,
        422
    );
    check("get", "/v1/entries?limit=1", "/v1/entries", &[], "");
    let one = "/v1/entries/{id}";
    check("get", "/v1/entries/SEC-RUL-001", one, &[], "");
    assert_eq!(
        check("get", "/v1/entries/SEC-RUL-404", one, &[], "").status,
        404
    );
    let patch = r#"{"status": "LIVE", "unset_context": []}"#;
    let updated = check(
        "patch",
        "/v1/entries/SEC-RUL-001",
        one,
        &[("If-Match", "\"1\"")],
        patch,
    );
    assert_eq!(updated.status, 200);
    assert_eq!(
        check(
            "patch",
            "/v1/entries/SEC-RUL-001",
            one,
            &[("If-Match", "\"1\"")],
            patch
        )
        .status,
        412
    );
    check(
        "get",
        "/v1/entries/SEC-RUL-001/history",
        "/v1/entries/{id}/history",
        &[],
        "",
    );
    check(
        "get",
        "/v1/entries/SEC-RUL-001/diff",
        "/v1/entries/{id}/diff",
        &[],
        "",
    );
    check(
        "post",
        "/v1/entries/SEC-RUL-002/retire",
        "/v1/entries/{id}/retire",
        &[],
        "",
    );
    check(
        "post",
        "/v1/entries/SEC-RUL-002/revive",
        "/v1/entries/{id}/revive",
        &[],
        "",
    );
    check(
        "post",
        "/v1/entries/SEC-RUL-002/merge",
        "/v1/entries/{id}/merge",
        &[],
        r#"{"into": "SEC-RUL-001"}"#,
    );
    check(
        "post",
        "/v1/entries/SEC-RUL-002/purge",
        "/v1/entries/{id}/purge",
        &[],
        r#"{"revision": 1, "field": "context.owner", "reason": "not to be shown"}"#,
    );
    check(
        "post",
        "/v1/predict",
        "/v1/predict",
        &[],
        r#"{"title": "Block FTP"}"#,
    );
    check(
        "post",
        "/v1/lint",
        "/v1/lint",
        &[],
        "# [NOPE][RULES][LIVE][SEC-RUL-1][v1][DEV]\n",
    );
    check("get", "/v1/stats", "/v1/stats", &[], "");
    check("get", "/v1/audit", "/v1/audit", &[], "");
    let batch = server.send("POST", "/v1/batch", t, &[], &format!("{SSH}\nnot json\n"));
    for line in batch.body.lines() {
        let one = Answer {
            status: batch.status,
            headers: BTreeMap::new(),
            body: line.to_owned(),
        };
        assert_documented(&doc, "post", "/v1/batch", &one);
    }
    assert_eq!(
        check("get", "/v1/entries", "/v1/entries", &[], "").status,
        200
    );
    // Search (once the index has taken the writes in), the live figures and sessions.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let found = check("get", "/v1/search?q=rotate+keys", "/v1/search", &[], "");
        if found.json()["hits"]
            .as_array()
            .is_some_and(|h| !h.is_empty())
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the index never took the writes in"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    check("get", "/v1/search?q=x&limit=1000", "/v1/search", &[], "");
    check("get", "/v1/live", "/v1/live", &[], "");
    check("get", "/v1/session", "/v1/session", &[], "");
    let signed = server.send(
        "POST",
        "/v1/session",
        None,
        &[],
        &format!(r#"{{"token": "{admin}"}}"#),
    );
    assert_eq!(signed.status, 200);
    assert_documented(&doc, "post", "/v1/session", &signed);
    let wrong = server.send("POST", "/v1/session", None, &[], r#"{"token": "reg_x"}"#);
    assert_documented(&doc, "post", "/v1/session", &wrong);
    // Unauthorized answers are documented problems too.
    let refused = server.send("GET", "/v1/stats", None, &[], "");
    assert_eq!(refused.status, 401);
    assert_documented(&doc, "get", "/v1/stats", &refused);
    // And the check can fail: an answer with a field the document lacks is refused.
    let mut entry = server
        .send("GET", "/v1/entries/SEC-RUL-001", t, &[], "")
        .json();
    entry["surprise"] = Value::from(1);
    assert!(!answer_schema(&doc, "get", one, 200).is_valid(&entry));
}

#[test]
fn serves_https_with_the_configured_certificate() {
    let s = Scratch::new();
    let cert =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
            .expect("cert");
    s.write("cert.pem", &cert.cert.pem());
    s.write("key.pem", &cert.signing_key.serialize_pem());
    s.write(
        "registry.toml",
        "[serve]\ntls_cert = \"cert.pem\"\ntls_key = \"key.pem\"\n",
    );
    let mut child = s
        .command(&["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("starts");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout"))
        .read_line(&mut line)
        .expect("reads its first line");
    let server = Server {
        addr: line
            .trim()
            .strip_prefix("listening on https://")
            .unwrap_or_else(|| panic!("not an https listening line: {line:?}"))
            .to_owned(),
        child,
    };
    // A client that trusts the certificate gets an answer over TLS.
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.cert.der().clone()).expect("root");
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        #[allow(deprecated)]
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("localhost").expect("name");
    let connection =
        rustls::ClientConnection::new(std::sync::Arc::new(config), name).expect("client");
    let tcp = TcpStream::connect(&server.addr).expect("connects");
    tcp.set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .expect("writes over TLS");
    let mut raw = Vec::new();
    let _ = tls.read_to_end(&mut raw);
    let answer = parse_answer(&raw);
    assert_eq!((answer.status, answer.body.as_str()), (200, "ok\n"));
    // Plain HTTP on the same port gets no HTTP answer (the server may close the connection
    // before the request is even written, so neither the write nor the read must succeed).
    let mut plain = TcpStream::connect(&server.addr).expect("connects");
    plain
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let _ = plain.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let mut raw = Vec::new();
    let _ = plain.read_to_end(&mut raw);
    assert_ne!(parse_answer(&raw).status, 200);
    // The command line trusts the server's certificate authority when SSL_CERT_FILE names it,
    // and refuses the connection otherwise.
    let url = format!("https://{}", server.addr);
    let remote = |ca: Option<&str>| {
        let mut command = s.command(&["stats", "--format", "json"]);
        command.env("REGISTRY_SERVER", &url);
        if let Some(ca) = ca {
            command.env("SSL_CERT_FILE", s.path().join(ca));
        }
        command.output().expect("runs")
    };
    let trusted = remote(Some("cert.pem"));
    assert!(
        trusted.status.success(),
        "{}",
        String::from_utf8_lossy(&trusted.stderr)
    );
    let stats: Value = serde_json::from_slice(&trusted.stdout).expect("stats");
    assert_eq!(stats["entries"], 0);
    let untrusted = remote(None);
    assert_eq!(untrusted.status.code(), Some(2));

    // A key that is not the certificate's is refused before anything is served.
    let other = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("cert");
    s.write("key.pem", &other.signing_key.serialize_pem());
    drop(server);
    let (code, message) = s.fail(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("serve.tls_cert"), "{message}");
    s.write("registry.toml", "[serve]\ntls_cert = \"cert.pem\"\n");
    let (code, message) = s.fail(&["serve", "--listen", "127.0.0.1:0"]);
    assert_eq!(code, 2, "{message}");
    assert!(message.contains("go together"), "{message}");
}

/// `text` with every RFC 3339 time replaced by `<time>`, each history line's `by NAME from
/// ORIGIN` and each stats line about bytes left out, and a server's search index: what differs
/// between two registries given the same commands at other times, by other authors.
fn normalized(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        if line.starts_with("bytes on disk") || line.starts_with("bytes/entry") {
            continue;
        }
        let line = line.split("  by ").next().unwrap_or(line);
        let bytes = line.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let is_time = bytes.len() >= i + 20
                && bytes[i..i + 4].iter().all(u8::is_ascii_digit)
                && bytes[i + 4] == b'-'
                && bytes[i + 10] == b'T';
            if is_time {
                let end = line[i..].find('Z').map_or(bytes.len(), |z| i + z + 1);
                out.push_str("<time>");
                i = end;
            } else {
                let c = line[i..].chars().next().unwrap_or(' ');
                out.push(c);
                i += c.len_utf8();
            }
        }
        out.push('\n');
    }
    // JSON: the keys that say when, who and how many bytes.
    for key in [
        "\"author\":",
        "\"actor\":",
        "\"origin\":",
        "\"request\":",
        "\"bytes_on_disk\":",
        "\"bytes_per_entry\":",
        // A server's stats also describe its search index.
        "\"search\":",
    ] {
        while let Some(at) = out.find(key) {
            let end = out[at..]
                .find([',', '\n'])
                .map_or(out.len(), |e| at + e + 1);
            let end =
                if out[at..].starts_with("\"author\":") || out[at..].starts_with("\"search\":") {
                    out[at..].find('}').map_or(end, |e| at + e + 2)
                } else {
                    end
                };
            out.replace_range(at..end.min(out.len()), "");
        }
    }
    out.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| format!("{l}\n"))
        .collect()
}

#[test]
fn the_command_line_answers_the_same_locally_and_through_a_server() {
    let local = Scratch::new();
    let shared = Scratch::new();
    let server = Server::start(&shared);
    let url = format!("http://{}", server.addr);
    let run = |args: &[&str], remote: bool| {
        let s = if remote { &shared } else { &local };
        let mut command = s.command(args);
        if remote {
            command.env("REGISTRY_SERVER", &url);
        }
        let out = command.output().expect("runs");
        (
            out.status.code(),
            normalized(&String::from_utf8_lossy(&out.stdout)),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let script: &[&[&str]] = &[
        &[
            "add",
            "--title",
            "Block SSH from the internet",
            "--scope",
            "SEC",
        ],
        &[
            "add",
            "--title",
            "Block SSH from the internet",
            "--scope",
            "SEC",
        ],
        &[
            "add",
            "--title",
            "Rotate the keys",
            "--scope",
            "OPS",
            "--context",
            "owner=ops",
        ],
        &["add", "--title", "Watch the disks", "--scope", "OPS"],
        &["add", "--title", "   "],
        &["get", "SEC-RUL-001"],
        &["get", "SEC-RUL-404"],
        &["list"],
        &["list", "--scope", "OPS"],
        &["list", "--limit", "1"],
        &[
            "update",
            "SEC-RUL-001",
            "--status",
            "LIVE",
            "--if-revision",
            "1",
        ],
        &[
            "update",
            "SEC-RUL-001",
            "--status",
            "DEV",
            "--if-revision",
            "1",
        ],
        &["update", "SEC-RUL-001", "--unset-context", "nope"],
        &["history", "SEC-RUL-001"],
        &["diff", "SEC-RUL-001"],
        &["diff", "SEC-RUL-001", "--to", "9"],
        &["retire", "OPS-RUL-001"],
        &["revive", "OPS-RUL-001"],
        &["merge", "OPS-RUL-002", "--into", "OPS-RUL-001"],
        &["retire", "OPS-RUL-002"],
        &["list", "--all"],
        &["stats"],
        &["export"],
        &["export", "--scope", "OPS", "--format", "yaml"],
        &["audit", "--id", "SEC-RUL-001"],
        &["import", "more-requests.jsonl", "--atomic"],
        &["import", "more-requests.jsonl"],
        &["import", "missing.jsonl"],
        &["list", "--all"],
    ];
    let requests = "{\"title\": \"Imported rule\", \"scope\": \"SEC\"}\nnot json\n";
    local.write("more-requests.jsonl", requests);
    shared.write("more-requests.jsonl", requests);
    for args in script {
        for json in [false, true] {
            let mut args = args.to_vec();
            if json && !matches!(args[0], "export") {
                args.extend(["--format", "json"]);
            }
            let (local_code, local_out, local_err) = run(&args, false);
            let (remote_code, remote_out, remote_err) = run(&args, true);
            assert_eq!(
                local_code, remote_code,
                "registry {args:?}: exit codes differ\nlocal: {local_err}\nremote: {remote_err}"
            );
            assert_eq!(
                local_out, remote_out,
                "registry {args:?}: outputs differ\nlocal stderr: {local_err}\nremote stderr: {remote_err}"
            );
            if local_code != Some(0) {
                assert_eq!(
                    local_err.lines().last(),
                    remote_err.lines().last(),
                    "registry {args:?}: errors differ"
                );
            }
        }
    }
    // A batch prints its own summary through a server, with the same exit code, and leaves
    // the same entries.
    let lines = "{\"title\": \"Scan the images\", \"scope\": \"SEC\"}\nnot json\n\
                 {\"title\": \"Block SSH from the internet\", \"scope\": \"SEC\"}\n";
    local.write("more.jsonl", lines);
    shared.write("more.jsonl", lines);
    let (local_code, _, _) = run(&["batch", "more.jsonl"], false);
    let (remote_code, remote_out, _) = run(&["batch", "more.jsonl"], true);
    assert_eq!((local_code, remote_code), (Some(1), Some(1)));
    assert_eq!(
        remote_out,
        "processed 3: created 1, already registered 1, failed 1\n"
    );
    assert_eq!(
        run(&["list", "--all"], false).1,
        run(&["list", "--all"], true).1
    );
    // Commands that would write a local registry are refused rather than run locally.
    let (code, _, err) = run(&["lint", "--registered", "."], true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("works on a local registry only"), "{err}");
    let (code, _, err) = run(&["stamp", "x.rego"], true);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("works on a local registry only"), "{err}");
}

#[test]
fn a_large_batch_is_answered_in_line_order_and_numbered_in_input_order() {
    let s = Scratch::with_shards(2);
    let server = Server::start(&s);
    let titles: Vec<String> = (0..2500).map(|i| format!("generated rule {i}")).collect();
    let refs: Vec<&str> = titles.iter().map(String::as_str).collect();
    let ids = batch(&server, "SEC", &refs);
    let expected: Vec<String> = (1..=2500).map(|n| format!("SEC-RUL-{n:03}")).collect();
    assert_eq!(ids, expected);
}

#[test]
fn a_batch_over_its_size_limit_answers_the_lines_before_and_says_why() {
    let s = Scratch::new();
    let server = Server::start_with(&s, &[("REGISTRY_SERVE__MAX_BATCH_BYTES", "5000")]);
    // 200 lines of about 50 bytes: the limit falls within them.
    let body: String = (0..200)
        .map(|i| {
            format!(
                "{}\n",
                serde_json::json!({"title": format!("rule {i:04} of many"), "scope": "SEC"})
            )
        })
        .collect();
    let answer = server.send("POST", "/v1/batch", None, &[], &body);
    assert_eq!(answer.status, 200);
    let lines: Vec<Value> = answer
        .body
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let last = lines.last().expect("lines");
    assert_eq!(last["error"]["code"], "too-large", "{}", answer.body);
    let answered = lines.len() - 1;
    assert!(answered < 200, "{answered} lines answered");
    assert!(
        lines[..answered].iter().all(|l| l["status"] == "created"),
        "{}",
        answer.body
    );
    // What was answered is stored; nothing after it.
    let (_, page) = server.call("GET", "/v1/entries?limit=1000", None, "");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(answered));
    // An import over the limit is refused whole.
    let import = server.send("POST", "/v1/import", None, &[], &body);
    assert_eq!(import.status, 413, "{}", import.body);
    let (_, page) = server.call("GET", "/v1/entries?limit=1000", None, "");
    assert_eq!(page["entries"].as_array().map(Vec::len), Some(answered));
}
