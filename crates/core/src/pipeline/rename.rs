//! `rename`: every entry holding a field value rewritten, as a new revision, to hold another
//! (`registry migrate --rename FIELD OLD=NEW`): a variant or status renamed, or retired from
//! the schema, without losing an entry or its history.
//!
//! Design decision: an id is made of its scope's id scope (the scope itself, unless
//! `[schema.id_scope]` says otherwise) and the first three letters or digits of the type
//! (`SEC-RUL-001`), the validator holds every entry to that, and ids never change (they are
//! stamped in files). So a type can be renamed when the new name gives the same id prefix
//! (`RULES` to `RULESETS`: `SEC-RUL` either way), and a scope when the schema gives the new
//! scope the old one's id scope (`SECURITY = "SEC"`): its entries keep their ids, and new ones
//! number on from the same sequence. Anything else is refused, naming the ids that would change
//! and how to keep them.

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
        if let Some(message) = changes_ids(&self.schema, field, from, to) {
            return Err(Error::Invalid(vec![Problem {
                item: 0,
                severity: Severity::Error,
                code: "fixed-field".to_owned(),
                field: field.name().to_owned(),
                message,
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
        let entry = Entry {
            header: draft.header,
            title: draft.title,
            context: draft.context,
            config,
            revision,
            updated_at: Timestamp::now().max(current.updated_at),
            ..current.clone()
        };
        let entry = self.seal(&current, entry);
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
        self.store_revision(&id, entry, super::ChangeKind::Updated)
            .map(|_| ())
    }
}

/// Why renaming `field` from `from` to `to` would change ids, if it would: for the scope unless
/// the schema gives the new scope the old one's id scope (`schema.id_scope`), for the type when
/// the first three letters or digits differ.
fn changes_ids(schema: &Schema, field: Field, from: &str, to: &str) -> Option<String> {
    let why = "ids are stamped in files and never change; a variant or a status can be renamed, \
               a type whose new name keeps the id prefix, and a scope whose new name keeps the \
               old one's ids (`[schema.id_scope]`)";
    match field {
        Field::Scope => {
            let (old, new) = (schema.id_scope(from), schema.id_scope(to));
            (old != new).then(|| {
                format!(
                    "scope `{from}` cannot be renamed to `{to}` as the schema stands: ids of `{to}` \
                     start `{new}-`, so every `{old}-…` id would change; declare \
                     `[schema.id_scope] {to} = \"{old}\"` so that `{to}` keeps them, or {why}",
                    to = to.to_ascii_uppercase()
                )
            })
        }
        Field::Type => {
            // The part of the prefix the type makes: `-RUL`.
            let (old, new) = (EntryId::prefix_for("", from), EntryId::prefix_for("", to));
            (old != new).then(|| {
                format!(
                    "type `{from}` cannot be renamed to `{to}`: ids take the type's first three \
                     letters or digits, so `…{old}-…` ids would become `…{new}-…`; {why}"
                )
            })
        }
        _ => None,
    }
}
