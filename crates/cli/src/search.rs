//! `registry search` (full-text, ranked, with field filters) and `registry reindex`.
//!
//! The index is `DATA/search` (`registry-search`), derived from storage. Without a server, a
//! search first brings the index up to date with storage (every entry's id and revision compared
//! with the index's, so the first search of a large registry takes a while, and shows its
//! progress on a terminal), then answers; `registry serve` keeps it up to date as it writes (a
//! search beside a running server, possible with a storage several processes share, reads the
//! index as that server keeps it). With `--server`, the server searches its own index. Either
//! way each hit is read from storage before it is shown, and left out when storage holds
//! another revision than the index.

use std::io::Write as _;
use std::time::Instant;

use clap::Args;
use registry_core::{Entry, Error as CoreError};
use registry_host::events::{self, Events as _};
use registry_host::text::escaped;
use registry_search::{SearchIndex, SearchQuery};
use serde::{Deserialize, Serialize};

use crate::config::Settings;
use crate::progress::Progress;
use crate::registry::{Needs, open};
use crate::{CliError, FieldArgs, Format, FormatArg, output};

/// The most hits one search shows.
pub const MAX_HITS: usize = 100;

#[derive(Debug, Args)]
pub struct SearchArgs {
    /// Words to find in titles, contexts and configs: every word must match; "a phrase" in
    /// quotes, -word to leave one out, `a OR b` for either. Empty lists what the filters select
    #[arg(value_name = "WORDS")]
    pub(crate) words: Vec<String>,
    #[command(flatten)]
    pub(crate) fields: FieldArgs,
    /// Also retired entries and entries merged into others
    #[arg(long)]
    pub(crate) all: bool,
    /// Show at most this many hits (1 to 100)
    #[arg(long, default_value_t = 20)]
    pub(crate) limit: usize,
    /// Skip this many hits (the next page)
    #[arg(long, default_value_t = 0)]
    pub(crate) offset: usize,
    #[command(flatten)]
    pub(crate) format: FormatArg,
}

#[derive(Debug, Args)]
pub struct ReindexArgs {
    #[command(flatten)]
    pub(crate) format: FormatArg,
}

/// One hit: the entry as storage holds it.
#[derive(Debug, Serialize, Deserialize)]
pub struct Hit {
    pub score: f32,
    pub entry: Entry,
}

/// What a search found, as the server answers it too.
#[derive(Debug, Serialize, Deserialize)]
pub struct Found {
    pub hits: Vec<Hit>,
    /// Entries that match, in all pages.
    pub total: u64,
    /// Hits left out: storage holds another revision than the index, or none.
    pub stale: u64,
    pub took_ms: f64,
}

impl SearchArgs {
    /// The query, its limit checked.
    pub(crate) fn query(&self) -> Result<SearchQuery, CliError> {
        if self.limit == 0 || self.limit > MAX_HITS {
            return Err(CliError::input(format!(
                "--limit must be 1 to {MAX_HITS}, not {}",
                self.limit
            ))
            .on_field("limit"));
        }
        let fields: registry_core::Fields<Option<String>> = self.fields.clone().into();
        Ok(SearchQuery {
            text: self.words.join(" "),
            scope: fields.scope,
            scopes: Vec::new(),
            kind: fields.kind,
            variant: fields.variant,
            status: fields.status,
            include_retired: self.all,
            limit: self.limit,
            offset: self.offset,
        })
    }
}

/// Opens the index of `settings`' data directory for writing.
fn open_index(settings: &Settings) -> Result<SearchIndex, CliError> {
    let dir = settings.data_dir.join(registry_host::batch::SEARCH_DIR);
    SearchIndex::open(&dir)
        .map(|opened| opened.index)
        .map_err(|e| CliError::config(e.to_string()))
}

