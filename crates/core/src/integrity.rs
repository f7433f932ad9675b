//! What makes a stored or exported entry trustworthy, checked on every read and every import.
//!
//! - Each revision's content matches its hash ([`Entry::verify`]).
//! - The hashes form a chain: a revision that records the one before ([`Entry::previous`],
//!   which its hash covers) records that revision's hash, so rewriting a revision, even with its
//!   hash recomputed, breaks the next link ([`check_chain`]); the latest hash, which an export
//!   carries, covers the whole history.
//! - A history holds revisions 1 to n, oldest first, all with the entry's id, fingerprint and
//!   provenance.
//! - Times make sense: every revision has the entry's creation time, none was updated before it
//!   was created, and updates come in order.
//! - The fingerprint is the registration request's: recomputed from revision 1 with the
//!   provenance that says which fields were given ([`Provenance::fingerprint_of`]); for an
//!   entry recorded without provenance, some set of given fields must give it
//!   ([`Provenance::recover`]). A record carrying another request's fingerprint, or a made-up
//!   one such as all zeros, fails here: accepting it would make later registrations of that
//!   request return an unrelated entry and drop the new one.
//!
//! Reads check what they return ([`Pipeline::get`](crate::Pipeline::get) the latest revision's
//! hash, [`Pipeline::history`](crate::Pipeline::history) everything above), and report a failure
//! as [`Damaged`], naming the entry, without hiding the other entries.

use std::fmt;

use crate::entry::{Entry, Provenance};
use crate::header::EntryId;

/// An entry whose stored content fails an integrity check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Damaged {
    pub id: EntryId,
    /// What is wrong, e.g. "revision 2 does not match its hash (…)".
    pub reason: String,
}

impl fmt::Display for Damaged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "entry {} is damaged: {}; restore it from a backup or an export",
            self.id, self.reason
        )
    }
}

/// One integrity problem: a stable code and a message (without the entry's id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flaw {
    /// `bad-history`, `hash-mismatch`, `broken-chain`, `bad-times` or `fingerprint-mismatch`.
    pub code: &'static str,
    pub message: String,
}

/// Checks the hash chain of a history whose shape is right: revision 1 records no revision
/// before it; a revision that records one ([`Entry::previous`]) records the hash revision n-1
/// has; and once one does, every later one does (revisions written before chains existed
/// record none, and only those may). Since each hash covers the one before, a revision rewritten
/// with its hash recomputed breaks the link of the revision after it.
///
/// # Errors
/// A `broken-chain` [`Flaw`] per broken link.
pub fn check_chain(history: &[Entry]) -> Vec<Flaw> {
    let flaw = |message: String| Flaw {
        code: "broken-chain",
        message,
    };
    let mut flaws = Vec::new();
    let mut chained_since = None;
    for (at, e) in history.iter().enumerate() {
        match (&e.previous, at.checked_sub(1).map(|b| &history[b])) {
            (Some(_), None) => flaws.push(flaw(format!(
                "revision {} records a revision before it, but it is the first",
                e.revision
            ))),
            (Some(p), Some(before)) if *p != before.link() => flaws.push(flaw(format!(
                "revision {} follows a revision with hash {p}, but revision {} has hash {}: the \
                 history was rewritten",
                e.revision,
                before.revision,
                before.link()
            ))),
            (None, Some(_)) if chained_since.is_some() => flaws.push(flaw(format!(
                "revision {} records no revision before it, though revision {} did: the history \
                 was rewritten",
                e.revision,
                chained_since.unwrap_or(0)
            ))),
            _ => {}
        }
        if e.previous.is_some() && chained_since.is_none() {
            chained_since = Some(e.revision);
        }
    }
    flaws
}

/// Checks that a revision's content matches its hash.
///
/// # Errors
/// A `hash-mismatch` [`Flaw`] naming the revision and both hashes.
pub fn check_hash(e: &Entry) -> Result<(), Flaw> {
    let computed = e.content_hash();
    if computed == e.hash {
        Ok(())
    } else {
        Err(Flaw {
            code: "hash-mismatch",
            message: format!(
                "revision {} does not match its hash: recorded {}, computed {computed}",
                e.revision, e.hash
            ),
        })
    }
}

