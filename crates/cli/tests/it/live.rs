//! What `registry serve` adds for people watching: the change feed (`GET /v1/events`), full-text
//! search (`GET /v1/search`, `registry search`, `registry reindex`), browser sessions and the
//! live figures. Each test starts its own server on loopback and ends it by its PID.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::Scratch;
use crate::serve::Server;

/// One event of a stream: its name, id and data.
#[derive(Debug, Clone)]
struct Event {
    name: String,
    id: String,
    data: Value,
}

/// An open `GET /v1/events` stream.
struct Events {
    reader: BufReader<TcpStream>,
}

impl Events {
    fn open(server: &Server, headers: &[(&str, &str)]) -> Events {
        let mut stream = TcpStream::connect(&server.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let extra: String = headers
            .iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect();
        write!(
            stream,
            "GET /v1/events HTTP/1.1\r\nHost: {}\r\n{extra}\r\n",
            server.addr
        )
        .expect("writes");
        let mut reader = BufReader::new(stream);
        let mut status = String::new();
        reader.read_line(&mut status).expect("a status line");
        assert!(status.contains(" 200 "), "{status}");
        // The head, up to its empty line.
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("a header");
            if line.trim().is_empty() {
                break;
            }
        }
        Events { reader }
    }

    /// The next event (comments and chunk sizes passed over); fails after 20 s without one.
    fn next(&mut self) -> Event {
        let mut event = Event {
            name: String::new(),
            id: String::new(),
            data: Value::Null,
        };
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("reads an event");
            assert!(n > 0, "the stream ended");
            let line = line.trim_end_matches(['\r', '\n']);
            if let Some(v) = line.strip_prefix("event:") {
                event.name = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("id:") {
                event.id = v.trim().to_owned();
            } else if let Some(v) = line.strip_prefix("data:") {
                event.data = serde_json::from_str(v.trim()).expect("JSON data");
            } else if line.is_empty() && !event.name.is_empty() {
                return event;
            }
        }
    }
}

const SSH: &str = r#"{"title": "Block SSH brute force from the internet", "scope": "SEC"}"#;
const DISK: &str = r#"{"title": "Disk full alert on database hosts", "scope": "OPS"}"#;

