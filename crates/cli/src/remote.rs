//! `registry --server URL` (or `REGISTRY_SERVER`): the commands that read and write entries,
//! run against `registry serve` instead of a local data directory, with the same output, JSON
//! and exit codes: the server answers with the very types the local commands print (read back
//! with their `Deserialize`), and these are printed by the same functions of `output`.
//!
//! An `https://` server's certificate is checked against Mozilla's roots, or against the PEM
//! file `SSL_CERT_FILE` names (a private certificate authority).
//!
//! The token comes from `REGISTRY_TOKEN` (never an argument, which other users of the machine
//! could read in the process list), and is never printed. A problem answer becomes the error the
//! local command would give: exit 1 for what is wrong with the request (400, 404, 409, 412,
//! 413, 422), exit 2 for everything else (no valid token, a role too low, the rate exceeded,
//! the server or storage failing), with the server's one-line detail and error name.
//!
//! Remote `batch` prints its own summary (the requests processed, created, already registered
//! and failed, and each failure), not the local one, whose timings and memory describe a local
//! run. Commands that write a local registry in other ways (`import`, `stamp`, `train`,
//! `migrate`, `backup`, ...) are refused in this mode rather than run against a local directory
//! by mistake.

use std::io::{self, Read, Write};
use std::time::Duration;

use registry_core::{Added, Entry, EntryId, Fields, Lifecycle, Updated};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::{CliError, Format, output};

/// The longest a request may take before the command gives up (a batch or export streams
/// for as long as it makes progress).
const TIMEOUT: Duration = Duration::from_secs(300);

/// A server to run commands against.
pub struct Remote {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Remote {
    /// The server at `url` (`http://` or `https://`), with the token of `REGISTRY_TOKEN`.
    ///
    /// # Errors
    /// A URL that is not `http://` or `https://` (exit 2).
    pub fn new(url: &str) -> Result<Remote, CliError> {
        let base = url.trim_end_matches('/').to_owned();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(CliError::config(format!(
                "--server {}: not an http:// or https:// URL",
                redacted(&base)
            )));
        }
        let token = std::env::var("REGISTRY_TOKEN")
            .ok()
            .filter(|t| !t.trim().is_empty());
        let agent = ureq::Agent::config_builder()
            .tls_config(ureq::tls::TlsConfig::builder().root_certs(roots()?).build())
            .http_status_as_error(false)
            .timeout_connect(Some(Duration::from_secs(10)))
            .timeout_recv_response(Some(TIMEOUT))
            .build()
            .into();
        Ok(Remote { base, token, agent })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Adds the token, when there is one.
    fn authorized<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(t) => request.header("Authorization", format!("Bearer {}", t.trim())),
            None => request,
        }
    }

    /// A request's answer, or the error a failed one is.
    fn answer(
        &self,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<ureq::http::Response<ureq::Body>, CliError> {
        let mut response = result.map_err(|e| {
            CliError::config(format!(
                "cannot reach the server {}: {e}",
                redacted(&self.base)
            ))
            .with_kind("unavailable")
        })?;
        if response.status().is_success() {
            return Ok(response);
        }
        let status = response.status().as_u16();
        let body = response.body_mut().read_to_string().unwrap_or_default();
        Err(problem(status, &body))
    }

    fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, CliError> {
        let request = self.authorized(self.agent.get(self.url(path)));
        let response = self.answer(request.call())?;
        read_json(response)
    }

    fn send<T: DeserializeOwned>(
        &self,
        method: &str,
        path: &str,
        body: &Value,
        if_match: Option<u32>,
    ) -> Result<T, CliError> {
        let url = self.url(path);
        let request = match method {
            "PATCH" => self.agent.patch(url),
            _ => self.agent.post(url),
        };
        let mut request = self
            .authorized(request)
            .header("Content-Type", "application/json");
        if let Some(revision) = if_match {
            request = request.header("If-Match", format!("\"{revision}\""));
        }
        let response = self.answer(request.send(body.to_string()))?;
        read_json(response)
    }
}