/// Opens the index to search: for writing, to catch it up first (`true`); or, when a server
/// holds it (a storage that several processes may open, such as Redis), read-only as that
/// server keeps it (`false`).
fn open_to_search(settings: &Settings) -> Result<(SearchIndex, bool), CliError> {
    let dir = settings.data_dir.join(registry_host::batch::SEARCH_DIR);
    match SearchIndex::open(&dir) {
        Ok(opened) => Ok((opened.index, true)),
        Err(e) if e.kind() == registry_search::SearchErrorKind::Locked => {
            SearchIndex::open_read_only(&dir)
                .map(|index| (index, false))
                .map_err(|e| CliError::config(e.to_string()))
        }
        Err(e) => Err(CliError::config(e.to_string())),
    }
}

/// Calls `events` with the entries scanned so far.
fn scanned(events: &mut dyn registry_host::events::Events) -> impl FnMut(u64) + '_ {
    move |n| {
        events.progress(events::Progress {
            processed: n,
            done: None,
            unit: "entries",
        });
    }
}

/// `registry search`.
///
/// # Errors
/// A bad limit (exit 1); the registry or the index cannot be read (exit 2).
pub fn search(args: SearchArgs, settings: &Settings) -> Result<(), CliError> {
    let query = args.query()?;
    let pipeline = open(settings, Needs::READ)?;
    let (index, writable) = open_to_search(settings)?;
    if writable {
        let mut progress = Progress::new(args.format.format);
        registry_search::catch_up(&index, &pipeline, &mut scanned(&mut progress))
            .map_err(|e| CliError::config(e.to_string()))?;
        progress.finished();
    }
    let started = Instant::now();
    let found = index
        .search(&query)
        .map_err(|e| CliError::config(e.to_string()))?;
    let mut hits = Vec::with_capacity(found.hits.len());
    let mut stale = 0;
    for hit in found.hits {
        match pipeline.get(&hit.id) {
            Ok(entry) if entry.revision == hit.revision => hits.push(Hit {
                score: hit.score,
                entry,
            }),
            Ok(_) | Err(CoreError::NotFound(_)) => stale += 1,
            Err(e) => return Err(registry_host::Error::from(e)),
        }
    }
    print(
        &Found {
            hits,
            total: found.total,
            stale,
            took_ms: started.elapsed().as_secs_f64() * 1000.0,
        },
        query.offset,
        args.format.format,
    )
}

/// The hits, one line each (score, header, title) and a count, or the JSON answer.
pub(crate) fn print(found: &Found, offset: usize, format: Format) -> Result<(), CliError> {
    if matches!(format, Format::Json) {
        return output::json(found);
    }
    let mut out = std::io::stdout().lock();
    (|| {
        for hit in &found.hits {
            let e = &hit.entry;
            write!(
                out,
                "{:>6.2}  {}  {}",
                hit.score,
                e.header.readable(),
                escaped(&e.title)
            )?;
            if !e.lifecycle.is_active() {
                write!(out, "  ({})", e.lifecycle)?;
            }
            writeln!(out)?;
        }
        Ok::<_, std::io::Error>(())
    })()
    .map_err(output::write_err)?;
    let shown = found.hits.len();
    let line = match (shown, found.total) {
        (0, 0) => "no entry matches".to_owned(),
        (0, total) => format!("{total} match, none from {}", offset + 1),
        (_, total) => format!("{}-{} of {total}", offset + 1, offset + shown),
    };
    output::note_line(&line);
    Ok(())
}

/// `registry reindex`: the index emptied and filled again from storage.
///
/// # Errors
/// The registry or the index cannot be read or written (exit 2).
pub fn reindex(args: ReindexArgs, settings: &Settings) -> Result<(), CliError> {
    let pipeline = open(settings, Needs::READ)?;
    let index = open_index(settings)?;
    let mut progress = Progress::new(args.format.format);
    let started = Instant::now();
    let done = registry_search::rebuild(&index, &pipeline, &mut scanned(&mut progress))
        .map_err(|e| CliError::config(e.to_string()))?;
    progress.finished();
    let seconds = started.elapsed().as_secs_f64();
    match args.format.format {
        Format::Json => output::json(&serde_json::json!({
            "indexed": done.upserted,
            "documents": index.docs(),
            "seconds": seconds,
        })),
        Format::Text => {
            output::note_line(&format!(
                "indexed {} entries in {seconds:.1} s ({} documents)",
                done.upserted,
                index.docs()
            ));
            Ok(())
        }
    }
}
