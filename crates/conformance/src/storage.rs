//! The conformance suite of [`Storage`]: the contracts written on the trait, checked on fresh
//! stores in temporary data directories.
//!
//! Each check builds its own store, so one broken rule does not hide behind another. The checks
//! run for a one-shard registry and for a shard of a three-shard one, so the allocation rule is
//! tested where it differs: a store that numbers densely (`ids = dense` in its metadata) must
//! refuse to allocate outside shard 0 and keep the locations shard 0 records; one that numbers
//! interleaved must hand out shard 2's residue. A store is also built again on the same directory after
//! the first is dropped ("reopened"), which is where numbers handed out twice and entries that
//! were never made durable show up.
//!
//! `restore` is checked last, so a store that does not implement it (the trait's default refuses)
//! fails on it and on nothing else.

use std::collections::HashMap;

use registry_core::layout::{DENSE, FORMAT, IDS, SHARDS};
use registry_core::{
    Entry, EntryId, ErrorCode, Fields, Fingerprint, Inserted, ListQuery, Meta, Restored, Schema,
    Sequence, Setup, StageError, StageKind, StageResult, Storage,
};

use crate::sample::{self, revise};
use crate::scratch::ScratchDir;
use crate::{Violation, appended, ok, one_each, sampled};

const STAGE: StageKind = StageKind::Storage;

/// Builds a store for a setup, as the storage's constructor does: an error is the
/// constructor's.
pub type Make<'a> = dyn Fn(&Setup) -> StageResult<Box<dyn Storage>> + 'a;

/// Builds a store the suite expects to build.
fn open(make: &Make<'_>, setup: &Setup) -> Result<Box<dyn Storage>, Violation> {
    match make(setup) {
        Ok(s) => Ok(s),
        Err(e) => fail!(
            STAGE,
            "building shard {} of {} ({}) failed: {}",
            setup.shard,
            setup.shards,
            if setup.create.is_some() {
                "creating it if needed"
            } else {
                "it exists"
            },
            e.message
        ),
    }
}

/// Runs every check against stores built by `make`.
///
/// `make` builds a new store for the given setup; the suite chooses the data directories (fresh
/// temporary ones, removed afterwards) and builds a store again on a directory it used before to
/// check what survives. It drops a store before building another on the same directory and
/// shard, and holds several shards of one directory open at once.
///
/// # Errors
/// A [`Violation`] naming the rule, at the first contract the store breaks (`make` failing where
/// the suite expects a store is one), or saying the suite cannot run when it cannot create a
/// temporary directory.
pub fn check(make: &Make<'_>) -> Result<(), Violation> {
    for (shard, shards) in [(0, 1), (2, 3)] {
        misses(
            &*open(make, &Scratch::new()?.setup(shard, shards))?,
            shard,
            shards,
        )?;
        allocation(make, shard, shards)?;
        insert_and_read(make, shard, shards)?;
        updates(make, shard, shards)?;
        listing(make, shard, shards)?;
        reopen(make, shard, shards)?;
    }
    shards_share_a_data_dir(make)?;
    creation_and_metadata(make)?;
    sequences(make)?;
    purging(make)?;
    for (shard, shards) in [(0, 1), (2, 3)] {
        restoring(make, shard, shards)?;
    }
    Ok(())
}

/// Runs a short subset of [`check`]: lookups on an empty store, allocation across a reopen, and
/// inserts read back, for a one-shard registry. It shows the store works at all, in well under
/// a second; [`check`] is what shows it keeps every contract.
///
/// # Errors
/// As [`check`], at the first contract the store breaks in the subset.
pub fn smoke(make: &Make<'_>) -> Result<(), Violation> {
    misses(&*open(make, &Scratch::new()?.setup(0, 1))?, 0, 1)?;
    allocation(make, 0, 1)?;
    insert_and_read(make, 0, 1)
}

/// A temporary data directory, removed when dropped.
struct Scratch {
    dir: ScratchDir,
}

impl Scratch {
    fn new() -> Result<Scratch, Violation> {
        match ScratchDir::new() {
            Ok(dir) => Ok(Scratch { dir }),
            Err(e) => Err(Violation::cannot_run(
                STAGE,
                format!("the suite needs a temporary directory to work in: {e}"),
            )),
        }
    }

    /// The setup of a shard the suite creates if it does not exist yet.
    fn setup(&self, shard: u32, shards: u32) -> Setup {
        Setup {
            schema: Schema::default(),
            data_dir: self.dir.path().to_path_buf(),
            config_dir: self.dir.path().to_path_buf(),
            shard,
            shards,
            create: Some(Meta::new()),
        }
    }
}

fn sec() -> Fields<String> {
    sample::fields("SEC", "RULES", "LIVE", "REQUIRED")
}

fn gov() -> Fields<String> {
    sample::fields("GOV", "RULES", "DEV", "LIVE")
}

fn ops() -> Fields<String> {
    sample::fields("OPS", "SCRIPT", "COMPACT", "STANDARD")
}

/// The first revision of entry `number`, as [`sample::entry`] makes it.
fn entry(fields: Fields<String>, number: u64, title: &str) -> Result<Entry, Violation> {
    sampled(STAGE, sample::try_entry(fields, number, title))
}

/// An entry no check stores, to fill output vectors with.
fn filler() -> Result<Entry, Violation> {
    entry(sec(), 999_999, "filler")
}

/// Every number one shard handed out, to check each new one against the allocation rule.
///
/// The rule depends on the numbering the store reports ([`IDS`]): interleaved, shard `s` of
/// `K` hands out increasing numbers `n` with `(n - 1) % K == s`; dense, shard 0 hands out
/// `1, 2, 3, …` per prefix and every other shard refuses (code `Invalid`), and the suite then
/// numbers that shard's entries itself, as the pipeline does from shard 0.
struct Allocations {
    shard: u32,
    shards: u32,
    dense: bool,
    last: HashMap<String, u64>,
}

