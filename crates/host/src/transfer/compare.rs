//! `registry check --against EXPORT`: the registry held against an export kept elsewhere.
//!
//! Every revision of an entry records the hash of the one before, which its own hash covers
//! (`registry_core::integrity`), so an entry's latest hash is the head of a chain over its
//! history. Someone who can write the data directory can rewrite a revision and every hash after
//! it, and then the registry agrees with itself; it no longer agrees with an export taken
//! before. This reads such an export (streamed, a record at a time) and names each exported
//! revision the registry holds with another hash (`rewritten`) or does not hold (`missing`).
//! Entries and revisions added since the export are expected, and not reported, and so is a
//! revision purged since (`registry purge`), which keeps the hash it had as its link.

use registry_core::{Error as CoreError, Pipeline};
use serde::Serialize;

use super::import::Source;
use super::record::Parsed;
use crate::error::Error;
use crate::events::{Events, Progress};

/// One way the registry disagrees with the export.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Difference {
    /// The line of the export its record starts on.
    pub line: usize,
    /// `rewritten`, `missing`, `damaged` (the registry's history fails its own check) or
    /// `unreadable` (the export's record).
    pub code: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub message: String,
}

/// What [`compare`] read and found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Compared {
    /// The export's name, as given.
    pub export: String,
    pub entries: u64,
    pub revisions: u64,
    pub differences: Vec<Difference>,
}

/// Compares the registry with the export `source`; see the module documentation.
///
/// # Errors
/// The export cannot be read on (an I/O error), or a storage call fails other than for one
/// entry.
pub fn compare(
    pipeline: &Pipeline,
    source: Source,
    events: &mut dyn Events,
) -> Result<Compared, Error> {
    let mut input = source.into_input();
    let mut compared = Compared {
        export: input.name.clone(),
        entries: 0,
        revisions: 0,
        differences: Vec::new(),
    };
    let mut items = Vec::with_capacity(1);
    while input.next_item(&mut items, pipeline.schema())? {
        for item in items.drain(..) {
            let differ = |code, message| Difference {
                line: item.line,
                code,
                id: item.id.clone(),
                message,
            };
            let exported = match item.parsed {
                Ok(Parsed::Entry(history)) => history,
                Ok(Parsed::Request(_)) => {
                    compared.differences.push(differ(
                        "unreadable",
                        format!("line {}: a plain request, not an exported entry", item.line),
                    ));
                    continue;
                }
                Err(why) => {
                    compared
                        .differences
                        .push(differ("unreadable", format!("line {}: {why}", item.line)));
                    continue;
                }
            };
            let Some(latest) = exported.last() else {
                continue;
            };
            let id = latest.header.id.clone();
            compared.entries += 1;
            compared.revisions += exported.len() as u64;
            let stored = match pipeline.history(&id) {
                Ok(stored) => stored,
                Err(CoreError::NotFound(_)) => {
                    compared.differences.push(differ(
                        "missing",
                        format!("entry {id} is in the export but not in the registry"),
                    ));
                    continue;
                }
                Err(CoreError::Damaged(d)) => {
                    compared.differences.push(differ("damaged", d.to_string()));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            for e in &exported {
                match stored.get(e.revision as usize - 1) {
                    None => compared.differences.push(differ(
                        "missing",
                        format!(
                            "entry {id}: revision {} is in the export, the registry holds {} \
                             revisions",
                            e.revision,
                            stored.len()
                        ),
                    )),
                    // A purge since the export keeps the hash it replaced, for the chain.
                    Some(s) if s.hash != e.hash && s.link() != e.hash => {
                        compared.differences.push(differ(
                            "rewritten",
                            format!(
                                "entry {id}: revision {} has hash {} in the export and {} in the \
                             registry: it was rewritten since the export",
                                e.revision, e.hash, s.hash
                            ),
                        ))
                    }
                    Some(_) => {}
                }
            }
        }
        events.progress(Progress {
            processed: compared.entries,
            done: None,
            unit: "entries",
        });
    }
    events.finished();
    Ok(compared)
}
