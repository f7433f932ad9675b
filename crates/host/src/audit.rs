//! `registry audit` and `GET /v1/audit`: who wrote what, when and from where.
//!
//! The audit log is kept where the writes are: every revision records its author
//! ([`registry_core::Author`]: a token's name and the client's address on the server, the user
//! and host on the command line, and the server's request id), written by storage in the same
//! transaction as the revision itself, so no write is without its record and a Redis
//! deployment shares it as it shares the entries. It is not content: a revision's hash does not
//! cover it, and `export` leaves it out unless asked (`--audit`).
//!
//! Each revision is one record: `created` (revision 1), `updated`, `retired`, `merged` or
//! `revived` (what changed between it and the revision before), the revisions before and
//! after, and its author; a purge adds a `purged` record at the time it was made, with its
//! fields and reason (a purge keeps the revision's author, and records no author of its own).
//! Revisions written before authors were recorded, or by a registry of storage format 1
//! (which cannot keep them), show no author.
//!
//! Reading it walks the registry: every entry whose latest revision is older than `since` is
//! passed over without reading its history, so a recent window costs a listing plus the
//! histories of the entries changed since; a whole-registry audit reads every history, as an
//! export does.

use registry_core::{
    Entry, EntryId, Error as CoreError, Lifecycle, ListQuery, Pipeline, Timestamp,
};
use serde::{Deserialize, Serialize};

use crate::error::Error;
use crate::events::Events;

/// Entries listed per storage call.
const PAGE: usize = 1000;

/// What to read of the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    /// Only writes at or after this instant.
    pub since: Option<Timestamp>,
    /// Only writes by this author name.
    pub actor: Option<String>,
    /// Only writes of this entry.
    pub id: Option<EntryId>,
    /// Only entries of these scopes (a scoped token's); all when empty.
    pub scopes: Vec<String>,
}

/// One write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub at: Timestamp,
    pub action: String,
    pub id: EntryId,
    /// The revision the write started from; `None` for a creation.
    pub revision_before: Option<u32>,
    pub revision_after: u32,
    /// Who, from where, in which request; `None` when the revision records no author.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request: Option<String>,
    /// For `purged`: the fields and the reason given.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// The records `query` selects, oldest first (ties by id and revision). Damaged histories are
/// given to `events` and left out; their count is returned with the records.
///
/// # Errors
/// An unknown id, or storage failing.
pub fn read(
    pipeline: &Pipeline,
    query: &Query,
    events: &mut dyn Events,
) -> Result<(Vec<Record>, usize), Error> {
    let mut records = Vec::new();
    let mut damaged = 0;
    if let Some(id) = &query.id {
        let history = pipeline.history(id)?;
        if history.last().is_some_and(|e| in_scopes(e, &query.scopes)) {
            records_of(&history, query, &mut records);
        } else {
            return Err(CoreError::NotFound(id.clone()).into());
        }
    } else {
        let mut list = ListQuery {
            limit: PAGE,
            ..ListQuery::default()
        };
        loop {
            let page = pipeline.list(&list)?;
            for d in &page.damaged {
                events.damaged(d);
            }
            damaged += page.damaged.len();
            for latest in &page.entries {
                let recent = query.since.is_none_or(|since| {
                    latest.updated_at >= since
                        || latest.purge.as_ref().is_some_and(|p| p.at >= since)
                });
                if !recent || !in_scopes(latest, &query.scopes) {
                    continue;
                }
                match pipeline.history(&latest.header.id) {
                    Ok(history) => records_of(&history, query, &mut records),
                    Err(CoreError::Damaged(d)) => {
                        events.damaged(&d);
                        damaged += 1;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            let Some(next) = page.next else { break };
            list.after = Some(next);
        }
    }
    records.sort_by(|a, b| {
        (a.at, &a.id, a.revision_after, &a.action).cmp(&(b.at, &b.id, b.revision_after, &b.action))
    });
    Ok((records, damaged))
}

fn in_scopes(e: &Entry, scopes: &[String]) -> bool {
    scopes.is_empty()
        || scopes
            .iter()
            .any(|s| s.eq_ignore_ascii_case(&e.header.fields.scope))
}

/// The records of one history that `query` selects.
fn records_of(history: &[Entry], query: &Query, out: &mut Vec<Record>) {
    let mut before: Option<&Entry> = None;
    for e in history {
        let action = match (before, &e.lifecycle) {
            (None, _) => "created",
            (Some(b), Lifecycle::Retired) if b.lifecycle != e.lifecycle => "retired",
            (Some(b), Lifecycle::Merged(_)) if b.lifecycle != e.lifecycle => "merged",
            (Some(b), Lifecycle::Active) if !b.lifecycle.is_active() => "revived",
            _ => "updated",
        };
        let author = e.author.as_ref();
        let record = Record {
            at: e.updated_at,
            action: action.to_owned(),
            id: e.header.id.clone(),
            revision_before: before.map(|b| b.revision),
            revision_after: e.revision,
            actor: author.map(|a| a.name.clone()),
            origin: author.map(|a| a.origin.clone()),
            request: author.map(|a| a.request.clone()).filter(|r| !r.is_empty()),
            detail: None,
        };
        if selected(&record, query) {
            out.push(record);
        }
        if let Some(p) = &e.purge {
            let purged = Record {
                at: p.at,
                action: "purged".to_owned(),
                id: e.header.id.clone(),
                revision_before: Some(e.revision),
                revision_after: e.revision,
                actor: None,
                origin: None,
                request: None,
                detail: Some(format!("{}: {}", p.fields, p.reason)),
            };
            if selected(&purged, query) {
                out.push(purged);
            }
        }
        before = Some(e);
    }
}

fn selected(record: &Record, query: &Query) -> bool {
    query.since.is_none_or(|since| record.at >= since)
        && query
            .actor
            .as_ref()
            .is_none_or(|a| record.actor.as_ref() == Some(a))
}
