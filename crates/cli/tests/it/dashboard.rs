//! The dashboard `registry serve` answers at `/`, driven in a real headless Chromium over the
//! W3C WebDriver protocol: sign in with a token, the entries listed, a search, an entry with its
//! revisions compared, the live view following a registration made meanwhile through the API,
//! and an entry whose title is markup shown as text; then signing out. A server without tokens
//! opens the dashboard without sign-in, shows an API error and pages through the list and a
//! search. Each step leaves a screenshot in `<target>/browser/NN-step.png` (the server without
//! tokens: `<target>/browser/no-token/`).
//!
//! The browser and its driver are the ones `REGISTRY_TEST_CHROMIUM` and
//! `REGISTRY_TEST_CHROMEDRIVER` name (`cargo xtask test` installs Debian's with
//! `scripts/chromium install` and sets both): these tests fail, never skip, without them. Every
//! wait is bounded ([`WAIT`]) and names what it waited for. The server, the driver and the
//! browser are ended by their process ids when a test ends, passed or failed.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::Scratch;
use crate::serve::Server;

const CHROMIUM_VAR: &str = "REGISTRY_TEST_CHROMIUM";
const CHROMEDRIVER_VAR: &str = "REGISTRY_TEST_CHROMEDRIVER";

/// How long any one thing is waited for.
const WAIT: Duration = Duration::from_secs(20);

/// The Content-Security-Policy the dashboard's answers carry.
const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
    connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

/// A title a browser would run if the page ever parsed entry text as markup.
const MARKUP_TITLE: &str = "<img src=x onerror=alert(1)><b>bold</b>";

/// The ids in the results table, in order (a script expression).
const PAGE_IDS: &str =
    "[...document.querySelectorAll('#results-body td.id a')].map((a) => a.textContent)";

/// The key WebDriver element references are given under.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// The Enter key, as WebDriver types it.
const ENTER: &str = "\u{E007}";

/// A variable this test cannot run without; fails naming it and how to set it.
fn required_env(var: &str) -> String {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => v,
        _ => panic!(
            "{var} is not set: run `cargo xtask test`, which installs Chromium and sets it, or \
             run `scripts/chromium install` and export REGISTRY_TEST_CHROMIUM=/usr/bin/chromium \
             and REGISTRY_TEST_CHROMEDRIVER=/usr/bin/chromedriver"
        ),
    }
}

/// A free TCP port on loopback (free when asked; the driver binds it right after).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Cargo's target directory: `CARGO_TARGET_DIR`, else the one the `registry` binary is in.
fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => crate::bin_dir()
            .parent()
            .expect("the profile directory is in the target directory")
            .to_owned(),
    }
}

/// `<target>/browser/<under>`, made empty of screenshots.
fn shots_dir(under: &str) -> PathBuf {
    let shots = target_dir().join("browser").join(under);
    std::fs::create_dir_all(&shots).expect("the screenshots' directory");
    for old in std::fs::read_dir(&shots)
        .expect("list screenshots")
        .flatten()
    {
        if old.path().extension().is_some_and(|e| e == "png") {
            let _ = std::fs::remove_file(old.path());
        }
    }
    shots
}

/// A browser session through its own `chromedriver`; dropping it ends the session, then the
/// driver's process group (the driver and any browser process it left).
struct Browser {
    driver: Child,
    /// `http://127.0.0.1:PORT/session/ID`.
    session: String,
    agent: ureq::Agent,
    shots: PathBuf,
    /// The browser's profile (`--user-data-dir`) and configuration directory.
    profile: tempfile::TempDir,
}

/// A WebDriver command that failed: its HTTP status and the driver's `value`.
#[derive(Debug)]
struct Refused {
    status: u16,
    value: Value,
}