/// The certificates an `https://` server is checked against: those of the PEM file
/// `SSL_CERT_FILE` names when it is set (a private certificate authority, as OpenSSL-based
/// tools read it), else Mozilla's roots.
///
/// # Errors
/// `SSL_CERT_FILE` names a file that cannot be read or holds no certificate (exit 2).
fn roots() -> Result<ureq::tls::RootCerts, CliError> {
    let Some(path) = std::env::var_os("SSL_CERT_FILE").filter(|p| !p.is_empty()) else {
        return Ok(ureq::tls::RootCerts::WebPki);
    };
    let shown = std::path::Path::new(&path).display().to_string();
    let pem = std::fs::read(&path).map_err(|e| {
        CliError::config(format!(
            "SSL_CERT_FILE {shown}: cannot read: {}",
            registry_host::io_reason(&e)
        ))
    })?;
    let certs: Vec<ureq::tls::Certificate<'static>> = ureq::tls::parse_pem(&pem)
        .filter_map(|item| match item {
            Ok(ureq::tls::PemItem::Certificate(c)) => Some(c),
            _ => None,
        })
        .collect();
    if certs.is_empty() {
        return Err(CliError::config(format!(
            "SSL_CERT_FILE {shown}: no PEM certificate in it"
        )));
    }
    Ok(ureq::tls::RootCerts::new_with_certs(&certs))
}

fn read_json<T: DeserializeOwned>(
    mut response: ureq::http::Response<ureq::Body>,
) -> Result<T, CliError> {
    let body = response
        .body_mut()
        .with_config()
        .limit(1 << 30)
        .read_to_string()
        .map_err(|e| CliError::config(format!("cannot read the server's answer: {e}")))?;
    serde_json::from_str(&body).map_err(|e| {
        CliError::config(format!(
            "the server's answer is not what this command reads: {e}"
        ))
    })
}

/// The error a problem answer is, as the local command would give it.
fn problem(status: u16, body: &str) -> CliError {
    let value: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let detail = value["detail"]
        .as_str()
        .map_or_else(|| format!("the server answered {status}"), str::to_owned);
    let code = value["code"].as_str().unwrap_or("config").to_owned();
    let error = match status {
        400 | 404 | 409 | 412 | 413 | 422 => CliError::input(detail),
        _ => CliError::config(detail),
    };
    let error = match code.as_str() {
        "invalid" | "input" if error.is_input() => error,
        _ => error.with_kind(code),
    };
    match value["field"].as_str() {
        Some(field) => error.on_field(field),
        None => error,
    }
}

/// `url` without a password, for messages.
fn redacted(url: &str) -> String {
    match (url.find("://"), url.find('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            format!("{}://…@{}", &url[..scheme], &url[at + 1..])
        }
        _ => url.to_owned(),
    }
}

/// Percent-encodes a query value.
fn encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for b in value.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A query string of the pairs whose value is set.
fn query(pairs: &[(&str, Option<String>)]) -> String {
    let set: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if set.is_empty() {
        String::new()
    } else {
        format!("?{}", set.join("&"))
    }
}

/// The JSON body of a registration.
#[derive(Serialize)]
struct Registration<'a> {
    title: &'a str,
    #[serde(flatten)]
    fields: Fields<Option<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    version: Option<String>,
    context: &'a registry_core::Context,
}

/// `registry add`.
pub fn add(remote: &Remote, args: crate::entries::AddArgs) -> Result<(), CliError> {
    let context = crate::entries::context(&args.context)?;
    let fields: Fields<Option<String>> = args.fields.into();
    // The same checks as a local `add`, before anything is sent.
    registry_core::Request::new(
        &args.title,
        fields.clone(),
        args.version.clone(),
        context.clone(),
    )?;
    let body = serde_json::to_value(Registration {
        title: &args.title,
        fields,
        version: args.version,
        context: &context,
    })
    .map_err(output::json_err)?;
    let added: Added = remote.send("POST", "/v1/entries", &body, None)?;
    output::added(&added, args.format.format)
}

/// `registry get`.
pub fn get(remote: &Remote, args: crate::entries::IdArgs) -> Result<(), CliError> {
    let id = crate::entries::parse_id(&args.id)?;
    let entry: Entry = remote.get(&format!("/v1/entries/{id}"))?;
    output::entry(&entry, args.format.format)
}

/// `registry history`.
pub fn history(remote: &Remote, args: crate::entries::IdArgs) -> Result<(), CliError> {
    let id = crate::entries::parse_id(&args.id)?;
    let revisions: Vec<Entry> = remote.get(&format!("/v1/entries/{id}/history"))?;
    output::history(&revisions, args.format.format)
}

/// A page of `GET /v1/entries`.
#[derive(serde::Deserialize)]
struct Page {
    entries: Vec<Entry>,
    next: Option<EntryId>,
    damaged: Vec<String>,
}