impl Allocations {
    /// The allocations of `storage`, shard `shard` of `shards`, numbered as its metadata says.
    fn of(storage: &dyn Storage, shard: u32, shards: u32) -> Allocations {
        Allocations {
            shard,
            shards,
            dense: dense(storage),
            last: HashMap::new(),
        }
    }

    /// Whether the shard hands out numbers itself.
    fn allocates(&self) -> bool {
        !self.dense || self.shard == 0
    }

    fn take(&mut self, storage: &dyn Storage, prefixes: &[&str]) -> Result<Vec<u64>, Violation> {
        let prefixes: Vec<String> = prefixes.iter().map(|&p| p.to_owned()).collect();
        let (s, k) = (self.shard, self.shards);
        if !self.allocates() {
            if !prefixes.is_empty() {
                let refused = storage.allocate(&prefixes, &mut Vec::new());
                ensure!(
                    STAGE,
                    refused
                        .as_ref()
                        .is_err_and(|e| e.code == ErrorCode::Invalid),
                    "allocate on shard {s} of {k} of a dense registry (`ids = dense`) must fail \
                     with code Invalid: shard 0 numbers every id; got {refused:?}"
                );
            }
            return Ok(prefixes
                .iter()
                .map(|prefix| {
                    let last = self.last.entry(prefix.clone()).or_insert(0);
                    *last += 1;
                    *last
                })
                .collect());
        }
        let numbers = one_each(STAGE, "allocate", prefixes.len(), 0, |out| {
            storage.allocate(&prefixes, out)
        })?;
        // Shard 0 of a dense registry numbers consecutively within a call.
        let mut in_call: HashMap<&str, u64> = HashMap::new();
        for (prefix, &n) in prefixes.iter().zip(&numbers) {
            if !self.dense {
                ensure!(
                    STAGE,
                    n >= 1 && (n - 1) % u64::from(k) == u64::from(s),
                    "allocate gave {prefix}-{n} to shard {s} of {k}: a shard hands out only \
                     numbers n with (n - 1) % {k} == {s}"
                );
            }
            let last = self.last.entry(prefix.clone()).or_insert(0);
            ensure!(
                STAGE,
                n > *last,
                "allocate gave {prefix}-{n} after {prefix}-{last}: numbers increase per prefix \
                 and are never handed out twice, across batches and after the store is reopened"
            );
            let previous = in_call.insert(prefix, n);
            ensure!(
                STAGE,
                !self.dense || previous.is_none_or(|p| n == p + 1),
                "allocate gave {prefix}-{n} after {prefix}-{last} in one call: shard 0 of a \
                 dense registry hands out consecutive numbers per prefix, in the order asked"
            );
            *last = n;
        }
        Ok(numbers)
    }
}

/// Whether a store reports the dense numbering ([`IDS`] = [`DENSE`]); a store whose metadata
/// cannot be read numbers interleaved.
fn dense(storage: &dyn Storage) -> bool {
    let mut meta = Meta::new();
    storage.meta(&mut meta).is_ok() && meta.get(IDS).map(String::as_str) == Some(DENSE)
}

/// `get`, and `get_reusing` of the same ids given the entries found to decode into (taken from
/// the end, so each id lands in another entry's strings), which must answer the same.
fn get(storage: &dyn Storage, ids: &[EntryId]) -> Result<Vec<Option<Entry>>, Violation> {
    let got = one_each(STAGE, "get", ids.len(), None, |out| storage.get(ids, out))?;
    let mut spare: Vec<Entry> = got.iter().flatten().cloned().collect();
    let reused = one_each(STAGE, "get_reusing", ids.len(), None, |out| {
        storage.get_reusing(ids, out, &mut spare)
    })?;
    ensure!(
        STAGE,
        reused == got,
        "get_reusing must answer what get answers, whatever the spare entries held"
    );
    let mut calls = 0;
    let mut lent = Vec::new();
    let answered = storage.get_lent(ids, &mut spare, &mut |views| {
        calls += 1;
        lent = views
            .iter()
            .map(|v| v.map(|v| v.to_entry()).transpose())
            .collect::<Result<_, _>>()
            .map_err(|e| {
                StageError::new(ErrorCode::Internal, format!("lent a bad context: {e}"))
            })?;
        Ok(())
    });
    ok(STAGE, "get_lent", answered)?;
    ensure!(
        STAGE,
        calls == 1,
        "get_lent must lend its entries exactly once per call, not {calls} times"
    );
    ensure!(
        STAGE,
        lent == got,
        "get_lent must lend what get answers, one value per id in order"
    );
    Ok(got)
}

fn find(storage: &dyn Storage, fps: &[Fingerprint]) -> Result<Vec<Option<Entry>>, Violation> {
    one_each(STAGE, "find", fps.len(), None, |out| storage.find(fps, out))
}

fn insert(storage: &dyn Storage, entries: &[Entry]) -> Result<Vec<Inserted>, Violation> {
    let filler = Inserted::Existing(filler()?);
    one_each(STAGE, "insert", entries.len(), filler, |out| {
        storage.insert(entries, out)
    })
}

/// The outcome of each update: `None` for success, else the error code.
fn update(storage: &dyn Storage, entries: &[Entry]) -> Result<Vec<Option<ErrorCode>>, Violation> {
    Ok(one_each(STAGE, "update", entries.len(), Ok(()), |out| {
        storage.update(entries, out)
    })?
    .into_iter()
    .map(|r| r.err().map(|e| e.code))
    .collect())
}

/// The outcome of each restore: `Ok` with what was done, else the error code.
fn restore(
    storage: &dyn Storage,
    histories: &[Vec<Entry>],
) -> Result<Vec<Result<Restored, ErrorCode>>, Violation> {
    Ok(one_each(
        STAGE,
        "restore",
        histories.len(),
        Ok(Restored::Unchanged),
        |out| storage.restore(histories, out),
    )?
    .into_iter()
    .map(|r| r.map_err(|e| e.code))
    .collect())
}

