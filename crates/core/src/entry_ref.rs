//! [`EntryRef`]: an entry lent as views of text that someone else keeps.
//!
//! A storage that reads a record can lend its fields where they lie (the stored bytes, a
//! buffer its configs were decompressed into) instead of copying each into an [`Entry`] that the
//! caller copies again: [`crate::Storage::get_lent`]. Across the plugin boundary that is the
//! difference between one copy of every string and two.

use crate::entry::{Author, ContentHash, Entry, Fingerprint, Lifecycle, Provenance, Purge};
use crate::header::{EntryId, Fields, Header};
use crate::request::{ContextRef, RequestError, copy_into};
use crate::time::Timestamp;

/// An [`Entry`], every field a view or a copy of a small value. [`EntryRef::to_entry`] makes
/// the owned entry; `EntryRef::from(&entry)` lends one.
#[derive(Debug, Clone, Copy)]
pub struct EntryRef<'a> {
    pub fields: Fields<&'a str>,
    /// The id's prefix, as [`EntryId::prefix`].
    pub id_prefix: &'a str,
    /// The id's number, as [`EntryId::number`].
    pub id_number: u64,
    pub version: &'a str,
    pub title: &'a str,
    pub context: ContextRef<'a>,
    pub config: &'a str,
    pub hash: ContentHash,
    pub previous: Option<ContentHash>,
    pub purge: Option<PurgeRef<'a>>,
    pub fingerprint: Fingerprint,
    pub revision: u32,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
    pub provenance: Option<Provenance>,
    pub lifecycle: LifecycleRef<'a>,
    pub author: Option<AuthorRef<'a>>,
}

/// A [`Purge`], lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PurgeRef<'a> {
    pub original: ContentHash,
    pub fields: &'a str,
    pub reason: &'a str,
    pub at: Timestamp,
}

/// An [`Author`], lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AuthorRef<'a> {
    pub name: &'a str,
    pub origin: &'a str,
    pub request: &'a str,
}

/// A [`Lifecycle`], lent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleRef<'a> {
    Active,
    Retired,
    /// Merged into the entry of this id prefix and number.
    Merged {
        prefix: &'a str,
        number: u64,
    },
}

impl<'a> From<&'a Entry> for EntryRef<'a> {
    fn from(e: &'a Entry) -> Self {
        EntryRef {
            fields: Fields {
                scope: &e.header.fields.scope,
                kind: &e.header.fields.kind,
                variant: &e.header.fields.variant,
                status: &e.header.fields.status,
            },
            id_prefix: e.header.id.prefix(),
            id_number: e.header.id.number(),
            version: &e.header.version,
            title: &e.title,
            context: ContextRef::Owned(&e.context),
            config: &e.config,
            hash: e.hash,
            previous: e.previous,
            purge: e.purge.as_ref().map(|p| PurgeRef {
                original: p.original,
                fields: &p.fields,
                reason: &p.reason,
                at: p.at,
            }),
            fingerprint: e.fingerprint,
            revision: e.revision,
            created_at: e.created_at,
            updated_at: e.updated_at,
            provenance: e.provenance,
            lifecycle: match &e.lifecycle {
                Lifecycle::Active => LifecycleRef::Active,
                Lifecycle::Retired => LifecycleRef::Retired,
                Lifecycle::Merged(target) => LifecycleRef::Merged {
                    prefix: target.prefix(),
                    number: target.number(),
                },
            },
            author: e.author.as_ref().map(|a| AuthorRef {
                name: &a.name,
                origin: &a.origin,
                request: &a.request,
            }),
        }
    }
}

impl EntryRef<'_> {
    /// Makes `entry` this view's entry, in its strings, the context copied unchecked: for
    /// views made from entries, such as the host's lent to a plugin.
    pub(crate) fn copy_to(&self, entry: &mut Entry) {
        entry
            .header
            .refill(self.fields, self.id_prefix, self.id_number, self.version);
        copy_into(&mut entry.title, self.title);
        entry.context.refill_from(self.context.iter());
        copy_into(&mut entry.config, self.config);
        entry.hash = self.hash;
        entry.previous = self.previous;
        refill_purge(&mut entry.purge, self.purge);
        entry.fingerprint = self.fingerprint;
        entry.revision = self.revision;
        entry.created_at = self.created_at;
        entry.updated_at = self.updated_at;
        entry.provenance = self.provenance;
        entry.lifecycle = self.lifecycle.to_lifecycle();
        refill_author(&mut entry.author, self.author);
    }

    /// The owned entry: every string copied, the context checked as [`crate::Context::new`]
    /// checks it.
    ///
    /// # Errors
    /// When the lent context would not make a [`crate::Context`].
    pub fn to_entry(&self) -> Result<Entry, RequestError> {
        let mut context = crate::Context::default();
        context.refill(self.context.iter())?;
        Ok(Entry {
            header: Header {
                fields: self.fields.map(|_, v| v.to_owned()),
                id: EntryId::new(self.id_prefix, self.id_number),
                version: self.version.to_owned(),
            },
            title: self.title.to_owned(),
            context,
            config: self.config.to_owned(),
            hash: self.hash,
            previous: self.previous,
            purge: self.purge.map(PurgeRef::to_purge),
            fingerprint: self.fingerprint,
            revision: self.revision,
            created_at: self.created_at,
            updated_at: self.updated_at,
            provenance: self.provenance,
            lifecycle: self.lifecycle.to_lifecycle(),
            author: self.author.map(AuthorRef::to_author),
        })
    }
}

