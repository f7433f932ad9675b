//! `registry diff` and `GET /v1/entries/{id}/diff`: what changed between two revisions of an
//! entry, field by field, with the config as a unified diff.

use registry_core::{Entry, EntryId, Field, Pipeline};
use serde::{Deserialize, Serialize};

use crate::error::Error;

/// What changed between two revisions of one entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diff {
    pub id: EntryId,
    pub from: u32,
    pub to: u32,
    /// The fields whose value differs, in a fixed order: the header fields, `title`,
    /// `context.KEY` (keys in the order of `from`, then those only `to` has) and `lifecycle`.
    pub changes: Vec<Change>,
    /// The config as a unified diff (`--- revision N`, `+++ revision M`, hunks with three
    /// lines of context); empty when the configs are the same.
    pub config: String,
}

/// One field's value before and after; `None` where the revision has no such field (a context
/// key set or removed).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    pub field: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// The diff between revisions `from` and `to` of `id`: by default the revision before the
/// latest and the latest (a registered entry never updated is compared with itself).
///
/// # Errors
/// A revision the entry does not have (exit 1), an unknown id, a damaged history or storage
/// failing.
pub fn diff(
    pipeline: &Pipeline,
    id: &EntryId,
    from: Option<u32>,
    to: Option<u32>,
) -> Result<Diff, Error> {
    let history = pipeline.history(id)?;
    let latest = history.last().map_or(1, |e| e.revision);
    let to = to.unwrap_or(latest);
    let from = from.unwrap_or_else(|| to.saturating_sub(1).max(1));
    let find = |n: u32, name: &str| {
        history.iter().find(|e| e.revision == n).ok_or_else(|| {
            Error::input(format!(
                "{name}: entry {id} has no revision {n} (its revisions are 1 to {latest})"
            ))
        })
    };
    let b = find(to, "to")?;
    let a = find(from, "from")?;
    Ok(between(a, b))
}

/// The diff between two revisions already read.
pub fn between(a: &Entry, b: &Entry) -> Diff {
    let mut changes = Vec::new();
    let mut change = |field: String, before: Option<&str>, after: Option<&str>| {
        if before != after {
            changes.push(Change {
                field,
                before: before.map(str::to_owned),
                after: after.map(str::to_owned),
            });
        }
    };
    for f in Field::ALL {
        change(
            f.name().to_owned(),
            Some(&a.header.fields[f]),
            Some(&b.header.fields[f]),
        );
    }
    change(
        "version".to_owned(),
        Some(&a.header.version.to_string()),
        Some(&b.header.version.to_string()),
    );
    change("title".to_owned(), Some(&a.title), Some(&b.title));
    for (key, value) in a.context.iter() {
        change(format!("context.{key}"), Some(value), b.context.get(key));
    }
    for (key, value) in b.context.iter() {
        if a.context.get(key).is_none() {
            change(format!("context.{key}"), None, Some(value));
        }
    }
    change(
        "lifecycle".to_owned(),
        Some(&a.lifecycle.to_string()),
        Some(&b.lifecycle.to_string()),
    );
    let config = if a.config == b.config {
        String::new()
    } else {
        similar::TextDiff::from_lines(&a.config, &b.config)
            .unified_diff()
            .context_radius(3)
            .header(
                &format!("revision {}", a.revision),
                &format!("revision {}", b.revision),
            )
            .to_string()
    };
    Diff {
        id: b.header.id.clone(),
        from: a.revision,
        to: b.revision,
        changes,
        config,
    }
}