fn history(storage: &dyn Storage, id: &EntryId) -> Result<Vec<Entry>, Violation> {
    appended(STAGE, "history", filler()?, |out| storage.history(id, out))
}

fn list(storage: &dyn Storage, query: &ListQuery) -> Result<Vec<Entry>, Violation> {
    appended(STAGE, "list", filler()?, |out| storage.list(query, out))
}

fn everything() -> ListQuery {
    ListQuery {
        limit: usize::MAX,
        ..ListQuery::default()
    }
}

fn ids(entries: &[Entry]) -> Vec<String> {
    entries.iter().map(|e| e.header.id.to_string()).collect()
}

fn misses(storage: &dyn Storage, shard: u32, shards: u32) -> Result<(), Violation> {
    let unknown = [EntryId::new("SEC-RUL", 1), EntryId::new("GOV-RUL", 2)];
    ensure!(
        STAGE,
        get(storage, &unknown)? == [None, None],
        "get of ids never stored must give None for each"
    );
    ensure!(
        STAGE,
        find(storage, &[Fingerprint([1; 16]), Fingerprint([2; 16])])? == [None, None],
        "find of fingerprints never stored must give None for each"
    );
    ensure!(
        STAGE,
        history(storage, &unknown[0])?.is_empty(),
        "history of an id never stored must push nothing"
    );
    ensure!(
        STAGE,
        list(storage, &everything())?.is_empty(),
        "list on an empty store must push nothing"
    );
    // Empty batches are legal and push nothing.
    get(storage, &[])?;
    find(storage, &[])?;
    insert(storage, &[])?;
    update(storage, &[])?;
    Allocations::of(storage, shard, shards).take(storage, &[])?;
    Ok(())
}

/// `purge` (optional: a storage may refuse with code `Invalid`): an older revision and the
/// latest one replaced as given, the history still verifying; a purge that changes more than
/// the text is refused and changes nothing.
fn purging(make: &Make<'_>) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let storage = open(make, &scratch.setup(0, 1))?;
    let storage = &*storage;
    let n = Allocations::of(storage, 0, 1).take(storage, &["SEC-RUL"])?;
    let a = entry(sec(), n[0], "block ssh with token hunter2")?;
    insert(storage, std::slice::from_ref(&a))?;
    let a2 = revise(&a, "DEPRECATED");
    update(storage, std::slice::from_ref(&a2))?;
    let purged = |e: &Entry| {
        let mut p = e.clone();
        p.title = registry_core::PURGED.to_owned();
        p.config = p.config.replace("hunter2", registry_core::PURGED);
        p.purge = Some(registry_core::Purge {
            original: e.hash,
            fields: "title".to_owned(),
            reason: "a token pasted by mistake".to_owned(),
            at: registry_core::Timestamp(e.updated_at.0 + 5000),
        });
        p.hash = p.content_hash();
        p
    };
    let (p1, p2) = (purged(&a), purged(&a2));
    match storage.purge(&p1) {
        Err(e) if e.code == ErrorCode::Invalid && e.message.contains("cannot purge") => {
            return Ok(());
        }
        Err(e) => {
            return Err(Violation::contract(
                STAGE,
                format!("purge of revision 1 failed: {e}"),
            ));
        }
        Ok(()) => {}
    }
    let mut bad = purged(&a2);
    bad.header.fields.status = "REQUIRED".to_owned();
    bad.hash = bad.content_hash();
    ensure!(
        STAGE,
        storage
            .purge(&bad)
            .is_err_and(|e| e.code == ErrorCode::Invalid),
        "purge must refuse a revision that changes more than its text (code Invalid)"
    );
    ensure!(
        STAGE,
        history(storage, &a.header.id)? == [p1.clone(), a2.clone()],
        "history must give the purged revision 1 as given and revision 2 as it was"
    );
    storage
        .purge(&p2)
        .map_err(|e| Violation::contract(STAGE, format!("purge of the latest failed: {e}")))?;
    let after = history(storage, &a.header.id)?;
    ensure!(
        STAGE,
        after == [p1, p2.clone()] && registry_core::integrity::verify_history(&after).is_ok(),
        "history must give both purged revisions, still verifying as a chain"
    );
    ensure!(
        STAGE,
        get(storage, std::slice::from_ref(&a.header.id))? == [Some(p2)],
        "get must give the purged latest revision"
    );
    Ok(())
}