/// `registry list`: page by page, as the local command reads storage; damaged entries are named
/// on stderr and the exit code is then 2.
pub fn list(remote: &Remote, args: crate::entries::ListArgs) -> Result<(), CliError> {
    let after = args
        .after
        .as_deref()
        .map(crate::entries::parse_id)
        .transpose()?;
    let filter: Fields<Option<String>> = args.fields.into();
    let mut lister = output::Lister::new(args.format.format);
    let mut remaining = args.limit.unwrap_or(usize::MAX);
    let mut cursor = after.map(|a| a.to_string());
    let mut damaged = 0usize;
    while remaining > 0 {
        let path = format!(
            "/v1/entries{}",
            query(&[
                ("scope", filter.scope.clone()),
                ("type", filter.kind.clone()),
                ("variant", filter.variant.clone()),
                ("status", filter.status.clone()),
                ("all", args.all.then(|| "true".to_owned())),
                ("limit", Some(remaining.min(1000).to_string())),
                ("after", cursor.clone()),
            ])
        );
        let page: Page = remote.get(&path)?;
        remaining = remaining.saturating_sub(page.entries.len());
        lister.push(&page.entries)?;
        for d in &page.damaged {
            output::to_stderr(format_args!("error: {d}"));
        }
        damaged += page.damaged.len();
        match page.next {
            Some(next) => cursor = Some(next.to_string()),
            None => break,
        }
    }
    lister.finish()?;
    if damaged > 0 {
        return Err(CliError::config(format!(
            "{damaged} damaged {} (named above) left out; the others were served",
            if damaged == 1 {
                "entry was"
            } else {
                "entries were"
            }
        )));
    }
    Ok(())
}

/// `registry update`.
pub fn update(remote: &Remote, args: crate::entries::UpdateArgs) -> Result<(), CliError> {
    let id = crate::entries::parse_id(&args.id)?;
    let pairs = args
        .context
        .iter()
        .map(|c| registry_core::Context::parse_pair(c))
        .collect::<Result<Vec<_>, _>>()?;
    registry_core::Context::new(pairs.clone())?;
    let context: serde_json::Map<String, Value> = pairs
        .into_iter()
        .map(|(k, v)| (k, Value::from(v)))
        .collect();
    let body = json!({
        "title": args.title,
        "variant": args.variant,
        "status": args.status,
        "version": args.version,
        "context": context,
        "unset_context": args.unset_context,
    });
    let updated: Updated = remote
        .send(
            "PATCH",
            &format!("/v1/entries/{id}"),
            &body,
            args.if_revision,
        )
        .map_err(|e| revision_conflict(e, args.if_revision))?;
    output::updated(&updated, args.format.format)
}

/// A 412 said in the command line's words (`--if-revision`, not `If-Match`).
fn revision_conflict(e: CliError, expected: Option<u32>) -> CliError {
    match expected {
        Some(_) if e.kind() == "conflict" => {
            CliError::input(e.message.replace("If-Match says", "--if-revision says"))
        }
        _ => e,
    }
}

/// `registry retire`, `revive` and `merge`.
pub fn lifecycle(
    remote: &Remote,
    id: &str,
    target: Lifecycle,
    if_revision: Option<u32>,
    verb: &str,
    format: Format,
) -> Result<(), CliError> {
    let id = crate::entries::parse_id(id)?;
    let (path, body) = match &target {
        Lifecycle::Retired => (format!("/v1/entries/{id}/retire"), json!({})),
        Lifecycle::Active => (format!("/v1/entries/{id}/revive"), json!({})),
        Lifecycle::Merged(into) => (
            format!("/v1/entries/{id}/merge"),
            json!({ "into": into.to_string() }),
        ),
    };
    let updated: Updated = remote
        .send("POST", &path, &body, if_revision)
        .map_err(|e| revision_conflict(e, if_revision))?;
    crate::entries::print_lifecycle(&updated, verb, format)
}

/// `registry diff`.
pub fn diff(remote: &Remote, args: crate::audit::DiffArgs) -> Result<(), CliError> {
    let id = crate::entries::parse_id(&args.id)?;
    let path = format!(
        "/v1/entries/{id}/diff{}",
        query(&[
            ("from", args.from.map(|n| n.to_string())),
            ("to", args.to.map(|n| n.to_string())),
        ])
    );
    let diff: registry_host::diff::Diff = remote.get(&path)?;
    crate::audit::print_diff(&diff, args.format.format)
}

/// A page of `GET /v1/audit`.
#[derive(serde::Deserialize)]
struct AuditPage {
    records: Vec<registry_host::audit::Record>,
    truncated: bool,
}

