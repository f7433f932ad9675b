//! Who hears of the writes: [`Observer`], told of every entry a pipeline write changed, after the
//! write is durable and the cache agrees with it (so an observer that reads the entry back never
//! meets the text a purge removed, or a stale negative).
//!
//! The calls are made where the pipeline stores (the insert of new entries, the one place every
//! new revision is stored, the restore of imported histories, a purge), so no operation built
//! on them can forget to report: a front end that keeps a change feed or a search index up to
//! date registers one observer instead of wrapping each operation. A write that failed reports
//! nothing; one that found its entry already registered reports nothing either.

use crate::entry::Entry;

/// What a write did to an entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChangeKind {
    /// Registered: revision 1 stored.
    Created,
    /// A new revision with new content (an update, a rename).
    Updated,
    /// A new revision that retires it.
    Retired,
    /// A new revision that makes a retired or merged entry active again.
    Revived,
    /// A new revision that merges it into another.
    Merged,
    /// Stored by an import, its history as exported.
    Imported,
    /// A revision's field removed by a purge (not necessarily the latest revision).
    Purged,
}

impl ChangeKind {
    /// Every kind, in declaration order.
    pub const ALL: [ChangeKind; 7] = [
        ChangeKind::Created,
        ChangeKind::Updated,
        ChangeKind::Retired,
        ChangeKind::Revived,
        ChangeKind::Merged,
        ChangeKind::Imported,
        ChangeKind::Purged,
    ];

    /// The lower-case name, as change events and the audit log name it.
    pub fn name(self) -> &'static str {
        match self {
            ChangeKind::Created => "created",
            ChangeKind::Updated => "updated",
            ChangeKind::Retired => "retired",
            ChangeKind::Revived => "revived",
            ChangeKind::Merged => "merged",
            ChangeKind::Imported => "imported",
            ChangeKind::Purged => "purged",
        }
    }
}

/// Told of every entry a write of the pipeline changed, on the writing thread, once the write
/// is durable. It must return quickly (hand the work to another thread) and never block on the
/// pipeline itself.
pub trait Observer: Send + Sync {
    /// `entries` were changed as `kind` says: for a purge, the purged revision; otherwise the
    /// latest revision as stored.
    fn changed(&self, kind: ChangeKind, entries: &[&Entry]);
}