/// `sequences` (optional: a storage may refuse with code `Invalid`): what is allocated shows,
/// a raise is kept across a reopen, and nothing up to a raised mark is allocated again.
fn sequences(make: &Make<'_>) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let setup = scratch.setup(0, 1);
    let storage = open(make, &setup)?;
    let read = |storage: &dyn Storage, raise: &[Sequence]| {
        let mut out = Vec::new();
        match storage.sequences(raise, &mut out) {
            Ok(()) => Ok(Some(out)),
            Err(e) if e.code == ErrorCode::Invalid && raise.is_empty() => Ok(None),
            Err(e) => Err(Violation::contract(STAGE, format!("sequences failed: {e}"))),
        }
    };
    let Some(empty) = read(&*storage, &[])? else {
        return Ok(());
    };
    if !empty.is_empty() {
        return Err(Violation::contract(
            STAGE,
            format!("a new store shows sequences: {empty:?}"),
        ));
    }
    let mut numbers = Vec::new();
    storage
        .allocate(&["SEC-RUL".to_owned(), "SEC-RUL".to_owned()], &mut numbers)
        .map_err(|e| Violation::contract(STAGE, format!("allocate failed: {e}")))?;
    let highest = numbers.iter().copied().max().unwrap_or(0);
    let shown = read(&*storage, &[])?.unwrap_or_default();
    if !shown
        .iter()
        .any(|s| s.prefix == "SEC-RUL" && s.last >= highest)
    {
        return Err(Violation::contract(
            STAGE,
            format!(
                "sequences do not show SEC-RUL at {highest} or above once allocated: {shown:?}"
            ),
        ));
    }
    let mark = |prefix: &str, last| Sequence {
        prefix: prefix.to_owned(),
        last,
    };
    let raised = read(&*storage, &[mark("SEC-RUL", 500), mark("GOV-RUL", 7)])?.unwrap_or_default();
    if raised != [mark("GOV-RUL", 7), mark("SEC-RUL", 500)] {
        return Err(Violation::contract(
            STAGE,
            format!(
                "sequences raised to GOV-RUL 7 and SEC-RUL 500 show {raised:?}, in prefix order"
            ),
        ));
    }
    drop(storage);
    let storage = open(make, &setup)?;
    numbers.clear();
    storage
        .allocate(&["SEC-RUL".to_owned(), "GOV-RUL".to_owned()], &mut numbers)
        .map_err(|e| Violation::contract(STAGE, format!("allocate failed: {e}")))?;
    if numbers[..] != [501, 8] {
        return Err(Violation::contract(
            STAGE,
            format!(
                "after raising SEC-RUL to 500 and GOV-RUL to 7 and reopening, allocate gave {numbers:?}, not [501, 8]"
            ),
        ));
    }
    Ok(())
}

fn allocation(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let setup = scratch.setup(shard, shards);
    let storage = open(make, &setup)?;
    let mut issued = Allocations::of(&*storage, shard, shards);
    issued.take(&*storage, &["SEC-RUL", "GOV-RUL", "SEC-RUL", "SEC-RUL"])?;
    issued.take(&*storage, &["GOV-RUL"])?;
    issued.take(&*storage, &["SEC-RUL", "ETL-MUL"])?;
    drop(storage);
    let storage = open(make, &setup)?;
    issued.take(&*storage, &["GOV-RUL", "SEC-RUL", "ETL-MUL"])?;
    Ok(())
}

fn insert_and_read(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let storage = open(make, &scratch.setup(shard, shards))?;
    let storage = &*storage;
    let n = Allocations::of(storage, shard, shards).take(
        storage,
        &["SEC-RUL", "SEC-RUL", "SEC-RUL", "SEC-RUL", "GOV-RUL"],
    )?;
    let a = entry(sec(), n[0], "block ssh from the internet")?;
    let c = entry(sec(), n[1], "rotate the signing keys")?;
    // Same title, fields and context, so the same fingerprint, under other ids.
    let c_again = entry(sec(), n[2], "rotate the signing keys")?;
    let a_again = entry(sec(), n[3], "block ssh from the internet")?;
    let b = entry(gov(), n[4], "review access every quarter")?;

    ensure!(
        STAGE,
        insert(storage, &[a.clone(), b.clone()])? == [Inserted::Created, Inserted::Created],
        "insert of entries with new fingerprints must give Created for each"
    );
    let unknown = EntryId::new("SEC-RUL", n[0] + 1000 * u64::from(shards));
    ensure!(
        STAGE,
        get(
            storage,
            &[a.header.id.clone(), unknown, b.header.id.clone()]
        )? == [Some(a.clone()), None, Some(b.clone())],
        "get must give back each stored entry exactly as inserted, and None for an unknown id, \
         in the order asked"
    );
    ensure!(
        STAGE,
        find(
            storage,
            &[b.fingerprint, Fingerprint([0xab; 16]), a.fingerprint]
        )? == [Some(b.clone()), None, Some(a.clone())],
        "find must give the entry registered with each fingerprint, and None for an unknown one, \
         in the order asked"
    );
    let outcome = insert(storage, &[c.clone(), c_again.clone(), a_again.clone()])?;
    ensure!(
        STAGE,
        outcome
            == [
                Inserted::Created,
                Inserted::Existing(c.clone()),
                Inserted::Existing(a.clone())
            ],
        "insert must store an entry whose fingerprint is new and give Existing with the kept \
         entry for one already stored, including one stored earlier in the same batch; got \
         {outcome:?}"
    );
    ensure!(
        STAGE,
        get(
            storage,
            &[
                c.header.id.clone(),
                c_again.header.id.clone(),
                a_again.header.id.clone()
            ]
        )? == [Some(c.clone()), None, None],
        "an entry reported Existing must not be stored under its own id"
    );
    ensure!(
        STAGE,
        history(storage, &a.header.id)? == [a.clone()],
        "history of a new entry must be its one revision"
    );
    ensure!(
        STAGE,
        ids(&list(storage, &everything())?).len() == 3,
        "list must give every stored entry once (3 stored)"
    );
    Ok(())
}