/// `registry audit`.
pub fn audit(remote: &Remote, args: crate::audit::AuditArgs) -> Result<(), CliError> {
    if let Some(id) = &args.id {
        crate::entries::parse_id(id)?;
    }
    let path = format!(
        "/v1/audit{}",
        query(&[
            ("since", args.since.clone()),
            ("actor", args.actor.clone()),
            ("id", args.id.clone()),
            ("limit", Some("10000".to_owned())),
        ])
    );
    let page: AuditPage = remote.get(&path)?;
    if page.truncated {
        output::warnings(&[
            "the server answered its first 10,000 records: narrow with --since, --actor or --id"
                .to_owned(),
        ]);
    }
    crate::audit::print_records(&page.records, args.format.format)
}

/// `registry search`.
pub fn search(remote: &Remote, args: crate::search::SearchArgs) -> Result<(), CliError> {
    let q = args.query()?;
    let path = format!(
        "/v1/search{}",
        query(&[
            ("q", Some(q.text.clone())),
            ("scope", q.scope.clone()),
            ("type", q.kind.clone()),
            ("variant", q.variant.clone()),
            ("status", q.status.clone()),
            ("retired", q.include_retired.then(|| "true".to_owned())),
            ("limit", Some(q.limit.to_string())),
            ("offset", Some(q.offset.to_string())),
        ])
    );
    let found: crate::search::Found = remote.get(&path)?;
    crate::search::print(&found, q.offset, args.format.format)
}

/// `registry stats`.
pub fn stats(remote: &Remote, format: Format) -> Result<(), CliError> {
    let stats: registry_host::batch::Stats = remote.get("/v1/stats")?;
    match format {
        Format::Json => output::json(&stats),
        Format::Text => crate::batch::print_stats(&stats).map_err(output::write_err),
    }
}

/// `registry export`: the server's export, streamed to standard output or (whole, once
/// complete) to the `--output` file.
pub fn export(remote: &Remote, args: crate::transfer::ExportArgs) -> Result<(), CliError> {
    let scopes = if args.scope.is_empty() {
        None
    } else {
        Some(args.scope.join(","))
    };
    let path = format!(
        "/v1/export{}",
        query(&[
            ("scope", scopes),
            (
                "format",
                Some(
                    match args.format {
                        crate::transfer::FileFormat::Jsonl => "jsonl",
                        crate::transfer::FileFormat::Yaml => "yaml",
                    }
                    .to_owned(),
                ),
            ),
            ("audit", args.audit.then(|| "true".to_owned())),
        ])
    );
    let request = remote.authorized(remote.agent.get(remote.url(&path)));
    let response = remote.answer(request.call())?;
    let mut reader = response.into_body().into_reader();
    let cut = |e: io::Error| {
        CliError::config(format!(
            "the export stopped before its end: {e} (nothing complete was written)"
        ))
    };
    match args.output.as_ref().filter(|p| p.as_os_str() != "-") {
        None => {
            let mut out = io::BufWriter::new(io::stdout().lock());
            copy(&mut reader, &mut out, &cut)?;
            out.flush().map_err(output::write_err)
        }
        Some(path) => registry_host::transfer::write_replacing(path, |out| {
            copy(&mut reader, out, &cut)?;
            Ok(())
        }),
    }
}

/// Copies `reader` (the server's answer) to `out`: a read error is `cut`, a write error the
/// output's.
fn copy(
    reader: &mut dyn Read,
    out: &mut dyn Write,
    cut: &dyn Fn(io::Error) -> CliError,
) -> Result<(), CliError> {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = reader.read(&mut buf).map_err(cut)?;
        if n == 0 {
            return Ok(());
        }
        out.write_all(&buf[..n]).map_err(output::write_err)?;
    }
}

/// The file to send (`-` for standard input), and its name as messages give it.
///
/// # Errors
/// A file that cannot be opened (exit 1).
fn open_input(file: &std::path::Path) -> Result<(String, Box<dyn Read>), CliError> {
    if file.as_os_str() == "-" {
        return Ok(("<stdin>".to_owned(), Box::new(io::stdin())));
    }
    let name = file.display().to_string();
    let opened = std::fs::File::open(file).map_err(|e| {
        CliError::input(format!(
            "cannot read {name}: {}",
            registry_host::io_reason(&e)
        ))
        .in_file(&name)
    })?;
    Ok((name, Box::new(opened)))
}

