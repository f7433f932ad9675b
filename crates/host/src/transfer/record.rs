//! A record of an export file: written from an entry's history, read back as an exported
//! entry or a plain request, every key checked.

use registry_core::{
    Author, ContentHash, Context, Entry, EntryId, Fields, Fingerprint, Header, Lifecycle,
    Provenance, Purge, Request, Schema, Timestamp, nesting,
};
use serde::{Deserialize, Serialize};

use crate::requests::RequestLine;

/// One revision as exported. `id`, `fingerprint` and `history` are written for the top level only.
#[derive(Debug, Serialize)]
pub(super) struct Record<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<&'a EntryId>,
    header: String,
    scope: &'a str,
    #[serde(rename = "type")]
    kind: &'a str,
    variant: &'a str,
    status: &'a str,
    version: &'a str,
    title: &'a str,
    context: &'a Context,
    config: &'a str,
    hash: ContentHash,
    /// The revision before's hash, which this one's covers; left out when the revision records
    /// none, so a record without a chain is as it was before chains existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    previous: Option<ContentHash>,
    /// What was purged from the revision, and why; left out for a revision never purged.
    #[serde(skip_serializing_if = "Option::is_none")]
    purge: Option<&'a Purge>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fingerprint: Option<Fingerprint>,
    #[serde(skip_serializing_if = "Option::is_none")]
    provenance: Option<Provenance>,
    revision: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    /// Written for a retired or merged revision only, so an active one's record is as it was
    /// before lifecycles existed.
    #[serde(skip_serializing_if = "Option::is_none")]
    lifecycle: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged_into: Option<&'a EntryId>,
    /// Who wrote the revision (`export --audit` only): not content, so an export without it
    /// is the same whoever made the writes.
    #[serde(skip_serializing_if = "Option::is_none")]
    author: Option<&'a Author>,
    #[serde(skip_serializing_if = "Option::is_none")]
    history: Option<Vec<Record<'a>>>,
}

impl<'a> Record<'a> {
    fn revision(e: &'a Entry, audit: bool) -> Record<'a> {
        let f = &e.header.fields;
        Record {
            id: None,
            header: e.header.readable(),
            scope: &f.scope,
            kind: &f.kind,
            variant: &f.variant,
            status: &f.status,
            version: &e.header.version,
            title: &e.title,
            context: &e.context,
            config: &e.config,
            hash: e.hash,
            previous: e.previous,
            purge: e.purge.as_ref(),
            fingerprint: None,
            provenance: None,
            revision: e.revision,
            created_at: e.created_at,
            updated_at: e.updated_at,
            lifecycle: (!e.lifecycle.is_active()).then(|| e.lifecycle.name()),
            merged_into: e.lifecycle.merged_into(),
            author: e.author.as_ref().filter(|_| audit),
            history: None,
        }
    }

    /// The record of an entry from its history, oldest first, with each revision's author
    /// when `audit`; `None` for an empty history.
    pub(super) fn entry(history: &'a [Entry], audit: bool) -> Option<Record<'a>> {
        let (latest, earlier) = history.split_last()?;
        Some(Record {
            id: Some(&latest.header.id),
            fingerprint: Some(latest.fingerprint),
            provenance: latest.provenance,
            history: Some(earlier.iter().map(|e| Record::revision(e, audit)).collect()),
            ..Record::revision(latest, audit)
        })
    }
}

/// A record as read: every key optional, so one type reads both exported entries and plain
/// requests, and a missing key is reported by name.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRecord {
    id: Option<EntryId>,
    header: Option<String>,
    scope: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    variant: Option<String>,
    status: Option<String>,
    version: Option<String>,
    title: Option<String>,
    context: Option<Context>,
    config: Option<String>,
    hash: Option<ContentHash>,
    previous: Option<ContentHash>,
    purge: Option<Purge>,
    fingerprint: Option<Fingerprint>,
    provenance: Option<Provenance>,
    revision: Option<u32>,
    created_at: Option<Timestamp>,
    updated_at: Option<Timestamp>,
    lifecycle: Option<String>,
    merged_into: Option<EntryId>,
    author: Option<Author>,
    history: Option<Vec<RawRevision>>,
}

/// An earlier revision in a record's `history`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawRevision {
    header: String,
    scope: String,
    #[serde(rename = "type")]
    kind: String,
    variant: String,
    status: String,
    version: String,
    title: String,
    context: Context,
    config: String,
    hash: ContentHash,
    #[serde(default)]
    previous: Option<ContentHash>,
    #[serde(default)]
    purge: Option<Purge>,
    revision: u32,
    created_at: Timestamp,
    updated_at: Timestamp,
    #[serde(default)]
    lifecycle: Option<String>,
    #[serde(default)]
    merged_into: Option<EntryId>,
    #[serde(default)]
    author: Option<Author>,
}

/// What a record asks for.
pub(super) enum Parsed {
    /// An exported entry: every revision, oldest first.
    Entry(Vec<Entry>),
    Request(Box<Request>),
}

/// A record read from the file: where it starts, its id if it names one, and what it asks for
/// or why it cannot be read.
pub(super) struct Item {
    pub(super) line: usize,
    pub(super) id: Option<String>,
    pub(super) parsed: Result<Parsed, String>,
}

impl Item {
    /// A record at `line` that could not be read, for `reason`.
    pub(super) fn unreadable(line: usize, reason: String) -> Item {
        Item {
            line,
            id: None,
            parsed: Err(reason),
        }
    }
}