fn updates(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let storage = open(make, &scratch.setup(shard, shards))?;
    let storage = &*storage;
    let n = Allocations::of(storage, shard, shards)
        .take(storage, &["SEC-RUL", "SEC-RUL", "SEC-RUL"])?;
    let a = entry(sec(), n[0], "block ssh from the internet")?;
    let b = entry(sec(), n[1], "rotate the signing keys")?;
    let ghost = entry(sec(), n[2], "never stored")?;
    insert(storage, &[a.clone(), b.clone()])?;

    let a2 = revise(&a, "DEPRECATED");
    ensure!(
        STAGE,
        update(storage, std::slice::from_ref(&a2))? == [None],
        "update of a stored entry with revision one more than the stored one must succeed"
    );
    ensure!(
        STAGE,
        get(storage, std::slice::from_ref(&a.header.id))? == [Some(a2.clone())],
        "get must give the latest revision after an update"
    );
    ensure!(
        STAGE,
        find(storage, &[a.fingerprint])? == [Some(a2.clone())],
        "find must give the latest revision of the entry registered with a fingerprint"
    );
    ensure!(
        STAGE,
        history(storage, &a.header.id)? == [a.clone(), a2.clone()],
        "history must give every revision, oldest first"
    );

    let a4 = revise(&revise(&a2, "LIVE"), "TEST");
    let stale = update(storage, &[a2.clone(), a4])?;
    ensure!(
        STAGE,
        stale == [Some(ErrorCode::Conflict), Some(ErrorCode::Conflict)],
        "update with a revision other than one more than the stored one (here 2 and 4 over 2) \
         must give Conflict; got {stale:?}"
    );
    let b2 = revise(&b, "DEPRECATED");
    let mixed = update(storage, &[b2.clone(), revise(&ghost, "LIVE")])?;
    ensure!(
        STAGE,
        mixed == [None, Some(ErrorCode::NotFound)],
        "update must give one outcome per entry: Ok for a good one, NotFound for an id never \
         stored; got {mixed:?}"
    );
    ensure!(
        STAGE,
        get(storage, &[b.header.id.clone(), ghost.header.id.clone()])? == [Some(b2), None],
        "update must store the entries that succeed in a batch and not the others"
    );
    ensure!(
        STAGE,
        history(storage, &a.header.id)? == [a, a2],
        "a failed update must not add a revision"
    );
    Ok(())
}

fn listing(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let storage = open(make, &scratch.setup(shard, shards))?;
    let storage = &*storage;
    let mut issued = Allocations::of(storage, shard, shards);
    // Enough numbers to get one with three digits and one with four: ids order by number, not
    // by their text (SEC-RUL-1000 comes after SEC-RUL-999).
    let sec_numbers = issued.take(storage, &["SEC-RUL"; 1000])?;
    let low = sec_numbers
        .iter()
        .copied()
        .filter(|&n| n < 1000)
        .max()
        .unwrap_or(sec_numbers[0]);
    let high = sec_numbers
        .iter()
        .copied()
        .find(|&n| n >= 1000)
        .unwrap_or(sec_numbers[sec_numbers.len() - 1]);
    let n = issued.take(storage, &["GOV-RUL", "OPS-SCR"])?;
    let sec_low = entry(sec(), low, "block ssh from the internet")?;
    let sec_high = entry(sec(), high, "rotate the signing keys")?;
    let g = entry(gov(), n[0], "review access every quarter")?;
    let o = entry(ops(), n[1], "restart the queue workers")?;
    insert(
        storage,
        &[sec_high.clone(), o.clone(), sec_low.clone(), g.clone()],
    )?;
    let o2 = revise(&o, "DEPRECATED");
    update(storage, std::slice::from_ref(&o2))?;

    let query = |f: fn(&mut ListQuery)| {
        let mut q = everything();
        f(&mut q);
        q
    };
    let cases: [(&str, ListQuery, Vec<&Entry>); 11] = [
        (
            "every entry, latest revision, in id order (prefix, then number)",
            everything(),
            vec![&g, &o2, &sec_low, &sec_high],
        ),
        (
            "at most `limit` entries, the first in id order",
            query(|q| q.limit = 2),
            vec![&g, &o2],
        ),
        ("nothing when `limit` is 0", query(|q| q.limit = 0), vec![]),
        (
            "only entries after `after`",
            ListQuery {
                after: Some(g.header.id.clone()),
                ..everything()
            },
            vec![&o2, &sec_low, &sec_high],
        ),
        (
            "nothing after the last id",
            ListQuery {
                after: Some(sec_high.header.id.clone()),
                ..everything()
            },
            vec![],
        ),
        (
            "entries after an id that is not stored",
            ListQuery {
                after: Some(EntryId::new("OPS-SCR", 0)),
                ..everything()
            },
            vec![&o2, &sec_low, &sec_high],
        ),
        (
            "only entries whose field equals the filter",
            query(|q| q.filter.scope = Some("SEC".into())),
            vec![&sec_low, &sec_high],
        ),
        (
            "the filter applies to the latest revision",
            query(|q| q.filter.status = Some("DEPRECATED".into())),
            vec![&o2],
        ),
        (
            "an earlier revision's value does not match",
            query(|q| q.filter.status = Some("STANDARD".into())),
            vec![],
        ),
        (
            "filters combine",
            query(|q| {
                q.filter.scope = Some("SEC".into());
                q.filter.kind = Some("SCRIPT".into());
            }),
            vec![],
        ),
        (
            "filter, `after` and `limit` together",
            ListQuery {
                filter: Fields {
                    scope: Some("SEC".into()),
                    ..Fields::default()
                },
                after: Some(sec_low.header.id.clone()),
                limit: 5,
            },
            vec![&sec_high],
        ),
    ];
    for (rule, query, want) in cases {
        let got = list(storage, &query)?;
        let want: Vec<Entry> = want.into_iter().cloned().collect();
        ensure!(
            STAGE,
            got == want,
            "list must give {rule}: for {query:?} expected {:?}, got {:?}",
            ids(&want),
            ids(&got)
        );
    }
    Ok(())
}

