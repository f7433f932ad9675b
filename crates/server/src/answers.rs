//! The JSON of the entries `GET /v1/entries/{id}` answered last, kept so that reading the same
//! revision again costs a comparison instead of a serialization.
//!
//! An entry's JSON is a function of the entry alone, so an answer is reused only for an entry
//! *equal* to the one it was written from, compared field by field (a few hundred bytes of
//! `memcmp`): no key can go stale, whatever wrote the entry (an update, a purge, another server
//! on a shared storage, an import). The entry itself still comes from the pipeline's cache or
//! storage on every request; this only skips writing its JSON again.
//!
//! Why: a profile of the server answering gets (`perf record --call-graph dwarf`, 32 clients)
//! put 16 % of its samples in `Entry::serialize` (most of it escaping the config's text), the
//! largest part of a get after the socket's own work. The figures before and after are in the
//! "Serving" section of ARCHITECTURE.md.
//!
//! The table is a hash map in [`SHARDS`] shards, each behind its own mutex and holding its
//! share of `[serve] answer_cache_bytes`; a new answer that does not fit removes others, the
//! first the map iterates (an order set by the ids' hashes: random eviction, which needs no
//! bookkeeping on a hit). A general cache (mini-moka, as the `cache-moka` plugin uses) keeps
//! frequency sketches and runs housekeeping on reads, which the same profile put at 4.6 % of a
//! get: the pipeline's cache already decides which entries are worth keeping, and an answer
//! is only worth keeping beside them.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use registry_core::{Entry, EntryId};

/// Shards of the table: requests on different threads rarely wait for one another.
pub const SHARDS: usize = 16;

/// One entry and its JSON.
struct Answer {
    entry: Entry,
    json: Bytes,
}

impl Answer {
    /// What it is counted as: its JSON twice (the JSON, and the entry it was written from,
    /// whose text is about as long).
    fn bytes(&self) -> usize {
        2 * self.json.len()
    }
}

#[derive(Default)]
struct Shard {
    map: HashMap<EntryId, Arc<Answer>>,
    bytes: usize,
}

/// Answers kept, within a memory budget.
pub struct Answers {
    shards: Box<[Mutex<Shard>]>,
    /// Each shard's share of the budget.
    budget: usize,
    hasher: RandomState,
}

impl Answers {
    /// A table of at most `bytes` (0: none kept).
    pub fn new(bytes: u64) -> Answers {
        Answers {
            shards: (0..SHARDS).map(|_| Mutex::default()).collect(),
            budget: usize::try_from(bytes).unwrap_or(usize::MAX) / SHARDS,
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, id: &EntryId) -> &Mutex<Shard> {
        let at = usize::try_from(self.hasher.hash_one(id) % SHARDS as u64).unwrap_or(0);
        &self.shards[at]
    }

    /// The JSON of `entry`: the one written before when the entry is equal to the one it was
    /// written from, else written now (and kept when it fits).
    ///
    /// # Errors
    /// When the entry cannot be written as JSON.
    pub fn json(&self, entry: Entry) -> Result<Bytes, serde_json::Error> {
        if self.budget == 0 {
            return serde_json::to_vec(&entry).map(Bytes::from);
        }
        let shard = self.shard(&entry.header.id);
        let kept = shard
            .lock()
            .ok()
            .and_then(|s| s.map.get(&entry.header.id).cloned());
        if let Some(answer) = kept
            && answer.entry == entry
        {
            return Ok(answer.json.clone());
        }
        let json = Bytes::from(serde_json::to_vec(&entry)?);
        let answer = Arc::new(Answer {
            entry,
            json: json.clone(),
        });
        if answer.bytes() <= self.budget
            && let Ok(mut s) = shard.lock()
        {
            let id = answer.entry.header.id.clone();
            if let Some(old) = s.map.remove(&id) {
                s.bytes -= old.bytes();
            }
            while s.bytes + answer.bytes() > self.budget {
                let Some(victim) = s.map.keys().next().cloned() else {
                    break;
                };
                if let Some(old) = s.map.remove(&victim) {
                    s.bytes -= old.bytes();
                }
            }
            s.bytes += answer.bytes();
            s.map.insert(id, answer);
        }
        Ok(json)
    }

    /// Answers kept and the bytes they are counted as.
    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        self.shards.iter().fold((0, 0), |(n, b), s| {
            let s = s.lock().expect("a shard");
            (n + s.map.len(), b + s.bytes)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use registry_core::{ContentHash, Context, Fields, Fingerprint, Header, Lifecycle, Timestamp};

    fn entry(number: u64, title: &str) -> Entry {
        let header = Header {
            fields: Fields {
                scope: "SEC".into(),
                kind: "RULES".into(),
                variant: "LIVE".into(),
                status: "DEV".into(),
            },
            id: EntryId::new("SEC-RUL", number),
            version: "v2.9".into(),
        };
        Entry {
            hash: ContentHash([7; 32]),
            previous: None,
            purge: None,
            author: None,
            header,
            title: title.into(),
            context: Context::default(),
            config: "rule: \"x\"\n".into(),
            fingerprint: Fingerprint([1; 16]),
            revision: 1,
            created_at: Timestamp(1),
            updated_at: Timestamp(2),
            provenance: None,
            lifecycle: Lifecycle::Active,
        }
    }

    #[test]
    fn an_answer_is_reused_only_for_an_equal_entry() {
        let answers = Answers::new(1 << 20);
        let first = entry(1, "one");
        let json = answers.json(first.clone()).expect("json");
        assert_eq!(json, serde_json::to_vec(&first).expect("json"));
        // The same entry: the same bytes, shared.
        let again = answers.json(first.clone()).expect("json");
        assert_eq!(again.as_ptr(), json.as_ptr());

        // Any difference, even outside the hash (a time), writes it again, and replaces it.
        let mut changed = first.clone();
        changed.updated_at.0 += 1;
        let json = answers.json(changed.clone()).expect("json");
        assert_eq!(json, serde_json::to_vec(&changed).expect("json"));
        let mut renamed = changed.clone();
        renamed.title = "two".to_owned();
        let json = answers.json(renamed.clone()).expect("json");
        assert_eq!(json, serde_json::to_vec(&renamed).expect("json"));
        assert_eq!(answers.held(), (1, 2 * json.len()));
    }

    #[test]
    fn the_budget_bounds_what_is_kept() {
        let one = serde_json::to_vec(&entry(1, "t")).expect("json").len();
        // Room for about 4 answers per shard.
        let answers = Answers::new((SHARDS * 8 * one) as u64);
        for n in 0..1_000 {
            let e = entry(n, "t");
            let json = answers.json(e.clone()).expect("json");
            assert_eq!(json, serde_json::to_vec(&e).expect("json"));
        }
        let (kept, bytes) = answers.held();
        assert!(bytes <= SHARDS * 8 * one, "{bytes} bytes");
        assert!((SHARDS..=SHARDS * 5).contains(&kept), "{kept} kept");

        // Nothing kept at 0.
        let none = Answers::new(0);
        let a = none.json(entry(1, "t")).expect("json");
        let b = none.json(entry(1, "t")).expect("json");
        assert_eq!(a, b);
        assert_ne!(a.as_ptr(), b.as_ptr());
        assert_eq!(none.held(), (0, 0));
    }
}
