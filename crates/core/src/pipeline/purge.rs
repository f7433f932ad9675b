//! `purge`: text removed from one revision (a secret pasted into a title or a context value),
//! the removal recorded in the revision and the hash chain kept whole ([`crate::Purge`]).
//!
//! The value is replaced by [`PURGED`] in the field named, and wherever it appears in the
//! revision's config (the config is rendered from the title and the context, so it may repeat
//! the value: as written, and as YAML writes it in quotes). The revision keeps its number, its
//! header, its times and its link to the revision before; it records what was purged, why and
//! when, and the hash it had, which the next revision's link holds. Nothing else is rewritten:
//! other revisions holding the same value are named, to be purged in turn.

use super::*;
use crate::entry::{PURGED, Purge};
use crate::request::Context;

/// What a purge did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Purged {
    pub id: EntryId,
    pub revision: u32,
    /// `title` or `context.KEY`.
    pub field: String,
    /// How many times the value was also replaced in the revision's config.
    pub in_config: usize,
    /// The revision's hash before this purge, and after.
    pub hash_before: ContentHash,
    pub hash_after: ContentHash,
    /// Other revisions of the entry that still hold the value in that field.
    pub also_in: Vec<u32>,
}

/// The longest reason a purge records, in bytes.
pub const MAX_PURGE_REASON_BYTES: usize = 500;

impl Pipeline {
    /// Purges `field` (`title` or `context.KEY`) from revision `revision` of `id`, recording
    /// `reason`; see the module documentation.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an entry or revision that does not exist,
    /// [`Error::Damaged`] for a history that fails its check, [`Error::Invalid`] for a field that
    /// is not `title` or `context.KEY`, a key the revision does not hold, a value already purged,
    /// or a reason that is empty, too long or not one line; a storage failure.
    pub fn purge(
        &self,
        id: &EntryId,
        revision: u32,
        field: &str,
        reason: &str,
    ) -> Result<Purged, Error> {
        let invalid = |message: String| {
            Error::Invalid(vec![Problem {
                item: 0,
                severity: Severity::Error,
                code: "purge".to_owned(),
                field: "purge".to_owned(),
                message,
            }])
        };
        let reason = reason.trim();
        if reason.is_empty()
            || reason.len() > MAX_PURGE_REASON_BYTES
            || reason.chars().any(char::is_control)
        {
            return Err(invalid(format!(
                "a purge needs a reason: one line of at most {MAX_PURGE_REASON_BYTES} bytes"
            )));
        }
        let history = self.history(id)?;
        let at = (revision as usize)
            .checked_sub(1)
            .and_then(|i| history.get(i))
            .ok_or_else(|| {
                invalid(format!(
                    "entry {id} has no revision {revision}: it has 1 to {}",
                    history.len()
                ))
            })?;
        let value = value_of(at, field).map_err(&invalid)?;
        if value == PURGED {
            return Err(invalid(format!(
                "{field} of revision {revision} of {id} is already purged"
            )));
        }
        let mut purged = at.clone();
        if field == "title" {
            purged.title = PURGED.to_owned();
        } else if let Some(key) = field.strip_prefix("context.") {
            let pairs = at.context.iter().map(|(k, v)| {
                let v = if k == key { PURGED } else { v };
                (k.to_owned(), v.to_owned())
            });
            purged.context = Context::new(pairs).map_err(|e| invalid(e.to_string()))?;
        }
        let (config, in_config) = scrub(&at.config, &value);
        purged.config = config;
        let now = Timestamp::now();
        purged.purge = Some(match &at.purge {
            None => Purge {
                original: at.hash,
                fields: field.to_owned(),
                reason: reason.to_owned(),
                at: now,
            },
            Some(p) => Purge {
                original: p.original,
                fields: format!("{}, {field}", p.fields),
                reason: format!("{}; {reason}", p.reason),
                at: now.max(p.at),
            },
        });
        purged.hash = purged.content_hash();
        // The whole history must still verify with the purged revision in it.
        let mut after = history.clone();
        after[revision as usize - 1] = purged.clone();
        integrity::verify_history(&after).map_err(Error::Damaged)?;
        self.shard_of_id(id)?
            .purge(&purged)
            .map_err(|e| match e.code {
                ErrorCode::NotFound => Error::NotFound(id.clone()),
                _ => Error::stage(StageKind::Storage, e),
            })?;
        if revision as usize == history.len() {
            // The cache holds the latest revision: it must not serve the purged text again.
            let keys: Vec<CacheKey> = CacheKey::of_entry(at).into_iter().collect();
            if self.stages.cache.remove(&keys).is_err() {
                self.cache_errors.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Only now: an observer that reads the entry back must not find the cached text.
        self.report(ChangeKind::Purged, &[&purged]);
        let also_in = history
            .iter()
            .filter(|e| e.revision != revision && value_of(e, field).is_ok_and(|v| v == value))
            .map(|e| e.revision)
            .collect();
        Ok(Purged {
            id: id.clone(),
            revision,
            field: field.to_owned(),
            in_config,
            hash_before: at.hash,
            hash_after: purged.hash,
            also_in,
        })
    }
}

/// The value `field` names in a revision.
fn value_of(e: &Entry, field: &str) -> Result<String, String> {
    if field == "title" {
        return Ok(e.title.clone());
    }
    let Some(key) = field.strip_prefix("context.") else {
        return Err(format!(
            "cannot purge `{field}`: give `title` or `context.KEY`"
        ));
    };
    e.context
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_owned())
        .ok_or_else(|| {
            let keys: Vec<&str> = e.context.iter().map(|(k, _)| k).collect();
            format!(
                "revision {} of {} has no context key `{key}`: its keys are {}",
                e.revision,
                e.header.id,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            )
        })
}

/// `config` with every occurrence of `value` replaced by [`PURGED`], as written and as YAML
/// quotes it (single quotes double a `'`, double quotes escape), and how many were replaced.
fn scrub(config: &str, value: &str) -> (String, usize) {
    if value.is_empty() {
        return (config.to_owned(), 0);
    }
    let mut forms = vec![value.to_owned()];
    let single = value.replace('\'', "''");
    // Titles and context values hold no control character, so these are the only escapes.
    let double = value.replace('\\', "\\\\").replace('"', "\\\"");
    for form in [single, double] {
        if !form.is_empty() && !forms.contains(&form) {
            forms.push(form);
        }
    }
    let mut out = config.to_owned();
    let mut count = 0;
    for form in forms {
        count += out.matches(form.as_str()).count();
        out = out.replace(form.as_str(), PURGED);
    }
    (out, count)
}