/// The latest revision of a history whose shape is right: at least one revision, numbered 1 to
/// n oldest first, every one with the latest's id, fingerprint and provenance. This is the part
/// of [`check_history`] a storage checks of what it is given to restore
/// ([`crate::rules::check_history`]), so both hold histories to one definition.
///
/// # Errors
/// The first `bad-history` [`Flaw`].
pub fn check_shape(history: &[Entry]) -> Result<&Entry, Flaw> {
    let flaw = |message: String| Flaw {
        code: "bad-history",
        message,
    };
    let Some(latest) = history.last() else {
        return Err(flaw(
            "the history has no revisions: it must hold revisions 1 to n".to_owned(),
        ));
    };
    for (at, e) in history.iter().enumerate() {
        let want = at + 1;
        let shape = if e.revision as usize != want {
            Some(format!(
                "revision {want} of its history is numbered {}: a history holds revisions 1 to \
                 n, oldest first",
                e.revision
            ))
        } else if e.header.id != latest.header.id {
            Some(format!(
                "revision {want} has id {}: every revision has the entry's id",
                e.header.id
            ))
        } else if e.fingerprint != latest.fingerprint {
            Some(format!(
                "revision {want} has fingerprint {}, the latest has {}: every revision has the \
                 entry's fingerprint",
                e.fingerprint, latest.fingerprint
            ))
        } else if e.provenance != latest.provenance {
            Some(format!(
                "revision {want} records another provenance than the latest: every revision has \
                 the entry's"
            ))
        } else {
            None
        };
        if let Some(message) = shape {
            return Err(flaw(message));
        }
    }
    Ok(latest)
}

/// Every flaw of a history (see the module documentation), and the provenance its
/// fingerprint was found to have: the recorded one, or the one [`Provenance::recover`] found for
/// an entry recorded without. A history whose shape is wrong ([`check_shape`]) gives that one
/// flaw and nothing else is checked.
pub fn check_history(history: &[Entry]) -> (Vec<Flaw>, Option<Provenance>) {
    let flaw = |code, message: String| Flaw { code, message };
    let latest = match check_shape(history) {
        Ok(latest) => latest,
        Err(f) => return (vec![f], None),
    };
    // `check_shape` refuses an empty history, so the first revision is there.
    let first = history.first().unwrap_or(latest);
    let mut flaws: Vec<Flaw> = history.iter().filter_map(|e| check_hash(e).err()).collect();
    flaws.extend(check_chain(history));
    let mut previous = None;
    for e in history {
        let message = if e.created_at > e.updated_at {
            Some(format!(
                "revision {} was updated at {}, before it was created at {}",
                e.revision, e.updated_at, e.created_at
            ))
        } else if e.created_at != first.created_at {
            Some(format!(
                "revision {} says the entry was created at {}, revision 1 at {}",
                e.revision, e.created_at, first.created_at
            ))
        } else if previous.is_some_and(|p| e.updated_at < p) {
            Some(format!(
                "revision {} was updated at {}, before the revision it replaces",
                e.revision, e.updated_at
            ))
        } else {
            None
        };
        if let Some(message) = message {
            flaws.push(flaw("bad-times", message));
        }
        previous = Some(e.updated_at);
    }
    // Revision 1's content is what the fingerprint is recomputed from: when it does not match
    // its hash, the hash mismatch already says it is not what was registered; when part of it
    // was purged, the request cannot be rebuilt, and the purge record says so.
    if check_hash(first).is_err() {
        return (flaws, None);
    }
    if first.purge.is_some() {
        return (flaws, latest.provenance);
    }
    let provenance = match &latest.provenance {
        Some(p) => match p.fingerprint_of(first) {
            Some(fp) if fp == first.fingerprint => Some(*p),
            Some(fp) => {
                flaws.push(flaw(
                    "fingerprint-mismatch",
                    format!(
                        "its fingerprint {} is not its request's: revision 1 with its recorded \
                         provenance gives {fp}",
                        first.fingerprint
                    ),
                ));
                None
            }
            None => {
                flaws.push(flaw(
                    "fingerprint-mismatch",
                    format!(
                        "its fingerprint derivation {} is unknown to this build",
                        p.derivation
                    ),
                ));
                None
            }
        },
        None => {
            let found = Provenance::recover(first);
            if found.is_none() {
                flaws.push(flaw(
                    "fingerprint-mismatch",
                    format!(
                        "its fingerprint {} is not its request's: no set of given fields of \
                         revision 1 gives it",
                        first.fingerprint
                    ),
                ));
            }
            found
        }
    };
    (flaws, provenance)
}

/// The first flaw of a history as a [`Damaged`] entry, for reads.
///
/// # Errors
/// The first flaw [`check_history`] finds.
pub fn verify_history(history: &[Entry]) -> Result<(), Damaged> {
    let (flaws, _) = check_history(history);
    match (flaws.into_iter().next(), history.last()) {
        (Some(f), Some(latest)) => Err(Damaged {
            id: latest.header.id.clone(),
            reason: f.message,
        }),
        _ => Ok(()),
    }
}

/// A revision's hash check as a [`Damaged`] entry, for reads.
///
/// # Errors
/// When the content does not match the hash.
pub fn verify_entry(e: &Entry) -> Result<(), Damaged> {
    check_hash(e).map_err(|f| Damaged {
        id: e.header.id.clone(),
        reason: f.message,
    })
}