fn reopen(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let setup = scratch.setup(shard, shards);
    let storage = open(make, &setup)?;
    let mut issued = Allocations::of(&*storage, shard, shards);
    let n = issued.take(&*storage, &["SEC-RUL", "SEC-RUL"])?;
    let a = entry(sec(), n[0], "block ssh from the internet")?;
    let b = entry(sec(), n[1], "rotate the signing keys")?;
    insert(&*storage, &[a.clone(), b.clone()])?;
    let a2 = revise(&a, "DEPRECATED");
    update(&*storage, std::slice::from_ref(&a2))?;
    drop(storage);

    let storage = open(make, &setup)?;
    let storage = &*storage;
    ensure!(
        STAGE,
        get(storage, &[a.header.id.clone(), b.header.id.clone()])?
            == [Some(a2.clone()), Some(b.clone())],
        "entries inserted and updated must still be there when the store is built again on the \
         same data directory"
    );
    ensure!(
        STAGE,
        history(storage, &a.header.id)? == [a.clone(), a2.clone()],
        "history must survive reopening the store"
    );
    ensure!(
        STAGE,
        find(storage, &[a.fingerprint])? == [Some(a2.clone())],
        "the fingerprint index must survive reopening the store"
    );
    ensure!(
        STAGE,
        list(storage, &everything())? == [a2.clone(), b],
        "list must give the stored entries after reopening the store"
    );
    let n = issued.take(storage, &["SEC-RUL"])?;
    let a_again = entry(sec(), n[0], "block ssh from the internet")?;
    ensure!(
        STAGE,
        insert(storage, &[a_again])? == [Inserted::Existing(a2)],
        "insert must recognize a fingerprint stored before the store was reopened"
    );
    Ok(())
}

fn shards_share_a_data_dir(make: &Make<'_>) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let shards = 3;
    // A registry opens all its shards at once, on one data directory.
    let stores: Vec<Box<dyn Storage>> = (0..shards)
        .map(|s| open(make, &scratch.setup(s, shards)))
        .collect::<Result<_, Violation>>()?;
    let dense = dense(&*stores[0]);
    let mut from_zero = Allocations::of(&*stores[0], 0, shards);
    let mut all: Vec<(Box<dyn Storage>, Vec<u64>, Entry)> = Vec::new();
    for (shard, storage) in stores.into_iter().enumerate() {
        // In a dense registry shard 0 numbers every shard's entries.
        let n = if dense {
            let zero: &dyn Storage = match all.first() {
                Some((first, _, _)) => &**first,
                None => &*storage,
            };
            from_zero.take(zero, &["SEC-RUL"; 4])?
        } else {
            Allocations::of(&*storage, shard as u32, shards).take(&*storage, &["SEC-RUL"; 4])?
        };
        let mine = entry(sec(), n[0], &format!("kept by shard {shard}"))?;
        insert(&*storage, std::slice::from_ref(&mine))?;
        all.push((storage, n, mine));
    }
    let mut numbers: Vec<u64> = all.iter().flat_map(|(_, n, _)| n.iter().copied()).collect();
    numbers.sort_unstable();
    numbers.dedup();
    ensure!(
        STAGE,
        numbers.len() == 12,
        "shards of one registry must never hand out the same number for a prefix"
    );
    for (shard, (storage, _, mine)) in all.iter().enumerate() {
        ensure!(
            STAGE,
            get(&**storage, std::slice::from_ref(&mine.header.id))? == [Some(mine.clone())],
            "shard {shard} of {shards}, open beside the others on one data directory, must keep \
             its own entries"
        );
    }
    if dense {
        locations(&*all[0].0, shards)?;
        for (shard, (storage, _, mine)) in all.iter().enumerate().skip(1) {
            let id = std::slice::from_ref(&mine.header.id);
            let place = storage.place(id, &[1]);
            let locate = storage.locate(id, &mut Vec::new());
            ensure!(
                STAGE,
                place.is_err_and(|e| e.code == ErrorCode::Invalid)
                    && locate.is_err_and(|e| e.code == ErrorCode::Invalid),
                "place and locate on shard {shard} of a dense registry must fail with code \
                 Invalid: shard 0 records where entries are"
            );
        }
    }
    Ok(())
}

/// Shard 0 of a dense registry of `shards` records durably where entries are, and a placed
/// number is never allocated.
fn locations(zero: &dyn Storage, shards: u32) -> Result<(), Violation> {
    let id = |n: u64| EntryId::new("OPS-SCR", n);
    // Far apart, so a store that keeps locations in blocks keeps them in several.
    let (a, b, c) = (id(3), id(4), id(10_000_007));
    let placed = zero.place(&[a.clone(), b.clone(), c.clone()], &[1, shards - 1, 2]);
    ensure!(
        STAGE,
        placed.is_ok(),
        "place on shard 0 of a dense registry must record the locations given; got {placed:?}"
    );
    let located = one_each(STAGE, "locate", 5, 0, |out| {
        zero.locate(&[a.clone(), b.clone(), c.clone(), id(5), id(1)], out)
    })?;
    ensure!(
        STAGE,
        located == [1, shards - 1, 2, 0, 0],
        "locate must give the shard place recorded for each id, and 0 for an id never placed; \
         got {located:?}"
    );
    let n = one_each(STAGE, "allocate", 1, 0, |out| {
        zero.allocate(&["OPS-SCR".to_owned()], out)
    })?;
    ensure!(
        STAGE,
        n == [c.number() + 1],
        "place must raise the prefix's sequence to the highest number placed: after placing \
         {c}, allocate gave OPS-SCR-{}",
        n[0]
    );
    let bad = zero.place(std::slice::from_ref(&a), &[shards]);
    ensure!(
        STAGE,
        bad.is_err_and(|e| e.code == ErrorCode::Invalid),
        "place in a shard the registry does not have must fail with code Invalid"
    );
    Ok(())
}