/// A nesting error of the document starting at `line`, its position made a line of the file.
pub(super) fn nesting_message(e: &nesting::NestingError, line: usize) -> String {
    let at = line + e.line() - 1;
    match e {
        nesting::NestingError::TooDeep {
            collection,
            depth,
            max,
            column,
            ..
        } => format!(
            "not a valid record: a {collection} collection at line {at} column {column} nests \
             {depth} levels deep: at most {max} are allowed"
        ),
        nesting::NestingError::TooManyAliasedNodes { max, column, .. } => format!(
            "not a valid record: the alias at line {at} column {column} makes aliases repeat \
             more than {max} nodes"
        ),
        other => format!("not a valid record: {other}"),
    }
}

/// What a record read from line `line` asks for.
pub(super) fn item_of(line: usize, raw: RawRecord, schema: &Schema) -> Item {
    let id = raw.id.as_ref().map(ToString::to_string);
    let parsed = if raw.hash.is_none() && raw.history.is_none() {
        request_of(raw, schema).map(|r| Parsed::Request(Box::new(r)))
    } else {
        history_of(raw).map(Parsed::Entry)
    };
    Item { line, id, parsed }
}

/// A plain request, checked as `registry add` checks one.
pub(super) fn request_of(raw: RawRecord, schema: &Schema) -> Result<Request, String> {
    let exported_only = [
        ("id", raw.id.is_some()),
        ("header", raw.header.is_some()),
        ("config", raw.config.is_some()),
        ("previous", raw.previous.is_some()),
        ("purge", raw.purge.is_some()),
        ("fingerprint", raw.fingerprint.is_some()),
        ("provenance", raw.provenance.is_some()),
        ("revision", raw.revision.is_some()),
        ("created_at", raw.created_at.is_some()),
        ("updated_at", raw.updated_at.is_some()),
        ("lifecycle", raw.lifecycle.is_some()),
        ("merged_into", raw.merged_into.is_some()),
        ("author", raw.author.is_some()),
    ];
    if let Some((key, _)) = exported_only.iter().find(|(_, given)| *given) {
        return Err(format!(
            "`{key}` is given but `hash` and `history` are not: an exported entry has every \
             field of an export, a plain request only title, scope, type, variant, status, \
             version and context"
        ));
    }
    let title = raw.title.ok_or("missing field `title`")?;
    RequestLine {
        title,
        scope: raw.scope,
        kind: raw.kind,
        variant: raw.variant,
        status: raw.status,
        version: raw.version,
        context: raw.context.unwrap_or_default(),
    }
    .into_request(schema, true)
}

/// Every revision of an exported entry, oldest first.
pub(super) fn history_of(raw: RawRecord) -> Result<Vec<Entry>, String> {
    fn need<T>(value: Option<T>, key: &str) -> Result<T, String> {
        value.ok_or_else(|| format!("missing field `{key}`"))
    }
    let id = need(raw.id, "id")?;
    let fingerprint = need(raw.fingerprint, "fingerprint")?;
    // Optional: a record exported before provenance was recorded has none, and import finds
    // it from the fingerprint.
    let provenance = raw.provenance;
    let earlier = need(raw.history, "history")?;
    let latest = RawRevision {
        header: need(raw.header, "header")?,
        scope: need(raw.scope, "scope")?,
        kind: need(raw.kind, "type")?,
        variant: need(raw.variant, "variant")?,
        status: need(raw.status, "status")?,
        version: need(raw.version, "version")?,
        title: need(raw.title, "title")?,
        context: need(raw.context, "context")?,
        config: need(raw.config, "config")?,
        hash: need(raw.hash, "hash")?,
        previous: raw.previous,
        purge: raw.purge,
        revision: need(raw.revision, "revision")?,
        created_at: need(raw.created_at, "created_at")?,
        updated_at: need(raw.updated_at, "updated_at")?,
        lifecycle: raw.lifecycle,
        merged_into: raw.merged_into,
        author: raw.author,
    };
    earlier
        .into_iter()
        .chain([latest])
        .map(|r| entry_of(r, &id, fingerprint, provenance))
        .collect()
}

/// One revision, its header rebuilt from its fields and checked against the `header` written.
pub(super) fn entry_of(
    r: RawRevision,
    id: &EntryId,
    fingerprint: Fingerprint,
    provenance: Option<Provenance>,
) -> Result<Entry, String> {
    let header = Header {
        fields: Fields {
            scope: r.scope,
            kind: r.kind,
            variant: r.variant,
            status: r.status,
        },
        id: id.clone(),
        version: r.version,
    };
    let readable = header.readable();
    if r.header != readable {
        return Err(format!(
            "revision {}: header `{}` does not match its fields, which make {readable}",
            r.revision, r.header
        ));
    }
    let lifecycle =
        Lifecycle::from_parts(r.lifecycle.as_deref().unwrap_or("active"), r.merged_into)
            .map_err(|why| format!("revision {}: {why}", r.revision))?;
    Ok(Entry {
        header,
        title: r.title,
        context: r.context,
        config: r.config,
        hash: r.hash,
        previous: r.previous,
        purge: r.purge,
        fingerprint,
        revision: r.revision,
        created_at: r.created_at,
        updated_at: r.updated_at,
        provenance,
        lifecycle,
        author: r.author,
    })
}