impl Browser {
    fn start(chromedriver: &str, chromium: &str, shots: PathBuf) -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().expect("a profile directory");
        let mut command = Command::new(chromedriver);
        command
            .arg(format!("--port={port}"))
            // The browser's crash database goes to the user's configuration directory, which
            // is a directory of this test's.
            .env("XDG_CONFIG_HOME", profile.path().join("config"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that the browser processes it starts end with it.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let driver = command
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {chromedriver}: {e}"));
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(60)))
            .build()
            .into();
        let mut browser = Browser {
            driver,
            session: String::new(),
            agent,
            shots,
            profile,
        };
        let base = format!("http://127.0.0.1:{port}");
        browser.wait_until("chromedriver to answer /status", || {
            browser
                .request("GET", &format!("{base}/status"), None)
                .ok()
                .filter(|v| v["ready"] == true)
        });
        let capabilities = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "unhandledPromptBehavior": "ignore",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-default-apps", "--window-size=1366,768",
                    format!("--user-data-dir={}", browser.profile.path().join("data").display()),
                ],
            },
        }}});
        let created = browser
            .request("POST", &format!("{base}/session"), Some(&capabilities))
            .unwrap_or_else(|e| panic!("chromedriver did not start {chromium}: {e:?}"));
        let id = created["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session id in {created}"));
        browser.session = format!("{base}/session/{id}");
        browser
    }

    /// One WebDriver request; its `value`, or the error the driver answered.
    fn request(&self, method: &str, url: &str, body: Option<&Value>) -> Result<Value, Refused> {
        let answer = match method {
            "GET" => self.agent.get(url).call(),
            "DELETE" => self.agent.delete(url).call(),
            _ => self
                .agent
                .post(url)
                .header("Content-Type", "application/json")
                .send(body.unwrap_or(&json!({})).to_string()),
        };
        let mut answer = answer.map_err(|e| Refused {
            status: 0,
            value: json!({"error": "unreachable", "message": e.to_string()}),
        })?;
        let status = answer.status().as_u16();
        let text = answer
            .body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .unwrap_or_default();
        let value = serde_json::from_str::<Value>(&text)
            .map(|v| v["value"].clone())
            .unwrap_or(Value::String(text));
        if status == 200 {
            Ok(value)
        } else {
            Err(Refused { status, value })
        }
    }

    /// A command of this session (`path` after the session's URL) that must succeed.
    fn command(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        self.request(method, &format!("{}{path}", self.session), body)
            .unwrap_or_else(|e| panic!("WebDriver {method} {path} failed: {e:?}"))
    }

    fn go(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({"url": url})));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page; its result.
    fn js(&self, script: &str, args: &[Value]) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({"script": script, "args": args})),
        )
    }

    /// The element `css` selects (the first), by its WebDriver reference.
    fn find(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({"using": "css selector", "value": css})),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element reference for {css}: {found}"))
            .to_owned()
    }

    /// Types `text` into the element `css` selects, as a user would (it is focused first).
    fn type_into(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/value"),
            Some(&json!({"text": text})),
        );
    }

    fn click(&self, css: &str) {
        let element = self.find(css);
        self.command(
            "POST",
            &format!("/element/{element}/click"),
            Some(&json!({})),
        );
    }

    /// Presses and releases one key wherever the focus is.
    fn press(&self, key: &str) {
        self.command(
            "POST",
            "/actions",
            Some(
                &json!({"actions": [{"type": "key", "id": "keyboard", "actions": [
                    {"type": "keyDown", "value": key}, {"type": "keyUp", "value": key},
                ]}]}),
            ),
        );
        self.command("DELETE", "/actions", None);
    }

    /// Polls `check` until it gives a value, for at most [`WAIT`]; fails naming `what`, with
    /// a screenshot of the page as it was and the page's message, if it shows one.
    fn wait_until<T>(&self, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(value) = check() {
                return value;
            }
            if Instant::now() >= deadline {
                let mut said = String::new();
                if !self.session.is_empty() {
                    let name = format!(
                        "failed-{}",
                        what.replace(|c: char| !c.is_ascii_alphanumeric(), "-")
                    );
                    self.screenshot(&name);
                    said = self
                        .request(
                            "POST",
                            &format!("{}/execute/sync", self.session),
                            Some(&json!({
                                "script": "const m = document.getElementById('message'); \
                                           return m && !m.hidden ? m.textContent : '';",
                                "args": [],
                            })),
                        )
                        .map(|v| v.as_str().unwrap_or_default().trim().to_owned())
                        .unwrap_or_default();
                }
                panic!(
                    "waited {} s for {what}{}",
                    WAIT.as_secs(),
                    if said.is_empty() {
                        String::new()
                    } else {
                        format!("; the page says: {said}")
                    }
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits until `script` returns something truthy in the page; returns it.
    fn wait_for(&self, what: &str, script: &str) -> Value {
        self.wait_until(what, || {
            let value = self.js(script, &[]);
            let truthy = match &value {
                Value::Null | Value::Bool(false) => false,
                Value::String(s) => !s.is_empty(),
                Value::Number(n) => n.as_f64() != Some(0.0),
                _ => true,
            };
            truthy.then_some(value)
        })
    }

    /// Writes the viewport to `<shots>/<name>.png`.
    fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.command("GET", "/screenshot", None);
        let bytes = base64_decode(png.as_str().expect("a base64 screenshot"));
        assert!(bytes.starts_with(b"\x89PNG"), "the screenshot is not a PNG");
        let path = self.shots.join(format!("{name}.png"));
        std::fs::write(&path, bytes).expect("write the screenshot");
        path
    }

    /// A step done: its screenshot, and the page still within the window's width.
    fn step(&self, name: &str) {
        self.screenshot(name);
        let overflow = self.js(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth;",
            &[],
        );
        assert_eq!(
            overflow.as_i64(),
            Some(0),
            "after {name}, the page scrolls sideways at 1366 pixels wide"
        );
        let problems = self.js("return window.__problems || [];", &[]);
        assert_eq!(
            problems,
            json!([]),
            "after {name}, the page reported problems"
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = self.request("DELETE", &self.session.clone(), None);
        }
        // The driver leads its own process group: every process in it is one this test
        // started.
        let group = i32::try_from(self.driver.id()).expect("a process id");
        // SAFETY: kill(2) with a negative id signals the process group `group`, which the
        // driver leads (spawned with process_group(0)); it touches no memory.
        unsafe {
            libc::kill(-group, libc::SIGKILL);
        }
        let _ = self.driver.wait();
    }
}

/// Standard base64 (the screenshots WebDriver returns).
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> u32 {
        match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => panic!("`{}` is not base64", char::from(c)),
        }
    };
    let digits: Vec<u8> = text
        .bytes()
        .filter(|c| !c.is_ascii_whitespace() && *c != b'=')
        .collect();
    let mut out = Vec::with_capacity(digits.len() * 3 / 4);
    for chunk in digits.chunks(4) {
        let mut n = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            n |= value(*c) << (18 - 6 * i);
        }
        let bytes = n.to_be_bytes();
        out.extend_from_slice(&bytes[1..chunk.len()]);
    }
    out
}