/// A store is created only when the setup allows it, with the metadata given, which it keeps
/// (durably, across a reopen) beside the shard count it records itself; shard 0 opened with
/// `shards` 0 tells the count.
fn creation_and_metadata(make: &Make<'_>) -> Result<(), Violation> {
    let scratch = Scratch::new()?;
    let existing = |shard, shards| Setup {
        create: None,
        ..scratch.setup(shard, shards)
    };
    match make(&existing(0, 3)) {
        Err(e) => ensure!(
            STAGE,
            e.code == ErrorCode::NotFound,
            "building a shard that does not exist without `create` must fail with code \
             NotFound, not {:?} ({})",
            e.code,
            e.message
        ),
        Ok(_) => fail!(
            STAGE,
            "building a shard that does not exist without `create` must fail with code \
             NotFound: it created one"
        ),
    }
    ensure!(
        STAGE,
        make(&existing(0, 0)).map(|_| ()).map_err(|e| e.code) == Err(ErrorCode::NotFound),
        "shard 0 asked for the shard count (`shards` 0) where no registry is must fail with \
         code NotFound"
    );
    let given: Meta = [("state".to_owned(), "creating".to_owned())].into();
    let created = open(
        make,
        &Setup {
            create: Some(given.clone()),
            ..scratch.setup(0, 3)
        },
    )?;
    let meta_of = |s: &dyn Storage| -> Result<Meta, Violation> {
        let mut meta = Meta::new();
        match s.meta(&mut meta) {
            Ok(()) => Ok(meta),
            Err(e) => fail!(STAGE, "meta failed: {}", e.message),
        }
    };
    let mut want = given.clone();
    want.insert(SHARDS.to_owned(), "3".to_owned());
    // The numbering and the storage format, when the store reports them, are its own too.
    if dense(&*created) {
        want.insert(IDS.to_owned(), DENSE.to_owned());
    }
    let meta = meta_of(&*created)?;
    if let Some(format) = meta.get(FORMAT) {
        want.insert(FORMAT.to_owned(), format.clone());
        let migrated = created.migrate(&[], &[]);
        ensure!(
            STAGE,
            migrated == Ok(0),
            "migrate on a store just created, of the newest format, must rewrite nothing; got \
             {migrated:?}"
        );
    }
    ensure!(
        STAGE,
        meta == want,
        "a created store keeps the metadata it was created with and its shard count: {meta:?}, \
         expected {want:?}"
    );
    let change: Meta = [
        ("state".to_owned(), "ready".to_owned()),
        ("flag".to_owned(), "true".to_owned()),
    ]
    .into();
    ensure!(
        STAGE,
        created.set_meta(&change).is_ok(),
        "set_meta must store new values"
    );
    let shards_too: Meta = [(SHARDS.to_owned(), "9".to_owned())].into();
    ensure!(
        STAGE,
        created.set_meta(&shards_too).map_err(|e| e.code) == Err(ErrorCode::Invalid),
        "set_meta must refuse to change the shard count (code Invalid)"
    );
    let ids_too: Meta = [(IDS.to_owned(), String::new())].into();
    ensure!(
        STAGE,
        created.set_meta(&ids_too).map_err(|e| e.code) == Err(ErrorCode::Invalid),
        "set_meta must refuse to change the numbering (code Invalid)"
    );
    let removal: Meta = [("flag".to_owned(), String::new())].into();
    ensure!(
        STAGE,
        created.set_meta(&removal).is_ok(),
        "set_meta with an empty value removes the key"
    );
    drop(created);
    let again = open(make, &existing(0, 3))?;
    want.insert("state".to_owned(), "ready".to_owned());
    let meta = meta_of(&*again)?;
    ensure!(
        STAGE,
        meta == want,
        "metadata must survive reopening the store: {meta:?}, expected {want:?}"
    );
    drop(again);
    let probe = open(make, &existing(0, 0))?;
    ensure!(
        STAGE,
        meta_of(&*probe)?.get(SHARDS).map(String::as_str) == Some("3"),
        "shard 0 opened with `shards` 0 must report the count it was created with"
    );
    drop(probe);
    ensure!(
        STAGE,
        make(&existing(0, 2)).map(|_| ()).map_err(|e| e.code) == Err(ErrorCode::Config),
        "opening a store with another shard count than it was created with must fail with code \
         Config: its numbers would collide"
    );
    Ok(())
}

/// The history of an entry: its first revision, then one revision per status, in order.
fn revisions(first: Entry, statuses: &[&str]) -> Vec<Entry> {
    let mut all = vec![first];
    for status in statuses {
        let next = revise(&all[all.len() - 1], status);
        all.push(next);
    }
    all
}

