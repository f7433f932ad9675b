//! `registry serve`, over loopback: health, register and get with the command line's
//! idempotency, problem+json errors, and bearer tokens (401, 403, scopes). Each test starts its
//! own server on a free port and ends it by its PID.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::Scratch;

/// A server this test started, ended when dropped.
struct Server {
    child: Child,
    addr: String,
}

impl Server {
    fn start(s: &Scratch) -> Server {
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
        let addr = line
            .trim()
            .strip_prefix("listening on http://")
            .unwrap_or_else(|| panic!("not a listening line: {line:?}"))
            .to_owned();
        Server { child, addr }
    }

    /// One request; the status and the body as JSON (`Null` when empty or not JSON).
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: &str) -> (u16, Value) {
        let mut stream = TcpStream::connect(&self.addr).expect("connects");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let auth = token.map_or(String::new(), |t| format!("Authorization: Bearer {t}\r\n"));
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n{auth}\
             Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        )
        .expect("writes");
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("reads");
        let status = response
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response.split("\r\n\r\n").nth(1).unwrap_or_default();
        (status, serde_json::from_str(body).unwrap_or(Value::Null))
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