/// Makes `kept` the purge lent, in the strings of the one it holds, if any.
pub fn refill_purge(kept: &mut Option<Purge>, lent: Option<PurgeRef<'_>>) {
    match (kept, lent) {
        (Some(kept), Some(p)) => {
            kept.original = p.original;
            copy_into(&mut kept.fields, p.fields);
            copy_into(&mut kept.reason, p.reason);
            kept.at = p.at;
        }
        (kept, p) => *kept = p.map(PurgeRef::to_purge),
    }
}

/// Makes `kept` the author lent, in the strings of the one it holds, if any.
pub fn refill_author(kept: &mut Option<Author>, lent: Option<AuthorRef<'_>>) {
    match (kept, lent) {
        (Some(kept), Some(a)) => {
            copy_into(&mut kept.name, a.name);
            copy_into(&mut kept.origin, a.origin);
            copy_into(&mut kept.request, a.request);
        }
        (kept, a) => *kept = a.map(AuthorRef::to_author),
    }
}

impl PurgeRef<'_> {
    pub fn to_purge(self) -> Purge {
        Purge {
            original: self.original,
            fields: self.fields.to_owned(),
            reason: self.reason.to_owned(),
            at: self.at,
        }
    }
}

impl AuthorRef<'_> {
    pub fn to_author(self) -> Author {
        Author {
            name: self.name.to_owned(),
            origin: self.origin.to_owned(),
            request: self.request.to_owned(),
        }
    }
}

impl LifecycleRef<'_> {
    pub fn to_lifecycle(self) -> Lifecycle {
        match self {
            LifecycleRef::Active => Lifecycle::Active,
            LifecycleRef::Retired => Lifecycle::Retired,
            LifecycleRef::Merged { prefix, number } => {
                Lifecycle::Merged(EntryId::new(prefix, number))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stage::Source;

    fn entry(lifecycle: Lifecycle, chained: bool) -> Entry {
        let mut e = Entry {
            header: Header {
                fields: Fields {
                    scope: "SEC".to_owned(),
                    kind: "RULES".to_owned(),
                    variant: "LIVE".to_owned(),
                    status: "REQUIRED".to_owned(),
                },
                id: EntryId::new("SEC-RUL", 7),
                version: "v2.9".to_owned(),
            },
            title: "Block public buckets".to_owned(),
            context: crate::Context::new([
                ("owner".to_owned(), "platform".to_owned()),
                ("cloud".to_owned(), "aws".to_owned()),
            ])
            .expect("a valid context"),
            config: "rule: x\n".to_owned(),
            hash: ContentHash([1; 32]),
            previous: None,
            purge: None,
            fingerprint: Fingerprint([2; 16]),
            revision: 3,
            created_at: Timestamp(10),
            updated_at: Timestamp(20),
            provenance: Some(Provenance {
                derivation: 1,
                fields: Fields {
                    scope: Source::Given,
                    kind: Source::Model,
                    variant: Source::Keyword,
                    status: Source::Default,
                },
                version: Source::Given,
            }),
            lifecycle,
            author: None,
        };
        if chained {
            e.previous = Some(ContentHash([3; 32]));
            e.purge = Some(Purge {
                original: ContentHash([4; 32]),
                fields: "title".to_owned(),
                reason: "a secret".to_owned(),
                at: Timestamp(5),
            });
            e.author = Some(Author::new("ops", "cli@host", "r-1"));
        }
        e
    }

    #[test]
    fn an_entry_lent_and_copied_back_is_the_same_entry() {
        for lifecycle in [
            Lifecycle::Active,
            Lifecycle::Retired,
            Lifecycle::Merged(EntryId::new("SEC-RUL", 2)),
        ] {
            for chained in [false, true] {
                let e = entry(lifecycle.clone(), chained);
                assert_eq!(EntryRef::from(&e).to_entry().expect("a valid context"), e);
            }
        }
    }

    #[test]
    fn an_entry_copied_over_another_of_any_shape_is_the_entry_lent() {
        let shapes: Vec<Entry> = [
            Lifecycle::Active,
            Lifecycle::Retired,
            Lifecycle::Merged(EntryId::new("SEC-RUL", 2)),
        ]
        .into_iter()
        .flat_map(|l| [entry(l.clone(), false), entry(l, true)])
        .collect();
        // Contexts of other lengths too.
        let mut shapes = shapes;
        shapes[1].context = crate::Context::default();
        shapes[2].context =
            crate::Context::new([("z".to_owned(), "1".to_owned())]).expect("a valid context");
        for lent in &shapes {
            for before in &shapes {
                let mut copy = before.clone();
                EntryRef::from(lent).copy_to(&mut copy);
                assert_eq!(&copy, lent);
            }
        }
    }

    #[test]
    fn a_lent_context_is_checked_when_copied() {
        let e = entry(Lifecycle::Active, false);
        let pairs = [("b", "1"), ("a", "2"), ("a", "3")];
        let mut view = EntryRef::from(&e);
        view.context = ContextRef::Pairs(&pairs);
        assert!(view.to_entry().is_err(), "a repeated key is refused");
    }
}