fn restoring(make: &Make<'_>, shard: u32, shards: u32) -> Result<(), Violation> {
    use Restored::{Created, Unchanged};
    let scratch = Scratch::new()?;
    let setup = scratch.setup(shard, shards);
    let storage = open(make, &setup)?;
    // The `i`-th number of this shard, so every history below belongs here unless said otherwise.
    let at = |i: u64| u64::from(shard) + 1 + u64::from(shards) * i;

    let a = revisions(
        entry(sec(), at(40), "block ssh from the internet")?,
        &["DEPRECATED", "LIVE"],
    );
    let b = vec![entry(gov(), at(2), "review access every quarter")?];
    let a_id = a[2].header.id.clone();
    let b_id = b[0].header.id.clone();
    let got = restore(&*storage, &[a.clone(), b.clone()])?;
    ensure!(
        STAGE,
        got == [Ok(Created), Ok(Created)],
        "restore of histories whose ids and fingerprints are new must give Created for each; got \
         {got:?}"
    );
    ensure!(
        STAGE,
        get(&*storage, &[a_id.clone(), b_id.clone()])? == [Some(a[2].clone()), Some(b[0].clone())],
        "get must give the latest revision of a restored entry exactly as given, times included"
    );
    ensure!(
        STAGE,
        history(&*storage, &a_id)? == a,
        "history of a restored entry must give every revision given, oldest first"
    );
    ensure!(
        STAGE,
        find(&*storage, &[b[0].fingerprint, a[0].fingerprint])?
            == [Some(b[0].clone()), Some(a[2].clone())],
        "find must give a restored entry's latest revision by its fingerprint"
    );
    let by_status = |status: &str| -> Result<Vec<String>, Violation> {
        let mut q = everything();
        q.filter.scope = Some("SEC".into());
        q.filter.status = Some(status.into());
        Ok(ids(&list(&*storage, &q)?))
    };
    ensure!(
        STAGE,
        by_status("LIVE")? == [a_id.to_string()] && by_status("DEPRECATED")?.is_empty(),
        "list filters must see a restored entry's latest revision and not its earlier ones"
    );

    let mut issued = Allocations::of(&*storage, shard, shards);
    let n = issued.take(&*storage, &["SEC-RUL", "GOV-RUL"])?;
    // A shard of a dense registry that allocates nothing has no sequence to raise: shard 0's
    // is raised by `place`, which the pipeline calls first.
    ensure!(
        STAGE,
        !issued.allocates() || (n[0] > a_id.number() && n[1] > b_id.number()),
        "restore must raise each prefix's sequence to at least the restored number: after \
         restoring {a_id} and {b_id}, allocate gave SEC-RUL-{} and GOV-RUL-{}",
        n[0],
        n[1]
    );
    let got = restore(&*storage, &[b.clone(), a.clone()])?;
    ensure!(
        STAGE,
        got == [Ok(Unchanged), Ok(Unchanged)],
        "restoring the same histories again must give Unchanged for each; got {got:?}"
    );
    let again = entry(sec(), n[0], "block ssh from the internet")?;
    ensure!(
        STAGE,
        insert(&*storage, &[again])? == [Inserted::Existing(a[2].clone())],
        "insert must find a restored entry by its fingerprint and give Existing"
    );

    // Conflicts: the id taken by other content, an older history of a stored entry, the
    // fingerprint taken under another id.
    let other_content = vec![entry(sec(), at(40), "another rule under a taken id")?];
    let older = a[..2].to_vec();
    let same_request = vec![entry(sec(), at(41), "block ssh from the internet")?];
    let got = restore(&*storage, &[other_content, older, same_request])?;
    ensure!(
        STAGE,
        got == [Err(ErrorCode::Conflict); 3],
        "restore must give Conflict for an id stored with another latest revision or hash, and \
         for a fingerprint registered under another id; got {got:?}"
    );
    ensure!(
        STAGE,
        history(&*storage, &a_id)? == a
            && get(&*storage, &[EntryId::new("SEC-RUL", at(41))])? == [None],
        "a conflicting history must write nothing"
    );

    // Malformed histories.
    let c = revisions(entry(ops(), at(5), "restart the queue workers")?, &["LIVE"]);
    let c3 = revise(&c[1], "DEPRECATED");
    let mut other_id = c[1].clone();
    other_id.header.id = EntryId::new("OPS-SCR", at(6));
    let mut other_fingerprint = c[1].clone();
    other_fingerprint.fingerprint = Fingerprint([7; 16]);
    let mut malformed = vec![
        ("an empty history", vec![]),
        ("revisions 1 and 3", vec![c[0].clone(), c3]),
        ("a history starting at revision 2", vec![c[1].clone()]),
        ("two ids", vec![c[0].clone(), other_id]),
        ("two fingerprints", vec![c[0].clone(), other_fingerprint]),
        ("number 0", vec![entry(ops(), 0, "numbered zero")?]),
    ];
    if shards > 1 && !dense(&*storage) {
        malformed.push((
            "a number of another shard",
            vec![entry(ops(), at(7) + 1, "another shard's entry")?],
        ));
    }
    for (what, history) in malformed {
        let got = restore(&*storage, std::slice::from_ref(&history))?;
        ensure!(
            STAGE,
            got == [Err(ErrorCode::Invalid)],
            "restore must give Invalid for a malformed history ({what}, to shard {shard} of \
             {shards}); got {got:?}"
        );
    }
    ensure!(
        STAGE,
        get(&*storage, std::slice::from_ref(&c[0].header.id))? == [None],
        "a malformed history must write nothing"
    );

    // One batch naming an id twice and a fingerprint twice, among good histories.
    let d = vec![entry(ops(), at(8), "rotate the logs")?];
    let d_twin = vec![entry(ops(), at(8), "another rule under d's id")?];
    let e = vec![entry(ops(), at(9), "compress the archives")?];
    let e_twin = vec![entry(ops(), at(10), "compress the archives")?];
    let got = restore(
        &*storage,
        &[d.clone(), d_twin, e.clone(), e_twin.clone(), c.clone()],
    )?;
    ensure!(
        STAGE,
        got == [
            Ok(Created),
            Err(ErrorCode::Conflict),
            Ok(Created),
            Err(ErrorCode::Conflict),
            Ok(Created)
        ],
        "restore must give one outcome per history, Conflict for a history whose id or \
         fingerprint an earlier one of the batch has, and store the others; got {got:?}"
    );
    ensure!(
        STAGE,
        get(
            &*storage,
            &[
                d[0].header.id.clone(),
                e_twin[0].header.id.clone(),
                c[1].header.id.clone()
            ]
        )? == [Some(d[0].clone()), None, Some(c[1].clone())],
        "restore must store the Created histories of a batch and not the conflicting ones"
    );
    ensure!(
        STAGE,
        restore(&*storage, &[])?.is_empty(),
        "restore of an empty batch must push nothing"
    );
    drop(storage);

    let storage = open(make, &setup)?;
    ensure!(
        STAGE,
        history(&*storage, &a_id)? == a
            && find(&*storage, &[b[0].fingerprint])? == [Some(b[0].clone())],
        "restored entries, their history and fingerprints must survive reopening the store"
    );
    issued.take(&*storage, &["SEC-RUL", "GOV-RUL", "OPS-SCR"])?;
    let n = issued.take(&*storage, &["OPS-SCR"])?;
    ensure!(
        STAGE,
        !issued.allocates() || n[0] > at(9),
        "a raised sequence must survive reopening the store: allocate gave OPS-SCR-{} after \
         OPS-SCR-{} was restored",
        n[0],
        at(9)
    );
    Ok(())
}
