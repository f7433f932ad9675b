//! `rename`: every entry holding a field value rewritten, as a new revision, to hold another
//! (`registry migrate --rename FIELD OLD=NEW`): a variant or status renamed, or retired from
//! the schema, without losing an entry or its history.
//!
//! Design decision: the scope and the type cannot be renamed this way. An id is made of the
//! scope and type it was registered with (`SEC-RUL-001`), the validator holds every entry to
//! that, and ids never change (they are stamped in files); renaming a scope would need the
//! schema to know the old spelling as an alias of the new, which it does not yet.

use super::*;

/// What a rename did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Renamed {
    /// The field's name (`scope`, `type`, `variant`, `status`).
    pub field: &'static str,
    pub from: String,
    pub to: String,
    /// Entries given a new revision.
    pub entries: u64,
}

impl Pipeline {
    /// Gives every entry whose `field` (variant or status) is `from` (as stored) a new revision
    /// with `to`, which the schema must declare; the config is rendered again and checked, the
    /// lifecycle, the id and everything else kept. `progress` is told the entries rewritten so
    /// far.
    ///
    /// # Errors
    /// The field is the scope or the type, or `to` is not declared ([`Error::Invalid`]), an
    /// entry cannot be rendered or checked with
    /// the new value (the entries before it are rewritten; run it again after fixing the
    /// configuration), or storage fails.
    pub fn rename(
        &self,
        field: Field,
        from: &str,
        to: &str,
        progress: &mut dyn FnMut(u64),
    ) -> Result<Renamed, Error> {
        if matches!(field, Field::Scope | Field::Type) {
            return Err(Error::Invalid(vec![Problem {
                item: 0,
                severity: Severity::Error,
                code: "fixed-field".to_owned(),
                field: field.name().to_owned(),
                message: format!(
                    "the {field} cannot be renamed: ids are made of the scope and type they were \
                     registered with, are stamped in files, and must keep matching them; only \
                     variant and status values can be renamed"
                ),
            }]));
        }
        let Some(to) = self.schema.canonical(field, to).map(str::to_owned) else {
            return Err(Error::Invalid(vec![Problem {
                item: 0,
                severity: Severity::Error,
                code: format!("unknown-{field}"),
                field: field.name().to_owned(),
                message: format!(
                    "{field} `{to}` is not declared in the schema: declare it before renaming to it"
                ),
            }]));
        };
        let from = self
            .schema
            .canonical(field, from)
            .map_or_else(|| from.to_owned(), str::to_owned);
        let mut renamed = Renamed {
            field: field.name(),
            from: from.clone(),
            to: to.clone(),
            entries: 0,
        };
        if from == to {
            return Ok(renamed);
        }
        for storage in &self.stages.storage {
            // Rewritten entries leave the filtered listing, and each page starts after the last
            // one seen: an entry that could not be rewritten is not met again.
            self.walk_shard(&**storage, Some((field, &from)), &mut |page| {
                for entry in page {
                    integrity::verify_entry(&entry).map_err(Error::Damaged)?;
                    self.rewrite_field(entry, field, &to)?;
                    renamed.entries += 1;
                    progress(renamed.entries);
                }
                Ok(())
            })?;
        }
        Ok(renamed)
    }

    /// Stores a new revision of `current` with `field` set to `to`, its config rendered again.
    fn rewrite_field(&self, current: Entry, field: Field, to: &str) -> Result<(), Error> {
        let id = current.header.id.clone();
        let revision = current
            .revision
            .checked_add(1)
            .ok_or_else(|| Error::Conflict(id.clone()))?;
        let mut header = current.header.clone();
        header.fields[field] = to.to_owned();
        let draft = Draft {
            header,
            title: current.title.clone(),
            context: current.context.clone(),
        };
        let config = self.render_one(&draft)?;
        let hash = Entry::compute_hash_in(
            &draft.header,
            &draft.title,
            &draft.context,
            &config,
            &current.lifecycle,
        );
        let entry = Entry {
            header: draft.header,
            title: draft.title,
            context: draft.context,
            config,
            hash,
            revision,
            updated_at: Timestamp::now().max(current.updated_at),
            ..current
        };
        self.check_entry(&entry).map_err(|e| match e {
            Error::Invalid(problems) => Error::Invalid(
                problems
                    .into_iter()
                    .map(|p| Problem {
                        message: format!("entry {id}: {}", p.message),
                        ..p
                    })
                    .collect(),
            ),
            other => other,
        })?;
        self.store_revision(&id, entry).map(|_| ())
    }
}