/// Registers `request` through the API with the bearer token; the entry's JSON.
fn register(server: &Server, token: &str, request: &Value) -> Value {
    let (status, entry) = server.call("POST", "/v1/entries", Some(token), &request.to_string());
    assert_eq!(status, 201, "{entry}");
    entry
}

fn update(server: &Server, token: &str, id: &str, changes: &Value) -> Value {
    let (status, entry) = server.call(
        "PATCH",
        &format!("/v1/entries/{id}"),
        Some(token),
        &changes.to_string(),
    );
    assert_eq!(status, 200, "{entry}");
    entry
}

#[test]
fn base64_decodes_what_webdriver_sends() {
    assert_eq!(base64_decode("aGVsbG8="), b"hello");
    assert_eq!(base64_decode("aGVsbG8h"), b"hello!");
    assert_eq!(base64_decode("aGk="), b"hi");
    assert_eq!(base64_decode(""), b"");
}

#[test]
fn the_dashboard_works_in_a_real_browser() {
    let chromium = required_env(CHROMIUM_VAR);
    let chromedriver = required_env(CHROMEDRIVER_VAR);
    let s = Scratch::new();
    let token = s.json(&["token", "add", "browser", "--role", "admin"])["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let server = Server::start(&s);
    let base = format!("http://{}", server.addr);

    // The page itself: no token needed, and the policy that keeps entry text from running.
    let page = server.send("GET", "/", None, &[], "");
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(
        page.headers
            .get("content-security-policy")
            .map(String::as_str),
        Some(CSP)
    );
    assert_eq!(
        page.headers
            .get("x-content-type-options")
            .map(String::as_str),
        Some("nosniff")
    );
    assert_eq!(
        page.headers.get("x-frame-options").map(String::as_str),
        Some("DENY")
    );
    assert_eq!(
        page.headers.get("referrer-policy").map(String::as_str),
        Some("no-referrer")
    );
    assert!(page.body.contains("/assets/app.js"), "{}", page.body);

    let ssh = register(
        &server,
        &token,
        &json!({"title": "Block SSH brute force from the internet", "scope": "SEC",
                "context": {"env": "prod"}}),
    );
    let ssh_id = ssh["id"].as_str().expect("id").to_owned();
    register(
        &server,
        &token,
        &json!({"title": "Rotate the SSH host keys every year", "scope": "OPS"}),
    );
    register(
        &server,
        &token,
        &json!({"title": "Alert on brute force logins to the VPN", "scope": "SEC"}),
    );
    let markup = register(
        &server,
        &token,
        &json!({"title": MARKUP_TITLE, "scope": "GOV"}),
    );
    let markup_id = markup["id"].as_str().expect("id").to_owned();
    // Revision 2 moves the entry from prod to dev (its config's environment changes with it);
    // revision 3 changes the title.
    update(
        &server,
        &token,
        &ssh_id,
        &json!({"context": {"env": "dev"}}),
    );
    let ssh = update(
        &server,
        &token,
        &ssh_id,
        &json!({"title": "Block SSH brute force attempts from the internet"}),
    );
    assert_eq!(ssh["revision"], 3);
    let registered = [ssh_id.clone(), markup_id.clone()];

    let browser = Browser::start(&chromedriver, &chromium, shots_dir(""));

    // 1. The sign-in form, then signed in with the token.
    browser.go(&format!("{base}/"));
    // Anything the page's own policy blocks, an uncaught error or an alert is recorded, and
    // checked after every step. The page is never reloaded after this (the views are routed in
    // the address's fragment), which the marker proves at the end.
    browser.js(
        "window.__problems = []; window.__marker = 'unreloaded'; \
         document.addEventListener('securitypolicyviolation', \
           (e) => window.__problems.push('policy: ' + e.violatedDirective + ' ' + e.blockedURI)); \
         window.addEventListener('error', (e) => window.__problems.push('error: ' + e.message)); \
         window.alert = (m) => window.__problems.push('alert: ' + m);",
        &[],
    );
    browser.wait_for(
        "the sign-in form",
        "const v = document.getElementById('view-signin'); \
         return !v.hidden && document.getElementById('signin-token').type === 'password';",
    );
    browser.step("01-sign-in");
    browser.type_into("#signin-token", &format!("{token}{ENTER}"));

    // 2. The entries, listed in id order.
    let listed = browser.wait_for(
        "the entries listed after signing in",
        &format!(
            "return !document.getElementById('view-search').hidden && \
               document.getElementById('results-summary').textContent.startsWith('Entries') && \
               {PAGE_IDS};"
        ),
    );
    let listed: Vec<&str> = listed
        .as_array()
        .expect("ids")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(listed.len(), 4, "{listed:?}");
    for id in &registered {
        assert!(
            listed.contains(&id.as_str()),
            "{id} is not listed: {listed:?}"
        );
    }
    let session = browser.js("return document.cookie;", &[]);
    assert_eq!(
        session,
        json!(""),
        "the session cookie is readable by the page"
    );
    browser.step("02-entries");

    // 3. A search of two words: `/` focuses the box, Enter searches, the entry with both first.
    server_finds(&server, Some(&token), "ssh brute", &ssh_id, |found| {
        found["hits"][0]["entry"]["id"] == ssh_id
    });
    browser.press("/");
    let focused = browser.js("return document.activeElement.id;", &[]);
    assert_eq!(focused, json!("q"), "`/` does not focus the search box");
    browser.type_into("#q", &format!("ssh brute{ENTER}"));
    let first = browser.wait_for(
        "the search's results",
        "return location.hash.includes('q=ssh') && \
           document.getElementById('results-summary').textContent.startsWith('Matches') && \
           document.querySelector('#results-body td.id a')?.textContent;",
    );
    assert_eq!(
        first,
        json!(ssh_id),
        "the entry with both words is not first"
    );
    browser.step("03-search");

    // 4. The entry, opened from the keyboard: Enter on its row's link.
    browser.type_into("#results-body td.id a", ENTER);
    let header = browser.wait_for(
        "the entry view",
        "return !document.getElementById('view-entry').hidden && \
           document.querySelectorAll('#entry-revisions li').length === 3 && \
           document.getElementById('entry-header').textContent;",
    );
    assert_eq!(header, ssh["header"], "the grepable header line");
    let hash = browser.js("return location.hash;", &[]);
    assert_eq!(hash, json!(format!("#/entry/{ssh_id}")));
    let trail = browser.js(
        "return [...document.querySelectorAll('#entry-revisions li')].map((li) => \
           li.querySelector('.rev-n').textContent + ' ' + li.querySelector('.action').textContent \
           + ' ' + li.querySelector('.author').textContent);",
        &[],
    );
    assert_eq!(
        trail,
        json!([
            "r3 updated browser",
            "r2 updated browser",
            "r1 created browser"
        ]),
        "the audit trail"
    );
    let title = browser.js(
        "return document.getElementById('entry-title').textContent;",
        &[],
    );
    assert_eq!(title, ssh["title"]);
    let config = browser.js(
        "return document.getElementById('entry-config').textContent;",
        &[],
    );
    assert_eq!(config, ssh["config"]);
    browser.step("04-entry");

    // 5. Revisions 1 and 2 compared with the two selectors: the environment's line changed.
    browser.click("#diff-from option[value='1']");
    browser.click("#diff-to option[value='2']");
    let diff = browser.wait_for(
        "the diff of revisions 1 and 2",
        "const t = document.querySelector('#diff .diff-title'); \
         if (!t || t.textContent !== 'Revision 1 → revision 2') return null; \
         return { \
           removed: [...document.querySelectorAll('#diff .line.del')].map((l) => l.textContent), \
           added: [...document.querySelectorAll('#diff .line.add')].map((l) => l.textContent), \
           fields: [...document.querySelectorAll('#diff .field-name')].map((l) => l.textContent) };",
    );
    let lines = |kind: &str| -> Vec<String> {
        diff[kind]
            .as_array()
            .expect("lines")
            .iter()
            .filter_map(|l| l.as_str().map(|l| l.trim_end().to_owned()))
            .collect()
    };
    assert!(
        lines("removed").contains(&"-  env: prod".to_owned()),
        "{diff}"
    );
    assert!(lines("added").contains(&"+  env: dev".to_owned()), "{diff}");
    assert_eq!(diff["fields"], json!(["context.env"]), "{diff}");
    // The selectors at the top of the window, the changed line in the middle of its box.
    browser.js(
        "document.getElementById('compare-form').scrollIntoView(); \
         const pre = document.querySelector('#diff pre'); \
         const line = [...pre.querySelectorAll('.line.add')].find((l) => l.textContent.includes('env: dev')); \
         pre.scrollTop += line.getBoundingClientRect().top - pre.getBoundingClientRect().top \
           - pre.clientHeight / 2;",
        &[],
    );
    browser.step("05-diff");

    // 6. The live view: a registration made through the API meanwhile moves the counters and
    // shows in the feed, without a reload.
    browser.click("#nav-live");
    let counted = browser.wait_for(
        "the live view's counters and its event stream",
        "const e = document.getElementById('live-entries').dataset.value; \
         const c = document.getElementById('live-changes').dataset.value; \
         const s = document.getElementById('live-stream').textContent; \
         return !document.getElementById('view-live').hidden && e && c && s === 'live' \
           && [Number(e), Number(c)];",
    );
    let entries = counted[0].as_i64().expect("entries");
    let changes = counted[1].as_i64().expect("changes");
    assert_eq!(entries, 4, "{counted}");
    let added = register(
        &server,
        &token,
        &json!({"title": "Page the on-call engineer when a shard stops answering",
                "scope": "OPS"}),
    );
    let added_id = added["id"].as_str().expect("id").to_owned();
    let index = browser.wait_for(
        &format!(
            "the entries counter at {} and {added_id} in the feed",
            entries + 1
        ),
        &format!(
            "const tile = document.getElementById('live-search').dataset; \
             return Number(document.getElementById('live-entries').dataset.value) === {} && \
               Number(document.getElementById('live-changes').dataset.value) > {changes} && \
               document.querySelector('#live-feed li[data-id=\"{added_id}\"] .action')\
                 ?.textContent === 'created' && [Number(tile.docs), Number(tile.lag)];",
            entries + 1
        ),
    );
    // The search tile never claims to be up to date with fewer documents than entries: a change
    // heard since the last reading counts as not yet indexed until the next one.
    let (docs, lag) = (
        index[0].as_i64().expect("docs"),
        index[1].as_i64().expect("lag"),
    );
    assert!(docs > entries || lag > 0, "{docs} docs, behind by {lag}");
    browser.step("06-live");

    // 7. The title that is markup is text: in the list and in its entry, and nothing ran.
    browser.go(&format!("{base}/#/entry/{markup_id}"));
    // A navigation to the same document with another fragment does not reload it.
    // The header line is written with the rest of the entry, once it is read.
    let shown = browser.wait_for(
        "the entry whose title is markup",
        &format!(
            "return location.hash === '#/entry/{markup_id}' && \
               document.getElementById('entry-header').textContent === {} && \
               document.getElementById('entry-title').textContent;",
            markup["header"]
        ),
    );
    assert_eq!(shown, json!(MARKUP_TITLE));
    let elements = browser.js(
        "return document.querySelectorAll('img, b, [onerror]').length;",
        &[],
    );
    assert_eq!(elements, json!(0), "the title became elements");
    browser.go(&format!("{base}/#/"));
    let in_list = browser.wait_for(
        "the list again, with the markup title",
        &format!(
            "const a = [...document.querySelectorAll('#results-body td.id a')] \
               .find((a) => a.textContent === '{markup_id}'); \
             return a && a.closest('tr').querySelector('td.title').textContent;"
        ),
    );
    assert_eq!(in_list, json!(MARKUP_TITLE));
    let elements = browser.js(
        "return document.querySelectorAll('img, b, [onerror]').length;",
        &[],
    );
    assert_eq!(elements, json!(0), "the title became elements in the list");
    let marker = browser.js("return window.__marker;", &[]);
    assert_eq!(marker, json!("unreloaded"), "the page was reloaded");
    match browser.request("GET", &format!("{}/alert/text", browser.session), None) {
        Err(Refused { status: 404, value }) if value["error"] == "no such alert" => {}
        other => panic!("an alert is open: {other:?}"),
    }
    browser.step("07-markup-is-text");

    // 8. Signed out: the sign-in form again, and the cookie no longer lets the page in, even
    // after a reload.
    browser.click("#sign-out");
    browser.wait_for(
        "the sign-in form after signing out",
        "return !document.getElementById('view-signin').hidden && \
           document.getElementById('nav').hidden;",
    );
    let left = browser.js(
        "const text = document.body.textContent; \
         return ['Block SSH', 'onerror', 'SEC-RUL-001'].filter((t) => text.includes(t));",
        &[],
    );
    assert_eq!(
        left,
        json!([]),
        "signed out, the page still holds what it showed"
    );
    browser.go(&format!("{base}/"));
    browser.wait_for(
        "the sign-in form after a reload",
        "return !document.getElementById('view-signin').hidden && \
           document.getElementById('loading').hidden;",
    );
    browser.step("08-signed-out");
}

/// Waits until the search index answers `q` as `wanted` says (it follows the writes shortly
/// after they are stored), so that the page's search is not raced against it.
fn server_finds(
    server: &Server,
    token: Option<&str>,
    q: &str,
    what: &str,
    wanted: impl Fn(&Value) -> bool,
) {
    let query = q.replace(' ', "+");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, found) = server.call("GET", &format!("/v1/search?q={query}"), token, "");
        if status == 200 && wanted(&found) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "waited {} s for /v1/search?q={query} to find {what}: {status} {found}",
            WAIT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn without_tokens_the_dashboard_opens_without_signing_in() {
    let chromium = required_env(CHROMIUM_VAR);
    let chromedriver = required_env(CHROMEDRIVER_VAR);
    let s = Scratch::new();
    let server = Server::start(&s);
    let (status, entry) = server.call(
        "POST",
        "/v1/entries",
        None,
        &json!({"title": "Deny inbound SMB", "scope": "SEC"}).to_string(),
    );
    assert_eq!(status, 201, "{entry}");
    let browser = Browser::start(&chromedriver, &chromium, shots_dir("no-token"));
    browser.go(&format!("http://{}/", server.addr));
    let listed = browser.wait_for(
        "the entries, with no sign-in",
        "return !document.getElementById('view-search').hidden && \
           document.getElementById('results-summary').textContent.startsWith('Entries') && \
           document.querySelector('#results-body td.id a')?.textContent;",
    );
    assert_eq!(listed, entry["id"]);
    let chrome = browser.js(
        "return [document.getElementById('view-signin').hidden, \
           document.getElementById('sign-out').hidden, \
           document.getElementById('who').textContent];",
        &[],
    );
    assert_eq!(chrome, json!([true, true, "open server (no token needed)"]));
    browser.step("01-entries");

    // An error of the API is shown with the problem's detail.
    browser.type_into("#f-scope", &format!("NOPE{ENTER}"));
    let said = browser.wait_for(
        "the message saying the scope is unknown",
        "const m = document.getElementById('message'); \
         return !m.hidden && document.getElementById('message-text').textContent;",
    );
    let said = said.as_str().expect("text");
    assert!(said.contains("unknown scope `NOPE`"), "{said}");
    browser.step("02-error");

    // Pages of 20: the list by its cursor, the search by its offset.
    for n in 1..=25 {
        let (status, added) = server.call(
            "POST",
            "/v1/entries",
            None,
            &json!({"title": format!("Deny inbound port {n}"), "scope": "SEC"}).to_string(),
        );
        assert_eq!(status, 201, "{added}");
    }
    server_finds(&server, None, "inbound", "26 hits", |found| {
        found["total"] == 26
    });
    browser.go(&format!("http://{}/#/", server.addr));
    let first = browser.wait_for(
        "the first page of the list",
        &format!(
            "return document.getElementById('results-summary').textContent \
               .startsWith('Entries in id order: 20,') && {PAGE_IDS}"
        ),
    );
    assert_eq!(first.as_array().map(Vec::len), Some(20), "{first}");
    browser.click("#next-page");
    let second = browser.wait_for(
        "the second page of the list",
        &format!(
            "return document.getElementById('results-summary').textContent \
               .startsWith('Entries in id order after SEC-RUL-020: 6.') && {PAGE_IDS}"
        ),
    );
    assert_eq!(second.as_array().map(Vec::len), Some(6), "{second}");
    assert_eq!(second[0], "SEC-RUL-021", "{second}");
    browser.step("03-list-page-2");
    browser.type_into("#q", &format!("inbound{ENTER}"));
    browser.wait_for(
        "the first page of the search",
        "return document.getElementById('results-summary').textContent \
           .startsWith('Matches 1–20 of 26');",
    );
    browser.click("#next-page");
    let second = browser.wait_for(
        "the second page of the search",
        &format!(
            "return document.getElementById('results-summary').textContent \
               .startsWith('Matches 21–26 of 26') && {PAGE_IDS}"
        ),
    );
    assert_eq!(second.as_array().map(Vec::len), Some(6), "{second}");
    browser.step("04-search-page-2");
}