/// What a remote batch did.
#[derive(Debug, Default, Serialize)]
struct BatchSummary {
    processed: u64,
    created: u64,
    duplicates: u64,
    failed: u64,
    /// Each line that failed: its number and why.
    failures: Vec<Value>,
}

/// `registry batch FILE`: the file streamed to `POST /v1/batch`, each line's result read as it
/// comes (and written to `--results`); exit 1 when a line failed.
pub fn batch(remote: &Remote, args: crate::batch::BatchArgs) -> Result<(), CliError> {
    let (name, input) = open_input(&args.file)?;
    let mut results = match &args.results {
        Some(path) => Some(io::BufWriter::new(std::fs::File::create(path).map_err(
            |e| {
                CliError::input(format!(
                    "cannot create {}: {}",
                    path.display(),
                    registry_host::io_reason(&e)
                ))
            },
        )?)),
        None => None,
    };
    let request = remote
        .authorized(remote.agent.post(remote.url("/v1/batch")))
        .header("Content-Type", "application/x-ndjson");
    let response = remote.answer(request.send(ureq::SendBody::from_owned_reader(input)))?;
    let mut summary = BatchSummary::default();
    let reader = io::BufReader::new(response.into_body().into_reader());
    let cut = |e: io::Error| {
        CliError::config(format!(
            "the batch's answer stopped before its end: {e}; the lines answered are stored, \
             and running the same input again completes the rest without duplicates"
        ))
    };
    for line in io::BufRead::lines(reader) {
        let line = line.map_err(cut)?;
        let value: Value = serde_json::from_str(&line).map_err(|e| {
            CliError::config(format!("the server's answer is not a result line: {e}"))
        })?;
        if let Some(error) = value.get("error") {
            return Err(problem(
                u16::try_from(error["status"].as_u64().unwrap_or(500)).unwrap_or(500),
                &error.to_string(),
            ));
        }
        if let Some(out) = &mut results {
            writeln!(out, "{line}").map_err(output::write_err)?;
        }
        summary.processed += 1;
        match value["status"].as_str() {
            Some("created") => summary.created += 1,
            Some("duplicate") => summary.duplicates += 1,
            _ => {
                summary.failed += 1;
                let message = value["message"].as_str().unwrap_or("failed");
                if !output::quiet() && matches!(args.format.format, Format::Text) {
                    output::to_stderr(format_args!(
                        "{name}:{}: {}",
                        value["line"],
                        registry_host::text::escaped(message)
                    ));
                }
                summary.failures.push(value);
            }
        }
    }
    if let Some(out) = &mut results {
        out.flush().map_err(output::write_err)?;
    }
    match args.format.format {
        Format::Json => output::json(&summary)?,
        Format::Text => {
            let mut out = io::stdout().lock();
            writeln!(
                out,
                "processed {}: created {}, already registered {}, failed {}",
                summary.processed, summary.created, summary.duplicates, summary.failed
            )
            .map_err(output::write_err)?;
        }
    }
    if summary.failed > 0 {
        return Err(CliError::input(format!(
            "{} of {} lines of {name} failed",
            summary.failed, summary.processed
        )));
    }
    Ok(())
}

/// What `POST /v1/import` answers.
#[derive(serde::Deserialize)]
struct ImportAnswer {
    #[serde(flatten)]
    summary: registry_host::transfer::Summary,
    failures: Vec<registry_host::transfer::Failure>,
    total: usize,
    hint: Option<String>,
}

/// `registry import FILE`: the file streamed to `POST /v1/import` (role `admin`), its summary
/// and failures printed as a local import prints them.
pub fn import(remote: &Remote, args: crate::transfer::ImportArgs) -> Result<(), CliError> {
    let (name, input) = open_input(&args.file)?;
    let path = format!(
        "/v1/import{}",
        query(&[("atomic", args.atomic.then(|| "true".to_owned()))])
    );
    let request = remote
        .authorized(remote.agent.post(remote.url(&path)))
        .header("Content-Type", "application/x-ndjson");
    let response = remote.answer(request.send(ureq::SendBody::from_owned_reader(input)))?;
    let answer: ImportAnswer = read_json(response)?;
    let format = args.format.format;
    if matches!(format, Format::Text) {
        crate::transfer::print_failures(&name, &answer.failures)?;
    }
    let hint = answer.hint;
    let imported = registry_host::transfer::Imported {
        name,
        summary: answer.summary,
        total: answer.total,
        hint,
    };
    let failures = match format {
        Format::Json => answer.failures,
        Format::Text => Vec::new(),
    };
    crate::transfer::finish(&imported, failures, format)
}