#[test]
fn every_change_streams_as_an_event_and_a_stream_resumes_after_the_last_it_saw() {
    let s = Scratch::new();
    let server = Server::start(&s);
    let mut events = Events::open(&server, &[]);
    assert_eq!(server.call("POST", "/v1/entries", None, SSH).0, 201);
    assert_eq!(server.call("POST", "/v1/entries", None, SSH).0, 200);
    assert_eq!(server.call("POST", "/v1/entries", None, DISK).0, 201);
    let (status, _) = server.call(
        "PATCH",
        "/v1/entries/SEC-RUL-001",
        None,
        r#"{"status": "LIVE"}"#,
    );
    assert_eq!(status, 200);
    assert_eq!(
        server
            .call("POST", "/v1/entries/OPS-RUL-001/retire", None, "")
            .0,
        200
    );
    let got: Vec<Event> = (0..4).map(|_| events.next()).collect();
    let seen: Vec<(String, String, String, u64, String)> = got
        .iter()
        .map(|e| {
            (
                e.name.clone(),
                e.data["action"].as_str().unwrap_or("").to_owned(),
                e.data["id"].as_str().unwrap_or("").to_owned(),
                e.data["revision"].as_u64().unwrap_or(0),
                e.data["actor"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    let change = |action: &str, id: &str, revision: u64| {
        (
            "change".to_owned(),
            action.to_owned(),
            id.to_owned(),
            revision,
            "anonymous".to_owned(),
        )
    };
    assert_eq!(
        seen,
        [
            change("created", "SEC-RUL-001", 1),
            change("created", "OPS-RUL-001", 1),
            change("updated", "SEC-RUL-001", 2),
            change("retired", "OPS-RUL-001", 2),
        ],
        "the second registration of the same request changed nothing"
    );
    // Ids are EPOCH-SEQ, in order.
    let seqs: Vec<u64> = got
        .iter()
        .map(|e| e.data["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(seqs, [1, 2, 3, 4]);
    assert!(got[1].id.ends_with("-2"), "{}", got[1].id);

    // Resuming after the second event gives the third and fourth at once.
    let mut resumed = Events::open(&server, &[("Last-Event-ID", &got[1].id)]);
    let again: Vec<u64> = (0..2)
        .map(|_| resumed.next().data["seq"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(again, [3, 4]);
    // An id of another server run cannot be resumed: the stream says so first.
    let mut foreign = Events::open(&server, &[("Last-Event-ID", "0-1")]);
    let first = foreign.next();
    assert_eq!(first.name, "reset", "{first:?}");
    assert!(first.id.ends_with("-4"), "{first:?}");
    // And goes on from there.
    assert_eq!(
        server
            .call("POST", "/v1/entries/OPS-RUL-001/revive", None, "")
            .0,
        200
    );
    let next = foreign.next();
    assert_eq!(
        (next.data["action"].as_str(), next.data["seq"].as_u64()),
        (Some("revived"), Some(5))
    );
}

#[test]
fn a_scoped_token_streams_only_its_scopes_changes() {
    let s = Scratch::new();
    let admin = s.json(&["token", "add", "admin", "--role", "admin"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let ops = s.json(&["token", "add", "ops", "--role", "read", "--scope", "OPS"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let server = Server::start(&s);
    let bearer = format!("Bearer {ops}");
    let mut events = Events::open(&server, &[("Authorization", &bearer)]);
    assert_eq!(server.call("POST", "/v1/entries", Some(&admin), SSH).0, 201);
    assert_eq!(
        server.call("POST", "/v1/entries", Some(&admin), DISK).0,
        201
    );
    let event = events.next();
    assert_eq!(event.data["id"], "OPS-RUL-001", "{event:?}");
    assert_eq!(event.data["actor"], "admin");
    // Without a token nothing streams.
    let refused = server.send("GET", "/v1/events", None, &[], "");
    assert_eq!(refused.status, 401);
    // Searches see the token's scopes only, in the hits and in the total.
    search_until(&server, Some(&admin), "q=internet%20OR%20disk", 2);
    let found = search_until(&server, Some(&ops), "q=internet%20OR%20disk", 1);
    assert_eq!(found["total"], 1, "{found}");
    assert_eq!(found["hits"][0]["entry"]["id"], "OPS-RUL-001");
    let (status, _) = server.call("GET", "/v1/search?q=disk&scope=SEC", Some(&ops), "");
    assert_eq!(status, 403);
}

/// Searches until `q` finds `want` hits (the index takes writes in behind them), for at most
/// 20 s; the last answer.
fn search_until(server: &Server, token: Option<&str>, q: &str, want: usize) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, found) = server.call("GET", &format!("/v1/search?{q}"), token, "");
        assert_eq!(status, 200, "{found}");
        let hits = found["hits"].as_array().map_or(0, Vec::len);
        if hits == want {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "search {q} still finds {hits} hits, not {want}: {found}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Whether the search index's files hold `word`, deleted documents included, read from a
/// second, read-only opening of the index while the server writes it.
fn index_holds(s: &Scratch, word: &str) -> bool {
    let index = registry_search::SearchIndex::open_read_only(&s.data_dir().join("search"))
        .expect("the index opens read-only");
    index.holds_word(word).expect("the term dictionaries read")
}

#[test]
fn search_finds_what_was_written_ranked_and_filtered_and_forgets_what_was_purged() {
    let s = Scratch::new();
    let server = Server::start(&s);
    for body in [
        SSH,
        DISK,
        r#"{"title": "Rotate database credentials", "scope": "SEC", "context": {"note": "brute force resistant"}}"#,
        r#"{"title": "Page on call for zanzibarite leaks", "scope": "SEC"}"#,
        r#"{"title": "Page on call for quokkaline leaks", "scope": "SEC"}"#,
    ] {
        assert_eq!(server.call("POST", "/v1/entries", None, body).0, 201);
    }
    // Both words, best match first: the title beats the context.
    let found = search_until(&server, None, "q=brute+force", 2);
    assert_eq!(found["hits"][0]["entry"]["id"], "SEC-RUL-001", "{found}");
    assert_eq!(found["hits"][1]["entry"]["id"], "SEC-RUL-002", "{found}");
    assert_eq!(found["total"], 2);
    // Each hit is the entry as storage holds it.
    let (_, stored) = server.call("GET", "/v1/entries/SEC-RUL-001", None, "");
    assert_eq!(found["hits"][0]["entry"]["hash"], stored["hash"]);
    // Filters combine with the words.
    search_until(&server, None, "q=database&scope=OPS", 1);
    search_until(&server, None, "q=database&scope=SEC", 1);
    search_until(&server, None, "q=database", 2);
    // An update is found by its new words, not its old ones.
    let (status, _) = server.call(
        "PATCH",
        "/v1/entries/OPS-RUL-001",
        None,
        r#"{"title": "Volume nearly full on storage nodes"}"#,
    );
    assert_eq!(status, 200);
    search_until(&server, None, "q=volume+nearly", 1);
    search_until(&server, None, "q=database&scope=OPS", 0);
    // Retired entries are left out unless asked for.
    assert_eq!(
        server
            .call("POST", "/v1/entries/OPS-RUL-001/retire", None, "")
            .0,
        200
    );
    search_until(&server, None, "q=volume", 0);
    search_until(&server, None, "q=volume&retired=true", 1);

    // A purged title is no longer found, nor left in the index's files (where a word stays
    // after its document is deleted, until its segment is merged away).
    search_until(&server, None, "q=zanzibarite", 1);
    assert!(index_holds(&s, "zanzibarite"));
    let (status, purged) = server.call(
        "POST",
        "/v1/entries/SEC-RUL-003/purge",
        None,
        r#"{"revision": 1, "field": "title", "reason": "named a customer"}"#,
    );
    assert_eq!(status, 200, "{purged}");
    search_until(&server, None, "q=zanzibarite", 0);
    let deadline = Instant::now() + Duration::from_secs(20);
    while index_holds(&s, "zanzibarite") {
        assert!(
            Instant::now() < deadline,
            "the purged word is still in the index's files"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        index_holds(&s, "quokkaline"),
        "the other entry's word stays"
    );
    search_until(&server, None, "q=quokkaline", 1);

    // The lag is reported, and bad queries are refused with one line.
    let (status, live) = server.call("GET", "/v1/live", None, "");
    assert_eq!(status, 200);
    assert_eq!(live["search"]["lag_changes"], 0, "{live}");
    assert!(live["search"]["docs"].as_u64() >= Some(5), "{live}");
    let (status, stats) = server.call("GET", "/v1/stats", None, "");
    assert_eq!(status, 200);
    assert!(stats["search"]["docs"].as_u64() >= Some(5), "{stats}");
    let (status, bad) = server.call("GET", "/v1/search?q=x&limit=0", None, "");
    assert_eq!(
        (status, bad["code"].as_str()),
        (400, Some("invalid")),
        "{bad}"
    );
    let (status, odd) = server.call("GET", "/v1/search?q=%22((title%3A", None, "");
    assert_eq!(
        status, 200,
        "a query of stray syntax is read leniently: {odd}"
    );
}

#[test]
fn the_index_catches_up_with_writes_made_while_no_server_ran() {
    let s = Scratch::new();
    s.add(
        "Quarantine hosts beaconing to known bad domains",
        &["--scope", "SEC"],
    );
    {
        let server = Server::start(&s);
        search_until(&server, None, "q=beaconing", 1);
    }
    // Written by the command line, with no server to see it.
    s.add("Alert on beaconing from build agents", &["--scope", "OPS"]);
    s.ok(&["retire", "SEC-RUL-001"]);
    let server = Server::start(&s);
    let found = search_until(&server, None, "q=beaconing", 1);
    assert_eq!(found["hits"][0]["entry"]["id"], "OPS-RUL-001", "{found}");
}

#[test]
fn registry_search_answers_locally_and_through_a_server_alike() {
    let s = Scratch::new();
    s.add(
        "Block SSH brute force from the internet",
        &["--scope", "SEC"],
    );
    s.add(
        "Rotate database credentials",
        &["--scope", "SEC", "--context", "note=brute force resistant"],
    );
    s.add("Disk full alert on database hosts", &["--scope", "OPS"]);
    s.ok(&["retire", "OPS-RUL-001"]);

    let ids = |v: &Value| -> Vec<String> {
        v["hits"]
            .as_array()
            .expect("hits")
            .iter()
            .map(|h| h["entry"]["id"].as_str().unwrap_or("").to_owned())
            .collect()
    };
    let local = s.json(&["search", "brute", "force"]);
    assert_eq!(ids(&local), ["SEC-RUL-001", "SEC-RUL-002"]);
    let text = s.ok(&["search", "brute", "force"]);
    let first = text.lines().next().expect("a line");
    assert!(
        first.contains("[SEC][RULES]") && first.contains("Block SSH brute force"),
        "{text}"
    );
    assert_eq!(ids(&s.json(&["search", "database"])), ["SEC-RUL-002"]);
    assert_eq!(ids(&s.json(&["search", "database", "--all"])).len(), 2);
    assert_eq!(
        ids(&s.json(&["search", "--scope", "SEC"])),
        ["SEC-RUL-001", "SEC-RUL-002"]
    );
    let (code, err) = s.fail(&["search", "x", "--limit", "0"]);
    assert_eq!(code, 1);
    assert!(err.contains("--limit must be 1 to 100"), "{err}");
    let rebuilt = s.json(&["reindex"]);
    assert_eq!(rebuilt["indexed"], 3, "{rebuilt}");
    // While another process writes the index (a server beside a shared storage), a search
    // reads it as that process keeps it.
    {
        let _writer = registry_search::SearchIndex::open(&s.data_dir().join("search"))
            .expect("the index opens");
        let beside = s.json(&["search", "brute", "force"]);
        assert_eq!(ids(&beside), ids(&local));
        let (code, err) = s.fail(&["reindex"]);
        assert_eq!(code, 2);
        assert!(err.contains("search index"), "{err}");
    }

    let server = Server::start(&s);
    let url = format!("http://{}", server.addr);
    let remote = s.json(&["--server", &url, "search", "brute", "force"]);
    assert_eq!(ids(&remote), ids(&local));
    assert_eq!(remote["total"], local["total"]);
}

/// The session cookie a sign-in answer sets.
fn session_cookie(answer: &crate::serve::Answer) -> String {
    let set = answer.headers.get("set-cookie").expect("a cookie is set");
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict") && set.contains("Path=/"),
        "{set}"
    );
    set.split(';').next().expect("name=value").to_owned()
}

#[test]
fn a_browser_session_acts_as_its_token_and_its_writes_need_the_csrf_token() {
    let s = Scratch::new();
    let writer = s.json(&["token", "add", "web", "--role", "write"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let server = Server::start(&s);
    let wrong = server.send("POST", "/v1/session", None, &[], r#"{"token": "reg_nope"}"#);
    assert_eq!(wrong.status, 401);
    assert!(!wrong.headers.contains_key("set-cookie"));
    assert_eq!(server.send("GET", "/v1/session", None, &[], "").status, 401);

    let signed = server.send(
        "POST",
        "/v1/session",
        None,
        &[],
        &format!(r#"{{"token": "{writer}"}}"#),
    );
    assert_eq!(signed.status, 200, "{}", signed.body);
    let cookie = session_cookie(&signed);
    let session: Value = serde_json::from_str(&signed.body).expect("JSON");
    assert_eq!(
        (session["name"].as_str(), session["role"].as_str()),
        (Some("web"), Some("write"))
    );
    let csrf = session["csrf"].as_str().expect("csrf").to_owned();
    assert_eq!(csrf.len(), 64);
    assert!(
        !signed.body.contains(&writer),
        "the token is never sent back"
    );

    fn with<'a>(cookie: &'a str, extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
        let mut headers = vec![("Cookie", cookie)];
        headers.extend_from_slice(extra);
        headers
    }
    assert_eq!(
        server
            .send("GET", "/v1/session", None, &with(&cookie, &[]), "")
            .status,
        200
    );
    assert_eq!(
        server
            .send("GET", "/v1/entries", None, &with(&cookie, &[]), "")
            .status,
        200
    );
    let refused = server.send("POST", "/v1/entries", None, &with(&cookie, &[]), SSH);
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert!(refused.body.contains("csrf"), "{}", refused.body);
    let forged = server.send(
        "POST",
        "/v1/entries",
        None,
        &with(&cookie, &[("X-CSRF-Token", &"0".repeat(64))]),
        SSH,
    );
    assert_eq!(forged.status, 403);
    let created = server.send(
        "POST",
        "/v1/entries",
        None,
        &with(&cookie, &[("X-CSRF-Token", &csrf)]),
        SSH,
    );
    assert_eq!(created.status, 201, "{}", created.body);
    let cross = server.send(
        "POST",
        "/v1/entries",
        None,
        &with(
            &cookie,
            &[("X-CSRF-Token", &csrf), ("Origin", "https://evil.example")],
        ),
        DISK,
    );
    assert_eq!(cross.status, 403, "{}", cross.body);

    // Revoking the token ends its sessions, without a restart.
    s.ok(&["token", "revoke", "web"]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while server
        .send("GET", "/v1/entries", None, &with(&cookie, &[]), "")
        .status
        != 401
    {
        assert!(Instant::now() < deadline, "the session outlived its token");
        std::thread::sleep(Duration::from_millis(200));
    }
    // Signing out clears the cookie.
    let out = server.send("DELETE", "/v1/session", None, &with(&cookie, &[]), "");
    assert_eq!(out.status, 204);
    assert!(
        out.headers
            .get("set-cookie")
            .is_some_and(|c| c.contains("Max-Age=0"))
    );
}

#[test]
fn the_live_figures_count_requests_and_changes() {
    let s = Scratch::new();
    let server = Server::start(&s);
    for _ in 0..5 {
        assert_eq!(server.call("GET", "/healthz", None, "").0, 200);
    }
    assert_eq!(server.call("POST", "/v1/entries", None, SSH).0, 201);
    let (status, live) = server.call("GET", "/v1/live", None, "");
    assert_eq!(status, 200, "{live}");
    assert!(live["requests"]["total"].as_u64() >= Some(7), "{live}");
    assert_eq!(
        live["requests"]["per_second"].as_array().map(Vec::len),
        Some(60)
    );
    assert_eq!(live["changes"], 1);
    let p50 = live["latency_ms"]["p50"].as_f64().expect("a median");
    let p99 = live["latency_ms"]["p99"].as_f64().expect("a p99");
    assert!(p50 > 0.0 && p50 <= p99, "{live}");
    assert_eq!(live["shards"][0]["healthy"], true);
    // Without tokens, a name that is not loopback is refused (DNS rebinding).
    let mut stream = TcpStream::connect(&server.addr).expect("connects");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        stream,
        "GET /v1/live HTTP/1.1\r\nHost: evil.example:8080\r\nConnection: close\r\n\r\n"
    )
    .expect("writes");
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .expect("a status line");
    assert!(status.contains(" 403 "), "{status}");
}
