//! Searching: [`SearchQuery`] in, [`Found`] out.
//!
//! The text is parsed by tantivy's query parser in its lenient mode, which never refuses a
//! query: what does not parse is read as plain words. Words are combined with AND (a search
//! narrows as it grows, as people expect of a registry search box); quoted phrases,
//! `OR`, `-word` and `field:word` keep tantivy's meaning. The title weighs twice the context
//! and the config, so an entry named by the words ranks above one whose config merely mentions
//! them. Filters are terms on the header fields (compared case-insensitively, as the pipeline
//! compares them with the schema's spelling) that add nothing to the score.
//!
//! The text is tamed before parsing, because the parser recurses once per parenthesis and per
//! `NOT`, and 10,000 nested parentheses overflow an 8 MiB stack (300 levels of `-(` or 1,000
//! of `NOT` overflow the 2 MiB of a spawned thread, in a debug build): text nested deeper
//! than [`MAX_NESTING`] has its parentheses read as spaces, more than [`MAX_NESTING`] `NOT`s
//! are read as the word `not` (a stop word), and text over [`MAX_QUERY_BYTES`] is cut at a
//! character boundary (no one types that much into a search box, and each word is a clause
//! the search evaluates).

use tantivy::collector::{Count, TopDocs};
use tantivy::query::{AllQuery, BooleanQuery, ConstScoreQuery, Occur, Query, TermQuery};
use tantivy::schema::IndexRecordOption;
use tantivy::{DocAddress, Order, Term};

use registry_core::{EntryId, Field as HeaderField};

use crate::index::{SearchError, SearchErrorKind, SearchIndex};

/// The longest query text read; the rest is ignored.
pub const MAX_QUERY_BYTES: usize = 1024;

/// The deepest parenthesis nesting parsed as such.
pub const MAX_NESTING: usize = 16;

/// A search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SearchQuery {
    /// The query text (see the module doc). Empty: every entry passing the filters, in id
    /// order.
    pub text: String,
    /// Only entries of this scope.
    pub scope: Option<String>,
    /// Only entries of one of these scopes (a token limited to them); every scope when empty.
    pub scopes: Vec<String>,
    /// Only entries of this type (the header's `type`).
    pub kind: Option<String>,
    /// Only entries of this variant.
    pub variant: Option<String>,
    /// Only entries of this status.
    pub status: Option<String>,
    /// Whether retired and merged entries are searched too.
    pub include_retired: bool,
    /// At most this many hits; 0 gives none, only [`Found::total`].
    pub limit: usize,
    /// Hits skipped before the first returned, for paging.
    pub offset: usize,
}

/// What a search found.
#[derive(Debug, Clone, PartialEq)]
pub struct Found {
    /// The hits of the page asked for, best first (or in id order for an empty text).
    pub hits: Vec<Hit>,
    /// How many documents match in all: an exact count, not an estimate.
    pub total: u64,
}

/// One entry found.
#[derive(Debug, Clone, PartialEq)]
pub struct Hit {
    /// The entry's id.
    pub id: EntryId,
    /// The revision the index holds; storage may have a later one.
    pub revision: u32,
    /// Its BM25 score (0 in a search without text). Equal scores come in index order, which
    /// is stable while the index does not change.
    pub score: f32,
}

/// `text` made safe for the parser (see the module doc).
pub(crate) fn tame(text: &str) -> std::borrow::Cow<'_, str> {
    let mut cut = text.len().min(MAX_QUERY_BYTES);
    while !text.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut text = std::borrow::Cow::Borrowed(&text[..cut]);
    let mut depth = 0usize;
    let mut deepest = 0usize;
    for c in text.chars() {
        match c {
            '(' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if deepest > MAX_NESTING {
        text = text.replace(['(', ')'], " ").into();
    }
    // `NOT` nests too: each one is a level of the parser's recursion.
    if text.matches("NOT").count() > MAX_NESTING {
        text = text.replace("NOT", "not").into();
    }
    text
}

impl SearchIndex {
    /// The hits of a query, ranked by BM25 (see the module doc), and how many match in all.
    /// Retired and merged entries are left out unless [`SearchQuery::include_retired`]. An
    /// empty (or blank) text lists the entries passing the filters in id order; with no filter
    /// either, every active entry (every entry, with `include_retired`).
    ///
    /// # Errors
    /// When the index cannot be read.
    pub fn search(&self, query: &SearchQuery) -> Result<Found, SearchError> {
        let searcher = self.reader.searcher();
        let f = &self.fields;
        let text = query.text.trim();
        let mut clauses: Vec<(Occur, Box<dyn Query>)> = Vec::with_capacity(6);
        if text.is_empty() {
            clauses.push((Occur::Must, Box::new(AllQuery)));
        } else {
            let (parsed, _unparsed) = self.parser.parse_query_lenient(&tame(text));
            clauses.push((Occur::Must, parsed));
        }
        let filters = [
            (HeaderField::Scope, &query.scope),
            (HeaderField::Type, &query.kind),
            (HeaderField::Variant, &query.variant),
            (HeaderField::Status, &query.status),
        ];
        let exact = |field, value: &str| -> Box<dyn Query> {
            let term = TermQuery::new(
                Term::from_field_text(field, value),
                IndexRecordOption::Basic,
            );
            Box::new(ConstScoreQuery::new(Box::new(term), 0.0))
        };
        for (field, value) in filters {
            if let Some(value) = value {
                clauses.push((Occur::Must, exact(f.header(field), &value.to_lowercase())));
            }
        }
        if !query.scopes.is_empty() {
            let any: Vec<(Occur, Box<dyn Query>)> = query
                .scopes
                .iter()
                .map(|scope| {
                    (
                        Occur::Should,
                        exact(f.header(HeaderField::Scope), &scope.to_lowercase()),
                    )
                })
                .collect();
            clauses.push((Occur::Must, Box::new(BooleanQuery::new(any))));
        }
        if !query.include_retired {
            // Excluding the few retired and merged entries costs a walk of their short posting
            // lists; requiring `active`, which nearly every entry holds, doubled the time of a
            // broad query over 1,000,000 entries (55 ms to 22 ms without it).
            clauses.push((Occur::MustNot, exact(f.lifecycle, "retired")));
            clauses.push((Occur::MustNot, exact(f.lifecycle, "merged")));
        }
        let tantivy_query = BooleanQuery::new(clauses);

        let read_err = |e: tantivy::TantivyError| {
            SearchError::new(
                SearchErrorKind::Read,
                &self.dir,
                format!("cannot search: {e}"),
            )
        };
        // tantivy sizes its heap by limit + offset: neither may exceed what the index holds.
        let docs = usize::try_from(searcher.num_docs()).unwrap_or(usize::MAX);
        let limit = query.limit.min(docs.saturating_sub(query.offset));
        if limit == 0 {
            let total = searcher.search(&tantivy_query, &Count).map_err(read_err)?;
            return Ok(Found {
                hits: Vec::new(),
                total: total as u64,
            });
        }
        let page = TopDocs::with_limit(limit).and_offset(query.offset);
        let (scored, total): (Vec<(f32, DocAddress)>, usize) = if text.is_empty() {
            let ordered = page.order_by_string_fast_field("order", Order::Asc);
            let (docs, total) = searcher
                .search(&tantivy_query, &(ordered, Count))
                .map_err(read_err)?;
            (docs.into_iter().map(|(_, d)| (0.0, d)).collect(), total)
        } else {
            searcher
                .search(&tantivy_query, &(page, Count))
                .map_err(read_err)?
        };
        let addresses: Vec<DocAddress> = scored.iter().map(|(_, d)| *d).collect();
        let hits = self
            .read_hits(&searcher, &addresses)?
            .into_iter()
            .zip(scored)
            .map(|((id, revision), (score, _))| Hit {
                id,
                revision,
                score,
            })
            .collect();
        Ok(Found {
            hits,
            total: total as u64,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn taming() {
        assert_eq!(tame("ssh (brute force)"), "ssh (brute force)");
        let deep = format!("{}x{}", "(".repeat(17), ")".repeat(17));
        assert_eq!(tame(&deep).trim(), "x");
        assert_eq!(tame("a NOT b NOT c"), "a NOT b NOT c");
        assert!(!tame(&"NOT ".repeat(17)).contains("NOT"));
        let long = "é".repeat(MAX_QUERY_BYTES);
        let tamed = tame(&long);
        assert!(tamed.len() <= MAX_QUERY_BYTES && tamed.len() >= MAX_QUERY_BYTES - 1);
    }
}
